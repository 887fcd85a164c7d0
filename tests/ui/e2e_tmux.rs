//! End to end: the real binary in tmux against `certdeck demo`: wait for rows, sort, filter,
//! open the timeline and the details, quit, and check the terminal was restored.
//! Needs tmux (the README's test command installs it).

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    socket: String,
    _home: tempfile::TempDir,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux (apt-get install tmux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.cmd(&["capture-pane", "-p", "-t", "e2e"])
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.cmd(&["send-keys", "-t", "e2e", k]);
            // A pause after each key, so Esc is never read as Alt+next key.
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// Wait until the screen satisfies `pred`; panic with the screen otherwise.
    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.cmd(&["kill-server"]);
    }
}

/// The table's body rows: lines that end with a source name, or with a source name and the
/// key audit column's glyph.
fn body_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip(2)
        .filter(|l| {
            let t = l.trim_end();
            let t = t.strip_suffix(['‼', '▲', '·', '✔']).unwrap_or(t).trim_end();
            [" tls", " file", " k8s"].iter().any(|src| t.ends_with(src))
        })
        .collect()
}

/// Run `program args` in a fresh tmux server (100x30), echoing its exit code afterwards.
fn start(tag: &str, program: &str, args: &str) -> Tmux {
    let home = tempfile::tempdir().expect("home");
    let socket = format!("certdeck-e2e-{tag}-{}", std::process::id());
    let t = Tmux {
        socket,
        _home: home,
    };
    let h = t._home.path().display().to_string();
    let script = format!(
        "mkdir -p {h}/tmp; env HOME={h} XDG_CONFIG_HOME={h}/config XDG_STATE_HOME={h}/state TMPDIR={h}/tmp TERM=xterm-256color {program} {args}; echo EXITED:$?; sleep 60"
    );
    t.cmd(&[
        "new-session",
        "-d",
        "-s",
        "e2e",
        "-x",
        "100",
        "-y",
        "30",
        &script,
    ]);
    t
}

fn alternate_on(t: &Tmux) -> String {
    t.cmd(&["display", "-p", "-t", "e2e", "#{alternate_on}"])
        .trim()
        .to_owned()
}

fn demo_up(tag: &str) -> Tmux {
    let t = start(tag, env!("CARGO_BIN_EXE_certdeck"), "demo");
    t.wait_for("all demo rows", |s| {
        s.contains("tls 9/9✓") && s.contains("file 7/7✓")
    });
    assert_eq!(alternate_on(&t), "1");
    t
}

#[test]
fn ctrl_c_quits_and_restores_the_terminal() {
    let t = demo_up("ctrlc");
    t.keys(&["C-c"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    assert_eq!(alternate_on(&t), "0");
}

#[test]
fn sigterm_quits_and_restores_the_terminal() {
    let t = demo_up("term");
    let shell = t.cmd(&["display", "-p", "-t", "e2e", "#{pane_pid}"]);
    let out = Command::new("pgrep")
        .args(["-P", shell.trim()])
        .output()
        .expect("pgrep");
    let pid = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .expect("certdeck pid")
        .trim()
        .to_owned();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    assert_eq!(alternate_on(&t), "0");
}

/// A hangup (the SSH session or the terminal window closed) ends the dashboard cleanly: the
/// demo's certificate folder goes with it.
#[test]
fn a_hangup_ends_the_demo_and_removes_its_files() {
    let t = demo_up("hup");
    let tmp = t._home.path().join("tmp");
    let demo_dirs = || -> Vec<String> {
        std::fs::read_dir(&tmp)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("certdeck-demo-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(demo_dirs().len(), 1, "the demo's folder while it runs");
    // Closing the terminal: the pane's processes get SIGHUP.
    t.cmd(&["kill-server"]);
    let start = Instant::now();
    while !demo_dirs().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left behind after the hangup: {:?}",
            demo_dirs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_panic_inside_the_ui_restores_the_terminal_through_the_hook() {
    // The example enters the UI, forgets its guard (so only the panic hook can restore the
    // terminal), and panics.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_certdeck"))
        .with_file_name("examples")
        .join("panic_in_ui");
    if !bin.exists() {
        // `cargo test --all-targets` builds examples; a narrower run may not have.
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--example", "panic_in_ui"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example panic_in_ui")
            .success();
        assert!(ok && bin.exists(), "{} could not be built", bin.display());
    }
    let t = start("panic", &bin.display().to_string(), "");
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:101"), "a panic exits 101: {s}");
    assert!(
        s.contains("deliberate panic inside the UI"),
        "the panic message is readable after restore: {s}"
    );
    assert_eq!(
        alternate_on(&t),
        "0",
        "the panic hook left the alternate screen"
    );
}

#[test]
fn dashboard_over_the_demo_fleet_in_tmux() {
    let t = start("flow", env!("CARGO_BIN_EXE_certdeck"), "demo");

    // Rows stream in; both sources finish.
    let s = t.wait_for("all demo rows", |s| {
        s.contains("tls 9/9✓") && s.contains("file 7/7✓")
    });
    assert_eq!(
        t.cmd(&["display", "-p", "-t", "e2e", "#{alternate_on}"])
            .trim(),
        "1",
        "the UI uses the alternate screen"
    );
    let rows = body_rows(&s);
    assert!(rows[0].contains("EXPIRED"), "worst first: {s}");
    assert!(
        s.contains("billing.demo.test") && s.contains("STATUS↑"),
        "{s}"
    );

    // Sort by name (Shift+N), then reverse it with the same key.
    t.keys(&["N"]);
    let s = t.wait_for("sort by name", |s| s.contains("NAME↑"));
    assert!(body_rows(&s)[0].contains("api.demo.test"), "{s}");
    t.keys(&["N"]);
    let s = t.wait_for("reversed name sort", |s| s.contains("NAME↓"));
    assert!(body_rows(&s)[0].contains("www.demo.test"), "{s}");

    // Live filter.
    t.keys(&["/", "g", "r", "a", "f", "Enter"]);
    let s = t.wait_for("filter", |s| s.contains("/graf") && s.contains("1/16"));
    let rows = body_rows(&s);
    assert_eq!(rows.len(), 1, "{s}");
    assert!(
        rows[0].contains("grafana.demo.test") && rows[0].contains("WARN"),
        "{s}"
    );

    // Details of the filtered row.
    t.keys(&["Enter"]);
    let s = t.wait_for("details", |s| s.contains("Details: grafana.demo.test"));
    assert!(s.contains("Verification") && s.contains("trusted"), "{s}");
    t.keys(&["Escape"]);
    t.wait_for("details closed", |s| !s.contains("Details:"));

    // Esc clears the filter; the timeline opens.
    t.keys(&["Escape"]);
    t.wait_for("filter cleared", |s| s.contains("16/16"));
    t.keys(&["t"]);
    let s = t.wait_for("timeline", |s| s.contains("expired ✖│now"));
    assert!(
        s.contains("── tls (9)") && s.contains("horizon 90 days"),
        "{s}"
    );
    t.keys(&["-"]);
    t.wait_for("zoomed out", |s| s.contains("horizon 1 year"));

    // Refresh every source: the message shows and rows stay.
    t.keys(&["R"]);
    t.wait_for("refresh", |s| s.contains("refreshing every source"));

    // Quit: the program exits 0 and the terminal is restored.
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    assert_eq!(
        t.cmd(&["display", "-p", "-t", "e2e", "#{alternate_on}"])
            .trim(),
        "0",
        "alternate screen left"
    );
    assert!(
        !s.contains("STATUS↑") && !s.contains("expired ✖│now"),
        "the dashboard is gone from the screen: {s}"
    );
}

/// The demo's VPN client key is world-readable: the findings column marks its row, `5` keeps
/// the rows with findings, `F` opens the key audit with the key file named, `enter` the
/// finding's details.
#[test]
fn the_key_audit_of_the_demo_names_its_world_readable_key() {
    let t = demo_up("keys");
    let s = t.screen();
    let vpn = body_rows(&s)
        .into_iter()
        .find(|r| r.contains("vpn-client.demo.test"))
        .unwrap_or_else(|| panic!("the VPN client row: {s}"));
    assert!(vpn.trim_end().ends_with('‼'), "critical key finding: {s}");
    assert!(s.contains("SRC  K"), "the key audit column's header: {s}");
    t.keys(&["5"]);
    let s = t.wait_for("only key findings", |s| s.contains("only keys"));
    let rows = body_rows(&s);
    assert_eq!(
        rows.len(),
        1,
        "one row has a finding of warning or worse: {s}"
    );
    assert!(rows[0].contains("vpn-client.demo.test"), "{s}");
    t.keys(&["5", "F"]);
    let s = t.wait_for("the key audit view", |s| {
        s.contains("KEY LOCATION") && s.contains("key audit")
    });
    let rows = body_rows(&s);
    assert!(
        rows[0].contains("‼ CRITICAL")
            && rows[0].contains("world-readable")
            && rows[0].contains("vpn-client.key")
            && rows[0].contains("vpn-client.demo.test"),
        "worst first, with the key's file: {s}"
    );
    assert!(
        rows.iter().any(|r| r.contains("intranet.key")) && !s.contains("billing.demo.test"),
        "rows with findings only, the owner-only key among them: {s}"
    );
    t.keys(&["Enter"]);
    let s = t.wait_for("the details", |s| s.contains("Private key"));
    assert!(
        s.contains("readable by others (mode 0644)") && s.contains("vpn-client.key]"),
        "{s}"
    );
    t.keys(&["Escape", "F"]);
    t.wait_for("the table again", |s| s.contains("STATUS↑"));
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}

#[test]
fn renewing_an_expired_demo_row_from_the_keyboard_turns_it_healthy() {
    let t = demo_up("renew");
    t.keys(&["/", "b", "i", "l", "l", "i", "n", "g", "Enter"]);
    let s = t.wait_for("the expired row alone", |s| s.contains("1/16"));
    assert!(
        body_rows(&s)[0].contains("EXPIRED") && body_rows(&s)[0].contains("billing.demo.test"),
        "{s}"
    );
    t.keys(&["n"]);
    let s = t.wait_for("the confirm popup", |s| s.contains("Confirm: 1 action(s)"));
    assert!(
        s.contains("Re-issue (demo CA)")
            && s.contains("expires:")
            && s.contains("certdeck demo intermediate CA"),
        "{s}"
    );
    t.keys(&["y"]);
    let s = t.wait_for("the task to finish", |s| {
        s.contains("Re-issue (demo CA) done")
    });
    let s = if body_rows(&s)[0].contains("OK") {
        s
    } else {
        t.wait_for("the re-probe", |s| body_rows(s)[0].contains("OK"))
    };
    let row = body_rows(&s)[0];
    assert!(
        row.contains("✔ OK") && row.contains("billing.demo.test"),
        "the row turned healthy: {s}"
    );
    assert!(
        row.contains("  89 ") || row.contains("  90 "),
        "a fresh 90-day certificate: {row}"
    );
    t.keys(&["T"]);
    let s = t.wait_for("the task view", |s| {
        s.contains("Tasks: 0 running, 1 in all")
    });
    assert!(
        s.contains("✔ Re-issue (demo CA)") && s.contains("now serving sha256"),
        "{s}"
    );
    t.keys(&["Escape"]);
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    // The renewal is in the audit log of this run's data directory.
    let audit = t._home.path().join(".local/share/certdeck/audit.jsonl");
    let text =
        std::fs::read_to_string(&audit).unwrap_or_else(|e| panic!("{}: {e}", audit.display()));
    assert!(
        text.contains("\"action\":\"demo re-issue\"") && text.contains("\"outcome\":\"succeeded\""),
        "{text}"
    );
}

#[test]
fn kubernetes_rows_are_renewed_from_the_dashboard() {
    let fx = crate::k8s_fixture::Fixture::start_blocking();
    crate::shop::seed(&fx);
    let home = tempfile::tempdir().expect("home");
    let cfg = home.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kubernetes]\nkubeconfig = \"{}\"\nnamespace = \"shop\"\n",
            fx.kubeconfig_path().display()
        ),
    )
    .expect("config");
    let t = start(
        "k8s",
        env!("CARGO_BIN_EXE_certdeck"),
        &format!("--config {}", cfg.display()),
    );
    let s = t.wait_for("the Kubernetes rows", |s| {
        s.contains("k8s ") && s.contains("✓") && s.contains("web.shop.example")
    });
    assert!(
        s.contains("api.shop.example") && s.contains("legacy.shop.example"),
        "{s}"
    );
    // The two managed Secrets, marked; n; the confirm popup shows the cmctl-style status write.
    t.keys(&[
        "/", "(", "w", "e", "b", "|", "a", "p", "i", ")", "-", "t", "l", "s", "#", "Enter",
    ]);
    t.wait_for("filtered", |s| body_rows(s).len() == 2);
    t.keys(&["space", "space", "n"]);
    let s = t.wait_for("confirm", |s| s.contains("Confirm: 2 action(s)"));
    assert!(
        s.contains("Renew (cert-manager re-issue)") && s.contains("/status"),
        "{s}"
    );
    t.keys(&["y"]);
    t.wait_for("both tasks done", |s| {
        s.contains("done") && !s.contains("⟳")
    });
    t.keys(&["T"]);
    let s = t.wait_for("the task view", |s| {
        s.contains("Tasks: 0 running, 2 in all")
    });
    assert_eq!(
        s.matches("✔ Renew (cert-manager re-issue)").count(),
        2,
        "{s}"
    );
    t.keys(&["Escape"]);
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    let statuses: Vec<serde_json::Value> = fx
        .list("certificates", Some("shop"))
        .into_iter()
        .map(|c| c["status"]["revision"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![serde_json::json!(2), serde_json::json!(2)],
        "cert-manager re-issued both"
    );
}

/// The dashboard is live: a Secret added, changed or deleted in the cluster shows up on the
/// screen without a key press (the watch, no re-list), and when the cluster stops answering
/// its rows stay on screen marked stale with their age.
#[test]
fn kubernetes_changes_show_up_live_and_a_failing_cluster_leaves_stale_rows() {
    let fx = crate::k8s_fixture::Fixture::start_blocking();
    crate::shop::seed(&fx);
    let home = tempfile::tempdir().expect("home");
    let cfg = home.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kubernetes]\nkubeconfig = \"{}\"\nnamespace = \"shop\"\n",
            fx.kubeconfig_path().display()
        ),
    )
    .expect("config");
    let t = start(
        "k8slive",
        env!("CARGO_BIN_EXE_certdeck"),
        &format!("--config {}", cfg.display()),
    );
    t.wait_for("the Kubernetes rows", |s| {
        s.contains("legacy.shop.example") && s.contains("web.shop.example")
    });

    // Added: no key is pressed from here on until the failure below.
    let p = crate::k8s_common::leaf(&["added.shop.example"], 50, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop",
        "added-tls",
        &p.cert,
        &p.key,
    ));
    t.wait_for("the added Secret's row", |s| {
        s.contains("added.shop.example")
    });

    // Changed: the row's days left follow the new certificate.
    let p = crate::k8s_common::leaf(&["added.shop.example"], 300, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop",
        "added-tls",
        &p.cert,
        &p.key,
    ));
    t.wait_for("the changed certificate's days left", |s| {
        s.lines().any(|l| {
            l.contains("added.shop.example") && (l.contains(" 299 ") || l.contains(" 300 "))
        })
    });

    // Deleted.
    fx.remove("secrets", "shop", "legacy-tls");
    t.wait_for("the deleted Secret's row gone", |s| {
        !s.contains("legacy.shop.example")
    });

    // The credentials stop working: a refresh fails, and the rows stay, marked stale.
    fx.remove_token(crate::k8s_fixture::ADMIN_TOKEN);
    t.keys(&["R"]);
    let s = t.wait_for("stale rows and the failing source", |s| {
        s.contains("stale ") && s.contains("unauthorized")
    });
    let stale: Vec<&str> = s
        .lines()
        .filter(|l| l.contains("stale ") && l.contains("shop.example"))
        .collect();
    assert!(
        stale.len() >= 2 && stale.iter().all(|l| l.contains('~')),
        "the Secret rows are kept, marked stale with their age:\n{s}"
    );
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}

/// An example binary (built by `cargo test --all-targets`; built here if missing).
fn example(name: &str) -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_certdeck"))
        .with_file_name("examples")
        .join(name);
    if !bin.exists() {
        let ok = Command::new(env!("CARGO"))
            .args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo build --example")
            .success();
        assert!(ok && bin.exists(), "{} could not be built", bin.display());
    }
    bin
}

#[test]
fn a_panic_in_a_background_task_is_a_failing_source_and_the_ui_stays_up() {
    let bin = example("panic_in_task");
    let t = start("bgpanic", &bin.display().to_string(), "");
    let s = t.wait_for("the failing source", |s| {
        s.contains("boom ✖ internal error")
    });
    assert!(
        s.contains("boom: failing: internal error: the source panicked: deliberate panic in a background source"),
        "the message line says what happened: {s}"
    );
    assert!(!s.contains("thread '"), "no panic message over the UI: {s}");
    assert_eq!(alternate_on(&t), "1", "the UI is still up");
    t.keys(&["s"]);
    t.wait_for("the sources popup", |s| s.contains("Sources: 1"));
    t.keys(&["Escape", "q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
    assert_eq!(alternate_on(&t), "0");
}

/// A kubeconfig whose only context points at a closed port.
fn unreachable_kubeconfig(dir: &std::path::Path) -> std::path::PathBuf {
    let port = crate::common::closed_port();
    let p = dir.join("kubeconfig");
    std::fs::write(
        &p,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: gone\nclusters:\n- name: gone\n  cluster:\n    server: https://127.0.0.1:{port}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: gone\n  context:\n    cluster: gone\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .expect("kubeconfig");
    p
}

/// Logs go to the state directory's file while the UI is up: an unreachable cluster is a
/// health message on the screen, and no log line is painted over it.
#[test]
fn an_unreachable_cluster_is_a_health_message_and_no_log_reaches_the_screen() {
    let home = tempfile::tempdir().expect("home");
    let cfg = home.path().join("certdeck.toml");
    let kc = unreachable_kubeconfig(home.path());
    std::fs::write(
        &cfg,
        format!("[kubernetes]\nkubeconfig = \"{}\"\n", kc.display()),
    )
    .expect("config");
    let t = start(
        "unreach",
        env!("CARGO_BIN_EXE_certdeck"),
        &format!("--config {}", cfg.display()),
    );
    let s = t.wait_for("the health message", |s| {
        s.contains("k8s gone ✖ unreachable") && s.contains("k8s gone: failing: unreachable")
    });
    // tracing's lines look like `2026-12-02T05:32:10.123456Z  WARN target: message`.
    for bad in ["Z  WARN", "Z ERROR", "Z  INFO", "kube_client", "certdeck::"] {
        assert!(
            !s.contains(bad),
            "log text {bad:?} reached the screen:\n{s}"
        );
    }
    // The log file is in the state directory, private, and the help shows where it is.
    let log = t._home.path().join("state/certdeck/certdeck.log");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&log)
        .unwrap_or_else(|e| panic!("{}: {e}", log.display()))
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    t.keys(&["?"]);
    t.wait_for("the log path in the help", |s| s.contains("certdeck.log"));
    t.keys(&["Escape", "q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}

/// `read_only = true` in the config file disables actions in the dashboard (not only in
/// the headless commands).
#[test]
fn read_only_in_the_config_file_disables_actions_in_the_dashboard() {
    let home = tempfile::tempdir().expect("home");
    let cfg = home.path().join("certdeck.toml");
    std::fs::write(&cfg, "read_only = true\n").expect("config");
    let t = start(
        "ro",
        env!("CARGO_BIN_EXE_certdeck"),
        &format!("demo --config {}", cfg.display()),
    );
    let s = t.wait_for("all demo rows", |s| {
        s.contains("tls 9/9✓") && s.contains("file 7/7✓")
    });
    assert!(s.contains("read-only"), "the title says so: {s}");
    t.keys(&["n"]);
    std::thread::sleep(Duration::from_millis(500));
    let s = t.screen();
    assert!(!s.contains("Confirm:"), "no action is planned: {s}");
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}

/// The dashboard over a real OpenBao (`[[vault]]` in the config file): its certificates are
/// rows; `X` on one plans a revocation whose confirm names the serial and the subject, `y`
/// revokes it, and the row turns ⊘ REVOKED; OpenBao says so too.
#[test]
fn a_vault_certificate_is_revoked_from_the_dashboard() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let b = rt.block_on(crate::openbao::Bao::start());
    let pki = rt.block_on(crate::openbao::setup_pki(&b, 2, 0));
    let home = tempfile::tempdir().expect("home");
    let tok = home.path().join("token");
    std::fs::write(&tok, "root\n").expect("token");
    let cfg = home.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[vault]]\naddress = \"{}\"\nmounts = [\"pki_int\"]\ntoken_file = \"{}\"\n",
            b.addr,
            tok.display()
        ),
    )
    .expect("config");
    let t = start(
        "vault",
        env!("CARGO_BIN_EXE_certdeck"),
        &format!("--config {}", cfg.display()),
    );
    t.wait_for("the Vault rows", |s| {
        s.contains("vault") && s.contains("host1.example.test")
    });
    t.keys(&["/", "h", "o", "s", "t", "1", "Enter"]);
    t.wait_for("filtered", |s| !s.contains("host0.example.test"));
    t.keys(&["X"]);
    let s = t.wait_for("confirm", |s| s.contains("Confirm: 1 action(s)"));
    assert!(
        s.contains("Revoke (Vault pki_int)") && s.contains("CN=host1.example.test"),
        "{s}"
    );
    let serial = &pki.issued[1];
    assert!(
        s.contains(&serial[..20]),
        "the confirm names the serial {serial}: {s}"
    );
    assert!(!rt.block_on(b.is_revoked("pki_int", serial)));
    t.keys(&["y"]);
    t.wait_for("the row revoked", |s| s.contains("⊘ REVOKED"));
    assert!(rt.block_on(b.is_revoked("pki_int", serial)));
    t.keys(&["q"]);
    let s = t.wait_for("exit", |s| s.contains("EXITED:"));
    assert!(s.contains("EXITED:0"), "{s}");
}
