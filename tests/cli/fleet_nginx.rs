//! certdeck against real third-party TLS servers: nginx serving the shared bench fleet
//! (../shared/bench/fleet.sh), with hanging, plain-HTTP and closed ports mixed in. Every
//! endpoint's expiry, status, chain kind and key must match what the fleet says it serves.
//!
//! Needs nginx (`apt-get install nginx-light`; the README's test command installs it).


use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Fleet {
    dir: PathBuf,
    script: PathBuf,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

fn fleet_script() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/fleet.sh");
    assert!(
        p.exists(),
        "{} is missing: the shared bench material must sit beside the project",
        p.display()
    );
    p
}

fn start_fleet(n: usize) -> Fleet {
    let script = fleet_script();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nginx-fleet");
    let run = |args: &[&str]| {
        let out = Command::new("bash")
            .arg(&script)
            .args(args)
            .arg(&dir)
            .env("FLEET_BASE", "31000")
            .env("FLEET_BAD_BASE", "30900")
            .env("FLEET_HANG_TTL", "300")
            .output()
            .expect("run fleet.sh");
        assert!(
            out.status.success(),
            "fleet.sh {args:?} failed (is nginx installed? apt-get install nginx-light): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let fleet = Fleet {
        dir: dir.clone(),
        script: script.clone(),
    };
    run(&["up", &n.to_string()]);
    run(&["hang", "3"]);
    fleet
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_fleet_matches_what_it_serves_and_bad_ports_cost_one_timeout() {
    let fleet = start_fleet(120);
    let d = &fleet.dir;
    let targets = d.join("targets.txt").display().to_string();
    let bad = d.join("bad-targets.txt").display().to_string();
    let ca = d.join("ca.crt").display().to_string();
    let start = Instant::now();
    let (code, out, err) = crate::common::run_bin(&[
        "scan",
        "--targets-file",
        &targets,
        "--targets-file",
        &bad,
        "--ca-file",
        &ca,
        "--timeout",
        "2s",
        "-o",
        "json",
    ])
    .await;
    let took = start.elapsed();
    assert_eq!(code, 2, "the fleet has expired certificates: {err}");
    assert!(
        took < Duration::from_secs(3),
        "hanging ports must cost one timeout (2 s) plus at most a second: {took:?}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let recs: HashMap<String, &serde_json::Value> = v
        .as_array()
        .expect("array")
        .iter()
        .map(|r| (r["location"].as_str().expect("loc").to_owned(), r))
        .collect();

    let expected = std::fs::read_to_string(d.join("expected.tsv")).expect("expected.tsv");
    let mut checked = 0;
    for line in expected.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (port, cn, not_after, status, issuer, key) = (f[0], f[1], f[2], f[3], f[5], f[6]);
        let loc = format!("127.0.0.1:{port}");
        let r = recs
            .get(&loc)
            .unwrap_or_else(|| panic!("no record for {loc}"));
        assert_eq!(r["not_after"], not_after, "{loc}");
        assert_eq!(r["status"], status, "{loc}");
        assert_eq!(r["subject"], format!("O=Fleet Test, CN={cn}"), "{loc}");
        let want_key = if key == "rsa2048" {
            "RSA 2048"
        } else {
            "ECDSA P-256"
        };
        assert_eq!(r["key"], want_key, "{loc}");
        let reason = r["verification"]["reason"].as_str().expect("reason");
        match (issuer, status) {
            (_, "expired") => assert_eq!(reason, "expired", "{loc}"),
            ("self-signed", _) => assert_eq!(reason, "self-signed", "{loc}"),
            ("intermediate", _) => {
                assert_eq!(
                    r["chain"].as_array().expect("chain").len(),
                    1,
                    "{loc}: leaf + intermediate served"
                );
                assert_eq!(
                    reason,
                    "host name mismatch (certificate is for svc-".to_owned() + &cn[4..] + ")",
                    "{loc}"
                );
            }
            _ => assert!(reason.starts_with("host name mismatch"), "{loc}: {reason}"),
        }
        checked += 1;
    }
    assert_eq!(checked, 120);

    sni_names_from_the_fleet_verify_as_trusted(&fleet).await;

    let bad_expected =
        std::fs::read_to_string(d.join("bad-expected.tsv")).expect("bad-expected.tsv");
    for line in bad_expected.lines().skip(1) {
        let (port, kind) = line.split_once('\t').expect("tsv");
        let loc = format!("127.0.0.1:{port}");
        let r = recs
            .get(&loc)
            .unwrap_or_else(|| panic!("no record for bad target {loc}"));
        let e = r["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{loc}: no error"));
        let want = match kind.split_whitespace().next() {
            Some("hang") => "timed out after 2s waiting for the TLS handshake",
            Some("plaintext") => "plain HTTP",
            Some("closed") => "connection refused",
            other => panic!("unknown bad kind {other:?}"),
        };
        assert!(e.contains(want), "{loc} ({kind}): {e}");
        assert_eq!(r["status"], "error");
    }
}

/// One fleet per test binary: two tests starting nginx in one directory would collide.
async fn sni_names_from_the_fleet_verify_as_trusted(fleet: &Fleet) {
    let expected = std::fs::read_to_string(fleet.dir.join("expected.tsv")).expect("expected.tsv");
    let ca = fleet.dir.join("ca.crt").display().to_string();
    // The first healthy endpoint signed by the root, asked for by its own name.
    let line = expected
        .lines()
        .skip(1)
        .find(|l| l.split('\t').nth(3) == Some("ok") && l.split('\t').nth(5) == Some("root"))
        .expect("a healthy root-signed endpoint");
    let f: Vec<&str> = line.split('\t').collect();
    let t = format!("127.0.0.1:{}@{}", f[0], f[1]);
    let (code, out, _) = crate::common::run_bin(&["scan", &t, "--ca-file", &ca, "-o", "json"]).await;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v[0]["verification"]["reason"], "trusted");
    assert_eq!(v[0]["verification"]["checked_name"], f[1]);
}
