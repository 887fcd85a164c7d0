//! Workload certificates held only in mesh proxies (`proxy`): an Envoy admin endpoint's
//! `/certs` (Istio sidecars and gateways, Consul, App Mesh...) and a Linkerd proxy's
//! `/metrics` (`identity_cert_expiration_timestamp_seconds`).
//!
//! Neither gives the certificate itself: Envoy reports serial, SANs and dates, Linkerd only the
//! expiry. Their rows say what is known and no more (no fingerprint, subject or issuer: JSON
//! `null`, facts `facts_only: true`) and are judged by expiry. Everything these endpoints send is
//! hostile text: it is cleaned of control characters before it becomes a row.
//!
//! `envoy` and `linkerd` are pure (an answer's bytes to rows); `source` does the HTTP.

pub mod envoy;
pub mod linkerd;
pub mod source;

use std::sync::Arc;

use crate::model::cert::{sha256_hex, San};
use crate::model::{CertFacts, SourceKind};

pub const KIND: SourceKind = SourceKind::new("proxy");

/// Largest answer read from a proxy (an ingress gateway's `/certs` with thousands of SDS
/// secrets is a few MB).
pub const MAX_ANSWER: usize = 32 << 20;

/// The facts a proxy reports about a certificate it holds, as a certificate without DER: no
/// subject, issuer, key or fingerprint. Its `sha256` is an internal identity made of what is
/// known (never shown), so one CA held by many proxies is one certificate in the fleet.
pub fn facts_only(
    serial: String,
    not_before: i64,
    not_after: i64,
    sans: Vec<San>,
    is_ca: bool,
) -> CertFacts {
    let names: Vec<String> = sans.iter().map(San::render).collect();
    CertFacts {
        der: Arc::from(Vec::new()),
        sha256: sha256_hex(
            format!(
                "proxy-facts|{serial}|{not_before}|{not_after}|{}|{is_ca}",
                names.join(",")
            )
            .as_bytes(),
        ),
        subject: String::new(),
        common_name: None,
        issuer: String::new(),
        serial,
        not_before,
        not_after,
        sans,
        key: String::new(),
        signature_algorithm: String::new(),
        is_ca,
        self_issued: false,
        subject_key_id: None,
        authority_key_id: None,
        spki_sha256: None,
    }
}

/// A user's endpoint as a base URL: `host:port` gets `http://`, a trailing `/certs` or
/// `/metrics` (the page read) is dropped.
pub fn base_url(input: &str, page: &str) -> Result<reqwest::Url, String> {
    let s = input.trim();
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let mut u = reqwest::Url::parse(&with_scheme)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| {
            format!(
                "'{}' is not an http(s) URL or host:port",
                crate::model::text::clean(input)
            )
        })?;
    let path = u.path().trim_end_matches('/').to_owned();
    let path = path.strip_suffix(page).unwrap_or(&path).to_owned();
    u.set_path(&path);
    u.set_query(None);
    u.set_fragment(None);
    Ok(u)
}

/// The base URL as shown in locations: `http://host:port` (plus any path prefix), no slash.
pub fn shown(u: &reqwest::Url) -> String {
    crate::model::text::clean(u.as_str().trim_end_matches('/')).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalised_to_a_base_url() {
        let b = |s: &str, p: &str| base_url(s, p).map(|u| shown(&u));
        assert_eq!(
            b("127.0.0.1:15000", "/certs").as_deref(),
            Ok("http://127.0.0.1:15000")
        );
        assert_eq!(
            b("http://pod:15000/certs", "/certs").as_deref(),
            Ok("http://pod:15000")
        );
        assert_eq!(
            b("https://pod:4191/metrics?x=1", "/metrics").as_deref(),
            Ok("https://pod:4191")
        );
        assert!(b("ftp://pod", "/certs").is_err());
        assert!(b("", "/certs").is_err());
    }
}
