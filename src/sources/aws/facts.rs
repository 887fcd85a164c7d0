//! The facts of an AWS row, as plain data (no SDK types, no IO): an ACM certificate's type,
//! status, consumers and renewal state, or an ACM PCA CA's state; the renewal-window sentence;
//! and `renewal_overdue`, the pure test for "ACM should have renewed this by now and has not".
//!
//! Facts are built by the reader and stored on the row as `Record::extra` (JSON key `aws`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{date, rfc3339};
use crate::model::status::DAY;
use crate::model::{CertFacts, Extra, Record, SourceKind};

/// ACM starts managed renewal this long before expiry.
pub const RENEWAL_WINDOW_SECS: i64 = 60 * DAY;
/// How long ACM may take from the start of the window before a renewal that has not happened
/// counts as overdue, when ACM reports no problem of its own (PENDING_AUTO_RENEWAL or no
/// RenewalSummary yet). DNS-validated renewals normally finish within hours.
pub const RENEWAL_GRACE_SECS: i64 = 7 * DAY;

/// The kind of AWS rows (ACM certificates and ACM PCA CAs): ids are `aws-…`.
pub const KIND: SourceKind = SourceKind::new("aws");

/// The JSON key of AWS facts in records.
pub const JSON_KEY: &str = "aws";

/// Where an ACM or ACM PCA ARN points: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnParts {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// Split an ARN; `None` when it is not one.
pub fn parse_arn(arn: &str) -> Option<ArnParts> {
    let mut it = arn.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    let partition = it.next()?.to_owned();
    let service = it.next()?.to_owned();
    let region = it.next()?.to_owned();
    let account = it.next()?.to_owned();
    let resource = it.next()?.to_owned();
    if partition.is_empty() || service.is_empty() || resource.is_empty() {
        return None;
    }
    Some(ArnParts {
        partition,
        service,
        region,
        account,
        resource,
    })
}

/// The managed renewal as ACM reports it (`RenewalSummary`), for Amazon-issued and private
/// certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalSummary {
    /// `PENDING_AUTO_RENEWAL`, `PENDING_VALIDATION`, `SUCCESS` or `FAILED`.
    pub status: String,
    /// `RenewalStatusReason` (a FailureReason such as `CAA_ERROR`), when ACM gives one.
    pub reason: Option<String>,
    /// Unix seconds of `UpdatedAt`.
    pub updated_at: Option<i64>,
    /// Domains whose validation is not `SUCCESS`: (domain, status, method).
    pub pending_domains: Vec<DomainValidation>,
}

/// One domain of a renewal's validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainValidation {
    pub domain: String,
    /// `PENDING_VALIDATION`, `SUCCESS`, `FAILED`.
    pub status: Option<String>,
    /// `DNS`, `EMAIL` or `HTTP`.
    pub method: Option<String>,
}

/// What ACM says about an ACM certificate (DescribeCertificate, plus where it was read).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcmFacts {
    /// Always `acm-certificate`.
    pub kind: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    /// The profile it was read with (`default` when none was named).
    pub profile: String,
    /// `AMAZON_ISSUED`, `IMPORTED` or `PRIVATE`.
    #[serde(rename = "type")]
    pub cert_type: Option<String>,
    /// `ISSUED`, `PENDING_VALIDATION`, `FAILED`, `EXPIRED`, `REVOKED`, `INACTIVE`,
    /// `VALIDATION_TIMED_OUT`.
    pub status: Option<String>,
    pub domain_name: Option<String>,
    /// ARNs of the load balancers, distributions... that serve it.
    pub in_use_by: Vec<String>,
    /// `ELIGIBLE` or `INELIGIBLE`.
    pub renewal_eligibility: Option<String>,
    pub renewal_summary: Option<RenewalSummary>,
    /// `FailureReason` of a failed request.
    pub failure_reason: Option<String>,
    /// `RSA_2048`, `EC_prime256v1`...
    pub key_algorithm: Option<String>,
    /// Unix seconds, as ACM reports them (the certificate's own facts come from its DER).
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub serial: Option<String>,
    /// `Options.Export`: `ENABLED` for exportable public certificates.
    pub export: Option<String>,
    /// The ACM PCA CA that issued a private certificate.
    pub certificate_authority_arn: Option<String>,
    pub managed_by: Option<String>,
    pub imported_at: Option<i64>,
    pub issued_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<String>,
    /// The renewal-window sentence (`renewal_sentence`) at observation time.
    pub renewal: String,
    /// `renewal_overdue` at observation time.
    pub renewal_overdue: bool,
}

/// An ACM PCA private CA (ListCertificateAuthorities).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcaFacts {
    /// Always `acm-pca-ca`.
    pub kind: String,
    pub arn: String,
    pub account: String,
    pub region: String,
    pub profile: String,
    /// `ROOT` or `SUBORDINATE`.
    #[serde(rename = "type")]
    pub ca_type: Option<String>,
    /// `ACTIVE`, `PENDING_CERTIFICATE`, `DISABLED`, `EXPIRED`, `FAILED`, `DELETED`, `CREATING`.
    pub status: Option<String>,
    /// `GENERAL_PURPOSE` or `SHORT_LIVED_CERTIFICATE`.
    pub usage_mode: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub failure_reason: Option<String>,
}

/// Where a certificate stands with renewal, as one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalState {
    /// ACM renews it itself; the window opens at `from` (unix seconds).
    Automatic { from: i64 },
    /// Within the window, ACM is renewing (or has not said anything yet).
    InProgress { since: i64 },
    /// Managed renewal waits for domain validation (DNS record or e-mail) since `since`.
    PendingValidation { since: Option<i64> },
    /// Managed renewal failed.
    Failed { reason: Option<String> },
    /// Imported: ACM never renews it; a new certificate must be re-imported.
    Imported,
    /// Amazon-issued but ineligible (for example not in use by any AWS service).
    Ineligible,
    /// No issued certificate to renew (pending validation, failed request, revoked...).
    NotIssued,
}

fn is_managed(f: &AcmFacts) -> bool {
    matches!(
        f.cert_type.as_deref(),
        Some("AMAZON_ISSUED") | Some("PRIVATE")
    )
}

/// The renewal state of an ACM certificate at `now` (unix seconds). Pure.
pub fn renewal_state(f: &AcmFacts, now: i64) -> RenewalState {
    if f.cert_type.as_deref() == Some("IMPORTED") {
        return RenewalState::Imported;
    }
    let issued = matches!(f.status.as_deref(), Some("ISSUED") | Some("INACTIVE"));
    let (Some(not_after), true) = (f.not_after, issued) else {
        return RenewalState::NotIssued;
    };
    if let Some(rs) = &f.renewal_summary {
        match rs.status.as_str() {
            "PENDING_VALIDATION" => {
                return RenewalState::PendingValidation {
                    since: rs.updated_at,
                }
            }
            "FAILED" => {
                return RenewalState::Failed {
                    reason: rs.reason.clone(),
                }
            }
            _ => {}
        }
    }
    if !is_managed(f) || f.renewal_eligibility.as_deref() != Some("ELIGIBLE") {
        return RenewalState::Ineligible;
    }
    let from = not_after - RENEWAL_WINDOW_SECS;
    if now < from {
        RenewalState::Automatic { from }
    } else {
        RenewalState::InProgress { since: from }
    }
}

/// The sentence that says who renews the certificate and when, for the row. Pure.
pub fn renewal_sentence(f: &AcmFacts, now: i64) -> String {
    match renewal_state(f, now) {
        RenewalState::Automatic { from } => format!(
            "ACM renews automatically from 60 days before expiry (eligible): from {}",
            date(from)
        ),
        RenewalState::InProgress { since } => {
            if renewal_overdue(f, now) {
                format!(
                    "renewal overdue: ACM's renewal window opened on {} and the certificate is not renewed",
                    date(since)
                )
            } else {
                format!("ACM renewal window open since {}: renewing", date(since))
            }
        }
        RenewalState::PendingValidation { since } => {
            let domains: Vec<&str> = f
                .renewal_summary
                .iter()
                .flat_map(|r| r.pending_domains.iter().map(|d| d.domain.as_str()))
                .collect();
            let mut s = match since {
                Some(t) => format!("managed renewal pending validation since {}", date(t)),
                None => "managed renewal pending validation".to_owned(),
            };
            if !domains.is_empty() {
                s.push_str(&format!(" ({})", domains.join(", ")));
            }
            s
        }
        RenewalState::Failed { reason } => match reason {
            Some(r) => format!("managed renewal failed: {r}"),
            None => "managed renewal failed".to_owned(),
        },
        RenewalState::Imported => "ineligible: imported, renew by re-import".to_owned(),
        RenewalState::Ineligible => {
            if f.in_use_by.is_empty() && f.cert_type.as_deref() == Some("AMAZON_ISSUED") {
                "ineligible: not in use by any AWS service, ACM will not renew it".to_owned()
            } else {
                "ineligible for managed renewal".to_owned()
            }
        }
        RenewalState::NotIssued => match f.status.as_deref() {
            Some("PENDING_VALIDATION") => "not issued yet: pending domain validation".to_owned(),
            Some("FAILED") => match &f.failure_reason {
                Some(r) => format!("request failed: {r}"),
                None => "request failed".to_owned(),
            },
            Some("VALIDATION_TIMED_OUT") => {
                "not issued: validation timed out (72 hours)".to_owned()
            }
            Some("REVOKED") => "revoked".to_owned(),
            Some("EXPIRED") => "expired, not renewed".to_owned(),
            Some(s) => format!("no renewal: status {s}"),
            None => "no renewal: status unknown".to_owned(),
        },
    }
}

/// True when ACM should have renewed this certificate by now and has not: a managed
/// (Amazon-issued or private) certificate inside its 60-day renewal window whose renewal is
/// stuck (pending validation or failed), or that is still not renewed a week into the window,
/// or that expired while marked for managed renewal. This is the loudest row of a fleet: rank
/// it above plain expiry. Pure function of the facts and `now`.
pub fn renewal_overdue(f: &AcmFacts, now: i64) -> bool {
    if !is_managed(f) {
        return false;
    }
    let Some(not_after) = f.not_after else {
        return false;
    };
    let window = not_after - RENEWAL_WINDOW_SECS;
    if now < window {
        return false;
    }
    match renewal_state(f, now) {
        RenewalState::PendingValidation { .. } | RenewalState::Failed { .. } => true,
        RenewalState::InProgress { since } => now >= since + RENEWAL_GRACE_SECS,
        RenewalState::NotIssued => f.status.as_deref() == Some("EXPIRED"),
        // Eligible-but-ineligible cases (not in use) are not ACM's promise to renew.
        _ => false,
    }
}

/// `renewal_overdue` for a record, read back from its AWS facts (false for other rows).
pub fn record_renewal_overdue(r: &Record, now: i64) -> bool {
    r.extra
        .as_ref()
        .filter(|x| x.key == JSON_KEY)
        .and_then(|x| serde_json::from_value::<AcmFacts>(x.json.clone()).ok())
        .is_some_and(|f| f.kind == "acm-certificate" && renewal_overdue(&f, now))
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

impl AcmFacts {
    /// The table note: overdue renewal first, then status problems, then the sentence.
    pub fn note(&self, now: i64) -> String {
        let mut s = String::new();
        if renewal_overdue(self, now) {
            s.push_str("RENEWAL OVERDUE: ");
        }
        s.push_str(&format!(
            "ACM {} {}: {}",
            opt(&self.cert_type),
            opt(&self.status),
            renewal_sentence(self, now)
        ));
        if !self.in_use_by.is_empty() {
            s.push_str(&format!("; in use by {}", self.in_use_by.len()));
        }
        s
    }

    fn details(&self) -> Vec<(String, String)> {
        let mut d = vec![
            ("ARN".to_owned(), self.arn.clone()),
            ("Account".to_owned(), self.account.clone()),
            ("Region".to_owned(), self.region.clone()),
            ("Profile".to_owned(), self.profile.clone()),
            ("Type".to_owned(), opt(&self.cert_type)),
            ("ACM status".to_owned(), opt(&self.status)),
            ("Renewal".to_owned(), self.renewal.clone()),
            ("Eligibility".to_owned(), opt(&self.renewal_eligibility)),
        ];
        if let Some(rs) = &self.renewal_summary {
            let mut v = rs.status.clone();
            if let Some(r) = &rs.reason {
                v.push_str(&format!(" ({r})"));
            }
            if let Some(t) = rs.updated_at {
                v.push_str(&format!(", updated {}", rfc3339(t)));
            }
            d.push(("Managed renewal".to_owned(), v));
            for dv in &rs.pending_domains {
                d.push((
                    String::new(),
                    format!("{}: {} ({})", dv.domain, opt(&dv.status), opt(&dv.method)),
                ));
            }
        }
        if let Some(r) = &self.failure_reason {
            d.push(("Failure".to_owned(), r.clone()));
        }
        if self.in_use_by.is_empty() {
            d.push(("In use by".to_owned(), "nothing".to_owned()));
        }
        for (i, u) in self.in_use_by.iter().enumerate() {
            d.push((if i == 0 { "In use by" } else { "" }.to_owned(), u.clone()));
        }
        if let Some(ca) = &self.certificate_authority_arn {
            d.push(("Private CA".to_owned(), ca.clone()));
        }
        if let Some(k) = &self.key_algorithm {
            d.push(("Key algorithm".to_owned(), k.clone()));
        }
        d.into_iter()
            .map(|(k, v)| (k, super::clean(&v, 300)))
            .collect()
    }

    /// The row's extra facts (`Record::extra`), with the note and sentence at `now`.
    pub fn into_extra(mut self, now: i64) -> Extra {
        self.kind = "acm-certificate".to_owned();
        self.renewal = renewal_sentence(&self, now);
        self.renewal_overdue = renewal_overdue(&self, now);
        let note = super::clean(&self.note(now), 400);
        let details = self.details();
        Extra {
            key: JSON_KEY,
            json: serde_json::to_value(&self).unwrap_or(serde_json::Value::Null),
            details,
            note: Some(note),
        }
    }
}

impl PcaFacts {
    pub fn note(&self) -> String {
        let mut s = format!(
            "ACM PCA {} CA, {}",
            opt(&self.ca_type).to_lowercase(),
            opt(&self.status)
        );
        if let Some(m) = &self.usage_mode {
            s.push_str(&format!(", {m}"));
        }
        if let Some(r) = &self.failure_reason {
            s.push_str(&format!(": {r}"));
        }
        s
    }

    pub fn into_extra(mut self) -> Extra {
        self.kind = "acm-pca-ca".to_owned();
        let note = super::clean(&self.note(), 400);
        let details = vec![
            ("ARN".to_owned(), self.arn.clone()),
            ("Account".to_owned(), self.account.clone()),
            ("Region".to_owned(), self.region.clone()),
            ("Profile".to_owned(), self.profile.clone()),
            ("CA type".to_owned(), opt(&self.ca_type)),
            ("CA status".to_owned(), opt(&self.status)),
            ("Usage mode".to_owned(), opt(&self.usage_mode)),
        ]
        .into_iter()
        .map(|(k, v)| (k, super::clean(&v, 300)))
        .collect();
        Extra {
            key: JSON_KEY,
            json: serde_json::to_value(&self).unwrap_or(serde_json::Value::Null),
            details,
            note: Some(note),
        }
    }
}

/// A row for an ARN: location is the ARN itself, so the row id (`aws-...`) is stable.
pub fn record_for(
    arn: &str,
    leaf: Option<Arc<CertFacts>>,
    chain: Vec<Arc<CertFacts>>,
    extra: Extra,
    now: i64,
) -> Record {
    Record::from_store(KIND, arn, leaf, chain, extra, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn managed(days_left: i64) -> AcmFacts {
        AcmFacts {
            arn: "arn:aws:acm:eu-west-1:123456789012:certificate/abc".into(),
            cert_type: Some("AMAZON_ISSUED".into()),
            status: Some("ISSUED".into()),
            renewal_eligibility: Some("ELIGIBLE".into()),
            in_use_by: vec![
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1".into(),
            ],
            not_after: Some(NOW + days_left * DAY),
            ..AcmFacts::default()
        }
    }

    #[test]
    fn arn_parts() {
        let p = parse_arn("arn:aws:acm:eu-west-1:123456789012:certificate/12-34").unwrap();
        assert_eq!(p.region, "eu-west-1");
        assert_eq!(p.account, "123456789012");
        assert_eq!(p.resource, "certificate/12-34");
        assert!(parse_arn("not-an-arn").is_none());
        assert!(parse_arn("arn:aws:acm").is_none());
    }

    #[test]
    fn eligible_certificate_outside_the_window_renews_automatically() {
        let f = managed(90);
        assert_eq!(
            renewal_state(&f, NOW),
            RenewalState::Automatic {
                from: NOW + 30 * DAY
            }
        );
        assert!(renewal_sentence(&f, NOW)
            .starts_with("ACM renews automatically from 60 days before expiry (eligible)"));
        assert!(!renewal_overdue(&f, NOW));
    }

    #[test]
    fn pending_validation_inside_the_window_is_overdue() {
        let mut f = managed(40);
        f.renewal_summary = Some(RenewalSummary {
            status: "PENDING_VALIDATION".into(),
            updated_at: Some(NOW - 20 * DAY),
            pending_domains: vec![DomainValidation {
                domain: "shop.example.com".into(),
                status: Some("PENDING_VALIDATION".into()),
                method: Some("DNS".into()),
            }],
            ..RenewalSummary::default()
        });
        assert!(renewal_overdue(&f, NOW));
        let s = renewal_sentence(&f, NOW);
        assert!(
            s.starts_with("managed renewal pending validation since ")
                && s.contains("shop.example.com"),
            "{s}"
        );
        assert!(f.note(NOW).starts_with("RENEWAL OVERDUE: "));
    }

    #[test]
    fn a_week_into_the_window_without_renewal_is_overdue_before_that_it_is_not() {
        let f = managed(57);
        assert!(!renewal_overdue(&f, NOW), "3 days into the window");
        let f = managed(50);
        assert!(renewal_overdue(&f, NOW), "10 days into the window");
        assert!(renewal_sentence(&f, NOW).starts_with("renewal overdue"));
    }

    #[test]
    fn imported_certificates_are_never_overdue_and_say_reimport() {
        let mut f = managed(3);
        f.cert_type = Some("IMPORTED".into());
        f.renewal_eligibility = Some("INELIGIBLE".into());
        assert!(!renewal_overdue(&f, NOW));
        assert_eq!(
            renewal_sentence(&f, NOW),
            "ineligible: imported, renew by re-import"
        );
    }

    #[test]
    fn unused_amazon_certificate_is_ineligible_and_says_why() {
        let mut f = managed(20);
        f.renewal_eligibility = Some("INELIGIBLE".into());
        f.in_use_by.clear();
        assert!(!renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW).contains("not in use"));
    }

    #[test]
    fn pending_request_has_no_renewal_and_is_said_so() {
        let mut f = managed(0);
        f.not_after = None;
        f.status = Some("PENDING_VALIDATION".into());
        assert_eq!(renewal_state(&f, NOW), RenewalState::NotIssued);
        assert!(!renewal_overdue(&f, NOW));
        assert_eq!(
            renewal_sentence(&f, NOW),
            "not issued yet: pending domain validation"
        );
    }

    #[test]
    fn managed_certificate_that_expired_is_overdue() {
        let mut f = managed(-2);
        f.status = Some("EXPIRED".into());
        assert!(renewal_overdue(&f, NOW));
    }

    #[test]
    fn record_helper_reads_the_facts_back() {
        let mut f = managed(45);
        f.renewal_summary = Some(RenewalSummary {
            status: "FAILED".into(),
            reason: Some("CAA_ERROR".into()),
            ..RenewalSummary::default()
        });
        let r = record_for(&f.arn.clone(), None, Vec::new(), f.into_extra(NOW), NOW);
        assert!(record_renewal_overdue(&r, NOW));
        assert!(r.id.starts_with("aws-"));
        let x = r.extra.as_ref().unwrap();
        assert_eq!(x.json["renewal"], "managed renewal failed: CAA_ERROR");
        assert_eq!(x.json["type"], "AMAZON_ISSUED");
    }
}
