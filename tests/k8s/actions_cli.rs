//! `certdeck renew` and `certdeck rotate` through the real binary: preview, --dry-run,
//! --read-only, confirmation, --yes, progress, the audit log in the data directory, exit codes.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::k8s_common::{facts, leaf};
use crate::k8s_fixture::Fixture;
use certdeck::actions::AuditLog;
use certdeck::model::record::location_id;
use certdeck::model::SourceKind;

const STATUS: &str = "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status";

fn seed(fx: &Fixture) -> crate::k8s_common::Pem {
    let p = leaf(&["web.team-a.example"], 10, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a", "web-tls", &p.cert, &p.key,
    ));
    fx.insert_value(crate::k8s_fixture::certificate(
        "team-a",
        "web",
        "web-tls",
        "ca-issuer",
        &["web.team-a.example"],
    ));
    fx.set_certificate_ready(
        "team-a",
        "web",
        &certdeck::clock::rfc3339(facts(&p.cert).not_after),
        1,
    );
    let q = leaf(&["plain.team-a.example"], 10, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "plain-tls",
        &q.cert,
        &q.key,
    ));
    p
}

fn id(loc: &str) -> String {
    location_id(SourceKind::K8S, loc)
}

fn certdeck(fx: &Fixture, args: &[&str], stdin: &str) -> Output {
    std::fs::write(fx.dir().join("empty.toml"), "").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_certdeck"));
    c.env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("CERTDECK_CONFIG", fx.dir().join("empty.toml"))
        .env("CERTDECK_DATA_DIR", fx.dir().join("data"))
        .arg(args[0])
        .arg("--kubeconfig")
        .arg(fx.kubeconfig_path())
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn audit(fx: &Fixture) -> Vec<certdeck::actions::AuditRecord> {
    AuditLog::new(fx.dir().join("data/audit.jsonl"))
        .read()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn renew_dry_run_prints_the_exact_change_and_writes_nothing() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let rid = id("fixture/team-a/secret/web-tls#tls.crt");
    let out = certdeck(&fx, &["renew", &rid, "--dry-run"], "");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert!(
        stdout.contains("Renew (cert-manager re-issue): Certificate team-a/web in context fixture"),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("PUT {STATUS}")), "{stdout}");
    assert!(stdout.contains("dry run: nothing was written"), "{stdout}");
    assert_eq!(fx.request_count("PUT", STATUS), 0);
    let a = audit(&fx);
    assert_eq!(
        (a.len(), a[0].outcome.as_str(), a[0].record_id.as_str()),
        (1, "dry_run", rid.as_str())
    );
}

#[test]
fn read_only_refuses_with_exit_3_and_writes_nothing() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let rid = id("fixture/team-a/secret/web-tls#tls.crt");
    let out = certdeck(&fx, &["renew", &rid, "--yes", "--read-only"], "");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr.contains("refused: certdeck is in read-only mode; nothing was done"),
        "{stderr}"
    );
    assert!(!fx.requests().iter().any(|r| r.method != "GET"));
    assert_eq!(audit(&fx)[0].outcome, "refused");
}

#[test]
fn declining_the_confirmation_writes_nothing() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let out = certdeck(
        &fx,
        &["rotate", "fixture/team-a/secret/plain-tls#tls.crt"],
        "n\n",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout} {stderr}");
    assert!(
        stdout.contains("Rotate (new key and certificate): Secret team-a/plain-tls"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Proceed with 1 change(s)? [y/N]"),
        "{stderr}"
    );
    assert!(stderr.contains("declined; nothing was done"), "{stderr}");
    assert!(!fx.requests().iter().any(|r| r.method == "PUT"));
}

#[test]
fn rotate_confirmed_at_the_prompt_rotates_and_prints_the_restore_command() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let rid = id("fixture/team-a/secret/plain-tls#tls.crt");
    let out = certdeck(&fx, &["rotate", &rid], "y\n");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert!(stdout.contains(&format!("ok {rid}: rotated")), "{stdout}");
    assert!(
        stdout.contains("restore the previous state with: kubectl --context fixture replace -f "),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("{rid} [backup] saved to")),
        "{stderr}"
    );
    assert!(!stdout.contains("PRIVATE KEY") && !stderr.contains("PRIVATE KEY"));
    let a = audit(&fx);
    assert_eq!(
        (a[0].action.as_str(), a[0].outcome.as_str()),
        ("rotate", "succeeded")
    );
    assert_ne!(a[0].before_sha256, a[0].after_sha256);
}

#[test]
fn renew_with_yes_follows_cert_manager_to_ready_through_the_binary() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    fx.on_write("certificates", Duration::from_millis(200), |w| {
        (w.subresource.as_deref() == Some("status")).then(|| {
            let p = leaf(&["web.team-a.example"], 90, None);
            crate::k8s_fixture::tls_secret("team-a", "web-tls", &p.cert, &p.key)
        })
    });
    fx.on_write("certificates", Duration::from_millis(400), |w| {
        (w.subresource.as_deref() == Some("status")).then(|| {
            let mut c = w.object.clone();
            crate::k8s_fixture::set_ready_status(&mut c, "2027-02-01T00:00:00Z", 2);
            c
        })
    });
    let rid = id("fixture/team-a/secret/web-tls#tls.crt");
    let out = certdeck(
        &fx,
        &["renew", &rid, "--yes", "--wait", "10s", "-n", "team-a"],
        "",
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert!(
        stderr.contains(&format!(
            "{rid} [write] Issuing condition set (ManuallyTriggered)"
        )),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("ok {rid}: renewed: revision 2")),
        "{stdout}"
    );
    assert_eq!(fx.request_count("PUT", STATUS), 1);
    assert_eq!(audit(&fx)[0].outcome, "succeeded");
}

#[test]
fn failed_renew_exits_1_and_names_the_missing_permission() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    fx.forbid("update", "certificates/status", None);
    let rid = id("fixture/team-a/secret/web-tls#tls.crt");
    let out = certdeck(&fx, &["renew", &rid, "--yes"], "");
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("missing permission `update` on `certificates/status`"),
        "{stdout}"
    );
    assert_eq!(audit(&fx)[0].failed_step.as_deref(), Some("write"));
}

#[test]
fn unknown_id_exits_3_and_says_how_to_find_ids() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let out = certdeck(&fx, &["renew", "k8s-0000000000", "--yes"], "");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr.contains("no row with id or location 'k8s-0000000000'"),
        "{stderr}"
    );
}

/// An audit log that cannot be written after a rotation that worked: the rotation is reported
/// done (exit 0) with its restore command, and the audit failure is said separately.
#[test]
fn an_audit_failure_after_a_done_rotation_keeps_the_result_and_the_restore_command() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    // The audit log's path is a directory: appending to it fails.
    std::fs::create_dir_all(fx.dir().join("data/audit.jsonl")).unwrap();
    let rid = id("fixture/team-a/secret/plain-tls#tls.crt");
    let out = certdeck(&fx, &["rotate", &rid, "--yes"], "");
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout} {stderr}");
    assert!(stdout.contains(&format!("ok {rid}: rotated")), "{stdout}");
    assert!(
        stdout.contains("restore the previous state with: kubectl --context fixture replace -f "),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("certdeck: {rid}: the audit log"))
            && stderr.contains("could not be written"),
        "{stderr}"
    );
    let s = fx.get("secrets", "team-a", "plain-tls").unwrap();
    assert!(
        s["data"]["tls.crt"].is_string(),
        "the Secret was rotated: {s}"
    );
}

/// `read_only = true` in the config file refuses the headless commands too, and
/// `--read-only` works before the subcommand as after it.
#[test]
fn read_only_from_the_config_file_or_either_flag_position_refuses() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let rid = id("fixture/team-a/secret/plain-tls#tls.crt");
    let before = fx.get("secrets", "team-a", "plain-tls").unwrap();
    std::fs::write(fx.dir().join("ro.toml"), "read_only = true\n").unwrap();
    std::fs::write(fx.dir().join("empty.toml"), "").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_certdeck"));
    let out = c
        .env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("CERTDECK_CONFIG", fx.dir().join("ro.toml"))
        .env("CERTDECK_DATA_DIR", fx.dir().join("data"))
        .args(["rotate", &rid, "--yes", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    let mut c = Command::new(env!("CARGO_BIN_EXE_certdeck"));
    let out = c
        .env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("CERTDECK_CONFIG", fx.dir().join("empty.toml"))
        .env("CERTDECK_DATA_DIR", fx.dir().join("data"))
        .args(["--read-only", "rotate", &rid, "--yes", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert_eq!(
        fx.get("secrets", "team-a", "plain-tls").unwrap()["data"],
        before["data"],
        "nothing was written"
    );
    assert!(audit(&fx).iter().all(|a| a.outcome == "refused"));
}
