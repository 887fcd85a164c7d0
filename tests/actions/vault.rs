//! The Vault / OpenBao actions against the real OpenBao (dev mode on loopback) and nginx:
//! the engines, then `certdeck revoke ID` and `certdeck renew ID` through the binary (plan,
//! dry run, decline, read-only, `--yes`, the re-read, the audit log), the failures of each
//! step that must leave the old certificate in place, and the dashboard's `X`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::openbao::{pem_der, setup_pki, stapling_server, Bao};
use certdeck::actions::{AuditLog, Reporter, Session};
use certdeck::model::CertFacts;
use certdeck::sources::vault::{self, actions, VaultConfig, VaultSettings};
use serde_json::{json, Value};

fn facts(pem: &str) -> CertFacts {
    CertFacts::from_der(&pem_der(pem)).expect("facts")
}

fn first_cert(path: &Path) -> CertFacts {
    certdeck::sources::file::first_certificate(path).expect("certificate file")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("meta").permissions().mode() & 0o777
}

fn root_settings(addr: &str) -> VaultSettings {
    let env: std::collections::HashMap<String, String> =
        [("VAULT_TOKEN".to_owned(), "root".to_owned())].into();
    VaultSettings::resolve(
        Some(addr),
        Some(&VaultConfig {
            mounts: vec!["pki_int".into()],
            ..Default::default()
        }),
        &env,
    )
    .expect("settings")
}

/// The binary with a home, a data directory and a config file of its own.
struct Certdeck {
    home: PathBuf,
    data: PathBuf,
    config: PathBuf,
}

impl Certdeck {
    fn new(dir: &Path, config: &str) -> Certdeck {
        let c = Certdeck {
            home: dir.join("home"),
            data: dir.join("data"),
            config: dir.join("certdeck.toml"),
        };
        std::fs::create_dir_all(&c.home).expect("home");
        std::fs::write(&c.config, config).expect("config");
        c
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_certdeck"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", &self.home)
            .env("CERTDECK_DATA_DIR", &self.data)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("certdeck did not finish within 120 s")
            .expect("run certdeck");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn rows(&self) -> (i32, Vec<Value>) {
        let (code, out, err) = self.run(&["scan", "-o", "json"]).await;
        let rows = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (code, rows)
    }

    fn audit(&self) -> Vec<certdeck::actions::AuditRecord> {
        AuditLog::new(self.data.join("audit.jsonl"))
            .read()
            .expect("audit log")
    }
}

/// A `[[vault]]` section for the dev server, with a token file.
fn vault_section(b: &Bao, dir: &Path) -> String {
    let tok = dir.join("token");
    std::fs::write(&tok, "root\n").expect("token");
    format!(
        "[[vault]]\naddress = {:?}\nmounts = [\"pki_int\"]\ntoken_file = {:?}\n",
        b.addr,
        tok.display().to_string()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_issue_by_sign_or_issue_with_the_same_names_and_revoke_confirms_by_re_reading()
{
    let b = Bao::start().await;
    setup_pki(&b, 1, 0).await;
    let old = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "app.example.test", "alt_names": "app.example.test,api.example.test", "ip_sans": "127.0.0.1", "ttl": "200h"}),
        )
        .await;
    let old_facts = facts(&old.cert_pem);
    let (client, _) = vault::VaultClient::connect(&root_settings(&b.addr))
        .await
        .expect("connect");
    let plan = actions::plan_replacement(&old_facts, "pki_int", "web", None).expect("plan");
    assert_eq!(plan.method, actions::IssueMethod::Sign);
    assert!(plan.why.contains("never leaves"), "{}", plan.why);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let rep = Reporter::new("t", tx);
    let new = actions::issue_replacement(&client, &plan, &rep)
        .await
        .expect("sign");
    drop(rep);
    let mut steps = Vec::new();
    while let Some(certdeck::actions::ActionEvent::Progress(p)) = rx.recv().await {
        steps.push(p.message);
    }
    assert!(
        steps.iter().any(|s| s.starts_with("POST pki_int/sign/web")),
        "{steps:?}"
    );
    assert!(
        !steps.iter().any(|s| s.contains("PRIVATE KEY"))
            && !format!("{new:?}").contains("PRIVATE KEY"),
        "no key in progress or Debug"
    );
    let mut names: Vec<String> = new.facts.sans.iter().map(|s| s.render()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "DNS:api.example.test",
            "DNS:app.example.test",
            "IP:127.0.0.1"
        ]
    );
    assert_ne!(new.facts.sha256, old_facts.sha256);
    assert!(certdeck::actions::keys::key_matches(
        &new.facts.der,
        new.key_pem.expose()
    ));
    assert!(!certdeck::actions::keys::key_matches(
        &new.facts.der,
        &old.key_pem
    ));
    assert!(new.chain_pem.contains("BEGIN CERTIFICATE"));
    // issue/ROLE when asked: the server makes the key.
    let plan = actions::plan_replacement(
        &old_facts,
        "pki_int",
        "web",
        Some(actions::IssueMethod::Issue),
    )
    .expect("plan");
    let issued = actions::issue_replacement(&client, &plan, &Reporter::silent("t"))
        .await
        .expect("issue");
    assert!(certdeck::actions::keys::key_matches(
        &issued.facts.der,
        issued.key_pem.expose()
    ));
    // Revoke the old one by serial; the re-read confirms.
    let rp = actions::plan_revoke("pki_int", &old_facts.serial, &old_facts.subject).expect("plan");
    let done = actions::revoke(&client, &rp, &Reporter::silent("t"))
        .await
        .expect("revoke");
    assert!(done.revocation_time > 0);
    assert!(b.is_revoked("pki_int", &old.serial).await);
    // A role that does not exist: a clear API error, not a panic.
    let plan = actions::plan_replacement(&old_facts, "pki_int", "nope", None).expect("plan");
    let e = actions::issue_replacement(&client, &plan, &Reporter::silent("t"))
        .await
        .expect_err("no such role");
    assert!(e.to_string().contains("sign/nope"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certdeck_revoke_id_names_the_serial_revokes_and_the_re_read_shows_it_revoked() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 3, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let cd = Certdeck::new(dir.path(), &vault_section(&b, dir.path()));
    let (code, rows) = cd.rows().await;
    assert_eq!(code, 0, "{rows:?}");
    let serial = &pki.issued[0];
    let row = rows
        .iter()
        .find(|r| r["vault"]["serial"] == serial.as_str())
        .expect("the certificate's row");
    let id = row["id"].as_str().expect("id").to_owned();
    let subject = row["subject"].as_str().expect("subject").to_owned();

    // The plan names the serial and the subject; a dry run writes nothing.
    let (code, out, err) = cd.run(&["revoke", &id, "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(serial) && out.contains(&subject), "{out}");
    assert!(out.contains("POST pki_int/revoke"), "{out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert!(!b.is_revoked("pki_int", serial).await);
    // No terminal to ask on and no --yes: declined.
    let (code, _, err) = cd.run(&["revoke", &id]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("declined"), "{err}");
    // Read-only refuses.
    let (code, _, err) = cd.run(&["--read-only", "revoke", &id, "--yes"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("read-only"), "{err}");
    assert!(!b.is_revoked("pki_int", serial).await);
    // A Vault certificate row offers revoke, not renew.
    let (code, _, err) = cd.run(&["renew", &id, "--yes"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("it offers: revoke"), "{err}");

    // --yes: revoked, and the re-read confirms it.
    let (code, out, err) = cd.run(&["revoke", &id, "--yes"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("[write] POST pki_int/revoke") && err.contains("[verify]"),
        "{err}"
    );
    assert!(
        out.contains(&format!("ok {id}: revoked serial {serial}")),
        "{out}"
    );
    assert!(out.contains("shows it revoked"), "{out}");
    assert!(b.is_revoked("pki_int", serial).await);
    let audit = cd.audit();
    let mine: Vec<_> = audit.iter().filter(|a| a.record_id == id).collect();
    let outcomes: Vec<&str> = mine.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["dry_run", "refused", "succeeded"], "{mine:?}");
    let done = mine[2];
    assert_eq!(done.action, "vault-revoke");
    assert!(done.object.contains(serial), "{done:?}");
    assert_eq!(done.context, b.addr);
    assert_eq!(done.before_sha256.as_deref(), row["sha256"].as_str());

    // The next scan shows it revoked (CRITICAL), and it is offered no revoke any more.
    let (code, rows) = cd.rows().await;
    let r = rows.iter().find(|r| r["id"] == id.as_str()).expect("row");
    assert_eq!(r["status"], "revoked", "{r}");
    assert_eq!(code, 2);
    let (code, _, err) = cd.run(&["revoke", &id, "--yes"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("no 'revoke'"), "{err}");
}

/// nginx serving `cert`/`key` for `name` on a port; the endpoint as certdeck names it.
fn nginx_for(dir: &Path, cert: &Path, key: &Path, name: &str) -> (crate::nginx::Nginx, String) {
    let port = crate::nginx::free_port();
    let n = crate::nginx::Nginx::start(
        &dir.join("nginx"),
        &format!(
            "server {{ listen 127.0.0.1:{port} ssl; server_name {name};\n ssl_certificate {}; ssl_certificate_key {}; return 200 \"ok\\n\"; }}\n",
            cert.display(),
            key.display()
        ),
        &[port],
    );
    (n, format!("127.0.0.1:{port}@{name}"))
}

async fn served_sha256(endpoint: &str) -> String {
    let prober =
        certdeck::sources::tls::TlsProber::new(&[], Duration::from_secs(5)).expect("prober");
    let t = certdeck::sources::Target::parse(endpoint, None).expect("target");
    let rec = prober.probe(&t).await;
    rec.cert.expect("served certificate").sha256.clone()
}

fn file_row<'a>(rows: &'a [Value], path: &Path) -> &'a Value {
    let p = path.display().to_string();
    rows.iter()
        .find(|r| r["location"] == p.as_str() && r["source"] == "file")
        .unwrap_or_else(|| panic!("no row for {p}: {rows:?}"))
}

fn backups(data: &Path) -> Vec<PathBuf> {
    let d = data.join("backups/files");
    let mut v: Vec<PathBuf> = std::fs::read_dir(d)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certdeck_renew_id_replaces_a_vault_file_reloads_nginx_and_serves_the_new_certificate() {
    let b = Bao::start().await;
    setup_pki(&b, 0, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&site, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    // A certificate of 1400 hours with 400 left (backdated by its role): a warning. The
    // replacement gets the same lifetime from the file's role `web`.
    b.call(
        "POST",
        "pki_int/roles/backdated",
        json!({"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "2500h", "not_before_duration": "1000h", "key_type": "ec", "key_bits": 256}),
    )
    .await;
    let old = b
        .issue(
            "pki_int",
            "backdated",
            json!({"common_name": "app.example.test", "alt_names": "app.example.test,api.example.test", "ttl": "400h"}),
        )
        .await;
    let (cert, chain, key) = (
        site.join("app.crt"),
        site.join("chain.pem"),
        site.join("app.key"),
    );
    std::fs::write(&cert, &old.cert_pem).expect("cert");
    std::fs::write(&chain, &old.chain_pem).expect("chain");
    std::fs::write(&key, &old.key_pem).expect("key");
    // The key is group-readable and, as root, owned by another user: both are kept.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let owner = crate::common::give_away(&key);
    // nginx serves the leaf alone here (its chain is in the other file).
    let (nginx, endpoint) = nginx_for(dir.path(), &cert, &key, "app.example.test");
    let config = format!(
        "{}files = [{{ cert = {:?}, chain = {:?}, key = {:?}, role = \"web\", mount = \"pki_int\", reload = {:?}, endpoint = {:?} }}]\n",
        vault_section(&b, dir.path()),
        cert.display().to_string(),
        chain.display().to_string(),
        key.display().to_string(),
        nginx.reload_command(),
        endpoint,
    );
    let cd = Certdeck::new(dir.path(), &config);
    let (code, rows) = cd.rows().await;
    assert_eq!(code, 1, "400 hours left is a warning: {rows:?}");
    let row = file_row(&rows, &cert);
    assert_eq!(row["status"], "warning");
    let id = row["id"].as_str().expect("id").to_owned();
    assert!(rows.iter().any(|r| r["location"] == endpoint.as_str()));

    let (code, out, err) = cd.run(&["renew", &id, "--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    for want in [
        "Renew (Vault role 'web' on pki_int)",
        "POST pki_int/sign/web",
        "DNS:api.example.test",
        "ECDSA P-256",
        "never leaves this machine",
        "dry run: nothing was written",
    ] {
        assert!(out.contains(want), "the plan lacks {want}: {out}");
    }
    assert_eq!(std::fs::read_to_string(&cert).expect("cert"), old.cert_pem);

    let (code, out, err) = cd.run(&["renew", &id, "--yes"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for step in ["[issue]", "[write]", "[reload]", "[verify]"] {
        assert!(err.contains(step), "progress lacks {step}: {err}");
    }
    assert!(
        out.contains(&format!(
            "ok {id}: renewed from Vault role 'web' on pki_int"
        )),
        "{out}"
    );
    let new = first_cert(&cert);
    let old_facts = facts(&old.cert_pem);
    assert_ne!(new.sha256, old_facts.sha256);
    assert_eq!(new.sans, old_facts.sans, "the same names");
    assert_eq!(new.common_name, old_facts.common_name);
    let new_key = std::fs::read_to_string(&key).expect("key");
    assert!(
        certdeck::actions::keys::key_matches(&new.der, &new_key),
        "a fresh key, on disk"
    );
    assert!(!certdeck::actions::keys::key_matches(
        &new.der,
        &old.key_pem
    ));
    assert_eq!(mode(&key), 0o640, "the key file's mode is kept");
    assert_eq!(crate::common::owner(&key), owner, "and its owner");
    assert!(std::fs::read_to_string(&chain)
        .expect("chain")
        .contains("BEGIN CERTIFICATE"));
    assert_eq!(
        served_sha256(&endpoint).await,
        new.sha256,
        "nginx serves it"
    );
    // The old files are backed up in the data directory, not beside the live ones.
    let saved = backups(&cd.data);
    assert_eq!(saved.len(), 3, "{saved:?}");
    assert!(saved
        .iter()
        .any(|p| std::fs::read_to_string(p).is_ok_and(|s| s == old.cert_pem)));
    assert_eq!(std::fs::read_dir(&site).expect("site").count(), 3);
    let audit = cd.audit();
    let a = audit.last().expect("audit record");
    assert_eq!(
        (a.action.as_str(), a.outcome.as_str()),
        ("vault-renew", "succeeded")
    );
    assert_eq!(a.after_sha256.as_deref(), Some(new.sha256.as_str()));
    assert_eq!(a.before_sha256.as_deref(), Some(old_facts.sha256.as_str()));
    // The new certificate is one of the mount's, and the file row is fine now.
    let (code, rows) = cd.rows().await;
    assert!(rows
        .iter()
        .any(|r| r["source"] == "vault" && r["sha256"] == new.sha256.as_str()));
    assert_eq!(file_row(&rows, &cert)["status"], "ok");
    let served = rows
        .iter()
        .find(|r| r["location"] == endpoint.as_str())
        .expect("endpoint row");
    assert_eq!(served["sha256"], new.sha256.as_str());
    assert_eq!(served["status"], "ok");
    // What is left to warn about is the old certificate, still valid in the mount.
    let left: Vec<&str> = rows
        .iter()
        .filter(|r| r["status"] != "ok")
        .filter_map(|r| r["sha256"].as_str())
        .collect();
    assert_eq!(left, [old_facts.sha256.as_str()], "{rows:?}");
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_issue_reload_or_verification_leaves_the_old_certificate_in_place() {
    let b = Bao::start().await;
    setup_pki(&b, 0, 0).await;
    // A role that may not issue the names of the file.
    b.call(
        "POST",
        "pki_int/roles/narrow",
        json!({"allowed_domains": "other.test", "allow_subdomains": true, "max_ttl": "100h", "key_type": "ec", "key_bits": 256}),
    )
    .await;
    let dir = tempfile::tempdir().expect("dir");
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    let mut entries = Vec::new();
    let mut files = Vec::new();
    // An endpoint that never changes what it serves (for the verification).
    let frozen = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "v.example.test", "ttl": "100h"}),
        )
        .await;
    let srv = stapling_server(&frozen.cert_pem, &frozen.key_pem, None).await;
    for (name, role, reload, endpoint) in [
        ("issue", "narrow", "true".to_owned(), None),
        ("reload", "web", "echo reloading; exit 3".to_owned(), None),
        (
            "verify",
            "web",
            "true".to_owned(),
            Some(format!("127.0.0.1:{}@v.example.test", srv.port)),
        ),
    ] {
        let i = b
            .issue(
                "pki_int",
                "web",
                json!({"common_name": format!("{name}.example.test"), "ttl": "100h"}),
            )
            .await;
        let (cert, key) = (
            site.join(format!("{name}.crt")),
            site.join(format!("{name}.key")),
        );
        std::fs::write(&cert, format!("{}{}", i.cert_pem, i.chain_pem)).expect("cert");
        std::fs::write(&key, &i.key_pem).expect("key");
        let mut e = format!(
            "{{ cert = {:?}, key = {:?}, role = {role:?}, mount = \"pki_int\", reload = {reload:?}",
            cert.display().to_string(),
            key.display().to_string()
        );
        if let Some(ep) = endpoint {
            e.push_str(&format!(", endpoint = {ep:?}"));
        }
        e.push_str(" }");
        entries.push(e);
        files.push((name, cert, key, i));
    }
    let config = format!(
        "{}files = [\n  {}\n]\n",
        vault_section(&b, dir.path()),
        entries.join(",\n  ")
    );
    let cd = Certdeck::new(dir.path(), &config);
    let (_, rows) = cd.rows().await;
    for (name, cert, key, old) in &files {
        // The certificate and its chain in one file: the leaf is row #1.
        let loc = format!("{}#1", cert.display());
        let id = rows
            .iter()
            .find(|r| r["location"] == loc.as_str())
            .and_then(|r| r["id"].as_str())
            .unwrap_or_else(|| panic!("no row {loc}: {rows:?}"))
            .to_owned();
        let before = backups(&cd.data).len();
        let (code, out, err) = cd.run(&["renew", &id, "--yes"]).await;
        assert_eq!(code, 1, "{name}: {out}\n{err}");
        assert!(
            out.contains(&format!("FAILED {id}: step {name}")),
            "{name}: {out}"
        );
        let full = format!("{}{}", old.cert_pem, old.chain_pem);
        assert_eq!(std::fs::read_to_string(cert).expect("cert"), full, "{name}");
        assert_eq!(
            std::fs::read_to_string(key).expect("key"),
            old.key_pem,
            "{name}"
        );
        let a = cd.audit();
        let a = a.last().expect("audit");
        assert_eq!(a.outcome, "failed", "{name}");
        assert_eq!(a.failed_step.as_deref(), Some(*name));
        match *name {
            "issue" => {
                assert_eq!(backups(&cd.data).len(), before, "nothing was written");
                assert!(out.contains("nothing was written"), "{out}");
            }
            "reload" => {
                assert!(err.contains("| reloading"), "the command's output: {err}");
                assert!(out.contains("put back"), "{out}");
            }
            _ => {
                assert!(out.contains("still serves"), "{out}");
                assert!(out.contains("put back"), "{out}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_revokes_with_x_after_a_confirm_that_names_the_serial() {
    use crate::headless::{key, Headless};
    use certdeck::app::{Popup, TaskState};
    let b = Bao::start().await;
    let pki = setup_pki(&b, 2, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let src = vault::source::VaultSource::new(root_settings(&b.addr), Vec::new());
    let sources: Vec<std::sync::Arc<dyn certdeck::sources::Source>> =
        vec![std::sync::Arc::new(src)];
    let backends = sources.iter().flat_map(|s| s.actions()).collect();
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let session = Session::new(backends, false, Some(audit.clone()));
    let mut h = Headless::start(sources, session);
    h.until(20, "the first round", |a| a.fleet.len() >= 3).await;
    let serial = pki.issued[1].clone();
    h.app.run_command(&format!("filter cert/{serial}"));
    assert_eq!(h.app.fleet.rows.len(), 1);
    h.press(key('X'));
    h.until(20, "the confirm popup", |a| {
        a.ui.popup == Some(Popup::Confirm)
    })
    .await;
    let c = h.app.tasks.confirm.clone().expect("confirm");
    let plan = c.runnable().next().expect("a plan");
    let shown = plan.preview();
    assert!(
        shown.contains(&serial) && shown.contains("CN=host1.example.test"),
        "{shown}"
    );
    assert!(
        !b.is_revoked("pki_int", &serial).await,
        "nothing before yes"
    );
    h.press(key('y'));
    h.until(30, "the task done and the row re-read as revoked", |a| {
        a.tasks.running() == 0
            && a.fleet.records().iter().any(|r| {
                r.location.ends_with(&format!("cert/{serial}"))
                    && r.revocation.as_ref().is_some_and(|v| v.is_revoked())
            })
    })
    .await;
    let t = h.app.tasks.by_row.values().next().expect("task");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.log);
    assert!(b.is_revoked("pki_int", &serial).await);
    let lines = audit.read().expect("audit");
    assert!(lines.iter().any(|l| l.action == "vault-revoke"
        && l.outcome == "succeeded"
        && l.object.contains(&serial)));
}
