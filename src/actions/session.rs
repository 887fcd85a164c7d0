//! The action framework at work: plans staged until confirmed, read-only refusals, runs with
//! bounded concurrency and progress events, one audit record per action. The dashboard and
//! the headless commands both drive a [`Session`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::audit::{AuditLog, AuditRecord};
use super::{
    ActionError, ActionEvent, ActionOptions, Backend, Finished, Offer, Outcome, Plan, Prepared,
    Reporter, Request,
};
use crate::model::Record;

/// A row that cannot take the action asked for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub record_id: String,
    pub location: String,
    pub error: ActionError,
}

/// What a planning request answers.
pub type Planned = Vec<Result<Plan, Refusal>>;

/// What a session tells the dashboard.
#[derive(Debug)]
pub enum SessionEvent {
    /// The plans asked for with `token` are ready (or refused).
    Planned {
        token: u64,
        plans: Planned,
    },
    Action(ActionEvent),
}

/// Backends, the read-only switch, the audit log, and plans waiting for confirmation.
#[derive(Clone)]
pub struct Session {
    backends: Arc<Vec<Arc<dyn Backend>>>,
    read_only: bool,
    audit: Option<AuditLog>,
    staged: Arc<Mutex<HashMap<u64, Vec<Prepared>>>>,
    /// Actions run at once.
    pub concurrency: usize,
    pub options: Arc<ActionOptions>,
}

impl Session {
    pub fn new(
        backends: Vec<Arc<dyn Backend>>,
        read_only: bool,
        audit: Option<AuditLog>,
    ) -> Session {
        Session {
            backends: Arc::new(backends),
            read_only,
            audit,
            staged: Arc::new(Mutex::new(HashMap::new())),
            concurrency: 4,
            options: Arc::new(ActionOptions::default()),
        }
    }

    /// The same session with these options.
    pub fn with_options(mut self, options: ActionOptions) -> Session {
        self.options = Arc::new(options);
        self
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.audit.as_ref()
    }

    /// Every action the row offers, builtin ones first.
    pub fn offers(&self, record: &Record) -> Vec<Offer> {
        let mut all: Vec<Offer> = self
            .backends
            .iter()
            .flat_map(|b| b.offers(record))
            .collect();
        all.sort_by_key(|o| !o.builtin);
        all
    }

    fn audit(&self, rec: &AuditRecord) -> Option<String> {
        let log = self.audit.as_ref()?;
        match log.append(rec) {
            Ok(()) => None,
            Err(e) => {
                tracing::error!("audit log {}: {e}", log.path.display());
                Some(format!(
                    "the audit log {} could not be written: {e}",
                    log.path.display()
                ))
            }
        }
    }

    /// Plan `request` for one row (refusing in read-only mode; audited as `refused`).
    async fn plan_one(&self, request: &Request, record: &Record) -> Result<Prepared, ActionError> {
        if self.read_only {
            let mut rec = AuditRecord::for_row(request.label(), record);
            rec.outcome = "refused".into();
            rec.error = Some(ActionError::read_only().to_string());
            self.audit(&rec);
            return Err(ActionError::read_only());
        }
        let offers: Vec<(usize, Offer)> = self
            .backends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.offers(record).into_iter().map(move |o| (i, o)))
            .collect();
        let chosen = match request {
            Request::Default => offers.iter().find(|(_, o)| o.builtin),
            Request::Verb(v) => offers.iter().find(|(_, o)| &o.verb == v),
        };
        let Some((i, offer)) = chosen else {
            let what = match request {
                Request::Default => "no renew, rotate or other action".to_owned(),
                Request::Verb(v) => format!("no '{v}'"),
            };
            let others: Vec<&str> = offers.iter().map(|(_, o)| o.verb.as_str()).collect();
            let hint = if others.is_empty() {
                "nothing certdeck can drive manages it".to_owned()
            } else {
                format!("it offers: {}", others.join(", "))
            };
            return Err(ActionError::not_applicable(format!(
                "{}: {what} for this row ({hint})",
                crate::model::text::clean(&record.location)
            )));
        };
        self.backends[*i]
            .plan(&offer.verb, record, &self.options)
            .await
    }

    /// Plan `request` for each row, staging the runnable plans under `token`.
    pub async fn plan(&self, token: u64, request: &Request, records: &[Record]) -> Planned {
        let mut staged = Vec::new();
        let mut out = Vec::new();
        for r in records {
            match self.plan_one(request, r).await {
                Ok(p) => {
                    out.push(Ok(p.plan.clone()));
                    staged.push(p);
                }
                Err(error) => out.push(Err(Refusal {
                    record_id: r.id.clone(),
                    location: r.location.clone(),
                    error,
                })),
            }
        }
        if let Ok(mut m) = self.staged.lock() {
            m.insert(token, staged);
        }
        out
    }

    /// Forget the plans of `token` (cancelled, declined).
    pub fn cancel(&self, token: u64) {
        if let Ok(mut m) = self.staged.lock() {
            m.remove(&token);
        }
    }

    /// Record the staged plans of `token` as a dry run (shown, nothing written) and forget them.
    pub fn dry_run(&self, token: u64) -> Option<String> {
        let staged = self.staged.lock().ok().and_then(|mut m| m.remove(&token));
        let mut err = None;
        for p in staged.unwrap_or_default() {
            let mut rec = AuditRecord::for_plan(&p.plan);
            rec.outcome = "dry_run".into();
            err = err.or(self.audit(&rec));
        }
        err
    }

    /// Run the staged plans of `token` for rows `ids`, at most `concurrency` at once, sending
    /// progress and a `Finished` per row on `tx`. Returns every row's end, in `ids` order.
    pub async fn execute(
        &self,
        token: u64,
        ids: &[String],
        tx: mpsc::Sender<ActionEvent>,
    ) -> Vec<Finished> {
        use futures::StreamExt as _;
        let mut staged = self
            .staged
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&token))
            .unwrap_or_default();
        let mut todo = Vec::new();
        for id in ids {
            if let Some(i) = staged.iter().position(|p| &p.plan.record_id == id) {
                todo.push(staged.swap_remove(i));
            }
        }
        let n = todo.len();
        let mut done: Vec<(usize, Finished)> =
            futures::stream::iter(todo.into_iter().enumerate().map(|(i, p)| {
                let tx = tx.clone();
                async move { (i, self.run(p, tx).await) }
            }))
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        done.sort_by_key(|(i, _)| *i);
        debug_assert_eq!(done.len(), n);
        done.into_iter().map(|(_, f)| f).collect()
    }

    /// Run one prepared action (planned by a backend), as `execute` runs staged ones.
    pub async fn run_prepared(&self, p: Prepared, tx: mpsc::Sender<ActionEvent>) -> Finished {
        self.run(p, tx).await
    }

    /// Run one plan: its job in its own task (a panic is a failed action, not a crash), then
    /// its audit record. The change's own result stands whatever happens to the audit write.
    async fn run(&self, p: Prepared, tx: mpsc::Sender<ActionEvent>) -> Finished {
        let plan = p.plan;
        let result: Result<Outcome, ActionError> = if self.read_only {
            Err(ActionError::read_only())
        } else {
            let rep = Reporter::new(plan.record_id.clone(), tx.clone());
            match tokio::spawn((p.job)(rep)).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("{}: the action's task failed: {e}", plan.record_id);
                    Err(ActionError::at(
                        super::Step::Done,
                        format!("internal error: the action stopped ({e}); see the log file"),
                    ))
                }
            }
        };
        let mut rec = AuditRecord::for_plan(&plan);
        rec.complete(&result);
        let audit_error = self.audit(&rec);
        let finished = Finished {
            record_id: plan.record_id.clone(),
            title: plan.title.clone(),
            result,
            audit_error,
        };
        let _ = tx.send(ActionEvent::Finished(finished.clone())).await;
        finished
    }
}
