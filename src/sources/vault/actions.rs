//! Action engines of the Vault / OpenBao source: a plan describes the exact change and
//! writes nothing; the execute step makes the API calls, reports each through the framework's
//! [`Reporter`], and verifies. The framework's backend around them is [`super::backend`].
//!
//! - **Issue a replacement** for a file-backed certificate from a role: same names, a fresh
//!   key. By default the key is generated here and a CSR is signed with `sign/ROLE`, so the
//!   private key never crosses the network and never sits in a response Vault could log or
//!   cache. `issue/ROLE` (Vault generates the key and returns it) is used when asked for, or
//!   when the old key's type cannot be generated here. The new PEMs go back to the caller for
//!   the safe file writer (`crate::fsx::replace_all`: atomic, backups, owner and mode kept).
//! - **Revoke** a certificate by serial (`POST <mount>/revoke`), then re-read
//!   `<mount>/cert/SERIAL` to confirm it shows revoked.

use super::api::{Call, VaultClient};
use super::auth::Secret;
use super::VaultError;
use crate::actions::keys::{self, KeyType};
use crate::actions::{Reporter, Step};
use crate::model::{CertFacts, San};

/// Which endpoint issues the replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssueMethod {
    /// `sign/ROLE` with a CSR for a key generated here.
    Sign,
    /// `issue/ROLE`: the server generates the key and returns it.
    Issue,
}

/// The exact change a replacement makes. Writes nothing.
#[derive(Debug, Clone)]
pub struct ReplacementPlan {
    pub mount: String,
    pub role: String,
    pub method: IssueMethod,
    /// Why this method.
    pub why: String,
    pub common_name: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<String>,
    pub uris: Vec<String>,
    /// The key type of the new certificate (that of the old one, for `Sign`).
    pub key: Option<KeyType>,
    /// Requested lifetime in seconds (the old certificate's); the role's max TTL caps it.
    pub ttl_secs: u64,
    pub old_serial: String,
    pub old_not_after: i64,
    /// The API calls, in order (`POST pki/sign/web`, `GET pki/cert/SERIAL`).
    pub calls: Vec<String>,
}

/// The new certificate, key and chain, PEM.
pub struct NewPems {
    pub cert_pem: String,
    /// Issuing CA and the rest of the chain, in order.
    pub chain_pem: String,
    pub key_pem: Secret,
    /// Colon-separated, as Vault lists it.
    pub serial: String,
    pub facts: CertFacts,
    pub method: IssueMethod,
}

impl std::fmt::Debug for NewPems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewPems")
            .field("serial", &self.serial)
            .field("method", &self.method)
            .field("key_pem", &self.key_pem)
            .finish_non_exhaustive()
    }
}

/// A serial as Vault spells it in paths: lowercase hex pairs joined by `:`.
pub fn vault_serial(s: &str) -> Result<String, VaultError> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(VaultError::Config(format!(
            "invalid serial {:?} (hex, with or without colons)",
            super::read::clean(s)
        )));
    }
    let hex = if hex.len() % 2 == 1 {
        format!("0{hex}")
    } else {
        hex
    };
    Ok(hex
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":"))
}

/// Plan a replacement of `old` (the file's certificate) from `role` on `mount`.
pub fn plan_replacement(
    old: &CertFacts,
    mount: &str,
    role: &str,
    wanted: Option<IssueMethod>,
) -> Result<ReplacementPlan, VaultError> {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    let mut uris = Vec::new();
    for s in &old.sans {
        match s {
            San::Dns(v) => dns.push(v.clone()),
            San::Ip(v) => ips.push(v.clone()),
            San::Uri(v) => uris.push(v.clone()),
            San::Email(_) | San::Other(_) => {}
        }
    }
    let common_name = old.common_name.clone().or_else(|| dns.first().cloned());
    if common_name.is_none() && ips.is_empty() && uris.is_empty() {
        return Err(VaultError::Config(
            "the certificate names nothing a role can issue (no CN, DNS, IP or URI name)".into(),
        ));
    }
    let key = KeyType::from_description(&old.key);
    let (method, why, key) = match (wanted, key) {
        (Some(IssueMethod::Issue), k) => (
            IssueMethod::Issue,
            "issue/ROLE was asked for: the server generates the key (of the role's type) and returns it".to_owned(),
            k.ok(),
        ),
        (_, Ok(k)) => (
            IssueMethod::Sign,
            format!(
                "sign/ROLE with a CSR: a fresh {} key is generated here and never leaves this machine",
                k.describe()
            ),
            Some(k),
        ),
        (Some(IssueMethod::Sign), Err(e)) => return Err(VaultError::Config(e)),
        (None, Err(e)) => (
            IssueMethod::Issue,
            format!("issue/ROLE: {e}, so the server generates the key (of the role's type)"),
            None,
        ),
    };
    let endpoint = match method {
        IssueMethod::Sign => "sign",
        IssueMethod::Issue => "issue",
    };
    let ttl_secs = (old.not_after - old.not_before).max(3600) as u64;
    Ok(ReplacementPlan {
        mount: mount.to_owned(),
        role: role.to_owned(),
        method,
        why,
        common_name,
        dns,
        ips,
        uris,
        key,
        ttl_secs,
        old_serial: vault_serial(&old.serial)?,
        old_not_after: old.not_after,
        calls: vec![
            format!("POST {mount}/{endpoint}/{role}"),
            format!("GET {mount}/cert/<new serial>"),
        ],
    })
}

fn csr_for(plan: &ReplacementPlan, key: &rcgen::KeyPair) -> Result<String, VaultError> {
    use rcgen::{CertificateParams, DistinguishedName, DnType, SanType};
    let bad = |e: rcgen::Error| VaultError::Config(format!("cannot make the CSR: {e}"));
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(cn) = &plan.common_name {
        dn.push(DnType::CommonName, cn.clone());
    }
    p.distinguished_name = dn;
    for d in &plan.dns {
        p.subject_alt_names
            .push(SanType::DnsName(d.clone().try_into().map_err(bad)?));
    }
    for ip in &plan.ips {
        let a = ip
            .parse()
            .map_err(|_| VaultError::Config(format!("bad IP name {ip:?}")))?;
        p.subject_alt_names.push(SanType::IpAddress(a));
    }
    for u in &plan.uris {
        p.subject_alt_names
            .push(SanType::URI(u.clone().try_into().map_err(bad)?));
    }
    p.serialize_request(key).map_err(bad)?.pem().map_err(bad)
}

/// Issue the replacement as planned, reporting each call as a step of `rep`.
pub async fn issue_replacement(
    client: &VaultClient,
    plan: &ReplacementPlan,
    rep: &Reporter,
) -> Result<NewPems, VaultError> {
    let cn = plan.common_name.clone().unwrap_or_default();
    let ttl = format!("{}s", plan.ttl_secs);
    let (cert_pem, chain, key_pem, serial) = match plan.method {
        IssueMethod::Sign => {
            let kind = plan
                .key
                .ok_or_else(|| VaultError::Config("no key type to generate".into()))?;
            rep.step(
                Step::Issue,
                format!("generating a {} key here", kind.describe()),
            )
            .await;
            let key = keys::generate_off_thread(kind)
                .await
                .map_err(VaultError::Config)?;
            let csr = csr_for(plan, &key)?;
            rep.step(
                Step::Issue,
                format!("POST {}/sign/{} (CSR, no key sent)", plan.mount, plan.role),
            )
            .await;
            let call = Call::new(
                "POST",
                format!("{}/sign/{}", plan.mount, plan.role),
                "update",
            );
            let mut opts = vaultrs::api::pki::requests::SignCertificateRequest::builder();
            opts.ttl(ttl);
            set_names(&mut opts, plan);
            let r = client
                .run(
                    &call,
                    vaultrs::pki::cert::ca::sign(
                        client.inner(),
                        &plan.mount,
                        &plan.role,
                        &csr,
                        &cn,
                        Some(&mut opts),
                    ),
                )
                .await?;
            let chain = r.ca_chain.unwrap_or_else(|| vec![r.issuing_ca.clone()]);
            let key_pem = Secret::new(key.serialize_pem());
            // The certificate must carry the key generated here.
            let facts = super::read::parse_cert_pem(&r.certificate)
                .map_err(|why| protocol(client, &call, why))?;
            if !keys::key_matches(&facts.der, key_pem.expose()) {
                return Err(protocol(
                    client,
                    &call,
                    "the signed certificate does not carry the key of the CSR".into(),
                ));
            }
            (r.certificate, chain, key_pem, r.serial_number)
        }
        IssueMethod::Issue => {
            rep.step(
                Step::Issue,
                format!(
                    "POST {}/issue/{} (the server makes the key)",
                    plan.mount, plan.role
                ),
            )
            .await;
            let call = Call::new(
                "POST",
                format!("{}/issue/{}", plan.mount, plan.role),
                "update",
            );
            let mut opts = vaultrs::api::pki::requests::GenerateCertificateRequest::builder();
            opts.ttl(ttl)
                .common_name(cn.clone())
                .private_key_format("pkcs8");
            if !plan.dns.is_empty() {
                opts.alt_names(plan.dns.join(","));
            }
            if !plan.ips.is_empty() {
                opts.ip_sans(plan.ips.join(","));
            }
            if !plan.uris.is_empty() {
                opts.uri_sans(plan.uris.join(","));
            }
            let r = client
                .run(
                    &call,
                    vaultrs::pki::cert::generate(
                        client.inner(),
                        &plan.mount,
                        &plan.role,
                        Some(&mut opts),
                    ),
                )
                .await?;
            let chain = r.ca_chain.unwrap_or_else(|| vec![r.issuing_ca.clone()]);
            let key = Secret::new(r.private_key);
            (r.certificate, chain, key, r.serial_number)
        }
    };
    let call = Call::new("GET", format!("{}/cert/{serial}", plan.mount), "read")
        .policy(format!("{}/cert/*", plan.mount));
    let facts =
        super::read::parse_cert_pem(&cert_pem).map_err(|why| protocol(client, &call, why))?;
    verify_names(plan, &facts).map_err(|why| protocol(client, &call, why))?;
    // The new serial reads back from the mount.
    rep.step(Step::Issue, format!("GET {}/cert/{serial}", plan.mount))
        .await;
    let back = client
        .run(
            &call,
            vaultrs::pki::cert::read(client.inner(), &plan.mount, &serial),
        )
        .await?;
    let back_facts = super::read::parse_cert_pem(&back.certificate)
        .map_err(|why| protocol(client, &call, why))?;
    if back_facts.sha256 != facts.sha256 {
        return Err(protocol(
            client,
            &call,
            "the mount returns another certificate for the new serial".into(),
        ));
    }
    let mut chain_pem = String::new();
    for c in chain {
        chain_pem.push_str(c.trim_end());
        chain_pem.push('\n');
    }
    Ok(NewPems {
        cert_pem: format!("{}\n", cert_pem.trim_end()),
        chain_pem,
        key_pem,
        serial,
        facts,
        method: plan.method,
    })
}

fn set_names(
    opts: &mut vaultrs::api::pki::requests::SignCertificateRequestBuilder,
    plan: &ReplacementPlan,
) {
    if !plan.dns.is_empty() {
        opts.alt_names(plan.dns.join(","));
    }
    if !plan.ips.is_empty() {
        opts.ip_sans(plan.ips.join(","));
    }
    if !plan.uris.is_empty() {
        opts.uri_sans(plan.uris.join(","));
    }
}

fn protocol(client: &VaultClient, call: &Call, why: String) -> VaultError {
    VaultError::Protocol {
        address: client.address.clone(),
        call: format!("{} {}", call.method, call.path),
        why,
    }
}

/// Every name of the plan is in the new certificate.
fn verify_names(plan: &ReplacementPlan, new: &CertFacts) -> Result<(), String> {
    let has = |v: &str| new.sans.iter().any(|s| s.value() == v);
    for n in plan.dns.iter().chain(&plan.ips).chain(&plan.uris) {
        if !has(n) {
            return Err(format!("the new certificate lacks the name {n}"));
        }
    }
    if plan.common_name.is_some() && new.common_name != plan.common_name {
        return Err(format!(
            "the new certificate's common name is {:?}, not {:?}",
            new.common_name, plan.common_name
        ));
    }
    Ok(())
}

/// The exact change a revocation makes.
#[derive(Debug, Clone)]
pub struct RevokePlan {
    pub mount: String,
    pub serial: String,
    /// The subject as the row shows it, for the confirmation.
    pub subject: String,
    pub calls: Vec<String>,
}

/// Plan revoking `serial` on `mount`.
pub fn plan_revoke(mount: &str, serial: &str, subject: &str) -> Result<RevokePlan, VaultError> {
    let serial = vault_serial(serial)?;
    Ok(RevokePlan {
        mount: mount.to_owned(),
        calls: vec![
            format!("POST {mount}/revoke serial_number={serial}"),
            format!("GET {mount}/cert/{serial}"),
        ],
        serial,
        subject: subject.to_owned(),
    })
}

/// What a revocation did, confirmed by re-reading the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub serial: String,
    /// Unix seconds, as the re-read shows it.
    pub revocation_time: i64,
}

/// Revoke as planned and confirm with a re-read.
pub async fn revoke(
    client: &VaultClient,
    plan: &RevokePlan,
    rep: &Reporter,
) -> Result<Revoked, VaultError> {
    rep.step(Step::Write, plan.calls[0].clone()).await;
    let call = Call::new("POST", format!("{}/revoke", plan.mount), "update");
    client
        .run(
            &call,
            vaultrs::pki::cert::revoke(client.inner(), &plan.mount, &plan.serial),
        )
        .await?;
    rep.step(Step::Verify, plan.calls[1].clone()).await;
    let call = Call::new(
        "GET",
        format!("{}/cert/{}", plan.mount, plan.serial),
        "read",
    )
    .policy(format!("{}/cert/*", plan.mount));
    let back = client
        .run(
            &call,
            vaultrs::pki::cert::read(client.inner(), &plan.mount, &plan.serial),
        )
        .await?;
    if back.revocation_time <= 0 {
        return Err(protocol(
            client,
            &call,
            "the revocation was accepted but the re-read does not show it revoked".into(),
        ));
    }
    Ok(Revoked {
        serial: plan.serial.clone(),
        revocation_time: back.revocation_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_spelled_the_vault_way() {
        assert_eq!(vault_serial("479C0EF9").unwrap(), "47:9c:0e:f9");
        assert_eq!(vault_serial("47:9c:0e:f9").unwrap(), "47:9c:0e:f9");
        assert_eq!(vault_serial("abc").unwrap(), "0a:bc");
        assert!(vault_serial("zz").is_err());
        assert!(vault_serial("").is_err());
    }
}
