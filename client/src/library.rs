//! `reelforge library`: the highlight library the template strategy matches against.

use crate::Channel;
use clap::Subcommand;
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::library_client::LibraryClient;

use crate::output::{self, clock};

#[derive(Subcommand)]
pub enum LibraryCommand {
    /// Add a clip of a stored video as a past highlight.
    Add {
        /// The stored video (see `reelforge videos list`).
        video: String,
        /// Start and end of the clip, in seconds.
        #[arg(long)]
        start: f64,
        #[arg(long)]
        end: f64,
        #[arg(long)]
        category: String,
        /// Repeatable: --tag bike --tag jump.
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// How good a highlight it was, 0..1 (default: the server's, 1).
        #[arg(long)]
        score: Option<f32>,
        #[arg(long)]
        json: bool,
    },
    /// Entries and category scripts.
    List {
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Remove an entry.
    Rm { entry_id: String },
    /// Set a category's ordered highlight script ("the start, then the jump, then the
    /// finish"); an empty script removes it.
    Script { category: String, script: String },
}

fn line(e: &pb::LibraryEntry) -> String {
    format!(
        "{}  {:<12} {}-{} of {} ({})  score {:.2}  {}{}",
        e.entry_id,
        e.category,
        clock(e.start_ms),
        clock(e.end_ms),
        e.filename,
        e.video_id,
        e.score,
        e.description,
        if e.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", e.tags.join(", "))
        }
    )
}

pub async fn run(channel: Channel, command: LibraryCommand) -> anyhow::Result<()> {
    let mut client = LibraryClient::new(channel);
    match command {
        LibraryCommand::Add {
            video,
            start,
            end,
            category,
            tags,
            description,
            score,
            json,
        } => {
            let e = client
                .add_entry(pb::AddLibraryEntryRequest {
                    video_id: video,
                    start_seconds: start,
                    end_seconds: end,
                    category,
                    tags,
                    description,
                    score,
                })
                .await?
                .into_inner();
            if json {
                output::json_line(&e)?;
            } else {
                println!("added {}", line(&e));
            }
        }
        LibraryCommand::List { category, json } => {
            let category = category.unwrap_or_default();
            let mut r = pb::ListLibraryEntriesResponse::default();
            loop {
                let page = client
                    .list_entries(pb::ListLibraryEntriesRequest {
                        category: category.clone(),
                        page_size: 500,
                        page_token: std::mem::take(&mut r.next_page_token),
                    })
                    .await?
                    .into_inner();
                r.entries.extend(page.entries);
                r.scripts.extend(page.scripts);
                r.next_page_token = page.next_page_token;
                if r.next_page_token.is_empty() {
                    break;
                }
            }
            if json {
                return output::json_line(&r);
            }
            if r.entries.is_empty() {
                println!("no library entries");
            }
            for e in &r.entries {
                println!("{}", line(e));
            }
            for s in &r.scripts {
                println!("script of {}: {}", s.category, s.events.join(" -> "));
            }
        }
        LibraryCommand::Rm { entry_id } => {
            let e = client
                .remove_entry(pb::RemoveLibraryEntryRequest { entry_id })
                .await?
                .into_inner();
            println!("removed {}", line(&e));
        }
        LibraryCommand::Script { category, script } => {
            let s = client
                .set_script(pb::SetCategoryScriptRequest { category, script })
                .await?
                .into_inner();
            if s.events.is_empty() {
                println!("removed the script of {}", s.category);
            } else {
                println!("script of {}: {}", s.category, s.events.join(" -> "));
            }
        }
    }
    Ok(())
}
