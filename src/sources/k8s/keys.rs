//! Private keys at rest in Kubernetes: PEM private keys in Secret and ConfigMap keys, read
//! in memory only to derive their public half, matched with the certificates of the same
//! object, and named as findings on the certificate's row:
//! - `key_in_configmap` (critical): ConfigMaps are not for secrets; a ConfigMap key holding a
//!   key and no certificate is a row of its own, so the finding is seen;
//! - `key_in_opaque_secret` (warning): a key in a Secret of another type than
//!   `kubernetes.io/tls` (the type that tools, RBAC policies and audits treat as a key pair);
//! - `key_in_tls_secret` (info): the expected place, readable by whoever may read Secrets;
//! - `key_mismatch` (critical): `tls.key` (or `X.key` beside `X.crt`) does not match the
//!   certificate; `key_not_compared` (info) for key types that are not compared (SEC1);
//! - `key_encrypted` (protected): an encrypted PEM key.
//!
//! Weak keys and signatures come from the certificate itself ([`crate::model::keyaudit`]);
//! keystore entries get theirs in [`super::keystores`]. Nothing of a key reaches a finding
//! but its location.

use crate::model::keyaudit::{KeyFinding, Severity};
use crate::model::{K8sInfo, Record, SourceKind};
use crate::sources::keystore::atrest;

/// Where a key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place<'a> {
    TlsSecret,
    OtherSecret(&'a str),
    ConfigMap,
}

/// True when `data` holds a PEM private key. Every value of every Secret passes here: a byte
/// scan for the mark's first letter, not a comparison at every offset.
fn has_private_key(data: &[u8]) -> bool {
    const MARK: &[u8] = b"PRIVATE KEY-----";
    let mut at = 0;
    while let Some(p) = data
        .get(at..)
        .and_then(|d| d.iter().position(|&b| b == b'P'))
    {
        if data[at + p..].starts_with(MARK) {
            return true;
        }
        at += p + 1;
    }
    false
}

/// The name a key and its certificate share: `tls` for `tls.key` / `tls.crt`, `app` for
/// `app-key.pem` / `app-cert.pem`.
fn stem(name: &str, suffixes: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    for s in suffixes {
        if let Some(b) = lower.strip_suffix(s) {
            return b.to_owned();
        }
    }
    lower
}

const KEY_SUFFIXES: &[&str] = &[
    ".key.pem", "-key.pem", "_key.pem", ".key", "-key", "_key", ".pem",
];
const CERT_SUFFIXES: &[&str] = &[
    "-cert.pem",
    "_cert.pem",
    ".crt.pem",
    ".crt",
    ".cert",
    ".cer",
    ".pem",
    "-cert",
    "-crt",
];

fn push(out: &mut [Record], i: usize, f: KeyFinding) {
    out[i].key_findings.push(f);
}

/// Add key findings to `out`, the rows of one object (`base`), from its keys `items`.
fn findings(
    base: &K8sInfo,
    place: Place<'_>,
    items: &[(&str, &[u8])],
    now: i64,
    out: &mut Vec<Record>,
) {
    // The object's certificate rows (not its keystore entries), with their public keys.
    let certs: Vec<(usize, Option<Vec<u8>>, String)> = out
        .iter()
        .enumerate()
        .filter(|(_, r)| r.extra.as_ref().is_none_or(|x| x.key != "keystore"))
        .filter_map(|(i, r)| {
            let c = r.cert.as_ref()?;
            let key = r
                .k8s
                .as_ref()
                .and_then(|k| k.key.clone())
                .unwrap_or_default();
            Some((i, atrest::cert_public(c), stem(&key, CERT_SUFFIXES)))
        })
        .collect();
    let ns = if base.namespace.is_empty() {
        "the cluster".to_owned()
    } else {
        format!("namespace {}", base.namespace)
    };
    for (k, v) in items {
        if !has_private_key(v) {
            continue;
        }
        let keys = atrest::keys_in(v);
        if keys.encrypted + keys.plain.len() == 0 {
            continue;
        }
        let loc = Some(super::read::location(
            &base.context,
            &base.namespace,
            &base.kind,
            &base.name,
            Some(k),
        ));
        let kstem = stem(k, KEY_SUFFIXES);
        let paired = certs
            .iter()
            .find(|(_, _, s)| *s == kstem)
            .or(certs.first())
            .map(|(i, _, _)| *i);
        let target = match paired {
            Some(i) => i,
            None if place == Place::ConfigMap => {
                // A key and no certificate: a row of its own, or nobody sees the finding.
                let mut info = base.clone();
                info.key = Some((*k).to_owned());
                let mut r = Record::new(SourceKind::K8S, loc.clone().unwrap_or_default(), now)
                    .with_error(format!("{k} holds a private key and no certificate"));
                r.k8s = Some(info);
                out.push(r);
                out.len() - 1
            }
            // A Secret holding keys for something else than a certificate (a signing key):
            // there is no certificate to say it of.
            None => continue,
        };
        for _ in 0..keys.encrypted {
            push(
                out,
                target,
                KeyFinding::new(
                    "key_encrypted",
                    Severity::Protected,
                    format!("private key {k} is encrypted"),
                    loc.clone(),
                ),
            );
            if place == Place::ConfigMap {
                push(
                    out,
                    target,
                    KeyFinding::new(
                        "key_in_configmap",
                        Severity::Warning,
                        format!("encrypted private key {k} in a ConfigMap (ConfigMaps are not for secrets)"),
                        loc.clone(),
                    ),
                );
            }
        }
        for public in keys.plain {
            let matched = public.as_ref().and_then(|pk| {
                certs
                    .iter()
                    .find(|(_, cp, _)| cp.as_ref() == Some(pk))
                    .map(|(i, _, _)| *i)
            });
            let i = matched.unwrap_or(target);
            let placed = match place {
                Place::ConfigMap => KeyFinding::new(
                    "key_in_configmap",
                    Severity::Critical,
                    format!(
                        "unencrypted private key {k} in a ConfigMap: ConfigMaps are not for \
                         secrets (readable by whoever may read ConfigMaps in {ns})"
                    ),
                    loc.clone(),
                ),
                Place::OtherSecret(ty) => KeyFinding::new(
                    "key_in_opaque_secret",
                    Severity::Warning,
                    format!(
                        "unencrypted private key {k} in a Secret of type {ty}, not \
                         kubernetes.io/tls"
                    ),
                    loc.clone(),
                ),
                Place::TlsSecret => KeyFinding::new(
                    "key_in_tls_secret",
                    Severity::Info,
                    format!(
                        "unencrypted private key {k} in a kubernetes.io/tls Secret (readable by \
                         whoever may read Secrets in {ns})"
                    ),
                    loc.clone(),
                ),
            };
            push(out, i, placed);
            let has_cert = out[i].cert.is_some();
            match (public, matched) {
                (Some(_), None) if has_cert => push(
                    out,
                    i,
                    KeyFinding::new(
                        "key_mismatch",
                        Severity::Critical,
                        format!("the private key {k} beside it does not match this certificate"),
                        loc.clone(),
                    ),
                ),
                (None, _) => push(
                    out,
                    i,
                    KeyFinding::new(
                        "key_not_compared",
                        Severity::Info,
                        "the key is not compared with the certificate (a SEC1 key without its public half, or an unusual type)",
                        loc.clone(),
                    ),
                ),
                _ => {}
            }
        }
    }
}

/// Key findings of one Secret's rows (`out`), from its data.
pub fn secret_findings(
    base: &K8sInfo,
    data: &std::collections::BTreeMap<String, k8s_openapi::ByteString>,
    now: i64,
    out: &mut Vec<Record>,
) {
    let ty = base.secret_type.as_deref().unwrap_or("Opaque");
    let place = if ty == super::read::TLS_SECRET_TYPE {
        Place::TlsSecret
    } else {
        Place::OtherSecret(ty)
    };
    let items: Vec<(&str, &[u8])> = data
        .iter()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    findings(base, place, &items, now, out);
}

/// Key findings of one ConfigMap's rows (`out`), from its text and binary data.
pub fn configmap_findings(
    base: &K8sInfo,
    c: &k8s_openapi::api::core::v1::ConfigMap,
    now: i64,
    out: &mut Vec<Record>,
) {
    let mut items: Vec<(&str, &[u8])> = Vec::new();
    for (k, v) in c.data.iter().flatten() {
        items.push((k.as_str(), v.as_bytes()));
    }
    for (k, v) in c.binary_data.iter().flatten() {
        items.push((k.as_str(), v.0.as_slice()));
    }
    findings(base, Place::ConfigMap, &items, now, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_certificates_pair_by_their_shared_name() {
        assert_eq!(stem("tls.key", KEY_SUFFIXES), "tls");
        assert_eq!(stem("tls.crt", CERT_SUFFIXES), "tls");
        assert_eq!(stem("app-key.pem", KEY_SUFFIXES), "app");
        assert_eq!(stem("app-cert.pem", CERT_SUFFIXES), "app");
        assert_eq!(stem("server.pem", CERT_SUFFIXES), "server");
        assert!(has_private_key(b"-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(!has_private_key(b"-----BEGIN CERTIFICATE-----\n"));
        assert!(has_private_key(b"PPRIVATE KEY-----"));
        assert!(!has_private_key(b"PRIVATE KEY----"));
        assert!(!has_private_key(b""));
    }
}
