//! The web page's side of the HTTP listener (`http_listen`): the page itself (web/src's
//! HTML and CSS, and web/dist/app.js, bundled from web/src and kept in git), and what a browser cannot do over gRPC-Web (which
//! serves every RPC on the same listener): byte ranges of a video's source and of a
//! highlight's files for `<video>`, thumbnails for `<img>`, an upload as one HTTP body, and
//! a session cookie so that media requests (which cannot carry a header) are authorised.
//!
//! Who calls is decided by `auth::AuthLayer` as for every RPC (`auth::need` gives each
//! path its role); a refused request gets its HTTP status and the message in
//! `x-reelforge-error`.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use reelforge_engine::catalog::Catalog;
use reelforge_engine::highlights::Highlights;
use reelforge_engine::ingest::Ingest;
use reelforge_engine::Limits;
use reelforge_proto::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_stream::StreamExt;
use tokio_util::io::ReaderStream;

use super::status::to_status;
use crate::auth::{Caller, SESSION_COOKIE};

const INDEX_HTML: &str = include_str!("../../../web/src/index.html");
const APP_JS: &str = include_str!("../../../web/dist/app.js");
const APP_CSS: &str = include_str!("../../../web/src/app.css");

pub struct Web {
    pub catalog: Arc<Catalog>,
    pub ingest: Arc<Ingest>,
    pub highlights: Arc<Highlights>,
    pub limits: Arc<Limits>,
    /// Cookies get `Secure` when the listener speaks TLS.
    pub tls: bool,
}

pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/media/videos/{video_id}/source", get(source))
        .route("/media/videos/{video_id}/frames/{t_ms}", get(frame))
        .route(
            "/media/highlights/{highlight_id}/{file}",
            get(highlight_file),
        )
        .route("/api/upload", post(upload))
        .route("/api/session", post(session))
        .with_state(web)
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8").await
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; \
                 script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// A refusal: its HTTP status, `{code, message}` as JSON, the message in a header too.
fn refused(status: tonic::Status) -> Response {
    let code = crate::codes::code_name(status.code());
    let body = serde_json::json!({"code": code, "message": status.message()}).to_string();
    let mut response = (
        crate::codes::http_status(status.code()),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(v) = crate::codes::error_header(status.message()) {
        response.headers_mut().insert("x-reelforge-error", v);
    }
    response
}

fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "avi" => "video/x-msvideo",
        "ts" => "video/mp2t",
        "mpg" | "mpeg" => "video/mpeg",
        "flv" => "video/x-flv",
        "wmv" => "video/x-ms-wmv",
        "3gp" => "video/3gpp",
        "jpg" | "jpeg" => "image/jpeg",
        "srt" => "application/x-subrip",
        "edl" => "text/plain; charset=utf-8",
        "otio" | "json" => "application/json",
        "fcpxml" | "xml" => "application/xml",
        _ => "application/octet-stream",
    }
}

/// `Range: bytes=a-b` (or `a-`, or `-n`) against a file of `len` bytes: `None` when there
/// is no single range to honour (the whole file is sent), `Some(Err)` when it lies outside.
fn range(headers: &HeaderMap, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = headers.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = spec.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, false) => {
            let n: u64 = b.parse().ok()?;
            if n == 0 || len == 0 {
                return Some(Err(()));
            }
            (len.saturating_sub(n), len - 1)
        }
        (false, _) => {
            let start: u64 = a.parse().ok()?;
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                b.parse::<u64>().ok()?.min(len.saturating_sub(1))
            };
            if start >= len || end < start {
                return Some(Err(()));
            }
            (start, end)
        }
        (true, true) => return None,
    };
    Some(Ok(parsed))
}

/// A file as HTTP serves media: `Accept-Ranges: bytes`, 206 with `Content-Range` for a
/// range, 416 for one outside the file.
async fn serve_file(path: &Path, headers: &HeaderMap) -> Response {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(_) => return refused(tonic::Status::not_found("the file is gone from the server")),
    };
    let len = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return refused(tonic::Status::internal(e.to_string())),
    };
    let content_type = content_type(path);
    let common = |b: axum::http::response::Builder| {
        b.header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT_RANGES, "bytes")
            .header(header::CACHE_CONTROL, "private, max-age=3600")
    };
    match range(headers, len) {
        None => common(Response::builder().status(StatusCode::OK))
            .header(header::CONTENT_LENGTH, len)
            .body(Body::from_stream(ReaderStream::new(file)))
            .unwrap_or_else(|e| refused(tonic::Status::internal(e.to_string()))),
        Some(Err(())) => common(Response::builder().status(StatusCode::RANGE_NOT_SATISFIABLE))
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty())
            .unwrap_or_else(|e| refused(tonic::Status::internal(e.to_string()))),
        Some(Ok((start, end))) => {
            if let Err(e) = file.seek(SeekFrom::Start(start)).await {
                return refused(tonic::Status::internal(e.to_string()));
            }
            let n = end - start + 1;
            common(Response::builder().status(StatusCode::PARTIAL_CONTENT))
                .header(header::CONTENT_LENGTH, n)
                .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
                .body(Body::from_stream(ReaderStream::new(file.take(n))))
                .unwrap_or_else(|e| refused(tonic::Status::internal(e.to_string())))
        }
    }
}

async fn source(
    State(web): State<Arc<Web>>,
    Extension(caller): Extension<Caller>,
    UrlPath(video_id): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    match web.catalog.owned(&caller.tenant, &video_id).await {
        Ok(video) => serve_file(Path::new(&video.source_path), &headers).await,
        Err(e) => refused(to_status(e)),
    }
}

/// The stored thumbnail nearest `t_ms` (the 1 fps strip, a search hit's poster).
async fn frame(
    State(web): State<Arc<Web>>,
    Extension(caller): Extension<Caller>,
    UrlPath((video_id, t_ms)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let t_ms: i64 = match t_ms.trim_end_matches(".jpg").parse() {
        Ok(t) => t,
        Err(_) => {
            return refused(tonic::Status::invalid_argument(
                "frames/{t_ms}: a time in milliseconds, e.g. frames/20000.jpg",
            ))
        }
    };
    if let Err(e) = web.catalog.owned(&caller.tenant, &video_id).await {
        return refused(to_status(e));
    }
    let frames = match web.catalog.frames(&video_id).await {
        Ok(f) => f,
        Err(e) => return refused(to_status(e)),
    };
    match frames.iter().min_by_key(|f| (f.t_ms - t_ms).abs()) {
        Some(f) => serve_file(Path::new(&f.path), &headers).await,
        None => refused(tonic::Status::not_found(format!(
            "video {video_id} has no thumbnails"
        ))),
    }
}

async fn highlight_file(
    State(web): State<Arc<Web>>,
    Extension(caller): Extension<Caller>,
    UrlPath((highlight_id, file)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match web
        .highlights
        .artifact(&caller.tenant, &highlight_id, &file)
    {
        Ok(path) => serve_file(&path, &headers).await,
        Err(e) => refused(to_status(e)),
    }
}

#[derive(serde::Deserialize)]
struct UploadQuery {
    filename: Option<String>,
    #[serde(default)]
    slice_seconds: f64,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    language: String,
}

/// `POST /api/upload?filename=NAME[&slice_seconds=S][&force=true][&language=zh]` with the file as the
/// body: the upload the browser cannot stream over gRPC-Web. Answers `{job_id}` as soon as
/// the ingest starts; the page follows it with `WatchJob` (gRPC-Web).
async fn upload(
    State(web): State<Arc<Web>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Query(q)) = query else {
        return refused(tonic::Status::invalid_argument(
            "the query must be ?filename=NAME[&slice_seconds=S][&force=true]",
        ));
    };
    let filename = q.filename.unwrap_or_default();
    if filename.trim().is_empty() {
        return refused(tonic::Status::invalid_argument(
            "filename: the uploaded file's name is required (?filename=match.mp4)",
        ));
    }
    let expected = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n > 0);
    let started = async {
        let options = pb::IngestOptions {
            slice_seconds: q.slice_seconds,
            force: q.force,
            clip_seconds: 0.0,
            language: q.language,
        };
        let mut upload = super::ingest::begin_upload(
            &web.ingest,
            &web.limits,
            &caller,
            &filename,
            expected,
            Some(options),
        )
        .await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                reelforge_core::Error::invalid(format!("the upload was cut off: {e}"))
            })?;
            upload.write(&chunk).await?;
        }
        upload.finish().await
    }
    .await;
    match started {
        Ok(handle) => {
            let body = serde_json::json!({"job_id": handle.id()}).to_string();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(e) => refused(to_status(e)),
    }
}

/// `POST /api/session` with `authorization: Bearer <key>`: sets the key as an HttpOnly,
/// SameSite=Strict cookie that only media requests (`/media/...`) accept, so `<video>` and
/// `<img>` (which cannot send a header) are authorised; every other call still needs the
/// header. `DELETE`-like logout: the same with an empty key clears it.
async fn session(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, k)| k.trim().to_string())
        .unwrap_or_default();
    let secure = if web.tls { "; Secure" } else { "" };
    let cookie = if key.is_empty() {
        format!("{SESSION_COOKIE}=; Path=/media; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    } else {
        format!("{SESSION_COOKIE}={key}; Path=/media; HttpOnly; SameSite=Strict{secure}")
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).unwrap());
        h
    }

    #[test]
    fn ranges_as_rfc_9110_reads_them() {
        assert_eq!(range(&headers("bytes=0-99"), 1000), Some(Ok((0, 99))));
        assert_eq!(range(&headers("bytes=900-"), 1000), Some(Ok((900, 999))));
        assert_eq!(range(&headers("bytes=-100"), 1000), Some(Ok((900, 999))));
        assert_eq!(
            range(&headers("bytes=990-2000"), 1000),
            Some(Ok((990, 999)))
        );
        assert_eq!(range(&headers("bytes=1000-"), 1000), Some(Err(())));
        assert_eq!(range(&headers("bytes=5-1"), 1000), Some(Err(())));
        assert_eq!(range(&headers("bytes=0-1,5-9"), 1000), None);
        assert_eq!(range(&headers("items=0-1"), 1000), None);
        assert_eq!(range(&HeaderMap::new(), 1000), None);
        assert_eq!(content_type(Path::new("a/b.MP4")), "video/mp4");
        assert_eq!(
            content_type(Path::new("timeline.fcpxml")),
            "application/xml"
        );
    }
}
