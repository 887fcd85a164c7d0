//! AWS Certificate Manager through the real binary and the library, against moto's server
//! (started here on loopback) reached by the real SDK through real shared config files with a
//! profile and `endpoint_url`. What moto lacks (paging, RenewalSummary, RenewCertificate) and
//! the faults come from the fixture proxy in tests/aws/acm_proxy.py, whose every added shape
//! is read back here with the AWS CLI through the same proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "aws/harness.rs"]
mod harness;

use harness::*;
use serde_json::{json, Value};

const KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMIK7MDENGbPxRfiCYzEXAMPLEKEY9";

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every key type, every status, paged, with a private CA: what certdeck reads is what the AWS
/// CLI reads through the same fixture, and the leaf facts come from the DER.
#[test]
fn scan_reads_every_key_type_and_status_paged_through_a_profile_with_endpoint_url() {
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    proxy.set(json!({"page_cap": 2}));
    let (p256, p256_key, p256_der) = cert("p256.example.com", 40, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (p384, p384_key, p384_der) = cert("p384.example.com", 10, &rcgen::PKCS_ECDSA_P384_SHA384);
    let chained = issued("chained.example.com", 200);
    let root = issued("unused.example.com", 1);
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([
            {"op": "import", "region": "us-east-1", "cert": p256, "key": p256_key, "tags": {"team": "shop"}},
            {"op": "import", "region": "us-east-1", "cert": p384, "key": p384_key},
            {"op": "import", "region": "us-east-1", "cert": chained.pem, "key": chained.key, "chain": chained.ca_pem},
            {"op": "request", "region": "us-east-1", "domain": "pending.example.com"},
            {"op": "pca", "region": "us-east-1", "cn": "certdeck sub CA", "root_cert": root.ca_pem, "root_key": root.ca_key},
            {"op": "pca_pending", "region": "us-east-1", "cn": "waiting CA"},
        ]),
    );
    let arn = |i: usize| res[i]["arn"].as_str().unwrap().to_owned();
    let home = AwsHome::new();
    home.static_profile("test", &proxy.url(), KEY, SECRET);

    let (rows, err, code) = scan_json(
        &home,
        &[
            "--aws",
            "--aws-profile",
            "test",
            "--aws-region",
            "us-east-1",
        ],
    );
    assert!(err.is_empty(), "no problem expected: {err}");
    let certs = aws_rows(&rows, "acm-certificate");
    assert_eq!(certs.len(), 4, "{rows:#?}");
    // Leaf facts from the DER: the SHA-256 matches the certificate as generated.
    let r = row(&rows, &arn(0));
    assert_eq!(r["sha256"], sha256_hex(&p256_der));
    assert_eq!(r["key"], "ECDSA P-256");
    assert_eq!(r["aws"]["type"], "IMPORTED");
    assert_eq!(r["aws"]["status"], "ISSUED");
    assert_eq!(r["aws"]["key_algorithm"], "EC_prime256v1");
    assert_eq!(r["aws"]["region"], "us-east-1");
    assert_eq!(r["aws"]["account"], ACCOUNT);
    assert_eq!(r["aws"]["profile"], "test");
    assert_eq!(
        r["aws"]["renewal"],
        "ineligible: imported, renew by re-import"
    );
    assert!(r["id"].as_str().unwrap().starts_with("aws-"));
    let r = row(&rows, &arn(1));
    assert_eq!(r["sha256"], sha256_hex(&p384_der));
    assert_eq!(r["status"], "warning", "10 days left");
    // The chain from GetCertificate.
    let r = row(&rows, &arn(2));
    assert_eq!(r["sha256"], sha256_hex(&chained.der));
    assert_eq!(r["issuer"], "CN=certdeck test root");
    // A request pending validation is a row saying so, without a body.
    let r = row(&rows, &arn(3));
    assert!(r["sha256"].is_null());
    assert_eq!(r["aws"]["status"], "PENDING_VALIDATION");
    assert_eq!(r["aws"]["type"], "AMAZON_ISSUED");
    assert_eq!(
        r["aws"]["renewal"],
        "not issued yet: pending domain validation"
    );
    // Private CAs: the active one with its CA certificate's expiry, the pending one said so.
    let cas = aws_rows(&rows, "acm-pca-ca");
    assert_eq!(cas.len(), 2, "{cas:#?}");
    let active = row(&rows, &arn(4));
    assert_eq!(active["aws"]["status"], "ACTIVE");
    assert_eq!(active["is_ca"], true);
    let ca_der = {
        let pem = res[4]["cert"].as_str().unwrap();
        let (certs, _) = certdeck::sources::aws::read::parse_pem_chain(pem);
        certs[0].clone()
    };
    assert_eq!(active["sha256"], ca_der.sha256);
    assert_eq!(
        active["not_after"],
        certdeck::clock::rfc3339(ca_der.not_after)
    );
    let pending_ca = row(&rows, &arn(5));
    assert_eq!(pending_ca["aws"]["status"], "PENDING_CERTIFICATE");
    assert!(pending_ca["sha256"].is_null());
    assert!(code == 1, "warning (10 days) is the worst: exit {code}");

    // What certdeck asked: every key type and status, page after page.
    let st = proxy.stats();
    let lists = st["list_requests"].as_array().unwrap();
    let ours: Vec<&Value> = lists.iter().filter(|l| !l["keyTypes"].is_null()).collect();
    assert_eq!(ours.len(), 2, "4 certificates, 2 per page: {lists:?}");
    assert!(ours[1]["NextToken"].is_string());
    let mut kt = ids(&ours[0]["keyTypes"]);
    kt.sort();
    assert_eq!(
        kt,
        [
            "EC_prime256v1",
            "EC_secp384r1",
            "EC_secp521r1",
            "RSA_1024",
            "RSA_2048",
            "RSA_3072",
            "RSA_4096"
        ]
    );
    assert_eq!(ids(&ours[0]["CertificateStatuses"]).len(), 7);

    // The AWS CLI through the same fixture: paging it follows, and ACM's default filter
    // (RSA_2048 only without keyTypes) that makes asking for every key type necessary.
    let default = home.aws_json(&["--profile", "test", "acm", "list-certificates"]);
    let d = default["CertificateSummaryList"].as_array().unwrap();
    assert_eq!(d.len(), 1, "only the RSA_2048 request: {default}");
    let all = home.aws_json(&[
        "--profile",
        "test",
        "acm",
        "list-certificates",
        "--page-size",
        "1",
        "--includes",
        "keyTypes=RSA_1024,RSA_2048,RSA_3072,RSA_4096,EC_prime256v1,EC_secp384r1,EC_secp521r1",
    ]);
    let mut cli: Vec<String> = all["CertificateSummaryList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CertificateArn"].as_str().unwrap().to_owned())
        .collect();
    let mut ours: Vec<String> = certs
        .iter()
        .map(|r| r["location"].as_str().unwrap().to_owned())
        .collect();
    cli.sort();
    ours.sort();
    assert_eq!(
        cli, ours,
        "the AWS CLI and certdeck see the same certificates"
    );

    // The table names them too, for a person.
    let (out, _, _) = run(home.certdeck().args([
        "scan",
        "--aws",
        "--aws-profile",
        "test",
        "--aws-region",
        "us-east-1",
    ]));
    assert!(
        out.contains("not issued yet: pending domain validation"),
        "{out}"
    );
    assert!(out.contains("ACM PCA subordinate CA, ACTIVE"), "{out}");
}

/// RenewalSummary, InUseBy and eligibility (added by the fixture, read back by the AWS CLI)
/// become the renewal sentence; a stuck managed renewal inside the window is overdue.
#[test]
fn managed_renewal_pending_validation_is_overdue_and_the_sentence_says_since_when() {
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    let (a, ak, _) = cert("shop.example.com", 20, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (b, bk, _) = cert("api.example.com", 200, &rcgen::PKCS_ECDSA_P256_SHA256);
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([
            {"op": "import", "region": "eu-west-1", "cert": a, "key": ak},
            {"op": "import", "region": "eu-west-1", "cert": b, "key": bk},
        ]),
    );
    let (stuck, fine) = (
        res[0]["arn"].as_str().unwrap().to_owned(),
        res[1]["arn"].as_str().unwrap().to_owned(),
    );
    let lb = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/shop/50dc6c495c0c9188";
    let since = 1_790_000_000.0;
    proxy.set(json!({"overlay": {
        stuck.clone(): {
            "Type": "AMAZON_ISSUED", "RenewalEligibility": "ELIGIBLE", "InUseBy": [lb],
            "RenewalSummary": {"RenewalStatus": "PENDING_VALIDATION", "UpdatedAt": since,
                "DomainValidationOptions": [{"DomainName": "shop.example.com",
                    "ValidationStatus": "PENDING_VALIDATION", "ValidationMethod": "DNS"}]}},
        fine.clone(): {"Type": "AMAZON_ISSUED", "RenewalEligibility": "ELIGIBLE", "InUseBy": [lb]}
    }}));
    let home = AwsHome::new();
    home.static_profile("test", &proxy.url(), KEY, SECRET);
    // The shapes the fixture adds, as the AWS CLI parses them.
    let d = home.aws_json(&[
        "--profile",
        "test",
        "--region",
        "eu-west-1",
        "acm",
        "describe-certificate",
        "--certificate-arn",
        &stuck,
    ]);
    assert_eq!(
        d["Certificate"]["RenewalSummary"]["RenewalStatus"],
        "PENDING_VALIDATION"
    );
    assert_eq!(
        d["Certificate"]["RenewalSummary"]["UpdatedAt"].as_f64(),
        Some(since)
    );
    assert_eq!(d["Certificate"]["InUseBy"][0], lb);

    let (rows, err, _) = scan_json(
        &home,
        &["--aws-profile", "test", "--aws-region", "eu-west-1"],
    );
    assert!(err.is_empty(), "{err}");
    let r = row(&rows, &stuck);
    assert_eq!(r["aws"]["renewal_overdue"], true);
    assert!(
        r["aws"]["renewal"]
            .as_str()
            .unwrap()
            .starts_with("managed renewal pending validation since 2026-09-21 (shop.example.com)"),
        "{}",
        r["aws"]["renewal"]
    );
    assert_eq!(r["aws"]["in_use_by"][0], lb);
    assert_eq!(r["aws"]["renewal_summary"]["status"], "PENDING_VALIDATION");
    let r = row(&rows, &fine);
    assert_eq!(r["aws"]["renewal_overdue"], false);
    assert!(r["aws"]["renewal"]
        .as_str()
        .unwrap()
        .starts_with("ACM renews automatically from 60 days before expiry (eligible)"));
    // The table's note makes the overdue row the loud one.
    let (out, _, _) =
        run(home
            .certdeck()
            .args(["scan", "--aws-profile", "test", "--aws-region", "eu-west-1"]));
    assert!(
        out.contains("RENEWAL OVERDUE: ACM AMAZON_ISSUED ISSUED"),
        "{out}"
    );
}

/// Credentials exactly as the AWS CLI finds them: environment, profile file, web identity
/// through moto's STS, container credentials, credential_process; none is a problem.
#[test]
fn credentials_come_from_the_sdk_chain_and_missing_ones_are_a_problem_not_a_hang() {
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    let (a, ak, _) = cert("creds.example.com", 90, &rcgen::PKCS_ECDSA_P256_SHA256);
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([{"op": "import", "region": "us-east-1", "cert": a, "key": ak}]),
    );
    let arn = res[0]["arn"].as_str().unwrap().to_owned();
    let key_ids = |op: &str| ids(&proxy.stats()["key_ids"][op]);

    // 1. Environment only (keys, region, AWS_ENDPOINT_URL), no files.
    let mut home = AwsHome::new();
    home.set_env("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT00001");
    home.set_env("AWS_SECRET_ACCESS_KEY", SECRET);
    home.set_env("AWS_REGION", "us-east-1");
    home.set_env("AWS_ENDPOINT_URL", &proxy.url());
    let (rows, err, _) = scan_json(&home, &["--aws"]);
    assert!(err.is_empty(), "{err}");
    row(&rows, &arn);
    assert!(key_ids("ListCertificates").contains(&"AKIAENVIRONMENT00001".to_owned()));

    // 2. Web identity (IRSA): role_arn + web_identity_token_file, via moto's STS.
    let home = AwsHome::new();
    write_file(
        &home.path("token"),
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ0ZXN0In0.c2ln",
    );
    home.profile(
        "irsa",
        &[
            ("region", "us-east-1"),
            ("endpoint_url", &proxy.url()),
            ("role_arn", "arn:aws:iam::123456789012:role/certdeck-reader"),
            (
                "web_identity_token_file",
                home.path("token").to_str().unwrap(),
            ),
            ("role_session_name", "certdeck"),
        ],
    );
    let (rows, err, _) = scan_json(&home, &["--aws-profile", "irsa"]);
    assert!(err.is_empty(), "{err}");
    row(&rows, &arn);
    assert!(
        proxy.stats()["ops"]["AssumeRoleWithWebIdentity"]
            .as_u64()
            .unwrap()
            >= 1
    );
    let acm_keys = key_ids("DescribeCertificate");
    assert!(
        acm_keys.iter().any(|k| k.starts_with("ASIA")),
        "ACM was called with STS's temporary keys: {acm_keys:?}"
    );

    // 3. Container credentials on loopback, with the authorization token checked.
    let creds_port = free_port();
    let listener = std::net::TcpListener::bind(("127.0.0.1", creds_port)).unwrap();
    let seen_auth = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = seen_auth.clone();
    std::thread::spawn(move || {
        use std::io::{BufRead, BufReader, Write};
        for s in listener.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
                    break;
                }
                if let Some(v) = l
                    .strip_prefix("Authorization: ")
                    .or(l.strip_prefix("authorization: "))
                {
                    auth = v.trim().to_owned();
                }
            }
            seen.lock().unwrap().push(auth);
            let body = json!({"AccessKeyId": "ASIACONTAINER0000001", "SecretAccessKey": SECRET,
                "Token": "container-session-token", "Expiration": "2099-01-01T00:00:00Z"})
            .to_string();
            let mut s = s;
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    let mut home = AwsHome::new();
    home.set_env(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        &format!("http://127.0.0.1:{creds_port}/v2/credentials"),
    );
    home.set_env("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-task-token");
    home.set_env("AWS_REGION", "us-east-1");
    home.set_env("AWS_ENDPOINT_URL", &proxy.url());
    let (rows, err, _) = scan_json(&home, &["--aws"]);
    assert!(err.is_empty(), "{err}");
    row(&rows, &arn);
    assert!(seen_auth
        .lock()
        .unwrap()
        .iter()
        .any(|a| a == "ecs-task-token"));
    assert!(key_ids("GetCertificate").contains(&"ASIACONTAINER0000001".to_owned()));

    // 4. credential_process.
    let home = AwsHome::new();
    write_file(
        &home.path("creds.sh"),
        &format!("#!/bin/sh\necho '{{\"Version\": 1, \"AccessKeyId\": \"AKIAPROCESS000000001\", \"SecretAccessKey\": \"{SECRET}\"}}'\n"),
    );
    home.profile(
        "proc",
        &[
            ("region", "us-east-1"),
            ("endpoint_url", &proxy.url()),
            (
                "credential_process",
                &format!("sh {}", home.path("creds.sh").display()),
            ),
        ],
    );
    let (rows, err, _) = scan_json(&home, &["--aws-profile", "proc"]);
    assert!(err.is_empty(), "{err}");
    row(&rows, &arn);
    assert!(key_ids("ListCertificates").contains(&"AKIAPROCESS000000001".to_owned()));

    // 5. Nothing at all: one problem naming the profile, no rows, exit UNKNOWN, quickly.
    let home = AwsHome::new();
    home.profile(
        "empty",
        &[("region", "us-east-1"), ("endpoint_url", &proxy.url())],
    );
    let (rows, err, code) = scan_json(&home, &["--aws-profile", "empty"]);
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(code, 3);
    assert!(
        err.contains("certdeck: aws empty: no AWS credentials for profile empty"),
        "{err}"
    );
    // An unknown profile says so.
    let (_, err, code) = scan_json(&home, &["--aws-profile", "nosuch"]);
    assert_eq!(code, 3);
    assert!(err.contains("nosuch"), "{err}");
    // No region anywhere is a config problem, not a guess.
    let home = AwsHome::new();
    home.keys("default", KEY, SECRET);
    let (_, err, code) = scan_json(&home, &["--aws"]);
    assert_eq!(code, 3);
    assert!(err.contains("no region for profile default"), "{err}");
}

/// moto with signature checks (INITIAL_NO_AUTH_ACTION_COUNT): a wrong secret is a
/// credentials problem, a user without acm:DescribeCertificate gets a problem naming the
/// action and the user; no secret reaches the output or the logs.
#[test]
fn wrong_secret_and_missing_permission_are_named_and_no_secret_is_printed() {
    let moto = Moto::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "3")]);
    let admin = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([{"op": "iam_user", "name": "admin", "actions": ["acm:*", "acm-pca:*", "iam:*", "sts:*"]}]),
    );
    let (ak, asec) = (
        admin[0]["key_id"].as_str().unwrap().to_owned(),
        admin[0]["secret"].as_str().unwrap().to_owned(),
    );
    let (c, k, _) = cert("auth.example.com", 90, &rcgen::PKCS_ECDSA_P256_SHA256);
    let res = seed(
        &moto.url(),
        &ak,
        &asec,
        json!([
            {"op": "import", "region": "us-east-1", "cert": c, "key": k},
            {"op": "iam_user", "name": "lister", "actions": ["acm:ListCertificates", "sts:GetCallerIdentity"]},
        ]),
    );
    let arn = res[0]["arn"].as_str().unwrap().to_owned();
    let (lk, lsec) = (
        res[1]["key_id"].as_str().unwrap().to_owned(),
        res[1]["secret"].as_str().unwrap().to_owned(),
    );
    let mut home = AwsHome::new();
    home.static_profile("admin", &moto.url(), &ak, &asec);
    home.static_profile("lister", &moto.url(), &lk, &lsec);
    home.static_profile(
        "wrong",
        &moto.url(),
        &ak,
        "ThisIsNotTheSecret0000000000000000000000",
    );
    home.set_env("CERTDECK_LOG", "debug");

    let (rows, err, code) = scan_json(
        &home,
        &["--aws-profile", "admin", "--aws-region", "us-east-1"],
    );
    assert!(!err.contains("certdeck: aws"), "{err}");
    assert_eq!(row(&rows, &arn)["aws"]["status"], "ISSUED");
    assert_eq!(code, 0);

    let (rows, err, code) = scan_json(
        &home,
        &["--aws-profile", "wrong", "--aws-region", "us-east-1"],
    );
    assert!(rows.is_empty());
    assert_eq!(code, 3);
    assert!(err.contains("credentials rejected"), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("InvalidClientTokenId"),
        "{err}"
    );

    let (rows, err, code) = scan_json(
        &home,
        &["--aws-profile", "lister", "--aws-region", "us-east-1"],
    );
    assert_eq!(code, 3);
    let want = format!("acm:DescribeCertificate denied for arn:aws:iam::{ACCOUNT}:user/lister");
    assert!(err.contains(&want), "{err}");
    let r = row(&rows, &arn);
    assert!(r["error"].as_str().unwrap().contains(&want), "{r}");

    // Not a secret anywhere, in any of the runs above or with every log on.
    home.set_env("CERTDECK_LOG", "trace");
    for p in ["admin", "wrong", "lister"] {
        let (out, err, _) = run(home.certdeck().args([
            "scan",
            "--aws-profile",
            p,
            "--aws-region",
            "us-east-1",
            "-o",
            "json",
        ]));
        for s in [&asec, &lsec] {
            assert!(
                !out.contains(s.as_str()) && !err.contains(s.as_str()),
                "secret leaked ({p})"
            );
        }
    }
}

/// Faults behind one account: each ends as a problem or an error row, while another account
/// and a certificate file still load in the same scan.
#[test]
fn faults_end_as_problems_or_error_rows_and_the_rest_of_the_fleet_loads() {
    let moto = Moto::start(&[]);
    let bad = Proxy::start(&moto);
    let good = Proxy::start(&moto);
    let mut arns = Vec::new();
    for i in 0..4 {
        let (c, k, _) = cert(
            &format!("f{i}.example.com"),
            90,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        let r = seed(
            &moto.url(),
            KEY,
            SECRET,
            json!([{"op": "import", "region": "us-east-1", "cert": c, "key": k}]),
        );
        arns.push(r[0]["arn"].as_str().unwrap().to_owned());
    }
    arns.sort();
    // The other account's certificates, in another region (other ARNs, other rows).
    for i in 0..4 {
        let (c, k, _) = cert(
            &format!("g{i}.example.com"),
            90,
            &rcgen::PKCS_ECDSA_P256_SHA256,
        );
        seed(
            &moto.url(),
            KEY,
            SECRET,
            json!([{"op": "import", "region": "us-west-2", "cert": c, "key": k}]),
        );
    }
    let home = AwsHome::new();
    home.static_profile("bad", &bad.url(), KEY, SECRET);
    home.static_profile("good", &good.url(), KEY, SECRET);
    let (fc, _, _) = cert("file.example.com", 90, &rcgen::PKCS_ECDSA_P256_SHA256);
    write_file(&home.path("file.pem"), &fc);
    let cfg = home.path("certdeck.toml");
    write_file(
        &cfg,
        &format!(
            "files = [\"{}\"]\n[[aws]]\nprofile = \"bad\"\nregions = [\"us-east-1\"]\ntimeout = \"1s\"\nmax_attempts = 2\nprivate_cas = false\n[[aws]]\nprofile = \"good\"\nregions = [\"us-west-2\"]\nprivate_cas = false\n",
            home.path("file.pem").display()
        ),
    );
    let scan = || {
        let (out, err, code) = run(home
            .certdeck()
            .arg("--config")
            .arg(&cfg)
            .args(["scan", "-o", "json"]));
        let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out} {err}"));
        (rows, err, code)
    };
    let good_rows = |rows: &[Value]| {
        rows.iter()
            .filter(|r| r["aws"]["profile"] == "good" && r["sha256"].is_string())
            .count()
    };
    let bad_rows = |rows: &[Value]| -> Vec<Value> {
        rows.iter()
            .filter(|r| r["aws"]["profile"] == "bad")
            .cloned()
            .collect()
    };
    let bad_row = |rows: &[Value], arn: &str| -> Value {
        rows.iter()
            .find(|r| r["aws"]["profile"] == "bad" && r["location"] == arn)
            .cloned()
            .unwrap_or_else(|| panic!("no bad row for {arn}"))
    };
    let file_loaded = |rows: &[Value]| {
        rows.iter()
            .any(|r| r["source"] == "file" && r["sha256"].is_string())
    };
    let prefix = "certdeck: aws bad/us-east-1: ".to_owned();

    // Throttled twice, then answered: the SDK's backoff gets every certificate.
    bad.set(json!({"faults": [{"op": "DescribeCertificate", "status": 400, "code": "ThrottlingException", "message": "Rate exceeded", "times": 2}]}));
    let (rows, err, _) = scan();
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        bad_rows(&rows)
            .iter()
            .filter(|r| r["sha256"].is_string())
            .count(),
        4
    );
    assert!(bad.stats()["ops"]["DescribeCertificate"].as_u64().unwrap() >= 6);

    // Throttled for good (429) on one certificate: its row says so, the problem too.
    bad.set(json!({"faults": [{"op": "DescribeCertificate", "arn": arns[1], "status": 429, "code": "ThrottlingException", "message": "Rate exceeded"}]}));
    let (rows, err, code) = scan();
    assert!(
        err.contains(&format!(
            "{prefix}acm:DescribeCertificate: throttled (ThrottlingException)"
        )),
        "{err}"
    );
    assert!(bad_row(&rows, &arns[1])["error"]
        .as_str()
        .unwrap()
        .contains("throttled"));
    assert_eq!(
        bad_rows(&rows)
            .iter()
            .filter(|r| r["sha256"].is_string())
            .count(),
        3
    );
    assert_eq!(good_rows(&rows), 4);
    assert!(file_loaded(&rows));
    assert_eq!(code, 3);

    // 500 on ListCertificates: the region is one problem.
    bad.set(json!({"faults": [{"op": "ListCertificates", "status": 500, "code": "InternalFailure", "message": "We encountered an internal error"}]}));
    let (rows, err, _) = scan();
    assert!(err.contains(&format!("{prefix}acm:ListCertificates: InternalFailure (HTTP 500): We encountered an internal error")), "{err}");
    assert!(bad_rows(&rows).is_empty());
    assert_eq!(good_rows(&rows), 4);
    assert!(file_loaded(&rows));

    // A slow endpoint past the 1 s timeout (2 attempts): timed out, bounded.
    bad.set(json!({"faults": [{"op": "ListCertificates", "delay": 4}]}));
    let (rows, err, _) = scan();
    assert!(
        err.contains(&format!("{prefix}acm:ListCertificates: timed out after 1s")),
        "{err}"
    );
    assert_eq!(good_rows(&rows), 4);

    // The second page fails: the first page's certificates are rows, the rest a problem.
    bad.set(json!({"page_cap": 2, "faults": [{"op": "ListCertificates", "follow_up_pages": true, "status": 500, "code": "InternalFailure", "message": "boom"}]}));
    let (rows, err, _) = scan();
    assert!(
        err.contains(&format!(
            "{prefix}ListCertificates page 2 failed after 2 certificates were read"
        )),
        "{err}"
    );
    assert_eq!(bad_rows(&rows).len(), 2);
    assert_eq!(good_rows(&rows), 4);

    // Bodies that do not parse: a truncated DescribeCertificate, a broken PEM, a 403.
    bad.set(json!({"faults": [
        {"op": "DescribeCertificate", "arn": arns[0], "status": 200, "body": "{\"Certificate\": {\"CertificateArn\": "},
        {"op": "GetCertificate", "arn": arns[1], "status": 200, "body": "{\"Certificate\": \"-----BEGIN CERTIFICATE-----\\nMIIBbroken!!\\n-----END CERTIFICATE-----\\n\"}"},
        {"op": "GetCertificate", "arn": arns[2], "status": 400, "code": "AccessDeniedException", "message": "User: arn:aws:iam::123456789012:user/ro is not authorized to perform: acm:GetCertificate"}
    ]}));
    let (rows, err, _) = scan();
    let e0 = bad_row(&rows, &arns[0])["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e0.contains("acm:DescribeCertificate: the response could not be read"),
        "{e0}"
    );
    let e1 = bad_row(&rows, &arns[1])["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e1.contains("acm:GetCertificate returned no certificate that parses"),
        "{e1}"
    );
    let e2 = bad_row(&rows, &arns[2])["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        e2.starts_with("acm:GetCertificate denied for arn:aws:iam::123456789012:user/ro"),
        "{e2}"
    );
    assert!(
        err.contains("acm:GetCertificate denied for arn:aws:iam::123456789012:user/ro"),
        "{err}"
    );
    assert!(bad_row(&rows, &arns[3])["sha256"].is_string());
    assert_eq!(good_rows(&rows), 4);
    assert!(file_loaded(&rows));
}

/// `--aws-all-regions` reads every ACM region; certificates in two of them are found.
#[test]
fn all_regions_reads_each_region_as_its_own_instance() {
    let moto = Moto::start(&[]);
    let (a, ak, _) = cert("east.example.com", 90, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (b, bk, _) = cert("tokyo.example.com", 90, &rcgen::PKCS_ECDSA_P256_SHA256);
    seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([
            {"op": "import", "region": "us-east-2", "cert": a, "key": ak},
            {"op": "import", "region": "ap-northeast-1", "cert": b, "key": bk},
        ]),
    );
    let home = AwsHome::new();
    home.static_profile("test", &moto.url(), KEY, SECRET);
    let (rows, err, _) = scan_json(&home, &["--aws-profile", "test", "--aws-all-regions"]);
    assert!(err.is_empty(), "{err}");
    let mut regions: Vec<&str> = rows
        .iter()
        .map(|r| r["aws"]["region"].as_str().unwrap())
        .collect();
    regions.sort();
    assert_eq!(regions, ["ap-northeast-1", "us-east-2"]);
}

use certdeck::actions::{ActionEvent, Reporter, Step};

fn reporter() -> (Reporter, tokio::sync::mpsc::Receiver<ActionEvent>) {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    (Reporter::new("test-row", tx), rx)
}

/// The steps and messages reported so far.
fn steps_of(rx: &mut tokio::sync::mpsc::Receiver<ActionEvent>) -> Vec<(Step, String)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        if let ActionEvent::Progress(p) = ev {
            out.push((p.step, p.message));
        }
    }
    out
}

fn lib_settings(home: &AwsHome, profile: &str) -> certdeck::sources::aws::AwsSettings {
    certdeck::sources::aws::AwsSettings {
        profile: Some(profile.to_owned()),
        config_file: Some(home.path("config")),
        credentials_file: Some(home.path("credentials")),
        ..certdeck::sources::aws::AwsSettings::default()
    }
}

/// RenewCertificate through the library engine: eligibility checked first (an imported
/// certificate is refused with the reason), the consumers in the plan, the renewal verified by
/// re-reading. The fixture's RenewCertificate shape is driven by the AWS CLI too.
#[tokio::test(flavor = "multi_thread")]
async fn renew_private_certificate_plans_with_consumers_and_verifies_the_new_certificate() {
    use certdeck::sources::aws::actions;
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    let (a, ak, _) = cert(
        "private.example.internal",
        20,
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let (b, bk, _) = cert("other.example.internal", 20, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (c, ck, _) = cert("imported.example.com", 20, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (na, nak, na_der) = cert(
        "private.example.internal",
        395,
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let (nb, nbk, _) = cert(
        "other.example.internal",
        395,
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([
            {"op": "import", "region": "us-east-1", "cert": a, "key": ak},
            {"op": "import", "region": "us-east-1", "cert": b, "key": bk},
            {"op": "import", "region": "us-east-1", "cert": c, "key": ck},
        ]),
    );
    let arn = |i: usize| res[i]["arn"].as_str().unwrap().to_owned();
    let (pa, pb, imported) = (arn(0), arn(1), arn(2));
    let lb = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/internal/1";
    let ca = "arn:aws:acm-pca:us-east-1:123456789012:certificate-authority/11111111-2222-3333-4444-555555555555";
    let private =
        json!({"Type": "PRIVATE", "RenewalEligibility": "ELIGIBLE", "CertificateAuthorityArn": ca});
    let mut pa_overlay = private.clone();
    pa_overlay["InUseBy"] = json!([lb]);
    proxy.set(json!({
        "overlay": {pa.clone(): pa_overlay, pb.clone(): private},
        "renewable": {pa.clone(): {"cert": na, "key": nak}, pb.clone(): {"cert": nb, "key": nbk}}
    }));
    let home = AwsHome::new();
    home.static_profile("test", &proxy.url(), KEY, SECRET);

    // The fixture's RenewCertificate, as the AWS CLI sees it.
    let refused = home.aws(&[
        "--profile",
        "test",
        "acm",
        "renew-certificate",
        "--certificate-arn",
        &imported,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ValidationException"));
    let ok = home.aws(&[
        "--profile",
        "test",
        "acm",
        "renew-certificate",
        "--certificate-arn",
        &pb,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let d = home.aws_json(&[
        "--profile",
        "test",
        "acm",
        "describe-certificate",
        "--certificate-arn",
        &pb,
    ]);
    assert_eq!(
        d["Certificate"]["RenewalSummary"]["RenewalStatus"],
        "SUCCESS"
    );

    let account = actions::account_for(&lib_settings(&home, "test"), &pa)
        .await
        .unwrap();
    // Refused with the reason for an imported certificate, before any change.
    let e = actions::plan_renew(&account, &imported).await.unwrap_err();
    assert_eq!(e.step, None);
    assert!(e.message.contains("re-import"), "{e}");

    let plan = actions::plan_renew(&account, &pa).await.unwrap();
    assert_eq!(plan.consumers, [lb]);
    assert_eq!(plan.issuer.as_deref(), Some(ca));
    assert!(plan.calls[0].starts_with("acm:RenewCertificate CertificateArn=arn:aws:acm:us-east-1:"));
    let before = proxy.stats()["ops"]["RenewCertificate"]
        .as_u64()
        .unwrap_or(0);
    let (rep, mut events) = reporter();
    let out = actions::execute_renew(&account, &plan, std::time::Duration::from_secs(30), &rep)
        .await
        .unwrap();
    let steps: Vec<Step> = steps_of(&mut events).iter().map(|e| e.0).collect();
    assert_eq!(
        proxy.stats()["ops"]["RenewCertificate"].as_u64().unwrap(),
        before + 1
    );
    assert!(steps.contains(&Step::Write) && steps.contains(&Step::Verify));
    let new = certdeck::model::CertFacts::from_der(&na_der).unwrap();
    assert_eq!(out.not_after, Some(new.not_after));
    assert_ne!(out.serial, plan.old_serial);
    // Re-read through the binary: the row shows the renewed certificate.
    let (rows, _, _) = scan_json(
        &home,
        &["--aws-profile", "test", "--aws-region", "us-east-1"],
    );
    let r = row(&rows, &pa);
    assert_eq!(r["sha256"], new.sha256);
    assert_eq!(r["aws"]["renewal_summary"]["status"], "SUCCESS");
    assert_eq!(r["aws"]["type"], "PRIVATE");
}

/// Re-import into an imported ARN from files: the plan keeps the tags and lists the
/// consumers; a key that does not match is refused at plan; a failed import leaves the old
/// certificate; a good one is verified by re-reading, tags kept.
#[tokio::test(flavor = "multi_thread")]
async fn reimport_replaces_the_certificate_under_the_same_arn_and_keeps_its_tags() {
    use certdeck::sources::aws::actions;
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    let old = issued("shop.example.com", 5);
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([{"op": "import", "region": "us-east-1", "cert": old.pem, "key": old.key, "chain": old.ca_pem, "tags": {"team": "shop", "env": "prod"}}]),
    );
    let arn = res[0]["arn"].as_str().unwrap().to_owned();
    let home = AwsHome::new();
    home.static_profile("direct", &moto.url(), KEY, SECRET);
    home.static_profile("proxied", &proxy.url(), KEY, SECRET);
    let new = issued("shop.example.com", 90);
    write_file(&home.path("new.pem"), &new.pem);
    write_file(&home.path("new.key"), &new.key);
    write_file(&home.path("chain.pem"), &new.ca_pem);
    write_file(&home.path("other.key"), &issued("x.example.com", 5).key);
    let files = actions::ReimportFiles {
        certificate: home.path("new.pem"),
        private_key: home.path("new.key"),
        chain: Some(home.path("chain.pem")),
    };
    let account = actions::account_for(&lib_settings(&home, "direct"), &arn)
        .await
        .unwrap();

    // A key that is not the certificate's: refused before anything is sent.
    let bad = actions::ReimportFiles {
        private_key: home.path("other.key"),
        ..files.clone()
    };
    let e = actions::plan_reimport(&account, &arn, &bad)
        .await
        .unwrap_err();
    assert!(
        e.message.contains("does not belong to the certificate"),
        "{e}"
    );

    let (plan, material) = actions::plan_reimport(&account, &arn, &files)
        .await
        .unwrap();
    assert!(!format!("{material:?}").contains("PRIVATE KEY"));
    let mut tags = plan.tags.clone();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("env".to_owned(), "prod".to_owned()),
            ("team".to_owned(), "shop".to_owned())
        ]
    );
    assert_eq!(
        plan.new_sha256.as_deref(),
        Some(sha256_hex(&new.der).as_str())
    );
    assert!(plan.calls[0].starts_with(&format!("acm:ImportCertificate CertificateArn={arn}")));

    // The import fails (500 from the proxy): the old certificate stays, the step is named.
    proxy.set(json!({"faults": [{"op": "ImportCertificate", "status": 500, "code": "InternalFailure", "message": "injected"}]}));
    let paccount = actions::account_for(
        &certdeck::sources::aws::AwsSettings {
            max_attempts: 1,
            ..lib_settings(&home, "proxied")
        },
        &arn,
    )
    .await
    .unwrap();
    let e = actions::execute_reimport(&paccount, &plan, &material, &reporter().0)
        .await
        .unwrap_err();
    assert_eq!(e.step, Some(Step::Write));
    assert!(
        e.message
            .contains("the previous certificate stays in service"),
        "{e}"
    );
    let got = home.aws_json(&[
        "--profile",
        "direct",
        "acm",
        "get-certificate",
        "--certificate-arn",
        &arn,
    ]);
    assert_eq!(got["Certificate"].as_str().unwrap().trim(), old.pem.trim());

    // The real import: verified, tags kept (moto drops them on re-import; the engine puts
    // them back, as the plan says).
    let (rep, mut events) = reporter();
    let out = actions::execute_reimport(&account, &plan, &material, &rep)
        .await
        .unwrap();
    let ev = steps_of(&mut events);
    let steps: Vec<Step> = ev.iter().map(|e| e.0).collect();
    let events_text: Vec<String> = ev.iter().map(|e| e.1.clone()).collect();
    assert_eq!(out.sha256.as_deref(), Some(sha256_hex(&new.der).as_str()));
    assert!(steps.contains(&Step::Verify));
    assert!(
        events_text
            .iter()
            .any(|m| m.contains("AddTagsToCertificate")),
        "moto drops tags on re-import; the engine restored them: {events_text:?}"
    );
    let got = home.aws_json(&[
        "--profile",
        "direct",
        "acm",
        "get-certificate",
        "--certificate-arn",
        &arn,
    ]);
    assert_eq!(got["Certificate"].as_str().unwrap().trim(), new.pem.trim());
    let t = home.aws_json(&[
        "--profile",
        "direct",
        "acm",
        "list-tags-for-certificate",
        "--certificate-arn",
        &arn,
    ]);
    let mut kv: Vec<String> = t["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            format!(
                "{}={}",
                x["Key"].as_str().unwrap(),
                x["Value"].as_str().unwrap()
            )
        })
        .collect();
    kv.sort();
    assert_eq!(kv, ["env=prod", "team=shop"]);
    // Renew is refused for it, pointing at re-import.
    let e = actions::plan_renew(&account, &arn).await.unwrap_err();
    assert!(e.message.contains("re-import"));
}

/// Through the binary and the action framework: `renew ID --dry-run` previews the
/// RenewCertificate with the consumers and changes nothing; `renew ID --yes` renews a private
/// certificate, and re-imports an imported one that has a `[[aws.reimport]]` entry; an
/// imported certificate without one is refused with the reason; both are audited.
#[test]
fn renew_through_the_binary_renews_private_and_reimports_imported_certificates() {
    let moto = Moto::start(&[]);
    let proxy = Proxy::start(&moto);
    let (a, ak, _) = cert("pca.example.internal", 20, &rcgen::PKCS_ECDSA_P256_SHA256);
    let (na, nak, na_der) = cert("pca.example.internal", 395, &rcgen::PKCS_ECDSA_P256_SHA256);
    let old = issued("shop.example.com", 5);
    let new = issued("shop.example.com", 90);
    let (d, dk, _) = cert("legacy.example.com", 5, &rcgen::PKCS_ECDSA_P256_SHA256);
    let res = seed(
        &moto.url(),
        KEY,
        SECRET,
        json!([
            {"op": "import", "region": "us-east-1", "cert": a, "key": ak},
            {"op": "import", "region": "us-east-1", "cert": old.pem, "key": old.key, "tags": {"team": "shop"}},
            {"op": "import", "region": "us-east-1", "cert": d, "key": dk},
        ]),
    );
    let arn = |i: usize| res[i]["arn"].as_str().unwrap().to_owned();
    let (private, imported, unmapped) = (arn(0), arn(1), arn(2));
    let lb = "arn:aws:cloudfront::123456789012:distribution/E2QWRUHEXAMPLE";
    proxy.set(json!({
        "overlay": {private.clone(): {"Type": "PRIVATE", "RenewalEligibility": "ELIGIBLE", "InUseBy": [lb]}},
        "renewable": {private.clone(): {"cert": na, "key": nak}}
    }));
    let mut home = AwsHome::new();
    home.static_profile("test", &proxy.url(), KEY, SECRET);
    home.set_env("CERTDECK_DATA_DIR", home.path("data").to_str().unwrap());
    write_file(&home.path("new.pem"), &new.pem);
    write_file(&home.path("new.key"), &new.key);
    write_file(&home.path("chain.pem"), &new.ca_pem);
    let cfg = home.path("certdeck.toml");
    write_file(
        &cfg,
        &format!(
            "[[aws]]\nprofile = \"test\"\nregions = [\"us-east-1\"]\nprivate_cas = false\n[[aws.reimport]]\narn = \"{imported}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\nchain = \"{}\"\n",
            home.path("new.pem").display(),
            home.path("new.key").display(),
            home.path("chain.pem").display()
        ),
    );
    let certdeck = |args: &[&str]| run(home.certdeck().arg("--config").arg(&cfg).args(args));
    let (out, err, _) = certdeck(&["scan", "-o", "json"]);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap_or_else(|_| panic!("{out}{err}"));
    let id = |arn: &str| row(&rows, arn)["id"].as_str().unwrap().to_owned();

    let (out, err, code) = certdeck(&["renew", &id(&private), "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("acm:RenewCertificate CertificateArn="),
        "{out}"
    );
    assert!(out.contains(lb), "the consumers are in the preview: {out}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert_eq!(proxy.stats()["ops"]["RenewCertificate"], Value::Null);

    let (out, err, code) = certdeck(&["renew", &id(&private), "--yes", "--wait", "30s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(proxy.stats()["ops"]["RenewCertificate"], 1);

    let (out, err, code) = certdeck(&["renew", &id(&imported), "--yes"]);
    assert_eq!(code, 0, "{out}{err}");
    let got = home.aws_json(&[
        "--profile",
        "test",
        "acm",
        "get-certificate",
        "--certificate-arn",
        &imported,
    ]);
    assert_eq!(got["Certificate"].as_str().unwrap().trim(), new.pem.trim());

    let (out, err, code) = certdeck(&["renew", &id(&unmapped), "--yes"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("re-import"), "{err}");

    // Re-read: the rows show the new certificates.
    let (out, _, _) = certdeck(&["scan", "-o", "json"]);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(
        row(&rows, &private)["sha256"],
        certdeck::model::CertFacts::from_der(&na_der)
            .unwrap()
            .sha256
    );
    assert_eq!(row(&rows, &imported)["sha256"], sha256_hex(&new.der));
    // The audit log has both, with the certificates before and after.
    let audit = std::fs::read_to_string(home.path("data/audit.jsonl")).unwrap();
    let recs: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ok: Vec<&Value> = recs
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .collect();
    assert!(
        ok.iter()
            .any(|r| r["action"] == "aws-renew" && r["location"] == private.as_str()),
        "{audit}"
    );
    let re = ok
        .iter()
        .find(|r| r["action"] == "aws-reimport")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(re["after_sha256"], sha256_hex(&new.der));
    assert_eq!(re["before_sha256"], sha256_hex(&old.der));
}
