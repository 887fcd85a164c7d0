//! PKCS#11 tokens (HSMs, smart cards, SoftHSM): every certificate object on every initialised
//! token of the modules named in `[[pkcs11]]` blocks or by `--pkcs11-module`, each linked to
//! the key object with the same `CKA_ID`. A certificate whose private key lives on a token gets
//! the `key_in_hsm` finding, the good case of the key audit.
//!
//! Read-only: certdeck opens read-only sessions, logs in as the user when a PIN is configured
//! (the same secret sources as keystore passwords: an environment variable, a file, a command),
//! reads attributes and logs out. It never creates, changes or deletes an object, and never
//! reads a key's value. The PIN is never on the command line, in a log line, an error or a
//! record; after a wrong PIN the same PIN is not tried again (tokens lock after a few tries).
//!
//! The module is loaded at run time (dlopen) and every call into it runs on a thread of its
//! own under a time limit: a module that hangs is a health message, and certdeck still exits.

pub mod read;
pub mod rows;
pub mod source;

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::model::SourceKind;
use crate::sources::keystore::PasswordSource;
use crate::sources::ProblemKind;

/// The kind of PKCS#11 rows (`pkcs11-…` ids).
pub const KIND: SourceKind = SourceKind::new("pkcs11");

/// Environment variable holding the PIN for modules without a `pin_*` setting of their own.
pub const PIN_ENV: &str = "CERTDECK_PKCS11_PIN";

/// Default time limit of one module's read (load, slots, tokens, objects).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One `[[pkcs11]]` block: a module, optionally one token of it, and where its PIN comes from.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (`/usr/lib/softhsm/libsofthsm2.so`).
    pub module: String,
    /// Read only the token with this label (default: every initialised token).
    pub token: Option<String>,
    /// Read only the token in this slot (a slot id as the module numbers it).
    pub slot: Option<u64>,
    /// Name of an environment variable holding the user PIN.
    pub pin_env: Option<String>,
    /// A file whose first line is the user PIN.
    pub pin_file: Option<std::path::PathBuf>,
    /// A command (program and arguments, no shell) whose first line of output is the PIN.
    pub pin_command: Option<Vec<String>>,
    /// Time limit of one read of the module (default 30s).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
}

/// Which tokens of a module are read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenFilter {
    pub label: Option<String>,
    pub slot: Option<u64>,
}

impl TokenFilter {
    pub fn is_all(&self) -> bool {
        self.label.is_none() && self.slot.is_none()
    }

    /// True when the token in `slot` labelled `label` is one to read.
    pub fn matches(&self, slot: u64, label: &str) -> bool {
        self.slot.is_none_or(|s| s == slot) && self.label.as_deref().is_none_or(|l| l == label)
    }

    /// `label=web`, `slot 3`, `slot 3 label=web`, or empty for every token.
    pub fn describe(&self) -> String {
        match (&self.label, self.slot) {
            (None, None) => String::new(),
            (Some(l), None) => format!("token '{l}'"),
            (None, Some(s)) => format!("slot {s}"),
            (Some(l), Some(s)) => format!("slot {s} token '{l}'"),
        }
    }
}

/// One module (and token filter) resolved: what a source instance reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Settings {
    pub module: String,
    pub filter: TokenFilter,
    /// Where the user PIN comes from (`None`: no login; public objects only).
    pub pin: Option<PasswordSource>,
    pub timeout: Duration,
}

impl Pkcs11Settings {
    /// The instance label: the module's file name, and the token when one is chosen.
    pub fn label(&self) -> String {
        let name = Path::new(&self.module)
            .file_name()
            .map_or_else(|| self.module.clone(), |n| n.to_string_lossy().into_owned());
        let name = crate::model::text::clean(&name).into_owned();
        match self.filter.describe() {
            f if f.is_empty() => name,
            f => format!("{name} {}", crate::model::text::clean(&f)),
        }
    }
}

impl Pkcs11Config {
    /// Resolve a block; `env_pin`: whether `CERTDECK_PKCS11_PIN` is set (used when the block
    /// names no PIN source of its own).
    pub fn resolve(&self, env_pin: bool) -> Result<Pkcs11Settings, String> {
        if self.module.trim().is_empty() {
            return Err("[[pkcs11]] module is empty".to_owned());
        }
        let pin = match (&self.pin_env, &self.pin_file, &self.pin_command) {
            (None, None, None) => env_pin.then(|| PasswordSource::Env(PIN_ENV.to_owned())),
            (Some(v), None, None) => Some(PasswordSource::Env(v.clone())),
            (None, Some(f), None) => Some(PasswordSource::File(f.clone())),
            (None, None, Some(c)) if !c.is_empty() => Some(PasswordSource::Command(c.clone())),
            (None, None, Some(_)) => {
                return Err(format!("[[pkcs11]] {}: pin_command is empty", self.module))
            }
            _ => {
                return Err(format!(
                    "[[pkcs11]] {}: give at most one of pin_env, pin_file, pin_command",
                    self.module
                ))
            }
        };
        Ok(Pkcs11Settings {
            module: self.module.clone(),
            filter: TokenFilter {
                label: self.token.clone(),
                slot: self.slot,
            },
            pin,
            timeout: self.timeout.unwrap_or(DEFAULT_TIMEOUT),
        })
    }
}

/// Why a module could not be read as a whole (a token's trouble is a [`rows::TokenProblem`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pkcs11Error {
    #[error("module {0}: no such file")]
    NoSuchFile(String),
    #[error("module {path}: not a loadable library ({why})")]
    NotALibrary { path: String, why: String },
    #[error("module {0}: not a PKCS#11 module (it has no C_GetFunctionList)")]
    NotPkcs11(String),
    #[error("module {path}: {call} failed: {why}")]
    Call {
        path: String,
        call: &'static str,
        why: String,
    },
    #[error("module {path}: no initialised token ({slots})")]
    NoToken { path: String, slots: String },
    #[error("module {path}: no initialised token matches {wanted} (tokens: {seen})")]
    TokenNotFound {
        path: String,
        wanted: String,
        seen: String,
    },
    #[error("module {path}: {call} did not return within {secs} s (the module hangs?)")]
    Timeout {
        path: String,
        call: &'static str,
        secs: u64,
    },
    #[error("module {path}: still busy with an earlier call that has not returned ({call})")]
    Busy { path: String, call: &'static str },
    #[error("module {path}: the reading thread failed: {why}")]
    Internal { path: String, why: String },
}

impl Pkcs11Error {
    /// The health class of this error.
    pub fn class(&self) -> ProblemKind {
        match self {
            Pkcs11Error::NoSuchFile(_)
            | Pkcs11Error::NotALibrary { .. }
            | Pkcs11Error::NotPkcs11(_)
            | Pkcs11Error::NoToken { .. }
            | Pkcs11Error::TokenNotFound { .. } => ProblemKind::Config,
            Pkcs11Error::Timeout { .. } | Pkcs11Error::Busy { .. } => ProblemKind::Timeout,
            Pkcs11Error::Call { .. } => ProblemKind::Unreachable,
            Pkcs11Error::Internal { .. } => ProblemKind::Internal,
        }
    }
}

/// Text from a token (labels, serials, library descriptions): PKCS#11 pads it with spaces;
/// control characters are stripped before anything shows it.
pub fn token_text(s: &str) -> String {
    crate::model::text::clean(s.trim_end_matches([' ', '\0']).trim()).into_owned()
}

/// Bytes as lowercase hex (`CKA_ID`).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_names_at_most_one_pin_source_and_the_environment_is_the_fallback() {
        let mut b = Pkcs11Config {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            token: Some("web".into()),
            ..Default::default()
        };
        let s = b.resolve(false).unwrap();
        assert_eq!(s.pin, None);
        assert_eq!(s.label(), "libsofthsm2.so token 'web'");
        assert_eq!(
            b.resolve(true).unwrap().pin,
            Some(PasswordSource::Env(PIN_ENV.into()))
        );
        b.pin_env = Some("HSM_PIN".into());
        assert_eq!(
            b.resolve(true).unwrap().pin,
            Some(PasswordSource::Env("HSM_PIN".into()))
        );
        b.pin_file = Some("/run/pin".into());
        assert!(b.resolve(false).unwrap_err().contains("at most one"));
    }

    #[test]
    fn filters_match_by_slot_and_label() {
        let all = TokenFilter::default();
        assert!(all.is_all() && all.matches(7, "x"));
        let f = TokenFilter {
            label: Some("web".into()),
            slot: Some(7),
        };
        assert!(f.matches(7, "web"));
        assert!(!f.matches(8, "web") && !f.matches(7, "db"));
    }

    #[test]
    fn token_text_is_trimmed_and_cleaned() {
        assert_eq!(
            token_text("certdeck test   \u{1b}[2J  "),
            "certdeck test   \u{FFFD}[2J"
        );
        assert_eq!(hex(&[0x01, 0xab]), "01ab");
    }
}
