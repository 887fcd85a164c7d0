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
