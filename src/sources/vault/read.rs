//! Reading a Vault / OpenBao server: discover the PKI mounts, then for each mount its issuers
//! (with their chains), its roles (facts of the mount), and every issued certificate, fetched
//! with bounded concurrency page by page, each sent as a row as soon as it is read.
//!
//! Memory stays flat in the number of certificates: one page of serials and the reads in
//! flight are held, plus a few counters per issuer for the "issuer expires before the
//! certificates it signed" flag, which is why issuer rows come after the mount's certificates.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt as _;
use rustls_pki_types::pem::PemObject as _;
use serde_json::json;

use super::api::{Call, VaultClient};
use super::{VaultError, VaultSettings, KIND};
use crate::clock::rfc3339;
use crate::model::{CertFacts, Extra, Record, Revocation};
use crate::sources::{Problem, Sink};

/// Strip control characters from text that came from outside (server messages, names).
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A role of a mount, as facts (not a certificate row).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleFacts {
    pub name: String,
    /// Seconds; 0 means the mount's maximum.
    pub max_ttl: u64,
    pub ttl: u64,
    pub issuer_ref: String,
    pub key_type: String,
    pub key_bits: u64,
    pub allowed_domains: Vec<String>,
}

/// What one mount held, for the caller (counts only: rows went to the channel).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MountFacts {
    pub mount: String,
    pub roles: Vec<RoleFacts>,
    /// Why the roles could not be read, if they could not.
    pub roles_error: Option<String>,
    pub certificates: usize,
    pub revoked: usize,
    pub issuers: usize,
    /// Issuers that expire before a (non-revoked) certificate they signed.
    pub issuers_outlived: usize,
    /// `certs/detailed` (OpenBao) listed the serials; false: plain `LIST certs`.
    pub detailed_listing: bool,
    /// Rows that are errors (mount or certificate could not be read).
    pub errors: usize,
    /// The first of those errors, as the source's problem for a partial round.
    #[serde(skip)]
    pub problem: Option<Problem>,
}

impl MountFacts {
    fn failed(&mut self, e: &VaultError, what: String) -> String {
        self.errors += 1;
        let msg = format!("{what}: {e}");
        self.problem
            .get_or_insert_with(|| Problem::new(e.kind(), msg.clone()));
        msg
    }
}

/// What a round read.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VaultSummary {
    pub address: String,
    pub mounts: Vec<MountFacts>,
}

/// One issuer of a mount and what the mount's certificates say about it.
struct Issuer {
    id: String,
    name: String,
    is_default: bool,
    cert: Arc<CertFacts>,
    /// The rest of its chain (parents), in order.
    chain: Vec<Arc<CertFacts>>,
    leaves: usize,
    outliving: usize,
    latest_leaf: i64,
}

/// Everything shared by the reads of one mount.
struct MountCtx<'a> {
    client: &'a VaultClient,
    mount: &'a str,
    tx: &'a dyn Emit,
    now: i64,
}

/// Where rows go: the supervisor's [`Sink`], or a plain channel (benchmarks, tests). False:
/// the receiver is gone.
pub trait Emit: Sync {
    fn emit(&self, r: Record) -> futures::future::BoxFuture<'_, bool>;
}

impl Emit for Sink {
    fn emit(&self, r: Record) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(self.observed(r))
    }
}

impl Emit for tokio::sync::mpsc::Sender<Record> {
    fn emit(&self, r: Record) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(async move { self.send(r).await.is_ok() })
    }
}

impl MountCtx<'_> {
    fn location(&self, what: &str) -> String {
        match &self.client.namespace {
            Some(ns) => format!("{}/v1/{ns}/{}/{what}", self.client.address, self.mount),
            None => format!("{}/v1/{}/{what}", self.client.address, self.mount),
        }
    }
    async fn send(&self, r: Record) -> bool {
        self.tx.emit(r).await
    }
    fn base_json(&self, kind: &str) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("address".into(), json!(self.client.address));
        m.insert("namespace".into(), json!(self.client.namespace));
        m.insert("mount".into(), json!(self.mount));
        m.insert("kind".into(), json!(kind));
        m
    }
}

/// Parse the first PEM certificate of `pem`.
pub fn parse_cert_pem(pem: &str) -> Result<CertFacts, String> {
    let der = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no certificate in the answer".to_owned())?
        .map_err(|e| format!("bad PEM: {e}"))?;
    CertFacts::from_der(&der).map_err(|e| e.to_string())
}

/// Read every PKI mount of one server, sending rows to `tx` as they are read. A whole-source
/// failure (no token, unreachable, token refused, `sys/mounts` forbidden with no mounts
/// named) is the error; a mount or a certificate that cannot be read is an error row, counted
/// in the mount's [`MountFacts`].
pub async fn run_into(settings: &VaultSettings, tx: &dyn Emit) -> Result<VaultSummary, VaultError> {
    let (client, _token) = VaultClient::connect(settings).await?;
    let mounts = if settings.mounts.is_empty() {
        discover_mounts(&client).await?
    } else {
        settings.mounts.clone()
    };
    let mut summary = VaultSummary {
        address: client.address.clone(),
        mounts: Vec::new(),
    };
    for m in mounts {
        let ctx = MountCtx {
            client: &client,
            mount: &m,
            tx,
            now: crate::clock::now_unix(),
        };
        let Some(facts) = read_mount(&ctx, settings).await else {
            break; // the receiver is gone
        };
        summary.mounts.push(facts);
    }
    Ok(summary)
}

/// Read some certificates again (after an action, or `r` on their rows): `certs` are
/// (mount, serial) pairs. Each mount's issuers are read for the chain. Returns the mounts'
/// facts (counts of what was read and failed).
pub async fn reread_into(
    settings: &VaultSettings,
    certs: &[(String, String)],
    tx: &dyn Emit,
) -> Result<Vec<MountFacts>, VaultError> {
    let (client, _token) = VaultClient::connect(settings).await?;
    let mut mounts: Vec<&str> = certs.iter().map(|(m, _)| m.as_str()).collect();
    mounts.sort_unstable();
    mounts.dedup();
    let mut out = Vec::new();
    for m in mounts {
        let ctx = MountCtx {
            client: &client,
            mount: m,
            tx,
            now: crate::clock::now_unix(),
        };
        let mut facts = MountFacts {
            mount: m.to_owned(),
            ..MountFacts::default()
        };
        let mut issuers = match read_issuers(&ctx).await {
            Ok(v) => v,
            Err(e) => {
                facts.failed(&e, format!("cannot read the issuers of {m}"));
                Vec::new()
            }
        };
        for (_, serial) in certs.iter().filter(|(cm, _)| cm == m) {
            let rec = match fetch_cert(&ctx, serial).await {
                Ok((c, revoked_at)) => {
                    facts.certificates += 1;
                    leaf_record(&ctx, serial, c, revoked_at, &mut issuers)
                }
                Err(e) => {
                    let msg =
                        facts.failed(&e, format!("cannot read certificate {}", clean(serial)));
                    Record::new(
                        KIND,
                        ctx.location(&format!("cert/{}", clean(serial))),
                        ctx.now,
                    )
                    .with_error(msg)
                }
            };
            if !ctx.send(rec).await {
                return Ok(out);
            }
        }
        out.push(facts);
    }
    Ok(out)
}

/// Mounts of type `pki` from `sys/mounts`.
pub async fn discover_mounts(client: &VaultClient) -> Result<Vec<String>, VaultError> {
    let call = Call::new("GET", "sys/mounts", "read");
    match client
        .run(&call, vaultrs::sys::mount::list(client.inner()))
        .await
    {
        Ok(map) => {
            let mut v: Vec<String> = map
                .into_iter()
                .filter(|(_, m)| m.mount_type == "pki")
                .map(|(k, _)| k.trim_end_matches('/').to_owned())
                .collect();
            v.sort();
            Ok(v)
        }
        Err(VaultError::Forbidden {
            address,
            capability,
            path,
            ..
        }) => Err(VaultError::Forbidden {
            address,
            capability,
            path,
            hint: " to discover the PKI mounts; name them instead (mounts = [\"pki\"] in [[vault]], or --vault-mount)".into(),
        }),
        Err(e) => Err(e),
    }
}

/// Read one mount; None when the receiver went away.
async fn read_mount(ctx: &MountCtx<'_>, s: &VaultSettings) -> Option<MountFacts> {
    let mut facts = MountFacts {
        mount: ctx.mount.to_owned(),
        ..MountFacts::default()
    };
    let mut issuers = match read_issuers(ctx).await {
        Ok(v) => v,
        Err(e) => {
            let msg = facts.failed(&e, format!("cannot read the issuers of {}", ctx.mount));
            let r = Record::new(KIND, ctx.location("issuers"), ctx.now).with_error(msg);
            if !ctx.send(r).await {
                return None;
            }
            Vec::new()
        }
    };
    facts.issuers = issuers.len();
    match read_roles(ctx).await {
        Ok(r) => facts.roles = r,
        Err(e) => facts.roles_error = Some(e.to_string()),
    }
    if !read_certs(ctx, s, &mut issuers, &mut facts).await {
        return None;
    }
    for iss in &issuers {
        if !ctx.send(issuer_record(ctx, iss, &facts)).await {
            return None;
        }
        if iss.outliving > 0 {
            facts.issuers_outlived += 1;
        }
    }
    Some(facts)
}

async fn read_issuers(ctx: &MountCtx<'_>) -> Result<Vec<Issuer>, VaultError> {
    let c = ctx.client;
    let call = Call::new("LIST", format!("{}/issuers", ctx.mount), "list");
    let listed = match c
        .run(&call, vaultrs::pki::issuer::list(c.inner(), ctx.mount))
        .await
    {
        Ok(l) => l,
        // No issuer yet (a mount without a CA), or a server before multi-issuer support.
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for id in listed.keys {
        let info = listed.key_info.get(&id);
        let call = Call::new("GET", format!("{}/issuer/{id}/json", ctx.mount), "read")
            .policy(format!("{}/issuer/*", ctx.mount));
        let r = c
            .run(
                &call,
                vaultrs::pki::issuer::read(c.inner(), ctx.mount, Some(&id)),
            )
            .await?;
        let cert =
            Arc::new(
                parse_cert_pem(&r.certificate).map_err(|why| VaultError::Protocol {
                    address: c.address.clone(),
                    call: format!("GET {}/issuer/{id}/json", ctx.mount),
                    why,
                })?,
            );
        let mut chain = Vec::new();
        for p in &r.ca_chain {
            if let Ok(f) = parse_cert_pem(p) {
                if f.sha256 != cert.sha256 {
                    chain.push(Arc::new(f));
                }
            }
        }
        out.push(Issuer {
            id: clean(&id),
            name: clean(&r.issuer_name),
            is_default: info.is_some_and(|i| i.is_default),
            cert,
            chain,
            leaves: 0,
            outliving: 0,
            latest_leaf: 0,
        });
    }
    Ok(out)
}

async fn read_roles(ctx: &MountCtx<'_>) -> Result<Vec<RoleFacts>, VaultError> {
    let c = ctx.client;
    let call = Call::new("LIST", format!("{}/roles", ctx.mount), "list");
    let names = match c
        .run(&call, vaultrs::pki::role::list(c.inner(), ctx.mount))
        .await
    {
        Ok(l) => l.keys,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let call = Call::new("GET", format!("{}/roles/{name}", ctx.mount), "read")
            .policy(format!("{}/roles/*", ctx.mount));
        let r: RoleData = c.json(&call, &[]).await?;
        out.push(RoleFacts {
            name: clean(&name),
            max_ttl: r.max_ttl,
            ttl: r.ttl,
            issuer_ref: clean(&r.issuer_ref),
            key_type: clean(&r.key_type),
            key_bits: r.key_bits,
            allowed_domains: r.allowed_domains.iter().map(|d| clean(d)).collect(),
        });
    }
    Ok(out)
}

/// The role fields the source shows (read raw: vaultrs' role type requires every field of
/// one server version, and the two servers differ).
#[derive(serde::Deserialize)]
struct RoleData {
    #[serde(default)]
    max_ttl: u64,
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    issuer_ref: String,
    #[serde(default)]
    key_type: String,
    #[serde(default)]
    key_bits: u64,
    #[serde(default)]
    allowed_domains: Vec<String>,
}

/// One page of a LIST answer: serials, and OpenBao's detailed facts when listed that way.
#[derive(serde::Deserialize, Default)]
struct ListPage {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    key_info: HashMap<String, DetailedInfo>,
}

/// What `LIST certs/detailed` says of one certificate (OpenBao).
#[derive(serde::Deserialize, Clone, Default)]
struct DetailedInfo {
    #[serde(default)]
    common_name: String,
    #[serde(default)]
    not_after: String,
}

/// Page through the serials, fetching each page's certificates concurrently. False when
/// the receiver went away.
async fn read_certs(
    ctx: &MountCtx<'_>,
    s: &VaultSettings,
    issuers: &mut [Issuer],
    facts: &mut MountFacts,
) -> bool {
    let c = ctx.client;
    let mut detailed = true;
    let mut after: Option<String> = None;
    loop {
        let mut query = vec![("limit", s.page_size.to_string())];
        if let Some(a) = &after {
            // OpenBao compares `after` with its storage keys, which spell serials with `-`:
            // a colon-form `after` would skip the serials that share its first byte.
            query.push(("after", a.replace(':', "-")));
        }
        let path = if detailed {
            format!("{}/certs/detailed", ctx.mount)
        } else {
            format!("{}/certs", ctx.mount)
        };
        let call = Call::new("LIST", path, "list");
        let page: ListPage = match c.json(&call, &query).await {
            Ok(p) => p,
            // Vault has no certs/detailed: list the plain way (405 or 404 there).
            Err(VaultError::Api {
                status: 404 | 405, ..
            }) if detailed && after.is_none() => {
                detailed = false;
                continue;
            }
            // The detailed listing may be forbidden while the plain one is granted.
            Err(VaultError::Forbidden { .. }) if detailed && after.is_none() => {
                detailed = false;
                continue;
            }
            // An empty LIST is a 404 with no errors.
            Err(e) if e.is_not_found() => ListPage::default(),
            Err(e) => {
                let msg =
                    facts.failed(&e, format!("cannot list the certificates of {}", ctx.mount));
                let r = Record::new(KIND, ctx.location("certs"), ctx.now).with_error(msg);
                return ctx.send(r).await;
            }
        };
        facts.detailed_listing = detailed;
        let n = page.keys.len();
        // A server that ignores `after` (Vault) answers the whole list again: a page whose
        // first serial does not follow the previous page's last is the end.
        if let (Some(a), Some(first)) = (&after, page.keys.first()) {
            if first.replace(':', "-") <= a.replace(':', "-") {
                break;
            }
        }
        let last = page.keys.last().cloned();
        let info = page.key_info;
        let results = futures::stream::iter(page.keys.into_iter().map(|serial| {
            let meta = info.get(&serial).cloned();
            async move {
                let r = fetch_cert(ctx, &serial).await;
                (serial, meta, r)
            }
        }))
        .buffer_unordered(s.concurrency.max(1));
        futures::pin_mut!(results);
        let mut forbidden: Option<VaultError> = None;
        while let Some((serial, meta, r)) = results.next().await {
            let rec = match r {
                Ok((facts_c, revoked_at)) => {
                    facts.certificates += 1;
                    if revoked_at.is_some() {
                        facts.revoked += 1;
                    }
                    leaf_record(ctx, &serial, facts_c, revoked_at, issuers)
                }
                Err(e @ VaultError::Forbidden { .. }) => {
                    forbidden.get_or_insert(e);
                    continue;
                }
                Err(e) => {
                    let mut msg =
                        facts.failed(&e, format!("cannot read certificate {}", clean(&serial)));
                    if let Some(m) = meta.filter(|m| !m.not_after.is_empty()) {
                        msg.push_str(&format!(
                            " (listed as {}, expires {})",
                            clean(&m.common_name),
                            clean(&m.not_after)
                        ));
                    }
                    Record::new(
                        KIND,
                        ctx.location(&format!("cert/{}", clean(&serial))),
                        ctx.now,
                    )
                    .with_error(msg)
                }
            };
            if !ctx.send(rec).await {
                return false;
            }
        }
        if let Some(e) = forbidden {
            // One row for the mount, not one per serial.
            let msg = facts.failed(&e, format!("cannot read the certificates of {}", ctx.mount));
            let r = Record::new(KIND, ctx.location("certs"), ctx.now).with_error(msg);
            return ctx.send(r).await;
        }
        // A full page may have more after it; a longer one means the server ignored `limit`
        // (Vault) and sent everything at once.
        match last {
            Some(l) if n == s.page_size => after = Some(l),
            _ => break,
        }
    }
    true
}

/// Read one certificate: its facts and, if revoked, when (unix seconds).
async fn fetch_cert(
    ctx: &MountCtx<'_>,
    serial: &str,
) -> Result<(CertFacts, Option<i64>), VaultError> {
    let c = ctx.client;
    let call = Call::new("GET", format!("{}/cert/{serial}", ctx.mount), "read")
        .policy(format!("{}/cert/*", ctx.mount));
    let r = c
        .run(
            &call,
            vaultrs::pki::cert::read(c.inner(), ctx.mount, serial),
        )
        .await?;
    let f = parse_cert_pem(&r.certificate).map_err(|why| VaultError::Protocol {
        address: c.address.clone(),
        call: format!("GET {}/cert/{}", ctx.mount, clean(serial)),
        why,
    })?;
    Ok((f, (r.revocation_time > 0).then_some(r.revocation_time)))
}

/// The issuer of a certificate among the mount's issuers: by key identifier, else by name.
fn find_issuer(issuers: &[Issuer], leaf: &CertFacts) -> Option<usize> {
    if let Some(aki) = &leaf.authority_key_id {
        if let Some(i) = issuers
            .iter()
            .position(|i| i.cert.subject_key_id.as_ref() == Some(aki))
        {
            return Some(i);
        }
    }
    issuers.iter().position(|i| i.cert.subject == leaf.issuer)
}

fn leaf_record(
    ctx: &MountCtx<'_>,
    serial: &str,
    cert: CertFacts,
    revoked_at: Option<i64>,
    issuers: &mut [Issuer],
) -> Record {
    let serial = clean(serial);
    let mut rec = Record::new(KIND, ctx.location(&format!("cert/{serial}")), ctx.now);
    let mut j = ctx.base_json("certificate");
    j.insert("serial".into(), json!(serial));
    j.insert("revoked".into(), json!(revoked_at.is_some()));
    j.insert("revocation_time".into(), json!(revoked_at.map(rfc3339)));
    let mut details = vec![
        (
            "Vault".to_owned(),
            format!("{} {}", ctx.client.address, ctx.mount),
        ),
        ("Vault serial".to_owned(), serial.clone()),
    ];
    let issuer = find_issuer(issuers, &cert);
    if let Some(i) = issuer {
        let iss = &mut issuers[i];
        rec.chain.push(iss.cert.clone());
        rec.chain.extend(iss.chain.iter().cloned());
        j.insert("issuer_id".into(), json!(iss.id));
        if revoked_at.is_none() {
            iss.leaves += 1;
            iss.latest_leaf = iss.latest_leaf.max(cert.not_after);
            if cert.not_after > iss.cert.not_after {
                iss.outliving += 1;
            }
        }
    } else {
        j.insert("issuer_id".into(), serde_json::Value::Null);
    }
    // The mount's own record is authoritative for the certificates it issued.
    let by = format!("Vault {}", ctx.mount);
    rec.revocation = Some(match revoked_at {
        Some(t) => {
            details.push(("Revoked".to_owned(), rfc3339(t)));
            Revocation::revoked(t, None, by)
        }
        None => Revocation::good(by),
    });
    rec.extra = Some(Arc::new(Extra {
        key: "vault",
        json: serde_json::Value::Object(j),
        details,
        note: None,
    }));
    rec.with_cert(Arc::new(cert))
}

fn issuer_record(ctx: &MountCtx<'_>, iss: &Issuer, facts: &MountFacts) -> Record {
    let mut rec = Record::new(KIND, ctx.location(&format!("issuer/{}", iss.id)), ctx.now);
    rec.chain = iss.chain.clone();
    let mut j = ctx.base_json("issuer");
    j.insert("issuer_id".into(), json!(iss.id));
    j.insert("issuer_name".into(), json!(iss.name));
    j.insert("is_default".into(), json!(iss.is_default));
    j.insert("leaves_signed".into(), json!(iss.leaves));
    j.insert("leaves_outliving_issuer".into(), json!(iss.outliving));
    j.insert("expires_before_leaves".into(), json!(iss.outliving > 0));
    j.insert(
        "latest_leaf_not_after".into(),
        json!((iss.leaves > 0).then(|| rfc3339(iss.latest_leaf))),
    );
    j.insert("roles".into(), json!(facts.roles));
    if let Some(e) = &facts.roles_error {
        j.insert("roles_error".into(), json!(e));
    }
    let mut details = vec![
        (
            "Vault".to_owned(),
            format!("{} {}", ctx.client.address, ctx.mount),
        ),
        (
            "Issuer".to_owned(),
            if iss.name.is_empty() {
                iss.id.clone()
            } else {
                format!("{} ({})", iss.name, iss.id)
            },
        ),
        (
            "Signed".to_owned(),
            format!("{} live certificates", iss.leaves),
        ),
    ];
    for r in &facts.roles {
        details.push((
            format!("Role {}", r.name),
            format!(
                "max TTL {}",
                if r.max_ttl == 0 {
                    "the mount's".to_owned()
                } else {
                    humantime::format_duration(std::time::Duration::from_secs(r.max_ttl))
                        .to_string()
                }
            ),
        ));
    }
    let note = (iss.outliving > 0).then(|| {
        format!(
            "issuer expires {} before {} of the {} certificates it signed (latest {})",
            crate::clock::date(iss.cert.not_after),
            iss.outliving,
            iss.leaves,
            crate::clock::date(iss.latest_leaf)
        )
    });
    rec.extra = Some(Arc::new(Extra {
        key: "vault",
        json: serde_json::Value::Object(j),
        details,
        note,
    }));
    rec.with_cert(iss.cert.clone())
}
