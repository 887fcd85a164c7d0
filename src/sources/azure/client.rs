//! The HTTP transport (reqwest on rustls + ring, the probe settings' trust anchors) and the
//! credential chain, on the vendor's SDK.
//!
//! The chain is DefaultAzureCredential's order, built from the SDK's own credentials: a
//! client-secret service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
//! `AZURE_CLIENT_SECRET`), workload identity (`AZURE_FEDERATED_TOKEN_FILE` with
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`), managed identity (App Service's
//! `IDENTITY_ENDPOINT`, else the instance metadata service), then the Azure CLI's login. The
//! authority host is the SDK's: `AZURE_AUTHORITY_HOST`, else the public cloud. The first
//! credential that gives a token is kept; when none does, the error names each one tried and
//! why it was not usable. No secret or token is ever put in an error or a log.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, ExponentialRetryOptions, RetryOptions, Transport};
use azure_identity::{
    AzureCliCredential, AzureCliCredentialOptions, ClientAssertionCredentialOptions,
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};

use super::error::AzError;
use super::settings::{AzureSettings, CredentialChoice, API_VERSION};
use crate::sources::ProbeSettings;

/// An HTTPS client trusting the web PKI roots plus the probe settings' CA files and extra
/// roots (a test CA, a private CA in front of a private endpoint).
pub fn http_client(
    probe: &ProbeSettings,
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, AzError> {
    crate::sources::tls::install_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let extra = crate::sources::tls::load_ca_files(&probe.ca_files)
        .map_err(|e| AzError::Config(format!("CA files: {e}")))?;
    for der in extra
        .into_iter()
        .chain(probe.extra_roots.iter().map(|d| d.clone().into()))
    {
        roots
            .add(der)
            .map_err(|e| AzError::Config(format!("a CA certificate is not usable: {e}")))?;
    }
    let mut tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|e| AzError::Config(format!("HTTP client: {e}")))
}

fn client_options(http: &reqwest::Client, max_retries: u32) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http.clone()))),
        retry: RetryOptions::exponential(ExponentialRetryOptions {
            max_retries,
            ..ExponentialRetryOptions::default()
        }),
        ..ClientOptions::default()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// A credential of the chain, with the name errors and the audit log use.
type Link = (String, Arc<dyn TokenCredential>);

/// The credential chain (see the module doc).
pub struct Chain {
    links: Vec<Link>,
    /// Credentials that could not even be built, and why ("AZURE_CLIENT_SECRET is not set").
    unavailable: Vec<String>,
    chosen: std::sync::Mutex<Option<usize>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field(
                "links",
                &self.links.iter().map(|l| &l.0).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Build the chain for `settings`; credentials are not tried until the first request.
    pub fn new(
        settings: &AzureSettings,
        http: &reqwest::Client,
        probe_http: &reqwest::Client,
    ) -> Chain {
        let mut links: Vec<Link> = Vec::new();
        let mut unavailable = Vec::new();
        let want = |c: CredentialChoice| {
            settings.credential == CredentialChoice::Auto || settings.credential == c
        };
        let opts = || client_options(http, settings.max_retries);
        if want(CredentialChoice::ClientSecret) {
            let vars = ["AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"];
            let missing: Vec<&str> = vars.iter().copied().filter(|v| env(v).is_none()).collect();
            if missing.is_empty() {
                let (t, c, s) = (
                    env(vars[0]).unwrap_or_default(),
                    env(vars[1]).unwrap_or_default(),
                    env(vars[2]).unwrap_or_default(),
                );
                match ClientSecretCredential::new(
                    &t,
                    c.clone(),
                    Secret::new(s),
                    Some(ClientSecretCredentialOptions {
                        client_options: opts(),
                    }),
                ) {
                    Ok(cred) => {
                        links.push((format!("service principal {c} (client secret)"), cred))
                    }
                    Err(e) => unavailable.push(format!(
                        "client secret: {}",
                        super::clean(&e.to_string(), 200)
                    )),
                }
            } else {
                unavailable.push(format!("client secret: {} not set", missing.join(", ")));
            }
        }
        if want(CredentialChoice::WorkloadIdentity) {
            if let Some(file) = env("AZURE_FEDERATED_TOKEN_FILE") {
                match WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: opts(),
                    },
                    ..WorkloadIdentityCredentialOptions::default()
                })) {
                    Ok(cred) => links.push((
                        format!(
                            "workload identity {} (token file {file})",
                            env("AZURE_CLIENT_ID").unwrap_or_default()
                        ),
                        cred,
                    )),
                    Err(e) => unavailable.push(format!(
                        "workload identity: {}",
                        super::clean(&e.to_string(), 200)
                    )),
                }
            } else {
                unavailable
                    .push("workload identity: AZURE_FEDERATED_TOKEN_FILE not set".to_owned());
            }
        }
        if want(CredentialChoice::ManagedIdentity) {
            let user_assigned_id = settings
                .managed_identity_client_id
                .clone()
                .map(UserAssignedId::ClientId);
            // The metadata service is probed with a short connect timeout, as the SDKs'
            // default chains do, so a machine outside Azure fails over quickly.
            match ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                user_assigned_id,
                client_options: client_options(probe_http, 0),
            })) {
                Ok(cred) => links.push(("managed identity".to_owned(), cred)),
                Err(e) => unavailable.push(format!(
                    "managed identity: {}",
                    super::clean(&e.to_string(), 200)
                )),
            }
        }
        if want(CredentialChoice::AzureCli) {
            if on_path("az") {
                match AzureCliCredential::new(Some(AzureCliCredentialOptions {
                    tenant_id: env("AZURE_TENANT_ID"),
                    ..AzureCliCredentialOptions::default()
                })) {
                    Ok(cred) => links.push(("Azure CLI login".to_owned(), cred)),
                    Err(e) => unavailable
                        .push(format!("Azure CLI: {}", super::clean(&e.to_string(), 200))),
                }
            } else {
                unavailable.push("Azure CLI: `az` is not installed".to_owned());
            }
        }
        Chain {
            links,
            unavailable,
            chosen: std::sync::Mutex::new(None),
        }
    }

    /// The credential that gave the last token, for the audit log.
    pub fn identity(&self) -> Option<String> {
        let i = (*self.chosen.lock().ok()?)?;
        self.links.get(i).map(|l| l.0.clone())
    }
}

/// The useful words of an error and its sources, without the SDK's troubleshooting links.
fn reason(e: &azure_core::Error) -> String {
    use std::error::Error as _;
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let m = s.to_string();
        if !parts.iter().any(|p| p.contains(&m)) {
            parts.push(m);
        }
        cur = s.source();
    }
    let text = parts.join(": ");
    let text = text
        .split("To troubleshoot")
        .next()
        .unwrap_or_default()
        .to_owned();
    super::clean(&text, 240)
}

#[async_trait::async_trait]
impl TokenCredential for Chain {
    async fn get_token(
        &self,
        scopes: &[&str],
        options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let chosen = self.chosen.lock().ok().and_then(|g| *g);
        if let Some(i) = chosen {
            if let Some((_, c)) = self.links.get(i) {
                return c.get_token(scopes, options).await;
            }
        }
        let mut why = Vec::new();
        for (i, (name, c)) in self.links.iter().enumerate() {
            match c.get_token(scopes, options.clone()).await {
                Ok(t) => {
                    if let Ok(mut g) = self.chosen.lock() {
                        *g = Some(i);
                    }
                    tracing::debug!("azure: token from {name}");
                    return Ok(t);
                }
                Err(e) => why.push(format!("{name}: {}", reason(&e))),
            }
        }
        why.extend(self.unavailable.iter().cloned());
        Err(azure_core::Error::with_message(
            ErrorKind::Credential,
            format!("tried {}", why.join("; ")),
        ))
    }
}

/// A vault's SDK client and its credential chain.
pub struct Vault {
    pub client: CertificateClient,
    pub chain: Arc<Chain>,
    pub settings: AzureSettings,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("vault", &self.settings.vault_url)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub fn open(settings: &AzureSettings, probe: &ProbeSettings) -> Result<Vault, AzError> {
        let http = http_client(probe, settings.timeout, settings.timeout)?;
        let probe_http = http_client(
            probe,
            settings.timeout,
            settings.timeout.min(Duration::from_secs(1)),
        )?;
        let chain = Arc::new(Chain::new(settings, &http, &probe_http));
        let client = CertificateClient::new(
            &settings.vault_url,
            chain.clone(),
            Some(CertificateClientOptions {
                api_version: API_VERSION.to_owned(),
                client_options: client_options(&http, settings.max_retries),
                verify_challenge_resource: Some(settings.verify_challenge_resource),
            }),
        )
        .map_err(|e| AzError::Config(format!("{}: {}", settings.vault_url, reason(&e))))?;
        Ok(Vault {
            client,
            chain,
            settings: settings.clone(),
        })
    }
}
