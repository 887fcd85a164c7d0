//! The Google Cloud plugin: its flags (`--gcp-project`, `--gcp-location`), its `[[gcp]]`
//! config blocks, and one source instance per (project, location), labelled
//! `PROJECT/LOCATION` (`PROJECT/*` when every location is read). The instances of one project
//! share one client: credentials are built once, and each location reads with its own health.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use super::actions::GcpBackend;
use super::api::{Client, GcpError};
use super::facts::{self, GcpFacts, KIND};
use super::settings::{GcpArgs, GcpConfig, GcpSettings, Locations};
use crate::model::{Record, SourceKind};
use crate::sources::registry::{BuildContext, BuildError, Plugin, Purpose};
use crate::sources::{BoxFut, Problem, RoundEnd, Schedule, Sink, Source, SourceId};

pub struct GcpPlugin;
pub static PLUGIN: GcpPlugin = GcpPlugin;

impl Plugin for GcpPlugin {
    fn kind(&self) -> SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["gcp"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <GcpArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <GcpArgs as clap::FromArgMatches>::from_arg_matches(m).is_ok_and(|a| a.given())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: GcpArgs = ctx.flags()?.unwrap_or_default();
        let blocks: Vec<GcpConfig> = ctx.config.section("gcp")?.unwrap_or_default();
        let finding = matches!(ctx.purpose, Purpose::FindRows(_));
        let settings: Vec<GcpSettings> = if args.given() {
            args.resolve(&blocks, ctx.probe.timeout)
        } else if ctx.from_config || finding {
            blocks
                .iter()
                .map(|b| b.resolve(ctx.probe.timeout))
                .collect()
        } else {
            return Ok(Vec::new());
        };
        Ok(settings.into_iter().flat_map(sources_for).collect())
    }
}

/// One project's client, built once and shared by its locations. A failure is not kept: the
/// next round tries again (the user may have logged in meanwhile).
pub struct ProjectCell {
    settings: GcpSettings,
    client: Mutex<Option<Arc<Client>>>,
}

impl ProjectCell {
    pub fn new(settings: GcpSettings) -> ProjectCell {
        ProjectCell {
            settings,
            client: Mutex::new(None),
        }
    }

    pub fn settings(&self) -> &GcpSettings {
        &self.settings
    }

    pub async fn get(&self) -> Result<Arc<Client>, GcpError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(Client::new(&self.settings)?);
        *slot = Some(c.clone());
        Ok(c)
    }
}

/// One source per location of the project (`global` first), or one for all of them.
pub fn sources_for(settings: GcpSettings) -> Vec<Arc<dyn Source>> {
    let project = settings.project.clone();
    let locations: Vec<Option<String>> = match &settings.locations {
        Locations::List(v) => v.iter().cloned().map(Some).collect(),
        Locations::All => vec![None],
    };
    let cell = Arc::new(ProjectCell::new(settings));
    locations
        .into_iter()
        .map(|location| {
            let label = format!("{project}/{}", location.as_deref().unwrap_or("*"));
            Arc::new(GcpSource {
                id: SourceId::new(KIND, label),
                cell: cell.clone(),
                location,
            }) as Arc<dyn Source>
        })
        .collect()
}

/// One (project, location), or (project, every location).
pub struct GcpSource {
    id: SourceId,
    cell: Arc<ProjectCell>,
    /// None: every location `locations.list` returns.
    location: Option<String>,
}

/// The supervisor's problem for a Google Cloud error.
pub fn problem(e: &GcpError) -> Problem {
    Problem::new(e.class(), e.to_string())
}

/// What one location's round read.
#[derive(Debug, Default)]
pub struct LocationOutcome {
    pub certificates: usize,
    pub failed: usize,
    pub problem: Option<GcpError>,
}

/// Read every certificate of one location, page by page, sending each row as it is parsed.
/// `Err` when the first page fails; a later page failing is a problem of a partial round.
pub async fn read_location(
    client: &Client,
    location: &str,
    sink: &Sink,
) -> Result<(LocationOutcome, bool), GcpError> {
    let mut out = LocationOutcome::default();
    let mut token: Option<String> = None;
    let mut page = 0usize;
    loop {
        page += 1;
        let resp = match client.list_certificates(location, token.as_deref()).await {
            Ok(p) => p,
            Err(e) if page == 1 => return Err(e),
            Err(e) => {
                out.problem = Some(GcpError::BadResponse {
                    call: "certificates.list".to_owned(),
                    detail: format!(
                        "page {page} failed after {} certificates were read: {e}",
                        out.certificates
                    ),
                });
                return Ok((out, false));
            }
        };
        for c in &resp.certificates {
            let rec = observe(c, &client.settings.project, location);
            out.certificates += 1;
            out.failed += usize::from(rec.error.is_some());
            if !sink.observed(rec).await {
                return Ok((out, false));
            }
        }
        if !resp.unreachable.is_empty() && out.problem.is_none() {
            out.problem = Some(GcpError::Service {
                call: "certificates.list".to_owned(),
                status: 200,
                code: "unreachable".to_owned(),
                message: super::clean(&resp.unreachable.join(", "), 200),
            });
        }
        match resp.next_page_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => break,
        }
    }
    Ok((out, true))
}

/// The row of one certificate: facts from the API, the leaf and chain from `pemCertificate`.
pub fn observe(c: &facts::ApiCertificate, project: &str, location: &str) -> Record {
    let now = crate::clock::now_unix();
    let f = GcpFacts::from_api(c, project, location);
    let name = if c.name.is_empty() {
        format!("projects/{project}/locations/{location}/certificates/?")
    } else {
        super::clean(&c.name, 300)
    };
    let pem = c.pem_certificate.as_deref().unwrap_or_default();
    let (mut certs, problem) = facts::parse_pem_chain(pem);
    let leaf = (!certs.is_empty()).then(|| certs.remove(0));
    let has_leaf = leaf.is_some();
    let mut rec = facts::record_for(&name, leaf, certs, f.clone().into_extra(now), now);
    let expect_body = f.cert_type == "self-managed" || f.state.as_deref() == Some("ACTIVE");
    if let Some(p) = problem {
        rec.error = Some(format!(
            "pemCertificate does not parse: {}",
            super::clean(&p, 200)
        ));
    } else if !has_leaf && expect_body {
        rec.error = Some("no pemCertificate in the answer".to_owned());
    }
    rec
}

impl GcpSource {
    async fn locations(&self, client: &Client) -> Result<Vec<String>, GcpError> {
        match &self.location {
            Some(l) => Ok(vec![l.clone()]),
            None => client.list_locations().await,
        }
    }
}

impl Source for GcpSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(900), Duration::from_secs(1800))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let client = match self.cell.get().await {
                Ok(c) => c,
                Err(e) => return RoundEnd::failed(problem(&e)),
            };
            let locations = match self.locations(&client).await {
                Ok(l) => l,
                Err(e) => return RoundEnd::failed(problem(&e)),
            };
            let mut first_problem = None;
            let mut complete = true;
            let mut read_any = false;
            for l in &locations {
                match read_location(&client, l, sink).await {
                    Ok((o, done)) => {
                        read_any = true;
                        complete &= done && o.problem.is_none();
                        if first_problem.is_none() {
                            first_problem = o.problem;
                        }
                    }
                    Err(e) => {
                        complete = false;
                        if first_problem.is_none() {
                            first_problem = Some(e);
                        }
                    }
                }
            }
            match first_problem {
                None if complete => RoundEnd::complete(),
                None => RoundEnd::abandoned(),
                Some(p) if read_any => RoundEnd::partial(problem(&p)),
                Some(p) => RoundEnd::failed(problem(&p)),
            }
        })
    }

    fn reobserve<'a>(&'a self, rows: &'a [Record], sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let client = match self.cell.get().await {
                Ok(c) => c,
                Err(e) => return RoundEnd::failed(problem(&e)),
            };
            let mut first = None;
            for r in rows {
                let (project, location) = facts::parse_name(&r.location)
                    .unwrap_or_else(|| (client.settings.project.clone(), "global".to_owned()));
                let rec = match client.get_certificate(&r.location).await {
                    Ok(c) => observe(&c, &project, &location),
                    Err(e) => {
                        let now = crate::clock::now_unix();
                        let rec =
                            Record::new(KIND, r.location.clone(), now).with_error(e.to_string());
                        if first.is_none() {
                            first = Some(e);
                        }
                        rec
                    }
                };
                if !sink.observed(rec).await {
                    return RoundEnd::abandoned();
                }
            }
            match first {
                Some(p) => RoundEnd::partial(problem(&p)),
                None => RoundEnd {
                    complete: false,
                    problem: None,
                },
            }
        })
    }

    fn reobserves_rows(&self) -> bool {
        true
    }

    fn actions(&self) -> Vec<Arc<dyn crate::actions::Backend>> {
        vec![Arc::new(GcpBackend {
            cell: self.cell.clone(),
            location: self.location.clone(),
            uploads: Arc::new(self.cell.settings.uploads.clone()),
        })]
    }
}
