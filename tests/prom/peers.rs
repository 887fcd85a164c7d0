//! Real Prometheus-stack peers for the tests (Debian `prometheus`, `prometheus-alertmanager`,
//! `prometheus-blackbox-exporter`), and `certdeck serve`: each started in the foreground on a
//! free 127.0.0.1 port in its own process group, killed as a group on Drop.
#![allow(dead_code)]

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use crate::nginx::free_port;

/// A process started by a test; dropping it kills its whole process group.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
    pub port: u16,
}

impl Drop for Proc {
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

impl Proc {
    /// Start `program args` with its output in `dir/NAME.log`, and wait for `port`.
    pub fn start(dir: &Path, name: &str, program: &str, args: &[String], port: u16) -> Proc {
        Proc::start_env(dir, name, program, args, port, &[])
    }

    pub fn start_env(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        port: u16,
        env: &[(&str, &str)],
    ) -> Proc {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("start {program}: {e} (tests/run.sh installs the Debian package)")
        });
        let mut p = Proc { child, log, port };
        p.wait_for_port(name);
        p
    }

    fn wait_for_port(&mut self, what: &str) {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("{what} exited ({st}): {}", self.log_text());
            }
            if start.elapsed() > Duration::from_secs(60) {
                panic!(
                    "{what} did not listen on {}: {}",
                    self.port,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// `certdeck serve --listen 127.0.0.1:PORT ARGS...` with an isolated home.
pub fn certdeck_serve(dir: &Path, args: &[&str]) -> Proc {
    let port = free_port();
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut all = vec![
        "serve".to_owned(),
        "--listen".to_owned(),
        format!("127.0.0.1:{port}"),
    ];
    all.extend(args.iter().map(|s| s.to_string()));
    let h = home.display().to_string();
    Proc::start_env(
        dir,
        "certdeck-serve",
        env!("CARGO_BIN_EXE_certdeck"),
        &all,
        port,
        &[
            ("HOME", &h),
            ("XDG_CONFIG_HOME", &format!("{h}/config")),
            ("XDG_STATE_HOME", &format!("{h}/state")),
            ("NO_COLOR", "1"),
        ],
    )
}

/// A real Prometheus with `scrape_configs` (YAML, indented under `scrape_configs:`) and
/// optional rule files, scraping every second.
pub fn prometheus(dir: &Path, scrape_configs: &str, rule_files: &[&Path]) -> Proc {
    let port = free_port();
    let conf = dir.join("prometheus.yml");
    let rules: String = rule_files
        .iter()
        .map(|p| format!("  - {}\n", p.display()))
        .collect();
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{rules}\
             scrape_configs:\n{scrape_configs}"
        ),
    )
    .expect("write prometheus.yml");
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&conf)
        .output()
        .expect("promtool (Debian prometheus)");
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Proc::start(
        dir,
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", conf.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        port,
    )
}

pub fn client() -> reqwest::Client {
    certdeck::sources::tls::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Run an instant query against Prometheus until `ok` accepts its result vector (60 s at
/// most); returns that vector.
pub async fn query_until(
    prom: &Proc,
    query: &str,
    what: &str,
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let c = client();
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(60) {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", prom.url()),
            &[("query", query)],
        )
        .expect("url");
        if let Ok(r) = c.get(url).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if let Some(res) = v["data"]["result"].as_array() {
                    if ok(res) {
                        return res.to_vec();
                    }
                }
                last = v;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{what}: `{query}` never gave the expected result; last answer {last}\nprometheus log:\n{}",
        prom.log_text()
    );
}

/// `promtool ARGS`, asserting success; returns stdout.
pub fn promtool(args: &[&str], cwd: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("promtool (Debian prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}
