//! The `acme` source: the `[[certificate]]` files certdeck renews and the endpoints that serve
//! them, as rows (kinds `file` and `tls`), with ACME renewal offered on them.

use std::sync::Arc;
use std::time::Duration;

use super::{AcmeBackend, AcmeIssuer, ManagedFile};
use crate::model::{Record, SourceKind};
use crate::sources::file::source::FileSource;
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::tls::source::{parse_targets, TlsSource};
use crate::sources::{BoxFut, RoundEnd, Schedule, Sink, Source, SourceId};

pub struct AcmePlugin;
pub static PLUGIN: AcmePlugin = AcmePlugin;

/// The issuers and the files they renew.
pub type AcmeConfig = (Vec<AcmeIssuer>, Vec<ManagedFile>);

/// The `[[acme]]` and `[[certificate]]` sections, checked together.
pub fn read_config(doc: &crate::config::Document) -> Result<Option<AcmeConfig>, BuildError> {
    let issuers: Vec<AcmeIssuer> = doc.section("acme")?.unwrap_or_default();
    let files: Vec<ManagedFile> = doc.section("certificate")?.unwrap_or_default();
    if issuers.is_empty() && files.is_empty() {
        return Ok(None);
    }
    super::validate(&issuers, &files)
        .map_err(|e| BuildError::Invalid(format!("{}: {e}", doc.name())))?;
    Ok(Some((issuers, files)))
}

impl Plugin for AcmePlugin {
    fn kind(&self) -> SourceKind {
        SourceKind::new("acme")
    }

    fn row_kinds(&self) -> Vec<SourceKind> {
        // Its rows are files and endpoints.
        vec![SourceKind::FILE, SourceKind::TLS]
    }

    fn sections(&self) -> &'static [&'static str] {
        &["acme", "certificate"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn named(&self, _matches: &clap::ArgMatches) -> bool {
        false
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let Some((issuers, files)) = read_config(ctx.config)? else {
            return Ok(Vec::new());
        };
        let finding = matches!(ctx.purpose, crate::sources::Purpose::FindRows(_));
        if !ctx.from_config && !finding {
            return Ok(Vec::new());
        }
        Ok(vec![Arc::new(AcmeSource::new(
            issuers,
            files,
            ctx.probe.clone(),
        ))])
    }
}

/// The managed files and their endpoints.
pub struct AcmeSource {
    id: SourceId,
    files: FileSource,
    endpoints: TlsSource,
    backend: Arc<AcmeBackend>,
}

impl AcmeSource {
    pub fn new(
        issuers: Vec<AcmeIssuer>,
        files: Vec<ManagedFile>,
        probe: crate::sources::ProbeSettings,
    ) -> AcmeSource {
        let schedule = Schedule::every(Duration::from_secs(300), Duration::from_secs(600));
        let specs = files.iter().map(|f| f.cert.display().to_string()).collect();
        let raw: Vec<String> = files.iter().filter_map(|f| f.endpoint.clone()).collect();
        let (targets, bad) = parse_targets(raw, None);
        AcmeSource {
            id: SourceId::new(SourceKind::new("acme"), ""),
            files: FileSource::new(specs).named("acme", schedule),
            endpoints: TlsSource::new(targets, bad, probe).named("acme", schedule),
            backend: Arc::new(AcmeBackend {
                issuers,
                files,
                account_dir: super::default_account_dir(),
            }),
        }
    }
}

impl Source for AcmeSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        self.files.schedule()
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let a = self.files.round(sink).await;
            if !a.complete {
                return a;
            }
            self.endpoints.round(sink).await
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let a = self.files.reobserve(rows, sink).await;
            let b = self.endpoints.reobserve(rows, sink).await;
            if a.complete {
                b
            } else {
                a
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
