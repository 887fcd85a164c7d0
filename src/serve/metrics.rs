//! The exporter's metrics: a snapshot of the fleet (built by the collector task, never on a
//! scrape) and a `prometheus-client` [`Collector`] that encodes it in the Prometheus text
//! format or OpenMetrics.
//!
//! Each row's labels are encoded once, when the row is built (`k="v",...`, escaped as both
//! text formats require), and written as they are into every series of the row: a render
//! writes a few strings per series instead of encoding ten labels each time.
//!
//! Label cardinality is bounded by design: one series per location and metric; no
//! fingerprints, SANs or error texts as labels; the only enumerated labels are `status` (7
//! values) and `state` (3 or 4 values), and each location carries one of them at a time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, LabelSetEncoder,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::model::text::clean;
use crate::model::{assess, Record, RevocationState, Thresholds};
use crate::sources::{Health, HealthState, SourceId};

/// A label set: names are static, values owned.
pub type Labels = Vec<(&'static str, String)>;

/// Labels left out by default (they add bytes to every series and no dashboard or shipped
/// rule uses them): `id` (derived from source and location), `filename` (the last part of
/// `filepath`), `subject_O`, `issuer_O`. `[serve] extra_labels` / `--extra-label` adds them.
pub const OPTIONAL_LABELS: &[&str] = &["id", "filename", "subject_O", "issuer_O"];

/// Which of the [`OPTIONAL_LABELS`] rows carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelOptions {
    pub id: bool,
    pub filename: bool,
    pub subject_o: bool,
    pub issuer_o: bool,
}

impl LabelOptions {
    /// From label names; an unknown name is an error naming the ones there are.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<LabelOptions, String> {
        let mut o = LabelOptions::default();
        for n in names {
            match n.as_ref() {
                "id" => o.id = true,
                "filename" => o.filename = true,
                "subject_O" => o.subject_o = true,
                "issuer_O" => o.issuer_o = true,
                other => {
                    return Err(format!(
                        "unknown extra label '{}' (one of: {})",
                        clean(other),
                        OPTIONAL_LABELS.join(", ")
                    ))
                }
            }
        }
        Ok(o)
    }

    /// Every optional label.
    pub fn all() -> LabelOptions {
        LabelOptions {
            id: true,
            filename: true,
            subject_o: true,
            issuer_o: true,
        }
    }
}

/// One location, as the metrics see it: its labels and the facts the values come from.
#[derive(Debug, Clone)]
pub struct MetricRow {
    /// The labels, encoded: `k1="v1",...,source` — every label but the value of `source`,
    /// which is always last (see [`RowLabels`]).
    head: Box<str>,
    /// The record itself (status is judged at render time: it changes with the clock).
    pub record: Record,
    /// cert-manager's `status.renewalTime`, unix seconds, when the row has one.
    pub renewal_time: Option<i64>,
}

impl MetricRow {
    /// The row's labels as they appear in the exposition (`{k="v",...}`).
    pub fn label_text(&self) -> String {
        format!("{{{}=\"{}\"}}", self.head, self.record.source.as_str())
    }
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

impl Snapshot {
    /// The earliest instant after `now` at which a status or `x509_cert_expired` rendered at
    /// `now` may be wrong ([`crate::model::status::next_change`] over every row).
    pub fn next_change(&self, now: i64) -> Option<i64> {
        self.rows
            .iter()
            .filter_map(|r| crate::model::status::next_change(&r.record, now, self.thresholds))
            .min()
    }
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

/// The labels of a location: certdeck's (`source_instance`, `location`, `context`, and
/// `source`, always last) and the x509-certificate-exporter's (`subject_CN`, `issuer_CN`,
/// `serial_number`, `filepath`, `secret_namespace`/`secret_name`/`secret_key`,
/// `configmap_*`), plus the [`OPTIONAL_LABELS`] asked for. Empty values are left out.
pub fn row_labels(source: &SourceId, r: &Record, opts: LabelOptions) -> Labels {
    let mut l = Labels::with_capacity(12);
    if opts.id {
        push(&mut l, "id", &r.id);
    }
    push(&mut l, "source_instance", &source.instance);
    push(&mut l, "location", &r.location);
    if let Some(c) = r.cert.as_deref() {
        push(&mut l, "subject_CN", c.common_name.as_deref().unwrap_or(""));
        if opts.subject_o {
            push(&mut l, "subject_O", dn_attr(&c.subject, "O").unwrap_or(""));
        }
        push(&mut l, "issuer_CN", dn_attr(&c.issuer, "CN").unwrap_or(""));
        if opts.issuer_o {
            push(&mut l, "issuer_O", dn_attr(&c.issuer, "O").unwrap_or(""));
        }
        push(&mut l, "serial_number", &c.serial);
    }
    if r.source == crate::model::SourceKind::FILE {
        let path = match r.location.rsplit_once('#') {
            Some((p, n)) if n.chars().all(|c| c.is_ascii_digit()) => p,
            _ => &r.location,
        };
        push(&mut l, "filepath", path);
        if opts.filename {
            let name = std::path::Path::new(path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            push(&mut l, "filename", &name);
        }
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
    // Last, so that the encoded labels end with a name whose value is a plain word.
    l.push(("source", r.source.as_str().to_owned()));
    l
}

/// Escape a label value as both text formats require (`\\`, `\"`, `\n`).
fn escape_into(out: &mut String, v: &str) {
    for ch in v.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// `k1="v1",...,source`: labels encoded once, with the value of the last one left off.
fn encode_head(labels: &Labels) -> Box<str> {
    let mut out = String::with_capacity(labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum());
    let last = labels.len().saturating_sub(1);
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        if i < last {
            out.push_str("=\"");
            escape_into(&mut out, v);
            out.push('"');
        }
    }
    out.into_boxed_str()
}

/// The row of a record (labels computed once per observation, not per scrape).
pub fn metric_row(source: &SourceId, r: &Record, opts: LabelOptions) -> MetricRow {
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
        head: encode_head(&row_labels(source, r, opts)),
        record: r.clone(),
        renewal_time,
    }
}

/// Rows by record id, rebuilt only when the record was observed again.
#[derive(Debug, Default)]
pub struct RowCache {
    rows: HashMap<String, (i64, Arc<MetricRow>)>,
    opts: LabelOptions,
}

impl RowCache {
    /// A cache whose rows carry these optional labels.
    pub fn new(opts: LabelOptions) -> RowCache {
        RowCache {
            rows: HashMap::new(),
            opts,
        }
    }

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
                _ => Arc::new(metric_row(src, r, self.opts)),
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

/// Encodes one snapshot; `now` is the instant statuses are judged at.
#[derive(Debug)]
struct SnapshotCollector {
    snapshot: Arc<Snapshot>,
    now: i64,
}

/// A row's pre-encoded labels, optionally with one more label (`status`, `state`).
///
/// `prometheus-client` writes a label key as it is given; the key handed to it here is the
/// whole encoded head (`k1="v1",...,source`, escaped when the row was built) so that only
/// the last value goes through its value encoder. The exposition is byte for byte what
/// encoding every label would give (a test checks it).
struct RowLabels<'a> {
    row: &'a MetricRow,
    extra: Option<(&'static str, &'a str)>,
}

impl EncodeLabelSet for RowLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let mut label = encoder.encode_label();
        let mut key = label.encode_label_key()?;
        key.write_str(&self.row.head)?;
        let source = self.row.record.source.as_str();
        let value = match self.extra {
            None => source,
            Some((name, value)) => {
                key.write_str("=\"")?;
                key.write_str(source)?;
                key.write_str("\",")?;
                key.write_str(name)?;
                value
            }
        };
        let mut v = key.encode_label_value()?;
        v.write_str(value)?;
        v.finish()
    }
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

/// One gauge family over the rows, with each row's encoded labels (and an extra label).
fn row_gauge<'r, V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (RowLabels<'r>, V)>,
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in series {
        ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn plain(row: &MetricRow) -> RowLabels<'_> {
    RowLabels { row, extra: None }
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &*self.snapshot;
        let now = self.now;
        let rows = || s.rows.iter().map(|r| &**r);
        let leaf = |r: &MetricRow| {
            r.record
                .cert
                .as_deref()
                .map(|c| (c.not_before, c.not_after))
        };
        row_gauge(
            &mut enc,
            "x509_cert_not_after",
            "Leaf certificate notAfter, unix seconds (x509-certificate-exporter compatible).",
            rows().filter_map(|r| leaf(r).map(|(_, na)| (plain(r), na))),
        )?;
        row_gauge(
            &mut enc,
            "x509_cert_not_before",
            "Leaf certificate notBefore, unix seconds (x509-certificate-exporter compatible).",
            rows().filter_map(|r| leaf(r).map(|(nb, _)| (plain(r), nb))),
        )?;
        row_gauge(
            &mut enc,
            "x509_cert_expired",
            "1 when the leaf certificate has expired (x509-certificate-exporter compatible).",
            rows().filter_map(|r| leaf(r).map(|(_, na)| (plain(r), i64::from(na <= now)))),
        )?;
        let errors = rows().filter(|r| r.record.cert.is_none()).count() as i64;
        gauge(
            &mut enc,
            "x509_read_errors",
            "Locations that could not be read (x509-certificate-exporter compatible).",
            std::iter::once((Labels::new(), errors)),
        )?;
        let assessed: Vec<_> = rows()
            .map(|r| assess(&r.record, now, s.thresholds))
            .collect();
        row_gauge(
            &mut enc,
            "certdeck_cert_effective_not_after_seconds",
            "Chain-aware expiry: the earliest notAfter of the leaf and the served intermediates, unix seconds.",
            rows()
                .zip(&assessed)
                .filter_map(|(r, a)| a.effective_not_after.map(|na| (plain(r), na))),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_cert_status",
            "1 for the location's current status (expired, revoked, critical, not_yet_valid, error, warning, ok).",
            rows().zip(&assessed).map(|(row, a)| {
                (
                    RowLabels {
                        row,
                        extra: Some(("status", a.status.as_str())),
                    },
                    1i64,
                )
            }),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_location_up",
            "1 when the location was read, 0 when it could not be.",
            rows().map(|r| (plain(r), i64::from(r.record.cert.is_some()))),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_cert_verified",
            "TLS rows: 1 when the served chain verified against the trust anchors for the name asked for, else 0.",
            rows().filter_map(|r| {
                r.record
                    .tls
                    .as_ref()
                    .and_then(|t| t.verification.as_ref())
                    .map(|v| (plain(r), i64::from(v.trusted)))
            }),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_cert_revocation",
            "1 for the leaf's revocation state (good, revoked, unknown) when it was checked.",
            rows().filter_map(|row| {
                row.record.revocation.as_ref().map(|v| {
                    let state = match v.state {
                        RevocationState::Good => "good",
                        RevocationState::Revoked { .. } => "revoked",
                        RevocationState::Unknown(_) => "unknown",
                    };
                    (
                        RowLabels {
                            row,
                            extra: Some(("state", state)),
                        },
                        1i64,
                    )
                })
            }),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_cert_renew_by_seconds",
            "When renewal is due, unix seconds: cert-manager's renewalTime, else the effective expiry minus the warning threshold.",
            rows().zip(&assessed).filter_map(|(row, a)| {
                row.renewal_time
                    .or_else(|| {
                        a.effective_not_after
                            .map(|na| na.saturating_sub(s.thresholds.warn_secs))
                    })
                    .map(|v| (plain(row), v))
            }),
        )?;
        row_gauge(
            &mut enc,
            "certdeck_observed_timestamp_seconds",
            "When the location was last observed, unix seconds (its age is time() minus this).",
            rows().map(|r| (plain(r), r.record.observed_at)),
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
        // A timestamp, not an age: the body is rendered ahead of scrapes, and an age would be
        // wrong by the time it is served. The age of what is served is time() minus this.
        gauge(
            &mut enc,
            "certdeck_exporter_snapshot_timestamp_seconds",
            "When the observations served were gathered into the snapshot, unix seconds.",
            std::iter::once((Labels::new(), s.taken_at)),
        )?;
        gauge(
            &mut enc,
            "certdeck_exporter_judged_timestamp_seconds",
            "The instant statuses and x509_cert_expired were judged at, unix seconds (re-judged as soon as one would change).",
            std::iter::once((Labels::new(), now)),
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

/// Render a snapshot judged at `now` into `out` (for OpenMetrics, with its `# EOF`).
pub fn render_into(
    out: &mut impl std::fmt::Write,
    snapshot: Arc<Snapshot>,
    now: i64,
    format: Format,
) -> Result<(), std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector { snapshot, now }));
    match format {
        Format::Text => prometheus_client::encoding::prometheus_text::encode(out, &registry),
        Format::OpenMetrics => prometheus_client::encoding::text::encode(out, &registry),
    }
}

/// Render a snapshot judged at `now`.
pub fn render(snapshot: Arc<Snapshot>, now: i64, format: Format) -> String {
    let mut out = String::new();
    if render_into(&mut out, snapshot, now, format).is_err() {
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
            .push(rcgen::DnType::CommonName, "a \"quoted\"\nname \\ back");
        p.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Org");
        p.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("t");
        p.not_after = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
        let c = p.self_signed(&key).expect("cert");
        Arc::new(CertFacts::from_der(c.der()).expect("facts"))
    }

    fn snap(records: Vec<Record>, opts: LabelOptions) -> Arc<Snapshot> {
        let src = SourceId::new(SourceKind::FILE, "");
        let mut cache = RowCache::new(opts);
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
            let text = rows[0].label_text();
            text.split("serial_number=\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .map(str::to_owned)
        };
        assert_ne!(serial(&first), serial(&next));
        assert_eq!(
            serial(&next).as_deref(),
            Some(b.cert.as_ref().unwrap().serial.as_str())
        );
    }

    fn records() -> Vec<Record> {
        let r = Record::new(SourceKind::FILE, "/etc/tls/web.pem#2".into(), 1_750_000_000)
            .with_cert(cert());
        let bad = Record::new(SourceKind::FILE, "/etc/tls/bad.pem".into(), 1_750_000_000)
            .with_error("unreadable");
        vec![r, bad]
    }

    #[test]
    fn file_rows_carry_the_x509_exporter_labels_and_values_escaped() {
        let text = render(
            snap(records(), LabelOptions::default()),
            1_750_000_010,
            Format::Text,
        );
        let line = text
            .lines()
            .find(|l| l.starts_with("x509_cert_not_after{"))
            .expect("not_after line");
        assert!(line.ends_with(" 1800000000"), "{line}");
        assert!(
            line.contains(r#"subject_CN="a \"quoted\" name \\ back""#),
            "control characters cleaned, quotes and backslashes escaped: {line}"
        );
        assert!(line.contains(r#"filepath="/etc/tls/web.pem""#), "{line}");
        assert!(line.contains(r#"location="/etc/tls/web.pem#2""#), "{line}");
        assert!(line.contains(r#"source="file"}"#), "{line}");
        for optional in ["id=", "filename=", "subject_O=", "issuer_O="] {
            assert!(!line.contains(optional), "{optional} is opt-in: {line}");
        }
        assert!(text.contains("x509_read_errors 1\n"), "{text}");
        assert!(text.contains("# TYPE certdeck_source_rounds_total counter"));
        assert!(text.contains("certdeck_exporter_snapshot_timestamp_seconds 1750000000\n"));
        assert!(text.contains("certdeck_exporter_judged_timestamp_seconds 1750000010\n"));
        assert!(text.contains(r#"status="ok"} 1"#), "{text}");
        assert!(!text.contains("# EOF"));
        let om = render(
            snap(vec![], LabelOptions::default()),
            1_750_000_010,
            Format::OpenMetrics,
        );
        assert!(om.ends_with("# EOF\n"), "{om}");

        let all = render(
            snap(records(), LabelOptions::all()),
            1_750_000_010,
            Format::Text,
        );
        let line = all
            .lines()
            .find(|l| l.starts_with("x509_cert_not_after{"))
            .expect("not_after line");
        assert!(line.contains(r#"subject_O="Org""#), "{line}");
        assert!(line.contains(r#"filename="web.pem""#), "{line}");
        assert!(line.contains(r#"id=""#), "{line}");
        assert_eq!(
            LabelOptions::from_names(&["filename", "issuer_O"]),
            Ok(LabelOptions {
                filename: true,
                issuer_o: true,
                ..LabelOptions::default()
            })
        );
        let err = LabelOptions::from_names(&["fingerprint"]).expect_err("unknown");
        assert!(err.contains("unknown extra label 'fingerprint'"), "{err}");
    }

    /// The same label sets encoded by prometheus-client label by label.
    #[derive(Debug)]
    struct PerLabel(Vec<(Labels, Option<(&'static str, String)>)>);

    impl Collector for PerLabel {
        fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            let mut m = enc.encode_descriptor("m", "h", None, MetricType::Gauge)?;
            for (labels, extra) in &self.0 {
                let mut l = labels.clone();
                l.extend(extra.clone());
                ConstGauge::new(1i64).encode(m.encode_family(&l)?)?;
            }
            Ok(())
        }
    }

    #[test]
    fn cached_labels_encode_byte_for_byte_as_prometheus_client_encodes_each_label() {
        let src = SourceId::new(SourceKind::FILE, "inst\"ance");
        let mut recs = records();
        recs.push(
            Record::new(SourceKind::FILE, "/x/\\odd\".pem".into(), 1_750_000_000).with_cert(cert()),
        );
        for opts in [LabelOptions::default(), LabelOptions::all()] {
            let rows: Vec<MetricRow> = recs.iter().map(|r| metric_row(&src, r, opts)).collect();
            let ours: Vec<String> = rows
                .iter()
                .flat_map(|row| {
                    [None, Some(("status", "ok"))].map(|extra| {
                        let mut out = String::new();
                        let mut w = String::new();
                        {
                            let mut reg = Registry::default();
                            #[derive(Debug)]
                            struct One(MetricRow, Option<(&'static str, &'static str)>);
                            impl Collector for One {
                                fn encode(
                                    &self,
                                    mut enc: DescriptorEncoder,
                                ) -> Result<(), std::fmt::Error> {
                                    let mut m =
                                        enc.encode_descriptor("m", "h", None, MetricType::Gauge)?;
                                    ConstGauge::new(1i64).encode(m.encode_family(&RowLabels {
                                        row: &self.0,
                                        extra: self.1,
                                    })?)
                                }
                            }
                            reg.register_collector(Box::new(One(row.clone(), extra)));
                            prometheus_client::encoding::text::encode_registry(&mut w, &reg)
                                .expect("encode");
                        }
                        out.push_str(w.lines().nth(2).expect("series"));
                        out
                    })
                })
                .collect();
            let mut reg = Registry::default();
            reg.register_collector(Box::new(PerLabel(
                recs.iter()
                    .flat_map(|r| {
                        let l = row_labels(&src, r, opts);
                        [(l.clone(), None), (l, Some(("status", "ok".to_owned())))]
                    })
                    .collect(),
            )));
            let mut theirs = String::new();
            prometheus_client::encoding::text::encode_registry(&mut theirs, &reg).expect("encode");
            let theirs: Vec<&str> = theirs.lines().skip(2).collect();
            assert_eq!(ours, theirs);
            assert_eq!(
                rows[0].label_text(),
                theirs[0]
                    .strip_prefix('m')
                    .and_then(|l| l.strip_suffix(" 1"))
                    .expect("labels")
            );
        }
    }

    #[test]
    fn the_next_change_is_the_earliest_over_the_rows() {
        let s = snap(records(), LabelOptions::default());
        // The certificate expires at 1_800_000_000: warning 30 days before.
        assert_eq!(
            s.next_change(1_750_000_000),
            Some(1_800_000_000 - 30 * 86_400 + 1)
        );
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
