//! The connection to one Vault / OpenBao server: a `vaultrs` client for the calls it covers,
//! and the same reqwest client for the few it does not (paged `LIST`, `certs/detailed`, the
//! CRL and OCSP endpoints). Every call is time-bounded and its failure mapped to a
//! [`VaultError`] that names the call, and for a 403 the capability and policy path.

use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;
use vaultrs::client::{Client as _, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use super::auth::{AuthMethod, Secret};
use super::{VaultError, VaultSettings};

/// Largest response body read by a raw call (a LIST page of 1,000 detailed entries is ~300 KB).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One API call, for messages and 403s: `LIST pki/certs` needs `list` on `pki/certs`.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: &'static str,
    /// The API path after `/v1/` (inside the namespace).
    pub path: String,
    pub capability: &'static str,
    /// The path a policy grants the capability on (`pki/cert/*` for one serial's read).
    pub policy_path: String,
}

impl Call {
    pub fn new(method: &'static str, path: impl Into<String>, capability: &'static str) -> Call {
        let path = path.into();
        Call {
            method,
            policy_path: path.clone(),
            path,
            capability,
        }
    }
    /// The policy path differs from the call's path (`pki/cert/*`).
    pub fn policy(mut self, p: impl Into<String>) -> Call {
        self.policy_path = p.into();
        self
    }
    fn shown(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

/// A logged-in client. Debug shows the address only.
pub struct VaultClient {
    inner: vaultrs::client::VaultClient,
    http: reqwest::Client,
    token: Secret,
    pub address: String,
    pub namespace: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// What `auth/token/lookup-self` says about the token.
#[derive(Debug, Clone, Default)]
pub struct TokenInfo {
    pub display_name: String,
    pub policies: Vec<String>,
    /// Seconds left (0: never expires).
    pub ttl: u64,
}

fn ca_files(s: &VaultSettings) -> Result<Vec<String>, VaultError> {
    let mut out = Vec::new();
    if let Some(f) = &s.tls.ca_cert {
        if !f.is_file() {
            return Err(VaultError::Config(format!(
                "vault CA certificate {} does not exist",
                f.display()
            )));
        }
        out.push(f.display().to_string());
    }
    if let Some(d) = &s.tls.ca_path {
        let rd = std::fs::read_dir(d).map_err(|e| {
            VaultError::Config(format!("cannot read vault CA path {}: {e}", d.display()))
        })?;
        for e in rd.flatten() {
            let p = e.path();
            if p.is_file() {
                out.push(p.display().to_string());
            }
        }
    }
    Ok(out)
}

fn build(s: &VaultSettings, token: &Secret) -> Result<vaultrs::client::VaultClient, VaultError> {
    crate::sources::tls::install_crypto_provider();
    let mut b = VaultClientSettingsBuilder::default();
    // The address was validated by `normalize_address`, so this setter cannot panic.
    b.address(&s.address)
        .token(token.expose())
        .timeout(Some(s.timeout))
        .verify(!s.tls.skip_verify)
        .ca_certs(ca_files(s)?)
        .identity(None);
    if let Some(ns) = &s.namespace {
        b.set_namespace(ns.clone());
    }
    let settings = b
        .build()
        .map_err(|e| VaultError::Config(format!("vault client settings: {e}")))?;
    vaultrs::client::VaultClient::new(settings).map_err(|e| VaultError::Config(describe(&e)))
}

/// The error chain of a vaultrs error, without quoting request bodies.
fn describe(e: &ClientError) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        let m = x.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = x.source();
    }
    super::read::clean(&s)
}

fn reqwest_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        let m = x.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = x.source();
    }
    super::read::clean(&s)
}

/// The `errors` of a Vault error body, joined and cleaned.
fn body_errors(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        errors: Vec<String>,
    }
    let msg = match serde_json::from_slice::<E>(body) {
        Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    };
    let mut m = super::read::clean(&msg);
    if m.len() > 300 {
        let mut cut = 300;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
        m.push('…');
    }
    m
}

impl VaultClient {
    /// Log in as the settings say (reading token files now), and check the token with
    /// `auth/token/lookup-self`.
    pub async fn connect(s: &VaultSettings) -> Result<(VaultClient, TokenInfo), VaultError> {
        let token = match &s.auth {
            AuthMethod::Missing { looked_at } => {
                return Err(VaultError::NoToken {
                    looked_at: looked_at.clone(),
                })
            }
            AuthMethod::Token(src) => src.read()?,
            AuthMethod::AppRole { .. } | AuthMethod::Kubernetes { .. } => Secret::new(""),
        };
        let mut c = VaultClient {
            inner: build(s, &token)?,
            http: reqwest::Client::new(),
            token,
            address: s.address.clone(),
            namespace: s.namespace.clone(),
            timeout: s.timeout,
        };
        c.http = c.inner.http.http.clone();
        match &s.auth {
            AuthMethod::AppRole {
                mount,
                role_id,
                secret_id,
            } => {
                let (r, sid) = (role_id.read()?, secret_id.read()?);
                let call = Call::new("POST", format!("auth/{mount}/login"), "update");
                let info = c
                    .login(
                        &call,
                        vaultrs::auth::approle::login(&c.inner, mount, r.expose(), sid.expose()),
                    )
                    .await?;
                c.set_token(Secret::new(info.client_token));
            }
            AuthMethod::Kubernetes { mount, role, jwt } => {
                let jwt = jwt.read()?;
                let call = Call::new("POST", format!("auth/{mount}/login"), "update");
                let info = c
                    .login(
                        &call,
                        vaultrs::auth::kubernetes::login(&c.inner, mount, role, jwt.expose()),
                    )
                    .await?;
                c.set_token(Secret::new(info.client_token));
            }
            AuthMethod::Token(_) | AuthMethod::Missing { .. } => {}
        }
        let call = Call::new("GET", "auth/token/lookup-self", "read");
        let how = s.auth.describe();
        let info = match c.run(&call, vaultrs::token::lookup_self(&c.inner)).await {
            Ok(i) => i,
            Err(VaultError::Forbidden { .. }) => {
                return Err(VaultError::Unauthorized {
                    address: c.address.clone(),
                    what: format!(
                        "the server refused the token from {how} (invalid, expired or revoked; permission denied on auth/token/lookup-self)"
                    ),
                })
            }
            Err(e) => return Err(e),
        };
        Ok((
            c,
            TokenInfo {
                display_name: info.display_name,
                policies: info.policies,
                ttl: info.ttl,
            },
        ))
    }

    fn set_token(&mut self, t: Secret) {
        self.inner.set_token(t.expose());
        self.token = t;
    }

    async fn login<F>(&self, call: &Call, fut: F) -> Result<vaultrs::api::AuthInfo, VaultError>
    where
        F: Future<Output = Result<vaultrs::api::AuthInfo, ClientError>>,
    {
        match self.run(call, fut).await {
            Err(VaultError::Forbidden { .. }) | Err(VaultError::Api { status: 400, .. }) => {
                Err(VaultError::Unauthorized {
                    address: self.address.clone(),
                    what: format!(
                        "login refused by {} (check the role and its credentials)",
                        call.path
                    ),
                })
            }
            other => other,
        }
    }

    /// The vaultrs client, for calls made through [`VaultClient::run`].
    pub fn inner(&self) -> &vaultrs::client::VaultClient {
        &self.inner
    }

    /// Run one vaultrs call with the time limit, mapping its error.
    pub async fn run<T, F>(&self, call: &Call, fut: F) -> Result<T, VaultError>
    where
        F: Future<Output = Result<T, ClientError>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(self.timeout_error(call)),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_client_error(call, e)),
        }
    }

    fn timeout_error(&self, call: &Call) -> VaultError {
        VaultError::Timeout {
            address: self.address.clone(),
            call: call.shown(),
            secs: self.timeout.as_secs().max(1),
        }
    }

    /// The error for an HTTP status and body.
    pub fn status_error(&self, call: &Call, status: u16, message: String) -> VaultError {
        if status == 403 {
            return VaultError::Forbidden {
                address: self.address.clone(),
                capability: call.capability.to_owned(),
                path: self.ns_path(&call.policy_path),
                hint: String::new(),
            };
        }
        VaultError::Api {
            address: self.address.clone(),
            call: call.shown(),
            status,
            message,
        }
    }

    /// A policy path inside the namespace, as a policy in the root namespace would name it.
    fn ns_path(&self, p: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{p}"),
            None => p.to_owned(),
        }
    }

    fn map_client_error(&self, call: &Call, e: ClientError) -> VaultError {
        match e {
            ClientError::APIError { code, errors } => {
                let msg = super::read::clean(&errors.join("; "));
                self.status_error(call, code, msg)
            }
            ClientError::RestClientError { source } => match source {
                rustify::errors::ClientError::ServerResponseError { code, content } => {
                    let body = content.unwrap_or_default();
                    self.status_error(call, code, body_errors(body.as_bytes()))
                }
                rustify::errors::ClientError::RequestError { source, .. } => {
                    let why = match source.downcast_ref::<reqwest::Error>() {
                        Some(r) if r.is_timeout() => return self.timeout_error(call),
                        Some(r) => reqwest_chain(r),
                        None => super::read::clean(&format!("{source:#}")),
                    };
                    VaultError::Unreachable {
                        address: self.address.clone(),
                        why,
                    }
                }
                other => VaultError::Protocol {
                    address: self.address.clone(),
                    call: call.shown(),
                    why: super::read::clean(&format!("{other}: {}", chain_of(&other))),
                },
            },
            other => VaultError::Protocol {
                address: self.address.clone(),
                call: call.shown(),
                why: describe(&other),
            },
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path)
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request_query(method, path, &[])
    }

    fn request_query(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        let mut url = self.url(path);
        if let Ok(mut u) = reqwest::Url::parse(&url) {
            if !query.is_empty() {
                let mut q = u.query_pairs_mut();
                for (k, v) in query {
                    q.append_pair(k, v);
                }
            }
            url = u.to_string();
        }
        let mut r = self
            .http
            .request(method, url)
            .header("X-Vault-Request", "true")
            .timeout(self.timeout);
        if !self.token.expose().is_empty() {
            r = r.header("X-Vault-Token", self.token.expose());
        }
        if let Some(ns) = &self.namespace {
            r = r.header("X-Vault-Namespace", ns);
        }
        r
    }

    /// Send a raw request and read its body (bounded), within the time limit.
    pub async fn raw(
        &self,
        call: &Call,
        rb: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), VaultError> {
        let fut = async {
            let resp = rb.send().await.map_err(|e| {
                if e.is_timeout() {
                    self.timeout_error(call)
                } else {
                    VaultError::Unreachable {
                        address: self.address.clone(),
                        why: reqwest_chain(&e),
                    }
                }
            })?;
            let status = resp.status().as_u16();
            let body = read_limited(resp, MAX_BODY)
                .await
                .map_err(|why| VaultError::Protocol {
                    address: self.address.clone(),
                    call: call.shown(),
                    why,
                })?;
            Ok((status, body))
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(self.timeout_error(call)),
            Ok(r) => r,
        }
    }

    /// A raw JSON call returning the response's `data`; non-2xx statuses are errors.
    pub async fn json<T: DeserializeOwned>(
        &self,
        call: &Call,
        query: &[(&str, String)],
    ) -> Result<T, VaultError> {
        let (method, list) = match call.method {
            "LIST" => (reqwest::Method::GET, true),
            "POST" => (reqwest::Method::POST, false),
            _ => (reqwest::Method::GET, false),
        };
        let mut q: Vec<(&str, String)> = query.to_vec();
        if list {
            q.push(("list", "true".to_owned()));
        }
        let rb = self.request_query(method, &call.path, &q);
        let (status, body) = self.raw(call, rb).await?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(call, status, body_errors(&body)));
        }
        #[derive(serde::Deserialize)]
        struct Wrapped<T> {
            data: T,
        }
        serde_json::from_slice::<Wrapped<T>>(&body)
            .map(|w| w.data)
            .map_err(|e| VaultError::Protocol {
                address: self.address.clone(),
                call: call.shown(),
                why: format!("unexpected response: {e}"),
            })
    }

    /// An unauthenticated GET of a published endpoint (CRL), returning the body of a 200.
    pub async fn get_bytes(&self, call: &Call) -> Result<Vec<u8>, VaultError> {
        let rb = self.request(reqwest::Method::GET, &call.path);
        let (status, body) = self.raw(call, rb).await?;
        if status != 200 {
            return Err(self.status_error(call, status, body_errors(&body)));
        }
        Ok(body)
    }

    /// The reqwest client (same TLS settings), for the revocation module.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The full URL of an API path.
    pub fn api_url(&self, path: &str) -> String {
        self.url(path)
    }
}

fn chain_of(e: &dyn std::error::Error) -> String {
    let mut s = String::new();
    let mut src = e.source();
    while let Some(x) = src {
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// Read a response body up to `max` bytes.
pub async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("response larger than {max} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| reqwest_chain(&e))? {
        if out.len() + chunk.len() > max {
            return Err(format!("response larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
