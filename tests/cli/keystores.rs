//! Keystores through the binary: PKCS#12 made by `openssl pkcs12` (modern AES/PBKDF2 and
//! `-legacy` 3DES/RC2) and by `keytool` (modern and legacy), JKS and JCEKS made by `keytool`
//! (key entries with chains, trusted entries, a JCEKS secret key), passwords from an
//! environment variable, a file and a command, wrong passwords, no password, truncated files.
//! `keytool -list -v` is the oracle for what each store holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const P12_PASS: &str = "p12-Pass!";
const JKS_PASS: &str = "jks-Pass!";
const JCEKS_PASS: &str = "jceks-Pass!";

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

/// The stores, made once for every test in this module.
struct Stores {
    dir: PathBuf,
}

impl Stores {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

fn stores() -> &'static Stores {
    static S: OnceLock<Stores> = OnceLock::new();
    S.get_or_init(|| {
        // In the system's temporary directory: the project's target/ is inside a checkout,
        // which the key audit rightly reports.
        let dir = std::env::temp_dir().join(format!("certdeck-keystores-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let d = dir.as_path();
        // A CA and a leaf it signs (20 days), as openssl makes them.
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
                "/CN=Keystore Test CA",
                "-days",
                "400",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=kafka.test",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.crt",
                "-days",
                "20",
            ],
        );
        let pass = format!("pass:{P12_PASS}");
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "leaf.crt",
                "-inkey",
                "leaf.key",
                "-certfile",
                "ca.crt",
                "-name",
                "kafka",
                "-out",
                "modern.p12",
                "-passout",
                &pass,
            ],
        );
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-legacy",
                "-in",
                "leaf.crt",
                "-inkey",
                "leaf.key",
                "-certfile",
                "ca.crt",
                "-name",
                "kafka",
                "-out",
                "legacy.pfx",
                "-passout",
                &pass,
            ],
        );
        openssl(
            d,
            &[
                "pkcs12",
                "-export",
                "-in",
                "leaf.crt",
                "-inkey",
                "leaf.key",
                "-name",
                "nopass",
                "-out",
                "empty.p12",
                "-passout",
                "pass:",
            ],
        );
        // keytool: a PKCS#12 with a key entry, a legacy one, a truststore.
        keytool(
            d,
            &[
                "-genkeypair",
                "-alias",
                "broker",
                "-keyalg",
                "EC",
                "-dname",
                "CN=broker.test",
                "-validity",
                "30",
                "-storetype",
                "PKCS12",
                "-keystore",
                "keytool.p12",
                "-storepass",
                P12_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-genkeypair",
                "-J-Dkeystore.pkcs12.legacy",
                "-alias",
                "old",
                "-keyalg",
                "RSA",
                "-dname",
                "CN=old.test",
                "-validity",
                "40",
                "-storetype",
                "PKCS12",
                "-keystore",
                "keytool-legacy.p12",
                "-storepass",
                P12_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "testca",
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
        // JKS: the openssl key and chain imported, plus a trusted CA entry.
        keytool(
            d,
            &[
                "-importkeystore",
                "-srckeystore",
                "modern.p12",
                "-srcstoretype",
                "PKCS12",
                "-srcstorepass",
                P12_PASS,
                "-destkeystore",
                "broker.jks",
                "-deststoretype",
                "JKS",
                "-deststorepass",
                JKS_PASS,
                "-destkeypass",
                JKS_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "root",
                "-file",
                "ca.crt",
                "-storetype",
                "JKS",
                "-keystore",
                "broker.jks",
                "-storepass",
                JKS_PASS,
            ],
        );
        // JCEKS: a key entry, a secret key, a trusted entry.
        keytool(
            d,
            &[
                "-genkeypair",
                "-alias",
                "svc",
                "-keyalg",
                "RSA",
                "-dname",
                "CN=svc.test",
                "-validity",
                "50",
                "-storetype",
                "JCEKS",
                "-keystore",
                "vault.jceks",
                "-storepass",
                JCEKS_PASS,
                "-keypass",
                JCEKS_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-genseckey",
                "-alias",
                "aes",
                "-keyalg",
                "AES",
                "-keysize",
                "128",
                "-storetype",
                "JCEKS",
                "-keystore",
                "vault.jceks",
                "-storepass",
                JCEKS_PASS,
                "-keypass",
                JCEKS_PASS,
            ],
        );
        keytool(
            d,
            &[
                "-importcert",
                "-noprompt",
                "-alias",
                "zca",
                "-file",
                "ca.crt",
                "-storetype",
                "JCEKS",
                "-keystore",
                "vault.jceks",
                "-storepass",
                JCEKS_PASS,
            ],
        );
        // Truncated copies.
        for (from, to) in [("broker.jks", "cut.jks"), ("modern.p12", "cut.p12")] {
            let data = std::fs::read(d.join(from)).expect("read");
            std::fs::write(d.join(to), &data[..data.len() / 2]).expect("write");
        }
        std::fs::write(d.join("pw.txt"), format!("{JKS_PASS}\n")).expect("pw");
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
            let hex = f.replace(':', "").to_ascii_lowercase();
            if let Some(a) = &alias {
                map.get_mut(a).expect("alias").push(hex);
            }
        }
    }
    // Secret-key entries have no certificate: certdeck lists them as skipped instead.
    map.retain(|_, fps| !fps.is_empty());
    map
}

fn config(dir: &Path, body: &str) -> String {
    let p = dir.join(format!("certdeck-{}.toml", rand_suffix()));
    std::fs::write(&p, body).expect("config");
    p.display().to_string()
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

async fn scan(args: &[&str], env: &[(&str, &str)]) -> (Vec<Value>, String, String) {
    let mut a = vec!["scan", "--no-revocation", "-o", "json"];
    a.extend_from_slice(args);
    let (_, out, err) = crate::common::run_bin_env(&a, env).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (v.as_array().expect("array").clone(), out, err)
}

fn by_location<'a>(rows: &'a [Value], loc: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == loc)
        .unwrap_or_else(|| panic!("no row {loc} in {rows:#?}"))
}

/// Our rows of one store: alias -> [leaf sha256, chain sha256...].
fn ours(rows: &[Value], path: &str) -> BTreeMap<String, Vec<String>> {
    rows.iter()
        .filter(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("{path}#")))
        })
        .map(|r| {
            let mut fps = vec![r["sha256"].as_str().expect("sha").to_owned()];
            fps.extend(
                r["chain"]
                    .as_array()
                    .expect("chain")
                    .iter()
                    .map(|c| c["sha256"].as_str().expect("sha").to_owned()),
            );
            (
                r["keystore"]["alias"].as_str().expect("alias").to_owned(),
                fps,
            )
        })
        .collect()
}

#[tokio::test]
async fn every_store_type_lists_its_entries_as_keytool_does_with_passwords_from_env_file_and_command(
) {
    let s = stores();
    let cfg = config(
        &s.dir,
        &format!(
            "[[keystores]]\npath = \"{d}/*.p12\"\npassword_env = \"CD_P12_PASS\"\n\n\
             [[keystores]]\npath = \"{d}/legacy.pfx\"\npassword_env = \"CD_P12_PASS\"\n\n\
             [[keystores]]\npath = \"{d}/broker.jks\"\npassword_file = \"{d}/pw.txt\"\n\n\
             [[keystores]]\npath = \"{d}/*.jceks\"\npassword_command = [\"printf\", \"%s\", \"{JCEKS_PASS}\"]\n",
            d = s.dir.display()
        ),
    );
    let names = [
        "modern.p12",
        "legacy.pfx",
        "keytool.p12",
        "keytool-legacy.p12",
        "truststore.p12",
        "broker.jks",
        "vault.jceks",
    ];
    let paths: Vec<String> = names.iter().map(|n| s.path(n)).collect();
    let mut args = vec!["--config", cfg.as_str()];
    for p in &paths {
        args.extend(["-f", p.as_str()]);
    }
    let (rows, out, err) = scan(&args, &[("CD_P12_PASS", P12_PASS)]).await;
    for pw in [P12_PASS, JKS_PASS, JCEKS_PASS] {
        assert!(!out.contains(pw) && !err.contains(pw), "a password leaked");
    }
    assert!(rows.iter().all(|r| r["error"].is_null()), "{rows:#?}");

    // openssl's stores (modern and legacy): one key entry, the leaf with its CA chain.
    for name in ["modern.p12", "legacy.pfx"] {
        let r = by_location(&rows, &format!("{}#kafka", s.path(name)));
        assert_eq!(r["subject"], "CN=kafka.test");
        assert_eq!(r["keystore"]["format"], "PKCS12");
        assert_eq!(r["keystore"]["entry"], "private_key");
        assert_eq!(r["keystore"]["chain_length"], 2);
        assert_eq!(r["keystore"]["integrity_verified"], true);
        assert_eq!(
            r["keystore"]["password_from"],
            "environment variable CD_P12_PASS"
        );
        assert_eq!(r["chain"][0]["subject"], "CN=Keystore Test CA");
        let days = r["days_left"].as_i64().expect("days");
        assert!((19..=20).contains(&days), "{days}");
    }
    // keytool's stores against `keytool -list -v`.
    for (name, ty, pass) in [
        ("keytool.p12", "PKCS12", P12_PASS),
        ("keytool-legacy.p12", "PKCS12", P12_PASS),
        ("truststore.p12", "PKCS12", P12_PASS),
        ("broker.jks", "JKS", JKS_PASS),
        ("vault.jceks", "JCEKS", JCEKS_PASS),
    ] {
        let p = s.path(name);
        assert_eq!(ours(&rows, &p), keytool_list(&p, ty, pass), "{name}");
    }
    let t = by_location(&rows, &format!("{}#testca", s.path("truststore.p12")));
    assert_eq!(t["keystore"]["entry"], "trusted_certificate");
    let j = by_location(&rows, &format!("{}#kafka", s.path("broker.jks")));
    assert_eq!(
        (
            j["keystore"]["format"].as_str(),
            j["keystore"]["chain_length"].as_i64()
        ),
        (Some("JKS"), Some(2))
    );
    assert_eq!(
        j["keystore"]["password_from"],
        format!("password file {}/pw.txt", s.dir.display())
    );
    let root = by_location(&rows, &format!("{}#root", s.path("broker.jks")));
    assert_eq!(root["keystore"]["entry"], "trusted_certificate");
    // JCEKS: the secret key is skipped and said so; the entries after it are read.
    let svc = by_location(&rows, &format!("{}#svc", s.path("vault.jceks")));
    assert_eq!(svc["keystore"]["format"], "JCEKS");
    assert_eq!(svc["keystore"]["password_from"], "command printf");
    assert_eq!(
        svc["keystore"]["skipped"],
        serde_json::json!(["aes (secret key)"])
    );
    assert_eq!(
        by_location(&rows, &format!("{}#zca", s.path("vault.jceks")))["keystore"]["entry"],
        "trusted_certificate"
    );
}

#[tokio::test]
async fn wrong_missing_and_unreadable_passwords_and_truncated_stores_are_clear_rows() {
    let s = stores();
    let d = s.dir.display();
    let cfg = config(
        &s.dir,
        &format!(
            "[[keystores]]\npath = \"{d}/modern.p12\"\npassword_env = \"CD_WRONG\"\n\n\
             [[keystores]]\npath = \"{d}/broker.jks\"\npassword_command = [\"sh\", \"-c\", \"echo nope\"]\n\n\
             [[keystores]]\npath = \"{d}/vault.jceks\"\npassword_env = \"CD_UNSET_VAR\"\n\n\
             [[keystores]]\npath = \"{d}/cut.*\"\npassword_env = \"CD_P12_PASS\"\n\n\
             [[keystores]]\npath = \"{d}/keytool.p12\"\npassword_command = [\"sh\", \"-c\", \"echo {P12_PASS}; exit 2\"]\n"
        ),
    );
    let (modern, jks, jceks, cut_jks, cut_p12, kt) = (
        s.path("modern.p12"),
        s.path("broker.jks"),
        s.path("vault.jceks"),
        s.path("cut.jks"),
        s.path("cut.p12"),
        s.path("keytool.p12"),
    );
    let (rows, out, err) = scan(
        &[
            "--config", &cfg, &modern, &jks, &jceks, &cut_jks, &cut_p12, &kt,
        ],
        &[("CD_WRONG", "not-it"), ("CD_P12_PASS", P12_PASS)],
    )
    .await;
    assert!(!out.contains(P12_PASS) && !err.contains(P12_PASS) && !out.contains("not-it"));
    let e = |p: &str| {
        by_location(&rows, p)["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(rows.len(), 6, "{rows:#?}");
    for p in [&modern, &jks] {
        assert!(
            e(p).contains(
                "wrong password or corrupt keystore (the configured password does not open it)"
            ),
            "{}",
            e(p)
        );
        assert_eq!(by_location(&rows, p)["status"], "error");
    }
    assert!(
        e(&jceks).contains("environment variable CD_UNSET_VAR is not set"),
        "{}",
        e(&jceks)
    );
    assert!(e(&kt).contains("command sh failed"), "{}", e(&kt));
    for p in [&cut_jks, &cut_p12] {
        assert!(e(p).contains("truncated keystore"), "{}", e(p));
    }
}

#[tokio::test]
async fn without_a_password_only_the_empty_one_is_tried_and_java_stores_are_listed_unverified() {
    let s = stores();
    let (empty, modern, jks) = (
        s.path("empty.p12"),
        s.path("modern.p12"),
        s.path("broker.jks"),
    );
    let (rows, _, _) = scan(&[&empty, &modern, &jks], &[]).await;
    let r = by_location(&rows, &format!("{empty}#nopass"));
    assert_eq!(r["keystore"]["integrity_verified"], true);
    assert_eq!(r["keystore"]["password_from"], "none (the empty password)");
    let m = by_location(&rows, &modern);
    assert!(
        m["error"]
            .as_str()
            .expect("error")
            .contains("wrong password or corrupt keystore (no password is configured for it"),
        "{m}"
    );
    // JKS stores certificates in clear: listed, said to be unverified (as keytool -list does).
    let k = by_location(&rows, &format!("{jks}#kafka"));
    assert_eq!(k["keystore"]["integrity_verified"], false);
    assert_eq!(k["subject"], "CN=kafka.test");
    assert_eq!(
        by_location(&rows, &format!("{jks}#root"))["keystore"]["integrity_verified"],
        false
    );
}

#[tokio::test]
async fn a_walked_directory_finds_keystores_by_content_and_a_bad_config_block_is_a_usage_error() {
    let s = stores();
    let walk = s.dir.join("walk");
    std::fs::create_dir_all(&walk).expect("dir");
    // A JKS without its usual name, and a PKCS#12 named .bin: found by their content.
    std::fs::copy(s.dir.join("broker.jks"), walk.join("broker-store")).expect("copy");
    std::fs::copy(s.dir.join("empty.p12"), walk.join("bundle.bin")).expect("copy");
    let w = walk.display().to_string();
    let (rows, _, _) = scan(&[&w], &[]).await;
    let locs: Vec<&str> = rows.iter().filter_map(|r| r["location"].as_str()).collect();
    assert!(
        locs.contains(&format!("{w}/broker-store#kafka").as_str()),
        "{locs:?}"
    );
    assert!(
        locs.contains(&format!("{w}/bundle.bin#nopass").as_str()),
        "{locs:?}"
    );

    let cfg = config(
        &s.dir,
        "[[keystores]]\npath = \"/x/*.jks\"\npassword_env = \"A\"\npassword_file = \"/b\"\n",
    );
    let (code, _, err) = crate::common::run_bin(&["scan", "--config", &cfg, &w]).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("give exactly one of password_env, password_file, password_command"),
        "{err}"
    );
}

/// Private keys at rest: each finding made to happen on real files, through the binary's
/// JSON, and no key material anywhere in the output.
#[tokio::test]
async fn key_findings_name_readable_misplaced_mismatched_weak_and_keystore_keys() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = stores();
    // Outside the project's own checkout (target/ is inside one).
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().to_path_buf();
    std::fs::create_dir_all(d.join("etc")).expect("dir");
    std::fs::create_dir_all(d.join("checkout/.git")).expect("dir");
    let cp = |from: &str, to: &str, mode: u32| {
        let dst = d.join(to);
        std::fs::copy(s.dir.join(from), &dst).expect("copy");
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    cp("leaf.crt", "etc/world.crt", 0o644);
    cp("leaf.key", "etc/world.key", 0o644);
    cp("leaf.crt", "etc/group.crt", 0o644);
    cp("leaf.key", "etc/group.key", 0o640);
    cp("leaf.crt", "etc/fine.crt", 0o644);
    cp("leaf.key", "etc/fine.key", 0o600);
    cp("leaf.crt", "etc/wrong.crt", 0o644);
    cp("ca.key", "etc/wrong.key", 0o600);
    cp("leaf.crt", "checkout/server.crt", 0o644);
    cp("leaf.key", "checkout/server.key", 0o600);
    let cert = std::fs::read_to_string(s.dir.join("leaf.crt")).expect("crt");
    let key = std::fs::read_to_string(s.dir.join("leaf.key")).expect("key");
    std::fs::write(d.join("etc/app.yaml"), format!("tls:\n{cert}{key}")).expect("yaml");
    std::fs::set_permissions(
        d.join("etc/app.yaml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    // Encrypted key beside its certificate.
    openssl(
        &d,
        &[
            "pkey",
            "-in",
            &s.path("leaf.key"),
            "-aes256",
            "-passout",
            "pass:x",
            "-out",
            "etc/enc.key",
        ],
    );
    cp("leaf.crt", "etc/enc.crt", 0o644);
    // A weak certificate: RSA 1024 signed with SHA-1 by the CA.
    openssl(
        &d,
        &[
            "req",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            "etc/weak.key",
            "-out",
            "weak.csr",
            "-subj",
            "/CN=weak.test",
        ],
    );
    openssl(
        &d,
        &[
            "x509",
            "-req",
            "-sha1",
            "-in",
            "weak.csr",
            "-CA",
            &s.path("ca.crt"),
            "-CAkey",
            &s.path("ca.key"),
            "-CAcreateserial",
            "-out",
            "etc/weak.crt",
            "-days",
            "30",
        ],
    );
    std::fs::set_permissions(
        d.join("etc/weak.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let dir = d.display().to_string();
    let (empty, modern) = (s.path("empty.p12"), s.path("modern.p12"));
    let cfg = config(
        &s.dir,
        &format!("[[keystores]]\npath = \"{modern}\"\npassword_env = \"CD_P12_PASS\"\n"),
    );
    let (rows, out, _) = scan(
        &["--config", &cfg, &dir, &empty, &modern],
        &[("CD_P12_PASS", P12_PASS)],
    )
    .await;
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!out.contains(line), "key material in the output");
    }
    let codes = |loc: &str| -> Vec<(String, String, Option<String>)> {
        by_location(&rows, loc)["key_findings"]
            .as_array()
            .expect("findings")
            .iter()
            .map(|f| {
                (
                    f["code"].as_str().expect("code").to_owned(),
                    f["severity"].as_str().expect("sev").to_owned(),
                    f["location"].as_str().map(str::to_owned),
                )
            })
            .collect()
    };
    let at = |n: &str| Some(format!("{dir}/{n}"));
    let f = |c: &str, s: &str, l: Option<String>| (c.to_owned(), s.to_owned(), l);
    assert_eq!(
        codes(&format!("{dir}/etc/world.crt")),
        [f("key_readable_by_others", "critical", at("etc/world.key"))]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/group.crt")),
        [f("key_readable_by_group", "warning", at("etc/group.key"))]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/fine.crt")),
        [f("key_unencrypted", "info", at("etc/fine.key"))]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/enc.crt")),
        [f("key_encrypted", "protected", at("etc/enc.key"))]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/wrong.crt")),
        [
            f("key_mismatch", "critical", at("etc/wrong.key")),
            f("key_unencrypted", "info", at("etc/wrong.key"))
        ]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/app.yaml")),
        [
            f("key_in_config_file", "critical", at("etc/app.yaml")),
            f("key_unencrypted", "info", at("etc/app.yaml"))
        ]
    );
    assert_eq!(
        codes(&format!("{dir}/checkout/server.crt")),
        [
            f(
                "key_in_source_checkout",
                "critical",
                at("checkout/server.key")
            ),
            f("key_unencrypted", "info", at("checkout/server.key"))
        ]
    );
    assert_eq!(
        codes(&format!("{dir}/etc/weak.crt")),
        [
            f("weak_key", "critical", None),
            f("weak_signature", "critical", None),
            f("key_unencrypted", "info", at("etc/weak.key"))
        ]
    );
    assert_eq!(
        codes(&format!("{empty}#nopass")),
        [f("key_empty_password", "critical", Some(empty.clone()))]
    );
    assert_eq!(
        codes(&format!("{modern}#kafka")),
        [f("key_in_keystore", "protected", Some(modern.clone()))]
    );
    // The table's note says the worst.
    let (_, table, _) =
        crate::common::run_bin(&["scan", "--no-revocation", &format!("{dir}/etc/world.crt")]).await;
    assert!(
        table.contains("key: unencrypted private key readable by others (mode 0644)"),
        "{table}"
    );
}
