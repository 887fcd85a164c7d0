//! ACM actions, as a backend of the one action framework ([`AwsBackend`]) over engines that
//! are plain async functions: plan (reads only, says the exact change), then execute in steps
//! reported through the framework's `Reporter`, then verify by re-reading.
//!
//! - `renew`: RenewCertificate, where the API allows it (private certificates and exportable
//!   public ones, eligible for renewal); otherwise the plan is refused with the reason.
//! - `reimport`: ImportCertificate with the row's CertificateArn, from certificate, key and
//!   chain files. The ARN, so every consumer in InUseBy, stays; the tags are read first and
//!   put back if the import lost any.
//!
//! Every plan lists the InUseBy consumers. A failed step leaves the previous certificate in
//! service (ACM's import is all-or-nothing) and names the step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_acm::primitives::Blob;
use aws_sdk_acm::types::Tag;
use serde::Serialize;

use super::client;
use super::error::{self, AwsError};
use super::facts::{self, AcmFacts};
use super::read::{self, Account};
use super::source::AccountCell;
use crate::actions::{
    ActionError, ActionOptions, Backend, Offer, Outcome as Done, Plan, Prepared, Reporter, Risk,
    Step,
};
use crate::model::{CertFacts, Record};
use crate::sources::BoxFut;

fn refused(message: impl Into<String>) -> ActionError {
    ActionError::not_applicable(message)
}

/// The exact change an action will make, for the preview and the audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmPlan {
    /// `renew` or `reimport`.
    pub verb: &'static str,
    pub title: String,
    pub arn: String,
    pub region: String,
    pub account: String,
    /// The API calls, in order.
    pub calls: Vec<String>,
    /// Who serves this certificate (InUseBy): they pick the new one up with the same ARN.
    pub consumers: Vec<String>,
    pub names: Vec<String>,
    pub key_type: Option<String>,
    pub issuer: Option<String>,
    pub old_not_after: Option<i64>,
    pub old_serial: Option<String>,
    /// For a re-import: what the files hold.
    pub new_not_after: Option<i64>,
    pub new_serial: Option<String>,
    pub new_sha256: Option<String>,
    /// Tags kept across the import.
    pub tags: Vec<(String, String)>,
    pub warnings: Vec<String>,
    /// `low`, `medium`, `high`.
    pub risk: &'static str,
}

/// The result of a finished action, from the re-read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub arn: String,
    pub not_after: Option<i64>,
    pub serial: Option<String>,
    pub sha256: Option<String>,
    pub message: String,
}

/// The files of a re-import. The key's bytes are read at plan time and kept in memory only;
/// Debug never shows them.
#[derive(Clone)]
pub struct ReimportMaterial {
    pub certificate_pem: Vec<u8>,
    pub chain_pem: Option<Vec<u8>>,
    private_key_pem: Vec<u8>,
    pub leaf: Arc<CertFacts>,
}

impl std::fmt::Debug for ReimportMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReimportMaterial")
            .field(
                "certificate_pem",
                &format!("{} bytes", self.certificate_pem.len()),
            )
            .field("chain_pem", &self.chain_pem.as_ref().map(Vec::len))
            .field("private_key_pem", &"[redacted]")
            .field("leaf", &self.leaf.sha256)
            .finish()
    }
}

/// Files to re-import from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReimportFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Default: the certificates after the first in the certificate file, if any.
    pub chain: Option<PathBuf>,
}

fn region_of(arn: &str) -> Result<facts::ArnParts, ActionError> {
    match facts::parse_arn(arn) {
        Some(p) if p.service == "acm" && p.resource.starts_with("certificate/") => Ok(p),
        _ => Err(refused(format!(
            "{} is not an ACM certificate ARN",
            super::clean(arn, 200)
        ))),
    }
}

async fn describe(account: &Account, arn: &str, step: Step) -> Result<AcmFacts, ActionError> {
    let p = region_of(arn)?;
    let acm = client::acm(&account.conf, &p.region);
    let ctx = error::CallContext {
        action: "acm:DescribeCertificate",
        principal: account.identity.arn.as_deref(),
        profile: &account.profile,
        timeout: account.settings.timeout,
        max_attempts: account.settings.max_attempts,
    };
    let out = acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| ActionError::at(step, error::classify(&e, &ctx).to_string()))?;
    let base = AcmFacts {
        arn: arn.to_owned(),
        account: p.account,
        region: p.region,
        profile: account.profile.clone(),
        ..AcmFacts::default()
    };
    match out.certificate() {
        Some(d) => Ok(read::detail_facts(d, base)),
        None => Err(ActionError::at(
            step,
            "acm:DescribeCertificate returned no certificate",
        )),
    }
}

/// Why RenewCertificate cannot be used on a certificate, or `Ok` when it can. Pure.
pub fn renew_allowed(f: &AcmFacts, now: i64) -> Result<(), String> {
    let sentence = facts::renewal_sentence(f, now);
    match f.cert_type.as_deref() {
        Some("IMPORTED") => {
            return Err(
                "ACM cannot renew an imported certificate: renew it where it was issued and re-import it into the same ARN (reimport)"
                    .to_owned(),
            )
        }
        Some("PRIVATE") => {}
        Some("AMAZON_ISSUED") if f.export.as_deref() == Some("ENABLED") => {}
        Some("AMAZON_ISSUED") => {
            return Err(format!(
                "RenewCertificate applies to private and exportable certificates only; ACM renews this Amazon-issued certificate itself ({sentence})"
            ))
        }
        other => {
            return Err(format!(
                "certificate type {} cannot be renewed",
                other.unwrap_or("unknown")
            ))
        }
    }
    if f.status.as_deref() != Some("ISSUED") {
        return Err(format!(
            "only an issued certificate can be renewed; this one is {}",
            f.status.as_deref().unwrap_or("of unknown status")
        ));
    }
    if f.renewal_eligibility.as_deref() != Some("ELIGIBLE") {
        return Err(format!(
            "ACM says the certificate is not eligible for renewal (RenewalEligibility {}): {sentence}",
            f.renewal_eligibility.as_deref().unwrap_or("unknown")
        ));
    }
    Ok(())
}

fn base_plan(verb: &'static str, f: &AcmFacts) -> AcmPlan {
    AcmPlan {
        verb,
        title: String::new(),
        arn: f.arn.clone(),
        region: f.region.clone(),
        account: f.account.clone(),
        calls: Vec::new(),
        consumers: f.in_use_by.clone(),
        names: f.domain_name.iter().cloned().collect(),
        key_type: f.key_algorithm.clone(),
        issuer: None,
        old_not_after: f.not_after,
        old_serial: f.serial.clone(),
        new_not_after: None,
        new_serial: None,
        new_sha256: None,
        tags: Vec::new(),
        warnings: Vec::new(),
        risk: if f.in_use_by.is_empty() {
            "low"
        } else {
            "medium"
        },
    }
}

/// Plan a RenewCertificate: eligibility checked first and explained when absent.
pub async fn plan_renew(account: &Account, arn: &str) -> Result<AcmPlan, ActionError> {
    let f = describe(account, arn, Step::Read).await?;
    let now = crate::clock::now_unix();
    renew_allowed(&f, now).map_err(refused)?;
    let mut plan = base_plan("renew", &f);
    plan.title = format!(
        "Renew {} ({}) in {}",
        f.domain_name.as_deref().unwrap_or("certificate"),
        f.cert_type.as_deref().unwrap_or("-"),
        f.region
    );
    plan.calls = vec![
        format!("acm:RenewCertificate CertificateArn={arn}"),
        format!("acm:DescribeCertificate CertificateArn={arn} (until RenewalSummary is SUCCESS and NotAfter moves)"),
    ];
    if let Some(ca) = &f.certificate_authority_arn {
        plan.issuer = Some(ca.clone());
        plan.warnings.push(format!(
            "the private CA {ca} must allow ACM (acm.amazonaws.com) to issue for renewal"
        ));
    }
    Ok(plan)
}

/// Run a planned renewal, then wait up to `wait` for ACM to show the renewed certificate.
pub async fn execute_renew(
    account: &Account,
    plan: &AcmPlan,
    wait: Duration,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let p = region_of(&plan.arn)?;
    let acm = client::acm(&account.conf, &p.region);
    rep.step(Step::Write, format!("RenewCertificate {}", plan.arn))
        .await;
    let ctx = error::CallContext {
        action: "acm:RenewCertificate",
        principal: account.identity.arn.as_deref(),
        profile: &account.profile,
        timeout: account.settings.timeout,
        max_attempts: account.settings.max_attempts,
    };
    acm.renew_certificate()
        .certificate_arn(&plan.arn)
        .send()
        .await
        .map_err(|e| ActionError::at(Step::Write, error::classify(&e, &ctx).to_string()))?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let f = describe(account, &plan.arn, Step::Verify).await?;
        let moved = f.not_after != plan.old_not_after || f.serial != plan.old_serial;
        let status = f.renewal_summary.as_ref().map(|r| r.status.as_str());
        rep.step(
            Step::Verify,
            format!(
                "RenewalSummary {}, NotAfter {}",
                status.unwrap_or("-"),
                f.not_after.map(crate::clock::rfc3339).unwrap_or_default()
            ),
        )
        .await;
        if status == Some("FAILED") {
            return Err(ActionError::at(
                Step::Verify,
                format!(
                    "ACM reports the renewal FAILED ({}); the previous certificate stays in service",
                    f.renewal_summary
                        .as_ref()
                        .and_then(|r| r.reason.clone())
                        .unwrap_or_else(|| "no reason given".to_owned())
                ),
            ));
        }
        if moved {
            return Ok(Outcome {
                arn: plan.arn.clone(),
                not_after: f.not_after,
                serial: f.serial,
                sha256: None,
                message: "renewed: DescribeCertificate shows the new certificate".to_owned(),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ActionError::at(
                Step::Verify,
                format!(
                    "RenewCertificate was accepted but DescribeCertificate still shows the old certificate after {}",
                    humantime::format_duration(wait)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, ActionError> {
    std::fs::read(path).map_err(|e| {
        ActionError::at(
            Step::Read,
            format!("cannot read the {what} file {}: {e}", path.display()),
        )
    })
}

/// The subjectPublicKeyInfo of a certificate's DER.
fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, c) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    Some(c.tbs_certificate.subject_pki.raw.to_vec())
}

/// Read and check the files of a re-import: the leaf parses, is valid now, and matches the key
/// (for PKCS#8 keys; ACM checks every key itself).
pub fn load_material(
    files: &ReimportFiles,
    now: i64,
) -> Result<(ReimportMaterial, Vec<String>), ActionError> {
    let cert_pem = read_file(&files.certificate, "certificate")?;
    let key_pem = read_file(&files.private_key, "private key")?;
    let (leaf, certs) = crate::actions::upload_leaf(&files.certificate, &cert_pem, now)?;
    let mut warnings = Vec::new();
    let key_text = String::from_utf8_lossy(&key_pem);
    if !key_text.contains("PRIVATE KEY-----") {
        return Err(ActionError::at(
            Step::Read,
            format!("{} holds no PEM private key", files.private_key.display()),
        ));
    }
    if key_text.contains("ENCRYPTED") {
        return Err(refused(format!(
            "{} is an encrypted key: ACM imports unencrypted keys only",
            files.private_key.display()
        )));
    }
    match rcgen::KeyPair::from_pem(&key_text) {
        Ok(kp) => {
            if spki_of(&leaf.der).as_deref()
                != Some(rcgen::PublicKeyData::subject_public_key_info(&kp).as_slice())
            {
                return Err(refused(format!(
                    "the key in {} does not belong to the certificate in {}",
                    files.private_key.display(),
                    files.certificate.display()
                )));
            }
        }
        Err(_) => warnings.push(
            "the key is not PKCS#8: its match with the certificate is checked by ACM at import"
                .to_owned(),
        ),
    }
    // The chain: the chain file, else the rest of the certificate file.
    let chain_pem = match &files.chain {
        Some(p) => Some(read_file(p, "chain")?),
        None if !certs.is_empty() => Some(
            certs
                .iter()
                .map(|c| c.to_pem())
                .collect::<String>()
                .into_bytes(),
        ),
        None => None,
    };
    Ok((
        ReimportMaterial {
            certificate_pem: leaf.to_pem().into_bytes(),
            chain_pem,
            private_key_pem: key_pem,
            leaf,
        },
        warnings,
    ))
}

async fn list_tags(
    account: &Account,
    acm: &aws_sdk_acm::Client,
    arn: &str,
    step: Step,
) -> Result<Vec<(String, String)>, ActionError> {
    let ctx = error::CallContext {
        action: "acm:ListTagsForCertificate",
        principal: account.identity.arn.as_deref(),
        profile: &account.profile,
        timeout: account.settings.timeout,
        max_attempts: account.settings.max_attempts,
    };
    let out = acm
        .list_tags_for_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(|e| ActionError::at(step, error::classify(&e, &ctx).to_string()))?;
    Ok(out
        .tags()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
        .collect())
}

/// Plan a re-import of `files` into the imported certificate `arn`.
pub async fn plan_reimport(
    account: &Account,
    arn: &str,
    files: &ReimportFiles,
) -> Result<(AcmPlan, ReimportMaterial), ActionError> {
    let now = crate::clock::now_unix();
    let f = describe(account, arn, Step::Read).await?;
    if f.cert_type.as_deref() != Some("IMPORTED") {
        return Err(refused(format!(
            "only imported certificates can be re-imported; this one is {} ({})",
            f.cert_type.as_deref().unwrap_or("of unknown type"),
            facts::renewal_sentence(&f, now)
        )));
    }
    let (material, mut warnings) = load_material(files, now)?;
    let p = region_of(arn)?;
    let acm = client::acm(&account.conf, &p.region);
    let tags = list_tags(account, &acm, arn, Step::Read).await?;
    let leaf = &material.leaf;
    let mut plan = base_plan("reimport", &f);
    plan.title = format!(
        "Re-import {} into {}",
        leaf.display_name(),
        super::clean(arn, 200)
    );
    plan.names = leaf.sans.iter().map(|s| s.render()).collect();
    if plan.names.is_empty() {
        plan.names = leaf.common_name.iter().cloned().collect();
    }
    plan.key_type = Some(leaf.key.clone());
    plan.issuer = Some(leaf.issuer.clone());
    plan.new_not_after = Some(leaf.not_after);
    plan.new_serial = Some(leaf.serial.clone());
    plan.new_sha256 = Some(leaf.sha256.clone());
    plan.calls = vec![
        format!(
            "acm:ImportCertificate CertificateArn={arn} Certificate={} PrivateKey={}{}",
            files.certificate.display(),
            files.private_key.display(),
            match (&files.chain, &material.chain_pem) {
                (Some(c), _) => format!(" CertificateChain={}", c.display()),
                (None, Some(_)) => " CertificateChain=(rest of the certificate file)".to_owned(),
                (None, None) => String::new(),
            }
        ),
        format!(
            "acm:ListTagsForCertificate CertificateArn={arn} (tags kept: {})",
            tags.len()
        ),
        format!("acm:AddTagsToCertificate CertificateArn={arn} (only tags the import lost)"),
        format!("acm:DescribeCertificate + acm:GetCertificate CertificateArn={arn} (verify)"),
    ];
    if let (Some(old), Some(new)) = (f.not_after, plan.new_not_after) {
        if new <= old {
            warnings.push(format!(
                "the new certificate expires on {}, not after the current one ({})",
                crate::clock::rfc3339(new),
                crate::clock::rfc3339(old)
            ));
        }
    }
    if let Some(d) = &f.domain_name {
        let covers = leaf.common_name.as_deref() == Some(d.as_str())
            || leaf.sans.iter().any(|s| s.value() == d);
        if !covers {
            warnings.push(format!(
                "the new certificate does not name {d}, the current one's domain"
            ));
        }
    }
    if !plan.consumers.is_empty() {
        plan.risk = "high";
        warnings.push(format!(
            "{} consumer(s) serve the new certificate as soon as it is imported",
            plan.consumers.len()
        ));
    }
    plan.tags = tags;
    plan.warnings = warnings;
    Ok((plan, material))
}

/// Import the planned material into the ARN, put back lost tags, and verify by re-reading.
pub async fn execute_reimport(
    account: &Account,
    plan: &AcmPlan,
    material: &ReimportMaterial,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let p = region_of(&plan.arn)?;
    let acm = client::acm(&account.conf, &p.region);
    rep.step(Step::Write, format!("ImportCertificate into {}", plan.arn))
        .await;
    let ctx = error::CallContext {
        action: "acm:ImportCertificate",
        principal: account.identity.arn.as_deref(),
        profile: &account.profile,
        timeout: account.settings.timeout,
        max_attempts: account.settings.max_attempts,
    };
    acm.import_certificate()
        .certificate_arn(&plan.arn)
        .certificate(Blob::new(material.certificate_pem.clone()))
        .private_key(Blob::new(material.private_key_pem.clone()))
        .set_certificate_chain(material.chain_pem.clone().map(Blob::new))
        .send()
        .await
        .map_err(|e| {
            ActionError::at(
                Step::Write,
                format!(
                    "{}; the previous certificate stays in service",
                    error::classify(&e, &ctx)
                ),
            )
        })?;
    // Tags: ACM keeps them on re-import; put back any that are gone.
    let now_tags = list_tags(account, &acm, &plan.arn, Step::Write).await?;
    let lost: Vec<&(String, String)> = plan.tags.iter().filter(|t| !now_tags.contains(t)).collect();
    if !lost.is_empty() {
        rep.step(
            Step::Write,
            format!(
                "AddTagsToCertificate ({} tag(s) lost in the import)",
                lost.len()
            ),
        )
        .await;
        let ctx = error::CallContext {
            action: "acm:AddTagsToCertificate",
            ..ctx.clone()
        };
        let tags: Vec<Tag> = lost
            .iter()
            .filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok())
            .collect();
        acm.add_tags_to_certificate()
            .certificate_arn(&plan.arn)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| ActionError::at(Step::Write, error::classify(&e, &ctx).to_string()))?;
    }
    rep.step(
        Step::Verify,
        "DescribeCertificate and GetCertificate".to_owned(),
    )
    .await;
    let f = describe(account, &plan.arn, Step::Verify).await?;
    let ctx = error::CallContext {
        action: "acm:GetCertificate",
        ..ctx
    };
    let got = acm
        .get_certificate()
        .certificate_arn(&plan.arn)
        .send()
        .await
        .map_err(|e| ActionError::at(Step::Verify, error::classify(&e, &ctx).to_string()))?;
    let (certs, _) = read::parse_pem_chain(got.certificate().unwrap_or_default());
    let sha = certs.first().map(|c| c.sha256.clone());
    if sha.as_deref() != Some(material.leaf.sha256.as_str()) {
        return Err(ActionError::at(
            Step::Verify,
            "GetCertificate does not return the imported certificate",
        ));
    }
    if f.not_after != Some(material.leaf.not_after) {
        return Err(ActionError::at(
            Step::Verify,
            format!(
                "DescribeCertificate shows NotAfter {}, not the imported {}",
                f.not_after.map(crate::clock::rfc3339).unwrap_or_default(),
                crate::clock::rfc3339(material.leaf.not_after)
            ),
        ));
    }
    let after_tags = list_tags(account, &acm, &plan.arn, Step::Verify).await?;
    if let Some(t) = plan.tags.iter().find(|t| !after_tags.contains(t)) {
        return Err(ActionError::at(
            Step::Verify,
            format!(
                "tag {} is missing after the import",
                super::clean(&t.0, 128)
            ),
        ));
    }
    Ok(Outcome {
        arn: plan.arn.clone(),
        not_after: f.not_after,
        serial: f.serial,
        sha256: sha,
        message: format!(
            "re-imported: ACM serves the new certificate (expires {}), {} tag(s) kept",
            crate::clock::rfc3339(material.leaf.not_after),
            plan.tags.len()
        ),
    })
}

/// Open the account for an action on an ARN (its region is the ARN's).
pub async fn account_for(settings: &super::AwsSettings, arn: &str) -> Result<Account, ActionError> {
    let p = region_of(arn)?;
    let mut s = settings.clone();
    s.regions = super::RegionChoice::List(vec![p.region]);
    Account::open(&s)
        .await
        .map_err(|e: AwsError| ActionError::at(Step::Read, e.to_string()))
}

/// The AWS rows' actions in the framework: `renew` (RenewCertificate where the API allows it,
/// or a re-import from the files a `[[aws.reimport]]` entry names for an imported ARN), and
/// `reimport`. Each instance offers actions for its own profile and region only.
pub struct AwsBackend {
    pub cell: Arc<AccountCell>,
    /// The instance's region (None: the profile's).
    pub region: Option<String>,
    pub reimports: Arc<Vec<super::settings::ReimportConfig>>,
}

impl AwsBackend {
    fn facts_of(&self, record: &Record) -> Option<AcmFacts> {
        let x = record.extra.as_ref().filter(|x| x.key == facts::JSON_KEY)?;
        let f: AcmFacts = serde_json::from_value(x.json.clone()).ok()?;
        let mine = f.kind == "acm-certificate"
            && f.profile == self.cell.settings().profile_label()
            && self.region.as_ref().is_none_or(|r| *r == f.region);
        mine.then_some(f)
    }

    fn files_for(&self, arn: &str) -> Option<ReimportFiles> {
        self.reimports
            .iter()
            .find(|r| r.arn == arn)
            .map(|r| ReimportFiles {
                certificate: r.certificate.clone(),
                private_key: r.private_key.clone(),
                chain: r.chain.clone(),
            })
    }
}

impl Backend for AwsBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        let Some(f) = self.facts_of(record) else {
            return Vec::new();
        };
        let now = crate::clock::now_unix();
        let mut out = Vec::new();
        let mapped = self.files_for(&f.arn).is_some();
        match renew_allowed(&f, now) {
            Ok(()) => out.push(Offer {
                verb: "renew".to_owned(),
                title: "Renew (ACM RenewCertificate)".to_owned(),
                builtin: true,
            }),
            Err(_) if f.cert_type.as_deref() == Some("IMPORTED") && mapped => {
                out.push(Offer {
                    verb: "renew".to_owned(),
                    title: "Renew by re-import (ACM ImportCertificate from files)".to_owned(),
                    builtin: true,
                });
                out.push(Offer {
                    verb: "reimport".to_owned(),
                    title: "Re-import (ACM ImportCertificate from files)".to_owned(),
                    builtin: false,
                });
            }
            // Not the row's own action, but `renew ID` gets the reason instead of a shrug.
            Err(why) => out.push(Offer {
                verb: "renew".to_owned(),
                title: format!("Renew (unavailable: {why})"),
                builtin: false,
            }),
        }
        out
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            let f = self
                .facts_of(record)
                .ok_or_else(|| ActionError::not_applicable("not an ACM certificate row"))?;
            let mut settings = self.cell.settings().clone();
            if let Some(t) = opts.request_timeout {
                settings.timeout = t;
            }
            let account = Arc::new(
                self.cell
                    .get()
                    .await
                    .map_err(|e| ActionError::planning(e.to_string()))?,
            );
            let files = self.files_for(&f.arn);
            let reimport = verb == "reimport"
                || (verb == "renew" && renew_allowed(&f, crate::clock::now_unix()).is_err());
            if !reimport {
                let acm_plan = plan_renew(&account, &f.arn).await?;
                let plan = to_plan(&acm_plan, record, &account);
                let wait = opts.wait;
                return Ok(Prepared {
                    plan,
                    job: Box::new(move |rep| {
                        Box::pin(async move {
                            let o = execute_renew(&account, &acm_plan, wait, &rep).await?;
                            Ok(done(o))
                        })
                    }),
                });
            }
            let Some(files) = files else {
                let why = renew_allowed(&f, crate::clock::now_unix())
                    .err()
                    .unwrap_or_default();
                return Err(ActionError::not_applicable(format!(
                    "{why}; name the renewed files in a [[aws.reimport]] entry (arn, certificate, private_key, chain) to re-import them"
                )));
            };
            let (acm_plan, material) = plan_reimport(&account, &f.arn, &files).await?;
            let plan = to_plan(&acm_plan, record, &account);
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move {
                        let o = execute_reimport(&account, &acm_plan, &material, &rep).await?;
                        Ok(done(o))
                    })
                }),
            })
        })
    }
}

fn done(o: Outcome) -> Done {
    Done {
        after_sha256: o.sha256,
        new_not_after: o.not_after,
        message: o.message,
        ..Done::default()
    }
}

/// The framework's plan (the preview and the audit record) for an ACM plan.
pub fn to_plan(p: &AcmPlan, record: &Record, account: &Account) -> Plan {
    let action = if p.verb == "renew" {
        "aws-renew"
    } else {
        "aws-reimport"
    };
    let mut plan = Plan::for_record(action, p.verb, &p.title, record, &p.arn);
    plan.context = Some(format!(
        "{}/{} (profile {})",
        if p.account.is_empty() {
            "-"
        } else {
            &p.account
        },
        p.region,
        account.profile
    ));
    plan.identity = account.identity.arn.clone();
    plan.old_not_after = p.old_not_after.or(plan.old_not_after);
    plan.new_not_after = p.new_not_after;
    if p.new_not_after.is_none() {
        plan.new_expiry_note = Some("as ACM or the private CA decides".to_owned());
    }
    plan.issuer = p.issuer.clone();
    plan.names = p.names.clone();
    if let Some(k) = &p.key_type {
        plan.details.push(("key".to_owned(), k.clone()));
    }
    if p.consumers.is_empty() {
        plan.details
            .push(("in use by".to_owned(), "nothing".to_owned()));
    }
    for c in &p.consumers {
        plan.details.push(("in use by".to_owned(), c.clone()));
    }
    if !p.tags.is_empty() {
        let t: Vec<String> = p.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        plan.details.push(("tags kept".to_owned(), t.join(", ")));
    }
    if let Some(s) = &p.new_sha256 {
        plan.details.push(("new sha256".to_owned(), s.clone()));
    }
    plan.steps_label = "API calls".to_owned();
    plan.steps = p.calls.clone();
    plan.warnings = p.warnings.clone();
    plan.risk = if p.consumers.is_empty() {
        Risk::Change
    } else {
        Risk::Destructive
    };
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(t: &str, status: &str, elig: &str, export: &str) -> AcmFacts {
        AcmFacts {
            arn: "arn:aws:acm:us-east-1:123456789012:certificate/x".into(),
            cert_type: Some(t.into()),
            status: Some(status.into()),
            renewal_eligibility: Some(elig.into()),
            export: Some(export.into()),
            not_after: Some(2_000_000_000),
            ..AcmFacts::default()
        }
    }

    #[test]
    fn renew_is_for_eligible_private_and_exportable_certificates_only() {
        let now = 1_900_000_000;
        assert!(renew_allowed(&f("PRIVATE", "ISSUED", "ELIGIBLE", "DISABLED"), now).is_ok());
        assert!(renew_allowed(&f("AMAZON_ISSUED", "ISSUED", "ELIGIBLE", "ENABLED"), now).is_ok());
        let e =
            renew_allowed(&f("AMAZON_ISSUED", "ISSUED", "ELIGIBLE", "DISABLED"), now).unwrap_err();
        assert!(
            e.contains("ACM renews this Amazon-issued certificate itself"),
            "{e}"
        );
        let e = renew_allowed(&f("IMPORTED", "ISSUED", "INELIGIBLE", "DISABLED"), now).unwrap_err();
        assert!(e.contains("re-import"), "{e}");
        let e = renew_allowed(&f("PRIVATE", "ISSUED", "INELIGIBLE", "DISABLED"), now).unwrap_err();
        assert!(e.contains("not eligible"), "{e}");
        let e = renew_allowed(&f("PRIVATE", "REVOKED", "ELIGIBLE", "DISABLED"), now).unwrap_err();
        assert!(e.contains("REVOKED"), "{e}");
    }

    #[test]
    fn material_debug_never_shows_the_key() {
        let ck = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
        let leaf = Arc::new(CertFacts::from_der(ck.cert.der()).unwrap());
        let m = ReimportMaterial {
            certificate_pem: ck.cert.pem().into_bytes(),
            chain_pem: None,
            private_key_pem: ck.signing_key.serialize_pem().into_bytes(),
            leaf,
        };
        let d = format!("{m:?}");
        assert!(
            !d.contains("PRIVATE KEY") && d.contains("[redacted]"),
            "{d}"
        );
    }
}
