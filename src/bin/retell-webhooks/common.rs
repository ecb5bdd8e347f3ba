//! Helpers shared by the subcommands.

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use retell_webhooks::Verifier;

/// The request was checked and rejected.
pub const EXIT_REJECTED: u8 = 1;
/// The command could not run: bad input, unreadable file, invalid key.
pub const EXIT_USAGE: u8 = 2;

/// Environment variable read when `--key` is absent.
pub const KEY_ENV: &str = "RETELL_API_KEY";

/// Reads the raw bytes of `file`, or of standard input when it is `None` or `-`.
pub fn read_body(file: Option<&Path>) -> Result<Vec<u8>, ExitCode> {
    let mut body = Vec::new();
    let result = match file {
        None => io::stdin().lock().read_to_end(&mut body).map(|_| ()),
        Some(path) if path == Path::new("-") => {
            io::stdin().lock().read_to_end(&mut body).map(|_| ())
        }
        Some(path) => std::fs::read(path).map(|bytes| body = bytes),
    };
    match result {
        Ok(()) => Ok(body),
        Err(err) => Err(fail(
            EXIT_USAGE,
            format_args!("cannot read {}: {err}", describe(file)),
            None,
        )),
    }
}

fn describe(file: Option<&Path>) -> String {
    match file {
        Some(path) if path != Path::new("-") => format!("`{}`", path.display()),
        _ => "standard input".to_owned(),
    }
}

/// Builds a verifier for one key, reporting a bad key without ever printing it.
pub fn verifier(key: &str) -> Result<Verifier, ExitCode> {
    Verifier::new(key).map_err(|err| {
        fail(
            EXIT_USAGE,
            err,
            Some(&format!(
                "pass the Retell API key with the webhook badge via --key or {KEY_ENV}"
            )),
        )
    })
}

/// The current time in Unix milliseconds.
pub fn now_ms() -> Result<u64, ExitCode> {
    retell_webhooks::unix_ms(SystemTime::now()).map_err(|err| fail(EXIT_USAGE, err, None))
}

/// Prints `line` on standard output; a closed pipe is not an error worth a panic.
pub fn print(line: impl Display) {
    let _ = writeln!(io::stdout().lock(), "{line}");
}

/// Prints `error: <message>` and an optional `hint: …` on standard error and
/// returns `code`.
pub fn fail(code: u8, message: impl Display, hint: Option<&str>) -> ExitCode {
    let mut err = io::stderr().lock();
    let _ = writeln!(err, "error: {message}");
    if let Some(hint) = hint {
        let _ = writeln!(err, "hint: {hint}");
    }
    ExitCode::from(code)
}

/// The key `listen`, `send` and `demo` use when none is given. It is public by
/// design (printed by `listen`, written in the docs): anyone can sign with it,
/// so it only ever belongs on a local test receiver, never in production.
pub const DEMO_KEY: &str = "key_public_demo_do_not_use_in_production";

/// The key to use: the one given (flag or environment), else the demo key.
/// The flag tells whether it is the demo key.
pub fn key_or_demo(key: Option<&str>) -> (&str, bool) {
    match key {
        Some(key) => (key, false),
        None => (DEMO_KEY, true),
    }
}

/// A multi-threaded tokio runtime for the network subcommands.
pub fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| {
            fail(
                EXIT_USAGE,
                format_args!("cannot start the runtime: {err}"),
                None,
            )
        })
}

/// An id read from a body, safe to print: ids Retell issues are short and made
/// of letters, digits, `_` and `-`; anything else is not echoed.
pub fn printable_id(id: &str) -> &str {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if plain { id } else { "(id not shown)" }
}

/// `bytes` as text that is safe to print on a terminal: UTF-8 text as it is,
/// line breaks and tabs included; control characters (escape sequences,
/// carriage returns, C1 controls) and bidirectional overrides as `\xNN` below
/// U+0080 and `\u{NNNN}` above; bytes that are not UTF-8 as `\xNN`. A
/// receiver's reply cannot recolour, move the cursor on or retitle the terminal
/// that prints it.
pub fn escape_for_terminal(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if !needs_escape(c) {
                out.push(c);
                continue;
            }
            let code = u32::from(c);
            // Writing to a `String` cannot fail.
            let _ = if code < 0x80 {
                write!(out, "\\x{code:02x}")
            } else {
                write!(out, "\\u{{{code:04x}}}")
            };
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Control characters other than line breaks and tabs, and the characters
/// that reorder text on screen.
fn needs_escape(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        c => c.is_control(),
    }
}

/// Reads a key file: the whole file, surrounding whitespace trimmed.
pub fn read_key_file(path: &Path) -> Result<String, ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        fail(
            EXIT_USAGE,
            format_args!("cannot read the key file {}: {err}", path.display()),
            None,
        )
    })?;
    Ok(text.trim().to_owned())
}

/// Whether `--key` was given as an argument (rather than through the
/// environment), where other users can read it.
pub fn key_flag_on_command_line() -> bool {
    std::env::args_os().any(|arg| {
        let arg = arg.to_string_lossy();
        arg == "--key" || arg.starts_with("--key=")
    })
}

/// Prints `warning: <message>` on standard error.
pub fn warn(message: impl Display) {
    let _ = writeln!(io::stderr().lock(), "warning: {message}");
}

/// `500ms`, `30s`, `10m`, `2h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration (a whole number and ms, s, m, h or d)");
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let per = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(per)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

/// An instant given as a duration ago (`2h`) or as Unix milliseconds.
pub fn parse_instant(text: &str, now_ms: u64) -> Result<u64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("{text:?} is too large for Unix milliseconds"));
    }
    let ago = parse_duration(text).map_err(|_| {
        format!("{text:?} is neither a duration ago (2h, 30m, 7d) nor Unix milliseconds")
    })?;
    Ok(now_ms.saturating_sub(u64::try_from(ago.as_millis()).unwrap_or(u64::MAX)))
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn format_ms(ms: u64) -> String {
    let seconds = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute(),
            at.second()
        ),
        Err(_) => ms.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::escape_for_terminal;

    #[test]
    fn terminal_escapes_are_shown_not_sent() {
        assert_eq!(
            escape_for_terminal(b"\x1b[31mred\x1b[0m\x1b]0;title\x07"),
            "\\x1b[31mred\\x1b[0m\\x1b]0;title\\x07"
        );
        // Carriage returns and DEL could hide what came before.
        assert_eq!(escape_for_terminal(b"ok\rforged\x7f"), "ok\\x0dforged\\x7f");
        // C1 controls (U+009B is a one-character CSI) and bidi overrides.
        assert_eq!(
            escape_for_terminal("\u{9b}31m \u{202e}txt".as_bytes()),
            "\\u{009b}31m \\u{202e}txt"
        );
        // Bytes that are not UTF-8.
        assert_eq!(escape_for_terminal(b"a\xff\xc3b"), "a\\xff\\xc3b");
        // Text, JSON, line breaks and tabs pass as they are.
        let plain = "{\"ok\":true}\n\tcafé ✓ 通話";
        assert_eq!(escape_for_terminal(plain.as_bytes()), plain);
    }
}
