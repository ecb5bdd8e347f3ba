//! `retell-webhooks send`: sign a body and POST it, as Retell would.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::rt::TokioIo;
use retell_webhooks::RouteKind;
use retell_webhooks::{SIGNATURE_HEADER, samples};

use crate::common;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Most reply bytes read. A receiver answers with a few bytes of JSON; a reply
/// past this is not one, and reading it all would only fill memory and the
/// terminal.
pub const REPLY_LIMIT: usize = 1024 * 1024;

/// Arguments of `send`.
#[derive(clap::Args)]
#[command(after_help = "\
Prints the answer's status line, then its body: at most 1 MiB of it (the \
rest is not read, and a warning says so), with control characters and bytes \
that are not UTF-8 shown as \\xNN, so a reply cannot drive the terminal.

Exit status: 0 on a 2xx answer; 1 on any other answer or when none came \
(connection refused, timeout); 2 on a usage error.

Only plain http:// URLs are supported (a local receiver). For an https:// \
target, sign with `retell-webhooks sign` (key in RETELL_API_KEY) and send \
with curl:
  curl -H 'Content-Type: application/json' \
-H \"X-Retell-Signature: $(retell-webhooks sign body.json)\" \
--data-binary @body.json https://example.com/webhook")]
pub struct Args {
    /// Receiver URL, e.g. http://127.0.0.1:3000/webhook (plain http only).
    /// Required, except with `--event list`.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Retell API key to sign with [default: the public demo key that
    /// `listen` also defaults to]. Never printed.
    #[arg(long, env = common::KEY_ENV, hide_env_values = true)]
    key: Option<String>,
    /// Signing time in Unix milliseconds [default: now].
    #[arg(long, value_name = "MS")]
    timestamp: Option<u64>,
    /// Send this built-in sample (`--event list` prints the names).
    /// `custom_function` belongs on a function URL (`listen`: /function).
    #[arg(
        long,
        value_name = "NAME",
        value_parser = event_names(),
        hide_possible_values = true,
        conflicts_with = "file",
        required_unless_present = "file"
    )]
    event: Option<String>,
    /// File holding the exact body bytes to send; standard input for `-`.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

fn event_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(samples::NAMES.iter().copied().chain(["list"]))
}

/// Signs and sends the body, prints the answer.
pub fn run(args: &Args) -> ExitCode {
    if args.event.as_deref() == Some("list") {
        for name in samples::NAMES {
            common::print(name);
        }
        return ExitCode::SUCCESS;
    }
    match send(args) {
        Ok(code) | Err(code) => code,
    }
}

fn send(args: &Args) -> Result<ExitCode, ExitCode> {
    let Some(url) = args.url.as_deref() else {
        return Err(common::fail(
            common::EXIT_USAGE,
            "--url is required",
            Some("e.g. --url http://127.0.0.1:3000/webhook (what `retell-webhooks listen` serves)"),
        ));
    };
    let target = Target::parse(url)
        .map_err(|why| common::fail(common::EXIT_USAGE, format_args!("--url: {why}"), None))?;
    let (key, _) = common::key_or_demo(args.key.as_deref());
    common::verifier(key)?;
    let body = match args.event.as_deref().and_then(samples::body) {
        Some(body) => body.to_vec(),
        None => common::read_body(args.file.as_deref())?,
    };
    let timestamp = match args.timestamp {
        Some(ms) => ms,
        None => common::now_ms()?,
    };
    let signature = retell_webhooks::sign(&body, key, timestamp);
    let runtime = common::runtime()?;
    let answer = runtime
        .block_on(post(&target, body, Some(&signature)))
        .map_err(|why| {
            common::fail(
                common::EXIT_REJECTED,
                format_args!("no answer from {url}: {why}"),
                Some("is the receiver running? (`retell-webhooks listen`)"),
            )
        })?;
    common::print(answer.status_line());
    if !answer.body.is_empty() {
        common::print(common::escape_for_terminal(answer.body.trim_ascii_end()));
    }
    if answer.cut {
        common::warn(format_args!(
            "reply cut at 1 MiB: only its first {REPLY_LIMIT} bytes were read and shown"
        ));
    }
    if answer.status.is_success() {
        return Ok(ExitCode::SUCCESS);
    }
    let hint = match answer.status {
        StatusCode::UNAUTHORIZED => Some(
            "the receiver checks with another key: give both sides the same --key or \
             RETELL_API_KEY (or neither, for the demo key)",
        ),
        StatusCode::BAD_REQUEST
            if args.event.as_deref().and_then(samples::route) == Some(RouteKind::Function) =>
        {
            Some("a custom-function request goes to the function URL (`listen` serves /function)")
        }
        StatusCode::NOT_FOUND => Some("check the path in --url (`listen` serves /webhook)"),
        _ => None,
    };
    Err(common::fail(
        common::EXIT_REJECTED,
        format_args!("the receiver answered {}", answer.status),
        hint,
    ))
}

/// A parsed `http://` URL.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl Target {
    /// Parses an `http://host[:port][/path][?query]` URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|err| format!("not a valid URL ({err})"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "https is not supported; sign with `retell-webhooks sign` and \
                            send with curl (see --help)"
                        .to_owned(),
                );
            }
            _ => return Err("expected an http:// URL".to_owned()),
        }
        let authority = uri.authority().ok_or("the URL has no host")?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(80);
        let path_and_query = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        Ok(Self {
            host,
            port,
            authority: authority.as_str().to_owned(),
            path_and_query,
        })
    }
}

/// The receiver's answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Body bytes, at most [`REPLY_LIMIT`].
    pub body: Vec<u8>,
    /// Whether the body went on past [`REPLY_LIMIT`] (the rest was not read).
    pub cut: bool,
}

impl Answer {
    /// `204 No Content`.
    pub fn status_line(&self) -> String {
        let reason = self.status.canonical_reason().unwrap_or_default();
        format!("{} {reason}", self.status.as_u16())
            .trim_end()
            .to_owned()
    }
}

/// POSTs `body` as `application/json`, with `X-Retell-Signature: signature`
/// when given, over one HTTP/1.1 connection.
pub async fn post(
    target: &Target,
    body: Vec<u8>,
    signature: Option<&str>,
) -> Result<Answer, String> {
    let headers: Vec<(&str, &str)> = signature
        .map(|value| (SIGNATURE_HEADER, value))
        .into_iter()
        .collect();
    post_with(target, body, &headers).await
}

/// [`post`] with any extra headers (`X-Retell-Signature`,
/// `Idempotency-Key`, …).
pub async fn post_with(
    target: &Target,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    tokio::time::timeout(REQUEST_TIMEOUT, post_inner(target, body, headers))
        .await
        .map_err(|_| format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()))?
}

async fn post_inner(
    target: &Target,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Result<Answer, String> {
    let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|err| err.to_string())?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| err.to_string())?;
    let driver = tokio::spawn(connection);
    let mut request = Request::post(target.path_and_query.as_str())
        .header(header::HOST, target.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::USER_AGENT,
            concat!("retell-webhooks/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|err| err.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| err.to_string())?;
    let status = response.status();
    let (body, cut) = read_capped(response.into_body(), REPLY_LIMIT).await?;
    drop(sender);
    if cut {
        // The rest of the reply is never read: drop the connection.
        driver.abort();
    }
    // The connection ends once the sender is gone; its result adds nothing.
    let _ = driver.await;
    Ok(Answer { status, body, cut })
}

/// Reads at most `limit` bytes of `body`; whether there was more.
async fn read_capped(mut body: Incoming, limit: usize) -> Result<(Vec<u8>, bool), String> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|err| err.to_string())?.into_data() else {
            continue; // trailers
        };
        let room = limit - bytes.len();
        if data.len() > room {
            bytes.extend_from_slice(&data[..room]);
            return Ok((bytes, true));
        }
        bytes.extend_from_slice(&data);
    }
    Ok((bytes, false))
}
