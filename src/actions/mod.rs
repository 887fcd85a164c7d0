//! Actions on certificates, in one framework.
//!
//! Every action has the same life: a [`Backend`] offers verbs for a row and *plans* one (the
//! exact change as a [`Plan`], shown before anything happens) -> the user confirms -> the
//! [`Session`] runs the plan's job, which reports [`Progress`] in [`Step`]s -> the job
//! verifies by re-reading or re-probing -> one [`audit`] record. A failed step leaves the
//! previous certificate in service, and the [`ActionError`] carries the step.
//!
//! The framework owns confirmation, `--read-only`, dry runs, the audit log, bulk runs and the
//! headless runner; backends own planning, their steps and verification. Backends know
//! nothing of the app, the UI or the CLI: they emit events the app maps. The dashboard and
//! the headless `renew` / `rotate` / `action` commands run exactly the same code. Private keys
//! are never shown, logged or put in events.

pub mod audit;
pub mod command;
pub mod headless;
pub mod hooks;
pub mod k8s;
pub mod keys;
pub mod session;

use std::fmt;
use std::path::PathBuf;

use tokio::sync::mpsc;

pub use audit::{AuditLog, AuditRecord};
pub use session::{Session, SessionEvent};

use crate::model::Record;
use crate::sources::BoxFut;

/// Config-file sections the actions read (`[[action]]`).
pub const SECTIONS: &[&str] = &["action"];

/// The steps of an action, in the order they usually run. One enum for every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// Describing the change (nothing written).
    Plan,
    /// Reading the object again before writing.
    Read,
    /// ACME: the directory and the account.
    Account,
    /// ACME: placing the order.
    Order,
    /// ACME: proving control of each name.
    Authorize,
    /// Issuing the new certificate locally.
    Issue,
    /// ACME: sending the CSR for a fresh key.
    Finalize,
    /// ACME: fetching the issued chain.
    Download,
    /// Saving what is about to be replaced.
    Backup,
    /// The write (API call, files replaced).
    Write,
    /// Making a server load the new files.
    Reload,
    /// A running server takes the new certificate (the demo).
    Install,
    /// A user-defined command.
    Run,
    /// Waiting for someone else (cert-manager) to finish.
    Wait,
    /// Reading back / re-probing and checking.
    Verify,
    /// Putting the previous state back after a failure.
    Rollback,
    Done,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Plan => "plan",
            Step::Read => "read",
            Step::Account => "account",
            Step::Order => "order",
            Step::Authorize => "authorize",
            Step::Issue => "issue",
            Step::Finalize => "finalize",
            Step::Download => "download",
            Step::Backup => "backup",
            Step::Write => "write",
            Step::Reload => "reload",
            Step::Install => "install",
            Step::Run => "run",
            Step::Wait => "wait",
            Step::Verify => "verify",
            Step::Rollback => "rollback",
            Step::Done => "done",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an action could not be planned or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// certdeck is read-only.
    ReadOnly,
    /// No row has this id or location.
    UnknownRow,
    /// This row cannot take this action (the message says what it can take).
    NotApplicable,
    /// A step ran out of time.
    Timeout,
    /// A step failed.
    Failed,
}

/// Why an action failed or was refused: the kind, the step it failed at (if it got that
/// far), and a message to act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ActionError {
    pub kind: ErrorKind,
    pub step: Option<Step>,
    pub message: String,
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.step {
            Some(s) => write!(f, "step {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl ActionError {
    /// A failed step.
    pub fn at(step: Step, message: impl Into<String>) -> ActionError {
        ActionError {
            kind: ErrorKind::Failed,
            step: Some(step),
            message: message.into(),
        }
    }

    /// A step that ran out of time.
    pub fn timeout(step: Step, message: impl Into<String>) -> ActionError {
        ActionError {
            kind: ErrorKind::Timeout,
            step: Some(step),
            message: message.into(),
        }
    }

    /// The plan cannot be made (or is stale at run time): nothing was changed.
    pub fn planning(message: impl Into<String>) -> ActionError {
        ActionError {
            kind: ErrorKind::NotApplicable,
            step: Some(Step::Plan),
            message: message.into(),
        }
    }

    /// The row cannot take the action.
    pub fn not_applicable(message: impl Into<String>) -> ActionError {
        ActionError {
            kind: ErrorKind::NotApplicable,
            step: None,
            message: message.into(),
        }
    }

    pub fn read_only() -> ActionError {
        ActionError {
            kind: ErrorKind::ReadOnly,
            step: None,
            message: "refused: certdeck is in read-only mode".to_owned(),
        }
    }

    pub fn unknown_row(id: &str) -> ActionError {
        ActionError {
            kind: ErrorKind::UnknownRow,
            step: None,
            message: format!(
                "no row with id or location '{id}' (run `certdeck scan -o json` with the same flags to list ids)"
            ),
        }
    }

    /// The step that failed, if the action got that far.
    pub fn step(&self) -> Option<Step> {
        self.step
    }

    /// True for refusals and rows that cannot take the action (nothing was tried).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ReadOnly | ErrorKind::UnknownRow | ErrorKind::NotApplicable
        )
    }
}

/// How much an action changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Risk {
    /// Looks only (a user command marked as such).
    Inspect,
    /// Changes something that can be put back (a backup is kept).
    Change,
    /// Replaces what a service is serving: confirm carefully.
    Destructive,
}

/// A file an action writes, and where its current contents are saved first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// `certificate`, `chain`, `key (0600 if new)`...
    pub role: String,
    pub path: PathBuf,
    /// Whether the file exists now (and so is backed up before it is replaced).
    pub exists: bool,
}

/// The exact change an action will make, read at plan time. Rendered by [`Plan::preview`]
/// in the confirm popup and by the headless commands alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What the audit log calls it: `renew`, `rotate`, `acme-renew`, `hook: NAME`...
    pub action: String,
    /// The verb the user asked for (`renew`, `rotate`, a user action's name).
    pub verb: String,
    /// e.g. "Renew (cert-manager re-issue)".
    pub title: String,
    pub record_id: String,
    pub location: String,
    /// The object changed: `Certificate team-a/web`, a file, an endpoint.
    pub object: String,
    /// Where: a Kubernetes context, an ACME directory.
    pub context: Option<String>,
    /// Who acts there (the kubeconfig user), for the audit log.
    pub identity: Option<String>,
    pub old_not_after: Option<i64>,
    /// The new expiry when known in advance.
    pub new_not_after: Option<i64>,
    /// What to say when it is not known ("as the issuer decides").
    pub new_expiry_note: Option<String>,
    pub issuer: Option<String>,
    pub names: Vec<String>,
    /// A new key of this type is made.
    pub key_type: Option<String>,
    pub before_sha256: Option<String>,
    /// Further facts, as (label, value) lines.
    pub details: Vec<(String, String)>,
    /// Files written, with their backups.
    pub files: Vec<PlannedFile>,
    /// Where the current state is saved before the change (a Secret backup file).
    pub backup: Option<PathBuf>,
    /// The heading of `steps`: "API calls", "commands", "steps".
    pub steps_label: String,
    /// The API calls, commands or steps, in order.
    pub steps: Vec<String>,
    pub warnings: Vec<String>,
    pub risk: Risk,
    /// Ask before running (false only for user commands with `confirm = false`).
    pub confirm: bool,
}

impl Plan {
    /// A plan with the row's facts filled in; the backend adds the rest.
    pub fn for_record(
        action: &str,
        verb: &str,
        title: &str,
        record: &Record,
        object: &str,
    ) -> Plan {
        Plan {
            action: action.to_owned(),
            verb: verb.to_owned(),
            title: title.to_owned(),
            record_id: record.id.clone(),
            location: record.location.clone(),
            object: object.to_owned(),
            context: None,
            identity: None,
            old_not_after: record.cert.as_ref().map(|c| c.not_after),
            new_not_after: None,
            new_expiry_note: None,
            issuer: None,
            names: Vec::new(),
            key_type: None,
            before_sha256: record.cert.as_ref().map(|c| c.sha256.clone()),
            details: Vec::new(),
            files: Vec::new(),
            backup: None,
            steps_label: "steps".to_owned(),
            steps: Vec::new(),
            warnings: Vec::new(),
            risk: Risk::Destructive,
            confirm: true,
        }
    }

    /// The preview shown before confirmation: object, expiry, issuer, names, key, files and
    /// backups, the calls or commands, and notes. Outside text is made terminal-safe.
    pub fn preview(&self) -> String {
        use std::fmt::Write as _;
        let clean = |s: &str| crate::model::text::clean(s).into_owned();
        let date = |t: Option<i64>| t.map(crate::clock::rfc3339);
        let mut s = String::new();
        let _ = write!(s, "{}: {}", clean(&self.title), clean(&self.object));
        if let Some(c) = &self.context {
            let _ = write!(s, " in context {}", clean(c));
        }
        s.push('\n');
        let _ = writeln!(
            s,
            "  row:        {} ({})",
            self.record_id,
            clean(&self.location)
        );
        if self.old_not_after.is_some()
            || self.new_not_after.is_some()
            || self.new_expiry_note.is_some()
        {
            let _ = writeln!(
                s,
                "  expires:    {} -> {}",
                date(self.old_not_after).unwrap_or_else(|| "unknown".into()),
                date(self.new_not_after).unwrap_or_else(|| self
                    .new_expiry_note
                    .clone()
                    .unwrap_or_else(|| "as the issuer decides".into()))
            );
        }
        if let Some(i) = &self.issuer {
            let _ = writeln!(s, "  issuer:     {}", clean(i));
        }
        if !self.names.is_empty() {
            let _ = writeln!(s, "  names:      {}", clean(&self.names.join(", ")));
        }
        if let Some(k) = &self.key_type {
            let _ = writeln!(s, "  key:        {k} (new key)");
        }
        for (label, value) in &self.details {
            let _ = writeln!(s, "  {:<11} {}", format!("{label}:"), clean(value));
        }
        if !self.files.is_empty() {
            let _ = writeln!(s, "  writes:");
            for f in &self.files {
                let what = if f.exists {
                    "backed up first"
                } else {
                    "new file"
                };
                let _ = writeln!(
                    s,
                    "    {:<22} {}  ({what})",
                    f.role,
                    clean(&f.path.display().to_string())
                );
            }
        }
        if let Some(b) = &self.backup {
            let _ = writeln!(s, "  backup:     {}", b.display());
        }
        if let Some(sha) = &self.before_sha256 {
            let _ = writeln!(s, "  current:    sha256 {sha}");
        }
        if !self.steps.is_empty() {
            let _ = writeln!(s, "  {}:", self.steps_label);
            for c in &self.steps {
                let _ = writeln!(s, "    {}", clean(c));
            }
        }
        for w in &self.warnings {
            let _ = writeln!(s, "  note: {}", clean(w));
        }
        s
    }
}

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub after_sha256: Option<String>,
    pub new_not_after: Option<i64>,
    pub revision: Option<i64>,
    /// Backups of what was replaced.
    pub backups: Vec<PathBuf>,
    /// The command that restores the previous state, when there is one.
    pub restore_command: Option<String>,
    /// One line for the user.
    pub message: String,
}

/// One progress line of a running action. Never holds key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub record_id: String,
    pub step: Step,
    pub message: String,
}

/// How an action ended, for whoever watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub record_id: String,
    pub title: String,
    pub result: Result<Outcome, ActionError>,
    /// The audit log could not be written (the action's own result stands).
    pub audit_error: Option<String>,
}

/// What running actions tell the app or the headless runner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionEvent {
    Progress(Progress),
    Finished(Finished),
}

/// A running action's handle for reporting its steps.
#[derive(Clone)]
pub struct Reporter {
    record_id: String,
    tx: mpsc::Sender<ActionEvent>,
}

impl Reporter {
    pub fn new(record_id: impl Into<String>, tx: mpsc::Sender<ActionEvent>) -> Reporter {
        Reporter {
            record_id: record_id.into(),
            tx,
        }
    }

    /// A reporter nobody listens to (tests, engines run on their own).
    pub fn silent(record_id: impl Into<String>) -> Reporter {
        let (tx, _rx) = mpsc::channel(1);
        Reporter::new(record_id, tx)
    }

    pub fn record_id(&self) -> &str {
        &self.record_id
    }

    /// Report a step. A closed channel (nobody listening) does not stop the action.
    pub async fn step(&self, step: Step, message: impl Into<String>) {
        let message = message.into();
        tracing::info!("{} [{}] {}", self.record_id, step.as_str(), message);
        let _ = self
            .tx
            .send(ActionEvent::Progress(Progress {
                record_id: self.record_id.clone(),
                step,
                message,
            }))
            .await;
    }
}

/// The work of a planned action.
pub type Job = Box<dyn FnOnce(Reporter) -> BoxFut<'static, Result<Outcome, ActionError>> + Send>;

/// A planned action: the exact change and the work that makes it.
pub struct Prepared {
    pub plan: Plan,
    pub job: Job,
}

/// An action a row offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// `renew`, `rotate`, a user action's name.
    pub verb: String,
    /// "Renew (cert-manager re-issue)".
    pub title: String,
    /// The row's own action (the dashboard's `n`), as opposed to a user-defined command.
    pub builtin: bool,
}

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The row's own action, whatever it is (the dashboard's `n`).
    Default,
    /// A verb by name: `renew`, `rotate`, or a user action's name.
    Verb(String),
}

impl Request {
    pub fn label(&self) -> &str {
        match self {
            Request::Default => "action",
            Request::Verb(v) => v,
        }
    }
}

/// A kind of place that can act on its rows.
pub trait Backend: Send + Sync {
    /// The actions this backend offers for a row; empty when the row is not its own.
    fn offers(&self, record: &Record) -> Vec<Offer>;

    /// Read what is needed and describe the exact change for `verb`; writes nothing.
    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>>;
}

/// Options every action may use, resolved once from the command line and the config file.
#[derive(Debug, Clone)]
pub struct ActionOptions {
    /// How long an action waits for someone else (cert-manager) to finish.
    pub wait: std::time::Duration,
    /// Time limit of each API request (each backend has its default).
    pub request_timeout: Option<std::time::Duration>,
    /// The CA that signs rotated CA-signed certificates (`rotate --ca-secret/--ca-cert`).
    pub ca: Option<k8s::CaSource>,
    /// Where backups go and how long they are kept.
    pub backups: crate::fsx::Backups,
}

impl Default for ActionOptions {
    fn default() -> Self {
        ActionOptions {
            wait: std::time::Duration::from_secs(300),
            request_timeout: None,
            ca: None,
            backups: crate::fsx::Backups::in_data_dir(),
        }
    }
}

/// The certificate file an upload (a cloud store's import) is given: its leaf and the
/// certificates after it. An error when nothing in it parses; a refusal when the leaf has
/// expired or is not valid yet (a store would take it and serve it broken).
pub fn upload_leaf(
    path: &std::path::Path,
    pem: &[u8],
    now: i64,
) -> Result<
    (
        std::sync::Arc<crate::model::CertFacts>,
        Vec<std::sync::Arc<crate::model::CertFacts>>,
    ),
    ActionError,
> {
    let (mut certs, problem) = crate::sources::pem::parse_chain(&String::from_utf8_lossy(pem));
    if certs.is_empty() {
        return Err(ActionError::at(
            Step::Read,
            format!(
                "{} holds no certificate that parses{}",
                path.display(),
                problem.map(|p| format!(": {p}")).unwrap_or_default()
            ),
        ));
    }
    let leaf = certs.remove(0);
    if leaf.not_after <= now {
        return Err(ActionError::not_applicable(format!(
            "the certificate in {} expired on {}",
            path.display(),
            crate::clock::rfc3339(leaf.not_after)
        )));
    }
    if leaf.not_before > now {
        return Err(ActionError::not_applicable(format!(
            "the certificate in {} is not valid before {}",
            path.display(),
            crate::clock::rfc3339(leaf.not_before)
        )));
    }
    Ok((leaf, certs))
}

#[cfg(test)]
mod upload_tests {
    use super::*;

    fn pem(not_before: i64, not_after: i64) -> String {
        let mut p = rcgen::CertificateParams::new(vec!["up.example".to_owned()]).expect("params");
        p.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).expect("nb");
        p.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).expect("na");
        let key = rcgen::KeyPair::generate().expect("key");
        p.self_signed(&key).expect("cert").pem()
    }

    /// A store import refuses an expired or not-yet-valid leaf, and says what a file that
    /// holds no certificate is; a good one gives its leaf and what follows it.
    #[test]
    fn an_upload_takes_a_valid_leaf_and_refuses_the_rest() {
        let now = 1_800_000_000;
        let path = std::path::Path::new("/etc/tls/up.pem");
        let day = 86_400;
        let both = format!(
            "{}{}",
            pem(now - day, now + day),
            pem(now - day, now + 9 * day)
        );
        let (leaf, rest) = upload_leaf(path, both.as_bytes(), now).expect("valid");
        assert_eq!(leaf.not_after, now + day);
        assert_eq!(rest.len(), 1);
        let e = upload_leaf(path, pem(now - 9 * day, now - day).as_bytes(), now).unwrap_err();
        assert!(
            e.to_string()
                .contains("the certificate in /etc/tls/up.pem expired on"),
            "{e}"
        );
        let e = upload_leaf(path, pem(now + day, now + 9 * day).as_bytes(), now).unwrap_err();
        assert!(e.to_string().contains("is not valid before"), "{e}");
        let e = upload_leaf(path, b"garbage", now).unwrap_err();
        assert!(
            e.to_string().contains(
                "/etc/tls/up.pem holds no certificate that parses: no PEM certificate in it"
            ),
            "{e}"
        );
    }
}
