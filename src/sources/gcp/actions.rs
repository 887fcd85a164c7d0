//! Certificate Manager actions, as a backend of the one action framework ([`GcpBackend`]),
//! over engines that are plain async functions (plan reads only; execute reports its steps;
//! verify re-reads).
//!
//! - `renew` / `upload` of a **self-managed** certificate: `certificates.patch` with
//!   `updateMask=selfManaged` and the renewed certificate and key from the files a
//!   `[[gcp.upload]]` entry names (as `gcloud certificate-manager certificates update
//!   --certificate-file --private-key-file` does), then `operations.get` until the
//!   long-running operation is done, then `certificates.get` to verify the new leaf
//!   (SHA-256) and `expireTime`. The certificate keeps its name, so every certificate map
//!   entry and target proxy in `usedBy` serves the new one.
//! - A **Google-managed** certificate takes no upload: `renew ID` is refused with what blocks
//!   its renewal (the failed authorization, the provisioning issue), from the row's facts.
//!
//! Refused at plan time, before anything is sent: a key that does not belong to the
//! certificate, an encrypted or unreadable key, a certificate that is expired or not yet
//! valid, one that does not cover every DNS name of the current certificate, or one that is
//! already there. Certificate Manager replaces the certificate only when the operation
//! succeeds, so a failed step leaves the previous certificate in service, and says which.
//! Key material stays in memory: never in a plan, a progress line, an error or the audit log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::api::{Client, GcpError};
use super::facts::{self, GcpFacts};
use super::settings::UploadConfig;
use super::source::ProjectCell;
use crate::actions::{
    ActionError, ActionOptions, Backend, Offer, Outcome, Plan, Prepared, Reporter, Risk, Step,
};
use crate::model::cert::San;
use crate::model::{CertFacts, Record};
use crate::sources::BoxFut;

/// The files of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadFiles {
    /// The leaf first; a chain may follow it.
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Default: the certificates after the first in `certificate`, if any.
    pub chain: Option<PathBuf>,
}

impl From<&UploadConfig> for UploadFiles {
    fn from(u: &UploadConfig) -> Self {
        UploadFiles {
            certificate: u.certificate.clone(),
            private_key: u.private_key.clone(),
            chain: u.chain.clone(),
        }
    }
}

/// What is uploaded: the leaf and its chain as one PEM (Certificate Manager's
/// `pemCertificate`), and the key. Read at plan time, kept in memory only; Debug never shows
/// the key.
#[derive(Clone)]
pub struct UploadMaterial {
    pub pem_certificate: String,
    private_key_pem: String,
    pub leaf: Arc<CertFacts>,
    /// Certificates after the leaf.
    pub chain_len: usize,
}

impl std::fmt::Debug for UploadMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UploadMaterial")
            .field(
                "pem_certificate",
                &format!("{} bytes", self.pem_certificate.len()),
            )
            .field("private_key_pem", &"[redacted]")
            .field("leaf", &self.leaf.sha256)
            .field("chain_len", &self.chain_len)
            .finish()
    }
}

/// The exact change an upload makes, for the preview and the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPlan {
    /// `projects/P/locations/L/certificates/NAME`.
    pub name: String,
    pub project: String,
    pub location: String,
    /// Certificate map entries and proxies that serve it (`usedBy`).
    pub used_by: Vec<String>,
    /// The DNS names of the current certificate (all covered by the new one).
    pub old_names: Vec<String>,
    pub old_not_after: Option<i64>,
    pub old_sha256: Option<String>,
    /// The names, expiry, serial, fingerprint and issuer of the new certificate.
    pub names: Vec<String>,
    pub new_not_after: i64,
    pub new_serial: String,
    pub new_sha256: String,
    pub issuer: String,
    pub key: String,
    /// The new certificate's common name or first name.
    pub display_name: String,
    /// The API calls, in order.
    pub calls: Vec<String>,
    pub warnings: Vec<String>,
}

fn refused(message: impl Into<String>) -> ActionError {
    ActionError::not_applicable(message)
}

fn gcp(step: Step, e: GcpError) -> ActionError {
    ActionError::at(step, e.to_string())
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ActionError> {
    std::fs::read(path).map_err(|e| {
        ActionError::at(
            Step::Read,
            format!("cannot read the {what} file {}: {e}", path.display()),
        )
    })
}

/// DER TLV with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

/// A SEC1 `EC PRIVATE KEY` wrapped as PKCS#8 for `curve` (its OID's DER body).
fn sec1_as_pkcs8(sec1: &[u8], curve: &[u8]) -> Vec<u8> {
    // id-ecPublicKey 1.2.840.10045.2.1
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let alg = tlv(0x30, &[tlv(0x06, EC_PUBLIC_KEY), tlv(0x06, curve)].concat());
    tlv(0x30, &[tlv(0x02, &[0]), alg, tlv(0x04, sec1)].concat())
}

/// The public key bits of a private key PEM (PKCS#8, PKCS#1 RSA or SEC1 EC), as a
/// certificate would carry them. `Err` when the PEM holds no key that can be read.
pub fn key_public(key_pem: &[u8]) -> Result<Vec<u8>, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|_| "holds no unencrypted PEM private key".to_owned())?;
    let public = match &key {
        PrivateKeyDer::Sec1(d) => {
            // P-256 1.2.840.10045.3.1.7, P-384 1.3.132.0.34: ring checks the curve.
            const CURVES: [&[u8]; 2] = [
                &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
                &[0x2b, 0x81, 0x04, 0x00, 0x22],
            ];
            CURVES.iter().find_map(|c| {
                let p8 = sec1_as_pkcs8(d.secret_sec1_der(), c);
                crate::sources::keystore::atrest::public_half(&PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(p8),
                ))
            })
        }
        k => crate::sources::keystore::atrest::public_half(k),
    };
    public.ok_or_else(|| {
        "holds a key of a type certdeck cannot read (RSA, ECDSA P-256/P-384 and Ed25519 are read)"
            .to_owned()
    })
}

/// The DNS names of a certificate, lower-case.
fn dns_names(c: &CertFacts) -> Vec<String> {
    c.sans
        .iter()
        .filter_map(|s| match s {
            San::Dns(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// True when `names` (a certificate's DNS names) cover `wanted`: the same name, or a wildcard
/// one label above it. A wanted wildcard is covered by the same wildcard only.
pub fn covers(names: &[String], wanted: &str) -> bool {
    let w = wanted.to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        if n == w {
            return true;
        }
        match (n.strip_prefix("*."), w.starts_with("*.")) {
            (Some(parent), false) => w
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
            _ => false,
        }
    })
}

/// Read and check the files of an upload: the leaf parses, is valid at `now`, and the key is
/// its own. Pure but for reading the files.
pub fn load_material(files: &UploadFiles, now: i64) -> Result<UploadMaterial, ActionError> {
    let cert_pem = read_file(&files.certificate, "certificate")?;
    let key_pem = read_file(&files.private_key, "private key")?;
    let (leaf, certs) = crate::actions::upload_leaf(&files.certificate, &cert_pem, now)?;
    let key_text = String::from_utf8_lossy(&key_pem).into_owned();
    if key_text.contains("ENCRYPTED") {
        return Err(refused(format!(
            "{} is an encrypted key: Certificate Manager takes unencrypted PEM keys only",
            files.private_key.display()
        )));
    }
    let public = key_public(&key_pem)
        .map_err(|why| refused(format!("{} {why}", files.private_key.display())))?;
    if crate::sources::keystore::atrest::cert_public(&leaf).as_deref() != Some(public.as_slice()) {
        return Err(refused(format!(
            "the key in {} does not belong to the certificate in {}",
            files.private_key.display(),
            files.certificate.display()
        )));
    }
    let chain: Vec<Arc<CertFacts>> = match &files.chain {
        Some(p) => {
            let text = read_file(p, "chain")?;
            let (c, problem) = facts::parse_pem_chain(&String::from_utf8_lossy(&text));
            if let Some(why) = problem {
                return Err(ActionError::at(
                    Step::Read,
                    format!("the chain file {} does not parse: {why}", p.display()),
                ));
            }
            c
        }
        None => certs,
    };
    let mut pem = leaf.to_pem();
    for c in &chain {
        pem.push_str(&c.to_pem());
    }
    Ok(UploadMaterial {
        pem_certificate: pem,
        private_key_pem: key_text,
        leaf,
        chain_len: chain.len(),
    })
}

/// The current certificate of `name`, as the API returns it, with its facts and leaf.
struct Current {
    facts: GcpFacts,
    leaf: Option<Arc<CertFacts>>,
}

async fn read_current(client: &Client, name: &str, step: Step) -> Result<Current, ActionError> {
    let c = client
        .get_certificate(name)
        .await
        .map_err(|e| gcp(step, e))?;
    let (project, location) = facts::parse_name(name).unwrap_or_default();
    let f = GcpFacts::from_api(&c, &project, &location);
    let (mut certs, _) = facts::parse_pem_chain(c.pem_certificate.as_deref().unwrap_or_default());
    let leaf = (!certs.is_empty()).then(|| certs.remove(0));
    Ok(Current { facts: f, leaf })
}

/// Plan an upload of `files` into the self-managed certificate `name`: reads the certificate
/// and the files, writes nothing.
pub async fn plan_upload(
    client: &Client,
    name: &str,
    files: &UploadFiles,
    now: i64,
) -> Result<(UploadPlan, UploadMaterial), ActionError> {
    let cur = read_current(client, name, Step::Read).await?;
    if cur.facts.cert_type != "self-managed" {
        return Err(refused(managed_refusal(&cur.facts, now)));
    }
    let material = load_material(files, now)?;
    let leaf = &material.leaf;
    let old_names = match &cur.leaf {
        Some(l) => dns_names(l),
        None => cur
            .facts
            .san_dnsnames
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    };
    let new_names = dns_names(leaf);
    if cur.leaf.as_ref().is_some_and(|l| l.sha256 == leaf.sha256) {
        return Err(refused(format!(
            "{} already holds this certificate (sha256 {})",
            super::clean(name, 200),
            leaf.sha256
        )));
    }
    let missing: Vec<&String> = old_names
        .iter()
        .filter(|n| !covers(&new_names, n))
        .collect();
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(refused(format!(
            "the certificate in {} does not cover {} of the current certificate (it names {}): clients asking for {} would get a certificate that does not match",
            files.certificate.display(),
            list.join(", "),
            if new_names.is_empty() { "no DNS name".to_owned() } else { new_names.join(", ") },
            if list.len() == 1 { "it" } else { "them" }
        )));
    }
    let mut warnings = Vec::new();
    let old_not_after = cur
        .leaf
        .as_ref()
        .map(|l| l.not_after)
        .or(cur.facts.expire_time);
    if let Some(old) = old_not_after.filter(|old| leaf.not_after <= *old) {
        warnings.push(format!(
            "the new certificate expires on {}, not after the current one ({})",
            crate::clock::rfc3339(leaf.not_after),
            crate::clock::rfc3339(old)
        ));
    }
    if !cur.facts.used_by.is_empty() {
        warnings.push(format!(
            "{} consumer(s) serve the new certificate as soon as the operation completes",
            cur.facts.used_by.len()
        ));
    }
    let calls = vec![
        format!(
            "PATCH v1/{name}?updateMask=selfManaged (selfManaged.pemCertificate={}{}, selfManaged.pemPrivateKey={})",
            files.certificate.display(),
            match (&files.chain, material.chain_len) {
                (Some(c), _) => format!(" + {}", c.display()),
                (None, 0) => String::new(),
                (None, n) => format!(" with {n} chain certificate(s)"),
            },
            files.private_key.display()
        ),
        format!("GET v1/projects/{}/locations/{}/operations/… until done", cur.facts.project, cur.facts.location),
        format!("GET v1/{name} (verify: the new sha256 and expireTime)"),
    ];
    let plan = UploadPlan {
        name: name.to_owned(),
        project: cur.facts.project.clone(),
        location: cur.facts.location.clone(),
        used_by: cur.facts.used_by.clone(),
        old_names,
        old_not_after,
        old_sha256: cur.leaf.as_ref().map(|l| l.sha256.clone()),
        names: leaf.sans.iter().map(|s| s.render()).collect(),
        new_not_after: leaf.not_after,
        new_serial: leaf.serial.clone(),
        new_sha256: leaf.sha256.clone(),
        issuer: leaf.issuer.clone(),
        key: leaf.key.clone(),
        display_name: leaf.display_name().to_owned(),
        calls,
        warnings,
    };
    Ok((plan, material))
}

/// Why a Google-managed certificate takes no upload, with what blocks its renewal. Pure.
pub fn managed_refusal(f: &GcpFacts, now: i64) -> String {
    let sentence = facts::renewal_sentence(f, now);
    let blocked = f
        .authorizations
        .iter()
        .any(|a| a.state.as_deref() == Some("FAILED"))
        || f.issue_reason.is_some()
        || f.state.as_deref() == Some("FAILED");
    let fix = if blocked {
        "; fix what blocks it (the domain's DNS authorization or its load balancer records, CAA) and Google retries"
    } else {
        ""
    };
    format!(
        "a Google-managed certificate is renewed by Google only and takes no upload ({sentence}){fix}"
    )
}

/// Upload the planned material, follow the operation, and verify by re-reading.
pub async fn execute_upload(
    client: &Client,
    plan: &UploadPlan,
    material: &UploadMaterial,
    wait: Duration,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let name = plan.name.as_str();
    let keep = "; the previous certificate stays in service";
    rep.step(Step::Read, format!("GET v1/{name}")).await;
    let cur = read_current(client, name, Step::Read).await?;
    let now_sha = cur.leaf.as_ref().map(|l| l.sha256.clone());
    if now_sha != plan.old_sha256 {
        return Err(ActionError::planning(format!(
            "{} changed since the plan (sha256 {} now): plan again",
            super::clean(name, 200),
            now_sha.as_deref().unwrap_or("none")
        )));
    }
    rep.step(
        Step::Write,
        format!("PATCH v1/{name}?updateMask=selfManaged"),
    )
    .await;
    let op = client
        .patch_self_managed(name, &material.pem_certificate, &material.private_key_pem)
        .await
        .map_err(|e| ActionError::at(Step::Write, format!("{e}{keep}")))?;
    let mut op = op;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        rep.step(
            Step::Wait,
            format!(
                "operation {}: {}",
                super::clean(&op.name, 200),
                if op.done { "done" } else { "running" }
            ),
        )
        .await;
        if op.done {
            break;
        }
        if op.name.is_empty() {
            return Err(ActionError::at(
                Step::Wait,
                "the update answered an operation without a name: it cannot be followed",
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ActionError::timeout(
                Step::Wait,
                format!(
                    "operation {} is still running after {}; Certificate Manager keeps working on it (re-read the row to see when it lands)",
                    super::clean(&op.name, 200),
                    humantime::format_duration(wait)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        op = client
            .get_operation(&op.name)
            .await
            .map_err(|e| gcp(Step::Wait, e))?;
    }
    if let Some(e) = &op.error {
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .map(|m| super::clean(m, 300))
            .unwrap_or_else(|| super::clean(&e.to_string(), 300));
        let code = e.get("code").and_then(|c| c.as_i64()).unwrap_or_default();
        return Err(ActionError::at(
            Step::Wait,
            format!("Certificate Manager refused the update (code {code}: {msg}){keep}"),
        ));
    }
    rep.step(Step::Verify, format!("GET v1/{name}")).await;
    let after = read_current(client, name, Step::Verify).await?;
    let sha = after.leaf.as_ref().map(|l| l.sha256.clone());
    if sha.as_deref() != Some(plan.new_sha256.as_str()) {
        return Err(ActionError::at(
            Step::Verify,
            format!(
                "the operation is done but {} holds sha256 {}, not the uploaded {}",
                super::clean(name, 200),
                sha.as_deref().unwrap_or("none"),
                plan.new_sha256
            ),
        ));
    }
    if after
        .facts
        .expire_time
        .is_some_and(|t| t != plan.new_not_after)
    {
        return Err(ActionError::at(
            Step::Verify,
            format!(
                "expireTime is {}, not the uploaded certificate's {}",
                after
                    .facts
                    .expire_time
                    .map(crate::clock::rfc3339)
                    .unwrap_or_default(),
                crate::clock::rfc3339(plan.new_not_after)
            ),
        ));
    }
    Ok(Outcome {
        after_sha256: sha,
        new_not_after: Some(plan.new_not_after),
        message: format!(
            "uploaded: {} holds the new certificate (expires {}){}",
            super::clean(name, 200),
            crate::clock::rfc3339(plan.new_not_after),
            if plan.used_by.is_empty() {
                String::new()
            } else {
                format!(", served by its {} consumer(s)", plan.used_by.len())
            }
        ),
        ..Outcome::default()
    })
}

/// The framework's plan (preview and audit record) of an upload.
pub fn to_plan(p: &UploadPlan, record: &Record, verb: &str) -> Plan {
    let mut plan = Plan::for_record(
        "gcp-upload",
        verb,
        &format!("Upload {} (renewed)", p.display_name),
        record,
        &p.name,
    );
    plan.context = Some(format!("projects/{}/locations/{}", p.project, p.location));
    plan.old_not_after = p.old_not_after.or(plan.old_not_after);
    plan.before_sha256 = p.old_sha256.clone().or(plan.before_sha256);
    plan.new_not_after = Some(p.new_not_after);
    plan.issuer = Some(p.issuer.clone());
    plan.names = p.names.clone();
    plan.details.push(("key".to_owned(), p.key.clone()));
    plan.details
        .push(("old names".to_owned(), p.old_names.join(", ")));
    plan.details
        .push(("new serial".to_owned(), p.new_serial.clone()));
    plan.details
        .push(("new sha256".to_owned(), p.new_sha256.clone()));
    if p.used_by.is_empty() {
        plan.details
            .push(("used by".to_owned(), "nothing".to_owned()));
    }
    for u in &p.used_by {
        plan.details.push(("used by".to_owned(), u.clone()));
    }
    plan.steps_label = "API calls".to_owned();
    plan.steps = p.calls.clone();
    plan.warnings = p.warnings.clone();
    plan.risk = if p.used_by.is_empty() {
        Risk::Change
    } else {
        Risk::Destructive
    };
    plan
}

/// The Certificate Manager rows' actions: `renew` (an upload from the files a `[[gcp.upload]]`
/// entry names) and `upload` for self-managed certificates; for Google-managed ones, `renew`
/// answers what blocks the renewal. Each instance acts on its own project and location.
pub struct GcpBackend {
    pub cell: Arc<ProjectCell>,
    /// The instance's location (None: every location).
    pub location: Option<String>,
    pub uploads: Arc<Vec<UploadConfig>>,
}

impl GcpBackend {
    fn facts_of(&self, record: &Record) -> Option<GcpFacts> {
        let x = record.extra.as_ref().filter(|x| x.key == facts::JSON_KEY)?;
        let f: GcpFacts = serde_json::from_value(x.json.clone()).ok()?;
        let mine = f.kind == "certificate-manager-certificate"
            && f.project == self.cell.settings().project
            && self.location.as_ref().is_none_or(|l| *l == f.location);
        mine.then_some(f)
    }

    fn files_for(&self, name: &str) -> Option<UploadFiles> {
        self.uploads
            .iter()
            .find(|u| u.name == name)
            .map(UploadFiles::from)
    }
}

/// Why a self-managed certificate without a `[[gcp.upload]]` entry cannot be renewed.
fn unmapped(name: &str) -> String {
    format!(
        "self-managed: Google never renews it; name the renewed files in a [[gcp.upload]] entry (name = \"{}\", certificate, private_key, chain) to upload them",
        super::clean(name, 200)
    )
}

impl Backend for GcpBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        let Some(f) = self.facts_of(record) else {
            return Vec::new();
        };
        let now = crate::clock::now_unix();
        if f.cert_type != "self-managed" {
            // Not the row's own action: `renew ID` gets the reason instead of a shrug.
            return vec![Offer {
                verb: "renew".to_owned(),
                title: format!("Renew (unavailable: {})", managed_refusal(&f, now)),
                builtin: false,
            }];
        }
        if self.files_for(&f.name).is_none() {
            return vec![Offer {
                verb: "renew".to_owned(),
                title: format!("Renew (unavailable: {})", unmapped(&f.name)),
                builtin: false,
            }];
        }
        vec![
            Offer {
                verb: "renew".to_owned(),
                title: "Renew by upload (Certificate Manager certificates.patch from files)"
                    .to_owned(),
                builtin: true,
            },
            Offer {
                verb: "upload".to_owned(),
                title: "Upload (Certificate Manager certificates.patch from files)".to_owned(),
                builtin: false,
            },
        ]
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            let f = self.facts_of(record).ok_or_else(|| {
                ActionError::not_applicable("not a Certificate Manager certificate row")
            })?;
            if verb != "renew" && verb != "upload" {
                return Err(ActionError::not_applicable(format!(
                    "Certificate Manager certificates offer renew and upload, not {verb}"
                )));
            }
            let now = crate::clock::now_unix();
            if f.cert_type != "self-managed" {
                return Err(refused(managed_refusal(&f, now)));
            }
            let files = self
                .files_for(&f.name)
                .ok_or_else(|| refused(unmapped(&f.name)))?;
            let mut client = (*self
                .cell
                .get()
                .await
                .map_err(|e| ActionError::planning(e.to_string()))?)
            .clone();
            if let Some(t) = opts.request_timeout {
                client.settings.timeout = t;
            }
            let (up, material) = plan_upload(&client, &f.name, &files, now).await?;
            let plan = to_plan(&up, record, verb);
            let wait = opts.wait;
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(
                        async move { execute_upload(&client, &up, &material, wait, &rep).await },
                    )
                }),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_covered_exactly_or_by_a_wildcard_one_label_up() {
        let n = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(covers(&n(&["www.shop.example"]), "WWW.shop.example"));
        assert!(covers(&n(&["*.shop.example"]), "www.shop.example"));
        assert!(!covers(&n(&["*.shop.example"]), "a.b.shop.example"));
        assert!(!covers(&n(&["*.shop.example"]), "shop.example"));
        assert!(covers(&n(&["*.shop.example"]), "*.shop.example"));
        assert!(!covers(&n(&["www.shop.example"]), "*.shop.example"));
        assert!(!covers(&n(&[]), "www.shop.example"));
    }

    #[test]
    fn keys_match_their_certificate_in_pkcs8_and_sec1_and_others_do_not() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let facts = CertFacts::from_der(cert.der()).unwrap();
        let want = crate::sources::keystore::atrest::cert_public(&facts).unwrap();
        assert_eq!(
            key_public(key.serialize_pem().as_bytes()).unwrap(),
            want,
            "PKCS#8"
        );
        // The same key as SEC1 (`openssl ec` / `ecparam -genkey` output): the PKCS#8's
        // inner ECPrivateKey.
        let p8 = key.serialize_der();
        let inner = {
            // PKCS#8: SEQUENCE { INTEGER, SEQUENCE alg, OCTET STRING ecPrivateKey }
            let i = p8.len() - 1;
            let mut at = None;
            for s in 0..i {
                if p8[s] == 0x04 && p8.get(s + 2) == Some(&0x30) {
                    let len = usize::from(p8[s + 1]);
                    if s + 2 + len == p8.len() {
                        at = Some(s + 2);
                    }
                }
            }
            p8[at.unwrap()..].to_vec()
        };
        let sec1 = format!(
            "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &inner)
        );
        assert_eq!(key_public(sec1.as_bytes()).unwrap(), want, "SEC1");
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        assert_ne!(key_public(other.serialize_pem().as_bytes()).unwrap(), want);
        assert!(key_public(b"not a key").is_err());
    }

    #[test]
    fn material_debug_never_shows_the_key() {
        let ck = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let m = UploadMaterial {
            pem_certificate: ck.cert.pem(),
            private_key_pem: ck.signing_key.serialize_pem(),
            leaf: Arc::new(CertFacts::from_der(ck.cert.der()).unwrap()),
            chain_len: 0,
        };
        let d = format!("{m:?}");
        assert!(
            !d.contains("PRIVATE KEY") && d.contains("[redacted]"),
            "{d}"
        );
    }

    #[test]
    fn a_managed_certificate_is_refused_with_what_blocks_its_renewal() {
        let f = GcpFacts {
            cert_type: "google-managed".into(),
            state: Some("PROVISIONING".into()),
            issue_reason: Some("AUTHORIZATION_ISSUE".into()),
            authorizations: vec![facts::DomainAuthorization {
                domain: "old.shop.example".into(),
                state: Some("FAILED".into()),
                failure_reason: Some("CONFIG".into()),
                details: None,
            }],
            expire_time: Some(1_800_000_000 + 10 * 86_400),
            ..GcpFacts::default()
        };
        let s = managed_refusal(&f, 1_800_000_000);
        assert!(s.contains("takes no upload"), "{s}");
        assert!(
            s.contains("failed authorization for old.shop.example (CONFIG)"),
            "{s}"
        );
        assert!(s.contains("fix what blocks it"), "{s}");
        let ok = GcpFacts {
            cert_type: "google-managed".into(),
            state: Some("ACTIVE".into()),
            expire_time: Some(1_800_000_000 + 60 * 86_400),
            ..GcpFacts::default()
        };
        let s = managed_refusal(&ok, 1_800_000_000);
        assert!(
            s.contains("renews automatically") && !s.contains("fix"),
            "{s}"
        );
    }
}
