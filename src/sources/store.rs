//! The fleet as the sources see it: every record with the source that produced it, each
//! source's health and progress, staleness, and rows swept when a complete round no longer
//! sees them. Pure: `apply(event, now)` and queries. The dashboard, the scan and the exporter
//! all keep one.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Problem, RoundEnd, SourceEvent, SourceId};
use crate::model::{Fleet, Record};

/// A source's state, as a health line shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// No round has finished yet.
    Pending,
    Ok,
    /// The last round read some locations but not all (a namespace forbidden...).
    Partial,
    /// The last round read nothing: rows keep their last known state, marked stale.
    Failing,
}

/// A source's health: its state, why, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: HealthState,
    pub problem: Option<Problem>,
    /// When the current partial/failing state began (unix seconds).
    pub since: Option<i64>,
    /// When the last round without a problem finished.
    pub last_success: Option<i64>,
    /// When the last full round started.
    pub last_round: Option<i64>,
    /// Rounds finished.
    pub rounds: u64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: HealthState::Pending,
            problem: None,
            since: None,
            last_success: None,
            last_round: None,
            rounds: 0,
        }
    }
}

impl Health {
    /// One line: `ok`, `failing since 10:02:03: unreachable: ...`.
    pub fn describe(&self) -> String {
        let since = |t: Option<i64>| {
            t.map(|t| format!(" since {}", crate::clock::time_of_day(t)))
                .unwrap_or_default()
        };
        let why = |p: &Option<Problem>| {
            p.as_ref()
                .map(|p| format!(": {}: {}", p.kind.as_str(), p.message))
                .unwrap_or_default()
        };
        match self.state {
            HealthState::Pending => "starting".to_owned(),
            HealthState::Ok => "ok".to_owned(),
            HealthState::Partial => format!("partial{}{}", since(self.since), why(&self.problem)),
            HealthState::Failing => format!("failing{}{}", since(self.since), why(&self.problem)),
        }
    }
}

/// Progress of the current (or last) round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Locations planned, when the source knows.
    pub total: usize,
    pub done: usize,
    /// Observations that were errors.
    pub failed: usize,
    pub running: bool,
}

/// Everything known of one source.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    pub health: Health,
    pub progress: Progress,
    /// Full rounds started; a row seen in the current one carries this number.
    generation: u64,
    /// Rows this source produced (kept current on every change).
    pub rows: usize,
}

/// What applying an event did to the fleet's records, in order (indices as in
/// [`Fleet::remove`]: a removal moves the last record into the removed index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A record was inserted (`new`) or replaced at this index; `cert_changed`: it held
    /// another certificate before.
    Upserted {
        index: usize,
        new: bool,
        cert_changed: bool,
    },
    Removed {
        index: usize,
        id: String,
    },
    /// A source's health or progress changed (no record did).
    Source,
}

/// The fleet with provenance and health.
#[derive(Debug, Default)]
pub struct FleetStore {
    fleet: Fleet,
    /// Per record (same index as the fleet): the source that produced it, and in which of
    /// its full rounds it was last seen.
    origin: Vec<(Arc<SourceId>, u64)>,
    sources: BTreeMap<Arc<SourceId>, SourceState>,
}

impl FleetStore {
    pub fn new() -> FleetStore {
        FleetStore::default()
    }

    pub fn fleet(&self) -> &Fleet {
        &self.fleet
    }

    pub fn into_fleet(self) -> Fleet {
        self.fleet
    }

    /// Bring derived findings (key reuse of large key groups) up to date: see [`Fleet::settle`].
    pub fn settle(&mut self) {
        self.fleet.settle();
    }

    /// Every source seen, in a stable order.
    pub fn sources(&self) -> impl Iterator<Item = (&Arc<SourceId>, &SourceState)> {
        self.sources.iter()
    }

    pub fn source(&self, id: &SourceId) -> Option<&SourceState> {
        self.sources.get(id)
    }

    /// The source that produced the record at `index`.
    pub fn origin(&self, index: usize) -> Option<&Arc<SourceId>> {
        self.origin.get(index).map(|(s, _)| s)
    }

    /// Age (seconds at `now`) of a row whose source could not read it in its latest round:
    /// the row shows its last known state. `None` for fresh rows.
    pub fn stale_age(&self, index: usize, now: i64) -> Option<i64> {
        let (src, gen) = self.origin.get(index)?;
        let st = self.sources.get(src)?;
        let behind = *gen < st.generation;
        let troubled = matches!(st.health.state, HealthState::Failing | HealthState::Partial);
        (troubled && behind).then(|| (now - self.fleet.records()[index].observed_at).max(0))
    }

    /// Insert a record directly (tests, benchmarks), as produced by `source`, which is not
    /// listed among the running sources.
    pub fn insert(&mut self, source: Arc<SourceId>, record: Record) -> Vec<Applied> {
        self.observe(source, record)
    }

    fn observe(&mut self, source: Arc<SourceId>, record: Record) -> Vec<Applied> {
        let gen = match self.sources.get_mut(&source) {
            Some(st) => {
                if st.progress.running {
                    st.progress.done += 1;
                    if record.cert.is_none() {
                        st.progress.failed += 1;
                    }
                }
                st.generation
            }
            None => 0,
        };
        let new_sha = record.cert.as_ref().map(|c| c.sha256.clone());
        let (new, cert_changed, old_src) = match self.fleet.get(&record.id) {
            Some(old) => {
                let old_sha = old.cert.as_ref().map(|c| c.sha256.clone());
                let changed = old_sha.is_some() && new_sha.is_some() && old_sha != new_sha;
                let idx = self.fleet.index_of(&record.id);
                (
                    false,
                    changed,
                    idx.and_then(|i| self.origin.get(i).map(|o| o.0.clone())),
                )
            }
            None => (true, false, None),
        };
        let index = self.fleet.upsert(record);
        if index == self.origin.len() {
            self.origin.push((source.clone(), gen));
        } else {
            self.origin[index] = (source.clone(), gen);
        }
        if old_src.as_ref() != Some(&source) {
            if let Some(s) = old_src.and_then(|o| self.sources.get_mut(&o)) {
                s.rows = s.rows.saturating_sub(1);
            }
            if let Some(s) = self.sources.get_mut(&source) {
                s.rows += 1;
            }
        }
        vec![Applied::Upserted {
            index,
            new,
            cert_changed,
        }]
    }

    fn remove(&mut self, id: &str) -> Option<Applied> {
        let index = self.fleet.remove(id)?;
        let (src, _) = self.origin.swap_remove(index);
        if let Some(s) = self.sources.get_mut(&src) {
            s.rows = s.rows.saturating_sub(1);
        }
        Some(Applied::Removed {
            index,
            id: id.to_owned(),
        })
    }

    /// Apply one event at `now`; returns what changed.
    pub fn apply(&mut self, ev: SourceEvent, now: i64) -> Vec<Applied> {
        match ev {
            SourceEvent::Started { source, full } => {
                let st = self.sources.entry(source).or_default();
                if full {
                    st.generation += 1;
                    st.health.last_round = Some(now);
                    st.progress = Progress {
                        running: true,
                        ..Progress::default()
                    };
                } else {
                    st.progress.running = true;
                }
                vec![Applied::Source]
            }
            SourceEvent::Planned { source, total } => {
                let st = self.sources.entry(source).or_default();
                st.progress.total = total;
                vec![Applied::Source]
            }
            SourceEvent::Observed { source, record } => {
                self.sources.entry(source.clone()).or_default();
                self.observe(source, record)
            }
            SourceEvent::Removed { id, .. } => self.remove(&id).into_iter().collect(),
            SourceEvent::Finished { source, full, end } => self.finish(source, full, end, now),
        }
    }

    fn finish(
        &mut self,
        source: Arc<SourceId>,
        full: bool,
        end: RoundEnd,
        now: i64,
    ) -> Vec<Applied> {
        let st = self.sources.entry(source.clone()).or_default();
        st.progress.running = false;
        st.progress.total = st.progress.total.max(st.progress.done);
        st.health.rounds += 1;
        let h = &mut st.health;
        match (&end.problem, end.complete) {
            (None, _) => {
                // A re-read of some rows that went fine says nothing of the others.
                if full || h.state == HealthState::Pending {
                    h.state = HealthState::Ok;
                    h.since = None;
                    h.problem = None;
                }
                h.last_success = Some(now);
            }
            (Some(p), complete) => {
                // Some locations were read this round: partial; none: failing.
                let read = st.progress.done - st.progress.failed;
                let state = if complete || read > 0 {
                    HealthState::Partial
                } else {
                    HealthState::Failing
                };
                if h.state != state || h.since.is_none() {
                    h.since = Some(now);
                }
                h.state = state;
                h.problem = Some(p.clone());
            }
        }
        let mut out = vec![Applied::Source];
        // Sweep: after a complete full round, rows of this source it did not see are gone.
        if full && end.complete && end.problem.is_none() {
            let gen = st.generation;
            let gone: Vec<String> = self
                .origin
                .iter()
                .enumerate()
                .filter(|(_, (s, g))| **s == *source && *g < gen)
                .map(|(i, _)| self.fleet.records()[i].id.clone())
                .collect();
            for id in gone {
                out.extend(self.remove(&id));
            }
        }
        self.fleet.settle();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceKind;
    use crate::sources::{ProblemKind, RoundEnd};

    fn rec(loc: &str, at: i64) -> Record {
        let mut r = Record::new(SourceKind::FILE, loc.to_owned(), at);
        r.cert = Some(Arc::new(crate::testing::facts(
            loc,
            "CA",
            0,
            10,
            "Ed25519",
            &[],
        )));
        r
    }

    fn round(store: &mut FleetStore, src: &Arc<SourceId>, locs: &[&str], end: RoundEnd, at: i64) {
        store.apply(
            SourceEvent::Started {
                source: src.clone(),
                full: true,
            },
            at,
        );
        for l in locs {
            store.apply(
                SourceEvent::Observed {
                    source: src.clone(),
                    record: rec(l, at),
                },
                at,
            );
        }
        store.apply(
            SourceEvent::Finished {
                source: src.clone(),
                full: true,
                end,
            },
            at,
        );
    }

    #[test]
    fn a_failed_round_keeps_rows_marked_stale_and_a_good_one_sweeps_the_missing() {
        let src = Arc::new(SourceId::new(SourceKind::FILE, ""));
        let mut s = FleetStore::new();
        round(&mut s, &src, &["a", "b"], RoundEnd::complete(), 100);
        assert_eq!(s.fleet().len(), 2);
        assert_eq!(s.stale_age(0, 100), None);
        let down = Problem::new(ProblemKind::Unreachable, "connection refused");
        round(&mut s, &src, &[], RoundEnd::failed(down), 400);
        let h = &s.source(&src).unwrap().health;
        assert_eq!(h.state, HealthState::Failing);
        assert_eq!(h.since, Some(400));
        assert_eq!(s.fleet().len(), 2, "rows are kept");
        assert_eq!(
            s.stale_age(0, 460),
            Some(360),
            "and marked stale with their age"
        );
        // Back: "b" is gone, "a" is fresh again.
        round(&mut s, &src, &["a"], RoundEnd::complete(), 500);
        assert_eq!(s.fleet().len(), 1);
        assert_eq!(s.fleet().records()[0].location, "a");
        assert_eq!(s.stale_age(0, 500), None);
        assert_eq!(s.source(&src).unwrap().health.state, HealthState::Ok);
        assert_eq!(s.source(&src).unwrap().rows, 1);
    }

    #[test]
    fn a_partial_round_sweeps_nothing_and_live_removals_apply() {
        let src = Arc::new(SourceId::new(SourceKind::K8S, "prod"));
        let mut s = FleetStore::new();
        round(&mut s, &src, &["a", "b"], RoundEnd::complete(), 100);
        let forbidden = Problem::new(ProblemKind::Forbidden, "namespace x");
        round(&mut s, &src, &["a"], RoundEnd::partial(forbidden), 200);
        assert_eq!(s.fleet().len(), 2);
        assert_eq!(s.source(&src).unwrap().health.state, HealthState::Partial);
        let b = s
            .fleet()
            .records()
            .iter()
            .position(|r| r.location == "b")
            .unwrap();
        assert_eq!(s.stale_age(b, 260), Some(160));
        let a = s
            .fleet()
            .records()
            .iter()
            .position(|r| r.location == "a")
            .unwrap();
        assert_eq!(s.stale_age(a, 260), None);
        let id = s.fleet().records()[a].id.clone();
        let applied = s.apply(
            SourceEvent::Removed {
                source: src.clone(),
                id: id.clone(),
            },
            300,
        );
        assert_eq!(applied, vec![Applied::Removed { index: a, id }]);
        assert_eq!(s.fleet().len(), 1);
    }
}
