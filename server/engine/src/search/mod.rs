//! The search service: a request checked once (`request`), run stage by stage against the
//! search backend with the configured models (`query`), and the index kept in step with
//! the video store (`indexer`, `reconcile`).

pub mod embed;
pub mod indexer;
pub mod query;
pub mod request;

use std::collections::HashMap;
use std::sync::Arc;

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
}

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
        }
    }

    pub fn backend(&self) -> &dyn SearchBackend {
        self.backend.as_ref()
    }

    /// Runs a search; video ids in the filter must exist. Hits carry their video's file
    /// name.
    pub async fn search(&self, req: &SearchRequest) -> Result<(Vec<SearchHit>, SearchTimings)> {
        let query = req.validate(self.reranker.on_by_default())?;
        let (store, ids) = (self.store.clone(), req.video_ids.clone());
        blocking(move || {
            for id in &ids {
                if store.video(id)?.is_none() {
                    return Err(Error::invalid(format!(
                        "video_ids: no video with id {id} (see `reelforge videos list`)"
                    )));
                }
            }
            Ok(())
        })
        .await?;
        let models = SearchModels {
            query_embedder: &self.queries,
            reranker: self.reranker.as_ref(),
            image_embedder: self.image_embedder.as_deref(),
        };
        let (mut hits, timings) = query::run(self.backend.as_ref(), &models, &query).await?;
        let names = self
            .filenames(hits.iter().map(|h| h.video_id.clone()))
            .await?;
        for hit in &mut hits {
            hit.filename = names.get(&hit.video_id).cloned().unwrap_or_default();
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

    /// File names of the given videos (those that exist).
    async fn filenames(
        &self,
        ids: impl Iterator<Item = String>,
    ) -> Result<HashMap<String, String>> {
        let mut ids: Vec<String> = ids.collect();
        ids.sort();
        ids.dedup();
        let store = self.store.clone();
        blocking(move || {
            let mut names = HashMap::new();
            for id in ids {
                if let Some(v) = store.video(&id)? {
                    names.insert(id, v.filename);
                }
            }
            Ok(names)
        })
        .await
    }

    /// (Re)indexes the live generation of a stored video; returns the number of
    /// documents (a video that is gone has its documents removed).
    pub async fn index_video(&self, video_id: &str) -> Result<usize> {
        indexer::index_video(
            &self.store,
            self.backend.as_ref(),
            self.text_embedder.as_ref(),
            video_id,
        )
        .await
    }

    /// Removes a video's documents.
    pub async fn remove_video(&self, video_id: &str) -> Result<u64> {
        self.backend.remove_video(video_id).await
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
