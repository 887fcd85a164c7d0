//! Workload certificates held only in mesh proxies, through the real binary: an Envoy admin
//! `/certs` answer and a Linkerd proxy's `/metrics` page served on loopback by the test; the
//! rows match what was served (and show nothing that was not); dead, slow, garbage and
//! hostile endpoints are error rows and health messages, within the timeout.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

const DAY: i64 = 86_400;

/// What the test server answers every request with.
#[derive(Clone)]
enum Answer {
    Ok(&'static str, Vec<u8>),
    Status(u16),
    /// Accept, then say nothing for this long.
    Silent(Duration),
}

/// An HTTP/1.1 server on 127.0.0.1 answering every request the same way; stopped on drop.
struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(answer: Answer) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, p) = (stop.clone(), paths.clone());
        let thread = std::thread::spawn(move || {
            for conn in l.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(mut c) = conn else { continue };
                let (a, p, s) = (answer.clone(), p.clone(), s.clone());
                std::thread::spawn(move || serve(&mut c, &a, &p, &s));
            }
        });
        Server {
            port,
            stop,
            paths,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn serve(c: &mut TcpStream, a: &Answer, paths: &std::sync::Mutex<Vec<String>>, stop: &AtomicBool) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&req);
    if let Some(path) = line.split_whitespace().nth(1) {
        paths.lock().unwrap().push(path.to_owned());
    }
    let (code, ty, body) = match a {
        Answer::Ok(ty, b) => (200, *ty, b.clone()),
        Answer::Status(code) => (*code, "text/plain", b"no".to_vec()),
        Answer::Silent(d) => {
            let end = std::time::Instant::now() + *d;
            while std::time::Instant::now() < end && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
    };
    let head = format!(
        "HTTP/1.1 {code} X\r\ncontent-type: {ty}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = c.write_all(head.as_bytes());
    let _ = c.write_all(&body);
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn now() -> i64 {
    certdeck::clock::now_unix()
}

fn ts(secs: i64) -> String {
    certdeck::clock::rfc3339(secs)
}

/// An Istio sidecar's `/certs`: its workload certificate (12 h of 24 h used) and the mesh
/// root, each in two TLS contexts, as Envoy prints them (uint64 as strings).
fn envoy_answer(t: i64) -> Vec<u8> {
    let leaf = json!({
        "path": "<inline>",
        "serial_number": "7B177C736290D0FE5527A7CCF0ECEE4C",
        "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/shop/sa/web"}],
        "days_until_expiration": "0",
        "valid_from": ts(t - 12 * 3600),
        "expiration_time": ts(t + 12 * 3600),
    });
    let root = json!({
        "path": "<inline>",
        "serial_number": "ade6c290ffcee6ded23b26cb367b258c",
        "subject_alt_names": [],
        "days_until_expiration": "3000",
        "valid_from": ts(t - 100 * DAY),
        "expiration_time": ts(t + 3000 * DAY + 3600),
    });
    serde_json::to_vec_pretty(&json!({"certificates": [
        {"ca_cert": [root.clone()], "cert_chain": [leaf.clone()]},
        {"ca_cert": [root], "cert_chain": [leaf]},
    ]}))
    .unwrap()
}

/// A Linkerd proxy's metrics page: its identity certificate expires in 20 h.
fn linkerd_page(t: i64) -> Vec<u8> {
    format!(
        "# HELP identity_cert_expiration_timestamp_seconds Time when the this proxy's current mTLS identity certificate will expire (in seconds since the UNIX epoch).\n\
         # TYPE identity_cert_expiration_timestamp_seconds gauge\n\
         identity_cert_expiration_timestamp_seconds {}\n\
         # HELP identity_cert_refresh_count The total number of times this proxy's mTLS identity certificate has been refreshed by the Identity service.\n\
         # TYPE identity_cert_refresh_count counter\n\
         identity_cert_refresh_count 4\n\
         request_total{{direction=\"inbound\",tls=\"true\",client_id=\"web.shop.serviceaccount.identity.linkerd.cluster.local\"}} 12\n",
        t + 20 * 3600
    )
    .into_bytes()
}

/// `certdeck scan ARGS -o json` with a hard cap on its run (a hang fails the test).
fn scan(args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
        .env("HOME", dir.path())
        .env("CERTDECK_CONFIG", dir.path().join("none.toml"))
        .arg("scan")
        .args(args)
        .args(["-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("certdeck scan {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let recs: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (out.status.code(), recs.as_array().unwrap().clone(), stderr)
}

fn at_loc<'a>(recs: &'a [Value], loc: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["location"] == loc)
        .unwrap_or_else(|| {
            let all: Vec<&Value> = recs.iter().map(|r| &r["location"]).collect();
            panic!("no row at {loc}: {all:#?}")
        })
}

fn secs(v: &Value) -> i64 {
    time::OffsetDateTime::parse(
        v.as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp()
}

#[test]
fn envoy_and_linkerd_proxies_are_rows_of_what_they_report_and_nothing_more() {
    let t = now();
    let envoy = Server::start(Answer::Ok("application/json", envoy_answer(t)));
    let linkerd = Server::start(Answer::Ok("text/plain; version=0.0.4", linkerd_page(t)));
    let (code, recs, stderr) = scan(&[
        "--envoy-admin",
        &envoy.url(),
        "--linkerd-proxy",
        &format!("{}/metrics", linkerd.url()),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(recs.len(), 3, "one row per certificate: {recs:#?}");
    assert_eq!(envoy.paths.lock().unwrap().as_slice(), ["/certs"]);
    assert_eq!(linkerd.paths.lock().unwrap().as_slice(), ["/metrics"]);

    let leaf = at_loc(
        &recs,
        &format!(
            "{}/certs#cert:spiffe://cluster.local/ns/shop/sa/web",
            envoy.url()
        ),
    );
    assert_eq!(leaf["source"], "proxy");
    assert!(leaf["id"].as_str().unwrap().starts_with("proxy-"));
    assert_eq!(leaf["serial"], "7b177c736290d0fe5527a7ccf0ecee4c");
    assert_eq!(
        leaf["sans"],
        json!(["URI:spiffe://cluster.local/ns/shop/sa/web"])
    );
    assert_eq!(secs(&leaf["not_before"]), t - 12 * 3600);
    assert_eq!(secs(&leaf["not_after"]), t + 12 * 3600);
    for unknown in ["sha256", "subject", "issuer", "key", "signature_algorithm"] {
        assert_eq!(leaf[unknown], Value::Null, "{unknown} was not reported");
    }
    assert_eq!(leaf["status"], "ok", "half of a 24h lifetime used");
    assert_eq!(leaf["lifetime"]["short_lived"], true);
    assert_eq!(leaf["proxy"]["proxy"], "envoy");
    assert_eq!(leaf["proxy"]["held_as"], "cert_chain");
    assert_eq!(leaf["proxy"]["contexts"], 2);
    assert_eq!(leaf["is_ca"], false);

    let root = at_loc(
        &recs,
        &format!("{}/certs#ca:ade6c290ffcee6ded23b26cb367b258c", envoy.url()),
    );
    assert_eq!(root["is_ca"], true);
    assert_eq!(root["proxy"]["held_as"], "ca_cert");
    assert_eq!(root["sha256"], Value::Null);
    assert_eq!(root["days_left"], 3000);

    let id = at_loc(&recs, &format!("{}/metrics#identity", linkerd.url()));
    assert_eq!(secs(&id["not_after"]), t + 20 * 3600);
    assert_eq!(id["not_before"], Value::Null, "the proxy does not say");
    assert_eq!(id["serial"], Value::Null);
    assert_eq!(id["sans"], json!([]));
    assert_eq!(
        id["lifetime"]["total_secs"], DAY,
        "Linkerd's default issuance lifetime"
    );
    assert_eq!(id["status"], "ok", "4h of 24h used");
    assert_eq!(id["proxy"]["proxy"], "linkerd");
    assert_eq!(id["proxy"]["refreshes"], 4);
    assert!(id["proxy"]["valid_from_basis"]
        .as_str()
        .unwrap()
        .contains("issuance lifetime 1d"));

    // With a 72h issuance lifetime, 52h of it are used: rotation overdue.
    let (code, recs, _) = scan(&[
        "--linkerd-proxy",
        &linkerd.url(),
        "--linkerd-issuance-lifetime",
        "72h",
    ]);
    assert_eq!(code, Some(2));
    assert_eq!(recs[0]["status"], "critical", "{:#}", recs[0]);
}

#[test]
fn dead_slow_garbage_and_refusing_endpoints_are_error_rows_and_health_messages() {
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let slow = Server::start(Answer::Silent(Duration::from_secs(20)));
    let html = Server::start(Answer::Ok(
        "text/html",
        b"<html>\x1b[2J\x1b]52;c;aGk=\x07admin</html>".to_vec(),
    ));
    let refusing = Server::start(Answer::Status(503));
    let not_linkerd = Server::start(Answer::Ok(
        "text/plain",
        b"process_cpu_seconds_total 1\n".to_vec(),
    ));
    let (code, recs, stderr) = scan(&[
        "--timeout",
        "1s",
        "--envoy-admin",
        &dead,
        "--envoy-admin",
        &html.url(),
        "--envoy-admin",
        &refusing.url(),
        "--linkerd-proxy",
        &slow.url(),
        "--linkerd-proxy",
        &not_linkerd.url(),
    ]);
    assert_eq!(code, Some(3), "unknown: nothing could be read; {stderr}");
    let err = |loc: &str| {
        let r = at_loc(&recs, loc);
        assert_eq!(r["status"], "error", "{r:#}");
        assert_eq!(r["source"], "proxy");
        r["error"].as_str().unwrap().to_owned()
    };
    assert!(err(&format!("{dead}/certs")).starts_with("unreachable"));
    let garbage = err(&format!("{}/certs", html.url()));
    assert!(
        garbage.starts_with("not an Envoy /certs answer: <html>"),
        "{garbage}"
    );
    assert!(
        !garbage.chars().any(|c| c.is_control()),
        "control characters are stripped: {garbage:?}"
    );
    assert!(err(&format!("{}/certs", refusing.url())).contains("HTTP 503"));
    assert_eq!(
        err(&format!("{}/metrics", slow.url())),
        "timed out after 1s"
    );
    assert!(err(&format!("{}/metrics#identity", not_linkerd.url()))
        .contains("no identity_cert_expiration_timestamp_seconds"));
    for s in [
        "proxy envoy 127.0.0.1",
        "proxy linkerd 127.0.0.1",
        "timed out",
    ] {
        assert!(stderr.contains(s), "{s:?} in the health messages: {stderr}");
    }
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn hostile_text_from_envoy_never_reaches_the_terminal() {
    let t = now();
    let evil = json!({"certificates": [{"cert_chain": [{
        "path": "/etc/\u{1b}[2Jcerts/\u{202e}evil.pem",
        "serial_number": "0a",
        "subject_alt_names": [{"dns": "a\u{1b}]52;c;aGk=\u{7}.example"}],
        "days_until_expiration": "50",
        "valid_from": ts(t - DAY),
        "expiration_time": ts(t + 50 * DAY + 3600),
    }]}]});
    let envoy = Server::start(Answer::Ok(
        "application/json",
        serde_json::to_vec(&evil).unwrap(),
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("none.toml"), "").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
        .env("HOME", dir.path())
        .env("CERTDECK_CONFIG", dir.path().join("none.toml"))
        .args([
            "scan",
            "--envoy-admin",
            &envoy.url(),
            "-o",
            "table",
            "--color",
            "never",
        ])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("proxy"), "{table}");
    assert!(
        !table
            .chars()
            .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}'),
        "{table:?}"
    );
    let (_, recs, _) = scan(&["--envoy-admin", &envoy.url()]);
    let loc = recs[0]["location"].as_str().unwrap();
    assert!(
        loc.ends_with("evil.pem") && !loc.contains('\u{1b}'),
        "{loc:?}"
    );
    assert_eq!(recs[0]["status"], "ok");
}

#[test]
fn proxies_are_read_from_the_config_file() {
    let t = now();
    let envoy = Server::start(Answer::Ok("application/json", envoy_answer(t)));
    let linkerd = Server::start(Answer::Ok("text/plain", linkerd_page(t)));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[proxies]\nenvoy_admin = [\"{}\"]\nlinkerd_proxy = [\"127.0.0.1:{}\"]\nlinkerd_issuance_lifetime = \"48h\"\n",
            envoy.url(),
            linkerd.port
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
        .env("HOME", dir.path())
        .args(["scan", "--config"])
        .arg(&cfg)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let recs: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(recs.len(), 3, "{recs:#?}");
    let id = at_loc(&recs, &format!("{}/metrics#identity", linkerd.url()));
    assert_eq!(id["lifetime"]["total_secs"], 2 * DAY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_details_of_a_proxy_row_show_what_envoy_said_and_no_pem() {
    use certdeck::sources::proxy::source::{Flavour, ProxySource, DEFAULT_LINKERD_LIFETIME};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let envoy = Server::start(Answer::Ok("application/json", envoy_answer(now())));
    let src = ProxySource::new(
        Flavour::Envoy,
        &envoy.url(),
        &certdeck::sources::ProbeSettings::default(),
        DEFAULT_LINKERD_LIFETIME,
    )
    .unwrap();
    let session = certdeck::actions::Session::new(Vec::new(), true, None);
    let mut h = crate::headless::Headless::start(vec![Arc::new(src)], session);
    h.until(15, "the Envoy rows", |a| a.fleet.len() == 2).await;
    h.app.run_command("filter sa/web");
    h.press(certdeck::app::AppEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let details = crate::k8s::mesh::screen(&h.app);
    for want in [
        "Details: spiffe://cluster.local/ns/shop/sa/web",
        "Certificate   not shown by its source: no fingerprint, subject or issuer",
        "Serial        7b177c736290d0fe5527a7ccf0ecee4c",
        "URI:spiffe://cluster.local/ns/shop/sa/web  (SPIFFE ID)",
        "PROXY",
        "Held as       certificate Envoy presents (cert_chain)",
        "TLS contexts  2",
    ] {
        assert!(details.contains(want), "{want:?} not in {details}");
    }
    for absent in ["SHA-256", "PEM (y copies it)", "Subject", "Issuer "] {
        assert!(!details.contains(absent), "{absent:?} in {details}");
    }
}
