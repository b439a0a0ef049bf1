//! Highlights as jobs: each run gets an id and a record (sled tree `highlight_records`)
//! from its first event, runs to its end whatever its caller does, and can be watched
//! again (`HighlightWatch`: the whole event log of a highlight this process ran, or the
//! outcome of an older one), read, listed and deleted. Finished highlights are removed by
//! age and by total size (`[highlights]`). A record left `running` by a stopped process
//! becomes `interrupted` at the next start (its partial files are removed).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use reelforge_core::error::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{HighlightEvent, HighlightResult};
use crate::store::now_unix_ms;

/// Finished highlights whose full event log stays in memory for `WatchHighlight`.
const RECENT_LOGS: usize = 64;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum HighlightState {
    Running,
    Succeeded,
    Failed,
    /// The server stopped while it ran.
    Interrupted,
}

/// What is kept of a highlight.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HighlightRecord {
    pub highlight_id: String,
    /// Whose highlight it is: only keys of this tenant see it.
    #[serde(default = "crate::store::default_tenant")]
    pub tenant: String,
    /// The API key that started it; its `max_concurrent_jobs` counts it while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub state: HighlightState,
    pub strategy: String,
    /// The videos it was made from (empty for library-wide strategies).
    pub video_ids: Vec<String>,
    pub created_unix_ms: i64,
    pub finished_unix_ms: Option<i64>,
    pub error: Option<(ErrorKind, String)>,
    pub result: Option<HighlightResult>,
    /// Bytes of its files on disk.
    pub bytes: u64,
    /// What it matched with (Points, Template), for feedback to tune.
    #[serde(default)]
    pub matching: Option<MatchingUsed>,
    /// The category it was made for (ratings of its segments go there).
    #[serde(default)]
    pub category: Option<String>,
}

/// The matching options a highlight ran with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatchingUsed {
    pub unit: String,
    pub threshold: f32,
    pub prefilter: bool,
}

/// A highlight this process runs (or ran): its record and event log.
pub struct HighlightHandle {
    inner: Mutex<(HighlightRecord, Vec<HighlightEvent>)>,
    changed: watch::Sender<u64>,
}

impl HighlightHandle {
    fn new(record: HighlightRecord) -> Arc<Self> {
        Arc::new(HighlightHandle {
            inner: Mutex::new((record, Vec::new())),
            changed: watch::channel(0).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HighlightRecord, Vec<HighlightEvent>)> {
        self.inner.lock().expect("highlight poisoned")
    }

    pub fn record(&self) -> HighlightRecord {
        self.lock().0.clone()
    }

    pub fn emit(&self, event: HighlightEvent) {
        self.lock().1.push(event);
        self.changed.send_modify(|n| *n += 1);
    }

    fn finish(&self, outcome: &Result<HighlightResult>, bytes: u64) {
        {
            let mut inner = self.lock();
            let r = &mut inner.0;
            r.finished_unix_ms = Some(now_unix_ms());
            r.bytes = bytes;
            match outcome {
                Ok(result) => {
                    r.state = HighlightState::Succeeded;
                    r.result = Some(result.clone());
                }
                Err(e) => {
                    r.state = HighlightState::Failed;
                    r.error = Some((e.kind(), e.to_string()));
                }
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }
}

/// A highlight's events from the start, following it while it runs; then its outcome.
pub struct HighlightWatch {
    handle: Option<(Arc<HighlightHandle>, watch::Receiver<u64>)>,
    record: HighlightRecord,
    next: usize,
}

impl HighlightWatch {
    /// The next event, or `None` once the highlight has ended and every event was
    /// returned (then `outcome`).
    pub async fn next(&mut self) -> Option<HighlightEvent> {
        let (handle, rx) = self.handle.as_mut()?;
        loop {
            rx.borrow_and_update();
            let (event, record) = {
                let inner = handle.lock();
                (inner.1.get(self.next).cloned(), inner.0.clone())
            };
            if let Some(e) = event {
                self.next += 1;
                return Some(e);
            }
            if record.state != HighlightState::Running {
                self.record = record;
                return None;
            }
            if rx.changed().await.is_err() {
                self.record = handle.record();
                return None;
            }
        }
    }

    /// How the highlight ended (after `next` returned `None`): its result, or the kind
    /// and message of its failure.
    pub fn outcome(&self) -> std::result::Result<HighlightResult, (ErrorKind, String)> {
        let r = &self.record;
        match (&r.result, &r.error, r.state) {
            (Some(result), _, HighlightState::Succeeded) => Ok(result.clone()),
            (_, Some(error), _) => Err(error.clone()),
            _ => Err((
                ErrorKind::Internal,
                format!("highlight {} ended without a result", r.highlight_id),
            )),
        }
    }
}

/// The registry: records in sled, handles of running and recently finished highlights.
pub struct HighlightJobs {
    tree: sled::Tree,
    running: Mutex<HashMap<String, Arc<HighlightHandle>>>,
    recent: Mutex<VecDeque<Arc<HighlightHandle>>>,
}

impl HighlightJobs {
    /// Opens the records; those a stopped process left running become interrupted.
    pub fn open(db: &sled::Db) -> Result<HighlightJobs> {
        let tree = db.open_tree("highlight_records")?;
        let jobs = HighlightJobs {
            tree,
            running: Mutex::default(),
            recent: Mutex::default(),
        };
        for mut r in jobs.all()? {
            if r.state == HighlightState::Running {
                r.state = HighlightState::Interrupted;
                r.finished_unix_ms = Some(now_unix_ms());
                r.error = Some((
                    ErrorKind::Unavailable,
                    "the server stopped while this highlight ran; request it again".into(),
                ));
                jobs.put(&r)?;
            }
        }
        Ok(jobs)
    }

    fn put(&self, r: &HighlightRecord) -> Result<()> {
        self.tree
            .insert(r.highlight_id.as_bytes(), serde_json::to_vec(r)?)?;
        self.tree.flush()?;
        Ok(())
    }

    /// Every stored record.
    pub fn all(&self) -> Result<Vec<HighlightRecord>> {
        self.tree
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Registers a new running highlight (recorded durably before its first event).
    pub fn begin(&self, record: HighlightRecord) -> Result<Arc<HighlightHandle>> {
        self.put(&record)?;
        let handle = HighlightHandle::new(record.clone());
        self.running
            .lock()
            .expect("registry poisoned")
            .insert(record.highlight_id, handle.clone());
        Ok(handle)
    }

    /// Records how a highlight ended; its log stays in memory among the recent ones.
    pub fn end(
        &self,
        handle: &Arc<HighlightHandle>,
        outcome: &Result<HighlightResult>,
        bytes: u64,
    ) {
        handle.finish(outcome, bytes);
        let record = handle.record();
        if let Err(e) = self.put(&record) {
            tracing::error!(highlight = %record.highlight_id, "could not record the end: {e}");
        }
        let mut recent = self.recent.lock().expect("registry poisoned");
        recent.push_back(handle.clone());
        while recent.len() > RECENT_LOGS {
            recent.pop_front();
        }
        self.running
            .lock()
            .expect("registry poisoned")
            .remove(&record.highlight_id);
    }

    fn handle(&self, id: &str) -> Option<Arc<HighlightHandle>> {
        if let Some(h) = self.running.lock().expect("registry poisoned").get(id) {
            return Some(h.clone());
        }
        self.recent
            .lock()
            .expect("registry poisoned")
            .iter()
            .find(|h| h.lock().0.highlight_id == id)
            .cloned()
    }

    pub fn get(&self, id: &str) -> Result<HighlightRecord> {
        if let Some(h) = self.handle(id) {
            return Ok(h.record());
        }
        match self.tree.get(id.as_bytes())? {
            Some(v) => Ok(serde_json::from_slice(&v)?),
            None => Err(Error::not_found(format!(
                "no highlight with id {id} (see `reelforge highlights list`)"
            ))),
        }
    }

    /// Follows a highlight: its whole log when this process ran it, else its outcome.
    pub fn watch(&self, id: &str) -> Result<HighlightWatch> {
        if let Some(h) = self.handle(id) {
            let rx = h.changed.subscribe();
            return Ok(HighlightWatch {
                record: h.record(),
                handle: Some((h, rx)),
                next: 0,
            });
        }
        Ok(HighlightWatch {
            record: self.get(id)?,
            handle: None,
            next: 0,
        })
    }

    /// Forgets a finished highlight's record (its files are the caller's to remove).
    pub fn remove(&self, id: &str) -> Result<HighlightRecord> {
        let record = self.get(id)?;
        if record.state == HighlightState::Running {
            return Err(Error::FailedPrecondition(format!(
                "highlight {id} is still running; delete it once it has ended (watch it with `reelforge highlights watch {id}`)"
            )));
        }
        self.tree.remove(id.as_bytes())?;
        self.tree.flush()?;
        self.recent
            .lock()
            .expect("registry poisoned")
            .retain(|h| h.lock().0.highlight_id != id);
        Ok(record)
    }

    /// The finished highlights retention removes now: older than `max_age_ms` (0: no
    /// limit), then the oldest while the rest take more than `max_bytes` (0: no limit).
    pub fn expired(&self, now_ms: i64, max_age_ms: i64, max_bytes: u64) -> Result<Vec<String>> {
        let mut done: Vec<HighlightRecord> = self
            .all()?
            .into_iter()
            .filter(|r| r.state != HighlightState::Running)
            .collect();
        done.sort_by_key(|r| (r.created_unix_ms, r.highlight_id.clone()));
        let mut out = Vec::new();
        let mut total: u64 = done.iter().map(|r| r.bytes).sum();
        for r in &done {
            let too_old = max_age_ms > 0 && now_ms - r.created_unix_ms > max_age_ms;
            let too_big = max_bytes > 0 && total > max_bytes;
            if too_old || too_big {
                total -= r.bytes;
                out.push(r.highlight_id.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, created: i64, bytes: u64, state: HighlightState) -> HighlightRecord {
        HighlightRecord {
            tenant: crate::DEFAULT_TENANT.into(),
            key_id: None,
            highlight_id: id.into(),
            state,
            strategy: "sliced".into(),
            video_ids: vec![],
            created_unix_ms: created,
            finished_unix_ms: None,
            error: None,
            result: None,
            bytes,
            matching: None,
            category: None,
        }
    }

    #[test]
    fn retention_removes_the_old_then_the_oldest_over_the_size_limit_never_a_running_one() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let jobs = HighlightJobs::open(&db).unwrap();
        for (id, created, bytes) in [("a", 1_000, 10), ("b", 2_000, 10), ("c", 3_000, 10)] {
            jobs.put(&record(id, created, bytes, HighlightState::Succeeded))
                .unwrap();
        }
        jobs.put(&record("r", 0, 100, HighlightState::Running))
            .unwrap();
        // Age: older than 1.5 s at t = 3 s.
        assert_eq!(jobs.expired(3_000, 1_500, 0).unwrap(), vec!["a"]);
        // Size: 30 bytes kept within 15 means dropping a and b.
        assert_eq!(jobs.expired(3_000, 0, 15).unwrap(), vec!["a", "b"]);
        assert!(jobs.expired(3_000, 0, 0).unwrap().is_empty());
        // A running record left by a stopped process is interrupted at the next open.
        drop(jobs);
        let jobs = HighlightJobs::open(&db).unwrap();
        let r = jobs.get("r").unwrap();
        assert_eq!(r.state, HighlightState::Interrupted);
        let w = jobs.watch("r").unwrap();
        assert_eq!(w.outcome().unwrap_err().0, ErrorKind::Unavailable);
        assert_eq!(jobs.remove("a").unwrap().highlight_id, "a");
        assert!(matches!(jobs.get("a"), Err(Error::NotFound(_))));
    }
}
