//! The independent oracle: `openssl s_client` reads the served leaf, `openssl x509` hashes it.

use std::io::Write;
use std::process::{Command, Stdio};

/// SHA-256 (lowercase hex) of the leaf `openssl s_client ARGS -connect 127.0.0.1:PORT` sees.
pub fn leaf_sha256(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("20")
        .args([
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----").unwrap_or_else(|| {
        panic!(
            "openssl s_client {args:?} got no certificate:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let end_marker = "-----END CERTIFICATE-----";
    let end = text[begin..].find(end_marker).expect("END CERTIFICATE") + begin + end_marker.len();
    let pem = &text[begin..end];
    let mut x509 = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    x509.stdin
        .take()
        .expect("stdin")
        .write_all(pem.as_bytes())
        .expect("write pem");
    let out = x509.wait_with_output().expect("openssl x509");
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let hex = line.split('=').nth(1).expect("fingerprint line").trim();
    hex.replace(':', "").to_ascii_lowercase()
}

/// The line `openssl s_client` prints about ALPN, e.g. `ALPN protocol: postgresql`.
pub fn alpn_line(port: u16, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("20")
        .args([
            "openssl",
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains("ALPN"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
