//! Times as people and models write them: seconds (`12`, `12.5`, `"12.5s"`) or clocks
//! (`"1:02"`, `"01:02.5"`, `"1:02:03.25"`), read into milliseconds.

/// Parses a time as a model writes it: seconds (`12`, `12.5`, `"12.5s"`), or a clock
/// (`"1:02"`, `"01:02.5"`, `"1:02:03.25"`). Returns milliseconds.
pub fn parse_time(value: &serde_json::Value) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => {
            let s = n.as_f64().ok_or("not a number")?;
            seconds_to_ms(s)
        }
        serde_json::Value::String(text) => parse_time_str(text),
        other => Err(format!("{other} is not a time")),
    }
}

pub fn parse_time_str(text: &str) -> Result<i64, String> {
    let t = text.trim().trim_end_matches(['s', 'S']).trim();
    if t.is_empty() {
        return Err("empty time".into());
    }
    if !t.contains(':') {
        let s: f64 = t.parse().map_err(|_| format!("{text:?} is not a time"))?;
        return seconds_to_ms(s);
    }
    let parts: Vec<&str> = t.split(':').collect();
    if parts.len() > 3 {
        return Err(format!("{text:?} has too many ':'"));
    }
    let mut seconds = 0.0;
    for (i, p) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let v: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a time"))?;
        if v < 0.0 || (!last && v.fract() != 0.0) || (i > 0 && v >= 60.0) {
            return Err(format!("{text:?} is not a valid clock time"));
        }
        seconds = seconds * 60.0 + v;
    }
    seconds_to_ms(seconds)
}

/// A lifetime as people write one on a command line: `30d`, `12h`, `90m`, `45s` or bare
/// seconds (`3600`). Returns whole seconds, at least one.
pub fn parse_lifetime(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a lifetime such as 30d, 12h, 90m or 3600"))?;
    let scale = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(format!(
                "{text:?}: unit {other:?} is not s, m, h, d or w (e.g. 30d)"
            ))
        }
    };
    match n.checked_mul(scale) {
        Some(s) if s > 0 && s <= 100 * 365 * 86_400 => Ok(s),
        _ => Err(format!("{text:?} must be between 1 s and 100 years")),
    }
}

fn seconds_to_ms(s: f64) -> Result<i64, String> {
    if !s.is_finite() {
        return Err("time is not finite".into());
    }
    if s < 0.0 {
        return Err(format!("time {s} s is negative"));
    }
    Ok((s * 1000.0).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_lifetime("30d"), Ok(30 * 86_400));
        assert_eq!(parse_lifetime("3600"), Ok(3600));
        assert_eq!(parse_lifetime(" 90m "), Ok(5400));
        assert!(parse_lifetime("0").is_err());
        assert!(parse_lifetime("3y").unwrap_err().contains("unit"));
        assert!(parse_lifetime("d").is_err());
        assert!(parse_lifetime("99999999999999w").is_err());
    }

    #[test]
    fn times_parse_as_seconds_or_clocks() {
        assert_eq!(parse_time(&json!(12)), Ok(12_000));
        assert_eq!(parse_time(&json!(12.25)), Ok(12_250));
        assert_eq!(parse_time(&json!("12.5s")), Ok(12_500));
        assert_eq!(parse_time(&json!("1:02")), Ok(62_000));
        assert_eq!(parse_time(&json!("01:02.5")), Ok(62_500));
        assert_eq!(parse_time(&json!("1:02:03.25")), Ok(3_723_250));
        for bad in [
            json!(-1),
            json!("1:75"),
            json!("x"),
            json!("1:2:3:4"),
            json!(null),
            json!("1.5:10"),
        ] {
            assert!(parse_time(&bad).is_err(), "{bad}");
        }
    }
}
