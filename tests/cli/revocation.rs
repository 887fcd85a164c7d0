//! Revocation checking against OpenBao's OCSP responder and CRL, an OCSP responder on loopback
//! (relaying OpenBao's signed answers, late or garbled when asked) and TLS servers that staple
//! a response: the revocation module itself, then TLS endpoints and certificate files through
//! the binary (`scan -o json`), with `--no-revocation`, Must-Staple, and every soft-fail.

use std::time::Duration;

use crate::common::{closed_port, run_bin};
use crate::openbao::{
    ocsp_responder, pem_der, setup_pki, slow_proxy, stapling_server, Bao, Issued, Responder,
};
use certdeck::sources::revocation::{self, Checker, Evidence, Limits, Verdict};
use serde_json::{json, Value};

/// Generous guard: nothing here should take a minute.
const HANG: Duration = Duration::from_secs(120);

/// The leaf and the intermediate, as a TLS server sends them.
fn served_chain(i: &Issued) -> String {
    let int = i
        .chain_pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap_or("");
    format!("{}{int}", i.cert_pem)
}

/// `certdeck scan ARGS -o json`: the exit code and the rows.
async fn scan_json(args: &[&str]) -> (i32, Vec<Value>, String) {
    let mut all = vec!["scan", "-o", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = run_bin(&all).await;
    let rows: Vec<Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (code, rows, err)
}

fn row<'a>(rows: &'a [Value], location: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["location"] == location)
        .unwrap_or_else(|| panic!("no row {location}: {rows:?}"))
}

/// The root's PEM in a file, to trust the chains served.
fn root_file(dir: &tempfile::TempDir, pki: &crate::openbao::Pki) -> String {
    let p = dir.path().join("root.pem");
    std::fs::write(&p, &pki.root_pem).expect("root");
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openbao_answers_ocsp_and_crl_and_an_answer_checked_against_another_issuer_is_refused() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 3, 1).await;
    let int_der = pem_der(&pki.int_pem);
    let leaf = |serial: &str| {
        let b = &b;
        let serial = serial.to_owned();
        async move {
            let r = b
                .call("GET", &format!("pki_int/cert/{serial}"), Value::Null)
                .await;
            pem_der(r["data"]["certificate"].as_str().expect("pem"))
        }
    };
    let revoked_der = leaf(&pki.revoked[0]).await;
    let good_der = leaf(&pki.issued[1]).await;
    let now = certdeck::clock::now_unix();
    // The CRL, DER, signed by the intermediate.
    let crl_der = b.get_bytes("pki_int/crl").await;
    let crl = revocation::parse_crl(&crl_der, &int_der, now, 300).expect("crl");
    let want = pki.revoked[0].replace(':', "");
    assert!(crl.lookup(&want).is_some(), "{:?}", crl.revoked.keys());
    assert!(crl.lookup(&pki.issued[1].replace(':', "")).is_none());
    // A CRL checked against the wrong issuer is refused.
    let root_der = pem_der(&pki.root_pem);
    assert!(revocation::parse_crl(&crl_der, &root_der, now, 300).is_err());
    // OCSP through the AIA URL OpenBao put in the certificates.
    let checker = Checker::with_defaults(Limits::default()).expect("checker");
    match checker.check(&revoked_der, &int_der, None).await {
        Verdict::Revoked {
            by: Evidence::Ocsp { url },
            at,
            ..
        } => {
            assert!(url.ends_with("/v1/pki_int/ocsp"), "{url}");
            assert!((now - at).abs() < 600, "revocation time {at}");
        }
        v => panic!("expected revoked by OCSP, got {v:?}"),
    }
    match checker.check(&good_der, &int_der, None).await {
        Verdict::Good {
            by: Evidence::Ocsp { .. },
        } => {}
        v => panic!("expected good by OCSP, got {v:?}"),
    }
    // A response checked against the wrong issuer is not believed: soft-fail, not revoked.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/pki_int/ocsp", b.addr);
    let e = revocation::fetch_ocsp(
        &http,
        &url,
        &revoked_der,
        &root_der,
        &Limits::default(),
        now,
    )
    .await
    .expect_err("wrong issuer");
    assert!(!e.to_string().is_empty());
    // A stapled response for another certificate is not believed either.
    let other = b.ocsp_response("pki_int", &good_der, &int_der).await;
    let e = revocation::ocsp_verdict(&other, &revoked_der, &int_der, now, 300)
        .expect_err("another certificate");
    assert!(e.to_string().contains("another certificate"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_ocsp_responder_falls_back_to_the_crl_and_nothing_reachable_is_unknown() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 1, 1).await;
    let dead = closed_port();
    let (hang, _h) = slow_proxy(b.port, Duration::from_secs(3600)).await;
    // New certificates name a dead OCSP responder and the real CRL.
    b.set_urls(
        "pki_int",
        &[format!("http://127.0.0.1:{dead}/ocsp")],
        &[format!("{}/v1/pki_int/crl", b.addr)],
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "fb.example.test", "ttl": "100h"}),
        )
        .await;
    b.revoke("pki_int", &i.serial).await;
    let int_der = pem_der(&pki.int_pem);
    let limits = Limits {
        timeout: Duration::from_secs(2),
        deadline: Duration::from_secs(8),
        ..Limits::default()
    };
    let checker = Checker::with_defaults(limits).expect("checker");
    match checker.check(&pem_der(&i.cert_pem), &int_der, None).await {
        Verdict::Revoked {
            by: Evidence::Crl { .. },
            ..
        } => {}
        v => panic!("expected revoked by CRL, got {v:?}"),
    }
    // Both hang or are down: "revocation unknown" with the reasons, within the deadline.
    b.set_urls(
        "pki_int",
        &[format!("http://127.0.0.1:{hang}/ocsp")],
        &[format!("http://127.0.0.1:{dead}/crl")],
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "u.example.test", "ttl": "100h"}),
        )
        .await;
    let v = tokio::time::timeout(HANG, checker.check(&pem_der(&i.cert_pem), &int_der, None))
        .await
        .expect("bounded");
    match v {
        Verdict::Unknown { reason } => {
            assert!(reason.starts_with("revocation unknown"), "{reason}");
            assert!(
                reason.contains("OCSP") && reason.contains("CRL"),
                "{reason}"
            );
        }
        v => panic!("expected unknown, got {v:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stapled_response_decides_first_and_no_revocation_turns_checking_off() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 0, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let root = root_file(&dir, &pki);
    // The certificate names responders that are down: only the staple can answer.
    let dead = closed_port();
    b.set_urls(
        "pki_int",
        &[format!("http://127.0.0.1:{dead}/ocsp")],
        &[format!("http://127.0.0.1:{dead}/crl")],
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "st.example.test", "ttl": "1500h"}),
        )
        .await;
    let (leaf, int) = (pem_der(&i.cert_pem), pem_der(&pki.int_pem));
    let good = b.ocsp_response("pki_int", &leaf, &int).await;
    let srv = stapling_server(&served_chain(&i), &i.key_pem, Some(good)).await;
    let at = format!("127.0.0.1:{}", srv.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["state"], "good", "{r}\n{err}");
    assert_eq!(r["revocation"]["by"], "stapled OCSP response", "{r}");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(code, 0, "{err}");

    // Revoked in OpenBao: its responder now says so, and the server staples that.
    b.revoke("pki_int", &i.serial).await;
    let revoked = b.ocsp_response("pki_int", &leaf, &int).await;
    let srv2 = stapling_server(&served_chain(&i), &i.key_pem, Some(revoked)).await;
    let at2 = format!("127.0.0.1:{}", srv2.port);
    let (code, rows, err) = scan_json(&[&at2, "--ca-file", &root]).await;
    let r = row(&rows, &at2);
    assert_eq!(r["status"], "revoked", "{r}\n{err}");
    assert_eq!(r["revocation"]["state"], "revoked", "{r}");
    assert_eq!(r["revocation"]["by"], "stapled OCSP response", "{r}");
    let t = r["revocation"]["time"].as_str().expect("time");
    assert!(t.ends_with('Z'), "{t}");
    assert_eq!(code, 2, "revoked is CRITICAL: {err}");
    // The table says it too.
    let (code, out, _) = run_bin(&["scan", &at2, "--ca-file", &root]).await;
    assert_eq!(code, 2);
    assert!(
        out.contains("REVOKED") && out.contains("revoked 20"),
        "{out}"
    );

    // Off: not checked at all.
    let (code, rows, err) = scan_json(&[&at2, "--ca-file", &root, "--no-revocation"]).await;
    let r = row(&rows, &at2);
    assert!(r["revocation"].is_null(), "{r}");
    assert_eq!(r["status"], "ok", "{r}");
    assert_eq!(code, 0, "{err}");
    // ... and in the config file.
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, "[probe]\nrevocation = false\n").expect("cfg");
    let (code, _, err) = run_bin(&[
        "--config",
        cfg.to_str().expect("utf8"),
        "scan",
        &at2,
        "--ca-file",
        &root,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_staple_the_aia_responder_is_asked_and_slow_or_garbled_answers_are_soft_fail() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 0, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let root = root_file(&dir, &pki);
    let crl = format!("{}/v1/pki_int/crl", b.addr);
    let dead_crl = format!("http://127.0.0.1:{}/crl", closed_port());
    let serve = |i: &Issued| {
        let chain = served_chain(i);
        let key = i.key_pem.clone();
        async move { stapling_server(&chain, &key, None).await }
    };

    // A responder that answers: good, then revoked after OpenBao revokes it.
    let ok = ocsp_responder(&b, "pki_int", Responder::Answer).await;
    b.set_urls(
        "pki_int",
        std::slice::from_ref(&ok.url),
        std::slice::from_ref(&dead_crl),
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "a.example.test", "ttl": "1500h"}),
        )
        .await;
    let srv = serve(&i).await;
    let at = format!("127.0.0.1:{}", srv.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["state"], "good", "{r}\n{err}");
    assert_eq!(r["revocation"]["by"], format!("OCSP {}", ok.url), "{r}");
    assert_eq!(code, 0, "{err}");
    assert!(ok.requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    b.revoke("pki_int", &i.serial).await;
    let (code, rows, _) = scan_json(&[&at, "--ca-file", &root]).await;
    assert_eq!(row(&rows, &at)["status"], "revoked");
    assert_eq!(code, 2);

    // A responder slower than the probe timeout, and no CRL: unknown, not critical.
    let slow = ocsp_responder(&b, "pki_int", Responder::Late(Duration::from_secs(60))).await;
    b.set_urls(
        "pki_int",
        std::slice::from_ref(&slow.url),
        std::slice::from_ref(&dead_crl),
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "s.example.test", "ttl": "1500h"}),
        )
        .await;
    b.revoke("pki_int", &i.serial).await;
    let srv = serve(&i).await;
    let at = format!("127.0.0.1:{}@s.example.test", srv.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root, "--timeout", "1s"]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["state"], "unknown", "{r}\n{err}");
    let why = r["revocation"]["why"].as_str().expect("why");
    assert!(
        why.starts_with("revocation unknown") && why.contains(&slow.url),
        "{why}"
    );
    assert!(why.contains("CRL"), "{why}");
    assert_eq!(
        r["status"], "ok",
        "a slow responder is never a false critical: {r}"
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run_bin(&["scan", &at, "--ca-file", &root, "--timeout", "1s"]).await;
    assert!(
        out.contains("revocation unknown"),
        "the note says so: {out}"
    );

    // The same slow responder with a live CRL: the CRL answers within the time left.
    b.set_urls(
        "pki_int",
        std::slice::from_ref(&slow.url),
        std::slice::from_ref(&crl),
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "c.example.test", "ttl": "1500h"}),
        )
        .await;
    b.revoke("pki_int", &i.serial).await;
    let srv = serve(&i).await;
    let at = format!("127.0.0.1:{}", srv.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root, "--timeout", "2s"]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["state"], "revoked", "{r}\n{err}");
    assert_eq!(r["revocation"]["by"], format!("CRL {crl}"), "{r}");
    assert_eq!(code, 2);

    // A responder that answers garbage, and no CRL: unknown, saying why.
    let bad = ocsp_responder(&b, "pki_int", Responder::Garbage).await;
    b.set_urls(
        "pki_int",
        std::slice::from_ref(&bad.url),
        std::slice::from_ref(&dead_crl),
    )
    .await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "g.example.test", "ttl": "1500h"}),
        )
        .await;
    let srv = serve(&i).await;
    let at = format!("127.0.0.1:{}", srv.port);
    let (code, rows, _) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["state"], "unknown", "{r}");
    assert!(
        r["revocation"]["why"]
            .as_str()
            .unwrap_or("")
            .contains("malformed OCSP response"),
        "{r}"
    );
    assert_eq!(code, 0);
}

/// A CSR for `name` asking for the TLS feature status_request (OCSP Must-Staple), and its key.
fn must_staple_csr(name: &str) -> (String, String) {
    let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    // TLSFeature ::= SEQUENCE OF INTEGER { status_request (5) }
    p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 24],
        vec![0x30, 0x03, 0x02, 0x01, 0x05],
    )];
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = p.serialize_request(&key).expect("csr").pem().expect("pem");
    (csr, key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaf_naming_no_responder_is_not_checked_and_must_staple_without_a_staple_is_flagged() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 0, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let root = root_file(&dir, &pki);
    // No AIA, no CRL distribution point: nothing to ask, nothing said.
    b.set_urls("pki_int", &[], &[]).await;
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "n.example.test", "ttl": "1500h"}),
        )
        .await;
    let srv = stapling_server(&served_chain(&i), &i.key_pem, None).await;
    let at = format!("127.0.0.1:{}", srv.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert!(r["revocation"].is_null(), "{r}");
    assert_eq!(code, 0, "{err}");

    // Must-Staple (signed verbatim, so the TLS feature is kept), served without a staple.
    let ok = ocsp_responder(&b, "pki_int", Responder::Answer).await;
    b.set_urls("pki_int", std::slice::from_ref(&ok.url), &[])
        .await;
    let (csr, key) = must_staple_csr("ms.example.test");
    let signed = b
        .call(
            "POST",
            "pki_int/sign-verbatim",
            json!({"csr": csr, "ttl": "1500h"}),
        )
        .await;
    let cert_pem = format!(
        "{}\n",
        signed["data"]["certificate"]
            .as_str()
            .expect("cert")
            .trim_end()
    );
    let leaf = pem_der(&cert_pem);
    assert!(
        revocation::must_staple(&leaf),
        "OpenBao kept the TLS feature"
    );
    let chain = format!("{cert_pem}{}\n", pki.int_pem.trim_end());
    let bare = stapling_server(&chain, &key, None).await;
    let at = format!("127.0.0.1:{}@ms.example.test", bare.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["must_staple_unmet"], true, "{r}\n{err}");
    assert_eq!(
        r["revocation"]["state"], "good",
        "still checked through AIA: {r}"
    );
    assert_eq!(r["status"], "warning", "{r}");
    assert_eq!(code, 1);
    let (_, out, _) = run_bin(&["scan", &at, "--ca-file", &root]).await;
    assert!(
        out.contains("Must-Staple but no OCSP response stapled"),
        "{out}"
    );
    // With its staple: fine.
    let staple = b
        .ocsp_response("pki_int", &leaf, &pem_der(&pki.int_pem))
        .await;
    let stapled = stapling_server(&chain, &key, Some(staple)).await;
    let at = format!("127.0.0.1:{}", stapled.port);
    let (code, rows, err) = scan_json(&[&at, "--ca-file", &root]).await;
    let r = row(&rows, &at);
    assert_eq!(r["revocation"]["must_staple_unmet"], false, "{r}\n{err}");
    assert_eq!(r["revocation"]["by"], "stapled OCSP response", "{r}");
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_checked_with_the_issuer_from_the_same_file_or_a_ca_file() {
    let b = Bao::start().await;
    let pki = setup_pki(&b, 0, 0).await;
    let dir = tempfile::tempdir().expect("dir");
    let i = b
        .issue(
            "pki_int",
            "web",
            json!({"common_name": "f.example.test", "ttl": "1500h"}),
        )
        .await;
    b.revoke("pki_int", &i.serial).await;
    let full = dir.path().join("fullchain.pem");
    std::fs::write(&full, served_chain(&i)).expect("write");
    let f = full.display().to_string();
    let (code, rows, err) = scan_json(&[&f]).await;
    let leaf = row(&rows, &format!("{f}#1"));
    assert_eq!(leaf["status"], "revoked", "{leaf}\n{err}");
    assert!(
        leaf["revocation"]["by"]
            .as_str()
            .is_some_and(|b| b.starts_with("OCSP ")),
        "{leaf}"
    );
    // The intermediate in the same file is a CA: not checked here.
    assert!(row(&rows, &format!("{f}#2"))["revocation"].is_null());
    assert_eq!(code, 2, "{err}");
    // The leaf alone: its issuer from --ca-file, or nowhere.
    let alone = dir.path().join("leaf.pem");
    std::fs::write(&alone, &i.cert_pem).expect("write");
    let int = dir.path().join("int.pem");
    std::fs::write(&int, &pki.int_pem).expect("write");
    let a = alone.display().to_string();
    let (code, rows, _) = scan_json(&[&a, "--ca-file", int.to_str().expect("utf8")]).await;
    assert_eq!(row(&rows, &a)["status"], "revoked");
    assert_eq!(code, 2);
    let (code, rows, _) = scan_json(&[&a]).await;
    let r = row(&rows, &a);
    assert_eq!(r["revocation"]["state"], "unknown", "{r}");
    assert!(
        r["revocation"]["why"]
            .as_str()
            .unwrap_or("")
            .contains("issuer's certificate is not available"),
        "{r}"
    );
    assert_eq!(code, 0, "no issuer is soft-fail");
}
