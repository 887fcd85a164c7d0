//! The key audit: the rows whose private key certdeck could see something about, worst
//! finding first, each with where its key lives. The details popup lists every finding.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use super::{fit, severity_role};
use crate::app::App;
use crate::config::theme::{Role, Theme};
use crate::model::keyaudit::{all_findings, short_label};
use crate::model::text::clean;

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    if app.fleet.rows.is_empty() {
        let filtered = app.fleet.spec.quick.is_some() || !app.fleet.spec.text.is_empty();
        let msg = if filtered {
            "No key finding matches the filter. Esc clears it."
        } else {
            "No key findings. certdeck audits the keys it can see: beside certificate files, in Kubernetes Secrets and ConfigMaps, in keystores and on PKCS#11 tokens."
        };
        let lines = vec![Line::raw(""), Line::styled(msg, theme.style(Role::Muted))];
        f.render_widget(
            Paragraph::new(lines)
                .centered()
                .wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    // Mark, severity and source are fixed; the finding, the key's place and the certificate
    // share the rest (one space between columns).
    let fixed: u16 = 1 + 11 + 4;
    let flex = area.width.saturating_sub(fixed + 5);
    let finding_w = flex * 2 / 5;
    let key_w = flex * 7 / 20;
    let cert_w = flex - finding_w - key_w;
    let header = Row::new(vec![
        Cell::from(" "),
        Cell::from("SEVERITY"),
        Cell::from("FINDING"),
        Cell::from("KEY LOCATION"),
        Cell::from("CERTIFICATE"),
        Cell::from("SRC"),
    ])
    .style(theme.style(Role::Header));
    let widths = [
        Constraint::Length(1),
        Constraint::Length(11),
        Constraint::Length(finding_w),
        Constraint::Length(key_w),
        Constraint::Length(cert_w),
        Constraint::Length(4),
    ];
    let rows = super::visible_rows(app, area).map(|(pos, _, r)| {
        let findings = all_findings(r);
        let mark = if app.fleet.marked.contains(&r.id) {
            Span::styled("●", theme.style(Role::Marked))
        } else {
            Span::raw(" ")
        };
        let mut cells = vec![Cell::from(mark)];
        if let Some(worst) = findings.first() {
            let role = theme.style(severity_role(worst.severity));
            // The finding's short name where its sentence would be cut to nothing.
            let mut text = if finding_w < 36 {
                short_label(worst.code).to_owned()
            } else {
                clean(&worst.message).into_owned()
            };
            if findings.len() > 1 {
                text.push_str(&format!(" (+{} more)", findings.len() - 1));
            }
            // Where the key lives; a finding about the certificate itself (a weak key
            // seen in it) points at the certificate's own place.
            let place = match worst.location.as_ref().filter(|_| !app.ui.redact) {
                Some(l) => clean(l).into_owned(),
                None => app.shown_location(r),
            };
            cells.push(Cell::from(Span::styled(
                format!(
                    "{} {}",
                    worst.severity.glyph(),
                    worst.severity.as_str().to_uppercase()
                ),
                role,
            )));
            cells.push(Cell::from(Span::styled(
                fit(&text, usize::from(finding_w)),
                role,
            )));
            cells.push(Cell::from(crate::report::truncate_left(
                &place,
                usize::from(key_w).max(8),
            )));
        }
        cells.push(Cell::from(fit(&app.shown_name(r), usize::from(cert_w))));
        cells.push(Cell::from(Span::styled(
            r.source.as_str(),
            theme.style(Role::Muted),
        )));
        let mut row = Row::new(cells);
        if pos == app.ui.selected {
            row = row.style(theme.style(Role::Selection));
        }
        row
    });
    let table = Table::new(rows, widths).header(header).column_spacing(1);
    f.render_widget(table, area);
}
