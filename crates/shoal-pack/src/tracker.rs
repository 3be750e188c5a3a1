//! The query string of a BitTorrent HTTP tracker announce (BEP 3, BEP 23),
//! as librqbit and other clients send it to an agent's `GET /announce`:
//!
//! ```text
//! info_hash=%12%34...&peer_id=-RQ0910-...&port=6881&uploaded=0&downloaded=0&left=0&compact=1&event=started
//! ```
//!
//! [`parse_announce`] is a strict, pure parser: `info_hash` and `peer_id`
//! must percent-decode to exactly 20 bytes, numbers are plain decimal
//! digits that fit their type, a known parameter may appear only once, and
//! a `%` must be followed by two hex digits. `+` is a literal `+` (clients
//! percent-encode every byte of the binary fields that is not unreserved,
//! so a space never arrives as `+`). Parameters this tracker does not use
//! (`key`, `trackerid`, `supportcrypto`, ...) are ignored, as BEP 3 lets
//! clients add their own. [`AnnounceQuery::to_query`] writes a query that
//! parses back to the same value.

use std::fmt;
use std::net::IpAddr;

/// Longest query accepted, in bytes. A real announce is about 200 bytes.
pub const MAX_QUERY: usize = 4096;

/// What a peer said when it announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceEvent {
    Started,
    Stopped,
    Completed,
    /// BEP 21: a partial seed that stopped downloading.
    Paused,
}

impl AnnounceEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceEvent::Started => "started",
            AnnounceEvent::Stopped => "stopped",
            AnnounceEvent::Completed => "completed",
            AnnounceEvent::Paused => "paused",
        }
    }
}

/// A parsed announce query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceQuery {
    /// SHA-1 of the torrent's info dictionary.
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    /// The peer's BitTorrent port (1-65535).
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    /// `compact=1`: the peer wants the BEP 23 compact peer list.
    pub compact: bool,
    /// `no_peer_id=1`: the peer does not want peer ids in a dictionary list.
    pub no_peer_id: bool,
    /// `None` for a regular interval announce (absent or empty `event`).
    pub event: Option<AnnounceEvent>,
    /// How many peers the client would like.
    pub numwant: Option<u32>,
    /// The address the peer says it has (an IP literal; names are refused).
    pub ip: Option<IpAddr>,
    /// `shoal_agent=NAME`: the Shoal agent asking (it puts its name in the
    /// tracker URL it gives librqbit), so the tracker can answer each
    /// mirror its own way. Not an authentication: it only chooses whom the
    /// asker is told of.
    pub agent: Option<String>,
}

/// Why an announce query was refused; the text is meant for the BEP 3
/// `failure reason` the tracker answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryError {
    TooLong(usize),
    Missing(&'static str),
    Duplicate(&'static str),
    BadEncoding { key: String, detail: String },
    BadValue { key: &'static str, detail: String },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::TooLong(n) => {
                write!(f, "announce query is {n} bytes, more than {MAX_QUERY}")
            }
            QueryError::Missing(k) => write!(f, "announce query lacks '{k}'"),
            QueryError::Duplicate(k) => write!(f, "announce query has '{k}' more than once"),
            QueryError::BadEncoding { key, detail } => {
                write!(f, "announce query parameter '{key}': {detail}")
            }
            QueryError::BadValue { key, detail } => {
                write!(f, "announce query parameter '{key}': {detail}")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// Percent-decodes one key or value of a query.
fn decode(raw: &str, key: &str) -> Result<Vec<u8>, QueryError> {
    let bad = |detail: String| QueryError::BadEncoding {
        key: key.chars().take(64).collect(),
        detail,
    };
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        return Err(bad(format!(
                            "'%' at byte {i} is not followed by two hex digits"
                        )))
                    }
                }
                i += 3;
            }
            c if c.is_ascii_graphic() && c != b'#' => {
                out.push(c);
                i += 1;
            }
            c => return Err(bad(format!("byte 0x{c:02x} must be percent-encoded"))),
        }
    }
    Ok(out)
}

fn id20(v: &[u8], key: &'static str) -> Result<[u8; 20], QueryError> {
    v.try_into().map_err(|_| QueryError::BadValue {
        key,
        detail: format!("must be 20 bytes, got {}", v.len()),
    })
}

fn text<'a>(v: &'a [u8], key: &'static str) -> Result<&'a str, QueryError> {
    std::str::from_utf8(v).map_err(|_| QueryError::BadValue {
        key,
        detail: "not UTF-8".into(),
    })
}

fn number(v: &[u8], key: &'static str) -> Result<u64, QueryError> {
    let bad = |detail: &str| QueryError::BadValue {
        key,
        detail: detail.into(),
    };
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return Err(bad("must be a decimal number"));
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| bad("number too large"))
    })
}

fn flag(v: &[u8], key: &'static str) -> Result<bool, QueryError> {
    match v {
        b"0" => Ok(false),
        b"1" => Ok(true),
        _ => Err(QueryError::BadValue {
            key,
            detail: "must be 0 or 1".into(),
        }),
    }
}

/// The parameters this parser reads, each accepted once.
const KNOWN: [&str; 12] = [
    "info_hash",
    "peer_id",
    "port",
    "uploaded",
    "downloaded",
    "left",
    "compact",
    "no_peer_id",
    "event",
    "numwant",
    "ip",
    "shoal_agent",
];

/// Parses the query string of `GET /announce` (without the leading `?`).
pub fn parse_announce(query: &str) -> Result<AnnounceQuery, QueryError> {
    if query.len() > MAX_QUERY {
        return Err(QueryError::TooLong(query.len()));
    }
    let mut values: [Option<Vec<u8>>; KNOWN.len()] = Default::default();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let Some(slot) = KNOWN.iter().position(|known| *known == k) else {
            continue; // a parameter this tracker does not use
        };
        if values[slot].is_some() {
            return Err(QueryError::Duplicate(KNOWN[slot]));
        }
        values[slot] = Some(decode(v, k)?);
    }
    let [info_hash, peer_id, port, uploaded, downloaded, left, compact, no_peer_id, event, numwant, ip, agent] =
        values;
    let need = |v: Option<Vec<u8>>, k: &'static str| v.ok_or(QueryError::Missing(k));
    let port_n = number(&need(port, "port")?, "port")?;
    let port = match u16::try_from(port_n) {
        Ok(p) if p > 0 => p,
        _ => {
            return Err(QueryError::BadValue {
                key: "port",
                detail: format!("{port_n} is not a port (1-65535)"),
            })
        }
    };
    let event = match event.as_deref() {
        None | Some(b"") => None,
        Some(b"started") => Some(AnnounceEvent::Started),
        Some(b"stopped") => Some(AnnounceEvent::Stopped),
        Some(b"completed") => Some(AnnounceEvent::Completed),
        Some(b"paused") => Some(AnnounceEvent::Paused),
        Some(_) => {
            return Err(QueryError::BadValue {
                key: "event",
                detail: "must be started, stopped, completed, paused or empty".into(),
            })
        }
    };
    let numwant = match numwant {
        None => None,
        Some(v) => {
            Some(
                u32::try_from(number(&v, "numwant")?).map_err(|_| QueryError::BadValue {
                    key: "numwant",
                    detail: "number too large".into(),
                })?,
            )
        }
    };
    let ip = match ip {
        None => None,
        Some(v) => Some(
            text(&v, "ip")?
                .parse::<IpAddr>()
                .map_err(|_| QueryError::BadValue {
                    key: "ip",
                    detail: "must be an IPv4 or IPv6 address".into(),
                })?,
        ),
    };
    let agent = match agent {
        None => None,
        Some(v) => {
            let name = text(&v, "shoal_agent")?;
            if name.is_empty() || name.len() > MAX_AGENT_NAME || name.chars().any(char::is_control)
            {
                return Err(QueryError::BadValue {
                    key: "shoal_agent",
                    detail: format!("must be 1-{MAX_AGENT_NAME} printable characters"),
                });
            }
            Some(name.to_string())
        }
    };
    Ok(AnnounceQuery {
        info_hash: id20(&need(info_hash, "info_hash")?, "info_hash")?,
        peer_id: id20(&need(peer_id, "peer_id")?, "peer_id")?,
        port,
        uploaded: number(&need(uploaded, "uploaded")?, "uploaded")?,
        downloaded: number(&need(downloaded, "downloaded")?, "downloaded")?,
        left: number(&need(left, "left")?, "left")?,
        compact: compact
            .map(|v| flag(&v, "compact"))
            .transpose()?
            .unwrap_or(false),
        no_peer_id: no_peer_id
            .map(|v| flag(&v, "no_peer_id"))
            .transpose()?
            .unwrap_or(false),
        event,
        numwant,
        ip,
        agent,
    })
}

/// Longest agent name a `shoal_agent` parameter may carry.
pub const MAX_AGENT_NAME: usize = 255;

/// Percent-encodes every byte that is not RFC 3986 unreserved.
fn encode(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `value` percent-encoded for a query string.
pub fn encode_value(value: &str) -> String {
    let mut s = String::new();
    encode(&mut s, value.as_bytes());
    s
}

impl AnnounceQuery {
    /// The query string a client would send; [`parse_announce`] reads it
    /// back to an equal value.
    pub fn to_query(&self) -> String {
        let mut s = String::from("info_hash=");
        encode(&mut s, &self.info_hash);
        s.push_str("&peer_id=");
        encode(&mut s, &self.peer_id);
        s.push_str(&format!(
            "&port={}&uploaded={}&downloaded={}&left={}&compact={}",
            self.port,
            self.uploaded,
            self.downloaded,
            self.left,
            u8::from(self.compact)
        ));
        if self.no_peer_id {
            s.push_str("&no_peer_id=1");
        }
        if let Some(e) = self.event {
            s.push_str("&event=");
            s.push_str(e.as_str());
        }
        if let Some(n) = self.numwant {
            s.push_str(&format!("&numwant={n}"));
        }
        if let Some(ip) = self.ip {
            s.push_str("&ip=");
            encode(&mut s, ip.to_string().as_bytes());
        }
        if let Some(a) = &self.agent {
            s.push_str("&shoal_agent=");
            encode(&mut s, a.as_bytes());
        }
        s
    }
}

/// A BEP 3 failure response: `d14:failure reason<len>:<text>e`.
pub fn failure_response(reason: &str) -> Vec<u8> {
    let mut out = b"d14:failure reason".to_vec();
    out.extend_from_slice(reason.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(reason.as_bytes());
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What librqbit 9.1 sends (its `TrackerRequest::as_querystring`).
    const LIBRQBIT: &str = "info_hash=%01%02%03%04%05%06%07%08%09%0A%0B%0C%0D%0E%0F%10%11%12%13%14\
        &peer_id=-rQ9100-abcdefghijkl&event=started&port=6881&uploaded=0&downloaded=0\
        &left=1048576&compact=1&no_peer_id=0&ip=127.0.0.1&key=12345";

    #[test]
    fn librqbit_announce_parses() {
        let q = parse_announce(LIBRQBIT).unwrap();
        assert_eq!(q.info_hash, core::array::from_fn(|i| i as u8 + 1));
        assert_eq!(&q.peer_id, b"-rQ9100-abcdefghijkl");
        assert_eq!(q.port, 6881);
        assert_eq!((q.uploaded, q.downloaded, q.left), (0, 0, 1 << 20));
        assert!(q.compact && !q.no_peer_id);
        assert_eq!(q.event, Some(AnnounceEvent::Started));
        assert_eq!(q.ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(q.numwant, None);
        assert_eq!(parse_announce(&q.to_query()).unwrap(), q);
    }

    #[test]
    fn minimal_and_optional_fields() {
        let base = format!(
            "info_hash={}&peer_id={}&port=1&uploaded=5&downloaded=6&left=18446744073709551615",
            "%FF".repeat(20),
            "a".repeat(20)
        );
        let q = parse_announce(&base).unwrap();
        assert_eq!(q.info_hash, [0xff; 20]);
        assert_eq!(q.left, u64::MAX);
        assert!(!q.compact);
        assert_eq!(q.event, None);
        // empty segments and unknown parameters are tolerated
        let q2 = parse_announce(&format!("&{base}&&supportcrypto=1&event=&x")).unwrap();
        assert_eq!(q2, q);
        let q3 = parse_announce(&format!("{base}&numwant=200&ip=%3A%3A1&event=paused")).unwrap();
        assert_eq!(q3.numwant, Some(200));
        assert_eq!(q3.ip, Some("::1".parse().unwrap()));
        assert_eq!(q3.event, Some(AnnounceEvent::Paused));
        assert_eq!(parse_announce(&q3.to_query()).unwrap(), q3);
        let q4 = parse_announce(&format!("{base}&shoal_agent=mirror%20one")).unwrap();
        assert_eq!(q4.agent.as_deref(), Some("mirror one"));
        assert_eq!(parse_announce(&q4.to_query()).unwrap(), q4);
    }

    #[test]
    fn refusals_say_why() {
        let ok = LIBRQBIT;
        let cases: Vec<(String, &str)> = vec![
            (ok.replace("&port=6881", ""), "lacks 'port'"),
            (ok.replace("port=6881", "port=0"), "not a port"),
            (ok.replace("port=6881", "port=65536"), "not a port"),
            (ok.replace("port=6881", "port=+1"), "decimal"),
            (ok.replace("port=6881", "port="), "decimal"),
            (
                ok.replace("left=1048576", "left=18446744073709551616"),
                "too large",
            ),
            (ok.replace("left=1048576", "left=-1"), "decimal"),
            (ok.replace("%14", ""), "20 bytes"),
            (ok.replace("%14", "%14%15"), "20 bytes"),
            (ok.replace("%14", "%1"), "two hex digits"),
            (ok.replace("%14", "%G4"), "two hex digits"),
            (
                ok.replace("abcdefghijkl", "abcdefghijk "),
                "percent-encoded",
            ),
            (
                ok.replace("event=started", "event=begun"),
                "must be started",
            ),
            (ok.replace("compact=1", "compact=yes"), "0 or 1"),
            (ok.replace("ip=127.0.0.1", "ip=example.com"), "IPv4 or IPv6"),
            (format!("{ok}&port=1"), "more than once"),
            (format!("{ok}&numwant=4294967296"), "too large"),
            (format!("{ok}&shoal_agent="), "printable"),
            (format!("{ok}&shoal_agent=a%0Ab"), "printable"),
            (format!("{ok}&shoal_agent={}", "a".repeat(256)), "printable"),
            (format!("{ok}&shoal_agent=%FF"), "UTF-8"),
            (
                ok.replace("info_hash=", "info%5Fhash="),
                "lacks 'info_hash'",
            ),
            ("x".repeat(MAX_QUERY + 1), "more than 4096"),
            (String::new(), "lacks"),
        ];
        for (q, why) in cases {
            let e = parse_announce(&q).unwrap_err().to_string();
            assert!(e.contains(why), "{q:?}: {e}");
        }
    }

    #[test]
    fn failure_response_is_bencode() {
        assert_eq!(
            failure_response("no such torrent"),
            b"d14:failure reason15:no such torrente"
        );
    }
}
