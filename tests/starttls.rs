//! STARTTLS targets through the real binary: real servers from Debian (exim4, dovecot,
//! vsftpd, PostgreSQL, MariaDB, slapd, prosody) with rcgen certificates, `openssl s_client
//! -starttls` as the independent oracle, and small misbehaving servers for each failure mode.

#[path = "starttls/fakes.rs"]
mod fakes;
#[path = "starttls/oracle.rs"]
mod oracle;
#[path = "starttls/peers.rs"]
mod peers;
#[path = "starttls/pki.rs"]
mod pki;

use std::time::Duration;

use fakes::{send, Step};
use serde_json::Value;

/// Run certdeck with an isolated config home; returns (exit code, stdout, stderr).
async fn certdeck(args: &[&str], config: Option<&str>) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_certdeck"));
    cmd.args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env_remove("CERTDECK_CONFIG")
        .env("NO_COLOR", "1");
    if let Some(text) = config {
        let p = home.path().join("config.toml");
        std::fs::write(&p, text).expect("write config");
        cmd.arg("--config").arg(&p);
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("certdeck did not finish within 90 s")
        .expect("run certdeck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `certdeck scan ARGS -o json`: (exit code, records).
async fn scan(args: &[&str]) -> (i32, Vec<Value>) {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    // Real servers fork a process per connection: on two busy cores a greeting can take
    // longer than the default 5 s. Tests of hanging servers set their own, shorter limit.
    if !args.contains(&"--timeout") {
        all.extend_from_slice(&["--timeout", "30s"]);
    }
    let (code, out, err) = certdeck(&all, None).await;
    let recs: Vec<Value> = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("scan {args:?}: not JSON ({e}):\n{out}\n{err}"));
    (code, recs)
}

fn row<'a>(recs: &'a [Value], location: &str) -> &'a Value {
    recs.iter()
        .find(|r| r["location"] == location)
        .unwrap_or_else(|| panic!("no row {location} in {recs:#?}"))
}

fn error_of(recs: &[Value], location: &str) -> String {
    row(recs, location)["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{location} has no error: {:#?}", row(recs, location)))
        .to_owned()
}

struct Setup {
    ca: pki::TestCa,
    _dir: tempfile::TempDir,
    ca_file: String,
}

fn setup() -> Setup {
    let ca = pki::TestCa::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("ca.pem");
    std::fs::write(&p, &ca.pem).expect("write ca");
    Setup {
        ca,
        _dir: dir,
        ca_file: p.display().to_string(),
    }
}

/// The row read the rcgen leaf through `proto`, trusted via the test CA, as openssl saw it.
fn assert_read(rec: &Value, leaf: &pki::TestLeaf, proto: Option<&str>, oracle: &str, logs: &str) {
    assert_eq!(rec["error"], Value::Null, "{rec:#}\n{logs}");
    assert_eq!(rec["sha256"], leaf.sha256.as_str(), "{rec:#}");
    assert_eq!(oracle, leaf.sha256, "openssl saw another certificate");
    assert_eq!(rec["not_after"], leaf.not_after.as_str(), "{rec:#}");
    assert_eq!(
        rec["starttls"],
        proto.map_or(Value::Null, Value::from),
        "{rec:#}"
    );
    assert_eq!(rec["verification"]["trusted"], true, "{rec:#}");
    assert!(
        rec["tls_version"]
            .as_str()
            .is_some_and(|v| v.starts_with("TLSv1.")),
        "{rec:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_starttls_on_exim_reads_the_certificate_openssl_sees_and_smtps_still_works() {
    let s = setup();
    let leaf = s.ca.leaf("mail.example.test", 45);
    let exim = peers::exim(&leaf, true);
    let smtp = format!("smtp://127.0.0.1:{}", exim.port);
    let smtps = format!("smtps://127.0.0.1:{}", exim.port2);
    let (code, recs) = scan(&[&smtp, &smtps, "--ca-file", &s.ca_file]).await;
    let oracle = oracle::leaf_sha256(exim.port, &["-starttls", "smtp"]);
    assert_read(
        row(&recs, &smtp),
        &leaf,
        Some("smtp"),
        &oracle,
        &exim.logs(),
    );
    // Implicit TLS on the same server: no STARTTLS, the same certificate.
    let implicit = row(&recs, &format!("127.0.0.1:{}", exim.port2));
    assert_read(implicit, &leaf, None, &oracle, &exim.logs());
    assert_eq!(code, 0, "45 days left is OK: {recs:#?}");
    let days = row(&recs, &smtp)["days_left"].as_i64();
    assert!(matches!(days, Some(44 | 45)), "{days:?}");

    // The same endpoint as a plain target with --starttls smtp is the same row.
    let plain = format!("127.0.0.1:{}", exim.port);
    let (_, recs) = scan(&[&plain, "--starttls", "smtp", "--ca-file", &s.ca_file]).await;
    assert_read(
        row(&recs, &smtp),
        &leaf,
        Some("smtp"),
        &oracle,
        &exim.logs(),
    );
    // Without it, the plain port is not TLS, and the row says so.
    let (code, recs) = scan(&[&plain, "--timeout", "30s"]).await;
    assert_eq!(code, 3);
    let e = error_of(&recs, &plain);
    assert!(e.contains("not a TLS server") && e.contains("220"), "{e}");
    assert_eq!(row(&recs, &plain)["starttls"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_without_tls_is_a_row_saying_starttls_is_not_offered() {
    let s = setup();
    let leaf = s.ca.leaf("mail.example.test", 45);
    let exim = peers::exim(&leaf, false);
    let smtp = format!("smtp://127.0.0.1:{}", exim.port);
    let (code, recs) = scan(&[&smtp]).await;
    assert_eq!(code, 3, "{recs:#?}");
    let e = error_of(&recs, &smtp);
    assert!(
        e.starts_with("SMTP: the server does not offer STARTTLS (extensions:"),
        "{e}\n{}",
        exim.logs()
    );
    assert_eq!(row(&recs, &smtp)["starttls"], "smtp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_and_pop3_starttls_on_dovecot_match_openssl_and_imaps_still_works() {
    let s = setup();
    let leaf = s.ca.leaf("imap.example.test", 60);
    let (dovecot, imaps_port) = peers::dovecot(&leaf);
    let imap = format!("imap://127.0.0.1:{}", dovecot.port);
    let pop3 = format!("pop3://127.0.0.1:{}", dovecot.port2);
    let imaps = format!("imaps://127.0.0.1:{imaps_port}");
    let (code, recs) = scan(&[&imap, &pop3, &imaps, "--ca-file", &s.ca_file]).await;
    let logs = dovecot.logs();
    let o_imap = oracle::leaf_sha256(dovecot.port, &["-starttls", "imap"]);
    let o_pop3 = oracle::leaf_sha256(dovecot.port2, &["-starttls", "pop3"]);
    assert_read(row(&recs, &imap), &leaf, Some("imap"), &o_imap, &logs);
    assert_read(row(&recs, &pop3), &leaf, Some("pop3"), &o_pop3, &logs);
    let implicit = row(&recs, &format!("127.0.0.1:{imaps_port}"));
    assert_read(implicit, &leaf, None, &o_imap, &logs);
    assert_eq!(code, 0);

    // The POP3 dialogue against the IMAP port: a clear wrong-protocol row.
    let wrong = format!("pop3://127.0.0.1:{}", dovecot.port);
    let (_, recs) = scan(&[&wrong]).await;
    let e = error_of(&recs, &wrong);
    assert!(
        e.starts_with("POP3: not a POP3 server: it answers in IMAP (\"* OK"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftp_auth_tls_on_vsftpd_matches_openssl() {
    let s = setup();
    let leaf = s.ca.leaf("ftp.example.test", 50);
    let ftpd = peers::vsftpd(&leaf);
    let ftp = format!("ftp://127.0.0.1:{}", ftpd.port);
    let (code, recs) = scan(&[&ftp, "--ca-file", &s.ca_file]).await;
    let oracle = oracle::leaf_sha256(ftpd.port, &["-starttls", "ftp"]);
    assert_read(row(&recs, &ftp), &leaf, Some("ftp"), &oracle, &ftpd.logs());
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sslrequest_matches_openssl_and_direct_tls_on_15_says_what_is_needed() {
    let s = setup();
    let leaf = s.ca.leaf("db.example.test", 40);
    let pg = peers::postgres(&leaf, true);
    let url = format!("postgres://127.0.0.1:{}", pg.port);
    let alias = format!(
        "postgresql://app@127.0.0.1:{}/appdb?sslmode=require",
        pg.port
    );
    let direct = format!("postgres://127.0.0.1:{}?sslnegotiation=direct", pg.port);
    let (code, recs) = scan(&[&alias, &direct, "--ca-file", &s.ca_file]).await;
    let oracle = oracle::leaf_sha256(pg.port, &["-starttls", "postgres"]);
    assert_read(
        row(&recs, &url),
        &leaf,
        Some("postgres"),
        &oracle,
        &pg.logs(),
    );
    // PostgreSQL 15 has no direct TLS: the row says which version it takes.
    let e = error_of(&recs, &direct);
    assert!(e.contains("direct TLS needs PostgreSQL 17 or newer"), "{e}");
    assert_eq!(row(&recs, &direct)["starttls"], "postgres-direct");
    assert_eq!(code, 3);

    let off = peers::postgres(&leaf, false);
    let url = format!("postgres://127.0.0.1:{}", off.port);
    let (_, recs) = scan(&[&url]).await;
    let e = error_of(&recs, &url);
    assert_eq!(
        e,
        "PostgreSQL: the server does not offer SSL (it answered the SSLRequest with N: ssl is off)",
        "{}",
        off.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_direct_tls_offers_alpn_postgresql() {
    certdeck::sources::tls::install_crypto_provider();
    let s = setup();
    let leaf = s.ca.leaf("db17.example.test", 40);
    let (port, seen) = fakes::direct_tls_postgres(&leaf.cert_pem, &leaf.key_pem).await;
    assert_eq!(
        oracle::alpn_line(port, &["-alpn", "postgresql"]),
        "ALPN protocol: postgresql",
        "the fixture negotiates ALPN as PostgreSQL 17 does"
    );
    let oracle = oracle::leaf_sha256(port, &["-alpn", "postgresql"]);
    seen.lock().expect("lock").clear();
    let direct = format!("postgres://127.0.0.1:{port}?sslnegotiation=direct");
    let (code, recs) = scan(&[&direct, "--ca-file", &s.ca_file]).await;
    assert_read(
        row(&recs, &direct),
        &leaf,
        Some("postgres-direct"),
        &oracle,
        "",
    );
    assert_eq!(code, 0);
    assert_eq!(
        seen.lock().expect("lock").as_slice(),
        &[Some(b"postgresql".to_vec())],
        "certdeck's handshake agreed on ALPN postgresql"
    );
    // --starttls postgres-direct does the same for a plain target.
    let plain = format!("127.0.0.1:{port}");
    let (_, recs) = scan(&[
        &plain,
        "--starttls",
        "postgres-direct",
        "--ca-file",
        &s.ca_file,
    ])
    .await;
    assert_read(
        row(&recs, &direct),
        &leaf,
        Some("postgres-direct"),
        &oracle,
        "",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_sslrequest_on_mariadb_matches_openssl() {
    let s = setup();
    let leaf = s.ca.leaf("sql.example.test", 35);
    let db = peers::mariadb(&leaf);
    let url = format!("mysql://127.0.0.1:{}", db.port);
    let (code, recs) = scan(&[&url, "--ca-file", &s.ca_file]).await;
    let oracle = oracle::leaf_sha256(db.port, &["-starttls", "mysql"]);
    assert_read(row(&recs, &url), &leaf, Some("mysql"), &oracle, &db.logs());
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_starttls_on_slapd_matches_openssl_and_slapd_without_tls_does_not_offer_it() {
    let s = setup();
    let leaf = s.ca.leaf("dir.example.test", 55);
    let ldap = peers::slapd(&leaf, true);
    let url = format!("ldap://127.0.0.1:{}", ldap.port);
    let (code, recs) = scan(&[&url, "--ca-file", &s.ca_file]).await;
    let oracle = oracle::leaf_sha256(ldap.port, &["-starttls", "ldap"]);
    assert_read(row(&recs, &url), &leaf, Some("ldap"), &oracle, &ldap.logs());
    assert_eq!(code, 0);

    let bare = peers::slapd(&leaf, false);
    let url = format!("ldap://127.0.0.1:{}", bare.port);
    let (code, recs) = scan(&[&url]).await;
    assert_eq!(code, 3);
    assert_eq!(
        error_of(&recs, &url),
        "LDAP: the server does not offer the StartTLS extended operation \
         (protocolError (2): unsupported extended operation)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xmpp_client_and_server_streams_on_prosody_match_openssl() {
    let s = setup();
    let leaf = s.ca.leaf("xmpp.example.test", 65);
    let xmpp = peers::prosody(&leaf);
    let c2s = format!("xmpp://127.0.0.1:{}?domain=example.test", xmpp.port);
    let s2s = format!("xmpp-server://127.0.0.1:{}?domain=example.test", xmpp.port2);
    let (code, recs) = scan(&[&c2s, &s2s, "--ca-file", &s.ca_file]).await;
    let logs = xmpp.logs();
    let o_c2s = oracle::leaf_sha256(
        xmpp.port,
        &["-starttls", "xmpp", "-xmpphost", "example.test"],
    );
    let o_s2s = oracle::leaf_sha256(
        xmpp.port2,
        &["-starttls", "xmpp-server", "-xmpphost", "example.test"],
    );
    assert_read(row(&recs, &c2s), &leaf, Some("xmpp"), &o_c2s, &logs);
    assert_read(row(&recs, &s2s), &leaf, Some("xmpp-server"), &o_s2s, &logs);
    // The certificate is checked against the domain, not the address.
    assert_eq!(
        row(&recs, &c2s)["verification"]["checked_name"],
        "example.test"
    );
    assert_eq!(code, 0);

    // Without the domain the stream goes to 127.0.0.1, which prosody does not serve.
    let nodomain = format!("xmpp://127.0.0.1:{}", xmpp.port);
    let (_, recs) = scan(&[&nodomain]).await;
    let e = error_of(&recs, &nodomain);
    assert!(
        e.starts_with("XMPP: the server refused the stream: host-unknown")
            && e.contains("?domain="),
        "{e}"
    );
}

/// A reply of `n` repetitions of `line`.
fn many(line: &str, n: usize) -> Step {
    Step::Send(line.repeat(n).into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_before_tls_is_a_clear_row() {
    let ehlo_no_tls = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        send("250-mx.test\r\n250-SIZE 1000\r\n250 PIPELINING\r\n"),
    ])
    .await;
    let tls_refused = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        send("250-mx.test\r\n250 STARTTLS\r\n"),
        Step::ReadLine,
        send("454 4.7.0 TLS not available due to local problem\r\n"),
    ])
    .await;
    let hang_ehlo = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        Step::Hang,
    ])
    .await;
    let hang_greeting = fakes::scripted(vec![Step::Hang]).await;
    let garbage = fakes::scripted(vec![Step::Send(
        b"\x1b]52;c;aGk=\x07\x1b[2J\x00\xff\xfehello\r\n".to_vec(),
    )])
    .await;
    let imap_greets = fakes::scripted(vec![send("* OK [CAPABILITY IMAP4rev1] ready\r\n")]).await;
    let http = fakes::scripted(vec![
        Step::Read(8),
        send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ])
    .await;
    let long_line = fakes::scripted(vec![Step::Send(vec![b'A'; 10_000])]).await;
    let endless = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        many("250-X-PADDING lorem ipsum dolor sit amet\r\n", 3000),
    ])
    .await;
    let injected = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        send("250-mx.test\r\n250 STARTTLS\r\n"),
        Step::ReadLine,
        send("220 go ahead\r\n250 INJECTED\r\n"),
    ])
    .await;
    let imap_no_tls = fakes::scripted(vec![
        send("* OK ready\r\n"),
        Step::ReadLine,
        send("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na1 OK done\r\n"),
    ])
    .await;
    let pop3_refused = fakes::scripted(vec![
        send("+OK ready\r\n"),
        Step::ReadLine,
        send("+OK\r\nUSER\r\nSTLS\r\n.\r\n"),
        Step::ReadLine,
        send("-ERR TLS is off today\r\n"),
    ])
    .await;
    let ftp_no_tls = fakes::scripted(vec![
        send("220 FTP ready\r\n"),
        Step::ReadLine,
        send("500 Unknown command\r\n"),
    ])
    .await;
    let mysql_no_ssl = fakes::scripted(vec![Step::Send(mysql_greeting(false))]).await;
    let mysql_err = fakes::scripted(vec![Step::Send(
        b"\x17\x00\x00\x00\xff\x69\x04Too many connections".to_vec(),
    )])
    .await;
    let ldap_unavailable = fakes::scripted(vec![
        Step::Read(31),
        Step::Send(ldap_response(52, b"TLS not configured")),
    ])
    .await;
    let xmpp_no_tls = fakes::scripted(vec![send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' id='1' version='1.0'>\
         <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
         <mechanism>PLAIN</mechanism></mechanisms></stream:features>",
    )])
    .await;

    let t = |scheme: &str, port: u16| format!("{scheme}://127.0.0.1:{port}");
    let cases: Vec<(String, &str)> = vec![
        (t("smtp", ehlo_no_tls), "SMTP: the server does not offer STARTTLS (extensions: SIZE, PIPELINING)"),
        (t("smtp", tls_refused), "SMTP: the server refused STARTTLS: 454 4.7.0 TLS not available due to local problem"),
        (t("smtp", hang_ehlo), "timed out after 2s in the SMTP dialogue before TLS, waiting for the EHLO reply (TCP connected)"),
        (t("imap", hang_greeting), "timed out after 2s in the IMAP dialogue before TLS, waiting for the greeting (TCP connected)"),
        (t("smtp", garbage), "SMTP: unexpected greeting from the server: \".]52;c;aGk=..[2J...hello\""),
        (t("smtp", imap_greets), "SMTP: not an SMTP server: it answers in IMAP (\"* OK [CAPABILITY IMAP4rev1] ready\")"),
        (t("ldap", http), "LDAP: not an LDAP server: it answers in HTTP (\"HTTP/1.1 400 Bad Request..Content-Length: 0....\")"),
        (t("postgres", http), "PostgreSQL: not a PostgreSQL server: it answers in HTTP (\"HTTP/1.1 400 Bad Request..Content-Length: 0....\")"),
        (t("smtp", long_line), "SMTP: the server sent a line longer than 4096 bytes while waiting for the greeting"),
        (t("smtp", endless), "SMTP: the server sent more than 65536 bytes before TLS, while waiting for the EHLO reply"),
        (t("smtp", injected), "SMTP: the server sent 14 more bytes after agreeing to start TLS; refused, as they would be taken for the TLS handshake (STARTTLS injection)"),
        (t("imap", imap_no_tls), "IMAP: the server does not offer STARTTLS (capabilities: IMAP4REV1, AUTH=PLAIN)"),
        (t("pop3", pop3_refused), "POP3: the server refused STLS: -ERR TLS is off today"),
        (t("ftp", ftp_no_tls), "FTP: the server does not offer AUTH TLS (AUTH TLS answered 500 Unknown command)"),
        (t("mysql", mysql_no_ssl), "MySQL: the server does not offer TLS (server 10.11.0-fake has no CLIENT_SSL capability: TLS is not set up)"),
        (t("mysql", mysql_err), "MySQL: the server refused the connection: error 1129: Too many connections"),
        (t("ldap", ldap_unavailable), "LDAP: the server refused StartTLS: unavailable (52): TLS not configured"),
        (format!("xmpp://127.0.0.1:{xmpp_no_tls}?domain=example.test"), "XMPP: the server does not offer STARTTLS (features: mechanisms)"),
    ];
    let mut args: Vec<&str> = cases.iter().map(|(t, _)| t.as_str()).collect();
    args.extend(["--timeout", "2s"]);
    let (code, recs) = scan(&args).await;
    assert_eq!(code, 3, "every row is an error: {recs:#?}");
    assert_eq!(recs.len(), cases.len());
    for (target, want) in &cases {
        let e = error_of(&recs, target);
        assert_eq!(&e, want, "{target}");
        assert!(
            !e.chars().any(char::is_control),
            "control characters in {e:?}"
        );
        assert_eq!(row(&recs, target)["status"], "error");
    }
}

/// A MySQL protocol-10 greeting, with or without CLIENT_SSL.
fn mysql_greeting(ssl: bool) -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"10.11.0-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh\0");
    let caps: u16 = 0x0200 | 0x8000 | if ssl { 0x0800 } else { 0 };
    p.extend_from_slice(&caps.to_le_bytes());
    p.push(45);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0u8; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    let mut out = vec![p.len() as u8, 0, 0, 0];
    out.extend(p);
    out
}

/// An LDAP ExtendedResponse (messageID 1) with a result code and diagnostic message.
fn ldap_response(code: u8, diag: &[u8]) -> Vec<u8> {
    let mut op = vec![0x0a, 1, code, 0x04, 0, 0x04, diag.len() as u8];
    op.extend_from_slice(diag);
    let mut msg = vec![0x02, 1, 1, 0x78, op.len() as u8];
    msg.extend(op);
    let mut out = vec![0x30, msg.len() as u8];
    out.extend(msg);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_starttls_flag_and_config_key_choose_the_protocol_of_plain_targets() {
    let no_tls = fakes::scripted(vec![
        send("220 mx.test ESMTP\r\n"),
        Step::ReadLine,
        send("250 mx.test\r\n"),
    ])
    .await;
    let plain = format!("127.0.0.1:{no_tls}");
    let smtp = format!("smtp://{plain}");
    let config =
        format!("targets = [\"{plain}\"]\n[probe]\nstarttls = \"smtp\"\ntimeout = \"3s\"\n");
    let (code, out, err) = certdeck(&["scan", "-o", "json"], Some(&config)).await;
    assert_eq!(code, 3, "{err}");
    let recs: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(row(&recs, &smtp)["starttls"], "smtp");
    assert!(error_of(&recs, &smtp).contains("does not offer STARTTLS (no extensions listed)"));
    // The flag overrides the config: TLS from the first byte.
    let (_, out, _) = certdeck(
        &["scan", "-o", "json", &plain, "--starttls", "none"],
        Some(&config),
    )
    .await;
    let recs: Vec<Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(row(&recs, &plain)["starttls"], Value::Null);
    assert!(error_of(&recs, &plain).contains("not a TLS server"));

    // Bad values are usage errors naming the value.
    let (code, _, err) = certdeck(&["scan", &plain, "--starttls", "smtpx"], None).await;
    assert_eq!(code, 3);
    assert!(
        err.contains("unknown STARTTLS protocol 'smtpx'") && err.contains("postgres-direct"),
        "{err}"
    );
    let (code, _, err) = certdeck(&["scan"], Some("[probe]\nstarttls = \"gopher\"\n")).await;
    assert_eq!(code, 3);
    assert!(err.contains("line 2") && err.contains("gopher"), "{err}");
    let (code, _, err) = certdeck(&["scan", "xmpp://h?domain="], None).await;
    assert_eq!(code, 3, "{err}");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The locations the dashboard's TLS source reads for this command line and config.
async fn dashboard_locations(args: &[&str], config: &str) -> Vec<String> {
    use certdeck::sources::registry::Purpose;
    use certdeck::sources::{Sink, SourceEvent};
    let parsed = certdeck::cli::parse_from(args).expect("command line");
    let doc = certdeck::config::Document::parse(
        std::path::Path::new("c.toml"),
        config,
        &certdeck::settings::known_sections(),
    )
    .expect("config");
    let settings = certdeck::settings::Settings::resolve_with(
        doc,
        &parsed.cli,
        &certdeck::cli::ProbeArgs::default(),
    )
    .expect("settings");
    let sources = settings
        .sources(Some(parsed.command_matches()), &[], &Purpose::Dashboard)
        .expect("sources");
    let mut out = Vec::new();
    for src in sources {
        let (tx, mut rx) = tokio::sync::mpsc::channel(64);
        let sink = Sink::new(std::sync::Arc::new(src.id().clone()), tx);
        let round = tokio::time::timeout(Duration::from_secs(30), src.round(&sink));
        round.await.expect("round within 30 s");
        drop(sink);
        while let Some(ev) = rx.recv().await {
            if let SourceEvent::Observed { record, .. } = ev {
                out.push(record.location);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_flag_and_the_config_key_set_the_protocol_of_the_config_targets() {
    certdeck::sources::tls::install_crypto_provider();
    let closed = peers::free_port();
    let config = format!(
        "targets = [\"127.0.0.1:25\", \"127.0.0.1:{closed}\"]\n[probe]\ntimeout = \"2s\"\n"
    );
    assert_eq!(
        dashboard_locations(&["certdeck"], &config).await,
        sorted(vec![
            format!("127.0.0.1:{closed}"),
            "smtp://127.0.0.1:25".to_owned()
        ]),
        "well-known ports choose by default"
    );
    assert_eq!(
        dashboard_locations(&["certdeck", "--starttls", "none"], &config).await,
        sorted(vec![
            format!("127.0.0.1:{closed}"),
            "tls://127.0.0.1:25".to_owned()
        ])
    );
    assert_eq!(
        dashboard_locations(&["certdeck", "--starttls", "imap"], &config).await,
        sorted(vec![
            format!("imap://127.0.0.1:{closed}"),
            "imap://127.0.0.1:25".to_owned()
        ])
    );
    let with_key = format!("{config}starttls = \"postgres\"\n");
    assert_eq!(
        dashboard_locations(&["certdeck"], &with_key).await,
        sorted(vec![
            format!("postgres://127.0.0.1:{closed}"),
            "postgres://127.0.0.1:25".to_owned()
        ])
    );
    assert_eq!(
        dashboard_locations(&["certdeck", "--starttls", "auto"], &with_key).await,
        sorted(vec![
            format!("127.0.0.1:{closed}"),
            "smtp://127.0.0.1:25".to_owned()
        ]),
        "the flag wins over the config key"
    );
}

#[test]
fn the_details_view_names_the_starttls_protocol() {
    use certdeck::app::{App, AppEvent};
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut rec = certdeck::testing::sample_records()
        .into_iter()
        .find(|r| r.tls.is_some())
        .expect("a TLS record");
    rec.location = "smtp://mail.example.test:587".into();
    if let Some(t) = rec.tls.as_mut() {
        t.starttls = Some("smtp");
    }
    let mut app = App::new(
        certdeck::testing::NOW,
        certdeck::model::Thresholds::default(),
        certdeck::config::keymap::Keymap::default(),
    );
    app.update(AppEvent::Resize(120, 40));
    app.apply_batch(vec![certdeck::sources::SourceEvent::Observed {
        source: std::sync::Arc::new(certdeck::sources::SourceId::new(
            certdeck::model::SourceKind::TLS,
            "",
        )),
        record: rec,
    }]);
    app.update(AppEvent::Key(KeyEvent::new(
        KeyCode::Enter,
        KeyModifiers::NONE,
    )));
    let mut term =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(120, 40)).expect("term");
    let theme = certdeck::config::theme::Theme::default_dark();
    term.draw(|f| certdeck::ui::render(&app, &theme, f))
        .expect("draw");
    let buf = term.backend().buffer().clone();
    let screen: Vec<String> = (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect();
    assert!(
        screen
            .iter()
            .any(|l| l.contains("STARTTLS") && l.contains("smtp")),
        "{}",
        screen.join("\n")
    );
}
