//! The PKCS#11 plugin: the `--pkcs11-module PATH` flag, the `[[pkcs11]]` config blocks, and one
//! source instance per module (and token, when a block names one). Each round reads the module
//! on a thread of its own under the block's time limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::read::{module_cell, read_module, RefusedPins};
use super::rows::{nothing_to_read, records};
use super::{Pkcs11Config, Pkcs11Error, Pkcs11Settings, KIND, PIN_ENV};
use crate::model::SourceKind;
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::{BoxFut, Problem, RoundEnd, Schedule, Sink, Source, SourceId};

/// The PKCS#11 flags. The PIN never comes from the command line: a `[[pkcs11]]` block for the
/// same module, else the environment variable `CERTDECK_PKCS11_PIN`.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "PKCS#11 tokens (HSMs)")]
pub struct Pkcs11Args {
    /// Read the certificate objects of every initialised token of this PKCS#11 module
    /// (repeatable; PIN from its [[pkcs11]] block or CERTDECK_PKCS11_PIN).
    #[arg(long = "pkcs11-module", value_name = "PATH")]
    pub modules: Vec<String>,
}

pub struct Pkcs11Plugin;
pub static PLUGIN: Pkcs11Plugin = Pkcs11Plugin;

/// Tokens change rarely; a read is quick unless the module hangs.
const INTERVAL: Duration = Duration::from_secs(300);

fn same_module(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// Read and check the `[[pkcs11]]` blocks: each resolves, and no (module, token) twice.
pub fn read_config(
    doc: &crate::config::Document,
    env_pin: bool,
) -> Result<Vec<Pkcs11Settings>, BuildError> {
    let blocks: Vec<Pkcs11Config> = doc.section("pkcs11")?.unwrap_or_default();
    let mut out: Vec<Pkcs11Settings> = Vec::new();
    for b in &blocks {
        let s = b
            .resolve(env_pin)
            .map_err(|e| BuildError::Invalid(format!("{}: {e}", doc.name())))?;
        if out
            .iter()
            .any(|o| same_module(&o.module, &s.module) && o.filter == s.filter)
        {
            return Err(BuildError::Invalid(format!(
                "{}: [[pkcs11]] blocks name module {} {} twice",
                doc.name(),
                s.module,
                if s.filter.is_all() {
                    "(every token)".to_owned()
                } else {
                    s.filter.describe()
                }
            )));
        }
        out.push(s);
    }
    Ok(out)
}

impl Plugin for Pkcs11Plugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["pkcs11"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <Pkcs11Args as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <Pkcs11Args as clap::FromArgMatches>::from_arg_matches(m)
            .is_ok_and(|a| !a.modules.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: Pkcs11Args = ctx.flags()?.unwrap_or_default();
        let env_pin = std::env::var_os(PIN_ENV).is_some();
        let blocks = read_config(ctx.config, env_pin)?;
        let mut chosen: Vec<Pkcs11Settings> = Vec::new();
        for m in &args.modules {
            let mut mine: Vec<Pkcs11Settings> = blocks
                .iter()
                .filter(|b| same_module(&b.module, m))
                .cloned()
                .collect();
            if mine.is_empty() {
                mine.push(
                    Pkcs11Config {
                        module: m.clone(),
                        ..Pkcs11Config::default()
                    }
                    .resolve(env_pin)
                    .map_err(BuildError::Invalid)?,
                );
            }
            for s in mine {
                if !chosen.contains(&s) {
                    chosen.push(s);
                }
            }
        }
        if ctx.from_config {
            for b in blocks {
                if !chosen.contains(&b) {
                    chosen.push(b);
                }
            }
        }
        Ok(chosen
            .into_iter()
            .map(|s| Arc::new(Pkcs11Source::new(s)) as Arc<dyn Source>)
            .collect())
    }
}

/// One module (and token filter).
pub struct Pkcs11Source {
    id: SourceId,
    settings: Pkcs11Settings,
    refused: Arc<RefusedPins>,
}

impl Pkcs11Source {
    pub fn new(settings: Pkcs11Settings) -> Pkcs11Source {
        Pkcs11Source {
            id: SourceId::new(KIND, settings.label()),
            settings,
            refused: Arc::new(RefusedPins::default()),
        }
    }

    /// Read the module on a thread of its own within the time limit. The module's lock is
    /// taken first (within the same limit) and handed to the thread, which keeps it until the
    /// module returns: a hung module blocks later reads of it, not the process.
    pub async fn read(&self) -> Result<super::rows::ModuleRead, Pkcs11Error> {
        let s = &self.settings;
        let start = Instant::now();
        let cell = module_cell(&s.module);
        let guard = match tokio::time::timeout(s.timeout, cell.lock.clone().lock_owned()).await {
            Ok(g) => g,
            Err(_) => {
                return Err(Pkcs11Error::Busy {
                    path: s.module.clone(),
                    call: cell.calls.current(),
                })
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let calls = cell.calls.clone();
        let settings = s.clone();
        let refused = self.refused.clone();
        calls.enter("starting");
        let spawned = std::thread::Builder::new()
            .name("pkcs11".to_owned())
            .spawn(move || {
                let mut guard = guard;
                let r = read_module(&settings, &mut guard, &calls, &refused);
                calls.enter("idle");
                drop(guard);
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            return Err(Pkcs11Error::Internal {
                path: s.module.clone(),
                why: e.to_string(),
            });
        }
        let left = s.timeout.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Pkcs11Error::Internal {
                path: s.module.clone(),
                why: "the reading thread stopped without an answer".to_owned(),
            }),
            Err(_) => Err(Pkcs11Error::Timeout {
                path: s.module.clone(),
                call: cell.calls.current(),
                secs: s.timeout.as_secs().max(1),
            }),
        }
    }
}

impl Source for Pkcs11Source {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        // The round's limit leaves room for the read's own, which names the hung call.
        Schedule::every(INTERVAL, self.settings.timeout + Duration::from_secs(10))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let read = match self.read().await {
                Ok(r) => r,
                Err(e) => return RoundEnd::failed(Problem::new(e.class(), e.to_string())),
            };
            if let Some(e) = nothing_to_read(&self.settings, &read) {
                return RoundEnd::failed(Problem::new(e.class(), e.to_string()));
            }
            let now = crate::clock::now_unix();
            let (recs, problems) = records(&self.settings, &read, now);
            if !sink.planned(recs.len()).await {
                return RoundEnd::abandoned();
            }
            for r in recs {
                if !sink.observed(r).await {
                    return RoundEnd::abandoned();
                }
            }
            let mut problems = problems.into_iter();
            match problems.next() {
                None => RoundEnd::complete(),
                Some(first) => {
                    let mut msg = first.message.clone();
                    for p in problems {
                        msg.push_str("; ");
                        msg.push_str(&p.message);
                    }
                    // Private objects may be missing: rows not seen now are kept (stale).
                    RoundEnd::partial(Problem::new(first.kind, msg))
                }
            }
        })
    }
}
