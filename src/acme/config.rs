//! Configuration of ACME renewal: the `[[acme]]` issuers and the `[[certificate]]` files they
//! renew. Plain data, deserialised from the config file; unknown fields are errors.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// An ACME CA (`[[acme]]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeIssuer {
    /// The name `[[certificate]]` entries refer to; also names the account key file.
    pub name: String,
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory_url: String,
    /// Account contacts, e.g. `mailto:ops@example.com`.
    #[serde(default)]
    pub contact: Vec<String>,
    /// Extra trust anchors (PEM) for the directory's HTTPS, beside the webpki roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How the CA checks that we control the names.
    pub challenge: Challenge,
}

/// How authorizations are proved.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Challenge {
    /// http-01: the key authorization is written to
    /// `WEBROOT/.well-known/acme-challenge/TOKEN`, which the web server must serve on port 80.
    #[serde(rename = "http-01")]
    Http01 { webroot: PathBuf },
    /// dns-01: `sh -c 'HOOK "$@"' hook ACTION DOMAIN VALUE` is run with ACTION `present`,
    /// then `cleanup`. The same values are in the environment: `CERTDECK_ACME_ACTION`,
    /// `CERTDECK_ACME_DOMAIN`, `CERTDECK_ACME_RECORD` (`_acme-challenge.DOMAIN`) and
    /// `CERTDECK_ACME_TXT`. `present` must return once the TXT record is visible.
    #[serde(rename = "dns-01")]
    Dns01 { hook: String },
}

impl Challenge {
    /// `http-01` or `dns-01`.
    pub fn kind(&self) -> &'static str {
        match self {
            Challenge::Http01 { .. } => "http-01",
            Challenge::Dns01 { .. } => "dns-01",
        }
    }
}

/// A certificate kept in files and renewed through an ACME issuer (`[[certificate]]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedFile {
    /// The certificate file. Without `chain`, it receives the full chain (leaf first), as
    /// nginx's `ssl_certificate` wants; with `chain`, only the leaf.
    pub cert: PathBuf,
    /// The intermediates, when they are kept in their own file.
    #[serde(default)]
    pub chain: Option<PathBuf>,
    /// The private key file (written 0600).
    pub key: PathBuf,
    /// The endpoint that serves this certificate, `host:port[@sni]`, re-probed after the reload.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// A shell command that makes the server load the new files.
    #[serde(default)]
    pub reload: Option<String>,
    /// The `name` of the `[[acme]]` issuer.
    pub issuer: String,
}

/// The issuer a managed file names.
pub fn find_issuer<'a>(
    issuers: &'a [AcmeIssuer],
    file: &ManagedFile,
) -> Result<&'a AcmeIssuer, super::AcmeError> {
    issuers
        .iter()
        .find(|i| i.name == file.issuer)
        .ok_or_else(|| {
            let known: Vec<&str> = issuers.iter().map(|i| i.name.as_str()).collect();
            super::AcmeError::planning(format!(
                "{} names the ACME issuer '{}', which is not configured (known: {})",
                file.cert.display(),
                file.issuer,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        })
}

/// Check a configuration: issuer names are unique and not empty, every file names a
/// configured issuer, and no file is managed twice. The message names the culprit.
pub fn validate(issuers: &[AcmeIssuer], files: &[ManagedFile]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for i in issuers {
        if i.name.trim().is_empty() {
            return Err("an [[acme]] issuer has an empty name".to_owned());
        }
        if !names.insert(i.name.as_str()) {
            return Err(format!("two [[acme]] issuers are named '{}'", i.name));
        }
        if !i.directory_url.starts_with("https://") {
            return Err(format!(
                "[[acme]] '{}': directory_url must start with https:// (got '{}')",
                i.name, i.directory_url
            ));
        }
    }
    let mut certs = std::collections::HashSet::new();
    for f in files {
        find_issuer(issuers, f).map_err(|e| e.message)?;
        if !certs.insert(&f.cert) {
            return Err(format!(
                "{} is listed in two [[certificate]] entries",
                f.cert.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        acme: Vec<AcmeIssuer>,
        certificate: Vec<ManagedFile>,
    }

    const EXAMPLE: &str = r#"
[[acme]]
name = "internal"
directory_url = "https://acme.internal:14000/dir"
contact = ["mailto:ops@example.com"]
ca_file = "/etc/certdeck/acme-ca.pem"
challenge = { type = "http-01", webroot = "/var/www/acme" }

[[acme]]
name = "dns"
directory_url = "https://acme.internal:14000/dir"
challenge = { type = "dns-01", hook = "/usr/local/bin/dns-hook" }

[[certificate]]
cert = "/etc/nginx/tls/site.crt"
key = "/etc/nginx/tls/site.key"
endpoint = "127.0.0.1:443@www.example.com"
reload = "systemctl reload nginx"
issuer = "internal"
"#;

    #[test]
    fn the_documented_example_parses() {
        let f: File = toml::from_str(EXAMPLE).expect("parse");
        assert_eq!(f.acme.len(), 2);
        assert_eq!(
            f.acme[0].challenge,
            Challenge::Http01 {
                webroot: "/var/www/acme".into()
            }
        );
        assert_eq!(f.acme[1].challenge.kind(), "dns-01");
        assert!(f.acme[1].contact.is_empty());
        assert_eq!(f.certificate[0].chain, None);
        assert_eq!(f.certificate[0].issuer, "internal");
    }

    #[test]
    fn validation_names_the_missing_issuer_and_duplicates() {
        let f: File = toml::from_str(EXAMPLE).expect("parse");
        assert_eq!(validate(&f.acme, &f.certificate), Ok(()));
        let mut files = f.certificate.clone();
        files[0].issuer = "nope".into();
        let e = validate(&f.acme, &files).expect_err("unknown issuer");
        assert!(e.contains("'nope'") && e.contains("internal, dns"), "{e}");
        files[0].issuer = "internal".into();
        files.push(files[0].clone());
        let e = validate(&f.acme, &files).expect_err("twice");
        assert!(e.contains("site.crt"), "{e}");
        let mut issuers = f.acme.clone();
        issuers[1].name = "internal".into();
        assert!(validate(&issuers, &f.certificate).is_err());
        assert_eq!(
            find_issuer(&f.acme, &f.certificate[0]).map(|i| i.name.as_str()),
            Ok("internal")
        );
    }

    #[test]
    fn unknown_fields_and_challenge_types_are_errors() {
        let bad = EXAMPLE.replace("reload =", "reolad =");
        let e = toml::from_str::<File>(&bad).expect_err("typo");
        assert!(e.to_string().contains("reolad"), "{e}");
        let bad = EXAMPLE.replace("webroot = ", "webrot = ");
        assert!(toml::from_str::<File>(&bad).is_err());
        let bad = EXAMPLE.replace("\"http-01\"", "\"tls-alpn-01\"");
        assert!(toml::from_str::<File>(&bad).is_err());
        let bad = EXAMPLE.replace(
            "hook = \"/usr/local/bin/dns-hook\"",
            "hook = \"x\", wait = 3",
        );
        assert!(toml::from_str::<File>(&bad).is_err());
    }
}
