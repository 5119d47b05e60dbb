//! The request guard: every request passes three checks, in this order, before any route sees
//! it — its `Host` names this API, its `Origin` (if any) is this API's own, and it carries the
//! bearer token. Each refusal says which check failed and why.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use axum::http::{HeaderMap, StatusCode, Uri, header};

use crate::datadir::MIN_API_TOKEN_DIGITS;

/// The names every API answers to, besides those given with `cue node --api-host`.
pub const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// A name a request may give as its `Host` (and in its `Origin`): a DNS name (lowercase), an
/// IPv4 address, or an IPv6 address in brackets, in their canonical forms; never a port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostName(String);

/// Why a string is not a [`HostName`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostNameError {
    /// It has a port; the API's own port is implied.
    #[error("{0:?}: give the name without a port (the API's own port is implied)")]
    HasPort(String),
    /// It is neither a DNS name nor an IP address.
    #[error("{0:?} is not a host name (letters, digits, hyphens and dots) nor an IP address")]
    Invalid(String),
}

impl HostName {
    /// The name as requests give it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HostName {
    type Err = HostNameError;

    /// `cue.example`, `Node-1.local`, `10.0.0.5`, `[fd00::1]` or `fd00::1`; not `name:port`.
    fn from_str(text: &str) -> Result<HostName, HostNameError> {
        if let Ok(ip) = text.parse::<Ipv6Addr>() {
            return Ok(HostName(format!("[{ip}]")));
        }
        match split_authority(text) {
            Some((host, None)) => Ok(host),
            Some((_, Some(_))) => Err(HostNameError::HasPort(text.to_owned())),
            None => Err(HostNameError::Invalid(text.to_owned())),
        }
    }
}

/// `host[:port]` (a `Host` header, an origin's authority) as its canonical host name and port;
/// `None` when it is neither a DNS name nor an IP address, or its port is not a number.
fn split_authority(authority: &str) -> Option<(HostName, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let ip = ip.parse::<Ipv6Addr>().ok()?;
        (format!("[{ip}]"), after)
    } else {
        let (name, after) = match authority.find(':') {
            Some(colon) => authority.split_at(colon),
            None => (authority, ""),
        };
        (canonical_name(name)?, after)
    };
    let port = match port {
        "" => None,
        port => Some(parse_port(port.strip_prefix(':')?)?),
    };
    Some((HostName(host), port))
}

/// Decimal digits only (`u16::from_str` would take a leading `+`).
fn parse_port(digits: &str) -> Option<u16> {
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
}

/// An IPv4 address in its usual form, or a DNS name lowercased: labels of 1 to 63 letters,
/// digits and hyphens (not at either end), 253 characters at most, no trailing dot.
fn canonical_name(name: &str) -> Option<String> {
    if let Ok(ip) = name.parse::<Ipv4Addr>() {
        return Some(ip.to_string());
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (name.len() <= 253 && name.split('.').all(label_ok)).then(|| name.to_ascii_lowercase())
}

/// What the guard checks requests against.
pub struct Guard {
    /// The names a request may give: [`LOOPBACK_HOSTS`] and the configured ones.
    hosts: Vec<HostName>,
    /// The port the API listens on: a `Host` with another port, or an `Origin` with another
    /// port, is refused.
    port: u16,
    /// The bearer token (see `DataDir::api_token`); one shorter than
    /// [`MIN_API_TOKEN_DIGITS`] matches nothing.
    token: String,
}

/// Why the guard refused a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The `Host` (or the request target's authority) is not a name of this API.
    Host(String),
    /// The `Origin` is not this API's own.
    Origin(String),
    /// No bearer token, or the wrong one.
    Token,
    /// The node has no usable token to compare with (never, if `DataDir::api_token` did its
    /// job; refused all the same).
    NoToken,
}

impl Guard {
    /// A guard for an API on `port` that also answers to `extra_hosts`, with `token`.
    pub fn new(port: u16, extra_hosts: &[HostName], token: &str) -> Guard {
        let mut hosts: Vec<HostName> = LOOPBACK_HOSTS.iter().map(|h| HostName((*h).to_owned())).collect();
        for host in extra_hosts {
            if !hosts.contains(host) {
                hosts.push(host.clone());
            }
        }
        Guard { hosts, port, token: token.to_owned() }
    }

    /// Checks a request's head: `Host`, then `Origin`, then the token.
    pub fn admit(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(uri, headers)?;
        self.check_origin(headers)?;
        self.check_token(headers)
    }

    /// Exactly one `Host`, naming this API (with its port or none); and if the request target
    /// is absolute (`GET http://name/...`), its authority too.
    fn check_host(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut values = headers.get_all(header::HOST).iter();
        let host = match (values.next(), values.next()) {
            (Some(host), None) => host.to_str().unwrap_or("(not text)"),
            (None, _) => return Err(Refusal::Host("the request has no Host header".into())),
            (Some(_), Some(_)) => {
                return Err(Refusal::Host("the request has more than one Host header".into()));
            }
        };
        let names_this_api = |authority: &str| {
            split_authority(authority)
                .is_some_and(|(name, port)| self.hosts.contains(&name) && port.is_none_or(|p| p == self.port))
        };
        for authority in std::iter::once(host).chain(uri.authority().map(|a| a.as_str())) {
            if !names_this_api(authority) {
                return Err(Refusal::Host(format!(
                    "Host {authority:?} is not a name of this API: it answers to {} on port {}, and to \
                     the names given with `cue node --api-host NAME` (a page under another name is refused, \
                     against DNS rebinding)",
                    self.names(),
                    self.port
                )));
            }
        }
        Ok(())
    }

    /// Checks a request for one of the dashboard's files: `Host`, then `Origin`, and no token
    /// (a browser's navigation cannot carry one; the files are the same in every node and hold
    /// no secret, the page asks for the token before it calls any route).
    pub fn admit_page(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_host(uri, headers)?;
        self.check_origin(headers)
    }

    /// No `Origin`, or `http://` + one of this API's names + its port: a web page elsewhere
    /// may not call it, whatever the method.
    fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        let origin = origin.to_str().unwrap_or("(not text)");
        let own = origin
            .strip_prefix("http://")
            .and_then(split_authority)
            .is_some_and(|(name, port)| self.hosts.contains(&name) && port.unwrap_or(80) == self.port);
        if own {
            return Ok(());
        }
        Err(Refusal::Origin(format!(
            "a request from the web page at {origin:?} is refused: only this API's own origin \
             (http://NAME:{} for NAME in {}) may call it",
            self.port,
            self.names()
        )))
    }

    /// `Authorization: Bearer <token>`, compared in constant time; nothing matches a token
    /// shorter than [`MIN_API_TOKEN_DIGITS`].
    fn check_token(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        if self.token.len() < MIN_API_TOKEN_DIGITS {
            return Err(Refusal::NoToken);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), self.token.as_bytes()) { Ok(()) } else { Err(Refusal::Token) }
    }

    fn names(&self) -> String {
        self.hosts.iter().map(HostName::as_str).collect::<Vec<_>>().join(", ")
    }
}

impl Refusal {
    /// The status and the stable kind it is answered with.
    pub fn status_and_kind(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::Host(_) => (StatusCode::MISDIRECTED_REQUEST, "misdirected"),
            Refusal::Origin(_) => (StatusCode::FORBIDDEN, "cross-origin"),
            Refusal::Token => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Refusal::NoToken => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Host(message) | Refusal::Origin(message) => f.write_str(message),
            Refusal::Token => f.write_str("missing or wrong bearer token (see <data-dir>/api.token)"),
            Refusal::NoToken => {
                f.write_str("this node has no usable API token, so it serves nobody; restart `cue node`")
            }
        }
    }
}

/// Whether `a == b`, in a time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn head(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name, value.parse().expect("a header value"));
        }
        headers
    }

    fn guard() -> Guard {
        Guard::new(4000, &["Cue.Example".parse().expect("a name")], TOKEN)
    }

    fn admit(headers: &[(header::HeaderName, &str)]) -> Result<(), Refusal> {
        guard().admit(&Uri::from_static("/v1/status"), &head(headers))
    }

    #[test]
    fn host_names_take_a_canonical_form_and_never_a_port() {
        for (given, canonical) in [
            ("Cue.Example", "cue.example"),
            ("10.0.0.5", "10.0.0.5"),
            ("fd00::1", "[fd00::1]"),
            ("[FD00:0::1]", "[fd00::1]"),
        ] {
            assert_eq!(given.parse::<HostName>().map(|h| h.to_string()), Ok(canonical.to_owned()));
        }
        assert!(matches!("localhost:80".parse::<HostName>(), Err(HostNameError::HasPort(_))));
        for invalid in ["", "a..b", "name.", "-a", "a b", "http://a", "a/b", "[::1", "a:+80"] {
            assert!(invalid.parse::<HostName>().is_err(), "{invalid:?}");
        }
    }

    #[test]
    fn loopback_and_configured_hosts_pass_with_the_api_port_or_none() {
        let bearer = format!("Bearer {TOKEN}");
        for host in
            ["localhost", "LOCALHOST:4000", "127.0.0.1:4000", "[::1]", "[0:0::1]:4000", "cue.example:4000"]
        {
            assert_eq!(admit(&[(header::HOST, host), (header::AUTHORIZATION, &bearer)]), Ok(()), "{host}");
        }
    }

    #[test]
    fn foreign_hosts_other_ports_and_missing_or_doubled_hosts_are_misdirected() {
        let bearer = format!("Bearer {TOKEN}");
        for host in ["evil.example", "localhost:4001", "127.0.0.2:4000", "localhost.", "127.1", "localhost:"]
        {
            let refused = admit(&[(header::HOST, host), (header::AUTHORIZATION, &bearer)]);
            assert!(
                matches!(&refused, Err(Refusal::Host(m)) if m.contains("not a name of this API")),
                "{host}"
            );
        }
        assert!(matches!(admit(&[(header::AUTHORIZATION, &bearer)]), Err(Refusal::Host(_))));
        let doubled =
            [(header::HOST, "localhost"), (header::HOST, "localhost"), (header::AUTHORIZATION, &bearer)];
        assert!(matches!(admit(&doubled), Err(Refusal::Host(_))));
        let absolute = Uri::from_static("http://evil.example/v1/status");
        let refused =
            guard().admit(&absolute, &head(&[(header::HOST, "localhost"), (header::AUTHORIZATION, &bearer)]));
        assert!(matches!(refused, Err(Refusal::Host(m)) if m.contains("evil.example")));
    }

    #[test]
    fn only_the_api_own_origin_may_call_it() {
        let bearer = format!("Bearer {TOKEN}");
        for origin in
            ["http://localhost:4000", "http://127.0.0.1:4000", "http://[::1]:4000", "http://cue.example:4000"]
        {
            let request = [
                (header::HOST, "localhost:4000"),
                (header::ORIGIN, origin),
                (header::AUTHORIZATION, &bearer),
            ];
            assert_eq!(admit(&request), Ok(()), "{origin}");
        }
        for origin in [
            "https://evil.example",
            "http://localhost:4001",
            "http://localhost",
            "https://localhost:4000",
            "null",
            "http://localhost:4000/",
        ] {
            let request = [
                (header::HOST, "localhost:4000"),
                (header::ORIGIN, origin),
                (header::AUTHORIZATION, &bearer),
            ];
            assert!(matches!(admit(&request), Err(Refusal::Origin(_))), "{origin}");
        }
    }

    #[test]
    fn host_is_checked_before_origin_and_origin_before_the_token() {
        let foreign = [(header::HOST, "evil.example"), (header::ORIGIN, "http://evil.example")];
        assert!(matches!(admit(&foreign), Err(Refusal::Host(_))));
        assert!(matches!(
            admit(&[(header::HOST, "localhost"), (header::ORIGIN, "http://evil.example")]),
            Err(Refusal::Origin(_))
        ));
        assert_eq!(admit(&[(header::HOST, "localhost")]), Err(Refusal::Token));
    }

    #[test]
    fn a_dashboard_file_needs_no_token_but_the_api_host_and_own_origin() {
        let page = |headers: &[(header::HeaderName, &str)]| {
            guard().admit_page(&Uri::from_static("/"), &head(headers))
        };
        assert_eq!(page(&[(header::HOST, "localhost:4000")]), Ok(()));
        assert_eq!(
            page(&[(header::HOST, "127.0.0.1:4000"), (header::ORIGIN, "http://127.0.0.1:4000")]),
            Ok(())
        );
        assert!(matches!(page(&[(header::HOST, "evil.example")]), Err(Refusal::Host(_))));
        assert!(matches!(
            page(&[(header::HOST, "localhost:4000"), (header::ORIGIN, "http://evil.example")]),
            Err(Refusal::Origin(_))
        ));
    }

    #[test]
    fn a_wrong_token_of_any_length_is_refused() {
        for given in ["", "Bearer ", "Bearer 0123", &format!("Bearer {TOKEN}0"), &format!("bearer {TOKEN}")] {
            let request = [(header::HOST, "localhost"), (header::AUTHORIZATION, given)];
            assert_eq!(admit(&request), Err(Refusal::Token), "{given:?}");
        }
    }

    #[test]
    fn an_empty_or_short_configured_token_lets_nobody_in_not_even_an_empty_bearer() {
        for configured in ["", "abc"] {
            let guard = Guard::new(4000, &[], configured);
            for given in ["Bearer ", "", &format!("Bearer {configured}")] {
                let request = head(&[(header::HOST, "localhost"), (header::AUTHORIZATION, given)]);
                assert_eq!(guard.admit(&Uri::from_static("/"), &request), Err(Refusal::NoToken), "{given:?}");
            }
        }
    }
}
