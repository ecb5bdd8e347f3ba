//! Reliability, run through every receiver: the framework-agnostic entry
//! point, and over real HTTP on 127.0.0.1 the axum and actix-web adapters and
//! the tower service served by plain hyper (each when its feature is on;
//! `axum` implies `tower`). One test binary, so the suite links once.
//!
//! | module | what |
//! |---|---|
//! | [`hostile_json`] | hostile JSON, correctly signed; JSONTestSuite |
//! | [`body`] | oversized, mis-framed and unsigned bodies; the content type |
//! | [`idempotency`] | retries, copies and duplicates with deduplication on; the wrong-key alert; unreadable verified bodies |
//! | [`load`] | many events, waiting handlers, the in-flight cap, mixed traffic, long calls |
//! | [`hostile_load`] | slow and stalled clients, the answer deadline, dropped clients |
//! | [`hostile_budget`] | forged bodies against the body budget and the places of each route |
//! | [`deadline`] | the deadline against slow parses of accepted bodies |
//! | [`secrets`] | no key, digest, header or body in any rendering; no environment bypass |
//! | [`allowlist`] | source allowlist: TCP peer, `X-Forwarded-For` |
//! | [`routes`] | the routes of one receiver do not starve each other |
//! | [`parity`] | one answer per request, whichever receiver |

#[path = "../common/forged_bodies.rs"]
mod forged_bodies;
#[path = "../common/http.rs"]
mod http;
#[path = "../common/receivers.rs"]
mod receivers;

/// The tests that load the machine on purpose (and those whose time bounds
/// it would upset) run one at a time, so each measures the receiver, not the
/// others.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

mod allowlist;
mod body;
mod deadline;
mod hostile_budget;
mod hostile_json;
mod hostile_load;
mod idempotency;
mod load;
mod parity;
mod routes;
mod secrets;
