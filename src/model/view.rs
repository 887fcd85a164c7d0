//! The dashboard's derived view: filter and sort over cached per-row facts.
//!
//! Pure and fast: `RowFacts` caches what sorting and filtering need (status, expiry, a
//! lower-case haystack of every text field), so a keystroke over 100,000 records only walks
//! plain data.

use std::cmp::Ordering;

use regex::{Regex, RegexBuilder};

use super::record::Record;
use super::status::{assess, Assessment, Status, Thresholds};

/// Sortable columns (Shift + the letter in brackets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortColumn {
    /// [S]tatus: worst first, then soonest expiry.
    Status,
    /// [D]ays left / expiry date.
    Days,
    /// [N]ame: subject common name or first SAN.
    Name,
    /// [L]ocation.
    Location,
    /// s[O]urce.
    Source,
    /// [I]ssuer.
    Issuer,
    /// [K]ey type.
    Key,
}

impl SortColumn {
    pub const ALL: [SortColumn; 7] = [
        SortColumn::Status,
        SortColumn::Days,
        SortColumn::Name,
        SortColumn::Location,
        SortColumn::Source,
        SortColumn::Issuer,
        SortColumn::Key,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortColumn::Status => "status",
            SortColumn::Days => "days",
            SortColumn::Name => "name",
            SortColumn::Location => "location",
            SortColumn::Source => "source",
            SortColumn::Issuer => "issuer",
            SortColumn::Key => "key",
        }
    }
}

/// Quick filters by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuickFilter {
    Expired,
    /// Critical and not yet valid.
    Critical,
    Warning,
    Errors,
}

impl QuickFilter {
    pub fn label(self) -> &'static str {
        match self {
            QuickFilter::Expired => "expired",
            QuickFilter::Critical => "critical",
            QuickFilter::Warning => "warning",
            QuickFilter::Errors => "errors",
        }
    }

    fn admits(self, s: Status) -> bool {
        match self {
            QuickFilter::Expired => s == Status::Expired,
            QuickFilter::Critical => matches!(s, Status::Critical | Status::NotYetValid),
            QuickFilter::Warning => s == Status::Warning,
            QuickFilter::Errors => s == Status::Error,
        }
    }
}

/// A text filter: case-insensitive regex over every text field; a leading `!` inverts. Text
/// that is not a valid regex is matched literally.
#[derive(Debug, Clone, Default)]
pub struct TextFilter {
    pub text: String,
    invert: bool,
    regex: Option<Regex>,
    literal: Option<String>,
}

impl TextFilter {
    pub fn new(text: &str) -> TextFilter {
        let (invert, pat) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if pat.is_empty() {
            return TextFilter {
                text: text.to_owned(),
                invert,
                regex: None,
                literal: None,
            };
        }
        let regex = RegexBuilder::new(pat)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .ok();
        let literal = if regex.is_none() {
            Some(pat.to_lowercase())
        } else {
            None
        };
        TextFilter {
            text: text.to_owned(),
            invert,
            regex,
            literal,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.regex.is_none() && self.literal.is_none()
    }

    /// True when the text did not compile as a regex (matched literally instead).
    pub fn is_literal_fallback(&self) -> bool {
        self.literal.is_some()
    }

    pub fn matches(&self, haystack: &str) -> bool {
        let hit = match (&self.regex, &self.literal) {
            (Some(r), _) => r.is_match(haystack),
            (None, Some(l)) => haystack.contains(l.as_str()),
            (None, None) => return true,
        };
        hit != self.invert
    }
}

/// What sorting and filtering need of one record, cached.
#[derive(Debug, Clone)]
pub struct RowFacts {
    pub a: Assessment,
    /// Lower-case display name, for sorting.
    pub name: String,
    /// Lower-case text of every field, separated by newlines, for filtering.
    pub haystack: String,
}

impl RowFacts {
    pub fn new(r: &Record, now: i64, t: Thresholds) -> RowFacts {
        let a = assess(r, now, t);
        let mut hay = String::with_capacity(256);
        let mut push = |s: &str| {
            hay.push_str(s);
            hay.push('\n');
        };
        push(&r.location);
        push(r.source.as_str());
        push(a.status.as_str());
        if let Some(c) = r.cert.as_deref() {
            push(&c.subject);
            push(&c.issuer);
            push(&c.serial);
            push(&c.key);
            push(&c.signature_algorithm);
            for s in &c.sans {
                push(&s.render());
            }
        }
        if let Some(e) = &r.error {
            push(e);
        }
        if let Some(v) = r.tls.as_ref().and_then(|t| t.verification.as_ref()) {
            push(&v.reason);
        }
        let name = r
            .cert
            .as_deref()
            .map(|c| c.display_name().to_lowercase())
            .unwrap_or_default();
        RowFacts {
            a,
            name,
            haystack: hay.to_lowercase(),
        }
    }
}

/// How the view is built.
#[derive(Debug, Clone)]
pub struct ViewSpec {
    pub sort: SortColumn,
    pub reverse: bool,
    pub text: TextFilter,
    pub quick: Option<QuickFilter>,
}

impl Default for ViewSpec {
    fn default() -> Self {
        ViewSpec {
            sort: SortColumn::Status,
            reverse: false,
            text: TextFilter::default(),
            quick: None,
        }
    }
}

fn expiry_key(f: &RowFacts) -> i64 {
    f.a.effective_not_after.unwrap_or(i64::MAX)
}

fn status_rank(s: Status) -> u8 {
    Status::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

fn compare(col: SortColumn, ra: &Record, fa: &RowFacts, rb: &Record, fb: &RowFacts) -> Ordering {
    let by_expiry = || expiry_key(fa).cmp(&expiry_key(fb));
    let primary = match col {
        SortColumn::Status => status_rank(fa.a.status)
            .cmp(&status_rank(fb.a.status))
            .then_with(by_expiry),
        SortColumn::Days => by_expiry(),
        SortColumn::Name => fa.name.cmp(&fb.name),
        SortColumn::Location => ra.location.cmp(&rb.location),
        SortColumn::Source => ra.source.cmp(&rb.source).then_with(by_expiry),
        SortColumn::Issuer => {
            let ia = ra.cert.as_deref().map(|c| c.issuer_name()).unwrap_or("");
            let ib = rb.cert.as_deref().map(|c| c.issuer_name()).unwrap_or("");
            ia.cmp(ib).then_with(by_expiry)
        }
        SortColumn::Key => {
            let ka = ra.cert.as_deref().map(|c| c.key.as_str()).unwrap_or("");
            let kb = rb.cert.as_deref().map(|c| c.key.as_str()).unwrap_or("");
            ka.cmp(kb).then_with(by_expiry)
        }
    };
    // Ties break on location so the order is total and stable across refreshes.
    primary
        .then_with(|| ra.location.cmp(&rb.location))
        .then_with(|| ra.id.cmp(&rb.id))
}

/// Indices of the records to show, filtered and sorted.
pub fn build(records: &[Record], facts: &[RowFacts], spec: &ViewSpec) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..records.len())
        .filter(|&i| {
            let f = &facts[i];
            spec.quick.is_none_or(|q| q.admits(f.a.status)) && spec.text.matches(&f.haystack)
        })
        .collect();
    idx.sort_unstable_by(|&a, &b| {
        // Unreadable locations have no name, expiry, issuer or key: whichever direction those
        // columns sort in, they stay at the end. The status sort ranks them on purpose.
        let (ua, ub) = (records[a].cert.is_none(), records[b].cert.is_none());
        if spec.sort != SortColumn::Status && ua != ub {
            return ua.cmp(&ub);
        }
        let o = compare(spec.sort, &records[a], &facts[a], &records[b], &facts[b]);
        if spec.reverse {
            o.reverse()
        } else {
            o
        }
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_is_case_insensitive_regex_with_inversion_and_literal_fallback() {
        let f = TextFilter::new("API\\.demo");
        assert!(f.matches("api.demo.test"));
        assert!(!f.matches("www.demo.test"));
        let f = TextFilter::new("!api");
        assert!(!f.matches("api.demo.test"));
        assert!(f.matches("www.demo.test"));
        let f = TextFilter::new("a(b");
        assert!(f.is_literal_fallback());
        assert!(f.matches("xa(by"));
        assert!(TextFilter::new("").matches("anything"));
        assert!(TextFilter::new("!").matches("anything"));
    }
}
