//! Rendering: `render(&App, &Theme, &mut Frame)`, a pure function of the state. No IO.

mod actions;
mod details;
mod help;
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
        Status::Critical => "CRIT",
        Status::NotYetValid => "NOTYET",
        Status::Error => "ERROR",
        Status::Warning => "WARN",
        Status::Ok => "OK",
    }
}

pub fn status_role(s: Status) -> Role {
    match s {
        Status::Expired => Role::Expired,
        Status::Critical => Role::Critical,
        Status::NotYetValid => Role::NotYetValid,
        Status::Error => Role::Unknown,
        Status::Warning => Role::Warning,
        Status::Ok => Role::Healthy,
    }
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
    match app.view {
        View::Table => table::render(app, theme, f, main),
        View::Timeline => timeline::render(app, theme, f, main),
    }
    hint_bar(app, theme, f, hints);
    match app.popup {
        Some(Popup::Details) => details::render(app, theme, f, popup_area(area, 100, 100)),
        Some(Popup::Help) => help::render(app, theme, f, popup_area(area, 76, 100)),
        Some(Popup::Confirm) => actions::confirm(app, theme, f, popup_area(area, 100, 100)),
        Some(Popup::Tasks) => actions::tasks(app, theme, f, popup_area(area, 100, 100)),
        None => {}
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
    for (src, p) in &app.progress {
        let done = if p.finished {
            "✓".to_owned()
        } else {
            "…".to_owned()
        };
        let mut s = format!(" {} {}/{}{}", src.as_str(), p.done, p.total, done);
        if p.failed > 0 {
            s.push_str(&format!(" {} failed", p.failed));
        }
        let role = if p.error.is_some() {
            Role::Critical
        } else if p.finished {
            Role::Muted
        } else {
            Role::Guidance
        };
        spans.push(Span::styled(s, theme.style(role)));
    }
    let arrow = if app.spec.reverse { "↓" } else { "↑" };
    spans.push(Span::styled(
        format!(" │ sort {}{arrow}", app.spec.sort.label()),
        theme.style(Role::Muted),
    ));
    if let Some(q) = app.spec.quick {
        spans.push(Span::styled(
            format!(" │ only {}", q.label()),
            theme.style(Role::Changed),
        ));
    }
    if !app.spec.text.is_empty() {
        spans.push(Span::styled(
            format!(" │ /{}", app.spec.text.text),
            theme.style(Role::Changed),
        ));
    }
    if app.view == View::Timeline {
        spans.push(Span::styled(
            format!(" │ horizon {}", app.horizon.label()),
            theme.style(Role::Muted),
        ));
    }
    if !app.marked.is_empty() {
        spans.push(Span::styled(
            format!(" │ {} marked", app.marked.len()),
            theme.style(Role::Marked),
        ));
    }
    if app.frozen {
        spans.push(Span::styled(" │ FROZEN", theme.style(Role::Warning)));
    }
    let running = app
        .tasks
        .values()
        .filter(|t| t.state == crate::app::TaskState::Running)
        .count();
    if running > 0 {
        spans.push(Span::styled(
            format!(" │ ⟳ {running} task(s)"),
            theme.style(Role::Changed),
        ));
    }
    if app.read_only {
        spans.push(Span::styled(" │ read-only", theme.style(Role::Muted)));
    }
    if app.redact {
        spans.push(Span::styled(" │ redacted", theme.style(Role::Muted)));
    }
    spans.push(Span::styled(
        format!(" │ {}/{}", app.rows.len(), app.fleet.len()),
        theme.style(Role::Muted),
    ));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hint_bar(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let line = match &app.input {
        Input::Filter(t) => {
            let note = if app.spec.text.is_literal_fallback() {
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
        Input::None => match &app.message {
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
                if app.view == View::Table {
                    "timeline"
                } else {
                    "table"
                },
            ),
            (Action::Sort(crate::model::view::SortColumn::Days), "sort"),
            (Action::Quit, "quit"),
            (Action::Act, "renew"),
            (Action::Refresh, "probe"),
            (Action::Mark, "mark"),
            (Action::Freeze, "freeze"),
        ],
        Mode::Details => &[
            (Action::Back, "close"),
            (Action::Down, "scroll"),
            (Action::CopyPem, "copy PEM"),
        ],
        Mode::Help | Mode::Tasks => &[(Action::Back, "close"), (Action::Down, "scroll")],
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
    if app.view == View::Timeline && mode == Mode::Normal {
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

/// Clear an area and draw a bordered block into it; returns the inner area.
pub fn popup_frame(f: &mut Frame<'_>, area: Rect, title: &str, theme: &Theme) -> Rect {
    f.render_widget(Clear, area);
    let b = block(title, theme);
    let inner = b.inner(area);
    f.render_widget(b, area);
    inner
}
