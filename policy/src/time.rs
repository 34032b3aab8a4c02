//! Time arguments: an RFC 3339 time, or a duration meaning that long before now (`7d`).

/// Unix nanoseconds of `value`, `None` when it is neither form.
pub fn parse_time(value: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return t.timestamp_nanos_opt();
    }
    let ago = humantime::parse_duration(value).ok()?;
    let now = chrono::Utc::now().timestamp_nanos_opt()?;
    Some(now.saturating_sub(i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_rfc3339_or_durations_ago() {
        assert_eq!(
            super::parse_time("2026-01-05T00:00:00Z"),
            Some(1_767_571_200_000_000_000)
        );
        let week = super::parse_time("7d").unwrap();
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        assert!((now - week - 7 * 86_400_000_000_000).abs() < 60_000_000_000);
        assert_eq!(super::parse_time("yesterday"), None);
    }
}
