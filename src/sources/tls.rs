//! TLS endpoints: capture the whole served chain whatever its validity, then verify it
//! separately, so a broken certificate is reported, never hidden by a handshake failure.
//!
//! Each connection gets its own capturing verifier (a clone of one base `ClientConfig`), which
//! also records whether the server asked for a client certificate and the first bytes the peer
//! sent (to name a plain-HTTP port). Every failure is a record with an `error`, never a panic.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::model::{CertFacts, Record, SourceKind, TlsInfo, Verification};
use crate::sources::starttls::{self, Stage};
use crate::sources::target::Target;

pub mod source;

/// Install ring as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Probe configuration shared by every connection.
pub struct TlsProber {
    base: ClientConfig,
    algs: WebPkiSupportedAlgorithms,
    verifier: Arc<WebPkiServerVerifier>,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ProberError {
    #[error("no usable trust anchors: {0}")]
    Roots(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Per-connection capture: the served chain, the stapled OCSP response, a client-certificate
/// request, the first bytes.
#[derive(Debug)]
struct Capture {
    chain: Mutex<Option<Vec<CertificateDer<'static>>>>,
    ocsp: Mutex<Option<Vec<u8>>>,
    client_auth: AtomicBool,
    first_bytes: Mutex<Vec<u8>>,
    algs: WebPkiSupportedAlgorithms,
}

impl Capture {
    fn new(algs: WebPkiSupportedAlgorithms) -> Capture {
        Capture {
            chain: Mutex::new(None),
            ocsp: Mutex::new(None),
            client_auth: AtomicBool::new(false),
            first_bytes: Mutex::new(Vec::new()),
            algs,
        }
    }
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if !ocsp.is_empty() {
            if let Ok(mut slot) = self.ocsp.lock() {
                *slot = Some(ocsp.to_vec());
            }
        }
        let mut all = Vec::with_capacity(1 + intermediates.len());
        all.push(end_entity.clone().into_owned());
        all.extend(intermediates.iter().map(|c| c.clone().into_owned()));
        if let Ok(mut slot) = self.chain.lock() {
            *slot = Some(all);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ResolvesClientCert for Capture {
    fn resolve(
        &self,
        _hints: &[&[u8]],
        _schemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.client_auth.store(true, Ordering::Relaxed);
        None
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A TCP stream that keeps a copy of the first bytes the peer sends.
struct Recording {
    inner: TcpStream,
    capture: Arc<Capture>,
    recorded: bool,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if !self.recorded && buf.filled().len() > before {
            let got = &buf.filled()[before..];
            if let Ok(mut first) = self.capture.first_bytes.lock() {
                first.extend_from_slice(&got[..got.len().min(64)]);
            }
            self.recorded = true;
        }
        res
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

const PHASE_RESOLVE: u8 = 0;
const PHASE_CONNECT: u8 = 1;
const PHASE_HANDSHAKE: u8 = 2;
const PHASE_STARTTLS: u8 = 3;

fn phase_name(p: u8) -> &'static str {
    match p {
        PHASE_RESOLVE => "resolving the host name",
        PHASE_CONNECT => "connecting",
        _ => "waiting for the TLS handshake (TCP connected)",
    }
}

/// Load every certificate from PEM files as extra trust anchors.
pub fn load_ca_files(
    paths: &[std::path::PathBuf],
) -> Result<Vec<CertificateDer<'static>>, ProberError> {
    let mut out = Vec::new();
    for p in paths {
        let data = std::fs::read(p)
            .map_err(|e| ProberError::Roots(format!("cannot read CA file {}: {e}", p.display())))?;
        let before = out.len();
        for item in crate::sources::pem::scan(&data) {
            if let crate::sources::pem::PemItem::Certificate(der) = item {
                out.push(CertificateDer::from(der));
            }
        }
        if out.len() == before {
            return Err(ProberError::Roots(format!(
                "CA file {} holds no PEM certificate",
                p.display()
            )));
        }
    }
    Ok(out)
}

impl TlsProber {
    /// A prober trusting the webpki roots plus `extra_roots`.
    pub fn new(
        extra_roots: &[CertificateDer<'static>],
        timeout: Duration,
    ) -> Result<TlsProber, ProberError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let algs = provider.signature_verification_algorithms;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for r in extra_roots {
            roots
                .add(r.clone())
                .map_err(|e| ProberError::Roots(format!("unusable CA certificate: {e}")))?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ProberError::Roots(e.to_string()))?;
        let capture = Arc::new(Capture::new(algs));
        let mut base = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ProberError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(capture.clone())
            .with_client_cert_resolver(capture);
        base.resumption = rustls::client::Resumption::disabled();
        Ok(TlsProber {
            base,
            algs,
            verifier,
            timeout,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Probe one endpoint. Always returns a record; failures are in `error`.
    pub async fn probe(&self, target: &Target) -> Record {
        self.probe_stapled(target).await.0
    }

    /// [`TlsProber::probe`], with the OCSP response the server stapled, if it stapled one.
    pub async fn probe_stapled(&self, target: &Target) -> (Record, Option<Vec<u8>>) {
        let capture = Arc::new(Capture::new(self.algs));
        let rec = self.probe_with(target, &capture).await;
        let ocsp = capture.ocsp.lock().ok().and_then(|mut o| o.take());
        (rec, ocsp)
    }

    async fn probe_with(&self, target: &Target, capture: &Arc<Capture>) -> Record {
        let now = crate::clock::now_unix();
        let mut rec = Record::new(SourceKind::TLS, target.to_string(), now);
        let server_name = match ServerName::try_from(target.server_name().to_owned()) {
            Ok(n) => n,
            Err(_) => {
                return rec.with_error(format!(
                    "'{}' is not a valid TLS server name",
                    target.server_name()
                ))
            }
        };
        let phase = AtomicU8::new(PHASE_RESOLVE);
        let stage = Stage::default();
        let mut peer = None;
        let attempt = self.handshake(
            target,
            server_name.clone(),
            capture,
            (&phase, &stage),
            &mut peer,
        );
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        let mut info = TlsInfo {
            peer_addr: peer.map(|a: SocketAddr| a.to_string()),
            starttls: target.starttls.map(starttls::Protocol::name),
            ..TlsInfo::default()
        };
        info.client_auth_requested = capture.client_auth.load(Ordering::Relaxed);
        let handshake_error = match outcome {
            Err(_) => {
                let p = phase.load(Ordering::Relaxed);
                rec.tls = Some(info);
                let waiting = match target.starttls {
                    Some(proto) if p == PHASE_STARTTLS => format!(
                        "in the {} dialogue before TLS, {} (TCP connected)",
                        proto.title(),
                        stage.get()
                    ),
                    _ => phase_name(p).to_owned(),
                };
                return rec.with_error(format!(
                    "timed out after {} {waiting}",
                    humantime::format_duration(self.timeout),
                ));
            }
            Ok(Err(ProbeFail::Early(msg))) => {
                rec.tls = Some(info);
                return rec.with_error(msg);
            }
            Ok(Err(ProbeFail::Handshake(e))) => Some(e),
            Ok(Ok(version)) => {
                info.tls_version = Some(version);
                None
            }
        };
        let chain = capture.chain.lock().ok().and_then(|mut c| c.take());
        let Some(chain) = chain.filter(|c| !c.is_empty()) else {
            rec.tls = Some(info);
            let first = capture
                .first_bytes
                .lock()
                .map(|b| b.clone())
                .unwrap_or_default();
            let msg =
                describe_handshake_error(handshake_error.as_ref(), &first, info_requested(capture));
            return rec.with_error(after_starttls(target, msg));
        };
        if let Some(e) = handshake_error {
            // The certificate arrived before the failure (an mTLS server refusing us, say).
            let first = capture
                .first_bytes
                .lock()
                .map(|b| b.clone())
                .unwrap_or_default();
            let why = describe_handshake_error(Some(&e), &first, info_requested(capture));
            tracing::debug!(target = %rec.location, "handshake failed after the certificate: {why}");
            if !info.client_auth_requested {
                rec.error = Some(format!(
                    "handshake failed after the certificate was received: {why}"
                ));
            }
        }
        info.verification = Some(self.verify(&chain, &server_name, target.server_name()));
        let mut facts = chain.iter().map(|der| CertFacts::from_der(der.as_ref()));
        match facts.next() {
            Some(Ok(leaf)) => rec.cert = Some(Arc::new(leaf)),
            Some(Err(e)) => {
                rec.tls = Some(info);
                return rec.with_error(format!("the server sent a malformed certificate: {e}"));
            }
            None => {}
        }
        for (i, f) in facts.enumerate() {
            match f {
                Ok(c) => rec.chain.push(Arc::new(c)),
                Err(e) => {
                    rec.error.get_or_insert_with(|| {
                        format!("chain certificate {} is malformed: {e}", i + 1)
                    });
                }
            }
        }
        rec.tls = Some(info);
        rec
    }

    async fn handshake(
        &self,
        target: &Target,
        server_name: ServerName<'static>,
        capture: &Arc<Capture>,
        (phase, stage): (&AtomicU8, &Stage),
        peer: &mut Option<SocketAddr>,
    ) -> Result<String, ProbeFail> {
        let addrs: Vec<SocketAddr> = match target.host.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
                Ok(a) => a.collect(),
                Err(e) => {
                    return Err(ProbeFail::Early(format!(
                        "DNS lookup of '{}' failed: {}",
                        target.host,
                        short_io(&e)
                    )))
                }
            },
        };
        if addrs.is_empty() {
            return Err(ProbeFail::Early(format!(
                "DNS lookup of '{}' returned no address",
                target.host
            )));
        }
        phase.store(PHASE_CONNECT, Ordering::Relaxed);
        let mut last_err = None;
        let mut tcp = None;
        for addr in &addrs {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    *peer = Some(*addr);
                    tcp = Some(s);
                    break;
                }
                Err(e) => last_err = Some((addr, e)),
            }
        }
        let Some(mut tcp) = tcp else {
            let msg = match last_err {
                Some((addr, e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    format!("connection refused ({addr})")
                }
                Some((addr, e)) => format!("{} ({addr})", short_io(&e)),
                None => "no address to connect to".to_owned(),
            };
            return Err(ProbeFail::Early(msg));
        };
        let _ = tcp.set_nodelay(true);
        if let Some(proto) = target.starttls {
            phase.store(PHASE_STARTTLS, Ordering::Relaxed);
            starttls::negotiate(&mut tcp, proto, target.server_name(), stage)
                .await
                .map_err(|e| ProbeFail::Early(e.to_string()))?;
        }
        phase.store(PHASE_HANDSHAKE, Ordering::Relaxed);
        let mut cfg = self.base.clone();
        cfg.dangerous().set_certificate_verifier(capture.clone());
        cfg.client_auth_cert_resolver = capture.clone();
        if let Some(alpn) = target.starttls.and_then(starttls::Protocol::alpn) {
            cfg.alpn_protocols = vec![alpn.to_vec()];
        }
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let stream = Recording {
            inner: tcp,
            capture: capture.clone(),
            recorded: false,
        };
        match connector.connect(server_name, stream).await {
            Ok(tls) => {
                let version = tls
                    .get_ref()
                    .1
                    .protocol_version()
                    .map(|v| match v {
                        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                Ok(version)
            }
            Err(e) => Err(ProbeFail::Handshake(e)),
        }
    }

    /// Verify a served chain for `name` against the trust anchors, at the current time.
    fn verify(
        &self,
        chain: &[CertificateDer<'static>],
        name: &ServerName<'_>,
        shown: &str,
    ) -> Verification {
        let Some((ee, rest)) = chain.split_first() else {
            return Verification {
                trusted: false,
                reason: "no certificate".to_owned(),
                checked_name: shown.to_owned(),
            };
        };
        let res = self
            .verifier
            .verify_server_cert(ee, rest, name, &[], UnixTime::now());
        let (trusted, reason) = match res {
            Ok(_) => (true, "trusted".to_owned()),
            Err(e) => (false, describe_verify_error(&e, ee)),
        };
        Verification {
            trusted,
            reason,
            checked_name: shown.to_owned(),
        }
    }
}

enum ProbeFail {
    Early(String),
    Handshake(std::io::Error),
}

/// A handshake failure after a STARTTLS dialogue says so (and gives the protocol's hint).
fn after_starttls(target: &Target, msg: String) -> String {
    match target.starttls {
        Some(p) => match p.handshake_hint() {
            Some(hint) => format!("{msg} ({hint})"),
            None => format!("{} accepted TLS, then: {msg}", p.title()),
        },
        None => msg,
    }
}

fn info_requested(c: &Capture) -> bool {
    c.client_auth.load(Ordering::Relaxed)
}

fn short_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn printable_prefix(first: &[u8]) -> String {
    let line = first
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .unwrap_or_default();
    line.iter()
        .take(40)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Turn a handshake failure into a sentence a user can act on.
fn describe_handshake_error(e: Option<&std::io::Error>, first: &[u8], client_auth: bool) -> String {
    let looks_http =
        first.starts_with(b"HTTP/") || first.starts_with(b"<") || first.starts_with(b"SSH-");
    if looks_http {
        let what = if first.starts_with(b"SSH-") {
            "SSH"
        } else {
            "plain HTTP"
        };
        return format!(
            "not a TLS server: the port answered in {what} (\"{}\")",
            printable_prefix(first)
        );
    }
    let Some(e) = e else {
        return "the server sent no certificate".to_owned();
    };
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::AlertReceived(alert)) => {
            let alert = format!("{alert:?}");
            if client_auth {
                format!("the server requires a client certificate (mTLS) and closed the handshake: alert {alert}")
            } else {
                format!("the server refused the handshake: alert {alert}")
            }
        }
        Some(rustls::Error::InvalidMessage(m)) => {
            if first.is_empty() {
                format!("not a TLS server: invalid TLS message ({m:?})")
            } else {
                format!(
                    "not a TLS server: unexpected bytes \"{}\" ({m:?})",
                    printable_prefix(first)
                )
            }
        }
        Some(rustls::Error::PeerIncompatible(p)) => {
            format!("no TLS version or cipher in common: {p:?}")
        }
        Some(rustls::Error::PeerMisbehaved(p)) => {
            format!("the server broke the TLS protocol: {p:?}")
        }
        Some(other) => format!("TLS handshake failed: {other}"),
        None => match e.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                if first.is_empty() {
                    "the server closed the connection during the TLS handshake".to_owned()
                } else {
                    format!(
                        "not a TLS server: it sent \"{}\" and closed the connection",
                        printable_prefix(first)
                    )
                }
            }
            std::io::ErrorKind::ConnectionReset => {
                "connection reset during the TLS handshake".to_owned()
            }
            _ => format!("TLS handshake failed: {}", short_io(e)),
        },
    }
}

fn describe_verify_error(e: &rustls::Error, ee: &CertificateDer<'_>) -> String {
    let leaf = CertFacts::from_der(ee.as_ref()).ok();
    match e {
        rustls::Error::InvalidCertificate(ce) => match ce {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not yet valid".to_owned()
            }
            CertificateError::UnknownIssuer => {
                if leaf.as_ref().is_some_and(|l| l.self_issued) {
                    "self-signed".to_owned()
                } else {
                    "unknown issuer (no chain to a trusted root)".to_owned()
                }
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                let names: Vec<String> = leaf
                    .map(|l| l.sans.iter().map(|s| s.value().to_owned()).collect())
                    .unwrap_or_default();
                if names.is_empty() {
                    "host name mismatch (the certificate has no subject alternative names)"
                        .to_owned()
                } else {
                    format!(
                        "host name mismatch (certificate is for {})",
                        names.join(", ")
                    )
                }
            }
            CertificateError::BadSignature => "bad signature in the chain".to_owned(),
            CertificateError::Revoked => "revoked".to_owned(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "not valid for TLS server authentication (extended key usage)".to_owned()
            }
            CertificateError::UnhandledCriticalExtension => {
                "unhandled critical extension".to_owned()
            }
            CertificateError::BadEncoding => "badly encoded certificate".to_owned(),
            other => format!("{other:?}"),
        },
        other => other.to_string(),
    }
}
