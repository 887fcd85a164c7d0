//! User-defined actions, as k9s plugins are: a key, a description, the sources they apply
//! to, a command with placeholders, `confirm` and `dangerous` flags. Placeholder values are
//! shell-quoted, so a certificate's names cannot inject shell syntax. Output is streamed to the
//! task view; a non-zero exit is a failed task with its output kept.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::{ActKind, Proposal};
use crate::dispatch::{shell_quote, Backend, BoxFut, Prepared, Reporter};
use crate::model::{Record, SourceKind};
use crate::sources::Target;

/// `[[action]]` in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserAction {
    /// Key in the dashboard (e.g. `c`, `ctrl-e`).
    pub key: String,
    pub description: String,
    /// Sources it applies to (`tls`, `file`, `k8s`); empty or absent means all.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Shell command with placeholders: {id} {source} {location} {host} {port} {sni} {path}
    /// {namespace} {name} {context} {kind} {sans} {subject} {not_after} {sha256} {serial}.
    pub command: String,
    /// Ask before running (default true).
    #[serde(default = "yes")]
    pub confirm: bool,
    /// Changes something: flagged in the preview; hidden with --read-only (default false).
    #[serde(default)]
    pub dangerous: bool,
    /// Time limit (default 5m).
    #[serde(default, deserialize_with = "crate::config::de_duration")]
    pub timeout: Option<Duration>,
}

fn yes() -> bool {
    true
}

impl From<&UserAction> for crate::app::UserActionInfo {
    fn from(a: &UserAction) -> Self {
        crate::app::UserActionInfo {
            description: a.description.clone(),
            sources: a.sources.clone(),
            confirm: a.confirm,
            dangerous: a.dangerous,
        }
    }
}

/// The placeholder values of a record (unquoted).
pub fn placeholders(r: &Record) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("id", r.id.clone()),
        ("source", r.source.as_str().to_owned()),
        ("location", r.location.clone()),
    ];
    if r.source == SourceKind::Tls {
        if let Ok(t) = Target::parse(&r.location, None) {
            v.push(("host", t.host.clone()));
            v.push(("port", t.port.to_string()));
            v.push(("sni", t.server_name().to_owned()));
        }
    }
    if r.source == SourceKind::File {
        let path = match r.location.rsplit_once('#') {
            Some((p, n)) if n.chars().all(|c| c.is_ascii_digit()) => p.to_owned(),
            _ => r.location.clone(),
        };
        v.push(("path", path));
    }
    if let Some(k) = &r.k8s {
        v.push(("namespace", k.namespace.clone()));
        v.push(("name", k.name.clone()));
        v.push(("context", k.context.clone()));
        v.push(("kind", k.kind.clone()));
    }
    if let Some(c) = r.cert.as_deref() {
        v.push((
            "sans",
            c.sans
                .iter()
                .map(|s| s.value().to_owned())
                .collect::<Vec<_>>()
                .join(" "),
        ));
        v.push(("subject", c.subject.clone()));
        v.push(("not_after", crate::clock::rfc3339(c.not_after)));
        v.push(("sha256", c.sha256.clone()));
        v.push(("serial", c.serial.clone()));
    }
    v
}

/// Fill `{name}` placeholders with shell-quoted values; an unknown or unavailable one is an error.
pub fn expand(command: &str, r: &Record) -> Result<String, String> {
    let values = placeholders(r);
    let mut out = String::with_capacity(command.len() + 64);
    let mut rest = command;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed '{{' in command: {command}"));
        };
        let name = &after[..close];
        match values.iter().find(|(k, _)| *k == name) {
            Some((_, v)) => out.push_str(&shell_quote(v)),
            None => {
                return Err(format!(
                    "placeholder {{{name}}} is not available for a {} row",
                    r.source.as_str()
                ))
            }
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Runs user-defined actions.
pub struct HookBackend {
    pub actions: Vec<UserAction>,
}

/// Keep at most this many output lines per task.
const MAX_LINES: usize = 2000;

impl Backend for HookBackend {
    fn plan(&self, kind: ActKind, record: &Record) -> Option<BoxFut<Prepared>> {
        let ActKind::User(i) = kind else { return None };
        let a = self.actions.get(i)?.clone();
        let record = record.clone();
        Some(Box::pin(async move {
            let applies =
                a.sources.is_empty() || a.sources.iter().any(|s| s == record.source.as_str());
            if !applies {
                return Prepared::refused(
                    &record,
                    &a.description,
                    format!("applies only to {}", a.sources.join(", ")),
                );
            }
            let cmd = match expand(&a.command, &record) {
                Ok(c) => c,
                Err(e) => return Prepared::refused(&record, &a.description, e),
            };
            let timeout = a.timeout.unwrap_or(Duration::from_secs(300));
            let mut preview = format!(
                "{}\n  row:     {} ({})\n  run:     sh -c {}\n",
                a.description,
                record.id,
                record.location,
                shell_quote(&cmd)
            );
            preview.push_str(&format!(
                "  limit:   {}\n",
                humantime::format_duration(timeout)
            ));
            if a.dangerous {
                preview.push_str("  note: marked dangerous in the config\n");
            }
            let title = a.description.clone();
            let cmd2 = cmd.clone();
            Prepared {
                proposal: Proposal {
                    record_id: record.id.clone(),
                    location: record.location.clone(),
                    title,
                    preview,
                    destructive: a.dangerous,
                    error: None,
                },
                skip_confirm: !a.confirm && !a.dangerous,
                run: Some(Box::new(move |rep: Reporter| {
                    Box::pin(run_command(cmd2, timeout, rep))
                })),
                audit: Some(crate::dispatch::audit_base(
                    &format!("hook: {}", a.description),
                    &record,
                    &cmd,
                )),
            }
        }))
    }
}

/// Run `sh -c cmd`, streaming its output lines as progress.
pub async fn run_command(cmd: String, timeout: Duration, rep: Reporter) -> Result<String, String> {
    rep.step("run", format!("$ {cmd}")).await;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("could not start sh: {e}"))?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let rep = Arc::new(rep);
    let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
                rep: Arc<Reporter>| async move {
        let Some(s) = stream else { return 0usize };
        let mut lines = BufReader::new(s).lines();
        let mut n = 0;
        while let Ok(Some(l)) = lines.next_line().await {
            n += 1;
            if n <= MAX_LINES {
                rep.step("run", l).await;
            }
        }
        n
    };
    let work = async {
        let (a, b) = tokio::join!(
            pump(
                out.map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                rep.clone()
            ),
            pump(
                err.map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                rep.clone()
            )
        );
        let status = child.wait().await;
        (a + b, status)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => Err(format!(
            "timed out after {} (the command was killed)",
            humantime::format_duration(timeout)
        )),
        Ok((_, Err(e))) => Err(format!("could not wait for the command: {e}")),
        Ok((lines, Ok(status))) if status.success() => {
            Ok(format!("exit 0 ({lines} output line(s))"))
        }
        Ok((lines, Ok(status))) => Err(match status.code() {
            Some(c) => format!("exit status {c} ({lines} output line(s) kept in the task view)"),
            None => "killed by a signal".to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_quoted_and_unknown_ones_refused() {
        let r = Record::new(
            SourceKind::Tls,
            "api.example.com:8443@x'; rm -rf /".into(),
            0,
        );
        let cmd = expand("echo {host} {port} {sni}", &r).unwrap();
        assert_eq!(cmd, "echo 'api.example.com' '8443' 'x'\\''; rm -rf /'");
        assert!(expand("echo {path}", &r).unwrap_err().contains("{path}"));
        assert!(expand("echo {host", &r).is_err());
        let f = Record::new(SourceKind::File, "/etc/ssl/a b.pem#2".into(), 0);
        assert_eq!(expand("ls {path}", &f).unwrap(), "ls '/etc/ssl/a b.pem'");
    }
}
