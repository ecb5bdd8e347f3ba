//! The `retell-webhooks` binary, run as a user would.
#![cfg(feature = "cli")]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const KEY: &str = "test-api-key";
const SIG1: &str =
    "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";
const B1: &[u8] = br#"{"event":"call_ended"}"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// The binary with a clean environment for the key variable.
fn cli() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retell-webhooks"));
    cmd.env_remove("RETELL_API_KEY");
    cmd
}

/// Runs `cmd` with `stdin` as its standard input.
fn run_with_stdin(mut cmd: Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The binary may exit before reading (usage errors); a broken pipe is fine.
    if let Err(err) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn assert_no_key(out: &Output, key: &str) {
    assert!(!stdout(out).contains(key), "stdout shows the key");
    assert!(!stderr(out).contains(key), "stderr shows the key");
}

const V2_KEY: &str = "key_9f3c2e1d7a8b4c6e0f5a2b3c";
const V2_HEADER: &str =
    "v=1735689600000,d=f5d51b3b98271c38e013bb44fe1fb2ac2e006603b6fe50b602c381c6140bd139";

#[test]
fn sign_fixture_file_matches_vector() {
    let out = cli()
        .args(["sign", "--key", V2_KEY, "--timestamp", "1735689600000"])
        .arg(fixture("signature-vector-2-body.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{V2_HEADER}\n"));
    assert_no_key(&out, V2_KEY);

    let out = cli()
        .args([
            "sign",
            "--key",
            V2_KEY,
            "--timestamp",
            "1785423787420",
            fixture("signature-vector-4-body.json").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim_end(),
        "v=1785423787420,d=c8f5a3a9d2fd65cf3d9cf0df76e65ec7e37f518e74ad0027ef0d535804432ec5"
    );
}

#[test]
fn sign_reads_stdin() {
    let mut cmd = cli();
    cmd.args(["sign", "--key", KEY, "--timestamp", "1700000000000"]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{SIG1}\n"));

    // An empty body is valid input.
    let mut cmd = cli();
    cmd.args(["sign", "--key", KEY, "--timestamp", "1700000000000", "-"]);
    let out = run_with_stdin(cmd, b"");
    assert_eq!(
        stdout(&out).trim_end(),
        "v=1700000000000,d=3c2757e9ff3f06dc2b4957bb8f8018c615ab2e0c6f522e1de8537bf316688224"
    );
}

#[test]
fn sign_defaults_to_now() {
    let out = run_with_stdin(
        {
            let mut cmd = cli();
            cmd.args(["sign", "--key", KEY]);
            cmd
        },
        B1,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let header = stdout(&out);
    let ts: u64 = header
        .trim_end()
        .strip_prefix("v=")
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .parse()
        .unwrap();
    // Some time after 2020-01-01, in milliseconds.
    assert!(ts > 1_577_836_800_000, "{header}");
}

#[test]
fn verify_ok() {
    let out = cli()
        .args([
            "verify",
            "--key",
            V2_KEY,
            "--signature",
            V2_HEADER,
            "--now",
            "1735689600000",
        ])
        .arg(fixture("signature-vector-2-body.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");
    assert_no_key(&out, V2_KEY);
}

#[test]
fn verify_mismatch() {
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        "wrong-api-key",
        "--signature",
        SIG1,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("does not match"), "{err}");
    assert!(err.contains("webhook badge"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_no_key(&out, "wrong-api-key");
    // The digest is not repeated back.
    assert!(!err.contains(&SIG1[18..]), "{err}");

    // A body with a trailing newline (as `echo` writes it) fails the same way.
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SIG1,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, b"{\"event\":\"call_ended\"}\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("trailing newline"));
}

#[test]
fn verify_stale_tells_genuine_from_wrong() {
    // Right key and body, 10 minutes later: stale but genuine.
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SIG1,
        "--now",
        "1700000600000",
    ]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("in the past"), "{err}");
    assert!(err.contains("digest matches"), "{err}");
    assert!(err.contains("--now 1700000000000"), "{err}");

    // Wrong key, in the future: both problems are reported.
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        "wrong-api-key",
        "--signature",
        SIG1,
        "--now",
        "1699999000000",
    ]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("in the future"), "{err}");
    assert!(
        err.contains("does not match this body and key either"),
        "{err}"
    );

    // A wider window accepts it; a zero window needs the exact time.
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SIG1,
        "--now",
        "1700000600000",
        "--tolerance-ms",
        "600000",
    ]);
    assert_eq!(run_with_stdin(cmd, B1).status.code(), Some(0));
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SIG1,
        "--now",
        "1700000000001",
        "--tolerance-ms",
        "0",
    ]);
    assert_eq!(run_with_stdin(cmd, B1).status.code(), Some(1));
}

#[test]
fn verify_malformed_header() {
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        "v=01700000000000,d=00",
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("leading zero"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn key_from_environment() {
    let mut cmd = cli();
    cmd.env("RETELL_API_KEY", KEY)
        .args(["verify", "--signature", SIG1, "--now", "1700000000000"]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");

    let mut cmd = cli();
    cmd.env("RETELL_API_KEY", KEY)
        .args(["sign", "--timestamp", "1700000000000"]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(stdout(&out), format!("{SIG1}\n"));

    // `--help` names the variable but never shows its value.
    let out = cli()
        .env("RETELL_API_KEY", "key_from_env_secret")
        .args(["verify", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("RETELL_API_KEY"));
    assert_no_key(&out, "key_from_env_secret");
}

#[test]
fn bad_key_and_usage_errors_exit_2() {
    // A key with a trailing newline (from a file or `.env`) is refused, unprinted.
    let mut cmd = cli();
    cmd.env("RETELL_API_KEY", "key_secret_value\n").args([
        "verify",
        "--signature",
        SIG1,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, B1);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("whitespace"));
    assert_no_key(&out, "key_secret_value");

    // Missing key.
    let out = cli()
        .args(["verify", "--signature", SIG1])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--key"));

    // Not a number.
    let out = cli()
        .args(["sign", "--key", KEY, "--timestamp", "soon"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_no_key(&out, KEY);

    // Unreadable file.
    let out = cli()
        .args(["sign", "--key", KEY, "--timestamp", "1"])
        .arg(fixture("does-not-exist.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read"));

    // No subcommand.
    let out = cli().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
