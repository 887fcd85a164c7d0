//! Running a renewal plan, step by step, with progress on a channel and a rollback on failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::client::{self, describe, retry_nonce};
use super::config::Challenge;
use super::plan::FileRole;
use super::{AcmeError, AcmePlan, AcmeStep};
use crate::actions::command::{self, Command};
use crate::actions::{Outcome, Reporter};
use crate::fsx::{self, Replaced, Replacement};
use crate::model::CertFacts;
use crate::sources::pem::{self, PemItem};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::PrivatePkcs8KeyDer;

async fn report(tx: &Reporter, step: AcmeStep, message: impl Into<String>) {
    tx.step(step, message).await;
}

/// Run `fut` within the plan's step time limit.
async fn limited<T>(
    step: AcmeStep,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, AcmeError>>,
) -> Result<T, AcmeError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(AcmeError::at(
            step,
            format!("timed out after {}", humantime::format_duration(limit)),
        )),
    }
}

/// Run the plan. Every step is reported on `tx`; the error names the failed step. On any
/// failure the old files are left in place, or put back when they were already replaced.
pub async fn execute(plan: &AcmePlan, tx: &Reporter) -> Result<Outcome, AcmeError> {
    crate::sources::tls::install_crypto_provider();
    let current = current_sha256(plan).await;
    if current.as_deref() != Some(plan.old_sha256.as_str()) {
        return Err(AcmeError::planning(format!(
            "{} changed since the plan was made; plan again",
            plan.file.cert.display()
        )));
    }
    let limit = plan.step_timeout;

    // account
    report(
        tx,
        AcmeStep::Account,
        format!("directory {}", plan.directory_url),
    )
    .await;
    let account = limited(AcmeStep::Account, limit, account_step(plan, tx)).await?;

    // order
    let ids: Vec<Identifier> = plan
        .names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Identifier::Ip(ip),
            Err(_) => Identifier::Dns(n.clone()),
        })
        .collect();
    report(
        tx,
        AcmeStep::Order,
        format!("ordering {}", plan.names.join(", ")),
    )
    .await;
    let mut order = limited(AcmeStep::Order, limit, async {
        let order = retry_nonce!(account.new_order(&NewOrder::new(&ids)).await).map_err(|e| {
            AcmeError::at(
                AcmeStep::Order,
                format!("the CA refused the order: {}", describe(&e)),
            )
        })?;
        Ok(order)
    })
    .await?;
    report(tx, AcmeStep::Order, format!("order {}", order.url())).await;

    // authorize
    let mut presented = Vec::new();
    let authorized = limited(
        AcmeStep::Authorize,
        limit,
        authorize(plan, &mut order, &mut presented, tx),
    )
    .await;
    for p in presented.iter().rev() {
        cleanup(plan, p, tx).await;
    }
    authorized?;

    // finalize
    report(
        tx,
        AcmeStep::Finalize,
        format!("new {} key and CSR", plan.key_type.describe()),
    )
    .await;
    // RSA generation takes a while: off the async threads.
    let key = crate::actions::keys::generate_off_thread(plan.key_type)
        .await
        .map_err(|e| AcmeError::at(AcmeStep::Finalize, e))?;
    let csr = csr(&plan.names, &key).map_err(|e| AcmeError::at(AcmeStep::Finalize, e))?;
    limited(AcmeStep::Finalize, limit, async {
        retry_nonce!(order.finalize_csr(&csr).await).map_err(|e| {
            AcmeError::at(
                AcmeStep::Finalize,
                format!("the CA refused the CSR: {}", describe(&e)),
            )
        })
    })
    .await?;

    // download
    report(tx, AcmeStep::Download, "waiting for the certificate").await;
    let chain_pem = limited(AcmeStep::Download, limit, download(&mut order)).await?;
    let (leaf, leaf_pem, rest_pem) =
        split_chain(&chain_pem, &key).map_err(|e| AcmeError::at(AcmeStep::Download, e))?;
    report(
        tx,
        AcmeStep::Download,
        format!(
            "issued serial {} by {}, expires {}, SHA-256 {}",
            leaf.serial,
            leaf.issuer_name(),
            crate::clock::rfc3339(leaf.not_after),
            leaf.sha256
        ),
    )
    .await;

    // write
    let key_pem = key.serialize_pem();
    let full = format!("{leaf_pem}{rest_pem}");
    let contents = |role: FileRole| -> &[u8] {
        match (role, plan.file.chain.is_some()) {
            (FileRole::Certificate, false) => full.as_bytes(),
            (FileRole::Certificate, true) => leaf_pem.as_bytes(),
            (FileRole::Chain, _) => rest_pem.as_bytes(),
            (FileRole::Key, _) => key_pem.as_bytes(),
        }
    };
    let new_files: Vec<Replacement<'_>> = plan
        .files
        .iter()
        .map(|f| Replacement {
            path: &f.path,
            contents: contents(f.role),
            secret: f.role == FileRole::Key,
        })
        .collect();
    let backups = plan.backups.clone();
    let written = fsx::replace_all(&new_files, &backups, crate::clock::now_unix())
        .map_err(|e| AcmeError::at(AcmeStep::Write, e))?;
    for f in &written.files {
        let what = match &f.backup {
            Some(b) => format!(
                "wrote {} (old one backed up to {})",
                f.path.display(),
                b.display()
            ),
            None => format!("wrote {}", f.path.display()),
        };
        report(tx, AcmeStep::Write, what).await;
    }

    // reload
    if let Some(cmd) = &plan.reload {
        report(tx, AcmeStep::Reload, format!("running: {cmd}")).await;
        if let Err(why) = run_command(cmd, plan.reload_timeout, tx).await {
            let back = undo(plan, &written, tx).await;
            return Err(AcmeError::at(AcmeStep::Reload, format!("{why}; {back}")));
        }
    } else {
        report(tx, AcmeStep::Reload, "no reload command configured").await;
    }

    // verify
    let verified = verify(plan, &leaf, tx).await;
    let endpoint_verified = match verified {
        Ok(v) => v,
        Err(why) => {
            let back = undo(plan, &written, tx).await;
            return Err(AcmeError::at(AcmeStep::Verify, format!("{why}; {back}")));
        }
    };
    report(
        tx,
        AcmeStep::Done,
        format!(
            "renewed: expires {} (was {})",
            crate::clock::rfc3339(leaf.not_after),
            crate::clock::rfc3339(plan.old_not_after)
        ),
    )
    .await;
    let verified = if endpoint_verified {
        ", served by the endpoint"
    } else {
        ""
    };
    Ok(Outcome {
        after_sha256: Some(leaf.sha256.clone()),
        new_not_after: Some(leaf.not_after),
        backups: written.backups(),
        message: format!(
            "renewed: serial {}, sha256 {}…, expires {}{verified}",
            leaf.serial,
            &leaf.sha256[..16.min(leaf.sha256.len())],
            crate::clock::rfc3339(leaf.not_after)
        ),
        ..Outcome::default()
    })
}

/// Wait for the order to be valid, then fetch the chain. Each request is retried on its own
/// after a refused nonce (instant-acme's `poll_certificate` chains two requests, so a retry
/// of the whole would have to win both).
async fn download(order: &mut Order) -> Result<String, AcmeError> {
    let step = AcmeStep::Download;
    let mut delay = Duration::from_millis(200);
    loop {
        let (status, error) =
            retry_nonce!(order.refresh().await.map(|s| (s.status, s.error.clone())))
                .map_err(|e| AcmeError::at(step, describe(&e)))?;
        if let Some(p) = error {
            return Err(AcmeError::at(step, client::describe_problem(&p)));
        }
        match status {
            OrderStatus::Valid => break,
            OrderStatus::Invalid => {
                return Err(AcmeError::at(step, "the CA marked the order invalid"))
            }
            _ => {
                tokio::time::sleep(delay).await;
                delay = (delay * 3 / 2).min(Duration::from_secs(5));
            }
        }
    }
    retry_nonce!(order.certificate().await)
        .map_err(|e| AcmeError::at(step, describe(&e)))?
        .ok_or_else(|| AcmeError::at(step, "the CA sent no certificate"))
}

/// The SHA-256 of the certificate file's first certificate now.
async fn current_sha256(plan: &AcmePlan) -> Option<String> {
    let p = plan.file.cert.clone();
    tokio::task::spawn_blocking(move || crate::sources::file::first_certificate(&p))
        .await
        .ok()?
        .ok()
        .map(|c| c.sha256)
}

async fn account_step(plan: &AcmePlan, tx: &Reporter) -> Result<Account, AcmeError> {
    let step = AcmeStep::Account;
    let path = plan.account_key.clone();
    let (der, created) = tokio::task::spawn_blocking(move || load_key_der(&path))
        .await
        .map_err(|e| AcmeError::at(step, format!("account key task: {e}")))?
        .map_err(|e| AcmeError::at(step, e))?;
    if created {
        report(
            tx,
            step,
            format!(
                "created the account key {} (0600)",
                plan.account_key.display()
            ),
        )
        .await;
    }
    let account = retry_nonce!({
        let http = client::http_client(plan.issuer.ca_file.as_deref())
            .map_err(|e| AcmeError::at(step, e))?;
        let key = instant_acme::Key::from_pkcs8_der(der.clone_key())
            .map_err(|e| AcmeError::at(step, format!("account key: {e}")))?;
        let pair = (key, rustls_pki_types::PrivateKeyDer::Pkcs8(der.clone_key()));
        client::account(http, pair, &plan.directory_url).await
    })
    .map_err(|e| {
        AcmeError::at(
            step,
            format!(
                "cannot use the ACME directory {}: {}",
                plan.directory_url,
                describe(&e)
            ),
        )
    })?;
    if !plan.issuer.contact.is_empty() {
        let contacts: Vec<&str> = plan.issuer.contact.iter().map(String::as_str).collect();
        retry_nonce!(account.update_contacts(&contacts).await)
            .map_err(|e| AcmeError::at(step, format!("setting the contacts: {}", describe(&e))))?;
    }
    report(tx, step, format!("account {}", account.id())).await;
    Ok(account)
}

fn load_key_der(path: &std::path::Path) -> Result<(PrivatePkcs8KeyDer<'static>, bool), String> {
    let ((_, der), created) = client::load_or_create_key(path)?;
    match der {
        rustls_pki_types::PrivateKeyDer::Pkcs8(d) => Ok((d, created)),
        _ => Err("the account key is not PKCS#8".to_owned()),
    }
}

/// A challenge response put in place, to be removed afterwards.
enum Presented {
    File(PathBuf),
    Dns { domain: String, value: String },
}

async fn authorize(
    plan: &AcmePlan,
    order: &mut Order,
    presented: &mut Vec<Presented>,
    tx: &Reporter,
) -> Result<(), AcmeError> {
    let step = AcmeStep::Authorize;
    let fail = |what: &str, e: &instant_acme::Error| {
        AcmeError::at(step, format!("{what}: {}", describe(e)))
    };
    // Fetch every authorization (restarting the stream after a refused nonce).
    let mut attempt = 0;
    loop {
        let mut ids = order.identifiers();
        let mut err = None;
        while let Some(r) = ids.next().await {
            if let Err(e) = r {
                err = Some(e);
                break;
            }
        }
        match err {
            None => break,
            Some(e) if client::is_bad_nonce(&e) && attempt < client::BAD_NONCE_RETRIES => {
                attempt += 1;
            }
            Some(e) => return Err(fail("fetching the authorizations", &e)),
        }
    }
    let kind = match &plan.challenge {
        Challenge::Http01 { .. } => ChallengeType::Http01,
        Challenge::Dns01 { .. } => ChallengeType::Dns01,
    };
    let mut authzs = order.authorizations();
    while let Some(r) = authzs.next().await {
        let mut authz = r.map_err(|e| fail("fetching the authorizations", &e))?;
        let ident = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => {
                report(tx, step, format!("{ident}: already authorized")).await;
                continue;
            }
            other => {
                return Err(AcmeError::at(
                    step,
                    format!("{ident}: the authorization is {other:?}"),
                ))
            }
        }
        let base = authz.identifier().identifier.clone();
        let Some(mut ch) = authz.challenge(kind.clone()) else {
            return Err(AcmeError::at(
                step,
                format!(
                    "{ident}: the CA offers no {} challenge",
                    plan.challenge.kind()
                ),
            ));
        };
        let key_auth = ch.key_authorization();
        match &plan.challenge {
            Challenge::Http01 { webroot } => {
                let dir = webroot.join(".well-known").join("acme-challenge");
                let path = dir.join(&ch.token);
                if ch.token.is_empty() || ch.token.contains(['/', '\\', '.']) {
                    return Err(AcmeError::at(
                        step,
                        format!("{ident}: the CA sent an unusable token"),
                    ));
                }
                let body = key_auth.as_str().to_owned();
                let p2 = path.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    std::fs::write(&p2, body)
                })
                .await
                .map_err(|e| AcmeError::at(step, e.to_string()))?
                .map_err(|e| {
                    AcmeError::at(step, format!("cannot write {}: {e}", path.display()))
                })?;
                presented.push(Presented::File(path.clone()));
                report(
                    tx,
                    step,
                    format!("{ident}: http-01 response at {}", path.display()),
                )
                .await;
            }
            Challenge::Dns01 { hook } => {
                let domain = match &base {
                    Identifier::Dns(d) => d.clone(),
                    other => {
                        return Err(AcmeError::at(
                            step,
                            format!("dns-01 cannot prove {other:?}; use http-01"),
                        ))
                    }
                };
                let value = key_auth.dns_value();
                report(tx, step, format!("{ident}: dns-01 hook present")).await;
                presented.push(Presented::Dns {
                    domain: domain.clone(),
                    value: value.clone(),
                });
                run_hook(hook, "present", &domain, &value, plan.reload_timeout, tx)
                    .await
                    .map_err(|e| AcmeError::at(step, format!("{ident}: dns-01 hook: {e}")))?;
            }
        }
        retry_nonce!(ch.set_ready().await).map_err(|e| {
            fail(
                &format!("{ident}: telling the CA the challenge is ready"),
                &e,
            )
        })?;
    }
    report(tx, step, "waiting for the CA to validate").await;
    let policy = RetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .backoff(1.5)
        .timeout(plan.step_timeout);
    let status = retry_nonce!(order.poll_ready(&policy).await);
    match status {
        Ok(OrderStatus::Ready) => {
            report(tx, step, "every name is authorized").await;
            Ok(())
        }
        Ok(other) => {
            let why = authorization_failures(order)
                .await
                .unwrap_or_else(|| "the CA gave no reason".to_owned());
            Err(AcmeError::at(
                step,
                format!("the order is {other:?}: {why}"),
            ))
        }
        Err(e) => {
            let why = authorization_failures(order)
                .await
                .unwrap_or_else(|| describe(&e));
            Err(AcmeError::at(step, format!("validation failed: {why}")))
        }
    }
}

/// Why the authorizations failed, as the CA says it, per name.
async fn authorization_failures(order: &mut Order) -> Option<String> {
    let mut out = Vec::new();
    let mut authzs = order.authorizations();
    while let Some(Ok(mut a)) = authzs.next().await {
        let state = match retry_nonce!(a.refresh().await) {
            Ok(s) => s,
            Err(e) => {
                out.push(describe(&e));
                continue;
            }
        };
        let ident = state.identifier().to_string();
        for c in &state.challenges {
            if let Some(p) = &c.error {
                out.push(format!("{ident}: {}", client::describe_problem(p)));
            }
        }
        if state.status != AuthorizationStatus::Valid && out.is_empty() {
            out.push(format!("{ident}: authorization {:?}", state.status));
        }
    }
    (!out.is_empty()).then(|| out.join("; "))
}

async fn cleanup(plan: &AcmePlan, p: &Presented, tx: &Reporter) {
    match p {
        Presented::File(path) => {
            let _ = tokio::fs::remove_file(path).await;
        }
        Presented::Dns { domain, value } => {
            if let Challenge::Dns01 { hook } = &plan.challenge {
                if let Err(e) =
                    run_hook(hook, "cleanup", domain, value, plan.reload_timeout, tx).await
                {
                    report(
                        tx,
                        AcmeStep::Authorize,
                        format!(
                            "{domain}: dns-01 cleanup failed (remove the TXT record by hand): {e}"
                        ),
                    )
                    .await;
                }
            }
        }
    }
}

async fn run_hook(
    hook: &str,
    action: &str,
    domain: &str,
    value: &str,
    limit: Duration,
    tx: &Reporter,
) -> Result<(), String> {
    // `HOOK ACTION DOMAIN VALUE`, the values as arguments (never as shell text).
    let cmd = Command::shell(
        &format!("{hook} \"$@\""),
        &[action, domain, value],
        limit,
        AcmeStep::Authorize,
    )
    .env("CERTDECK_ACME_ACTION", action)
    .env("CERTDECK_ACME_DOMAIN", domain)
    .env("CERTDECK_ACME_RECORD", &format!("_acme-challenge.{domain}"))
    .env("CERTDECK_ACME_TXT", value)
    .prefix("| ");
    command::run(&cmd, tx).await.map(|_| ())
}

async fn run_command(command: &str, limit: Duration, tx: &Reporter) -> Result<(), String> {
    let cmd = Command::shell(command, &[], limit, AcmeStep::Reload).prefix("| ");
    command::run(&cmd, tx)
        .await
        .map(|_| ())
        .map_err(|e| format!("`{command}` {e}"))
}

/// Put the backups back after a failed reload or verify, and reload the old files.
async fn undo(plan: &AcmePlan, written: &Replaced, tx: &Reporter) -> String {
    report(tx, AcmeStep::Rollback, "putting the old files back").await;
    let restored = fsx::rollback(written);
    let mut msg = match restored {
        Ok(()) => "the old certificate and key were put back".to_owned(),
        Err(e) => format!("putting the old files back FAILED ({e}); restore them from the backups"),
    };
    report(tx, AcmeStep::Rollback, msg.clone()).await;
    if let Some(cmd) = &plan.reload {
        report(
            tx,
            AcmeStep::Rollback,
            format!("reloading the old files: {cmd}"),
        )
        .await;
        match run_command(cmd, plan.reload_timeout, tx).await {
            Ok(()) => msg.push_str(" and reloaded"),
            Err(e) => msg.push_str(&format!(" (reloading them failed too: {e})")),
        }
    }
    msg
}

/// Re-read the written files; re-probe the endpoint until it serves the new leaf.
/// Returns whether an endpoint was checked.
async fn verify(plan: &AcmePlan, leaf: &CertFacts, tx: &Reporter) -> Result<bool, String> {
    let step = AcmeStep::Verify;
    match current_sha256(plan).await {
        Some(s) if s == leaf.sha256 => {}
        Some(s) => {
            return Err(format!(
                "{} holds {s}, not the new certificate",
                plan.file.cert.display()
            ))
        }
        None => return Err(format!("cannot read {} back", plan.file.cert.display())),
    }
    let Some(target) = &plan.endpoint else {
        report(tx, step, "files read back; no endpoint to re-probe").await;
        return Ok(false);
    };
    let prober = crate::sources::tls::TlsProber::new(&[], Duration::from_secs(5))
        .map_err(|e| format!("prober: {e}"))?;
    report(tx, step, format!("re-probing {target}")).await;
    // A reloading server may answer from old and new workers for a moment: the new
    // certificate must be served on several handshakes in a row.
    const IN_A_ROW: usize = 3;
    let deadline = Instant::now() + plan.verify_timeout;
    let mut streak = 0;
    let mut last;
    loop {
        let rec = prober.probe(target).await;
        last = match (&rec.cert, &rec.error) {
            (Some(c), _) if c.sha256 == leaf.sha256 => {
                streak += 1;
                if streak >= IN_A_ROW {
                    report(
                        tx,
                        step,
                        format!(
                            "{target} serves the new certificate (SHA-256 {}, {IN_A_ROW} handshakes in a row)",
                            c.sha256
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
        humantime::format_duration(plan.verify_timeout),
        leaf.sha256
    ))
}

/// A CSR (DER) for the names, signed by the key.
fn csr(names: &[String], key: &rcgen::KeyPair) -> Result<Vec<u8>, String> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| format!("cannot put the names in a CSR: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let req = params
        .serialize_request(key)
        .map_err(|e| format!("CSR: {e}"))?;
    Ok(req.der().to_vec())
}

/// Split the issued PEM chain into the leaf (checked against our key), its PEM, and the rest.
fn split_chain(
    chain_pem: &str,
    key: &rcgen::KeyPair,
) -> Result<(CertFacts, String, String), String> {
    let ders: Vec<Vec<u8>> = pem::scan(chain_pem.as_bytes())
        .into_iter()
        .filter_map(|i| match i {
            PemItem::Certificate(d) => Some(d),
            _ => None,
        })
        .collect();
    let mut facts = Vec::with_capacity(ders.len());
    for d in &ders {
        facts.push(CertFacts::from_der(d).map_err(|e| format!("the CA sent {e}"))?);
    }
    let mut it = facts.into_iter();
    let Some(leaf) = it.next() else {
        return Err("the CA sent no certificate".to_owned());
    };
    {
        use rcgen::PublicKeyData as _;
        use x509_parser::prelude::FromDer as _;
        let (_, x) = x509_parser::certificate::X509Certificate::from_der(&leaf.der)
            .map_err(|e| format!("the CA sent a malformed certificate: {e}"))?;
        if x.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
            return Err("the issued certificate is not for the new key".to_owned());
        }
    }
    let rest: String = it.map(|c| c.to_pem()).collect();
    let leaf_pem = leaf.to_pem();
    Ok((leaf, leaf_pem, rest))
}
