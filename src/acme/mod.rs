//! ACME renewal of certificates kept in files (nginx, HAProxy, Envoy on VMs...).
//!
//! Same life as every action: [`plan`] reads the current certificate file and describes the
//! exact change ([`AcmePlan::to_plan`]); the caller confirms; [`execute`] runs the steps
//! (account, order, authorize, finalize, download, write, reload, verify), reporting each
//! through the framework's `Reporter`. A failed step leaves the old files in place, or puts
//! them back when they were already replaced, and the error names the step. The managed
//! files and their endpoints are rows of the `acme` source ([`source`]); the renewal is the
//! [`backend`] of the action framework.
//!
//! The ACME client is instant-acme over hyper-rustls with ring; the directory's HTTPS trusts
//! the webpki roots plus the issuer's `ca_file`. The account key (ECDSA P-256, PKCS#8 PEM) is
//! kept in the data directory, created 0600 on first use. Private keys are never logged,
//! printed or sent in progress messages.

use std::path::PathBuf;

pub mod backend;
mod client;
pub mod config;
mod execute;
mod plan;
pub mod source;

pub use backend::AcmeBackend;
pub use config::{find_issuer, validate, AcmeIssuer, Challenge, ManagedFile};
pub use execute::execute;
pub use plan::{plan, record_id, AcmePlan, FileRole, PlannedFile};

/// ACME's errors are the framework's, carrying the failed step.
pub use crate::actions::ActionError as AcmeError;
/// ACME's steps are the framework's.
pub use crate::actions::Step as AcmeStep;

/// Where account keys live by default: `DATA_DIR/acme` (see `config::data_dir`).
pub fn default_account_dir() -> PathBuf {
    crate::config::data_dir()
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
