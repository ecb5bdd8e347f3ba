//! The `retell-webhooks` binary as a child process: one command, or a
//! `listen` that answers deliveries. Include it with
//! `#[path = "common/cli_binary.rs"] mod cli_binary;` in a test built with the
//! `cli` feature.
#![allow(dead_code)]

use std::process::{Command, Output, Stdio};

/// The binary with a clean environment for the key variable.
pub fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retell-webhooks"));
    cmd.env_remove("RETELL_API_KEY");
    cmd
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// A `listen` child process, killed when dropped.
pub struct Listener {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    /// Standard error, line by line, read by a thread so the child never
    /// blocks on a full pipe.
    errors: std::sync::mpsc::Receiver<String>,
    /// The lines printed up to and including the ready line.
    pub banner: Vec<String>,
}

impl Listener {
    /// Starts `listen` with `args` on any free port and reads its standard
    /// output up to the ready line; returns the events URL.
    pub fn start(args: &[&str]) -> (Self, String) {
        use std::io::BufRead;
        let mut child = cli()
            .args(["listen", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, errors) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // Still shown with the test's output, as when inherited.
                eprintln!("{line}");
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let mut listener = Self {
            child,
            lines: std::io::BufReader::new(stdout).lines(),
            errors,
            banner: Vec::new(),
        };
        loop {
            let line = listener.next_line();
            if let Some(rest) = line.strip_prefix("listening on ") {
                let url = rest.split(' ').next().unwrap().to_owned();
                assert!(url.ends_with("/webhook"), "{line}");
                listener.banner.push(line);
                return (listener, url);
            }
            listener.banner.push(line);
            assert!(
                listener.banner.len() < 12,
                "no ready line: {:?}",
                listener.banner
            );
        }
    }

    pub fn next_line(&mut self) -> String {
        self.lines
            .next()
            .expect("listen closed its output")
            .unwrap()
    }
}

impl Listener {
    /// The next line of standard error, or `None` if none comes within
    /// `wait`.
    pub fn next_error_line(&mut self, wait: std::time::Duration) -> Option<String> {
        self.errors.recv_timeout(wait).ok()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends the built-in `call_ended` sample (always the same event) to `url`.
pub fn send_call_ended(url: &str) {
    let out = cli()
        .args(["send", "--url", url, "--event", "call_ended"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("204"), "{}", stdout(&out));
}
