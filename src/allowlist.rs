//! Source-address allowlist: which peers may deliver webhooks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;

/// The one documented address Retell sends webhooks from: `100.20.5.228`.
pub const RETELL_SOURCE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(100, 20, 5, 228));

/// A single address or a CIDR block, e.g. `10.0.0.0/8` or `2001:db8::/32`.
///
/// IPv4 clients are matched as IPv4, whether they connected over IPv4 or as
/// an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`). So:
///
/// * an IPv4-mapped block of prefix 97 to 128 is exactly the IPv4 block it
///   maps: `::ffff:10.0.0.0/104` is `10.0.0.0/8`;
/// * `::ffff:0:0/96`, every mapped address, is refused
///   ([`IpRangeParseError::AllIpv4`]): it would be every IPv4 address, which
///   for a trusted proxy lets any client write its own `X-Forwarded-For`.
///   Write `0.0.0.0/0` when every IPv4 address is meant;
/// * any other IPv6 block, even one that contains `::ffff:0:0/96` (`::/0`),
///   matches IPv6 clients only.
///
/// ```
/// use retell_webhooks::receiver::{IpRange, IpRangeParseError};
///
/// assert_eq!("::ffff:10.0.0.0/104".parse::<IpRange>()?, "10.0.0.0/8".parse()?);
/// assert_eq!("::ffff:0:0/96".parse::<IpRange>(), Err(IpRangeParseError::AllIpv4));
/// assert!(!"::/0".parse::<IpRange>()?.contains("10.1.2.3".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    pub(crate) network: IpAddr,
    pub(crate) prefix: u8,
}

impl IpRange {
    /// A block of `prefix` leading bits; host bits are cleared.
    ///
    /// # Errors
    ///
    /// [`IpRangeParseError::Invalid`] when `prefix` is longer than the address
    /// (32 for IPv4, 128 for IPv6); [`IpRangeParseError::AllIpv4`] for an
    /// IPv4-mapped block of prefix 96 (see [`IpRange`]).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, IpRangeParseError> {
        let (addr, prefix) = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(_) if prefix == 96 => return Err(IpRangeParseError::AllIpv4),
                Some(v4) if prefix > 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (addr, prefix),
            },
            IpAddr::V4(_) => (addr, prefix),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(IpRangeParseError::Invalid);
        }
        Ok(Self {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `addr` is inside the block (IPv4-mapped IPv6 addresses count as
    /// IPv4).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        addr.is_ipv4() == self.network.is_ipv4() && mask(addr, self.prefix) == self.network
    }
}

impl From<IpAddr> for IpRange {
    fn from(addr: IpAddr) -> Self {
        let addr = addr.to_canonical();
        let prefix = if addr.is_ipv4() { 32 } else { 128 };
        Self {
            network: addr,
            prefix,
        }
    }
}

/// Error from parsing or building an [`IpRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpRangeParseError {
    /// Not an address, or a prefix longer than the address.
    #[error("invalid IP address or CIDR block (expected e.g. `100.20.5.228` or `10.0.0.0/8`)")]
    Invalid,
    /// `::ffff:0:0/96`: every IPv4-mapped address, so every IPv4 address.
    #[error(
        "an IPv4-mapped block of prefix 96 (`::ffff:0:0/96`) would match every IPv4 address; \
         write `0.0.0.0/0` if that is meant, or a longer prefix"
    )]
    AllIpv4,
}

impl FromStr for IpRange {
    type Err = IpRangeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            None => s
                .parse::<IpAddr>()
                .map(Self::from)
                .map_err(|_| IpRangeParseError::Invalid),
            Some((addr, prefix)) => {
                let addr = addr
                    .parse::<IpAddr>()
                    .map_err(|_| IpRangeParseError::Invalid)?;
                if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IpRangeParseError::Invalid);
                }
                let prefix = prefix
                    .parse::<u8>()
                    .map_err(|_| IpRangeParseError::Invalid)?;
                Self::new(addr, prefix)
            }
        }
    }
}

pub(crate) fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// Which source addresses may deliver webhooks (opt-in defence in depth; the
/// signature is always checked as well).
///
/// The client address is the TCP peer, unless the peer is one of the
/// [trusted proxies](Self::with_trusted_proxies): then `X-Forwarded-For` is read
/// from the right, skipping trusted proxies, and the first untrusted entry is the
/// client. Entries a client wrote itself sit to the left of what the proxies
/// appended, so a spoofed `X-Forwarded-For: 100.20.5.228` from an untrusted peer
/// changes nothing.
///
/// ```
/// use retell_webhooks::receiver::{IpRange, SourceAllowlist};
///
/// let proxies: IpRange = "10.0.0.0/8".parse()?;
/// let allow = SourceAllowlist::retell().with_trusted_proxies([proxies]);
/// // Direct from Retell:
/// assert!(allow.check(Some("100.20.5.228".parse()?), [] as [&[u8]; 0]).is_ok());
/// // Spoofed header from an untrusted peer:
/// assert!(allow.check(Some("127.0.0.1".parse()?), [&b"100.20.5.228"[..]]).is_err());
/// // Through a trusted load balancer:
/// assert!(allow.check(Some("10.1.2.3".parse()?), [&b"203.0.113.9, 100.20.5.228"[..]]).is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAllowlist {
    pub(crate) allowed: Vec<IpRange>,
    pub(crate) trusted_proxies: Vec<IpRange>,
}

/// Why [`SourceAllowlist::check`] refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceRejection {
    /// The adapter could not tell the TCP peer address (for axum, serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()`).
    #[error("source address unknown: the server does not report the TCP peer address")]
    PeerUnknown,
    /// An `X-Forwarded-For` entry is not an IP address.
    #[error("X-Forwarded-For from a trusted proxy has an entry that is not an IP address")]
    BadForwardedFor,
    /// The client address is not allowed.
    #[error("source address {0} is not in the allowlist")]
    NotAllowed(IpAddr),
}

impl SourceAllowlist {
    /// Allows exactly the given addresses or blocks; no trusted proxies.
    pub fn new<I>(allowed: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<IpRange>,
    {
        Self {
            allowed: allowed.into_iter().map(Into::into).collect(),
            trusted_proxies: Vec::new(),
        }
    }

    /// Allows Retell's documented address, [`RETELL_SOURCE_IP`].
    #[must_use]
    pub fn retell() -> Self {
        Self::new([RETELL_SOURCE_IP])
    }

    /// Trusts these proxies (load balancers, reverse proxies) to append the real
    /// client address to `X-Forwarded-For`.
    #[must_use]
    pub fn with_trusted_proxies<I>(mut self, proxies: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<IpRange>,
    {
        self.trusted_proxies
            .extend(proxies.into_iter().map(Into::into));
        self
    }

    /// Decides whether a request from TCP peer `peer` carrying these
    /// `X-Forwarded-For` header values (in the order received) may proceed.
    /// Returns the client address on success.
    pub fn check<'a, I>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: I,
    ) -> Result<IpAddr, SourceRejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let peer = peer.ok_or(SourceRejection::PeerUnknown)?.to_canonical();
        let client = if self.is_trusted(peer) {
            self.client_behind_proxies(peer, forwarded_for)?
        } else {
            peer
        };
        if self.allowed.iter().any(|r| r.contains(client)) {
            Ok(client)
        } else {
            Err(SourceRejection::NotAllowed(client))
        }
    }

    pub(crate) fn is_trusted(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|r| r.contains(addr))
    }

    pub(crate) fn client_behind_proxies<'a, I>(
        &self,
        peer: IpAddr,
        forwarded_for: I,
    ) -> Result<IpAddr, SourceRejection>
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut entries = Vec::new();
        for value in forwarded_for {
            for entry in value.split(|&b| b == b',') {
                entries.push(parse_forwarded_entry(entry).ok_or(SourceRejection::BadForwardedFor)?);
            }
        }
        let mut client = peer;
        for addr in entries.into_iter().rev() {
            client = addr;
            if !self.is_trusted(addr) {
                break;
            }
        }
        Ok(client)
    }
}

pub(crate) fn parse_forwarded_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(trim_ows(entry)).ok()?;
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    text.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

pub(crate) fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
