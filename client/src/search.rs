//! `reelforge search`.

use crate::Channel;
use anyhow::Context;
use clap::{Args, ValueEnum};
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::search_client::SearchClient;

use crate::output::{self, clock};

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    All,
    Scene,
    Transcript,
    /// Thumbnails by what they show (needs the server's image-text model).
    Visual,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FusionArg {
    Rrf,
    Weighted,
}

#[derive(Args)]
pub struct SearchArgs {
    /// What to look for: a description, a line of dialogue, a scene.
    pub query: String,
    #[arg(long, value_enum, default_value = "all")]
    pub mode: ModeArg,
    #[arg(long, default_value_t = 10)]
    pub top_k: u32,
    /// Only this video (repeatable).
    #[arg(long = "video")]
    pub videos: Vec<String>,
    /// Only documents of this kind (repeatable): video_summary, slice_description,
    /// chapter_summary, transcript_chunk, shot, frame, sound_event, ocr_text.
    #[arg(long = "kind")]
    pub kinds: Vec<String>,
    /// Only moments overlapping this range, in seconds: START-END.
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long, value_enum, default_value = "rrf")]
    pub fusion: FusionArg,
    /// Rerank the fused candidates (default: the server's; on with Cohere Rerank, off
    /// with the local reranker).
    #[arg(long, conflicts_with = "no_rerank")]
    pub rerank: bool,
    /// Keep the fused order (no rerank).
    #[arg(long)]
    pub no_rerank: bool,
    /// Drop reranked results scoring below this.
    #[arg(long)]
    pub min_score: Option<f32>,
    /// Merge touching transcript chunks of a video into one moment.
    #[arg(long)]
    pub merge: bool,
    /// Show each stage's score and each matched term's BM25 contribution.
    #[arg(long)]
    pub explain: bool,
    /// One JSON object per result, then the statistics.
    #[arg(long)]
    pub json: bool,
    /// Also fetch each result's moment as a playable MP4 into this folder
    /// (`RANK-VIDEO-START.mp4`).
    #[arg(long, value_name = "DIR")]
    pub clips: Option<std::path::PathBuf>,
}

pub fn time_range(s: &str) -> anyhow::Result<pb::TimeRange> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| anyhow::anyhow!("--time wants START-END in seconds, e.g. 20-45"))?;
    let secs = |v: &str| -> anyhow::Result<i64> {
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("--time: {v:?} is not a number of seconds"))?;
        Ok((v * 1000.0).round() as i64)
    };
    Ok(pb::TimeRange {
        start_ms: secs(a)?,
        end_ms: secs(b)?,
    })
}

pub async fn run(channel: Channel, args: SearchArgs) -> anyhow::Result<()> {
    let mut client = SearchClient::new(channel.clone());
    let mut moments = Vec::new();
    let request = pb::SearchRequest {
        query: args.query,
        mode: match args.mode {
            ModeArg::All => pb::SearchMode::All,
            ModeArg::Scene => pb::SearchMode::Scene,
            ModeArg::Transcript => pb::SearchMode::Transcript,
            ModeArg::Visual => pb::SearchMode::Visual,
        } as i32,
        top_k: args.top_k,
        video_ids: args.videos,
        time_range: args.time.as_deref().map(time_range).transpose()?,
        kinds: args.kinds,
        fusion: Some(pb::FusionOptions {
            method: match args.fusion {
                FusionArg::Rrf => pb::FusionMethod::Rrf,
                FusionArg::Weighted => pb::FusionMethod::Weighted,
            } as i32,
            ..Default::default()
        }),
        rerank: match (args.rerank, args.no_rerank) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        rerank_threshold: args.min_score,
        merge_adjacent: args.merge,
        include_thumbnails: false,
    };
    let mut stream = client.search(request).await?.into_inner();
    if !args.json {
        println!(
            "{:>3}  {:<16}  {:<15}  {:>7}  {:<17}  SNIPPET",
            "#", "VIDEO", "TIME", "SCORE", "SOURCE"
        );
    }
    while let Some(message) = stream.message().await? {
        if let Some(pb::search_response::Item::Result(r)) = &message.item {
            moments.push((r.rank, r.video_id.clone(), r.start_ms, r.end_ms));
        }
        if args.json {
            output::json_line(&message)?;
            continue;
        }
        match message.item {
            Some(pb::search_response::Item::Result(r)) => {
                let s = r.scores.unwrap_or_default();
                println!(
                    "{:>3}  {:<16}  {}-{}  {:>7.4}  {:<17}  {}",
                    r.rank,
                    r.video_id,
                    clock(r.start_ms),
                    clock(r.end_ms),
                    s.final_score,
                    r.source,
                    r.snippet.replace('\n', " ")
                );
                if args.explain {
                    let rank = |r: u32| {
                        if r == 0 {
                            "-".to_string()
                        } else {
                            r.to_string()
                        }
                    };
                    println!(
                        "     bm25 #{} {:.3} · vector #{} cos {:.3} · fused {:.4}{}",
                        rank(s.bm25_rank),
                        s.bm25_score,
                        rank(s.vector_rank),
                        s.vector_cosine,
                        s.fused,
                        if s.reranked {
                            format!(" · rerank {:.3}", s.rerank)
                        } else {
                            String::new()
                        }
                    );
                    for t in &r.matched_terms {
                        println!("     term {:<16} {:.3}", t.term, t.bm25);
                    }
                }
            }
            Some(pb::search_response::Item::Stats(st)) => {
                let embed = if st.query_cached {
                    "query vector cached".to_string()
                } else {
                    format!(
                        "embed {:.1} ms ({:.1} ms queued, {} in the batch)",
                        st.embed_ms, st.queue_ms, st.embed_batch
                    )
                };
                println!(
                    "{} results in {:.1} ms (bm25 {:.1} ms over {} candidates, {embed}, \
                     vectors {:.1} ms over {}, rerank {:.1} ms)",
                    st.results,
                    st.total_ms,
                    st.bm25_ms,
                    st.bm25_candidates,
                    st.vector_ms,
                    st.vector_candidates,
                    st.rerank_ms
                );
            }
            None => {}
        }
    }
    if let Some(dir) = &args.clips {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for (rank, video_id, start_ms, end_ms) in moments {
            let out = dir.join(format!("{rank:02}-{video_id}-{}.mp4", start_ms / 1000));
            let request = pb::GetClipRequest {
                video_id,
                start_ms,
                // A whole-video result: its first minutes, as a clip is at most 10.
                end_ms: end_ms.min(start_ms + 600_000),
                ..Default::default()
            };
            match crate::clip::fetch(channel.clone(), request, &out).await {
                Ok(info) => eprintln!("{}", crate::clip::describe(&info, &out)),
                Err(e) => eprintln!("result {rank}: no clip: {}", output::one_line(&e)),
            }
        }
    }
    Ok(())
}
