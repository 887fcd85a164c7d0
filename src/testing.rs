//! Deterministic fleets for snapshot tests and benchmarks: synthetic certificate facts at a
//! fixed clock, no randomness, no network.
#![doc(hidden)]

use std::sync::Arc;

use crate::model::cert::{sha256_hex, CertFacts, San};
use crate::model::status::DAY;
use crate::model::{Record, SourceKind, TlsInfo, Verification};

/// 2026-11-18T11:06:40Z: the fixed "now" of snapshot tests.
pub const NOW: i64 = 1_795_000_000;

/// Synthetic certificate facts.
pub fn facts(
    cn: &str,
    issuer: &str,
    not_before: i64,
    not_after: i64,
    key: &str,
    sans: &[&str],
) -> CertFacts {
    let der: Vec<u8> =
        format!("synthetic certificate {cn} {issuer} {not_before} {not_after}").into_bytes();
    let sha = sha256_hex(&der);
    CertFacts {
        sha256: sha.clone(),
        subject: format!("O=Example, CN={cn}"),
        common_name: Some(cn.to_owned()),
        issuer: format!("O=Example, CN={issuer}"),
        serial: sha[..16].to_owned(),
        not_before,
        not_after,
        sans: sans
            .iter()
            .map(|s| {
                if s.starts_with("spiffe://") {
                    San::Uri((*s).to_owned())
                } else {
                    San::Dns((*s).to_owned())
                }
            })
            .collect(),
        key: key.to_owned(),
        signature_algorithm: "ecdsa-with-SHA256".to_owned(),
        is_ca: false,
        self_issued: cn == issuer,
        subject_key_id: None,
        authority_key_id: None,
        spki_sha256: None,
        der: Arc::from(der),
    }
}

fn tls(
    host: &str,
    port: u16,
    cert: CertFacts,
    chain: Vec<CertFacts>,
    reason: &str,
    mtls: bool,
) -> Record {
    let mut r = Record::new(SourceKind::TLS, format!("{host}:{port}"), NOW);
    r.cert = Some(Arc::new(cert));
    r.chain = chain.into_iter().map(Arc::new).collect();
    r.tls = Some(TlsInfo {
        tls_version: Some("TLSv1.3".into()),
        client_auth_requested: mtls,
        starttls: None,
        verification: Some(Verification {
            trusted: reason == "trusted",
            reason: reason.into(),
            checked_name: host.into(),
        }),
        peer_addr: Some(format!("127.0.0.1:{port}")),
    });
    r
}

fn file(path: &str, cert: CertFacts) -> Record {
    Record::new(SourceKind::FILE, path.to_owned(), NOW).with_cert(Arc::new(cert))
}

/// A small fleet with every status, a chain, an error and a duplicate certificate.
pub fn sample_records() -> Vec<Record> {
    let d = DAY;
    let int = facts(
        "Example Intermediate CA",
        "Example Root CA",
        NOW - 300 * d,
        NOW + 1500 * d,
        "ECDSA P-256",
        &[],
    );
    let short_int = facts(
        "Example Short Intermediate",
        "Example Root CA",
        NOW - 300 * d,
        NOW + 2 * d,
        "ECDSA P-256",
        &[],
    );
    let shared = facts(
        "shared.example.com",
        "Example Intermediate CA",
        NOW - 60 * d,
        NOW + 45 * d,
        "RSA 2048",
        &["shared.example.com"],
    );
    vec![
        tls(
            "billing.example.com",
            443,
            facts(
                "billing.example.com",
                "Example Intermediate CA",
                NOW - 100 * d,
                NOW - 10 * d,
                "ECDSA P-256",
                &["billing.example.com"],
            ),
            vec![int.clone()],
            "expired",
            false,
        ),
        tls(
            "api.example.com",
            443,
            facts(
                "api.example.com",
                "Example Intermediate CA",
                NOW - 87 * d,
                NOW + 3 * d + 3600,
                "ECDSA P-256",
                &["api.example.com", "api-v2.example.com"],
            ),
            vec![int.clone()],
            "trusted",
            false,
        ),
        tls(
            "grafana.example.com",
            8443,
            facts(
                "grafana.example.com",
                "Example Intermediate CA",
                NOW - 70 * d,
                NOW + 20 * d + 3600,
                "ECDSA P-384",
                &["grafana.example.com"],
            ),
            vec![int.clone()],
            "trusted",
            false,
        ),
        tls(
            "www.example.com",
            443,
            facts(
                "www.example.com",
                "Example Intermediate CA",
                NOW - 30 * d,
                NOW + 200 * d,
                "RSA 2048",
                &["www.example.com"],
            ),
            vec![int.clone()],
            "trusted",
            false,
        ),
        tls(
            "legacy.example.com",
            443,
            facts(
                "legacy.example.com",
                "legacy.example.com",
                NOW - 10 * d,
                NOW + 120 * d,
                "RSA 4096",
                &["legacy.example.com"],
            ),
            vec![],
            "self-signed",
            false,
        ),
        tls(
            "payments.example.com",
            443,
            facts(
                "payments.example.com",
                "Example Short Intermediate",
                NOW - 20 * d,
                NOW + 300 * d,
                "ECDSA P-256",
                &["payments.example.com"],
            ),
            vec![short_int],
            "trusted",
            false,
        ),
        tls(
            "mesh.example.com",
            15443,
            facts(
                "mesh.example.com",
                "Example Intermediate CA",
                NOW - 10 * d,
                NOW + 60 * d,
                "Ed25519",
                &["spiffe://example.com/ns/shop/sa/web"],
            ),
            vec![int.clone()],
            "trusted",
            true,
        ),
        tls(
            "future.example.com",
            443,
            facts(
                "future.example.com",
                "Example Intermediate CA",
                NOW + 10 * d,
                NOW + 100 * d,
                "ECDSA P-256",
                &["future.example.com"],
            ),
            vec![int],
            "not yet valid",
            false,
        ),
        tls(
            "shared.example.com",
            443,
            shared.clone(),
            vec![],
            "trusted",
            false,
        ),
        {
            // The key beside the file is readable by everyone: the key audit's critical case.
            use crate::model::keyaudit::{KeyFinding, Severity};
            let mut r = file("/etc/nginx/certs/shared.pem", shared);
            r.key_findings = vec![KeyFinding::new(
                "key_readable_by_others",
                Severity::Critical,
                "unencrypted private key readable by others (mode 0644)",
                Some("/etc/nginx/certs/shared.key".to_owned()),
            )];
            r
        },
        Record::new(SourceKind::TLS, "down.example.com:443".into(), NOW)
            .with_error("connection refused (10.0.0.9:443)"),
        Record::new(SourceKind::FILE, "/etc/ssl/private/broken.pem".into(), NOW)
            .with_error("line 1: truncated PEM block (BEGIN CERTIFICATE has no matching END)"),
    ]
}

/// `n` synthetic records spread over two years, for benchmarks (deterministic).
pub fn synthetic_records(n: usize) -> Vec<Record> {
    let issuers = [
        "Example Intermediate CA",
        "Let's Encrypt R11",
        "Internal Mesh CA",
        "DigiCert G2",
    ];
    (0..n)
        .map(|i| {
            let days = (i as i64 * 7919) % 760 - 30;
            let cn = format!("svc-{i:06}.prod.example.com");
            let issuer = issuers[i % issuers.len()];
            let c = facts(
                &cn,
                issuer,
                NOW - 90 * DAY,
                NOW + days * DAY,
                if i % 5 == 0 {
                    "RSA 2048"
                } else {
                    "ECDSA P-256"
                },
                &[&cn],
            );
            if i % 3 == 0 {
                file(&format!("/etc/ssl/fleet/{i:06}.pem"), c)
            } else {
                tls(
                    &format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255),
                    443,
                    c,
                    vec![],
                    "trusted",
                    false,
                )
            }
        })
        .collect()
}

/// The events of one complete round of a source (kind + instance) that observed `records`.
pub fn round(
    kind: crate::model::SourceKind,
    instance: &str,
    records: Vec<Record>,
) -> Vec<crate::sources::SourceEvent> {
    use crate::sources::{RoundEnd, SourceEvent, SourceId};
    let source = std::sync::Arc::new(SourceId::new(kind, instance));
    let mut evs = vec![
        SourceEvent::Started {
            source: source.clone(),
            full: true,
        },
        SourceEvent::Planned {
            source: source.clone(),
            total: records.len(),
        },
    ];
    evs.extend(records.into_iter().map(|record| SourceEvent::Observed {
        source: source.clone(),
        record,
    }));
    evs.push(SourceEvent::Finished {
        source,
        full: true,
        end: RoundEnd::complete(),
    });
    evs
}

/// The sample fleet as the rounds of its sources (`tls` and `file`).
pub fn sample_events() -> Vec<crate::sources::SourceEvent> {
    let (tls, files): (Vec<Record>, Vec<Record>) = sample_records()
        .into_iter()
        .partition(|r| r.source == SourceKind::TLS);
    let mut evs = round(SourceKind::TLS, "", tls);
    evs.extend(round(SourceKind::FILE, "", files));
    evs
}
