//! From the dashboard's action requests to real actions. Each backend (Kubernetes, ACME
//! files, user-defined commands, the demo fleet) plans the rows it serves; plans wait here
//! until the user confirms; confirmed plans run as tasks that report progress as app events.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub use crate::actions::audit::{AuditLog, AuditRecord};
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
    /// The audit record to complete and append when the run ends (`None` for backends that
    /// audit themselves, as the Kubernetes actions do).
    pub audit: Option<AuditRecord>,
}

/// An audit record started from a row: who, when, what, and the certificate before.
pub fn audit_base(action: &str, record: &Record, object: &str) -> AuditRecord {
    AuditRecord {
        time: crate::clock::rfc3339(crate::clock::now_unix()),
        actor: crate::actions::audit::actor(),
        action: action.to_owned(),
        record_id: record.id.clone(),
        location: record.location.clone(),
        context: record
            .k8s
            .as_ref()
            .map(|k| k.context.clone())
            .unwrap_or_default(),
        object: object.to_owned(),
        before_sha256: record.cert.as_ref().map(|c| c.sha256.clone()),
        before_not_after: record
            .cert
            .as_ref()
            .map(|c| crate::clock::rfc3339(c.not_after)),
        ..AuditRecord::default()
    }
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
            audit: None,
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
    audit: Option<AuditLog>,
}

impl Dispatcher {
    pub fn new(backends: Vec<Arc<dyn Backend>>, read_only: bool) -> Dispatcher {
        Dispatcher {
            backends,
            pending: Arc::new(Mutex::new(HashMap::new())),
            read_only,
            audit: None,
        }
    }

    /// Append a record of every action run to this log.
    pub fn with_audit(mut self, log: AuditLog) -> Dispatcher {
        self.audit = Some(log);
        self
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
        let audit = self.audit.clone();
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
                run_pending(&pending, token, &auto, &tx, audit.as_ref());
            } else {
                let _ = tx.send(AppEvent::Proposed { token, proposals }).await;
            }
        });
    }

    /// Run the confirmed plans `ids` of proposal `token`.
    pub fn execute(&self, token: u64, ids: &[String], tx: mpsc::Sender<AppEvent>) {
        run_pending(&self.pending, token, ids, &tx, self.audit.as_ref());
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
    audit: Option<&AuditLog>,
) {
    let Some(mut plans) = pending.lock().ok().and_then(|mut m| m.remove(&token)) else {
        return;
    };
    for id in ids {
        let Some(prepared) = plans.remove(id) else {
            continue;
        };
        let Some(run) = prepared.run else { continue };
        let record = prepared.audit.zip(audit.cloned());
        let reporter = Reporter::new(id.clone(), tx.clone());
        let tx = tx.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let result = run(reporter).await;
            let (ok, mut message) = match result {
                Ok(m) => (true, m),
                Err(e) => (false, e),
            };
            if let Some((mut rec, log)) = record {
                rec.time = crate::clock::rfc3339(crate::clock::now_unix());
                rec.outcome = if ok { "succeeded" } else { "failed" }.into();
                if !ok {
                    rec.failed_step = message
                        .strip_prefix("step ")
                        .and_then(|m| m.split(':').next())
                        .map(str::to_owned);
                    rec.error = Some(message.clone());
                }
                if let Err(e) = log.append(&rec) {
                    tracing::error!("audit log {}: {e}", log.path.display());
                    message.push_str(&format!(" (the audit log could not be written: {e})"));
                }
            }
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

/// The Kubernetes actions (cert-manager renew, TLS Secret rotate) for the dashboard.
pub struct K8sBackend {
    pub ctx: Arc<crate::actions::ActionContext>,
}

impl Backend for K8sBackend {
    fn plan(&self, kind: ActKind, record: &Record) -> Option<BoxFut<Prepared>> {
        if kind != ActKind::Builtin || record.k8s.is_none() {
            return None;
        }
        let ctx = self.ctx.clone();
        let record = record.clone();
        Some(Box::pin(async move {
            let Some(action) = crate::actions::offered(&record) else {
                let what = record
                    .k8s
                    .as_ref()
                    .map(|k| k.kind.clone())
                    .unwrap_or_default();
                return Prepared::refused(
                    &record,
                    "renew",
                    format!("no renew or rotate for this {what} row: only cert-manager Certificates and plain kubernetes.io/tls Secrets"),
                );
            };
            let title = match action {
                crate::actions::ActionKind::Renew => "Renew (cert-manager re-issue)",
                crate::actions::ActionKind::Rotate => "Rotate (new key and certificate)",
            };
            let plan = match crate::actions::plan(&ctx, action, &record).await {
                Ok(p) => p,
                Err(e) => return Prepared::refused(&record, title, e.to_string()),
            };
            let proposal = Proposal {
                record_id: record.id.clone(),
                location: record.location.clone(),
                title: title.to_owned(),
                preview: plan.preview(),
                destructive: plan.destructive,
                error: None,
            };
            let run = move |rep: Reporter| -> BoxFut<Result<String, String>> {
                Box::pin(async move {
                    let (etx, mut erx) = mpsc::channel(64);
                    let forward = tokio::spawn(async move {
                        while let Some(ev) = erx.recv().await {
                            if let crate::actions::ActionEvent::Progress { step, message, .. } = ev
                            {
                                rep.step(step.as_str(), message).await;
                            }
                        }
                    });
                    let result = crate::actions::execute(&ctx, &plan, &etx).await;
                    drop(etx);
                    let _ = forward.await;
                    result.map(|o| o.message).map_err(|e| e.to_string())
                })
            };
            Prepared {
                proposal,
                skip_confirm: false,
                run: Some(Box::new(run)),
                audit: None,
            }
        }))
    }
}

/// ACME renewal of `[[certificate]]` files, offered on the certificate file's row and on the
/// row of the endpoint that serves it.
pub struct AcmeBackend {
    pub issuers: Vec<crate::acme::AcmeIssuer>,
    pub files: Vec<crate::acme::ManagedFile>,
    /// Where account keys live (created 0600 on first use).
    pub account_dir: std::path::PathBuf,
    /// Each renewal's own audit record (with the new fingerprint and the backups) goes here.
    pub audit: Option<AuditLog>,
}

impl AcmeBackend {
    /// The managed file a row stands for: the leaf of the certificate file (`path` or
    /// `path#1`), or the endpoint that serves it.
    pub fn file_for(&self, record: &Record) -> Option<&crate::acme::ManagedFile> {
        use crate::model::SourceKind;
        self.files.iter().find(|f| match record.source {
            SourceKind::File => {
                let cert = f.cert.display().to_string();
                record.location == cert || record.location == format!("{cert}#1")
            }
            SourceKind::Tls => f.endpoint.as_deref().is_some_and(|e| {
                crate::sources::Target::parse(e, None)
                    .is_ok_and(|t| t.to_string() == record.location)
            }),
            _ => false,
        })
    }
}

impl Backend for AcmeBackend {
    fn plan(&self, kind: ActKind, record: &Record) -> Option<BoxFut<Prepared>> {
        if kind != ActKind::Builtin {
            return None;
        }
        let file = self.file_for(record)?.clone();
        let issuer = crate::acme::config::find_issuer(&self.issuers, &file).cloned();
        let account_dir = self.account_dir.clone();
        let audit_log = self.audit.clone();
        let record = record.clone();
        Some(Box::pin(async move {
            let title = "Renew (ACME re-issue)";
            let issuer = match issuer {
                Ok(i) => i,
                Err(e) => return Prepared::refused(&record, title, e.to_string()),
            };
            let plan = match crate::acme::plan(&issuer, &file, crate::clock::now_unix()).await {
                Ok(p) => p.with_account_dir(&account_dir),
                Err(e) => return Prepared::refused(&record, title, e.to_string()),
            };
            let proposal = Proposal {
                record_id: record.id.clone(),
                location: record.location.clone(),
                title: title.to_owned(),
                preview: plan.preview(),
                destructive: true,
                error: None,
            };
            let run = move |rep: Reporter| -> BoxFut<Result<String, String>> {
                Box::pin(async move {
                    let (ptx, mut prx) = mpsc::channel::<crate::acme::AcmeProgress>(64);
                    let forward = tokio::spawn(async move {
                        while let Some(p) = prx.recv().await {
                            rep.step(p.step.as_str(), p.message).await;
                        }
                    });
                    let result = crate::acme::execute(&plan, ptx).await;
                    let _ = forward.await;
                    if let Some(log) = &audit_log {
                        if let Err(e) =
                            log.append(&plan.audit_record(&result, crate::clock::now_unix()))
                        {
                            tracing::error!("audit log {}: {e}", log.path.display());
                        }
                    }
                    result
                        .map(|o| {
                            let verified = if o.endpoint_verified {
                                ", served by the endpoint"
                            } else {
                                ""
                            };
                            format!(
                                "renewed: sha256 {}…, expires {}{verified}",
                                &o.new_sha256[..16.min(o.new_sha256.len())],
                                crate::clock::rfc3339(o.new_not_after)
                            )
                        })
                        .map_err(|e| e.to_string())
                })
            };
            Prepared {
                proposal,
                skip_confirm: false,
                run: Some(Box::new(run)),
                audit: None,
            }
        }))
    }
}

/// Run a builtin action headless through the same backends as the dashboard: print each
/// plan, ask (unless `yes`), run, print progress, audit. Returns the exit code: 0 all done,
/// 1 a task failed, 3 nothing could be planned or the user declined.
pub async fn run_headless(d: &Dispatcher, records: Vec<Record>, yes: bool, dry_run: bool) -> i32 {
    use crate::report::exit;
    let (tx, mut rx) = mpsc::channel(256);
    d.propose(0, ActKind::Builtin, records, tx.clone());
    let proposals = loop {
        match rx.recv().await {
            Some(AppEvent::Proposed { proposals, .. }) => break proposals,
            Some(_) => continue,
            None => return exit::UNKNOWN,
        }
    };
    let mut runnable = Vec::new();
    let mut code = exit::OK;
    for p in &proposals {
        match &p.error {
            Some(e) => {
                eprintln!("certdeck: {}: {e}", p.location);
                code = exit::UNKNOWN;
            }
            None => {
                println!("{}", p.preview);
                runnable.push(p.record_id.clone());
            }
        }
    }
    if runnable.is_empty() {
        d.cancel(0);
        return exit::UNKNOWN;
    }
    if dry_run {
        d.cancel(0);
        println!("dry run: nothing was written");
        return code;
    }
    if !yes && !crate::actions::headless::confirm(runnable.len()) {
        d.cancel(0);
        eprintln!("certdeck: declined; nothing was done");
        return exit::UNKNOWN;
    }
    d.execute(0, &runnable, tx);
    let mut left = runnable.len();
    while left > 0 {
        match rx.recv().await {
            Some(AppEvent::TaskProgress {
                record_id,
                step,
                message,
            }) => println!("{record_id} [{step}] {message}"),
            Some(AppEvent::TaskFinished {
                record_id,
                ok,
                message,
            }) => {
                left -= 1;
                if ok {
                    println!("{record_id}: done: {message}");
                } else {
                    eprintln!("certdeck: {record_id}: failed: {message}");
                    code = crate::actions::headless::FAILED;
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    code
}
