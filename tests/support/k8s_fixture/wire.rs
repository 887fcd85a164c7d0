//! Wire documents: `Status` errors, discovery, `Table` output, continue tokens, timestamps.

use base64::Engine as _;
use serde_json::{json, Value};

use super::store::{self, ResourceDef, GROUPS, RESOURCES};

/// An HTTP status code with its JSON body (a `kind: Status` for errors).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn status(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> ApiError {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
            "code": code,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        ApiError {
            code,
            body,
            retry_after: None,
        }
    }
}

pub fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({ "kind": def.plural });
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d
}

pub fn unauthorized() -> ApiError {
    ApiError::status(401, "Unauthorized", "Unauthorized", None)
}

pub fn not_found(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::status(
        404,
        "NotFound",
        format!("{} \"{}\" not found", def.qualified(), name),
        Some(details(def, name)),
    )
}

pub fn namespace_not_found(ns: &str) -> ApiError {
    ApiError::status(
        404,
        "NotFound",
        format!("namespaces \"{ns}\" not found"),
        Some(json!({"name": ns, "kind": "namespaces"})),
    )
}

pub fn path_not_found() -> ApiError {
    ApiError::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

pub fn already_exists(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::status(
        409,
        "AlreadyExists",
        format!("{} \"{}\" already exists", def.qualified(), name),
        Some(details(def, name)),
    )
}

pub fn conflict(def: &ResourceDef, name: &str) -> ApiError {
    conflict_msg(
        def,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

pub fn conflict_msg(def: &ResourceDef, name: &str, why: &str) -> ApiError {
    ApiError::status(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{}\": {}",
            def.qualified(),
            name,
            why
        ),
        Some(details(def, name)),
    )
}

pub fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::status(400, "BadRequest", msg, None)
}

pub fn invalid(
    def: &ResourceDef,
    name: &str,
    field: &str,
    cause_reason: &str,
    msg: &str,
) -> ApiError {
    ApiError::status(
        422,
        "Invalid",
        format!(
            "{} \"{}\" is invalid: {}: {}",
            def.qualified_kind(),
            name,
            field,
            msg
        ),
        Some(json!({
            "name": name,
            "group": def.group,
            "kind": def.kind,
            "causes": [{"reason": cause_reason, "message": msg, "field": field}],
        })),
    )
}

pub fn method_not_allowed() -> ApiError {
    ApiError::status(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        Some(json!({})),
    )
}

pub fn unsupported_media_type(ct: &str) -> ApiError {
    ApiError::status(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/strategic-merge-patch+json (got {ct})"
        ),
        None,
    )
}

pub fn expired_continue() -> ApiError {
    ApiError::status(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can \
         start a new list without the continue parameter, or use the continue token in this \
         response to retrieve the remainder of the results. Continuing with the provided token \
         results in an inconsistent list - objects that were created, modified, or deleted \
         between the time the first chunk was returned and now may show up in the list.",
        None,
    )
}

pub fn too_old_rv(requested: u64, compacted: u64) -> ApiError {
    ApiError::status(
        410,
        "Expired",
        format!("too old resource version: {requested} ({compacted})"),
        None,
    )
}

pub fn too_large_rv(requested: u64, current: u64) -> ApiError {
    ApiError::status(
        504,
        "Timeout",
        format!("Too large resource version: {requested}, current: {current}"),
        Some(
            json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}], "retryAfterSeconds": 1}),
        ),
    )
}

pub fn too_many_requests(retry_after: u64) -> ApiError {
    let mut e = ApiError::status(
        429,
        "TooManyRequests",
        "Too many requests, please try again later.",
        Some(json!({"retryAfterSeconds": retry_after})),
    );
    e.retry_after = Some(retry_after);
    e
}

pub fn internal_error(msg: &str) -> ApiError {
    ApiError::status(
        500,
        "InternalError",
        format!("Internal error occurred: {msg}"),
        Some(json!({"causes": [{"message": msg}]})),
    )
}

pub fn other_status(code: u16) -> ApiError {
    let reason = match code {
        503 => "ServiceUnavailable",
        504 => "Timeout",
        400 => "BadRequest",
        _ => "InternalError",
    };
    ApiError::status(code, reason, format!("injected fault: HTTP {code}"), None)
}

// ---------------------------------------------------------------------------------------------
// Discovery

pub fn version_doc() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "emulationMajor": "1",
        "emulationMinor": "33",
        "minCompatibilityMajor": "1",
        "minCompatibilityMinor": "32",
        "gitVersion": "v1.33.1",
        "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
        "gitTreeState": "clean",
        "buildDate": "2025-05-15T08:19:08Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}

pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_doc(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

pub fn api_group_list() -> Value {
    let groups: Vec<Value> = GROUPS.iter().map(|(g, v)| group_doc(g, v)).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(group: &str) -> Option<Value> {
    GROUPS.iter().find(|(g, _)| *g == group).map(|(g, v)| {
        let mut d = group_doc(g, v);
        d["kind"] = json!("APIGroup");
        d["apiVersion"] = json!("v1");
        d
    })
}

pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    if (group, version) == ("authorization.k8s.io", "v1") {
        return Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1",
            "resources": [{"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview",
                "namespaced": false, "kind": "SelfSubjectAccessReview", "verbs": ["create"]}]}),
        );
    }
    let defs: Vec<&ResourceDef> = RESOURCES
        .iter()
        .filter(|d| d.group == group && d.version == version)
        .collect();
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in defs {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": store::verbs(),
        });
        if !d.short_names.is_empty() {
            r["shortNames"] = json!(d.short_names);
        }
        if !d.categories.is_empty() {
            r["categories"] = json!(d.categories);
        }
        resources.push(r);
        if d.status {
            resources.push(json!({
                "name": format!("{}/status", d.plural),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": d.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

// ---------------------------------------------------------------------------------------------
// Continue tokens (same shape as kube-apiserver's: base64 of {"v","rv","start"})

pub fn encode_continue(rv: u64, start: &str) -> String {
    let doc = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE.encode(doc.to_string())
}

pub fn decode_continue(token: &str) -> Result<(u64, String), ApiError> {
    let invalid = || {
        bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token.trim()))
        .map_err(|_| invalid())?;
    let doc: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if doc["v"] != "meta.k8s.io/v1" {
        return Err(invalid());
    }
    let rv = doc["rv"].as_u64().ok_or_else(invalid)?;
    let start = doc["start"].as_str().ok_or_else(invalid)?.to_string();
    Ok((rv, start))
}

// ---------------------------------------------------------------------------------------------
// Time

pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

fn parse_rfc3339(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Kubernetes' `duration.HumanDuration` (the AGE column).
pub fn human_age(created: &str) -> String {
    let Some(t) = parse_rfc3339(created) else {
        return "<unknown>".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - t).whole_seconds();
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 60 * 2 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rs = s % 60;
        return if rs == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rs}s")
        };
    }
    if m < 60 * 3 {
        return format!("{m}m");
    }
    let h = s / 3600;
    if h < 8 {
        let rm = m % 60;
        return if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    if h < 24 * 8 {
        let d = h / 24;
        let rh = h % 24;
        return if rh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rh}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{}d", h / 24);
    }
    if h < 24 * 365 * 8 {
        let y = h / 24 / 365;
        let d = (h / 24) % 365;
        return if d == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{d}d")
        };
    }
    format!("{}y", h / 24 / 365)
}

// ---------------------------------------------------------------------------------------------
// Tables (what `kubectl get` asks for with `Accept: application/json;as=Table;...`)

fn col(name: &str, ty: &str, format: &str, priority: u32, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn condition<'a>(obj: &'a Value, ty: &str, field: &str) -> &'a str {
    obj["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .and_then(|c| c[field].as_str())
        .unwrap_or("")
}

/// Computes a Table row's cells from an object.
type CellsFn = fn(&Value) -> Vec<Value>;

fn columns_and_cells(def: &ResourceDef) -> (Vec<Value>, CellsFn) {
    let name = col(
        "Name",
        "string",
        "name",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        "",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    fn age_of(o: &Value) -> Value {
        json!(human_age(store::meta_str(o, "creationTimestamp")))
    }
    match def.plural {
        "secrets" => (
            vec![
                name,
                col("Type", "string", "", 0, "The type of the secret"),
                col("Data", "string", "", 0, "The number of entries in the secret"),
                age,
            ],
            |o| {
                let n = o["data"].as_object().map_or(0, |m| m.len());
                vec![
                    json!(store::meta_str(o, "name")),
                    json!(o["type"].as_str().unwrap_or("Opaque")),
                    json!(n),
                    age_of(o),
                ]
            },
        ),
        "configmaps" => (
            vec![
                name,
                col("Data", "string", "", 0, "The number of entries in the configmap"),
                age,
            ],
            |o| {
                let n = o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len());
                vec![json!(store::meta_str(o, "name")), json!(n), age_of(o)]
            },
        ),
        "namespaces" => (
            vec![
                name,
                col("Status", "string", "", 0, "The status of the namespace"),
                age,
            ],
            |o| {
                vec![
                    json!(store::meta_str(o, "name")),
                    json!(o["status"]["phase"].as_str().unwrap_or("Active")),
                    age_of(o),
                ]
            },
        ),
        "certificates" => (
            vec![
                name,
                col("Ready", "string", "", 0, ""),
                col("Secret", "string", "", 0, ""),
                col("Issuer", "string", "", 1, ""),
                col("Status", "string", "", 1, ""),
                col("Age", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            ],
            |o| {
                vec![
                    json!(store::meta_str(o, "name")),
                    json!(condition(o, "Ready", "status")),
                    json!(o["spec"]["secretName"].as_str().unwrap_or("")),
                    json!(o["spec"]["issuerRef"]["name"].as_str().unwrap_or("")),
                    json!(condition(o, "Ready", "message")),
                    age_of(o),
                ]
            },
        ),
        "certificaterequests" => (
            vec![
                name,
                col("Approved", "string", "", 0, ""),
                col("Denied", "string", "", 0, ""),
                col("Ready", "string", "", 0, ""),
                col("Issuer", "string", "", 0, ""),
                col("Requester", "string", "", 0, ""),
                col("Status", "string", "", 1, ""),
                col("Age", "date", "", 0, "CreationTimestamp is a timestamp representing the server time when this object was created."),
            ],
            |o| {
                vec![
                    json!(store::meta_str(o, "name")),
                    json!(condition(o, "Approved", "status")),
                    json!(condition(o, "Denied", "status")),
                    json!(condition(o, "Ready", "status")),
                    json!(o["spec"]["issuerRef"]["name"].as_str().unwrap_or("")),
                    json!(o["spec"]["username"].as_str().unwrap_or("")),
                    json!(condition(o, "Ready", "message")),
                    age_of(o),
                ]
            },
        ),
        _ => (vec![name, age], |o| {
            vec![json!(store::meta_str(o, "name")), age_of(o)]
        }),
    }
}

/// Builds a `meta.k8s.io/v1` Table from objects. `include` is the `includeObject` parameter.
pub fn table(def: &ResourceDef, items: &[Value], list_meta: Value, include: &str) -> Value {
    let (columns, cells) = columns_and_cells(def);
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": cells(o)});
            match include {
                "None" => {}
                "Object" => {
                    let mut full = o.clone();
                    full["apiVersion"] = json!(def.api_version());
                    full["kind"] = json!(def.kind);
                    row["object"] = full;
                }
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": o["metadata"].clone(),
                    });
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

// ---------------------------------------------------------------------------------------------
// URL helpers

pub fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k, true), percent_decode(v, true)),
            None => (percent_decode(p, true), String::new()),
        })
        .collect()
}
