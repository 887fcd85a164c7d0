//! Real nginx for tests, carried by the project (nothing outside the repository): one master
//! in the foreground from a temporary config, on 127.0.0.1 ports, stopped on Drop. And a fleet
//! of TLS endpoints with certificates of varied expiry, chains, self-signed ones and RSA keys,
//! whose expected facts the tests compare with what certdeck reads.
//!
//! Needs nginx (`apt-get install nginx-light`; tests/run.sh installs it).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

/// A free loopback port (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Wait until `port` accepts connections (30 s at most), showing `log` if it never does.
pub fn wait_for_port(port: u16, what: &str, log: &Path) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            panic!(
                "{what} did not listen on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running nginx; dropping it stops it.
pub struct Nginx {
    child: Child,
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub errlog: PathBuf,
}

impl Drop for Nginx {
    /// Stop the master and its workers: they run in their own process group, killed as one
    /// (killing only the master would leave a worker holding the ports).
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Start nginx with `servers` (server blocks) in its http block; wait for `ports`.
    pub fn start(dir: &Path, servers: &str, ports: &[u16]) -> Nginx {
        std::fs::create_dir_all(dir).expect("mkdir");
        // nginx workers run as nobody: they must reach what they serve from here.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let errlog = dir.join("error.log");
        let conf = dir.join("nginx.conf");
        let p = dir.display();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nworker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log info;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {p}/tmp-body; proxy_temp_path {p}/tmp-proxy;\n\
                 fastcgi_temp_path {p}/tmp-fcgi; uwsgi_temp_path {p}/tmp-uwsgi; scgi_temp_path {p}/tmp-scgi;\n\
                 {servers}\n}}\n"
            ),
        )
        .expect("write nginx.conf");
        let out = std::fs::File::create(dir.join("nginx.out")).expect("log");
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(&errlog)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("start nginx (apt-get install nginx-light; tests/run.sh installs it)");
        let n = Nginx {
            child,
            dir: dir.to_path_buf(),
            conf,
            errlog,
        };
        for port in ports {
            wait_for_port(*port, "nginx", &n.errlog);
        }
        n
    }

    /// The command that makes this nginx load its files again.
    pub fn reload_command(&self) -> String {
        format!(
            "nginx -s reload -c {} -e {}",
            self.conf.display(),
            self.errlog.display()
        )
    }
}

/// Who signs a fleet certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    Root,
    /// The fleet intermediate; the endpoint serves leaf + intermediate.
    Intermediate,
    SelfSigned,
}

/// One endpoint of the fleet, and what it serves.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub port: u16,
    pub cn: String,
    /// Unix seconds.
    pub not_after: i64,
    /// `expired`, `critical`, `warning` or `ok`.
    pub status: &'static str,
    pub signer: Signer,
    /// `RSA 2048` or `ECDSA P-256`, as certdeck describes keys.
    pub key: &'static str,
}

/// A fleet of TLS endpoints served by one nginx.
pub struct Fleet {
    pub endpoints: Vec<Endpoint>,
    /// The fleet root (trust anchor), PEM file.
    pub ca_file: PathBuf,
    /// `127.0.0.1:PORT`, one per line.
    pub targets_file: PathBuf,
    _nginx: Nginx,
}

fn at(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

fn ca_params(cn: &str, path_len: Option<u8>) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name
        .push(DnType::OrganizationName, "Fleet Test");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(match path_len {
        Some(n) => BasicConstraints::Constrained(n),
        None => BasicConstraints::Unconstrained,
    });
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(-30);
    p.not_after = at(3650);
    p
}

/// The fleet's mix by index `i` (1-based): expired, critical (1-6 d), warning (8-29 d) or ok
/// (60-400 d); self-signed, intermediate-signed or root-signed; RSA 2048 every 20th.
fn plan(i: usize) -> (i64, Signer, bool) {
    let r = i % 100;
    let days = match r {
        1 | 51 => -(1 + (i % 90) as i64),
        2 | 27 | 52 | 77 => 1 + (i % 6) as i64,
        _ if i % 10 == 4 => 8 + ((i * 7) % 22) as i64,
        _ => 60 + ((i * 37) % 341) as i64,
    };
    let signer = match r {
        5 | 55 => Signer::SelfSigned,
        6 | 39 | 72 => Signer::Intermediate,
        _ => Signer::Root,
    };
    (days, signer, i % 20 == 9)
}

fn status_of(days: i64) -> &'static str {
    match days {
        d if d < 0 => "expired",
        d if d < 7 => "critical",
        d if d < 30 => "warning",
        _ => "ok",
    }
}

impl Fleet {
    /// `n` endpoints under `dir`.
    pub fn start(dir: &Path, n: usize) -> Fleet {
        std::fs::create_dir_all(dir).expect("mkdir");
        let root_key = KeyPair::generate().expect("key");
        let root_params = ca_params("Fleet Test Root CA", None);
        let root = root_params.self_signed(&root_key).expect("root");
        let root_issuer = Issuer::new(root_params, root_key);
        let int_key = KeyPair::generate().expect("key");
        let int_params = ca_params("Fleet Test Intermediate CA", Some(0));
        let int = int_params
            .signed_by(&int_key, &root_issuer)
            .expect("intermediate");
        let int_issuer = Issuer::new(int_params, int_key);
        let ca_file = dir.join("ca.crt");
        std::fs::write(&ca_file, root.pem()).expect("write");
        let mut servers = String::new();
        let mut endpoints = Vec::new();
        // Distinct free ports: every listener is held until all are chosen.
        let held: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        drop(held);
        for i in 1..=n {
            let (days, signer, rsa) = plan(i);
            let cn = format!("svc-{i:04}.fleet.test");
            let key = if rsa {
                certdeck::actions::keys::generate(certdeck::actions::keys::KeyType::Rsa(2048))
                    .expect("rsa")
            } else {
                KeyPair::generate().expect("key")
            };
            let mut p = CertificateParams::new(vec![cn.clone()]).expect("params");
            p.distinguished_name
                .push(DnType::OrganizationName, "Fleet Test");
            p.distinguished_name.push(DnType::CommonName, &cn);
            p.not_before = at(days.min(0) - 100);
            // Whole seconds: what the certificate says is what the test expects.
            let not_after = at(days).replace_nanosecond(0).expect("ns");
            p.not_after = not_after;
            let (pem, chain) = match signer {
                Signer::SelfSigned => (p.self_signed(&key).expect("cert").pem(), String::new()),
                Signer::Root => (
                    p.signed_by(&key, &root_issuer).expect("cert").pem(),
                    String::new(),
                ),
                Signer::Intermediate => (
                    p.signed_by(&key, &int_issuer).expect("cert").pem(),
                    int.pem(),
                ),
            };
            let (crt, keyf) = (
                dir.join(format!("{i:04}.pem")),
                dir.join(format!("{i:04}.key")),
            );
            std::fs::write(&crt, format!("{pem}{chain}")).expect("write");
            std::fs::write(&keyf, key.serialize_pem()).expect("write");
            let port = ports[i - 1];
            servers.push_str(&format!(
                "server {{ listen 127.0.0.1:{port} ssl; server_name {cn}; ssl_certificate {}; ssl_certificate_key {}; return 200 \"ok\\n\"; }}\n",
                crt.display(),
                keyf.display()
            ));
            endpoints.push(Endpoint {
                port,
                cn,
                not_after: not_after.unix_timestamp(),
                status: status_of(days),
                signer,
                key: if rsa { "RSA 2048" } else { "ECDSA P-256" },
            });
        }
        let nginx = Nginx::start(&dir.join("nginx"), &servers, &ports);
        let targets_file = dir.join("targets.txt");
        let lines: Vec<String> = endpoints
            .iter()
            .map(|e| format!("127.0.0.1:{}", e.port))
            .collect();
        std::fs::write(&targets_file, lines.join("\n") + "\n").expect("write");
        Fleet {
            endpoints,
            ca_file,
            targets_file,
            _nginx: nginx,
        }
    }
}
