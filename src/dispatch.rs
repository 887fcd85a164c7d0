//! From the dashboard's action requests to real actions. Each backend (Kubernetes, ACME
//! files, user-defined commands, the demo fleet) plans the rows it serves; plans wait here
//! until the user confirms; confirmed plans run as tasks that report progress as app events.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::app::{ActKind, AppEvent, Proposal};
use crate::model::Record;

pub type BoxFut<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Reports a running task's steps to the dashboard.
#[derive(Clone)]
pub struct Reporter {
    pub record_id: String,
    tx: mpsc::Sender<AppEvent>,
}

impl Reporter {
    pub fn new(record_id: String, tx: mpsc::Sender<AppEvent>) -> Reporter {
        Reporter { record_id, tx }
    }

    pub async fn step(&self, step: &str, message: impl Into<String>) {
        let _ = self
            .tx
            .send(AppEvent::TaskProgress {
                record_id: self.record_id.clone(),
                step: step.to_owned(),
                message: message.into(),
            })
            .await;
    }
}

/// How to run a planned action: report steps, return a summary or why it failed.
pub type Runner = Box<dyn FnOnce(Reporter) -> BoxFut<Result<String, String>> + Send>;

/// A planned action for one row.
pub struct Prepared {
    pub proposal: Proposal,
    /// Run without the confirm popup (a user-defined action with `confirm = false`).
    pub skip_confirm: bool,
    /// `None` when the row cannot take the action (`proposal.error` says why).
    pub run: Option<Runner>,
}

impl Prepared {
    /// A row that cannot take the action.
    pub fn refused(record: &Record, title: &str, why: impl Into<String>) -> Prepared {
        Prepared {
            proposal: Proposal {
                record_id: record.id.clone(),
                location: record.location.clone(),
                title: title.to_owned(),
                preview: String::new(),
                destructive: false,
                error: Some(why.into()),
            },
            skip_confirm: false,
            run: None,
        }
    }
}

/// A kind of place that can act on its rows.
pub trait Backend: Send + Sync {
    /// Plan `kind` for `record`, or `None` when this backend does not serve the row.
    fn plan(&self, kind: ActKind, record: &Record) -> Option<BoxFut<Prepared>>;
}

/// Holds plans between proposal and confirmation, and runs confirmed ones.
pub struct Dispatcher {
    backends: Vec<Arc<dyn Backend>>,
    pending: Arc<Mutex<HashMap<u64, HashMap<String, Prepared>>>>,
    read_only: bool,
}

impl Dispatcher {
    pub fn new(backends: Vec<Arc<dyn Backend>>, read_only: bool) -> Dispatcher {
        Dispatcher {
            backends,
            pending: Arc::new(Mutex::new(HashMap::new())),
            read_only,
        }
    }

    /// Plan `kind` for the records; answers with `AppEvent::Proposed` on `tx`. Plans that need
    /// no confirmation are run at once.
    pub fn propose(
        &self,
        token: u64,
        kind: ActKind,
        records: Vec<Record>,
        tx: mpsc::Sender<AppEvent>,
    ) {
        let backends = self.backends.clone();
        let pending = self.pending.clone();
        let read_only = self.read_only;
        tokio::spawn(async move {
            let mut prepared = Vec::new();
            for r in &records {
                if read_only {
                    prepared.push(Prepared::refused(r, "action", "read-only mode"));
                    continue;
                }
                let fut = backends.iter().find_map(|b| b.plan(kind, r));
                prepared.push(match fut {
                    Some(f) => f.await,
                    None => Prepared::refused(r, "renew", "no action applies to this row (not managed by anything certdeck can drive)"),
                });
            }
            let proposals: Vec<Proposal> = prepared.iter().map(|p| p.proposal.clone()).collect();
            let auto: Vec<String> = prepared
                .iter()
                .filter(|p| p.skip_confirm && p.run.is_some())
                .map(|p| p.proposal.record_id.clone())
                .collect();
            let all_auto = !auto.is_empty() && auto.len() == prepared.len();
            if let Ok(mut map) = pending.lock() {
                map.insert(
                    token,
                    prepared
                        .into_iter()
                        .map(|p| (p.proposal.record_id.clone(), p))
                        .collect(),
                );
            }
            if all_auto {
                // Nothing to confirm: announce the tasks and run them.
                let _ = tx.send(AppEvent::Started { proposals }).await;
                run_pending(&pending, token, &auto, &tx);
            } else {
                let _ = tx.send(AppEvent::Proposed { token, proposals }).await;
            }
        });
    }

    /// Run the confirmed plans `ids` of proposal `token`.
    pub fn execute(&self, token: u64, ids: &[String], tx: mpsc::Sender<AppEvent>) {
        run_pending(&self.pending, token, ids, &tx);
    }

    pub fn cancel(&self, token: u64) {
        if let Ok(mut map) = self.pending.lock() {
            map.remove(&token);
        }
    }
}

fn run_pending(
    pending: &Mutex<HashMap<u64, HashMap<String, Prepared>>>,
    token: u64,
    ids: &[String],
    tx: &mpsc::Sender<AppEvent>,
) {
    let Some(mut plans) = pending.lock().ok().and_then(|mut m| m.remove(&token)) else {
        return;
    };
    for id in ids {
        let Some(run) = plans.remove(id).and_then(|p| p.run) else {
            continue;
        };
        let reporter = Reporter::new(id.clone(), tx.clone());
        let tx = tx.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = run(reporter).await;
            let (ok, message) = match result {
                Ok(m) => (true, m),
                Err(e) => (false, e),
            };
            let _ = tx
                .send(AppEvent::TaskFinished {
                    record_id: id,
                    ok,
                    message,
                })
                .await;
        });
    }
}

/// Quote a value for a POSIX shell (single quotes).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
