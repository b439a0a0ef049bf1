//! The search service: a request checked once (`request`), run stage by stage against the
//! search backend with the configured models (`query`), and the index kept in step with
//! the video store (`indexer`, `reconcile`).

pub mod embed;
pub mod indexer;
pub mod query;
pub mod request;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reelforge_core::error::{Error, Result};
use reelforge_models::{ImageTextEmbedder, Reranker, TextEmbedder};
use reelforge_search::SearchBackend;

pub use query::{SearchHit, SearchModels, SearchTimings, StageScores};
pub use request::{FusionRequest, Mode, Query, SearchRequest, MAX_QUERY_CHARS, MAX_TOP_K};

use crate::store::Store;
use crate::util::blocking;
use embed::QueryEmbedder;

pub struct Search {
    backend: Arc<dyn SearchBackend>,
    /// Read only: which videos exist and their file names.
    store: Store,
    /// Documents are embedded with it when indexed.
    text_embedder: Arc<dyn TextEmbedder>,
    /// Queries: the same model, cached and batched across callers.
    queries: QueryEmbedder,
    reranker: Arc<dyn Reranker>,
    image_embedder: Option<Arc<dyn ImageTextEmbedder>>,
    /// Each tenant's video ids, read from the store when first needed after a change of
    /// the index (with a version, so a map read before a change is never kept after it).
    owners: Mutex<(u64, Option<Arc<Owners>>)>,
    /// A write to the backend failed (a remote backend lost): the index lags the store
    /// until a reconcile succeeds (`keep_in_step`).
    behind: AtomicBool,
}

/// How often `keep_in_step` retries a reconcile after a failed write.
const CATCH_UP_EVERY: Duration = Duration::from_secs(5);

/// Tenant → its video ids.
type Owners = HashMap<String, HashSet<String>>;

impl Search {
    pub fn new(
        backend: Arc<dyn SearchBackend>,
        store: Store,
        text_embedder: Arc<dyn TextEmbedder>,
        reranker: Arc<dyn Reranker>,
        image_embedder: Option<Arc<dyn ImageTextEmbedder>>,
    ) -> Search {
        Search {
            backend,
            store,
            queries: QueryEmbedder::new(text_embedder.clone()),
            text_embedder,
            reranker,
            image_embedder,
            owners: Mutex::new((0, None)),
            behind: AtomicBool::new(false),
        }
    }

    pub fn backend(&self) -> &dyn SearchBackend {
        self.backend.as_ref()
    }

    /// Runs a search over `tenant`'s videos; video ids in the filter must be its videos.
    /// Hits carry their video's file name.
    pub async fn search(
        &self,
        tenant: &str,
        req: &SearchRequest,
    ) -> Result<(Vec<SearchHit>, SearchTimings)> {
        let mut query = req.validate(self.reranker.on_by_default())?;
        let (store, ids, owner) = (
            self.store.clone(),
            req.video_ids.clone(),
            tenant.to_string(),
        );
        blocking(move || {
            for id in &ids {
                if store.video_of(&owner, id)?.is_none() {
                    return Err(Error::invalid(format!(
                        "video_ids: no video with id {id} (see `reelforge videos list`)"
                    )));
                }
            }
            Ok(())
        })
        .await?;
        // Only the tenant's documents compete for the top k: a backend that keeps owners
        // filters by tenant itself (it holds other servers' videos too); otherwise, when
        // other tenants have videos, the filter names the tenant's own.
        let shared = self.backend.keeps_owners();
        if shared {
            query.filter.tenant = Some(tenant.to_string());
        } else if req.video_ids.is_empty() {
            let owners = self.owners().await?;
            if owners.keys().any(|t| t != tenant) {
                let own = owners.get(tenant).cloned().unwrap_or_default();
                if own.is_empty() {
                    return Ok((Vec::new(), SearchTimings::default()));
                }
                query.filter.video_ids = own;
            }
        }
        let models = SearchModels {
            query_embedder: &self.queries,
            reranker: self.reranker.as_ref(),
            image_embedder: self.image_embedder.as_deref(),
        };
        let (mut hits, timings) = reelforge_models::bedrock::telemetry::for_tenant(
            tenant.to_string(),
            query::run(self.backend.as_ref(), &models, &query),
        )
        .await?;
        let records = self
            .records(hits.iter().map(|h| h.video_id.clone()))
            .await?;
        // The store has the last word on its own videos: a hit of another tenant's video
        // (indexed while the filter above was read) is never returned. A video this
        // server does not hold is kept only from a shared backend, which filtered it by
        // tenant and named its file.
        hits.retain(|h| match records.get(&h.video_id) {
            Some((owner, _)) => owner == tenant,
            None => shared && !h.filename.is_empty(),
        });
        for hit in &mut hits {
            if let Some((_, filename)) = records.get(&hit.video_id) {
                hit.filename = filename.clone();
            }
        }
        Ok((hits, timings))
    }

    /// For each hit, a JPEG still of its moment and its time: the stored thumbnail
    /// nearest the moment's middle, within it when one is (`None` when the video has
    /// none, or its file is gone).
    pub async fn thumbnails(&self, hits: &[SearchHit]) -> Result<Vec<Option<(i64, Vec<u8>)>>> {
        let store = self.store.clone();
        let wanted: Vec<(String, i64, i64)> = hits
            .iter()
            .map(|h| (h.video_id.clone(), h.start_ms, h.end_ms))
            .collect();
        blocking(move || {
            let mut frames: HashMap<String, Vec<crate::store::FrameRecord>> = HashMap::new();
            let mut out = Vec::with_capacity(wanted.len());
            for (video_id, start_ms, end_ms) in wanted {
                if !frames.contains_key(&video_id) {
                    let f = store.frames(&video_id)?;
                    frames.insert(video_id.clone(), f);
                }
                let middle = (start_ms + end_ms) / 2;
                let nearest = frames[&video_id]
                    .iter()
                    .min_by_key(|f| (f.t_ms - middle).abs());
                out.push(
                    nearest.and_then(|f| std::fs::read(&f.path).ok().map(|bytes| (f.t_ms, bytes))),
                );
            }
            Ok(out)
        })
        .await
    }

    /// Tenant and file name of the given videos (those that exist).
    async fn records(
        &self,
        ids: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, (String, String)>> {
        let mut ids: Vec<String> = ids.collect();
        ids.sort();
        ids.dedup();
        let store = self.store.clone();
        blocking(move || {
            let mut names = HashMap::new();
            for id in ids {
                if let Some(v) = store.video(&id)? {
                    names.insert(id, (v.tenant, v.filename));
                }
            }
            Ok(names)
        })
        .await
    }

    /// (Re)indexes the live generation of a stored video; returns the number of
    /// documents (a video that is gone has its documents removed).
    pub async fn index_video(&self, video_id: &str) -> Result<usize> {
        // Before its documents are visible: a search reads the owners again.
        self.owners_changed();
        let indexed = indexer::index_video(
            &self.store,
            self.backend.as_ref(),
            self.text_embedder.as_ref(),
            video_id,
        )
        .await;
        self.note(&indexed);
        indexed
    }

    /// Removes a video's documents.
    pub async fn remove_video(&self, video_id: &str) -> Result<u64> {
        let removed = self.backend.remove_video(video_id).await;
        self.owners_changed();
        self.note(&removed);
        removed
    }

    /// A failed write leaves the index behind the store (the video stays stored).
    fn note<T>(&self, outcome: &Result<T>) {
        if outcome.is_err() {
            self.behind.store(true, Ordering::SeqCst);
        }
    }

    /// Checks the backend before serving (a remote one reachable, its collections of the
    /// right shape) and creates what it lacks.
    pub async fn connect(&self) -> Result<()> {
        self.backend.connect().await
    }

    /// Runs in the background from now on: after a write to the backend failed (Milvus
    /// lost while serving), reconciles every few seconds until one succeeds, so videos
    /// stored meanwhile become searchable when the backend is back.
    pub fn keep_in_step(self: &Arc<Self>) {
        let search = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CATCH_UP_EVERY).await;
                let Some(search) = search.upgrade() else {
                    return;
                };
                if !search.behind.swap(false, Ordering::SeqCst) {
                    continue;
                }
                match search.reconcile().await {
                    Ok((indexed, dropped)) => tracing::info!(
                        "search index caught up with the store: indexed {indexed} videos, dropped {dropped}"
                    ),
                    Err(e) => {
                        search.behind.store(true, Ordering::SeqCst);
                        tracing::warn!("search index still behind the store: {e}");
                    }
                }
            }
        });
    }

    fn owners_changed(&self) {
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.0 += 1;
        owners.1 = None;
    }

    /// Each tenant's video ids (cached until the index changes).
    async fn owners(&self) -> Result<Arc<Owners>> {
        let version = {
            let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(map) = &owners.1 {
                return Ok(map.clone());
            }
            owners.0
        };
        let store = self.store.clone();
        let map = Arc::new(
            blocking(move || {
                let mut map = Owners::new();
                for v in store.videos()? {
                    map.entry(v.tenant).or_default().insert(v.video_id);
                }
                Ok(map)
            })
            .await?,
        );
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        if owners.0 == version {
            owners.1 = Some(map.clone());
        }
        Ok(map)
    }

    /// Brings the index in line with the store: indexes videos whose live generation is
    /// not indexed (an interrupted index, an older version) and drops documents of videos
    /// that are gone. Returns (videos indexed, videos dropped).
    pub async fn reconcile(&self) -> Result<(usize, usize)> {
        let store = self.store.clone();
        let videos = blocking(move || store.videos()).await?;
        let mut stale = Vec::new();
        for v in &videos {
            if self.backend.indexed_generation(&v.video_id).await? != Some(v.generation) {
                stale.push(v.video_id.clone());
            }
        }
        let live: std::collections::HashSet<&str> =
            videos.iter().map(|v| v.video_id.as_str()).collect();
        let gone: Vec<String> = self
            .backend
            .indexed_videos()
            .await?
            .into_iter()
            .filter(|id| !live.contains(id.as_str()))
            .collect();
        for id in &stale {
            self.index_video(id).await?;
        }
        for id in &gone {
            self.backend.remove_video(id).await?;
        }
        Ok((stale.len(), gone.len()))
    }
}
