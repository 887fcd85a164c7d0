//! Key Vault actions, as a backend of the one action framework ([`AzureBackend`]).
//!
//! `renew`: a new version from the certificate's own policy, as `az keyvault certificate
//! create` does. Plan (reads only): the current version, its policy and any pending
//! operation; refused with the reason when the policy's issuer cannot issue (`Unknown`: a CA
//! outside Key Vault), the certificate is disabled, or a new version is already pending.
//! Execute: `POST certificates/NAME/create` with the policy, then follow `.../pending` until
//! `completed` or `failed` (within `--wait`), then verify by re-reading `.../NAME/`: a new
//! current version whose `cer` parses. Key Vault switches the current version only once the
//! new one is issued, so a failed step leaves the previous certificate current.

use std::sync::Arc;
use std::time::Duration;

use azure_security_keyvault_certificates::models::{
    CertificatePolicy, CreateCertificateParameters,
};
use futures::StreamExt;

use super::client::Vault;
use super::error::{self, AzError};
use super::facts::{self, issuer_can_issue, KvFacts};
use super::read;
use super::settings::API_VERSION;
use crate::actions::{
    ActionError, ActionOptions, Backend, Offer, Outcome, Plan, Prepared, Reporter, Risk, Step,
};
use crate::model::{CertFacts, Record};
use crate::sources::BoxFut;

/// The Key Vault rows' actions.
pub struct AzureBackend {
    pub vault: Arc<Vault>,
}

/// Why a certificate cannot get a new version from its policy, or `Ok`. Pure.
pub fn renew_allowed(f: &KvFacts) -> Result<(), String> {
    if !issuer_can_issue(f.issuer.as_deref()) {
        return Err(format!(
            "the policy's issuer is {}: Key Vault cannot issue a new version itself; create one with a CSR signed by your CA and merge it",
            f.issuer.as_deref().unwrap_or("Unknown")
        ));
    }
    if f.enabled == Some(false) && f.current {
        return Err("the certificate is disabled: enable it before renewing".to_owned());
    }
    if f.pending.as_ref().is_some_and(|p| p.in_progress()) {
        return Err(
            "a new version is already pending (a certificate operation is in progress)".to_owned(),
        );
    }
    Ok(())
}

impl AzureBackend {
    fn facts_of(&self, record: &Record) -> Option<KvFacts> {
        let x = record.extra.as_ref().filter(|x| x.key == facts::JSON_KEY)?;
        let f: KvFacts = serde_json::from_value(x.json.clone()).ok()?;
        (f.kind == "kv-certificate" && f.vault == self.vault.settings.vault_url).then_some(f)
    }
}

fn az(step: Step, e: AzError) -> ActionError {
    ActionError::at(step, e.to_string())
}

/// What the plan read: the current version and the policy to create the new one from.
struct Current {
    version: Option<String>,
    facts: KvFacts,
    policy: CertificatePolicy,
    sha256: Option<String>,
}

async fn read_current(vault: &Vault, name: &str, step: Step) -> Result<Current, ActionError> {
    let pending = read::pending(vault, name).await.map_err(|e| az(step, e))?;
    let cur = read::current(vault, name).await.map_err(|e| az(step, e))?;
    let id = cur.id.clone().unwrap_or_default();
    let version = read::parse_id(&id).and_then(|(_, v)| v);
    let mut f = KvFacts {
        vault: vault.settings.vault_url.clone(),
        vault_name: vault.settings.label(),
        name: name.to_owned(),
        id,
        version: version.clone().unwrap_or_default(),
        current: true,
        current_version: version.clone(),
        pending,
        ..KvFacts::default()
    };
    if let Some(a) = &cur.attributes {
        f.enabled = a.enabled;
        f.not_before = a.not_before.map(|t| t.unix_timestamp());
        f.expires = a.expires.map(|t| t.unix_timestamp());
    }
    read::policy(&mut f, cur.policy.as_ref());
    let policy = cur
        .policy
        .clone()
        .ok_or_else(|| ActionError::at(step, format!("Key Vault returned no policy for {name}")))?;
    let sha256 = cur
        .cer
        .as_ref()
        .and_then(|d| CertFacts::from_der(d).ok())
        .map(|c| c.sha256);
    Ok(Current {
        version,
        facts: f,
        policy,
        sha256,
    })
}

impl Backend for AzureBackend {
    fn offers(&self, record: &Record) -> Vec<Offer> {
        let Some(f) = self.facts_of(record) else {
            return Vec::new();
        };
        match renew_allowed(&f) {
            Ok(()) => vec![Offer {
                verb: "renew".to_owned(),
                title: format!(
                    "Renew (Key Vault: new version from the policy, issuer {})",
                    f.issuer.as_deref().unwrap_or("-")
                ),
                builtin: true,
            }],
            Err(why) => vec![Offer {
                verb: "renew".to_owned(),
                title: format!("Renew (unavailable: {why})"),
                builtin: false,
            }],
        }
    }

    fn plan<'a>(
        &'a self,
        verb: &'a str,
        record: &'a Record,
        opts: &'a ActionOptions,
    ) -> BoxFut<'a, Result<Prepared, ActionError>> {
        Box::pin(async move {
            let f = self
                .facts_of(record)
                .ok_or_else(|| ActionError::not_applicable("not a Key Vault certificate row"))?;
            if verb != "renew" {
                return Err(ActionError::not_applicable(format!(
                    "Key Vault certificates offer renew, not {verb}"
                )));
            }
            let name = f.name.clone();
            let cur = read_current(&self.vault, &name, Step::Read).await?;
            renew_allowed(&cur.facts).map_err(ActionError::not_applicable)?;
            let url = &self.vault.settings.vault_url;
            let mut plan = Plan::for_record(
                "azure-renew",
                "renew",
                &format!("Renew {name} (new Key Vault version from its policy)"),
                record,
                &format!("certificate {name} in {url}"),
            );
            plan.context = Some(url.clone());
            plan.identity = self.vault.chain.identity();
            plan.old_not_after = cur.facts.expires.or(plan.old_not_after);
            plan.before_sha256 = cur.sha256.clone().or(plan.before_sha256);
            plan.new_expiry_note = Some(match cur.facts.validity_months {
                Some(m) => format!("{m} months from issue (the policy's validity)"),
                None => "as the issuer decides".to_owned(),
            });
            plan.issuer = cur.facts.issuer.clone();
            plan.names = cur.facts.dns_names.clone();
            // Key Vault makes a new key unless the policy reuses the current one.
            let reuse = cur
                .policy
                .key_properties
                .as_ref()
                .and_then(|k| k.reuse_key)
                .unwrap_or(false);
            if reuse {
                if let Some(k) = &cur.facts.key_type {
                    plan.details
                        .push(("key".to_owned(), format!("{k} (the policy reuses the key)")));
                }
            } else {
                plan.key_type = cur.facts.key_type.clone();
            }
            plan.details.push((
                "current".to_owned(),
                format!("version {}", cur.version.as_deref().unwrap_or("-")),
            ));
            for a in &cur.facts.lifetime_actions {
                plan.details.push((
                    "lifetime".to_owned(),
                    format!("{} {}", a.action, a.trigger()),
                ));
            }
            plan.steps_label = "API calls".to_owned();
            plan.steps = vec![
                format!("POST {url}certificates/{name}/create?api-version={API_VERSION} (the current policy)"),
                format!("GET {url}certificates/{name}/pending until completed or failed"),
                format!("GET {url}certificates/{name}/ (verify: a new current version whose cer parses)"),
            ];
            plan.warnings.push(
                "services that use the versionless id pick up the new version; ones pinned to the current version keep the old certificate".to_owned(),
            );
            plan.risk = Risk::Change;
            let vault = self.vault.clone();
            let wait = opts.wait;
            Ok(Prepared {
                plan,
                job: Box::new(move |rep| {
                    Box::pin(async move { execute(&vault, &name, cur, wait, &rep).await })
                }),
            })
        })
    }
}

async fn execute(
    vault: &Vault,
    name: &str,
    before: Current,
    wait: Duration,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let label = vault.settings.label();
    rep.step(Step::Write, format!("POST certificates/{name}/create"))
        .await;
    let mut policy = before.policy.clone();
    policy.id = None;
    let body = CreateCertificateParameters {
        certificate_policy: Some(policy),
        ..CreateCertificateParameters::default()
    };
    let content = body
        .try_into()
        .map_err(|e: azure_core::Error| ActionError::at(Step::Write, e.to_string()))?;
    let mut poller = vault
        .client
        .begin_create_certificate(name, content, None)
        .map_err(|e| az(Step::Write, error::classify(&e, error::CREATE, &label, 0)))?;
    // The poller's first step is the POST; its answer is the new operation.
    match poller.next().await {
        Some(Ok(r)) => {
            let op = r
                .into_model()
                .map_err(|e| ActionError::at(Step::Write, e.to_string()))?;
            rep.step(
                Step::Write,
                format!("operation {}", op.status.unwrap_or_default()),
            )
            .await;
        }
        Some(Err(e)) => {
            return Err(az(
                Step::Write,
                error::classify(&e, error::CREATE, &label, vault.settings.max_retries),
            ))
        }
        None => {
            return Err(ActionError::at(
                Step::Write,
                "no answer to the create request",
            ))
        }
    }
    drop(poller);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let op = read::pending(vault, name)
            .await
            .map_err(|e| az(Step::Wait, e))?
            .ok_or_else(|| ActionError::at(Step::Wait, "the pending operation disappeared"))?;
        rep.step(
            Step::Wait,
            format!(
                "operation {}{}",
                op.status,
                op.status_details
                    .as_deref()
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        )
        .await;
        if op.failed() {
            return Err(ActionError::at(
                Step::Wait,
                format!(
                    "Key Vault could not create the new version ({}); version {} stays current",
                    op.error.or(op.status_details).unwrap_or(op.status),
                    before.version.as_deref().unwrap_or("-")
                ),
            ));
        }
        if op.status.eq_ignore_ascii_case("completed") {
            break;
        }
        if op.status.eq_ignore_ascii_case("cancelled") {
            return Err(ActionError::at(
                Step::Wait,
                "the operation was cancelled; the current version is unchanged",
            ));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ActionError::timeout(
                Step::Wait,
                format!(
                    "the new version is still {} after {}; Key Vault keeps working on it",
                    op.status,
                    humantime::format_duration(wait)
                ),
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    rep.step(Step::Verify, format!("GET certificates/{name}/"))
        .await;
    let after = read_current(vault, name, Step::Verify).await?;
    if after.version == before.version {
        return Err(ActionError::at(
            Step::Verify,
            "the operation completed but the current version did not change",
        ));
    }
    let cer = after
        .sha256
        .clone()
        .ok_or_else(|| ActionError::at(Step::Verify, "the new version's cer does not parse"))?;
    Ok(Outcome {
        after_sha256: Some(cer),
        new_not_after: after.facts.expires,
        message: format!(
            "renewed: version {} is current (expires {}); version {} stays as an older version",
            after.version.as_deref().unwrap_or("-"),
            after
                .facts
                .expires
                .map(crate::clock::rfc3339)
                .unwrap_or_default(),
            before.version.as_deref().unwrap_or("-")
        ),
        ..Outcome::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::azure::facts::PendingOperation;

    #[test]
    fn renew_needs_an_issuer_that_issues_an_enabled_certificate_and_nothing_pending() {
        let f = KvFacts {
            current: true,
            enabled: Some(true),
            issuer: Some("Self".into()),
            ..KvFacts::default()
        };
        assert!(renew_allowed(&f).is_ok());
        let e = renew_allowed(&KvFacts {
            issuer: Some("Unknown".into()),
            ..f.clone()
        })
        .unwrap_err();
        assert!(e.contains("merge"), "{e}");
        assert!(renew_allowed(&KvFacts {
            enabled: Some(false),
            ..f.clone()
        })
        .unwrap_err()
        .contains("disabled"));
        assert!(renew_allowed(&KvFacts {
            pending: Some(PendingOperation {
                status: "inProgress".into(),
                ..PendingOperation::default()
            }),
            ..f
        })
        .unwrap_err()
        .contains("pending"));
    }
}
