//! Running the subcommands: the glue between settings, the engine and the reports.

use std::io::Write;

use crate::cli::{Cli, Command, DemoArgs, ScanSettings};
use crate::report::{self, exit, Format};
use crate::sources;

/// Print a report of `records` and return the exit code.
pub fn print_report(
    records: &[crate::model::Record],
    failures: &[String],
    format: Format,
    thresholds: crate::model::Thresholds,
    color: bool,
) -> std::io::Result<i32> {
    let now = crate::clock::now_unix();
    let rows = report::rows(records, now, thresholds);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Table => report::write_table(&mut out, &rows, color)?,
        Format::Json => report::write_json(&mut out, &rows)?,
        Format::Csv => report::write_csv(&mut out, &rows)?,
        Format::Prometheus => report::write_prometheus(&mut out, &rows)?,
    }
    out.flush()?;
    for f in failures {
        eprintln!("certdeck: {f}");
    }
    let mut code = report::exit_code(rows.iter().map(|r| r.a.status));
    if !failures.is_empty() && code == exit::OK {
        code = exit::UNKNOWN;
    }
    Ok(code)
}

/// `certdeck scan`.
pub async fn scan(settings: ScanSettings) -> anyhow::Result<i32> {
    let (records, failures) = sources::scan(settings.inventory, settings.probe).await;
    Ok(print_report(
        &records,
        &failures,
        settings.format,
        settings.thresholds,
        settings.color,
    )?)
}

/// `certdeck demo`.
pub async fn demo(args: &DemoArgs, config: Option<&std::path::PathBuf>) -> anyhow::Result<i32> {
    let (cfg, _) = crate::cli::load_config(config)?;
    let (mut probe, thresholds) = crate::cli::resolve_probe(&args.probe, cfg.as_ref())?;
    let fleet = crate::demo::DemoFleet::start().await?;
    probe.extra_roots.push(fleet.trust_anchor());
    if args.serve {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        writeln!(out, "certdeck demo fleet is up (Ctrl-C to stop)")?;
        for e in &fleet.endpoints {
            writeln!(out, "{}\t{}", e.target, e.story)?;
        }
        writeln!(out, "files\t{}", fleet.files_dir.display())?;
        let ca = fleet.files_dir.join("demo-root-ca.pem");
        std::fs::write(&ca, &fleet.root.pem)?;
        writeln!(out, "ca\t{}", ca.display())?;
        out.flush()?;
        drop(out);
        shutdown_signal().await;
        return Ok(exit::OK);
    }
    let (records, failures) = sources::scan(fleet.inventory(), probe).await;
    print_report(&records, &failures, args.output, thresholds, false)?;
    Ok(exit::OK)
}

/// Wait for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    crate::sources::tls::install_crypto_provider();
    match &cli.command {
        Some(Command::Scan(args)) => match ScanSettings::resolve(args, cli.config.as_ref()) {
            Ok(settings) => scan(settings).await,
            Err(e) => {
                eprintln!("certdeck: {e}");
                Ok(exit::UNKNOWN)
            }
        },
        Some(Command::Demo(args)) => demo(args, cli.config.as_ref()).await,
        None => {
            eprintln!("certdeck: the interactive dashboard is not built yet; use `certdeck scan` or `certdeck demo`");
            Ok(exit::UNKNOWN)
        }
    }
}
