//! Checking that a request really comes from Retell. The scheme is in the crate docs
//! (`docs/signature.md`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

type HmacSha256 = Hmac<Sha256>;

/// Name of the HTTP header that carries the signature (header names are
/// case-insensitive; Retell's docs spell it `X-Retell-Signature`).
pub const SIGNATURE_HEADER: &str = "x-retell-signature";

/// Retell's replay window: a signature is accepted when its timestamp is at most
/// this far from "now", in the past or in the future (boundary inclusive).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(300_000);

/// Longest header value (after trimming spaces and tabs) that is looked at.
/// A real header is 82 bytes; anything over this is rejected before parsing.
pub const MAX_SIGNATURE_LEN: usize = 128;

/// Most timestamp digits accepted (Retell sends 13 today).
const MAX_TIMESTAMP_DIGITS: usize = 16;

/// Length of an HMAC-SHA256 tag in bytes.
const DIGEST_LEN: usize = 32;

/// Timestamps below this (11 digits or fewer) are almost certainly seconds,
/// not milliseconds; used only to word the error.
const SECONDS_HINT_BELOW: u64 = 100_000_000_000;

/// Checks `body` against the `X-Retell-Signature` value with Retell's defaults:
/// a ±5 minute window and the system clock (where there is none, such as
/// `wasm32-unknown-unknown`, use [`Verifier::with_clock`]).
///
/// `body` must be the exact bytes of the request body as received (never a
/// re-serialized JSON value), `api_key` the Retell API key with the *webhook*
/// badge, `signature` the header value.
///
/// For several keys (rotation), a custom window or an injected clock
/// ([`Verifier::with_clock`]), build a [`Verifier`] once and reuse it.
///
/// ```
/// let body = br#"{"event":"call_ended"}"#;
/// let header = retell_webhooks::sign(body, "key_abc", 1_700_000_000_000);
/// // The system clock is far from 2023, so the window check fails:
/// let err = retell_webhooks::verify(body, "key_abc", &header).unwrap_err();
/// assert!(matches!(err, retell_webhooks::VerifyError::TooOld { .. }));
/// ```
#[must_use = "the signature is only checked if the result is inspected"]
pub fn verify(body: &[u8], api_key: &str, signature: impl AsRef<[u8]>) -> Result<(), VerifyError> {
    let verifier = Verifier::new(api_key).map_err(|_| VerifyError::InvalidKey)?;
    verifier.verify(body, signature)
}

/// Produces an `X-Retell-Signature` value for `body`, exactly as Retell does.
///
/// Useful in tests and for sending signed sample events to a local receiver.
///
/// ```
/// let header = retell_webhooks::sign(br#"{"event":"call_ended"}"#, "test-api-key", 1_700_000_000_000);
/// assert_eq!(
///     header,
///     "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e"
/// );
/// ```
#[must_use]
pub fn sign(body: &[u8], api_key: &str, timestamp_ms: u64) -> String {
    let mut digits = DecimalBuf::new();
    let digits = digits.format(timestamp_ms);
    let tag = mac_tag(&keyed(api_key.as_bytes()), body, digits);
    let mut out = String::with_capacity(2 + digits.len() + 3 + 2 * DIGEST_LEN);
    out.push_str("v=");
    out.push_str(digits_as_str(digits));
    out.push_str(",d=");
    push_hex(&mut out, &tag);
    out
}

/// A parsed `X-Retell-Signature` value: the timestamp and the 32-byte digest.
///
/// Parsing is anchored and strict: `v=<1..=16 ASCII digits, no leading zero>,d=<64
/// hex digits>`, surrounded by optional spaces or tabs, nothing else. The digest hex
/// is decoded case-insensitively.
///
/// `Debug` and `Display` show the timestamp only; the digest is never printed.
///
/// There is deliberately no `PartialEq`: digests are only ever compared in
/// constant time inside [`Verifier`], so comparing two signatures with `==` does
/// not compile:
///
/// ```compile_fail,E0369
/// use retell_webhooks::Signature;
///
/// let a: Signature = "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e".parse()?;
/// let b: Signature = "v=1700000000000,d=17024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e".parse()?;
/// let _leaky = a == b;
/// # Ok::<(), retell_webhooks::VerifyError>(())
/// ```
///
/// The same code without the comparison compiles, so the error above is the
/// missing `==` and nothing else:
///
/// ```
/// use retell_webhooks::Signature;
///
/// let a: Signature = "v=1700000000000,d=07024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e".parse()?;
/// let b: Signature = "v=1700000000000,d=17024cabe7dd8f6d1c6e4a8324ca92c812e6ad4a7ee506c04f7e462e3321823e".parse()?;
/// assert_eq!(a.timestamp_ms(), b.timestamp_ms());
/// # Ok::<(), retell_webhooks::VerifyError>(())
/// ```
#[derive(Clone)]
pub struct Signature {
    timestamp_ms: u64,
    digest: Digest,
}

/// The 32 decoded bytes of a signature digest.
///
/// It deliberately has no `PartialEq`: the only comparison is the constant-time one
/// inside [`Verifier`].
#[derive(Clone)]
struct Digest([u8; DIGEST_LEN]);

impl Signature {
    /// Parses a header value; see the type docs for the grammar.
    pub fn parse(value: &str) -> Result<Self, VerifyError> {
        Self::parse_bytes(value.as_bytes())
    }

    /// Parses a header value given as raw bytes (HTTP header values need not be
    /// UTF-8; anything outside the grammar is rejected).
    pub fn parse_bytes(value: &[u8]) -> Result<Self, VerifyError> {
        let value = trim_sp_htab(value);
        if value.is_empty() {
            return Err(VerifyError::MissingSignature);
        }
        if value.len() > MAX_SIGNATURE_LEN {
            return Err(VerifyError::SignatureTooLong { len: value.len() });
        }
        let rest = value
            .strip_prefix(b"v=")
            .ok_or(VerifyError::Malformed(Malformed::MissingTimestamp))?;
        let comma = rest
            .iter()
            .position(|&b| b == b',')
            .ok_or(VerifyError::Malformed(Malformed::MissingDigest))?;
        let (digits, rest) = rest.split_at(comma);
        let timestamp_ms = parse_timestamp(digits)?;
        let hex = rest
            .strip_prefix(b",d=")
            .ok_or(VerifyError::Malformed(Malformed::MissingDigest))?;
        let digest = parse_digest(hex)?;
        Ok(Self {
            timestamp_ms,
            digest,
        })
    }

    /// The signing time, in Unix milliseconds (the `v=` part).
    #[must_use]
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// The digest's bytes, to remember a verified signature (it is public:
    /// the client sent it).
    pub(crate) fn digest_bytes(&self) -> [u8; DIGEST_LEN] {
        self.digest.0
    }
}

impl FromStr for Signature {
    type Err = VerifyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("timestamp_ms", &self.timestamp_ms)
            .field("digest", &"[REDACTED]")
            .finish()
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v={},d=[REDACTED]", self.timestamp_ms)
    }
}

fn trim_sp_htab(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

fn parse_timestamp(digits: &[u8]) -> Result<u64, VerifyError> {
    let malformed = |why| Err(VerifyError::Malformed(why));
    match digits {
        [] => return malformed(Malformed::EmptyTimestamp),
        [b'0', _, ..] => return malformed(Malformed::TimestampLeadingZero),
        _ => {}
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return malformed(Malformed::TimestampNotDigits);
    }
    if digits.len() > MAX_TIMESTAMP_DIGITS {
        return malformed(Malformed::TimestampTooLong {
            digits: digits.len(),
        });
    }
    // At most 16 digits: cannot overflow u64, but stay checked anyway.
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(VerifyError::Malformed(Malformed::TimestampTooLong {
                digits: digits.len(),
            }))?;
    }
    Ok(value)
}

fn parse_digest(hex: &[u8]) -> Result<Digest, VerifyError> {
    if hex.len() != 2 * DIGEST_LEN {
        return Err(VerifyError::Malformed(Malformed::DigestLength {
            len: hex.len(),
        }));
    }
    let mut out = [0u8; DIGEST_LEN];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_value(*hi), hex_value(*lo)),
            _ => (None, None),
        };
        match (hi, lo) {
            (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
            _ => return Err(VerifyError::Malformed(Malformed::DigestNotHex)),
        }
    }
    Ok(Digest(out))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
}

/// Decimal rendering of a u64 without allocating.
struct DecimalBuf([u8; 20]);

impl DecimalBuf {
    fn new() -> Self {
        Self([0; 20])
    }

    fn format(&mut self, mut n: u64) -> &[u8] {
        let mut start = self.0.len();
        loop {
            start -= 1;
            // `n % 10` is a single digit, so the cast is exact.
            self.0[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &self.0[start..]
    }
}

fn digits_as_str(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or_default()
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // RFC 2104 key block: keys longer than the SHA-256 block are hashed first, then
    // zero-padded. `Mac::new_from_slice` does the same but returns a `Result` that
    // cannot fail for HMAC; building the block here keeps the code panic-free.
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let hashed = <Sha256 as sha2::Digest>::digest(key);
        block[..hashed.len()].copy_from_slice(&hashed);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as hmac::digest::KeyInit>::new(&block)
}

fn mac_tag(key: &HmacSha256, body: &[u8], timestamp_digits: &[u8]) -> [u8; DIGEST_LEN] {
    let mut mac = key.clone();
    mac.update(body);
    mac.update(timestamp_digits);
    mac.finalize().into_bytes().into()
}

/// Verifies Retell signatures with a fixed set of API keys and a replay window.
///
/// Build it once (at start-up) and share it: keying HMAC is done up front, so each
/// request costs one pass of SHA-256 over the body per key.
///
/// Several keys support rotation: a signature made with any of them passes. The
/// window defaults to [`DEFAULT_TOLERANCE`] (±5 minutes); a zero tolerance means
/// "timestamps must match now exactly", never "disabled".
///
/// The methods without `_at` ([`verify`](Self::verify),
/// [`verify_and_parse`](Self::verify_and_parse)) read the system clock, or the clock given to
/// [`with_clock`](Self::with_clock); the `_at` methods take the time as an
/// argument and read no clock at all.
///
/// Cloning is cheap (the keyed HMAC states and the clock are shared), so a
/// clone per task or per worker costs two reference counts.
///
/// `Debug` shows how many keys there are, the tolerance and whether the clock is
/// the system's or a custom one, never a key.
///
/// ```
/// use std::time::Duration;
/// use retell_webhooks::{sign, Verifier, VerifyError};
///
/// let verifier = Verifier::with_keys(["key_old", "key_new"])?
///     .with_tolerance(Duration::from_secs(60));
/// let body = br#"{"event":"call_started"}"#;
/// let now = 1_785_423_600_000;
/// verifier.verify_at(body, &sign(body, "key_old", now), now)?;
/// verifier.verify_at(body, &sign(body, "key_new", now - 60_000), now)?;
/// assert!(matches!(
///     verifier.verify_at(body, &sign(body, "key_new", now - 60_001), now),
///     Err(VerifyError::TooOld { .. })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Verifier {
    keys: Arc<[HmacSha256]>,
    tolerance_ms: u64,
    /// `None`: the system clock.
    clock: Option<Arc<ClockFn>>,
}

/// A clock returning the current time in Unix milliseconds.
type ClockFn = dyn Fn() -> u64 + Send + Sync;

impl Verifier {
    /// A verifier for one API key with the default ±5 minute window.
    pub fn new(api_key: &str) -> Result<Self, KeyError> {
        Self::with_keys([api_key])
    }

    /// A verifier that accepts signatures made with any of `api_keys`.
    ///
    /// Fails when the list is empty, or when a key is empty or has leading or
    /// trailing whitespace (almost always a copy-paste or `.env` mistake).
    pub fn with_keys<I, K>(api_keys: I) -> Result<Self, KeyError>
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let mut keys = Vec::new();
        for (index, key) in api_keys.into_iter().enumerate() {
            let key = key.as_ref();
            if key.is_empty() {
                return Err(KeyError::Empty { index });
            }
            if key.trim() != key {
                return Err(KeyError::Whitespace { index });
            }
            keys.push(keyed(key.as_bytes()));
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(Self {
            keys: keys.into(),
            tolerance_ms: duration_ms(DEFAULT_TOLERANCE),
            clock: None,
        })
    }

    /// Sets the replay window: `|now − v| ≤ tolerance` passes. Zero means an exact
    /// match is required. Windows longer than `u64::MAX` ms saturate.
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance_ms = duration_ms(tolerance);
        self
    }

    /// Replaces the system clock with `now_ms`, which returns the current time in
    /// Unix milliseconds. [`verify`](Self::verify) and the other methods without
    /// `_at` then call it once per check and never read the system clock.
    ///
    /// Needed where the standard library has no clock: on
    /// `wasm32-unknown-unknown`, `SystemTime::now()` panics, so pass the host's
    /// time (in a browser or Node.js, `Date.now()` through `js-sys`). Also handy
    /// for tests. Clones share the clock.
    ///
    /// It is the one clock of a [`Receiver`](crate::Receiver) built from this
    /// verifier: the signature window, the key-mismatch alert and the dedupe
    /// store all read it, once per request, when its head arrives.
    ///
    /// ```
    /// use retell_webhooks::{sign, Verifier, VerifyError};
    ///
    /// let verifier = Verifier::new("key_abc")?.with_clock(|| 1_785_423_600_000);
    /// let body = br#"{"event":"call_ended"}"#;
    /// verifier.verify(body, &sign(body, "key_abc", 1_785_423_600_000))?;
    /// // Six minutes old for that clock: outside the ±5 minute window.
    /// assert!(matches!(
    ///     verifier.verify(body, &sign(body, "key_abc", 1_785_423_240_000)),
    ///     Err(VerifyError::TooOld { .. })
    /// ));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_clock<F>(mut self, now_ms: F) -> Self
    where
        F: Fn() -> u64 + Send + Sync + 'static,
    {
        self.clock = Some(Arc::new(now_ms));
        self
    }

    /// The current time in Unix milliseconds, as [`verify`](Self::verify) sees
    /// it: the clock given to [`with_clock`](Self::with_clock), else the system
    /// clock ([`VerifyError::Clock`] when it is set before 1970).
    pub fn now_ms(&self) -> Result<u64, VerifyError> {
        match &self.clock {
            Some(now_ms) => Ok(now_ms()),
            None => unix_ms(SystemTime::now()),
        }
    }

    /// The replay window in use.
    #[must_use]
    pub fn tolerance(&self) -> Duration {
        Duration::from_millis(self.tolerance_ms)
    }

    /// Number of keys this verifier accepts.
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks `body` against the `X-Retell-Signature` value at the current
    /// time: the clock given to [`with_clock`](Self::with_clock), else the
    /// system clock.
    ///
    /// The header value can be given as Rust or HTTP libraries hand it out: a
    /// `&str`, a `String`, raw bytes, or an `http::HeaderValue`.
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify(&self, body: &[u8], signature: impl AsRef<[u8]>) -> Result<(), VerifyError> {
        let now_ms = self.now_ms()?;
        self.verify_at(body, signature, now_ms)
    }

    /// Checks `body` against the header value as if the time were `now_ms`
    /// (Unix milliseconds). No clock is read, not even one given to
    /// [`with_clock`](Self::with_clock).
    #[must_use = "the signature is only checked if the result is inspected"]
    pub fn verify_at(
        &self,
        body: &[u8],
        signature: impl AsRef<[u8]>,
        now_ms: u64,
    ) -> Result<(), VerifyError> {
        let signature = Signature::parse_bytes(signature.as_ref())?;
        self.check_window(signature.timestamp_ms, now_ms)?;
        self.check_digest(body, &signature)
    }

    /// Whether the digest matches for some key, ignoring the timestamp window.
    ///
    /// Only for diagnosis (the CLI uses it to tell "stale" from "wrong key"); a
    /// request must always go through one of the `verify` methods.
    #[must_use]
    pub fn digest_matches(&self, body: &[u8], signature: &Signature) -> bool {
        let mut digits = DecimalBuf::new();
        let digits = digits.format(signature.timestamp_ms);
        let mut matched = Choice::from(0);
        for key in self.keys.iter() {
            let tag = mac_tag(key, body, digits);
            matched |= tag.ct_eq(&signature.digest.0);
        }
        matched.into()
    }

    /// The digest half of a check, once the window has been checked: the MAC
    /// of every key, compared in constant time (the loop does not stop early).
    pub(crate) fn check_digest(
        &self,
        body: &[u8],
        signature: &Signature,
    ) -> Result<(), VerifyError> {
        if self.digest_matches(body, signature) {
            Ok(())
        } else {
            Err(VerifyError::Mismatch)
        }
    }

    /// The window half of a check: `|now − v| ≤ tolerance`.
    pub(crate) fn check_window(&self, timestamp_ms: u64, now_ms: u64) -> Result<(), VerifyError> {
        let skew_ms = now_ms.abs_diff(timestamp_ms);
        if skew_ms <= self.tolerance_ms {
            return Ok(());
        }
        if timestamp_ms < now_ms {
            Err(VerifyError::TooOld {
                skew_ms,
                tolerance_ms: self.tolerance_ms,
                looks_like_seconds: timestamp_ms < SECONDS_HINT_BELOW,
            })
        } else {
            Err(VerifyError::TooNew {
                skew_ms,
                tolerance_ms: self.tolerance_ms,
            })
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &format_args!("[REDACTED; {}]", self.keys.len()))
            .field("tolerance_ms", &self.tolerance_ms)
            .field(
                "clock",
                &format_args!(
                    "{}",
                    if self.clock.is_some() {
                        "custom"
                    } else {
                        "system"
                    }
                ),
            )
            .finish()
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds since the Unix epoch for `time`; an error (not a panic) for a
/// clock set before 1970.
pub fn unix_ms(time: SystemTime) -> Result<u64, VerifyError> {
    let since = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| VerifyError::Clock)?;
    Ok(duration_ms(since))
}

/// Why a signature was rejected.
///
/// Messages say what to fix; none contains the API key, the expected digest or the
/// body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The `X-Retell-Signature` header is absent or empty.
    #[error(
        "missing X-Retell-Signature header: the request was not signed by Retell (or a proxy dropped the header)"
    )]
    MissingSignature,
    /// The header was sent more than once.
    #[error("X-Retell-Signature header sent more than once; Retell sends exactly one")]
    DuplicateSignature,
    /// The header value is longer than [`MAX_SIGNATURE_LEN`].
    #[error(
        "X-Retell-Signature value is {len} bytes, over the {MAX_SIGNATURE_LEN}-byte limit; expected `v=<unix ms>,d=<64 hex>`"
    )]
    SignatureTooLong {
        /// Length of the trimmed value in bytes.
        len: usize,
    },
    /// The header value does not follow `v=<unix ms>,d=<64 hex>`.
    #[error("malformed X-Retell-Signature: {0}; expected `v=<unix ms>,d=<64 hex>`")]
    Malformed(Malformed),
    /// The signature is older than the window allows.
    #[error(
        "signature timestamp is {skew_ms} ms in the past, outside the ±{tolerance_ms} ms window{}",
        if *looks_like_seconds {
            " (the timestamp looks like seconds; Retell's `v=` is Unix milliseconds)"
        } else {
            ": a replayed or long-delayed request, or this machine's clock is wrong (check NTP)"
        }
    )]
    TooOld {
        /// How far in the past the timestamp is, in ms.
        skew_ms: u64,
        /// The window in use, in ms.
        tolerance_ms: u64,
        /// The timestamp has 11 digits or fewer, i.e. it is probably seconds.
        looks_like_seconds: bool,
    },
    /// The signature is dated further in the future than the window allows.
    #[error(
        "signature timestamp is {skew_ms} ms in the future, outside the ±{tolerance_ms} ms window: this machine's clock is probably behind (check NTP)"
    )]
    TooNew {
        /// How far in the future the timestamp is, in ms.
        skew_ms: u64,
        /// The window in use, in ms.
        tolerance_ms: u64,
    },
    /// The signature was accepted before on this route, within its window:
    /// a replayed request (only with
    /// [`ReceiverConfig::with_function_replay_guard`](crate::ReceiverConfig::with_function_replay_guard)).
    #[error(
        "signature already accepted on this route within its window: a replayed request (Retell signs the body and timestamp only)"
    )]
    Replayed,
    /// The digest does not match the body for any configured key.
    #[error(
        "signature digest does not match: verify the raw request body exactly as received (not re-serialized JSON) with the Retell API key that has the webhook badge"
    )]
    Mismatch,
    /// The system clock is before the Unix epoch.
    #[error("system clock is set before 1970; cannot check the signature window")]
    Clock,
    /// The API key given to [`verify()`] is empty or has surrounding whitespace.
    #[error("invalid API key: it is empty or has leading/trailing whitespace")]
    InvalidKey,
}

/// Which part of a signature header is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The value does not start with `v=`.
    #[error("it does not start with `v=`")]
    MissingTimestamp,
    /// `v=` is empty.
    #[error("the timestamp after `v=` is empty")]
    EmptyTimestamp,
    /// The timestamp has a character other than an ASCII digit.
    #[error("the timestamp after `v=` is not made of ASCII digits only")]
    TimestampNotDigits,
    /// The timestamp starts with `0`.
    #[error("the timestamp after `v=` has a leading zero")]
    TimestampLeadingZero,
    /// The timestamp has more than 16 digits.
    #[error("the timestamp after `v=` has {digits} digits (at most 16)")]
    TimestampTooLong {
        /// Number of digits seen.
        digits: usize,
    },
    /// No `,d=` follows the timestamp.
    #[error("`,d=<digest>` does not follow the timestamp")]
    MissingDigest,
    /// The digest is not 64 characters.
    #[error("the digest after `d=` has {len} characters (expected 64 hex digits)")]
    DigestLength {
        /// Number of characters seen.
        len: usize,
    },
    /// The digest has a character that is not a hex digit.
    #[error("the digest after `d=` is not hexadecimal")]
    DigestNotHex,
}

impl VerifyError {
    /// A short name of the failure's kind, from a closed set (`missing`,
    /// `mismatch`, `too_old`, …): a metric label, never a value from the
    /// request.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing",
            Self::DuplicateSignature => "duplicate",
            Self::SignatureTooLong { .. } => "too_long",
            Self::Malformed(part) => part.kind(),
            Self::TooOld { .. } => "too_old",
            Self::TooNew { .. } => "too_new",
            Self::Mismatch => "mismatch",
            Self::Replayed => "replayed",
            Self::Clock => "clock",
            Self::InvalidKey => "invalid_key",
        }
    }
}

impl Malformed {
    /// `malformed_timestamp` or `malformed_digest`: which half of the header
    /// is broken (see [`VerifyError::kind`]).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Self::MissingTimestamp
            | Self::EmptyTimestamp
            | Self::TimestampNotDigits
            | Self::TimestampLeadingZero
            | Self::TimestampTooLong { .. } => "malformed_timestamp",
            Self::MissingDigest | Self::DigestLength { .. } | Self::DigestNotHex => {
                "malformed_digest"
            }
        }
    }
}

/// Why a [`Verifier`] could not be built. Never contains the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key was given.
    #[error("no API key given; pass the Retell API key that has the webhook badge")]
    NoKeys,
    /// A key is the empty string.
    #[error("API key #{index} is empty")]
    Empty {
        /// Position of the key in the list (0-based).
        index: usize,
    },
    /// A key has leading or trailing whitespace.
    #[error(
        "API key #{index} has leading or trailing whitespace (a newline from a file or environment variable?)"
    )]
    Whitespace {
        /// Position of the key in the list (0-based).
        index: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_buf_renders_edges() {
        let mut b = DecimalBuf::new();
        assert_eq!(b.format(0), b"0");
        let mut b = DecimalBuf::new();
        assert_eq!(b.format(u64::MAX), u64::MAX.to_string().as_bytes());
    }

    #[test]
    fn github_vector_through_internal_hmac() {
        // The HMAC wiring against GitHub's published vector.
        let tag = mac_tag(&keyed(b"It's a Secret to Everybody"), b"Hello, ", b"World!");
        let mut hex = String::new();
        push_hex(&mut hex, &tag);
        assert_eq!(
            hex,
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn error_kinds_are_short_snake_case_labels() {
        let errors = [
            VerifyError::MissingSignature,
            VerifyError::DuplicateSignature,
            VerifyError::SignatureTooLong { len: 300 },
            VerifyError::Malformed(Malformed::TimestampLeadingZero),
            VerifyError::Malformed(Malformed::DigestNotHex),
            VerifyError::TooOld {
                skew_ms: 1,
                tolerance_ms: 0,
                looks_like_seconds: false,
            },
            VerifyError::TooNew {
                skew_ms: 1,
                tolerance_ms: 0,
            },
            VerifyError::Mismatch,
            VerifyError::Clock,
            VerifyError::InvalidKey,
        ];
        let kinds: Vec<_> = errors.iter().map(VerifyError::kind).collect();
        for kind in &kinds {
            assert!(kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let mut unique = kinds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), kinds.len(), "{kinds:?}");
        assert_eq!(
            Malformed::TimestampTooLong { digits: 17 }.kind(),
            "malformed_timestamp"
        );
        assert_eq!(
            Malformed::DigestLength { len: 3 }.kind(),
            "malformed_digest"
        );
    }
}
