//! Benchmark: read 10,000 TLS Secrets across 100 namespaces from the fixture API server with
//! the real `certdeck scan --kubeconfig K -A -o json` (release binary), and report wall time
//! and the scan's peak RSS, with and without 16 KiB of non-certificate payload per Secret.
//!
//! Rerun: `bash benches/k8s_read.sh` (builds release binaries, then runs this example).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/k8s_fixture/mod.rs"]
mod k8s_fixture;

use std::process::Command;
use std::time::Instant;

use base64::Engine as _;
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "target/release/certdeck".into());
    let namespaces: usize = std::env::var("NS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let per_ns: usize = std::env::var("PER_NS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let total = namespaces * per_ns;
    for padding in [0usize, 16 * 1024] {
        let fx = k8s_fixture::Fixture::start_blocking();
        let t = Instant::now();
        let pad = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; padding]);
        for n in 0..namespaces {
            let ns = format!("ns-{n:03}");
            for i in 0..per_ns {
                let host = format!("svc-{i}.{ns}.example");
                let ck = rcgen::generate_simple_self_signed(vec![host]).unwrap();
                let mut s = k8s_fixture::tls_secret(
                    &ns,
                    &format!("svc-{i}-tls"),
                    &ck.cert.pem(),
                    &ck.signing_key.serialize_pem(),
                );
                if padding > 0 {
                    s["data"]["blob"] = json!(pad);
                }
                fx.insert_value(s);
            }
        }
        eprintln!(
            "seeded {total} Secrets ({padding} B padding each) in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let empty = fx.dir().join("empty.toml");
        std::fs::write(&empty, "").expect("write empty config");
        let mut walls = Vec::new();
        let mut rss = Vec::new();
        let mut rows = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let out = Command::new("/usr/bin/time")
                .args(["-f", "%M"])
                .arg(&bin)
                .args(["scan", "--kubeconfig"])
                .arg(fx.kubeconfig_path())
                .args(["-A", "-o", "json", "--timeout", "30s"])
                .env("CERTDECK_CONFIG", &empty)
                .env_remove("KUBECONFIG")
                .output()
                .expect("run certdeck");
            walls.push(t.elapsed().as_secs_f64());
            let stderr = String::from_utf8_lossy(&out.stderr);
            rss.push(
                stderr
                    .lines()
                    .last()
                    .and_then(|l| l.trim().parse::<f64>().ok())
                    .unwrap_or(0.0)
                    / 1024.0,
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("no JSON ({e}): {stderr}"));
            rows = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|r| {
                            r["location"]
                                .as_str()
                                .is_some_and(|l| l.ends_with("#tls.crt"))
                        })
                        .count()
                })
                .unwrap_or(0);
        }
        walls.sort_by(f64::total_cmp);
        rss.sort_by(f64::total_cmp);
        println!(
            "secrets={total} namespaces={namespaces} padding_bytes={padding} tls_rows={rows} median_wall_s={:.3} min_wall_s={:.3} median_peak_rss_mib={:.1}",
            walls[walls.len() / 2],
            walls[0],
            rss[rss.len() / 2]
        );
    }
}
