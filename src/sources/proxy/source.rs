//! The proxy source's plugin and HTTP: `--envoy-admin URL` and `--linkerd-proxy URL`
//! (repeatable) or `[proxies]` in the config file; one source per endpoint, one GET per round.
//! A dead, slow or garbage endpoint is an error row and a failed round (its health says why),
//! bounded by the probe timeout.

use std::sync::Arc;
use std::time::Duration;

use super::{base_url, shown, KIND, MAX_ANSWER};
use crate::sources::registry::{BuildContext, BuildError, Plugin};
use crate::sources::{
    BoxFut, Problem, ProblemKind, RoundEnd, Schedule, Sink, Source, SourceId, Unusable,
};

/// Linkerd's default identity issuance lifetime.
pub const DEFAULT_LINKERD_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Mesh proxy flags.
#[derive(Debug, Clone, Default, clap::Args)]
#[command(next_help_heading = "Mesh proxies")]
pub struct ProxyArgs {
    /// Envoy admin endpoint whose /certs lists the certificates the proxy holds (repeatable;
    /// an Istio sidecar's is http://POD:15000).
    #[arg(long = "envoy-admin", value_name = "URL")]
    pub envoy: Vec<String>,
    /// Linkerd proxy admin endpoint whose /metrics gives its identity certificate's expiry
    /// (repeatable; http://POD:4191).
    #[arg(long = "linkerd-proxy", value_name = "URL")]
    pub linkerd: Vec<String>,
    /// Lifetime of Linkerd workload certificates, for proxies that do not export their last
    /// refresh (default 24h, Linkerd's identity issuance lifetime).
    #[arg(long, value_parser = crate::config::parse_duration, value_name = "DURATION")]
    pub linkerd_issuance_lifetime: Option<Duration>,
}

/// `[proxies]` in the config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxiesConfig {
    #[serde(default)]
    pub envoy_admin: Vec<String>,
    #[serde(default)]
    pub linkerd_proxy: Vec<String>,
    #[serde(default, deserialize_with = "crate::config::de_opt_duration")]
    pub linkerd_issuance_lifetime: Option<Duration>,
}

/// What a proxy endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Envoy,
    Linkerd,
}

impl Flavour {
    fn page(self) -> &'static str {
        match self {
            Flavour::Envoy => "/certs",
            Flavour::Linkerd => "/metrics",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Flavour::Envoy => "envoy",
            Flavour::Linkerd => "linkerd",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Flavour::Envoy => "--envoy-admin",
            Flavour::Linkerd => "--linkerd-proxy",
        }
    }
}

pub struct ProxyPlugin;
pub static PLUGIN: ProxyPlugin = ProxyPlugin;

impl Plugin for ProxyPlugin {
    fn kind(&self) -> crate::model::SourceKind {
        KIND
    }

    fn sections(&self) -> &'static [&'static str] {
        &["proxies"]
    }

    fn flags(&self, cmd: clap::Command) -> clap::Command {
        <ProxyArgs as clap::Args>::augment_args(cmd)
    }

    fn named(&self, m: &clap::ArgMatches) -> bool {
        <ProxyArgs as clap::FromArgMatches>::from_arg_matches(m)
            .is_ok_and(|a| !a.envoy.is_empty() || !a.linkerd.is_empty())
    }

    fn build(&self, ctx: &BuildContext<'_>) -> Result<Vec<Arc<dyn Source>>, BuildError> {
        let args: ProxyArgs = ctx.flags()?.unwrap_or_default();
        let mut endpoints: Vec<(Flavour, String)> = Vec::new();
        endpoints.extend(args.envoy.iter().map(|u| (Flavour::Envoy, u.clone())));
        endpoints.extend(args.linkerd.iter().map(|u| (Flavour::Linkerd, u.clone())));
        let mut lifetime = args.linkerd_issuance_lifetime;
        if ctx.from_config {
            if let Some(c) = ctx.config.section::<ProxiesConfig>("proxies")? {
                endpoints.extend(c.envoy_admin.into_iter().map(|u| (Flavour::Envoy, u)));
                endpoints.extend(c.linkerd_proxy.into_iter().map(|u| (Flavour::Linkerd, u)));
                lifetime = lifetime.or(c.linkerd_issuance_lifetime);
            }
        }
        let lifetime = lifetime.unwrap_or(DEFAULT_LINKERD_LIFETIME);
        let mut out: Vec<Arc<dyn Source>> = Vec::new();
        for (flavour, url) in endpoints {
            match ProxySource::new(flavour, &url, ctx.probe, lifetime) {
                Ok(s) => out.push(Arc::new(s)),
                Err(p) => out.push(Arc::new(Unusable {
                    id: SourceId::new(
                        KIND,
                        format!("{} {}", flavour.name(), crate::model::text::clean(&url)),
                    ),
                    problem: p,
                })),
            }
        }
        Ok(out)
    }
}

/// One proxy endpoint.
pub struct ProxySource {
    id: SourceId,
    flavour: Flavour,
    base: reqwest::Url,
    http: reqwest::Client,
    timeout: Duration,
    lifetime_secs: i64,
}

impl ProxySource {
    pub fn new(
        flavour: Flavour,
        url: &str,
        probe: &crate::sources::ProbeSettings,
        lifetime: Duration,
    ) -> Result<ProxySource, Problem> {
        let base = base_url(url, flavour.page()).map_err(|why| {
            Problem::new(ProblemKind::Config, format!("{}: {why}", flavour.flag()))
        })?;
        crate::sources::tls::install_crypto_provider();
        let b = reqwest::Client::builder()
            .tls_backend_rustls()
            .connect_timeout(probe.timeout)
            .timeout(probe.timeout)
            .redirect(reqwest::redirect::Policy::none());
        let b = crate::sources::with_ca_files(b, &probe.ca_files)?;
        let http = b
            .build()
            .map_err(|e| Problem::new(ProblemKind::Config, crate::sources::describe_http(&e)))?;
        let instance = format!(
            "{} {}",
            flavour.name(),
            base.host_str()
                .map(|h| format!("{h}:{}", base.port_or_known_default().unwrap_or(0)))
                .unwrap_or_default()
        );
        Ok(ProxySource {
            id: SourceId::new(KIND, crate::model::text::clean(&instance).into_owned()),
            flavour,
            base,
            http,
            timeout: probe.timeout,
            lifetime_secs: i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
        })
    }

    fn page_url(&self) -> reqwest::Url {
        let mut u = self.base.clone();
        let path = u.path().trim_end_matches('/').to_owned();
        u.set_path(&format!("{path}{}", self.flavour.page()));
        u
    }

    /// The page's body, or why not (bounded in time and size).
    pub async fn fetch(&self) -> Result<Vec<u8>, Problem> {
        let timed_out = || {
            Problem::new(
                ProblemKind::Timeout,
                format!(
                    "timed out after {}",
                    humantime::format_duration(self.timeout)
                ),
            )
        };
        let get = async {
            let mut resp = self.http.get(self.page_url()).send().await.map_err(|e| {
                if e.is_timeout() {
                    timed_out()
                } else {
                    Problem::new(
                        ProblemKind::Unreachable,
                        format!(
                            "unreachable: {}",
                            crate::sources::describe_http(&e.without_url())
                        ),
                    )
                }
            })?;
            let status = resp.status();
            if !status.is_success() {
                let kind = match status.as_u16() {
                    401 => ProblemKind::Unauthorized,
                    403 => ProblemKind::Forbidden,
                    429 => ProblemKind::Throttled,
                    _ => ProblemKind::Other,
                };
                return Err(Problem::new(
                    kind,
                    format!("{} answered HTTP {status}", self.flavour.page()),
                ));
            }
            let too_large = || Problem::new(ProblemKind::Other, "the answer is too large");
            if resp.content_length().is_some_and(|l| l > MAX_ANSWER as u64) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            loop {
                match resp.chunk().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > MAX_ANSWER {
                            return Err(too_large());
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => return Ok(body),
                    Err(e) if e.is_timeout() => return Err(timed_out()),
                    Err(e) => {
                        return Err(Problem::new(
                            ProblemKind::Unreachable,
                            crate::sources::describe_http(&e.without_url()),
                        ))
                    }
                }
            }
        };
        // The client's timeout covers the whole exchange; this bounds it whatever happens.
        tokio::time::timeout(self.timeout + Duration::from_millis(500), get)
            .await
            .unwrap_or_else(|_| Err(timed_out()))
    }

    fn error_row(&self, why: &str, now: i64) -> crate::model::Record {
        let base = shown(&self.base);
        let location = format!("{base}{}", self.flavour.page());
        let extra = crate::model::Extra {
            key: "proxy",
            json: serde_json::json!({
                "proxy": self.flavour.name(),
                "endpoint": base,
                "facts_only": true,
            }),
            details: vec![(
                "Proxy".to_owned(),
                format!("{} {base}", self.flavour.name()),
            )],
            note: None,
        };
        crate::model::Record::from_store(KIND, &location, None, Vec::new(), extra, now)
            .with_error(crate::model::text::clean(why).into_owned())
    }
}

impl Source for ProxySource {
    fn id(&self) -> &SourceId {
        &self.id
    }

    fn schedule(&self) -> Schedule {
        Schedule::every(
            Duration::from_secs(60),
            (self.timeout * 3).max(Duration::from_secs(10)),
        )
    }

    fn round<'a>(&'a self, sink: &'a Sink) -> BoxFut<'a, RoundEnd> {
        Box::pin(async move {
            let now = crate::clock::now_unix();
            let body = match self.fetch().await {
                Ok(b) => b,
                Err(p) => {
                    let _ = sink.observed(self.error_row(&p.message, now)).await;
                    return RoundEnd::failed(p);
                }
            };
            let base = shown(&self.base);
            let rows = match self.flavour {
                Flavour::Envoy => match super::envoy::rows(&base, &body, now) {
                    Ok(r) => r,
                    Err(why) => {
                        let _ = sink.observed(self.error_row(&why, now)).await;
                        return RoundEnd::failed(Problem::new(ProblemKind::Other, why));
                    }
                },
                Flavour::Linkerd => {
                    let r = super::linkerd::row(&base, &body, self.lifetime_secs, now);
                    if let Some(why) = r.error.clone() {
                        let _ = sink.observed(r).await;
                        return RoundEnd::failed(Problem::new(ProblemKind::Other, why));
                    }
                    vec![r]
                }
            };
            if rows.is_empty() {
                return RoundEnd {
                    complete: true,
                    problem: Some(Problem::new(
                        ProblemKind::Other,
                        "Envoy holds no certificates (no TLS context in /certs)",
                    )),
                };
            }
            sink.planned(rows.len()).await;
            for r in rows {
                if !sink.observed(r).await {
                    return RoundEnd::abandoned();
                }
            }
            RoundEnd::complete()
        })
    }
}
