//! Wall-clock access in one place, so everything else takes `now` as a value.

/// Current time as unix seconds.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Format unix seconds as RFC 3339 UTC (`2026-11-25T01:02:03Z`).
pub fn rfc3339(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => t
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| secs.to_string()),
        Err(_) => secs.to_string(),
    }
}

/// Format unix seconds as a date (`2026-11-25`).
pub fn date(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => secs.to_string(),
    }
}

/// Format unix seconds as a UTC time of day (`10:02:03Z`), for "since" in health lines.
pub fn time_of_day(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:02}:{:02}:{:02}Z", t.hour(), t.minute(), t.second()),
        Err(_) => secs.to_string(),
    }
}

/// A short age: `45s`, `12m`, `3h`, `2d`.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::date(1_795_000_000), "2026-11-18");
        assert_eq!(super::time_of_day(1_795_000_000), "11:06:40Z");
        assert_eq!(super::age(59), "59s");
        assert_eq!(super::age(3600 * 5), "5h");
    }
}
