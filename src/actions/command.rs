//! Running a command for an action (a user-defined action, a reload, a DNS hook), in one
//! place: no stdin, a time limit after which it is killed, its output streamed line by line
//! as progress, and a failure that says how it ended and what it said last. Values from
//! outside reach the command as environment variables or separate arguments, never as shell
//! text.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use super::{Reporter, Step};

/// Output lines kept per stream (the rest are counted, not reported).
pub const MAX_LINES: usize = 2000;
/// Longest output line reported (longer ones are cut).
const MAX_LINE: usize = 4096;

/// A command to run.
#[derive(Debug, Clone)]
pub struct Command {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// The step its output is reported under.
    pub step: Step,
    /// Put before each output line (`"| "` to tell it from certdeck's own messages).
    pub prefix: &'static str,
}

impl Command {
    /// `sh -c SCRIPT [ARGS...]` (`$0` is `certdeck`, the args are `$1`...).
    pub fn shell(script: &str, args: &[&str], timeout: Duration, step: Step) -> Command {
        let mut a = vec!["-c".to_owned(), script.to_owned(), "certdeck".to_owned()];
        a.extend(args.iter().map(|s| (*s).to_owned()));
        Command {
            program: "sh".to_owned(),
            args: a,
            env: Vec::new(),
            timeout,
            step,
            prefix: "",
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Command {
        // NUL cannot be in an environment value; drop it rather than fail to start.
        self.env.push((key.to_owned(), value.replace('\0', "")));
        self
    }

    pub fn prefix(mut self, prefix: &'static str) -> Command {
        self.prefix = prefix;
        self
    }
}

/// A word for a POSIX shell: as it is when it has only safe characters, else single-quoted.
/// For command lines shown to a user to paste (never to build what certdeck runs).
pub fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '/' | '.' | '-' | '_' | ':' | '=' | '+' | ',' | '@')
        });
    if safe {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// How a command ended well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    /// Output lines (both streams).
    pub lines: usize,
}

/// Run it; `Err` says why it failed (exit status and its last lines, a signal, the time
/// limit, or that it could not start).
pub async fn run(cmd: &Command, rep: &Reporter) -> Result<Ran, String> {
    let mut c = tokio::process::Command::new(&cmd.program);
    c.args(&cmd.args)
        .envs(cmd.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = c
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", cmd.program))?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let tail = std::sync::Mutex::new(std::collections::VecDeque::<String>::new());
    let pump = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let tail = &tail;
        async move {
            let Some(s) = stream else { return 0usize };
            let mut lines = BufReader::new(s).lines();
            let mut n = 0;
            while let Ok(Some(mut l)) = lines.next_line().await {
                if l.trim().is_empty() {
                    continue;
                }
                n += 1;
                if l.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !l.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    l.truncate(cut);
                    l.push('…');
                }
                if let Ok(mut t) = tail.lock() {
                    t.push_back(l.clone());
                    if t.len() > 3 {
                        t.pop_front();
                    }
                }
                if n <= MAX_LINES {
                    rep.step(cmd.step, format!("{}{l}", cmd.prefix)).await;
                }
            }
            n
        }
    };
    let work = async {
        let (a, b) = tokio::join!(
            pump(out.map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
            pump(err.map(|e| Box::new(e) as Box<dyn tokio::io::AsyncRead + Send + Unpin>))
        );
        (a + b, child.wait().await)
    };
    let (lines, status) = match tokio::time::timeout(cmd.timeout, work).await {
        Err(_) => {
            return Err(format!(
                "timed out after {} (the command was killed)",
                humantime::format_duration(cmd.timeout)
            ))
        }
        Ok((_, Err(e))) => return Err(format!("could not wait for the command: {e}")),
        Ok((lines, Ok(status))) => (lines, status),
    };
    if status.success() {
        return Ok(Ran { lines });
    }
    let how = match status.code() {
        Some(c) => format!("exit status {c}"),
        None => "killed by a signal".to_owned(),
    };
    let tail: Vec<String> = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    Err(if tail.is_empty() {
        how
    } else {
        format!("{how}: {}", tail.join(" / "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_streams_as_progress_and_failures_say_how_they_ended() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let rep = Reporter::new("r", tx);
        let ok = Command::shell(
            "echo one; echo two >&2",
            &[],
            Duration::from_secs(5),
            Step::Run,
        );
        assert_eq!(run(&ok, &rep).await, Ok(Ran { lines: 2 }));
        let mut seen = Vec::new();
        while let Ok(super::super::ActionEvent::Progress(p)) = rx.try_recv() {
            seen.push(p.message);
        }
        seen.sort();
        assert_eq!(seen, vec!["one", "two"]);
        let bad = Command::shell("echo why; exit 3", &[], Duration::from_secs(5), Step::Run);
        assert_eq!(run(&bad, &rep).await, Err("exit status 3: why".to_owned()));
        let slow = Command::shell("sleep 5", &[], Duration::from_millis(200), Step::Run);
        assert!(run(&slow, &rep).await.unwrap_err().contains("timed out"));
        let args = Command::shell(
            "printf '%s' \"$1\"",
            &["$(touch /nonexistent)"],
            Duration::from_secs(5),
            Step::Run,
        )
        .env("X", "a\0b");
        assert!(run(&args, &Reporter::silent("r")).await.is_ok());
    }
}
