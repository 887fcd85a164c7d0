//! Benchmark: read N issued certificates (10,000 by default) from one OpenBao PKI mount.
//!
//! Starts the real OpenBao (dev mode, `target/testenv/bin/bao`) on loopback, issues N leaf
//! certificates from a role, then measures, in the same run:
//! - certdeck's reader (`sources::vault::run_into`, rows consumed and dropped), ROUNDS times, with
//!   the peak RSS of the read alone (the peak is reset before each read via clear_refs), at
//!   N/10 and at N certificates: memory flat in the count;
//! - the real binary `certdeck scan --vault ADDR -o json` (which keeps every row for the
//!   sorted report), wall time and peak RSS from /usr/bin/time;
//! - what a user does today: `curl` once per serial after one LIST (all N), and
//!   `bao list` + `bao read pki/cert/SERIAL` per serial (on SAMPLE serials, extrapolated).
//!
//! Rerun: `bash benches/vault_read.sh` (N=10000 ROUNDS=3 SAMPLE=300).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use certdeck::sources::vault::{self, auth, VaultConfig, VaultSettings};
use serde_json::json;

fn envn(name: &str, d: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn post(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = http
        .post(format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", "root")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let st = r.status();
    let t = r.text().await.unwrap();
    assert!(st.is_success(), "{path}: {st} {t}");
    if t.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&t).unwrap()
    }
}

/// Issue `n` leaves, 16 requests in flight.
async fn issue(http: &reqwest::Client, addr: &str, from: usize, n: usize) {
    use futures::StreamExt as _;
    futures::stream::iter(from..from + n)
        .map(|i| async move {
            post(
                http,
                addr,
                "pki/issue/web",
                json!({"common_name": format!("h{i}.example.test"), "ttl": "720h"}),
            )
            .await;
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// One library read: (seconds, rows, peak RSS growth in MiB during the read).
async fn library_read(s: &VaultSettings) -> (f64, usize, f64) {
    // Reset the peak RSS to the current RSS (Linux: clear_refs 5).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_kb("VmRSS:");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<certdeck::model::Record>(256);
    let t = Instant::now();
    let s2 = s.clone();
    let job = tokio::spawn(async move { vault::run_into(&s2, &tx).await });
    let mut rows = 0;
    while let Some(r) = rx.recv().await {
        assert!(r.error.is_none(), "{:?}", r.error);
        rows += 1;
    }
    job.await.unwrap().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let peak = status_kb("VmHWM:");
    (secs, rows, (peak.saturating_sub(before)) as f64 / 1024.0)
}

#[tokio::main]
async fn main() {
    certdeck::sources::tls::install_crypto_provider();
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/certdeck".into());
    let n = envn("N", 10_000);
    let rounds = envn("ROUNDS", 3);
    let sample = envn("SAMPLE", 300).min(n);
    let bao = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testenv/bin/bao");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bao)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env_clear()
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao (run tests/run.sh to install it)");
    let addr = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .tls_backend_rustls()
        .build()
        .unwrap();
    for _ in 0..200 {
        if http
            .get(format!("{addr}/v1/sys/health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    post(
        &http,
        &addr,
        "sys/mounts/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    )
    .await;
    post(
        &http,
        &addr,
        "pki/root/generate/internal",
        json!({"common_name": "bench root", "ttl": "8760h", "key_type": "ec"}),
    )
    .await;
    post(&http, &addr, "pki/roles/web", json!({"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "8000h", "key_type": "ec", "key_bits": 256})).await;

    let settings = VaultSettings::resolve(
        Some(&addr),
        Some(&VaultConfig {
            mounts: vec!["pki".into()],
            ..Default::default()
        }),
        &std::collections::HashMap::from([("VAULT_TOKEN".to_owned(), "root".to_owned())])
            as &dyn auth::Env,
    )
    .unwrap();

    let small = (n / 10).max(1);
    let t = Instant::now();
    issue(&http, &addr, 0, small).await;
    eprintln!("issued {small} in {:.1}s", t.elapsed().as_secs_f64());
    let mut mem_small = Vec::new();
    for _ in 0..rounds {
        let (_, rows, mem) = library_read(&settings).await;
        assert!(rows > small);
        mem_small.push(mem);
    }
    let t = Instant::now();
    issue(&http, &addr, small, n - small).await;
    eprintln!(
        "issued {} more in {:.1}s",
        n - small,
        t.elapsed().as_secs_f64()
    );

    let mut secs = Vec::new();
    let mut mem_big = Vec::new();
    let mut rows = 0;
    for _ in 0..rounds {
        let (s, r, m) = library_read(&settings).await;
        secs.push(s);
        mem_big.push(m);
        rows = r;
    }
    // The binary, as a user runs it.
    let mut bin_secs = Vec::new();
    let mut bin_rss = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args([
                "-f",
                "%M",
                &bin,
                "scan",
                "--vault",
                &addr,
                "--vault-mount",
                "pki",
                "-o",
                "json",
            ])
            .env("VAULT_TOKEN", "root")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        bin_secs.push(t.elapsed().as_secs_f64());
        let err = String::from_utf8_lossy(&out.stderr);
        let kb: f64 = err
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0.0);
        bin_rss.push(kb / 1024.0);
    }
    // Today's way: one LIST, then curl per serial (all of them).
    let list = http
        .get(format!("{addr}/v1/pki/certs?list=true"))
        .header("X-Vault-Token", "root")
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let serials: Vec<String> = list["data"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let t = Instant::now();
    for s in &serials {
        let st = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-H", "X-Vault-Token: root"])
            .arg(format!("{addr}/v1/pki/cert/{s}"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let curl_secs = t.elapsed().as_secs_f64();
    // `bao list` then `bao read` per serial, on a sample.
    let t = Instant::now();
    let st = Command::new(&bao)
        .args(["list", "-format=json", "pki/certs"])
        .env("VAULT_ADDR", &addr)
        .env("VAULT_TOKEN", "root")
        .env("HOME", home.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let list_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for s in serials.iter().take(sample) {
        let st = Command::new(&bao)
            .args(["read", "-format=json", &format!("pki/cert/{s}")])
            .env("VAULT_ADDR", &addr)
            .env("VAULT_TOKEN", "root")
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let per_read = t.elapsed().as_secs_f64() / sample as f64;
    let bao_est = list_secs + per_read * serials.len() as f64;
    let _ = child.kill();
    let _ = child.wait();

    // Every certificate of the mount and its one issuer, none missed across pages.
    assert_eq!(rows, serials.len() + 1, "rows read vs certificates listed");
    let lib = median(secs);
    println!(
        "certificates on the mount: {} (rows read incl. issuer: {rows})",
        serials.len()
    );
    println!("certdeck reader (library), median of {rounds}: {lib:.2} s");
    println!(
        "  peak RSS growth during the read: {:.1} MiB at {} certs, {:.1} MiB at {} certs",
        median(mem_small),
        small + 1,
        median(mem_big),
        serials.len()
    );
    println!(
        "certdeck scan --vault -o json (binary), median of {rounds}: {:.2} s, peak RSS {:.1} MiB",
        median(bin_secs.clone()),
        median(bin_rss)
    );
    println!(
        "curl per serial after one LIST: {curl_secs:.1} s ({:.1}x the scan)",
        curl_secs / median(bin_secs.clone())
    );
    println!(
        "bao list + bao read per serial: {bao_est:.0} s estimated ({:.1} ms per read over {sample} reads; {:.0}x the scan)",
        per_read * 1000.0,
        bao_est / median(bin_secs)
    );
}
