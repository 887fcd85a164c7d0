//! Rendering: `render(&App, &Theme, &mut Frame)`, a pure function of the state. No IO.

mod actions;
mod details;
mod help;
mod keys;
mod sources;
mod table;
mod timeline;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui::Frame;

use crate::app::{App, Input, Level, Popup, View, MIN_HEIGHT, MIN_WIDTH};
use crate::config::keymap::{Action, Mode};
use crate::config::theme::{Role, Theme};
use crate::model::Status;

/// Glyph for a status: meaning never rests on colour alone.
pub fn glyph(s: Status) -> &'static str {
    match s {
        Status::Expired => "✖",
        Status::Revoked => "⊘",
        Status::Critical => "‼",
        Status::NotYetValid => "◷",
        Status::Error => "?",
        Status::Warning => "▲",
        Status::Ok => "✔",
    }
}

/// Short status word.
pub fn word(s: Status) -> &'static str {
    match s {
        Status::Expired => "EXPIRED",
        Status::Revoked => "REVOKED",
        Status::Critical => "CRIT",
        Status::NotYetValid => "NOTYET",
        Status::Error => "ERROR",
        Status::Warning => "WARN",
        Status::Ok => "OK",
    }
}

/// The colour role of a key finding's severity.
pub fn severity_role(s: crate::model::keyaudit::Severity) -> Role {
    use crate::model::keyaudit::Severity;
    match s {
        Severity::Critical => Role::Critical,
        Severity::Warning => Role::Warning,
        Severity::Info => Role::Muted,
        Severity::Protected => Role::Healthy,
    }
}

pub fn status_role(s: Status) -> Role {
    match s {
        Status::Expired => Role::Expired,
        Status::Revoked => Role::Critical,
        Status::Critical => Role::Critical,
        Status::NotYetValid => Role::NotYetValid,
        Status::Error => Role::Unknown,
        Status::Warning => Role::Warning,
        Status::Ok => Role::Healthy,
    }
}

/// The rows of the fleet that fit in a table body of `area` (one line goes to the header):
/// each as (position in the view, index in the fleet, record).
pub fn visible_rows<'a>(
    app: &'a App,
    area: Rect,
) -> impl Iterator<Item = (usize, usize, &'a crate::model::Record)> + 'a {
    let vp = usize::from(area.height.saturating_sub(1));
    let end = (app.ui.offset + vp).min(app.fleet.rows.len());
    app.fleet.rows[app.ui.offset..end]
        .iter()
        .enumerate()
        .map(move |(i, &idx)| (app.ui.offset + i, idx, &app.fleet.records()[idx]))
}

/// Cut a string to `max` characters with an ellipsis.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else if max == 0 {
        String::new()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Draw the whole screen.
pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>) {
    let area = f.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small(theme, f, area);
        return;
    }
    let [title, main, hints] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(area);
    title_bar(app, theme, f, title);
    match app.ui.view {
        View::Table => table::render(app, theme, f, main),
        View::Timeline => timeline::render(app, theme, f, main),
        View::Keys => keys::render(app, theme, f, main),
    }
    hint_bar(app, theme, f, hints);
    match app.ui.popup {
        Some(Popup::Details) => details::render(app, theme, f, popup_area(area, 100, 100)),
        Some(Popup::Help) => help::render(app, theme, f, popup_area(area, 76, 100)),
        Some(Popup::Confirm) => actions::confirm(app, theme, f, popup_area(area, 100, 100)),
        Some(Popup::Tasks) => actions::tasks(app, theme, f, popup_area(area, 100, 100)),
        Some(Popup::Sources) => sources::render(app, theme, f, popup_area(area, 100, 100)),
        None => {}
    }
    scrub(f.buffer_mut());
}

/// The last line of defence: no control character from outside text reaches the terminal,
/// whatever widget drew it.
fn scrub(buf: &mut ratatui::buffer::Buffer) {
    for cell in buf.content.iter_mut() {
        if cell.symbol().chars().any(crate::model::text::is_unsafe) {
            cell.set_symbol("\u{FFFD}");
        }
    }
}

fn popup_area(area: Rect, max_w: u16, max_h: u16) -> Rect {
    let w = area.width.saturating_sub(4).min(max_w);
    let h = area.height.saturating_sub(2).min(max_h);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn too_small(theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let lines = vec![
        Line::styled("Terminal too small", theme.style(Role::Title)),
        Line::raw(format!(
            "{}x{} here; certdeck needs at least {MIN_WIDTH}x{MIN_HEIGHT}.",
            area.width, area.height
        )),
        Line::styled(
            "Enlarge the window, or press q to quit.",
            theme.style(Role::Muted),
        ),
    ];
    let y = area.height.saturating_sub(3) / 2;
    let r = Rect {
        x: area.x,
        y: area.y + y,
        width: area.width,
        height: area.height.saturating_sub(y).min(3),
    };
    f.render_widget(
        Paragraph::new(lines)
            .centered()
            .wrap(ratatui::widgets::Wrap { trim: true }),
        r,
    );
}

fn title_bar(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let mut spans = vec![Span::styled(" certdeck ", theme.style(Role::Title))];
    let store = app.fleet.store();
    let n = store.sources().count();
    // Every source on its own when there is room, else a count per state.
    let compact = n > 4;
    let (mut ok, mut bad) = (0, 0);
    for (src, st) in store.sources() {
        use crate::sources::HealthState;
        let p = &st.progress;
        let troubled = matches!(st.health.state, HealthState::Failing | HealthState::Partial);
        if troubled {
            bad += 1;
        } else {
            ok += 1;
        }
        if compact && !troubled {
            continue;
        }
        let mark = match st.health.state {
            HealthState::Failing => " ✖".to_owned(),
            HealthState::Partial => " ▲".to_owned(),
            _ if p.running => "…".to_owned(),
            HealthState::Ok => "✓".to_owned(),
            HealthState::Pending => "…".to_owned(),
        };
        let mut t = if st.health.state == HealthState::Failing && !p.running {
            format!(" {src}{mark}")
        } else {
            format!(" {src} {}/{}{mark}", p.done, p.total)
        };
        if let (true, Some(pr)) = (troubled, &st.health.problem) {
            t.push(' ');
            t.push_str(pr.kind.as_str());
        } else if p.failed > 0 {
            t.push_str(&format!(" {} failed", p.failed));
        }
        let role = match st.health.state {
            HealthState::Failing => Role::Critical,
            HealthState::Partial => Role::Warning,
            _ if p.running => Role::Guidance,
            _ => Role::Muted,
        };
        spans.push(Span::styled(t, theme.style(role)));
    }
    if compact {
        spans.push(Span::styled(
            format!(
                " {ok} source(s) ok{}",
                if bad > 0 {
                    format!(", {bad} in trouble")
                } else {
                    String::new()
                }
            ),
            theme.style(if bad > 0 { Role::Critical } else { Role::Muted }),
        ));
    }
    let arrow = if app.fleet.spec.reverse { "↓" } else { "↑" };
    spans.push(Span::styled(
        format!(" │ sort {}{arrow}", app.fleet.spec.sort.label()),
        theme.style(Role::Muted),
    ));
    if let Some(q) = app.fleet.spec.quick {
        spans.push(Span::styled(
            format!(" │ only {}", q.label()),
            theme.style(Role::Changed),
        ));
    }
    if !app.fleet.spec.text.is_empty() {
        spans.push(Span::styled(
            format!(" │ /{}", app.fleet.spec.text.text),
            theme.style(Role::Changed),
        ));
    }
    if app.ui.view == View::Timeline {
        spans.push(Span::styled(
            format!(" │ horizon {}", app.ui.horizon.label()),
            theme.style(Role::Muted),
        ));
    }
    if app.ui.view == View::Keys {
        spans.push(Span::styled(" │ key audit", theme.style(Role::Changed)));
    }
    if !app.fleet.marked.is_empty() {
        spans.push(Span::styled(
            format!(" │ {} marked", app.fleet.marked.len()),
            theme.style(Role::Marked),
        ));
    }
    if app.fleet.frozen {
        spans.push(Span::styled(" │ FROZEN", theme.style(Role::Warning)));
    }
    let running = app.tasks.running();
    if running > 0 {
        spans.push(Span::styled(
            format!(" │ ⟳ {running} task(s)"),
            theme.style(Role::Changed),
        ));
    }
    if app.read_only {
        spans.push(Span::styled(" │ read-only", theme.style(Role::Muted)));
    }
    if app.ui.redact {
        spans.push(Span::styled(" │ redacted", theme.style(Role::Muted)));
    }
    spans.push(Span::styled(
        format!(" │ {}/{}", app.fleet.rows.len(), app.fleet.len()),
        theme.style(Role::Muted),
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint_bar(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let line = match &app.ui.input {
        Input::Filter(t) => {
            let note = if app.fleet.spec.text.is_literal_fallback() {
                "  (not a regex: matching literally)"
            } else {
                ""
            };
            Line::from(vec![
                Span::styled("/", theme.style(Role::Title)),
                Span::raw(t.clone()),
                Span::styled("▏", theme.style(Role::Guidance)),
                Span::styled(
                    format!("  enter keep · esc clear · !inverts{note}"),
                    theme.style(Role::Muted),
                ),
            ])
        }
        Input::Command(t) => Line::from(vec![
            Span::styled(":", theme.style(Role::Title)),
            Span::raw(t.clone()),
            Span::styled("▏", theme.style(Role::Guidance)),
            Span::styled("  enter run · esc cancel", theme.style(Role::Muted)),
        ]),
        Input::None => match &app.ui.message {
            Some((m, level)) => {
                let role = if *level == Level::Error {
                    Role::Critical
                } else {
                    Role::Guidance
                };
                Line::styled(format!(" {m}"), theme.style(role))
            }
            None => hints(app, theme),
        },
    };
    f.render_widget(Paragraph::new(line), area);
}

/// Key hints from the keymap's own bindings, so a rebound key shows its new binding.
fn hints(app: &App, theme: &Theme) -> Line<'static> {
    let mode = app.mode();
    let wanted: &[(Action, &str)] = match mode {
        Mode::Normal => &[
            (Action::Help, "help"),
            (Action::Filter, "filter"),
            (Action::Details, "details"),
            (
                Action::Timeline,
                if app.ui.view == View::Timeline {
                    "table"
                } else {
                    "timeline"
                },
            ),
            (Action::Sort(crate::model::view::SortColumn::Days), "sort"),
            (Action::Quit, "quit"),
            (Action::Act, "renew"),
            (Action::Refresh, "probe"),
            (
                Action::Keys,
                if app.ui.view == View::Keys {
                    "table"
                } else {
                    "key audit"
                },
            ),
            (Action::Mark, "mark"),
            (Action::Sources, "sources"),
            (Action::Freeze, "freeze"),
        ],
        Mode::Details => &[
            (Action::Back, "close"),
            (Action::Down, "scroll"),
            (Action::CopyPem, "copy PEM"),
        ],
        Mode::Help | Mode::Tasks => &[(Action::Back, "close"), (Action::Down, "scroll")],
        Mode::Sources => &[
            (Action::Back, "close"),
            (Action::Down, "scroll"),
            (Action::RefreshAll, "refresh all"),
        ],
        Mode::Confirm => &[
            (Action::Confirm, "yes, do it"),
            (Action::Cancel, "cancel"),
            (Action::Down, "scroll"),
        ],
    };
    let mut spans = Vec::new();
    for (a, label) in wanted {
        if let Some(k) = app.keymap.key_for(mode, *a) {
            spans.push(Span::styled(format!(" {k}"), theme.style(Role::Title)));
            spans.push(Span::styled(format!(" {label}"), theme.style(Role::Muted)));
        }
    }
    if app.ui.view == View::Timeline && mode == Mode::Normal {
        spans.push(Span::styled(" +/-", theme.style(Role::Title)));
        spans.push(Span::styled(" zoom", theme.style(Role::Muted)));
    }
    Line::from(spans)
}

/// A bordered block with a title.
pub fn block<'a>(title: &'a str, theme: &Theme) -> ratatui::widgets::Block<'a> {
    ratatui::widgets::Block::bordered()
        .border_style(theme.style(Role::Border))
        .title(Span::styled(format!(" {title} "), theme.style(Role::Title)))
}

/// Wrapped text lines in a popup, scrolled by the popup's scroll offset.
pub fn scrolled(f: &mut Frame<'_>, app: &App, lines: Vec<ratatui::text::Line<'_>>, inner: Rect) {
    f.render_widget(
        ratatui::widgets::Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((app.ui.scroll, 0)),
        inner,
    );
}

/// Clear an area and draw a bordered block into it; returns the inner area.
pub fn popup_frame(f: &mut Frame<'_>, area: Rect, title: &str, theme: &Theme) -> Rect {
    f.render_widget(Clear, area);
    let b = block(title, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    inner
}
