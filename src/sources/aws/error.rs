//! Typed AWS errors, classified from the SDK's errors so a source problem names what is
//! missing: `acm:DescribeCertificate denied for arn:aws:iam::...`, `no AWS credentials`,
//! `credentials rejected (SignatureDoesNotMatch)`, throttled, timed out, unreachable.
//!
//! Messages from AWS are hostile text: control characters are removed, the length is bounded,
//! anything after a blank line (where a signature error may quote the canonical request) is
//! dropped, and long base64-like runs (keys, tokens, signatures) are replaced by `[redacted]`.

use aws_sdk_acm::error::{ProvideErrorMetadata, SdkError};

pub use crate::sources::ProblemKind as ProblemClass;

/// An AWS failure, for a whole source instance (region) or one certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// The credential chain found nothing usable (or a provider in it failed).
    #[error("no AWS credentials for profile {profile}: {detail}")]
    NoCredentials { profile: String, detail: String },
    /// Authenticated, but not allowed: names the IAM action and the principal.
    #[error("{action} denied for {principal}{}", suffix(message))]
    Forbidden {
        action: String,
        principal: String,
        message: String,
    },
    /// The credentials were rejected: wrong secret, unknown key, expired session token.
    #[error("{action}: credentials rejected ({code}){}", suffix(message))]
    Unauthorized {
        action: String,
        code: String,
        message: String,
    },
    #[error("{action}: throttled ({code}), still throttled after {attempts} attempts")]
    Throttled {
        action: String,
        code: String,
        attempts: u32,
    },
    #[error("{action}: timed out after {after}")]
    Timeout { action: String, after: String },
    #[error("{action}: cannot reach the endpoint: {detail}")]
    Unreachable { action: String, detail: String },
    #[error(
        "no region for profile {profile}: set AWS_REGION, the profile's `region`, or --aws-region"
    )]
    NoRegion { profile: String },
    /// Any other error AWS answered with.
    #[error("{action}: {code}{}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), suffix(message))]
    Service {
        action: String,
        status: Option<u16>,
        code: String,
        message: String,
    },
    /// The answer could not be read (not the JSON the API speaks, a truncated body...).
    #[error("{action}: the response could not be read: {detail}")]
    BadResponse { action: String, detail: String },
    #[error("{0}")]
    Other(String),
}

fn suffix(m: &str) -> String {
    if m.is_empty() {
        String::new()
    } else {
        format!(": {m}")
    }
}

impl AwsError {
    pub fn class(&self) -> ProblemClass {
        match self {
            AwsError::NoCredentials { .. } | AwsError::Unauthorized { .. } => {
                ProblemClass::Unauthorized
            }
            AwsError::Forbidden { .. } => ProblemClass::Forbidden,
            AwsError::Throttled { .. } => ProblemClass::Throttled,
            AwsError::Timeout { .. } => ProblemClass::Timeout,
            AwsError::Unreachable { .. } => ProblemClass::Unreachable,
            AwsError::NoRegion { .. } => ProblemClass::Config,
            AwsError::Service { .. } | AwsError::BadResponse { .. } | AwsError::Other(_) => {
                ProblemClass::Other
            }
        }
    }

    /// True for errors that will be the same for every request of the instance (credentials,
    /// permissions, reachability), so one source-level problem says it.
    pub fn is_instance_wide(&self) -> bool {
        matches!(
            self.class(),
            ProblemClass::Unauthorized
                | ProblemClass::Forbidden
                | ProblemClass::Unreachable
                | ProblemClass::Config
        )
    }
}

/// What the classifier knows about the call.
#[derive(Debug, Clone)]
pub struct CallContext<'a> {
    /// `acm:DescribeCertificate`.
    pub action: &'a str,
    /// The caller's ARN, when GetCallerIdentity told it.
    pub principal: Option<&'a str>,
    pub profile: &'a str,
    pub timeout: std::time::Duration,
    pub max_attempts: u32,
}

const UNAUTHORIZED_CODES: &[&str] = &[
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "IncompleteSignatureException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "AuthFailure",
    "RequestExpired",
    "InvalidToken",
];

const FORBIDDEN_CODES: &[&str] = &[
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnauthorizedException",
];

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "RequestThrottled",
];

/// Classify any SDK error of any AWS service client.
pub fn classify<E>(
    err: &SdkError<E, aws_sdk_acm::config::http::HttpResponse>,
    ctx: &CallContext<'_>,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let action = ctx.action.to_owned();
    if let Some(detail) = credentials_failure(err) {
        return AwsError::NoCredentials {
            profile: ctx.profile.to_owned(),
            detail,
        };
    }
    match err {
        SdkError::TimeoutError(_) => AwsError::Timeout {
            action,
            after: humantime::format_duration(ctx.timeout).to_string(),
        },
        SdkError::DispatchFailure(d) => {
            if d.is_timeout() {
                AwsError::Timeout {
                    action,
                    after: humantime::format_duration(ctx.timeout).to_string(),
                }
            } else {
                AwsError::Unreachable {
                    action,
                    detail: sanitize(&chain(err)),
                }
            }
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            let body = r.raw().body().bytes().unwrap_or_default();
            from_status_and_body(ctx, status, None, None, body).unwrap_or_else(|| {
                AwsError::BadResponse {
                    action,
                    detail: format!("HTTP {status}: {}", sanitize(&chain(err))),
                }
            })
        }
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            let body = s.raw().body().bytes().unwrap_or_default();
            let e = s.err();
            from_status_and_body(ctx, status, e.code(), e.message(), body).unwrap_or_else(|| {
                AwsError::Service {
                    action,
                    status: Some(status),
                    code: e.code().unwrap_or("error").to_owned(),
                    message: sanitize(e.message().unwrap_or_default()),
                }
            })
        }
        _ => AwsError::Other(format!("{action}: {}", sanitize(&chain(err)))),
    }
}

/// Classify from the HTTP status, the parsed error code and message, and the raw body (an XML
/// error body in a JSON protocol, as some auth front ends send, is read too).
fn from_status_and_body(
    ctx: &CallContext<'_>,
    status: u16,
    code: Option<&str>,
    message: Option<&str>,
    body: &[u8],
) -> Option<AwsError> {
    let text = String::from_utf8_lossy(&body[..body.len().min(16 * 1024)]);
    let code = code
        .map(str::to_owned)
        .or_else(|| xml_tag(&text, "Code"))
        .or_else(|| json_type(&text));
    let message = message
        .map(str::to_owned)
        .or_else(|| xml_tag(&text, "Message"))
        .unwrap_or_default();
    let message = sanitize(&message);
    let action = ctx.action.to_owned();
    let code_str = code.as_deref().unwrap_or("");
    if UNAUTHORIZED_CODES.contains(&code_str) || (status == 401) {
        return Some(AwsError::Unauthorized {
            action,
            code: if code_str.is_empty() {
                format!("HTTP {status}")
            } else {
                code_str.to_owned()
            },
            message,
        });
    }
    if FORBIDDEN_CODES.contains(&code_str) || (status == 403 && code.is_none()) {
        let principal = principal_from(&message)
            .or_else(|| ctx.principal.map(str::to_owned))
            .unwrap_or_else(|| format!("the caller (profile {})", ctx.profile));
        return Some(AwsError::Forbidden {
            action,
            principal,
            message,
        });
    }
    if THROTTLING_CODES.contains(&code_str) || status == 429 {
        return Some(AwsError::Throttled {
            action,
            code: if code_str.is_empty() {
                format!("HTTP {status}")
            } else {
                code_str.to_owned()
            },
            attempts: ctx.max_attempts,
        });
    }
    if status >= 500 && code.is_none() {
        return Some(AwsError::Service {
            action,
            status: Some(status),
            code: "server error".to_owned(),
            message: first_line_of_text(&text),
        });
    }
    if code.is_none() && status >= 400 {
        return Some(AwsError::Service {
            action,
            status: Some(status),
            code: "error".to_owned(),
            message: first_line_of_text(&text),
        });
    }
    None
}

fn first_line_of_text(body: &str) -> String {
    // An HTML error page: keep its title, else nothing of it.
    if let Some(t) = xml_tag(body, "title") {
        return sanitize(&t);
    }
    if body.trim_start().starts_with('<') {
        return String::new();
    }
    sanitize(body.lines().next().unwrap_or_default())
}

fn xml_tag(text: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(text[start..end].trim().to_owned())
}

fn json_type(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let t = v.get("__type").or_else(|| v.get("code"))?.as_str()?;
    // `com.amazonaws.acm#AccessDeniedException` -> `AccessDeniedException`.
    Some(t.rsplit('#').next().unwrap_or(t).to_owned())
}

/// `User: arn:aws:iam::123456789012:user/x is not authorized to perform: ...` -> the ARN.
fn principal_from(message: &str) -> Option<String> {
    let i = message.find("arn:")?;
    let arn: String = message[i..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',' && *c != ';')
        .collect();
    (arn.len() > 4).then_some(arn)
}

fn credentials_failure<E: std::error::Error + 'static>(
    err: &SdkError<E, aws_sdk_acm::config::http::HttpResponse>,
) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<aws_credential_types::provider::error::CredentialsError>()
        {
            return Some(sanitize(&credentials_detail(c)));
        }
        cur = e.source();
    }
    None
}

/// The message of a credentials error with its causes (no secret is in them: providers report
/// which source failed and why, never the values).
pub fn credentials_detail(c: &aws_credential_types::provider::error::CredentialsError) -> String {
    let mut s = c.to_string();
    let mut cur = std::error::Error::source(c);
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

/// The error and its causes on one line.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// Make text from AWS safe to show: cut at a blank line (signature errors may quote the
/// canonical request after one), drop control characters, redact long base64-like runs,
/// bound the length.
pub fn sanitize(s: &str) -> String {
    let s = s.split("\n\n").next().unwrap_or_default();
    let s = match s.find("The Canonical String") {
        Some(i) => &s[..i],
        None => s,
    };
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 32 && run.chars().any(|c| c.is_ascii_digit()) {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=') {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    super::clean(&out, 400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CallContext<'static> {
        CallContext {
            action: "acm:DescribeCertificate",
            principal: Some("arn:aws:iam::123456789012:user/fallback"),
            profile: "test",
            timeout: std::time::Duration::from_secs(2),
            max_attempts: 3,
        }
    }

    #[test]
    fn access_denied_names_the_action_and_the_principal_from_the_message() {
        let e = from_status_and_body(
            &ctx(),
            400,
            Some("AccessDeniedException"),
            Some("User: arn:aws:iam::123456789012:user/reader is not authorized to perform: acm:DescribeCertificate on resource: arn:aws:acm:us-east-1:123456789012:certificate/x"),
            b"",
        )
        .unwrap();
        assert_eq!(e.class(), ProblemClass::Forbidden);
        assert!(e.to_string().starts_with(
            "acm:DescribeCertificate denied for arn:aws:iam::123456789012:user/reader"
        ));
    }

    #[test]
    fn xml_signature_error_in_a_json_protocol_is_unauthorized() {
        let body = b"<?xml version=\"1.0\"?><ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error></ErrorResponse>";
        let e = from_status_and_body(&ctx(), 403, None, None, body).unwrap();
        assert_eq!(e.class(), ProblemClass::Unauthorized);
        assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
    }

    #[test]
    fn bare_403_falls_back_to_the_known_principal() {
        let e = from_status_and_body(&ctx(), 403, None, None, b"").unwrap();
        assert_eq!(
            e.to_string(),
            "acm:DescribeCertificate denied for arn:aws:iam::123456789012:user/fallback"
        );
    }

    #[test]
    fn throttling_and_html_500() {
        let e = from_status_and_body(&ctx(), 400, Some("ThrottlingException"), None, b"").unwrap();
        assert_eq!(e.class(), ProblemClass::Throttled);
        let e = from_status_and_body(
            &ctx(),
            500,
            None,
            None,
            b"<html><head><title>500 Internal Server Error</title></head><body>\x1b[31mx</body></html>",
        )
        .unwrap();
        assert_eq!(
            e.to_string(),
            "acm:DescribeCertificate: server error (HTTP 500): 500 Internal Server Error"
        );
    }

    #[test]
    fn sanitize_redacts_secrets_and_control_characters() {
        let s = sanitize("bad key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY here\x1b[2J\nnext\n\nThe Canonical String for this request should have been x-amz-security-token:abc");
        assert!(!s.contains("wJalrXUtnFEMI"), "{s}");
        assert!(s.contains("[redacted]"));
        assert!(!s.contains('\x1b'));
        assert!(!s.contains("security-token"));
        // ARNs and ordinary words stay.
        let s = sanitize(
            "arn:aws:acm:us-east-1:123456789012:certificate/1b2c3d4e-aaaa-bbbb-cccc-123456789012",
        );
        assert!(s.contains("123456789012:certificate/1b2c3d4e"), "{s}");
    }
}
