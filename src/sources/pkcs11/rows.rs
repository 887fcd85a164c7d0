//! What a module read gave, as plain data, and the records made from it (pure): one row per
//! certificate object at its RFC 7512 URI, linked to the key object with the same `CKA_ID`,
//! its key findings (`key_in_hsm` when the private key is on the token), and the token-level
//! problems for the health line (wrong PIN, locked PIN, unreadable objects).

use std::sync::Arc;

use serde_json::json;

use super::{hex, Pkcs11Settings, KIND};
use crate::model::keyaudit::{KeyFinding, Severity};
use crate::model::{CertFacts, Extra, Record};
use crate::sources::{Problem, ProblemKind};

/// What one read of a module saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleRead {
    /// `Implementation of PKCS11 2.6 by SoftHSM, Cryptoki 2.40`, from C_GetInfo.
    pub library: Option<String>,
    /// Slots whose token is not initialised (skipped).
    pub uninitialised_slots: Vec<u64>,
    /// Slots whose token info could not be read, with why.
    pub unreadable_slots: Vec<String>,
    /// Every initialised token seen (slot, label), read or not.
    pub seen: Vec<(u64, String)>,
    /// The tokens read (those the filter selects).
    pub tokens: Vec<TokenRead>,
}

/// One initialised token and its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRead {
    pub slot: u64,
    pub label: String,
    pub serial: String,
    pub model: String,
    pub manufacturer: String,
    pub login: Login,
    pub certs: Vec<CertObject>,
    pub keys: Vec<KeyObject>,
    /// Objects could not be listed or read (the rows read before it are kept).
    pub problem: Option<String>,
}

/// How the session stood: logged in or why not. `from`: where the PIN came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// No PIN configured: public objects only.
    NoPin,
    /// The token needs no login: every object is visible.
    NotRequired,
    LoggedIn,
    /// CKR_PIN_INCORRECT.
    WrongPin {
        from: String,
    },
    /// This PIN was refused before and has not changed: not tried again.
    NotRetried {
        from: String,
    },
    /// The token says the user PIN is locked (or C_Login said CKR_PIN_LOCKED).
    Locked {
        from: String,
    },
    /// The PIN could not be read from its source.
    PinUnreadable {
        why: String,
    },
    /// Any other refusal.
    Failed {
        from: String,
        why: String,
    },
}

impl Login {
    /// True when private objects are visible.
    pub fn sees_private(&self) -> bool {
        matches!(self, Login::LoggedIn | Login::NotRequired)
    }

    /// One line for details: how the token was read.
    pub fn describe(&self) -> String {
        match self {
            Login::NoPin => "not logged in (no PIN configured): public objects only".to_owned(),
            Login::NotRequired => "the token needs no login".to_owned(),
            Login::LoggedIn => "logged in as the user".to_owned(),
            Login::WrongPin { from } => {
                format!("wrong PIN (from {from}): public objects only")
            }
            Login::NotRetried { from } => format!(
                "the PIN from {from} was refused before and is not tried again until it changes: public objects only"
            ),
            Login::Locked { .. } => "the user PIN is locked: public objects only".to_owned(),
            Login::PinUnreadable { why } => {
                format!("PIN not readable ({why}): public objects only")
            }
            Login::Failed { why, .. } => format!("login failed ({why}): public objects only"),
        }
    }

    /// The JSON `login` value.
    pub fn as_str(&self) -> &'static str {
        match self {
            Login::NoPin => "no_pin",
            Login::NotRequired => "not_required",
            Login::LoggedIn => "logged_in",
            Login::WrongPin { .. } => "wrong_pin",
            Login::NotRetried { .. } => "wrong_pin_not_retried",
            Login::Locked { .. } => "pin_locked",
            Login::PinUnreadable { .. } => "pin_unreadable",
            Login::Failed { .. } => "login_failed",
        }
    }

    /// The health problem this login state is, if any (its message follows the token names).
    fn problem(&self) -> Option<(ProblemKind, String)> {
        Some(match self {
            Login::NoPin | Login::NotRequired | Login::LoggedIn => return None,
            Login::WrongPin { from } => (
                ProblemKind::Unauthorized,
                format!("wrong PIN (CKR_PIN_INCORRECT; PIN from {from}): certificates listed without their private keys"),
            ),
            Login::NotRetried { from } => (
                ProblemKind::Unauthorized,
                format!("wrong PIN (from {from}), not tried again until it changes: certificates listed without their private keys"),
            ),
            Login::Locked { from } => (
                ProblemKind::Unauthorized,
                format!("the user PIN is locked (PIN from {from} not tried): certificates listed without their private keys"),
            ),
            Login::PinUnreadable { why } => (ProblemKind::Config, format!("PIN: {why}")),
            Login::Failed { from, why } => (
                ProblemKind::Unauthorized,
                format!("login with the PIN from {from} failed: {why}"),
            ),
        })
    }
}

/// Token problems with the same message, said once: `tokens 'a', 'b': wrong PIN (…)`; just
/// the message when the instance reads one token named by its label (its name says which).
fn grouped(problems: Vec<(ProblemKind, String, String)>, name_tokens: bool) -> Vec<Problem> {
    let mut groups: Vec<(ProblemKind, String, Vec<String>)> = Vec::new();
    for (kind, msg, token) in problems {
        match groups.iter_mut().find(|(k, m, _)| *k == kind && *m == msg) {
            Some(g) => g.2.push(token),
            None => groups.push((kind, msg, vec![token])),
        }
    }
    groups
        .into_iter()
        .map(|(kind, msg, tokens)| {
            let names = tokens
                .iter()
                .map(|t| format!("'{t}'"))
                .collect::<Vec<_>>()
                .join(", ");
            let which = if tokens.len() == 1 { "token" } else { "tokens" };
            if name_tokens {
                Problem::new(kind, format!("{which} {names}: {msg}"))
            } else {
                Problem::new(kind, msg)
            }
        })
        .collect()
}

/// A certificate object (`CKO_CERTIFICATE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertObject {
    pub label: Option<String>,
    pub id: Vec<u8>,
    /// `CKA_VALUE`: the DER, when readable.
    pub value: Option<Vec<u8>>,
    /// `CKA_CERTIFICATE_TYPE` as cryptoki names it.
    pub cert_type: Option<String>,
    /// An X.509 public-key certificate (others, such as attribute certificates, are skipped).
    pub x509: bool,
    pub private: bool,
}

/// Private or public key object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeyClass {
    #[default]
    Private,
    Public,
}

/// A key object (`CKO_PRIVATE_KEY`, `CKO_PUBLIC_KEY`): attributes only, never a key value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyObject {
    pub class: KeyClass,
    pub label: Option<String>,
    pub id: Vec<u8>,
    pub key_type: Option<String>,
    pub sensitive: Option<bool>,
    pub extractable: Option<bool>,
    /// RSA: the modulus (public).
    pub modulus: Option<Vec<u8>>,
    /// EC: the point (public keys; DER OCTET STRING or raw).
    pub ec_point: Option<Vec<u8>>,
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// The EC point without its DER OCTET STRING wrapping, when it has one.
fn unwrap_octets(p: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = p.split_first()?;
    if tag != 0x04 {
        return None;
    }
    let (&l, rest) = rest.split_first()?;
    let (len, body) = if l < 0x80 {
        (l as usize, rest)
    } else {
        let n = (l & 0x7f) as usize;
        if n == 0 || n > 2 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize);
        (len, &rest[n..])
    };
    (body.len() == len).then_some(body)
}

impl KeyObject {
    /// Whether this key's public half is the certificate's: `None` when the token does not
    /// show it (an EC private key has no point attribute).
    pub fn matches(&self, cert_public: Option<&[u8]>) -> Option<bool> {
        let cp = cert_public?;
        if let Some(m) = &self.modulus {
            return Some(strip_zeros(m) == strip_zeros(cp));
        }
        let p = self.ec_point.as_deref()?;
        Some(p == cp || unwrap_octets(p) == Some(cp))
    }

    fn class_str(&self) -> &'static str {
        match self.class {
            KeyClass::Private => "private_key",
            KeyClass::Public => "public_key",
        }
    }

    fn describe(&self) -> String {
        let what = match self.class {
            KeyClass::Private => "private key object",
            KeyClass::Public => "public key object",
        };
        let mut s = format!("{what} {}", name(self.label.as_deref(), &self.id));
        let mut attrs = Vec::new();
        if let Some(t) = &self.key_type {
            attrs.push(t.clone());
        }
        match self.sensitive {
            Some(true) => attrs.push("sensitive".to_owned()),
            Some(false) => attrs.push("NOT sensitive".to_owned()),
            None => {}
        }
        match self.extractable {
            Some(true) => attrs.push("extractable".to_owned()),
            Some(false) => attrs.push("not extractable".to_owned()),
            None => {}
        }
        if !attrs.is_empty() {
            s.push_str(&format!(" ({})", attrs.join(", ")));
        }
        s
    }
}

/// `'web', id 01`, `no label, id 01`.
fn name(label: Option<&str>, id: &[u8]) -> String {
    let id = if id.is_empty() {
        "no id".to_owned()
    } else {
        format!("id {}", hex(id))
    };
    match label {
        Some(l) if !l.is_empty() => format!("'{l}', {id}"),
        _ => format!("no label, {id}"),
    }
}

/// RFC 7512 percent-encoding: unreserved characters stay, everything else is `%XX`.
fn pct(s: &[u8], keep_slash: bool) -> String {
    let mut out = String::new();
    for &b in s {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The RFC 7512 URI of an object (`pkcs11:token=…;serial=…;object=…;id=%01;type=cert
/// ?module-path=…`): the row's location, stable across runs.
pub fn object_uri(module: &str, t: &TokenRead, label: Option<&str>, id: &[u8], ty: &str) -> String {
    let mut s = format!(
        "pkcs11:token={};serial={}",
        pct(t.label.as_bytes(), false),
        pct(t.serial.as_bytes(), false)
    );
    if let Some(l) = label {
        s.push_str(&format!(";object={}", pct(l.as_bytes(), false)));
    }
    if !id.is_empty() {
        s.push_str(";id=");
        for b in id {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.push_str(&format!(
        ";type={ty}?module-path={}",
        pct(module.as_bytes(), true)
    ));
    s
}

/// The row's location: the module, then the token and the object, so that what tells rows
/// apart (object label and id) ends the line, where a narrow column keeps it
/// (`/usr/lib/softhsm/libsofthsm2.so#token=web;serial=12bf…;object=web;id=01`).
pub fn object_location(module: &str, t: &TokenRead, label: Option<&str>, id: &[u8]) -> String {
    let mut s = format!("{module}#token={}", t.label);
    if !t.serial.is_empty() {
        s.push_str(&format!(";serial={}", t.serial));
    }
    if let Some(l) = label {
        s.push_str(&format!(";object={l}"));
    }
    if !id.is_empty() {
        s.push_str(&format!(";id={}", hex(id)));
    }
    crate::model::text::clean(&s).into_owned()
}

/// The token as details show it.
fn token_line(t: &TokenRead) -> String {
    let mut s = format!("'{}'", t.label);
    if !t.serial.is_empty() {
        s.push_str(&format!(", serial {}", t.serial));
    }
    s.push_str(&format!(", slot {}", t.slot));
    let maker = [t.manufacturer.as_str(), t.model.as_str()]
        .iter()
        .filter(|x| !x.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    if !maker.is_empty() {
        s.push_str(&format!(" ({maker})"));
    }
    s
}

/// The key object a certificate is linked to: a private key with the same id first, else a
/// public key with the same id. Certificates without an id link to nothing.
fn linked<'a>(t: &'a TokenRead, id: &[u8]) -> Option<&'a KeyObject> {
    if id.is_empty() {
        return None;
    }
    let same = |c: KeyClass| t.keys.iter().find(|k| k.class == c && k.id == id);
    same(KeyClass::Private).or_else(|| same(KeyClass::Public))
}

/// Key findings of a certificate linked to `key` on token `t` (`key_uri`: the key's URI).
fn findings(
    t: &TokenRead,
    key: Option<&KeyObject>,
    matches: Option<bool>,
    key_uri: Option<String>,
) -> (Vec<KeyFinding>, bool) {
    let Some(k) = key else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let where_ = format!("HSM token '{}'", t.label);
    if matches == Some(false) {
        out.push(KeyFinding::new(
            "key_mismatch",
            Severity::Critical,
            format!(
                "the {} with this certificate's id does not match it",
                match k.class {
                    KeyClass::Private => "private key object",
                    KeyClass::Public => "public key object",
                }
            ),
            key_uri,
        ));
        return (out, false);
    }
    match k.class {
        KeyClass::Private => {
            out.push(KeyFinding::new(
                "key_in_hsm",
                Severity::Protected,
                format!(
                    "key in HSM: private key held on {where_} (object {})",
                    name(k.label.as_deref(), &k.id)
                ),
                key_uri.clone(),
            ));
            if k.sensitive == Some(false) {
                out.push(KeyFinding::new(
                    "key_hsm_not_sensitive",
                    Severity::Warning,
                    format!("the private key on {where_} is not sensitive: the token lets its value be read in clear"),
                    key_uri.clone(),
                ));
            }
            if k.extractable == Some(true) {
                out.push(KeyFinding::new(
                    "key_hsm_extractable",
                    Severity::Info,
                    format!(
                        "the private key on {where_} is extractable (it can be exported wrapped)"
                    ),
                    key_uri,
                ));
            }
            (out, true)
        }
        KeyClass::Public if !t.login.sees_private() => {
            out.push(KeyFinding::new(
                "key_in_hsm",
                Severity::Protected,
                format!(
                    "key in HSM: key pair on {where_} (public key object {}; the private key object is not visible without login)",
                    name(k.label.as_deref(), &k.id)
                ),
                key_uri,
            ));
            (out, true)
        }
        KeyClass::Public => {
            out.push(KeyFinding::new(
                "key_not_on_token",
                Severity::Info,
                format!(
                    "only a public key object with this id on {where_}: its private key is kept elsewhere"
                ),
                key_uri,
            ));
            (out, false)
        }
    }
}

/// Records and problems of one module read.
pub fn records(s: &Pkcs11Settings, read: &ModuleRead, now: i64) -> (Vec<Record>, Vec<Problem>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for t in &read.tokens {
        if let Some((kind, msg)) = t.login.problem() {
            problems.push((kind, msg, t.label.clone()));
        }
        if let Some(p) = &t.problem {
            problems.push((ProblemKind::Other, p.clone(), t.label.clone()));
        }
        let mut seen = std::collections::HashSet::new();
        for c in t.certs.iter().filter(|c| c.x509) {
            let base = object_location(&s.module, t, c.label.as_deref(), &c.id);
            let mut loc = base.clone();
            let mut n = 2;
            while !seen.insert(loc.clone()) {
                loc = format!("{base}~{n}");
                n += 1;
            }
            out.push(record(s, read, t, c, &loc, now));
        }
    }
    let mut problems = grouped(problems, s.filter.label.is_none());
    if s.filter.is_all() {
        // Reading every token: one whose info could not be read is missing from the rows.
        problems.extend(
            read.unreadable_slots
                .iter()
                .map(|u| Problem::new(ProblemKind::Other, u.clone())),
        );
    }
    (out, problems)
}

fn record(
    s: &Pkcs11Settings,
    read: &ModuleRead,
    t: &TokenRead,
    c: &CertObject,
    loc: &str,
    now: i64,
) -> Record {
    let what = format!("certificate object {}", name(c.label.as_deref(), &c.id));
    let parsed = match &c.value {
        None => Err(format!("{what}: CKA_VALUE is not readable")),
        Some(v) => CertFacts::from_der(v)
            .map_err(|e| format!("{what}: CKA_VALUE does not parse as an X.509 certificate: {e}")),
    };
    let cert = parsed.as_ref().ok().map(|f| Arc::new(f.clone()));
    let key = linked(t, &c.id);
    let cert_public = cert
        .as_deref()
        .and_then(crate::sources::keystore::atrest::cert_public);
    let matches = key.and_then(|k| k.matches(cert_public.as_deref()));
    let key_uri = key.map(|k| {
        object_uri(
            &s.module,
            t,
            k.label.as_deref(),
            &k.id,
            match k.class {
                KeyClass::Private => "private",
                KeyClass::Public => "public",
            },
        )
    });
    let (key_findings, in_hsm) = if cert.is_some() {
        findings(t, key, matches, key_uri.clone())
    } else {
        (Vec::new(), false)
    };
    let key_line = match key {
        Some(k) if in_hsm => format!("key in HSM: {}", k.describe()),
        Some(k) if matches == Some(false) => format!("{} (does NOT match)", k.describe()),
        Some(k) => k.describe(),
        None if c.id.is_empty() => "none linked (the certificate object has no CKA_ID)".to_owned(),
        None if t.login.sees_private() => {
            format!("no key object with id {} on the token", hex(&c.id))
        }
        None => format!(
            "no public key object with id {}; a private key would not be visible without login",
            hex(&c.id)
        ),
    };
    let mut details = vec![
        (
            "Module".to_owned(),
            match &read.library {
                Some(l) => format!("{} ({l})", s.module),
                None => s.module.clone(),
            },
        ),
        ("Token".to_owned(), token_line(t)),
        (
            "Object".to_owned(),
            format!(
                "certificate {}{}",
                name(c.label.as_deref(), &c.id),
                if c.private { ", private" } else { "" }
            ),
        ),
        ("Login".to_owned(), t.login.describe()),
        ("Key".to_owned(), key_line),
    ];
    let uri = object_uri(&s.module, t, c.label.as_deref(), &c.id, "cert");
    details.push(("URI".to_owned(), uri.clone()));
    let key_json = key.map(|k| {
        json!({
            "class": k.class_str(),
            "label": k.label,
            "id": hex(&k.id),
            "type": k.key_type,
            "sensitive": k.sensitive,
            "extractable": k.extractable,
            "matches_certificate": matches,
            "uri": key_uri,
        })
    });
    let extra = Extra {
        key: "pkcs11",
        json: json!({
            "module": s.module,
            "library": read.library,
            "slot": t.slot,
            "token": {
                "label": t.label,
                "serial": t.serial,
                "model": t.model,
                "manufacturer": t.manufacturer,
            },
            "object": {
                "label": c.label,
                "id": hex(&c.id),
                "private": c.private,
            },
            "uri": uri,
            "login": t.login.as_str(),
            "key_in_hsm": in_hsm,
            "key": key_json,
        }),
        details,
        note: in_hsm.then(|| "key in HSM".to_owned()),
    };
    let mut r = Record::from_store(KIND, loc, cert, Vec::new(), extra, now);
    r.key_findings = key_findings;
    if let Err(e) = parsed {
        r.error = Some(crate::model::text::clean(&e).into_owned());
    }
    r
}

/// The whole-module problem when nothing could be read: no initialised token, or none the
/// filter selects.
pub fn nothing_to_read(s: &Pkcs11Settings, read: &ModuleRead) -> Option<super::Pkcs11Error> {
    if !read.tokens.is_empty() {
        return None;
    }
    if read.seen.is_empty() {
        let mut slots = match read.uninitialised_slots.len() {
            0 => "no slot has a token".to_owned(),
            n => format!(
                "{n} slot{} with an uninitialised token",
                if n == 1 { "" } else { "s" }
            ),
        };
        for u in &read.unreadable_slots {
            slots.push_str(&format!("; {u}"));
        }
        return Some(super::Pkcs11Error::NoToken {
            path: s.module.clone(),
            slots,
        });
    }
    let mut seen = read
        .seen
        .iter()
        .map(|(slot, l)| format!("'{l}' in slot {slot}"))
        .collect::<Vec<_>>()
        .join(", ");
    for u in &read.unreadable_slots {
        seen.push_str(&format!("; {u}"));
    }
    Some(super::Pkcs11Error::TokenNotFound {
        path: s.module.clone(),
        wanted: s.filter.describe(),
        seen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::pkcs11::TokenFilter;

    fn cert(cn: &str) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![cn.to_owned()]).unwrap();
        let c = params.self_signed(&key).unwrap();
        (c.der().to_vec(), key)
    }

    fn settings() -> Pkcs11Settings {
        Pkcs11Settings {
            module: "/usr/lib/softhsm/libsofthsm2.so".into(),
            filter: TokenFilter::default(),
            pin: None,
            timeout: super::super::DEFAULT_TIMEOUT,
        }
    }

    fn token(login: Login, certs: Vec<CertObject>, keys: Vec<KeyObject>) -> TokenRead {
        TokenRead {
            slot: 7,
            label: "certdeck test".into(),
            serial: "12bf9b745da38cba".into(),
            model: "SoftHSM v2".into(),
            manufacturer: "SoftHSM project".into(),
            login,
            certs,
            keys,
            problem: None,
        }
    }

    fn cert_obj(label: &str, id: &[u8], der: Vec<u8>) -> CertObject {
        CertObject {
            label: Some(label.into()),
            id: id.to_vec(),
            value: Some(der),
            cert_type: Some("X_509".into()),
            x509: true,
            private: false,
        }
    }

    #[test]
    fn a_certificate_with_its_private_key_on_the_token_is_key_in_hsm() {
        let (der, kp) = cert("web.hsm.test");
        let point = kp.public_key_raw().to_vec();
        let (ca, _) = cert("ca.hsm.test");
        let key = KeyObject {
            class: KeyClass::Private,
            label: Some("web".into()),
            id: vec![1],
            key_type: Some("EC".into()),
            sensitive: Some(true),
            extractable: Some(false),
            modulus: None,
            ec_point: None,
        };
        let t = token(
            Login::LoggedIn,
            vec![cert_obj("web", &[1], der), cert_obj("ca", &[2], ca)],
            vec![key.clone()],
        );
        let read = ModuleRead {
            tokens: vec![t],
            ..Default::default()
        };
        let (recs, problems) = records(&settings(), &read, 0);
        assert!(problems.is_empty());
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0].location,
            "/usr/lib/softhsm/libsofthsm2.so#token=certdeck test;serial=12bf9b745da38cba;object=web;id=01"
        );
        assert_eq!(
            recs[0].extra.as_ref().unwrap().json["uri"],
            "pkcs11:token=certdeck%20test;serial=12bf9b745da38cba;object=web;id=%01;type=cert?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
        let f = &recs[0].key_findings;
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].code, f[0].severity),
            ("key_in_hsm", Severity::Protected)
        );
        assert!(f[0].location.as_deref().unwrap().contains("type=private"));
        let x = recs[0].extra.as_ref().unwrap();
        assert_eq!(x.json["key_in_hsm"], true);
        assert_eq!(x.note.as_deref(), Some("key in HSM"));
        assert!(recs[1].key_findings.is_empty());
        assert_eq!(recs[1].extra.as_ref().unwrap().json["key_in_hsm"], false);

        // A public key whose point is not the certificate's: a mismatch, not key in HSM.
        let other = cert("other").1.public_key_raw().to_vec();
        let public = KeyObject {
            class: KeyClass::Public,
            id: vec![1],
            ec_point: Some(other),
            ..Default::default()
        };
        assert_eq!(public.matches(Some(&point)), Some(false));
        let mut wrapped = vec![0x04, point.len() as u8];
        wrapped.extend(&point);
        let good = KeyObject {
            ec_point: Some(wrapped),
            ..public.clone()
        };
        assert_eq!(good.matches(Some(&point)), Some(true));
    }

    #[test]
    fn without_login_a_public_key_links_and_a_wrong_pin_is_a_problem() {
        let (der, _) = cert("web.hsm.test");
        let public = KeyObject {
            class: KeyClass::Public,
            label: Some("web".into()),
            id: vec![1],
            ..Default::default()
        };
        let t = token(
            Login::WrongPin {
                from: "environment variable PIN".into(),
            },
            vec![cert_obj("web", &[1], der)],
            vec![public],
        );
        let mut second = t.clone();
        second.label = "second".into();
        second.certs.clear();
        let read = ModuleRead {
            tokens: vec![t, second],
            ..Default::default()
        };
        let (recs, problems) = records(&settings(), &read, 0);
        assert_eq!(problems.len(), 1, "one message for both tokens");
        let unreadable = ModuleRead {
            unreadable_slots: vec!["slot 9: C_GetTokenInfo: CKR_DEVICE_ERROR".into()],
            ..read.clone()
        };
        let (_, more) = records(&settings(), &unreadable, 0);
        assert_eq!(more.len(), 2);
        assert_eq!(more[1].message, "slot 9: C_GetTokenInfo: CKR_DEVICE_ERROR");
        assert_eq!(problems[0].kind, ProblemKind::Unauthorized);
        assert!(
            problems[0]
                .message
                .starts_with("tokens 'certdeck test', 'second': wrong PIN"),
            "{}",
            problems[0].message
        );
        assert_eq!(recs[0].key_findings[0].code, "key_in_hsm");
        assert!(recs[0].key_findings[0]
            .message
            .contains("not visible without login"));
    }

    #[test]
    fn a_value_that_does_not_parse_is_an_error_row_and_duplicates_get_distinct_locations() {
        let t = token(
            Login::NoPin,
            vec![
                cert_obj("junk", &[3], b"\x30\x03garbage".to_vec()),
                cert_obj("junk", &[3], b"\x30\x03garbage".to_vec()),
            ],
            Vec::new(),
        );
        let read = ModuleRead {
            tokens: vec![t],
            ..Default::default()
        };
        let (recs, _) = records(&settings(), &read, 0);
        assert_eq!(recs.len(), 2);
        assert!(recs[0].cert.is_none());
        assert!(recs[0].error.as_deref().unwrap().contains("does not parse"));
        assert_ne!(recs[0].location, recs[1].location);
        assert_ne!(recs[0].id, recs[1].id);
    }

    #[test]
    fn no_initialised_token_and_no_matching_token_are_module_errors() {
        let s = settings();
        let none = ModuleRead {
            uninitialised_slots: vec![1],
            ..Default::default()
        };
        let e = nothing_to_read(&s, &none).unwrap().to_string();
        assert!(
            e.contains("no initialised token (1 slot with an uninitialised token)"),
            "{e}"
        );
        let other = ModuleRead {
            seen: vec![(5, "db".into())],
            ..Default::default()
        };
        let e = nothing_to_read(&s, &other).unwrap().to_string();
        assert!(e.contains("'db' in slot 5"), "{e}");
    }
}
