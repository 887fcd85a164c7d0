//! `certdeck serve` scraped by a real Prometheus, checked through Prometheus's HTTP API; the
//! shipped alerting rules checked and unit-tested by promtool.

use std::path::Path;
use std::time::Duration;

use super::peers::{self, client, query_until};

/// A self-signed certificate with exact validity (unix seconds); returns its PEM and serial.
fn cert(cn: &str, not_before: i64, not_after: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec![format!("{cn}.test")]).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "Prom Test");
    p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("t");
    p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("t");
    let c = p.self_signed(&key).expect("cert");
    let facts = certdeck::model::CertFacts::from_der(c.der()).expect("facts");
    (c.pem(), facts.serial)
}

fn value(series: &serde_json::Value) -> String {
    series["value"][1].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_serve_and_has_each_expiry_to_the_second() {
    let dir = tempfile::tempdir().expect("dir");
    let now = certdeck::clock::now_unix();
    // Odd seconds on purpose: the value must survive to the second.
    let soon = now + 5 * 86_400 + 37;
    let later = now + 200 * 86_400 + 11;
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    let (a, serial_a) = cert("soon", now - 60 * 86_400, soon);
    let (b, _) = cert("later", now - 86_400, later);
    let (c, _) = cert("gone", now - 90 * 86_400, now - 3_600);
    std::fs::write(certs.join("soon.pem"), a).expect("write");
    std::fs::write(certs.join("bundle.pem"), format!("{b}{c}")).expect("write");
    let closed = crate::common::closed_port();
    let target = format!("127.0.0.1:{closed}");
    // A Prometheus source that cannot be reached: a source failing as a whole.
    let no_prom = format!("http://127.0.0.1:{}", crate::common::closed_port());
    let serve = peers::certdeck_serve(
        dir.path(),
        &[
            "-f",
            &certs.display().to_string(),
            "-t",
            &target,
            "--prometheus",
            &no_prom,
            "--no-revocation",
            "--timeout",
            "2s",
            "--extra-label",
            "filename",
            "--extra-label",
            "subject_O",
        ],
    );

    // Readiness: 200 once every source finished a round; health always.
    let http = client();
    let start = std::time::Instant::now();
    loop {
        let r = http
            .get(format!("{}/readyz", serve.url()))
            .send()
            .await
            .expect("readyz");
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "not ready is 503");
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never ready: {}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let h = http
        .get(format!("{}/healthz", serve.url()))
        .send()
        .await
        .expect("healthz");
    assert_eq!(h.status(), 200);

    // Content negotiation: OpenMetrics when asked for, else the Prometheus text format.
    let om = http
        .get(format!("{}/metrics", serve.url()))
        .header(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .expect("metrics");
    assert!(om.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("application/openmetrics-text; version=1.0.0"));
    let om = om.text().await.expect("body");
    assert!(om.ends_with("# EOF\n"), "{om}");
    let text = http
        .get(format!("{}/metrics", serve.url()))
        .send()
        .await
        .expect("metrics");
    assert!(text.headers()["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/plain; version=0.0.4"));
    let text = text.text().await.expect("body");
    assert!(!text.contains("# EOF"));
    assert!(text.contains("x509_read_errors 1\n"), "{text}");
    // gzip when the client accepts it (Prometheus does): the same exposition, compressed.
    let gz = http
        .get(format!("{}/metrics", serve.url()))
        .header("Accept-Encoding", "gzip")
        .send()
        .await
        .expect("metrics");
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert!(gz.headers()["vary"]
        .to_str()
        .expect("vary")
        .contains("Accept-Encoding"));
    let gz = gz.bytes().await.expect("body");
    let mut unzipped = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped)
        .expect("gunzip");
    assert!(gz.len() < unzipped.len(), "compressed");
    let soon_line = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("x509_cert_not_after{") && l.contains(r#"subject_CN="soon""#))
            .map(str::to_owned)
    };
    assert_eq!(soon_line(&unzipped), soon_line(&text), "{unzipped}");
    assert!(soon_line(&text).is_some_and(|l| l.ends_with(&format!(" {soon}"))));
    assert!(
        !text.contains(",id=\"") && !text.contains("{id=\""),
        "id is opt-in"
    );
    // promtool lints the exposition as Prometheus reads it.
    let lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool");
    let out = {
        use std::io::Write as _;
        let mut lint = lint;
        lint.stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write");
        lint.wait_with_output().expect("promtool")
    };
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The real Prometheus scrapes it (both formats are offered; 2.42 asks for OpenMetrics).
    let prom = peers::prometheus(
        dir.path(),
        &format!(
            "  - job_name: certdeck\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
            serve.port
        ),
        &[],
    );
    let res = query_until(
        &prom,
        r#"x509_cert_not_after{subject_CN="soon"}"#,
        "the soon certificate",
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(value(&res[0]), soon.to_string(), "expiry to the second");
    let nb = query_until(
        &prom,
        r#"x509_cert_not_before{subject_CN="soon"}"#,
        "notBefore",
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(value(&nb[0]), (now - 60 * 86_400).to_string());
    let m = &res[0]["metric"];
    assert_eq!(m["serial_number"], serial_a.as_str());
    assert_eq!(m["issuer_CN"], "soon");
    assert_eq!(m["subject_O"], "Prom Test");
    assert_eq!(m["source"], "file");
    assert_eq!(
        m["filepath"],
        certs.join("soon.pem").display().to_string().as_str()
    );
    assert_eq!(m["filename"], "soon.pem");
    assert_eq!(m["job"], "certdeck");

    let res = query_until(
        &prom,
        "certdeck_cert_effective_not_after_seconds",
        "every certificate",
        |r| r.len() == 3,
    )
    .await;
    let mut got: Vec<(String, String)> = res
        .iter()
        .map(|s| {
            (
                s["metric"]["subject_CN"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                value(s),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("gone".to_owned(), (now - 3_600).to_string()),
            ("later".to_owned(), later.to_string()),
            ("soon".to_owned(), soon.to_string()),
        ]
    );
    // Bundle members are told apart by location, and share the file's path.
    let res = query_until(
        &prom,
        r#"x509_cert_expired{filename="bundle.pem"}"#,
        "the bundle",
        |r| r.len() == 2,
    )
    .await;
    for s in &res {
        let loc = s["metric"]["location"].as_str().unwrap_or_default();
        let expired = if s["metric"]["subject_CN"] == "gone" {
            "1"
        } else {
            "0"
        };
        assert_eq!(value(s), expired, "{loc}");
        assert!(loc.ends_with("bundle.pem#1") || loc.ends_with("bundle.pem#2"));
    }
    let res = query_until(&prom, r#"certdeck_cert_status == 1"#, "statuses", |r| {
        r.len() == 4
    })
    .await;
    let mut statuses: Vec<String> = res
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["subject_CN"].as_str().unwrap_or("-"),
                s["metric"]["status"].as_str().unwrap_or_default()
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["- error", "gone expired", "later ok", "soon critical"]
    );
    // The unreachable endpoint is an error row, and both sources have done their rounds.
    let res = query_until(&prom, "certdeck_location_up == 0", "the closed port", |r| {
        r.len() == 1
    })
    .await;
    assert_eq!(res[0]["metric"]["location"], target.as_str());
    let res = query_until(
        &prom,
        "certdeck_source_rounds_total",
        "source rounds",
        |r| r.len() == 3,
    )
    .await;
    for s in &res {
        assert!(value(s).parse::<f64>().expect("number") >= 1.0, "{s}");
    }
    // Source health: the file and TLS sources are up (an unreachable endpoint is a row, not
    // a source failure); the unreachable Prometheus is a source failing as a whole.
    let res = query_until(&prom, "certdeck_source_up", "source up", |r| r.len() == 3).await;
    let mut up: Vec<String> = res
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["source"].as_str().unwrap_or_default(),
                value(s)
            )
        })
        .collect();
    up.sort();
    assert_eq!(up, ["file 1", "prometheus 0", "tls 1"]);
    let res = query_until(&prom, "certdeck_source_state == 1", "source states", |r| {
        r.len() == 3
    })
    .await;
    let mut states: Vec<String> = res
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["source"].as_str().unwrap_or_default(),
                s["metric"]["state"].as_str().unwrap_or_default()
            )
        })
        .collect();
    states.sort();
    assert_eq!(states, ["file ok", "prometheus failing", "tls ok"]);
    let failing = res
        .iter()
        .find(|s| s["metric"]["source"] == "prometheus")
        .expect("prometheus source");
    assert_eq!(
        failing["metric"]["source_instance"],
        no_prom.trim_start_matches("http://")
    );
    let res = query_until(
        &prom,
        "certdeck_source_last_success_timestamp_seconds",
        "last successes",
        |r| r.len() == 2,
    )
    .await;
    for s in &res {
        let t: i64 = value(s).parse().expect("number");
        assert!(t >= now && t <= certdeck::clock::now_unix(), "{s}");
    }
    let res = query_until(&prom, "certdeck_source_rows", "rows per source", |r| {
        r.len() == 3
    })
    .await;
    let mut rows: Vec<String> = res
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["metric"]["source"].as_str().unwrap_or_default(),
                value(s)
            )
        })
        .collect();
    rows.sort();
    assert_eq!(rows, ["file 3", "prometheus 0", "tls 1"]);
    // The exporter's own: ready, and the instants of what it serves.
    let res = query_until(&prom, "certdeck_exporter_ready", "ready", |r| {
        r.len() == 1 && value(&r[0]) == "1"
    })
    .await;
    assert_eq!(res[0]["metric"]["job"], "certdeck");
    for q in [
        "certdeck_exporter_snapshot_timestamp_seconds",
        "certdeck_exporter_judged_timestamp_seconds",
    ] {
        let res = query_until(&prom, q, q, |r| r.len() == 1).await;
        let t: i64 = value(&res[0]).parse().expect("number");
        assert!(t >= now && t <= certdeck::clock::now_unix(), "{q}: {t}");
    }
    let res = query_until(
        &prom,
        r#"certdeck_cert_renew_by_seconds{subject_CN="soon"}"#,
        "renew by",
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(value(&res[0]), (soon - 30 * 86_400).to_string());
    let res = query_until(
        &prom,
        r#"certdeck_observed_timestamp_seconds{subject_CN="soon"}"#,
        "observed",
        |r| r.len() == 1,
    )
    .await;
    let t: i64 = value(&res[0]).parse().expect("number");
    assert!(t >= now && t <= certdeck::clock::now_unix());
    // No fingerprints or ids as labels by default, in what Prometheus stored.
    let res = query_until(
        &prom,
        r#"count({job="certdeck", id!=""}) or vector(0)"#,
        "no id labels",
        |r| r.len() == 1,
    )
    .await;
    assert_eq!(value(&res[0]), "0");
    // Every sample of the exposition made it into Prometheus.
    let res = query_until(
        &prom,
        r#"scrape_samples_scraped{job="certdeck"}"#,
        "samples",
        |r| r.len() == 1,
    )
    .await;
    let samples: usize = value(&res[0]).parse().expect("number");
    assert_eq!(
        samples,
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .count(),
        "{text}"
    );
    let res = query_until(
        &prom,
        r#"certdeck_source_round_duration_seconds{source="file"}"#,
        "round duration",
        |r| r.len() == 1,
    )
    .await;
    let d: f64 = value(&res[0]).parse().expect("number");
    assert!(d > 0.0 && d < 30.0, "{d}");
    let res = query_until(&prom, r#"up{job="certdeck"}"#, "up", |r| r.len() == 1).await;
    assert_eq!(value(&res[0]), "1");
    drop(prom);
    drop(serve);
}

/// The value of the first series of `name` (whose line contains `having`) in an exposition.
fn sample(text: &str, name: &str, having: &str) -> Option<String> {
    text.lines()
        .find(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(having)
        })
        .and_then(|l| l.rsplit(' ').next())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_rendered_body_is_judged_again_when_a_certificate_expires_without_a_new_read() {
    let dir = tempfile::tempdir().expect("dir");
    let now = certdeck::clock::now_unix();
    let expires = now + 12;
    let (pem, _) = cert("brief", now - 86_400, expires);
    let file = dir.path().join("brief.pem");
    std::fs::write(&file, pem).expect("write");
    // Optional labels from the config file's [serve] section.
    let conf = dir.path().join("config.toml");
    std::fs::write(&conf, "[serve]\nextra_labels = [\"issuer_O\"]\n").expect("write");
    let serve = peers::certdeck_serve(
        dir.path(),
        &[
            "--config",
            &conf.display().to_string(),
            "-f",
            &file.display().to_string(),
        ],
    );
    let http = client();
    let get = || async {
        http.get(format!("{}/metrics", serve.url()))
            .header("Accept-Encoding", "gzip")
            .send()
            .await
            .expect("metrics")
            .bytes()
            .await
            .expect("body")
    };
    let text = |gz: bytes::Bytes| {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut t)
            .expect("gunzip");
        t
    };
    // Read once, well before the expiry.
    let start = std::time::Instant::now();
    let first = loop {
        let t = text(get().await);
        if sample(&t, "x509_cert_not_after", "brief").is_some() {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let judged: i64 = sample(&first, "certdeck_exporter_judged_timestamp_seconds", "")
        .expect("judged")
        .parse()
        .expect("number");
    assert!(judged < expires, "judged at {judged}, before {expires}");
    assert_eq!(
        sample(&first, "x509_cert_expired", "brief").as_deref(),
        Some("0")
    );
    assert!(first.contains(r#"status="critical"} 1"#), "{first}");
    assert!(
        first.contains(r#"issuer_O="Prom Test""#),
        "[serve] extra_labels: {first}"
    );
    assert!(!first.contains("filename="), "{first}");
    let observed = sample(&first, "certdeck_observed_timestamp_seconds", "brief");
    // Nothing reads the file again for a minute; the clock alone must flip it.
    let later = loop {
        let t = text(get().await);
        if sample(&t, "x509_cert_expired", "brief").as_deref() == Some("1") {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never expired: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(later.contains(r#"status="expired"} 1"#), "{later}");
    assert_eq!(
        sample(&later, "certdeck_observed_timestamp_seconds", "brief"),
        observed,
        "not observed again"
    );
    let judged: i64 = sample(&later, "certdeck_exporter_judged_timestamp_seconds", "")
        .expect("judged")
        .parse()
        .expect("number");
    assert!(judged >= expires);
}

#[tokio::test]
async fn serve_refuses_a_bad_listen_address_and_nothing_to_read() {
    let (code, _, err) = crate::common::run_bin(&["serve", "--listen", "nowhere", "-f", "/"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("--listen 'nowhere' is not an address"),
        "{err}"
    );
    let (code, _, err) = crate::common::run_bin(&["serve"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("nothing to scan"), "{err}");
    let (code, _, err) =
        crate::common::run_bin(&["serve", "--extra-label", "fingerprint", "-f", "/"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(
            "unknown extra label 'fingerprint' (one of: id, filename, subject_O, issuer_O)"
        ),
        "{err}"
    );
}

#[test]
fn the_shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/prometheus");
    let out = peers::promtool(&["check", "rules", "certdeck-rules.yml"], &assets);
    assert!(out.contains("SUCCESS: 8 rules found"), "{out}");
    let out = peers::promtool(&["test", "rules", "certdeck-rules.test.yml"], &assets);
    assert!(out.contains("SUCCESS"), "{out}");
}
