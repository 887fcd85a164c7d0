//! The live Kubernetes source: after its first round, changed, added and removed Secrets and
//! cert-manager progress arrive through the watch (from the round's list versions, without
//! listing again), and an expired watch version makes it list once more and go on.

use std::time::Duration;

use certdeck::model::Record;
use certdeck::sources::{FleetStore, Mode, SourceEvent, Supervisor};
use tokio::sync::mpsc;

use crate::k8s_common::{facts, leaf, settings};
use crate::k8s_fixture::Fixture;

const LOC: &str = "fixture/team-a/secret/web-tls#tls.crt";
const SECRETS: &str = "/api/v1/namespaces/team-a/secrets";

/// A live supervisor over the fixture's `team-a` namespace, and the store its events feed.
struct Live {
    rx: mpsc::Receiver<SourceEvent>,
    store: FleetStore,
    _sup: Supervisor,
}

impl Live {
    fn start(fx: &Fixture) -> Live {
        Live::start_with(fx, |_| {})
    }

    fn start_with(
        fx: &Fixture,
        tune: impl FnOnce(&mut certdeck::sources::k8s::K8sSettings),
    ) -> Live {
        certdeck::sources::tls::install_crypto_provider();
        let mut st = settings(fx);
        st.namespace = Some("team-a".into());
        tune(&mut st);
        let (tx, rx) = mpsc::channel(64);
        let sources = certdeck::sources::k8s::source::sources_for(st);
        let sup = Supervisor::start(sources, &Default::default(), Mode::Live, tx);
        Live {
            rx,
            store: FleetStore::new(),
            _sup: sup,
        }
    }

    /// Apply events until `ok` holds of the store (10 s at most).
    async fn until(&mut self, what: &str, ok: impl Fn(&FleetStore) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ok(&self.store) {
            let ev = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("not within 10 s: {what}"))
                .expect("the source is running");
            self.store.apply(ev, certdeck::clock::now_unix());
        }
    }
}

fn at<'a>(s: &'a FleetStore, loc: &str) -> Option<&'a Record> {
    s.fleet().records().iter().find(|r| r.location == loc)
}

fn sha_at(s: &FleetStore, loc: &str) -> Option<String> {
    at(s, loc).and_then(|r| r.cert.as_ref().map(|c| c.sha256.clone()))
}

/// List (not watch) requests for the namespace's Secrets.
fn secret_lists(fx: &Fixture) -> usize {
    fx.requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == SECRETS && !r.query.contains("watch=true"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_changed_added_and_deleted_show_up_live_without_listing_again() {
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
    let mut live = Live::start(&fx);
    let sha1 = facts(&first.cert).sha256;
    live.until("the first round", |s| sha_at(s, LOC) == Some(sha1.clone()))
        .await;
    // The watch is open once it has asked for the Secrets from the list's version.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !fx
        .requests()
        .iter()
        .any(|r| r.path == SECRETS && r.query.contains("watch=true"))
    {
        assert!(tokio::time::Instant::now() < deadline, "no watch request");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lists = secret_lists(&fx);

    // Changed: a new certificate written into the Secret.
    let second = leaf(&["web.team-a.example"], 90, None);
    let sha2 = facts(&second.cert).sha256;
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &second.cert,
        &second.key,
    ));
    live.until("the changed Secret", |s| {
        sha_at(s, LOC) == Some(sha2.clone())
    })
    .await;

    // cert-manager finishing an issuance: the Secret's row follows the Certificate.
    fx.set_certificate_ready(
        "team-a",
        "web",
        &certdeck::clock::rfc3339(facts(&second.cert).not_after),
        2,
    );
    live.until("the Certificate's revision 2 on the row", |s| {
        at(s, LOC)
            .and_then(|r| r.k8s.as_ref())
            .and_then(|k| k.managed_by.as_ref())
            .is_some_and(|m| m.revision == Some(2))
    })
    .await;
    assert_eq!(
        at(&live.store, LOC).unwrap().k8s.as_ref().unwrap().drift,
        None
    );

    // Added: a new Secret.
    let api = leaf(&["api.team-a.example"], 30, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a", "api-tls", &api.cert, &api.key,
    ));
    let api_loc = "fixture/team-a/secret/api-tls#tls.crt";
    live.until("the added Secret", |s| at(s, api_loc).is_some())
        .await;

    // Deleted: its row leaves the fleet; the Certificate that names it gets its own row.
    fx.remove("secrets", "team-a", "web-tls");
    live.until("the deleted Secret's row gone", |s| at(s, LOC).is_none())
        .await;
    live.until("the Certificate's own row", |s| {
        at(s, "fixture/team-a/certificate/web").is_some_and(|r| {
            r.error
                .as_deref()
                .is_some_and(|e| e.starts_with("Secret web-tls not found"))
        })
    })
    .await;
    assert_eq!(
        secret_lists(&fx),
        lists,
        "every change came through the watch: no Secret was listed again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_version_lists_once_more_and_the_feed_goes_on() {
    let fx = Fixture::start().await;
    let first = leaf(&["web.team-a.example"], 10, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &first.cert,
        &first.key,
    ));
    // Watch requests end every second, so the feed asks again from its last version.
    let mut live = Live::start_with(&fx, |st| st.watch_timeout = Duration::from_secs(1));
    live.until("the first round", |s| at(s, LOC).is_some())
        .await;
    let lists = secret_lists(&fx);
    // The server forgets history: the next watch's version is too old (410 Gone).
    fx.expire_continue_tokens();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = leaf(&["late.team-a.example"], 45, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "late-tls",
        &later.cert,
        &later.key,
    ));
    let late = "fixture/team-a/secret/late-tls#tls.crt";
    live.until("the Secret written after the history was lost", |s| {
        at(s, late).is_some()
    })
    .await;
    assert!(
        secret_lists(&fx) > lists,
        "the expired version made the source list the Secrets again"
    );
}
