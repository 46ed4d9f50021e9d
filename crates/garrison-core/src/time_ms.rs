//! Timestamps as milliseconds since the Unix epoch: the one time representation stored and
//! hashed, so both storage backends and the audit chain agree on it to the millisecond.

use time::OffsetDateTime;

/// Milliseconds since 1970-01-01T00:00:00Z.
pub type UnixMillis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> UnixMillis {
    let now = OffsetDateTime::now_utc();
    // i128 -> i64 cannot overflow before the year 292 million.
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Formats milliseconds since the epoch as RFC 3339 (UTC), or the raw number if out of range.
pub fn format_ms(ms: UnixMillis) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}
