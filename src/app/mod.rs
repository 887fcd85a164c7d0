//! Dashboard state and its synchronous update: `update(&mut self, event) -> effects`, no IO.
//!
//! Background work reaches the app only as events (source events, planned actions, action
//! progress); what the app wants done in the world (re-read rows, plan or run an action,
//! copy, quit) leaves as [`Effect`]s the runner executes. The state is split by concern: the
//! fleet as shown ([`FleetView`]), widget state ([`UiState`]), actions and tasks ([`Tasks`]),
//! the `:` command line ([`command`]) and input modes ([`input`]).

pub mod command;
mod fleet_view;
mod input;
mod tasks;
mod ui_state;

use crossterm::event::{KeyEvent, MouseEvent};

pub use fleet_view::{group_key, FleetView};
pub use tasks::{Confirm, Task, TaskState, Tasks};
pub use ui_state::{
    GroupBy, Horizon, Input, Level, Popup, UiState, View, CHROME_ROWS, MIN_HEIGHT, MIN_WIDTH,
};

use crate::actions::session::Planned;
use crate::actions::{ActionEvent, Request};
use crate::config::keymap::{Action, Keymap, Mode};
use crate::model::view::TextFilter;
use crate::model::{Record, SourceKind, Thresholds};
use crate::sources::store::HealthState;
use crate::sources::{SourceEvent, SourceId};

/// Something that happened.
// Source observations dominate; boxing them would cost an allocation each for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    Source(SourceEvent),
    /// The clock moved (unix seconds).
    Tick(i64),
    /// The plans asked for by `Effect::Plan` are ready.
    Planned {
        token: u64,
        plans: Planned,
    },
    /// A running action reports a step or its end.
    Action(ActionEvent),
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// Observe these rows (record ids) again, each through its source.
    Reobserve(Vec<String>),
    /// A full round of every source that is not already running one.
    RefreshAll,
    /// Plan `request` for these rows; answer with `AppEvent::Planned`.
    Plan {
        token: u64,
        request: Request,
        ids: Vec<String>,
    },
    /// Run the confirmed plans of `token` for these rows.
    Execute {
        token: u64,
        ids: Vec<String>,
    },
    /// Forget the plans of `token` (cancelled).
    Cancel {
        token: u64,
    },
    /// Put text on the clipboard (OSC 52, works over SSH).
    Copy(String),
}

/// What the dashboard needs to know of a user-defined action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserActionInfo {
    /// The verb it is planned by.
    pub name: String,
    pub description: String,
    /// Sources it applies to (`tls`, `file`, `k8s`...); empty means all.
    pub sources: Vec<String>,
    pub confirm: bool,
    pub dangerous: bool,
}

/// Everything the dashboard shows.
pub struct App {
    pub fleet: FleetView,
    pub ui: UiState,
    pub tasks: Tasks,
    pub keymap: Keymap,
    pub now: i64,
    pub thresholds: Thresholds,
    pub read_only: bool,
    pub should_quit: bool,
    /// Where logs go (shown in help).
    pub log_path: Option<String>,
    pub user_actions: Vec<UserActionInfo>,
}

impl App {
    pub fn new(now: i64, thresholds: Thresholds, keymap: Keymap) -> App {
        let mut fleet = FleetView::default();
        fleet.refresh_facts(now, thresholds);
        App {
            fleet,
            ui: UiState::default(),
            tasks: Tasks::default(),
            keymap,
            now,
            thresholds,
            read_only: false,
            should_quit: false,
            log_path: None,
            user_actions: Vec::new(),
        }
    }

    /// The selected record.
    pub fn selected_record(&self) -> Option<&Record> {
        self.fleet
            .rows
            .get(self.ui.selected)
            .map(|&i| &self.fleet.records()[i])
    }

    /// The current input mode for key lookup.
    pub fn mode(&self) -> Mode {
        match self.ui.popup {
            Some(Popup::Details) => Mode::Details,
            Some(Popup::Help) => Mode::Help,
            Some(Popup::Confirm) => Mode::Confirm,
            Some(Popup::Tasks) => Mode::Tasks,
            Some(Popup::Sources) => Mode::Sources,
            None => Mode::Normal,
        }
    }

    /// Insert records directly (tests, benchmarks), as one source's.
    pub fn load_records(&mut self, records: impl IntoIterator<Item = Record>) {
        let src = SourceId::new(SourceKind::new("loaded"), "");
        self.fleet.insert(&src, records, self.now, self.thresholds);
        self.rebuild();
    }

    /// Recompute the visible rows, keeping the selection on the same certificate.
    pub fn rebuild(&mut self) {
        self.fleet.rebuild(self.ui.view, self.ui.group_by);
        let pos = if !self.ui.user_moved {
            Some(0)
        } else {
            self.ui
                .selected_id
                .as_ref()
                .and_then(|id| self.fleet.fleet().index_of(id))
                .and_then(|fi| self.fleet.rows.iter().position(|&r| r == fi))
        };
        self.ui.selected = pos.unwrap_or_else(|| {
            self.ui
                .selected
                .min(self.fleet.rows.len().saturating_sub(1))
        });
        self.remember_selection();
        self.ui.scroll_into_view(self.fleet.rows.len());
    }

    fn remember_selection(&mut self) {
        self.ui.selected_id = self
            .fleet
            .rows
            .get(self.ui.selected)
            .map(|&i| self.fleet.records()[i].id.clone());
    }

    fn select(&mut self, pos: usize) {
        self.ui.user_moved = true;
        self.ui.selected = pos.min(self.fleet.rows.len().saturating_sub(1));
        self.remember_selection();
        self.ui.scroll_into_view(self.fleet.rows.len());
    }

    fn move_by(&mut self, delta: isize) {
        let pos = (self.ui.selected as isize + delta).max(0) as usize;
        self.select(pos);
    }

    /// Apply source events and rebuild once (the runner drains its channel in batches).
    pub fn apply_batch(&mut self, events: Vec<SourceEvent>) {
        let mut changed = false;
        for ev in events {
            changed |= self.apply_source(ev);
        }
        if changed {
            self.rebuild();
        }
    }

    /// Apply one source event; true when the fleet changed.
    fn apply_source(&mut self, ev: SourceEvent) -> bool {
        // A source that turns failing says so in the message line.
        let finished = match &ev {
            SourceEvent::Finished { source, end, .. } => {
                end.problem.clone().map(|p| (source.clone(), p))
            }
            _ => None,
        };
        let was_ok = finished.as_ref().is_some_and(|(s, _)| {
            self.fleet
                .store()
                .source(s)
                .is_none_or(|st| st.health.state != HealthState::Failing)
        });
        let applied = self.fleet.apply(ev, self.now, self.thresholds);
        if let (Some((src, p)), true) = (finished, applied) {
            let failing = self
                .fleet
                .store()
                .source(&src)
                .is_some_and(|st| st.health.state == HealthState::Failing);
            if failing && was_ok {
                self.ui.say(
                    format!(
                        "{src}: failing: {}: {} (rows keep their last state; s shows every source)",
                        p.kind.as_str(),
                        crate::model::text::clean(&p.message)
                    ),
                    Level::Error,
                );
            }
        }
        applied
    }

    /// Apply one event; returns what the runner must do. Everything is synchronous.
    pub fn update(&mut self, ev: AppEvent) -> Vec<Effect> {
        match ev {
            AppEvent::Key(k) => self.on_key(k),
            AppEvent::Mouse(m) => {
                self.on_mouse(m);
                Vec::new()
            }
            AppEvent::Resize(w, h) => {
                self.ui.size = (w, h);
                self.ui.scroll_into_view(self.fleet.rows.len());
                Vec::new()
            }
            AppEvent::Source(se) => {
                if self.apply_source(se) {
                    self.rebuild();
                }
                Vec::new()
            }
            AppEvent::Planned { token, plans } => self.on_planned(token, plans),
            AppEvent::Action(ev) => {
                let Some((record_id, ok, msg)) = self.tasks.apply(ev) else {
                    return Vec::new();
                };
                self.ui.say(
                    crate::model::text::clean(&msg).into_owned(),
                    if ok { Level::Info } else { Level::Error },
                );
                // Verify what the rows show now: observe them again, once the last task of
                // the batch has ended (so a bulk renew costs one re-read per source).
                if self.fleet.get(&record_id).is_some() {
                    self.tasks.reread.push(record_id);
                }
                if self.tasks.running() == 0 && !self.tasks.reread.is_empty() {
                    vec![Effect::Reobserve(std::mem::take(&mut self.tasks.reread))]
                } else {
                    Vec::new()
                }
            }
            AppEvent::Tick(now) => {
                self.now = now;
                if self.fleet.tick(now, self.thresholds) {
                    self.rebuild();
                }
                Vec::new()
            }
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.kind == crossterm::event::KeyEventKind::Release {
            return Vec::new();
        }
        // Any key means the user is reading: the selection now follows its certificate.
        self.ui.user_moved = true;
        match self.ui.input.clone() {
            Input::Filter(text) => return self.on_filter_key(k, text),
            Input::Command(text) => return self.on_command_key(k, text),
            Input::None => {}
        }
        let Some(action) = self.keymap.action(self.mode(), &k) else {
            return Vec::new();
        };
        self.ui.message = None;
        self.perform(action)
    }

    /// Carry out an action (keys and the command line both come here).
    pub fn perform(&mut self, action: Action) -> Vec<Effect> {
        let page = self.ui.viewport() as isize;
        match action {
            Action::Quit => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown
                if self.popup_scrolls() =>
            {
                let d: i32 = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -(page as i32),
                    _ => page as i32,
                };
                self.ui.scroll =
                    (i32::from(self.ui.scroll) + d).clamp(0, i32::from(u16::MAX)) as u16;
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-page),
            Action::PageDown => self.move_by(page),
            Action::Top => self.select(0),
            Action::Bottom => self.select(self.fleet.rows.len().saturating_sub(1)),
            Action::Details => {
                if self.selected_record().is_some() {
                    self.ui.popup = Some(Popup::Details);
                    self.ui.scroll = 0;
                }
            }
            Action::Back => self.ui.popup = None,
            Action::Help => self.ui.toggle(Popup::Help),
            Action::Sources => self.ui.toggle(Popup::Sources),
            Action::Tasks => self.ui.toggle(Popup::Tasks),
            Action::Timeline => {
                self.ui.view = if self.ui.view == View::Timeline {
                    View::Table
                } else {
                    View::Timeline
                };
                self.rebuild();
            }
            Action::Keys => {
                self.ui.view = if self.ui.view == View::Keys {
                    View::Table
                } else {
                    View::Keys
                };
                self.rebuild();
            }
            Action::Filter => self.ui.input = Input::Filter(self.fleet.spec.text.text.clone()),
            Action::Command => self.ui.input = Input::Command(String::new()),
            Action::Sort(col) => {
                if self.fleet.spec.sort == col {
                    self.fleet.spec.reverse = !self.fleet.spec.reverse;
                } else {
                    self.fleet.spec.sort = col;
                    self.fleet.spec.reverse = false;
                }
                self.rebuild();
            }
            Action::ReverseSort => {
                self.fleet.spec.reverse = !self.fleet.spec.reverse;
                self.rebuild();
            }
            Action::Quick(q) => {
                self.fleet.spec.quick = if self.fleet.spec.quick == Some(q) {
                    None
                } else {
                    Some(q)
                };
                self.rebuild();
            }
            Action::ClearFilter => {
                self.fleet.spec.quick = None;
                self.fleet.spec.text = TextFilter::default();
                self.rebuild();
            }
            Action::Refresh => {
                if let Some(r) = self.selected_record() {
                    let id = r.id.clone();
                    let shown = self.shown_location(r);
                    self.ui.say(format!("re-reading {shown}"), Level::Info);
                    return vec![Effect::Reobserve(vec![id])];
                }
            }
            Action::RefreshAll => {
                let running: Vec<String> = self
                    .fleet
                    .store()
                    .sources()
                    .filter(|(_, s)| s.progress.running)
                    .map(|(id, _)| id.to_string())
                    .collect();
                if running.is_empty() {
                    self.ui.say("refreshing every source", Level::Info);
                } else {
                    self.ui.say(
                        format!(
                            "refreshing every source ({} already running: not started again)",
                            running.join(", ")
                        ),
                        Level::Info,
                    );
                }
                return vec![Effect::RefreshAll];
            }
            Action::Mark => {
                if let Some(id) = self.ui.selected_id.clone() {
                    if !self.fleet.marked.remove(&id) {
                        self.fleet.marked.insert(id);
                    }
                    self.move_by(1);
                }
            }
            Action::Freeze => {
                if self.fleet.frozen {
                    let n = self.fleet.thaw(self.now, self.thresholds);
                    self.fleet.refresh_facts(self.now, self.thresholds);
                    self.rebuild();
                    self.ui
                        .say(format!("updates resumed ({n} applied)"), Level::Info);
                } else {
                    self.fleet.frozen = true;
                    self.ui.say(
                        "frozen: updates are held until f is pressed again",
                        Level::Info,
                    );
                }
            }
            Action::ZoomIn => self.ui.horizon = self.ui.horizon.shorter(),
            Action::ZoomOut => self.ui.horizon = self.ui.horizon.longer(),
            Action::Group => {
                self.ui.group_by = if self.ui.group_by == GroupBy::Source {
                    GroupBy::Issuer
                } else {
                    GroupBy::Source
                };
                self.rebuild();
            }
            Action::CopyPem => {
                // Facts without DER (a proxy's, an exporter's) have no PEM.
                let cert = self.selected_record().and_then(|r| r.cert.clone());
                if let Some(c) = cert.filter(|c| !c.der.is_empty()) {
                    self.ui.say(
                        format!(
                            "copied the PEM of {} (OSC 52)",
                            crate::model::text::clean(c.display_name())
                        ),
                        Level::Info,
                    );
                    return vec![Effect::Copy(c.to_pem())];
                }
                self.ui.say("no certificate to copy", Level::Error);
            }
            Action::Redact => {
                self.ui.redact = !self.ui.redact;
                self.rebuild();
            }
            Action::Act => return self.propose(None),
            Action::Revoke => return self.propose_verb("revoke"),
            Action::UserAct(i) => return self.propose(Some(i)),
            Action::Confirm => {
                if let Some(c) = self.tasks.confirm.take() {
                    self.ui.popup = None;
                    let plans: Vec<_> = c.runnable().cloned().collect();
                    let ids = self.tasks.start(&plans);
                    self.ui.say(
                        format!("started {} task(s); T shows their progress", ids.len()),
                        Level::Info,
                    );
                    self.fleet.marked.clear();
                    return vec![Effect::Execute {
                        token: c.token,
                        ids,
                    }];
                }
            }
            Action::Cancel => {
                self.ui.popup = None;
                if let Some(c) = self.tasks.confirm.take() {
                    self.ui.say("cancelled: nothing was changed", Level::Info);
                    return vec![Effect::Cancel { token: c.token }];
                }
            }
        }
        Vec::new()
    }

    /// Ask the runner to plan a built-in verb (`revoke`) for the marked rows, or the selected
    /// one. The backends decide which rows can take it; the confirm popup shows the refusals.
    fn propose_verb(&mut self, verb: &str) -> Vec<Effect> {
        if self.read_only {
            self.ui
                .say("read-only mode: actions are disabled", Level::Error);
            return Vec::new();
        }
        let ids = self.action_rows();
        if ids.is_empty() {
            return Vec::new();
        }
        let token = self.tasks.plan_token();
        self.ui.say(
            format!("planning {verb} for {} row(s)…", ids.len()),
            Level::Info,
        );
        vec![Effect::Plan {
            token,
            request: Request::Verb(verb.to_owned()),
            ids,
        }]
    }

    /// The rows an action applies to: the marked ones in display order, else the selected one.
    fn action_rows(&self) -> Vec<String> {
        if self.fleet.marked.is_empty() {
            self.ui.selected_id.iter().cloned().collect()
        } else {
            self.fleet
                .rows
                .iter()
                .map(|&i| &self.fleet.records()[i].id)
                .filter(|id| self.fleet.marked.contains(*id))
                .cloned()
                .collect()
        }
    }

    /// Ask the runner to plan the row's own action (or user action `user`) for the marked
    /// rows, or the selected one.
    fn propose(&mut self, user: Option<usize>) -> Vec<Effect> {
        if self.read_only {
            self.ui
                .say("read-only mode: actions are disabled", Level::Error);
            return Vec::new();
        }
        let mut ids = self.action_rows();
        let request = match user {
            None => Request::Default,
            Some(i) => {
                let Some(ua) = self.user_actions.get(i) else {
                    return Vec::new();
                };
                let applies = |id: &String| {
                    ua.sources.is_empty()
                        || self
                            .fleet
                            .get(id)
                            .is_some_and(|r| ua.sources.iter().any(|s| s == r.source.as_str()))
                };
                ids.retain(applies);
                if ids.is_empty() {
                    self.ui.say(
                        format!("'{}' does not apply to this row's source", ua.description),
                        Level::Error,
                    );
                    return Vec::new();
                }
                Request::Verb(ua.name.clone())
            }
        };
        if ids.is_empty() {
            return Vec::new();
        }
        let token = self.tasks.plan_token();
        self.ui
            .say(format!("planning for {} row(s)…", ids.len()), Level::Info);
        vec![Effect::Plan {
            token,
            request,
            ids,
        }]
    }

    /// Show planned actions for confirmation. A stale answer (the user asked again since) and
    /// a plan that cannot run are dropped, and the runner is told to forget them. Plans that
    /// need no confirmation (user commands with `confirm = false`) run at once.
    fn on_planned(&mut self, token: u64, plans: Planned) -> Vec<Effect> {
        if self.tasks.planning != Some(token) {
            return vec![Effect::Cancel { token }];
        }
        self.tasks.planning = None;
        if plans.is_empty() {
            self.ui.say("no action applies to these rows", Level::Error);
            return vec![Effect::Cancel { token }];
        }
        if plans.len() == 1 {
            if let Err(r) = &plans[0] {
                self.ui.say(
                    crate::model::text::clean(&r.error.to_string()).into_owned(),
                    Level::Error,
                );
                return vec![Effect::Cancel { token }];
            }
        }
        let c = Confirm { token, plans };
        if c.refused().next().is_none() && c.runnable().all(|p| !p.confirm) {
            let plans: Vec<_> = c.runnable().cloned().collect();
            let ids = self.tasks.start(&plans);
            self.ui.say(
                format!("started {} task(s); T shows their progress", ids.len()),
                Level::Info,
            );
            return vec![Effect::Execute { token, ids }];
        }
        self.ui.message = None;
        self.tasks.confirm = Some(c);
        self.ui.popup = Some(Popup::Confirm);
        self.ui.scroll = 0;
        Vec::new()
    }

    /// The location as shown (redacted in demo mode), safe for the terminal.
    pub fn shown_location(&self, r: &Record) -> String {
        if self.ui.redact {
            match r.location.rsplit_once(':') {
                Some((_, port)) if r.source == SourceKind::TLS => format!("{}:{port}", r.id),
                _ => r.id.clone(),
            }
        } else {
            crate::model::text::clean(&r.location).into_owned()
        }
    }

    /// The certificate name as shown (redacted in demo mode), safe for the terminal.
    pub fn shown_name(&self, r: &Record) -> String {
        match r.cert.as_deref() {
            Some(c) if self.ui.redact => format!("redacted-{}", &c.sha256[..8]),
            Some(c) => crate::model::text::clean(c.display_name()).into_owned(),
            None => "-".to_owned(),
        }
    }
}
