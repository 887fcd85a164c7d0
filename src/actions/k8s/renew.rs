//! cert-manager renew, exactly as `cmctl renew` does it: set the Certificate's `Issuing`
//! condition (True, ManuallyTriggered) with a full PUT to `/status`, retrying a 409 with a fresh
//! read; then follow the issuance until `Ready` with a new revision, or a failure reason.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::core::DynamicObject;
use serde_json::{json, Value};

use super::{k8s_error, k8s_of, ActionContext, K8sPlan};
use crate::actions::{ActionError, Outcome, Reporter, Step};
use crate::model::Record;
use crate::sources::k8s::certmanager::{self, certificate_request_resource, certificate_resource};
use crate::sources::k8s::error::call;
use crate::sources::k8s::K8sError;

/// How many 409 Conflicts in a row a renew retries before giving up.
pub const CONFLICT_RETRIES: usize = 5;

/// The reason and message cert-manager's CLI writes.
pub const REASON: &str = "ManuallyTriggered";
pub const MESSAGE: &str = "Certificate re-issuance manually triggered";

fn status_path(ns: &str, name: &str) -> String {
    format!("/apis/cert-manager.io/v1/namespaces/{ns}/certificates/{name}/status")
}

pub(super) async fn plan(ctx: &ActionContext, record: &Record) -> Result<K8sPlan, ActionError> {
    let k = k8s_of(record)?;
    let Some(cm) = &k.managed_by else {
        return Err(ActionError::not_applicable(format!(
            "{} is not managed by a cert-manager Certificate: use `certdeck rotate {}`",
            record.location, record.id
        )));
    };
    let client = ctx.client(&k.context, Step::Read).await?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(client, &k.namespace, &certificate_resource());
    let obj = call(
        api.get(&cm.name),
        ctx.timeout,
        &k.context,
        "get",
        "certificates",
        &k.namespace,
    )
    .await
    .map_err(k8s_error(Step::Read))?;
    let now = certmanager::info(&obj);
    let mut warnings = Vec::new();
    if now.issuing.as_ref().is_some_and(|c| c.status == "True") {
        warnings.push(
            "an issuance is already in progress: certdeck will follow it without writing".into(),
        );
    }
    let old_not_after = record
        .cert
        .as_ref()
        .map(|c| c.not_after)
        .or_else(|| now.not_after.as_deref().and_then(certmanager::parse_time));
    Ok(K8sPlan {
        kind: "renew",
        record_id: record.id.clone(),
        location: record.location.clone(),
        context: k.context.clone(),
        namespace: k.namespace.clone(),
        object: format!("Certificate {}/{}", k.namespace, cm.name),
        certificate: Some(cm.name.clone()),
        secret: now.secret_name.clone(),
        resource_version: obj.metadata.resource_version.clone(),
        old_not_after,
        new_not_after: None,
        issuer: now.issuer_ref.clone(),
        sans: now.dns_names.clone(),
        key_type: None,
        before_sha256: record.cert.as_ref().map(|c| c.sha256.clone()),
        revision: now.revision,
        api_calls: vec![
            format!(
                "GET {} (fresh read)",
                status_path(&k.namespace, &cm.name).trim_end_matches("/status")
            ),
            format!(
                "PUT {} (condition Issuing=True, reason {REASON}; a 409 is retried with a fresh read)",
                status_path(&k.namespace, &cm.name)
            ),
            format!(
                "GET the Certificate every {} until Ready with revision {} (at most {})",
                humantime::format_duration(ctx.poll),
                now.revision.unwrap_or(0) + 1,
                humantime::format_duration(ctx.wait)
            ),
            format!("GET /api/v1/namespaces/{}/secrets/{} (verify)", k.namespace, now.secret_name),
        ],
        warnings,
        backup: None,
    })
}

fn is_issuing(obj: &DynamicObject) -> bool {
    certmanager::condition(&obj.data["status"], "Issuing").is_some_and(|c| c.status == "True")
}

/// Set the Issuing condition as cmctl does (replacing any previous Issuing condition).
pub fn set_issuing(obj: &mut DynamicObject) {
    let generation = obj.metadata.generation.unwrap_or(1);
    if !obj.data["status"].is_object() {
        obj.data["status"] = json!({});
    }
    let mut conds: Vec<Value> = obj.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Issuing")
        .collect();
    conds.push(json!({
        "type": "Issuing",
        "status": "True",
        "reason": REASON,
        "message": MESSAGE,
        "lastTransitionTime": crate::clock::rfc3339(crate::clock::now_unix()),
        "observedGeneration": generation,
    }));
    obj.data["status"]["conditions"] = json!(conds);
}

pub(super) async fn execute(
    ctx: &ActionContext,
    plan: &K8sPlan,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let name = plan.certificate.clone().unwrap_or_default();
    let ns = plan.namespace.as_str();
    let cx = plan.context.as_str();
    let client = ctx.client(cx, Step::Write).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &certificate_resource());

    // 1. Trigger.
    let mut attempt = 0;
    let start_revision = loop {
        attempt += 1;
        let mut obj = call(api.get(&name), ctx.timeout, cx, "get", "certificates", ns)
            .await
            .map_err(k8s_error(Step::Read))?;
        let revision = obj.data["status"]["revision"].as_i64();
        if is_issuing(&obj) {
            rep.step(Step::Write, "already issuing: following it without writing")
                .await;
            break revision;
        }
        set_issuing(&mut obj);
        match call(
            api.replace_status(&name, &PostParams::default(), &obj),
            ctx.timeout,
            cx,
            "update",
            "certificates/status",
            ns,
        )
        .await
        {
            Ok(_) => {
                rep.step(
                    Step::Write,
                    format!(
                        "Issuing condition set ({REASON}) with PUT {}",
                        status_path(ns, &name)
                    ),
                )
                .await;
                break revision;
            }
            Err(K8sError::Conflict(m)) if attempt < CONFLICT_RETRIES => {
                rep.step(
                    Step::Write,
                    format!("409 Conflict (attempt {attempt}): re-reading and retrying: {m}"),
                )
                .await;
            }
            Err(e) => return Err(k8s_error(Step::Write)(e)),
        }
    };

    // 2. Follow the issuance.
    let target = start_revision.unwrap_or(0) + 1;
    let deadline = tokio::time::Instant::now() + ctx.wait;
    let cr_api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &certificate_request_resource());
    let mut last = String::new();
    let mut seen_request = false;
    let done = loop {
        let obj = match call(api.get(&name), ctx.timeout, cx, "get", "certificates", ns).await {
            Ok(o) => Some(o),
            Err(e) if e.is_cluster_level() => {
                rep.step(Step::Wait, format!("read failed, retrying: {e}"))
                    .await;
                None
            }
            Err(e) => return Err(k8s_error(Step::Wait)(e)),
        };
        if let Some(obj) = obj {
            let info = certmanager::info(&obj);
            let issuing = info.issuing.clone();
            if let Some(i) = issuing.as_ref().filter(|c| c.status == "False") {
                if i.reason.as_deref() != Some(REASON) {
                    return Err(ActionError::at(
                        Step::Wait,
                        format!(
                            "cert-manager reports the issuance failed: {}: {}",
                            i.reason.clone().unwrap_or_else(|| "Failed".into()),
                            i.message.clone().unwrap_or_default()
                        ),
                    ));
                }
            }
            let ready = info.ready.as_ref().is_some_and(|c| c.status == "True");
            let still_issuing = issuing.as_ref().is_some_and(|c| c.status == "True");
            if ready && !still_issuing && info.revision.unwrap_or(0) >= target {
                break info;
            }
            let state = certmanager::state_line(&info);
            if state != last {
                rep.step(Step::Wait, state.clone()).await;
                last = state;
            }
            if !seen_request {
                if let Some(cr) = find_request(ctx, &cr_api, cx, ns, &name, target).await {
                    rep.step(Step::Wait, format!("CertificateRequest {cr} created"))
                        .await;
                    seen_request = true;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ActionError::timeout(
                Step::Wait,
                format!(
                    "timed out after {} (Certificate {ns}/{name} not Ready with revision {target}; last state: {})",
                    humantime::format_duration(ctx.wait),
                    if last.is_empty() { "unknown" } else { &last }
                ),
            ));
        }
        tokio::time::sleep(ctx.poll).await;
    };
    rep.step(
        Step::Wait,
        format!("Ready with revision {}", done.revision.unwrap_or(target)),
    )
    .await;

    // 3. Verify the Secret holds a new certificate.
    let secrets: Api<Secret> = Api::namespaced(client, ns);
    let s = call(
        secrets.get(&done.secret_name),
        ctx.timeout,
        cx,
        "get",
        "secrets",
        ns,
    )
    .await
    .map_err(k8s_error(Step::Verify))?;
    let crt = s
        .data
        .as_ref()
        .and_then(|d| d.get("tls.crt"))
        .map(|b| b.0.clone())
        .unwrap_or_default();
    let leaf = match crate::sources::k8s::read::parse_certs(&crt) {
        Some(Ok(c)) if !c.is_empty() => Arc::new(c[0].clone()),
        _ => {
            return Err(ActionError::at(
                Step::Verify,
                format!(
                    "Secret {ns}/{} holds no readable certificate after the renewal",
                    done.secret_name
                ),
            ))
        }
    };
    if plan.before_sha256.as_deref() == Some(leaf.sha256.as_str()) {
        return Err(ActionError::at(Step::Verify, format!(
            "Certificate is Ready with revision {} but Secret {ns}/{} still holds the old certificate",
            done.revision.unwrap_or(target),
            done.secret_name
        )));
    }
    let msg = format!(
        "renewed: revision {}, new certificate expires {}",
        done.revision.unwrap_or(target),
        crate::clock::rfc3339(leaf.not_after)
    );
    rep.step(Step::Done, msg.clone()).await;
    Ok(Outcome {
        after_sha256: Some(leaf.sha256.clone()),
        new_not_after: Some(leaf.not_after),
        revision: done.revision,
        message: msg,
        ..Outcome::default()
    })
}

/// The CertificateRequest cert-manager created for `revision` of Certificate `name`, if any.
async fn find_request(
    ctx: &ActionContext,
    api: &Api<DynamicObject>,
    cx: &str,
    ns: &str,
    name: &str,
    revision: i64,
) -> Option<String> {
    let list = call(
        api.list(&ListParams::default()),
        ctx.timeout,
        cx,
        "list",
        "certificaterequests",
        ns,
    )
    .await
    .ok()?;
    list.items.into_iter().find_map(|cr| {
        let a = cr.metadata.annotations.as_ref()?;
        (a.get("cert-manager.io/certificate-name")
            .map(String::as_str)
            == Some(name)
            && a.get("cert-manager.io/certificate-revision")
                .map(String::as_str)
                == Some(revision.to_string().as_str()))
        .then(|| cr.metadata.name.clone().unwrap_or_default())
    })
}
