//! cert-manager renew through the fixture: the cmctl-compatible status write, 409 retries,
//! following the issuance, failures, permissions, time limits, bulk, audit and read-only.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::k8s_common::{acts, facts, leaf, row};
use crate::k8s_fixture::Fixture;
use certdeck::actions::{ActionEvent, ErrorKind, Step};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A Certificate `name` in `ns` (Ready, revision 1) with its Secret `name-tls`.
fn seed_certificate(fx: &Fixture, ns: &str, name: &str) -> crate::k8s_common::Pem {
    let host = format!("{name}.{ns}.example");
    let p = leaf(&[&host], 10, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        ns,
        &format!("{name}-tls"),
        &p.cert,
        &p.key,
    ));
    fx.insert_value(crate::k8s_fixture::certificate(
        ns,
        name,
        &format!("{name}-tls"),
        "ca-issuer",
        &[&host],
    ));
    fx.set_certificate_ready(
        ns,
        name,
        &certdeck::clock::rfc3339(facts(&p.cert).not_after),
        1,
    );
    p
}

/// Simulate cert-manager: on a manual trigger, create a CertificateRequest, write a new
/// certificate into the Secret, then mark the Certificate Ready with the next revision.
fn simulate_cert_manager(fx: &Fixture, written: Arc<Mutex<Vec<Value>>>) {
    let triggered = |w: &crate::k8s_fixture::Write| {
        w.subresource.as_deref() == Some("status")
            && w.object["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Issuing" && c["status"] == "True")
                })
    };
    fx.on_write("certificates", Duration::ZERO, move |w| {
        if triggered(w) {
            written.lock().unwrap().push(w.object.clone());
        }
        None
    });
    fx.on_write("certificates", Duration::from_millis(100), move |w| {
        if !triggered(w) {
            return None;
        }
        let rev = w.object["status"]["revision"].as_i64().unwrap_or(0) + 1;
        Some(
            json!({"apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {"name": format!("{}-{rev}", w.name), "namespace": w.namespace,
                "annotations": {"cert-manager.io/certificate-name": w.name,
                    "cert-manager.io/certificate-revision": rev.to_string()}},
            "spec": {"request": ""}}),
        )
    });
    fx.on_write("certificates", Duration::from_millis(300), move |w| {
        if !triggered(w) {
            return None;
        }
        let host = w.object["spec"]["dnsNames"][0]
            .as_str()
            .unwrap()
            .to_string();
        let p = leaf(&[&host], 90, None);
        let secret = w.object["spec"]["secretName"].as_str().unwrap();
        Some(crate::k8s_fixture::tls_secret(
            &w.namespace,
            secret,
            &p.cert,
            &p.key,
        ))
    });
    fx.on_write("certificates", Duration::from_millis(600), move |w| {
        if !triggered(w) {
            return None;
        }
        let mut c = w.object.clone();
        let rev = c["status"]["revision"].as_i64().unwrap_or(0) + 1;
        crate::k8s_fixture::set_ready_status(&mut c, "2027-03-01T00:00:00Z", rev);
        Some(c)
    });
}

async fn collect(mut rx: mpsc::Receiver<ActionEvent>) -> Vec<ActionEvent> {
    let mut v = Vec::new();
    while let Some(e) = rx.recv().await {
        v.push(e);
    }
    v
}

fn messages(events: &[ActionEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            ActionEvent::Progress(certdeck::actions::Progress { step, message, .. }) => {
                Some(format!("[{}] {message}", step.as_str()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_sets_the_issuing_condition_like_cmctl_and_follows_it_to_ready() {
    let fx = Fixture::start().await;
    let old = seed_certificate(&fx, "team-a", "web");
    let written = Arc::new(Mutex::new(Vec::new()));
    simulate_cert_manager(&fx, written.clone());
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    assert_eq!(certdeck::actions::k8s::offered(&rec), Some("renew"));

    let plan = ctx.plan("renew", &rec).await.unwrap();
    let preview = plan.to_plan(None).preview();
    assert!(preview.contains("Certificate team-a/web"), "{preview}");
    assert!(preview.contains("Issuer/ca-issuer"), "{preview}");
    assert!(
        preview.contains("PUT /apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status"),
        "{preview}"
    );
    assert!(preview.contains("revision:   1 -> 2"), "{preview}");
    assert_eq!(
        fx.request_count(
            "PUT",
            "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status"
        ),
        0,
        "planning writes nothing"
    );

    let (tx, rx) = mpsc::channel(64);
    let events = tokio::spawn(collect(rx));
    let outcome = ctx.execute(&plan, &tx).await.unwrap();
    drop(tx);
    let events = events.await.unwrap();
    assert_eq!(outcome.revision, Some(2));
    assert_ne!(
        outcome.after_sha256.as_deref(),
        Some(facts(&old.cert).sha256.as_str())
    );

    // The write is cmctl's: a PUT of the whole object to /status with the Issuing condition.
    assert_eq!(
        fx.request_count(
            "PUT",
            "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status"
        ),
        1
    );
    let w = written.lock().unwrap()[0].clone();
    let issuing = w["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Issuing")
        .unwrap()
        .clone();
    assert_eq!(issuing["status"], "True");
    assert_eq!(issuing["reason"], "ManuallyTriggered");
    assert_eq!(
        issuing["message"],
        "Certificate re-issuance manually triggered"
    );
    assert_eq!(issuing["observedGeneration"], w["metadata"]["generation"]);
    assert!(issuing["lastTransitionTime"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(
        w["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Ready"),
        "other conditions kept"
    );

    let msgs = messages(&events);
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("[write] Issuing condition set")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m == "[wait] CertificateRequest web-2 created"),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("[wait] Ready with revision 2")),
        "{msgs:?}"
    );
    assert!(matches!(
        events.last(),
        Some(ActionEvent::Finished(certdeck::actions::Finished {
            result: Ok(_),
            ..
        }))
    ));

    let audit = ctx.audit.read().unwrap();
    assert_eq!(audit.len(), 1);
    let a = &audit[0];
    assert_eq!(
        (a.action.as_str(), a.outcome.as_str(), a.actor.as_str()),
        (
            "renew",
            "succeeded",
            certdeck::actions::audit::actor().as_str()
        )
    );
    assert_eq!(a.object, "Certificate team-a/web");
    assert_eq!(
        a.before_sha256.as_deref(),
        Some(facts(&old.cert).sha256.as_str())
    );
    assert_eq!(a.after_sha256, outcome.after_sha256);
    assert_eq!(a.kube_user.as_deref(), Some("fixture"));
    let raw = std::fs::read_to_string(&ctx.audit.path).unwrap();
    assert!(!raw.contains("PRIVATE KEY"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&ctx.audit.path)
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_retries_a_conflict_with_a_fresh_read() {
    let fx = Arc::new(Fixture::start().await);
    seed_certificate(&fx, "team-a", "web");
    simulate_cert_manager(&fx, Arc::new(Mutex::new(Vec::new())));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    // Someone else changes the Certificate while certdeck's first PUT is in flight.
    let path = "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status";
    fx.add_fault(
        crate::k8s_fixture::Fault::delay(path, Duration::from_millis(600))
            .method("PUT")
            .times(1),
    );
    let fx2 = fx.clone();
    let meddler = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(250));
        fx2.modify("certificates", "team-a", "web", |c| {
            c["metadata"]["labels"] = json!({"touched": "yes"});
        });
    });
    let (tx, rx) = mpsc::channel(64);
    let events = tokio::spawn(collect(rx));
    let outcome = ctx.execute(&plan, &tx).await;
    drop(tx);
    meddler.join().unwrap();
    let msgs = messages(&events.await.unwrap());
    assert!(outcome.is_ok(), "{outcome:?} {msgs:?}");
    assert_eq!(fx.request_count("PUT", path), 2, "one 409, then one retry");
    assert!(fx
        .requests()
        .iter()
        .any(|r| r.path == path && r.status == 409));
    assert!(
        msgs.iter()
            .any(|m| m.contains("409 Conflict (attempt 1): re-reading and retrying")),
        "{msgs:?}"
    );
    assert_eq!(
        fx.get("certificates", "team-a", "web").unwrap()["metadata"]["labels"]["touched"],
        "yes",
        "the other change survives"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_reports_the_failure_reason_cert_manager_gives() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    fx.on_write("certificates", Duration::from_millis(200), |w| {
        let mut c = w.object.clone();
        let conds: Vec<Value> = c["status"]["conditions"].as_array().unwrap().iter()
            .filter(|c| c["type"] != "Issuing").cloned().collect();
        c["status"]["conditions"] = json!(conds);
        c["status"]["conditions"].as_array_mut().unwrap().push(json!({"type": "Issuing", "status": "False",
            "reason": "Failed", "message": "The certificate request has failed to complete and will be retried: issuer ca-issuer not found"}));
        Some(c)
    });
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert!(
        err.message
            .contains("cert-manager reports the issuance failed"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("Failed: The certificate request has failed"),
        "{err}"
    );
    let a = &ctx.audit.read().unwrap()[0];
    assert_eq!(
        (a.outcome.as_str(), a.failed_step.as_deref()),
        ("failed", Some("wait"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_without_permission_names_update_on_certificates_status() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    fx.forbid("update", "certificates/status", None);
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    let s = err.to_string();
    assert!(s.starts_with("step write: forbidden (403): missing permission `update` on `certificates/status` in namespace \"team-a\""), "{s}");
    assert_eq!(err.step(), Some(Step::Write));
    assert_eq!(
        ctx.audit.read().unwrap()[0].failed_step.as_deref(),
        Some("write")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_of_a_deleted_certificate_is_a_not_found_error() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    fx.remove("certificates", "team-a", "web");
    let err = ctx.plan("renew", &rec).await.unwrap_err();
    assert!(
        err.to_string().starts_with("step read: not found (404)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_gives_up_after_the_wait_limit_when_cert_manager_never_finishes() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    let mut ctx = acts(&fx);
    ctx.ctx.wait = Duration::from_secs(1);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = tokio::time::timeout(Duration::from_secs(60), ctx.execute(&plan, &tx))
        .await
        .expect("the wait limit ends the action")
        .unwrap_err();
    let s = err.to_string();
    assert!(s.starts_with("step wait: timed out after 1s"), "{s}");
    assert!(s.contains("not Ready with revision 2"), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_request_timeout_is_reported_with_its_step() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    let mut ctx = acts(&fx);
    ctx.ctx.timeout = Duration::from_secs(1);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    fx.add_fault(
        crate::k8s_fixture::Fault::delay(
            "/apis/cert-manager.io/v1/namespaces/team-a/certificates/web/status",
            Duration::from_secs(3),
        )
        .method("PUT"),
    );
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("step write: timed out after 1s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_renew_runs_every_marked_row_with_its_own_progress() {
    let fx = Fixture::start().await;
    for n in ["a", "b", "c"] {
        seed_certificate(&fx, "team-a", n);
    }
    simulate_cert_manager(&fx, Arc::new(Mutex::new(Vec::new())));
    fx.forbid("update", "certificates/status", Some("team-z"));
    let ctx = Arc::new(acts(&fx));
    let mut plans = Vec::new();
    for n in ["a", "b", "c"] {
        let rec = row(
            &fx,
            "team-a",
            &format!("fixture/team-a/secret/{n}-tls#tls.crt"),
        )
        .await;
        plans.push(ctx.plan("renew", &rec).await.unwrap());
    }
    let ids: Vec<String> = plans.iter().map(|p| p.record_id.clone()).collect();
    let (tx, rx) = mpsc::channel(8);
    let events = tokio::spawn(collect(rx));
    let results = ctx.run_bulk(plans, 2, tx).await;
    let events = events.await.unwrap();
    assert_eq!(
        results.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        ids,
        "results in row order"
    );
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().is_ok_and(|o| o.revision == Some(2))),
        "{results:?}"
    );
    for id in &ids {
        let mine: Vec<_> = events
            .iter()
            .filter(|e| match e {
                ActionEvent::Progress(p) => p.record_id == *id,
                ActionEvent::Finished(f) => f.record_id == *id,
            })
            .collect();
        assert!(mine
            .iter()
            .any(|e| matches!(e, ActionEvent::Progress(p) if p.step == Step::Write)));
        assert!(matches!(
            mine.last(),
            Some(ActionEvent::Finished(certdeck::actions::Finished {
                result: Ok(_),
                ..
            }))
        ));
    }
    let audit = ctx.audit.read().unwrap();
    assert_eq!(audit.iter().filter(|a| a.outcome == "succeeded").count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_refuses_every_action_and_writes_nothing() {
    let fx = Fixture::start().await;
    seed_certificate(&fx, "team-a", "web");
    let mut ctx = acts(&fx);
    ctx.read_only = true;
    let rec = row(&fx, "team-a", "fixture/team-a/secret/web-tls#tls.crt").await;
    let plan = ctx.plan("renew", &rec).await.unwrap();
    let (tx, _rx) = mpsc::channel(64);
    let err = ctx.execute(&plan, &tx).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReadOnly);
    assert!(!fx.requests().iter().any(|r| r.method == "PUT"));
    assert_eq!(ctx.audit.read().unwrap()[0].outcome, "refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_of_a_plain_secret_points_to_rotate() {
    let fx = Fixture::start().await;
    let p = leaf(&["plain.example"], 30, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "plain-tls",
        &p.cert,
        &p.key,
    ));
    let ctx = acts(&fx);
    let rec = row(&fx, "team-a", "fixture/team-a/secret/plain-tls#tls.crt").await;
    assert_eq!(certdeck::actions::k8s::offered(&rec), Some("rotate"));
    let err = ctx.plan("renew", &rec).await.unwrap_err();
    assert!(err.to_string().contains("use `certdeck rotate"), "{err}");
}
