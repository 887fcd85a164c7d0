//! Input modes: the live filter line, the `:` command line, and the mouse.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use super::command::{self, Command};
use super::ui_state::{Input, Level, Popup, View};
use super::{App, Effect};
use crate::config::keymap::Action;
use crate::model::view::TextFilter;

impl App {
    pub(super) fn on_filter_key(&mut self, k: KeyEvent, mut text: String) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => {
                self.ui.input = Input::None;
                self.fleet.spec.text = TextFilter::default();
            }
            KeyCode::Enter => self.ui.input = Input::None,
            KeyCode::Backspace => {
                text.pop();
                self.fleet.spec.text = TextFilter::new(&text);
                self.ui.input = Input::Filter(text);
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.fleet.spec.text = TextFilter::new(&text);
                self.ui.input = Input::Filter(text);
            }
            _ => return Vec::new(),
        }
        self.rebuild();
        Vec::new()
    }

    pub(super) fn on_command_key(&mut self, k: KeyEvent, mut text: String) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => self.ui.input = Input::None,
            KeyCode::Enter => {
                self.ui.input = Input::None;
                return self.run_command(&text);
            }
            KeyCode::Backspace => {
                text.pop();
                self.ui.input = Input::Command(text);
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.ui.input = Input::Command(text);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Run a `:` command.
    pub fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(e) => {
                self.ui.say(e, Level::Error);
                return Vec::new();
            }
        };
        match cmd {
            Command::Quit => return self.perform(Action::Quit),
            Command::Help => return self.perform(Action::Help),
            Command::Sources => return self.perform(Action::Sources),
            Command::Table => {
                self.ui.view = View::Table;
                self.rebuild();
            }
            Command::Timeline => {
                self.ui.view = View::Timeline;
                self.rebuild();
            }
            Command::Keys => {
                self.ui.view = View::Keys;
                self.rebuild();
            }
            Command::Filter(text) => {
                self.fleet.spec.text = TextFilter::new(&text);
                self.rebuild();
            }
            Command::Sort { column, descending } => {
                self.fleet.spec.sort = column;
                self.fleet.spec.reverse = descending;
                self.rebuild();
            }
            Command::Only(q) => {
                self.fleet.spec.quick = q;
                self.rebuild();
            }
            Command::Horizon(h) => self.ui.horizon = h,
            Command::Redact(on) => {
                self.ui.redact = on;
                self.rebuild();
            }
            Command::Nothing => {}
        }
        Vec::new()
    }

    pub(super) fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollDown => {
                if self.ui.popup.is_some() {
                    self.ui.scroll = self.ui.scroll.saturating_add(3);
                } else {
                    self.move_by(3);
                }
            }
            MouseEventKind::ScrollUp => {
                if self.ui.popup.is_some() {
                    self.ui.scroll = self.ui.scroll.saturating_sub(3);
                } else {
                    self.move_by(-3);
                }
            }
            // Body rows start below the title bar and the header row.
            MouseEventKind::Down(crossterm::event::MouseButton::Left)
                if self.ui.popup.is_none() && m.row >= 2 =>
            {
                let pos = self.ui.offset + usize::from(m.row - 2);
                if pos < self.fleet.rows.len() {
                    self.select(pos);
                }
            }
            _ => {}
        }
    }

    /// True when a popup that scrolls is open.
    pub(super) fn popup_scrolls(&self) -> bool {
        matches!(
            self.ui.popup,
            Some(Popup::Details | Popup::Help | Popup::Confirm | Popup::Tasks | Popup::Sources)
        )
    }
}
