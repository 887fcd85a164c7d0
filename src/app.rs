//! Dashboard state and its synchronous update: `update(&mut self, event) -> effects`, no IO.
//!
//! Background work reaches the app only as `AppEvent::Source` batches; what the app wants done
//! in the world (re-probe, copy, quit) leaves as `Effect`s the runner executes.

use std::collections::{BTreeMap, HashSet};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseEvent, MouseEventKind};

use crate::config::keymap::{Action, Keymap, Mode};
use crate::model::status::DAY;
use crate::model::view::{self, QuickFilter, RowFacts, SortColumn, TextFilter, ViewSpec};
use crate::model::{Fleet, Record, SourceKind, Thresholds};
use crate::sources::SourceEvent;

/// Smallest usable terminal.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;
/// Rows the title, the table header and the hint bar take.
pub const CHROME_ROWS: u16 = 3;

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
    /// The runner planned the actions asked for by `Effect::Propose`.
    Proposed {
        token: u64,
        proposals: Vec<Proposal>,
    },
    /// A running task reports a step.
    TaskProgress {
        record_id: String,
        step: String,
        message: String,
    },
    /// A task ended.
    TaskFinished {
        record_id: String,
        ok: bool,
        message: String,
    },
    /// Tasks that needed no confirmation started.
    Started {
        proposals: Vec<Proposal>,
    },
}

/// Which action a key asks for: the row's own (renew, rotate, ACME, demo re-issue) or a
/// user-defined one from the config file (by index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActKind {
    Builtin,
    User(usize),
}

/// An action planned for one row: the exact change, waiting for confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub record_id: String,
    pub location: String,
    /// e.g. "Renew (cert-manager re-issue)".
    pub title: String,
    /// The exact change: object, old and new expiry, issuer, the calls or the command.
    pub preview: String,
    pub destructive: bool,
    /// Why this row cannot take the action (shown; nothing runs for it).
    pub error: Option<String>,
}

/// The confirm popup's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub token: u64,
    pub proposals: Vec<Proposal>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Succeeded,
    Failed,
}

/// One action running or run on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub record_id: String,
    pub location: String,
    pub title: String,
    pub state: TaskState,
    pub step: String,
    /// Every progress message and output line, in order.
    pub log: Vec<String>,
}

/// Something the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Quit,
    /// Observe these locations again: (source, location).
    Reprobe(Vec<(SourceKind, String)>),
    /// Plan an action for these rows (record ids); answer with `AppEvent::Proposed`.
    Propose {
        token: u64,
        kind: ActKind,
        ids: Vec<String>,
    },
    /// Run the confirmed plans of a proposal.
    Execute {
        token: u64,
        ids: Vec<String>,
    },
    /// Forget the plans of a proposal (cancelled).
    Cancel {
        token: u64,
    },
    ReprobeAll,
    /// Put text on the clipboard (OSC 52, works over SSH).
    Copy(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Table,
    Timeline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Popup {
    Details,
    Help,
    Confirm,
    Tasks,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    None,
    Filter(String),
    Command(String),
}

/// Timeline horizons (+/-).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Horizon {
    Week,
    Month,
    Quarter,
    Year,
}

impl Horizon {
    pub fn secs(self) -> i64 {
        match self {
            Horizon::Week => 7 * DAY,
            Horizon::Month => 30 * DAY,
            Horizon::Quarter => 90 * DAY,
            Horizon::Year => 365 * DAY,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Horizon::Week => "7 days",
            Horizon::Month => "30 days",
            Horizon::Quarter => "90 days",
            Horizon::Year => "1 year",
        }
    }

    fn shorter(self) -> Horizon {
        match self {
            Horizon::Year => Horizon::Quarter,
            Horizon::Quarter => Horizon::Month,
            _ => Horizon::Week,
        }
    }

    fn longer(self) -> Horizon {
        match self {
            Horizon::Week => Horizon::Month,
            Horizon::Month => Horizon::Quarter,
            _ => Horizon::Year,
        }
    }

    fn parse(s: &str) -> Option<Horizon> {
        match s {
            "7d" | "week" => Some(Horizon::Week),
            "30d" | "month" => Some(Horizon::Month),
            "90d" | "quarter" => Some(Horizon::Quarter),
            "1y" | "365d" | "year" => Some(Horizon::Year),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Source,
    Issuer,
}

/// Progress of one source: done / total / failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub finished: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

/// Everything the dashboard shows.
pub struct App {
    pub fleet: Fleet,
    facts: Vec<RowFacts>,
    facts_at: i64,
    pub now: i64,
    pub thresholds: Thresholds,
    pub spec: ViewSpec,
    /// Indices into `fleet.records()` in display order (filtered, sorted, grouped).
    pub rows: Vec<usize>,
    /// Position of the selection in `rows`.
    pub selected: usize,
    selected_id: Option<String>,
    /// The user has moved the selection: from then on it follows its certificate as rows
    /// move; before that it stays on the top (worst) row while results stream in.
    user_moved: bool,
    /// First visible row.
    pub offset: usize,
    pub marked: HashSet<String>,
    /// Locations whose certificate changed since first seen.
    pub changed: HashSet<String>,
    pub frozen: bool,
    pending: Vec<SourceEvent>,
    pub progress: BTreeMap<SourceKind, Progress>,
    pub view: View,
    pub popup: Option<Popup>,
    pub scroll: u16,
    pub input: Input,
    pub horizon: Horizon,
    pub group_by: GroupBy,
    pub read_only: bool,
    pub redact: bool,
    pub message: Option<(String, Level)>,
    pub keymap: Keymap,
    pub size: (u16, u16),
    pub should_quit: bool,
    /// Where logs go (shown in help).
    pub log_path: Option<String>,
    /// Actions waiting for confirmation.
    pub confirm: Option<Confirm>,
    /// Every task of this session, by record id (the latest per row).
    pub tasks: BTreeMap<String, Task>,
    /// User-defined actions (key label, description, sources they apply to).
    pub user_actions: Vec<UserActionInfo>,
    next_token: u64,
    /// Token of the proposal being planned (to drop stale answers).
    planning: Option<u64>,
}

/// What the dashboard needs to know of a user-defined action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserActionInfo {
    pub description: String,
    /// Sources it applies to (`tls`, `file`, `k8s`...); empty means all.
    pub sources: Vec<String>,
    pub confirm: bool,
    pub dangerous: bool,
}

impl App {
    pub fn new(now: i64, thresholds: Thresholds, keymap: Keymap) -> App {
        App {
            fleet: Fleet::new(),
            facts: Vec::new(),
            facts_at: now,
            now,
            thresholds,
            spec: ViewSpec::default(),
            rows: Vec::new(),
            selected: 0,
            selected_id: None,
            user_moved: false,
            offset: 0,
            marked: HashSet::new(),
            changed: HashSet::new(),
            frozen: false,
            pending: Vec::new(),
            progress: BTreeMap::new(),
            view: View::Table,
            popup: None,
            scroll: 0,
            input: Input::None,
            horizon: Horizon::Quarter,
            group_by: GroupBy::Source,
            read_only: false,
            redact: false,
            message: None,
            keymap,
            size: (MIN_WIDTH, MIN_HEIGHT),
            should_quit: false,
            log_path: None,
            confirm: None,
            tasks: BTreeMap::new(),
            user_actions: Vec::new(),
            next_token: 1,
            planning: None,
        }
    }

    /// Facts of a record by its index in the fleet.
    pub fn facts(&self, idx: usize) -> &RowFacts {
        &self.facts[idx]
    }

    /// The selected record.
    pub fn selected_record(&self) -> Option<&Record> {
        self.rows
            .get(self.selected)
            .map(|&i| &self.fleet.records()[i])
    }

    /// Rows of the table body that fit on screen.
    pub fn viewport(&self) -> usize {
        usize::from(self.size.1.saturating_sub(CHROME_ROWS)).max(1)
    }

    /// The current input mode for key lookup.
    pub fn mode(&self) -> Mode {
        match self.popup {
            Some(Popup::Details) => Mode::Details,
            Some(Popup::Help) => Mode::Help,
            Some(Popup::Confirm) => Mode::Confirm,
            Some(Popup::Tasks) => Mode::Tasks,
            None => Mode::Normal,
        }
    }

    /// Insert records directly (tests, benchmarks, the demo's first batch).
    pub fn load_records(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            self.observe(r);
        }
        self.rebuild();
    }

    fn observe(&mut self, r: Record) {
        let new_sha = r.cert.as_ref().map(|c| c.sha256.clone());
        if let Some(old) = self.fleet.get(&r.id) {
            let old_sha = old.cert.as_ref().map(|c| c.sha256.clone());
            if old_sha.is_some() && new_sha.is_some() && old_sha != new_sha {
                self.changed.insert(r.id.clone());
            }
        }
        let facts = RowFacts::new(&r, self.now, self.thresholds);
        let idx = self.fleet.upsert(r);
        if idx == self.facts.len() {
            self.facts.push(facts);
        } else {
            self.facts[idx] = facts;
        }
    }

    /// Recompute the visible rows, keeping the selection on the same certificate.
    pub fn rebuild(&mut self) {
        let mut rows = view::build(self.fleet.records(), &self.facts, &self.spec);
        if self.view == View::Timeline {
            let recs = self.fleet.records();
            let key = |i: &usize| group_key(&recs[*i], self.group_by);
            rows.sort_by_cached_key(key);
        }
        self.rows = rows;
        let pos = if !self.user_moved {
            Some(0)
        } else {
            self.selected_id
                .as_ref()
                .and_then(|id| self.fleet.index_of(id))
                .and_then(|fi| self.rows.iter().position(|&r| r == fi))
        };
        self.selected = pos.unwrap_or_else(|| self.selected.min(self.rows.len().saturating_sub(1)));
        self.remember_selection();
        self.scroll_into_view();
    }

    fn remember_selection(&mut self) {
        self.selected_id = self
            .rows
            .get(self.selected)
            .map(|&i| self.fleet.records()[i].id.clone());
    }

    fn scroll_into_view(&mut self) {
        let vp = self.viewport();
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + vp {
            self.offset = self.selected + 1 - vp;
        }
        let max_offset = self.rows.len().saturating_sub(vp);
        self.offset = self.offset.min(max_offset);
    }

    fn select(&mut self, pos: usize) {
        self.user_moved = true;
        self.selected = pos.min(self.rows.len().saturating_sub(1));
        self.remember_selection();
        self.scroll_into_view();
    }

    fn move_by(&mut self, delta: isize) {
        let pos = (self.selected as isize + delta).max(0) as usize;
        self.select(pos);
    }

    fn say(&mut self, text: impl Into<String>, level: Level) {
        self.message = Some((text.into(), level));
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
                self.size = (w, h);
                self.scroll_into_view();
                Vec::new()
            }
            AppEvent::Source(se) => {
                if self.frozen {
                    self.pending.push(se);
                } else {
                    self.apply_source(se);
                    self.rebuild();
                }
                Vec::new()
            }
            AppEvent::Proposed { token, proposals } => self.on_proposed(token, proposals),
            AppEvent::Started { proposals } => {
                self.start_tasks(&proposals);
                Vec::new()
            }
            AppEvent::TaskProgress {
                record_id,
                step,
                message,
            } => {
                if let Some(t) = self.tasks.get_mut(&record_id) {
                    t.step = step;
                    t.log.push(message);
                }
                Vec::new()
            }
            AppEvent::TaskFinished {
                record_id,
                ok,
                message,
            } => {
                let mut effects = Vec::new();
                if let Some(t) = self.tasks.get_mut(&record_id) {
                    t.state = if ok {
                        TaskState::Succeeded
                    } else {
                        TaskState::Failed
                    };
                    t.step = if ok {
                        "done".into()
                    } else {
                        format!("failed at {}", t.step)
                    };
                    t.log.push(message.clone());
                    let lvl = if ok { Level::Info } else { Level::Error };
                    let text = format!(
                        "{} {}: {message}",
                        t.title,
                        if ok { "done" } else { "failed" }
                    );
                    if let Some(r) = self.fleet.get(&record_id) {
                        // Verify what the row shows now: observe it again.
                        effects.push(Effect::Reprobe(vec![(r.source, r.location.clone())]));
                    }
                    self.say(text, lvl);
                }
                effects
            }
            AppEvent::Tick(now) => {
                self.now = now;
                // Statuses move with the clock; re-judge every record once a minute.
                if now - self.facts_at >= 60 && !self.frozen {
                    self.refresh_facts();
                    self.rebuild();
                }
                Vec::new()
            }
        }
    }

    /// Apply several source events and rebuild once (the runner drains its channel in batches).
    pub fn apply_batch(&mut self, events: Vec<SourceEvent>) {
        if self.frozen {
            self.pending.extend(events);
            return;
        }
        for se in events {
            self.apply_source(se);
        }
        self.rebuild();
    }

    fn refresh_facts(&mut self) {
        self.facts_at = self.now;
        self.facts = self
            .fleet
            .records()
            .iter()
            .map(|r| RowFacts::new(r, self.now, self.thresholds))
            .collect();
    }

    fn apply_source(&mut self, se: SourceEvent) {
        match se {
            SourceEvent::Started { source, total } => {
                self.progress.insert(
                    source,
                    Progress {
                        total,
                        ..Progress::default()
                    },
                );
            }
            SourceEvent::Observed(r) => {
                let p = self.progress.entry(r.source).or_default();
                if !p.finished {
                    p.done += 1;
                    if r.cert.is_none() {
                        p.failed += 1;
                    }
                }
                self.observe(r);
            }
            SourceEvent::Failed { source, error } => {
                self.progress.entry(source).or_default().error = Some(error.clone());
                self.say(format!("{}: {error}", source.as_str()), Level::Error);
            }
            SourceEvent::Finished { source } => {
                let p = self.progress.entry(source).or_default();
                p.finished = true;
                p.total = p.total.max(p.done);
            }
        }
    }

    fn on_mouse(&mut self, m: MouseEvent) {
        match m.kind {
            MouseEventKind::ScrollDown => {
                if self.popup.is_some() {
                    self.scroll = self.scroll.saturating_add(3);
                } else {
                    self.move_by(3);
                }
            }
            MouseEventKind::ScrollUp => {
                if self.popup.is_some() {
                    self.scroll = self.scroll.saturating_sub(3);
                } else {
                    self.move_by(-3);
                }
            }
            // Body rows start below the title bar and the header row.
            MouseEventKind::Down(crossterm::event::MouseButton::Left)
                if self.popup.is_none() && m.row >= 2 =>
            {
                let pos = self.offset + usize::from(m.row - 2);
                if pos < self.rows.len() {
                    self.select(pos);
                }
            }
            _ => {}
        }
    }

    fn on_key(&mut self, k: KeyEvent) -> Vec<Effect> {
        if k.kind == crossterm::event::KeyEventKind::Release {
            return Vec::new();
        }
        // Any key means the user is reading: the selection now follows its certificate.
        self.user_moved = true;
        match self.input.clone() {
            Input::Filter(text) => return self.on_filter_key(k, text),
            Input::Command(text) => return self.on_command_key(k, text),
            Input::None => {}
        }
        let Some(action) = self.keymap.action(self.mode(), &k) else {
            return Vec::new();
        };
        self.message = None;
        self.perform(action)
    }

    /// Carry out an action (keys and the command line both come here).
    pub fn perform(&mut self, action: Action) -> Vec<Effect> {
        let page = self.viewport() as isize;
        match action {
            Action::Quit => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            Action::Up | Action::Down | Action::PageUp | Action::PageDown
                if self.popup.is_some() =>
            {
                let d: i32 = match action {
                    Action::Up => -1,
                    Action::Down => 1,
                    Action::PageUp => -(page as i32),
                    _ => page as i32,
                };
                self.scroll = (i32::from(self.scroll) + d).clamp(0, i32::from(u16::MAX)) as u16;
            }
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-page),
            Action::PageDown => self.move_by(page),
            Action::Top => self.select(0),
            Action::Bottom => self.select(self.rows.len().saturating_sub(1)),
            Action::Details => {
                if self.selected_record().is_some() {
                    self.popup = Some(Popup::Details);
                    self.scroll = 0;
                }
            }
            Action::Back => self.popup = None,
            Action::Help => {
                self.popup = if self.popup == Some(Popup::Help) {
                    None
                } else {
                    Some(Popup::Help)
                };
                self.scroll = 0;
            }
            Action::Timeline => {
                self.view = if self.view == View::Table {
                    View::Timeline
                } else {
                    View::Table
                };
                self.rebuild();
            }
            Action::Filter => self.input = Input::Filter(self.spec.text.text.clone()),
            Action::Command => self.input = Input::Command(String::new()),
            Action::Sort(col) => {
                if self.spec.sort == col {
                    self.spec.reverse = !self.spec.reverse;
                } else {
                    self.spec.sort = col;
                    self.spec.reverse = false;
                }
                self.rebuild();
            }
            Action::ReverseSort => {
                self.spec.reverse = !self.spec.reverse;
                self.rebuild();
            }
            Action::Quick(q) => {
                self.spec.quick = if self.spec.quick == Some(q) {
                    None
                } else {
                    Some(q)
                };
                self.rebuild();
            }
            Action::ClearFilter => {
                self.spec.quick = None;
                self.spec.text = TextFilter::default();
                self.rebuild();
            }
            Action::Refresh => {
                if let Some(r) = self.selected_record() {
                    let what = vec![(r.source, r.location.clone())];
                    self.say(
                        format!("re-probing {}", self.shown_location(r)),
                        Level::Info,
                    );
                    return vec![Effect::Reprobe(what)];
                }
            }
            Action::RefreshAll => {
                self.say("re-probing everything", Level::Info);
                return vec![Effect::ReprobeAll];
            }
            Action::Mark => {
                if let Some(id) = self.selected_id.clone() {
                    if !self.marked.remove(&id) {
                        self.marked.insert(id);
                    }
                    self.move_by(1);
                }
            }
            Action::Freeze => {
                self.frozen = !self.frozen;
                if !self.frozen {
                    let pending = std::mem::take(&mut self.pending);
                    let n = pending.len();
                    for se in pending {
                        self.apply_source(se);
                    }
                    self.refresh_facts();
                    self.rebuild();
                    self.say(format!("updates resumed ({n} applied)"), Level::Info);
                } else {
                    self.say(
                        "frozen: updates are held until f is pressed again",
                        Level::Info,
                    );
                }
            }
            Action::ZoomIn => self.horizon = self.horizon.shorter(),
            Action::ZoomOut => self.horizon = self.horizon.longer(),
            Action::Group => {
                self.group_by = if self.group_by == GroupBy::Source {
                    GroupBy::Issuer
                } else {
                    GroupBy::Source
                };
                self.rebuild();
            }
            Action::CopyPem => {
                if let Some(c) = self.selected_record().and_then(|r| r.cert.clone()) {
                    self.say(
                        format!("copied the PEM of {} (OSC 52)", c.display_name()),
                        Level::Info,
                    );
                    return vec![Effect::Copy(c.to_pem())];
                }
                self.say("no certificate to copy", Level::Error);
            }
            Action::Redact => {
                self.redact = !self.redact;
                self.rebuild();
            }
            Action::Act => return self.propose(ActKind::Builtin),
            Action::UserAct(i) => return self.propose(ActKind::User(i)),
            Action::Tasks => {
                self.popup = if self.popup == Some(Popup::Tasks) {
                    None
                } else {
                    Some(Popup::Tasks)
                };
                self.scroll = 0;
            }
            Action::Confirm => {
                if let Some(c) = self.confirm.take() {
                    self.popup = None;
                    let ids = self.start_tasks(&c.proposals);
                    return vec![Effect::Execute {
                        token: c.token,
                        ids,
                    }];
                }
            }
            Action::Cancel => {
                self.popup = None;
                if let Some(c) = self.confirm.take() {
                    self.say("cancelled: nothing was changed", Level::Info);
                    return vec![Effect::Cancel { token: c.token }];
                }
            }
        }
        Vec::new()
    }

    /// Record tasks for the runnable proposals; returns their row ids.
    fn start_tasks(&mut self, proposals: &[Proposal]) -> Vec<String> {
        let runnable: Vec<&Proposal> = proposals.iter().filter(|p| p.error.is_none()).collect();
        for p in &runnable {
            self.tasks.insert(
                p.record_id.clone(),
                Task {
                    record_id: p.record_id.clone(),
                    location: p.location.clone(),
                    title: p.title.clone(),
                    state: TaskState::Running,
                    step: "starting".into(),
                    log: Vec::new(),
                },
            );
        }
        self.planning = None;
        self.say(
            format!("started {} task(s); T shows their progress", runnable.len()),
            Level::Info,
        );
        self.marked.clear();
        runnable.iter().map(|p| p.record_id.clone()).collect()
    }

    /// Ask the runner to plan an action for the marked rows, or the selected one.
    fn propose(&mut self, kind: ActKind) -> Vec<Effect> {
        if self.read_only {
            self.say("read-only mode: actions are disabled", Level::Error);
            return Vec::new();
        }
        let mut ids: Vec<String> = if self.marked.is_empty() {
            self.selected_id.iter().cloned().collect()
        } else {
            // Marked rows in display order.
            self.rows
                .iter()
                .map(|&i| &self.fleet.records()[i].id)
                .filter(|id| self.marked.contains(*id))
                .cloned()
                .collect()
        };
        if let ActKind::User(i) = kind {
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
                self.say(
                    format!("'{}' does not apply to this row's source", ua.description),
                    Level::Error,
                );
                return Vec::new();
            }
        }
        if ids.is_empty() {
            return Vec::new();
        }
        let token = self.next_token;
        self.next_token += 1;
        self.planning = Some(token);
        self.say(format!("planning for {} row(s)…", ids.len()), Level::Info);
        vec![Effect::Propose { token, kind, ids }]
    }

    /// Show planned actions for confirmation. A stale answer (the user asked again since) and
    /// a plan that cannot run are dropped, and the runner is told to forget them.
    fn on_proposed(&mut self, token: u64, proposals: Vec<Proposal>) -> Vec<Effect> {
        if self.planning != Some(token) {
            return vec![Effect::Cancel { token }];
        }
        self.planning = None;
        if proposals.is_empty() {
            self.say("no action applies to these rows", Level::Error);
            return vec![Effect::Cancel { token }];
        }
        if proposals.iter().all(|p| p.error.is_some()) && proposals.len() == 1 {
            let e = proposals[0].error.clone().unwrap_or_default();
            self.say(e, Level::Error);
            return vec![Effect::Cancel { token }];
        }
        self.message = None;
        self.confirm = Some(Confirm { token, proposals });
        self.popup = Some(Popup::Confirm);
        self.scroll = 0;
        Vec::new()
    }

    fn on_filter_key(&mut self, k: KeyEvent, mut text: String) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => {
                self.input = Input::None;
                self.spec.text = TextFilter::default();
            }
            KeyCode::Enter => self.input = Input::None,
            KeyCode::Backspace => {
                text.pop();
                self.input = Input::Filter(text.clone());
                self.spec.text = TextFilter::new(&text);
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.input = Input::Filter(text.clone());
                self.spec.text = TextFilter::new(&text);
            }
            _ => return Vec::new(),
        }
        self.rebuild();
        Vec::new()
    }

    fn on_command_key(&mut self, k: KeyEvent, mut text: String) -> Vec<Effect> {
        match k.code {
            KeyCode::Esc => self.input = Input::None,
            KeyCode::Enter => {
                self.input = Input::None;
                return self.run_command(&text);
            }
            KeyCode::Backspace => {
                text.pop();
                self.input = Input::Command(text);
            }
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.should_quit = true;
                return vec![Effect::Quit];
            }
            KeyCode::Char(c) => {
                text.push(c);
                self.input = Input::Command(text);
            }
            _ => {}
        }
        Vec::new()
    }

    /// Run a `:` command.
    pub fn run_command(&mut self, line: &str) -> Vec<Effect> {
        let mut words = line.split_whitespace();
        let cmd = words.next().unwrap_or_default();
        let arg: Vec<&str> = words.collect();
        match (cmd, arg.as_slice()) {
            ("q" | "quit", []) => return self.perform(Action::Quit),
            ("help", []) => return self.perform(Action::Help),
            ("table", []) => {
                self.view = View::Table;
                self.rebuild();
            }
            ("timeline", []) => {
                self.view = View::Timeline;
                self.rebuild();
            }
            ("filter", rest) => {
                self.spec.text = TextFilter::new(&rest.join(" "));
                self.rebuild();
            }
            ("sort", [col, rest @ ..]) => match SortColumn::ALL.iter().find(|c| c.label() == *col) {
                Some(c) => {
                    self.spec.sort = *c;
                    self.spec.reverse = rest.first() == Some(&"desc");
                    self.rebuild();
                }
                None => self.say(format!("unknown column '{col}' (status, days, name, location, source, issuer, key)"), Level::Error),
            },
            ("only", [what]) => {
                self.spec.quick = match *what {
                    "expired" => Some(QuickFilter::Expired),
                    "critical" => Some(QuickFilter::Critical),
                    "warning" => Some(QuickFilter::Warning),
                    "errors" => Some(QuickFilter::Errors),
                    _ => None,
                };
                self.rebuild();
            }
            ("horizon", [h]) => match Horizon::parse(h) {
                Some(h) => self.horizon = h,
                None => self.say("horizon takes 7d, 30d, 90d or 1y", Level::Error),
            },
            ("redact", [onoff]) => {
                self.redact = *onoff == "on";
                self.rebuild();
            }
            ("", []) => {}
            _ => self.say(
                format!("unknown command ':{line}' (try :sort days desc, :filter TEXT, :only expired, :horizon 1y, :timeline, :q)"),
                Level::Error,
            ),
        }
        Vec::new()
    }

    /// The location as shown (redacted in demo mode).
    pub fn shown_location(&self, r: &Record) -> String {
        if self.redact {
            match r.location.rsplit_once(':') {
                Some((_, port)) if r.source == SourceKind::Tls => format!("{}:{port}", r.id),
                _ => r.id.clone(),
            }
        } else {
            r.location.clone()
        }
    }

    /// The certificate name as shown (redacted in demo mode).
    pub fn shown_name(&self, r: &Record) -> String {
        match r.cert.as_deref() {
            Some(c) if self.redact => format!("redacted-{}", &c.sha256[..8]),
            Some(c) => c.display_name().to_owned(),
            None => "-".to_owned(),
        }
    }
}

/// The group a record belongs to on the timeline.
pub fn group_key(r: &Record, by: GroupBy) -> String {
    match by {
        GroupBy::Source => r.source.as_str().to_owned(),
        GroupBy::Issuer => r
            .cert
            .as_deref()
            .map(|c| c.issuer_name().to_owned())
            .unwrap_or_else(|| "(unreadable)".into()),
    }
}
