//! Records: one location's latest observation.
//!
//! A `Record` is what every source produces and what every view and report consumes. The
//! JSON form (`report::json`) is a contract: field names are documented in the README.

use std::sync::Arc;

use serde::Serialize;

use super::cert::{sha256_hex, CertFacts};

/// Kind of place a certificate was seen: `tls`, `file`, `k8s`, or the name a source module
/// gives itself. An open set: a new source names its kind without touching this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKind(&'static str);

impl SourceKind {
    pub const TLS: SourceKind = SourceKind("tls");
    pub const FILE: SourceKind = SourceKind("file");
    pub const K8S: SourceKind = SourceKind("k8s");

    /// A kind named by a source module (lowercase ASCII, as it appears in JSON and ids).
    pub const fn new(name: &'static str) -> SourceKind {
        SourceKind(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for SourceKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

/// Facts of a source that has no typed field of its own in [`Record`]: shown in the details
/// view, serialised in JSON under `key`, and the table's note when set.
#[derive(Debug, Clone, PartialEq)]
pub struct Extra {
    /// JSON field name (the source kind, usually: `"aws"`, `"vault"`).
    pub key: &'static str,
    pub json: serde_json::Value,
    /// (label, value) lines for the details view, in order.
    pub details: Vec<(String, String)>,
    /// One line for the table's note column, when the source has something to say.
    pub note: Option<String>,
}

/// Verdict of verifying a served chain against the trust anchors, for the host name asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub trusted: bool,
    /// `trusted`, or why not: `unknown issuer`, `self-signed`, `expired`, `host name mismatch`...
    pub reason: String,
    /// The name the chain was checked against (SNI or IP address).
    pub checked_name: String,
}

/// Protocol details of a TLS observation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub tls_version: Option<String>,
    pub client_auth_requested: bool,
    pub verification: Option<Verification>,
    /// Address actually connected to.
    pub peer_addr: Option<String>,
    /// The protocol spoken before the handshake (`smtp`, `imap`... `postgres-direct` for ALPN
    /// `postgresql`), or `None` for TLS from the first byte.
    pub starttls: Option<&'static str>,
}

/// A status condition of a cert-manager Certificate (`Ready`, `Issuing`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct K8sCondition {
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub last_transition_time: Option<String>,
    pub observed_generation: Option<i64>,
}

/// The cert-manager `Certificate` (cert-manager.io/v1) that manages a Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CertManagerInfo {
    /// Name of the Certificate (same namespace as the Secret).
    pub name: String,
    pub secret_name: String,
    pub dns_names: Vec<String>,
    /// `Issuer/name` or `ClusterIssuer/name` (with `.group` when not cert-manager.io).
    pub issuer_ref: String,
    /// `status.notAfter`, RFC 3339.
    pub not_after: Option<String>,
    /// `status.renewalTime`, RFC 3339.
    pub renewal_time: Option<String>,
    pub revision: Option<i64>,
    pub generation: Option<i64>,
    pub ready: Option<K8sCondition>,
    pub issuing: Option<K8sCondition>,
}

/// Where in Kubernetes a certificate was seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct K8sInfo {
    /// The kubeconfig context.
    pub context: String,
    /// Empty for cluster-scoped objects and kubeconfig users.
    pub namespace: String,
    /// `Secret`, `ConfigMap`, `Certificate`, `ValidatingWebhookConfiguration`,
    /// `MutatingWebhookConfiguration`, `APIService`, `KubeconfigUser`, or `Namespace` / `Cluster`
    /// for rows that say a whole namespace or cluster could not be read.
    pub kind: String,
    pub name: String,
    /// The data key or field (`tls.crt`, `ca.crt`, `caBundle`, `client-certificate-data`).
    pub key: Option<String>,
    /// The Secret type (`kubernetes.io/tls`, `Opaque`...), for Secrets.
    pub secret_type: Option<String>,
    /// The cert-manager Certificate managing this Secret, if any.
    pub managed_by: Option<CertManagerInfo>,
    /// Set when the stored certificate differs from what its Certificate says.
    pub drift: Option<String>,
    /// The namespace (or cluster scope) could not be listed: 403 Forbidden.
    pub forbidden: bool,
}

/// Whether a certificate has been revoked, as far as certdeck could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevocationState {
    /// The issuer (or its responder) says the certificate is not revoked.
    Good,
    /// Revoked at `time` (unix seconds), for `reason` (RFC 5280 name) when one is given.
    Revoked { time: i64, reason: Option<String> },
    /// Soft-fail: no conclusive answer, and why (responder down, slow, unsigned answer...).
    Unknown(String),
}

/// The revocation status of a row's certificate and where it came from. `None` on a record
/// means not checked: checking is off, the certificate is a CA or self-issued, or it names no
/// OCSP responder or CRL and nothing was stapled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub state: RevocationState,
    /// What answered: `stapled OCSP response`, `OCSP http://...`, `CRL http://...`, `Vault pki_int`.
    pub by: Option<String>,
    /// The certificate demands a stapled OCSP response (TLS feature "Must-Staple") and the
    /// server sent none: clients that honour it refuse the connection.
    pub must_staple_unmet: bool,
}

impl Revocation {
    pub fn good(by: impl Into<String>) -> Revocation {
        Revocation {
            state: RevocationState::Good,
            by: Some(by.into()),
            must_staple_unmet: false,
        }
    }

    pub fn revoked(time: i64, reason: Option<String>, by: impl Into<String>) -> Revocation {
        Revocation {
            state: RevocationState::Revoked { time, reason },
            by: Some(by.into()),
            must_staple_unmet: false,
        }
    }

    pub fn unknown(why: impl Into<String>) -> Revocation {
        Revocation {
            state: RevocationState::Unknown(why.into()),
            by: None,
            must_staple_unmet: false,
        }
    }

    pub fn is_revoked(&self) -> bool {
        matches!(self.state, RevocationState::Revoked { .. })
    }

    /// `good`, `revoked` or `unknown` (the JSON `state`).
    pub fn state_str(&self) -> &'static str {
        match self.state {
            RevocationState::Good => "good",
            RevocationState::Revoked { .. } => "revoked",
            RevocationState::Unknown(_) => "unknown",
        }
    }

    /// One line for notes and details: `revoked 2026-12-02T04:55:52Z (keyCompromise)`.
    pub fn describe(&self) -> String {
        let mut s = match &self.state {
            RevocationState::Good => "not revoked".to_owned(),
            RevocationState::Revoked { time, reason } => {
                let mut s = format!("revoked {}", crate::clock::rfc3339(*time));
                if let Some(r) = reason {
                    s.push_str(&format!(" ({r})"));
                }
                s
            }
            RevocationState::Unknown(why) => why.clone(),
        };
        if let Some(by) = &self.by {
            s.push_str(&format!(", by {by}"));
        }
        if self.must_staple_unmet {
            s.push_str("; Must-Staple but no OCSP response stapled");
        }
        s
    }
}

/// One location's latest result: a certificate (with the rest of its chain), or an error.
#[derive(Debug, Clone)]
pub struct Record {
    /// Stable id of the location (`tls-1a2b3c4d5e`), usable as `certdeck renew ID`.
    pub id: String,
    pub source: SourceKind,
    /// `host:port` (with `@sni` when the name differs), or `path` / `path#N`.
    pub location: String,
    /// The leaf (or the file's certificate). `None` when the location could not be read.
    pub cert: Option<Arc<CertFacts>>,
    /// Every further certificate the server sent, in the order sent.
    pub chain: Vec<Arc<CertFacts>>,
    pub tls: Option<TlsInfo>,
    /// Kubernetes facts (context, object, managing cert-manager Certificate), for `k8s` rows.
    pub k8s: Option<K8sInfo>,
    /// Facts of sources without a typed field of their own.
    pub extra: Option<Arc<Extra>>,
    /// Revocation status of `cert`, when checked.
    pub revocation: Option<Revocation>,
    /// Findings about the certificate's private key where its source could see it (file
    /// modes, location, match); weak keys and signatures are derived by
    /// [`super::keyaudit::all_findings`].
    pub key_findings: Vec<super::keyaudit::KeyFinding>,
    /// Findings the fleet derives across records (one key under several certificates), kept
    /// current by [`super::Fleet`]; sources leave it empty.
    pub key_reuse: Vec<super::keyaudit::KeyFinding>,
    /// Why the location could not be read (or a problem found while reading it).
    pub error: Option<String>,
    /// Unix seconds when observed.
    pub observed_at: i64,
}

/// Stable id for a location: the source and a short hash of the location string.
pub fn location_id(source: SourceKind, location: &str) -> String {
    let h = sha256_hex(format!("{}|{}", source.as_str(), location).as_bytes());
    format!("{}-{}", source.as_str(), &h[..10])
}

impl Record {
    pub fn new(source: SourceKind, location: String, observed_at: i64) -> Record {
        Record {
            id: location_id(source, &location),
            source,
            location,
            cert: None,
            chain: Vec::new(),
            tls: None,
            k8s: None,
            extra: None,
            revocation: None,
            key_findings: Vec::new(),
            key_reuse: Vec::new(),
            error: None,
            observed_at,
        }
    }

    /// A row of a certificate store (ACM, Key Vault, Certificate Manager): its location is the
    /// store's stable name for the certificate, so the row id is stable too.
    pub fn from_store(
        source: SourceKind,
        location: &str,
        leaf: Option<Arc<CertFacts>>,
        chain: Vec<Arc<CertFacts>>,
        extra: Extra,
        observed_at: i64,
    ) -> Record {
        let mut r = Record::new(source, location.to_owned(), observed_at);
        r.cert = leaf;
        r.chain = chain;
        r.extra = Some(Arc::new(extra));
        r
    }

    pub fn with_cert(mut self, cert: Arc<CertFacts>) -> Record {
        self.cert = Some(cert);
        self
    }

    pub fn with_error(mut self, error: impl Into<String>) -> Record {
        self.error = Some(error.into());
        self
    }
}
