//! Keystores and private keys in Kubernetes, through the binary and the fixture API server:
//! stores made by the real `keytool` and `openssl pkcs12` put in Secrets and ConfigMaps, a
//! cert-manager Certificate with `spec.keystores` and its password Secrets, wrong and missing
//! passwords, each key finding on a Secret or ConfigMap made to show it, and one key under a
//! file's certificate and a Secret's. `keytool -list -v` is the oracle for what each store
//! holds, `openssl pkey` for the public-key hash.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::{json, Value};

use crate::k8s_fixture::Fixture;

const P12_PASS: &str = "p12-Secret!";
const JKS_PASS: &str = "jks-Secret!";
const BESIDE_PASS: &str = "strimzi-Secret!";
const CM_PASS: &str = "configmap-Secret!";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    run(Command::new("openssl").current_dir(dir).args(args))
}

fn keytool(dir: &Path, args: &[&str]) -> String {
    run(Command::new("keytool").current_dir(dir).args(args))
}

/// A key and certificates made by openssl, and the stores made of them, once per test run.
struct Stores {
    dir: PathBuf,
}

impl Stores {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }
}

/// `openssl req` for a key (`rsa:2048`...) and a CSR, then a certificate signed by the CA.
fn signed(d: &Path, name: &str, cn: &str, newkey: Option<&[&str]>, days: &str, extra: &[&str]) {
    let key = format!("{name}.key");
    let csr = format!("{name}.csr");
    let crt = format!("{name}.crt");
    let subj = format!("/CN={cn}");
    match newkey {
        Some(alg) => {
            let mut args = vec!["req", "-newkey"];
            args.extend_from_slice(alg);
            args.extend_from_slice(&["-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj]);
            openssl(d, &args)
        }
        // Another certificate for an existing key.
        None => openssl(
            d,
            &["req", "-new", "-key", &key, "-out", &csr, "-subj", &subj],
        ),
    };
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        days,
    ];
    args.extend_from_slice(extra);
    openssl(d, &args);
}

fn stores() -> &'static Stores {
    static S: OnceLock<Stores> = OnceLock::new();
    S.get_or_init(|| {
        // Outside the project's checkout (target/ is inside one).
        let dir = std::env::temp_dir().join(format!("certdeck-k8s-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.as_path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=K8s Keystore CA",
                "-days",
                "400",
            ],
        );
        signed(d, "web", "web.shop.test", Some(&["rsa:2048"]), "30", &[]);
        let p256 = ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];
        signed(d, "other", "other.shop.test", Some(&p256), "30", &[]);
        // cert-manager's outputs: keystore.p12 (key + chain), truststore.p12 (the CA),
        // keystore.jks (key entry `certificate` and trusted `ca`), truststore.jks.
        let p12 = format!("pass:{P12_PASS}");
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "web.crt",
                "-inkey",
                "web.key",
                "-certfile",
                "ca.crt",
                "-name",
                "certificate",
                "-out",
                "keystore.p12",
                "-passout",
                &p12,
            ],
        );
        keytool(
            d,
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                "ca.crt",
                "-storetype",
                "PKCS12",
                "-keystore",
                "truststore.p12",
                "-storepass",
                P12_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-importkeystore",
                "-srckeystore",
                "keystore.p12",
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                P12_PASS,
                "-destkeystore",
                "keystore.jks",
                "-deststoretype",
                "JKS",
                "-deststorepass",
                JKS_PASS,
                "-destkeypass",
                JKS_PASS,
            ],
        );
        for store in ["keystore.jks", "truststore.jks"] {
            keytool(
                d,
                &[
                    "-importcert",
                    "-noprompt",
                    "-alias",
                    "ca",
                    "-file",
                    "ca.crt",
                    "-storetype",
                    "JKS",
                    "-keystore",
                    store,
                    "-storepass",
                    JKS_PASS,
                ],
            );
        }
        // Strimzi's layout: ca.p12 beside ca.password, made by keytool.
        keytool(
            d,
            &[
                "-genkeypair",
                "-alias",
                "cluster-ca",
                "-keyalg",
                "EC",
                "-dname",
                "CN=cluster-ca.kafka.test",
                "-validity",
                "60",
                "-storetype",
                "PKCS12",
                "-keystore",
                "strimzi.p12",
                "-storepass",
                BESIDE_PASS,
            ],
        );
        // A legacy (3DES/RC2) PKCS#12 with a key, for a ConfigMap.
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-legacy",
                "-in",
                "other.crt",
                "-inkey",
                "other.key",
                "-name",
                "client",
                "-out",
                "client.pfx",
                "-passout",
                &format!("pass:{CM_PASS}"),
            ],
        );
        // A store with no password anywhere near it, and a truncated one.
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "other.crt",
                "-inkey",
                "other.key",
                "-name",
                "app",
                "-out",
                "app.p12",
                "-passout",
                "pass:unknown-elsewhere",
            ],
        );
        let data = std::fs::read(d.join("keystore.p12")).unwrap();
        std::fs::write(d.join("cut.p12"), &data[..data.len() / 2]).unwrap();
        // A weak certificate (RSA 1024, SHA-1), an encrypted key, and a second certificate
        // for the web key (another name), and a renewal of it (same name) for key reuse.
        signed(
            d,
            "weak",
            "weak.shop.test",
            Some(&["rsa:1024"]),
            "30",
            &["-sha1"],
        );
        openssl(
            d,
            &[
                "pkey", "-in", "web.key", "-aes256", "-passout", "pass:x", "-out", "enc.key",
            ],
        );
        openssl(d, &["ec", "-in", "other.key", "-out", "other.sec1"]);
        assert!(std::fs::read_to_string(d.join("other.sec1"))
            .unwrap()
            .contains("BEGIN EC PRIVATE KEY"));
        std::fs::copy(d.join("web.key"), d.join("api.key")).unwrap();
        signed(d, "api", "api.shop.test", None, "40", &[]);
        std::fs::copy(d.join("other.key"), d.join("renewed.key")).unwrap();
        signed(d, "renewed", "other.shop.test", None, "60", &[]);
        Stores { dir }
    })
}

/// `keytool -list -v`: alias -> SHA-256 fingerprints (lowercase hex), leaf first.
fn keytool_list(path: &str, storetype: &str, pass: &str) -> BTreeMap<String, Vec<String>> {
    let out = keytool(
        Path::new("/"),
        &[
            "-list",
            "-v",
            "-keystore",
            path,
            "-storetype",
            storetype,
            "-storepass",
            pass,
        ],
    );
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut alias = None;
    for line in out.lines() {
        if let Some(a) = line.strip_prefix("Alias name: ") {
            alias = Some(a.trim().to_owned());
            map.entry(a.trim().to_owned()).or_default();
        } else if let Some(f) = line.trim().strip_prefix("SHA256: ") {
            if let Some(a) = &alias {
                map.get_mut(a)
                    .unwrap()
                    .push(f.replace(':', "").to_ascii_lowercase());
            }
        }
    }
    map
}

/// Our rows of one stored keystore: alias -> [leaf sha256, chain sha256...].
fn ours(rows: &[Value], shown: &str) -> BTreeMap<String, Vec<String>> {
    rows.iter()
        .filter(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{shown}#")))
        })
        .map(|r| {
            let mut fps = vec![r["sha256"].as_str().unwrap().to_owned()];
            fps.extend(
                r["chain"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["sha256"].as_str().unwrap().to_owned()),
            );
            (r["keystore"]["alias"].as_str().unwrap().to_owned(), fps)
        })
        .collect()
}

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn secret(ns: &str, name: &str, ty: &str, data: &[(&str, &[u8])]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(b64(v))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
        "type": ty, "data": data})
}

fn certdeck(fx: &Fixture) -> Command {
    std::fs::write(fx.dir().join("no-config.toml"), "").unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_certdeck"));
    c.env_remove("KUBECONFIG")
        .env("HOME", fx.dir())
        .env("XDG_CONFIG_HOME", fx.dir().join("config"))
        .env("CERTDECK_CONFIG", fx.dir().join("no-config.toml"));
    c
}

/// `certdeck scan` of namespace `ns` (and `more` targets) as JSON: rows, stdout, stderr.
fn scan(fx: &Fixture, ns: &str, more: &[&str]) -> (Vec<Value>, String, String) {
    let out = certdeck(fx)
        .args(["scan", "--no-revocation", "--kubeconfig"])
        .arg(fx.kubeconfig_path())
        .args(["-n", ns, "-o", "json"])
        .args(more)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout} {stderr}"));
    (v.as_array().unwrap().clone(), stdout, stderr)
}

fn by_location<'a>(rows: &'a [Value], loc: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == loc)
        .unwrap_or_else(|| {
            let all: Vec<&Value> = rows.iter().map(|r| &r["location"]).collect();
            panic!("no row {loc} in {all:#?}")
        })
}

/// (code, severity, location) of a row's key findings, worst first.
fn findings(rows: &[Value], loc: &str) -> Vec<(String, String, Option<String>)> {
    by_location(rows, loc)["key_findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["location"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn f(code: &str, sev: &str, loc: Option<&str>) -> (String, String, Option<String>) {
    (code.to_owned(), sev.to_owned(), loc.map(str::to_owned))
}

/// Nothing secret in what certdeck printed: no password, no line of a private key.
fn assert_no_secrets(s: &Stores, out: &str) {
    for p in [
        P12_PASS,
        JKS_PASS,
        BESIDE_PASS,
        CM_PASS,
        "unknown-elsewhere",
    ] {
        assert!(!out.contains(p), "a password in the output");
    }
    for k in ["web.key", "other.key", "weak.key"] {
        for line in s.text(k).lines().filter(|l| !l.starts_with("-----")) {
            assert!(!out.contains(line), "key material of {k} in the output");
        }
    }
}

#[test]
fn keystores_in_secrets_and_configmaps_list_their_entries_with_cert_managers_and_nearby_passwords()
{
    let s = stores();
    let fx = Fixture::start_blocking();
    // The Secret cert-manager writes for a Certificate with JKS and PKCS#12 keystores.
    let chain = s.text("web.crt") + &s.text("ca.crt");
    fx.insert_value(secret(
        "shop",
        "web-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", chain.as_bytes()),
            ("tls.key", &s.read("web.key")),
            ("ca.crt", &s.read("ca.crt")),
            ("keystore.p12", &s.read("keystore.p12")),
            ("truststore.p12", &s.read("truststore.p12")),
            ("keystore.jks", &s.read("keystore.jks")),
            ("truststore.jks", &s.read("truststore.jks")),
        ],
    ));
    fx.insert_value(secret(
        "shop",
        "web-p12-pass",
        "Opaque",
        &[("password", P12_PASS.as_bytes())],
    ));
    fx.insert_value(secret(
        "shop",
        "web-jks-pass",
        "Opaque",
        &[("jks", JKS_PASS.as_bytes())],
    ));
    let mut cert =
        crate::k8s_fixture::certificate("shop", "web", "web-tls", "ca", &["web.shop.test"]);
    cert["spec"]["keystores"] = json!({
        "pkcs12": {"create": true, "profile": "Modern2023",
                   "passwordSecretRef": {"name": "web-p12-pass", "key": "password"}},
        "jks": {"create": true, "passwordSecretRef": {"name": "web-jks-pass", "key": "jks"}},
    });
    fx.insert_value(cert);
    // Strimzi's layout: the store and its password side by side in an Opaque Secret.
    fx.insert_value(secret(
        "shop",
        "cluster-ca",
        "Opaque",
        &[
            ("ca.p12", &s.read("strimzi.p12")),
            ("ca.password", format!("{BESIDE_PASS}\n").as_bytes()),
        ],
    ));
    // A ConfigMap: a JKS truststore (no password: listed, unverified) and a legacy PKCS#12
    // with a key, its password in the text data, the store base64 in the text data too.
    fx.insert_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "trust", "namespace": "shop"},
        "binaryData": {"truststore.jks": b64(&s.read("truststore.jks"))},
        "data": {"client.pfx": b64(&s.read("client.pfx")), "client.password": CM_PASS}}));

    let (rows, out, err) = scan(&fx, "shop", &[]);
    assert_no_secrets(s, &(out.clone() + &err));

    // Every store lists what keytool lists, alias by alias, with the chain.
    for (key, ty, pass) in [
        ("keystore.p12", "PKCS12", P12_PASS),
        ("truststore.p12", "PKCS12", P12_PASS),
        ("keystore.jks", "JKS", JKS_PASS),
        ("truststore.jks", "JKS", JKS_PASS),
    ] {
        assert_eq!(
            ours(&rows, &format!("fixture/shop/secret/web-tls#{key}")),
            keytool_list(&s.path(key), ty, pass),
            "{key}"
        );
    }
    assert_eq!(
        ours(&rows, "fixture/shop/secret/cluster-ca#ca.p12"),
        keytool_list(&s.path("strimzi.p12"), "PKCS12", BESIDE_PASS)
    );
    assert_eq!(
        ours(&rows, "fixture/shop/configmap/trust#client.pfx"),
        keytool_list(&s.path("client.pfx"), "PKCS12", CM_PASS)
    );
    assert_eq!(
        ours(&rows, "fixture/shop/configmap/trust#truststore.jks"),
        keytool_list(&s.path("truststore.jks"), "JKS", JKS_PASS)
    );

    // Rows: alias and entry type, the Kubernetes object and key, where the password came from.
    let p12 = by_location(
        &rows,
        "fixture/shop/secret/web-tls#keystore.p12#certificate",
    );
    assert_eq!(p12["source"], "k8s");
    assert_eq!(p12["k8s"]["kind"], "Secret");
    assert_eq!(p12["k8s"]["name"], "web-tls");
    assert_eq!(p12["k8s"]["key"], "keystore.p12");
    assert_eq!(p12["keystore"]["format"], "PKCS12");
    assert_eq!(p12["keystore"]["entry"], "private_key");
    assert_eq!(p12["keystore"]["integrity_verified"], true);
    assert_eq!(
        p12["keystore"]["password_from"],
        "Secret shop/web-p12-pass#password (spec.keystores.pkcs12.passwordSecretRef of \
         Certificate web)"
    );
    let jks = by_location(&rows, "fixture/shop/secret/web-tls#keystore.jks#ca");
    assert_eq!(jks["keystore"]["entry"], "trusted_certificate");
    assert_eq!(
        jks["keystore"]["password_from"],
        "Secret shop/web-jks-pass#jks (spec.keystores.jks.passwordSecretRef of Certificate web)"
    );
    let beside = by_location(&rows, "fixture/shop/secret/cluster-ca#ca.p12#cluster-ca");
    assert_eq!(
        beside["keystore"]["password_from"],
        "Secret key shop/cluster-ca#ca.password"
    );
    let trust = by_location(&rows, "fixture/shop/configmap/trust#truststore.jks#ca");
    assert_eq!(trust["keystore"]["integrity_verified"], false);
    assert_eq!(
        trust["keystore"]["password_from"],
        "none (the empty password)"
    );

    // Key findings of the key entries, by where the store and its password are kept.
    let ks = |k: &str| format!("fixture/shop/{k}");
    assert_eq!(
        findings(&rows, &ks("secret/web-tls#keystore.p12#certificate")),
        [f(
            "key_in_keystore",
            "protected",
            Some(&ks("secret/web-tls#keystore.p12"))
        )]
    );
    assert_eq!(
        findings(&rows, &ks("secret/cluster-ca#ca.p12#cluster-ca")),
        [f(
            "key_in_keystore",
            "warning",
            Some(&ks("secret/cluster-ca#ca.p12"))
        )]
    );
    assert_eq!(
        findings(&rows, &ks("configmap/trust#client.pfx#client")),
        [
            f(
                "key_in_configmap",
                "critical",
                Some(&ks("configmap/trust#client.pfx"))
            ),
            f(
                "key_in_keystore",
                "info",
                Some(&ks("configmap/trust#client.pfx"))
            )
        ]
    );
    assert!(findings(&rows, &ks("secret/web-tls#truststore.p12#ca")).is_empty());
    // tls.crt and the keystores hold one certificate: that is not key reuse.
    assert_eq!(
        findings(&rows, &ks("secret/web-tls#tls.crt")),
        [f(
            "key_in_tls_secret",
            "info",
            Some(&ks("secret/web-tls#tls.key"))
        )]
    );
    assert!(
        !out.contains("key_reused"),
        "one certificate in several stores is not reuse: {out}"
    );
}

#[test]
fn wrong_missing_and_unreadable_keystore_passwords_are_error_rows_naming_their_source() {
    let s = stores();
    let fx = Fixture::start_blocking();
    let p12 = s.read("keystore.p12");
    let tls = |name: &str, ns: &str| {
        secret(
            ns,
            name,
            "kubernetes.io/tls",
            &[
                ("tls.crt", &s.read("web.crt")),
                ("tls.key", &s.read("web.key")),
                ("keystore.p12", &p12),
            ],
        )
    };
    let with_ref = |ns: &str, name: &str, secret_name: &str, pw_secret: &str, key: &str| {
        let mut c =
            crate::k8s_fixture::certificate(ns, name, secret_name, "ca", &["web.shop.test"]);
        c["spec"]["keystores"] = json!({"pkcs12": {"create": true,
            "passwordSecretRef": {"name": pw_secret, "key": key}}});
        c
    };
    // Wrong password, password Secret missing, key missing, and a literal password that opens.
    fx.insert_value(tls("wrong-tls", "shop"));
    fx.insert_value(secret(
        "shop",
        "wrong-pass",
        "Opaque",
        &[("password", b"not-it")],
    ));
    fx.insert_value(with_ref(
        "shop",
        "wrong",
        "wrong-tls",
        "wrong-pass",
        "password",
    ));
    fx.insert_value(tls("gone-tls", "shop"));
    fx.insert_value(with_ref(
        "shop",
        "gone",
        "gone-tls",
        "no-such-secret",
        "password",
    ));
    fx.insert_value(tls("nokey-tls", "shop"));
    fx.insert_value(with_ref("shop", "nokey", "nokey-tls", "wrong-pass", "pass"));
    fx.insert_value(tls("literal-tls", "shop"));
    let mut lit = crate::k8s_fixture::certificate("shop", "literal", "literal-tls", "ca", &[]);
    lit["spec"]["keystores"] = json!({"pkcs12": {"create": true, "password": P12_PASS}});
    fx.insert_value(lit);
    // No password anywhere, and a truncated store.
    fx.insert_value(secret(
        "shop",
        "app",
        "Opaque",
        &[("app.p12", &s.read("app.p12"))],
    ));
    fx.insert_value(secret(
        "shop",
        "cut",
        "Opaque",
        &[
            ("cut.p12", &s.read("cut.p12")),
            ("cut.password", P12_PASS.as_bytes()),
        ],
    ));
    // A namespace where the password Secret may be listed but not read with get.
    fx.insert_value(tls("locked-tls", "locked"));
    fx.insert_value(secret(
        "locked",
        "locked-pass",
        "Opaque",
        &[("password", P12_PASS.as_bytes())],
    ));
    fx.insert_value(with_ref(
        "locked",
        "locked",
        "locked-tls",
        "locked-pass",
        "password",
    ));
    fx.forbid("get", "secrets", Some("locked"));

    let (rows, out, err) = scan(&fx, "shop", &[]);
    assert_no_secrets(s, &(out.clone() + &err));
    let error = |loc: &str| {
        by_location(&rows, loc)["error"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        error("fixture/shop/secret/wrong-tls#keystore.p12"),
        "PKCS#12 keystore: wrong password or corrupt keystore (the password from Secret \
         shop/wrong-pass#password (spec.keystores.pkcs12.passwordSecretRef of Certificate wrong) \
         does not open it)"
    );
    assert_eq!(
        by_location(&rows, "fixture/shop/secret/wrong-tls#keystore.p12")["status"],
        "error"
    );
    assert_eq!(
        error("fixture/shop/secret/gone-tls#keystore.p12"),
        "PKCS#12 keystore: password not available: password Secret shop/no-such-secret not found \
         (spec.keystores.pkcs12.passwordSecretRef of Certificate gone)"
    );
    assert_eq!(
        error("fixture/shop/secret/nokey-tls#keystore.p12"),
        "PKCS#12 keystore: password not available: password Secret shop/wrong-pass has no key \
         \"pass\" (spec.keystores.pkcs12.passwordSecretRef of Certificate nokey)"
    );
    let lit = by_location(
        &rows,
        "fixture/shop/secret/literal-tls#keystore.p12#certificate",
    );
    assert_eq!(
        lit["keystore"]["password_from"],
        "spec.keystores.pkcs12.password of Certificate shop/literal"
    );
    assert_eq!(
        findings(
            &rows,
            "fixture/shop/secret/literal-tls#keystore.p12#certificate"
        )[0],
        f(
            "key_in_keystore",
            "info",
            Some("fixture/shop/secret/literal-tls#keystore.p12")
        )
    );
    assert!(
        error("fixture/shop/secret/app#app.p12").starts_with(
            "PKCS#12 keystore: wrong password or corrupt keystore (no password found for it \
             (cert-manager's passwordSecretRef, or a key such as app.password beside it)"
        ),
        "{}",
        error("fixture/shop/secret/app#app.p12")
    );
    assert_eq!(
        error("fixture/shop/secret/cut#cut.p12"),
        "PKCS#12 keystore: truncated keystore: the file ends before its entries do"
    );
    // The tls.crt rows beside the failing stores are read as usual.
    let crt = by_location(&rows, "fixture/shop/secret/wrong-tls#tls.crt");
    assert!(crt["error"].is_null() && crt["sha256"].is_string(), "{crt}");

    let (rows, out, err) = scan(&fx, "locked", &[]);
    assert_no_secrets(s, &(out + &err));
    let e = by_location(&rows, "fixture/locked/secret/locked-tls#keystore.p12")["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e.starts_with(
            "PKCS#12 keystore: password not available: password Secret locked/locked-pass could \
             not be read: forbidden (403)"
        ),
        "{e}"
    );
}

#[test]
fn key_findings_name_keys_in_configmaps_opaque_secrets_mismatches_and_weak_certificates() {
    let s = stores();
    let fx = Fixture::start_blocking();
    let (web_crt, web_key) = (s.read("web.crt"), s.read("web.key"));
    // A key beside its certificate in a ConfigMap, and a key alone in another.
    fx.insert_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "app-config", "namespace": "shop"},
        "data": {"tls.crt": s.text("web.crt"), "tls.key": s.text("web.key"), "mode": "prod"}}));
    fx.insert_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "signing", "namespace": "shop"},
        "data": {"signing.key": s.text("other.key")}}));
    // Opaque Secrets: a plain key pair, and an encrypted key.
    fx.insert_value(secret(
        "shop",
        "opaque-pair",
        "Opaque",
        &[("tls.crt", &web_crt), ("tls.key", &web_key)],
    ));
    fx.insert_value(secret(
        "shop",
        "opaque-enc",
        "Opaque",
        &[("server.crt", &web_crt), ("server.key", &s.read("enc.key"))],
    ));
    // TLS Secrets: a key of another certificate, and a weak certificate.
    fx.insert_value(secret(
        "shop",
        "mismatch-tls",
        "kubernetes.io/tls",
        &[("tls.crt", &web_crt), ("tls.key", &s.read("other.key"))],
    ));
    fx.insert_value(secret(
        "shop",
        "weak-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("weak.crt")),
            ("tls.key", &s.read("weak.key")),
        ],
    ));
    // A SEC1 key (`EC PRIVATE KEY`) is compared too.
    fx.insert_value(secret(
        "shop",
        "sec1-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("other.crt")),
            ("tls.key", &s.read("other.sec1")),
        ],
    ));
    // Only a signing key in an Opaque Secret: no certificate to say it of, no row.
    fx.insert_value(secret(
        "shop",
        "jwt",
        "Opaque",
        &[("jwt.key", &s.read("other.key"))],
    ));

    let (rows, out, err) = scan(&fx, "shop", &[]);
    assert_no_secrets(s, &(out.clone() + &err));
    let at = |k: &str| format!("fixture/shop/{k}");
    assert_eq!(
        findings(&rows, &at("configmap/app-config#tls.crt")),
        [f(
            "key_in_configmap",
            "critical",
            Some(&at("configmap/app-config#tls.key"))
        )]
    );
    let alone = by_location(&rows, &at("configmap/signing#signing.key"));
    assert_eq!(alone["status"], "error");
    assert_eq!(
        alone["error"],
        "signing.key holds a private key and no certificate"
    );
    assert_eq!(
        findings(&rows, &at("configmap/signing#signing.key")),
        [f(
            "key_in_configmap",
            "critical",
            Some(&at("configmap/signing#signing.key"))
        )]
    );
    assert_eq!(
        findings(&rows, &at("secret/opaque-pair#tls.crt")),
        [f(
            "key_in_opaque_secret",
            "warning",
            Some(&at("secret/opaque-pair#tls.key"))
        )]
    );
    assert_eq!(
        findings(&rows, &at("secret/opaque-enc#server.crt")),
        [f(
            "key_encrypted",
            "protected",
            Some(&at("secret/opaque-enc#server.key"))
        )]
    );
    assert_eq!(
        findings(&rows, &at("secret/mismatch-tls#tls.crt")),
        [
            f(
                "key_mismatch",
                "critical",
                Some(&at("secret/mismatch-tls#tls.key"))
            ),
            f(
                "key_in_tls_secret",
                "info",
                Some(&at("secret/mismatch-tls#tls.key"))
            )
        ]
    );
    assert_eq!(
        findings(&rows, &at("secret/weak-tls#tls.crt")),
        [
            f("weak_key", "critical", None),
            f("weak_signature", "critical", None),
            f(
                "key_in_tls_secret",
                "info",
                Some(&at("secret/weak-tls#tls.key"))
            )
        ]
    );
    assert_eq!(
        findings(&rows, &at("secret/sec1-tls#tls.crt")),
        [f(
            "key_in_tls_secret",
            "info",
            Some(&at("secret/sec1-tls#tls.key"))
        )]
    );
    assert!(
        !rows
            .iter()
            .any(|r| r["location"].as_str().unwrap().contains("/jwt")),
        "a key without a certificate in a Secret gives no row"
    );
    // The table's note says the worst finding; the key is named, never shown.
    let table = certdeck(&fx)
        .args([
            "scan",
            "--no-revocation",
            "--color",
            "never",
            "--kubeconfig",
        ])
        .arg(fx.kubeconfig_path())
        .args(["-n", "shop"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert_no_secrets(s, &table);
    let line = table
        .lines()
        .find(|l| l.contains("configmap/app-config#tls.crt"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        line.contains("key: unencrypted private key tls.key in a ConfigMap"),
        "{line}"
    );
}

/// The SPKI SHA-256 of a certificate's key, as openssl computes it.
fn openssl_spki(dir: &Path, crt: &str) -> String {
    let pubkey = openssl(dir, &["x509", "-in", crt, "-noout", "-pubkey"]);
    let pem = dir.join(format!("{crt}.pub.pem"));
    std::fs::write(&pem, pubkey).unwrap();
    let der = dir.join(format!("{crt}.pub.der"));
    openssl(
        dir,
        &[
            "pkey",
            "-pubin",
            "-in",
            &pem.display().to_string(),
            "-outform",
            "DER",
            "-out",
            &der.display().to_string(),
        ],
    );
    let out = openssl(dir, &["dgst", "-sha256", "-r", &der.display().to_string()]);
    out.split_whitespace().next().unwrap().to_owned()
}

#[test]
fn one_key_under_a_files_certificate_and_a_secrets_is_reuse_on_both_and_renewals_say_so_mildly() {
    let s = stores();
    let fx = Fixture::start_blocking();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join("web.crt");
    std::fs::copy(s.dir.join("web.crt"), &file).unwrap();
    let renewed_file = files.path().join("other.crt");
    std::fs::copy(s.dir.join("other.crt"), &renewed_file).unwrap();
    // api.crt: another name, the web key. renewed.crt: other.shop.test again, the same key.
    fx.insert_value(secret(
        "shop",
        "api-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("api.crt")),
            ("tls.key", &s.read("api.key")),
        ],
    ));
    fx.insert_value(secret(
        "shop",
        "other-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("renewed.crt")),
            ("tls.key", &s.read("renewed.key")),
        ],
    ));
    let (f1, f2) = (
        file.display().to_string(),
        renewed_file.display().to_string(),
    );
    let (rows, out, err) = scan(&fx, "shop", &[&f1, &f2]);
    assert_no_secrets(s, &(out + &err));
    // The key's identity is what openssl says it is.
    let web_spki = openssl_spki(&s.dir, "web.crt");
    assert_eq!(by_location(&rows, &f1)["spki_sha256"], web_spki.as_str());
    assert_eq!(
        by_location(&rows, "fixture/shop/secret/api-tls#tls.crt")["spki_sha256"],
        web_spki.as_str()
    );
    let reuse = |loc: &str| -> Vec<Value> {
        by_location(&rows, loc)["key_findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"].as_str().unwrap().starts_with("key_reused"))
            .cloned()
            .collect()
    };
    let short = &web_spki[..16];
    let on_file = reuse(&f1);
    assert_eq!(on_file.len(), 1, "{on_file:?}");
    assert_eq!(on_file[0]["code"], "key_reused");
    assert_eq!(on_file[0]["severity"], "warning");
    assert_eq!(
        on_file[0]["message"],
        format!("the same key (SPKI SHA-256 {short}…) is in 1 other certificate")
    );
    assert_eq!(
        on_file[0]["location"],
        "fixture/shop/secret/api-tls#tls.crt"
    );
    let on_secret = reuse("fixture/shop/secret/api-tls#tls.crt");
    assert_eq!(on_secret[0]["code"], "key_reused");
    assert_eq!(on_secret[0]["location"], f1.as_str());
    // The renewal that kept its key: info on both, naming the other place.
    let renewal = reuse(&f2);
    assert_eq!(renewal[0]["code"], "key_reused_on_renewal");
    assert_eq!(renewal[0]["severity"], "info");
    assert_eq!(
        renewal[0]["location"],
        "fixture/shop/secret/other-tls#tls.crt"
    );
    assert_eq!(
        reuse("fixture/shop/secret/other-tls#tls.crt")[0]["location"],
        f2.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_key_reuse_when_a_secret_with_the_same_key_appears_live() {
    use crate::headless::{key, Headless};
    use certdeck::actions::Session;
    let s = stores();
    let fx = Fixture::start().await;
    fx.insert_value(secret(
        "shop",
        "web-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("web.crt")),
            ("tls.key", &s.read("web.key")),
        ],
    ));
    let mut st = crate::k8s_common::settings(&fx);
    st.namespace = Some("shop".into());
    let sources = certdeck::sources::k8s::source::sources_for(st);
    let mut h = Headless::start(sources, Session::new(Vec::new(), true, None));
    let web = "fixture/shop/secret/web-tls#tls.crt";
    h.until(10, "the first round", |a| {
        a.fleet.records().iter().any(|r| r.location == web)
    })
    .await;
    assert!(h.row(web).unwrap().key_reuse.is_empty());
    // Another certificate for the same key arrives through the watch.
    fx.insert_value(secret(
        "shop",
        "api-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("api.crt")),
            ("tls.key", &s.read("api.key")),
        ],
    ));
    h.until(10, "key reuse on the first row", |a| {
        a.fleet
            .records()
            .iter()
            .any(|r| r.location == web && r.key_reuse.iter().any(|f| f.code == "key_reused"))
    })
    .await;
    // The details view of the row says so.
    h.press(key('/'));
    for c in "web-tls".chars() {
        h.press(key(c));
    }
    h.press(enter());
    h.press(enter());
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 50)).unwrap();
    term.draw(|fr| {
        certdeck::ui::render(&h.app, &certdeck::config::theme::Theme::default_dark(), fr)
    })
    .unwrap();
    let buf = term.backend().buffer().clone();
    let screen: String = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect();
    assert!(screen.contains("the same key (SPKI SHA-256"), "{screen}");
    assert!(
        screen.contains("fixture/shop/secret/api-tls#tls.crt"),
        "{screen}"
    );
}

fn enter() -> certdeck::app::AppEvent {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    certdeck::app::AppEvent::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_watch_opens_a_keystore_that_appears_and_follows_its_certificates_password() {
    use crate::headless::Headless;
    use certdeck::actions::Session;
    let s = stores();
    let fx = Fixture::start().await;
    fx.insert_value(secret(
        "shop",
        "web-p12-pass",
        "Opaque",
        &[("password", P12_PASS.as_bytes())],
    ));
    fx.insert_value(secret(
        "shop",
        "wrong-pass",
        "Opaque",
        &[("password", b"not-it")],
    ));
    let mut cert =
        crate::k8s_fixture::certificate("shop", "web", "web-tls", "ca", &["web.shop.test"]);
    cert["spec"]["keystores"] = json!({"pkcs12": {"create": true,
        "passwordSecretRef": {"name": "web-p12-pass", "key": "password"}}});
    fx.insert_value(cert.clone());
    let mut st = crate::k8s_common::settings(&fx);
    st.namespace = Some("shop".into());
    let sources = certdeck::sources::k8s::source::sources_for(st);
    let mut h = Headless::start(sources, Session::new(Vec::new(), true, None));
    h.until(10, "the Certificate's own row", |a| {
        a.fleet
            .records()
            .iter()
            .any(|r| r.location == "fixture/shop/certificate/web")
    })
    .await;
    // cert-manager writes the Secret: its keystore opens with the password the round read.
    fx.insert_value(secret(
        "shop",
        "web-tls",
        "kubernetes.io/tls",
        &[
            ("tls.crt", &s.read("web.crt")),
            ("tls.key", &s.read("web.key")),
            ("keystore.p12", &s.read("keystore.p12")),
        ],
    ));
    let entry = "fixture/shop/secret/web-tls#keystore.p12#certificate";
    h.until(10, "the keystore entry's row", |a| {
        a.fleet
            .records()
            .iter()
            .any(|r| r.location == entry && r.cert.is_some())
    })
    .await;
    // The Certificate now names another password Secret: the rows follow, without a round.
    cert["spec"]["keystores"]["pkcs12"]["passwordSecretRef"]["name"] = json!("wrong-pass");
    fx.insert_value(cert);
    let store = "fixture/shop/secret/web-tls#keystore.p12";
    // The store's row says so, and the entry's row is gone (removed after the new rows).
    h.until(10, "the wrong-password row instead of the entry's", |a| {
        let recs = a.fleet.records();
        recs.iter().any(|r| {
            r.location == store
                && r.error
                    .as_deref()
                    .is_some_and(|e| e.contains("wrong password") && e.contains("wrong-pass"))
        }) && !recs.iter().any(|r| r.location == entry)
    })
    .await;
}
