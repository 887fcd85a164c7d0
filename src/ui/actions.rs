//! The confirm popup (the exact change of each planned action) and the task view.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, TaskState};
use crate::config::theme::{Role, Theme};

pub fn confirm(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let Some(c) = &app.confirm else { return };
    let runnable = c.proposals.iter().filter(|p| p.error.is_none()).count();
    let title = format!("Confirm: {runnable} action(s)");
    let inner = super::popup_frame(f, area, &title, theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for p in &c.proposals {
        let mut head = vec![Span::styled(p.title.clone(), theme.style(Role::Header))];
        if p.destructive {
            head.push(Span::styled(
                "  ⚠ changes a live certificate",
                theme.style(Role::Warning),
            ));
        }
        lines.push(Line::from(head));
        match &p.error {
            Some(e) => {
                lines.push(Line::styled(
                    format!("  {}", app_location(app, &p.location)),
                    theme.style(Role::Muted),
                ));
                lines.push(Line::styled(
                    format!("  ✖ not possible: {e}"),
                    theme.style(Role::Critical),
                ));
            }
            None => {
                for l in p.preview.lines() {
                    lines.push(Line::raw(l.to_owned()));
                }
            }
        }
        lines.push(Line::raw(""));
    }
    let footer = if runnable > 0 {
        format!("y: yes, run {runnable} · n / esc: cancel (nothing changes)")
    } else {
        "nothing can run · n / esc: close".to_owned()
    };
    lines.push(Line::styled(footer, theme.style(Role::Guidance)));
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.scroll, 0)),
        inner,
    );
}

fn app_location(app: &App, loc: &str) -> String {
    if app.redact {
        "(redacted)".to_owned()
    } else {
        loc.to_owned()
    }
}

/// Glyph of a task state.
pub fn task_glyph(s: TaskState) -> &'static str {
    match s {
        TaskState::Running => "⟳",
        TaskState::Succeeded => "✔",
        TaskState::Failed => "✖",
    }
}

pub fn tasks(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let running = app
        .tasks
        .values()
        .filter(|t| t.state == TaskState::Running)
        .count();
    let title = format!("Tasks: {running} running, {} in all", app.tasks.len());
    let inner = super::popup_frame(f, area, &title, theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    if app.tasks.is_empty() {
        lines.push(Line::styled(
            "No task yet. n on a row plans its renewal; space marks rows for bulk.",
            theme.style(Role::Muted),
        ));
    }
    for t in app.tasks.values() {
        let role = match t.state {
            TaskState::Running => Role::Guidance,
            TaskState::Succeeded => Role::Healthy,
            TaskState::Failed => Role::Critical,
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{} ", task_glyph(t.state)), theme.style(role)),
            Span::styled(t.title.clone(), theme.style(Role::Header)),
            Span::raw(format!("  {}", app_location(app, &t.location))),
        ]));
        lines.push(Line::styled(
            format!("  step: {}", t.step),
            theme.style(role),
        ));
        for l in &t.log {
            lines.push(Line::styled(format!("    {l}"), theme.style(Role::Muted)));
        }
        lines.push(Line::raw(""));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.scroll, 0)),
        inner,
    );
}
