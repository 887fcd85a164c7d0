//! certdeck binary: logging, CLI parse, runtime, run. Everything else is in the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match certdeck::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let _ = e.print();
            // clap exits 2 on usage errors, which would read as CRITICAL: use UNKNOWN (3).
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(certdeck::report::exit::UNKNOWN as u8),
            };
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CERTDECK_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("certdeck: cannot start the async runtime: {e}");
            return ExitCode::from(certdeck::report::exit::UNKNOWN as u8);
        }
    };
    match runtime.block_on(certdeck::run::run(cli)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("certdeck: {e:#}");
            ExitCode::from(certdeck::report::exit::UNKNOWN as u8)
        }
    }
}
