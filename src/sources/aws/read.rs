//! The ACM and ACM PCA reader, for one account and region:
//! ListCertificates (every key type, every status, paged), DescribeCertificate and
//! GetCertificate per certificate with bounded concurrency (throttling and 5xx retried by the
//! SDK with backoff), then ListCertificateAuthorities and each CA's certificate.
//!
//! Records are sent as soon as each certificate is read; in memory there is at most one page
//! of summaries and `concurrency` certificates in flight, whatever the account holds.

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_acm::types::{CertificateStatus, Filters, KeyAlgorithm};
use tokio::sync::Semaphore;

use super::client::{self, Identity};
use super::error::{self, AwsError, CallContext, ProblemClass};
use super::facts::{self, AcmFacts, DomainValidation, PcaFacts, RenewalSummary};
use super::settings::{AwsSettings, RegionChoice, ACM_REGIONS};
use crate::model::Record;
use crate::sources::Sink;

/// Every ACM certificate status: ListCertificates filters by status when asked.
pub const ALL_STATUSES: [&str; 7] = [
    "PENDING_VALIDATION",
    "ISSUED",
    "INACTIVE",
    "EXPIRED",
    "VALIDATION_TIMED_OUT",
    "REVOKED",
    "FAILED",
];

/// Every key type: without `Includes.keyTypes`, ListCertificates returns RSA_2048 only.
pub const ALL_KEY_TYPES: [&str; 7] = [
    "RSA_1024",
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "EC_prime256v1",
    "EC_secp384r1",
    "EC_secp521r1",
];

/// Statuses whose certificates have an issued body GetCertificate can return.
const HAS_BODY: [&str; 4] = ["ISSUED", "EXPIRED", "REVOKED", "INACTIVE"];

/// One account, ready to read: its config, who it is, its settings.
#[derive(Clone)]
pub struct Account {
    pub conf: SdkConfig,
    pub settings: AwsSettings,
    pub profile: String,
    pub identity: Identity,
}

impl std::fmt::Debug for Account {
    // The SdkConfig holds the credentials provider: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("profile", &self.profile)
            .field("identity", &self.identity)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// Load the account's config and check its credentials. The region is the first one the
    /// settings name (assume-role and STS calls need one), else the AWS CLI's default.
    pub async fn open(settings: &AwsSettings) -> Result<Account, AwsError> {
        let first = match &settings.regions {
            RegionChoice::List(v) => v.first().map(String::as_str),
            RegionChoice::All => Some("us-east-1"),
            RegionChoice::Default => None,
        };
        let conf = client::load(settings, first).await;
        let profile = settings.profile_label();
        if conf.region().is_none() {
            return Err(AwsError::NoRegion { profile });
        }
        client::check_credentials(&conf, settings).await?;
        let identity = match client::identity(&conf, settings).await {
            Ok(i) => i,
            Err(e) if e.class() == ProblemClass::Unauthorized => return Err(e),
            Err(e) => {
                tracing::debug!("aws profile {profile}: GetCallerIdentity failed: {e}");
                Identity::default()
            }
        };
        Ok(Account {
            conf,
            settings: settings.clone(),
            profile,
            identity,
        })
    }

    /// The regions to read.
    pub fn regions(&self) -> Vec<String> {
        match &self.settings.regions {
            RegionChoice::List(v) => v.clone(),
            RegionChoice::All => ACM_REGIONS.iter().map(|r| (*r).to_owned()).collect(),
            RegionChoice::Default => self
                .conf
                .region()
                .map(|r| vec![r.to_string()])
                .unwrap_or_default(),
        }
    }

    /// `123456789012/eu-west-1`, or `profile P/eu-west-1` when the account is not known.
    pub fn instance_label(&self, region: &str) -> String {
        match &self.identity.account {
            Some(a) => format!("{a}/{region}"),
            None => format!("profile {}/{region}", self.profile),
        }
    }

    fn ctx<'a>(&'a self, action: &'a str) -> CallContext<'a> {
        CallContext {
            action,
            principal: self.identity.arn.as_deref(),
            profile: &self.profile,
            timeout: self.settings.timeout,
            max_attempts: self.settings.max_attempts,
        }
    }
}

/// What one region's round read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RegionOutcome {
    /// Certificate rows sent (with or without a certificate body).
    pub certificates: usize,
    /// Private CA rows sent.
    pub private_cas: usize,
    /// Rows that are errors (the certificate could not be described or read).
    pub failed: usize,
    /// A problem of the whole region although some rows were read (permission missing for
    /// some calls, a page failing half way, ACM PCA denied). `None`: the round is complete.
    pub problem: Option<AwsError>,
}

fn statuses() -> Vec<CertificateStatus> {
    ALL_STATUSES
        .iter()
        .map(|s| CertificateStatus::from(*s))
        .collect()
}

fn key_types() -> Vec<KeyAlgorithm> {
    ALL_KEY_TYPES
        .iter()
        .map(|s| KeyAlgorithm::from(*s))
        .collect()
}

/// Read one region: every certificate (rows sent on `tx`), then its private CAs. `Err` when
/// nothing could be listed; `Ok` with a problem when the round is incomplete.
pub async fn read_region(
    account: &Account,
    region: &str,
    sink: &Sink,
) -> Result<RegionOutcome, AwsError> {
    let acm = client::acm(&account.conf, region);
    let mut outcome = RegionOutcome::default();
    let sem = Arc::new(Semaphore::new(account.settings.concurrency));
    let mut tasks: tokio::task::JoinSet<(bool, Option<AwsError>)> = tokio::task::JoinSet::new();
    let mut next: Option<String> = None;
    let mut page = 0usize;
    let mut row_problem: Option<AwsError> = None;
    let mut row_problems = 0usize;
    let list_error = loop {
        page += 1;
        let ctx = account.ctx("acm:ListCertificates");
        let resp = acm
            .list_certificates()
            .set_certificate_statuses(Some(statuses()))
            .includes(Filters::builder().set_key_types(Some(key_types())).build())
            .max_items(account.settings.page_size)
            .set_next_token(next.take())
            .send()
            .await;
        let out = match resp {
            Ok(o) => o,
            Err(e) => break Some(error::classify(&e, &ctx)),
        };
        for s in out.certificate_summary_list() {
            let Some(arn) = s.certificate_arn() else {
                continue;
            };
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let summary = summary_facts(s, account, region, arn);
            let (acm, account2, sink) = (acm.clone(), account.clone(), sink.clone());
            outcome.certificates += 1;
            tasks.spawn(async move {
                let (rec, problem) = observe_certificate(&acm, &account2, summary).await;
                let is_error = rec.error.is_some();
                let _ = sink.observed(rec).await;
                drop(permit);
                (is_error, problem)
            });
            while let Some(r) = tasks.try_join_next() {
                collect(r, &mut row_problem, &mut row_problems, &mut outcome.failed);
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => break None,
        }
    };
    while let Some(r) = tasks.join_next().await {
        collect(r, &mut row_problem, &mut row_problems, &mut outcome.failed);
    }
    if let Some(e) = list_error {
        if page == 1 {
            return Err(e);
        }
        outcome.problem = Some(AwsError::Other(format!(
            "ListCertificates page {page} failed after {} certificates were read: {e}",
            outcome.certificates
        )));
        return Ok(outcome);
    }
    if let Some(p) = row_problem {
        outcome.problem = Some(if row_problems > 1 {
            AwsError::Other(format!(
                "{row_problems} of {} certificates could not be read: {p}",
                outcome.certificates
            ))
        } else {
            p
        });
    }
    if account.settings.private_cas {
        match read_private_cas(account, region, sink).await {
            Ok(n) => outcome.private_cas = n,
            Err(e) => {
                if outcome.problem.is_none() {
                    outcome.problem = Some(e);
                }
            }
        }
    }
    Ok(outcome)
}

fn collect(
    r: Result<(bool, Option<AwsError>), tokio::task::JoinError>,
    first: &mut Option<AwsError>,
    count: &mut usize,
    failed: &mut usize,
) {
    match r {
        Ok((is_error, problem)) => {
            *failed += usize::from(is_error);
            if let Some(e) = problem {
                *count += 1;
                if first.is_none() {
                    *first = Some(e);
                }
            }
        }
        Err(e) => {
            *failed += 1;
            tracing::error!("aws certificate task failed: {e}");
        }
    }
}

fn secs(t: Option<&aws_sdk_acm::primitives::DateTime>) -> Option<i64> {
    t.map(|t| t.secs())
}

/// The facts ListCertificates already gives, used when DescribeCertificate fails.
fn summary_facts(
    s: &aws_sdk_acm::types::CertificateSummary,
    account: &Account,
    region: &str,
    arn: &str,
) -> AcmFacts {
    let parts = facts::parse_arn(arn);
    AcmFacts {
        arn: arn.to_owned(),
        account: parts
            .as_ref()
            .map(|p| p.account.clone())
            .or_else(|| account.identity.account.clone())
            .unwrap_or_default(),
        region: parts
            .map(|p| p.region)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| region.to_owned()),
        profile: account.profile.clone(),
        cert_type: s.r#type().map(|t| t.as_str().to_owned()),
        status: s.status().map(|t| t.as_str().to_owned()),
        domain_name: s.domain_name().map(str::to_owned),
        renewal_eligibility: s.renewal_eligibility().map(|t| t.as_str().to_owned()),
        key_algorithm: s.key_algorithm().map(|t| t.as_str().to_owned()),
        not_before: secs(s.not_before()),
        not_after: secs(s.not_after()),
        export: s.export_option().map(|t| t.as_str().to_owned()),
        managed_by: s.managed_by().map(|t| t.as_str().to_owned()),
        imported_at: secs(s.imported_at()),
        issued_at: secs(s.issued_at()),
        revoked_at: secs(s.revoked_at()),
        ..AcmFacts::default()
    }
}

/// Facts from DescribeCertificate over the summary's.
pub fn detail_facts(d: &aws_sdk_acm::types::CertificateDetail, base: AcmFacts) -> AcmFacts {
    let s = |v: Option<&str>| v.map(str::to_owned);
    AcmFacts {
        cert_type: d.r#type().map(|t| t.as_str().to_owned()).or(base.cert_type),
        status: d.status().map(|t| t.as_str().to_owned()).or(base.status),
        domain_name: s(d.domain_name()).or(base.domain_name),
        in_use_by: d.in_use_by().to_vec(),
        renewal_eligibility: d
            .renewal_eligibility()
            .map(|t| t.as_str().to_owned())
            .or(base.renewal_eligibility),
        renewal_summary: d.renewal_summary().map(|r| RenewalSummary {
            status: r.renewal_status().as_str().to_owned(),
            reason: r.renewal_status_reason().map(|x| x.as_str().to_owned()),
            updated_at: Some(r.updated_at().secs()),
            pending_domains: r
                .domain_validation_options()
                .iter()
                .filter(|v| v.validation_status().map(|x| x.as_str()) != Some("SUCCESS"))
                .map(|v| DomainValidation {
                    domain: v.domain_name().to_owned(),
                    status: v.validation_status().map(|x| x.as_str().to_owned()),
                    method: v.validation_method().map(|x| x.as_str().to_owned()),
                })
                .collect(),
        }),
        failure_reason: d.failure_reason().map(|x| x.as_str().to_owned()),
        key_algorithm: d
            .key_algorithm()
            .map(|t| t.as_str().to_owned())
            .or(base.key_algorithm),
        not_before: secs(d.not_before()).or(base.not_before),
        not_after: secs(d.not_after()).or(base.not_after),
        serial: s(d.serial()),
        export: d
            .options()
            .and_then(|o| o.export())
            .map(|x| x.as_str().to_owned())
            .or(base.export),
        certificate_authority_arn: s(d.certificate_authority_arn()),
        managed_by: d
            .managed_by()
            .map(|x| x.as_str().to_owned())
            .or(base.managed_by),
        imported_at: secs(d.imported_at()).or(base.imported_at),
        issued_at: secs(d.issued_at()).or(base.issued_at),
        revoked_at: secs(d.revoked_at()).or(base.revoked_at),
        revocation_reason: d.revocation_reason().map(|x| x.as_str().to_owned()),
        ..base
    }
}

pub use crate::sources::pem::parse_chain as parse_pem_chain;

/// Describe one certificate and fetch its body. Returns the row and, for errors that are
/// the instance's (credentials, permissions, throttling), the error for the problem line.
pub async fn observe_certificate(
    acm: &aws_sdk_acm::Client,
    account: &Account,
    summary: AcmFacts,
) -> (Record, Option<AwsError>) {
    let now = crate::clock::now_unix();
    let arn = summary.arn.clone();
    let ctx = account.ctx("acm:DescribeCertificate");
    let desc = acm
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await;
    let facts = match desc {
        Ok(out) => match out.certificate() {
            Some(d) => detail_facts(d, summary),
            None => summary,
        },
        Err(e) => {
            let err = error::classify(&e, &ctx);
            let rec = facts::record_for(&arn, None, Vec::new(), summary.into_extra(now), now)
                .with_error(err.to_string());
            let problem = systemic(&err);
            return (rec, problem.then_some(err));
        }
    };
    let has_body = facts
        .status
        .as_deref()
        .is_some_and(|s| HAS_BODY.contains(&s));
    if !has_body {
        let rec = facts::record_for(&arn, None, Vec::new(), facts.into_extra(now), now);
        return (rec, None);
    }
    let ctx = account.ctx("acm:GetCertificate");
    match acm.get_certificate().certificate_arn(&arn).send().await {
        Ok(out) => {
            let (mut leaf, p1) = parse_pem_chain(out.certificate().unwrap_or_default());
            let (chain, p2) = parse_pem_chain(out.certificate_chain().unwrap_or_default());
            let leaf_cert = (!leaf.is_empty()).then(|| leaf.remove(0));
            let mut rec = facts::record_for(&arn, leaf_cert, chain, facts.into_extra(now), now);
            if rec.cert.is_none() {
                rec.error = Some(format!(
                    "acm:GetCertificate returned no certificate that parses: {}",
                    p1.unwrap_or_else(|| "empty".to_owned())
                ));
            } else if let Some(p) = p2 {
                rec.error = Some(format!(
                    "acm:GetCertificate returned a chain that does not parse: {p}"
                ));
            }
            (rec, None)
        }
        Err(e) => {
            let err = error::classify(&e, &ctx);
            let rec = facts::record_for(&arn, None, Vec::new(), facts.into_extra(now), now)
                .with_error(err.to_string());
            let problem = systemic(&err);
            (rec, problem.then_some(err))
        }
    }
}

/// Errors that say something about the whole instance rather than one certificate.
fn systemic(e: &AwsError) -> bool {
    e.is_instance_wide() || matches!(e.class(), ProblemClass::Throttled | ProblemClass::Timeout)
}

/// List the region's ACM PCA CAs and send one row each (with the CA certificate when it has
/// one). Returns how many.
pub async fn read_private_cas(
    account: &Account,
    region: &str,
    sink: &Sink,
) -> Result<usize, AwsError> {
    let pca = client::acmpca(&account.conf, region);
    let mut next: Option<String> = None;
    let mut n = 0;
    loop {
        let ctx = account.ctx("acm-pca:ListCertificateAuthorities");
        let out = pca
            .list_certificate_authorities()
            .max_results(1000)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| error::classify(&e, &ctx))?;
        for ca in out.certificate_authorities() {
            let Some(arn) = ca.arn() else { continue };
            let now = crate::clock::now_unix();
            let parts = facts::parse_arn(arn);
            let f = PcaFacts {
                arn: arn.to_owned(),
                account: parts
                    .as_ref()
                    .map(|p| p.account.clone())
                    .or_else(|| ca.owner_account().map(str::to_owned))
                    .unwrap_or_default(),
                region: region.to_owned(),
                profile: account.profile.clone(),
                ca_type: ca.r#type().map(|t| t.as_str().to_owned()),
                status: ca.status().map(|t| t.as_str().to_owned()),
                usage_mode: ca.usage_mode().map(|t| t.as_str().to_owned()),
                not_before: ca.not_before().map(|t| t.secs()),
                not_after: ca.not_after().map(|t| t.secs()),
                failure_reason: ca.failure_reason().map(|t| t.as_str().to_owned()),
                ..PcaFacts::default()
            };
            let has_cert = matches!(
                f.status.as_deref(),
                Some("ACTIVE") | Some("DISABLED") | Some("EXPIRED")
            );
            let mut rec = facts::record_for(arn, None, Vec::new(), f.into_extra(), now);
            if has_cert {
                let ctx = account.ctx("acm-pca:GetCertificateAuthorityCertificate");
                match pca
                    .get_certificate_authority_certificate()
                    .certificate_authority_arn(arn)
                    .send()
                    .await
                {
                    Ok(o) => {
                        let (mut certs, p) = parse_pem_chain(o.certificate().unwrap_or_default());
                        let (chain, _) = parse_pem_chain(o.certificate_chain().unwrap_or_default());
                        if certs.is_empty() {
                            rec.error = Some(format!(
                                "acm-pca:GetCertificateAuthorityCertificate returned no certificate that parses: {}",
                                p.unwrap_or_else(|| "empty".to_owned())
                            ));
                        } else {
                            rec.cert = Some(certs.remove(0));
                            rec.chain = chain;
                        }
                    }
                    Err(e) => rec.error = Some(error::classify(&e, &ctx).to_string()),
                }
            }
            n += 1;
            if !sink.observed(rec).await {
                break;
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => next = Some(t.to_owned()),
            _ => break,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_and_status_is_asked_for() {
        // Every name is one the SDK knows, and every one it knows is asked for.
        let kt = key_types();
        let mut k: Vec<&str> = kt.iter().map(|k| k.as_str()).collect();
        let mut known = KeyAlgorithm::values().to_vec();
        k.sort_unstable();
        known.sort_unstable();
        assert_eq!(k, known);
        let st = statuses();
        let mut s: Vec<&str> = st.iter().map(|k| k.as_str()).collect();
        let mut known = CertificateStatus::values().to_vec();
        s.sort_unstable();
        known.sort_unstable();
        assert_eq!(s, known);
    }

    #[test]
    fn pem_chain_problems_are_reported_not_panicked() {
        let (c, p) =
            parse_pem_chain("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(c.is_empty());
        assert!(p.is_some());
        let (c, p) = parse_pem_chain("garbage");
        assert!(c.is_empty());
        assert_eq!(p.as_deref(), Some("no PEM certificate in it"));
        let (c, p) = parse_pem_chain("");
        assert!(c.is_empty() && p.is_none());
    }
}
