//! The fleet: every record, indexed by location id and by certificate SHA-256.
//!
//! The same certificate seen in several places is one `CertFacts` value (interned by SHA-256)
//! with several locations; a record per location is kept for reports and views.

use std::collections::HashMap;
use std::sync::Arc;

use super::cert::CertFacts;
use super::record::Record;

#[derive(Debug, Default, Clone)]
pub struct Fleet {
    records: Vec<Record>,
    by_id: HashMap<String, usize>,
    by_sha: HashMap<String, Vec<usize>>,
    certs: HashMap<String, Arc<CertFacts>>,
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
        if let Some(&idx) = self.by_id.get(&record.id) {
            let old_sha = self.records[idx].cert.as_ref().map(|c| c.sha256.clone());
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
            self.records[idx] = record;
            idx
        } else {
            let idx = self.records.len();
            self.by_id.insert(record.id.clone(), idx);
            if let Some(new) = new_sha {
                self.by_sha.entry(new).or_default().push(idx);
            }
            self.records.push(record);
            idx
        }
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

    /// Number of distinct certificates (leaves) in the fleet.
    pub fn distinct_certificates(&self) -> usize {
        self.by_sha.values().filter(|v| !v.is_empty()).count()
    }

    pub fn into_records(self) -> Vec<Record> {
        self.records
    }
}
