//! A test CA and leaves with a known expiry, made with rcgen.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// A CA that signs leaves, with its certificate written to `ca.pem` in `dir`.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

/// A leaf certificate and its key, as PEM, and what the test expects certdeck to report.
pub struct TestLeaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// Lowercase hex SHA-256 of the DER.
    pub sha256: String,
    /// `notAfter` as RFC 3339 (whole seconds, UTC).
    pub not_after: String,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().expect("ca key");
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "certdeck tests");
        dn.push(DnType::CommonName, "certdeck STARTTLS test CA");
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = OffsetDateTime::now_utc();
        p.not_before = now - Duration::days(1);
        p.not_after = now + Duration::days(3650);
        let cert = p.self_signed(&key).expect("ca cert");
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    /// A server leaf for `cn`, `localhost`, `example.test` and 127.0.0.1, expiring in `days`.
    pub fn leaf(&self, cn: &str, days: i64) -> TestLeaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut p = CertificateParams::new(vec![
            cn.to_owned(),
            "localhost".to_owned(),
            "example.test".to_owned(),
        ])
        .expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().expect("ip")));
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("whole seconds");
        let not_after = now + Duration::days(days);
        p.not_before = now - Duration::days(1);
        p.not_after = not_after;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = p.signed_by(&key, &self.issuer).expect("leaf");
        let digest = ring::digest::digest(&ring::digest::SHA256, cert.der());
        TestLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            not_after: not_after
                .format(&time::format_description::well_known::Rfc3339)
                .expect("rfc3339"),
        }
    }
}
