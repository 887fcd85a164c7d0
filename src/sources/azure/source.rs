//! The Azure plugin: its flag (`--azure-vault`, repeatable), its `[[azure]]` config blocks,
//! and one source instance per vault, labelled with the vault's name.

use std::sync::Arc;
use std::time::Duration;

use super::actions::AzureBackend;
use super::client::Vault;
use super::error::AzError;
use super::read;
use super::settings::{AzureArgs, AzureConfig, AzureSettings};
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::{
    BoxFut, ProbeSettings, Problem, RoundEnd, Schedule, Sink, Source, SourceId, Unusable,
};

pub use super::facts::KIND;

pub struct AzurePlugin;
pub static PLUGIN: AzurePlugin = AzurePlugin;

impl Plugin for AzurePlugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["azure"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <AzureArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <AzureArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| a.given())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: AzureArgs = ctx.flags()?.unwrap_or_default();
        let blocks: Vec<AzureConfig> = ctx.config.section("azure")?.unwrap_or_default();
        let finding = matches!(ctx.purpose, Purpose::FindRows(_));
        let settings: Vec<AzureSettings> = if args.given() {
            args.resolve(&blocks, ctx.probe.timeout)
                .map_err(BuildError::Invalid)?
        } else if ctx.from_config || finding {
            blocks
                .iter()
                .map(|b| b.resolve(ctx.probe.timeout))
                .collect::<Result<_, _>>()
                .map_err(BuildError::Invalid)?
        } else {
            return Ok(Vec::new());
        };
        Ok(settings
            .into_iter()
            .map(|s| source_for(s, ctx.probe))
            .collect())
    }
}

/// The source of one vault (an unusable one when its client cannot be made).
pub fn source_for(settings: AzureSettings, probe: &ProbeSettings) -> Arc<dyn Source> {
    let id = SourceId::new(KIND, settings.label());
    match Vault::open(&settings, probe) {
        Ok(v) => Arc::new(AzureSource {
            id,
            vault: Arc::new(v),
        }),
        Err(e) => Arc::new(Unusable {
            id,
            problem: problem(&e),
        }),
    }
}

/// The supervisor's problem for an Azure error.
pub fn problem(e: &AzError) -> Problem {
    Problem::new(e.class(), e.to_string())
}

/// One vault.
pub struct AzureSource {
    id: SourceId,
    vault: Arc<Vault>,
}

impl Source for AzureSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        // Certificates change rarely: every 15 minutes; each request has its own timeout.
        Schedule::every(Duration::from_secs(900), Duration::from_secs(1800))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            match read::read_vault(&self.vault, sink).await {
                Ok(o) => match o.problem {
                    Some(p) => RoundEnd::partial(problem(&p)),
                    None => RoundEnd::complete(),
                },
                Err(e) => RoundEnd::failed(problem(&e)),
            }
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let mut names: Vec<String> = rows
                .iter()
                .filter_map(|r| read::parse_id(&r.location).map(|(n, _)| n))
                .collect();
            names.dedup();
            if names.is_empty() {
                return self.round(sink).await;
            }
            let mut first = None;
            for n in names {
                let (recs, p) = read::observe_certificate(&self.vault, &n).await;
                for r in recs {
                    if !sink.observed(r).await {
                        return RoundEnd::abandoned();
                    }
                }
                if first.is_none() {
                    first = p;
                }
            }
            match first {
                Some(p) => RoundEnd::partial(problem(&p)),
                None => RoundEnd {
                    complete: false,
                    problem: None,
                },
            }
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }

    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        vec![Arc::new(AzureBackend {
            vault: self.vault.clone(),
        })]
    }
}
