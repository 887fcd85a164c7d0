//! TLS probing against real servers on loopback: the demo fleet (rustls servers with rcgen
//! certificates) and misbehaving ports. Every failure mode is a record, never a hang.

use std::time::Duration;

use crate::common::scan_targets;
use certdeck::demo::DemoFleet;
use certdeck::model::{assess, Record, Status, Thresholds};
use certdeck::sources::{ProbeSettings, Target};

fn find<'a>(fleet: &DemoFleet, records: &'a [Record], story: &str) -> &'a Record {
    let ep = fleet
        .endpoints
        .iter()
        .find(|e| e.story == story)
        .unwrap_or_else(|| panic!("no demo story {story}"));
    let loc = ep.target.to_string();
    records
        .iter()
        .find(|r| r.location == loc)
        .unwrap_or_else(|| panic!("no record for {loc}"))
}

fn verdict(r: &Record) -> String {
    r.tls
        .as_ref()
        .and_then(|t| t.verification.as_ref())
        .map(|v| v.reason.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_fleet_reports_every_case_with_its_verdict() {
    let fleet = DemoFleet::start().await.expect("demo fleet");
    let settings = ProbeSettings {
        extra_roots: vec![fleet.trust_anchor()],
        ..ProbeSettings::default()
    };
    let (records, failures) = scan_targets(fleet.targets(), settings).await;
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(records.len(), fleet.endpoints.len());
    let now = certdeck::clock::now_unix();
    let t = Thresholds::default();
    let st = |story: &str| assess(find(&fleet, &records, story), now, t);

    let expired = find(&fleet, &records, "expired 10 days ago");
    assert_eq!(st("expired 10 days ago").status, Status::Expired);
    // Ten days to the second at start-up: a second later it is day -11.
    assert!(matches!(
        st("expired 10 days ago").days_left,
        Some(-10 | -11)
    ));
    assert_eq!(verdict(expired), "expired");
    assert!(
        expired.error.is_none(),
        "an expired certificate is read, not an error: {:?}",
        expired.error
    );

    assert_eq!(st("expires in 3 days").status, Status::Critical);
    assert!(matches!(st("expires in 3 days").days_left, Some(2 | 3)));
    assert_eq!(st("expires in 20 days").status, Status::Warning);

    let healthy = find(&fleet, &records, "healthy for months");
    assert_eq!(st("healthy for months").status, Status::Ok);
    assert_eq!(verdict(healthy), "trusted");
    assert_eq!(
        healthy.chain.len(),
        1,
        "the intermediate is captured as chain"
    );
    let tls = healthy.tls.as_ref().expect("tls info");
    assert_eq!(tls.tls_version.as_deref(), Some("TLSv1.3"));
    assert!(!tls.client_auth_requested);
    let leaf = healthy.cert.as_ref().expect("leaf");
    assert_eq!(leaf.key, "ECDSA P-256");
    assert_eq!(leaf.common_name.as_deref(), Some("www.demo.test"));
    assert!(leaf.sans.iter().any(|s| s.render() == "DNS:localhost"));
    assert_eq!(leaf.sha256.len(), 64);

    assert_eq!(
        verdict(find(&fleet, &records, "self-signed")),
        "self-signed"
    );
    assert!(verdict(find(&fleet, &records, "wrong host name")).starts_with("host name mismatch"));

    let short = st("intermediate expires before the leaf");
    assert_eq!(
        short.status,
        Status::Critical,
        "the intermediate's expiry decides"
    );
    let cause = short.cause.expect("cause");
    assert_eq!(cause.position, 1);
    assert!(cause.subject.contains("short-lived"));
    let payments = find(&fleet, &records, "intermediate expires before the leaf");
    let leaf_days = (payments.cert.as_ref().expect("leaf").not_after - now) / 86_400;
    assert!(
        leaf_days > 250,
        "the leaf itself is long-lived ({leaf_days} days)"
    );

    let mtls = find(&fleet, &records, "requires a client certificate (mTLS)");
    assert!(
        mtls.cert.is_some(),
        "an mTLS server is still read: {:?}",
        mtls.error
    );
    assert!(mtls.tls.as_ref().expect("tls").client_auth_requested);
    assert_eq!(verdict(mtls), "trusted");

    assert_eq!(st("not yet valid").status, Status::NotYetValid);
    assert_eq!(
        verdict(find(&fleet, &records, "not yet valid")),
        "not yet valid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_demo_ca_the_chain_is_unknown_issuer_but_still_read() {
    let fleet = DemoFleet::start().await.expect("demo fleet");
    let ep = fleet
        .endpoints
        .iter()
        .find(|e| e.story == "healthy for months")
        .expect("story");
    let (records, _) = scan_targets(vec![ep.target.clone()], ProbeSettings::default()).await;
    assert!(records[0].cert.is_some());
    assert!(
        verdict(&records[0]).starts_with("unknown issuer"),
        "{}",
        verdict(&records[0])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_override_checks_the_certificate_against_that_name() {
    let fleet = DemoFleet::start().await.expect("demo fleet");
    let ep = fleet
        .endpoints
        .iter()
        .find(|e| e.story == "healthy for months")
        .expect("story");
    let targets = vec![
        Target::parse(&format!("127.0.0.1:{}@www.demo.test", ep.target.port), None)
            .expect("target"),
        Target::parse(
            &format!("127.0.0.1:{}", ep.target.port),
            Some("other.demo.test"),
        )
        .expect("target"),
    ];
    let settings = ProbeSettings {
        extra_roots: vec![fleet.trust_anchor()],
        ..ProbeSettings::default()
    };
    let (mut records, _) = scan_targets(targets, settings).await;
    records.sort_by(|a, b| b.location.cmp(&a.location));
    assert_eq!(
        records[0].location,
        format!("127.0.0.1:{}@www.demo.test", ep.target.port)
    );
    assert_eq!(verdict(&records[0]), "trusted");
    assert!(
        verdict(&records[1]).starts_with("host name mismatch"),
        "{}",
        verdict(&records[1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_mode_is_a_clear_row_within_one_timeout() {
    let (hang, _h1) = crate::common::hanging_server().await;
    let (plain, _h2) = crate::common::plain_http_server().await;
    let (garbage, _h3) =
        crate::common::reply_server(b"\x00\x01garbage\xff\xfe bytes that are not TLS".to_vec())
            .await;
    let (silent_close, _h4) = crate::common::reply_server(Vec::new()).await;
    let backlog = crate::common::full_backlog_port().await;
    let closed = crate::common::closed_port();
    let cases = [
        (
            format!("127.0.0.1:{hang}"),
            "timed out after 1s waiting for the TLS handshake",
        ),
        (
            format!("127.0.0.1:{plain}"),
            "not a TLS server: the port answered in plain HTTP (\"HTTP/1.1 400 Bad Request\")",
        ),
        (format!("127.0.0.1:{garbage}"), "not a TLS server"),
        (
            format!("127.0.0.1:{silent_close}"),
            "closed the connection during the TLS handshake",
        ),
        (
            format!("127.0.0.1:{}", backlog.port),
            "timed out after 1s connecting",
        ),
        (format!("127.0.0.1:{closed}"), "connection refused"),
        (
            "no-such-host.invalid:443".to_owned(),
            "DNS lookup of 'no-such-host.invalid' failed",
        ),
    ];
    let targets: Vec<Target> = cases
        .iter()
        .map(|(t, _)| Target::parse(t, None).expect("target"))
        .collect();
    let settings = ProbeSettings {
        timeout: Duration::from_secs(1),
        ..ProbeSettings::default()
    };
    // A hang guard: every failure is bounded by the one time limit (speed: benches/).
    let (records, _) =
        tokio::time::timeout(Duration::from_secs(60), scan_targets(targets, settings))
            .await
            .expect("a hanging port never stalls the scan");
    assert_eq!(records.len(), cases.len());
    let now = certdeck::clock::now_unix();
    for (target, want) in &cases {
        let r = records
            .iter()
            .find(|r| &r.location == target)
            .unwrap_or_else(|| panic!("no row for {target}"));
        let err = r
            .error
            .as_deref()
            .unwrap_or_else(|| panic!("{target}: no error"));
        assert!(
            err.contains(want),
            "{target}: error {err:?} should contain {want:?}"
        );
        assert!(r.cert.is_none());
        assert_eq!(assess(r, now, Thresholds::default()).status, Status::Error);
    }
}

/// A TLS 1.2-only server; with `require_client_cert` it refuses clients without one, after
/// it has sent its own certificate (the chain must still be read).
async fn tls12_server(require_client_cert: bool) -> (u16, String, tokio::task::JoinHandle<()>) {
    use std::sync::Arc;
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["tls12.test".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "tls12.test");
    let cert = params.self_signed(&key).expect("cert");
    let sha = certdeck::model::cert::sha256_hex(cert.der());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("tls12");
    let key_der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = if require_client_cert {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).expect("root");
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        builder
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert.der().clone()], key_der)
    } else {
        builder
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key_der)
    }
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let a = acceptor.clone();
            tokio::spawn(async move {
                let _ = a.accept(s).await;
            });
        }
    });
    (port, sha, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls12_servers_are_read_including_mtls_ones_that_refuse_us() {
    certdeck::sources::tls::install_crypto_provider();
    let (plain, plain_sha, _h1) = tls12_server(false).await;
    let (mtls, mtls_sha, _h2) = tls12_server(true).await;
    let targets = vec![
        Target::parse(&format!("127.0.0.1:{plain}@tls12.test"), None).expect("t"),
        Target::parse(&format!("127.0.0.1:{mtls}@tls12.test"), None).expect("t"),
    ];
    let (records, _) = scan_targets(targets, ProbeSettings::default()).await;
    let by_port = |p: u16| {
        records
            .iter()
            .find(|r| r.location.contains(&format!(":{p}@")))
            .expect("row")
    };
    let r = by_port(plain);
    assert_eq!(r.cert.as_ref().expect("cert").sha256, plain_sha);
    assert_eq!(
        r.tls.as_ref().expect("tls").tls_version.as_deref(),
        Some("TLSv1.2")
    );
    assert_eq!(verdict(r), "self-signed");
    let r = by_port(mtls);
    assert_eq!(
        r.cert
            .as_ref()
            .expect("the chain is read before the server refuses us")
            .sha256,
        mtls_sha
    );
    assert!(r.tls.as_ref().expect("tls").client_auth_requested);
    assert!(
        r.error.is_none(),
        "a refusal for lack of a client certificate is expected mTLS behaviour: {:?}",
        r.error
    );
}
