//! Test peers for the Azure tests: the loopback Key Vault + Entra ID fixture
//! (tests/azure/kv_fixture.py) over HTTPS with a test CA, the official Python SDK driving it
//! (tests/azure/sdk_client.py), and the certdeck binary with a clean Azure environment.
//! Everything on 127.0.0.1; the fixture is stopped by PID when its guard drops.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const CLIENT_ID: &str = "0b8e9d5a-1111-4c3b-9a6e-certdeck0001";
pub const SECRET: &str = "fixture-secret-Q7~never-printed";
/// The token the stand-in `az` prints (the fixture accepts it).
pub const CLI_TOKEN: &str = "cli-token-7f3e9a";
pub const FEDERATED: &str = "eyJhbGciOiJSUzI1NiJ9.fixture-federated-token.sig";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv with the Azure SDK (tests/run.sh installs the same).
pub fn venv() -> PathBuf {
    static DONE: OnceLock<PathBuf> = OnceLock::new();
    DONE.get_or_init(|| {
        let v = repo().join("target/testenv");
        if !v.join("bin/python").exists() {
            let ok = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&v)
                .status()
                .expect("python3")
                .success();
            assert!(ok, "python3 -m venv failed");
        }
        let have = Command::new(v.join("bin/python"))
            .args(["-c", "import azure.keyvault.certificates, azure.identity"])
            .status()
            .expect("python")
            .success();
        if !have {
            let ok = Command::new(v.join("bin/pip"))
                .args([
                    "install",
                    "-q",
                    "azure-keyvault-certificates",
                    "azure-identity",
                ])
                .status()
                .expect("pip")
                .success();
            assert!(
                ok,
                "pip install azure-keyvault-certificates azure-identity failed"
            );
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

/// A test CA and a server certificate for 127.0.0.1 and localhost, as files.
pub struct TestCa {
    pub dir: tempfile::TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut cp = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        cp.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        cp.distinguished_name
            .push(rcgen::DnType::CommonName, "certdeck azure test CA");
        let ca = cp.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(cp, &ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let p =
            rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let c = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), c.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), key.serialize_pem()).unwrap();
        TestCa { dir }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// A certificate (DER) for `name`, valid from `from_days` (negative: in the past) for
/// `days` days.
pub fn der(name: &str, from_days: i64, days: i64) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now + time::Duration::days(from_days);
    p.not_after = p.not_before + time::Duration::days(days);
    p.self_signed(&key).unwrap().der().to_vec()
}

pub fn b64(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

pub fn sha256_hex(der: &[u8]) -> String {
    certdeck::model::cert::sha256_hex(der)
}

/// A policy as Key Vault stores it: `issuer` and one lifetime action.
pub fn policy(issuer: &str, action: &str, pct: Option<i64>, days: Option<i64>) -> Value {
    let trigger = match (pct, days) {
        (_, Some(d)) => json!({"days_before_expiry": d}),
        (Some(p), None) => json!({"lifetime_percentage": p}),
        _ => json!({}),
    };
    json!({
        "key_props": {"exportable": true, "kty": "EC", "crv": "P-256", "reuse_key": false},
        "secret_props": {"contentType": "application/x-pem-file"},
        "x509_props": {"subject": "CN=shop.example.com", "sans": {"dns_names": ["shop.example.com"]},
                        "validity_months": 12},
        "lifetime_actions": [{"trigger": trigger, "action": {"action_type": action}}],
        "issuer": {"name": issuer}
    })
}

/// The fixture, on a free port.
pub struct Fixture {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fixture {
    /// Start with `certificates` (each `{name, policy, versions: [{version, der_b64, enabled}],
    /// pending}`).
    pub fn start(ca: &TestCa, certificates: Value) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let seed = json!({
            "tenant": TENANT, "client_id": CLIENT_ID, "client_secret": SECRET,
            "federated_token": FEDERATED, "certificates": certificates,
            "static_tokens": [CLI_TOKEN],
        });
        std::fs::write(dir.path().join("seed.json"), seed.to_string()).unwrap();
        std::fs::write(dir.path().join("control.json"), "{}").unwrap();
        let log = std::fs::File::create(dir.path().join("fixture.log")).unwrap();
        let mut child = Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/azure/kv_fixture.py"))
            .arg(port.to_string())
            .arg(ca.dir.path().join("server.pem"))
            .arg(ca.dir.path().join("server.key"))
            .arg(dir.path().join("seed.json"))
            .arg(dir.path().join("control.json"))
            .arg(dir.path().join("stats.json"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "kv_fixture.py exited: {st}: {}",
                    std::fs::read_to_string(dir.path().join("fixture.log")).unwrap_or_default()
                );
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "fixture did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Fixture { port, dir, child }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }

    pub fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub fn control(&self, v: Value) {
        let p = self.dir.path().join("control.json");
        std::fs::write(p.with_extension("tmp"), v.to_string()).unwrap();
        std::fs::rename(p.with_extension("tmp"), p).unwrap();
    }

    pub fn stats(&self) -> Value {
        let s = std::fs::read_to_string(self.dir.path().join("stats.json")).unwrap();
        serde_json::from_str(&s).unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("fixture.log")).unwrap_or_default()
    }
}

/// A clean home for certdeck and the Python SDK: no Azure variables from the caller, a config
/// file naming the vault, the test CA trusted.
pub struct Home {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Home {
    /// Service-principal credentials for `fx`, and a config `[[azure]]` block for its vault
    /// (challenge resource check off: the fixture is not `*.vault.azure.net`).
    pub fn new(fx: &Fixture, ca: &TestCa) -> Home {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "[[azure]]\nvault = \"{}\"\nverify_challenge_resource = false\ntimeout = \"5s\"\n",
            fx.url()
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let env = vec![
            ("AZURE_AUTHORITY_HOST".to_owned(), fx.authority()),
            ("AZURE_TENANT_ID".to_owned(), TENANT.to_owned()),
            ("AZURE_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
            ("AZURE_CLIENT_SECRET".to_owned(), SECRET.to_owned()),
            (
                "REQUESTS_CA_BUNDLE".to_owned(),
                ca.ca().display().to_string(),
            ),
        ];
        Home { dir, env }
    }

    pub fn set(&mut self, k: &str, v: &str) {
        self.env.retain(|(a, _)| a != k);
        self.env.push((k.to_owned(), v.to_owned()));
    }

    pub fn unset(&mut self, k: &str) {
        self.env.retain(|(a, _)| a != k);
    }

    /// A stand-in for the Azure CLI on PATH (azure-cli is not installed here): it answers
    /// `az account get-access-token -o json --scope S` as the real one does after `az login`,
    /// and records its arguments.
    pub fn fake_az(&mut self) {
        let bin = self.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let az = bin.join("az");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> {}\nexp=$(( $(date +%s) + 3600 ))\nprintf '{{\"accessToken\": \"%s\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", \"expires_on\": %s, \"subscription\": \"sub\", \"tenant\": \"{TENANT}\", \"tokenType\": \"Bearer\"}}\\n' {CLI_TOKEN} $exp\n",
            self.path("az-args").display()
        );
        std::fs::write(&az, script).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&az, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        self.set("PATH", &path);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn apply(&self, cmd: &mut Command) {
        for (k, _) in std::env::vars() {
            if k.starts_with("AZURE_")
                || k.starts_with("MSI_")
                || k.starts_with("IDENTITY_")
                || k.starts_with("CERTDECK_")
            {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", self.dir.path())
            .env("CERTDECK_CONFIG", self.path("config.toml"))
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

    /// tests/azure/sdk_client.py ARGS (the official Python SDK), which must succeed.
    pub fn sdk(&self, args: &[&str]) -> Value {
        let mut c = Command::new(venv().join("bin/python"));
        self.apply(&mut c);
        let out = c
            .arg(repo().join("tests/azure/sdk_client.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sdk_client.py {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Run a command with a hang guard; (stdout, stderr, exit code).
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
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(o) => o.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("certdeck hung (over 120 s)");
        }
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `certdeck scan ARGS -o json --ca-file CA`: (rows, stderr, exit code).
pub fn scan_json(home: &Home, ca: &TestCa, args: &[&str]) -> (Vec<Value>, String, i32) {
    let ca = ca.ca();
    let (out, err, code) = run(home
        .certdeck()
        .arg("scan")
        .arg("--ca-file")
        .arg(&ca)
        .args(args)
        .args(["-o", "json"]));
    let rows: Vec<Value> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    (rows, err, code)
}

pub fn azure_rows(rows: &[Value]) -> Vec<&Value> {
    rows.iter().filter(|r| r["source"] == "azure").collect()
}

pub fn row<'a>(rows: &'a [Value], location: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == location)
        .unwrap_or_else(|| panic!("no row for {location} in {rows:#?}"))
}

pub fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}
