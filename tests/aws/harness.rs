//! Test peers for the AWS tests: moto's server, the loopback fixture proxy in front of it
//! (tests/aws/acm_proxy.py), boto3 seeding (tests/aws/seed.py), the AWS CLI, shared config
//! files, and the certdeck binary with a clean AWS environment. Everything on 127.0.0.1,
//! every process stopped by PID when its guard drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ACCOUNT: &str = "123456789012";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv (`target/testenv`), installed here when missing (tests/run.sh does the same).
pub fn venv() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let v = repo().join("target/testenv");
        let ready = v.join("bin/moto_server").exists() && v.join("bin/aws").exists();
        if !ready {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&v)
                .status()
                .expect("python3")
                .success();
            assert!(ok, "python3 -m venv failed");
            let ok = Command::new(v.join("bin/pip"))
                .args(["install", "-q", "moto[server]", "boto3", "awscli"])
                .status()
                .expect("pip")
                .success();
            assert!(ok, "pip install moto[server] boto3 awscli failed");
        }
        v
    })
    .clone()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, child: &mut Child, what: &str) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on {port}");
}

/// A child process killed (by its PID) when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// moto's server on a free loopback port.
pub struct Moto {
    pub port: u16,
    _child: Guard,
}

impl Moto {
    pub fn start(env: &[(&str, &str)]) -> Moto {
        let port = free_port();
        let mut cmd = Command::new(venv().join("bin/moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ACM_VALIDATION_WAIT", "3600")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("moto_server");
        wait_port(port, &mut child, "moto_server");
        Moto {
            port,
            _child: Guard(child),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// The fixture proxy in front of moto.
pub struct Proxy {
    pub port: u16,
    pub state: PathBuf,
    _dir: tempfile::TempDir,
    _child: Guard,
}

impl Proxy {
    pub fn start(moto: &Moto) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.json");
        std::fs::write(&state, "{}").unwrap();
        let port = free_port();
        let mut child = Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/aws/acm_proxy.py"))
            .args([port.to_string(), moto.port.to_string()])
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("acm_proxy.py");
        wait_port(port, &mut child, "acm_proxy.py");
        Proxy {
            port,
            state,
            _dir: dir,
            _child: Guard(child),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Replace the fixture's state (overlays, faults, paging).
    pub fn set(&self, v: Value) {
        let tmp = self.state.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&v).unwrap()).unwrap();
        std::fs::rename(&tmp, &self.state).unwrap();
    }

    /// Counts per operation, key ids per operation, ListCertificates requests.
    pub fn stats(&self) -> Value {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /__stats HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        let body = buf.split("\r\n\r\n").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }
}

/// A temporary home with AWS shared config and credentials files, and commands (certdeck,
/// aws, seeding) run with only what it sets: every AWS_* variable of the test process is
/// removed, IMDS is disabled (no traffic off loopback).
pub struct AwsHome {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Default for AwsHome {
    fn default() -> Self {
        Self::new()
    }
}

impl AwsHome {
    pub fn new() -> AwsHome {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config"), "").unwrap();
        std::fs::write(dir.path().join("credentials"), "").unwrap();
        AwsHome {
            dir,
            env: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Append a `[profile NAME]` to the config file.
    pub fn profile(&self, name: &str, lines: &[(&str, &str)]) {
        let mut t = std::fs::read_to_string(self.path("config")).unwrap();
        t.push_str(&format!("[profile {name}]\n"));
        for (k, v) in lines {
            t.push_str(&format!("{k} = {v}\n"));
        }
        std::fs::write(self.path("config"), t).unwrap();
    }

    /// Append static keys for `name` to the credentials file.
    pub fn keys(&self, name: &str, key_id: &str, secret: &str) {
        let mut t = std::fs::read_to_string(self.path("credentials")).unwrap();
        t.push_str(&format!(
            "[{name}]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
        ));
        std::fs::write(self.path("credentials"), t).unwrap();
    }

    /// A profile with static keys, a region and an `endpoint_url`.
    pub fn static_profile(&self, name: &str, endpoint: &str, key_id: &str, secret: &str) {
        self.profile(name, &[("region", "us-east-1"), ("endpoint_url", endpoint)]);
        self.keys(name, key_id, secret);
    }

    pub fn set_env(&mut self, k: &str, v: &str) {
        self.env.push((k.to_owned(), v.to_owned()));
    }

    fn apply(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env_remove("CERTDECK_CONFIG")
            .env("AWS_CONFIG_FILE", self.path("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.path("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("NO_COLOR", "1")
            .env("CERTDECK_DATA_DIR", self.path("data"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    pub fn certdeck(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_certdeck"));
        self.apply(&mut c);
        c
    }

    pub fn aws(&self, args: &[&str]) -> Output {
        let mut c = Command::new(venv().join("bin/aws"));
        self.apply(&mut c);
        c.args(args).output().expect("aws cli")
    }

    /// `aws ARGS --output json` that must succeed, parsed.
    pub fn aws_json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["--output", "json"]);
        let o = self.aws(&a);
        assert!(
            o.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// Run tests/aws/seed.py (boto3) against `endpoint` with the given keys.
pub fn seed(endpoint: &str, key_id: &str, secret: &str, ops: Value) -> Value {
    let mut c = Command::new(venv().join("bin/python"));
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .arg(repo().join("tests/aws/seed.py"))
        .env("AWS_ACCESS_KEY_ID", key_id)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            serde_json::json!({"endpoint": endpoint, "ops": ops})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "seed.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A self-signed certificate (PEM, key PEM, DER) for `name`, valid for `days`.
pub fn cert(
    name: &str,
    days: i64,
    alg: &'static rcgen::SignatureAlgorithm,
) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(days);
    let c = p.self_signed(&key).unwrap();
    (c.pem(), key.serialize_pem(), c.der().to_vec())
}

/// A CA (PEM, key PEM) and a leaf it signs for `name` (PEM, key PEM, DER).
pub struct Issued {
    pub ca_pem: String,
    pub ca_key: String,
    pub pem: String,
    pub key: String,
    pub der: Vec<u8>,
}

pub fn issued(name: &str, days: i64) -> Issued {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    cp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    cp.distinguished_name
        .push(rcgen::DnType::CommonName, "certdeck test root");
    let ca = cp.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(cp, &ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(days);
    let c = p.signed_by(&key, &issuer).unwrap();
    Issued {
        ca_pem: ca.pem(),
        ca_key: ca_key.serialize_pem(),
        pem: c.pem(),
        key: key.serialize_pem(),
        der: c.der().to_vec(),
    }
}

pub fn sha256_hex(der: &[u8]) -> String {
    certdeck::model::cert::sha256_hex(der)
}

/// Run certdeck with `args`, with a hang guard; (stdout, stderr, exit code).
pub fn run(cmd: &mut Command) -> (String, String, i32) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(180)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("certdeck hung (over 180 s)");
        }
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `certdeck scan ARGS -o json` rows.
pub fn scan_json(home: &AwsHome, args: &[&str]) -> (Vec<Value>, String, i32) {
    let (out, err, code) = run(home.certdeck().arg("scan").args(args).args(["-o", "json"]));
    let rows: Vec<Value> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (rows, err, code)
}

/// Rows of one region / kind.
pub fn aws_rows<'a>(rows: &'a [Value], kind: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["source"] == "aws" && r["aws"]["kind"] == kind)
        .collect()
}

pub fn row<'a>(rows: &'a [Value], arn: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == arn)
        .unwrap_or_else(|| panic!("no row for {arn} in {rows:#?}"))
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}
