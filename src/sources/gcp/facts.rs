//! The facts of a Google Certificate Manager row, as plain data (no IO): the REST shapes of a
//! certificate (`Certificate`, `ManagedCertificate`, `AuthorizationAttemptInfo`), the facts
//! kept on the row (`GcpFacts`, JSON key `gcp`), the renewal sentence and `renewal_overdue`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{date, rfc3339};
use crate::model::status::DAY;
use crate::model::{CertFacts, Extra, Record, SourceKind};

/// The kind of Google Cloud rows: ids are `gcp-…`.
pub const KIND: SourceKind = SourceKind::new("gcp");
/// The JSON key of the facts in records.
pub const JSON_KEY: &str = "gcp";
/// Google starts renewing a managed certificate about 30 days before it expires.
pub const RENEWAL_WINDOW_SECS: i64 = 30 * DAY;
/// How long into the window a managed certificate may stay unrenewed, with no issue reported,
/// before it counts as overdue.
pub const RENEWAL_GRACE_SECS: i64 = 7 * DAY;

/// `Certificate` as the v1 REST API returns it (unknown fields ignored).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiCertificate {
    pub name: String,
    pub description: String,
    pub create_time: Option<String>,
    pub update_time: Option<String>,
    pub san_dnsnames: Vec<String>,
    pub pem_certificate: Option<String>,
    pub expire_time: Option<String>,
    pub scope: Option<String>,
    pub managed: Option<ApiManaged>,
    /// Input only in the API (never returned), but its presence marks self-managed in PATCH.
    pub self_managed: Option<serde_json::Value>,
    pub used_by: Vec<ApiUsedBy>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiManaged {
    pub domains: Vec<String>,
    pub dns_authorizations: Vec<String>,
    pub issuance_config: Option<String>,
    pub state: Option<String>,
    pub provisioning_issue: Option<ApiProvisioningIssue>,
    pub authorization_attempt_info: Vec<ApiAuthorizationAttempt>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiProvisioningIssue {
    pub reason: Option<String>,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiAuthorizationAttempt {
    pub domain: String,
    pub state: Option<String>,
    pub failure_reason: Option<String>,
    pub details: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ApiUsedBy {
    pub name: String,
}

/// One domain's authorization, as kept on the row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainAuthorization {
    pub domain: String,
    /// `AUTHORIZING`, `AUTHORIZED` or `FAILED`.
    pub state: Option<String>,
    /// `CONFIG`, `CAA` or `RATE_LIMITED`.
    pub failure_reason: Option<String>,
    pub details: Option<String>,
}

/// What Certificate Manager says about a certificate, plus where it was read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcpFacts {
    /// Always `certificate-manager-certificate`.
    pub kind: String,
    /// `projects/P/locations/L/certificates/NAME`.
    pub name: String,
    pub project: String,
    pub location: String,
    /// `google-managed` or `self-managed`.
    #[serde(rename = "type")]
    pub cert_type: String,
    /// Managed: `ACTIVE`, `PROVISIONING` or `FAILED`.
    pub state: Option<String>,
    pub issue_reason: Option<String>,
    pub issue_details: Option<String>,
    pub domains: Vec<String>,
    pub authorizations: Vec<DomainAuthorization>,
    pub issuance_config: Option<String>,
    pub san_dnsnames: Vec<String>,
    /// Resource names of what serves it (certificate map entries, target proxies).
    pub used_by: Vec<String>,
    pub scope: Option<String>,
    pub description: String,
    /// Unix seconds of `expireTime`, `createTime`, `updateTime`.
    pub expire_time: Option<i64>,
    pub create_time: Option<i64>,
    pub update_time: Option<i64>,
    /// The renewal sentence at observation time.
    pub renewal: String,
    /// `renewal_overdue` at observation time.
    pub renewal_overdue: bool,
}

/// RFC 3339 (`2026-12-02T14:00:00.123456Z`) to unix seconds.
pub fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `projects/P/locations/L/certificates/N` -> (P, L).
pub fn parse_name(name: &str) -> Option<(String, String)> {
    let p: Vec<&str> = name.split('/').collect();
    match p.as_slice() {
        ["projects", proj, "locations", loc, "certificates", n] if !n.is_empty() => {
            Some(((*proj).to_owned(), (*loc).to_owned()))
        }
        _ => None,
    }
}

impl GcpFacts {
    /// Facts from the API's certificate, read in `project`/`location`.
    pub fn from_api(c: &ApiCertificate, project: &str, location: &str) -> GcpFacts {
        let (p, l) =
            parse_name(&c.name).unwrap_or_else(|| (project.to_owned(), location.to_owned()));
        let managed = c.managed.as_ref();
        GcpFacts {
            kind: "certificate-manager-certificate".to_owned(),
            name: c.name.clone(),
            project: p,
            location: l,
            cert_type: if managed.is_some() {
                "google-managed"
            } else {
                "self-managed"
            }
            .to_owned(),
            state: managed.and_then(|m| m.state.clone()),
            issue_reason: managed
                .and_then(|m| m.provisioning_issue.as_ref())
                .and_then(|i| i.reason.clone()),
            issue_details: managed
                .and_then(|m| m.provisioning_issue.as_ref())
                .and_then(|i| i.details.clone()),
            domains: managed.map(|m| m.domains.clone()).unwrap_or_default(),
            authorizations: managed
                .map(|m| {
                    m.authorization_attempt_info
                        .iter()
                        .map(|a| DomainAuthorization {
                            domain: a.domain.clone(),
                            state: a.state.clone(),
                            failure_reason: a.failure_reason.clone(),
                            details: a.details.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            issuance_config: managed.and_then(|m| m.issuance_config.clone()),
            san_dnsnames: c.san_dnsnames.clone(),
            used_by: c.used_by.iter().map(|u| u.name.clone()).collect(),
            scope: c.scope.clone(),
            description: c.description.clone(),
            expire_time: c.expire_time.as_deref().and_then(parse_time),
            create_time: c.create_time.as_deref().and_then(parse_time),
            update_time: c.update_time.as_deref().and_then(parse_time),
            ..GcpFacts::default()
        }
    }

    fn managed(&self) -> bool {
        self.cert_type == "google-managed"
    }

    fn failed_authorizations(&self) -> Vec<&DomainAuthorization> {
        self.authorizations
            .iter()
            .filter(|a| a.state.as_deref() == Some("FAILED"))
            .collect()
    }
}

/// The sentence that says who renews the certificate and when. Pure.
pub fn renewal_sentence(f: &GcpFacts, now: i64) -> String {
    if !f.managed() {
        return "self-managed: Google never renews it, upload a renewed certificate (patch)"
            .to_owned();
    }
    let since = f.update_time.map(date);
    let failed = f.failed_authorizations();
    if !failed.is_empty() {
        let domains: Vec<String> = failed
            .iter()
            .map(|a| match &a.failure_reason {
                Some(r) => format!("{} ({r})", a.domain),
                None => a.domain.clone(),
            })
            .collect();
        let mut s = format!(
            "Google-managed: failed authorization for {}",
            domains.join(", ")
        );
        if let Some(d) = since {
            s.push_str(&format!(" since {d}"));
        }
        return s;
    }
    match f.state.as_deref() {
        Some("FAILED") => match &f.issue_reason {
            Some(r) => format!("Google-managed: provisioning failed ({r})"),
            None => "Google-managed: provisioning failed".to_owned(),
        },
        Some("PROVISIONING") => {
            let mut s = match &f.issue_reason {
                Some(r) => format!("Google-managed: provisioning stuck ({r})"),
                None => "Google-managed: provisioning".to_owned(),
            };
            if let Some(d) = since {
                s.push_str(&format!(" since {d}"));
            }
            s
        }
        _ => match f.expire_time {
            Some(exp) if now >= exp => "Google-managed: expired, not renewed".to_owned(),
            Some(exp) if now >= exp - RENEWAL_WINDOW_SECS => {
                if renewal_overdue(f, now) {
                    format!(
                        "renewal overdue: Google's renewal window opened on {} and the certificate is not renewed",
                        date(exp - RENEWAL_WINDOW_SECS)
                    )
                } else {
                    format!(
                        "Google-managed: renewal window open since {}: renewing",
                        date(exp - RENEWAL_WINDOW_SECS)
                    )
                }
            }
            Some(exp) => format!(
                "Google-managed: renews automatically from 30 days before expiry: from {}",
                date(exp - RENEWAL_WINDOW_SECS)
            ),
            None => "Google-managed: renews automatically".to_owned(),
        },
    }
}

/// True when Google should have renewed this managed certificate by now and has not: inside
/// its renewal window with a failed authorization, a provisioning issue or a failed state, or
/// a week into the window without renewal, or expired. Pure.
pub fn renewal_overdue(f: &GcpFacts, now: i64) -> bool {
    if !f.managed() {
        return false;
    }
    let Some(exp) = f.expire_time else {
        return false;
    };
    let window = exp - RENEWAL_WINDOW_SECS;
    if now < window {
        return false;
    }
    let stuck = !f.failed_authorizations().is_empty()
        || f.issue_reason.is_some()
        || f.state.as_deref() == Some("FAILED");
    stuck || now >= exp || now >= window + RENEWAL_GRACE_SECS
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

impl GcpFacts {
    /// The table note: overdue renewal first, then state, then the sentence.
    pub fn note(&self, now: i64) -> String {
        let mut s = String::new();
        if renewal_overdue(self, now) {
            s.push_str("RENEWAL OVERDUE: ");
        }
        if self.managed() {
            s.push_str(&format!("Google {}: {}", opt(&self.state), self.renewal));
        } else {
            s.push_str(&self.renewal);
        }
        if !self.used_by.is_empty() {
            s.push_str(&format!("; used by {}", self.used_by.len()));
        }
        s
    }

    fn details(&self) -> Vec<(String, String)> {
        let mut d = vec![
            ("Name".to_owned(), self.name.clone()),
            ("Project".to_owned(), self.project.clone()),
            ("Location".to_owned(), self.location.clone()),
            ("Type".to_owned(), self.cert_type.clone()),
        ];
        if self.managed() {
            d.push(("State".to_owned(), opt(&self.state)));
        }
        d.push(("Renewal".to_owned(), self.renewal.clone()));
        if self.issue_reason.is_some() || self.issue_details.is_some() {
            d.push((
                "Provisioning issue".to_owned(),
                format!("{}: {}", opt(&self.issue_reason), opt(&self.issue_details)),
            ));
        }
        for (i, a) in self.authorizations.iter().enumerate() {
            let mut v = format!("{}: {}", a.domain, opt(&a.state));
            if let Some(r) = &a.failure_reason {
                v.push_str(&format!(" ({r})"));
            }
            if let Some(x) = &a.details {
                v.push_str(&format!(": {x}"));
            }
            d.push((if i == 0 { "Authorization" } else { "" }.to_owned(), v));
        }
        if let Some(t) = self.expire_time {
            d.push(("Expires".to_owned(), rfc3339(t)));
        }
        if let Some(t) = self.update_time {
            d.push(("Updated".to_owned(), rfc3339(t)));
        }
        if self.used_by.is_empty() {
            d.push(("Used by".to_owned(), "nothing".to_owned()));
        }
        for (i, u) in self.used_by.iter().enumerate() {
            d.push((if i == 0 { "Used by" } else { "" }.to_owned(), u.clone()));
        }
        d.into_iter()
            .map(|(k, v)| (k, super::clean(&v, 300)))
            .collect()
    }

    /// The row's extra facts, with the sentence and note at `now`. Outside text is cleaned.
    pub fn into_extra(mut self, now: i64) -> Extra {
        self.renewal = renewal_sentence(&self, now);
        self.renewal_overdue = renewal_overdue(&self, now);
        let note = super::clean(&self.note(now), 400);
        let details = self.details();
        let clean_opt = |v: &mut Option<String>| {
            if let Some(s) = v.as_mut() {
                *s = super::clean(s, 300);
            }
        };
        clean_opt(&mut self.issue_details);
        for a in &mut self.authorizations {
            clean_opt(&mut a.details);
        }
        self.description = super::clean(&self.description, 300);
        Extra {
            key: JSON_KEY,
            json: serde_json::to_value(&self).unwrap_or(serde_json::Value::Null),
            details,
            note: Some(note),
        }
    }
}

pub use crate::sources::pem::parse_chain as parse_pem_chain;

/// A row for a certificate: its location is the resource name, so the id is stable.
pub fn record_for(
    name: &str,
    leaf: Option<Arc<CertFacts>>,
    chain: Vec<Arc<CertFacts>>,
    extra: Extra,
    now: i64,
) -> Record {
    Record::from_store(KIND, name, leaf, chain, extra, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn managed(days_left: i64) -> GcpFacts {
        GcpFacts {
            name: "projects/p/locations/global/certificates/web".into(),
            cert_type: "google-managed".into(),
            state: Some("ACTIVE".into()),
            expire_time: Some(NOW + days_left * DAY),
            update_time: Some(NOW - 3 * DAY),
            ..GcpFacts::default()
        }
    }

    #[test]
    fn active_managed_certificate_renews_automatically() {
        let f = managed(60);
        assert!(renewal_sentence(&f, NOW)
            .starts_with("Google-managed: renews automatically from 30 days before expiry"));
        assert!(!renewal_overdue(&f, NOW));
    }

    #[test]
    fn failed_authorization_is_the_stuck_reason_and_overdue_inside_the_window() {
        let mut f = managed(20);
        f.state = Some("PROVISIONING".into());
        f.issue_reason = Some("AUTHORIZATION_ISSUE".into());
        f.authorizations = vec![
            DomainAuthorization {
                domain: "shop.example.com".into(),
                state: Some("FAILED".into()),
                failure_reason: Some("CONFIG".into()),
                details: None,
            },
            DomainAuthorization {
                domain: "ok.example.com".into(),
                state: Some("AUTHORIZED".into()),
                ..DomainAuthorization::default()
            },
        ];
        assert_eq!(
            renewal_sentence(&f, NOW),
            format!(
                "Google-managed: failed authorization for shop.example.com (CONFIG) since {}",
                date(NOW - 3 * DAY)
            )
        );
        assert!(renewal_overdue(&f, NOW));
        let x = f.into_extra(NOW);
        assert!(x
            .note
            .unwrap()
            .starts_with("RENEWAL OVERDUE: Google PROVISIONING"));
    }

    #[test]
    fn a_week_into_the_window_is_overdue_before_that_not() {
        assert!(!renewal_overdue(&managed(27), NOW));
        assert!(renewal_overdue(&managed(20), NOW));
        assert!(renewal_sentence(&managed(20), NOW).starts_with("renewal overdue"));
    }

    #[test]
    fn self_managed_is_never_overdue_and_says_upload() {
        let mut f = managed(2);
        f.cert_type = "self-managed".into();
        f.state = None;
        assert!(!renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW).starts_with("self-managed"));
    }

    #[test]
    fn names_and_times_parse() {
        assert_eq!(
            parse_name("projects/p1/locations/us-east1/certificates/c"),
            Some(("p1".into(), "us-east1".into()))
        );
        assert_eq!(parse_name("projects/p1/certificates/c"), None);
        assert_eq!(
            parse_time("2027-01-01T00:00:00.123456Z"),
            Some(1_798_761_600)
        );
    }
}
