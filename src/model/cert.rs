//! Certificate facts: what a DER certificate says, parsed once and shared by SHA-256.
//!
//! Nothing here does IO. `CertFacts::from_der` is the only place that touches x509-parser, so
//! every source (TLS, files, Kubernetes, ...) describes certificates the same way.

use std::sync::Arc;

use serde::Serialize;
use x509_parser::nom;
use x509_parser::prelude::*;
use x509_parser::public_key::PublicKey;

/// Why a DER blob could not be read as a certificate.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    #[error("malformed certificate: {0}")]
    Malformed(String),
    #[error("trailing data after the certificate ({0} bytes)")]
    TrailingData(usize),
}

/// One subject alternative name, printed the way openssl does (`DNS:example.com`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub enum San {
    Dns(String),
    Ip(String),
    Uri(String),
    Email(String),
    Other(String),
}

impl San {
    /// The SAN as `TYPE:value`.
    pub fn render(&self) -> String {
        match self {
            San::Dns(v) => format!("DNS:{v}"),
            San::Ip(v) => format!("IP:{v}"),
            San::Uri(v) => format!("URI:{v}"),
            San::Email(v) => format!("email:{v}"),
            San::Other(v) => format!("othername:{v}"),
        }
    }

    /// The bare value without its type prefix.
    pub fn value(&self) -> &str {
        match self {
            San::Dns(v) | San::Ip(v) | San::Uri(v) | San::Email(v) | San::Other(v) => v,
        }
    }

    /// True for a SPIFFE ID (`URI:spiffe://...`).
    pub fn is_spiffe(&self) -> bool {
        matches!(self, San::Uri(v) if v.starts_with("spiffe://"))
    }
}

impl From<San> for String {
    fn from(s: San) -> String {
        s.render()
    }
}

/// The facts of one certificate. Immutable once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub der: Arc<[u8]>,
    /// Lowercase hex SHA-256 of the DER: the certificate's identity.
    pub sha256: String,
    pub subject: String,
    /// The subject common name, when there is one.
    pub common_name: Option<String>,
    pub issuer: String,
    /// Lowercase hex, no separators, no sign-padding zero byte.
    pub serial: String,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    pub sans: Vec<San>,
    /// For example `ECDSA P-256`, `RSA 2048`, `Ed25519`.
    pub key: String,
    pub signature_algorithm: String,
    pub is_ca: bool,
    /// Subject equals issuer (a root or a self-signed leaf).
    pub self_issued: bool,
    pub subject_key_id: Option<String>,
    pub authority_key_id: Option<String>,
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (what
    /// `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum` prints): the key's
    /// identity, so one key under several certificates is seen. `None` without the DER.
    pub spki_sha256: Option<String>,
}

/// Lowercase hex of a byte slice.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

impl CertFacts {
    /// Parse one DER certificate. Trailing bytes are an error: a DER file is one certificate.
    pub fn from_der(der: &[u8]) -> Result<CertFacts, CertError> {
        let (rest, cert) =
            X509Certificate::from_der(der).map_err(|e| CertError::Malformed(describe_nom(&e)))?;
        if !rest.is_empty() {
            return Err(CertError::TrailingData(rest.len()));
        }
        let used = der.len() - rest.len();
        let der: Arc<[u8]> = Arc::from(&der[..used]);
        let tbs = &cert.tbs_certificate;
        let subject = tbs.subject.to_string();
        let issuer = tbs.issuer.to_string();
        let common_name = tbs
            .subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let serial = serial_hex(tbs.raw_serial());
        let mut sans = Vec::new();
        let mut is_ca = false;
        let mut subject_key_id = None;
        let mut authority_key_id = None;
        for ext in tbs.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    sans.extend(san.general_names.iter().map(general_name));
                }
                ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
                ParsedExtension::SubjectKeyIdentifier(kid) => subject_key_id = Some(hex(kid.0)),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    authority_key_id = aki.key_identifier.as_ref().map(|k| hex(k.0));
                }
                _ => {}
            }
        }
        let self_issued = tbs.subject.as_raw() == tbs.issuer.as_raw();
        Ok(CertFacts {
            sha256: sha256_hex(&der),
            subject,
            common_name,
            issuer,
            serial,
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            sans,
            key: describe_key(&tbs.subject_pki),
            signature_algorithm: describe_sig_alg(&cert.signature_algorithm.algorithm),
            is_ca,
            self_issued,
            subject_key_id,
            authority_key_id,
            spki_sha256: Some(sha256_hex(tbs.subject_pki.raw)),
            der,
        })
    }

    /// A short human name: the common name, else the first SAN, else the subject.
    pub fn display_name(&self) -> &str {
        if let Some(cn) = &self.common_name {
            return cn;
        }
        if let Some(san) = self.sans.first() {
            return san.value();
        }
        &self.subject
    }

    /// The issuer's common name when present, else the whole issuer DN.
    pub fn issuer_name(&self) -> &str {
        short_cn(&self.issuer)
    }

    /// The certificate as PEM text.
    pub fn to_pem(&self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.der);
        let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 60);
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
        out
    }
}

/// `CN=foo, O=bar` -> `foo`; anything without a CN is returned whole.
pub fn short_cn(dn: &str) -> &str {
    for part in dn.split(", ") {
        if let Some(cn) = part.strip_prefix("CN=") {
            return cn;
        }
    }
    dn
}

fn describe_nom(e: &nom::Err<X509Error>) -> String {
    match e {
        nom::Err::Incomplete(_) => "truncated DER".to_owned(),
        nom::Err::Error(e) | nom::Err::Failure(e) => e.to_string(),
    }
}

fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[start..])
}

fn general_name(gn: &GeneralName<'_>) -> San {
    match gn {
        GeneralName::DNSName(d) => San::Dns((*d).to_owned()),
        GeneralName::RFC822Name(e) => San::Email((*e).to_owned()),
        GeneralName::URI(u) => San::Uri((*u).to_owned()),
        GeneralName::IPAddress(ip) => San::Ip(match ip.len() {
            4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(ip);
                std::net::Ipv6Addr::from(b).to_string()
            }
            _ => hex(ip),
        }),
        other => San::Other(format!("{other:?}")),
    }
}

fn describe_key(spki: &SubjectPublicKeyInfo<'_>) -> String {
    use x509_parser::oid_registry as oids;
    let alg = &spki.algorithm.algorithm;
    if *alg == oids::OID_SIG_ED25519 {
        return "Ed25519".to_owned();
    }
    if *alg == oids::OID_SIG_ED448 {
        return "Ed448".to_owned();
    }
    if *alg == oids::OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let name = match curve {
            Some(c) if c == oids::OID_EC_P256 => "P-256".to_owned(),
            Some(c) if c == oids::OID_NIST_EC_P384 => "P-384".to_owned(),
            Some(c) if c == oids::OID_NIST_EC_P521 => "P-521".to_owned(),
            Some(c) => c.to_id_string(),
            None => "unknown curve".to_owned(),
        };
        return format!("ECDSA {name}");
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::DSA(_)) => "DSA".to_owned(),
        Ok(PublicKey::GostR3410(_)) | Ok(PublicKey::GostR3410_2012(_)) => "GOST".to_owned(),
        _ => alg.to_id_string(),
    }
}

fn describe_sig_alg(oid: &x509_parser::der_parser::oid::Oid<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    match registry.get(oid) {
        Some(entry) => entry.sn().to_owned(),
        None => oid.to_id_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_drops_sign_padding_but_keeps_zero() {
        assert_eq!(serial_hex(&[0x00, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[0x01, 0x00]), "0100");
    }

    #[test]
    fn garbage_is_a_malformed_error_not_a_panic() {
        assert!(matches!(
            CertFacts::from_der(b"not a cert"),
            Err(CertError::Malformed(_))
        ));
        assert!(CertFacts::from_der(&[]).is_err());
        assert!(CertFacts::from_der(&[0x30, 0x82, 0xff, 0xff, 0x01]).is_err());
    }

    #[test]
    fn short_cn_takes_the_cn() {
        assert_eq!(short_cn("O=Fleet Test, CN=Fleet Root"), "Fleet Root");
        assert_eq!(short_cn("O=Only Org"), "O=Only Org");
    }
}
