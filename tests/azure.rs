//! Azure Key Vault through the real binary, against the loopback fixture in
//! tests/azure/kv_fixture.py (HTTPS with a test CA, the bearer challenge, Entra ID's token
//! endpoint at the authority host), whose every shape is read back here by the official
//! Python SDK (tests/azure/sdk_client.py): certdeck and the vendor's client see the same
//! certificates and versions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "azure/harness.rs"]
mod harness;

use std::collections::BTreeMap;

use harness::*;
use serde_json::{json, Value};

/// A vault with: `web` (two versions, the current one auto-renews at 80%, not yet due), `api`
/// (auto-renew point passed, not renewed: overdue), `mail` (emails only), `legacy` (disabled,
/// issuer Unknown), `fresh` (pending creation, no version yet).
struct Seeded {
    web_old: Vec<u8>,
    web_cur: Vec<u8>,
    api: Vec<u8>,
    mail: Vec<u8>,
    legacy: Vec<u8>,
}

fn seed() -> (Value, Seeded) {
    let s = Seeded {
        web_old: der("shop.example.com", -400, 365),
        web_cur: der("shop.example.com", -10, 100),
        api: der("api.example.com", -85, 100),
        mail: der("mail.example.com", -10, 100),
        legacy: der("legacy.example.com", -30, 400),
    };
    let certs = json!([
        {"name": "web", "policy": policy("Self", "AutoRenew", Some(80), None),
         "versions": [{"version": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "der_b64": b64(&s.web_old)},
                      {"version": "1f2e3d4c5b6a79880796a5b4c3d2e1f0", "der_b64": b64(&s.web_cur)}],
         "tags": {"team": "shop"}},
        {"name": "api", "policy": policy("Self", "AutoRenew", Some(80), None),
         "versions": [{"version": "aa00000000000000000000000000000a", "der_b64": b64(&s.api)}]},
        {"name": "mail", "policy": policy("Self", "EmailContacts", Some(80), None),
         "versions": [{"version": "bb00000000000000000000000000000b", "der_b64": b64(&s.mail)}]},
        {"name": "legacy", "policy": policy("Unknown", "EmailContacts", None, Some(30)),
         "versions": [{"version": "cc00000000000000000000000000000c", "der_b64": b64(&s.legacy),
                       "enabled": false}]},
        {"name": "fresh", "policy": policy("Self", "AutoRenew", Some(80), None), "versions": [],
         "pending": {"issuer": {"name": "Self"}, "csr": "Y3Ny", "cancellation_requested": false,
                     "status": "inProgress", "status_details": "Pending certificate created.",
                     "request_id": "dd00"}},
    ]);
    (certs, s)
}

fn loc(fx: &Fixture, name: &str, version: &str) -> String {
    format!("{}certificates/{name}/{version}", fx.url())
}

/// Every certificate and every version, paged (two per page), with the X.509 from `cer`, the
/// policy's issuer and lifetime actions, enabled/disabled, a pending operation, and the
/// renewal window; the official Python SDK reads the same versions from the same fixture.
#[test]
fn scan_reads_every_certificate_and_version_paged_as_the_python_sdk_does() {
    let ca = TestCa::new();
    let (certs, s) = seed();
    let fx = Fixture::start(&ca, certs);
    fx.control(json!({"page_size": 2}));
    let home = Home::new(&fx, &ca);

    let (rows, err, _code) = scan_json(&home, &ca, &[]);
    assert!(err.is_empty(), "no problem expected: {err}\n{}", fx.log());
    let az = azure_rows(&rows);
    assert_eq!(
        az.len(),
        6,
        "5 versions + the pending certificate: {rows:#?}"
    );

    // The current web version: auto-renews at 80% of lifetime, due at day 80 of 100.
    let r = row(&rows, &loc(&fx, "web", "1f2e3d4c5b6a79880796a5b4c3d2e1f0"));
    assert_eq!(r["sha256"], sha256_hex(&s.web_cur));
    assert_eq!(r["azure"]["current"], true);
    assert_eq!(r["azure"]["versions"], 2);
    assert_eq!(r["azure"]["issuer"], "Self");
    assert_eq!(r["azure"]["enabled"], true);
    assert_eq!(r["azure"]["lifetime_actions"][0]["action"], "AutoRenew");
    assert_eq!(r["azure"]["lifetime_actions"][0]["lifetime_percentage"], 80);
    let renewal = r["azure"]["renewal"].as_str().unwrap();
    assert!(
        renewal.starts_with("Key Vault auto-renews at 80% of lifetime: due "),
        "{renewal}"
    );
    let due = r["azure"]["renewal_due"].as_i64().unwrap();
    let nbf = r["azure"]["not_before"].as_i64().unwrap();
    let exp = r["azure"]["expires"].as_i64().unwrap();
    assert_eq!(due, nbf + (exp - nbf) * 80 / 100);
    assert_eq!(r["status"], "ok");
    // The older version: its own certificate, said to be superseded.
    let r = row(&rows, &loc(&fx, "web", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"));
    assert_eq!(r["sha256"], sha256_hex(&s.web_old));
    assert_eq!(r["azure"]["current"], false);
    assert_eq!(
        r["azure"]["renewal"],
        "older version: Key Vault serves version 1f2e3d4c5b6a79880796a5b4c3d2e1f0"
    );
    // Expired 35 days ago, but replaced: history, not a risk.
    assert!(r["days_left"].as_i64().unwrap() < 0, "{r:#}");
    assert_eq!(r["status"], "ok");
    assert_eq!(r["azure"]["superseded"], true);
    // Auto-renew point passed five days ago and nothing renewed it: overdue, critical although
    // 15 days are left (the warning threshold alone would say warning).
    let r = row(&rows, &loc(&fx, "api", "aa00000000000000000000000000000a"));
    assert_eq!(r["sha256"], sha256_hex(&s.api));
    assert_eq!(r["azure"]["renewal_overdue"], true);
    assert_eq!(r["status"], "critical");
    assert!(r["azure"]["renewal"]
        .as_str()
        .unwrap()
        .starts_with("renewal overdue: Key Vault auto-renews at 80% of lifetime, due "));
    // Emails only.
    let r = row(&rows, &loc(&fx, "mail", "bb00000000000000000000000000000b"));
    assert_eq!(r["sha256"], sha256_hex(&s.mail));
    assert!(r["azure"]["renewal"]
        .as_str()
        .unwrap()
        .starts_with("emails only: contacts are emailed at 80% of lifetime ("));
    assert_eq!(r["azure"]["renewal_overdue"], false);
    // Disabled, issuer Unknown.
    let r = row(
        &rows,
        &loc(&fx, "legacy", "cc00000000000000000000000000000c"),
    );
    assert_eq!(r["sha256"], sha256_hex(&s.legacy));
    assert_eq!(r["azure"]["enabled"], false);
    assert_eq!(
        r["azure"]["renewal"],
        "disabled: Key Vault neither serves nor renews it"
    );
    // Pending creation: a row with the operation, no certificate yet.
    let r = row(&rows, &format!("{}certificates/fresh", fx.url()));
    assert_eq!(r["azure"]["pending"]["status"], "inProgress");
    assert_eq!(
        r["azure"]["renewal"],
        "a new version is pending (certificate operation in progress)"
    );

    // Paged: the list took three pages (5 certificates, 2 a page), web's versions one.
    let st = fx.stats();
    let paths: Vec<&str> = st["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let lists = paths.iter().filter(|p| **p == "GET /certificates").count();
    assert!(lists >= 3, "three pages of the list: {paths:?}");
    assert!(
        st["challenges"].as_i64().unwrap() >= 1,
        "bearer challenge answered"
    );
    assert_eq!(st["tokens"], 1, "one token, reused for every request");

    // The official Python SDK through the same fixture sees the same versions.
    let sdk = home.sdk(&[&fx.url(), "list"]);
    let pending = sdk
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "fresh")
        .unwrap();
    assert_eq!(pending["pending"]["status"], "inProgress");
    let theirs: BTreeMap<String, (String, bool, bool)> = sdk
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["name"] != "fresh")
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                (
                    v["sha256"].as_str().unwrap().to_owned(),
                    v["enabled"].as_bool().unwrap(),
                    v["current"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    let ours: BTreeMap<String, (String, bool, bool)> = az
        .iter()
        .filter(|r| r["sha256"].is_string())
        .map(|r| {
            (
                r["location"].as_str().unwrap().to_owned(),
                (
                    r["sha256"].as_str().unwrap().to_owned(),
                    r["azure"]["enabled"].as_bool().unwrap(),
                    r["azure"]["current"].as_bool().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "certdeck and the Python SDK disagree");
    let api = sdk
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "api")
        .unwrap();
    assert_eq!(api["issuer"], "Self");
    assert_eq!(api["lifetime_actions"][0]["lifetime_percentage"], 80);
    assert!(api["pending"].is_null());
}

fn small_seed() -> Value {
    json!([
        {"name": "a", "policy": policy("Self", "AutoRenew", Some(80), None),
         "versions": [{"version": "a1", "der_b64": b64(&der("a.example.com", -1, 90))}]},
        {"name": "b", "policy": policy("Self", "AutoRenew", None, Some(30)),
         "versions": [{"version": "b1", "der_b64": b64(&der("b.example.com", -1, 90))}]},
        {"name": "c", "policy": policy("Self", "EmailContacts", Some(90), None),
         "versions": [{"version": "c1", "der_b64": b64(&der("c.example.com", -1, 90))}]},
    ])
}

/// Missing, rejected and refused credentials: each a health message that names what is
/// missing, never the secret or a token; workload identity (a federated token file) works.
#[test]
fn credentials_missing_or_rejected_are_health_messages_naming_what_is_missing() {
    let ca = TestCa::new();
    let fx = Fixture::start(&ca, small_seed());
    let mut home = Home::new(&fx, &ca);
    let label = format!("azure 127.0.0.1:{}", fx.port);

    // A wrong client secret: Entra ID's answer, not the secret.
    home.set("AZURE_CLIENT_SECRET", "wrong-secret-Zq9");
    let (rows, err, code) = scan_json(&home, &ca, &[]);
    assert!(azure_rows(&rows).is_empty(), "{rows:#?}");
    assert_ne!(code, 0);
    assert!(err.contains(&label), "{err}");
    assert!(err.contains("no Azure credentials"), "{err}");
    assert!(err.contains("AADSTS7000215"), "{err}");
    assert!(
        !err.contains("wrong-secret-Zq9") && !err.contains("kvtok-"),
        "{err}"
    );

    // Nothing configured: every credential of the chain says why it is not usable.
    home.unset("AZURE_CLIENT_SECRET");
    home.unset("AZURE_CLIENT_ID");
    home.unset("AZURE_TENANT_ID");
    let (_, err, code) = scan_json(&home, &ca, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET not set"),
        "{err}"
    );
    assert!(err.contains("AZURE_FEDERATED_TOKEN_FILE not set"), "{err}");
    assert!(err.contains("managed identity"), "{err}");

    // Workload identity (AKS): a federated token file, exchanged as a client assertion.
    let token = home.path("azure-identity-token");
    write_file(&token, FEDERATED);
    home.set("AZURE_TENANT_ID", TENANT);
    home.set("AZURE_CLIENT_ID", CLIENT_ID);
    home.set("AZURE_FEDERATED_TOKEN_FILE", token.to_str().unwrap());
    let (rows, err, _) = scan_json(&home, &ca, &[]);
    assert!(err.is_empty(), "{err}\n{}", fx.log());
    assert_eq!(azure_rows(&rows).len(), 3);

    // The Azure CLI's login: `az account get-access-token` for the vault's scope.
    home.unset("AZURE_FEDERATED_TOKEN_FILE");
    home.unset("AZURE_CLIENT_ID");
    home.fake_az();
    let (rows, err, _) = scan_json(&home, &ca, &[]);
    assert!(err.is_empty(), "{err}\n{}", fx.log());
    assert_eq!(azure_rows(&rows).len(), 3);
    let args = std::fs::read_to_string(home.path("az-args")).unwrap();
    assert!(
        args.contains("account get-access-token -o json --scope https://vault.azure.net/.default"),
        "{args}"
    );

    // A token the vault does not accept: the vault's 401.
    fx.control(json!({"reject_tokens": true}));
    let (_, err, code) = scan_json(&home, &ca, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("certificates list on 127.0.0.1") && err.contains("401 Unauthorized"),
        "{err}"
    );
    assert!(err.contains("AKV10032"), "{err}");
    assert!(!err.contains("kvtok-") && !err.contains(FEDERATED), "{err}");
}

/// 403 names the permission and the role; 429 with Retry-After is waited out; a list page
/// that fails half way and a `cer` that does not parse keep what was read.
#[test]
fn forbidden_throttled_broken_pages_and_bodies_are_health_messages_or_error_rows() {
    let ca = TestCa::new();
    let fx = Fixture::start(&ca, small_seed());
    let home = Home::new(&fx, &ca);
    let vault = fx.url();

    fx.control(json!({"forbid": ["list"]}));
    let (rows, err, code) = scan_json(&home, &ca, &["--azure-vault", &vault]);
    assert!(azure_rows(&rows).is_empty());
    assert_ne!(code, 0);
    assert!(
        err.contains("certificates list denied on 127.0.0.1")
            && err.contains("403 Forbidden/AccessDenied")
            && err.contains("needs the 'certificates/list' permission (access policy)")
            && err.contains("Key Vault Certificate User"),
        "{err}"
    );
    assert!(
        err.contains("does not have certificates list permission"),
        "{err}"
    );

    // Listing allowed, reading denied: error rows, and the vault's health says why.
    fx.control(json!({"forbid": ["get"]}));
    let (rows, err, _) = scan_json(&home, &ca, &["--azure-vault", &vault]);
    let az = azure_rows(&rows);
    assert_eq!(az.len(), 3, "{rows:#?}");
    for r in &az {
        assert!(
            r["error"]
                .as_str()
                .unwrap()
                .contains("needs the 'certificates/get' permission"),
            "{r:#?}"
        );
    }
    assert!(err.contains("certificates/get"), "{err}");

    // Throttled: three 429s with Retry-After 1 s, retried by the SDK's pipeline.
    fx.control(json!({"throttle": 3, "retry_after": 1}));
    let t = std::time::Instant::now();
    let (rows, err, _) = scan_json(&home, &ca, &["--azure-vault", &vault]);
    assert!(err.is_empty(), "{err}");
    assert_eq!(azure_rows(&rows).len(), 3);
    assert_eq!(fx.stats()["throttled"], 3);
    assert!(
        t.elapsed() >= std::time::Duration::from_secs(2),
        "Retry-After honoured"
    );

    // The second list page fails (500, retried, then given up): page one's rows stay.
    fx.control(json!({"page_size": 2, "fail_page": 2}));
    let (rows, err, _) = scan_json(&home, &ca, &["--azure-vault", &vault]);
    assert_eq!(azure_rows(&rows).len(), 2, "{rows:#?}");
    assert!(
        err.contains("page 2 failed after 2 certificates were read"),
        "{err}"
    );

    // A `cer` that does not parse: an error row; the others load.
    fx.control(json!({"bad_cer": ["b"]}));
    let (rows, _, _) = scan_json(&home, &ca, &["--azure-vault", &vault]);
    let r = row(&rows, &format!("{vault}certificates/b/b1"));
    assert!(
        r["error"].as_str().unwrap().contains("does not parse"),
        "{r:#?}"
    );
    assert!(row(&rows, &format!("{vault}certificates/a/a1"))["error"].is_null());
    assert_eq!(
        row(&rows, &format!("{vault}certificates/b/b1"))["azure"]["renewal"],
        "Key Vault auto-renews 30 days before expiry: due ".to_owned()
            + &row(&rows, &format!("{vault}certificates/b/b1"))["azure"]["renewal_due"]
                .as_i64()
                .map(certdeck::clock::date)
                .unwrap()
    );

    // A vault slower than the time limit: timed out, not hung.
    write_file(
        &home.path("config.toml"),
        &format!(
            "[[azure]]\nvault = \"{vault}\"\nverify_challenge_resource = false\ntimeout = \"1s\"\nmax_retries = 0\n"
        ),
    );
    fx.control(json!({"delay": 3}));
    let (rows, err, code) = scan_json(&home, &ca, &[]);
    assert!(azure_rows(&rows).is_empty());
    assert_ne!(code, 0);
    assert!(err.contains("timed out"), "{err}");
}

/// `certdeck renew ID` on a Key Vault row: the preview, a dry run that writes nothing, then a
/// new version from the policy (create, pending until completed), verified by re-reading; the
/// audit record; an issuer that cannot issue is refused with the reason; a creation that fails
/// leaves the previous version current. The official Python SDK's own create goes through the
/// same fixture shapes.
#[test]
fn renew_creates_a_new_version_from_the_policy_verified_and_audited() {
    let ca = TestCa::new();
    let mut certs = small_seed();
    certs.as_array_mut().unwrap().push(json!(
        {"name": "byo", "policy": policy("Unknown", "EmailContacts", Some(80), None),
         "versions": [{"version": "e1", "der_b64": b64(&der("byo.example.com", -1, 90))}]}
    ));
    let fx = Fixture::start(&ca, certs);
    fx.control(json!({"pending_polls": 2}));
    let home = Home::new(&fx, &ca);
    // `renew` finds its rows from the config file; the test CA is trusted there too.
    let config = format!(
        "ca_files = [\"{}\"]\n[[azure]]\nvault = \"{}\"\nverify_challenge_resource = false\ntimeout = \"5s\"\n",
        ca.ca().display(),
        fx.url()
    );
    write_file(&home.path("config.toml"), &config);
    let vault = fx.url();
    let certdeck = |args: &[&str]| run(home.certdeck().args(args));
    let scan = || {
        let (out, err, _) = certdeck(&["scan", "-o", "json"]);
        serde_json::from_str::<Vec<Value>>(&out).unwrap_or_else(|_| panic!("{out}{err}"))
    };
    let rows = scan();
    let a1 = row(&rows, &format!("{vault}certificates/a/a1")).clone();
    let id = a1["id"].as_str().unwrap().to_owned();

    let (out, err, code) = certdeck(&["renew", &id, "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Renew a (new Key Vault version from its policy)"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "POST {vault}certificates/a/create?api-version=7.5"
        )),
        "{out}"
    );
    assert!(out.contains("issuer:     Self"), "{out}");
    assert!(out.contains("12 months from issue"), "{out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert_eq!(fx.stats()["creates"], 0);

    let (out, err, code) = certdeck(&["renew", &id, "--yes", "--wait", "30s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("renewed: version "), "{out}");
    assert!(err.contains("[wait] operation inProgress"), "{err}");
    assert_eq!(fx.stats()["creates"], 1);
    let sent = &fx.stats()["create_bodies"][0];
    assert_eq!(sent["policy"]["issuer"]["name"], "Self", "{sent}");
    assert_eq!(
        sent["policy"]["lifetime_actions"][0]["action"]["action_type"],
        "AutoRenew"
    );

    // Re-read: a new current version, the old one kept as an older version.
    let rows = scan();
    let mine: Vec<&Value> = rows.iter().filter(|r| r["azure"]["name"] == "a").collect();
    assert_eq!(mine.len(), 2, "{mine:#?}");
    let new = mine.iter().find(|r| r["azure"]["current"] == true).unwrap();
    assert_ne!(new["sha256"], a1["sha256"]);
    assert!(new["azure"]["expires"].as_i64() > a1["azure"]["expires"].as_i64());
    let old = row(&rows, &format!("{vault}certificates/a/a1"));
    assert_eq!(old["azure"]["current"], false);
    assert_eq!(old["sha256"], a1["sha256"]);

    // The audit record: before and after.
    let audit = std::fs::read_to_string(home.path("data/audit.jsonl")).unwrap();
    let rec: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(rec["action"], "azure-renew", "{rec}");
    assert_eq!(rec["before_sha256"], a1["sha256"], "{rec}");
    assert_eq!(rec["after_sha256"], new["sha256"], "{rec}");
    assert!(!audit.contains(SECRET) && !audit.contains("kvtok-"));

    // Issuer Unknown: refused, and why.
    let byo = row(&rows, &format!("{vault}certificates/byo/e1"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (out, err, code) = certdeck(&["renew", &byo, "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("issuer is Unknown"), "{err}");

    // A creation that fails: the step is named, the previous version stays current.
    fx.control(json!({"create_fails": true}));
    let b1 = row(&rows, &format!("{vault}certificates/b/b1")).clone();
    let (out, err, code) = certdeck(&["renew", b1["id"].as_str().unwrap(), "--yes"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("FAILED") && out.contains("step wait"), "{out}");
    assert!(out.contains("CertificateOperationFailed"), "{out}");
    let rows = scan();
    let b = row(&rows, &format!("{vault}certificates/b/b1"));
    assert_eq!(b["azure"]["current"], true);
    assert_eq!(b["sha256"], b1["sha256"]);
    assert_eq!(b["azure"]["pending"]["status"], "failed");

    // The official Python SDK's create through the same shapes (202, pending, completed).
    fx.control(json!({}));
    let made = home.sdk(&[&vault, "create", "c"]);
    assert_eq!(made["name"], "c");
    let rows = scan();
    let c_cur = rows
        .iter()
        .find(|r| r["azure"]["name"] == "c" && r["azure"]["current"] == true)
        .unwrap();
    assert_eq!(c_cur["sha256"], made["sha256"]);
    assert_eq!(c_cur["azure"]["version"], made["version"]);
}

/// The dashboard's table and details of Key Vault rows: the overdue renewal is a critical row
/// saying so, and the details carry the vault, version, policy and renewal window.
#[test]
fn dashboard_shows_an_overdue_key_vault_row_as_critical_with_its_renewal_details() {
    use certdeck::app::{App, AppEvent};
    use certdeck::config::keymap::Keymap;
    use certdeck::config::theme::Theme;
    use certdeck::model::status::DAY;
    use certdeck::model::{Record, Thresholds};
    use certdeck::sources::azure::facts::{record_for, KvFacts, LifetimeAction};
    use certdeck::sources::{SourceEvent, SourceId};
    use certdeck::testing::{facts, NOW};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let kv = |name: &str, version: &str, nbf: i64, exp: i64, current: bool| -> Record {
        let f = KvFacts {
            vault: "https://shop.vault.azure.net/".into(),
            vault_name: "shop".into(),
            name: name.into(),
            version: version.into(),
            id: format!("https://shop.vault.azure.net/certificates/{name}/{version}"),
            current,
            current_version: Some("v2".into()),
            enabled: Some(true),
            not_before: Some(nbf),
            expires: Some(exp),
            issuer: Some("Self".into()),
            validity_months: Some(12),
            lifetime_actions: vec![LifetimeAction {
                action: "AutoRenew".into(),
                lifetime_percentage: Some(80),
                days_before_expiry: None,
            }],
            versions: 2,
            ..KvFacts::default()
        };
        let cert = facts(
            &format!("{name}.example.com"),
            &format!("{name}.example.com"),
            nbf,
            exp,
            "ECDSA P-256",
            &[&format!("{name}.example.com")],
        );
        record_for(
            &f.id.clone(),
            Some(std::sync::Arc::new(cert)),
            f.into_extra(NOW),
            NOW,
        )
    };
    let mut a = App::new(NOW, Thresholds::default(), Keymap::default());
    a.update(AppEvent::Resize(120, 40));
    let src = std::sync::Arc::new(SourceId::new(certdeck::sources::azure::facts::KIND, "shop"));
    for r in [
        kv("api", "v2", NOW - 85 * DAY, NOW + 15 * DAY, true),
        kv("web", "v2", NOW - 10 * DAY, NOW + 90 * DAY, true),
    ] {
        a.update(AppEvent::Source(SourceEvent::Observed {
            source: src.clone(),
            record: r,
        }));
    }
    let draw = |a: &App| {
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).unwrap();
        term.draw(|f| certdeck::ui::render(a, &Theme::default_dark(), f))
            .unwrap();
        let buf = term.backend().buffer().clone();
        let mut out = String::new();
        for y in 0..buf.area.height {
            let mut line = String::new();
            for x in 0..buf.area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    };
    let table = draw(&a);
    let api = table
        .lines()
        .find(|l| l.contains("api.example.com"))
        .unwrap();
    assert!(
        api.contains("CRIT") && api.contains(" 15 "),
        "15 days left, yet critical: {table}"
    );
    insta::assert_snapshot!("azure_table_120x40", table);
    let key = |c: KeyCode| AppEvent::Key(KeyEvent::new(c, KeyModifiers::NONE));
    a.update(key(KeyCode::Char('/')));
    for c in "api.example".chars() {
        a.update(key(KeyCode::Char(c)));
    }
    a.update(key(KeyCode::Enter));
    a.update(key(KeyCode::Enter));
    let details = draw(&a);
    assert!(
        details.contains("auto-renews at 80% of lifetime"),
        "{details}"
    );
    insta::assert_snapshot!("azure_details_120x40", details);
}
