//! A local HTTP server that speaks Bedrock's wire format, for pointing the real
//! `aws-sdk-bedrockruntime` client at (endpoint override): `POST /model/{modelId}/invoke`
//! for Titan Text Embeddings v2, Nova Multimodal Embeddings and Cohere Rerank 3.5, with the
//! service's validation of request bodies, answers shaped like the service's, and errors
//! the way the service sends them (`x-amzn-errortype` header, `{"message": ...}` body).
//!
//! Embeddings and relevance come from a real model (the offline MiniLM, zero-padded to the
//! requested size), so related texts are close as they are on the service. Video is
//! embedded by what the stub measures in it with ffmpeg (moving or still), put in words
//! and embedded the same way. Every request is recorded for tests to assert on; failures
//! can be queued to test retries.
//!
//! The same server answers the S3 calls the staging location makes (path-style PutObject,
//! GetObject, ListObjectsV2, DeleteObject, in memory) and the asynchronous invocations
//! (`POST /async-invoke`, `GET /async-invoke/{arn}`) of Nova Multimodal Embeddings'
//! `SEGMENTED_EMBEDDING`, which write `embedding-audio-video.jsonl` into that S3.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use reelforge_models::{EmbedPurpose, TextEmbedder};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Percent-decoded, e.g. `/model/amazon.titan-embed-text-v2:0/invoke`.
    pub path: String,
    /// Lower-cased names.
    pub headers: HashMap<String, String>,
    pub body: Value,
}

/// How the stub's Nova answers a Converse request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConverseMode {
    /// A call of the forced tool, as constrained decoding gives.
    #[default]
    Tool,
    /// JSON inside prose and a code fence, as a model that ignores the tool might.
    Text,
    /// Prose with no JSON at all.
    Garbage,
}

/// An asynchronous invocation: answered `InProgress` to its first poll, then `Completed`.
#[derive(Debug, Clone)]
struct Job {
    polls: u32,
    failure: Option<String>,
    output_uri: String,
    model: String,
    token: String,
}

#[derive(Default)]
struct State {
    requests: Vec<Recorded>,
    /// S3 objects by "bucket/key".
    objects: HashMap<String, Vec<u8>>,
    /// Asynchronous invocations by ARN.
    jobs: HashMap<String, Job>,
    /// Data Automation invocations by ARN: (polls, job_metadata.json URI, the failure
    /// queued for it).
    bda_jobs: HashMap<String, (u32, String, Option<String>)>,
    /// The next asynchronous invocations fail with these messages.
    job_failures: VecDeque<String>,
    /// (segment index, reason): the next segmented embedding job fails that segment.
    segment_failures: VecDeque<(u32, String)>,
    /// (status, error type) answered to the next requests, in order.
    failures: VecDeque<(u16, String)>,
    /// Answers to the next Converse requests (then `Tool`).
    converse: VecDeque<ConverseMode>,
}

pub struct BedrockStub {
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Converse answers wait while a test holds this for writing (`hold_converse`).
    converse_gate: Arc<tokio::sync::RwLock<()>>,
}

impl BedrockStub {
    pub async fn start(embedder: Arc<dyn TextEmbedder>) -> BedrockStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let converse_gate = Arc::new(tokio::sync::RwLock::new(()));
        let (shared, gate) = (state.clone(), converse_gate.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (state, embedder, gate) = (shared.clone(), embedder.clone(), gate.clone());
                tokio::spawn(async move {
                    let _ = serve_connection(socket, state, embedder, gate).await;
                });
            }
        });
        BedrockStub {
            url,
            state,
            converse_gate,
        }
    }

    /// Converse requests are received and recorded but not answered until the guard is
    /// dropped: a Nova call that takes as long as the test wants.
    pub async fn hold_converse(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.converse_gate.clone().write_owned().await
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Converse requests received since the last `clear` (answered or held).
    pub fn converse_calls(&self) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path.ends_with("/converse"))
            .count()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// The next asynchronous invocation (embeddings or Data Automation) fails with
    /// `message`.
    pub fn fail_next_job(&self, message: &str) {
        self.state
            .lock()
            .unwrap()
            .job_failures
            .push_back(message.to_string());
    }

    /// The next segmented embedding job completes but its segment `index` fails with
    /// `reason` (a line with its own FAILURE status, as the service writes one).
    pub fn fail_next_segment(&self, index: u32, reason: &str) {
        self.state
            .lock()
            .unwrap()
            .segment_failures
            .push_back((index, reason.to_string()));
    }

    /// Puts an object into the stub's S3 ("bucket/key"), as an upload by someone else.
    pub fn put_object(&self, bucket_key: &str, bytes: Vec<u8>) {
        self.state
            .lock()
            .unwrap()
            .objects
            .insert(bucket_key.to_string(), bytes);
    }

    /// Removes an object from the stub's S3.
    pub fn delete_object(&self, bucket_key: &str) {
        self.state.lock().unwrap().objects.remove(bucket_key);
    }

    /// The S3 objects held now, as "bucket/key".
    pub fn objects(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.state.lock().unwrap().objects.keys().cloned().collect();
        keys.sort();
        keys
    }

    /// The next Converse requests are answered like this, in order.
    pub fn converse_next(&self, modes: &[ConverseMode]) {
        self.state
            .lock()
            .unwrap()
            .converse
            .extend(modes.iter().copied());
    }

    /// The next `times` requests fail with `status` and the service's `error_type`
    /// (e.g. 429 "ThrottlingException").
    pub fn fail_next(&self, status: u16, error_type: &str, times: usize) {
        let mut s = self.state.lock().unwrap();
        for _ in 0..times {
            s.failures.push_back((status, error_type.to_string()));
        }
    }
}

fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&path[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn serve_connection(
    socket: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
    embedder: Arc<dyn TextEmbedder>,
    converse_gate: Arc<tokio::sync::RwLock<()>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).await?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if headers
            .get("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        {
            write.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await?;
        }
        let mut raw = vec![0u8; length];
        reader.read_exact(&mut raw).await?;
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let path = match headers.get("x-amz-target") {
            // JSON-protocol services (Data Automation) post to "/" and name the operation.
            Some(target) => format!("/x-amz-target/{target}"),
            None => percent_decode(path),
        };
        let bedrock = ["/model/", "/async-invoke", "/x-amz-target/"];
        if !bedrock.iter().any(|p| path.starts_with(p)) {
            let (status, content_type, out) = s3(&state, &method, &path, query, raw);
            state.lock().unwrap().requests.push(Recorded {
                method: method.clone(),
                path: path.clone(),
                headers,
                body: Value::Null,
            });
            let head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\netag: \"stub\"\r\nx-amz-request-id: stub\r\n\r\n",
                if status < 300 { "OK" } else { "Error" },
                out.len()
            );
            write.write_all(head.as_bytes()).await?;
            write.write_all(&out).await?;
            continue;
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let (failure, mode) = {
            let mut s = state.lock().unwrap();
            s.requests.push(Recorded {
                method: method.clone(),
                path: path.clone(),
                headers,
                body: body.clone(),
            });
            let mode = if path.ends_with("/converse") {
                s.converse.pop_front().unwrap_or_default()
            } else {
                ConverseMode::Tool
            };
            (s.failures.pop_front(), mode)
        };
        let _pass = match path.ends_with("/converse") {
            true => Some(converse_gate.read().await),
            false => None,
        };
        let (status, error_type, answer) = match failure {
            Some((status, kind)) => (
                status,
                Some(kind.clone()),
                json!({ "message": format!("{kind} (queued by the test)") }),
            ),
            None => match answer(&method, &path, &body, embedder.as_ref(), mode, &state).await {
                Ok(v) => (200, None, v),
                Err((status, kind, message)) => (
                    status,
                    Some(kind.to_string()),
                    json!({ "message": message }),
                ),
            },
        };
        let text = serde_json::to_vec(&answer).unwrap();
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-amzn-requestid: stub-{}\r\n",
            if status == 200 { "OK" } else { "Error" },
            text.len(),
            state.lock().unwrap().requests.len()
        );
        if let Some(kind) = error_type {
            head.push_str(&format!(
                "x-amzn-errortype: {kind}:http://internal.amazon.com/coral/com.amazon.bedrock/\r\n"
            ));
        } else if path.ends_with("/invoke") {
            // InvokeModel reports the tokens it read in headers, as the service does.
            head.push_str(&format!(
                "x-amzn-bedrock-input-token-count: {}\r\nx-amzn-bedrock-output-token-count: 0\r\n",
                words_in(&body)
            ));
        }
        head.push_str("\r\n");
        write.write_all(head.as_bytes()).await?;
        write.write_all(&text).await?;
    }
}

type Failure = (u16, &'static str, String);

fn invalid(message: impl Into<String>) -> Failure {
    (400, "ValidationException", message.into())
}

async fn embed(embedder: &dyn TextEmbedder, text: &str, size: usize) -> Vec<f32> {
    let mut v = embedder
        .embed(&[text.to_string()], EmbedPurpose::Index)
        .await
        .expect("the stub's model embeds")
        .remove(0)
        .vector;
    v.resize(size, 0.0);
    v
}

async fn answer(
    method: &str,
    path: &str,
    body: &Value,
    embedder: &dyn TextEmbedder,
    mode: ConverseMode,
    state: &Arc<Mutex<State>>,
) -> Result<Value, Failure> {
    if let Some(model) = path
        .strip_prefix("/model/")
        .and_then(|p| p.strip_suffix("/converse"))
    {
        return converse(model, body, mode, state);
    }
    if path == "/async-invoke" && method == "POST" {
        return start_async_invoke(body, embedder, state).await;
    }
    if let Some(arn) = path.strip_prefix("/async-invoke/") {
        return get_async_invoke(arn, state);
    }
    match path.strip_prefix("/x-amz-target/AmazonBedrockKeystoneRuntimeService.") {
        Some("InvokeDataAutomationAsync") => return invoke_data_automation(body, state),
        Some("GetDataAutomationStatus") => return data_automation_status(body, state),
        Some(other) => {
            return Err((
                400,
                "UnknownOperationException",
                format!("{other} is not served here"),
            ))
        }
        None => {}
    }
    let model = path
        .strip_prefix("/model/")
        .and_then(|p| p.strip_suffix("/invoke"))
        .ok_or_else(|| {
            (
                404,
                "UnknownOperationException",
                format!("no route {method} {path}"),
            )
        })?;
    if method != "POST" {
        return Err(invalid("InvokeModel is a POST"));
    }
    match model {
        "amazon.titan-embed-text-v2:0" => {
            let text = body["inputText"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid("inputText: a non-empty string is required"))?;
            let dims = body["dimensions"].as_u64().unwrap_or(1024);
            if ![256, 512, 1024].contains(&dims) {
                return Err(invalid(format!("dimensions: 256, 512 or 1024, got {dims}")));
            }
            if text.chars().count() > 50_000 {
                return Err(invalid("inputText: at most 50,000 characters"));
            }
            let v = embed(embedder, text, dims as usize).await;
            Ok(json!({ "embedding": v, "inputTextTokenCount": text.split_whitespace().count() }))
        }
        "amazon.nova-2-multimodal-embeddings-v1:0" => {
            if body["schemaVersion"] != "nova-multimodal-embed-v1" {
                return Err(invalid("schemaVersion must be nova-multimodal-embed-v1"));
            }
            if body["taskType"] != "SINGLE_EMBEDDING" {
                return Err(invalid(
                    "taskType: InvokeModel takes SINGLE_EMBEDDING; SEGMENTED_EMBEDDING is asynchronous only",
                ));
            }
            let p = &body["singleEmbeddingParams"];
            let purposes = [
                "GENERIC_INDEX",
                "GENERIC_RETRIEVAL",
                "TEXT_RETRIEVAL",
                "IMAGE_RETRIEVAL",
                "VIDEO_RETRIEVAL",
                "DOCUMENT_RETRIEVAL",
                "AUDIO_RETRIEVAL",
                "CLASSIFICATION",
                "CLUSTERING",
            ];
            if !purposes.iter().any(|x| p["embeddingPurpose"] == *x) {
                return Err(invalid("embeddingPurpose is missing or unknown"));
            }
            let dims = p["embeddingDimension"].as_u64().unwrap_or(3072);
            if ![256, 384, 1024, 3072].contains(&dims) {
                return Err(invalid(format!(
                    "embeddingDimension: 256, 384, 1024 or 3072, got {dims}"
                )));
            }
            let given: Vec<&str> = ["text", "image", "video", "audio"]
                .into_iter()
                .filter(|k| !p[*k].is_null())
                .collect();
            if given.len() != 1 {
                return Err(invalid(format!(
                    "exactly one of text, image, video, audio per request, got {given:?}"
                )));
            }
            if given[0] == "video" {
                let video = &p["video"];
                check_video_params(video)?;
                let bytes = media(&video["source"], state)?;
                let frames = motion(&bytes)?;
                let seconds = frames.last().map_or(0.0, |f| f.0);
                if seconds > 30.0 {
                    return Err(invalid(
                        "video: SINGLE_EMBEDDING reads at most 30 seconds; use StartAsyncInvoke with SEGMENTED_EMBEDDING",
                    ));
                }
                let v = embed(embedder, caption(&frames), dims as usize).await;
                return Ok(
                    json!({ "embeddings": [{ "embeddingType": "AUDIO_VIDEO_COMBINED", "embedding": v }] }),
                );
            }
            let text = p["text"]["value"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    invalid("text.value: a non-empty string is required (text and video are embedded here)")
                })?;
            let v = embed(embedder, text, dims as usize).await;
            Ok(json!({ "embeddings": [{ "embeddingType": "TEXT", "embedding": v }] }))
        }
        "cohere.rerank-v3-5:0" => {
            if body["api_version"] != 2 {
                return Err(invalid("api_version must be 2"));
            }
            let query = body["query"]
                .as_str()
                .filter(|q| !q.trim().is_empty())
                .ok_or_else(|| invalid("query: a non-empty string is required"))?;
            let docs: Vec<&str> = body["documents"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if docs.is_empty() || docs.len() > 1000 {
                return Err(invalid("documents: 1 to 1000 strings"));
            }
            let top_n = body["top_n"].as_u64().unwrap_or(docs.len() as u64) as usize;
            let q = embed(embedder, query, 384).await;
            let mut results = Vec::new();
            for (i, d) in docs.iter().enumerate() {
                let v = embed(embedder, d, 384).await;
                let cos: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                results.push((i, (cos + 1.0) / 2.0));
            }
            results.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            results.truncate(top_n);
            Ok(json!({
                "id": "stub",
                "results": results
                    .iter()
                    .map(|(i, s)| json!({ "index": i, "relevance_score": s }))
                    .collect::<Vec<_>>(),
            }))
        }
        other => Err((
            404,
            "ResourceNotFoundException",
            format!("model {other} is not served here"),
        )),
    }
}

/// Converse for Nova models: checks the request the way the service does (one user
/// message with a video block of base64 MP4 under 25 MB and a text block; a tool with a
/// JSON schema; a tool choice naming it), then looks at the video it was sent: ffmpeg
/// measures each frame's change (`motion`) and each stretch where the picture moves becomes a
/// highlight (times from the clip's start; score and priority by how much it moves), none
/// when nothing moves (`mode` decides how it answers), with usage counted like Nova's:
/// about 290 input tokens per second of video plus the text.
fn converse(
    model: &str,
    body: &Value,
    mode: ConverseMode,
    state: &Arc<Mutex<State>>,
) -> Result<Value, Failure> {
    if !model.contains("nova") {
        return Err((
            404,
            "ResourceNotFoundException",
            format!("model {model} is not served here"),
        ));
    }
    let messages = body["messages"]
        .as_array()
        .ok_or_else(|| invalid("messages: a list is required"))?;
    if messages.len() != 1 || messages[0]["role"] != "user" {
        return Err(invalid("messages: one user message expected"));
    }
    let content = messages[0]["content"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let video = content
        .iter()
        .find(|c| !c["video"].is_null())
        .ok_or_else(|| invalid("the message has no video content block"))?;
    let text: String = content.iter().filter_map(|c| c["text"].as_str()).collect();
    if text.is_empty() {
        return Err(invalid("the message has no text content block"));
    }
    if video["video"]["format"] != "mp4" {
        return Err(invalid("video.format must match the container (mp4 here)"));
    }
    let bytes = media(&video["video"]["source"], state)?;
    if bytes.get(4..8) != Some(b"ftyp") {
        return Err(invalid("video.source.bytes is not an MP4 file"));
    }
    let tool = &body["toolConfig"]["tools"][0]["toolSpec"];
    let tool_name = tool["name"].as_str().unwrap_or("");
    if tool_name.is_empty() || tool["inputSchema"]["json"]["type"] != "object" {
        return Err(invalid(
            "toolConfig.tools[0].toolSpec needs a name and an inputSchema.json object",
        ));
    }
    if body["toolConfig"]["toolChoice"]["tool"]["name"] != tool_name {
        return Err(invalid("toolConfig.toolChoice must force the tool"));
    }
    let seconds = video_seconds(&bytes)?;
    let runs = motion_runs(&motion(&bytes)?);
    let round = |s: f64| (s * 10.0).round() / 10.0;
    // Asked to answer in Chinese (the prompt says 简体中文), it does.
    let chinese = text.contains("简体中文");
    let highlights = json!({
        "summary": match chinese {
            false => format!("A clip of {seconds:.1} seconds with {} moving stretch(es).", runs.len()),
            true => format!("一段 {seconds:.1} 秒的视频，有 {} 段画面在动。", runs.len()),
        },
        "highlights": runs.iter().map(|&(start, end, motion)| json!({
            "start": round(start),
            "end": round(end.min(seconds)),
            "score": round((0.5 + motion / 40.0).min(1.0)),
            "priority": if motion >= 12.0 { 1 } else if motion >= 6.0 { 2 } else { 3 },
            // In English, the words the stub's video embeddings use for what moves (they
            // speak English only); in Chinese, the same words translated.
            "description": if chinese { MOVING_ZH } else { MOVING },
            "reason": match chinese {
                false => format!("action (motion {motion:.1} from {start:.1} s to {end:.1} s)"),
                true => format!("动作（{start:.1} 秒到 {end:.1} 秒的运动 {motion:.1}）"),
            }
        })).collect::<Vec<_>>()
    });
    let block = match mode {
        ConverseMode::Tool => json!({ "toolUse": {
            "toolUseId": "tooluse_stub", "name": tool_name, "input": highlights } }),
        ConverseMode::Text => json!({ "text": format!(
            "Here are the highlights:\n```json\n{}\n```\nLet me know if you need more.",
            highlights
        ) }),
        ConverseMode::Garbage => json!({ "text": "I watched the clip and it was lovely." }),
    };
    let output_tokens = block.to_string().len() as u64 / 4;
    let input_tokens = (seconds.ceil() as u64) * 290 + text.split_whitespace().count() as u64;
    Ok(json!({
        "output": { "message": { "role": "assistant", "content": [block] } },
        "stopReason": if mode == ConverseMode::Tool { "tool_use" } else { "end_turn" },
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens
        },
        "metrics": { "latencyMs": 5 }
    }))
}

/// The length of an MP4 held in memory, by ffprobe.
/// Where the picture moves, from `motion`'s frames: a frame moves when its mean luma
/// change from the one before is over 2 (of 255); runs of moving frames (gaps up to 1 s
/// joined), each from the frame before its first to its last, as (start s, end s, mean
/// change), at least 1 s long.
fn motion_runs(frames: &[(f64, f64)]) -> Vec<(f64, f64, f64)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &(t, change)) in frames.iter().enumerate().skip(1) {
        if change <= 2.0 {
            continue;
        }
        match runs.last_mut() {
            Some((_, last)) if t - frames[*last].0 <= 1.0 + 1e-6 => *last = i,
            _ => runs.push((i, i)),
        }
    }
    runs.into_iter()
        .map(|(first, last)| {
            let run = &frames[first..=last];
            (
                frames[first - 1].0,
                frames[last].0,
                run.iter().map(|f| f.1).sum::<f64>() / run.len() as f64,
            )
        })
        .filter(|&(start, end, _)| end - start >= 1.0)
        .collect()
}

fn video_seconds(bytes: &[u8]) -> Result<f64, Failure> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mp4");
    std::fs::write(&path, bytes).unwrap();
    crate::media_seconds(&path).ok_or_else(|| invalid("the video could not be read"))
}

/// The bytes a `source` names: inline base64 (under 25 MB) or an object in the stub's S3.
fn media(source: &Value, state: &Arc<Mutex<State>>) -> Result<Vec<u8>, Failure> {
    use base64::Engine as _;
    let given = ["bytes", "s3Location"]
        .into_iter()
        .filter(|k| !source[*k].is_null())
        .count();
    if given != 1 {
        return Err(invalid("source: exactly one of bytes or s3Location"));
    }
    if let Some(b64) = source["bytes"].as_str() {
        if b64.len() > 25_000_000 {
            return Err(invalid(
                "source.bytes: the base64 payload is over 25 MB; use s3Location",
            ));
        }
        return base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| invalid(format!("source.bytes is not base64: {e}")));
    }
    let uri = source["s3Location"]["uri"]
        .as_str()
        .ok_or_else(|| invalid("source.s3Location.uri is required"))?;
    let key = uri
        .strip_prefix("s3://")
        .ok_or_else(|| invalid(format!("source.s3Location.uri {uri:?} is not an s3:// URI")))?;
    state
        .lock()
        .unwrap()
        .objects
        .get(key)
        .cloned()
        .ok_or_else(|| invalid(format!("source.s3Location.uri {uri}: no such object")))
}

fn check_video_params(video: &Value) -> Result<(), Failure> {
    let formats = [
        "mp4", "mov", "mkv", "webm", "flv", "mpeg", "mpg", "wmv", "3gp",
    ];
    if !formats.iter().any(|f| video["format"] == *f) {
        return Err(invalid("video.format is missing or unknown"));
    }
    if !["AUDIO_VIDEO_COMBINED", "AUDIO_VIDEO_SEPARATE"]
        .iter()
        .any(|m| video["embeddingMode"] == *m)
    {
        return Err(invalid("video.embeddingMode is missing or unknown"));
    }
    Ok(())
}

/// Per frame of an MP4 held in memory: (time s, mean luma change from the frame before).
fn motion(bytes: &[u8]) -> Result<Vec<(f64, f64)>, Failure> {
    if bytes.get(4..8) != Some(b"ftyp") {
        return Err(invalid("the video is not an MP4 file"));
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, stats) = (dir.path().join("v.mp4"), dir.path().join("ydif.txt"));
    std::fs::write(&path, bytes).unwrap();
    let ok = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&path)
        .arg("-vf")
        .arg(format!(
            "signalstats,metadata=mode=print:key=lavfi.signalstats.YDIF:file={}",
            stats.display()
        ))
        .args(["-f", "null", "-"])
        .status()
        .is_ok_and(|s| s.success());
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    if !ok || text.is_empty() {
        return Err(invalid("the video could not be read"));
    }
    let mut frames = Vec::new();
    let mut t = 0.0;
    for line in text.lines() {
        if let Some(pts) = line.split("pts_time:").nth(1) {
            t = pts.trim().parse().unwrap_or(t);
        } else if let Some(y) = line.strip_prefix("lavfi.signalstats.YDIF=") {
            frames.push((t, y.trim().parse().unwrap_or(0.0)));
        }
    }
    Ok(frames)
}

const MOVING: &str = "fast motion and action on screen";
const MOVING_ZH: &str = "画面中有快速的运动和动作";
const STILL: &str = "a static image";

/// What the stub "sees" in frames: moving or still.
fn caption(frames: &[(f64, f64)]) -> &'static str {
    let mean = frames.iter().skip(1).map(|f| f.1).sum::<f64>() / frames.len().max(2) as f64;
    if mean > 1.0 {
        MOVING
    } else {
        STILL
    }
}

/// `StartAsyncInvoke` for Nova Multimodal Embeddings' `SEGMENTED_EMBEDDING` of a video in
/// the stub's S3: validates like the service, embeds each segment, and writes the result
/// where the service does (`<s3Uri>/<invocation id>/embedding-audio-video.jsonl`).
async fn start_async_invoke(
    body: &Value,
    embedder: &dyn TextEmbedder,
    state: &Arc<Mutex<State>>,
) -> Result<Value, Failure> {
    let model = body["modelId"].as_str().unwrap_or("");
    if model != "amazon.nova-2-multimodal-embeddings-v1:0" {
        return Err(invalid(format!(
            "modelId {model:?} does not run asynchronously here"
        )));
    }
    let input = &body["modelInput"];
    if input["taskType"] != "SEGMENTED_EMBEDDING" {
        return Err(invalid(
            "modelInput.taskType: StartAsyncInvoke takes SEGMENTED_EMBEDDING",
        ));
    }
    let p = &input["segmentedEmbeddingParams"];
    if p["embeddingPurpose"] != "GENERIC_INDEX" {
        return Err(invalid(
            "segmentedEmbeddingParams.embeddingPurpose: GENERIC_INDEX is expected",
        ));
    }
    let dims = p["embeddingDimension"].as_u64().unwrap_or(3072);
    if ![256, 384, 1024, 3072].contains(&dims) {
        return Err(invalid(format!(
            "embeddingDimension: 256, 384, 1024 or 3072, got {dims}"
        )));
    }
    let given = ["text", "image", "video", "audio"]
        .into_iter()
        .filter(|k| !p[*k].is_null())
        .count();
    if given != 1 || p["video"].is_null() {
        return Err(invalid("exactly one modality per request (video here)"));
    }
    let video = &p["video"];
    check_video_params(video)?;
    let seconds = video["segmentationConfig"]["durationSeconds"]
        .as_u64()
        .unwrap_or(0);
    if !(1..=30).contains(&seconds) {
        return Err(invalid(format!(
            "video.segmentationConfig.durationSeconds: 1 to 30, got {seconds}"
        )));
    }
    if video["source"]["s3Location"].is_null() {
        return Err(invalid(
            "video.source: asynchronous jobs read from s3Location",
        ));
    }
    let bytes = media(&video["source"], state)?;
    let output = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        .as_str()
        .and_then(|u| u.strip_prefix("s3://"))
        .ok_or_else(|| invalid("outputDataConfig.s3OutputDataConfig.s3Uri is required"))?
        .trim_end_matches('/')
        .to_string();
    let frames = motion(&bytes)?;
    let length = frames.last().map_or(0.0, |f| f.0) + 0.25;
    let failing = state.lock().unwrap().segment_failures.pop_front();
    let mut lines = String::new();
    let mut k = 0;
    while (k as f64) * (seconds as f64) < length - 0.01 {
        let (start, end) = (
            (k * seconds) as f64,
            (((k + 1) * seconds) as f64).min(length),
        );
        let inside: Vec<(f64, f64)> = frames
            .iter()
            .copied()
            .filter(|f| f.0 >= start && f.0 < end)
            .collect();
        let meta = json!({
            "segmentIndex": k,
            "segmentStartSeconds": start,
            "segmentEndSeconds": end,
        });
        let line = match &failing {
            Some((index, reason)) if *index as u64 == k => json!({
                "segmentMetadata": meta,
                "status": "FAILURE",
                "failureReason": reason,
            }),
            _ => json!({
                "embedding": embed(embedder, caption(&inside), dims as usize).await,
                "segmentMetadata": meta,
                "status": "SUCCESS",
            }),
        };
        lines.push_str(&line.to_string());
        lines.push('\n');
        k += 1;
    }
    let id = format!("stub{:08x}", rand_id(state));
    let arn = format!("arn:aws:bedrock:us-east-1:123456789012:async-invoke/{id}");
    let mut s = state.lock().unwrap();
    let failure = s.job_failures.pop_front();
    if failure.is_some() {
        lines.clear();
    }
    s.objects.insert(
        format!("{output}/{id}/embedding-audio-video.jsonl"),
        lines.into_bytes(),
    );
    s.objects.insert(
        format!("{output}/{id}/manifest.json"),
        json!({ "embeddingResults": [{
            "embeddingType": "AUDIO_VIDEO_COMBINED", "status": "SUCCESS",
            "outputFileUri": format!("s3://{output}/{id}/embedding-audio-video.jsonl")
        }] })
        .to_string()
        .into_bytes(),
    );
    s.jobs.insert(
        arn.clone(),
        Job {
            polls: 0,
            failure,
            output_uri: format!("s3://{output}/"),
            model: model.to_string(),
            token: body["clientRequestToken"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        },
    );
    Ok(json!({ "invocationArn": arn }))
}

fn rand_id(state: &Arc<Mutex<State>>) -> u32 {
    let s = state.lock().unwrap();
    (s.requests.len() as u32).wrapping_mul(2_654_435_761) ^ s.jobs.len() as u32
}

fn get_async_invoke(arn: &str, state: &Arc<Mutex<State>>) -> Result<Value, Failure> {
    let mut s = state.lock().unwrap();
    let job = s.jobs.get_mut(arn).ok_or_else(|| {
        (
            404,
            "ResourceNotFoundException",
            format!("no invocation {arn}"),
        )
    })?;
    job.polls += 1;
    let done = job.polls > 1;
    let mut answer = json!({
        "invocationArn": arn,
        "modelArn": format!("arn:aws:bedrock:us-east-1::foundation-model/{}", job.model),
        "clientRequestToken": job.token,
        "status": match (done, &job.failure) {
            (false, _) => "InProgress",
            (true, None) => "Completed",
            (true, Some(_)) => "Failed",
        },
        "submitTime": "2026-11-21T12:00:00Z",
        "lastModifiedTime": "2026-11-21T12:00:01Z",
        "outputDataConfig": { "s3OutputDataConfig": { "s3Uri": job.output_uri } },
    });
    if done {
        answer["endTime"] = json!("2026-11-21T12:00:02Z");
    }
    if let (true, Some(message)) = (done, &job.failure) {
        answer["failureMessage"] = json!(message);
    }
    Ok(answer)
}

/// Path-style S3 in memory: PUT, GET and DELETE of `/bucket/key`, and ListObjectsV2 of
/// `/bucket?list-type=2&prefix=...`. (status, content type, body)
/// An object's entity tag: a digest of its bytes (S3 uses MD5 for single-part uploads;
/// what matters is that the same bytes give the same tag).
fn etag(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

fn s3(
    state: &Arc<Mutex<State>>,
    method: &str,
    path: &str,
    query: &str,
    body: Vec<u8>,
) -> (u16, &'static str, Vec<u8>) {
    let error = |status: u16, code: &str, message: &str| {
        (
            status,
            "application/xml",
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>")
                .into_bytes(),
        )
    };
    let name = path.trim_start_matches('/');
    let mut s = state.lock().unwrap();
    match (method, name.split_once('/')) {
        ("PUT", Some((_, key))) if !key.is_empty() => {
            s.objects.insert(name.to_string(), body);
            (200, "application/xml", Vec::new())
        }
        ("GET", Some((_, key))) if !key.is_empty() => match s.objects.get(name) {
            Some(bytes) => (200, "application/octet-stream", bytes.clone()),
            None => error(404, "NoSuchKey", "The specified key does not exist."),
        },
        ("DELETE", Some(_)) => {
            s.objects.remove(name);
            (204, "application/xml", Vec::new())
        }
        ("GET", _) if query.contains("list-type=2") => {
            let bucket = name.trim_end_matches('/');
            let prefix = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("prefix="))
                .map(percent_decode)
                .unwrap_or_default();
            let full = format!("{bucket}/{prefix}");
            let mut keys: Vec<(&String, usize, String)> = s
                .objects
                .iter()
                .filter(|(k, _)| k.starts_with(&full))
                .map(|(k, v)| (k, v.len(), etag(v)))
                .collect();
            keys.sort();
            let contents: String = keys
                .iter()
                .map(|(k, n, etag)| {
                    format!(
                        "<Contents><Key>{}</Key><Size>{n}</Size><ETag>&quot;{etag}&quot;</ETag><StorageClass>STANDARD</StorageClass></Contents>",
                        &k[bucket.len() + 1..]
                    )
                })
                .collect();
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{bucket}</Name><Prefix>{prefix}</Prefix><KeyCount>{}</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>",
                keys.len()
            );
            (200, "application/xml", xml.into_bytes())
        }
        _ => error(
            400,
            "InvalidRequest",
            &format!("{method} {path} is not served here"),
        ),
    }
}

/// `InvokeDataAutomationAsync` with a project's standard output for a video in the stub's
/// S3: checks the request like the service, then writes what the service writes under
/// the output location (`<job>/job_metadata.json` pointing at
/// `<job>/0/standard_output/0/result.json`): the video's metadata, a summary, and one
/// chapter per 10 s saying what the stub sees in it (moving or still).
fn invoke_data_automation(body: &Value, state: &Arc<Mutex<State>>) -> Result<Value, Failure> {
    let input = body["inputConfiguration"]["s3Uri"]
        .as_str()
        .ok_or_else(|| invalid("inputConfiguration.s3Uri is required"))?;
    let output = body["outputConfiguration"]["s3Uri"]
        .as_str()
        .and_then(|u| u.strip_prefix("s3://"))
        .ok_or_else(|| invalid("outputConfiguration.s3Uri: an s3:// URI is required"))?
        .trim_end_matches('/')
        .to_string();
    let project = body["dataAutomationConfiguration"]["dataAutomationProjectArn"]
        .as_str()
        .unwrap_or("");
    if !project.starts_with("arn:aws:bedrock:") || !project.contains(":data-automation-project/") {
        return Err(invalid(format!(
            "dataAutomationConfiguration.dataAutomationProjectArn is not a project ARN: {project:?}"
        )));
    }
    if !body["dataAutomationProfileArn"]
        .as_str()
        .is_some_and(|a| a.contains(":data-automation-profile/"))
    {
        return Err(invalid("dataAutomationProfileArn is required"));
    }
    let bytes = media(&json!({ "s3Location": { "uri": input } }), state)?;
    let frames = motion(&bytes)?;
    let duration_ms = (video_seconds(&bytes)? * 1000.0).round() as i64;
    let (bucket, key) = input
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .unwrap_or(("", ""));
    let chapters: Vec<Value> = (0..duration_ms)
        .step_by(10_000)
        .map(|start| {
            let end = (start + 10_000).min(duration_ms);
            let inside: Vec<(f64, f64)> = frames
                .iter()
                .copied()
                .filter(|f| f.0 * 1000.0 >= start as f64 && (f.0 * 1000.0) < end as f64)
                .collect();
            json!({
                "start_timestamp_millis": start,
                "end_timestamp_millis": end,
                "duration_millis": end - start,
                "summary": caption(&inside),
            })
        })
        .collect();
    let moving = chapters.iter().filter(|c| c["summary"] == MOVING).count();
    let result = json!({
        "metadata": {
            "id": "stub-video",
            "semantic_modality": "VIDEO",
            "asset_id": "0",
            "s3_bucket": bucket,
            "s3_key": key,
            "format": "QuickTime / MOV",
            "duration_millis": duration_ms,
        },
        "statistics": { "chapter_count": chapters.len() },
        "video": {
            "summary": format!(
                "A video of {} seconds; {moving} of its {} chapters show fast motion and action.",
                duration_ms / 1000,
                chapters.len()
            ),
        },
        "chapters": chapters,
    });
    let mut s = state.lock().unwrap();
    let id = format!("bda{:04}", s.bda_jobs.len());
    let result_uri = format!("s3://{output}/{id}/0/standard_output/0/result.json");
    let metadata_uri = format!("s3://{output}/{id}/job_metadata.json");
    s.objects.insert(
        result_uri["s3://".len()..].to_string(),
        result.to_string().into_bytes(),
    );
    s.objects.insert(
        metadata_uri["s3://".len()..].to_string(),
        json!({
            "job_id": id,
            "job_status": "PROCESSED",
            "semantic_modality": "VIDEO",
            "output_metadata": [{
                "asset_id": 0,
                "segment_metadata": [{ "standard_output_path": result_uri }]
            }]
        })
        .to_string()
        .into_bytes(),
    );
    let arn = format!("arn:aws:bedrock:us-east-1:123456789012:data-automation-invocation/{id}");
    let failure = s.job_failures.pop_front();
    s.bda_jobs.insert(arn.clone(), (0, metadata_uri, failure));
    Ok(json!({ "invocationArn": arn }))
}

/// `GetDataAutomationStatus`: `InProgress` to the first poll, then `Success` naming
/// `job_metadata.json` (or `ClientError` with the message `fail_next_job` queued).
fn data_automation_status(body: &Value, state: &Arc<Mutex<State>>) -> Result<Value, Failure> {
    let arn = body["invocationArn"]
        .as_str()
        .ok_or_else(|| invalid("invocationArn is required"))?;
    let mut s = state.lock().unwrap();
    let (polls, metadata, failure) = s.bda_jobs.get_mut(arn).ok_or_else(|| {
        (
            404,
            "ResourceNotFoundException",
            format!("no invocation {arn}"),
        )
    })?;
    *polls += 1;
    Ok(match (*polls, failure) {
        (1, _) => json!({ "status": "InProgress" }),
        (_, Some(message)) => json!({
            "status": "ClientError",
            "errorType": "InvalidInput",
            "errorMessage": message.clone(),
        }),
        _ => json!({
            "status": "Success",
            "outputConfiguration": { "s3Uri": metadata.clone() },
            "jobSubmissionTime": "2026-11-21T12:00:00Z",
            "jobCompletionTime": "2026-11-21T12:01:00Z",
            "jobDurationInSeconds": 60
        }),
    })
}

/// Words in every string of a request (the stub's token count).
fn words_in(value: &Value) -> usize {
    match value {
        Value::String(s) => s.split_whitespace().count(),
        Value::Array(items) => items.iter().map(words_in).sum(),
        Value::Object(map) => map.values().map(words_in).sum(),
        _ => 0,
    }
}
