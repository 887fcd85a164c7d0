//! Benchmark: what revocation checking costs a scan of N TLS endpoints (1,000 by default).
//!
//! Starts the real OpenBao (dev mode, `target/testenv/bin/bao`) with a root and an
//! intermediate whose certificates name OpenBao's OCSP responder and CRL, issues N leaves, and
//! serves each from its own nginx port (leaf + intermediate). In the same run, ROUNDS times
//! each, it times `certdeck scan --targets-file T -o json`:
//! - `--no-revocation` (the baseline);
//! - revocation on, nothing stapled: one OCSP request per endpoint to OpenBao's responder;
//! - revocation on, nginx stapling each endpoint's OCSP response (`ssl_stapling_file`, fetched
//!   from OpenBao beforehand), so no request leaves the scan.
//!
//! Every run is checked: all N rows read, and (with checking on) every row `good` by the
//! evidence expected. Rerun: `bash benches/revocation_scan.sh` (N=1000 ROUNDS=5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/openbao.rs"]
mod openbao;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use futures::StreamExt as _;
use serde_json::{json, Value};

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

/// nginx with one server block per endpoint (sized for thousands of listeners: each one takes
/// a worker connection), stopped with `nginx -s stop` so no worker outlives it.
struct Nginx {
    child: std::process::Child,
    conf: std::path::PathBuf,
}

impl Nginx {
    fn start(dir: &Path, servers: &str, ports: &[u16]) -> Nginx {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\nworker_rlimit_nofile 16384;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\n\
                 events {{ worker_connections 8192; }}\n\
                 http {{\n access_log off;\n client_body_temp_path {p}/b; proxy_temp_path {p}/p;\n\
                 fastcgi_temp_path {p}/f; uwsgi_temp_path {p}/u; scgi_temp_path {p}/s;\n{servers}}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("error.log"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx (tests/run.sh installs it)");
        for port in ports {
            let t = Instant::now();
            while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(t.elapsed().as_secs() < 60, "nginx did not listen on {port}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        Nginx { child, conf }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("nginx")
            .args(["-s", "stop", "-c"])
            .arg(&self.conf)
            .stderr(std::process::Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

/// N distinct free loopback ports.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// One scan: wall seconds, and the rows.
fn scan(bin: &str, targets: &Path, extra: &[&str]) -> (f64, Vec<Value>) {
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["scan", "--targets-file"])
        .arg(targets)
        .args(["-o", "json"])
        .args(extra)
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (secs, rows)
}

/// Check a run: every endpoint read, and its revocation as expected.
fn check(rows: &[Value], n: usize, by: Option<&str>) {
    assert_eq!(rows.len(), n, "rows");
    for r in rows {
        assert!(r["error"].is_null(), "{r}");
        match by {
            None => assert!(r["revocation"].is_null(), "{r}"),
            Some(b) => {
                assert_eq!(r["revocation"]["state"], "good", "{r}");
                let got = r["revocation"]["by"].as_str().unwrap_or_default();
                assert!(got.starts_with(b), "{got} vs {b}");
            }
        }
    }
}

#[tokio::main]
async fn main() {
    certdeck::sources::tls::install_crypto_provider();
    let bin = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/certdeck".into());
    let n = envn("N", 1000);
    let rounds = envn("ROUNDS", 5);
    let b = openbao::Bao::start().await;
    let pki = openbao::setup_pki(&b, 0, 0).await;
    let int_der = openbao::pem_der(&pki.int_pem);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    if std::env::var_os("KEEP").is_some() {
        eprintln!("keeping {}", dir.keep().display());
    }
    std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    // N leaves, their files, and each one's OCSP response for stapling.
    let t = Instant::now();
    let issued: Vec<(usize, openbao::Issued)> = futures::stream::iter(0..n)
        .map(|i| {
            let b = &b;
            async move {
                let x = b
                    .issue(
                        "pki_int",
                        "web",
                        json!({"common_name": format!("e{i}.example.test"), "ttl": "1500h"}),
                    )
                    .await;
                (i, x)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for (i, x) in &issued {
        std::fs::write(
            d.join(format!("{i}.pem")),
            format!("{}{}", x.cert_pem, pki.int_pem),
        )
        .unwrap();
        std::fs::write(d.join(format!("{i}.key")), &x.key_pem).unwrap();
        let resp = b
            .ocsp_response("pki_int", &openbao::pem_der(&x.cert_pem), &int_der)
            .await;
        std::fs::write(d.join(format!("{i}.ocsp")), resp).unwrap();
    }
    eprintln!(
        "issued {n} certificates and fetched their OCSP responses in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    // Each nginx gets ports of its own, and a targets file naming them.
    let setup = |name: &str, staple: bool| {
        let ports = free_ports(n);
        let targets = d.join(format!("{name}.targets"));
        let lines: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        std::fs::write(&targets, lines.join("\n") + "\n").unwrap();
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let f = |ext: &str| d.join(format!("{i}.{ext}")).display().to_string();
                let stapling = if staple {
                    format!("ssl_stapling on; ssl_stapling_file {};", f("ocsp"))
                } else {
                    String::new()
                };
                format!(
                    "server {{ listen 127.0.0.1:{p} ssl; ssl_certificate {}; ssl_certificate_key {}; {stapling} return 200 \"ok\\n\"; }}\n",
                    f("pem"),
                    f("key")
                )
            })
            .collect();
        (Nginx::start(&d.join(name), &servers, &ports), targets)
    };
    let responder = format!("OCSP {}/v1/pki_int/ocsp", b.addr);

    let (mut off, mut fetched, mut stapled) = (Vec::new(), Vec::new(), Vec::new());
    {
        let (_plain, targets) = setup("nginx-plain", false);
        // Each scan is a new process: nothing is cached from one to the next.
        for _ in 0..rounds {
            let (s, rows) = scan(&bin, &targets, &["--no-revocation"]);
            check(&rows, n, None);
            off.push(s);
            let (s, rows) = scan(&bin, &targets, &[]);
            check(&rows, n, Some(&responder));
            fetched.push(s);
        }
    }
    {
        let (_stapling, targets) = setup("nginx-stapling", true);
        for _ in 0..rounds {
            let (s, rows) = scan(&bin, &targets, &[]);
            check(&rows, n, Some("stapled OCSP response"));
            stapled.push(s);
        }
    }
    let (o, f, s) = (median(off), median(fetched), median(stapled));
    println!("endpoints: {n}, rounds: {rounds} (medians)");
    println!("scan --no-revocation:            {o:.2} s");
    println!(
        "scan, OCSP fetched per endpoint: {f:.2} s ({:.2}x, +{:.1} ms per endpoint)",
        f / o,
        (f - o) * 1000.0 / n as f64
    );
    println!(
        "scan, OCSP stapled by nginx:     {s:.2} s ({:.2}x, +{:.1} ms per endpoint)",
        s / o,
        (s - o) * 1000.0 / n as f64
    );
}
