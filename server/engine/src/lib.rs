//! reelforge-engine: the services that do reelforge's work, composed once by
//! `Engine::open`:
//!
//! - `Ingest` (`ingest`): uploads, server-side paths, jobs through the one decode pass into
//!   the video store, Bedrock Data Automation results;
//! - `Catalog` (`catalog`): stored videos and jobs, deletes, start-up checks;
//! - `Search` (`search`): checked requests run against the search backend with the
//!   configured models; the index kept in step with the store;
//! - `Highlights` (`highlights`): strategies, post-processing, render, timelines;
//! - `Library` (`library`): the highlight library Template matches against;
//! - `Feedback` (`feedback`): ratings of segments and hits, and the category defaults
//!   they tune.
//!
//! Below them: the video store (`store`), API keys (`keys`), ingest jobs (`jobs`) and
//! `util`. The engine
//! knows nothing of gRPC; the server's API layer converts and calls these services.

pub mod catalog;
pub mod config;
pub mod feedback;
pub mod highlights;
pub mod ingest;
pub mod jobs;
pub mod keys;
pub mod library;
pub mod limits;
pub mod search;
pub mod store;
pub mod util;
pub mod watch;

use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_models::Providers;
use reelforge_search::{SearchBackend, SearchIndex};

pub use catalog::Catalog;
pub use config::EngineConfig;
pub use feedback::Feedback;
pub use highlights::Highlights;
pub use ingest::Ingest;
pub use keys::Keys;
pub use library::Library;
pub use limits::Limits;
pub use search::Search;

/// The tenant of callers without a key and of everything stored before tenants existed.
pub const DEFAULT_TENANT: &str = "default";

const TENANT_NAME_MAX: usize = 64;

/// Whose records a listing shows: one tenant's (a caller's own, or the one an admin
/// names) or every tenant's (an admin's `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantView {
    One(String),
    All,
}

impl TenantView {
    /// The view a request's `tenant` field asks for: empty is `own`, `*` every tenant.
    pub fn parse(requested: &str, own: &str) -> Result<TenantView> {
        match requested.trim() {
            "" => Ok(TenantView::One(own.to_string())),
            "*" => Ok(TenantView::All),
            name => {
                check_tenant(name)?;
                Ok(TenantView::One(name.to_string()))
            }
        }
    }

    /// Whether a record of `owner`'s is in view.
    pub fn sees(&self, owner: &str) -> bool {
        match self {
            TenantView::One(tenant) => tenant == owner,
            TenantView::All => true,
        }
    }

    /// Whether it shows another tenant's records than `own`.
    pub fn crosses(&self, own: &str) -> bool {
        !matches!(self, TenantView::One(t) if t == own)
    }
}

impl std::fmt::Display for TenantView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TenantView::One(tenant) => f.write_str(tenant),
            TenantView::All => f.write_str("*"),
        }
    }
}

/// Tenant names: what ids and paths can carry (they name directories).
pub fn check_tenant(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= TENANT_NAME_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "tenant {name:?} must be 1-{TENANT_NAME_MAX} letters, digits, '-' or '_', starting with a letter or digit"
        )))
    }
}

use jobs::Jobs;
use library::LibraryStore;
use store::Store;

/// Every service, composed over one store.
#[derive(Clone)]
pub struct Engine {
    pub ingest: Arc<Ingest>,
    pub catalog: Arc<Catalog>,
    pub search: Arc<Search>,
    pub highlights: Arc<Highlights>,
    pub library: Arc<Library>,
    pub feedback: Arc<Feedback>,
    pub watch: Arc<watch::Watch>,
    pub keys: Arc<Keys>,
    pub limits: Arc<Limits>,
    pub about: Arc<About>,
    store: Store,
}

/// What the engine runs, for callers to check (`Admin.GetServerInfo`, `reelforge doctor`).
#[derive(Debug, Clone)]
pub struct About {
    /// Each model role and the provider's name (`None`: off).
    pub models: Vec<(&'static str, Option<String>)>,
    pub ffmpeg: String,
    pub ffprobe: String,
    pub search_backend: &'static str,
    /// The codes of the languages the speech model transcribes (empty: none).
    pub speech_languages: Vec<String>,
    /// `ingest.language` ("" or "auto": the model tells).
    pub ingest_language: String,
}

impl About {
    /// The first line of `<tool> -version`, run now (a tool removed or broken since the
    /// start shows here).
    pub async fn tool_version(tool: &str) -> Result<String> {
        let mut cmd = tokio::process::Command::new(tool);
        cmd.arg("-version");
        let out = reelforge_media::process::output(cmd, tool, "its version").await?;
        Ok(String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string())
    }
}

impl Engine {
    /// Opens the store under `config.data_dir` (jobs a previous process left unfinished
    /// are recorded as interrupted, what interrupted ingests left is collected, temporary
    /// files are cleared) and composes the services with `providers`.
    pub fn open(config: EngineConfig, providers: Providers) -> Result<Engine> {
        Self::open_with(config, providers, false)
    }

    /// As `open`, with an empty search index, for `reindex`: every video is then ingested
    /// again with the configured models and indexed afresh.
    pub fn open_to_reindex(config: EngineConfig, providers: Providers) -> Result<Engine> {
        Self::open_with(config, providers, true)
    }

    fn open_with(config: EngineConfig, providers: Providers, reset_search: bool) -> Result<Engine> {
        config.validate()?;
        // The configured defaults must suit the loaded models (ingest.language).
        ingest::IngestOptions::default()
            .resolve(&config.ingest, providers.transcriber.as_deref())?;
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("db"), config.store_cache_mb << 20)?;
        let jobs = Arc::new(Jobs::open(store.clone())?);
        let keys = Arc::new(Keys::open(store.db())?);
        let (keep_generations, keep_jobs) = jobs.resumable();
        let _ = std::fs::remove_dir_all(config.data_dir.join("uploads"));
        remove_staging_except(&config.data_dir.join("staging"), &keep_jobs);
        let collected = store.collect_garbage(&keep_generations)?;
        if collected > 0 {
            tracing::info!("removed {collected} records that interrupted ingests left behind");
        }
        // The search index's graphs are saved beside the store.
        let graphs = config.data_dir.join("search");
        if reset_search && config.search.backend == "embedded" {
            SearchIndex::drop_all(store.db(), Some(&graphs))?;
        }
        let backend: Arc<dyn SearchBackend> = match config.search.backend.as_str() {
            "milvus" => Arc::new(reelforge_milvus::MilvusBackend::new(
                &config.search.milvus,
                store.db(),
                providers.text_embedder.dimensions(),
                providers.image_embedder.as_ref().map(|e| e.dimensions()),
                reset_search,
            )?),
            _ => Arc::new(SearchIndex::open(store.db(), Some(&graphs))?),
        };
        let backend_name = backend.name();
        let search = Arc::new(Search::new(
            backend,
            store.clone(),
            providers.text_embedder.clone(),
            providers.reranker.clone(),
            providers.image_embedder.clone(),
        ));
        let catalog = Arc::new(Catalog::new(
            store.clone(),
            jobs.clone(),
            search.clone(),
            providers.text_embedder.clone(),
            config.data_dir.join("media"),
        ));
        let library = Arc::new(Library::new(
            LibraryStore::open(store.db())?,
            catalog.clone(),
            providers.text_embedder.clone(),
            providers.video_embedder.clone(),
        ));
        let highlights = Arc::new(Highlights::new(
            &config,
            store.db(),
            catalog.clone(),
            search.clone(),
            library.clone(),
            providers.clone(),
        )?);
        let feedback = Arc::new(Feedback::new(
            store.db(),
            catalog.clone(),
            highlights.clone(),
            library.clone(),
        )?);
        let limits = Arc::new(Limits::new(
            store.db(),
            &config,
            catalog.clone(),
            highlights.clone(),
        )?);
        let about = Arc::new(About {
            models: providers.roles(),
            ffmpeg: config.ffmpeg.clone(),
            ffprobe: config.ffprobe.clone(),
            search_backend: backend_name,
            speech_languages: providers
                .transcriber
                .as_ref()
                .map(|t| t.languages())
                .unwrap_or_default(),
            ingest_language: config.ingest.language.clone(),
        });
        let bedrock = config.models.bedrock.clone();
        let (watch_config, roots, data_dir) = (
            config.watch.clone(),
            config.allowed_roots.clone(),
            config.data_dir.clone(),
        );
        let ingest = Ingest::new(config, store.clone(), jobs, search.clone(), providers);
        let watch = Arc::new(watch::Watch::new(
            &watch_config,
            &roots,
            store.db(),
            ingest.clone(),
            catalog.clone(),
            &bedrock,
            &data_dir,
        )?);
        Ok(Engine {
            keys,
            limits,
            about,
            feedback,
            watch,
            ingest,
            catalog,
            search,
            highlights,
            library,
            store,
        })
    }

    /// The API keys of the store under `config.data_dir`, without the models or the
    /// other services: key management while the server is stopped (a running server
    /// holds the store; its Admin service manages keys then).
    pub fn open_keys(config: &EngineConfig) -> Result<Keys> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store = Store::open(&config.data_dir.join("db"), config.store_cache_mb << 20)?;
        Keys::open(store.db())
    }

    /// Continues the ingest jobs a previous process left unfinished (call once, after
    /// `open`, on the runtime).
    pub async fn resume_jobs(&self) {
        self.ingest.resume_interrupted().await;
    }

    /// Starts ingesting what arrives in the watched folders and S3 prefixes (`[watch]`;
    /// call once, after `resume_jobs`).
    pub fn start_watching(&self) {
        self.watch.start();
    }

    /// Stops accepting work, interrupts running jobs (recording them as interrupted, to
    /// resume at the next start) and flushes the store.
    pub async fn shutdown(&self) {
        self.watch.stop();
        self.ingest.shutdown().await;
        if let Err(e) = self.search.backend().close().await {
            tracing::warn!("cannot save the search index's graphs: {e}");
        }
        if let Err(e) = self.limits.save_spend() {
            tracing::warn!("cannot record Bedrock spending: {e}");
        }
    }

    /// Writes everything to disk.
    pub fn flush(&self) -> Result<()> {
        self.store.flush()
    }
}

/// Removes job staging directories (thumbnails, uploaded sources) of jobs that will not
/// resume.
fn remove_staging_except(staging: &std::path::Path, keep: &std::collections::HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(staging) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
