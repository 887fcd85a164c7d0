//! Rotate a plain `kubernetes.io/tls` Secret that no Certificate manages: re-issue with rcgen,
//! keeping its subject, SANs, lifetime and key type, signed by a named CA or self-signed if the
//! original was. The old Secret is saved first (a file restorable with
//! `kubectl --context CTX replace -f FILE`), the write carries a resourceVersion precondition,
//! the Secret is read back and checked, and put back if the check fails: it always holds a
//! valid pair.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, Issuer,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;
use x509_parser::prelude::*;

use super::{k8s_error, k8s_of, offered, ActionContext, CaSource, K8sPlan};
use crate::actions::keys::KeyType;
use crate::actions::{ActionError, Outcome, Reporter, Step};
use crate::model::{CertFacts, Record, San};
use crate::sources::k8s::error::call;
use crate::sources::k8s::read::parse_certs;
use crate::sources::k8s::K8sError;

/// The command that puts a backed-up Secret back.
/// (Names are quoted for a POSIX shell when they need it: the line is meant to be pasted.)
pub fn restore_command(context: &str, backup: &Path) -> String {
    use crate::actions::command::shell_word;
    format!(
        "kubectl --context {} replace -f {}",
        shell_word(context),
        shell_word(&backup.display().to_string())
    )
}

/// The CA material (certificate DER and PEM, key PEM). The key stays in memory only.
#[derive(Clone)]
struct CaMaterial {
    cert_der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
    facts: CertFacts,
}

async fn load_ca(
    ctx: &ActionContext,
    context: &str,
    src: &CaSource,
) -> Result<CaMaterial, ActionError> {
    let (crt, key, shown) = match src {
        CaSource::Files { cert, key } => {
            let c = std::fs::read(cert).map_err(|e| {
                ActionError::at(
                    Step::Issue,
                    format!("cannot read CA file {}: {e}", cert.display()),
                )
            })?;
            let k = std::fs::read(key).map_err(|e| {
                ActionError::at(
                    Step::Issue,
                    format!("cannot read CA key file {}: {e}", key.display()),
                )
            })?;
            (c, k, cert.display().to_string())
        }
        CaSource::Secret { namespace, name } => {
            let client = ctx.client(context, Step::Issue).await?;
            let api: Api<Secret> = Api::namespaced(client, namespace);
            let s = call(
                api.get(name),
                ctx.timeout,
                context,
                "get",
                "secrets",
                namespace,
            )
            .await
            .map_err(k8s_error(Step::Issue))?;
            let d = s.data.unwrap_or_default();
            let get = |k: &str| d.get(k).map(|b| b.0.clone()).unwrap_or_default();
            (
                get("tls.crt"),
                get("tls.key"),
                format!("Secret {namespace}/{name}"),
            )
        }
    };
    let facts = match parse_certs(&crt) {
        Some(Ok(mut c)) if !c.is_empty() => c.remove(0),
        _ => {
            return Err(ActionError::at(
                Step::Issue,
                format!("{shown} holds no CA certificate"),
            ))
        }
    };
    if !facts.is_ca {
        return Err(ActionError::at(
            Step::Issue,
            format!("{shown}: {} is not a CA certificate", facts.subject),
        ));
    }
    let key_pem = String::from_utf8(key)
        .map_err(|_| ActionError::at(Step::Issue, format!("{shown}: the CA key is not PEM")))?;
    Ok(CaMaterial {
        cert_der: facts.der.to_vec(),
        cert_pem: facts.to_pem(),
        key_pem,
        facts,
    })
}

pub(super) async fn plan(ctx: &ActionContext, record: &Record) -> Result<K8sPlan, ActionError> {
    let k = k8s_of(record)?;
    if let Some(cm) = &k.managed_by {
        return Err(ActionError::not_applicable(format!(
            "{} is managed by cert-manager Certificate {}: use `certdeck renew {}` (a rotation would be overwritten)",
            record.location, cm.name, record.id
        )));
    }
    if offered(record) != Some("rotate") {
        return Err(ActionError::not_applicable(format!(
            "{}: only the tls.crt of a kubernetes.io/tls Secret can be rotated",
            record.location
        )));
    }
    let client = ctx.client(&k.context, Step::Read).await?;
    let api: Api<Secret> = Api::namespaced(client, &k.namespace);
    let s = call(
        api.get(&k.name),
        ctx.timeout,
        &k.context,
        "get",
        "secrets",
        &k.namespace,
    )
    .await
    .map_err(k8s_error(Step::Read))?;
    let leaf = current_leaf(&s).ok_or_else(|| {
        ActionError::not_applicable(format!("{}: tls.crt holds no certificate", record.location))
    })?;
    KeyType::from_description(&leaf.key).map_err(ActionError::not_applicable)?;
    let mut warnings = Vec::new();
    let issuer = if leaf.self_issued {
        "self-signed (as the current certificate is)".to_owned()
    } else {
        let Some(src) = &ctx.ca else {
            return Err(ActionError::not_applicable(format!(
                "{} is signed by {}: name that CA with --ca-secret NAMESPACE/NAME or --ca-cert FILE --ca-key FILE",
                record.location, leaf.issuer
            )));
        };
        let ca = load_ca(ctx, &k.context, src).await?;
        if ca.facts.subject != leaf.issuer {
            warnings.push(format!(
                "the current certificate was issued by {}, the new one will be issued by {}",
                leaf.issuer, ca.facts.subject
            ));
        }
        ca.facts.subject.clone()
    };
    let now = crate::clock::now_unix();
    let lifetime = (leaf.not_after - leaf.not_before).max(3600);
    let backup = ctx.backups.path_for(
        "secrets",
        &crate::fsx::Backups::key(&format!("{}/{}/{}", k.context, k.namespace, k.name)),
        "json",
        now,
    );
    warnings.push(format!(
        "the current Secret is saved to {} first; restore it with: {}",
        backup.display(),
        restore_command(&k.context, &backup)
    ));
    let path = format!("/api/v1/namespaces/{}/secrets/{}", k.namespace, k.name);
    let rv = s.metadata.resource_version.clone();
    Ok(K8sPlan {
        kind: "rotate",
        record_id: record.id.clone(),
        location: record.location.clone(),
        context: k.context.clone(),
        namespace: k.namespace.clone(),
        object: format!("Secret {}/{}", k.namespace, k.name),
        certificate: None,
        secret: k.name.clone(),
        resource_version: rv.clone(),
        old_not_after: Some(leaf.not_after),
        new_not_after: Some(now + lifetime),
        issuer,
        sans: leaf.sans.iter().map(San::render).collect(),
        key_type: Some(leaf.key.clone()),
        before_sha256: Some(leaf.sha256.clone()),
        revision: None,
        api_calls: vec![
            format!("GET {path} (must still be at resourceVersion {})", rv.as_deref().unwrap_or("?")),
            format!("write backup {} (mode 0600)", backup.display()),
            format!(
                "PUT {path} (tls.crt and tls.key replaced, other keys kept; precondition resourceVersion {})",
                rv.as_deref().unwrap_or("?")
            ),
            format!("GET {path} (verify the new pair; PUT the saved Secret back if it does not match)"),
        ],
        warnings,
        backup: Some(backup),
    })
}

fn current_leaf(s: &Secret) -> Option<CertFacts> {
    let crt = s.data.as_ref()?.get("tls.crt")?;
    match parse_certs(&crt.0) {
        Some(Ok(mut c)) if !c.is_empty() => Some(c.remove(0)),
        _ => None,
    }
}

/// Copy the subject of a DER certificate into an rcgen name.
fn subject_of(der: &[u8]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    let Ok((_, x)) = X509Certificate::from_der(der) else {
        return dn;
    };
    for attr in x.subject().iter_attributes() {
        let Ok(value) = attr.as_str() else { continue };
        let oid = attr.attr_type();
        let ty = if *oid == x509_parser::oid_registry::OID_X509_COMMON_NAME {
            DnType::CommonName
        } else if *oid == x509_parser::oid_registry::OID_X509_ORGANIZATION_NAME {
            DnType::OrganizationName
        } else if *oid == x509_parser::oid_registry::OID_X509_ORGANIZATIONAL_UNIT {
            DnType::OrganizationalUnitName
        } else if *oid == x509_parser::oid_registry::OID_X509_COUNTRY_NAME {
            DnType::CountryName
        } else if *oid == x509_parser::oid_registry::OID_X509_LOCALITY_NAME {
            DnType::LocalityName
        } else if *oid == x509_parser::oid_registry::OID_X509_STATE_OR_PROVINCE_NAME {
            DnType::StateOrProvinceName
        } else {
            continue;
        };
        let v = match &ty {
            DnType::CountryName => match rcgen::string::PrintableString::try_from(value) {
                Ok(p) => DnValue::PrintableString(p),
                Err(_) => continue,
            },
            _ => DnValue::Utf8String(value.to_owned()),
        };
        dn.push(ty, v);
    }
    dn
}

fn ext_key_usages(der: &[u8]) -> Vec<ExtendedKeyUsagePurpose> {
    let mut out = Vec::new();
    if let Ok((_, x)) = X509Certificate::from_der(der) {
        if let Ok(Some(eku)) = x.extended_key_usage() {
            if eku.value.server_auth {
                out.push(ExtendedKeyUsagePurpose::ServerAuth);
            }
            if eku.value.client_auth {
                out.push(ExtendedKeyUsagePurpose::ClientAuth);
            }
        }
    }
    out
}

/// A new certificate and key like `old`. Returns (cert PEM, key PEM, facts).
fn issue(
    old: &CertFacts,
    ca: Option<&CaMaterial>,
    not_after: i64,
) -> Result<(String, String, CertFacts), ActionError> {
    let e = |m: String| ActionError::at(Step::Issue, m);
    let spec = KeyType::from_description(&old.key).map_err(e)?;
    let key = crate::actions::keys::generate(spec).map_err(e)?;
    let mut p = CertificateParams::default();
    p.distinguished_name = subject_of(&old.der);
    for s in &old.sans {
        let ia5 =
            |v: &str| rcgen::string::Ia5String::try_from(v).map_err(|x| e(format!("SAN {v}: {x}")));
        p.subject_alt_names.push(match s {
            San::Dns(v) => SanType::DnsName(ia5(v)?),
            San::Uri(v) => SanType::URI(ia5(v)?),
            San::Email(v) => SanType::Rfc822Name(ia5(v)?),
            San::Ip(v) => SanType::IpAddress(
                v.parse()
                    .map_err(|_| e(format!("SAN IP {v} does not parse")))?,
            ),
            San::Other(v) => return Err(e(format!("cannot copy SAN {v}"))),
        });
    }
    let now = crate::clock::now_unix();
    p.not_before =
        ::time::OffsetDateTime::from_unix_timestamp(now - 60).map_err(|x| e(x.to_string()))?;
    p.not_after =
        ::time::OffsetDateTime::from_unix_timestamp(not_after).map_err(|x| e(x.to_string()))?;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if spec.is_rsa() {
        p.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    p.extended_key_usages = ext_key_usages(&old.der);
    p.use_authority_key_identifier_extension = ca.is_some();
    let cert = match ca {
        Some(ca) => {
            let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|x| e(format!("CA key: {x}")))?;
            let issuer = Issuer::from_ca_cert_der(&ca.cert_der.as_slice().into(), ca_key)
                .map_err(|x| e(format!("CA certificate: {x}")))?;
            p.signed_by(&key, &issuer)
                .map_err(|x| e(format!("signing: {x}")))?
        }
        None => p
            .self_signed(&key)
            .map_err(|x| e(format!("self-signing: {x}")))?,
    };
    let facts = CertFacts::from_der(cert.der()).map_err(|x| e(x.to_string()))?;
    Ok((cert.pem(), key.serialize_pem(), facts))
}

/// The Secret manifest saved before a rotation (no server fields, so `kubectl replace` takes it).
fn backup_manifest(s: &Secret) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": s.metadata.name,
            "namespace": s.metadata.namespace,
            "labels": s.metadata.labels,
            "annotations": s.metadata.annotations,
        },
        "type": s.type_,
        "data": s.data,
    })
}

pub(super) async fn execute(
    ctx: &ActionContext,
    plan: &K8sPlan,
    rep: &Reporter,
) -> Result<Outcome, ActionError> {
    let (cx, ns, name) = (
        plan.context.as_str(),
        plan.namespace.as_str(),
        plan.secret.as_str(),
    );
    let client = ctx.client(cx, Step::Read).await?;
    let api: Api<Secret> = Api::namespaced(client, ns);

    // 1. Read: still what the preview showed?
    let current = call(api.get(name), ctx.timeout, cx, "get", "secrets", ns)
        .await
        .map_err(k8s_error(Step::Read))?;
    if current.metadata.resource_version != plan.resource_version {
        return Err(ActionError::at(
            Step::Read,
            K8sError::Conflict(format!(
                "Secret {ns}/{name} changed since the preview (resourceVersion {} -> {}); nothing was written, plan again",
                plan.resource_version.as_deref().unwrap_or("?"),
                current.metadata.resource_version.as_deref().unwrap_or("?")
            ))
            .to_string(),
        ));
    }
    let old = current_leaf(&current).ok_or_else(|| {
        ActionError::at(
            Step::Verify,
            format!("Secret {ns}/{name}: tls.crt holds no certificate"),
        )
    })?;
    rep.step(
        Step::Read,
        format!(
            "Secret at resourceVersion {}",
            plan.resource_version.as_deref().unwrap_or("?")
        ),
    )
    .await;

    // 2. Issue.
    let ca = match (old.self_issued, &ctx.ca) {
        (true, _) => None,
        (false, Some(src)) => Some(load_ca(ctx, cx, src).await?),
        (false, None) => {
            return Err(ActionError::at(
                Step::Issue,
                format!("{} is CA-signed and no CA was named", plan.object),
            ))
        }
    };
    let not_after = plan
        .new_not_after
        .unwrap_or(crate::clock::now_unix() + 90 * 86_400);
    // Key generation (seconds for RSA) runs on the blocking pool.
    let (cert_pem, key_pem, facts) = {
        let (old, ca) = (old.clone(), ca.clone());
        tokio::task::spawn_blocking(move || issue(&old, ca.as_ref(), not_after))
            .await
            .map_err(|e| ActionError::at(Step::Issue, format!("key generation task: {e}")))??
    };
    rep.step(
        Step::Issue,
        format!(
            "new {} certificate {} (expires {})",
            old.key,
            &facts.sha256[..16],
            crate::clock::rfc3339(facts.not_after)
        ),
    )
    .await;

    // 3. Backup.
    let backup = plan
        .backup
        .clone()
        .ok_or_else(|| ActionError::at(Step::Backup, "the plan names no backup file"))?;
    write_backup(ctx, &backup, &current)?;
    rep.step(
        Step::Backup,
        format!(
            "saved to {} (restore: {})",
            backup.display(),
            restore_command(cx, &backup)
        ),
    )
    .await;

    // 4. Write with the resourceVersion precondition.
    let mut new = current.clone();
    let mut data: BTreeMap<String, ByteString> = new.data.take().unwrap_or_default();
    let old_chain_len = data.get("tls.crt").and_then(|b| match parse_certs(&b.0) {
        Some(Ok(c)) => Some(c.len()),
        _ => None,
    });
    let mut crt = cert_pem.clone();
    if let (Some(ca), Some(n)) = (&ca, old_chain_len) {
        if n > 1 {
            crt.push_str(&ca.cert_pem);
        }
    }
    data.insert("tls.crt".into(), ByteString(crt.into_bytes()));
    data.insert("tls.key".into(), ByteString(key_pem.into_bytes()));
    new.data = Some(data);
    new.metadata.managed_fields = None;
    call(api.replace(name, &PostParams::default(), &new), ctx.timeout, cx, "update", "secrets", ns)
        .await
        .map_err(|e| match e {
            K8sError::Conflict(m) => ActionError::at(
                Step::Write,
                K8sError::Conflict(format!(
                    "Secret {ns}/{name} was changed by someone else before the write; nothing was written: {m}"
                ))
                .to_string(),
            ),
            e => k8s_error(Step::Write)(e),
        })?;
    rep.step(
        Step::Write,
        format!("PUT /api/v1/namespaces/{ns}/secrets/{name}"),
    )
    .await;

    // 5. Verify; put the old pair back if the stored one is not the new valid pair.
    let stored = call(api.get(name), ctx.timeout, cx, "get", "secrets", ns)
        .await
        .map_err(k8s_error(Step::Verify))?;
    let stored_leaf = current_leaf(&stored);
    let stored_key = stored
        .data
        .as_ref()
        .and_then(|d| d.get("tls.key"))
        .and_then(|b| String::from_utf8(b.0.clone()).ok())
        .unwrap_or_default();
    let ok = stored_leaf.as_ref().is_some_and(|l| {
        l.sha256 == facts.sha256 && crate::actions::keys::key_matches(&l.der, &stored_key)
    });
    if !ok {
        let why = match &stored_leaf {
            None => "tls.crt holds no certificate after the write".to_owned(),
            Some(l) if l.sha256 != facts.sha256 => format!(
                "tls.crt holds {} instead of the new certificate",
                &l.sha256[..16]
            ),
            Some(_) => "tls.key does not match tls.crt after the write".to_owned(),
        };
        rep.step(
            Step::Rollback,
            format!("{why}: restoring the previous Secret"),
        )
        .await;
        let mut back = stored.clone();
        back.data = current.data.clone();
        back.type_ = current.type_.clone();
        back.metadata.managed_fields = None;
        let restored = call(
            api.replace(name, &PostParams::default(), &back),
            ctx.timeout,
            cx,
            "update",
            "secrets",
            ns,
        )
        .await;
        return Err(ActionError::at(
            Step::Verify,
            match restored {
                Ok(_) => format!("{why}; the previous certificate was put back"),
                Err(e) => format!(
                    "{why}; putting the previous Secret back failed ({e}): restore it with {}",
                    restore_command(cx, &backup)
                ),
            },
        ));
    }
    let msg = format!(
        "rotated: new certificate expires {}; backup {}",
        crate::clock::rfc3339(facts.not_after),
        backup.display()
    );
    rep.step(Step::Done, msg.clone()).await;
    let key = crate::fsx::Backups::key(&format!("{cx}/{ns}/{name}"));
    ctx.backups.prune("secrets", &key, crate::clock::now_unix());
    Ok(Outcome {
        after_sha256: Some(facts.sha256.clone()),
        new_not_after: Some(facts.not_after),
        restore_command: Some(restore_command(cx, &backup)),
        backups: vec![backup],
        message: msg,
        ..Outcome::default()
    })
}

fn write_backup(ctx: &ActionContext, path: &Path, s: &Secret) -> Result<(), ActionError> {
    let body = serde_json::to_vec_pretty(&backup_manifest(s))
        .map_err(|x| ActionError::at(Step::Backup, x.to_string()))?;
    ctx.backups
        .save_at(path, &body)
        .map_err(|e| ActionError::at(Step::Backup, e))
}
