//! Actions without a terminal UI (`certdeck renew`, `rotate`, `action`): show each plan,
//! confirm (or `--yes`), run them with progress on stderr, print one result line per row, and
//! exit with a documented code. The same [`Session`] as the dashboard does the work.

use std::io::{BufRead as _, Write as _};

use tokio::sync::mpsc;

use super::{ActionError, ActionEvent, Request, Session};
use crate::model::Record;
use crate::report::exit;

/// Exit code when an action failed.
pub const FAILED: i32 = 1;

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Do it without asking.
    pub yes: bool,
    /// Show the plans, write nothing.
    pub dry_run: bool,
}

/// Run `request` on the rows (`Err`: an id that matched no row). Returns the exit code:
/// 0 done (or the dry run shown), 1 an action failed, 3 nothing was done (refused, declined,
/// unknown ids).
pub async fn run(
    session: &Session,
    request: &Request,
    rows: Vec<Result<Record, ActionError>>,
    opts: Options,
) -> i32 {
    let mut code = exit::OK;
    let mut records = Vec::new();
    for r in rows {
        match r {
            Ok(r) => records.push(r),
            Err(e) => {
                eprintln!("certdeck: {e}");
                code = exit::UNKNOWN;
            }
        }
    }
    if session.read_only() {
        // Audited as refusals, one per row.
        let _ = session.plan(0, request, &records).await;
        eprintln!("certdeck: {}; nothing was done", ActionError::read_only());
        return exit::UNKNOWN;
    }
    let planned = session.plan(0, request, &records).await;
    let mut runnable = Vec::new();
    {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        for p in &planned {
            match p {
                Ok(plan) => {
                    let _ = writeln!(out, "{}", plan.preview());
                    runnable.push(plan.record_id.clone());
                }
                Err(refusal) => {
                    eprintln!(
                        "certdeck: {}: {}",
                        crate::model::text::clean(&refusal.location),
                        refusal.error
                    );
                    code = if refusal.error.is_refusal() {
                        exit::UNKNOWN
                    } else {
                        FAILED
                    };
                }
            }
        }
    }
    if runnable.is_empty() {
        session.cancel(0);
        return if code == exit::OK {
            exit::UNKNOWN
        } else {
            code
        };
    }
    if opts.dry_run {
        if let Some(e) = session.dry_run(0) {
            eprintln!("certdeck: {e}");
        }
        println!("dry run: nothing was written");
        return code;
    }
    if !opts.yes && !confirm(runnable.len()) {
        session.cancel(0);
        eprintln!("certdeck: declined; nothing was done");
        return exit::UNKNOWN;
    }
    let (tx, mut rx) = mpsc::channel::<ActionEvent>(256);
    let printer = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let ActionEvent::Progress(p) = ev {
                eprintln!(
                    "{} [{}] {}",
                    p.record_id,
                    p.step.as_str(),
                    crate::model::text::clean(&p.message)
                );
            }
        }
    });
    let finished = session.execute(0, &runnable, tx).await;
    let _ = printer.await;
    for f in &finished {
        match &f.result {
            Ok(o) => {
                println!(
                    "ok {}: {}",
                    f.record_id,
                    crate::model::text::clean(&o.message)
                );
                if let Some(c) = &o.restore_command {
                    println!("   restore the previous state with: {c}");
                }
            }
            Err(e) => {
                println!(
                    "FAILED {}: {}",
                    f.record_id,
                    crate::model::text::clean(&e.to_string())
                );
                code = FAILED;
            }
        }
        if let Some(a) = &f.audit_error {
            eprintln!("certdeck: {}: {a}", f.record_id);
        }
    }
    if let Some(log) = session.audit_log() {
        println!("audit log: {}", log.path.display());
    }
    code
}

/// Ask on the terminal; anything but y/yes (or end of input) is a no.
pub fn confirm(n: usize) -> bool {
    eprint!("Proceed with {n} change(s)? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}
