//! The Certificate Manager v1 REST reader: credentials from google-cloud-auth (ADC, metadata
//! server, workload identity federation), `certificates.list` paged with
//! `pageToken`/`nextPageToken`, `locations.list`, `certificates.get` and `certificates.patch`,
//! each request with its own timeout, 429 and 5xx retried after `Retry-After` or a backoff.
//!
//! Errors are typed (`GcpError`) and name what is missing: a 403 says which permission on
//! which resource (from the `google.rpc.ErrorInfo` detail), missing credentials say where ADC
//! looked. Text from the API is cleaned; a token never reaches a message.

use std::time::Duration;

use google_cloud_auth::credentials::{Builder, CacheableResource, Credentials};
use serde::Deserialize;

use super::facts::ApiCertificate;
use super::settings::GcpSettings;
use crate::sources::ProblemKind;

const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A Google Cloud failure, for a whole (project, location) or one certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GcpError {
    /// Application Default Credentials found nothing usable.
    #[error("no Google credentials: {0}")]
    NoCredentials(String),
    /// Credentials rejected (401) or a token could not be obtained.
    #[error("{call}: credentials rejected{}", suffix(.message))]
    Unauthorized { call: String, message: String },
    /// 403: the permission and the resource it is missing on.
    #[error("{permission} denied on {resource}{}", suffix(.message))]
    Forbidden {
        permission: String,
        resource: String,
        message: String,
    },
    #[error("{call}: throttled (HTTP 429), still throttled after {attempts} attempts")]
    Throttled { call: String, attempts: u32 },
    #[error("{call}: timed out after {after}")]
    Timeout { call: String, after: String },
    #[error("{call}: cannot reach {endpoint}: {detail}")]
    Unreachable {
        call: String,
        endpoint: String,
        detail: String,
    },
    #[error("{call}: HTTP {status} {code}{}", suffix(.message))]
    Service {
        call: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("{call}: the response could not be read: {detail}")]
    BadResponse { call: String, detail: String },
}

fn suffix(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

impl GcpError {
    pub fn class(&self) -> ProblemKind {
        match self {
            GcpError::NoCredentials(_) | GcpError::Unauthorized { .. } => ProblemKind::Unauthorized,
            GcpError::Forbidden { .. } => ProblemKind::Forbidden,
            GcpError::Throttled { .. } => ProblemKind::Throttled,
            GcpError::Timeout { .. } => ProblemKind::Timeout,
            GcpError::Unreachable { .. } => ProblemKind::Unreachable,
            GcpError::Service { .. } | GcpError::BadResponse { .. } => ProblemKind::Other,
        }
    }
}

/// The error body of Google APIs (`google.rpc.Status` as JSON).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    error: ErrorStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorStatus {
    code: u16,
    message: String,
    status: String,
    details: Vec<serde_json::Value>,
}

/// Classify an HTTP error answer. `permission`: what the call needs, when the body does not say.
pub fn classify(
    call: &str,
    permission: &str,
    resource: &str,
    status: u16,
    body: &[u8],
) -> GcpError {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let e = parsed.error;
    let message = super::clean(&e.message, 300);
    let info = e.details.iter().find(|d| {
        d.get("@type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.ends_with("google.rpc.ErrorInfo"))
    });
    let meta = |k: &str| {
        info.and_then(|i| i.get("metadata"))
            .and_then(|m| m.get(k))
            .and_then(|v| v.as_str())
            .map(|s| super::clean(s, 200))
    };
    match status {
        401 => GcpError::Unauthorized {
            call: call.to_owned(),
            message,
        },
        403 => GcpError::Forbidden {
            permission: meta("permission")
                .or_else(|| permission_from(&e.message))
                .unwrap_or_else(|| permission.to_owned()),
            resource: meta("resource").unwrap_or_else(|| resource.to_owned()),
            message: if e.status.is_empty() {
                message
            } else {
                format!("{}: {message}", super::clean(&e.status, 40))
            },
        },
        429 => GcpError::Throttled {
            call: call.to_owned(),
            attempts: 0,
        },
        _ => GcpError::Service {
            call: call.to_owned(),
            status,
            code: if e.status.is_empty() {
                if e.code == 0 && body.first() == Some(&b'<') {
                    "error (not JSON)".to_owned()
                } else {
                    "error".to_owned()
                }
            } else {
                super::clean(&e.status, 40)
            },
            message,
        },
    }
}

/// `Permission 'certificatemanager.certs.list' denied on ...` -> the permission.
fn permission_from(message: &str) -> Option<String> {
    let i = message.find("Permission '")? + "Permission '".len();
    let j = message[i..].find('\'')? + i;
    Some(super::clean(&message[i..j], 100))
}

/// One project's client: credentials, HTTP client, endpoint, settings.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    creds: Credentials,
    pub settings: GcpSettings,
}

impl std::fmt::Debug for Client {
    // The credentials hold keys and tokens: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Where ADC looked, for the message when nothing was found.
fn adc_story() -> String {
    match std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
        Some(p) => format!(
            "GOOGLE_APPLICATION_CREDENTIALS={}",
            super::clean(&p.to_string_lossy(), 200)
        ),
        None => {
            let home = std::env::var_os("CLOUDSDK_CONFIG")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| std::path::PathBuf::from(h).join(".config/gcloud"))
                });
            let file = home
                .map(|h| h.join("application_default_credentials.json"))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "gcloud's ADC file".to_owned());
            format!(
                "GOOGLE_APPLICATION_CREDENTIALS is not set, no ADC file at {file} (gcloud auth application-default login), and the metadata server"
            )
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

impl Client {
    /// Build the credentials (ADC) and the HTTP client. Nothing is requested yet.
    pub fn new(settings: &GcpSettings) -> Result<Client, GcpError> {
        let creds = Builder::default()
            .with_scopes([SCOPE])
            .build()
            .map_err(|e| {
                GcpError::NoCredentials(format!(
                    "{}: {}",
                    adc_story(),
                    super::clean(&error_chain(&e), 300)
                ))
            })?;
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .user_agent(concat!("certdeck/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GcpError::Unreachable {
                call: "client".to_owned(),
                endpoint: settings.endpoint.clone(),
                detail: super::clean(&e.to_string(), 200),
            })?;
        Ok(Client {
            http,
            creds,
            settings: settings.clone(),
        })
    }

    async fn auth_headers(&self, call: &str) -> Result<http::HeaderMap, GcpError> {
        let t = self.settings.timeout.max(Duration::from_secs(1)) * 2;
        let got = tokio::time::timeout(t, self.creds.headers(http::Extensions::new())).await;
        let story = || {
            if std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").is_some() {
                String::new()
            } else {
                format!(" ({})", adc_story())
            }
        };
        match got {
            Err(_) => Err(GcpError::NoCredentials(format!(
                "no access token within {}{}",
                humantime::format_duration(t),
                story()
            ))),
            Ok(Err(e)) => Err(GcpError::NoCredentials(format!(
                "{call}: cannot get an access token{}: {}",
                story(),
                super::clean(&error_chain(&e), 300)
            ))),
            Ok(Ok(CacheableResource::New { data, .. })) => Ok(data),
            Ok(Ok(CacheableResource::NotModified)) => Err(GcpError::NoCredentials(
                "the credentials returned no headers".to_owned(),
            )),
        }
    }

    /// One request with retries; the body on success.
    async fn send(
        &self,
        call: &str,
        permission: &str,
        resource: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, GcpError> {
        let attempts = self.settings.max_attempts;
        let mut last = None;
        for attempt in 0..attempts {
            let headers = self.auth_headers(call).await?;
            let resp = build(&self.http).headers(headers).send().await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) if e.is_timeout() => {
                    last = Some(GcpError::Timeout {
                        call: call.to_owned(),
                        after: humantime::format_duration(self.settings.timeout).to_string(),
                    });
                    // A slow endpoint: one more try at most.
                    if attempt >= 1 {
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    return Err(GcpError::Unreachable {
                        call: call.to_owned(),
                        endpoint: self.settings.endpoint.clone(),
                        detail: super::clean(&error_chain(&e), 200),
                    })
                }
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    last = Some(if e.is_timeout() {
                        GcpError::Timeout {
                            call: call.to_owned(),
                            after: humantime::format_duration(self.settings.timeout).to_string(),
                        }
                    } else {
                        GcpError::BadResponse {
                            call: call.to_owned(),
                            detail: super::clean(&e.to_string(), 200),
                        }
                    });
                    continue;
                }
            };
            if (200..300).contains(&status) {
                return Ok(body);
            }
            let err = classify(call, permission, resource, status, &body);
            let retryable = matches!(status, 429 | 500 | 502 | 503 | 504);
            if !retryable {
                return Err(err);
            }
            last = Some(match err {
                GcpError::Throttled { call, .. } => GcpError::Throttled { call, attempts },
                e => e,
            });
            if attempt + 1 < attempts {
                let wait = retry_after
                    .map(|s| Duration::from_secs(s.min(10)))
                    .unwrap_or_else(|| Duration::from_millis(250 << attempt.min(5)));
                tokio::time::sleep(wait).await;
            }
        }
        Err(last.unwrap_or_else(|| GcpError::BadResponse {
            call: call.to_owned(),
            detail: "no answer".to_owned(),
        }))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.settings.endpoint)
    }

    /// One page of `certificates.list` in a location.
    pub async fn list_certificates(
        &self,
        location: &str,
        page_token: Option<&str>,
    ) -> Result<CertificatePage, GcpError> {
        let parent = format!("projects/{}/locations/{location}", self.settings.project);
        let url = self.url(&format!("{parent}/certificates"));
        let size = self.settings.page_size.to_string();
        let body = self
            .send(
                "certificates.list",
                "certificatemanager.certs.list",
                &parent,
                |h| {
                    let mut q = vec![("pageSize", size.as_str())];
                    if let Some(t) = page_token {
                        q.push(("pageToken", t));
                    }
                    h.get(&url).query(&q)
                },
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| GcpError::BadResponse {
            call: "certificates.list".to_owned(),
            detail: super::clean(&e.to_string(), 200),
        })
    }

    /// Every location of the project (`locations.list`, paged).
    pub async fn list_locations(&self) -> Result<Vec<String>, GcpError> {
        let parent = format!("projects/{}", self.settings.project);
        let url = self.url(&format!("{parent}/locations"));
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let body = self
                .send(
                    "locations.list",
                    "certificatemanager.locations.list",
                    &parent,
                    |h| {
                        let mut q: Vec<(&str, &str)> = Vec::new();
                        if let Some(t) = &token {
                            q.push(("pageToken", t));
                        }
                        h.get(&url).query(&q)
                    },
                )
                .await?;
            let page: LocationPage =
                serde_json::from_slice(&body).map_err(|e| GcpError::BadResponse {
                    call: "locations.list".to_owned(),
                    detail: super::clean(&e.to_string(), 200),
                })?;
            for l in page.locations {
                let id = if l.location_id.is_empty() {
                    l.name.rsplit('/').next().unwrap_or_default().to_owned()
                } else {
                    l.location_id
                };
                if !id.is_empty() && !out.contains(&id) {
                    out.push(id);
                }
            }
            match page.next_page_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(out)
    }

    /// `certificates.get`.
    pub async fn get_certificate(&self, name: &str) -> Result<ApiCertificate, GcpError> {
        let url = self.url(name);
        let body = self
            .send(
                "certificates.get",
                "certificatemanager.certs.get",
                name,
                |h| h.get(&url),
            )
            .await?;
        serde_json::from_slice(&body).map_err(|e| GcpError::BadResponse {
            call: "certificates.get".to_owned(),
            detail: super::clean(&e.to_string(), 200),
        })
    }

    /// `certificates.patch` of a self-managed certificate's PEM and key; returns the
    /// long-running operation's name (the API answers with an Operation).
    pub async fn patch_self_managed(
        &self,
        name: &str,
        pem_certificate: &str,
        pem_private_key: &str,
    ) -> Result<Operation, GcpError> {
        let url = self.url(name);
        let body = serde_json::json!({
            "selfManaged": {"pemCertificate": pem_certificate, "pemPrivateKey": pem_private_key}
        });
        let out = self
            .send(
                "certificates.patch",
                "certificatemanager.certs.update",
                name,
                |h| {
                    h.patch(&url)
                        .query(&[("updateMask", "selfManaged")])
                        .json(&body)
                },
            )
            .await?;
        serde_json::from_slice(&out).map_err(|e| GcpError::BadResponse {
            call: "certificates.patch".to_owned(),
            detail: super::clean(&e.to_string(), 200),
        })
    }

    /// `operations.get`.
    pub async fn get_operation(&self, name: &str) -> Result<Operation, GcpError> {
        let url = self.url(name);
        let out = self
            .send(
                "operations.get",
                "certificatemanager.operations.get",
                name,
                |h| h.get(&url),
            )
            .await?;
        serde_json::from_slice(&out).map_err(|e| GcpError::BadResponse {
            call: "operations.get".to_owned(),
            detail: super::clean(&e.to_string(), 200),
        })
    }
}

/// One page of `certificates.list`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CertificatePage {
    pub certificates: Vec<ApiCertificate>,
    pub next_page_token: Option<String>,
    pub unreachable: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LocationPage {
    locations: Vec<ApiLocation>,
    next_page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct ApiLocation {
    name: String,
    location_id: String,
}

/// A long-running operation (`google.longrunning.Operation`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Operation {
    pub name: String,
    pub done: bool,
    pub error: Option<serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_names_the_permission_and_resource_from_error_info() {
        let body = br#"{"error":{"code":403,"message":"Permission 'certificatemanager.certs.list' denied on resource '//certificatemanager.googleapis.com/projects/p/locations/global' (or it may not exist).","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED","domain":"certificatemanager.googleapis.com","metadata":{"permission":"certificatemanager.certs.list","resource":"projects/p/locations/global"}}]}}"#;
        let e = classify("certificates.list", "x", "y", 403, body);
        assert_eq!(e.class(), ProblemKind::Forbidden);
        assert!(e
            .to_string()
            .starts_with("certificatemanager.certs.list denied on projects/p/locations/global: PERMISSION_DENIED"));
        // Without ErrorInfo the message still names the permission.
        let body = br#"{"error":{"code":403,"message":"Permission 'certificatemanager.certs.get' denied","status":"PERMISSION_DENIED"}}"#;
        let e = classify("certificates.get", "x", "projects/p", 403, body);
        assert!(
            e.to_string()
                .starts_with("certificatemanager.certs.get denied on projects/p"),
            "{e}"
        );
    }

    #[test]
    fn html_and_unknown_errors_are_service_errors() {
        let e = classify(
            "certificates.list",
            "p",
            "r",
            502,
            b"<html>bad gateway</html>",
        );
        assert_eq!(
            e.to_string(),
            "certificates.list: HTTP 502 error (not JSON)"
        );
        assert_eq!(
            classify("c", "p", "r", 401, b"{}").class(),
            ProblemKind::Unauthorized
        );
    }
}
