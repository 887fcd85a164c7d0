//! The public half of a private key read from its DER structure alone: the RSA modulus of a
//! PKCS#1 or PKCS#8 RSA key, the EC point a SEC1 key (bare or inside PKCS#8) carries. No
//! arithmetic: parsing an RSA key with the `rsa` crate validates it and precomputes its CRT
//! values, which costs far more than the comparison it serves when every `tls.key` of a
//! cluster is matched with its certificate. Keys whose DER does not carry their public half
//! (an EC key without its optional `publicKey`, Ed25519) are left to the caller.

const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// One DER TLV: (tag, content, what follows). Definite lengths only, as DER requires.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *data.first()?;
    let first = *data.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in data.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    Some((tag, data.get(hdr..end)?, data.get(end..)?))
}

/// The content of a SEQUENCE that is the whole of `data`.
fn sequence(data: &[u8]) -> Option<&[u8]> {
    match tlv(data)? {
        (0x30, content, _) => Some(content),
        _ => None,
    }
}

fn unsigned(int: &[u8]) -> Vec<u8> {
    let start = int.iter().position(|b| *b != 0).unwrap_or(int.len());
    int[start..].to_vec()
}

/// PKCS#1 `RSAPrivateKey`: the modulus.
pub fn rsa_pkcs1(der: &[u8]) -> Option<Vec<u8>> {
    let body = sequence(der)?;
    let (0x02, _version, rest) = tlv(body)? else {
        return None;
    };
    let (0x02, modulus, _) = tlv(rest)? else {
        return None;
    };
    Some(unsigned(modulus))
}

/// SEC1 `ECPrivateKey`: the public point of its optional `[1] publicKey`.
pub fn ec_sec1(der: &[u8]) -> Option<Vec<u8>> {
    let body = sequence(der)?;
    let (0x02, _version, mut rest) = tlv(body)? else {
        return None;
    };
    let (0x04, _secret, r) = tlv(rest)? else {
        return None;
    };
    rest = r;
    while !rest.is_empty() {
        let (tag, content, r) = tlv(rest)?;
        if tag == 0xa1 {
            let (0x03, bits, _) = tlv(content)? else {
                return None;
            };
            // The first byte counts the unused bits (0 for a point).
            return bits.get(1..).map(<[u8]>::to_vec);
        }
        rest = r;
    }
    None
}

/// PKCS#8 `PrivateKeyInfo` of an RSA or EC key: its public half, as above.
pub fn pkcs8(der: &[u8]) -> Option<Vec<u8>> {
    let body = sequence(der)?;
    let (0x02, _version, rest) = tlv(body)? else {
        return None;
    };
    let (0x30, alg, rest) = tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = tlv(alg)? else {
        return None;
    };
    let (0x04, key, _) = tlv(rest)? else {
        return None;
    };
    match oid {
        RSA_ENCRYPTION => rsa_pkcs1(key),
        EC_PUBLIC_KEY => ec_sec1(key),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_and_rsa_public_halves_match_what_the_certificate_carries() {
        use rsa::pkcs8::EncodePrivateKey as _;
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
        ] {
            let key = rcgen::KeyPair::generate_for(alg).unwrap();
            let cert = rcgen::CertificateParams::new(vec!["a.test".to_owned()])
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let facts = crate::model::CertFacts::from_der(cert.der()).unwrap();
            assert_eq!(
                pkcs8(&key.serialize_der()),
                super::super::atrest::cert_public(&facts)
            );
        }
        let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let der = rsa.to_pkcs8_der().unwrap();
        let n = {
            use rsa::traits::PublicKeyParts as _;
            rsa.n().to_bytes_be()
        };
        assert_eq!(pkcs8(der.as_bytes()), Some(n.clone()));
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        assert_eq!(rsa_pkcs1(rsa.to_pkcs1_der().unwrap().as_bytes()), Some(n));
    }

    #[test]
    fn truncated_or_foreign_der_gives_nothing_and_never_panics() {
        let key = rcgen::KeyPair::generate().unwrap().serialize_der();
        for cut in 0..key.len() {
            let _ = pkcs8(&key[..cut]);
        }
        assert_eq!(pkcs8(&key[..key.len() / 2]), None);
        assert_eq!(pkcs8(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
        assert_eq!(pkcs8(b"not der"), None);
        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        assert_eq!(pkcs8(&ed.serialize_der()), None, "Ed25519: left to ring");
    }
}
