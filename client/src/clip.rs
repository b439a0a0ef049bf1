//! `reelforge clip`: a moment of a stored video as a playable MP4 file.

use std::path::{Path, PathBuf};

use crate::Channel;
use anyhow::Context;
use clap::Args;
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::highlight_client::HighlightClient;
use tokio::io::AsyncWriteExt;

use crate::output::clock;
use crate::search::time_range;

#[derive(Args)]
pub struct ClipArgs {
    /// The stored video.
    pub video: String,
    /// The moment, in seconds: START-END (e.g. 20-30).
    pub range: String,
    /// Where to write the MP4.
    #[arg(long)]
    pub out: PathBuf,
    /// Scale down to at most this many lines (re-encodes).
    #[arg(long)]
    pub max_height: Option<u32>,
    /// Start exactly at START (re-encodes) instead of the keyframe at or before it.
    #[arg(long)]
    pub exact: bool,
}

pub async fn run(channel: Channel, args: ClipArgs) -> anyhow::Result<()> {
    let range = time_range(&args.range).context("the moment")?;
    let info = fetch(
        channel,
        pb::GetClipRequest {
            video_id: args.video,
            start_ms: range.start_ms,
            end_ms: range.end_ms,
            max_height: args.max_height.unwrap_or_default(),
            exact: args.exact,
        },
        &args.out,
    )
    .await?;
    println!("{}", describe(&info, &args.out));
    Ok(())
}

/// One line on a written clip.
pub fn describe(info: &pb::ClipInfo, out: &Path) -> String {
    format!(
        "wrote {} ({} {}-{}, {} bytes, {})",
        out.display(),
        info.video_id,
        clock(info.start_ms),
        clock(info.end_ms),
        info.total_bytes,
        if info.stream_copy {
            "stream copy from the keyframe"
        } else {
            "re-encoded"
        }
    )
}

/// Fetches a clip into `out` (written whole, then renamed into place).
pub async fn fetch(
    channel: Channel,
    request: pb::GetClipRequest,
    out: &Path,
) -> anyhow::Result<pb::ClipInfo> {
    let mut client = HighlightClient::new(channel);
    let mut stream = client.get_clip(request).await?.into_inner();
    let partial = out.with_extension("mp4.part");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot write {}", partial.display()))?;
    let mut info = None;
    while let Some(chunk) = stream.message().await? {
        if let Some(i) = chunk.info {
            info = Some(i);
        }
        file.write_all(&chunk.data).await?;
    }
    file.flush().await?;
    drop(file);
    tokio::fs::rename(&partial, out)
        .await
        .with_context(|| format!("cannot write {}", out.display()))?;
    info.context("the server sent no clip")
}
