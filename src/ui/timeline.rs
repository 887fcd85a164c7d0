//! The expiry timeline: a time axis from now to the horizon, critical and warning bands, each
//! certificate placed by its expiry, grouped by source or issuer; expired ones pinned at the
//! left edge. Rows follow the table's sort, filter and selection.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{fit, glyph, status_role};
use crate::app::{group_key, App, Horizon};
use crate::config::theme::{Role, Theme};
use crate::model::status::DAY;
use crate::model::Status;

const LABEL_W: usize = 22;

const HOUR: i64 = 3600;

/// Axis ticks: (seconds from now, label).
fn ticks(h: Horizon) -> &'static [(i64, &'static str)] {
    match h {
        Horizon::Hour => &[
            (15 * 60, "15m"),
            (30 * 60, "30m"),
            (45 * 60, "45m"),
            (HOUR, "1h"),
        ],
        Horizon::Day => &[
            (3 * HOUR, "3h"),
            (6 * HOUR, "6h"),
            (12 * HOUR, "12h"),
            (18 * HOUR, "18h"),
            (24 * HOUR, "24h"),
        ],
        Horizon::Week => &[
            (DAY, "1d"),
            (2 * DAY, "2d"),
            (3 * DAY, "3d"),
            (4 * DAY, "4d"),
            (5 * DAY, "5d"),
            (6 * DAY, "6d"),
            (7 * DAY, "7d"),
        ],
        Horizon::Month => &[
            (7 * DAY, "7d"),
            (14 * DAY, "14d"),
            (21 * DAY, "21d"),
            (30 * DAY, "30d"),
        ],
        Horizon::Quarter => &[
            (7 * DAY, "7d"),
            (30 * DAY, "30d"),
            (60 * DAY, "60d"),
            (90 * DAY, "90d"),
        ],
        Horizon::Year => &[
            (30 * DAY, "30d"),
            (90 * DAY, "90d"),
            (180 * DAY, "180d"),
            (365 * DAY, "1y"),
        ],
    }
}

/// The label beside a row's mark: days on long horizons, hours or minutes on short ones.
fn time_left(secs: i64, horizon: Horizon) -> String {
    match horizon {
        Horizon::Hour => format!("{}m", secs.div_euclid(60)),
        Horizon::Day if secs < HOUR => format!("{}m", secs.div_euclid(60)),
        Horizon::Day => format!("{}h", secs.div_euclid(HOUR)),
        _ => format!("{}d", secs.div_euclid(DAY)),
    }
}

/// Column (0-based within the track) of a time `secs` from now; None beyond the horizon.
fn column(secs: i64, horizon: i64, width: usize) -> Option<usize> {
    if secs > horizon {
        return None;
    }
    let x =
        (secs.max(0) as f64 / horizon as f64 * (width.saturating_sub(1)) as f64).round() as usize;
    Some(x.min(width.saturating_sub(1)))
}

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    // Label, a space, the pin column, today's line, the track, and the beyond-the-horizon arrow.
    let track_w = usize::from(area.width).saturating_sub(LABEL_W + 4).max(10);
    let horizon = app.ui.horizon.secs();
    let crit_x = column(app.thresholds.crit_secs, horizon, track_w).unwrap_or(track_w);
    let warn_x = column(app.thresholds.warn_secs, horizon, track_w).unwrap_or(track_w);
    let band = |x: usize| -> (char, Style) {
        if x < crit_x {
            (
                '▒',
                theme
                    .style(Role::BandCritical)
                    .patch(theme.style(Role::Muted)),
            )
        } else if x < warn_x {
            (
                '░',
                theme
                    .style(Role::BandWarning)
                    .patch(theme.style(Role::Muted)),
            )
        } else {
            ('·', theme.style(Role::Muted))
        }
    };

    let mut lines: Vec<Line<'_>> = Vec::new();
    // Axis: label column says where expired ones sit; then today's line and the ticks.
    let mut axis = vec![' '; track_w];
    for (at, label) in ticks(app.ui.horizon) {
        if let Some(x) = column(*at, horizon, track_w) {
            let start = (x + 1)
                .saturating_sub(label.len())
                .min(track_w.saturating_sub(label.len()));
            for (i, ch) in label.chars().enumerate() {
                axis[start + i] = ch;
            }
        }
    }
    lines.push(Line::from(vec![
        Span::styled(
            format!("{:<w$}", "expired ✖│now", w = LABEL_W + 2),
            theme.style(Role::Header),
        ),
        Span::styled(
            axis.into_iter().collect::<String>(),
            theme.style(Role::Header),
        ),
        Span::styled("→", theme.style(Role::Header)),
    ]));

    if app.fleet.rows.is_empty() {
        lines.push(Line::styled(
            "  no certificate matches",
            theme.style(Role::Muted),
        ));
        f.render_widget(Paragraph::new(lines), area);
        return;
    }

    // Body: group headers interleaved with rows. Scroll so the selection stays visible.
    let body_h = usize::from(area.height).saturating_sub(2);
    let mut body: Vec<(Option<usize>, Line<'_>)> = Vec::new();
    let recs = app.fleet.records();
    let mut last_group: Option<String> = None;
    for (pos, &idx) in app.fleet.rows.iter().enumerate() {
        let r = &recs[idx];
        let g = group_key(r, app.ui.group_by);
        if last_group.as_ref() != Some(&g) {
            let n = app
                .fleet
                .rows
                .iter()
                .filter(|&&i| group_key(&recs[i], app.ui.group_by) == g)
                .count();
            body.push((
                None,
                Line::styled(
                    format!("── {} ({n})", fit(&g, LABEL_W + track_w - 10)),
                    theme.style(Role::Title),
                ),
            ));
            last_group = Some(g);
        }
        let a = &app.fleet.facts(idx).a;
        let selected = pos == app.ui.selected;
        let mut spans = Vec::new();
        let mark = if app.fleet.marked.contains(&r.id) {
            "●"
        } else {
            " "
        };
        let name = if r.cert.is_some() {
            app.shown_name(r)
        } else {
            app.shown_location(r)
        };
        let label = fit(&name, LABEL_W - 2);
        let label_style = if selected {
            theme.style(Role::Selection)
        } else {
            Style::default()
        };
        spans.push(Span::styled(
            format!("{mark}{label:<w$}", w = LABEL_W - 1),
            label_style,
        ));
        let st = theme.style(status_role(a.status));
        // Pin column: expired, revoked and unreadable rows sit here.
        let pin = match a.status {
            Status::Expired | Status::Revoked => Span::styled(glyph(a.status), st),
            Status::Error => Span::styled("?", st),
            _ => Span::raw(" "),
        };
        spans.push(Span::raw(" "));
        spans.push(pin);
        spans.push(Span::styled("│", theme.style(Role::Guidance)));
        let mut track: Vec<(char, Style)> = (0..track_w).map(band).collect();
        let mut beyond = Span::raw(" ");
        match (a.status, a.effective_not_after) {
            (Status::Expired | Status::Revoked | Status::Error, _) | (_, None) => {}
            (_, Some(na)) => {
                let secs = na - app.now;
                match column(secs, horizon, track_w) {
                    Some(x) => {
                        track[x] = (glyph(a.status).chars().next().unwrap_or('*'), st);
                        let days = time_left(secs, app.ui.horizon);
                        let start = if x + 2 + days.len() <= track_w {
                            x + 2
                        } else {
                            x.saturating_sub(days.len() + 1)
                        };
                        for (i, ch) in days.chars().enumerate() {
                            if start + i != x && start + i < track_w {
                                track[start + i] = (ch, st);
                            }
                        }
                    }
                    None => beyond = Span::styled("→", st),
                }
            }
        }
        for (ch, style) in track {
            spans.push(Span::styled(ch.to_string(), style));
        }
        spans.push(beyond);
        body.push((Some(pos), Line::from(spans)));
    }
    let sel_line = body
        .iter()
        .position(|(p, _)| *p == Some(app.ui.selected))
        .unwrap_or(0);
    let start = if sel_line >= body_h {
        sel_line + 1 - body_h
    } else {
        0
    };
    lines.extend(body.into_iter().skip(start).take(body_h).map(|(_, l)| l));
    // Legend on the last line.
    lines.push(Line::from(vec![
        Span::styled(
            "▒",
            theme
                .style(Role::BandCritical)
                .patch(theme.style(Role::Muted)),
        ),
        Span::styled(
            format!(" < {}d critical  ", app.thresholds.crit_secs / DAY),
            theme.style(Role::Muted),
        ),
        Span::styled(
            "░",
            theme
                .style(Role::BandWarning)
                .patch(theme.style(Role::Muted)),
        ),
        Span::styled(
            format!(" < {}d warning  ", app.thresholds.warn_secs / DAY),
            theme.style(Role::Muted),
        ),
        Span::styled(
            "→ beyond the horizon · b groups by ",
            theme.style(Role::Muted),
        ),
        Span::styled(
            match app.ui.group_by {
                crate::app::GroupBy::Source => "issuer",
                crate::app::GroupBy::Issuer => "source",
            },
            theme.style(Role::Muted),
        ),
    ]));
    f.render_widget(Paragraph::new(lines), area);
}
