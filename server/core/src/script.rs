//! A highlight script as people write it ("a jump, then the crowd cheering") split into
//! ordered events.

use crate::error::{Error, Result};

/// Most events a script may have.
pub const MAX_EVENTS: usize = 50;
/// Words that join Chinese events ("开场介绍，然后比赛开始"): dropped where they open an event.
const ZH_JOINERS: [&str; 5] = ["然后", "接着", "随后", "之后", "最后"];

/// Splits a script into ordered events: at line breaks, `;`, sentence ends, commas (ASCII
/// and full-width) and "then" / "and then" / "after that" / "finally" / "->" / "→"; a
/// Chinese joiner (然后, 接着, ...) that opens an event is dropped.
pub fn parse_script(text: &str) -> Result<Vec<String>> {
    let mut marked = format!(
        " {} ",
        text.replace(
            ['\n', ';', '.', ',', '!', '?', '→', '。', '，', '；', '！', '？'],
            " | "
        )
    );
    marked = marked.replace("->", " | ");
    for joiner in [" and then ", " after that ", " then ", " finally "] {
        marked = replace_ascii_ignoring_case(&marked, joiner, " | ");
    }
    let events: Vec<String> = marked
        .split('|')
        .map(|e| {
            let e = e.trim();
            let e = ZH_JOINERS
                .iter()
                .find_map(|j| e.strip_prefix(j).filter(|rest| !rest.trim().is_empty()))
                .unwrap_or(e);
            e.split_whitespace().collect::<Vec<_>>().join(" ")
        })
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

/// `text` with every match of the ASCII `needle` (any case) replaced by `with`. Matches are
/// found on the text itself, never on a lowercased copy, whose byte offsets can differ
/// (`Ⱥ` is 2 bytes, its lowercase 3).
fn replace_ascii_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    debug_assert!(needle.is_ascii() && !needle.is_empty());
    let (bytes, needle) = (text.as_bytes(), needle.as_bytes());
    let mut out = String::with_capacity(text.len());
    let (mut at, mut i) = (0, 0);
    while i + needle.len() <= bytes.len() {
        // An ASCII byte never sits inside a multi-byte character, so a match starting at
        // `i` starts and ends on character boundaries.
        if bytes[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            out.push_str(&text[at..i]);
            out.push_str(with);
            i += needle.len();
            at = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&text[at..]);
    out
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
        assert_eq!(
            parse_script("开场介绍，然后比赛开始。最后颁奖").unwrap(),
            vec!["开场介绍", "比赛开始", "颁奖"]
        );
        // Lowercasing changes byte lengths (Ⱥ is 2 bytes, ⱥ 3): found by the fuzz run.
        assert_eq!(
            parse_script("开Ⱥ介绍 then 比赛 AFTER THAT 颁奖").unwrap(),
            vec!["开Ⱥ介绍", "比赛", "颁奖"]
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
