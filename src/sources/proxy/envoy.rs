//! Envoy's admin `/certs` (`envoy.admin.v3.Certificates`, proto3 JSON): per TLS context, the
//! `ca_cert[]` it validates peers with and the `cert_chain[]` it presents, each with `path`,
//! `serial_number`, `subject_alt_names[]` (`dns`, `uri`, `ip_address`), `days_until_expiration`
//! (a uint64, so a string in JSON: the minimum over the certificate and its chain),
//! `valid_from` and `expiration_time` (RFC 3339).
//!
//! One row per distinct certificate (an Istio sidecar lists the same two in dozens of
//! contexts). A presented certificate is named by its SPIFFE ID (else its file, DNS name or
//! serial), a CA by its serial: `http://pod:15000/certs#cert:spiffe://...`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::Value;

use super::{facts_only, KIND};
use crate::model::cert::San;
use crate::model::status::DAY;
use crate::model::text::clean;
use crate::model::{Extra, Record};

fn head(body: &[u8]) -> String {
    let h = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
    clean(h.trim()).into_owned()
}

/// Why an answer is not Envoy's `/certs`.
pub fn not_certs(body: &[u8]) -> String {
    if body.is_empty() {
        "not an Envoy /certs answer: empty body".to_owned()
    } else {
        format!("not an Envoy /certs answer: {}", head(body))
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(|s| clean(s).into_owned())
}

fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// Serial as certdeck writes them: lowercase hex without separators or leading zero bytes.
fn serial(s: &str) -> String {
    let hex: String = s
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let mut h = hex.as_str();
    while h.len() > 2 && h.starts_with("00") {
        h = &h[2..];
    }
    h.to_owned()
}

fn sans(v: &Value) -> Vec<San> {
    let mut out = Vec::new();
    for s in v.as_array().into_iter().flatten() {
        let Some(m) = s.as_object() else { continue };
        for (k, v) in m {
            let Some(v) = v.as_str() else { continue };
            let v = clean(v).into_owned();
            out.push(match k.as_str() {
                "dns" => San::Dns(v),
                "uri" => San::Uri(v),
                "ip_address" => San::Ip(v),
                other => San::Other(format!("{}:{v}", clean(other))),
            });
        }
    }
    out
}

fn days(v: &Value) -> Option<i64> {
    match v.get("days_until_expiration")? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// How a certificate is held by the proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    /// `cert_chain`: presented to peers (the workload certificate).
    Presented,
    /// `ca_cert`: peers are validated with it.
    Ca,
}

impl Held {
    fn list(self) -> &'static str {
        match self {
            Held::Presented => "cert_chain",
            Held::Ca => "ca_cert",
        }
    }
}

/// Rows of one `/certs` answer from `base` (`http://host:port`), or why it is not one.
pub fn rows(base: &str, body: &[u8], now: i64) -> Result<Vec<Record>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|_| not_certs(body))?;
    let contexts = v
        .get("certificates")
        .and_then(Value::as_array)
        .ok_or_else(|| not_certs(body))?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut places: HashSet<String> = HashSet::new();
    let mut out: Vec<Record> = Vec::new();
    for c in contexts {
        for held in [Held::Presented, Held::Ca] {
            for e in c
                .get(held.list())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let path = text(e, "path").unwrap_or_default();
                let serial_raw = text(e, "serial_number").unwrap_or_default();
                let sans = sans(e.get("subject_alt_names").unwrap_or(&Value::Null));
                let valid_from = text(e, "valid_from");
                let expires = text(e, "expiration_time");
                let dedupe = format!(
                    "{}|{serial_raw}|{valid_from:?}|{expires:?}|{:?}",
                    held.list(),
                    sans
                );
                if let Some(&i) = seen.get(&dedupe) {
                    bump_contexts(&mut out[i]);
                    continue;
                }
                let inline = path.is_empty() || path.contains("<inline>");
                let ident = sans
                    .iter()
                    .find(|s| matches!(s, San::Uri(_)))
                    .map(|s| s.value().to_owned())
                    .or_else(|| (!inline).then(|| path.clone()))
                    .or_else(|| sans.first().map(|s| s.value().to_owned()))
                    .or_else(|| (!serial_raw.is_empty()).then(|| serial(&serial_raw)))
                    .unwrap_or_else(|| "unnamed".to_owned());
                let tag = match held {
                    Held::Presented => "cert",
                    Held::Ca => "ca",
                };
                let mut location = format!("{base}/certs#{tag}:{ident}");
                let mut n = 1;
                while places.contains(&location) {
                    n += 1;
                    location = format!("{base}/certs#{tag}:{ident}#{n}");
                }
                places.insert(location.clone());
                seen.insert(dedupe, out.len());
                out.push(row(
                    base, &location, held, e, path, serial_raw, sans, valid_from, expires, now,
                ));
            }
        }
    }
    Ok(out)
}

/// One more TLS context holds the same certificate.
fn bump_contexts(r: &mut Record) {
    let Some(x) = r.extra.as_mut() else { return };
    let x = Arc::make_mut(x);
    let n = x.json["contexts"].as_u64().unwrap_or(1) + 1;
    x.json["contexts"] = n.into();
    for (label, value) in &mut x.details {
        if label == "TLS contexts" {
            *value = n.to_string();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    base: &str,
    location: &str,
    held: Held,
    e: &Value,
    path: String,
    serial_raw: String,
    sans: Vec<San>,
    valid_from: Option<String>,
    expires: Option<String>,
    now: i64,
) -> Record {
    let days = days(e);
    let what = match held {
        Held::Presented => "certificate Envoy presents (cert_chain)",
        Held::Ca => "CA Envoy validates peers with (ca_cert)",
    };
    let mut details =
        vec![
        ("Proxy".to_owned(), format!("Envoy admin {base}")),
        ("Held as".to_owned(), what.to_owned()),
        ("Path".to_owned(), if path.is_empty() { "-".into() } else { path.clone() }),
        (
            "Certificate".to_owned(),
            "not shown by Envoy: serial, SANs and dates only (no fingerprint, subject or issuer)"
                .to_owned(),
        ),
        ("TLS contexts".to_owned(), "1".to_owned()),
    ];
    if let Some(d) = days {
        details.push(("Days left".to_owned(), format!("{d} (Envoy's count)")));
    }
    let mut json = serde_json::json!({
        "proxy": "envoy",
        "endpoint": base,
        "held_as": held.list(),
        "path": path,
        "days_until_expiration": days,
        "contexts": 1,
        "facts_only": true,
    });
    let note_base = match held {
        Held::Presented => "presented by Envoy (serial, SANs and dates only)",
        Held::Ca => "CA trusted by Envoy (serial, SANs and dates only)",
    };
    let mk_extra = |json: serde_json::Value, details, note: String| Extra {
        key: "proxy",
        json,
        details,
        note: Some(note),
    };
    let Some(exp) = expires.as_deref() else {
        let extra = mk_extra(json, details, note_base.to_owned());
        return Record::from_store(KIND, location, None, Vec::new(), extra, now)
            .with_error("Envoy gave no expiration_time for this certificate");
    };
    let Some(not_after) = parse_time(exp) else {
        let extra = mk_extra(json, details, note_base.to_owned());
        return Record::from_store(KIND, location, None, Vec::new(), extra, now)
            .with_error(format!("unreadable expiration_time '{exp}'"));
    };
    let not_before = valid_from.as_deref().and_then(parse_time);
    if not_before.is_none() {
        // No start: judged by days left, never as a short-lived certificate.
        json["not_before_unknown"] = true.into();
        json["not_before_assumed"] = true.into();
        details.push(("Valid from".to_owned(), "not reported".to_owned()));
    }
    let facts = facts_only(
        serial(&serial_raw),
        not_before.unwrap_or(not_after.min(now)),
        not_after,
        sans,
        held == Held::Ca,
    );
    // Envoy's day count is the minimum over the certificate and its chain: when it is a whole
    // day short of the certificate's own expiry, something in the chain expires first.
    let mut chain = Vec::new();
    let mut note = note_base.to_owned();
    if let Some(d) = days.filter(|_| held == Held::Presented) {
        if not_after - now >= (d + 1) * DAY + 3600 {
            let first = now + d * DAY;
            chain.push(Arc::new(facts_only(
                String::new(),
                first,
                first,
                Vec::new(),
                true,
            )));
            json["chain_expires_first"] = true.into();
            note = format!(
                "a certificate of its chain expires in {d} days, before it (Envoy's days_until_expiration)"
            );
            details.push((
                "Chain".to_owned(),
                format!(
                    "a certificate of its chain expires in {d} days (Envoy names it no further)"
                ),
            ));
        }
    }
    let extra = mk_extra(json, details, note);
    Record::from_store(KIND, location, Some(Arc::new(facts)), chain, extra, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn ts(secs: i64) -> String {
        crate::clock::rfc3339(secs)
    }

    fn answer() -> String {
        let leaf = serde_json::json!({
            "path": "<inline>",
            "serial_number": "7B177C736290D0FE5527A7CCF0ECEE4C",
            "subject_alt_names": [{"uri": "spiffe://cluster.local/ns/shop/sa/web"}],
            "days_until_expiration": "0",
            "valid_from": ts(NOW - 3600),
            "expiration_time": ts(NOW + 20 * 3600),
        });
        let ca = serde_json::json!({
            "path": "ROOTCA: <inline>",
            "serial_number": "00ade6c290",
            "subject_alt_names": [],
            "days_until_expiration": "3648",
            "valid_from": ts(NOW - 10 * DAY),
            "expiration_time": ts(NOW + 3648 * DAY + 100),
        });
        serde_json::json!({"certificates": [
            {"ca_cert": [ca.clone()], "cert_chain": [leaf.clone()]},
            {"ca_cert": [ca], "cert_chain": [leaf]},
        ]})
        .to_string()
    }

    #[test]
    fn each_certificate_is_one_row_however_many_contexts_hold_it() {
        let rows = rows("http://p:15000", answer().as_bytes(), NOW).expect("rows");
        assert_eq!(rows.len(), 2);
        let leaf = &rows[0];
        assert_eq!(
            leaf.location,
            "http://p:15000/certs#cert:spiffe://cluster.local/ns/shop/sa/web"
        );
        let c = leaf.cert.as_ref().expect("facts");
        assert_eq!(c.serial, "7b177c736290d0fe5527a7ccf0ecee4c");
        assert_eq!(c.not_after, NOW + 20 * 3600);
        assert!(c.der.is_empty() && c.subject.is_empty());
        let x = leaf.extra.as_ref().expect("extra");
        assert_eq!(x.json["contexts"], 2);
        assert_eq!(x.json["facts_only"], true);
        let ca = &rows[1];
        assert_eq!(ca.location, "http://p:15000/certs#ca:ade6c290");
        assert!(ca.cert.as_ref().expect("ca").is_ca);
        assert!(crate::model::status::facts_only(ca));
    }

    #[test]
    fn garbage_is_refused_and_control_characters_are_cleaned() {
        assert!(rows("b", b"<html>admin</html>", NOW).is_err());
        assert!(rows("b", b"{\"foo\": 1}", NOW).is_err());
        assert!(rows("b", b"", NOW).unwrap_err().contains("empty"));
        let evil = serde_json::json!({"certificates": [{"cert_chain": [{
            "path": "/etc/\u{1b}[2Jx.pem",
            "serial_number": "01",
            "subject_alt_names": [{"dns": "a\u{1b}]52;c;x\u{7}.example"}],
            "expiration_time": "not a time",
        }]}]});
        let r = rows("b", evil.to_string().as_bytes(), NOW).expect("rows");
        assert_eq!(r.len(), 1);
        assert!(!r[0].location.contains('\u{1b}'), "{}", r[0].location);
        assert!(r[0].error.as_deref().unwrap_or("").contains("unreadable"));
    }

    #[test]
    fn a_chain_that_expires_first_is_told_by_envoys_day_count() {
        let a = serde_json::json!({"certificates": [{"cert_chain": [{
            "path": "/etc/envoy/tls.crt",
            "serial_number": "0a",
            "days_until_expiration": "3",
            "valid_from": ts(NOW - DAY),
            "expiration_time": ts(NOW + 90 * DAY),
        }]}]});
        let r = rows("http://e:9901", a.to_string().as_bytes(), NOW).expect("rows");
        assert_eq!(r[0].location, "http://e:9901/certs#cert:/etc/envoy/tls.crt");
        assert_eq!(r[0].chain.len(), 1);
        let t = crate::model::Thresholds::default();
        let a = crate::model::assess(&r[0], NOW, t);
        assert_eq!(a.status, crate::model::Status::Critical);
        assert_eq!(a.days_left, Some(3));
    }
}
