//! The facts of a Key Vault row, as plain data (no SDK types, no IO): a certificate version's
//! attributes, the policy's issuer and lifetime actions, a pending operation; the renewal
//! sentence ("auto-renews at 80% of lifetime: due DATE", "emails only") and
//! `renewal_overdue`, the pure test for "Key Vault should have renewed this by now and has not".
//!
//! Facts are built by the reader and stored on the row as `Record::extra` (JSON key `azure`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{date, rfc3339};
use crate::model::status::DAY;
use crate::model::{CertFacts, Extra, Record, SourceKind};

/// The kind of Key Vault rows: ids are `azure-…`.
pub const KIND: SourceKind = SourceKind::new("azure");
/// The JSON key of the facts in records.
pub const JSON_KEY: &str = "azure";
/// How long after its due point an automatic renewal may take before it counts as overdue.
/// Key Vault renews with Self or an integrated CA within hours.
pub const RENEWAL_GRACE_SECS: i64 = DAY;

/// Issuers Key Vault can issue a new version from by itself (its policy's `issuer.name`).
/// `Unknown` means a CA outside Key Vault: a new version needs a CSR merged by hand.
pub fn issuer_can_issue(issuer: Option<&str>) -> bool {
    issuer.is_some_and(|i| !i.is_empty() && !i.eq_ignore_ascii_case("unknown"))
}

/// One lifetime action of the policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifetimeAction {
    /// `AutoRenew` or `EmailContacts`.
    pub action: String,
    pub lifetime_percentage: Option<i32>,
    pub days_before_expiry: Option<i32>,
}

impl LifetimeAction {
    /// When the action fires for a certificate valid from `nbf` to `exp` (unix seconds).
    pub fn due(&self, nbf: Option<i64>, exp: i64) -> Option<i64> {
        if let Some(d) = self.days_before_expiry {
            return Some(exp - i64::from(d) * DAY);
        }
        let p = i64::from(self.lifetime_percentage?);
        let nbf = nbf?;
        Some(nbf + (exp - nbf) * p / 100)
    }

    /// "at 80% of lifetime", "30 days before expiry".
    pub fn trigger(&self) -> String {
        match (self.lifetime_percentage, self.days_before_expiry) {
            (_, Some(d)) => format!("{d} days before expiry"),
            (Some(p), None) => format!("at {p}% of lifetime"),
            (None, None) => "with no trigger".to_owned(),
        }
    }

    pub fn is_auto_renew(&self) -> bool {
        self.action.eq_ignore_ascii_case("AutoRenew")
    }
}

/// A certificate operation (`.../NAME/pending`): a new version being created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOperation {
    /// `inProgress`, `completed`, `failed`, `cancelled`.
    pub status: String,
    pub status_details: Option<String>,
    /// The error's code and message, when it failed.
    pub error: Option<String>,
    pub cancellation_requested: bool,
}

impl PendingOperation {
    pub fn in_progress(&self) -> bool {
        self.status.eq_ignore_ascii_case("inProgress")
    }
    pub fn failed(&self) -> bool {
        self.status.eq_ignore_ascii_case("failed") || self.error.is_some()
    }
}

/// What Key Vault says about one certificate version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvFacts {
    /// Always `kv-certificate`.
    pub kind: String,
    /// `https://NAME.vault.azure.net/`.
    pub vault: String,
    pub vault_name: String,
    pub name: String,
    pub version: String,
    /// The version's id: `https://NAME.vault.azure.net/certificates/CERT/VERSION`.
    pub id: String,
    /// True for the version Key Vault serves (`GET .../CERT/`).
    pub current: bool,
    pub current_version: Option<String>,
    pub enabled: Option<bool>,
    /// Unix seconds (`nbf`, `exp`, `created`, `updated`).
    pub not_before: Option<i64>,
    pub expires: Option<i64>,
    pub created: Option<i64>,
    pub updated: Option<i64>,
    /// The policy's issuer (`Self`, `Unknown`, `DigiCert`, a named issuer...).
    pub issuer: Option<String>,
    pub certificate_type: Option<String>,
    pub validity_months: Option<i32>,
    pub subject: Option<String>,
    pub dns_names: Vec<String>,
    pub key_type: Option<String>,
    pub lifetime_actions: Vec<LifetimeAction>,
    pub pending: Option<PendingOperation>,
    /// How many versions the certificate has.
    pub versions: usize,
    /// The renewal sentence (`renewal_sentence`) at observation time.
    pub renewal: String,
    /// When the AutoRenew action fires (unix seconds).
    pub renewal_due: Option<i64>,
    /// `renewal_overdue` at observation time.
    pub renewal_overdue: bool,
    /// Not the current version: Key Vault serves a newer one (the row never ranks above ok).
    pub superseded: bool,
}

/// Where a certificate version stands with renewal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalState {
    /// Not the current version: a newer one replaced it.
    Superseded { current: Option<String> },
    /// The certificate is disabled: Key Vault does not serve or renew it.
    Disabled,
    /// A new version is being created.
    Renewing,
    /// The last attempt to create a new version failed.
    Failed { reason: String, due: Option<i64> },
    /// Key Vault renews it itself at `due` (`trigger`: "at 80% of lifetime").
    AutoRenew { due: i64, trigger: String },
    /// Contacts are emailed at `due`; nobody renews it automatically.
    EmailsOnly { due: Option<i64>, trigger: String },
    /// The issuer cannot issue (`Unknown`): a new version needs a CSR merged by hand.
    Manual { issuer: String },
    /// The policy has no lifetime action.
    NoAction,
    /// Pending creation: no certificate yet.
    NotIssued,
}

fn auto_action(f: &KvFacts) -> Option<&LifetimeAction> {
    f.lifetime_actions.iter().find(|a| a.is_auto_renew())
}

/// The renewal state of a version at `now`. Pure.
pub fn renewal_state(f: &KvFacts) -> RenewalState {
    if !f.current {
        return RenewalState::Superseded {
            current: f.current_version.clone(),
        };
    }
    if f.enabled == Some(false) {
        return RenewalState::Disabled;
    }
    let due = f
        .expires
        .and_then(|exp| auto_action(f).and_then(|a| a.due(f.not_before, exp)));
    if let Some(p) = &f.pending {
        if p.in_progress() {
            return RenewalState::Renewing;
        }
        if p.failed() {
            return RenewalState::Failed {
                reason: p
                    .error
                    .clone()
                    .or_else(|| p.status_details.clone())
                    .unwrap_or_else(|| p.status.clone()),
                due,
            };
        }
    }
    let Some(exp) = f.expires else {
        return RenewalState::NotIssued;
    };
    if !issuer_can_issue(f.issuer.as_deref()) {
        return RenewalState::Manual {
            issuer: f.issuer.clone().unwrap_or_else(|| "Unknown".to_owned()),
        };
    }
    if let Some(a) = auto_action(f) {
        if let Some(due) = a.due(f.not_before, exp) {
            return RenewalState::AutoRenew {
                due,
                trigger: a.trigger(),
            };
        }
    }
    if let Some(a) = f.lifetime_actions.first() {
        return RenewalState::EmailsOnly {
            due: a.due(f.not_before, exp),
            trigger: a.trigger(),
        };
    }
    RenewalState::NoAction
}

/// True when Key Vault should have renewed this certificate by now and has not: the current,
/// enabled version of a certificate whose policy auto-renews, a day past the point its
/// AutoRenew action fires (or failed to create the new version past that point). This is the
/// loudest row of a fleet. Pure function of the facts and `now`.
pub fn renewal_overdue(f: &KvFacts, now: i64) -> bool {
    match renewal_state(f) {
        RenewalState::AutoRenew { due, .. } => now >= due + RENEWAL_GRACE_SECS,
        RenewalState::Failed { due: Some(due), .. } => now >= due,
        _ => false,
    }
}

/// The sentence that says who renews the certificate and when. Pure.
pub fn renewal_sentence(f: &KvFacts, now: i64) -> String {
    match renewal_state(f) {
        RenewalState::Superseded { current } => match current {
            Some(v) => format!("older version: Key Vault serves version {v}"),
            None => "older version".to_owned(),
        },
        RenewalState::Disabled => "disabled: Key Vault neither serves nor renews it".to_owned(),
        RenewalState::Renewing => {
            "a new version is pending (certificate operation in progress)".to_owned()
        }
        RenewalState::Failed { reason, .. } => {
            format!("creating a new version failed: {reason}")
        }
        RenewalState::AutoRenew { due, trigger } => {
            if renewal_overdue(f, now) {
                format!(
                    "renewal overdue: Key Vault auto-renews {trigger}, due {}, and has not renewed it",
                    date(due)
                )
            } else if now >= due {
                format!("Key Vault auto-renews {trigger}: due since {}, renewing", date(due))
            } else {
                format!("Key Vault auto-renews {trigger}: due {}", date(due))
            }
        }
        RenewalState::EmailsOnly { due, trigger } => match due {
            Some(d) => format!(
                "emails only: contacts are emailed {trigger} ({}); Key Vault does not renew it",
                date(d)
            ),
            None => format!(
                "emails only: contacts are emailed {trigger}; Key Vault does not renew it"
            ),
        },
        RenewalState::Manual { issuer } => format!(
            "issuer {issuer}: Key Vault cannot renew it; merge a certificate from the CA or import a new version"
        ),
        RenewalState::NoAction => {
            "no lifetime action: Key Vault neither renews it nor emails anyone".to_owned()
        }
        RenewalState::NotIssued => "pending creation: no certificate yet".to_owned(),
    }
}

/// `renewal_overdue` for a record, read back from its facts (false for other rows).
pub fn record_renewal_overdue(r: &Record, now: i64) -> bool {
    r.extra
        .as_ref()
        .filter(|x| x.key == JSON_KEY)
        .and_then(|x| serde_json::from_value::<KvFacts>(x.json.clone()).ok())
        .is_some_and(|f| renewal_overdue(&f, now))
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

impl KvFacts {
    /// The table note: overdue renewal first, then the state and the sentence.
    pub fn note(&self, now: i64) -> String {
        let mut s = String::new();
        if renewal_overdue(self, now) {
            s.push_str("RENEWAL OVERDUE: ");
        }
        let state = match self.enabled {
            Some(false) => "disabled",
            _ => "enabled",
        };
        s.push_str(&format!(
            "Key Vault {}/{} ({state}, issuer {}): {}",
            self.vault_name,
            self.name,
            opt(&self.issuer),
            renewal_sentence(self, now)
        ));
        s
    }

    fn details(&self) -> Vec<(String, String)> {
        let t = |v: Option<i64>| v.map(rfc3339).unwrap_or_else(|| "-".to_owned());
        let mut d = vec![
            ("Vault".to_owned(), self.vault.clone()),
            ("Certificate".to_owned(), self.name.clone()),
            (
                "Version".to_owned(),
                format!(
                    "{} ({}{} versions)",
                    self.version,
                    if self.current { "current; " } else { "older; " },
                    self.versions
                ),
            ),
            (
                "Enabled".to_owned(),
                match self.enabled {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "no".to_owned(),
                    None => "-".to_owned(),
                },
            ),
            ("Not before".to_owned(), t(self.not_before)),
            ("Expires".to_owned(), t(self.expires)),
            ("Issuer".to_owned(), opt(&self.issuer)),
            ("Renewal".to_owned(), self.renewal.clone()),
        ];
        for a in &self.lifetime_actions {
            d.push((
                "Lifetime".to_owned(),
                format!("{} {}", a.action, a.trigger()),
            ));
        }
        if let Some(p) = &self.pending {
            let mut v = p.status.clone();
            if let Some(x) = &p.status_details {
                v.push_str(&format!(": {x}"));
            }
            if let Some(e) = &p.error {
                v.push_str(&format!(" ({e})"));
            }
            d.push(("Pending operation".to_owned(), v));
        }
        if let Some(m) = self.validity_months {
            d.push(("Validity".to_owned(), format!("{m} months")));
        }
        if let Some(k) = &self.key_type {
            d.push(("Key".to_owned(), k.clone()));
        }
        d.push(("Id".to_owned(), self.id.clone()));
        d.into_iter()
            .map(|(k, v)| (k, super::clean(&v, 300)))
            .collect()
    }

    /// The row's extra facts (`Record::extra`), with the note and sentence at `now`.
    pub fn into_extra(mut self, now: i64) -> Extra {
        self.kind = "kv-certificate".to_owned();
        self.superseded = !self.current && self.current_version.is_some();
        self.renewal = renewal_sentence(&self, now);
        self.renewal_overdue = renewal_overdue(&self, now);
        self.renewal_due = match renewal_state(&self) {
            RenewalState::AutoRenew { due, .. } => Some(due),
            RenewalState::Failed { due, .. } => due,
            _ => None,
        };
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

/// A row for a version: its location is the version's id URL, so the row id is stable.
pub fn record_for(location: &str, leaf: Option<Arc<CertFacts>>, extra: Extra, now: i64) -> Record {
    Record::from_store(KIND, location, leaf, Vec::new(), extra, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn current(nbf_days_ago: i64, days_left: i64, action: &str, pct: i32) -> KvFacts {
        KvFacts {
            vault: "https://shop.vault.azure.net/".into(),
            vault_name: "shop".into(),
            name: "web".into(),
            version: "v1".into(),
            current: true,
            enabled: Some(true),
            not_before: Some(NOW - nbf_days_ago * DAY),
            expires: Some(NOW + days_left * DAY),
            issuer: Some("Self".into()),
            lifetime_actions: vec![LifetimeAction {
                action: action.into(),
                lifetime_percentage: Some(pct),
                days_before_expiry: None,
            }],
            ..KvFacts::default()
        }
    }

    #[test]
    fn auto_renew_at_80_percent_says_when_it_is_due() {
        // 100-day certificate, 10 days old: due at day 80, 70 days from now.
        let f = current(10, 90, "AutoRenew", 80);
        assert_eq!(
            renewal_state(&f),
            RenewalState::AutoRenew {
                due: NOW + 70 * DAY,
                trigger: "at 80% of lifetime".into()
            }
        );
        let s = renewal_sentence(&f, NOW);
        assert_eq!(
            s,
            format!(
                "Key Vault auto-renews at 80% of lifetime: due {}",
                date(NOW + 70 * DAY)
            )
        );
        assert!(!renewal_overdue(&f, NOW));
    }

    #[test]
    fn auto_renew_point_passed_a_day_ago_without_renewal_is_overdue() {
        // 100-day certificate, 85 days old: due 5 days ago.
        let f = current(85, 15, "AutoRenew", 80);
        assert!(renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW).starts_with("renewal overdue: "));
        assert!(f.note(NOW).starts_with("RENEWAL OVERDUE: "));
        // Within the day of grace: renewing, not overdue.
        let f = current(80, 20, "AutoRenew", 80);
        assert!(!renewal_overdue(&f, NOW + DAY / 2));
    }

    #[test]
    fn emails_only_is_said_and_never_overdue() {
        let f = current(85, 15, "EmailContacts", 80);
        assert!(!renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW)
            .starts_with("emails only: contacts are emailed at 80% of lifetime"));
    }

    #[test]
    fn older_versions_disabled_and_unknown_issuers_are_never_overdue() {
        let mut f = current(85, 15, "AutoRenew", 80);
        f.current = false;
        f.current_version = Some("v2".into());
        assert!(!renewal_overdue(&f, NOW));
        assert_eq!(
            renewal_sentence(&f, NOW),
            "older version: Key Vault serves version v2"
        );
        let mut f = current(85, 15, "AutoRenew", 80);
        f.enabled = Some(false);
        assert!(!renewal_overdue(&f, NOW));
        let mut f = current(85, 15, "AutoRenew", 80);
        f.issuer = Some("Unknown".into());
        assert!(!renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW).contains("cannot renew"));
    }

    #[test]
    fn a_failed_operation_past_due_is_overdue_and_days_before_expiry_count_back() {
        let mut f = current(85, 15, "AutoRenew", 80);
        f.pending = Some(PendingOperation {
            status: "failed".into(),
            error: Some("CertificateOperationFailed: issuer refused".into()),
            ..PendingOperation::default()
        });
        assert!(renewal_overdue(&f, NOW));
        assert!(renewal_sentence(&f, NOW).contains("issuer refused"));
        let a = LifetimeAction {
            action: "AutoRenew".into(),
            lifetime_percentage: None,
            days_before_expiry: Some(30),
        };
        assert_eq!(a.due(None, NOW), Some(NOW - 30 * DAY));
        assert_eq!(a.trigger(), "30 days before expiry");
    }

    #[test]
    fn record_helper_reads_the_facts_back() {
        let f = current(85, 15, "AutoRenew", 80);
        let r = record_for(
            "https://shop.vault.azure.net/certificates/web/v1",
            None,
            f.into_extra(NOW),
            NOW,
        );
        assert!(record_renewal_overdue(&r, NOW));
        assert!(r.id.starts_with("azure-"));
        assert_eq!(r.extra.as_ref().unwrap().json["kind"], "kv-certificate");
    }
}
