//! Configuration: the optional user config file (TOML), where it lives, and its core sections.
//!
//! The file is a [`Document`]: its top-level keys are checked against the sections certdeck
//! knows (the core ones here, plus those the source plugins and actions declare), and each
//! section is deserialised by the module that owns it with [`Document::section`], so a source
//! brings its own config type and this module imports no source or action code. A broken file
//! is an error naming the file, the line and the field.

pub mod keymap;
pub mod theme;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// Top-level keys of the core sections (this module's types).
pub const CORE_SECTIONS: &[&str] = &[
    "thresholds",
    "probe",
    "ui",
    "refresh",
    "read_only",
    "ca_files",
    "backups",
];

/// `[thresholds]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    #[serde(default, deserialize_with = "de_duration")]
    pub warn: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub crit: Option<Duration>,
    /// Short-lived certificates: warning from this percentage of the lifetime used.
    pub warn_lifetime_used: Option<u8>,
    /// Short-lived certificates: critical (rotation overdue) from this percentage.
    pub crit_lifetime_used: Option<u8>,
    /// A lifetime shorter than this makes a certificate short-lived (default 7d).
    #[serde(default, deserialize_with = "de_duration")]
    pub short_lived: Option<Duration>,
}

/// `[probe]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
    pub concurrency: Option<usize>,
    /// Check revocation (OCSP, CRLs) of leaf certificates (default true).
    pub revocation: Option<bool>,
    /// Protocol of plain `host:port` targets: `auto` (well-known ports select theirs),
    /// `none`, or one protocol (`smtp`, `imap`...), as `--starttls`.
    /// Plain data here; the TLS source parses it (so an unknown name is its error).
    pub starttls: Option<String>,
}

/// `[ui]`: dashboard settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// Theme name (built-in or a file in `<config dir>/themes/`).
    pub theme: Option<String>,
    /// Capture the mouse (default true).
    pub mouse: Option<bool>,
    /// Hide host names and paths (as `--redact`).
    pub redact: Option<bool>,
}

/// `[refresh.KIND]`: how often a kind of source runs a round, and its time limit.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshConfig {
    #[serde(default, deserialize_with = "de_duration")]
    pub interval: Option<Duration>,
    #[serde(default, deserialize_with = "de_duration")]
    pub timeout: Option<Duration>,
}

/// `[backups]`: how long the backups of replaced files and Secrets are kept.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsConfig {
    /// Backups older than this are pruned (default 30 days)...
    #[serde(default, deserialize_with = "de_duration")]
    pub max_age: Option<Duration>,
    /// ...except the newest `keep` of each file or Secret (default 3).
    pub keep: Option<usize>,
}

/// The core sections, read at once.
#[derive(Debug, Default, Clone)]
pub struct Core {
    pub thresholds: ThresholdsConfig,
    pub probe: ProbeConfig,
    pub ui: UiConfig,
    pub refresh: BTreeMap<String, RefreshConfig>,
    pub read_only: bool,
    pub ca_files: Vec<PathBuf>,
    pub backups: BackupsConfig,
}

pub(crate) fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A duration as users write it (`30d`, `12h`, `5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration '{s}': {e} (examples: 30d, 12h, 5s)"))
}

/// A duration field (for config types elsewhere): `#[serde(deserialize_with = "...")]`.
pub fn de_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d)
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

/// The config file, parsed and checked; sections are read from it by their owners.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// Where it came from (`None`: no file).
    pub path: Option<PathBuf>,
    text: String,
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> Option<usize> {
    span.map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count())
}

impl Document {
    /// No config file.
    pub fn empty() -> Document {
        Document::default()
    }

    /// The file's name for messages ("the config file" when there is none).
    pub fn name(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config file".to_owned())
    }

    fn error(&self, span: Option<std::ops::Range<usize>>, msg: &str) -> ConfigError {
        let message = match line_of(&self.text, span) {
            Some(l) => format!("line {l}: {msg}"),
            None => msg.to_owned(),
        };
        ConfigError::Parse {
            path: self.path.clone().unwrap_or_default(),
            message,
        }
    }

    /// Parse `text` (from `path`), checking every top-level key against `known` sections.
    pub fn parse(path: &Path, text: &str, known: &[&str]) -> Result<Document, ConfigError> {
        let doc = Document {
            path: Some(path.to_owned()),
            text: text.to_owned(),
        };
        let table =
            toml::de::DeTable::parse(text).map_err(|e| doc.error(e.span(), e.message().trim()))?;
        for (key, _) in table.get_ref().iter() {
            let k: &str = key.get_ref();
            if !known.contains(&k) && !CORE_SECTIONS.contains(&k) {
                let mut all: Vec<&str> = CORE_SECTIONS.iter().chain(known).copied().collect();
                all.sort_unstable();
                all.dedup();
                return Err(doc.error(
                    Some(key.span()),
                    &format!("unknown field `{k}`, expected one of {}", all.join(", ")),
                ));
            }
        }
        Ok(doc)
    }

    /// Load a config file. `required`: a missing file is an error (it was named explicitly).
    pub fn load(path: &Path, required: bool, known: &[&str]) -> Result<Document, ConfigError> {
        match crate::fsx::read_to_string_bounded(path, MAX_CONFIG_BYTES) {
            Ok(text) => Document::parse(path, &text, known),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Document::empty())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Deserialise the top-level key `name` as `T` (`None` when absent). Errors name the line
    /// and the field inside the section.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ConfigError> {
        if self.text.is_empty() {
            return Ok(None);
        }
        let table = toml::de::DeTable::parse(&self.text)
            .map_err(|e| self.error(e.span(), e.message().trim()))?;
        let Some(value) = table.get_ref().iter().find_map(|(k, v)| {
            let k: &str = k.get_ref();
            (k == name).then(|| v.clone())
        }) else {
            return Ok(None);
        };
        T::deserialize(toml::de::ValueDeserializer::from(value))
            .map(Some)
            .map_err(|e| self.error(e.span(), e.message().trim()))
    }

    /// The core sections.
    pub fn core(&self) -> Result<Core, ConfigError> {
        Ok(Core {
            thresholds: self.section("thresholds")?.unwrap_or_default(),
            probe: self.section("probe")?.unwrap_or_default(),
            ui: self.section("ui")?.unwrap_or_default(),
            refresh: self.section("refresh")?.unwrap_or_default(),
            read_only: self.section("read_only")?.unwrap_or_default(),
            ca_files: self.section("ca_files")?.unwrap_or_default(),
            backups: self.section("backups")?.unwrap_or_default(),
        })
    }
}

/// The default config file path (`~/.config/certdeck/config.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.config_dir().join("config.toml"))
}

/// The config directory (`~/.config/certdeck` on Linux).
pub fn config_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.config_dir().to_path_buf())
}

/// The state directory (logs) for this user.
pub fn state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certdeck").map(|d| {
        d.state_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| d.data_local_dir().to_path_buf())
    })
}

/// Environment variable that moves the data directory (audit log, backups, ACME accounts).
pub const DATA_DIR_ENV: &str = "CERTDECK_DATA_DIR";

/// The data directory: `CERTDECK_DATA_DIR`, else the platform data directory
/// (`~/.local/share/certdeck` on Linux).
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.data_dir().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_names_line_and_field() {
        let d = Document::parse(
            Path::new("c.toml"),
            "targets = []\n\n[thresholds]\nwarnn = \"3d\"\n",
            &["targets"],
        )
        .unwrap();
        let e = d.core().unwrap_err().to_string();
        assert!(
            e.contains("c.toml") && e.contains("line 4") && e.contains("warnn"),
            "{e}"
        );
    }

    #[test]
    fn unknown_top_level_key_names_its_line() {
        let e = Document::parse(
            Path::new("c.toml"),
            "targets = []\n\ntargetz = []\n",
            &["targets"],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("line 3") && e.contains("targetz") && e.contains("targets"),
            "{e}"
        );
    }

    #[test]
    fn bad_duration_names_the_value() {
        let d = Document::parse(Path::new("c.toml"), "[probe]\ntimeout = \"soon\"\n", &[]).unwrap();
        let s = d.core().unwrap_err().to_string();
        assert!(s.contains("line 2") && s.contains("soon"), "{s}");
    }

    #[test]
    fn sections_are_read_by_their_owners_with_lines_in_errors() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Mine {
            name: String,
        }
        let text =
            "[thresholds]\nwarn = \"45d\"\n\n[[mine]]\nname = \"a\"\n\n[[mine]]\nnam = \"b\"\n";
        let d = Document::parse(Path::new("c.toml"), text, &["mine"]).unwrap();
        assert_eq!(
            d.core().unwrap().thresholds.warn,
            Some(Duration::from_secs(45 * 86400))
        );
        let e = d.section::<Vec<Mine>>("mine").unwrap_err().to_string();
        assert!(e.contains("line 8") && e.contains("nam"), "{e}");
        let ok =
            Document::parse(Path::new("c.toml"), "[[mine]]\nname = \"a\"\n", &["mine"]).unwrap();
        assert_eq!(
            ok.section::<Vec<Mine>>("mine").unwrap().unwrap()[0].name,
            "a"
        );
        assert!(ok.section::<Vec<Mine>>("other").unwrap().is_none());
    }

    #[test]
    fn refresh_schedules_parse_per_kind() {
        let d = Document::parse(
            Path::new("c.toml"),
            "read_only = true\n[refresh.k8s]\ninterval = \"10m\"\n[refresh.tls]\ntimeout = \"1m\"\n",
            &[],
        )
        .unwrap();
        let c = d.core().unwrap();
        assert!(c.read_only);
        assert_eq!(c.refresh["k8s"].interval, Some(Duration::from_secs(600)));
        assert_eq!(c.refresh["tls"].timeout, Some(Duration::from_secs(60)));
    }
}
