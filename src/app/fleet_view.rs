//! The fleet as the dashboard shows it: the store (records, provenance, health), cached
//! per-row facts for sorting and filtering, the visible rows, marks, changed rows, and the
//! events held while frozen.

use std::collections::HashSet;

use super::ui_state::{GroupBy, View};
use crate::model::view::{self, RowFacts, ViewSpec};
use crate::model::{Fleet, Record, Thresholds};
use crate::sources::store::Applied;
use crate::sources::{FleetStore, SourceEvent, SourceId};

#[derive(Debug, Default)]
pub struct FleetView {
    store: FleetStore,
    /// Same index as the fleet's records.
    facts: Vec<RowFacts>,
    facts_at: i64,
    /// The clock and thresholds the latest facts were judged with.
    judged: (i64, Thresholds),
    pub spec: ViewSpec,
    /// Indices into the fleet's records in display order (filtered, sorted, grouped).
    pub rows: Vec<usize>,
    pub marked: HashSet<String>,
    /// Locations whose certificate changed since first seen.
    pub changed: HashSet<String>,
    pub frozen: bool,
    pending: Vec<SourceEvent>,
}

impl FleetView {
    pub fn store(&self) -> &FleetStore {
        &self.store
    }

    pub fn fleet(&self) -> &Fleet {
        self.store.fleet()
    }

    pub fn records(&self) -> &[Record] {
        self.store.fleet().records()
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.store.fleet().get(id)
    }

    pub fn len(&self) -> usize {
        self.store.fleet().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Facts of a record by its index in the fleet.
    pub fn facts(&self, idx: usize) -> &RowFacts {
        &self.facts[idx]
    }

    /// The source that produced a row, by record id.
    pub fn origin_of(&self, id: &str) -> Option<&SourceId> {
        let i = self.store.fleet().index_of(id)?;
        self.store.origin(i).map(|s| &**s)
    }

    /// How old a row is when its source could not read it lately (`None`: fresh).
    pub fn stale_age(&self, idx: usize, now: i64) -> Option<i64> {
        self.store.stale_age(idx, now)
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn applied(&mut self, applied: Vec<Applied>, now: i64, t: Thresholds) {
        self.judged = (now, t);
        for a in applied {
            match a {
                Applied::Upserted {
                    index,
                    new,
                    cert_changed,
                } => {
                    let r = &self.store.fleet().records()[index];
                    let facts = RowFacts::new(r, now, t);
                    if cert_changed {
                        self.changed.insert(r.id.clone());
                    }
                    if new || index == self.facts.len() {
                        self.facts.push(facts);
                    } else {
                        self.facts[index] = facts;
                    }
                }
                Applied::Removed { index, id } => {
                    self.facts.swap_remove(index);
                    self.marked.remove(&id);
                    self.changed.remove(&id);
                }
                Applied::Source => {}
            }
        }
    }

    /// Apply a source event (held while frozen). Returns true when it was applied.
    pub fn apply(&mut self, ev: SourceEvent, now: i64, t: Thresholds) -> bool {
        if self.frozen {
            self.pending.push(ev);
            return false;
        }
        let a = self.store.apply(ev, now);
        self.applied(a, now, t);
        true
    }

    /// Insert records directly (tests, benchmarks), as produced by `source`.
    pub fn insert(
        &mut self,
        source: &SourceId,
        records: impl IntoIterator<Item = Record>,
        now: i64,
        t: Thresholds,
    ) {
        let src = std::sync::Arc::new(source.clone());
        for r in records {
            let a = self.store.insert(src.clone(), r);
            self.applied(a, now, t);
        }
    }

    /// Apply what was held while frozen; returns how many events.
    pub fn thaw(&mut self, now: i64, t: Thresholds) -> usize {
        self.frozen = false;
        let pending = std::mem::take(&mut self.pending);
        let n = pending.len();
        for ev in pending {
            let a = self.store.apply(ev, now);
            self.applied(a, now, t);
        }
        n
    }

    /// Re-judge every record at `now` (statuses move with the clock), at most once a minute.
    pub fn tick(&mut self, now: i64, t: Thresholds) -> bool {
        if now - self.facts_at < 60 || self.frozen {
            return false;
        }
        self.refresh_facts(now, t);
        true
    }

    pub fn refresh_facts(&mut self, now: i64, t: Thresholds) {
        self.facts_at = now;
        self.judged = (now, t);
        self.facts = self
            .store
            .fleet()
            .records()
            .iter()
            .map(|r| RowFacts::new(r, now, t))
            .collect();
    }

    /// Recompute the visible rows for the view.
    pub fn rebuild(&mut self, view: View, group_by: GroupBy) {
        self.store.settle();
        let recs = self.store.fleet().records();
        // Key reuse is judged across records: a row another row's arrival made a reuse of
        // (or no longer one) gets its facts again.
        for (r, f) in recs.iter().zip(self.facts.iter_mut()) {
            if r.key_reuse != f.reuse {
                *f = RowFacts::new(r, self.judged.0, self.judged.1);
            }
        }
        let mut rows = view::build(recs, &self.facts, &self.spec);
        match view {
            View::Timeline => rows.sort_by_cached_key(|i| group_key(&recs[*i], group_by)),
            // Findings worst first; the chosen sort orders rows of equal severity.
            View::Keys => {
                let facts = &self.facts;
                rows.retain(|&i| facts[i].keys.worst.is_some());
                rows.sort_by_key(|&i| std::cmp::Reverse(facts[i].keys.worst));
            }
            View::Table => {}
        }
        self.rows = rows;
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
