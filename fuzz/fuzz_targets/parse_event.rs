//! Any body through the event parser: an error or a value, never a panic or a
//! stack overflow; a parsed event serializes and parses back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use retell_webhooks::WebhookEvent;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = WebhookEvent::from_slice(data) {
        let json = serde_json::to_vec(&event).unwrap_or_default();
        assert!(WebhookEvent::from_slice(&json).is_ok());
    }
});
