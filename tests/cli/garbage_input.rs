//! Mangled input never panics: thousands of deterministic mutations of valid PEM and DER
//! (truncations, bit flips, spliced markers) through the file reader always give rows.

use certdeck::sources::file::records_from_bytes;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut p =
        rcgen::CertificateParams::new(vec!["fuzz.test".to_owned(), "spiffe-less.test".to_owned()])
            .expect("p");
    p.distinguished_name
        .push(rcgen::DnType::CommonName, "fuzz.test");
    let c = p.self_signed(&key).expect("cert");
    (
        format!("{}{}", c.pem(), c.pem()).into_bytes(),
        c.der().to_vec(),
    )
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 => d.truncate(rng.below(d.len())),
            1 => {
                let i = rng.below(d.len());
                if let Some(b) = d.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            2 => {
                let i = rng.below(d.len());
                let j = rng.below(d.len());
                d.insert(i.min(d.len()), d.get(j).copied().unwrap_or(0));
            }
            3 => {
                let i = rng.below(d.len());
                let marker: &[u8] = [
                    b"-----BEGIN CERTIFICATE-----\n".as_slice(),
                    b"-----END CERTIFICATE-----",
                    b"\r\n",
                    b"\x30\x82\xff\xff",
                ][rng.below(4)];
                let at = i.min(d.len());
                d.splice(at..at, marker.iter().copied());
            }
            _ => {
                let i = rng.below(d.len());
                let n = rng.below(16).min(d.len() - i.min(d.len()));
                d.drain(i.min(d.len())..i.min(d.len()) + n);
            }
        }
    }
    d
}

#[test]
fn mutated_pem_and_der_never_panic_and_always_give_a_row_when_named() {
    let (pem, der) = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut errors = 0;
    let mut read = 0;
    for i in 0..6000 {
        let seed = if i % 2 == 0 { &pem } else { &der };
        let data = mutate(&mut rng, seed);
        let rows = records_from_bytes("mutated.pem", &data, true, 0);
        assert!(
            !rows.is_empty(),
            "a named file always gives a row (case {i})"
        );
        for r in &rows {
            assert!(
                r.cert.is_some() != r.error.is_some(),
                "a file row is a certificate or an error, never both or neither"
            );
            if let Some(c) = &r.cert {
                assert_eq!(c.sha256.len(), 64);
                read += 1;
            } else {
                errors += 1;
            }
        }
    }
    assert!(
        errors > 1000,
        "most mutations are caught as errors ({errors})"
    );
    assert!(
        read > 100,
        "some mutations leave a readable certificate ({read})"
    );
}
