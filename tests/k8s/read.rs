//! Reading Kubernetes: TLS Secrets, CA bundles, cert-manager links, pagination, forbidden
//! namespaces and unreachable clusters, all through the fixture API server and a real kubeconfig.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::k8s_common::{at_location, ca, leaf, scan, settings};
use crate::k8s_fixture::{Fixture, CONTEXT};
use base64::Engine as _;
use serde_json::json;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_secret_rows_show_context_chain_ca_and_the_managing_certificate() {
    let fx = Fixture::start().await;
    let root = ca("Team Root CA");
    let web = leaf(&["web.team-a.example"], 40, Some(&root));
    let mut s = crate::k8s_fixture::tls_secret(
        "team-a",
        "web-tls",
        &(web.cert.clone() + &root.pem.cert),
        &web.key,
    );
    s["data"]["ca.crt"] = json!(b64(&root.pem.cert));
    fx.insert_value(s);
    fx.insert_value(crate::k8s_fixture::certificate(
        "team-a",
        "web",
        "web-tls",
        "team-ca",
        &["web.team-a.example"],
    ));
    let leaf_not_after = {
        let recs =
            certdeck::sources::file::records_from_bytes("x.pem", web.cert.as_bytes(), true, 0);
        recs[0].cert.as_ref().unwrap().not_after
    };
    fx.set_certificate_ready(
        "team-a",
        "web",
        &certdeck::clock::rfc3339(leaf_not_after),
        3,
    );
    // Opaque secrets without certificates give no row; their values are never read out.
    fx.insert_value(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team-a"}, "stringData": {"password": "hunter2"}}));
    fx.insert_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": "team-a"},
        "data": {"ca.crt": root.pem.cert.replace('\n', "\r\n"), "note": "not a cert"}}));

    let mut st = settings(&fx);
    st.namespace = Some("team-a".into());
    let (records, failures) = scan(st).await;
    assert!(failures.is_empty(), "{failures:?}");

    let row = at_location(&records, "fixture/team-a/secret/web-tls#tls.crt");
    assert_eq!(row.source.as_str(), "k8s");
    let c = row.cert.as_ref().unwrap();
    assert_eq!(c.common_name.as_deref(), Some("web.team-a.example"));
    assert_eq!(row.chain.len(), 1, "the CA sent in tls.crt is the chain");
    let k = row.k8s.as_ref().unwrap();
    assert_eq!(
        (
            k.context.as_str(),
            k.namespace.as_str(),
            k.kind.as_str(),
            k.name.as_str()
        ),
        (CONTEXT, "team-a", "Secret", "web-tls")
    );
    assert_eq!(k.key.as_deref(), Some("tls.crt"));
    assert_eq!(k.secret_type.as_deref(), Some("kubernetes.io/tls"));
    let cm = k.managed_by.as_ref().expect("linked to its Certificate");
    assert_eq!(cm.name, "web");
    assert_eq!(cm.issuer_ref, "Issuer/team-ca");
    assert_eq!(cm.dns_names, vec!["web.team-a.example"]);
    assert_eq!(cm.revision, Some(3));
    assert_eq!(cm.ready.as_ref().unwrap().status, "True");
    assert_eq!(k.drift, None, "Secret and Certificate agree");

    let ca_row = at_location(&records, "fixture/team-a/secret/web-tls#ca.crt");
    assert!(ca_row.cert.as_ref().unwrap().is_ca);
    let cm_row = at_location(&records, "fixture/team-a/configmap/kube-root-ca.crt#ca.crt");
    assert_eq!(
        cm_row.cert.as_ref().unwrap().sha256,
        ca_row.cert.as_ref().unwrap().sha256
    );
    assert!(!records.iter().any(|r| r.location.contains("/secret/db")));
    assert!(!records.iter().any(|r| r.location.contains("#note")));
    // Stable ids from the location.
    let (again, _) = scan({
        let mut s = settings(&fx);
        s.namespace = Some("team-a".into());
        s
    })
    .await;
    assert_eq!(at_location(&again, &row.location).id, row.id);
    assert!(row.id.starts_with("k8s-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_differing_from_its_certificate_is_flagged_and_missing_secret_is_a_row() {
    let fx = Fixture::start().await;
    let old = leaf(&["shop.example"], 5, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop", "shop-tls", &old.cert, &old.key,
    ));
    fx.insert_value(crate::k8s_fixture::certificate(
        "shop",
        "shop",
        "shop-tls",
        "le",
        &["shop.example", "www.shop.example"],
    ));
    fx.set_certificate_ready("shop", "shop", "2027-06-01T00:00:00Z", 2);
    fx.insert_value(crate::k8s_fixture::certificate(
        "shop",
        "pending",
        "pending-tls",
        "le",
        &["new.shop.example"],
    ));
    fx.modify("certificates", "shop", "pending", |c| {
        c["status"] = json!({"conditions": [{"type": "Ready", "status": "False",
            "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist"}]});
    });

    let mut st = settings(&fx);
    st.namespace = Some("shop".into());
    let (records, _) = scan(st).await;
    let row = at_location(&records, "fixture/shop/secret/shop-tls#tls.crt");
    let drift = row
        .k8s
        .as_ref()
        .unwrap()
        .drift
        .clone()
        .expect("drift flagged");
    assert!(
        drift.contains("Certificate shop says 2027-06-01T00:00:00Z"),
        "{drift}"
    );
    assert!(drift.contains("www.shop.example"), "{drift}");

    let pending = at_location(&records, "fixture/shop/certificate/pending");
    let err = pending.error.as_deref().unwrap();
    assert!(err.contains("Secret pending-tls not found"), "{err}");
    assert!(err.contains("DoesNotExist"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_namespace_is_a_row_and_the_other_namespaces_still_load() {
    let fx = Fixture::start().await;
    for ns in ["team-a", "locked", "team-b"] {
        let p = leaf(&[&format!("web.{ns}.example")], 60, None);
        fx.insert_value(crate::k8s_fixture::tls_secret(
            ns, "web-tls", &p.cert, &p.key,
        ));
    }
    fx.forbid("list", "secrets", Some("locked"));
    let mut st = settings(&fx);
    st.all_namespaces = true;
    let (records, failures) = scan(st).await;
    // The source is partial: its health says which namespace could not be read.
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].contains(
            "forbidden (403): missing permission `list` on `secrets` in namespace \"locked\""
        ),
        "{failures:?}"
    );
    for ns in ["team-a", "team-b"] {
        assert!(
            at_location(&records, &format!("fixture/{ns}/secret/web-tls#tls.crt"))
                .cert
                .is_some()
        );
    }
    let locked = at_location(&records, "fixture/locked/secrets");
    let k = locked.k8s.as_ref().unwrap();
    assert!(k.forbidden);
    let err = locked.error.as_deref().unwrap();
    assert!(
        err.contains(
            "forbidden (403): missing permission `list` on `secrets` in namespace \"locked\""
        ),
        "{err}"
    );
    assert!(!records
        .iter()
        .any(|r| r.location.contains("locked/secret/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_are_read_in_pages_with_continue_tokens() {
    let fx = Fixture::start().await;
    for i in 0..7 {
        let p = leaf(&[&format!("s{i}.example")], 60, None);
        fx.insert_value(crate::k8s_fixture::tls_secret(
            "paged",
            &format!("s{i}"),
            &p.cert,
            &p.key,
        ));
    }
    let mut st = settings(&fx);
    st.all_namespaces = true;
    st.page_size = 2;
    let (records, _) = scan(st).await;
    let tls: Vec<_> = records
        .iter()
        .filter(|r| r.location.ends_with("#tls.crt"))
        .collect();
    assert_eq!(tls.len(), 7);
    let pages: Vec<_> = fx
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/secrets")
        .collect();
    assert_eq!(pages.len(), 4, "7 secrets in pages of 2");
    assert!(pages
        .iter()
        .all(|p| p.param("limit").as_deref() == Some("2")));
    assert!(pages[1..].iter().all(|p| p.param("continue").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_continue_token_relists_without_duplicates() {
    let fx = Fixture::start().await;
    for i in 0..6 {
        let p = leaf(&[&format!("s{i}.example")], 60, None);
        fx.insert_value(crate::k8s_fixture::tls_secret(
            "paged",
            &format!("s{i}"),
            &p.cert,
            &p.key,
        ));
    }
    // Compact history after the first page: the second page's token is gone (410).
    fx.add_fault(
        crate::k8s_fixture::Fault::delay(
            "/api/v1/namespaces/paged/secrets",
            Duration::from_millis(1),
        )
        .times(1),
    );
    let mut st = settings(&fx);
    st.namespace = Some("paged".into());
    st.page_size = 4;
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    certdeck::sources::tls::install_crypto_provider();
    let src = certdeck::sources::k8s::source::sources_for(st).remove(0);
    let sink = certdeck::sources::Sink::new(std::sync::Arc::new(src.id().clone()), tx);
    let runner = tokio::spawn(async move { src.round(&sink).await });
    let mut seen = Vec::new();
    let mut expired = false;
    while let Some(ev) = rx.recv().await {
        if let certdeck::sources::SourceEvent::Observed { record: r, .. } = ev {
            if !expired && r.location.ends_with("#tls.crt") {
                fx.expire_continue_tokens();
                expired = true;
            }
            seen.push(r.location);
        }
    }
    runner.await.unwrap();
    let mut tls: Vec<_> = seen
        .iter()
        .filter(|l| l.ends_with("#tls.crt"))
        .cloned()
        .collect();
    let n = tls.len();
    tls.sort();
    tls.dedup();
    assert_eq!((n, tls.len()), (6, 6), "{seen:?}");
    assert!(fx.requests().iter().any(|r| r.status == 410));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_and_hanging_clusters_are_error_rows_not_stalls() {
    let fx = Fixture::start().await;
    let p = leaf(&["ok.example"], 60, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "default", "ok-tls", &p.cert, &p.key,
    ));
    fx.add_unreachable_context("gone");
    fx.add_hanging_context("hangs");
    let mut st = settings(&fx);
    st.all_contexts = true;
    st.timeout = Duration::from_secs(1);
    // A hang guard, not a speed check: each context is bounded by its request time limit.
    let (records, failures) = tokio::time::timeout(Duration::from_secs(60), scan(st))
        .await
        .expect("an unreachable or hanging cluster never stalls the scan");
    // Each context that could not be read is a failing source, named with its reason.
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("k8s gone: cluster unreachable")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.starts_with("k8s hangs: timed out after 1s")),
        "{failures:?}"
    );
    assert!(
        at_location(&records, "fixture/default/secret/ok-tls#tls.crt")
            .cert
            .is_some()
    );
    let gone = at_location(&records, "gone");
    assert!(
        gone.error.as_deref().unwrap().contains("unreachable"),
        "{:?}",
        gone.error
    );
    assert_eq!(gone.k8s.as_ref().unwrap().kind, "Cluster");
    let hangs = at_location(&records, "hangs");
    assert!(
        hangs
            .error
            .as_deref()
            .unwrap()
            .contains("timed out after 1s"),
        "{:?}",
        hangs.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_named_contexts_are_read_and_unknown_context_fails_the_source() {
    let fx = Fixture::start().await;
    let p = leaf(&["ok.example"], 60, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "default", "ok-tls", &p.cert, &p.key,
    ));
    fx.add_context("second", crate::k8s_fixture::ADMIN_TOKEN);
    let mut st = settings(&fx);
    st.contexts = vec!["fixture".into(), "second".into()];
    let (records, _) = scan(st.clone()).await;
    assert!(
        at_location(&records, "fixture/default/secret/ok-tls#tls.crt")
            .cert
            .is_some()
    );
    assert!(
        at_location(&records, "second/default/secret/ok-tls#tls.crt")
            .cert
            .is_some()
    );

    st.contexts = vec!["nope".into()];
    let (records, failures) = scan(st).await;
    assert!(records.is_empty());
    assert_eq!(failures.len(), 1);
    assert!(
        failures[0].contains("context 'nope' is not in the kubeconfig"),
        "{failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_apiservice_ca_bundles_and_kubeconfig_client_certificates_are_read() {
    let fx = Fixture::start().await;
    let root = ca("Webhook CA");
    fx.insert_value(json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "policy"},
        "webhooks": [{"name": "check.policy.example", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"caBundle": b64(&root.pem.cert), "service": {"name": "policy", "namespace": "policy"}}}]}));
    fx.insert_value(json!({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.metrics.example"},
        "spec": {"group": "metrics.example", "version": "v1beta1", "groupPriorityMinimum": 100, "versionPriority": 100,
            "caBundle": b64(&root.pem.cert), "service": {"name": "metrics", "namespace": "kube-system"}}}));
    // A kubeconfig whose user carries a client certificate (and the fixture token).
    let client = leaf(&["admin"], 20, Some(&root));
    let kc = std::fs::read_to_string(fx.kubeconfig_path())
        .unwrap()
        .replace(
            "  user:\n    token:",
            &format!(
                "  user:\n    client-certificate-data: {}\n    client-key-data: {}\n    token:",
                b64(&client.cert),
                b64(&client.key)
            ),
        );
    let path = fx.dir().join("kubeconfig-with-cert");
    std::fs::write(&path, kc).unwrap();
    let mut st = settings(&fx);
    st.kubeconfig = Some(path);
    st.all_namespaces = true;
    let (records, failures) = scan(st).await;
    assert!(failures.is_empty(), "{failures:?}");
    let wh = at_location(
        &records,
        "fixture/validatingwebhookconfiguration/policy#check.policy.example.caBundle",
    );
    assert_eq!(
        wh.cert.as_ref().unwrap().common_name.as_deref(),
        Some("Webhook CA")
    );
    let api = at_location(
        &records,
        "fixture/apiservice/v1beta1.metrics.example#caBundle",
    );
    assert!(api.cert.is_some());
    let user = at_location(
        &records,
        "fixture/kubeconfiguser/fixture#client-certificate-data",
    );
    assert_eq!(
        user.cert.as_ref().unwrap().common_name.as_deref(),
        Some("admin")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_are_an_unauthorized_row_for_that_context() {
    let fx = Fixture::start().await;
    fx.add_context("stranger", "not-a-valid-token");
    let mut st = settings(&fx);
    st.contexts = vec!["stranger".into()];
    let (records, _) = scan(st).await;
    assert_eq!(records.len(), 1, "one row for the context");
    let err = records[0].error.as_deref().unwrap();
    assert!(
        err.starts_with("unauthorized (401): the credentials of context 'stranger' were rejected"),
        "{err}"
    );
    assert_eq!(records[0].location, "stranger");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_namespace_the_contexts_own_namespace_is_read() {
    let fx = Fixture::start().await;
    for ns in ["default", "other"] {
        let p = leaf(&[&format!("web.{ns}.example")], 60, None);
        fx.insert_value(crate::k8s_fixture::tls_secret(
            ns, "web-tls", &p.cert, &p.key,
        ));
    }
    let (records, _) = scan(settings(&fx)).await;
    assert!(
        at_location(&records, "fixture/default/secret/web-tls#tls.crt")
            .cert
            .is_some()
    );
    assert!(!records.iter().any(|r| r.location.contains("/other/")));
}

/// A TLS server on 127.0.0.1 serving `pem` (any SNI); returns its port.
async fn serve_tls(pem: &crate::k8s_common::Pem) -> u16 {
    use rustls_pki_types::pem::PemObject as _;
    let chain: Vec<rustls_pki_types::CertificateDer<'static>> =
        rustls_pki_types::CertificateDer::pem_slice_iter(pem.cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut s).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_serving_an_older_certificate_than_its_secret_is_flagged() {
    let fx = Fixture::start().await;
    let old = leaf(&["shop.example"], 3, None);
    let new = leaf(&["shop.example"], 90, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop", "shop-tls", &new.cert, &new.key,
    ));
    fx.insert_value(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "shop", "namespace": "shop"},
        "spec": {"tls": [{"hosts": ["shop.example"], "secretName": "shop-tls"}],
            "rules": [{"host": "shop.example"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}}),
    );
    let port = serve_tls(&old).await;
    let mut st = settings(&fx);
    st.namespace = Some("shop".into());
    st.check_ingresses = true;
    st.ingress_port = port;
    let (records, _) = scan(st.clone()).await;
    let row = at_location(&records, "fixture/shop/ingress/shop#shop.example");
    assert_eq!(row.cert.as_ref().unwrap().sha256, facts_of(&old.cert));
    let drift = row.k8s.as_ref().unwrap().drift.clone().expect("flagged");
    assert!(drift.starts_with("serves an older certificate"), "{drift}");
    assert!(drift.contains("than Secret shop/shop-tls holds"), "{drift}");

    // Once the Secret and the endpoint agree, nothing is flagged.
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop", "shop-tls", &old.cert, &old.key,
    ));
    let (records, _) = scan(st).await;
    let row = at_location(&records, "fixture/shop/ingress/shop#shop.example");
    assert_eq!(row.k8s.as_ref().unwrap().drift, None);
}

fn facts_of(pem: &str) -> String {
    crate::k8s_common::facts(pem).sha256
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_and_failing_lists_are_retried_or_reported_per_namespace() {
    let fx = Fixture::start().await;
    for ns in ["busy", "broken", "fine"] {
        let p = leaf(&[&format!("web.{ns}.example")], 60, None);
        fx.insert_value(crate::k8s_fixture::tls_secret(
            ns, "web-tls", &p.cert, &p.key,
        ));
    }
    // One 429 (Retry-After 1 s) is retried; a 500 is this namespace's error row.
    fx.add_fault(
        crate::k8s_fixture::Fault::too_many_requests("/api/v1/namespaces/busy/secrets", 1).times(1),
    );
    fx.add_fault(crate::k8s_fixture::Fault::internal_error(
        "/api/v1/namespaces/broken/secrets",
    ));
    for ns in ["busy", "broken", "fine"] {
        let mut st = settings(&fx);
        st.namespace = Some(ns.into());
        st.timeout = Duration::from_secs(3);
        let (records, _) = scan(st).await;
        if ns == "broken" {
            let row = at_location(&records, "fixture/broken/secrets");
            assert!(
                row.error.as_deref().unwrap().starts_with("API error 500"),
                "{:?}",
                row.error
            );
        } else {
            assert!(
                at_location(&records, &format!("fixture/{ns}/secret/web-tls#tls.crt"))
                    .cert
                    .is_some()
            );
        }
    }
    assert!(fx.requests().iter().any(|r| r.status == 429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_without_cluster_list_rights_is_one_forbidden_row() {
    let fx = Fixture::start().await;
    let p = leaf(&["web.team-a.example"], 60, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a", "web-tls", &p.cert, &p.key,
    ));
    fx.forbid("list", "secrets", Some("team-b"));
    fx.forbid("list", "namespaces", None);
    let mut st = settings(&fx);
    st.all_namespaces = true;
    let (records, _) = scan(st).await;
    let rows: Vec<_> = records
        .iter()
        .filter(|r| r.location == "fixture/secrets")
        .collect();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].k8s.as_ref().unwrap().forbidden);
    let err = rows[0].error.as_deref().unwrap();
    assert!(
        err.contains("missing permission `list` on `secrets` at the cluster scope"),
        "{err}"
    );
}

/// Helm release payloads and registry credentials are never fetched: the API server is asked
/// only for Secret types that can hold certificates (a field selector on `type`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_that_cannot_hold_certificates_are_not_listed() {
    let fx = Fixture::start().await;
    let p = leaf(&["web.team-a.example"], 30, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "team-a", "web-tls", &p.cert, &p.key,
    ));
    // A Helm release Secret, big, that even holds a certificate in its payload.
    let big = "A".repeat(512 * 1024);
    fx.insert_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": "team-a"},
        "data": {"release": b64(&big), "ca.crt": b64(&p.cert)}
    }));
    fx.insert_value(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": "regcred", "namespace": "team-a"},
        "data": {".dockerconfigjson": b64("{}"), "ca.crt": b64(&p.cert)}
    }));
    let mut st = settings(&fx);
    st.namespace = Some("team-a".into());
    let (records, _) = scan(st).await;
    assert!(
        at_location(&records, "fixture/team-a/secret/web-tls#tls.crt")
            .cert
            .is_some()
    );
    for r in &records {
        assert!(
            !r.location.contains("sh.helm.release") && !r.location.contains("regcred"),
            "{} was read",
            r.location
        );
    }
    let lists: Vec<String> = fx
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/namespaces/team-a/secrets")
        .map(|r| r.query.clone())
        .collect();
    assert!(!lists.is_empty());
    for q in &lists {
        assert!(
            q.contains("fieldSelector=") && q.contains("helm.sh%2Frelease.v1"),
            "the list asks the server to leave Helm releases out: {q}"
        );
    }
}
