//! Kubernetes errors, typed, with the human wording users act on (which permission is missing).

use std::time::Duration;

/// Why a Kubernetes call failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum K8sError {
    #[error("cannot load kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error("context '{0}' is not in the kubeconfig")]
    UnknownContext(String),
    #[error("no context selected: the kubeconfig has no current-context (use --context NAME or --all-contexts)")]
    NoContext,
    #[error("unauthorized (401): the credentials of context '{context}' were rejected: {message}")]
    Unauthorized { context: String, message: String },
    #[error("forbidden (403): missing permission `{verb}` on `{resource}`{scope}: {message}")]
    Forbidden {
        verb: String,
        resource: String,
        /// ` in namespace "x"` or ` at the cluster scope`.
        scope: String,
        message: String,
    },
    #[error("not found (404): {0}")]
    NotFound(String),
    #[error("conflict (409): {0}")]
    Conflict(String),
    #[error("list expired (410): {0}")]
    Gone(String),
    #[error("timed out after {} waiting for the API server ({what})", humantime::format_duration(*.after))]
    Timeout { what: String, after: Duration },
    #[error("cluster unreachable: {0}")]
    Unreachable(String),
    #[error("API error {code} {reason}: {message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

impl K8sError {
    /// Classify a kube error for a request `verb` on `resource` in `namespace` ("" = cluster).
    pub fn from_kube(
        e: kube::Error,
        context: &str,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> K8sError {
        match e {
            kube::Error::Api(s) => {
                let message = s.message.clone();
                match s.code {
                    401 => K8sError::Unauthorized {
                        context: context.to_owned(),
                        message,
                    },
                    403 => K8sError::Forbidden {
                        verb: verb.to_owned(),
                        resource: resource.to_owned(),
                        scope: if namespace.is_empty() {
                            " at the cluster scope".to_owned()
                        } else {
                            format!(" in namespace \"{namespace}\"")
                        },
                        message,
                    },
                    404 => K8sError::NotFound(message),
                    409 => K8sError::Conflict(message),
                    410 => K8sError::Gone(message),
                    code => K8sError::Api {
                        code,
                        reason: s.reason.clone(),
                        message,
                    },
                }
            }
            kube::Error::HyperError(e) => K8sError::Unreachable(chain(&e)),
            kube::Error::Service(e) => K8sError::Unreachable(chain(e.as_ref())),
            other => K8sError::Other(chain(&other)),
        }
    }

    pub fn is_forbidden(&self) -> bool {
        matches!(self, K8sError::Forbidden { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::NotFound(_))
    }

    /// The whole cluster cannot be talked to (as opposed to one object or namespace).
    pub fn is_cluster_level(&self) -> bool {
        matches!(
            self,
            K8sError::Unreachable(_) | K8sError::Timeout { .. } | K8sError::Unauthorized { .. }
        )
    }
}

/// An error and its sources on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// Run a request future with a time limit, classifying errors.
pub async fn call<T, F>(
    fut: F,
    timeout: Duration,
    context: &str,
    verb: &str,
    resource: &str,
    namespace: &str,
) -> Result<T, K8sError>
where
    F: std::future::Future<Output = Result<T, kube::Error>>,
{
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => match K8sError::from_kube(e, context, verb, resource, namespace) {
            // The client's own connect/read deadlines (same limit) say "deadline has elapsed".
            K8sError::Unreachable(m) | K8sError::Other(m)
                if m.contains("deadline has elapsed") || m.contains("timed out") =>
            {
                Err(K8sError::Timeout {
                    what: format!("{verb} {resource}: {m}"),
                    after: timeout,
                })
            }
            other => Err(other),
        },
        Err(_) => Err(K8sError::Timeout {
            what: format!(
                "{verb} {resource}{}",
                if namespace.is_empty() {
                    String::new()
                } else {
                    format!(" in {namespace}")
                }
            ),
            after: timeout,
        }),
    }
}
