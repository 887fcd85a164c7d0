//! PKCS#11 tokens through the binary, against SoftHSM2: tokens initialised by `softhsm2-util`
//! (which leaves a free slot with an uninitialised token), certificates and keys made by
//! `openssl` and imported with `pkcs11-tool`, a certificate object whose value is not a
//! certificate written with PyKCS11 (pkcs11-tool refuses to), a wrong PIN, no PIN, a missing
//! module, files that are no PKCS#11 module, and a module of our own (tests/pkcs11/fake_module.c)
//! that hangs or reports a locked PIN. `pkcs11-tool --list-objects --type cert` is the oracle
//! for which certificate objects a token holds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "hsm-Pin-7391";
const SO_PIN: &str = "so-Pin-2468";
/// The environment variable the config blocks name for the PIN.
const PIN_VAR: &str = "CERTDECK_TEST_HSM_PIN";

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

/// The SoftHSM2 tokens and the fake modules, made once for every test in this module.
struct Hsm {
    dir: PathBuf,
    conf: String,
    /// `notAfter` of the imported certificates, as openssl prints it (ISO 8601, UTC).
    web_not_after: String,
    ca_not_after: String,
    /// tests/pkcs11/fake_module.c, built.
    fake: String,
    /// The same, built to hang in C_GetSlotList whatever the environment says.
    fake_hang: String,
    /// A shared library without C_GetFunctionList.
    not_pkcs11: String,
}

impl Hsm {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn tool(&self, args: &[&str]) -> String {
        run(Command::new("pkcs11-tool")
            .env("SOFTHSM2_CONF", &self.conf)
            .args(["--module", MODULE])
            .args(args))
    }

    /// A config file with this text.
    fn config(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).expect("config");
        p
    }
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    run(Command::new("openssl").current_dir(dir).args(args))
}

/// openssl's `notAfter` in the form certdeck's JSON uses (`2027-01-02T06:47:08Z`).
fn not_after(dir: &Path, cert: &str) -> String {
    let out = openssl(
        dir,
        &[
            "x509", "-in", cert, "-noout", "-enddate", "-dateopt", "iso_8601",
        ],
    );
    out.trim()
        .strip_prefix("notAfter=")
        .expect("notAfter")
        .replace(' ', "T")
}

fn hsm() -> &'static Hsm {
    static H: OnceLock<Hsm> = OnceLock::new();
    H.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("certdeck-pkcs11-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tokens")).expect("dir");
        let d = dir.as_path();
        let conf = dir.join("softhsm2.conf").display().to_string();
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .expect("softhsm2.conf");
        // A 20-day RSA leaf whose key goes on the token, and a 90-day EC CA without its key.
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "web.key",
                "-out",
                "web.crt",
                "-subj",
                "/CN=web.hsm.test",
                "-days",
                "20",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                "/CN=HSM Test CA",
                "-days",
                "90",
            ],
        );
        for (i, o) in [("web.crt", "web.der"), ("ca.crt", "ca.der")] {
            openssl(d, &["x509", "-in", i, "-outform", "der", "-out", o]);
        }
        openssl(
            d,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "web.key", "-outform", "der", "-out",
                "web.p8",
            ],
        );
        openssl(
            d,
            &[
                "pkey", "-in", "web.key", "-pubout", "-outform", "der", "-out", "web.pub",
            ],
        );
        // Two tokens; each --init-token --free leaves the next free slot uninitialised.
        for label in ["certdeck web", "certdeck junk"] {
            run(Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    SO_PIN,
                    "--pin",
                    PIN,
                ]));
        }
        let h = Hsm {
            web_not_after: not_after(d, "web.crt"),
            ca_not_after: not_after(d, "ca.crt"),
            fake: dir.join("libfake.so").display().to_string(),
            fake_hang: dir.join("libfake-hang.so").display().to_string(),
            not_pkcs11: dir.join("libnotp11.so").display().to_string(),
            conf,
            dir: dir.clone(),
        };
        let web = ["--token-label", "certdeck web", "--login", "--pin", PIN];
        for (file, ty, id, label) in [
            ("web.der", "cert", "01", "web"),
            ("web.p8", "privkey", "01", "web"),
            ("web.pub", "pubkey", "01", "web"),
            ("ca.der", "cert", "02", "hsm ca"),
        ] {
            let f = h.path(file);
            let mut a = web.to_vec();
            a.extend([
                "--write-object",
                &f,
                "--type",
                ty,
                "--id",
                id,
                "--label",
                label,
            ]);
            h.tool(&a);
        }
        run(Command::new("/usr/bin/python3")
            .env("SOFTHSM2_CONF", &h.conf)
            .env(PIN_VAR, PIN)
            .args([
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pkcs11/write_junk.py"),
                MODULE,
                "certdeck junk",
                PIN_VAR,
            ]));
        run(Command::new("cc").args([
            "-shared",
            "-fPIC",
            "-I/usr/include/p11-kit-1",
            "-o",
            &h.fake,
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pkcs11/fake_module.c"),
        ]));
        run(Command::new("cc").args([
            "-shared",
            "-fPIC",
            "-I/usr/include/p11-kit-1",
            "-DFAKE_MODE=\"hang\"",
            "-o",
            &h.fake_hang,
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pkcs11/fake_module.c"),
        ]));
        let src = h.path("notp11.c");
        std::fs::write(&src, "int certdeck_not_a_pkcs11_module = 1;\n").expect("notp11.c");
        run(Command::new("cc").args(["-shared", "-fPIC", "-o", &h.not_pkcs11, &src]));
        h
    })
}

/// Held by each test that uses the SoftHSM tokens: SoftHSM rewrites a token's file when a
/// login fails (its "PIN count low" flag), and another process reading the token meanwhile
/// may find it unreadable.
async fn softhsm() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// `certdeck scan -o json` with SoftHSM's config; (exit code, rows, stdout, stderr).
async fn scan(args: &[&str], env: &[(&str, &str)]) -> (i32, Vec<Value>, String, String) {
    let h = hsm();
    let mut a = vec!["scan", "--no-revocation", "-o", "json"];
    a.extend_from_slice(args);
    let mut e = vec![("SOFTHSM2_CONF", h.conf.as_str())];
    e.extend_from_slice(env);
    let (code, out, err) = crate::common::run_bin_env(&a, &e).await;
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|x| panic!("{x}: {out} {err}"));
    (code, v.as_array().expect("array").clone(), out, err)
}

fn by_label<'a>(rows: &'a [Value], label: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["pkcs11"]["object"]["label"] == label)
        .unwrap_or_else(|| panic!("no object {label} in {rows:#?}"))
}

/// (label, id) of every certificate object pkcs11-tool lists on a token.
fn tool_certs(token: &str) -> BTreeSet<(String, String)> {
    let out = hsm().tool(&["--token-label", token, "--list-objects", "--type", "cert"]);
    let mut set = BTreeSet::new();
    let mut label = None;
    for line in out.lines() {
        let line = line.trim();
        if line.starts_with("Certificate Object") {
            label = None;
        } else if let Some(l) = line.strip_prefix("label:") {
            label = Some(l.trim().to_owned());
        } else if let Some(id) = line.strip_prefix("ID:") {
            set.insert((label.clone().unwrap_or_default(), id.trim().to_owned()));
        }
    }
    set
}

fn certdeck_certs(rows: &[Value], token: &str) -> BTreeSet<(String, String)> {
    rows.iter()
        .filter(|r| r["pkcs11"]["token"]["label"] == token)
        .map(|r| {
            let o = &r["pkcs11"]["object"];
            (
                o["label"].as_str().expect("label").to_owned(),
                o["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

fn codes(row: &Value) -> Vec<String> {
    row["key_findings"]
        .as_array()
        .expect("key_findings")
        .iter()
        .map(|f| f["code"].as_str().expect("code").to_owned())
        .collect()
}

#[tokio::test]
async fn token_certificates_are_listed_as_pkcs11_tool_lists_them_with_their_key_in_hsm() {
    let h = hsm();
    let _softhsm = softhsm().await;
    let cfg = h.config(
        "one-token.toml",
        &format!(
            "[[pkcs11]]\nmodule = \"{MODULE}\"\ntoken = \"certdeck web\"\npin_env = \"{PIN_VAR}\"\n"
        ),
    );
    let (_, rows, out, err) = scan(&["--config", &cfg], &[(PIN_VAR, PIN)]).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r["source"] == "pkcs11"));
    assert_eq!(
        certdeck_certs(&rows, "certdeck web"),
        tool_certs("certdeck web")
    );
    assert!(
        !err.contains("certdeck: pkcs11"),
        "no source problem: {err}"
    );

    let web = by_label(&rows, "web");
    assert_eq!(web["subject"], "CN=web.hsm.test");
    assert_eq!(web["not_after"], h.web_not_after.as_str());
    assert_eq!(web["pkcs11"]["object"]["id"], "01");
    assert_eq!(web["pkcs11"]["module"], MODULE);
    assert_eq!(web["pkcs11"]["login"], "logged_in");
    assert_eq!(web["pkcs11"]["key_in_hsm"], true);
    assert_eq!(web["pkcs11"]["key"]["class"], "private_key");
    assert_eq!(web["pkcs11"]["key"]["matches_certificate"], true);
    assert_eq!(web["pkcs11"]["key"]["sensitive"], true);
    let f = &web["key_findings"][0];
    assert_eq!(f["code"], "key_in_hsm");
    assert_eq!(f["severity"], "protected");
    assert!(f["message"]
        .as_str()
        .unwrap()
        .starts_with("key in HSM: private key held on HSM token 'certdeck web'"));
    assert!(
        web["location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{MODULE}#token=certdeck web;serial=")),
        "{}",
        web["location"]
    );
    assert!(web["location"]
        .as_str()
        .unwrap()
        .ends_with(";object=web;id=01"));
    assert!(web["pkcs11"]["uri"]
        .as_str()
        .unwrap()
        .starts_with("pkcs11:token=certdeck%20web;serial="));

    let ca = by_label(&rows, "hsm ca");
    assert_eq!(ca["subject"], "CN=HSM Test CA");
    assert_eq!(ca["not_after"], h.ca_not_after.as_str());
    assert_eq!(ca["pkcs11"]["object"]["id"], "02");
    assert_eq!(ca["pkcs11"]["key_in_hsm"], false);
    assert_eq!(ca["pkcs11"]["key"], Value::Null);
    assert!(codes(ca).is_empty(), "{:?}", codes(ca));
    assert!(!out.contains(PIN) && !err.contains(PIN), "the PIN leaked");

    // The table says it too.
    let (_, table, err) = crate::common::run_bin_env(
        &["scan", "--no-revocation", "--config", &cfg],
        &[("SOFTHSM2_CONF", h.conf.as_str()), (PIN_VAR, PIN)],
    )
    .await;
    let line = table
        .lines()
        .find(|l| l.contains("web.hsm.test"))
        .unwrap_or_else(|| panic!("{table}{err}"));
    assert!(line.contains("key in HSM"), "{line}");
}

#[tokio::test]
async fn every_initialised_token_is_read_the_free_slot_is_skipped_and_a_bad_object_is_an_error_row()
{
    let h = hsm();
    let _softhsm = softhsm().await;
    // softhsm2-util left a free slot whose token is not initialised.
    let slots = run(Command::new("softhsm2-util")
        .env("SOFTHSM2_CONF", &h.conf)
        .arg("--show-slots"));
    assert!(slots.contains("Initialized:      no"), "{slots}");
    // The flag, every token, the PIN from CERTDECK_PKCS11_PIN.
    let (_, rows, out, err) = scan(
        &["--pkcs11-module", MODULE],
        &[("CERTDECK_PKCS11_PIN", PIN)],
    )
    .await;
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        certdeck_certs(&rows, "certdeck junk"),
        tool_certs("certdeck junk")
    );
    assert_eq!(
        certdeck_certs(&rows, "certdeck web"),
        tool_certs("certdeck web")
    );
    assert!(!err.contains("certdeck: pkcs11"), "{err}");
    let junk = rows
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .unwrap()
                .ends_with(";object=junk;id=03")
        })
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(junk["status"], "error");
    assert_eq!(junk["subject"], Value::Null);
    assert!(
        junk["error"]
            .as_str()
            .unwrap()
            .contains("certificate object 'junk', id 03: CKA_VALUE does not parse"),
        "{junk:#?}"
    );
    assert!(junk["location"]
        .as_str()
        .unwrap()
        .contains("#token=certdeck junk;"));
    assert_eq!(by_label(&rows, "web")["pkcs11"]["key_in_hsm"], true);
    assert!(!out.contains(PIN) && !err.contains(PIN));
}

#[tokio::test]
async fn a_wrong_pin_or_none_still_lists_the_certificates_and_links_their_public_keys() {
    let h = hsm();
    let _softhsm = softhsm().await;
    let cfg = h.config(
        "wrong-pin.toml",
        &format!(
            "[[pkcs11]]\nmodule = \"{MODULE}\"\ntoken = \"certdeck web\"\npin_env = \"{PIN_VAR}\"\n"
        ),
    );
    let wrong = "wrong-Pin-0000";
    let (_, rows, out, err) = scan(&["--config", &cfg], &[(PIN_VAR, wrong)]).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(
        err.contains("pkcs11 libsofthsm2.so token 'certdeck web': wrong PIN (CKR_PIN_INCORRECT; PIN from environment variable CERTDECK_TEST_HSM_PIN): certificates listed without their private keys"),
        "{err}"
    );
    let web = by_label(&rows, "web");
    assert_eq!(web["pkcs11"]["login"], "wrong_pin");
    assert_eq!(web["pkcs11"]["key"]["class"], "public_key");
    assert_eq!(web["pkcs11"]["key"]["matches_certificate"], true);
    assert_eq!(web["pkcs11"]["key_in_hsm"], true);
    assert_eq!(codes(web), ["key_in_hsm"]);
    assert!(web["key_findings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("the private key object is not visible without login"));
    for s in [&out, &err] {
        assert!(!s.contains(wrong) && !s.contains(PIN), "a PIN leaked: {s}");
    }

    // No PIN at all: public objects, no complaint.
    let cfg = h.config(
        "no-pin.toml",
        &format!("[[pkcs11]]\nmodule = \"{MODULE}\"\ntoken = \"certdeck web\"\n"),
    );
    let (_, rows, _, err) = scan(&["--config", &cfg], &[]).await;
    assert_eq!(rows.len(), 2);
    assert!(!err.contains("certdeck: pkcs11"), "{err}");
    let web = by_label(&rows, "web");
    assert_eq!(web["pkcs11"]["login"], "no_pin");
    assert_eq!(web["pkcs11"]["key"]["class"], "public_key");
}

#[tokio::test]
async fn missing_broken_and_hung_modules_are_health_messages_and_the_scan_ends() {
    let h = hsm();
    let _softhsm = softhsm().await;
    let text = h.path("text.so");
    std::fs::write(&text, "this is not a shared library\n").expect("text.so");
    let cfg = h.config(
        "hung.toml",
        &format!("[[pkcs11]]\nmodule = \"{}\"\ntimeout = \"2s\"\n", h.fake),
    );
    let (code, rows, _, err) = scan(
        &[
            "--config",
            &cfg,
            "--pkcs11-module",
            "/nonexistent/libmissing.so",
            "--pkcs11-module",
            &text,
            "--pkcs11-module",
            &h.not_pkcs11,
            "--pkcs11-module",
            &h.fake,
            "--pkcs11-module",
            MODULE,
        ],
        &[("CERTDECK_FAKE_P11", "hang")],
    )
    .await;
    assert!(
        err.contains("module /nonexistent/libmissing.so: no such file"),
        "{err}"
    );
    assert!(
        err.contains(&format!("module {text}: not a loadable library")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "module {}: not a PKCS#11 module (it has no C_GetFunctionList)",
            h.not_pkcs11
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "module {}: C_GetSlotList did not return within 2 s (the module hangs?)",
            h.fake
        )),
        "{err}"
    );
    // The good module beside them is read all the same.
    assert_eq!(rows.len(), 3, "{rows:#?}");
    assert_eq!(
        code, 1,
        "the 20-day leaf's WARNING outranks the failing sources' UNKNOWN"
    );
}

#[tokio::test]
async fn a_locked_pin_is_never_tried_and_the_certificates_are_still_listed() {
    let h = hsm();
    let log = h.path("login.log");
    let _ = std::fs::remove_file(&log);
    let cfg = h.config(
        "locked.toml",
        &format!(
            "[[pkcs11]]\nmodule = \"{}\"\npin_env = \"{PIN_VAR}\"\n",
            h.fake
        ),
    );
    let cert = h.path("web.der");
    let (_, rows, _, err) = scan(
        &["--config", &cfg],
        &[
            ("CERTDECK_FAKE_P11", "locked"),
            ("CERTDECK_FAKE_P11_CERT", &cert),
            ("CERTDECK_FAKE_P11_LOG", &log),
            (PIN_VAR, PIN),
        ],
    )
    .await;
    assert!(
        err.contains("token 'locked token': the user PIN is locked"),
        "{err}"
    );
    assert!(!Path::new(&log).exists(), "C_Login was called");
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["subject"], "CN=web.hsm.test");
    assert_eq!(r["not_after"], h.web_not_after.as_str());
    assert_eq!(r["pkcs11"]["object"]["id"], "0a");
    assert_eq!(r["pkcs11"]["token"]["serial"], "FAKE0001");
    assert_eq!(r["pkcs11"]["login"], "pin_locked");
    assert_eq!(r["pkcs11"]["key"]["class"], "public_key");
    assert_eq!(r["pkcs11"]["key_in_hsm"], true);
}

/// In-process: a read of a module whose call never returns times out naming the call, and the
/// next read of the same module (from another source too) waits for that call instead of
/// calling into the module again.
#[tokio::test]
async fn a_hung_module_is_not_called_again_while_its_call_is_stuck() {
    use certdeck::sources::pkcs11::source::Pkcs11Source;
    use certdeck::sources::pkcs11::{Pkcs11Config, Pkcs11Error};
    let h = hsm();
    let settings = Pkcs11Config {
        module: h.fake_hang.clone(),
        timeout: Some(std::time::Duration::from_millis(500)),
        ..Pkcs11Config::default()
    }
    .resolve(false)
    .unwrap();
    let first = Pkcs11Source::new(settings.clone());
    let e = first.read().await.unwrap_err();
    assert!(
        matches!(
            &e,
            Pkcs11Error::Timeout {
                call: "C_GetSlotList",
                ..
            }
        ),
        "{e:?}"
    );
    for src in [&first, &Pkcs11Source::new(settings)] {
        let e = src.read().await.unwrap_err();
        assert!(
            matches!(
                &e,
                Pkcs11Error::Busy {
                    call: "C_GetSlotList",
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("still busy with an earlier call"));
    }
}

#[tokio::test]
async fn a_token_chosen_by_slot_is_read_and_an_unknown_label_names_the_tokens_there_are() {
    let h = hsm();
    let _softhsm = softhsm().await;
    // The slot SoftHSM gave the token, as pkcs11-tool lists it ("Slot 0 (0x5da38cba): ...").
    let listing = h.tool(&["--list-token-slots"]);
    let mut slot = None;
    let mut last = None;
    for line in listing.lines() {
        if let Some(hexid) = line
            .strip_prefix("Slot ")
            .and_then(|r| r.split_once("(0x"))
            .and_then(|(_, r)| r.split_once(')'))
            .map(|(x, _)| x)
        {
            last = u64::from_str_radix(hexid, 16).ok();
        }
        if line.contains("token label") && line.contains("certdeck web") {
            slot = last;
        }
    }
    let slot = slot.unwrap_or_else(|| panic!("{listing}"));
    let cfg = h.config(
        "by-slot.toml",
        &format!("[[pkcs11]]\nmodule = \"{MODULE}\"\nslot = {slot}\n"),
    );
    let (_, rows, _, err) = scan(&["--config", &cfg], &[]).await;
    assert_eq!(
        certdeck_certs(&rows, "certdeck web"),
        tool_certs("certdeck web")
    );
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows.iter().all(|r| r["pkcs11"]["slot"] == slot));
    assert!(!err.contains("certdeck: pkcs11"), "{err}");

    let cfg = h.config(
        "unknown-token.toml",
        &format!("[[pkcs11]]\nmodule = \"{MODULE}\"\ntoken = \"no such token\"\n"),
    );
    let (code, rows, _, err) = scan(&["--config", &cfg], &[]).await;
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(
        err.contains(&format!(
            "module {MODULE}: no initialised token matches token 'no such token' (tokens: "
        )) && err.contains(&format!("'certdeck web' in slot {slot}")),
        "{err}"
    );
}
