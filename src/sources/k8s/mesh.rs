//! Service-mesh CAs through the Kubernetes source: Istio's self-signed `istio-ca-secret` and its
//! plug-in `cacerts` in the control-plane namespace, the `istio-ca-root-cert` copies of its root
//! in every namespace, and Linkerd's `linkerd-identity-issuer` (the `crt.pem` layout of
//! `linkerd install` and the `kubernetes.io/tls` layout cert-manager writes) with its
//! `linkerd-identity-trust-roots`.
//!
//! Their rows carry a role (`mesh CA`, `mesh root`, `mesh CA chain`, `mesh root copy`,
//! `mesh trust root`) and say their blast radius. A namespace whose root copy differs from the
//! root of the CA in use is drift, and so is a Linkerd issuer that none of the trust roots
//! signed: both are shown as the Kubernetes source's other drift (`k8s.drift`).
//!
//! [`annotate_secret`] is pure and serves the live watch; a round gathers the mesh objects its
//! lists meet ([`MeshRound`]), reads by name the control-plane objects outside its scope, and
//! sends their rows once it can compare them with each other.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde::Deserialize;

use super::error::{call, K8sError};
use super::read::{configmap_records, record, secret_records, Reader, Scope};
use crate::model::{CertFacts, Extra, K8sInfo, Record};

pub const ISTIO_CA_SECRET: &str = "istio-ca-secret";
pub const ISTIO_PLUGIN_SECRET: &str = "cacerts";
pub const ISTIO_ROOT_COPY: &str = "istio-ca-root-cert";
pub const LINKERD_ISSUER: &str = "linkerd-identity-issuer";
pub const LINKERD_TRUST_ROOTS: &str = "linkerd-identity-trust-roots";

/// Where the meshes' control planes live, resolved from flags and `[kubernetes.mesh]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    /// Off with `--no-mesh` or `enabled = false`: mesh objects are plain Secrets and ConfigMaps.
    pub enabled: bool,
    pub istio_namespace: String,
    pub linkerd_namespace: String,
}

impl Default for MeshSettings {
    fn default() -> Self {
        MeshSettings {
            enabled: true,
            istio_namespace: "istio-system".to_owned(),
            linkerd_namespace: "linkerd".to_owned(),
        }
    }
}

/// Service-mesh flags (part of the Kubernetes flags).
#[derive(Debug, clap::Args, Default, Clone)]
pub struct MeshArgs {
    /// Istio's control-plane namespace, where istio-ca-secret and cacerts live
    /// (default istio-system).
    #[arg(long, value_name = "NAMESPACE")]
    pub istio_namespace: Option<String>,
    /// Linkerd's control-plane namespace, where linkerd-identity-issuer and
    /// linkerd-identity-trust-roots live (default linkerd).
    #[arg(long, value_name = "NAMESPACE")]
    pub linkerd_namespace: Option<String>,
    /// Do not treat Istio and Linkerd CA objects as mesh CAs (nor read them outside -n).
    #[arg(long)]
    pub no_mesh: bool,
}

impl MeshArgs {
    pub fn given(&self) -> bool {
        self.istio_namespace.is_some() || self.linkerd_namespace.is_some()
    }

    /// These flags over the `[kubernetes.mesh]` section over the defaults.
    pub fn resolve(&self, cfg: Option<&MeshConfig>) -> MeshSettings {
        let d = MeshSettings::default();
        let c = cfg.cloned().unwrap_or_default();
        MeshSettings {
            enabled: !self.no_mesh && c.enabled.unwrap_or(d.enabled),
            istio_namespace: self
                .istio_namespace
                .clone()
                .or(c.istio_namespace)
                .unwrap_or(d.istio_namespace),
            linkerd_namespace: self
                .linkerd_namespace
                .clone()
                .or(c.linkerd_namespace)
                .unwrap_or(d.linkerd_namespace),
        }
    }
}

/// `[kubernetes.mesh]` in the config file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// Treat Istio and Linkerd CA objects as mesh CAs (default true).
    pub enabled: Option<bool>,
    pub istio_namespace: Option<String>,
    pub linkerd_namespace: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mesh {
    Istio,
    Linkerd,
}

impl Mesh {
    fn name(self) -> &'static str {
        match self {
            Mesh::Istio => "istio",
            Mesh::Linkerd => "linkerd",
        }
    }
}

/// The mesh objects certdeck knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    IstioCaSecret,
    IstioPlugin,
    IstioRootCopy,
    LinkerdIssuer,
    LinkerdTrustRoots,
}

impl Object {
    fn mesh(self) -> Mesh {
        match self {
            Object::IstioCaSecret | Object::IstioPlugin | Object::IstioRootCopy => Mesh::Istio,
            Object::LinkerdIssuer | Object::LinkerdTrustRoots => Mesh::Linkerd,
        }
    }
}

/// What a certificate of a mesh object is to the mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Signs every workload certificate.
    Ca,
    /// The root workloads trust (Istio), or the CA that signed the issuer (Linkerd `ca.crt`).
    Root,
    /// Sent along with every workload certificate.
    Chain,
    /// A namespace's copy of the root.
    RootCopy,
    /// One of the roots every proxy trusts.
    TrustRoot,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::Ca => "mesh CA",
            Role::Root => "mesh root",
            Role::Chain => "mesh CA chain",
            Role::RootCopy => "mesh root copy",
            Role::TrustRoot => "mesh trust root",
        }
    }
}

fn role_of(obj: Object, key: &str) -> Option<Role> {
    match (obj, key) {
        (Object::IstioCaSecret | Object::IstioPlugin, "ca-cert.pem") => Some(Role::Ca),
        (Object::IstioCaSecret | Object::IstioPlugin, "root-cert.pem") => Some(Role::Root),
        (Object::IstioCaSecret | Object::IstioPlugin, "cert-chain.pem") => Some(Role::Chain),
        (Object::IstioRootCopy, "root-cert.pem") => Some(Role::RootCopy),
        (Object::LinkerdIssuer, "crt.pem" | "tls.crt") => Some(Role::Ca),
        (Object::LinkerdIssuer, "ca.crt") => Some(Role::Root),
        (Object::LinkerdTrustRoots, "ca-bundle.crt") => Some(Role::TrustRoot),
        _ => None,
    }
}

impl MeshSettings {
    fn object(&self, kind: &str, ns: &str, name: &str) -> Option<Object> {
        if !self.enabled {
            return None;
        }
        let istio = ns == self.istio_namespace;
        let linkerd = ns == self.linkerd_namespace;
        match (kind, name) {
            ("Secret", ISTIO_CA_SECRET) if istio => Some(Object::IstioCaSecret),
            ("Secret", ISTIO_PLUGIN_SECRET) if istio => Some(Object::IstioPlugin),
            ("ConfigMap", ISTIO_ROOT_COPY) => Some(Object::IstioRootCopy),
            ("Secret", LINKERD_ISSUER) if linkerd => Some(Object::LinkerdIssuer),
            ("ConfigMap", LINKERD_TRUST_ROOTS) if linkerd => Some(Object::LinkerdTrustRoots),
            _ => None,
        }
    }

    fn control_plane(&self, mesh: Mesh) -> &str {
        match mesh {
            Mesh::Istio => &self.istio_namespace,
            Mesh::Linkerd => &self.linkerd_namespace,
        }
    }
}

/// The facts a mesh row carries (JSON `mesh`, the details' MESH section, the table's note).
#[derive(Debug, Clone)]
struct MeshFacts {
    mesh: Mesh,
    control_plane: String,
    role: Role,
    /// The namespace holding the object (differs from the control plane for root copies).
    namespace: String,
    /// False for `istio-ca-secret` while a `cacerts` plug-in CA exists (istiod uses that).
    active: bool,
    /// Set when the row differs from what the mesh uses (also `k8s.drift`).
    drift: Option<String>,
    /// What the row was compared with, or why it was not.
    compared: Option<String>,
}

impl MeshFacts {
    fn mesh_label(&self) -> String {
        format!("{} ({})", self.mesh.name(), self.control_plane)
    }

    fn blast_radius(&self) -> String {
        let m = self.mesh_label();
        if !self.active {
            return format!(
                "not in use: istiod of mesh {m} signs with the cacerts plug-in CA while it exists"
            );
        }
        match (self.role, self.mesh) {
            (Role::Ca, _) => {
                format!("every workload certificate of mesh {m} is signed by this issuer")
            }
            (Role::Root, Mesh::Istio) => format!("every workload of mesh {m} trusts this root"),
            (Role::Root, Mesh::Linkerd) => format!(
                "the CA that signed the issuer of mesh {m}; proxies trust {LINKERD_TRUST_ROOTS}"
            ),
            (Role::Chain, _) => {
                format!("sent with every workload certificate of mesh {m}")
            }
            (Role::RootCopy, _) => format!(
                "workloads in namespace {} trust this copy of the root of mesh {m}",
                self.namespace
            ),
            (Role::TrustRoot, _) => format!("every proxy of mesh {m} trusts this root"),
        }
    }

    fn extra(&self) -> Extra {
        let role = if self.active {
            self.role.label().to_owned()
        } else {
            format!("{} (inactive)", self.role.label())
        };
        let blast = self.blast_radius();
        let mut details = vec![
            ("Role".to_owned(), role.clone()),
            ("Mesh".to_owned(), self.mesh_label()),
            ("Blast radius".to_owned(), blast.clone()),
        ];
        if let Some(c) = &self.compared {
            details.push(("Compared".to_owned(), c.clone()));
        }
        if let Some(d) = &self.drift {
            details.push(("Drift".to_owned(), d.clone()));
        }
        Extra {
            key: "mesh",
            json: serde_json::json!({
                "mesh": self.mesh.name(),
                "control_plane": self.control_plane,
                "role": role,
                "active": self.active,
                "blast_radius": blast,
                "compared": self.compared,
                "drift": self.drift,
            }),
            details,
            note: Some(match &self.drift {
                Some(d) => format!("drift: {d}"),
                None => format!("{role}: {blast}"),
            }),
        }
    }
}

/// One mesh object met in a round, with its rows (annotated).
struct Held {
    obj: Object,
    ns: String,
    name: String,
    recs: Vec<Record>,
}

fn key_of(r: &Record) -> Option<&str> {
    r.k8s.as_ref().and_then(|k| k.key.as_deref())
}

fn annotate(settings: &MeshSettings, obj: Object, ns: &str, recs: &mut [Record]) {
    for r in recs.iter_mut() {
        let Some(role) = key_of(r).and_then(|k| role_of(obj, k)) else {
            continue;
        };
        let facts = MeshFacts {
            mesh: obj.mesh(),
            control_plane: settings.control_plane(obj.mesh()).to_owned(),
            role,
            namespace: ns.to_owned(),
            active: true,
            drift: None,
            compared: None,
        };
        set_facts(r, &facts);
    }
}

fn set_facts(r: &mut Record, f: &MeshFacts) {
    let mut x = f.extra();
    if let Some(k) = r.k8s.as_mut() {
        match (&f.drift, &k.drift) {
            (Some(d), _) => k.drift = Some(d.clone()),
            // Another drift (its cert-manager Certificate's) still comes first in the note.
            (None, Some(d)) => x.note = Some(format!("drift: {d}")),
            (None, None) => {}
        }
    }
    r.extra = Some(Arc::new(x));
}

fn facts_of(r: &Record, obj: Object, settings: &MeshSettings) -> Option<MeshFacts> {
    let role = key_of(r).and_then(|k| role_of(obj, k))?;
    Some(MeshFacts {
        mesh: obj.mesh(),
        control_plane: settings.control_plane(obj.mesh()).to_owned(),
        role,
        namespace: r
            .k8s
            .as_ref()
            .map(|k| k.namespace.clone())
            .unwrap_or_default(),
        active: true,
        drift: None,
        compared: None,
    })
}

/// A Secret's rows with their mesh role when the Secret is a mesh CA object (else unchanged).
/// Pure: what the watch sends for a changed mesh Secret; a round adds what only the other
/// objects can tell (an inactive CA, an issuer no trust root signed).
pub fn annotate_secret(settings: &MeshSettings, s: &Secret, mut recs: Vec<Record>) -> Vec<Record> {
    let ns = s.metadata.namespace.as_deref().unwrap_or_default();
    let name = s.metadata.name.as_deref().unwrap_or_default();
    if let Some(obj) = settings.object("Secret", ns, name) {
        annotate(settings, obj, ns, &mut recs);
    }
    recs
}

/// A signed structure's parts (certificates): the tbs bytes as signed, the algorithm
/// identifier's contents as webpki names them, and the signature.
struct Signed<'a> {
    tbs: &'a [u8],
    alg: &'a [u8],
    sig: &'a [u8],
}

fn split_signed(der_bytes: &[u8]) -> Option<Signed<'_>> {
    use der::{Decode as _, Reader as _};
    let outer = der::asn1::AnyRef::from_der(der_bytes).ok()?;
    let body = outer.value();
    let mut r = der::SliceReader::new(body).ok()?;
    let _tbs: der::asn1::AnyRef<'_> = r.decode().ok()?;
    let tbs_end = usize::try_from(u32::from(r.position())).ok()?;
    let alg: der::asn1::AnyRef<'_> = r.decode().ok()?;
    let sig: der::asn1::BitStringRef<'_> = r.decode().ok()?;
    Some(Signed {
        tbs: &body[..tbs_end],
        alg: alg.value(),
        sig: sig.raw_bytes(),
    })
}

/// True when `parent`'s key signed `child`.
pub fn signed_by(child: &CertFacts, parent: &CertFacts) -> bool {
    let Some(signed) = split_signed(&child.der) else {
        return false;
    };
    let cert = rustls_pki_types::CertificateDer::from(parent.der.as_ref());
    let Ok(ee) = webpki::EndEntityCert::try_from(&cert) else {
        return false;
    };
    webpki::ALL_VERIFICATION_ALGS
        .iter()
        .filter(|a| a.signature_alg_id().as_ref() == signed.alg)
        .any(|a| ee.verify_signature(*a, signed.tbs, signed.sig).is_ok())
}

/// `CN=x (sha256 ab12cd34…)`.
fn name_of(c: &CertFacts) -> String {
    format!(
        "{} (sha256 {}…)",
        crate::model::cert::short_cn(&c.subject),
        &c.sha256[..c.sha256.len().min(12)]
    )
}

fn names(certs: &[&Arc<CertFacts>]) -> String {
    certs
        .iter()
        .map(|c| name_of(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How a namespace's root copy differs from the mesh's roots, if it does.
fn copy_drift(copy: &[Arc<CertFacts>], roots: &[Arc<CertFacts>], m: &str) -> Option<String> {
    let have: BTreeSet<&str> = copy.iter().map(|c| c.sha256.as_str()).collect();
    let want: BTreeSet<&str> = roots.iter().map(|c| c.sha256.as_str()).collect();
    if have == want {
        return None;
    }
    let missing: Vec<&Arc<CertFacts>> = roots
        .iter()
        .filter(|c| !have.contains(c.sha256.as_str()))
        .collect();
    let extra: Vec<&Arc<CertFacts>> = copy
        .iter()
        .filter(|c| !want.contains(c.sha256.as_str()))
        .collect();
    Some(match (missing.is_empty(), extra.is_empty()) {
        (false, false) => format!(
            "stale copy: holds {}, not the root {} of mesh {m}: workloads here reject the mesh's certificates",
            names(&extra),
            names(&missing)
        ),
        (false, true) => format!(
            "lacks the root {} of mesh {m}: workloads here reject the mesh's certificates",
            names(&missing)
        ),
        _ => format!(
            "also trusts {}, which is not a root of mesh {m}",
            names(&extra)
        ),
    })
}

/// The mesh objects of one round.
pub struct MeshRound<'a> {
    settings: &'a MeshSettings,
    held: Vec<Held>,
    /// Lists of the round that failed: (resource, namespace or "" for all, why).
    failed: Vec<(&'static str, String, String)>,
}

impl<'a> MeshRound<'a> {
    pub fn new(settings: &'a MeshSettings) -> MeshRound<'a> {
        MeshRound {
            settings,
            held: Vec::new(),
            failed: Vec::new(),
        }
    }

    /// A list of the round failed (`secrets` or `configmaps`, in `ns` or "" for all): the
    /// comparisons that needed it say so.
    pub fn list_failed(&mut self, resource: &'static str, ns: &str, e: &K8sError) {
        let why = if e.is_forbidden() {
            "forbidden".to_owned()
        } else {
            e.to_string()
        };
        self.failed.push((resource, ns.to_owned(), why));
    }

    fn hold(&mut self, kind: &str, ns: &str, name: &str, mut recs: Vec<Record>) -> Vec<Record> {
        match self.settings.object(kind, ns, name) {
            Some(obj) => {
                annotate(self.settings, obj, ns, &mut recs);
                self.held.push(Held {
                    obj,
                    ns: ns.to_owned(),
                    name: name.to_owned(),
                    recs,
                });
                Vec::new()
            }
            None => recs,
        }
    }

    /// A listed Secret's rows: a mesh object's are kept for [`MeshRound::finish`], any other
    /// Secret's are returned to be sent now.
    pub fn secret(&mut self, s: &Secret, recs: Vec<Record>) -> Vec<Record> {
        let ns = s.metadata.namespace.clone().unwrap_or_default();
        let name = s.metadata.name.clone().unwrap_or_default();
        self.hold("Secret", &ns, &name, recs)
    }

    /// A listed ConfigMap's rows, as [`MeshRound::secret`].
    pub fn configmap(&mut self, c: &ConfigMap, recs: Vec<Record>) -> Vec<Record> {
        let ns = c.metadata.namespace.clone().unwrap_or_default();
        let name = c.metadata.name.clone().unwrap_or_default();
        self.hold("ConfigMap", &ns, &name, recs)
    }

    fn has(&self, obj: Object) -> bool {
        self.held.iter().any(|h| h.obj == obj)
    }

    /// Read the control-plane objects the round's lists did not cover, compare the objects
    /// with each other, and send every mesh row. Returns a problem that makes the round
    /// partial (a control-plane read that failed otherwise than 403 or 404).
    pub async fn finish(mut self, rd: &Reader<'_>, scope: &Scope) -> Option<K8sError> {
        if !self.settings.enabled {
            return None;
        }
        let (mut unreadable, problem) = self.read_outside(rd, scope).await;
        let s = self.settings;
        for (resource, ns, why) in &self.failed {
            for (mesh, needs) in [(Mesh::Istio, "secrets"), (Mesh::Linkerd, "configmaps")] {
                if *resource == needs && (ns.is_empty() || ns == s.control_plane(mesh)) {
                    unreadable.push((mesh, why.clone()));
                }
            }
        }
        let istio = s.control_plane(Mesh::Istio).to_owned();
        let linkerd = s.control_plane(Mesh::Linkerd).to_owned();

        // Istio: istiod signs with the plug-in CA when `cacerts` exists, else istio-ca-secret.
        let plugin = self.has(Object::IstioPlugin);
        let active = if plugin {
            Object::IstioPlugin
        } else {
            Object::IstioCaSecret
        };
        let mut roots: Vec<Arc<CertFacts>> = Vec::new();
        let mut self_signed: Vec<Arc<CertFacts>> = Vec::new();
        for h in self.held.iter().filter(|h| h.obj == active) {
            for r in &h.recs {
                match (key_of(r), &r.cert) {
                    (Some("root-cert.pem"), Some(c)) => roots.push(c.clone()),
                    (Some("ca-cert.pem"), Some(c)) if c.self_issued => self_signed.push(c.clone()),
                    _ => {}
                }
            }
        }
        if roots.is_empty() {
            // The self-signed CA of istio-ca-secret is its own root.
            roots = self_signed;
        }
        let istio_m = format!("istio ({istio})");
        let istio_unread = unreadable.iter().find(|(m, _)| *m == Mesh::Istio);
        let mut copies_missing: Vec<String> = Vec::new();

        // Linkerd: the trust roots every proxy holds, and the issuer they must have signed.
        let trust: Vec<Arc<CertFacts>> = self
            .held
            .iter()
            .filter(|h| h.obj == Object::LinkerdTrustRoots)
            .flat_map(|h| h.recs.iter().filter_map(|r| r.cert.clone()))
            .collect();
        let linkerd_unread = unreadable.iter().find(|(m, _)| *m == Mesh::Linkerd);
        let linkerd_m = format!("linkerd ({linkerd})");

        for h in &mut self.held {
            match h.obj {
                Object::IstioCaSecret if plugin => {
                    for r in &mut h.recs {
                        if let Some(mut f) = facts_of(r, h.obj, s) {
                            f.active = false;
                            set_facts(r, &f);
                        }
                    }
                }
                Object::IstioRootCopy => {
                    let copy: Vec<Arc<CertFacts>> = h
                        .recs
                        .iter()
                        .filter(|r| key_of(r) == Some("root-cert.pem"))
                        .filter_map(|r| r.cert.clone())
                        .collect();
                    let has_key_row = h.recs.iter().any(|r| key_of(r) == Some("root-cert.pem"));
                    if !has_key_row {
                        copies_missing.push(h.ns.clone());
                        let info = K8sInfo {
                            context: rd.ctx.to_owned(),
                            namespace: h.ns.clone(),
                            kind: "ConfigMap".to_owned(),
                            name: h.name.clone(),
                            key: Some("root-cert.pem".to_owned()),
                            ..K8sInfo::default()
                        };
                        h.recs.push(
                            record(info, None, rd.now)
                                .with_error("root-cert.pem is missing or holds no certificate"),
                        );
                    }
                    for r in &mut h.recs {
                        let Some(mut f) = facts_of(r, h.obj, s) else {
                            continue;
                        };
                        if roots.is_empty() {
                            f.compared = Some(match istio_unread {
                                Some((_, why)) => format!(
                                    "not compared: the CA of mesh {istio_m} could not be read ({why})"
                                ),
                                None => format!(
                                    "not compared: no CA of mesh {istio_m} found ({ISTIO_PLUGIN_SECRET} or {ISTIO_CA_SECRET})"
                                ),
                            });
                        } else {
                            let from = if plugin {
                                ISTIO_PLUGIN_SECRET
                            } else {
                                ISTIO_CA_SECRET
                            };
                            f.compared = Some(format!(
                                "with the root of Secret {istio}/{from}: {}",
                                names(&roots.iter().collect::<Vec<_>>())
                            ));
                            f.drift = if copy.is_empty() {
                                Some(format!(
                                    "holds no certificate, not the root of mesh {istio_m}"
                                ))
                            } else {
                                copy_drift(&copy, &roots, &istio_m)
                            };
                        }
                        set_facts(r, &f);
                    }
                }
                Object::LinkerdIssuer => {
                    // The issuer and its chain (tls.crt) or bundle (crt.pem).
                    let mut certs: Vec<Arc<CertFacts>> = Vec::new();
                    for r in h
                        .recs
                        .iter()
                        .filter(|r| matches!(key_of(r), Some("crt.pem" | "tls.crt")))
                    {
                        certs.extend(r.cert.iter().cloned());
                        certs.extend(r.chain.iter().cloned());
                    }
                    let compared: String;
                    let mut drift = None;
                    if trust.is_empty() {
                        compared = match linkerd_unread {
                            Some((_, why)) => format!(
                                "not compared: {LINKERD_TRUST_ROOTS} could not be read ({why})"
                            ),
                            None => format!("not compared: no {LINKERD_TRUST_ROOTS} found"),
                        };
                    } else {
                        compared = format!(
                            "with ConfigMap {linkerd}/{LINKERD_TRUST_ROOTS}: {}",
                            names(&trust.iter().collect::<Vec<_>>())
                        );
                        let anchored = certs.iter().any(|c| {
                            trust
                                .iter()
                                .any(|t| t.sha256 == c.sha256 || signed_by(c, t))
                        });
                        if !certs.is_empty() && !anchored {
                            drift = Some(format!(
                                "signed by none of the roots in {LINKERD_TRUST_ROOTS}: proxies of mesh {linkerd_m} reject the certificates it issues"
                            ));
                        }
                    }
                    for r in &mut h.recs {
                        let Some(mut f) = facts_of(r, h.obj, s) else {
                            continue;
                        };
                        if f.role == Role::Ca {
                            f.compared = Some(compared.clone());
                            f.drift = drift.clone();
                        }
                        set_facts(r, &f);
                    }
                }
                _ => {}
            }
        }
        if !copies_missing.is_empty() {
            tracing::info!(
                "{}: {ISTIO_ROOT_COPY} without root-cert.pem in {}",
                rd.ctx,
                copies_missing.join(", ")
            );
        }
        for h in self.held {
            for r in h.recs {
                if !rd.sink.observed(r).await {
                    return problem;
                }
            }
        }
        problem
    }

    /// Read by name the control-plane objects the round's scope did not list. 404: the mesh is
    /// not installed. 403 (a user scoped to a namespace): not an error of the round, but the
    /// comparisons say why they were not made. Returns those reasons and any other failure.
    async fn read_outside(
        &mut self,
        rd: &Reader<'_>,
        scope: &Scope,
    ) -> (Vec<(Mesh, String)>, Option<K8sError>) {
        let covered = |ns: &str| match scope {
            Scope::All => true,
            Scope::One(n) => n == ns,
        };
        let s = self.settings;
        let istio = s.istio_namespace.clone();
        let linkerd = s.linkerd_namespace.clone();
        let wanted: Vec<(Object, &str, &str, bool)> = [
            (
                Object::IstioPlugin,
                istio.as_str(),
                ISTIO_PLUGIN_SECRET,
                true,
            ),
            (Object::IstioCaSecret, istio.as_str(), ISTIO_CA_SECRET, true),
            (
                Object::LinkerdIssuer,
                linkerd.as_str(),
                LINKERD_ISSUER,
                true,
            ),
            (
                Object::LinkerdTrustRoots,
                linkerd.as_str(),
                LINKERD_TRUST_ROOTS,
                false,
            ),
        ]
        .into_iter()
        .filter(|(obj, ns, _, _)| !covered(ns) && !self.has(*obj))
        .collect();
        let gets = wanted.iter().map(|&(obj, ns, name, secret)| {
            let client = rd.client.clone();
            async move {
                let t = rd.settings.timeout;
                let got = if secret {
                    let api: Api<Secret> = Api::namespaced(client, ns);
                    call(api.get_opt(name), t, rd.ctx, "get", "secrets", ns)
                        .await
                        .map(|o| {
                            o.map(|s| {
                                secret_records(
                                    rd.ctx,
                                    &s,
                                    &HashMap::new(),
                                    &Default::default(),
                                    rd.now,
                                )
                            })
                        })
                } else {
                    let api: Api<ConfigMap> = Api::namespaced(client, ns);
                    call(api.get_opt(name), t, rd.ctx, "get", "configmaps", ns)
                        .await
                        .map(|o| o.map(|c| configmap_records(rd.ctx, &c, rd.now)))
                };
                (obj, ns, name, got)
            }
        });
        let mut unreadable = Vec::new();
        let mut problem = None;
        for (obj, ns, name, got) in futures::future::join_all(gets).await {
            match got {
                Ok(Some(mut recs)) => {
                    annotate(s, obj, ns, &mut recs);
                    self.held.push(Held {
                        obj,
                        ns: ns.to_owned(),
                        name: name.to_owned(),
                        recs,
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::info!("{}: mesh object {ns}/{name} not read: {e}", rd.ctx);
                    let why = if e.is_forbidden() {
                        "forbidden".to_owned()
                    } else {
                        e.to_string()
                    };
                    unreadable.push((obj.mesh(), why));
                    if !e.is_forbidden() {
                        problem.get_or_insert(e);
                    }
                }
            }
        }
        (unreadable, problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(cn: &str) -> (rcgen::Certificate, rcgen::KeyPair, rcgen::CertificateParams) {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let k = rcgen::KeyPair::generate().expect("key");
        let c = p.self_signed(&k).expect("cert");
        (c, k, p)
    }

    fn facts(der: &[u8]) -> Arc<CertFacts> {
        Arc::new(CertFacts::from_der(der).expect("facts"))
    }

    #[test]
    fn an_issuer_is_signed_by_its_root_and_not_by_another() {
        let (root, rk, rp) = ca("root");
        let (other, _, _) = ca("other");
        let mut ip = rcgen::CertificateParams::new(Vec::<String>::new()).expect("p");
        ip.distinguished_name
            .push(rcgen::DnType::CommonName, "issuer");
        ip.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ik = rcgen::KeyPair::generate().expect("k");
        let issuer = ip
            .signed_by(&ik, &rcgen::Issuer::from_params(&rp, &rk))
            .expect("signed");
        let (issuer, root, other) = (facts(issuer.der()), facts(root.der()), facts(other.der()));
        assert!(signed_by(&issuer, &root));
        assert!(!signed_by(&issuer, &other));
        assert!(signed_by(&root, &root), "a root signs itself");
    }

    #[test]
    fn a_copy_that_differs_from_the_roots_is_drift_and_says_how() {
        let (a, _, _) = ca("root-a");
        let (b, _, _) = ca("root-b");
        let (a, b) = (facts(a.der()), facts(b.der()));
        let m = "istio (istio-system)";
        let (one_a, one_b) = (vec![a.clone()], vec![b.clone()]);
        assert_eq!(copy_drift(&one_a, &one_a, m), None);
        let stale = copy_drift(&one_b, &one_a, m).expect("drift");
        assert!(stale.starts_with("stale copy: holds root-b"), "{stale}");
        assert!(
            stale.contains("root-b") && stale.contains("root-a"),
            "{stale}"
        );
        let lacks = copy_drift(&[], &one_a, m).expect("drift");
        assert!(lacks.starts_with("lacks the root"), "{lacks}");
        let more = copy_drift(&[a, b], &one_a, m).expect("drift");
        assert!(more.starts_with("also trusts"), "{more}");
    }

    #[test]
    fn objects_are_mesh_objects_only_in_their_control_plane_namespace() {
        let s = MeshSettings::default();
        assert_eq!(
            s.object("Secret", "istio-system", "cacerts"),
            Some(Object::IstioPlugin)
        );
        assert_eq!(s.object("Secret", "shop", "cacerts"), None);
        assert_eq!(
            s.object("ConfigMap", "shop", "istio-ca-root-cert"),
            Some(Object::IstioRootCopy)
        );
        assert_eq!(
            s.object("Secret", "linkerd", "linkerd-identity-issuer"),
            Some(Object::LinkerdIssuer)
        );
        let off = MeshSettings {
            enabled: false,
            ..MeshSettings::default()
        };
        assert_eq!(off.object("Secret", "istio-system", "cacerts"), None);
        let args = MeshArgs {
            istio_namespace: Some("mesh".into()),
            ..MeshArgs::default()
        };
        let cfg = MeshConfig {
            istio_namespace: Some("ignored".into()),
            linkerd_namespace: Some("l5d".into()),
            enabled: None,
        };
        let r = args.resolve(Some(&cfg));
        assert_eq!(
            (r.istio_namespace.as_str(), r.linkerd_namespace.as_str()),
            ("mesh", "l5d")
        );
        assert!(r.enabled);
    }
}
