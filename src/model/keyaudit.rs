//! Private keys at rest: findings about a certificate's key (where and how it is stored, whether
//! it matches, whether it is weak), worst first. Pure: the sources gather the facts (file
//! modes, locations, the key's public half), this module names the findings. A finding never
//! holds key material: a location and a sentence.

use serde::Serialize;

use super::CertFacts;

/// How bad a finding is. `Protected` is good news (a key on an HSM token, an encrypted key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Protected,
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Protected => "protected",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One finding about a certificate's private key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyFinding {
    /// Stable name: `key_readable_by_others`, `key_in_config_file`, `key_mismatch`, `weak_key`...
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// Where the key lives (a file, a Secret key, a token object), when known.
    pub location: Option<String>,
}

impl KeyFinding {
    pub fn new(
        code: &'static str,
        severity: Severity,
        message: impl Into<String>,
        location: Option<String>,
    ) -> KeyFinding {
        KeyFinding {
            code,
            severity,
            message: message.into(),
            location,
        }
    }
}

/// Findings the certificate itself shows: keys and signatures too weak to trust (RSA under
/// 2048 bits, DSA, SHA-1 or MD5 signatures). Self-signed roots' signatures are not judged.
pub fn cert_findings(c: &CertFacts) -> Vec<KeyFinding> {
    let mut out = Vec::new();
    if let Some(bits) = c
        .key
        .strip_prefix("RSA ")
        .and_then(|b| b.parse::<u32>().ok())
    {
        if bits < 2048 {
            out.push(KeyFinding::new(
                "weak_key",
                Severity::Critical,
                format!("RSA key of {bits} bits (under 2048)"),
                None,
            ));
        }
    }
    if c.key == "DSA" {
        out.push(KeyFinding::new(
            "weak_key",
            Severity::Critical,
            "DSA key (1024-bit DSA is broken; DSA is deprecated)",
            None,
        ));
    }
    let sig = c.signature_algorithm.to_ascii_lowercase();
    if !c.self_issued && (sig.contains("sha1") || sig.contains("md5") || sig.contains("md2")) {
        out.push(KeyFinding::new(
            "weak_signature",
            Severity::Critical,
            format!("signed with {}", c.signature_algorithm),
            None,
        ));
    }
    out
}

/// Every finding of a record (gathered by its source, derived by the fleet, and the
/// certificate's own), worst first.
pub fn all_findings(r: &super::Record) -> Vec<KeyFinding> {
    let mut v = r.key_findings.clone();
    v.extend(r.key_reuse.iter().cloned());
    if let Some(c) = &r.cert {
        v.extend(cert_findings(c));
    }
    v.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
    v
}

/// The worst finding's severity, if any.
pub fn worst(r: &super::Record) -> Option<Severity> {
    all_findings(r).first().map(|f| f.severity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_keys_and_sha1_signatures_are_critical_and_strong_ones_say_nothing() {
        let mut c = crate::testing::facts("a", "CA", 0, 10, "RSA 1024", &[]);
        c.signature_algorithm = "sha1WithRSAEncryption".into();
        let codes: Vec<_> = cert_findings(&c).iter().map(|f| f.code).collect();
        assert_eq!(codes, ["weak_key", "weak_signature"]);
        let ok = crate::testing::facts("a", "CA", 0, 10, "RSA 2048", &[]);
        assert!(cert_findings(&ok).is_empty());
    }
}
