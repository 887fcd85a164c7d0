//! The action flow through the headless dashboard and the real runner: mark rows, plan,
//! preview, confirm or cancel, run with progress, verify by re-reading. Demo renewal against
//! the real demo fleet; user-defined actions running real commands, with hostile certificate
//! names in every quoting context.

use std::sync::Arc;

use certdeck::actions::hooks::{HookBackend, UserAction};
use certdeck::actions::{AuditLog, Backend, Session};
use certdeck::app::{App, AppEvent, Effect, Popup, TaskState};
use certdeck::demo::{DemoFleet, DemoRenewer};
use certdeck::model::{Status, Thresholds};
use certdeck::sources::ProbeSettings;

use crate::headless::{key, Headless};

/// The demo fleet's endpoints under a live supervisor, with the demo renewer.
async fn demo(read_only: bool, audit: Option<AuditLog>) -> (DemoFleet, Headless) {
    let fleet = DemoFleet::start().await.expect("demo");
    let mut sources = fleet.sources(ProbeSettings::default());
    sources.truncate(1); // the endpoints; the files do not take actions
    let backends: Vec<Arc<dyn Backend>> = vec![Arc::new(DemoRenewer::new(&fleet))];
    let session = Session::new(backends, read_only, audit);
    let mut h = Headless::start(sources, session);
    h.until(20, "every demo endpoint", |a| {
        a.fleet.len() == fleet.endpoints.len()
    })
    .await;
    (fleet, h)
}

fn status_of(app: &App, id: &str) -> Status {
    app.fleet
        .facts(app.fleet.fleet().index_of(id).expect("row"))
        .a
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marked_demo_rows_are_renewed_in_bulk_and_turn_healthy() {
    let dir = tempfile::tempdir().expect("dir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let (_fleet, mut h) = demo(false, Some(audit.clone())).await;
    // The two worst rows: expired, then the short-lived intermediate (2 days).
    let worst: Vec<String> = h
        .app
        .fleet
        .rows
        .iter()
        .take(2)
        .map(|&i| h.app.fleet.records()[i].id.clone())
        .collect();
    assert_eq!(status_of(&h.app, &worst[0]), Status::Expired);
    h.press(key(' '));
    h.press(key(' '));
    assert_eq!(h.app.fleet.marked.len(), 2);
    let eff = h.press(key('n'));
    match eff.as_slice() {
        [Effect::Plan {
            request: certdeck::actions::Request::Default,
            ids,
            ..
        }] => assert_eq!(ids, &worst),
        other => panic!("{other:?}"),
    }
    h.until(10, "the confirm popup", |a| {
        a.ui.popup == Some(Popup::Confirm)
    })
    .await;
    let c = h.app.tasks.confirm.clone().expect("confirm");
    assert_eq!(c.plans.len(), 2);
    assert!(c.plans.iter().all(|p| p
        .as_ref()
        .is_ok_and(|p| p.risk == certdeck::actions::Risk::Destructive)));
    let preview = c.plans[0].as_ref().expect("plan").preview();
    assert!(
        preview.contains("expires:") && preview.contains("certdeck demo intermediate CA"),
        "{preview}"
    );

    let eff = h.press(key('y'));
    assert!(matches!(eff.as_slice(), [Effect::Execute { ids, .. }] if ids.len() == 2));
    assert_eq!(h.app.tasks.running(), 2);
    let w = worst.clone();
    h.until(20, "both rows renewed and re-read healthy", move |a| {
        w.iter().all(|id| {
            a.tasks.state_of(id) == Some(TaskState::Succeeded) && status_of(a, id) == Status::Ok
        })
    })
    .await;
    for id in &worst {
        let t = &h.app.tasks.by_row[id];
        assert!(
            t.log.iter().any(|l| l.starts_with("now serving sha256")),
            "{:?}",
            t.log
        );
        assert!(
            h.app.fleet.changed.contains(id),
            "the row is flagged as changed"
        );
    }
    assert!(h.app.fleet.marked.is_empty());
    let lines = audit.read().expect("audit");
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.action == "demo re-issue"
        && l.outcome == "succeeded"
        && l.after_sha256.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_changes_nothing_and_read_only_refuses() {
    let (fleet, mut h) = demo(false, None).await;
    let before: Vec<(String, String)> = h
        .app
        .fleet
        .records()
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
    h.press(key('n'));
    h.until(10, "the confirm popup", |a| {
        a.ui.popup == Some(Popup::Confirm)
    })
    .await;
    let eff = h.press(key('n'));
    assert!(matches!(eff.as_slice(), [Effect::Cancel { .. }]));
    h.settle(500).await;
    assert!(h.app.tasks.by_row.is_empty());
    // Nothing is served differently.
    let prober = certdeck::sources::build_prober(&ProbeSettings {
        extra_roots: vec![fleet.trust_anchor()],
        ..ProbeSettings::default()
    })
    .expect("prober");
    for (id, sha) in &before {
        let r = h.app.fleet.get(id).expect("row");
        let t = certdeck::sources::Target::parse(&r.location, None).expect("t");
        let now = prober.probe(&t).await;
        assert_eq!(&now.cert.map(|c| c.sha256.clone()).unwrap_or_default(), sha);
    }
    // Read-only: the key is refused in the app, and the session refuses too (audited).
    h.app.read_only = true;
    assert!(h.press(key('n')).is_empty());
    assert!(h
        .app
        .ui
        .message
        .as_ref()
        .is_some_and(|(m, _)| m.contains("read-only")));
    let dir = tempfile::tempdir().expect("dir");
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let ro = Session::new(
        vec![Arc::new(DemoRenewer::new(&fleet))],
        true,
        Some(audit.clone()),
    );
    let rec = h.app.fleet.records()[0].clone();
    let plans = ro
        .plan(7, &certdeck::actions::Request::Default, &[rec])
        .await;
    let err = &plans[0].as_ref().expect_err("refused").error;
    assert_eq!(err.kind, certdeck::actions::ErrorKind::ReadOnly);
    assert_eq!(audit.read().expect("audit")[0].outcome, "refused");
}

fn user_action(command: &str, confirm: bool) -> UserAction {
    toml::from_str(&format!(
        "key = \"c\"\ndescription = \"run a check\"\nsources = [\"tls\"]\ncommand = {command:?}\nconfirm = {confirm}\n"
    ))
    .expect("action")
}

fn info(actions: &[UserAction]) -> Vec<certdeck::app::UserActionInfo> {
    actions
        .iter()
        .map(|a| certdeck::app::UserActionInfo {
            name: a.name(),
            description: a.description.clone(),
            sources: a.sources.clone(),
            confirm: a.confirm,
            dangerous: a.dangerous,
        })
        .collect()
}

/// User actions by distinct names (the test's actions share a description).
fn named(mut actions: Vec<UserAction>) -> Vec<UserAction> {
    for (i, a) in actions.iter_mut().enumerate() {
        a.name = Some(format!("{}-{i}", a.name()));
    }
    actions
}

fn headless_with(actions: Vec<UserAction>, audit: &AuditLog) -> Headless {
    let session = Session::new(
        vec![Arc::new(HookBackend {
            actions: actions.clone(),
        })],
        false,
        Some(audit.clone()),
    );
    let mut h = Headless::start_at(certdeck::testing::NOW, Vec::new(), session);
    h.app.user_actions = info(&actions);
    h.app.load_records(certdeck::testing::sample_records());
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_actions_fill_placeholders_show_output_and_keep_failures() {
    let dir = tempfile::tempdir().expect("dir");
    let out = dir.path().join("out.txt");
    let actions = named(vec![
        user_action(
            &format!(
                "echo host={{host}} port={{port}} id={{id}} | tee {}",
                out.display()
            ),
            true,
        ),
        user_action("echo partial output; echo on stderr >&2; exit 3", false),
        user_action("echo {path}", true),
    ]);
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let mut h = headless_with(actions, &audit);
    // Select api.example.com:443 (a TLS row).
    h.app.run_command("filter api\\.example");
    let row = h.app.selected_record().expect("row").clone();
    assert_eq!(row.location, "api.example.com:443");

    // 1: confirmed, placeholders passed as variables, output in the task.
    let eff = h.app.perform(certdeck::config::keymap::Action::UserAct(0));
    h.runner.run(&h.app, eff);
    h.until(10, "the confirm popup", |a| a.tasks.confirm.is_some())
        .await;
    let preview = h.app.tasks.confirm.as_ref().unwrap().plans[0]
        .as_ref()
        .expect("plan")
        .preview();
    assert!(
        preview.contains("\"${CERTDECK_HOST}\"")
            && preview.contains("CERTDECK_HOST=api.example.com"),
        "{preview}"
    );
    assert!(!out.exists(), "nothing runs before confirmation");
    h.press(key('y'));
    let id = row.id.clone();
    h.until(10, "the command done", move |a| {
        a.tasks.state_of(&id) == Some(TaskState::Succeeded)
    })
    .await;
    let written = std::fs::read_to_string(&out).expect("command ran");
    assert_eq!(
        written.trim(),
        format!("host=api.example.com port=443 id={}", row.id)
    );
    let t = &h.app.tasks.by_row[&row.id];
    assert!(
        t.log.iter().any(|l| l.contains("host=api.example.com")),
        "{:?}",
        t.log
    );

    // 2: confirm = false runs at once; a non-zero exit is a failed task with its output kept.
    let eff = h.app.perform(certdeck::config::keymap::Action::UserAct(1));
    h.runner.run(&h.app, eff);
    let id = row.id.clone();
    h.until(10, "the failing command done", move |a| {
        a.tasks.state_of(&id) == Some(TaskState::Failed)
    })
    .await;
    assert_ne!(h.app.ui.popup, Some(Popup::Confirm));
    let t = &h.app.tasks.by_row[&row.id];
    assert!(
        t.log.iter().any(|l| l == "partial output") && t.log.iter().any(|l| l == "on stderr"),
        "{:?}",
        t.log
    );
    assert!(t.log.last().expect("log").contains("exit status 3"));

    // Both runs are in the audit log (0600), with their outcome.
    let log = audit.read().expect("audit");
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
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&audit.path)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);

    // 3: a placeholder the row does not have is refused with a reason, nothing runs.
    let eff = h.app.perform(certdeck::config::keymap::Action::UserAct(2));
    h.runner.run(&h.app, eff);
    h.until(10, "the refusal", |a| {
        a.ui.message
            .as_ref()
            .is_some_and(|(m, _)| m.contains("{path}"))
    })
    .await;

    // Sources filter: a file row does not take a tls-only action.
    h.app.run_command("filter nginx/certs");
    assert!(h
        .app
        .perform(certdeck::config::keymap::Action::UserAct(0))
        .is_empty());
    assert!(h
        .app
        .ui
        .message
        .as_ref()
        .is_some_and(|(m, _)| m.contains("does not apply")));
}

/// A certificate whose subject and SAN hold shell syntax: whatever quoting the template
/// uses, the value is data to the command, never code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_subjects_and_sans_never_run_as_shell_code() {
    let dir = tempfile::tempdir().expect("dir");
    let pwned = dir.path().join("pwned");
    let evil = format!(
        "x$(touch {p})`touch {p}`;touch {p}'\"$(touch {p})\"",
        p = pwned.display()
    );
    let mut r = certdeck::testing::sample_records().remove(0);
    let mut c = (**r.cert.as_ref().expect("cert")).clone();
    c.subject = format!("CN={evil}");
    c.sans = vec![certdeck::model::San::Dns(evil.clone())];
    c.sha256 = certdeck::model::cert::sha256_hex(evil.as_bytes());
    r.cert = Some(Arc::new(c));
    let outs: Vec<std::path::PathBuf> =
        (0..5).map(|i| dir.path().join(format!("out{i}"))).collect();
    let templates = [
        format!("echo {{subject}} > {}", outs[0].display()),
        format!("echo \"{{subject}}\" > {}", outs[1].display()),
        format!("echo '{{subject}}' > {}", outs[2].display()),
        format!("echo \"$(echo {{sans}})\" > {}", outs[3].display()),
        format!("printf '%s' \"$CERTDECK_SUBJECT\" > {}", outs[4].display()),
    ];
    let actions = named(templates.iter().map(|t| user_action(t, false)).collect());
    let audit = AuditLog::new(dir.path().join("audit.jsonl"));
    let session = Session::new(
        vec![Arc::new(HookBackend {
            actions: actions.clone(),
        })],
        false,
        Some(audit),
    );
    let mut h = Headless::start_at(certdeck::testing::NOW, Vec::new(), session);
    h.app.user_actions = info(&actions);
    h.app.load_records(vec![r.clone()]);
    for i in 0..templates.len() {
        let eff = h.app.perform(certdeck::config::keymap::Action::UserAct(i));
        h.runner.run(&h.app, eff);
        let id = r.id.clone();
        h.until(10, "the command done", move |a| {
            a.tasks
                .state_of(&id)
                .is_some_and(|s| s != TaskState::Running)
        })
        .await;
        assert_eq!(
            h.app.tasks.state_of(&r.id),
            Some(TaskState::Succeeded),
            "{:?}",
            h.app.tasks.by_row[&r.id].log
        );
        h.app.tasks.by_row.clear();
    }
    assert!(!pwned.exists(), "a certificate's name ran as shell code");
    let subject = format!("CN={evil}");
    for (i, o) in outs.iter().enumerate() {
        let got = std::fs::read_to_string(o).expect("output");
        let want = if i == 3 {
            evil.as_str()
        } else {
            subject.as_str()
        };
        assert_eq!(
            got.trim_end_matches('\n'),
            want,
            "template {}",
            templates[i]
        );
    }
}

#[test]
fn confirm_and_task_popups_render() {
    use certdeck::actions::session::Refusal;
    use certdeck::actions::{ActionError, ActionEvent, Finished, Plan, Progress, Step};
    let mut app = App::new(
        certdeck::testing::NOW,
        Thresholds::default(),
        certdeck::config::keymap::Keymap::default(),
    );
    app.update(AppEvent::Resize(80, 24));
    app.load_records(certdeck::testing::sample_records());
    let first = app.selected_record().expect("row").clone();
    let eff = app.update(key('n'));
    let token = match eff.as_slice() {
        [Effect::Plan { token, .. }] => *token,
        other => panic!("{other:?}"),
    };
    let mut plan = Plan::for_record(
        "renew",
        "renew",
        "Renew (cert-manager re-issue)",
        &first,
        "Certificate shop/billing",
    );
    plan.context = Some("prod".into());
    plan.new_expiry_note = Some("as the issuer decides".into());
    plan.steps_label = "API calls".into();
    plan.steps = vec![
        "PUT /apis/cert-manager.io/v1/namespaces/shop/certificates/billing/status (Issuing=True)"
            .into(),
    ];
    app.update(AppEvent::Planned {
        token,
        plans: vec![
            Ok(plan),
            Err(Refusal {
                record_id: "file-x".into(),
                location: "/etc/ssl/private/broken.pem".into(),
                error: ActionError::not_applicable(
                    "/etc/ssl/private/broken.pem: no renew, rotate or other action for this row (nothing certdeck can drive manages it)",
                ),
            }),
        ],
    });
    let theme = certdeck::config::theme::Theme::default_dark();
    let render = |app: &App| {
        let (w, h) = app.ui.size;
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
    app.update(AppEvent::Action(ActionEvent::Progress(Progress {
        record_id: first.id.clone(),
        step: Step::Write,
        message: "PUT …/status: Issuing=True".into(),
    })));
    app.update(key('T'));
    insta::assert_snapshot!("tasks_popup_running_80x24", render(&app));
    app.update(AppEvent::Action(ActionEvent::Finished(Finished {
        record_id: first.id.clone(),
        title: "Renew (cert-manager re-issue)".into(),
        result: Err(ActionError::at(
            Step::Wait,
            "cert-manager reports the issuance failed: Failed: ACME order rejected",
        )),
        audit_error: None,
    })));
    insta::assert_snapshot!("tasks_popup_failed_80x24", render(&app));
    app.update(AppEvent::Resize(120, 40));
    insta::assert_snapshot!("tasks_popup_failed_120x40", render(&app));
}
