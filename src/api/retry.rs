//! When a failed request is tried again, and after how long: the conventions
//! of Retell's own SDKs (2 retries, `min(0.5 × 2ⁿ, 8)` s less up to 25 %
//! jitter, `retry-after-ms` / `retry-after` when under a minute).

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::tokens::Tokens;

/// Whether an answer with `status` is worth another attempt: `x-should-retry`
/// decides when present, else 408, 409 (lock timeouts), 429 and every 5xx.
pub(super) fn retryable(status: StatusCode, headers: &HeaderMap) -> bool {
    match header_text(headers, "x-should-retry") {
        Some("true") => return true,
        Some("false") => return false,
        _ => {}
    }
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// The pause before retry number `retry` (0 for the first): what the server
/// asked for when it is under a minute, else the back-off with jitter.
pub(super) fn delay(retry: u32, headers: Option<&HeaderMap>, tokens: &Tokens) -> Duration {
    if let Some(asked) = headers.and_then(asked_delay) {
        return asked;
    }
    backoff(retry, tokens.next())
}

/// `min(0.5 × 2^retry, 8)` seconds, less up to 25 % picked from `random`.
pub(super) fn backoff(retry: u32, random: u64) -> Duration {
    let base_ms = 500u64.saturating_mul(1u64 << retry.min(16)).min(8_000);
    // Up to 25 %: 0..=base/4 taken off, so retries of many clients spread.
    let spread = base_ms / 4;
    let off = random.checked_rem(spread.saturating_add(1)).unwrap_or(0);
    Duration::from_millis(base_ms - off)
}

/// `retry-after-ms` (milliseconds) or `retry-after` (seconds; an HTTP date
/// is not read), when it is a number in `[0, 60 s)`.
fn asked_delay(headers: &HeaderMap) -> Option<Duration> {
    let asked_ms = header_text(headers, "retry-after-ms")
        .and_then(|ms| ms.trim().parse::<f64>().ok())
        .or_else(|| {
            header_text(headers, "retry-after")
                .and_then(|s| s.trim().parse::<f64>().ok())
                .map(|s| s * 1000.0)
        })?;
    (asked_ms.is_finite() && (0.0..60_000.0).contains(&asked_ms))
        .then(|| Duration::from_secs_f64(asked_ms / 1000.0))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn statuses_retried_are_the_sdks() {
        let none = HeaderMap::new();
        for status in [408, 409, 429, 500, 502, 503, 504, 599] {
            assert!(retryable(StatusCode::from_u16(status).unwrap(), &none));
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!retryable(StatusCode::from_u16(status).unwrap(), &none));
        }
        let yes = headers(&[("x-should-retry", "true")]);
        let no = headers(&[("x-should-retry", "false")]);
        assert!(retryable(StatusCode::BAD_REQUEST, &yes));
        assert!(!retryable(StatusCode::SERVICE_UNAVAILABLE, &no));
    }

    #[test]
    fn backoff_doubles_to_eight_seconds_less_a_quarter_at_most() {
        for (retry, base) in [
            (0, 500),
            (1, 1000),
            (2, 2000),
            (3, 4000),
            (4, 8000),
            (9, 8000),
        ] {
            let top = backoff(retry, 0);
            assert_eq!(top, Duration::from_millis(base));
            for random in [1, 77, u64::MAX] {
                let d = backoff(retry, random);
                assert!(d <= top && d >= top * 3 / 4, "{retry} {random} {d:?}");
            }
        }
    }

    #[test]
    fn the_servers_delay_is_honoured_under_a_minute() {
        let tokens = Tokens::new();
        let ms = headers(&[("retry-after-ms", "250"), ("retry-after", "9")]);
        assert_eq!(delay(0, Some(&ms), &tokens), Duration::from_millis(250));
        let s = headers(&[("retry-after", "1.5")]);
        assert_eq!(delay(0, Some(&s), &tokens), Duration::from_millis(1500));
        // Too long, negative or a date: the back-off instead.
        for value in ["120", "-1", "Wed, 21 Oct 2026 07:28:00 GMT"] {
            let map = headers(&[("retry-after", value)]);
            assert!(delay(0, Some(&map), &tokens) <= Duration::from_millis(500));
        }
    }
}
