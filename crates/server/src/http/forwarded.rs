//! How a request reached us: the client's address, and the scheme and host it used. Behind a
//! reverse proxy the connection comes from the proxy, which says what it saw in
//! `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host`. Anyone can send those
//! headers, so they are believed only from the addresses in `trusted_proxies` (none by
//! default) and ignored from everyone else.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};
use ipnet::IpNet;

use super::AppState;

static FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|network| network.contains(&address))
    }
}

/// What this server knows about the other end of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The client's address: the peer, or what trusted proxies say the peer was.
    pub client: IpAddr,
    /// The client reached us over HTTPS (our own TLS, or a trusted proxy's).
    pub https: bool,
    /// The host the client asked for, if it is a plausible host name.
    pub host: Option<String>,
}

impl Origin {
    /// Reads a request's peer and headers. `tls`: this server terminated TLS itself.
    pub fn of(
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
        proxies: &TrustedProxies,
        tls: bool,
    ) -> Self {
        // Without a peer (a request handed to the router directly, as in unit tests) nothing
        // is trusted.
        let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| {
            canonical(peer.ip())
        });
        let own_host = headers
            .get(header::HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| plausible_host(host))
            .map(str::to_owned);
        let own = Self {
            client: peer_ip,
            https: tls,
            host: own_host,
        };
        if peer.is_none() || !proxies.trusts(peer_ip) {
            return own;
        }
        // The nearest proxy appends last, so the rightmost values are the ones it vouches for;
        // anything further left may have come from the client.
        let https = match last_value(headers, &FORWARDED_PROTO) {
            Some(proto) if proto.eq_ignore_ascii_case("https") => true,
            Some(proto) if proto.eq_ignore_ascii_case("http") => false,
            _ => own.https,
        };
        let host = last_value(headers, &FORWARDED_HOST)
            .filter(|host| plausible_host(host))
            .map(str::to_owned)
            .or(own.host);
        Self {
            client: forwarded_client(headers, peer_ip, proxies),
            https,
            host,
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(app.origin(&parts.headers, &parts.extensions))
    }
}

pub fn peer(extensions: &axum::http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer)
}

/// Walks `X-Forwarded-For` from the right while the hops are trusted proxies; the first hop
/// that is not one is the client. A malformed entry ends the walk at the last good hop, so a
/// client cannot hide behind garbage.
fn forwarded_client(headers: &HeaderMap, peer: IpAddr, proxies: &TrustedProxies) -> IpAddr {
    let mut client = peer;
    let hops: Vec<&str> = values(headers, &FORWARDED_FOR).collect();
    for hop in hops.into_iter().rev() {
        let Some(address) = parse_hop(hop) else {
            break;
        };
        client = address;
        if !proxies.trusts(address) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|address| canonical(address.ip()))
}

/// The comma-separated values of every instance of a header, in order, trimmed.
fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

fn last_value<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    values(headers, name).last()
}

/// A host as it may appear in a link: letters, digits, `-.:` and the brackets of an IPv6
/// literal. Anything else (spaces, slashes, `@`) could turn a link into someone else's.
pub fn plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

/// IPv4 peers on a dual-stack socket arrive as `::ffff:a.b.c.d`; compare them as IPv4.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|net| net.parse().unwrap()).collect())
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40000))
    }

    const FORWARDED: &[(&str, &str)] = &[
        ("host", "127.0.0.1:8080"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "once.example.com"),
    ];

    #[test]
    fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
        let origin = Origin::of(
            &headers(FORWARDED),
            peer("198.51.100.1"),
            &proxies(&[]),
            false,
        );
        assert_eq!(
            origin,
            Origin {
                client: "198.51.100.1".parse().unwrap(),
                https: false,
                host: Some("127.0.0.1:8080".into()),
            }
        );
        let elsewhere = proxies(&["10.0.0.0/8"]);
        let origin = Origin::of(&headers(FORWARDED), peer("198.51.100.1"), &elsewhere, false);
        assert_eq!(origin.client, "198.51.100.1".parse::<IpAddr>().unwrap());
        assert!(!origin.https);
    }

    #[test]
    fn a_trusted_proxy_decides_client_scheme_and_host() {
        let origin = Origin::of(
            &headers(FORWARDED),
            peer("127.0.0.1"),
            &proxies(&["127.0.0.1/32"]),
            false,
        );
        assert_eq!(
            origin,
            Origin {
                client: "203.0.113.7".parse().unwrap(),
                https: true,
                host: Some("once.example.com".into()),
            }
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client wrote "6.6.6.6" itself; the edge proxy 10.0.0.2 appended the real address.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.2")]);
        let origin = Origin::of(&chain, peer("127.0.0.1"), &trusted, false);
        assert_eq!(origin.client, "203.0.113.7".parse::<IpAddr>().unwrap());
        // Split over two header lines, with ports.
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "[2001:db8::1]:443, 10.0.0.2:1234"),
        ]);
        let origin = Origin::of(&split, peer("127.0.0.1"), &trusted, false);
        assert_eq!(origin.client, "2001:db8::1".parse::<IpAddr>().unwrap());
        // Garbage stops the walk at the last hop a trusted proxy vouched for.
        let garbage = headers(&[("x-forwarded-for", "203.0.113.7, not-an-address, 10.0.0.2")]);
        let origin = Origin::of(&garbage, peer("127.0.0.1"), &trusted, false);
        assert_eq!(origin.client, "10.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn odd_forwarded_values_fall_back_to_what_the_connection_says() {
        let trusted = proxies(&["::1/128", "127.0.0.1/32"]);
        let odd = headers(&[
            ("host", "localhost:8080"),
            ("x-forwarded-proto", "gopher"),
            ("x-forwarded-host", "evil.example/path"),
        ]);
        let origin = Origin::of(&odd, peer("::ffff:127.0.0.1"), &trusted, true);
        assert_eq!(
            origin,
            Origin {
                client: "127.0.0.1".parse().unwrap(),
                https: true,
                host: Some("localhost:8080".into()),
            }
        );
        // The rightmost protocol is the nearest proxy's.
        let both = headers(&[("x-forwarded-proto", "https, http")]);
        assert!(!Origin::of(&both, peer("::1"), &trusted, false).https);
    }

    #[test]
    fn without_a_peer_nothing_is_trusted() {
        let everyone = proxies(&["0.0.0.0/0", "::/0"]);
        let origin = Origin::of(&headers(FORWARDED), None, &everyone, false);
        assert!(!origin.https);
        assert_eq!(origin.host.as_deref(), Some("127.0.0.1:8080"));
    }
}
