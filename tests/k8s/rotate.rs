//! Rotating plain TLS Secrets through the fixture: same names and key type, named CA or
//! self-signed, a restorable backup first, the resourceVersion precondition, and a Secret that
//! always holds a valid pair when a step fails.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::k8s_common::{acts, ca, facts, leaf, row};
use crate::k8s_fixture::{Fault, Fixture};
use certdeck::actions::k8s::CaSource;
use certdeck::actions::{ErrorKind, Step};
use k8s_openapi::api::core::v1::Secret;
use serde_json::json;
use tokio::sync::mpsc;

const LOC: &str = "fixture/team-a/secret/web-tls#tls.crt";
const PATH: &str = "/api/v1/namespaces/team-a/secrets/web-tls";

fn stored(fx: &Fixture) -> (String, String, Secret) {
    let s: Secret = fx.get_as("secrets", "team-a", "web-tls").unwrap();
    let d = s.data.clone().unwrap();
    (
        String::from_utf8(d["tls.crt"].0.clone()).unwrap(),
        String::from_utf8(d["tls.key"].0.clone()).unwrap(),
        s,
    )
}

/// A self-signed P-256 Secret with two names and an extra key.
fn seed_self_signed(fx: &Fixture) -> crate::k8s_common::Pem {
    let p = leaf(&["web.team-a.example", "www.team-a.example"], 5, None);
    let mut s = crate::k8s_fixture::tls_secret("team-a", "web-tls", &p.cert, &p.key);
    s["data"]["extra"] = json!("a2VlcCBtZQ==");
    s["metadata"]["labels"] = json!({"app": "web"});
    fx.insert_value(s);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_self_signed_secret_keeps_names_and_key_type_and_saves_a_restorable_backup() {
    let fx = Fixture::start().await;
    let old = seed_self_signed(&fx);
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    let preview = plan.to_plan(None).preview();
    assert!(preview.contains("Secret team-a/web-tls"), "{preview}");
    assert!(preview.contains("self-signed"), "{preview}");
    assert!(
        preview.contains("DNS:web.team-a.example, DNS:www.team-a.example"),
        "{preview}"
    );
    assert!(preview.contains("ECDSA P-256 (new key)"), "{preview}");
    assert!(
        preview.contains("precondition resourceVersion"),
        "{preview}"
    );
    assert!(
        preview.contains("kubectl --context fixture replace -f"),
        "{preview}"
    );
    assert!(!preview.contains("PRIVATE KEY"));

    let (tx, _rx) = mpsc::channel(64);
    let outcome = ctx.execute(&plan, &tx).await.unwrap();
    let (crt, key, s) = stored(&fx);
    let new = facts(&crt);
    let was = facts(&old.cert);
    assert_ne!(new.sha256, was.sha256);
    assert_eq!(new.sans, was.sans);
    assert_eq!(new.key, "ECDSA P-256");
    assert_eq!(new.subject, was.subject);
    assert!(new.self_issued);
    assert!(
        certdeck::actions::keys::key_matches(&new.der, &key),
        "the stored key is the new certificate's"
    );
    assert_ne!(key, old.key);
    assert_eq!(
        s.data.as_ref().unwrap()["extra"].0,
        b"keep me",
        "other keys kept"
    );
    assert_eq!(s.metadata.labels.unwrap()["app"], "web");
    assert!(
        new.not_after - was.not_after > 86_400 * 9,
        "a fresh lifetime"
    );
    assert_eq!(outcome.after_sha256.as_deref(), Some(new.sha256.as_str()));

    // The backup is the old Secret, 0600, and the documented command restores it.
    let backup = outcome.backups[0].clone();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let cmd = outcome.restore_command.clone().unwrap();
    assert_eq!(
        cmd,
        format!("kubectl --context fixture replace -f {}", backup.display())
    );
    let out = fx.kubectl(&[
        "--context",
        "fixture",
        "replace",
        "--validate=false",
        "-f",
        backup.to_str().unwrap(),
    ]);
    assert!(out.success, "{}", out.stderr);
    let (crt, key, _) = stored(&fx);
    assert_eq!(facts(&crt).sha256, was.sha256);
    assert_eq!(key, old.key);

    let a = &ctx.audit.read().unwrap()[0];
    assert_eq!(
        (a.action.as_str(), a.outcome.as_str()),
        ("rotate", "succeeded")
    );
    assert_eq!(a.before_sha256.as_deref(), Some(was.sha256.as_str()));
    assert_eq!(a.after_sha256.as_deref(), Some(new.sha256.as_str()));
    assert_eq!(a.backup.as_deref(), Some(backup.to_str().unwrap()));
    assert!(!std::fs::read_to_string(&ctx.audit.path)
        .unwrap()
        .contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_ca_signed_secret_is_signed_by_the_named_ca_secret() {
    let fx = Fixture::start().await;
    let root = ca("Team Root CA");
    let p = leaf(&["api.team-a.example"], 5, Some(&root));
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &(p.cert.clone() + &root.pem.cert),
        &p.key,
    ));
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "pki",
        "team-root",
        &root.pem.cert,
        &root.pem.key,
    ));
    let mut ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let err = ctx.plan("rotate", &rec).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("is signed by CN=Team Root CA: name that CA with --ca-secret"),
        "{err}"
    );

    ctx.ctx.ca = Some(CaSource::Secret {
        namespace: "pki".into(),
        name: "team-root".into(),
    });
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    assert_eq!(plan.issuer, "CN=Team Root CA");
    let (tx, _rx) = mpsc::channel(64);
    ctx.execute(&plan, &tx).await.unwrap();
    let (crt, key, _) = stored(&fx);
    let new = facts(&crt);
    let root_facts = facts(&root.pem.cert);
    assert_eq!(new.issuer, "CN=Team Root CA");
    assert_eq!(new.authority_key_id, root_facts.subject_key_id);
    assert!(certdeck::actions::keys::key_matches(&new.der, &key));
    assert!(
        crt.matches("BEGIN CERTIFICATE").count() == 2,
        "the chain keeps its CA"
    );
    // The new leaf's signature verifies with the CA's key.
    use x509_parser::prelude::*;
    let (_, leaf_x) = X509Certificate::from_der(&new.der).unwrap();
    let (_, ca_x) = X509Certificate::from_der(&root_facts.der).unwrap();
    leaf_x.verify_signature(Some(ca_x.public_key())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_write_in_the_middle_of_a_rotation_loses_nothing() {
    let fx = Fixture::start().await;
    let old = seed_self_signed(&fx);
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    fx.add_fault(Fault::internal_error(PATH).method("PUT"));
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert_eq!(err.step(), Some(Step::Write), "{err}");
    assert!(
        err.to_string().starts_with("step write: API error 500"),
        "{err}"
    );
    let (crt, key, _) = stored(&fx);
    assert_eq!(
        facts(&crt).sha256,
        facts(&old.cert).sha256,
        "old pair still in service"
    );
    assert_eq!(key, old.key);
    let a = &ctx.audit.read().unwrap()[0];
    assert_eq!(
        (a.outcome.as_str(), a.failed_step.as_deref()),
        ("failed", Some("write"))
    );
    let backup = a
        .backup
        .clone()
        .expect("the backup was written before the write");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(backup).unwrap()).unwrap();
    assert_eq!(saved["metadata"]["name"], "web-tls");
    assert!(
        saved["metadata"]["resourceVersion"].is_null(),
        "restorable with kubectl replace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_whose_result_does_not_verify_puts_the_old_pair_back() {
    let fx = Fixture::start().await;
    let old = seed_self_signed(&fx);
    let old_crt_b64 = fx.get("secrets", "team-a", "web-tls").unwrap()["data"]["tls.crt"].clone();
    // A misbehaving controller swaps in a key that does not match right after any new write.
    let stray = leaf(&["stray.example"], 5, None);
    fx.on_write("secrets", Duration::ZERO, move |w| {
        if w.verb != "update" || w.object["data"]["tls.crt"] == old_crt_b64 {
            return None;
        }
        let mut o = w.object.clone();
        o["data"]["tls.key"] = json!(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            stray.key.as_bytes()
        ));
        Some(o)
    });
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    let s = err.to_string();
    assert!(
        s.contains(
            "tls.key does not match tls.crt after the write; the previous certificate was put back"
        ),
        "{s}"
    );
    let (crt, key, _) = stored(&fx);
    assert_eq!(facts(&crt).sha256, facts(&old.cert).sha256);
    assert_eq!(key, old.key);
    assert!(
        certdeck::actions::keys::key_matches(&facts(&crt).der, &key),
        "a valid pair"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_stops_when_the_secret_changed_after_the_preview() {
    let fx = Fixture::start().await;
    seed_self_signed(&fx);
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    fx.modify("secrets", "team-a", "web-tls", |s| {
        s["metadata"]["labels"] = json!({"changed": "by-someone"});
    });
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("conflict (409): Secret team-a/web-tls changed since the preview"),
        "{err}"
    );
    assert_eq!(fx.request_count("PUT", PATH), 0);
    assert_eq!(
        stored(&fx).2.metadata.labels.unwrap()["changed"],
        "by-someone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_write_between_read_and_write_gets_409_and_nothing_is_written() {
    let fx = std::sync::Arc::new(Fixture::start().await);
    let old = seed_self_signed(&fx);
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    fx.add_fault(
        Fault::delay(PATH, Duration::from_millis(600))
            .method("PUT")
            .times(1),
    );
    let fx2 = fx.clone();
    let meddler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        fx2.modify("secrets", "team-a", "web-tls", |s| {
            s["metadata"]["labels"] = json!({"changed": "meanwhile"});
        });
    });
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    meddler.join().unwrap();
    assert!(
        err.to_string().starts_with(
            "step write: conflict (409): Secret team-a/web-tls was changed by someone else"
        ),
        "{err}"
    );
    let (crt, _, s) = stored(&fx);
    assert_eq!(facts(&crt).sha256, facts(&old.cert).sha256);
    assert_eq!(s.metadata.labels.unwrap()["changed"], "meanwhile");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_of_a_managed_secret_points_to_renew() {
    let fx = Fixture::start().await;
    seed_self_signed(&fx);
    fx.insert_value(crate::k8s_fixture::certificate(
        "team-a",
        "web",
        "web-tls",
        "le",
        &["web.team-a.example"],
    ));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let err = ctx.plan("rotate", &rec).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("managed by cert-manager Certificate web: use `certdeck renew"),
        "{err}"
    );
    assert_eq!(err.kind, ErrorKind::NotApplicable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_secret_write_permission_names_update_on_secrets() {
    let fx = Fixture::start().await;
    let old = seed_self_signed(&fx);
    fx.forbid("update", "secrets", Some("team-a"));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert!(err.to_string().starts_with("step write: forbidden (403): missing permission `update` on `secrets` in namespace \"team-a\""), "{err}");
    assert_eq!(stored(&fx).1, old.key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_of_an_rsa_secret_makes_a_new_rsa_key_of_the_same_size() {
    use rsa::pkcs8::EncodePrivateKey as _;
    let fx = Fixture::start().await;
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let der = rsa_key.to_pkcs8_der().unwrap();
    let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["legacy.team-a.example".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &cert.pem(),
        &key.serialize_pem(),
    ));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    assert_eq!(rec.cert.as_ref().unwrap().key, "RSA 2048");
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    assert!(plan.to_plan(None).preview().contains("RSA 2048 (new key)"));
    let (tx, _rx) = mpsc::channel(64);
    ctx.execute(&plan, &tx).await.unwrap();
    let (crt, key_pem, _) = stored(&fx);
    let new = facts(&crt);
    assert_eq!(new.key, "RSA 2048");
    assert_eq!(new.signature_algorithm, "sha256WithRSAEncryption");
    assert!(certdeck::actions::keys::key_matches(&new.der, &key_pem));
    assert!(!crt.contains(&cert.pem()));
}

/// RSA key generation takes a while: it runs on the blocking pool, so the async threads go on
/// (on a one-thread runtime, a ticker keeps ticking between the read and the issue steps).
#[tokio::test(flavor = "current_thread")]
async fn rsa_key_generation_does_not_block_the_async_thread() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fx = Fixture::start().await;
    let key =
        certdeck::actions::keys::generate(certdeck::actions::keys::KeyType::Rsa(2048)).unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["legacy.team-a.example".to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(2027, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &cert.pem(),
        &key.serialize_pem(),
    ));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", LOC).await;
    let plan = ctx.plan("rotate", &rec).await.unwrap();
    let ticks = std::sync::Arc::new(AtomicUsize::new(0));
    let t2 = ticks.clone();
    let ticker = tokio::spawn(async move {
        let mut i = tokio::time::interval(Duration::from_millis(5));
        loop {
            i.tick().await;
            t2.fetch_add(1, Ordering::SeqCst);
        }
    });
    let (tx, mut rx) = mpsc::channel(64);
    let watch = tokio::spawn(async move {
        let (mut at_read, mut at_issue) = (None, None);
        while let Some(ev) = rx.recv().await {
            if let certdeck::actions::ActionEvent::Progress(p) = ev {
                match p.step {
                    Step::Read => at_read = Some(ticks.load(Ordering::SeqCst)),
                    Step::Issue => at_issue = Some(ticks.load(Ordering::SeqCst)),
                    _ => {}
                }
            }
        }
        (at_read, at_issue)
    });
    ctx.execute(&plan, &tx).await.unwrap();
    drop(tx);
    let (r, i) = watch.await.unwrap();
    ticker.abort();
    let (r, i) = (r.unwrap(), i.unwrap());
    assert!(
        i >= r + 3,
        "the runtime kept running while the key was made ({r} -> {i} ticks)"
    );
}
