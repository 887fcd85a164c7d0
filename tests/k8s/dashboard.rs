//! The dashboard on Kubernetes rows, headless: the real app and the real runner (a live
//! supervisor of the Kubernetes source, the action session with the Kubernetes backend)
//! against the fixture API server, without a terminal. Rows change, appear and disappear live
//! without a key press; a source that fails keeps its rows, marked stale; mark, renew, confirm
//! and progress; the rows are re-read, once per source for a bulk renew.

use std::time::Duration;

use certdeck::actions::{AuditLog, Session};
use certdeck::app::{Popup, TaskState};

use crate::headless::{key, Headless};

use crate::k8s_common::{leaf, settings};
use crate::k8s_fixture::Fixture;

/// The headless dashboard over the fixture's namespace `ns`, with the audit log and backups
/// in the fixture's directory.
fn start(fx: &Fixture, ns: &str) -> (Headless, AuditLog) {
    certdeck::sources::tls::install_crypto_provider();
    let mut st = settings(fx);
    st.namespace = Some(ns.into());
    let sources = certdeck::sources::k8s::source::sources_for(st);
    let backends = sources.iter().flat_map(|s| s.actions()).collect();
    let audit = AuditLog::new(fx.dir().join("data/audit.jsonl"));
    let mut opts = certdeck::actions::ActionOptions {
        wait: Duration::from_secs(10),
        ..Default::default()
    };
    opts.backups.dir = fx.dir().join("data/backups");
    let session = Session::new(backends, false, Some(audit.clone())).with_options(opts);
    (Headless::start(sources, session), audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_changed_added_and_deleted_show_up_without_a_key_press() {
    let fx = Fixture::start().await;
    crate::shop::seed(&fx);
    let (mut h, _audit) = start(&fx, "shop");
    let legacy = "fixture/shop/secret/legacy-tls#tls.crt";
    h.until(10, "the first round", |a| a.fleet.len() >= 3).await;
    let before = h.row(legacy).unwrap().cert.as_ref().unwrap().sha256.clone();

    // Changed.
    let p = leaf(&["legacy.shop.example"], 200, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop",
        "legacy-tls",
        &p.cert,
        &p.key,
    ));
    h.until(10, "the new certificate on the row", |a| {
        a.fleet
            .records()
            .iter()
            .any(|r| r.location == legacy && r.cert.as_ref().is_some_and(|c| c.sha256 != before))
    })
    .await;
    let id = h.row(legacy).unwrap().id.clone();
    assert!(
        h.app.fleet.changed.contains(&id),
        "the row is marked as changed"
    );

    // Added.
    let p = leaf(&["new.shop.example"], 50, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop", "new-tls", &p.cert, &p.key,
    ));
    let added = "fixture/shop/secret/new-tls#tls.crt";
    h.until(10, "the added Secret's row", |a| {
        a.fleet.records().iter().any(|r| r.location == added)
    })
    .await;
    assert!(
        h.app
            .fleet
            .rows
            .iter()
            .any(|&i| h.app.fleet.records()[i].location == added),
        "and it is on screen"
    );

    // Deleted.
    fx.remove("secrets", "shop", "legacy-tls");
    h.until(10, "the deleted Secret's row gone", |a| {
        !a.fleet.records().iter().any(|r| r.location == legacy)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_stops_answering_keeps_its_rows_marked_stale() {
    let fx = Fixture::start().await;
    crate::shop::seed(&fx);
    let (mut h, _audit) = start(&fx, "shop");
    h.until(10, "the first round", |a| a.fleet.len() >= 3).await;
    let n = h.app.fleet.len();
    // The credentials stop working: the next round fails as a whole (401).
    fx.remove_token(crate::k8s_fixture::ADMIN_TOKEN);
    h.press(key('R'));
    h.until(10, "the source failing", |a| {
        a.fleet
            .store()
            .sources()
            .any(|(_, s)| s.health.state == certdeck::sources::HealthState::Failing)
    })
    .await;
    let (_, st) = h.app.fleet.store().sources().next().unwrap();
    let p = st.health.problem.as_ref().unwrap();
    assert_eq!(
        p.kind,
        certdeck::sources::ProblemKind::Unauthorized,
        "{p:?}"
    );
    assert!(p.message.contains("unauthorized (401)"), "{p:?}");
    let secrets: Vec<usize> = h
        .app
        .fleet
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.location.contains("/secret/"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(secrets.len(), 3, "the rows are kept");
    assert!(h.app.fleet.len() >= n, "nothing was dropped");
    for i in secrets {
        assert!(
            h.app
                .fleet
                .stale_age(i, h.app.now + 90)
                .is_some_and(|age| age >= 90),
            "row {} is marked stale with its age",
            h.app.fleet.records()[i].location
        );
    }
    let msg = h.app.ui.message.clone().unwrap().0;
    assert!(msg.contains("k8s fixture: failing: unauthorized"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_renew_confirm_and_follow_progress_then_one_reread_per_source() {
    let fx = Fixture::start().await;
    crate::shop::seed(&fx);
    let (mut h, audit) = start(&fx, "shop");
    h.until(10, "the first round", |a| a.fleet.len() >= 3).await;

    // Mark the two managed rows (their Secrets' tls.crt) and the plain Secret.
    h.app.run_command("filter shop/secret/.*#tls.crt");
    assert_eq!(h.app.fleet.rows.len(), 3);
    for _ in 0..3 {
        h.press(key(' '));
    }
    h.press(key('n'));
    h.until(10, "the confirm popup", |a| {
        a.ui.popup == Some(Popup::Confirm)
    })
    .await;
    let c = h.app.tasks.confirm.clone().unwrap();
    assert_eq!(c.plans.len(), 3);
    let renews: Vec<_> = c
        .runnable()
        .filter(|p| p.title.starts_with("Renew"))
        .collect();
    assert_eq!(
        renews.len(),
        2,
        "the two managed rows renew through cert-manager"
    );
    assert!(renews.iter().all(|p| {
        let s = p.preview();
        s.contains("/status") && s.contains("Certificate shop/")
    }));
    assert!(
        c.runnable().any(|p| p.title.starts_with("Rotate")),
        "the plain Secret rotates"
    );
    // Only renew the managed ones: cancel, and mark again without the plain Secret.
    h.press(key('n'));
    assert!(h.app.tasks.confirm.is_none());
    h.app
        .run_command("filter shop/secret/(web|api)-tls#tls.crt");
    h.press(key(' '));
    h.press(key(' '));
    h.press(key('n'));
    h.until(10, "the confirm popup again", |a| {
        a.ui.popup == Some(Popup::Confirm)
    })
    .await;
    fx.clear_requests();
    h.press(key('y'));
    assert_eq!(h.app.tasks.running(), 2);
    h.until(30, "both tasks done and their rows re-read", |a| {
        a.tasks.running() == 0
            && a.tasks.by_row.values().all(|t| {
                a.fleet.get(&t.record_id).is_some_and(|r| {
                    r.cert
                        .as_ref()
                        .is_some_and(|c| (c.not_after - certdeck::clock::now_unix()) / 86_400 > 80)
                })
            })
    })
    .await;
    let tasks: Vec<_> = h.app.tasks.by_row.values().collect();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.log);
        assert!(
            t.log.iter().any(|l| l.contains("Issuing")),
            "progress shows the status write: {:?}",
            t.log
        );
    }
    // Two tasks ended; their rows were re-read with one list of the namespace's Secrets, not
    // one per row (the re-reads are gathered per source).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lists = fx
        .requests()
        .iter()
        .filter(|r| {
            r.method == "GET"
                && r.path == "/api/v1/namespaces/shop/secrets"
                && !r.query.contains("watch=true")
        })
        .count();
    assert_eq!(lists, 1, "one re-read of the source for both rows");
    let lines = audit.read().unwrap();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.action == "renew" && l.outcome == "succeeded")
            .count(),
        2,
        "{lines:?}"
    );
}
