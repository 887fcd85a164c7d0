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

/// Open the dashboard over an inventory.
pub async fn dashboard(
    cli: &Cli,
    cfg: Option<&crate::config::ConfigFile>,
    inventory: sources::Inventory,
    probe: sources::ProbeSettings,
    thresholds: crate::model::Thresholds,
    mut backends: Vec<std::sync::Arc<dyn crate::dispatch::Backend>>,
) -> anyhow::Result<i32> {
    let config_dir = crate::config::config_dir();
    let mut keymap = crate::config::keymap::Keymap::load(
        config_dir
            .as_ref()
            .map(|d| d.join("keymap.toml"))
            .as_deref(),
    )?;
    let user_actions: Vec<crate::hooks::UserAction> =
        cfg.map(|c| c.actions.clone()).unwrap_or_default();
    for (i, a) in user_actions.iter().enumerate() {
        keymap
            .bind_user_action(&a.key, i, &a.description)
            .map_err(|e| anyhow::anyhow!("config [[action]] '{}': {e}", a.description))?;
    }
    if cli.read_only {
        keymap.remove_actions();
    }
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let theme_name = cli
        .theme
        .clone()
        .or_else(|| cfg.and_then(|c| c.ui.theme.clone()))
        .unwrap_or_else(|| "dark".into());
    let theme = crate::config::theme::Theme::load(
        &theme_name,
        config_dir.as_ref().map(|d| d.join("themes")).as_deref(),
        no_color,
    )?;
    let mouse = !cli.no_mouse && cfg.and_then(|c| c.ui.mouse).unwrap_or(true);
    let mut app = crate::app::App::new(crate::clock::now_unix(), thresholds, keymap);
    app.read_only = cli.read_only;
    app.redact = cli.redact;
    app.log_path = LOG_PATH.get().map(|p| p.display().to_string());
    app.user_actions = user_actions.iter().map(Into::into).collect();
    backends.push(std::sync::Arc::new(crate::hooks::HookBackend {
        actions: user_actions,
    }));
    if let Some(k) = &inventory.k8s {
        match crate::sources::k8s::KubeAccess::load(k.kubeconfig.as_deref()) {
            Ok(access) => {
                let mut ctx = crate::actions::ActionContext::new(access);
                ctx.read_only = cli.read_only;
                backends.push(std::sync::Arc::new(crate::dispatch::K8sBackend {
                    ctx: std::sync::Arc::new(ctx),
                }));
            }
            Err(e) => tracing::warn!("Kubernetes actions are unavailable: {e}"),
        }
    }
    if let Some(acme) = acme_backend(cfg)? {
        backends.push(std::sync::Arc::new(acme));
    }
    let mut dispatcher = crate::dispatch::Dispatcher::new(backends, cli.read_only);
    if let Some(path) = crate::actions::audit::AuditLog::default_path() {
        dispatcher = dispatcher.with_audit(crate::actions::audit::AuditLog::new(path));
    }
    crate::tui::run_dashboard(app, theme, inventory, probe, mouse, dispatcher).await?;
    Ok(exit::OK)
}

/// The ACME backend for the config's `[[certificate]]` files, if it has any.
fn acme_backend(
    cfg: Option<&crate::config::ConfigFile>,
) -> anyhow::Result<Option<crate::dispatch::AcmeBackend>> {
    let Some(c) = cfg.filter(|c| !c.certificates.is_empty() || !c.acme.is_empty()) else {
        return Ok(None);
    };
    crate::acme::config::validate(&c.acme, &c.certificates)
        .map_err(|e| anyhow::anyhow!("config: {e}"))?;
    Ok(Some(crate::dispatch::AcmeBackend {
        issuers: c.acme.clone(),
        files: c.certificates.clone(),
        account_dir: crate::acme::default_account_dir(),
        audit: crate::actions::audit::AuditLog::default_path()
            .map(crate::actions::audit::AuditLog::new),
    }))
}

/// `certdeck renew ID...` for `[[certificate]]` rows (the certificate file's id, or its
/// endpoint's). `None` when the ids are not such rows (they are Kubernetes ids, then).
async fn renew_managed_files(
    args: &crate::cli::ActionArgs,
    config: Option<&std::path::PathBuf>,
) -> Option<i32> {
    let (cfg, _) = crate::cli::load_config(config).ok()?;
    let acme = match acme_backend(cfg.as_ref()) {
        Ok(a) => a?,
        Err(e) => {
            eprintln!("certdeck: {e}");
            return Some(exit::UNKNOWN);
        }
    };
    // The rows of the managed files and their endpoints, observed now.
    let mut inv = sources::Inventory::default();
    for f in &acme.files {
        inv.files.push(f.cert.display().to_string());
        if let Some(t) = f
            .endpoint
            .as_deref()
            .and_then(|e| sources::Target::parse(e, None).ok())
        {
            inv.targets.push(t);
        }
    }
    let probe = crate::cli::resolve_probe(&crate::cli::ProbeArgs::default(), cfg.as_ref())
        .ok()?
        .0;
    let (records, _) = sources::scan(inv, probe).await;
    let matched: Vec<crate::model::Record> = args
        .ids
        .iter()
        .filter_map(|id| {
            records
                .iter()
                .find(|r| (&r.id == id || &r.location == id) && acme.file_for(r).is_some())
        })
        .cloned()
        .collect();
    if matched.is_empty() {
        return None;
    }
    if matched.len() != args.ids.len() {
        eprintln!("certdeck: give either [[certificate]] rows or Kubernetes rows to one `renew`, not both");
        return Some(exit::UNKNOWN);
    }
    let d = crate::dispatch::Dispatcher::new(vec![std::sync::Arc::new(acme)], args.read_only);
    Some(crate::dispatch::run_headless(&d, matched, args.yes, args.dry_run).await)
}

/// True when the config file has `[[certificate]]` entries a `renew` may be for.
fn renew_is_for_files(cli: &Cli) -> bool {
    crate::cli::load_config(cli.config.as_ref())
        .is_ok_and(|(c, _)| c.is_some_and(|c| !c.certificates.is_empty()))
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

/// Logging: to a file in the state directory for the dashboard (its path printed first), to
/// stderr for headless commands. `CERTDECK_LOG` sets the filter (default `warn`, file `info`).
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    if opens_dashboard(cli) {
        let dir = crate::config::state_dir().unwrap_or_else(std::env::temp_dir);
        let path = dir.join("certdeck.log");
        let file = std::fs::create_dir_all(&dir).and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
        });
        if let Ok(file) = file {
            eprintln!("certdeck: logging to {}", path.display());
            let _ = LOG_PATH.set(path);
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    EnvFilter::try_from_env("CERTDECK_LOG").unwrap_or_else(|_| "info".into()),
                )
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
        }
        return;
    }
    let _ = tracing_subscriber::fmt()
        // kube's client logs each failed connection; certdeck reports it as the context's row.
        .with_env_filter(
            EnvFilter::try_from_env("CERTDECK_LOG")
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// `certdeck demo`.
pub async fn demo(cli: &Cli, args: &DemoArgs) -> anyhow::Result<i32> {
    let (cfg, _) = crate::cli::load_config(cli.config.as_ref())?;
    let (mut probe, thresholds) = crate::cli::resolve_probe(&args.probe, cfg.as_ref())?;
    let fleet = crate::demo::DemoFleet::start().await?;
    probe.extra_roots.push(fleet.trust_anchor());
    let print = args.output.is_some() || !std::io::IsTerminal::is_terminal(&std::io::stdout());
    if !args.serve && !print {
        let inv = fleet.inventory();
        let renewer: std::sync::Arc<dyn crate::dispatch::Backend> =
            std::sync::Arc::new(crate::demo::DemoRenewer::new(&fleet));
        let result = dashboard(cli, cfg.as_ref(), inv, probe, thresholds, vec![renewer]).await;
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
        shutdown_signal().await;
        return Ok(exit::OK);
    }
    let (records, failures) = sources::scan(fleet.inventory(), probe).await;
    print_report(
        &records,
        &failures,
        args.output.unwrap_or(Format::Table),
        thresholds,
        false,
    )?;
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
    if cli.starttls.is_some() && cli.command.is_some() {
        eprintln!("certdeck: --starttls before a subcommand is the dashboard's; give it after the subcommand (certdeck scan --starttls PROTO ...)");
        return Ok(exit::UNKNOWN);
    }
    match &cli.command {
        Some(Command::Scan(args)) => match ScanSettings::resolve(args, cli.config.as_ref()) {
            Ok(settings) => scan(settings).await,
            Err(e) => {
                eprintln!("certdeck: {e}");
                Ok(exit::UNKNOWN)
            }
        },
        Some(Command::Demo(args)) => demo(&cli, args).await,
        Some(Command::Renew(args)) if renew_is_for_files(&cli) => {
            match renew_managed_files(&args.action, cli.config.as_ref()).await {
                Some(code) => Ok(code),
                None => Ok(crate::actions::headless::run(
                    crate::actions::ActionKind::Renew,
                    &args.action,
                    None,
                    cli.config.as_ref(),
                )
                .await),
            }
        }
        Some(Command::Renew(args)) => Ok(crate::actions::headless::run(
            crate::actions::ActionKind::Renew,
            &args.action,
            None,
            cli.config.as_ref(),
        )
        .await),
        Some(Command::Rotate(args)) => {
            let ca = match (&args.ca_secret, &args.ca_cert, &args.ca_key) {
                (Some(s), _, _) => match s.split_once('/') {
                    Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                        Some(crate::actions::CaSource::Secret {
                            namespace: ns.to_owned(),
                            name: name.to_owned(),
                        })
                    }
                    _ => {
                        eprintln!("certdeck: --ca-secret takes NAMESPACE/NAME, not '{s}'");
                        return Ok(exit::UNKNOWN);
                    }
                },
                (None, Some(c), Some(k)) => Some(crate::actions::CaSource::Files {
                    cert: c.clone(),
                    key: k.clone(),
                }),
                _ => None,
            };
            Ok(crate::actions::headless::run(
                crate::actions::ActionKind::Rotate,
                &args.action,
                ca,
                cli.config.as_ref(),
            )
            .await)
        }
        None => {
            let (cfg, _) = crate::cli::load_config(cli.config.as_ref())?;
            let (probe, thresholds) =
                crate::cli::resolve_probe(&crate::cli::ProbeArgs::default(), cfg.as_ref())?;
            let starttls = crate::cli::starttls_mode(cli.starttls, cfg.as_ref());
            let inventory = crate::cli::config_inventory(cfg.as_ref(), starttls)?;
            dashboard(&cli, cfg.as_ref(), inventory, probe, thresholds, Vec::new()).await
        }
    }
}
