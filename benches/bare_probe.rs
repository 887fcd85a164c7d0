//! The ceiling for any TLS prober on this machine: a bare tokio-rustls loop that only
//! connects, handshakes (no verification at all) and takes the served chain.
//!
//! usage: bare_probe TARGETS_FILE [CONCURRENCY]   (prints how many chains it got)

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

#[derive(Debug)]
struct AcceptAll(Vec<SignatureScheme>);

impl ServerCertVerifier for AcceptAll {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .expect("usage: bare_probe TARGETS_FILE [CONCURRENCY]");
    let conc: usize = args
        .next()
        .map(|c| c.parse().expect("concurrency"))
        .unwrap_or(256);
    let targets: Vec<String> = std::fs::read_to_string(file)
        .expect("read targets")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAll(schemes)))
        .with_no_client_auth();
    cfg.resumption = rustls::client::Resumption::disabled();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let sem = Arc::new(tokio::sync::Semaphore::new(conc));
    let mut set = tokio::task::JoinSet::new();
    let mut got = 0usize;
    for t in targets {
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let connector = connector.clone();
        set.spawn(async move {
            let _permit = permit;
            let (host, _) = t.rsplit_once(':')?;
            let tcp = tokio::net::TcpStream::connect(&t).await.ok()?;
            let name = ServerName::try_from(host.to_owned()).ok()?;
            let tls = match connector.connect(name, tcp).await {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("{t}: {e}");
                    return None;
                }
            };
            tls.get_ref().1.peer_certificates().map(|c| c.len())
        });
        while let Some(r) = set.try_join_next() {
            got += usize::from(matches!(r, Ok(Some(_))));
        }
    }
    while let Some(r) = set.join_next().await {
        if matches!(r, Ok(Some(_))) {
            got += 1;
        }
    }
    println!("{got}");
}
