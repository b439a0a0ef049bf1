//! Offline speech-to-text: OpenAI Whisper on candle's CPU backend: tiny.en (English) or
//! base (99 languages, the spoken language told apart per window unless the caller names
//! it).
//!
//! Audio is cut into 30 s windows. Windows whose loudness says silence are skipped before
//! the model sees them (voice-activity gating, so music-free quiet stretches cost
//! nothing). Each remaining window is decoded greedily with Whisper's timestamp rules
//! (timestamps in pairs, never going back, the first within 1 s), falling back to
//! sampling at higher temperatures when the greedy text is unlikely or repeats itself,
//! and dropped when the model itself says there is no speech. Like OpenAI's reference
//! `transcribe`, the next window starts at the last complete segment's end, so words are
//! not cut at window borders; across calls the caller carries the unsettled tail.

mod convert;
mod mel;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as w, model::Whisper};
use tokenizers::Tokenizer;

pub use convert::{convert_ct2_whisper, ConvertedShape};

use super::{SpeechAudio, Transcriber, TranscriptSegment, Transcription};
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;

/// Tokens sampled per window at most (Whisper's `sample_len`, n_text_ctx / 2).
const MAX_TOKENS: usize = 224;
/// Sampled tokens after which each step checks for a token loop.
const LOOP_CHECK_TOKENS: usize = 48;
/// Seconds one timestamp token step stands for.
const TIMESTAMP_STEP_S: f64 = 0.02;
/// Mel frames per timestamp step (10 ms hop).
const FRAMES_PER_TIMESTAMP: usize = 2;
/// Mel frames per second.
const FRAMES_PER_SECOND: usize = w::SAMPLE_RATE / w::HOP_LENGTH;
/// The first timestamp may be at most this many steps in (1 s).
const MAX_INITIAL_TIMESTAMP_STEPS: u32 = 50;
/// Loudness windows for gating.
const GATE_WINDOW_SAMPLES: usize = w::SAMPLE_RATE / 2;
/// Temperatures tried in turn while a window's text looks unreliable.
const TEMPERATURES: [f64; 3] = [0.0, 0.4, 0.8];
/// Seconds at the end of a window without segments that are heard again with the next
/// audio (speech may have just begun there).
const UNSETTLED_TAIL_S: usize = 5;
/// A window this likely to hold no speech is dropped when the text is also unsure.
const HALLUCINATION_NO_SPEECH: f64 = 0.3;
/// Default loudness gate: windows whose loudest half second is quieter are skipped.
pub const DEFAULT_GATE_DB: f32 = -50.0;

#[derive(Debug, Clone, Copy)]
struct SpecialTokens {
    sot: u32,
    eot: u32,
    no_speech: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
    /// `<|transcribe|>`, which follows the language token in a multilingual model's prompt.
    transcribe: Option<u32>,
}

pub struct WhisperTranscriber {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    model: Whisper,
    tokenizer: Tokenizer,
    filters: Vec<f32>,
    special: SpecialTokens,
    /// A multilingual model's language tokens and codes ("en", "zh", ...); empty for an
    /// English-only model.
    languages: Vec<(u32, String)>,
    suppress: Vec<u32>,
    pool: rayon::ThreadPool,
    gate_db: f32,
}

fn provider_error(name: &str, e: impl std::fmt::Display) -> Error {
    Error::Provider {
        provider: name.into(),
        message: e.to_string(),
        retryable: false,
    }
}

/// The speech models the offline default knows, by name (`local:` and the directory under
/// the models directory that scripts/setup.sh fills).
pub const MODELS: [&str; 2] = [WhisperTranscriber::TINY_EN, WhisperTranscriber::BASE];

impl WhisperTranscriber {
    /// English only, fastest.
    pub const TINY_EN: &'static str = "local:whisper-tiny-en";
    /// 99 languages (Chinese among them).
    pub const BASE: &'static str = "local:whisper-base";
    /// The default speech model.
    pub const NAME: &'static str = Self::TINY_EN;

    /// The directory of a model named in `MODELS` under the models directory.
    pub fn dir_of(models_dir: &Path, name: &str) -> Option<std::path::PathBuf> {
        MODELS
            .contains(&name)
            .then(|| models_dir.join(name.trim_start_matches("local:")))
    }

    /// Loads a converted model (`config.json`, `tokenizer.json`, `model.safetensors`, as
    /// `convert_ct2_whisper` writes them). Windows quieter than `gate_db` dBFS at their
    /// loudest half second are skipped.
    pub fn load(dir: &Path, threads: usize, gate_db: f32) -> Result<Self> {
        let name = format!(
            "local:{}",
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("whisper")
        );
        let missing = |file: &str| {
            Error::FailedPrecondition(format!(
                "{} is missing: run scripts/setup.sh to install and convert the offline \
                 speech model",
                dir.join(file).display()
            ))
        };
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(missing("model.safetensors"));
        }
        let config: w::Config = serde_json::from_str(
            &std::fs::read_to_string(dir.join("config.json"))
                .map_err(|_| missing("config.json"))?,
        )
        .map_err(|e| provider_error(&name, format!("config.json: {e}")))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|_| missing("tokenizer.json"))?;
        let special = special_tokens(&tokenizer, &config).map_err(|e| provider_error(&name, e))?;
        let languages = language_tokens(&tokenizer, &special);
        // SAFETY: the weights are memory-mapped read-only and belong to the models
        // directory the setup step owns; nothing rewrites them while the server runs.
        let vb =
            unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &Device::Cpu) }
                .map_err(|e| provider_error(&name, e))?;
        let model = Whisper::load(&vb, config.clone()).map_err(|e| provider_error(&name, e))?;
        let mut suppress = config.suppress_tokens.clone();
        suppress.push(special.no_timestamps);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("whisper-{i}"))
            // Speech is transcribed at ingest: background work.
            .start_handler(|_| reelforge_media::process::run_in_background())
            .build()
            .map_err(|e| provider_error(&name, e))?;
        Ok(WhisperTranscriber {
            inner: Arc::new(Inner {
                name,
                filters: mel::filterbank(config.num_mel_bins),
                model,
                tokenizer,
                special,
                languages,
                suppress,
                pool,
                gate_db,
            }),
        })
    }

    /// Transcribes synchronously (callers off the async runtime, e.g. benchmarks).
    pub fn transcribe_blocking(&self, audio: &SpeechAudio) -> Result<Transcription> {
        let inner = &self.inner;
        inner.pool.install(|| inner.transcribe(audio))
    }
}

fn special_tokens(
    tokenizer: &Tokenizer,
    config: &w::Config,
) -> std::result::Result<SpecialTokens, String> {
    let id = |t: &str| {
        tokenizer
            .token_to_id(t)
            .ok_or_else(|| format!("the tokenizer has no {t} token"))
    };
    let no_timestamps = id(w::NO_TIMESTAMPS_TOKEN)?;
    let no_speech = w::NO_SPEECH_TOKENS
        .iter()
        .find_map(|t| tokenizer.token_to_id(t))
        .ok_or("the tokenizer has no no-speech token")?;
    // English-only models have 51864 tokens; multilingual ones one more, and expect a
    // language and a task after <|startoftranscript|>.
    let multilingual = config.vocab_size > 51864;
    let transcribe = if multilingual {
        Some(id(w::TRANSCRIBE_TOKEN)?)
    } else {
        None
    };
    Ok(SpecialTokens {
        sot: id(w::SOT_TOKEN)?,
        eot: id(w::EOT_TOKEN)?,
        no_speech,
        no_timestamps,
        timestamp_begin: no_timestamps + 1,
        transcribe,
    })
}

/// A multilingual model's language tokens: every `<|xx|>` between `<|startoftranscript|>`
/// and `<|translate|>`.
fn language_tokens(tokenizer: &Tokenizer, special: &SpecialTokens) -> Vec<(u32, String)> {
    let Some(end) = special
        .transcribe
        .and_then(|_| tokenizer.token_to_id(w::TRANSLATE_TOKEN))
    else {
        return Vec::new();
    };
    (special.sot + 1..end)
        .filter_map(|id| {
            let token = tokenizer.id_to_token(id)?;
            let code = token.strip_prefix("<|")?.strip_suffix("|>")?;
            Some((id, code.to_string()))
        })
        .collect()
}

impl Transcriber for WhisperTranscriber {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn languages(&self) -> Vec<String> {
        self.inner.language_codes()
    }

    fn transcribe<'a>(&'a self, audio: SpeechAudio) -> BoxFuture<'a, Result<Transcription>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || inner.pool.install(|| inner.transcribe(&audio)))
                .await
                .map_err(|e| Error::internal(format!("transcription task failed: {e}")))?
        })
    }
}

/// One decoding attempt of one window.
struct Decoded {
    /// Sampled tokens without the prompt and without `<|endoftext|>`.
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech_prob: f64,
    finished: bool,
}

impl Decoded {
    /// Unlikely, cut off, or a token loop (`eot`: where text tokens end).
    fn unreliable(&self, eot: u32) -> bool {
        self.avg_logprob < w::LOGPROB_THRESHOLD || !self.finished || self.looped(eot)
    }

    /// Many text tokens, few distinct trigrams.
    fn looped(&self, eot: u32) -> bool {
        let text_tokens = self.tokens.iter().filter(|&&t| t < eot).count();
        repetitive(text_tokens, &self.tokens)
    }
}

/// A token loop: many tokens, few distinct trigrams.
fn repetitive(text_tokens: usize, tokens: &[u32]) -> bool {
    if text_tokens < 24 {
        return false;
    }
    let mut trigrams: Vec<&[u32]> = tokens.windows(3).collect();
    let total = trigrams.len();
    trigrams.sort_unstable();
    trigrams.dedup();
    (trigrams.len() as f64) < 0.4 * total as f64
}

impl Inner {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        provider_error(&self.name, e)
    }

    fn transcribe(&self, audio: &SpeechAudio) -> Result<Transcription> {
        let samples = &audio.samples;
        let total_frames = samples.len() / w::HOP_LENGTH;
        let to_ms = |frames: usize| audio.start_ms + (frames * 1000 / FRAMES_PER_SECOND) as i64;
        let mut out = Transcription {
            segments: Vec::new(),
            settled_ms: audio.start_ms,
            skipped_silent_ms: 0,
            decoded_ms: 0,
        };
        let mut seek = 0usize;
        let mut attempt = 0u64;
        while seek < total_frames {
            // Quiet stretches are skipped half a second at a time before the model sees
            // them; a window starts where sound does, so timestamps start there too.
            let quiet = self.leading_quiet_frames(audio, seek, total_frames);
            if quiet > 0 {
                out.skipped_silent_ms += (quiet * 1000 / FRAMES_PER_SECOND) as i64;
                seek += quiet;
                out.settled_ms = to_ms(seek);
                continue;
            }
            let mut window_frames = (total_frames - seek).min(w::N_FRAMES);
            // Gated by voice, a window ends where the voice does (to the half second):
            // what follows is skipped like quiet, and this window is read whole.
            let voice_end = audio.voiced.as_ref().and_then(|spans| {
                let at = to_ms(seek);
                let end = spans.iter().map(|&(_, b)| b).filter(|&b| b > at).min()?;
                let step = GATE_WINDOW_SAMPLES / w::HOP_LENGTH;
                let frames = ((end - audio.start_ms) as usize * FRAMES_PER_SECOND).div_ceil(1000);
                Some(frames.div_ceil(step) * step)
            });
            let voice_bounded = voice_end.is_some_and(|end| end < seek + window_frames);
            if let Some(end) = voice_end.filter(|_| voice_bounded) {
                window_frames = end.saturating_sub(seek).max(1);
            }
            let is_last = seek + window_frames >= total_frames;
            let pcm = &samples[seek * w::HOP_LENGTH..(seek + window_frames) * w::HOP_LENGTH];
            out.decoded_ms += (window_frames * 1000 / FRAMES_PER_SECOND) as i64;
            let features = mel::window_features(pcm, &self.filters, &self.model.config);
            let mel = Tensor::from_vec(
                features,
                (1, self.model.config.num_mel_bins, w::N_FRAMES),
                &Device::Cpu,
            )
            .map_err(|e| self.err(e))?;
            let mut model = self.model.clone();
            let audio_features = model.encoder.forward(&mel, true).map_err(|e| self.err(e))?;
            let (language_token, language) = match &audio.language {
                Some(code) => self.language_token(code)?,
                None => self.detect_language(&mut model, &audio_features)?,
            };
            let mut best: Option<Decoded> = None;
            for &temperature in &TEMPERATURES {
                attempt += 1;
                let decoded = self.decode(
                    &mut model,
                    &audio_features,
                    language_token,
                    temperature,
                    attempt,
                )?;
                let unreliable = decoded.unreliable(self.special.eot);
                let better = best
                    .as_ref()
                    .is_none_or(|b| decoded.avg_logprob > b.avg_logprob);
                // A window the model calls silent is not retried.
                let silent = decoded.no_speech_prob > w::NO_SPEECH_THRESHOLD;
                if better {
                    best = Some(decoded);
                }
                if !unreliable || silent {
                    break;
                }
            }
            let decoded = best.expect("at least one attempt");
            // A token loop ("祝祝祝...", "1中1中...") at every temperature is never what was
            // said: the window's text is dropped rather than stored.
            let looped = decoded.looped(self.special.eot);
            // Whisper's own rule drops a window the model calls silent and is unsure of.
            // Music and effects make tiny models mumble ("Mmm.", "Thank you.") with
            // middling no-speech scores, so an unsure window with a fair chance of no
            // speech is dropped too.
            if looped
                || decoded.avg_logprob < w::LOGPROB_THRESHOLD
                    && decoded.no_speech_prob > HALLUCINATION_NO_SPEECH
            {
                seek += window_frames;
                out.settled_ms = to_ms(seek);
                continue;
            }
            let (mut segments, consumed) = self.segments(&decoded, window_frames);
            let mut advance = consumed;
            if is_last && !audio.is_final {
                // The audio goes on in the next call: a segment ending within 1 s of the
                // end of what we have may be cut off, so leave it for then, heard whole.
                let end_steps = (window_frames / FRAMES_PER_TIMESTAMP) as u32;
                while let Some(&(_, start, end)) = segments.last() {
                    if end + MAX_INITIAL_TIMESTAMP_STEPS < end_steps {
                        break;
                    }
                    advance = advance.min(start as usize * FRAMES_PER_TIMESTAMP);
                    segments.pop();
                }
                // Speech cut off at the very end is often left out of the text entirely
                // (the window then "ends" after the last segment): settle only up to the
                // last segment kept, so the rest is heard again with what follows.
                // With nothing kept, only the last few seconds can hold a cut-off start.
                let kept_until = segments.last().map_or(
                    window_frames.saturating_sub(UNSETTLED_TAIL_S * FRAMES_PER_SECOND),
                    |&(_, _, end)| end as usize * FRAMES_PER_TIMESTAMP,
                );
                advance = advance.min(kept_until);
            }
            for (text, start, end) in segments {
                let text = text.trim().to_string();
                if text.is_empty() {
                    continue;
                }
                let at = |steps: u32| {
                    let seconds =
                        seek as f64 / FRAMES_PER_SECOND as f64 + steps as f64 * TIMESTAMP_STEP_S;
                    ((seconds * w::SAMPLE_RATE as f64) as usize).min(samples.len())
                };
                let (first, last) = self.trim_quiet(samples, at(start), at(end));
                out.segments.push(TranscriptSegment {
                    start_ms: audio.start_ms + (first * 1000 / w::SAMPLE_RATE) as i64,
                    end_ms: audio.start_ms + (last * 1000 / w::SAMPLE_RATE) as i64,
                    text,
                    avg_logprob: decoded.avg_logprob as f32,
                    no_speech_prob: decoded.no_speech_prob as f32,
                    language: language.clone(),
                });
            }
            if is_last && !audio.is_final {
                seek += advance;
                out.settled_ms = to_ms(seek);
                break;
            }
            if voice_bounded {
                seek += window_frames;
                out.settled_ms = to_ms(seek);
                continue;
            }
            // Always move forward, even when the model put its only timestamp at 0.
            seek += advance.max(FRAMES_PER_TIMESTAMP).min(window_frames);
            out.settled_ms = to_ms(seek);
        }
        if audio.is_final {
            out.settled_ms = audio.start_ms + (samples.len() * 1000 / w::SAMPLE_RATE) as i64;
        }
        Ok(out)
    }

    /// The prompt token for a language the caller names (none for an English-only model,
    /// which takes only "en").
    fn language_token(&self, code: &str) -> Result<(Option<u32>, String)> {
        if self.languages.is_empty() && code == "en" {
            return Ok((None, code.to_string()));
        }
        self.languages
            .iter()
            .find(|(_, c)| c == code)
            .map(|(id, c)| (Some(*id), c.clone()))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "language {code:?} is not one {} transcribes (it knows: {})",
                    self.name,
                    self.language_codes().join(", ")
                ))
            })
    }

    /// The codes of the languages the model transcribes.
    fn language_codes(&self) -> Vec<String> {
        if self.languages.is_empty() {
            return vec!["en".into()];
        }
        self.languages.iter().map(|(_, c)| c.clone()).collect()
    }

    /// Which language a window is spoken in: the language token the model finds likeliest
    /// after `<|startoftranscript|>` (OpenAI's `detect_language`). English for an
    /// English-only model.
    fn detect_language(
        &self,
        model: &mut Whisper,
        audio_features: &Tensor,
    ) -> Result<(Option<u32>, String)> {
        if self.languages.is_empty() {
            return Ok((None, "en".into()));
        }
        let input = Tensor::new(&[self.special.sot], &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| self.err(e))?;
        let ys = model
            .decoder
            .forward(&input, audio_features, true)
            .map_err(|e| self.err(e))?;
        let logits = self.logits_at(model, &ys, 0)?;
        let (id, code) = self
            .languages
            .iter()
            .max_by(|a, b| logits[a.0 as usize].total_cmp(&logits[b.0 as usize]))
            .expect("a multilingual model has languages");
        Ok((Some(*id), code.clone()))
    }

    /// Whisper's segment borders are only roughly right (tiny models often run a segment
    /// on into the following pause); moves them inwards, 0.1 s at a time, past audio that
    /// is quiet: below the gate, or 25 dB below the segment's loudest tenth of a second
    /// (room noise between sentences). Returns sample offsets.
    fn trim_quiet(&self, samples: &[f32], mut first: usize, mut last: usize) -> (usize, usize) {
        const STEP: usize = w::SAMPLE_RATE / 10;
        let peak = samples[first..last]
            .chunks(STEP)
            .map(rms_db)
            .fold(f32::NEG_INFINITY, f32::max);
        let quiet = self.gate_db.max(peak - 25.0);
        while last >= first + 2 * STEP && rms_db(&samples[last - STEP..last]) < quiet {
            last -= STEP;
        }
        while first + 2 * STEP <= last && rms_db(&samples[first..first + STEP]) < quiet {
            first += STEP;
        }
        (first, last)
    }

    /// Mel frames from `seek` on, in steps of 0.5 s, that are quiet or (with a voice
    /// detector's stretches) hold no voice.
    fn leading_quiet_frames(&self, audio: &SpeechAudio, seek: usize, total_frames: usize) -> usize {
        let step = GATE_WINDOW_SAMPLES / w::HOP_LENGTH;
        let to_ms = |frames: usize| audio.start_ms + (frames * 1000 / FRAMES_PER_SECOND) as i64;
        let mut end = seek;
        while end < total_frames {
            let next = (end + step).min(total_frames);
            let chunk = &audio.samples[end * w::HOP_LENGTH..next * w::HOP_LENGTH];
            let voice = audio.voiced.as_ref().is_none_or(|spans| {
                let (from, to) = (to_ms(end), to_ms(next));
                spans.iter().any(|&(a, b)| a < to && b > from)
            });
            if voice && rms_db(chunk) >= self.gate_db {
                break;
            }
            end = next;
        }
        end - seek
    }

    /// Splits a decoded window into `(text, start_step, end_step)` segments and says how
    /// many mel frames of the window they account for (OpenAI's `transcribe` rules).
    fn segments(
        &self,
        decoded: &Decoded,
        window_frames: usize,
    ) -> (Vec<(String, u32, u32)>, usize) {
        let tb = self.special.timestamp_begin;
        let tokens = &decoded.tokens;
        let is_ts = |i: usize| tokens[i] >= tb;
        let n = tokens.len();
        let single_timestamp_ending = n >= 2 && !is_ts(n - 2) && is_ts(n - 1);
        let mut cuts: Vec<usize> = (1..n).filter(|&i| is_ts(i - 1) && is_ts(i)).collect();
        let mut segments = Vec::new();
        if !cuts.is_empty() {
            if single_timestamp_ending {
                cuts.push(n);
            }
            let mut last = 0;
            for &cut in &cuts {
                let part = &tokens[last..cut];
                if let (Some(&first), Some(&end)) = (part.first(), part.last()) {
                    if first >= tb && end >= tb {
                        segments.push((self.text(part), first - tb, end - tb));
                    }
                }
                last = cut;
            }
            let consumed = if single_timestamp_ending {
                window_frames
            } else {
                (tokens[last - 1] - tb) as usize * FRAMES_PER_TIMESTAMP
            };
            (segments, consumed.min(window_frames))
        } else {
            let mut end_steps = (window_frames / FRAMES_PER_TIMESTAMP) as u32;
            if let Some(&last_ts) = tokens.iter().rev().find(|&&t| t >= tb) {
                if last_ts > tb {
                    end_steps = last_ts - tb;
                }
            }
            let start = tokens.first().filter(|&&t| t >= tb).map_or(0, |&t| t - tb);
            segments.push((self.text(tokens), start, end_steps.max(start)));
            (segments, window_frames)
        }
    }

    fn text(&self, tokens: &[u32]) -> String {
        let text: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.tokenizer.decode(&text, true).unwrap_or_default()
    }

    fn decode(
        &self,
        model: &mut Whisper,
        audio_features: &Tensor,
        language: Option<u32>,
        temperature: f64,
        seed: u64,
    ) -> Result<Decoded> {
        let s = self.special;
        let mut prompt = vec![s.sot];
        prompt.extend(language.into_iter().chain(s.transcribe));
        let mut tokens = prompt.clone();
        let mut sum_logprob = 0f64;
        let mut no_speech_prob = 0f64;
        let mut finished = false;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15 ^ seed);
        for i in 0..MAX_TOKENS {
            let input = Tensor::new(tokens.as_slice(), &Device::Cpu)
                .and_then(|t| t.unsqueeze(0))
                .map_err(|e| self.err(e))?;
            let ys = model
                .decoder
                .forward(&input, audio_features, i == 0)
                .map_err(|e| self.err(e))?;
            let seq_len = tokens.len();
            if i == 0 {
                let logits = self.logits_at(model, &ys, 0)?;
                no_speech_prob = softmax_at(&logits, s.no_speech as usize);
            }
            let mut logits = self.logits_at(model, &ys, seq_len - 1)?;
            self.apply_rules(&mut logits, &tokens[prompt.len()..]);
            let logprobs = log_softmax(&logits);
            let next = if temperature == 0.0 {
                argmax(&logits)
            } else {
                sample(&logits, temperature, &mut rng)
            };
            sum_logprob += logprobs[next as usize] as f64;
            if next == s.eot {
                finished = true;
                break;
            }
            tokens.push(next);
            if tokens.len() >= self.model.config.max_target_positions {
                break;
            }
            // A token loop goes on to the token limit, each step dearer than the last:
            // stop it as soon as it shows (the attempt is unfinished, so unreliable).
            let sampled = &tokens[prompt.len()..];
            if sampled.len() >= LOOP_CHECK_TOKENS && repetitive(sampled.len(), sampled) {
                break;
            }
        }
        let sampled = tokens[prompt.len()..].to_vec();
        Ok(Decoded {
            avg_logprob: sum_logprob / (sampled.len() + 1) as f64,
            tokens: sampled,
            no_speech_prob,
            finished,
        })
    }

    fn logits_at(&self, model: &Whisper, ys: &Tensor, pos: usize) -> Result<Vec<f32>> {
        ys.i((..1, pos..pos + 1))
            .and_then(|x| model.decoder.final_linear(&x))
            .and_then(|l| l.i(0))
            .and_then(|l| l.i(0))
            .and_then(|l| l.to_vec1::<f32>())
            .map_err(|e| self.err(e))
    }

    /// Whisper's logit filters: suppressed tokens, no blank start, and the timestamp rules.
    fn apply_rules(&self, logits: &mut [f32], sampled: &[u32]) {
        let s = self.special;
        let tb = s.timestamp_begin as usize;
        let ninf = f32::NEG_INFINITY;
        for &t in &self.suppress {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = ninf;
            }
        }
        if sampled.is_empty() {
            // " " (220) and <|endoftext|> may not start a transcript.
            logits[220] = ninf;
            logits[s.eot as usize] = ninf;
        }
        let n = sampled.len();
        let last_was_ts = n >= 1 && sampled[n - 1] as usize >= tb;
        let penultimate_was_ts = n < 2 || sampled[n - 2] as usize >= tb;
        if last_was_ts {
            if penultimate_was_ts {
                logits[tb..].fill(ninf);
            } else {
                logits[..s.eot as usize].fill(ninf);
            }
        }
        if let Some(&last_ts) = sampled.iter().rev().find(|&&t| t as usize >= tb) {
            let floor = if last_was_ts && !penultimate_was_ts {
                last_ts as usize
            } else {
                last_ts as usize + 1
            };
            let end = floor.min(logits.len());
            logits[tb..end].fill(ninf);
        }
        if sampled.is_empty() {
            logits[..tb].fill(ninf);
            let max_initial = tb + MAX_INITIAL_TIMESTAMP_STEPS as usize + 1;
            if max_initial < logits.len() {
                logits[max_initial..].fill(ninf);
            }
        }
        // If time is more likely than any single text token, sample a timestamp.
        let logprobs = log_softmax(logits);
        let ts_logprob = log_sum_exp(&logprobs[tb..]);
        let max_text = logprobs[..tb].iter().copied().fold(ninf, f32::max);
        if ts_logprob > max_text {
            logits[..tb].fill(ninf);
        }
    }
}

/// RMS level of `pcm` in dBFS.
fn rms_db(pcm: &[f32]) -> f32 {
    let ms = pcm.iter().map(|x| x * x).sum::<f32>() / pcm.len().max(1) as f32;
    10.0 * ms.max(1e-12).log10()
}

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

fn log_sum_exp(v: &[f32]) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}

fn log_softmax(v: &[f32]) -> Vec<f32> {
    let lse = log_sum_exp(v);
    v.iter().map(|x| x - lse).collect()
}

fn softmax_at(v: &[f32], i: usize) -> f64 {
    (v[i] - log_sum_exp(v)).exp() as f64
}

/// A small deterministic generator for temperature fallback (reproducible transcripts).
struct XorShift(u64);

impl XorShift {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn sample(logits: &[f32], temperature: f64, rng: &mut XorShift) -> u32 {
    let scaled: Vec<f32> = logits
        .iter()
        .map(|&l| (l as f64 / temperature) as f32)
        .collect();
    let probs: Vec<f64> = log_softmax(&scaled)
        .iter()
        .map(|&l| (l as f64).exp())
        .collect();
    let mut r = rng.next_f64();
    for (i, p) in probs.iter().enumerate() {
        r -= p;
        if r <= 0.0 {
            return i as u32;
        }
    }
    argmax(logits)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Highest character error rate the multilingual model may make on the Mandarin
    /// utterances (measured: see the README's speech table; synthetic speech is hard).
    const CER_BOUND: f64 = 0.9;

    /// LibriVox read speech from Debian's pocketsphinx-testdata (scripts/setup.sh
    /// unpacks it): `(16 kHz mono samples, reference transcript)` per utterance.
    pub(crate) fn librivox() -> Vec<(Vec<f32>, String)> {
        utterances("librivox", |line| {
            let (text, id) = line.rsplit_once(" (")?;
            let text = text.replace("<s>", "").replace("</s>", "");
            Some((id.trim_end_matches(')').to_string(), text))
        })
    }

    /// Mandarin read speech (scripts/setup.sh speaks assets/mandarin.txt with espeak-ng):
    /// `(16 kHz mono samples, reference text)` per utterance.
    fn mandarin() -> Vec<(Vec<f32>, String)> {
        utterances("mandarin", |line| {
            let (id, text) = line.split_once(' ')?;
            Some((id.to_string(), text.to_string()))
        })
    }

    /// The utterances under `assets/speech/<set>`: each line of its `transcription` read
    /// by `line` into the WAV file's stem and the text said in it.
    fn utterances(
        set: &str,
        line: impl Fn(&str) -> Option<(String, String)>,
    ) -> Vec<(Vec<f32>, String)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../assets/speech")
            .join(set);
        let listing = std::fs::read_to_string(dir.join("transcription"))
            .unwrap_or_else(|_| panic!("assets/speech/{set} is installed (scripts/setup.sh)"));
        listing
            .lines()
            .filter_map(|l| {
                let (id, text) = line(l)?;
                let wav = std::fs::read(dir.join(format!("{id}.wav"))).ok()?;
                Some((wav_samples(&wav), text.trim().to_string()))
            })
            .collect()
    }

    /// Samples of a 16-bit PCM WAV file's `data` chunk.
    fn wav_samples(wav: &[u8]) -> Vec<f32> {
        let mut pos = 12;
        while pos + 8 <= wav.len() {
            let id = &wav[pos..pos + 4];
            let len = u32::from_le_bytes(wav[pos + 4..pos + 8].try_into().unwrap()) as usize;
            if id == b"data" {
                let end = (pos + 8 + len).min(wav.len());
                return wav[pos + 8..end]
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                    .collect();
            }
            pos += 8 + len + (len & 1);
        }
        panic!("no data chunk");
    }

    #[tokio::test]
    async fn whisper_passes_the_transcriber_conformance_suite_with_low_wer() {
        let model = crate::testing::transcriber();
        let mut speech = Vec::new();
        let mut reference = String::new();
        for (samples, text) in librivox() {
            speech.extend_from_slice(&samples);
            speech.extend(std::iter::repeat_n(0f32, 8_000));
            reference.push_str(&text);
            reference.push(' ');
        }
        let wer = crate::conformance::transcriber(model, &speech, &reference).await;
        eprintln!(
            "whisper WER on LibriVox ({} s): {wer:.3}",
            speech.len() / 16_000
        );
        assert!(wer <= 0.25, "word error rate {wer}");
    }

    #[test]
    fn gated_by_a_voice_detector_it_reads_the_voice_and_not_the_music_or_noise() {
        use crate::sound::{self, SoundTagger};
        let model = crate::testing::transcriber();
        let tagger = crate::testing::sound_tagger();
        let (speech, text) = librivox().swap_remove(0);
        // 3 s of loud noise (no voice), the utterance, then the same noise again.
        let noise: Vec<f32> = (0..48_000u32)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) as f32 / 65_536.0 - 0.5) * 0.3)
            .collect();
        let mut audio = noise.clone();
        audio.extend_from_slice(&speech);
        audio.extend_from_slice(&noise);
        let windows = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(tagger.tag(10_000, audio.clone()))
            .unwrap();
        let voiced = sound::voiced(&windows);
        let speech_ms = speech.len() as i64 / 16;
        let hear = |voiced: Option<Vec<(i64, i64)>>| {
            model
                .transcribe_blocking(&SpeechAudio {
                    start_ms: 10_000,
                    samples: audio.clone(),
                    is_final: true,
                    language: None,
                    voiced,
                })
                .unwrap()
        };
        let ungated = hear(None);
        let gated = hear(Some(voiced.clone()));
        // Loudness alone reads the noise; the voice gate skips it and keeps the words.
        assert!(ungated.decoded_ms >= speech_ms + 5_000, "{ungated:?}");
        assert!(
            gated.decoded_ms <= speech_ms + 2_500,
            "{voiced:?} {gated:?}"
        );
        assert!(gated.skipped_silent_ms >= 4_000, "{gated:?}");
        let words: String = gated.segments.iter().map(|s| s.text.as_str()).collect();
        let wer = reelforge_core::eval::word_error_rate(&text, &words);
        assert!(wer <= 0.25, "{text} -> {words}");
        assert!(
            gated.segments.iter().all(|s| s.start_ms >= 12_000),
            "{gated:?}"
        );
        // No voice at all: nothing is read.
        let none = hear(Some(Vec::new()));
        assert_eq!((none.decoded_ms, none.segments.len()), (0, 0), "{none:?}");
        // The Mandarin test voice (espeak-ng) is a voice too.
        for (samples, reference) in mandarin().iter().take(3) {
            let windows = tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(tagger.tag(0, samples.clone()))
                .unwrap();
            let voiced: i64 = sound::voiced(&windows).iter().map(|(a, b)| b - a).sum();
            let ms = samples.len() as i64 / 16;
            assert!(
                voiced * 10 >= ms * 8,
                "{reference}: a voice over {voiced} of {ms} ms"
            );
        }
    }

    #[test]
    fn multilingual_whisper_tells_mandarin_from_english_and_transcribes_both() {
        let model = crate::testing::multilingual_transcriber();
        let languages = model.languages();
        assert_eq!(languages.len(), 99, "{languages:?}");
        assert_eq!(&languages[..2], ["en", "zh"]);
        let hear = |samples: &[f32], language: Option<&str>| {
            model.transcribe_blocking(&SpeechAudio {
                start_ms: 0,
                samples: samples.to_vec(),
                is_final: true,
                language: language.map(String::from),
                voiced: None,
            })
        };
        // Mandarin: the language told per window; the text, with the language named,
        // scored by character error rate.
        let utterances = mandarin();
        assert_eq!(utterances.len(), 10);
        let (mut errors, mut chars, mut told_zh) = (0.0, 0.0, 0);
        for (samples, reference) in &utterances {
            let told = hear(samples, None).unwrap();
            told_zh += usize::from(told.segments.iter().any(|s| s.language == "zh"));
            let heard = hear(samples, Some("zh")).unwrap();
            assert!(
                heard.segments.iter().all(|s| s.language == "zh"),
                "{heard:?}"
            );
            let text: String = heard.segments.iter().map(|s| s.text.as_str()).collect();
            eprintln!("{reference} -> {text}");
            let n = reelforge_core::eval::cer_chars(reference).len() as f64;
            errors += reelforge_core::eval::character_error_rate(reference, &text) * n;
            chars += n;
        }
        let cer = errors / chars;
        eprintln!("whisper base on espeak-ng Mandarin: CER {cer:.3}, told zh {told_zh}/10");
        assert!(
            told_zh >= 3,
            "Mandarin told as Chinese only {told_zh} times of 10"
        );
        assert!(cer <= CER_BOUND, "character error rate {cer:.3}");
        let unknown = hear(&utterances[3].0, Some("xx")).unwrap_err().to_string();
        assert!(
            unknown.contains("\"xx\"") && unknown.contains("zh"),
            "{unknown}"
        );
        // English read speech is told as English and transcribed as well as by tiny.en.
        let (speech, reference) = &librivox()[0];
        let heard = hear(speech, None).unwrap();
        assert!(
            heard.segments.iter().all(|s| s.language == "en"),
            "{heard:?}"
        );
        let text: Vec<&str> = heard.segments.iter().map(|s| s.text.as_str()).collect();
        let wer = reelforge_core::eval::word_error_rate(reference, &text.join(" "));
        assert!(wer <= 0.25, "word error rate {wer}: {text:?}");
    }

    #[test]
    fn converted_weights_load_with_the_expected_shape() {
        let model = crate::testing::transcriber();
        let c = &model.inner.model.config;
        assert_eq!((c.num_mel_bins, c.d_model, c.vocab_size), (80, 384, 51864));
        assert_eq!(model.inner.special.timestamp_begin, 50363);
        assert_eq!(model.name(), "local:whisper-tiny-en");
    }
}
