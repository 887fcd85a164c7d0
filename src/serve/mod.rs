//! `certdeck serve`: the sources run on their schedules under the supervisor, a collector
//! task keeps the fleet and publishes a snapshot of it at most every [`PUBLISH_EVERY`], and an
//! HTTP server (hyper) serves `/metrics` (Prometheus text or OpenMetrics, by the `Accept`
//! header), `/healthz` and `/readyz` from the latest snapshot. A scrape never waits for a
//! probe: it renders what was last observed, with its age.

pub mod metrics;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;

use crate::model::Thresholds;
use crate::sources::supervisor::Overrides;
use crate::sources::{FleetStore, Mode, Source, SourceEvent, SourceId, Supervisor};
use metrics::{Format, RowCache, Shared};

/// Config-file sections of the exporter and the notifiers.
pub const SECTIONS: &[&str] = &["serve", crate::notify::SECTION];

/// The default listen address (`--listen`, `[serve] listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9793";
/// How often a changed fleet is published to scrapes.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(500);
/// Time limit of one HTTP connection's request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// `[serve]` in the config file.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Address to listen on (default 127.0.0.1:9793).
    pub listen: Option<String>,
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("--listen '{0}' is not an address (host:port, e.g. 127.0.0.1:9793)")]
    Address(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Parse a listen address.
pub fn parse_listen(s: &str) -> Result<SocketAddr, ServeError> {
    s.parse().map_err(|_| ServeError::Address(s.to_owned()))
}

/// The running collector: applies source events to a store and publishes snapshots.
async fn collect(
    mut rx: mpsc::Receiver<SourceEvent>,
    shared: Shared,
    thresholds: Thresholds,
    expected: usize,
) {
    let mut store = FleetStore::new();
    let mut cache = RowCache::default();
    let mut started: HashMap<Arc<SourceId>, Instant> = HashMap::new();
    let mut rounds: HashMap<Arc<SourceId>, f64> = HashMap::new();
    let mut finished: std::collections::HashSet<Arc<SourceId>> = Default::default();
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = true;
    let publish = |store: &FleetStore,
                   cache: &mut RowCache,
                   rounds: &HashMap<Arc<SourceId>, f64>,
                   ready: bool| {
        let now = crate::clock::now_unix();
        let mut s = metrics::snapshot(store, cache, rounds, thresholds, now);
        s.ready = ready;
        shared.set(s);
    };
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { break };
                let mut first_round_done = false;
                match &ev {
                    SourceEvent::Started { source, full: true } => {
                        started.insert(source.clone(), Instant::now());
                    }
                    SourceEvent::Finished { source, full: true, .. } => {
                        if let Some(t) = started.remove(source) {
                            rounds.insert(source.clone(), t.elapsed().as_secs_f64());
                        }
                        first_round_done = finished.insert(source.clone());
                    }
                    _ => {}
                }
                store.apply(ev, crate::clock::now_unix());
                dirty = true;
                if first_round_done && finished.len() >= expected {
                    // Ready now: publish at once, so /readyz does not lag behind.
                    publish(&store, &mut cache, &rounds, true);
                    dirty = false;
                }
            }
            _ = tick.tick() => {
                if dirty {
                    publish(&store, &mut cache, &rounds, finished.len() >= expected);
                    dirty = false;
                }
            }
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Answer one request from the latest snapshot.
async fn handle(
    req: Request<hyper::body::Incoming>,
    shared: Shared,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(r);
    }
    Ok(match req.uri().path() {
        "/metrics" => {
            let format = Format::negotiate(
                req.headers()
                    .get(hyper::header::ACCEPT)
                    .and_then(|v| v.to_str().ok()),
            );
            let snap = shared.get();
            let now = crate::clock::now_unix();
            // Encoding 100,000 rows takes a while: keep it off the async workers.
            let body =
                tokio::task::spawn_blocking(move || metrics::render(snap, now, format)).await;
            match body {
                Ok(body) => {
                    let mut r = text(StatusCode::OK, body);
                    r.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(format.content_type()),
                    );
                    r
                }
                Err(e) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("rendering failed: {e}\n"),
                ),
            }
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let s = shared.get();
            if s.ready {
                text(StatusCode::OK, "ready\n")
            } else {
                let done = s.sources.iter().filter(|x| x.health.rounds > 0).count();
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "starting: {done} of {} source(s) finished a first round\n",
                        s.sources.len().max(done)
                    ),
                )
            }
        }
        "/" => text(
            StatusCode::OK,
            "certdeck exporter: /metrics, /healthz, /readyz\n",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    })
}

/// Run the exporter until `shutdown` resolves.
pub async fn run(
    sources: Vec<Arc<dyn Source>>,
    refresh: &Overrides,
    thresholds: Thresholds,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!("certdeck serve: listening on http://{bound}");
    eprintln!("certdeck: serving metrics on http://{bound}/metrics");
    let shared = Shared::default();
    let (tx, rx) = mpsc::channel(1024);
    let expected = sources.len();
    let sup = Supervisor::start(sources, refresh, Mode::Live, tx);
    let collector = tokio::spawn(collect(rx, shared.clone(), thresholds, expected));
    let server = async {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, shared.clone()));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!("connection: {e}");
                }
            });
        }
    };
    tokio::select! {
        _ = server => {}
        _ = shutdown => {}
    }
    sup.stop();
    collector.abort();
    Ok(())
}
