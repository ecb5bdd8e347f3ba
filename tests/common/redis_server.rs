//! A real `redis-server` as a child process, on a Unix socket in a fresh
//! temporary directory (`--port 0`: no TCP), without persistence. Killed and
//! its directory removed on drop. Include it with
//! `#[path = "common/redis_server.rs"] mod redis_server;`; check
//! [`installed`] before starting one.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a starting server may take to accept connections.
const START_BOUND: Duration = Duration::from_secs(10);

pub struct RedisServer {
    child: Option<Child>,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server. Panics when `redis-server` is not installed: a test
    /// that needs one checks [`installed`] first.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with more `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> Self {
        assert!(installed(), "{}", missing());
        let mut server = Self {
            child: None,
            dir: fresh_dir(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        server.spawn();
        server
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// `redis+unix://<socket>`.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The server's process id while it runs (to stop it with SIGSTOP).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL): every key is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a new server on the same socket (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn spawn(&mut self) {
        let socket = self.socket();
        let _ = std::fs::remove_file(&socket);
        let log = self.dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command.spawn().expect("redis-server did not start");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "redis-server exited with {status}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            assert!(
                started.elapsed() < START_BOUND,
                "redis-server did not listen on {} within {START_BOUND:?}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child = Some(child);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `redis-server` runs (`redis-server --version`).
pub fn installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a missing `redis-server` is a failure rather than a reason to
/// ignore the tests that need one: when `CI` is `true`.
pub fn required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// What to say when `redis-server` is not installed.
pub fn missing() -> String {
    let ci = if required() { ", and CI=true" } else { "" };
    format!("redis-server is not on the PATH{ci}: install it (e.g. `apt-get install redis-server`)")
}

/// A new directory under the system's temporary directory; short, since a
/// Unix socket path has at most 107 bytes.
fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let base = Path::new("/tmp");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!(
        "rw-redis-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("cannot create the server's directory");
    dir
}
