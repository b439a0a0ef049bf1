//! A running ingest job: its replayable event log, its state, and its cancel switch.
//! Watchers read the log from any position and wait for more, so a slow or late watcher
//! never loses events and never slows the job.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::events::{IngestEvent, IngestSink};
use crate::store::{now_unix_ms, JobRecord, JobState};

pub struct JobHandle {
    record: Mutex<JobRecord>,
    /// Bumped on every change of `record`.
    changed: watch::Sender<u64>,
    pub(super) cancel: CancellationToken,
}

impl JobHandle {
    pub(super) fn new(record: JobRecord) -> Arc<Self> {
        Arc::new(JobHandle {
            record: Mutex::new(record),
            changed: watch::channel(0).0,
            cancel: CancellationToken::new(),
        })
    }

    pub fn id(&self) -> String {
        self.lock().job_id.clone()
    }

    pub fn snapshot(&self) -> JobRecord {
        self.lock().clone()
    }

    pub fn state(&self) -> JobState {
        self.lock().state
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobRecord> {
        self.record.lock().expect("job record poisoned")
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut JobRecord)) {
        f(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
    }

    pub(super) fn finish(&self, state: JobState, error: Option<String>) {
        self.update(|r| {
            r.state = state;
            r.error = error;
            r.finished_unix_ms = Some(now_unix_ms());
        });
    }

    /// Waits until the job reaches a final state.
    pub async fn wait(&self) -> JobState {
        let mut rx = self.changed.subscribe();
        loop {
            let state = self.state();
            if state.is_final() {
                return state;
            }
            if rx.changed().await.is_err() {
                return self.state();
            }
        }
    }
}

impl IngestSink for JobHandle {
    fn emit(&self, event: IngestEvent) {
        self.update(|r| {
            match &event {
                IngestEvent::Accepted { slices, .. } => r.slices_total = slices.len() as u32,
                IngestEvent::SliceFinished { .. } => r.slices_done += 1,
                _ => {}
            }
            r.events.push(event);
        });
    }
}

/// A job's events from the start: live (following a running job) or replayed from its
/// stored record.
pub struct JobEvents {
    job_id: String,
    source: Source,
    next: usize,
}

enum Source {
    Live(Arc<JobHandle>, watch::Receiver<u64>),
    Stored(VecDeque<IngestEvent>),
}

impl JobEvents {
    pub fn live(handle: Arc<JobHandle>) -> Self {
        let rx = handle.changed.subscribe();
        JobEvents {
            job_id: handle.id(),
            source: Source::Live(handle, rx),
            next: 0,
        }
    }

    pub fn stored(record: JobRecord) -> Self {
        JobEvents {
            job_id: record.job_id,
            source: Source::Stored(record.events.into()),
            next: 0,
        }
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The next event and its sequence number, or `None` once the job has ended and every
    /// event was returned.
    pub async fn next(&mut self) -> Option<(u64, IngestEvent)> {
        let seq = self.next as u64;
        match &mut self.source {
            Source::Stored(events) => {
                let e = events.pop_front()?;
                self.next += 1;
                Some((seq, e))
            }
            Source::Live(handle, rx) => loop {
                rx.borrow_and_update();
                let (event, done) = {
                    let r = handle.lock();
                    (r.events.get(self.next).cloned(), r.state.is_final())
                };
                if let Some(e) = event {
                    self.next += 1;
                    return Some((seq, e));
                }
                if done || rx.changed().await.is_err() {
                    return None;
                }
            },
        }
    }
}
