//! Sources of certificates: one [`Source`] trait, a [`Supervisor`] that runs every source as
//! its own task, a [`FleetStore`] that turns their events into the fleet with per-source
//! health, and a [`registry`] of source plugins.
//!
//! A source module owns its settings (flags and config section), discovery, observation, its
//! health and the actions its rows offer. The supervisor owns scheduling, timeouts, retry with
//! backoff and cancellation; the store owns staleness and sweeping rows that disappeared.
//! Sources send owned records on a **bounded** channel: a slow consumer slows the probes, it
//! does not grow a queue. The headless `scan`, the dashboard and the exporter consume the very
//! same events.

pub mod aws;
pub mod azure;
pub mod file;
pub mod gcp;
pub mod k8s;
pub mod keystore;
pub mod pem;
#[cfg(feature = "pkcs11")]
pub mod pkcs11;
pub mod prometheus;
pub mod proxy;
pub mod registry;
pub mod revocation;
#[cfg(feature = "spiffe")]
pub mod spiffe;
pub mod starttls;
pub mod store;
pub mod supervisor;
pub mod target;
pub mod tls;
pub mod vault;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::model::{Record, SourceKind};
pub use registry::{BuildContext, BuildError, Plugin, Purpose, PLUGINS};
pub use store::{FleetStore, Health, HealthState, Progress};
pub use supervisor::{Mode, Supervisor};
pub use target::Target;

/// A boxed, sendable future (sources and actions are trait objects).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One source instance: its kind and an instance label (a Kubernetes context, a cloud
/// account and region...). Shown as `k8s prod`, or just `tls` when there is one instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId {
    pub kind: SourceKind,
    pub instance: String,
}

impl SourceId {
    pub fn new(kind: SourceKind, instance: impl Into<String>) -> SourceId {
        SourceId {
            kind,
            instance: instance.into(),
        }
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.instance.is_empty() {
            f.write_str(self.kind.as_str())
        } else {
            write!(f, "{} {}", self.kind.as_str(), self.instance)
        }
    }
}

/// How often a source runs a full round, and how long a round may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Schedule {
    pub const fn every(interval: Duration, timeout: Duration) -> Schedule {
        Schedule { interval, timeout }
    }
}

/// What kind of trouble a source as a whole is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The service could not be reached (DNS, connection refused, TLS to the API failed).
    Unreachable,
    /// Credentials missing or rejected (401).
    Unauthorized,
    /// A permission is missing (403); the message names it.
    Forbidden,
    /// The service throttled us (429, ThrottlingException) beyond our retries.
    Throttled,
    /// A call or the whole round took longer than its limit.
    Timeout,
    /// The settings cannot work (an unreadable kubeconfig, an unknown context...).
    Config,
    /// A bug: the source panicked. The message says where.
    Internal,
    Other,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Unreachable => "unreachable",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::Throttled => "throttled",
            ProblemKind::Timeout => "timed out",
            ProblemKind::Config => "misconfigured",
            ProblemKind::Internal => "internal error",
            ProblemKind::Other => "error",
        }
    }
}

/// A source-level problem: why a round failed as a whole, or was only partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a round ended. `complete`: every location the source knows of was observed, so rows
/// it did not send any more are gone. A round with a problem is partial (some locations could
/// not be read) or failed (none could).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundEnd {
    pub complete: bool,
    pub problem: Option<Problem>,
}

impl RoundEnd {
    /// Everything was read.
    pub fn complete() -> RoundEnd {
        RoundEnd {
            complete: true,
            problem: None,
        }
    }

    /// Some locations could not be read (a namespace forbidden, a page that failed).
    pub fn partial(problem: Problem) -> RoundEnd {
        RoundEnd {
            complete: false,
            problem: Some(problem),
        }
    }

    /// Nothing could be read: the rows of this source keep their last known state.
    pub fn failed(problem: Problem) -> RoundEnd {
        RoundEnd {
            complete: false,
            problem: Some(problem),
        }
    }

    /// The round stopped early because nobody listens any more.
    pub fn abandoned() -> RoundEnd {
        RoundEnd {
            complete: false,
            problem: None,
        }
    }
}

/// What flows from sources to the store (and so to the dashboard, the scan, the exporter).
// Observations dominate the traffic; boxing them would add an allocation each for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SourceEvent {
    /// The supervisor starts a round (`full`: every location, else a re-read of some rows).
    Started { source: Arc<SourceId>, full: bool },
    /// The source knows how many locations this round covers.
    Planned { source: Arc<SourceId>, total: usize },
    /// One location observed: a certificate or an error row.
    Observed {
        source: Arc<SourceId>,
        record: Record,
    },
    /// A location is gone (a deleted Secret, seen live).
    Removed { source: Arc<SourceId>, id: String },
    /// The round ended.
    Finished {
        source: Arc<SourceId>,
        full: bool,
        end: RoundEnd,
    },
}

/// A source's handle on the event channel: stamps every event with the source's id.
#[derive(Clone)]
pub struct Sink {
    source: Arc<SourceId>,
    tx: mpsc::Sender<SourceEvent>,
    wake: Option<Arc<Notify>>,
    full_round: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Sink {
    pub fn new(source: Arc<SourceId>, tx: mpsc::Sender<SourceEvent>) -> Sink {
        Sink {
            source,
            tx,
            wake: None,
            full_round: None,
        }
    }

    pub(crate) fn with_wake(
        mut self,
        wake: Arc<Notify>,
        full: Arc<std::sync::atomic::AtomicBool>,
    ) -> Sink {
        self.wake = Some(wake);
        self.full_round = Some(full);
        self
    }

    pub fn id(&self) -> &SourceId {
        &self.source
    }

    /// Send an observation; false once nobody listens (the source should stop).
    pub async fn observed(&self, record: Record) -> bool {
        self.tx
            .send(SourceEvent::Observed {
                source: self.source.clone(),
                record,
            })
            .await
            .is_ok()
    }

    /// Say a location is gone.
    pub async fn removed(&self, id: String) -> bool {
        self.tx
            .send(SourceEvent::Removed {
                source: self.source.clone(),
                id,
            })
            .await
            .is_ok()
    }

    /// Say how many locations this round covers (progress in the dashboard).
    pub async fn planned(&self, total: usize) -> bool {
        self.tx
            .send(SourceEvent::Planned {
                source: self.source.clone(),
                total,
            })
            .await
            .is_ok()
    }

    /// Ask the supervisor for a full round soon (a live feed that lost track, say).
    pub fn request_round(&self) {
        if let (Some(w), Some(f)) = (&self.wake, &self.full_round) {
            f.store(true, std::sync::atomic::Ordering::SeqCst);
            w.notify_one();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// A kind of place certificates come from, as one running instance.
pub trait Source: Send + Sync + 'static {
    /// This instance (kind and label); stable for the life of the process.
    fn id(&self) -> &SourceId;

    /// Default refresh interval and round time limit (the config's `[refresh.KIND]` overrides).
    fn schedule(&self) -> Schedule;

    /// One full round: discover and observe every location, sending each record through
    /// `sink` as soon as it is read.
    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd>;

    /// Observe some rows again (after an action, or `r` on a row). The default is a full
    /// round, for sources whose cheapest re-read is a list.
    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        let _ = rows;
        self.round(sink)
    }

    /// True when [`Source::reobserve`] re-reads only the rows given (not a full round).
    fn reobserves_rows(&self) -> bool {
        false
    }

    /// A live feed (a watch, a stream) that runs until cancelled, started after the first
    /// successful round; `None` when the source has none.
    fn live<'a>(&'a self, sink: &'a Sink) -> Option<BoxFut<'a, ()>> {
        let _ = sink;
        None
    }

    /// The action backends this source's rows offer.
    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        Vec::new()
    }
}

/// A source whose settings cannot work (an unreadable kubeconfig, an unknown context): every
/// round fails with the same problem, so it shows as a failing source instead of vanishing.
pub struct Unusable {
    pub id: SourceId,
    pub problem: Problem,
}

impl Source for Unusable {
    fn id(&self) -> &SourceId {
        &self.id
    }
    fn schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(300), Duration::from_secs(10))
    }
    fn round<'a>(&'a self, _sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move { RoundEnd::failed(self.problem.clone()) })
    }
}

/// How to probe: settings every network source shares.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    /// Per location (TLS: DNS, connect and handshake together; APIs: each request).
    pub timeout: Duration,
    /// Locations probed at once.
    pub concurrency: usize,
    /// Extra trust anchors (PEM files).
    pub ca_files: Vec<PathBuf>,
    /// Extra trust anchors given as DER (the demo CA, for instance).
    pub extra_roots: Vec<Vec<u8>>,
    /// Check whether leaf certificates are revoked (stapled OCSP, else OCSP, else CRL), within
    /// `timeout` per certificate. Off with `--no-revocation` or `[probe] revocation = false`.
    pub revocation: bool,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: Duration::from_secs(5),
            concurrency: DEFAULT_CONCURRENCY,
            ca_files: Vec::new(),
            extra_roots: Vec::new(),
            revocation: true,
        }
    }
}

/// In-flight probes by default: enough to keep two cores busy on loopback and to finish
/// thousands of remote endpoints in a few round trips, small enough for a default `ulimit -n`.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Build a prober from settings (webpki roots + CA files + extra roots).
pub fn build_prober(settings: &ProbeSettings) -> Result<tls::TlsProber, tls::ProberError> {
    let mut roots = tls::load_ca_files(&settings.ca_files)?;
    roots.extend(
        settings
            .extra_roots
            .iter()
            .map(|d| rustls::pki_types::CertificateDer::from(d.clone())),
    );
    tls::TlsProber::new(&roots, settings.timeout)
}

/// A failed HTTP request as one line: "timed out", or the error with each of its causes once,
/// control characters stripped (error text can quote what a server sent).
pub fn describe_http(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        let m = x.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = x.source();
    }
    crate::model::text::clean(&s).into_owned()
}

/// An HTTP client builder that also trusts the CA files given (`--ca-file`, `[probe] ca_files`);
/// an unreadable or unparsable file is a configuration problem naming it.
pub fn with_ca_files(
    mut b: reqwest::ClientBuilder,
    ca_files: &[PathBuf],
) -> Result<reqwest::ClientBuilder, Problem> {
    for f in ca_files {
        let pem = std::fs::read(f).map_err(|e| {
            Problem::new(
                ProblemKind::Config,
                format!("cannot read --ca-file {}: {e}", f.display()),
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            Problem::new(
                ProblemKind::Config,
                format!("--ca-file {}: {}", f.display(), describe_http(&e)),
            )
        })?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    Ok(b)
}

/// What a headless scan saw: every record, and every source's health.
#[derive(Debug)]
pub struct ScanResult {
    pub records: Vec<Record>,
    pub health: Vec<(SourceId, Health)>,
}

impl ScanResult {
    /// Sources that failed or were partial, as `source: problem` lines.
    pub fn problems(&self) -> Vec<String> {
        self.health
            .iter()
            .filter_map(|(id, h)| h.problem.as_ref().map(|p| format!("{id}: {p}")))
            .collect()
    }
}

/// Run one round of every source and collect what they saw.
pub async fn scan(sources: Vec<Arc<dyn Source>>) -> ScanResult {
    let (tx, mut rx) = mpsc::channel(1024);
    let sup = Supervisor::start(sources, &supervisor::Overrides::default(), Mode::Once, tx);
    let mut store = FleetStore::new();
    while let Some(ev) = rx.recv().await {
        store.apply(ev, crate::clock::now_unix());
    }
    sup.stop();
    let health = store
        .sources()
        .map(|(id, s)| ((**id).clone(), s.health.clone()))
        .collect();
    ScanResult {
        records: store.into_fleet().into_records(),
        health,
    }
}
