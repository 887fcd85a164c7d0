//! `/metrics` cost with many certificates, the old way against the new in the same run.
//!
//! - Render: the exporter as it was (`baseline.rs`: every label encoded per series, the
//!   full label set) against the current one (labels encoded once per row, the default
//!   label set), Prometheus text and OpenMetrics, and OpenMetrics straight into gzip.
//! - Scrape over HTTP on loopback, as a client sees it (median of repeated GETs, body read
//!   to the end): the old server rendering on every GET against `certdeck serve`'s own HTTP
//!   handler serving bodies rendered ahead, plain and gzip (gzip also with the client's
//!   gunzip).
//! - The exporter's memory per certificate (RSS growth while its snapshot and its rendered
//!   OpenMetrics+gzip body are held).
//!
//! usage: metrics_render [N=100000] [ROUNDS=9]   (benches/metrics_render.sh runs 10k and 100k)

#[path = "metrics_render/baseline.rs"]
mod baseline;

use std::sync::Arc;
use std::time::Instant;

use certdeck::model::{CertFacts, K8sInfo, Record, SourceKind, Thresholds, TlsInfo, Verification};
use certdeck::serve::exposition::Variant;
use certdeck::serve::metrics::{self, Format, RowCache, Snapshot, SourceRow};
use certdeck::sources::{Health, SourceId};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| {
                l.split_whitespace()
                    .nth(1)
                    .unwrap_or("0")
                    .parse()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

const NOW: i64 = 1_800_000_000;

/// N records: a third TLS endpoints (leaf + intermediate), a third files, a third Secrets.
fn records(n: usize) -> Vec<(Arc<SourceId>, Record)> {
    let key = rcgen::KeyPair::generate().expect("key");
    let p = rcgen::CertificateParams::new(vec!["x.test".into()]).expect("params");
    let base = CertFacts::from_der(p.self_signed(&key).expect("cert").der()).expect("facts");
    let tls = Arc::new(SourceId::new(SourceKind::TLS, ""));
    let file = Arc::new(SourceId::new(SourceKind::FILE, ""));
    let k8s = Arc::new(SourceId::new(SourceKind::K8S, "prod"));
    let inter = Arc::new(CertFacts {
        subject: "CN=Bench Intermediate, O=Bench".into(),
        common_name: Some("Bench Intermediate".into()),
        not_after: NOW + 400 * 86_400,
        is_ca: true,
        ..base.clone()
    });
    (0..n)
        .map(|i| {
            let cn = format!("host-{i}.bench.example");
            let c = Arc::new(CertFacts {
                subject: format!("CN={cn}, O=Bench"),
                common_name: Some(cn.clone()),
                issuer: "CN=Bench Intermediate, O=Bench".into(),
                serial: format!("{:032x}", i as u128 * 7919),
                not_before: NOW - 30 * 86_400,
                not_after: NOW + (i as i64 % 500 - 20) * 86_400,
                ..base.clone()
            });
            match i % 3 {
                0 => {
                    let mut r = Record::new(SourceKind::TLS, format!("{cn}:443"), NOW).with_cert(c);
                    r.chain = vec![inter.clone()];
                    r.tls = Some(TlsInfo {
                        verification: Some(Verification {
                            trusted: true,
                            reason: "trusted".into(),
                            checked_name: cn,
                        }),
                        ..TlsInfo::default()
                    });
                    (tls.clone(), r)
                }
                1 => (
                    file.clone(),
                    Record::new(SourceKind::FILE, format!("/etc/tls/{cn}.pem"), NOW).with_cert(c),
                ),
                _ => {
                    let ns = format!("ns-{}", i % 100);
                    let mut r = Record::new(
                        SourceKind::K8S,
                        format!("prod/{ns}/secret/{cn}#tls.crt"),
                        NOW,
                    )
                    .with_cert(c);
                    r.k8s = Some(K8sInfo {
                        context: "prod".into(),
                        namespace: ns,
                        kind: "Secret".into(),
                        name: cn,
                        key: Some("tls.crt".into()),
                        ..K8sInfo::default()
                    });
                    (k8s.clone(), r)
                }
            }
        })
        .collect()
}

/// The Prometheus source's share of reading N series: parsing a `/api/v1/query` answer of N
/// x509-certificate-exporter series and turning it into rows, against parsing the same body
/// into a bare `serde_json::Value` (the baseline).
fn prometheus_source(n: usize, rounds: usize) {
    let mut body = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(
            r#"{{"metric":{{"__name__":"x509_cert_not_after","cluster":"c{}","instance":"10.0.0.1:9793","job":"x509","issuer_CN":"Bench CA","secret_key":"tls.crt","secret_name":"web-{i}","secret_namespace":"ns-{}","serial_number":"{:x}","subject_CN":"web-{i}.bench"}},"value":[1800000000.123,"{}"]}}"#,
            i % 10,
            i % 100,
            i * 7919,
            NOW + (i as i64 % 400) * 86_400
        ));
    }
    body.push_str("]}}");
    let mut parse = Vec::new();
    let mut base = Vec::new();
    let mut got = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let a: certdeck::sources::prometheus::Answer = serde_json::from_str(&body).expect("answer");
        let rows = certdeck::sources::prometheus::rows(
            &a.data.expect("data").result,
            "prometheus bench",
            NOW,
        );
        parse.push(t.elapsed().as_secs_f64() * 1e3);
        got = rows.len();
        let t = Instant::now();
        let v: serde_json::Value = serde_json::from_str(&body).expect("value");
        std::hint::black_box(&v);
        base.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "prometheus_source n={n} rows={got} body_bytes={} median_ms: parse_and_rows={:.1} baseline_json_value={:.1}",
        body.len(),
        median(parse),
        median(base)
    );
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn sources(n: usize) -> Vec<SourceRow> {
    [SourceKind::TLS, SourceKind::FILE, SourceKind::K8S]
        .iter()
        .map(|k| SourceRow {
            labels: metrics::source_labels(&SourceId::new(*k, "")),
            health: Health::default(),
            rows: n / 3,
            round_seconds: Some(1.0),
        })
        .collect()
}

/// The old exporter's HTTP: render the snapshot on every GET (off the async workers, as it
/// did), no compression.
async fn baseline_server(snap: Arc<baseline::Snapshot>) -> u16 {
    use http_body_util::Full;
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = l.accept().await {
            let snap = snap.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<_>| {
                    let snap = snap.clone();
                    async move {
                        let format = baseline::Format::negotiate(
                            req.headers()
                                .get(hyper::header::ACCEPT)
                                .and_then(|v| v.to_str().ok()),
                        );
                        let body = tokio::task::spawn_blocking(move || {
                            baseline::render(snap, NOW, format)
                        })
                        .await
                        .expect("render");
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    port
}

const OM_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// One GET of /metrics: (ms until the body is read, ms including gunzip, body bytes).
async fn get(c: &reqwest::Client, port: u16, accept: &str, gzip: bool) -> (f64, f64, usize) {
    let t = Instant::now();
    let mut req = c
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .header("Accept", accept);
    if gzip {
        req = req.header("Accept-Encoding", "gzip");
    }
    let resp = req.send().await.expect("GET");
    assert!(resp.status().is_success(), "{}", resp.status());
    let zipped = resp
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    assert_eq!(zipped, gzip, "content-encoding");
    let body = resp.bytes().await.expect("body");
    let read = ms(t);
    let len = body.len();
    if gzip {
        let mut out = Vec::with_capacity(len * 12);
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
            .expect("gunzip");
        std::hint::black_box(&out);
    }
    (read, ms(t), len)
}

async fn scrape_median(
    c: &reqwest::Client,
    port: u16,
    accept: &str,
    gzip: bool,
    rounds: usize,
) -> (f64, f64, usize) {
    let mut read = Vec::new();
    let mut total = Vec::new();
    let mut len = 0;
    for _ in 0..rounds {
        let (r, t, l) = get(c, port, accept, gzip).await;
        read.push(r);
        total.push(t);
        len = l;
    }
    (median(read), median(total), len)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|s| s.parse().expect("N"))
        .unwrap_or(100_000);
    let rounds: usize = args.next().map(|s| s.parse().expect("ROUNDS")).unwrap_or(9);
    if std::env::var_os("PROM_SOURCE").is_some() {
        return prometheus_source(n, rounds);
    }
    let recs = records(n);

    // The new snapshot, and its memory with the body Prometheus asks for rendered.
    let rss0 = rss_kib();
    let mut cache = RowCache::default();
    let t = Instant::now();
    let rows = cache.rows(recs.iter().map(|(s, r)| (&**s, r)));
    let build_ms = ms(t);
    let snap = Arc::new(Snapshot {
        rows,
        sources: sources(n),
        thresholds: Thresholds::default(),
        ready: true,
        taken_at: NOW,
    });
    let t = Instant::now();
    let again = cache.rows(recs.iter().map(|(s, r)| (&**s, r)));
    let rebuild_ms = ms(t);
    drop(again);
    let om_gz = certdeck::serve::exposition::render_variant(
        snap.clone(),
        NOW,
        Variant {
            format: Format::OpenMetrics,
            gzip: true,
        },
    )
    .expect("render");
    let rss1 = rss_kib();
    drop(om_gz);

    // The old snapshot, built the old way from the same records.
    let mut old_cache = baseline::RowCache::default();
    let t = Instant::now();
    let old_rows = old_cache.rows(recs.iter().map(|(s, r)| (&**s, r)));
    let old_build_ms = ms(t);
    let old = Arc::new(baseline::Snapshot {
        rows: old_rows,
        sources: [SourceKind::TLS, SourceKind::FILE, SourceKind::K8S]
            .iter()
            .map(|k| baseline::SourceRow {
                labels: baseline::source_labels(&SourceId::new(*k, "")),
                health: Health::default(),
                rows: n / 3,
                round_seconds: Some(1.0),
            })
            .collect(),
        thresholds: Thresholds::default(),
        ready: true,
        taken_at: NOW,
    });

    let mut r = std::collections::BTreeMap::<&str, Vec<f64>>::new();
    let mut bytes = std::collections::BTreeMap::<&str, usize>::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let s = baseline::render(old.clone(), NOW, baseline::Format::Text);
        r.entry("old_text").or_default().push(ms(t));
        bytes.insert("old_text", s.len());
        drop(s);
        let t = Instant::now();
        let s = baseline::render(old.clone(), NOW, baseline::Format::OpenMetrics);
        r.entry("old_openmetrics").or_default().push(ms(t));
        bytes.insert("old_openmetrics", s.len());
        drop(s);
        let t = Instant::now();
        let s = metrics::render(snap.clone(), NOW, Format::Text);
        r.entry("new_text").or_default().push(ms(t));
        bytes.insert("new_text", s.len());
        drop(s);
        let t = Instant::now();
        let s = metrics::render(snap.clone(), NOW, Format::OpenMetrics);
        r.entry("new_openmetrics").or_default().push(ms(t));
        bytes.insert("new_openmetrics", s.len());
        let t = Instant::now();
        let z = certdeck::serve::exposition::gzip(s.as_bytes()).expect("gzip");
        r.entry("gzip_of_openmetrics").or_default().push(ms(t));
        bytes.insert("new_openmetrics_gzip", z.len());
        drop(s);
        let t = Instant::now();
        let z = certdeck::serve::exposition::render_variant(
            snap.clone(),
            NOW,
            Variant {
                format: Format::OpenMetrics,
                gzip: true,
            },
        )
        .expect("render");
        r.entry("new_openmetrics_into_gzip")
            .or_default()
            .push(ms(t));
        drop(z);
    }
    let series = |text: &str| text.lines().filter(|l| !l.starts_with('#')).count();
    println!(
        "n={n} series_old={} series_new={} bytes: {}",
        series(&baseline::render(old.clone(), NOW, baseline::Format::Text)),
        series(&metrics::render(snap.clone(), NOW, Format::Text)),
        bytes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "snapshot_build_ms: old={old_build_ms:.1} new={build_ms:.1} new_rebuild_unchanged={rebuild_ms:.1}; rss_per_cert_bytes (snapshot + OpenMetrics gzip body)={:.0}",
        (rss1.saturating_sub(rss0) as f64 * 1024.0) / n as f64
    );
    println!(
        "render median_ms (rounds={rounds}): {}",
        r.into_iter()
            .map(|(k, v)| format!("{k}={:.1}", median(v)))
            .collect::<Vec<_>>()
            .join(" ")
    );

    // Over HTTP.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        certdeck::sources::tls::install_crypto_provider();
        let c = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("client");
        let old_port = baseline_server(old.clone()).await;
        let (tx, rx) = tokio::sync::watch::channel(snap.clone());
        let (expo, _renderer) = certdeck::serve::start_renderer(rx);
        let t = Instant::now();
        while expo.get().snapshot.rows.len() != n {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let first_render_ms = ms(t);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(certdeck::serve::serve_http(l, expo.clone()));
        let http_rounds = rounds.max(5);
        let mut out = Vec::new();
        let (a, _, len) = scrape_median(&c, old_port, OM_ACCEPT, false, http_rounds).await;
        out.push(format!("old_openmetrics={a:.1}ms/{len}B"));
        let (a, b, len) = scrape_median(&c, port, OM_ACCEPT, true, http_rounds).await;
        out.push(format!(
            "new_openmetrics_gzip={a:.1}ms/{len}B (with_gunzip={b:.1}ms)"
        ));
        // Not rendered ahead until asked for: the first GET renders it.
        let (first, _, _) = get(&c, port, OM_ACCEPT, false).await;
        let (a, _, len) = scrape_median(&c, port, OM_ACCEPT, false, http_rounds).await;
        out.push(format!(
            "new_openmetrics_plain={a:.1}ms/{len}B (first_get_renders={first:.1}ms)"
        ));
        let (first, _, _) = get(&c, port, "text/plain", true).await;
        let (a, b, len) = scrape_median(&c, port, "text/plain", true, http_rounds).await;
        out.push(format!(
            "new_text_gzip={a:.1}ms/{len}B (with_gunzip={b:.1}ms, first_get_renders={first:.1}ms)"
        ));
        println!(
            "http median_ms (rounds={http_rounds}, body read to the end): {}; first background render {first_render_ms:.0}ms",
            out.join(" ")
        );
        drop(tx);
    });
}
