//! Pages of a listing, as Google's AIP-158 describes them: the caller asks for at most
//! `page_size` items (0 = the server's default, larger than the maximum = the maximum) and
//! gets an opaque `next_page_token` that resumes after the last item it saw, empty on the
//! last page. A token is a cursor (the last item's sort key), not an offset, so items
//! added or removed between calls never shift a page; it is bound to the listing's filter,
//! and a token sent with a different filter is refused.

use crate::error::{Error, Result};

/// Items per page when a request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// The most items one page holds; a larger `page_size` is lowered to it.
pub const MAX_PAGE_SIZE: usize = 1000;

const TOKEN_VERSION: &str = "p1";

/// A checked page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub size: usize,
    /// The sort key of the last item of the previous page.
    after: Option<String>,
    /// The filter the listing was asked with, as [`PageRequest::parse`] got it.
    filter: String,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Empty on the last page.
    pub next_token: String,
}

impl PageRequest {
    /// Checks `page_size` and `page_token` as the caller sent them. `filter` describes
    /// everything else that selects the listing (its canonical form), so that a token
    /// cannot be replayed against another selection.
    pub fn parse(page_size: i32, page_token: &str, filter: &str) -> Result<Self> {
        let size = match page_size {
            n if n < 0 => {
                return Err(Error::invalid(format!(
                    "page_size must be 0 or more (0 asks for the default, {DEFAULT_PAGE_SIZE}); got {n}"
                )))
            }
            0 => DEFAULT_PAGE_SIZE,
            n => (n as usize).min(MAX_PAGE_SIZE),
        };
        let after = match page_token.trim() {
            "" => None,
            token => Some(decode_token(token, filter)?),
        };
        Ok(PageRequest {
            size,
            after,
            filter: filter.to_string(),
        })
    }

    /// Sorts `items` by `key` (the listing's order is the keys' byte order; make keys
    /// unique, e.g. end them with the item's id) and cuts the page this request asks for.
    pub fn cut<T>(&self, items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let mut keyed: Vec<(String, T)> = items.into_iter().map(|t| (key(&t), t)).collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let start = match &self.after {
            Some(after) => keyed.partition_point(|(k, _)| k <= after),
            None => 0,
        };
        let mut rest = keyed.into_iter().skip(start);
        let page: Vec<(String, T)> = rest.by_ref().take(self.size).collect();
        let next_token = match (rest.next(), page.last()) {
            (Some(_), Some((last, _))) => encode_token(last, &self.filter),
            _ => String::new(),
        };
        Page {
            items: page.into_iter().map(|(_, t)| t).collect(),
            next_token,
        }
    }

    /// Whether this is the first page (no token was sent).
    pub fn is_first(&self) -> bool {
        self.after.is_none()
    }
}

/// A sort key for newest-first listings: larger times sort first.
pub fn newest_first(unix_ms: i64) -> String {
    format!("{:020}", i64::MAX.saturating_sub(unix_ms.max(0)))
}

fn encode_token(after: &str, filter: &str) -> String {
    let plain = format!("{TOKEN_VERSION}\n{:016x}\n{after}", fingerprint(filter));
    plain.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_token(token: &str, filter: &str) -> Result<String> {
    let foreign = || {
        Error::invalid(format!(
            "page_token {:?} is not one this server issued; send the next_page_token of the previous page as it came, or leave page_token empty to start again",
            short(token)
        ))
    };
    if !token.len().is_multiple_of(2) || token.len() > 8192 {
        return Err(foreign());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(foreign)?;
    let plain = String::from_utf8(bytes).map_err(|_| foreign())?;
    let mut parts = plain.splitn(3, '\n');
    let (Some(TOKEN_VERSION), Some(print), Some(after)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(foreign());
    };
    if print != format!("{:016x}", fingerprint(filter)) {
        return Err(Error::invalid(
            "page_token belongs to a listing with other filters; send the same filters as for the first page, or leave page_token empty to start again",
        ));
    }
    Ok(after.to_string())
}

fn short(s: &str) -> String {
    match s.char_indices().nth(24) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// FNV-1a: stable across builds and platforms, so tokens outlive a restart.
fn fingerprint(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(page: &Page<u32>) -> Vec<u32> {
        page.items.clone()
    }

    fn all_pages(items: &[u32], size: i32, filter: &str) -> Vec<Vec<u32>> {
        let mut token = String::new();
        let mut pages = Vec::new();
        loop {
            let req = PageRequest::parse(size, &token, filter).unwrap();
            let page = req.cut(items.to_vec(), |n| format!("{n:05}"));
            pages.push(keys(&page));
            if page.next_token.is_empty() {
                return pages;
            }
            token = page.next_token;
        }
    }

    #[test]
    fn pages_walk_every_item_once_in_order() {
        let items: Vec<u32> = (0..7).rev().collect();
        assert_eq!(
            all_pages(&items, 3, "f"),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(all_pages(&items, 7, "f"), vec![(0..7).collect::<Vec<_>>()]);
        assert_eq!(all_pages(&[], 3, "f"), vec![Vec::<u32>::new()]);
    }

    #[test]
    fn a_removed_item_does_not_shift_the_next_page() {
        let req = PageRequest::parse(2, "", "").unwrap();
        let first = req.cut((0..6).collect(), |n: &u32| format!("{n:05}"));
        assert_eq!(first.items, vec![0, 1]);
        // Item 1 (the cursor) and item 2 go away between calls.
        let next = PageRequest::parse(2, &first.next_token, "").unwrap();
        let second = next.cut(vec![0, 3, 4, 5], |n: &u32| format!("{n:05}"));
        assert_eq!(second.items, vec![3, 4]);
    }

    #[test]
    fn sizes_default_and_cap() {
        assert_eq!(
            PageRequest::parse(0, "", "").unwrap().size,
            DEFAULT_PAGE_SIZE
        );
        assert_eq!(PageRequest::parse(5, "", "").unwrap().size, 5);
        assert_eq!(
            PageRequest::parse(i32::MAX, "", "").unwrap().size,
            MAX_PAGE_SIZE
        );
        let err = PageRequest::parse(-1, "", "").unwrap_err().to_string();
        assert!(err.contains("page_size"), "{err}");
    }

    #[test]
    fn foreign_and_mismatched_tokens_are_refused() {
        for bad in ["zz", "abc", "00", "7031", &"a".repeat(9000)] {
            let err = PageRequest::parse(2, bad, "").unwrap_err().to_string();
            assert!(err.contains("not one this server issued"), "{bad}: {err}");
        }
        let page = PageRequest::parse(1, "", "state=running")
            .unwrap()
            .cut(vec![1u32, 2], |n| n.to_string());
        let err = PageRequest::parse(1, &page.next_token, "state=failed")
            .unwrap_err()
            .to_string();
        assert!(err.contains("other filters"), "{err}");
    }

    #[test]
    fn newest_first_orders_later_times_first() {
        assert!(newest_first(2_000) < newest_first(1_000));
        assert!(newest_first(0) > newest_first(1));
    }
}
