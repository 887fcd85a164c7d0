//! Headless output of a scan: table, JSON, CSV, Prometheus text; and the exit code.

use std::io::Write;

use serde::Serialize;

use crate::clock::{date, rfc3339};
use crate::model::places::{Drift, Place, Places};
use crate::model::status::ExpiryCause;
use crate::model::text::clean;
use crate::model::{assess, Assessment, CertFacts, Record, Status, Thresholds};

/// Output formats of `certdeck scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Prometheus,
}

/// Monitoring-style exit codes.
pub mod exit {
    pub const OK: i32 = 0;
    pub const WARNING: i32 = 1;
    pub const CRITICAL: i32 = 2;
    pub const UNKNOWN: i32 = 3;
}

/// Exit code for a set of statuses: CRITICAL (critical, expired, not yet valid) over WARNING
/// over UNKNOWN (a location could not be read) over OK.
pub fn exit_code(statuses: impl IntoIterator<Item = Status>) -> i32 {
    let mut worst = exit::OK;
    let rank = |c: i32| match c {
        exit::CRITICAL => 3,
        exit::WARNING => 2,
        exit::UNKNOWN => 1,
        _ => 0,
    };
    for s in statuses {
        let c = match s {
            Status::Expired | Status::Revoked | Status::Critical | Status::NotYetValid => {
                exit::CRITICAL
            }
            Status::Warning => exit::WARNING,
            Status::Error => exit::UNKNOWN,
            Status::Ok => exit::OK,
        };
        if rank(c) > rank(worst) {
            worst = c;
        }
    }
    worst
}

/// A record with its assessment, in report order.
pub struct Row<'a> {
    pub record: &'a Record,
    pub a: Assessment,
    /// Every location of the same certificate in the report (this one included), shared by
    /// the rows of that certificate.
    pub places: std::sync::Arc<Places>,
    /// An endpoint serving an older certificate than a store holds for the same names.
    pub drift: Option<Drift>,
}

/// Assess and sort: soonest effective expiry first, unreadable locations last, then location.
pub fn rows(records: &[Record], now: i64, t: Thresholds) -> Vec<Row<'_>> {
    let refs: Vec<&Record> = records.iter().collect();
    let index = crate::model::places::Index::new(&refs, now);
    let mut rows: Vec<Row<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Row {
            record: r,
            a: assess(r, now, t),
            places: index.places_of(&refs, i),
            drift: index.drift_of(&refs, i),
        })
        .collect();
    rows.sort_by(|x, y| {
        let kx = x.a.effective_not_after.unwrap_or(i64::MAX);
        let ky = y.a.effective_not_after.unwrap_or(i64::MAX);
        kx.cmp(&ky)
            .then_with(|| x.record.location.cmp(&y.record.location))
    });
    rows
}

#[derive(Serialize)]
struct JsonChainCert<'a> {
    subject: &'a str,
    issuer: &'a str,
    serial: &'a str,
    sha256: &'a str,
    not_after: String,
}

#[derive(Serialize)]
struct JsonCause<'a> {
    position: usize,
    subject: &'a str,
    not_after: String,
}

/// The JSON record: the contract documented in the README.
#[derive(Serialize)]
struct JsonRecord<'a> {
    id: &'a str,
    source: &'a str,
    location: &'a str,
    subject: Option<&'a str>,
    issuer: Option<&'a str>,
    serial: Option<&'a str>,
    sha256: Option<&'a str>,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo: the key's identity (key reuse).
    spki_sha256: Option<&'a str>,
    not_before: Option<String>,
    not_after: Option<String>,
    days_left: Option<i64>,
    sans: Vec<String>,
    key: Option<&'a str>,
    signature_algorithm: Option<&'a str>,
    is_ca: Option<bool>,
    status: &'static str,
    error: Option<&'a str>,
    /// The earliest expiry that matters, when a served intermediate expires before the leaf.
    expires_first: Option<JsonCause<'a>>,
    observed_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<Vec<JsonChainCert<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification: Option<&'a crate::model::Verification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_version: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_auth_requested: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer_address: Option<Option<&'a str>>,
    /// TLS rows: the protocol spoken before the handshake (`smtp`...), or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    starttls: Option<Option<&'static str>>,
    /// Kubernetes rows: context, namespace, kind, name, key, managing Certificate, drift.
    #[serde(skip_serializing_if = "Option::is_none")]
    k8s: Option<&'a crate::model::K8sInfo>,
    /// Revocation status, when checked (`null`: not checked).
    revocation: Option<JsonRevocation<'a>>,
    /// Findings about the certificate's private key, worst first (never key material).
    key_findings: Vec<crate::model::keyaudit::KeyFinding>,
    /// The leaf's lifetime used; short-lived certificates are judged by it.
    lifetime: Option<JsonLifetime>,
    /// Every location of the same certificate (by SHA-256) in this report, this one included:
    /// endpoints first, then stores (at most `places::MAX_LISTED`).
    locations: &'a [Place],
    /// How many locations the certificate has, listed or not.
    locations_total: usize,
    /// An endpoint serving an older certificate than a store holds for the same names.
    drift: Option<JsonDrift<'a>>,
    /// Facts of other sources, under their key (`"aws": {...}`).
    #[serde(flatten)]
    extra: std::collections::BTreeMap<&'static str, &'a serde_json::Value>,
}

/// The `lifetime` object of a JSON record.
#[derive(Serialize)]
struct JsonLifetime {
    /// not_after - not_before, seconds.
    total_secs: i64,
    /// Percentage used at the scan's instant, rounded down.
    used_percent: u8,
    /// True when the status was judged by `used_percent` (lifetime under `short_lived`).
    short_lived: bool,
    /// For short-lived certificates: `72% of 1h lifetime used; rotation overdue`.
    note: Option<String>,
}

/// The `drift` object of a JSON record.
#[derive(Serialize)]
struct JsonDrift<'a> {
    /// The store row holding the newer certificate: id, source, kind, location.
    store_id: &'a str,
    store_source: &'a str,
    /// `ACM`, `Key Vault`, `Certificate Manager`, `Vault`, `Secret`, `file`, `ACME file`.
    store_kind: &'a str,
    store_location: &'a str,
    store_sha256: &'a str,
    store_not_after: String,
    served_not_after: String,
    /// Further stores holding a newer certificate for the same names.
    other_stores: usize,
    message: &'a str,
}

/// The `revocation` object of a JSON record.
#[derive(Serialize)]
struct JsonRevocation<'a> {
    /// `good`, `revoked` or `unknown`.
    state: &'static str,
    /// Revoked: when (RFC 3339) and why (RFC 5280 reason name, when given).
    time: Option<String>,
    reason: Option<&'a str>,
    /// Unknown: why there is no conclusive answer.
    why: Option<&'a str>,
    /// What answered: `stapled OCSP`, `OCSP URL`, `CRL URL`, `Vault MOUNT`.
    by: Option<&'a str>,
    must_staple_unmet: bool,
}

fn json_revocation(r: &crate::model::Revocation) -> JsonRevocation<'_> {
    use crate::model::RevocationState as S;
    let (time, reason, why) = match &r.state {
        S::Good => (None, None, None),
        S::Revoked { time, reason } => (Some(rfc3339(*time)), reason.as_deref(), None),
        S::Unknown(w) => (None, None, Some(w.as_str())),
    };
    JsonRevocation {
        state: r.state_str(),
        time,
        reason,
        why,
        by: r.by.as_deref(),
        must_staple_unmet: r.must_staple_unmet,
    }
}

fn json_record<'a>(row: &'a Row<'a>) -> JsonRecord<'a> {
    let r = row.record;
    let c: Option<&CertFacts> = r.cert.as_deref();
    // Facts without the certificate (a proxy's): only what the source said, nulls elsewhere.
    let shown = c.filter(|_| !crate::model::status::facts_only(r));
    let tls = r.tls.as_ref();
    JsonRecord {
        id: &r.id,
        source: r.source.as_str(),
        location: &r.location,
        subject: shown.map(|c| c.subject.as_str()),
        issuer: shown.map(|c| c.issuer.as_str()),
        serial: c
            .map(|c| c.serial.as_str())
            .filter(|s| shown.is_some() || !s.is_empty()),
        sha256: shown.map(|c| c.sha256.as_str()),
        spki_sha256: shown.and_then(|c| c.spki_sha256.as_deref()),
        not_before: c
            .filter(|_| !crate::model::status::not_before_assumed(r))
            .map(|c| rfc3339(c.not_before)),
        not_after: c.map(|c| rfc3339(c.not_after)),
        days_left: row.a.days_left,
        sans: c
            .map(|c| c.sans.iter().map(|s| s.render()).collect())
            .unwrap_or_default(),
        key: shown.map(|c| c.key.as_str()),
        signature_algorithm: shown.map(|c| c.signature_algorithm.as_str()),
        is_ca: c.map(|c| c.is_ca),
        status: row.a.status.as_str(),
        error: r.error.as_deref(),
        expires_first: row.a.cause.as_ref().map(|x: &ExpiryCause| JsonCause {
            position: x.position,
            subject: &x.subject,
            not_after: rfc3339(x.not_after),
        }),
        observed_at: rfc3339(r.observed_at),
        chain: (tls.is_some() || r.k8s.is_some() || r.extra.is_some()).then(|| {
            r.chain
                .iter()
                .map(|c| JsonChainCert {
                    subject: &c.subject,
                    issuer: &c.issuer,
                    serial: &c.serial,
                    sha256: &c.sha256,
                    not_after: rfc3339(c.not_after),
                })
                .collect()
        }),
        verification: tls.and_then(|t| t.verification.as_ref()),
        tls_version: tls.map(|t| t.tls_version.as_deref()),
        client_auth_requested: tls.map(|t| t.client_auth_requested),
        peer_address: tls.map(|t| t.peer_addr.as_deref()),
        starttls: tls.map(|t| t.starttls),
        k8s: r.k8s.as_ref(),
        revocation: r.revocation.as_ref().map(json_revocation),
        key_findings: crate::model::keyaudit::all_findings(r),
        lifetime: row.a.lifetime.map(|l| JsonLifetime {
            total_secs: l.total_secs,
            used_percent: l.used_pct,
            short_lived: l.short_lived,
            note: row.a.lifetime_note(),
        }),
        locations: &row.places.list,
        locations_total: row.places.total,
        drift: row.drift.as_ref().map(|d| JsonDrift {
            store_id: &d.store_id,
            store_source: d.store_source.as_str(),
            store_kind: d.store_kind,
            store_location: &d.store_location,
            store_sha256: &d.store_sha256,
            store_not_after: rfc3339(d.store_not_after),
            served_not_after: rfc3339(d.served_not_after),
            other_stores: d.other_stores,
            message: &d.message,
        }),
        extra: r.extra.iter().map(|x| (x.key, &x.json)).collect(),
    }
}

/// One JSON array of records.
pub fn write_json(out: &mut dyn Write, rows: &[Row<'_>]) -> std::io::Result<()> {
    let recs: Vec<JsonRecord<'_>> = rows.iter().map(json_record).collect();
    serde_json::to_writer_pretty(&mut *out, &recs)?;
    writeln!(out)
}

/// Short note for a row: the error, an earlier-expiring intermediate, or a verification problem.
pub fn note(row: &Row<'_>) -> String {
    let r = row.record;
    if let Some(e) = &r.error {
        return e.clone();
    }
    if let Some(v) = r.revocation.as_ref().filter(|v| v.is_revoked()) {
        return v.describe();
    }
    let lifetime = row.a.lifetime_note();
    if let Some(l) = lifetime
        .as_ref()
        .filter(|_| matches!(row.a.status, Status::Critical | Status::Warning))
    {
        return l.clone();
    }
    if let Some(f) = crate::model::keyaudit::all_findings(r)
        .into_iter()
        .find(|f| f.severity >= crate::model::keyaudit::Severity::Warning)
    {
        return format!("key: {}", f.message);
    }
    if let Some(d) = &row.drift {
        return format!("drift: {}", d.message);
    }
    if let Some(n) = r.extra.as_ref().and_then(|x| x.note.clone()) {
        return n;
    }
    if let Some(k) = &r.k8s {
        if let Some(d) = &k.drift {
            return format!("drift: {d}");
        }
        if let Some(cm) = &k.managed_by {
            return format!(
                "cert-manager {} ({}): {}",
                cm.name,
                cm.issuer_ref,
                crate::sources::k8s::certmanager::state_line(cm)
            );
        }
    }
    if let Some(c) = &row.a.cause {
        return format!(
            "chain cert #{} ({}) expires {} before the leaf",
            c.position,
            crate::model::cert::short_cn(&c.subject),
            date(c.not_after)
        );
    }
    if let Some(v) = r.tls.as_ref().and_then(|t| t.verification.as_ref()) {
        if !v.trusted {
            let mut s = format!("untrusted: {}", v.reason);
            if r.tls.as_ref().is_some_and(|t| t.client_auth_requested) {
                s.push_str("; mTLS");
            }
            return s;
        }
    }
    if let Some(v) = &r.revocation {
        if v.must_staple_unmet || matches!(v.state, crate::model::RevocationState::Unknown(_)) {
            return v.describe();
        }
    }
    if r.tls.as_ref().is_some_and(|t| t.client_auth_requested) {
        return "server asks for a client certificate (mTLS)".to_owned();
    }
    lifetime.unwrap_or_default()
}

const CSV_HEADER: &[&str] = &[
    "id",
    "source",
    "location",
    "status",
    "days_left",
    "not_before",
    "not_after",
    "subject",
    "issuer",
    "serial",
    "sha256",
    "sans",
    "key",
    "signature_algorithm",
    "is_ca",
    "verification",
    "tls_version",
    "client_auth_requested",
    "starttls",
    "error",
];

/// CSV with a header row; SANs joined with `;`.
pub fn write_csv(out: &mut dyn Write, rows: &[Row<'_>]) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    for row in rows {
        let r = row.record;
        let c = r.cert.as_deref();
        let tls = r.tls.as_ref();
        let s = |f: fn(&CertFacts) -> String| c.map(f).unwrap_or_default();
        let facts_only = crate::model::status::facts_only(r);
        let s_shown = |f: fn(&CertFacts) -> String| if facts_only { String::new() } else { s(f) };
        w.write_record([
            r.id.clone(),
            r.source.as_str().to_owned(),
            r.location.clone(),
            row.a.status.as_str().to_owned(),
            row.a.days_left.map(|d| d.to_string()).unwrap_or_default(),
            if crate::model::status::not_before_assumed(r) {
                String::new()
            } else {
                s(|c| rfc3339(c.not_before))
            },
            s(|c| rfc3339(c.not_after)),
            s_shown(|c| c.subject.clone()),
            s_shown(|c| c.issuer.clone()),
            s(|c| c.serial.clone()),
            s_shown(|c| c.sha256.clone()),
            s(|c| {
                c.sans
                    .iter()
                    .map(|x| x.render())
                    .collect::<Vec<_>>()
                    .join(";")
            }),
            s_shown(|c| c.key.clone()),
            s_shown(|c| c.signature_algorithm.clone()),
            s(|c| c.is_ca.to_string()),
            tls.and_then(|t| t.verification.as_ref())
                .map(|v| v.reason.clone())
                .unwrap_or_default(),
            tls.and_then(|t| t.tls_version.clone()).unwrap_or_default(),
            tls.map(|t| t.client_auth_requested.to_string())
                .unwrap_or_default(),
            tls.and_then(|t| t.starttls).unwrap_or_default().to_owned(),
            r.error.clone().unwrap_or_default(),
        ])?;
    }
    w.flush()
}

fn prom_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition format.
pub fn write_prometheus(out: &mut dyn Write, rows: &[Row<'_>]) -> std::io::Result<()> {
    let labels = |r: &Record| {
        format!(
            "id=\"{}\",source=\"{}\",location=\"{}\"",
            prom_escape(&r.id),
            r.source.as_str(),
            prom_escape(&r.location)
        )
    };
    writeln!(out, "# HELP certdeck_certificate_not_after_seconds Effective expiry (earliest of leaf and served intermediates), unix seconds.")?;
    writeln!(out, "# TYPE certdeck_certificate_not_after_seconds gauge")?;
    for row in rows {
        if let (Some(na), Some(c)) = (row.a.effective_not_after, row.record.cert.as_deref()) {
            writeln!(
                out,
                "certdeck_certificate_not_after_seconds{{{},subject=\"{}\",issuer=\"{}\",serial=\"{}\"}} {na}",
                labels(row.record),
                prom_escape(&c.subject),
                prom_escape(&c.issuer),
                c.serial
            )?;
        }
    }
    writeln!(
        out,
        "# HELP certdeck_location_up 1 when the location was read, 0 when it could not be."
    )?;
    writeln!(out, "# TYPE certdeck_location_up gauge")?;
    for row in rows {
        writeln!(
            out,
            "certdeck_location_up{{{}}} {}",
            labels(row.record),
            u8::from(row.record.cert.is_some())
        )?;
    }
    writeln!(
        out,
        "# HELP certdeck_certificate_status 1 for the location's current status."
    )?;
    writeln!(out, "# TYPE certdeck_certificate_status gauge")?;
    for row in rows {
        writeln!(
            out,
            "certdeck_certificate_status{{{},status=\"{}\"}} 1",
            labels(row.record),
            row.a.status.as_str()
        )?;
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Keep the end of a long location (the file name or port matters most).
pub fn truncate_left(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_owned()
    } else {
        let mut t = String::from("…");
        t.extend(s.chars().skip(n - max.saturating_sub(1)));
        t
    }
}

/// Status word for the table, upper case so it reads without colour.
pub fn status_label(s: Status) -> &'static str {
    match s {
        Status::Expired => "EXPIRED",
        Status::Revoked => "REVOKED",
        Status::Critical => "CRITICAL",
        Status::NotYetValid => "NOT-YET-VALID",
        Status::Error => "ERROR",
        Status::Warning => "WARNING",
        Status::Ok => "OK",
    }
}

fn ansi(s: Status) -> &'static str {
    match s {
        Status::Expired | Status::Revoked | Status::Critical | Status::NotYetValid => "\x1b[1;31m",
        Status::Warning => "\x1b[33m",
        Status::Error => "\x1b[35m",
        Status::Ok => "\x1b[32m",
    }
}

/// A fixed-width table, soonest expiry first, with a one-line summary.
pub fn write_table(out: &mut dyn Write, rows: &[Row<'_>], color: bool) -> std::io::Result<()> {
    let header = [
        "STATUS", "DAYS", "EXPIRES", "SUBJECT", "LOCATION", "SOURCE", "ISSUER", "NOTE",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            let c = row.record.cert.as_deref();
            [
                status_label(row.a.status).to_owned(),
                row.a
                    .days_left
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                row.a
                    .effective_not_after
                    .map(date)
                    .unwrap_or_else(|| "-".into()),
                truncate(&clean(c.map(|c| c.display_name()).unwrap_or("-")), 36),
                truncate_left(&clean(&row.record.location), 44),
                row.record.source.as_str().to_owned(),
                truncate(&clean(c.map(|c| c.issuer_name()).unwrap_or("-")), 28),
                clean(&note(row)).into_owned(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(7) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line =
        |out: &mut dyn Write, cols: &[String], status: Option<Status>| -> std::io::Result<()> {
            let mut s = String::new();
            for (i, cell) in cols.iter().enumerate() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                if i == 0 && color {
                    if let Some(st) = status {
                        s.push_str(ansi(st));
                        s.push_str(cell);
                        s.push_str("\x1b[0m");
                    } else {
                        s.push_str(cell);
                    }
                } else if i == 1 {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(cell);
                } else {
                    s.push_str(cell);
                }
                if i + 1 < cols.len() {
                    if i != 1 {
                        s.push_str(&" ".repeat(pad));
                    }
                    s.push_str("  ");
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
    line(out, &header.map(str::to_owned), None)?;
    for (row, cols) in rows.iter().zip(cells.iter()) {
        line(out, cols, Some(row.a.status))?;
    }
    let mut counts = std::collections::BTreeMap::new();
    for row in rows {
        *counts.entry(row.a.status).or_insert(0usize) += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str().replace('_', " ")))
        .collect();
    writeln!(out, "\n{} location(s): {}", rows.len(), summary.join(", "))
}

/// After the table: every source that had a problem, with its health line.
pub fn write_health(
    out: &mut dyn Write,
    health: &[(crate::sources::SourceId, crate::sources::Health)],
) -> std::io::Result<()> {
    use crate::sources::HealthState;
    let troubled: Vec<_> = health
        .iter()
        .filter(|(_, h)| matches!(h.state, HealthState::Failing | HealthState::Partial))
        .collect();
    if troubled.is_empty() {
        return Ok(());
    }
    writeln!(out, "\nsources:")?;
    for (id, h) in troubled {
        writeln!(out, "  {id}: {}", clean(&h.describe()))?;
    }
    Ok(())
}

/// Source health as Prometheus gauges.
pub fn write_prometheus_health(
    out: &mut dyn Write,
    health: &[(crate::sources::SourceId, crate::sources::Health)],
) -> std::io::Result<()> {
    use crate::sources::HealthState;
    writeln!(out, "# HELP certdeck_source_up 1 when the source's last round read everything, 0 when it failed or was partial.")?;
    writeln!(out, "# TYPE certdeck_source_up gauge")?;
    for (id, h) in health {
        writeln!(
            out,
            "certdeck_source_up{{source=\"{}\",instance=\"{}\"}} {}",
            id.kind.as_str(),
            prom_escape(&id.instance),
            u8::from(h.state == HealthState::Ok)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_monitoring_precedence() {
        assert_eq!(exit_code([]), 0);
        assert_eq!(exit_code([Status::Ok]), 0);
        assert_eq!(exit_code([Status::Ok, Status::Warning]), 1);
        assert_eq!(exit_code([Status::Error, Status::Ok]), 3);
        assert_eq!(exit_code([Status::Error, Status::Warning]), 1);
        assert_eq!(
            exit_code([Status::Error, Status::Expired, Status::Warning]),
            2
        );
        assert_eq!(exit_code([Status::NotYetValid]), 2);
    }

    #[test]
    fn prometheus_labels_are_escaped() {
        assert_eq!(prom_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
