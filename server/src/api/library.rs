//! `reelforge.v1.Library`: the highlight library the Template strategy matches against.

use std::sync::Arc;

use reelforge_engine::library::{LibraryEntry, NewEntry};
use reelforge_engine::Library;
use reelforge_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::auth::{audit_target, Caller};

pub struct LibraryApi {
    library: Arc<Library>,
}

impl LibraryApi {
    pub fn new(library: Arc<Library>) -> Self {
        LibraryApi { library }
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

#[tonic::async_trait]
impl pb::library_server::Library for LibraryApi {
    async fn add_entry(
        &self,
        req: Request<pb::AddLibraryEntryRequest>,
    ) -> Result<Response<pb::LibraryEntry>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::AddLibraryEntryRequest {
            video_id,
            start_seconds,
            end_seconds,
            category,
            tags,
            description,
            score,
        } = req.into_inner();
        audit_target(format!("video {video_id} category {category}"));
        let new = NewEntry {
            video_id,
            start_seconds,
            end_seconds,
            category,
            tags,
            description,
            score,
        };
        let e = self.library.add(&tenant, new).await.map_err(to_status)?;
        Ok(Response::new(entry(&e)))
    }

    async fn list_entries(
        &self,
        req: Request<pb::ListLibraryEntriesRequest>,
    ) -> Result<Response<pb::ListLibraryEntriesResponse>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::ListLibraryEntriesRequest {
            category,
            page_size,
            page_token,
        } = req.into_inner();
        let (entries, scripts) = self
            .library
            .list(&tenant, &category, page_size, &page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListLibraryEntriesResponse {
            next_page_token: entries.next_token,
            entries: entries.items.iter().map(entry).collect(),
            scripts: scripts
                .into_iter()
                .map(|(category, events)| pb::CategoryScript { category, events })
                .collect(),
        }))
    }

    async fn remove_entry(
        &self,
        req: Request<pb::RemoveLibraryEntryRequest>,
    ) -> Result<Response<pb::LibraryEntry>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::RemoveLibraryEntryRequest { entry_id } = req.into_inner();
        audit_target(format!("entry {entry_id}"));
        let removed = self
            .library
            .remove(&tenant, &entry_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(entry(&removed)))
    }

    async fn set_script(
        &self,
        req: Request<pb::SetCategoryScriptRequest>,
    ) -> Result<Response<pb::CategoryScript>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::SetCategoryScriptRequest { category, script } = req.into_inner();
        audit_target(format!("category {category}"));
        let (category, events) = self
            .library
            .set_script(&tenant, &category, &script)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CategoryScript { category, events }))
    }
}
