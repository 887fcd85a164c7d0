//! Keystore passwords: which configured source applies to a file (`[[keystores]]` blocks by
//! path or glob), and reading it from an environment variable, a password file or a command
//! (an argv array run without a shell, as `pass` or a vault CLI would give it).
//!
//! A password never appears on certdeck's command line, in a log line, an error, a record or
//! the audit: errors name where the password was to come from, never what it is.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The longest a password command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a password file or a command's output read.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// A password held in memory, zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// One `[[keystores]]` block: the files it covers and where their password comes from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreConfig {
    /// A keystore file, or a glob (`/etc/kafka/*.jks`).
    pub path: String,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// A command (program and arguments, no shell) whose first line of output is the password.
    pub password_command: Option<Vec<String>>,
}

/// Where a password comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    Env(String),
    File(PathBuf),
    Command(Vec<String>),
    /// Given directly by another source (a Kubernetes Secret's key), already read.
    Given {
        origin: String,
        secret: Secret,
    },
}

impl PasswordSource {
    /// Where the password comes from, for details and errors (never the password itself).
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::Env(v) => format!("environment variable {v}"),
            PasswordSource::File(p) => format!("password file {}", p.display()),
            PasswordSource::Command(argv) => format!(
                "command {}",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
            PasswordSource::Given { origin, .. } => origin.clone(),
        }
    }

    /// Read the password.
    pub fn read(&self) -> Result<Secret, PasswordError> {
        match self {
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) => Ok(Secret::new(v)),
                Err(std::env::VarError::NotPresent) => Err(PasswordError(format!(
                    "environment variable {var} is not set"
                ))),
                Err(std::env::VarError::NotUnicode(_)) => Err(PasswordError(format!(
                    "environment variable {var} is not valid UTF-8"
                ))),
            },
            PasswordSource::File(p) => read_file(p),
            PasswordSource::Command(argv) => run_command(argv),
            PasswordSource::Given { secret, .. } => Ok(secret.clone()),
        }
    }
}

/// Why a password could not be read (names the source, never the password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keystore password: {0}")]
pub struct PasswordError(pub String);

/// The first line of `bytes`, without its line ending.
fn first_line(bytes: Vec<u8>) -> Result<Secret, String> {
    let mut s = String::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())?;
    if let Some(i) = s.find(['\n', '\r']) {
        let rest = s.split_off(i);
        drop(Secret(rest));
    }
    Ok(Secret(s))
}

fn read_file(p: &Path) -> Result<Secret, PasswordError> {
    let shown = p.display();
    let data = crate::fsx::read_bounded(p, MAX_SECRET_BYTES).map_err(|e| {
        PasswordError(match e.kind() {
            std::io::ErrorKind::NotFound => format!("password file {shown}: no such file"),
            std::io::ErrorKind::PermissionDenied => {
                format!("password file {shown}: permission denied")
            }
            _ => format!("password file {shown}: cannot read: {e}"),
        })
    })?;
    first_line(data).map_err(|e| PasswordError(format!("password file {shown}: {e}")))
}

fn run_command(argv: &[String]) -> Result<Secret, PasswordError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(PasswordError("password_command is empty".to_owned()));
    };
    let name = prog.as_str();
    let mut child = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| PasswordError(format!("command {name} could not start: {e}")))?;
    let mut out = child.stdout.take();
    // Read on a thread so a chatty command cannot block on a full pipe while we wait.
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.take(MAX_SECRET_BYTES).read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(PasswordError(format!(
                    "command {name} did not finish within {} s",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(PasswordError(format!("command {name}: {e}"))),
        }
    };
    let mut buf = reader.join().unwrap_or_default();
    if !status.success() {
        buf.fill(0);
        return Err(PasswordError(format!("command {name} failed ({status})")));
    }
    first_line(buf).map_err(|e| PasswordError(format!("command {name}: output {e}")))
}

/// The configured keystore passwords, matched against file paths.
#[derive(Debug, Clone, Default)]
pub struct Passwords {
    rules: Vec<(glob::Pattern, PasswordSource)>,
}

impl Passwords {
    /// From the config file's `[[keystores]]` blocks; a block must name exactly one source.
    pub fn from_config(blocks: &[KeystoreConfig]) -> Result<Passwords, String> {
        let mut rules = Vec::new();
        for b in blocks {
            let src = match (&b.password_env, &b.password_file, &b.password_command) {
                (Some(v), None, None) => PasswordSource::Env(v.clone()),
                (None, Some(f), None) => PasswordSource::File(f.clone()),
                (None, None, Some(c)) if !c.is_empty() => PasswordSource::Command(c.clone()),
                (None, None, Some(_)) => {
                    return Err(format!("keystores {}: password_command is empty", b.path))
                }
                _ => {
                    return Err(format!(
                        "keystores {}: give exactly one of password_env, password_file, password_command",
                        b.path
                    ))
                }
            };
            let pat = glob::Pattern::new(&b.path)
                .map_err(|e| format!("keystores {}: invalid glob pattern: {e}", b.path))?;
            rules.push((pat, src));
        }
        Ok(Passwords { rules })
    }

    /// The password source for a file: the first block whose path or glob matches it.
    pub fn for_path(&self, path: &Path) -> Option<&PasswordSource> {
        let abs = std::fs::canonicalize(path).ok();
        self.rules
            .iter()
            .find(|(pat, _)| {
                pat.matches_path(path) || abs.as_deref().is_some_and(|a| pat.matches_path(a))
            })
            .map(|(_, s)| s)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_names_exactly_one_source_and_globs_match() {
        let ok = KeystoreConfig {
            path: "/etc/kafka/*.jks".into(),
            password_env: Some("KS".into()),
            password_file: None,
            password_command: None,
        };
        let p = Passwords::from_config(std::slice::from_ref(&ok)).unwrap();
        assert_eq!(
            p.for_path(Path::new("/etc/kafka/broker.jks")),
            Some(&PasswordSource::Env("KS".into()))
        );
        assert_eq!(p.for_path(Path::new("/etc/other.jks")), None);
        let mut two = ok.clone();
        two.password_file = Some("/x".into());
        assert!(Passwords::from_config(&[two]).is_err());
        let mut none = ok;
        none.password_env = None;
        assert!(Passwords::from_config(&[none]).is_err());
    }

    #[test]
    fn commands_give_their_first_line_and_failures_never_show_output() {
        let s = PasswordSource::Command(vec!["printf".into(), "s3cret\nmore\n".into()]);
        assert_eq!(s.read().unwrap().expose(), "s3cret");
        let bad =
            PasswordSource::Command(vec!["sh".into(), "-c".into(), "echo s3cret; exit 3".into()]);
        let e = bad.read().unwrap_err().to_string();
        assert!(e.contains("failed") && !e.contains("s3cret"), "{e}");
        let missing = PasswordSource::Command(vec!["/nonexistent/pass".into()]);
        assert!(missing
            .read()
            .unwrap_err()
            .to_string()
            .contains("could not start"));
        assert_eq!(format!("{:?}", Secret::new("s3cret")), "Secret(<redacted>)");
    }
}
