//! Conversions from and to the `http` crate's types (feature `http`), so any
//! stack built on `http` 1.x needs no header names and no status mapping.

use ::http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use ::http::request::Parts;
use ::http::{Response, StatusCode};

use super::{Dispatched, RawRequest};
use crate::signature::SIGNATURE_HEADER;

/// The header a reverse proxy appends the client address to; read only when
/// the TCP peer is one of the allowlist's trusted proxies.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

impl<'a> RawRequest<'a> {
    /// The head of an `http` request: method, `X-Retell-Signature`,
    /// `Content-Encoding`, `Content-Length` and `X-Forwarded-For`. The peer
    /// address is taken from a [`std::net::SocketAddr`] in the request's
    /// extensions when the server put one there (set it with
    /// [`with_peer`](Self::with_peer) otherwise); add the body with
    /// [`with_body`](Self::with_body) once read.
    #[must_use]
    pub fn from_http_parts(parts: &'a Parts) -> Self {
        let peer = parts
            .extensions
            .get::<std::net::SocketAddr>()
            .map(std::net::SocketAddr::ip);
        Self::from_http_headers(parts.method.as_str(), &parts.headers)
            .with_peer(peer)
            .with_query(parts.uri.query().unwrap_or(""))
    }

    /// Like [`from_http_parts`](Self::from_http_parts), from a method and a
    /// header map.
    #[must_use]
    pub fn from_http_headers(method: &'a str, headers: &'a HeaderMap) -> Self {
        Self::new(method, &[])
            .signature_values(
                headers
                    .get_all(SIGNATURE_HEADER)
                    .iter()
                    .map(HeaderValue::as_bytes),
            )
            .content_encoding_values(
                headers
                    .get_all(CONTENT_ENCODING)
                    .iter()
                    .map(HeaderValue::as_bytes),
            )
            .forwarded_for_values(
                headers
                    .get_all(X_FORWARDED_FOR)
                    .iter()
                    .map(HeaderValue::as_bytes),
            )
            .content_length_values(
                headers
                    .get_all(CONTENT_LENGTH)
                    .iter()
                    .map(HeaderValue::as_bytes),
            )
    }
}

impl Dispatched {
    /// The response as an `http::Response`, with the [`Outcome`](super::Outcome)
    /// in its extensions for a logging layer. `B` is any body type that can be
    /// built from the bytes (`String`, `Vec<u8>`, `Full<Bytes>`, axum's `Body`…).
    pub fn into_http_response<B: From<Vec<u8>>>(self) -> Response<B> {
        let Dispatched { response, outcome } = self;
        let status =
            StatusCode::from_u16(response.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers: Vec<_> = response.headers().collect();
        let mut out = Response::new(B::from(response.into_body()));
        *out.status_mut() = status;
        for (name, value) in headers {
            let name = match name {
                "content-type" => CONTENT_TYPE,
                "allow" => ::http::header::ALLOW,
                // hyper closes the connection once this response is sent.
                "connection" => ::http::header::CONNECTION,
                _ => continue,
            };
            out.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        out.extensions_mut().insert(outcome);
        out
    }
}
