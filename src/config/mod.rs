//! Configuration: the optional user config file (TOML) and where it lives.
//!
//! A broken file is an error naming the file, the line and the field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The config file, as written by the user. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// TLS targets (`host:port`, `https://...`, `addr:port@sni`).
    #[serde(default)]
    pub targets: Vec<String>,
    /// Files with one target per line.
    #[serde(default)]
    pub targets_files: Vec<PathBuf>,
    /// Certificate files, directories and globs.
    #[serde(default)]
    pub files: Vec<String>,
    /// Extra trust anchors (PEM).
    #[serde(default)]
    pub ca_files: Vec<PathBuf>,
    #[serde(default)]
    pub thresholds: ThresholdsConfig,
    #[serde(default)]
    pub probe: ProbeConfig,
    #[serde(default)]
    pub ui: UiConfig,
    /// User-defined actions (`[[action]]`).
    #[serde(default, rename = "action")]
    pub actions: Vec<crate::hooks::UserAction>,
    /// ACME issuers (`[[acme]]`).
    #[serde(default, rename = "acme")]
    pub acme: Vec<crate::acme::AcmeIssuer>,
    /// Certificates kept in files and renewed through an ACME issuer (`[[certificate]]`).
    #[serde(default, rename = "certificate")]
    pub certificates: Vec<crate::acme::ManagedFile>,
    /// Kubernetes contexts and namespaces to read (`[kubernetes]`).
    #[serde(default)]
    pub kubernetes: Option<KubernetesConfig>,
    /// AWS accounts and regions to read (`[[aws]]`).
    #[serde(default)]
    pub aws: Vec<crate::sources::aws::AwsConfig>,
}

/// The `[kubernetes]` section: the same settings as the scan flags.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    /// Kubeconfig path (default: `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Contexts to read (default: the current context).
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub all_contexts: bool,
    /// One namespace (default: the context's namespace).
    pub namespace: Option<String>,
    #[serde(default)]
    pub all_namespaces: bool,
    /// Time limit of each API request (default: the probe timeout).
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    /// `limit` of each list page (default 500).
    pub page_size: Option<u32>,
    /// Refuse every action (renew, rotate).
    #[serde(default)]
    pub read_only: bool,
    /// Probe each Ingress TLS host and compare what it serves with its Secret.
    #[serde(default)]
    pub check_ingresses: bool,
}

/// Dashboard settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (built-in or a file in `<config dir>/themes/`).
    pub theme: Option<String>,
    /// Capture the mouse (default true).
    pub mouse: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    #[serde(default, deserialize_with = "de_duration")]
    pub warn: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub crit: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
}

pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration '{s}': {e} (examples: 30d, 12h, 5s)"
        ))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The default config file path (`~/.config/certdeck/config.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.config_dir().join("config.toml"))
}

/// The state directory (logs) for this user.
pub fn state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| {
        d.state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| d.data_local_dir().to_path_buf())
    })
}

/// Parse config text; errors name the file, line and field.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
        let msg = e.message().trim().to_owned();
        let message = match line {
            Some(l) => format!("line {l}: {msg}"),
            None => msg,
        };
        ConfigError::Parse {
            path: path.to_owned(),
            message,
        }
    })
}

/// Load a config file. `required`: a missing file is an error (it was named explicitly).
pub fn load(path: &Path, required: bool) -> Result<Option<ConfigFile>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(source) => Err(ConfigError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_line_and_field() {
        let e = parse(
            Path::new("c.toml"),
            "targets = []\n\n[thresholds]\nwarnn = \"3d\"\n",
        )
        .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("c.toml") && s.contains("line 4") && s.contains("warnn"),
            "{s}"
        );
    }

    #[test]
    fn bad_duration_names_the_value() {
        let e = parse(Path::new("c.toml"), "[probe]\ntimeout = \"soon\"\n").unwrap_err();
        let s = e.to_string();
        assert!(s.contains("line 2") && s.contains("soon"), "{s}");
    }

    #[test]
    fn the_shipped_examples_parse() {
        let c = parse(
            Path::new("assets/config.example.toml"),
            include_str!("../../assets/config.example.toml"),
        )
        .unwrap();
        assert_eq!(c.thresholds.crit, Some(Duration::from_secs(7 * 86400)));
        let a = parse(
            Path::new("assets/actions.example.toml"),
            include_str!("../../assets/actions.example.toml"),
        )
        .unwrap();
        assert_eq!(a.actions.len(), 3);
        assert!(a.actions[0].dangerous && a.actions[0].command.contains("{path}"));
        assert!(!a.actions[2].confirm);
        for action in &a.actions {
            assert!(
                crate::config::keymap::parse_key(&action.key).is_some(),
                "{}",
                action.key
            );
        }
    }

    #[test]
    fn durations_parse() {
        let c = parse(
            Path::new("c.toml"),
            "[thresholds]\nwarn = \"45d\"\ncrit = \"3d\"\n",
        )
        .unwrap();
        assert_eq!(c.thresholds.warn, Some(Duration::from_secs(45 * 86400)));
    }
}

pub mod keymap;
pub mod theme;

/// The config directory (`~/.config/certdeck` on Linux).
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.config_dir().to_path_buf())
}
