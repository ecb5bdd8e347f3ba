//! Bare Call and Chat objects, outside their event envelope.

mod common;

#[test]
fn bare_call_and_chat_parse_with_path_and_id() {
    let event = common::fixture_value("call_ended_phone.json");
    let call = retell_webhooks::Call::from_slice(event["call"].to_string().as_bytes()).unwrap();
    assert_eq!(call.call_id, "call_8e2f4a6c1b9d3e7f5a0c2b4d6e");

    let err = retell_webhooks::Call::from_slice(
        br#"{"call_id":"call_1","transcript_object":[{"role":"agent","content":"hi","content":"x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.path(), "transcript_object[0]");
    assert!(
        err.to_string().contains("duplicate field `content`"),
        "{err}"
    );
    assert_eq!(err.call_id(), Some("call_1"));
    assert_eq!(err.event(), None);

    let event = common::fixture_value("chat_ended.json");
    let chat = retell_webhooks::Chat::from_slice(event["chat"].to_string().as_bytes()).unwrap();
    assert!(chat.chat_id.starts_with("chat_"));
    let err =
        retell_webhooks::Chat::from_slice(br#"{"chat_id":"chat_9","version":"x","version":1}"#)
            .unwrap_err();
    assert_eq!(err.path(), ".");
    assert!(
        err.to_string().contains("duplicate field `version`"),
        "{err}"
    );
    assert_eq!(err.chat_id(), Some("chat_9"));
    assert!(!err.to_string().contains("\"x\""), "{err}");

    // A drifted field is a fallback, not an error.
    let chat = retell_webhooks::Chat::from_slice(br#"{"chat_id":"chat_9","version":"x"}"#).unwrap();
    assert_eq!(chat.version, None);
    assert_eq!(chat.fallbacks().len(), 1);

    // Trailing characters and non-objects are errors at the root.
    let err = retell_webhooks::Call::from_slice(br#"{"call_id":"c"} {}"#).unwrap_err();
    assert_eq!(err.path(), ".");
    assert!(retell_webhooks::Call::from_slice(b"[]").is_err());
}
