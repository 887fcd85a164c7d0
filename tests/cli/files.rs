//! Certificate files: PEM bundles, DER, directories, globs, and every kind of bad file.

use std::path::Path;

use certdeck::model::{assess, Status, Thresholds};
use certdeck::sources::file;
use rcgen::{CertificateParams, KeyPair};

fn cert(cn: &str, days: i64) -> (String, Vec<u8>, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(vec![format!("{cn}.test")]).expect("params");
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let now = time::OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::days(10);
    p.not_after = now + time::Duration::days(days);
    let c = p.self_signed(&key).expect("cert");
    (c.pem(), c.der().to_vec(), key.serialize_pem())
}

fn read(specs: &[String]) -> Vec<certdeck::model::Record> {
    let now = certdeck::clock::now_unix();
    let exp = file::expand(specs, now);
    let mut out = exp.problems;
    for f in &exp.files {
        out.extend(file::read_file(f, now));
    }
    out
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_bundle_gives_one_row_per_certificate_with_crlf_and_text_between() {
    let dir = tempfile::tempdir().expect("dir");
    let (a, _, _) = cert("alpha", 100);
    let (b, _, _) = cert("beta", 5);
    let text =
        format!("subject=alpha\nissuer=alpha\n{a}\nsome notes here\n{b}").replace('\n', "\r\n");
    let path = dir.path().join("bundle.pem");
    std::fs::write(&path, text).expect("write");
    let recs = read(&[s(&path)]);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].location, format!("{}#1", s(&path)));
    assert_eq!(recs[1].location, format!("{}#2", s(&path)));
    assert_eq!(
        recs[0].cert.as_ref().expect("cert").common_name.as_deref(),
        Some("alpha")
    );
    let now = certdeck::clock::now_unix();
    assert_eq!(
        assess(&recs[1], now, Thresholds::default()).status,
        Status::Critical
    );
    assert_ne!(recs[0].id, recs[1].id);
}

#[test]
fn der_files_and_directories_are_read_recursively_and_keys_are_skipped() {
    let dir = tempfile::tempdir().expect("dir");
    let (pem, der, key) = cert("gamma", 50);
    std::fs::create_dir_all(dir.path().join("nested/deeper")).expect("mkdir");
    std::fs::write(dir.path().join("nested/deeper/server.der"), &der).expect("write");
    std::fs::write(dir.path().join("combined.pem"), format!("{key}{pem}")).expect("write");
    std::fs::write(dir.path().join("server.key"), &key).expect("write");
    std::fs::write(dir.path().join("only-key.pem"), &key).expect("write");
    std::fs::write(dir.path().join("README"), "not a certificate").expect("write");
    let recs = read(&[s(dir.path())]);
    let locs: Vec<&str> = recs.iter().map(|r| r.location.as_str()).collect();
    assert_eq!(recs.len(), 2, "{locs:?}");
    assert!(recs.iter().all(|r| r.error.is_none()), "{recs:?}");
    assert!(locs.iter().any(|l| l.ends_with("nested/deeper/server.der")));
    assert!(locs.iter().any(|l| l.ends_with("combined.pem")));
    // Same certificate in two files: same fingerprint, two locations.
    assert_eq!(
        recs[0].cert.as_ref().expect("c").sha256,
        recs[1].cert.as_ref().expect("c").sha256
    );
    let mut fleet = certdeck::model::Fleet::new();
    for r in recs.clone() {
        fleet.upsert(r);
    }
    assert_eq!(fleet.distinct_certificates(), 1);
    assert_eq!(
        fleet
            .locations_of(&recs[0].cert.as_ref().expect("c").sha256)
            .len(),
        2
    );
}

#[test]
fn globs_expand_and_a_pattern_matching_nothing_is_reported() {
    let dir = tempfile::tempdir().expect("dir");
    for n in ["a", "b", "c"] {
        let (pem, _, _) = cert(n, 40);
        std::fs::write(dir.path().join(format!("{n}.crt")), pem).expect("write");
    }
    let recs = read(&[
        format!("{}/*.crt", s(dir.path())),
        format!("{}/*.nothing", s(dir.path())),
    ]);
    assert_eq!(recs.iter().filter(|r| r.cert.is_some()).count(), 3);
    let missing: Vec<_> = recs.iter().filter(|r| r.error.is_some()).collect();
    assert_eq!(missing.len(), 1);
    assert!(missing[0]
        .error
        .as_deref()
        .expect("e")
        .contains("matched no file"));
}

#[test]
fn bad_files_are_error_rows_naming_the_file() {
    let dir = tempfile::tempdir().expect("dir");
    let (pem, der, key) = cert("delta", 30);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "notes.txt",
            b"hello, I am not a certificate".to_vec(),
            "not a certificate",
        ),
        (
            "truncated.pem",
            pem.as_bytes()[..pem.len() / 2].to_vec(),
            "truncated PEM block",
        ),
        (
            "badb64.pem",
            b"-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n".to_vec(),
            "invalid base64",
        ),
        (
            "cut.der",
            der[..der.len() - 20].to_vec(),
            "not a DER certificate",
        ),
        ("empty.crt", Vec::new(), "not a certificate"),
        (
            "key-only.pem",
            key.as_bytes().to_vec(),
            "no certificate in this file (1 private key(s) skipped)",
        ),
        (
            "bogus-inner.pem",
            b"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n".to_vec(),
            "malformed certificate",
        ),
        (
            "store.p12",
            vec![0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x03],
            "PKCS#12",
        ),
    ];
    let mut specs = Vec::new();
    for (name, data, _) in &cases {
        let p = dir.path().join(name);
        std::fs::write(&p, data).expect("write");
        specs.push(s(&p));
    }
    specs.push(s(&dir.path().join("does-not-exist.pem")));
    let recs = read(&specs);
    assert_eq!(recs.len(), cases.len() + 1);
    for (name, _, want) in &cases {
        let r = recs
            .iter()
            .find(|r| r.location.ends_with(name))
            .unwrap_or_else(|| panic!("no row for {name}"));
        let e = r
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{name}: no error"));
        assert!(e.contains(want), "{name}: {e:?} should contain {want:?}");
        for secret_line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(
                !e.contains(&secret_line[..16.min(secret_line.len())]),
                "{name}: error leaks key material: {e}"
            );
        }
    }
    let missing = recs
        .iter()
        .find(|r| r.location.ends_with("does-not-exist.pem"))
        .expect("row");
    assert_eq!(missing.error.as_deref(), Some("no such file or directory"));
}

/// As root (CI), the file is read by the binary running as `nobody`; as anyone else, the
/// file is made unreadable to its owner.
#[test]
fn an_unreadable_file_is_a_permission_error_row() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let p = dir.path().join("locked.pem");
    std::fs::write(&p, cert("x", 10).0).expect("write");
    if crate::common::is_root() {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--"])
            .arg(env!("CARGO_BIN_EXE_certdeck"))
            .args(["scan", "-o", "json", "--file"])
            .arg(&p)
            .env("HOME", dir.path())
            .output()
            .expect("runuser (util-linux)");
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v[0]["error"], "permission denied", "{v}");
        assert_eq!(v[0]["location"], s(&p));
    } else {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let recs = read(&[s(&p)]);
        assert_eq!(recs[0].error.as_deref(), Some("permission denied"));
    }
}
