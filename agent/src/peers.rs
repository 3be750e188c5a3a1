//! How agents learn of each other: every agent keeps a table of the other
//! agents it has heard from, each entry signed by the agent it describes
//! ([`SignedPeer`]); mirrors announce themselves to their upstreams
//! and to known peers (`POST /v1/announce`) and merge the table they get
//! back. The table feeds librqbit's initial peers and the small tracker
//! every agent serves at `/announce`, so a running torrent keeps learning
//! of mirrors that join later.

use serde::{Deserialize, Serialize};
use shoal_manifest::signed::{PrivateKey, PublicKey};
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

/// A [`PeerInfo`] signed by the agent it describes, with its node key
/// (an origin signs with the origin key). Only that agent can write or
/// replace its entry in another agent's table, and only the holder of the
/// origin key can be listed as `role: origin`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedPeer {
    pub info: PeerInfo,
    /// The signer's public key, `ed25519:…`.
    pub key: String,
    /// Unix time of signing: a newer entry replaces an older one.
    pub at: i64,
    /// base64 ed25519 signature over the entry (see [`SignedPeer::body`]).
    pub sig: String,
}

/// Why an announced entry was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Refusal {
    #[error("bad announce: {0}")]
    Malformed(String),
    #[error("bad announce: the signature does not match the entry's key; only an agent itself may announce its entry")]
    BadSignature,
    #[error("bad announce: role 'origin' is only accepted when signed with the origin key")]
    NotOrigin,
    #[error("bad announce: signed {0}s from now; check the announcing host's clock")]
    Future(i64),
    #[error("bad announce: signed {0}s ago, too old to trust")]
    Stale(i64),
    #[error("bad announce: older than the entry already held for this key")]
    Replay,
}

/// How far in the future a signing time may be (clock skew).
const MAX_SKEW: i64 = 300;

impl SignedPeer {
    /// Signs `info` with `key` at `at`.
    pub fn sign(info: PeerInfo, key: &PrivateKey, at: i64) -> SignedPeer {
        let pk = key.public().to_string_key();
        let body = Self::body_of(&info, &pk, at);
        let env = key.seal("peer", &body);
        let sig = shoal_manifest::signed::signature_of(&env).expect("sealed envelope");
        SignedPeer {
            info,
            key: pk,
            at,
            sig,
        }
    }

    fn body_of(info: &PeerInfo, key: &str, at: i64) -> Vec<u8> {
        serde_json::to_vec(&(info, key, at)).expect("serializable")
    }

    /// Checks the entry: well-formed, signed by its key, fresh, and
    /// `origin` only with the origin key.
    pub fn verify(&self, origin_key: &str, now: i64, ttl: Duration) -> Result<(), Refusal> {
        let i = &self.info;
        if i.name.is_empty() || i.name.len() > 255 || i.name.contains(char::is_whitespace) {
            return Err(Refusal::Malformed(
                "name must be 1-255 characters without spaces".into(),
            ));
        }
        if !(i.url.starts_with("http://") || i.url.starts_with("https://")) || i.url.len() > 1024 {
            return Err(Refusal::Malformed("url must be http(s)".into()));
        }
        if i.role != "mirror" && i.role != "origin" {
            return Err(Refusal::Malformed(format!("unknown role '{}'", i.role)));
        }
        let pk = PublicKey::parse(&self.key).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let env = shoal_manifest::signed::envelope(
            "peer",
            &self.sig,
            &Self::body_of(&self.info, &self.key, self.at),
        );
        pk.open("peer", &env).map_err(|_| Refusal::BadSignature)?;
        if i.role == "origin" && self.key != origin_key {
            return Err(Refusal::NotOrigin);
        }
        if self.at > now + MAX_SKEW {
            return Err(Refusal::Future(self.at - now));
        }
        if now - self.at > ttl.as_secs() as i64 {
            return Err(Refusal::Stale(now - self.at));
        }
        Ok(())
    }
}

/// The agents this one has heard from, one entry per signing key.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: HashMap<String, (SignedPeer, Instant)>,
}

/// How many peers a table holds at most (oldest dropped first).
const MAX_PEERS: usize = 4096;

impl PeerTable {
    /// Records a verified entry (see [`SignedPeer::verify`]); `self_key` is
    /// this agent's own key, never recorded.
    pub fn merge(&mut self, p: SignedPeer, self_key: &str) -> Result<(), Refusal> {
        if p.key == self_key {
            return Ok(());
        }
        if let Some((old, _)) = self.peers.get(&p.key) {
            if old.at > p.at {
                return Err(Refusal::Replay);
            }
            if old.at == p.at {
                return Ok(());
            }
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&p.key) {
            if let Some(oldest) = self
                .peers
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone())
            {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert(p.key.clone(), (p, Instant::now()));
        Ok(())
    }

    /// Drops peers not heard from within `ttl`.
    pub fn expire(&mut self, ttl: Duration) {
        self.peers.retain(|_, (_, t)| t.elapsed() < ttl);
    }

    /// Every entry, sorted by name, with the time since it was heard.
    pub fn list(&self) -> Vec<(PeerInfo, Duration)> {
        let mut v: Vec<_> = self
            .peers
            .values()
            .map(|(p, t)| (p.info.clone(), t.elapsed()))
            .collect();
        v.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        v
    }

    /// The signed entries, to relay.
    pub fn signed(&self) -> Vec<SignedPeer> {
        self.peers.values().map(|(p, _)| p.clone()).collect()
    }

    pub fn peer_addrs(&self) -> Vec<SocketAddr> {
        self.peers.values().map(|(p, _)| p.info.peer_addr).collect()
    }

    pub fn urls(&self) -> Vec<String> {
        self.peers
            .values()
            .map(|(p, _)| p.info.url.clone())
            .collect()
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

    const TTL: Duration = Duration::from_secs(600);

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
    fn table_keeps_one_entry_per_key_and_ignores_self() {
        let (a, me) = (PrivateKey::generate(), PrivateKey::generate());
        let me_key = me.public().to_string_key();
        let mut t = PeerTable::default();
        t.merge(SignedPeer::sign(p("a", 10), &a, 100), &me_key)
            .unwrap();
        t.merge(SignedPeer::sign(p("me", 20), &me, 100), &me_key)
            .unwrap();
        t.merge(SignedPeer::sign(p("a", 30), &a, 101), &me_key)
            .unwrap();
        assert_eq!(t.list().len(), 1);
        assert_eq!(t.list()[0].0.url, "http://127.0.0.1:30");
        // An older entry of the same agent does not replace a newer one.
        let e = t.merge(SignedPeer::sign(p("a", 40), &a, 99), &me_key);
        assert_eq!(e, Err(Refusal::Replay));
        assert_eq!(t.list()[0].0.url, "http://127.0.0.1:30");
        t.expire(Duration::ZERO);
        assert!(t.list().is_empty());
    }

    /// The spoof seen in the field: an entry claiming another mirror's
    /// name, `role: origin` and generation 999 at another address.
    #[test]
    fn forged_and_spoofed_entries_are_refused() {
        let origin = PrivateKey::generate();
        let ok = origin.public().to_string_key();
        let (mirror, evil) = (PrivateKey::generate(), PrivateKey::generate());
        let now = 1_000_000;
        let real = SignedPeer::sign(p("m1", 10), &mirror, now);
        real.verify(&ok, now, TTL).unwrap();
        // Tampered after signing: generation, role, address.
        let mut forged = real.clone();
        forged.info.generation = 999;
        assert_eq!(forged.verify(&ok, now, TTL), Err(Refusal::BadSignature));
        let mut forged = real.clone();
        forged.info.peer_addr = "127.0.0.9:1".parse().unwrap();
        assert_eq!(forged.verify(&ok, now, TTL), Err(Refusal::BadSignature));
        // Signed by another key but claiming the mirror's key.
        let mut other = SignedPeer::sign(p("m1", 99), &evil, now);
        other.key = real.key.clone();
        assert_eq!(other.verify(&ok, now, TTL), Err(Refusal::BadSignature));
        // Role origin needs the origin key.
        let mut info = p("m1", 99);
        info.role = "origin".into();
        info.generation = 999;
        let spoof = SignedPeer::sign(info.clone(), &evil, now);
        assert_eq!(spoof.verify(&ok, now, TTL), Err(Refusal::NotOrigin));
        SignedPeer::sign(info, &origin, now)
            .verify(&ok, now, TTL)
            .unwrap();
        // Stale and future entries.
        assert!(matches!(
            SignedPeer::sign(p("m1", 10), &mirror, now - 601).verify(&ok, now, TTL),
            Err(Refusal::Stale(601))
        ));
        assert!(matches!(
            SignedPeer::sign(p("m1", 10), &mirror, now + 1000).verify(&ok, now, TTL),
            Err(Refusal::Future(1000))
        ));
        // A spoofer's own entry never replaces the real mirror's.
        let mut t = PeerTable::default();
        t.merge(real.clone(), "me").unwrap();
        t.merge(SignedPeer::sign(p("m1", 99), &evil, now + 1), "me")
            .unwrap();
        let urls: Vec<String> = t.list().into_iter().map(|x| x.0.url).collect();
        assert!(
            urls.contains(&"http://127.0.0.1:10".to_string()),
            "{urls:?}"
        );
        // Garbage fields.
        let mut bad = p("", 10);
        bad.url = "ftp://x".into();
        assert!(matches!(
            SignedPeer::sign(bad, &mirror, now).verify(&ok, now, TTL),
            Err(Refusal::Malformed(_))
        ));
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
