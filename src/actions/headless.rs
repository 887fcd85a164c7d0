//! `certdeck renew` and `certdeck rotate` without a terminal UI: find the rows, show each plan,
//! confirm (or `--yes`), run them with progress on stderr, and exit with a documented code.

use std::io::{BufRead as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{
    find_records, plan, record_dry_run, record_refusal, run_bulk, ActionContext, ActionError,
    ActionEvent, ActionKind, CaSource,
};
use crate::cli::ActionArgs;
use crate::report::exit;
use crate::sources::k8s::KubeAccess;

/// Exit code when an action failed.
pub const FAILED: i32 = 1;

/// Run `renew` or `rotate` for the ids in `args`; returns the exit code.
pub async fn run(
    kind: ActionKind,
    args: &ActionArgs,
    ca: Option<CaSource>,
    config: Option<&PathBuf>,
) -> i32 {
    let cfg = match crate::cli::load_config(config) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("certdeck: {e}");
            return exit::UNKNOWN;
        }
    };
    let kcfg = cfg.as_ref().and_then(|c| c.kubernetes.as_ref());
    let timeout = args
        .timeout
        .or(kcfg.and_then(|k| k.timeout))
        .unwrap_or(Duration::from_secs(10));
    let mut settings = args.k8s.resolve(kcfg, timeout);
    let access = match KubeAccess::load(settings.kubeconfig.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("certdeck: {e}");
            return exit::UNKNOWN;
        }
    };
    let mut ctx = ActionContext::new(access);
    ctx.timeout = timeout;
    ctx.wait = args.wait;
    ctx.poll = Duration::from_millis(500).min(args.wait);
    ctx.ca = ca;
    ctx.read_only = args.read_only || kcfg.is_some_and(|k| k.read_only);
    if ctx.read_only {
        for id in &args.ids {
            if let Err(e) = record_refusal(&ctx, kind, id) {
                eprintln!("certdeck: {e}");
            }
        }
        eprintln!("certdeck: {}; nothing was done", ActionError::ReadOnly);
        return exit::UNKNOWN;
    }

    // Find the rows: ids are looked up in every namespace unless a scope was given; a
    // location names its context.
    if settings.namespace.is_none() {
        settings.all_namespaces = true;
    }
    if settings.contexts.is_empty() && !settings.all_contexts {
        for id in &args.ids {
            if let Some((c, _)) = id.split_once('/') {
                if !settings.contexts.iter().any(|x| x == c) {
                    settings.contexts.push(c.to_owned());
                }
            }
        }
    }
    let found = find_records(settings, &args.ids).await;
    let mut plans = Vec::new();
    let mut code = exit::OK;
    let stdout = std::io::stdout();
    for (id, rec) in args.ids.iter().zip(found) {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                eprintln!("certdeck: {e}");
                code = exit::UNKNOWN;
                continue;
            }
        };
        match plan(&ctx, kind, &rec).await {
            Ok(p) => {
                let mut out = stdout.lock();
                let _ = writeln!(out, "{}", p.preview());
                plans.push(p);
            }
            Err(e) => {
                eprintln!("certdeck: {id}: {e}");
                code = match e {
                    ActionError::K8s { .. } | ActionError::Timeout { .. } => FAILED,
                    _ => exit::UNKNOWN,
                };
            }
        }
    }
    if plans.is_empty() {
        return if code == exit::OK {
            exit::UNKNOWN
        } else {
            code
        };
    }
    if args.dry_run {
        for p in &plans {
            if let Err(e) = record_dry_run(&ctx, p) {
                eprintln!("certdeck: {e}");
            }
        }
        println!("dry run: nothing was written");
        return code;
    }
    if !args.yes && !confirm(plans.len()) {
        eprintln!("certdeck: declined; nothing was done");
        return exit::UNKNOWN;
    }

    let (tx, mut rx) = mpsc::channel::<ActionEvent>(64);
    let printer = tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let ActionEvent::Progress {
                record_id,
                step,
                message,
            } = ev
            {
                eprintln!("{record_id} [{}] {message}", step.as_str());
            }
        }
    });
    let ctx = Arc::new(ctx);
    let results = run_bulk(ctx.clone(), plans, args.concurrency, tx).await;
    let _ = printer.await;
    for (id, r) in &results {
        match r {
            Ok(o) => {
                println!("ok {id}: {}", o.message);
                if let Some(c) = &o.restore_command {
                    println!("   restore the previous Secret with: {c}");
                }
            }
            Err(e) => {
                println!("FAILED {id}: {e}");
                code = FAILED;
            }
        }
    }
    println!("audit log: {}", ctx.audit.path.display());
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
