//! Keeping rows current: the watch sends changed Secrets, Certificate progress and deletions
//! through the same channel, against the fixture's watch streams.
#![allow(clippy::unwrap_used)]


use std::time::Duration;

use certdeck::model::Record;
use certdeck::sources::SourceEvent;
use crate::k8s_common::{facts, leaf, settings};
use crate::k8s_fixture::Fixture;
use tokio::sync::mpsc;

const LOC: &str = "fixture/team-a/secret/web-tls#tls.crt";

/// The next row at `location` that satisfies `ok`, within 10 s.
async fn next_row(
    rx: &mut mpsc::Receiver<SourceEvent>,
    location: &str,
    ok: impl Fn(&Record) -> bool,
) -> Record {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no matching row at {location} within 10 s"))
            .expect("watch still running");
        if let SourceEvent::Observed(r) = ev {
            if r.location == location && ok(&r) {
                return r;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sends_changed_secrets_certificate_progress_and_deletions() {
    let fx = Fixture::start().await;
    let first = leaf(&["web.team-a.example"], 10, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &first.cert,
        &first.key,
    ));
    fx.insert_value(crate::k8s_fixture::certificate(
        "team-a",
        "web",
        "web-tls",
        "ca",
        &["web.team-a.example"],
    ));
    fx.set_certificate_ready(
        "team-a",
        "web",
        &certdeck::clock::rfc3339(facts(&first.cert).not_after),
        1,
    );
    certdeck::sources::tls::install_crypto_provider();
    let mut st = settings(&fx);
    st.namespace = Some("team-a".into());
    let (tx, mut rx) = mpsc::channel(64);
    let watcher = tokio::spawn(certdeck::sources::k8s::watch::watch(st, tx));

    // The initial state.
    let sha1 = facts(&first.cert).sha256;
    next_row(&mut rx, LOC, |r| {
        r.cert.as_ref().is_some_and(|c| c.sha256 == sha1)
    })
    .await;

    // A new certificate written into the Secret.
    let second = leaf(&["web.team-a.example"], 90, None);
    let sha2 = facts(&second.cert).sha256;
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &second.cert,
        &second.key,
    ));
    next_row(&mut rx, LOC, |r| {
        r.cert.as_ref().is_some_and(|c| c.sha256 == sha2)
    })
    .await;

    // cert-manager finishing an issuance: the Secret's row follows the Certificate.
    fx.set_certificate_ready(
        "team-a",
        "web",
        &certdeck::clock::rfc3339(facts(&second.cert).not_after),
        2,
    );
    let row = next_row(&mut rx, LOC, |r| {
        r.k8s
            .as_ref()
            .and_then(|k| k.managed_by.as_ref())
            .is_some_and(|m| m.revision == Some(2))
    })
    .await;
    assert_eq!(row.k8s.unwrap().drift, None);

    // Deleting the Secret: its row says so, and the Certificate gets its own row.
    fx.remove("secrets", "team-a", "web-tls");
    let gone = next_row(&mut rx, LOC, |r| r.error.is_some()).await;
    assert_eq!(
        gone.error.as_deref(),
        Some("Secret team-a/web-tls was deleted")
    );
    let cert_row = next_row(&mut rx, "fixture/team-a/certificate/web", |_| true).await;
    assert!(cert_row
        .error
        .unwrap()
        .starts_with("Secret web-tls not found"));

    // The watch ends when the receiver goes away.
    drop(rx);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &first.cert,
        &first.key,
    ));
    tokio::time::timeout(Duration::from_secs(10), watcher)
        .await
        .expect("watch stops once nobody listens")
        .unwrap();
}
