//! `reelforge rate` (a highlight segment or a search hit, good or bad) and `reelforge
//! tune` (a category's matching defaults from its ratings).

use crate::Channel;
use anyhow::Context;
use clap::{Args, ValueEnum};
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::feedback_client::FeedbackClient;

use crate::output::{self, clock};
use crate::search::time_range;

#[derive(Clone, Copy, ValueEnum)]
pub enum Verdict {
    Good,
    Bad,
}

#[derive(Args)]
pub struct RateArgs {
    /// The highlight (or, with --hit, the video).
    pub target: String,
    /// The segment's number as `highlight` lists it (1 = first; or, with --hit, the
    /// hit's START-END in seconds, e.g. 20-30).
    pub segment: String,
    pub verdict: Verdict,
    /// Rate a search hit: TARGET is its video, SEGMENT its time range.
    #[arg(long)]
    pub hit: bool,
    /// The query a rated hit answered.
    #[arg(long, default_value = "")]
    pub query: String,
    #[arg(long, default_value = "")]
    pub note: String,
    /// The category the rating tunes (default: the highlight's; a hit must name one).
    #[arg(long)]
    pub category: Option<String>,
    /// Add the segment (rated good) to the highlight library under the category.
    #[arg(long)]
    pub add_to_library: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct TuneArgs {
    pub category: String,
    /// Store the tuning as the category's defaults (default: only show it).
    #[arg(long)]
    pub apply: bool,
    #[arg(long)]
    pub json: bool,
}

pub async fn rate(channel: Channel, args: RateArgs) -> anyhow::Result<()> {
    let target = if args.hit {
        let range = time_range(&args.segment).context("the hit's time range")?;
        pb::rate_request::Target::Hit(pb::RatedHit {
            video_id: args.target,
            start_ms: range.start_ms,
            end_ms: range.end_ms,
            query: args.query,
        })
    } else {
        let n: u32 = args
            .segment
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 1)
            .with_context(|| {
                format!(
                "SEGMENT {:?} is not a segment number (1 = the first segment `highlight` lists)",
                args.segment
            )
            })?;
        pb::rate_request::Target::Segment(pb::RatedSegment {
            highlight_id: args.target,
            index: n - 1,
        })
    };
    let r = FeedbackClient::new(channel)
        .rate(pb::RateRequest {
            target: Some(target),
            good: matches!(args.verdict, Verdict::Good),
            note: args.note,
            category: args.category.unwrap_or_default(),
            add_to_library: args.add_to_library,
        })
        .await?
        .into_inner();
    if args.json {
        return output::json_line(&r);
    }
    println!(
        "rated {} {}-{} of {} {} in {} ({}){}",
        if r.good { "good:" } else { "bad:" },
        clock(r.start_ms),
        clock(r.end_ms),
        r.video_id,
        r.similarity
            .map(|s| format!("(similarity {s:.3})"))
            .unwrap_or_default(),
        r.category,
        r.rating_id,
        if r.library_entry_id.is_empty() {
            String::new()
        } else {
            format!("; library entry {}", r.library_entry_id)
        }
    );
    Ok(())
}

fn kept(c: &Option<pb::RatedCounts>) -> String {
    let c = c.unwrap_or_default();
    format!(
        "keeps {}/{} good and {}/{} bad, was {}/{} and {}/{}",
        c.good_kept_after,
        c.good,
        c.bad_kept_after,
        c.bad,
        c.good_kept_before,
        c.good,
        c.bad_kept_before,
        c.bad
    )
}

pub async fn tune(channel: Channel, args: TuneArgs) -> anyhow::Result<()> {
    let r = FeedbackClient::new(channel)
        .tune(pb::TuneRequest {
            category: args.category,
            apply: args.apply,
        })
        .await?
        .into_inner();
    if args.json {
        return output::json_line(&r);
    }
    println!(
        "{}: {} ratings ({} good, {} bad)",
        r.category, r.ratings, r.good, r.bad
    );
    for t in &r.thresholds {
        println!(
            "  {} threshold ({}): {:.3} -> {:.3}; {}",
            t.strategy,
            t.unit,
            t.before,
            t.after,
            kept(&t.rated)
        );
    }
    if let Some(p) = &r.prefilter {
        println!(
            "  pre-filter: motion {:.4} -> {:.4}, loudness +{:.1} -> +{:.1} dB; {}",
            p.motion_before,
            p.motion_after,
            p.loudness_db_before,
            p.loudness_db_after,
            kept(&p.rated)
        );
    }
    for f in &r.flips {
        println!(
            "  {} {}-{} of {} (rated {}): {}",
            f.rating_id,
            clock(f.start_ms),
            clock(f.end_ms),
            f.video_id,
            if f.good { "good" } else { "bad" },
            f.what
        );
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    println!(
        "{}",
        if r.applied {
            "applied: later highlights in this category start from these values"
        } else {
            "not applied (add --apply to use these values)"
        }
    );
    Ok(())
}
