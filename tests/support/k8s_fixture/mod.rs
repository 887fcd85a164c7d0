//! A fixture Kubernetes API server for integration tests.
//!
//! # Using it from a test file
//!
//! ```ignore
//! // tests/my_test.rs
//! #[path = "support/k8s_fixture/mod.rs"]
//! mod k8s_fixture;
//! use k8s_fixture::Fixture;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn lists_secrets() {
//!     let fx = Fixture::start().await;
//!     fx.insert_value(k8s_fixture::tls_secret("team-a", "web-tls", CERT_PEM, KEY_PEM));
//!     let client = fx.client().await; // kube::Client built from fx.kubeconfig_path()
//!     // ... or point certdeck at fx.kubeconfig_path(); or fx.kubectl(&["get", "secrets", "-A"])
//! }
//! ```
//!
//! The `#[path]` include is the only supported way (there is no `tests/support/mod.rs`).
//! The server runs on its own thread and tokio runtime, so it works from sync tests and from
//! any runtime flavor, and blocking calls in a test (like [`Fixture::kubectl`]) cannot stall it.
//! Dropping the [`Fixture`] stops the server, closes every connection and port it opened and
//! deletes its temporary directory (kubeconfig, kubectl cache).
//!
//! # What it serves (HTTPS on 127.0.0.1, HTTP/1.1 and HTTP/2)
//!
//! * Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/{group}`, `/apis/{group}/{version}`
//!   for core `v1` (namespaces, secrets, configmaps), `admissionregistration.k8s.io/v1`
//!   (mutating/validatingwebhookconfigurations), `apiregistration.k8s.io/v1` (apiservices) and
//!   `cert-manager.io/v1` (certificates, certificaterequests, issuers, clusterissuers; all with
//!   `/status`), and `networking.k8s.io/v1` (ingresses, with `/status`). Aggregated discovery is not implemented: kubectl falls back to these documents.
//! * For every resource: list (namespaced and across namespaces), get, create, update (PUT),
//!   patch (merge, strategic-merge treated as merge, JSON patch; no server-side apply), delete,
//!   deletecollection, `watch=true`, and `/status` get/update/patch.
//! * Lists: `limit`/`continue` (consistent snapshots, like etcd), `remainingItemCount` (only
//!   without selectors), `labelSelector` (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`),
//!   `fieldSelector` (`metadata.name`, `metadata.namespace`, secrets `type`, namespaces
//!   `status.phase`; anything else is 400 `field label not supported`), `resourceVersion` and
//!   `resourceVersionMatch`, ordering by etcd key (`namespace/name`), kubectl's `Table` and
//!   kube's `PartialObjectMetadataList` content types.
//! * One global resourceVersion bumped per write; `uid`, `creationTimestamp`; `generation` for the
//!   cert-manager (custom) resources, bumped when anything outside metadata/status changes.
//!   No-op updates do not bump the resourceVersion (like kube-apiserver).
//! * Watches: newline-delimited `ADDED`/`MODIFIED`/`DELETED` events from a resourceVersion (or
//!   synthetic ADDED events for `""`/`"0"`/`sendInitialEvents`), selector-aware (an object leaving
//!   the selector is a DELETED), Table events for `kubectl get -w`, closed after `timeoutSeconds`
//!   or when the client goes away; a compacted resourceVersion gets an `ERROR` event (410).
//! * Errors are `kind: Status` bodies as kube-apiserver writes them (401, 403, 404, 405, 409
//!   Conflict/AlreadyExists, 410 Expired, 415, 422, 429, 500, 504).
//! * `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews` (JSON, or the protobuf that
//!   `kubectl auth can-i` sends), answered from the token's policy.
//!
//! # API at a glance
//!
//! * Server: [`Fixture::start`] / [`Fixture::start_blocking`], [`Fixture::url`],
//!   [`Fixture::ca_pem`], [`Fixture::kubeconfig_path`] (context [`CONTEXT`], token
//!   [`ADMIN_TOKEN`]), [`Fixture::add_context`], [`Fixture::add_unreachable_context`],
//!   [`Fixture::add_hanging_context`], [`Fixture::client`], [`Fixture::kubectl`].
//! * Auth: a missing or unknown bearer token gets 401. [`Fixture::add_token`],
//!   [`Fixture::add_read_only_token`], [`Fixture::forbid`] / [`Fixture::forbid_token`] give 403s
//!   with kube-apiserver's exact message.
//! * Objects: [`Fixture::insert`] (typed) / [`Fixture::insert_value`] (JSON), [`Fixture::get`],
//!   [`Fixture::get_as`], [`Fixture::list`], [`Fixture::modify`], [`Fixture::remove`],
//!   [`Fixture::set_certificate_ready`], [`Fixture::on_write`] (simulated controllers),
//!   [`Fixture::expire_continue_tokens`]; builders [`tls_secret`], [`certificate`],
//!   [`set_ready_status`].
//! * Faults and log: [`Fixture::add_fault`] with [`Fault`], [`Fixture::requests`],
//!   [`Fixture::request_count`].
//!
//! Set `K8S_FIXTURE_LOG=1` to print every request (method, URL, status, HTTP version, headers).
//!
//! # Not implemented
//!
//! `/openapi/v2` and `/openapi/v3` (404: kubectl writes need `--validate=false`), aggregated
//! discovery, protobuf (except the access review) and YAML bodies (415), server-side apply
//! (415), periodic watch bookmarks (only the `sendInitialEvents` end marker), graceful deletion
//! and finalizers (deletes are immediate; deleting a namespace deletes its objects at once),
//! admission/validation of object contents, and resources other than the ones listed above.
#![allow(dead_code)]

mod proto;
mod server;
mod store;
mod tls;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use store::{meta_str, set_meta, ResourceDef, Store};

/// Bearer token of the default user, who may do everything (minus what [`Fixture::forbid`] denies).
pub const ADMIN_TOKEN: &str = "certdeck-fixture-admin-token";
/// The default token's user name, as it appears in 403 messages.
pub const ADMIN_USER: &str = "system:serviceaccount:default:certdeck";
/// Name of the kubeconfig context (and its cluster and user entries) for the default user.
pub const CONTEXT: &str = "fixture";

// ---------------------------------------------------------------------------------------------
// Public helper types

/// One HTTP request the server received, in arrival order.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    pub method: String,
    /// The URL path, e.g. `/api/v1/namespaces/team-a/secrets`.
    pub path: String,
    /// The raw (still percent-encoded) query string, without `?`.
    pub query: String,
    /// The authenticated user, None when the token was missing or unknown.
    pub user: Option<String>,
    /// The response status code (0 while the request is still being handled).
    pub status: u16,
    id: u64,
}

impl RequestRecord {
    /// A decoded query parameter.
    pub fn param(&self, key: &str) -> Option<String> {
        wire::parse_query(&self.query)
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// What a [`Fault`] does to a matching request.
#[derive(Clone, Debug)]
pub enum FaultAction {
    /// Sleep before handling the request normally.
    Delay(Duration),
    /// 429 `TooManyRequests` Status with a `Retry-After` header.
    TooManyRequests { retry_after_secs: u64 },
    /// 500 `InternalError` Status.
    InternalError,
    /// Any other status code with a Failure Status body (e.g. 503).
    Status(u16),
}

/// Fault injection for requests whose path starts with a prefix (checked before authentication).
#[derive(Clone, Debug)]
pub struct Fault {
    path_prefix: String,
    method: Option<String>,
    action: FaultAction,
    remaining: Option<usize>,
}

impl Fault {
    pub fn new(path_prefix: &str, action: FaultAction) -> Fault {
        Fault {
            path_prefix: path_prefix.to_string(),
            method: None,
            action,
            remaining: None,
        }
    }
    pub fn delay(path_prefix: &str, delay: Duration) -> Fault {
        Fault::new(path_prefix, FaultAction::Delay(delay))
    }
    pub fn too_many_requests(path_prefix: &str, retry_after_secs: u64) -> Fault {
        Fault::new(
            path_prefix,
            FaultAction::TooManyRequests { retry_after_secs },
        )
    }
    pub fn internal_error(path_prefix: &str) -> Fault {
        Fault::new(path_prefix, FaultAction::InternalError)
    }
    /// Only for this HTTP method (e.g. "GET", "PUT").
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_string());
        self
    }
    /// Only for the next `n` matching requests (default: forever).
    pub fn times(mut self, n: usize) -> Fault {
        self.remaining = Some(n);
        self
    }
}

/// A write made by a client through the API, as passed to [`Fixture::on_write`] reactors.
#[derive(Clone, Debug)]
pub struct Write {
    /// "create", "update", "patch" or "delete".
    pub verb: &'static str,
    /// Plural resource name, e.g. "certificates".
    pub resource: &'static str,
    /// Some("status") for writes to the status subresource.
    pub subresource: Option<String>,
    pub namespace: String,
    pub name: String,
    /// The object as stored after the write (for deletes: the last stored object).
    pub object: Value,
}

impl Write {
    fn new(
        verb: &'static str,
        def: &'static ResourceDef,
        sub: Option<String>,
        object: Value,
    ) -> Write {
        Write {
            verb,
            resource: def.plural,
            subresource: sub,
            namespace: meta_str(&object, "namespace").to_string(),
            name: meta_str(&object, "name").to_string(),
            object,
        }
    }
}

/// Output of a [`Fixture::kubectl`] run.
#[derive(Debug)]
pub struct KubectlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

// ---------------------------------------------------------------------------------------------
// Shared server state

type Reactor = Arc<dyn Fn(&Write) -> Option<Value> + Send + Sync>;

#[derive(Clone, Debug)]
struct Rule {
    verb: String,
    resource: String,
    namespace: Option<String>,
}

struct TokenPolicy {
    user: String,
    read_only: bool,
    deny: Vec<Rule>,
}

impl TokenPolicy {
    /// RBAC-like check. A rule denied in one namespace also denies the same verb at the cluster
    /// scope (`/api/v1/secrets`), since RBAC cannot grant "all namespaces but one".
    fn allows(&self, verb: &str, resource: &str, ns: &str, namespaced: bool) -> bool {
        if self.read_only && !matches!(verb, "get" | "list" | "watch") {
            return false;
        }
        !self.deny.iter().any(|r| {
            (r.verb == "*" || r.verb == verb)
                && (r.resource == "*" || r.resource == resource)
                && match &r.namespace {
                    None => true,
                    Some(n) => n == ns || (namespaced && ns.is_empty()),
                }
        })
    }
}

struct State {
    store: Store,
    tokens: HashMap<String, TokenPolicy>,
    faults: Vec<Fault>,
    requests: Vec<RequestRecord>,
    next_request_id: u64,
    reactors: Vec<(String, Duration, Reactor)>,
}

struct Shared {
    state: Mutex<State>,
    server_address: String,
    /// Print every request to stderr (env `K8S_FIXTURE_LOG=1`).
    log: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    b
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn new_uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Type-specific defaulting done by kube-apiserver on every write.
fn normalize(def: &ResourceDef, obj: &mut Value) {
    match def.plural {
        "secrets" => {
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    let raw = v.as_str().unwrap_or("").as_bytes().to_vec();
                    obj["data"][k.as_str()] =
                        json!(base64::engine::general_purpose::STANDARD.encode(raw));
                }
            }
            if obj["type"].as_str().is_none_or(str::is_empty) {
                obj["type"] = json!("Opaque");
            }
        }
        "namespaces" => {
            let name = meta_str(obj, "name").to_string();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
            }
            if obj["status"]["phase"].is_null() {
                obj["status"] = json!({"phase": "Active"});
            }
        }
        _ => {}
    }
}

/// Fills in server-owned metadata of a new object (keeps uid/creationTimestamp if present).
fn prepare_new(def: &ResourceDef, mut obj: Value) -> Value {
    obj["apiVersion"] = json!(def.api_version());
    obj["kind"] = json!(def.kind);
    if meta_str(&obj, "uid").is_empty() {
        set_meta(&mut obj, "uid", json!(new_uid()));
    }
    if meta_str(&obj, "creationTimestamp").is_empty() {
        set_meta(&mut obj, "creationTimestamp", json!(wire::now_rfc3339()));
    }
    if def.custom {
        set_meta(&mut obj, "generation", json!(1));
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("generation");
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    normalize(def, &mut obj);
    obj
}

fn without_meta_and_status(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    o
}

/// Carries server-owned metadata over from `old` and bumps `generation` on spec changes.
fn prepare_update(def: &ResourceDef, old: &Value, mut new: Value) -> Value {
    for field in [
        "uid",
        "creationTimestamp",
        "generation",
        "namespace",
        "name",
        "deletionTimestamp",
    ] {
        match old["metadata"].get(field) {
            Some(v) => set_meta(&mut new, field, v.clone()),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(field);
                }
            }
        }
    }
    set_meta(
        &mut new,
        "resourceVersion",
        old["metadata"]["resourceVersion"].clone(),
    );
    new["apiVersion"] = json!(def.api_version());
    new["kind"] = json!(def.kind);
    normalize(def, &mut new);
    if def.custom && without_meta_and_status(old) != without_meta_and_status(&new) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        set_meta(&mut new, "generation", json!(g + 1));
    }
    new
}

fn same_object(a: &Value, b: &Value) -> bool {
    let strip = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        o
    };
    strip(a) == strip(b)
}

/// Deletes an object; deleting a namespace first deletes every object in it.
fn delete_object(
    st: &mut State,
    def: &'static ResourceDef,
    ns: &str,
    name: &str,
) -> Vec<Arc<store::Event>> {
    let mut events = Vec::new();
    if def.plural == "namespaces" {
        let prefix = format!("{name}/");
        let rv = st.store.rv;
        for d in store::RESOURCES.iter().filter(|d| d.namespaced) {
            let names: Vec<String> = st
                .store
                .list_at(d, &prefix, "", rv)
                .map(|(_, o)| meta_str(o, "name").to_string())
                .collect();
            for n in names {
                events.push(st.store.commit(d, name, &n, None));
            }
        }
    }
    if st.store.current(def, ns, name).is_some() {
        events.push(st.store.commit(def, ns, name, None));
    }
    events
}

/// Writes a whole object as a controller or the test would: no preconditions, status included,
/// creates the namespace if needed. Returns the stored object.
fn upsert(st: &mut State, obj: Value) -> Value {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    let def = store::by_api_version_kind(api_version, kind)
        .unwrap_or_else(|| panic!("k8s_fixture: unsupported apiVersion/kind {api_version}/{kind}"));
    let name = meta_str(&obj, "name").to_string();
    assert!(
        !name.is_empty(),
        "k8s_fixture: object without metadata.name"
    );
    let ns = if def.namespaced {
        let ns = meta_str(&obj, "namespace");
        if ns.is_empty() { "default" } else { ns }.to_string()
    } else {
        String::new()
    };
    let mut obj = obj;
    if def.namespaced {
        set_meta(&mut obj, "namespace", json!(ns));
        let ns_def = &store::RESOURCES[0];
        if st.store.current(ns_def, "", &ns).is_none() {
            let ns_obj = prepare_new(ns_def, json!({"metadata": {"name": ns}}));
            st.store.commit(ns_def, "", &ns, Some(ns_obj));
        }
    }
    match st.store.current(def, &ns, &name).cloned() {
        Some(old) => {
            let new = prepare_update(def, &old, obj);
            if same_object(&old, &new) {
                return old;
            }
            st.store.commit(def, &ns, &name, Some(new)).object.clone()
        }
        None => {
            let new = prepare_new(def, obj);
            st.store.commit(def, &ns, &name, Some(new)).object.clone()
        }
    }
}

fn run_reactors(shared: &Arc<Shared>, write: Write) {
    let reactors: Vec<(Duration, Reactor)> = lock(&shared.state)
        .reactors
        .iter()
        .filter(|(res, _, _)| res == write.resource)
        .map(|(_, d, r)| (*d, r.clone()))
        .collect();
    for (delay, reactor) in reactors {
        let Some(result) = reactor(&write) else {
            continue;
        };
        if delay.is_zero() {
            upsert(&mut lock(&shared.state), result);
        } else {
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                upsert(&mut lock(&shared.state), result);
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Kubeconfig

struct KubeContext {
    name: String,
    server: String,
    token: String,
}

fn yaml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn render_kubeconfig(contexts: &[KubeContext], current: &str, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let mut clusters = String::new();
    let mut users = String::new();
    let mut ctxs = String::new();
    for c in contexts {
        let n = yaml_str(&c.name);
        clusters += &format!(
            "- name: {n}\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n",
            yaml_str(&c.server)
        );
        users += &format!("- name: {n}\n  user:\n    token: {}\n", yaml_str(&c.token));
        ctxs += &format!(
            "- name: {n}\n  context:\n    cluster: {n}\n    user: {n}\n    namespace: default\n"
        );
    }
    format!(
        "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n{clusters}users:\n{users}contexts:\n{ctxs}current-context: {}\n",
        yaml_str(current)
    )
}

// ---------------------------------------------------------------------------------------------
// The fixture

/// A running fixture API server plus the kubeconfig that reaches it. Stopped on drop.
pub struct Fixture {
    shared: Arc<Shared>,
    addr: SocketAddr,
    ca_pem: String,
    dir: tempfile::TempDir,
    kubeconfig_path: PathBuf,
    contexts: Mutex<(Vec<KubeContext>, String)>,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fixture {
    /// Starts the server on 127.0.0.1 (free port) and writes the kubeconfig.
    pub async fn start() -> Fixture {
        Fixture::start_blocking()
    }

    /// Same as [`Fixture::start`], for sync tests.
    pub fn start_blocking() -> Fixture {
        let tls = tls::generate();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = std_listener.local_addr().expect("listener address");

        let mut tokens = HashMap::new();
        tokens.insert(
            ADMIN_TOKEN.to_string(),
            TokenPolicy {
                user: ADMIN_USER.to_string(),
                read_only: false,
                deny: Vec::new(),
            },
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store: Store::new(),
                tokens,
                faults: Vec::new(),
                requests: Vec::new(),
                next_request_id: 0,
                reactors: Vec::new(),
            }),
            server_address: addr.to_string(),
            log: std::env::var_os("K8S_FIXTURE_LOG").is_some_and(|v| v == "1"),
        });
        {
            let mut st = lock(&shared.state);
            for ns in ["default", "kube-system", "kube-public"] {
                upsert(
                    &mut st,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                );
            }
        }

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("k8s-fixture")
            .enable_all()
            .build()
            .expect("fixture runtime");
        let handle = runtime.handle().clone();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
        let serve_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("k8s-fixture-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                    tokio::select! {
                        _ = stop_rx => {}
                        _ = serve(listener, acceptor, serve_shared) => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .expect("spawn fixture thread");

        let dir = tempfile::Builder::new()
            .prefix("k8s-fixture-")
            .tempdir()
            .expect("tempdir");
        let kubeconfig_path = dir.path().join("kubeconfig");
        let fixture = Fixture {
            shared,
            addr,
            ca_pem: tls.ca_pem,
            dir,
            kubeconfig_path,
            contexts: Mutex::new((
                vec![KubeContext {
                    name: CONTEXT.into(),
                    server: format!("https://{addr}"),
                    token: ADMIN_TOKEN.into(),
                }],
                CONTEXT.into(),
            )),
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        fixture.write_kubeconfig();
        fixture
    }

    // ----- addresses and kubeconfig

    /// `https://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// PEM of the CA that signed the server certificate (SANs 127.0.0.1 and localhost).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Path of the kubeconfig (context [`CONTEXT`], `certificate-authority-data`, token user).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The fixture's temporary directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn write_kubeconfig(&self) {
        let c = lock(&self.contexts);
        let text = render_kubeconfig(&c.0, &c.1, &self.ca_pem);
        std::fs::write(&self.kubeconfig_path, text).expect("write kubeconfig");
    }

    fn push_context(&self, name: &str, server: String, token: &str) {
        {
            let mut c = lock(&self.contexts);
            c.0.retain(|k| k.name != name);
            c.0.push(KubeContext {
                name: name.into(),
                server,
                token: token.into(),
            });
        }
        self.write_kubeconfig();
    }

    /// Adds a context `name` for this server that authenticates with `token`
    /// (e.g. [`ADMIN_TOKEN`], or one from [`Fixture::add_token`]).
    pub fn add_context(&self, name: &str, token: &str) {
        self.push_context(name, self.url(), token);
    }

    /// Adds a context whose server refuses connections (`https://127.0.0.1:1`).
    pub fn add_unreachable_context(&self, name: &str) {
        self.push_context(name, "https://127.0.0.1:1".into(), ADMIN_TOKEN);
    }

    /// Adds a context whose server accepts TCP connections but never answers (timeouts).
    pub fn add_hanging_context(&self, name: &str) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind hanging listener");
        l.set_nonblocking(true).expect("nonblocking");
        let addr = l.local_addr().expect("hanging address");
        self.handle.spawn(async move {
            let Ok(listener) = tokio::net::TcpListener::from_std(l) else {
                return;
            };
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        self.push_context(name, format!("https://{addr}"), ADMIN_TOKEN);
    }

    /// Sets the kubeconfig's `current-context`.
    pub fn set_current_context(&self, name: &str) {
        lock(&self.contexts).1 = name.into();
        self.write_kubeconfig();
    }

    /// A kube `Config` for a context of the kubeconfig, loaded the production way
    /// (`Kubeconfig::read_from` + `Config::from_custom_kubeconfig`).
    pub async fn kube_config(&self, context: &str) -> kube::Config {
        tls::install_ring();
        let kc =
            kube::config::Kubeconfig::read_from(&self.kubeconfig_path).expect("read kubeconfig");
        let opts = kube::config::KubeConfigOptions {
            context: Some(context.to_string()),
            ..Default::default()
        };
        kube::Config::from_custom_kubeconfig(kc, &opts)
            .await
            .expect("kube config from kubeconfig")
    }

    /// A kube client for [`CONTEXT`] (the admin token).
    pub async fn client(&self) -> kube::Client {
        self.client_for(CONTEXT).await
    }

    /// A kube client for a context of the kubeconfig.
    pub async fn client_for(&self, context: &str) -> kube::Client {
        kube::Client::try_from(self.kube_config(context).await).expect("kube client")
    }

    /// `kubectl --kubeconfig K --cache-dir DIR --request-timeout=30s`, with `HOME` in the
    /// fixture's temporary directory and no `KUBECONFIG`/proxy variables. Add args and run.
    pub fn kubectl_command(&self) -> std::process::Command {
        let mut c = std::process::Command::new("kubectl");
        c.arg("--kubeconfig")
            .arg(&self.kubeconfig_path)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kube-cache"))
            .arg("--request-timeout=30s")
            .env("HOME", self.dir.path())
            .env_remove("KUBECONFIG");
        for v in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            c.env_remove(v);
        }
        c
    }

    /// Runs kubectl with `args` (blocking; fine in async tests, the server has its own thread).
    pub fn kubectl(&self, args: &[&str]) -> KubectlOutput {
        let out = self
            .kubectl_command()
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run kubectl");
        KubectlOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    // ----- authentication and authorization

    /// Adds a bearer token for `user` with full access (restrict it with [`Fixture::forbid_token`]).
    pub fn add_token(&self, token: &str, user: &str) {
        lock(&self.shared.state).tokens.insert(
            token.into(),
            TokenPolicy {
                user: user.into(),
                read_only: false,
                deny: Vec::new(),
            },
        );
    }

    /// Adds a bearer token for `user` that may only get, list and watch.
    pub fn add_read_only_token(&self, token: &str, user: &str) {
        lock(&self.shared.state).tokens.insert(
            token.into(),
            TokenPolicy {
                user: user.into(),
                read_only: true,
                deny: Vec::new(),
            },
        );
    }

    /// Removes a token: it gets 401 from then on.
    pub fn remove_token(&self, token: &str) {
        lock(&self.shared.state).tokens.remove(token);
    }

    /// Denies `verb` (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection` or `*`) on `resource` (`secrets`, `certificates/status`, or `*`) in
    /// `namespace` (None: everywhere) to the default token [`ADMIN_TOKEN`]. A namespaced denial
    /// also denies the same verb across all namespaces (`/api/v1/secrets`), as RBAC would.
    pub fn forbid(&self, verb: &str, resource: &str, namespace: Option<&str>) {
        self.forbid_token(ADMIN_TOKEN, verb, resource, namespace);
    }

    /// [`Fixture::forbid`] for another token.
    pub fn forbid_token(&self, token: &str, verb: &str, resource: &str, namespace: Option<&str>) {
        let mut st = lock(&self.shared.state);
        let policy = st
            .tokens
            .get_mut(token)
            .unwrap_or_else(|| panic!("k8s_fixture: unknown token {token}"));
        policy.deny.push(Rule {
            verb: verb.into(),
            resource: resource.into(),
            namespace: namespace.map(str::to_string),
        });
    }

    /// Removes every denial of a token.
    pub fn clear_forbidden(&self, token: &str) {
        if let Some(p) = lock(&self.shared.state).tokens.get_mut(token) {
            p.deny.clear();
        }
    }

    // ----- objects

    /// Stores a typed object (create or replace, status included, namespace created if missing).
    /// Returns the stored object with server fields (resourceVersion, uid, ...).
    pub fn insert<K>(&self, obj: &K) -> Value
    where
        K: k8s_openapi::Resource + serde::Serialize,
    {
        let mut v = serde_json::to_value(obj).expect("serialize object");
        v["apiVersion"] = json!(K::API_VERSION);
        v["kind"] = json!(K::KIND);
        self.insert_value(v)
    }

    /// Stores an object given as JSON (needs apiVersion, kind, metadata.name; namespace defaults
    /// to "default"). Same semantics as [`Fixture::insert`]. Does not trigger reactors.
    pub fn insert_value(&self, obj: Value) -> Value {
        upsert(&mut lock(&self.shared.state), obj)
    }

    /// The stored object, None if absent. `resource` is the plural ("secrets", "certificates").
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = def_of(resource);
        let ns = if def.namespaced { namespace } else { "" };
        lock(&self.shared.state)
            .store
            .current(def, ns, name)
            .cloned()
    }

    /// [`Fixture::get`] deserialized, e.g. `get_as::<Secret>("secrets", "ns", "x")`.
    pub fn get_as<K: serde::de::DeserializeOwned>(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<K> {
        self.get(resource, namespace, name)
            .map(|v| serde_json::from_value(v).expect("deserialize stored object"))
    }

    /// All stored objects of a resource (optionally of one namespace), in key order.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let def = def_of(resource);
        let prefix = match namespace {
            Some(ns) if def.namespaced => format!("{ns}/"),
            _ => String::new(),
        };
        let st = lock(&self.shared.state);
        st.store
            .list_at(def, &prefix, "", st.store.rv)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Mutates a stored object as a controller would (spec, status, metadata; no preconditions).
    /// Bumps resourceVersion (and generation on spec changes) and notifies watchers.
    /// Panics if the object does not exist.
    pub fn modify(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Value {
        let mut obj = self
            .get(resource, namespace, name)
            .unwrap_or_else(|| panic!("k8s_fixture: {resource} {namespace}/{name} not found"));
        f(&mut obj);
        self.insert_value(obj)
    }

    /// Deletes a stored object (and, for a namespace, everything in it). Returns it if it existed.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = def_of(resource);
        let ns = if def.namespaced { namespace } else { "" };
        let mut st = lock(&self.shared.state);
        let old = st.store.current(def, ns, name).cloned();
        delete_object(&mut st, def, ns, name);
        old
    }

    /// Simulates cert-manager finishing an issuance: see [`set_ready_status`].
    pub fn set_certificate_ready(
        &self,
        namespace: &str,
        name: &str,
        not_after: &str,
        revision: i64,
    ) -> Value {
        self.modify("certificates", namespace, name, |c| {
            set_ready_status(c, not_after, revision)
        })
    }

    /// Registers a reactor called after every client write (create/update/patch/delete through
    /// the API) to `resource`. If it returns an object, that object is stored `delay` later as a
    /// controller write (see [`Fixture::insert_value`]). Use it to simulate cert-manager.
    pub fn on_write<F>(&self, resource: &str, delay: Duration, f: F)
    where
        F: Fn(&Write) -> Option<Value> + Send + Sync + 'static,
    {
        def_of(resource);
        lock(&self.shared.state)
            .reactors
            .push((resource.to_string(), delay, Arc::new(f)));
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.shared.state).store.rv
    }

    /// Compacts history like etcd does: every continue token, exact list and watch at a
    /// resourceVersion issued so far becomes too old (410 Expired / ERROR event).
    pub fn expire_continue_tokens(&self) {
        let mut st = lock(&self.shared.state);
        st.store.rv += 1;
        st.store.compacted = st.store.rv;
    }

    // ----- faults and the request log

    pub fn add_fault(&self, fault: Fault) {
        lock(&self.shared.state).faults.push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.state).faults.clear();
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.state).requests.clone()
    }

    /// Number of requests received with this method and exact path (query ignored).
    pub fn request_count(&self, method: &str, path: &str) -> usize {
        lock(&self.shared.state)
            .requests
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
            .count()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.state).requests.clear();
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn def_of(resource: &str) -> &'static ResourceDef {
    store::by_plural(resource)
        .unwrap_or_else(|| panic!("k8s_fixture: unsupported resource {resource}"))
}

async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let shared = shared.clone();
                conns.spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let svc = hyper::service::service_fn(move |req| server::handle(shared.clone(), req));
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Object builders

/// A `kubernetes.io/tls` Secret with `tls.crt` / `tls.key` (PEM strings, base64-encoded here).
pub fn tls_secret(namespace: &str, name: &str, cert_pem: &str, key_pem: &str) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(cert_pem), "tls.key": b64(key_pem)},
    })
}

/// A cert-manager `Certificate` (no status) issuing into `secret_name` via Issuer `issuer`.
pub fn certificate(
    namespace: &str,
    name: &str,
    secret_name: &str,
    issuer: &str,
    dns_names: &[&str],
) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "secretName": secret_name,
            "dnsNames": dns_names,
            "issuerRef": {"name": issuer, "kind": "Issuer", "group": "cert-manager.io"},
        },
    })
}

/// Sets a Certificate's status the way cert-manager does after a successful issuance:
/// `Ready=True` (observedGeneration = generation), no `Issuing` condition, `notAfter`,
/// `revision`, and `notBefore`/`renewalTime` left as they are.
pub fn set_ready_status(cert: &mut Value, not_after: &str, revision: i64) {
    let generation = cert["metadata"]["generation"].as_i64().unwrap_or(1);
    let mut conditions: Vec<Value> = cert["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "Ready" && c["type"] != "Issuing")
        .collect();
    conditions.push(json!({
        "type": "Ready",
        "status": "True",
        "reason": "Ready",
        "message": "Certificate is up to date and has not expired",
        "lastTransitionTime": wire::now_rfc3339(),
        "observedGeneration": generation,
    }));
    if !cert["status"].is_object() {
        cert["status"] = json!({});
    }
    cert["status"]["conditions"] = json!(conditions);
    cert["status"]["notAfter"] = json!(not_after);
    cert["status"]["revision"] = json!(revision);
}

/// The current time as Kubernetes writes timestamps (`2025-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    wire::now_rfc3339()
}
