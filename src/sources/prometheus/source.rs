//! The Prometheus source's plugin and HTTP: `--prometheus URL` (repeatable) or
//! `[[prometheus]]`, a bearer token or basic auth from the environment or a file, extra trust
//! anchors from `--ca-file`; per round and server, one instant query for the values and, when
//! there are blackbox probes, one `/api/v1/series` call for their chain details.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::{chain_info_from_label_sets, rows, Answer, SeriesAnswer, CHAIN_INFO, KIND, QUERY};
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::{
    BoxFut, Problem, ProblemKind, RoundEnd, Schedule, Sink, Source, SourceId, Unusable,
};

/// Environment variables the credentials may come from.
pub const ENV_TOKEN: &str = "CERTDECK_PROMETHEUS_TOKEN";
pub const ENV_USER: &str = "CERTDECK_PROMETHEUS_USER";
pub const ENV_PASSWORD: &str = "CERTDECK_PROMETHEUS_PASSWORD";
/// Largest answer read (100,000 series are about 40 MB of JSON).
const MAX_ANSWER: usize = 256 << 20;
/// The window `/api/v1/series` looks at for chain details: Prometheus's own lookback.
const SERIES_WINDOW_SECS: i64 = 300;
/// How far past our clock the window reaches (see `series`).
const SERIES_CLOCK_SLACK_SECS: i64 = 60;

/// Why `/api/v1/series` gave no label sets.
enum SeriesError {
    /// The server has no such endpoint (HTTP 404, 405 or 501).
    Missing(reqwest::StatusCode),
    Other(Problem),
}

/// The Prometheus source's flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Prometheus")]
pub struct PrometheusArgs {
    /// Prometheus server to read exporters' certificate series from (repeatable):
    /// x509-certificate-exporter, ssl_exporter, blackbox_exporter, certdeck serve.
    #[arg(id = "prometheus_urls", long = "prometheus", value_name = "URL")]
    pub urls: Vec<String>,
    /// File holding a bearer token for Prometheus (else $CERTDECK_PROMETHEUS_TOKEN).
    #[arg(long = "prometheus-token-file", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Basic-auth user for Prometheus (else $CERTDECK_PROMETHEUS_USER), with the password
    /// from --prometheus-password-file or $CERTDECK_PROMETHEUS_PASSWORD.
    #[arg(long = "prometheus-user", value_name = "USER")]
    pub user: Option<String>,
    #[arg(long = "prometheus-password-file", value_name = "PATH")]
    pub password_file: Option<PathBuf>,
}

/// `[[prometheus]]` in the config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    pub url: String,
    pub token_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// How to authenticate (secrets are read at each round, never logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    BearerFile(PathBuf),
    BearerEnv,
    Basic {
        user: String,
        password_file: Option<PathBuf>,
    },
}

fn auth_of(token_file: Option<PathBuf>, user: Option<String>, pw: Option<PathBuf>) -> Auth {
    if let Some(f) = token_file {
        return Auth::BearerFile(f);
    }
    if let Some(u) = user.or_else(|| std::env::var(ENV_USER).ok().filter(|u| !u.is_empty())) {
        return Auth::Basic {
            user: u,
            password_file: pw,
        };
    }
    if std::env::var_os(ENV_TOKEN).is_some_and(|t| !t.is_empty()) {
        return Auth::BearerEnv;
    }
    Auth::None
}

pub struct PrometheusPlugin;
pub static PLUGIN: PrometheusPlugin = PrometheusPlugin;

impl Plugin for PrometheusPlugin {
    fn kind(&self) -> crate::model::SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["prometheus"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <PrometheusArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <PrometheusArgs as clap::FromArgMatches>::from_arg_matches(m)
            .is_ok_and(|a| !a.urls.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: PrometheusArgs = ctx.flags()?.unwrap_or_default();
        let mut servers: Vec<(String, Auth)> = args
            .urls
            .iter()
            .map(|u| {
                (
                    u.clone(),
                    auth_of(
                        args.token_file.clone(),
                        args.user.clone(),
                        args.password_file.clone(),
                    ),
                )
            })
            .collect();
        if ctx.from_config {
            for c in ctx
                .config
                .section::<Vec<PrometheusConfig>>("prometheus")?
                .unwrap_or_default()
            {
                let auth = auth_of(c.token_file, c.user, c.password_file);
                servers.push((c.url, auth));
            }
        }
        // What this command reads directly: series about the same places are left out.
        let mut direct: HashSet<String> = ctx.positional_targets().into_iter().collect();
        direct.extend(ctx.positional_paths());
        if let Some(m) = ctx.matches {
            if let Ok(t) =
                <crate::sources::tls::source::TlsArgs as clap::FromArgMatches>::from_arg_matches(m)
            {
                direct.extend(t.targets);
            }
            if let Ok(f) =
                <crate::sources::file::source::FileArgs as clap::FromArgMatches>::from_arg_matches(
                    m,
                )
            {
                direct.extend(f.files);
            }
        }
        let direct = Arc::new(direct);
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        for (url, auth) in servers {
            match PrometheusSource::new(&url, auth, ctx.probe, direct.clone()) {
                Ok(s) => out.push(Arc::new(s)),
                Err(p) => out.push(Arc::new(Unusable {
                    id: SourceId::new(KIND, instance_of(&url)),
                    problem: p,
                })),
            }
        }
        Ok(out)
    }
}

/// `host:port` of a URL, the source's instance label.
fn instance_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_else(|| crate::model::text::clean(url).into_owned())
}

/// One Prometheus server.
pub struct PrometheusSource {
    id: SourceId,
    base: reqwest::Url,
    http: reqwest::Client,
    auth: Auth,
    timeout: Duration,
    direct: Arc<HashSet<String>>,
}

impl PrometheusSource {
    pub fn new(
        url: &str,
        auth: Auth,
        probe: &crate::sources::ProbeSettings,
        direct: Arc<HashSet<String>>,
    ) -> Result<PrometheusSource, Problem> {
        let base = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| {
                Problem::new(
                    ProblemKind::Config,
                    format!(
                        "--prometheus '{}' is not an http(s) URL",
                        crate::model::text::clean(url)
                    ),
                )
            })?;
        crate::sources::tls::install_crypto_provider();
        let b = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(probe.timeout)
            .timeout(probe.timeout.max(Duration::from_secs(30)));
        let b = crate::sources::with_ca_files(b, &probe.ca_files)?;
        let http = b
            .build()
            .map_err(|e| Problem::new(ProblemKind::Config, crate::sources::describe_http(&e)))?;
        Ok(PrometheusSource {
            id: SourceId::new(KIND, instance_of(url)),
            base,
            http,
            auth,
            timeout: probe.timeout.max(Duration::from_secs(30)),
            direct,
        })
    }

    fn read_secret(path: &std::path::Path) -> Result<String, Problem> {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .map_err(|e| {
                Problem::new(
                    ProblemKind::Unauthorized,
                    format!("cannot read {}: {e}", path.display()),
                )
            })
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, Problem> {
        Ok(match &self.auth {
            Auth::None => req,
            Auth::BearerFile(f) => req.bearer_auth(Self::read_secret(f)?),
            Auth::BearerEnv => req.bearer_auth(std::env::var(ENV_TOKEN).unwrap_or_default()),
            Auth::Basic {
                user,
                password_file,
            } => {
                let pw = match password_file {
                    Some(f) => Self::read_secret(f)?,
                    None => std::env::var(ENV_PASSWORD).unwrap_or_default(),
                };
                req.basic_auth(user, Some(pw))
            }
        })
    }

    /// GET an API endpoint with these parameters; the status and body, or why not.
    async fn get(
        &self,
        endpoint: &str,
        params: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, bytes::Bytes), Problem> {
        let mut url = self.base.clone();
        {
            let path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{path}{endpoint}"));
        }
        url.query_pairs_mut().extend_pairs(params);
        let req = self.authorize(self.http.get(url))?;
        let resp = req.send().await.map_err(|e| {
            let (kind, what) = if e.is_timeout() {
                (ProblemKind::Timeout, "timed out")
            } else {
                (ProblemKind::Unreachable, "unreachable")
            };
            Problem::new(
                kind,
                format!(
                    "{what}: {}",
                    crate::sources::describe_http(&e.without_url())
                ),
            )
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Problem::new(
                ProblemKind::Unauthorized,
                "Prometheus answered 401 Unauthorized (token or basic auth missing or wrong)",
            ));
        }
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(Problem::new(
                ProblemKind::Forbidden,
                "Prometheus answered 403 Forbidden",
            ));
        }
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Problem::new(
                ProblemKind::Throttled,
                "Prometheus answered 429 Too Many Requests",
            ));
        }
        if resp.content_length().is_some_and(|l| l > MAX_ANSWER as u64) {
            return Err(Problem::new(ProblemKind::Other, "the answer is too large"));
        }
        let body = tokio::time::timeout(self.timeout, resp.bytes())
            .await
            .map_err(|_| Problem::new(ProblemKind::Timeout, "reading the answer timed out"))?
            .map_err(|e| {
                Problem::new(ProblemKind::Unreachable, crate::sources::describe_http(&e))
            })?;
        if body.len() > MAX_ANSWER {
            return Err(Problem::new(ProblemKind::Other, "the answer is too large"));
        }
        Ok((status, body))
    }

    fn not_an_answer(status: reqwest::StatusCode, body: &[u8]) -> Problem {
        let head = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Problem::new(
            ProblemKind::Other,
            format!(
                "HTTP {status}: not a Prometheus API answer: {}",
                crate::model::text::clean(&head)
            ),
        )
    }

    fn failed(what: &str, error_type: Option<&str>, error: Option<&str>) -> Problem {
        Problem::new(
            ProblemKind::Other,
            format!(
                "{what} failed: {}: {}",
                crate::model::text::clean(error_type.unwrap_or("error")),
                crate::model::text::clean(error.unwrap_or("no reason given"))
            ),
        )
    }

    /// Run an instant query; the answer's series, or why not.
    pub async fn query_of(&self, query: &str) -> Result<Vec<super::Series>, Problem> {
        let (status, body) = self.get("/api/v1/query", &[("query", query)]).await?;
        let answer: Answer =
            serde_json::from_slice(&body).map_err(|_| Self::not_an_answer(status, &body))?;
        if answer.status != "success" {
            return Err(Self::failed(
                "query",
                answer.error_type.as_deref(),
                answer.error.as_deref(),
            ));
        }
        let data = answer
            .data
            .ok_or_else(|| Problem::new(ProblemKind::Other, "the answer has no data"))?;
        if data.result_type != "vector" {
            return Err(Problem::new(
                ProblemKind::Other,
                format!("expected a vector, got {}", data.result_type),
            ));
        }
        Ok(data.result)
    }

    /// The certificate series' values.
    pub async fn query(&self) -> Result<Vec<super::Series>, Problem> {
        self.query_of(QUERY).await
    }

    /// The label sets of the series matching `selector` within the last
    /// [`SERIES_WINDOW_SECS`].
    async fn series(
        &self,
        selector: &str,
    ) -> Result<Vec<std::collections::BTreeMap<String, String>>, SeriesError> {
        // The window ends a minute ahead: a series whose first sample came within the current
        // second (or from a server whose clock runs ahead of ours) is still inside it.
        let now = crate::clock::now_unix();
        let start = (now - SERIES_WINDOW_SECS).to_string();
        let end = (now + SERIES_CLOCK_SLACK_SECS).to_string();
        let (status, body) = self
            .get(
                "/api/v1/series",
                &[("match[]", selector), ("start", &start), ("end", &end)],
            )
            .await
            .map_err(SeriesError::Other)?;
        let answer: SeriesAnswer = match serde_json::from_slice(&body) {
            Ok(a) => a,
            Err(_) => {
                return Err(
                    if matches!(
                        status,
                        reqwest::StatusCode::NOT_FOUND
                            | reqwest::StatusCode::METHOD_NOT_ALLOWED
                            | reqwest::StatusCode::NOT_IMPLEMENTED
                    ) {
                        SeriesError::Missing(status)
                    } else {
                        SeriesError::Other(Self::not_an_answer(status, &body))
                    },
                )
            }
        };
        if answer.status != "success" {
            return Err(SeriesError::Other(Self::failed(
                "/api/v1/series",
                answer.error_type.as_deref(),
                answer.error.as_deref(),
            )));
        }
        Ok(answer.data.unwrap_or_default())
    }

    /// blackbox_exporter's chain details: label sets from `/api/v1/series`, or an instant
    /// query when a probe's chain changed within the window or the server has no series
    /// endpoint (then with a problem saying so). A problem alone when neither worked.
    async fn chain_info(&self) -> (Vec<super::Series>, Option<Problem>) {
        let missing = match self.series(CHAIN_INFO).await {
            Ok(sets) => match chain_info_from_label_sets(sets) {
                Some(info) => return (info, None),
                None => None,
            },
            Err(SeriesError::Missing(status)) => Some(status),
            Err(SeriesError::Other(p)) => {
                return (
                    Vec::new(),
                    Some(Problem::new(
                        p.kind,
                        format!(
                            "blackbox chain details (subject, issuer, SHA-256) not read: {}",
                            p.message
                        ),
                    )),
                )
            }
        };
        let note = missing.map(|status| {
            Problem::new(
                ProblemKind::Other,
                format!(
                    "{} has no /api/v1/series (HTTP {status}): chain details read with /api/v1/query instead",
                    self.id.instance
                ),
            )
        });
        match self.query_of(CHAIN_INFO).await {
            Ok(info) => (info, note),
            Err(p) => (
                Vec::new(),
                Some(Problem::new(
                    p.kind,
                    format!(
                        "blackbox chain details (subject, issuer, SHA-256) not read: {}{}",
                        p.message,
                        note.map(|n| format!("; {}", n.message)).unwrap_or_default()
                    ),
                )),
            ),
        }
    }
}

impl Source for PrometheusSource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(Duration::from_secs(60), Duration::from_secs(120))
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let mut series = match self.query().await {
                Ok(s) => s,
                Err(p) => return RoundEnd::failed(p),
            };
            let probes = series.iter().any(|s| {
                s.metric.get("__name__").map(String::as_str)
                    == Some("probe_ssl_earliest_cert_expiry")
            });
            let mut note = None;
            if probes {
                let (info, problem) = self.chain_info().await;
                series.extend(info);
                note = problem;
            }
            let now = crate::clock::now_unix();
            let base = format!("prometheus {}", self.id.instance);
            let all = rows(&series, &base, now);
            if all.is_empty() {
                return RoundEnd {
                    complete: true,
                    problem: Some(Problem::new(
                        ProblemKind::Other,
                        format!(
                            "no certificate series in {} ({} series matched the query)",
                            self.id.instance,
                            series.len()
                        ),
                    )),
                };
            }
            let rows: Vec<_> = all
                .into_iter()
                .filter(|r| !self.is_direct(&r.location))
                .collect();
            sink.planned(rows.len()).await;
            for r in rows {
                if !sink.observed(r).await {
                    return RoundEnd::abandoned();
                }
            }
            match note {
                // Every row was read; the health says what was missing or worked around.
                Some(p) => RoundEnd {
                    complete: true,
                    problem: Some(p),
                },
                None => RoundEnd::complete(),
            }
        })
    }
}

impl PrometheusSource {
    /// True when this command reads the place directly (a TLS target, a file or a path
    /// under a directory it reads).
    fn is_direct(&self, location: &str) -> bool {
        self.direct.iter().any(|d| {
            d == location
                || (location.starts_with(d.as_str())
                    && location[d.len()..].starts_with('/')
                    && d.starts_with('/'))
        })
    }
}
