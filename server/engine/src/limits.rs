//! Each tenant's limits (`[tenants.NAME]`), checked before work starts: jobs running at
//! once, bytes kept (uploaded sources and highlight outputs), and Bedrock spending per day
//! (tokens and bytes sent, counted per tenant by `models::bedrock::telemetry` for the
//! calls made on the tenant's behalf; a tenant past its budget also has every further
//! call refused before it is sent). A limit used up answers RESOURCE_EXHAUSTED saying
//! which, how much is used and what frees it.

use std::collections::BTreeMap;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_models::bedrock::telemetry::{self, Budget};

use crate::catalog::Catalog;
use crate::config::{EngineConfig, TenantConfig};
use crate::highlights::Highlights;
use crate::store::TenantUsage;

pub struct Limits {
    /// Each tenant's spending today, kept across restarts (`tenant_spend` tree: tenant →
    /// day, tokens, bytes sent), written whenever a job is admitted and at shutdown.
    spend: sled::Tree,
    tenants: BTreeMap<String, TenantConfig>,
    catalog: Arc<Catalog>,
    highlights: Arc<Highlights>,
}

impl Limits {
    /// The limits of `config`, with each tenant's Bedrock budget handed to the telemetry
    /// that enforces it call by call.
    pub fn new(
        db: &sled::Db,
        config: &EngineConfig,
        catalog: Arc<Catalog>,
        highlights: Arc<Highlights>,
    ) -> Result<Limits> {
        let spend = db.open_tree("tenant_spend")?;
        for item in spend.iter() {
            let (tenant, value) = item?;
            if let Ok((day, tokens, bytes_sent)) = serde_json::from_slice::<(i64, u64, u64)>(&value)
            {
                telemetry::restore_spend(
                    &String::from_utf8_lossy(&tenant),
                    telemetry::TenantSpend {
                        day,
                        tokens,
                        bytes_sent,
                    },
                );
            }
        }
        for (tenant, t) in &config.tenants {
            telemetry::set_budget(
                tenant,
                Budget {
                    tokens_per_day: t.bedrock_tokens_per_day,
                    bytes_per_day: t.bedrock_bytes_per_day,
                },
            );
        }
        Ok(Limits {
            spend,
            tenants: config.tenants.clone(),
            catalog,
            highlights,
        })
    }

    /// Writes every tenant's spending today to the store.
    pub fn save_spend(&self) -> Result<()> {
        for (tenant, s) in telemetry::spends() {
            let value = serde_json::to_vec(&(s.day, s.tokens, s.bytes_sent))?;
            self.spend.insert(tenant.as_bytes(), value)?;
        }
        Ok(())
    }

    /// The limits configured for each tenant (`[tenants.NAME]`).
    pub fn configured(&self) -> &BTreeMap<String, TenantConfig> {
        &self.tenants
    }

    /// What every tenant keeps and runs now.
    pub async fn usage(&self) -> Result<BTreeMap<String, TenantUsage>> {
        let mut usage = BTreeMap::new();
        self.catalog.usage(&mut usage).await?;
        let highlights = self.highlights.clone();
        crate::util::blocking(move || {
            highlights.usage(&mut usage)?;
            Ok(usage)
        })
        .await
    }

    /// Whether `job` may start a job that will keep `incoming_bytes` more (an upload's
    /// size; 0 when unknown, then only a quota already used up refuses).
    pub async fn admit_job(&self, job: &Admission<'_>, incoming_bytes: u64) -> Result<()> {
        let tenant = job.tenant;
        if let Err(e) = self.save_spend() {
            tracing::warn!("cannot record Bedrock spending: {e}");
        }
        if let Some(why) = telemetry::over_budget(tenant) {
            return Err(Error::ResourceExhausted(why));
        }
        let limits = self.tenants.get(tenant).cloned().unwrap_or_default();
        let key_limit = job.key_id.filter(|_| job.key_max_jobs > 0);
        if limits.max_concurrent_jobs == 0 && limits.storage_bytes == 0 && key_limit.is_none() {
            return Ok(());
        }
        let usage = self.usage().await?.remove(tenant).unwrap_or_default();
        if let Some(key) = key_limit {
            let running = usage.running_by_key.get(key).copied().unwrap_or(0);
            if running >= job.key_max_jobs as usize {
                return Err(Error::ResourceExhausted(format!(
                    "API key {key} has {running} jobs running, its limit (max_concurrent_jobs \
                     {} set when the key was made); start this one when one ends",
                    job.key_max_jobs
                )));
            }
        }
        let running = usage.jobs_running;
        if limits.max_concurrent_jobs > 0 && running >= limits.max_concurrent_jobs {
            return Err(Error::ResourceExhausted(format!(
                "tenant {tenant} has {running} jobs running, its limit \
                 (tenants.{tenant}.max_concurrent_jobs = {}); start this one when one ends",
                limits.max_concurrent_jobs
            )));
        }
        let (uploaded, outputs) = (usage.uploaded_bytes, usage.output_bytes);
        let used = uploaded + outputs;
        if limits.storage_bytes > 0 && used + incoming_bytes > limits.storage_bytes {
            return Err(Error::ResourceExhausted(format!(
                "tenant {tenant} keeps {used} bytes (uploads {uploaded}, highlight outputs \
                 {outputs}){}; its quota is {} (tenants.{tenant}.storage_bytes): delete videos \
                 or highlights first",
                if incoming_bytes > 0 {
                    format!(" and this needs {incoming_bytes} more")
                } else {
                    String::new()
                },
                limits.storage_bytes
            )));
        }
        Ok(())
    }
}

/// Who a job would be started for: its tenant, and the API key asking with the key's own
/// limit on jobs running at once (0: none).
#[derive(Debug, Clone, Copy)]
pub struct Admission<'a> {
    pub tenant: &'a str,
    pub key_id: Option<&'a str>,
    pub key_max_jobs: u32,
}
