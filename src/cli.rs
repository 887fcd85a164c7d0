//! Command line: clap arguments, resolved once with the config file into `ScanSettings`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{self, ConfigFile};
use crate::model::Thresholds;
use crate::report::Format;
use crate::sources::{Inventory, ProbeSettings, Target, DEFAULT_CONCURRENCY};

pub const EXIT_CODES_HELP: &str = "\
Exit codes (scan):
  0  OK        every certificate is fine
  1  WARNING   something expires within --warn (default 30d)
  2  CRITICAL  something expires within --crit (default 7d), has expired, or is not yet valid
  3  UNKNOWN   a location could not be read and nothing is worse; also usage and config errors";

#[derive(Debug, Parser)]
#[command(name = "certdeck", version, about = "A terminal dashboard for certificate fleets", after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Config file (default: the platform config directory, e.g. ~/.config/certdeck/config.toml).
    #[arg(long, global = true, env = "CERTDECK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Dashboard theme: dark, light, high-contrast, monochrome, or NAME for
    /// <config dir>/themes/NAME.toml. NO_COLOR forces monochrome.
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,
    /// Hide and refuse every action that changes anything.
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Do not capture the mouse (keeps the terminal's own selection).
    #[arg(long, global = true)]
    pub no_mouse: bool,
    /// Hide host names and paths in the dashboard (for demos and screenshots).
    #[arg(long, global = true)]
    pub redact: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read every certificate headless and print a report sorted by expiry.
    #[command(after_help = EXIT_CODES_HELP)]
    Scan(ScanArgs),
    /// Start a built-in demo fleet on loopback and show it (no configuration needed).
    Demo(DemoArgs),
    /// Renew cert-manager Certificates as `cmctl renew` does, and follow them until Ready.
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Renew(RenewArgs),
    /// Rotate plain TLS Secrets: new key and certificate, old Secret saved first, verified.
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Rotate(RotateArgs),
}

pub const ACTION_EXIT_CODES_HELP: &str = "\
Exit codes (renew, rotate):
  0  done, or the dry run was shown
  1  an action failed (API error, timeout, issuance failure, verification); see the audit log
  3  nothing was done: refused (--read-only), declined, unknown id, or a usage error";

/// Options shared by `renew` and `rotate`.
#[derive(Debug, Args, Clone)]
pub struct ActionArgs {
    /// Row ids from `certdeck scan -o json`, or locations (ctx/ns/secret/name#tls.crt).
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// Do it without asking for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Show the exact change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Refuse every action (also `read_only = true` in [kubernetes]).
    #[arg(long)]
    pub read_only: bool,
    /// How long `renew` waits for cert-manager to finish.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub wait: Duration,
    /// Time limit of each API request (default 10s).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Rows acted on at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
    #[command(flatten)]
    pub k8s: K8sArgs,
}

#[derive(Debug, Args, Clone)]
pub struct RenewArgs {
    #[command(flatten)]
    pub action: ActionArgs,
}

#[derive(Debug, Args, Clone)]
pub struct RotateArgs {
    #[command(flatten)]
    pub action: ActionArgs,
    /// CA Secret (tls.crt + tls.key) that signs CA-signed certificates, in the same context.
    #[arg(long, value_name = "NAMESPACE/NAME", conflicts_with_all = ["ca_cert", "ca_key"])]
    pub ca_secret: Option<String>,
    /// CA certificate file (PEM) that signs CA-signed certificates (with --ca-key).
    #[arg(long, value_name = "PEM", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// CA private key file (PEM), with --ca-cert.
    #[arg(long, value_name = "PEM", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args, Default)]
pub struct ProbeArgs {
    /// Warning threshold before expiry (e.g. 30d, 2w, 36h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub warn: Option<Duration>,
    /// Critical threshold before expiry (e.g. 7d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub crit: Option<Duration>,
    /// Per-target time limit for DNS, connect and handshake together.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Probes in flight at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Extra trust anchors (PEM file; repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// TLS targets: host:port, host (443), https://host[:port][/path], [v6]:port, addr:port@sni.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Certificate files, directories (walked recursively) or globs (repeatable).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub files: Vec<String>,
    /// File with one target per line (# comments allowed; repeatable).
    #[arg(long = "targets-file", value_name = "PATH")]
    pub targets_files: Vec<PathBuf>,
    /// Name to send as SNI and verify against, for targets that do not give one with @name.
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Report format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Colour in the table output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub k8s: K8sArgs,
    #[command(flatten)]
    pub aws: crate::sources::aws::AwsArgs,
}

/// Kubernetes flags, as kubectl spells them.
#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Kubernetes")]
pub struct K8sArgs {
    /// Read Kubernetes with the kubeconfig's current context (implied by any flag below).
    #[arg(long)]
    pub k8s: bool,
    /// Kubeconfig file (default: KUBECONFIG, else ~/.kube/config).
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to read (repeatable; default: the current context).
    #[arg(long = "context", value_name = "NAME")]
    pub contexts: Vec<String>,
    /// Read every context of the kubeconfig.
    #[arg(long)]
    pub all_contexts: bool,
    /// Namespace to read (default: the context's namespace).
    #[arg(
        short = 'n',
        long,
        value_name = "NAMESPACE",
        conflicts_with = "all_namespaces"
    )]
    pub namespace: Option<String>,
    /// Read every namespace, plus webhook and APIService caBundles.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Probe each Ingress TLS host and flag one that serves another certificate than its Secret.
    #[arg(long)]
    pub check_ingress: bool,
}

impl K8sArgs {
    /// True when any Kubernetes flag was given.
    pub fn given(&self) -> bool {
        self.k8s
            || self.kubeconfig.is_some()
            || !self.contexts.is_empty()
            || self.all_contexts
            || self.namespace.is_some()
            || self.all_namespaces
            || self.check_ingress
    }

    /// Kubernetes settings from these flags over the `[kubernetes]` config section.
    pub fn resolve(
        &self,
        cfg: Option<&config::KubernetesConfig>,
        default_timeout: Duration,
    ) -> crate::sources::k8s::K8sSettings {
        let d = config::KubernetesConfig::default();
        let c = cfg.unwrap_or(&d);
        let flags_scope = self.namespace.is_some() || self.all_namespaces;
        let flags_contexts = !self.contexts.is_empty() || self.all_contexts;
        crate::sources::k8s::K8sSettings {
            kubeconfig: self.kubeconfig.clone().or_else(|| c.kubeconfig.clone()),
            contexts: if flags_contexts {
                self.contexts.clone()
            } else {
                c.contexts.clone()
            },
            all_contexts: if flags_contexts {
                self.all_contexts
            } else {
                c.all_contexts
            },
            namespace: if flags_scope {
                self.namespace.clone()
            } else {
                c.namespace.clone()
            },
            all_namespaces: if flags_scope {
                self.all_namespaces
            } else {
                c.all_namespaces
            },
            timeout: c.timeout.unwrap_or(default_timeout),
            page_size: c
                .page_size
                .unwrap_or(crate::sources::k8s::DEFAULT_PAGE_SIZE),
            check_ingresses: self.check_ingress || c.check_ingresses,
            ingress_port: 443,
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo servers running and print their addresses, until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Print a report instead of opening the dashboard (also when stdout is not a terminal).
    #[arg(short, long, value_enum)]
    pub output: Option<Format>,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30d, 12h, 5s)"))
}

/// Everything a scan needs, resolved once from flags and the config file.
#[derive(Debug, Clone)]
pub struct ScanSettings {
    pub inventory: Inventory,
    pub probe: ProbeSettings,
    pub thresholds: Thresholds,
    pub format: Format,
    pub color: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot read targets file {path}: {source}")]
    TargetsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("nothing to scan: give targets, --file, --k8s/--kubeconfig/-A or --aws, or list them in {0}")]
    Nothing(String),
    #[error("--crit ({crit}) must not be longer than --warn ({warn})")]
    Thresholds { warn: String, crit: String },
    #[error("--concurrency must be at least 1")]
    Concurrency,
    #[error("--timeout must be longer than zero")]
    Timeout,
}

/// Load the config file: the named one (must exist) or the default one (may be absent).
pub fn load_config(named: Option<&PathBuf>) -> Result<(Option<ConfigFile>, String), SettingsError> {
    match named {
        Some(p) => Ok((config::load(p, true)?, p.display().to_string())),
        None => match config::default_path() {
            Some(p) => Ok((config::load(&p, false)?, p.display().to_string())),
            None => Ok((None, "the config file".to_owned())),
        },
    }
}

fn read_targets_file(path: &PathBuf, out: &mut Vec<String>) -> Result<(), SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::TargetsFile {
        path: path.clone(),
        source,
    })?;
    out.extend(
        text.lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(str::to_owned),
    );
    Ok(())
}

/// Thresholds and probe settings from flags over the config file over defaults.
pub fn resolve_probe(
    args: &ProbeArgs,
    cfg: Option<&ConfigFile>,
) -> Result<(ProbeSettings, Thresholds), SettingsError> {
    let def = Thresholds::default();
    let warn = args.warn.or(cfg.and_then(|c| c.thresholds.warn));
    let crit = args.crit.or(cfg.and_then(|c| c.thresholds.crit));
    let t = Thresholds {
        warn_secs: warn.map(|d| d.as_secs() as i64).unwrap_or(def.warn_secs),
        crit_secs: crit.map(|d| d.as_secs() as i64).unwrap_or(def.crit_secs),
    };
    if t.crit_secs > t.warn_secs {
        let f = |s: i64| humantime::format_duration(Duration::from_secs(s as u64)).to_string();
        return Err(SettingsError::Thresholds {
            warn: f(t.warn_secs),
            crit: f(t.crit_secs),
        });
    }
    let timeout = args
        .timeout
        .or(cfg.and_then(|c| c.probe.timeout))
        .unwrap_or(Duration::from_secs(5));
    if timeout.is_zero() {
        return Err(SettingsError::Timeout);
    }
    let concurrency = args
        .concurrency
        .or(cfg.and_then(|c| c.probe.concurrency))
        .unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(SettingsError::Concurrency);
    }
    let mut ca_files = args.ca_files.clone();
    if let Some(c) = cfg {
        ca_files.extend(c.ca_files.iter().cloned());
    }
    Ok((
        ProbeSettings {
            timeout,
            concurrency,
            ca_files,
            extra_roots: Vec::new(),
        },
        t,
    ))
}

/// Parse raw targets (de-duplicated; unparsable ones kept as error rows) into an inventory.
pub fn build_inventory(
    raw_targets: Vec<String>,
    files: Vec<String>,
    sni: Option<&str>,
) -> Inventory {
    let mut inventory = Inventory {
        files,
        ..Inventory::default()
    };
    let mut seen = std::collections::HashSet::new();
    for raw in raw_targets {
        match Target::parse(&raw, sni) {
            Ok(t) => {
                if seen.insert(t.clone()) {
                    inventory.targets.push(t);
                }
            }
            Err(e) => inventory.bad_targets.push((raw, e.why)),
        }
    }
    inventory
}

/// Targets and files the config file names: `targets`, `targets_files`, `files`, and each
/// `[[certificate]]`'s file and the endpoint that serves it.
fn config_lists(
    c: &ConfigFile,
    raw: &mut Vec<String>,
    files: &mut Vec<String>,
) -> Result<(), SettingsError> {
    raw.extend(c.targets.iter().cloned());
    for p in &c.targets_files {
        read_targets_file(p, raw)?;
    }
    files.extend(c.files.iter().cloned());
    for m in &c.certificates {
        files.push(m.cert.display().to_string());
        raw.extend(m.endpoint.iter().cloned());
    }
    Ok(())
}

/// The inventory the config file names (targets, target files, files); may be empty.
pub fn config_inventory(cfg: Option<&ConfigFile>) -> Result<Inventory, SettingsError> {
    let mut raw = Vec::new();
    let mut files = Vec::new();
    if let Some(c) = cfg {
        config_lists(c, &mut raw, &mut files)?;
    }
    let mut inv = build_inventory(raw, files, None);
    // The dashboard reads Kubernetes when the config file has a [kubernetes] section.
    inv.k8s = cfg
        .and_then(|c| c.kubernetes.as_ref())
        .map(|kc| K8sArgs::default().resolve(Some(kc), Duration::from_secs(10)));
    inv.aws = cfg
        .map(|c| {
            c.aws
                .iter()
                .map(|a| a.resolve(Duration::from_secs(10)))
                .collect()
        })
        .unwrap_or_default();
    Ok(inv)
}

impl ScanSettings {
    /// Resolve scan flags with the config file. The inventory comes from the command line, or
    /// from the config file when the command line names nothing.
    pub fn resolve(
        args: &ScanArgs,
        config_path: Option<&PathBuf>,
    ) -> Result<ScanSettings, SettingsError> {
        let (cfg, cfg_name) = load_config(config_path)?;
        let (probe, thresholds) = resolve_probe(&args.probe, cfg.as_ref())?;
        let mut raw_targets = args.targets.clone();
        for p in &args.targets_files {
            read_targets_file(p, &mut raw_targets)?;
        }
        let mut files = args.files.clone();
        let k8s_cfg = cfg.as_ref().and_then(|c| c.kubernetes.as_ref());
        let mut k8s = args
            .k8s
            .given()
            .then(|| args.k8s.resolve(k8s_cfg, probe.timeout));
        let aws_cfg = cfg.as_ref().map(|c| c.aws.as_slice()).unwrap_or_default();
        let mut aws = if args.aws.given() {
            args.aws.resolve(aws_cfg, probe.timeout)
        } else {
            Vec::new()
        };
        if raw_targets.is_empty() && files.is_empty() && k8s.is_none() && aws.is_empty() {
            if let Some(c) = &cfg {
                config_lists(c, &mut raw_targets, &mut files)?;
                k8s = k8s_cfg.map(|kc| K8sArgs::default().resolve(Some(kc), probe.timeout));
                aws = aws_cfg.iter().map(|a| a.resolve(probe.timeout)).collect();
            }
        }
        if raw_targets.is_empty() && files.is_empty() && k8s.is_none() && aws.is_empty() {
            return Err(SettingsError::Nothing(cfg_name));
        }
        let mut inventory = Inventory {
            files,
            k8s,
            aws,
            ..Inventory::default()
        };
        let mut seen = std::collections::HashSet::new();
        for raw in raw_targets {
            match Target::parse(&raw, args.sni.as_deref()) {
                Ok(t) => {
                    if seen.insert(t.clone()) {
                        inventory.targets.push(t);
                    }
                }
                Err(e) => inventory.bad_targets.push((raw, e.why)),
            }
        }
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::IsTerminal::is_terminal(&std::io::stdout())
            }
        };
        Ok(ScanSettings {
            inventory,
            probe,
            thresholds,
            format: args.output,
            color,
        })
    }
}
