//! `reelforge keys`: API keys, and `reelforge tenants`: every tenant's usage, through a
//! running server (an admin key).

use anyhow::Context;
use clap::Subcommand;
use reelforge_proto::v1 as pb;
use reelforge_proto::v1::admin_client::AdminClient;

use crate::Channel;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a key; its secret is printed once (the server keeps only a hash).
    Create {
        /// The tenant the key acts for.
        #[arg(long)]
        tenant: String,
        /// read, write or admin.
        #[arg(long)]
        role: String,
        /// Lifetime, e.g. 30d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
        /// Who has it or what it is for.
        #[arg(long, default_value = "")]
        note: String,
        /// Jobs (ingests, highlights) the key may have running at once; default: only
        /// its tenant's limit.
        #[arg(long, default_value_t = 0)]
        max_jobs: u32,
    },
    /// Every key (or one tenant's), revoked and expired ones included.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key for every call after this one.
    Revoke { key_id: String },
    /// The key this CLI calls with: id, tenant, role.
    Whoami,
}

pub(crate) fn role_name(role: i32) -> &'static str {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Read) => "read",
        Ok(pb::Role::Write) => "write",
        Ok(pb::Role::Admin) => "admin",
        _ => "?",
    }
}

fn state(k: &pb::ApiKey, now_ms: i64) -> &'static str {
    if k.revoked_unix_ms != 0 {
        "revoked"
    } else if k.expires_unix_ms != 0 && k.expires_unix_ms <= now_ms {
        "expired"
    } else {
        "active"
    }
}

pub async fn run(channel: Channel, command: KeysCommand) -> anyhow::Result<()> {
    let mut client = AdminClient::new(channel);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    match command {
        KeysCommand::Create {
            tenant,
            role,
            expires,
            note,
            max_jobs,
        } => {
            let role = match role.trim().to_ascii_lowercase().as_str() {
                "read" => pb::Role::Read,
                "write" => pb::Role::Write,
                "admin" => pb::Role::Admin,
                other => anyhow::bail!("--role {other:?} is not read, write or admin"),
            };
            let expires_in_seconds = expires
                .map(|e| reelforge_core::time::parse_lifetime(&e).map_err(anyhow::Error::msg))
                .transpose()
                .context("--expires")?
                .unwrap_or(0);
            let made = client
                .create_key(pb::CreateKeyRequest {
                    tenant,
                    role: role as i32,
                    expires_in_seconds,
                    note,
                    max_concurrent_jobs: max_jobs,
                })
                .await?
                .into_inner();
            let key = made.key.unwrap_or_default();
            eprintln!(
                "made key {} for tenant {} with the {} role; its secret is shown once:",
                key.key_id,
                key.tenant,
                role_name(key.role)
            );
            println!("{}", made.secret);
        }
        KeysCommand::List { tenant, json } => {
            let keys = client
                .list_keys(pb::ListKeysRequest {
                    tenant: tenant.unwrap_or_default(),
                })
                .await?
                .into_inner()
                .keys;
            if json {
                return json_lines(&keys);
            }
            println!(
                "{:<14} {:<20} {:<6} {:<8} NOTE",
                "KEY", "TENANT", "ROLE", "STATE"
            );
            for k in &keys {
                println!(
                    "{:<14} {:<20} {:<6} {:<8} {}",
                    k.key_id,
                    k.tenant,
                    role_name(k.role),
                    state(k, now_ms),
                    k.note
                );
            }
        }
        KeysCommand::Revoke { key_id } => {
            let k = client
                .revoke_key(pb::RevokeKeyRequest { key_id })
                .await?
                .into_inner();
            eprintln!("revoked key {} of tenant {}", k.key_id, k.tenant);
        }
        KeysCommand::Whoami => {
            let k = client.who_am_i(pb::WhoAmIRequest {}).await?.into_inner();
            if k.key_id.is_empty() {
                println!(
                    "no key: tenant {}, role {} ({})",
                    k.tenant,
                    role_name(k.role),
                    k.note
                );
            } else {
                println!(
                    "key {}: tenant {}, role {}, {}",
                    k.key_id,
                    k.tenant,
                    role_name(k.role),
                    state(&k, now_ms)
                );
            }
        }
    }
    Ok(())
}

pub async fn tenants(channel: Channel, json: bool) -> anyhow::Result<()> {
    let tenants = AdminClient::new(channel)
        .list_tenants(pb::ListTenantsRequest {})
        .await?
        .into_inner()
        .tenants;
    if json {
        return json_lines(&tenants);
    }
    // A used amount with its limit, when one is set.
    let of = |used: u64, limit: u64| match limit {
        0 => used.to_string(),
        _ => format!("{used}/{limit}"),
    };
    println!(
        "{:<20} {:>4} {:>7} {:>10} {:>21} {:>6} {:>15} {:>15}",
        "TENANT",
        "KEYS",
        "VIDEOS",
        "HIGHLIGHTS",
        "BYTES KEPT",
        "JOBS",
        "BEDROCK TOKENS",
        "BEDROCK BYTES"
    );
    for t in &tenants {
        println!(
            "{:<20} {:>4} {:>7} {:>10} {:>21} {:>6} {:>15} {:>15}",
            t.tenant,
            t.active_keys,
            t.videos,
            t.highlights,
            of(t.uploaded_bytes + t.output_bytes, t.storage_quota_bytes),
            of(t.jobs_running.into(), t.max_concurrent_jobs.into()),
            of(t.bedrock_tokens_today, t.bedrock_tokens_per_day),
            of(t.bedrock_bytes_today, t.bedrock_bytes_per_day),
        );
    }
    Ok(())
}

/// One JSON object per line.
fn json_lines<T: serde::Serialize>(items: &[T]) -> anyhow::Result<()> {
    for item in items {
        println!("{}", serde_json::to_string(item)?);
    }
    Ok(())
}
