//! The TLS endpoint source (`tls`): targets from the command line (`scan`'s positional
//! arguments that are not paths, `-t/--target`, `--targets-file`) or the config file
//! (`targets`, `targets_files`), probed with bounded concurrency.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::TlsProber;
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::revocation::SourceChecks;
use crate::sources::starttls::StarttlsMode;
use crate::sources::{
    build_prober, BoxFut, ProbeSettings, Problem, ProblemKind, RoundEnd, Schedule, Sink, Source,
    SourceId, Target,
};

/// Largest targets file read.
const MAX_TARGETS_FILE: u64 = 16 * 1024 * 1024;

/// The TLS source's flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "TLS endpoints")]
pub struct TlsArgs {
    /// A TLS target (repeatable): host:port, host (443), https://host[:port][/path], [v6]:port,
    /// addr:port@sni; STARTTLS first: smtp://, imap://, pop3://, ftp://, postgres://, mysql://,
    /// ldap://, xmpp://host[:port][?domain=D].
    #[arg(id = "tls_target", short = 't', long = "target", value_name = "TARGET")]
    pub targets: Vec<String>,
    /// File with one target per line (# comments allowed; repeatable).
    #[arg(id = "tls_targets_file", long = "targets-file", value_name = "PATH")]
    pub targets_files: Vec<PathBuf>,
    /// Name to send as SNI and verify against, for targets that do not give one with @name.
    #[arg(id = "tls_sni", long = "sni", value_name = "NAME")]
    pub sni: Option<String>,
    /// Protocol of plain host:port targets: smtp, imap, pop3, ftp, postgres, postgres-direct,
    /// mysql, ldap, xmpp, xmpp-server; `none` for TLS from the first byte; `auto` (default:
    /// 25/587 smtp, 143 imap, 110 pop3, 21 ftp, 5432 postgres, 3306 mysql, 389 ldap, 5222 xmpp,
    /// 5269 xmpp-server). Also `[probe] starttls`.
    #[arg(id = "tls_starttls", long = "starttls", value_name = "PROTO")]
    pub starttls: Option<StarttlsMode>,
}

/// Read a targets file: one target per line, `#` comments.
/// `[probe] starttls`, as this source reads it.
#[derive(serde::Deserialize)]
struct ProbeStarttls {
    #[serde(default)]
    starttls: Option<StarttlsMode>,
}

pub fn read_targets_file(path: &std::path::Path, out: &mut Vec<String>) -> Result<(), BuildError> {
    let text = crate::fsx::read_to_string_bounded(path, MAX_TARGETS_FILE).map_err(|e| {
        BuildError::Invalid(format!("cannot read targets file {}: {e}", path.display()))
    })?;
    out.extend(
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    Ok(())
}

/// Parse raw targets, de-duplicated; the unparsable ones are kept as (as given, why).
pub fn parse_targets(raw: Vec<String>, sni: Option<&str>) -> (Vec<Target>, Vec<(String, String)>) {
    parse_targets_with(raw, sni, StarttlsMode::Auto)
}

/// [`parse_targets`], with `mode` choosing the protocol of plain `host:port` targets.
pub fn parse_targets_with(
    raw: Vec<String>,
    sni: Option<&str>,
    mode: StarttlsMode,
) -> (Vec<Target>, Vec<(String, String)>) {
    let mut targets = Vec::new();
    let mut bad = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for r in raw {
        match Target::parse_with(&r, sni, mode) {
            Ok(t) => {
                if seen.insert(t.clone()) {
                    targets.push(t);
                }
            }
            Err(e) => bad.push((r, e.why)),
        }
    }
    (targets, bad)
}

/// The plugin.
pub struct TlsPlugin;
pub static PLUGIN: TlsPlugin = TlsPlugin;

impl Plugin for TlsPlugin {
    fn kind(&self) -> SourceKind {
        SourceKind::TLS
    }

    fn sections(&self) -> &'static [&'static str] {
        &["targets", "targets_files"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <TlsArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <TlsArgs as clap::FromArgMatches>::from_arg_matches(m)
            .is_ok_and(|a| !a.targets.is_empty() || !a.targets_files.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: TlsArgs = ctx.flags()?.unwrap_or_default();
        let mut raw = ctx.positional_targets();
        raw.extend(args.targets.iter().cloned());
        for p in &args.targets_files {
            read_targets_file(p, &mut raw)?;
        }
        if ctx.from_config {
            raw.extend(
                ctx.config
                    .section::<Vec<String>>("targets")?
                    .unwrap_or_default(),
            );
            for p in ctx
                .config
                .section::<Vec<PathBuf>>("targets_files")?
                .unwrap_or_default()
            {
                read_targets_file(&p, &mut raw)?;
            }
        }
        let mode = match args.starttls {
            Some(m) => m,
            // The source's own typed view of `[probe]`: the config module keeps the value as
            // plain data, and a bad name is still reported at its line.
            None => ctx
                .config
                .section::<ProbeStarttls>("probe")?
                .and_then(|p| p.starttls)
                .unwrap_or_default(),
        };
        if raw.is_empty() {
            return Ok(Vec::new());
        }
        let (targets, bad) = parse_targets_with(raw, args.sni.as_deref(), mode);
        Ok(vec![Arc::new(TlsSource::new(
            targets,
            bad,
            ctx.probe.clone(),
        ))])
    }
}

/// TLS endpoints, probed with bounded concurrency, one tokio task per probe.
pub struct TlsSource {
    id: SourceId,
    pub targets: Vec<Target>,
    /// Targets that did not parse: (as given, why), reported as error rows.
    pub bad: Vec<(String, String)>,
    settings: ProbeSettings,
    prober: Result<Arc<TlsProber>, String>,
    schedule: Schedule,
    revocation: Option<Arc<SourceChecks>>,
}

impl TlsSource {
    pub fn new(
        targets: Vec<Target>,
        bad: Vec<(String, String)>,
        settings: ProbeSettings,
    ) -> TlsSource {
        let prober = build_prober(&settings)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        TlsSource {
            id: SourceId::new(SourceKind::TLS, ""),
            targets,
            bad,
            revocation: SourceChecks::for_probe(&settings),
            settings,
            prober,
            schedule: Schedule::every(Duration::from_secs(300), Duration::from_secs(600)),
        }
    }

    /// The same source under another instance label and schedule (the demo, ACME endpoints).
    pub fn named(mut self, instance: &str, schedule: Schedule) -> TlsSource {
        self.id = SourceId::new(SourceKind::TLS, instance);
        self.schedule = schedule;
        self
    }

    /// `fresh`: a re-read the user asked for, so revocation is asked again, not taken from
    /// the cache.
    async fn probe_all(&self, targets: Vec<Target>, sink: &Sink, fresh: bool) -> RoundEnd {
        let prober = match &self.prober {
            Ok(p) => p.clone(),
            Err(e) => return RoundEnd::failed(Problem::new(ProblemKind::Config, e.clone())),
        };
        let checks = self.revocation.clone().map(|c| (c, fresh));
        if probe_and_check(prober, targets, self.settings.concurrency, sink, checks).await {
            RoundEnd::complete()
        } else {
            RoundEnd::abandoned()
        }
    }
}

/// Probe targets, at most `concurrency` at once; false when nobody listens any more.
pub async fn run_probes(
    prober: Arc<TlsProber>,
    targets: Vec<Target>,
    concurrency: usize,
    sink: &Sink,
) -> bool {
    probe_and_check(prober, targets, concurrency, sink, None).await
}

/// [`run_probes`], checking each leaf's revocation (stapled response first) in the probe's
/// slot, so the checks share its concurrency.
async fn probe_and_check(
    prober: Arc<TlsProber>,
    targets: Vec<Target>,
    concurrency: usize,
    sink: &Sink,
    checks: Option<(Arc<SourceChecks>, bool)>,
) -> bool {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for t in targets {
        if sink.is_closed() {
            return false;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let prober = prober.clone();
        let sink = sink.clone();
        let checks = checks.clone();
        tasks.spawn(async move {
            let (mut rec, stapled) = prober.probe_stapled(&t).await;
            if let Some((c, fresh)) = &checks {
                c.check(&mut rec, stapled.as_deref(), &[], *fresh).await;
            }
            // Holding the permit until the record is handed over bounds what is in memory.
            let _ = sink.observed(rec).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow with the target count.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    !sink.is_closed()
}

impl Source for TlsSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            sink.planned(self.targets.len() + self.bad.len()).await;
            let now = crate::clock::now_unix();
            for (given, why) in &self.bad {
                let r = Record::new(SourceKind::TLS, given.clone(), now).with_error(why.clone());
                if !sink.observed(r).await {
                    return RoundEnd::abandoned();
                }
            }
            self.probe_all(self.targets.clone(), sink, false).await
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let targets: Vec<Target> = rows
                .iter()
                .filter(|r| r.source == SourceKind::TLS)
                .filter_map(|r| Target::parse(&r.location, None).ok())
                .collect();
            self.probe_all(targets, sink, true).await
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }
}
