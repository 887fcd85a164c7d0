//! The help popup, generated from the keymap's descriptions.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::app::App;
use crate::config::keymap::{key_label, Mode};
use crate::config::theme::{Role, Theme};

pub fn render(app: &App, theme: &Theme, f: &mut Frame<'_>, area: Rect) {
    let inner = super::popup_frame(f, area, "Help", theme);
    let mut lines = Vec::new();
    if let Some(p) = &app.log_path {
        lines.push(Line::styled(
            format!("Log file: {}", crate::model::text::clean(p)),
            theme.style(Role::Muted),
        ));
    }
    for (mode, title) in [
        (Mode::Normal, "Table, timeline and key audit"),
        (Mode::Details, "Details"),
    ] {
        lines.push(Line::styled(title, theme.style(Role::Header)));
        // Group keys that do the same thing: "k ↑  up".
        let mut seen: Vec<(String, Vec<String>)> = Vec::new();
        for b in app.keymap.bindings(mode) {
            match seen.iter_mut().find(|(d, _)| *d == b.desc) {
                Some((_, keys)) => keys.push(key_label(&b.key)),
                None => seen.push((b.desc.clone(), vec![key_label(&b.key)])),
            }
        }
        let col_w = usize::from(inner.width / 2).max(30);
        let cells: Vec<String> = seen
            .iter()
            .map(|(d, k)| format!("{:<12} {d}", k.join(" ")))
            .collect();
        for pair in cells.chunks(2) {
            let left = super::fit(&pair[0], col_w - 1);
            let right = pair
                .get(1)
                .map(|s| super::fit(s, col_w - 1))
                .unwrap_or_default();
            lines.push(Line::raw(format!("{left:<col_w$}{right}")));
        }
        lines.push(Line::raw(""));
    }
    lines.push(Line::styled("Commands (:)", theme.style(Role::Header)));
    for c in [
        ":sort COLUMN [asc|desc]   status days name location source issuer key",
        ":filter TEXT              regex over every field, !TEXT inverts",
        ":only expired|critical|warning|errors|keys|all",
        ":horizon 1h|24h|7d..1y    :redact on|off  :q",
        ":timeline  :keys  :table  :sources",
    ] {
        lines.push(Line::raw(c));
    }
    lines.push(Line::raw(""));
    lines.push(Line::from(vec![
        Span::styled("Status  ", theme.style(Role::Header)),
        Span::styled("✖ expired ", theme.style(Role::Expired)),
        Span::styled("‼ critical ", theme.style(Role::Critical)),
        Span::styled("◷ not yet valid ", theme.style(Role::NotYetValid)),
        Span::styled("? unreadable ", theme.style(Role::Unknown)),
        Span::styled("▲ warning ", theme.style(Role::Warning)),
        Span::styled("✔ ok", theme.style(Role::Healthy)),
    ]));
    {
        use crate::model::keyaudit::Severity;
        let mut spans = vec![Span::styled("Keys    ", theme.style(Role::Header))];
        for s in [
            Severity::Critical,
            Severity::Warning,
            Severity::Info,
            Severity::Protected,
        ] {
            spans.push(Span::styled(
                format!("{} {} ", s.glyph(), s.as_str()),
                theme.style(super::severity_role(s)),
            ));
        }
        spans.push(Span::styled("(the K column)", theme.style(Role::Muted)));
        lines.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(lines).scroll((app.ui.scroll, 0)), inner);
}
