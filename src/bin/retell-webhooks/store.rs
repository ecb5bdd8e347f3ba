//! `--inbox URL`: opening the durable inbox a listener stores events in.

use std::process::ExitCode;
use std::sync::Arc;

use retell_webhooks::inbox::{Inbox, RedisInbox, SqliteInbox};

use crate::common;

/// What `--inbox` takes, for messages.
pub const INBOX_URLS: &str =
    "sqlite:PATH (a file, created if absent), redis://host:6379, redis+unix:///path/redis.sock";

/// Opens the store at `url`: `sqlite:PATH`, `redis://…` or `redis+unix://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Inbox>, ExitCode> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(usage(
                "sqlite: needs a file path, as in sqlite:inbox.sqlite3",
            ));
        }
        return SqliteInbox::open(path)
            .map(|store| Arc::new(store) as Arc<dyn Inbox>)
            .map_err(|err| {
                common::fail(
                    common::EXIT_USAGE,
                    format_args!("--inbox: {err}"),
                    Some("is the directory there and writable?"),
                )
            });
    }
    if url.starts_with("redis") {
        return RedisInbox::connect(url)
            .await
            .map(|store| Arc::new(store) as Arc<dyn Inbox>)
            .map_err(|err| {
                common::fail(
                    common::EXIT_USAGE,
                    format_args!("--inbox: {err}"),
                    Some("is redis-server running at that address?"),
                )
            });
    }
    Err(usage(&format!("--inbox takes {INBOX_URLS}")))
}

fn usage(message: &str) -> ExitCode {
    common::fail(common::EXIT_USAGE, message, None)
}
