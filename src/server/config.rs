//! [`ServeConfig`]: the limits of [`serve`](super::serve).

use std::net::IpAddr;
use std::time::Duration;

use crate::receiver::IpRange;

/// The limits of [`serve`](super::serve). `ServeConfig::new()` (or
/// `default()`) is ready for production; each `with_*` method changes one
/// setting.
///
/// ```
/// use std::time::Duration;
/// use retell_webhooks::receiver::{IpRange, RETELL_SOURCE_IP};
/// use retell_webhooks::server::ServeConfig;
///
/// let config = ServeConfig::new()
///     .with_max_connections(4096)
///     // Retell's address and the reverse proxy in front of this server.
///     .with_exempt_sources([IpRange::from(RETELL_SOURCE_IP), "10.0.0.0/8".parse()?])
///     .with_shutdown_grace(Duration::from_secs(20));
/// assert_eq!(config.max_connections_per_source(), 256);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub(crate) head_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) per_source: Option<usize>,
    pub(crate) exempt: Vec<IpRange>,
    pub(crate) shutdown_grace: Duration,
    pub(crate) accept_error_pause: Duration,
}

/// How long a client may take to send a request head: 5 s.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Open connections at once: 1 024.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// How long in-flight requests may take to finish after shutdown: 10 s.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a failed `accept` (out of file descriptors) pauses accepting: 1 s.
pub const DEFAULT_ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            per_source: None,
            exempt: Vec::new(),
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            accept_error_pause: DEFAULT_ACCEPT_ERROR_PAUSE,
        }
    }
}

impl ServeConfig {
    /// The defaults: 5 s head timeout, 1 024 connections, 64 per source, no
    /// exempt source, 10 s shutdown grace, 1 s pause after a failed `accept`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a client may take to send a request head, from the moment it
    /// connects or got its previous answer (hyper's
    /// `http1::Builder::header_read_timeout`). hyper has one timer for both,
    /// so a kept-alive connection idle this long is closed too: keep it below
    /// the idle timeout of a proxy that reuses connections to this server.
    #[must_use]
    pub fn with_head_timeout(mut self, timeout: Duration) -> Self {
        self.head_timeout = timeout;
        self
    }

    /// At most this many open connections (at least 1). Each is a file
    /// descriptor: the process needs a higher `ulimit -n`. When all are taken,
    /// a new connection sheds an existing one (see [`serve`](super::serve)).
    #[must_use]
    pub fn with_max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// At most this many connections from one source address that is not
    /// exempt (at least 1). Default: a sixteenth of
    /// [`with_max_connections`](Self::with_max_connections), at least 8 (64
    /// of 1 024): whoever wants the whole cap then needs 16 addresses, and a
    /// sender's pool of keep-alive connections still fits.
    #[must_use]
    pub fn with_max_connections_per_source(mut self, max: usize) -> Self {
        self.per_source = Some(max.max(1));
        self
    }

    /// Adds source ranges that have no per-source limit and whose connections
    /// are shed only to admit another exempt connection. Put Retell's address
    /// ([`RETELL_SOURCE_IP`](crate::receiver::RETELL_SOURCE_IP)) here, and
    /// the reverse proxies in front of this server: all their clients share
    /// their address.
    #[must_use]
    pub fn with_exempt_sources<I>(mut self, ranges: I) -> Self
    where
        I: IntoIterator<Item = IpRange>,
    {
        self.exempt.extend(ranges);
        self
    }

    /// After the shutdown signal, how long requests in flight may take to
    /// finish before their connections are dropped.
    #[must_use]
    pub fn with_shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// How long accepting pauses after a failed `accept` other than a
    /// connection reset before it was accepted (out of file descriptors, say):
    /// retrying at once would spin.
    #[must_use]
    pub fn with_accept_error_pause(mut self, pause: Duration) -> Self {
        self.accept_error_pause = pause;
        self
    }

    /// The cap on open connections.
    #[must_use]
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// The per-source limit in force: the one set, else a sixteenth of the
    /// cap, at least 8 (and at most the cap).
    #[must_use]
    pub fn max_connections_per_source(&self) -> usize {
        self.per_source
            .unwrap_or((self.max_connections / 16).max(8))
            .min(self.max_connections)
    }

    /// Whether `source` is in an exempt range.
    pub(crate) fn is_exempt(&self, source: IpAddr) -> bool {
        self.exempt.iter().any(|range| range.contains(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_source_limit_follows_the_cap() {
        assert_eq!(ServeConfig::new().max_connections_per_source(), 64);
        let small = ServeConfig::new().with_max_connections(16);
        assert_eq!(small.max_connections_per_source(), 8);
        let tiny = ServeConfig::new().with_max_connections(4);
        assert_eq!(tiny.max_connections_per_source(), 4);
        let set = small.with_max_connections_per_source(2);
        assert_eq!(set.max_connections_per_source(), 2);
        assert_eq!(
            ServeConfig::new().with_max_connections(0).max_connections(),
            1
        );
    }

    #[test]
    fn exempt_ranges_match_mapped_addresses() {
        let config = ServeConfig::new().with_exempt_sources(["10.0.0.0/8".parse().unwrap()]);
        assert!(config.is_exempt("10.1.2.3".parse().unwrap()));
        assert!(config.is_exempt("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!config.is_exempt("11.1.2.3".parse().unwrap()));
    }
}
