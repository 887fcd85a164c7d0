//! A tolerant PEM scanner: several blocks per file, text and headers between blocks, CRLF,
//! and a clear error for a truncated block or bad base64. Private keys are recognised so
//! they can be skipped; their bytes are never decoded, copied or printed.

use base64::Engine as _;

/// What one PEM block was.
#[derive(Debug, PartialEq, Eq)]
pub enum PemItem {
    /// DER bytes of a certificate block.
    Certificate(Vec<u8>),
    /// A private key block (skipped, contents untouched).
    PrivateKey,
    /// Some other block (CSR, CRL, public key, parameters...).
    Other(String),
    /// A certificate block that could not be decoded; the text says why.
    Broken(String),
}

/// True when the bytes contain a PEM armour line.
pub fn looks_like_pem(data: &[u8]) -> bool {
    find(data, b"-----BEGIN ").is_some()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_cert_label(label: &str) -> bool {
    matches!(
        label,
        "CERTIFICATE" | "X509 CERTIFICATE" | "TRUSTED CERTIFICATE"
    )
}

fn is_key_label(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

/// Scan every PEM block in `data`.
pub fn scan(data: &[u8]) -> Vec<PemItem> {
    let mut items = Vec::new();
    let mut pos = 0;
    let mut b64 = Vec::with_capacity(2048);
    // Line numbers are counted incrementally so a large bundle stays linear.
    let (mut counted_to, mut line_no) = (0, 1);
    while let Some(off) = find(&data[pos..], b"-----BEGIN ") {
        let begin = pos + off;
        line_no += data[counted_to..begin]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = begin;
        let after = begin + b"-----BEGIN ".len();
        let Some(label_end) = find(&data[after..], b"-----").map(|i| after + i) else {
            items.push(PemItem::Broken(format!(
                "line {line_no}: unterminated BEGIN line"
            )));
            break;
        };
        let label = String::from_utf8_lossy(&data[after..label_end])
            .trim()
            .to_owned();
        let body_start = label_end + 5;
        let end_marker = format!("-----END {label}-----");
        let Some(end_off) = find(&data[body_start..], end_marker.as_bytes()) else {
            if is_key_label(&label) {
                items.push(PemItem::PrivateKey);
            } else if is_cert_label(&label) {
                items.push(PemItem::Broken(format!(
                    "line {line_no}: truncated PEM block (BEGIN {label} has no matching END)"
                )));
            } else {
                items.push(PemItem::Other(label));
            }
            break;
        };
        let body_end = body_start + end_off;
        pos = body_end + end_marker.len();
        if is_key_label(&label) {
            items.push(PemItem::PrivateKey);
            continue;
        }
        if !is_cert_label(&label) {
            items.push(PemItem::Other(label));
            continue;
        }
        b64.clear();
        let body = &data[body_start..body_end];
        for line in body.split(|&b| b == b'\n') {
            // RFC 1421 headers ("Proc-Type: ...") carry a colon and are not base64.
            if line.contains(&b':') {
                continue;
            }
            b64.extend(line.iter().copied().filter(|b| !b.is_ascii_whitespace()));
        }
        match base64::engine::general_purpose::STANDARD.decode(&b64) {
            Ok(der) if !der.is_empty() => items.push(PemItem::Certificate(der)),
            Ok(_) => items.push(PemItem::Broken(format!(
                "line {line_no}: empty {label} block"
            ))),
            Err(e) => items.push(PemItem::Broken(format!(
                "line {line_no}: invalid base64 in {label} block: {e}"
            ))),
        }
    }
    items
}

/// Parse a PEM bundle into certificates, in order, and the first problem met (a block that
/// does not parse, a broken block, text with no certificate in it).
pub fn parse_chain(pem: &str) -> (Vec<std::sync::Arc<crate::model::CertFacts>>, Option<String>) {
    let mut certs = Vec::new();
    let mut problem = None;
    for item in scan(pem.as_bytes()) {
        match item {
            PemItem::Certificate(der) => match crate::model::CertFacts::from_der(&der) {
                Ok(c) => certs.push(std::sync::Arc::new(c)),
                Err(e) => {
                    problem.get_or_insert_with(|| e.to_string());
                }
            },
            PemItem::Broken(why) => {
                problem.get_or_insert(why);
            }
            PemItem::PrivateKey | PemItem::Other(_) => {}
        }
    }
    if certs.is_empty() && problem.is_none() && !pem.trim().is_empty() {
        problem = Some("no PEM certificate in it".to_owned());
    }
    (certs, problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_text_keys_and_other_blocks_and_handles_crlf() {
        let data = b"Bag Attributes\r\n-----BEGIN CERTIFICATE-----\r\nAQID\r\n-----END CERTIFICATE-----\r\nsome text\n-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n-----BEGIN X509 CRL-----\nAA==\n-----END X509 CRL-----\n-----BEGIN CERTIFICATE-----\nBAUG\n-----END CERTIFICATE-----\n";
        let items = scan(data);
        assert_eq!(
            items,
            vec![
                PemItem::Certificate(vec![1, 2, 3]),
                PemItem::PrivateKey,
                PemItem::Other("X509 CRL".into()),
                PemItem::Certificate(vec![4, 5, 6]),
            ]
        );
    }

    #[test]
    fn truncated_and_bad_base64_blocks_are_broken_with_line_numbers() {
        let items = scan(b"x\n-----BEGIN CERTIFICATE-----\nAQID\n");
        assert!(
            matches!(&items[0], PemItem::Broken(m) if m.contains("line 2") && m.contains("truncated"))
        );
        let items = scan(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
        assert!(matches!(&items[0], PemItem::Broken(m) if m.contains("invalid base64")));
    }

    #[test]
    fn a_truncated_key_is_still_only_a_key() {
        assert_eq!(
            scan(b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE"),
            vec![PemItem::PrivateKey]
        );
    }
}
