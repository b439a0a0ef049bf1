//! Query vectors for search. A query is embedded once per search and the vector handed to
//! every stage that needs it (vector recall, the reranker); recent queries' vectors are
//! kept in an LRU cache keyed by embedder and text; and for a local model, queries of
//! concurrent callers are embedded together in one model call (a batch of 16 short texts
//! costs little more than one), by one worker that takes what is queued, waits a few
//! hundred microseconds for more, and runs the batch while the next one queues. Remote
//! embedders (Bedrock) take one text per call and keep their own concurrency, so their
//! queries go straight to them.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lru::LruCache;
use reelforge_core::error::{Error, Result};
use reelforge_models::{EmbedPurpose, TextEmbedder};
use tokio::sync::{mpsc, oneshot};

/// Recent queries whose vectors are kept.
const CACHE_ENTRIES: usize = 4_096;
/// Most queries one model call embeds.
const MAX_BATCH: usize = 32;
/// How long the worker waits for more queries once one has arrived.
const BATCH_WINDOW: Duration = Duration::from_micros(300);
/// Queries waiting for the worker before callers wait to queue.
const QUEUE: usize = 1_024;

/// A query's vector and what getting it cost.
#[derive(Debug, Clone)]
pub struct QueryVector {
    pub vector: Arc<[f32]>,
    /// From the cache: no model call.
    pub cached: bool,
    /// Waiting for the model (queued behind other queries or a running batch), ms.
    pub queue_ms: f64,
    /// Queued and embedded, ms (0 when cached).
    pub embed_ms: f64,
    /// Queries in the model call that embedded it (0 when cached).
    pub batch: usize,
}

type Reply = oneshot::Sender<Result<(Arc<[f32]>, f64, usize)>>;

struct Pending {
    text: String,
    queued: Instant,
    reply: Reply,
}

pub struct QueryEmbedder {
    embedder: Arc<dyn TextEmbedder>,
    cache: Mutex<LruCache<String, Arc<[f32]>>>,
    /// The batching worker's queue, started on first use (it needs the runtime).
    worker: OnceLock<mpsc::Sender<Pending>>,
}

impl QueryEmbedder {
    pub fn new(embedder: Arc<dyn TextEmbedder>) -> QueryEmbedder {
        QueryEmbedder {
            embedder,
            cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).expect("a positive capacity"),
            )),
            worker: OnceLock::new(),
        }
    }

    fn key(&self, text: &str) -> String {
        format!("{}\u{0}{text}", self.embedder.name())
    }

    /// The vector of `text` as a query.
    pub async fn embed(&self, text: &str) -> Result<QueryVector> {
        let key = self.key(text);
        if let Some(v) = self.cache.lock().expect("query cache poisoned").get(&key) {
            return Ok(QueryVector {
                vector: v.clone(),
                cached: true,
                queue_ms: 0.0,
                embed_ms: 0.0,
                batch: 0,
            });
        }
        let started = Instant::now();
        let (vector, queue_ms, batch) = if self.embedder.batch_queries() {
            let (reply, answer) = oneshot::channel();
            let pending = Pending {
                text: text.to_string(),
                queued: started,
                reply,
            };
            self.queue()
                .send(pending)
                .await
                .map_err(|_| Error::Unavailable("the query embedder has stopped".into()))?;
            answer
                .await
                .map_err(|_| Error::Unavailable("the query embedder has stopped".into()))??
        } else {
            let mut out = self
                .embedder
                .embed(&[text.to_string()], EmbedPurpose::Query)
                .await?;
            (Arc::from(out.remove(0).vector), 0.0, 1)
        };
        self.cache
            .lock()
            .expect("query cache poisoned")
            .put(key, vector.clone());
        Ok(QueryVector {
            vector,
            cached: false,
            queue_ms,
            embed_ms: started.elapsed().as_secs_f64() * 1000.0,
            batch,
        })
    }

    fn queue(&self) -> &mpsc::Sender<Pending> {
        self.worker.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(run_batches(self.embedder.clone(), rx));
            tx
        })
    }
}

/// The batching worker: one model call at a time, each with every query that queued.
async fn run_batches(embedder: Arc<dyn TextEmbedder>, mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(p)) => batch.push(p),
                        _ => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            }
        }
        // Identical queries in one batch are embedded once.
        let mut texts: Vec<String> = Vec::with_capacity(batch.len());
        let slots: Vec<usize> = batch
            .iter()
            .map(|p| match texts.iter().position(|t| *t == p.text) {
                Some(i) => i,
                None => {
                    texts.push(p.text.clone());
                    texts.len() - 1
                }
            })
            .collect();
        let started = Instant::now();
        let result = embedder.embed(&texts, EmbedPurpose::Query).await;
        let size = texts.len();
        match result {
            Ok(vectors) => {
                let vectors: Vec<Arc<[f32]>> =
                    vectors.into_iter().map(|e| Arc::from(e.vector)).collect();
                for (p, slot) in batch.into_iter().zip(slots) {
                    let queue_ms = (started - p.queued).as_secs_f64() * 1000.0;
                    let _ = p.reply.send(Ok((vectors[slot].clone(), queue_ms, size)));
                }
            }
            Err(e) => {
                for p in batch {
                    let _ = p.reply.send(Err(e.duplicate()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use reelforge_core::BoxFuture;
    use reelforge_models::TextEmbedding;

    use super::*;

    /// Counts model calls and texts; a text's vector is its length.
    struct Counting {
        calls: AtomicUsize,
        texts: AtomicUsize,
        batch: bool,
    }

    impl TextEmbedder for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn dimensions(&self) -> usize {
            1
        }
        fn batch_queries(&self) -> bool {
            self.batch
        }
        fn embed<'a>(
            &'a self,
            texts: &'a [String],
            _: EmbedPurpose,
        ) -> BoxFuture<'a, Result<Vec<TextEmbedding>>> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                self.texts.fetch_add(texts.len(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(texts
                    .iter()
                    .map(|t| TextEmbedding {
                        vector: vec![t.len() as f32],
                        truncated: false,
                    })
                    .collect())
            })
        }
    }

    fn counting(batch: bool) -> Arc<Counting> {
        Arc::new(Counting {
            calls: AtomicUsize::new(0),
            texts: AtomicUsize::new(0),
            batch,
        })
    }

    #[tokio::test]
    async fn concurrent_queries_share_model_calls_and_repeats_come_from_the_cache() {
        let model = counting(true);
        let q = Arc::new(QueryEmbedder::new(model.clone()));
        let handles: Vec<_> = (0..20)
            .map(|i| {
                let q = q.clone();
                tokio::spawn(async move { q.embed(&"x".repeat(i + 1)).await.unwrap() })
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            let v = h.await.unwrap();
            assert_eq!(
                &*v.vector,
                &[(i + 1) as f32],
                "each caller gets its own vector"
            );
            assert!(!v.cached);
        }
        let calls = model.calls.load(Ordering::SeqCst);
        assert!(calls < 20, "20 concurrent queries took {calls} model calls");
        assert_eq!(model.texts.load(Ordering::SeqCst), 20);
        let again = q.embed("xxx").await.unwrap();
        assert!(again.cached && again.batch == 0);
        assert_eq!(model.calls.load(Ordering::SeqCst), calls, "no model call");
    }

    #[tokio::test]
    async fn a_remote_embedder_gets_one_call_per_query() {
        let model = counting(false);
        let q = QueryEmbedder::new(model.clone());
        let v = q.embed("hello").await.unwrap();
        assert_eq!((v.batch, v.cached), (1, false));
        assert_eq!(model.calls.load(Ordering::SeqCst), 1);
    }
}
