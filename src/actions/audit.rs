//! The audit log: one JSON line per action (who, when, what, before/after fingerprints,
//! outcome) in the data directory. Never holds key material.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Environment variable that moves the data directory (audit log and Secret backups).
pub const DATA_DIR_ENV: &str = "CERTDECK_DATA_DIR";

/// The data directory: `CERTDECK_DATA_DIR`, else the platform data directory
/// (`~/.local/share/certdeck` on Linux).
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "certdeck").map(|d| d.data_dir().to_path_buf())
}

/// One audit line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// RFC 3339 UTC.
    pub time: String,
    /// The local user running certdeck.
    pub actor: String,
    /// The kubeconfig user of the context.
    pub kube_user: Option<String>,
    /// `renew` or `rotate`.
    pub action: String,
    pub record_id: String,
    pub location: String,
    pub context: String,
    /// `Certificate team-a/web` or `Secret team-a/web-tls`.
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
    /// Backup file of the previous Secret (rotate).
    pub backup: Option<String>,
}

/// Appends audit records to a JSON-lines file (created 0600).
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
        data_dir().map(|d| d.join("audit.jsonl"))
    }

    /// Append one record.
    pub fn append(&self, rec: &AuditRecord) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut f = open_private(&self.path, true)?;
        f.write_all(&line)
    }

    /// Every record in the log (lines that do not parse are skipped).
    pub fn read(&self) -> std::io::Result<Vec<AuditRecord>> {
        let text = match std::fs::read_to_string(&self.path) {
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

/// Open a file readable only by its owner (0600), appending or truncating.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
}

/// The local user name.
pub fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}
