//! Revocation checking: OCSP and CRLs, for any source that has a certificate and its issuer.
//!
//! Order of evidence ([`Checker::check`]): a stapled OCSP response (from the TLS handshake),
//! else the OCSP responders named in the certificate's Authority Information Access, else its
//! CRL distribution points. Every answer is verified: an OCSP response must be signed by the
//! issuer or by a responder certificate the issuer signed for OCSP signing, and must be about
//! this certificate and current; a CRL must be signed by the issuer and current. Signatures are
//! checked with webpki's ring algorithms (x509-ocsp only encodes and decodes).
//!
//! Anything that goes wrong (responder down, slow, oversized, unsigned, stale, unknown) is
//! [`Verdict::Unknown`] with the reason: soft-fail, never a false "revoked", never a hang
//! (each fetch has a time and size limit, and the whole check has a deadline).
//!
//! A [`Checker`] lives as long as its source and caches what it fetched: CRLs by URL and
//! verdicts by certificate, each until the answer's `nextUpdate` (at most an hour; a
//! revocation for good; a soft-fail for five minutes), so a thousand certificates of one CA
//! fetch its CRL once and a dashboard round does not ask every responder again. A re-read the
//! user asks for ([`Checker::check_record`] with `fresh`) asks again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use der::{Decode as _, Encode as _};
use rustls_pki_types::CertificateDer;
use tokio::sync::Mutex;
use x509_parser::prelude::*;

use crate::model::{CertFacts, Record, Revocation};

/// Longest a good verdict or a CRL is reused, whatever its `nextUpdate` says.
const MAX_CACHE: Duration = Duration::from_secs(3600);
/// How long a soft-fail is reused before the responders are asked again.
const UNKNOWN_CACHE: Duration = Duration::from_secs(300);
/// Most verdicts kept (a full cache is emptied, not grown).
const MAX_ENTRIES: usize = 100_000;

/// Size and time limits of revocation fetches.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time limit of each fetch (connect, send, read).
    pub timeout: Duration,
    /// Deadline of a whole check (all responders and distribution points together).
    pub deadline: Duration,
    pub max_crl_bytes: usize,
    pub max_ocsp_bytes: usize,
    /// Clock skew allowed on thisUpdate / nextUpdate.
    pub skew_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::for_timeout(Duration::from_secs(5))
    }
}

impl Limits {
    /// The limits for a probe timeout: each fetch within it, the whole check (stapled, OCSP,
    /// then CRL) within twice it.
    pub fn for_timeout(timeout: Duration) -> Limits {
        Limits {
            timeout,
            deadline: timeout * 2,
            max_crl_bytes: 20 * 1024 * 1024,
            max_ocsp_bytes: 64 * 1024,
            skew_secs: 300,
        }
    }
}

/// A revocation: when (unix seconds) and the RFC 5280 reason, if given.
pub type RevokedEntry = (i64, Option<String>);

/// Where a verdict came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    StapledOcsp,
    Ocsp { url: String },
    Crl { url: String },
}

impl std::fmt::Display for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evidence::StapledOcsp => f.write_str("stapled OCSP response"),
            Evidence::Ocsp { url } => write!(f, "OCSP {url}"),
            Evidence::Crl { url } => write!(f, "CRL {url}"),
        }
    }
}

/// The revocation state of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Good {
        by: Evidence,
    },
    Revoked {
        /// Unix seconds.
        at: i64,
        /// RFC 5280 reason (`keyCompromise`, `superseded`...), when given.
        reason: Option<String>,
        by: Evidence,
    },
    /// Soft-fail: nothing conclusive, and why.
    Unknown {
        reason: String,
    },
}

/// Why one piece of evidence could not be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RevocationError {
    #[error("{0}")]
    Fetch(String),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: String },
    #[error("{0}")]
    Invalid(String),
    #[error("responder says {0}")]
    ResponderStatus(String),
}

fn malformed(what: &'static str, why: impl std::fmt::Display) -> RevocationError {
    RevocationError::Malformed {
        what,
        why: why.to_string(),
    }
}

/// A signed structure split into its parts: `SEQUENCE { tbs, algorithm, signature, ... }`
/// (certificates, CRLs and basic OCSP responses share this shape). The tbs bytes are the
/// original ones, so a signature is checked over exactly what was signed.
struct Signed<'a> {
    tbs: &'a [u8],
    /// The AlgorithmIdentifier's contents (without its SEQUENCE header), as webpki names them.
    alg: &'a [u8],
    sig: &'a [u8],
}

fn split_signed<'a>(
    der_bytes: &'a [u8],
    what: &'static str,
) -> Result<Signed<'a>, RevocationError> {
    use der::Reader as _;
    let outer = der::asn1::AnyRef::from_der(der_bytes).map_err(|e| malformed(what, e))?;
    let body = outer.value();
    let mut r = der::SliceReader::new(body).map_err(|e| malformed(what, e))?;
    let _tbs: der::asn1::AnyRef<'_> = r.decode().map_err(|e| malformed(what, e))?;
    let tbs_end = usize::try_from(u32::from(r.position())).map_err(|e| malformed(what, e))?;
    let alg: der::asn1::AnyRef<'_> = r.decode().map_err(|e| malformed(what, e))?;
    let sig: der::asn1::BitStringRef<'_> = r.decode().map_err(|e| malformed(what, e))?;
    Ok(Signed {
        tbs: &body[..tbs_end],
        alg: alg.value(),
        sig: sig.raw_bytes(),
    })
}

/// Verify `signed` with the public key of `signer_der` (a certificate).
fn verify_signed(signer_der: &[u8], signed: &Signed<'_>) -> Result<(), RevocationError> {
    let cert = CertificateDer::from(signer_der);
    let ee = webpki::EndEntityCert::try_from(&cert)
        .map_err(|e| malformed("signer certificate", format!("{e:?}")))?;
    let mut tried = false;
    for alg in webpki::ALL_VERIFICATION_ALGS {
        if alg.signature_alg_id().as_ref() != signed.alg {
            continue;
        }
        tried = true;
        if ee.verify_signature(*alg, signed.tbs, signed.sig).is_ok() {
            return Ok(());
        }
    }
    Err(RevocationError::Invalid(if tried {
        "bad signature".into()
    } else {
        "unsupported signature algorithm".into()
    }))
}

/// Serial as lowercase hex without leading zero bytes (as `CertFacts::serial`).
fn serial_hex(raw: &[u8]) -> String {
    let mut i = 0;
    while i + 1 < raw.len() && raw[i] == 0 {
        i += 1;
    }
    crate::model::cert::hex(&raw[i..])
}

/// RFC 5280 reason code names.
fn reason_name(code: u8) -> String {
    match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return format!("reason {code}"),
    }
    .to_owned()
}

/// A parsed, verified CRL: who issued it, when, and the revoked serials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    pub issuer: String,
    pub this_update: i64,
    pub next_update: Option<i64>,
    /// Serial (lowercase hex) -> (revocation time, reason).
    pub revoked: HashMap<String, RevokedEntry>,
}

impl Crl {
    /// The entry for a serial (lowercase hex as `CertFacts::serial`), if revoked.
    pub fn lookup(&self, serial: &str) -> Option<&RevokedEntry> {
        self.revoked
            .get(serial.trim_start_matches("00"))
            .or_else(|| self.revoked.get(serial))
    }
}

/// Parse a CRL (DER, or PEM `X509 CRL`), check it is signed by `issuer_der` and current at
/// `now`.
pub fn parse_crl(
    data: &[u8],
    issuer_der: &[u8],
    now: i64,
    skew: i64,
) -> Result<Crl, RevocationError> {
    let der_owned;
    let der_bytes: &[u8] = if data.starts_with(b"-----BEGIN") {
        let (_, pem) = x509_parser::pem::parse_x509_pem(data).map_err(|e| malformed("CRL", e))?;
        der_owned = pem.contents;
        &der_owned
    } else {
        data
    };
    let (_, crl) =
        CertificateRevocationList::from_der(der_bytes).map_err(|e| malformed("CRL", e))?;
    let (_, issuer) = X509Certificate::from_der(issuer_der).map_err(|e| malformed("issuer", e))?;
    if crl.tbs_cert_list.issuer.as_raw() != issuer.tbs_certificate.subject.as_raw() {
        return Err(RevocationError::Invalid(format!(
            "the CRL is issued by {}, not by {}",
            crl.tbs_cert_list.issuer, issuer.tbs_certificate.subject
        )));
    }
    verify_signed(issuer_der, &split_signed(der_bytes, "CRL")?)
        .map_err(|e| RevocationError::Invalid(format!("CRL signature: {e}")))?;
    let this_update = crl.last_update().timestamp();
    let next_update = crl.next_update().map(|t| t.timestamp());
    if this_update > now + skew {
        return Err(RevocationError::Invalid("the CRL is not valid yet".into()));
    }
    if let Some(n) = next_update {
        if n + skew < now {
            return Err(RevocationError::Invalid(format!(
                "the CRL is stale (next update was {})",
                crate::clock::rfc3339(n)
            )));
        }
    }
    let mut revoked = HashMap::new();
    for r in crl.iter_revoked_certificates() {
        let reason = r.reason_code().map(|(_, rc)| reason_name(rc.0));
        revoked.insert(
            serial_hex(r.raw_serial()),
            (r.revocation_date.timestamp(), reason),
        );
    }
    Ok(Crl {
        issuer: crl.tbs_cert_list.issuer.to_string(),
        this_update,
        next_update,
        revoked,
    })
}

/// An OCSP request (DER) for `cert` issued by `issuer` (SHA-1 CertID, as responders expect).
pub fn ocsp_request(cert_der: &[u8], issuer_der: &[u8]) -> Result<Vec<u8>, RevocationError> {
    let cert =
        x509_cert::Certificate::from_der(cert_der).map_err(|e| malformed("certificate", e))?;
    let issuer =
        x509_cert::Certificate::from_der(issuer_der).map_err(|e| malformed("issuer", e))?;
    let req = x509_ocsp::Request::from_cert::<sha1::Sha1>(&issuer, &cert)
        .map_err(|e| malformed("OCSP request", format!("{e:?}")))?;
    x509_ocsp::builder::OcspRequestBuilder::default()
        .with_request(req)
        .build()
        .to_der()
        .map_err(|e| malformed("OCSP request", e))
}

fn gen_time(t: &x509_ocsp::OcspGeneralizedTime) -> i64 {
    t.0.to_unix_duration().as_secs() as i64
}

/// Has `c` the extended key usage id-kp-OCSPSigning?
fn is_ocsp_signer(c: &X509Certificate<'_>) -> bool {
    matches!(c.extended_key_usage(), Ok(Some(e)) if e.value.ocsp_signing)
}

/// What a verified OCSP response says: the revocation (if revoked) and its `nextUpdate`.
pub type OcspAnswer = (Option<RevokedEntry>, Option<i64>);

/// Read an OCSP response (DER) about `cert_der`, verify it, and give its verdict.
pub fn ocsp_verdict(
    resp_der: &[u8],
    cert_der: &[u8],
    issuer_der: &[u8],
    now: i64,
    skew: i64,
) -> Result<OcspAnswer, RevocationError> {
    use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};
    let resp = OcspResponse::from_der(resp_der).map_err(|e| malformed("OCSP response", e))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(RevocationError::ResponderStatus(format!(
            "{:?}",
            resp.response_status
        )));
    }
    let bytes = resp
        .response_bytes
        .ok_or_else(|| malformed("OCSP response", "no response bytes"))?;
    let basic_der = bytes.response.as_bytes();
    let basic =
        BasicOcspResponse::from_der(basic_der).map_err(|e| malformed("OCSP response", e))?;
    let signed = split_signed(basic_der, "OCSP response")?;
    // Signed by the issuer itself, or by a delegated responder the issuer certified.
    let mut verified = verify_signed(issuer_der, &signed).is_ok();
    if !verified {
        for c in basic.certs.iter().flatten() {
            let Ok(rder) = c.to_der() else { continue };
            let Ok((_, rc)) = X509Certificate::from_der(&rder) else {
                continue;
            };
            let valid = rc.validity().not_before.timestamp() <= now + skew
                && rc.validity().not_after.timestamp() + skew >= now;
            if !valid || !is_ocsp_signer(&rc) {
                continue;
            }
            let Ok(rs) = split_signed(&rder, "responder certificate") else {
                continue;
            };
            if verify_signed(issuer_der, &rs).is_ok() && verify_signed(&rder, &signed).is_ok() {
                verified = true;
                break;
            }
        }
    }
    if !verified {
        return Err(RevocationError::Invalid(
            "the OCSP response is not signed by the issuer or a responder it certified".into(),
        ));
    }
    // The answer must be about this certificate.
    let cert =
        x509_cert::Certificate::from_der(cert_der).map_err(|e| malformed("certificate", e))?;
    let issuer =
        x509_cert::Certificate::from_der(issuer_der).map_err(|e| malformed("issuer", e))?;
    let want_sha1 = x509_ocsp::CertId::from_cert::<sha1::Sha1>(&issuer, &cert)
        .map_err(|e| malformed("CertID", format!("{e:?}")))?;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        // The request asked with a SHA-1 CertID; responders answer with the same one.
        .find(|s| s.cert_id == want_sha1)
        .ok_or_else(|| {
            RevocationError::Invalid("the OCSP response is about another certificate".into())
        })?;
    let this_update = gen_time(&single.this_update);
    if this_update > now + skew {
        return Err(RevocationError::Invalid(
            "the OCSP response is not valid yet".into(),
        ));
    }
    let next_update = single.next_update.as_ref().map(gen_time);
    if let Some(n) = next_update {
        if n + skew < now {
            return Err(RevocationError::Invalid(format!(
                "the OCSP response is stale (next update was {})",
                crate::clock::rfc3339(n)
            )));
        }
    }
    match &single.cert_status {
        CertStatus::Good(_) => Ok((None, next_update)),
        CertStatus::Revoked(info) => {
            let reason = info.revocation_reason.map(|r| reason_name(r as u8));
            Ok((Some((gen_time(&info.revocation_time), reason)), next_update))
        }
        CertStatus::Unknown(_) => Err(RevocationError::ResponderStatus(
            "unknown (it does not know this certificate)".into(),
        )),
    }
}

/// OCSP responder URLs (http only) and CRL distribution points of a certificate.
pub fn revocation_urls(cert_der: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut ocsp = Vec::new();
    let mut crls = Vec::new();
    let Ok((_, c)) = X509Certificate::from_der(cert_der) else {
        return (ocsp, crls);
    };
    for ext in c.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::AuthorityInfoAccess(aia) => {
                for d in &aia.accessdescs {
                    if d.access_method == x509_parser::oid_registry::OID_PKIX_ACCESS_DESCRIPTOR_OCSP
                    {
                        if let GeneralName::URI(u) = &d.access_location {
                            ocsp.push((*u).to_owned());
                        }
                    }
                }
            }
            ParsedExtension::CRLDistributionPoints(dps) => {
                for dp in dps.iter() {
                    if let Some(DistributionPointName::FullName(names)) = &dp.distribution_point {
                        for n in names {
                            if let GeneralName::URI(u) = n {
                                crls.push((*u).to_owned());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    (ocsp, crls)
}

/// Read a response body up to `max` bytes.
async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("the answer is larger than {max} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| super::describe_http(&e))? {
        if out.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn fetch(
    rb: reqwest::RequestBuilder,
    max: usize,
    timeout: Duration,
) -> Result<Vec<u8>, RevocationError> {
    let fut = async {
        let resp = rb
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| RevocationError::Fetch(super::describe_http(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(RevocationError::Fetch(format!("HTTP {}", status.as_u16())));
        }
        read_limited(resp, max)
            .await
            .map_err(RevocationError::Fetch)
    };
    match tokio::time::timeout(timeout, fut).await {
        Err(_) => Err(RevocationError::Fetch(format!(
            "no answer within {}s",
            timeout.as_secs().max(1)
        ))),
        Ok(r) => r,
    }
}

fn http_only(url: &str) -> Result<(), RevocationError> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
        Ok(u) => Err(RevocationError::Fetch(format!(
            "{} URLs are not fetched",
            u.scheme()
        ))),
        Err(e) => Err(RevocationError::Fetch(format!("bad URL: {e}"))),
    }
}

/// POST an OCSP request to `url` and verify the answer.
pub async fn fetch_ocsp(
    http: &reqwest::Client,
    url: &str,
    cert_der: &[u8],
    issuer_der: &[u8],
    limits: &Limits,
    now: i64,
) -> Result<OcspAnswer, RevocationError> {
    http_only(url)?;
    let req = ocsp_request(cert_der, issuer_der)?;
    let rb = http
        .post(url)
        .header("Content-Type", "application/ocsp-request")
        .header("Accept", "application/ocsp-response")
        .body(req);
    let body = fetch(rb, limits.max_ocsp_bytes, limits.timeout).await?;
    ocsp_verdict(&body, cert_der, issuer_der, now, limits.skew_secs)
}

/// GET a CRL (bounded in size and time), not yet parsed.
pub async fn fetch_crl(
    http: &reqwest::Client,
    url: &str,
    limits: &Limits,
) -> Result<Vec<u8>, RevocationError> {
    http_only(url)?;
    fetch(http.get(url), limits.max_crl_bytes, limits.timeout).await
}

/// A CRL as fetched and checked (or why it could not be used).
type FetchedCrl = Arc<Result<Crl, RevocationError>>;

/// A verdict and how long it holds.
#[derive(Clone)]
struct Cached {
    verdict: Verdict,
    until: Instant,
}

/// Revocation checks of one source: an HTTP client, limits, and what was fetched so far.
pub struct Checker {
    http: reqwest::Client,
    limits: Limits,
    crls: Mutex<HashMap<String, (FetchedCrl, Instant)>>,
    verdicts: std::sync::Mutex<HashMap<String, Cached>>,
}

/// How long an answer valid until `next_update` (unix seconds) may be reused.
fn hold_for(next_update: Option<i64>, now: i64) -> Duration {
    match next_update {
        Some(n) if n > now => Duration::from_secs((n - now) as u64).min(MAX_CACHE),
        Some(_) => Duration::ZERO,
        None => MAX_CACHE,
    }
}

impl Checker {
    pub fn new(http: reqwest::Client, limits: Limits) -> Checker {
        Checker {
            http,
            limits,
            crls: Mutex::new(HashMap::new()),
            verdicts: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// A checker with its own HTTP client (rustls on ring, webpki roots for https URLs).
    pub fn with_defaults(limits: Limits) -> Result<Checker, RevocationError> {
        crate::sources::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(limits.timeout)
            .build()
            .map_err(|e| RevocationError::Fetch(super::describe_http(&e)))?;
        Ok(Checker::new(http, limits))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn crl(
        &self,
        url: &str,
        issuer_der: &[u8],
        now: i64,
        fresh: bool,
    ) -> Arc<Result<Crl, RevocationError>> {
        // Cached per URL; the issuer is checked when it is parsed (one issuer per URL).
        if !fresh {
            if let Some((c, until)) = self.crls.lock().await.get(url) {
                if Instant::now() < *until {
                    return c.clone();
                }
            }
        }
        let r = match fetch_crl(&self.http, url, &self.limits).await {
            Ok(body) => parse_crl(&body, issuer_der, now, self.limits.skew_secs),
            Err(e) => Err(e),
        };
        let hold = match &r {
            Ok(c) => hold_for(c.next_update, now),
            Err(_) => UNKNOWN_CACHE,
        };
        let r = Arc::new(r);
        self.crls
            .lock()
            .await
            .insert(url.to_owned(), (r.clone(), Instant::now() + hold));
        r
    }

    /// The revocation state of `cert_der` issued by `issuer_der`, from a stapled response,
    /// else AIA OCSP, else CRL distribution points. Never errors, never hangs.
    pub async fn check(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
        stapled: Option<&[u8]>,
    ) -> Verdict {
        self.check_for(cert_der, issuer_der, stapled, true).await.0
    }

    /// [`Checker::check`] with its answer's `nextUpdate`; `fresh`: ignore cached CRLs.
    async fn check_for(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
        stapled: Option<&[u8]>,
        fresh: bool,
    ) -> (Verdict, Option<i64>) {
        match tokio::time::timeout(
            self.limits.deadline,
            self.check_inner(cert_der, issuer_der, stapled, fresh),
        )
        .await
        {
            Ok(v) => v,
            Err(_) => (
                Verdict::Unknown {
                    reason: format!(
                        "revocation unknown: no conclusive answer within {}",
                        humantime::format_duration(self.limits.deadline)
                    ),
                },
                None,
            ),
        }
    }

    async fn check_inner(
        &self,
        cert_der: &[u8],
        issuer_der: &[u8],
        stapled: Option<&[u8]>,
        fresh: bool,
    ) -> (Verdict, Option<i64>) {
        let now = crate::clock::now_unix();
        let mut why: Vec<String> = Vec::new();
        let found = |r: Option<RevokedEntry>, by: Evidence| match r {
            None => Verdict::Good { by },
            Some((at, reason)) => Verdict::Revoked { at, reason, by },
        };
        if let Some(s) = stapled {
            match ocsp_verdict(s, cert_der, issuer_der, now, self.limits.skew_secs) {
                Ok((r, next)) => return (found(r, Evidence::StapledOcsp), next),
                Err(e) => why.push(format!("stapled OCSP: {e}")),
            }
        }
        let (ocsp, crls) = revocation_urls(cert_der);
        for url in &ocsp {
            match fetch_ocsp(&self.http, url, cert_der, issuer_der, &self.limits, now).await {
                Ok((r, next)) => return (found(r, Evidence::Ocsp { url: url.clone() }), next),
                Err(e) => why.push(format!("OCSP {url}: {e}")),
            }
        }
        let serial = match X509Certificate::from_der(cert_der) {
            Ok((_, c)) => serial_hex(c.raw_serial()),
            Err(e) => {
                return (
                    Verdict::Unknown {
                        reason: format!("revocation unknown: {}", malformed("certificate", e)),
                    },
                    None,
                )
            }
        };
        for url in &crls {
            match &*self.crl(url, issuer_der, now, fresh).await {
                Ok(crl) => {
                    let by = Evidence::Crl { url: url.clone() };
                    let v = match crl.lookup(&serial) {
                        Some((at, reason)) => Verdict::Revoked {
                            at: *at,
                            reason: reason.clone(),
                            by,
                        },
                        None => Verdict::Good { by },
                    };
                    return (v, crl.next_update);
                }
                Err(e) => why.push(format!("CRL {url}: {e}")),
            }
        }
        if ocsp.is_empty() && crls.is_empty() && stapled.is_none() {
            why.push("the certificate names no OCSP responder and no CRL".into());
        }
        (
            Verdict::Unknown {
                reason: format!("revocation unknown: {}", why.join("; ")),
            },
            None,
        )
    }

    /// A verdict for `leaf`, from the cache when it still holds (unless `fresh` or stapled).
    async fn verdict(
        &self,
        leaf: &CertFacts,
        issuer: &CertFacts,
        stapled: Option<&[u8]>,
        fresh: bool,
    ) -> Verdict {
        let key = format!("{}/{}", leaf.sha256, issuer.sha256);
        if stapled.is_none() && !fresh {
            if let Ok(m) = self.verdicts.lock() {
                if let Some(c) = m.get(&key).filter(|c| Instant::now() < c.until) {
                    return c.verdict.clone();
                }
            }
        }
        let now = crate::clock::now_unix();
        let (v, next) = self.check_for(&leaf.der, &issuer.der, stapled, fresh).await;
        if stapled.is_none() {
            let hold = match &v {
                // A revocation is for good.
                Verdict::Revoked { .. } => Duration::from_secs(30 * 86_400),
                Verdict::Good { .. } => hold_for(next, now),
                Verdict::Unknown { .. } => UNKNOWN_CACHE,
            };
            if let Ok(mut m) = self.verdicts.lock() {
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
                m.insert(
                    key,
                    Cached {
                        verdict: v.clone(),
                        until: Instant::now() + hold,
                    },
                );
            }
        }
        v
    }

    /// Check a row's leaf and set its `revocation`: `stapled` is the OCSP response the
    /// server stapled (TLS rows); the issuer is looked for in the row's chain, then among
    /// `issuers` (the other certificates of its file, the trust anchors given as files).
    /// CA and self-issued certificates, and leaves that name no responder and had nothing
    /// stapled, are not checked (`revocation` stays `None`), except that a Must-Staple leaf
    /// served without a staple is always flagged.
    pub async fn check_record(
        &self,
        rec: &mut Record,
        stapled: Option<&[u8]>,
        issuers: &[Arc<CertFacts>],
        fresh: bool,
    ) {
        let Some(leaf) = rec.cert.clone() else {
            return;
        };
        if leaf.is_ca || leaf.self_issued {
            return;
        }
        let stapled = stapled.filter(|s| !s.is_empty());
        let must_staple_unmet = rec.tls.is_some() && stapled.is_none() && must_staple(&leaf.der);
        let (ocsp, crls) = revocation_urls(&leaf.der);
        if stapled.is_none() && ocsp.is_empty() && crls.is_empty() {
            if must_staple_unmet {
                rec.revocation = Some(Revocation {
                    must_staple_unmet,
                    ..Revocation::unknown(
                        "revocation unknown: the certificate names no OCSP responder and no CRL",
                    )
                });
            }
            return;
        }
        let issuer = find_issuer(&leaf, rec.chain.iter().chain(issuers));
        let mut r = match issuer {
            None => Revocation::unknown(
                "revocation unknown: the issuer's certificate is not available (not sent with the certificate, not in a --ca-file)",
            ),
            Some(issuer) => {
                let issuer = issuer.clone();
                match self.verdict(&leaf, &issuer, stapled, fresh).await {
                    Verdict::Good { by } => Revocation::good(by.to_string()),
                    Verdict::Revoked { at, reason, by } => {
                        Revocation::revoked(at, reason, by.to_string())
                    }
                    Verdict::Unknown { reason } => Revocation::unknown(reason),
                }
            }
        };
        r.must_staple_unmet = must_staple_unmet;
        rec.revocation = Some(r);
    }
}

/// The certificate among `candidates` that issued `leaf`: by key identifier, else by name.
pub fn find_issuer<'a>(
    leaf: &CertFacts,
    candidates: impl Iterator<Item = &'a Arc<CertFacts>> + Clone,
) -> Option<&'a Arc<CertFacts>> {
    let by_name = |c: &&Arc<CertFacts>| c.subject == leaf.issuer && c.sha256 != leaf.sha256;
    if let Some(aki) = &leaf.authority_key_id {
        if let Some(c) = candidates
            .clone()
            .filter(by_name)
            .find(|c| c.subject_key_id.as_ref() == Some(aki))
        {
            return Some(c);
        }
    }
    candidates.clone().find(by_name)
}

/// OID of the TLS Feature extension (RFC 7633).
const TLS_FEATURE: &str = "1.3.6.1.5.5.7.1.24";

/// True when the certificate carries the TLS feature `status_request` (OCSP Must-Staple).
pub fn must_staple(cert_der: &[u8]) -> bool {
    let Ok((_, c)) = X509Certificate::from_der(cert_der) else {
        return false;
    };
    c.extensions().iter().any(|e| {
        e.oid.to_id_string() == TLS_FEATURE
            && <Vec<u16> as der::Decode>::from_der(e.value)
                .is_ok_and(|features| features.contains(&5))
    })
}

/// A source's revocation checking: the checker (or why there is none) and the trust anchors
/// given as files, where issuers that a server or a file does not carry are looked for.
pub struct SourceChecks {
    checker: Result<Checker, String>,
    anchors: Vec<Arc<CertFacts>>,
}

impl SourceChecks {
    /// The checks a source with these probe settings makes; `None` when checking is off.
    pub fn for_probe(settings: &crate::sources::ProbeSettings) -> Option<Arc<SourceChecks>> {
        if !settings.revocation {
            return None;
        }
        let mut anchors = Vec::new();
        let mut ders: Vec<Vec<u8>> = settings.extra_roots.clone();
        if let Ok(files) = crate::sources::tls::load_ca_files(&settings.ca_files) {
            ders.extend(files.iter().map(|d| d.to_vec()));
        }
        for d in ders {
            if let Ok(f) = CertFacts::from_der(&d) {
                anchors.push(Arc::new(f));
            }
        }
        let checker = Checker::with_defaults(Limits::for_timeout(settings.timeout))
            .map_err(|e| format!("revocation unknown: no HTTP client ({e})"));
        Some(Arc::new(SourceChecks { checker, anchors }))
    }

    /// Check a row (see [`Checker::check_record`]); `others` are further issuer candidates.
    pub async fn check(
        &self,
        rec: &mut Record,
        stapled: Option<&[u8]>,
        others: &[Arc<CertFacts>],
        fresh: bool,
    ) {
        match &self.checker {
            Ok(c) => {
                if others.is_empty() {
                    c.check_record(rec, stapled, &self.anchors, fresh).await;
                } else {
                    let mut all = others.to_vec();
                    all.extend(self.anchors.iter().cloned());
                    c.check_record(rec, stapled, &all, fresh).await;
                }
            }
            Err(e) => {
                let leaf = rec.cert.as_ref();
                if leaf.is_some_and(|l| !l.is_ca && !l.self_issued) {
                    rec.revocation = Some(Revocation::unknown(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(split_signed(b"\x30\x03\x02\x01", "x").is_err());
        assert!(ocsp_verdict(b"nonsense", b"", b"", 0, 0).is_err());
        assert!(parse_crl(b"\x30\x82\xff\xff", b"", 0, 0).is_err());
        assert!(ocsp_request(b"", b"").is_err());
    }

    #[test]
    fn serials_drop_their_sign_byte() {
        assert_eq!(serial_hex(&[0x00, 0x9c, 0x01]), "9c01");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn urls_other_than_http_are_not_fetched() {
        assert!(http_only("ldap://x/cn=crl").is_err());
        assert!(http_only("http://127.0.0.1/crl").is_ok());
    }

    #[test]
    fn webpki_has_ring_algorithms() {
        assert!(!webpki::ALL_VERIFICATION_ALGS.is_empty());
    }
}
