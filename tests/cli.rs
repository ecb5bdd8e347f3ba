//! The `retell-webhooks` binary, run as a user would.
#![cfg(feature = "cli")]

#[path = "common/cli_binary.rs"]
mod cli_binary;
mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use cli_binary::{Listener, cli, send_call_ended, stderr, stdout};

const KEY: &str = "test-api-key";
const SDK_HEADER: &str =
    "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e";
const SDK_BODY: &[u8] = br#"{"event":"call_ended"}"#;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
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
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{SDK_HEADER}\n"));

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
        SDK_BODY,
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
        SDK_HEADER,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("does not match"), "{err}");
    assert!(err.contains("webhook badge"), "{err}");
    assert!(err.contains("hint:"), "{err}");
    assert_no_key(&out, "wrong-api-key");
    // The digest is not repeated back.
    assert!(!err.contains(&SDK_HEADER[18..]), "{err}");

    // A body with a trailing newline (as `echo` writes it) fails the same way.
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SDK_HEADER,
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
        SDK_HEADER,
        "--now",
        "1700000600000",
    ]);
    let out = run_with_stdin(cmd, SDK_BODY);
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
        SDK_HEADER,
        "--now",
        "1699999000000",
    ]);
    let out = run_with_stdin(cmd, SDK_BODY);
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
        SDK_HEADER,
        "--now",
        "1700000600000",
        "--tolerance-ms",
        "600000",
    ]);
    assert_eq!(run_with_stdin(cmd, SDK_BODY).status.code(), Some(0));
    let mut cmd = cli();
    cmd.args([
        "verify",
        "--key",
        KEY,
        "--signature",
        SDK_HEADER,
        "--now",
        "1700000000001",
        "--tolerance-ms",
        "0",
    ]);
    assert_eq!(run_with_stdin(cmd, SDK_BODY).status.code(), Some(1));
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
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("leading zero"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn key_from_environment() {
    let mut cmd = cli();
    cmd.env("RETELL_API_KEY", KEY).args([
        "verify",
        "--signature",
        SDK_HEADER,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ok\n");

    let mut cmd = cli();
    cmd.env("RETELL_API_KEY", KEY)
        .args(["sign", "--timestamp", "1700000000000"]);
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(stdout(&out), format!("{SDK_HEADER}\n"));

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
        SDK_HEADER,
        "--now",
        "1700000000000",
    ]);
    let out = run_with_stdin(cmd, SDK_BODY);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("whitespace"));
    assert_no_key(&out, "key_secret_value");

    // Missing key.
    let out = cli()
        .args(["verify", "--signature", SDK_HEADER])
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

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

/// Runs `parse --kind KIND` on `body` (standard input); asserts success and
/// that the printed compact JSON is the input, value for value.
fn assert_parses(kind: &str, body: &[u8]) {
    let mut cmd = cli();
    cmd.args(["parse", "--kind", kind]);
    let out = run_with_stdin(cmd, body);
    assert_eq!(out.status.code(), Some(0), "{kind}: {}", stderr(&out));
    let printed = stdout(&out);
    assert_eq!(printed.lines().count(), 1, "{kind}: one compact line");
    common::assert_same_json(&json(printed.as_bytes()), &json(body), kind);
}

#[test]
fn parse_every_kind_on_fixtures() {
    let read = |name: &str| std::fs::read(fixture(name)).unwrap();
    for name in [
        "call_started.json",
        "call_ended_phone.json",
        "call_analyzed_maximal.json",
        "transfer_bridged.json",
        "chat_analyzed.json",
        "call_inbound_request.json",
    ] {
        assert_parses("event", &read(name));
    }
    let event = json(&read("call_ended_web.json"));
    assert_parses("call", event["call"].to_string().as_bytes());
    let event = json(&read("chat_ended.json"));
    assert_parses("chat", event["chat"].to_string().as_bytes());
    assert_parses("inbound", &read("call_inbound_request.json"));
    assert_parses("inbound", &read("chat_inbound_request.json"));
    assert_parses("function", &read("custom_function_request.json"));
    assert_parses("function", &read("custom_function_request_args_only.json"));

    // FILE instead of standard input; `event` is the default kind.
    let out = cli()
        .arg("parse")
        .arg(fixture("call_ended_phone.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    common::assert_same_json(
        &json(&out.stdout),
        &json(&read("call_ended_phone.json")),
        "FILE",
    );
}

#[test]
fn parse_failure_names_path_and_ids_but_no_value() {
    // A duplicate key inside `metadata`: the body is refused, the error names
    // the object holding it, the event and the call id, never a value.
    let body = std::fs::read_to_string(fixture("call_ended_phone.json")).unwrap();
    let bad = body.replacen(
        "\"crm_contact_id\": \"cnt_20931\",",
        "\"crm_contact_id\": \"cnt_20931\", \"crm_contact_id\": \"cnt-secret\",",
        1,
    );
    assert_ne!(bad, body);
    let mut cmd = cli();
    cmd.arg("parse");
    let out = run_with_stdin(cmd, bad.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("at: call.metadata\n"), "{err}");
    assert!(err.contains("duplicate field `crm_contact_id`"), "{err}");
    assert!(err.contains("event: call_ended"), "{err}");
    assert!(
        err.contains("call_id: call_8e2f4a6c1b9d3e7f5a0c2b4d6e"),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
    assert!(!err.contains("cnt_20931"), "{err}");
    assert!(!err.contains("+1"), "no phone number: {err}");

    // A known event whose call has no `call_id`: refused, with the event.
    let bad = body.replacen("\"call_id\": \"call_8e2f4a6c1b9d3e7f5a0c2b4d6e\",", "", 1);
    assert_ne!(bad, body);
    let mut cmd = cli();
    cmd.arg("parse");
    let out = run_with_stdin(cmd, bad.as_bytes());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(err.contains("at: call\n"), "{err}");
    assert!(err.contains("missing field `call_id`"), "{err}");
    assert!(err.contains("event: call_ended"), "{err}");
    assert!(!err.contains("call_id: "), "{err}");
    assert!(!err.contains("+1"), "no phone number: {err}");
    assert!(!err.contains("Harbor"), "no transcript or name: {err}");

    // A bare call: the path is relative to the object.
    let mut cmd = cli();
    cmd.args(["parse", "--kind", "call"]);
    let out = run_with_stdin(
        cmd,
        br#"{"call_id":"call_1","transcript_object":[{"role":"user","content":"long","content":"longer"}]}"#,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("at: transcript_object[0]\n"), "{err}");
    assert!(err.contains("duplicate field `content`"), "{err}");
    assert!(err.contains("call_id: call_1"), "{err}");
    assert!(!err.contains("long"), "{err}");

    // A field of the wrong type is no failure: the call is written back as is.
    let drifted = br#"{"call_id":"call_1","agent_version":"v7-secret","duration_ms":"long"}"#;
    let mut cmd = cli();
    cmd.args(["parse", "--kind", "call"]);
    let out = run_with_stdin(cmd, drifted);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json(&out.stdout), json(drifted));

    // Another event where an inbound request is expected.
    let out = cli()
        .args(["parse", "--kind", "inbound"])
        .arg(fixture("chat_ended.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("`chat_ended`"), "{}", stderr(&out));

    // Not JSON at all.
    let mut cmd = cli();
    cmd.args(["parse", "--kind", "function"]);
    let out = run_with_stdin(cmd, b"name=check");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------
// send, listen, demo
// ---------------------------------------------------------------------------

const SAMPLE_NAMES: &[&str] = &[
    "call_started",
    "call_ended",
    "call_analyzed",
    "transcript_updated",
    "transfer_started",
    "transfer_bridged",
    "transfer_cancelled",
    "transfer_ended",
    "chat_started",
    "chat_ended",
    "chat_analyzed",
    "call_inbound",
    "chat_inbound",
    "custom_function",
];

#[test]
fn send_event_list_prints_every_sample() {
    let out = cli().args(["send", "--event", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), SAMPLE_NAMES);

    // An unknown sample is a usage error that points at the list.
    let out = cli()
        .args([
            "send",
            "--url",
            "http://127.0.0.1:9/",
            "--event",
            "call_exploded",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // https is refused with a pointer to `sign` + curl.
    let out = cli()
        .args([
            "send",
            "--url",
            "https://example.com/hook",
            "--event",
            "call_ended",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("curl"), "{}", stderr(&out));
}

#[test]
fn listen_and_send_end_to_end() {
    let (mut listener, url) = Listener::start(&[]);

    let out = cli()
        .args(["send", "--url", &url, "--event", "call_ended"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("204"), "{}", stdout(&out));
    let line = listener.next_line();
    assert!(
        line.contains("call_ended call_8e2f4a6c1b9d3e7f5a0c2b4d6e 204"),
        "{line}"
    );

    // A file's raw bytes, signed with another key: refused, exit 1.
    let out = cli()
        .args(["send", "--url", &url, "--key", "key_other"])
        .arg(fixture("chat_started.json"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with("401"), "{}", stdout(&out));
    assert_no_key(&out, "key_other");
    let line = listener.next_line();
    assert!(line.ends_with("- - 401 signature mismatch"), "{line}");

    // The inbound webhook is answered with an empty inbound response.
    let out = cli()
        .args(["send", "--url", &url, "--event", "call_inbound"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "200 OK\n{\"call_inbound\":{}}\n");
    assert!(listener.next_line().contains("call_inbound - 200"));
}

#[test]
fn listen_warns_when_signature_mismatches_keep_coming() {
    let (mut listener, url) = Listener::start(&[]);
    let threshold = retell_webhooks::receiver::MISMATCH_ALERT_THRESHOLD;
    for _ in 0..threshold {
        let out = cli()
            .args(["send", "--url", &url, "--event", "call_ended"])
            .args(["--key", "key_not_the_listeners"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let line = listener.next_line();
        assert!(line.ends_with("- - 401 signature mismatch"), "{line}");
    }
    let warning = listener
        .next_error_line(std::time::Duration::from_secs(10))
        .expect("no warning after the mismatches");
    assert!(warning.starts_with("warning: "), "{warning}");
    assert!(
        warning.contains(&format!("{threshold} requests in a row")),
        "{warning}"
    );
    assert!(warning.contains("signature check"), "{warning}");
    assert!(warning.contains("webhook badge"), "{warning}");
    assert!(!warning.contains("key_not_the_listeners"), "{warning}");

    // Rate limited: the next mismatch alone raises no second warning.
    let out = cli()
        .args(["send", "--url", &url, "--event", "call_ended"])
        .args(["--key", "key_not_the_listeners"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(listener.next_line().ends_with("401 signature mismatch"));
    assert_eq!(
        listener.next_error_line(std::time::Duration::from_millis(300)),
        None
    );
}

#[test]
fn listen_with_a_key_never_prints_it() {
    let (mut listener, url) = Listener::start(&["--key", "key_listen_secret"]);
    let out = cli()
        .env("RETELL_API_KEY", "key_listen_secret")
        .args(["send", "--url", &url, "--event", "chat_analyzed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_key(&out, "key_listen_secret");
    let line = listener.next_line();
    assert!(line.contains("chat_analyzed chat_"), "{line}");
    assert!(!line.contains("key_listen_secret"));
}

#[test]
fn demo_sends_every_sample_and_a_forged_request() {
    let out = cli().arg("demo").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    for name in SAMPLE_NAMES {
        let received = text
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(name))
            .count();
        assert_eq!(received, 1, "receiver lines for {name}:\n{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("  sent {name}: got 20"))),
            "{name}:\n{text}"
        );
    }
    assert!(text.contains("- - 401 signature mismatch"), "{text}");
    assert!(text.contains("  sent forged call_ended: got 401"), "{text}");
}

/// `parse --untyped` lists what is kept only as raw JSON, one generic path per
/// line, and nothing at all for bodies this version types completely.
#[test]
fn parse_untyped_lists_raw_paths_once() {
    for (name, key) in [
        ("sdk/max_phone_call.json", "call"),
        ("sdk/max_web_call.json", "call"),
        ("sdk/max_chat.json", "chat"),
    ] {
        let object = std::fs::read_to_string(fixture(name)).unwrap();
        let body = format!(r#"{{"event":"{key}_ended","{key}":{object}}}"#);
        let mut cmd = cli();
        cmd.args(["parse", "--untyped"]);
        let out = run_with_stdin(cmd, body.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{name}");
    }
    let body = br#"{"event":"call_ended","call":{"call_id":"c1","zz":1,
        "transcript_object":[{"role":"agent","x":1},{"role":"user","x":2,"words":"w"}],
        "disconnection_reason":"new_reason","duration_ms":"12"}}"#;
    let mut cmd = cli();
    cmd.args(["parse", "--untyped"]);
    let out = run_with_stdin(cmd, body);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let printed = stdout(&out);
    let mut lines: Vec<&str> = printed.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "call.disconnection_reason",
            "call.duration_ms",
            "call.transcript_object[].words",
            "call.transcript_object[].x",
            "call.zz",
        ]
    );
    // A bare call with `--kind call` reports paths from the call itself.
    let mut cmd = cli();
    cmd.args(["parse", "--untyped", "--kind", "call"]);
    let out = run_with_stdin(cmd, br#"{"call_id":"c1","agent_version":"v2"}"#);
    assert_eq!(stdout(&out), "agent_version\n");
}

/// `listen --key-file` reads the key from a file, so it never shows in `ps`.
#[test]
fn listen_reads_its_key_from_a_file() {
    let dir = std::env::temp_dir().join(format!("retell-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("key");
    std::fs::write(&file, "key_from_a_file\n").unwrap();
    let (mut listener, url) = Listener::start(&["--key-file", file.to_str().unwrap()]);
    let out = cli()
        .env("RETELL_API_KEY", "key_from_a_file")
        .args(["send", "--url", &url, "--event", "call_ended"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(listener.next_line().contains("call_ended"));
    // Signed with another key: refused, so the file's key is the one in use.
    let out = cli()
        .args([
            "send",
            "--url",
            &url,
            "--key",
            "key_other",
            "--event",
            "call_ended",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    drop(listener);
    // `--key` and `--key-file` together are a usage error.
    let out = cli()
        .args(["listen", "--port", "0", "--key", "k", "--key-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------
// send: what it prints of a reply; listen: connection timeouts
// ---------------------------------------------------------------------------

/// The reply cap of `send`.
const REPLY_LIMIT: usize = 1024 * 1024;

/// A server on 127.0.0.1 that reads one request and answers it with `status`
/// and `body`. Returns its URL and the thread serving it.
fn reply_once(status: &'static str, body: Vec<u8>) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut request = vec![0; length];
        reader.read_exact(&mut request).unwrap();
        let mut stream = reader.into_inner();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        // The client may stop reading a long reply and close: not an error here.
        let _ = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(&body));
    });
    (url, server)
}

/// Sends `call_ended` to `url` with `send`.
fn send_to(url: &str) -> Output {
    cli()
        .args(["send", "--url", url, "--event", "call_ended"])
        .output()
        .unwrap()
}

#[test]
fn send_reads_and_prints_at_most_one_mebibyte_of_a_reply() {
    // Three MiB: only the first one is read and printed, and `send` says so.
    let body: Vec<u8> = (0..3 * REPLY_LIMIT)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let (url, server) = reply_once("200 OK", body.clone());
    let out = send_to(&url);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut expected = b"200 OK\n".to_vec();
    expected.extend_from_slice(&body[..REPLY_LIMIT]);
    expected.push(b'\n');
    assert!(out.stdout == expected, "{} bytes printed", out.stdout.len());
    let err = stderr(&out);
    assert!(err.contains("reply cut at 1 MiB"), "{err}");

    // Exactly the cap: printed whole, nothing cut.
    let (url, server) = reply_once("200 OK", body[..REPLY_LIMIT].to_vec());
    let out = send_to(&url);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), "200 OK\n".len() + REPLY_LIMIT + 1);
    assert_eq!(stderr(&out), "");
}

#[test]
fn send_escapes_control_bytes_of_a_reply() {
    // Colours, a window title, a carriage return that would overwrite the
    // status line, a one-character CSI (U+009B) and bytes that are not UTF-8.
    let body = b"{\"error\":\"\x1b[31mred\x1b[0m\"}\r\x1b]0;owned\x07 \xc2\x9b2J \xff\xfe".to_vec();
    let (url, server) = reply_once("500 Internal Server Error", body);
    let out = send_to(&url);
    server.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    for byte in [0x1b, 0x07, b'\r', 0x9b, 0xff] {
        assert!(!out.stdout.contains(&byte), "raw {byte:#04x} printed");
    }
    assert_eq!(
        stdout(&out),
        "500 Internal Server Error\n\
         {\"error\":\"\\x1b[31mred\\x1b[0m\"}\\x0d\\x1b]0;owned\\x07 \\u{009b}2J \\xff\\xfe\n"
    );
    assert!(stderr(&out).contains("answered 500"), "{}", stderr(&out));
}

/// How long after `start` the server closes `stream` (reads until the end).
fn closed_after(mut stream: std::net::TcpStream, start: std::time::Instant) -> std::time::Duration {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(15)))
        .unwrap();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
                return start.elapsed();
            }
            Err(err) => panic!("still open after {:?}: {err}", start.elapsed()),
        }
    }
}

#[test]
fn listen_closes_silent_and_idle_connections_after_the_head_timeout() {
    use std::io::Read;
    use std::time::{Duration, Instant};
    let (_listener, url) = Listener::start(&[]);
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    std::thread::scope(|scope| {
        // A client that connects and sends nothing.
        let silent = scope.spawn(|| {
            let stream = std::net::TcpStream::connect(&addr).unwrap();
            closed_after(stream, Instant::now())
        });
        // A client that gets an answer, then keeps the connection idle.
        let idle = scope.spawn(|| {
            let mut stream = std::net::TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"GET /webhook HTTP/1.1\r\nhost: local\r\n\r\n")
                .unwrap();
            let mut head = [0; 12];
            stream.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 405");
            closed_after(stream, Instant::now())
        });
        for (what, client) in [("silent", silent), ("idle", idle)] {
            let after = client.join().unwrap();
            assert!(
                (Duration::from_secs(4)..Duration::from_secs(8)).contains(&after),
                "{what} connection closed after {after:?}"
            );
        }
    });
}

#[test]
fn listen_dedupe_memory_handles_a_copy_once() {
    let (mut listener, url) = Listener::start(&["--dedupe", "memory"]);
    send_call_ended(&url);
    assert!(listener.next_line().ends_with(" 204 ok"));
    send_call_ended(&url);
    let line = listener.next_line();
    assert!(line.contains("204 duplicate"), "{line}");
}

/// `GET` of `url` (plain `http://host:port/path`) over a raw socket: the body.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    answer
}

#[test]
fn listen_serves_prometheus_metrics() {
    let (mut listener, url) = Listener::start(&["--metrics", "127.0.0.1:0"]);
    let metrics_url = listener
        .banner
        .iter()
        .find_map(|line| line.strip_prefix("metrics (Prometheus text format) at "))
        .unwrap_or_else(|| panic!("no metrics line: {:?}", listener.banner))
        .to_owned();
    send_call_ended(&url);
    assert!(listener.next_line().ends_with(" 204 ok"));
    let unsigned = cli()
        .args([
            "send",
            "--url",
            &url,
            "--event",
            "call_ended",
            "--key",
            "key_wrong",
        ])
        .output()
        .unwrap();
    assert!(
        stdout(&unsigned).starts_with("401"),
        "{}",
        stdout(&unsigned)
    );
    let text = http_get(&metrics_url);
    let lines: Vec<&str> = text.lines().collect();
    let has = |prefix: &str, suffix: &str| {
        lines
            .iter()
            .any(|line| line.starts_with(prefix) && line.ends_with(suffix))
    };
    assert!(
        has("retell_webhooks_requests_total{", " 1") && text.contains("status=\"204\""),
        "{text}"
    );
    assert!(
        has("retell_webhooks_signature_failures_total{", " 1"),
        "{text}"
    );
}

#[test]
fn listen_refuses_an_unknown_dedupe_store() {
    let out = cli()
        .args(["listen", "--port", "0", "--dedupe", "sqlite://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--dedupe"), "{}", stderr(&out));
}

/// One POST of `body` to `/webhook` on `stream` (kept alive), with
/// `signature`; returns the status line of the answer, read whole.
fn post_keep_alive(stream: &mut std::net::TcpStream, signature: &str, body: &[u8]) -> String {
    use std::io::Read;
    write!(
        stream,
        "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         X-Retell-Signature: {signature}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // Every answer here is small: read until its head and body are in.
    let mut answer = Vec::new();
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before answering: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return text.lines().next().unwrap().to_owned();
            }
        }
    }
}

#[test]
fn listen_closes_the_connection_of_a_forged_request_and_keeps_a_signed_one() {
    const KEY: &str = "key_close_test_0123456789";
    let (_listener, url) = Listener::start(&["--key", KEY]);
    let addr = url
        .strip_prefix("http://")
        .unwrap()
        .trim_end_matches("/webhook")
        .to_owned();
    let now_ms = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let body = std::fs::read(fixture("call_ended_phone.json")).unwrap();

    // Signed: the connection stays open for the next delivery.
    let mut kept = std::net::TcpStream::connect(&addr).unwrap();
    let signed = retell_webhooks::sign(&body, KEY, now_ms);
    assert!(post_keep_alive(&mut kept, &signed, &body).contains(" 204"));
    assert!(post_keep_alive(&mut kept, &signed, &body).contains(" 204"));

    // Forged but well formed and fresh: answered, then closed at once (not
    // at the 5 s head timeout).
    let mut forged = std::net::TcpStream::connect(&addr).unwrap();
    let header = format!("v={now_ms},d={}", "0".repeat(64));
    assert!(post_keep_alive(&mut forged, &header, &body).contains(" 401"));
    let after = closed_after(forged, std::time::Instant::now());
    assert!(
        after < std::time::Duration::from_secs(2),
        "closed after {after:?}"
    );
}
