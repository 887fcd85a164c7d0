//! The object store: resource table, versioned objects, selectors, watch events.
//!
//! Every write bumps one global resourceVersion (like etcd's revision). Each object
//! keeps its full version history so that lists can be served from a consistent
//! snapshot (continue tokens) and watches can replay events after a resourceVersion.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::broadcast;

/// One served resource type.
#[derive(Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    /// Has a `/status` subresource (spec writes ignore status, status writes ignore the rest).
    pub status: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Custom resource (CRD) semantics: `generation`, items keep kind/apiVersion in lists,
    /// `metadata.resourceVersion` is required on update.
    pub custom: bool,
    /// Field selector labels beyond `metadata.name` / `metadata.namespace`.
    pub extra_fields: &'static [&'static str],
}

impl ResourceDef {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `certificates.cert-manager.io`, as in Kubernetes error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Secret` or `Certificate.cert-manager.io` (a GroupKind, used by Invalid errors).
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_string()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub fn verbs() -> &'static [&'static str] {
    ALL_VERBS
}

pub static RESOURCES: &[ResourceDef] = &[
    ResourceDef {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        status: true,
        short_names: &["ns"],
        categories: &[],
        custom: false,
        extra_fields: &["status.phase"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        status: false,
        short_names: &[],
        categories: &[],
        custom: false,
        extra_fields: &["type"],
    },
    ResourceDef {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        status: false,
        short_names: &["cm"],
        categories: &[],
        custom: false,
        extra_fields: &[],
    },
    ResourceDef {
        group: "admissionregistration.k8s.io",
        version: "v1",
        plural: "mutatingwebhookconfigurations",
        singular: "mutatingwebhookconfiguration",
        kind: "MutatingWebhookConfiguration",
        namespaced: false,
        status: false,
        short_names: &[],
        categories: &["api-extensions"],
        custom: false,
        extra_fields: &[],
    },
    ResourceDef {
        group: "admissionregistration.k8s.io",
        version: "v1",
        plural: "validatingwebhookconfigurations",
        singular: "validatingwebhookconfiguration",
        kind: "ValidatingWebhookConfiguration",
        namespaced: false,
        status: false,
        short_names: &[],
        categories: &["api-extensions"],
        custom: false,
        extra_fields: &[],
    },
    ResourceDef {
        group: "apiregistration.k8s.io",
        version: "v1",
        plural: "apiservices",
        singular: "apiservice",
        kind: "APIService",
        namespaced: false,
        status: true,
        short_names: &[],
        categories: &["api-extensions"],
        custom: false,
        extra_fields: &[],
    },
    ResourceDef {
        group: "cert-manager.io",
        version: "v1",
        plural: "certificates",
        singular: "certificate",
        kind: "Certificate",
        namespaced: true,
        status: true,
        short_names: &["cert", "certs"],
        categories: &["cert-manager"],
        custom: true,
        extra_fields: &[],
    },
    ResourceDef {
        group: "cert-manager.io",
        version: "v1",
        plural: "certificaterequests",
        singular: "certificaterequest",
        kind: "CertificateRequest",
        namespaced: true,
        status: true,
        short_names: &["cr", "crs"],
        categories: &["cert-manager"],
        custom: true,
        extra_fields: &[],
    },
    ResourceDef {
        group: "cert-manager.io",
        version: "v1",
        plural: "issuers",
        singular: "issuer",
        kind: "Issuer",
        namespaced: true,
        status: true,
        short_names: &[],
        categories: &["cert-manager"],
        custom: true,
        extra_fields: &[],
    },
    ResourceDef {
        group: "cert-manager.io",
        version: "v1",
        plural: "clusterissuers",
        singular: "clusterissuer",
        kind: "ClusterIssuer",
        namespaced: false,
        status: true,
        short_names: &[],
        categories: &["cert-manager"],
        custom: true,
        extra_fields: &[],
    },
    ResourceDef {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        status: true,
        short_names: &["ing"],
        categories: &["all"],
        custom: false,
        extra_fields: &[],
    },
];

/// Group/version pairs served under `/apis`, in discovery order.
pub const GROUPS: &[(&str, &str)] = &[
    ("admissionregistration.k8s.io", "v1"),
    ("apiregistration.k8s.io", "v1"),
    ("authorization.k8s.io", "v1"),
    ("cert-manager.io", "v1"),
    ("networking.k8s.io", "v1"),
];

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|d| d.group == group && d.version == version && d.plural == plural)
}

/// Plurals are unique across the served groups, so tests can name a resource by plural.
pub fn by_plural(plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES.iter().find(|d| d.plural == plural)
}

pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|d| d.api_version() == api_version && d.kind == kind)
}

/// etcd-style key below the resource prefix: `ns/name` or `name`.
pub fn key_path(def: &ResourceDef, ns: &str, name: &str) -> String {
    if def.namespaced {
        format!("{ns}/{name}")
    } else {
        name.to_string()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub plural: &'static str,
    pub namespace: String,
    pub kind: EventType,
    /// The object after the write; for deletions the last stored object with the deletion's rv.
    pub object: Value,
    /// The object before the write (None for creations).
    pub prev: Option<Value>,
}

type Versions = Vec<(u64, Option<Value>)>;

pub struct Store {
    pub rv: u64,
    /// Reads (continue tokens, exact lists, watches) at a resourceVersion below this are expired.
    pub compacted: u64,
    objects: BTreeMap<(&'static str, String), Versions>,
    pub history: Vec<Arc<Event>>,
    pub events: broadcast::Sender<Arc<Event>>,
}

impl Store {
    pub fn new() -> Store {
        let (events, _) = broadcast::channel(4096);
        Store {
            rv: 100,
            compacted: 0,
            objects: BTreeMap::new(),
            history: Vec::new(),
            events,
        }
    }

    pub fn current(&self, def: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(def.plural, key_path(def, ns, name)))
            .and_then(|v| v.last())
            .and_then(|(_, o)| o.as_ref())
    }

    /// Objects of `def` whose key starts with `prefix` and is >= `start`, as of `rv`.
    pub fn list_at<'a>(
        &'a self,
        def: &'static ResourceDef,
        prefix: &'a str,
        start: &str,
        rv: u64,
    ) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        let from = if start.as_bytes() > prefix.as_bytes() {
            start.to_string()
        } else {
            prefix.to_string()
        };
        self.objects
            .range((def.plural, from)..)
            .take_while(move |((plural, key), _)| *plural == def.plural && key.starts_with(prefix))
            .filter_map(move |((_, key), versions)| {
                versions
                    .iter()
                    .rev()
                    .find(|(v, _)| *v <= rv)
                    .and_then(|(_, o)| o.as_ref())
                    .map(|o| (key.as_str(), o))
            })
    }

    /// Stores `new` (or deletes when None) and returns the event. Sets the object's rv.
    pub fn commit(
        &mut self,
        def: &'static ResourceDef,
        ns: &str,
        name: &str,
        new: Option<Value>,
    ) -> Arc<Event> {
        self.rv += 1;
        let rv = self.rv;
        let key = (def.plural, key_path(def, ns, name));
        let versions = self.objects.entry(key).or_default();
        let prev = versions.last().and_then(|(_, o)| o.clone());
        let new = new.map(|mut o| {
            set_meta(&mut o, "resourceVersion", json!(rv.to_string()));
            o
        });
        versions.push((rv, new.clone()));
        let (kind, object) = match (&prev, new) {
            (None, Some(o)) => (EventType::Added, o),
            (Some(_), Some(o)) => (EventType::Modified, o),
            (Some(p), None) => {
                let mut o = p.clone();
                set_meta(&mut o, "resourceVersion", json!(rv.to_string()));
                (EventType::Deleted, o)
            }
            (None, None) => (EventType::Deleted, Value::Null),
        };
        let event = Arc::new(Event {
            rv,
            plural: def.plural,
            namespace: ns.to_string(),
            kind,
            object,
            prev,
        });
        self.history.push(event.clone());
        let _ = self.events.send(event.clone());
        event
    }
}

pub fn meta(o: &Value) -> &Value {
    &o["metadata"]
}

pub fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or("")
}

pub fn set_meta(o: &mut Value, field: &str, v: Value) {
    if !o.is_object() {
        *o = Value::Object(Map::new());
    }
    if !o["metadata"].is_object() {
        o["metadata"] = Value::Object(Map::new());
    }
    o["metadata"][field] = v;
}

// ---------------------------------------------------------------------------------------------
// Selectors

#[derive(Debug, Clone)]
pub enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

pub fn parse_label_selector(s: &str) -> Result<Vec<LabelReq>, String> {
    let mut reqs = Vec::new();
    for term in split_top_level(s) {
        if let Some(open) = term.find('(') {
            let close = term
                .rfind(')')
                .ok_or_else(|| format!("unable to parse requirement: {term}"))?;
            let head: Vec<&str> = term[..open].split_whitespace().collect();
            let values: Vec<String> = term[open + 1..close]
                .split(',')
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .collect();
            match head.as_slice() {
                [k, "in"] => reqs.push(LabelReq::In(k.to_string(), values)),
                [k, "notin"] => reqs.push(LabelReq::NotIn(k.to_string(), values)),
                _ => return Err(format!("unable to parse requirement: {term}")),
            }
        } else if let Some(k) = term.strip_prefix('!') {
            reqs.push(LabelReq::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = term.split_once("!=") {
            reqs.push(LabelReq::NotEq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = term.split_once("==") {
            reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = term.split_once('=') {
            reqs.push(LabelReq::Eq(k.trim().into(), v.trim().into()));
        } else if term.contains(char::is_whitespace) {
            return Err(format!("unable to parse requirement: {term}"));
        } else {
            reqs.push(LabelReq::Exists(term));
        }
    }
    Ok(reqs)
}

pub fn labels_match(reqs: &[LabelReq], obj: &Value) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    reqs.iter().all(|r| match r {
        LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
        LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
        LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        LabelReq::Exists(k) => get(k).is_some(),
        LabelReq::NotExists(k) => get(k).is_none(),
    })
}

#[derive(Debug, Clone)]
pub struct FieldReq {
    pub field: String,
    pub value: String,
    pub negate: bool,
}

pub fn parse_field_selector(def: &ResourceDef, s: &str) -> Result<Vec<FieldReq>, String> {
    let mut reqs = Vec::new();
    for term in split_top_level(s) {
        let (field, value, negate) = if let Some((k, v)) = term.split_once("!=") {
            (k, v, true)
        } else if let Some((k, v)) = term.split_once("==") {
            (k, v, false)
        } else if let Some((k, v)) = term.split_once('=') {
            (k, v, false)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{term}'"
            ));
        };
        let field = field.trim();
        if field != "metadata.name"
            && field != "metadata.namespace"
            && !def.extra_fields.contains(&field)
        {
            return Err(format!("field label not supported: {field}"));
        }
        reqs.push(FieldReq {
            field: field.to_string(),
            value: value.trim().to_string(),
            negate,
        });
    }
    Ok(reqs)
}

pub fn fields_match(reqs: &[FieldReq], obj: &Value) -> bool {
    reqs.iter().all(|r| {
        let mut cur = obj;
        for part in r.field.split('.') {
            cur = &cur[part];
        }
        let actual = cur.as_str().unwrap_or("");
        (actual == r.value) != r.negate
    })
}

/// Label and field selectors of one request.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub labels: Vec<LabelReq>,
    pub fields: Vec<FieldReq>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }
    pub fn matches(&self, obj: &Value) -> bool {
        labels_match(&self.labels, obj) && fields_match(&self.fields, obj)
    }
}
