//! Running the subcommands: the glue between settings, sources, actions and reports.

use std::io::Write;
use std::sync::Arc;

use crate::actions::{ActionError, ActionOptions, Request};
use crate::cli::{Cli, ColorChoice, Command, DemoArgs, Parsed, ScanArgs};
use crate::report::{self, exit, Format};
use crate::settings::{Settings, SettingsError};
use crate::sources::{self, Purpose, ScanResult};

/// Print a report of a scan and return the exit code: the worst status, and UNKNOWN when a
/// source had a problem and nothing is worse.
pub fn print_report(
    result: &ScanResult,
    format: Format,
    thresholds: crate::model::Thresholds,
    color: bool,
) -> std::io::Result<i32> {
    let now = crate::clock::now_unix();
    let rows = report::rows(&result.records, now, thresholds);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match format {
        Format::Table => {
            report::write_table(&mut out, &rows, color)?;
            report::write_health(&mut out, &result.health)?;
        }
        Format::Json => report::write_json(&mut out, &rows)?,
        Format::Csv => report::write_csv(&mut out, &rows)?,
        Format::Prometheus => {
            report::write_prometheus(&mut out, &rows)?;
            report::write_prometheus_health(&mut out, &result.health)?;
        }
    }
    out.flush()?;
    drop(out);
    let problems = result.problems();
    for p in &problems {
        eprintln!("certdeck: {}", crate::model::text::clean(p));
    }
    let mut code = report::exit_code(rows.iter().map(|r| r.a.status));
    if !problems.is_empty() && code == exit::OK {
        code = exit::UNKNOWN;
    }
    Ok(code)
}

fn color_of(choice: ColorChoice) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stdout())
        }
    }
}

/// `certdeck scan`.
pub async fn scan(
    cli: &Cli,
    args: &ScanArgs,
    matches: &clap::ArgMatches,
) -> Result<i32, SettingsError> {
    let settings = Settings::resolve(cli, &args.probe)?;
    let sources = settings.sources(Some(matches), &args.targets, &Purpose::Scan)?;
    if sources.is_empty() {
        return Err(SettingsError::Nothing(settings.config.name()));
    }
    let notifiers = crate::notify::select(&settings.config, &args.notify)?;
    let result = sources::scan(sources).await;
    let mut code = print_report(
        &result,
        args.output,
        settings.thresholds,
        color_of(args.color),
    )
    .map_err(|e| SettingsError::Build(format!("cannot write the report: {e}")))?;
    let now = crate::clock::now_unix();
    for n in &notifiers {
        match crate::notify::run(n, &result.records, settings.thresholds, now).await {
            Ok(Some(line)) => eprintln!("certdeck: {}", crate::model::text::clean(&line)),
            Ok(None) => {}
            Err(e) => {
                eprintln!("certdeck: {}", crate::model::text::clean(&e.to_string()));
                if code == exit::OK {
                    code = exit::UNKNOWN;
                }
            }
        }
    }
    Ok(code)
}

/// `certdeck serve`: the exporter, until Ctrl-C or SIGTERM.
pub async fn serve(
    cli: &Cli,
    args: &crate::cli::ServeArgs,
    matches: &clap::ArgMatches,
) -> Result<i32, SettingsError> {
    let settings = Settings::resolve(cli, &args.probe)?;
    let cfg: crate::serve::ServeConfig = settings.config.section("serve")?.unwrap_or_default();
    let listen = args
        .listen
        .clone()
        .or(cfg.listen)
        .unwrap_or_else(|| crate::serve::DEFAULT_LISTEN.to_owned());
    let addr =
        crate::serve::parse_listen(&listen).map_err(|e| SettingsError::Build(e.to_string()))?;
    let names = if args.extra_labels.is_empty() {
        cfg.extra_labels
    } else {
        args.extra_labels.clone()
    };
    let labels =
        crate::serve::metrics::LabelOptions::from_names(&names).map_err(SettingsError::Build)?;
    let sources = settings.sources(Some(matches), &[], &Purpose::Dashboard)?;
    if sources.is_empty() {
        return Err(SettingsError::Nothing(settings.config.name()));
    }
    crate::serve::run(
        sources,
        &settings.refresh,
        settings.thresholds,
        labels,
        addr,
        shutdown_signal(),
    )
    .await
    .map_err(|e| SettingsError::Build(e.to_string()))?;
    Ok(exit::OK)
}

/// Open the dashboard over `sources`, with the actions of `session`.
pub async fn dashboard(
    settings: &Settings,
    sources: Vec<Arc<dyn sources::Source>>,
    session: crate::actions::Session,
) -> anyhow::Result<i32> {
    let config_dir = crate::config::config_dir();
    let mut keymap = crate::config::keymap::Keymap::load(
        config_dir
            .as_ref()
            .map(|d| d.join("keymap.toml"))
            .as_deref(),
    )?;
    for (i, a) in settings.user_actions.iter().enumerate() {
        keymap
            .bind_user_action(&a.key, i, &a.description)
            .map_err(|e| anyhow::anyhow!("config [[action]] '{}': {e}", a.description))?;
    }
    if settings.read_only {
        keymap.remove_actions();
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme = crate::config::theme::Theme::load(
        &settings.ui.theme,
        config_dir.as_ref().map(|d| d.join("themes")).as_deref(),
        no_color,
    )?;
    let mut app = crate::app::App::new(crate::clock::now_unix(), settings.thresholds, keymap);
    app.read_only = settings.read_only;
    app.ui.redact = settings.ui.redact;
    app.log_path = LOG_PATH.get().map(|p| p.display().to_string());
    app.user_actions = settings
        .user_actions
        .iter()
        .map(|a| crate::app::UserActionInfo {
            name: a.name(),
            description: a.description.clone(),
            sources: a.sources.clone(),
            confirm: a.confirm,
            dangerous: a.dangerous,
        })
        .collect();
    crate::tui::run_dashboard(
        app,
        theme,
        sources,
        &settings.refresh,
        session,
        settings.ui.mouse,
    )
    .await?;
    Ok(exit::OK)
}

/// Find the rows an action command names, by reading the sources that may hold them once.
async fn find_rows(
    settings: &Settings,
    matches: &clap::ArgMatches,
    ids: &[String],
) -> Result<
    (
        Vec<Arc<dyn sources::Source>>,
        Vec<Result<crate::model::Record, ActionError>>,
    ),
    SettingsError,
> {
    let sources = settings.sources(Some(matches), &[], &Purpose::FindRows(ids.to_vec()))?;
    let result = sources::scan(sources.clone()).await;
    let rows: Vec<Result<crate::model::Record, ActionError>> = ids
        .iter()
        .map(|id| {
            result
                .records
                .iter()
                .find(|r| r.id == *id || r.location == *id)
                .cloned()
                .ok_or_else(|| ActionError::unknown_row(id))
        })
        .collect();
    if rows.iter().any(|r| r.is_err()) {
        for p in result.problems() {
            eprintln!("certdeck: {}", crate::model::text::clean(&p));
        }
    }
    Ok((sources, rows))
}

/// `certdeck renew`, `rotate`, `revoke` and `action`.
async fn act(
    cli: &Cli,
    matches: &clap::ArgMatches,
    request: Request,
    args: &crate::cli::ActionArgs,
    ca: Option<crate::actions::k8s::CaSource>,
) -> Result<i32, SettingsError> {
    let mut settings = Settings::resolve(cli, &crate::cli::ProbeArgs::default())?;
    if let Some(t) = args.request_timeout {
        settings.probe.timeout = t;
    }
    let (sources, rows) = find_rows(&settings, matches, &args.ids).await?;
    let mut session = settings.session(
        &sources,
        Vec::new(),
        ActionOptions {
            wait: args.wait,
            request_timeout: args.request_timeout,
            ca,
            ..ActionOptions::default()
        },
    );
    session.concurrency = args.concurrency.max(1);
    let opts = crate::actions::headless::Options {
        yes: args.yes,
        dry_run: args.dry_run,
    };
    Ok(crate::actions::headless::run(&session, &request, rows, opts).await)
}

fn ca_source(
    args: &crate::cli::RotateArgs,
) -> Result<Option<crate::actions::k8s::CaSource>, SettingsError> {
    use crate::actions::k8s::CaSource;
    Ok(match (&args.ca_secret, &args.ca_cert, &args.ca_key) {
        (Some(s), _, _) => match s.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => Some(CaSource::Secret {
                namespace: ns.to_owned(),
                name: name.to_owned(),
            }),
            _ => {
                return Err(SettingsError::Build(format!(
                    "--ca-secret takes NAMESPACE/NAME, not '{s}'"
                )))
            }
        },
        (None, Some(c), Some(k)) => Some(CaSource::Files {
            cert: c.clone(),
            key: k.clone(),
        }),
        _ => None,
    })
}

/// Where the dashboard's log file is (set by `init_logging`).
pub static LOG_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// True when this command line opens the dashboard (so logs must not reach the terminal).
pub fn opens_dashboard(cli: &Cli) -> bool {
    match &cli.command {
        None => true,
        Some(Command::Demo(d)) => {
            !d.serve && d.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout())
        }
        _ => false,
    }
}

/// The dashboard's log file: `STATE_DIR/certdeck.log`, opened 0600 without following a symlink.
/// Without a state directory, a fresh private temporary directory (never a predictable name in
/// a shared one).
fn open_log_file() -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let dir = match crate::config::state_dir() {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("certdeck-log-")
            .tempdir()?
            .keep(),
    };
    let path = dir.join("certdeck.log");
    let file = crate::fsx::open_private(&path, true)?;
    Ok((path, file))
}

/// Logging: to a file in the state directory for the dashboard (its path printed first), to
/// stderr for headless commands. `CERTDECK_LOG` sets the filter (default `warn`, file `info`).
/// While the dashboard is up, nothing but the dashboard reaches the terminal.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    if opens_dashboard(cli) {
        match open_log_file() {
            Ok((path, file)) => {
                eprintln!("certdeck: logging to {}", path.display());
                let _ = LOG_PATH.set(path);
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(
                        EnvFilter::try_from_env("CERTDECK_LOG")
                            .unwrap_or_else(|_| "info,kube_client::client::builder=warn".into()),
                    )
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(file))
                    .try_init();
            }
            Err(e) => {
                // No log file: log nothing rather than paint over the dashboard.
                eprintln!("certdeck: no log file ({e}); logging is off");
                let _ = tracing_subscriber::fmt()
                    .with_writer(std::io::sink)
                    .try_init();
            }
        }
        return;
    }
    let _ = tracing_subscriber::fmt()
        // kube's client logs each failed connection; certdeck reports it as the context's row.
        .with_env_filter(EnvFilter::try_from_env("CERTDECK_LOG").unwrap_or_else(|_| {
            "warn,kube_client::client::builder=off,vaultrs=off,rustify=off".into()
        }))
        .with_writer(std::io::stderr)
        .try_init();
}

/// `certdeck demo`.
pub async fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<i32> {
    let settings = Settings::resolve(cli, &args.probe)?;
    let fleet = crate::demo::DemoFleet::start().await?;
    let print = args.output.is_some() || !std::io::IsTerminal::is_terminal(&std::io::stdout());
    let sources = fleet.sources(settings.probe.clone());
    if !args.serve && !print {
        let renewer: Arc<dyn crate::actions::Backend> =
            Arc::new(crate::demo::DemoRenewer::new(&fleet));
        let session = settings.session(&sources, vec![renewer], ActionOptions::default());
        let result = dashboard(&settings, sources, session).await;
        drop(fleet);
        return result;
    }
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
        hangup_or_shutdown().await;
        return Ok(exit::OK);
    }
    let result = sources::scan(sources).await;
    print_report(
        &result,
        args.output.unwrap_or(Format::Table),
        settings.thresholds,
        false,
    )?;
    Ok(exit::OK)
}

/// Wait for Ctrl-C or SIGTERM (`serve`: SIGHUP is left alone, so `nohup` keeps working).
pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
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

/// Wait for Ctrl-C, SIGTERM or SIGHUP (`demo --serve`: its temporary files go with its
/// terminal).
async fn hangup_or_shutdown() {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        return shutdown_signal().await;
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = hup.recv() => {}
    }
}

/// Run a parsed command line; returns the process exit code.
pub async fn run(parsed: Parsed) -> anyhow::Result<i32> {
    crate::sources::tls::install_crypto_provider();
    let cli = &parsed.cli;
    let m = parsed.command_matches();
    let settled = |r: Result<i32, SettingsError>| match r {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!("certdeck: {}", crate::model::text::clean(&e.to_string()));
            Ok(exit::UNKNOWN)
        }
    };
    match &cli.command {
        Some(Command::Scan(args)) => settled(scan(cli, args, m).await),
        Some(Command::Demo(args)) => demo(cli, args).await,
        Some(Command::Serve(args)) => settled(serve(cli, args, m).await),
        Some(Command::Renew(args)) => {
            settled(act(cli, m, Request::Verb("renew".into()), &args.action, None).await)
        }
        Some(Command::Revoke(args)) => {
            settled(act(cli, m, Request::Verb("revoke".into()), &args.action, None).await)
        }
        Some(Command::Rotate(args)) => match ca_source(args) {
            Ok(ca) => settled(act(cli, m, Request::Verb("rotate".into()), &args.action, ca).await),
            Err(e) => settled(Err(e)),
        },
        Some(Command::Action(args)) => {
            settled(act(cli, m, Request::Verb(args.name.clone()), &args.action, None).await)
        }
        Some(Command::Completions(args)) => {
            let mut cmd = crate::cli::command();
            clap_complete::generate(args.shell, &mut cmd, "certdeck", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Some(Command::Man) => {
            let man = clap_mangen::Man::new(crate::cli::command());
            man.render(&mut std::io::stdout())?;
            Ok(exit::OK)
        }
        None => {
            let settings = match Settings::resolve(cli, &cli.probe) {
                Ok(s) => s,
                Err(e) => return settled(Err(e)),
            };
            let sources = match settings.sources(Some(m), &[], &Purpose::Dashboard) {
                Ok(s) => s,
                Err(e) => return settled(Err(e)),
            };
            let session = settings.session(&sources, Vec::new(), ActionOptions::default());
            dashboard(&settings, sources, session).await
        }
    }
}
