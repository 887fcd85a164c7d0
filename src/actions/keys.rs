//! New private keys, of the same type as the key they replace. One place for every action
//! (Secret rotation, ACME renewal, re-issue from a PKI): ECDSA P-256/P-384 and Ed25519 with
//! ring, RSA with the `rsa` crate (signed with ring), generated on the blocking pool because
//! RSA takes a while.

use rustls_pki_types::PrivatePkcs8KeyDer;

/// The type of a new private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    /// RSA with this many bits.
    Rsa(usize),
}

impl KeyType {
    /// From a key description as `CertFacts::key` gives it (`ECDSA P-256`, `RSA 2048`...).
    pub fn from_description(key: &str) -> Result<KeyType, String> {
        match key {
            "ECDSA P-256" => Ok(KeyType::EcdsaP256),
            "ECDSA P-384" => Ok(KeyType::EcdsaP384),
            "Ed25519" => Ok(KeyType::Ed25519),
            "RSA 2048" => Ok(KeyType::Rsa(2048)),
            "RSA 3072" => Ok(KeyType::Rsa(3072)),
            "RSA 4096" => Ok(KeyType::Rsa(4096)),
            other => Err(format!(
                "cannot make a new {other} key (ECDSA P-256/P-384, Ed25519 and RSA 2048/3072/4096 are supported)"
            )),
        }
    }

    /// As `CertFacts::key` describes it.
    pub fn describe(self) -> String {
        match self {
            KeyType::EcdsaP256 => "ECDSA P-256".to_owned(),
            KeyType::EcdsaP384 => "ECDSA P-384".to_owned(),
            KeyType::Ed25519 => "Ed25519".to_owned(),
            KeyType::Rsa(bits) => format!("RSA {bits}"),
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa(_))
    }
}

/// A new key pair of the type (blocking: RSA takes seconds).
pub fn generate(kind: KeyType) -> Result<rcgen::KeyPair, String> {
    match kind {
        KeyType::EcdsaP256 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        KeyType::EcdsaP384 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        KeyType::Ed25519 => rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519),
        KeyType::Rsa(bits) => {
            use rsa::pkcs8::EncodePrivateKey as _;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
                .map_err(|e| format!("RSA key generation: {e}"))?;
            let der = key
                .to_pkcs8_der()
                .map_err(|e| format!("RSA key encoding: {e}"))?;
            let der = PrivatePkcs8KeyDer::from(der.as_bytes().to_vec());
            return rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| format!("RSA key: {e}"));
        }
    }
    .map_err(|e| format!("key generation: {e}"))
}

/// [`generate`] on the blocking pool, so the async threads stay free.
pub async fn generate_off_thread(kind: KeyType) -> Result<rcgen::KeyPair, String> {
    tokio::task::spawn_blocking(move || generate(kind))
        .await
        .map_err(|e| format!("key generation task: {e}"))?
}

/// True when `key_pem` is the private key of the certificate `cert_der`.
pub fn key_matches(cert_der: &[u8], key_pem: &str) -> bool {
    use rcgen::PublicKeyData as _;
    use x509_parser::prelude::FromDer as _;
    let Ok(k) = rcgen::KeyPair::from_pem(key_pem) else {
        return false;
    };
    let Ok((_, x)) = x509_parser::certificate::X509Certificate::from_der(cert_der) else {
        return false;
    };
    x.public_key().subject_public_key.data.as_ref() == k.der_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_round_trip_and_unknown_ones_say_what_is_supported() {
        for k in [
            "ECDSA P-256",
            "ECDSA P-384",
            "Ed25519",
            "RSA 2048",
            "RSA 4096",
        ] {
            assert_eq!(
                KeyType::from_description(k).map(KeyType::describe),
                Ok(k.to_owned())
            );
        }
        let e = KeyType::from_description("ECDSA P-521").expect_err("P-521");
        assert!(e.contains("P-521") && e.contains("supported"), "{e}");
    }

    #[tokio::test]
    async fn generated_keys_have_the_type_asked_for() {
        let k = generate_off_thread(KeyType::EcdsaP384).await.expect("key");
        assert_eq!(k.algorithm(), &rcgen::PKCS_ECDSA_P384_SHA384);
        let k = generate_off_thread(KeyType::Rsa(2048)).await.expect("rsa");
        assert_eq!(k.algorithm(), &rcgen::PKCS_RSA_SHA256);
    }
}
