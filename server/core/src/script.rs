//! A highlight script as people write it ("a jump, then the crowd cheering") split into
//! ordered events.

use crate::error::{Error, Result};

/// Most events a script may have.
pub const MAX_EVENTS: usize = 50;
/// Splits a script into ordered events: at line breaks, `;`, sentence ends, commas and
/// "then" / "and then" / "after that" / "->".
pub fn parse_script(text: &str) -> Result<Vec<String>> {
    let mut marked = format!(
        " {} ",
        text.replace(['\n', ';', '.', ',', '!', '?', '→'], " | ")
    );
    marked = marked.replace("->", " | ");
    for joiner in [" and then ", " after that ", " then ", " finally "] {
        let lower = marked.to_lowercase();
        let mut out = String::with_capacity(marked.len());
        let mut at = 0;
        for (i, _) in lower.match_indices(joiner) {
            out.push_str(&marked[at..i]);
            out.push_str(" | ");
            at = i + joiner.len();
        }
        out.push_str(&marked[at..]);
        marked = out;
    }
    let events: Vec<String> = marked
        .split('|')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| e.chars().any(char::is_alphanumeric))
        .collect();
    if events.is_empty() {
        return Err(Error::invalid(
            "script has no events: write what should happen, e.g. \"a jump, then the crowd cheering\"",
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(Error::invalid(format!(
            "script has {} events; at most {MAX_EVENTS} are accepted",
            events.len()
        )));
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_ordered_events() {
        assert_eq!(
            parse_script("Product reveal, then people smiling using it, and then the logo.")
                .unwrap(),
            vec!["Product reveal", "people smiling using it", "the logo"]
        );
        assert_eq!(
            parse_script("a jump -> the crowd cheering\nfinally a wave; Then quiet").unwrap(),
            vec!["a jump", "the crowd cheering", "a wave", "quiet"]
        );
        for empty in ["", "  ,, . then ;", "->"] {
            let err = parse_script(empty).unwrap_err();
            assert!(err.to_string().contains("no events"), "{err}");
        }
        let long = vec!["x"; MAX_EVENTS + 1].join(", ");
        assert!(parse_script(&long)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }
}
