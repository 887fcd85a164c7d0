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

    /// The glyph of the findings column: meaning never rests on colour alone.
    pub fn glyph(self) -> &'static str {
        match self {
            Severity::Critical => "‼",
            Severity::Warning => "▲",
            Severity::Info => "·",
            Severity::Protected => "✔",
        }
    }
}

/// A finding's name in a dashboard column (at most 14 characters).
pub fn short_label(code: &str) -> &str {
    match code {
        "key_readable_by_others" | "keystore_readable_by_others" => "world-readable",
        "key_readable_by_group" => "group-readable",
        "key_owner_differs" => "other owner",
        "key_in_config_file" => "in config file",
        "key_in_configmap" => "in ConfigMap",
        "key_in_opaque_secret" => "Opaque Secret",
        "key_in_tls_secret" => "in TLS Secret",
        "key_in_source_checkout" => "in source tree",
        "key_mismatch" => "key mismatch",
        "key_not_compared" => "not compared",
        "key_reused" => "key reused",
        "key_reused_on_renewal" => "kept on renew",
        "key_unencrypted" => "unencrypted",
        "key_encrypted" => "encrypted",
        "key_empty_password" => "no password",
        "key_in_keystore" => "in keystore",
        "key_in_hsm" => "in HSM",
        "key_hsm_extractable" => "extractable",
        "key_hsm_not_sensitive" => "not sensitive",
        "key_not_on_token" => "not on token",
        "weak_key" => "weak key",
        "weak_signature" => "weak signature",
        other => other,
    }
}

/// What the dashboard caches of a record's findings: the worst, and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    pub worst: Option<Severity>,
    /// The worst finding's code (see [`short_label`]).
    pub code: &'static str,
    pub count: u16,
}

impl Summary {
    pub fn of(findings: &[KeyFinding]) -> Summary {
        Summary {
            worst: findings.first().map(|f| f.severity),
            code: findings.first().map(|f| f.code).unwrap_or(""),
            count: findings.len().min(usize::from(u16::MAX)) as u16,
        }
    }

    /// A finding that needs a look: a warning or worse.
    pub fn is_problem(&self) -> bool {
        self.worst.is_some_and(|s| s >= Severity::Warning)
    }

    /// The column text: glyph, the worst finding's short name, and how many more.
    pub fn label(&self) -> String {
        let Some(w) = self.worst else {
            return String::new();
        };
        let mut s = format!("{} {}", w.glyph(), short_label(self.code));
        if self.count > 1 {
            s.push_str(&format!(" +{}", self.count - 1));
        }
        s
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
    fn the_summary_names_the_worst_finding_and_counts_the_rest() {
        let f = |code, severity| KeyFinding::new(code, severity, "m", None);
        let mut v = vec![
            f("key_unencrypted", Severity::Info),
            f("key_readable_by_others", Severity::Critical),
        ];
        v.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let s = Summary::of(&v);
        assert_eq!(s.label(), "‼ world-readable +1");
        assert!(s.is_problem());
        let info = Summary::of(&v[1..]);
        assert_eq!(info.label(), "· unencrypted");
        assert!(!info.is_problem());
        assert_eq!(Summary::of(&[]).label(), "");
        assert!(short_label("key_in_hsm").len() <= 14);
    }

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
