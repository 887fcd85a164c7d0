//! The HTTP side: routing, authentication/authorization, fault injection, the REST verbs,
//! and watch streams.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{header, Request, Response};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::proto;
use super::store::{self, key_path, meta_str, set_meta, EventType, Filter, ResourceDef};
use super::wire::{self, ApiError};
use super::{lock, FaultAction, RequestRecord, Shared, State, Write};

pub type Body = BoxBody<Bytes, Infallible>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    let mut body = serde_json::to_vec(v).unwrap_or_default();
    body.push(b'\n');
    let mut resp = Response::new(full(body));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.code, &e.body);
    if let Some(secs) = e.retry_after {
        if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

fn text_response(code: u16, text: &str) -> Response<Body> {
    let mut resp = Response::new(full(text.to_string()));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response body fed by a channel: used for watch streams.
struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Entry point for every HTTP request.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let method = req.method().as_str().to_string();
    let req_version = req.version();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let header_str = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let accept = header_str(header::ACCEPT);
    let content_type = header_str(header::CONTENT_TYPE);
    let (accept_log, ct_log) = (accept.clone(), content_type.clone());
    let token = header_str(header::AUTHORIZATION)
        .strip_prefix("Bearer ")
        .map(|t| t.trim().to_string());

    // Record the request, resolve the user, pick the faults that apply.
    let (index, user, faults) = {
        let mut st = lock(&shared.state);
        let user = token
            .as_ref()
            .and_then(|t| st.tokens.get(t))
            .map(|p| p.user.clone());
        st.next_request_id += 1;
        let index = st.next_request_id;
        st.requests.push(RequestRecord {
            id: index,
            method: method.clone(),
            path: path.clone(),
            query: query.clone(),
            user: user.clone(),
            status: 0,
        });
        let mut actions = Vec::new();
        for f in st.faults.iter_mut() {
            let method_ok = f
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&method));
            if method_ok && path.starts_with(&f.path_prefix) && f.remaining != Some(0) {
                if let Some(n) = f.remaining.as_mut() {
                    *n -= 1;
                }
                actions.push(f.action.clone());
            }
        }
        (index, user, actions)
    };

    let mut injected: Option<ApiError> = None;
    for action in faults {
        match action {
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::TooManyRequests { retry_after_secs } if injected.is_none() => {
                injected = Some(wire::too_many_requests(retry_after_secs))
            }
            FaultAction::InternalError if injected.is_none() => {
                injected = Some(wire::internal_error("injected fault"))
            }
            FaultAction::Status(code) if injected.is_none() => {
                injected = Some(wire::other_status(code))
            }
            _ => {}
        }
    }

    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };

    let response = if let Some(e) = injected {
        error_response(&e)
    } else if let Some(user) = user {
        let token = token.unwrap_or_default();
        let ctx = Ctx {
            method,
            path,
            query: wire::parse_query(&query),
            accept,
            content_type,
            token,
            user,
            body,
        };
        route(&shared, ctx).await
    } else {
        error_response(&wire::unauthorized())
    };

    let status = response.status().as_u16();
    let mut st = lock(&shared.state);
    if let Some(r) = st.requests.iter_mut().rev().find(|r| r.id == index) {
        r.status = status;
        if shared.log {
            eprintln!("k8s-fixture: {} {}?{} -> {} ({:?}, accept {accept_log:?}, content-type {ct_log:?})", r.method, r.path, r.query, status, req_version);
        }
    }
    Ok(response)
}

struct Ctx {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    accept: String,
    content_type: String,
    token: String,
    user: String,
    body: Bytes,
}

impl Ctx {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    fn flag(&self, key: &str) -> bool {
        matches!(self.param(key), Some("true") | Some("1"))
    }
}

/// A parsed resource URL.
struct Target {
    def: &'static ResourceDef,
    /// "" for cluster-scoped resources and all-namespaces collections.
    ns: String,
    name: Option<String>,
    sub: Option<String>,
}

async fn route(shared: &Arc<Shared>, ctx: Ctx) -> Response<Body> {
    let segs: Vec<String> = ctx
        .path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| wire::percent_decode(s, false))
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    let is_get = ctx.method == "GET";
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        [] if is_get => {
            let mut paths = vec!["/api".to_string(), "/api/v1".into(), "/apis".into()];
            for (g, v) in store::GROUPS {
                paths.push(format!("/apis/{g}"));
                paths.push(format!("/apis/{g}/{v}"));
            }
            paths.extend(["/healthz", "/livez", "/readyz", "/version"].map(String::from));
            return json_response(200, &json!({ "paths": paths }));
        }
        ["version"] if is_get => return json_response(200, &wire::version_doc()),
        ["healthz" | "livez" | "readyz"] if is_get => return text_response(200, "ok"),
        ["api"] if is_get => {
            return json_response(200, &wire::api_versions(&shared.server_address))
        }
        ["apis"] if is_get => return json_response(200, &wire::api_group_list()),
        ["apis", g] if is_get => {
            return match wire::api_group(g) {
                Some(d) => json_response(200, &d),
                None => error_response(&wire::path_not_found()),
            }
        }
        ["apis", "authorization.k8s.io", "v1", "selfsubjectaccessreviews"] => {
            return match ctx.method.as_str() {
                "POST" => match self_subject_access_review(shared, &ctx) {
                    Ok(v) => json_response(201, &v),
                    Err(e) => error_response(&e),
                },
                _ => error_response(&wire::method_not_allowed()),
            }
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        ["api" | "apis", ..] | ["openapi", ..] => return error_response(&wire::path_not_found()),
        _ => return text_response(404, "404 page not found\n"),
    };
    if rest.is_empty() {
        return match wire::resource_list(group, version) {
            Some(d) if is_get => json_response(200, &d),
            Some(_) => error_response(&wire::method_not_allowed()),
            None => error_response(&wire::path_not_found()),
        };
    }
    let Some(target) = parse_target(group, version, rest) else {
        return error_response(&wire::path_not_found());
    };
    match serve_resource(shared, &ctx, target).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

/// `kubectl auth can-i` and clients probing their permissions: answered from the token's policy.
fn self_subject_access_review(shared: &Arc<Shared>, ctx: &Ctx) -> Result<Value, ApiError> {
    let mut review = if ctx
        .content_type
        .starts_with("application/vnd.kubernetes.protobuf")
    {
        let spec = proto::self_subject_access_review_spec(&ctx.body).ok_or_else(|| {
            wire::bad_request("unable to decode protobuf SelfSubjectAccessReview")
        })?;
        json!({ "spec": spec })
    } else {
        parse_body(ctx)?
    };
    let st = lock(&shared.state);
    let policy = st.tokens.get(&ctx.token).ok_or_else(wire::unauthorized)?;
    let attrs = &review["spec"]["resourceAttributes"];
    let allowed = if attrs.is_object() {
        let s = |k: &str| attrs[k].as_str().unwrap_or("").to_string();
        let (group, plural, sub) = (s("group"), s("resource"), s("subresource"));
        let resource = if sub.is_empty() {
            plural.clone()
        } else {
            format!("{plural}/{sub}")
        };
        let namespaced = store::RESOURCES
            .iter()
            .find(|d| d.group == group && d.plural == plural)
            .is_none_or(|d| d.namespaced);
        policy.allows(&s("verb"), &resource, &s("namespace"), namespaced)
    } else {
        true
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    review["metadata"] = json!({});
    review["status"] = json!({"allowed": allowed});
    Ok(review)
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let namespaced = |plural: &str| store::find(group, version, plural).filter(|d| d.namespaced);
    let (def, ns, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced(plural).is_some() => {
            (namespaced(plural)?, ns.to_string(), tail)
        }
        [plural, tail @ ..] => {
            let def = store::find(group, version, plural)?;
            if def.namespaced && !tail.is_empty() {
                return None;
            }
            (def, String::new(), tail)
        }
        [] => return None,
    };
    let (name, sub) = match tail {
        [] => (None, None),
        [name] => (Some(name.to_string()), None),
        [name, sub] if *sub == "status" && def.status => {
            (Some(name.to_string()), Some(sub.to_string()))
        }
        _ => return None,
    };
    Some(Target { def, ns, name, sub })
}

fn verb_of(ctx: &Ctx, t: &Target) -> Result<&'static str, ApiError> {
    let all_namespaces = t.def.namespaced && t.ns.is_empty();
    let verb = match (ctx.method.as_str(), t.name.is_some()) {
        ("GET", false) if ctx.flag("watch") => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", false) if !all_namespaces => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) if !all_namespaces => "deletecollection",
        _ => return Err(wire::method_not_allowed()),
    };
    if t.sub.is_some() && !matches!(verb, "get" | "update" | "patch") {
        return Err(wire::method_not_allowed());
    }
    Ok(verb)
}

fn authorize(st: &State, ctx: &Ctx, t: &Target, verb: &str) -> Result<(), ApiError> {
    let Some(policy) = st.tokens.get(&ctx.token) else {
        return Err(wire::unauthorized());
    };
    let resource = match &t.sub {
        Some(s) => format!("{}/{}", t.def.plural, s),
        None => t.def.plural.to_string(),
    };
    if policy.allows(verb, &resource, &t.ns, t.def.namespaced) {
        return Ok(());
    }
    let scope = if t.ns.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", t.ns)
    };
    let why = format!(
        "User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {}",
        policy.user, verb, resource, t.def.group, scope
    );
    let name = t.name.clone().unwrap_or_default();
    let message = if name.is_empty() {
        format!("{} is forbidden: {}", t.def.qualified(), why)
    } else {
        format!("{} \"{}\" is forbidden: {}", t.def.qualified(), name, why)
    };
    Err(ApiError::status(
        403,
        "Forbidden",
        message,
        Some(wire::details(t.def, &name)),
    ))
}

async fn serve_resource(
    shared: &Arc<Shared>,
    ctx: &Ctx,
    t: Target,
) -> Result<Response<Body>, ApiError> {
    let verb = verb_of(ctx, &t)?;
    if verb == "watch" {
        authorize(&lock(&shared.state), ctx, &t, verb)?;
        return watch(shared, ctx, &t);
    }
    let mut writes = Vec::new();
    let result = {
        let mut st = lock(&shared.state);
        authorize(&st, ctx, &t, verb)?;
        match verb {
            "list" => list(&st, ctx, &t).map(|(code, v)| json_response(code, &v)),
            "get" => get(&st, ctx, &t).map(|v| json_response(200, &v)),
            "create" => {
                create(&mut st, ctx, &t, &mut writes).map(|(code, v)| json_response(code, &v))
            }
            "update" | "patch" => {
                update(&mut st, ctx, &t, verb, &mut writes).map(|v| json_response(200, &v))
            }
            "delete" => delete(&mut st, ctx, &t, &mut writes).map(|v| json_response(200, &v)),
            "deletecollection" => {
                delete_collection(&mut st, ctx, &t, &mut writes).map(|v| json_response(200, &v))
            }
            _ => Err(wire::method_not_allowed()),
        }
    };
    for w in writes {
        super::run_reactors(shared, w);
    }
    result
}

fn dry_run(ctx: &Ctx) -> bool {
    ctx.param("dryRun").is_some_and(|v| v == "All")
}

fn build_filter(ctx: &Ctx, def: &ResourceDef) -> Result<Filter, ApiError> {
    let labels = match ctx.param("labelSelector") {
        Some(s) => store::parse_label_selector(s).map_err(wire::bad_request)?,
        None => Vec::new(),
    };
    let fields = match ctx.param("fieldSelector") {
        Some(s) => store::parse_field_selector(def, s).map_err(wire::bad_request)?,
        None => Vec::new(),
    };
    Ok(Filter { labels, fields })
}

fn list_prefix(t: &Target) -> String {
    if t.def.namespaced && !t.ns.is_empty() {
        format!("{}/", t.ns)
    } else {
        String::new()
    }
}

/// Items as they appear inside a list: built-in types carry no kind/apiVersion there.
fn list_item(def: &ResourceDef, o: &Value) -> Value {
    let mut o = o.clone();
    if !def.custom {
        if let Some(m) = o.as_object_mut() {
            m.remove("kind");
            m.remove("apiVersion");
        }
    }
    o
}

fn parse_rv(s: &str) -> Result<u64, ApiError> {
    s.parse::<u64>()
        .map_err(|_| wire::bad_request(format!("invalid resource version: {s}")))
}

fn list(st: &State, ctx: &Ctx, t: &Target) -> Result<(u16, Value), ApiError> {
    let def = t.def;
    let filter = build_filter(ctx, def)?;
    let mut limit = match ctx.param("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<usize>()
            .map_err(|_| wire::bad_request(format!("invalid limit: {l}")))?,
        _ => 0,
    };
    let rv_param = ctx.param("resourceVersion").unwrap_or("");
    let rv_match = ctx.param("resourceVersionMatch").unwrap_or("");
    let current = st.store.rv;
    let (rv, start) = match ctx.param("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            if !rv_param.is_empty() && rv_param != "0" {
                return Err(wire::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = wire::decode_continue(token)?;
            if rv < st.store.compacted {
                let mut e = wire::expired_continue();
                e.body["metadata"] = json!({"continue": wire::encode_continue(current, &start)});
                return Err(e);
            }
            (rv, start)
        }
        None if rv_param.is_empty() => (current, String::new()),
        None if rv_param == "0" => {
            // Served from the "watch cache": any version, limit ignored (like kube-apiserver).
            limit = 0;
            (current, String::new())
        }
        None => {
            let n = parse_rv(rv_param)?;
            if n > current {
                return Err(wire::too_large_rv(n, current));
            }
            let exact = rv_match == "Exact" || (rv_match.is_empty() && limit > 0);
            if exact {
                if n < st.store.compacted {
                    return Err(wire::too_old_rv(n, st.store.compacted));
                }
                (n, String::new())
            } else {
                (current, String::new())
            }
        }
    };

    let prefix = list_prefix(t);
    let mut iter = st.store.list_at(def, &prefix, &start, rv).peekable();
    let mut items = Vec::new();
    let mut cont = None;
    let mut remaining = None;
    while let Some((key, obj)) = iter.next() {
        if filter.matches(obj) {
            items.push(obj);
        }
        if limit > 0 && items.len() == limit {
            if iter.peek().is_some() {
                cont = Some(wire::encode_continue(rv, &format!("{key}\u{0}")));
                if filter.is_empty() {
                    remaining = Some(iter.count());
                }
            }
            break;
        }
    }
    let mut list_meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        list_meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        list_meta["remainingItemCount"] = json!(r);
    }
    if ctx.accept.contains("as=Table") {
        let objs: Vec<Value> = items.into_iter().cloned().collect();
        let include = ctx.param("includeObject").unwrap_or("Metadata");
        return Ok((200, wire::table(def, &objs, list_meta, include)));
    }
    if ctx.accept.contains("as=PartialObjectMetadataList") {
        let items: Vec<Value> = items
            .iter()
            .map(|o| json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}))
            .collect();
        return Ok((
            200,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "items": items}),
        ));
    }
    let items: Vec<Value> = items.into_iter().map(|o| list_item(def, o)).collect();
    Ok((
        200,
        json!({
            "kind": format!("{}List", def.kind),
            "apiVersion": def.api_version(),
            "metadata": list_meta,
            "items": items,
        }),
    ))
}

fn get(st: &State, ctx: &Ctx, t: &Target) -> Result<Value, ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    let obj = st
        .store
        .current(t.def, &t.ns, name)
        .ok_or_else(|| wire::not_found(t.def, name))?;
    if ctx.accept.contains("as=Table") {
        let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion")});
        let include = ctx.param("includeObject").unwrap_or("Metadata");
        return Ok(wire::table(t.def, std::slice::from_ref(obj), meta, include));
    }
    if ctx.accept.contains("as=PartialObjectMetadata") {
        return Ok(
            json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}),
        );
    }
    Ok(obj.clone())
}

fn parse_body(ctx: &Ctx) -> Result<Value, ApiError> {
    if ctx.content_type.contains("protobuf") || ctx.content_type.contains("yaml") {
        return Err(wire::unsupported_media_type(&ctx.content_type));
    }
    let v: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| wire::bad_request(format!("error decoding request body: {e}")))?;
    if !v.is_object() {
        return Err(wire::bad_request("the request body must be a JSON object"));
    }
    Ok(v)
}

fn check_type_meta(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let av = def.api_version();
    match obj["apiVersion"].as_str() {
        Some(a) if a != av => {
            return Err(wire::bad_request(format!(
                "the API version in the data ({a}) does not match the expected API version ({av})"
            )))
        }
        _ => obj["apiVersion"] = json!(av),
    }
    match obj["kind"].as_str() {
        Some(k) if k != def.kind => {
            return Err(wire::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )))
        }
        _ => obj["kind"] = json!(def.kind),
    }
    Ok(())
}

fn create(
    st: &mut State,
    ctx: &Ctx,
    t: &Target,
    writes: &mut Vec<Write>,
) -> Result<(u16, Value), ApiError> {
    let def = t.def;
    let mut obj = parse_body(ctx)?;
    check_type_meta(def, &mut obj)?;
    if !meta_str(&obj, "resourceVersion").is_empty() {
        return Err(wire::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    if let Some(m) = obj["metadata"].as_object_mut() {
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
        ] {
            m.remove(field);
        }
    }
    let body_ns = meta_str(&obj, "namespace").to_string();
    if def.namespaced && !body_ns.is_empty() && body_ns != t.ns {
        return Err(wire::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut name = meta_str(&obj, "name").to_string();
    if name.is_empty() {
        let generate = meta_str(&obj, "generateName").to_string();
        if generate.is_empty() {
            return Err(wire::invalid(
                def,
                "",
                "metadata.name",
                "FieldValueRequired",
                "Required value: name or generateName is required",
            ));
        }
        name = format!("{generate}{}", super::random_suffix());
        set_meta(&mut obj, "name", json!(name));
    }
    if def.namespaced {
        set_meta(&mut obj, "namespace", json!(t.ns));
        if st.store.current(store_ns_def(), "", &t.ns).is_none() {
            return Err(wire::namespace_not_found(&t.ns));
        }
    }
    if st.store.current(def, &t.ns, &name).is_some() {
        return Err(wire::already_exists(def, &name));
    }
    if let Some(m) = obj.as_object_mut() {
        if def.status {
            m.remove("status");
        }
    }
    let obj = super::prepare_new(def, obj);
    if dry_run(ctx) {
        return Ok((201, obj));
    }
    let ev = st.store.commit(def, &t.ns, &name, Some(obj));
    writes.push(Write::new("create", def, None, ev.object.clone()));
    Ok((201, ev.object.clone()))
}

fn store_ns_def() -> &'static ResourceDef {
    &store::RESOURCES[0]
}

fn update(
    st: &mut State,
    ctx: &Ctx,
    t: &Target,
    verb: &'static str,
    writes: &mut Vec<Write>,
) -> Result<Value, ApiError> {
    let def = t.def;
    let name = t.name.clone().unwrap_or_default();
    let old = st
        .store
        .current(def, &t.ns, &name)
        .cloned()
        .ok_or_else(|| wire::not_found(def, &name))?;
    let mut candidate = if verb == "patch" {
        let mut patched = old.clone();
        apply_patch(ctx, &mut patched)?;
        patched
    } else {
        parse_body(ctx)?
    };
    check_type_meta(def, &mut candidate)?;
    let body_name = meta_str(&candidate, "name");
    if body_name != name {
        return Err(wire::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let body_ns = meta_str(&candidate, "namespace");
    if def.namespaced && !body_ns.is_empty() && body_ns != t.ns {
        return Err(wire::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let rv = meta_str(&candidate, "resourceVersion").to_string();
    if rv.is_empty() {
        if def.custom {
            return Err(wire::invalid(
                def,
                &name,
                "metadata.resourceVersion",
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
            ));
        }
    } else if rv != meta_str(&old, "resourceVersion") {
        return Err(wire::conflict(def, &name));
    }
    let new = if t.sub.is_some() {
        // Status subresource: only .status is taken from the request.
        let mut new = old.clone();
        match candidate.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        new
    } else {
        let mut new = candidate;
        if def.status {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        new
    };
    let new = super::prepare_update(def, &old, new);
    if super::same_object(&old, &new) || dry_run(ctx) {
        return Ok(if dry_run(ctx) { new } else { old });
    }
    let ev = st.store.commit(def, &t.ns, &name, Some(new));
    writes.push(Write::new(verb, def, t.sub.clone(), ev.object.clone()));
    Ok(ev.object.clone())
}

fn apply_patch(ctx: &Ctx, target: &mut Value) -> Result<(), ApiError> {
    let ct = ctx.content_type.split(';').next().unwrap_or("").trim();
    let patch: Value = serde_json::from_slice(&ctx.body)
        .map_err(|e| wire::bad_request(format!("error decoding patch: {e}")))?;
    match ct {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            merge_patch(target, &patch);
            Ok(())
        }
        "application/json-patch+json" => json_patch(target, &patch),
        other => Err(wire::unsupported_media_type(other)),
    }
}

/// RFC 7386 merge patch (also used, approximately, for strategic merge patches).
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            for (k, v) in p {
                if k.starts_with('$') {
                    continue;
                }
                if v.is_null() {
                    if let Some(m) = target.as_object_mut() {
                        m.remove(k);
                    }
                } else {
                    merge_patch(&mut target[k.as_str()], v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// RFC 6902 JSON patch: add, remove, replace, test.
fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| wire::bad_request("json patch must be an array"))?;
    for op in ops {
        let path = op["path"].as_str().unwrap_or("");
        let kind = op["op"].as_str().unwrap_or("");
        let (parent_path, last) = match path.rfind('/') {
            Some(i) => (
                &path[..i],
                path[i + 1..].replace("~1", "/").replace("~0", "~"),
            ),
            None => {
                return Err(wire::bad_request(format!(
                    "invalid json patch path {path:?}"
                )))
            }
        };
        match kind {
            "test" => {
                if target.pointer(path) != Some(&op["value"]) {
                    return Err(ApiError::status(
                        422,
                        "Invalid",
                        format!("the server rejected our request due to an error in our request: testing value {path} failed"),
                        None,
                    ));
                }
            }
            "add" | "replace" | "remove" => {
                let parent = target
                    .pointer_mut(parent_path)
                    .ok_or_else(|| wire::bad_request(format!("doc is missing path: {path:?}")))?;
                match parent {
                    Value::Object(m) => {
                        if kind == "remove" {
                            m.remove(&last).ok_or_else(|| {
                                wire::bad_request(format!("doc is missing key: {path}"))
                            })?;
                        } else {
                            m.insert(last, op["value"].clone());
                        }
                    }
                    Value::Array(a) => {
                        let idx = if last == "-" {
                            a.len()
                        } else {
                            last.parse::<usize>()
                                .map_err(|_| wire::bad_request(format!("invalid index {last}")))?
                        };
                        match kind {
                            "add" if idx <= a.len() => a.insert(idx, op["value"].clone()),
                            "replace" if idx < a.len() => a[idx] = op["value"].clone(),
                            "remove" if idx < a.len() => {
                                a.remove(idx);
                            }
                            _ => {
                                return Err(wire::bad_request(format!(
                                    "index out of range: {path}"
                                )))
                            }
                        }
                    }
                    _ => return Err(wire::bad_request(format!("doc is missing path: {path:?}"))),
                }
            }
            other => {
                return Err(wire::bad_request(format!(
                    "unsupported json patch op {other:?}"
                )))
            }
        }
    }
    Ok(())
}

fn success_status(def: &ResourceDef, name: &str, uid: &str) -> Value {
    let mut d = wire::details(def, name);
    d["uid"] = json!(uid);
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": d})
}

fn delete(
    st: &mut State,
    ctx: &Ctx,
    t: &Target,
    writes: &mut Vec<Write>,
) -> Result<Value, ApiError> {
    let def = t.def;
    let name = t.name.clone().unwrap_or_default();
    let old = st
        .store
        .current(def, &t.ns, &name)
        .cloned()
        .ok_or_else(|| wire::not_found(def, &name))?;
    if !ctx.body.is_empty() {
        if let Ok(opts) = serde_json::from_slice::<Value>(&ctx.body) {
            let pre = &opts["preconditions"];
            if let Some(rv) = pre["resourceVersion"].as_str() {
                let have = meta_str(&old, "resourceVersion");
                if rv != have {
                    return Err(wire::conflict_msg(def, &name, &format!(
                        "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({have}). The object might have been modified"
                    )));
                }
            }
            if let Some(uid) = pre["uid"].as_str() {
                let have = meta_str(&old, "uid");
                if uid != have {
                    return Err(wire::conflict_msg(def, &name, &format!(
                        "the UID in the precondition ({uid}) does not match the UID in record ({have}). The object might have been deleted and then recreated"
                    )));
                }
            }
            if opts["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All"))
            {
                return Ok(success_status(def, &name, meta_str(&old, "uid")));
            }
        }
    }
    if dry_run(ctx) {
        return Ok(success_status(def, &name, meta_str(&old, "uid")));
    }
    for ev in super::delete_object(st, def, &t.ns, &name) {
        let d = store::by_plural(ev.plural).unwrap_or(def);
        writes.push(Write::new("delete", d, None, ev.object.clone()));
    }
    Ok(success_status(def, &name, meta_str(&old, "uid")))
}

fn delete_collection(
    st: &mut State,
    ctx: &Ctx,
    t: &Target,
    writes: &mut Vec<Write>,
) -> Result<Value, ApiError> {
    let def = t.def;
    let filter = build_filter(ctx, def)?;
    let prefix = list_prefix(t);
    let rv = st.store.rv;
    let victims: Vec<Value> = st
        .store
        .list_at(def, &prefix, "", rv)
        .filter(|(_, o)| filter.matches(o))
        .map(|(_, o)| o.clone())
        .collect();
    let mut items = Vec::new();
    for v in victims {
        if dry_run(ctx) {
            items.push(list_item(def, &v));
            continue;
        }
        let (ns, name) = (
            meta_str(&v, "namespace").to_string(),
            meta_str(&v, "name").to_string(),
        );
        for ev in super::delete_object(st, def, &ns, &name) {
            let d = store::by_plural(ev.plural).unwrap_or(def);
            if ev.plural == def.plural {
                items.push(list_item(def, &ev.object));
            }
            writes.push(Write::new("delete", d, None, ev.object.clone()));
        }
    }
    Ok(json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": {"resourceVersion": st.store.rv.to_string()},
        "items": items,
    }))
}

// ---------------------------------------------------------------------------------------------
// Watch

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// What one watch request sees: its resource, namespace prefix, selectors and output format.
struct WatchView {
    def: &'static ResourceDef,
    prefix: String,
    filter: Filter,
    /// Some(includeObject) when the client asked for Table events (`kubectl get -w`).
    table: Option<String>,
}

impl WatchView {
    fn line(&self, kind: &str, object: &Value) -> Bytes {
        match &self.table {
            Some(include) => {
                let meta = json!({"resourceVersion": meta_str(object, "resourceVersion")});
                let t = wire::table(self.def, std::slice::from_ref(object), meta, include);
                event_line(kind, &t)
            }
            None => event_line(kind, object),
        }
    }

    /// What this watcher sees of one store event (None: nothing).
    fn translate(&self, ev: &store::Event) -> Option<Bytes> {
        let def = self.def;
        if ev.plural != def.plural {
            return None;
        }
        if !self.prefix.is_empty() && key_path(def, &ev.namespace, "") != self.prefix {
            return None;
        }
        let filter = &self.filter;
        let new_ok = ev.kind != EventType::Deleted && filter.matches(&ev.object);
        let old_ok = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
        match ev.kind {
            EventType::Added if new_ok => Some(self.line("ADDED", &ev.object)),
            EventType::Modified if new_ok && old_ok => Some(self.line("MODIFIED", &ev.object)),
            EventType::Modified if new_ok => Some(self.line("ADDED", &ev.object)),
            EventType::Modified if old_ok => {
                let mut gone = ev.prev.clone().unwrap_or(Value::Null);
                set_meta(&mut gone, "resourceVersion", json!(ev.rv.to_string()));
                Some(self.line("DELETED", &gone))
            }
            EventType::Deleted if filter.matches(&ev.object) => {
                Some(self.line("DELETED", &ev.object))
            }
            _ => None,
        }
    }
}

fn watch(shared: &Arc<Shared>, ctx: &Ctx, t: &Target) -> Result<Response<Body>, ApiError> {
    let def = t.def;
    let view = WatchView {
        def,
        prefix: list_prefix(t),
        filter: build_filter(ctx, def)?,
        table: ctx
            .accept
            .contains("as=Table")
            .then(|| ctx.param("includeObject").unwrap_or("Metadata").to_string()),
    };
    let timeout = ctx
        .param("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(1800);
    let rv_param = ctx.param("resourceVersion").unwrap_or("").to_string();
    let send_initial = ctx.flag("sendInitialEvents");

    let mut initial: Vec<Bytes> = Vec::new();
    let mut rx: Option<broadcast::Receiver<Arc<store::Event>>> = None;
    {
        let st = lock(&shared.state);
        let current = st.store.rv;
        if send_initial || rv_param.is_empty() || rv_param == "0" {
            for (_, o) in st.store.list_at(def, &view.prefix, "", current) {
                if view.filter.matches(o) {
                    initial.push(view.line("ADDED", o));
                }
            }
            if send_initial {
                initial.push(event_line(
                    "BOOKMARK",
                    &json!({"kind": def.kind, "apiVersion": def.api_version(), "metadata": {
                        "resourceVersion": current.to_string(),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}),
                ));
            }
            rx = Some(st.store.events.subscribe());
        } else {
            let n = parse_rv(&rv_param)?;
            if n < st.store.compacted {
                let e = wire::too_old_rv(n, st.store.compacted);
                initial.push(event_line("ERROR", &e.body));
            } else {
                for ev in st.store.history.iter().filter(|e| e.rv > n) {
                    if let Some(line) = view.translate(ev) {
                        initial.push(line);
                    }
                }
                rx = Some(st.store.events.subscribe());
            }
        }
    }

    let (tx, body_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let Some(mut rx) = rx else { return };
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if let Some(line) = view.translate(&ev) {
                            if tx.send(line).await.is_err() {
                                return;
                            }
                        }
                    }
                    // Lagged or closed: end the stream; clients re-list/re-watch.
                    Err(_) => return,
                },
            }
        }
    });

    let mut resp = Response::new(ChannelBody { rx: body_rx }.boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}
