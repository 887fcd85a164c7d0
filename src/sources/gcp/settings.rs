//! Google Cloud settings: the `--gcp-*` scan flags, the `[[gcp]]` config blocks, and the
//! resolved `GcpSettings` (one per project) the reader takes.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// The Certificate Manager REST endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://certificatemanager.googleapis.com";
/// Environment variable that overrides the endpoint (a fixture, a private endpoint).
pub const ENDPOINT_ENV: &str = "CERTDECK_GCP_ENDPOINT";
/// `pageSize` of each list call (the API's maximum is 1000... it may return fewer).
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Attempts per request: 429 and 5xx are retried, after `Retry-After` or a backoff.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// Google Cloud flags of `certdeck scan`.
#[derive(Debug, clap::Args, Default, Clone)]
#[command(next_help_heading = "Google Certificate Manager")]
pub struct GcpArgs {
    /// Project whose Certificate Manager certificates to read, with Application Default
    /// Credentials (repeatable).
    #[arg(long = "gcp-project", value_name = "PROJECT")]
    pub gcp_projects: Vec<String>,
    /// Location to read besides `global` (repeatable; `-` alone: every location the project
    /// lists).
    #[arg(long = "gcp-location", value_name = "LOCATION")]
    pub gcp_locations: Vec<String>,
}

impl GcpArgs {
    pub fn given(&self) -> bool {
        !self.gcp_projects.is_empty()
    }

    /// One `GcpSettings` per project named; tuning from the first `[[gcp]]` block.
    pub fn resolve(&self, cfg: &[GcpConfig], default_timeout: Duration) -> Vec<GcpSettings> {
        let tuning = cfg.first().cloned().unwrap_or_default();
        dedup(&self.gcp_projects)
            .into_iter()
            .map(|project| {
                let block = cfg
                    .iter()
                    .find(|b| b.project == project)
                    .cloned()
                    .unwrap_or_else(|| tuning.clone());
                GcpConfig {
                    project,
                    locations: self.gcp_locations.clone(),
                    all_locations: false,
                    ..block
                }
                .resolve(default_timeout)
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

/// One `[[gcp]]` block of the config file: a project and its locations.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GcpConfig {
    pub project: String,
    /// Locations besides `global` (`us-central1`, `europe-west1`...).
    #[serde(default)]
    pub locations: Vec<String>,
    /// Read every location the project lists (needs `certificatemanager.locations.list`).
    #[serde(default)]
    pub all_locations: bool,
    /// REST endpoint (default: CERTDECK_GCP_ENDPOINT, else certificatemanager.googleapis.com).
    pub endpoint: Option<String>,
    /// Time limit of each request (default: the probe timeout).
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub timeout: Option<Duration>,
    /// `pageSize` of each list call (default 500).
    pub page_size: Option<u32>,
    /// Attempts per request, 429 and 5xx retried (default 4).
    pub max_attempts: Option<u32>,
    /// Self-managed certificates and the renewed files to upload into them (`[[gcp.upload]]`).
    #[serde(default)]
    pub upload: Vec<UploadConfig>,
}

/// A self-managed certificate and where its renewed files are: `renew ID` uploads them into
/// the same certificate (`certificates.patch`), so every map entry and proxy that uses it
/// serves the new one.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UploadConfig {
    /// `projects/P/locations/L/certificates/NAME`.
    pub name: String,
    /// The renewed certificate (PEM; the leaf first, its chain may follow).
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    /// The chain, when it is not in `certificate`.
    pub chain: Option<PathBuf>,
}

/// Which locations a project is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locations {
    /// `global` first, then the ones named.
    List(Vec<String>),
    /// Every location the locations list API returns.
    All,
}

impl GcpConfig {
    pub fn resolve(&self, default_timeout: Duration) -> GcpSettings {
        let all = self.all_locations || self.locations.iter().any(|l| l == "-");
        let mut list = vec!["global".to_owned()];
        for l in &self.locations {
            if l != "-" && !list.contains(l) {
                list.push(l.clone());
            }
        }
        GcpSettings {
            project: self.project.clone(),
            locations: if all {
                Locations::All
            } else {
                Locations::List(list)
            },
            endpoint: self
                .endpoint
                .clone()
                .or_else(|| std::env::var(ENDPOINT_ENV).ok().filter(|s| !s.is_empty()))
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned())
                .trim_end_matches('/')
                .to_owned(),
            timeout: self.timeout.unwrap_or(default_timeout),
            page_size: self.page_size.unwrap_or(DEFAULT_PAGE_SIZE).clamp(1, 1000),
            max_attempts: self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1),
            uploads: self.upload.clone(),
        }
    }
}

/// One project to read. Holds no secret: credentials stay with google-cloud-auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcpSettings {
    pub project: String,
    pub locations: Locations,
    pub endpoint: String,
    pub timeout: Duration,
    pub page_size: u32,
    pub max_attempts: u32,
    /// Renewed files to upload into self-managed certificates (paths only, no key material).
    pub uploads: Vec<UploadConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_comes_first_and_named_locations_follow() {
        let a = GcpArgs {
            gcp_projects: vec!["p1".into(), "p2".into(), "p1".into()],
            gcp_locations: vec!["us-central1".into(), "global".into()],
        };
        let s = a.resolve(&[], Duration::from_secs(3));
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].locations,
            Locations::List(vec!["global".into(), "us-central1".into()])
        );
        assert_eq!(s[0].timeout, Duration::from_secs(3));
        let a = GcpArgs {
            gcp_projects: vec!["p".into()],
            gcp_locations: vec!["-".into()],
        };
        assert_eq!(
            a.resolve(&[], Duration::from_secs(3))[0].locations,
            Locations::All
        );
    }

    #[test]
    fn config_block_parses_and_rejects_unknown_fields() {
        let c: GcpConfig = toml::from_str(
            "project = \"shop\"\nlocations = [\"europe-west1\"]\nendpoint = \"http://127.0.0.1:9/\"\npage_size = 5000\n",
        )
        .unwrap();
        let s = c.resolve(Duration::from_secs(10));
        assert_eq!(s.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.page_size, 1000);
        assert!(toml::from_str::<GcpConfig>("project = \"p\"\nprivate_key = \"x\"").is_err());
        let c: GcpConfig = toml::from_str(
            "project = \"p\"\n[[upload]]\nname = \"projects/p/locations/global/certificates/web\"\ncertificate = \"/etc/ssl/web.pem\"\nprivate_key = \"/etc/ssl/web.key\"\n",
        )
        .unwrap();
        let s = c.resolve(Duration::from_secs(10));
        assert_eq!(s.uploads.len(), 1);
        assert_eq!(s.uploads[0].chain, None);
    }
}
