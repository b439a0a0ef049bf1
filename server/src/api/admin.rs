//! `reelforge.v1.Admin`: API keys and every tenant's usage (the admin role; `WhoAmI`
//! for any key).

use std::collections::BTreeMap;
use std::sync::Arc;

use reelforge_engine::keys::{ApiKey, Keys, NewKey, Role};
use reelforge_engine::store::now_unix_ms;
use reelforge_engine::{About, Limits};
use reelforge_models::bedrock::telemetry;
use reelforge_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::auth::{audit_target, Caller};

pub struct AdminApi {
    keys: Arc<Keys>,
    limits: Arc<Limits>,
    about: Arc<About>,
    /// How callers reach the server: keys required, TLS, client certificates.
    access: (bool, bool, bool),
}

impl AdminApi {
    pub fn new(
        keys: Arc<Keys>,
        limits: Arc<Limits>,
        about: Arc<About>,
        access: (bool, bool, bool),
    ) -> Self {
        AdminApi {
            keys,
            limits,
            about,
            access,
        }
    }
}

pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Read => pb::Role::Read,
        Role::Write => pb::Role::Write,
        Role::Admin => pb::Role::Admin,
    }
}

fn key(k: &ApiKey) -> pb::ApiKey {
    pb::ApiKey {
        key_id: k.key_id.clone(),
        tenant: k.tenant.clone(),
        role: role_to_proto(k.role) as i32,
        note: k.note.clone(),
        created_unix_ms: k.created_unix_ms,
        expires_unix_ms: k.expires_unix_ms.unwrap_or(0),
        revoked_unix_ms: k.revoked_unix_ms.unwrap_or(0),
        max_concurrent_jobs: k.max_concurrent_jobs,
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminApi {
    async fn create_key(
        &self,
        req: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::CreatedKey>, Status> {
        let req = req.into_inner();
        audit_target(format!("tenant {}", req.tenant));
        let role = match pb::Role::try_from(req.role) {
            Ok(pb::Role::Read) => Role::Read,
            Ok(pb::Role::Write) => Role::Write,
            Ok(pb::Role::Admin) => Role::Admin,
            _ => {
                return Err(Status::invalid_argument(
                    "role must be ROLE_READ, ROLE_WRITE or ROLE_ADMIN",
                ))
            }
        };
        let new = NewKey {
            tenant: req.tenant,
            role,
            expires_in_seconds: (req.expires_in_seconds != 0).then_some(req.expires_in_seconds),
            note: req.note,
            max_concurrent_jobs: req.max_concurrent_jobs,
        };
        let keys = self.keys.clone();
        let made = tokio::task::spawn_blocking(move || keys.create(new))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(to_status)?;
        audit_target(format!(
            "key {} of tenant {}",
            made.key.key_id, made.key.tenant
        ));
        Ok(Response::new(pb::CreatedKey {
            key: Some(key(&made.key)),
            secret: made.secret,
        }))
    }

    async fn list_keys(
        &self,
        req: Request<pb::ListKeysRequest>,
    ) -> Result<Response<pb::ListKeysResponse>, Status> {
        let tenant = req.into_inner().tenant;
        let keys = self
            .keys
            .list((!tenant.is_empty()).then_some(tenant.as_str()))
            .iter()
            .map(key)
            .collect();
        Ok(Response::new(pb::ListKeysResponse { keys }))
    }

    async fn revoke_key(
        &self,
        req: Request<pb::RevokeKeyRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let key_id = req.into_inner().key_id;
        audit_target(format!("key {key_id}"));
        let keys = self.keys.clone();
        let revoked = tokio::task::spawn_blocking(move || keys.revoke(&key_id))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(to_status)?;
        Ok(Response::new(key(&revoked)))
    }

    async fn who_am_i(
        &self,
        req: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::ApiKey>, Status> {
        let caller = Caller::of(&req);
        let found = caller
            .key_id
            .as_deref()
            .and_then(|id| self.keys.list(None).into_iter().find(|k| k.key_id == id));
        Ok(Response::new(match found {
            Some(k) => key(&k),
            // No key: the open server's anonymous caller.
            None => pb::ApiKey {
                tenant: caller.tenant,
                role: role_to_proto(caller.role) as i32,
                note: "no key: this server has none and serves everyone".into(),
                ..Default::default()
            },
        }))
    }

    async fn list_tenants(
        &self,
        _req: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let usage = self.limits.usage().await.map_err(to_status)?;
        let mut tenants: BTreeMap<String, pb::TenantUsage> = BTreeMap::new();
        fn entry<'a>(
            tenants: &'a mut BTreeMap<String, pb::TenantUsage>,
            name: &str,
        ) -> &'a mut pb::TenantUsage {
            tenants
                .entry(name.to_string())
                .or_insert_with(|| pb::TenantUsage {
                    tenant: name.to_string(),
                    ..Default::default()
                })
        }
        let now = now_unix_ms();
        for k in self.keys.list(None) {
            let t = entry(&mut tenants, &k.tenant);
            if k.unusable(now).is_none() {
                t.active_keys += 1;
            }
        }
        for (name, u) in &usage {
            let t = entry(&mut tenants, name);
            t.videos = u.videos;
            t.uploaded_bytes = u.uploaded_bytes;
            t.output_bytes = u.output_bytes;
            t.highlights = u.highlights;
            t.jobs_running = u.jobs_running as u32;
        }
        for (name, today) in telemetry::spends() {
            let t = entry(&mut tenants, &name);
            t.bedrock_tokens_today = today.tokens;
            t.bedrock_bytes_today = today.bytes_sent;
        }
        for (name, c) in self.limits.configured() {
            let t = entry(&mut tenants, name);
            t.storage_quota_bytes = c.storage_bytes;
            t.max_concurrent_jobs = c.max_concurrent_jobs as u32;
            t.bedrock_tokens_per_day = c.bedrock_tokens_per_day;
            t.bedrock_bytes_per_day = c.bedrock_bytes_per_day;
        }
        Ok(Response::new(pb::ListTenantsResponse {
            tenants: tenants.into_values().collect(),
        }))
    }

    async fn get_server_info(
        &self,
        _req: Request<pb::GetServerInfoRequest>,
    ) -> Result<Response<pb::ServerInfo>, Status> {
        let about = &self.about;
        let (ffmpeg, ffprobe) = tokio::join!(
            About::tool_version(&about.ffmpeg),
            About::tool_version(&about.ffprobe)
        );
        let split = |r: reelforge_core::Result<String>| match r {
            Ok(line) => (line, String::new()),
            Err(e) => (String::new(), e.to_string()),
        };
        let ((ffmpeg, ffmpeg_error), (ffprobe, ffprobe_error)) = (split(ffmpeg), split(ffprobe));
        let (keys_required, tls, client_certificates) = self.access;
        Ok(Response::new(pb::ServerInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            models: about
                .models
                .iter()
                .map(|(role, name)| pb::ModelRole {
                    role: role.to_string(),
                    name: name.clone().unwrap_or_default(),
                })
                .collect(),
            ffmpeg,
            ffmpeg_error,
            ffprobe,
            ffprobe_error,
            keys_required,
            tls,
            client_certificates,
            search_backend: about.search_backend.to_string(),
            speech_languages: about.speech_languages.clone(),
            ingest_language: about.ingest_language.clone(),
        }))
    }
}
