//! One certificate, many places; and served-versus-stored drift. Pure functions of records
//! and a clock, so they are tested at fixed instants.
//!
//! - **Places**: every row holding the same leaf (by SHA-256) is one certificate seen in
//!   several locations (an ACM ARN, a live endpoint, a Kubernetes Secret...); [`Place`] is one
//!   of them, as the details view and the JSON `locations` field list them.
//! - **Drift**: a live endpoint (a row read by a TLS handshake) that serves an *older*
//!   certificate than a store holds for the same DNS names (a file, a Kubernetes Secret, ACM,
//!   Key Vault, Certificate Manager, a Vault/OpenBao PKI, an ACME-managed file) has not picked up
//!   the renewal: the store's certificate is valid now and expires later, the names are the
//!   same set. [`drift`] says which store and by how much; Kubernetes rows have their own
//!   drift (`K8sInfo::drift`) against the Certificate that manages them.

use std::collections::HashMap;

use serde::Serialize;

use super::cert::{CertFacts, San};
use super::record::{Record, SourceKind};

/// One location of a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub id: String,
    pub source: SourceKind,
    pub location: String,
    /// `endpoint` (served live), `store` (held where endpoints are fed from), or `other`.
    pub role: &'static str,
}

/// A served certificate older than a store's for the same names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The store row holding the newer certificate.
    pub store_id: String,
    pub store_source: SourceKind,
    /// `ACM`, `Key Vault`, `Certificate Manager`, `Vault`, `Secret`, `file`...
    pub store_kind: &'static str,
    pub store_location: String,
    pub store_sha256: String,
    /// Unix seconds.
    pub store_not_after: i64,
    pub served_sha256: String,
    pub served_not_after: i64,
    /// Other stores that hold a newer certificate for the same names too.
    pub other_stores: usize,
    /// One sentence for notes and details.
    pub message: String,
}

/// True for a row read from a live endpoint (a TLS handshake, directly or after STARTTLS).
pub fn is_endpoint(r: &Record) -> bool {
    r.tls.is_some() || r.source == SourceKind::TLS
}

/// What kind of store a row is, when endpoints are fed from it: `None` for endpoints, CA
/// bundles, older versions kept for history, revoked certificates and unreadable rows.
pub fn store_kind(r: &Record) -> Option<&'static str> {
    if is_endpoint(r) || r.error.is_some() {
        return None;
    }
    let c = r.cert.as_deref()?;
    if c.is_ca
        || super::status::superseded(r)
        || r.revocation.as_ref().is_some_and(|v| v.is_revoked())
    {
        return None;
    }
    match r.source.as_str() {
        "file" => Some("file"),
        "acme" => Some("ACME file"),
        "aws" => Some("ACM"),
        "azure" => Some("Key Vault"),
        "gcp" => Some("Certificate Manager"),
        "vault" => Some("Vault"),
        "k8s" => match r.k8s.as_ref().map(|k| k.kind.as_str()) {
            Some("Secret") => Some("Secret"),
            _ => None,
        },
        _ => None,
    }
}

/// The role of a row among the places of its certificate.
pub fn role(r: &Record) -> &'static str {
    if is_endpoint(r) {
        "endpoint"
    } else if store_kind(r).is_some() {
        "store"
    } else {
        "other"
    }
}

/// The key endpoints and stores are matched on: the certificate's DNS names, lower-case,
/// sorted and de-duplicated. `None` for CA certificates and certificates without DNS names.
pub fn names_key(c: &CertFacts) -> Option<String> {
    if c.is_ca {
        return None;
    }
    let mut names: Vec<String> = c
        .sans
        .iter()
        .filter_map(|s| match s {
            San::Dns(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return None;
    }
    names.sort();
    names.dedup();
    Some(names.join(","))
}

/// The places of a set of rows, in a stable order: endpoints first, then stores, then the
/// rest, each by source and location.
pub fn places<'a>(rows: impl IntoIterator<Item = &'a Record>) -> Vec<Place> {
    let mut out: Vec<Place> = rows
        .into_iter()
        .map(|r| Place {
            id: r.id.clone(),
            source: r.source,
            location: r.location.clone(),
            role: role(r),
        })
        .collect();
    let rank = |p: &Place| match p.role {
        "endpoint" => 0,
        "store" => 1,
        _ => 2,
    };
    out.sort_by(|a, b| {
        rank(a)
            .cmp(&rank(b))
            .then_with(|| a.source.cmp(&b.source))
            .then_with(|| a.location.cmp(&b.location))
    });
    out
}

/// How many places a report lists per certificate (a CA bundle in every namespace would
/// otherwise make the report quadratic); `Places::total` counts them all.
pub const MAX_LISTED: usize = 100;

/// The places of one certificate, as a report lists them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Places {
    /// At most [`MAX_LISTED`], endpoints first.
    pub list: Vec<Place>,
    /// Every place, listed or not.
    pub total: usize,
}

/// A store row whose certificate is valid at the instant judged: what endpoints can be fed.
fn fresh_store(r: &Record, now: i64) -> Option<(&CertFacts, &'static str)> {
    let kind = store_kind(r)?;
    let c = r.cert.as_deref()?;
    (c.not_before <= now && now < c.not_after).then_some((c, kind))
}

/// Newest first; ties by location, then id, so the answer is stable.
fn newest_first(a: (&Record, &CertFacts), b: (&Record, &CertFacts)) -> std::cmp::Ordering {
    b.1.not_after
        .cmp(&a.1.not_after)
        .then_with(|| a.0.location.cmp(&b.0.location))
        .then_with(|| a.0.id.cmp(&b.0.id))
}

/// The drift of a served certificate given the newest store holding a newer one and how many
/// others do.
fn drift_to(s: &CertFacts, r: &Record, c: &CertFacts, kind: &'static str, others: usize) -> Drift {
    let when = crate::clock::rfc3339;
    let mut message = format!(
        "serves an older certificate (expires {}) than {kind} {} holds (expires {}): the endpoint has not picked up the renewed certificate",
        when(s.not_after),
        super::text::clean(&r.location),
        when(c.not_after)
    );
    match others {
        0 => {}
        1 => message.push_str(" (1 more store holds a newer one)"),
        n => message.push_str(&format!(" ({n} more stores hold a newer one)")),
    }
    Drift {
        store_id: r.id.clone(),
        store_source: r.source,
        store_kind: kind,
        store_location: r.location.clone(),
        store_sha256: c.sha256.clone(),
        store_not_after: c.not_after,
        served_sha256: s.sha256.clone(),
        served_not_after: s.not_after,
        other_stores: others,
        message,
    }
}

/// Whether the endpoint row `served` serves an older certificate than one of `candidates`
/// holds in a store, at `now`. The store's certificate must have the same DNS names, be valid
/// at `now`, and expire later than the served one (so it is another certificate). The newest
/// such store is named. Pure.
pub fn drift<'a>(
    served: &Record,
    candidates: impl IntoIterator<Item = &'a Record>,
    now: i64,
) -> Option<Drift> {
    if !is_endpoint(served) {
        return None;
    }
    let s = served.cert.as_deref()?;
    let key = names_key(s)?;
    let mut newer: Vec<(&Record, &CertFacts, &'static str)> = candidates
        .into_iter()
        .filter_map(|r| {
            let (c, kind) = fresh_store(r, now)?;
            let same_names = names_key(c).as_deref() == Some(key.as_str());
            (c.not_after > s.not_after && same_names).then_some((r, c, kind))
        })
        .collect();
    newer.sort_by(|a, b| newest_first((a.0, a.1), (b.0, b.1)));
    let (r, c, kind) = *newer.first()?;
    Some(drift_to(s, r, c, kind, newer.len() - 1))
}

/// Places and drift over a whole report, each computed once per certificate and per name
/// set (linear in the rows, plus a sort per name set), judged at one instant.
#[derive(Debug, Default)]
pub struct Index {
    places: HashMap<String, std::sync::Arc<Places>>,
    /// Per name set: the positions of fresh store rows, newest first.
    stores: HashMap<String, Vec<usize>>,
    now: i64,
}

impl Index {
    /// Index `rows` at `now`; the positions are the rows' order.
    pub fn new(rows: &[&Record], now: i64) -> Index {
        let mut by_sha: HashMap<&str, Vec<&Record>> = HashMap::new();
        let mut stores: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            let Some(c) = r.cert.as_deref() else {
                continue;
            };
            by_sha.entry(c.sha256.as_str()).or_default().push(r);
            if fresh_store(r, now).is_some() {
                if let Some(k) = names_key(c) {
                    stores.entry(k).or_default().push(i);
                }
            }
        }
        let cert = |j: usize| rows[j].cert.as_deref();
        for v in stores.values_mut() {
            v.sort_by(|&a, &b| match (cert(a), cert(b)) {
                (Some(x), Some(y)) => newest_first((rows[a], x), (rows[b], y)),
                _ => std::cmp::Ordering::Equal,
            });
        }
        let places = by_sha
            .into_iter()
            .map(|(sha, v)| {
                let total = v.len();
                let mut list = places(v);
                list.truncate(MAX_LISTED);
                (sha.to_owned(), std::sync::Arc::new(Places { list, total }))
            })
            .collect();
        Index {
            places,
            stores,
            now,
        }
    }

    /// The places of the certificate `rows[i]` holds (itself included); empty without one.
    pub fn places_of(&self, rows: &[&Record], i: usize) -> std::sync::Arc<Places> {
        rows.get(i)
            .and_then(|r| r.cert.as_deref())
            .and_then(|c| self.places.get(&c.sha256).cloned())
            .unwrap_or_default()
    }

    /// The drift of `rows[i]` at the index's instant: what [`drift`] says over every row.
    pub fn drift_of(&self, rows: &[&Record], i: usize) -> Option<Drift> {
        let r = rows.get(i)?;
        if !is_endpoint(r) {
            return None;
        }
        let s = r.cert.as_deref()?;
        let group = self.stores.get(&names_key(s)?)?;
        // Newest first: the stores holding a newer certificate are a prefix.
        let newer = group.partition_point(|&j| {
            rows[j]
                .cert
                .as_deref()
                .is_some_and(|c| c.not_after > s.not_after)
        });
        let &first = group.get(..newer)?.first()?;
        let store = rows[first];
        let (c, kind) = fresh_store(store, self.now)?;
        Some(drift_to(s, store, c, kind, newer - 1))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::status::DAY;
    use crate::model::{Extra, K8sInfo, TlsInfo};
    use crate::testing::facts;

    const NOW: i64 = 1_800_000_000;

    fn endpoint(loc: &str, c: &CertFacts) -> Record {
        let mut r = Record::new(SourceKind::TLS, loc.to_owned(), NOW);
        r.cert = Some(Arc::new(c.clone()));
        r.tls = Some(TlsInfo::default());
        r
    }

    fn stored(kind: SourceKind, loc: &str, c: &CertFacts) -> Record {
        let mut r = Record::new(kind, loc.to_owned(), NOW);
        r.cert = Some(Arc::new(c.clone()));
        r
    }

    fn secret(loc: &str, c: &CertFacts) -> Record {
        let mut r = stored(SourceKind::K8S, loc, c);
        r.k8s = Some(K8sInfo {
            kind: "Secret".into(),
            ..K8sInfo::default()
        });
        r
    }

    fn cert(cn: &str, nb: i64, na: i64, sans: &[&str]) -> CertFacts {
        facts(cn, "Example CA", nb, na, "ECDSA P-256", sans)
    }

    #[test]
    fn an_endpoint_serving_an_older_certificate_than_a_store_is_drift() {
        let old = cert(
            "shop",
            NOW - 80 * DAY,
            NOW + 10 * DAY,
            &["shop.example", "www.shop.example"],
        );
        let new = cert(
            "shop",
            NOW - DAY,
            NOW + 89 * DAY,
            &["WWW.shop.example", "shop.example"],
        );
        let ep = endpoint("shop.example:443", &old);
        let acm = stored(
            SourceKind::new("aws"),
            "arn:aws:acm:us-east-1:1:certificate/x",
            &new,
        );
        let d = drift(&ep, [&ep, &acm], NOW).expect("drift");
        assert_eq!(d.store_kind, "ACM");
        assert_eq!(d.store_id, acm.id);
        assert_eq!(d.served_not_after, NOW + 10 * DAY);
        assert!(
            d.message
                .starts_with("serves an older certificate (expires "),
            "{}",
            d.message
        );
        assert!(d
            .message
            .contains("than ACM arn:aws:acm:us-east-1:1:certificate/x holds"));
        // The store row itself is not drift, and neither is the same certificate in a store.
        assert_eq!(drift(&acm, [&ep, &acm], NOW), None);
        let same = secret("ctx/ns/secret/web#tls.crt", &old);
        assert_eq!(drift(&ep, [&same], NOW), None);
    }

    #[test]
    fn a_store_that_is_not_valid_yet_expires_sooner_or_names_other_hosts_is_no_drift() {
        let old = cert("shop", NOW - 80 * DAY, NOW + 10 * DAY, &["shop.example"]);
        let ep = endpoint("shop.example:443", &old);
        // Not valid until tomorrow: serving the current one is right, today.
        let future = cert("shop", NOW + DAY, NOW + 90 * DAY, &["shop.example"]);
        assert_eq!(
            drift(&ep, [&stored(SourceKind::FILE, "/a.pem", &future)], NOW),
            None
        );
        // ...and the day after, it is drift.
        assert!(drift(
            &ep,
            [&stored(SourceKind::FILE, "/a.pem", &future)],
            NOW + 2 * DAY
        )
        .is_some());
        // Older than what is served.
        let older = cert("shop", NOW - 200 * DAY, NOW + 5 * DAY, &["shop.example"]);
        assert_eq!(
            drift(&ep, [&stored(SourceKind::FILE, "/b.pem", &older)], NOW),
            None
        );
        // A different name set (a subset or a superset is another certificate's job).
        let more = cert(
            "shop",
            NOW - DAY,
            NOW + 90 * DAY,
            &["shop.example", "api.shop.example"],
        );
        assert_eq!(
            drift(&ep, [&stored(SourceKind::FILE, "/c.pem", &more)], NOW),
            None
        );
        // A CA bundle, a revoked certificate, a superseded Key Vault version, an endpoint:
        // none of them feeds an endpoint.
        let new = cert("shop", NOW - DAY, NOW + 90 * DAY, &["shop.example"]);
        let mut revoked = stored(SourceKind::new("vault"), "vault pki 1a", &new);
        revoked.revocation = Some(crate::model::Revocation::revoked(NOW - 10, None, "CRL"));
        let mut old_version = stored(SourceKind::new("azure"), "kv/web/1", &new);
        old_version.extra = Some(Arc::new(Extra {
            key: "azure",
            json: serde_json::json!({"superseded": true}),
            details: Vec::new(),
            note: None,
        }));
        let other_endpoint = endpoint("10.0.0.2:443", &new);
        let mut cm = secret("ctx/ns/configmap/x", &new);
        cm.k8s.as_mut().unwrap().kind = "ConfigMap".into();
        assert_eq!(
            drift(&ep, [&revoked, &old_version, &other_endpoint, &cm], NOW),
            None
        );
    }

    #[test]
    fn the_newest_store_is_named_and_the_others_counted() {
        let old = cert("shop", NOW - 80 * DAY, NOW + 10 * DAY, &["shop.example"]);
        let ep = endpoint("shop.example:443", &old);
        let a = cert("shop", NOW - 2 * DAY, NOW + 60 * DAY, &["shop.example"]);
        let b = cert("shop", NOW - DAY, NOW + 90 * DAY, &["shop.example"]);
        let file = stored(SourceKind::FILE, "/etc/ssl/shop.pem", &a);
        let sec = secret("prod/shop/secret/shop-tls#tls.crt", &b);
        let d = drift(&ep, [&file, &sec], NOW).unwrap();
        assert_eq!((d.store_kind, d.other_stores), ("Secret", 1));
        assert!(
            d.message.ends_with("(1 more store holds a newer one)"),
            "{}",
            d.message
        );
    }

    #[test]
    fn places_list_every_row_of_the_certificate_endpoints_first() {
        let c = cert("shop", NOW - DAY, NOW + 90 * DAY, &["shop.example"]);
        let other = cert("api", NOW - DAY, NOW + 90 * DAY, &["api.example"]);
        let rows = [
            secret("prod/shop/secret/shop-tls#tls.crt", &c),
            stored(
                SourceKind::new("aws"),
                "arn:aws:acm:eu-west-1:1:certificate/y",
                &c,
            ),
            endpoint("shop.example:443", &c),
            endpoint("api.example:443", &other),
        ];
        let refs: Vec<&Record> = rows.iter().collect();
        let ix = Index::new(&refs, NOW);
        let p = ix.places_of(&refs, 0);
        assert_eq!(p.total, 3);
        let got: Vec<(&str, &str)> = p.list.iter().map(|p| (p.source.as_str(), p.role)).collect();
        assert_eq!(
            got,
            [("tls", "endpoint"), ("aws", "store"), ("k8s", "store")]
        );
        assert_eq!(ix.places_of(&refs, 3).list.len(), 1);
        assert_eq!(ix.drift_of(&refs, 2), None, "same certificate everywhere");
    }

    #[test]
    fn the_index_agrees_with_the_pure_function_and_caps_what_it_lists() {
        let names = ["shop.example"];
        let served_at = |na: i64| cert("shop", NOW - 80 * DAY, na, &names);
        let mut rows = Vec::new();
        // Endpoints serving certificates of various ages, stores of various ages (one not
        // valid yet), and a CA-like bundle in 150 Secrets.
        for (i, na) in [NOW + 5 * DAY, NOW + 30 * DAY, NOW + 95 * DAY]
            .iter()
            .enumerate()
        {
            rows.push(endpoint(&format!("10.0.0.{i}:443"), &served_at(*na)));
        }
        for (i, (nb, na)) in [
            (NOW - DAY, NOW + 20 * DAY),
            (NOW - DAY, NOW + 60 * DAY),
            (NOW + DAY, NOW + 120 * DAY),
            (NOW - 2 * DAY, NOW + 60 * DAY),
        ]
        .iter()
        .enumerate()
        {
            rows.push(stored(
                SourceKind::FILE,
                &format!("/etc/ssl/{i}.pem"),
                &cert("shop", *nb, *na, &names),
            ));
        }
        let bundle = cert("bundle", NOW - DAY, NOW + 900 * DAY, &["bundle.example"]);
        for i in 0..150 {
            rows.push(secret(&format!("ctx/ns{i}/secret/ca#ca.crt"), &bundle));
        }
        let refs: Vec<&Record> = rows.iter().collect();
        let ix = Index::new(&refs, NOW);
        for (i, r) in refs.iter().enumerate() {
            assert_eq!(
                ix.drift_of(&refs, i),
                drift(r, refs.iter().copied(), NOW),
                "row {i}"
            );
        }
        let d = ix.drift_of(&refs, 0).unwrap();
        assert_eq!((d.store_not_after, d.other_stores), (NOW + 60 * DAY, 2));
        assert_eq!(ix.drift_of(&refs, 1).map(|d| d.other_stores), Some(1));
        assert_eq!(ix.drift_of(&refs, 2), None, "newer than every valid store");
        let p = ix.places_of(&refs, refs.len() - 1);
        assert_eq!((p.list.len(), p.total), (MAX_LISTED, 150));
    }
}
