//! Actions on certificates: cert-manager renew and plain TLS Secret rotate.
//!
//! Every action has the same life: [`plan`] (reads the object and describes the exact change,
//! shown with [`Plan::preview`]) -> the caller confirms -> [`execute`] runs the steps, sending
//! [`ActionEvent`]s on a channel -> verifies by reading back -> writes an [`audit`] record.
//! A failed step leaves the previous certificate in service and says which step failed.
//! [`run_bulk`] runs several plans with per-row progress. The dashboard and the headless
//! `certdeck renew` / `certdeck rotate` commands use these same functions. Private keys are
//! never shown, logged or put in events.

pub mod audit;
pub mod headless;
pub mod renew;
pub mod rotate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::model::Record;
use crate::sources::k8s::{K8sError, KubeAccess};
pub use audit::{AuditLog, AuditRecord};

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Ask cert-manager to re-issue a Certificate (as `cmctl renew` does).
    Renew,
    /// Re-issue a plain TLS Secret's certificate and key with rcgen.
    Rotate,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Renew => "renew",
            ActionKind::Rotate => "rotate",
        }
    }
}

/// The steps of an action, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Reading the object again before writing.
    Read,
    /// Issuing the new certificate locally (rotate).
    Issue,
    /// Saving the old Secret (rotate).
    Backup,
    /// The API write.
    Write,
    /// Waiting for cert-manager (renew).
    Wait,
    /// Reading back and checking.
    Verify,
    /// Putting the old Secret back after a failed verification (rotate).
    Rollback,
    Done,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Read => "read",
            Step::Issue => "issue",
            Step::Backup => "backup",
            Step::Write => "write",
            Step::Wait => "wait",
            Step::Verify => "verify",
            Step::Rollback => "rollback",
            Step::Done => "done",
        }
    }
}

/// Progress of a running action, keyed by the row (record id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionEvent {
    Progress {
        record_id: String,
        step: Step,
        message: String,
    },
    /// The action ended (sent by [`execute`] for every plan, including in bulk).
    Finished {
        record_id: String,
        result: Result<Outcome, String>,
    },
}

/// Why an action failed or was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ActionError {
    #[error("refused: certdeck is in read-only mode")]
    ReadOnly,
    #[error("no Kubernetes row with id or location '{0}' (run `certdeck scan` with the same Kubernetes flags to list ids)")]
    UnknownId(String),
    #[error("{0}")]
    NotApplicable(String),
    #[error("step {step}: {source}", step = .step.as_str())]
    K8s {
        step: Step,
        #[source]
        source: K8sError,
    },
    #[error("step {step}: timed out after {} ({what})", humantime::format_duration(*.after), step = .step.as_str())]
    Timeout {
        step: Step,
        after: Duration,
        what: String,
    },
    #[error("cert-manager reports the issuance failed: {reason}: {message}")]
    IssuanceFailed { reason: String, message: String },
    #[error("step issue: {0}")]
    Issue(String),
    #[error("step backup: {0}")]
    Backup(String),
    #[error("step verify: {0}")]
    Verify(String),
    #[error("the audit log could not be written: {0}")]
    Audit(String),
}

impl ActionError {
    /// The step that failed, if the action got that far.
    pub fn step(&self) -> Option<Step> {
        match self {
            ActionError::K8s { step, .. } | ActionError::Timeout { step, .. } => Some(*step),
            ActionError::IssuanceFailed { .. } => Some(Step::Wait),
            ActionError::Issue(_) => Some(Step::Issue),
            ActionError::Backup(_) => Some(Step::Backup),
            ActionError::Verify(_) => Some(Step::Verify),
            _ => None,
        }
    }

    fn k8s(step: Step) -> impl FnOnce(K8sError) -> ActionError {
        move |source| match source {
            K8sError::Timeout { what, after } => ActionError::Timeout { step, after, what },
            source => ActionError::K8s { step, source },
        }
    }
}

/// Where the CA that signs a rotated certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A Secret (`tls.crt` + `tls.key`) in the same context: `namespace/name`.
    Secret { namespace: String, name: String },
    /// PEM files.
    Files { cert: PathBuf, key: PathBuf },
}

/// Everything actions need: cluster access, limits, the audit log and where backups go.
#[derive(Debug, Clone)]
pub struct ActionContext {
    pub access: KubeAccess,
    /// Time limit of each API request.
    pub timeout: Duration,
    /// How long a renew waits for cert-manager to finish.
    pub wait: Duration,
    /// Interval between reads while waiting.
    pub poll: Duration,
    /// Refuse every action.
    pub read_only: bool,
    pub audit: AuditLog,
    /// Directory of Secret backups (files 0600).
    pub backup_dir: PathBuf,
    /// CA for rotating CA-signed Secrets.
    pub ca: Option<CaSource>,
    /// The local user, for the audit log.
    pub actor: String,
}

impl ActionContext {
    /// A context with defaults: 10 s requests, 5 min wait, 1 s poll, audit log and backups in
    /// the data directory.
    pub fn new(access: KubeAccess) -> ActionContext {
        let dir = audit::data_dir().unwrap_or_else(|| PathBuf::from("."));
        ActionContext {
            access,
            timeout: Duration::from_secs(10),
            wait: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            read_only: false,
            audit: AuditLog::new(dir.join("audit.jsonl")),
            backup_dir: dir.join("backups"),
            ca: None,
            actor: audit::actor(),
        }
    }

    async fn client(&self, context: &str, step: Step) -> Result<kube::Client, ActionError> {
        self.access
            .client(context, self.timeout)
            .await
            .map_err(ActionError::k8s(step))
    }
}

/// The exact change an action will make, read from the cluster at plan time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: ActionKind,
    pub record_id: String,
    pub location: String,
    pub context: String,
    pub namespace: String,
    /// The object written: `Certificate team-a/web` or `Secret team-a/web-tls`.
    pub object: String,
    /// Certificate name (renew).
    pub certificate: Option<String>,
    /// The Secret holding the certificate.
    pub secret: String,
    /// resourceVersion read at plan time (the write's precondition for rotate).
    pub resource_version: Option<String>,
    pub old_not_after: Option<i64>,
    /// Expected new expiry (rotate: exact; renew: decided by the issuer, so None).
    pub new_not_after: Option<i64>,
    /// Who signs the new certificate.
    pub issuer: String,
    pub sans: Vec<String>,
    pub key_type: Option<String>,
    pub before_sha256: Option<String>,
    /// Certificate revision at plan time (renew).
    pub revision: Option<i64>,
    /// The API calls, in order, as `METHOD path (what)`.
    pub api_calls: Vec<String>,
    /// Anything the user should read before confirming.
    pub warnings: Vec<String>,
    /// Writes an object the cluster serves (always true for renew and rotate).
    pub destructive: bool,
    /// The file the current Secret is saved to before the write (rotate).
    pub backup: Option<PathBuf>,
}

impl Plan {
    /// The preview shown before confirmation: object, old and new expiry, issuer, API calls.
    pub fn preview(&self) -> String {
        use std::fmt::Write as _;
        let date = |t: Option<i64>| t.map(crate::clock::rfc3339);
        let mut s = String::new();
        let verb = match self.kind {
            ActionKind::Renew => "Renew (cert-manager re-issue)",
            ActionKind::Rotate => "Rotate (new key and certificate)",
        };
        let _ = writeln!(s, "{verb}: {} in context {}", self.object, self.context);
        let _ = writeln!(s, "  row:        {} ({})", self.record_id, self.location);
        if let Some(c) = &self.certificate {
            let _ = writeln!(s, "  Certificate: {c} -> Secret {}", self.secret);
        }
        let _ = writeln!(
            s,
            "  expires:    {} -> {}",
            date(self.old_not_after).unwrap_or_else(|| "unknown".into()),
            date(self.new_not_after).unwrap_or_else(|| "as the issuer decides".into())
        );
        let _ = writeln!(s, "  issuer:     {}", self.issuer);
        if !self.sans.is_empty() {
            let _ = writeln!(s, "  names:      {}", self.sans.join(", "));
        }
        if let Some(k) = &self.key_type {
            let _ = writeln!(s, "  key:        {k} (new key)");
        }
        if let Some(r) = self.revision {
            let _ = writeln!(s, "  revision:   {r} -> {}", r + 1);
        }
        if let Some(b) = &self.backup {
            let _ = writeln!(s, "  backup:     {}", b.display());
        }
        if let Some(sha) = &self.before_sha256 {
            let _ = writeln!(s, "  current:    sha256 {sha}");
        }
        let _ = writeln!(s, "  API calls:");
        for c in &self.api_calls {
            let _ = writeln!(s, "    {c}");
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  note: {w}");
        }
        s
    }
}

/// The result of a successful action.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub record_id: String,
    pub after_sha256: Option<String>,
    pub new_not_after: Option<i64>,
    pub revision: Option<i64>,
    /// Backup of the previous Secret (rotate), and the command that restores it.
    pub backup: Option<PathBuf>,
    pub restore_command: Option<String>,
    pub message: String,
}

/// Which action a row offers: renew for a row managed by cert-manager, rotate for a plain
/// `kubernetes.io/tls` Secret's `tls.crt`, none otherwise.
pub fn offered(record: &Record) -> Option<ActionKind> {
    let k = record.k8s.as_ref()?;
    if k.managed_by.is_some() {
        return Some(ActionKind::Renew);
    }
    (k.kind == "Secret"
        && k.key.as_deref() == Some("tls.crt")
        && k.secret_type.as_deref() == Some(crate::sources::k8s::read::TLS_SECRET_TYPE))
    .then_some(ActionKind::Rotate)
}

/// Read the object behind a row and describe the exact change. Does not write anything.
pub async fn plan(
    ctx: &ActionContext,
    kind: ActionKind,
    record: &Record,
) -> Result<Plan, ActionError> {
    match kind {
        ActionKind::Renew => renew::plan(ctx, record).await,
        ActionKind::Rotate => rotate::plan(ctx, record).await,
    }
}

async fn progress(tx: &mpsc::Sender<ActionEvent>, plan: &Plan, step: Step, message: String) {
    tracing::info!(
        "{} {}: {}: {message}",
        plan.kind.as_str(),
        plan.location,
        step.as_str()
    );
    let _ = tx
        .send(ActionEvent::Progress {
            record_id: plan.record_id.clone(),
            step,
            message,
        })
        .await;
}

fn audit_base(ctx: &ActionContext, plan: &Plan) -> AuditRecord {
    AuditRecord {
        time: crate::clock::rfc3339(crate::clock::now_unix()),
        actor: ctx.actor.clone(),
        kube_user: ctx.access.context_user(&plan.context),
        action: plan.kind.as_str().to_owned(),
        record_id: plan.record_id.clone(),
        location: plan.location.clone(),
        context: plan.context.clone(),
        object: plan.object.clone(),
        before_sha256: plan.before_sha256.clone(),
        before_not_after: plan.old_not_after.map(crate::clock::rfc3339),
        ..AuditRecord::default()
    }
}

/// Run a confirmed plan: the steps, progress events on `tx`, the read-back check, and the
/// audit record. Sends [`ActionEvent::Finished`] at the end whatever the result.
pub async fn execute(
    ctx: &ActionContext,
    plan: &Plan,
    tx: &mpsc::Sender<ActionEvent>,
) -> Result<Outcome, ActionError> {
    let result = if ctx.read_only {
        Err(ActionError::ReadOnly)
    } else {
        match plan.kind {
            ActionKind::Renew => renew::execute(ctx, plan, tx).await,
            ActionKind::Rotate => rotate::execute(ctx, plan, tx).await,
        }
    };
    let mut rec = audit_base(ctx, plan);
    match &result {
        Ok(o) => {
            rec.outcome = "succeeded".into();
            rec.after_sha256 = o.after_sha256.clone();
            rec.after_not_after = o.new_not_after.map(crate::clock::rfc3339);
            rec.backup = o.backup.as_ref().map(|p| p.display().to_string());
        }
        Err(e) => {
            rec.outcome = if *e == ActionError::ReadOnly {
                "refused"
            } else {
                "failed"
            }
            .into();
            rec.failed_step = e.step().map(|s| s.as_str().to_owned());
            rec.error = Some(e.to_string());
            if let Some(b) = plan.backup.as_ref().filter(|b| b.exists()) {
                rec.backup = Some(b.display().to_string());
            }
        }
    }
    let audited = ctx.audit.append(&rec);
    let result = match (result, audited) {
        (Ok(_), Err(e)) => Err(ActionError::Audit(e.to_string())),
        (r, Err(e)) => {
            tracing::error!("audit log {}: {e}", ctx.audit.path.display());
            r
        }
        (r, Ok(())) => r,
    };
    let _ = tx
        .send(ActionEvent::Finished {
            record_id: plan.record_id.clone(),
            result: result.clone().map_err(|e| e.to_string()),
        })
        .await;
    result
}

/// Record a dry run (the plan was shown, nothing was written) in the audit log.
pub fn record_dry_run(ctx: &ActionContext, plan: &Plan) -> Result<(), ActionError> {
    let mut rec = audit_base(ctx, plan);
    rec.outcome = "dry_run".into();
    ctx.audit
        .append(&rec)
        .map_err(|e| ActionError::Audit(e.to_string()))
}

/// Record a refusal (read-only mode) in the audit log.
pub fn record_refusal(ctx: &ActionContext, kind: ActionKind, id: &str) -> Result<(), ActionError> {
    let rec = AuditRecord {
        time: crate::clock::rfc3339(crate::clock::now_unix()),
        actor: ctx.actor.clone(),
        action: kind.as_str().to_owned(),
        record_id: id.to_owned(),
        outcome: "refused".into(),
        error: Some(ActionError::ReadOnly.to_string()),
        ..AuditRecord::default()
    };
    ctx.audit
        .append(&rec)
        .map_err(|e| ActionError::Audit(e.to_string()))
}

/// Run several confirmed plans, at most `concurrency` at once, each sending its own progress
/// (events carry the record id). Returns every result, in the order of `plans`.
pub async fn run_bulk(
    ctx: Arc<ActionContext>,
    plans: Vec<Plan>,
    concurrency: usize,
    tx: mpsc::Sender<ActionEvent>,
) -> Vec<(String, Result<Outcome, ActionError>)> {
    use futures::StreamExt as _;
    let n = plans.len();
    let mut results: Vec<(usize, String, Result<Outcome, ActionError>)> =
        futures::stream::iter(plans.into_iter().enumerate().map(|(i, p)| {
            let ctx = ctx.clone();
            let tx = tx.clone();
            async move {
                let r = execute(&ctx, &p, &tx).await;
                (i, p.record_id, r)
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _, _)| *i);
    debug_assert_eq!(results.len(), n);
    results.into_iter().map(|(_, id, r)| (id, r)).collect()
}

/// Find the Kubernetes rows with these ids (or locations) by reading the clusters once.
pub async fn find_records(
    settings: crate::sources::k8s::K8sSettings,
    ids: &[String],
) -> Vec<Result<Record, ActionError>> {
    let inv = crate::sources::Inventory {
        k8s: Some(settings),
        ..crate::sources::Inventory::default()
    };
    let (records, _) = crate::sources::scan(inv, crate::sources::ProbeSettings::default()).await;
    ids.iter()
        .map(|id| {
            records
                .iter()
                .find(|r| r.k8s.is_some() && (r.id == *id || r.location == *id))
                .cloned()
                .ok_or_else(|| ActionError::UnknownId(id.clone()))
        })
        .collect()
}

fn k8s_of(record: &Record) -> Result<&crate::model::K8sInfo, ActionError> {
    record.k8s.as_ref().ok_or_else(|| {
        ActionError::NotApplicable(format!(
            "{} is not a Kubernetes row: renew and rotate act on Kubernetes objects",
            record.location
        ))
    })
}
