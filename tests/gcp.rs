//! Google Certificate Manager through the real binary, against the loopback fixture in
//! tests/gcp/fixture.py (no emulator exists), reached with real Application Default
//! Credentials files (authorized user through the fixture's token endpoint, a service-account
//! key that signs its own JWT). The official Python client (`google-cloud-certificate-manager`
//! + `google-auth`, tests/gcp/client.py) reads the same fixture and must see what certdeck sees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The test venv with the official Google client, installed when missing (as tests/run.sh).
fn venv() -> PathBuf {
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
            .args([
                "-c",
                "import google.cloud.certificate_manager_v1, google.auth, cryptography",
            ])
            .status()
            .expect("python")
            .success();
        if !have {
            let ok = Command::new(v.join("bin/pip"))
                .args([
                    "install",
                    "-q",
                    "google-cloud-certificate-manager",
                    "google-auth",
                    "requests",
                    "cryptography",
                ])
                .status()
                .expect("pip")
                .success();
            assert!(
                ok,
                "pip install google-cloud-certificate-manager google-auth failed"
            );
        }
        v
    })
    .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The fixture server, stopped when dropped.
struct Fixture {
    child: Child,
    port: u16,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Fixture {
    fn start() -> Fixture {
        let port = free_port();
        let mut child = Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/gcp/fixture.py"))
            .arg(port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("fixture.py");
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.try_wait().unwrap().is_none(), "fixture.py exited");
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "fixture.py did not listen"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Fixture { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let data = body.to_string();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{data}",
            data.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    fn seed(&self, certs: Value) {
        self.call("POST", "/_seed", &json!({ "certificates": certs }));
    }

    fn control(&self, v: Value) {
        self.call("POST", "/_control", &v);
    }

    fn stats(&self) -> Value {
        self.call("GET", "/_stats", &Value::Null)
    }
}

/// A clean environment: HOME, config and state in a temp dir, no Google variables.
struct Home {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Home {
    fn new(fx: &Fixture) -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
            env: vec![("CERTDECK_GCP_ENDPOINT".into(), fx.url())],
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&mut self, k: &str, v: &str) {
        self.env.push((k.to_owned(), v.to_owned()));
    }

    /// An authorized-user ADC file (what `gcloud auth application-default login` writes),
    /// with its token endpoint on the fixture.
    fn authorized_user(&mut self, fx: &Fixture, refresh_token: &str) -> PathBuf {
        let p = self.path("adc.json");
        let v = json!({
            "type": "authorized_user",
            "client_id": "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
            "client_secret": "d-FL95Q19q7MQmFpd7hHD0Ty",
            "refresh_token": refresh_token,
            "token_uri": format!("{}/token", fx.url()),
        });
        std::fs::write(&p, v.to_string()).unwrap();
        p
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        for (k, _) in std::env::vars() {
            if k.starts_with("GOOGLE_") || k.starts_with("CLOUDSDK_") || k == "GCE_METADATA_HOST" {
                c.env_remove(k);
            }
        }
        c.env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env("CERTDECK_DATA_DIR", self.path("data"))
            .env_remove("CERTDECK_CONFIG")
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// `certdeck scan ARGS -o json`: (rows, stderr, exit code), with a hang guard.
    fn scan(&self, args: &[&str]) -> (Vec<Value>, String, i32) {
        let mut c = self.command(Path::new(env!("CARGO_BIN_EXE_certdeck")));
        c.arg("scan").args(args).args(["-o", "json"]);
        let (out, err, code) = run(&mut c);
        let rows: Vec<Value> = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
        (rows, err, code)
    }

    /// The official Python client listing the same locations.
    fn python_client(&self, fx: &Fixture, project: &str, locations: &[&str]) -> Value {
        let mut c = self.command(&venv().join("bin/python"));
        c.arg(repo().join("tests/gcp/client.py"))
            .arg(fx.url())
            .arg(project)
            .args(locations);
        let (out, err, code) = run(&mut c);
        assert_eq!(code, 0, "client.py failed: {err}");
        serde_json::from_str(&out).unwrap()
    }
}

fn run(cmd: &mut Command) -> (String, String, i32) {
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
            panic!("command hung (over 120 s)");
        }
    };
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// A self-signed certificate for `name` valid `days`: (PEM, key PEM, DER).
fn cert(name: &str, days: i64) -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::minutes(5);
    p.not_after = now + time::Duration::days(days);
    let c = p.self_signed(&key).unwrap();
    (c.pem(), key.serialize_pem(), c.der().to_vec())
}

fn rfc3339_in(days: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn sha256_hex(der: &[u8]) -> String {
    certdeck::model::cert::sha256_hex(der)
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:#?}"))
}

const P: &str = "projects/shop/locations";

/// A fleet of every kind: self-managed with PEMs, managed ACTIVE / PROVISIONING with a failed
/// authorization / FAILED, in `global` and `us-central1`.
fn seed_fleet(fx: &Fixture) -> Vec<Vec<u8>> {
    let (web, web_key, web_der) = cert("www.shop.example", 80);
    let (api, api_key, api_der) = cert("api.shop.example", 5);
    let (eu, eu_key, eu_der) = cert("eu.shop.example", 200);
    let (managed_pem, _, _) = cert("cdn.shop.example", 60);
    fx.seed(json!([
        {"name": format!("{P}/global/certificates/web"), "description": "storefront",
         "selfManaged": {"pemCertificate": web, "pemPrivateKey": web_key},
         "usedBy": [{"name": "//certificatemanager.googleapis.com/projects/shop/locations/global/certificateMaps/main/certificateMapEntries/www"}]},
        {"name": format!("{P}/global/certificates/api"),
         "selfManaged": {"pemCertificate": api, "pemPrivateKey": api_key}},
        {"name": format!("{P}/global/certificates/cdn"),
         "pemCertificate": managed_pem, "expireTime": rfc3339_in(60), "sanDnsnames": ["cdn.shop.example"],
         "managed": {"domains": ["cdn.shop.example"], "state": "ACTIVE",
                     "authorizationAttemptInfo": [{"domain": "cdn.shop.example", "state": "AUTHORIZED"}]}},
        {"name": format!("{P}/global/certificates/stuck"),
         "expireTime": rfc3339_in(12), "updateTime": "2026-11-20T08:00:00Z",
         "managed": {"domains": ["shop.example", "old.shop.example"], "state": "PROVISIONING",
                     "provisioningIssue": {"reason": "AUTHORIZATION_ISSUE", "details": "DNS \u{1b}[31mrecord missing"},
                     "authorizationAttemptInfo": [
                        {"domain": "shop.example", "state": "AUTHORIZED"},
                        {"domain": "old.shop.example", "state": "FAILED", "failureReason": "CONFIG",
                         "details": "The domain does not resolve to the load balancer"}]}},
        {"name": format!("{P}/global/certificates/broken"),
         "managed": {"domains": ["gone.shop.example"], "state": "FAILED",
                     "provisioningIssue": {"reason": "RATE_LIMITED"},
                     "authorizationAttemptInfo": [{"domain": "gone.shop.example", "state": "AUTHORIZING"}]}},
        {"name": format!("{P}/us-central1/certificates/eu"),
         "selfManaged": {"pemCertificate": eu, "pemPrivateKey": eu_key}},
    ]));
    vec![web_der, api_der, eu_der]
}

/// Managed states and stuck reasons, self-managed PEMs, usedBy, paging in two locations:
/// what certdeck shows is what the official Python client reads from the same fixture.
#[test]
fn scan_reads_managed_and_self_managed_certificates_paged_like_the_official_client() {
    let fx = Fixture::start();
    let ders = seed_fleet(&fx);
    fx.control(json!({"page_cap": 2, "refresh_tokens": ["1//refresh-ok"]}));
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//refresh-ok");
    home.set("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap());

    let (rows, err, code) = home.scan(&["--gcp-project", "shop", "--gcp-location", "us-central1"]);
    assert!(err.is_empty(), "no problem expected: {err}");
    let gcp: Vec<&Value> = rows.iter().filter(|r| r["source"] == "gcp").collect();
    assert_eq!(gcp.len(), 6, "{rows:#?}");
    // Paged: 5 certificates in global at 2 a page is 3 pages, 1 in us-central1 is 1.
    let stats = fx.stats();
    assert_eq!(stats["list_calls"], 4, "{stats}");
    assert!(
        stats["tokens"].as_u64().unwrap() >= 1,
        "token endpoint used: {stats}"
    );
    assert!(code != 0, "the 5-day certificate is critical: exit {code}");
    assert_eq!(stats["int_enums"], 0, "certdeck reads enums as strings");

    // Self-managed: the leaf from pemCertificate, its SHA-256 and expiry from the DER.
    let web = row(&rows, &format!("{P}/global/certificates/web"));
    assert_eq!(web["sha256"], sha256_hex(&ders[0]));
    assert_eq!(web["gcp"]["type"], "self-managed");
    assert_eq!(web["gcp"]["project"], "shop");
    assert_eq!(web["gcp"]["location"], "global");
    assert!(web["gcp"]["used_by"][0]
        .as_str()
        .unwrap()
        .ends_with("certificateMapEntries/www"));
    assert!(web["gcp"]["renewal"]
        .as_str()
        .unwrap()
        .starts_with("self-managed"));
    let api = row(&rows, &format!("{P}/global/certificates/api"));
    assert_eq!(api["sha256"], sha256_hex(&ders[1]));
    assert_eq!(api["gcp"]["used_by"], json!([]));
    let eu = row(&rows, &format!("{P}/us-central1/certificates/eu"));
    assert_eq!(eu["sha256"], sha256_hex(&ders[2]));
    assert_eq!(eu["gcp"]["location"], "us-central1");

    // Managed: ACTIVE renews by itself; PROVISIONING with a failed authorization is stuck and
    // overdue inside the window, and says for which domain since when; FAILED says why.
    let cdn = row(&rows, &format!("{P}/global/certificates/cdn"));
    assert_eq!(cdn["gcp"]["type"], "google-managed");
    assert_eq!(cdn["gcp"]["state"], "ACTIVE");
    assert!(cdn["gcp"]["renewal"]
        .as_str()
        .unwrap()
        .starts_with("Google-managed: renews automatically from 30 days before expiry"));
    assert_eq!(cdn["gcp"]["renewal_overdue"], false);
    let stuck = row(&rows, &format!("{P}/global/certificates/stuck"));
    assert_eq!(stuck["gcp"]["state"], "PROVISIONING");
    assert_eq!(stuck["gcp"]["issue_reason"], "AUTHORIZATION_ISSUE");
    assert_eq!(
        stuck["gcp"]["renewal"],
        "Google-managed: failed authorization for old.shop.example (CONFIG) since 2026-11-20"
    );
    assert_eq!(stuck["gcp"]["renewal_overdue"], true);
    assert!(
        !stuck["gcp"]["issue_details"]
            .as_str()
            .unwrap()
            .contains('\u{1b}'),
        "control characters are stripped"
    );
    assert_eq!(
        stuck["gcp"]["authorizations"][1]["failure_reason"],
        "CONFIG"
    );
    assert!(
        stuck["error"].is_null(),
        "no body yet is not an error while provisioning"
    );
    let broken = row(&rows, &format!("{P}/global/certificates/broken"));
    assert_eq!(broken["gcp"]["state"], "FAILED");
    assert_eq!(
        broken["gcp"]["renewal"],
        "Google-managed: provisioning failed (RATE_LIMITED)"
    );

    // The official client reads the same certificates, states and reasons from the fixture.
    let py = home.python_client(&fx, "shop", &["global", "us-central1"]);
    let mut py_names: Vec<String> = py["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let mut ours: Vec<String> = gcp
        .iter()
        .map(|r| r["location"].as_str().unwrap().to_owned())
        .collect();
    py_names.sort();
    ours.sort();
    assert_eq!(py_names, ours);
    assert_eq!(
        py["pages"], 4,
        "the official client pages the same way: {py}"
    );
    for c in py["certificates"].as_array().unwrap() {
        let r = row(&rows, c["name"].as_str().unwrap());
        match c.get("state") {
            Some(s) => assert_eq!(&r["gcp"]["state"], s, "{c}"),
            None => assert_eq!(r["gcp"]["type"], "self-managed", "{c}"),
        }
        assert_eq!(r["gcp"]["used_by"], c["used_by"], "{c}");
        if let Some(i) = c.get("issue") {
            assert_eq!(&r["gcp"]["issue_reason"], i);
        }
        if let Some(a) = c.get("authorizations") {
            let ours: Vec<Value> = r["gcp"]["authorizations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| json!([x["domain"], x["state"]]))
                .collect();
            let theirs: Vec<Value> = a
                .as_array()
                .unwrap()
                .iter()
                .map(|x| json!([x["domain"], x["state"]]))
                .collect();
            assert_eq!(ours, theirs);
        }
        if c["has_pem"] == true {
            let exp = certdeck::sources::gcp::facts::parse_time(c["expire_time"].as_str().unwrap());
            assert_eq!(r["gcp"]["expire_time"].as_i64(), exp, "{c}");
        }
    }
    // The Python client asked for int enums (`$alt=json;enum-encoding=int`) and was answered
    // so; both authenticated with tokens from the token endpoint.
    let stats = fx.stats();
    assert!(stats["int_enums"].as_u64().unwrap() >= 4, "{stats}");
    assert!(stats["auth"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a == "token"));
}

/// A service-account key signs its own JWT; a denied location is one problem naming the
/// permission and the resource while the other location loads; 429 is retried after
/// Retry-After; a page failing half way leaves the first page's rows and says so.
#[test]
fn service_account_denied_location_throttling_and_a_failing_page() {
    let fx = Fixture::start();
    seed_fleet(&fx);
    let mut home = Home::new(&fx);
    let key = home.path("sa.key");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap()
        .success();
    assert!(ok, "openssl genpkey");
    let email = "certdeck-reader@shop.iam.gserviceaccount.com";
    let sa = json!({
        "type": "service_account",
        "project_id": "shop",
        "private_key_id": "0123456789abcdef0123456789abcdef01234567",
        "private_key": std::fs::read_to_string(&key).unwrap(),
        "client_email": email,
        "client_id": "100000000000000000001",
        "token_uri": format!("{}/token", fx.url()),
    });
    let sa_path = home.path("sa.json");
    std::fs::write(&sa_path, sa.to_string()).unwrap();
    home.set("GOOGLE_APPLICATION_CREDENTIALS", sa_path.to_str().unwrap());
    fx.control(json!({"emails": [email], "deny": [format!("{P}/europe-west1")], "throttle": 2}));

    let (rows, err, _) = home.scan(&["--gcp-project", "shop", "--gcp-location", "europe-west1"]);
    assert_eq!(
        rows.iter().filter(|r| r["source"] == "gcp").count(),
        5,
        "{err}"
    );
    assert!(
        err.contains("gcp shop/europe-west1: certificatemanager.certs.list denied on projects/shop/locations/europe-west1: PERMISSION_DENIED"),
        "{err}"
    );
    assert!(!err.contains("shop/global"), "global loaded: {err}");
    let stats = fx.stats();
    assert_eq!(stats["throttled"], 2, "429s answered and retried: {stats}");
    assert!(
        stats["auth"].as_array().unwrap().iter().any(|a| a == "jwt"),
        "{stats}"
    );
    assert_eq!(stats["tokens"], 0, "the service account signs its own JWT");

    // Throttled for good: a problem saying so, not an empty success.
    fx.control(json!({"deny": [], "throttle": 100}));
    let (rows, err, code) = home.scan(&["--gcp-project", "shop"]);
    assert!(rows.iter().all(|r| r["source"] != "gcp"));
    assert!(err.contains("gcp shop/global: certificates.list: throttled (HTTP 429), still throttled after 4 attempts"), "{err}");
    assert_eq!(code, 3);

    // The second page fails: the first page's rows are there, the rest is a problem.
    fx.control(json!({"throttle": 0, "page_cap": 2, "fail_page": {"parent": format!("{P}/global"), "page": 2}}));
    let (rows, err, _) = home.scan(&["--gcp-project", "shop"]);
    assert_eq!(
        rows.iter().filter(|r| r["source"] == "gcp").count(),
        2,
        "{rows:#?}"
    );
    assert!(
        err.contains("page 2 failed after 2 certificates were read"),
        "{err}"
    );
    assert!(err.contains("HTTP 500 INTERNAL"), "{err}");

    // A certificate whose PEM does not parse is an error row; the others still load.
    fx.control(json!({"fail_page": null, "broken_pem": [format!("{P}/global/certificates/web")]}));
    let (rows, err, _) = home.scan(&["--gcp-project", "shop"]);
    assert!(err.is_empty(), "{err}");
    let web = row(&rows, &format!("{P}/global/certificates/web"));
    assert!(
        web["error"]
            .as_str()
            .unwrap()
            .starts_with("pemCertificate does not parse"),
        "{web}"
    );
    assert_eq!(rows.iter().filter(|r| r["source"] == "gcp").count(), 5);
}

/// No credentials anywhere, a refresh token the token endpoint refuses, a slow endpoint: each
/// is one health message naming what is missing, quickly, with no token in it.
#[test]
fn missing_or_rejected_credentials_and_a_slow_endpoint_are_health_messages() {
    let fx = Fixture::start();
    seed_fleet(&fx);
    // Nothing: no variable, no gcloud ADC file, no metadata server (a closed port).
    let mut home = Home::new(&fx);
    home.set("GCE_METADATA_HOST", &format!("127.0.0.1:{}", free_port()));
    let t = Instant::now();
    let (rows, err, code) = home.scan(&["--gcp-project", "shop"]);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(code, 3);
    assert!(
        err.contains("gcp shop/global: no Google credentials"),
        "{err}"
    );
    assert!(
        err.contains("GOOGLE_APPLICATION_CREDENTIALS is not set"),
        "{err}"
    );
    assert!(
        err.contains("application_default_credentials.json"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "quickly: {:?}",
        t.elapsed()
    );

    // gcloud's ADC file in its well-known place is found without the variable.
    fx.control(json!({"refresh_tokens": ["1//gcloud"]}));
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//gcloud");
    std::fs::create_dir_all(home.path(".config/gcloud")).unwrap();
    std::fs::copy(
        &adc,
        home.path(".config/gcloud/application_default_credentials.json"),
    )
    .unwrap();
    home.set("GCE_METADATA_HOST", &format!("127.0.0.1:{}", free_port()));
    let (rows, err, _) = home.scan(&["--gcp-project", "shop"]);
    assert!(err.is_empty(), "{err}");
    assert_eq!(rows.iter().filter(|r| r["source"] == "gcp").count(), 5);

    // A refresh token the token endpoint refuses: credentials, not a crash, and no secret.
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//revoked-refresh-token-value");
    home.set("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap());
    let (rows, err, code) = home.scan(&["--gcp-project", "shop"]);
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(err.contains("no Google credentials"), "{err}");
    assert!(err.contains("cannot get an access token"), "{err}");
    assert!(!err.contains("revoked-refresh-token-value"), "{err}");
    assert!(!err.contains("d-FL95Q19q7MQmFpd7hHD0Ty"), "{err}");

    // A token the API rejects (401) and a slow endpoint past the timeout.
    fx.control(json!({"refresh_tokens": ["1//ok"], "slow": 3}));
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//ok");
    home.set("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap());
    let (rows, err, _) = home.scan(&["--gcp-project", "shop", "--timeout", "1s"]);
    assert!(rows.is_empty());
    assert!(
        err.contains("gcp shop/global: certificates.list: timed out after 1s"),
        "{err}"
    );
    assert!(!err.contains("ya29"), "{err}");
}

/// `certdeck --config CFG ARGS`: (stdout, stderr, exit code).
fn certdeck(home: &Home, cfg: &Path, args: &[&str]) -> (String, String, i32) {
    let mut c = home.command(Path::new(env!("CARGO_BIN_EXE_certdeck")));
    c.arg("--config").arg(cfg).args(args);
    run(&mut c)
}

fn scan_rows(home: &Home, cfg: &Path) -> Vec<Value> {
    let (out, err, _) = certdeck(home, cfg, &["scan", "-o", "json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"))
}

fn write(home: &Home, name: &str, text: &str) -> PathBuf {
    let p = home.path(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn not_after_of(der: &[u8]) -> i64 {
    certdeck::model::CertFacts::from_der(der).unwrap().not_after
}

/// Through the binary and the action framework: `renew ID --dry-run` previews the upload
/// (the certificate, its names, old and new expiry, every `usedBy` consumer, the API calls)
/// and sends nothing; a key that is not the certificate's, a certificate that does not cover
/// the current names, and a Google-managed certificate are refused at plan time with the
/// reason; a denied PATCH and an operation that ends in error leave the old certificate in
/// place and name the step; `renew ID --yes` uploads, follows the long-running operation and
/// verifies by re-reading; the audit log has every run, with no key material.
#[test]
fn renew_uploads_a_renewed_certificate_into_a_self_managed_one_verified_and_audited() {
    let fx = Fixture::start();
    let (web_old, web_old_key, web_old_der) = cert("www.shop.example", 5);
    let (web_new, web_new_key, web_new_der) = cert("www.shop.example", 90);
    let (api_old, api_old_key, _) = cert("api.shop.example", 5);
    let (api_new, _, _) = cert("api.shop.example", 90);
    let (_, stray_key, _) = cert("stray.example", 90);
    let (eu_old, eu_old_key, _) = cert("eu.shop.example", 5);
    let (elsewhere, elsewhere_key, _) = cert("elsewhere.example", 90);
    let entry = |n: &str| {
        format!("//certificatemanager.googleapis.com/projects/shop/locations/global/certificateMaps/main/certificateMapEntries/{n}")
    };
    let web = format!("{P}/global/certificates/web");
    let api = format!("{P}/global/certificates/api");
    let eu = format!("{P}/us-central1/certificates/eu");
    let stuck = format!("{P}/global/certificates/stuck");
    fx.seed(json!([
        {"name": web, "selfManaged": {"pemCertificate": web_old, "pemPrivateKey": web_old_key},
         "usedBy": [{"name": entry("www")}, {"name": entry("www-ipv6")}]},
        {"name": api, "selfManaged": {"pemCertificate": api_old, "pemPrivateKey": api_old_key}},
        {"name": eu, "selfManaged": {"pemCertificate": eu_old, "pemPrivateKey": eu_old_key}},
        {"name": stuck, "expireTime": rfc3339_in(12), "updateTime": "2026-11-20T08:00:00Z",
         "managed": {"domains": ["old.shop.example"], "state": "PROVISIONING",
                     "provisioningIssue": {"reason": "AUTHORIZATION_ISSUE"},
                     "authorizationAttemptInfo": [{"domain": "old.shop.example", "state": "FAILED", "failureReason": "CONFIG"}]}},
    ]));
    fx.control(json!({"refresh_tokens": ["1//refresh-ok"], "op_polls": 2}));
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//refresh-ok");
    home.set("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap());
    let files = [
        write(&home, "web.pem", &web_new),
        write(&home, "web.key", &web_new_key),
        write(&home, "api.pem", &api_new),
        write(&home, "stray.key", &stray_key),
        write(&home, "elsewhere.pem", &elsewhere),
        write(&home, "elsewhere.key", &elsewhere_key),
    ];
    let f = |i: usize| files[i].display().to_string();
    let cfg = write(
        &home,
        "certdeck.toml",
        &format!(
            "[[gcp]]\nproject = \"shop\"\nlocations = [\"us-central1\"]\n\
             [[gcp.upload]]\nname = \"{web}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
             [[gcp.upload]]\nname = \"{api}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
             [[gcp.upload]]\nname = \"{eu}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            f(0),
            f(1),
            f(2),
            f(3),
            f(4),
            f(5)
        ),
    );
    let rows = scan_rows(&home, &cfg);
    let id = |name: &str| row(&rows, name)["id"].as_str().unwrap().to_owned();
    let patches = || fx.stats()["patches"].as_array().unwrap().len();
    let clock = certdeck::clock::rfc3339;

    // The preview: the certificate, names, old -> new expiry, consumers, calls. Nothing sent.
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&web), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "Upload www.shop.example (renewed): {web} in context projects/shop/locations/global"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "expires:    {} -> {}",
            clock(not_after_of(&web_old_der)),
            clock(not_after_of(&web_new_der))
        )),
        "{out}"
    );
    assert!(out.contains("names:      DNS:www.shop.example"), "{out}");
    assert!(
        out.contains(&entry("www")) && out.contains(&entry("www-ipv6")),
        "{out}"
    );
    assert!(
        out.contains(&format!("PATCH v1/{web}?updateMask=selfManaged")),
        "{out}"
    );
    assert!(
        out.contains(&format!("new sha256: {}", sha256_hex(&web_new_der))),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    assert_eq!(patches(), 0);

    // Refused at plan time, with the reason, nothing sent: a key that is not the
    // certificate's, names that do not cover the current ones, a Google-managed certificate.
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&api), "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("does not belong to the certificate"), "{err}");
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&eu), "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("does not cover eu.shop.example"), "{err}");
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&stuck), "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("takes no upload"), "{err}");
    assert!(
        err.contains("failed authorization for old.shop.example (CONFIG)"),
        "{err}"
    );
    assert_eq!(patches(), 0, "nothing was sent for refused plans");

    // The PATCH is denied: step write, the permission named, the old certificate in place.
    fx.control(json!({"deny_update": [format!("{P}/global")]}));
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&web), "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "step write: certificatemanager.certs.update denied on projects/shop/locations/global"
        ),
        "{out}"
    );
    assert!(
        out.contains("the previous certificate stays in service"),
        "{out}"
    );
    let r = scan_rows(&home, &cfg);
    assert_eq!(row(&r, &web)["sha256"], sha256_hex(&web_old_der));

    // The operation ends in error: step wait, the API's message, the old certificate in place.
    fx.control(json!({"deny_update": [], "op_error": {"code": 13, "message": "internal error while storing the certificate"}}));
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&web), "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("step wait: Certificate Manager refused the update (code 13: internal error while storing the certificate)"),
        "{out}"
    );
    let r = scan_rows(&home, &cfg);
    assert_eq!(row(&r, &web)["sha256"], sha256_hex(&web_old_der));

    // The upload: PATCH, operations.get until done (two "running" answers first), verified.
    fx.control(json!({"op_error": null, "op_polls": 2}));
    let gets_before = fx.stats()["operation_gets"].as_u64().unwrap();
    let (out, err, code) = certdeck(&home, &cfg, &["renew", &id(&web), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let stats = fx.stats();
    assert!(
        stats["operation_gets"].as_u64().unwrap() - gets_before >= 3,
        "the operation was followed until done: {stats}"
    );
    let last = stats["patches"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["mask"], json!(["selfManaged"]));
    assert_eq!(
        last["self_managed_keys"],
        json!(["pemCertificate", "pemPrivateKey"])
    );
    let r = scan_rows(&home, &cfg);
    let w = row(&r, &web);
    assert_eq!(w["sha256"], sha256_hex(&web_new_der));
    assert_eq!(
        w["gcp"]["expire_time"].as_i64(),
        Some(not_after_of(&web_new_der))
    );
    assert_eq!(w["gcp"]["used_by"].as_array().unwrap().len(), 2);

    // The audit log: the two failures with their steps, the success with the fingerprints
    // before and after; never key material.
    let audit = std::fs::read_to_string(home.path("data/audit.jsonl")).unwrap();
    for k in [&web_new_key, &web_old_key, &stray_key] {
        let body: String = k.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!audit.contains(&body[..40]), "no key in the audit log");
    }
    assert!(!audit.contains("PRIVATE KEY"));
    let recs: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["action"] == "gcp-upload")
        .collect();
    let failed: Vec<&str> = recs
        .iter()
        .filter(|r| r["outcome"] == "failed")
        .map(|r| r["failed_step"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["write", "wait"], "{audit}");
    let ok = recs
        .iter()
        .find(|r| r["outcome"] == "succeeded")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(ok["before_sha256"], sha256_hex(&web_old_der));
    assert_eq!(ok["after_sha256"], sha256_hex(&web_new_der));
    assert_eq!(ok["location"], web.as_str());
    assert_eq!(ok["after_not_after"], clock(not_after_of(&web_new_der)));
}

/// The official client drives the same update against the fixture: `update_certificate`
/// with `update_mask=self_managed` (as gcloud's `certificates update --certificate-file
/// --private-key-file`), its long-running operation followed to the end, the certificate read
/// back. Its request has the shape certdeck's has (mask, body), a mismatched key gets the
/// API's 400, and what it reads back is the uploaded certificate.
#[test]
fn the_official_client_drives_the_same_update_against_the_fixture() {
    let fx = Fixture::start();
    let (old, old_key, _) = cert("www.shop.example", 5);
    let (new, new_key, new_der) = cert("www.shop.example", 90);
    let web = format!("{P}/global/certificates/web");
    fx.seed(
        json!([{"name": web, "selfManaged": {"pemCertificate": old, "pemPrivateKey": old_key}}]),
    );
    fx.control(json!({"refresh_tokens": ["1//refresh-ok"], "op_polls": 1}));
    let mut home = Home::new(&fx);
    let adc = home.authorized_user(&fx, "1//refresh-ok");
    home.set("GOOGLE_APPLICATION_CREDENTIALS", adc.to_str().unwrap());
    let cert_file = write(&home, "new.pem", &new);
    let key_file = write(&home, "new.key", &new_key);
    let old_key_file = write(&home, "old.key", &old_key);
    let update = |key: &Path| {
        let mut c = home.command(&venv().join("bin/python"));
        c.arg(repo().join("tests/gcp/client.py"))
            .arg("update")
            .arg(fx.url())
            .arg(&web)
            .arg(&cert_file)
            .arg(key);
        let (out, err, code) = run(&mut c);
        assert_eq!(code, 0, "client.py update failed: {err}");
        serde_json::from_str::<Value>(&out).unwrap()
    };
    // A key that is not the certificate's: the API's 400, the certificate untouched.
    let got = update(&old_key_file);
    assert_eq!(got["error"]["code"], 400, "{got}");
    assert!(
        got["error"]["message"]
            .as_str()
            .unwrap()
            .contains("The private key does not match the certificate."),
        "{got}"
    );
    assert_ne!(got["sha256"], sha256_hex(&new_der));
    // The update, followed through its operation.
    let got = update(&key_file);
    assert!(got["error"].is_null(), "{got}");
    assert_eq!(got["result_name"], web.as_str());
    assert_eq!(got["sha256"], sha256_hex(&new_der));
    assert_eq!(got["san_dnsnames"], json!(["www.shop.example"]));
    assert!(
        got["operation"]
            .as_str()
            .unwrap()
            .starts_with("projects/shop/locations/global/operations/"),
        "{got}"
    );
    let py = fx.stats()["patches"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();

    // certdeck's upload of the same files sends the same request.
    fx.seed(
        json!([{"name": web, "selfManaged": {"pemCertificate": old, "pemPrivateKey": old_key}}]),
    );
    let cfg = write(
        &home,
        "certdeck.toml",
        &format!(
            "[[gcp]]\nproject = \"shop\"\n[[gcp.upload]]\nname = \"{web}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
            cert_file.display(),
            key_file.display()
        ),
    );
    let rows = scan_rows(&home, &cfg);
    let id = row(&rows, &web)["id"].as_str().unwrap().to_owned();
    let (out, err, code) = certdeck(&home, &cfg, &["action", "upload", &id, "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let ours = fx.stats()["patches"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    for k in ["name", "mask", "body_keys", "self_managed_keys", "auth"] {
        assert_eq!(
            ours[k], py[k],
            "{k}: certdeck {ours} vs the official client {py}"
        );
    }
    let rows = scan_rows(&home, &cfg);
    assert_eq!(row(&rows, &web)["sha256"], sha256_hex(&new_der));
}
