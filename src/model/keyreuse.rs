//! Key reuse across the fleet: one private key, known by the SHA-256 of its public half (the
//! certificate's SubjectPublicKeyInfo), under several distinct certificates, wherever they
//! were seen (files, Secrets, keystores, TLS endpoints, cloud stores). Pure and clock-free:
//! derived from the certificates alone, so a fleet gives the same findings at any instant.
//!
//! The same certificate in several places is not reuse (one certificate deployed twice); two
//! distinct certificates with one key are. Renewals that keep their key (certbot
//! `--reuse-key`, a CA re-issued with a longer validity, a cross-signed intermediate) are
//! told apart by their names: certificates with the same subject and the same SANs are
//! successive issues of one certificate. That is still reuse, said mildly
//! (`key_reused_on_renewal`, info); a key under certificates for different names is
//! `key_reused` (warning). Each finding's `location` lists the other certificates' places.

use std::collections::{BTreeMap, HashMap};

use super::keyaudit::{KeyFinding, Severity};
use super::{CertFacts, Record};

/// Locations listed in one finding at most; the rest are counted.
pub const MAX_LISTED: usize = 8;

/// The names a certificate is for: its subject and its sorted SANs.
fn names(c: &CertFacts) -> (String, Vec<String>) {
    let mut sans: Vec<String> = c.sans.iter().map(|s| s.render()).collect();
    sans.sort();
    sans.dedup();
    (c.subject.clone(), sans)
}

/// One distinct certificate of a key's group: its facts and every place it was seen.
struct Distinct<'a> {
    cert: &'a CertFacts,
    names: (String, Vec<String>),
    locations: Vec<&'a str>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Key-reuse findings of each record (same order as `records`; empty where there is none).
/// Records without a certificate, or whose certificate has no known public key, have none.
pub fn key_reuse(records: &[&Record]) -> Vec<Vec<KeyFinding>> {
    let mut out = vec![Vec::new(); records.len()];
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(spki) = r.cert.as_deref().and_then(|c| c.spki_sha256.as_deref()) {
            groups.entry(spki).or_default().push(i);
        }
    }
    for (spki, members) in groups {
        // Distinct certificates by SHA-256, each with its locations, in a stable order.
        let mut distinct: BTreeMap<&str, Distinct<'_>> = BTreeMap::new();
        for &i in &members {
            let r = records[i];
            let Some(c) = r.cert.as_deref() else { continue };
            distinct
                .entry(c.sha256.as_str())
                .or_insert_with(|| Distinct {
                    cert: c,
                    names: names(c),
                    locations: Vec::new(),
                })
                .locations
                .push(r.location.as_str());
        }
        if distinct.len() < 2 {
            continue;
        }
        for d in distinct.values_mut() {
            d.locations.sort_unstable();
            d.locations.dedup();
        }
        let mut order: Vec<&Distinct<'_>> = distinct.values().collect();
        // Soonest expiry first, then by place: the order a reader scans them in.
        order.sort_by(|a, b| {
            (a.cert.not_after, a.locations.first(), &a.cert.sha256).cmp(&(
                b.cert.not_after,
                b.locations.first(),
                &b.cert.sha256,
            ))
        });
        let short = &spki[..spki.len().min(16)];
        for &i in &members {
            let Some(mine) = records[i].cert.as_deref() else {
                continue;
            };
            let my_names = names(mine);
            let others: Vec<&Distinct<'_>> = order
                .iter()
                .copied()
                .filter(|d| d.cert.sha256 != mine.sha256)
                .collect();
            let renewals = others.iter().filter(|d| d.names == my_names).count();
            let n = others.len();
            let places: Vec<&str> = others
                .iter()
                .flat_map(|d| d.locations.iter().copied())
                .collect();
            let mut location = places
                .iter()
                .take(MAX_LISTED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if places.len() > MAX_LISTED {
                location.push_str(&format!(" and {} more", places.len() - MAX_LISTED));
            }
            let certs = plural(n, "other certificate", "other certificates");
            let finding = if renewals == n {
                KeyFinding::new(
                    "key_reused_on_renewal",
                    Severity::Info,
                    format!(
                        "key kept across renewals: {certs} for the same names {} the same key \
                         (SPKI SHA-256 {short}…)",
                        if n == 1 { "has" } else { "have" }
                    ),
                    Some(location),
                )
            } else {
                let mut msg = format!("the same key (SPKI SHA-256 {short}…) is in {certs}");
                if renewals > 0 {
                    msg.push_str(&format!(
                        " ({renewals} of them for the same names: a renewal that kept the key)"
                    ));
                }
                KeyFinding::new("key_reused", Severity::Warning, msg, Some(location))
            };
            out[i].push(finding);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceKind;
    use crate::testing::{facts, NOW};
    use std::sync::Arc;

    const DAY: i64 = 86_400;

    fn rec(loc: &str, cn: &str, sans: &[&str], nb: i64, spki: Option<&str>) -> Record {
        let mut c = facts(cn, "CA", nb, nb + 90 * DAY, "ECDSA P-256", sans);
        c.spki_sha256 = spki.map(str::to_owned);
        let mut r = Record::new(SourceKind::FILE, loc.to_owned(), NOW);
        r.cert = Some(Arc::new(c));
        r
    }

    fn codes(f: &[Vec<KeyFinding>]) -> Vec<Vec<&'static str>> {
        f.iter()
            .map(|v| v.iter().map(|x| x.code).collect())
            .collect()
    }

    const K1: &str = "1111111111111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const K2: &str = "2222222222222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn one_key_under_certificates_for_other_names_is_a_warning_naming_count_and_places() {
        let a = rec("/etc/a.pem", "a.test", &["a.test"], NOW, Some(K1));
        let b = rec(
            "prod/shop/secret/b#tls.crt",
            "b.test",
            &["b.test"],
            NOW,
            Some(K1),
        );
        let c = rec("c.test:443", "c.test", &["c.test"], NOW + DAY, Some(K1));
        let other = rec("/etc/d.pem", "d.test", &["d.test"], NOW, Some(K2));
        let recs = [&a, &b, &c, &other];
        let f = key_reuse(&recs);
        assert_eq!(
            codes(&f),
            [
                vec!["key_reused"],
                vec!["key_reused"],
                vec!["key_reused"],
                vec![]
            ]
        );
        assert_eq!(f[0][0].severity, Severity::Warning);
        assert_eq!(
            f[0][0].message,
            "the same key (SPKI SHA-256 1111111111111111…) is in 2 other certificates"
        );
        // The others, soonest expiry first.
        assert_eq!(
            f[0][0].location.as_deref(),
            Some("prod/shop/secret/b#tls.crt, c.test:443")
        );
        assert_eq!(
            f[2][0].location.as_deref(),
            Some("/etc/a.pem, prod/shop/secret/b#tls.crt")
        );
    }

    #[test]
    fn the_same_certificate_in_many_places_is_not_reuse() {
        let a = rec("/etc/a.pem", "a.test", &["a.test"], NOW, Some(K1));
        let mut b = a.clone();
        b.location = "prod/shop/secret/a#tls.crt".into();
        let f = key_reuse(&[&a, &b]);
        assert_eq!(codes(&f), [Vec::<&str>::new(), vec![]]);
        // A third place with another certificate for the key: both places of the first are
        // listed to it, and it is listed to them.
        let c = rec("/etc/c.pem", "c.test", &[], NOW, Some(K1));
        let f = key_reuse(&[&a, &b, &c]);
        assert_eq!(
            f[2][0].location.as_deref(),
            Some("/etc/a.pem, prod/shop/secret/a#tls.crt")
        );
        assert_eq!(
            f[0][0].message,
            "the same key (SPKI SHA-256 1111111111111111…) is in 1 other certificate"
        );
        assert_eq!(f[0][0].location.as_deref(), Some("/etc/c.pem"));
    }

    #[test]
    fn renewals_that_keep_the_key_are_said_mildly_and_mixed_groups_say_how_many() {
        // Three successive issues for the same names (SANs in any order), one key.
        let old = rec(
            "/etc/old.pem",
            "a.test",
            &["a.test", "www.a.test"],
            NOW - 90 * DAY,
            Some(K1),
        );
        let cur = rec(
            "/etc/cur.pem",
            "a.test",
            &["www.a.test", "a.test"],
            NOW,
            Some(K1),
        );
        let f = key_reuse(&[&old, &cur]);
        assert_eq!(
            codes(&f),
            [vec!["key_reused_on_renewal"], vec!["key_reused_on_renewal"]]
        );
        assert_eq!(f[1][0].severity, Severity::Info);
        assert_eq!(
            f[1][0].message,
            "key kept across renewals: 1 other certificate for the same names has the same key \
             (SPKI SHA-256 1111111111111111…)"
        );
        assert_eq!(f[1][0].location.as_deref(), Some("/etc/old.pem"));
        // A certificate for other names joins: a warning everywhere, saying how many of the
        // others are renewals.
        let stranger = rec("/etc/x.pem", "x.test", &["x.test"], NOW, Some(K1));
        let f = key_reuse(&[&old, &cur, &stranger]);
        assert_eq!(f[1][0].code, "key_reused");
        assert_eq!(
            f[1][0].message,
            "the same key (SPKI SHA-256 1111111111111111…) is in 2 other certificates (1 of \
             them for the same names: a renewal that kept the key)"
        );
        assert_eq!(
            f[2][0].message,
            "the same key (SPKI SHA-256 1111111111111111…) is in 2 other certificates"
        );
    }

    #[test]
    fn records_without_a_known_key_or_a_certificate_are_left_alone_and_long_lists_are_cut() {
        let none = rec("/etc/n.pem", "n.test", &[], NOW, None);
        let mut err = Record::new(SourceKind::FILE, "/etc/e.pem".into(), NOW);
        err.error = Some("unreadable".into());
        let mut recs: Vec<Record> = (0..12)
            .map(|i| {
                rec(
                    &format!("/etc/{i:02}.pem"),
                    &format!("h{i}.test"),
                    &[],
                    NOW,
                    Some(K2),
                )
            })
            .collect();
        recs.push(none);
        recs.push(err);
        let refs: Vec<&Record> = recs.iter().collect();
        let f = key_reuse(&refs);
        assert!(f[12].is_empty() && f[13].is_empty());
        assert_eq!(
            f[0][0].location.as_deref(),
            Some(
                "/etc/01.pem, /etc/02.pem, /etc/03.pem, /etc/04.pem, /etc/05.pem, /etc/06.pem, \
                 /etc/07.pem, /etc/08.pem and 3 more"
            )
        );
        assert!(f[0][0].message.contains("11 other certificates"));
    }
}
