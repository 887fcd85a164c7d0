//! A Linkerd proxy's `/metrics` (Prometheus text on its admin port, 4191): the expiry of its
//! mTLS identity certificate (`identity_cert_expiration_timestamp_seconds`, or
//! `control_identity_cert_expiration_timestamp_seconds` in newer proxies), and when it was
//! last refreshed where the proxy says so (`*identity_cert_refresh_timestamp_seconds`).
//!
//! The proxy says nothing else about the certificate. Its validity start is the last refresh
//! when exported, else the expiry minus the issuance lifetime (Linkerd's default 24h, settable):
//! JSON `not_before` stays `null` and the details say which estimate judged the lifetime.

use std::sync::Arc;

use super::{facts_only, KIND};
use crate::model::text::clean;
use crate::model::{Extra, Record};

pub const EXPIRY: [&str; 2] = [
    "identity_cert_expiration_timestamp_seconds",
    "control_identity_cert_expiration_timestamp_seconds",
];
const REFRESHED: [&str; 2] = [
    "identity_cert_refresh_timestamp_seconds",
    "control_identity_cert_refresh_timestamp_seconds",
];
const REFRESHES: [&str; 3] = [
    "identity_cert_refresh_count",
    "identity_cert_refresh_count_total",
    "control_identity_cert_refreshes_total",
];

/// One sample line: `name{labels} value [timestamp]`.
fn sample(line: &str) -> Option<(&str, f64)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut rest = &line[name_end..];
    if rest.starts_with('{') {
        // Label values may hold `}` inside quotes.
        let mut quoted = false;
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '}' if !quoted => {
                    end = Some(i);
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[end? + 1..];
    }
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, value))
}

/// What the page says about the proxy's identity.
#[derive(Debug, Default, PartialEq)]
pub struct Identity {
    pub metric: String,
    pub expiry: f64,
    pub refreshed: Option<f64>,
    pub refreshes: Option<f64>,
}

/// Read the page: the identity samples, or why it holds none.
pub fn identity(body: &[u8]) -> Result<Identity, String> {
    let text = String::from_utf8_lossy(body);
    let mut samples = 0usize;
    let mut id = Identity::default();
    let mut found = false;
    for line in text.lines() {
        let Some((name, v)) = sample(line) else {
            continue;
        };
        samples += 1;
        if !found && EXPIRY.contains(&name) {
            id.metric = name.to_owned();
            id.expiry = v;
            found = true;
        } else if REFRESHED.contains(&name) {
            id.refreshed = Some(v);
        } else if REFRESHES.contains(&name) {
            *id.refreshes.get_or_insert(0.0) += v;
        }
    }
    if found {
        return Ok(id);
    }
    if samples == 0 {
        let head = String::from_utf8_lossy(&body[..body.len().min(120)]).into_owned();
        return Err(if body.is_empty() {
            "not a metrics page: empty body".to_owned()
        } else {
            format!("not a metrics page: {}", clean(head.trim()))
        });
    }
    Err(format!(
        "no {} among its {samples} samples (not a Linkerd proxy, or its identity is disabled)",
        EXPIRY[0]
    ))
}

/// The row of one proxy at `base`: its identity certificate's expiry, judged with
/// `lifetime_secs` as its lifetime when the proxy does not say when it was refreshed.
pub fn row(base: &str, body: &[u8], lifetime_secs: i64, now: i64) -> Record {
    let location = format!("{base}/metrics#identity");
    let mut details = vec![
        ("Proxy".to_owned(), format!("Linkerd proxy {base}")),
        (
            "Certificate".to_owned(),
            "not shown by the proxy: its expiry only (no serial, names, fingerprint, subject or issuer)"
                .to_owned(),
        ),
    ];
    let mut json = serde_json::json!({
        "proxy": "linkerd",
        "endpoint": base,
        "facts_only": true,
        "not_before_assumed": true,
    });
    let mk = |json: serde_json::Value, details, note: &str| Extra {
        key: "proxy",
        json,
        details,
        note: Some(note.to_owned()),
    };
    let id = match identity(body) {
        Ok(id) => id,
        Err(why) => {
            let x = mk(json, details, "Linkerd proxy identity");
            return Record::from_store(KIND, &location, None, Vec::new(), x, now).with_error(why);
        }
    };
    json["metric"] = id.metric.clone().into();
    details.push(("Metric".to_owned(), id.metric.clone()));
    if !id.expiry.is_finite() || id.expiry < 1.0 {
        let x = mk(json, details, "Linkerd proxy identity");
        return Record::from_store(KIND, &location, None, Vec::new(), x, now).with_error(format!(
            "the proxy has no identity certificate ({} is {})",
            id.metric, id.expiry
        ));
    }
    let not_after = id.expiry.round() as i64;
    if let Some(n) = id.refreshes {
        json["refreshes"] = (n.round() as i64).into();
        details.push(("Refreshes".to_owned(), format!("{}", n.round() as i64)));
    }
    let refreshed = id
        .refreshed
        .filter(|r| r.is_finite() && *r >= 1.0)
        .map(|r| r.round() as i64)
        .filter(|r| *r < not_after);
    let (not_before, basis) = match refreshed {
        Some(r) => (r, "the proxy's last refresh".to_owned()),
        None => (
            not_after - lifetime_secs.max(1),
            format!(
                "expiry minus the issuance lifetime {} (--linkerd-issuance-lifetime)",
                crate::model::status::compact_duration(lifetime_secs)
            ),
        ),
    };
    json["valid_from_estimate"] = crate::clock::rfc3339(not_before).into();
    json["valid_from_basis"] = basis.clone().into();
    details.push((
        "Valid from".to_owned(),
        format!(
            "not reported; about {} ({basis})",
            crate::clock::rfc3339(not_before)
        ),
    ));
    let facts = facts_only(String::new(), not_before, not_after, Vec::new(), false);
    let x = mk(json, details, "Linkerd proxy identity (expiry only)");
    Record::from_store(KIND, &location, Some(Arc::new(facts)), Vec::new(), x, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn the_expiry_and_refresh_are_read_from_a_metrics_page() {
        let page = format!(
            "# HELP identity_cert_expiration_timestamp_seconds Time when...\n\
             # TYPE identity_cert_expiration_timestamp_seconds gauge\n\
             identity_cert_expiration_timestamp_seconds {}\n\
             identity_cert_refresh_count 3\n\
             request_total{{direction=\"inbound\",x=\"a}}b\"}} 7\n",
            NOW + 3600
        );
        let r = row("http://p:4191", page.as_bytes(), 86_400, NOW);
        assert_eq!(r.location, "http://p:4191/metrics#identity");
        let c = r.cert.as_ref().expect("facts");
        assert_eq!(c.not_after, NOW + 3600);
        assert_eq!(c.not_before, NOW + 3600 - 86_400);
        assert!(c.serial.is_empty() && c.sans.is_empty());
        let x = r.extra.as_ref().expect("extra");
        assert_eq!(x.json["refreshes"], 3);
        // 23h of a 24h lifetime used: rotation overdue.
        let a = crate::model::assess(&r, NOW, crate::model::Thresholds::default());
        assert_eq!(a.status, crate::model::Status::Critical);
    }

    #[test]
    fn a_newer_proxy_with_its_refresh_time_is_judged_by_it() {
        let page = format!(
            "control_identity_cert_expiration_timestamp_seconds {}.0\n\
             control_identity_cert_refresh_timestamp_seconds {}.25\n",
            NOW + 20 * 3600,
            NOW - 4 * 3600
        );
        let r = row("http://p:4191", page.as_bytes(), 86_400, NOW);
        let c = r.cert.as_ref().expect("facts");
        assert_eq!(c.not_before, NOW - 4 * 3600);
        let a = crate::model::assess(&r, NOW, crate::model::Thresholds::default());
        assert_eq!(a.status, crate::model::Status::Ok);
    }

    #[test]
    fn pages_without_an_identity_are_error_rows() {
        let r = row("b", b"<html>\x1b[2Jnope</html>", 86_400, NOW);
        let e = r.error.as_deref().expect("error");
        assert!(
            e.starts_with("not a metrics page") && !e.contains('\u{1b}'),
            "{e}"
        );
        let r = row("b", b"process_cpu_seconds_total 1\n", 86_400, NOW);
        assert!(r.error.as_deref().expect("e").contains("no identity_cert"));
        let r = row(
            "b",
            b"identity_cert_expiration_timestamp_seconds 0\n",
            86_400,
            NOW,
        );
        assert!(r
            .error
            .as_deref()
            .expect("e")
            .contains("no identity certificate"));
        let r = row(
            "b",
            b"identity_cert_expiration_timestamp_seconds NaN\n",
            86_400,
            NOW,
        );
        assert!(r.error.is_some());
    }
}
