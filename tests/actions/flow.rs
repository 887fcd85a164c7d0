//! The action flow through the headless app and the real dispatcher: mark rows, plan,
//! preview, confirm or cancel, run with progress, verify by re-probing. Demo renewal against
//! the real demo fleet; user-defined actions running real commands.

use std::sync::Arc;
use std::time::Duration;

use certdeck::app::{ActKind, App, AppEvent, Effect, Popup, Proposal, TaskState};
use certdeck::config::keymap::Keymap;
use certdeck::demo::{DemoFleet, DemoRenewer};
use certdeck::dispatch::{Backend, Dispatcher};
use certdeck::hooks::{HookBackend, UserAction};
use certdeck::model::{Status, Thresholds};
use certdeck::sources::{self, ProbeSettings, SourceEvent};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use tokio::sync::mpsc;

fn key(c: char) -> AppEvent {
    AppEvent::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE))
}

/// Carry out effects like the real runner does, feeding answers back until things settle.
async fn drive(
    app: &mut App,
    effects: Vec<Effect>,
    d: &Dispatcher,
    prober: &sources::tls::TlsProber,
    tx: &mpsc::Sender<AppEvent>,
    rx: &mut mpsc::Receiver<AppEvent>,
) {
    let mut queue = effects;
    loop {
        for e in std::mem::take(&mut queue) {
            match e {
                Effect::Propose { token, kind, ids } => {
                    let recs = ids
                        .iter()
                        .filter_map(|id| app.fleet.get(id).cloned())
                        .collect();
                    d.propose(token, kind, recs, tx.clone());
                }
                Effect::Execute { token, ids } => d.execute(token, &ids, tx.clone()),
                Effect::Cancel { token } => d.cancel(token),
                Effect::Reprobe(what) => {
                    for (_, loc) in what {
                        let t = sources::Target::parse(&loc, None).expect("target");
                        let rec = prober.probe(&t).await;
                        app.update(AppEvent::Source(SourceEvent::Observed(rec)));
                    }
                }
                _ => {}
            }
        }
        match tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await {
            Ok(Some(ev)) => queue = app.update(ev),
            _ => return,
        }
    }
}

fn app_with(records: Vec<certdeck::model::Record>) -> App {
    app_at(certdeck::clock::now_unix(), records)
}

/// An app judging at `now` (the fixed clock for snapshots of the sample fleet).
fn app_at(now: i64, records: Vec<certdeck::model::Record>) -> App {
    let mut app = App::new(now, Thresholds::default(), Keymap::default());
    app.update(AppEvent::Resize(100, 30));
    app.load_records(records);
    app
}

/// The demo fleet, a prober that trusts it, and its endpoints scanned.
async fn demo_scan() -> (
    DemoFleet,
    sources::tls::TlsProber,
    Vec<certdeck::model::Record>,
) {
    let fleet = DemoFleet::start().await.expect("demo");
    let settings = ProbeSettings {
        extra_roots: vec![fleet.trust_anchor()],
        ..ProbeSettings::default()
    };
    let prober = sources::build_prober(&settings).expect("prober");
    let inv = sources::Inventory {
        targets: fleet.endpoints.iter().map(|e| e.target.clone()).collect(),
        ..Default::default()
    };
    let (records, _) = sources::scan(inv, settings).await;
    (fleet, prober, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marked_demo_rows_are_renewed_in_bulk_and_turn_healthy() {
    let (fleet, prober, records) = demo_scan().await;
    let mut app = app_with(records);
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::new(DemoRenewer::new(&fleet))];
    let d = Dispatcher::new(backends, false);
    let (tx, mut rx) = mpsc::channel(256);

    // The two worst rows: expired, then the short-lived intermediate (2 days).
    let worst: Vec<String> = app
        .rows
        .iter()
        .take(2)
        .map(|&i| app.fleet.records()[i].id.clone())
        .collect();
    let status_of = |app: &App, id: &str| app.facts(app.fleet.index_of(id).expect("row")).a.status;
    assert_eq!(status_of(&app, &worst[0]), Status::Expired);
    app.update(key(' '));
    app.update(key(' '));
    assert_eq!(app.marked.len(), 2);
    let eff = app.update(key('n'));
    match eff.as_slice() {
        [Effect::Propose {
            kind: ActKind::Builtin,
            ids,
            ..
        }] => assert_eq!(ids, &worst),
        other => panic!("{other:?}"),
    }
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    assert_eq!(app.popup, Some(Popup::Confirm), "{:?}", app.message);
    let c = app.confirm.clone().expect("confirm");
    assert_eq!(c.proposals.len(), 2);
    assert!(c
        .proposals
        .iter()
        .all(|p| p.error.is_none() && p.destructive));
    assert!(
        c.proposals[0].preview.contains("expires:")
            && c.proposals[0]
                .preview
                .contains("certdeck demo intermediate CA")
    );

    let eff = app.update(key('y'));
    assert!(matches!(eff.as_slice(), [Effect::Execute { ids, .. }] if ids.len() == 2));
    assert!(app.tasks.values().all(|t| t.state == TaskState::Running));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    for id in &worst {
        let t = &app.tasks[id];
        assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.log);
        assert!(
            t.log.iter().any(|l| l.starts_with("now serving sha256")),
            "{:?}",
            t.log
        );
        assert_eq!(
            status_of(&app, id),
            Status::Ok,
            "the re-probe shows the row healthy"
        );
        assert!(app.changed.contains(id), "the row is flagged as changed");
    }
    assert!(app.marked.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_changes_nothing_and_read_only_refuses() {
    let (fleet, prober, records) = demo_scan().await;
    let before: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                r.cert
                    .as_ref()
                    .map(|c| c.sha256.clone())
                    .unwrap_or_default(),
            )
        })
        .collect();
    let mut app = app_with(records);
    let d = Dispatcher::new(vec![Arc::new(DemoRenewer::new(&fleet))], false);
    let (tx, mut rx) = mpsc::channel(256);
    let eff = app.update(key('n'));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    assert_eq!(app.popup, Some(Popup::Confirm));
    let eff = app.update(key('n'));
    assert!(matches!(eff.as_slice(), [Effect::Cancel { .. }]));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    assert!(app.tasks.is_empty());
    // Nothing is served differently.
    for (id, sha) in &before {
        let r = app.fleet.get(id).expect("row");
        let t = sources::Target::parse(&r.location, None).expect("t");
        let now = prober.probe(&t).await;
        assert_eq!(&now.cert.map(|c| c.sha256.clone()).unwrap_or_default(), sha);
    }
    // Read-only: the key is refused in the app, and the dispatcher refuses too.
    app.read_only = true;
    assert!(app.update(key('n')).is_empty());
    assert!(app
        .message
        .as_ref()
        .is_some_and(|(m, _)| m.contains("read-only")));
    let ro = Dispatcher::new(vec![Arc::new(DemoRenewer::new(&fleet))], true);
    let rec = app.fleet.records()[0].clone();
    ro.propose(7, ActKind::Builtin, vec![rec], tx.clone());
    match rx.recv().await {
        Some(AppEvent::Proposed { proposals, .. }) => {
            assert_eq!(proposals[0].error.as_deref(), Some("read-only mode"));
        }
        other => panic!("{other:?}"),
    }
}

fn user_action(command: &str, confirm: bool) -> UserAction {
    toml::from_str(&format!(
        "key = \"c\"\ndescription = \"run a check\"\nsources = [\"tls\"]\ncommand = {command:?}\nconfirm = {confirm}\n"
    ))
    .expect("action")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_actions_fill_placeholders_show_output_and_keep_failures() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.txt");
    let recs = certdeck::testing::sample_records();
    let mut app = app_with(recs);
    let actions = vec![
        user_action(
            &format!(
                "echo host={{host}} port={{port}} id={{id}} | tee {}",
                out.display()
            ),
            true,
        ),
        user_action("echo partial output; echo on stderr >&2; exit 3", false),
        user_action("echo {path}", true),
    ];
    app.user_actions = actions.iter().map(Into::into).collect();
    let audit_path = dir.path().join("audit.jsonl");
    let d = Dispatcher::new(vec![Arc::new(HookBackend { actions })], false)
        .with_audit(certdeck::dispatch::AuditLog::new(&audit_path));
    let prober = sources::build_prober(&ProbeSettings::default()).expect("prober");
    let (tx, mut rx) = mpsc::channel(256);
    // Select api.example.com:443 (a TLS row).
    app.run_command("filter api\\.example");
    let row = app.selected_record().expect("row").clone();
    assert_eq!(row.location, "api.example.com:443");

    // 1: confirmed, placeholders filled and quoted, output in the task.
    let eff = app.perform(certdeck::config::keymap::Action::UserAct(0));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    let c = app
        .confirm
        .clone()
        .expect("confirm popup for confirm = true");
    assert!(
        c.proposals[0].preview.contains("'api.example.com'"),
        "{}",
        c.proposals[0].preview
    );
    assert!(!out.exists(), "nothing runs before confirmation");
    let eff = app.update(key('y'));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    let written = std::fs::read_to_string(&out).expect("command ran");
    assert_eq!(
        written.trim(),
        format!("host=api.example.com port=443 id={}", row.id)
    );
    let t = &app.tasks[&row.id];
    assert_eq!(t.state, TaskState::Succeeded);
    assert!(
        t.log.iter().any(|l| l.contains("host=api.example.com")),
        "{:?}",
        t.log
    );

    // 2: confirm = false runs at once; a non-zero exit is a failed task with its output kept.
    let eff = app.perform(certdeck::config::keymap::Action::UserAct(1));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    assert_ne!(app.popup, Some(Popup::Confirm));
    let t = &app.tasks[&row.id];
    assert_eq!(t.state, TaskState::Failed);
    assert!(
        t.log.iter().any(|l| l == "partial output") && t.log.iter().any(|l| l == "on stderr"),
        "{:?}",
        t.log
    );
    assert!(t.log.last().expect("log").contains("exit status 3"));

    // Both runs are in the audit log (0600), with their outcome.
    let log = certdeck::dispatch::AuditLog::new(&audit_path)
        .read()
        .expect("audit");
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!(
        (log[0].outcome.as_str(), log[1].outcome.as_str()),
        ("succeeded", "failed")
    );
    assert!(log
        .iter()
        .all(|l| l.record_id == row.id && l.action == "hook: run a check"));
    assert!(log[1]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("exit status 3")));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&audit_path)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    // 3: a placeholder the row does not have is refused with a reason, nothing runs.
    let eff = app.perform(certdeck::config::keymap::Action::UserAct(2));
    drive(&mut app, eff, &d, &prober, &tx, &mut rx).await;
    assert!(
        app.message
            .as_ref()
            .is_some_and(|(m, _)| m.contains("{path}")),
        "{:?}",
        app.message
    );

    // Sources filter: a file row does not take a tls-only action.
    app.run_command("filter nginx/certs");
    assert!(app
        .perform(certdeck::config::keymap::Action::UserAct(0))
        .is_empty());
    assert!(app
        .message
        .as_ref()
        .is_some_and(|(m, _)| m.contains("does not apply")));
}

#[test]
fn confirm_and_task_popups_render() {
    let mut app = app_at(certdeck::testing::NOW, certdeck::testing::sample_records());
    app.update(AppEvent::Resize(80, 24));
    let first = app.selected_record().expect("row").clone();
    let eff = app.update(key('n'));
    let token = match eff.as_slice() {
        [Effect::Propose { token, .. }] => *token,
        other => panic!("{other:?}"),
    };
    app.update(AppEvent::Proposed {
        token,
        proposals: vec![
            Proposal {
                record_id: first.id.clone(),
                location: first.location.clone(),
                title: "Renew (cert-manager re-issue)".into(),
                preview: "Renew (cert-manager re-issue): Certificate shop/billing in context prod\n  expires:    2026-11-08T11:06:40Z -> as the issuer decides\n  API calls:\n    PUT /apis/cert-manager.io/v1/namespaces/shop/certificates/billing/status (Issuing=True)\n".into(),
                destructive: true,
                error: None,
            },
            Proposal {
                record_id: "file-x".into(),
                location: "/etc/ssl/private/broken.pem".into(),
                title: "renew".into(),
                preview: String::new(),
                destructive: false,
                error: Some("no action applies to this row".into()),
            },
        ],
    });
    let theme = certdeck::config::theme::Theme::default_dark();
    let render = |app: &App| {
        let (w, h) = app.size;
        let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).expect("t");
        term.draw(|f| certdeck::ui::render(app, &theme, f))
            .expect("draw");
        let buf = term.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    insta::assert_snapshot!("confirm_popup_80x24", render(&app));
    app.update(AppEvent::Resize(120, 40));
    insta::assert_snapshot!("confirm_popup_120x40", render(&app));
    app.update(AppEvent::Resize(80, 24));
    app.update(key('y'));
    app.update(AppEvent::TaskProgress {
        record_id: first.id.clone(),
        step: "write".into(),
        message: "PUT …/status: Issuing=True".into(),
    });
    app.update(AppEvent::Resize(80, 24));
    app.update(key('T'));
    insta::assert_snapshot!("tasks_popup_running_80x24", render(&app));
    app.update(AppEvent::TaskFinished {
        record_id: first.id.clone(),
        ok: false,
        message: "step wait: cert-manager reports the issuance failed: Failed: ACME order rejected"
            .into(),
    });
    insta::assert_snapshot!("tasks_popup_failed_80x24", render(&app));
    app.update(AppEvent::Resize(120, 40));
    insta::assert_snapshot!("tasks_popup_failed_120x40", render(&app));
}
