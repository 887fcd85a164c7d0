//! The audit log: one JSON line per action, dry run or refusal (who, when, what, the
//! fingerprints before and after, the outcome) in the data directory. One writer for every
//! backend. Never holds key material.

use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ActionError, Outcome, Plan};
use crate::model::Record;

/// Largest audit log read back (`certdeck` only appends; reading is for tests and tools).
const MAX_AUDIT_BYTES: u64 = 256 * 1024 * 1024;

/// One audit line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC.
    pub time: String,
    /// The local user running certdeck.
    pub actor: String,
    /// The identity used where the change is made (the context's kubeconfig user).
    pub kube_user: Option<String>,
    /// `renew`, `rotate`, `acme-renew`, `hook: NAME`...
    pub action: String,
    pub record_id: String,
    pub location: String,
    pub context: String,
    /// `Certificate team-a/web`, `Secret team-a/web-tls`, a file, an endpoint.
    pub object: String,
    /// `succeeded`, `failed`, `dry_run` or `refused`.
    pub outcome: String,
    /// The step that failed, if any.
    pub failed_step: Option<String>,
    pub error: Option<String>,
    pub before_sha256: Option<String>,
    pub after_sha256: Option<String>,
    pub before_not_after: Option<String>,
    pub after_not_after: Option<String>,
    /// Backups of what was replaced (space-separated when several).
    pub backup: Option<String>,
    /// The command that restores the previous state.
    #[serde(default)]
    pub restore_command: Option<String>,
}

impl AuditRecord {
    /// A record started from a row: who, when, what, and the certificate before.
    pub fn for_row(action: &str, record: &Record) -> AuditRecord {
        AuditRecord {
            time: crate::clock::rfc3339(crate::clock::now_unix()),
            actor: actor(),
            action: action.to_owned(),
            record_id: record.id.clone(),
            location: record.location.clone(),
            context: record
                .k8s
                .as_ref()
                .map(|k| k.context.clone())
                .unwrap_or_default(),
            object: record.location.clone(),
            before_sha256: record.cert.as_ref().map(|c| c.sha256.clone()),
            before_not_after: record
                .cert
                .as_ref()
                .map(|c| crate::clock::rfc3339(c.not_after)),
            ..AuditRecord::default()
        }
    }

    /// A record started from a plan.
    pub fn for_plan(plan: &Plan) -> AuditRecord {
        AuditRecord {
            time: crate::clock::rfc3339(crate::clock::now_unix()),
            actor: actor(),
            kube_user: plan.identity.clone(),
            action: plan.action.clone(),
            record_id: plan.record_id.clone(),
            location: plan.location.clone(),
            context: plan.context.clone().unwrap_or_default(),
            object: plan.object.clone(),
            before_sha256: plan.before_sha256.clone(),
            before_not_after: plan.old_not_after.map(crate::clock::rfc3339),
            backup: plan
                .backup
                .as_ref()
                .filter(|b| b.exists())
                .map(|b| b.display().to_string()),
            ..AuditRecord::default()
        }
    }

    /// Fill in how the action ended.
    pub fn complete(&mut self, result: &Result<Outcome, ActionError>) {
        self.time = crate::clock::rfc3339(crate::clock::now_unix());
        match result {
            Ok(o) => {
                self.outcome = "succeeded".into();
                self.after_sha256 = o.after_sha256.clone();
                self.after_not_after = o.new_not_after.map(crate::clock::rfc3339);
                if !o.backups.is_empty() {
                    let b: Vec<String> =
                        o.backups.iter().map(|b| b.display().to_string()).collect();
                    self.backup = Some(b.join(" "));
                }
                self.restore_command = o.restore_command.clone();
            }
            Err(e) => {
                self.outcome = if e.kind == super::ErrorKind::ReadOnly {
                    "refused"
                } else {
                    "failed"
                }
                .into();
                self.failed_step = e.step.map(|s| s.as_str().to_owned());
                self.error = Some(e.to_string());
            }
        }
    }
}

/// Appends audit records to a JSON-lines file (created 0600, never through a symlink).
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub path: PathBuf,
}

impl AuditLog {
    pub fn new(path: impl Into<PathBuf>) -> AuditLog {
        AuditLog { path: path.into() }
    }

    /// `audit.jsonl` in the data directory.
    pub fn default_path() -> Option<PathBuf> {
        crate::config::data_dir().map(|d| d.join("audit.jsonl"))
    }

    /// Append one record.
    pub fn append(&self, rec: &AuditRecord) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                crate::fsx::private_dir(dir)?;
            }
        }
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = crate::fsx::open_private(&self.path, true)?;
        f.write_all(&line)
    }

    /// Every record in the log (lines that do not parse are skipped).
    pub fn read(&self) -> std::io::Result<Vec<AuditRecord>> {
        let text = match crate::fsx::read_to_string_bounded(&self.path, MAX_AUDIT_BYTES) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// The local user name.
pub fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
