//! AWS settings: the `--aws*` scan flags, the `[[aws]]` config blocks, and the resolved
//! `AwsSettings` (one per account/profile) the reader takes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Requests in flight per region by default. ACM's DescribeCertificate and GetCertificate
/// allow about 10 requests per second per account and region; more only buys throttling.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// `MaxItems` of each ListCertificates page (the API's maximum).
pub const DEFAULT_PAGE_SIZE: i32 = 1000;
/// Attempts per request, throttling and 5xx retried with the SDK's backoff in between.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// Regions where ACM is offered in the `aws` partition (for `--aws-all-regions`). Opt-in
/// regions the account has not enabled answer with an error of their own.
pub const ACM_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-south-1",
    "eu-south-2",
    "eu-north-1",
    "il-central-1",
    "me-south-1",
    "me-central-1",
    "mx-central-1",
    "sa-east-1",
];

/// AWS flags of `certdeck scan`, as the AWS CLI spells them where it has them.
#[derive(Debug, clap::Args, Default, Clone)]
#[command(next_help_heading = "AWS Certificate Manager")]
pub struct AwsArgs {
    /// Read ACM certificates and ACM PCA CAs with the AWS CLI's credentials (implied by any
    /// flag below).
    #[arg(long)]
    pub aws: bool,
    /// Profile of the shared config/credentials files (repeatable; default: AWS_PROFILE, else
    /// `default`).
    #[arg(long = "aws-profile", value_name = "PROFILE")]
    pub aws_profiles: Vec<String>,
    /// Region to read (repeatable; default: AWS_REGION, else the profile's region).
    #[arg(
        long = "aws-region",
        value_name = "REGION",
        conflicts_with = "aws_all_regions"
    )]
    pub aws_regions: Vec<String>,
    /// Read every region where ACM is offered.
    #[arg(long)]
    pub aws_all_regions: bool,
}

impl AwsArgs {
    /// True when any AWS flag was given.
    pub fn given(&self) -> bool {
        self.aws
            || !self.aws_profiles.is_empty()
            || !self.aws_regions.is_empty()
            || self.aws_all_regions
    }

    /// One `AwsSettings` per profile named (or one for the default profile). Tuning (timeout,
    /// concurrency...) comes from the first `[[aws]]` block when the config file has one.
    pub fn resolve(&self, cfg: &[AwsConfig], default_timeout: Duration) -> Vec<AwsSettings> {
        let tuning = cfg.first().cloned().unwrap_or_default();
        let regions = if self.aws_all_regions {
            RegionChoice::All
        } else if self.aws_regions.is_empty() {
            RegionChoice::Default
        } else {
            RegionChoice::List(dedup(&self.aws_regions))
        };
        let profiles: Vec<Option<String>> = if self.aws_profiles.is_empty() {
            vec![None]
        } else {
            dedup(&self.aws_profiles).into_iter().map(Some).collect()
        };
        profiles
            .into_iter()
            .map(|profile| AwsConfig {
                profile,
                regions: Vec::new(),
                all_regions: false,
                ..tuning.clone()
            })
            .map(|c| AwsSettings {
                regions: regions.clone(),
                ..c.resolve(default_timeout)
            })
            .collect()
    }
}

fn dedup(v: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in v {
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    out
}

/// One `[[aws]]` block of the config file: an account (profile) and its regions.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Profile of the shared config/credentials files (default: AWS_PROFILE, else `default`).
    pub profile: Option<String>,
    /// Regions to read (default: AWS_REGION, else the profile's region).
    #[serde(default)]
    pub regions: Vec<String>,
    /// Read every region where ACM is offered.
    #[serde(default)]
    pub all_regions: bool,
    /// Time limit of each API request attempt (default: the probe timeout).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// Requests in flight per region (default 8).
    pub concurrency: Option<usize>,
    /// `MaxItems` of each ListCertificates page (default and maximum 1000).
    pub page_size: Option<i32>,
    /// Attempts per request, throttling and 5xx errors retried with backoff (default 5).
    pub max_attempts: Option<u32>,
    /// Also list ACM PCA private CAs (default true).
    pub private_cas: Option<bool>,
    /// Shared config file (default: AWS_CONFIG_FILE, else ~/.aws/config).
    pub config_file: Option<PathBuf>,
    /// Shared credentials file (default: AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
    pub credentials_file: Option<PathBuf>,
    /// Imported certificates and the renewed files to re-import into them (`[[aws.reimport]]`).
    #[serde(default)]
    pub reimport: Vec<ReimportConfig>,
}

/// An imported ACM certificate and where its renewed files are: `renew ID` re-imports them
/// into the same ARN.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReimportConfig {
    pub arn: String,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// Default: the certificates after the first in `certificate`.
    pub chain: Option<PathBuf>,
}

impl AwsConfig {
    /// Settings from this block, with `default_timeout` when the block sets none.
    pub fn resolve(&self, default_timeout: Duration) -> AwsSettings {
        AwsSettings {
            profile: self.profile.clone(),
            regions: if self.all_regions {
                RegionChoice::All
            } else if self.regions.is_empty() {
                RegionChoice::Default
            } else {
                RegionChoice::List(dedup(&self.regions))
            },
            timeout: self.timeout.unwrap_or(default_timeout),
            concurrency: self.concurrency.unwrap_or(DEFAULT_CONCURRENCY).max(1),
            page_size: self
                .page_size
                .unwrap_or(DEFAULT_PAGE_SIZE)
                .clamp(1, DEFAULT_PAGE_SIZE),
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            private_cas: self.private_cas.unwrap_or(true),
            config_file: self.config_file.clone(),
            credentials_file: self.credentials_file.clone(),
        }
    }
}

/// Which regions an account is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionChoice {
    /// The region the AWS CLI would use: AWS_REGION / AWS_DEFAULT_REGION, else the profile's.
    Default,
    List(Vec<String>),
    /// Every region of `ACM_REGIONS`.
    All,
}

/// One account (profile) to read, resolved from flags or a `[[aws]]` block. Holds no secret:
/// credentials stay with the SDK's provider chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub regions: RegionChoice,
    /// Time limit of each request attempt; a whole operation (with retries) gets
    /// `max_attempts` times this.
    pub timeout: Duration,
    /// Requests in flight per region.
    pub concurrency: usize,
    pub page_size: i32,
    pub max_attempts: u32,
    pub private_cas: bool,
    /// The shared config and credentials files, when not the AWS CLI's defaults.
    pub config_file: Option<PathBuf>,
    pub credentials_file: Option<PathBuf>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        AwsConfig::default().resolve(Duration::from_secs(10))
    }
}

impl AwsSettings {
    /// The profile as shown in messages (`default` when none was named).
    pub fn profile_label(&self) -> String {
        self.profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()))
            .unwrap_or_else(|| "default".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_one_block_per_profile_with_config_tuning() {
        let args = AwsArgs {
            aws: false,
            aws_profiles: vec!["a".into(), "b".into(), "a".into()],
            aws_regions: vec!["eu-west-1".into(), "us-east-1".into()],
            aws_all_regions: false,
        };
        assert!(args.given());
        let cfg = vec![AwsConfig {
            concurrency: Some(3),
            ..AwsConfig::default()
        }];
        let s = args.resolve(&cfg, Duration::from_secs(4));
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].profile.as_deref(), Some("a"));
        assert_eq!(s[1].profile.as_deref(), Some("b"));
        assert_eq!(s[0].concurrency, 3);
        assert_eq!(s[0].timeout, Duration::from_secs(4));
        assert_eq!(
            s[0].regions,
            RegionChoice::List(vec!["eu-west-1".into(), "us-east-1".into()])
        );
    }

    #[test]
    fn config_block_parses_and_rejects_unknown_fields() {
        let c: AwsConfig = toml::from_str(
            "profile = \"prod\"\nregions = [\"eu-west-1\"]\ntimeout = \"3s\"\npage_size = 5000\n",
        )
        .unwrap();
        let s = c.resolve(Duration::from_secs(10));
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.page_size, 1000, "MaxItems is capped at the API's maximum");
        assert!(s.private_cas);
        assert!(toml::from_str::<AwsConfig>("secret_key = \"x\"").is_err());
    }
}
