//! How agents learn of each other: every agent keeps a table of the other
//! agents it has heard from; mirrors announce themselves to their upstreams
//! and to known peers (`POST /v1/announce`) and merge the table they get
//! back. The table feeds librqbit's initial peers and the small tracker
//! every agent serves at `/announce`, so a running torrent keeps learning
//! of mirrors that join later.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What agents tell each other about themselves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerInfo {
    pub name: String,
    pub role: String,
    /// HTTP endpoint.
    pub url: String,
    /// BitTorrent listen address.
    pub peer_addr: SocketAddr,
    /// Newest generation the agent holds.
    pub generation: u64,
}

#[derive(Debug, Default)]
pub struct PeerTable {
    peers: HashMap<String, (PeerInfo, Instant)>,
}

/// How many peers a table holds at most (oldest dropped first).
const MAX_PEERS: usize = 4096;

impl PeerTable {
    /// Records what a peer said about itself (or what a peer relayed).
    pub fn merge(&mut self, p: PeerInfo, self_name: &str) {
        if p.name == self_name || p.name.is_empty() {
            return;
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&p.name) {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(p.name.clone(), (p, Instant::now()));
    }

    /// Drops peers not heard from within `ttl`.
    pub fn expire(&mut self, ttl: Duration) {
        self.peers.retain(|_, (_, t)| t.elapsed() < ttl);
    }

    pub fn list(&self) -> Vec<(PeerInfo, Duration)> {
        let mut v: Vec<_> = self
            .peers
            .values()
            .map(|(p, t)| (p.clone(), t.elapsed()))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers.values().map(|(p, _)| p.peer_addr).collect()
    }

    pub fn urls(&self) -> Vec<String> {
        self.peers.values().map(|(p, _)| p.url.clone()).collect()
    }
}

/// A BitTorrent HTTP tracker response listing `addrs` (compact form).
pub fn tracker_response(addrs: &[SocketAddr], interval: Duration) -> Vec<u8> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for a in addrs {
        match a {
            SocketAddr::V4(a) => {
                v4.extend_from_slice(&a.ip().octets());
                v4.extend_from_slice(&a.port().to_be_bytes());
            }
            SocketAddr::V6(a) => {
                v6.extend_from_slice(&a.ip().octets());
                v6.extend_from_slice(&a.port().to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"d8:intervali");
    out.extend_from_slice(interval.as_secs().max(1).to_string().as_bytes());
    out.extend_from_slice(b"e5:peers");
    out.extend_from_slice(v4.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(&v4);
    out.extend_from_slice(b"6:peers6");
    out.extend_from_slice(v6.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(&v6);
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str, port: u16) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            role: "mirror".into(),
            url: format!("http://127.0.0.1:{port}"),
            peer_addr: format!("127.0.0.1:{}", port + 1).parse().unwrap(),
            generation: 1,
        }
    }

    #[test]
    fn table_merges_and_ignores_self() {
        let mut t = PeerTable::default();
        t.merge(p("a", 10), "me");
        t.merge(p("me", 20), "me");
        t.merge(p("a", 30), "me");
        assert_eq!(t.list().len(), 1);
        assert_eq!(t.list()[0].0.url, "http://127.0.0.1:30");
        t.expire(Duration::ZERO);
        assert!(t.list().is_empty());
    }

    #[test]
    fn compact_tracker_response() {
        let r = tracker_response(&["127.0.0.2:6881".parse().unwrap()], Duration::from_secs(5));
        assert_eq!(
            r,
            b"d8:intervali5e5:peers6:\x7f\x00\x00\x02\x1a\xe16:peers60:e".to_vec()
        );
    }
}
