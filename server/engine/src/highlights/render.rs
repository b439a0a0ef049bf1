//! Rendering a reel with ffmpeg: every segment is cut frame-accurately by re-encoding
//! (a stream-copied cut can only start on a keyframe) into one common shape (the first
//! source's size and frame rate, H.264 + AAC 48 kHz stereo, silence where a source has no
//! audio), then the pieces are joined: by the concat demuxer without re-encoding when cut
//! end to end, or through `xfade`/`acrossfade` when crossfades are asked for. Segment
//! descriptions become a subtitle track (soft `mov_text`, or burnt in through libass).

use std::path::{Path, PathBuf};

use tokio::process::Command;

use super::segments::Segment;
use reelforge_core::error::{Error, Result};
use reelforge_media::process;

/// One segment with the file it comes from.
#[derive(Debug, Clone)]
pub struct Piece {
    pub segment: Segment,
    pub source: PathBuf,
    pub has_audio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subtitles {
    #[default]
    None,
    /// A subtitle track in the file (players can switch it off).
    Soft,
    /// Drawn into the picture.
    Burn,
}

#[derive(Debug, Clone, Default)]
pub struct RenderOptions {
    /// Crossfade between consecutive segments (0: straight cuts).
    pub crossfade_ms: i64,
    pub subtitles: Subtitles,
    /// Background music mixed under the original audio.
    pub music: Option<super::music::MusicOptions>,
}

/// The reel's common shape, from the first source.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub width: i32,
    pub height: i32,
    pub fps: f64,
}

/// What a render produced.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub path: PathBuf,
    /// Expected length: the segments' sum less the crossfade overlaps (where each
    /// segment starts on the reel: `timeline`).
    pub duration_ms: i64,
}

/// Where each piece starts on the reel and how long the reel is.
pub fn timeline(durations_ms: &[i64], crossfade_ms: i64) -> (Vec<i64>, i64) {
    let mut starts = Vec::with_capacity(durations_ms.len());
    let mut at = 0;
    for (i, d) in durations_ms.iter().enumerate() {
        if i > 0 {
            at -= crossfade_ms;
        }
        starts.push(at);
        at += d;
    }
    (starts, at.max(0))
}

/// The segment descriptions as SRT cues on the reel's timeline.
pub fn srt(pieces: &[Piece], starts_ms: &[i64]) -> String {
    let clock = |ms: i64| {
        format!(
            "{:02}:{:02}:{:02},{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    };
    let mut out = String::new();
    let mut n = 0;
    for (p, &start) in pieces.iter().zip(starts_ms) {
        let text = p.segment.description.trim();
        if text.is_empty() {
            continue;
        }
        n += 1;
        let end = start + p.segment.duration_ms();
        out.push_str(&format!(
            "{n}\n{} --> {}\n{text}\n\n",
            clock(start),
            clock(end)
        ));
    }
    out
}

/// Renders `pieces` into `out` (an .mp4). `progress(done, total)` is called after each
/// step (one per piece, one for the join).
pub async fn render(
    ffmpeg: &str,
    pieces: &[Piece],
    shape: Shape,
    options: &RenderOptions,
    work: &Path,
    out: &Path,
    progress: &(dyn Fn(u32, u32) + Send + Sync),
) -> Result<Rendered> {
    if pieces.is_empty() {
        return Err(Error::invalid("no segments to render"));
    }
    let shortest = pieces
        .iter()
        .map(|p| p.segment.duration_ms())
        .min()
        .unwrap_or(0);
    if options.crossfade_ms < 0 || (pieces.len() > 1 && options.crossfade_ms * 2 > shortest) {
        return Err(Error::invalid(format!(
            "crossfade of {} ms must be between 0 and half the shortest segment ({} ms)",
            options.crossfade_ms, shortest
        )));
    }
    tokio::fs::create_dir_all(work).await?;
    let total = pieces.len() as u32 + 1;
    let mut files = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.iter().enumerate() {
        let file = work.join(format!("piece-{i:04}.mp4"));
        cut_piece(ffmpeg, p, shape, &file).await?;
        files.push(file);
        progress(i as u32 + 1, total);
    }
    let durations: Vec<i64> = pieces.iter().map(|p| p.segment.duration_ms()).collect();
    let (starts, duration_ms) = timeline(&durations, options.crossfade_ms);
    let subtitles = srt(pieces, &starts);
    let srt_path = work.join("reel.srt");
    tokio::fs::write(&srt_path, &subtitles).await?;
    let with_subs = options.subtitles != Subtitles::None && !subtitles.is_empty();

    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"]);
    let crossfade = options.crossfade_ms > 0 && files.len() > 1;
    let burn = with_subs && options.subtitles == Subtitles::Burn;
    if !crossfade && !burn {
        // End to end: the pieces share one encoding, so they join without re-encoding.
        let list = work.join("pieces.txt");
        let body: String = files
            .iter()
            .map(|f| {
                format!(
                    "file '{}'\n",
                    f.display().to_string().replace('\'', "'\\''")
                )
            })
            .collect();
        tokio::fs::write(&list, body).await?;
        cmd.args(["-f", "concat", "-safe", "0", "-i"]).arg(&list);
        if with_subs {
            cmd.arg("-i").arg(&srt_path);
            cmd.args([
                "-map", "0:v", "-map", "0:a", "-map", "1:s", "-c:v", "copy", "-c:a", "copy",
            ])
            .args(["-c:s", "mov_text", "-metadata:s:s:0", "language=eng"]);
        } else {
            cmd.args(["-map", "0:v", "-map", "0:a", "-c", "copy"]);
        }
    } else {
        for f in &files {
            cmd.arg("-i").arg(f);
        }
        let soft = with_subs && !burn;
        if soft {
            cmd.arg("-i").arg(&srt_path);
        }
        let mut graph = String::new();
        let (mut v, mut a) = ("[0:v]".to_string(), "[0:a]".to_string());
        if crossfade {
            let d = options.crossfade_ms as f64 / 1000.0;
            for (i, start) in starts.iter().enumerate().skip(1) {
                let offset = *start as f64 / 1000.0;
                graph.push_str(&format!(
                    "{v}[{i}:v]xfade=transition=fade:duration={d:.3}:offset={offset:.3}[v{i}];\
                     {a}[{i}:a]acrossfade=d={d:.3}[a{i}];"
                ));
                v = format!("[v{i}]");
                a = format!("[a{i}]");
            }
        } else {
            let n = files.len();
            for i in 0..n {
                graph.push_str(&format!("[{i}:v][{i}:a]"));
            }
            graph.push_str(&format!("concat=n={n}:v=1:a=1[vc][ac];"));
            v = "[vc]".into();
            a = "[ac]".into();
        }
        if burn {
            let escaped = srt_path
                .display()
                .to_string()
                .replace('\\', "\\\\\\\\")
                .replace(':', "\\\\:")
                .replace('\'', "\\\\'");
            graph.push_str(&format!("{v}subtitles=filename={escaped}[vs];"));
            v = "[vs]".into();
        }
        let graph = graph.trim_end_matches(';').to_string();
        cmd.args(["-filter_complex", &graph, "-map", &v, "-map", &a]);
        if soft {
            cmd.args(["-map", &format!("{}:s", files.len())]).args([
                "-c:s",
                "mov_text",
                "-metadata:s:s:0",
                "language=eng",
            ]);
        }
        cmd.args(encode_args(shape));
    }
    cmd.args(["-movflags", "+faststart"]).arg(out);
    process::output(cmd, ffmpeg, "joining the reel").await?;
    progress(total, total);
    Ok(Rendered {
        path: out.to_path_buf(),
        duration_ms,
    })
}

fn encode_args(shape: Shape) -> Vec<String> {
    [
        "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", "-c:a",
        "aac", "-b:a", "160k", "-ar", "48000", "-ac", "2", "-r",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("{:.3}", shape.fps)])
    .collect()
}

/// Cuts one piece, frame-accurately, in the reel's shape.
async fn cut_piece(ffmpeg: &str, p: &Piece, shape: Shape, out: &Path) -> Result<()> {
    let s = &p.segment;
    let secs = |ms: i64| format!("{:.3}", ms as f64 / 1000.0);
    let mut cmd = Command::new(ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(["-ss", &secs(s.start_ms), "-t", &secs(s.duration_ms()), "-i"])
        .arg(&p.source);
    if !p.has_audio {
        cmd.args(["-f", "lavfi", "-t", &secs(s.duration_ms()), "-i"])
            .arg("anullsrc=channel_layout=stereo:sample_rate=48000");
    }
    let (w, h) = (shape.width.max(2) / 2 * 2, shape.height.max(2) / 2 * 2);
    let video = format!(
        "[0:v:0]scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={:.3},format=yuv420p[v]",
        shape.fps
    );
    let audio_in = if p.has_audio { "[0:a:0]" } else { "[1:a]" };
    let audio = format!(
        "{audio_in}aresample=48000,aformat=channel_layouts=stereo,apad,atrim=0:{}[a]",
        secs(s.duration_ms())
    );
    cmd.args(["-filter_complex", &format!("{video};{audio}")])
        .args(["-map", "[v]", "-map", "[a]", "-t", &secs(s.duration_ms())])
        .args(encode_args(shape))
        .arg(out);
    process::output(cmd, ffmpeg, "cutting a reel segment").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossfades_overlap_consecutive_pieces() {
        assert_eq!(
            timeline(&[4_000, 3_000, 5_000], 0),
            (vec![0, 4_000, 7_000], 12_000)
        );
        assert_eq!(
            timeline(&[4_000, 3_000, 5_000], 500),
            (vec![0, 3_500, 6_000], 11_000)
        );
    }

    #[test]
    fn descriptions_become_srt_cues_on_the_reel_timeline() {
        let piece = |start_ms, end_ms, d: &str| Piece {
            segment: Segment {
                video_id: "v".into(),
                start_ms,
                end_ms,
                score: 1.0,
                priority: 2,
                description: d.into(),
                reason: String::new(),
                model: String::new(),
                similarity: None,
            },
            source: PathBuf::from("x.mp4"),
            has_audio: true,
        };
        let text = srt(
            &[
                piece(20_000, 25_000, "bikes"),
                piece(0, 1_000, ""),
                piece(46_000, 50_500, "bunny"),
            ],
            &[0, 5_000, 6_000],
        );
        assert_eq!(
            text,
            "1\n00:00:00,000 --> 00:00:05,000\nbikes\n\n2\n00:00:06,000 --> 00:00:10,500\nbunny\n\n"
        );
    }
}
