//! Errors of the Vault / OpenBao source and its actions. Messages say what the user can fix;
//! a 403 names the capability and the path the token lacks. No message carries a secret:
//! server error bodies are cleaned of control characters and cut short, and request bodies
//! (which may hold a secret id) are never quoted.

use crate::sources::{Problem, ProblemKind};

/// A whole-source failure, or a failed call of an action.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("{0}")]
    Config(String),
    #[error("cannot read vault credentials from {what}: {why}")]
    Credentials { what: String, why: String },
    #[error("no vault token: set VAULT_TOKEN (or BAO_TOKEN), run `vault login` / `bao login` (which writes ~/.vault-token), or configure an approle or kubernetes login in [[vault]] (looked at {})", .looked_at.join(", "))]
    NoToken { looked_at: Vec<String> },
    #[error("{address}: unreachable: {why}")]
    Unreachable { address: String, why: String },
    #[error("{address}: no answer to {call} within {secs}s")]
    Timeout {
        address: String,
        call: String,
        secs: u64,
    },
    /// The token itself was refused (invalid, expired or revoked), or a login failed.
    #[error("{address}: {what}")]
    Unauthorized { address: String, what: String },
    /// A valid token without the capability a call needs.
    #[error("{address}: permission denied: the token lacks `{capability}` on `{path}`{hint}")]
    Forbidden {
        address: String,
        capability: String,
        path: String,
        hint: String,
    },
    #[error("{address}: {call}: HTTP {status}: {message}")]
    Api {
        address: String,
        call: String,
        status: u16,
        message: String,
    },
    #[error("{address}: {call}: {why}")]
    Protocol {
        address: String,
        call: String,
        why: String,
    },
}

impl VaultError {
    /// The kind of source problem this is, when it stops a round.
    pub fn kind(&self) -> ProblemKind {
        match self {
            VaultError::Config(_) | VaultError::Credentials { .. } => ProblemKind::Config,
            VaultError::NoToken { .. } | VaultError::Unauthorized { .. } => {
                ProblemKind::Unauthorized
            }
            VaultError::Unreachable { .. } => ProblemKind::Unreachable,
            VaultError::Timeout { .. } => ProblemKind::Timeout,
            VaultError::Forbidden { .. } => ProblemKind::Forbidden,
            VaultError::Api { status: 429, .. } => ProblemKind::Throttled,
            VaultError::Api { .. } | VaultError::Protocol { .. } => ProblemKind::Other,
        }
    }

    /// The source problem a round that stopped on this error reports.
    pub fn problem(&self) -> Problem {
        Problem::new(self.kind(), self.to_string())
    }

    /// True for a 404 from the server (an endpoint this server does not have, or nothing there).
    pub fn is_not_found(&self) -> bool {
        matches!(self, VaultError::Api { status: 404, .. })
    }
}
