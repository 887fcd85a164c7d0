//! Sources of certificates and the engine that runs them.
//!
//! Each source runs as its own task and sends owned `SourceEvent`s on a bounded channel: a
//! slow consumer slows the probes, it does not grow a queue. The headless `scan` and the
//! dashboard consume the very same events.

pub mod aws;
pub mod file;
pub mod k8s;
pub mod pem;
pub mod target;
pub mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Semaphore};

use crate::model::{Record, SourceKind};
pub use target::Target;

/// What a source tells the consumer.
// Observations dominate the traffic; boxing them would add an allocation each for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SourceEvent {
    /// The source knows how many locations it will observe.
    Started { source: SourceKind, total: usize },
    /// One location observed (a certificate or an error).
    Observed(Record),
    /// The source failed as a whole (no credentials, cluster unreachable...).
    Failed { source: SourceKind, error: String },
    /// The source has sent everything for this round.
    Finished { source: SourceKind },
}

/// Everything to look at.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub targets: Vec<Target>,
    /// Targets that did not parse: (as given, why).
    pub bad_targets: Vec<(String, String)>,
    /// Files, directories and globs.
    pub files: Vec<String>,
    /// Kubernetes contexts and namespaces to read, when asked for.
    pub k8s: Option<k8s::K8sSettings>,
    /// AWS accounts (profiles) and regions to read, when asked for.
    pub aws: Vec<aws::AwsSettings>,
}

/// How to probe.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub timeout: Duration,
    pub concurrency: usize,
    pub ca_files: Vec<PathBuf>,
    /// Extra trust anchors given as DER (the demo CA, for instance).
    pub extra_roots: Vec<Vec<u8>>,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            timeout: Duration::from_secs(5),
            concurrency: DEFAULT_CONCURRENCY,
            ca_files: Vec::new(),
            extra_roots: Vec::new(),
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

/// Probe TLS targets with bounded concurrency, one tokio task per probe so both cores work.
pub async fn run_tls(
    prober: Arc<tls::TlsProber>,
    targets: Vec<Target>,
    concurrency: usize,
    tx: mpsc::Sender<SourceEvent>,
) {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for t in targets {
        let Ok(permit) = sem.clone().acquire_owned().await else {
            break;
        };
        let prober = prober.clone();
        let tx = tx.clone();
        tasks.spawn(async move {
            let rec = prober.probe(&t).await;
            // Holding the permit until the record is handed over bounds what is in memory.
            let _ = tx.send(SourceEvent::Observed(rec)).await;
            drop(permit);
        });
        // Reap finished tasks so the set does not grow with the target count.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
}

/// Read files on the blocking pool, sending records as they are read.
pub async fn run_files(specs: Vec<String>, tx: mpsc::Sender<SourceEvent>) {
    let handle = tokio::task::spawn_blocking(move || {
        let now = crate::clock::now_unix();
        let exp = file::expand(&specs, now);
        let total = exp.files.len() + exp.problems.len();
        if tx
            .blocking_send(SourceEvent::Started {
                source: SourceKind::File,
                total,
            })
            .is_err()
        {
            return;
        }
        for r in exp.problems {
            if tx.blocking_send(SourceEvent::Observed(r)).is_err() {
                return;
            }
        }
        for f in &exp.files {
            for r in file::read_file(f, now) {
                if tx.blocking_send(SourceEvent::Observed(r)).is_err() {
                    return;
                }
            }
        }
    });
    if let Err(e) = handle.await {
        tracing::error!("file reader task failed: {e}");
    }
}

/// Run every source of the inventory, sending events on `tx`. Returns when all have finished.
pub async fn run_inventory(inv: Inventory, settings: ProbeSettings, tx: mpsc::Sender<SourceEvent>) {
    let now = crate::clock::now_unix();
    let mut jobs = tokio::task::JoinSet::new();
    let has_tls = !inv.targets.is_empty() || !inv.bad_targets.is_empty();
    if has_tls {
        let tx = tx.clone();
        let targets = inv.targets;
        let bad = inv.bad_targets;
        let settings = settings.clone();
        jobs.spawn(async move {
            let total = targets.len() + bad.len();
            let _ = tx
                .send(SourceEvent::Started {
                    source: SourceKind::Tls,
                    total,
                })
                .await;
            for (given, why) in bad {
                let _ = tx
                    .send(SourceEvent::Observed(
                        Record::new(SourceKind::Tls, given, now).with_error(why),
                    ))
                    .await;
            }
            match build_prober(&settings) {
                Ok(p) => run_tls(Arc::new(p), targets, settings.concurrency, tx.clone()).await,
                Err(e) => {
                    let _ = tx
                        .send(SourceEvent::Failed {
                            source: SourceKind::Tls,
                            error: e.to_string(),
                        })
                        .await;
                }
            }
            let _ = tx
                .send(SourceEvent::Finished {
                    source: SourceKind::Tls,
                })
                .await;
        });
    }
    if !inv.files.is_empty() {
        let tx = tx.clone();
        let files = inv.files;
        jobs.spawn(async move {
            run_files(files, tx.clone()).await;
            let _ = tx
                .send(SourceEvent::Finished {
                    source: SourceKind::File,
                })
                .await;
        });
    }
    if let Some(k8s_settings) = inv.k8s {
        let tx = tx.clone();
        jobs.spawn(async move {
            k8s::run(k8s_settings, tx.clone()).await;
            let _ = tx
                .send(SourceEvent::Finished {
                    source: SourceKind::K8s,
                })
                .await;
        });
    }
    if !inv.aws.is_empty() {
        let tx = tx.clone();
        let blocks = inv.aws;
        jobs.spawn(async move {
            aws::run(blocks, tx.clone()).await;
            let _ = tx
                .send(SourceEvent::Finished {
                    source: SourceKind::Aws,
                })
                .await;
        });
    }
    while jobs.join_next().await.is_some() {}
}

/// Run an inventory to completion and collect every record, plus source-level failures.
pub async fn scan(inv: Inventory, settings: ProbeSettings) -> (Vec<Record>, Vec<String>) {
    let (tx, mut rx) = mpsc::channel(1024);
    let runner = tokio::spawn(run_inventory(inv, settings, tx));
    let mut records = Vec::new();
    let mut failures = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            SourceEvent::Observed(r) => records.push(r),
            SourceEvent::Failed { source, error } => {
                failures.push(format!("{}: {error}", source.as_str()))
            }
            SourceEvent::Started { .. } | SourceEvent::Finished { .. } => {}
        }
    }
    if let Err(e) = runner.await {
        failures.push(format!("scan task failed: {e}"));
    }
    (records, failures)
}
