//! Keeping a context's rows live: after a round has listed Secrets and cert-manager
//! Certificates, watch both from the versions of those lists (no re-list), and send what
//! changes through the source's sink.
//!
//! A changed Secret sends its rows again (and says which of its old rows are gone); an added
//! one sends its rows; a deleted one removes its rows (and shows its Certificate's own row if a
//! Certificate still names it). A changed Certificate sends its Secret's rows again, so
//! `managed_by`, the conditions and drift follow. A watch whose version is too old (410)
//! asks the supervisor for a full round and starts again from that round's lists.

use std::time::Duration;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::core::DynamicObject;

use super::certmanager::{self, certificate_resource};
use super::error::call;
use super::read::{certificate_row, secret_records, Scope, WatchStart, SECRET_FIELD_SELECTOR};
use super::{K8sSettings, KubeAccess};
use crate::model::{CertManagerInfo, Record};
use crate::sources::Sink;

/// Pause before reconnecting after an error.
const RECONNECT: Duration = Duration::from_secs(3);

enum Ev {
    Cert(Result<WatchEvent<DynamicObject>, kube::Error>),
    Secret(Result<WatchEvent<Secret>, kube::Error>),
    /// One of the streams ended (the server's timeout): re-watch from the last versions.
    Ended,
}

/// What the feed decided after a stream ended.
enum Next {
    /// The server ended the stream (its timeout): watch again at once.
    Again,
    /// Re-watch from the last versions seen, after a pause (an error).
    Rewatch,
    /// The versions are too old (410): wait for a new round's lists.
    Relist,
    /// Nobody listens any more.
    Stop,
}

type Key = (String, String);

fn key_of(m: &kube::api::ObjectMeta) -> Key {
    (
        m.namespace.clone().unwrap_or_default(),
        m.name.clone().unwrap_or_default(),
    )
}

/// The live state of one context between rounds.
struct Feed<'a> {
    ctx: &'a str,
    settings: &'a K8sSettings,
    sink: &'a Sink,
    client: kube::Client,
    start: WatchStart,
}

impl Feed<'_> {
    /// Send rows, then remove the Secret's rows that it no longer gives.
    async fn secret_rows(&mut self, key: Key, recs: Vec<Record>) -> bool {
        let new_ids: Vec<String> = recs.iter().map(|r| r.id.clone()).collect();
        for r in recs {
            if !self.sink.observed(r).await {
                return false;
            }
        }
        let old = self
            .start
            .rows
            .insert(key, new_ids.clone())
            .unwrap_or_default();
        for id in old.into_iter().filter(|id| !new_ids.contains(id)) {
            if !self.sink.removed(id).await {
                return false;
            }
        }
        true
    }

    async fn secret_deleted(&mut self, key: Key) -> bool {
        for id in self.start.rows.remove(&key).unwrap_or_default() {
            if !self.sink.removed(id).await {
                return false;
            }
        }
        if let Some(cm) = self.start.certs.get(&key).cloned() {
            let now = crate::clock::now_unix();
            return self
                .sink
                .observed(certificate_row(self.ctx, &key.0, &cm, now))
                .await;
        }
        true
    }

    /// Read the Secret a Certificate names and send its rows (or the Certificate's own row).
    async fn refresh_secret(&mut self, ns: &str, cm: &CertManagerInfo) -> bool {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        let key = (ns.to_owned(), cm.secret_name.clone());
        let now = crate::clock::now_unix();
        match call(
            api.get_opt(&cm.secret_name),
            self.settings.timeout,
            self.ctx,
            "get",
            "secrets",
            ns,
        )
        .await
        {
            Ok(Some(s)) => {
                let recs = super::mesh::annotate_secret(
                    &self.settings.mesh,
                    &s,
                    secret_records(self.ctx, &s, &self.start.certs, &self.start.passwords, now),
                );
                self.secret_rows(key, recs).await
            }
            Ok(None) => {
                let row = certificate_row(self.ctx, ns, cm, now);
                self.secret_rows(key, vec![row]).await
            }
            Err(e) => {
                tracing::info!("{}: Secret {ns}/{}: {e}", self.ctx, cm.secret_name);
                true
            }
        }
    }

    async fn on_secret(&mut self, ev: WatchEvent<Secret>) -> Result<bool, Next> {
        let now = crate::clock::now_unix();
        Ok(match ev {
            WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                if let Some(rv) = &s.metadata.resource_version {
                    self.start.secrets_rv = rv.clone();
                }
                let recs = super::mesh::annotate_secret(
                    &self.settings.mesh,
                    &s,
                    secret_records(self.ctx, &s, &self.start.certs, &self.start.passwords, now),
                );
                self.secret_rows(key_of(&s.metadata), recs).await
            }
            WatchEvent::Deleted(s) => {
                if let Some(rv) = &s.metadata.resource_version {
                    self.start.secrets_rv = rv.clone();
                }
                self.secret_deleted(key_of(&s.metadata)).await
            }
            WatchEvent::Bookmark(b) => {
                self.start.secrets_rv = b.metadata.resource_version;
                true
            }
            WatchEvent::Error(e) if e.code == 410 => return Err(Next::Relist),
            WatchEvent::Error(e) => {
                tracing::info!("{}: Secret watch: {} {}", self.ctx, e.code, e.message);
                return Err(Next::Rewatch);
            }
        })
    }

    async fn on_cert(&mut self, ev: WatchEvent<DynamicObject>) -> Result<bool, Next> {
        Ok(match ev {
            WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                if let Some(rv) = &o.metadata.resource_version {
                    self.start.certs_rv = Some(rv.clone());
                }
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let info = certmanager::info(&o);
                let key = (ns.clone(), info.secret_name.clone());
                let (timeout, ctx) = (self.settings.timeout, self.ctx);
                let pw_changed = self
                    .start
                    .passwords
                    .refresh(&self.client, timeout, ctx, &o)
                    .await;
                if !pw_changed && self.start.certs.get(&key) == Some(&info) {
                    true
                } else {
                    self.start.certs.insert(key, info.clone());
                    self.refresh_secret(&ns, &info).await
                }
            }
            WatchEvent::Deleted(o) => {
                if let Some(rv) = &o.metadata.resource_version {
                    self.start.certs_rv = Some(rv.clone());
                }
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let info = certmanager::info(&o);
                self.start
                    .certs
                    .remove(&(ns.clone(), info.secret_name.clone()));
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                let key = (ns.clone(), info.secret_name.clone());
                let now = crate::clock::now_unix();
                match call(
                    api.get_opt(&info.secret_name),
                    self.settings.timeout,
                    self.ctx,
                    "get",
                    "secrets",
                    &ns,
                )
                .await
                {
                    Ok(Some(s)) => {
                        let recs = super::mesh::annotate_secret(
                            &self.settings.mesh,
                            &s,
                            secret_records(
                                self.ctx,
                                &s,
                                &self.start.certs,
                                &self.start.passwords,
                                now,
                            ),
                        );
                        self.secret_rows(key, recs).await
                    }
                    _ => self.secret_deleted(key).await,
                }
            }
            WatchEvent::Bookmark(b) => {
                self.start.certs_rv = Some(b.metadata.resource_version);
                true
            }
            WatchEvent::Error(e) if e.code == 410 => return Err(Next::Relist),
            WatchEvent::Error(e) => {
                tracing::info!("{}: Certificate watch: {} {}", self.ctx, e.code, e.message);
                return Err(Next::Rewatch);
            }
        })
    }

    fn apis(&self) -> (Api<Secret>, Api<DynamicObject>) {
        let ar = certificate_resource();
        match &self.start.scope {
            Scope::One(ns) => (
                Api::namespaced(self.client.clone(), ns),
                Api::namespaced_with(self.client.clone(), ns, &ar),
            ),
            Scope::All => (
                Api::all(self.client.clone()),
                Api::all_with(self.client.clone(), &ar),
            ),
        }
    }

    /// Watch both kinds from the current versions until a stream ends or fails.
    async fn watch_once(&mut self) -> Next {
        let (secrets, certs) = self.apis();
        let wp = WatchParams::default()
            .timeout(self.settings.watch_timeout.as_secs().clamp(1, 290) as u32);
        let swp = wp.clone().fields(SECRET_FIELD_SELECTOR);
        let s = match secrets.watch(&swp, &self.start.secrets_rv).await {
            Ok(s) => s
                .map(Ev::Secret)
                .chain(futures::stream::once(async { Ev::Ended })),
            Err(e) => {
                tracing::info!("{}: cannot watch Secrets: {e}", self.ctx);
                return Next::Rewatch;
            }
        };
        let c: std::pin::Pin<Box<dyn Stream<Item = Ev> + Send>> = match &self.start.certs_rv {
            Some(rv) => match certs.watch(&wp, rv).await {
                Ok(c) => Box::pin(
                    c.map(Ev::Cert)
                        .chain(futures::stream::once(async { Ev::Ended })),
                ),
                Err(e) => {
                    tracing::info!("{}: cannot watch Certificates: {e}", self.ctx);
                    Box::pin(futures::stream::pending())
                }
            },
            None => Box::pin(futures::stream::pending()),
        };
        let mut events = std::pin::pin!(futures::stream::select(s, c));
        while let Some(ev) = events.next().await {
            let r = match ev {
                Ev::Secret(Ok(e)) => self.on_secret(e).await,
                Ev::Cert(Ok(e)) => self.on_cert(e).await,
                Ev::Secret(Err(e)) | Ev::Cert(Err(e)) => {
                    tracing::info!("{}: watch: {e}", self.ctx);
                    Err(Next::Rewatch)
                }
                Ev::Ended => Err(Next::Again),
            };
            match r {
                Ok(true) => {}
                Ok(false) => return Next::Stop,
                Err(next) => return next,
            }
        }
        Next::Rewatch
    }
}

/// Run the live feed of one context until the sink closes. `next_start` yields the watch start
/// of the latest round (waiting for one when there is none yet).
pub async fn run<F, Fut>(
    access: &KubeAccess,
    ctx: &str,
    settings: &K8sSettings,
    sink: &Sink,
    mut next_start: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<WatchStart>>,
{
    let client = match access.watch_client(ctx, settings.timeout).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{ctx}: cannot watch: {e}");
            return;
        }
    };
    let Some(start) = next_start().await else {
        return;
    };
    let mut feed = Feed {
        ctx,
        settings,
        sink,
        client,
        start,
    };
    loop {
        match feed.watch_once().await {
            Next::Stop => return,
            Next::Again if !sink.is_closed() => {}
            Next::Again => return,
            Next::Rewatch => {
                if sink.is_closed() {
                    return;
                }
                tokio::time::sleep(RECONNECT).await;
            }
            Next::Relist => {
                tracing::info!("{ctx}: watch versions expired: listing again");
                sink.request_round();
                match next_start().await {
                    Some(s) => feed.start = s,
                    None => return,
                }
            }
        }
    }
}
