//! Expiry classes: status of a record at an instant, with thresholds.
//!
//! Pure functions of (record, now, thresholds), so they are tested at fixed instants.

use serde::Serialize;

use super::record::Record;

pub const DAY: i64 = 86_400;

/// Warning and critical thresholds: durations before expiry for ordinary certificates, and
/// percentages of lifetime used for short-lived ones (a lifetime under `short_lived_secs`),
/// whose agents rotate them long before any day-based threshold could say something useful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub warn_secs: i64,
    pub crit_secs: i64,
    /// Short-lived: warning from this percentage of the lifetime used.
    pub warn_lifetime_pct: u8,
    /// Short-lived: critical (rotation overdue) from this percentage of the lifetime used.
    pub crit_lifetime_pct: u8,
    /// A certificate whose whole lifetime is shorter than this is short-lived.
    pub short_lived_secs: i64,
}

/// SPIRE's agent rotates an SVID at half its lifetime: at 60% it is late, at 70% overdue.
pub const DEFAULT_WARN_LIFETIME_PCT: u8 = 60;
pub const DEFAULT_CRIT_LIFETIME_PCT: u8 = 70;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_secs: 30 * DAY,
            crit_secs: 7 * DAY,
            warn_lifetime_pct: DEFAULT_WARN_LIFETIME_PCT,
            crit_lifetime_pct: DEFAULT_CRIT_LIFETIME_PCT,
            short_lived_secs: 7 * DAY,
        }
    }
}

/// How much of a certificate's validity window has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// not_after - not_before, in seconds.
    pub total_secs: i64,
    /// Percentage of the lifetime used at the instant judged, 0..=100, rounded down.
    pub used_pct: u8,
    /// Judged by lifetime used rather than days left (lifetime under the short-lived bound).
    pub short_lived: bool,
}

impl Lifetime {
    pub fn new(not_before: i64, not_after: i64, now: i64, t: Thresholds) -> Lifetime {
        let total = (not_after - not_before).max(1);
        let used = ((now - not_before) as i128 * 100 / total as i128).clamp(0, 100) as u8;
        Lifetime {
            total_secs: total,
            used_pct: used,
            short_lived: total < t.short_lived_secs,
        }
    }
}

/// A duration in the largest whole unit that fits: `1h`, `90m`, `7d`, `45s`.
pub fn compact_duration(secs: i64) -> String {
    let s = secs.max(0);
    if s >= DAY && s % DAY == 0 {
        format!("{}d", s / DAY)
    } else if s >= 3600 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s >= 60 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else if s >= 3600 {
        format!("{}h{}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{s}s")
    }
}

/// Status of a record. Ordered from worst to best for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Expired,
    /// The issuer revoked it (OCSP, CRL, or the PKI that issued it says so).
    Revoked,
    Critical,
    NotYetValid,
    Error,
    Warning,
    Ok,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Expired => "expired",
            Status::Revoked => "revoked",
            Status::Critical => "critical",
            Status::NotYetValid => "not_yet_valid",
            Status::Error => "error",
            Status::Warning => "warning",
            Status::Ok => "ok",
        }
    }

    /// Every status, worst first.
    pub const ALL: [Status; 7] = [
        Status::Expired,
        Status::Revoked,
        Status::Critical,
        Status::NotYetValid,
        Status::Error,
        Status::Warning,
        Status::Ok,
    ];
}

/// Which certificate decides the record's expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryCause {
    /// 0 is the leaf; N is the Nth further certificate of the served chain.
    pub position: usize,
    pub subject: String,
    pub not_after: i64,
}

/// A record judged at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub status: Status,
    /// Whole days until the effective expiry, rounded down (negative when expired).
    pub days_left: Option<i64>,
    /// The earliest expiry that matters (leaf or a served intermediate).
    pub effective_not_after: Option<i64>,
    /// Set when something other than the leaf expires first.
    pub cause: Option<ExpiryCause>,
    /// The leaf's lifetime used; `short_lived` when the status was judged by it.
    pub lifetime: Option<Lifetime>,
}

impl Assessment {
    /// For a short-lived certificate: `72% of 1h lifetime used; rotation overdue` (critical),
    /// `...; rotation late` (warning), or just the share used. `None` for other certificates.
    pub fn lifetime_note(&self) -> Option<String> {
        let l = self.lifetime.filter(|l| l.short_lived)?;
        let mut s = format!(
            "{}% of {} lifetime used",
            l.used_pct,
            compact_duration(l.total_secs)
        );
        match self.status {
            Status::Critical if self.cause.is_none() => s.push_str("; rotation overdue"),
            Status::Warning if self.cause.is_none() => s.push_str("; rotation late"),
            _ => {}
        }
        Some(s)
    }
}

/// Floor division of seconds into days (so -1 s is day -1, like `fleet.sh`).
pub fn days_floor(secs: i64) -> i64 {
    secs.div_euclid(DAY)
}

/// True when the row's source says its automatic renewal is overdue (the facts of a cloud
/// store carry `renewal_overdue: true`, judged when it was observed): such a row is critical
/// however far its expiry is, because nobody else is going to renew it.
pub fn renewal_overdue(record: &Record) -> bool {
    record
        .extra
        .as_ref()
        .is_some_and(|x| x.json.get("renewal_overdue") == Some(&serde_json::Value::Bool(true)))
}

/// True when the row's source could not say when the certificate became valid (an exporter
/// series with `not_after` only; facts carry `not_before_unknown: true`): its lifetime is
/// unknown, so it is judged by days left.
pub fn not_before_unknown(record: &Record) -> bool {
    record
        .extra
        .as_ref()
        .is_some_and(|x| x.json.get("not_before_unknown") == Some(&serde_json::Value::Bool(true)))
}

/// True when the row's source says this certificate is an older version that is not served
/// any more (a Key Vault version replaced by a newer one; facts carry `superseded: true`): its
/// expiry is history, not a risk, so it never ranks above ok (unless revoked) and the current
/// version's status is the one that counts.
pub fn superseded(record: &Record) -> bool {
    record
        .extra
        .as_ref()
        .is_some_and(|x| x.json.get("superseded") == Some(&serde_json::Value::Bool(true)))
}

/// True when the row's source reported facts about a certificate it never showed (a mesh
/// proxy's admin endpoint: serial, names, dates; facts carry `facts_only: true`): there is no
/// fingerprint, subject, issuer or PEM to show, whatever the record's facts hold.
pub fn facts_only(record: &Record) -> bool {
    record
        .extra
        .as_ref()
        .is_some_and(|x| x.json.get("facts_only") == Some(&serde_json::Value::Bool(true)))
}

/// True when the row's validity start is an estimate (facts carry `not_before_assumed: true`):
/// it judges the lifetime used but is not shown as the certificate's `not_before`.
pub fn not_before_assumed(record: &Record) -> bool {
    record
        .extra
        .as_ref()
        .is_some_and(|x| x.json.get("not_before_assumed") == Some(&serde_json::Value::Bool(true)))
}

/// Judge a record at `now` (unix seconds).
pub fn assess(record: &Record, now: i64, t: Thresholds) -> Assessment {
    let Some(leaf) = record.cert.as_deref() else {
        return Assessment {
            status: Status::Error,
            days_left: None,
            effective_not_after: None,
            cause: None,
            lifetime: None,
        };
    };
    // The earliest expiry among the leaf and the served intermediates. A self-issued CA in the
    // chain is a root the client holds its own copy of, so its served copy does not matter.
    let mut effective = leaf.not_after;
    let mut cause = None;
    for (i, c) in record.chain.iter().enumerate() {
        if c.is_ca && c.self_issued {
            continue;
        }
        if c.not_after < effective {
            effective = c.not_after;
            cause = Some(ExpiryCause {
                position: i + 1,
                subject: c.subject.clone(),
                not_after: c.not_after,
            });
        }
    }
    let left = effective - now;
    let revoked = record.revocation.as_ref().is_some_and(|r| r.is_revoked());
    let must_staple_unmet = record
        .revocation
        .as_ref()
        .is_some_and(|r| r.must_staple_unmet);
    let lifetime = Lifetime::new(leaf.not_before, leaf.not_after, now, t);
    // A short-lived leaf is judged by how much of its lifetime is used, unless something in its
    // chain expires first (then the days left of that one decide, as for any certificate).
    let by_lifetime = lifetime.short_lived && cause.is_none() && !not_before_unknown(record);
    let status = if left <= 0 {
        Status::Expired
    } else if revoked {
        Status::Revoked
    } else if leaf.not_before > now {
        Status::NotYetValid
    } else if renewal_overdue(record) {
        // A store that should have renewed it by itself and has not: the loudest live row.
        Status::Critical
    } else if by_lifetime {
        if lifetime.used_pct >= t.crit_lifetime_pct {
            Status::Critical
        } else if lifetime.used_pct >= t.warn_lifetime_pct || must_staple_unmet {
            Status::Warning
        } else {
            Status::Ok
        }
    } else if left < t.crit_secs {
        Status::Critical
    } else if left < t.warn_secs || must_staple_unmet {
        // Must-Staple without a staple: clients that honour it refuse the connection.
        Status::Warning
    } else {
        Status::Ok
    };
    let status = if superseded(record) && status != Status::Revoked {
        Status::Ok
    } else {
        status
    };
    Assessment {
        status,
        days_left: Some(days_floor(left)),
        effective_not_after: Some(effective),
        cause,
        lifetime: Some(lifetime),
    }
}

/// The earliest instant after `now` at which [`assess`] may judge the record differently
/// (expiry, the critical and warning thresholds, validity start, the lifetime-used
/// thresholds of a short-lived certificate), or `None` when nothing changes with time alone
/// (an error row, or one already expired). A caller that judged at `now` may keep that
/// judgement until this instant; it may be early (a boundary that changes nothing), never late.
pub fn next_change(record: &Record, now: i64, t: Thresholds) -> Option<i64> {
    let leaf = record.cert.as_deref()?;
    let effective = record
        .chain
        .iter()
        .filter(|c| !(c.is_ca && c.self_issued))
        .map(|c| c.not_after)
        .fold(leaf.not_after, i64::min);
    let total = (leaf.not_after - leaf.not_before).max(1);
    // `used_pct >= p` from the first second at which the rounded-down percentage reaches p.
    let pct = |p: u8| leaf.not_before + (i64::from(p) * total + 99) / 100;
    let short = total < t.short_lived_secs;
    [
        // Expired from `left <= 0`, i.e. at the effective expiry itself.
        Some(effective),
        // x509_cert_expired: the leaf's own notAfter.
        Some(leaf.not_after),
        // Critical and warning from `left < threshold`: one second after the boundary.
        Some(effective - t.crit_secs + 1),
        Some(effective - t.warn_secs + 1),
        // Valid from notBefore.
        Some(leaf.not_before),
        short.then(|| pct(t.warn_lifetime_pct)),
        short.then(|| pct(t.crit_lifetime_pct)),
    ]
    .into_iter()
    .flatten()
    .filter(|&c| c > now)
    .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Revocation, SourceKind};

    fn record(not_before: i64, not_after: i64) -> Record {
        let mut p = rcgen::CertificateParams::new(vec!["r.example".to_owned()]).expect("params");
        p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("nb");
        p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("na");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("cert");
        let facts = crate::model::CertFacts::from_der(cert.der()).expect("facts");
        Record::new(SourceKind::TLS, "r.example:443".into(), 0)
            .with_cert(std::sync::Arc::new(facts))
    }

    #[test]
    fn a_revoked_certificate_is_revoked_unless_expired_and_unknown_changes_nothing() {
        let now = 1_800_000_000;
        let t = Thresholds::default();
        let mut r = record(now - DAY, now + 100 * DAY);
        assert_eq!(assess(&r, now, t).status, Status::Ok);
        r.revocation = Some(Revocation::unknown("revocation unknown: responder down"));
        assert_eq!(assess(&r, now, t).status, Status::Ok, "soft-fail");
        r.revocation = Some(Revocation::revoked(
            now - 10,
            Some("keyCompromise".into()),
            "CRL x",
        ));
        let a = assess(&r, now, t);
        assert_eq!(a.status, Status::Revoked);
        assert_eq!(a.days_left, Some(100), "days left still shown");
        assert!(Status::Revoked < Status::Critical && Status::Expired < Status::Revoked);
        let mut old = record(now - 10 * DAY, now - DAY);
        old.revocation = r.revocation.clone();
        assert_eq!(assess(&old, now, t).status, Status::Expired);
        let mut ms = record(now - DAY, now + 100 * DAY);
        ms.revocation = Some(Revocation {
            must_staple_unmet: true,
            ..Revocation::good("OCSP http://x")
        });
        assert_eq!(assess(&ms, now, t).status, Status::Warning);
    }

    #[test]
    fn an_overdue_automatic_renewal_is_critical_far_from_expiry() {
        let now = 1_800_000_000;
        let mut r = record(now - DAY, now + 100 * DAY);
        r.extra = Some(std::sync::Arc::new(crate::model::Extra {
            key: "azure",
            json: serde_json::json!({"renewal_overdue": true}),
            details: Vec::new(),
            note: None,
        }));
        assert_eq!(
            assess(&r, now, Thresholds::default()).status,
            Status::Critical
        );
        let mut old = record(now - 10 * DAY, now - DAY);
        old.extra = r.extra.clone();
        assert_eq!(
            assess(&old, now, Thresholds::default()).status,
            Status::Expired
        );
    }

    #[test]
    fn a_row_without_a_known_start_is_judged_by_days_not_as_short_lived() {
        // An exporter series gives not_after only: the source puts not_before at the read
        // time, which must not make a 3-day-left certificate a fresh short-lived one.
        let now = 1_800_000_000;
        let mut r = record(now, now + 3 * DAY);
        assert_eq!(assess(&r, now, Thresholds::default()).status, Status::Ok);
        r.extra = Some(std::sync::Arc::new(crate::model::Extra {
            key: "prometheus",
            json: serde_json::json!({"not_before_unknown": true}),
            details: Vec::new(),
            note: None,
        }));
        assert_eq!(
            assess(&r, now, Thresholds::default()).status,
            Status::Critical
        );
    }

    #[test]
    fn a_short_lived_certificate_is_judged_by_lifetime_used_not_days() {
        let now = 1_800_000_000;
        let t = Thresholds::default();
        // A 1-hour SVID: half used is fine (the agent rotates at half-life) even with 30 min
        // left, far inside the 7-day critical threshold.
        let half = record(now - 1800, now + 1800);
        let a = assess(&half, now, t);
        assert_eq!(a.status, Status::Ok);
        assert_eq!(
            a.lifetime_note().as_deref(),
            Some("50% of 1h lifetime used")
        );
        let late = record(now - 2340, now + 1260); // 65%
        let a = assess(&late, now, t);
        assert_eq!(a.status, Status::Warning);
        assert_eq!(
            a.lifetime_note().as_deref(),
            Some("65% of 1h lifetime used; rotation late")
        );
        let overdue = record(now - 2592, now + 1008); // 72%
        let a = assess(&overdue, now, t);
        assert_eq!(a.status, Status::Critical);
        assert_eq!(
            a.lifetime_note().as_deref(),
            Some("72% of 1h lifetime used; rotation overdue")
        );
        assert_eq!(
            assess(&record(now - 3600, now), now, t).status,
            Status::Expired
        );
        // Settable: with 80/90 the 72% one is fine.
        let loose = Thresholds {
            warn_lifetime_pct: 80,
            crit_lifetime_pct: 90,
            ..t
        };
        assert_eq!(assess(&overdue, now, loose).status, Status::Ok);
        // A 90-day certificate is judged by days; its lifetime is reported, not used.
        let long = record(now - 80 * DAY, now + 10 * DAY);
        let a = assess(&long, now, t);
        assert_eq!(a.status, Status::Warning);
        assert_eq!(
            a.lifetime.map(|l| (l.used_pct, l.short_lived)),
            Some((88, false))
        );
        assert_eq!(a.lifetime_note(), None);
        // The short-lived bound is settable: a 24-hour certificate with 1 hour left is
        // critical by days when the bound is below a day.
        let day = record(now - 23 * 3600, now + 3600);
        assert_eq!(assess(&day, now, t).status, Status::Critical, "95% used");
        let mut r = record(now - 3 * 3600, now + 21 * 3600);
        assert_eq!(assess(&r, now, t).status, Status::Ok, "12% of 24h");
        let bound = Thresholds {
            short_lived_secs: 3600,
            ..t
        };
        assert_eq!(assess(&r, now, bound).status, Status::Critical, "21h < 7d");
        r.revocation = Some(Revocation::revoked(now, None, "x"));
        assert_eq!(assess(&r, now, t).status, Status::Revoked);
    }

    #[test]
    fn compact_durations_use_the_largest_whole_unit() {
        assert_eq!(compact_duration(3600), "1h");
        assert_eq!(compact_duration(86_400), "1d");
        assert_eq!(compact_duration(5400), "90m");
        assert_eq!(compact_duration(3601), "1h0m");
        assert_eq!(compact_duration(45), "45s");
    }

    #[test]
    fn days_round_down_like_fleet_sh() {
        assert_eq!(days_floor(DAY * 3 - 1), 2);
        assert_eq!(days_floor(-1), -1);
        assert_eq!(days_floor(-DAY), -1);
        assert_eq!(days_floor(-DAY - 1), -2);
        assert_eq!(days_floor(0), 0);
    }

    #[test]
    fn a_judgement_holds_until_the_next_change_and_no_longer_than_needed() {
        let now = 1_800_000_000;
        let t = Thresholds::default();
        let cases = [
            record(now - DAY, now + 100 * DAY),
            record(now - DAY, now + 30 * DAY),
            record(now - DAY, now + 7 * DAY + 5),
            record(now - DAY, now + 3),
            record(now + 50, now + 400 * DAY),
            record(now - 3 * 3600, now + 21 * 3600),
            record(now - 3599, now + 1),
            record(now - 100 * DAY, now + 3600),
        ];
        for r in &cases {
            let at = assess(r, now, t).status;
            match next_change(r, now, t) {
                Some(next) => {
                    assert!(next > now);
                    // Unchanged at every second before it (sampled densely near both ends).
                    let span = next - now;
                    for s in (0..span.min(5000)).chain((span - span.min(5000))..span) {
                        assert_eq!(assess(r, now + s, t).status, at, "{r:?} at +{s}");
                    }
                }
                None => {
                    for s in [1, 3600, 400 * DAY] {
                        assert_eq!(assess(r, now + s, t).status, at);
                    }
                }
            }
        }
        // Expired and error rows never change by time alone.
        assert_eq!(next_change(&record(now - 10, now - 5), now, t), None);
        let err = Record::new(SourceKind::TLS, "x:443".into(), now).with_error("refused");
        assert_eq!(next_change(&err, now, t), None);
        // It finds the real changes: the day the warning starts, then critical, then expiry.
        let r = record(now - DAY, now + 40 * DAY);
        let w = next_change(&r, now, t).expect("warning");
        assert_eq!(assess(&r, w - 1, t).status, Status::Ok);
        assert_eq!(w, now + 10 * DAY + 1, "warning from 30 days left");
        let mut at = now;
        let mut seen = vec![assess(&r, at, t).status];
        while let Some(n) = next_change(&r, at, t) {
            at = n;
            let s = assess(&r, at, t).status;
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
        assert_eq!(
            seen,
            [
                Status::Ok,
                Status::Warning,
                Status::Critical,
                Status::Expired
            ]
        );
    }
}
