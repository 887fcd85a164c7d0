//! Shared test helpers: misbehaving servers on loopback, and the binary under test.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A server that accepts TCP and never says a word (holds each connection open).
pub async fn hanging_server() -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    (port, h)
}

/// A server that answers anything with a plain HTTP response, then closes.
pub async fn plain_http_server() -> (u16, JoinHandle<()>) {
    reply_server(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await
}

/// A server that sends fixed bytes on every connection, then closes.
pub async fn reply_server(reply: Vec<u8>) -> (u16, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    let h = tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
                let _ = s.write_all(&reply).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (port, h)
}

/// A port with nothing listening (bound then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// A listener whose accept queue is full, so new connections hang in the TCP handshake.
pub struct FullBacklog {
    pub port: u16,
    _listener: tokio::net::TcpListener,
    _held: Vec<std::net::TcpStream>,
}

pub async fn full_backlog_port() -> FullBacklog {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = sock.local_addr().expect("addr").port();
    let listener = sock.listen(1).expect("listen");
    let mut held = Vec::new();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
    }
    FullBacklog {
        port,
        _listener: listener,
        _held: held,
    }
}

/// Path of the certdeck binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_certdeck")
}

/// Run the binary with args and an isolated config home; returns (exit code, stdout, stderr).
pub async fn run_bin(args: &[&str]) -> (i32, String, String) {
    run_bin_env(args, &[]).await
}

pub async fn run_bin_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let home = tempfile::tempdir().expect("tempdir");
    let mut cmd = tokio::process::Command::new(bin());
    cmd.args(args)
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_STATE_HOME", home.path().join("state"))
        .env_remove("CERTDECK_CONFIG")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("certdeck did not finish within 60 s")
        .expect("run certdeck");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Probe TLS targets through the TLS source, once; returns the records and source problems.
pub async fn scan_targets(
    targets: Vec<certdeck::sources::Target>,
    settings: certdeck::sources::ProbeSettings,
) -> (Vec<certdeck::model::Record>, Vec<String>) {
    certdeck::sources::tls::install_crypto_provider();
    let src = certdeck::sources::tls::source::TlsSource::new(targets, Vec::new(), settings);
    let r = certdeck::sources::scan(vec![std::sync::Arc::new(src)]).await;
    let problems = r.problems();
    (r.records, problems)
}

/// True when the tests run as root (CI does): the owner of a file just made is who we are.
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    let f = tempfile::NamedTempFile::new().expect("tmp");
    f.as_file().metadata().expect("meta").uid() == 0
}

/// As root, give `path` to `nobody:nogroup` (another user); returns the (uid, gid) it has.
pub fn give_away(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    if is_root() {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).expect("chown");
    }
    let m = std::fs::metadata(path).expect("meta");
    (m.uid(), m.gid())
}

/// (uid, gid) of a file.
pub fn owner(path: &std::path::Path) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).expect("meta");
    (m.uid(), m.gid())
}
