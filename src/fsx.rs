//! Files, safely, in one place: bounded reads that never block on a FIFO or a device, private
//! files (0600, no symlink following), and replacing live files atomically while keeping their
//! owner, group and mode, with backups kept where scans do not look and pruned by retention.

use std::io::{Read as _, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Open for reading without blocking (a FIFO with no writer), then insist on a regular file.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt as _;
        let what = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        };
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    Ok(f)
}

/// Read a regular file of at most `limit` bytes. FIFOs, devices and sockets are refused
/// without blocking; a larger file is an error (nothing is read past the limit).
pub fn read_bounded(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    let f = open_regular(path)?;
    let mut buf = Vec::new();
    f.take(limit + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file too large (over {limit} bytes)"),
        ));
    }
    Ok(buf)
}

/// [`read_bounded`], as UTF-8 text.
pub fn read_to_string_bounded(path: &Path, limit: u64) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        )
    })
}

/// Open a file readable only by its owner (0600, created if missing), appending or
/// truncating. A symlink at `path` is refused, so a planted link cannot redirect the write.
pub fn open_private(path: &Path, append: bool) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.create(true);
    if append {
        o.append(true);
    } else {
        o.write(true).truncate(true);
    }
    o.mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    o.open(path)
}

/// Write a private file (0600) through a temporary file and a rename.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let res = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Create a directory (and its parents) and make it private (0700).
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// A temporary path beside `path`: `.NAME.certdeck-tmp-PID-N`, unique in this process.
pub fn temp_beside(path: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".certdeck-tmp-{}-{n}", std::process::id()));
    path.with_file_name(name)
}

/// True for names certdeck itself leaves beside live files (temporary files, and the backups
/// of versions before 0.2): scans pass over them.
pub fn is_certdeck_scratch(name: &str) -> bool {
    name.contains(".certdeck-tmp-") || name.contains(".certdeck-backup-")
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

/// Owner, group and mode of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Ownership {
    pub fn of(path: &Path) -> std::io::Result<Ownership> {
        let m = std::fs::metadata(path)?;
        Ok(Ownership {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.permissions().mode() & 0o7777,
        })
    }
}

/// Write `contents` to a new temporary file beside `path` with exactly `own` (owner, group,
/// mode), fsynced. Fails, leaving nothing behind, when the owner or group cannot be kept.
fn write_temp(
    path: &Path,
    contents: &[u8],
    own: Option<Ownership>,
    mode: u32,
) -> Result<PathBuf, String> {
    let tmp = temp_beside(path);
    let res = (|| -> Result<(), String> {
        let io = |e: std::io::Error| {
            format!(
                "cannot write a temporary file beside {}: {e}",
                path.display()
            )
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(io)?;
        if let Some(o) = own {
            std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid)).map_err(|e| {
                format!(
                    "cannot keep the owner {}:{} of {} ({e}); run certdeck as root or as that user",
                    o.uid,
                    o.gid,
                    path.display()
                )
            })?;
        }
        // Set the mode after the owner (chown clears set-id bits), and exactly (no umask).
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io)?;
        f.write_all(contents).map_err(io)?;
        f.sync_all().map_err(io)
    })();
    match res {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Where backups go, and how long they are kept.
#[derive(Debug, Clone)]
pub struct Backups {
    pub dir: PathBuf,
    /// Newest backups of each file kept whatever their age.
    pub keep: usize,
    /// Older backups beyond `keep` are removed.
    pub max_age: Duration,
}

/// Default retention: the 3 newest backups of each object, and anything younger than 30 days.
pub const DEFAULT_KEEP: usize = 3;
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(30 * 86_400);

impl Backups {
    /// `DATA_DIR/backups` with the default retention.
    pub fn in_data_dir() -> Backups {
        Backups {
            dir: crate::config::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("backups"),
            keep: DEFAULT_KEEP,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    /// A file-safe key naming `what` (a path, `ctx/ns/name`): readable, plus a short hash so
    /// two different names never share a key.
    pub fn key(what: &str) -> String {
        let safe: String = what
            .trim_start_matches('/')
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .take(120)
            .collect();
        let h = crate::model::cert::sha256_hex(what.as_bytes());
        format!("{safe}.{}", &h[..8])
    }

    /// A new backup path for `key` in `sub` (`files`, `secrets`): `KEY--STAMP.EXT`, unique.
    pub fn path_for(&self, sub: &str, key: &str, ext: &str, now: i64) -> PathBuf {
        let stamp = crate::clock::rfc3339(now).replace(['-', ':'], "");
        let dir = self.dir.join(sub);
        let mut p = dir.join(format!("{key}--{stamp}.{ext}"));
        let mut n = 1;
        while p.exists() && n < 1000 {
            p = dir.join(format!("{key}--{stamp}-{n}.{ext}"));
            n += 1;
        }
        p
    }

    /// Save `data` as a private backup (0600 in a 0700 directory) at a new path.
    pub fn save(
        &self,
        sub: &str,
        key: &str,
        ext: &str,
        data: &[u8],
        now: i64,
    ) -> Result<PathBuf, String> {
        let path = self.path_for(sub, key, ext, now);
        self.save_at(&path, data)?;
        Ok(path)
    }

    /// Save `data` as a private backup at `path` (from [`Backups::path_for`]); it must not exist.
    pub fn save_at(&self, path: &Path, data: &[u8]) -> Result<(), String> {
        let e = |x: std::io::Error| format!("cannot write the backup {}: {x}", path.display());
        private_dir(&self.dir).map_err(e)?;
        if let Some(parent) = path.parent() {
            private_dir(parent).map_err(e)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(e)?;
        f.write_all(data).map_err(e)?;
        f.sync_all().map_err(e)
    }

    /// Remove the backups of `key` in `sub` beyond the retention. Returns what was removed.
    pub fn prune(&self, sub: &str, key: &str, now: i64) -> Vec<PathBuf> {
        let dir = self.dir.join(sub);
        let prefix = format!("{key}--");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut mine: Vec<(String, PathBuf, i64)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let age = e
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| now - d.as_secs() as i64)
                    .unwrap_or(0);
                name.starts_with(&prefix).then(|| (name, e.path(), age))
            })
            .collect();
        // Stamps sort by time: newest first.
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        let mut removed = Vec::new();
        for (_, path, age) in mine.into_iter().skip(self.keep) {
            if age > self.max_age.as_secs() as i64 && std::fs::remove_file(&path).is_ok() {
                removed.push(path);
            }
        }
        removed
    }
}

/// One live file to replace.
pub struct Replacement<'a> {
    pub path: &'a Path,
    pub contents: &'a [u8],
    /// Holds a private key: a new file is created 0600 (an existing one keeps its mode).
    pub secret: bool,
}

/// One replaced file, with what is needed to put it back.
#[derive(Debug)]
pub struct ReplacedFile {
    pub path: PathBuf,
    /// The backup of the previous contents (`None`: the file did not exist).
    pub backup: Option<PathBuf>,
    previous: Option<(Vec<u8>, Ownership)>,
}

/// What [`replace_all`] did, so [`rollback`] can undo it.
#[derive(Debug, Default)]
pub struct Replaced {
    pub files: Vec<ReplacedFile>,
}

impl Replaced {
    pub fn paths(&self) -> Vec<PathBuf> {
        self.files.iter().map(|f| f.path.clone()).collect()
    }
    pub fn backups(&self) -> Vec<PathBuf> {
        self.files.iter().filter_map(|f| f.backup.clone()).collect()
    }
}

/// The file a path names: a symlink (certbot's `live/` layout) is followed, so the file it
/// points to is replaced and the link stays.
pub fn resolve_link(path: &Path) -> PathBuf {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match is_link.then(|| std::fs::canonicalize(path)) {
        Some(Ok(real)) => real,
        _ => path.to_owned(),
    }
}

/// Largest live file backed up and replaced (certificates and keys are small).
pub const MAX_REPLACED_BYTES: u64 = 16 * 1024 * 1024;

/// Replace every file, keeping each one's owner, group and mode, with a backup of each in
/// `backups` first. Every new file is written to a temporary file beside its target before
/// any target changes (a full disk or a foreign owner fails here, changing nothing); then the
/// temporary files are renamed over their targets. On a failure, what was replaced already
/// is put back before returning the error.
pub fn replace_all(
    files: &[Replacement<'_>],
    backups: &Backups,
    now: i64,
) -> Result<Replaced, String> {
    struct Prepared {
        path: PathBuf,
        tmp: PathBuf,
        previous: Option<(Vec<u8>, Ownership)>,
    }
    let mut prepared: Vec<Prepared> = Vec::with_capacity(files.len());
    let cleanup = |p: &[Prepared]| {
        for x in p {
            let _ = std::fs::remove_file(&x.tmp);
        }
    };
    // 1. Read what is there, and write every new file beside its target.
    for f in files {
        let path = resolve_link(f.path);
        let previous = match Ownership::of(&path) {
            Ok(own) => match read_bounded(&path, MAX_REPLACED_BYTES) {
                Ok(data) => Some((data, own)),
                Err(e) => {
                    cleanup(&prepared);
                    return Err(format!("cannot read {}: {e}", path.display()));
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                cleanup(&prepared);
                return Err(format!("cannot read {}: {e}", path.display()));
            }
        };
        let (own, mode) = match &previous {
            Some((_, o)) => (Some(*o), o.mode),
            None => (None, if f.secret { 0o600 } else { 0o644 }),
        };
        match write_temp(&path, f.contents, own, mode) {
            Ok(tmp) => prepared.push(Prepared {
                path,
                tmp,
                previous,
            }),
            Err(e) => {
                cleanup(&prepared);
                return Err(e);
            }
        }
    }
    // 2. Back up what exists.
    let mut saved: Vec<Option<PathBuf>> = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let b = match &p.previous {
            Some((data, _)) => {
                let key = Backups::key(&p.path.display().to_string());
                match backups.save("files", &key, "bak", data, now) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        cleanup(&prepared);
                        for b in saved.iter().flatten() {
                            let _ = std::fs::remove_file(b);
                        }
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        saved.push(b);
    }
    // 3. Rename each temporary file over its target.
    let mut done = Replaced::default();
    for (i, (p, backup)) in prepared.iter().zip(saved).enumerate() {
        if let Err(e) = std::fs::rename(&p.tmp, &p.path) {
            let msg = format!("cannot replace {}: {e}", p.path.display());
            cleanup(&prepared[i..]);
            return Err(match rollback(&done) {
                Ok(()) => format!("{msg}; the old files were put back"),
                Err(r) => format!("{msg}; putting the old files back also failed: {r}"),
            });
        }
        fsync_dir(&p.path);
        done.files.push(ReplacedFile {
            path: p.path.clone(),
            backup,
            previous: p.previous.clone(),
        });
    }
    for f in &done.files {
        backups.prune("files", &Backups::key(&f.path.display().to_string()), now);
    }
    Ok(done)
}

/// Put the old files back (contents, owner, group and mode), newest change first; remove
/// files that did not exist before.
pub fn rollback(done: &Replaced) -> Result<(), String> {
    let mut errors = Vec::new();
    for f in done.files.iter().rev() {
        let res = match &f.previous {
            Some((data, own)) => write_temp(&f.path, data, Some(*own), own.mode).and_then(|tmp| {
                std::fs::rename(&tmp, &f.path).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    format!("{}: {e}", f.path.display())
                })
            }),
            None => std::fs::remove_file(&f.path)
                .map_err(|e| format!("removing {}: {e}", f.path.display())),
        };
        match res {
            Ok(()) => fsync_dir(&f.path),
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

    fn backups(d: &Path) -> Backups {
        Backups {
            dir: d.join("data/backups"),
            keep: DEFAULT_KEEP,
            max_age: DEFAULT_MAX_AGE,
        }
    }

    #[test]
    fn a_fifo_and_a_device_are_refused_without_blocking_and_big_files_are_bounded() {
        let d = tempfile::tempdir().expect("tempdir");
        let fifo = d.path().join("pipe.pem");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let e = read_bounded(&fifo, 1024).expect_err("fifo");
        assert!(e.to_string().contains("FIFO"), "{e}");
        let e = read_bounded(Path::new("/dev/zero"), 1024).expect_err("device");
        assert!(e.to_string().contains("device"), "{e}");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).expect("w");
        assert!(read_bounded(&big, 1024).is_err());
        assert_eq!(read_bounded(&big, 4096).expect("r").len(), 2048);
    }

    #[test]
    fn replace_keeps_modes_and_backups_outside_and_rollback_restores_bytes_and_modes() {
        let d = tempfile::tempdir().expect("tempdir");
        let b = backups(d.path());
        let live = d.path().join("tls");
        std::fs::create_dir(&live).expect("mkdir");
        let cert = live.join("cert.pem");
        let key = live.join("key.pem");
        let chain = live.join("chain.pem");
        std::fs::write(&cert, b"old cert").expect("w");
        std::fs::write(&key, b"old key").expect("w");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let done = replace_all(
            &[
                Replacement {
                    path: &cert,
                    contents: b"new cert",
                    secret: false,
                },
                Replacement {
                    path: &chain,
                    contents: b"new chain",
                    secret: false,
                },
                Replacement {
                    path: &key,
                    contents: b"new key",
                    secret: true,
                },
            ],
            &b,
            1_795_000_000,
        )
        .expect("replace");
        let mode = |p: &Path| std::fs::metadata(p).expect("m").permissions().mode() & 0o777;
        assert_eq!(std::fs::read(&cert).expect("r"), b"new cert");
        assert_eq!(
            mode(&key),
            0o640,
            "a group-readable key stays group-readable"
        );
        assert_eq!(mode(&chain), 0o644);
        let saved = done.backups();
        assert_eq!(saved.len(), 2);
        for s in &saved {
            assert!(
                s.starts_with(&b.dir),
                "backups live in the data directory: {s:?}"
            );
            assert_eq!(mode(s), 0o600);
        }
        assert_eq!(std::fs::read(&saved[1]).expect("r"), b"old key");
        let names: Vec<_> = std::fs::read_dir(&live).expect("ls").flatten().collect();
        assert_eq!(names.len(), 3, "nothing but the live files beside them");
        rollback(&done).expect("rollback");
        assert_eq!(std::fs::read(&cert).expect("r"), b"old cert");
        assert_eq!(std::fs::read(&key).expect("r"), b"old key");
        assert_eq!(mode(&key), 0o640);
        assert!(!chain.exists());
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let d = tempfile::tempdir().expect("tempdir");
        let cert = d.path().join("cert.pem");
        std::fs::write(&cert, b"old cert").expect("w");
        let missing_dir = d.path().join("nope/key.pem");
        let e = replace_all(
            &[
                Replacement {
                    path: &cert,
                    contents: b"new",
                    secret: false,
                },
                Replacement {
                    path: &missing_dir,
                    contents: b"k",
                    secret: true,
                },
            ],
            &backups(d.path()),
            0,
        )
        .expect_err("no dir");
        assert!(e.contains("nope"), "{e}");
        assert_eq!(std::fs::read(&cert).expect("r"), b"old cert");
        let left: Vec<_> = std::fs::read_dir(d.path()).expect("ls").flatten().collect();
        assert_eq!(
            left.len(),
            1,
            "no temporary file and no backup left: {left:?}"
        );
    }

    #[test]
    fn retention_keeps_the_newest_and_the_young() {
        let d = tempfile::tempdir().expect("tempdir");
        let b = Backups {
            dir: d.path().to_owned(),
            keep: 2,
            max_age: Duration::from_secs(0),
        };
        let key = Backups::key("/etc/tls/a.pem");
        let now = 1_795_000_000;
        let mut paths = Vec::new();
        for i in 0..5 {
            paths.push(b.save("files", &key, "bak", b"x", now + i).expect("save"));
        }
        b.save(
            "files",
            &Backups::key("/etc/tls/other.pem"),
            "bak",
            b"y",
            now,
        )
        .expect("save");
        // Everything is "older than 0 s" a moment later: only the 2 newest stay.
        let removed = b.prune("files", &key, now + 3600 * 24 * 365 * 100);
        assert_eq!(removed.len(), 3);
        assert!(paths[4].exists() && paths[3].exists() && !paths[0].exists());
        assert_eq!(
            std::fs::read_dir(d.path().join("files"))
                .expect("ls")
                .count(),
            3
        );
        assert_ne!(Backups::key("/a_b/c"), Backups::key("/a/b_c"));
    }
}
