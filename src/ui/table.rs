//! The fleet table: a row per certificate location, worst first by default.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{fit, glyph, severity_role, status_role, word};
use crate::app::App;
use crate::clock::date;
use crate::config::theme::{Role, Theme};
use crate::model::view::SortColumn;

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    if app.fleet.rows.is_empty() {
        let msg = if app.fleet.is_empty() {
            let waiting = app.fleet.store().sources().any(|(_, s)| {
                s.progress.running || s.health.state == crate::sources::HealthState::Pending
            });
            if waiting {
                "Waiting for the first results…"
            } else {
                "No certificates yet. Give targets or files on the command line, or in the config file."
            }
        } else {
            "No certificate matches the filter. Esc clears it."
        };
        let lines = vec![Line::raw(""), Line::styled(msg, theme.style(Role::Muted))];
        f.render_widget(Paragraph::new(lines).centered(), area);
        return;
    }
    let wide = area.width >= 110;
    let sort_mark = |c: SortColumn, label: &str| {
        if app.fleet.spec.sort == c {
            format!("{label}{}", if app.fleet.spec.reverse { "↓" } else { "↑" })
        } else {
            label.to_owned()
        }
    };
    let mut header = vec![
        Cell::from(" "),
        Cell::from(sort_mark(SortColumn::Status, "STATUS")),
        Cell::from(sort_mark(SortColumn::Days, "DAYS")),
        Cell::from("EXPIRES"),
        Cell::from(sort_mark(SortColumn::Name, "NAME")),
        Cell::from(sort_mark(SortColumn::Location, "LOCATION")),
        Cell::from(sort_mark(SortColumn::Source, "SRC")),
    ];
    // Fixed columns plus one space between each; name, location (and issuer) share the rest.
    // The key audit column is the worst finding's glyph, with its name when there is room.
    let named_audit = area.width >= 140;
    let audit_w: u16 = if named_audit { 16 } else { 1 };
    let fixed: u16 = 1 + 9 + 5 + 10 + 4 + audit_w + if wide { 11 } else { 0 };
    let gaps: u16 = if wide { 9 } else { 7 };
    let flex = area.width.saturating_sub(fixed + gaps);
    let (name_w, loc_w, issuer_w) = if wide {
        (flex * 3 / 8, flex * 3 / 8, flex - 2 * (flex * 3 / 8))
    } else {
        (flex / 2, flex - flex / 2, 0)
    };
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(10),
        Constraint::Length(name_w),
        Constraint::Length(loc_w),
        Constraint::Length(4),
    ];
    if wide {
        header.push(Cell::from(sort_mark(SortColumn::Issuer, "ISSUER")));
        header.push(Cell::from(sort_mark(SortColumn::Key, "KEY")));
        widths.push(Constraint::Length(issuer_w));
        widths.push(Constraint::Length(11));
    }
    header.push(Cell::from(if named_audit { "KEY AUDIT" } else { "K" }));
    widths.push(Constraint::Length(audit_w));
    let rows = super::visible_rows(app, area).map(|(pos, idx, r)| {
        let facts = app.fleet.facts(idx);
        let a = &facts.a;
        let marked = app.fleet.marked.contains(&r.id);
        let changed = app.fleet.changed.contains(&r.id);
        let stale = app.fleet.stale_age(idx, app.now);
        let mark = if marked {
            Span::styled("●", theme.style(Role::Marked))
        } else if stale.is_some() {
            Span::styled("~", theme.style(Role::Muted))
        } else if changed {
            Span::styled("*", theme.style(Role::Changed))
        } else {
            Span::raw(" ")
        };
        let status = Span::styled(
            format!("{} {}", glyph(a.status), word(a.status)),
            theme.style(status_role(a.status)),
        );
        let days = a
            .days_left
            .map(|d| format!("{d:>5}"))
            .unwrap_or_else(|| "    -".into());
        let expires = a
            .effective_not_after
            .map(date)
            .unwrap_or_else(|| "-".into());
        let name = match (&r.cert, &r.error, stale) {
            (_, _, Some(age)) => Span::styled(
                fit(
                    &format!("stale {} {}", crate::clock::age(age), app.shown_name(r)),
                    usize::from(name_w),
                ),
                theme.style(Role::Muted),
            ),
            (None, Some(e), None) => Span::styled(
                fit(&crate::model::text::clean(e), usize::from(name_w)),
                theme.style(Role::Unknown),
            ),
            _ => Span::raw(fit(&app.shown_name(r), usize::from(name_w))),
        };
        let mut cells = vec![
            Cell::from(mark),
            Cell::from(status),
            Cell::from(Span::styled(days, theme.style(status_role(a.status)))),
            Cell::from(expires),
            Cell::from(name),
            Cell::from(fit_left(&app.shown_location(r), usize::from(loc_w))),
            Cell::from(Span::styled(r.source.as_str(), theme.style(Role::Muted))),
        ];
        if wide {
            let c = r.cert.as_deref();
            cells.push(Cell::from(fit(
                &crate::model::text::clean(c.map(|c| c.issuer_name()).unwrap_or("-")),
                usize::from(issuer_w),
            )));
            cells.push(Cell::from(c.map(|c| c.key.clone()).unwrap_or_default()));
        }
        let keys = &facts.keys;
        if let Some(w) = keys.worst {
            let text = if named_audit {
                fit(&keys.label(), usize::from(audit_w))
            } else {
                w.glyph().to_owned()
            };
            cells.push(Cell::from(Span::styled(
                text,
                theme.style(severity_role(w)),
            )));
        }
        let mut row = Row::new(cells);
        if pos == app.ui.selected {
            row = row.style(theme.style(Role::Selection));
        }
        row
    });
    let table = Table::new(rows, widths)
        .header(Row::new(header).style(theme.style(Role::Header)))
        .column_spacing(1);
    f.render_widget(table, area);
}

/// Keep the end of a long location (a file name or port matters most).
fn fit_left(s: &str, max: usize) -> String {
    crate::report::truncate_left(s, max.max(8))
}
