//! The dashboard's derived view: filter and sort over cached per-row facts.
//!
//! Pure and fast: `RowFacts` caches what sorting and filtering need (status, expiry, a
//! lower-case haystack of every text field), so a keystroke over 100,000 records only walks
//! plain data.

use regex::{Regex, RegexBuilder};

use super::keyaudit::{all_findings, KeyFinding, Summary};
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
    /// Rows with a key finding of warning or worse (see [`super::keyaudit`]).
    Keys,
}

impl QuickFilter {
    pub const ALL: [QuickFilter; 5] = [
        QuickFilter::Expired,
        QuickFilter::Critical,
        QuickFilter::Warning,
        QuickFilter::Errors,
        QuickFilter::Keys,
    ];

    pub fn label(self) -> &'static str {
        match self {
            QuickFilter::Expired => "expired",
            QuickFilter::Critical => "critical",
            QuickFilter::Warning => "warning",
            QuickFilter::Errors => "errors",
            QuickFilter::Keys => "keys",
        }
    }

    fn admits(self, f: &RowFacts) -> bool {
        let s = f.a.status;
        match self {
            QuickFilter::Keys => f.keys.is_problem(),
            QuickFilter::Expired => s == Status::Expired,
            QuickFilter::Critical => {
                matches!(s, Status::Revoked | Status::Critical | Status::NotYetValid)
            }
            QuickFilter::Warning => s == Status::Warning,
            QuickFilter::Errors => s == Status::Error,
        }
    }
}

/// A text filter: case-insensitive regex over every text field; a leading `!` inverts. Text
/// that is not a valid regex is matched literally. `spiffe:` filters by SPIFFE ID instead
/// (see [`SpiffeQuery`]).
#[derive(Debug, Clone, Default)]
pub struct TextFilter {
    pub text: String,
    invert: bool,
    regex: Option<Regex>,
    literal: Option<String>,
    spiffe: Option<SpiffeQuery>,
}

/// The `spiffe:` filter: rows by the SPIFFE IDs their certificate names in its URI SANs (and
/// the identity a SPIFFE row stands for), from every source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpiffeQuery {
    /// `spiffe:` alone: rows with any SPIFFE ID.
    Any,
    /// `spiffe://TD/PATH...`: rows with a SPIFFE ID that starts with this (case-insensitive).
    /// `spiffe://td/` is exactly the trust domain `td`; `spiffe://td/ns/shop/` everything
    /// under that path.
    Prefix(String),
    /// `spiffe:TEXT`: rows with a SPIFFE ID containing TEXT.
    Contains(String),
}

impl SpiffeQuery {
    /// The query of a filter text that starts with `spiffe:` (after any `!`).
    pub fn parse(pat: &str) -> Option<SpiffeQuery> {
        let rest = pat.get(..7).filter(|p| p.eq_ignore_ascii_case("spiffe:"))?;
        let rest = &pat[rest.len()..];
        Some(if rest.is_empty() {
            SpiffeQuery::Any
        } else if rest.starts_with("//") {
            // Not normalised like an ID: `spiffe://prod.ex` typed so far already selects.
            SpiffeQuery::Prefix(format!("spiffe:{rest}").to_lowercase())
        } else {
            SpiffeQuery::Contains(rest.to_lowercase())
        })
    }

    /// Whether one of `ids` (as [`spiffe_ids`] gives them) is selected.
    pub fn matches(&self, ids: &[String]) -> bool {
        match self {
            SpiffeQuery::Any => !ids.is_empty(),
            SpiffeQuery::Prefix(p) => ids.iter().any(|id| id.starts_with(p.as_str())),
            SpiffeQuery::Contains(t) => ids.iter().any(|id| id.contains(t.as_str())),
        }
    }
}

/// A SPIFFE ID as the filter compares it: lower-case, and a trust domain's own ID
/// (`spiffe://td`) with its trailing `/`, so `spiffe://td/` selects it too.
fn normalize_spiffe_id(id: &str) -> String {
    let mut s = id.to_lowercase();
    if s.len() > 9 && !s[9..].contains('/') {
        s.push('/');
    }
    s
}

/// The SPIFFE IDs of a row, normalised for the filter: the `spiffe://` URI SANs of its
/// certificate, and its location when that is a SPIFFE ID (a SPIFFE source's identity or
/// trust domain, even when its certificate could not be read).
pub fn spiffe_ids(r: &Record) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        let n = normalize_spiffe_id(s);
        if !out.contains(&n) {
            out.push(n);
        }
    };
    if let Some(c) = r.cert.as_deref() {
        for s in c.sans.iter().filter(|s| s.is_spiffe()) {
            add(s.value());
        }
    }
    if r.location.starts_with("spiffe://") {
        if let Some(id) = r.location.split_whitespace().next() {
            add(id);
        }
    }
    out
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
                ..TextFilter::default()
            };
        }
        if let Some(q) = SpiffeQuery::parse(pat) {
            return TextFilter {
                text: text.to_owned(),
                invert,
                spiffe: Some(q),
                ..TextFilter::default()
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
            spiffe: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.regex.is_none() && self.literal.is_none() && self.spiffe.is_none()
    }

    /// The `spiffe:` query, when the filter is one.
    pub fn spiffe(&self) -> Option<&SpiffeQuery> {
        self.spiffe.as_ref()
    }

    /// Whether a row passes: its SPIFFE IDs for a `spiffe:` filter, else its text.
    pub fn matches_row(&self, f: &RowFacts) -> bool {
        match &self.spiffe {
            Some(q) => q.matches(&f.spiffe_ids) != self.invert,
            None => self.matches(&f.haystack),
        }
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
    /// The location and the issuer's short name, for sorting.
    pub location: Box<str>,
    pub issuer: Box<str>,
    /// Lower-case text of every field, separated by newlines, for filtering.
    pub haystack: String,
    /// The row's SPIFFE IDs, normalised ([`spiffe_ids`]), for the `spiffe:` filter.
    pub spiffe_ids: Vec<String>,
    /// The row's key findings in short: the findings column, the `keys` filter and view.
    pub keys: Summary,
    /// The key-reuse findings these facts were made with: the fleet judges reuse across
    /// records, so a row's facts are renewed when its record's findings differ from these.
    pub reuse: Vec<KeyFinding>,
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
        let findings = all_findings(r);
        for f in &findings {
            push(f.code);
            push(&f.message);
            if let Some(l) = &f.location {
                push(l);
            }
        }
        let name = r
            .cert
            .as_deref()
            .map(|c| c.display_name().to_lowercase())
            .unwrap_or_default();
        let issuer = r
            .cert
            .as_deref()
            .map(|c| c.issuer_name())
            .unwrap_or("")
            .into();
        RowFacts {
            a,
            name,
            location: r.location.as_str().into(),
            issuer,
            haystack: hay.to_lowercase(),
            spiffe_ids: spiffe_ids(r),
            keys: Summary::of(&findings),
            reuse: r.key_reuse.clone(),
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

/// One row's sort key. The strings it compares are copied into one contiguous arena per
/// build: comparing through pointers into the records' scattered heap memory costs a cache
/// miss per comparison (about 10x slower at 100,000 rows).
struct SortKey {
    /// Unreadable rows sort last in every column but status (see `sort_fields`).
    unreadable: bool,
    rank: u8,
    text: (u32, u32),
    expiry: i64,
    location: (u32, u32),
    idx: u32,
}

/// What a column sorts by: (unreadable, rank, text, expiry); location and id break ties.
fn sort_fields<'a>(col: SortColumn, r: &'a Record, f: &'a RowFacts) -> (bool, u8, &'a str, i64) {
    let unreadable = col != SortColumn::Status && r.cert.is_none();
    let e = expiry_key(f);
    let c = r.cert.as_deref();
    match col {
        SortColumn::Status => (false, status_rank(f.a.status), "", e),
        SortColumn::Days => (unreadable, 0, "", e),
        SortColumn::Name => (unreadable, 0, f.name.as_str(), 0),
        SortColumn::Location => (unreadable, 0, "", 0),
        SortColumn::Source => (unreadable, 0, r.source.as_str(), e),
        SortColumn::Issuer => (unreadable, 0, &*f.issuer, e),
        SortColumn::Key => (unreadable, 0, c.map(|c| c.key.as_str()).unwrap_or(""), e),
    }
}

/// Indices of the records to show, filtered and sorted. Ties break on location, then id, so
/// the order is total and stable across refreshes. Unreadable locations stay at the end
/// whichever direction a column sorts in; the status sort ranks them itself.
pub fn build(records: &[Record], facts: &[RowFacts], spec: &ViewSpec) -> Vec<usize> {
    let mut arena: Vec<u8> = Vec::with_capacity(records.len() * 48);
    let mut put = |s: &str| {
        let off = arena.len() as u32;
        arena.extend_from_slice(s.as_bytes());
        (off, s.len() as u32)
    };
    let mut keys: Vec<SortKey> = Vec::new();
    for (i, (r, f)) in records.iter().zip(facts).enumerate() {
        if !(spec.quick.is_none_or(|q| q.admits(f)) && spec.text.matches_row(f)) {
            continue;
        }
        let (unreadable, rank, text, expiry) = sort_fields(spec.sort, r, f);
        keys.push(SortKey {
            unreadable,
            rank,
            text: put(text),
            expiry,
            location: put(&f.location),
            idx: i as u32,
        });
    }
    let get = |(off, len): (u32, u32)| &arena[off as usize..(off + len) as usize];
    keys.sort_unstable_by(|a, b| {
        if a.unreadable != b.unreadable {
            return a.unreadable.cmp(&b.unreadable);
        }
        let o = a
            .rank
            .cmp(&b.rank)
            .then_with(|| get(a.text).cmp(get(b.text)))
            .then_with(|| a.expiry.cmp(&b.expiry))
            .then_with(|| get(a.location).cmp(get(b.location)))
            .then_with(|| records[a.idx as usize].id.cmp(&records[b.idx as usize].id));
        if spec.reverse {
            o.reverse()
        } else {
            o
        }
    });
    keys.into_iter().map(|k| k.idx as usize).collect()
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

    fn row(location: &str, sans: &[&str]) -> RowFacts {
        let mut r = Record::new(crate::model::SourceKind::FILE, location.to_owned(), 0);
        r.cert = Some(std::sync::Arc::new(crate::testing::facts(
            "web", "CA", 0, 100, "Ed25519", sans,
        )));
        RowFacts::new(&r, 0, Thresholds::default())
    }

    /// `spiffe:` alone, `spiffe://` prefixes and `spiffe:TEXT`, over every source's rows.
    #[test]
    fn spiffe_filters_select_rows_by_the_ids_in_their_uri_sans() {
        let web = row(
            "/etc/tls/web.pem",
            &["spiffe://Prod.Example/ns/shop/sa/web", "web.test"],
        );
        let db = row(
            "k8s/ns/secret/db#tls.crt",
            &["spiffe://prod.example/ns/data/sa/db"],
        );
        let other = row("/etc/tls/x.pem", &["spiffe://prod.example.org/x"]);
        let plain = row("api.test:443", &["api.test", "https://api.test/"]);
        let mut bundle_rec = Record::new(
            crate::model::SourceKind::new("spiffe"),
            "spiffe://prod.example (trust bundle)".to_owned(),
            0,
        );
        bundle_rec.error = Some("does not parse".into());
        let bundle = RowFacts::new(&bundle_rec, 0, Thresholds::default());
        let all = [&web, &db, &other, &plain, &bundle];
        let pick = |q: &str| -> Vec<usize> {
            let f = TextFilter::new(q);
            all.iter()
                .enumerate()
                .filter(|(_, r)| f.matches_row(r))
                .map(|(i, _)| i)
                .collect()
        };
        assert_eq!(pick("spiffe:"), vec![0, 1, 2, 4]);
        assert_eq!(pick("!spiffe:"), vec![3]);
        assert_eq!(pick("SPIFFE:"), vec![0, 1, 2, 4]);
        // A prefix: the trust domain case-insensitively; `td/` is exactly that domain.
        assert_eq!(pick("spiffe://prod.example"), vec![0, 1, 2, 4]);
        assert_eq!(pick("spiffe://prod.example/"), vec![0, 1, 4]);
        assert_eq!(pick("spiffe://prod.example/ns/shop"), vec![0]);
        assert_eq!(pick("spiffe://prod.example/ns/"), vec![0, 1]);
        assert_eq!(pick("spiffe://nowhere/"), Vec::<usize>::new());
        assert_eq!(pick("spiffe:sa/db"), vec![1]);
        assert!(!TextFilter::new("spiffe:").is_empty());
        assert_eq!(
            spiffe_ids(&bundle_rec),
            vec!["spiffe://prod.example/".to_owned()]
        );
    }
}
