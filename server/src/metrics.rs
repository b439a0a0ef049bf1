//! Prometheus metrics on their own HTTP port (`metrics_listen`, off by default): every
//! RPC's count by gRPC status and its latency (a tower layer around the services, so no
//! handler records them itself), and search stage by stage (queue wait, embed, BM25,
//! vectors, fuse, rerank, total) with the query cache and the embedding batch sizes; and,
//! read from the engine at each scrape, jobs by state, stored videos and their seconds,
//! the index's documents and vectors by backend, the store's bytes on disk, seconds of
//! video ingested and the wall seconds that took (their ratio is the ingest speed), and
//! Bedrock calls, retries, throttled attempts, errors, tokens and bytes per model (from
//! the SDK interceptor in `reelforge_models::bedrock::telemetry`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus::{
    exponential_buckets, Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use reelforge_engine::search::SearchTimings;
use reelforge_engine::{Catalog, Ingest, Search};
use reelforge_models::bedrock::telemetry;

use crate::codes::{code_name, response_code};
use tokio::net::TcpListener;

pub struct Metrics {
    registry: Registry,
    rpcs: IntCounterVec,
    rpc_seconds: HistogramVec,
    search_seconds: HistogramVec,
    query_vectors: IntCounterVec,
    embed_batch: Histogram,
    /// Read at each scrape from what the engine holds.
    stored: Stored,
    /// Counters kept elsewhere (the ingest service, the Bedrock interceptor), brought up
    /// to their value at each scrape.
    counted: Counted,
    sources: OnceLock<(Arc<Catalog>, Arc<Search>, Arc<Ingest>)>,
}

/// Counters whose source of truth lives outside this module.
struct Counted {
    ingest_jobs: prometheus::IntCounter,
    ingest_video_seconds: prometheus::Counter,
    ingest_analysis_seconds: prometheus::Counter,
    /// By model and what: calls, retries, throttled, errors.
    bedrock_calls: IntCounterVec,
    /// By model and direction (input, output).
    bedrock_tokens: IntCounterVec,
    /// By model and direction (sent, received).
    bedrock_bytes: IntCounterVec,
}

impl Counted {
    fn new() -> Counted {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        Counted {
            ingest_jobs: prometheus::IntCounter::new(
                "reelforge_ingest_jobs_succeeded_total",
                "Ingest jobs this process finished",
            )
            .expect("valid metric"),
            ingest_video_seconds: prometheus::Counter::new(
                "reelforge_ingest_video_seconds_total",
                "Seconds of video this process analysed",
            )
            .expect("valid metric"),
            ingest_analysis_seconds: prometheus::Counter::new(
                "reelforge_ingest_analysis_seconds_total",
                "Wall seconds that analysis took (video seconds / these = ingest speed)",
            )
            .expect("valid metric"),
            bedrock_calls: counter(
                "reelforge_bedrock_requests_total",
                "Bedrock requests by model and outcome: call (an operation), retry (an attempt after the first), throttled and error (attempts)",
                &["model", "kind"],
            ),
            bedrock_tokens: counter(
                "reelforge_bedrock_tokens_total",
                "Bedrock tokens by model and direction (input, output)",
                &["model", "direction"],
            ),
            bedrock_bytes: counter(
                "reelforge_bedrock_bytes_total",
                "Bytes of Bedrock requests and answers by model and direction (sent, received)",
                &["model", "direction"],
            ),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.ingest_jobs.clone()),
            Box::new(self.ingest_video_seconds.clone()),
            Box::new(self.ingest_analysis_seconds.clone()),
            Box::new(self.bedrock_calls.clone()),
            Box::new(self.bedrock_tokens.clone()),
            Box::new(self.bedrock_bytes.clone()),
        ]
    }

    /// Brings every counter up to its source's value (sources only grow).
    fn refresh(&self, ingest: &Ingest) {
        let t = ingest.totals();
        self.ingest_jobs
            .inc_by(t.jobs_succeeded.saturating_sub(self.ingest_jobs.get()));
        let up = |c: &prometheus::Counter, to: f64| {
            let by = to - c.get();
            if by > 0.0 {
                c.inc_by(by);
            }
        };
        up(&self.ingest_video_seconds, t.video_seconds);
        up(&self.ingest_analysis_seconds, t.analysis_seconds);
        let set = |v: &IntCounterVec, labels: &[&str], to: u64| {
            let c = v.with_label_values(labels);
            c.inc_by(to.saturating_sub(c.get()));
        };
        for (model, c) in telemetry::snapshot() {
            let m = model.as_str();
            set(&self.bedrock_calls, &[m, "call"], c.calls);
            set(&self.bedrock_calls, &[m, "retry"], c.retries);
            set(&self.bedrock_calls, &[m, "throttled"], c.throttled);
            set(&self.bedrock_calls, &[m, "error"], c.errors);
            set(&self.bedrock_tokens, &[m, "input"], c.input_tokens);
            set(&self.bedrock_tokens, &[m, "output"], c.output_tokens);
            set(&self.bedrock_bytes, &[m, "sent"], c.bytes_sent);
            set(&self.bedrock_bytes, &[m, "received"], c.bytes_received);
        }
    }
}

/// Gauges of what is stored, set at scrape time.
struct Stored {
    jobs: IntGaugeVec,
    videos: IntGauge,
    video_seconds: Gauge,
    index_documents: IntGaugeVec,
    index_vectors: IntGaugeVec,
    store_bytes: IntGauge,
}

impl Stored {
    fn new() -> Stored {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        Stored {
            jobs: IntGaugeVec::new(
                Opts::new("reelforge_jobs", "Jobs in the store by kind and state"),
                &["kind", "state"],
            )
            .expect("valid metric"),
            videos: gauge("reelforge_videos", "Stored videos"),
            video_seconds: Gauge::new(
                "reelforge_video_seconds",
                "Seconds of video stored (ingested and kept)",
            )
            .expect("valid metric"),
            index_documents: IntGaugeVec::new(
                Opts::new("reelforge_index_documents", "Search documents by backend"),
                &["backend"],
            )
            .expect("valid metric"),
            index_vectors: IntGaugeVec::new(
                Opts::new(
                    "reelforge_index_vectors",
                    "Vectors held for nearest-neighbour search, by backend",
                ),
                &["backend"],
            )
            .expect("valid metric"),
            store_bytes: gauge(
                "reelforge_store_bytes",
                "Bytes of the sled store on disk (the embedded index shares it)",
            ),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.jobs.clone()),
            Box::new(self.videos.clone()),
            Box::new(self.video_seconds.clone()),
            Box::new(self.index_documents.clone()),
            Box::new(self.index_vectors.clone()),
            Box::new(self.store_bytes.clone()),
        ]
    }
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        // 0.1 ms to ~105 s.
        let seconds = exponential_buckets(1e-4, 2.0, 21).expect("valid buckets");
        let rpcs = IntCounterVec::new(
            Opts::new(
                "reelforge_rpc_requests_total",
                "RPCs by method and gRPC status",
            ),
            &["rpc", "code"],
        )
        .expect("valid metric");
        let rpc_seconds = HistogramVec::new(
            HistogramOpts::new(
                "reelforge_rpc_seconds",
                "Time to an RPC's response headers (a stream's first message)",
            )
            .buckets(seconds.clone()),
            &["rpc"],
        )
        .expect("valid metric");
        let search_seconds = HistogramVec::new(
            HistogramOpts::new(
                "reelforge_search_stage_seconds",
                "Search time by stage: queue (waiting for the embedding model), embed (queue included), bm25, vectors, fuse, rerank, total",
            )
            .buckets(seconds),
            &["stage"],
        )
        .expect("valid metric");
        let query_vectors = IntCounterVec::new(
            Opts::new(
                "reelforge_search_query_vectors_total",
                "Query vectors by where they came from: cache or model",
            ),
            &["source"],
        )
        .expect("valid metric");
        let embed_batch = Histogram::with_opts(
            HistogramOpts::new(
                "reelforge_search_embed_batch_queries",
                "Queries embedded in the same model call as a search's",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0]),
        )
        .expect("valid metric");
        let stored = Stored::new();
        let counted = Counted::new();
        let mut all: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(rpcs.clone()),
            Box::new(rpc_seconds.clone()),
            Box::new(search_seconds.clone()),
            Box::new(query_vectors.clone()),
            Box::new(embed_batch.clone()),
        ];
        all.extend(stored.collectors());
        all.extend(counted.collectors());
        for m in all {
            registry.register(m).expect("metrics registered once");
        }
        Arc::new(Metrics {
            registry,
            rpcs,
            rpc_seconds,
            search_seconds,
            query_vectors,
            embed_batch,
            stored,
            counted,
            sources: OnceLock::new(),
        })
    }

    /// Where the stored gauges are read from at each scrape.
    pub fn watch(&self, catalog: Arc<Catalog>, search: Arc<Search>, ingest: Arc<Ingest>) {
        let _ = self.sources.set((catalog, search, ingest));
    }

    /// Sets the stored gauges from the engine (a failed read leaves its gauge as it was
    /// and is logged: a scrape never fails for it).
    async fn refresh(&self) {
        let Some((catalog, search, ingest)) = self.sources.get() else {
            return;
        };
        self.counted.refresh(ingest);
        let s = &self.stored;
        match catalog.jobs().list().await {
            Ok(jobs) => {
                s.jobs.reset();
                for job in jobs {
                    let state = format!("{:?}", job.state).to_lowercase();
                    s.jobs.with_label_values(&[job.kind.name(), &state]).inc();
                }
            }
            Err(e) => tracing::warn!("metrics: cannot list jobs: {e}"),
        }
        match catalog.videos().await {
            Ok(videos) => {
                s.videos.set(videos.len() as i64);
                let ms: i64 = videos.iter().map(|v| v.probe.duration_ms).sum();
                s.video_seconds.set(ms as f64 / 1000.0);
            }
            Err(e) => tracing::warn!("metrics: cannot list videos: {e}"),
        }
        let backend = search.backend();
        match backend.stats().await {
            Ok(stats) => {
                s.index_documents
                    .with_label_values(&[backend.name()])
                    .set(stats.documents as i64);
                s.index_vectors
                    .with_label_values(&[backend.name()])
                    .set(stats.vectors as i64);
            }
            Err(e) => tracing::warn!("metrics: cannot read the index's size: {e}"),
        }
        match catalog.store_bytes().await {
            Ok(bytes) => s.store_bytes.set(bytes as i64),
            Err(e) => tracing::warn!("metrics: cannot read the store's size: {e}"),
        }
    }

    /// Records one search's stages.
    pub fn search(&self, t: &SearchTimings) {
        for (stage, ms) in [
            ("queue", t.queue_ms),
            ("embed", t.embed_ms),
            ("bm25", t.bm25_ms),
            ("vectors", t.vector_ms),
            ("fuse", t.fuse_ms),
            ("rerank", t.rerank_ms),
            ("total", t.total_ms),
        ] {
            self.search_seconds
                .with_label_values(&[stage])
                .observe(ms / 1000.0);
        }
        let source = if t.query_cached { "cache" } else { "model" };
        self.query_vectors.with_label_values(&[source]).inc();
        if t.embed_batch > 0 {
            self.embed_batch.observe(t.embed_batch as f64);
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("metrics encode as text");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move {
                metrics.refresh().await;
                (
                    [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
                    metrics.render(),
                )
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Counts and times every RPC (a tower layer around the gRPC services).
#[derive(Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let rpc = route_label(req.uri().path());
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await;
            if let Ok(r) = &response {
                // A failed call answers with its status in the headers; a stream that
                // starts counts as OK (its later failure travels in the trailers).
                let code = response_code(r.headers()).map_or("OK", code_name);
                metrics.rpcs.with_label_values(&[&rpc, code]).inc();
                metrics
                    .rpc_seconds
                    .with_label_values(&[&rpc])
                    .observe(started.elapsed().as_secs_f64());
            }
            response
        })
    }
}

/// The label a request is counted under, from a bounded set whatever callers send: an
/// RPC's own name, a health or reflection service, the web page's routes without their
/// ids (`web /media/videos/source`), else `unknown`.
fn route_label(path: &str) -> String {
    if crate::auth::ROLES.iter().any(|(p, _)| *p == path) {
        return path.trim_start_matches('/').to_string();
    }
    for service in crate::auth::OPEN_SERVICES {
        if path.starts_with(service) {
            return service.trim_matches('/').to_string();
        }
    }
    let parts: Vec<&str> = path.split('/').collect();
    let route = match parts.as_slice() {
        ["", "media", "videos", _, "source"] => "/media/videos/source",
        ["", "media", "videos", _, "frames", _] => "/media/videos/frames",
        ["", "media", "highlights", _, _] => "/media/highlights/file",
        ["", "api", "upload"] => "/api/upload",
        ["", "api", "session"] => "/api/session",
        ["", ""] | ["", "app.js"] | ["", "app.css"] | ["", "favicon.ico"] => "/ (the page)",
        _ => return "unknown".to_string(),
    };
    format!("web {route}")
}

#[cfg(test)]
mod route_tests {
    use super::route_label;

    #[test]
    fn labels_stay_bounded_whatever_the_path() {
        assert_eq!(
            route_label("/reelforge.v1.Search/Search"),
            "reelforge.v1.Search/Search"
        );
        assert_eq!(route_label("/reelforge.v1.Search/Nope123"), "unknown");
        assert_eq!(
            route_label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health"
        );
        assert_eq!(
            route_label("/media/videos/0123456789abcdef/frames/20000.jpg"),
            "web /media/videos/frames"
        );
        assert_eq!(
            route_label("/media/highlights/x/reel.mp4"),
            "web /media/highlights/file"
        );
        assert_eq!(route_label("/"), "web / (the page)");
        assert_eq!(route_label("/etc/passwd"), "unknown");
    }
}
