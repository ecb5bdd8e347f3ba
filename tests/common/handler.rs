//! The handler both adapter test suites run: counts calls per method and
//! misbehaves on demand (error, panic, hang). Include it with
//! `#[path = "common/handler.rs"] mod handler;`.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::Notify;

use retell_webhooks::FunctionRequest;
use retell_webhooks::WebhookHandler;
use retell_webhooks::{
    CallEvent, FunctionResponse, InboundCallRequest, InboundResponse, UnknownEvent,
};
use serde_json::json;

#[derive(Default)]
pub struct Counts {
    pub ended: AtomicUsize,
    pub analyzed: AtomicUsize,
    pub unknown: AtomicUsize,
    pub inbound: AtomicUsize,
    pub functions: AtomicUsize,
    /// `Mode::Gated`: handlers inside `on_call_ended` now, and the most at once.
    pub active: AtomicUsize,
    pub max_active: AtomicUsize,
    gate_open: AtomicBool,
    gate: Notify,
    entered: Notify,
}

impl Counts {
    /// Waits until at least `n` gated handlers are inside `on_call_ended`.
    pub async fn wait_for_active(&self, n: usize) {
        loop {
            let entered = self.entered.notified();
            if self.active.load(Ordering::SeqCst) >= n {
                return;
            }
            entered.await;
        }
    }

    /// Lets every gated handler, present and future, finish.
    pub fn open_gate(&self) {
        self.gate_open.store(true, Ordering::SeqCst);
        self.gate.notify_waiters();
    }

    async fn pass_gate(&self) {
        let now = self.active.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_active.fetch_max(now, Ordering::SeqCst);
        self.entered.notify_waiters();
        loop {
            let opened = self.gate.notified();
            if self.gate_open.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Fail,
    PanicOnce,
    PanicAlways,
    Hang,
    /// Waits in `on_call_ended` until [`Counts::open_gate`].
    Gated,
}

pub struct TestHandler {
    mode: Mode,
    counts: Arc<Counts>,
    panicked: AtomicUsize,
}

impl TestHandler {
    pub fn new(mode: Mode) -> (Self, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let handler = Self {
            mode,
            counts: Arc::clone(&counts),
            panicked: AtomicUsize::new(0),
        };
        (handler, counts)
    }
}

impl WebhookHandler for TestHandler {
    type Error = String;

    async fn on_call_ended(&self, event: CallEvent) -> Result<(), String> {
        self.counts.ended.fetch_add(1, Ordering::SeqCst);
        assert!(!event.call.call_id.is_empty());
        match self.mode {
            Mode::Ok => Ok(()),
            Mode::Fail => Err("storage unavailable".to_owned()),
            Mode::PanicOnce => {
                if self.panicked.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("handler bug on first call");
                }
                Ok(())
            }
            Mode::PanicAlways => panic!("handler bug on every call"),
            Mode::Hang => std::future::pending().await,
            Mode::Gated => {
                self.counts.pass_gate().await;
                Ok(())
            }
        }
    }

    async fn on_call_analyzed(&self, _event: CallEvent) -> Result<(), String> {
        self.counts.analyzed.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_unknown(&self, _event: UnknownEvent) -> Result<(), String> {
        self.counts.unknown.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn on_call_inbound(
        &self,
        request: InboundCallRequest,
    ) -> Result<InboundResponse, String> {
        self.counts.inbound.fetch_add(1, Ordering::SeqCst);
        let caller = request.call_inbound.from_number.clone().unwrap_or_default();
        Ok(InboundResponse::call().dynamic_variables([("caller", caller)]))
    }

    async fn on_function_call(&self, request: FunctionRequest) -> Result<FunctionResponse, String> {
        self.counts.functions.fetch_add(1, Ordering::SeqCst);
        Ok(FunctionResponse::json(
            json!({ "booked": true, "name": request.name() }),
        ))
    }
}
