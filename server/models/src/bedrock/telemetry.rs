//! What this process spent on Bedrock, per model: calls, retries, throttled attempts,
//! failed calls, tokens in and out, bytes sent and received. An SDK interceptor
//! (`CountCalls`, on every Bedrock runtime client) sees each HTTP attempt as it goes out
//! and comes back, so retries the SDK makes on its own are counted too; Converse's token
//! usage (in its body, not its headers) is added by the caller that reads it. The server
//! publishes a `snapshot` at each metrics scrape.
//!
//! Calls made inside `for_tenant` are also charged to that tenant's day (UTC): tokens and
//! bytes sent. A tenant with a daily budget (`set_budget`) that has spent it gets no more
//! calls that day: `over_budget` says so before work starts, and the interceptor refuses
//! an attempt before it is sent.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// Counters of one model (or operation, for calls that name no model).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelCounters {
    /// Operations started (a call and its retries count once).
    pub calls: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Attempts the service refused as throttled (HTTP 429 or `ThrottlingException`).
    pub throttled: u64,
    /// Attempts answered with an error status.
    pub errors: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

fn registry() -> &'static Mutex<BTreeMap<String, ModelCounters>> {
    static REGISTRY: OnceLock<Mutex<BTreeMap<String, ModelCounters>>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn update(model: &str, f: impl FnOnce(&mut ModelCounters)) {
    let mut all = registry().lock().expect("telemetry poisoned");
    f(all.entry(model.to_string()).or_default());
}

tokio::task_local! {
    static TENANT: String;
}

/// Runs `work` with the Bedrock calls it makes (on its own task) charged to `tenant`.
pub async fn for_tenant<F: Future>(tenant: String, work: F) -> F::Output {
    TENANT.scope(tenant, work).await
}

/// A tenant's spending on one day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantSpend {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub tokens: u64,
    pub bytes_sent: u64,
}

/// What a tenant may spend a day; 0: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub tokens_per_day: u64,
    pub bytes_per_day: u64,
}

#[derive(Default)]
struct Tenants {
    spend: HashMap<String, TenantSpend>,
    budgets: HashMap<String, Budget>,
}

fn tenants() -> &'static Mutex<Tenants> {
    static TENANTS: OnceLock<Mutex<Tenants>> = OnceLock::new();
    TENANTS.get_or_init(Mutex::default)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

const DAY_MS: i64 = 86_400_000;

/// Sets `tenant`'s daily budget (the server's configuration, at start).
pub fn set_budget(tenant: &str, budget: Budget) {
    let mut t = tenants().lock().expect("telemetry poisoned");
    t.budgets.insert(tenant.to_string(), budget);
}

/// What `tenant` has spent today.
pub fn spend_today(tenant: &str) -> TenantSpend {
    let day = now_ms().div_euclid(DAY_MS);
    let t = tenants().lock().expect("telemetry poisoned");
    match t.spend.get(tenant) {
        Some(s) if s.day == day => *s,
        _ => TenantSpend {
            day,
            ..TenantSpend::default()
        },
    }
}

/// Every tenant's spending today (to keep across restarts).
pub fn spends() -> Vec<(String, TenantSpend)> {
    let day = now_ms().div_euclid(DAY_MS);
    let t = tenants().lock().expect("telemetry poisoned");
    t.spend
        .iter()
        .filter(|(_, s)| s.day == day)
        .map(|(k, s)| (k.clone(), *s))
        .collect()
}

/// Puts back what a tenant spent today before a restart (a record of another day is
/// ignored).
pub fn restore_spend(tenant: &str, spend: TenantSpend) {
    let day = now_ms().div_euclid(DAY_MS);
    if spend.day != day {
        return;
    }
    let mut t = tenants().lock().expect("telemetry poisoned");
    let current = t.spend.entry(tenant.to_string()).or_default();
    if current.day != day {
        *current = spend;
    } else {
        current.tokens = current.tokens.max(spend.tokens);
        current.bytes_sent = current.bytes_sent.max(spend.bytes_sent);
    }
}

/// Why `tenant` may make no Bedrock call now, if it may not: the budget it used up and
/// when it resets.
pub fn over_budget(tenant: &str) -> Option<String> {
    let budget = {
        let t = tenants().lock().expect("telemetry poisoned");
        t.budgets.get(tenant).copied()?
    };
    let spent = spend_today(tenant);
    let resets_in_min = ((spent.day + 1) * DAY_MS - now_ms()).max(0) / 60_000;
    let resets = format!(
        "it resets at 00:00 UTC, in {} h {} min",
        resets_in_min / 60,
        resets_in_min % 60
    );
    if budget.tokens_per_day > 0 && spent.tokens >= budget.tokens_per_day {
        return Some(format!(
            "tenant {tenant} has used its Bedrock budget of {} tokens for today ({} used; \
             tenants.{tenant}.bedrock_tokens_per_day); {resets}",
            budget.tokens_per_day, spent.tokens
        ));
    }
    if budget.bytes_per_day > 0 && spent.bytes_sent >= budget.bytes_per_day {
        return Some(format!(
            "tenant {tenant} has used its Bedrock budget of {} bytes sent for today ({} sent; \
             tenants.{tenant}.bedrock_bytes_per_day); {resets}",
            budget.bytes_per_day, spent.bytes_sent
        ));
    }
    None
}

/// Charges the current task's tenant (if any).
fn charge(tokens: u64, bytes_sent: u64) {
    let Ok(tenant) = TENANT.try_with(|t| t.clone()) else {
        return;
    };
    let day = now_ms().div_euclid(DAY_MS);
    let mut t = tenants().lock().expect("telemetry poisoned");
    let spend = t.spend.entry(tenant).or_default();
    if spend.day != day {
        *spend = TenantSpend {
            day,
            ..TenantSpend::default()
        };
    }
    spend.tokens += tokens;
    spend.bytes_sent += bytes_sent;
}

/// Every model's counters so far, by model id.
pub fn snapshot() -> BTreeMap<String, ModelCounters> {
    registry().lock().expect("telemetry poisoned").clone()
}

/// Adds tokens a caller read from an answer's body (Converse's `usage`).
pub fn add_tokens(model: &str, input: u64, output: u64) {
    update(model, |c| {
        c.input_tokens += input;
        c.output_tokens += output;
    });
    charge(input + output, 0);
}

/// The model an HTTP request is for: `/model/{id}/invoke` or `/converse` (the id
/// percent-decoded); otherwise the first path segment (e.g. `async-invoke`).
pub fn model_of_uri(uri: &str) -> String {
    let path = uri
        .split_once("://")
        .map_or(uri, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    let path = path.split('?').next().unwrap_or(path);
    let mut segments = path.trim_start_matches('/').split('/');
    match segments.next() {
        Some("model") => percent_decode(segments.next().unwrap_or("")),
        Some("") | None => "unknown".into(),
        Some(other) => other.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The model of the attempt in flight, from its request to its response.
#[derive(Debug, Clone)]
struct CallModel(String);

impl Storable for CallModel {
    type Storer = StoreReplace<Self>;
}

/// Counts every attempt of every call a Bedrock client makes.
#[derive(Debug, Default)]
pub struct CountCalls;

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "reelforge::CountCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // A tenant past its budget gets no further call, whatever its job still wants.
        if let Ok(Some(why)) = TENANT.try_with(|t| over_budget(t)) {
            return Err(why.into());
        }
        let request = context.request();
        let model = model_of_uri(request.uri());
        let attempt = cfg.load::<RequestAttempts>().map_or(1, |a| a.attempts());
        let sent = request
            .body()
            .content_length()
            .or_else(|| request.body().bytes().map(|b| b.len() as u64))
            .unwrap_or(0);
        update(&model, |c| {
            if attempt <= 1 {
                c.calls += 1;
            } else {
                c.retries += 1;
            }
            c.bytes_sent += sent;
        });
        charge(0, sent);
        cfg.interceptor_state().store_put(CallModel(model));
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(CallModel(model)) = cfg.load::<CallModel>().cloned() else {
            return Ok(());
        };
        let response = context.response();
        let headers = response.headers();
        let status = response.status().as_u16();
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let throttled = status == 429
            || headers
                .get("x-amzn-errortype")
                .is_some_and(|t| t.starts_with("ThrottlingException"));
        let received = number("content-length");
        let (input, output) = (
            number("x-amzn-bedrock-input-token-count"),
            number("x-amzn-bedrock-output-token-count"),
        );
        update(&model, |c| {
            c.bytes_received += received;
            c.input_tokens += input;
            c.output_tokens += output;
            c.throttled += u64::from(throttled);
            c.errors += u64::from(status >= 400);
        });
        charge(input + output, 0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_read_from_request_paths() {
        assert_eq!(
            model_of_uri("https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"),
            "amazon.titan-embed-text-v2:0"
        );
        assert_eq!(
            model_of_uri("http://127.0.0.1:5000/model/us.amazon.nova-lite-v1:0/converse"),
            "us.amazon.nova-lite-v1:0"
        );
        assert_eq!(
            model_of_uri("http://127.0.0.1:5000/async-invoke/arn%3Aaws?x=1"),
            "async-invoke"
        );
        assert_eq!(model_of_uri("http://h/"), "unknown");
        assert_eq!(percent_decode("a%3"), "a%3", "a cut escape stays as it is");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%é1"), "%é1", "no panic inside a character");
    }
}
