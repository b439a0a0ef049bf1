//! Background music: a folder of tracks, each known by its words (file name, tags in the
//! file such as title/genre/comment, and an optional `<name>.txt` beside it); the track
//! whose words are closest to the reel's descriptions is chosen, looped to the reel's
//! length and mixed under the original audio, ducked by it (`sidechaincompress` keyed on
//! the original sound), with a fade at the end.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use reelforge_core::error::{Error, Result};
use reelforge_media::process;
use reelforge_models::{EmbedPurpose, TextEmbedder};

const AUDIO_EXTENSIONS: [&str; 9] = [
    "mp3", "m4a", "aac", "wav", "ogg", "oga", "opus", "flac", "wma",
];
/// Most tracks read from one folder.
const MAX_TRACKS: usize = 500;
/// Longest stretch of the reel's descriptions compared with the tracks.
const MAX_REEL_WORDS_CHARS: usize = 2_000;

#[derive(Debug, Clone, PartialEq)]
pub struct MusicOptions {
    pub dir: PathBuf,
    /// The music's gain under the original audio, 0..1.
    pub volume: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub path: PathBuf,
    /// What the track is known by.
    pub words: String,
}

/// The chosen track and how close its words were to the reel's.
#[derive(Debug, Clone, PartialEq)]
pub struct MusicChoice {
    pub track: Track,
    pub similarity: f32,
}

/// The readable audio tracks of `dir` with their words, in file-name order. An unreadable
/// or trackless folder is an error that names the folder.
pub async fn tracks(ffprobe: &str, dir: &Path) -> Result<Vec<Track>> {
    let unreadable = |e: std::io::Error| {
        Error::invalid(format!("music_dir {} cannot be read: {e}", dir.display()))
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(unreadable)?;
    let mut files = Vec::new();
    while let Some(e) = entries.next_entry().await.map_err(unreadable)? {
        let path = e.path();
        let audio = path
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| AUDIO_EXTENSIONS.contains(&x.to_ascii_lowercase().as_str()));
        if audio && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.truncate(MAX_TRACKS);
    let mut out = Vec::new();
    for path in files {
        if let Some(words) = track_words(ffprobe, &path).await? {
            out.push(Track { path, words });
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(format!(
            "music_dir {} has no readable audio tracks ({})",
            dir.display(),
            AUDIO_EXTENSIONS.join(", ")
        )));
    }
    Ok(out)
}

/// The words of one track, or `None` when ffprobe finds no audio in it.
async fn track_words(ffprobe: &str, path: &Path) -> Result<Option<String>> {
    let mut cmd = Command::new(ffprobe);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_streams",
        "-show_format",
    ])
    .arg(path);
    let Ok(out) = process::output(cmd, ffprobe, "reading a music track").await else {
        return Ok(None);
    };
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap_or_default();
    let has_audio = json["streams"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["codec_type"] == "audio"));
    if !has_audio {
        return Ok(None);
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().replace(['_', '-', '.'], " "))
        .unwrap_or_default();
    let mut words = vec![stem];
    if let Some(tags) = json["format"]["tags"].as_object() {
        for (k, v) in tags {
            let k = k.to_ascii_lowercase();
            if [
                "title",
                "genre",
                "comment",
                "description",
                "artist",
                "album",
            ]
            .contains(&k.as_str())
            {
                if let Some(v) = v.as_str() {
                    words.push(v.to_string());
                }
            }
        }
    }
    if let Ok(sidecar) = tokio::fs::read_to_string(path.with_extension("txt")).await {
        words.push(sidecar.trim().to_string());
    }
    Ok(Some(
        words
            .into_iter()
            .filter(|w| !w.trim().is_empty())
            .collect::<Vec<_>>()
            .join(". "),
    ))
}

/// The track whose words are closest to the reel's descriptions.
pub async fn choose(
    embedder: &dyn TextEmbedder,
    tracks: &[Track],
    descriptions: &[String],
) -> Result<MusicChoice> {
    let mut reel: String = descriptions
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty())
        .collect::<Vec<_>>()
        .join(". ");
    if reel.is_empty() {
        reel = "highlight reel".into();
    }
    if let Some((cut, _)) = reel.char_indices().nth(MAX_REEL_WORDS_CHARS) {
        reel.truncate(cut);
    }
    let q = embedder.embed(&[reel], EmbedPurpose::Query).await?;
    let words: Vec<String> = tracks.iter().map(|t| t.words.clone()).collect();
    let t = embedder.embed(&words, EmbedPurpose::Index).await?;
    let q = &q[0].vector;
    let (best, similarity) = t
        .iter()
        .map(|e| reelforge_core::vector::dot(&e.vector, q))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| Error::internal("no music tracks to choose from"))?;
    Ok(MusicChoice {
        track: tracks[best].clone(),
        similarity,
    })
}

/// Mixes `track` (looped, faded out at the end) under the audio of `reel` into `out`,
/// ducked whenever the reel's own sound is loud. Video and subtitles are copied. The mix
/// is made first into an audio file of its own and muxed afterwards: filtering audio and
/// stream-copying a sparse subtitle track in one ffmpeg run cuts the audio short.
pub async fn mix(
    ffmpeg: &str,
    reel: &Path,
    track: &Path,
    duration_ms: i64,
    volume: f32,
    out: &Path,
) -> Result<()> {
    let d = duration_ms.max(1) as f64 / 1000.0;
    let fade = (d / 4.0).min(1.5);
    let graph = format!(
        "[1:a]aresample=48000,aformat=channel_layouts=stereo,volume={volume:.3},atrim=0:{d:.3},\
         afade=t=out:st={:.3}:d={fade:.3}[m];\
         [0:a]asplit=2[orig][key];\
         [m][key]sidechaincompress=threshold=0.005:ratio=20:attack=5:release=300:level_sc=4[ducked];\
         [orig][ducked]amix=inputs=2:duration=first:normalize=0[a]",
        (d - fade).max(0.0)
    );
    let audio = out.with_extension("m4a");
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
        .arg(reel)
        .args(["-stream_loop", "-1", "-i"])
        .arg(track)
        .args(["-filter_complex", &graph, "-map", "[a]", "-vn"])
        .args(["-c:a", "aac", "-b:a", "160k", "-ar", "48000"])
        .arg(&audio);
    process::output(cmd, ffmpeg, "mixing the music").await?;
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y", "-i"])
        .arg(reel)
        .arg("-i")
        .arg(&audio)
        .args(["-map", "0:v", "-map", "1:a", "-map", "0:s?", "-c", "copy"])
        .args(["-movflags", "+faststart"])
        .arg(out);
    process::output(cmd, ffmpeg, "adding the music to the reel").await?;
    let _ = tokio::fs::remove_file(&audio).await;
    Ok(())
}
