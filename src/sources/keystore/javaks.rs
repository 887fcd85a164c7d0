//! The Java keystore layout shared by JKS (`FEEDFEED`) and JCEKS (`CECECECE`): entries of
//! private keys (with their certificate chains, stored in clear), trusted certificates, and in
//! JCEKS secret keys (a serialised Java object, which is skipped: its end is found by parsing
//! the remaining entries so that they end exactly at the trailing digest). The keyed SHA-1
//! digest over the whole file checks the password and the file's integrity.
//!
//! No crate reads JCEKS; the `jks` crate reads JKS with a password, and this reader serves JCEKS
//! and JKS files opened without one (whose certificates are readable but unverified, as
//! `keytool -list` shows them).

use sha1::{Digest as _, Sha1};

pub const JKS_MAGIC: u32 = 0xFEED_FEED;
pub const JCEKS_MAGIC: u32 = 0xCECE_CECE;
const DIGEST_LEN: usize = 20;
/// How far past a secret-key entry the next entry is looked for.
const RESYNC_WINDOW: usize = 1024 * 1024;

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawEntry {
    /// A private key entry: its certificate chain (DER, leaf first). The key is not decrypted.
    PrivateKey {
        alias: String,
        chain: Vec<Vec<u8>>,
    },
    Trusted {
        alias: String,
        cert: Vec<u8>,
    },
    /// A JCEKS secret-key entry (skipped).
    SecretKey {
        alias: String,
    },
}

/// Why the layout could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutError {
    /// The file ends before its entries and digest do.
    Truncated,
    Malformed(String),
}

struct Cur<'a> {
    d: &'a [u8],
    pos: usize,
    /// Where the entries must end (the digest starts here).
    end: usize,
}

impl Cur<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LayoutError> {
        if self.end.saturating_sub(self.pos) < n {
            return Err(LayoutError::Truncated);
        }
        let s = &self.d[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, LayoutError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LayoutError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, LayoutError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
    fn utf(&mut self) -> Result<String, LayoutError> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec())
            .map_err(|_| LayoutError::Malformed("alias is not UTF-8".into()))
    }
    fn cert(&mut self, version: u32) -> Result<Vec<u8>, LayoutError> {
        if version == 2 {
            let ty = self.utf()?;
            if ty != "X.509" {
                return Err(LayoutError::Malformed(format!("certificate type {ty}")));
            }
        }
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
}

/// The keyed digest of a Java keystore: SHA-1 over the password (UTF-16BE), the whitener
/// "Mighty Aphrodite", and every byte before the digest.
pub fn digest_matches(data: &[u8], password: &str) -> bool {
    if data.len() < DIGEST_LEN {
        return false;
    }
    let (body, stored) = data.split_at(data.len() - DIGEST_LEN);
    let mut h = Sha1::new();
    let mut pw: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    h.update(&pw);
    pw.fill(0);
    h.update(b"Mighty Aphrodite");
    h.update(body);
    h.finalize().as_slice() == stored
}

/// Magic of a Java keystore file, if it is one.
pub fn magic(data: &[u8]) -> Option<u32> {
    let m = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
    (m == JKS_MAGIC || m == JCEKS_MAGIC).then_some(m)
}

/// Read every entry (in file order), without checking the digest.
pub fn entries(data: &[u8]) -> Result<Vec<RawEntry>, LayoutError> {
    if data.len() < 12 + DIGEST_LEN {
        return Err(LayoutError::Truncated);
    }
    let mut c = Cur {
        d: data,
        pos: 0,
        end: data.len() - DIGEST_LEN,
    };
    let magic = c.u32()?;
    let version = c.u32()?;
    if version != 1 && version != 2 {
        return Err(LayoutError::Malformed(format!("unknown version {version}")));
    }
    let count = c.u32()? as usize;
    let mut out = Vec::new();
    read_entries(&mut c, magic, version, count, &mut out)?;
    if c.pos != c.end {
        return Err(LayoutError::Malformed(format!(
            "{} bytes after the last entry",
            c.end - c.pos
        )));
    }
    Ok(out)
}

fn read_entries(
    c: &mut Cur<'_>,
    magic: u32,
    version: u32,
    count: usize,
    out: &mut Vec<RawEntry>,
) -> Result<(), LayoutError> {
    for i in 0..count {
        let tag = c.u32()?;
        let alias = c.utf()?;
        let _created_ms = c.u64()?;
        match tag {
            1 => {
                let n = c.u32()? as usize;
                c.take(n)?;
                let certs = c.u32()? as usize;
                let mut chain = Vec::new();
                for _ in 0..certs {
                    chain.push(c.cert(version)?);
                }
                out.push(RawEntry::PrivateKey { alias, chain });
            }
            2 => out.push(RawEntry::Trusted {
                alias,
                cert: c.cert(version)?,
            }),
            3 if magic == JCEKS_MAGIC => {
                out.push(RawEntry::SecretKey { alias });
                let left = count - i - 1;
                return resync(c, magic, version, left, out);
            }
            t => return Err(LayoutError::Malformed(format!("unknown entry tag {t}"))),
        }
    }
    Ok(())
}

/// After a secret-key entry (a serialised object of unstated length): the next entries start
/// at the first position from which they parse to exactly the digest.
fn resync(
    c: &mut Cur<'_>,
    magic: u32,
    version: u32,
    left: usize,
    out: &mut Vec<RawEntry>,
) -> Result<(), LayoutError> {
    if left == 0 {
        c.pos = c.end;
        return Ok(());
    }
    let start = c.pos;
    let stop = c.end.min(start.saturating_add(RESYNC_WINDOW));
    for p in start..stop {
        // An entry starts with a tag 1..=3 (big-endian u32).
        if c.d
            .get(p..p + 4)
            .is_none_or(|t| t[..3] != [0, 0, 0] || !(1..=3).contains(&t[3]))
        {
            continue;
        }
        let mut probe = Cur {
            d: c.d,
            pos: p,
            end: c.end,
        };
        let mut got = Vec::new();
        if read_entries(&mut probe, magic, version, left, &mut got).is_ok() && probe.pos == c.end {
            out.extend(got);
            c.pos = c.end;
            return Ok(());
        }
    }
    Err(LayoutError::Malformed(
        "the entries after a secret-key entry could not be found".into(),
    ))
}
