//! The Vault / OpenBao PKI source against the real OpenBao server (dev mode on loopback,
//! started per test): the rows of every mount, paging, the vault CLI's ways to authenticate,
//! restricted and wrong tokens, dead and slow servers, HTTPS, the source's health, and the
//! binary's `scan --vault` and `[[vault]]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::openbao::{self as bao, setup_pki, slow_proxy, Bao};
use certdeck::model::Record;
use certdeck::sources::vault::source::VaultSource;
use certdeck::sources::vault::{self, auth, VaultConfig, VaultError, VaultSettings};
use certdeck::sources::ProblemKind;
use serde_json::{json, Value};

/// Generous guard: nothing here should take a minute.
const HANG: Duration = Duration::from_secs(120);

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn settings(addr: &str, cfg: VaultConfig, e: &[(&str, &str)]) -> VaultSettings {
    VaultSettings::resolve(Some(addr), Some(&cfg), &env(e)).expect("settings")
}

/// Run the reader to completion, collecting rows.
async fn read_all(s: &VaultSettings) -> (Result<vault::VaultSummary, VaultError>, Vec<Record>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Record>(64);
    let s2 = s.clone();
    let job = tokio::spawn(async move { vault::run_into(&s2, &tx).await });
    let mut rows = Vec::new();
    let collect = async {
        while let Some(r) = rx.recv().await {
            rows.push(r);
        }
    };
    tokio::time::timeout(HANG, collect)
        .await
        .expect("reader hung");
    let res = job.await.expect("join");
    (res, rows)
}

fn vault_json(r: &Record) -> &Value {
    &r.extra.as_ref().expect("vault facts").json
}

fn kind(r: &Record) -> &str {
    vault_json(r)["kind"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_issued_certificate_and_issuer_is_a_row_with_revocation_and_outliving_flags() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 12, 3).await;
    let s = settings(&b.addr, VaultConfig::default(), &[("VAULT_TOKEN", "root")]);
    let (res, rows) = read_all(&s).await;
    let summary = res.expect("read");
    let mounts: Vec<&str> = summary.mounts.iter().map(|m| m.mount.as_str()).collect();
    assert_eq!(mounts, ["pki", "pki_int"], "discovered from sys/mounts");
    let certs: Vec<&Record> = rows
        .iter()
        .filter(|r| r.extra.is_some() && kind(r) == "certificate")
        .collect();
    // pki_int's leaves, plus the intermediate's own serial on pki (the root signed it).
    let int_rows: Vec<&&Record> = certs
        .iter()
        .filter(|r| vault_json(r)["mount"] == "pki_int")
        .collect();
    assert_eq!(int_rows.len(), pki.issued.len());
    for serial in &pki.issued {
        let r = int_rows
            .iter()
            .find(|r| vault_json(r)["serial"] == serial.as_str())
            .unwrap_or_else(|| panic!("no row for {serial}"));
        let revoked = pki.revoked.contains(serial);
        assert_eq!(vault_json(r)["revoked"], revoked, "{serial}");
        assert_eq!(vault_json(r)["revocation_time"].is_string(), revoked);
        // The mount's own record decides: revoked is the row's status, whatever its expiry.
        let rev = r.revocation.as_ref().expect("revocation");
        assert_eq!(rev.is_revoked(), revoked, "{serial}");
        assert_eq!(rev.by.as_deref(), Some("Vault pki_int"));
        let now = certdeck::clock::now_unix();
        let status = certdeck::model::assess(r, now, certdeck::model::Thresholds::default()).status;
        let want = if revoked {
            certdeck::model::Status::Revoked
        } else {
            certdeck::model::Status::Ok
        };
        assert_eq!(status, want, "{serial}");
        let c = r.cert.as_ref().expect("cert");
        assert_eq!(c.serial.replace(':', ""), serial.replace(':', ""));
        // The chain is the issuer's: intermediate then root.
        assert_eq!(r.chain.len(), 2, "{serial}");
        assert_eq!(r.chain[0].subject, "CN=certdeck test intermediate");
        assert!(r.location.ends_with(&format!("/v1/pki_int/cert/{serial}")));
    }
    let issuers: Vec<&Record> = rows
        .iter()
        .filter(|r| r.extra.is_some() && kind(r) == "issuer")
        .collect();
    let int = issuers
        .iter()
        .find(|r| {
            vault_json(r)["mount"] == "pki_int"
                && r.cert.as_ref().expect("cert").subject == "CN=certdeck test intermediate"
        })
        .expect("intermediate issuer row");
    let j = vault_json(int);
    assert_eq!(j["expires_before_leaves"], true);
    assert_eq!(j["leaves_outliving_issuer"], 1);
    assert_eq!(j["leaves_signed"], pki.issued.len() - pki.revoked.len());
    assert_eq!(j["issuer_name"], "int-2026");
    assert_eq!(j["roles"][0]["name"], "web");
    assert_eq!(j["roles"][0]["max_ttl"], 2500 * 3600);
    let note = int
        .extra
        .as_ref()
        .and_then(|x| x.note.clone())
        .expect("note");
    assert!(note.contains("before 1 of the"), "{note}");
    let m = summary
        .mounts
        .iter()
        .find(|m| m.mount == "pki_int")
        .expect("pki_int");
    assert_eq!(m.revoked, 3);
    assert!(m.detailed_listing, "OpenBao's certs/detailed is used");
    assert_eq!(m.errors, 0);
    // The leaf that outlives its issuer is marked through its chain.
    let long = int_rows
        .iter()
        .find(|r| vault_json(r)["serial"] == pki.outliving.as_str())
        .expect("long");
    let a = certdeck::model::assess(long, 0, certdeck::model::Thresholds::default());
    assert_eq!(
        a.cause.expect("cause").subject,
        "CN=certdeck test intermediate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_walks_every_page_and_bounded_concurrency_reads_them_all() {
    let b = Bao::start().await;
    // Enough serials that page boundaries fall between serials sharing a first byte (a
    // colon-form `after` skipped those on OpenBao: regression).
    let pki = setup_pki(&b, 200, 0).await;
    let mut s = settings(
        &b.addr,
        VaultConfig {
            mounts: vec!["pki_int".into()],
            concurrency: Some(3),
            ..Default::default()
        },
        &[("VAULT_TOKEN", "root")],
    );
    s.page_size = 9;
    let (res, rows) = read_all(&s).await;
    res.expect("read");
    let mut serials: Vec<String> = rows
        .iter()
        .filter(|r| kind(r) == "certificate")
        .map(|r| {
            vault_json(r)["serial"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    serials.sort();
    let mut want = pki.issued.clone();
    want.sort();
    assert_eq!(serials, want, "every serial once, over pages of 9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_the_vault_token_file_in_home() {
    let b = Bao::start().await;
    setup_pki(&b, 2, 0).await;
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join(".vault-token"), "root\n").expect("write");
    let h = home.path().to_str().expect("utf8");
    let s = settings(&b.addr, VaultConfig::default(), &[("HOME", h)]);
    assert!(matches!(
        s.auth,
        auth::AuthMethod::Token(auth::SecretSource::File(_))
    ));
    let (res, rows) = read_all(&s).await;
    res.expect("read with ~/.vault-token");
    // 3 leaves on pki_int; the root and the intermediate on pki.
    assert_eq!(rows.iter().filter(|r| kind(r) == "certificate").count(), 5);
    // Without the file and without VAULT_TOKEN: a clear error, no request needed.
    let empty = tempfile::tempdir().expect("home");
    let s = settings(
        &b.addr,
        VaultConfig::default(),
        &[("HOME", empty.path().to_str().expect("utf8"))],
    );
    let (res, _) = read_all(&s).await;
    let e = res.expect_err("no token").to_string();
    assert!(
        e.contains("no vault token") && e.contains(".vault-token"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_logs_in_with_role_id_and_secret_id_from_files_and_env() {
    let b = Bao::start().await;
    setup_pki(&b, 2, 0).await;
    b.call("POST", "sys/auth/approle", json!({"type": "approle"}))
        .await;
    b.call(
        "PUT",
        "sys/policies/acl/pki-reader",
        json!({"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }\npath \"pki_int/*\" { capabilities = [\"read\", \"list\"] }\npath \"pki/*\" { capabilities = [\"read\", \"list\"] }"}),
    )
    .await;
    b.call(
        "POST",
        "auth/approle/role/certdeck",
        json!({"token_policies": ["pki-reader"], "token_ttl": "10m"}),
    )
    .await;
    let rid = b
        .call("GET", "auth/approle/role/certdeck/role-id", Value::Null)
        .await;
    let role_id = rid["data"]["role_id"].as_str().expect("role_id").to_owned();
    let sid = b
        .call("POST", "auth/approle/role/certdeck/secret-id", Value::Null)
        .await;
    let secret_id = sid["data"]["secret_id"]
        .as_str()
        .expect("secret_id")
        .to_owned();
    let dir = tempfile::tempdir().expect("dir");
    let (rf, sf) = (dir.path().join("role_id"), dir.path().join("secret_id"));
    std::fs::write(&rf, &role_id).expect("write");
    std::fs::write(&sf, format!("{secret_id}\n")).expect("write");
    let cfg = VaultConfig {
        approle: Some(vault::AppRoleConfig {
            role_id_file: Some(rf),
            secret_id_file: Some(sf),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = settings(&b.addr, cfg, &[]);
    assert!(
        !format!("{s:?}").contains(&secret_id),
        "settings Debug leaks"
    );
    let (res, rows) = read_all(&s).await;
    res.expect("approle read");
    assert_eq!(rows.iter().filter(|r| kind(r) == "certificate").count(), 5);
    // From the environment, as `VAULT_ROLE_ID` / `VAULT_SECRET_ID`.
    let cfg = VaultConfig {
        approle: Some(vault::AppRoleConfig::default()),
        ..Default::default()
    };
    let s = settings(
        &b.addr,
        cfg.clone(),
        &[("VAULT_ROLE_ID", &role_id), ("VAULT_SECRET_ID", &secret_id)],
    );
    read_all(&s).await.0.expect("approle from env");
    // A wrong secret id is a login refusal that does not quote the secret.
    let s = settings(
        &b.addr,
        cfg,
        &[
            ("VAULT_ROLE_ID", &role_id),
            ("VAULT_SECRET_ID", "not-the-secret-id"),
        ],
    );
    let e = read_all(&s).await.0.expect_err("wrong secret id");
    assert!(matches!(e, VaultError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("auth/approle/login") && !msg.contains("not-the-secret-id"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_sys_mounts_reads_the_mounts_named_and_says_what_it_lacks_otherwise() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 3, 1).await;
    let tok = b
        .token_with_policy(
            "int-only",
            "path \"pki_int/*\" { capabilities = [\"read\", \"list\"] }",
        )
        .await;
    let s = settings(&b.addr, VaultConfig::default(), &[("VAULT_TOKEN", &tok)]);
    let e = read_all(&s).await.0.expect_err("sys/mounts is forbidden");
    let msg = e.to_string();
    assert!(matches!(e, VaultError::Forbidden { .. }), "{e:?}");
    assert!(
        msg.contains("`read` on `sys/mounts`") && msg.contains("mounts"),
        "{msg}"
    );
    assert!(!msg.contains(&tok));
    let cfg = VaultConfig {
        mounts: vec!["pki_int".into()],
        ..Default::default()
    };
    let s = settings(&b.addr, cfg, &[("VAULT_TOKEN", &tok)]);
    let (res, rows) = read_all(&s).await;
    res.expect("named mount");
    assert_eq!(
        rows.iter().filter(|r| kind(r) == "certificate").count(),
        pki.issued.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_that_may_not_list_certificates_gets_one_row_naming_the_capability() {
    let b = Bao::start().await;
    setup_pki(&b, 3, 0).await;
    // Issuers are readable, certificates and roles may not be listed. (`cert/*` itself is an
    // unauthenticated path on both servers, so `list` is the capability that matters.)
    let tok = b
        .token_with_policy(
            "issuers-only",
            "path \"pki_int/issuers\" { capabilities = [\"list\"] }\npath \"pki_int/issuer/*\" { capabilities = [\"read\"] }",
        )
        .await;
    let cfg = VaultConfig {
        mounts: vec!["pki_int".into()],
        ..Default::default()
    };
    let s = settings(&b.addr, cfg, &[("VAULT_TOKEN", &tok)]);
    let (res, rows) = read_all(&s).await;
    res.expect("whole source is fine");
    let errors: Vec<&str> = rows.iter().filter_map(|r| r.error.as_deref()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("`list` on `pki_int/certs`"),
        "{}",
        errors[0]
    );
    // The roles could not be listed: said on the issuer rows, not as certificate rows.
    let iss = rows
        .iter()
        .find(|r| r.extra.is_some() && kind(r) == "issuer")
        .expect("issuer");
    let re = vault_json(iss)["roles_error"]
        .as_str()
        .expect("roles_error");
    assert!(re.contains("`list` on `pki_int/roles`"), "{re}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_with_a_message_that_does_not_quote_it() {
    let b = Bao::start().await;
    let s = settings(
        &b.addr,
        VaultConfig::default(),
        &[("VAULT_TOKEN", "s.wrong-token-123")],
    );
    let e = read_all(&s).await.0.expect_err("refused");
    assert!(matches!(e, VaultError::Unauthorized { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("refused the token") && msg.contains("$VAULT_TOKEN"),
        "{msg}"
    );
    assert!(!msg.contains("wrong-token-123"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_address_is_unreachable_and_a_slow_server_times_out() {
    let dead = bao::free_port();
    let s = settings(
        &format!("http://127.0.0.1:{dead}"),
        VaultConfig::default(),
        &[("VAULT_TOKEN", "root")],
    );
    let e = read_all(&s).await.0.expect_err("dead");
    assert!(matches!(e, VaultError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().contains("unreachable"), "{e}");

    let b = Bao::start().await;
    let (port, _proxy) = slow_proxy(b.port, Duration::from_secs(30)).await;
    let cfg = VaultConfig {
        timeout: Some(Duration::from_secs(1)),
        ..Default::default()
    };
    let s = settings(
        &format!("http://127.0.0.1:{port}"),
        cfg,
        &[("VAULT_TOKEN", "root")],
    );
    let e = read_all(&s).await.0.expect_err("slow");
    assert!(matches!(e, VaultError::Timeout { .. }), "{e:?}");
    assert!(e.to_string().contains("within 1s"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certdeck_scan_vault_lists_the_mount_through_the_binary() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 4, 2).await;
    let home = tempfile::tempdir().expect("home");
    let out = tokio::task::spawn_blocking({
        let addr = b.addr.clone();
        let home = home.path().to_owned();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
                .args(["scan", "--vault", &addr, "-o", "json"])
                .env_clear()
                .env("HOME", &home)
                .env("VAULT_TOKEN", "root")
                .env("PATH", "/usr/bin:/bin")
                .output()
                .expect("run")
        }
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Two of the certificates are revoked: CRITICAL.
    assert_eq!(out.status.code(), Some(2), "{stderr}\n{stdout}");
    assert!(!stderr.contains("root"), "{stderr}");
    let rows: Vec<Value> = serde_json::from_str(&stdout).expect("json");
    let leaves: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            r["source"] == "vault"
                && r["vault"]["kind"] == "certificate"
                && r["vault"]["mount"] == "pki_int"
        })
        .collect();
    assert_eq!(leaves.len(), pki.issued.len());
    let revoked: Vec<&&Value> = leaves
        .iter()
        .filter(|r| r["vault"]["revoked"] == true)
        .collect();
    assert_eq!(revoked.len(), 2);
    for r in &revoked {
        assert_eq!(r["status"], "revoked", "{r}");
        assert_eq!(r["revocation"]["state"], "revoked", "{r}");
        assert_eq!(r["revocation"]["by"], "Vault pki_int", "{r}");
        assert!(r["revocation"]["time"].is_string(), "{r}");
    }
    assert!(leaves
        .iter()
        .filter(|r| r["vault"]["revoked"] == false)
        .all(|r| r["revocation"]["state"] == "good" && r["status"] == "ok"));
    assert!(rows.iter().any(|r| r["vault"]["kind"] == "issuer"
        && r["vault"]["expires_before_leaves"] == true
        && r["chain"].as_array().is_some_and(|c| c.len() == 1)));

    // A config [[vault]] with named mounts and a token file, and a token without sys/mounts.
    let tok = b
        .token_with_policy(
            "int",
            "path \"pki_int/*\" { capabilities = [\"read\", \"list\"] }",
        )
        .await;
    std::fs::write(home.path().join("tok"), &tok).expect("tok");
    let cfg = home.path().join("config.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[vault]]\naddress = \"{}\"\nmounts = [\"pki_int\"]\ntoken_file = \"{}\"\n",
            b.addr,
            home.path().join("tok").display()
        ),
    )
    .expect("cfg");
    let run = |args: Vec<String>| {
        let home = home.path().to_owned();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
                .args(args)
                .env_clear()
                .env("HOME", &home)
                .env("PATH", "/usr/bin:/bin")
                .output()
                .expect("run")
        })
    };
    let out = run(vec![
        "--config".into(),
        cfg.display().to_string(),
        "scan".into(),
        "-o".into(),
        "json".into(),
    ])
    .await
    .expect("join");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        rows.iter()
            .filter(|r| r["vault"]["kind"] == "certificate")
            .count(),
        pki.issued.len()
    );
    // No token at all through the binary: UNKNOWN, with the reason on stderr.
    let out = run(vec![
        "scan".into(),
        "--vault".into(),
        format!("http://127.0.0.1:{}", b.port),
        "--vault-mount".into(),
        "pki_int".into(),
    ])
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no vault token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_servers_are_trusted_through_vault_cacert_or_skipped_with_vault_skip_verify() {
    let b = Bao::start_tls().await;
    setup_pki(&b, 1, 0).await;
    let ca = b.ca_pem().display().to_string();
    let s = settings(
        &b.addr,
        VaultConfig::default(),
        &[("VAULT_TOKEN", "root"), ("VAULT_CACERT", &ca)],
    );
    let (res, rows) = read_all(&s).await;
    res.expect("trusted through VAULT_CACERT");
    assert!(rows.iter().any(|r| kind(r) == "certificate"));
    // Without the CA the server's certificate is not trusted: unreachable, saying why.
    let s = settings(&b.addr, VaultConfig::default(), &[("VAULT_TOKEN", "root")]);
    let e = read_all(&s).await.0.expect_err("untrusted");
    assert!(matches!(e, VaultError::Unreachable { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let s = settings(
        &b.addr,
        VaultConfig::default(),
        &[("VAULT_TOKEN", "root"), ("VAULT_SKIP_VERIFY", "true")],
    );
    read_all(&s).await.0.expect("VAULT_SKIP_VERIFY");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_reports_a_refused_token_as_failed_and_an_unreadable_mount_as_partial() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 3, 0).await;
    // A refused token: the whole round failed, its kind says so, no rows.
    let s = settings(
        &b.addr,
        VaultConfig::default(),
        &[("VAULT_TOKEN", "s.nope")],
    );
    let src = VaultSource::new(s, Vec::new());
    let r = certdeck::sources::scan(vec![Arc::new(src)]).await;
    assert!(r.records.is_empty());
    let (id, h) = &r.health[0];
    assert_eq!(id.to_string(), format!("vault {}", b.addr));
    let p = h.problem.as_ref().expect("problem");
    assert_eq!(p.kind, ProblemKind::Unauthorized, "{p:?}");
    assert!(p.message.contains("refused the token"), "{p:?}");
    // A token that reads pki_int but may not list pki's certificates: pki_int's rows are
    // there, pki is one error row, and the round is partial with the 403's capability.
    let tok = b
        .token_with_policy(
            "half",
            "path \"pki_int/*\" { capabilities = [\"read\", \"list\"] }\npath \"pki/issuers\" { capabilities = [\"list\"] }\npath \"pki/issuer/*\" { capabilities = [\"read\"] }",
        )
        .await;
    let cfg = VaultConfig {
        mounts: vec!["pki".into(), "pki_int".into()],
        ..Default::default()
    };
    let src = VaultSource::new(settings(&b.addr, cfg, &[("VAULT_TOKEN", &tok)]), Vec::new());
    let r = certdeck::sources::scan(vec![Arc::new(src)]).await;
    let leaves = r
        .records
        .iter()
        .filter(|x| x.extra.is_some() && kind(x) == "certificate")
        .filter(|x| vault_json(x)["mount"] == "pki_int")
        .count();
    assert_eq!(leaves, pki.issued.len());
    let errors: Vec<&str> = r
        .records
        .iter()
        .filter_map(|x| x.error.as_deref())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("`list` on `pki/certs`"), "{errors:?}");
    let p = r.health[0].1.problem.as_ref().expect("partial");
    assert_eq!(p.kind, ProblemKind::Forbidden, "{p:?}");
    assert!(p.message.contains("pki/certs"), "{p:?}");
    assert!(!p.message.contains(&tok));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_vault_config_is_an_error_naming_the_file_and_no_token_is_unknown() {
    let dir = tempfile::tempdir().expect("dir");
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[[vault]]\naddress = \"http://127.0.0.1:1\"\nmonuts = [\"pki\"]\n",
    )
    .expect("cfg");
    let (code, _, err) =
        crate::common::run_bin(&["--config", cfg.to_str().expect("utf8"), "scan"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("config.toml") && err.contains("monuts"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        "[[vault]]\naddress = \"http://127.0.0.1:1\"\n[[vault]]\naddress = \"http://127.0.0.1:1/\"\n",
    )
    .expect("cfg");
    let (code, _, err) =
        crate::common::run_bin(&["--config", cfg.to_str().expect("utf8"), "scan"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("same server twice"), "{err}");
    let (code, _, err) = crate::common::run_bin(&["scan", "--vault", "not a url"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("invalid vault address"), "{err}");
}
