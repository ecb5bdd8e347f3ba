//! The key, the expected digest, the signature header and the body never show
//! up in `Debug`/`Display` of configuration, error, outcome or response types,
//! nor in what the receivers send back. The crate has no logging of its own
//! (the one log line per request is the `Outcome`, checked here), and no
//! environment variable turns verification off.

use retell_webhooks::Receiver;
use retell_webhooks::dedupe::{DedupeKey, MemoryDedupe};
use retell_webhooks::receiver::Reason;
use retell_webhooks::{Malformed, Verifier, VerifyError, sign};

use crate::http::Framing;
use crate::receivers::{self, Behaviour, KEY, NOW, all_vias, config, dedupe_config, signature};

/// A value that must never leave the request: it sits in the body.
const BODY_MARKER: &str = "caller said 4111-1111-1111-1111";

fn body() -> Vec<u8> {
    format!(
        r#"{{"event":"call_ended","call":{{"call_id":"call_s","transcript":"{BODY_MARKER}"}}}}"#
    )
    .into_bytes()
}

/// The expected digest of `body` at `ts` (what a signing oracle would leak).
fn digest(body: &[u8], ts: u64) -> String {
    sign(body, KEY, ts).split_once(",d=").unwrap().1.to_owned()
}

fn assert_clean(text: &str, secrets: &[&str], what: &str) {
    for secret in secrets {
        assert!(!text.contains(secret), "{what} leaks {secret:?}: {text}");
    }
}

#[test]
fn configuration_types_redact_the_key() {
    let verifier = Verifier::new(KEY).unwrap();
    let debug = format!("{verifier:?}");
    assert!(debug.contains("REDACTED"), "{debug}");
    let config = dedupe_config();
    let store = MemoryDedupe::new();
    let key = DedupeKey::of_body(&body());
    let receiver = Receiver::new(verifier.clone(), config.clone());
    let unconfigured = Receiver::unconfigured(config.clone());
    let texts = [
        debug,
        format!("{config:?}"),
        format!("{store:?}"),
        format!("{key:?}"),
        format!("{receiver:?}"),
        format!("{unconfigured:?}"),
    ];
    for text in texts {
        assert_clean(&text, &[KEY, BODY_MARKER], "configuration Debug");
    }
}

#[test]
fn every_error_and_reason_is_clean() {
    let body = body();
    let expected = digest(&body, NOW);
    let mut errors = vec![
        VerifyError::MissingSignature,
        VerifyError::DuplicateSignature,
        VerifyError::SignatureTooLong { len: 200 },
        VerifyError::TooOld {
            skew_ms: 1,
            tolerance_ms: 300_000,
            looks_like_seconds: true,
        },
        VerifyError::TooNew {
            skew_ms: 1,
            tolerance_ms: 300_000,
        },
        VerifyError::Mismatch,
        VerifyError::Clock,
        VerifyError::InvalidKey,
    ];
    errors.extend(
        [
            Malformed::MissingTimestamp,
            Malformed::EmptyTimestamp,
            Malformed::TimestampNotDigits,
            Malformed::TimestampLeadingZero,
            Malformed::TimestampTooLong { digits: 20 },
            Malformed::MissingDigest,
            Malformed::DigestLength { len: 3 },
            Malformed::DigestNotHex,
        ]
        .map(VerifyError::Malformed),
    );
    // And the errors the verifier produces itself, for this body and key.
    let verifier = Verifier::new(KEY).unwrap();
    for header in [
        sign(&body, "key_other", NOW),
        sign(&body, KEY, NOW - 300_001),
        sign(&body, KEY, NOW + 300_001),
        format!("v={NOW},d={}", &expected[..63]),
        format!("v={NOW},d={expected}").replace(&expected[..2], "zz"),
    ] {
        errors.push(verifier.verify_at(&body, &header, NOW).unwrap_err());
    }
    let reasons: Vec<Reason> = errors
        .iter()
        .cloned()
        .map(Reason::Unauthorized)
        .chain([
            Reason::Duplicate,
            Reason::InFlight,
            Reason::DedupeFailed("connection refused".to_owned()),
            Reason::PayloadTooLarge { limit: 8 },
            Reason::HandlerFailed("db down".to_owned()),
            Reason::HandlerPanicked,
            Reason::DeadlineExceeded,
            Reason::BodyReadFailed,
            Reason::NotConfigured,
        ])
        .collect();
    for error in &errors {
        assert_clean(
            &format!("{error:?} {error}"),
            &[KEY, &expected, BODY_MARKER],
            "VerifyError",
        );
    }
    for reason in reasons {
        let text = format!("{reason:?} {reason}");
        assert_clean(&text, &[KEY, &expected, BODY_MARKER], "Reason");
    }
}

type Case<'a> = (Vec<(&'a str, &'a str)>, &'a [u8]);

/// What every receiver sends back, and the outcome it logs, for each kind of
/// request: never the key, the expected digest, the header value or the body.
#[tokio::test]
async fn responses_and_outcomes_are_clean() {
    let body = body();
    let expected = digest(&body, NOW);
    let good = signature(&body);
    let wrong = sign(&body, "key_other", NOW);
    let stale = sign(&body, KEY, NOW - 300_001);
    let malformed = format!("v={NOW},d={}", &expected[..60]);
    let not_json = [&body[..body.len() - 1], b"!"].concat();
    let not_json_sig = signature(&not_json);
    let secrets = [KEY, expected.as_str(), wrong.as_str(), BODY_MARKER, "4111"];
    for behaviour in [
        Behaviour::Ok,
        Behaviour::FailFirst(1),
        Behaviour::PanicFirst(1),
    ] {
        for via in all_vias() {
            let r =
                receivers::Receiver::start(via, receivers::Probe::new(behaviour), config()).await;
            let cases: Vec<Case<'_>> = vec![
                (vec![("X-Retell-Signature", good.as_str())], &body),
                (vec![("X-Retell-Signature", good.as_str())], &body),
                (vec![("X-Retell-Signature", wrong.as_str())], &body),
                (vec![("X-Retell-Signature", stale.as_str())], &body),
                (vec![("X-Retell-Signature", malformed.as_str())], &body),
                (
                    vec![("X-Retell-Signature", not_json_sig.as_str())],
                    &not_json,
                ),
                (vec![], &body),
            ];
            for (headers, body) in cases {
                let reply = r.send("POST", &headers, body, Framing::Length).await;
                let text = format!("{reply:?} {}", String::from_utf8_lossy(&reply.body));
                assert_clean(&text, &secrets, &format!("{via} response"));
            }
            for outcome in r.outcomes() {
                assert_clean(&format!("{outcome:?} {outcome}"), &secrets, "Outcome");
            }
        }
    }
}

/// Nothing in the library reads the environment, so no variable can turn
/// verification off (integrations in the wild have a `RETELL_SKIP_WEBHOOK_VERIFY`).
/// The command-line tool (`src/bin`) reads its key from the environment, never
/// a bypass.
#[test]
fn the_library_never_reads_the_environment() {
    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    sources(&path, out);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    sources(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // Documentation is not library code: `//` lines, and the examples in
        // `doc = r#"…"#` attributes.
        let mut in_doc_string = false;
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if in_doc_string {
                in_doc_string = !code.starts_with("\"#");
                continue;
            }
            if code.starts_with("//") {
                continue;
            }
            if code.contains("doc = r#\"") {
                in_doc_string = !code.ends_with("\"#") && !code.ends_with("\"#)]");
                continue;
            }
            for needle in ["env::var", "var_os", "option_env!", "SKIP", "skip_verif"] {
                assert!(
                    !code.contains(needle),
                    "{}:{}: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}
