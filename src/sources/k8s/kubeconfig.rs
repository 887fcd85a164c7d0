//! Kubeconfig as kubectl finds it, context selection, and kube clients with time limits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::error::K8sError;

/// A loaded kubeconfig and where it came from. Its Debug form shows where it came from and
/// the context names only: tokens, client keys and passwords never reach a log.
#[derive(Clone)]
pub struct KubeAccess {
    pub kubeconfig: Kubeconfig,
    /// The file(s) it was read from, for messages.
    pub source: String,
}

/// Where kubectl would look: `--kubeconfig`, else `KUBECONFIG` (merged list), else
/// `~/.kube/config`.
pub fn kubeconfig_source(explicit: Option<&Path>) -> String {
    if let Some(p) = explicit {
        return p.display().to_string();
    }
    if let Some(v) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return v.to_string_lossy().into_owned();
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".kube/config").display().to_string())
        .unwrap_or_else(|| "~/.kube/config".to_owned())
}

impl std::fmt::Debug for KubeAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeAccess")
            .field("source", &self.source)
            .field("contexts", &self.context_names())
            .field("current_context", &self.kubeconfig.current_context)
            .field("credentials", &"<redacted>")
            .finish()
    }
}

impl KubeAccess {
    /// Load the kubeconfig the way kubectl does.
    pub fn load(explicit: Option<&Path>) -> Result<KubeAccess, K8sError> {
        let source = kubeconfig_source(explicit);
        let loaded = match explicit {
            Some(p) => Kubeconfig::read_from(p),
            None => match std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
                // Like kubectl: files of the list that do not exist are skipped, the rest merged
                // in order (the first one to set a value wins).
                Some(list) => {
                    let paths: Vec<PathBuf> = std::env::split_paths(&list)
                        .filter(|p| !p.as_os_str().is_empty() && p.exists())
                        .collect();
                    if paths.is_empty() {
                        return Err(K8sError::Kubeconfig {
                            path: source,
                            message: "none of the files in KUBECONFIG exists".to_owned(),
                        });
                    }
                    paths.iter().try_fold(Kubeconfig::default(), |merged, p| {
                        Kubeconfig::read_from(p).and_then(|c| merged.merge(c))
                    })
                }
                None => Kubeconfig::read(),
            },
        };
        loaded
            .map(|kubeconfig| KubeAccess {
                kubeconfig,
                source: source.clone(),
            })
            .map_err(|e| K8sError::Kubeconfig {
                path: source,
                message: e.to_string(),
            })
    }

    /// Every context name, in file order.
    pub fn context_names(&self) -> Vec<String> {
        self.kubeconfig
            .contexts
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The contexts to read: the named ones (checked), all of them, or the current one.
    pub fn select(&self, named: &[String], all: bool) -> Result<Vec<String>, K8sError> {
        let names = self.context_names();
        if all {
            return Ok(names);
        }
        if !named.is_empty() {
            let mut out = Vec::new();
            for n in named {
                if !names.contains(n) {
                    return Err(K8sError::UnknownContext(n.clone()));
                }
                if !out.contains(n) {
                    out.push(n.clone());
                }
            }
            return Ok(out);
        }
        match &self.kubeconfig.current_context {
            Some(c) if !c.is_empty() => Ok(vec![c.clone()]),
            _ => Err(K8sError::NoContext),
        }
    }

    /// The namespace a context names (kubectl's default for commands without `-n`).
    pub fn context_namespace(&self, context: &str) -> String {
        self.kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.namespace.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    }

    /// The kubeconfig user name of a context.
    pub fn context_user(&self, context: &str) -> Option<String> {
        self.kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == context)
            .and_then(|c| c.context.as_ref())
            .and_then(|c| c.user.clone())
    }

    /// The client configuration of `context`.
    async fn config(&self, context: &str) -> Result<kube::Config, K8sError> {
        let opts = KubeConfigOptions {
            context: Some(context.to_owned()),
            ..KubeConfigOptions::default()
        };
        kube::Config::from_custom_kubeconfig(self.kubeconfig.clone(), &opts)
            .await
            .map_err(|e| K8sError::Kubeconfig {
                path: self.source.clone(),
                message: format!("context '{context}': {e}"),
            })
    }

    fn build(cfg: kube::Config, context: &str) -> Result<kube::Client, K8sError> {
        kube::Client::try_from(cfg)
            .map_err(|e| K8sError::Other(format!("context '{context}': {e}")))
    }

    /// A kube client for `context`, every request bounded by `timeout`.
    pub async fn client(&self, context: &str, timeout: Duration) -> Result<kube::Client, K8sError> {
        let mut cfg = self.config(context).await?;
        cfg.connect_timeout = Some(timeout);
        cfg.read_timeout = Some(timeout);
        cfg.write_timeout = Some(timeout);
        cfg.reset_reader_on_write = true;
        // 429/503/504 are retried (honouring Retry-After) inside each request's time limit.
        cfg.default_retry = true;
        Self::build(cfg, context)
    }

    /// A kube client for long watches: connecting is bounded by `timeout`, reading is not (a
    /// watch is quiet while nothing changes; the server ends it after its own `timeoutSeconds`).
    pub async fn watch_client(
        &self,
        context: &str,
        timeout: Duration,
    ) -> Result<kube::Client, K8sError> {
        let mut cfg = self.config(context).await?;
        cfg.connect_timeout = Some(timeout);
        cfg.read_timeout = None;
        cfg.write_timeout = Some(timeout);
        Self::build(cfg, context)
    }

    /// The client certificate (PEM or DER bytes) embedded in, or named by, a context's user.
    /// Returns (user name, key it came from, bytes).
    pub fn client_certificate(
        &self,
        context: &str,
    ) -> Option<(String, String, Result<Vec<u8>, String>)> {
        let user = self.context_user(context)?;
        let info = self
            .kubeconfig
            .auth_infos
            .iter()
            .find(|a| a.name == user)?
            .auth_info
            .as_ref()?;
        if let Some(data) = &info.client_certificate_data {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(|e| format!("client-certificate-data is not base64: {e}"));
            return Some((user, "client-certificate-data".to_owned(), bytes));
        }
        if let Some(path) = &info.client_certificate {
            let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));
            return Some((user, "client-certificate".to_owned(), bytes));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_names_the_file_and_contexts_but_no_secret() {
        let d = tempfile::tempdir().expect("dir");
        let p = d.path().join("config");
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\ncontexts:\n- name: prod\n  context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: s3cr3t-token-value\n    client-key-data: UFJJVkFURSBLRVkgREFUQQ==\n    password: hunter2\n    auth-provider:\n      name: gcp\n      config:\n        access-token: ya29.provider-access-token\n",
        )
        .expect("write");
        let a = KubeAccess::load(Some(&p)).expect("load");
        let dbg = format!("{a:?} {a:#?}");
        assert!(dbg.contains("prod") && dbg.contains("config"), "{dbg}");
        for secret in [
            "s3cr3t-token-value",
            "UFJJVkFURSBLRVkgREFUQQ",
            "hunter2",
            "ya29.provider-access-token",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked: {dbg}");
        }
        let ctx = crate::actions::k8s::ActionContext::new(std::sync::Arc::new(a));
        let dbg = format!("{ctx:?}");
        assert!(!dbg.contains("s3cr3t") && !dbg.contains("hunter2"), "{dbg}");
    }
}
