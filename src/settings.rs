//! Settings, resolved once from the command line and the config file together (ripgrep's
//! way), so every path honours the same values: thresholds, probe limits, trust anchors,
//! read-only, refresh schedules, backups, user actions, the dashboard's look. The sources and
//! the action session are built from these settings and nothing else.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::actions::hooks::{HookBackend, UserAction};
use crate::actions::{ActionOptions, AuditLog, Backend, Session};
use crate::cli::ProbeArgs;
use crate::config::{self, ConfigError, Document};
use crate::model::Thresholds;
use crate::sources::registry::{self, BuildContext, BuildError, Purpose};
use crate::sources::supervisor::{Overrides, ScheduleOverride};
use crate::sources::{ProbeSettings, Source, DEFAULT_CONCURRENCY};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Build(String),
    #[error("nothing to scan: give targets, paths, --file, --target or a source's flags (--k8s...), or list them in {0}")]
    Nothing(String),
    #[error("--crit ({crit}) must not be longer than --warn ({warn})")]
    Thresholds { warn: String, crit: String },
    #[error("--crit-lifetime-used ({crit}%) must not be below --warn-lifetime-used ({warn}%), and both must be 1 to 100")]
    LifetimeThresholds { warn: u8, crit: u8 },
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--timeout must be longer than zero")]
    Timeout,
}

impl From<BuildError> for SettingsError {
    fn from(e: BuildError) -> Self {
        match e {
            BuildError::Config(c) => SettingsError::Config(c),
            BuildError::Invalid(s) => SettingsError::Build(s),
        }
    }
}

/// How the dashboard looks.
#[derive(Debug, Clone)]
pub struct UiSettings {
    pub theme: String,
    pub mouse: bool,
    pub redact: bool,
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Document,
    pub probe: ProbeSettings,
    pub thresholds: Thresholds,
    /// Refuse every action: `--read-only`, `read_only = true`, or `[kubernetes] read_only`.
    pub read_only: bool,
    pub refresh: Overrides,
    pub backups: crate::fsx::Backups,
    pub user_actions: Vec<UserAction>,
    pub ui: UiSettings,
}

/// Every top-level key the config file may have.
pub fn known_sections() -> Vec<&'static str> {
    let mut all = registry::sections();
    all.extend(crate::actions::SECTIONS);
    all.extend(crate::serve::SECTIONS);
    all
}

/// Load the config file: the named one (must exist) or the default one (may be absent).
pub fn load_config(named: Option<&PathBuf>) -> Result<Document, ConfigError> {
    let known = known_sections();
    match named {
        Some(p) => Document::load(p, true, &known),
        None => match config::default_path() {
            Some(p) => {
                let mut d = Document::load(&p, false, &known)?;
                if d.path.is_none() {
                    d.path = Some(p);
                }
                Ok(d)
            }
            None => Ok(Document::empty()),
        },
    }
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Settings {
    /// Resolve the settings of a command: its probe flags over the config file over defaults.
    pub fn resolve(
        cli: &crate::cli::Cli,
        probe_args: &ProbeArgs,
    ) -> Result<Settings, SettingsError> {
        let doc = load_config(cli.config.as_ref())?;
        Settings::resolve_with(doc, cli, probe_args)
    }

    /// As [`Settings::resolve`], with the config document already loaded.
    pub fn resolve_with(
        doc: Document,
        cli: &crate::cli::Cli,
        args: &ProbeArgs,
    ) -> Result<Settings, SettingsError> {
        let core = doc.core()?;
        let def = Thresholds::default();
        let warn = args.warn.or(core.thresholds.warn);
        let crit = args.crit.or(core.thresholds.crit);
        let thresholds = Thresholds {
            warn_secs: warn.map(|d| d.as_secs() as i64).unwrap_or(def.warn_secs),
            crit_secs: crit.map(|d| d.as_secs() as i64).unwrap_or(def.crit_secs),
            warn_lifetime_pct: args
                .warn_lifetime_used
                .or(core.thresholds.warn_lifetime_used)
                .unwrap_or(def.warn_lifetime_pct),
            crit_lifetime_pct: args
                .crit_lifetime_used
                .or(core.thresholds.crit_lifetime_used)
                .unwrap_or(def.crit_lifetime_pct),
            short_lived_secs: args
                .short_lived
                .or(core.thresholds.short_lived)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(def.short_lived_secs),
        };
        let (wl, cl) = (thresholds.warn_lifetime_pct, thresholds.crit_lifetime_pct);
        if cl < wl || !(1..=100).contains(&wl) || !(1..=100).contains(&cl) {
            return Err(SettingsError::LifetimeThresholds { warn: wl, crit: cl });
        }
        if thresholds.crit_secs > thresholds.warn_secs {
            return Err(SettingsError::Thresholds {
                warn: human(Duration::from_secs(thresholds.warn_secs as u64)),
                crit: human(Duration::from_secs(thresholds.crit_secs as u64)),
            });
        }
        let timeout = args
            .timeout
            .or(core.probe.timeout)
            .unwrap_or(Duration::from_secs(5));
        if timeout.is_zero() {
            return Err(SettingsError::Timeout);
        }
        let concurrency = args
            .concurrency
            .or(core.probe.concurrency)
            .unwrap_or(DEFAULT_CONCURRENCY);
        if concurrency == 0 {
            return Err(SettingsError::Concurrency);
        }
        let mut ca_files = args.ca_files.clone();
        ca_files.extend(core.ca_files.iter().cloned());
        let k8s_read_only = doc
            .section::<crate::sources::k8s::KubernetesConfig>("kubernetes")?
            .is_some_and(|k| k.read_only);
        let mut refresh = Overrides::default();
        for (kind, r) in &core.refresh {
            refresh.by_kind.insert(
                kind.clone(),
                ScheduleOverride {
                    interval: r.interval,
                    timeout: r.timeout,
                },
            );
        }
        let mut backups = crate::fsx::Backups::in_data_dir();
        if let Some(k) = core.backups.keep {
            backups.keep = k;
        }
        if let Some(a) = core.backups.max_age {
            backups.max_age = a;
        }
        let user_actions: Vec<UserAction> = doc.section("action")?.unwrap_or_default();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let ui = UiSettings {
            theme: cli
                .theme
                .clone()
                .or_else(|| core.ui.theme.clone())
                .unwrap_or_else(|| if no_color { "monochrome" } else { "dark" }.into()),
            mouse: !cli.no_mouse && core.ui.mouse.unwrap_or(true),
            redact: cli.redact || core.ui.redact.unwrap_or(false),
        };
        Ok(Settings {
            probe: ProbeSettings {
                timeout,
                concurrency,
                ca_files,
                extra_roots: Vec::new(),
                revocation: !args.no_revocation && core.probe.revocation.unwrap_or(true),
            },
            thresholds,
            read_only: cli.read_only || core.read_only || k8s_read_only,
            refresh,
            backups,
            user_actions,
            ui,
            config: doc,
        })
    }

    /// Build the sources for `purpose` from the command's matches (with the plugins' flags)
    /// and its positional arguments, or from the config file when those name nothing.
    pub fn sources(
        &self,
        matches: Option<&clap::ArgMatches>,
        positional: &[String],
        purpose: &Purpose,
    ) -> Result<Vec<Arc<dyn Source>>, SettingsError> {
        let named = registry::command_line_names_something(matches, positional);
        let from_config = !named || matches!(purpose, Purpose::FindRows(_));
        let ctx = BuildContext {
            matches,
            config: &self.config,
            probe: &self.probe,
            positional,
            from_config,
            purpose,
        };
        Ok(registry::build_all(&ctx)?)
    }

    /// The action session over these sources' backends, the user actions and `extra`.
    pub fn session(
        &self,
        sources: &[Arc<dyn Source>],
        extra: Vec<Arc<dyn Backend>>,
        options: ActionOptions,
    ) -> Session {
        let mut backends: Vec<Arc<dyn Backend>> = extra;
        for s in sources {
            backends.extend(s.actions());
        }
        backends.push(Arc::new(HookBackend {
            actions: self.user_actions.clone(),
        }));
        Session::new(
            backends,
            self.read_only,
            AuditLog::default_path().map(AuditLog::new),
        )
        .with_options(ActionOptions {
            backups: self.backups.clone(),
            ..options
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_shipped_examples_parse() {
        let known = known_sections();
        let c = Document::parse(
            Path::new("assets/config.example.toml"),
            include_str!("../assets/config.example.toml"),
            &known,
        )
        .unwrap();
        assert_eq!(
            c.core().unwrap().thresholds.crit,
            Some(Duration::from_secs(7 * 86400))
        );
        let a = Document::parse(
            Path::new("assets/actions.example.toml"),
            include_str!("../assets/actions.example.toml"),
            &known,
        )
        .unwrap();
        let actions: Vec<UserAction> = a.section("action").unwrap().unwrap();
        assert_eq!(actions.len(), 3);
        assert!(actions[0].dangerous && actions[0].command.contains("{path}"));
        assert!(!actions[2].confirm);
        for action in &actions {
            assert!(
                crate::config::keymap::parse_key(&action.key).is_some(),
                "{}",
                action.key
            );
            assert!(crate::actions::hooks::translate(&action.command).is_ok());
        }
    }
}
