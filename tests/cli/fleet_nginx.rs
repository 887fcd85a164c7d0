//! certdeck against a real third-party TLS server: nginx serving a fleet of 120 endpoints
//! (the project's own harness, tests/support/nginx.rs), with hanging, plain-HTTP and closed
//! ports mixed in. Every endpoint's expiry, status, chain, key and verdict must match what the
//! fleet serves; every bad port is an error row that says why.

use std::collections::HashMap;
use std::time::Duration;

use crate::nginx::{Fleet, Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fleet_matches_what_it_serves_and_bad_ports_are_clear_rows() {
    let tmp = tempfile::Builder::new()
        .prefix("nginx-fleet-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tmp");
    let fleet = tokio::task::spawn_blocking({
        let dir = tmp.path().to_path_buf();
        move || Fleet::start(&dir, 120)
    })
    .await
    .expect("fleet");
    let mut bad = Vec::new();
    let mut hold = Vec::new();
    for _ in 0..3 {
        let (p, h) = crate::common::hanging_server().await;
        bad.push((p, "hang"));
        hold.push(h);
        let (p, h) = crate::common::plain_http_server().await;
        bad.push((p, "plaintext"));
        hold.push(h);
        bad.push((crate::common::closed_port(), "closed"));
    }
    let bad_file = tmp.path().join("bad-targets.txt");
    let lines: Vec<String> = bad.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
    std::fs::write(&bad_file, lines.join("\n")).expect("write");
    let (targets, bad_targets, ca) = (
        fleet.targets_file.display().to_string(),
        bad_file.display().to_string(),
        fleet.ca_file.display().to_string(),
    );
    // A hang guard, not a speed check (the scan benchmark measures speed).
    let (code, out, err) = tokio::time::timeout(
        Duration::from_secs(120),
        crate::common::run_bin(&[
            "scan",
            "--targets-file",
            &targets,
            "--targets-file",
            &bad_targets,
            "--ca-file",
            &ca,
            "--timeout",
            "2s",
            "-o",
            "json",
        ]),
    )
    .await
    .expect("the scan finishes");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let not_read: Vec<String> = v
        .as_array()
        .expect("array")
        .iter()
        .filter(|r| r["status"] == "error")
        .map(|r| format!("{} {}", r["location"], r["error"]))
        .collect();
    assert_eq!(
        code, 2,
        "the fleet has expired certificates: {err}\nrows not read: {not_read:#?}"
    );
    let recs: HashMap<String, &serde_json::Value> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["location"].as_str().expect("loc").to_owned(), r))
        .collect();
    for e in &fleet.endpoints {
        let loc = format!("127.0.0.1:{}", e.port);
        let r = recs
            .get(&loc)
            .unwrap_or_else(|| panic!("no record for {loc}"));
        assert_eq!(
            r["not_after"],
            certdeck::clock::rfc3339(e.not_after),
            "{loc}"
        );
        assert_eq!(r["status"], e.status, "{loc}");
        let subject = r["subject"].as_str().expect("subject");
        let mut parts: Vec<&str> = subject.split(", ").collect();
        parts.sort_unstable();
        let cn = format!("CN={}", e.cn);
        assert_eq!(parts, vec![cn.as_str(), "O=Fleet Test"], "{loc}");
        assert_eq!(r["key"], e.key, "{loc}");
        let reason = r["verification"]["reason"].as_str().expect("reason");
        match (e.signer, e.status) {
            (_, "expired") => assert_eq!(reason, "expired", "{loc}"),
            (Signer::SelfSigned, _) => assert_eq!(reason, "self-signed", "{loc}"),
            (Signer::Intermediate, _) => {
                assert_eq!(
                    r["chain"].as_array().expect("chain").len(),
                    1,
                    "{loc}: leaf + intermediate served"
                );
                assert_eq!(
                    reason,
                    format!("host name mismatch (certificate is for {})", e.cn),
                    "{loc}"
                );
            }
            _ => assert!(reason.starts_with("host name mismatch"), "{loc}: {reason}"),
        }
    }
    for (port, kind) in &bad {
        let loc = format!("127.0.0.1:{port}");
        let r = recs
            .get(&loc)
            .unwrap_or_else(|| panic!("no record for bad target {loc}"));
        let e = r["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{loc}: no error"));
        let want = match *kind {
            "hang" => "timed out after 2s waiting for the TLS handshake",
            "plaintext" => "plain HTTP",
            _ => "connection refused",
        };
        assert!(e.contains(want), "{loc} ({kind}): {e}");
        assert_eq!(r["status"], "error");
    }

    // Asked for by its own name, a healthy root-signed endpoint verifies as trusted.
    let good = fleet
        .endpoints
        .iter()
        .find(|e| e.status == "ok" && e.signer == Signer::Root)
        .expect("a healthy root-signed endpoint");
    let t = format!("127.0.0.1:{}@{}", good.port, good.cn);
    let (code, out, _) =
        crate::common::run_bin(&["scan", &t, "--ca-file", &ca, "-o", "json"]).await;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["verification"]["reason"], "trusted");
    assert_eq!(v[0]["verification"]["checked_name"], good.cn);
    drop(hold);
}

/// One certificate, many places, and drift, through the binary against a real nginx: nginx
/// serves shop.example from live.pem while a renewed certificate for the same names sits in
/// renewed/fullchain.pem, not loaded yet. The endpoint row lists live.pem among the
/// locations of its certificate and is flagged as drift naming the renewed file (JSON `drift`,
/// the table's note); once nginx loads the renewed certificate, the drift is gone and the
/// endpoint, live.pem and the renewed file are one certificate in three places.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_serving_an_older_certificate_than_a_file_holds_is_drift() {
    use rcgen::{CertificateParams, DnType, KeyPair};
    let tmp = tempfile::Builder::new()
        .prefix("nginx-drift-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("tmp");
    let dir = tmp.path().to_path_buf();
    let make = |days: i64| {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(vec!["shop.example".into(), "www.shop.example".into()])
            .expect("params");
        p.distinguished_name
            .push(DnType::CommonName, "shop.example");
        let now = time::OffsetDateTime::now_utc();
        p.not_before = now - time::Duration::days(1);
        p.not_after = now + time::Duration::days(days);
        let c = p.self_signed(&key).expect("cert");
        (c.pem(), key.serialize_pem(), c.der().to_vec())
    };
    let (old, old_key, old_der) = make(10);
    let (new, new_key, new_der) = make(90);
    std::fs::create_dir_all(dir.join("renewed")).expect("mkdir");
    let live = dir.join("live.pem");
    let live_key = dir.join("live.key");
    let renewed = dir.join("renewed/fullchain.pem");
    std::fs::write(&live, &old).expect("write");
    std::fs::write(&live_key, &old_key).expect("write");
    std::fs::write(&renewed, &new).expect("write");
    std::fs::write(dir.join("renewed/privkey.pem"), &new_key).expect("write");
    let port = crate::nginx::free_port();
    let nginx = crate::nginx::Nginx::start(
        &dir.join("nginx"),
        &format!(
            "server {{ listen 127.0.0.1:{port} ssl; server_name shop.example; ssl_certificate {}; ssl_certificate_key {}; return 200 \"ok\\n\"; }}\n",
            live.display(),
            live_key.display()
        ),
        &[port],
    );
    let sha = |der: &[u8]| certdeck::model::cert::sha256_hex(der);
    let target = format!("127.0.0.1:{port}@shop.example");
    let (live_s, renewed_s) = (live.display().to_string(), renewed.display().to_string());
    let scan = |format: &'static str| {
        let args = [
            "scan".to_owned(),
            target.clone(),
            live_s.clone(),
            renewed_s.clone(),
            "-o".to_owned(),
            format.to_owned(),
        ];
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::common::run_bin(&a).await
        }
    };
    let rows_of = |out: &str| -> Vec<serde_json::Value> {
        serde_json::from_str(out).unwrap_or_else(|e| panic!("json ({e}): {out}"))
    };
    let find = |rows: &[serde_json::Value], source: &str| -> serde_json::Value {
        rows.iter()
            .find(|r| r["source"] == source && r["sha256"].is_string())
            .unwrap_or_else(|| panic!("no {source} row: {rows:#?}"))
            .clone()
    };

    let (code, out, err) = scan("json").await;
    assert_eq!(code, 1, "the served certificate has 10 days left: {err}");
    let rows = rows_of(&out);
    let ep = find(&rows, "tls");
    assert_eq!(ep["sha256"], sha(&old_der));
    let live_row = rows
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&live_s))
        })
        .expect("live.pem row");
    let renewed_row = rows
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&renewed_s))
        })
        .expect("renewed row");
    // One certificate, two places: the endpoint and the file it is served from.
    let places: Vec<(String, String)> = ep["locations"]
        .as_array()
        .expect("locations")
        .iter()
        .map(|p| {
            (
                p["source"].as_str().unwrap().to_owned(),
                p["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        places,
        [
            ("tls".to_owned(), ep["id"].as_str().unwrap().to_owned()),
            (
                "file".to_owned(),
                live_row["id"].as_str().unwrap().to_owned()
            )
        ],
        "{ep:#}"
    );
    assert_eq!(live_row["locations"], ep["locations"]);
    // Drift: the endpoint serves an older certificate than the renewed file holds.
    let d = &ep["drift"];
    assert_eq!(d["store_id"], renewed_row["id"], "{ep:#}");
    assert_eq!(d["store_kind"], "file");
    assert_eq!(d["store_sha256"], sha(&new_der));
    assert_eq!(d["served_not_after"], ep["not_after"]);
    assert_eq!(d["store_not_after"], renewed_row["not_after"]);
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .starts_with("serves an older certificate (expires "),
        "{d}"
    );
    assert!(renewed_row["drift"].is_null() && live_row["drift"].is_null());
    assert_eq!(renewed_row["locations"].as_array().map(Vec::len), Some(1));
    let (_, table, _) = scan("table").await;
    let line = table
        .lines()
        .find(|l| l.contains(&format!("127.0.0.1:{port}")))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("drift: serves an older certificate"),
        "{line}"
    );

    // nginx loads the renewed certificate: no drift, one certificate in three places.
    std::fs::write(&live, &new).expect("write");
    std::fs::write(&live_key, &new_key).expect("write");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(nginx.reload_command())
        .status()
        .expect("reload")
        .success();
    assert!(ok, "nginx reload");
    let mut rows = Vec::new();
    for _ in 0..100 {
        let (_, out, _) = scan("json").await;
        rows = rows_of(&out);
        if find(&rows, "tls")["sha256"] == sha(&new_der) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ep = find(&rows, "tls");
    assert_eq!(
        ep["sha256"],
        sha(&new_der),
        "nginx serves the renewed certificate"
    );
    assert!(ep["drift"].is_null(), "{ep:#}");
    assert_eq!(ep["locations"].as_array().map(Vec::len), Some(3), "{ep:#}");
    drop(nginx);
}
