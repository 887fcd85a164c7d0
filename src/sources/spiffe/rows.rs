//! From one `X509SVIDResponse` to rows: one per X.509 SVID (its SPIFFE ID as the location,
//! the rest of its chain, its hint) and one per CA certificate of every trust bundle (the
//! SVIDs' own trust domains and the federated ones). Pure: no IO, tested on fixed answers.
//!
//! Row ids are stable per identity: an SVID's id is made of the socket, the SPIFFE ID and the
//! hint, so a rotation replaces the certificate of the same row; a bundle CA's id is made of
//! the socket, the trust domain and the CA's SHA-256, so a CA added to a bundle is a new row
//! and one dropped from it goes away.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::wire::X509SvidResponse;
use super::KIND;
use crate::model::cert::CertFacts;
use crate::model::record::location_id;
use crate::model::{Extra, Record};

fn clean(s: &str) -> String {
    crate::model::text::clean(s).chars().take(400).collect()
}

/// Split concatenated DER certificates (the Workload API's chains and bundles): each one
/// parsed, or why not. A truncated or non-certificate tail ends the list with an error.
pub fn split_der(mut b: &[u8]) -> Vec<Result<CertFacts, String>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let Some(n) = der_len(b).filter(|n| *n <= b.len()) else {
            out.push(Err(format!(
                "{} bytes that are not a complete DER certificate",
                b.len()
            )));
            break;
        };
        out.push(CertFacts::from_der(&b[..n]).map_err(|e| e.to_string()));
        b = &b[n..];
    }
    out
}

/// The length of the DER SEQUENCE at the start of `b`, header included.
fn der_len(b: &[u8]) -> Option<usize> {
    if b.len() < 2 || b[0] != 0x30 {
        return None;
    }
    let first = b[1] as usize;
    if first < 0x80 {
        return Some(2 + first);
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 || b.len() < 2 + n {
        return None;
    }
    let len = b[2..2 + n]
        .iter()
        .fold(0usize, |a, x| (a << 8) | *x as usize);
    Some(2 + n + len)
}

/// The trust domain of a SPIFFE ID or trust domain name, validated.
fn trust_domain(s: &str) -> Result<spiffe::TrustDomain, String> {
    spiffe::TrustDomain::new(s).map_err(|e| e.to_string())
}

/// A row's facts under `spiffe` in JSON and its details lines.
fn extra(json: serde_json::Value, details: Vec<(String, String)>, note: Option<String>) -> Extra {
    Extra {
        key: "spiffe",
        json,
        details,
        note,
    }
}

fn row(socket: &str, key: &str, location: String, now: i64) -> Record {
    let mut r = Record::new(KIND, location, now);
    r.id = location_id(KIND, &format!("{socket}|{key}"));
    r
}

/// Every row of one answer from the Workload API on `socket`.
pub fn records(resp: &X509SvidResponse, socket: &str, now: i64) -> Vec<Record> {
    let mut out = Vec::new();
    // Trust domain -> (bundle DER, federated); an SVID's own bundle wins over a federated
    // copy, the first SVID's over a later one.
    let mut bundles: BTreeMap<String, (&[u8], bool)> = BTreeMap::new();
    for svid in &resp.svids {
        out.push(svid_record(svid, socket, now));
        if let Ok(td) = trust_domain(&svid.spiffe_id) {
            bundles
                .entry(td.as_str().to_owned())
                .or_insert((svid.bundle.as_slice(), false));
        }
    }
    for (key, der) in &resp.federated_bundles {
        match trust_domain(key) {
            Ok(td) => {
                bundles
                    .entry(td.as_str().to_owned())
                    .or_insert((der.as_slice(), true));
            }
            Err(e) => {
                let key = clean(key);
                out.push(
                    row(
                        socket,
                        &format!("bundle|{key}|invalid"),
                        format!("{key} (trust bundle)"),
                        now,
                    )
                    .with_error(format!("federated trust domain '{key}' is invalid: {e}")),
                );
            }
        }
    }
    for (td, (der, federated)) in bundles {
        out.extend(bundle_records(&td, der, federated, socket, now));
    }
    out
}

fn svid_record(svid: &super::wire::X509Svid, socket: &str, now: i64) -> Record {
    let id = clean(&svid.spiffe_id);
    let hint = clean(&svid.hint);
    let mut r = row(socket, &format!("svid|{id}|{hint}"), id.clone(), now);
    let td = trust_domain(&svid.spiffe_id);
    // The SPIFFE ID itself is the location, and the details view shows every certificate's.
    let mut details = vec![
        (
            "Trust domain".to_owned(),
            td.as_ref()
                .map(|t| t.id_string())
                .unwrap_or_else(|_| "-".to_owned()),
        ),
        ("Role".to_owned(), "X.509 SVID of this workload".to_owned()),
    ];
    if !hint.is_empty() {
        details.push(("Hint".to_owned(), hint.clone()));
    }
    details.push(("Workload API".to_owned(), socket.to_owned()));
    r.extra = Some(Arc::new(extra(
        json!({
            "role": "svid",
            "spiffe_id": id,
            "trust_domain": td.as_ref().ok().map(|t| t.as_str().to_owned()),
            "hint": (!hint.is_empty()).then_some(hint.clone()),
            "socket": socket,
        }),
        details,
        (!hint.is_empty()).then(|| format!("hint: {hint}")),
    )));
    if let Err(e) = spiffe::SpiffeId::new(&svid.spiffe_id) {
        r.error = Some(format!("the agent's SPIFFE ID '{id}' is invalid: {e}"));
    }
    let mut chain = split_der(&svid.x509_svid).into_iter();
    match chain.next() {
        None => {
            r.error = Some("the agent sent an empty X.509-SVID".to_owned());
            return r;
        }
        Some(Err(e)) => {
            r.error = Some(format!("the X.509-SVID does not parse: {}", clean(&e)));
            return r;
        }
        Some(Ok(leaf)) => {
            let uris: Vec<&str> = leaf
                .sans
                .iter()
                .filter(|s| s.is_spiffe())
                .map(|s| s.value())
                .collect();
            if r.error.is_none() && !uris.contains(&svid.spiffe_id.as_str()) {
                r.error = Some(format!(
                    "the agent says {id} but the certificate's SPIFFE ID is {}",
                    if uris.is_empty() {
                        "missing (no spiffe:// URI SAN)".to_owned()
                    } else {
                        clean(&uris.join(", "))
                    }
                ));
            }
            r.cert = Some(Arc::new(leaf));
        }
    }
    for (i, c) in chain.enumerate() {
        match c {
            Ok(c) => r.chain.push(Arc::new(c)),
            Err(e) => {
                r.error.get_or_insert(format!(
                    "certificate #{} of the SVID's chain does not parse: {}",
                    i + 2,
                    clean(&e)
                ));
                break;
            }
        }
    }
    r
}

fn bundle_records(td: &str, der: &[u8], federated: bool, socket: &str, now: i64) -> Vec<Record> {
    let td_id = format!("spiffe://{td}");
    let location = format!("{td_id} (trust bundle)");
    let role = if federated {
        format!("federated trust bundle of {td_id}")
    } else {
        format!("trust bundle of {td_id}")
    };
    let parts = split_der(der);
    let total = parts.len();
    let mut out = Vec::new();
    if total == 0 {
        out.push(
            row(socket, &format!("bundle|{td}|empty"), location, now)
                .with_error(format!("the {role} is empty")),
        );
        return out;
    }
    for (i, p) in parts.into_iter().enumerate() {
        match p {
            Ok(ca) => {
                let mut r = row(
                    socket,
                    &format!("bundle|{td}|{}", ca.sha256),
                    location.clone(),
                    now,
                );
                r.extra = Some(Arc::new(extra(
                    json!({
                        "role": "trust_bundle",
                        "trust_domain": td,
                        "federated": federated,
                        "socket": socket,
                        "position": i + 1,
                        "bundle_size": total,
                    }),
                    vec![
                        ("Trust domain".to_owned(), td_id.clone()),
                        ("Role".to_owned(), role.clone()),
                        ("Bundle".to_owned(), format!("CA {} of {total}", i + 1)),
                        ("Workload API".to_owned(), socket.to_owned()),
                    ],
                    Some(role.clone()),
                )));
                r.cert = Some(Arc::new(ca));
                out.push(r);
            }
            Err(e) => {
                out.push(
                    row(
                        socket,
                        &format!("bundle|{td}|bad{i}"),
                        location.clone(),
                        now,
                    )
                    .with_error(format!(
                        "CA {} of {total} of the {role} does not parse: {}",
                        i + 1,
                        clean(&e)
                    )),
                );
                // What follows a bad certificate cannot be delimited.
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::wire::X509Svid;
    use super::*;

    fn ca(name: &str) -> (rcgen::Certificate, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, name.to_owned());
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let c = p.self_signed(&key).unwrap();
        (c, rcgen::Issuer::new(p, key))
    }

    fn svid(id: &str, issuer: &rcgen::Issuer<'static, rcgen::KeyPair>) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = vec![rcgen::SanType::URI(id.try_into().unwrap())];
        p.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    #[test]
    fn svids_and_bundles_become_rows_with_stable_ids() {
        let (root, iss) = ca("td root");
        let (fed_root, _) = ca("partner root");
        let web = svid("spiffe://td.test/web", &iss);
        let mut bundle = root.der().to_vec();
        bundle.extend_from_slice(fed_root.der());
        let resp = X509SvidResponse {
            svids: vec![
                X509Svid {
                    spiffe_id: "spiffe://td.test/web".into(),
                    x509_svid: web.clone(),
                    bundle: bundle.clone(),
                    hint: "internal".into(),
                },
                X509Svid {
                    spiffe_id: "spiffe://td.test/db".into(),
                    x509_svid: vec![0x30, 0x03, 1, 2, 3],
                    bundle: bundle.clone(),
                    hint: String::new(),
                },
            ],
            federated_bundles: [("spiffe://partner.test".to_owned(), fed_root.der().to_vec())]
                .into_iter()
                .collect(),
        };
        let rows = records(&resp, "/run/agent.sock", 1);
        assert_eq!(rows.len(), 5, "{rows:#?}");
        let web_row = &rows[0];
        assert_eq!(web_row.location, "spiffe://td.test/web");
        assert!(web_row.error.is_none(), "{:?}", web_row.error);
        assert_eq!(web_row.extra.as_ref().unwrap().json["hint"], "internal");
        assert!(rows[1]
            .error
            .as_deref()
            .unwrap()
            .starts_with("the X.509-SVID does not parse"));
        assert_eq!(rows[1].location, "spiffe://td.test/db");
        assert_eq!(rows[2].location, "spiffe://partner.test (trust bundle)");
        assert_eq!(rows[2].extra.as_ref().unwrap().json["federated"], true);
        assert_eq!(rows[3].location, "spiffe://td.test (trust bundle)");
        assert_eq!(rows[4].extra.as_ref().unwrap().json["position"], 2);
        // A rotation: same identity, new certificate, same row id.
        let mut rotated = resp.clone();
        rotated.svids[0].x509_svid = svid("spiffe://td.test/web", &iss);
        let again = records(&rotated, "/run/agent.sock", 2);
        assert_eq!(again[0].id, web_row.id);
        assert_ne!(
            again[0].cert.as_ref().unwrap().sha256,
            web_row.cert.as_ref().unwrap().sha256
        );
        // Another socket: other rows.
        assert_ne!(records(&resp, "/other.sock", 1)[0].id, web_row.id);
    }

    #[test]
    fn a_certificate_that_names_another_identity_is_an_error() {
        let (root, iss) = ca("td root");
        let resp = X509SvidResponse {
            svids: vec![X509Svid {
                spiffe_id: "spiffe://td.test/api".into(),
                x509_svid: svid("spiffe://td.test/web", &iss),
                bundle: root.der().to_vec(),
                hint: "\u{1b}[31mred".into(),
            }],
            federated_bundles: BTreeMap::new(),
        };
        let rows = records(&resp, "/s", 1);
        let e = rows[0].error.as_deref().unwrap();
        assert!(
            e.contains("certificate's SPIFFE ID is spiffe://td.test/web"),
            "{e}"
        );
        assert!(rows[0].cert.is_some());
        assert!(!format!("{:?}", rows[0].extra).contains('\u{1b}'));
    }

    #[test]
    fn der_splitting_stops_at_garbage() {
        let (root, _) = ca("r");
        let mut b = root.der().to_vec();
        b.extend_from_slice(&[0x30, 0x82, 0xff]);
        let parts = split_der(&b);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].is_ok());
        assert!(parts[1].is_err());
        assert!(split_der(&[]).is_empty());
    }
}
