//! Key bindings: one `Action` enum for every user intent, default bindings per mode with a
//! description each (the help screen and status-bar hints are generated from them), and a
//! user overlay file `<config dir>/keymap.toml` that rebinds only what it names.

use std::collections::HashMap;
use std::path::Path;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde::Deserialize;

use crate::model::view::{QuickFilter, SortColumn};

/// Every user intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Quit,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Details,
    Back,
    Timeline,
    /// The key audit view.
    Keys,
    Help,
    Filter,
    Command,
    Sort(SortColumn),
    ReverseSort,
    Quick(QuickFilter),
    ClearFilter,
    Refresh,
    RefreshAll,
    Mark,
    Freeze,
    ZoomIn,
    ZoomOut,
    Group,
    CopyPem,
    Redact,
    /// The row's own action (renew, rotate, re-issue), or the marked rows' in bulk.
    Act,
    /// Revoke the row's certificate (or the marked rows'), where its source can.
    Revoke,
    /// A user-defined action from the config file, by index.
    UserAct(usize),
    /// The task view.
    Tasks,
    /// Every source's health.
    Sources,
    Confirm,
    Cancel,
}

impl Action {
    /// The name used in keymap files.
    pub fn name(self) -> String {
        match self {
            Action::Sort(c) => format!("sort_{}", c.label()),
            Action::Quick(q) => format!("only_{}", q.label()),
            Action::UserAct(i) => format!("user_action_{i}"),
            other => format!("{other:?}")
                .chars()
                .fold(String::new(), |mut s, c| {
                    if c.is_uppercase() && !s.is_empty() {
                        s.push('_');
                    }
                    s.push(c.to_ascii_lowercase());
                    s
                }),
        }
    }

    fn all() -> Vec<Action> {
        let mut v = vec![
            Action::Quit,
            Action::Up,
            Action::Down,
            Action::PageUp,
            Action::PageDown,
            Action::Top,
            Action::Bottom,
            Action::Details,
            Action::Back,
            Action::Timeline,
            Action::Keys,
            Action::Help,
            Action::Filter,
            Action::Command,
            Action::ReverseSort,
            Action::ClearFilter,
            Action::Refresh,
            Action::RefreshAll,
            Action::Mark,
            Action::Freeze,
            Action::ZoomIn,
            Action::ZoomOut,
            Action::Group,
            Action::CopyPem,
            Action::Redact,
            Action::Act,
            Action::Revoke,
            Action::Tasks,
            Action::Sources,
            Action::Confirm,
            Action::Cancel,
        ];
        v.extend(SortColumn::ALL.iter().map(|c| Action::Sort(*c)));
        v.extend(QuickFilter::ALL.map(Action::Quick));
        v
    }

    fn from_name(name: &str) -> Option<Action> {
        Action::all().into_iter().find(|a| a.name() == name)
    }
}

/// Input modes with their own bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The fleet table and the timeline.
    Normal,
    /// The details popup.
    Details,
    /// The help popup.
    Help,
    /// The confirm popup of a planned action.
    Confirm,
    /// The task view.
    Tasks,
    /// The sources popup.
    Sources,
}

impl Mode {
    fn key(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Details => "details",
            Mode::Help => "help",
            Mode::Confirm => "confirm",
            Mode::Tasks => "tasks",
            Mode::Sources => "sources",
        }
    }
}

/// One binding: a key, what it does, and what the help says.
#[derive(Debug, Clone)]
pub struct Binding {
    pub key: KeyEvent,
    pub action: Action,
    pub desc: String,
}

/// Render a key for help and hints (`S`, `ctrl-c`, `enter`, `space`).
pub fn key_label(k: &KeyEvent) -> String {
    let base = match k.code {
        KeyCode::Char(' ') => "space".to_owned(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "enter".into(),
        KeyCode::Esc => "esc".into(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "pgup".into(),
        KeyCode::PageDown => "pgdn".into(),
        KeyCode::Home => "home".into(),
        KeyCode::End => "end".into(),
        KeyCode::Tab => "tab".into(),
        KeyCode::Backspace => "backspace".into(),
        KeyCode::F(n) => format!("f{n}"),
        _ => "?".into(),
    };
    if k.modifiers.contains(KeyModifiers::CONTROL) {
        format!("ctrl-{base}")
    } else if k.modifiers.contains(KeyModifiers::ALT) {
        format!("alt-{base}")
    } else {
        base
    }
}

/// Parse a key name as written in keymap files.
pub fn parse_key(s: &str) -> Option<KeyEvent> {
    let (mods, rest) = if let Some(r) = s.strip_prefix("ctrl-") {
        (KeyModifiers::CONTROL, r)
    } else if let Some(r) = s.strip_prefix("alt-") {
        (KeyModifiers::ALT, r)
    } else {
        (KeyModifiers::NONE, s)
    };
    let code = match rest {
        "enter" => KeyCode::Enter,
        "esc" => KeyCode::Esc,
        "space" => KeyCode::Char(' '),
        "up" => KeyCode::Up,
        "down" => KeyCode::Down,
        "left" => KeyCode::Left,
        "right" => KeyCode::Right,
        "pgup" => KeyCode::PageUp,
        "pgdn" => KeyCode::PageDown,
        "home" => KeyCode::Home,
        "end" => KeyCode::End,
        "tab" => KeyCode::Tab,
        "backspace" => KeyCode::Backspace,
        r if r.chars().count() == 1 => KeyCode::Char(r.chars().next()?),
        r if r.starts_with('f') => KeyCode::F(r[1..].parse().ok()?),
        _ => return None,
    };
    Some(KeyEvent::new(code, mods))
}

/// Normalise a key event for lookup: shifted letters arrive as uppercase chars.
fn normalise(k: &KeyEvent) -> (KeyCode, KeyModifiers) {
    let mods = k.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT);
    (k.code, mods)
}

/// Bindings per mode.
#[derive(Debug, Clone)]
pub struct Keymap {
    modes: HashMap<Mode, Vec<Binding>>,
}

const DEFAULTS: &[(Mode, &str, &str, &str)] = &[
    (Mode::Normal, "q", "quit", "quit"),
    (Mode::Normal, "ctrl-c", "quit", "quit"),
    (Mode::Normal, "k", "up", "up"),
    (Mode::Normal, "up", "up", "up"),
    (Mode::Normal, "j", "down", "down"),
    (Mode::Normal, "down", "down", "down"),
    (Mode::Normal, "pgup", "page_up", "page up"),
    (Mode::Normal, "pgdn", "page_down", "page down"),
    (Mode::Normal, "g", "top", "first row"),
    (Mode::Normal, "G", "bottom", "last row"),
    (Mode::Normal, "enter", "details", "details"),
    (Mode::Normal, "t", "timeline", "table / timeline"),
    (Mode::Normal, "F", "keys", "key audit: findings worst first"),
    (Mode::Normal, "?", "help", "help"),
    (Mode::Normal, "/", "filter", "filter (regex, !inverts)"),
    (Mode::Normal, ":", "command", "command line"),
    (Mode::Normal, "esc", "clear_filter", "clear filters"),
    (Mode::Normal, "S", "sort_status", "sort by status"),
    (Mode::Normal, "D", "sort_days", "sort by days left"),
    (Mode::Normal, "N", "sort_name", "sort by name"),
    (Mode::Normal, "L", "sort_location", "sort by location"),
    (Mode::Normal, "O", "sort_source", "sort by source"),
    (Mode::Normal, "I", "sort_issuer", "sort by issuer"),
    (Mode::Normal, "K", "sort_key", "sort by key type"),
    (Mode::Normal, "o", "reverse_sort", "reverse the order"),
    (Mode::Normal, "1", "only_expired", "only expired"),
    (Mode::Normal, "2", "only_critical", "only critical"),
    (Mode::Normal, "3", "only_warning", "only warning"),
    (Mode::Normal, "4", "only_errors", "only errors"),
    (
        Mode::Normal,
        "5",
        "only_keys",
        "only key findings (warning or worse)",
    ),
    (Mode::Normal, "r", "refresh", "re-read the row"),
    (Mode::Normal, "R", "refresh_all", "refresh every source"),
    (Mode::Normal, "space", "mark", "mark the row"),
    (Mode::Normal, "f", "freeze", "freeze updates"),
    (Mode::Normal, "+", "zoom_in", "timeline: shorter horizon"),
    (Mode::Normal, "-", "zoom_out", "timeline: longer horizon"),
    (
        Mode::Normal,
        "b",
        "group",
        "timeline: group by source / issuer",
    ),
    (Mode::Normal, "y", "copy_pem", "copy the PEM (OSC 52)"),
    (Mode::Normal, "H", "redact", "hide host names"),
    (
        Mode::Normal,
        "n",
        "act",
        "renew / rotate (marked rows in bulk)",
    ),
    (
        Mode::Normal,
        "X",
        "revoke",
        "revoke (confirm names the serial)",
    ),
    (Mode::Normal, "T", "tasks", "tasks and their progress"),
    (Mode::Normal, "s", "sources", "sources' health"),
    (Mode::Confirm, "y", "confirm", "yes, do it"),
    (Mode::Confirm, "n", "cancel", "no, cancel"),
    (Mode::Confirm, "esc", "cancel", "no, cancel"),
    (Mode::Confirm, "j", "down", "scroll down"),
    (Mode::Confirm, "k", "up", "scroll up"),
    (Mode::Confirm, "ctrl-c", "quit", "quit"),
    (Mode::Tasks, "esc", "back", "close"),
    (Mode::Tasks, "q", "back", "close"),
    (Mode::Tasks, "T", "back", "close"),
    (Mode::Tasks, "j", "down", "scroll down"),
    (Mode::Tasks, "k", "up", "scroll up"),
    (Mode::Tasks, "ctrl-c", "quit", "quit"),
    (Mode::Details, "esc", "back", "close"),
    (Mode::Details, "q", "back", "close"),
    (Mode::Details, "enter", "back", "close"),
    (Mode::Details, "k", "up", "scroll up"),
    (Mode::Details, "up", "up", "scroll up"),
    (Mode::Details, "j", "down", "scroll down"),
    (Mode::Details, "down", "down", "scroll down"),
    (Mode::Details, "pgup", "page_up", "page up"),
    (Mode::Details, "pgdn", "page_down", "page down"),
    (Mode::Details, "y", "copy_pem", "copy the PEM (OSC 52)"),
    (Mode::Details, "r", "refresh", "re-probe"),
    (Mode::Details, "ctrl-c", "quit", "quit"),
    (Mode::Sources, "esc", "back", "close"),
    (Mode::Sources, "q", "back", "close"),
    (Mode::Sources, "s", "back", "close"),
    (Mode::Sources, "j", "down", "scroll down"),
    (Mode::Sources, "k", "up", "scroll up"),
    (Mode::Sources, "R", "refresh_all", "refresh every source"),
    (Mode::Sources, "ctrl-c", "quit", "quit"),
    (Mode::Help, "esc", "back", "close"),
    (Mode::Help, "q", "back", "close"),
    (Mode::Help, "?", "back", "close"),
    (Mode::Help, "j", "down", "scroll down"),
    (Mode::Help, "k", "up", "scroll up"),
    (Mode::Help, "ctrl-c", "quit", "quit"),
];

#[derive(Debug, thiserror::Error)]
#[error("invalid keymap file {file}: {message}")]
pub struct KeymapError {
    pub file: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeymapFile {
    #[serde(default)]
    normal: HashMap<String, String>,
    #[serde(default)]
    details: HashMap<String, String>,
    #[serde(default)]
    help: HashMap<String, String>,
    #[serde(default)]
    confirm: HashMap<String, String>,
    #[serde(default)]
    tasks: HashMap<String, String>,
    #[serde(default)]
    sources: HashMap<String, String>,
}

impl Default for Keymap {
    fn default() -> Self {
        let mut modes: HashMap<Mode, Vec<Binding>> = HashMap::new();
        for (mode, key, action, desc) in DEFAULTS {
            if let (Some(k), Some(a)) = (parse_key(key), Action::from_name(action)) {
                modes.entry(*mode).or_default().push(Binding {
                    key: k,
                    action: a,
                    desc: (*desc).to_owned(),
                });
            }
        }
        Keymap { modes }
    }
}

impl Keymap {
    /// Defaults overlaid with `path` when it exists: `[normal] "x" = "quit"` binds x to quit
    /// (replacing x's old meaning); `"x" = "none"` unbinds it.
    pub fn load(path: Option<&Path>) -> Result<Keymap, KeymapError> {
        let mut km = Keymap::default();
        let Some(path) = path.filter(|p| p.exists()) else {
            return Ok(km);
        };
        let file = path.display().to_string();
        let text = crate::fsx::read_to_string_bounded(path, crate::config::MAX_CONFIG_BYTES)
            .map_err(|e| KeymapError {
                file: file.clone(),
                message: e.to_string(),
            })?;
        let parsed: KeymapFile = toml::from_str(&text).map_err(|e| {
            let line = e
                .span()
                .map(|s| 1 + text[..s.start.min(text.len())].matches('\n').count());
            KeymapError {
                file: file.clone(),
                message: format!("line {}: {}", line.unwrap_or(0), e.message().trim()),
            }
        })?;
        for (mode, table) in [
            (Mode::Normal, parsed.normal),
            (Mode::Details, parsed.details),
            (Mode::Help, parsed.help),
            (Mode::Confirm, parsed.confirm),
            (Mode::Tasks, parsed.tasks),
            (Mode::Sources, parsed.sources),
        ] {
            for (key, action) in table {
                let k = parse_key(&key).ok_or_else(|| KeymapError {
                    file: file.clone(),
                    message: format!("[{}] unknown key '{key}'", mode.key()),
                })?;
                let list = km.modes.entry(mode).or_default();
                list.retain(|b| normalise(&b.key) != normalise(&k));
                if action == "none" {
                    continue;
                }
                let a = Action::from_name(&action).ok_or_else(|| KeymapError {
                    file: file.clone(),
                    message: format!("[{}] '{key}': unknown action '{action}'", mode.key()),
                })?;
                let desc = DEFAULTS
                    .iter()
                    .find(|(m, _, an, _)| *m == mode && *an == action)
                    .map(|d| d.3.to_owned())
                    .unwrap_or_else(|| action.replace('_', " "));
                list.push(Binding {
                    key: k,
                    action: a,
                    desc,
                });
            }
        }
        Ok(km)
    }

    /// The action bound to a key in a mode.
    pub fn action(&self, mode: Mode, key: &KeyEvent) -> Option<Action> {
        let want = normalise(key);
        self.modes
            .get(&mode)?
            .iter()
            .find(|b| normalise(&b.key) == want)
            .map(|b| b.action)
    }

    /// Bindings of a mode, in definition order.
    pub fn bindings(&self, mode: Mode) -> &[Binding] {
        self.modes.get(&mode).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Bind a user-defined action (from the config file) in normal mode.
    pub fn bind_user_action(&mut self, key: &str, index: usize, desc: &str) -> Result<(), String> {
        let k = parse_key(key).ok_or_else(|| format!("unknown key '{key}'"))?;
        let list = self.modes.entry(Mode::Normal).or_default();
        list.retain(|b| normalise(&b.key) != normalise(&k));
        list.push(Binding {
            key: k,
            action: Action::UserAct(index),
            desc: desc.to_owned(),
        });
        Ok(())
    }

    /// Remove every binding of actions that change something (read-only mode).
    pub fn remove_actions(&mut self) {
        for list in self.modes.values_mut() {
            list.retain(|b| !matches!(b.action, Action::Act | Action::Revoke | Action::UserAct(_)));
        }
    }

    /// The first key bound to an action, for hints.
    pub fn key_for(&self, mode: Mode, action: Action) -> Option<String> {
        self.bindings(mode)
            .iter()
            .find(|b| b.action == action)
            .map(|b| key_label(&b.key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_binding_parses() {
        let km = Keymap::default();
        let n: usize = [
            Mode::Normal,
            Mode::Details,
            Mode::Help,
            Mode::Confirm,
            Mode::Tasks,
            Mode::Sources,
        ]
        .iter()
        .map(|m| km.bindings(*m).len())
        .sum();
        assert_eq!(n, DEFAULTS.len());
    }

    #[test]
    fn overlay_rebinds_and_unbinds_and_reports_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keymap.toml");
        std::fs::write(&p, "[normal]\n\"x\" = \"quit\"\n\"q\" = \"none\"\n").unwrap();
        let km = Keymap::load(Some(&p)).unwrap();
        assert_eq!(
            km.action(Mode::Normal, &parse_key("x").unwrap()),
            Some(Action::Quit)
        );
        assert_eq!(km.action(Mode::Normal, &parse_key("q").unwrap()), None);
        assert_eq!(
            km.action(Mode::Normal, &parse_key("j").unwrap()),
            Some(Action::Down)
        );
        std::fs::write(&p, "[normal]\n\"x\" = \"explode\"\n").unwrap();
        let e = Keymap::load(Some(&p)).unwrap_err().to_string();
        assert!(e.contains("keymap.toml") && e.contains("explode"), "{e}");
    }
}
