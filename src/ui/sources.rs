//! The sources popup: every source's health, progress, last success and problem.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use crate::app::App;
use crate::config::theme::{Role, Theme};
use crate::sources::HealthState;

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let store = app.fleet.store();
    let n = store.sources().count();
    let inner = super::popup_frame(f, area, &format!("Sources: {n}"), theme);
    let mut lines: Vec<Line<'_>> = Vec::new();
    if n == 0 {
        lines.push(Line::styled(
            "No source yet. Give targets, files or a source's flags, or list them in the config file.",
            theme.style(Role::Muted),
        ));
    }
    for (id, st) in store.sources() {
        let h = &st.health;
        let (glyph, role) = match h.state {
            HealthState::Ok => ("✔", Role::Healthy),
            HealthState::Partial => ("▲", Role::Warning),
            HealthState::Failing => ("✖", Role::Critical),
            HealthState::Pending => ("…", Role::Guidance),
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{glyph} "), theme.style(role)),
            Span::styled(id.to_string(), theme.style(Role::Header)),
            Span::styled(
                format!("  {}", crate::model::text::clean(&h.describe())),
                theme.style(role),
            ),
        ]));
        let p = &st.progress;
        let round = if p.running {
            format!("reading: {}/{} done", p.done, p.total)
        } else {
            format!(
                "last round: {}/{} read, {} unreadable",
                p.done, p.total, p.failed
            )
        };
        lines.push(Line::styled(
            format!("    {round} · {} row(s)", st.rows),
            theme.style(Role::Muted),
        ));
        let when = |t: Option<i64>| {
            t.map(|t| format!("{} ago", crate::clock::age(app.now - t)))
                .unwrap_or_else(|| "never".into())
        };
        lines.push(Line::styled(
            format!(
                "    last round started {} · last success {} · {} round(s)",
                when(h.last_round),
                when(h.last_success),
                h.rounds
            ),
            theme.style(Role::Muted),
        ));
        if matches!(h.state, HealthState::Failing | HealthState::Partial) {
            lines.push(Line::styled(
                "    its rows keep their last known state, marked stale with their age",
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
