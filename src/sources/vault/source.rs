//! The Vault / OpenBao source as a plugin: the `--vault ADDR` / `--vault-mount` flags, the
//! `[[vault]]` config sections, and one source instance per server address. The files a
//! `[[vault]]` section renews are rows of a file source of their own (and their endpoints of
//! a TLS source), so a Vault outage leaves them fresh; the backend that acts on both is
//! attached to the server's instance.

use std::sync::Arc;
use std::time::Duration;

use super::auth::ProcessEnv;
use super::backend::VaultBackend;
use super::{auth, VaultConfig, VaultSettings, KIND};
use crate::model::{Record, SourceKind};
use crate::sources::file::source::FileSource;
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::tls::source::{parse_targets, TlsSource};
use crate::sources::{BoxFut, Problem, RoundEnd, Schedule, Sink, Source, SourceId, Target};

/// The Vault source's flags. Credentials come from the environment as the vault CLI reads them
/// (`VAULT_TOKEN`, `~/.vault-token`...) or from a `[[vault]]` section with the same address.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Vault / OpenBao PKI")]
pub struct VaultArgs {
    /// Read the PKI mounts of this Vault or OpenBao server (repeatable; http(s)://host:port).
    #[arg(id = "vault_addr", long = "vault", value_name = "ADDR")]
    pub vault: Vec<String>,
    /// PKI mount to read (repeatable; default: every `pki` mount listed by sys/mounts).
    #[arg(
        id = "vault_mount",
        long = "vault-mount",
        value_name = "MOUNT",
        requires = "vault_addr"
    )]
    pub mounts: Vec<String>,
}

pub struct VaultPlugin;
pub static PLUGIN: VaultPlugin = VaultPlugin;

/// Default refresh: a large mount takes seconds to read, and issued certificates change slowly.
const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(600), Duration::from_secs(900));

/// Read and check the `[[vault]]` sections: one per server (address and namespace), files
/// named once, mounts and roles well formed.
pub fn read_config(doc: &crate::config::Document) -> Result<Vec<VaultConfig>, BuildError> {
    let blocks: Vec<VaultConfig> = doc.section("vault")?.unwrap_or_default();
    let bad = |m: String| BuildError::Invalid(format!("{}: [[vault]] {m}", doc.name()));
    let mut servers = std::collections::HashSet::new();
    let mut certs = std::collections::HashSet::new();
    for b in &blocks {
        let addr = match &b.address {
            Some(a) => Some(auth::normalize_address(a).map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        if !servers.insert((addr.clone(), b.namespace.clone())) {
            return Err(bad(format!(
                "sections name the same server twice ({})",
                addr.as_deref().unwrap_or("the default address")
            )));
        }
        for f in &b.files {
            super::check_mount(&f.mount).map_err(|e| bad(e.to_string()))?;
            super::check_role(&f.role).map_err(|e| bad(e.to_string()))?;
            if !certs.insert(f.cert.clone()) {
                return Err(bad(format!("files list {} twice", f.cert.display())));
            }
            let mut paths = vec![&f.cert, &f.key];
            paths.extend(f.chain.as_ref());
            let unique: std::collections::HashSet<_> = paths.iter().collect();
            if unique.len() != paths.len() {
                return Err(bad(format!(
                    "{}: certificate, chain and key must be different files",
                    f.cert.display()
                )));
            }
            if let Some(e) = &f.endpoint {
                Target::parse(e, None).map_err(|x| bad(format!("endpoint '{e}': {}", x.why)))?;
            }
        }
    }
    Ok(blocks)
}

impl Plugin for VaultPlugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn row_kinds(&self) -> Vec<SourceKind> {
        // Issued certificates and issuers, and the files it renews and their endpoints.
        vec![KIND, SourceKind::FILE, SourceKind::TLS]
    }

    fn sections(&self) -> &'static [&'static str] {
        &["vault"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <VaultArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <VaultArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| !a.vault.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: VaultArgs = ctx.flags()?.unwrap_or_default();
        let blocks = read_config(ctx.config)?;
        let same_server = |b: &VaultConfig, want: &str| {
            b.address
                .as_deref()
                .and_then(|x| auth::normalize_address(x).ok())
                .is_some_and(|x| x == want)
        };
        // (address from the command line, section) per server.
        let mut chosen: Vec<(Option<String>, VaultConfig)> = Vec::new();
        for a in &args.vault {
            let want =
                auth::normalize_address(a).map_err(|e| BuildError::Invalid(e.to_string()))?;
            let mut c = blocks
                .iter()
                .find(|b| same_server(b, &want))
                .cloned()
                .unwrap_or_default();
            if !args.mounts.is_empty() {
                c.mounts = args.mounts.clone();
            }
            if !chosen
                .iter()
                .any(|(x, _)| x.as_deref() == Some(want.as_str()))
            {
                chosen.push((Some(want), c));
            }
        }
        if ctx.from_config {
            for b in &blocks {
                let taken = chosen
                    .iter()
                    .any(|(x, _)| x.as_deref().is_some_and(|w| same_server(b, w)));
                if !taken {
                    chosen.push((None, b.clone()));
                }
            }
        }
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        for (addr, cfg) in chosen {
            let settings = VaultSettings::resolve(addr.as_deref(), Some(&cfg), &ProcessEnv)
                .map_err(|e| BuildError::Invalid(format!("vault: {e}")))?;
            let label = settings.label();
            let backend = Arc::new(VaultBackend::new(settings.clone(), cfg.files.clone()));
            // Finding a row by id: the server itself is read only when an id could be its.
            let finding = matches!(ctx.purpose, Purpose::FindRows(_));
            if !finding || ctx.purpose.may_find(KIND) || !cfg.files.is_empty() {
                out.push(Arc::new(VaultSource {
                    id: SourceId::new(KIND, label.clone()),
                    settings,
                    backend,
                    read_server: !finding || ctx.purpose.may_find(KIND),
                }));
            }
            if !cfg.files.is_empty() {
                let instance = format!("vault {label}");
                let specs = cfg
                    .files
                    .iter()
                    .map(|f| f.cert.display().to_string())
                    .collect();
                out.push(Arc::new(
                    FileSource::new(specs)
                        .named(&instance, SCHEDULE)
                        .with_probe(ctx.probe.clone()),
                ));
                let raw: Vec<String> = cfg
                    .files
                    .iter()
                    .filter_map(|f| f.endpoint.clone())
                    .collect();
                if !raw.is_empty() {
                    let (targets, bad) = parse_targets(raw, None);
                    out.push(Arc::new(
                        TlsSource::new(targets, bad, ctx.probe.clone()).named(&instance, SCHEDULE),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// One Vault / OpenBao server: every PKI mount it lets the token read.
pub struct VaultSource {
    id: SourceId,
    settings: VaultSettings,
    backend: Arc<VaultBackend>,
    /// False when built only to carry the backend of its files (finding a file row by id).
    read_server: bool,
}

impl VaultSource {
    pub fn new(settings: VaultSettings, files: Vec<super::VaultFile>) -> VaultSource {
        VaultSource {
            id: SourceId::new(KIND, settings.label()),
            backend: Arc::new(VaultBackend::new(settings.clone(), files)),
            settings,
            read_server: true,
        }
    }

    pub fn settings(&self) -> &VaultSettings {
        &self.settings
    }
}

/// How a read ended, from the mounts' facts.
fn end_of(mounts: &[super::MountFacts], sink: &Sink) -> RoundEnd {
    if sink.is_closed() {
        return RoundEnd::abandoned();
    }
    let errors: usize = mounts.iter().map(|m| m.errors).sum();
    match mounts.iter().find_map(|m| m.problem.clone()) {
        Some(p) => {
            let more = if errors > 1 {
                format!(" (and {} more unreadable)", errors - 1)
            } else {
                String::new()
            };
            RoundEnd::partial(Problem::new(p.kind, format!("{}{more}", p.message)))
        }
        None => RoundEnd::complete(),
    }
}

impl Source for VaultSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            if !self.read_server {
                return RoundEnd::complete();
            }
            match super::run_into(&self.settings, sink).await {
                Ok(summary) => end_of(&summary.mounts, sink),
                Err(e) => RoundEnd::failed(e.problem()),
            }
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            // Issued certificates are re-read one by one; anything else takes a full round.
            let certs: Option<Vec<(String, String)>> = rows
                .iter()
                .filter(|r| r.source == KIND)
                .map(|r| {
                    let j = &r.extra.as_ref()?.json;
                    (j["kind"] == "certificate").then_some(())?;
                    Some((
                        j["mount"].as_str()?.to_owned(),
                        j["serial"].as_str()?.to_owned(),
                    ))
                })
                .collect();
            match certs {
                Some(c) if !c.is_empty() => {
                    match super::read::reread_into(&self.settings, &c, sink).await {
                        Ok(m) => end_of(&m, sink),
                        Err(e) => RoundEnd::failed(e.problem()),
                    }
                }
                Some(_) => RoundEnd::complete(),
                None => self.round(sink).await,
            }
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }

    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        vec![self.backend.clone()]
    }
}
