//! Resting packs: complete packs nobody is fetching stay out of the
//! librqbit session.
//!
//! librqbit keeps per-file state for every torrent in its session and
//! re-reads and re-hashes all of a torrent's data whenever one is added
//! (it has no trusted fast resume). On a mirror holding a whole archive
//! that is gigabytes of memory and, after every restart, hours of disk
//! reads, for packs that every peer already holds. So a pack moves between
//! two states:
//!
//! - **in the session** (checking, downloading, seeding): new packs, and
//!   packs some peer is fetching;
//! - **resting**: complete, with no peer for `network.rest_after`. It is
//!   sealed ([`seal_of`]: the names, sizes, mtimes and inodes of its files,
//!   hashed, in `state/seals/<pack-id>`) and leaves the session; its files
//!   stay where the live tree links to them.
//!
//! At start-up a pack whose seal still matches its folder rests at once:
//! not one byte of it is read. A pack without a seal, or whose files
//! changed since, is added to the session and checked, as before.
//!
//! A resting pack is woken ([`wake`]) by this agent's tracker when a peer
//! that still lacks bytes of it announces (on an origin: only when the
//! swarm schedule gives that peer the origin). librqbit then checks it
//! (the one read of its data) and it seeds; the waking agent also dials
//! the asker, so the asker need not wait for its own retry.

use crate::Agent;
use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A complete pack kept out of the BitTorrent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resting {
    pub id: u64,
    pub info_hash: String,
    /// Number of contents.
    pub files: u64,
    /// Bytes of content.
    pub bytes: u64,
}

/// The seal of a pack folder: SHA-256 over every file's relative name,
/// size, mtime and inode, in name order. Reads directories and inodes,
/// never file data.
pub fn seal_of(dir: &Path) -> std::io::Result<String> {
    let mut found = Vec::new();
    walk(dir, "", &mut found)?;
    found.sort();
    let mut h = Sha256::new();
    for (name, size, mtime, ino) in &found {
        h.update(format!("{name}\0{size}\0{mtime}\0{ino}\n").as_bytes());
    }
    Ok(hex::encode(h.finalize()))
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, u64, i64, u64)>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let m = std::fs::symlink_metadata(e.path())?;
        if m.is_dir() {
            walk(&e.path(), &format!("{name}/"), out)?;
        } else {
            out.push((name, m.len(), crate::fsutil::mtime_ns(&m), m.ino()));
        }
    }
    Ok(())
}

/// Whether the pack's recorded seal still matches its folder: then it may
/// rest without a check.
pub fn sealed(agent: &Agent, id: u64) -> bool {
    let Ok(saved) = std::fs::read_to_string(agent.store.seal(id)) else {
        return false;
    };
    match seal_of(&agent.store.pack_dir(id)) {
        Ok(now) if now == saved.trim() => true,
        Ok(_) => {
            tracing::info!(
                pack = id,
                "pack files changed since it was sealed; checking it again"
            );
            false
        }
        Err(e) => {
            tracing::warn!(pack = id, error = %e, "cannot read the pack folder to compare its seal");
            false
        }
    }
}

/// Seals a pack and takes it out of the session.
async fn put_to_rest(agent: &Arc<Agent>, t: &crate::bt::Torrent) -> Result<()> {
    let dir = agent.store.pack_dir(t.id);
    let seal = tokio::task::spawn_blocking(move || seal_of(&dir))
        .await?
        .with_context(|| format!("cannot seal pack {}", t.id))?;
    let path = agent.store.seal(t.id);
    std::fs::create_dir_all(path.parent().expect("seal path has a parent"))
        .map_err(|e| crate::fsutil::explain_io(e, &path))?;
    crate::fsutil::atomic_write(&path, seal.as_bytes())?;
    let (files, bytes) = (t.files, t.bytes);
    agent
        .bt
        .to_rest(Resting {
            id: t.id,
            info_hash: t.info_hash.clone(),
            files,
            bytes,
        })
        .await?;
    tracing::info!(
        pack = t.id,
        "pack rests: out of the BitTorrent session until a peer needs it"
    );
    Ok(())
}

/// Whether a mirror is between syncs: its apply sets the mtime of the
/// pack files it links into the live tree, so a pack sealed mid-sync would
/// not match its seal after the apply.
fn between_syncs(agent: &Agent) -> bool {
    let st = agent.status.lock().unwrap();
    matches!(st.state.as_str(), "idle" | "upstream-unreachable")
}

/// Puts to rest every pack that has been complete with no live peer for
/// `network.rest_after`. A mirror rests only packs it has verified, and
/// only between syncs.
pub async fn sweep(agent: &Arc<Agent>) {
    let after = agent.cfg.network.rest_after;
    if after.is_zero() {
        return;
    }
    if agent.cfg.role == shoal_config::Role::Mirror && !between_syncs(agent) {
        return;
    }
    let mut rested = 0;
    for t in agent.bt.all() {
        let s = t.handle.stats();
        let peers = s
            .live
            .as_ref()
            .map(|l| l.snapshot.peer_stats.live)
            .unwrap_or(0);
        let idle = s.finished && matches!(s.state, librqbit::TorrentStatsState::Live) && peers == 0;
        let since = {
            let mut i = t.idle_since.lock().unwrap();
            if !idle {
                *i = None;
                continue;
            }
            *i.get_or_insert_with(Instant::now)
        };
        if since.elapsed() < after {
            continue;
        }
        if agent.cfg.role == shoal_config::Role::Mirror && !agent.store.verified(t.id).exists() {
            continue;
        }
        match put_to_rest(agent, &t).await {
            Ok(()) => rested += 1,
            Err(e) => {
                tracing::warn!(pack = t.id, error = %format!("{e:#}"), "pack stays in the session")
            }
        }
    }
    if rested > 0 {
        // librqbit's per-file state of those packs is free now.
        crate::memory::release();
    }
}

/// How often [`sweep`] runs.
pub fn sweep_every(rest_after: Duration) -> Duration {
    (rest_after / 4).clamp(Duration::from_millis(500), Duration::from_secs(30))
}

/// Wakes the resting pack `info_hash` because a peer needs it: adds it to
/// the session (librqbit checks it) with `dial` as a peer to connect to.
/// Returns once it seeds, or with why not. Nothing happens if the pack is
/// not resting (already awake, or being woken by another caller).
pub async fn wake(agent: &Arc<Agent>, info_hash: &str, dial: Option<SocketAddr>) -> Result<()> {
    let Some(r) = agent.bt.take_resting(info_hash) else {
        return Ok(());
    };
    let torrent_path = agent.store.torrent(info_hash);
    let torrent = match std::fs::read(&torrent_path) {
        Ok(t) => t,
        Err(e) => {
            agent.bt.rest(r.clone());
            return Err(crate::fsutil::explain_io(e, &torrent_path))
                .with_context(|| format!("cannot wake pack {}", r.id));
        }
    };
    // Sealed again when it next rests; a kill while it seeds must not
    // leave a seal that a damaged pack would still match.
    let _ = std::fs::remove_file(agent.store.seal(r.id));
    agent.status.lock().unwrap().packs_woken += 1;
    tracing::info!(pack = r.id, peer = ?dial, "a peer needs a resting pack: waking it");
    let t = match agent.cfg.role {
        shoal_config::Role::Mirror => {
            crate::mirror::add_pack(agent, r.id, info_hash, torrent).await?
        }
        shoal_config::Role::Origin => {
            agent
                .bt
                .add(crate::bt::AddPack {
                    id: r.id,
                    info_hash: info_hash.to_string(),
                    torrent,
                    folder: agent.store.pack_dir(r.id),
                    peers: dial.into_iter().collect(),
                    trackers: Vec::new(),
                    announce_interval: agent.cfg.network.announce_interval,
                    read_only: true,
                })
                .await?
        }
    };
    let ok = t.handle.wait_until_initialized().await;
    let s = t.handle.stats();
    if ok.is_ok() && s.finished {
        return Ok(());
    }
    let why = format!(
        "resting pack {} does not check complete in {} ({} of {} bytes)",
        r.id,
        agent.store.pack_dir(r.id).display(),
        s.progress_bytes,
        s.total_bytes
    );
    match agent.cfg.role {
        // A mirror fetches what is missing from its peers.
        shoal_config::Role::Mirror => {
            tracing::warn!(pack = r.id, "{why}; fetching the rest from peers");
        }
        // An origin cannot: the next publish packs its contents again.
        shoal_config::Role::Origin => {
            tracing::error!(
                pack = r.id,
                "{why}; the next publish packs its contents again"
            );
            agent.bt.remove(r.id).await?;
            agent.damaged.lock().unwrap().push(r.id);
            agent.status.lock().unwrap().last_error = Some(format!(
                "{why}: the next publish packs its contents again from the tree"
            ));
            agent.kick.notify_one();
        }
    }
    anyhow::bail!("{why}")
}

/// How many other mirrors a mirror asks directly to wake a pack it needs.
pub const WAKE_ASKS: usize = 4;

/// Asks up to [`WAKE_ASKS`] known mirrors to wake `info_hash` for this
/// agent, with the announce librqbit would send (`left` bytes still
/// missing). librqbit announces a private torrent to its first tracker
/// only, which is an upstream (often the origin): while that one is down,
/// no other mirror would hear that this one needs a pack resting there.
/// The mirrors are chosen per pack by rendezvous hashing, shifted by
/// `round` so that a retry asks others. Fire and forget.
pub fn ask_to_wake(agent: &Arc<Agent>, info_hash: &str, left: u64, round: usize) {
    let Ok(ih) = <[u8; 20]>::try_from(hex::decode(info_hash).unwrap_or_default()) else {
        return;
    };
    let Some(port) = agent.cfg.peer_listen().map(|a| a.port()) else {
        return;
    };
    let me = agent.name.clone();
    let mut urls: Vec<String> = agent
        .peers
        .lock()
        .unwrap()
        .list()
        .into_iter()
        .filter(|(p, _)| p.role == "mirror" && p.name != me)
        .map(|(p, _)| p.url.trim_end_matches('/').to_string())
        .collect();
    if urls.is_empty() {
        return;
    }
    urls.sort_by_key(|u| shoal_swarm::rendezvous(info_hash, u));
    let n = urls.len();
    let chosen: Vec<String> = (0..WAKE_ASKS.min(n))
        .map(|i| urls[(round * WAKE_ASKS + i) % n].clone())
        .collect();
    let mut peer_id = [0u8; 20];
    peer_id[..8].copy_from_slice(b"-SH0001-");
    peer_id[8..].copy_from_slice(&Sha256::digest(me.as_bytes())[..12]);
    let q = shoal_pack::tracker::AnnounceQuery {
        info_hash: ih,
        peer_id,
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        compact: true,
        no_peer_id: false,
        event: None,
        numwant: Some(0),
        ip: None,
        agent: Some(me),
    }
    .to_query();
    for u in chosen {
        let client = agent.client.clone();
        let url = format!("{u}/announce?{q}");
        tokio::spawn(async move {
            let r = client
                .get(&url)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if let Err(e) = r {
                tracing::debug!(peer = %u, error = %e, "asking a mirror to wake a pack failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_changes_with_size_mtime_or_inode_and_not_with_reads() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("ab");
        std::fs::create_dir_all(&sub).unwrap();
        let f = sub.join("abcd");
        std::fs::write(&f, b"hello").unwrap();
        std::fs::write(d.path().join("x"), b"x").unwrap();
        let s0 = seal_of(d.path()).unwrap();
        let _ = std::fs::read(&f).unwrap();
        assert_eq!(seal_of(d.path()).unwrap(), s0, "reading changes nothing");

        // Same size, other mtime.
        let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        std::fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
        let s1 = seal_of(d.path()).unwrap();
        assert_ne!(s1, s0, "an mtime change breaks the seal");

        // Same size and mtime, other inode (a file replaced).
        let g = sub.join("tmp");
        std::fs::write(&g, b"HELLO").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&g)
            .unwrap()
            .set_modified(t)
            .unwrap();
        std::fs::rename(&g, &f).unwrap();
        assert_ne!(
            seal_of(d.path()).unwrap(),
            s1,
            "a new inode breaks the seal"
        );

        // A file removed.
        let s2 = seal_of(d.path()).unwrap();
        std::fs::remove_file(d.path().join("x")).unwrap();
        assert_ne!(
            seal_of(d.path()).unwrap(),
            s2,
            "a missing file breaks the seal"
        );
    }

    #[test]
    fn sweeps_run_often_enough_for_short_and_long_settings() {
        assert_eq!(
            sweep_every(Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(sweep_every(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(
            sweep_every(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
    }
}
