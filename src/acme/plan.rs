//! Planning a renewal: read the current certificate file and describe the exact change.
//! Nothing is written here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{AcmeIssuer, Challenge, ManagedFile};
use super::{default_account_dir, AcmeError};
use crate::model::{CertFacts, San};
use crate::sources::target::Target;

pub use crate::actions::keys::KeyType;

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The leaf, or the full chain when there is no chain file.
    Certificate,
    Chain,
    Key,
}

/// One file the renewal writes (a symlink resolved to the file it names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub role: FileRole,
    pub path: PathBuf,
    /// It exists now, so it is backed up before it is replaced.
    pub exists: bool,
}

/// The exact change a renewal makes. Build it with [`plan`]; show it with
/// [`AcmePlan::preview`]; run it with [`super::execute`].
#[derive(Debug, Clone)]
pub struct AcmePlan {
    pub issuer: AcmeIssuer,
    pub file: ManagedFile,
    /// The names to order (DNS names and IP addresses), from the current certificate's SANs.
    pub names: Vec<String>,
    pub key_type: KeyType,
    pub old_sha256: String,
    pub old_serial: String,
    /// Unix seconds.
    pub old_not_after: i64,
    pub directory_url: String,
    pub challenge: Challenge,
    /// Files to write, in order, with their backups.
    pub files: Vec<PlannedFile>,
    pub reload: Option<String>,
    /// The endpoint re-probed by the verify step.
    pub endpoint: Option<Target>,
    /// The account key file (created 0600 on first use).
    pub account_key: PathBuf,
    /// Time limit of each ACME step (account, order, authorize, finalize, download).
    pub step_timeout: Duration,
    /// Time limit of the reload command.
    pub reload_timeout: Duration,
    /// How long the verify step waits for the endpoint to serve the new certificate.
    pub verify_timeout: Duration,
    /// When the plan was made (unix seconds).
    pub planned_at: i64,
    /// Where the replaced files are backed up, and for how long.
    pub backups: crate::fsx::Backups,
}

/// Read `file`'s current certificate and plan its renewal through `issuer`.
pub async fn plan(
    issuer: &AcmeIssuer,
    file: &ManagedFile,
    now: i64,
) -> Result<AcmePlan, AcmeError> {
    if file.issuer != issuer.name {
        return Err(AcmeError::planning(format!(
            "{} is renewed by issuer '{}', not '{}'",
            file.cert.display(),
            file.issuer,
            issuer.name
        )));
    }
    if !issuer.directory_url.starts_with("https://") {
        return Err(AcmeError::planning(format!(
            "the directory URL of issuer '{}' must start with https:// (got '{}')",
            issuer.name, issuer.directory_url
        )));
    }
    if let Challenge::Dns01 { hook } = &issuer.challenge {
        if hook.trim().is_empty() {
            return Err(AcmeError::planning(format!(
                "issuer '{}': the dns-01 hook is empty",
                issuer.name
            )));
        }
    }
    let leaf = read_leaf(&file.cert).await?;
    let names = names_of(&leaf);
    if names.is_empty() {
        return Err(AcmeError::planning(format!(
            "{} has no DNS name or IP address to order (no usable SAN or common name)",
            file.cert.display()
        )));
    }
    let key_type = KeyType::from_description(&leaf.key)
        .map_err(|e| AcmeError::planning(format!("{}: {e}", file.cert.display())))?;
    let endpoint = match &file.endpoint {
        Some(s) => Some(Target::parse(s, None).map_err(|e| AcmeError::planning(e.to_string()))?),
        None => None,
    };
    let mut files = vec![planned(FileRole::Certificate, &file.cert)];
    if let Some(chain) = &file.chain {
        files.push(planned(FileRole::Chain, chain));
    }
    files.push(planned(FileRole::Key, &file.key));
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        if !seen.insert(f.path.clone()) {
            return Err(AcmeError::planning(format!(
                "{} is named twice (certificate, chain and key must be different files)",
                f.path.display()
            )));
        }
    }
    Ok(AcmePlan {
        issuer: issuer.clone(),
        file: file.clone(),
        names,
        key_type,
        old_sha256: leaf.sha256.clone(),
        old_serial: leaf.serial.clone(),
        old_not_after: leaf.not_after,
        directory_url: issuer.directory_url.clone(),
        challenge: issuer.challenge.clone(),
        files,
        reload: file.reload.clone().filter(|r| !r.trim().is_empty()),
        endpoint,
        account_key: default_account_dir().join(account_key_name(&issuer.name)),
        step_timeout: Duration::from_secs(90),
        reload_timeout: Duration::from_secs(60),
        verify_timeout: Duration::from_secs(20),
        planned_at: now,
        backups: crate::fsx::Backups::in_data_dir(),
    })
}

/// The id of the certificate file's row (as the file source names it), for `certdeck renew ID`.
pub fn record_id(file: &ManagedFile) -> String {
    crate::model::record::location_id(
        crate::model::SourceKind::FILE,
        &file.cert.display().to_string(),
    )
}

impl AcmePlan {
    /// Keep backups in `dir` instead of the data directory's `backups`.
    pub fn with_backup_dir(mut self, dir: &Path) -> AcmePlan {
        self.backups.dir = dir.to_owned();
        self
    }

    /// Keep the account key in `dir` instead of the data directory.
    pub fn with_account_dir(mut self, dir: &Path) -> AcmePlan {
        self.account_key = dir.join(account_key_name(&self.issuer.name));
        self
    }

    /// The framework's view of this plan, for the row it was asked for.
    pub fn to_plan(&self, record_id: &str, location: &str) -> crate::actions::Plan {
        use crate::actions::{Plan, PlannedFile as File, Risk};
        let left = (self.old_not_after - self.planned_at).div_euclid(86_400);
        let mut details = vec![("directory".to_owned(), self.directory_url.clone())];
        if let Some(ca) = &self.issuer.ca_file {
            details.push((
                "trusting".to_owned(),
                format!("{} (beside the webpki roots)", ca.display()),
            ));
        }
        details.push((
            "challenge".to_owned(),
            match &self.challenge {
                Challenge::Http01 { webroot } => format!(
                    "http-01, files in {}",
                    webroot.join(".well-known/acme-challenge").display()
                ),
                Challenge::Dns01 { hook } => {
                    format!("dns-01, hook: {hook} present|cleanup DOMAIN VALUE")
                }
            },
        ));
        details.push((
            "account".to_owned(),
            format!(
                "key {} (created 0600 if missing)",
                self.account_key.display()
            ),
        ));
        details.push((
            "backups".to_owned(),
            format!(
                "{} (kept {} days, the newest {} always)",
                self.backups.dir.join("files").display(),
                self.backups.max_age.as_secs() / 86_400,
                self.backups.keep
            ),
        ));
        let files = self
            .files
            .iter()
            .map(|f| File {
                role: match (f.role, self.file.chain.is_some()) {
                    (FileRole::Certificate, false) => "certificate + chain",
                    (FileRole::Certificate, true) => "certificate",
                    (FileRole::Chain, _) => "chain",
                    (FileRole::Key, _) => "key (0600 if new)",
                }
                .to_owned(),
                path: f.path.clone(),
                exists: f.exists,
            })
            .collect();
        let mut steps = vec![
            format!(
                "order a certificate for {} from '{}'",
                self.names.join(", "),
                self.issuer.name
            ),
            format!("prove control of each name ({})", self.challenge.kind()),
            format!("finalize with a new {} key", self.key_type.describe()),
            "back up and replace the files atomically (owner, group and mode kept)".to_owned(),
        ];
        steps.push(match &self.reload {
            Some(r) => format!("reload: {r}"),
            None => "no reload command".to_owned(),
        });
        steps.push(match &self.endpoint {
            Some(t) => format!("verify: re-probe {t} until it serves the new certificate"),
            None => "verify: re-read the files (no endpoint linked)".to_owned(),
        });
        Plan {
            action: "acme-renew".to_owned(),
            verb: "renew".to_owned(),
            title: format!("Renew (ACME, issuer '{}')", self.issuer.name),
            record_id: record_id.to_owned(),
            location: location.to_owned(),
            object: self.file.cert.display().to_string(),
            context: None,
            identity: None,
            old_not_after: Some(self.old_not_after),
            new_not_after: None,
            new_expiry_note: Some(format!("whatever the CA issues ({left} days left now)")),
            issuer: Some(self.issuer.name.clone()),
            names: self.names.clone(),
            key_type: Some(self.key_type.describe()),
            before_sha256: Some(self.old_sha256.clone()),
            details,
            files,
            backup: None,
            steps_label: "steps".to_owned(),
            steps,
            warnings: vec![
                "on failure the old files stay, or are put back and reloaded".to_owned(),
            ],
            risk: Risk::Destructive,
            confirm: true,
        }
    }
}

/// A file to write. A symlink (certbot's `live/` layout) is followed, so the file it points to
/// is replaced and the link stays.
fn planned(role: FileRole, path: &Path) -> PlannedFile {
    let path = crate::fsx::resolve_link(path);
    let exists = path.exists();
    PlannedFile { role, path, exists }
}

/// The account key's file name for an issuer (`NAME.account.pem`, unsafe characters `_`).
fn account_key_name(issuer: &str) -> String {
    let safe: String = issuer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.account.pem")
}

/// The first certificate of a PEM or DER file.
async fn read_leaf(path: &Path) -> Result<CertFacts, AcmeError> {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || crate::sources::file::first_certificate(&p))
        .await
        .map_err(|e| AcmeError::planning(e.to_string()))?
        .map_err(AcmeError::planning)
}

/// DNS names and IP addresses of a certificate: its SANs, else its common name.
fn names_of(c: &CertFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for san in &c.sans {
        if let San::Dns(v) | San::Ip(v) = san {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
    }
    if out.is_empty() {
        if let Some(cn) = &c.common_name {
            if !cn.is_empty() && !cn.contains(' ') {
                out.push(cn.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_file_is_replaced_through_its_link() {
        let d = tempfile::tempdir().expect("tempdir");
        let real = d.path().join("archive-cert1.pem");
        std::fs::write(&real, b"x").expect("w");
        let link = d.path().join("cert.pem");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let p = planned(FileRole::Certificate, &link);
        let real = std::fs::canonicalize(&real).expect("canon");
        assert_eq!(p.path, real);
        assert!(p.exists);
        let missing = planned(FileRole::Chain, &d.path().join("chain.pem"));
        assert!(!missing.exists);
    }

    #[test]
    fn account_key_names_are_file_safe() {
        assert_eq!(
            account_key_name("lets/encrypt prod"),
            "lets_encrypt_prod.account.pem"
        );
    }
}
