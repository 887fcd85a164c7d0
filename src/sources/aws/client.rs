//! Building the SDK: one HTTPS client on rustls + ring for the whole process, and per account
//! one `SdkConfig` loaded by the SDK's default chain (so credentials, profiles, SSO,
//! `credential_process`, assume-role, web identity, container credentials, IMDSv2 and
//! `endpoint_url` behave as in the AWS CLI), with certdeck's time limits and retries.

use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

use super::error::{self, AwsError, CallContext};
use super::settings::AwsSettings;

/// One pooled HTTPS client on rustls with ring (never aws-lc), shared by every SDK client.
pub fn shared_http_client() -> aws_sdk_acm::config::SharedHttpClient {
    static CLIENT: OnceLock<aws_sdk_acm::config::SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// Pause between retries grows up to this; the whole operation is bounded by
/// `attempts * timeout + RETRY_SLACK`.
const RETRY_SLACK: Duration = Duration::from_secs(15);

/// Time limit of one whole operation (all its attempts and the backoff between them).
pub fn operation_timeout(s: &AwsSettings) -> Duration {
    s.timeout * s.max_attempts + RETRY_SLACK
}

/// Load the account's `SdkConfig` with the SDK's default chain. `region` overrides the
/// profile's region (None: the AWS CLI's choice).
pub async fn load(s: &AwsSettings, region: Option<&str>) -> SdkConfig {
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(s.timeout)
        .read_timeout(s.timeout)
        .operation_attempt_timeout(s.timeout)
        .operation_timeout(operation_timeout(s))
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared_http_client())
        .timeout_config(timeouts)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(s.max_attempts)
                .with_initial_backoff(Duration::from_millis(200)),
        );
    if let Some(p) = &s.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_owned()));
    }
    if s.config_file.is_some() || s.credentials_file.is_some() {
        use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
        let mut files = EnvConfigFiles::builder();
        files = match &s.config_file {
            Some(p) => files.with_file(EnvConfigFileKind::Config, p),
            None => files.include_default_config_file(true),
        };
        files = match &s.credentials_file {
            Some(p) => files.with_file(EnvConfigFileKind::Credentials, p),
            None => files.include_default_credentials_file(true),
        };
        loader = loader.profile_files(files.build());
    }
    loader.load().await
}

/// Resolve the credentials once (the chain, with assume-role or web identity if the profile
/// says so), so missing credentials are one clear problem before any ACM call. The
/// credentials themselves are dropped at once; only the error text is kept.
pub async fn check_credentials(conf: &SdkConfig, s: &AwsSettings) -> Result<(), AwsError> {
    let profile = s.profile_label();
    let Some(provider) = conf.credentials_provider() else {
        return Err(AwsError::NoCredentials {
            profile,
            detail: "no credentials provider is configured".to_owned(),
        });
    };
    match tokio::time::timeout(operation_timeout(s), provider.provide_credentials()).await {
        Ok(Ok(_creds)) => Ok(()),
        Ok(Err(e)) => Err(AwsError::NoCredentials {
            profile,
            detail: error::sanitize(&error::credentials_detail(&e)),
        }),
        Err(_) => Err(AwsError::Timeout {
            action: "loading credentials".to_owned(),
            after: humantime::format_duration(operation_timeout(s)).to_string(),
        }),
    }
}

/// Who the credentials belong to (account and ARN), from sts:GetCallerIdentity, which needs
/// no permission. `None` when STS cannot be asked (the caller goes on without it).
pub async fn identity(conf: &SdkConfig, s: &AwsSettings) -> Result<Identity, AwsError> {
    let sts = aws_sdk_sts::Client::new(conf);
    let profile = s.profile_label();
    let ctx = CallContext {
        action: "sts:GetCallerIdentity",
        principal: None,
        profile: &profile,
        timeout: s.timeout,
        max_attempts: s.max_attempts,
    };
    match tokio::time::timeout(operation_timeout(s), sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => Ok(Identity {
            account: out.account().map(str::to_owned),
            arn: out.arn().map(str::to_owned),
        }),
        Ok(Err(e)) => Err(error::classify(&e, &ctx)),
        Err(_) => Err(AwsError::Timeout {
            action: ctx.action.to_owned(),
            after: humantime::format_duration(operation_timeout(s)).to_string(),
        }),
    }
}

/// The caller, as STS says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub account: Option<String>,
    pub arn: Option<String>,
}

/// An ACM client for `region` on the account's config.
pub fn acm(conf: &SdkConfig, region: &str) -> aws_sdk_acm::Client {
    aws_sdk_acm::Client::from_conf(
        aws_sdk_acm::config::Builder::from(conf)
            .region(Region::new(region.to_owned()))
            .build(),
    )
}

/// An ACM PCA client for `region` on the account's config.
pub fn acmpca(conf: &SdkConfig, region: &str) -> aws_sdk_acmpca::Client {
    aws_sdk_acmpca::Client::from_conf(
        aws_sdk_acmpca::config::Builder::from(conf)
            .region(Region::new(region.to_owned()))
            .build(),
    )
}
