//! Planning a renewal: read the current certificate file and describe the exact change.
//! Nothing is written here.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::config::{AcmeIssuer, Challenge, ManagedFile};
use super::{default_account_dir, AcmeError};
use crate::model::{CertFacts, San};
use crate::sources::pem::{self, PemItem};
use crate::sources::target::Target;

/// The type of the new private key: the same as the current certificate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    /// RSA with this many bits (generated with the `rsa` crate, signed by ring).
    Rsa(usize),
}

impl KeyType {
    /// From a key description as `CertFacts::key` gives it (`ECDSA P-256`, `RSA 2048`...).
    pub fn from_description(key: &str) -> Result<KeyType, String> {
        match key {
            "ECDSA P-256" => Ok(KeyType::EcdsaP256),
            "ECDSA P-384" => Ok(KeyType::EcdsaP384),
            "Ed25519" => Ok(KeyType::Ed25519),
            "RSA 2048" => Ok(KeyType::Rsa(2048)),
            "RSA 3072" => Ok(KeyType::Rsa(3072)),
            "RSA 4096" => Ok(KeyType::Rsa(4096)),
            other => Err(format!(
                "cannot make a new {other} key (ECDSA P-256/P-384, Ed25519 and RSA 2048/3072/4096 are supported)"
            )),
        }
    }

    /// As `CertFacts::key` describes it.
    pub fn describe(self) -> String {
        match self {
            KeyType::EcdsaP256 => "ECDSA P-256".to_owned(),
            KeyType::EcdsaP384 => "ECDSA P-384".to_owned(),
            KeyType::Ed25519 => "Ed25519".to_owned(),
            KeyType::Rsa(bits) => format!("RSA {bits}"),
        }
    }
}

/// What a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The leaf, or the full chain when there is no chain file.
    Certificate,
    Chain,
    Key,
}

/// One file the renewal writes, and where its current contents are saved first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub role: FileRole,
    pub path: PathBuf,
    /// `PATH.certdeck-backup-STAMP`; `None` when the file does not exist yet.
    pub backup: Option<PathBuf>,
}

/// The exact change a renewal makes. Build it with [`plan`]; show it with
/// [`AcmePlan::preview`]; run it with [`super::execute`].
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// When the plan was made (unix seconds); backups are stamped with it.
    pub planned_at: i64,
}

/// Largest certificate file read.
const MAX_CERT_BYTES: u64 = 1024 * 1024;

/// Read `file`'s current certificate and plan its renewal through `issuer`.
pub async fn plan(
    issuer: &AcmeIssuer,
    file: &ManagedFile,
    now: i64,
) -> Result<AcmePlan, AcmeError> {
    if file.issuer != issuer.name {
        return Err(AcmeError::Plan(format!(
            "{} is renewed by issuer '{}', not '{}'",
            file.cert.display(),
            file.issuer,
            issuer.name
        )));
    }
    if !issuer.directory_url.starts_with("https://") {
        return Err(AcmeError::Plan(format!(
            "the directory URL of issuer '{}' must start with https:// (got '{}')",
            issuer.name, issuer.directory_url
        )));
    }
    if let Challenge::Dns01 { hook } = &issuer.challenge {
        if hook.trim().is_empty() {
            return Err(AcmeError::Plan(format!(
                "issuer '{}': the dns-01 hook is empty",
                issuer.name
            )));
        }
    }
    let leaf = read_leaf(&file.cert).await?;
    let names = names_of(&leaf);
    if names.is_empty() {
        return Err(AcmeError::Plan(format!(
            "{} has no DNS name or IP address to order (no usable SAN or common name)",
            file.cert.display()
        )));
    }
    let key_type = KeyType::from_description(&leaf.key)
        .map_err(|e| AcmeError::Plan(format!("{}: {e}", file.cert.display())))?;
    let endpoint = match &file.endpoint {
        Some(s) => Some(Target::parse(s, None).map_err(|e| AcmeError::Plan(e.to_string()))?),
        None => None,
    };
    let stamp = backup_stamp(now);
    let mut files = vec![planned(FileRole::Certificate, &file.cert, &stamp)];
    if let Some(chain) = &file.chain {
        files.push(planned(FileRole::Chain, chain, &stamp));
    }
    files.push(planned(FileRole::Key, &file.key, &stamp));
    let mut seen = std::collections::HashSet::new();
    for f in &files {
        if !seen.insert(f.path.clone()) {
            return Err(AcmeError::Plan(format!(
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
    })
}

/// The id of the certificate file's row (as the file source names it), for `certdeck renew ID`.
pub fn record_id(file: &ManagedFile) -> String {
    crate::model::record::location_id(
        crate::model::SourceKind::File,
        &file.cert.display().to_string(),
    )
}

impl AcmePlan {
    /// The audit line for this plan's result (`action` is `acme-renew`).
    pub fn audit_record(
        &self,
        result: &Result<super::AcmeOutcome, AcmeError>,
        now: i64,
    ) -> crate::actions::AuditRecord {
        let mut rec = crate::actions::AuditRecord {
            time: crate::clock::rfc3339(now),
            actor: crate::actions::audit::actor(),
            action: "acme-renew".to_owned(),
            record_id: record_id(&self.file),
            location: self.file.cert.display().to_string(),
            context: self.directory_url.clone(),
            object: format!("issuer {}: {}", self.issuer.name, self.names.join(", ")),
            before_sha256: Some(self.old_sha256.clone()),
            before_not_after: Some(crate::clock::rfc3339(self.old_not_after)),
            ..Default::default()
        };
        match result {
            Ok(o) => {
                rec.outcome = "succeeded".to_owned();
                rec.after_sha256 = Some(o.new_sha256.clone());
                rec.after_not_after = Some(crate::clock::rfc3339(o.new_not_after));
                let backups: Vec<String> =
                    o.backups.iter().map(|b| b.display().to_string()).collect();
                rec.backup = (!backups.is_empty()).then(|| backups.join(" "));
            }
            Err(e) => {
                rec.outcome = "failed".to_owned();
                rec.failed_step = Some(e.step().as_str().to_owned());
                rec.error = Some(e.to_string());
            }
        }
        rec
    }

    /// Keep the account key in `dir` instead of the data directory.
    pub fn with_account_dir(mut self, dir: &Path) -> AcmePlan {
        self.account_key = dir.join(account_key_name(&self.issuer.name));
        self
    }

    /// The exact change, for a confirmation prompt.
    pub fn preview(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Renew {} through ACME issuer '{}'",
            self.file.cert.display(),
            self.issuer.name
        );
        let _ = writeln!(s, "  names:      {}", self.names.join(", "));
        let _ = writeln!(
            s,
            "  key:        a new {} key (the same type as now)",
            self.key_type.describe()
        );
        let left = (self.old_not_after - self.planned_at).div_euclid(86_400);
        let _ = writeln!(
            s,
            "  expiry:     {} ({} days) -> whatever the CA issues",
            crate::clock::rfc3339(self.old_not_after),
            left
        );
        let _ = writeln!(s, "  directory:  {}", self.directory_url);
        if let Some(ca) = &self.issuer.ca_file {
            let _ = writeln!(
                s,
                "  trusting:   {} (beside the webpki roots)",
                ca.display()
            );
        }
        match &self.challenge {
            Challenge::Http01 { webroot } => {
                let _ = writeln!(
                    s,
                    "  challenge:  http-01, files in {}",
                    webroot.join(".well-known/acme-challenge").display()
                );
            }
            Challenge::Dns01 { hook } => {
                let _ = writeln!(
                    s,
                    "  challenge:  dns-01, hook: {hook} present|cleanup DOMAIN VALUE"
                );
            }
        }
        let _ = writeln!(
            s,
            "  account:    key {} (created 0600 if missing)",
            self.account_key.display()
        );
        let _ = writeln!(s, "  writes:");
        for f in &self.files {
            let role = match (f.role, self.file.chain.is_some()) {
                (FileRole::Certificate, false) => "certificate + chain",
                (FileRole::Certificate, true) => "certificate",
                (FileRole::Chain, _) => "chain",
                (FileRole::Key, _) => "key (0600)",
            };
            let backup = match &f.backup {
                Some(b) => format!("backup {}", b.display()),
                None => "new file".to_owned(),
            };
            let _ = writeln!(s, "    {role:<20} {}  ({backup})", f.path.display());
        }
        let _ = writeln!(
            s,
            "  reload:     {}",
            self.reload.as_deref().unwrap_or("(none)")
        );
        match &self.endpoint {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "  verify:     re-probe {t} until it serves the new certificate"
                );
            }
            None => {
                let _ = writeln!(s, "  verify:     re-read the files (no endpoint linked)");
            }
        }
        let _ = writeln!(
            s,
            "  on failure: the old files stay, or the backups are put back"
        );
        s
    }
}

/// A file to write. A symlink (certbot's `live/` layout) is followed, so the file it points to
/// is replaced and the link stays.
fn planned(role: FileRole, path: &Path, stamp: &str) -> PlannedFile {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let path = match is_link.then(|| std::fs::canonicalize(path)) {
        Some(Ok(real)) => real,
        _ => path.to_owned(),
    };
    let backup = path.exists().then(|| backup_path(&path, stamp));
    PlannedFile { role, path, backup }
}

/// `PATH.certdeck-backup-STAMP`.
pub(crate) fn backup_path(path: &Path, stamp: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".certdeck-backup-{stamp}"));
    path.with_file_name(name)
}

/// `20261125T021000Z`.
fn backup_stamp(now: i64) -> String {
    crate::clock::rfc3339(now).replace(['-', ':'], "")
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
    let shown = path.display();
    let meta = tokio::fs::metadata(path)
        .await
        .map_err(|e| AcmeError::Plan(format!("cannot read {shown}: {e}")))?;
    if meta.len() > MAX_CERT_BYTES {
        return Err(AcmeError::Plan(format!(
            "{shown} is too large for a certificate ({} bytes)",
            meta.len()
        )));
    }
    let data = tokio::fs::read(path)
        .await
        .map_err(|e| AcmeError::Plan(format!("cannot read {shown}: {e}")))?;
    let der = if pem::looks_like_pem(&data) {
        pem::scan(&data).into_iter().find_map(|i| match i {
            PemItem::Certificate(der) => Some(der),
            _ => None,
        })
    } else {
        Some(data)
    };
    let Some(der) = der else {
        return Err(AcmeError::Plan(format!("{shown} holds no certificate")));
    };
    CertFacts::from_der(&der).map_err(|e| AcmeError::Plan(format!("{shown}: {e}")))
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
    fn backups_sit_beside_the_file_with_a_utc_stamp() {
        let p = backup_path(Path::new("/etc/tls/site.crt"), &backup_stamp(1_795_000_000));
        assert_eq!(
            p,
            Path::new("/etc/tls/site.crt.certdeck-backup-20261118T110640Z")
        );
    }

    #[test]
    fn a_symlinked_file_is_replaced_through_its_link() {
        let d = tempfile::tempdir().expect("tempdir");
        let real = d.path().join("archive-cert1.pem");
        std::fs::write(&real, b"x").expect("w");
        let link = d.path().join("cert.pem");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        let p = planned(FileRole::Certificate, &link, "S");
        let real = std::fs::canonicalize(&real).expect("canon");
        assert_eq!(p.path, real);
        assert_eq!(p.backup, Some(backup_path(&real, "S")));
        let missing = planned(FileRole::Chain, &d.path().join("chain.pem"), "S");
        assert_eq!(missing.backup, None);
    }

    #[test]
    fn account_key_names_are_file_safe() {
        assert_eq!(
            account_key_name("lets/encrypt prod"),
            "lets_encrypt_prod.account.pem"
        );
    }

    #[test]
    fn key_types_round_trip_and_unknown_ones_say_what_is_supported() {
        for k in [
            "ECDSA P-256",
            "ECDSA P-384",
            "Ed25519",
            "RSA 2048",
            "RSA 4096",
        ] {
            assert_eq!(
                KeyType::from_description(k).map(KeyType::describe),
                Ok(k.to_owned())
            );
        }
        let e = KeyType::from_description("ECDSA P-521").expect_err("P-521");
        assert!(e.contains("P-521") && e.contains("supported"), "{e}");
    }
}
