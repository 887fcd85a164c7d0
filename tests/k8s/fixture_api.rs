//! Proves the fixture Kubernetes API server (tests/support/k8s_fixture) is faithful, using the
//! real `kubectl` and the real `kube` client against it.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::k8s_fixture::{Fault, Fixture, ADMIN_USER};
use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::{json, Value};

const TEAMS: [&str; 3] = ["team-a", "team-b", "team-c"];

struct Pem {
    cert: String,
    key: String,
}

fn self_signed(host: &str) -> Pem {
    let ck = rcgen::generate_simple_self_signed(vec![host.to_string()]).unwrap();
    Pem {
        cert: ck.cert.pem(),
        key: ck.signing_key.serialize_pem(),
    }
}

/// Seeds 3 teams x (2 TLS secrets + 1 opaque secret), a locked namespace with one secret,
/// a ConfigMap per team and one Certificate per team. Returns every secret as "ns/name".
fn seed(fx: &Fixture) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for team in TEAMS {
        for (name, tier) in [("web-tls", "frontend"), ("api-tls", "backend")] {
            let pem = self_signed(&format!("{name}.{team}.example"));
            let mut s = crate::k8s_fixture::tls_secret(team, name, &pem.cert, &pem.key);
            s["metadata"]["labels"] = json!({"app": name.trim_end_matches("-tls"), "tier": tier});
            fx.insert_value(s);
            all.insert(format!("{team}/{name}"));
        }
        let opaque = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("db-password".into()),
                namespace: Some(team.into()),
                labels: Some([("app".to_string(), "db".to_string())].into()),
                ..Default::default()
            },
            string_data: Some([("password".to_string(), "hunter2".to_string())].into()),
            ..Default::default()
        };
        fx.insert(&opaque);
        all.insert(format!("{team}/db-password"));
        let cm = ConfigMap {
            metadata: kube::api::ObjectMeta {
                name: Some("settings".into()),
                namespace: Some(team.into()),
                ..Default::default()
            },
            data: Some([("mode".to_string(), "prod".to_string())].into()),
            ..Default::default()
        };
        fx.insert(&cm);
        fx.insert_value(crate::k8s_fixture::certificate(
            team,
            "web",
            "web-tls",
            "letsencrypt",
            &[&format!("web.{team}.example")],
        ));
    }
    let pem = self_signed("vault.locked.example");
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "locked",
        "vault-tls",
        &pem.cert,
        &pem.key,
    ));
    all.insert("locked/vault-tls".into());
    all
}

fn cert_api_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"),
        "certificates",
    )
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected kube::Error::Api, got {other:?}"),
    }
}

// -------------------------------------------------------------------------------------------
// 1. kubectl: chunked list across namespaces

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_every_secret_in_chunks() {
    let fx = Fixture::start().await;
    let expected = seed(&fx);
    assert!(expected.len() >= 10);

    let out = fx.kubectl(&["get", "secrets", "-A", "--chunk-size=2", "-o", "json"]);
    assert!(out.success, "kubectl failed: {}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    let got: BTreeSet<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}/{}",
                i["metadata"]["namespace"].as_str().unwrap(),
                i["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(got, expected);
    let tls = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "kubernetes.io/tls")
        .count();
    assert_eq!(tls, 7);

    let pages: Vec<_> = fx
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/secrets")
        .collect();
    assert!(pages
        .iter()
        .all(|r| r.param("limit").as_deref() == Some("2")));
    let continued = pages
        .iter()
        .filter(|r| r.param("continue").is_some())
        .count();
    assert!(
        continued > 1,
        "expected several continue requests, got {pages:?}"
    );
    assert_eq!(pages.len(), expected.len().div_ceil(2));
    assert!(pages
        .iter()
        .all(|r| r.status == 200 && r.user.as_deref() == Some(ADMIN_USER)));

    // Human-readable output goes through the server-side Table format.
    let out = fx.kubectl(&["get", "secrets", "-A", "--chunk-size=3"]);
    assert!(out.success, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0]
            .split_whitespace()
            .eq(["NAMESPACE", "NAME", "TYPE", "DATA", "AGE"]),
        "{}",
        out.stdout
    );
    assert_eq!(lines.len(), expected.len() + 1, "{}", out.stdout);
    assert!(out.stdout.contains("kubernetes.io/tls"));
    let db = lines
        .iter()
        .find(|l| l.starts_with("team-b") && l.contains("db-password"))
        .unwrap();
    let cols: Vec<&str> = db.split_whitespace().collect();
    assert_eq!(cols[..4], ["team-b", "db-password", "Opaque", "1"], "{db}");
    assert!(cols[4].ends_with('s'), "AGE column: {db}");
}

// -------------------------------------------------------------------------------------------
// 2. kubectl: get, jsonpath, Forbidden, NotFound, Unauthorized, writes

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_errors_and_writes() {
    let fx = Fixture::start().await;
    seed(&fx);
    let stored: Secret = fx.get_as("secrets", "team-a", "web-tls").unwrap();
    let stored_crt = stored.data.unwrap()["tls.crt"].0.clone();

    let out = fx.kubectl(&[
        "get",
        "secret",
        "web-tls",
        "-n",
        "team-a",
        "-o",
        "jsonpath={.type} {.data.tls\\.crt}",
    ]);
    assert!(out.success, "{}", out.stderr);
    let (ty, crt) = out.stdout.split_once(' ').unwrap();
    assert_eq!(ty, "kubernetes.io/tls");
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(crt)
            .unwrap(),
        stored_crt
    );

    // stringData was folded into data, as kube-apiserver does.
    let out = fx.kubectl(&[
        "get",
        "secret",
        "db-password",
        "-n",
        "team-c",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(
        out.stdout,
        base64::engine::general_purpose::STANDARD.encode("hunter2")
    );

    fx.forbid("list", "secrets", Some("locked"));
    let out = fx.kubectl(&["get", "secrets", "-n", "locked"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains(
            "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:default:certdeck\" \
             cannot list resource \"secrets\" in API group \"\" in the namespace \"locked\""
        ),
        "{}",
        out.stderr
    );
    // Other namespaces still work; a get in the locked namespace is a different verb.
    assert!(fx.kubectl(&["get", "secrets", "-n", "team-b"]).success);
    assert!(
        fx.kubectl(&["get", "secret", "vault-tls", "-n", "locked"])
            .success
    );

    let out = fx.kubectl(&["get", "secret", "nope", "-n", "team-a"]);
    assert!(!out.success);
    assert!(
        out.stderr
            .contains("Error from server (NotFound): secrets \"nope\" not found"),
        "{}",
        out.stderr
    );

    fx.add_context("stranger", "not-a-valid-token");
    let out = fx.kubectl(&["--context", "stranger", "get", "secrets"]);
    assert!(!out.success);
    assert!(
        out.stderr.contains("You must be logged in to the server"),
        "{}",
        out.stderr
    );

    fx.add_unreachable_context("gone");
    let out = fx.kubectl(&["--context", "gone", "get", "secrets"]);
    assert!(!out.success);
    assert!(out.stderr.contains("connection refused"), "{}", out.stderr);

    // Writes: create (no /openapi, so --validate=false), annotate (merge patch on a CRD), delete.
    let manifest = fx.dir().join("cm.json");
    std::fs::write(
        &manifest,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-kubectl", "namespace": "team-a"}, "data": {"k": "v"}})
            .to_string(),
    )
    .unwrap();
    let out = fx.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(
        fx.get("configmaps", "team-a", "from-kubectl").unwrap()["data"]["k"],
        "v"
    );
    let out = fx.kubectl(&[
        "create",
        "--validate=false",
        "-f",
        manifest.to_str().unwrap(),
    ]);
    assert!(
        out.stderr.contains("Error from server (AlreadyExists)")
            && out
                .stderr
                .contains("configmaps \"from-kubectl\" already exists"),
        "{}",
        out.stderr
    );

    let gen_before =
        fx.get("certificates", "team-b", "web").unwrap()["metadata"]["generation"].clone();
    let out = fx.kubectl(&[
        "annotate",
        "certificate",
        "web",
        "-n",
        "team-b",
        "certdeck.io/owner=platform",
    ]);
    assert!(out.success, "{}", out.stderr);
    let cert = fx.get("certificates", "team-b", "web").unwrap();
    assert_eq!(
        cert["metadata"]["annotations"]["certdeck.io/owner"],
        "platform"
    );
    assert_eq!(
        cert["metadata"]["generation"], gen_before,
        "metadata changes keep generation"
    );

    fx.set_certificate_ready("team-b", "web", "2030-01-01T00:00:00Z", 3);
    let out = fx.kubectl(&["get", "certificates", "-n", "team-b"]);
    assert!(out.success, "{}", out.stderr);
    let row: Vec<&str> = out
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..3], ["web", "True", "web-tls"], "{}", out.stdout);

    let out = fx.kubectl(&["delete", "configmap", "from-kubectl", "-n", "team-a"]);
    assert!(out.success, "{}", out.stderr);
    assert!(fx.get("configmaps", "team-a", "from-kubectl").is_none());

    // Label and field selectors through kubectl (the namespaced denial also denied `-A`).
    let out = fx.kubectl(&["get", "secrets", "-A"]);
    assert!(
        out.stderr
            .contains("cannot list resource \"secrets\" in API group \"\" at the cluster scope"),
        "{}",
        out.stderr
    );
    fx.clear_forbidden(crate::k8s_fixture::ADMIN_TOKEN);
    let out = fx.kubectl(&[
        "get",
        "secrets",
        "-A",
        "-l",
        "tier in (frontend)",
        "--field-selector",
        "type=kubernetes.io/tls",
        "-o",
        "name",
    ]);
    assert!(out.success, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    assert!(out.stdout.lines().all(|l| l == "secret/web-tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_watch_and_access_review() {
    use std::io::BufRead;
    let fx = Fixture::start().await;
    seed(&fx);

    // `kubectl auth can-i` (protobuf SelfSubjectAccessReview) answers from the token's policy.
    fx.forbid("update", "certificates/status", Some("team-b"));
    let can_i = |args: &[&str]| {
        fx.kubectl(&[&["auth", "can-i"], args].concat())
            .stdout
            .trim()
            .to_string()
    };
    assert_eq!(
        can_i(&[
            "update",
            "certificates.cert-manager.io",
            "--subresource=status",
            "-n",
            "team-a"
        ]),
        "yes"
    );
    assert_eq!(
        can_i(&[
            "update",
            "certificates.cert-manager.io",
            "--subresource=status",
            "-n",
            "team-b"
        ]),
        "no"
    );
    assert_eq!(
        can_i(&["update", "certificates.cert-manager.io", "-n", "team-b"]),
        "yes"
    );

    // `kubectl get -w`: a Table list, then a Table watch from the list's resourceVersion.
    let mut child = fx
        .kubectl_command()
        .args(["get", "certificates", "-n", "team-c", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(next_line()
        .split_whitespace()
        .eq(["NAME", "READY", "SECRET", "AGE"]));
    assert!(next_line().starts_with("web "));
    let deadline = Instant::now() + Duration::from_secs(10);
    while fx.request_count(
        "GET",
        "/apis/cert-manager.io/v1/namespaces/team-c/certificates",
    ) < 2
    {
        assert!(Instant::now() < deadline, "kubectl never started watching");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fx.set_certificate_ready("team-c", "web", "2030-01-01T00:00:00Z", 1);
    let row: Vec<String> = next_line().split_whitespace().map(String::from).collect();
    assert_eq!(row[..3], ["web", "True", "web-tls"]);
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
    let watch = fx
        .requests()
        .into_iter()
        .find(|r| r.param("watch").as_deref() == Some("true"))
        .unwrap();
    assert!(watch.param("resourceVersion").is_some());
}

// -------------------------------------------------------------------------------------------
// 3. kube client: pagination, get, conflicts, status subresource, auth errors, faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_paginates_and_sees_conflicts() {
    let fx = Fixture::start().await;
    let expected = seed(&fx);
    let client = fx.client().await;
    let secrets: Api<Secret> = Api::all(client.clone());

    let mut got = Vec::new();
    let mut lp = ListParams::default().limit(2);
    let mut pages = 0;
    let mut list_rv = None;
    loop {
        let page = secrets.list(&lp).await.unwrap();
        pages += 1;
        assert!(page.items.len() <= 2);
        let rv = page.metadata.resource_version.clone().unwrap();
        assert_eq!(
            list_rv.get_or_insert(rv.clone()),
            &rv,
            "all pages come from one snapshot"
        );
        if pages == 1 {
            assert_eq!(
                page.metadata.remaining_item_count,
                Some(expected.len() as i64 - 2)
            );
            // A write between pages is not visible in the paginated (consistent) list.
            fx.insert_value(crate::k8s_fixture::tls_secret(
                "team-a", "zz-late", "x", "y",
            ));
        }
        got.extend(page.items.iter().map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.as_ref().unwrap(),
                s.metadata.name.as_ref().unwrap()
            )
        }));
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(pages, expected.len().div_ceil(2));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted, "stable namespace/name order");
    assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), expected);
    let continued = fx
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/secrets" && r.param("continue").is_some())
        .count();
    assert_eq!(continued, pages - 1);

    // Selectors.
    let team_a: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let names = |l: kube::core::ObjectList<Secret>| -> Vec<String> {
        l.items
            .into_iter()
            .map(|s| s.metadata.name.unwrap())
            .collect()
    };
    let l = team_a
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(names(l), ["web-tls"]);
    let l = team_a
        .list(&ListParams::default().labels("tier in (frontend,backend)"))
        .await
        .unwrap();
    assert_eq!(names(l), ["api-tls", "web-tls"]);
    let l = team_a
        .list(&ListParams::default().labels("!tier"))
        .await
        .unwrap();
    assert_eq!(names(l), ["db-password", "zz-late"]);
    let l = team_a
        .list(&ListParams::default().fields("type=kubernetes.io/tls"))
        .await
        .unwrap();
    assert_eq!(names(l), ["api-tls", "web-tls", "zz-late"]);
    let l = secrets
        .list(&ListParams::default().fields("metadata.namespace=team-c,metadata.name=db-password"))
        .await
        .unwrap();
    assert_eq!(names(l), ["db-password"]);
    let e = api_error(
        team_a
            .list(&ListParams::default().fields("spec.foo=bar"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(
        e.message.contains("field label not supported: spec.foo"),
        "{}",
        e.message
    );

    // Expired continue token: 410 Expired.
    let page = secrets.list(&ListParams::default().limit(2)).await.unwrap();
    fx.expire_continue_tokens();
    let token = page.metadata.continue_.unwrap();
    let e = api_error(
        secrets
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));

    // Get, then replace with a stale resourceVersion: 409 Conflict.
    let mut s = team_a.get("web-tls").await.unwrap();
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    let stale = s.clone();
    s.metadata
        .labels
        .get_or_insert_default()
        .insert("rotated".into(), "yes".into());
    let updated = team_a
        .replace("web-tls", &PostParams::default(), &s)
        .await
        .unwrap();
    let (old_rv, new_rv) = (
        stale
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        updated
            .metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap(),
    );
    assert!(new_rv > old_rv);
    assert_eq!(updated.metadata.uid, stale.metadata.uid);
    let e = api_error(
        team_a
            .replace("web-tls", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert_eq!(e.reason, "Conflict");
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on secrets \"web-tls\": the object has been modified; please apply your changes to the latest version and try again"
    );
    // No-op replace does not bump the resourceVersion.
    let same = team_a
        .replace("web-tls", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        updated.metadata.resource_version
    );
    let e = api_error(team_a.get("nope").await.unwrap_err());
    assert_eq!(
        (e.code, e.reason.as_str(), e.message.as_str()),
        (404, "NotFound", "secrets \"nope\" not found")
    );

    // Create, patch and delete round-trip.
    let created = team_a
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "new"}, "stringData": {"a": "b"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let e = api_error(
        team_a
            .create(&PostParams::default(), &created)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400, "resourceVersion set on create: {e:?}");
    let patched = team_a
        .patch(
            "new",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.metadata.labels.unwrap()["x"], "1");
    team_a
        .delete("new", &DeleteParams::default())
        .await
        .unwrap();
    assert!(fx.get("secrets", "team-a", "new").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_certificate_status_subresource_and_auth() {
    let fx = Fixture::start().await;
    seed(&fx);
    let client = fx.client().await;
    let ar = cert_api_resource();
    let certs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team-a", &ar);

    // What `cmctl renew` does: PUT the whole object to /status with an Issuing condition.
    let mut cert = certs.get("web").await.unwrap();
    assert_eq!(cert.metadata.generation, Some(1));
    let generation = cert.metadata.generation.unwrap();
    cert.data["status"] = json!({"conditions": [{
        "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered",
        "observedGeneration": generation, "lastTransitionTime": crate::k8s_fixture::now_rfc3339(),
    }]});
    cert.data["spec"]["secretName"] = json!("sneaky-change");
    let stale = cert.clone();
    let after = certs
        .replace_status("web", &PostParams::default(), &cert)
        .await
        .unwrap();
    assert_eq!(
        after.data["spec"]["secretName"], "web-tls",
        "status writes ignore spec"
    );
    assert_eq!(
        after.data["status"]["conditions"][0]["reason"],
        "ManuallyTriggered"
    );
    assert_eq!(after.metadata.generation, Some(1));
    assert_eq!(
        fx.get("certificates", "team-a", "web").unwrap()["status"]["conditions"][0]["type"],
        "Issuing"
    );
    let e = api_error(
        certs
            .replace_status("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 409);
    assert_eq!(
        e.message,
        "Operation cannot be fulfilled on certificates.cert-manager.io \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // Spec writes ignore status and bump generation.
    let mut cert = certs.get("web").await.unwrap();
    cert.data["spec"]["dnsNames"] = json!(["web.team-a.example", "www.team-a.example"]);
    cert.data["status"] = json!({"conditions": []});
    let after = certs
        .replace("web", &PostParams::default(), &cert)
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(
        after.data["status"]["conditions"][0]["type"], "Issuing",
        "spec writes ignore status"
    );

    // 403 with the real message, from a denied subresource verb.
    fx.forbid("update", "certificates/status", None);
    let cert = certs.get("web").await.unwrap();
    let e = api_error(
        certs
            .replace_status("web", &PostParams::default(), &cert)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        e.message,
        "certificates.cert-manager.io \"web\" is forbidden: User \"system:serviceaccount:default:certdeck\" cannot update resource \"certificates/status\" in API group \"cert-manager.io\" in the namespace \"team-a\""
    );
    // A namespaced denial also denies the cluster-wide list.
    fx.forbid("list", "secrets", Some("locked"));
    let e = api_error(
        Api::<Secret>::namespaced(client.clone(), "locked")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "secrets is forbidden: User \"system:serviceaccount:default:certdeck\" cannot list resource \"secrets\" in API group \"\" in the namespace \"locked\""
    );
    let e = api_error(
        Api::<Secret>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        e.message
            .ends_with("cannot list resource \"secrets\" in API group \"\" at the cluster scope"),
        "{}",
        e.message
    );

    // 401 from an unknown token; read-only token gets 403 on writes.
    fx.add_context("stranger", "bogus");
    let stranger: Api<Secret> = Api::namespaced(fx.client_for("stranger").await, "team-a");
    let e = api_error(stranger.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (401, "Unauthorized"));
    fx.add_read_only_token("viewer-token", "viewer");
    fx.add_context("viewer", "viewer-token");
    let viewer: Api<DynamicObject> =
        Api::namespaced_with(fx.client_for("viewer").await, "team-a", &ar);
    let c = viewer.get("web").await.unwrap();
    let e = api_error(
        viewer
            .replace("web", &PostParams::default(), &c)
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 403);
    assert!(e.message.starts_with(
        "certificates.cert-manager.io \"web\" is forbidden: User \"viewer\" cannot update"
    ));

    // Unreachable cluster: a connection error, not an API error.
    fx.add_unreachable_context("gone");
    let gone: Api<Secret> = Api::all(fx.client_for("gone").await);
    match gone.list(&ListParams::default()).await {
        Err(kube::Error::Api(s)) => panic!("unexpected API error {s:?}"),
        Err(_) => {}
        Ok(_) => panic!("unreachable cluster answered"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_sees_injected_faults() {
    let fx = Fixture::start().await;
    seed(&fx);
    let client = fx.client().await;
    let team_b: Api<Secret> = Api::namespaced(client.clone(), "team-b");
    let path = "/api/v1/namespaces/team-b/secrets";

    fx.add_fault(Fault::internal_error(path).times(1));
    let e = api_error(team_b.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    assert_eq!(
        team_b
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    // kube retries 429 by default: two injected 429s are absorbed, and the log shows 3 calls.
    fx.clear_requests();
    fx.add_fault(Fault::too_many_requests(path, 0).times(2));
    assert_eq!(
        team_b
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert_eq!(fx.request_count("GET", path), 3);
    assert_eq!(fx.requests().iter().filter(|r| r.status == 429).count(), 2);

    // Without kube's retry layer the 429 surfaces.
    let mut config = fx.kube_config(crate::k8s_fixture::CONTEXT).await;
    config.default_retry = false;
    let no_retry: Api<Secret> = Api::namespaced(kube::Client::try_from(config).unwrap(), "team-b");
    fx.add_fault(Fault::too_many_requests(path, 1).method("GET").times(1));
    let e = api_error(no_retry.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));

    // Delay on one prefix only: another namespace answers long before the delay would end
    // (a generous bound), the delayed one takes at least the delay.
    fx.add_fault(Fault::delay(
        "/api/v1/namespaces/team-c",
        Duration::from_secs(5),
    ));
    tokio::time::timeout(Duration::from_secs(4), team_b.get("db-password"))
        .await
        .expect("team-b is not delayed")
        .unwrap();
    let t = Instant::now();
    Api::<Secret>::namespaced(client.clone(), "team-c")
        .get("db-password")
        .await
        .unwrap();
    assert!(t.elapsed() >= Duration::from_secs(5));
    assert_eq!(
        fx.request_count("GET", "/api/v1/namespaces/team-c/secrets/db-password"),
        1
    );
}

// -------------------------------------------------------------------------------------------
// 4. Watches

type CertEvents =
    tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<DynamicObject>, watcher::Error>>;

async fn next(rx: &mut CertEvents) -> watcher::Event<DynamicObject> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("watch event within 10s")
        .expect("watcher still running")
        .expect("watcher event ok")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_receives_modifications() {
    let fx = Fixture::start().await;
    seed(&fx);
    let client = fx.client().await;

    // Raw Api::watch from a list's resourceVersion sees MODIFIED then DELETED.
    let team_c: Api<Secret> = Api::namespaced(client.clone(), "team-c");
    let list = team_c.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = team_c
        .watch(&WatchParams::default().timeout(30), &rv)
        .await
        .unwrap()
        .boxed();
    let mut s = team_c.get("api-tls").await.unwrap();
    s.metadata
        .annotations
        .get_or_insert_default()
        .insert("touched".into(), "1".into());
    team_c
        .replace("api-tls", &PostParams::default(), &s)
        .await
        .unwrap();
    fx.remove("secrets", "team-c", "db-password");
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a",
        "elsewhere",
        "x",
        "y",
    ));
    let first = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Modified(s)) => {
            assert_eq!(s.metadata.name.as_deref(), Some("api-tls"));
            assert_eq!(s.metadata.annotations.unwrap()["touched"], "1");
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    let second = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(second, Some(WatchEvent::Deleted(ref s)) if s.metadata.name.as_deref() == Some("db-password")),
        "{second:?}"
    );

    // A watch from a compacted resourceVersion gets a 410 ERROR event.
    fx.expire_continue_tokens();
    let mut stream = team_c
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!(e.code, 410),
        other => panic!("expected ERROR 410, got {other:?}"),
    }

    // kube-runtime's watcher (list, then watch from the list's resourceVersion), with a
    // simulated cert-manager reacting to a renewal request on the status subresource.
    fx.on_write("certificates", Duration::from_millis(200), |w| {
        let issuing = w.object["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Issuing" && c["status"] == "True");
        if w.subresource.as_deref() != Some("status") || !issuing {
            return None;
        }
        let mut done = w.object.clone();
        let revision = done["status"]["revision"].as_i64().unwrap_or(0) + 1;
        crate::k8s_fixture::set_ready_status(&mut done, "2031-06-01T00:00:00Z", revision);
        Some(done)
    });
    let ar = cert_api_resource();
    let certs: Api<DynamicObject> = Api::namespaced_with(client.clone(), "team-a", &ar);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _: &CertEvents = &rx;
    let watch_task = tokio::spawn(watcher(certs.clone(), watcher::Config::default()).for_each(
        move |ev| {
            let _ = tx.send(ev);
            async {}
        },
    ));
    assert!(matches!(next(&mut rx).await, watcher::Event::Init));
    match next(&mut rx).await {
        watcher::Event::InitApply(o) => assert_eq!(o.metadata.name.as_deref(), Some("web")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(next(&mut rx).await, watcher::Event::InitDone));

    // The test acting as cert-manager directly.
    fx.set_certificate_ready("team-a", "web", "2030-01-01T00:00:00Z", 1);
    match next(&mut rx).await {
        watcher::Event::Apply(o) => {
            assert_eq!(o.data["status"]["conditions"][0]["type"], "Ready");
            assert_eq!(o.data["status"]["revision"], 1);
        }
        other => panic!("{other:?}"),
    }

    // A client requests renewal like `cmctl renew`; the reactor completes it 200ms later.
    let mut cert = certs.get("web").await.unwrap();
    let mut conditions = cert.data["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap();
    conditions.push(
        json!({"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered", "observedGeneration": 1,
        "lastTransitionTime": crate::k8s_fixture::now_rfc3339()}),
    );
    cert.data["status"]["conditions"] = json!(conditions);
    certs
        .replace_status("web", &PostParams::default(), &cert)
        .await
        .unwrap();
    match next(&mut rx).await {
        watcher::Event::Apply(o) => assert!(o.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Issuing")),
        other => panic!("{other:?}"),
    }
    match next(&mut rx).await {
        watcher::Event::Apply(o) => {
            assert_eq!(o.data["status"]["revision"], 2);
            assert_eq!(o.data["status"]["notAfter"], "2031-06-01T00:00:00Z");
            let types: Vec<&str> = o.data["status"]["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["type"].as_str().unwrap())
                .collect();
            assert_eq!(types, ["Ready"]);
        }
        other => panic!("{other:?}"),
    }
    watch_task.abort();

    // Streaming lists (sendInitialEvents + the initial-events-end bookmark) work too.
    let cfg = watcher::Config::default().streaming_lists();
    let events: Vec<_> = watcher(certs, cfg).take(3).try_collect().await.unwrap();
    assert!(matches!(events[0], watcher::Event::Init));
    assert!(
        matches!(&events[1], watcher::Event::InitApply(o) if o.data["status"]["revision"] == 2)
    );
    assert!(matches!(events[2], watcher::Event::InitDone));
}

// -------------------------------------------------------------------------------------------
// Lifecycle

#[test]
fn fixture_cleans_up_its_port_and_files() {
    let fx = Fixture::start_blocking();
    let addr = fx.addr();
    let dir = fx.dir().to_path_buf();
    let kubeconfig = std::fs::read_to_string(fx.kubeconfig_path()).unwrap();
    assert!(kubeconfig.contains(&format!("server: \"{}\"", fx.url())));
    assert!(kubeconfig.contains("certificate-authority-data: "));
    assert!(fx.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(std::net::TcpStream::connect(addr).is_ok());
    let out = fx.kubectl(&["version", "-o", "json"]);
    assert!(out.success, "{}", out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "33");
    drop(fx);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "port still open"
    );
    assert!(!dir.exists(), "temporary directory left behind");
}
