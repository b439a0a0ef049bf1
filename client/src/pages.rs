//! Walking a List RPC's pages (AIP-158) until the server sends no `next_page_token`, and
//! the time bounds the listing flags take.

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

/// Items asked for per call; the server caps it at its own maximum.
const PAGE_SIZE: usize = 500;

/// Every item of a listing, or the first `limit`. `fetch` gets the page size and the
/// token of the page to fetch and returns its items and the next token.
pub async fn collect<T, Fut>(
    limit: Option<usize>,
    mut fetch: impl FnMut(i32, String) -> Fut,
) -> anyhow::Result<Vec<T>>
where
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut token = String::new();
    loop {
        let wanted = limit.map_or(PAGE_SIZE, |l| l.saturating_sub(items.len()).min(PAGE_SIZE));
        let (page, next) = fetch(wanted as i32, token).await?;
        items.extend(page);
        if let Some(l) = limit {
            if items.len() >= l {
                items.truncate(l);
                return Ok(items);
            }
        }
        if next.is_empty() {
            return Ok(items);
        }
        token = next;
    }
}

/// A point in time given as how long ago (`90s`, `30m`, `12h`, `7d`) or as Unix
/// milliseconds; returned as Unix milliseconds.
pub fn since(flag: &str, text: &str) -> anyhow::Result<i64> {
    let t = text.trim();
    if let Ok(ms) = t.parse::<i64>() {
        anyhow::ensure!(
            ms > 0,
            "{flag} {text:?}: a Unix time in milliseconds must be positive"
        );
        return Ok(ms);
    }
    let (number, unit) = t.split_at(t.len().saturating_sub(1));
    let seconds_per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => 0,
    };
    let amount: u32 = match (seconds_per, number.parse()) {
        (1.., Ok(n)) => n,
        _ => anyhow::bail!(
            "{flag} {text:?} is not a time: write how long ago (90s, 30m, 12h, 7d) or Unix milliseconds"
        ),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    Ok((now - i64::from(amount) * seconds_per * 1000).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn collect_follows_tokens_and_stops_at_the_limit() {
        let pages = |size: i32, token: String| async move {
            let start: usize = token.parse().unwrap_or(0);
            let end = (start + size as usize).min(1200);
            let next = if end < 1200 {
                end.to_string()
            } else {
                String::new()
            };
            Ok(((start..end).collect::<Vec<usize>>(), next))
        };
        let all = collect(None, pages).await.unwrap();
        assert_eq!(all, (0..1200).collect::<Vec<_>>());
        let some = collect(Some(7), pages).await.unwrap();
        assert_eq!(some, (0..7).collect::<Vec<_>>());
    }

    #[test]
    fn since_reads_ages_and_unix_times() {
        assert_eq!(
            since("--since", "1700000000000").unwrap(),
            1_700_000_000_000
        );
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let two_hours = since("--since", "2h").unwrap();
        assert!((now - two_hours - 7_200_000).abs() < 60_000);
        for bad in ["", "h", "2w", "-5", "yesterday"] {
            let err = since("--since", bad).unwrap_err().to_string();
            assert!(err.contains("--since"), "{bad}: {err}");
        }
    }
}
