//! When a failed event is tried again.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::InboxError;
use crate::tokens::Tokens;

/// The delays between attempts of a failing event, with jitter: attempt
/// `n + 1` runs about `delays[n - 1]` after attempt `n` failed; after the last
/// delay's attempt fails, the event is dead.
///
/// The default, `5s, 30s, 2m, 10m, 30m, 1h, 2h, 4h, 8h`, tries 10 times over
/// about 15 hours 43 minutes: long enough to outlast a database or CRM that is
/// down for an afternoon, or a bug fixed the next morning. Each delay is
/// moved by up to ±10 % so that events that failed together do not all come
/// back at the same instant.
///
/// ```
/// # #[cfg(feature = "inbox")] {
/// use retell_webhooks::inbox::RetrySchedule;
/// use std::time::Duration;
///
/// let schedule: RetrySchedule = "5s,1m,1h".parse()?;
/// assert_eq!(schedule.delays(), [Duration::from_secs(5), Duration::from_secs(60), Duration::from_secs(3600)]);
/// assert_eq!(schedule.max_attempts(), 4);
/// assert_eq!(RetrySchedule::default().max_attempts(), 10);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter_percent: u8,
    tokens: std::sync::Arc<Tokens>,
}

impl RetrySchedule {
    /// A schedule with these delays (no delays: the first failure is final)
    /// and ±10 % jitter.
    #[must_use]
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Self {
        Self {
            delays: delays.into_iter().collect(),
            jitter_percent: 10,
            tokens: std::sync::Arc::new(Tokens::new()),
        }
    }

    /// Jitter as a percentage of each delay, at most 50 (0: exact delays).
    #[must_use]
    pub fn with_jitter_percent(mut self, percent: u8) -> Self {
        self.jitter_percent = percent.min(50);
        self
    }

    /// The delays.
    #[must_use]
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// Attempts before an event is dead: the first plus one per delay.
    #[must_use]
    pub fn max_attempts(&self) -> usize {
        self.delays.len() + 1
    }

    /// The jitter percentage.
    #[must_use]
    pub fn jitter_percent(&self) -> u8 {
        self.jitter_percent
    }

    /// When to run again after the `failed`-th failed attempt (1 for the
    /// first), or `None` when that was the last one.
    pub(crate) fn retry_at(&self, failed: u32, now_ms: u64) -> Option<u64> {
        let index = usize::try_from(failed).ok()?.checked_sub(1)?;
        let delay = u64::try_from(self.delays.get(index)?.as_millis()).unwrap_or(u64::MAX);
        let spread = delay / 100 * u64::from(self.jitter_percent);
        let shifted = if spread == 0 {
            delay
        } else {
            // Uniform in [delay - spread, delay + spread].
            let offset = self.tokens.next() % (2 * spread + 1);
            (delay - spread).saturating_add(offset)
        };
        Some(now_ms.saturating_add(shifted))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        Self::new([
            Duration::from_secs(5),
            Duration::from_secs(30),
            minutes(2),
            minutes(10),
            minutes(30),
            minutes(60),
            minutes(120),
            minutes(240),
            minutes(480),
        ])
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrySchedule")
            .field("delays", &self.delays)
            .field("jitter_percent", &self.jitter_percent)
            .finish()
    }
}

impl PartialEq for RetrySchedule {
    fn eq(&self, other: &Self) -> bool {
        self.delays == other.delays && self.jitter_percent == other.jitter_percent
    }
}

impl FromStr for RetrySchedule {
    type Err = InboxError;

    /// Comma-separated delays, each a whole number with a unit: `ms`, `s`,
    /// `m`, `h` or `d` (`5s,30s,2m,1h`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let delays = s
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(parse_duration)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(delays))
    }
}

/// `500ms`, `5s`, `10m`, `2h`, `7d`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, InboxError> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad = || InboxError::new("a duration is a whole number and a unit: ms, s, m, h or d");
    let number: u64 = number.parse().map_err(|_| bad())?;
    let seconds = |per: u64| {
        number
            .checked_mul(per)
            .map(Duration::from_secs)
            .ok_or_else(bad)
    };
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_runs_ten_times_over_about_fifteen_hours() {
        let schedule = RetrySchedule::default();
        let total: Duration = schedule.delays().iter().sum();
        assert_eq!(schedule.max_attempts(), 10);
        assert_eq!(total, Duration::from_secs(15 * 3600 + 42 * 60 + 35));
    }

    #[test]
    fn retries_stay_within_the_jitter_and_stop_after_the_last_delay() {
        let schedule = RetrySchedule::new([Duration::from_secs(10), Duration::from_secs(100)]);
        for _ in 0..1000 {
            let first = schedule.retry_at(1, 1_000).unwrap();
            assert!((1_000 + 9_000..=1_000 + 11_000).contains(&first), "{first}");
            let second = schedule.retry_at(2, 0).unwrap();
            assert!((90_000..=110_000).contains(&second), "{second}");
        }
        assert_eq!(schedule.retry_at(3, 0), None);
        assert_eq!(schedule.retry_at(0, 0), None);
        let exact = schedule.with_jitter_percent(0);
        assert_eq!(exact.retry_at(1, 5), Some(10_005));
    }

    #[test]
    fn jitter_spreads_retries() {
        let schedule = RetrySchedule::new([Duration::from_secs(60)]);
        let seen: std::collections::HashSet<u64> =
            (0..100).filter_map(|_| schedule.retry_at(1, 0)).collect();
        assert!(seen.len() > 50);
    }

    #[test]
    fn schedules_parse_with_units() {
        let schedule: RetrySchedule = " 500ms, 5s,2m ,1h,1d".parse().unwrap();
        assert_eq!(
            schedule.delays(),
            [
                Duration::from_millis(500),
                Duration::from_secs(5),
                Duration::from_secs(120),
                Duration::from_secs(3600),
                Duration::from_secs(86_400)
            ]
        );
        for bad in ["5", "s", "5x", "-5s", "1.5s", "99999999999999999999d"] {
            assert!(bad.parse::<RetrySchedule>().is_err(), "{bad}");
        }
        assert_eq!("".parse::<RetrySchedule>().unwrap().max_attempts(), 1);
    }
}
