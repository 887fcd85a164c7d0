//! `certdeck serve`: the sources run on their schedules under the supervisor, a collector
//! task keeps the fleet and hands a snapshot of it to the renderer at most every
//! [`PUBLISH_EVERY`], the renderer turns it into `/metrics` bodies ahead of scrapes
//! ([`exposition`]), and an HTTP server (hyper) serves `/metrics` (Prometheus text or
//! OpenMetrics by `Accept`, gzip by `Accept-Encoding`), `/healthz` and `/readyz`. A scrape
//! never waits for a probe, and usually not for a render either: it sends what was last
//! rendered, with the timestamps of what it shows.

pub mod exposition;
pub mod metrics;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{mpsc, watch};

use crate::model::Thresholds;
use crate::sources::supervisor::Overrides;
use crate::sources::{FleetStore, Mode, Source, SourceEvent, SourceId, Supervisor};
use exposition::{accepts_gzip, Exposition, Published, Variant};
use metrics::{Format, LabelOptions, RowCache, Snapshot};

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
    /// Optional labels to add to every per-location series (`id`, `filename`,
    /// `subject_O`, `issuer_O`; none by default).
    #[serde(default)]
    pub extra_labels: Vec<String>,
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

/// The running collector: applies source events to a store and hands snapshots to the
/// renderer.
async fn collect(
    mut rx: mpsc::Receiver<SourceEvent>,
    out: watch::Sender<Arc<Snapshot>>,
    thresholds: Thresholds,
    labels: LabelOptions,
    expected: usize,
) {
    let mut store = FleetStore::new();
    let mut cache = RowCache::new(labels);
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
        let _ = out.send(Arc::new(s));
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

/// The renderer: renders the bodies scrapers want from each new snapshot, and again when a
/// status would change with the clock. After a render it rests twice as long as the render
/// took before taking a newer snapshot (so rendering takes at most about a third of a core
/// however fast observations arrive), except when readiness changes.
async fn render_loop(mut rx: watch::Receiver<Arc<Snapshot>>, expo: Exposition) {
    let mut snap = rx.borrow_and_update().clone();
    loop {
        let judged_at = crate::clock::now_unix();
        let wanted = expo.wanted();
        let started = Instant::now();
        let s = snap.clone();
        let done = tokio::task::spawn_blocking(move || {
            let p = Published::new(s, judged_at);
            p.prefill(&wanted).map(|()| p)
        })
        .await;
        let took = started.elapsed();
        let valid_until = match done {
            Ok(Ok(p)) => {
                tracing::debug!(
                    "rendered {} rows in {} ms",
                    p.snapshot.rows.len(),
                    took.as_millis()
                );
                let v = p.valid_until;
                expo.set(Arc::new(p));
                v
            }
            Ok(Err(e)) => {
                tracing::warn!("rendering /metrics: {e}");
                // Scrapes render on demand from the last snapshot meanwhile.
                expo.set(Arc::new(Published::new(snap.clone(), judged_at)));
                None
            }
            Err(e) => {
                tracing::warn!("rendering /metrics: {e}");
                None
            }
        };
        let rest_until = tokio::time::Instant::now() + took * 2;
        let ready = snap.ready;
        // Wait for a newer snapshot, or for the clock to change a status.
        let until_change = valid_until.map(|t| {
            let secs = (t - crate::clock::now_unix()).max(0) as u64;
            tokio::time::Instant::now() + Duration::from_secs(secs)
        });
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    return;
                }
                if rx.borrow().ready == ready {
                    tokio::time::sleep_until(rest_until).await;
                }
                snap = rx.borrow_and_update().clone();
            }
            _ = async {
                match until_change {
                    Some(t) => tokio::time::sleep_until(t.max(rest_until)).await,
                    None => std::future::pending().await,
                }
            } => {
                // The same snapshot, judged again; a newer one if it arrived meanwhile.
                if rx.has_changed().unwrap_or(false) {
                    snap = rx.borrow_and_update().clone();
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

/// Answer one request from the latest rendered bodies.
async fn handle(
    req: Request<hyper::body::Incoming>,
    expo: Exposition,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return Ok(r);
    }
    let header =
        |name: hyper::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    Ok(match req.uri().path() {
        "/metrics" => {
            let v = Variant {
                format: Format::negotiate(header(hyper::header::ACCEPT)),
                gzip: accepts_gzip(header(hyper::header::ACCEPT_ENCODING)),
            };
            expo.asked_for(v);
            let published = expo.get();
            match published.body(v).await {
                Ok(body) => {
                    let mut r = text(StatusCode::OK, body);
                    let h = r.headers_mut();
                    h.insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static(v.format.content_type()),
                    );
                    h.insert(
                        hyper::header::VARY,
                        hyper::header::HeaderValue::from_static("Accept, Accept-Encoding"),
                    );
                    if v.gzip {
                        h.insert(
                            hyper::header::CONTENT_ENCODING,
                            hyper::header::HeaderValue::from_static("gzip"),
                        );
                    }
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
            let s = expo.get().snapshot.clone();
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

/// Serve HTTP on `listener` from `expo` until the future is dropped.
pub async fn serve_http(listener: tokio::net::TcpListener, expo: Exposition) {
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
        let expo = expo.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(req, expo.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

/// Start the renderer over snapshots from `rx`; the exposition it keeps current.
pub fn start_renderer(
    rx: watch::Receiver<Arc<Snapshot>>,
) -> (Exposition, tokio::task::JoinHandle<()>) {
    let expo = Exposition::default();
    let task = tokio::spawn(render_loop(rx, expo.clone()));
    (expo, task)
}

/// Run the exporter until `shutdown` resolves.
pub async fn run(
    sources: Vec<Arc<dyn Source>>,
    refresh: &Overrides,
    thresholds: Thresholds,
    labels: LabelOptions,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    tracing::info!("certdeck serve: listening on http://{bound}");
    eprintln!("certdeck: serving metrics on http://{bound}/metrics");
    let (snap_tx, snap_rx) = watch::channel(Arc::new(Snapshot::default()));
    let (expo, renderer) = start_renderer(snap_rx);
    let (tx, rx) = mpsc::channel(1024);
    let expected = sources.len();
    let sup = Supervisor::start(sources, refresh, Mode::Live, tx);
    let collector = tokio::spawn(collect(rx, snap_tx, thresholds, labels, expected));
    tokio::select! {
        _ = serve_http(listener, expo) => {}
        _ = shutdown => {}
    }
    sup.stop();
    collector.abort();
    renderer.abort();
    Ok(())
}
