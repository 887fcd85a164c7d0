//! Service-mesh CAs through the Kubernetes source, through the real binary and the fixture's
//! kubeconfig: Istio's plug-in `cacerts` and self-signed `istio-ca-secret`, the
//! `istio-ca-root-cert` copies (one stale), Linkerd's identity issuer in both layouts and its
//! trust roots; roles, blast radius, drift; reading outside `-n`; RBAC without ConfigMaps;
//! the dashboard's table and details on a mesh CA row.
#![allow(clippy::unwrap_used)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};

use crate::k8s_fixture::Fixture;

/// A CA (root or intermediate) as PEM, able to sign.
pub struct Ca {
    pub cert: String,
    pub key: String,
    params: CertificateParams,
    kp: KeyPair,
}

fn at(days: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + time::Duration::days(days)
}

/// A CA named `cn` valid for `days`, self-signed or signed by `parent`.
pub fn ca(cn: &str, days: i64, parent: Option<&Ca>) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.not_before = at(-30);
    p.not_after = at(days);
    let kp = KeyPair::generate().unwrap();
    let cert = match parent {
        Some(pa) => p
            .signed_by(&kp, &Issuer::from_params(&pa.params, &pa.kp))
            .unwrap(),
        None => p.self_signed(&kp).unwrap(),
    };
    Ca {
        cert: cert.pem(),
        key: kp.serialize_pem(),
        params: p,
        kp,
    }
}

fn secret(ns: &str, name: &str, ty: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": ty,
        "metadata": {"name": name, "namespace": ns}, "stringData": data})
}

fn configmap(ns: &str, name: &str, key: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {key: value}})
}

/// The meshes' CAs, as the fixture holds them.
#[allow(dead_code)]
pub struct Meshes {
    pub istio_root: Ca,
    pub istio_issuer: Ca,
    pub istio_old: Ca,
    pub l5d_root: Ca,
    pub l5d_root_next: Ca,
    pub l5d_issuer: Ca,
}

/// Istio with a plug-in CA (an intermediate of its root) in `istio-system`, an older
/// self-signed `istio-ca-secret` left there, root copies in `istio-system` and `shop` and a
/// stale one (the old self-signed root) in `legacy`; Linkerd in `linkerd` with the
/// `crt.pem` issuer under the first of two trust roots; a plain TLS Secret in `shop`.
pub fn seed(fx: &Fixture) -> Meshes {
    let istio_root = ca("istio-root", 3650, None);
    let istio_issuer = ca("istio-intermediate", 200, Some(&istio_root));
    let istio_old = ca("istio-self-signed-old", 3650, None);
    fx.insert_value(secret(
        "istio-system",
        "cacerts",
        "Opaque",
        &[
            ("ca-cert.pem", &istio_issuer.cert),
            ("ca-key.pem", &istio_issuer.key),
            ("root-cert.pem", &istio_root.cert),
            (
                "cert-chain.pem",
                &format!("{}{}", istio_issuer.cert, istio_root.cert),
            ),
        ],
    ));
    fx.insert_value(secret(
        "istio-system",
        "istio-ca-secret",
        "istio.io/ca-root",
        &[
            ("ca-cert.pem", &istio_old.cert),
            ("ca-key.pem", &istio_old.key),
            ("cert-chain.pem", ""),
            ("root-cert.pem", ""),
        ],
    ));
    for ns in ["istio-system", "shop"] {
        fx.insert_value(configmap(
            ns,
            "istio-ca-root-cert",
            "root-cert.pem",
            &istio_root.cert,
        ));
    }
    fx.insert_value(configmap(
        "legacy",
        "istio-ca-root-cert",
        "root-cert.pem",
        &istio_old.cert,
    ));
    let l5d_root = ca("root.linkerd.cluster.local", 3650, None);
    let l5d_root_next = ca("root-2.linkerd.cluster.local", 3650, None);
    let l5d_issuer = ca("identity.linkerd.cluster.local", 300, Some(&l5d_root));
    fx.insert_value(secret(
        "linkerd",
        "linkerd-identity-issuer",
        "Opaque",
        &[("crt.pem", &l5d_issuer.cert), ("key.pem", &l5d_issuer.key)],
    ));
    fx.insert_value(configmap(
        "linkerd",
        "linkerd-identity-trust-roots",
        "ca-bundle.crt",
        &format!("{}{}", l5d_root.cert, l5d_root_next.cert),
    ));
    let web = crate::k8s_common::leaf(&["web.shop.example"], 90, None);
    fx.insert_value(crate::k8s_fixture::tls_secret(
        "shop", "web-tls", &web.cert, &web.key,
    ));
    Meshes {
        istio_root,
        istio_issuer,
        istio_old,
        l5d_root,
        l5d_root_next,
        l5d_issuer,
    }
}

fn certdeck(fx: &Fixture) -> std::process::Command {
    std::fs::write(fx.dir().join("no-config.toml"), "").unwrap();
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"));
    c.env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("XDG_CONFIG_HOME", fx.dir().join("config"))
        .env("CERTDECK_CONFIG", fx.dir().join("no-config.toml"));
    c
}

/// `certdeck scan --kubeconfig K ARGS -o json`: (exit code, records, stderr).
fn scan_json(fx: &Fixture, args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let out = certdeck(fx)
        .args(["scan", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stdout.contains("PRIVATE KEY"), "keys are never printed");
    let recs: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (out.status.code(), recs.as_array().unwrap().clone(), stderr)
}

fn at_loc<'a>(recs: &'a [Value], loc: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["location"] == loc)
        .unwrap_or_else(|| {
            let all: Vec<&Value> = recs.iter().map(|r| &r["location"]).collect();
            panic!("no row at {loc}: {all:#?}")
        })
}

const ISTIO_BLAST: &str =
    "every workload certificate of mesh istio (istio-system) is signed by this issuer";

#[test]
fn istio_and_linkerd_cas_are_rows_with_their_role_blast_radius_and_drift() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let (code, recs, stderr) = scan_json(&fx, &["-A"]);
    assert_eq!(code, Some(0), "nothing expires soon: {stderr}");

    // Istio's plug-in CA: the issuer of every workload certificate.
    let ca = at_loc(&recs, "fixture/istio-system/secret/cacerts#ca-cert.pem");
    assert_eq!(ca["source"], "k8s");
    assert_eq!(ca["subject"], "CN=istio-intermediate");
    assert_eq!(ca["issuer"], "CN=istio-root");
    assert_eq!(ca["mesh"]["role"], "mesh CA");
    assert_eq!(ca["mesh"]["mesh"], "istio");
    assert_eq!(ca["mesh"]["control_plane"], "istio-system");
    assert_eq!(ca["mesh"]["active"], true);
    assert_eq!(ca["mesh"]["blast_radius"], ISTIO_BLAST);
    let root = at_loc(&recs, "fixture/istio-system/secret/cacerts#root-cert.pem");
    assert_eq!(root["mesh"]["role"], "mesh root");
    assert_eq!(
        root["mesh"]["blast_radius"],
        "every workload of mesh istio (istio-system) trusts this root"
    );
    for n in [1, 2] {
        let chain = at_loc(
            &recs,
            &format!("fixture/istio-system/secret/cacerts#cert-chain.pem#{n}"),
        );
        assert_eq!(chain["mesh"]["role"], "mesh CA chain");
    }
    // The self-signed CA istiod no longer uses while cacerts exists.
    let old = at_loc(
        &recs,
        "fixture/istio-system/secret/istio-ca-secret#ca-cert.pem",
    );
    assert_eq!(old["mesh"]["role"], "mesh CA (inactive)");
    assert_eq!(old["mesh"]["active"], false);
    assert!(old["mesh"]["blast_radius"]
        .as_str()
        .unwrap()
        .starts_with("not in use"));
    assert_eq!(old["k8s"]["secret_type"], "istio.io/ca-root");

    // Root copies: the current one is fine, the stale one is drift.
    for ns in ["istio-system", "shop"] {
        let copy = at_loc(
            &recs,
            &format!("fixture/{ns}/configmap/istio-ca-root-cert#root-cert.pem"),
        );
        assert_eq!(copy["mesh"]["role"], "mesh root copy");
        assert_eq!(copy["k8s"]["drift"], Value::Null, "{ns}: {copy:#}");
        assert!(copy["mesh"]["compared"]
            .as_str()
            .unwrap()
            .starts_with("with the root of Secret istio-system/cacerts: istio-root"));
    }
    let stale = at_loc(
        &recs,
        "fixture/legacy/configmap/istio-ca-root-cert#root-cert.pem",
    );
    let drift = stale["k8s"]["drift"].as_str().unwrap();
    assert!(
        drift.starts_with("stale copy: holds istio-self-signed-old")
            && drift.contains("not the root istio-root")
            && drift.contains("of mesh istio (istio-system)"),
        "{drift}"
    );
    assert_eq!(stale["mesh"]["drift"], drift);
    assert_eq!(
        stale["mesh"]["blast_radius"],
        "workloads in namespace legacy trust this copy of the root of mesh istio (istio-system)"
    );

    // Linkerd: the crt.pem issuer under the first trust root, and both roots.
    let issuer = at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#crt.pem",
    );
    assert_eq!(issuer["subject"], "CN=identity.linkerd.cluster.local");
    assert_eq!(issuer["mesh"]["role"], "mesh CA");
    assert_eq!(
        issuer["mesh"]["blast_radius"],
        "every workload certificate of mesh linkerd (linkerd) is signed by this issuer"
    );
    assert_eq!(issuer["k8s"]["drift"], Value::Null);
    assert!(issuer["mesh"]["compared"]
        .as_str()
        .unwrap()
        .starts_with("with ConfigMap linkerd/linkerd-identity-trust-roots"));
    for (n, cn) in [
        (1, "root.linkerd.cluster.local"),
        (2, "root-2.linkerd.cluster.local"),
    ] {
        let r = at_loc(
            &recs,
            &format!("fixture/linkerd/configmap/linkerd-identity-trust-roots#ca-bundle.crt#{n}"),
        );
        assert_eq!(r["mesh"]["role"], "mesh trust root");
        assert_eq!(r["subject"], format!("CN={cn}"));
    }
    // Plain rows carry no mesh facts.
    let web = at_loc(&recs, "fixture/shop/secret/web-tls#tls.crt");
    assert!(web.get("mesh").is_none(), "{web:#}");
}

#[test]
fn the_table_shows_the_role_blast_radius_and_drift_as_notes() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    let out = certdeck(&fx)
        .args(["scan", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .args(["-A", "-o", "table", "--color", "never"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |loc: &str| {
        table
            .lines()
            .find(|l| l.contains(loc))
            .unwrap_or_else(|| panic!("{loc} not in {table}"))
            .to_owned()
    };
    // The CA's key sits beside it in an Opaque Secret (as Istio's plug-in CA is made): that key
    // finding takes the table's note; the role and blast radius stay in JSON and the details.
    let ca = line("cacerts#ca-cert.pem");
    assert!(
        ca.contains("key: unencrypted private key ca-key.pem in a Secret of type Opaque"),
        "{ca}"
    );
    let stale = line("drift: stale copy: holds istio-self-signed-old");
    assert!(
        stale.contains("istio-ca-root-cert#root-cert.pem"),
        "{stale}"
    );
    let issuer = line("linkerd-identity-issuer#crt.pem");
    assert!(
        issuer.contains("key: unencrypted private key key.pem in a Secret of type Opaque"),
        "{issuer}"
    );
    // A mesh row without a key beside it carries the blast radius as its note.
    let roots = line("trust-roots#ca-bundle.crt#1");
    assert!(
        roots.contains("mesh trust root: every proxy of mesh linkerd (linkerd) trusts this root"),
        "{roots}"
    );
}

#[test]
fn with_one_namespace_the_control_planes_are_still_read_by_name() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    fx.clear_requests();
    let (code, recs, stderr) = scan_json(&fx, &["-n", "shop"]);
    assert_eq!(code, Some(0), "{stderr}");
    let ca = at_loc(&recs, "fixture/istio-system/secret/cacerts#ca-cert.pem");
    assert_eq!(ca["mesh"]["role"], "mesh CA");
    let copy = at_loc(
        &recs,
        "fixture/shop/configmap/istio-ca-root-cert#root-cert.pem",
    );
    assert_eq!(copy["k8s"]["drift"], Value::Null);
    at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#crt.pem",
    );
    assert!(
        !recs
            .iter()
            .any(|r| r["location"].as_str().unwrap().contains("/legacy/")),
        "other namespaces are not listed"
    );
    // By name, not by listing the control-plane namespaces.
    let paths: Vec<String> = fx.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths
        .iter()
        .any(|p| p == "/api/v1/namespaces/istio-system/secrets/cacerts"));
    assert!(paths
        .iter()
        .any(|p| p == "/api/v1/namespaces/linkerd/configmaps/linkerd-identity-trust-roots"));
    assert!(!paths
        .iter()
        .any(|p| p == "/api/v1/namespaces/istio-system/secrets"));

    // A user who may not read the control plane: the copy says why it was not compared.
    fx.forbid("get", "secrets", Some("istio-system"));
    let (code, recs, stderr) = scan_json(&fx, &["-n", "shop"]);
    assert_eq!(
        code,
        Some(0),
        "a 403 outside the scope is no failure: {stderr}"
    );
    assert!(!recs
        .iter()
        .any(|r| r["location"].as_str().unwrap().contains("istio-system")));
    let copy = at_loc(
        &recs,
        "fixture/shop/configmap/istio-ca-root-cert#root-cert.pem",
    );
    assert_eq!(
        copy["mesh"]["compared"],
        "not compared: the CA of mesh istio (istio-system) could not be read (forbidden)"
    );
    assert_eq!(copy["k8s"]["drift"], Value::Null);
}

#[test]
fn linkerd_issuer_in_the_cert_manager_layout_and_one_no_trust_root_signed() {
    let fx = Fixture::start_blocking();
    let m = seed(&fx);
    // cert-manager's layout, issued from the second trust root.
    let issuer = ca("identity.linkerd.cluster.local", 48, Some(&m.l5d_root_next));
    fx.insert_value(secret(
        "linkerd",
        "linkerd-identity-issuer",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &issuer.cert),
            ("tls.key", &issuer.key),
            ("ca.crt", &m.l5d_root_next.cert),
        ],
    ));
    let (_, recs, stderr) = scan_json(&fx, &["-A"]);
    let crt = at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#tls.crt",
    );
    assert_eq!(crt["mesh"]["role"], "mesh CA", "{stderr}");
    assert_eq!(crt["k8s"]["drift"], Value::Null, "{crt:#}");
    assert_eq!(crt["k8s"]["secret_type"], "kubernetes.io/tls");
    let anchor = at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#ca.crt",
    );
    assert_eq!(anchor["mesh"]["role"], "mesh root");
    assert_eq!(anchor["subject"], "CN=root-2.linkerd.cluster.local");
    assert!(!recs
        .iter()
        .any(|r| r["location"] == "fixture/linkerd/secret/linkerd-identity-issuer#crt.pem"));

    // Re-issued from a CA the proxies do not trust: drift on the issuer.
    let rogue = ca("rogue-root", 3650, None);
    let bad = ca("identity.linkerd.cluster.local", 48, Some(&rogue));
    fx.insert_value(secret(
        "linkerd",
        "linkerd-identity-issuer",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &bad.cert),
            ("tls.key", &bad.key),
            ("ca.crt", &rogue.cert),
        ],
    ));
    let (_, recs, _) = scan_json(&fx, &["-A"]);
    let crt = at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#tls.crt",
    );
    assert_eq!(
        crt["k8s"]["drift"],
        "signed by none of the roots in linkerd-identity-trust-roots: proxies of mesh linkerd (linkerd) reject the certificates it issues"
    );
}

#[test]
fn rbac_without_configmaps_still_reads_the_mesh_secrets_with_a_health_note() {
    let fx = Fixture::start_blocking();
    seed(&fx);
    fx.forbid("list", "configmaps", None);
    fx.forbid("get", "configmaps", None);
    let (code, recs, stderr) = scan_json(&fx, &["-A"]);
    assert!(
        stderr.contains("forbidden (403)") && stderr.contains("configmaps"),
        "the health says what is missing: {stderr}"
    );
    assert_eq!(code, Some(3), "unreadable ConfigMaps are unknown, not ok");
    let ca = at_loc(&recs, "fixture/istio-system/secret/cacerts#ca-cert.pem");
    assert_eq!(ca["status"], "ok");
    assert_eq!(ca["mesh"]["role"], "mesh CA");
    let issuer = at_loc(
        &recs,
        "fixture/linkerd/secret/linkerd-identity-issuer#crt.pem",
    );
    assert_eq!(issuer["status"], "ok");
    assert_eq!(
        issuer["mesh"]["compared"],
        "not compared: linkerd-identity-trust-roots could not be read (forbidden)"
    );
    assert!(!recs
        .iter()
        .any(|r| r["location"].as_str().unwrap().contains("/configmap/")));
}

#[test]
fn control_plane_namespaces_come_from_the_config_and_no_mesh_turns_it_off() {
    let fx = Fixture::start_blocking();
    let root = ca("mesh-root", 3650, None);
    let issuer = ca("mesh-issuer", 100, Some(&root));
    let data = [
        ("ca-cert.pem", issuer.cert.as_str()),
        ("ca-key.pem", issuer.key.as_str()),
        ("root-cert.pem", root.cert.as_str()),
    ];
    fx.insert_value(secret("istio-prod", "cacerts", "Opaque", &data));
    // Not the control plane: an ordinary Secret that happens to be named cacerts.
    fx.insert_value(secret("istio-system", "cacerts", "Opaque", &data));
    let cfg = fx.dir().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kubernetes]\nkubeconfig = {:?}\nall_namespaces = true\n\n[kubernetes.mesh]\nistio_namespace = \"istio-prod\"\n",
            fx.kubeconfig_path().display().to_string()
        ),
    )
    .unwrap();
    let out = certdeck(&fx)
        .args(["scan", "--config"])
        .arg(&cfg)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let recs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ca = at_loc(&recs, "fixture/istio-prod/secret/cacerts#ca-cert.pem");
    assert_eq!(
        ca["mesh"]["blast_radius"],
        "every workload certificate of mesh istio (istio-prod) is signed by this issuer"
    );
    let other = at_loc(&recs, "fixture/istio-system/secret/cacerts#ca-cert.pem");
    assert!(other.get("mesh").is_none(), "{other:#}");

    let (_, recs, _) = scan_json(&fx, &["-A", "--istio-namespace", "istio-system"]);
    let ca = at_loc(&recs, "fixture/istio-system/secret/cacerts#ca-cert.pem");
    assert_eq!(ca["mesh"]["control_plane"], "istio-system");
    let (_, recs, _) = scan_json(&fx, &["-A", "--no-mesh"]);
    assert!(recs.iter().all(|r| r.get("mesh").is_none()));
}

/// The dashboard's screen at 160x40, as text.
pub fn screen(a: &certdeck::app::App) -> String {
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 40)).unwrap();
    term.draw(|f| certdeck::ui::render(a, &certdeck::config::theme::Theme::default_dark(), f))
        .unwrap();
    let buf = term.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_mesh_ca_row_and_its_blast_radius() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let fx = Fixture::start().await;
    seed(&fx);
    certdeck::sources::tls::install_crypto_provider();
    let mut st = crate::k8s_common::settings(&fx);
    st.all_namespaces = true;
    let sources = certdeck::sources::k8s::source::sources_for(st);
    let session = certdeck::actions::Session::new(Vec::new(), true, None);
    let mut h = crate::headless::Headless::start(sources, session);
    let loc = "fixture/istio-system/secret/cacerts#ca-cert.pem";
    h.until(15, "the mesh CA row", |a| {
        a.fleet.records().iter().any(|r| r.location == loc)
    })
    .await;
    h.app.run_command("filter cacerts#ca-cert");
    let table = screen(&h.app);
    let row = table
        .lines()
        .find(|l| l.contains("istio-intermediate"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("cacerts#ca-cert.pem"), "{table}");
    h.press(certdeck::app::AppEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let details = screen(&h.app);
    for want in [
        "MESH",
        "Role          mesh CA",
        "Mesh          istio (istio-system)",
        "Blast radius  every workload certificate of mesh istio (istio-system) is signed by this",
        "Object        Secret cacerts",
    ] {
        assert!(details.contains(want), "{want:?} not in {details}");
    }
}
