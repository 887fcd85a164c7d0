//! Served versus stored: probe each Ingress TLS host (at the Ingress's load-balancer address,
//! with the host as SNI) and flag one that still serves another certificate than its Secret
//! holds, typically an older one the controller has not reloaded.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::Ingress;

use super::K8sSettings;
use crate::model::{CertFacts, K8sInfo, Record};
use crate::sources::{Sink, Target};

/// The `tls.crt` leaf of each Secret read, by (namespace, name).
pub type StoredLeaves = HashMap<(String, String), Arc<CertFacts>>;

/// One TLS host of an Ingress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressHost {
    pub namespace: String,
    pub ingress: String,
    pub host: String,
    pub secret: Option<String>,
    /// Where to connect: the load balancer's IP or host name, else the host itself.
    pub address: String,
}

/// Every TLS host an Ingress declares.
pub fn tls_hosts(i: &Ingress) -> Vec<IngressHost> {
    let ns = i.metadata.namespace.clone().unwrap_or_default();
    let name = i.metadata.name.clone().unwrap_or_default();
    let lb = i
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .and_then(|v| v.first())
        .and_then(|e| e.ip.clone().or_else(|| e.hostname.clone()));
    let mut out = Vec::new();
    for t in i.spec.iter().flat_map(|s| s.tls.iter().flatten()) {
        for h in t.hosts.iter().flatten() {
            out.push(IngressHost {
                namespace: ns.clone(),
                ingress: name.clone(),
                host: h.clone(),
                secret: t.secret_name.clone(),
                address: lb.clone().unwrap_or_else(|| h.clone()),
            });
        }
    }
    out
}

/// How the served leaf differs from the stored one, if it does.
pub fn compare(served: &CertFacts, stored: Option<&CertFacts>, secret: &str) -> Option<String> {
    let Some(stored) = stored else {
        return Some(format!(
            "Secret {secret} holds no certificate that certdeck could read"
        ));
    };
    if served.sha256 == stored.sha256 {
        return None;
    }
    let when = crate::clock::rfc3339;
    Some(if served.not_after < stored.not_after {
        format!(
            "serves an older certificate (expires {}) than Secret {secret} holds (expires {}): the ingress controller has not picked up the new one",
            when(served.not_after),
            when(stored.not_after)
        )
    } else {
        format!(
            "serves another certificate (sha256 {}, expires {}) than Secret {secret} holds (sha256 {})",
            &served.sha256[..16],
            when(served.not_after),
            &stored.sha256[..16]
        )
    })
}

/// Probe the hosts (a few at a time) and send one row per host.
pub async fn check(
    ctx: &str,
    hosts: Vec<IngressHost>,
    stored: &StoredLeaves,
    settings: &K8sSettings,
    sink: &Sink,
    now: i64,
) {
    use futures::StreamExt as _;
    if hosts.is_empty() {
        return;
    }
    let probe = crate::sources::ProbeSettings {
        timeout: settings.timeout,
        ..crate::sources::ProbeSettings::default()
    };
    let prober = match crate::sources::build_prober(&probe) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            tracing::error!("{ctx}: cannot probe Ingress hosts: {e}");
            return;
        }
    };
    let port = settings.ingress_port;
    let rows: Vec<Record> = futures::stream::iter(hosts.into_iter().map(|h| {
        let prober = prober.clone();
        async move {
            let addr = if h.address.contains(':') && !h.address.starts_with('[') {
                format!("[{}]", h.address)
            } else {
                h.address.clone()
            };
            let info = K8sInfo {
                context: ctx.to_owned(),
                namespace: h.namespace.clone(),
                kind: "Ingress".to_owned(),
                name: h.ingress.clone(),
                key: Some(h.host.clone()),
                ..K8sInfo::default()
            };
            let mut rec = super::read::record(info, None, now);
            match Target::parse(&format!("{addr}:{port}@{}", h.host), None) {
                Ok(t) => {
                    let probed = prober.probe(&t).await;
                    rec.cert = probed.cert;
                    rec.chain = probed.chain;
                    rec.tls = probed.tls;
                    rec.error = probed.error;
                }
                Err(e) => rec.error = Some(e.why),
            }
            if let (Some(served), Some(k)) = (rec.cert.clone(), rec.k8s.as_mut()) {
                k.drift = match &h.secret {
                    Some(s) => compare(
                        &served,
                        stored.get(&(h.namespace.clone(), s.clone())).map(|c| &**c),
                        &format!("{}/{s}", h.namespace),
                    ),
                    None => None,
                };
            }
            rec
        }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    for r in rows {
        let _ = sink.observed(r).await;
    }
}
