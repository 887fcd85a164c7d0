//! The command line: clap arguments for the core and the subcommands. Every source plugin adds
//! its own flags to the dashboard, `scan` and the action commands ([`command`]); everything is
//! resolved once with the config file by [`crate::settings`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};

use crate::report::Format;

pub const EXIT_CODES_HELP: &str = "\
Exit codes (scan):
  0  OK        every certificate is fine
  1  WARNING   something expires within --warn (default 30d)
  2  CRITICAL  something expires within --crit (default 7d), has expired, or is not yet valid
  3  UNKNOWN   a location or a source could not be read and nothing is worse; also usage and
               config errors";

pub const ACTION_EXIT_CODES_HELP: &str = "\
Exit codes (renew, rotate, revoke, action):
  0  done, or the dry run was shown
  1  an action failed (API error, timeout, issuance failure, verification); see the audit log
  3  nothing was done: refused (--read-only), declined, unknown id, or a usage error";

#[derive(Debug, Parser)]
#[command(
    name = "certdeck",
    version,
    about = "A terminal dashboard for certificate fleets",
    long_about = "A terminal dashboard for certificate fleets: every certificate on TLS and STARTTLS endpoints, in files, in Kubernetes, in AWS Certificate Manager and in Vault/OpenBao PKI, in one expiry timeline. Without a subcommand, opens the dashboard over the sources named by the flags below, or by the config file.",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    /// Config file (default: the platform config directory, e.g. ~/.config/certdeck/config.toml).
    #[arg(long, global = true, env = "CERTDECK_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Dashboard theme: dark, light, high-contrast, monochrome, or NAME for
    /// <config dir>/themes/NAME.toml. NO_COLOR forces monochrome.
    #[arg(long, global = true, value_name = "NAME")]
    pub theme: Option<String>,
    /// Hide and refuse every action that changes anything (also `read_only = true` in the
    /// config file).
    #[arg(long, global = true)]
    pub read_only: bool,
    /// Do not capture the mouse (keeps the terminal's own selection).
    #[arg(long, global = true)]
    pub no_mouse: bool,
    /// Hide host names and paths in the dashboard (for demos and screenshots).
    #[arg(long, global = true)]
    pub redact: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
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
    /// Run the sources on their schedules and serve /metrics (Prometheus text or OpenMetrics),
    /// /healthz and /readyz.
    Serve(ServeArgs),
    /// Renew rows: cert-manager Certificates (as `cmctl renew` does), ACME-managed files,
    /// files renewed from a Vault/OpenBao role, the demo fleet.
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Renew(RenewArgs),
    /// Rotate plain TLS Secrets: new key and certificate, old Secret saved first, verified.
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Rotate(RotateArgs),
    /// Revoke certificates: Vault/OpenBao-issued rows (the plan names each serial and subject;
    /// the re-read confirms it).
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Revoke(RenewArgs),
    /// Run a user-defined action (`[[action]]` in the config file) on rows, by its name.
    #[command(after_help = ACTION_EXIT_CODES_HELP)]
    Action(UserActionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    Man,
}

/// Options of the action commands.
#[derive(Debug, Args, Clone)]
pub struct ActionArgs {
    /// Row ids from `certdeck scan -o json`, or locations (ctx/ns/secret/name#tls.crt, a file).
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// Do it without asking for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Show the exact change and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long an action waits for someone else (cert-manager) to finish.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub wait: Duration,
    /// Time limit of each API request (default 10s).
    #[arg(long = "request-timeout", visible_alias = "timeout", value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Rows acted on at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub concurrency: usize,
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

#[derive(Debug, Args, Clone)]
pub struct UserActionArgs {
    /// The action's `name` (default: its description, lower-case, words joined by `-`).
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub action: ActionArgs,
}

#[derive(Debug, Args, Clone)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args, Default, Clone)]
#[command(next_help_heading = "Thresholds and probes")]
pub struct ProbeArgs {
    /// Warning threshold before expiry (e.g. 30d, 2w, 36h).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub warn: Option<Duration>,
    /// Critical threshold before expiry (e.g. 7d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub crit: Option<Duration>,
    /// Short-lived certificates: warning from this percentage of the lifetime used (default 60).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100), value_name = "PERCENT")]
    pub warn_lifetime_used: Option<u8>,
    /// Short-lived certificates: critical, rotation overdue, from this percentage (default 70).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=100), value_name = "PERCENT")]
    pub crit_lifetime_used: Option<u8>,
    /// Certificates with a lifetime shorter than this are judged by lifetime used, not days
    /// left (default 7d).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub short_lived: Option<Duration>,
    /// Per-location time limit (TLS: DNS, connect and handshake together).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Locations probed at once.
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Extra trust anchors (PEM file; repeatable).
    #[arg(long = "ca-file", value_name = "PEM")]
    pub ca_files: Vec<PathBuf>,
    /// Do not check whether certificates are revoked (OCSP stapled or fetched, CRLs); also
    /// `[probe] revocation = false`.
    #[arg(long)]
    pub no_revocation: bool,
}

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// What to read: TLS targets (host:port, host (443), https://host[:port][/path], [v6]:port,
    /// addr:port@sni), and existing files or directories (read as certificate files).
    #[arg(value_name = "TARGET|PATH")]
    pub targets: Vec<String>,
    /// Report format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Colour in the table output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// After the scan, notify `[[notify]]` NAME of what changed since its last delivery
    /// (repeatable; nothing is sent when nothing changed).
    #[arg(long = "notify", value_name = "NAME")]
    pub notify: Vec<String>,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default `[serve] listen`, else 127.0.0.1:9793).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Add an optional label to every per-location series (repeatable): id, filename,
    /// subject_O, issuer_O (default `[serve] extra_labels`, else none).
    #[arg(long = "extra-label", value_name = "NAME")]
    pub extra_labels: Vec<String>,
    #[command(flatten)]
    pub probe: ProbeArgs,
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
    crate::config::parse_duration(s)
}

/// The whole command: the derived arguments, plus every source plugin's flags on the dashboard
/// (the bare command), `scan` and the action commands.
pub fn command() -> clap::Command {
    let mut cmd = crate::sources::registry::add_flags(Cli::command());
    for sub in ["scan", "serve", "renew", "rotate", "revoke", "action"] {
        cmd = cmd.mut_subcommand(sub, crate::sources::registry::add_flags);
    }
    cmd
}

/// A parsed command line, with the raw matches the plugins read their flags from.
pub struct Parsed {
    pub cli: Cli,
    pub matches: clap::ArgMatches,
}

impl Parsed {
    /// The matches of the subcommand being run (the root ones for the dashboard).
    pub fn command_matches(&self) -> &clap::ArgMatches {
        match self.matches.subcommand() {
            Some((_, m)) => m,
            None => &self.matches,
        }
    }
}

/// Parse the process's arguments (or `args`).
pub fn parse_from<I, T>(args: I) -> Result<Parsed, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    Ok(Parsed { cli, matches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_command_with_every_plugin_is_consistent() {
        command().debug_assert();
        let p = parse_from([
            "certdeck",
            "scan",
            "a.example:443",
            "-t",
            "b.example",
            "--k8s",
            "--read-only",
        ])
        .unwrap();
        assert!(p.cli.read_only);
        let p = parse_from(["certdeck", "--read-only", "renew", "k8s-0123456789"]).unwrap();
        assert!(p.cli.read_only, "--read-only before the subcommand too");
        let p = parse_from([
            "certdeck",
            "renew",
            "k8s-0123456789",
            "--read-only",
            "--yes",
        ])
        .unwrap();
        assert!(p.cli.read_only, "and after it");
    }
}
