//! The Vault / OpenBao PKI source: every issued certificate and every issuer of each PKI
//! mount, with revocation state, and the roles of each mount as facts.
//!
//! One client serves both servers: they share the PKI API paths. Where OpenBao has more
//! (`LIST <mount>/certs/detailed`, paged `LIST` with `after`/`limit`) the reader uses it when
//! the server answers and falls back to the plain calls elsewhere.
//!
//! Authentication follows the vault CLI (see [`auth`]): `VAULT_ADDR`/`BAO_ADDR`,
//! `VAULT_TOKEN`/`BAO_TOKEN`, `~/.vault-token`, `VAULT_NAMESPACE`, `VAULT_CACERT`,
//! `VAULT_CAPATH`, `VAULT_SKIP_VERIFY`, or an AppRole / Kubernetes login named in the config.
//!
//! The reader is [`run_into`] (whole-source failures are a typed [`VaultError`]; a mount that
//! cannot be read is an error row), run by the [`source`] plugin (`--vault`, `[[vault]]`). The
//! action engines are in [`actions`] and the framework's backend (revoke a certificate, renew
//! a `[[vault]]` file from a role) in [`backend`].

pub mod actions;
pub mod api;
pub mod auth;
pub mod backend;
pub mod error;
pub mod read;
pub mod source;

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use api::VaultClient;
pub use auth::{AuthMethod, Secret};
pub use error::VaultError;
pub use read::{run_into, Emit, MountFacts, RoleFacts, VaultSummary};

/// The kind of Vault rows (issued certificates and issuers).
pub const KIND: crate::model::SourceKind = crate::model::SourceKind::new("vault");

/// Default time limit of each API call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default number of certificate reads in flight per mount.
pub const DEFAULT_CONCURRENCY: usize = 32;
/// Default page size of paged `LIST` calls (OpenBao; Vault answers the whole list at once).
pub const DEFAULT_PAGE_SIZE: usize = 1000;

/// One `[[vault]]` section of the config file. Every field is optional: what is left out comes
/// from the environment the way the vault CLI reads it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// Server address (default: `BAO_ADDR`, else `VAULT_ADDR`, else `https://127.0.0.1:8200`).
    pub address: Option<String>,
    /// Enterprise / OpenBao namespace (default: `BAO_NAMESPACE`, else `VAULT_NAMESPACE`).
    pub namespace: Option<String>,
    /// PKI mounts to read. Empty: every mount of type `pki` listed by `sys/mounts`.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// A file holding the token (instead of `VAULT_TOKEN` / `~/.vault-token`).
    pub token_file: Option<PathBuf>,
    /// CA certificate (PEM) that signs the server's certificate (default: `VAULT_CACERT`).
    pub ca_cert: Option<PathBuf>,
    /// Directory of CA certificates (default: `VAULT_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// Do not verify the server's certificate (default: `VAULT_SKIP_VERIFY`).
    pub skip_verify: Option<bool>,
    /// Time limit of each API call (default 10s).
    #[serde(default, deserialize_with = "crate::config::de_duration")]
    pub timeout: Option<Duration>,
    /// Certificate reads in flight per mount (default 32).
    pub concurrency: Option<usize>,
    /// Log in with AppRole.
    pub approle: Option<AppRoleConfig>,
    /// Log in with Kubernetes auth (the pod's service-account token).
    pub kubernetes: Option<KubernetesAuthConfig>,
    /// Certificate files renewed from a role of this server (`files = [{ cert, key, role,
    /// mount, ... }]`): read as rows, with "renew" offered on them.
    #[serde(default)]
    pub files: Vec<VaultFile>,
}

/// A certificate kept in files and renewed from a Vault / OpenBao role (an entry of a
/// `[[vault]]` section's `files`). Same life as an ACME `[[certificate]]`: same names, a fresh
/// key, files replaced atomically with backups, reload, re-probe.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultFile {
    /// The certificate file. Without `chain`, it receives the leaf and the issuing chain.
    pub cert: PathBuf,
    /// The private key file (written 0600 when new; an existing one keeps its mode).
    pub key: PathBuf,
    /// The issuing chain, when it is kept in its own file.
    #[serde(default)]
    pub chain: Option<PathBuf>,
    /// The PKI role that issues the replacement.
    pub role: String,
    /// The PKI mount of the role (`pki_int`).
    pub mount: String,
    /// A shell command that makes the server load the new files.
    #[serde(default)]
    pub reload: Option<String>,
    /// The endpoint that serves this certificate (`host:port[@sni]`), re-probed after the reload.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `sign` (default: a fresh key made here, a CSR signed by `sign/ROLE`) or `issue` (the
    /// server makes the key and returns it through `issue/ROLE`).
    #[serde(default)]
    pub method: Option<actions::IssueMethod>,
}

/// `[vault.approle]`: the role id inline, in a file or in `VAULT_ROLE_ID`; the secret id in a
/// file or in `VAULT_SECRET_ID` (never inline: the config file is not a secret store).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppRoleConfig {
    /// Auth mount (default `approle`).
    pub mount: Option<String>,
    pub role_id: Option<String>,
    pub role_id_file: Option<PathBuf>,
    pub secret_id_file: Option<PathBuf>,
}

/// `[vault.kubernetes]`: the Vault role and the service-account token file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuthConfig {
    /// Auth mount (default `kubernetes`).
    pub mount: Option<String>,
    pub role: String,
    /// Default `/var/run/secrets/kubernetes.io/serviceaccount/token`.
    pub token_file: Option<PathBuf>,
}

/// Everything one Vault / OpenBao instance is read with, resolved from flags, config and
/// environment. Its Debug output never shows a secret (see [`Secret`]).
#[derive(Debug, Clone)]
pub struct VaultSettings {
    /// `http(s)://host:port`, without a trailing slash.
    pub address: String,
    pub namespace: Option<String>,
    /// Empty: discover from `sys/mounts`.
    pub mounts: Vec<String>,
    pub auth: AuthMethod,
    pub tls: auth::TlsSettings,
    pub timeout: Duration,
    pub concurrency: usize,
    pub page_size: usize,
}

impl VaultSettings {
    /// Resolve one instance: `address` from `--vault` (or None for the config's / the
    /// environment's), over a `[[vault]]` section, over the environment `env`.
    pub fn resolve(
        address: Option<&str>,
        cfg: Option<&VaultConfig>,
        env: &dyn auth::Env,
    ) -> Result<VaultSettings, VaultError> {
        let d = VaultConfig::default();
        let c = cfg.unwrap_or(&d);
        let address = address
            .map(str::to_owned)
            .or_else(|| c.address.clone())
            .or_else(|| env.var("BAO_ADDR"))
            .or_else(|| env.var("VAULT_ADDR"))
            .unwrap_or_else(|| "https://127.0.0.1:8200".to_owned());
        let address = auth::normalize_address(&address)?;
        let namespace = c
            .namespace
            .clone()
            .or_else(|| env.var("BAO_NAMESPACE"))
            .or_else(|| env.var("VAULT_NAMESPACE"))
            .filter(|n| !n.is_empty())
            .map(|n| n.trim_matches('/').to_owned());
        let auth = auth::resolve_auth(c, env)?;
        let tls = auth::resolve_tls(c, env)?;
        let timeout = c.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(VaultError::Config(
                "the vault timeout must be longer than zero".into(),
            ));
        }
        let concurrency = c.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(VaultError::Config(
                "the vault concurrency must be at least 1".into(),
            ));
        }
        let mut mounts = Vec::new();
        for m in &c.mounts {
            mounts.push(check_mount(m)?);
        }
        Ok(VaultSettings {
            address,
            namespace,
            mounts,
            auth,
            tls,
            timeout,
            concurrency,
            page_size: DEFAULT_PAGE_SIZE,
        })
    }

    /// The instance label: the address, and the namespace when there is one.
    pub fn label(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}", self.address),
            None => self.address.clone(),
        }
    }
}

/// A mount path as the API takes it (`pki_int`, `team/pki`), checked.
pub fn check_mount(m: &str) -> Result<String, VaultError> {
    let m = m.trim_matches('/');
    if m.is_empty()
        || m.split('/').any(|p| p.is_empty() || p == "." || p == "..")
        || m.chars()
            .any(|c| c.is_control() || matches!(c, '?' | '#' | '%'))
    {
        return Err(VaultError::Config(format!(
            "invalid vault mount {:?}",
            read::clean(m)
        )));
    }
    Ok(m.to_owned())
}

/// A role name as the API takes it, checked (one path segment).
pub fn check_role(r: &str) -> Result<String, VaultError> {
    if r.is_empty()
        || r == "."
        || r == ".."
        || r.chars()
            .any(|c| c.is_control() || matches!(c, '/' | '?' | '#' | '%'))
    {
        return Err(VaultError::Config(format!(
            "invalid vault role {:?}",
            read::clean(r)
        )));
    }
    Ok(r.to_owned())
}
