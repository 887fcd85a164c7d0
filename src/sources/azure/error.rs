//! Typed Key Vault errors, classified from the SDK's errors into what a user acts on: missing
//! or rejected credentials (naming which credentials were tried), a permission missing (naming
//! the access-policy permission and the RBAC role that grant it), throttling, unreachable,
//! timeouts. Messages never carry a token or secret: only the service's own error code and
//! message, cleaned and bounded.

use azure_core::error::ErrorKind;

use crate::sources::ProblemKind;

/// What went wrong talking to a vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AzError {
    #[error("no Azure credentials: {0}")]
    NoCredentials(String),
    #[error("{op} on {vault}: 401 Unauthorized: {message}")]
    Unauthorized {
        op: &'static str,
        vault: String,
        message: String,
    },
    #[error("{op} denied on {vault} (403 {code}): needs the '{permission}' permission (access policy) or the {role} role (RBAC); {message}")]
    Forbidden {
        op: &'static str,
        vault: String,
        code: String,
        permission: &'static str,
        role: &'static str,
        message: String,
    },
    #[error("{op} on {vault}: {what} not found (404)")]
    NotFound {
        op: &'static str,
        vault: String,
        what: String,
    },
    #[error("{op} on {vault}: throttled (429) after {retries} retries")]
    Throttled {
        op: &'static str,
        vault: String,
        retries: u32,
    },
    #[error("{op} on {vault}: timed out: {0}", .message)]
    Timeout {
        op: &'static str,
        vault: String,
        message: String,
    },
    #[error("{op} on {vault}: unreachable: {message}")]
    Unreachable {
        op: &'static str,
        vault: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{op} on {vault}: {message}")]
    Other {
        op: &'static str,
        vault: String,
        message: String,
    },
}

impl AzError {
    pub fn class(&self) -> ProblemKind {
        match self {
            AzError::NoCredentials(_) | AzError::Unauthorized { .. } => ProblemKind::Unauthorized,
            AzError::Forbidden { .. } => ProblemKind::Forbidden,
            AzError::Throttled { .. } => ProblemKind::Throttled,
            AzError::Timeout { .. } => ProblemKind::Timeout,
            AzError::Unreachable { .. } => ProblemKind::Unreachable,
            AzError::Config(_) => ProblemKind::Config,
            AzError::NotFound { .. } | AzError::Other { .. } => ProblemKind::Other,
        }
    }

    /// Errors about the whole vault (credentials, permissions, throttling, reachability)
    /// rather than one certificate.
    pub fn is_vault_wide(&self) -> bool {
        !matches!(self, AzError::NotFound { .. } | AzError::Other { .. })
    }
}

/// A Key Vault operation: its REST name, the access-policy permission it needs and the
/// built-in RBAC role that grants it.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub name: &'static str,
    pub permission: &'static str,
    pub role: &'static str,
}

pub const LIST: Op = Op {
    name: "certificates list",
    permission: "certificates/list",
    role: "Key Vault Certificate User (Microsoft.KeyVault/vaults/certificates/read)",
};
pub const GET: Op = Op {
    name: "certificates get",
    permission: "certificates/get",
    role: "Key Vault Certificate User (Microsoft.KeyVault/vaults/certificates/read)",
};
pub const CREATE: Op = Op {
    name: "certificates create",
    permission: "certificates/create",
    role: "Key Vault Certificates Officer (Microsoft.KeyVault/vaults/certificates/create/action)",
};

fn clean(s: &str) -> String {
    super::clean(s, 300)
}

/// The service's error `{"error":{"code","message"}}` from a failed response, when present.
fn service_error(e: &azure_core::Error) -> (Option<String>, Option<String>) {
    if let ErrorKind::HttpResponse {
        raw_response: Some(raw),
        error_code,
        ..
    } = e.kind()
    {
        let v: serde_json::Value = serde_json::from_slice(raw.body().as_ref()).unwrap_or_default();
        let code = v["error"]["code"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| error_code.clone());
        let inner = v["error"]["innererror"]["code"].as_str().map(str::to_owned);
        let code = match (code, inner) {
            (Some(c), Some(i)) => Some(format!("{c}/{i}")),
            (c, i) => c.or(i),
        };
        let message = v["error"]["message"].as_str().map(clean);
        return (code, message);
    }
    (None, None)
}

/// Every message of an error's source chain, joined (for timeouts and connection errors, whose
/// useful words are in a reqwest or io error inside).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// Classify an SDK error of `op` on `vault`.
pub fn classify(e: &azure_core::Error, op: Op, vault: &str, retries: u32) -> AzError {
    let (op_s, vault_s) = (op.name, vault.to_owned());
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let (code, message) = service_error(e);
            let status = u16::from(*status);
            let message = message.unwrap_or_else(|| clean(&e.to_string()));
            match status {
                401 => AzError::Unauthorized {
                    op: op_s,
                    vault: vault_s,
                    message,
                },
                403 => AzError::Forbidden {
                    op: op_s,
                    vault: vault_s,
                    code: code.unwrap_or_else(|| "Forbidden".to_owned()),
                    permission: op.permission,
                    role: op.role,
                    message,
                },
                404 => AzError::NotFound {
                    op: op_s,
                    vault: vault_s,
                    what: code.unwrap_or_else(|| "it".to_owned()),
                },
                429 => AzError::Throttled {
                    op: op_s,
                    vault: vault_s,
                    retries,
                },
                _ => AzError::Other {
                    op: op_s,
                    vault: vault_s,
                    message: format!("HTTP {status}: {message}"),
                },
            }
        }
        ErrorKind::Credential => {
            let text = chain(e);
            // The pipeline's retry policy wraps the chain's own message: keep the message.
            let text = match text.find("tried ") {
                Some(i) => &text[i..],
                None => &text,
            };
            AzError::NoCredentials(super::clean(text, 900))
        }
        _ => {
            let text = clean(&chain(e));
            let lower = text.to_ascii_lowercase();
            if lower.contains("timed out")
                || lower.contains("timeout")
                || lower.contains("deadline")
            {
                AzError::Timeout {
                    op: op_s,
                    vault: vault_s,
                    message: text,
                }
            } else if matches!(e.kind(), ErrorKind::Io)
                || lower.contains("connect")
                || lower.contains("dns")
                || lower.contains("certificate")
            {
                AzError::Unreachable {
                    op: op_s,
                    vault: vault_s,
                    message: text,
                }
            } else {
                AzError::Other {
                    op: op_s,
                    vault: vault_s,
                    message: text,
                }
            }
        }
    }
}
