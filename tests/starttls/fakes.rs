//! Small misbehaving servers: each connection plays a fixed script.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One step of a server's script.
#[derive(Clone, Debug)]
pub enum Step {
    /// Write these bytes.
    Send(Vec<u8>),
    /// Read one line from the client (up to LF).
    ReadLine,
    /// Read exactly this many bytes.
    Read(usize),
    /// Say nothing more, holding the connection open.
    Hang,
}

pub fn send(s: &str) -> Step {
    Step::Send(s.as_bytes().to_vec())
}

/// Start a server that plays `script` on every connection; returns its port.
pub async fn scripted(script: Vec<Step>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let script = script.clone();
            tokio::spawn(async move {
                let mut s = BufReader::new(s);
                for step in script {
                    match step {
                        Step::Send(b) => {
                            if s.get_mut().write_all(&b).await.is_err() {
                                return;
                            }
                        }
                        Step::ReadLine => {
                            let mut line = Vec::new();
                            loop {
                                let mut byte = [0u8; 1];
                                match s.read(&mut byte).await {
                                    Ok(1) if byte[0] == b'\n' => break,
                                    Ok(1) => line.push(byte[0]),
                                    _ => return,
                                }
                            }
                        }
                        Step::Read(n) => {
                            let mut buf = vec![0u8; n];
                            if s.read_exact(&mut buf).await.is_err() {
                                return;
                            }
                        }
                        Step::Hang => break,
                    }
                }
                // Hold the connection until the client goes away.
                let mut sink = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(60), async {
                    while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            });
        }
    });
    port
}

/// A TLS server like PostgreSQL 17's direct TLS port: it offers only ALPN `postgresql`, and
/// records the ALPN protocol each handshake agreed on.
pub async fn direct_tls_postgres(
    cert_pem: &str,
    key_pem: &str,
) -> (u16, Arc<Mutex<Vec<Option<Vec<u8>>>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert pem")];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key pem");
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    cfg.alpn_protocols = vec![b"postgresql".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let seen = seen2.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                    seen.lock().expect("lock").push(alpn);
                }
            });
        }
    });
    (port, seen)
}
