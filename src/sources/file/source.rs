//! The certificate file source (`file`): files, directories and globs from the command line
//! (`-f/--file`, and `scan`'s positional arguments that name existing paths) or the config
//! file (`files`), read on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use super::{expand, read_file, FileEntry};
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::{BoxFut, RoundEnd, Schedule, Sink, Source, SourceId};

/// The file source's flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Certificate files")]
pub struct FileArgs {
    /// Certificate file, directory (walked recursively) or glob (repeatable).
    #[arg(id = "file_paths", short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<String>,
}

pub struct FilePlugin;
pub static PLUGIN: FilePlugin = FilePlugin;

impl Plugin for FilePlugin {
    fn kind(&self) -> SourceKind {
        SourceKind::FILE
    }

    fn sections(&self) -> &'static [&'static str] {
        &["files"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <FileArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <FileArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| !a.files.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: FileArgs = ctx.flags()?.unwrap_or_default();
        let mut specs = ctx.positional_paths();
        specs.extend(args.files);
        if ctx.from_config {
            specs.extend(
                ctx.config
                    .section::<Vec<String>>("files")?
                    .unwrap_or_default(),
            );
        }
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        Ok(vec![Arc::new(FileSource::new(specs))])
    }
}

/// Files, directories and globs, read on the blocking pool.
pub struct FileSource {
    id: SourceId,
    pub specs: Vec<String>,
    schedule: Schedule,
}

impl FileSource {
    pub fn new(specs: Vec<String>) -> FileSource {
        FileSource {
            id: SourceId::new(SourceKind::FILE, ""),
            specs,
            schedule: Schedule::every(Duration::from_secs(60), Duration::from_secs(300)),
        }
    }

    /// The same source under another instance label and schedule.
    pub fn named(mut self, instance: &str, schedule: Schedule) -> FileSource {
        self.id = SourceId::new(SourceKind::FILE, instance);
        self.schedule = schedule;
        self
    }
}

/// Read files on the blocking pool, sending records as they are read; false when nobody
/// listens any more.
pub async fn read_specs(specs: Vec<String>, sink: &Sink, plan: bool) -> bool {
    let sink2 = sink.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Handle::current();
        let now = crate::clock::now_unix();
        let exp = expand(&specs, now);
        if plan {
            rt.block_on(sink2.planned(exp.files.len() + exp.problems.len()));
        }
        for r in exp.problems {
            if !rt.block_on(sink2.observed(r)) {
                return false;
            }
        }
        for f in &exp.files {
            for r in read_file(f, now) {
                if !rt.block_on(sink2.observed(r)) {
                    return false;
                }
            }
        }
        true
    });
    handle.await.unwrap_or_else(|e| {
        tracing::error!("file reader task failed: {e}");
        false
    })
}

impl Source for FileSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            if read_specs(self.specs.clone(), sink, true).await {
                RoundEnd::complete()
            } else {
                RoundEnd::abandoned()
            }
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let mut paths: Vec<String> = rows
                .iter()
                .filter(|r| r.source == SourceKind::FILE)
                .map(|r| file_of(&r.location).to_owned())
                .collect();
            paths.dedup();
            let sink2 = sink.clone();
            let ok = tokio::task::spawn_blocking(move || {
                let rt = tokio::runtime::Handle::current();
                let now = crate::clock::now_unix();
                for p in paths {
                    let entry = FileEntry {
                        path: p.into(),
                        explicit: true,
                    };
                    for r in read_file(&entry, now) {
                        if !rt.block_on(sink2.observed(r)) {
                            return false;
                        }
                    }
                }
                true
            })
            .await
            .unwrap_or(false);
            if ok {
                RoundEnd::complete()
            } else {
                RoundEnd::abandoned()
            }
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }
}

/// The file of a file row's location (`path`, or `path#N` for the Nth certificate).
pub fn file_of(location: &str) -> &str {
    match location.rsplit_once('#') {
        Some((p, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => p,
        _ => location,
    }
}
