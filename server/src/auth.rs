//! Who may call what: a tower layer in front of every service reads the caller's API key
//! (`authorization: Bearer <secret>`), checks the role the RPC needs (`ROLES`, one row per
//! RPC of the protos; health and reflection stay open), applies the key's rate limit,
//! hands the handlers the `Caller`, and writes one audit line per mutating call.
//!
//! A server with no keys and `auth.required` unset serves everyone as the admin of the
//! default tenant (the loopback default the README's commands use); once a key exists,
//! every call needs one. Missing or bad key: UNAUTHENTICATED; a role too low:
//! PERMISSION_DENIED naming the role needed; over the rate: RESOURCE_EXHAUSTED.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use reelforge_engine::keys::{Keys, Role};
use reelforge_engine::limits::Admission;
use reelforge_engine::{TenantView, DEFAULT_TENANT};
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::codes::{code_name, response_code};

/// What an RPC needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone: health checks and reflection.
    Open,
    Role(Role),
}

/// Every RPC of the protos and the role it needs. A new RPC needs a row here (a test
/// reads the protos' descriptors); an RPC missing from it needs admin.
pub const ROLES: &[(&str, Role)] = &[
    ("/reelforge.v1.Ingest/ImportBda", Role::Write),
    ("/reelforge.v1.Ingest/RunBda", Role::Write),
    ("/reelforge.v1.Ingest/IngestPath", Role::Write),
    ("/reelforge.v1.Ingest/IngestUpload", Role::Write),
    ("/reelforge.v1.Ingest/WatchJob", Role::Read),
    ("/reelforge.v1.Ingest/GetJob", Role::Read),
    ("/reelforge.v1.Ingest/ListJobs", Role::Read),
    ("/reelforge.v1.Ingest/CancelJob", Role::Write),
    ("/reelforge.v1.Ingest/ListVideos", Role::Read),
    ("/reelforge.v1.Ingest/GetVideo", Role::Read),
    ("/reelforge.v1.Ingest/DeleteVideo", Role::Write),
    ("/reelforge.v1.Ingest/ReanalyseVideo", Role::Write),
    ("/reelforge.v1.Search/Search", Role::Read),
    ("/reelforge.v1.Highlight/Highlight", Role::Write),
    ("/reelforge.v1.Highlight/Download", Role::Read),
    ("/reelforge.v1.Highlight/GetClip", Role::Read),
    ("/reelforge.v1.Highlight/WatchHighlight", Role::Read),
    ("/reelforge.v1.Highlight/GetHighlight", Role::Read),
    ("/reelforge.v1.Highlight/ListHighlights", Role::Read),
    ("/reelforge.v1.Highlight/DeleteHighlight", Role::Write),
    ("/reelforge.v1.Feedback/Rate", Role::Write),
    ("/reelforge.v1.Feedback/Tune", Role::Write),
    ("/reelforge.v1.Library/AddEntry", Role::Write),
    ("/reelforge.v1.Library/ListEntries", Role::Read),
    ("/reelforge.v1.Library/RemoveEntry", Role::Write),
    ("/reelforge.v1.Library/SetScript", Role::Write),
    ("/reelforge.v1.Admin/CreateKey", Role::Admin),
    ("/reelforge.v1.Admin/ListKeys", Role::Admin),
    ("/reelforge.v1.Admin/RevokeKey", Role::Admin),
    ("/reelforge.v1.Admin/WhoAmI", Role::Read),
    ("/reelforge.v1.Admin/ListTenants", Role::Admin),
    ("/reelforge.v1.Admin/GetServerInfo", Role::Read),
];

/// Services anyone may call.
pub const OPEN_SERVICES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

/// The web page's own paths on the HTTP listener (`api::web`): the page is open, media
/// and the session are read, an upload is write.
const WEB_PAGE: &[&str] = &["/", "/app.js", "/app.css", "/favicon.ico"];

/// The name of the cookie `POST /api/session` sets: the key, for media requests only.
pub const SESSION_COOKIE: &str = "reelforge_key";

/// Whether `path` is one of the web page's HTTP paths (refusals as HTTP statuses).
pub fn is_web(path: &str) -> bool {
    WEB_PAGE.contains(&path) || path.starts_with("/media/") || path.starts_with("/api/")
}

pub fn need(path: &str) -> Need {
    if OPEN_SERVICES.iter().any(|s| path.starts_with(s)) || WEB_PAGE.contains(&path) {
        return Need::Open;
    }
    if path.starts_with("/media/") || path == "/api/session" {
        return Need::Role(Role::Read);
    }
    if path == "/api/upload" {
        return Need::Role(Role::Write);
    }
    ROLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(Need::Role(Role::Admin), |(_, r)| Need::Role(*r))
}

/// Calls that change something: each gets an audit line.
fn mutating(need: Need) -> bool {
    matches!(need, Need::Role(Role::Write | Role::Admin))
}

/// The caller of an RPC, for the handlers (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `None`: no key (a server without keys).
    pub key_id: Option<String>,
    pub tenant: String,
    pub role: Role,
    /// The key's own limit on jobs running at once (0: none).
    pub max_jobs: u32,
}

impl Caller {
    /// The caller of a server without keys.
    pub fn anonymous() -> Caller {
        Caller {
            key_id: None,
            tenant: DEFAULT_TENANT.to_string(),
            role: Role::Admin,
            max_jobs: 0,
        }
    }

    /// The caller as the limits see a job it asks for.
    pub fn admission(&self) -> Admission<'_> {
        Admission {
            tenant: &self.tenant,
            key_id: self.key_id.as_deref(),
            key_max_jobs: self.max_jobs,
        }
    }

    /// Whose records a listing's `tenant` field asks for: the caller's own, or (an admin
    /// only) another tenant's or every tenant's (`*`). An error, not a status: its
    /// message quotes the caller's value, which `api::status` bounds.
    pub fn view(&self, requested: &str) -> reelforge_core::Result<TenantView> {
        let view = TenantView::parse(requested, &self.tenant)
            .map_err(|e| reelforge_core::Error::invalid(format!("tenant: {e}")))?;
        if view.crosses(&self.tenant) && self.role < Role::Admin {
            return Err(reelforge_core::Error::PermissionDenied(format!(
                "listing another tenant's records (tenant {requested:?}) needs the admin \
                 role; this key has the {} role (leave tenant empty for your own)",
                self.role.name()
            )));
        }
        Ok(view)
    }

    /// The caller a handler was called by (the layer put it there).
    pub fn of<T>(request: &tonic::Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::anonymous)
    }

    fn key_label(&self) -> &str {
        self.key_id.as_deref().unwrap_or("-")
    }
}

/// `[auth]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether every call needs a key; unset: as soon as any key exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
}

/// `[limits]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Calls per second each key (or, without keys, each client address) may make on
    /// average; 0: no limit.
    pub requests_per_second: f64,
    /// Calls a key may make at once above the average before it is refused.
    pub burst: u32,
    /// Largest request message of any RPC, bytes.
    pub max_message_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: 0.0,
            burst: 50,
            max_message_bytes: 16 << 20,
        }
    }
}

impl LimitsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.requests_per_second >= 0.0 && self.requests_per_second.is_finite()) {
            return Err(format!(
                "limits.requests_per_second must be 0 (no limit) or more, not {}",
                self.requests_per_second
            ));
        }
        if self.burst == 0 {
            return Err("limits.burst must be at least 1".into());
        }
        if self.max_message_bytes < 64 << 10 {
            return Err(format!(
                "limits.max_message_bytes must be at least 65536 (upload chunks are up to 64 KiB), not {}",
                self.max_message_bytes
            ));
        }
        Ok(())
    }
}

/// Token buckets, one per key.
struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `Err(milliseconds until a call would be allowed)` when over the limit.
    fn take(&self, who: &str) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 100_000 {
            // Full buckets carry nothing: forget them rather than grow without end.
            let (rate, burst) = (self.per_second, self.burst);
            buckets.retain(|_, (t, at)| *t + at.elapsed().as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err((((1.0 - *tokens) / self.per_second) * 1000.0).ceil() as u64)
        }
    }
}

/// The checks, shared by every connection's layer.
pub struct Access {
    keys: Arc<Keys>,
    config: AuthConfig,
    limits: LimitsConfig,
    limiter: RateLimiter,
}

impl Access {
    pub fn new(keys: Arc<Keys>, config: AuthConfig, limits: LimitsConfig) -> Arc<Access> {
        Arc::new(Access {
            limiter: RateLimiter {
                per_second: limits.requests_per_second,
                burst: f64::from(limits.burst),
                buckets: Mutex::new(HashMap::new()),
            },
            keys,
            config,
            limits,
        })
    }

    /// Whether calls need a key now.
    pub fn required(&self) -> bool {
        self.config.required.unwrap_or_else(|| self.keys.any())
    }

    /// The caller of a call to `path` with these headers, or the status refusing it.
    fn check(&self, path: &str, headers: &http::HeaderMap, peer: &str) -> Result<Caller, Status> {
        let need = need(path);
        // `<video>` and `<img>` cannot send a header: media requests may carry the key in
        // the session cookie instead (HttpOnly, SameSite=Strict, Path=/media).
        let token = match bearer(headers)? {
            None if path.starts_with("/media/") => session_cookie(headers),
            token => token,
        };
        let caller = match token {
            Some(secret) => {
                let key = self.keys.verify(secret).map_err(Status::unauthenticated)?;
                Caller {
                    key_id: Some(key.key_id),
                    tenant: key.tenant,
                    role: key.role,
                    max_jobs: key.max_concurrent_jobs,
                }
            }
            None if need == Need::Open => Caller::anonymous(),
            None if self.required() => {
                return Err(Status::unauthenticated(
                    "this server needs an API key: send `authorization: Bearer <key>` \
                     (CLI: --token or REELFORGE_TOKEN); an admin makes keys with \
                     `reelforge-server keys create`",
                ))
            }
            None => Caller::anonymous(),
        };
        if let Need::Role(role) = need {
            if caller.role < role {
                return Err(Status::permission_denied(format!(
                    "{} needs the {} role; API key {} has the {} role",
                    path.trim_start_matches('/'),
                    role.name(),
                    caller.key_label(),
                    caller.role.name()
                )));
            }
            let who = caller
                .key_id
                .clone()
                .unwrap_or_else(|| format!("address {peer}"));
            if let Err(wait_ms) = self.limiter.take(&who) {
                return Err(Status::resource_exhausted(format!(
                    "rate limit exceeded for {}: {} calls/s with bursts of {} \
                     (limits.requests_per_second, limits.burst); retry in {wait_ms} ms",
                    match &caller.key_id {
                        Some(id) => format!("API key {id}"),
                        None => who.clone(),
                    },
                    self.limits.requests_per_second,
                    self.limits.burst
                )));
            }
        }
        Ok(caller)
    }
}

/// The key in the session cookie, if any.
fn session_cookie(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// The bearer token of a call, if it sent one; a malformed header is refused.
fn bearer(headers: &http::HeaderMap) -> Result<Option<&str>, Status> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        Status::unauthenticated("the authorization header is not ASCII: send `Bearer <key>`")
    })?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(Status::unauthenticated(
            "the authorization header must be `Bearer <key>`",
        )),
    }
}

/// A refused web-page request: its HTTP status, the message in `x-reelforge-error`.
fn web_refusal<R: Default>(status: &Status) -> http::Response<R> {
    let mut response = http::Response::new(R::default());
    *response.status_mut() = crate::codes::http_status(status.code());
    if let Some(v) = crate::codes::error_header(status.message()) {
        response.headers_mut().insert("x-reelforge-error", v);
    }
    response
}

tokio::task_local! {
    static AUDIT_TARGET: Arc<Mutex<Option<String>>>;
}

/// Names what a mutating call acts on (a video, a job, a key ...) for its audit line.
pub fn audit_target(target: impl Into<String>) {
    let target = target.into();
    let _ = AUDIT_TARGET.try_with(|t| {
        *t.lock().unwrap_or_else(|e| e.into_inner()) = Some(target);
    });
}

/// The tower layer: `Access` in front of every service.
#[derive(Clone)]
pub struct AuthLayer(pub Arc<Access>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            access: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    access: Arc<Access>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Send,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let peer = req
            .extensions()
            .get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|i| i.remote_addr())
            .or_else(|| {
                req.extensions()
                    .get::<tonic::transport::server::TlsConnectInfo<
                        tonic::transport::server::TcpConnectInfo,
                    >>()
                    .and_then(|i| i.get_ref().remote_addr())
            })
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let need = need(&path);
        let caller = match self.access.check(&path, req.headers(), &peer) {
            Ok(caller) => caller,
            Err(status) => {
                if mutating(need) {
                    audit(&path, None, &peer, "", code_name(status.code()));
                }
                if is_web(&path) {
                    return Box::pin(async move { Ok(web_refusal(&status)) });
                }
                let grpc_web = req
                    .headers()
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/grpc-web"));
                let mut response = status.into_http::<R>();
                if grpc_web {
                    // Trailers-only, as gRPC-Web carries it: the status in the headers.
                    response.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/grpc-web+proto"),
                    );
                }
                return Box::pin(async move { Ok(response) });
            }
        };
        req.extensions_mut().insert(caller.clone());
        let future = self.inner.call(req);
        if !mutating(need) {
            return Box::pin(future);
        }
        let target = Arc::new(Mutex::new(None));
        Box::pin(AUDIT_TARGET.scope(target.clone(), async move {
            let response = future.await;
            // A stream that started counts as OK here (its end travels in trailers).
            let outcome = match &response {
                Ok(r) => response_code(r.headers()).map_or("OK", code_name),
                Err(_) => "TRANSPORT_ERROR",
            };
            let target = target.lock().unwrap_or_else(|e| e.into_inner()).take();
            audit(
                &path,
                Some(&caller),
                &peer,
                target.as_deref().unwrap_or(""),
                outcome,
            );
            response
        }))
    }
}

/// One audit line: who (key and tenant), from where, which RPC, on what, and how it
/// ended. Never the key's secret or any request body.
fn audit(path: &str, caller: Option<&Caller>, peer: &str, target: &str, outcome: &str) {
    tracing::info!(
        target: "audit",
        key_id = %caller.map_or("-", Caller::key_label),
        tenant = %caller.map_or("-", |c| c.tenant.as_str()),
        peer = %peer,
        rpc = %path.trim_start_matches('/'),
        target = %target,
        outcome = %outcome,
        "audit"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Every RPC of the protos has a row in ROLES, and every row names a real RPC.
    #[test]
    fn every_rpc_has_a_role() {
        let set = prost_types::FileDescriptorSet::decode(reelforge_proto::v1::FILE_DESCRIPTOR_SET)
            .unwrap();
        let mut rpcs = Vec::new();
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    rpcs.push(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
        for rpc in &rpcs {
            assert!(
                ROLES.iter().any(|(p, _)| p == rpc),
                "{rpc} has no row in auth::ROLES: decide which role it needs"
            );
        }
        for (path, _) in ROLES {
            assert!(rpcs.iter().any(|r| r == path), "{path} is not an RPC");
        }
        assert_eq!(need("/grpc.health.v1.Health/Check"), Need::Open);
        assert_eq!(need("/reelforge.v1.Nope/X"), Need::Role(Role::Admin));
    }

    #[test]
    fn buckets_refill_at_the_rate() {
        let limiter = RateLimiter {
            per_second: 10.0,
            burst: 2.0,
            buckets: Mutex::new(HashMap::new()),
        };
        assert!(limiter.take("k").is_ok() && limiter.take("k").is_ok());
        let wait = limiter.take("k").unwrap_err();
        assert!((1..=100).contains(&wait), "{wait}");
        assert!(limiter.take("other").is_ok(), "each key has its own bucket");
    }

    #[test]
    fn bearer_headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(bearer(&h).unwrap(), None);
        h.insert("authorization", "Bearer rf_x_y".parse().unwrap());
        assert_eq!(bearer(&h).unwrap(), Some("rf_x_y"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert!(bearer(&h).is_err());
    }
}
