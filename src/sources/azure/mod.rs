//! The Azure Key Vault source: the certificates of one or several vaults, every version of
//! each, with the policy's issuer and lifetime actions and any pending operation.
//!
//! This module owns the settings (`--azure-vault` and the `[[azure]]` config blocks), the facts
//! of a row and the renewal window (`facts`, pure), the credential chain and HTTP transport
//! (`client`, on the vendor's SDK), the reader (`read`), the typed errors (`error`) and the
//! renew action (`actions`: a new version from the certificate's policy).
//!
//! Credentials are found as the Azure CLI and SDKs find them (DefaultAzureCredential's order):
//! a client-secret service principal from `AZURE_TENANT_ID` / `AZURE_CLIENT_ID` /
//! `AZURE_CLIENT_SECRET`, workload identity (`AZURE_FEDERATED_TOKEN_FILE`), managed identity,
//! then the Azure CLI's login. `AZURE_AUTHORITY_HOST` selects a sovereign cloud. certdeck never
//! stores or prints a credential.
//!
//! Each vault is its own source instance: a vault whose credentials are missing, denied,
//! throttled or unreachable is one source-level problem naming what is missing, and every
//! other vault still loads. A certificate that cannot be read is an error row.

pub mod facts;
pub mod settings;

#[cfg(feature = "azure")]
pub mod actions;
#[cfg(feature = "azure")]
pub mod client;
#[cfg(feature = "azure")]
pub mod error;
#[cfg(feature = "azure")]
pub mod read;
#[cfg(feature = "azure")]
pub mod source;

pub use facts::{renewal_overdue, renewal_sentence, KvFacts, RenewalState};
pub use settings::{AzureArgs, AzureConfig, AzureSettings};

/// Text from outside (error messages, names, tags) with control characters removed and its
/// length bounded, so it is safe to show in a terminal or a log line.
pub fn clean(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out.trim().to_owned()
}
