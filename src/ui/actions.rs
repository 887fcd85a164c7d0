//! The confirm popup (the exact change of each planned action) and the task view.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::{App, TaskState};
use crate::config::theme::{Role, Theme};

pub fn confirm(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let Some(c) = &app.tasks.confirm else { return };
    let runnable = c.runnable().count();
    let title = format!("Confirm: {runnable} action(s)");
    let inner = super::popup_frame(f, area, &title, theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for p in &c.plans {
        match p {
            Ok(plan) => {
                let mut head = vec![Span::styled(plan.title.clone(), theme.style(Role::Header))];
                if plan.risk == crate::actions::Risk::Destructive {
                    head.push(Span::styled(
                        "  ⚠ changes a live certificate",
                        theme.style(Role::Warning),
                    ));
                }
                lines.push(Line::from(head));
                let preview = plan.preview();
                for l in preview.lines() {
                    let l = if app.ui.redact {
                        l.replace(&plan.location, "(redacted)")
                    } else {
                        l.to_owned()
                    };
                    lines.push(Line::raw(l));
                }
            }
            Err(r) => {
                lines.push(Line::styled(
                    format!("  {}", app_location(app, &r.location)),
                    theme.style(Role::Muted),
                ));
                lines.push(Line::styled(
                    format!("  ✖ not possible: {}", r.error),
                    theme.style(Role::Critical),
                ));
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
            .scroll((app.ui.scroll, 0)),
        inner,
    );
}

fn app_location(app: &App, loc: &str) -> String {
    if app.ui.redact {
        "(redacted)".to_owned()
    } else {
        crate::model::text::clean(loc).into_owned()
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
    let running = app.tasks.running();
    let title = format!(
        "Tasks: {running} running, {} in all",
        app.tasks.by_row.len()
    );
    let inner = super::popup_frame(f, area, &title, theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    if app.tasks.by_row.is_empty() {
        lines.push(Line::styled(
            "No task yet. n on a row plans its renewal; space marks rows for bulk.",
            theme.style(Role::Muted),
        ));
    }
    for t in app.tasks.by_row.values() {
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
            lines.push(Line::styled(
                format!("    {}", crate::model::text::clean(l)),
                theme.style(Role::Muted),
            ));
        }
        lines.push(Line::raw(""));
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.ui.scroll, 0)),
        inner,
    );
}
