//! The supervisor: every source runs as its own task with its own refresh interval, round
//! time limit, retry with backoff after a failed round, and cancellation.
//!
//! Each source has a job slot (gitui's pattern): one round running, at most one pending.
//! A refresh asked for while a round runs is not queued (the running round is fresh); row
//! re-reads asked for while one runs are merged into one pending re-read, and gathered for a
//! short moment first, so fifty tasks finishing together cost one re-read per source.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{Problem, ProblemKind, RoundEnd, Schedule, Sink, Source, SourceEvent, SourceId};
use crate::model::Record;

/// Once (a scan: one round each, then done) or live (the dashboard, the exporter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Once,
    Live,
}

/// Schedules set in the config file (`[refresh.KIND]`), by source kind.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub by_kind: HashMap<String, ScheduleOverride>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScheduleOverride {
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
}

impl Overrides {
    fn apply(&self, id: &SourceId, s: Schedule) -> Schedule {
        match self.by_kind.get(id.kind.as_str()) {
            Some(o) => Schedule {
                interval: o.interval.unwrap_or(s.interval),
                timeout: o.timeout.unwrap_or(s.timeout),
            },
            None => s,
        }
    }
}

/// First retry after a failed round; doubles each time, up to the source's interval.
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
/// How long re-read requests are gathered before one re-read runs.
pub const GATHER: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    rows: Vec<Record>,
}

struct Slot {
    source: Arc<dyn Source>,
    id: Arc<SourceId>,
    schedule: Schedule,
    wake: Arc<Notify>,
    /// A full round is wanted (a refresh, or a live feed that lost track).
    full: Arc<AtomicBool>,
    pending: Mutex<Pending>,
    running: AtomicBool,
}

/// Runs sources; dropping it (or [`Supervisor::stop`]) cancels every task.
pub struct Supervisor {
    slots: Vec<Arc<Slot>>,
    tasks: Mutex<JoinSet<()>>,
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

/// Aborts a spawned task when dropped (so cancelling a slot cancels its round).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Supervisor {
    /// Start one task per source. In `Once` mode each runs one round and ends; the event
    /// channel closes when all have ended.
    pub fn start(
        sources: Vec<Arc<dyn Source>>,
        overrides: &Overrides,
        mode: Mode,
        tx: mpsc::Sender<SourceEvent>,
    ) -> Supervisor {
        let mut tasks = JoinSet::new();
        let mut slots = Vec::new();
        for source in sources {
            let id = Arc::new(source.id().clone());
            let schedule = overrides.apply(&id, source.schedule());
            let slot = Arc::new(Slot {
                source,
                id,
                schedule,
                wake: Arc::new(Notify::new()),
                full: Arc::new(AtomicBool::new(false)),
                pending: Mutex::new(Pending::default()),
                running: AtomicBool::new(false),
            });
            slots.push(slot.clone());
            tasks.spawn(run_slot(slot, mode, tx.clone()));
        }
        Supervisor {
            slots,
            tasks: Mutex::new(tasks),
        }
    }

    /// The sources supervised.
    pub fn sources(&self) -> impl Iterator<Item = &Arc<dyn Source>> {
        self.slots.iter().map(|s| &s.source)
    }

    /// Ask every source that is not already running a round for one now. Returns how many
    /// rounds were asked for (0: all were running).
    pub fn refresh_all(&self) -> usize {
        let mut n = 0;
        for s in &self.slots {
            if !s.running.load(Ordering::SeqCst) {
                s.full.store(true, Ordering::SeqCst);
                s.wake.notify_one();
                n += 1;
            }
        }
        n
    }

    /// Re-read these rows, each through the source that produced it. Requests for one source
    /// are merged into one re-read; sources whose re-read is a full round run one round.
    pub fn reobserve(&self, rows: Vec<(SourceId, Record)>) {
        for (id, r) in rows {
            let Some(slot) = self.slots.iter().find(|s| *s.id == id) else {
                continue;
            };
            if let Ok(mut p) = slot.pending.lock() {
                if !p.rows.iter().any(|x| x.id == r.id) {
                    p.rows.push(r);
                }
            }
            slot.wake.notify_one();
        }
    }

    /// Cancel every task.
    pub fn stop(&self) {
        if let Ok(mut t) = self.tasks.lock() {
            t.abort_all();
        }
    }
}

enum Job {
    Full,
    Rows(Vec<Record>),
}

fn backoff(failures: u32, interval: Duration) -> Duration {
    let shift = failures.saturating_sub(1).min(10);
    (FIRST_RETRY * (1u32 << shift)).min(interval.max(FIRST_RETRY))
}

/// The message of a panic payload.
fn panic_message(e: tokio::task::JoinError) -> String {
    if e.is_cancelled() {
        return "the round was cancelled".to_owned();
    }
    match e.try_into_panic() {
        Ok(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            format!("the source panicked: {msg} (see the log file)")
        }
        Err(e) => e.to_string(),
    }
}

/// Run one job of a slot with its time limit; a panic or a timeout becomes a problem.
async fn run_job(slot: &Arc<Slot>, sink: &Sink, job: Job) -> RoundEnd {
    let src = slot.source.clone();
    let sink2 = sink.clone();
    let handle = tokio::spawn(async move {
        match job {
            Job::Full => src.round(&sink2).await,
            Job::Rows(rows) => src.reobserve(&rows, &sink2).await,
        }
    });
    let mut guard = AbortOnDrop(handle);
    match tokio::time::timeout(slot.schedule.timeout, &mut guard.0).await {
        Ok(Ok(end)) => end,
        Ok(Err(e)) => {
            let msg = panic_message(e);
            tracing::error!("{}: {msg}", slot.id);
            RoundEnd::failed(Problem::new(ProblemKind::Internal, msg))
        }
        Err(_) => RoundEnd::failed(Problem::new(
            ProblemKind::Timeout,
            format!(
                "the round did not finish within {}",
                humantime::format_duration(slot.schedule.timeout)
            ),
        )),
    }
}

async fn run_slot(slot: Arc<Slot>, mode: Mode, tx: mpsc::Sender<SourceEvent>) {
    let sink =
        Sink::new(slot.id.clone(), tx.clone()).with_wake(slot.wake.clone(), slot.full.clone());
    let mut failures = 0u32;
    let mut live = Live::NotStarted;
    let mut next_full = Instant::now();
    loop {
        // Wait for the timer, a refresh, or rows to re-read.
        let job = loop {
            if slot.full.swap(false, Ordering::SeqCst) || Instant::now() >= next_full {
                if let Ok(mut p) = slot.pending.lock() {
                    p.rows.clear();
                }
                break Job::Full;
            }
            let rows = slot
                .pending
                .lock()
                .map(|mut p| std::mem::take(&mut p.rows))
                .unwrap_or_default();
            if !rows.is_empty() {
                // Gather what else arrives in a moment, then re-read all of it at once.
                tokio::time::sleep(GATHER).await;
                let mut rows = rows;
                if let Ok(mut p) = slot.pending.lock() {
                    rows.append(&mut p.rows);
                }
                if slot.full.swap(false, Ordering::SeqCst) || !slot.source.reobserves_rows() {
                    break Job::Full;
                }
                break Job::Rows(rows);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_full) => {}
                _ = slot.wake.notified() => {}
            }
        };
        let full = matches!(job, Job::Full);
        slot.running.store(true, Ordering::SeqCst);
        if tx
            .send(SourceEvent::Started {
                source: slot.id.clone(),
                full,
            })
            .await
            .is_err()
        {
            return;
        }
        let end = run_job(&slot, &sink, job).await;
        slot.running.store(false, Ordering::SeqCst);
        let failed = end.problem.is_some() && !end.complete;
        let ok_round = end.problem.is_none();
        if tx
            .send(SourceEvent::Finished {
                source: slot.id.clone(),
                full,
                end,
            })
            .await
            .is_err()
        {
            return;
        }
        if mode == Mode::Once {
            return;
        }
        if full {
            if failed {
                failures += 1;
                next_full = Instant::now() + backoff(failures, slot.schedule.interval);
            } else {
                failures = 0;
                next_full = Instant::now() + slot.schedule.interval;
            }
        }
        if ok_round {
            live = match live {
                Live::NotStarted => Live::Running(start_live(&slot, &sink)),
                Live::Running(h) if h.0.is_finished() => {
                    // The feed ended: restart it, unless the source has none.
                    let mut h = h;
                    match futures::FutureExt::now_or_never(&mut h.0) {
                        Some(Ok(false)) => Live::Unsupported,
                        _ => Live::Running(start_live(&slot, &sink)),
                    }
                }
                other => other,
            };
        }
    }
}

enum Live {
    NotStarted,
    Running(AbortOnDrop<bool>),
    Unsupported,
}

/// Run the source's live feed in its own task; the task returns false when it has none.
fn start_live(slot: &Arc<Slot>, sink: &Sink) -> AbortOnDrop<bool> {
    let src = slot.source.clone();
    let sink = sink.clone();
    AbortOnDrop(tokio::spawn(async move {
        match src.live(&sink) {
            Some(feed) => {
                feed.await;
                true
            }
            None => false,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval() {
        let i = Duration::from_secs(60);
        assert_eq!(backoff(1, i), Duration::from_secs(5));
        assert_eq!(backoff(2, i), Duration::from_secs(10));
        assert_eq!(backoff(4, i), Duration::from_secs(40));
        assert_eq!(backoff(5, i), Duration::from_secs(60));
        assert_eq!(backoff(40, i), Duration::from_secs(60));
    }
}
