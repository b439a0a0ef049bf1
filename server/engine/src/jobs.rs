//! Ingest jobs: a running job's replayable event log, its state and its cancel switch
//! (`JobHandle`); the sink a job reports to (push-style, like ripgrep's `Sink`); and the
//! registry of jobs not yet final, persisted in the store (`Jobs`). Watchers read the log
//! from any position and wait for more, so a slow or late watcher never loses events and
//! never slows the job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use reelforge_core::error::{Error, ErrorKind, Result};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::{now_unix_ms, IngestEvent, JobKind, JobRecord, JobState, Store};
use crate::util::blocking;

/// The registry's key for one running job per kind and video.
fn video_key(kind: JobKind, video_id: &str) -> String {
    match kind {
        JobKind::Ingest => video_id.to_string(),
        JobKind::Bda => format!("bda:{video_id}"),
    }
}

pub struct JobHandle {
    record: Mutex<JobRecord>,
    /// Bumped on every change of `record`.
    changed: watch::Sender<u64>,
    pub(crate) cancel: CancellationToken,
}

impl JobHandle {
    pub(crate) fn new(record: JobRecord) -> Arc<Self> {
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

    /// Not final, and its last event is not the one that ends it.
    pub fn is_working(&self) -> bool {
        let r = self.lock();
        !r.state.is_final() && !r.events.last().is_some_and(IngestEvent::ends_job)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JobRecord> {
        self.record.lock().expect("job record poisoned")
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut JobRecord)) {
        f(&mut self.lock());
        self.changed.send_modify(|n| *n += 1);
    }

    pub(crate) fn finish(&self, state: JobState, error: Option<String>) {
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
                IngestEvent::Resumed { slices_kept, .. } => r.slices_done = *slices_kept,
                _ => {}
            }
            r.events.push(event);
        });
    }
}

/// Receives a job's events as they happen (push-style, like ripgrep's `Sink`).
pub trait IngestSink: Send + Sync {
    fn emit(&self, event: IngestEvent);
}

/// Collects events in memory, for tests and benchmarks.
#[derive(Default)]
pub struct CollectSink(pub Mutex<Vec<IngestEvent>>);

impl IngestSink for CollectSink {
    fn emit(&self, event: IngestEvent) {
        self.0.lock().expect("sink poisoned").push(event);
    }
}

impl CollectSink {
    pub fn events(&self) -> Vec<IngestEvent> {
        self.0.lock().expect("sink poisoned").clone()
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
    Stored(VecDeque<IngestEvent>, JobState, Option<String>),
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
            source: Source::Stored(record.events.into(), record.state, record.error),
            next: 0,
        }
    }

    pub fn job_id(&self) -> &str {
        &self.job_id
    }

    /// The job's state and error now (final once `next` has returned `None`).
    pub fn outcome(&self) -> (JobState, Option<String>) {
        match &self.source {
            Source::Live(handle, _) => {
                let r = handle.lock();
                (r.state, r.error.clone())
            }
            Source::Stored(_, state, error) => (*state, error.clone()),
        }
    }

    /// The next event and its sequence number, or `None` once the job has ended and every
    /// event was returned.
    pub async fn next(&mut self) -> Option<(u64, IngestEvent)> {
        let seq = self.next as u64;
        match &mut self.source {
            Source::Stored(events, ..) => {
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

/// Jobs not yet final, by job id and by video, and the store their records persist in.
pub struct Jobs {
    store: Store,
    running: Mutex<HashMap<String, Arc<JobHandle>>>,
    /// Running job id by video id: one ingest per video at a time.
    by_video: Mutex<HashMap<String, String>>,
    /// Jobs a previous process left unfinished, waiting for `Ingest::resume_interrupted`.
    to_resume: Mutex<Vec<JobRecord>>,
}

impl Jobs {
    /// The registry over `store`. Jobs a previous process left unfinished (it was killed,
    /// or shut down while they ran) are kept to resume when they carry their plan;
    /// older records without one are recorded as interrupted.
    pub fn open(store: Store) -> Result<Jobs> {
        let mut to_resume = Vec::new();
        for mut job in store.jobs()? {
            let unfinished = !job.state.is_final() || job.state == JobState::Interrupted;
            if unfinished && job.resume.is_some() {
                to_resume.push(job);
            } else if !job.state.is_final() {
                job.state = JobState::Interrupted;
                job.error = Some(match job.kind {
                    JobKind::Ingest => "the server stopped while this job ran; ingest again".into(),
                    JobKind::Bda => "the server stopped while this job ran; run it again".into(),
                });
                job.events.push(IngestEvent::Failed {
                    kind: ErrorKind::Unavailable,
                    message: job.error.clone().unwrap_or_default(),
                });
                job.finished_unix_ms = Some(now_unix_ms());
                store.put_job(&job)?;
            }
        }
        to_resume.sort_by_key(|j| j.created_unix_ms);
        Ok(Jobs {
            store,
            running: Mutex::default(),
            by_video: Mutex::default(),
            to_resume: Mutex::new(to_resume),
        })
    }

    /// The store generations jobs waiting to resume have written (kept by the start-up
    /// garbage collection), and their job ids (whose staging directories are kept).
    pub fn resumable(&self) -> (HashSet<(String, u32)>, HashSet<String>) {
        let waiting = self.to_resume.lock().expect("job registry poisoned");
        let generations = waiting
            .iter()
            .filter_map(|j| {
                let r = j.resume.as_ref()?;
                Some((r.prepared.video_id.clone(), r.generation?))
            })
            .collect();
        let ids = waiting.iter().map(|j| j.job_id.clone()).collect();
        (generations, ids)
    }

    /// Hands over the jobs waiting to resume, oldest first (once).
    pub fn take_resumable(&self) -> Vec<JobRecord> {
        std::mem::take(&mut *self.to_resume.lock().expect("job registry poisoned"))
    }

    /// The job with this id if it is not final yet.
    pub fn running(&self, job_id: &str) -> Option<Arc<JobHandle>> {
        self.running
            .lock()
            .expect("job registry poisoned")
            .get(job_id)
            .cloned()
    }

    /// The job of this kind still working on `video_id` now, if any: one that has
    /// reported its end (`Done`, `Failed`, `BdaImported`) is not, though it may still be
    /// recording it (a caller told "done" may act on the video at once).
    pub fn running_for(&self, kind: JobKind, video_id: &str) -> Option<Arc<JobHandle>> {
        let by_video = self.by_video.lock().expect("job registry poisoned");
        let job_id = by_video.get(&video_key(kind, video_id))?;
        self.running(job_id).filter(|h| h.is_working())
    }

    /// Registers a new job for its video, or returns the job of the same kind another
    /// request for the same video registered first (it won the race: follow it). A job
    /// whose log has ended but that is not unregistered yet is not followed (as in
    /// `running_for`): a request right after its end starts a job of its own.
    pub fn register(&self, handle: &Arc<JobHandle>) -> Option<Arc<JobHandle>> {
        let (job_id, key) = {
            let r = handle.lock();
            (r.job_id.clone(), video_key(r.kind, &r.video_id))
        };
        let mut by_video = self.by_video.lock().expect("job registry poisoned");
        if let Some(other) = by_video.get(&key) {
            if let Some(h) = self.running(other).filter(|h| h.is_working()) {
                return Some(h);
            }
        }
        by_video.insert(key, job_id.clone());
        self.running
            .lock()
            .expect("job registry poisoned")
            .insert(job_id, handle.clone());
        None
    }

    /// Forgets a job that has ended (after its record was persisted).
    pub fn unregister(&self, job_id: &str) {
        let removed = self
            .running
            .lock()
            .expect("job registry poisoned")
            .remove(job_id);
        if let Some(h) = removed {
            let key = {
                let r = h.lock();
                video_key(r.kind, &r.video_id)
            };
            let mut by_video = self.by_video.lock().expect("job registry poisoned");
            if by_video.get(&key).is_some_and(|id| id == job_id) {
                by_video.remove(&key);
            }
        }
    }

    /// Writes the job's record as it is now, durably (a caller holding a job id finds
    /// the job after a crash).
    pub async fn persist(&self, handle: &JobHandle) -> Result<()> {
        let store = self.store.clone();
        let record = handle.snapshot();
        blocking(move || {
            store.put_job(&record)?;
            store.flush()
        })
        .await
    }

    /// A job's events from the start, following it if it still runs.
    pub async fn watch(&self, job_id: &str) -> Result<JobEvents> {
        if let Some(h) = self.running(job_id) {
            return Ok(JobEvents::live(h));
        }
        Ok(JobEvents::stored(self.job(job_id).await?))
    }

    pub async fn job(&self, job_id: &str) -> Result<JobRecord> {
        if let Some(h) = self.running(job_id) {
            return Ok(h.snapshot());
        }
        let store = self.store.clone();
        let id = job_id.to_string();
        blocking(move || store.job(&id))
            .await?
            .ok_or_else(|| Error::not_found(format!("no job with id {job_id}")))
    }

    /// Jobs, newest first, without their event logs.
    pub async fn list(&self) -> Result<Vec<JobRecord>> {
        let store = self.store.clone();
        let mut jobs = blocking(move || store.jobs()).await?;
        let live: Vec<JobRecord> = self
            .running
            .lock()
            .expect("job registry poisoned")
            .values()
            .map(|h| h.snapshot())
            .collect();
        for job in live {
            if let Some(stored) = jobs.iter_mut().find(|j| j.job_id == job.job_id) {
                *stored = job;
            }
        }
        jobs.iter_mut().for_each(|j| {
            j.events.clear();
            j.resume = None;
        });
        jobs.sort_by_key(|j| std::cmp::Reverse(j.created_unix_ms));
        Ok(jobs)
    }

    /// Cancels a queued or running job and waits for it to stop; a finished job is
    /// returned as it is.
    pub async fn cancel(&self, job_id: &str) -> Result<JobRecord> {
        match self.running(job_id) {
            Some(h) => {
                h.cancel.cancel();
                h.wait().await;
                Ok(h.snapshot())
            }
            None => self.job(job_id).await,
        }
    }

    /// Cancels every running job (shutdown).
    pub fn cancel_all(&self) {
        let running: Vec<Arc<JobHandle>> = self
            .running
            .lock()
            .expect("job registry poisoned")
            .values()
            .cloned()
            .collect();
        for h in &running {
            h.cancel.cancel();
        }
    }
}
