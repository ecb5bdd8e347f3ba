//! Reliability checklist, run through every receiver: the framework-agnostic
//! entry point, and over real HTTP on 127.0.0.1 the axum and actix-web
//! adapters and the tower service served by plain hyper (each when its
//! feature is on; `axum` implies `tower`). One test binary, so the suite links
//! once.
//!
//! | module | checklist |
//! |---|---|
//! | [`hostile_json`] | §2 E, J1–J16 |
//! | [`body`] | §2 D, D1–D11 |
//! | [`idempotency`] | §2 G L3, H R4–R6, R8, R9 |
//! | [`load`] | §2 G L1–L5 |
//! | [`hostile_load`] | slow and stalled clients, the answer deadline, dropped clients |
//! | [`secrets`] | §2 I S1–S3, S5 |
//! | [`allowlist`] | source allowlist: TCP peer, `X-Forwarded-For` |
//! | [`parity`] | one answer per request, whichever receiver |

#[path = "../common/http.rs"]
mod http;
#[path = "../common/receivers.rs"]
mod receivers;

mod allowlist;
mod body;
mod hostile_json;
mod hostile_load;
mod idempotency;
mod load;
mod parity;
mod secrets;
