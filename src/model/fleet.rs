//! The fleet: every record, indexed by location id and by certificate SHA-256.
//!
//! The same certificate seen in several places is one `CertFacts` value (interned by SHA-256)
//! with several locations; a record per location is kept for reports and views.
//!
//! The fleet also keeps each record's key-reuse findings current ([`super::keyreuse`]): an
//! index by public-key hash finds the records a change concerns, and only their group is
//! judged again, at once for small groups; a large group (one key in hundreds of places) is
//! judged once per batch, by [`Fleet::settle`], so a round stays linear in its records.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::cert::CertFacts;
use super::record::Record;

#[derive(Debug, Default, Clone)]
pub struct Fleet {
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
    by_sha: HashMap<String, Vec<usize>>,
    /// Record indices by the SPKI SHA-256 of their certificate's key.
    by_spki: HashMap<String, Vec<usize>>,
    /// Records by the DNS names of their leaf (`places::names_key`), for drift.
    by_names: HashMap<String, Vec<usize>>,
    /// Keys whose records carry key-reuse findings now.
    reused: HashSet<String>,
    /// Large key groups changed since the last [`Fleet::settle`].
    dirty: HashSet<String>,
    certs: HashMap<String, Arc<CertFacts>>,
}

/// Key groups up to this size are judged again on every change; larger ones at
/// [`Fleet::settle`].
const EAGER_GROUP: usize = 64;

fn spki_of(r: &Record) -> Option<String> {
    r.cert.as_ref().and_then(|c| c.spki_sha256.clone())
}

fn names_of(r: &Record) -> Option<String> {
    r.cert.as_deref().and_then(super::places::names_key)
}

fn unlist(map: &mut HashMap<String, Vec<usize>>, key: &str, idx: usize) {
    if let Some(v) = map.get_mut(key) {
        v.retain(|&i| i != idx);
        if v.is_empty() {
            map.remove(key);
        }
    }
}

impl Fleet {
    pub fn new() -> Fleet {
        Fleet::default()
    }

    fn intern(&mut self, c: &mut Arc<CertFacts>) {
        match self.certs.get(&c.sha256) {
            Some(existing) => *c = existing.clone(),
            None => {
                self.certs.insert(c.sha256.clone(), c.clone());
            }
        }
    }

    /// Insert or replace the record for its location. Returns the record's index.
    pub fn upsert(&mut self, mut record: Record) -> usize {
        if let Some(c) = record.cert.as_mut() {
            let mut c2 = c.clone();
            self.intern(&mut c2);
            *c = c2;
        }
        let mut chain = std::mem::take(&mut record.chain);
        for c in &mut chain {
            self.intern(c);
        }
        record.chain = chain;
        let new_sha = record.cert.as_ref().map(|c| c.sha256.clone());
        let new_spki = spki_of(&record);
        let new_names = names_of(&record);
        if let Some(&idx) = self.by_id.get(&record.id) {
            let old_names = names_of(&self.records[idx]);
            if old_names != new_names {
                if let Some(old) = old_names {
                    unlist(&mut self.by_names, &old, idx);
                }
                if let Some(new) = new_names {
                    self.by_names.entry(new).or_default().push(idx);
                }
            }
            let old_sha = self.records[idx].cert.as_ref().map(|c| c.sha256.clone());
            let old_spki = spki_of(&self.records[idx]);
            if old_sha != new_sha {
                if let Some(old) = old_sha {
                    if let Some(v) = self.by_sha.get_mut(&old) {
                        v.retain(|&i| i != idx);
                    }
                }
                if let Some(new) = new_sha {
                    self.by_sha.entry(new).or_default().push(idx);
                }
            }
            if old_spki != new_spki {
                if let Some(old) = &old_spki {
                    if let Some(v) = self.by_spki.get_mut(old) {
                        v.retain(|&i| i != idx);
                        if v.is_empty() {
                            self.by_spki.remove(old);
                        }
                    }
                }
                if let Some(new) = &new_spki {
                    self.by_spki.entry(new.clone()).or_default().push(idx);
                }
            }
            self.records[idx] = record;
            if old_spki != new_spki {
                self.touch(old_spki.as_deref());
            }
            self.touch(new_spki.as_deref());
            idx
        } else {
            let idx = self.records.len();
            self.by_id.insert(record.id.clone(), idx);
            if let Some(new) = new_sha {
                self.by_sha.entry(new).or_default().push(idx);
            }
            if let Some(new) = &new_spki {
                self.by_spki.entry(new.clone()).or_default().push(idx);
            }
            if let Some(new) = new_names {
                self.by_names.entry(new).or_default().push(idx);
            }
            self.records.push(record);
            self.touch(new_spki.as_deref());
            idx
        }
    }

    /// A key group changed: judge it again now, or at the next [`Fleet::settle`] if large.
    fn touch(&mut self, spki: Option<&str>) {
        let Some(k) = spki else { return };
        match self.by_spki.get(k).map(Vec::len) {
            Some(n) if n > EAGER_GROUP => {
                self.dirty.insert(k.to_owned());
            }
            _ => self.refresh_reuse(k),
        }
    }

    /// Judge the large key groups changed since the last call. The scan's records, the
    /// dashboard's rebuild and a source's finished round come after one.
    pub fn settle(&mut self) {
        for k in std::mem::take(&mut self.dirty) {
            self.refresh_reuse(&k);
        }
    }

    /// Judge the key-reuse findings of the records whose key has this SPKI hash again.
    fn refresh_reuse(&mut self, spki: &str) {
        let Some(idxs) = self.by_spki.get(spki) else {
            self.reused.remove(spki);
            return;
        };
        // One certificate when every record with this key holds the first one's certificate
        // (a certificate's records are a subset of its key's): O(1), however many places.
        let first = idxs
            .first()
            .and_then(|&i| self.records[i].cert.as_ref())
            .and_then(|c| self.by_sha.get(&c.sha256));
        if first.is_some_and(|v| v.len() == idxs.len()) {
            // One certificate (in one or many places) is no reuse: clear what said it was.
            if self.reused.remove(spki) {
                let idxs = idxs.clone();
                for i in idxs {
                    self.records[i].key_reuse.clear();
                }
            }
            return;
        }
        let group: Vec<&Record> = idxs.iter().map(|&i| &self.records[i]).collect();
        let found = super::keyreuse::key_reuse(&group);
        let idxs = idxs.clone();
        for (i, f) in idxs.into_iter().zip(found) {
            self.records[i].key_reuse = f;
        }
        self.reused.insert(spki.to_owned());
    }

    /// Remove the record of a location. Returns the index it had: the last record moves into
    /// that index (as `Vec::swap_remove` does), so parallel vectors are kept in step with
    /// `swap_remove(index)`.
    pub fn remove(&mut self, id: &str) -> Option<usize> {
        let idx = self.by_id.remove(id)?;
        let last = self.records.len() - 1;
        let gone_spki = spki_of(&self.records[idx]);
        if let Some(k) = &gone_spki {
            if let Some(v) = self.by_spki.get_mut(k) {
                v.retain(|&i| i != idx);
                if v.is_empty() {
                    self.by_spki.remove(k);
                }
            }
        }
        if let Some(k) = names_of(&self.records[idx]) {
            unlist(&mut self.by_names, &k, idx);
        }
        if let Some(sha) = self.records[idx].cert.as_ref().map(|c| c.sha256.clone()) {
            if let Some(v) = self.by_sha.get_mut(&sha) {
                v.retain(|&i| i != idx);
                if v.is_empty() {
                    self.by_sha.remove(&sha);
                    self.certs.remove(&sha);
                }
            }
        }
        self.records.swap_remove(idx);
        if idx != last {
            // The former last record now lives at `idx`.
            let moved = &self.records[idx];
            self.by_id.insert(moved.id.clone(), idx);
            if let Some(v) = names_of(moved).and_then(|k| self.by_names.get_mut(&k)) {
                for i in v.iter_mut() {
                    if *i == last {
                        *i = idx;
                    }
                }
            }
            if let Some(sha) = moved.cert.as_ref().map(|c| c.sha256.clone()) {
                if let Some(v) = self.by_sha.get_mut(&sha) {
                    for i in v.iter_mut() {
                        if *i == last {
                            *i = idx;
                        }
                    }
                }
            }
            if let Some(k) = spki_of(moved) {
                if let Some(v) = self.by_spki.get_mut(&k) {
                    for i in v.iter_mut() {
                        if *i == last {
                            *i = idx;
                        }
                    }
                }
            }
        }
        self.touch(gone_spki.as_deref());
        Some(idx)
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Record> {
        self.by_id.get(id).map(|&i| &self.records[i])
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Every record holding the certificate with this SHA-256.
    pub fn locations_of(&self, sha256: &str) -> Vec<&Record> {
        self.by_sha
            .get(sha256)
            .map(|v| v.iter().map(|&i| &self.records[i]).collect())
            .unwrap_or_default()
    }

    /// Every place of the certificate with this SHA-256 (endpoints first), for the details.
    pub fn places_of(&self, sha256: &str) -> Vec<super::places::Place> {
        super::places::places(self.locations_of(sha256))
    }

    /// Whether the endpoint row `record` serves an older certificate than a store of the
    /// fleet holds for the same names, at `now`.
    pub fn drift_of(&self, record: &Record, now: i64) -> Option<super::places::Drift> {
        let key = names_of(record)?;
        let rows = self.by_names.get(&key)?;
        super::places::drift(record, rows.iter().map(|&i| &self.records[i]), now)
    }

    /// Number of distinct certificates (leaves) in the fleet.
    pub fn distinct_certificates(&self) -> usize {
        self.by_sha.values().filter(|v| !v.is_empty()).count()
    }

    pub fn into_records(mut self) -> Vec<Record> {
        self.settle();
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SourceKind;

    fn rec(loc: &str, cert: Option<&str>) -> Record {
        let mut r = Record::new(SourceKind::FILE, loc.to_owned(), 0);
        if let Some(cn) = cert {
            r.cert = Some(Arc::new(crate::testing::facts(
                cn,
                "CA",
                0,
                1,
                "Ed25519",
                &[],
            )));
        }
        r
    }

    #[test]
    fn removing_keeps_both_indexes_right() {
        let mut f = Fleet::new();
        f.upsert(rec("a", Some("x")));
        f.upsert(rec("b", Some("y")));
        f.upsert(rec("c", Some("x")));
        f.upsert(rec("d", None));
        let a = f.records()[0].id.clone();
        let sha_x = f.records()[0]
            .cert
            .as_ref()
            .map(|c| c.sha256.clone())
            .unwrap();
        assert_eq!(f.remove(&a), Some(0));
        assert!(f.get(&a).is_none());
        assert_eq!(f.len(), 3);
        // "d" moved into slot 0; every id still finds its own record.
        for r in f.records() {
            assert_eq!(f.get(&r.id).map(|x| &x.location), Some(&r.location));
        }
        let locs: Vec<&str> = f
            .locations_of(&sha_x)
            .iter()
            .map(|r| r.location.as_str())
            .collect();
        assert_eq!(locs, vec!["c"]);
        let c = f
            .records()
            .iter()
            .find(|r| r.location == "c")
            .unwrap()
            .id
            .clone();
        f.remove(&c);
        assert!(f.locations_of(&sha_x).is_empty());
        assert_eq!(f.distinct_certificates(), 1);
        assert_eq!(f.remove("nope"), None);
    }

    #[test]
    fn key_reuse_follows_upserts_replacements_and_removals() {
        let with_key = |loc: &str, cn: &str, spki: &str| {
            let mut r = rec(loc, Some(cn));
            if let Some(c) = r.cert.as_mut() {
                Arc::make_mut(c).spki_sha256 = Some(spki.to_owned());
            }
            r
        };
        let codes = |f: &Fleet, loc: &str| -> Vec<&'static str> {
            let r = f.records().iter().find(|r| r.location == loc).unwrap();
            r.key_reuse.iter().map(|x| x.code).collect()
        };
        let mut f = Fleet::new();
        f.upsert(with_key("a", "a", "k1"));
        f.upsert(with_key("a2", "a", "k1"));
        assert!(codes(&f, "a").is_empty(), "one certificate in two places");
        f.upsert(with_key("b", "b", "k1"));
        f.upsert(with_key("c", "c", "k2"));
        assert_eq!(codes(&f, "a"), ["key_reused"]);
        assert_eq!(codes(&f, "b"), ["key_reused"]);
        assert!(codes(&f, "c").is_empty());
        // b is renewed with a new key: a is alone again.
        f.upsert(with_key("b", "b-new", "k2"));
        assert!(codes(&f, "a").is_empty());
        assert_eq!(codes(&f, "c"), ["key_reused"]);
        // Removing c (an index that moves the last record) clears b.
        let c_id = f
            .records()
            .iter()
            .find(|r| r.location == "c")
            .unwrap()
            .id
            .clone();
        f.remove(&c_id);
        assert!(codes(&f, "b").is_empty());
        f.upsert(with_key("d", "d", "k1"));
        let a_id = f
            .records()
            .iter()
            .find(|r| r.location == "a")
            .unwrap()
            .id
            .clone();
        f.remove(&a_id);
        assert_eq!(codes(&f, "a2"), ["key_reused"]);
        assert_eq!(
            f.records()
                .iter()
                .find(|r| r.location == "d")
                .unwrap()
                .key_reuse[0]
                .location
                .as_deref(),
            Some("a2")
        );
    }

    #[test]
    fn drift_follows_upserts_and_removals() {
        let now = 1_000;
        let served = |na: i64| {
            let mut r = Record::new(SourceKind::TLS, "shop.example:443".to_owned(), 0);
            r.cert = Some(Arc::new(crate::testing::facts(
                "shop.example",
                "CA",
                0,
                na,
                "Ed25519",
                &["shop.example"],
            )));
            r.tls = Some(crate::model::TlsInfo::default());
            r
        };
        let file = |loc: &str, na: i64, name: &str| {
            // Synthetic DER is made of the CN, issuer and validity: a CN per name keeps
            // certificates of other names apart.
            let mut r = Record::new(SourceKind::FILE, loc.to_owned(), 0);
            r.cert = Some(Arc::new(crate::testing::facts(
                name,
                "CA",
                0,
                na,
                "Ed25519",
                &[name],
            )));
            r
        };
        let mut f = Fleet::new();
        f.upsert(file("/other.pem", 9_000, "other.example"));
        f.upsert(served(5_000));
        f.upsert(file("/new.pem", 9_000, "shop.example"));
        let ep = f.records()[1].clone();
        let d = f.drift_of(&ep, now).expect("drift");
        assert_eq!(d.store_location, "/new.pem");
        // The store is renewed to other names: no drift any more; back: drift again.
        f.upsert(file("/new.pem", 9_000, "elsewhere.example"));
        assert_eq!(f.drift_of(&ep, now), None);
        f.upsert(file("/new.pem", 9_000, "shop.example"));
        assert!(f.drift_of(&ep, now).is_some());
        // Removing a row moves the last one into its slot: the names index follows.
        let other = f.records()[0].id.clone();
        f.remove(&other);
        let ep = f.get(&ep.id).unwrap().clone();
        assert_eq!(
            f.drift_of(&ep, now).map(|d| d.store_location),
            Some("/new.pem".to_owned())
        );
        let new = f
            .records()
            .iter()
            .find(|r| r.location == "/new.pem")
            .unwrap()
            .id
            .clone();
        f.remove(&new);
        assert_eq!(f.drift_of(&ep, now), None);
        // The endpoint catches up (reloaded): no drift.
        f.upsert(file("/new.pem", 9_000, "shop.example"));
        f.upsert(served(9_000));
        let ep = f.get(&ep.id).unwrap().clone();
        assert_eq!(f.drift_of(&ep, now), None);
    }

    #[test]
    fn a_large_key_group_is_judged_at_settle_and_into_records_settles() {
        let with_key = |loc: String, cn: &str| {
            let mut r = rec(&loc, Some(cn));
            if let Some(c) = r.cert.as_mut() {
                Arc::make_mut(c).spki_sha256 = Some("k".to_owned());
            }
            r
        };
        let mut f = Fleet::new();
        // One certificate in 200 places: no reuse, and nothing to settle but a check.
        for i in 0..200 {
            f.upsert(with_key(format!("ns-{i}/kube-root-ca.crt"), "root"));
        }
        f.settle();
        assert!(f.records().iter().all(|r| r.key_reuse.is_empty()));
        // The CA re-issued with its key, in one more place.
        f.upsert(with_key("ns-new/kube-root-ca.crt".into(), "root-2027"));
        assert!(
            f.records()[0].key_reuse.is_empty(),
            "not judged before settle"
        );
        f.settle();
        assert!(f.records().iter().all(|r| r.key_reuse.len() == 1));
        let new = f.records().last().unwrap();
        assert!(new.key_reuse[0].message.contains("1 other certificate"));
        assert!(new.key_reuse[0]
            .location
            .as_deref()
            .unwrap()
            .ends_with("and 192 more"));
        // It goes away again: every finding is cleared, by into_records too.
        let id = f.records().last().unwrap().id.clone();
        f.remove(&id);
        let recs = f.into_records();
        assert!(recs.iter().all(|r| r.key_reuse.is_empty()));
    }
}
