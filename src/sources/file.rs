//! Certificate files: PEM bundles, DER files, directories walked recursively, and globs.
//!
//! Every named file gives at least one record: a certificate, or an error naming the file.
//! In a walked directory, files that are neither certificate-like by name nor PEM by content
//! are passed over, and so are files holding only private keys. Keystores (PKCS#12, JKS,
//! JCEKS, found by content) give one row per entry through [`keystore`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::model::{CertFacts, Record, SourceKind};
use crate::sources::keystore::{self, PasswordSource, Passwords};
use crate::sources::pem::{self, PemItem};

pub mod source;

/// Files larger than this are refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

const CERT_EXTENSIONS: &[&str] = &["pem", "crt", "cer", "cert", "der", "ca-bundle", "chain"];

/// A file to read, and whether the user named it (rather than it being found in a walk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: PathBuf,
    pub explicit: bool,
}

/// What a `--file` argument expanded to: files to read, and arguments that matched nothing.
#[derive(Debug, Default)]
pub struct Expansion {
    pub files: Vec<FileEntry>,
    pub problems: Vec<Record>,
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Expand paths, directories (recursively) and globs into the files to read.
pub fn expand(specs: &[String], now: i64) -> Expansion {
    let mut out = Expansion::default();
    for spec in specs {
        // A path that exists is itself, even when its name has glob characters (`[`).
        if has_glob_chars(spec) && std::fs::symlink_metadata(spec).is_err() {
            match glob::glob(spec) {
                Ok(paths) => {
                    let mut any = false;
                    for p in paths.flatten() {
                        any = true;
                        add_path(&p, false, &mut out, now);
                    }
                    if !any {
                        out.problems
                            .push(error_record(spec, "the pattern matched no file", now));
                    }
                }
                Err(e) => out.problems.push(error_record(
                    spec,
                    &format!("invalid glob pattern: {e}"),
                    now,
                )),
            }
        } else {
            add_path(Path::new(spec), true, &mut out, now);
        }
    }
    out
}

fn add_path(path: &Path, explicit: bool, out: &mut Expansion, now: i64) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => walk(path, out, now),
        Ok(_) => out.files.push(FileEntry {
            path: path.to_owned(),
            explicit,
        }),
        Err(e) => out.problems.push(error_record(
            &path.display().to_string(),
            &io_message(&e),
            now,
        )),
    }
}

fn walk(dir: &Path, out: &mut Expansion, now: i64) {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd.flatten().collect::<Vec<_>>(),
        Err(e) => {
            out.problems.push(error_record(
                &dir.display().to_string(),
                &io_message(&e),
                now,
            ));
            return;
        }
    };
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        // certdeck's own temporary files and old-style backups are not certificates in use.
        if crate::fsx::is_certdeck_scratch(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            walk(&path, out, now);
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            // Symlinked directories are not followed (no loops); symlinked files are read.
            out.files.push(FileEntry {
                path,
                explicit: false,
            });
        }
    }
}

fn is_certish_name(path: &Path) -> bool {
    keystore::is_keystore_name(&path.to_string_lossy())
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| CERT_EXTENSIONS.iter().any(|c| c.eq_ignore_ascii_case(e)))
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("cannot read: {e}"),
    }
}

fn error_record(location: &str, msg: &str, now: i64) -> Record {
    Record::new(SourceKind::FILE, location.to_owned(), now).with_error(msg)
}

/// Read one file into records. Returns nothing for a walked file that holds no certificate.
/// Reads are bounded: a FIFO, a device or a socket is an error row, never a blocked read.
pub fn read_file(entry: &FileEntry, now: i64) -> Vec<Record> {
    read_file_with(entry, now, &Passwords::default())
}

/// [`read_file`], with the configured keystore passwords.
pub fn read_file_with(entry: &FileEntry, now: i64, passwords: &Passwords) -> Vec<Record> {
    let shown = entry.path.display().to_string();
    match crate::fsx::read_bounded(&entry.path, MAX_FILE_BYTES) {
        Ok(data) => {
            let mut recs = records_from_bytes_with(
                &shown,
                &data,
                entry.explicit,
                now,
                passwords.for_path(&entry.path),
            );
            if recs
                .iter()
                .any(|r| r.extra.as_ref().is_some_and(|x| x.key == "keystore"))
            {
                keystore::atrest::keystore_findings(&entry.path, &mut recs);
            } else {
                keystore::atrest::file_findings(&entry.path, &data, &mut recs);
            }
            recs
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput && !entry.explicit => Vec::new(),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            ) =>
        {
            vec![error_record(&shown, &e.to_string(), now)]
        }
        Err(e) => vec![error_record(&shown, &io_message(&e), now)],
    }
}

/// The first certificate of a PEM or DER file (the leaf of a chain file), read bounded.
pub fn first_certificate(path: &Path) -> Result<CertFacts, String> {
    let shown = path.display();
    let data = crate::fsx::read_bounded(path, MAX_FILE_BYTES)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    let der = if pem::looks_like_pem(&data) {
        pem::scan(&data).into_iter().find_map(|i| match i {
            PemItem::Certificate(der) => Some(der),
            _ => None,
        })
    } else {
        Some(data)
    };
    let der = der.ok_or_else(|| format!("{shown} holds no certificate"))?;
    CertFacts::from_der(&der).map_err(|e| format!("{shown}: {e}"))
}

/// Parse file contents (PEM or DER) into records located at `shown` / `shown#N`.
///
/// `named`: the user named this file, so it must give a row even when it holds no
/// certificate. A walked file with a certificate-like name gives an error row when it is not a
/// certificate, unless it holds only private keys (those are skipped quietly).
pub fn records_from_bytes(shown: &str, data: &[u8], named: bool, now: i64) -> Vec<Record> {
    records_from_bytes_with(shown, data, named, now, None)
}

/// [`records_from_bytes`], reading a keystore with `password` (the empty one when `None`).
pub fn records_from_bytes_with(
    shown: &str,
    data: &[u8],
    named: bool,
    now: i64,
    password: Option<&PasswordSource>,
) -> Vec<Record> {
    if let Some(format) = keystore::detect(shown, data) {
        return keystore::records(SourceKind::FILE, shown, data, format, password, now);
    }
    let explicit = named || is_certish_name(Path::new(shown));
    if pem::looks_like_pem(data) {
        let items = pem::scan(data);
        let keys = items
            .iter()
            .filter(|i| matches!(i, PemItem::PrivateKey))
            .count();
        let certs: Vec<PemItem> = items
            .into_iter()
            .filter(|i| matches!(i, PemItem::Certificate(_) | PemItem::Broken(_)))
            .collect();
        if certs.is_empty() {
            if keys == 0 && explicit {
                return vec![error_record(shown, "no certificate in this PEM file", now)];
            }
            if keys > 0 && named {
                let msg = format!("no certificate in this file ({keys} private key(s) skipped)");
                return vec![error_record(shown, &msg, now)];
            }
            return Vec::new();
        }
        let many = certs.len() > 1;
        certs
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let loc = if many {
                    format!("{shown}#{}", i + 1)
                } else {
                    shown.to_owned()
                };
                match item {
                    PemItem::Certificate(der) => match CertFacts::from_der(&der) {
                        Ok(c) => Record::new(SourceKind::FILE, loc, now).with_cert(Arc::new(c)),
                        Err(e) => error_record(&loc, &e.to_string(), now),
                    },
                    PemItem::Broken(msg) => error_record(&loc, &msg, now),
                    PemItem::PrivateKey | PemItem::Other(_) => unreachable_record(&loc, now),
                }
            })
            .collect()
    } else if data.first() == Some(&0x30) {
        match CertFacts::from_der(data) {
            Ok(c) => {
                vec![Record::new(SourceKind::FILE, shown.to_owned(), now).with_cert(Arc::new(c))]
            }
            Err(_) if !explicit => Vec::new(),
            Err(e) => vec![error_record(
                shown,
                &format!("not a DER certificate: {e}"),
                now,
            )],
        }
    } else if explicit {
        vec![error_record(
            shown,
            "not a certificate (neither PEM nor DER)",
            now,
        )]
    } else {
        Vec::new()
    }
}

fn unreachable_record(loc: &str, now: i64) -> Record {
    // Filtered out above; kept total so a future PemItem cannot panic here.
    error_record(loc, "unexpected PEM block", now)
}
