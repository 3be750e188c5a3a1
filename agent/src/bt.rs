//! The BitTorrent side of an agent: one librqbit session with public
//! networks off unless configured, packs added from Shoal's own `.torrent`
//! files, and byte counters attributed to origin / mirrors / others.
//!
//! Attribution uses the client name each agent announces in the BitTorrent
//! extended handshake (`shoal/<version> <role> <name>`), so it works on one
//! host with many loopback addresses as well as across hosts.
//! librqbit's per-peer counters reset when a torrent restarts, so this
//! module keeps its own running totals.

use anyhow::{Context, Result};
use librqbit::{
    AddTorrent, AddTorrentOptions, ListenerMode, ListenerOptions, ManagedTorrent, Session,
    SessionOptions,
};
use shoal_config::{AgentConfig, Role};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pack added to the session.
pub struct Torrent {
    pub id: u64,
    pub info_hash: String,
    pub handle: Arc<ManagedTorrent>,
    /// Contents in the pack, and their bytes (without padding).
    pub files: u64,
    pub bytes: u64,
    /// Where each content lies in the pack (shared with its storage).
    pub layout: Arc<shoal_pack::Layout>,
    pub added: Instant,
    /// Since when the pack has been complete with no live peer, as last
    /// seen by [`crate::rest::sweep`].
    pub idle_since: Mutex<Option<Instant>>,
}

/// A pack to add to the session.
pub struct AddPack {
    pub id: u64,
    pub info_hash: String,
    pub torrent: Vec<u8>,
    /// The pack folder: librqbit checks what is there and fetches the rest.
    pub folder: PathBuf,
    /// Peers to connect to at once.
    pub peers: Vec<SocketAddr>,
    /// Trackers (other agents' `/announce`) that keep the peer list fresh.
    pub trackers: Vec<String>,
    pub announce_interval: Duration,
    /// Refuse every write (the origin only seeds).
    pub read_only: bool,
}

/// Running byte totals.
#[derive(Debug, Default, Clone)]
pub struct Totals {
    /// Bytes received by class (`origin`, `mirrors`, `other`).
    pub down: BTreeMap<String, u64>,
    /// Bytes received per agent name.
    pub down_by_peer: BTreeMap<String, u64>,
    /// Bytes sent by class.
    pub up: BTreeMap<String, u64>,
}

pub struct Bt {
    pub session: Arc<Session>,
    torrents: Mutex<HashMap<u64, Arc<Torrent>>>,
    /// Complete packs kept out of the session until a peer needs them
    /// ([`crate::rest`]).
    resting: Mutex<HashMap<u64, crate::rest::Resting>>,
    totals: Mutex<Totals>,
    /// Last seen counters per (pack, peer address): (fetched, uploaded).
    last: Mutex<HashMap<(u64, String), (u64, u64)>>,
    /// Class and name per peer address, remembered from the handshake
    /// (librqbit forgets the client name once a peer disconnects).
    known: Mutex<HashMap<String, (String, Option<String>)>>,
    /// The agents this one knows, by BitTorrent listen address, as
    /// client names ([`Bt::set_directory`]).
    directory: Mutex<Vec<(SocketAddr, String)>>,
    /// Origin: packs (info hashes) whose tracker answer listed the origin
    /// to a client that is not a Shoal mirror ([`Bt::listed_to_outsider`]).
    outsiders: Mutex<std::collections::HashSet<String>>,
    /// This agent is the origin.
    origin: bool,
}

/// The client name this agent announces to peers.
pub fn client_name(role: Role, name: &str) -> String {
    format!("shoal/{} {role} {name}", env!("CARGO_PKG_VERSION"))
}

/// Classifies a peer by the client name it announced.
fn classify(client: Option<&str>) -> (String, Option<String>) {
    let Some(c) = client else {
        return ("other".into(), None);
    };
    let mut parts = c.split(' ');
    if !parts.next().unwrap_or("").starts_with("shoal/") {
        return ("other".into(), None);
    }
    let role = parts.next().unwrap_or("");
    let name = parts.next().map(str::to_string);
    let class = match role {
        "origin" => "origin",
        "mirror" => "mirrors",
        _ => "other",
    };
    (class.into(), name)
}

impl Bt {
    /// Starts the session. DHT, LSD and UPnP follow the config (off by
    /// default); the torrents carry no announce URL, so only the trackers
    /// Shoal passes (other agents) and configured ones are ever contacted.
    pub async fn start(cfg: &AgentConfig, name: &str) -> Result<Bt> {
        let listen = cfg.peer_listen().context("peer_listen port out of range")?;
        // librqbit's own error for a busy port is terse: check first.
        std::net::TcpListener::bind(listen).map_err(|e| {
            crate::explain_bind(e, listen, "BitTorrent peers", "peer_listen / --peer-listen")
        })?;
        let limit = |n: u64| NonZeroU32::new(n.min(u32::MAX as u64) as u32);
        let mut opts = SessionOptions {
            dht: None,
            disable_trackers: false,
            fastresume: false,
            persistence: None,
            listen: Some(ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: listen,
                enable_upnp_port_forwarding: cfg.network.upnp,
                ipv4_only: listen.is_ipv4(),
                ..Default::default()
            }),
            concurrent_init_limit: Some(4),
            disable_local_service_discovery: !cfg.network.lsd,
            ipv4_only: listen.is_ipv4(),
            client_name_and_version: Some(client_name(cfg.role, name)),
            ..Default::default()
        };
        opts.ratelimits.upload_bps = limit(cfg.network.upload_limit);
        opts.ratelimits.download_bps = limit(cfg.network.download_limit);
        if cfg.network.dht {
            opts.dht = Some(Default::default());
        }
        let session = Session::new_with_opts(cfg.state.join("packs"), opts)
            .await
            .context("cannot start the BitTorrent session")?;
        Ok(Bt {
            session,
            torrents: Mutex::new(HashMap::new()),
            resting: Mutex::new(HashMap::new()),
            totals: Mutex::new(Totals::default()),
            last: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
            directory: Mutex::new(Vec::new()),
            outsiders: Mutex::new(std::collections::HashSet::new()),
            origin: cfg.role == Role::Origin,
        })
    }

    /// Adds (or returns the already added) pack.
    pub async fn add(&self, p: AddPack) -> Result<Arc<Torrent>> {
        let AddPack {
            id,
            info_hash,
            torrent,
            folder,
            peers,
            trackers,
            announce_interval,
            read_only,
        } = p;
        if let Some(t) = self.get(id) {
            return Ok(t);
        }
        self.resting.lock().unwrap().remove(&id);
        // One buffer for the torrent: librqbit keeps it, and the layout
        // reads the contents list from it rather than from a copy.
        let torrent = bytes::Bytes::from(torrent);
        let layout = Arc::new(
            shoal_pack::layout_of(&torrent, Some(&info_hash))
                .with_context(|| format!("pack {id}"))?,
        );
        let opts = AddTorrentOptions {
            overwrite: true,
            output_folder: Some(folder.to_string_lossy().into_owned()),
            initial_peers: if peers.is_empty() { None } else { Some(peers) },
            trackers: Some(trackers),
            force_tracker_interval: Some(announce_interval),
            storage_factory: Some(crate::storage::PackStorageFactory::boxed_for(
                &folder,
                layout.clone(),
                read_only,
            )),
            ..Default::default()
        };
        let resp = self
            .session
            .add_torrent(AddTorrent::from_bytes(torrent), Some(opts))
            .await
            .with_context(|| {
                format!("cannot add pack {id} ({info_hash}) to the BitTorrent session")
            })?;
        let handle = resp
            .into_handle()
            .context("librqbit returned no handle for the pack")?;
        let t = Arc::new(Torrent {
            id,
            info_hash,
            handle,
            files: layout.count() as u64,
            bytes: layout.content_bytes(),
            layout,
            added: Instant::now(),
            idle_since: Mutex::new(None),
        });
        self.torrents.lock().unwrap().insert(id, t.clone());
        Ok(t)
    }

    /// Pauses a pack and starts it again at once: every connection is
    /// dropped and made anew (initial peers, a fresh tracker announce), so
    /// requesters that sleep on a peer without news wake up. Unpausing
    /// does not re-check data.
    pub async fn kick(&self, t: &Torrent) -> Result<()> {
        if t.handle.is_paused() || t.handle.live().is_none() {
            return Ok(());
        }
        self.sample();
        self.session
            .pause(&t.handle)
            .await
            .with_context(|| format!("cannot pause pack {}", t.id))?;
        self.session
            .unpause(&t.handle)
            .await
            .with_context(|| format!("cannot restart pack {}", t.id))?;
        tracing::debug!(pack = t.id, "pack restarted to wake its requesters");
        Ok(())
    }

    /// Whether the pack has a live connection to the peer listening at
    /// `addr`.
    pub fn connected_to(&self, t: &Torrent, addr: SocketAddr) -> bool {
        let Some(live) = t.handle.live() else {
            return false;
        };
        let filter =
            serde_json::from_value(serde_json::json!({"state": "live"})).expect("peer filter");
        let a = addr.to_string();
        live.per_peer_stats_snapshot(filter)
            .peers
            .keys()
            .any(|k| *k == a)
    }

    pub fn get(&self, id: u64) -> Option<Arc<Torrent>> {
        self.torrents.lock().unwrap().get(&id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Torrent>> {
        let mut v: Vec<_> = self.torrents.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// Removes a pack from the session, or forgets it if it rests (its
    /// files stay unless the caller deletes them).
    pub async fn remove(&self, id: u64) -> Result<()> {
        self.resting.lock().unwrap().remove(&id);
        self.leave_session(id).await
    }

    /// Takes a pack out of the session and keeps it as resting: it is
    /// listed as resting before it leaves, so a tracker query in between
    /// still finds it.
    pub async fn to_rest(&self, r: crate::rest::Resting) -> Result<()> {
        let id = r.id;
        self.rest(r);
        self.leave_session(id).await
    }

    /// Records a complete pack that is not in the session.
    pub fn rest(&self, r: crate::rest::Resting) {
        self.resting.lock().unwrap().insert(r.id, r);
    }

    /// The resting pack with this info hash, taken out of the resting set
    /// (to be woken: only one caller gets it).
    pub fn take_resting(&self, info_hash: &str) -> Option<crate::rest::Resting> {
        let mut r = self.resting.lock().unwrap();
        let id = r.values().find(|p| p.info_hash == info_hash)?.id;
        r.remove(&id)
    }

    /// The resting pack with this info hash, if any.
    pub fn resting_by_hash(&self, info_hash: &str) -> Option<crate::rest::Resting> {
        let r = self.resting.lock().unwrap();
        r.values().find(|p| p.info_hash == info_hash).cloned()
    }

    /// Every resting pack, by id.
    pub fn resting(&self) -> Vec<crate::rest::Resting> {
        let mut v: Vec<_> = self.resting.lock().unwrap().values().cloned().collect();
        v.sort_by_key(|r| r.id);
        v
    }

    /// The info hash of a pack, in the session or resting.
    pub fn info_hash(&self, id: u64) -> Option<String> {
        if let Some(t) = self.get(id) {
            return Some(t.info_hash.clone());
        }
        self.resting
            .lock()
            .unwrap()
            .get(&id)
            .map(|r| r.info_hash.clone())
    }

    async fn leave_session(&self, id: u64) -> Result<()> {
        let t = self.torrents.lock().unwrap().remove(&id);
        if let Some(t) = t {
            self.sample();
            self.session
                .delete(t.handle.id().into(), false)
                .await
                .with_context(|| format!("cannot remove pack {id}"))?;
        }
        Ok(())
    }

    /// Tells the counters which agents exist: `(listen address, client
    /// name)` of each (see [`client_name`]).
    pub fn set_directory(&self, agents: Vec<(SocketAddr, String)>) {
        *self.directory.lock().unwrap() = agents;
    }

    /// The client name of the agent at `addr`: the one listening there, or
    /// else the only agent with that IP address. librqbit never learns the
    /// client name of a peer that connected in (the origin's uploads all
    /// arrive that way, from an ephemeral port), so without this the
    /// origin would count its uploads to mirrors as `other`.
    fn resolve(&self, addr: &str) -> Option<String> {
        let a: SocketAddr = addr.parse().ok()?;
        let dir = self.directory.lock().unwrap();
        if let Some((_, c)) = dir.iter().find(|(l, _)| *l == a) {
            return Some(c.clone());
        }
        let only = |mut it: Box<dyn Iterator<Item = &(SocketAddr, String)> + '_>| match (
            it.next(),
            it.next(),
        ) {
            (Some((_, c)), None) => Some(c.clone()),
            _ => None,
        };
        only(Box::new(dir.iter().filter(|(l, _)| l.ip() == a.ip()))).or_else(|| {
            // On one host every connection comes from 127.0.0.1, whatever
            // loopback address the agent listens on; librqbit records the
            // peer's listen port from its extended handshake.
            if a.ip().is_loopback() {
                only(Box::new(dir.iter().filter(|(l, _)| {
                    l.ip().is_loopback() && l.port() == a.port()
                })))
            } else {
                None
            }
        })
    }

    /// Origin: its tracker listed the origin to a client that is not a
    /// Shoal mirror for pack `info_hash`.
    pub fn listed_to_outsider(&self, info_hash: &str) {
        self.outsiders.lock().unwrap().insert(info_hash.to_string());
    }

    /// The class of a peer of pack `info_hash` that neither told its name
    /// nor can be found by address. librqbit sets a peer's name from its
    /// extended handshake and forgets it when the connection ends, and on
    /// one host every connection comes from 127.0.0.1, so a pack sent to a
    /// mirror over a connection shorter than a sampling interval would
    /// count as sent to `other`. An origin's tracker lists the origin only
    /// to Shoal mirrors (the pack's feeder, or every mirror for a small
    /// pack) unless a client without a Shoal name asked: so on the origin
    /// such a peer is a mirror unless the tracker ever listed the origin
    /// to an outsider for that pack. Anything else stays `other`.
    fn unresolved(&self, info_hash: &str) -> (String, Option<String>) {
        if self.origin && !self.outsiders.lock().unwrap().contains(info_hash) {
            ("mirrors".into(), None)
        } else {
            ("other".into(), None)
        }
    }

    /// Remembers the client name of every live peer of packs that have
    /// live peers. librqbit drops a peer's name when the connection ends,
    /// and a connection that dialled in may end (a pack done) between two
    /// samples: the agent calls this often, so even the first transfer is
    /// attributed (the origin's uploads all go over such connections).
    pub fn note_names(&self) {
        let torrents = self.all();
        let mut seen = Vec::new();
        for t in torrents {
            let Some(live) = t.handle.live() else {
                continue;
            };
            if live.stats_snapshot().peer_stats.live == 0 {
                continue;
            }
            let filter =
                serde_json::from_value(serde_json::json!({"state": "live"})).expect("peer filter");
            for (addr, ps) in live.per_peer_stats_snapshot(filter).peers {
                if let Some(c) = ps.client_name {
                    seen.push((addr, classify(Some(&c))));
                }
            }
        }
        if !seen.is_empty() {
            self.known.lock().unwrap().extend(seen);
        }
    }

    /// Folds librqbit's per-peer counters into the running totals.
    pub fn sample(&self) {
        let torrents = self.all();
        let mut known = self.known.lock().unwrap();
        let mut last = self.last.lock().unwrap();
        let mut totals = self.totals.lock().unwrap();
        // What librqbit still lists: the rest is forgotten, so neither map
        // grows with every connection ever made.
        let mut present = std::collections::HashSet::new();
        for t in torrents {
            let Some(live) = t.handle.live() else {
                continue;
            };
            let filter =
                serde_json::from_value(serde_json::json!({"state": "all"})).expect("peer filter");
            let snap = live.per_peer_stats_snapshot(filter);
            for (addr, ps) in snap.peers {
                present.insert((t.id, addr.clone()));
                let (class, name) = match ps.client_name.as_deref() {
                    Some(c) => {
                        let k = classify(Some(c));
                        known.insert(addr.clone(), k.clone());
                        k
                    }
                    None => match known.get(&addr) {
                        Some(k) if k.0 != "other" => k.clone(),
                        _ => {
                            let mut k = classify(self.resolve(&addr).as_deref());
                            if k.0 == "other" {
                                k = self.unresolved(&t.info_hash);
                                tracing::debug!(peer = %addr, class = %k.0, "peer without a client name");
                            }
                            known.insert(addr.clone(), k.clone());
                            k
                        }
                    },
                };
                let key = (t.id, addr);
                let (f0, u0) = last.get(&key).copied().unwrap_or((0, 0));
                let (f, u) = (ps.counters.fetched_bytes, ps.counters.uploaded_bytes);
                let df = if f >= f0 { f - f0 } else { f };
                let du = if u >= u0 { u - u0 } else { u };
                if df > 0 {
                    *totals.down.entry(class.clone()).or_default() += df;
                    if let Some(n) = &name {
                        *totals.down_by_peer.entry(n.clone()).or_default() += df;
                    }
                }
                if du > 0 {
                    *totals.up.entry(class).or_default() += du;
                }
                last.insert(key, (f, u));
            }
        }
        last.retain(|k, _| present.contains(k));
        let addrs: std::collections::HashSet<&String> = present.iter().map(|(_, a)| a).collect();
        known.retain(|a, _| addrs.contains(a));
    }

    pub fn totals(&self) -> Totals {
        self.totals.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_client_name() {
        assert_eq!(classify(Some(&client_name(Role::Origin, "o"))).0, "origin");
        let (c, n) = classify(Some(&client_name(Role::Mirror, "m2")));
        assert_eq!((c.as_str(), n.as_deref()), ("mirrors", Some("m2")));
        assert_eq!(classify(Some("aria2/1.36.0")).0, "other");
        assert_eq!(classify(None).0, "other");
    }
}
