//! A directory of its own under the system's temp dir, removed on drop, with
//! the inbox file the tests keep in it. Include it with
//! `#[path = "common/temp_dir.rs"] mod temp_dir;`.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct TempDir(pub PathBuf);

impl TempDir {
    /// `retell-<name>-<pid>-<n>`: unique across tests and processes.
    pub fn new(name: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "retell-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// The SQLite inbox file in it.
    pub fn file(&self) -> PathBuf {
        self.0.join("inbox.sqlite3")
    }

    /// The `--inbox` argument for that file.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite:{}", self.file().display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
