//! The AWS source: AWS Certificate Manager certificates and ACM PCA private CAs, for one or
//! several accounts (profiles) and regions at once.
//!
//! This module owns the settings (the `--aws*` flags and the `[[aws]]` config blocks), the
//! facts of a row (`facts`), the reader (`read`, on the vendor's SDK), the typed errors
//! (`error`) and the action engines (`actions`: RenewCertificate, re-import).
//!
//! Credentials are found exactly as the AWS CLI finds them: the SDK's default chain
//! (environment, shared config and credentials files with profiles, `credential_process`, SSO,
//! `role_arn` assume-role, web identity, container credentials, IMDSv2), with the profile's
//! `endpoint_url` and `AWS_ENDPOINT_URL` honoured. certdeck never reads a credential itself.
//!
//! Each (profile, region) pair is its own source instance: a region whose credentials are
//! missing, denied, throttled or unreachable is one source-level problem naming what is
//! missing, and every other instance still loads. A certificate that cannot be read is an
//! error row.

pub mod facts;
pub mod settings;

#[cfg(feature = "aws")]
pub mod actions;
#[cfg(feature = "aws")]
pub mod client;
#[cfg(feature = "aws")]
pub mod error;
#[cfg(feature = "aws")]
pub mod read;
#[cfg(feature = "aws")]
pub mod source;

pub use facts::{renewal_overdue, renewal_sentence, AcmFacts, PcaFacts, RenewalState};
pub use settings::{AwsArgs, AwsConfig, AwsSettings, RegionChoice, ReimportConfig};

/// Text from outside (AWS error messages, names, tags) with control characters removed and
/// its length bounded, so it is safe to show in a terminal or a log line.
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
