//! The calls into a PKCS#11 module (blocking, on a thread of their own): load and initialise
//! it once per process, list slots, skip uninitialised tokens, open a read-only session per
//! token, log in when a PIN is configured, read the attributes of certificate and key objects,
//! log out. What was read is plain data ([`ModuleRead`]) that [`super::rows`] turns into records.
//!
//! A module is loaded once and kept for the life of the process (it is never finalised: two
//! sources may share it, and a module that hung cannot be finalised safely). Calls into one
//! module are serialised by its lock, which the reading thread holds: a thread stuck in a hung
//! module keeps the lock, so later reads wait for it under their own time limit instead of
//! piling up more stuck threads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::RawAuthPin;

use super::rows::{CertObject, KeyClass, KeyObject, Login, ModuleRead, TokenRead};
use super::{token_text, Pkcs11Error, Pkcs11Settings};
use crate::sources::keystore::Secret;

/// The call a reading thread is in, for the message when it does not come back.
#[derive(Debug, Clone, Default)]
pub struct CallTracker(Arc<Mutex<&'static str>>);

impl CallTracker {
    pub fn enter(&self, call: &'static str) {
        if let Ok(mut g) = self.0.lock() {
            *g = call;
        }
    }

    pub fn current(&self) -> &'static str {
        self.0.lock().map(|g| *g).unwrap_or("a PKCS#11 call")
    }
}

/// One module of this process: its lock, and the loaded context once it loaded.
#[derive(Default)]
pub struct ModuleCell {
    pub lock: Arc<tokio::sync::Mutex<Option<Pkcs11>>>,
    /// The call the thread holding the lock is in.
    pub calls: CallTracker,
}

static MODULES: LazyLock<Mutex<HashMap<String, Arc<ModuleCell>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The process-wide cell of a module (by its canonical path when it exists).
pub fn module_cell(module: &str) -> Arc<ModuleCell> {
    let key = std::fs::canonicalize(module)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| module.to_owned());
    let mut map = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_default().clone()
}

/// What a source remembers between rounds: PINs a token refused, by token serial, so a wrong
/// PIN is not tried again (each try counts towards the token's lock-out) until it changes.
#[derive(Debug, Default)]
pub struct RefusedPins(Mutex<HashMap<String, Secret>>);

impl RefusedPins {
    fn refused(&self, token: &str, pin: &Secret) -> bool {
        self.0
            .lock()
            .map(|m| m.get(token) == Some(pin))
            .unwrap_or(false)
    }

    fn remember(&self, token: &str, pin: &Secret) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(token.to_owned(), pin.clone());
        }
    }

    fn forget(&self, token: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(token);
        }
    }
}

fn call_err(path: &str, call: &'static str, e: &CkError) -> Pkcs11Error {
    Pkcs11Error::Call {
        path: path.to_owned(),
        call,
        why: rv_text(e),
    }
}

/// A short description of a cryptoki error: the return value's name (`CKR_PIN_INCORRECT`).
pub fn rv_text(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, _) => rv_name(*rv),
        other => crate::model::text::clean(&other.to_string()).into_owned(),
    }
}

fn rv_name(rv: RvError) -> String {
    // `RvError`'s Debug is the CamelCase name of the CKR_ constant: spell it as the spec does.
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Load and initialise the module (once per process).
fn load(path: &str, calls: &CallTracker) -> Result<Pkcs11, Pkcs11Error> {
    if path.contains('/') && !Path::new(path).exists() {
        return Err(Pkcs11Error::NoSuchFile(path.to_owned()));
    }
    calls.enter("loading the module");
    let ctx = Pkcs11::new(path).map_err(|e| match e {
        CkError::LibraryLoading(le) => Pkcs11Error::NotALibrary {
            path: path.to_owned(),
            why: crate::model::text::clean(&le.to_string()).into_owned(),
        },
        CkError::MissingSymbol(_) => Pkcs11Error::NotPkcs11(path.to_owned()),
        other => call_err(path, "C_GetFunctionList", &other),
    })?;
    calls.enter("C_Initialize");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(call_err(path, "C_Initialize", &e)),
    }
}

/// Read a module: every initialised token the filter selects, with its objects. Runs on the
/// reading thread with the module's lock held (`slot`: the loaded context, if loaded).
pub fn read_module(
    settings: &Pkcs11Settings,
    slot: &mut Option<Pkcs11>,
    calls: &CallTracker,
    refused: &RefusedPins,
) -> Result<ModuleRead, Pkcs11Error> {
    let path = settings.module.as_str();
    let ctx = match slot {
        Some(c) => c.clone(),
        None => {
            let c = load(path, calls)?;
            *slot = Some(c.clone());
            c
        }
    };
    calls.enter("C_GetInfo");
    let library = ctx.get_library_info().ok().map(|i| {
        let desc = token_text(i.library_description());
        let maker = token_text(i.manufacturer_id());
        format!(
            "{desc} {} by {maker}, Cryptoki {}",
            i.library_version(),
            i.cryptoki_version()
        )
    });
    calls.enter("C_GetSlotList");
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| call_err(path, "C_GetSlotList", &e))?;
    let mut out = ModuleRead {
        library,
        ..ModuleRead::default()
    };
    for s in slots {
        calls.enter("C_GetTokenInfo");
        let info = match ctx.get_token_info(s) {
            Ok(i) => i,
            Err(e) => {
                out.unreadable_slots.push(format!(
                    "slot {}: C_GetTokenInfo: {}",
                    s.id(),
                    rv_text(&e)
                ));
                continue;
            }
        };
        if !info.token_initialized() {
            out.uninitialised_slots.push(s.id());
            continue;
        }
        let label = token_text(info.label());
        out.seen.push((s.id(), label.clone()));
        if !settings.filter.matches(s.id(), &label) {
            continue;
        }
        let mut t = TokenRead {
            slot: s.id(),
            label,
            serial: token_text(info.serial_number()),
            model: token_text(info.model()),
            manufacturer: token_text(info.manufacturer_id()),
            login: Login::NoPin,
            certs: Vec::new(),
            keys: Vec::new(),
            problem: None,
        };
        calls.enter("C_OpenSession");
        let session = match ctx.open_ro_session(s) {
            Ok(x) => x,
            Err(e) => {
                t.problem = Some(format!("C_OpenSession: {}", rv_text(&e)));
                out.tokens.push(t);
                continue;
            }
        };
        t.login = log_in(settings, &session, &info, &t.serial, calls, refused);
        if let Err(e) = read_objects(&session, &mut t, calls) {
            t.problem = Some(e);
        }
        if t.login == Login::LoggedIn {
            calls.enter("C_Logout");
            let _ = session.logout();
        }
        calls.enter("C_CloseSession");
        drop(session);
        out.tokens.push(t);
    }
    Ok(out)
}

/// Log the session in as the user when a PIN is configured (never when the token says the PIN
/// is locked, nor with a PIN this token refused before).
fn log_in(
    settings: &Pkcs11Settings,
    session: &Session,
    info: &cryptoki::slot::TokenInfo,
    serial: &str,
    calls: &CallTracker,
    refused: &RefusedPins,
) -> Login {
    let Some(src) = &settings.pin else {
        return Login::NoPin;
    };
    let from = src.describe();
    if !info.login_required() {
        return Login::NotRequired;
    }
    if info.user_pin_locked() {
        return Login::Locked { from };
    }
    if !info.user_pin_initialized() {
        return Login::Failed {
            from,
            why: "the token's user PIN is not initialised".to_owned(),
        };
    }
    let pin = match src.read() {
        Ok(p) => p,
        Err(e) => return Login::PinUnreadable { why: e.0 },
    };
    let key = if serial.is_empty() {
        "(no serial)"
    } else {
        serial
    };
    if refused.refused(key, &pin) {
        return Login::NotRetried { from };
    }
    calls.enter("C_Login");
    let raw = RawAuthPin::new(Box::new(pin.expose().as_bytes().to_vec()));
    match session.login_with_raw(UserType::User, &raw) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
            refused.forget(key);
            Login::LoggedIn
        }
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
            refused.remember(key, &pin);
            Login::WrongPin { from }
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Login::Locked { from },
        Err(e) => Login::Failed {
            from,
            why: format!("C_Login: {}", rv_text(&e)),
        },
    }
}

fn find(session: &Session, class: ObjectClass) -> Result<Vec<ObjectHandle>, String> {
    session
        .find_objects(&[Attribute::Class(class)])
        .map_err(|e| format!("C_FindObjects: {}", rv_text(&e)))
}

fn bytes_label(v: &[u8]) -> String {
    token_text(&String::from_utf8_lossy(v))
}

/// Read the certificate, private key and public key objects of a token's session.
fn read_objects(session: &Session, t: &mut TokenRead, calls: &CallTracker) -> Result<(), String> {
    calls.enter("C_FindObjects");
    for h in find(session, ObjectClass::CERTIFICATE)? {
        calls.enter("C_GetAttributeValue");
        let attrs = session
            .get_attributes(
                h,
                &[
                    AttributeType::CertificateType,
                    AttributeType::Label,
                    AttributeType::Id,
                    AttributeType::Value,
                    AttributeType::Private,
                ],
            )
            .map_err(|e| format!("C_GetAttributeValue: {}", rv_text(&e)))?;
        let mut c = CertObject::default();
        for a in attrs {
            match a {
                Attribute::CertificateType(ty) => {
                    c.x509 = ty == CertificateType::X_509;
                    c.cert_type = Some(ty.to_string());
                }
                Attribute::Label(l) => c.label = Some(bytes_label(&l)),
                Attribute::Id(i) => c.id = i,
                Attribute::Value(v) => c.value = Some(v),
                Attribute::Private(p) => c.private = p,
                _ => {}
            }
        }
        if c.cert_type.is_none() {
            c.x509 = true;
        }
        t.certs.push(c);
    }
    for (class, kind) in [
        (ObjectClass::PRIVATE_KEY, KeyClass::Private),
        (ObjectClass::PUBLIC_KEY, KeyClass::Public),
    ] {
        calls.enter("C_FindObjects");
        for h in find(session, class)? {
            calls.enter("C_GetAttributeValue");
            let attrs = session
                .get_attributes(
                    h,
                    &[
                        AttributeType::Label,
                        AttributeType::Id,
                        AttributeType::KeyType,
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Modulus,
                        AttributeType::EcPoint,
                    ],
                )
                .map_err(|e| format!("C_GetAttributeValue: {}", rv_text(&e)))?;
            let mut k = KeyObject {
                class: kind,
                ..KeyObject::default()
            };
            for a in attrs {
                match a {
                    Attribute::Label(l) => k.label = Some(bytes_label(&l)),
                    Attribute::Id(i) => k.id = i,
                    Attribute::KeyType(ty) => {
                        let t = ty.to_string();
                        k.key_type = Some(t.strip_prefix("CKK_").unwrap_or(&t).to_owned());
                    }
                    Attribute::Sensitive(b) => k.sensitive = Some(b),
                    Attribute::Extractable(b) => k.extractable = Some(b),
                    Attribute::Modulus(m) => k.modulus = Some(m),
                    Attribute::EcPoint(p) => k.ec_point = Some(p),
                    _ => {}
                }
            }
            if kind == KeyClass::Public {
                k.sensitive = None;
                k.extractable = None;
            }
            t.keys.push(k);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_are_spelled_as_the_spec_does() {
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            rv_name(RvError::CryptokiAlreadyInitialized),
            "CKR_CRYPTOKI_ALREADY_INITIALIZED"
        );
    }

    #[test]
    fn a_refused_pin_is_remembered_until_it_changes() {
        let r = RefusedPins::default();
        let old = Secret::new("1111");
        assert!(!r.refused("t", &old));
        r.remember("t", &old);
        assert!(r.refused("t", &old));
        assert!(!r.refused("t", &Secret::new("2222")));
        assert!(!r.refused("other", &old));
        r.forget("t");
        assert!(!r.refused("t", &old));
    }

    #[test]
    fn a_missing_module_or_a_file_that_is_no_library_says_so() {
        let calls = CallTracker::default();
        let e = load("/nonexistent/libnothing.so", &calls).unwrap_err();
        assert_eq!(
            e,
            Pkcs11Error::NoSuchFile("/nonexistent/libnothing.so".into())
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("fake.so");
        std::fs::write(&f, b"not an ELF file").unwrap();
        let e = load(&f.display().to_string(), &calls).unwrap_err();
        assert!(matches!(e, Pkcs11Error::NotALibrary { .. }), "{e:?}");
    }
}
