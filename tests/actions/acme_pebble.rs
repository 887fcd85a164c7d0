//! ACME renewal of file-backed certificates against real components: pebble (Debian package
//! `pebble`) as the CA and nginx (`nginx-light`) serving the certificate from files. Both are
//! started here on free 127.0.0.1 ports and stopped by PID when each test ends.
//!
//! Pebble's own HTTPS certificate comes from a test CA made with rcgen, passed as the issuer's
//! `ca_file`. nginx starts with a certificate that expires in 3 days.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certdeck::acme::{self, AcmeError, AcmeIssuer, AcmePlan, AcmeStep, Challenge, ManagedFile};
use certdeck::actions::{ActionEvent, Outcome, Progress};
use certdeck::model::CertFacts;
use certdeck::sources::target::Target;
use certdeck::sources::tls::TlsProber;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::sync::mpsc;

const DAY: i64 = 86_400;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn now() -> i64 {
    certdeck::clock::now_unix()
}

fn wait_for_port(port: u16, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "{what} did not listen on 127.0.0.1:{port} within 15 s; its log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A child process stopped by PID when dropped: SIGTERM, then SIGKILL after 5 s.
struct Proc {
    child: Child,
    name: &'static str,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").arg("-TERM").arg(&pid).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} (pid {pid}) ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA made with rcgen: its certificate PEM and an issuer to sign with.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn test_ca(name: &str) -> TestCa {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, name.to_owned());
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let cert = p.self_signed(&key).expect("self-sign");
    TestCa {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

/// A leaf for `names`, valid from a day ago for `days`, signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &TestCa, names: &[&str], days: i64) -> (String, String) {
    let key = KeyPair::generate().expect("key");
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, names[0].to_owned());
    let t = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).expect("time");
    p.not_before = t(now() - 60 * DAY); // a 60-day-old certificate: judged by days left, not as short-lived
    p.not_after = t(now() + days * DAY);
    let cert = p.signed_by(&key, &ca.issuer).expect("sign");
    (cert.pem(), key.serialize_pem())
}

struct Pebble {
    _proc: Proc,
    port: u16,
    log: PathBuf,
    ca_file: PathBuf,
}

impl Pebble {
    fn directory_url(&self) -> String {
        format!("https://localhost:{}/dir", self.port)
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Start pebble. `always_valid`: skip challenge validation. `http_port`: where its VA looks
/// for http-01 responses. `nonce_reject`: percentage of good nonces refused with badNonce.
fn start_pebble(dir: &Path, always_valid: bool, http_port: u16, nonce_reject: u32) -> Pebble {
    start_pebble_blocking(dir, always_valid, http_port, nonce_reject, &[])
}

/// As [`start_pebble`], with names pebble refuses to issue for (`domainBlocklist`).
fn start_pebble_blocking(
    dir: &Path,
    always_valid: bool,
    http_port: u16,
    nonce_reject: u32,
    blocked: &[&str],
) -> Pebble {
    let dir = dir.join("pebble");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ca = test_ca("certdeck test CA for pebble's HTTPS");
    let (cert, key) = leaf(&ca, &["localhost", "127.0.0.1"], 30);
    std::fs::write(dir.join("cert.pem"), cert).expect("write");
    std::fs::write(dir.join("key.pem"), key).expect("write");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("write");
    let port = free_port();
    let mgmt = free_port();
    let cfg = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": dir.join("cert.pem"),
        "privateKey": dir.join("key.pem"),
        "httpPort": http_port,
        "tlsPort": free_port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "domainBlocklist": blocked,
    }});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).expect("write");
    let log = dir.join("pebble.log");
    let out = std::fs::File::create(&log).expect("log");
    let mut cmd = Command::new("pebble");
    cmd.arg("-config")
        .arg(dir.join("cfg.json"))
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", nonce_reject.to_string())
        .env_remove("PEBBLE_VA_ALWAYS_VALID")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out);
    if always_valid {
        cmd.env("PEBBLE_VA_ALWAYS_VALID", "1");
    }
    let child = cmd
        .spawn()
        .expect("start pebble (apt-get install pebble; tests/run.sh installs it)");
    let p = Pebble {
        _proc: Proc {
            child,
            name: "pebble",
        },
        port,
        log: log.clone(),
        ca_file,
    };
    wait_for_port(port, "pebble", &log);
    p
}

struct Nginx {
    _proc: Proc,
    tls_port: u16,
    http_port: u16,
    conf: PathBuf,
    errlog: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    webroot: PathBuf,
}

impl Nginx {
    fn reload_command(&self) -> String {
        format!(
            "nginx -s reload -c {} -e {}",
            self.conf.display(),
            self.errlog.display()
        )
    }
    fn endpoint(&self) -> String {
        format!("127.0.0.1:{}@localhost", self.tls_port)
    }
}

/// nginx serving `cert`/`key` from files on a TLS port, and `webroot` on a plain HTTP port.
fn start_nginx(dir: &Path, cert_pem: &str, key_pem: &str) -> Nginx {
    let dir = dir.join("nginx");
    let webroot = dir.join("webroot");
    std::fs::create_dir_all(&webroot).expect("mkdir");
    // nginx workers run as nobody: they must reach the webroot.
    for d in [dir.parent().expect("parent"), &dir, &webroot] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let cert = dir.join("site.crt");
    let key = dir.join("site.key");
    std::fs::write(&cert, cert_pem).expect("write");
    std::fs::write(&key, key_pem).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let (tls_port, http_port) = (free_port(), free_port());
    let errlog = dir.join("error.log");
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp-body; proxy_temp_path {d}/tmp-proxy;\n\
             fastcgi_temp_path {d}/tmp-fcgi; uwsgi_temp_path {d}/tmp-uwsgi; scgi_temp_path {d}/tmp-scgi;\n\
             server {{ listen 127.0.0.1:{tls_port} ssl; server_name localhost;\n\
             ssl_certificate {cert}; ssl_certificate_key {key}; return 200 \"ok\\n\"; }}\n\
             server {{ listen 127.0.0.1:{http_port}; root {webroot}; }}\n}}\n",
            cert = cert.display(),
            key = key.display(),
            webroot = webroot.display(),
        ),
    )
    .expect("write conf");
    let out = std::fs::File::create(dir.join("nginx.out")).expect("log");
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(&errlog)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(out)
        .spawn()
        .expect("start nginx (apt-get install nginx-light)");
    let n = Nginx {
        _proc: Proc {
            child,
            name: "nginx",
        },
        tls_port,
        http_port,
        conf,
        errlog: errlog.clone(),
        cert,
        key,
        webroot,
    };
    wait_for_port(tls_port, "nginx", &errlog);
    wait_for_port(http_port, "nginx", &errlog);
    n
}

/// SHA-256 of the leaf the endpoint serves now.
async fn served_sha256(endpoint: &str) -> String {
    certdeck::sources::tls::install_crypto_provider();
    let prober = TlsProber::new(&[], Duration::from_secs(5)).expect("prober");
    let rec = prober
        .probe(&Target::parse(endpoint, None).expect("target"))
        .await;
    rec.cert
        .unwrap_or_else(|| panic!("{endpoint} served no certificate: {:?}", rec.error))
        .sha256
        .clone()
}

fn first_cert(path: &Path) -> CertFacts {
    let data = std::fs::read(path).expect("read cert");
    let der = certdeck::sources::pem::scan(&data)
        .into_iter()
        .find_map(|i| match i {
            certdeck::sources::pem::PemItem::Certificate(d) => Some(d),
            _ => None,
        })
        .expect("a certificate");
    CertFacts::from_der(&der).expect("parse")
}

fn cert_count(path: &Path) -> usize {
    let data = std::fs::read(path).expect("read cert");
    certdeck::sources::pem::scan(&data)
        .into_iter()
        .filter(|i| matches!(i, certdeck::sources::pem::PemItem::Certificate(_)))
        .count()
}

fn key_matches(cert: &CertFacts, key_pem: &str) -> bool {
    use rcgen::PublicKeyData as _;
    use x509_parser::prelude::FromDer as _;
    let k = KeyPair::from_pem(key_pem).expect("key pem");
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&cert.der).expect("x509");
    x.public_key().subject_public_key.data.as_ref() == k.der_bytes()
}

/// The audit record the framework writes for this plan's result.
fn audit_of(
    plan: &AcmePlan,
    file: &ManagedFile,
    res: &Result<Outcome, AcmeError>,
) -> certdeck::actions::AuditRecord {
    let view = plan.to_plan(&acme::record_id(file), &file.cert.display().to_string());
    let mut a = certdeck::actions::AuditRecord::for_plan(&view);
    a.complete(res);
    a
}

/// The new leaf's SHA-256 of a successful renewal.
fn new_sha(o: &Outcome) -> String {
    o.after_sha256.clone().expect("the new fingerprint")
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn issuer(pebble: &Pebble, webroot: &Path) -> AcmeIssuer {
    AcmeIssuer {
        name: "pebble".into(),
        directory_url: pebble.directory_url(),
        contact: vec!["mailto:ops@example.com".into()],
        ca_file: Some(pebble.ca_file.clone()),
        challenge: Challenge::Http01 {
            webroot: webroot.to_owned(),
        },
    }
}

fn managed(
    cert: &Path,
    key: &Path,
    endpoint: Option<String>,
    reload: Option<String>,
) -> ManagedFile {
    ManagedFile {
        cert: cert.to_owned(),
        chain: None,
        key: key.to_owned(),
        endpoint,
        reload,
        issuer: "pebble".into(),
    }
}

/// Run the plan, collecting its progress.
async fn run(plan: &AcmePlan) -> (Result<Outcome, AcmeError>, Vec<Progress>) {
    let (tx, mut rx) = mpsc::channel(16);
    let collector = tokio::spawn(async move {
        let mut v = Vec::new();
        while let Some(ActionEvent::Progress(p)) = rx.recv().await {
            v.push(p);
        }
        v
    });
    let rep = certdeck::actions::Reporter::new("acme-test", tx);
    let res = tokio::time::timeout(Duration::from_secs(120), acme::execute(plan, &rep))
        .await
        .expect("the renewal finishes within 2 minutes");
    drop(rep);
    let progress = collector.await.expect("collector");
    for p in &progress {
        assert!(
            !p.message.contains("PRIVATE KEY"),
            "key material in progress: {p:?}"
        );
    }
    (res, progress)
}

fn steps(progress: &[Progress]) -> Vec<AcmeStep> {
    let mut v: Vec<AcmeStep> = Vec::new();
    for p in progress {
        if v.last() != Some(&p.step) {
            v.push(p.step);
        }
    }
    v
}

fn dir_listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("ls")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Renewal end to end, with a real http-01 validation: pebble's VA fetches the key
/// authorization from nginx's webroot. The new files are written (key 0600, backups beside
/// them), nginx is reloaded, and nginx serves the new certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_through_pebble_replaces_the_files_reloads_nginx_and_serves_the_new_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&old_ca, &["localhost"], 3);
    let nginx = start_nginx(tmp.path(), &old_cert, &old_key);
    let pebble = start_pebble(tmp.path(), false, nginx.http_port, 0);
    let old = first_cert(&nginx.cert);
    assert_eq!(served_sha256(&nginx.endpoint()).await, old.sha256);

    let file = managed(
        &nginx.cert,
        &nginx.key,
        Some(nginx.endpoint()),
        Some(nginx.reload_command()),
    );
    let accounts = tmp.path().join("data/acme");
    let plan = acme::plan(&issuer(&pebble, &nginx.webroot), &file, now())
        .await
        .expect("plan")
        .with_account_dir(&accounts)
        .with_backup_dir(&tmp.path().join("data/backups"));
    assert_eq!(plan.names, vec!["localhost".to_owned()]);
    assert_eq!(plan.key_type, certdeck::actions::keys::KeyType::EcdsaP256);
    assert_eq!(plan.old_not_after, old.not_after);
    let preview = plan
        .to_plan(&acme::record_id(&file), &file.cert.display().to_string())
        .preview();
    for want in [
        "names:      localhost",
        "key:        ECDSA P-256 (new key)",
        &pebble.directory_url(),
        "http-01",
        &nginx.cert.display().to_string(),
        &tmp.path().join("data/backups/files").display().to_string(),
        "key (0600 if new)",
        &nginx.reload_command(),
        &format!("re-probe {}", nginx.endpoint()),
    ] {
        assert!(preview.contains(want), "preview lacks {want:?}:\n{preview}");
    }

    let (res, progress) = run(&plan).await;
    let audit = audit_of(&plan, &file, &res);
    assert_eq!(audit.outcome, "succeeded");
    assert_eq!(audit.before_sha256.as_deref(), Some(old.sha256.as_str()));
    assert_eq!(audit.after_sha256, res.as_ref().ok().map(new_sha));
    assert_eq!(audit.record_id, acme::record_id(&file));
    let outcome = res.unwrap_or_else(|e| {
        panic!(
            "renewal failed: {e}\nprogress: {progress:#?}\npebble log:\n{}",
            pebble.log()
        )
    });
    assert_eq!(
        steps(&progress),
        vec![
            AcmeStep::Account,
            AcmeStep::Order,
            AcmeStep::Authorize,
            AcmeStep::Finalize,
            AcmeStep::Download,
            AcmeStep::Write,
            AcmeStep::Reload,
            AcmeStep::Verify,
            AcmeStep::Done
        ],
        "{progress:#?}"
    );
    assert!(
        outcome.message.contains("served by the endpoint"),
        "{}",
        outcome.message
    );
    for p in &progress {
        eprintln!("[{}] {}", p.step, p.message);
    }

    // The files: a new leaf (with pebble's intermediate) for the same name, years away.
    let new = first_cert(&nginx.cert);
    assert_eq!(new.sha256, new_sha(&outcome));
    assert_ne!(new.sha256, old.sha256);
    assert_eq!(new.sans, old.sans);
    assert!(
        cert_count(&nginx.cert) >= 2,
        "the cert file holds the chain"
    );
    assert!(
        new.not_after > now() + 4 * 365 * DAY,
        "pebble issues 5-year certificates: {}",
        certdeck::clock::rfc3339(new.not_after)
    );
    assert!(new.issuer.contains("Pebble"), "{}", new.issuer);
    let new_key = std::fs::read_to_string(&nginx.key).expect("key");
    assert!(
        key_matches(&new, &new_key),
        "the key file is the new certificate's key"
    );
    assert_ne!(new_key, old_key);
    assert_eq!(mode(&nginx.key), 0o600);

    // Backups in the data directory (where scans do not look) hold the old bytes, private.
    assert_eq!(outcome.backups.len(), 2);
    for (b, want) in outcome.backups.iter().zip([&old_cert, &old_key]) {
        assert!(
            b.starts_with(tmp.path().join("data/backups/files")),
            "{}",
            b.display()
        );
        assert_eq!(&std::fs::read_to_string(b).expect("backup"), want);
        assert_eq!(mode(b), 0o600, "backups are private");
    }
    assert!(
        !dir_listing(nginx.cert.parent().expect("dir"))
            .iter()
            .any(|n| n.contains("certdeck")),
        "nothing of certdeck's is left beside the live files"
    );

    // nginx serves the new certificate (checked here again, independently of verify).
    assert_eq!(served_sha256(&nginx.endpoint()).await, new_sha(&outcome));

    // The account key was created 0600; the challenge response was removed; no temp files.
    let acct = accounts.join("pebble.account.pem");
    assert_eq!(mode(&acct), 0o600);
    let acme_dir = nginx.webroot.join(".well-known/acme-challenge");
    assert!(
        dir_listing(&acme_dir).is_empty(),
        "{:?}",
        dir_listing(&acme_dir)
    );
    assert!(
        !dir_listing(nginx.cert.parent().expect("dir"))
            .iter()
            .any(|n| n.contains("certdeck-tmp")),
        "no temporary file is left"
    );
    assert!(
        progress
            .iter()
            .any(|p| p.step == AcmeStep::Verify && p.message.contains(&new_sha(&outcome))),
        "{progress:#?}"
    );
}

/// Pebble refuses 80% of good nonces with badNonce. instant-acme sends each request at most
/// three times; certdeck sends it again beyond that. Renewals in a row succeed (each renews the
/// previous one's certificate, with the account key the first one created), and pebble's log
/// shows requests that needed more than instant-acme's three tries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_nonce_refusals_are_retried() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&old_ca, &["localhost", "www.localhost"], 3);
    let dir = tmp.path().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &old_cert).expect("w");
    std::fs::write(&key, &old_key).expect("w");
    let pebble = start_pebble(tmp.path(), true, free_port(), 80);
    let file = managed(&cert, &key, None, None);
    let iss = issuer(&pebble, &tmp.path().join("webroot"));
    let mut shas = Vec::new();
    let mut beyond_three = Vec::new();
    // Two renewals, and more (up to six) until a request needed more than three tries:
    // at 80% that is about one request in two, so it shows up within a round or two.
    for round in 0..6 {
        if round >= 2 && !beyond_three.is_empty() {
            break;
        }
        let log_before = pebble.log().len();
        let plan = acme::plan(&iss, &file, now() + round)
            .await
            .expect("plan")
            .with_account_dir(&tmp.path().join("acme"))
            .with_backup_dir(&tmp.path().join("data/backups"));
        let (res, progress) = run(&plan).await;
        let outcome = res.unwrap_or_else(|e| {
            panic!(
                "round {round}: {e}\nprogress: {progress:#?}\npebble log:\n{}",
                pebble.log()
            )
        });
        assert_eq!(first_cert(&cert).sha256, new_sha(&outcome));
        assert!(key_matches(
            &first_cert(&cert),
            &std::fs::read_to_string(&key).expect("key")
        ));
        assert!(!outcome.message.contains("served by the endpoint"));
        assert_eq!(outcome.backups.len(), 2);
        shas.push(new_sha(&outcome));
        // Requests sent once per renewal: more than three POSTs means certdeck retried.
        let log = pebble.log();
        let this_round = log.get(log_before..).unwrap_or_default();
        for endpoint in [
            "/sign-me-up",
            "/order-plz",
            "/finalize-order/",
            "/my-account/",
        ] {
            let n = this_round
                .lines()
                .filter(|l| l.contains(&format!("POST {endpoint}")))
                .count();
            if n > 3 {
                beyond_three.push(format!("round {round}: {endpoint} x{n}"));
            }
        }
    }
    let n = shas.len();
    shas.dedup();
    assert_eq!(shas.len(), n, "each renewal made a new certificate");
    assert!(
        pebble
            .log()
            .contains("Configured to reject 80% of good nonces"),
        "{}",
        pebble.log()
    );
    eprintln!("requests sent more than three times: {beyond_three:?}");
    assert!(
        !beyond_three.is_empty(),
        "no request needed more than three tries (unlikely at 80%):\n{}",
        pebble.log()
    );
}

/// A directory nobody listens on fails at the account step, and changes no file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_directory_fails_at_the_account_step_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&ca, &["localhost"], 3);
    let dir = tmp.path().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &old_cert).expect("w");
    std::fs::write(&key, &old_key).expect("w");
    let ca_file = tmp.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).expect("w");
    let port = free_port();
    let iss = AcmeIssuer {
        name: "gone".into(),
        directory_url: format!("https://127.0.0.1:{port}/dir"),
        contact: vec![],
        ca_file: Some(ca_file),
        challenge: Challenge::Http01 {
            webroot: tmp.path().join("webroot"),
        },
    };
    let mut file = managed(&cert, &key, None, Some("touch reloaded".into()));
    file.issuer = "gone".into();
    let plan = acme::plan(&iss, &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    let (res, progress) = run(&plan).await;
    let e = res.expect_err("nothing listens there");
    assert_eq!(e.step(), Some(AcmeStep::Account), "{e}");
    let text = e.to_string();
    eprintln!("error: {text}");
    assert!(text.starts_with("step account: "), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.to_lowercase().contains("connection refused"), "{text}");
    assert_eq!(std::fs::read_to_string(&cert).expect("r"), old_cert);
    assert_eq!(std::fs::read_to_string(&key).expect("r"), old_key);
    assert_eq!(dir_listing(&dir), vec!["cert.pem", "key.pem"]);
    assert!(steps(&progress).iter().all(|s| *s == AcmeStep::Account));
}

/// With validation on and nothing serving the webroot, pebble's VA cannot fetch the key
/// authorization: the renewal fails at the authorize step with the CA's reason, and the
/// files are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_validation_fails_at_the_authorize_step_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&ca, &["localhost"], 3);
    let dir = tmp.path().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &old_cert).expect("w");
    std::fs::write(&key, &old_key).expect("w");
    let pebble = start_pebble(tmp.path(), false, free_port(), 0);
    let webroot = tmp.path().join("webroot");
    let file = managed(&cert, &key, None, Some("touch reloaded".into()));
    let plan = acme::plan(&issuer(&pebble, &webroot), &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    let (res, progress) = run(&plan).await;
    let e = res.expect_err("validation cannot succeed");
    assert_eq!(e.step(), Some(AcmeStep::Authorize), "{e}\n{progress:#?}");
    let text = e.to_string();
    eprintln!("error: {text}");
    assert!(text.starts_with("step authorize: "), "{text}");
    assert!(text.contains("localhost"), "{text}");
    assert!(
        text.to_lowercase().contains("connect") || text.contains("connection"),
        "the CA's reason is given: {text}"
    );
    assert_eq!(std::fs::read_to_string(&cert).expect("r"), old_cert);
    assert_eq!(std::fs::read_to_string(&key).expect("r"), old_key);
    assert_eq!(dir_listing(&dir), vec!["cert.pem", "key.pem"]);
    assert!(!tmp.path().join("reloaded").exists(), "no reload ran");
    let acme_dir = webroot.join(".well-known/acme-challenge");
    assert!(
        dir_listing(&acme_dir).is_empty(),
        "the challenge file was removed"
    );
}

/// A reload command that fails (`false`) fails at the reload step: the backups are put back,
/// so the old certificate and key are in place, and nginx still serves the old certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_reload_puts_the_old_files_back_and_nginx_keeps_the_old_certificate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&old_ca, &["localhost"], 3);
    let nginx = start_nginx(tmp.path(), &old_cert, &old_key);
    let pebble = start_pebble(tmp.path(), true, free_port(), 0);
    let old_sha = first_cert(&nginx.cert).sha256;
    let file = managed(
        &nginx.cert,
        &nginx.key,
        Some(nginx.endpoint()),
        Some("false".into()),
    );
    std::fs::set_permissions(&nginx.key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let key_owner = crate::common::give_away(&nginx.key);
    let plan = acme::plan(&issuer(&pebble, &nginx.webroot), &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    let before = dir_listing(nginx.cert.parent().expect("dir"));
    let (res, progress) = run(&plan).await;
    let audit = audit_of(&plan, &file, &res);
    assert_eq!(
        (audit.outcome.as_str(), audit.failed_step.as_deref()),
        ("failed", Some("reload"))
    );
    let e = res.expect_err("the reload fails");
    assert_eq!(e.step(), Some(AcmeStep::Reload), "{e}\n{progress:#?}");
    let text = e.to_string();
    eprintln!("error: {text}");
    assert!(text.starts_with("step reload: "), "{text}");
    assert!(text.contains("`false` exit status 1"), "{text}");
    assert!(text.contains("put back"), "{text}");
    // The files were really replaced, then put back.
    assert!(steps(&progress).contains(&AcmeStep::Write), "{progress:#?}");
    assert!(
        steps(&progress).contains(&AcmeStep::Rollback),
        "{progress:#?}"
    );
    assert_eq!(std::fs::read_to_string(&nginx.cert).expect("r"), old_cert);
    assert_eq!(std::fs::read_to_string(&nginx.key).expect("r"), old_key);
    assert_eq!(mode(&nginx.key), 0o640, "the key put back keeps its mode");
    assert_eq!(
        crate::common::owner(&nginx.key),
        key_owner,
        "and its owner and group"
    );
    assert_eq!(
        dir_listing(nginx.cert.parent().expect("dir")),
        before,
        "no backup or temporary file is left once the backups are back"
    );
    // nginx, reloaded for real now, still serves the old certificate.
    let st = Command::new("sh")
        .arg("-c")
        .arg(nginx.reload_command())
        .status()
        .expect("reload");
    assert!(st.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_sha256(&nginx.endpoint()).await, old_sha);
}

/// Pebble refuses to issue for a blocked name: the renewal fails at the order step with the
/// CA's reason, before anything is presented or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_name_fails_at_the_order_step_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&ca, &["blocked.localhost"], 3);
    let dir = tmp.path().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, &old_cert).expect("w");
    std::fs::write(&key, &old_key).expect("w");
    let pebble = start_pebble_blocking(tmp.path(), true, free_port(), 0, &["blocked.localhost"]);
    let webroot = tmp.path().join("webroot");
    let file = managed(&cert, &key, None, Some("touch reloaded".into()));
    let plan = acme::plan(&issuer(&pebble, &webroot), &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    let (res, progress) = run(&plan).await;
    let e = res.expect_err("the name is blocked");
    let text = e.to_string();
    eprintln!("error: {text}");
    assert_eq!(e.step(), Some(AcmeStep::Order), "{text}\n{progress:#?}");
    assert!(
        text.starts_with("step order: the CA refused the order: "),
        "{text}"
    );
    assert!(text.contains("blocked.localhost"), "{text}");
    assert!(text.contains("rejectedIdentifier"), "{text}");
    assert_eq!(std::fs::read_to_string(&cert).expect("r"), old_cert);
    assert_eq!(std::fs::read_to_string(&key).expect("r"), old_key);
    assert_eq!(dir_listing(&dir), vec!["cert.pem", "key.pem"]);
    assert!(!webroot.exists(), "nothing was presented");
}

/// An RSA 2048 certificate with its chain in its own file, renewed through dns-01: the hook
/// gets `present` then `cleanup` with the domain and the TXT value (as arguments and in the
/// environment), the new key is RSA 2048, the cert file holds the leaf and the chain file
/// its issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_hook_and_an_rsa_certificate_with_a_chain_file() {
    use rsa::pkcs8::EncodePrivateKey as _;
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("certdeck old CA");
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("rsa");
    let der = rsa_key.to_pkcs8_der().expect("pkcs8");
    let key_pair = KeyPair::from_pkcs8_der_and_sign_algo(
        &rustls_pki_types::PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
        &rcgen::PKCS_RSA_SHA256,
    )
    .expect("rcgen rsa");
    let mut p = CertificateParams::new(vec!["localhost".to_owned(), "*.localhost".to_owned()])
        .expect("params");
    let t = |secs: i64| time::OffsetDateTime::from_unix_timestamp(secs).expect("time");
    p.not_before = t(now() - DAY);
    p.not_after = t(now() + 3 * DAY);
    let old = p.signed_by(&key_pair, &ca.issuer).expect("sign");
    let dir = tmp.path().join("tls");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (cert, chain, key) = (
        dir.join("cert.pem"),
        dir.join("chain.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&cert, old.pem()).expect("w");
    std::fs::write(&chain, &ca.pem).expect("w");
    std::fs::write(&key, key_pair.serialize_pem()).expect("w");
    // A key the service's group must read, owned by another user (as root, `nobody`):
    // the renewal keeps its owner, group and mode.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let key_mode_before = 0o640;
    let key_owner = crate::common::give_away(&key);
    let cert_owner = crate::common::give_away(&cert);

    let hook_log = tmp.path().join("hook.log");
    let hook = tmp.path().join("dns-hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$1 $2 $3 env=$CERTDECK_ACME_ACTION/$CERTDECK_ACME_RECORD/$CERTDECK_ACME_TXT\" >> {}\n",
            hook_log.display()
        ),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pebble = start_pebble(tmp.path(), true, free_port(), 0);
    let iss = AcmeIssuer {
        challenge: Challenge::Dns01 {
            hook: hook.display().to_string(),
        },
        ..issuer(&pebble, tmp.path())
    };
    let mut file = managed(&cert, &key, None, None);
    file.chain = Some(chain.clone());
    let plan = acme::plan(&iss, &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    assert_eq!(plan.key_type, certdeck::actions::keys::KeyType::Rsa(2048));
    assert_eq!(plan.names, vec!["localhost", "*.localhost"]);
    let preview = plan.to_plan("x", "x").preview();
    assert!(preview.contains("dns-01"), "{preview}");
    let (res, progress) = run(&plan).await;
    let outcome = res.unwrap_or_else(|e| panic!("{e}\n{progress:#?}\n{}", pebble.log()));

    let new = first_cert(&cert);
    assert_eq!(new.sha256, new_sha(&outcome));
    assert_eq!(new.key, "RSA 2048");
    assert_eq!(
        cert_count(&cert),
        1,
        "with a chain file, the cert file holds the leaf"
    );
    let issuer_cert = first_cert(&chain);
    assert_eq!(
        issuer_cert.subject, new.issuer,
        "the chain file holds the leaf's issuer"
    );
    let new_key = std::fs::read_to_string(&key).expect("key");
    assert!(key_matches(&new, &new_key));
    assert_eq!(mode(&key), key_mode_before, "the key keeps the mode it had");
    assert_eq!(
        crate::common::owner(&key),
        key_owner,
        "and its owner and group"
    );
    assert_eq!(crate::common::owner(&cert), cert_owner);
    assert_eq!(outcome.backups.len(), 3, "cert, chain and key backed up");

    let log = std::fs::read_to_string(&hook_log).expect("the hook ran");
    eprintln!("hook log:\n{log}");
    let lines: Vec<&str> = log.lines().collect();
    let presents: Vec<&&str> = lines.iter().filter(|l| l.starts_with("present ")).collect();
    let cleanups: Vec<&&str> = lines.iter().filter(|l| l.starts_with("cleanup ")).collect();
    assert!(!presents.is_empty(), "{log}");
    assert_eq!(
        presents.len(),
        cleanups.len(),
        "every present is cleaned up: {log}"
    );
    for l in presents.iter().chain(&cleanups) {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f[1], "localhost", "{l}");
        assert_eq!(f[2].len(), 43, "a base64url SHA-256 TXT value: {l}");
        assert_eq!(
            f[3],
            format!("env={}/_acme-challenge.localhost/{}", f[0], f[2]),
            "{l}"
        );
    }
}

/// When the endpoint keeps serving the old certificate (the reload command does nothing),
/// the verify step fails after its time limit, the backups are put back, and the error says
/// what the endpoint serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_puts_the_old_files_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&old_ca, &["localhost"], 3);
    let nginx = start_nginx(tmp.path(), &old_cert, &old_key);
    let pebble = start_pebble(tmp.path(), true, free_port(), 0);
    let old_sha = first_cert(&nginx.cert).sha256;
    let file = managed(
        &nginx.cert,
        &nginx.key,
        Some(nginx.endpoint()),
        Some("true".into()),
    );
    let mut plan = acme::plan(&issuer(&pebble, &nginx.webroot), &file, now())
        .await
        .expect("plan")
        .with_account_dir(&tmp.path().join("acme"))
        .with_backup_dir(&tmp.path().join("data/backups"));
    plan.verify_timeout = Duration::from_secs(2);
    let (res, progress) = run(&plan).await;
    let e = res.expect_err("nginx was not reloaded");
    let text = e.to_string();
    eprintln!("error: {text}");
    assert_eq!(e.step(), Some(AcmeStep::Verify), "{text}\n{progress:#?}");
    assert!(
        text.contains(&format!("still serves SHA-256 {old_sha}")),
        "{text}"
    );
    assert!(text.contains("put back"), "{text}");
    assert_eq!(std::fs::read_to_string(&nginx.cert).expect("r"), old_cert);
    assert_eq!(std::fs::read_to_string(&nginx.key).expect("r"), old_key);
    assert_eq!(served_sha256(&nginx.endpoint()).await, old_sha);
}

/// A plan whose certificate file changed since it was made is refused before any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_plan_is_refused_before_any_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&ca, &["localhost"], 3);
    let (other_cert, _) = leaf(&ca, &["localhost"], 3);
    let (cert, key) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert, &old_cert).expect("w");
    std::fs::write(&key, &old_key).expect("w");
    let iss = AcmeIssuer {
        name: "pebble".into(),
        directory_url: format!("https://127.0.0.1:{}/dir", free_port()),
        contact: vec![],
        ca_file: None,
        challenge: Challenge::Http01 {
            webroot: tmp.path().join("webroot"),
        },
    };
    let accounts = tmp.path().join("acme");
    let plan = acme::plan(&iss, &managed(&cert, &key, None, None), now())
        .await
        .expect("plan")
        .with_account_dir(&accounts)
        .with_backup_dir(&tmp.path().join("data/backups"));
    std::fs::write(&cert, &other_cert).expect("w");
    let (res, progress) = run(&plan).await;
    let e = res.expect_err("stale");
    assert_eq!(e.step(), Some(AcmeStep::Plan), "{e}");
    assert!(e.to_string().contains("plan again"), "{e}");
    assert!(progress.is_empty());
    assert!(!accounts.exists(), "no account key was made");
    assert_eq!(std::fs::read_to_string(&cert).expect("r"), other_cert);
}

/// The whole path a user takes: `[[acme]]` and `[[certificate]]` in the config file, the
/// managed file and its endpoint listed by `scan`, `renew ID --dry-run`, then `renew ID --yes`
/// through the real binary; nginx serves the new certificate and the audit log says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certdeck_renew_id_renews_a_configured_certificate_through_the_binary() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let old_ca = test_ca("certdeck old CA");
    let (old_cert, old_key) = leaf(&old_ca, &["localhost"], 3);
    let nginx = start_nginx(tmp.path(), &old_cert, &old_key);
    let pebble = start_pebble(tmp.path(), true, nginx.http_port, 0);
    let old = first_cert(&nginx.cert);
    let cfg = tmp.path().join("certdeck.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[acme]]\nname = \"pebble\"\ndirectory_url = {:?}\nca_file = {:?}\nchallenge = {{ type = \"http-01\", webroot = {:?} }}\n\n\
             [[certificate]]\ncert = {:?}\nkey = {:?}\nendpoint = {:?}\nreload = {:?}\nissuer = \"pebble\"\n",
            pebble.directory_url(),
            pebble.ca_file.display().to_string(),
            nginx.webroot.display().to_string(),
            nginx.cert.display().to_string(),
            nginx.key.display().to_string(),
            nginx.endpoint(),
            nginx.reload_command(),
        ),
    )
    .expect("config");
    let data = tmp.path().join("data");
    let certdeck = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
            .args(args)
            .arg("--config")
            .arg(&cfg)
            .env("HOME", tmp.path())
            .env("CERTDECK_DATA_DIR", &data)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run certdeck");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    // scan lists the managed file and the endpoint that serves it, both critical (3 days).
    let (code, out, err) = certdeck(&["scan", "-o", "json"]);
    assert_eq!(code, 2, "{err}");
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    let file_row = rows
        .as_array()
        .expect("array")
        .iter()
        .find(|r| {
            r["location"]
                .as_str()
                .is_some_and(|l| l.starts_with(&nginx.cert.display().to_string()))
        })
        .expect("the certificate file is a row");
    assert_eq!(file_row["status"], "critical");
    assert!(rows
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["location"] == nginx.endpoint()));
    let id = file_row["id"].as_str().expect("id").to_owned();

    // --dry-run prints the plan and writes nothing.
    let (code, out, err) = certdeck(&["renew", &id, "--dry-run"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("dry run: nothing was written") && out.contains(&pebble.directory_url()),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&nginx.cert).expect("cert"),
        old_cert
    );
    // Without --yes and with no terminal to ask on, nothing happens.
    let (code, _, err) = certdeck(&["renew", &id]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(
        std::fs::read_to_string(&nginx.cert).expect("cert"),
        old_cert
    );

    // `read_only = true` in the config file refuses the renewal (it used to be ignored here).
    let ro = tmp.path().join("certdeck-ro.toml");
    std::fs::write(
        &ro,
        format!(
            "read_only = true\n{}",
            std::fs::read_to_string(&cfg).expect("cfg")
        ),
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_certdeck"))
        .args(["renew", &id, "--yes", "--config"])
        .arg(&ro)
        .env("HOME", tmp.path())
        .env("CERTDECK_DATA_DIR", &data)
        .output()
        .expect("run certdeck");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    assert_eq!(
        std::fs::read_to_string(&nginx.cert).expect("cert"),
        old_cert
    );

    // --yes renews: progress on stderr, new files, nginx reloaded and serving the new leaf.
    let (code, out, err) = certdeck(&["renew", &id, "--yes"]);
    assert_eq!(code, 0, "{out}\n{err}\npebble:\n{}", pebble.log());
    for step in ["[order]", "[write]", "[reload]", "[verify]"] {
        assert!(err.contains(step), "progress lacks {step}: {err}");
    }
    assert!(out.contains(&format!("ok {id}: renewed")), "{out}");
    let new = first_cert(&nginx.cert);
    assert_ne!(new.sha256, old.sha256);
    assert!(new.not_after - now() > 4 * 365 * 86_400);
    assert_eq!(served_sha256(&nginx.endpoint()).await, new.sha256);
    assert_eq!(mode(&nginx.key), 0o600);
    let audit = std::fs::read_to_string(data.join("audit.jsonl")).expect("audit log");
    assert!(
        audit.contains("\"action\":\"acme-renew\"") && audit.contains("\"outcome\":\"succeeded\""),
        "{audit}"
    );
    assert!(
        audit.contains(&new.sha256),
        "the audit record carries the new fingerprint: {audit}"
    );
    // A scan of the directory afterwards sees the new certificate only: the backups are in
    // the data directory, not beside the live files.
    let dir = nginx.cert.parent().expect("dir").display().to_string();
    let (code, out, err) = certdeck(&["scan", &dir, "-o", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&out).expect("json");
    let shas: Vec<&str> = rows
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["sha256"].as_str())
        .collect();
    assert!(shas.contains(&new.sha256.as_str()), "{out}");
    assert!(
        !shas.contains(&old.sha256.as_str()),
        "the old certificate is not a row: {out}"
    );
    assert_eq!(code, 0, "nothing critical is left: {out}{err}");
}
