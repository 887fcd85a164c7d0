//! The Vault / OpenBao actions as a backend of the action framework:
//!
//! - **revoke**, offered on the rows of issued certificates that are not revoked: the plan
//!   names the serial and the subject (read again from the mount, so a stale row is refused);
//!   the job posts `<mount>/revoke` and re-reads `<mount>/cert/SERIAL` to confirm.
//! - **renew**, offered on the row of a file listed in a `[[vault]]` section's `files` (and on
//!   the endpoint that serves it): the same names, a fresh key, issued by the role; the files
//!   are replaced with [`crate::fsx::replace_all`] (atomic, backups in the data directory,
//!   owner, group and mode kept), the server reloaded, the endpoint re-probed; a failed reload
//!   or verification puts the old files back ([`crate::fsx::rollback`]) and reloads them.
//!
//! The framework confirms, audits and runs; this module never prints.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::actions::{self, IssueMethod, NewPems, ReplacementPlan, RevokePlan};
use super::api::{Call, VaultClient};
use super::{VaultError, VaultFile, VaultSettings, KIND};
use crate::actions::command::{self, Command};
use crate::actions::{
    ActionError, ActionOptions, Backend, Offer, Outcome, Plan, PlannedFile, Prepared, Reporter,
    Risk, Step,
};
use crate::fsx::{self, Replaced, Replacement};
use crate::model::{CertFacts, Record, SourceKind};
use crate::sources::{BoxFut, Target};

/// Time limit of the reload command.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the verify step waits for the endpoint to serve the new certificate.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(20);
/// Handshakes in a row that must serve the new certificate (old and new workers overlap for a
/// moment while a server reloads).
const IN_A_ROW: usize = 3;

/// Revokes the certificates of one server and renews the files its section lists.
pub struct VaultBackend {
    settings: VaultSettings,
    files: Vec<VaultFile>,
}

impl VaultBackend {
    pub fn new(settings: VaultSettings, files: Vec<VaultFile>) -> VaultBackend {
        VaultBackend { settings, files }
    }

    /// The (mount, serial) of a row of an issued certificate of this server.
    fn issued(&self, record: &Record) -> Option<(String, String)> {
        if record.source != KIND || record.cert.is_none() {
            return None;
        }
        let j = &record.extra.as_ref()?.json;
        let ours = j["kind"] == "certificate"
            && j["address"].as_str() == Some(self.settings.address.as_str())
            && j["namespace"].as_str() == self.settings.namespace.as_deref();
        ours.then(|| {
            Some((
                j["mount"].as_str()?.to_owned(),
                j["serial"].as_str()?.to_owned(),
            ))
        })?
    }

    /// The listed file a row stands for: the certificate file (`path` or `path#1`), or the
    /// endpoint that serves it.
    fn file_for(&self, record: &Record) -> Option<&VaultFile> {
        self.files.iter().find(|f| {
            if record.source == SourceKind::FILE {
                let cert = f.cert.display().to_string();
                record.location == cert || record.location == format!("{cert}#1")
            } else if record.source == SourceKind::TLS {
                f.endpoint.as_deref().is_some_and(|e| {
                    Target::parse(e, None).is_ok_and(|t| t.to_string() == record.location)
                })
            } else {
                false
            }
        })
    }

    fn settings_for(&self, opts: &ActionOptions) -> VaultSettings {
        let mut s = self.settings.clone();
        if let Some(t) = opts.request_timeout {
            s.timeout = t;
        }
        s
    }
}

impl Backend for VaultBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        let mut out = Vec::new();
        if let Some((mount, serial)) = self.issued(record) {
            if !record.revocation.as_ref().is_some_and(|r| r.is_revoked()) {
                out.push(Offer {
                    verb: "revoke".to_owned(),
                    title: format!("Revoke (Vault {mount}, serial {serial})"),
                    builtin: false,
                });
            }
        }
        if let Some(f) = self.file_for(record) {
            out.push(Offer {
                verb: "renew".to_owned(),
                title: renew_title(f),
                builtin: true,
            });
        }
        out
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            match verb {
                "revoke" => self.plan_revoke(record, opts).await,
                "renew" => self.plan_renew(record, opts).await,
                other => Err(ActionError::not_applicable(format!(
                    "Vault rows can be revoked and [[vault]] files renewed, not '{other}'"
                ))),
            }
        })
    }
}

fn renew_title(f: &VaultFile) -> String {
    format!("Renew (Vault role '{}' on {})", f.role, f.mount)
}

fn planning(e: VaultError) -> ActionError {
    ActionError::planning(e.to_string())
}

/// The certificate a serial holds now: its facts and its revocation time (0: not revoked).
async fn read_serial(
    client: &VaultClient,
    mount: &str,
    serial: &str,
) -> Result<(CertFacts, i64), VaultError> {
    let call = Call::new("GET", format!("{mount}/cert/{serial}"), "read")
        .policy(format!("{mount}/cert/*"));
    let r = client
        .run(
            &call,
            vaultrs::pki::cert::read(client.inner(), mount, serial),
        )
        .await?;
    let f = super::read::parse_cert_pem(&r.certificate).map_err(|why| VaultError::Protocol {
        address: client.address.clone(),
        call: format!("GET {mount}/cert/{serial}"),
        why,
    })?;
    Ok((f, r.revocation_time))
}

impl VaultBackend {
    async fn plan_revoke(
        &self,
        record: &Record,
        opts: &ActionOptions,
    ) -> Result<Prepared, ActionError> {
        let (mount, serial) = self
            .issued(record)
            .ok_or_else(|| ActionError::not_applicable("not a certificate issued by this Vault"))?;
        let cert = record
            .cert
            .clone()
            .ok_or_else(|| ActionError::not_applicable("the row has no certificate"))?;
        let rp = actions::plan_revoke(&mount, &serial, &cert.subject).map_err(planning)?;
        let settings = self.settings_for(opts);
        let (client, token) = VaultClient::connect(&settings).await.map_err(planning)?;
        // Read it again: a serial revoked since the row was read is not revoked twice, and the
        // serial must still hold the certificate the user looked at.
        let (now_cert, revoked_at) = read_serial(&client, &mount, &rp.serial)
            .await
            .map_err(planning)?;
        if revoked_at > 0 {
            return Err(ActionError::planning(format!(
                "serial {} was already revoked at {}",
                rp.serial,
                crate::clock::rfc3339(revoked_at)
            )));
        }
        if now_cert.sha256 != cert.sha256 {
            return Err(ActionError::planning(format!(
                "serial {} on {mount} holds another certificate than the row shows; refresh and plan again",
                rp.serial
            )));
        }
        let object = format!("serial {} ({})", rp.serial, cert.subject);
        let mut plan = Plan::for_record(
            "vault-revoke",
            "revoke",
            &format!("Revoke (Vault {mount})"),
            record,
            &object,
        );
        plan.context = Some(settings.label());
        plan.identity = Some(token.display_name.clone()).filter(|n| !n.is_empty());
        plan.new_expiry_note = Some("unchanged, but revoked from now on".to_owned());
        plan.issuer = Some(cert.issuer.clone());
        plan.names = cert.sans.iter().map(|s| s.render()).collect();
        plan.details = vec![
            ("serial".to_owned(), rp.serial.clone()),
            ("subject".to_owned(), cert.subject.clone()),
            (
                "mount".to_owned(),
                format!("{} on {}", mount, settings.label()),
            ),
        ];
        plan.steps_label = "API calls".to_owned();
        plan.steps = rp.calls.clone();
        plan.warnings = vec![
            "a revocation cannot be undone: clients that check the CRL or OCSP refuse this certificate from now on".to_owned(),
            "Vault's revoke API takes no reason code: the CRL entry carries none".to_owned(),
        ];
        plan.risk = Risk::Destructive;
        plan.confirm = true;
        Ok(Prepared {
            plan,
            job: Box::new(move |rep| Box::pin(async move { revoke_job(settings, rp, rep).await })),
        })
    }

    async fn plan_renew(
        &self,
        record: &Record,
        opts: &ActionOptions,
    ) -> Result<Prepared, ActionError> {
        let file = self
            .file_for(record)
            .ok_or_else(|| ActionError::not_applicable("not a [[vault]] file row"))?
            .clone();
        let old = read_leaf(file.cert.clone())
            .await
            .map_err(ActionError::planning)?;
        let mount = super::check_mount(&file.mount).map_err(planning)?;
        let role = super::check_role(&file.role).map_err(planning)?;
        let mut rp =
            actions::plan_replacement(&old, &mount, &role, file.method).map_err(planning)?;
        let settings = self.settings_for(opts);
        let (client, token) = VaultClient::connect(&settings).await.map_err(planning)?;
        let role_facts = read_role(&client, &mount, &role).await.map_err(planning)?;
        let mut warnings = Vec::new();
        if role_facts.max_ttl > 0 && rp.ttl_secs > role_facts.max_ttl {
            warnings.push(format!(
                "the role's max TTL ({}) is shorter than the old certificate's lifetime: the new one lives {} instead",
                human(role_facts.max_ttl),
                human(role_facts.max_ttl)
            ));
            rp.ttl_secs = role_facts.max_ttl;
        }
        let endpoint = match &file.endpoint {
            Some(e) => {
                Some(Target::parse(e, None).map_err(|x| ActionError::planning(x.why.clone()))?)
            }
            None => None,
        };
        let mut files = vec![planned(
            if file.chain.is_some() {
                FileRole::Certificate
            } else {
                FileRole::CertificateAndChain
            },
            &file.cert,
        )];
        if let Some(c) = &file.chain {
            files.push(planned(FileRole::Chain, c));
        }
        files.push(planned(FileRole::Key, &file.key));
        let reload = file.reload.clone().filter(|r| !r.trim().is_empty());
        let mut plan = Plan::for_record(
            "vault-renew",
            "renew",
            &renew_title(&file),
            record,
            &file.cert.display().to_string(),
        );
        plan.context = Some(settings.label());
        plan.identity = Some(token.display_name.clone()).filter(|n| !n.is_empty());
        plan.old_not_after = Some(old.not_after);
        plan.before_sha256 = Some(old.sha256.clone());
        plan.new_expiry_note = Some(format!(
            "about {} after issuance (the old certificate's lifetime, capped by the role)",
            human(rp.ttl_secs)
        ));
        plan.issuer = Some(old.issuer.clone());
        plan.names = rp
            .common_name
            .iter()
            .map(|c| format!("CN={c}"))
            .chain(rp.dns.iter().map(|d| format!("DNS:{d}")))
            .chain(rp.ips.iter().map(|d| format!("IP:{d}")))
            .chain(rp.uris.iter().map(|d| format!("URI:{d}")))
            .collect();
        plan.key_type = Some(match (rp.method, rp.key) {
            (IssueMethod::Sign, Some(k)) => k.describe(),
            _ => format!(
                "{} {} (made by the server)",
                role_facts.key_type, role_facts.key_bits
            ),
        });
        plan.details = vec![
            (
                "mount".to_owned(),
                format!("{mount} on {}", settings.label()),
            ),
            (
                "role".to_owned(),
                format!(
                    "{role} (max TTL {})",
                    if role_facts.max_ttl == 0 {
                        "the mount's".to_owned()
                    } else {
                        human(role_facts.max_ttl)
                    }
                ),
            ),
            ("method".to_owned(), rp.why.clone()),
            (
                "backups".to_owned(),
                format!(
                    "{} (kept {} days, the newest {} always)",
                    opts.backups.dir.join("files").display(),
                    opts.backups.max_age.as_secs() / 86_400,
                    opts.backups.keep
                ),
            ),
        ];
        plan.files = files.iter().map(|(_, f)| f.clone()).collect();
        plan.steps_label = "steps".to_owned();
        plan.steps = rp.calls.clone();
        plan.steps
            .push("back up and replace the files atomically (owner, group and mode kept)".into());
        plan.steps.push(match &reload {
            Some(r) => format!("reload: {r}"),
            None => "no reload command".to_owned(),
        });
        plan.steps.push(match &endpoint {
            Some(t) => format!("verify: re-probe {t} until it serves the new certificate"),
            None => "verify: re-read the files (no endpoint linked)".to_owned(),
        });
        warnings.push("on failure the old files stay, or are put back and reloaded".to_owned());
        plan.warnings = warnings;
        plan.risk = Risk::Destructive;
        plan.confirm = true;
        let job = RenewJob {
            settings,
            file,
            replacement: rp,
            old_sha256: old.sha256.clone(),
            files,
            reload,
            endpoint,
            backups: opts.backups.clone(),
        };
        Ok(Prepared {
            plan,
            job: Box::new(move |rep| Box::pin(async move { job.run(&rep).await })),
        })
    }
}

fn human(secs: u64) -> String {
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// What a written file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileRole {
    /// The leaf alone (the chain has its own file).
    Certificate,
    /// The leaf, then the issuing chain.
    CertificateAndChain,
    Chain,
    Key,
}

impl FileRole {
    fn label(self) -> &'static str {
        match self {
            FileRole::Certificate => "certificate",
            FileRole::CertificateAndChain => "certificate + chain",
            FileRole::Chain => "chain",
            FileRole::Key => "key (0600 if new)",
        }
    }
}

/// A file to write; a symlink is followed so the file it names is replaced and the link stays.
fn planned(role: FileRole, path: &std::path::Path) -> (FileRole, PlannedFile) {
    let path = fsx::resolve_link(path);
    (
        role,
        PlannedFile {
            role: role.label().to_owned(),
            exists: path.exists(),
            path,
        },
    )
}

async fn read_leaf(path: PathBuf) -> Result<CertFacts, String> {
    tokio::task::spawn_blocking(move || crate::sources::file::first_certificate(&path))
        .await
        .map_err(|e| format!("reading the certificate file: {e}"))?
}

/// What the plan shows of a role.
#[derive(serde::Deserialize)]
struct RoleFacts {
    #[serde(default)]
    max_ttl: u64,
    #[serde(default)]
    key_type: String,
    #[serde(default)]
    key_bits: u64,
}

async fn read_role(client: &VaultClient, mount: &str, role: &str) -> Result<RoleFacts, VaultError> {
    let call = Call::new("GET", format!("{mount}/roles/{role}"), "read");
    match client.json::<RoleFacts>(&call, &[]).await {
        Err(e) if e.is_not_found() => Err(VaultError::Config(format!(
            "{}: there is no role '{role}' on {mount}",
            client.address
        ))),
        other => other,
    }
}

async fn revoke_job(
    settings: VaultSettings,
    rp: RevokePlan,
    rep: Reporter,
) -> Result<Outcome, ActionError> {
    rep.step(Step::Write, format!("logging in to {}", settings.label()))
        .await;
    let (client, _) = VaultClient::connect(&settings)
        .await
        .map_err(|e| ActionError::at(Step::Write, e.to_string()))?;
    let done = actions::revoke(&client, &rp, &rep).await.map_err(|e| {
        // The re-read is the verification; anything before it is the write.
        let step = match &e {
            VaultError::Protocol { call, .. } if call.starts_with("GET") => Step::Verify,
            _ => Step::Write,
        };
        ActionError::at(step, e.to_string())
    })?;
    let when = crate::clock::rfc3339(done.revocation_time);
    rep.step(
        Step::Verify,
        format!(
            "{}/cert/{} reads back revoked at {when}",
            rp.mount, done.serial
        ),
    )
    .await;
    Ok(Outcome {
        message: format!(
            "revoked serial {} ({}) at {when}; the re-read of {}/cert/{} shows it revoked",
            done.serial, rp.subject, rp.mount, done.serial
        ),
        ..Outcome::default()
    })
}

/// Everything the renewal job needs, fixed at plan time.
struct RenewJob {
    settings: VaultSettings,
    file: VaultFile,
    replacement: ReplacementPlan,
    old_sha256: String,
    files: Vec<(FileRole, PlannedFile)>,
    reload: Option<String>,
    endpoint: Option<Target>,
    backups: fsx::Backups,
}

impl RenewJob {
    async fn run(&self, rep: &Reporter) -> Result<Outcome, ActionError> {
        crate::sources::tls::install_crypto_provider();
        rep.step(
            Step::Read,
            format!("re-reading {}", self.file.cert.display()),
        )
        .await;
        match read_leaf(self.file.cert.clone()).await {
            Ok(c) if c.sha256 == self.old_sha256 => {}
            _ => {
                return Err(ActionError::planning(format!(
                    "{} changed since the plan was made; plan again",
                    self.file.cert.display()
                )))
            }
        }
        // issue
        let (client, _) = VaultClient::connect(&self.settings)
            .await
            .map_err(|e| ActionError::at(Step::Issue, e.to_string()))?;
        let new = actions::issue_replacement(&client, &self.replacement, rep)
            .await
            .map_err(|e| {
                ActionError::at(
                    Step::Issue,
                    format!("{e}; nothing was written, the old files are in place"),
                )
            })?;
        rep.step(
            Step::Issue,
            format!(
                "issued serial {} by {}, expires {}, SHA-256 {}",
                new.serial,
                new.facts.issuer_name(),
                crate::clock::rfc3339(new.facts.not_after),
                new.facts.sha256
            ),
        )
        .await;

        // write
        let written = self.write(&new).map_err(|e| {
            ActionError::at(
                Step::Write,
                format!(
                    "{e}; the old files are in place (serial {} was issued but is not used: `certdeck revoke` it if unwanted)",
                    new.serial
                ),
            )
        })?;
        for f in &written.files {
            let what = match &f.backup {
                Some(b) => format!(
                    "wrote {} (old one backed up to {})",
                    f.path.display(),
                    b.display()
                ),
                None => format!("wrote {}", f.path.display()),
            };
            rep.step(Step::Write, what).await;
        }

        // reload
        if let Some(cmd) = &self.reload {
            rep.step(Step::Reload, format!("running: {cmd}")).await;
            if let Err(why) = run_reload(cmd, rep).await {
                let back = self.undo(&written, rep).await;
                return Err(ActionError::at(Step::Reload, format!("{why}; {back}")));
            }
        } else {
            rep.step(Step::Reload, "no reload command configured").await;
        }

        // verify
        let served = match self.verify(&new, rep).await {
            Ok(v) => v,
            Err(why) => {
                let back = self.undo(&written, rep).await;
                return Err(ActionError::at(Step::Verify, format!("{why}; {back}")));
            }
        };
        rep.step(
            Step::Done,
            format!(
                "renewed: expires {} (was a certificate with SHA-256 {})",
                crate::clock::rfc3339(new.facts.not_after),
                self.old_sha256
            ),
        )
        .await;
        Ok(Outcome {
            after_sha256: Some(new.facts.sha256.clone()),
            new_not_after: Some(new.facts.not_after),
            backups: written.backups(),
            message: format!(
                "renewed from Vault role '{}' on {}: serial {}, sha256 {}…, expires {}{}",
                self.file.role,
                self.file.mount,
                new.serial,
                &new.facts.sha256[..16.min(new.facts.sha256.len())],
                crate::clock::rfc3339(new.facts.not_after),
                if served {
                    ", served by the endpoint"
                } else {
                    ""
                }
            ),
            ..Outcome::default()
        })
    }

    /// Replace the files at once (backups first, owner, group and mode kept).
    fn write(&self, new: &NewPems) -> Result<Replaced, String> {
        let full = format!("{}{}", new.cert_pem, new.chain_pem);
        let list: Vec<Replacement<'_>> = self
            .files
            .iter()
            .map(|(role, f)| Replacement {
                path: &f.path,
                contents: match role {
                    FileRole::Certificate => new.cert_pem.as_bytes(),
                    FileRole::CertificateAndChain => full.as_bytes(),
                    FileRole::Chain => new.chain_pem.as_bytes(),
                    FileRole::Key => new.key_pem.expose().as_bytes(),
                },
                secret: *role == FileRole::Key,
            })
            .collect();
        fsx::replace_all(&list, &self.backups, crate::clock::now_unix())
    }

    /// Put the old files back after a failed reload or verification, and reload them.
    async fn undo(&self, written: &Replaced, rep: &Reporter) -> String {
        rep.step(Step::Rollback, "putting the old files back").await;
        let mut msg = match fsx::rollback(written) {
            Ok(()) => "the old certificate and key were put back".to_owned(),
            Err(e) => {
                format!("putting the old files back FAILED ({e}); restore them from the backups")
            }
        };
        rep.step(Step::Rollback, msg.clone()).await;
        if let Some(cmd) = &self.reload {
            rep.step(Step::Rollback, format!("reloading the old files: {cmd}"))
                .await;
            match run_reload(cmd, rep).await {
                Ok(()) => msg.push_str(" and reloaded"),
                Err(e) => msg.push_str(&format!(" (reloading them failed too: {e})")),
            }
        }
        msg
    }

    /// Re-read the files (the new certificate, with its key); re-probe the endpoint until it
    /// serves the new certificate. Returns whether an endpoint was checked.
    async fn verify(&self, new: &NewPems, rep: &Reporter) -> Result<bool, String> {
        let on_disk = read_leaf(self.file.cert.clone()).await?;
        if on_disk.sha256 != new.facts.sha256 {
            return Err(format!(
                "{} holds {}, not the new certificate",
                self.file.cert.display(),
                on_disk.sha256
            ));
        }
        let key_path = self.file.key.clone();
        let key = tokio::task::spawn_blocking(move || {
            fsx::read_to_string_bounded(&key_path, 1024 * 1024)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot read {} back: {e}", self.file.key.display()))?;
        if !crate::actions::keys::key_matches(&on_disk.der, &key) {
            return Err(format!(
                "{} does not hold the key of the new certificate",
                self.file.key.display()
            ));
        }
        let Some(target) = &self.endpoint else {
            rep.step(Step::Verify, "files read back; no endpoint to re-probe")
                .await;
            return Ok(false);
        };
        let prober = crate::sources::tls::TlsProber::new(&[], Duration::from_secs(5))
            .map_err(|e| format!("prober: {e}"))?;
        rep.step(Step::Verify, format!("re-probing {target}")).await;
        let deadline = Instant::now() + VERIFY_TIMEOUT;
        let mut streak = 0;
        let mut last;
        loop {
            let rec = prober.probe(target).await;
            last = match (&rec.cert, &rec.error) {
                (Some(c), _) if c.sha256 == new.facts.sha256 => {
                    streak += 1;
                    if streak >= IN_A_ROW {
                        rep.step(
                            Step::Verify,
                            format!(
                                "{target} serves the new certificate ({IN_A_ROW} handshakes in a row)"
                            ),
                        )
                        .await;
                        return Ok(true);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                (Some(c), _) => format!("{target} still serves SHA-256 {}", c.sha256),
                (None, Some(e)) => format!("{target}: {e}"),
                (None, None) => format!("{target} sent no certificate"),
            };
            streak = 0;
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!(
            "after {}, {last} (the new one is {})",
            humantime::format_duration(VERIFY_TIMEOUT),
            new.facts.sha256
        ))
    }
}

async fn run_reload(cmd: &str, rep: &Reporter) -> Result<(), String> {
    let c = Command::shell(cmd, &[], RELOAD_TIMEOUT, Step::Reload).prefix("| ");
    command::run(&c, rep)
        .await
        .map(|_| ())
        .map_err(|e| format!("`{cmd}` {e}"))
}
