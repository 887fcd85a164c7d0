//! The Kubernetes source: TLS Secrets, certificates in other Secret and ConfigMap keys,
//! cert-manager Certificates (linked to their Secrets), webhook and APIService `caBundle`s and
//! kubeconfig client certificates, across one or several contexts at once.
//!
//! Every failure is a row: an unreachable or hanging cluster is one error row for its context
//! (bounded by the request timeout), a namespace the user may not list is a `forbidden` row and
//! the other namespaces still load.

pub mod certmanager;
pub mod error;
pub mod ingress;
pub mod kubeconfig;
pub mod read;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use error::K8sError;
pub use kubeconfig::KubeAccess;

use super::SourceEvent;
use crate::model::SourceKind;

/// Default page size of list calls (`limit`).
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// What to read from Kubernetes, resolved from flags and the `[kubernetes]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sSettings {
    /// `--kubeconfig`; None: `KUBECONFIG`, else `~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context` (repeatable); empty: the current context.
    pub contexts: Vec<String>,
    pub all_contexts: bool,
    /// `-n`; None: the context's namespace (or `default`), unless `all_namespaces`.
    pub namespace: Option<String>,
    /// `-A`: every namespace, plus cluster-scoped webhooks and APIServices.
    pub all_namespaces: bool,
    /// Time limit of each API request.
    pub timeout: Duration,
    /// `limit` of each list page.
    pub page_size: u32,
    /// Probe every Ingress TLS host and compare what it serves with its Secret.
    pub check_ingresses: bool,
    /// Port the Ingress hosts are probed on (443; tests use another).
    pub ingress_port: u16,
}

impl Default for K8sSettings {
    fn default() -> Self {
        K8sSettings {
            kubeconfig: None,
            contexts: Vec::new(),
            all_contexts: false,
            namespace: None,
            all_namespaces: false,
            timeout: Duration::from_secs(10),
            page_size: DEFAULT_PAGE_SIZE,
            check_ingresses: false,
            ingress_port: 443,
        }
    }
}

/// Read every selected context concurrently, sending records on `tx`. A kubeconfig that cannot
/// be loaded is a source-level failure; everything else is a row.
pub async fn run(settings: K8sSettings, tx: mpsc::Sender<SourceEvent>) {
    let _ = tx
        .send(SourceEvent::Started {
            source: SourceKind::K8s,
            total: 0,
        })
        .await;
    let access = match KubeAccess::load(settings.kubeconfig.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            let _ = tx
                .send(SourceEvent::Failed {
                    source: SourceKind::K8s,
                    error: e.to_string(),
                })
                .await;
            return;
        }
    };
    let contexts = match access.select(&settings.contexts, settings.all_contexts) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx
                .send(SourceEvent::Failed {
                    source: SourceKind::K8s,
                    error: e.to_string(),
                })
                .await;
            return;
        }
    };
    let access = std::sync::Arc::new(access);
    let settings = std::sync::Arc::new(settings);
    let mut jobs = tokio::task::JoinSet::new();
    for ctx in contexts {
        let (access, settings, tx) = (access.clone(), settings.clone(), tx.clone());
        jobs.spawn(async move { read::read_context(&access, &ctx, &settings, &tx).await });
    }
    while let Some(r) = jobs.join_next().await {
        if let Err(e) = r {
            tracing::error!("kubernetes context task failed: {e}");
        }
    }
}
