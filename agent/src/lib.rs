//! `shoal-agent`: the Shoal daemon.
//!
//! One agent plays one role:
//! - **origin** ([`origin`]): scans a repository folder, publishes it as
//!   signed generations (manifest, delta, head) with packs (torrents) for
//!   new content, serves them over HTTP and seeds the packs;
//! - **mirror** ([`mirror`]): follows the newest signed generation from any
//!   upstream agent, downloads the packs it lacks over BitTorrent from the
//!   origin and other mirrors, verifies every file and applies the
//!   generation to its live tree in the consistency order ([`apply`]),
//!   then keeps seeding and relaying.
//!
//! Both serve `/status`, `/metrics`, the signed documents, `.torrent` files
//! and a small tracker over HTTP ([`http`]), and take admin calls on a Unix
//! socket in the state directory ([`admin`]). An origin publishes only
//! through the publish gate ([`gate`]: no archive lock, a quiet tree); every
//! agent checks at start that it can hard-link between its state folder and
//! its repository ([`linkcheck`]).

pub mod admin;
pub mod apply;
pub mod bt;
pub mod cli;
pub mod fsutil;
pub mod gate;
pub mod http;
pub mod linkcheck;
pub mod memory;
pub mod mirror;
pub mod origin;
pub mod peers;
pub mod phases;
pub mod rest;
pub mod shamap;
pub mod shatable;
pub mod storage;
pub mod store;

use anyhow::{bail, Context, Result};
use shoal_config::{AgentConfig, Role};
use shoal_status::Status;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;

/// Everything a running agent shares between its tasks.
pub struct Agent {
    pub cfg: AgentConfig,
    pub name: String,
    pub store: Store,
    pub bt: bt::Bt,
    pub status: Mutex<Status>,
    pub peers: Mutex<peers::PeerTable>,
    /// Wakes the role loop now (admin `publish`, or a peer's news).
    pub kick: tokio::sync::Notify,
    /// The origin's publishing state; its lock serializes publishes
    /// (timer and admin calls).
    pub origin: tokio::sync::Mutex<origin::OriginState>,
    /// HTTP client for talking to other agents.
    pub client: reqwest::Client,
    /// Mirror: what each downloading pack waits on, for /status.
    pub pack_notes: Mutex<std::collections::HashMap<u64, String>>,
    /// Signs this agent's peer entry: the origin key on an origin, the
    /// node key (`state/node.key`) on a mirror.
    pub node_key: shoal_manifest::signed::PrivateKey,
    /// The origin's public key, `ed25519:…`: only it may be listed as origin.
    pub origin_key: String,
    /// Origin: which mirror takes each pack from the origin
    /// ([`shoal_swarm`]), kept by the tracker ([`http`]).
    pub schedule: Mutex<shoal_swarm::Schedule>,
    /// The schedule's clock starts here.
    pub epoch: std::time::Instant,
    /// Origin: packs found damaged when woken ([`rest::wake`]); the next
    /// publish packs their contents again.
    pub damaged: Mutex<Vec<u64>>,
    /// Held for the agent's lifetime: one agent per state directory.
    _lock: std::fs::File,
}

impl Agent {
    /// This agent as other agents see it, signed now.
    pub fn self_info(&self) -> peers::SignedPeer {
        let generation = self.status.lock().unwrap().generation_applied;
        let info = peers::PeerInfo {
            name: self.name.clone(),
            role: self.cfg.role.to_string(),
            url: self.cfg.advertise_url(),
            peer_addr: self.cfg.peer_listen().expect("validated"),
            generation,
        };
        peers::SignedPeer::sign(info, &self.node_key, fsutil::now())
    }

    /// How long a peer entry is trusted without news from its agent.
    pub fn peer_ttl(&self) -> Duration {
        (self.cfg.mirror.poll_interval * 10).max(Duration::from_secs(300))
    }

    /// Push: tells every known mirror that generation `generation` exists
    /// (fire and forget; polling stays the fallback).
    pub fn notify_mirrors(&self, generation: u64) {
        let urls: Vec<String> = self
            .peers
            .lock()
            .unwrap()
            .list()
            .into_iter()
            .filter(|(p, _)| p.role == "mirror" && p.generation < generation)
            .map(|(p, _)| p.url)
            .collect();
        for u in urls {
            let client = self.client.clone();
            tokio::spawn(async move {
                let url = format!("{}/v1/notify", u.trim_end_matches('/'));
                let r = client
                    .post(&url)
                    .json(&serde_json::json!({ "generation": generation }))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                if let Err(e) = r {
                    tracing::debug!(peer = %url, error = %e, "notify failed; it will poll");
                }
            });
        }
    }

    /// Verifies a peer entry and records it. Returns why it was refused.
    pub fn learn_peer(&self, p: peers::SignedPeer) -> Result<(), peers::Refusal> {
        p.verify(&self.origin_key, fsutil::now(), self.peer_ttl())?;
        let me = self.node_key.public().to_string_key();
        self.peers.lock().unwrap().merge(p, &me)
    }

    /// Records a failed sync or publish in /status (and its failure
    /// counter) and the log.
    pub fn set_error(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        tracing::error!(error = %msg, "sync failed");
        let mut st = self.status.lock().unwrap();
        st.last_error = Some(msg);
        st.sync_failures += 1;
        st.state = "error".into();
    }

    /// Records an error in /status and the log while the sync goes on (a
    /// pack being retried): not counted as a failed sync.
    pub fn note_error(&self, e: &anyhow::Error) {
        let msg = format!("{e:#}");
        tracing::error!(error = %msg, "sync trouble");
        let mut st = self.status.lock().unwrap();
        st.last_error = Some(msg);
        st.state = "error".into();
    }

    /// Counts a document or pack refused from an upstream, by kind:
    /// `head`, `manifest`, `delta`, `rollback`, `pack`.
    pub fn count_refusal(&self, kind: &str) {
        *self
            .status
            .lock()
            .unwrap()
            .refusals
            .entry(kind.to_string())
            .or_default() += 1;
    }

    pub fn set_state(&self, s: &str) {
        self.status.lock().unwrap().state = s.into();
    }

    /// Records in /status that the agent now holds generation `m`.
    pub fn record_generation(&self, m: &shoal_manifest::Manifest) {
        self.record_header(&m.header, m.len() as u64, m.total_bytes());
    }

    /// [`Agent::record_generation`] from a generation's header and its
    /// file and byte counts (a mirror restarting reads no entries).
    pub fn record_header(&self, h: &shoal_manifest::Header, files: u64, bytes: u64) {
        let mut st = self.status.lock().unwrap();
        st.generation_applied = h.generation;
        st.generation_known = st.generation_known.max(h.generation);
        st.generation_created = h.created;
        st.generation_expires = h.expires;
        st.files = files;
        st.bytes = bytes;
    }

    /// The BitTorrent tracker of a mirror's packs: one URL, the origin's
    /// `/announce` when this agent knows the origin (its tracker schedules
    /// the swarm), else the first upstream's, naming this agent
    /// (`shoal_agent=`) so the tracker can answer it its own way.
    ///
    /// One, because librqbit announces a private torrent to a single
    /// tracker, and when a torrent is restarted (a kick) it picks that one
    /// at random from the set it was given: about half of a mirror's packs
    /// then announced to another mirror's tracker, the origin's schedule
    /// stopped hearing from them, and handed their packs to slower or later
    /// mirrors (measured in the bench's fault cases). Other mirrors learn
    /// that a pack is needed from initial peers and [`rest::ask_to_wake`].
    pub fn trackers(&self) -> Vec<String> {
        let name = shoal_pack::tracker::encode_value(&self.name);
        let origin = self
            .peers
            .lock()
            .unwrap()
            .list()
            .into_iter()
            .find(|(p, _)| p.role == "origin")
            .map(|(p, _)| p.url);
        origin
            .or_else(|| self.cfg.mirror.upstreams.first().cloned())
            .map(|u| format!("{}/announce?shoal_agent={name}", u.trim_end_matches('/')))
            .into_iter()
            .collect()
    }

    /// Mirrors heard from within `secs` seconds, as feeder candidates.
    pub fn live_mirrors(&self, secs: f64) -> Vec<shoal_swarm::Candidate> {
        self.peers
            .lock()
            .unwrap()
            .list()
            .into_iter()
            .filter(|(p, heard)| p.role == "mirror" && heard.as_secs_f64() < secs)
            .map(|(p, _)| shoal_swarm::Candidate::new(&p.name))
            .collect()
    }

    /// Origin: tells the swarm schedule what it has sent of each pack
    /// (librqbit's upload counter), so a feeder running low is given its
    /// next pack without waiting for its next announce.
    fn feed_progress(&self) {
        let params =
            shoal_swarm::Params::for_interval(self.cfg.network.announce_interval.as_secs_f64());
        let live = self.live_mirrors(params.dead_after);
        let now = self.clock();
        let sent: Vec<(String, u64)> = self
            .bt
            .all()
            .iter()
            .map(|t| (t.info_hash.clone(), t.handle.stats().uploaded_bytes))
            .collect();
        let mut s = self.schedule.lock().unwrap();
        for (ih, up) in sent {
            s.progress(&ih, up, &live, now);
        }
    }

    /// Seconds on the swarm schedule's clock.
    pub fn clock(&self) -> shoal_swarm::Secs {
        self.epoch.elapsed().as_secs_f64()
    }

    /// The /status document as of now (with the process's memory).
    pub fn status_now(&self) -> shoal_status::Status {
        let mut st = self.status.lock().unwrap().clone();
        (st.memory_bytes, st.memory_peak_bytes) = crate::memory::resident();
        st
    }

    /// Refreshes the per-pack part of /status from librqbit.
    pub fn refresh_pack_status(&self) {
        self.bt.set_directory(
            self.peers
                .lock()
                .unwrap()
                .list()
                .into_iter()
                .map(|(p, _)| {
                    let role = if p.role == "origin" {
                        shoal_config::Role::Origin
                    } else {
                        shoal_config::Role::Mirror
                    };
                    (p.peer_addr, bt::client_name(role, &p.name))
                })
                .collect(),
        );
        self.bt.sample();
        if self.cfg.role == shoal_config::Role::Origin {
            self.feed_progress();
        }
        let totals = self.bt.totals();
        let mut packs = Vec::new();
        for t in self.bt.all() {
            let s = t.handle.stats();
            let state = match (&s.state, s.finished) {
                (librqbit::TorrentStatsState::Initializing { .. }, _) => "checking",
                (librqbit::TorrentStatsState::Live, true) => "seeding",
                (librqbit::TorrentStatsState::Live, false) => "downloading",
                (librqbit::TorrentStatsState::Paused, _) => "paused",
                (librqbit::TorrentStatsState::Error, _) => "error",
            };
            let peers = s
                .live
                .as_ref()
                .map(|l| l.snapshot.peer_stats.live as u64)
                .unwrap_or(0);
            packs.push(shoal_status::PackStatus {
                id: t.id,
                info_hash: t.info_hash.clone(),
                files: t.files,
                bytes: s.total_bytes,
                have_bytes: s.progress_bytes,
                state: state.into(),
                uploaded_bytes: s.uploaded_bytes,
                downloaded_bytes: s
                    .live
                    .as_ref()
                    .map(|l| l.snapshot.fetched_bytes)
                    .unwrap_or(0),
                peers,
                waiting: self.pack_notes.lock().unwrap().get(&t.id).cloned(),
            });
        }
        packs.extend(
            self.bt
                .resting()
                .into_iter()
                .map(|r| shoal_status::PackStatus {
                    id: r.id,
                    info_hash: r.info_hash,
                    files: r.files,
                    bytes: r.bytes,
                    have_bytes: r.bytes,
                    state: "resting".into(),
                    ..Default::default()
                }),
        );
        packs.sort_by_key(|p| p.id);
        let peer_list = self.peers.lock().unwrap().list();
        let mut st = self.status.lock().unwrap();
        st.packs = packs;
        st.bytes_down = totals.down;
        st.bytes_down_by_peer = totals.down_by_peer;
        st.bytes_up = totals.up;
        st.peers = peer_list
            .into_iter()
            .map(|(p, age)| shoal_status::PeerStatus {
                name: p.name,
                role: p.role,
                url: p.url,
                peer_addr: p.peer_addr.to_string(),
                generation: p.generation,
                last_seen_seconds: age.as_secs(),
            })
            .collect();
    }
}

/// Why a listen address cannot be bound, and what to do.
pub fn explain_bind(
    e: std::io::Error,
    addr: std::net::SocketAddr,
    what: &str,
    setting: &str,
) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "another program (maybe another shoal-agent) uses it: pick a free port with {setting}"
        ),
        Some(libc::EADDRNOTAVAIL) => format!(
            "this host has no address {}: use one of its own addresses (see `ip addr`), or \
             0.0.0.0 for all, in {setting}",
            addr.ip()
        ),
        Some(libc::EACCES) => format!(
            "ports below 1024 need root or CAP_NET_BIND_SERVICE: pick a port above 1023 in \
             {setting}"
        ),
        _ => format!("check {setting}"),
    };
    anyhow::anyhow!("cannot listen for {what} on {addr}: {e}; {hint}")
}

/// The default agent name: the host's fully qualified name, as Puppet
/// (`networking.fqdn`) and Ansible (`ansible_fqdn`) pass it, so trace files
/// and peer entries are named alike whatever deployed the agent. Like
/// `hostname -f` on Debian it takes the canonical name from `/etc/hosts`,
/// but never asks DNS (an agent must not send queries it was not told to);
/// without a dotted name there, the plain host name.
pub fn hostname() -> String {
    let short = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    if short.contains('.') {
        return short;
    }
    std::fs::read_to_string("/etc/hosts")
        .ok()
        .and_then(|hosts| fqdn_from_hosts(&hosts, &short))
        .unwrap_or(short)
}

/// The canonical name of `short` in an `/etc/hosts` text: the first name
/// with a dot on the first line that lists `short` (what the resolver
/// returns as the canonical name for it).
pub fn fqdn_from_hosts(hosts: &str, short: &str) -> Option<String> {
    hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
        .find(|names| names.contains(&short))
        .and_then(|names| {
            names
                .into_iter()
                .find(|n| n.contains('.') && n.split('.').next() == Some(short))
                .map(str::to_string)
        })
}

/// The key this agent signs its peer entry with, and the origin's public
/// key. A mirror makes its node key on first start (mode 0600).
fn keys(cfg: &AgentConfig, store: &Store) -> Result<(shoal_manifest::signed::PrivateKey, String)> {
    use shoal_manifest::signed::{PrivateKey, PublicKey};
    match cfg.role {
        Role::Origin => {
            let k = origin::read_key(cfg)?;
            let pk = k.public().to_string_key();
            Ok((k, pk))
        }
        Role::Mirror => {
            let text = cfg
                .mirror
                .origin_key
                .as_deref()
                .context("mirror.origin_key is not set")?;
            let origin = PublicKey::parse(text)
                .context("mirror.origin_key")?
                .to_string_key();
            let path = store.node_key();
            let k = match std::fs::read_to_string(&path) {
                Ok(t) => PrivateKey::from_file_text(&t).with_context(|| {
                    format!(
                        "{} is corrupt; remove it (a new one is made)",
                        path.display()
                    )
                })?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let k = PrivateKey::generate();
                    fsutil::atomic_write(&path, k.to_file_text().as_bytes())?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .map_err(|e| fsutil::explain_io(e, &path))?;
                    k
                }
                Err(e) => return Err(fsutil::explain_io(e, &path)),
            };
            Ok((k, origin))
        }
    }
}

/// Takes the state directory's lock so two agents never share one.
fn lock_state(store: &Store) -> Result<std::fs::File> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(store.lock_file())
        .map_err(|e| fsutil::explain_io(e, &store.lock_file()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a file descriptor we own.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let holder = std::fs::read_to_string(store.lock_file()).unwrap_or_default();
        bail!(
            "state directory {} is in use by another shoal-agent (pid {}); stop it or use \
             another --state",
            store.root.display(),
            holder.trim()
        );
    }
    let _ = f.set_len(0);
    use std::io::Write;
    let _ = (&f).write_all(std::process::id().to_string().as_bytes());
    Ok(f)
}

/// Runs an agent until SIGINT/SIGTERM.
pub async fn run(cfg: AgentConfig) -> Result<()> {
    let name = cfg.name.clone().unwrap_or_else(hostname);
    // The repository: an origin reads it, a mirror writes it.
    match cfg.role {
        Role::Origin => {
            let m = std::fs::metadata(&cfg.repo).map_err(|e| {
                anyhow::anyhow!(
                    "repository {} cannot be read ({e}); create it or fix --repo",
                    cfg.repo.display()
                )
            })?;
            if !m.is_dir() {
                bail!("repository {} is not a directory", cfg.repo.display());
            }
        }
        Role::Mirror => fsutil::check_writable_dir(&cfg.repo, "repository")?,
    }
    fsutil::check_writable_dir(&cfg.state, "state directory")?;
    linkcheck::check(&cfg)?;
    let store = Store::new(&cfg.state);
    let lock = lock_state(&store)?;
    let (node_key, origin_key) = keys(&cfg, &store)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| explain_bind(e, cfg.listen, "HTTP", "listen / --listen"))?;
    let bt = bt::Bt::start(&cfg, &name).await?;
    let status = Status {
        role: cfg.role.to_string(),
        name: name.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        url: cfg.advertise_url(),
        peer_addr: cfg.peer_listen().map(|a| a.to_string()).unwrap_or_default(),
        profile: cfg.profile.to_string(),
        state: "starting".into(),
        ..Default::default()
    };
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
        .user_agent(format!("shoal-agent/{}", env!("CARGO_PKG_VERSION")))
        .build()?;
    let agent = Arc::new(Agent {
        cfg,
        name,
        store,
        bt,
        status: Mutex::new(status),
        peers: Mutex::new(peers::PeerTable::default()),
        kick: tokio::sync::Notify::new(),
        origin: tokio::sync::Mutex::new(origin::OriginState::default()),
        client,
        pack_notes: Mutex::new(Default::default()),
        schedule: Mutex::new(shoal_swarm::Schedule::new()),
        epoch: std::time::Instant::now(),
        damaged: Mutex::new(Vec::new()),
        node_key,
        origin_key,
        _lock: lock,
    });
    tracing::info!(
        role = %agent.cfg.role,
        name = %agent.name,
        http = %agent.cfg.listen,
        peers = %agent.cfg.peer_listen().unwrap(),
        repo = %agent.cfg.repo.display(),
        dht = agent.cfg.network.dht,
        lsd = agent.cfg.network.lsd,
        upnp = agent.cfg.network.upnp,
        "shoal-agent starting"
    );

    let admin_listener = admin::bind(&agent)?;
    let http_task = tokio::spawn(http::serve(agent.clone(), listener));
    let admin_task = tokio::spawn(admin::serve(agent.clone(), admin_listener));
    let sampler = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let mut tick = 0u32;
            loop {
                if tick.is_multiple_of(10) {
                    agent.refresh_pack_status();
                } else {
                    agent.bt.note_names();
                }
                tick = tick.wrapping_add(1);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let rester = {
        let agent = agent.clone();
        tokio::spawn(async move {
            let every = rest::sweep_every(agent.cfg.network.rest_after);
            loop {
                tokio::time::sleep(every).await;
                rest::sweep(&agent).await;
            }
        })
    };
    let role_task = {
        let agent = agent.clone();
        tokio::spawn(async move {
            match agent.cfg.role {
                Role::Origin => origin::run(agent).await,
                Role::Mirror => mirror::run(agent).await,
            }
        })
    };

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let result = tokio::select! {
        _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted, stopping"); Ok(()) }
        _ = term.recv() => { tracing::info!("terminated, stopping"); Ok(()) }
        r = role_task => r.context("role task panicked")?,
        r = http_task => r.context("HTTP task panicked")?.context("HTTP server failed"),
        r = admin_task => r.context("admin task panicked")?.context("admin socket failed"),
    };
    sampler.abort();
    rester.abort();
    agent.bt.session.stop().await;
    let _ = std::fs::remove_file(agent.store.admin_socket());
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_name_is_the_canonical_name_from_etc_hosts() {
        let hosts = "127.0.0.1\tlocalhost\n# 127.0.1.1 m1.wrong.org m1\n\
                     127.0.1.1\tm1.example.org m1  # Debian's installer line\n\
                     ::1 localhost ip6-localhost\n";
        assert_eq!(
            super::fqdn_from_hosts(hosts, "m1").as_deref(),
            Some("m1.example.org")
        );
        assert_eq!(super::fqdn_from_hosts(hosts, "m2"), None);
        // A dotted name for another host on the same line is not ours.
        assert_eq!(
            super::fqdn_from_hosts("10.0.0.1 other.example.org m3\n", "m3"),
            None
        );
    }
}
