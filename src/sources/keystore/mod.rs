//! Keystores: PKCS#12 (`.p12`, `.pfx`; modern AES/PBKDF2 and legacy 3DES/RC2), JKS and JCEKS
//! files and blobs, read into one record per entry (`FILE#alias`): key entries with their
//! certificate chain, trusted-certificate entries, and loose certificates. Secret-key entries
//! are skipped and said so. The same code reads keystores from files and from Kubernetes
//! Secrets and ConfigMaps.
//!
//! Passwords come from [`password`]: a configured source, else the empty password only. A
//! wrong password is a row saying so; key material is decrypted only where the format needs it
//! (PKCS#12 bags) and never kept, copied into a record or printed.

pub mod atrest;
pub mod javaks;
pub mod password;
pub mod pubkey;

use std::sync::Arc;

use serde_json::json;

use crate::model::{CertFacts, Extra, Record, SourceKind};
pub use password::{KeystoreConfig, PasswordError, PasswordSource, Passwords, Secret};

/// A keystore format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pkcs12,
    Jks,
    Jceks,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Pkcs12 => "PKCS12",
            Format::Jks => "JKS",
            Format::Jceks => "JCEKS",
        }
    }

    /// The name people write (`PKCS#12`), for messages.
    pub fn label(self) -> &'static str {
        match self {
            Format::Pkcs12 => "PKCS#12",
            f => f.as_str(),
        }
    }
}

/// File names that are keystores by convention.
pub fn is_keystore_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".p12", ".pfx", ".jks", ".jceks", ".keystore", ".truststore"]
        .iter()
        .any(|e| lower.ends_with(e))
}

/// The keystore format of `data`, if it is one: the Java magics, or a PKCS#12 PFX structure
/// (`SEQUENCE { INTEGER 3, SEQUENCE { OID pkcs7-data ...`), or DER in a `.p12`/`.pfx` file.
pub fn detect(name: &str, data: &[u8]) -> Option<Format> {
    match javaks::magic(data) {
        Some(javaks::JKS_MAGIC) => return Some(Format::Jks),
        Some(_) => return Some(Format::Jceks),
        None => {}
    }
    if data.first() != Some(&0x30) {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".p12") || lower.ends_with(".pfx") || looks_like_pfx(data) {
        return Some(Format::Pkcs12);
    }
    None
}

fn looks_like_pfx(data: &[u8]) -> bool {
    // Outer SEQUENCE header: 0x30 then a short or long length.
    let Some(&l) = data.get(1) else { return false };
    let hdr = if l < 0x80 { 2 } else { 2 + (l & 0x7f) as usize };
    const PKCS7_DATA: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01,
    ];
    data.get(hdr..hdr + 3) == Some(&[0x02, 0x01, 0x03][..])
        && data
            .get(hdr + 3..(hdr + 3 + 24).min(data.len()))
            .is_some_and(|w| w.windows(PKCS7_DATA.len()).any(|x| x == PKCS7_DATA))
}

/// What kind of entry a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A private key with its chain.
    PrivateKey,
    /// A trusted-certificate entry (truststores).
    Trusted,
    /// A certificate bag with no key and no trust attribute.
    Certificate,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::PrivateKey => "private_key",
            EntryKind::Trusted => "trusted_certificate",
            EntryKind::Certificate => "certificate",
        }
    }
}

/// One entry with certificates.
#[derive(Debug, Clone)]
pub struct Entry {
    pub alias: String,
    pub kind: EntryKind,
    /// DER, leaf first.
    pub certs: Vec<Vec<u8>>,
}

/// A keystore opened.
#[derive(Debug, Clone)]
pub struct Opened {
    pub format: Format,
    pub entries: Vec<Entry>,
    /// Entries without certificates, said so: `aes1 (secret key)`.
    pub skipped: Vec<String>,
    /// The password checked the store's integrity (MAC or digest).
    pub verified: bool,
}

/// Why a keystore could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeystoreError {
    #[error("wrong password or corrupt keystore ({0})")]
    WrongPassword(String),
    #[error("truncated keystore: the file ends before its entries do")]
    Truncated,
    #[error("not a readable {format} keystore: {why}")]
    Malformed { format: &'static str, why: String },
    #[error(transparent)]
    Password(#[from] PasswordError),
}

/// Open a keystore with `password` (`None`: none configured, so the empty password only).
pub fn open(
    format: Format,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<Opened, KeystoreError> {
    match format {
        Format::Pkcs12 => open_pkcs12(data, password),
        Format::Jks | Format::Jceks => open_java(format, data, password),
    }
}

fn wrong_password(password: Option<&Secret>) -> KeystoreError {
    KeystoreError::WrongPassword(match password {
        Some(_) => "the configured password does not open it".to_owned(),
        None => {
            "no password is configured for it and the empty password does not open it".to_owned()
        }
    })
}

fn open_pkcs12(data: &[u8], password: Option<&Secret>) -> Result<Opened, KeystoreError> {
    use p12_keystore::error::Error as E;
    let pw = password.map(Secret::expose).unwrap_or("");
    let archive = match p12_keystore::Pkcs12Archive::from_pkcs12(data, pw) {
        Ok(a) => a,
        Err(E::MacError(_) | E::UnpadError) => return Err(wrong_password(password)),
        Err(E::DerError(e)) => {
            let why = e.to_string();
            if why.to_ascii_lowercase().contains("incomplete") {
                return Err(KeystoreError::Truncated);
            }
            return Err(KeystoreError::Malformed {
                format: "PKCS#12",
                why,
            });
        }
        Err(e) => {
            return Err(KeystoreError::Malformed {
                format: "PKCS#12",
                why: e.to_string(),
            })
        }
    };
    let certs = &archive.certs;
    let mut used = vec![false; certs.len()];
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for key in &archive.keys {
        let leaf = key.local_key_id.as_ref().and_then(|id| {
            certs
                .iter()
                .position(|c| c.local_key_id.as_deref() == Some(id.0.as_slice()))
        });
        let Some(leaf) = leaf else {
            let name = key
                .friendly_name
                .clone()
                .unwrap_or_else(|| "unnamed".into());
            skipped.push(format!("{name} (private key without a certificate)"));
            continue;
        };
        used[leaf] = true;
        let mut chain = vec![leaf];
        let mut at = leaf;
        while certs[at].cert.subject() != certs[at].cert.issuer() {
            let Some(next) = certs.iter().enumerate().position(|(i, c)| {
                !chain.contains(&i) && c.cert.subject() == certs[at].cert.issuer()
            }) else {
                break;
            };
            used[next] = true;
            chain.push(next);
            at = next;
        }
        let alias = key
            .friendly_name
            .clone()
            .or_else(|| certs[leaf].friendly_name.clone())
            .unwrap_or_else(|| certs[leaf].cert.subject().to_owned());
        entries.push(Entry {
            alias,
            kind: EntryKind::PrivateKey,
            certs: chain
                .into_iter()
                .map(|i| certs[i].cert.as_der().to_vec())
                .collect(),
        });
    }
    for (i, c) in certs.iter().enumerate() {
        if used[i] && !c.trusted {
            continue;
        }
        entries.push(Entry {
            alias: c
                .friendly_name
                .clone()
                .unwrap_or_else(|| c.cert.subject().to_owned()),
            kind: if c.trusted {
                EntryKind::Trusted
            } else {
                EntryKind::Certificate
            },
            certs: vec![c.cert.as_der().to_vec()],
        });
    }
    for s in &archive.secrets {
        let name = s.friendly_name.clone().unwrap_or_else(|| "unnamed".into());
        skipped.push(format!("{name} (secret key)"));
    }
    Ok(Opened {
        format: Format::Pkcs12,
        entries,
        skipped,
        verified: true,
    })
}

fn open_java(
    format: Format,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<Opened, KeystoreError> {
    // The layout first: a truncated or garbled file says so whatever the password.
    let raw = javaks::entries(data).map_err(|e| match e {
        javaks::LayoutError::Truncated => KeystoreError::Truncated,
        javaks::LayoutError::Malformed(why) => KeystoreError::Malformed {
            format: format.as_str(),
            why,
        },
    })?;
    let pw = password.map(Secret::expose).unwrap_or("");
    let verified = if format == Format::Jks {
        // JKS through the `jks` crate, which checks the digest as it reads.
        let mut ks = jks::KeyStore::new();
        match ks.load(data, pw.as_bytes()) {
            Ok(()) => {
                let mut aliases = ks.aliases();
                aliases.sort();
                let mut entries = Vec::new();
                for a in aliases {
                    if let Ok(chain) = ks.get_private_key_entry_certificate_chain(&a) {
                        entries.push(Entry {
                            alias: a,
                            kind: EntryKind::PrivateKey,
                            certs: chain.into_iter().map(|c| c.content).collect(),
                        });
                    } else if let Ok(t) = ks.get_trusted_certificate_entry(&a) {
                        entries.push(Entry {
                            alias: a,
                            kind: EntryKind::Trusted,
                            certs: vec![t.certificate.content],
                        });
                    }
                }
                return Ok(Opened {
                    format,
                    entries,
                    skipped: Vec::new(),
                    verified: true,
                });
            }
            Err(jks::KeyStoreError::InvalidDigest) => false,
            Err(jks::KeyStoreError::Io(_)) => return Err(KeystoreError::Truncated),
            Err(e) => {
                return Err(KeystoreError::Malformed {
                    format: "JKS",
                    why: e.to_string(),
                })
            }
        }
    } else {
        javaks::digest_matches(data, pw)
    };
    if !verified && password.is_some() {
        return Err(wrong_password(password));
    }
    // No password configured and the empty one does not verify: the certificates are stored
    // in clear, so they are listed, marked unverified (as `keytool -list` does).
    let mut entries = Vec::new();
    let mut skipped = Vec::new();
    for e in raw {
        match e {
            javaks::RawEntry::PrivateKey { alias, chain } => entries.push(Entry {
                alias,
                kind: EntryKind::PrivateKey,
                certs: chain,
            }),
            javaks::RawEntry::Trusted { alias, cert } => entries.push(Entry {
                alias,
                kind: EntryKind::Trusted,
                certs: vec![cert],
            }),
            javaks::RawEntry::SecretKey { alias } => skipped.push(format!("{alias} (secret key)")),
        }
    }
    entries.sort_by(|a, b| a.alias.cmp(&b.alias));
    Ok(Opened {
        format,
        entries,
        skipped,
        verified,
    })
}

/// Read a keystore into records at `shown#alias`; `password`: the configured source, if any.
/// Every failure is one error row at `shown`.
pub fn records(
    kind: SourceKind,
    shown: &str,
    data: &[u8],
    format: Format,
    password: Option<&PasswordSource>,
    now: i64,
) -> Vec<Record> {
    let secret = match password.map(PasswordSource::read).transpose() {
        Ok(s) => s,
        Err(e) => return vec![Record::new(kind, shown.to_owned(), now).with_error(e.to_string())],
    };
    let opened = match open(format, data, secret.as_ref()) {
        Ok(o) => o,
        Err(e) => {
            let msg = format!("{} keystore: {e}", format.label());
            return vec![Record::new(kind, shown.to_owned(), now).with_error(msg)];
        }
    };
    drop(secret);
    let origin = password.map_or_else(
        || "none (the empty password)".to_owned(),
        PasswordSource::describe,
    );
    opened_records(kind, shown, &opened, &origin, now)
}

/// Records of an opened keystore.
pub fn opened_records(
    kind: SourceKind,
    shown: &str,
    opened: &Opened,
    password_origin: &str,
    now: i64,
) -> Vec<Record> {
    if opened.entries.is_empty() {
        let mut msg = format!("{} keystore: no certificate entry", opened.format.label());
        if !opened.skipped.is_empty() {
            msg.push_str(&format!(" (skipped: {})", opened.skipped.join(", ")));
        }
        return vec![Record::new(kind, shown.to_owned(), now).with_error(msg)];
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for e in &opened.entries {
        let mut alias = crate::model::text::clean(&e.alias).into_owned();
        let mut n = 2;
        while !seen.insert(alias.clone()) {
            alias = format!("{}~{n}", crate::model::text::clean(&e.alias));
            n += 1;
        }
        let loc = format!("{shown}#{alias}");
        let mut parsed = Vec::new();
        let mut bad = None;
        for (i, der) in e.certs.iter().enumerate() {
            match CertFacts::from_der(der) {
                Ok(c) => parsed.push(Arc::new(c)),
                Err(err) => {
                    bad = Some(format!("certificate {} of entry {alias}: {err}", i + 1));
                    break;
                }
            }
        }
        let mut rec = Record::new(kind, loc, now);
        if let Some(b) = bad {
            out.push(rec.with_error(b));
            continue;
        }
        let mut it = parsed.into_iter();
        let Some(leaf) = it.next() else {
            out.push(rec.with_error(format!("entry {alias} holds no certificate")));
            continue;
        };
        rec.chain = it.collect();
        rec.extra = Some(Arc::new(extra(
            opened,
            e,
            &alias,
            rec.chain.len() + 1,
            password_origin,
        )));
        out.push(rec.with_cert(leaf));
    }
    out
}

/// The facts of one entry's row (details lines, the `keystore` JSON object, the note).
pub fn extra(opened: &Opened, e: &Entry, alias: &str, chain_len: usize, origin: &str) -> Extra {
    let fmt = opened.format.as_str();
    let what = match e.kind {
        EntryKind::PrivateKey => format!(
            "private key entry with a chain of {chain_len} certificate{}",
            if chain_len == 1 { "" } else { "s" }
        ),
        EntryKind::Trusted => "trusted certificate entry".to_owned(),
        EntryKind::Certificate => "certificate (no key, not marked trusted)".to_owned(),
    };
    let mut details = vec![
        ("Keystore".to_owned(), format!("{fmt}, alias {alias}")),
        ("Entry".to_owned(), what),
        ("Password".to_owned(), origin.to_owned()),
        (
            "Integrity".to_owned(),
            if opened.verified {
                "verified with the password".to_owned()
            } else {
                "NOT verified: no password configured, the empty one does not match".to_owned()
            },
        ),
    ];
    if !opened.skipped.is_empty() {
        details.push(("Skipped".to_owned(), opened.skipped.join(", ")));
    }
    let note = (!opened.verified)
        .then(|| format!("{fmt} keystore integrity not verified (no password configured)"));
    Extra {
        key: "keystore",
        json: json!({
            "format": fmt,
            "alias": alias,
            "entry": e.kind.as_str(),
            "chain_length": chain_len,
            "integrity_verified": opened.verified,
            "password_from": origin,
            "skipped": opened.skipped,
        }),
        details,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_by_magic_and_structure() {
        assert_eq!(
            detect("x", &[0xfe, 0xed, 0xfe, 0xed, 0, 0]),
            Some(Format::Jks)
        );
        assert_eq!(
            detect("x", &[0xce, 0xce, 0xce, 0xce, 0, 0]),
            Some(Format::Jceks)
        );
        assert_eq!(detect("a.pfx", &[0x30, 0x03]), Some(Format::Pkcs12));
        assert_eq!(detect("a.der", &[0x30, 0x03, 0x02, 0x01, 0x01]), None);
        assert_eq!(detect("a.p12", b"-----BEGIN"), None);
    }

    #[test]
    fn a_truncated_or_short_java_store_is_truncated_not_a_panic() {
        let mut d = vec![0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 5];
        d.extend([0u8; 20]);
        assert_eq!(
            open(Format::Jks, &d, None).unwrap_err(),
            KeystoreError::Truncated
        );
        assert_eq!(
            open(Format::Jceks, &d[..10], None).unwrap_err(),
            KeystoreError::Truncated
        );
    }
}
