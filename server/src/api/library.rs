//! `reelforge.v1.Library`: the highlight library the Template strategy matches against.

use std::sync::Arc;

use reelforge_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::error::{Error, Result};
use crate::highlight::library::{self, Library, LibraryEntry, NewEntry};
use crate::ingest::{blocking, Engine};
use crate::models::EmbedPurpose;

pub struct LibraryApi {
    engine: Arc<Engine>,
}

impl LibraryApi {
    pub fn new(engine: Arc<Engine>) -> Self {
        LibraryApi { engine }
    }

    fn library(&self) -> Result<Library> {
        Library::open(self.engine.store().db())
    }
}

fn entry(e: &LibraryEntry) -> pb::LibraryEntry {
    pb::LibraryEntry {
        entry_id: e.entry_id.clone(),
        category: e.category.clone(),
        tags: e.tags.clone(),
        description: e.description.clone(),
        score: e.score,
        video_id: e.video_id.clone(),
        filename: e.filename.clone(),
        start_ms: e.start_ms,
        end_ms: e.end_ms,
        created_unix_ms: e.created_unix_ms,
    }
}

fn ms(seconds: f64, field: &str) -> Result<i64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(Error::invalid(format!(
            "{field} must be a non-negative number of seconds, got {seconds}"
        )));
    }
    Ok((seconds * 1000.0).round() as i64)
}

impl LibraryApi {
    async fn add(&self, r: pb::AddLibraryEntryRequest) -> Result<LibraryEntry> {
        let new = NewEntry {
            video_id: r.video_id,
            start_ms: ms(r.start_seconds, "start_seconds")?,
            end_ms: ms(r.end_seconds, "end_seconds")?,
            category: r.category,
            tags: r.tags,
            description: r.description,
            score: r.score.unwrap_or(1.0),
        };
        let store = self.engine.store().clone();
        let mut e = blocking(move || Library::prepare(&store, &new)).await?;
        let embedder = &self.engine.providers().text_embedder;
        let text = embedder.embed(&[e.words()], EmbedPurpose::Index).await?;
        e.text = text
            .into_iter()
            .next()
            .map(|t| t.vector)
            .unwrap_or_default();
        e.text_embedder = embedder.name().to_string();
        let (lib, stored) = (self.library()?, e.clone());
        blocking(move || lib.put(&stored)).await?;
        Ok(e)
    }
}

#[tonic::async_trait]
impl pb::library_server::Library for LibraryApi {
    async fn add_entry(
        &self,
        req: Request<pb::AddLibraryEntryRequest>,
    ) -> Result<Response<pb::LibraryEntry>, Status> {
        let e = self.add(req.into_inner()).await.map_err(to_status)?;
        Ok(Response::new(entry(&e)))
    }

    async fn list_entries(
        &self,
        req: Request<pb::ListLibraryEntriesRequest>,
    ) -> Result<Response<pb::ListLibraryEntriesResponse>, Status> {
        let r = req.into_inner();
        let lib = self.library().map_err(to_status)?;
        let category = match r.category.trim() {
            "" => None,
            c => Some(library::check_category(c).map_err(to_status)?),
        };
        let (entries, scripts) = blocking(move || {
            let scripts = lib.scripts()?;
            Ok((lib.list(category.as_deref())?, scripts, category))
        })
        .await
        .map(|(e, s, c)| {
            let s: Vec<pb::CategoryScript> = s
                .into_iter()
                .filter(|(k, _)| c.as_ref().is_none_or(|c| c == k))
                .map(|(category, events)| pb::CategoryScript { category, events })
                .collect();
            (e, s)
        })
        .map_err(to_status)?;
        Ok(Response::new(pb::ListLibraryEntriesResponse {
            entries: entries.iter().map(entry).collect(),
            scripts,
        }))
    }

    async fn remove_entry(
        &self,
        req: Request<pb::RemoveLibraryEntryRequest>,
    ) -> Result<Response<pb::LibraryEntry>, Status> {
        let id = req.into_inner().entry_id;
        if uuid::Uuid::parse_str(&id).is_err() {
            return Err(to_status(Error::invalid(format!(
                "entry_id: {id:?} is not a library entry id"
            ))));
        }
        let lib = self.library().map_err(to_status)?;
        let removed = blocking(move || lib.remove(&id)).await.map_err(to_status)?;
        Ok(Response::new(entry(&removed)))
    }

    async fn set_script(
        &self,
        req: Request<pb::SetCategoryScriptRequest>,
    ) -> Result<Response<pb::CategoryScript>, Status> {
        let r = req.into_inner();
        let category = library::check_category(&r.category).map_err(to_status)?;
        let events = if r.script.trim().is_empty() {
            Vec::new()
        } else {
            crate::highlight::script::parse_script(&r.script).map_err(to_status)?
        };
        let lib = self.library().map_err(to_status)?;
        let (c, e) = (category.clone(), events.clone());
        blocking(move || lib.set_script(&c, &e))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CategoryScript { category, events }))
    }
}
