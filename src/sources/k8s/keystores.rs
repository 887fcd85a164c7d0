//! Keystores in Kubernetes Secrets and ConfigMaps (`keystore.p12`, `truststore.jks`, `*.pfx`,
//! `*.jks`..., found by name or by content), read through the same code as keystore files: one
//! row per entry at `ctx/ns/secret/NAME#KEY#alias`, with its alias and entry type.
//!
//! Passwords, in order:
//! 1. cert-manager's outputs (`keystore.jks`, `truststore.jks`, `keystore.p12`,
//!    `truststore.p12`) in the Secret a Certificate names: the Certificate's
//!    `spec.keystores.{jks,pkcs12}.passwordSecretRef` (a key of a Secret in the same
//!    namespace, read with a `get`, as the watch already does) or its literal `password`;
//! 2. a key beside the store in the same object: `STEM.password`, `KEY.password`,
//!    `STEM-password`, `STEM_password`, or `password` (Strimzi writes `ca.p12` beside
//!    `ca.password`);
//! 3. else the empty password only, as for files.
//!
//! A password Secret that is missing, forbidden or lacks its key, and a wrong password, are
//! error rows that say where the password was to come from; a password is never logged,
//! shown or kept in a record.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::api::Api;
use kube::core::DynamicObject;

use super::error::call;
use super::read::location;
use crate::model::keyaudit::{KeyFinding, Severity};
use crate::model::{K8sInfo, Record, SourceKind};
use crate::sources::keystore::{self, Format, KeystoreError, Secret};

/// A password for a keystore, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    Given {
        /// Where it came from, for rows (never the password).
        origin: String,
        /// How well the password itself is kept, for the key finding.
        kept: Kept,
        secret: Secret,
    },
    /// It was to come from somewhere that could not give it.
    Unavailable(String),
}

/// Where a keystore's password is kept, which bounds what it protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kept {
    /// In a Secret of its own (cert-manager's `passwordSecretRef`).
    OwnSecret,
    /// Written in the Certificate's spec (cert-manager's literal `password`).
    Literal,
    /// In the same Secret or ConfigMap as the store.
    Beside,
}

/// The passwords cert-manager wrote one Certificate's keystores with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertPasswords {
    pub jks: Option<Password>,
    pub pkcs12: Option<Password>,
}

/// The keystore passwords of every Certificate of a context, by (namespace, secretName).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwords {
    by_secret: HashMap<(String, String), CertPasswords>,
}

impl Passwords {
    /// The passwords for the Secret `ns/name`, if a Certificate with keystores names it.
    pub fn get(&self, ns: &str, name: &str) -> Option<&CertPasswords> {
        self.by_secret.get(&(ns.to_owned(), name.to_owned()))
    }

    pub fn is_empty(&self) -> bool {
        self.by_secret.is_empty()
    }

    /// Resolve one Certificate again (the live watch saw it change); true when its passwords
    /// changed, so its Secret's rows are to be read again.
    pub async fn refresh(
        &mut self,
        client: &kube::Client,
        timeout: std::time::Duration,
        ctx: &str,
        o: &DynamicObject,
    ) -> bool {
        let ns = o.metadata.namespace.clone().unwrap_or_default();
        let secret = o.data["spec"]["secretName"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = (ns, secret);
        let new = match wanted(o) {
            Some(w) => resolve(client, timeout, ctx, vec![w])
                .await
                .by_secret
                .remove(&key),
            None => None,
        };
        let old = match &new {
            Some(n) => self.by_secret.insert(key, n.clone()),
            None => self.by_secret.remove(&key),
        };
        old != new
    }
}

/// Where one keystore's password is to come from, as the Certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ref {
    Secret {
        name: String,
        key: String,
    },
    Literal(Secret),
    /// `create: true` without a password (cert-manager refuses such a Certificate).
    Missing,
}

/// What one Certificate's `spec.keystores` asks for.
#[derive(Debug, Clone)]
pub struct Wanted {
    namespace: String,
    secret_name: String,
    certificate: String,
    jks: Option<Ref>,
    pkcs12: Option<Ref>,
}

fn keystore_ref(spec: &serde_json::Value) -> Option<Ref> {
    if spec["create"] != true {
        return None;
    }
    if let Some(p) = spec["password"].as_str().filter(|p| !p.is_empty()) {
        return Some(Ref::Literal(Secret::new(p)));
    }
    let r = &spec["passwordSecretRef"];
    match (r["name"].as_str(), r["key"].as_str()) {
        (Some(name), Some(key)) if !name.is_empty() && !key.is_empty() => Some(Ref::Secret {
            name: name.to_owned(),
            key: key.to_owned(),
        }),
        _ => Some(Ref::Missing),
    }
}

/// The keystores a cert-manager Certificate asks for, if any.
pub fn wanted(o: &DynamicObject) -> Option<Wanted> {
    let spec = &o.data["spec"];
    let ks = &spec["keystores"];
    let jks = keystore_ref(&ks["jks"]);
    let pkcs12 = keystore_ref(&ks["pkcs12"]);
    if jks.is_none() && pkcs12.is_none() {
        return None;
    }
    Some(Wanted {
        namespace: o.metadata.namespace.clone().unwrap_or_default(),
        secret_name: spec["secretName"].as_str().unwrap_or_default().to_owned(),
        certificate: o.metadata.name.clone().unwrap_or_default(),
        jks,
        pkcs12,
    })
}

/// Read the passwords the Certificates ask for: one `get` per password Secret.
pub async fn resolve(
    client: &kube::Client,
    timeout: std::time::Duration,
    ctx: &str,
    wanted: Vec<Wanted>,
) -> Passwords {
    let mut fetched: HashMap<(String, String), Result<Option<K8sSecret>, String>> = HashMap::new();
    let mut out = Passwords::default();
    for w in wanted {
        let one = |r: &Option<Ref>, field: &str| -> Option<(Ref, String)> {
            r.clone().map(|r| (r, field.to_owned()))
        };
        let refs = [one(&w.jks, "jks"), one(&w.pkcs12, "pkcs12")];
        let mut got: Vec<Option<Password>> = Vec::new();
        for r in refs {
            let Some((r, field)) = r else {
                got.push(None);
                continue;
            };
            let cert = &w.certificate;
            let ns = &w.namespace;
            let pw = match r {
                Ref::Literal(secret) => Password::Given {
                    origin: format!("spec.keystores.{field}.password of Certificate {ns}/{cert}"),
                    kept: Kept::Literal,
                    secret,
                },
                Ref::Missing => Password::Unavailable(format!(
                    "Certificate {ns}/{cert} asks for a {field} keystore but gives no password \
                     (spec.keystores.{field}.passwordSecretRef)"
                )),
                Ref::Secret { name, key } => {
                    let k = (ns.clone(), name.clone());
                    if !fetched.contains_key(&k) {
                        let api: Api<K8sSecret> = Api::namespaced(client.clone(), ns);
                        let r = call(api.get_opt(&name), timeout, ctx, "get", "secrets", ns)
                            .await
                            .map_err(|e| e.to_string());
                        fetched.insert(k.clone(), r);
                    }
                    let origin = format!(
                        "Secret {ns}/{name}#{key} (spec.keystores.{field}.passwordSecretRef of \
                         Certificate {cert})"
                    );
                    match fetched.get(&k) {
                        Some(Ok(Some(s))) => {
                            match s.data.as_ref().and_then(|d| d.get(&key)).map(|b| &b.0) {
                                Some(b) if !b.is_empty() => match std::str::from_utf8(b) {
                                    Ok(p) => Password::Given {
                                        origin,
                                        kept: Kept::OwnSecret,
                                        secret: Secret::new(p),
                                    },
                                    Err(_) => Password::Unavailable(format!(
                                        "{origin}: the password is not valid UTF-8"
                                    )),
                                },
                                _ => Password::Unavailable(format!(
                                    "password Secret {ns}/{name} has no key {key:?} \
                                     (spec.keystores.{field}.passwordSecretRef of Certificate \
                                     {cert})"
                                )),
                            }
                        }
                        Some(Ok(None)) => Password::Unavailable(format!(
                            "password Secret {ns}/{name} not found \
                             (spec.keystores.{field}.passwordSecretRef of Certificate {cert})"
                        )),
                        Some(Err(e)) => Password::Unavailable(format!(
                            "password Secret {ns}/{name} could not be read: {e}"
                        )),
                        None => Password::Unavailable(format!(
                            "password Secret {ns}/{name} could not be read"
                        )),
                    }
                }
            };
            got.push(Some(pw));
        }
        let mut it = got.into_iter();
        let jks = it.next().flatten();
        let pkcs12 = it.next().flatten();
        out.by_secret
            .insert((w.namespace, w.secret_name), CertPasswords { jks, pkcs12 });
    }
    out
}

/// cert-manager's keystore keys and the `spec.keystores` field that gives their password.
fn cert_manager_field(key: &str) -> Option<&'static str> {
    match key {
        "keystore.jks" | "truststore.jks" => Some("jks"),
        "keystore.p12" | "truststore.p12" => Some("pkcs12"),
        _ => None,
    }
}

/// Keys that may hold the password of the store at `key`, in the order tried.
fn sibling_names(key: &str) -> Vec<String> {
    let stem = key.rsplit_once('.').map_or(key, |(s, _)| s);
    let mut v = vec![
        format!("{stem}.password"),
        format!("{key}.password"),
        format!("{stem}-password"),
        format!("{stem}_password"),
        "password".to_owned(),
    ];
    v.dedup();
    v
}

/// The keystore at `key`, if it is one: its format and bytes (ConfigMap text data holds a
/// binary store as base64).
fn store_of(key: &str, data: &[u8]) -> Option<(Format, Vec<u8>)> {
    if let Some(f) = keystore::detect(key, data) {
        return Some((f, data.to_vec()));
    }
    if keystore::is_keystore_name(key) {
        use base64::Engine as _;
        let text: Vec<u8> = data
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        if let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(text) {
            if let Some(f) = keystore::detect(key, &raw) {
                return Some((f, raw));
            }
        }
    }
    None
}

/// The rows of one Secret or ConfigMap key when it holds a keystore (`None` when it does not:
/// the key is then read as certificates). `sibling` gives another key of the same object.
pub fn records(
    base: &K8sInfo,
    key: &str,
    data: &[u8],
    sibling: &dyn Fn(&str) -> Option<Vec<u8>>,
    passwords: &super::keystores::Passwords,
    now: i64,
) -> Option<Vec<Record>> {
    let mut info = base.clone();
    info.key = Some(key.to_owned());
    let shown = location(
        &info.context,
        &info.namespace,
        &info.kind,
        &info.name,
        Some(key),
    );
    let row = |msg: String| -> Vec<Record> {
        let mut r = Record::new(SourceKind::K8S, shown.clone(), now).with_error(msg);
        r.k8s = Some(info.clone());
        vec![r]
    };
    let Some((format, bytes)) = store_of(key, data) else {
        if keystore::is_keystore_name(key) && super::read::parse_certs(data).is_none() {
            let why = if data.is_empty() {
                format!("{key} is empty")
            } else {
                format!(
                    "{key} is named like a keystore but is none (no JKS or JCEKS magic, not a \
                     PKCS#12 structure)"
                )
            };
            return Some(row(why));
        }
        return None;
    };
    let label = format.label();
    // 1. cert-manager's outputs, 2. a key beside the store, 3. the empty password.
    let from_cm = if base.kind == "Secret" {
        cert_manager_field(key).and_then(|field| {
            let p = passwords.get(&base.namespace, &base.name)?;
            match field {
                "jks" => p.jks.clone(),
                _ => p.pkcs12.clone(),
            }
        })
    } else {
        None
    };
    let password = match from_cm {
        Some(Password::Unavailable(why)) => {
            return Some(row(format!(
                "{label} keystore: password not available: {why}"
            )))
        }
        Some(p) => Some(p),
        None => sibling_names(key).into_iter().find_map(|n| {
            let v = sibling(&n)?;
            let text = String::from_utf8(v).ok()?;
            let text = text.trim_end_matches(['\r', '\n']);
            (!text.is_empty()).then(|| Password::Given {
                origin: format!("{} key {}/{}#{n}", base.kind, base.namespace, base.name),
                kept: Kept::Beside,
                secret: Secret::new(text),
            })
        }),
    };
    let (secret, origin, kept) = match &password {
        Some(Password::Given {
            origin,
            kept,
            secret,
        }) => (Some(secret), origin.clone(), Some(*kept)),
        _ => (None, "none (the empty password)".to_owned(), None),
    };
    let opened = match keystore::open(format, &bytes, secret) {
        Ok(o) => o,
        Err(KeystoreError::WrongPassword(_)) => {
            let why = match &password {
                Some(_) => format!("the password from {origin} does not open it"),
                None => format!(
                    "no password found for it (cert-manager's passwordSecretRef, or a key such \
                     as {} beside it) and the empty password does not open it",
                    sibling_names(key)[0]
                ),
            };
            return Some(row(format!(
                "{label} keystore: wrong password or corrupt keystore ({why})"
            )));
        }
        Err(e) => return Some(row(format!("{label} keystore: {e}"))),
    };
    drop(password);
    let mut recs = keystore::opened_records(SourceKind::K8S, &shown, &opened, &origin, now);
    for r in &mut recs {
        r.k8s = Some(info.clone());
        let key_entry = r
            .extra
            .as_ref()
            .is_some_and(|x| x.json["entry"] == "private_key");
        if key_entry {
            r.key_findings
                .extend(entry_findings(base, &shown, format, &opened, kept));
        }
    }
    Some(recs)
}

/// Findings of a private-key entry of a store kept in Kubernetes.
fn entry_findings(
    base: &K8sInfo,
    shown: &str,
    format: Format,
    opened: &keystore::Opened,
    kept: Option<Kept>,
) -> Vec<KeyFinding> {
    let fmt = format.as_str();
    let loc = Some(shown.to_owned());
    let mut out = Vec::new();
    let tls = base.secret_type.as_deref() == Some(super::read::TLS_SECRET_TYPE);
    if base.kind == "ConfigMap" {
        out.push(KeyFinding::new(
            "key_in_configmap",
            Severity::Critical,
            format!(
                "private key in a {fmt} keystore in a ConfigMap (ConfigMaps are not for secrets)"
            ),
            loc.clone(),
        ));
    }
    let f = match kept {
        None if opened.verified => KeyFinding::new(
            "key_empty_password",
            Severity::Critical,
            format!("private key in a {fmt} keystore with an empty password"),
            loc,
        ),
        None => KeyFinding::new(
            "key_in_keystore",
            Severity::Protected,
            format!("private key in a password-protected {fmt} keystore (password not known to certdeck)"),
            loc,
        ),
        Some(Kept::OwnSecret) => KeyFinding::new(
            "key_in_keystore",
            Severity::Protected,
            format!("private key in a {fmt} keystore whose password is in a Secret of its own"),
            loc,
        ),
        Some(Kept::Literal) => KeyFinding::new(
            "key_in_keystore",
            Severity::Info,
            format!(
                "private key in a {fmt} keystore whose password is written in its Certificate's \
                 spec (readable by whoever may read Certificates)"
            ),
            loc,
        ),
        Some(Kept::Beside) => KeyFinding::new(
            "key_in_keystore",
            if tls || base.kind == "ConfigMap" {
                Severity::Info
            } else {
                Severity::Warning
            },
            format!(
                "private key in a {fmt} keystore whose password is beside it in the same {}: \
                 it protects nothing from whoever may read it",
                base.kind
            ),
            loc,
        ),
    };
    out.push(f);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cert(keystores: serde_json::Value) -> DynamicObject {
        let mut o = DynamicObject::new("web", &super::super::certmanager::certificate_resource())
            .within("shop");
        o.data = json!({"spec": {"secretName": "web-tls", "keystores": keystores}});
        o
    }

    #[test]
    fn certificates_name_a_password_secret_a_literal_or_nothing() {
        let w = wanted(&cert(json!({
            "jks": {"create": true, "passwordSecretRef": {"name": "jks-pass", "key": "password"}},
            "pkcs12": {"create": true, "password": "lit", "profile": "Modern2023"},
        })))
        .unwrap();
        assert_eq!(
            w.jks,
            Some(Ref::Secret {
                name: "jks-pass".into(),
                key: "password".into()
            })
        );
        assert_eq!(w.pkcs12, Some(Ref::Literal(Secret::new("lit"))));
        assert_eq!(
            (w.namespace.as_str(), w.secret_name.as_str()),
            ("shop", "web-tls")
        );
        let w = wanted(&cert(json!({"jks": {"create": true}}))).unwrap();
        assert_eq!(w.jks, Some(Ref::Missing));
        assert!(wanted(&cert(json!({"jks": {"create": false}}))).is_none());
        assert!(wanted(&cert(json!(null))).is_none());
        // The literal never shows in Debug output.
        assert!(!format!("{:?}", Ref::Literal(Secret::new("lit"))).contains("lit"));
    }

    #[test]
    fn sibling_password_keys_follow_the_usual_names() {
        assert_eq!(
            sibling_names("ca.p12"),
            [
                "ca.password",
                "ca.p12.password",
                "ca-password",
                "ca_password",
                "password"
            ]
        );
        assert_eq!(cert_manager_field("truststore.p12"), Some("pkcs12"));
        assert_eq!(cert_manager_field("keystore.jks"), Some("jks"));
        assert_eq!(cert_manager_field("ca.jks"), None);
    }
}
