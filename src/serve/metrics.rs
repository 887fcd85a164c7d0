//! The exporter's metrics: a snapshot of the fleet (built by the collector task, never on a
//! scrape) and a `prometheus-client` [`Collector`] that encodes it in the Prometheus text
//! format or OpenMetrics.
//!
//! Label cardinality is bounded by design: one series per location and metric; no
//! fingerprints, SANs or error texts as labels; the only enumerated labels are `status` (7
//! values) and `state` (3 or 4 values), and each location carries one of them at a time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::text::clean;
use crate::model::{assess, Record, RevocationState, Thresholds};
use crate::sources::{Health, HealthState, SourceId};

/// A label set: names are static, values owned.
pub type Labels = Vec<(&'static str, String)>;

/// One location, as the metrics see it: its labels and the facts the values come from.
#[derive(Debug, Clone)]
pub struct MetricRow {
    pub labels: Labels,
    /// The record itself (status is judged at scrape time: it changes with the clock).
    pub record: Record,
    /// cert-manager's `status.renewalTime`, unix seconds, when the row has one.
    pub renewal_time: Option<i64>,
}

/// One source's health and last round.
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub labels: Labels,
    pub health: Health,
    pub rows: usize,
    /// How long its last full round took, seconds.
    pub round_seconds: Option<f64>,
}

/// Everything a scrape shows, as of `taken_at`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub rows: Vec<Arc<MetricRow>>,
    pub sources: Vec<SourceRow>,
    pub thresholds: Thresholds,
    /// Every source has finished its first full round.
    pub ready: bool,
    /// Unix seconds when the snapshot was built.
    pub taken_at: i64,
}

/// `O` of `CN=a, O=b` is `b`.
fn dn_attr<'a>(dn: &'a str, attr: &str) -> Option<&'a str> {
    dn.split(", ").find_map(|p| {
        p.strip_prefix(attr)
            .and_then(|r| r.strip_prefix('='))
            .filter(|v| !v.is_empty())
    })
}

fn push(labels: &mut Labels, name: &'static str, value: &str) {
    if !value.is_empty() {
        labels.push((name, clean(value).into_owned()));
    }
}

/// The labels of a location: certdeck's (`id`, `source`, `source_instance`, `location`,
/// `context`) and the x509-certificate-exporter's (`subject_CN`, `subject_O`, `issuer_CN`,
/// `issuer_O`, `serial_number`, `filepath`/`filename`, `secret_namespace`/`secret_name`/
/// `secret_key`, `configmap_*`). Empty values are left out.
pub fn row_labels(source: &SourceId, r: &Record) -> Labels {
    let mut l = Labels::with_capacity(12);
    push(&mut l, "id", &r.id);
    push(&mut l, "source", r.source.as_str());
    push(&mut l, "source_instance", &source.instance);
    push(&mut l, "location", &r.location);
    if let Some(c) = r.cert.as_deref() {
        push(&mut l, "subject_CN", c.common_name.as_deref().unwrap_or(""));
        push(&mut l, "subject_O", dn_attr(&c.subject, "O").unwrap_or(""));
        push(&mut l, "issuer_CN", dn_attr(&c.issuer, "CN").unwrap_or(""));
        push(&mut l, "issuer_O", dn_attr(&c.issuer, "O").unwrap_or(""));
        push(&mut l, "serial_number", &c.serial);
    }
    if r.source == crate::model::SourceKind::FILE {
        let path = match r.location.rsplit_once('#') {
            Some((p, n)) if n.chars().all(|c| c.is_ascii_digit()) => p,
            _ => &r.location,
        };
        push(&mut l, "filepath", path);
        let name = std::path::Path::new(path)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        push(&mut l, "filename", &name);
    }
    if let Some(k) = &r.k8s {
        push(&mut l, "context", &k.context);
        let key = k.key.as_deref().unwrap_or("");
        match k.kind.as_str() {
            "Secret" => {
                push(&mut l, "secret_namespace", &k.namespace);
                push(&mut l, "secret_name", &k.name);
                push(&mut l, "secret_key", key);
            }
            "ConfigMap" => {
                push(&mut l, "configmap_namespace", &k.namespace);
                push(&mut l, "configmap_name", &k.name);
                push(&mut l, "configmap_key", key);
            }
            _ => {}
        }
    }
    l
}

/// The row of a record (labels computed once per observation, not per scrape).
pub fn metric_row(source: &SourceId, r: &Record) -> MetricRow {
    let renewal_time = r
        .k8s
        .as_ref()
        .and_then(|k| k.managed_by.as_ref())
        .and_then(|m| m.renewal_time.as_deref())
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp());
    MetricRow {
        labels: row_labels(source, r),
        record: r.clone(),
        renewal_time,
    }
}

/// Rows by record id, rebuilt only when the record was observed again.
#[derive(Debug, Default)]
pub struct RowCache {
    rows: HashMap<String, (i64, Arc<MetricRow>)>,
}

impl RowCache {
    /// The rows of these records (with the source of each), reusing unchanged ones; rows of
    /// records no longer present are dropped.
    pub fn rows<'a>(
        &mut self,
        records: impl Iterator<Item = (&'a SourceId, &'a Record)>,
    ) -> Vec<Arc<MetricRow>> {
        let mut next = HashMap::with_capacity(self.rows.len());
        let mut out = Vec::with_capacity(self.rows.len());
        for (src, r) in records {
            let row = match self.rows.remove(&r.id) {
                // Observed in the same second is not enough: a live feed (a watch, a SPIFFE
                // rotation) can replace the certificate within the second of the last read.
                Some((at, row))
                    if at == r.observed_at
                        && row.record.location == r.location
                        && same_reading(&row.record, r) =>
                {
                    row
                }
                _ => Arc::new(metric_row(src, r)),
            };
            next.insert(r.id.clone(), (r.observed_at, row.clone()));
            out.push(row);
        }
        self.rows = next;
        out
    }
}

/// The same certificate (or the same error) as before.
fn same_reading(a: &Record, b: &Record) -> bool {
    a.cert.as_ref().map(|c| &c.sha256) == b.cert.as_ref().map(|c| &c.sha256) && a.error == b.error
}

/// The source labels: `source` (kind) and `source_instance`.
pub fn source_labels(id: &SourceId) -> Labels {
    let mut l = vec![("source", id.kind.as_str().to_owned())];
    push(&mut l, "source_instance", &id.instance);
    l
}

/// The latest snapshot, shared between the collector task (which replaces it) and scrapes
/// (which read it): a scrape holds the lock only to clone the `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Shared(Arc<Mutex<Arc<Snapshot>>>);

impl Shared {
    pub fn get(&self) -> Arc<Snapshot> {
        match self.0.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub fn set(&self, s: Snapshot) {
        let s = Arc::new(s);
        match self.0.lock() {
            Ok(mut g) => *g = s,
            Err(p) => *p.into_inner() = s,
        }
    }
}

/// Encodes one snapshot; `now` is the scrape's instant (statuses are judged at it).
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    now: i64,
}

fn gauge<V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (Labels, V)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// As [`gauge`], borrowing each row's labels (the common case: no extra label).
fn row_gauge<V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: &[Arc<MetricRow>],
    value: impl Fn(&MetricRow) -> Option<V>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for row in rows {
        if let Some(v) = value(row) {
            ConstGauge::new(v).encode(m.encode_family(&row.labels.as_slice())?)?;
        }
    }
    Ok(())
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.snapshot;
        let now = self.now;
        let rows = &s.rows;
        let leaf = |r: &MetricRow| r.record.cert.clone();
        row_gauge(
            &mut enc,
            "x509_cert_not_after",
            "Leaf certificate notAfter, unix seconds (x509-certificate-exporter compatible).",
            rows,
            |r| leaf(r).map(|c| c.not_after),
        )?;
        row_gauge(
            &mut enc,
            "x509_cert_not_before",
            "Leaf certificate notBefore, unix seconds (x509-certificate-exporter compatible).",
            rows,
            |r| leaf(r).map(|c| c.not_before),
        )?;
        row_gauge(
            &mut enc,
            "x509_cert_expired",
            "1 when the leaf certificate has expired (x509-certificate-exporter compatible).",
            rows,
            |r| leaf(r).map(|c| i64::from(c.not_after <= now)),
        )?;
        let errors = rows.iter().filter(|r| r.record.cert.is_none()).count() as i64;
        gauge(
            &mut enc,
            "x509_read_errors",
            "Locations that could not be read (x509-certificate-exporter compatible).",
            std::iter::once((Labels::new(), errors)),
        )?;
        let assessed: Vec<_> = rows
            .iter()
            .map(|r| assess(&r.record, now, s.thresholds))
            .collect();
        {
            let mut m = enc.encode_descriptor(
                "certdeck_cert_effective_not_after_seconds",
                "Chain-aware expiry: the earliest notAfter of the leaf and the served intermediates, unix seconds.",
                None,
                MetricType::Gauge,
            )?;
            for (row, a) in rows.iter().zip(&assessed) {
                if let Some(na) = a.effective_not_after {
                    ConstGauge::new(na).encode(m.encode_family(&row.labels.as_slice())?)?;
                }
            }
        }
        gauge(
            &mut enc,
            "certdeck_cert_status",
            "1 for the location's current status (expired, revoked, critical, not_yet_valid, error, warning, ok).",
            rows.iter().zip(&assessed).map(|(row, a)| {
                let mut l = row.labels.clone();
                l.push(("status", a.status.as_str().to_owned()));
                (l, 1i64)
            }),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_location_up",
            "1 when the location was read, 0 when it could not be.",
            rows,
            |r| Some(i64::from(r.record.cert.is_some())),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_cert_verified",
            "TLS rows: 1 when the served chain verified against the trust anchors for the name asked for, else 0.",
            rows,
            |r| {
                r.record
                    .tls
                    .as_ref()
                    .and_then(|t| t.verification.as_ref())
                    .map(|v| i64::from(v.trusted))
            },
        )?;
        gauge(
            &mut enc,
            "certdeck_cert_revocation",
            "1 for the leaf's revocation state (good, revoked, unknown) when it was checked.",
            rows.iter().filter_map(|row| {
                row.record.revocation.as_ref().map(|v| {
                    let mut l = row.labels.clone();
                    l.push((
                        "state",
                        match v.state {
                            RevocationState::Good => "good",
                            RevocationState::Revoked { .. } => "revoked",
                            RevocationState::Unknown(_) => "unknown",
                        }
                        .to_owned(),
                    ));
                    (l, 1i64)
                })
            }),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "certdeck_cert_renew_by_seconds",
                "When renewal is due, unix seconds: cert-manager's renewalTime, else the effective expiry minus the warning threshold.",
                None,
                MetricType::Gauge,
            )?;
            for (row, a) in rows.iter().zip(&assessed) {
                let v = row.renewal_time.or_else(|| {
                    a.effective_not_after
                        .map(|na| na.saturating_sub(s.thresholds.warn_secs))
                });
                if let Some(v) = v {
                    ConstGauge::new(v).encode(m.encode_family(&row.labels.as_slice())?)?;
                }
            }
        }
        row_gauge(
            &mut enc,
            "certdeck_observed_timestamp_seconds",
            "When the location was last observed, unix seconds (its age is time() minus this).",
            rows,
            |r| Some(r.record.observed_at),
        )?;
        let src = &s.sources;
        gauge(
            &mut enc,
            "certdeck_source_up",
            "1 when the source's last round read everything, 0 when it failed, was partial or has not finished yet.",
            src.iter()
                .map(|x| (x.labels.clone(), i64::from(x.health.state == HealthState::Ok))),
        )?;
        gauge(
            &mut enc,
            "certdeck_source_state",
            "1 for the source's current state (pending, ok, partial, failing).",
            src.iter().map(|x| {
                let mut l = x.labels.clone();
                let st = match x.health.state {
                    HealthState::Pending => "pending",
                    HealthState::Ok => "ok",
                    HealthState::Partial => "partial",
                    HealthState::Failing => "failing",
                };
                l.push(("state", st.to_owned()));
                (l, 1i64)
            }),
        )?;
        gauge(
            &mut enc,
            "certdeck_source_last_success_timestamp_seconds",
            "When the source's last round without a problem finished, unix seconds.",
            src.iter()
                .filter_map(|x| x.health.last_success.map(|t| (x.labels.clone(), t))),
        )?;
        gauge(
            &mut enc,
            "certdeck_source_round_duration_seconds",
            "How long the source's last full round took (the scrape of that source), seconds.",
            src.iter()
                .filter_map(|x| x.round_seconds.map(|t| (x.labels.clone(), t))),
        )?;
        gauge(
            &mut enc,
            "certdeck_source_rows",
            "Locations the source currently has.",
            src.iter().map(|x| (x.labels.clone(), x.rows as i64)),
        )?;
        {
            let mut m = enc.encode_descriptor(
                "certdeck_source_rounds",
                "Rounds the source has finished.",
                None,
                MetricType::Counter,
            )?;
            for x in src {
                ConstCounter::new(x.health.rounds).encode(m.encode_family(&x.labels)?)?;
            }
        }
        gauge(
            &mut enc,
            "certdeck_exporter_ready",
            "1 once every source has finished its first full round.",
            std::iter::once((Labels::new(), i64::from(s.ready))),
        )?;
        gauge(
            &mut enc,
            "certdeck_exporter_snapshot_age_seconds",
            "Age of the observations served: seconds since the snapshot was built.",
            std::iter::once((Labels::new(), (now - s.taken_at).max(0))),
        )?;
        Ok(())
    }
}

/// Exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    OpenMetrics,
}

impl Format {
    /// From an `Accept` header: OpenMetrics when asked for, else the Prometheus text format.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Render a snapshot at `now`.
pub fn render(snapshot: Arc<Snapshot>, now: i64, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector { snapshot, now }));
    let mut out = String::new();
    let r = match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
    };
    if r.is_err() {
        // Writing into a String only fails when an encoder rejects a value: say so.
        out.push_str("# certdeck: encoding failed\n");
    }
    out
}

/// Build a snapshot from a store (the collector task's job).
pub fn snapshot(
    store: &crate::sources::FleetStore,
    cache: &mut RowCache,
    rounds: &HashMap<Arc<SourceId>, f64>,
    thresholds: Thresholds,
    now: i64,
) -> Snapshot {
    let records = store.fleet().records();
    let unknown = SourceId::new(crate::model::SourceKind::new("unknown"), "");
    let rows = cache.rows(
        records
            .iter()
            .enumerate()
            .map(|(i, r)| (store.origin(i).map(|s| &**s).unwrap_or(&unknown), r)),
    );
    let sources: Vec<SourceRow> = store
        .sources()
        .map(|(id, st)| SourceRow {
            labels: source_labels(id),
            health: st.health.clone(),
            rows: st.rows,
            round_seconds: rounds.get(id).copied(),
        })
        .collect();
    let ready = !sources.is_empty() && sources.iter().all(|s| s.health.rounds > 0);
    Snapshot {
        rows,
        sources,
        thresholds,
        ready,
        taken_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CertFacts, SourceKind};

    fn cert() -> Arc<CertFacts> {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(vec!["a.test".into()]).expect("params");
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "a \"quoted\"\nname");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Org");
        p.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t");
        p.not_after = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
        let c = p.self_signed(&key).expect("cert");
        Arc::new(CertFacts::from_der(c.der()).expect("facts"))
    }

    fn snap(records: Vec<Record>) -> Arc<Snapshot> {
        let src = SourceId::new(SourceKind::FILE, "");
        let mut cache = RowCache::default();
        let rows = cache.rows(records.iter().map(|r| (&src, r)));
        Arc::new(Snapshot {
            rows,
            sources: vec![SourceRow {
                labels: source_labels(&src),
                health: Health::default(),
                rows: records.len(),
                round_seconds: Some(0.25),
            }],
            thresholds: Thresholds::default(),
            ready: true,
            taken_at: 1_750_000_000,
        })
    }

    /// A row whose certificate changes within the second of its last reading (a rotation
    /// pushed on a live stream) gets new labels, not the cached ones.
    #[test]
    fn a_certificate_replaced_within_the_same_second_is_not_served_from_the_cache() {
        let src = SourceId::new(SourceKind::FILE, "");
        let mut cache = RowCache::default();
        let a = Record::new(SourceKind::FILE, "/etc/tls/web.pem".into(), 1_750_000_000)
            .with_cert(cert());
        let b = Record::new(SourceKind::FILE, "/etc/tls/web.pem".into(), 1_750_000_000)
            .with_cert(cert());
        let first = cache.rows(std::iter::once((&src, &a)));
        let again = cache.rows(std::iter::once((&src, &a)));
        assert!(Arc::ptr_eq(&first[0], &again[0]), "unchanged: reused");
        let next = cache.rows(std::iter::once((&src, &b)));
        let serial = |rows: &[Arc<MetricRow>]| {
            rows[0]
                .labels
                .iter()
                .find(|(k, _)| *k == "serial_number")
                .map(|(_, v)| v.clone())
        };
        assert_ne!(serial(&first), serial(&next));
        assert_eq!(
            serial(&next).as_deref(),
            Some(b.cert.as_ref().unwrap().serial.as_str())
        );
    }

    #[test]
    fn file_rows_carry_the_x509_exporter_labels_and_values_escaped() {
        let r = Record::new(SourceKind::FILE, "/etc/tls/web.pem#2".into(), 1_750_000_000)
            .with_cert(cert());
        let bad = Record::new(SourceKind::FILE, "/etc/tls/bad.pem".into(), 1_750_000_000)
            .with_error("unreadable");
        let text = render(snap(vec![r, bad]), 1_750_000_010, Format::Text);
        let line = text
            .lines()
            .find(|l| l.starts_with("x509_cert_not_after{"))
            .expect("not_after line");
        assert!(line.ends_with(" 1800000000"), "{line}");
        assert!(
            line.contains(r#"subject_CN="a \"quoted\" name""#),
            "control characters cleaned, quotes escaped: {line}"
        );
        assert!(line.contains(r#"subject_O="Org""#), "{line}");
        assert!(line.contains(r#"filepath="/etc/tls/web.pem""#), "{line}");
        assert!(line.contains(r#"filename="web.pem""#), "{line}");
        assert!(text.contains("x509_read_errors 1\n"), "{text}");
        assert!(text.contains("# TYPE certdeck_source_rounds_total counter"));
        assert!(text.contains("certdeck_exporter_snapshot_age_seconds 10\n"));
        assert!(!text.contains("# EOF"));
        let om = render(snap(vec![]), 1_750_000_010, Format::OpenMetrics);
        assert!(om.ends_with("# EOF\n"), "{om}");
    }

    #[test]
    fn accept_headers_choose_the_format() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("text/plain")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
            )),
            Format::OpenMetrics
        );
    }
}
