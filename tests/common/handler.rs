//! The handler the adapter test suites mount: counts the events and custom
//! function calls it handles, and answers a function call with
//! `{"booked": true, "name": <function name>}`. Include it with
//! `#[path = "common/handler.rs"] mod handler;`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use retell_webhooks::WebhookHandler;
use retell_webhooks::{CallEvent, FunctionRequest, FunctionResponse};
use serde_json::json;

#[derive(Default)]
pub struct Counts {
    pub ended: AtomicUsize,
    pub functions: AtomicUsize,
}

pub struct TestHandler {
    counts: Arc<Counts>,
}

impl TestHandler {
    pub fn new() -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let handler = Self {
            counts: Arc::clone(&counts),
        };
        (handler, counts)
    }
}

impl WebhookHandler for TestHandler {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        self.counts.ended.fetch_add(1, Ordering::SeqCst);
        assert!(!event.call.call_id.is_empty());
        Ok(())
    }

    async fn on_function_call(&self, request: FunctionRequest) -> Result<FunctionResponse, String> {
        self.counts.functions.fetch_add(1, Ordering::SeqCst);
        Ok(FunctionResponse::json(
            json!({ "booked": true, "name": request.name() }),
        ))
    }
}
