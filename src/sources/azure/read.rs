//! The Key Vault reader, for one vault: the certificates list (paged with `nextLink`, pending
//! ones included), then per certificate with bounded concurrency: the current version with its
//! policy (`GET certificates/NAME/`), its pending operation (`.../pending`), and every version
//! (`.../versions`, paged) with each version's X.509 from `cer`. Throttling (429 with
//! Retry-After) and 5xx are retried by the SDK's pipeline.

use std::sync::Arc;

use azure_security_keyvault_certificates::models::{
    Certificate, CertificateAttributes, CertificateClientGetCertificateOptions,
    CertificateClientListCertificatePropertiesOptions, CertificatePolicy,
};
use futures::StreamExt;

use super::client::Vault;
use super::error::{self, AzError, Op};
use super::facts::{self, KvFacts, LifetimeAction, PendingOperation};
use crate::model::{CertFacts, Record};
use crate::sources::Sink;

/// What one round read.
#[derive(Debug, Default)]
pub struct VaultOutcome {
    pub certificates: usize,
    pub rows: usize,
    /// A problem of the whole vault although some rows were read. `None`: complete.
    pub problem: Option<AzError>,
}

fn secs(t: Option<time::OffsetDateTime>) -> Option<i64> {
    t.map(|t| t.unix_timestamp())
}

/// `https://v/certificates/NAME[/VERSION]` -> (NAME, VERSION).
pub fn parse_id(id: &str) -> Option<(String, Option<String>)> {
    let path = id.split_once("://")?.1.split_once('/')?.1;
    let path = path.split('?').next().unwrap_or_default();
    let mut it = path.split('/').filter(|s| !s.is_empty());
    if it.next()? != "certificates" {
        return None;
    }
    let name = it.next()?.to_owned();
    let version = it.next().map(str::to_owned);
    Some((name, version))
}

fn classify(vault: &Vault, e: &azure_core::Error, op: Op) -> AzError {
    error::classify(e, op, &vault.settings.label(), vault.settings.max_retries)
}

/// Apply a version's attributes.
fn attributes(f: &mut KvFacts, a: Option<&CertificateAttributes>) {
    if let Some(a) = a {
        f.enabled = a.enabled;
        f.not_before = secs(a.not_before);
        f.expires = secs(a.expires);
        f.created = secs(a.created);
        f.updated = secs(a.updated);
    }
}

/// Apply the policy: issuer, lifetime actions, subject and names, key.
pub fn policy(f: &mut KvFacts, p: Option<&CertificatePolicy>) {
    let Some(p) = p else { return };
    if let Some(i) = &p.issuer_parameters {
        f.issuer = i.name.clone();
        f.certificate_type = i.certificate_type.clone();
    }
    f.lifetime_actions = p
        .lifetime_actions
        .iter()
        .flatten()
        .map(|a| LifetimeAction {
            action: a
                .action
                .as_ref()
                .and_then(|t| t.action_type.as_ref())
                .map(|t| t.to_string())
                .unwrap_or_default(),
            lifetime_percentage: a.trigger.as_ref().and_then(|t| t.lifetime_percentage),
            days_before_expiry: a.trigger.as_ref().and_then(|t| t.days_before_expiry),
        })
        .collect();
    if let Some(x) = &p.x509_certificate_properties {
        f.subject = x.subject.clone();
        f.validity_months = x.validity_in_months;
        f.dns_names = x
            .subject_alternative_names
            .as_ref()
            .and_then(|s| s.dns_names.clone())
            .unwrap_or_default();
    }
    if let Some(k) = &p.key_properties {
        f.key_type = k.key_type.as_ref().map(|t| {
            let mut s = t.to_string();
            if let Some(n) = k.key_size {
                s.push_str(&format!(" {n}"));
            }
            if let Some(c) = &k.curve {
                s.push_str(&format!(" {c}"));
            }
            s
        });
    }
}

fn parse_cer(cer: Option<&Vec<u8>>) -> (Option<Arc<CertFacts>>, Option<String>) {
    match cer {
        None => (None, None),
        Some(der) => match CertFacts::from_der(der) {
            Ok(c) => (Some(Arc::new(c)), None),
            Err(e) => (
                None,
                Some(format!("the certificate's `cer` does not parse: {e}")),
            ),
        },
    }
}

/// The pending operation of a certificate, if any (404 means none).
pub async fn pending(vault: &Vault, name: &str) -> Result<Option<PendingOperation>, AzError> {
    match vault.client.get_certificate_operation(name, None).await {
        Ok(r) => {
            let op = r
                .into_model()
                .map_err(|e| classify(vault, &e, error::GET))?;
            Ok(Some(PendingOperation {
                status: op.status.unwrap_or_default(),
                status_details: op.status_details,
                error: op.error.map(|e| {
                    super::clean(
                        &format!(
                            "{}: {}",
                            e.code.unwrap_or_default(),
                            e.message.unwrap_or_default()
                        ),
                        300,
                    )
                }),
                cancellation_requested: op.cancellation_requested.unwrap_or(false),
            }))
        }
        Err(e) => match classify(vault, &e, error::GET) {
            AzError::NotFound { .. } => Ok(None),
            other => Err(other),
        },
    }
}

/// The current version of a certificate, with its policy.
pub async fn current(vault: &Vault, name: &str) -> Result<Certificate, AzError> {
    vault
        .client
        .get_certificate(name, None)
        .await
        .and_then(|r| r.into_model())
        .map_err(|e| classify(vault, &e, error::GET))
}

/// Read one certificate: one row per version. Returns the rows and the first error about the
/// whole vault (credentials, permissions, throttling) for the problem line.
pub async fn observe_certificate(vault: &Vault, name: &str) -> (Vec<Record>, Option<AzError>) {
    let now = crate::clock::now_unix();
    let url = &vault.settings.vault_url;
    let base = KvFacts {
        vault: url.clone(),
        vault_name: vault.settings.label(),
        name: name.to_owned(),
        ..KvFacts::default()
    };
    let versionless = format!("{url}certificates/{name}");
    let pending = match pending(vault, name).await {
        Ok(p) => p,
        Err(e) => {
            let rec = facts::record_for(&versionless, None, base.into_extra(now), now)
                .with_error(e.to_string());
            let wide = e.is_vault_wide();
            return (vec![rec], wide.then_some(e));
        }
    };
    let cur = match current(vault, name).await {
        Ok(c) => c,
        Err(AzError::NotFound { .. }) if pending.is_some() => {
            // Pending creation: no version yet.
            let f = KvFacts {
                current: true,
                pending,
                ..base
            };
            return (
                vec![facts::record_for(
                    &versionless,
                    None,
                    f.into_extra(now),
                    now,
                )],
                None,
            );
        }
        Err(e) => {
            let rec = facts::record_for(&versionless, None, base.into_extra(now), now)
                .with_error(e.to_string());
            let wide = e.is_vault_wide();
            return (vec![rec], wide.then_some(e));
        }
    };
    let cur_id = cur.id.clone().unwrap_or_else(|| versionless.clone());
    let cur_version = parse_id(&cur_id).and_then(|(_, v)| v);
    let mut cur_facts = KvFacts {
        id: cur_id.clone(),
        version: cur_version.clone().unwrap_or_default(),
        current: true,
        current_version: cur_version.clone(),
        pending,
        ..base.clone()
    };
    attributes(&mut cur_facts, cur.attributes.as_ref());
    policy(&mut cur_facts, cur.policy.as_ref());
    // Older versions.
    let mut others: Vec<(String, String, Option<CertificateAttributes>)> = Vec::new();
    let mut problem = None;
    if vault.settings.versions {
        match vault
            .client
            .list_certificate_properties_versions(name, None)
        {
            Ok(pager) => {
                let mut pages = pager.into_pages();
                while let Some(page) = pages.next().await {
                    match page.and_then(|p| p.into_model()) {
                        Ok(p) => {
                            for v in p.value {
                                let Some(id) = v.id else { continue };
                                let Some((_, Some(ver))) = parse_id(&id) else {
                                    continue;
                                };
                                if Some(&ver) != cur_version.as_ref() {
                                    others.push((id, ver, v.attributes));
                                }
                            }
                        }
                        Err(e) => {
                            problem = Some(classify(vault, &e, error::LIST));
                            break;
                        }
                    }
                }
            }
            Err(e) => problem = Some(classify(vault, &e, error::LIST)),
        }
    }
    let versions = others.len() + 1;
    cur_facts.versions = versions;
    let (leaf, bad) = parse_cer(cur.cer.as_ref());
    let mut rec = facts::record_for(&cur_id, leaf, cur_facts.clone().into_extra(now), now);
    if let Some(b) = bad {
        rec.error = Some(b);
    } else if rec.cert.is_none() && cur_facts.pending.is_none() {
        rec.error =
            Some("Key Vault returned no certificate (`cer`) for the current version".into());
    }
    let mut rows = vec![rec];
    for (id, ver, attrs) in others {
        let mut f = KvFacts {
            id: id.clone(),
            version: ver.clone(),
            current: false,
            current_version: cur_version.clone(),
            versions,
            issuer: cur_facts.issuer.clone(),
            ..base.clone()
        };
        attributes(&mut f, attrs.as_ref());
        let got = vault
            .client
            .get_certificate(
                name,
                Some(CertificateClientGetCertificateOptions {
                    certificate_version: Some(ver.clone()),
                    ..Default::default()
                }),
            )
            .await
            .and_then(|r| r.into_model());
        let rec = match got {
            Ok(c) => {
                attributes(&mut f, c.attributes.as_ref());
                let (leaf, bad) = parse_cer(c.cer.as_ref());
                let mut r = facts::record_for(&id, leaf, f.into_extra(now), now);
                r.error = bad;
                r
            }
            Err(e) => {
                let e = classify(vault, &e, error::GET);
                if problem.is_none() && e.is_vault_wide() {
                    problem = Some(e.clone());
                }
                facts::record_for(&id, None, f.into_extra(now), now).with_error(e.to_string())
            }
        };
        rows.push(rec);
    }
    (rows, problem)
}

/// Read the whole vault, sending rows as certificates are read. `Err` when nothing could be
/// listed; `Ok` with a problem when the round is incomplete.
pub async fn read_vault(vault: &Arc<Vault>, sink: &Sink) -> Result<VaultOutcome, AzError> {
    let mut outcome = VaultOutcome::default();
    let pager = vault
        .client
        .list_certificate_properties(Some(CertificateClientListCertificatePropertiesOptions {
            include_pending: Some(true),
            ..Default::default()
        }))
        .map_err(|e| classify(vault, &e, error::LIST))?;
    let mut pages = pager.into_pages();
    let mut page = 0usize;
    let mut row_problem: Option<AzError> = None;
    let mut row_problems = 0usize;
    let concurrency = vault.settings.concurrency;
    loop {
        let next = pages.next().await;
        let Some(res) = next else { break };
        page += 1;
        let names: Vec<String> = match res.and_then(|p| p.into_model()) {
            Ok(p) => p
                .value
                .into_iter()
                .filter_map(|c| c.id.and_then(|id| parse_id(&id)).map(|(n, _)| n))
                .collect(),
            Err(e) => {
                let e = classify(vault, &e, error::LIST);
                if page == 1 {
                    return Err(e);
                }
                outcome.problem = Some(AzError::Other {
                    op: "certificates list",
                    vault: vault.settings.label(),
                    message: format!(
                        "page {page} failed after {} certificates were read: {e}",
                        outcome.certificates
                    ),
                });
                return Ok(outcome);
            }
        };
        let mut stream = futures::stream::iter(names.into_iter().map(|n| {
            let vault = vault.clone();
            async move { observe_certificate(&vault, &n).await }
        }))
        .buffer_unordered(concurrency);
        while let Some((rows, p)) = stream.next().await {
            outcome.certificates += 1;
            for r in rows {
                outcome.rows += 1;
                if !sink.observed(r).await {
                    return Ok(outcome);
                }
            }
            if let Some(p) = p {
                row_problems += 1;
                row_problem.get_or_insert(p);
            }
        }
    }
    if let Some(p) = row_problem {
        outcome.problem = Some(if row_problems > 1 {
            AzError::Other {
                op: "certificates get",
                vault: vault.settings.label(),
                message: format!(
                    "{row_problems} of {} certificates could not be read fully: {p}",
                    outcome.certificates
                ),
            }
        } else {
            p
        });
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_split_into_name_and_version() {
        assert_eq!(
            parse_id("https://v.vault.azure.net/certificates/web/abc123"),
            Some(("web".into(), Some("abc123".into())))
        );
        assert_eq!(
            parse_id("https://127.0.0.1:9/certificates/web"),
            Some(("web".into(), None))
        );
        assert_eq!(parse_id("https://v/keys/web"), None);
    }
}
