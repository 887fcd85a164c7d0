//! The ACME client side: an HTTPS client trusting the issuer's CA file, the account key on
//! disk, and the badNonce retry.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{Account, BodyWrapper, HttpClient, Key, Problem};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::sources::pem::{self, PemItem};

/// How many times a request refused with badNonce is sent again (instant-acme itself tries
/// each request up to three times; this covers a run of refusals beyond that).
pub(crate) const BAD_NONCE_RETRIES: usize = 30;

/// An HTTPS client trusting the webpki roots plus every certificate in `ca_file`.
pub(crate) fn http_client(ca_file: Option<&Path>) -> Result<Box<dyn HttpClient>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let data = std::fs::read(path)
            .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
        let mut n = 0;
        for item in pem::scan(&data) {
            if let PemItem::Certificate(der) = item {
                roots
                    .add(der.into())
                    .map_err(|e| format!("unusable CA certificate in {}: {e}", path.display()))?;
                n += 1;
            }
        }
        if n == 0 {
            return Err(format!(
                "the CA file {} holds no certificate",
                path.display()
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    let client: hyper_util::client::legacy::Client<_, BodyWrapper<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    Ok(Box::new(client))
}

/// Load the account key, or create it (0600, in a 0700 directory) when missing.
/// Returns the key and whether it was created.
pub(crate) fn load_or_create_key(
    path: &Path,
) -> Result<((Key, PrivateKeyDer<'static>), bool), String> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::read(path) {
        Ok(data) => {
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("account key {}: {e}", path.display()))?;
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                    |e| format!("account key {}: cannot make it 0600: {e}", path.display()),
                )?;
            }
            let der = PrivatePkcs8KeyDer::from_pem_slice(&data).map_err(|_| {
                format!(
                    "account key {}: not a PKCS#8 PEM private key",
                    path.display()
                )
            })?;
            let key = Key::from_pkcs8_der(der.clone_key()).map_err(|_| {
                format!(
                    "account key {}: not an ECDSA P-256 key (the only kind ACME accounts use here)",
                    path.display()
                )
            })?;
            Ok(((key, PrivateKeyDer::Pkcs8(der)), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let (key, der) =
                Key::generate_pkcs8().map_err(|e| format!("account key generation: {e}"))?;
            let pem = pkcs8_pem(der.secret_pkcs8_der());
            // Written whole to a temporary file, then linked into place: a concurrent
            // renewal sees either no key or the complete key, and never replaces it.
            let tmp = crate::fsx::temp_beside(path);
            let written = (|| {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)?;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                f.write_all(pem.as_bytes())?;
                f.sync_all()?;
                std::fs::hard_link(&tmp, path)
            })();
            let _ = std::fs::remove_file(&tmp);
            match written {
                Ok(()) => Ok(((key, PrivateKeyDer::Pkcs8(der)), true)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(format!(
                    "cannot create the account key {}: {e}",
                    path.display()
                )),
            }
        }
        Err(e) => Err(format!(
            "cannot read the account key {}: {e}",
            path.display()
        )),
    }
}

/// PKCS#8 DER as PEM text.
pub(crate) fn pkcs8_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// Find the account for the key on the directory, creating it when new.
pub(crate) async fn account(
    http: Box<dyn HttpClient>,
    key: (Key, PrivateKeyDer<'static>),
    directory_url: &str,
) -> Result<Account, instant_acme::Error> {
    let (account, _credentials) = Account::builder_with_http(http)
        .create_from_key(key, directory_url.to_owned())
        .await?;
    Ok(account)
}

/// True for the server's "use a fresh nonce" refusal.
pub(crate) fn is_bad_nonce(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Api(p)
        if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:badNonce"))
}

/// A problem document as one line: detail, type, and each subproblem.
pub(crate) fn describe_problem(p: &Problem) -> String {
    let kind = p
        .r#type
        .as_deref()
        .map(|t| t.trim_start_matches("urn:ietf:params:acme:error:"));
    let mut s = match (&p.detail, kind) {
        (Some(d), Some(k)) => format!("{d} ({k})"),
        (Some(d), None) => d.clone(),
        (None, Some(k)) => k.to_owned(),
        (None, None) => "the server returned a problem without detail".to_owned(),
    };
    for sp in &p.subproblems {
        if let Some(d) = &sp.detail {
            s.push_str("; ");
            s.push_str(d);
        }
    }
    s
}

/// An instant-acme error as one line a user can act on.
pub(crate) fn describe(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => describe_problem(p),
        other => super::error_chain(other),
    }
}

/// Run an ACME request again while the server refuses its nonce.
macro_rules! retry_nonce {
    ($e:expr) => {{
        let mut attempt = 0usize;
        loop {
            match $e {
                Err(e)
                    if $crate::acme::client::is_bad_nonce(&e)
                        && attempt < $crate::acme::client::BAD_NONCE_RETRIES =>
                {
                    attempt += 1;
                    tracing::debug!("badNonce, sending again (attempt {attempt})");
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retry_nonce;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_account_key_is_created_once_0600_and_then_reused() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("acme/issuer.account.pem");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || load_or_create_key(&p).map(|(_, created)| created))
            })
            .collect();
        let created: Vec<bool> = threads
            .into_iter()
            .map(|t| t.join().expect("join").expect("key"))
            .collect();
        assert_eq!(created.iter().filter(|c| **c).count(), 1, "{created:?}");
        let mode = |p: &Path| std::fs::metadata(p).expect("m").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().expect("dir")), 0o700);
        let first = std::fs::read(&path).expect("read");
        let (_, created) = load_or_create_key(&path).expect("again");
        assert!(!created);
        assert_eq!(std::fs::read(&path).expect("read"), first, "never replaced");
        assert_eq!(
            std::fs::read_dir(path.parent().expect("dir"))
                .expect("ls")
                .count(),
            1,
            "no temporary file left"
        );
        // A key left readable by others is narrowed to 0600 on use.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        load_or_create_key(&path).expect("load");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_garbage_account_key_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().expect("tempdir");
        let path = d.path().join("k.pem");
        std::fs::write(
            &path,
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .expect("w");
        let e = load_or_create_key(&path).map(|_| ()).expect_err("garbage");
        assert!(e.contains("k.pem"), "{e}");
        assert!(!e.contains("AAAA"), "no key bytes in errors: {e}");
    }
}
