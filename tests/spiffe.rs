//! The SPIFFE Workload API source through the real binary, against the test agent in
//! tests/spiffe/agent.py (no SPIRE agent installs here): a gRPC server on a Unix socket written
//! on the generated stubs of PyPI `spiffe`, refusing calls without `workload.spiffe.io: true`
//! as SPIRE does, issuing SVIDs from a test CA and pushing rotations on the open stream. The
//! official py-spiffe client (tests/spiffe/client.py) reads the same agent and must see the
//! same SPIFFE IDs, serials and bundles as certdeck.
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

/// The test venv with py-spiffe, grpcio and cryptography, installed when missing (as
/// tests/run.sh does).
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
                "import spiffe._proto.workload_pb2_grpc, grpc, cryptography",
            ])
            .status()
            .expect("python")
            .success();
        if !have {
            let ok = Command::new(v.join("bin/pip"))
                .args(["install", "-q", "spiffe", "grpcio", "cryptography"])
                .status()
                .expect("pip")
                .success();
            assert!(ok, "pip install spiffe grpcio cryptography failed");
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

/// Poll `f` until it gives a value; panic naming `what` after `limit` (a hang guard).
fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let t = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t.elapsed() < limit, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The test agent on `DIR/agent.sock`, stopped when dropped.
struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn start(config: Value) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            // Other users must reach the socket's directory (the permission test).
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let child = Agent::spawn(dir.path());
        let mut a = Agent { child, dir };
        a.wait_ready();
        a
    }

    fn spawn(dir: &Path) -> Child {
        Command::new(venv().join("bin/python"))
            .arg(repo().join("tests/spiffe/agent.py"))
            .arg(dir.join("agent.sock"))
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("agent.py")
    }

    fn wait_ready(&mut self) {
        let ready = self.dir.path().join("ready.json");
        let child = &mut self.child;
        until("agent.py listens", Duration::from_secs(30), || {
            assert!(child.try_wait().unwrap().is_none(), "agent.py exited");
            ready.exists().then_some(())
        });
    }

    /// Stop the agent (its socket file stays, as after a crash).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.path().join("ready.json"));
    }

    /// Start it again on the same socket: a new CA, new SVIDs.
    fn restart(&mut self) {
        self.child = Agent::spawn(self.dir.path());
        self.wait_ready();
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn socket_str(&self) -> String {
        self.socket().display().to_string()
    }

    fn read(&self, name: &str) -> Value {
        let p = self.dir.path().join(name);
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn issued(&self) -> Value {
        self.read("issued.json")
    }

    fn stats(&self) -> Value {
        self.read("stats.json")
    }

    fn control(&self, name: &str, content: &str) {
        std::fs::write(self.dir.path().join(name), content).unwrap();
    }

    fn mode(&self, m: &str) {
        self.control("mode", m);
    }

    /// Re-issue every SVID and push the new answer on the open streams; the new issue.
    fn rotate(&self) -> Value {
        let v = self.issued()["version"].as_i64().unwrap();
        self.control("rotate", "");
        until("the agent re-issued", Duration::from_secs(10), || {
            let i = self.issued();
            (i["version"].as_i64().unwrap() > v).then_some(i)
        })
    }

    /// The serial the agent issued for `id` (hex, no leading zeros).
    fn serial(issued: &Value, id: &str) -> String {
        let s = issued["svids"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not issued: {issued}"));
        hex(&s["serial"])
    }

    /// The py-spiffe client's view of the agent.
    fn python_client(&self, raw: bool) -> Value {
        let mut c = Command::new(venv().join("bin/python"));
        c.arg(repo().join("tests/spiffe/client.py"))
            .arg(self.socket());
        if raw {
            c.arg("--raw");
        }
        let (out, err, code) = run(&mut c);
        assert_eq!(code, 0, "client.py failed: {err}");
        serde_json::from_str(&out).unwrap()
    }
}

/// A serial as hex without leading zeros (certdeck strips only a sign-padding byte).
fn hex(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a serial: {v}"))
        .trim_start_matches('0')
        .to_owned()
}

/// An environment of its own: HOME, config and state in a temp dir, no SPIFFE variable.
struct Home {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Home {
    fn new() -> Home {
        let dir = tempfile::tempdir().unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        }
        Home {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn set(&mut self, k: &str, v: &str) {
        self.env.push((k.to_owned(), v.to_owned()));
    }

    fn config(&mut self, text: &str) {
        let p = self.path("config.toml");
        std::fs::write(&p, text).unwrap();
        self.set("CERTDECK_CONFIG", p.to_str().unwrap());
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_remove("SPIFFE_ENDPOINT_SOCKET")
            .env_remove("CERTDECK_CONFIG")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("XDG_STATE_HOME", self.path("xdg-state"))
            .env("CERTDECK_DATA_DIR", self.path("data"))
            .env("NO_COLOR", "1");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn scan_with(&self, mut c: Command, args: &[&str]) -> (Vec<Value>, String, i32) {
        c.arg("scan").args(args).args(["-o", "json"]);
        let (out, err, code) = run(&mut c);
        let rows: Vec<Value> = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
        (rows, err, code)
    }

    /// `certdeck scan ARGS -o json`: (rows, stderr, exit code).
    fn scan(&self, args: &[&str]) -> (Vec<Value>, String, i32) {
        self.scan_with(
            self.command(Path::new(env!("CARGO_BIN_EXE_certdeck"))),
            args,
        )
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

const TD: &str = "example.test";
const WEB: &str = "spiffe://example.test/ns/shop/sa/web";
const DB: &str = "spiffe://example.test/ns/shop/sa/db";
const SHORT: &str = "spiffe://example.test/ns/batch/sa/job";

/// Two day-long SVIDs (one with a hint), a one-hour SVID 45 minutes into its life (75% used:
/// past the 70% at which rotation is overdue), and a federated trust domain.
fn fleet() -> Value {
    json!({
        "trust_domain": TD,
        "svids": [
            {"id": WEB, "hint": "internal", "lifetime": 86400, "age": 600},
            {"id": DB, "lifetime": 86400, "age": 600},
            {"id": SHORT, "lifetime": 3600, "age": 2700},
        ],
        "federated": ["partner.test"],
    })
}

fn rows_of<'a>(rows: &'a [Value], location: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["location"] == location).collect()
}

fn row<'a>(rows: &'a [Value], location: &str) -> &'a Value {
    let v = rows_of(rows, location);
    assert_eq!(v.len(), 1, "one row for {location} in {rows:#?}");
    v[0]
}

/// Every SVID with its SPIFFE ID as the location, its serial as issued, its chain and hint;
/// every trust bundle CA per trust domain; the one-hour SVID judged by lifetime used. The
/// official py-spiffe client sees the same identities, serials and bundles; a call without
/// the security header is refused by the agent (so certdeck's succeeding calls carry it).
#[test]
fn scan_reads_every_svid_and_bundle_as_the_py_spiffe_client_sees_them() {
    let agent = Agent::start(fleet());
    let issued = agent.issued();
    let home = Home::new();
    let socket = format!("unix://{}", agent.socket_str());
    let (rows, err, code) = home.scan(&["--spiffe-socket", &socket]);
    assert!(err.is_empty(), "no problem expected: {err}");
    assert_eq!(code, 2, "the overdue one-hour SVID is critical");
    assert!(rows.iter().all(|r| r["source"] == "spiffe"), "{rows:#?}");
    assert_eq!(rows.len(), 5, "3 SVIDs and 2 bundle CAs: {rows:#?}");

    for id in [WEB, DB, SHORT] {
        let r = row(&rows, id);
        assert_eq!(hex(&r["serial"]), Agent::serial(&issued, id), "{r:#}");
        assert_eq!(r["sans"], json!([format!("URI:{id}")]));
        assert!(r["error"].is_null(), "{r:#}");
        assert_eq!(r["spiffe"]["role"], "svid");
        assert_eq!(r["spiffe"]["trust_domain"], TD);
        assert_eq!(r["spiffe"]["socket"], agent.socket_str());
        // The chain the agent sent after the SVID: the intermediate.
        assert_eq!(hex(&r["chain"][0]["serial"]), hex(&issued["intermediate"]));
    }
    assert_eq!(row(&rows, WEB)["spiffe"]["hint"], "internal");
    assert!(row(&rows, DB)["spiffe"]["hint"].is_null());
    assert_eq!(row(&rows, WEB)["status"], "ok");
    let short = row(&rows, SHORT);
    assert_eq!(short["status"], "critical", "{short:#}");
    assert_eq!(short["lifetime"]["short_lived"], true);
    assert_eq!(short["lifetime"]["total_secs"], 3600);
    assert!(
        short["lifetime"]["note"]
            .as_str()
            .unwrap()
            .ends_with("of 1h lifetime used; rotation overdue"),
        "{short:#}"
    );
    let own = row(&rows, "spiffe://example.test (trust bundle)");
    assert_eq!(own["spiffe"]["role"], "trust_bundle");
    assert_eq!(own["spiffe"]["federated"], false);
    assert_eq!(own["is_ca"], true);
    assert_eq!(
        hex(&own["serial"]),
        hex(&issued["bundles"][TD][0]),
        "{own:#}"
    );
    let fed = row(&rows, "spiffe://partner.test (trust bundle)");
    assert_eq!(fed["spiffe"]["federated"], true);
    assert_eq!(
        hex(&fed["serial"]),
        hex(&issued["bundles"]["partner.test"][0])
    );

    // py-spiffe reads the same SPIFFE IDs, serials and bundles.
    let py = agent.python_client(false);
    let mut theirs: Vec<(String, String)> = py["svids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap().to_owned(), hex(&s["serial"])))
        .collect();
    let mut ours: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["spiffe"]["role"] == "svid")
        .map(|r| {
            (
                r["location"].as_str().unwrap().to_owned(),
                hex(&r["serial"]),
            )
        })
        .collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
    for (td, serials) in py["bundles"].as_object().unwrap() {
        let ours: Vec<String> = rows_of(&rows, &format!("spiffe://{td} (trust bundle)"))
            .iter()
            .map(|r| hex(&r["serial"]))
            .collect();
        let theirs: Vec<String> = serials.as_array().unwrap().iter().map(hex).collect();
        assert_eq!(ours, theirs, "bundle of {td}");
    }
    assert_eq!(py["bundles"].as_object().unwrap().len(), 2);

    // The agent refuses a call without the security header, as SPIRE does.
    assert_eq!(agent.stats()["refused"], 0, "certdeck sends the header");
    let raw = agent.python_client(true);
    assert_eq!(raw["code"], "INVALID_ARGUMENT", "{raw}");
    assert_eq!(raw["details"], "security header missing from request");
    assert_eq!(agent.stats()["refused"], 1);
}

/// `--spiffe` reads SPIFFE_ENDPOINT_SOCKET (and says so when it is not set); `[[spiffe]]`
/// blocks are read when the command line names nothing, each its own source labelled as
/// the block says.
#[test]
fn the_spiffe_flag_reads_the_variable_and_config_blocks_name_their_sources() {
    let agent = Agent::start(fleet());
    let mut home = Home::new();
    let (rows, err, code) = home.scan(&["--spiffe"]);
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(
        err.contains("spiffe SPIFFE_ENDPOINT_SOCKET: SPIFFE_ENDPOINT_SOCKET is not set"),
        "{err}"
    );

    home.set(
        "SPIFFE_ENDPOINT_SOCKET",
        &format!("unix://{}", agent.socket_str()),
    );
    let (rows, err, _) = home.scan(&["--spiffe"]);
    assert!(err.is_empty(), "{err}");
    assert_eq!(rows.len(), 5);
    assert_eq!(
        hex(&row(&rows, WEB)["serial"]),
        Agent::serial(&agent.issued(), WEB)
    );

    // Config blocks: the agent's socket as "prod-agent", and one nobody listens on.
    let gone = home.path("gone.sock");
    home.config(&format!(
        "[[spiffe]]\nsocket = \"unix://{}\"\nlabel = \"prod-agent\"\n\n[[spiffe]]\nsocket = \"{}\"\nlabel = \"old-agent\"\n",
        agent.socket_str(),
        gone.display()
    ));
    let (rows, err, code) = home.scan(&[]);
    assert_eq!(rows.len(), 5, "{err}");
    assert_eq!(
        code, 2,
        "the critical SVID outranks the failing source: {err}"
    );
    assert!(
        err.contains(&format!(
            "spiffe old-agent: no Workload API socket at {}",
            gone.display()
        )),
        "{err}"
    );
    assert!(!err.contains("prod-agent"), "{err}");
    // The agent denying an identity: named by the label.
    agent.mode("deny");
    let (_, err, _) = home.scan(&[]);
    assert!(
        err.contains("spiffe prod-agent: the agent issued no identity to this workload (PermissionDenied: no identity issued)"),
        "{err}"
    );
}

/// `certdeck serve` with an hour between rounds: each rotation the agent pushes on the open
/// stream is in /metrics at once, on the same row, without a new call; a stream the agent
/// ends is reopened; an agent that goes away is a failing source, and when it is back (a new
/// CA) the feed reconnects by itself and the new SVIDs and bundle replace the old ones.
#[test]
fn a_rotation_pushed_on_the_open_stream_reaches_serve_without_a_refresh() {
    let mut agent = Agent::start(fleet());
    let mut home = Home::new();
    home.config("[refresh.spiffe]\ninterval = \"1h\"\n");
    let port = free_port();
    let mut serve = home
        .command(Path::new(env!("CARGO_BIN_EXE_certdeck")))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--extra-label",
            "id",
        ])
        .args(["--spiffe-socket", &agent.socket_str()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut serve);
    let metrics = || -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    };
    // (row id, serial) of a location in /metrics.
    let seen = |location: &str| -> Vec<(String, String)> {
        let text = metrics();
        let mut v: Vec<(String, String)> = text
            .lines()
            .filter(|l| l.starts_with("x509_cert_not_after{"))
            .filter(|l| l.contains(&format!("location=\"{location}\"")))
            .map(|l| {
                let label = |k: &str| {
                    let start = l.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
                    l[start..start + l[start..].find('"').unwrap()].to_owned()
                };
                (
                    label("id"),
                    label("serial_number").trim_start_matches('0').to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let state = || -> Option<String> {
        metrics()
            .lines()
            .find(|l| l.starts_with("certdeck_source_state{") && l.ends_with(" 1"))
            .and_then(|l| l.split("state=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .map(str::to_owned)
    };
    let serial_of = |issued: &Value| Agent::serial(issued, WEB);
    let first = agent.issued();
    let (web_id, _) = until(
        "the first round in /metrics",
        Duration::from_secs(30),
        || seen(WEB).into_iter().find(|(_, s)| *s == serial_of(&first)),
    );
    // The round's call and the live feed's: only the feed's stream stays open.
    until("the stream is open", Duration::from_secs(30), || {
        let s = agent.stats();
        (s["calls"] == 2 && s["open_streams"] == 1).then_some(())
    });
    let calls = agent.stats()["calls"].clone();

    // A rotation pushed on the open stream.
    let second = agent.rotate();
    until(
        "the rotated SVID in /metrics",
        Duration::from_secs(30),
        || (seen(WEB) == vec![(web_id.clone(), serial_of(&second))]).then_some(()),
    );
    assert_eq!(
        agent.stats()["calls"],
        calls,
        "the rotation came on the open stream, not from a new call"
    );
    for id in [DB, SHORT] {
        assert_eq!(seen(id)[0].1, Agent::serial(&second, id));
    }

    // The agent ends the stream: the feed reopens it, and the next rotation still arrives.
    agent.control("break", "");
    until("the stream reopened", Duration::from_secs(30), || {
        let s = agent.stats();
        (s["calls"].as_i64() > calls.as_i64() && s["open_streams"].as_i64() == Some(1))
            .then_some(())
    });
    let third = agent.rotate();
    until(
        "a rotation after the stream broke",
        Duration::from_secs(30),
        || (seen(WEB) == vec![(web_id.clone(), serial_of(&third))]).then_some(()),
    );
    until("ok again", Duration::from_secs(30), || {
        (state().as_deref() == Some("ok")).then_some(())
    });

    // The agent goes away: a failing source, its rows kept.
    let old_ca = seen("spiffe://example.test (trust bundle)");
    agent.kill();
    until("the source failing", Duration::from_secs(30), || {
        (state().as_deref() == Some("failing")).then_some(())
    });
    assert_eq!(seen(WEB), vec![(web_id.clone(), serial_of(&third))]);
    // Back, with a new CA and new SVIDs: the feed reconnects without a refresh.
    agent.restart();
    let fourth = agent.issued();
    until("the new agent's SVID", Duration::from_secs(60), || {
        (seen(WEB) == vec![(web_id.clone(), serial_of(&fourth))]).then_some(())
    });
    let new_ca = hex(&fourth["bundles"][TD][0]);
    until(
        "the old CA replaced by the new",
        Duration::from_secs(30),
        || {
            let now = seen("spiffe://example.test (trust bundle)");
            (now.len() == 1 && now[0].1 == new_ca).then_some(())
        },
    );
    assert_ne!(old_ca, seen("spiffe://example.test (trust bundle)"));
    until("ok once more", Duration::from_secs(60), || {
        (state().as_deref() == Some("ok")).then_some(())
    });
}

/// Each way a Workload API fails is one health message naming the socket (or, for one
/// SVID, an error row beside the others), quickly, and never a hang.
#[test]
fn failure_modes_are_health_messages_or_error_rows_and_never_hang() {
    let agent = Agent::start(fleet());
    let home = Home::new();
    let sock = agent.socket_str();

    // No socket there.
    let missing = home.path("nowhere/agent.sock");
    let (rows, err, code) = home.scan(&["--spiffe-socket", missing.to_str().unwrap()]);
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "spiffe {0}: no Workload API socket at {0}",
            missing.display()
        )),
        "{err}"
    );
    // A socket file nobody listens on.
    let stale = home.path("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let (_, err, code) = home.scan(&["--spiffe-socket", stale.to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(
        err.contains("nothing listens on the Workload API socket"),
        "{err}"
    );
    // Not a socket address at all.
    let (_, err, code) = home.scan(&["--spiffe-socket", "http://agent.example/"]);
    assert_eq!(code, 3);
    assert!(
        err.contains("invalid Workload API socket 'http://agent.example/'"),
        "{err}"
    );

    // The agent knows no identity for this workload.
    agent.mode("deny");
    let (rows, err, code) = home.scan(&["--spiffe-socket", &sock]);
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "spiffe {sock}: the agent issued no identity to this workload (PermissionDenied: no identity issued)"
        )),
        "{err}"
    );
    // The agent answering another error.
    agent.mode("unavailable");
    let (_, err, _) = home.scan(&["--spiffe-socket", &sock]);
    assert!(
        err.contains("answered Unavailable: the agent is starting"),
        "{err}"
    );

    // An agent that accepts the call and never answers: the round's time limit.
    agent.mode("hang");
    let t = Instant::now();
    let (rows, err, code) = home.scan(&["--spiffe-socket", &sock, "--timeout", "2s"]);
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "spiffe {sock}: the Workload API at {sock} did not"
        )) && err.contains("within 2 s"),
        "{err}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "time-boxed: {:?}",
        t.elapsed()
    );

    // An SVID whose certificate does not parse: an error row; the rest still loads.
    agent.mode("bad_der");
    let (rows, err, _) = home.scan(&["--spiffe-socket", &sock]);
    assert!(err.is_empty(), "{err}");
    let web = row(&rows, WEB);
    assert!(
        web["error"]
            .as_str()
            .unwrap()
            .starts_with("the X.509-SVID does not parse"),
        "{web:#}"
    );
    assert_eq!(web["status"], "error");
    assert!(row(&rows, DB)["error"].is_null());
    assert_eq!(rows.len(), 5);

    agent.mode("ok");
    let (rows, err, _) = home.scan(&["--spiffe-socket", &sock]);
    assert!(err.is_empty() && rows.len() == 5, "{err}");
}

/// A socket certdeck's user may not write to: a health message that says who certdeck runs as
/// and who owns the socket. As root (CI) the binary runs as `nobody`; as anyone else the
/// socket is made unwritable to its owner.
#[test]
fn a_socket_certdeck_may_not_use_is_a_permission_message() {
    use std::os::unix::fs::PermissionsExt;
    let agent = Agent::start(fleet());
    let home = Home::new();
    let sock = agent.socket_str();
    let root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(home.dir.path()).unwrap().uid() == 0
    };
    let (rows, err, code) = if root {
        std::fs::set_permissions(agent.socket(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut c = home.command(Path::new("runuser"));
        c.args(["-u", "nobody", "--", env!("CARGO_BIN_EXE_certdeck")]);
        home.scan_with(c, &["--spiffe-socket", &sock])
    } else {
        std::fs::set_permissions(agent.socket(), std::fs::Permissions::from_mode(0o000)).unwrap();
        home.scan(&["--spiffe-socket", &sock])
    };
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains(&format!(
            "spiffe {sock}: permission denied on the Workload API socket {sock}: certdeck runs as uid"
        )),
        "{err}"
    );
    assert!(err.contains("connecting needs write permission"), "{err}");
    if root {
        assert!(err.contains("runs as uid 65534"), "{err}");
        assert!(err.contains("owned by uid 0 gid 0 with mode 600"), "{err}");
    }
}

/// The dashboard in tmux: the `spiffe://` filter keeps one identity, its details name the
/// SPIFFE ID and the serial, and a rotation pushed by the agent replaces the serial on the
/// open details with an hour between rounds.
#[test]
fn the_dashboard_filters_by_spiffe_id_and_shows_a_pushed_rotation() {
    let agent = Agent::start(fleet());
    let mut home = Home::new();
    home.config("[refresh.spiffe]\ninterval = \"1h\"\n");
    let tmux = |args: &[&str]| -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(format!("certdeck-spiffe-{}", std::process::id()))
            .args(args)
            .output()
            .expect("tmux (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    struct Server<F: Fn(&[&str]) -> String>(F);
    impl<F: Fn(&[&str]) -> String> Drop for Server<F> {
        fn drop(&mut self) {
            (self.0)(&["kill-server"]);
        }
    }
    let t = Server(tmux);
    let h = home.dir.path().display();
    let script = format!(
        "env -u SPIFFE_ENDPOINT_SOCKET HOME={h} XDG_CONFIG_HOME={h}/xdg XDG_STATE_HOME={h}/state CERTDECK_CONFIG={h}/config.toml TERM=xterm-256color {} --spiffe-socket {}; echo EXITED:$?; sleep 60",
        env!("CARGO_BIN_EXE_certdeck"),
        agent.socket_str()
    );
    (t.0)(&[
        "new-session",
        "-d",
        "-s",
        "spiffe",
        "-x",
        "200",
        "-y",
        "40",
        &script,
    ]);
    let screen = || (t.0)(&["capture-pane", "-p", "-t", "spiffe"]);
    let keys = |k: &[&str]| {
        for k in k {
            (t.0)(&["send-keys", "-t", "spiffe", k]);
            std::thread::sleep(Duration::from_millis(150));
        }
    };
    let wait = |what: &str, f: &dyn Fn(&str) -> bool| {
        until(what, Duration::from_secs(30), || {
            let s = screen();
            f(&s).then_some(s)
        })
    };
    wait("the SVIDs", &|s| s.contains(WEB) && s.contains(SHORT));
    keys(&["/"]);
    (t.0)(&[
        "send-keys",
        "-t",
        "spiffe",
        "-l",
        "spiffe://example.test/ns/shop/sa/web",
    ]);
    keys(&["Enter"]);
    let s = wait("the filter", &|s| s.contains("1/5"));
    assert!(s.contains(WEB) && !s.contains(SHORT), "{s}");
    keys(&["Enter"]);
    let first = Agent::serial(&agent.issued(), WEB);
    let s = wait("the details", &|s| s.contains("SPIFFE ID"));
    assert!(
        s.contains(&format!("SPIFFE ID     {WEB}  (trust domain {TD})")),
        "{s}"
    );
    assert!(s.contains("internal"), "the hint: {s}");
    let shown = |s: &str, serial: &str| {
        s.lines()
            .any(|l| l.contains("Serial") && l.trim_start_matches(|c| c != 'S').contains(serial))
    };
    assert!(shown(&s, &first), "{first}: {s}");
    let second = Agent::serial(&agent.rotate(), WEB);
    let s = wait("the rotated serial", &|s| shown(s, &second));
    assert!(!shown(&s, &first), "{s}");
    keys(&["Escape", "Escape", "q"]);
    let s = wait("exit", &|s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}
