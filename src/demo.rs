//! The built-in demo fleet: in-process rustls servers on loopback with rcgen certificates
//! covering every interesting case, and a folder of certificate files. It is `certdeck demo`
//! and the fixture for tests.
//!
//! Each server resolves its certificate through a swappable slot, so a renewal can make it
//! serve a new certificate without a restart.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::sources::{ProbeSettings, Source, Target};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("generating a demo certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("demo TLS setup: {0}")]
    Tls(String),
    #[error("demo IO: {0}")]
    Io(#[from] std::io::Error),
}

/// A certificate slot a server reads on every handshake.
#[derive(Debug)]
pub struct SwapResolver(RwLock<Arc<CertifiedKey>>);

impl SwapResolver {
    pub fn new(ck: CertifiedKey) -> SwapResolver {
        SwapResolver(RwLock::new(Arc::new(ck)))
    }

    /// Serve `ck` from the next handshake on.
    pub fn swap(&self, ck: CertifiedKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Arc::new(ck);
        }
    }
}

impl ResolvesServerCert for SwapResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|c| c.clone())
    }
}

/// A CA that can issue certificates.
pub struct DemoCa {
    pub name: String,
    pub der: CertificateDer<'static>,
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DemoCa {
    /// A self-signed root valid from `from` to `until` (offsets from `now`).
    pub fn root(
        name: &str,
        now: OffsetDateTime,
        from: Duration,
        until: Duration,
    ) -> Result<DemoCa, DemoError> {
        let key = KeyPair::generate()?;
        let params = ca_params(name, now + from, now + until);
        let cert = params.self_signed(&key)?;
        Ok(DemoCa {
            name: name.to_owned(),
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// An intermediate signed by `self`.
    pub fn intermediate(
        &self,
        name: &str,
        now: OffsetDateTime,
        from: Duration,
        until: Duration,
    ) -> Result<DemoCa, DemoError> {
        let key = KeyPair::generate()?;
        let params = ca_params(name, now + from, now + until);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(DemoCa {
            name: name.to_owned(),
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A leaf for `names` signed by this CA.
    pub fn leaf(&self, spec: &LeafSpec) -> Result<Leaf, DemoError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(spec)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        })
    }
}

/// What a demo leaf certificate says.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub common_name: String,
    pub dns: Vec<String>,
    pub uris: Vec<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub client_auth: bool,
}

/// A leaf certificate with its key.
pub struct Leaf {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub key: KeyPair,
}

impl Leaf {
    /// Self-signed leaf.
    pub fn self_signed(spec: &LeafSpec) -> Result<Leaf, DemoError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(spec)?;
        let cert = params.self_signed(&key)?;
        Ok(Leaf {
            der: cert.der().clone(),
            pem: cert.pem(),
            key,
        })
    }

    fn certified_key(&self, chain: &[CertificateDer<'static>]) -> Result<CertifiedKey, DemoError> {
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
            .map_err(|e| DemoError::Tls(e.to_string()))?;
        let mut certs = vec![self.der.clone()];
        certs.extend(chain.iter().cloned());
        Ok(CertifiedKey::new(certs, signing))
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::OrganizationName, "certdeck demo");
    d.push(DnType::CommonName, cn);
    d
}

fn ca_params(name: &str, from: OffsetDateTime, until: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = from;
    p.not_after = until;
    p
}

fn leaf_params(spec: &LeafSpec) -> Result<CertificateParams, DemoError> {
    let mut p = CertificateParams::new(spec.dns.clone())?;
    for u in &spec.uris {
        p.subject_alt_names
            .push(SanType::URI(u.as_str().try_into()?));
    }
    p.distinguished_name = dn(&spec.common_name);
    p.not_before = spec.not_before;
    p.not_after = spec.not_after;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = if spec.client_auth {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![ExtendedKeyUsagePurpose::ServerAuth]
    };
    Ok(p)
}

/// One demo endpoint.
pub struct DemoEndpoint {
    pub target: Target,
    /// What this endpoint demonstrates.
    pub story: &'static str,
    pub resolver: Arc<SwapResolver>,
}

/// The running demo fleet. Dropping it stops the servers and removes the files.
pub struct DemoFleet {
    pub root: DemoCa,
    /// The demo intermediate that issues renewals.
    pub issuer: Arc<DemoCa>,
    pub endpoints: Vec<DemoEndpoint>,
    pub files_dir: PathBuf,
    _tmp: tempfile::TempDir,
    tasks: tokio::task::JoinSet<()>,
}

impl Drop for DemoFleet {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

fn spec(cn: &str, now: OffsetDateTime, from_days: i64, until_days: i64) -> LeafSpec {
    LeafSpec {
        common_name: cn.to_owned(),
        dns: vec![cn.to_owned(), "localhost".to_owned()],
        uris: Vec::new(),
        not_before: now + Duration::days(from_days),
        not_after: now + Duration::days(until_days),
        client_auth: false,
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::fsx::write_private(path, data)
}

impl DemoFleet {
    /// Start the demo fleet on 127.0.0.1 (free ports), with certificates relative to `now`.
    pub async fn start() -> Result<DemoFleet, DemoError> {
        crate::sources::tls::install_crypto_provider();
        let now = OffsetDateTime::now_utc();
        let d = Duration::days;
        let root = DemoCa::root("certdeck demo root CA", now, d(-400), d(3000))?;
        let short_int = root.intermediate(
            "certdeck demo intermediate (short-lived)",
            now,
            d(-300),
            d(2),
        )?;

        let mut tmp_builder = tempfile::Builder::new();
        tmp_builder.prefix("certdeck-demo-");
        let tmp = tmp_builder.tempdir()?;
        let files_dir = tmp.path().join("certs");
        std::fs::create_dir_all(&files_dir)?;

        let issuer =
            Arc::new(root.intermediate("certdeck demo intermediate CA", now, d(-300), d(1500))?);
        let mut fleet = DemoFleet {
            root,
            issuer: issuer.clone(),
            endpoints: Vec::new(),
            files_dir,
            _tmp: tmp,
            tasks: tokio::task::JoinSet::new(),
        };
        let int = issuer.as_ref();
        let int_chain = vec![int.der.clone()];
        let cases: Vec<(&'static str, Leaf, Vec<CertificateDer<'static>>, bool)> = vec![
            (
                "expired 10 days ago",
                int.leaf(&spec("billing.demo.test", now, -100, -10))?,
                int_chain.clone(),
                false,
            ),
            (
                "expires in 3 days",
                int.leaf(&spec("api.demo.test", now, -87, 3))?,
                int_chain.clone(),
                false,
            ),
            (
                "expires in 20 days",
                int.leaf(&spec("grafana.demo.test", now, -70, 20))?,
                int_chain.clone(),
                false,
            ),
            (
                "healthy for months",
                int.leaf(&spec("www.demo.test", now, -30, 200))?,
                int_chain.clone(),
                false,
            ),
            (
                "self-signed",
                Leaf::self_signed(&spec("legacy.demo.test", now, -10, 120))?,
                Vec::new(),
                false,
            ),
            (
                "wrong host name",
                int.leaf(&LeafSpec {
                    dns: vec!["shop.example.invalid".into()],
                    ..spec("shop.example.invalid", now, -5, 150)
                })?,
                int_chain.clone(),
                false,
            ),
            (
                "intermediate expires before the leaf",
                short_int.leaf(&spec("payments.demo.test", now, -20, 300))?,
                vec![short_int.der.clone()],
                false,
            ),
            (
                "requires a client certificate (mTLS)",
                int.leaf(&spec("mesh.demo.test", now, -10, 60))?,
                int_chain.clone(),
                true,
            ),
            (
                "not yet valid",
                int.leaf(&spec("future.demo.test", now, 10, 100))?,
                int_chain.clone(),
                false,
            ),
        ];
        for (story, leaf, chain, mtls) in cases {
            let resolver = Arc::new(SwapResolver::new(leaf.certified_key(&chain)?));
            let port = fleet.serve(resolver.clone(), mtls).await?;
            let target = Target {
                host: "localhost".into(),
                port,
                sni: None,
                starttls: None,
            };
            fleet.endpoints.push(DemoEndpoint {
                target,
                story,
                resolver,
            });
        }
        fleet.write_files(int, now)?;
        Ok(fleet)
    }

    async fn serve(&mut self, resolver: Arc<SwapResolver>, mtls: bool) -> Result<u16, DemoError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| DemoError::Tls(e.to_string()))?;
        let config = if mtls {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(self.root.der.clone())
                .map_err(|e| DemoError::Tls(e.to_string()))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| DemoError::Tls(e.to_string()))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(resolver)
        } else {
            builder.with_no_client_auth().with_cert_resolver(resolver)
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        self.tasks.spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(sock));
                    if let Ok(Ok(mut tls)) = handshake.await {
                        let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\nconnection: close\r\n\r\ncertdeck demo\n").await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        Ok(port)
    }

    fn write_files(&self, int: &DemoCa, now: OffsetDateTime) -> Result<(), DemoError> {
        let dir = &self.files_dir;
        let d = Duration::days;
        // A CA bundle with text between the blocks, as `openssl` and distributions write them.
        let bundle = format!(
            "# certdeck demo CA bundle\n{}\nsubject=intermediate\n{}",
            self.root.pem, int.pem
        );
        std::fs::write(dir.join("ca-bundle.pem"), bundle.replace('\n', "\r\n"))?;
        // A server certificate stored next to its key (the key is skipped, never printed).
        let web = int.leaf(&spec("intranet.demo.test", now, -80, 5))?;
        std::fs::write(dir.join("intranet.crt"), &web.pem)?;
        write_private(
            &dir.join("intranet.key"),
            web.key.serialize_pem().as_bytes(),
        )?;
        write_private(
            &dir.join("intranet-combined.pem"),
            format!("{}{}", web.pem, web.key.serialize_pem()).as_bytes(),
        )?;
        // DER, and a SPIFFE workload certificate.
        let workload = int.leaf(&LeafSpec {
            common_name: "web workload".into(),
            dns: vec![],
            uris: vec!["spiffe://demo.test/ns/shop/sa/web".into()],
            client_auth: true,
            ..spec("web", now, -1, 1)
        })?;
        std::fs::write(dir.join("workload-svid.der"), workload.der.as_ref())?;
        let vpn = int.leaf(&LeafSpec {
            client_auth: true,
            ..spec("vpn-client.demo.test", now, -400, -35)
        })?;
        std::fs::create_dir_all(dir.join("clients"))?;
        std::fs::write(dir.join("clients/vpn-client.pem"), &vpn.pem)?;
        // Its key left readable by everyone, as happens with hand-copied client bundles: the
        // key audit's critical case (a throwaway demo key, mode set on purpose).
        let vpn_key = dir.join("clients/vpn-client.key");
        std::fs::write(&vpn_key, vpn.key.serialize_pem())?;
        std::fs::set_permissions(&vpn_key, std::fs::Permissions::from_mode(0o644))?;
        // A truncated PEM block: an error row, not a crash.
        let mut broken = self.root.pem.clone();
        broken.truncate(broken.len() / 2);
        std::fs::write(dir.join("broken.pem"), broken)?;
        let _ = d;
        Ok(())
    }

    /// The endpoints of the fleet.
    pub fn targets(&self) -> Vec<Target> {
        self.endpoints.iter().map(|e| e.target.clone()).collect()
    }

    /// The sources that read this fleet: its endpoints and its folder of files. The demo
    /// refreshes every 30 s, so a change shows up on stage.
    pub fn sources(&self, mut probe: ProbeSettings) -> Vec<Arc<dyn Source>> {
        use crate::sources::file::source::FileSource;
        use crate::sources::tls::source::TlsSource;
        use crate::sources::Schedule;
        probe.extra_roots.push(self.trust_anchor());
        let every = Schedule::every(
            std::time::Duration::from_secs(30),
            std::time::Duration::from_secs(60),
        );
        vec![
            Arc::new(TlsSource::new(self.targets(), Vec::new(), probe).named("", every)),
            Arc::new(FileSource::new(vec![self.files_dir.display().to_string()]).named("", every)),
        ]
    }

    /// The demo root as an extra trust anchor (DER).
    pub fn trust_anchor(&self) -> Vec<u8> {
        self.root.der.to_vec()
    }
}

/// Renewal on stage: the demo CA re-issues a demo endpoint's certificate, the running server
/// starts serving it without a restart, and a re-probe confirms it.
pub struct DemoRenewer {
    endpoints: Vec<(String, Arc<SwapResolver>)>,
    issuer: Arc<DemoCa>,
    root_der: Vec<u8>,
    /// Lifetime of a re-issued certificate.
    pub lifetime: Duration,
}

impl DemoRenewer {
    pub fn new(fleet: &DemoFleet) -> DemoRenewer {
        DemoRenewer {
            endpoints: fleet
                .endpoints
                .iter()
                .map(|e| (e.target.to_string(), e.resolver.clone()))
                .collect(),
            issuer: fleet.issuer.clone(),
            root_der: fleet.trust_anchor(),
            lifetime: Duration::days(90),
        }
    }
}

impl crate::actions::Backend for DemoRenewer {
    fn offers(&self, record: &crate::model::Record) -> Vec<crate::actions::Offer> {
        if self
            .endpoints
            .iter()
            .any(|(loc, _)| *loc == record.location)
        {
            vec![crate::actions::Offer {
                verb: "renew".to_owned(),
                title: "Re-issue (demo CA)".to_owned(),
                builtin: true,
            }]
        } else {
            Vec::new()
        }
    }

    fn plan<'a>(
        &'a self,
        _verb: &'a str,
        record: &'a crate::model::Record,
        _opts: &'a crate::actions::ActionOptions,
    ) -> crate::sources::BoxFut<'a, Result<crate::actions::Prepared, crate::actions::ActionError>>
    {
        use crate::actions::{ActionError, Outcome, Plan, Prepared, Step};
        Box::pin(async move {
            let title = "Re-issue (demo CA)";
            let Some((_, resolver)) = self
                .endpoints
                .iter()
                .find(|(loc, _)| *loc == record.location)
            else {
                return Err(ActionError::not_applicable("not a demo endpoint"));
            };
            let Some(cert) = record.cert.clone() else {
                return Err(ActionError::not_applicable(
                    "the endpoint could not be read; nothing to re-issue",
                ));
            };
            let mut names: Vec<String> = cert
                .sans
                .iter()
                .filter(|s| matches!(s, crate::model::San::Dns(_)))
                .map(|s| s.value().to_owned())
                .collect();
            if names.is_empty() {
                names.push("localhost".into());
            }
            let now = OffsetDateTime::now_utc();
            let spec = LeafSpec {
                common_name: cert.common_name.clone().unwrap_or_else(|| names[0].clone()),
                dns: names.clone(),
                uris: Vec::new(),
                not_before: now - Duration::minutes(5),
                not_after: now + self.lifetime,
                client_auth: false,
            };
            let mut plan =
                Plan::for_record("demo re-issue", "renew", title, record, &spec.common_name);
            plan.new_not_after = Some(spec.not_after.unix_timestamp());
            plan.issuer = Some(self.issuer.name.clone());
            plan.names = names.clone();
            plan.key_type = Some("ECDSA P-256".to_owned());
            plan.steps = vec![
                "issue with the demo CA".to_owned(),
                "install in the running server (no restart)".to_owned(),
                "re-probe and compare SHA-256".to_owned(),
            ];
            let (resolver, issuer, root) =
                (resolver.clone(), self.issuer.clone(), self.root_der.clone());
            let target = record.location.clone();
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move {
                        rep.step(
                            Step::Issue,
                            format!("issuing a new certificate for {}", names.join(", ")),
                        )
                        .await;
                        let leaf = issuer
                            .leaf(&spec)
                            .map_err(|e| ActionError::at(Step::Issue, e.to_string()))?;
                        let ck = leaf
                            .certified_key(std::slice::from_ref(&issuer.der))
                            .map_err(|e| ActionError::at(Step::Issue, e.to_string()))?;
                        let new_sha = crate::model::cert::sha256_hex(leaf.der.as_ref());
                        rep.step(
                            Step::Install,
                            "the demo server serves the new certificate from the next handshake",
                        )
                        .await;
                        resolver.swap(ck);
                        rep.step(Step::Verify, format!("re-probing {target}")).await;
                        let t = Target::parse(&target, None)
                            .map_err(|e| ActionError::at(Step::Verify, e.to_string()))?;
                        let prober = crate::sources::tls::TlsProber::new(
                            &[root.into()],
                            std::time::Duration::from_secs(5),
                        )
                        .map_err(|e| ActionError::at(Step::Verify, e.to_string()))?;
                        let seen = prober.probe(&t).await;
                        let served = seen.cert.as_ref().map(|c| c.sha256.clone());
                        if served.as_deref() != Some(new_sha.as_str()) {
                            return Err(ActionError::at(
                                Step::Verify,
                                format!(
                                    "the endpoint serves {} instead of the new certificate {new_sha}",
                                    served.unwrap_or_else(|| seen.error.unwrap_or_else(|| "nothing".into()))
                                ),
                            ));
                        }
                        Ok(Outcome {
                            after_sha256: Some(new_sha.clone()),
                            new_not_after: Some(spec.not_after.unix_timestamp()),
                            message: format!(
                                "now serving sha256 {}…, expires {}",
                                &new_sha[..16],
                                crate::clock::rfc3339(spec.not_after.unix_timestamp())
                            ),
                            ..Outcome::default()
                        })
                    })
                }),
            })
        })
    }
}
