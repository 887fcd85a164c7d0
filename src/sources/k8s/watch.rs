//! Keeping Kubernetes rows current: watch Secrets and cert-manager Certificates and send the
//! affected rows again when they change, through the same `SourceEvent` channel as the reader.
//!
//! A changed Secret sends its rows again; a changed Certificate sends its Secret's rows again
//! (so `managed_by`, the conditions and drift follow); a deleted Secret sends each of its rows
//! as an error row saying so. The watchers restart with backoff after errors (relisting, as
//! kube's watcher does); objects deleted while a watch was down are not reported.

use std::collections::HashMap;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::DynamicObject;
use kube::runtime::{watcher, WatchStreamExt as _};
use tokio::sync::mpsc;

use super::certmanager::{self, certificate_resource};
use super::error::call;
use super::read::{certificate_row, secret_records, Scope};
use super::{K8sSettings, KubeAccess};
use crate::model::{CertManagerInfo, K8sInfo, Record, SourceKind};
use crate::sources::SourceEvent;

enum Ev {
    Cert(Result<watcher::Event<DynamicObject>, watcher::Error>),
    Secret(Result<watcher::Event<Secret>, watcher::Error>),
}

/// Watch every selected context until `tx` is closed. Meant to run beside (after) `run`.
pub async fn watch(settings: K8sSettings, tx: mpsc::Sender<SourceEvent>) {
    let access = match KubeAccess::load(settings.kubeconfig.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!("kubernetes watch: {e}");
            return;
        }
    };
    let contexts = match access.select(&settings.contexts, settings.all_contexts) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("kubernetes watch: {e}");
            return;
        }
    };
    let access = std::sync::Arc::new(access);
    let settings = std::sync::Arc::new(settings);
    let mut jobs = tokio::task::JoinSet::new();
    for ctx in contexts {
        let (access, settings, tx) = (access.clone(), settings.clone(), tx.clone());
        jobs.spawn(async move { watch_context(&access, &ctx, &settings, &tx).await });
    }
    while jobs.join_next().await.is_some() {}
}

/// Send rows; false once the receiver is gone.
async fn send(tx: &mpsc::Sender<SourceEvent>, recs: Vec<Record>) -> bool {
    for r in recs {
        if tx.send(SourceEvent::Observed(r)).await.is_err() {
            return false;
        }
    }
    true
}

async fn watch_context(
    access: &KubeAccess,
    ctx: &str,
    settings: &K8sSettings,
    tx: &mpsc::Sender<SourceEvent>,
) {
    let client = match access.watch_client(ctx, settings.timeout).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{ctx}: cannot watch: {e}");
            return;
        }
    };
    let scope = if settings.all_namespaces {
        Scope::All
    } else {
        Scope::One(
            settings
                .namespace
                .clone()
                .unwrap_or_else(|| access.context_namespace(ctx)),
        )
    };
    let ar = certificate_resource();
    let (cert_api, secret_api): (Api<DynamicObject>, Api<Secret>) = match &scope {
        Scope::One(ns) => (
            Api::namespaced_with(client.clone(), ns, &ar),
            Api::namespaced(client.clone(), ns),
        ),
        Scope::All => (Api::all_with(client.clone(), &ar), Api::all(client.clone())),
    };
    let certs_stream = watcher(cert_api, watcher::Config::default())
        .default_backoff()
        .map(Ev::Cert);
    let secrets_stream = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .map(Ev::Secret);
    let mut events = std::pin::pin!(futures::stream::select(certs_stream, secrets_stream));

    // (namespace, secretName) -> the Certificate issuing it.
    let mut certs: HashMap<(String, String), CertManagerInfo> = HashMap::new();
    // (namespace, name) -> the locations last sent for that Secret.
    let mut sent: HashMap<(String, String), Vec<String>> = HashMap::new();
    let key_of = |m: &kube::api::ObjectMeta| {
        (
            m.namespace.clone().unwrap_or_default(),
            m.name.clone().unwrap_or_default(),
        )
    };

    while let Some(ev) = events.next().await {
        let now = crate::clock::now_unix();
        let recs: Vec<Record> = match ev {
            Ev::Secret(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                let recs = secret_records(ctx, &s, &certs, now);
                sent.insert(
                    key_of(&s.metadata),
                    recs.iter().map(|r| r.location.clone()).collect(),
                );
                recs
            }
            Ev::Secret(Ok(watcher::Event::Delete(s))) => {
                let (ns, name) = key_of(&s.metadata);
                let locations = sent.remove(&(ns.clone(), name.clone())).unwrap_or_default();
                let mut out: Vec<Record> = locations
                    .into_iter()
                    .map(|loc| {
                        let mut r = Record::new(SourceKind::K8s, loc, now)
                            .with_error(format!("Secret {ns}/{name} was deleted"));
                        r.k8s = Some(K8sInfo {
                            context: ctx.to_owned(),
                            namespace: ns.clone(),
                            kind: "Secret".to_owned(),
                            name: name.clone(),
                            ..K8sInfo::default()
                        });
                        r
                    })
                    .collect();
                if let Some(cm) = certs.get(&(ns.clone(), name.clone())) {
                    out.push(certificate_row(ctx, &ns, cm, now));
                }
                out
            }
            Ev::Cert(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let info = certmanager::info(&o);
                let key = (ns.clone(), info.secret_name.clone());
                if certs.get(&key) == Some(&info) {
                    Vec::new()
                } else {
                    certs.insert(key, info.clone());
                    secret_rows(&client, ctx, settings, &ns, &info, &certs, now).await
                }
            }
            Ev::Cert(Ok(watcher::Event::Delete(o))) => {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let info = certmanager::info(&o);
                certs.remove(&(ns.clone(), info.secret_name.clone()));
                let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
                match call(
                    api.get_opt(&info.secret_name),
                    settings.timeout,
                    ctx,
                    "get",
                    "secrets",
                    &ns,
                )
                .await
                {
                    Ok(Some(s)) => secret_records(ctx, &s, &certs, now),
                    _ => Vec::new(),
                }
            }
            Ev::Cert(Ok(_)) | Ev::Secret(Ok(_)) => Vec::new(),
            Ev::Cert(Err(e)) => {
                tracing::info!("{ctx}: Certificate watch: {e}");
                Vec::new()
            }
            Ev::Secret(Err(e)) => {
                tracing::info!("{ctx}: Secret watch: {e}");
                Vec::new()
            }
        };
        if !send(tx, recs).await {
            return;
        }
    }
}

/// The rows of the Secret a Certificate names, or the Certificate's own row when it is missing.
async fn secret_rows(
    client: &kube::Client,
    ctx: &str,
    settings: &K8sSettings,
    ns: &str,
    cm: &CertManagerInfo,
    certs: &HashMap<(String, String), CertManagerInfo>,
    now: i64,
) -> Vec<Record> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match call(
        api.get_opt(&cm.secret_name),
        settings.timeout,
        ctx,
        "get",
        "secrets",
        ns,
    )
    .await
    {
        Ok(Some(s)) => secret_records(ctx, &s, certs, now),
        Ok(None) => vec![certificate_row(ctx, ns, cm, now)],
        Err(e) => {
            tracing::info!("{ctx}: Secret {ns}/{}: {e}", cm.secret_name);
            Vec::new()
        }
    }
}
