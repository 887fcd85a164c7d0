//! Private keys at rest beside certificate files: the key in the certificate's own file or in a
//! sibling named by convention (`tls.crt` / `tls.key`, `cert.pem` / `privkey.pem`,
//! `app.pem` / `app-key.pem`...), read-only. Each key seen gives findings on the record whose
//! certificate it matches: unencrypted and readable by group or others, owned by another user
//! than the certificate, inside a configuration file or a source-code checkout, matching no
//! certificate of the file. Keystore key entries get theirs from the store's file.
//!
//! Key bytes are decoded in memory only to derive the public half for the match, then dropped;
//! nothing of them reaches a finding.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::model::keyaudit::{KeyFinding, Severity};
use crate::model::{CertFacts, Record};

/// Extensions of files that are configuration, not key files.
const CONFIG_EXTENSIONS: &[&str] = &[
    "conf",
    "cfg",
    "ini",
    "yaml",
    "yml",
    "toml",
    "json",
    "xml",
    "properties",
    "env",
    "cnf",
];

/// Candidate key files for a certificate file, by the usual naming conventions.
pub fn sibling_keys(cert: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (cert.parent(), cert.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let mut stem = name;
    for ext in [".pem", ".crt", ".cer", ".cert", ".der"] {
        if let Some(s) = stem.strip_suffix(ext) {
            stem = s;
            break;
        }
    }
    let mut names = Vec::new();
    if matches!(stem, "cert" | "fullchain" | "chain") {
        names.push("privkey.pem".to_owned());
    }
    let base = [
        "-cert",
        "_cert",
        ".cert",
        "-crt",
        "_crt",
        "-chain",
        "-fullchain",
    ]
    .iter()
    .find_map(|s| stem.strip_suffix(s))
    .unwrap_or(stem);
    for b in [stem, base] {
        names.push(format!("{b}.key"));
        names.push(format!("{b}-key.pem"));
        names.push(format!("{b}_key.pem"));
        names.push(format!("{b}.key.pem"));
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for n in names {
        let p = dir.join(&n);
        if p != cert && !out.contains(&p) && p.is_file() {
            out.push(p);
        }
    }
    out
}

/// The private keys of a PEM text: how many are encrypted, and the public halves of the
/// plain ones that could be derived (`None` for a key of a kind not compared, such as SEC1).
pub(crate) struct Keys {
    pub(crate) encrypted: usize,
    pub(crate) plain: Vec<Option<Vec<u8>>>,
}

pub(crate) fn keys_in(data: &[u8]) -> Keys {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::PrivateKeyDer;
    let text = String::from_utf8_lossy(data);
    let encrypted = text
        .matches("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        .count()
        + text.matches("Proc-Type: 4,ENCRYPTED").count();
    let mut plain = Vec::new();
    for k in PrivateKeyDer::pem_slice_iter(data).flatten() {
        plain.push(public_half(&k));
    }
    Keys { encrypted, plain }
}

/// The public key bits a certificate would carry for this private key: the RSA modulus, or
/// the EC point / Ed25519 key as in the SubjectPublicKeyInfo.
pub fn public_half(k: &rustls_pki_types::PrivateKeyDer<'_>) -> Option<Vec<u8>> {
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    use rustls_pki_types::PrivateKeyDer as K;
    // The DER carries the public half of most keys: read it there, without key arithmetic.
    match k {
        K::Pkcs1(d) => super::pubkey::rsa_pkcs1(d.secret_pkcs1_der()).or_else(|| {
            rsa::RsaPrivateKey::from_pkcs1_der(d.secret_pkcs1_der())
                .ok()
                .map(|r| r.n().to_bytes_be())
        }),
        K::Sec1(d) => super::pubkey::ec_sec1(d.secret_sec1_der()),
        K::Pkcs8(d) => {
            let der = d.secret_pkcs8_der();
            if let Some(p) = super::pubkey::pkcs8(der) {
                return Some(p);
            }
            if let Ok(r) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
                return Some(r.n().to_bytes_be());
            }
            let rng = ring::rand::SystemRandom::new();
            for alg in [
                &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING,
            ] {
                if let Ok(kp) = ring::signature::EcdsaKeyPair::from_pkcs8(alg, der, &rng) {
                    use ring::signature::KeyPair as _;
                    return Some(kp.public_key().as_ref().to_vec());
                }
            }
            ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .ok()
                .map(|kp| {
                    use ring::signature::KeyPair as _;
                    kp.public_key().as_ref().to_vec()
                })
        }
        _ => None,
    }
}

/// The public key bits of a certificate, as [`public_half`] gives them.
pub fn cert_public(c: &CertFacts) -> Option<Vec<u8>> {
    use x509_parser::prelude::*;
    let (_, x) = X509Certificate::from_der(&c.der).ok()?;
    let spki = x.public_key();
    match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(r)) => {
            let m = r.modulus;
            let start = m.iter().position(|b| *b != 0).unwrap_or(m.len());
            Some(m[start..].to_vec())
        }
        _ => Some(spki.subject_public_key.data.to_vec()),
    }
}

fn in_source_checkout(path: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(path).ok()?;
    abs.ancestors()
        .skip(1)
        .take(32)
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

fn is_config_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| CONFIG_EXTENSIONS.iter().any(|c| c.eq_ignore_ascii_case(e)))
}

/// Where-and-how findings of one file holding a key (mode, owner, configuration file,
/// checkout). `cert_owner`: the uid of the certificate's file, when the key is elsewhere.
fn storage_findings(
    key_path: &Path,
    encrypted: bool,
    cert_owner: Option<u32>,
    what: &str,
) -> Vec<KeyFinding> {
    let loc = Some(key_path.display().to_string());
    let mut out = Vec::new();
    let meta = std::fs::metadata(key_path).ok();
    let mode = meta.as_ref().map(|m| m.mode() & 0o777);
    let mode_s = mode.map(|m| format!(" (mode {m:04o})")).unwrap_or_default();
    if encrypted {
        out.push(KeyFinding::new(
            "key_encrypted",
            Severity::Protected,
            format!("{what} is encrypted{mode_s}"),
            loc.clone(),
        ));
    } else {
        match mode {
            Some(m) if m & 0o004 != 0 => out.push(KeyFinding::new(
                "key_readable_by_others",
                Severity::Critical,
                format!("unencrypted {what} readable by others{mode_s}"),
                loc.clone(),
            )),
            Some(m) if m & 0o040 != 0 => out.push(KeyFinding::new(
                "key_readable_by_group",
                Severity::Warning,
                format!("unencrypted {what} readable by its group{mode_s}"),
                loc.clone(),
            )),
            _ => out.push(KeyFinding::new(
                "key_unencrypted",
                Severity::Info,
                format!("unencrypted {what}, readable by its owner only{mode_s}"),
                loc.clone(),
            )),
        }
    }
    if let (Some(m), Some(owner)) = (&meta, cert_owner) {
        if m.uid() != owner {
            out.push(KeyFinding::new(
                "key_owner_differs",
                Severity::Warning,
                format!(
                    "{what} is owned by uid {}, its certificate by uid {owner}",
                    m.uid()
                ),
                loc.clone(),
            ));
        }
    }
    if is_config_file(key_path) {
        out.push(KeyFinding::new(
            "key_in_config_file",
            Severity::Critical,
            format!("{what} inside a configuration file"),
            loc.clone(),
        ));
    }
    if let Some(repo) = in_source_checkout(key_path) {
        out.push(KeyFinding::new(
            "key_in_source_checkout",
            Severity::Critical,
            format!("{what} under a source-code checkout ({})", repo.display()),
            loc,
        ));
    }
    out
}

/// Add key findings to the records read from the certificate file `path` (`data`: its bytes).
pub fn file_findings(path: &Path, data: &[u8], records: &mut [Record]) {
    let certs: Vec<(usize, Option<Vec<u8>>)> = records
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.cert.as_ref().map(|c| (i, cert_public(c))))
        .collect();
    let Some(&(first, _)) = certs.first() else {
        return;
    };
    let cert_owner = std::fs::metadata(path).ok().map(|m| m.uid());
    let mut files: Vec<(PathBuf, Keys, Option<u32>)> = Vec::new();
    if crate::sources::pem::looks_like_pem(data) {
        let k = keys_in(data);
        if k.encrypted + k.plain.len() > 0 {
            files.push((path.to_owned(), k, None));
        }
    }
    for p in sibling_keys(path) {
        if let Ok(d) = crate::fsx::read_bounded(&p, 1024 * 1024) {
            let k = keys_in(&d);
            if k.encrypted + k.plain.len() > 0 {
                files.push((p, k, cert_owner));
            }
        }
    }
    for (kp, keys, owner) in files {
        let same = kp == path;
        let what = if same {
            "private key in the certificate's file"
        } else {
            "private key"
        };
        for _ in 0..keys.encrypted {
            records[first]
                .key_findings
                .extend(storage_findings(&kp, true, owner, what));
        }
        for public in keys.plain {
            let target = public.as_ref().and_then(|pk| {
                certs
                    .iter()
                    .find(|(_, cp)| cp.as_ref() == Some(pk))
                    .map(|(i, _)| *i)
            });
            let i = target.unwrap_or(first);
            records[i]
                .key_findings
                .extend(storage_findings(&kp, false, owner, what));
            let loc = Some(kp.display().to_string());
            match (public, target) {
                (Some(_), None) => records[i].key_findings.push(KeyFinding::new(
                    "key_mismatch",
                    Severity::Critical,
                    "the private key beside it does not match this certificate",
                    loc,
                )),
                (None, _) => records[i].key_findings.push(KeyFinding::new(
                    "key_not_compared",
                    Severity::Info,
                    "the key is not compared with the certificate (a SEC1 key without its public half, or an unusual type)",
                    loc,
                )),
                _ => {}
            }
        }
    }
}

/// Findings of a keystore's key entries: the store's file mode, and an empty password.
pub fn keystore_findings(path: &Path, records: &mut [Record]) {
    let mode = std::fs::metadata(path).ok().map(|m| m.mode() & 0o777);
    let loc = Some(path.display().to_string());
    for r in records.iter_mut() {
        let Some(x) = &r.extra else { continue };
        if x.key != "keystore" || x.json["entry"] != "private_key" {
            continue;
        }
        let empty = x.json["password_from"]
            .as_str()
            .is_some_and(|s| s.starts_with("none"));
        let fmt = x.json["format"].as_str().unwrap_or("keystore").to_owned();
        let verified = x.json["integrity_verified"] == true;
        if empty && verified {
            r.key_findings.push(KeyFinding::new(
                "key_empty_password",
                Severity::Critical,
                format!("private key in a {fmt} keystore with an empty password"),
                loc.clone(),
            ));
        } else {
            r.key_findings.push(KeyFinding::new(
                "key_in_keystore",
                Severity::Protected,
                format!("private key in a password-protected {fmt} keystore"),
                loc.clone(),
            ));
        }
        if let Some(m) = mode.filter(|m| m & 0o004 != 0) {
            r.key_findings.push(KeyFinding::new(
                "keystore_readable_by_others",
                Severity::Warning,
                format!("the {fmt} keystore holding the key is readable by others (mode {m:04o})"),
                loc.clone(),
            ));
        }
        if let Some(repo) = in_source_checkout(path) {
            r.key_findings.push(KeyFinding::new(
                "key_in_source_checkout",
                Severity::Critical,
                format!(
                    "keystore with a private key under a source-code checkout ({})",
                    repo.display()
                ),
                loc.clone(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sibling_keys_follow_the_usual_names() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "tls.crt",
            "tls.key",
            "fullchain.pem",
            "privkey.pem",
            "app-cert.pem",
            "app-key.pem",
        ] {
            std::fs::write(d.path().join(n), "x").unwrap();
        }
        let names = |c: &str| -> Vec<String> {
            sibling_keys(&d.path().join(c))
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("tls.crt"), ["tls.key"]);
        assert_eq!(names("fullchain.pem"), ["privkey.pem"]);
        assert_eq!(names("app-cert.pem"), ["app-key.pem"]);
    }
}
