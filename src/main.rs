//! certdeck binary: CLI parse, logging, runtime, run. Everything else is in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let parsed = match certdeck::cli::parse_from(std::env::args_os()) {
        Ok(p) => p,
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
    certdeck::run::init_logging(&parsed.cli);
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
    match runtime.block_on(certdeck::run::run(parsed)) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!(
                "certdeck: {}",
                certdeck::model::text::clean(&format!("{e:#}"))
            );
            ExitCode::from(certdeck::report::exit::UNKNOWN as u8)
        }
    }
}
