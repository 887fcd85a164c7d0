//! Expiry classes: status of a record at an instant, with thresholds.
//!
//! Pure functions of (record, now, thresholds), so they are tested at fixed instants.

use serde::Serialize;

use super::record::Record;

pub const DAY: i64 = 86_400;

/// Warning and critical thresholds, as durations before expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub warn_secs: i64,
    pub crit_secs: i64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            warn_secs: 30 * DAY,
            crit_secs: 7 * DAY,
        }
    }
}

/// Status of a record. Ordered from worst to best for sorting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Expired,
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
            Status::Critical => "critical",
            Status::NotYetValid => "not_yet_valid",
            Status::Error => "error",
            Status::Warning => "warning",
            Status::Ok => "ok",
        }
    }

    /// Every status, worst first.
    pub const ALL: [Status; 6] = [
        Status::Expired,
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
}

/// Floor division of seconds into days (so -1 s is day -1, like `fleet.sh`).
pub fn days_floor(secs: i64) -> i64 {
    secs.div_euclid(DAY)
}

/// Judge a record at `now` (unix seconds).
pub fn assess(record: &Record, now: i64, t: Thresholds) -> Assessment {
    let Some(leaf) = record.cert.as_deref() else {
        return Assessment {
            status: Status::Error,
            days_left: None,
            effective_not_after: None,
            cause: None,
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
    let status = if left <= 0 {
        Status::Expired
    } else if leaf.not_before > now {
        Status::NotYetValid
    } else if left < t.crit_secs {
        Status::Critical
    } else if left < t.warn_secs {
        Status::Warning
    } else {
        Status::Ok
    };
    Assessment {
        status,
        days_left: Some(days_floor(left)),
        effective_not_after: Some(effective),
        cause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_down_like_fleet_sh() {
        assert_eq!(days_floor(DAY * 3 - 1), 2);
        assert_eq!(days_floor(-1), -1);
        assert_eq!(days_floor(-DAY), -1);
        assert_eq!(days_floor(-DAY - 1), -2);
        assert_eq!(days_floor(0), 0);
    }
}
