//! ACME renewal of certificates kept in files (nginx, HAProxy, Envoy on VMs...).
//!
//! Same life as every action: [`plan`] reads the current certificate file and describes the
//! exact change ([`AcmePlan::preview`]); the caller confirms; [`execute`] runs the steps
//! (account, order, authorize, finalize, download, write, reload, verify), reporting each on
//! a channel as [`AcmeProgress`]. A failed step leaves the old files in place, or puts them
//! back when they were already replaced, and the error names the step.
//!
//! The ACME client is instant-acme over hyper-rustls with ring; the directory's HTTPS trusts
//! the webpki roots plus the issuer's `ca_file`. The account key (ECDSA P-256, PKCS#8 PEM) is
//! kept in the data directory, created 0600 on first use. Private keys are never logged,
//! printed or sent in progress messages.

mod client;
pub mod config;
mod execute;
mod files;
mod plan;

use std::fmt;
use std::path::PathBuf;

pub use config::{find_issuer, validate, AcmeIssuer, Challenge, ManagedFile};
pub use execute::execute;
pub use plan::{plan, record_id, AcmePlan, FileRole, KeyType, PlannedFile};

/// The steps of a renewal, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AcmeStep {
    /// Reading the current files (planning).
    Plan,
    /// Fetching the directory, loading or creating the account.
    Account,
    /// Placing the order for the names.
    Order,
    /// Proving control of each name (http-01 or dns-01).
    Authorize,
    /// Sending the CSR for a fresh key.
    Finalize,
    /// Fetching the issued chain.
    Download,
    /// Backing up and replacing the files.
    Write,
    /// Running the reload command.
    Reload,
    /// Re-reading the files and re-probing the endpoint.
    Verify,
    /// Putting the backups back after a failure.
    Rollback,
    Done,
}

impl AcmeStep {
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeStep::Plan => "plan",
            AcmeStep::Account => "account",
            AcmeStep::Order => "order",
            AcmeStep::Authorize => "authorize",
            AcmeStep::Finalize => "finalize",
            AcmeStep::Download => "download",
            AcmeStep::Write => "write",
            AcmeStep::Reload => "reload",
            AcmeStep::Verify => "verify",
            AcmeStep::Rollback => "rollback",
            AcmeStep::Done => "done",
        }
    }
}

impl fmt::Display for AcmeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of progress of a running renewal. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeProgress {
    pub step: AcmeStep,
    pub message: String,
}

/// What a successful renewal did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeOutcome {
    /// Lowercase hex SHA-256 of the new leaf (DER).
    pub new_sha256: String,
    pub old_sha256: String,
    /// Unix seconds.
    pub new_not_after: i64,
    pub old_not_after: i64,
    pub new_serial: String,
    /// Files written, in the order written.
    pub written: Vec<PathBuf>,
    /// Backups of the replaced files.
    pub backups: Vec<PathBuf>,
    /// True when an endpoint was re-probed and served the new certificate.
    pub endpoint_verified: bool,
}

/// Why a renewal failed: the step, and why. `restored` says the old files were put back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcmeError {
    /// The plan could not be made (unreadable certificate, unknown issuer, bad endpoint...).
    #[error("step plan: {0}")]
    Plan(String),
    /// A step failed; nothing was changed or the old files were put back.
    #[error("step {step}: {message}")]
    Step { step: AcmeStep, message: String },
}

impl AcmeError {
    /// The step that failed.
    pub fn step(&self) -> AcmeStep {
        match self {
            AcmeError::Plan(_) => AcmeStep::Plan,
            AcmeError::Step { step, .. } => *step,
        }
    }

    pub(crate) fn at(step: AcmeStep, message: impl Into<String>) -> AcmeError {
        AcmeError::Step {
            step,
            message: message.into(),
        }
    }
}

/// Where account keys live by default: `DATA_DIR/acme` (see `actions::audit::data_dir`).
pub fn default_account_dir() -> PathBuf {
    crate::actions::audit::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("acme")
}

/// An error and its sources, as one line (`a: b: c`), without repeating a source's text.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !t.is_empty() && !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}
