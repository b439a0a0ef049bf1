//! The single decode pass: one ffmpeg process decodes the video once and feeds every
//! signal from it: small YUV frames (motion, cuts, colour, layout) on stdout, 16 kHz mono
//! audio (loudness) on fd 3, and JPEG thumbnails written straight to disk.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use crate::process;
use crate::signals::{self, FRAME_BYTES, HIST_BINS, LAYOUT_CELLS};
use reelforge_core::error::{Error, Result};

/// Audio is resampled to this rate for loudness and speech.
pub const AUDIO_RATE: u32 = 16_000;
/// Loudness window.
pub const AUDIO_WINDOW_MS: i64 = 500;
const AUDIO_WINDOW_SAMPLES: usize = (AUDIO_RATE as i64 * AUDIO_WINDOW_MS / 1000) as usize;

pub struct DecodeSpec<'a> {
    pub ffmpeg: &'a str,
    pub source: &'a Path,
    pub analysis_fps: f64,
    pub thumbnails_dir: &'a Path,
    pub thumbnail_fps: f64,
    pub thumbnail_height: u32,
    pub with_audio: bool,
    /// Also hand over the audio samples themselves (for speech-to-text).
    pub keep_samples: bool,
    /// Media time to start at (0: the beginning). Must sit on the analysis frame,
    /// thumbnail and audio window grids (`on_grids`), so samples and thumbnails carry
    /// the same times and numbers as a decode from the start.
    pub start_ms: i64,
}

/// Whether `t_ms` is a valid `DecodeSpec::start_ms` for these rates: a whole second on
/// which both the analysis frame and thumbnail grids fall.
pub fn on_grids(t_ms: i64, analysis_fps: f64, thumbnail_fps: f64) -> bool {
    let on = |fps: f64| {
        let n = t_ms as f64 * fps / 1000.0;
        (n - n.round()).abs() < 1e-6
    };
    t_ms >= 0 && t_ms % 1000 == 0 && on(analysis_fps) && on(thumbnail_fps)
}

/// Signals of one analysis frame.
#[derive(Debug, Clone)]
pub struct FrameSample {
    pub t_ms: i64,
    /// Mean absolute luma change from the previous analysis frame, 0..1.
    pub motion: f32,
    /// Colour-histogram distance from the previous analysis frame, 0..1.
    pub hist_distance: f32,
    pub histogram: [f32; HIST_BINS],
    pub layout: [f32; LAYOUT_CELLS],
}

/// Loudness of one audio window, and its samples when asked for.
#[derive(Debug, Clone)]
pub struct AudioWindow {
    pub start_ms: i64,
    pub rms_db: f32,
    /// 16 kHz mono, -1..1; empty unless `DecodeSpec::keep_samples`.
    pub samples: Vec<f32>,
}

#[derive(Debug)]
pub enum Sample {
    Frame(Box<FrameSample>),
    Audio(AudioWindow),
    /// No more frames will come.
    VideoEnd,
    /// No more audio will come.
    AudioEnd,
}

/// Runs the decode pass, sending samples in time order per stream. Returns when ffmpeg
/// exits; an error carries ffmpeg's stderr tail. Dropping the future kills ffmpeg.
pub async fn decode(spec: DecodeSpec<'_>, tx: mpsc::Sender<Sample>) -> Result<()> {
    if !on_grids(spec.start_ms, spec.analysis_fps, spec.thumbnail_fps) {
        return Err(Error::internal(format!(
            "decode cannot start at {} ms: not on the analysis and thumbnail grids",
            spec.start_ms
        )));
    }
    let first_thumbnail = (spec.start_ms as f64 * spec.thumbnail_fps / 1000.0).round() as u64;
    let filter = format!(
        "[0:v:0]split=2[a][b];\
         [a]fps={afps},scale={w}:{h}:flags=area,format=yuv420p[an];\
         [b]fps={tfps},scale=-2:{th}[th]",
        afps = spec.analysis_fps,
        w = signals::FRAME_WIDTH,
        h = signals::FRAME_HEIGHT,
        tfps = spec.thumbnail_fps,
        th = spec.thumbnail_height,
    );
    let mut cmd = Command::new(spec.ffmpeg);
    cmd.args(["-hide_banner", "-nostdin", "-v", "error"])
        // ffmpeg filters on its main thread, serially with feeding the decoder; more frame
        // threads than cores keep the decoder busy meanwhile (measured: 0.74x -> 0.84x of a
        // bare decode's speed on 2 cores).
        .args(["-threads", &decoder_threads().to_string()])
        // Frames no other frame references need no deblocking for 64x36 signals or 180p
        // thumbnails; skipping it saves ~8% of decode CPU and cannot drift.
        .args(["-skip_loop_filter", "noref"]);
    if spec.start_ms > 0 {
        // Input seeking decodes from the keyframe before and drops frames up to the
        // time, so the first frame out is the one at `start_ms`; timestamps restart at 0.
        cmd.args(["-ss", &format!("{:.3}", spec.start_ms as f64 / 1000.0)]);
    }
    cmd.arg("-i")
        .arg(spec.source)
        .args(["-filter_complex", &filter])
        .args(["-map", "[an]", "-f", "rawvideo", "pipe:1"])
        .args([
            "-map",
            "[th]",
            "-q:v",
            "4",
            "-start_number",
            &first_thumbnail.to_string(),
            "-f",
            "image2",
            "-y",
        ])
        .arg(spec.thumbnails_dir.join("%06d.jpg"))
        .stdout(Stdio::piped());

    let audio_rx = if spec.with_audio {
        let (audio_tx, audio_rx) = tokio::net::unix::pipe::pipe()?;
        let write_end = audio_tx.into_blocking_fd()?;
        cmd.args(["-map", "0:a:0", "-ac", "1", "-ar", &AUDIO_RATE.to_string()])
            .args(["-f", "s16le", "pipe:3"]);
        give_child_fd3(&mut cmd, write_end);
        Some(audio_rx)
    } else {
        None
    };

    let mut child = process::spawn(cmd, spec.ffmpeg)?;
    // The child holds its own copy of the audio pipe's write end now; ours was moved into
    // the pre-exec closure, which the Command drops when it is dropped below.
    let stdout = child.child.stdout.take().expect("stdout was piped");
    let frame_interval_ms = 1000.0 / spec.analysis_fps;
    let video = read_frames(stdout, spec.start_ms, frame_interval_ms, tx.clone());
    let audio = async {
        match audio_rx {
            Some(rx) => read_audio(rx, spec.start_ms, tx.clone(), spec.keep_samples).await,
            None => Ok(()),
        }
    };
    let read = async { tokio::try_join!(video, audio) };
    match read.await {
        Ok(_) => child.finish("decode").await,
        // A decode failure usually explains the read failure: prefer ffmpeg's reason.
        Err(read_err) => match child.finish("decode").await {
            Err(media) => Err(media),
            Ok(()) => Err(read_err),
        },
    }
}

fn decoder_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    cores.clamp(4, 16)
}

/// Makes `fd` the child's file descriptor 3 (ffmpeg's `pipe:3`).
fn give_child_fd3(cmd: &mut Command, fd: OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2, fcntl) run between fork and exec, and
    // `fd` stays open until the closure (which owns it) is dropped with the Command.
    unsafe {
        cmd.pre_exec(move || {
            let _keep_open = &fd;
            if raw == 3 {
                // dup2 onto itself keeps close-on-exec set; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

async fn read_frames(
    mut stdout: impl AsyncRead + Unpin,
    start_ms: i64,
    frame_interval_ms: f64,
    tx: mpsc::Sender<Sample>,
) -> Result<()> {
    let mut buf = vec![0u8; FRAME_BYTES];
    let mut prev: Option<(Vec<u8>, [f32; HIST_BINS])> = None;
    let mut n: u64 = 0;
    loop {
        match stdout.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let frame = signals::YuvFrame::from_bytes(&buf);
        let luma = frame.y.to_vec();
        let histogram = signals::colour_histogram(&frame);
        let (motion, hist_distance) = match &prev {
            Some((prev_luma, prev_hist)) => (
                signals::motion_energy(prev_luma, &luma),
                signals::histogram_distance(prev_hist, &histogram),
            ),
            None => (0.0, 0.0),
        };
        let sample = FrameSample {
            t_ms: start_ms + (n as f64 * frame_interval_ms).round() as i64,
            motion,
            hist_distance,
            histogram,
            layout: signals::layout_grid(&luma),
        };
        send(&tx, Sample::Frame(Box::new(sample))).await?;
        prev = Some((luma, histogram));
        n += 1;
    }
    send(&tx, Sample::VideoEnd).await
}

async fn read_audio(
    mut rx: impl AsyncRead + Unpin,
    start_ms: i64,
    tx: mpsc::Sender<Sample>,
    keep_samples: bool,
) -> Result<()> {
    let mut bytes = vec![0u8; AUDIO_WINDOW_SAMPLES * 2];
    let mut index: i64 = 0;
    loop {
        let mut filled = 0;
        while filled < bytes.len() {
            let n = rx.read(&mut bytes[filled..]).await?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        if filled < 2 {
            break;
        }
        let samples: Vec<i16> = bytes[..filled - filled % 2]
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        let window = AudioWindow {
            start_ms: start_ms + index * AUDIO_WINDOW_MS,
            rms_db: signals::rms_dbfs(&samples),
            samples: if keep_samples {
                samples.iter().map(|&s| s as f32 / 32768.0).collect()
            } else {
                Vec::new()
            },
        };
        send(&tx, Sample::Audio(window)).await?;
        index += 1;
        if filled < bytes.len() {
            break;
        }
    }
    send(&tx, Sample::AudioEnd).await
}

async fn send(tx: &mpsc::Sender<Sample>, sample: Sample) -> Result<()> {
    tx.send(sample)
        .await
        .map_err(|_| Error::Cancelled("the analysis stopped reading the decoder".into()))
}

#[cfg(test)]
mod tests {
    use super::on_grids;

    #[test]
    fn a_decode_starts_only_where_every_sample_grid_falls() {
        assert!(on_grids(0, 10.0, 1.0));
        assert!(on_grids(12_000, 10.0, 1.0));
        assert!(on_grids(4_000, 2.0, 0.5));
        assert!(
            !on_grids(3_000, 2.0, 0.5),
            "a 0.5 fps thumbnail falls every 2 s"
        );
        assert!(!on_grids(1_500, 10.0, 1.0), "not a whole second");
        assert!(on_grids(1_000, 3.0, 1.0));
        assert!(!on_grids(1_000, 2.5, 1.0), "2.5 frames in");
        assert!(!on_grids(-1_000, 1.0, 1.0));
    }
}
