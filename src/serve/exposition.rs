//! The `/metrics` bodies, rendered ahead of scrapes: a renderer task turns each new snapshot
//! into the bodies scrapers ask for (Prometheus text or OpenMetrics, plain or gzip), so a
//! scrape sends bytes that are already there.
//!
//! Statuses and `x509_cert_expired` depend on the clock: a body is judged at the instant it
//! is rendered and carries that instant (`certdeck_exporter_judged_timestamp_seconds`); the
//! renderer renders again as soon as any row's status would change
//! ([`crate::model::status::next_change`]). Ages are not exported, timestamps are (an age
//! would be wrong by the time a pre-rendered body is served).
//!
//! A variant nobody asked for in the last [`WANTED_FOR`] is not rendered ahead; the first
//! scrape that asks for it renders it (once, however many scrapes wait for it) and from then
//! on it is rendered ahead too. OpenMetrics with gzip, what Prometheus asks for, is rendered
//! ahead from the start.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::write::GzEncoder;

use super::metrics::{render_into, Format, Snapshot};

/// How long a variant stays rendered ahead after the last scrape that asked for it.
pub const WANTED_FOR: Duration = Duration::from_secs(600);

/// One form of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    pub format: Format,
    pub gzip: bool,
}

impl Variant {
    pub const ALL: [Variant; 4] = [
        Variant {
            format: Format::Text,
            gzip: false,
        },
        Variant {
            format: Format::Text,
            gzip: true,
        },
        Variant {
            format: Format::OpenMetrics,
            gzip: false,
        },
        Variant {
            format: Format::OpenMetrics,
            gzip: true,
        },
    ];

    fn index(self) -> usize {
        match (self.format, self.gzip) {
            (Format::Text, false) => 0,
            (Format::Text, true) => 1,
            (Format::OpenMetrics, false) => 2,
            (Format::OpenMetrics, true) => 3,
        }
    }
}

/// True when an `Accept-Encoding` header accepts gzip (`gzip` or `*` with a non-zero q).
pub fn accepts_gzip(header: Option<&str>) -> bool {
    let Some(h) = header else { return false };
    let mut star = false;
    let mut gzip = None;
    for item in h.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match name.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => star = q > 0.0,
            _ => {}
        }
    }
    gzip.unwrap_or(star)
}

/// `fmt::Write` into a gzip stream: the text is compressed as it is encoded, so the plain
/// body is never held in memory when only gzip is wanted.
struct GzSink(GzEncoder<Vec<u8>>);

impl std::fmt::Write for GzSink {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| std::fmt::Error)
    }
}

/// The compression level: the fastest (the body is mostly repeated label text, and the
/// renderer's time matters more than the last few per cent).
fn level() -> flate2::Compression {
    flate2::Compression::fast()
}

/// gzip these bytes.
pub fn gzip(plain: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut z = GzEncoder::new(Vec::with_capacity(plain.len() / 8), level());
    z.write_all(plain)?;
    z.finish()
}

/// Why a body could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("encoding the metrics failed")]
    Encode,
    #[error("compressing the metrics failed: {0}")]
    Compress(#[from] std::io::Error),
    #[error("the renderer stopped: {0}")]
    Join(String),
}

/// Render one variant of a snapshot judged at `now`.
pub fn render_variant(snapshot: Arc<Snapshot>, now: i64, v: Variant) -> Result<Bytes, RenderError> {
    if v.gzip {
        let mut sink = GzSink(GzEncoder::new(Vec::new(), level()));
        render_into(&mut sink, snapshot, now, v.format).map_err(|_| RenderError::Encode)?;
        Ok(Bytes::from(sink.0.finish()?))
    } else {
        let mut out = String::new();
        render_into(&mut out, snapshot, now, v.format).map_err(|_| RenderError::Encode)?;
        Ok(Bytes::from(out))
    }
}

/// A snapshot and its bodies, all judged at one instant.
#[derive(Debug, Default)]
pub struct Published {
    pub snapshot: Arc<Snapshot>,
    /// The instant statuses are judged at, unix seconds.
    pub judged_at: i64,
    /// From this instant on (unix seconds) a status judged at `judged_at` may be wrong.
    pub valid_until: Option<i64>,
    bodies: [tokio::sync::OnceCell<Bytes>; 4],
}

impl Published {
    pub fn new(snapshot: Arc<Snapshot>, judged_at: i64) -> Published {
        Published {
            valid_until: snapshot.next_change(judged_at),
            snapshot,
            judged_at,
            bodies: Default::default(),
        }
    }

    /// Render these variants now (blocking: run it off the async workers). A plain and a
    /// gzip body of one format share one encoding.
    pub fn prefill(&self, wanted: &[Variant]) -> Result<(), RenderError> {
        for format in [Format::Text, Format::OpenMetrics] {
            let plain = wanted.contains(&Variant {
                format,
                gzip: false,
            });
            let gz = Variant { format, gzip: true };
            let zipped = wanted.contains(&gz);
            if plain {
                let body = render_variant(
                    self.snapshot.clone(),
                    self.judged_at,
                    Variant {
                        format,
                        gzip: false,
                    },
                )?;
                if zipped {
                    let _ = self.bodies[gz.index()].set(Bytes::from(gzip(&body)?));
                }
                let _ = self.bodies[Variant {
                    format,
                    gzip: false,
                }
                .index()]
                .set(body);
            } else if zipped {
                let body = render_variant(self.snapshot.clone(), self.judged_at, gz)?;
                let _ = self.bodies[gz.index()].set(body);
            }
        }
        Ok(())
    }

    /// True when this variant is already rendered.
    pub fn has(&self, v: Variant) -> bool {
        self.bodies[v.index()].initialized()
    }

    /// The body of a variant: the one rendered ahead, else rendered now (once: concurrent
    /// scrapes of the same variant wait for the same render).
    pub async fn body(self: &Arc<Self>, v: Variant) -> Result<Bytes, RenderError> {
        let me = self.clone();
        self.bodies[v.index()]
            .get_or_try_init(|| async move {
                let snap = me.snapshot.clone();
                let at = me.judged_at;
                tokio::task::spawn_blocking(move || render_variant(snap, at, v))
                    .await
                    .map_err(|e| RenderError::Join(e.to_string()))?
            })
            .await
            .cloned()
    }
}

/// The latest [`Published`], shared between the renderer (which replaces it) and scrapes
/// (which hold the lock only to clone the `Arc`), and which variants scrapes ask for.
#[derive(Debug, Clone)]
pub struct Exposition {
    current: Arc<Mutex<Arc<Published>>>,
    asked: Arc<Mutex<[Option<Instant>; 4]>>,
}

impl Default for Exposition {
    fn default() -> Self {
        let mut asked = [None; 4];
        asked[Variant {
            format: Format::OpenMetrics,
            gzip: true,
        }
        .index()] = Some(Instant::now());
        Exposition {
            current: Default::default(),
            asked: Arc::new(Mutex::new(asked)),
        }
    }
}

impl Exposition {
    pub fn get(&self) -> Arc<Published> {
        match self.current.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set(&self, p: Arc<Published>) {
        match self.current.lock() {
            Ok(mut g) => *g = p,
            Err(p2) => *p2.into_inner() = p,
        }
    }

    /// A scrape asked for this variant.
    pub fn asked_for(&self, v: Variant) {
        let now = Instant::now();
        match self.asked.lock() {
            Ok(mut g) => g[v.index()] = Some(now),
            Err(p) => p.into_inner()[v.index()] = Some(now),
        }
    }

    /// The variants to render ahead: those asked for within [`WANTED_FOR`].
    pub fn wanted(&self) -> Vec<Variant> {
        let asked = match self.asked.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        Variant::ALL
            .into_iter()
            .filter(|v| asked[v.index()].is_some_and(|t| t.elapsed() < WANTED_FOR))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_headers_say_whether_gzip_is_welcome() {
        assert!(!accepts_gzip(None));
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("br")));
    }

    #[test]
    fn a_gzip_body_is_the_plain_body_compressed_and_variants_render_on_demand() {
        let snap = Arc::new(Snapshot {
            taken_at: 1_750_000_000,
            ..Snapshot::default()
        });
        let p = Arc::new(Published::new(snap, 1_750_000_005));
        p.prefill(&[
            Variant {
                format: Format::Text,
                gzip: false,
            },
            Variant {
                format: Format::Text,
                gzip: true,
            },
        ])
        .expect("prefill");
        assert!(p.has(Variant::ALL[0]) && p.has(Variant::ALL[1]));
        assert!(!p.has(Variant::ALL[2]) && !p.has(Variant::ALL[3]));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let (plain, zipped, om) = rt.block_on(async {
            (
                p.body(Variant::ALL[0]).await.expect("plain"),
                p.body(Variant::ALL[1]).await.expect("gzip"),
                p.body(Variant::ALL[3]).await.expect("om gzip"),
            )
        });
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&zipped[..]), &mut text)
            .expect("gunzip");
        assert_eq!(text.as_bytes(), &plain[..]);
        assert!(text.contains("certdeck_exporter_snapshot_timestamp_seconds 1750000000\n"));
        assert!(text.contains("certdeck_exporter_judged_timestamp_seconds 1750000005\n"));
        assert!(p.has(Variant::ALL[3]), "rendered on demand, kept");
        let mut om_text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&om[..]), &mut om_text)
            .expect("gunzip");
        assert!(om_text.ends_with("# EOF\n"), "{om_text}");
    }

    #[test]
    fn open_metrics_with_gzip_is_wanted_from_the_start_and_others_once_asked() {
        let e = Exposition::default();
        assert_eq!(e.wanted(), vec![Variant::ALL[3]]);
        e.asked_for(Variant::ALL[0]);
        assert_eq!(e.wanted(), vec![Variant::ALL[0], Variant::ALL[3]]);
    }
}
