//! The SPIFFE plugin: its flags (`--spiffe`, `--spiffe-socket`), its `[[spiffe]]` config
//! blocks, and one source instance per Workload API socket, labelled with the socket path
//! (or the block's `label`).
//!
//! A round opens `FetchX509SVID`, takes the agent's first answer within the time limit, and
//! closes the stream. The live feed keeps the stream open: each update the agent pushes (a
//! rotation, an identity added or removed) is sent at once. When the stream breaks, the feed
//! asks for a round (which says why in the health line), reconnects with a backoff, and a
//! round that finds the agent back wakes it at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::error::SpiffeError;
use super::settings::{SettingsError, SpiffeArgs, SpiffeConfig, SpiffeSettings, ENDPOINT_ENV};
use super::{rows, wire, KIND};
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::{
    BoxFut, Problem, ProblemKind, RoundEnd, Schedule, Sink, Source, SourceId, Unusable,
};

/// First pause before the live feed reconnects; doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct SpiffePlugin;
pub static PLUGIN: SpiffePlugin = SpiffePlugin;

impl Plugin for SpiffePlugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["spiffe"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <SpiffeArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <SpiffeArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| a.given())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: SpiffeArgs = ctx.flags()?.unwrap_or_default();
        let blocks: Vec<SpiffeConfig> = ctx.config.section("spiffe")?.unwrap_or_default();
        let env = std::env::var(ENDPOINT_ENV).ok();
        let timeout = ctx.probe.timeout;
        let settings = if args.given() {
            args.resolve(env.as_deref(), &blocks, timeout)
        } else if ctx.from_config || matches!(ctx.purpose, Purpose::FindRows(_)) {
            blocks
                .iter()
                .map(|b| b.resolve(env.as_deref(), timeout))
                .collect()
        } else {
            return Ok(Vec::new());
        };
        Ok(settings
            .into_iter()
            .map(|s| match s {
                Ok(s) => Arc::new(SpiffeSource::new(s)) as Arc<dyn Source>,
                Err(e) => {
                    let label = match &e {
                        SettingsError::NoSocket => ENDPOINT_ENV.to_owned(),
                        SettingsError::Invalid { socket, .. } => socket.clone(),
                    };
                    Arc::new(Unusable {
                        id: SourceId::new(KIND, label),
                        problem: Problem::new(ProblemKind::Config, e.to_string()),
                    }) as Arc<dyn Source>
                }
            })
            .collect())
    }
}

/// One Workload API socket.
pub struct SpiffeSource {
    id: SourceId,
    settings: SpiffeSettings,
    /// Row ids of the last answer (a round's or the stream's), so the stream can say which
    /// identities went away.
    last_ids: Mutex<HashSet<String>>,
    /// Why the live stream is down, while it is.
    stream_down: Mutex<Option<String>>,
    /// A round found the agent answering: the feed reconnects now instead of after its pause.
    reconnect: Notify,
}

/// The health-line problem of an error.
pub fn problem(e: &SpiffeError) -> Problem {
    Problem::new(e.class(), e.to_string())
}

/// How the live feed's stream ended.
enum Ended {
    /// Nobody listens any more.
    Stop,
    /// It broke (or could not be opened); `delivered`: it had sent at least one answer.
    Broke { error: SpiffeError, delivered: bool },
}

impl SpiffeSource {
    pub fn new(settings: SpiffeSettings) -> SpiffeSource {
        SpiffeSource {
            id: SourceId::new(KIND, settings.label.clone()),
            settings,
            last_ids: Mutex::new(HashSet::new()),
            stream_down: Mutex::new(None),
            reconnect: Notify::new(),
        }
    }

    pub fn settings(&self) -> &SpiffeSettings {
        &self.settings
    }

    fn rows_of(&self, m: &wire::X509SvidResponse) -> Vec<Record> {
        rows::records(m, &self.settings.socket, crate::clock::now_unix())
    }

    /// Remember the ids of an answer; the ids that the previous answer had and this one has not.
    fn swap_ids(&self, recs: &[Record]) -> Vec<String> {
        let new: HashSet<String> = recs.iter().map(|r| r.id.clone()).collect();
        let Ok(mut last) = self.last_ids.lock() else {
            return Vec::new();
        };
        let gone = last.difference(&new).cloned().collect();
        *last = new;
        gone
    }

    fn set_down(&self, why: Option<String>) -> Option<String> {
        match self.stream_down.lock() {
            Ok(mut g) => std::mem::replace(&mut *g, why),
            Err(_) => None,
        }
    }

    fn down(&self) -> Option<String> {
        self.stream_down.lock().ok().and_then(|g| g.clone())
    }

    /// Follow one stream until it breaks: every answer's rows are sent, vanished ones removed.
    async fn follow(&self, sink: &Sink) -> Ended {
        let mut updates = match wire::open(&self.settings).await {
            Ok(u) => u,
            Err(error) => {
                return Ended::Broke {
                    error,
                    delivered: false,
                }
            }
        };
        let mut delivered = false;
        loop {
            let m = match wire::next(&self.settings.socket, &mut updates).await {
                Ok(Some(m)) => m,
                Ok(None) => {
                    return Ended::Broke {
                        error: SpiffeError::StreamEnded {
                            socket: self.settings.socket.clone(),
                        },
                        delivered,
                    }
                }
                Err(error) => return Ended::Broke { error, delivered },
            };
            if !delivered {
                delivered = true;
                if self.set_down(None).is_some() {
                    tracing::info!("{}: update stream open again", self.id);
                    // The health line said the stream was down: a round clears it.
                    sink.request_round();
                }
            }
            let recs = self.rows_of(&m);
            let gone = self.swap_ids(&recs);
            tracing::debug!(
                "{}: update: {} rows, {} gone",
                self.id,
                recs.len(),
                gone.len()
            );
            for r in recs {
                if !sink.observed(r).await {
                    return Ended::Stop;
                }
            }
            for id in gone {
                if !sink.removed(id).await {
                    return Ended::Stop;
                }
            }
        }
    }
}

impl Source for SpiffeSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        // The stream carries rotations; rounds are the safety net (and the scan).
        Schedule::every(
            Duration::from_secs(300),
            self.settings.timeout * 3 + Duration::from_secs(5),
        )
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let read = async {
                let mut u = wire::open(&self.settings).await?;
                wire::first(&self.settings, &mut u).await
            };
            let m = match read.await {
                Ok(m) => m,
                Err(e) => return RoundEnd::failed(problem(&e)),
            };
            let recs = self.rows_of(&m);
            self.swap_ids(&recs);
            if !sink.planned(recs.len()).await {
                return RoundEnd::abandoned();
            }
            for r in recs {
                if !sink.observed(r).await {
                    return RoundEnd::abandoned();
                }
            }
            match self.down() {
                None => RoundEnd::complete(),
                Some(why) => {
                    // The agent answers again: the feed need not wait for its pause.
                    self.reconnect.notify_one();
                    RoundEnd {
                        complete: true,
                        problem: Some(Problem::new(
                            ProblemKind::Unreachable,
                            format!("the update stream broke ({why}); reconnecting"),
                        )),
                    }
                }
            }
        })
    }

    fn live<'a>(&'a self, sink: &'a Sink) -> Option<BoxFut<'a, ()>> {
        Some(Box::pin(async move {
            let mut pause = FIRST_BACKOFF;
            loop {
                let (error, delivered) = match self.follow(sink).await {
                    Ended::Stop => return,
                    Ended::Broke { error, delivered } => (error, delivered),
                };
                if sink.is_closed() {
                    return;
                }
                if delivered {
                    pause = FIRST_BACKOFF;
                }
                tracing::warn!("{}: update stream: {error}", self.id);
                if self.set_down(Some(error.to_string())).is_none() {
                    // Newly down: a round now puts the reason in the health line.
                    sink.request_round();
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = self.reconnect.notified() => {}
                }
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }))
    }
}
