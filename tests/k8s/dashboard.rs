//! The dashboard's action flow on Kubernetes rows, through the headless app, the real
//! dispatcher and the real kube client against the fixture API server: mark, renew, confirm,
//! progress, and the row re-read with its new revision.
#![allow(clippy::unwrap_used)]


use std::sync::Arc;
use std::time::Duration;

use certdeck::app::{App, AppEvent, Effect, Popup, TaskState};
use certdeck::config::keymap::Keymap;
use certdeck::dispatch::{Dispatcher, K8sBackend};
use certdeck::model::Thresholds;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use crate::k8s_common::{action_context, scan, settings};
use crate::k8s_fixture::Fixture;
use tokio::sync::mpsc;

fn key(c: char) -> AppEvent {
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_renew_confirm_and_follow_progress_on_cert_manager_rows() {
    let fx = Fixture::start().await;
    crate::shop::seed(&fx);
    let mut st = settings(&fx);
    st.namespace = Some("shop".into());
    let (records, failures) = scan(st.clone()).await;
    assert!(failures.is_empty(), "{failures:?}");
    let mut app = App::new(
        certdeck::clock::now_unix(),
        Thresholds::default(),
        Keymap::default(),
    );
    app.update(AppEvent::Resize(120, 40));
    app.load_records(records);

    let mut ctx = action_context(&fx);
    ctx.wait = Duration::from_secs(10);
    let audit = ctx.audit.clone();
    let d = Dispatcher::new(vec![Arc::new(K8sBackend { ctx: Arc::new(ctx) })], false);
    let (tx, mut rx) = mpsc::channel(256);

    // Mark the two managed rows (their Secrets' tls.crt) and the plain Secret.
    app.run_command("filter shop/secret/.*#tls.crt");
    let ids: Vec<String> = app
        .rows
        .iter()
        .map(|&i| app.fleet.records()[i].id.clone())
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "{:?}",
        app.rows
            .iter()
            .map(|&i| &app.fleet.records()[i].location)
            .collect::<Vec<_>>()
    );
    for _ in 0..3 {
        app.update(key(' '));
    }
    let mut effects = app.update(key('n'));
    // Drive like the runner: plans, confirm, execute, progress, then re-read the rows.
    let mut confirmed = false;
    loop {
        for e in std::mem::take(&mut effects) {
            match e {
                Effect::Propose { token, kind, ids } => {
                    let recs = ids
                        .iter()
                        .filter_map(|id| app.fleet.get(id).cloned())
                        .collect();
                    d.propose(token, kind, recs, tx.clone());
                }
                Effect::Execute { token, ids } => d.execute(token, &ids, tx.clone()),
                Effect::Reprobe(_) => {
                    let (recs, _) = scan(st.clone()).await;
                    for r in recs {
                        app.update(AppEvent::Source(certdeck::sources::SourceEvent::Observed(
                            r,
                        )));
                    }
                }
                _ => {}
            }
        }
        if app.popup == Some(Popup::Confirm) && !confirmed {
            let c = app.confirm.clone().unwrap();
            assert_eq!(c.proposals.len(), 3);
            let renews: Vec<_> = c
                .proposals
                .iter()
                .filter(|p| p.title.starts_with("Renew"))
                .collect();
            assert_eq!(
                renews.len(),
                2,
                "the two managed rows renew through cert-manager"
            );
            assert!(renews
                .iter()
                .all(|p| p.preview.contains("/status") && p.preview.contains("Certificate shop/")));
            assert!(
                c.proposals.iter().any(|p| p.title.starts_with("Rotate")),
                "the plain Secret rotates"
            );
            // Only renew the managed ones: unmark isn't possible inside the popup, so cancel
            // and mark again without the plain Secret.
            effects = app.update(key('n'));
            assert!(matches!(effects.as_slice(), [Effect::Cancel { .. }]));
            d.cancel(c.token);
            app.run_command("filter shop/secret/(web|api)-tls#tls.crt");
            app.update(key(' '));
            app.update(key(' '));
            effects = app.update(key('n'));
            confirmed = true;
            continue;
        }
        if app.popup == Some(Popup::Confirm) && confirmed {
            effects = app.update(key('y'));
            assert!(
                app.tasks
                    .values()
                    .filter(|t| t.state == TaskState::Running)
                    .count()
                    == 2
            );
            continue;
        }
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(ev)) => effects = app.update(ev),
            _ => break,
        }
    }
    let tasks: Vec<_> = app.tasks.values().collect();
    assert_eq!(tasks.len(), 2);
    for t in tasks {
        assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.log);
        assert!(
            t.log.iter().any(|l| l.contains("Issuing")),
            "progress shows the status write: {:?}",
            t.log
        );
        let r = app.fleet.get(&t.record_id).unwrap();
        let days = (r.cert.as_ref().unwrap().not_after - certdeck::clock::now_unix()) / 86_400;
        assert!(
            days > 80,
            "the row was re-read and shows the new certificate ({days} days)"
        );
    }
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
