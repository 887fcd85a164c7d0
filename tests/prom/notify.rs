//! `certdeck scan --notify NAME`: a real Alertmanager (its own API shows the alert, then its
//! resolution), and webhook receivers in the test for the JSON and Slack payloads, retries
//! and failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::peers::{self, client, Proc};

/// An HTTP receiver that records each request's body; the first `fail` requests get 500.
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    hits: Arc<Mutex<usize>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn receiver(fail: usize) -> Receiver {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(Mutex::new(0usize));
    let (b, h) = (bodies.clone(), hits.clone());
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let body = loop {
                let n = match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break None,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break Some(
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned(),
                        );
                    }
                }
            };
            let Some(body) = body else { continue };
            let n = {
                let mut h = h.lock().unwrap();
                *h += 1;
                *h
            };
            let reply: &[u8] = if n <= fail {
                b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b.lock().unwrap().push(body);
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            };
            let _ = s.write_all(reply).await;
            let _ = s.shutdown().await;
        }
    });
    Receiver {
        port,
        bodies,
        hits,
        _task: task,
    }
}

fn cert_pem(cn: &str, days_left: i64) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p = rcgen::CertificateParams::new(vec![format!("{cn}.test")]).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(100);
    p.not_after = now + time::Duration::days(days_left);
    p.self_signed(&key).expect("cert").pem()
}

struct Env {
    dir: tempfile::TempDir,
    config: String,
    state: String,
}

impl Env {
    async fn scan(&self, notify: &[&str]) -> (i32, String, String) {
        let certs = self.dir.path().join("certs").display().to_string();
        let mut args = vec![
            "--config",
            &self.config,
            "scan",
            "-f",
            &certs,
            "--no-revocation",
            "-o",
            "json",
        ];
        for n in notify {
            args.push("--notify");
            args.push(n);
        }
        crate::common::run_bin_env(&args, &[("XDG_STATE_HOME", &self.state)]).await
    }
}

async fn alerts(am: &Proc) -> Vec<serde_json::Value> {
    client()
        .get(format!("{}/api/v2/alerts", am.url()))
        .send()
        .await
        .expect("alertmanager")
        .json()
        .await
        .expect("json")
}

fn unix(t: &serde_json::Value) -> i64 {
    time::OffsetDateTime::parse(
        t.as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time")
    .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_and_resolve_in_alertmanager_and_webhooks_get_changes_only() {
    let dir = tempfile::tempdir().expect("dir");
    let am_port = peers::free_port();
    let am_conf = dir.path().join("alertmanager.yml");
    std::fs::write(
        &am_conf,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .expect("write");
    let am = Proc::start(
        dir.path(),
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_conf.display()),
            format!("--storage.path={}", dir.path().join("am").display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".to_owned(),
        ],
        am_port,
    );
    let hook = receiver(0).await;
    let slack = receiver(0).await;
    let flaky = receiver(1).await;
    let dead = crate::common::closed_port();
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::write(certs.join("old.pem"), cert_pem("old", -2)).expect("write");
    std::fs::write(certs.join("fine.pem"), cert_pem("fine", 300)).expect("write");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[notify]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\n\n\
             [[notify]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{}/services/T/B/X\"\n\n\
             [[notify]]\nname = \"am\"\nkind = \"alertmanager\"\nurl = \"http://127.0.0.1:{am_port}\"\n\n\
             [[notify]]\nname = \"flaky\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/\"\n\n\
             [[notify]]\nname = \"dead\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{dead}/\"\ntimeout = \"2s\"\n",
            hook.port, slack.port, flaky.port
        ),
    )
    .expect("write");
    let env = Env {
        config: config.display().to_string(),
        state: dir.path().join("state").display().to_string(),
        dir,
    };

    // First run: one problem, news to everyone.
    let (code, out, err) = env.scan(&["hook", "chat", "am"]).await;
    assert_eq!(code, 2, "an expired certificate: {err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("json");
    let old = rows
        .iter()
        .find(|r| r["subject"] == "CN=old")
        .expect("old row");
    let old_id = old["id"].as_str().expect("id").to_owned();
    assert!(err.contains("notify 'hook': certdeck: 1 new"), "{err}");
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1);
    let p: serde_json::Value = serde_json::from_str(&bodies[0]).expect("payload");
    assert_eq!(p["version"], 1);
    assert_eq!(p["summary"], "certdeck: 1 new");
    assert_eq!(p["changes"].as_array().expect("changes").len(), 1);
    let c = &p["changes"][0];
    assert_eq!(
        (c["change"].as_str(), c["status"].as_str()),
        (Some("new"), Some("expired"))
    );
    assert_eq!(c["id"], old_id.as_str());
    assert_eq!(c["subject"], "CN=old");
    let s: serde_json::Value =
        serde_json::from_str(&slack.bodies.lock().unwrap()[0]).expect("slack");
    let text = s["text"].as_str().expect("text");
    assert!(
        text.starts_with("certdeck: 1 new") && text.contains("*EXPIRED*"),
        "{text}"
    );
    let a = alerts(&am).await;
    let mine: Vec<&serde_json::Value> = a
        .iter()
        .filter(|x| x["labels"]["id"] == old_id.as_str())
        .collect();
    assert_eq!(mine.len(), 1, "{a:?}");
    assert_eq!(mine[0]["labels"]["severity"], "critical");
    assert_eq!(mine[0]["labels"]["alertname"], "CertdeckCertificate");
    assert_eq!(mine[0]["status"]["state"], "active");
    assert!(unix(&mine[0]["endsAt"]) > certdeck::clock::now_unix() + 3600);

    // Nothing changed: nothing is sent.
    let (_, _, err) = env.scan(&["hook", "chat", "am"]).await;
    assert!(!err.contains("notify '"), "{err}");
    assert_eq!(hook.bodies.lock().unwrap().len(), 1);
    assert_eq!(slack.bodies.lock().unwrap().len(), 1);

    // Renewed: resolved everywhere, and Alertmanager's alert ends.
    std::fs::write(env.dir.path().join("certs/old.pem"), cert_pem("old", 200)).expect("write");
    let (code, _, err) = env.scan(&["hook", "chat", "am"]).await;
    assert_eq!(code, 0, "{err}");
    let bodies = hook.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "{err}");
    let p: serde_json::Value = serde_json::from_str(&bodies[1]).expect("payload");
    assert_eq!(p["changes"][0]["change"], "resolved");
    assert_eq!(p["changes"][0]["previous_status"], "expired");
    let start = std::time::Instant::now();
    loop {
        let a = alerts(&am).await;
        let active = a.iter().any(|x| {
            x["labels"]["id"] == old_id.as_str() && unix(&x["endsAt"]) > certdeck::clock::now_unix()
        });
        if !active {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never resolved: {a:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A failed delivery is retried within the run...
    std::fs::write(env.dir.path().join("certs/soon.pem"), cert_pem("soon", 3)).expect("write");
    let (_, _, err) = env.scan(&["flaky"]).await;
    assert_eq!(*flaky.hits.lock().unwrap(), 2, "500 then retried: {err}");
    assert_eq!(flaky.bodies.lock().unwrap().len(), 1);
    // ... and one that never gets through is reported, its changes kept for the next run.
    for _ in 0..2 {
        let (code, _, err) = env.scan(&["dead"]).await;
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("notify 'dead': delivery failed after 3 tries")
                && err.contains("sent on the next run"),
            "{err}"
        );
    }
    assert!(!std::path::Path::new(&env.state)
        .join("certdeck/notify-dead.json")
        .exists());
    let (_, _, err) = env.scan(&["nosuch"]).await;
    assert!(err.contains("no [[notify]] named 'nosuch'"), "{err}");
    drop(am);
}
