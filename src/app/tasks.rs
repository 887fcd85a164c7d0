//! Actions as the dashboard sees them: plans waiting for confirmation, and the tasks that run
//! them with their steps and output. Fed by the action framework's events.

use std::collections::BTreeMap;

use crate::actions::session::{Planned, Refusal};
use crate::actions::{ActionEvent, Plan};

/// The confirm popup's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub token: u64,
    pub plans: Planned,
}

impl Confirm {
    pub fn runnable(&self) -> impl Iterator<Item = &Plan> {
        self.plans.iter().filter_map(|p| p.as_ref().ok())
    }

    pub fn refused(&self) -> impl Iterator<Item = &Refusal> {
        self.plans.iter().filter_map(|p| p.as_ref().err())
    }
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

/// Keep at most this many log lines per task.
const MAX_LOG: usize = 2000;

/// Plans and tasks.
#[derive(Debug, Clone, Default)]
pub struct Tasks {
    /// Actions waiting for confirmation.
    pub confirm: Option<Confirm>,
    /// Every task of this session, by record id (the latest per row).
    pub by_row: BTreeMap<String, Task>,
    next_token: u64,
    /// Token of the request being planned (to drop stale answers).
    pub planning: Option<u64>,
    /// Rows whose task ended, to re-read when the running ones have ended too.
    pub reread: Vec<String>,
}

impl Tasks {
    /// A new planning request's token.
    pub fn plan_token(&mut self) -> u64 {
        self.next_token += 1;
        self.planning = Some(self.next_token);
        self.next_token
    }

    pub fn running(&self) -> usize {
        self.by_row
            .values()
            .filter(|t| t.state == TaskState::Running)
            .count()
    }

    pub fn state_of(&self, record_id: &str) -> Option<TaskState> {
        self.by_row.get(record_id).map(|t| t.state)
    }

    /// Start a task for each plan; returns their row ids.
    pub fn start(&mut self, plans: &[Plan]) -> Vec<String> {
        for p in plans {
            self.by_row.insert(
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
        plans.iter().map(|p| p.record_id.clone()).collect()
    }

    /// Apply an action event. Returns the row id of a task that ended, with whether it
    /// succeeded and what to say.
    pub fn apply(&mut self, ev: ActionEvent) -> Option<(String, bool, String)> {
        match ev {
            ActionEvent::Progress(p) => {
                if let Some(t) = self.by_row.get_mut(&p.record_id) {
                    t.step = p.step.as_str().to_owned();
                    if t.log.len() < MAX_LOG {
                        t.log.push(p.message);
                    }
                }
                None
            }
            ActionEvent::Finished(f) => {
                let t = self.by_row.get_mut(&f.record_id)?;
                let (ok, mut text) = match &f.result {
                    Ok(o) => (true, o.message.clone()),
                    Err(e) => (false, e.to_string()),
                };
                t.state = if ok {
                    TaskState::Succeeded
                } else {
                    TaskState::Failed
                };
                t.step = match &f.result {
                    Ok(_) => "done".into(),
                    Err(e) => format!(
                        "failed at {}",
                        e.step().map(|s| s.as_str()).unwrap_or(t.step.as_str())
                    ),
                };
                t.log.push(text.clone());
                if let Ok(o) = &f.result {
                    if let Some(r) = &o.restore_command {
                        t.log.push(format!("restore the previous state with: {r}"));
                    }
                }
                if let Some(a) = &f.audit_error {
                    t.log.push(a.clone());
                    text.push_str(&format!(" ({a})"));
                }
                let msg = format!("{} {}: {text}", t.title, if ok { "done" } else { "failed" });
                Some((f.record_id, ok, msg))
            }
        }
    }
}
