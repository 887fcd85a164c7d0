//! Reading one context: paginated lists, records per certificate-bearing key, cert-manager
//! links, forbidden namespaces as rows, and the cluster's own error row.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::api::{Api, ListParams, ObjectList};
use kube::core::DynamicObject;
use serde::de::DeserializeOwned;

use super::certmanager;
use super::error::{call, K8sError};
use super::kubeconfig::KubeAccess;
use super::K8sSettings;
use crate::model::{CertFacts, CertManagerInfo, K8sInfo, Record, SourceKind};
use crate::sources::pem::{self, PemItem};
use crate::sources::Sink;

/// The Secret type whose `tls.crt` is a served chain.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Which namespaces a context is read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    One(String),
    All,
}

/// Location string of a Kubernetes key: `ctx/ns/kind/name#key` (`ctx/kind/name#key` when
/// cluster-scoped).
pub fn location(ctx: &str, ns: &str, kind: &str, name: &str, key: Option<&str>) -> String {
    let kind = kind.to_ascii_lowercase();
    let mut s = if ns.is_empty() {
        format!("{ctx}/{kind}/{name}")
    } else {
        format!("{ctx}/{ns}/{kind}/{name}")
    };
    if let Some(k) = key {
        s.push('#');
        s.push_str(k);
    }
    s
}

/// A record for a Kubernetes location.
pub fn record(info: K8sInfo, suffix: Option<usize>, now: i64) -> Record {
    let mut loc = location(
        &info.context,
        &info.namespace,
        &info.kind,
        &info.name,
        info.key.as_deref(),
    );
    if let Some(n) = suffix {
        loc.push_str(&format!("#{n}"));
    }
    let mut r = Record::new(SourceKind::K8S, loc, now);
    r.k8s = Some(info);
    r
}

/// What a blob holds: None when it is not certificate material at all.
pub fn parse_certs(data: &[u8]) -> Option<Result<Vec<CertFacts>, String>> {
    if pem::looks_like_pem(data) {
        let mut certs = Vec::new();
        for item in pem::scan(data) {
            match item {
                PemItem::Certificate(der) => match CertFacts::from_der(&der) {
                    Ok(c) => certs.push(c),
                    Err(e) => return Some(Err(e.to_string())),
                },
                PemItem::Broken(msg) => return Some(Err(msg)),
                PemItem::PrivateKey | PemItem::Other(_) => {}
            }
        }
        if certs.is_empty() {
            None
        } else {
            Some(Ok(certs))
        }
    } else if data.first() == Some(&0x30) {
        CertFacts::from_der(data).ok().map(|c| Ok(vec![c]))
    } else {
        None
    }
}

/// Records for one key: a chain (leaf plus the rest) or one record per certificate of a bundle.
fn key_records(
    base: &K8sInfo,
    key: &str,
    data: &[u8],
    chain: bool,
    required: bool,
    now: i64,
) -> Vec<Record> {
    let mut info = base.clone();
    info.key = Some(key.to_owned());
    match parse_certs(data) {
        None if required => {
            let why = if data.is_empty() {
                format!("{key} is empty")
            } else {
                format!("{key} holds no certificate")
            };
            vec![record(info, None, now).with_error(why)]
        }
        None => Vec::new(),
        Some(Err(e)) => vec![record(info, None, now).with_error(format!("{key}: {e}"))],
        Some(Ok(certs)) if chain => {
            let mut it = certs.into_iter().map(Arc::new);
            let Some(leaf) = it.next() else {
                return Vec::new();
            };
            if let Some(cm) = &info.managed_by {
                info.drift = certmanager::drift(cm, &leaf);
            }
            let mut r = record(info, None, now).with_cert(leaf);
            r.chain = it.collect();
            vec![r]
        }
        Some(Ok(certs)) => {
            let many = certs.len() > 1;
            certs
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    record(info.clone(), many.then_some(i + 1), now).with_cert(Arc::new(c))
                })
                .collect()
        }
    }
}

/// Keys that hold private keys by convention; never parsed, never shown.
fn is_key_name(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k == "tls.key" || k.ends_with(".key") || k.ends_with("-key") || k == "key"
}

/// Records of one Secret. `certs` maps (namespace, secretName) to the Certificate issuing it;
/// `passwords`: the keystore passwords those Certificates give.
pub fn secret_records(
    ctx: &str,
    s: &Secret,
    certs: &HashMap<(String, String), CertManagerInfo>,
    passwords: &super::keystores::Passwords,
    now: i64,
) -> Vec<Record> {
    let ns = s.metadata.namespace.clone().unwrap_or_default();
    let name = s.metadata.name.clone().unwrap_or_default();
    let ty = s.type_.clone().unwrap_or_else(|| "Opaque".to_owned());
    let base = K8sInfo {
        context: ctx.to_owned(),
        namespace: ns.clone(),
        kind: "Secret".to_owned(),
        name: name.clone(),
        secret_type: Some(ty.clone()),
        ..K8sInfo::default()
    };
    let empty = Default::default();
    let data = s.data.as_ref().unwrap_or(&empty);
    let mut out = Vec::new();
    let is_tls = ty == TLS_SECRET_TYPE;
    if is_tls {
        let mut leaf_base = base.clone();
        leaf_base.managed_by = certs.get(&(ns.clone(), name.clone())).cloned();
        let crt = data
            .get("tls.crt")
            .map(|b| b.0.as_slice())
            .unwrap_or_default();
        out.extend(key_records(&leaf_base, "tls.crt", crt, true, true, now));
    }
    let sibling = |n: &str| data.get(n).map(|b| b.0.clone());
    for (k, v) in data {
        if (is_tls && k == "tls.crt") || is_key_name(k) {
            continue;
        }
        if let Some(recs) = super::keystores::records(&base, k, &v.0, &sibling, passwords, now) {
            out.extend(recs);
            continue;
        }
        out.extend(key_records(&base, k, &v.0, false, false, now));
    }
    super::keys::secret_findings(&base, data, now, &mut out);
    out
}

/// Records of one ConfigMap (text and binary keys).
pub fn configmap_records(ctx: &str, c: &ConfigMap, now: i64) -> Vec<Record> {
    let base = K8sInfo {
        context: ctx.to_owned(),
        namespace: c.metadata.namespace.clone().unwrap_or_default(),
        kind: "ConfigMap".to_owned(),
        name: c.metadata.name.clone().unwrap_or_default(),
        ..K8sInfo::default()
    };
    let mut out = Vec::new();
    let none = super::keystores::Passwords::default();
    let sibling = |n: &str| {
        c.data
            .as_ref()
            .and_then(|d| d.get(n))
            .map(|v| v.clone().into_bytes())
            .or_else(|| {
                c.binary_data
                    .as_ref()
                    .and_then(|d| d.get(n))
                    .map(|b| b.0.clone())
            })
    };
    for (k, v) in c.data.iter().flatten() {
        if !is_key_name(k) {
            match super::keystores::records(&base, k, v.as_bytes(), &sibling, &none, now) {
                Some(recs) => out.extend(recs),
                None => out.extend(key_records(&base, k, v.as_bytes(), false, false, now)),
            }
        }
    }
    for (k, v) in c.binary_data.iter().flatten() {
        if !is_key_name(k) {
            match super::keystores::records(&base, k, &v.0, &sibling, &none, now) {
                Some(recs) => out.extend(recs),
                None => out.extend(key_records(&base, k, &v.0, false, false, now)),
            }
        }
    }
    super::keys::configmap_findings(&base, c, now, &mut out);
    out
}

/// Reads one context.
pub struct Reader<'a> {
    pub ctx: &'a str,
    pub client: kube::Client,
    pub settings: &'a K8sSettings,
    pub sink: &'a Sink,
    pub now: i64,
    namespaces: Option<Vec<String>>,
    /// The resourceVersion of the last list that covered its whole scope in one call.
    last_rv: Option<String>,
}

impl Reader<'_> {
    async fn send(&self, recs: Vec<Record>) -> bool {
        for r in recs {
            if !self.sink.observed(r).await {
                return false;
            }
        }
        true
    }

    /// List every page of `api`, handing each item to `f` and sending what it returns.
    /// A continue token that expired (410) restarts the list once, skipping items already seen.
    async fn list_paged<K>(
        &mut self,
        api: &Api<K>,
        resource: &str,
        ns: &str,
        fields: Option<&str>,
        f: &mut (dyn FnMut(K) -> Vec<Record> + Send),
    ) -> Result<usize, K8sError>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        self.last_rv = None;
        let mut token: Option<String> = None;
        let mut restarted = false;
        let mut seen: HashSet<String> = HashSet::new();
        let mut n = 0;
        loop {
            let mut lp = ListParams::default().limit(self.settings.page_size.max(1));
            if let Some(sel) = fields {
                lp = lp.fields(sel);
            }
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page: Result<ObjectList<K>, K8sError> = call(
                api.list(&lp),
                self.settings.timeout,
                self.ctx,
                "list",
                resource,
                ns,
            )
            .await;
            match page {
                Ok(list) => {
                    if token.is_none() {
                        // The first page's version is the list's snapshot: a watch starts there.
                        self.last_rv = list.metadata.resource_version.clone();
                    }
                    let next = list.metadata.continue_.clone().filter(|c| !c.is_empty());
                    let mut recs = Vec::new();
                    for item in list.items {
                        let key = format!(
                            "{}/{}",
                            item.meta().namespace.as_deref().unwrap_or_default(),
                            item.meta().name.as_deref().unwrap_or_default()
                        );
                        if !seen.insert(key) && restarted {
                            continue;
                        }
                        n += 1;
                        recs.extend(f(item));
                    }
                    if !self.send(recs).await {
                        return Ok(n);
                    }
                    match next {
                        Some(t) => token = Some(t),
                        None => return Ok(n),
                    }
                }
                Err(K8sError::Gone(msg)) if token.is_some() && !restarted => {
                    tracing::info!(
                        "{}: {resource} list expired, listing again: {msg}",
                        self.ctx
                    );
                    restarted = true;
                    token = None;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The namespaces of the cluster (for reading namespace by namespace).
    async fn namespaces(&mut self) -> Result<Vec<String>, K8sError> {
        if let Some(n) = &self.namespaces {
            return Ok(n.clone());
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut names = Vec::new();
        let mut f = |n: Namespace| {
            names.push(n.metadata.name.unwrap_or_default());
            Vec::new()
        };
        self.list_paged(&api, "namespaces", "", None, &mut f)
            .await?;
        self.namespaces = Some(names.clone());
        Ok(names)
    }

    /// List a resource in the scope. Across all namespaces, a cluster-wide 403 falls back to
    /// namespace by namespace, so one forbidden namespace does not hide the others. Returns the
    /// errors, each with its namespace ("" for the cluster scope).
    async fn list_scope<K>(
        &mut self,
        scope: &Scope,
        resource: &str,
        make: &(dyn Fn(Option<&str>) -> Api<K> + Send + Sync),
        fields: Option<&str>,
        f: &mut (dyn FnMut(K) -> Vec<Record> + Send),
    ) -> Vec<(String, K8sError)>
    where
        K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
    {
        match scope {
            Scope::One(ns) => match self
                .list_paged(&make(Some(ns)), resource, ns, fields, f)
                .await
            {
                Ok(_) => Vec::new(),
                Err(e) => vec![(ns.clone(), e)],
            },
            Scope::All => match self.list_paged(&make(None), resource, "", fields, f).await {
                Ok(_) => Vec::new(),
                Err(e) if e.is_forbidden() => {
                    let nss = match self.namespaces().await {
                        Ok(n) => n,
                        Err(ne) => {
                            // Namespace-scoped users cannot list namespaces either: report the
                            // resource's own 403 (the hint is to name namespaces with -n).
                            tracing::info!("{}: namespaces not listable: {ne}", self.ctx);
                            return vec![(String::new(), e)];
                        }
                    };
                    let mut errs = Vec::new();
                    for ns in nss {
                        if let Err(e) = self
                            .list_paged(&make(Some(&ns)), resource, &ns, fields, f)
                            .await
                        {
                            errs.push((ns, e));
                        }
                    }
                    // Namespace by namespace: no single version to watch from.
                    self.last_rv = None;
                    errs
                }
                Err(e) => vec![(String::new(), e)],
            },
        }
    }

    fn error_row(&self, ns: &str, what: &str, e: &K8sError) -> Record {
        let info = K8sInfo {
            context: self.ctx.to_owned(),
            namespace: ns.to_owned(),
            kind: if ns.is_empty() {
                "Cluster"
            } else {
                "Namespace"
            }
            .to_owned(),
            name: if ns.is_empty() { self.ctx } else { ns }.to_owned(),
            forbidden: e.is_forbidden(),
            ..K8sInfo::default()
        };
        let loc = if ns.is_empty() {
            format!("{}/{what}", self.ctx)
        } else {
            format!("{}/{ns}/{what}", self.ctx)
        };
        let mut r = Record::new(SourceKind::K8S, loc, self.now).with_error(e.to_string());
        r.k8s = Some(info);
        r
    }
}

/// The row of a cert-manager Certificate whose Secret does not exist (yet).
pub fn certificate_row(ctx: &str, ns: &str, cm: &CertManagerInfo, now: i64) -> Record {
    let info = K8sInfo {
        context: ctx.to_owned(),
        namespace: ns.to_owned(),
        kind: "Certificate".to_owned(),
        name: cm.name.clone(),
        managed_by: Some(cm.clone()),
        ..K8sInfo::default()
    };
    let why = format!(
        "Secret {} not found (Certificate {})",
        cm.secret_name,
        certmanager::state_line(cm)
    );
    record(info, None, now).with_error(why)
}

/// The single error row of a context that could not be read at all.
pub fn cluster_error_row(ctx: &str, e: &K8sError, now: i64) -> Record {
    let mut r = Record::new(SourceKind::K8S, ctx.to_owned(), now).with_error(e.to_string());
    r.k8s = Some(K8sInfo {
        context: ctx.to_owned(),
        kind: "Cluster".to_owned(),
        name: ctx.to_owned(),
        forbidden: e.is_forbidden(),
        ..K8sInfo::default()
    });
    r
}

/// The client certificate of the context's kubeconfig user, as records.
pub fn kubeconfig_user_records(access: &KubeAccess, ctx: &str, now: i64) -> Vec<Record> {
    let Some((user, key, bytes)) = access.client_certificate(ctx) else {
        return Vec::new();
    };
    let base = K8sInfo {
        context: ctx.to_owned(),
        kind: "KubeconfigUser".to_owned(),
        name: user,
        ..K8sInfo::default()
    };
    match bytes {
        Ok(b) => key_records(&base, &key, &b, true, true, now),
        Err(e) => {
            let mut info = base;
            info.key = Some(key);
            vec![record(info, None, now).with_error(e)]
        }
    }
}

/// Secret types that never hold certificates (Helm release payloads, registry credentials,
/// tokens): the API server leaves them out of the list, so memory follows the certificates.
pub const SECRET_FIELD_SELECTOR: &str = "type!=helm.sh/release.v1,type!=kubernetes.io/dockerconfigjson,type!=kubernetes.io/dockercfg,type!=kubernetes.io/service-account-token,type!=bootstrap.kubernetes.io/token,type!=kubernetes.io/basic-auth,type!=kubernetes.io/ssh-auth";

/// Where a live watch of a context starts: the versions of the round's lists and what the
/// round learned (which Certificate issues which Secret, which rows each Secret gave).
#[derive(Debug, Clone)]
pub struct WatchStart {
    pub scope: Scope,
    pub secrets_rv: String,
    /// `None` when cert-manager is not installed (or not readable).
    pub certs_rv: Option<String>,
    pub certs: HashMap<(String, String), CertManagerInfo>,
    /// (namespace, name) of each Secret -> the ids of the rows it gave.
    pub rows: HashMap<(String, String), Vec<String>>,
    /// The keystore passwords the Certificates give (cert-manager's `spec.keystores`).
    pub passwords: super::keystores::Passwords,
}

/// How reading a context went.
#[derive(Debug)]
pub struct ContextRead {
    pub end: crate::sources::RoundEnd,
    pub watch: Option<WatchStart>,
}

/// A source-level problem for a Kubernetes error.
pub fn problem(e: &K8sError) -> crate::sources::Problem {
    use crate::sources::{Problem, ProblemKind};
    let kind = match e {
        K8sError::Unauthorized { .. } => ProblemKind::Unauthorized,
        K8sError::Forbidden { .. } => ProblemKind::Forbidden,
        K8sError::Timeout { .. } => ProblemKind::Timeout,
        K8sError::Unreachable(_) => ProblemKind::Unreachable,
        K8sError::Kubeconfig { .. } | K8sError::UnknownContext(_) | K8sError::NoContext => {
            ProblemKind::Config
        }
        K8sError::Api { code: 429, .. } => ProblemKind::Throttled,
        _ => ProblemKind::Other,
    };
    Problem::new(kind, e.to_string())
}

/// Read one context and send its records.
pub async fn read_context(
    access: &KubeAccess,
    ctx: &str,
    settings: &K8sSettings,
    sink: &Sink,
) -> ContextRead {
    use crate::sources::RoundEnd;
    let now = crate::clock::now_unix();
    let failed = |e: &K8sError| ContextRead {
        end: RoundEnd::failed(problem(e)),
        watch: None,
    };
    for r in kubeconfig_user_records(access, ctx, now) {
        let _ = sink.observed(r).await;
    }
    let client = match access.client(ctx, settings.timeout).await {
        Ok(c) => c,
        Err(e) => {
            let _ = sink.observed(cluster_error_row(ctx, &e, now)).await;
            return failed(&e);
        }
    };
    let scope = if settings.all_namespaces {
        Scope::All
    } else {
        Scope::One(
            settings
                .namespace
                .clone()
                .unwrap_or_else(|| access.context_namespace(ctx)),
        )
    };
    let mut rd = Reader {
        ctx,
        client: client.clone(),
        settings,
        sink,
        now,
        namespaces: None,
        last_rv: None,
    };
    // The first permission problem, if some namespaces could not be read.
    let mut partial: Option<K8sError> = None;

    // 1. cert-manager Certificates, so Secrets can be linked to them.
    let ar = certmanager::certificate_resource();
    let mut certs: HashMap<(String, String), CertManagerInfo> = HashMap::new();
    let mut keystores_wanted = Vec::new();
    let certs_rv;
    {
        let c = client.clone();
        let make = move |ns: Option<&str>| -> Api<DynamicObject> {
            match ns {
                Some(ns) => Api::namespaced_with(c.clone(), ns, &ar),
                None => Api::all_with(c.clone(), &ar),
            }
        };
        let mut found: Vec<(String, CertManagerInfo)> = Vec::new();
        let mut f = |o: DynamicObject| {
            let ns = o.metadata.namespace.clone().unwrap_or_default();
            found.push((ns, certmanager::info(&o)));
            keystores_wanted.extend(super::keystores::wanted(&o));
            Vec::new()
        };
        let errs = rd
            .list_scope(&scope, "certificates", &make, None, &mut f)
            .await;
        certs_rv = if errs.is_empty() {
            rd.last_rv.take()
        } else {
            None
        };
        for (ns, e) in errs {
            if e.is_cluster_level() {
                let _ = sink.observed(cluster_error_row(ctx, &e, now)).await;
                return failed(&e);
            }
            // Not installed (404) or not allowed: Secrets are still read, unlinked.
            tracing::info!("{ctx}: cert-manager Certificates not read in '{ns}': {e}");
        }
        for (ns, info) in found {
            certs.insert((ns, info.secret_name.clone()), info);
        }
    }

    // The passwords of cert-manager's keystore outputs, before the Secrets holding them.
    let passwords =
        super::keystores::resolve(&client, settings.timeout, ctx, keystores_wanted).await;

    // 2. Secrets, streamed page by page (mesh CA objects kept for step 7).
    let mut mesh = super::mesh::MeshRound::new(&settings.mesh);
    let mut linked: HashSet<(String, String)> = HashSet::new();
    let mut stored: super::ingress::StoredLeaves = HashMap::new();
    let mut rows: HashMap<(String, String), Vec<String>> = HashMap::new();
    let secrets_rv;
    {
        let c = client.clone();
        let make = move |ns: Option<&str>| -> Api<Secret> {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        };
        let certs_ref = &certs;
        let linked_ref = &mut linked;
        let stored_ref = &mut stored;
        let rows_ref = &mut rows;
        let keep = settings.check_ingresses;
        let mesh_ref = &mut mesh;
        let mut f = |s: Secret| {
            let key = (
                s.metadata.namespace.clone().unwrap_or_default(),
                s.metadata.name.clone().unwrap_or_default(),
            );
            if certs_ref.contains_key(&key) {
                linked_ref.insert(key.clone());
            }
            let recs = secret_records(ctx, &s, certs_ref, &passwords, now);
            if keep {
                for r in &recs {
                    if let (Some(c), Some(k)) = (&r.cert, &r.k8s) {
                        if k.key.as_deref() == Some("tls.crt") {
                            stored_ref.insert(key.clone(), c.clone());
                        }
                    }
                }
            }
            rows_ref.insert(key, recs.iter().map(|r| r.id.clone()).collect());
            mesh_ref.secret(&s, recs)
        };
        let errs = rd
            .list_scope(
                &scope,
                "secrets",
                &make,
                Some(SECRET_FIELD_SELECTOR),
                &mut f,
            )
            .await;
        secrets_rv = if errs.is_empty() {
            rd.last_rv.take()
        } else {
            None
        };
        for (ns, e) in errs {
            if ns.is_empty() && e.is_cluster_level() {
                let _ = sink.observed(cluster_error_row(ctx, &e, now)).await;
                return failed(&e);
            }
            let _ = sink.observed(rd.error_row(&ns, "secrets", &e)).await;
            mesh.list_failed("secrets", &ns, &e);
            partial.get_or_insert(e);
        }
    }

    // 3. Certificates whose Secret was not seen: a row for the Certificate itself.
    let mut unlinked: Vec<(&(String, String), &CertManagerInfo)> =
        certs.iter().filter(|(k, _)| !linked.contains(*k)).collect();
    unlinked.sort_by(|a, b| (&a.0 .0, &a.1.name).cmp(&(&b.0 .0, &b.1.name)));
    for (key, cm) in unlinked {
        let _ = sink.observed(certificate_row(ctx, &key.0, cm, now)).await;
    }

    // 4. ConfigMaps (CA bundles, kube-root-ca.crt).
    {
        let c = client.clone();
        let make = move |ns: Option<&str>| -> Api<ConfigMap> {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        };
        let mut f = |cm: ConfigMap| mesh.configmap(&cm, configmap_records(ctx, &cm, now));
        for (ns, e) in rd
            .list_scope(&scope, "configmaps", &make, None, &mut f)
            .await
        {
            let _ = sink.observed(rd.error_row(&ns, "configmaps", &e)).await;
            mesh.list_failed("configmaps", &ns, &e);
            partial.get_or_insert(e);
        }
    }

    // 5. What Ingress hosts serve, against what their Secrets hold.
    if settings.check_ingresses {
        let c = client.clone();
        let make = move |ns: Option<&str>| -> Api<Ingress> {
            match ns {
                Some(ns) => Api::namespaced(c.clone(), ns),
                None => Api::all(c.clone()),
            }
        };
        let mut hosts = Vec::new();
        let mut f = |i: Ingress| {
            hosts.extend(super::ingress::tls_hosts(&i));
            Vec::new()
        };
        for (ns, e) in rd
            .list_scope(&scope, "ingresses", &make, None, &mut f)
            .await
        {
            let _ = sink.observed(rd.error_row(&ns, "ingresses", &e)).await;
            partial.get_or_insert(e);
        }
        super::ingress::check(ctx, hosts, &stored, settings, sink, now).await;
    }
    drop(stored);

    // 6. Cluster-scoped caBundles, with -A only.
    if scope == Scope::All {
        read_cluster_scoped(&mut rd).await;
    }
    // 7. Service-mesh CAs: compared with each other, then sent.
    if let Some(e) = mesh.finish(&rd, &scope).await {
        partial.get_or_insert(e);
    }
    let watch = secrets_rv.map(|secrets_rv| WatchStart {
        scope,
        secrets_rv,
        certs_rv,
        certs,
        rows,
        passwords,
    });
    ContextRead {
        end: match partial {
            Some(e) => RoundEnd::partial(problem(&e)),
            None if sink.is_closed() => RoundEnd::abandoned(),
            None => RoundEnd::complete(),
        },
        watch,
    }
}

fn ca_bundle_records(
    ctx: &str,
    kind: &str,
    name: &str,
    key: &str,
    data: &[u8],
    now: i64,
) -> Vec<Record> {
    let base = K8sInfo {
        context: ctx.to_owned(),
        kind: kind.to_owned(),
        name: name.to_owned(),
        ..K8sInfo::default()
    };
    key_records(&base, key, data, false, false, now)
}

/// Records of a webhook configuration's `caBundle`s, one per webhook that has one.
fn webhook_records(
    ctx: &str,
    kind: &str,
    name: Option<String>,
    bundles: impl Iterator<Item = (String, Option<k8s_openapi::ByteString>)>,
    now: i64,
) -> Vec<Record> {
    let name = name.unwrap_or_default();
    bundles
        .filter_map(|(hook, b)| b.map(|b| (hook, b)))
        .flat_map(|(hook, b)| {
            ca_bundle_records(ctx, kind, &name, &format!("{hook}.caBundle"), &b.0, now)
        })
        .collect()
}

async fn read_cluster_scoped(rd: &mut Reader<'_>) {
    let (ctx, now) = (rd.ctx, rd.now);
    let vw: Api<ValidatingWebhookConfiguration> = Api::all(rd.client.clone());
    let mut f = |w: ValidatingWebhookConfiguration| {
        let hooks = w.webhooks.unwrap_or_default().into_iter();
        let bundles = hooks.map(|h| (h.name, h.client_config.ca_bundle));
        webhook_records(
            ctx,
            "ValidatingWebhookConfiguration",
            w.metadata.name,
            bundles,
            now,
        )
    };
    if let Err(e) = rd
        .list_paged(&vw, "validatingwebhookconfigurations", "", None, &mut f)
        .await
    {
        tracing::info!("{ctx}: validating webhooks not read: {e}");
    }
    let mw: Api<MutatingWebhookConfiguration> = Api::all(rd.client.clone());
    let mut f = |w: MutatingWebhookConfiguration| {
        let hooks = w.webhooks.unwrap_or_default().into_iter();
        let bundles = hooks.map(|h| (h.name, h.client_config.ca_bundle));
        webhook_records(
            ctx,
            "MutatingWebhookConfiguration",
            w.metadata.name,
            bundles,
            now,
        )
    };
    if let Err(e) = rd
        .list_paged(&mw, "mutatingwebhookconfigurations", "", None, &mut f)
        .await
    {
        tracing::info!("{ctx}: mutating webhooks not read: {e}");
    }
    let api: Api<APIService> = Api::all(rd.client.clone());
    let mut f = |a: APIService| {
        let name = a.metadata.name.unwrap_or_default();
        match a.spec.and_then(|s| s.ca_bundle) {
            Some(b) => ca_bundle_records(ctx, "APIService", &name, "caBundle", &b.0, now),
            None => Vec::new(),
        }
    };
    if let Err(e) = rd.list_paged(&api, "apiservices", "", None, &mut f).await {
        tracing::info!("{ctx}: APIServices not read: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_name_context_namespace_kind_and_key() {
        assert_eq!(
            location("prod", "shop", "Secret", "web-tls", Some("tls.crt")),
            "prod/shop/secret/web-tls#tls.crt"
        );
        assert_eq!(
            location("prod", "", "APIService", "v1.x", Some("caBundle")),
            "prod/apiservice/v1.x#caBundle"
        );
        assert_eq!(
            location("prod", "shop", "Certificate", "web", None),
            "prod/shop/certificate/web"
        );
    }

    #[test]
    fn blobs_that_are_not_certificates_are_passed_over() {
        assert!(parse_certs(b"hunter2").is_none());
        assert!(parse_certs(b"").is_none());
        assert!(
            parse_certs(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_none()
        );
        assert!(matches!(
            parse_certs(b"-----BEGIN CERTIFICATE-----\nAAAA\n"),
            Some(Err(_))
        ));
        assert!(
            parse_certs(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_none(),
            "DER that is not a certificate"
        );
    }

    #[test]
    fn key_names_are_never_parsed() {
        for k in ["tls.key", "server.key", "client-key", "key", "TLS.KEY"] {
            assert!(is_key_name(k), "{k}");
        }
        for k in ["tls.crt", "ca.crt", "keystore.jks.crt"] {
            assert!(!is_key_name(k), "{k}");
        }
    }
}
