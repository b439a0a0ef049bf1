//! Running ffmpeg/ffprobe: children are killed when dropped, stderr is read concurrently
//! (so a chatty child never blocks) and its tail is carried in errors. Media work is
//! background work (ingest, renders): children run at the background priority, as do the
//! model pools that serve ingest, so searches get the CPU first on a busy machine.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use reelforge_core::error::{Error, Result};

/// How much of a child's stderr is kept for error messages.
const STDERR_TAIL_BYTES: usize = 2048;

/// The last bytes a child wrote to stderr, collected by a background task.
#[derive(Clone, Default)]
pub struct StderrTail {
    buf: Arc<Mutex<VecDeque<u8>>>,
}

impl StderrTail {
    fn collect(&self, mut stderr: tokio::process::ChildStderr) -> JoinHandle<()> {
        let buf = self.buf.clone();
        tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let mut buf = buf.lock().expect("stderr buffer poisoned");
                buf.extend(&chunk[..n]);
                let excess = buf.len().saturating_sub(STDERR_TAIL_BYTES);
                buf.drain(..excess);
            }
        })
    }

    /// The collected tail as text, on one line.
    pub fn text(&self) -> String {
        let buf = self.buf.lock().expect("stderr buffer poisoned");
        let bytes: Vec<u8> = buf.iter().copied().collect();
        String::from_utf8_lossy(&bytes)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A running media tool with its stderr being collected.
pub struct MediaChild {
    pub child: Child,
    pub stderr: StderrTail,
    stderr_task: JoinHandle<()>,
    program: String,
}

/// The nice value (0-19) of background work: media tools and the threads that call
/// `run_in_background`. A process-wide OS attribute, set once at start from the
/// configuration; 0 leaves priorities alone.
static BACKGROUND_NICE: AtomicI32 = AtomicI32::new(0);

pub fn set_background_nice(nice: i32) {
    BACKGROUND_NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// Lowers the calling thread to the background priority (on Linux the nice value is a
/// per-thread attribute): for the model pools that serve ingest.
pub fn run_in_background() {
    let nice = BACKGROUND_NICE.load(Ordering::Relaxed);
    if nice > 0 {
        // SAFETY: setpriority only changes the scheduling weight of the given thread.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, nice);
        }
    }
}

/// Spawns `cmd` at the background priority, with stderr captured, stdin closed and
/// kill-on-drop set.
pub fn spawn(mut cmd: Command, program: &str) -> Result<MediaChild> {
    cmd.stdin(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let nice = BACKGROUND_NICE.load(Ordering::Relaxed);
    if nice > 0 {
        // SAFETY: setpriority is a plain system call, safe between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setpriority(libc::PRIO_PROCESS, 0, nice);
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::FailedPrecondition(format!(
                "{program} is not installed or not on PATH (install Debian's ffmpeg package, \
                 or set ffmpeg/ffprobe in the config)"
            ))
        } else {
            Error::Io(e)
        }
    })?;
    let stderr = StderrTail::default();
    let stderr_task = stderr.collect(child.stderr.take().expect("stderr was piped"));
    Ok(MediaChild {
        child,
        stderr,
        stderr_task,
        program: program.to_string(),
    })
}

impl MediaChild {
    /// Waits for exit; a non-zero status becomes `Error::Media` with `what` and the stderr tail.
    pub async fn finish(mut self, what: &str) -> Result<()> {
        let status = self.child.wait().await?;
        // Let the reader drain what the child wrote last: that is usually the reason.
        let _ = self.stderr_task.await;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Media {
                message: format!("{what}: {} exited with {status}", self.program),
                stderr_tail: self.stderr.text(),
            })
        }
    }
}

/// Runs a command to completion and returns its stdout.
pub async fn output(mut cmd: Command, program: &str, what: &str) -> Result<Vec<u8>> {
    cmd.stdout(Stdio::piped());
    let mut child = spawn(cmd, program)?;
    let mut stdout = child.child.stdout.take().expect("stdout was piped");
    let mut out = Vec::new();
    stdout.read_to_end(&mut out).await?;
    child.finish(what).await?;
    Ok(out)
}
