//! `/metrics` cost with many certificates: building the exporter's snapshot rows, and
//! rendering them (Prometheus text and OpenMetrics via prometheus-client), against a baseline
//! in the same run: `scan -o prometheus`'s hand-written writer over the same rows. Also the
//! exporter's memory per certificate (RSS growth while its snapshot is held).
//!
//! usage: metrics_render [N=100000] [ROUNDS=9]   (benches/metrics_render.sh runs 10k and 100k)

use std::sync::Arc;
use std::time::Instant;

use certdeck::model::{CertFacts, K8sInfo, Record, SourceKind, Thresholds, TlsInfo, Verification};
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
    let rss0 = rss_kib();
    let mut cache = RowCache::default();
    let t = Instant::now();
    let rows = cache.rows(recs.iter().map(|(s, r)| (&**s, r)));
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    let sources = [SourceKind::TLS, SourceKind::FILE, SourceKind::K8S]
        .iter()
        .map(|k| SourceRow {
            labels: metrics::source_labels(&SourceId::new(*k, "")),
            health: Health::default(),
            rows: n / 3,
            round_seconds: Some(1.0),
        })
        .collect();
    let snap = Arc::new(Snapshot {
        rows,
        sources,
        thresholds: Thresholds::default(),
        ready: true,
        taken_at: NOW,
    });
    let rss1 = rss_kib();
    // Rebuilding when nothing was observed again reuses every row.
    let t = Instant::now();
    let again = cache.rows(recs.iter().map(|(s, r)| (&**s, r)));
    let rebuild_ms = t.elapsed().as_secs_f64() * 1e3;
    drop(again);
    let mut text = Vec::new();
    let mut om = Vec::new();
    let mut base = Vec::new();
    let mut bytes = (0, 0);
    let plain: Vec<Record> = recs.iter().map(|(_, r)| r.clone()).collect();
    for _ in 0..rounds {
        let t = Instant::now();
        let s = metrics::render(snap.clone(), NOW, Format::Text);
        text.push(t.elapsed().as_secs_f64() * 1e3);
        bytes.0 = s.len();
        let t = Instant::now();
        let s = metrics::render(snap.clone(), NOW, Format::OpenMetrics);
        om.push(t.elapsed().as_secs_f64() * 1e3);
        bytes.1 = s.len();
        let t = Instant::now();
        let rows = certdeck::report::rows(&plain, NOW, Thresholds::default());
        let mut out = Vec::with_capacity(s.len());
        certdeck::report::write_prometheus(&mut out, &rows).expect("write");
        base.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let series = metrics::render(snap.clone(), NOW, Format::Text)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .count();
    println!(
        "n={n} series={series} text_bytes={} openmetrics_bytes={}",
        bytes.0, bytes.1
    );
    println!(
        "snapshot_build_ms={build_ms:.1} snapshot_rebuild_unchanged_ms={rebuild_ms:.1} snapshot_rss_per_cert_bytes={:.0}",
        (rss1.saturating_sub(rss0) as f64 * 1024.0) / n as f64
    );
    println!(
        "median_ms: text={:.1} openmetrics={:.1} baseline_scan_prometheus_writer={:.1} (rounds={rounds})",
        median(text),
        median(om),
        median(base)
    );
}
