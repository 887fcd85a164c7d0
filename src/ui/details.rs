//! The details popup: every field of the record, the served chain, the verdict, every
//! location of the same certificate (endpoints, stores), served-versus-stored drift, lifetime
//! used, and the PEM.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::Frame;

use super::{glyph, status_role, word};
use crate::app::App;
use crate::clock::rfc3339;
use crate::config::theme::{Role, Theme};
use crate::model::status::DAY;

fn field<'a>(theme: &Theme, name: &str, value: impl Into<String>) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{name:<14}"), theme.style(Role::Muted)),
        Span::raw(value.into()),
    ])
}

/// Lifetime used, in percent (0..=100 clamped), for a validity window at `now`.
pub fn lifetime_used(not_before: i64, not_after: i64, now: i64) -> f64 {
    let total = (not_after - not_before).max(1) as f64;
    ((now - not_before) as f64 / total * 100.0).clamp(0.0, 100.0)
}

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let Some(r) = app.selected_record() else {
        return;
    };
    let idx = app.fleet.rows[app.ui.selected];
    let a = &app.fleet.facts(idx).a;
    let title = format!("Details: {}", app.shown_name(r));
    let inner = super::popup_frame(f, area, &title, theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    let st = theme.style(status_role(a.status));
    let days = match (a.lifetime_note(), a.days_left) {
        (Some(l), _) => format!(", {l}"),
        (None, Some(d)) => format!(", {d} days left"),
        (None, None) => String::new(),
    };
    lines.push(Line::from(vec![
        Span::styled(format!("{:<14}", "Status"), theme.style(Role::Muted)),
        Span::styled(format!("{} {}{days}", glyph(a.status), word(a.status)), st),
    ]));
    if let Some(c) = &a.cause {
        lines.push(field(
            theme,
            "Expires first",
            format!(
                "chain #{} {} on {}",
                c.position,
                c.subject,
                rfc3339(c.not_after)
            ),
        ));
    }
    lines.push(field(theme, "Location", app.shown_location(r)));
    let origin = app.fleet.origin_of(&r.id);
    let source = match origin.and_then(|o| app.fleet.store().source(o).map(|s| (o, s))) {
        Some((o, s)) => format!("{o} ({})", crate::model::text::clean(&s.health.describe())),
        None => r.source.as_str().to_owned(),
    };
    lines.push(field(theme, "Source", source));
    lines.push(field(theme, "Id", r.id.clone()));
    lines.push(field(theme, "Observed", rfc3339(r.observed_at)));
    if let Some(age) = app.fleet.stale_age(idx, app.now) {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "Stale"), theme.style(Role::Muted)),
            Span::styled(
                format!(
                    "last read {} ago; its source could not read it since (this is its last known state)",
                    crate::clock::age(age)
                ),
                theme.style(Role::Warning),
            ),
        ]));
    }
    if let Some(e) = &r.error {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<14}", "Error"), theme.style(Role::Muted)),
            Span::styled(
                crate::model::text::clean(e).into_owned(),
                theme.style(Role::Unknown),
            ),
        ]));
    }
    if let Some(c) = r.cert.as_deref() {
        let used = match a.lifetime {
            Some(l) if l.short_lived => f64::from(l.used_pct),
            _ => lifetime_used(c.not_before, c.not_after, app.now),
        };
        let filled = (used / 5.0).round() as usize;
        let bar = format!("{}{}", "█".repeat(filled), "░".repeat(20 - filled.min(20)));
        let life = c.not_after - c.not_before;
        let of = if a.lifetime.is_some_and(|l| l.short_lived) {
            format!(
                "{} (short-lived: warn {}%, crit {}%)",
                crate::model::status::compact_duration(life),
                app.thresholds.warn_lifetime_pct,
                app.thresholds.crit_lifetime_pct
            )
        } else {
            format!("{} days", life / DAY)
        };
        lines.push(field(
            theme,
            "Lifetime used",
            format!("{bar} {used:.0}% of {of}"),
        ));
        // Facts without the certificate (a proxy's): only what its source said.
        let known = !crate::model::status::facts_only(r);
        if !known {
            lines.push(field(
                theme,
                "Certificate",
                "not shown by its source: no fingerprint, subject or issuer",
            ));
        }
        let ids: Vec<&str> = c
            .sans
            .iter()
            .filter(|s| s.is_spiffe())
            .map(|s| s.value())
            .collect();
        if app.ui.redact && !ids.is_empty() {
            lines.push(field(theme, "SPIFFE ID", "(redacted)"));
        } else {
            for (i, id) in ids.iter().enumerate() {
                let td = id
                    .strip_prefix("spiffe://")
                    .and_then(|r| r.split('/').next())
                    .unwrap_or("");
                lines.push(field(
                    theme,
                    if i == 0 { "SPIFFE ID" } else { "" },
                    crate::model::text::clean(&format!("{id}  (trust domain {td})")).into_owned(),
                ));
            }
        }
        if !app.ui.redact && known {
            lines.push(field(theme, "Subject", c.subject.clone()));
        }
        if known {
            lines.push(field(theme, "Issuer", c.issuer.clone()));
        }
        if !crate::model::status::not_before_assumed(r) {
            lines.push(field(theme, "Not before", rfc3339(c.not_before)));
        }
        lines.push(field(theme, "Not after", rfc3339(c.not_after)));
        if known || !c.serial.is_empty() {
            lines.push(field(theme, "Serial", c.serial.clone()));
        }
        if known {
            lines.push(field(theme, "SHA-256", c.sha256.clone()));
            lines.push(field(theme, "Key", c.key.clone()));
            lines.push(field(theme, "Signature", c.signature_algorithm.clone()));
        }
        lines.push(field(theme, "CA", if c.is_ca { "yes" } else { "no" }));
        if let Some(v) = &r.revocation {
            let role = match v.state {
                crate::model::RevocationState::Revoked { .. } => Role::Critical,
                crate::model::RevocationState::Unknown(_) => Role::Unknown,
                crate::model::RevocationState::Good if v.must_staple_unmet => Role::Warning,
                crate::model::RevocationState::Good => Role::Healthy,
            };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "Revocation"), theme.style(Role::Muted)),
                Span::styled(
                    crate::model::text::clean(&v.describe()).into_owned(),
                    theme.style(role),
                ),
            ]));
        }
        if app.ui.redact {
            lines.push(field(theme, "SANs", format!("{} (redacted)", c.sans.len())));
        } else {
            for (i, s) in c.sans.iter().enumerate() {
                let tag = if s.is_spiffe() { "  (SPIFFE ID)" } else { "" };
                lines.push(field(
                    theme,
                    if i == 0 { "SANs" } else { "" },
                    format!("{}{tag}", s.render()),
                ));
            }
        }
    }
    let findings = crate::model::keyaudit::all_findings(r);
    if !findings.is_empty() {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Private key", theme.style(Role::Header)));
        for f in &findings {
            let role = super::severity_role(f.severity);
            let mut text = f.message.clone();
            if let Some(l) = f.location.as_ref().filter(|_| !app.ui.redact) {
                text.push_str(&format!(" [{l}]"));
            }
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", f.severity.as_str()), theme.style(role)),
                Span::styled(
                    crate::model::text::clean(&text).into_owned(),
                    theme.style(role),
                ),
            ]));
        }
    }
    if let Some(x) = &r.extra {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            x.key.to_ascii_uppercase(),
            theme.style(Role::Header),
        ));
        for (label, value) in &x.details {
            lines.push(field(
                theme,
                label,
                crate::model::text::clean(value).into_owned(),
            ));
        }
    }
    if let Some(k) = &r.k8s {
        lines.push(Line::raw(""));
        lines.push(Line::styled("Kubernetes", theme.style(Role::Header)));
        lines.push(field(theme, "Context", k.context.clone()));
        if !k.namespace.is_empty() {
            lines.push(field(theme, "Namespace", k.namespace.clone()));
        }
        lines.push(field(theme, "Object", format!("{} {}", k.kind, k.name)));
        if let Some(key) = &k.key {
            lines.push(field(theme, "Key", key.clone()));
        }
        if let Some(cm) = &k.managed_by {
            lines.push(field(
                theme,
                "cert-manager",
                format!(
                    "{} ({}): {}",
                    cm.name,
                    cm.issuer_ref,
                    crate::sources::k8s::certmanager::state_line(cm)
                ),
            ));
        }
        if let Some(d) = &k.drift {
            lines.push(field(theme, "Drift", d.clone()));
        }
    }
    if let Some(t) = &r.tls {
        lines.push(Line::raw(""));
        lines.push(Line::styled("TLS", theme.style(Role::Header)));
        lines.push(field(
            theme,
            "Version",
            t.tls_version.clone().unwrap_or_else(|| "-".into()),
        ));
        if let Some(proto) = t.starttls {
            lines.push(field(theme, "STARTTLS", proto));
        }
        lines.push(field(
            theme,
            "Client auth",
            if t.client_auth_requested {
                "requested (mTLS)"
            } else {
                "not requested"
            },
        ));
        if let Some(v) = &t.verification {
            let role = if v.trusted {
                Role::Healthy
            } else {
                Role::Critical
            };
            let mark = if v.trusted { "✔" } else { "✖" };
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "Verification"), theme.style(Role::Muted)),
                Span::styled(
                    format!("{mark} {} (for {})", v.reason, v.checked_name),
                    theme.style(role),
                ),
            ]));
        }
        lines.push(Line::styled("Served chain", theme.style(Role::Header)));
        if r.chain.is_empty() {
            lines.push(Line::styled(
                "  (the server sent only the leaf)",
                theme.style(Role::Muted),
            ));
        }
        for (i, c) in r.chain.iter().enumerate() {
            let left = (c.not_after - app.now).div_euclid(DAY);
            let role = if left < 0 {
                Role::Expired
            } else if left * DAY < app.thresholds.crit_secs {
                Role::Critical
            } else if left * DAY < app.thresholds.warn_secs {
                Role::Warning
            } else {
                Role::Healthy
            };
            lines.push(Line::from(vec![
                Span::raw(format!("  #{} {}  ", i + 1, c.subject)),
                Span::styled(
                    format!("expires {} ({left}d)", crate::clock::date(c.not_after)),
                    theme.style(role),
                ),
            ]));
        }
    }
    if let Some(c) = r.cert.as_deref() {
        if let Some(d) = app.fleet.fleet().drift_of(r, app.now) {
            lines.push(Line::raw(""));
            lines.push(Line::styled("Drift", theme.style(Role::Header)));
            lines.push(Line::from(vec![
                Span::styled(format!("{:<14}", "Served"), theme.style(Role::Muted)),
                Span::styled(
                    format!(
                        "an older certificate (expires {}) than the {} holds: the endpoint has not picked up the renewal{}",
                        rfc3339(d.served_not_after),
                        d.store_kind,
                        match d.other_stores {
                            0 => String::new(),
                            1 => " (1 more store holds a newer one)".to_owned(),
                            n => format!(" ({n} more stores hold a newer one)"),
                        }
                    ),
                    theme.style(Role::Warning),
                ),
            ]));
            let store = app
                .fleet
                .get(&d.store_id)
                .map(|s| app.shown_location(s))
                .unwrap_or_else(|| d.store_location.clone());
            lines.push(field(
                theme,
                "Store",
                format!("{} {store} ({})", d.store_kind, d.store_id),
            ));
            lines.push(field(theme, "Store expires", rfc3339(d.store_not_after)));
        }
        // One certificate, many places: every row holding this leaf, this one marked.
        let places = app.fleet.fleet().places_of(&c.sha256);
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("Locations of this certificate ({})", places.len()),
            theme.style(Role::Header),
        ));
        // This row first if it is not among the first listed; at most 50 lines.
        const SHOWN: usize = 50;
        let mut listed: Vec<&crate::model::places::Place> = places.iter().take(SHOWN).collect();
        if !listed.iter().any(|p| p.id == r.id) {
            if let Some(me) = places.iter().find(|p| p.id == r.id) {
                listed.pop();
                listed.insert(0, me);
            }
        }
        for p in listed {
            let shown = app
                .fleet
                .get(&p.id)
                .map(|o| app.shown_location(o))
                .unwrap_or_else(|| crate::model::text::clean(&p.location).into_owned());
            let this = p.id == r.id;
            let text = format!(
                "{} {:<10} {:<9} {shown}{}",
                if this { "▸" } else { " " },
                p.source.as_str(),
                p.role,
                if this { "  (this row)" } else { "" }
            );
            lines.push(if this {
                Line::styled(text, theme.style(Role::Title))
            } else {
                Line::raw(text)
            });
        }
        if places.len() > SHOWN {
            lines.push(Line::styled(
                format!("  … and {} more", places.len() - SHOWN),
                theme.style(Role::Muted),
            ));
        }
        if crate::model::status::facts_only(r) {
            // Its source never showed the certificate: there is no PEM.
            super::scrolled(f, app, lines, inner);
            return;
        }
        lines.push(Line::raw(""));
        lines.push(Line::styled("PEM (y copies it)", theme.style(Role::Header)));
        for l in c.to_pem().lines() {
            lines.push(Line::styled(l.to_owned(), theme.style(Role::Muted)));
        }
    }
    super::scrolled(f, app, lines, inner);
}
