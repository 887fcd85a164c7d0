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
