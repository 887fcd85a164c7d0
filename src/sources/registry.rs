//! The source plugins, and how one is built from the command line and the config file.
//!
//! A plugin declares its flags (added to `scan`, the dashboard and the action commands), the
//! config-file sections it reads, and builds its source instances. Adding a source is its
//! module plus one line in [`PLUGINS`].

use std::sync::Arc;

use super::{ProbeSettings, Source};
use crate::config::{ConfigError, Document};
use crate::model::SourceKind;

/// Every source plugin, in the order their flags appear in `--help`.
pub static PLUGINS: &[&dyn Plugin] = &[
    &super::tls::source::PLUGIN,
    &super::file::source::PLUGIN,
    &super::k8s::source::PLUGIN,
    #[cfg(feature = "aws")]
    &super::aws::source::PLUGIN,
    #[cfg(feature = "azure")]
    &super::azure::source::PLUGIN,
    #[cfg(feature = "gcp")]
    &super::gcp::source::PLUGIN,
    &crate::acme::source::PLUGIN,
    &super::vault::source::PLUGIN,
    &super::prometheus::source::PLUGIN,
    &super::proxy::source::PLUGIN,
    #[cfg(feature = "spiffe")]
    &super::spiffe::source::PLUGIN,
    #[cfg(feature = "pkcs11")]
    &super::pkcs11::source::PLUGIN,
];

/// What the sources are built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// `certdeck scan`.
    Scan,
    /// The dashboard (and the exporter): sources run on their schedules.
    Dashboard,
    /// Finding the rows an action command names (ids or locations): a plugin may widen its
    /// scope (every namespace) and skip itself when no id can be its.
    FindRows(Vec<String>),
}

impl Purpose {
    /// For `FindRows`: true when one of the ids could be a row of this kind (`k8s-…` ids are
    /// Kubernetes rows; a location could be anything).
    pub fn may_find(&self, kind: SourceKind) -> bool {
        match self {
            Purpose::FindRows(ids) => ids.iter().any(|id| match id.split_once('-') {
                Some((k, hash))
                    if hash.len() == 10 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
                {
                    k == kind.as_str()
                }
                _ => true,
            }),
            _ => true,
        }
    }
}

/// Everything a plugin builds its sources from.
pub struct BuildContext<'a> {
    /// The parsed command line of the command being run (with every plugin's flags), if any.
    pub matches: Option<&'a clap::ArgMatches>,
    pub config: &'a Document,
    /// Shared probe settings (timeout, concurrency, trust anchors), resolved already.
    pub probe: &'a ProbeSettings,
    /// `scan`'s positional arguments: TLS targets, and paths that exist (read as files).
    pub positional: &'a [String],
    /// The command line names nothing to read, so the config file's inventory is used.
    pub from_config: bool,
    pub purpose: &'a Purpose,
}

impl BuildContext<'_> {
    /// The positional arguments that name existing files or directories.
    pub fn positional_paths(&self) -> Vec<String> {
        self.positional
            .iter()
            .filter(|a| is_existing_path(a))
            .cloned()
            .collect()
    }

    /// The positional arguments that are not paths: TLS targets.
    pub fn positional_targets(&self) -> Vec<String> {
        self.positional
            .iter()
            .filter(|a| !is_existing_path(a))
            .cloned()
            .collect()
    }

    /// This plugin's flags, parsed (`None` when the command does not carry them).
    pub fn flags<T: clap::FromArgMatches>(&self) -> Result<Option<T>, BuildError> {
        match self.matches {
            Some(m) => T::from_arg_matches(m)
                .map(Some)
                .map_err(|e| BuildError::Invalid(e.to_string())),
            None => Ok(None),
        }
    }
}

/// An argument that names a file or directory on this machine (not a URL).
pub fn is_existing_path(arg: &str) -> bool {
    !arg.contains("://") && std::fs::symlink_metadata(arg).is_ok()
}

/// Why sources could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Invalid(String),
}

/// A kind of source: flags, config sections, and how to build its instances.
pub trait Plugin: Sync {
    /// The kind of the rows it produces (also the prefix of their ids).
    fn kind(&self) -> SourceKind;

    /// Every kind of row it produces (when more than one).
    fn row_kinds(&self) -> Vec<SourceKind> {
        vec![self.kind()]
    }

    /// Top-level config-file keys it reads (`kubernetes`, `targets`...).
    fn sections(&self) -> &'static [&'static str];

    /// Add its flags to a command.
    fn flags(&self, cmd: clap::Command) -> clap::Command;

    /// True when the command line names something for this plugin to read.
    fn named(&self, matches: &clap::ArgMatches) -> bool;

    /// Build its source instances (none when there is nothing to read).
    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError>;
}

/// Every plugin's config sections (so the config file knows which top-level keys exist).
pub fn sections() -> Vec<&'static str> {
    PLUGINS
        .iter()
        .flat_map(|p| p.sections().iter().copied())
        .collect()
}

/// Add every plugin's flags to a command.
pub fn add_flags(mut cmd: clap::Command) -> clap::Command {
    for p in PLUGINS {
        // A derived `Args` struct's doc comment would become the command's description: keep
        // the command's own.
        let (about, long_about) = (cmd.get_about().cloned(), cmd.get_long_about().cloned());
        cmd = p.flags(cmd);
        cmd = match about {
            Some(a) => cmd.about(a),
            None => cmd.about(None::<&str>),
        };
        cmd = match long_about {
            Some(a) => cmd.long_about(a),
            None => cmd.long_about(None::<&str>),
        };
    }
    cmd
}

/// True when the command line names anything to read (positional arguments or a plugin flag).
pub fn command_line_names_something(
    matches: Option<&clap::ArgMatches>,
    positional: &[String],
) -> bool {
    !positional.is_empty() || matches.is_some_and(|m| PLUGINS.iter().any(|p| p.named(m)))
}

/// Build every plugin's sources.
pub fn build_all(ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
    let mut out = Vec::new();
    for p in PLUGINS {
        if p.row_kinds().into_iter().any(|k| ctx.purpose.may_find(k)) {
            out.extend(p.build(ctx)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_their_kind_and_locations_could_be_anything() {
        let p = Purpose::FindRows(vec!["k8s-0123456789".into()]);
        assert!(p.may_find(SourceKind::K8S));
        assert!(!p.may_find(SourceKind::TLS));
        let p = Purpose::FindRows(vec!["prod/shop/secret/web#tls.crt".into()]);
        assert!(p.may_find(SourceKind::TLS) && p.may_find(SourceKind::K8S));
        assert!(Purpose::Scan.may_find(SourceKind::FILE));
    }

    #[test]
    fn existing_paths_are_files_and_urls_are_not() {
        assert!(is_existing_path("/"));
        assert!(!is_existing_path("https://example.com"));
        assert!(!is_existing_path("no-such-host.invalid:443"));
    }
}
