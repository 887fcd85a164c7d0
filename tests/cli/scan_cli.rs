//! The real binary: exit codes, the JSON contract, CSV and Prometheus output, config files.

use crate::common::{run_bin, run_bin_env};
use certdeck::demo::DemoFleet;

fn target(fleet: &DemoFleet, story: &str) -> String {
    fleet
        .endpoints
        .iter()
        .find(|e| e.story == story)
        .unwrap_or_else(|| panic!("{story}"))
        .target
        .to_string()
}

fn ca_file(fleet: &DemoFleet, dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("demo-ca.pem");
    std::fs::write(&p, &fleet.root.pem).expect("write ca");
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_the_worst_status() {
    let fleet = DemoFleet::start().await.expect("demo");
    let dir = tempfile::tempdir().expect("dir");
    let ca = ca_file(&fleet, &dir);
    let closed = format!("127.0.0.1:{}", crate::common::closed_port());
    let healthy = target(&fleet, "healthy for months");
    let warning = target(&fleet, "expires in 20 days");
    let expired = target(&fleet, "expired 10 days ago");
    let critical = target(&fleet, "expires in 3 days");

    let (code, out, _) = run_bin(&["scan", &healthy, "--ca-file", &ca]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK") && out.contains("www.demo.test"), "{out}");
    assert_eq!(run_bin(&["scan", &healthy, &warning]).await.0, 1);
    assert_eq!(run_bin(&["scan", &healthy, &critical]).await.0, 2);
    assert_eq!(run_bin(&["scan", &warning, &expired]).await.0, 2);
    let (code, out, _) = run_bin(&["scan", &closed, &healthy]).await;
    assert_eq!(
        code, 3,
        "an unreadable target with nothing worse is UNKNOWN: {out}"
    );
    assert!(out.contains("connection refused"), "{out}");
    assert_eq!(
        run_bin(&["scan", &closed, &warning]).await.0,
        1,
        "a warning outranks unknown"
    );
    // Thresholds move the verdict: 20 days left is OK with --warn 10d.
    assert_eq!(
        run_bin(&["scan", &warning, "--warn", "10d", "--crit", "2d"])
            .await
            .0,
        0
    );
    assert_eq!(
        run_bin(&["scan", &warning, "--warn", "25d", "--crit", "21d"])
            .await
            .0,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_3_with_a_clear_message_and_help_exits_0() {
    let (code, _, err) = run_bin(&["scan", "--warn", "soonish", "example.test:443"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("--warn") && err.contains("soonish"), "{err}");
    let (code, _, err) = run_bin(&["scan", "--no-such-flag"]).await;
    assert_eq!(code, 3, "{err}");
    let (code, _, err) = run_bin(&["scan", "--warn", "3d", "--crit", "10d", "x.test"]).await;
    assert_eq!(code, 3);
    assert!(
        err.contains("--crit") && err.contains("must not be longer"),
        "{err}"
    );
    let (code, _, err) = run_bin(&["scan"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("nothing to scan"), "{err}");
    let (code, out, _) = run_bin(&["scan", "--help"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit codes") && out.contains("3  UNKNOWN"),
        "{out}"
    );
    // Every command keeps its own description: a source's flags do not replace it.
    assert!(out.starts_with("Read every certificate headless"), "{out}");
    let (_, out, _) = run_bin(&["--help"]).await;
    for line in [
        "scan         Read every certificate headless",
        "demo         Start a built-in demo fleet",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(!out.contains("source's flags"), "{out}");
    let (code, out, _) = run_bin(&["scan", "bad target with spaces", "-o", "json"]).await;
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v[0]["error"]
        .as_str()
        .expect("error")
        .contains("invalid characters"));
}

const COMMON_FIELDS: &[&str] = &[
    "id",
    "source",
    "location",
    "subject",
    "issuer",
    "serial",
    "sha256",
    "not_before",
    "not_after",
    "days_left",
    "sans",
    "key",
    "signature_algorithm",
    "is_ca",
    "status",
    "error",
];
const TLS_FIELDS: &[&str] = &[
    "chain",
    "verification",
    "tls_version",
    "client_auth_requested",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_records_carry_the_documented_fields_sorted_by_expiry() {
    let fleet = DemoFleet::start().await.expect("demo");
    let dir = tempfile::tempdir().expect("dir");
    let ca = ca_file(&fleet, &dir);
    let mut args: Vec<String> = vec![
        "scan".into(),
        "-o".into(),
        "json".into(),
        "--ca-file".into(),
        ca,
    ];
    args.extend(fleet.endpoints.iter().map(|e| e.target.to_string()));
    args.extend(["--file".into(), fleet.files_dir.display().to_string()]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = time::OffsetDateTime::now_utc();
    let (code, out, err) = run_bin(&argv).await;
    let ended = time::OffsetDateTime::now_utc();
    assert_eq!(code, 2, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON array");
    let recs = v.as_array().expect("array");
    assert!(recs.len() >= fleet.endpoints.len() + 5);
    let mut last_days = i64::MIN;
    let mut seen_error = false;
    for r in recs {
        for f in COMMON_FIELDS {
            assert!(r.get(*f).is_some(), "missing {f} in {r}");
        }
        let is_tls = r["source"] == "tls";
        for f in TLS_FIELDS {
            assert_eq!(r.get(*f).is_some(), is_tls, "{f} presence in {r}");
        }
        if r["status"] == "error" {
            seen_error = true;
            assert!(r["error"].is_string());
            continue;
        }
        assert!(!seen_error, "unreadable rows come last");
        let days = r["days_left"].as_i64().expect("days_left");
        assert!(days >= last_days, "sorted by expiry");
        last_days = days;
        let serial = r["serial"].as_str().expect("serial");
        assert!(
            serial
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{serial}"
        );
        let sha = r["sha256"].as_str().expect("sha");
        assert_eq!(sha.len(), 64);
        let na = r["not_after"].as_str().expect("not_after");
        assert!(na.ends_with('Z') && na.len() == 20, "RFC 3339 UTC: {na}");
        assert!(r["id"]
            .as_str()
            .expect("id")
            .starts_with(r["source"].as_str().expect("src")));
    }
    let by_loc = |loc: &str| {
        recs.iter()
            .find(|r| r["location"] == loc)
            .unwrap_or_else(|| panic!("{loc}"))
    };
    let expired = by_loc(&target(&fleet, "expired 10 days ago"));
    assert_eq!(expired["status"], "expired");
    // Whole days left, rounded down, at the moment of the scan: the demo made it expire ten
    // days before it started, so a scan a few seconds later reads -11 (and -10 in the same
    // second).
    let na = time::OffsetDateTime::parse(
        expired["not_after"].as_str().expect("not_after"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339");
    let floor_days = |at: time::OffsetDateTime| (na - at).whole_seconds().div_euclid(86_400);
    let days = expired["days_left"].as_i64().expect("days_left");
    assert!(
        (floor_days(ended)..=floor_days(started)).contains(&days) && (-11..=-10).contains(&days),
        "days_left {days} for a certificate that expired at {na}"
    );
    assert_eq!(expired["verification"]["trusted"], false);
    assert_eq!(expired["verification"]["reason"], "expired");
    let healthy = by_loc(&target(&fleet, "healthy for months"));
    assert_eq!(healthy["verification"]["reason"], "trusted");
    assert_eq!(healthy["key"], "ECDSA P-256");
    assert_eq!(healthy["signature_algorithm"], "ecdsa-with-SHA256");
    assert_eq!(healthy["tls_version"], "TLSv1.3");
    assert_eq!(
        healthy["chain"][0]["subject"],
        "O=certdeck demo, CN=certdeck demo intermediate CA"
    );
    let mtls = by_loc(&target(&fleet, "requires a client certificate (mTLS)"));
    assert_eq!(mtls["client_auth_requested"], true);
    let payments = by_loc(&target(&fleet, "intermediate expires before the leaf"));
    assert_eq!(payments["status"], "critical");
    assert_eq!(payments["expires_first"]["position"], 1);
    let svid = recs
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.ends_with("workload-svid.der"))
        })
        .expect("DER workload cert");
    assert_eq!(svid["sans"][0], "URI:spiffe://demo.test/ns/shop/sa/web");
    let bundle: Vec<_> = recs
        .iter()
        .filter(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.contains("ca-bundle.pem#"))
        })
        .collect();
    assert_eq!(bundle.len(), 2);
    assert!(bundle.iter().all(|r| r["is_ca"] == true));
    let broken = recs
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.ends_with("broken.pem"))
        })
        .expect("broken");
    assert_eq!(broken["status"], "error");
    assert!(broken["error"]
        .as_str()
        .expect("e")
        .contains("truncated PEM block"));

    // ids are stable across runs.
    let (_, out2, _) = run_bin(&argv).await;
    let v2: serde_json::Value = serde_json::from_str(&out2).expect("json");
    let ids = |v: &serde_json::Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .expect("a")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_owned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&v), ids(&v2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_and_prometheus_outputs_and_no_private_key_anywhere() {
    let fleet = DemoFleet::start().await.expect("demo");
    let files = fleet.files_dir.display().to_string();
    let healthy = target(&fleet, "healthy for months");
    let (_, csv, _) = run_bin(&["scan", &healthy, "-f", &files, "-o", "csv"]).await;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,source,location,status,days_left,not_before,not_after,subject,issuer,serial,sha256,sans,key,signature_algorithm,is_ca,verification,tls_version,client_auth_requested,starttls,error")
    );
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("csv row")).collect();
    assert!(rows.len() >= 7);
    assert!(rows.iter().any(|r| &r[2] == healthy.as_str()
        && &r[3] == "ok"
        && &r[15] == "unknown issuer (no chain to a trusted root)"));
    let (_, prom, _) = run_bin(&["scan", &healthy, "-o", "prometheus"]).await;
    assert!(prom.contains("# TYPE certdeck_certificate_not_after_seconds gauge"));
    assert!(prom.contains(&format!("location=\"{healthy}\"")));
    assert!(prom.contains("certdeck_location_up{"));
    for fmt in ["table", "json", "csv", "prometheus"] {
        let (_, out, err) = run_bin(&["scan", "-f", &files, "-o", fmt]).await;
        assert!(
            !out.contains("PRIVATE KEY") && !err.contains("PRIVATE KEY"),
            "{fmt} leaks a key"
        );
        assert!(
            out.contains("intranet"),
            "{fmt}: the certificate beside the key is read"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_file_supplies_the_inventory_and_a_broken_one_names_file_line_and_field() {
    let fleet = DemoFleet::start().await.expect("demo");
    let dir = tempfile::tempdir().expect("dir");
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(
        &hosts,
        format!(
            "# fleet\n{}  # twenty days\n\n",
            target(&fleet, "expires in 20 days")
        ),
    )
    .expect("w");
    let cfg = dir.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "targets = [\"{}\"]\ntargets_files = [\"{}\"]\n\n[thresholds]\nwarn = \"10d\"\ncrit = \"2d\"\n",
            target(&fleet, "healthy for months"),
            hosts.display()
        ),
    )
    .expect("write");
    let cfgs = cfg.display().to_string();
    let (code, out, err) = run_bin(&["scan", "--config", &cfgs, "-o", "json"]).await;
    assert_eq!(
        code, 0,
        "20 days is fine with warn=10d from the config: {out} {err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().expect("a").len(), 2);
    // Flags win over the config file.
    assert_eq!(
        run_bin(&["scan", "--config", &cfgs, "--warn", "30d"])
            .await
            .0,
        1
    );
    // The default config location is used when --config is absent.
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join("config/certdeck")).expect("mkdir");
    std::fs::copy(&cfg, home.path().join("config/certdeck/config.toml")).expect("copy");
    let xdg = home.path().join("config").display().to_string();
    let (code, out, _) = run_bin_env(&["scan", "-o", "json"], &[("XDG_CONFIG_HOME", &xdg)]).await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out)
            .expect("json")
            .as_array()
            .expect("a")
            .len(),
        2
    );

    for (text, want) in [
        (
            "targets = [\"a.test\"]\n[thresholds]\nwarning = \"3d\"\n",
            "line 3",
        ),
        (
            "targets = [\"a.test\"]\n[probe]\ntimeout = \"quickly\"\n",
            "quickly",
        ),
        ("targets = \"a.test\"\n", "line 1"),
        ("[probe\n", "line 1"),
    ] {
        std::fs::write(&cfg, text).expect("write");
        let (code, _, err) = run_bin(&["scan", "--config", &cfgs]).await;
        assert_eq!(code, 3, "{text}");
        assert!(err.contains(&cfgs) && err.contains(want), "{text}: {err}");
    }
    let (code, _, err) = run_bin(&["scan", "--config", "/nonexistent/certdeck.toml"]).await;
    assert_eq!(code, 3);
    assert!(err.contains("/nonexistent/certdeck.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_command_prints_the_fleet() {
    let (code, out, err) = run_bin(&["demo"]).await;
    assert_eq!(code, 0, "{err}");
    for want in [
        "EXPIRED",
        "billing.demo.test",
        "CRITICAL",
        "untrusted: self-signed",
        "host name mismatch",
        "NOT-YET-VALID",
        "truncated PEM block",
    ] {
        assert!(out.contains(want), "demo output lacks {want}: {out}");
    }
}

/// A certificate whose names carry terminal escapes and bidi overrides, as a PEM file.
fn hostile_cert(dir: &std::path::Path) -> std::path::PathBuf {
    let mut p = rcgen::CertificateParams::new(vec!["evil.example".to_owned()]).expect("params");
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        "evil\u{1b}]52;c;aGk=\u{7}\u{1b}[2J\u{1b}[31mred\u{202e}txt.exe",
    );
    p.distinguished_name
        .push(rcgen::DnType::OrganizationName, "\u{1b}[H\u{9b}31m org");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("cert");
    let path = dir.join("evil\u{1b}[2J.pem");
    std::fs::write(&path, cert.pem()).expect("write");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_never_reach_the_terminal_in_the_table() {
    let dir = tempfile::tempdir().expect("dir");
    let path = hostile_cert(dir.path());
    let (code, out, err) =
        run_bin(&["scan", "-o", "table", "-f", &path.display().to_string()]).await;
    assert_eq!(code, 0, "{out:?} {err}");
    assert!(out.contains("evil"), "the row is there: {out}");
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
        assert!(!out.contains(bad), "{bad:?} reached stdout: {out:?}");
        assert!(!err.contains(bad), "{bad:?} reached stderr: {err:?}");
    }
    // JSON keeps the data exactly (escaped by the JSON encoding).
    let (_, out, _) = run_bin(&["scan", "-o", "json", "-f", &path.display().to_string()]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert!(v[0]["subject"]
        .as_str()
        .expect("subject")
        .contains("\u{1b}]52"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_positional_path_is_read_as_files_not_as_a_host() {
    let dir = tempfile::tempdir().expect("dir");
    let sub = dir.path().join("certs");
    std::fs::create_dir(&sub).expect("mkdir");
    let fleet = DemoFleet::start().await.expect("demo");
    std::fs::write(sub.join("root.pem"), &fleet.root.pem).expect("write");
    let (code, out, err) = run_bin(&["scan", "-o", "json", &sub.display().to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1, "{v}");
    assert_eq!(v[0]["source"], "file");
    assert!(v[0]["location"]
        .as_str()
        .expect("loc")
        .ends_with("certs/root.pem"));
    assert!(!err.contains("invalid characters"), "{err}");
    // A file named directly, and a target beside it.
    let file = sub.join("root.pem").display().to_string();
    let www = target(&fleet, "healthy for months");
    let (_, out, _) = run_bin(&["scan", "-o", "json", &file, &www]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let sources: Vec<&str> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| r["source"].as_str().expect("source"))
        .collect();
    assert!(
        sources.contains(&"file") && sources.contains(&"tls"),
        "{sources:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_or_a_device_named_as_a_file_is_an_error_row_not_a_hang() {
    let dir = tempfile::tempdir().expect("dir");
    let fifo = dir.path().join("pipe.pem");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let (code, out, err) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run_bin(&[
            "scan",
            "-o",
            "json",
            "-f",
            &fifo.display().to_string(),
            "-f",
            "/dev/zero",
        ]),
    )
    .await
    .expect("a FIFO never blocks the scan");
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let by_loc = |suffix: &str| {
        v.as_array()
            .expect("array")
            .iter()
            .find(|r| r["location"].as_str().is_some_and(|l| l.ends_with(suffix)))
            .unwrap_or_else(|| panic!("no row for {suffix}: {v}"))
            .clone()
    };
    assert!(by_loc("pipe.pem")["error"]
        .as_str()
        .expect("error")
        .contains("FIFO"));
    assert!(by_loc("/dev/zero")["error"]
        .as_str()
        .expect("error")
        .contains("device"));
    // The same for a targets file that is a FIFO.
    let (code, _, err) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run_bin(&["scan", "--targets-file", &fifo.display().to_string()]),
    )
    .await
    .expect("no hang");
    assert_eq!(code, 3);
    assert!(err.contains("FIFO"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_style_backups_and_temporary_files_beside_live_ones_are_not_rows() {
    let dir = tempfile::tempdir().expect("dir");
    let fleet = DemoFleet::start().await.expect("demo");
    std::fs::write(dir.path().join("site.crt"), &fleet.root.pem).expect("write");
    // What certdeck 0.1 left beside a renewed file, and a temporary file of a write.
    let expired = rcgen::CertificateParams::new(vec!["old.example".to_owned()])
        .and_then(|mut p| {
            p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(100);
            p.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(10);
            let k = rcgen::KeyPair::generate()?;
            p.self_signed(&k)
        })
        .expect("cert");
    std::fs::write(
        dir.path().join("site.crt.certdeck-backup-20261101T000000Z"),
        expired.pem(),
    )
    .expect("write");
    std::fs::write(dir.path().join(".site.crt.certdeck-tmp-1-0"), expired.pem()).expect("write");
    let (code, out, _) = run_bin(&["scan", "-o", "json", &dir.path().display().to_string()]).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1, "{v}");
    assert_eq!(
        code, 0,
        "the old certificate in the backup does not make the scan critical"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_man_page_come_from_the_command_with_every_source_flag() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run_bin(&["completions", shell]).await;
        assert_eq!(code, 0, "{err}");
        for word in [
            "certdeck",
            "scan",
            "renew",
            "kubeconfig",
            "targets-file",
            "read-only",
        ] {
            assert!(out.contains(word), "{shell} completion lacks {word}");
        }
    }
    let (code, out, err) = run_bin(&["man"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(".ie") || out.contains(".TH certdeck"),
        "{}",
        &out[..200.min(out.len())]
    );
    assert!(
        out.contains("scan") && out.contains("read\\-only"),
        "the man page lists the flags"
    );
    let (code, _, err) = run_bin(&["completions", "tcsh"]).await;
    assert_eq!(code, 3, "an unknown shell is a usage error: {err}");
}

/// `renew ID` on a machine without a cluster (no `KUBECONFIG`, no `~/.kube/config`, no
/// Kubernetes flag or section) says the id is unknown, without a Kubernetes error; with a
/// `KUBECONFIG` that names nothing, the Kubernetes error is shown, as kubectl would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_without_a_cluster_has_no_kubernetes_error() {
    let (code, _, err) = run_bin_env(&["renew", "file:/nowhere.pem"], &[("KUBECONFIG", "")]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no row with id or location"), "{err}");
    assert!(!err.contains("kubeconfig"), "{err}");
    let (code, _, err) = run_bin_env(
        &["renew", "file:/nowhere.pem"],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    )
    .await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("KUBECONFIG exists"), "{err}");
}
