//! The source allowlist through every receiver: each one knows the TCP peer
//! (127.0.0.1; the entry point is given it, axum reads `ConnectInfo`, actix-web
//! the connection, the tower service the `SocketAddr` the server puts in the
//! request extensions), reads `X-Forwarded-For` only from a trusted proxy, and
//! still requires the signature.

use std::net::{IpAddr, Ipv4Addr};

use retell_webhooks::{
    ReceiverConfig,
    receiver::{IpRange, Reason, SourceAllowlist, SourceRejection},
};

use crate::http::Framing;
use crate::receivers::{Behaviour, Probe, Receiver, all_vias, config, signature};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const OTHER: &str = "203.0.113.9";

fn loopback() -> IpRange {
    "127.0.0.0/8".parse().unwrap()
}

fn body() -> Vec<u8> {
    br#"{"event":"call_ended","call":{"call_id":"call_source"}}"#.to_vec()
}

/// One request: its `X-Forwarded-For` header lines, whether it is signed, the
/// expected status and the reason its outcome gives.
struct Case {
    what: &'static str,
    forwarded_for: &'static [&'static str],
    signed: bool,
    status: u16,
    reason: Reason,
}

fn case(
    what: &'static str,
    forwarded_for: &'static [&'static str],
    signed: bool,
    status: u16,
    reason: Reason,
) -> Case {
    Case {
        what,
        forwarded_for,
        signed,
        status,
        reason,
    }
}

/// Runs `cases` through every receiver, each with a fresh probe and a copy of
/// `config`: the statuses, the recorded reasons, and exactly the `204`
/// requests reach the handler.
async fn run(config: ReceiverConfig, cases: &[Case]) {
    let body = body();
    let sig = signature(&body);
    let handled = cases.iter().filter(|c| c.status == 204).count();
    for via in all_vias() {
        let r = Receiver::start(via, Probe::new(Behaviour::Ok), config.clone()).await;
        for case in cases {
            let mut headers: Vec<(&str, &str)> = case
                .forwarded_for
                .iter()
                .map(|v| ("X-Forwarded-For", *v))
                .collect();
            if case.signed {
                headers.push(("X-Retell-Signature", sig.as_str()));
            }
            let reply = r.send("POST", &headers, &body, Framing::Length).await;
            assert_eq!(
                reply.status,
                case.status,
                "{} via {via}: {}",
                case.what,
                String::from_utf8_lossy(&reply.body)
            );
        }
        let reasons: Vec<Reason> = r.outcomes().into_iter().map(|o| o.reason).collect();
        let expected: Vec<Reason> = cases.iter().map(|c| c.reason.clone()).collect();
        assert_eq!(reasons, expected, "via {via}");
        assert_eq!(r.probe.calls(), handled, "via {via}");
    }
}

/// An allowlist of the loopback block lets a direct request in: the peer is
/// known (an unknown peer would be `403` `PeerUnknown`).
#[tokio::test]
async fn the_tcp_peer_is_known_to_every_receiver() {
    let config = config().with_source_allowlist(SourceAllowlist::new([loopback()]));
    run(
        config,
        &[
            case("direct", &[], true, 204, Reason::Handled),
            // Not a trusted proxy: the header is ignored, the peer counts.
            case("forwarded", &[OTHER], true, 204, Reason::Handled),
        ],
    )
    .await;
}

/// Retell's address only, no trusted proxies: a spoofed `X-Forwarded-For` from
/// 127.0.0.1 changes nothing.
#[tokio::test]
async fn a_spoofed_forwarded_for_is_ignored() {
    let not_allowed = Reason::Forbidden(SourceRejection::NotAllowed(LOOPBACK));
    let config = config().with_source_allowlist(SourceAllowlist::retell());
    run(
        config,
        &[
            case("direct", &[], true, 403, not_allowed.clone()),
            case("spoofed", &["100.20.5.228"], true, 403, not_allowed),
        ],
    )
    .await;
}

/// Behind a trusted proxy on 127.0.0.1 the rightmost untrusted
/// `X-Forwarded-For` entry is the client, across repeated header lines in the
/// order received; the signature is still required.
#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let other: IpAddr = OTHER.parse().unwrap();
    let config = config()
        .with_source_allowlist(SourceAllowlist::retell().with_trusted_proxies([loopback()]));
    run(
        config,
        &[
            case("from Retell", &["100.20.5.228"], true, 204, Reason::Handled),
            case(
                "client-written entry left of Retell",
                &["203.0.113.9, 100.20.5.228"],
                true,
                204,
                Reason::Handled,
            ),
            case(
                "two header lines, Retell last",
                &[OTHER, "100.20.5.228"],
                true,
                204,
                Reason::Handled,
            ),
            case(
                "two header lines, Retell first",
                &["100.20.5.228", OTHER],
                true,
                403,
                Reason::Forbidden(SourceRejection::NotAllowed(other)),
            ),
            case(
                "no header: the proxy itself",
                &[],
                true,
                403,
                Reason::Forbidden(SourceRejection::NotAllowed(LOOPBACK)),
            ),
            case(
                "not an address",
                &["not-an-ip"],
                true,
                403,
                Reason::Forbidden(SourceRejection::BadForwardedFor),
            ),
            case(
                "unsigned",
                &["100.20.5.228"],
                false,
                401,
                Reason::Unauthorized(retell_webhooks::VerifyError::MissingSignature),
            ),
        ],
    )
    .await;
}
