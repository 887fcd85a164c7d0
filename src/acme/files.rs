//! Replacing certificate files safely: each new file goes through a temporary file in the same
//! directory (fsync, rename), the old file is first copied to its backup beside it, and a
//! rollback renames the backups back over the new files.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// One file to replace.
pub(crate) struct NewFile<'a> {
    pub path: &'a Path,
    pub backup: Option<&'a Path>,
    pub contents: &'a [u8],
    /// Forced mode (0600 for keys); otherwise the old file's mode, else 0644.
    pub mode: Option<u32>,
}

/// What was done, so it can be undone.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// (target, backup if the target existed before)
    pub done: Vec<(PathBuf, Option<PathBuf>)>,
}

impl Written {
    pub fn paths(&self) -> Vec<PathBuf> {
        self.done.iter().map(|(p, _)| p.clone()).collect()
    }
    pub fn backups(&self) -> Vec<PathBuf> {
        self.done.iter().filter_map(|(_, b)| b.clone()).collect()
    }
}

/// A temporary path beside `path`: `.NAME.certdeck-tmp-PID-N`, unique in this process.
pub(crate) fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".certdeck-tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

fn fsync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Write `contents` to a temporary file beside `path` with `mode`, fsync it, and return it.
/// The old file's owner and group are kept when we may set them (running as root).
fn write_temp(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt as _;
    let tmp = temp_beside(path);
    let _ = std::fs::remove_file(&tmp);
    let owner = std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()));
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some((uid, gid)) = owner {
            let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
        }
        // The umask may have narrowed the mode; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()
    })();
    match res {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!(
                "cannot write a temporary file beside {}: {e}",
                path.display()
            ))
        }
    }
}

/// A backup path that does not exist yet: `backup`, else `backup.1`, `backup.2`...
fn free_backup(backup: &Path) -> PathBuf {
    if !backup.exists() {
        return backup.to_owned();
    }
    for i in 1..1000 {
        let mut name = backup.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{i}"));
        let p = backup.with_file_name(name);
        if !p.exists() {
            return p;
        }
    }
    backup.to_owned()
}

/// Copy `path` to `backup` with the same mode (0600 at most for `private`), fsynced.
fn make_backup(path: &Path, backup: &Path, private: bool) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let old_mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    let mode = if private { old_mode & 0o600 } else { old_mode };
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(backup)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(&data)?;
        f.sync_all()
    })();
    res.map_err(|e| {
        let _ = std::fs::remove_file(backup);
        format!("cannot write the backup {}: {e}", backup.display())
    })
}

/// Replace every file, backing each up first. On failure, everything already replaced is put
/// back before returning the error.
pub(crate) fn replace_all(files: &[NewFile<'_>]) -> Result<Written, String> {
    // 1. Every new file in a temporary file first: a full disk fails here, before any change.
    let mut temps = Vec::with_capacity(files.len());
    for f in files {
        let old_mode = std::fs::metadata(f.path)
            .ok()
            .map(|m| m.permissions().mode() & 0o777);
        let mode = f.mode.or(old_mode).unwrap_or(0o644);
        match write_temp(f.path, f.contents, mode) {
            Ok(t) => temps.push(t),
            Err(e) => {
                remove_all(&temps);
                return Err(e);
            }
        }
    }
    // 2. Backups of the files that exist.
    let mut backups: Vec<Option<PathBuf>> = Vec::with_capacity(files.len());
    for f in files {
        let b = match (f.path.exists(), f.backup) {
            (true, Some(b)) => {
                let b = free_backup(b);
                if let Err(e) = make_backup(f.path, &b, f.mode == Some(0o600)) {
                    remove_all(&temps);
                    remove_all(&backups.iter().flatten().cloned().collect::<Vec<_>>());
                    return Err(e);
                }
                Some(b)
            }
            (true, None) => {
                remove_all(&temps);
                remove_all(&backups.iter().flatten().cloned().collect::<Vec<_>>());
                return Err(format!(
                    "{} appeared after planning; plan again",
                    f.path.display()
                ));
            }
            (false, _) => None,
        };
        backups.push(b);
    }
    // 3. Rename each temporary file over its target.
    let mut written = Written::default();
    for (i, (f, tmp)) in files.iter().zip(&temps).enumerate() {
        if let Err(e) = std::fs::rename(tmp, f.path) {
            let msg = format!("cannot replace {}: {e}", f.path.display());
            remove_all(&temps[i..]);
            // Backups of the files not replaced are not needed; the others go back.
            remove_all(&backups[i..].iter().flatten().cloned().collect::<Vec<_>>());
            return Err(match rollback(&written) {
                Ok(()) => format!("{msg}; the old files were put back"),
                Err(r) => format!("{msg}; putting the old files back also failed: {r}"),
            });
        }
        fsync_dir(f.path);
        written.done.push((f.path.to_owned(), backups[i].clone()));
    }
    Ok(written)
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

/// Put the old files back: rename each backup over its file; remove files that did not exist.
pub(crate) fn rollback(written: &Written) -> Result<(), String> {
    let mut errors = Vec::new();
    for (path, backup) in written.done.iter().rev() {
        let res = match backup {
            Some(b) => std::fs::rename(b, path)
                .map_err(|e| format!("{} -> {}: {e}", b.display(), path.display())),
            None => {
                std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))
            }
        };
        match res {
            Ok(()) => fsync_dir(path),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_keeps_backups_and_rollback_restores_bytes_and_modes() {
        let d = tempfile::tempdir().expect("tempdir");
        let cert = d.path().join("cert.pem");
        let key = d.path().join("key.pem");
        let chain = d.path().join("chain.pem");
        std::fs::write(&cert, b"old cert").expect("w");
        std::fs::write(&key, b"old key").expect("w");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let cb = d.path().join("cert.pem.bak");
        let kb = d.path().join("key.pem.bak");
        let w = replace_all(&[
            NewFile {
                path: &cert,
                backup: Some(&cb),
                contents: b"new cert",
                mode: None,
            },
            NewFile {
                path: &chain,
                backup: None,
                contents: b"new chain",
                mode: None,
            },
            NewFile {
                path: &key,
                backup: Some(&kb),
                contents: b"new key",
                mode: Some(0o600),
            },
        ])
        .expect("replace");
        assert_eq!(std::fs::read(&cert).expect("r"), b"new cert");
        assert_eq!(std::fs::read(&cb).expect("r"), b"old cert");
        assert_eq!(std::fs::read(&kb).expect("r"), b"old key");
        let mode = |p: &Path| std::fs::metadata(p).expect("m").permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&kb), 0o600, "a key's backup is never wider than 0600");
        assert_eq!(w.backups(), vec![cb.clone(), kb.clone()]);
        rollback(&w).expect("rollback");
        assert_eq!(std::fs::read(&cert).expect("r"), b"old cert");
        assert_eq!(std::fs::read(&key).expect("r"), b"old key");
        assert!(!chain.exists() && !cb.exists() && !kb.exists());
        let left: Vec<_> = std::fs::read_dir(d.path()).expect("ls").flatten().collect();
        assert_eq!(left.len(), 2, "no temporary file is left behind");
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let cert = d.path().join("cert.pem");
        std::fs::write(&cert, b"old cert").expect("w");
        let missing_dir = d.path().join("nope/key.pem");
        let e = replace_all(&[
            NewFile {
                path: &cert,
                backup: Some(&d.path().join("b")),
                contents: b"new",
                mode: None,
            },
            NewFile {
                path: &missing_dir,
                backup: None,
                contents: b"k",
                mode: Some(0o600),
            },
        ])
        .expect_err("no dir");
        assert!(e.contains("nope"), "{e}");
        assert_eq!(std::fs::read(&cert).expect("r"), b"old cert");
        let left: Vec<_> = std::fs::read_dir(d.path()).expect("ls").flatten().collect();
        assert_eq!(left.len(), 1);
    }
}
