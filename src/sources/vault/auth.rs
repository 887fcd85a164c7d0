//! How the Vault / OpenBao source finds its server and its credentials, the way the vault CLI
//! does: the address from `BAO_ADDR` / `VAULT_ADDR`, the token from `BAO_TOKEN` / `VAULT_TOKEN`,
//! else the token helper's file `~/.vault-token`; the namespace from `BAO_NAMESPACE` /
//! `VAULT_NAMESPACE`; TLS from `VAULT_CACERT`, `VAULT_CAPATH` and `VAULT_SKIP_VERIFY`. A
//! `[[vault]]` section may name a token file, or an AppRole or Kubernetes login instead.
//!
//! Secrets (tokens, secret ids, service-account tokens) live in [`Secret`], whose Debug output
//! is redacted and which has no Display: they cannot reach a log line or an error by accident.
//! Files are read when a round logs in, not when settings are resolved, so a token renewed on
//! disk (`vault login` again) is picked up by the next round.

use std::path::{Path, PathBuf};

use super::{VaultConfig, VaultError};

/// A secret string. Debug prints `Secret(***)`; there is no Display.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where environment variables come from (the process, or a map in tests).
pub trait Env {
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment. Empty variables count as unset, as in the vault CLI.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// Where a value is read from when a round logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// From the environment (already read; named for messages).
    Env { var: &'static str, value: Secret },
    /// From a file (whitespace around it trimmed).
    File(PathBuf),
}

impl SecretSource {
    /// Where it comes from, for messages (never the value).
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env { var, .. } => format!("${var}"),
            SecretSource::File(p) => p.display().to_string(),
        }
    }

    /// Read the value now.
    pub fn read(&self) -> Result<Secret, VaultError> {
        match self {
            SecretSource::Env { value, .. } => Ok(value.clone()),
            SecretSource::File(p) => read_secret_file(p),
        }
    }
}

/// How the source gets its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// A token: from the environment, a token file, or `~/.vault-token`.
    Token(SecretSource),
    /// No token anywhere: the error says what was looked at.
    Missing { looked_at: Vec<String> },
    /// `POST auth/<mount>/login` with a role id and a secret id.
    AppRole {
        mount: String,
        role_id: SecretSource,
        secret_id: SecretSource,
    },
    /// `POST auth/<mount>/login` with a role and the service-account token.
    Kubernetes {
        mount: String,
        role: String,
        jwt: SecretSource,
    },
}

impl AuthMethod {
    /// A short name for messages: `token ($VAULT_TOKEN)`, `approle (auth/approle)`.
    pub fn describe(&self) -> String {
        match self {
            AuthMethod::Token(s) => format!("token ({})", s.describe()),
            AuthMethod::Missing { .. } => "no token".to_owned(),
            AuthMethod::AppRole { mount, .. } => format!("AppRole (auth/{mount})"),
            AuthMethod::Kubernetes { mount, role, .. } => {
                format!("Kubernetes (auth/{mount}, role {role})")
            }
        }
    }
}

/// TLS settings for an `https://` server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    pub ca_cert: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
    pub skip_verify: bool,
}

/// Default path of the Kubernetes service-account token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// Largest secret file read (a token or a JWT is far smaller).
const MAX_SECRET_FILE: u64 = 64 * 1024;

fn read_secret_file(p: &Path) -> Result<Secret, VaultError> {
    use std::io::Read as _;
    let f = std::fs::File::open(p).map_err(|e| VaultError::Credentials {
        what: p.display().to_string(),
        why: e.to_string(),
    })?;
    let mut s = String::new();
    f.take(MAX_SECRET_FILE)
        .read_to_string(&mut s)
        .map_err(|e| VaultError::Credentials {
            what: p.display().to_string(),
            why: e.to_string(),
        })?;
    let s = s.trim();
    if s.is_empty() {
        return Err(VaultError::Credentials {
            what: p.display().to_string(),
            why: "the file is empty".into(),
        });
    }
    Ok(Secret::new(s))
}

/// The address as a base URL: `http(s)://host[:port][/prefix]` without a trailing slash.
pub fn normalize_address(a: &str) -> Result<String, VaultError> {
    let url = reqwest::Url::parse(a.trim()).map_err(|e| {
        VaultError::Config(format!(
            "invalid vault address {:?}: {e} (example: https://vault.example.com:8200)",
            super::read::clean(a)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(VaultError::Config(format!(
            "invalid vault address {:?}: it must be http:// or https:// with a host",
            super::read::clean(a)
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(VaultError::Config(
            "the vault address must not carry a user name or password".into(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Parse a boolean the way Go's `strconv.ParseBool` does (the vault CLI uses it).
fn parse_go_bool(var: &str, v: &str) -> Result<bool, VaultError> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(VaultError::Config(format!(
            "could not parse {var} (use true or false)"
        ))),
    }
}

/// TLS settings: the config section over `VAULT_CACERT` / `VAULT_CAPATH` / `VAULT_SKIP_VERIFY`
/// (and their `BAO_` spellings, which win).
pub fn resolve_tls(c: &VaultConfig, env: &dyn Env) -> Result<TlsSettings, VaultError> {
    let pick = |bao: &str, vault: &str| env.var(bao).or_else(|| env.var(vault));
    let skip_verify = match c.skip_verify {
        Some(b) => b,
        None => match env.var("BAO_SKIP_VERIFY") {
            Some(v) => parse_go_bool("BAO_SKIP_VERIFY", &v)?,
            None => match env.var("VAULT_SKIP_VERIFY") {
                Some(v) => parse_go_bool("VAULT_SKIP_VERIFY", &v)?,
                None => false,
            },
        },
    };
    Ok(TlsSettings {
        ca_cert: c
            .ca_cert
            .clone()
            .or_else(|| pick("BAO_CACERT", "VAULT_CACERT").map(PathBuf::from)),
        ca_path: c
            .ca_path
            .clone()
            .or_else(|| pick("BAO_CAPATH", "VAULT_CAPATH").map(PathBuf::from)),
        skip_verify,
    })
}

/// How to authenticate: an AppRole or Kubernetes login named in the config, else a token file
/// named in the config, else `BAO_TOKEN` / `VAULT_TOKEN`, else `~/.vault-token`.
pub fn resolve_auth(c: &VaultConfig, env: &dyn Env) -> Result<AuthMethod, VaultError> {
    if c.approle.is_some() && c.kubernetes.is_some() {
        return Err(VaultError::Config(
            "a [[vault]] section takes one login: approle or kubernetes, not both".into(),
        ));
    }
    if let Some(a) = &c.approle {
        let role_id = match (&a.role_id, &a.role_id_file, env.var("VAULT_ROLE_ID")) {
            (Some(r), None, _) => SecretSource::Env {
                var: "role_id",
                value: Secret::new(r.clone()),
            },
            (None, Some(f), _) => SecretSource::File(f.clone()),
            (None, None, Some(v)) => SecretSource::Env {
                var: "VAULT_ROLE_ID",
                value: Secret::new(v),
            },
            (Some(_), Some(_), _) => {
                return Err(VaultError::Config(
                    "[vault.approle]: give role_id or role_id_file, not both".into(),
                ))
            }
            (None, None, None) => {
                return Err(VaultError::Config(
                    "[vault.approle] needs role_id, role_id_file or $VAULT_ROLE_ID".into(),
                ))
            }
        };
        let secret_id = match (&a.secret_id_file, env.var("VAULT_SECRET_ID")) {
            (Some(f), _) => SecretSource::File(f.clone()),
            (None, Some(v)) => SecretSource::Env {
                var: "VAULT_SECRET_ID",
                value: Secret::new(v),
            },
            (None, None) => {
                return Err(VaultError::Config(
                    "[vault.approle] needs secret_id_file or $VAULT_SECRET_ID".into(),
                ))
            }
        };
        return Ok(AuthMethod::AppRole {
            mount: mount_name(a.mount.as_deref(), "approle")?,
            role_id,
            secret_id,
        });
    }
    if let Some(k) = &c.kubernetes {
        if k.role.trim().is_empty() {
            return Err(VaultError::Config(
                "[vault.kubernetes] needs the Vault role to log in as".into(),
            ));
        }
        return Ok(AuthMethod::Kubernetes {
            mount: mount_name(k.mount.as_deref(), "kubernetes")?,
            role: k.role.clone(),
            jwt: SecretSource::File(
                k.token_file
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_TOKEN)),
            ),
        });
    }
    if let Some(f) = &c.token_file {
        return Ok(AuthMethod::Token(SecretSource::File(f.clone())));
    }
    for var in ["BAO_TOKEN", "VAULT_TOKEN"] {
        if let Some(v) = env.var(var) {
            return Ok(AuthMethod::Token(SecretSource::Env {
                var,
                value: Secret::new(v),
            }));
        }
    }
    match env.var("HOME") {
        Some(home) => {
            let p = Path::new(&home).join(".vault-token");
            if p.exists() {
                Ok(AuthMethod::Token(SecretSource::File(p)))
            } else {
                Ok(AuthMethod::Missing {
                    looked_at: vec![
                        "$BAO_TOKEN".into(),
                        "$VAULT_TOKEN".into(),
                        p.display().to_string(),
                    ],
                })
            }
        }
        None => Ok(AuthMethod::Missing {
            looked_at: vec!["$BAO_TOKEN".into(), "$VAULT_TOKEN".into()],
        }),
    }
}

fn mount_name(m: Option<&str>, default: &str) -> Result<String, VaultError> {
    let m = m.unwrap_or(default).trim_matches('/');
    if m.is_empty() || m.split('/').any(|p| p.is_empty() || p == "..") {
        return Err(VaultError::Config(format!(
            "invalid auth mount {:?}",
            super::read::clean(m)
        )));
    }
    Ok(m.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let e = env(&[("VAULT_TOKEN", "s.supersecret")]);
        let a = resolve_auth(&VaultConfig::default(), &e).unwrap();
        let shown = format!("{a:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("VAULT_TOKEN"), "{shown}");
    }

    #[test]
    fn bao_token_wins_over_vault_token_and_env_over_the_token_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".vault-token"), "from-file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        let e = env(&[("VAULT_TOKEN", "v"), ("BAO_TOKEN", "b"), ("HOME", home)]);
        let a = resolve_auth(&VaultConfig::default(), &e).unwrap();
        assert!(matches!(
            a,
            AuthMethod::Token(SecretSource::Env {
                var: "BAO_TOKEN",
                ..
            })
        ));
        let e = env(&[("HOME", home)]);
        let AuthMethod::Token(src) = resolve_auth(&VaultConfig::default(), &e).unwrap() else {
            panic!("expected the token file")
        };
        assert_eq!(src.read().unwrap().expose(), "from-file");
    }

    #[test]
    fn no_token_anywhere_says_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let e = env(&[("HOME", dir.path().to_str().unwrap())]);
        let AuthMethod::Missing { looked_at } = resolve_auth(&VaultConfig::default(), &e).unwrap()
        else {
            panic!("expected Missing")
        };
        assert!(looked_at.iter().any(|l| l.ends_with(".vault-token")));
    }

    #[test]
    fn skip_verify_is_parsed_like_go_and_garbage_is_an_error() {
        let c = VaultConfig::default();
        assert!(
            resolve_tls(&c, &env(&[("VAULT_SKIP_VERIFY", "1")]))
                .unwrap()
                .skip_verify
        );
        assert!(
            !resolve_tls(&c, &env(&[("VAULT_SKIP_VERIFY", "false")]))
                .unwrap()
                .skip_verify
        );
        assert!(resolve_tls(&c, &env(&[("VAULT_SKIP_VERIFY", "yes")])).is_err());
    }

    #[test]
    fn approle_needs_a_secret_id_from_a_file_or_the_environment() {
        let c = VaultConfig {
            approle: Some(super::super::AppRoleConfig {
                role_id: Some("r".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = resolve_auth(&c, &env(&[])).unwrap_err().to_string();
        assert!(err.contains("secret_id_file"), "{err}");
        let a = resolve_auth(&c, &env(&[("VAULT_SECRET_ID", "sid-123")])).unwrap();
        assert!(!format!("{a:?}").contains("sid-123"));
    }

    #[test]
    fn addresses_are_checked_and_normalized() {
        assert_eq!(
            normalize_address("http://127.0.0.1:8200/").unwrap(),
            "http://127.0.0.1:8200"
        );
        assert!(normalize_address("vault.example.com").is_err());
        assert!(normalize_address("ftp://x").is_err());
        assert!(normalize_address("https://u:p@x").is_err());
    }
}
