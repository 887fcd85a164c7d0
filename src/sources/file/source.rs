//! The certificate file source (`file`): files, directories and globs from the command line
//! (`-f/--file`, and `scan`'s positional arguments that name existing paths) or the config
//! file (`files`), read on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use super::{expand, read_file_with, FileEntry};
use crate::model::{Record, SourceKind};
use crate::sources::keystore::{KeystoreConfig, Passwords};
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::revocation::SourceChecks;
use crate::sources::{BoxFut, ProbeSettings, RoundEnd, Schedule, Sink, Source, SourceId};

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
        &["files", "keystores"]
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
        // Keystore passwords apply to files named on the command line too.
        let blocks = ctx
            .config
            .section::<Vec<KeystoreConfig>>("keystores")?
            .unwrap_or_default();
        let passwords = Passwords::from_config(&blocks).map_err(BuildError::Invalid)?;
        Ok(vec![Arc::new(
            FileSource::new(specs)
                .with_probe(ctx.probe.clone())
                .with_passwords(passwords),
        )])
    }
}

/// Files, directories and globs, read on the blocking pool.
pub struct FileSource {
    id: SourceId,
    pub specs: Vec<String>,
    schedule: Schedule,
    /// Revocation checks of the leaves read, and how many run at once.
    revocation: Option<(Arc<SourceChecks>, usize)>,
    /// Keystore passwords (`[[keystores]]`).
    passwords: Arc<Passwords>,
}

impl FileSource {
    pub fn new(specs: Vec<String>) -> FileSource {
        FileSource {
            id: SourceId::new(SourceKind::FILE, ""),
            specs,
            schedule: Schedule::every(Duration::from_secs(60), Duration::from_secs(300)),
            revocation: None,
            passwords: Arc::default(),
        }
    }

    /// Open keystores with these passwords (else the empty password only).
    pub fn with_passwords(mut self, passwords: Passwords) -> FileSource {
        self.passwords = Arc::new(passwords);
        self
    }

    /// Check the revocation of the leaves read, as the probe settings say (on by default;
    /// bounded by their timeout and concurrency).
    pub fn with_probe(mut self, settings: ProbeSettings) -> FileSource {
        self.revocation =
            SourceChecks::for_probe(&settings).map(|c| (c, settings.concurrency.max(1)));
        self
    }

    fn checks(&self, fresh: bool) -> Option<Checks> {
        self.revocation
            .as_ref()
            .map(|(c, n)| (c.clone(), *n, fresh))
    }

    /// The same source under another instance label and schedule.
    pub fn named(mut self, instance: &str, schedule: Schedule) -> FileSource {
        self.id = SourceId::new(SourceKind::FILE, instance);
        self.schedule = schedule;
        self
    }
}

/// Read files on the blocking pool, sending records as they are read; false when nobody
/// listens any more. `specs` are expanded (directories walked, globs matched) first; with
/// `plan`, the number of files is announced.
pub async fn read_specs(specs: Vec<String>, sink: &Sink, plan: bool) -> bool {
    read_on_blocking_pool(sink, None, Arc::default(), move |now| {
        let exp = expand(&specs, now);
        (exp.files, exp.problems, plan)
    })
    .await
}

/// Revocation checks, how many at once, and whether to ask afresh (a re-read).
type Checks = (Arc<SourceChecks>, usize, bool);

/// What the files `what` gives are: entries, problem rows, whether to announce their number.
type Listing = (Vec<FileEntry>, Vec<Record>, bool);

/// Read the files `what` gives, checking revocation with `checks` when given.
async fn read_on_blocking_pool(
    sink: &Sink,
    checks: Option<Checks>,
    passwords: Arc<Passwords>,
    what: impl FnOnce(i64) -> Listing + Send + 'static,
) -> bool {
    match checks {
        None => read_plain(sink, passwords, what).await,
        Some(c) => read_checked(sink, c, passwords, what).await,
    }
}

/// Records read on the blocking pool go through `checks` (at most `n` at once) to the sink.
/// Each record travels with the certificates of its file: a leaf's issuer is often its
/// neighbour (`fullchain.pem`).
async fn read_checked(
    sink: &Sink,
    (checks, n, fresh): Checks,
    passwords: Arc<Passwords>,
    what: impl FnOnce(i64) -> Listing + Send + 'static,
) -> bool {
    use futures::StreamExt as _;
    type Item = (Record, Arc<Vec<Arc<crate::model::CertFacts>>>);
    let (tx, rx) = tokio::sync::mpsc::channel::<Item>(256);
    let sink2 = sink.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Handle::current();
        let now = crate::clock::now_unix();
        let (files, problems, plan) = what(now);
        // The files to read, first; once read, the rows they held (a bundle holds several
        // certificates, a key file none), so the progress ends at n/n.
        if plan {
            rt.block_on(sink2.planned(files.len() + problems.len()));
        }
        let none = Arc::new(Vec::new());
        let mut sent = problems.len();
        for r in problems {
            if rt.block_on(tx.send((r, none.clone()))).is_err() {
                return false;
            }
        }
        for f in &files {
            let recs = read_file_with(f, now, &passwords);
            sent += recs.len();
            let certs = Arc::new(recs.iter().filter_map(|r| r.cert.clone()).collect());
            for r in recs {
                if rt.block_on(tx.send((r, Arc::clone(&certs)))).is_err() {
                    return false;
                }
            }
        }
        if plan {
            rt.block_on(sink2.planned(sent));
        }
        true
    });
    let incoming = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut checked = Box::pin(
        incoming
            .map(|(mut rec, others): Item| {
                let checks = checks.clone();
                async move {
                    checks.check(&mut rec, None, &others, fresh).await;
                    rec
                }
            })
            .buffer_unordered(n),
    );
    let mut listening = true;
    while let Some(rec) = checked.next().await {
        if !sink.observed(rec).await {
            listening = false;
            break;
        }
    }
    // Dropping the stream closes the channel, so an abandoned reader stops.
    drop(checked);
    let read_all = reader.await.unwrap_or_else(|e| {
        tracing::error!("file reader task failed: {e}");
        false
    });
    listening && read_all
}

/// Read the files `what` gives straight to the sink.
async fn read_plain(
    sink: &Sink,
    passwords: Arc<Passwords>,
    what: impl FnOnce(i64) -> Listing + Send + 'static,
) -> bool {
    let sink2 = sink.clone();
    let handle = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Handle::current();
        let now = crate::clock::now_unix();
        let (files, problems, plan) = what(now);
        // The files to read, first; once read, the rows they held (a bundle holds several
        // certificates, a key file none), so the progress ends at n/n.
        if plan {
            rt.block_on(sink2.planned(files.len() + problems.len()));
        }
        let mut sent = problems.len();
        for r in problems {
            if !rt.block_on(sink2.observed(r)) {
                return false;
            }
        }
        for f in &files {
            for r in read_file_with(f, now, &passwords) {
                sent += 1;
                if !rt.block_on(sink2.observed(r)) {
                    return false;
                }
            }
        }
        if plan {
            rt.block_on(sink2.planned(sent));
        }
        true
    });
    handle.await.unwrap_or_else(|e| {
        tracing::error!("file reader task failed: {e}");
        false
    })
}

fn end(ok: bool) -> RoundEnd {
    if ok {
        RoundEnd::complete()
    } else {
        RoundEnd::abandoned()
    }
}

impl Source for FileSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        let specs = self.specs.clone();
        Box::pin(async move {
            end(read_on_blocking_pool(
                sink,
                self.checks(false),
                self.passwords.clone(),
                move |now| {
                    let exp = expand(&specs, now);
                    (exp.files, exp.problems, true)
                },
            )
            .await)
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        let mut paths: Vec<String> = rows
            .iter()
            .filter(|r| r.source == SourceKind::FILE)
            .map(|r| file_of(&r.location).to_owned())
            .collect();
        paths.dedup();
        let entries: Vec<FileEntry> = paths
            .into_iter()
            .map(|p| FileEntry {
                path: p.into(),
                explicit: true,
            })
            .collect();
        Box::pin(async move {
            end(
                read_on_blocking_pool(sink, self.checks(true), self.passwords.clone(), move |_| {
                    (entries, Vec::new(), false)
                })
                .await,
            )
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }
}

/// The file of a file row's location (`path`, `path#N` for the Nth certificate, or
/// `path#alias` for a keystore entry).
pub fn file_of(location: &str) -> &str {
    match location.rsplit_once('#') {
        Some((p, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => p,
        _ if std::path::Path::new(location).exists() => location,
        // A keystore alias may itself hold `#`: the first prefix that is a file.
        _ => location
            .match_indices('#')
            .map(|(i, _)| &location[..i])
            .find(|p| std::path::Path::new(p).is_file())
            .unwrap_or(location),
    }
}
