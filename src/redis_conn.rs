//! The Redis plumbing shared by `RedisDedupe` and `RedisInbox`: connecting,
//! naming the target without credentials, and bounding each call.

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, ConnectionAddr, ConnectionInfo, RedisError};

/// Connects a [`ConnectionManager`] to `url`; each connection attempt is
/// bounded by `connect_timeout`. Returns it with the target as
/// [`describe`] shows it. The error message never repeats the URL.
pub(crate) async fn connect(
    url: &str,
    connect_timeout: Duration,
) -> Result<(ConnectionManager, String), String> {
    let client = Client::open(url).map_err(|e| format!("redis: bad URL: {e}"))?;
    let target = describe(client.get_connection_info());
    #[cfg(feature = "redis-tls")]
    if matches!(
        client.get_connection_info().addr(),
        ConnectionAddr::TcpTls { .. }
    ) {
        // redis builds its rustls configuration from the process
        // default provider, and panics without one.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        // Each call is bounded by the store's command timeout instead.
        .set_response_timeout(None)
        // Back within a second of Redis coming back.
        .set_max_delay(Duration::from_secs(1));
    let conn = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| format!("redis: cannot connect to {target}: {e}"))?;
    Ok((conn, target))
}

/// Where a client connects, without user name or password.
pub(crate) fn describe(info: &ConnectionInfo) -> String {
    let db = info.redis_settings().db();
    match info.addr() {
        ConnectionAddr::Tcp(host, port) => format!("redis://{host}:{port}/{db}"),
        ConnectionAddr::TcpTls { host, port, .. } => format!("rediss://{host}:{port}/{db}"),
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
        other => format!("{other}/{db}"),
    }
}

/// A Redis call that failed or did not answer in time.
#[derive(Debug)]
pub(crate) struct CallError {
    what: &'static str,
    failure: Failure,
}

#[derive(Debug)]
enum Failure {
    Redis(RedisError),
    Elapsed(Duration),
}

impl CallError {
    /// The server's or the client's error, unless the call timed out.
    pub(crate) fn redis(&self) -> Option<&RedisError> {
        match &self.failure {
            Failure::Redis(error) => Some(error),
            Failure::Elapsed(_) => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            Failure::Redis(error) => write!(f, "redis {}: {error}", self.what),
            Failure::Elapsed(timeout) => {
                write!(f, "redis {}: no answer within {timeout:?}", self.what)
            }
        }
    }
}

/// Runs one Redis call within `timeout`: a Redis error and a timeout are
/// both a [`CallError`] named `what`.
pub(crate) async fn bounded<T>(
    what: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(CallError {
            what,
            failure: Failure::Redis(error),
        }),
        Err(_elapsed) => Err(CallError {
            what,
            failure: Failure::Elapsed(timeout),
        }),
    }
}

/// Milliseconds for `PX` and lease arithmetic: at least 1 (`PX` refuses 0).
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_never_show_credentials() {
        for (url, shown) in [
            ("redis://user:hunter2@cache:6380/3", "redis://cache:6380/3"),
            ("redis://:hunter2@127.0.0.1", "redis://127.0.0.1:6379/0"),
            (
                "redis+unix:///run/redis.sock?db=2&pass=hunter2",
                "redis+unix:///run/redis.sock?db=2",
            ),
        ] {
            let client = Client::open(url).unwrap();
            let target = describe(client.get_connection_info());
            assert_eq!(target, shown);
            assert!(!target.contains("hunter2"));
        }
    }

    #[test]
    fn lease_and_ttl_are_at_least_a_millisecond() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(10)), 10_000);
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn call_errors_name_the_call() {
        let error = CallError {
            what: "insert",
            failure: Failure::Elapsed(Duration::from_millis(300)),
        };
        assert_eq!(error.to_string(), "redis insert: no answer within 300ms");
        assert!(error.redis().is_none());
    }
}
