//! Nova Lite / Pro as the video analyser, through Converse: each slice (or the whole
//! video, for Direct) becomes an analysis proxy (`media::proxy`) sent as a video content
//! block, with a prompt in the design's shape (the task in steps, explicit highlight
//! dimensions, the true duration as a bound) and a tool whose JSON schema the model must
//! fill (a forced tool choice: Nova's constrained decoding). A text answer instead of the
//! tool call is read by the robust JSON parser. Token usage and bytes sent are recorded
//! per call. A proxy over `models.bedrock.inline_video_limit_bytes` is put in the S3
//! staging location and passed as an `s3Location`, then removed.

use std::path::PathBuf;

use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput, InferenceConfiguration, Message, S3Location,
    SpecificToolChoice, SystemContentBlock, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification, VideoBlock, VideoFormat, VideoSource,
};
use aws_smithy_types::{Document, Number};
use serde_json::{json, Value};

use super::{sdk_error, Bedrock, VideoPayload};
use crate::analysis::{
    Baseline, BoxFuture, Language, ModelUsage, SegmentCandidate, SignalWindow, SliceAnalysis,
    SliceInput, VideoAnalyzer,
};
use reelforge_core::answer::parse_model_segments;
use reelforge_core::error::{Error, Result};
use reelforge_media::proxy::{self, ProxySpec};

pub const TOOL_NAME: &str = "report_highlights";
/// The prompt and tool schema's version: a stored analysis made with another is not
/// reused. Bump it with any change to `prompt`, `sound_cues` or `tool_schema`.
pub const PROMPT_VERSION: &str = "prompt-4";
/// Lines of on-screen text a prompt names at most.
const MAX_TEXT_CUES: usize = 8;

/// Nova understanding models that take video (Nova Micro reads text only; Sonic, Canvas
/// and Reel are speech and generation models): Nova Lite, Pro and Premier, Nova 2 Lite
/// and Pro.
const VIDEO_MODELS: [&str; 5] = [
    "nova-lite-",
    "nova-pro-",
    "nova-premier-",
    "nova-2-lite-",
    "nova-2-pro-",
];
/// Cross-region inference profile prefixes a model id may carry.
const PROFILE_PREFIXES: [&str; 8] = [
    "us.", "eu.", "apac.", "global.", "us-gov.", "ca.", "jp.", "au.",
];

/// Whether `model_id` names a Nova model that takes video: a base model id
/// (`amazon.nova-lite-v1:0`), a cross-region profile of one (`us.amazon.nova-pro-v1:0`),
/// or an ARN of either. An application inference profile or provisioned model ARN says
/// nothing of its model: `Ok(false)` is never answered for those, `Err` says to check.
pub fn takes_video(model_id: &str) -> std::result::Result<bool, String> {
    let name = model_id.rsplit('/').next().unwrap_or(model_id);
    if model_id.starts_with("arn:")
        && (model_id.contains(":application-inference-profile/")
            || model_id.contains(":provisioned-model/"))
    {
        return Err(format!(
            "{model_id} does not name its model: make sure it is a Nova model that takes              video (Nova Lite, Pro, Premier, Nova 2 Lite or Pro)"
        ));
    }
    let base = PROFILE_PREFIXES
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    Ok(base
        .strip_prefix("amazon.")
        .is_some_and(|m| VIDEO_MODELS.iter().any(|v| m.starts_with(v))))
}
/// The longest video Nova reads at 1 frame a second (beyond, it samples 960 frames).
pub const MAX_FULL_RATE_MS: i64 = 16 * 60 * 1000;

pub struct NovaAnalyzer {
    bedrock: Bedrock,
    model_id: String,
    name: String,
    ffmpeg: String,
    work_dir: PathBuf,
    proxy: ProxySpec,
}

impl NovaAnalyzer {
    pub fn new(bedrock: Bedrock, model_id: &str, ffmpeg: &str, work_dir: PathBuf) -> Self {
        NovaAnalyzer {
            bedrock,
            model_id: model_id.to_string(),
            name: format!("bedrock:{model_id}"),
            ffmpeg: ffmpeg.to_string(),
            work_dir,
            proxy: ProxySpec::default(),
        }
    }
}

/// The tool's input schema: what the model must fill.
pub fn tool_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": { "type": "string", "description": "One sentence on what the clip shows." },
            "highlights": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "start": { "type": "number", "description": "Seconds from the clip's start." },
                        "end": { "type": "number", "description": "Seconds from the clip's start, after start." },
                        "score": { "type": "number", "description": "0 to 1: how strong a highlight." },
                        "priority": { "type": "integer", "enum": [1, 2, 3], "description": "1 must have, 3 nice to have." },
                        "description": { "type": "string" },
                        "reason": { "type": "string", "description": "Which highlight dimensions it meets." }
                    },
                    "required": ["start", "end", "score", "priority", "description"]
                }
            }
        },
        "required": ["summary", "highlights"]
    })
}

/// The prompt for one clip of `duration_ms`, with `sound`: what we measured of the
/// clip's audio (`sound_cues`), since Nova is sent the pictures only, and `text`: the
/// lines our OCR read on its pictures (`text_cues`; empty: none), in a section of their
/// own; written in `language`, and asking for the answer's words in it.
///
/// Nova's video understanding samples frames (1 a second up to 16 minutes, resized to
/// 672×672: "Video understanding", Amazon Nova User Guide) and nothing in its
/// documentation says the audio track is used; the analysis proxy carries no audio, and
/// the prompt says so and asks the model to judge sound from our measurements only.
pub fn prompt(duration_ms: i64, sound: &str, text: &str, language: Language) -> String {
    let d = duration_ms as f64 / 1000.0;
    let text = match (text.is_empty(), language) {
        (true, _) => String::new(),
        (false, Language::English) => format!(
            "Text our OCR read on its pictures (times in seconds from the clip's start):{text}\n"
        ),
        (false, Language::Chinese) => {
            format!("我们的文字识别在画面上读到的文字（时间为从视频开头算起的秒数）：{text}\n")
        }
    };
    match language {
        Language::English => format!(
            "You are a video editor choosing highlights.\n\
             The clip is {d:.1} seconds long; every time you give is in seconds from its start, \
             between 0 and {d:.1}.\n\
             You see its pictures only: its sound is not sent. What we measured of its sound \
             (times in seconds from the clip's start):\n{sound}\n{text}\
             Work step by step:\n\
             1. Watch the whole clip and note what happens, in order.\n\
             2. Judge each moment on these dimensions: action and motion, emotional peaks \
             (cheering, laughter, surprise, as the pictures show them), key events (goals, \
             reveals, arrivals), visual spectacle, and sound (only from the measurements \
             above: sudden loud audio, a rise in level, the sounds our tagger heard).\n\
             3. Choose the moments that score high on at least one dimension; each is 1 to 20 \
             seconds long and they do not overlap.\n\
             4. Give each a score from 0 to 1, a priority (1 must have, 2 good, 3 nice to have), \
             a one-sentence description and the dimensions it meets.\n\
             Answer by calling the {TOOL_NAME} tool. If you cannot, answer with JSON only, for \
             example: {{\"summary\": \"A cyclist races downhill.\", \"highlights\": [{{\"start\": \
             3.0, \"end\": 8.5, \"score\": 0.9, \"priority\": 1, \"description\": \"The rider \
             jumps the ramp.\", \"reason\": \"action\"}}]}}.\n\
             If nothing stands out, return an empty highlights list."
        ),
        Language::Chinese => format!(
            "你是一名挑选高光片段的视频剪辑师。\n\
             这段视频长 {d:.1} 秒；你给出的每个时间都是从视频开头算起的秒数，在 0 到 {d:.1} 之间。\n\
             你只能看到画面：声音没有发送给你。我们测得的声音情况（时间为从视频开头算起的秒数）：\n\
             {sound}\n{text}\
             请按步骤进行：\n\
             1. 看完整段视频，按顺序记下发生了什么。\n\
             2. 从这些维度评判每个时刻：动作与运动、情绪高点（画面中表现出的欢呼、大笑、惊讶）、\
             关键事件（进球、揭晓、到达）、视觉奇观，以及声音（只根据上面的测量：突然的响声、音量上升、\
             我们的声音识别听到的声音）。\n\
             3. 选出至少在一个维度上得分高的时刻；每个时刻 1 到 20 秒，互不重叠。\n\
             4. 给每个时刻打 0 到 1 的分数、优先级（1 必须有，2 好，3 可有可无）、一句话的描述，\
             以及它满足的维度。\n\
             summary、description 和 reason 都用简体中文书写。\n\
             调用 {TOOL_NAME} 工具作答。如果无法调用，只回答 JSON，例如：\
             {{\"summary\": \"一名自行车手冲下山坡。\", \"highlights\": [{{\"start\": 3.0, \
             \"end\": 8.5, \"score\": 0.9, \"priority\": 1, \"description\": \"车手飞越跳台。\", \
             \"reason\": \"动作\"}}]}}。\n\
             如果没有突出的时刻，返回空的 highlights 列表。"
        ),
    }
}

/// The system prompt, in `language`.
fn system_prompt(language: Language) -> &'static str {
    match language {
        Language::English => "You find the highlights of videos and report them precisely.",
        Language::Chinese => "你负责找出视频中的高光时刻，并准确地报告。",
    }
}

/// A rise in level this large over the running level (or the second before) is a cue.
const SOUND_RISE_DB: f32 = 10.0;
/// Most sound cues listed in a prompt.
const MAX_SOUND_CUES: usize = 6;

/// Our measurements of a clip's sound as prompt lines: its level, its loudest moment, and
/// the sudden rises (times in seconds from `start_ms`), in `language`.
pub fn sound_cues(
    windows: &[SignalWindow],
    baseline: Baseline,
    start_ms: i64,
    language: Language,
) -> String {
    let zh = language == Language::Chinese;
    use reelforge_media::signals::SILENCE_DB;
    let audible: Vec<&SignalWindow> = windows
        .iter()
        .filter(|w| w.loudness_db > SILENCE_DB + 1.0)
        .collect();
    if audible.is_empty() {
        return if zh {
            "- 没有可闻的声音"
        } else {
            "- no audible sound"
        }
        .to_string();
    }
    let at = |w: &SignalWindow| (w.start_ms - start_ms) as f64 / 1000.0;
    let mean = audible.iter().map(|w| w.loudness_db).sum::<f32>() / audible.len() as f32;
    // The first of the loudest.
    let loudest = audible
        .iter()
        .min_by(|a, b| b.loudness_db.total_cmp(&a.loudness_db))
        .unwrap();
    let before = baseline.loudness_db;
    let (t, db) = (at(loudest), loudest.loudness_db);
    let mut lines = match (zh, baseline.windows > 0) {
        (false, true) => vec![format!(
            "- level {mean:.0} dBFS on average ({before:.0} dBFS before the clip)"
        )],
        (false, false) => vec![format!("- level {mean:.0} dBFS on average")],
        (true, true) => vec![format!(
            "- 平均音量 {mean:.0} dBFS（这段之前为 {before:.0} dBFS）"
        )],
        (true, false) => vec![format!("- 平均音量 {mean:.0} dBFS")],
    };
    lines.push(match zh {
        false => format!("- loudest at {t:.1} s ({db:.0} dBFS)"),
        true => format!("- 最响处在 {t:.1} 秒（{db:.0} dBFS）"),
    });
    let running = if baseline.windows > 0 {
        baseline.loudness_db
    } else {
        mean
    };
    let mut rises: Vec<(f64, f32)> = windows
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            let before = windows[i.saturating_sub(2)..i]
                .iter()
                .map(|p| p.loudness_db)
                .fold(f32::MIN, f32::max);
            let rise = w.loudness_db - running.max(if i > 0 { before } else { running });
            (w.loudness_db > SILENCE_DB + 1.0 && rise >= SOUND_RISE_DB).then(|| (at(w), rise))
        })
        .collect();
    // The largest rises, listed in time order.
    rises.sort_by(|a, b| b.1.total_cmp(&a.1));
    rises.truncate(MAX_SOUND_CUES);
    rises.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (t, rise) in rises {
        lines.push(match zh {
            false => format!("- sudden loud sound at {t:.1} s (+{rise:.0} dB)"),
            true => format!("- {t:.1} 秒处突然出现响声（+{rise:.0} dB）"),
        });
    }
    lines.join("\n")
}

/// What our sound tagger heard in the clip `[start_ms, end_ms)` as prompt lines, one per
/// sound (its strongest stretch; the six best, in time order; times in seconds from the
/// clip's start), in `language`. Empty when nothing was heard.
pub fn heard_cues(
    sounds: &[crate::sound::SoundEvent],
    start_ms: i64,
    end_ms: i64,
    language: Language,
) -> String {
    let mut best: Vec<&crate::sound::SoundEvent> = Vec::new();
    for e in sounds
        .iter()
        .filter(|e| e.start_ms < end_ms && e.end_ms > start_ms)
    {
        match best.iter_mut().find(|b| b.label == e.label) {
            Some(b) if b.score < e.score => *b = e,
            Some(_) => {}
            None => best.push(e),
        }
    }
    best.sort_by(|a, b| b.score.total_cmp(&a.score));
    best.truncate(MAX_SOUND_CUES);
    best.sort_by_key(|e| e.start_ms);
    let at = |ms: i64| (ms.clamp(start_ms, end_ms) - start_ms) as f64 / 1000.0;
    best.iter()
        .map(|e| {
            let (from, to, score) = (at(e.start_ms), at(e.end_ms), e.score);
            match language {
                Language::English => format!(
                    "\n- heard by our sound tagger: {} from {from:.1} to {to:.1} s (score {score:.2})",
                    e.label.to_lowercase()
                ),
                Language::Chinese => format!(
                    "\n- 我们的声音识别听到：{}，{from:.1} 到 {to:.1} 秒（得分 {score:.2}）",
                    crate::sound::chinese_name(&e.label).unwrap_or(&e.label)
                ),
            }
        })
        .collect()
}

/// The lines of text our OCR read on the pictures of the clip `[start_ms, end_ms)`, as
/// prompt lines (each with when it was first seen, in seconds from the clip's start; at
/// most `MAX_TEXT_CUES`). Empty when none was read.
pub fn text_cues(
    sights: &[crate::vision::Sight],
    start_ms: i64,
    end_ms: i64,
    language: Language,
) -> String {
    crate::vision::text_spans(crate::vision::within(sights, start_ms, end_ms))
        .into_iter()
        .take(MAX_TEXT_CUES)
        .map(|(text, from, _)| {
            let at = (from - start_ms) as f64 / 1000.0;
            match language {
                Language::English => format!("\n- at {at:.1} s: \"{text}\""),
                Language::Chinese => format!("\n- {at:.1} 秒：「{text}」"),
            }
        })
        .collect()
}

pub fn json_to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Number::PosInt(u),
            (None, Some(i)) => Number::NegInt(i),
            _ => Number::Float(n.as_f64().unwrap_or(0.0)),
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(json_to_document).collect()),
        Value::Object(o) => Document::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_document(v)))
                .collect(),
        ),
    }
}

pub fn document_to_json(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => json!(u),
        Document::Number(Number::NegInt(i)) => json!(i),
        Document::Number(Number::Float(f)) => json!(f),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(document_to_json).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), document_to_json(v)))
                .collect(),
        ),
    }
}

fn build<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> Result<T> {
    r.map_err(|e| Error::internal(format!("building a Converse request: {e}")))
}

impl NovaAnalyzer {
    async fn analyze(&self, input: SliceInput<'_>) -> Result<SliceAnalysis> {
        tokio::fs::create_dir_all(&self.work_dir).await?;
        let dir = tempfile::tempdir_in(&self.work_dir)?;
        let proxy_path = dir.path().join("proxy.mp4");
        let sent = proxy::make(
            &self.ffmpeg,
            input.source,
            input.start_ms,
            input.end_ms,
            self.proxy,
            &proxy_path,
        )
        .await?;
        let source_size = tokio::fs::metadata(input.source)
            .await
            .map_or(0, |m| m.len());
        let what = format!("the analysis proxy of slice {}", input.index);
        let payload = self
            .bedrock
            .video_payload(&proxy_path, sent, &what, "proxies")
            .await?;
        let staged = payload.staged_key();
        let answer = self.converse(payload, sent, source_size, &input).await;
        self.bedrock.release(staged).await;
        answer
    }

    async fn converse(
        &self,
        payload: VideoPayload,
        sent: u64,
        source_size: u64,
        input: &SliceInput<'_>,
    ) -> Result<SliceAnalysis> {
        let source = match payload {
            VideoPayload::Inline(bytes) => VideoSource::Bytes(Blob::new(bytes)),
            VideoPayload::Staged { uri, owner, .. } => VideoSource::S3Location(build(
                S3Location::builder()
                    .uri(uri)
                    .set_bucket_owner(owner)
                    .build(),
            )?),
        };
        let video = build(
            VideoBlock::builder()
                .format(VideoFormat::Mp4)
                .source(source)
                .build(),
        )?;
        let duration_ms = input.end_ms - input.start_ms;
        let message = build(
            Message::builder()
                .role(ConversationRole::User)
                .content(ContentBlock::Video(video))
                .content(ContentBlock::Text(prompt(
                    duration_ms,
                    &(sound_cues(
                        input.windows,
                        input.baseline,
                        input.start_ms,
                        input.language,
                    ) + &heard_cues(input.sounds, input.start_ms, input.end_ms, input.language)),
                    &text_cues(input.sights, input.start_ms, input.end_ms, input.language),
                    input.language,
                )))
                .build(),
        )?;
        let tool = build(
            ToolSpecification::builder()
                .name(TOOL_NAME)
                .description("Report the clip's highlights with times in seconds from its start.")
                .input_schema(ToolInputSchema::Json(json_to_document(&tool_schema())))
                .build(),
        )?;
        let tools = build(
            ToolConfiguration::builder()
                .tools(Tool::ToolSpec(tool))
                .tool_choice(ToolChoice::Tool(build(
                    SpecificToolChoice::builder().name(TOOL_NAME).build(),
                )?))
                .build(),
        )?;
        let out = {
            let _permit = self.bedrock.permit().await?;
            self.bedrock
                .client
                .converse()
                .model_id(&self.model_id)
                .system(SystemContentBlock::Text(
                    system_prompt(input.language).into(),
                ))
                .messages(message)
                .tool_config(tools)
                .inference_config(
                    InferenceConfiguration::builder()
                        .max_tokens(2048)
                        .temperature(0.0)
                        .build(),
                )
                .customize()
                .config_override(self.bedrock.video_call())
                .send()
                .await
                .map_err(|e| sdk_error(&self.model_id, e))?
        };
        let call = ModelUsage {
            input_tokens: out.usage().map_or(0, |t| t.input_tokens().max(0) as u64),
            output_tokens: out.usage().map_or(0, |t| t.output_tokens().max(0) as u64),
            bytes_sent: sent,
            source_bytes: if input.video_duration_ms > 0 {
                source_size * duration_ms as u64 / input.video_duration_ms as u64
            } else {
                0
            },
        };
        super::telemetry::add_tokens(&self.model_id, call.input_tokens, call.output_tokens);
        // The tool call's input, or JSON in a text answer.
        let mut answer: Option<Value> = None;
        let mut text = String::new();
        if let Some(ConverseOutput::Message(m)) = out.output() {
            for block in m.content() {
                match block {
                    ContentBlock::ToolUse(t) if t.name() == TOOL_NAME => {
                        answer = Some(document_to_json(t.input()))
                    }
                    ContentBlock::Text(t) => text.push_str(t),
                    _ => {}
                }
            }
        }
        let answer_text = match &answer {
            Some(v) => v.to_string(),
            None => text,
        };
        let (segments, rejected) =
            parse_model_segments(&answer_text, "", &self.name, input.start_ms, duration_ms)
                .map_err(|e| {
                    Error::Unavailable(format!(
                        "{} answered slice {} without usable highlights: {e}",
                        self.name, input.index
                    ))
                })?;
        let summary = extract_summary(&answer_text);
        let n = input.windows.len().max(1) as f32;
        let mut description = summary.clone();
        if !rejected.is_empty() {
            description.push_str(&format!(
                " ({} proposed highlights rejected: {})",
                rejected.len(),
                rejected[0].reason
            ));
        }
        Ok(SliceAnalysis {
            index: input.index,
            start_ms: input.start_ms,
            end_ms: input.end_ms,
            highlight_score: segments.iter().map(|s| s.score).fold(0.0, f32::max),
            motion_mean: input.windows.iter().map(|w| w.motion).sum::<f32>() / n,
            loudness_mean_db: input.windows.iter().map(|w| w.loudness_db).sum::<f32>() / n,
            cut_points_ms: input.cut_points_ms.to_vec(),
            segments: segments
                .into_iter()
                .map(|s| SegmentCandidate {
                    start_ms: s.start_ms,
                    end_ms: s.end_ms,
                    score: s.score,
                    priority: s.priority,
                    description: s.description,
                    reason: s.reason,
                })
                .collect(),
            description,
            analyzer: self.name.clone(),
            version: PROMPT_VERSION.to_string(),
            language: input.language,
            keyframe_aligned: false,
            usage: Some(call),
            error: None,
        })
    }
}

fn extract_summary(answer: &str) -> String {
    reelforge_core::answer::extract_json(answer)
        .and_then(|v| v["summary"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl VideoAnalyzer for NovaAnalyzer {
    fn name(&self) -> &str {
        &self.name
    }

    fn analyze_slice<'a>(&'a self, input: SliceInput<'a>) -> BoxFuture<'a, Result<SliceAnalysis>> {
        Box::pin(self.analyze(input))
    }

    /// Nova samples 1 frame a second up to 16 minutes, and a fixed 960 frames beyond.
    fn max_span_ms(&self) -> Option<i64> {
        Some(MAX_FULL_RATE_MS)
    }

    fn version(&self) -> &str {
        PROMPT_VERSION
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nova_models_that_take_video_are_analysers() {
        for id in [
            "us.amazon.nova-lite-v1:0",
            "amazon.nova-pro-v1:0",
            "eu.amazon.nova-premier-v1:0",
            "global.amazon.nova-2-lite-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-pro-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
        ] {
            assert_eq!(takes_video(id), Ok(true), "{id}");
        }
        for id in [
            "us.amazon.nova-micro-v1:0",
            "amazon.nova-sonic-v1:0",
            "amazon.nova-canvas-v1:0",
            "amazon.nova-reel-v1:1",
            "amazon.nova-2-multimodal-embeddings-v1:0",
            "anthropic.claude-3-haiku-20240307-v1:0",
            "nova",
        ] {
            assert_eq!(takes_video(id), Ok(false), "{id}");
        }
        assert!(takes_video(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123"
        )
        .is_err());
    }

    #[test]
    fn the_prompt_says_sound_is_measured_not_sent() {
        let w = |t: i64, db: f32| SignalWindow {
            start_ms: t,
            loudness_db: db,
            motion: 0.0,
            scene_cut: false,
        };
        let windows: Vec<SignalWindow> = (0..20)
            .map(|i| {
                w(
                    40_000 + i * 500,
                    if (12..14).contains(&i) { -12.0 } else { -45.0 },
                )
            })
            .collect();
        let baseline = Baseline {
            loudness_db: -44.0,
            motion: 0.0,
            windows: 30,
        };
        let cues = sound_cues(&windows, baseline, 40_000, Language::English);
        assert!(cues.contains("loudest at 6.0 s (-12 dBFS)"), "{cues}");
        assert!(
            cues.contains("sudden loud sound at 6.0 s (+32 dB)"),
            "{cues}"
        );
        assert!(!cues.contains("at 6.5 s"), "a rise is listed once: {cues}");
        let silent: Vec<SignalWindow> = (0..4).map(|i| w(i * 500, -90.0)).collect();
        assert_eq!(
            sound_cues(&silent, baseline, 0, Language::English),
            "- no audible sound"
        );
        let p = prompt(10_000, &cues, "", Language::English);
        assert!(
            p.contains("its sound is not sent") && p.contains(&cues),
            "{p}"
        );
        // In Chinese: the same measurements, the same bounds, the answer asked in Chinese.
        let heard = [crate::sound::SoundEvent {
            start_ms: 43_000,
            end_ms: 46_500,
            label: "Applause".into(),
            score: 0.95,
        }];
        assert_eq!(
            heard_cues(&heard, 40_000, 50_000, Language::English),
            "\n- heard by our sound tagger: applause from 3.0 to 6.5 s (score 0.95)"
        );
        assert_eq!(
            heard_cues(&heard, 40_000, 50_000, Language::Chinese),
            "\n- 我们的声音识别听到：掌声，3.0 到 6.5 秒（得分 0.95）"
        );
        assert_eq!(heard_cues(&heard, 0, 40_000, Language::English), "");
        let cues = sound_cues(&windows, baseline, 40_000, Language::Chinese);
        assert!(cues.contains("最响处在 6.0 秒（-12 dBFS）"), "{cues}");
        assert!(cues.contains("6.0 秒处突然出现响声（+32 dB）"), "{cues}");
        let p = prompt(10_000, &cues, "", Language::Chinese);
        for said in [
            "声音没有发送给你",
            "在 0 到 10.0 之间",
            "简体中文",
            TOOL_NAME,
            &cues,
        ] {
            assert!(p.contains(said), "{said}: {p}");
        }
    }

    #[test]
    fn the_largest_inline_video_fits_the_service_limit_as_base64() {
        let base64_chars = super::super::INLINE_VIDEO_MAX_BYTES.div_ceil(3) * 4;
        assert!(base64_chars + 100_000 <= super::super::INLINE_BASE64_MAX_CHARS);
        // 18 MiB would not.
        assert!((18 * 1024 * 1024u64).div_ceil(3) * 4 > super::super::INLINE_BASE64_MAX_CHARS);
    }
}
