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
pub mod keys;
pub mod keystores;
pub mod kubeconfig;
pub mod mesh;
pub mod read;
pub mod source;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

pub use error::K8sError;
pub use kubeconfig::KubeAccess;
pub use source::{K8sArgs, K8sSource, KubernetesConfig};

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
    /// How long one watch request stays open before it is renewed (the API server's
    /// `timeoutSeconds`; 290 s).
    pub watch_timeout: Duration,
    /// Service-mesh CAs: where Istio's and Linkerd's control planes live.
    pub mesh: mesh::MeshSettings,
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
            watch_timeout: Duration::from_secs(290),
            mesh: mesh::MeshSettings::default(),
        }
    }
}
