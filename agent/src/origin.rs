//! The origin: publishes the repository folder as signed generations.
//!
//! A publish:
//! 1. walks the tree (sorted) and reuses the previous manifest's hash for
//!    every file whose size and mtime are unchanged;
//! 2. hashes the rest in one read pass each, on all cores, computing
//!    SHA-256 and the pack piece SHA-1s together ([`shoal_pack::hash_file`]).
//!    Files that may be rewritten in place are copied into the state dir
//!    while they are hashed, so the origin only ever seeds bytes it
//!    controls; files matching `origin.immutable` are hard-linked instead;
//! 3. packs the contents no live pack carries yet (and compacts packs that
//!    are mostly garbage, reusing their piece hashes) into new packs;
//! 4. starts seeding the new packs, then writes the manifest (the chunks
//!    of entries that changed, then the signed root that lists every
//!    chunk; see [`shoal_manifest`]), the delta from the previous
//!    generation, and last the head.
//!
//! A file that changes while it is being hashed makes the publish fail
//! with an error naming it; the next publish picks it up.

use crate::shatable::ShaTable;
use crate::{fsutil, gate, Agent};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shoal_config::Profile;
use shoal_manifest::signed::PrivateKey;
use shoal_manifest::{Entries, EntryRef, Header, KindRef, Manifest, PackRef, Sha256Hash, FORMAT};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A live pack: how many contents and bytes its torrent carries.
///
/// Its content list stays in its torrent, read again ([`parse_pack`]) by
/// the rare step that needs it (compaction): the catalog is the one index
/// of contents an origin keeps (at a million contents, a second list per
/// pack was 40 MB).
#[derive(Debug, Clone)]
pub struct LivePack {
    pub info_hash: String,
    /// How many contents it carries.
    files: u64,
    /// Bytes of its contents (not counting padding).
    bytes: u64,
}

impl LivePack {
    fn of(info_hash: String, parsed: &shoal_pack::ParsedPack) -> Self {
        LivePack {
            info_hash,
            files: parsed.files.len() as u64,
            bytes: parsed.files.iter().map(|f| f.1).sum(),
        }
    }

    fn bytes(&self) -> u64 {
        self.bytes
    }

    fn files(&self) -> u64 {
        self.files
    }
}

/// A pack the current generation no longer names, still seeded until
/// `until` (Unix time) for mirrors finishing an older generation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Retiring {
    pub info_hash: String,
    pub until: i64,
}

/// What the origin remembers between publishes. Only a publish that
/// succeeded changes it ([`publish`] is a transaction).
#[derive(Default)]
pub struct OriginState {
    pub manifest: Option<Manifest>,
    /// The hash of `manifest`'s root (the next generation's `prev_sha256`).
    manifest_sha: Option<Sha256Hash>,
    /// The packs the current generation names.
    pub packs: BTreeMap<u64, LivePack>,
    /// Content → the live pack carrying it.
    pub catalog: ShaTable<u64>,
    /// Content → number of entries of the current generation naming it
    /// (contents with bytes only).
    refs: ShaTable<u32>,
    /// Live pack → bytes of its contents the current generation names
    /// (what compaction judges a pack by).
    live: HashMap<u64, u64>,
    /// Packs dropped by a recent generation, still seeded for a while.
    pub retiring: BTreeMap<u64, Retiring>,
    pub loaded: bool,
    /// Every pack id below this was used once (kept in `state/last-pack-id`):
    /// an id is never given to a second pack, since a mirror that was away
    /// may still hold the first one under it.
    pub id_floor: u64,
    /// The current generation was published in an older format (before an
    /// upgrade): the next publish goes ahead even if nothing changed, so
    /// upgraded mirrors get a head they read.
    pub older_format: bool,
}

impl OriginState {
    /// The id the next new pack gets (never one still on disk or seeded).
    fn next_pack_id(&self) -> u64 {
        let live = self.packs.keys().max().copied().unwrap_or(0);
        let old = self.retiring.keys().max().copied().unwrap_or(0);
        (live.max(old) + 1).max(self.id_floor)
    }
}

/// A publish that changes or removes more paths than this writes no delta:
/// a delta lists every changed entry in one document, which the origin
/// and each mirror hold whole (a change of a million paths took them to
/// about 970 and 640 MB), while a mirror without one fetches the new root
/// and only the chunks it does not hold, which carry the same change.
const DELTA_MAX_PATHS: usize = 50_000;

/// Chunks compressed and written at a time: a first publish of a million
/// files has about 16,000 (some 70 MB compressed).
const CHUNK_BATCH: usize = 512;

/// Packs whose live contents fall below this share of their bytes are
/// compacted into fresh packs.
const COMPACT_BELOW: f64 = 0.5;

pub async fn run(agent: Arc<Agent>) -> Result<()> {
    load_key(&agent)?;
    {
        let mut st = agent.origin.lock().await;
        load_state(&agent, &mut st).await?;
    }
    let interval = agent.cfg.origin.publish_interval;
    // Publish only on admin calls when the interval is 0, but still re-sign
    // before expiry.
    let wait = if interval.is_zero() {
        agent.cfg.origin.manifest_ttl / 4
    } else {
        interval
    };
    let mut waiting = gate::Waiting::default();
    loop {
        let nap = match publish(&agent).await {
            Ok(_) => {
                waiting.open();
                wait
            }
            Err(e) => match gate::closed_of(&e) {
                // A lock or a changing tree: look again soon, publish as
                // soon as the gate opens.
                Some(c) => {
                    waiting.hold(c);
                    c.retry_after(gate::now_ns()).min(wait)
                }
                None => {
                    agent.set_error(&e);
                    wait
                }
            },
        };
        let next = Instant::now() + nap;
        // Wake at least once a minute to stop seeding retired packs.
        loop {
            let left = next.saturating_duration_since(Instant::now());
            let nap = left.min(std::time::Duration::from_secs(60));
            if tokio::time::timeout(nap, agent.kick.notified())
                .await
                .is_ok()
            {
                break;
            }
            expire_retired(&agent, &mut *agent.origin.lock().await).await;
            if Instant::now() >= next {
                break;
            }
        }
    }
}

fn load_key(agent: &Agent) -> Result<PrivateKey> {
    read_key(&agent.cfg)
}

/// The origin's private key, from `origin.key`.
pub fn read_key(cfg: &shoal_config::AgentConfig) -> Result<PrivateKey> {
    let path = cfg.origin.key.as_ref().context("origin.key is not set")?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the origin key {} ({e}); create it with `shoal-agent keygen --out {}`",
            path.display(),
            path.display()
        )
    })?;
    PrivateKey::from_file_text(&text).with_context(|| format!("{}", path.display()))
}

/// Reads a pack's `.torrent` from the state dir and checks it.
fn parse_pack(agent: &Agent, id: u64, info_hash: &str) -> Result<shoal_pack::ParsedPack> {
    let path = agent.store.torrent(info_hash);
    let t = std::fs::read(&path)
        .with_context(|| format!("torrent of pack {id} is missing ({})", path.display()))?;
    shoal_pack::parse_torrent(&t, Some(info_hash))
        .with_context(|| format!("torrent of pack {id} ({})", path.display()))
}

/// Loads the last published generation and starts seeding its packs. A
/// pack whose store does not check complete (damaged on disk) is dropped:
/// the next publish, which follows at once, packs its contents again from
/// the tree, so the origin repairs itself.
async fn load_state(agent: &Arc<Agent>, st: &mut OriginState) -> Result<()> {
    let key = load_key(agent)?;
    let pk = key.public();
    let head_path = agent.store.head();
    let mut damaged = Vec::new();
    // Content → pack, for every pack of the last generation.
    let mut catalog: Vec<([u8; 32], u64)> = Vec::new();
    if head_path.exists() {
        // Its own head: only its generation is needed (read whatever the
        // format, so a head written before an upgrade still counts).
        let head: shoal_manifest::Head =
            serde_json::from_slice(&pk.open("head", &std::fs::read(&head_path)?)?)
                .context("the origin's own head is corrupt")?;
        let (m, sha) = agent
            .store
            .read_manifest(&pk, head.generation)
            .with_context(|| {
                format!(
                    "the head names generation {} but its manifest cannot be read",
                    head.generation
                )
            })?;
        for p in &m.header.packs {
            match parse_pack(agent, p.id, &p.info_hash) {
                Ok(parsed) => {
                    catalog.extend(parsed.files.iter().map(|(sha, _)| (*sha, p.id)));
                    st.packs
                        .insert(p.id, LivePack::of(p.info_hash.clone(), &parsed));
                }
                Err(e) => {
                    tracing::warn!(pack = p.id, error = %format!("{e:#}"), "pack unreadable; its contents will be packed again");
                    damaged.push(p.id);
                }
            }
        }
        tracing::info!(
            generation = m.header.generation,
            packs = st.packs.len(),
            "loaded last publication"
        );
        agent.record_generation(&m);
        st.manifest = Some(m);
        st.manifest_sha = Some(sha);
        st.older_format = head.format < FORMAT;
    }
    // Packs retired by recent generations: seed on until their time is up.
    let now = fsutil::now();
    let saved: BTreeMap<u64, Retiring> = std::fs::read(agent.store.retiring())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut retiring_packs = BTreeMap::new();
    for (id, r) in saved {
        if r.until <= now || st.packs.contains_key(&id) {
            continue;
        }
        if let Ok(parsed) = parse_pack(agent, id, &r.info_hash) {
            retiring_packs.insert(id, LivePack::of(r.info_hash.clone(), &parsed));
            st.retiring.insert(id, r);
        }
    }
    // One check of everything, so /status reports it whole.
    let bad = seed_or_rest(agent, st.packs.iter().chain(retiring_packs.iter())).await?;
    for (id, why) in bad {
        if st.packs.remove(&id).is_some() {
            tracing::warn!(
                pack = id,
                "{why}; its contents will be packed again from the tree"
            );
            damaged.push(id);
        } else {
            st.retiring.remove(&id);
        }
    }
    catalog.retain(|(_, id)| st.packs.contains_key(id));
    st.catalog = catalog.into_iter().collect();
    if let Some(m) = &st.manifest {
        (st.refs, st.live) = count_refs(m, &st.catalog);
    }
    save_retiring(agent, st)?;
    st.id_floor = std::fs::read_to_string(agent.store.last_pack_id())
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map(|last| last + 1)
        .unwrap_or(0);
    remove_stray_packs(agent, st);
    if !damaged.is_empty() {
        agent.status.lock().unwrap().last_error = Some(format!(
            "pack store damaged for packs {damaged:?}: they are packed again from the tree by              the next publish"
        ));
    }
    st.loaded = true;
    Ok(())
}

/// How many entries of `m` name each content, and how many bytes of each
/// pack `m` names: the counts a publish then keeps up to date from its
/// changes ([`pack_plan`], [`commit`]).
fn count_refs(m: &Manifest, catalog: &ShaTable<u64>) -> (ShaTable<u32>, HashMap<u64, u64>) {
    // Every named content with bytes, sorted, then counted in runs: no
    // map with a hash map's slack at a million contents.
    let mut named: Vec<(u64, [u8; 32])> = m
        .entries()
        .filter_map(|e| e.file())
        .filter(|(size, _, _)| *size > 0)
        .map(|(size, sha, _)| (size, sha.0))
        .collect();
    named.sort_unstable_by_key(|a| a.1);
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut counts: Vec<([u8; 32], u32)> = Vec::new();
    for (size, sha) in named {
        match counts.last_mut() {
            Some((last, n)) if *last == sha => *n += 1,
            _ => {
                if let Some(id) = catalog.get(&sha) {
                    *live.entry(id).or_default() += size;
                }
                counts.push((sha, 1));
            }
        }
    }
    (counts.into_iter().collect(), live)
}

/// Seeds stored packs again: a pack whose seal still matches rests without
/// a check ([`crate::rest`]); the others are checked by librqbit
/// ([`seed_packs`]), whose verdict this returns.
async fn seed_or_rest<'a>(
    agent: &Arc<Agent>,
    packs: impl Iterator<Item = (&'a u64, &'a LivePack)>,
) -> Result<Vec<(u64, String)>> {
    let mut check = Vec::new();
    for (id, p) in packs {
        if crate::rest::sealed(agent, *id) {
            agent.bt.rest(crate::rest::Resting {
                id: *id,
                info_hash: p.info_hash.clone(),
                files: p.files(),
                bytes: p.bytes(),
            });
        } else {
            check.push(ToSeed::stored(agent, *id, p)?);
        }
    }
    let bad = seed_packs(agent, check).await?;
    for (id, _) in &bad {
        let _ = std::fs::remove_file(agent.store.seal(*id));
    }
    Ok(bad)
}

/// Drops the packs a wake found damaged ([`crate::rest::wake`]) from the
/// current state, so this publish packs their contents again.
fn drop_damaged(agent: &Agent, st: &mut OriginState) {
    let ids: Vec<u64> = std::mem::take(&mut *agent.damaged.lock().unwrap());
    for id in ids {
        if st.packs.remove(&id).is_some() {
            st.catalog.retain(|_, p| *p != id);
            st.live.remove(&id);
            tracing::warn!(
                pack = id,
                "pack damaged on disk: packing its contents again"
            );
        }
        st.retiring.remove(&id);
    }
}

/// Removes pack folders that no generation names (a publish that failed
/// or was killed half-way leaves them).
fn remove_stray_packs(agent: &Agent, st: &OriginState) {
    let Ok(rd) = std::fs::read_dir(agent.store.packs_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if !st.packs.contains_key(&id) && !st.retiring.contains_key(&id) {
            tracing::info!(pack = id, "removing a pack folder no generation names");
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn save_retiring(agent: &Agent, st: &OriginState) -> Result<()> {
    fsutil::atomic_write(&agent.store.retiring(), &serde_json::to_vec(&st.retiring)?)
}

/// Stops seeding retired packs whose time is up and deletes their store.
async fn expire_retired(agent: &Arc<Agent>, st: &mut OriginState) {
    let now = fsutil::now();
    let expired: Vec<u64> = st
        .retiring
        .iter()
        .filter(|(_, r)| r.until <= now)
        .map(|(id, _)| *id)
        .collect();
    if expired.is_empty() {
        return;
    }
    for id in &expired {
        if let Err(e) = agent.bt.remove(*id).await {
            tracing::warn!(pack = id, error = %format!("{e:#}"), "cannot stop seeding a retired pack");
        }
        let _ = std::fs::remove_dir_all(agent.store.pack_dir(*id));
        let _ = std::fs::remove_file(agent.store.seal(*id));
        st.retiring.remove(id);
    }
    tracing::info!(packs = ?expired, "stopped seeding retired packs");
    if let Err(e) = save_retiring(agent, st) {
        tracing::warn!(error = %format!("{e:#}"), "cannot record retired packs");
    }
}

/// A pack to seed: its id, info hash, `.torrent` bytes and data size.
struct ToSeed {
    id: u64,
    info_hash: String,
    torrent: Vec<u8>,
    bytes: u64,
}

impl ToSeed {
    /// A pack whose `.torrent` is already in the state dir.
    fn stored(agent: &Agent, id: u64, p: &LivePack) -> Result<ToSeed> {
        Ok(ToSeed {
            id,
            info_hash: p.info_hash.clone(),
            torrent: std::fs::read(agent.store.torrent(&p.info_hash))?,
            bytes: p.bytes(),
        })
    }
}

/// Adds packs to the BitTorrent session and waits until librqbit has
/// checked them. Returns the packs that did not check complete (removed
/// from the session again), with why.
async fn seed_packs(agent: &Arc<Agent>, packs: Vec<ToSeed>) -> Result<Vec<(u64, String)>> {
    let started = Instant::now();
    let mut bytes = 0;
    let mut handles = Vec::new();
    for p in packs {
        let t = agent
            .bt
            .add(crate::bt::AddPack {
                id: p.id,
                info_hash: p.info_hash,
                torrent: p.torrent,
                folder: agent.store.pack_dir(p.id),
                peers: Vec::new(),
                trackers: Vec::new(),
                announce_interval: agent.cfg.network.announce_interval,
                read_only: true,
            })
            .await?;
        bytes += p.bytes;
        handles.push(t);
    }
    let mut bad = Vec::new();
    for t in handles {
        let ok = t.handle.wait_until_initialized().await;
        let s = t.handle.stats();
        if ok.is_err() || !s.finished {
            bad.push((
                t.id,
                format!(
                    "pack {} does not check complete in {} ({} of {} bytes)",
                    t.id,
                    agent.store.pack_dir(t.id).display(),
                    s.progress_bytes,
                    s.total_bytes,
                ),
            ));
            agent.bt.remove(t.id).await?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut s = agent.status.lock().unwrap();
    s.last_check_seconds = Some(secs);
    s.last_check_bytes = bytes;
    Ok(bad)
}

/// One path found by the scan.
#[derive(Debug, Clone, PartialEq)]
enum Found {
    /// Only while walking: a directory to descend into.
    Dir,
    /// `ctime_ns`: when the inode last changed (0 when not stat-ed: an
    /// unlisted path of a change-list scan), for the publish gate.
    File {
        size: u64,
        mtime_ns: i64,
        mode: u32,
        ctime_ns: i64,
    },
    Symlink {
        target: Box<str>,
        mode: u32,
        mtime_ns: i64,
        ctime_ns: i64,
    },
}

impl Found {
    /// The inode change time, if this is a file or symlink that was stat-ed.
    fn ctime_ns(&self) -> i64 {
        match self {
            Found::Dir => 0,
            Found::File { ctime_ns, .. } | Found::Symlink { ctime_ns, .. } => *ctime_ns,
        }
    }
}

/// Walks `root` in sorted order. Non-UTF-8 names are an error; symlinks
/// leaving the tree and special files are skipped with a warning.
/// Paths found, warnings about paths skipped, and the newest change to a
/// folder seen (for the publish gate's quiet-tree check; files carry their
/// own ctime, see [`newest_change`]).
type Walked = (Vec<(String, Found)>, Vec<String>, gate::Newest);

fn scan(root: &Path, exclude: &globset::GlobSet) -> Result<Walked> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut newest = gate::Newest::default();
    if let Ok(m) = std::fs::symlink_metadata(root) {
        newest.note("", &m);
    }
    walk(root, "", exclude, &mut out, &mut warnings, &mut newest)?;
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok((out, warnings, newest))
}

/// What a scan found against the previous generation.
#[derive(Debug, Default)]
struct Scanned {
    /// Files and symlinks that are new or differ from the previous
    /// generation (kind, size, mtime, mode or target), sorted by path:
    /// every one found when there is no previous generation.
    found: Vec<(String, Found)>,
    /// Paths of the previous generation that are gone, sorted.
    removed: Vec<String>,
    warnings: Vec<String>,
    /// The newest folder change seen.
    newest: gate::Newest,
}

/// Whether what is at a path now differs from the previous generation's
/// entry there, by what a scan sees (not the content's hash).
fn differs(f: &Found, e: EntryRef<'_>) -> bool {
    match (f, e.kind()) {
        (
            Found::File {
                size,
                mtime_ns,
                mode,
                ..
            },
            KindRef::File { size: s, .. },
        ) => *size != s || *mtime_ns != e.mtime_ns() || *mode != e.mode(),
        (
            Found::Symlink {
                target,
                mode,
                mtime_ns,
                ..
            },
            KindRef::Symlink { target: t },
        ) => &**target != t || *mtime_ns != e.mtime_ns() || *mode != e.mode(),
        _ => true,
    }
}

/// A full walk against the previous generation: one merge pass over both
/// sorted lists keeps what differs and lists what is gone.
fn changed_since(prev: Option<&Manifest>, walked: Walked) -> Scanned {
    let (all, warnings, newest) = walked;
    let Some(prev) = prev else {
        return Scanned {
            found: all,
            removed: Vec::new(),
            warnings,
            newest,
        };
    };
    let mut found = Vec::new();
    let mut removed = Vec::new();
    let mut olds = prev.entries().peekable();
    for (path, f) in all {
        while let Some(o) = olds.next_if(|o| o.path().as_bytes() < path.as_bytes()) {
            removed.push(o.path().to_owned());
        }
        match olds.next_if(|o| o.path() == path) {
            Some(o) if !differs(&f, o) => {}
            _ => found.push((path, f)),
        }
    }
    removed.extend(olds.map(|o| o.path().to_owned()));
    Scanned {
        found,
        removed,
        warnings,
        newest,
    }
}

/// Adds to `out` everything under `dir` (whose path relative to the root
/// is `rel`), unsorted.
fn walk(
    dir: &Path,
    rel: &str,
    exclude: &globset::GlobSet,
    out: &mut Vec<(String, Found)>,
    warnings: &mut Vec<String>,
    newest: &mut gate::Newest,
) -> Result<()> {
    let mut stack = vec![(dir.to_path_buf(), rel.to_string())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| fsutil::explain_io(e, &dir))?;
        let names: Vec<std::ffi::OsString> = rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| fsutil::explain_io(e, &dir))?;
        for name in names {
            let Some(n) = name.to_str() else {
                bail!(
                    "publish refused: {} has a name that is not valid UTF-8 ({:?}); rename it \
                     or add it to origin.exclude",
                    dir.display(),
                    String::from_utf8_lossy(name.as_bytes())
                );
            };
            let relp = if rel.is_empty() {
                n.to_string()
            } else {
                format!("{rel}/{n}")
            };
            if exclude.is_match(&relp)
                || fsutil::is_temp_name(OsStr::new(n))
                || gate::is_ftpsync_lock(&relp)
            {
                continue;
            }
            let full = dir.join(&name);
            match found_at(&full, &relp, warnings, newest)? {
                Some(Found::Dir) => stack.push((full, relp)),
                Some(f) => out.push((relp, f)),
                None => {}
            }
        }
    }
    Ok(())
}

/// What is at `full` (relative path `relp`): a file, a symlink inside the
/// tree, a directory, or nothing to publish (with a warning). A
/// directory's ctime goes into `newest` (an entry added, removed or
/// renamed in it).
fn found_at(
    full: &Path,
    relp: &str,
    warnings: &mut Vec<String>,
    newest: &mut gate::Newest,
) -> Result<Option<Found>> {
    let m = std::fs::symlink_metadata(full).map_err(|e| fsutil::explain_io(e, full))?;
    let ft = m.file_type();
    let ctime_ns = m.ctime() * 1_000_000_000 + m.ctime_nsec();
    if ft.is_dir() {
        newest.note(relp, &m);
        Ok(Some(Found::Dir))
    } else if ft.is_file() {
        Ok(Some(Found::File {
            size: m.len(),
            mtime_ns: fsutil::mtime_ns(&m),
            mode: m.mode() & 0o7777,
            ctime_ns,
        }))
    } else if ft.is_symlink() {
        let target = std::fs::read_link(full).map_err(|e| fsutil::explain_io(e, full))?;
        let Some(t) = target.to_str() else {
            warnings.push(format!("{relp}: symlink target is not UTF-8; skipped"));
            return Ok(None);
        };
        if let Err(why) = shoal_manifest::paths::check_symlink(relp, t) {
            warnings.push(format!("{relp} -> {t}: {why}; skipped"));
            return Ok(None);
        }
        Ok(Some(Found::Symlink {
            target: t.into(),
            mode: 0o777,
            mtime_ns: fsutil::mtime_ns(&m),
            ctime_ns,
        }))
    } else {
        warnings.push(format!(
            "{relp}: not a regular file, directory or symlink; skipped"
        ));
        Ok(None)
    }
}

/// Scan from a change list: every listed path (and everything under a
/// listed directory) is looked at again against the previous generation;
/// a listed path that is gone is removed. Nothing else is walked or
/// stat-ed, and the previous generation is only looked up (by binary
/// search), so the cost follows the list. Listed paths must be relative to
/// the repository.
fn scan_listed(
    root: &Path,
    prev: &Manifest,
    listed: &[String],
    exclude: &globset::GlobSet,
) -> Result<Scanned> {
    // Previous paths a listed path replaces or removes, and what the
    // listed paths are now.
    let mut gone: std::collections::BTreeSet<String> = Default::default();
    let mut touched: BTreeMap<String, Found> = BTreeMap::new();
    let mut warnings = Vec::new();
    let mut newest = gate::Newest::default();
    for raw in listed {
        let p = raw.trim().trim_start_matches("./").trim_end_matches('/');
        if p.is_empty() || p == "." {
            continue;
        }
        shoal_manifest::paths::check(p).map_err(|why| {
            anyhow::anyhow!(
                "change list: '{raw}' is not a path inside the repository ({why}); list paths \
                 relative to {}",
                root.display()
            )
        })?;
        // `p` and everything under it ('0' follows '/' in byte order).
        let (lo, hi) = (format!("{p}/"), format!("{p}0"));
        if prev.get(p).is_some() {
            gone.insert(p.to_string());
        }
        gone.extend(prev.entries_under(p).map(|e| e.path().to_owned()));
        touched.remove(p);
        let under: Vec<String> = touched.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in under {
            touched.remove(&k);
        }
        // A file or symlink that became a directory holding `p`.
        for (i, _) in p.match_indices('/') {
            let anc = &p[..i];
            let held = prev.get(anc).is_some() && !gone.contains(anc);
            if (held || touched.contains_key(anc)) && root.join(anc).is_dir() {
                if held {
                    gone.insert(anc.to_string());
                }
                touched.remove(anc);
            }
        }
        if exclude.is_match(p) || gate::is_ftpsync_lock(p) {
            continue;
        }
        let full = root.join(p);
        match std::fs::symlink_metadata(&full) {
            // Gone, or a folder above it became a file (listed too).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                note_nearest_folder(root, p, &mut newest);
                continue;
            }
            Err(e) => return Err(fsutil::explain_io(e, &full)),
            Ok(_) => {}
        }
        match found_at(&full, p, &mut warnings, &mut newest)? {
            Some(Found::Dir) => {
                let mut sub = Vec::new();
                walk(&full, p, exclude, &mut sub, &mut warnings, &mut newest)?;
                touched.extend(sub);
            }
            Some(f) => {
                touched.insert(p.to_string(), f);
            }
            None => {}
        }
    }
    // A path found again replaces its previous entry; one that did not
    // change is no change.
    let removed = gone
        .into_iter()
        .filter(|p| !touched.contains_key(p))
        .collect();
    let found = touched
        .into_iter()
        .filter(|(p, f)| prev.get(p).is_none_or(|e| differs(f, e)))
        .collect();
    Ok(Scanned {
        found,
        removed,
        warnings,
        newest,
    })
}

/// A previous entry as a scan would find it unchanged (never stat-ed).
fn found_of(e: EntryRef<'_>) -> Found {
    match e.kind() {
        KindRef::File { size, .. } => Found::File {
            size,
            mtime_ns: e.mtime_ns(),
            mode: e.mode(),
            ctime_ns: 0,
        },
        KindRef::Symlink { target } => Found::Symlink {
            target: target.into(),
            mode: e.mode(),
            mtime_ns: e.mtime_ns(),
            ctime_ns: 0,
        },
    }
}

/// Entries of the previous generation whose content no live pack carries
/// any more (a pack found damaged was dropped), added to the scan as if
/// they had changed, so they are hashed and packed again. A pass over the
/// previous generation, made only after such a loss.
fn add_lost_contents(st: &OriginState, prev: &Manifest, scanned: &mut Scanned) {
    let lost: Vec<u64> = prev
        .pack_refs()
        .keys()
        .copied()
        .filter(|id| !st.packs.contains_key(id))
        .collect();
    if lost.is_empty() {
        return;
    }
    let known = |p: &str| {
        scanned
            .found
            .binary_search_by(|(f, _)| f.as_str().cmp(p))
            .is_ok()
            || scanned
                .removed
                .binary_search_by(|r| r.as_str().cmp(p))
                .is_ok()
    };
    let extra: Vec<(String, Found)> = naming_packs(prev, &lost, known)
        .map(|e| (e.path().to_owned(), found_of(e)))
        .collect();
    tracing::info!(
        files = extra.len(),
        packs = ?lost,
        "hashing again the files whose packs were lost"
    );
    let mut merged = Vec::with_capacity(scanned.found.len() + extra.len());
    let mut a = std::mem::take(&mut scanned.found).into_iter().peekable();
    for x in extra {
        while let Some(f) = a.next_if(|f| f.0.as_bytes() < x.0.as_bytes()) {
            merged.push(f);
        }
        merged.push(x);
    }
    merged.extend(a);
    scanned.found = merged;
}

/// The entries of `prev` that name one of `packs` and whose path is not
/// `skip`ped (one pass over `prev`).
fn naming_packs<'a>(
    prev: &'a Manifest,
    packs: &'a [u64],
    skip: impl Fn(&str) -> bool + 'a,
) -> impl Iterator<Item = EntryRef<'a>> + 'a {
    prev.entries()
        .filter(|e| {
            e.file()
                .and_then(|f| f.2)
                .is_some_and(|id| packs.contains(&id))
        })
        .filter(move |e| !skip(e.path()))
}

/// The previous generation's entry for each found path (by binary
/// search: the cost follows the scan, not the tree); empty when there is
/// no previous generation ([`previous_at`]).
fn previous_of<'a>(
    prev: Option<&'a Manifest>,
    found: &[(String, Found)],
) -> Vec<Option<EntryRef<'a>>> {
    let Some(m) = prev else {
        return Vec::new();
    };
    found.iter().map(|(path, _)| m.get(path)).collect()
}

/// Entry `i` of a [`previous_of`] list.
fn previous_at<'a>(prev_of: &[Option<EntryRef<'a>>], i: usize) -> Option<EntryRef<'a>> {
    prev_of.get(i).copied().flatten()
}

/// A listed path that is gone was removed: the removal changed the ctime
/// of its nearest folder that still exists.
fn note_nearest_folder(root: &Path, rel: &str, newest: &mut gate::Newest) {
    let mut cur = Path::new(rel).parent();
    while let Some(dir) = cur {
        if let Ok(m) = std::fs::symlink_metadata(root.join(dir)) {
            newest.note(&dir.to_string_lossy(), &m);
            return;
        }
        cur = dir.parent();
    }
}

fn globs(patterns: &[String]) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for p in patterns {
        b.add(
            globset::GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .with_context(|| format!("bad glob pattern '{p}'"))?,
        );
    }
    Ok(b.build()?)
}

/// Files matching these are never rewritten in place by archive software.
fn immutable_patterns(profile: Profile, configured: &Option<Vec<String>>) -> Vec<String> {
    match configured {
        Some(v) => v.clone(),
        None => match profile {
            Profile::Debian => vec!["pool/**".into()],
            Profile::Rpm => vec!["**/*.rpm".into()],
            Profile::Generic => vec![],
        },
    }
}

/// A file to hash.
#[derive(Clone)]
struct Job {
    /// Index of the path in the scan's found list, and so of its entry in
    /// the new entries ([`entries_of`] keeps the order).
    found: u32,
    copy: bool,
    size: u64,
    mtime_ns: i64,
}

/// A hash result: the content, and where its bytes are (the repository
/// file, or a staged copy).
type Hashed = (shoal_pack::Content, Source);

/// Hashes `jobs` on all cores; each file is read once. Threads take the
/// largest files first, so no core is left alone with a big file at the
/// end while the others idle.
fn hash_all(
    root: &Path,
    staging: &Path,
    jobs: &[Job],
    found: &[(String, Found)],
) -> Result<Vec<Hashed>> {
    std::fs::create_dir_all(staging)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].size));
    let next = AtomicUsize::new(0);
    // Results land in one list as they come, with their job's index, and
    // are put in job order at the end, in place: a slot per job from the
    // start would touch the whole list before the first file is read.
    let results: std::sync::Mutex<Vec<(u32, Hashed)>> =
        std::sync::Mutex::new(Vec::with_capacity(jobs.len()));
    let failed: std::sync::Mutex<Option<anyhow::Error>> = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len().max(1)) {
            s.spawn(|| {
                let mut hasher = shoal_pack::FileHasher::default();
                let mut batch = Vec::with_capacity(HASH_BATCH);
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = order.get(k) else {
                        break;
                    };
                    let path = &found[jobs[i].found as usize].0;
                    match hash_one(&mut hasher, root.join(path), staging, i, &jobs[i]) {
                        Ok(h) => batch.push((i as u32, h)),
                        Err(e) => {
                            failed.lock().unwrap().get_or_insert(e);
                            // The others stop at their next file.
                            next.store(order.len(), Ordering::Relaxed);
                            break;
                        }
                    }
                    if batch.len() == HASH_BATCH {
                        results.lock().unwrap().append(&mut batch);
                    }
                }
                results.lock().unwrap().append(&mut batch);
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap() {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap();
    results.sort_unstable_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, h)| h).collect())
}

/// Hash results a hashing thread hands over at a time.
const HASH_BATCH: usize = 256;

fn hash_one(
    hasher: &mut shoal_pack::FileHasher,
    src: PathBuf,
    staging: &Path,
    i: usize,
    j: &Job,
) -> Result<Hashed> {
    let copy_to = j.copy.then(|| staging.join(format!("{i}")));
    if let Some(c) = &copy_to {
        let _ = std::fs::remove_file(c);
    }
    let h = hasher
        .hash_file(&src, copy_to.as_deref())
        .map_err(|e| fsutil::explain_io(e, &src))?;
    let m = std::fs::metadata(&src).map_err(|e| fsutil::explain_io(e, &src))?;
    if h.size != j.size || (!j.copy && (m.len() != j.size || fsutil::mtime_ns(&m) != j.mtime_ns)) {
        if let Some(c) = &copy_to {
            let _ = std::fs::remove_file(c);
        }
        bail!(
            "{}: changed while it was being published; publish again once the archive \
             update has finished",
            src.display()
        );
    }
    let src = match copy_to {
        Some(c) => Source::Copy(Box::new(c)),
        None => Source::Entry(j.found),
    };
    Ok((h.into(), src))
}

/// Publishes a new generation if the tree changed (or the last one is
/// half-way to expiry, or a damaged pack must be replaced). Returns the
/// current generation.
///
/// A publish is a transaction: the new generation becomes visible (head,
/// manifest, delta, torrents) only after all its new packs are stored,
/// checked complete by librqbit and seeding. A publish that fails leaves
/// the origin as it was, in memory and on disk, and says why; the next one
/// starts afresh.
///
/// The publish gate ([`gate`]) must be open: a lock or a tree that changed
/// within `origin.quiet_period` makes it return a [`gate::GateClosed`].
pub async fn publish(agent: &Arc<Agent>) -> Result<u64> {
    publish_changes(agent, None, false, true).await
}

/// [`publish`], looking only at the paths listed in `changes` (relative to
/// the repository: what reprepro, dak or createrepo_c hooks report) instead
/// of walking the tree. Without a previous generation it walks the tree;
/// the timer's publishes always walk it, so anything a list missed is
/// published by the next timed publish.
/// `force` publishes even when the gate is closed (with a warning).
/// `waits`: the caller waits for a closed gate and tries again (the timer,
/// a `--wait` call), so a closed gate shows in /status as state `waiting`
/// with `publish_waiting`; otherwise (a call that is refused) a closed
/// gate leaves /status as it was before the call.
pub async fn publish_changes(
    agent: &Arc<Agent>,
    changes: Option<Vec<String>>,
    force: bool,
    waits: bool,
) -> Result<u64> {
    let mut st = agent.origin.lock().await;
    if !st.loaded {
        load_state(agent, &mut st).await?;
    }
    expire_retired(agent, &mut st).await;
    drop_damaged(agent, &mut st);
    if let Some(c) = gate::find_lock(&agent.cfg.repo, &agent.cfg.origin.publish_locks)? {
        gate_closed(agent, c, force, waits)?;
    }
    let before = agent.status.lock().unwrap().state.clone();
    agent.set_state("publishing");
    let started = Instant::now();
    let r = prepare(agent, &st, changes.as_deref(), force, waits).await;
    let _ = std::fs::remove_dir_all(agent.store.staging());
    let current = st
        .manifest
        .as_ref()
        .map(|m| m.header.generation)
        .unwrap_or(0);
    let cand = match r {
        Ok(Some(c)) => c,
        Ok(None) => {
            let mut s = agent.status.lock().unwrap();
            s.state = "idle".into();
            s.publish_waiting = None;
            return Ok(current);
        }
        Err(e) => {
            match (gate::closed_of(&e).is_some(), waits) {
                (true, true) => agent.set_state("waiting"),
                // A refused call: as before it (the origin's mutex held
                // all along, so no other publish changed the state).
                (true, false) => agent.set_state(&before),
                (false, _) => agent.set_state("error"),
            }
            return Err(e);
        }
    };
    let mut cand = cand;
    match go_live(agent, &st, &mut cand).await {
        Ok(()) => {
            let phases = std::mem::take(&mut cand.phases);
            let touched = cand.touched;
            let secs = started.elapsed().as_secs_f64();
            let g = commit(agent, &mut st, cand, secs)?;
            let mut phases = phases;
            phases.end("commit");
            tracing::info!(generation = g, phases = %phases.summary(), "publish phases (seconds)");
            crate::memory::release_after(touched);
            let mut s = agent.status.lock().unwrap();
            s.last_sync_seconds = Some(secs);
            s.last_success = Some(fsutil::now());
            s.last_error = None;
            s.publish_waiting = None;
            s.state = "idle".into();
            Ok(g)
        }
        Err(e) => {
            roll_back(agent, &cand).await;
            agent.set_state("error");
            Err(e.context(format!(
                "publish of generation {} failed and was rolled back; generation {current} \
                 stays current",
                cand.manifest.header.generation
            )))
        }
    }
}

/// The gate is closed by `c`: an error unless the publish is forced,
/// recorded in /status if the caller `waits` for the gate to open.
fn gate_closed(agent: &Agent, c: gate::Closed, force: bool, waits: bool) -> Result<()> {
    if force {
        tracing::warn!(reason = %c.summary(), "publishing although the gate is closed (--force)");
        return Ok(());
    }
    if waits {
        let mut s = agent.status.lock().unwrap();
        s.publish_waiting = Some(c.summary());
        s.state = "waiting".into();
    }
    Err(gate::GateClosed(c).into())
}

/// A generation built but not yet visible.
struct Candidate {
    manifest: Manifest,
    /// New packs, built in their folders, not yet in the session.
    new_packs: Vec<NewPack>,
    /// Their contents ([`new_contents`]), until the catalog takes them.
    fresh: Vec<([u8; 32], u32)>,
    /// Packs the new generation no longer names.
    retire: Vec<u64>,
    /// Content → (change in the number of entries naming it, its size).
    refs_delta: RefsDelta,
    /// Live bytes of each pack the new generation keeps (new packs aside).
    live: HashMap<u64, u64>,
    hashed_files: usize,
    hashed_bytes: u64,
    /// Paths found changed or removed: at most what the delta carries.
    changed: usize,
    /// Paths this publish's lists held: the tree's if it walked the tree,
    /// and those found changed or removed (see
    /// [`crate::memory::release_after`]).
    touched: usize,
    /// How long each phase took so far.
    phases: crate::phases::Phases,
    /// The manifest's hash, once its head is written.
    manifest_sha: Option<Sha256Hash>,
}

/// A new pack, built in its folder, its torrent stored.
struct NewPack {
    id: u64,
    live: LivePack,
}

/// Content → new pack (its index in `packs`), sorted by content, read
/// from the new packs' stored torrents once they are all built: while they
/// are built, nothing but their counts is held (a first publish has a
/// content per file).
fn new_contents(agent: &Agent, packs: &[NewPack]) -> Result<Vec<([u8; 32], u32)>> {
    let mut fresh = Vec::with_capacity(packs.iter().map(|p| p.live.files() as usize).sum());
    for (i, p) in packs.iter().enumerate() {
        let parsed = parse_pack(agent, p.id, &p.live.info_hash)?;
        let i = u32::try_from(i).context("more than 4G new packs")?;
        fresh.extend(parsed.files.iter().map(|(sha, _)| (*sha, i)));
    }
    fresh.sort_unstable();
    Ok(fresh)
}

/// Scan → hash → pack → manifest. Touches only the staging folder and the
/// new packs' folders. `Ok(None)` when nothing needs publishing.
///
/// Every phase after the scan works on what changed (the scan's found and
/// removed paths) and looks the previous generation up by binary search,
/// so with a change list a publish costs what changed, not the tree.
async fn prepare(
    agent: &Arc<Agent>,
    st: &OriginState,
    changes: Option<&[String]>,
    force: bool,
    waits: bool,
) -> Result<Option<Candidate>> {
    let cfg = &agent.cfg;
    let prev = st.manifest.as_ref();
    let mut phases = crate::phases::Phases::start();
    let mut scanned = scan_phase(agent, prev, changes).await?;
    if let Some(prev) = prev {
        add_lost_contents(st, prev, &mut scanned);
    }
    phases.end("scan");
    let Scanned {
        found,
        removed,
        newest: folders,
        ..
    } = scanned;
    // A walk of the tree listed every path of it.
    let walked = match (prev, changes) {
        (Some(_), Some(_)) => 0,
        _ => prev.map_or(0, Manifest::len),
    };
    let changed = found.len() + removed.len();
    let touched = walked + changed;
    let prev_of = previous_of(prev, &found);
    let newest = newest_change(&prev_of, &found, folders);
    if let Some(c) = gate::quiet(&newest, gate::now_ns(), cfg.origin.quiet_period) {
        gate_closed(agent, c, force, waits)?;
    }
    let (jobs, reused) = hash_jobs(cfg, st, &prev_of, &found)?;
    let (jobs, found) = (Arc::new(jobs), Arc::new(found));
    phases.end("compare");
    let hashed = hash_phase(agent, &jobs, &found).await?;
    phases.end("hash");
    let (hashed_files, hashed_bytes) = (jobs.len(), jobs.iter().map(|j| j.size).sum());
    // The hash results are in job order: which found path each is for.
    let hashed_at: Vec<u32> = jobs.iter().map(|j| j.found).collect();
    drop(jobs);
    let found = Arc::try_unwrap(found)
        .map_err(|_| anyhow::anyhow!("the hashing threads still hold the scan (bug)"))?;
    let upserts = entries_of(found, reused, &hashed_at, &hashed);
    drop(hashed_at);
    // The previous entries this generation replaces or removes.
    let replaced: Vec<EntryRef> = prev_of
        .iter()
        .flatten()
        .copied()
        .chain(removed.iter().filter_map(|p| prev.and_then(|m| m.get(p))))
        .collect();
    phases.end("entries");
    let plan = pack_plan(agent, st, &upserts, &replaced, hashed)?;
    drop((replaced, prev_of));
    let now = fsutil::now();
    let ttl = cfg.origin.manifest_ttl.as_secs() as i64;
    let stale = prev
        .map(|m| now >= m.header.created + ttl / 2)
        .unwrap_or(true)
        || st.older_format;
    let missing = upserts
        .iter()
        .filter_map(|e| e.file())
        .find(|(size, sha, _)| {
            *size > 0 && !st.catalog.contains_key(&sha.0) && plan.source(&sha.0).is_none()
        });
    if let Some((_, sha, _)) = missing {
        bail!("content {sha} is neither in a pack nor hashed (bug); publish again");
    }
    if !plan.changes() && upserts.is_empty() && removed.is_empty() && !stale {
        return Ok(None);
    }
    let generation = prev.map(|m| m.header.generation + 1).unwrap_or(1);
    phases.end("plan");
    let new_packs = build_packs(agent, st, generation, &plan, &upserts)?;
    let PackPlan {
        contents,
        compacted: _,
        sources,
        groups,
        retire,
        refs_delta,
        live,
    } = plan;
    // One per new content: gone before the manifest is built.
    drop((contents, sources, groups));
    phases.end("pack");
    let manifest = new_contents(agent, &new_packs).and_then(|fresh| {
        let m = manifest_of(
            cfg, st, prev, generation, now, upserts, removed, &new_packs, &fresh, &retire,
        )?;
        Ok((m, fresh))
    });
    let (manifest, fresh) = manifest.inspect_err(|_| discard(agent, &new_packs))?;
    phases.end("manifest");
    Ok(Some(Candidate {
        manifest,
        new_packs,
        fresh,
        retire,
        refs_delta,
        live,
        hashed_files,
        hashed_bytes,
        changed,
        touched,
        phases,
        manifest_sha: None,
    }))
}

/// Scan: the tree (or, with a change list, only the paths it names)
/// against the previous generation, with warnings for what is skipped.
async fn scan_phase(
    agent: &Arc<Agent>,
    prev: Option<&Manifest>,
    changes: Option<&[String]>,
) -> Result<Scanned> {
    let root = agent.cfg.repo.clone();
    let exclude = globs(&agent.cfg.origin.exclude)?;
    let scanned = match (prev, changes) {
        (Some(prev), Some(list)) => {
            tracing::info!(paths = list.len(), "publishing from a change list");
            scan_listed(&root, prev, list, &exclude)?
        }
        _ => {
            let walked = tokio::task::spawn_blocking(move || scan(&root, &exclude)).await??;
            changed_since(prev, walked)
        }
    };
    for w in &scanned.warnings {
        tracing::warn!("{w}");
    }
    Ok(scanned)
}

/// The newest change the publish gate must wait for: the newest folder
/// change, and the ctime of every file or symlink that differs from the
/// previous generation (new, or another size, mtime or target). A file the
/// previous generation holds unchanged does not count: its ctime also moves
/// when the origin hard-links it into its pack store, or on a chmod.
fn newest_change(
    prev_of: &[Option<EntryRef<'_>>],
    found: &[(String, Found)],
    folders: gate::Newest,
) -> gate::Newest {
    let mut newest = folders;
    for (i, (path, f)) in found.iter().enumerate() {
        let unchanged = previous_at(prev_of, i).is_some_and(|e| match (f, e.kind()) {
            (Found::File { size, mtime_ns, .. }, KindRef::File { size: s, .. }) => {
                *size == s && *mtime_ns == e.mtime_ns()
            }
            (Found::Symlink { target, .. }, KindRef::Symlink { target: t }) => &**target == t,
            _ => false,
        });
        if !unchanged {
            newest.note_ns(path, f.ctime_ns());
        }
    }
    newest
}

/// The previous generation's hash of the found files whose size and
/// mtime did not change (found index, hash), sorted by index: few, so a
/// list of them rather than a slot per found path (33 MB at a million).
type Reused = Vec<(u32, Sha256Hash)>;

/// What must be hashed: files whose size or mtime changed, and files whose
/// content no live pack carries (a damaged pack being replaced); and the
/// hashes the others keep.
fn hash_jobs(
    cfg: &shoal_config::AgentConfig,
    st: &OriginState,
    prev_of: &[Option<EntryRef<'_>>],
    found: &[(String, Found)],
) -> Result<(Vec<Job>, Reused)> {
    let immutable = globs(&immutable_patterns(cfg.profile, &cfg.origin.immutable))?;
    let mut jobs = Vec::with_capacity(found.len());
    let mut reuse = Vec::new();
    for (i, (path, f)) in found.iter().enumerate() {
        let Found::File { size, mtime_ns, .. } = f else {
            continue;
        };
        let i = u32::try_from(i).context("more than 4G paths to publish")?;
        let same = previous_at(prev_of, i as usize).and_then(|e| match e.kind() {
            KindRef::File {
                size: s, sha256, ..
            } if s == *size
                && e.mtime_ns() == *mtime_ns
                && (s == 0 || st.catalog.contains_key(&sha256.0)) =>
            {
                Some(*sha256)
            }
            _ => None,
        });
        match same {
            Some(sha) => reuse.push((i, sha)),
            None if *size > 0 => jobs.push(Job {
                found: i,
                copy: !immutable.is_match(path),
                size: *size,
                mtime_ns: *mtime_ns,
            }),
            None => {}
        }
    }
    Ok((jobs, reuse))
}

/// Hash: every job in one read pass, on all cores.
async fn hash_phase(
    agent: &Arc<Agent>,
    jobs: &Arc<Vec<Job>>,
    found: &Arc<Vec<(String, Found)>>,
) -> Result<Vec<Hashed>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let hashed_bytes: u64 = jobs.iter().map(|j| j.size).sum();
    let started = Instant::now();
    let (shared, paths) = (jobs.clone(), found.clone());
    let (root, staging) = (agent.cfg.repo.clone(), agent.store.staging());
    let results =
        tokio::task::spawn_blocking(move || hash_all(&root, &staging, &shared, &paths)).await??;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        files = jobs.len(),
        bytes = hashed_bytes,
        seconds = secs,
        mb_per_s = hashed_bytes as f64 / 1e6 / secs.max(1e-9),
        "hashed changed files"
    );
    Ok(results)
}

/// The manifest entries (pack ids are filled in by [`manifest_of`]), one
/// per found path in its order, held compactly ([`Entries`]: 92 bytes a
/// file where an `Entry` and its path took 144); the scan's list gives
/// its memory back as it goes. A file's hash is its hash result
/// (`hashed[k]` for found path `hashed_at[k]`), else the one it keeps
/// (`reused`), else that of an empty file.
fn entries_of(
    found: Vec<(String, Found)>,
    reused: Reused,
    hashed_at: &[u32],
    hashed: &[Hashed],
) -> Entries {
    let mut out = shoal_manifest::EntriesBuilder::new();
    let empty = Sha256Hash::of(b"");
    let mut results = hashed_at.iter().zip(hashed).peekable();
    let mut reused = reused.into_iter().peekable();
    for (i, (path, f)) in shoal_manifest::drain_shrinking(found).enumerate() {
        let i = i as u32;
        match f {
            Found::File {
                size,
                mtime_ns,
                mode,
                ..
            } => {
                let sha256 = match results.next_if(|(at, _)| **at == i) {
                    Some((_, (c, _))) => Sha256Hash(c.sha256),
                    None => reused.next_if(|r| r.0 == i).map_or(empty, |r| r.1),
                };
                let kind = KindRef::File {
                    size,
                    sha256: &sha256,
                    pack: None,
                };
                out.push_parts(&path, kind, mode, mtime_ns);
            }
            Found::Symlink {
                target,
                mode,
                mtime_ns,
                ..
            } => out.push_parts(&path, KindRef::Symlink { target: &target }, mode, mtime_ns),
            Found::Dir => unreachable!("scans list no directories"),
        }
    }
    out.finish()
}

/// What the new generation packs: new contents and compacted ones, grouped
/// into packs, and the packs it retires.
struct PackPlan {
    /// The contents to pack: first those of compacted packs, then new
    /// ones, each run sorted by SHA-256 (so [`PackPlan::source`] finds a
    /// content by binary search, with no map beside them).
    contents: Vec<shoal_pack::Content>,
    /// How many of `contents` come from compacted packs.
    compacted: usize,
    /// Where the bytes of each of `contents` are.
    sources: Vec<Source>,
    /// The run of `contents` each new pack takes.
    groups: Vec<std::ops::Range<usize>>,
    retire: Vec<u64>,
    /// Content → (change in the number of entries naming it, its size).
    refs_delta: RefsDelta,
    /// Live bytes of each current pack after this generation.
    live: HashMap<u64, u64>,
}

/// Where the bytes of a content to pack are: 16 bytes (a boxed `PathBuf`
/// is one pointer; a first publish holds one of these per file).
enum Source {
    /// The repository file of new entry `n`, linked into the pack store.
    Entry(u32),
    /// A staged copy, moved into the pack store.
    Copy(Box<PathBuf>),
    /// A stored content of a pack being compacted, linked.
    Stored(Box<PathBuf>),
}

impl Source {
    /// The file, and whether it is a staged copy (moved, not linked).
    fn path(&self, root: &Path, entries: &Entries) -> (PathBuf, bool) {
        match self {
            Source::Entry(n) => (root.join(entries.get(*n as usize).path()), false),
            Source::Copy(p) => (p.to_path_buf(), true),
            Source::Stored(p) => (p.to_path_buf(), false),
        }
    }
}

impl PackPlan {
    fn changes(&self) -> bool {
        !self.groups.is_empty() || !self.retire.is_empty()
    }

    /// Where the bytes of content `sha` are, if this plan packs it.
    fn source(&self, sha: &[u8; 32]) -> Option<&Source> {
        let (old, new) = self.contents.split_at(self.compacted);
        let find = |run: &[shoal_pack::Content]| run.binary_search_by_key(sha, |c| c.sha256).ok();
        find(old)
            .or_else(|| find(new).map(|i| i + self.compacted))
            .map(|i| &self.sources[i])
    }
}

/// Content → (change in the number of entries naming it, its size),
/// sorted by content. One per changed file: a list (44 bytes each) rather
/// than a map, which a first publish of a million files grew to twice that.
struct RefsDelta(Vec<Move>);

/// One row of a [`RefsDelta`]: packed to 44 bytes (a first publish holds
/// one per content until it commits).
#[derive(Clone, Copy)]
#[repr(C, packed(4))]
struct Move {
    sha: [u8; 32],
    size: u64,
    /// Change in the number of entries naming the content (at most the
    /// number of paths, which a publish keeps below 4G).
    delta: i32,
}

impl RefsDelta {
    /// The sum of `moves` (content, change, size) per content; `n` is
    /// about how many there are.
    fn of(n: usize, moves: impl Iterator<Item = ([u8; 32], i64, u64)>) -> Self {
        let mut v = Vec::with_capacity(n);
        v.extend(moves.map(|(sha, d, size)| Move {
            sha,
            size,
            delta: d as i32,
        }));
        v.sort_unstable_by_key(|m| m.sha);
        v.dedup_by(|later, kept| {
            let same = later.sha == kept.sha;
            if same {
                kept.delta += later.delta;
            }
            same
        });
        v.shrink_to_fit();
        RefsDelta(v)
    }

    /// The change in the number of entries naming `sha`.
    fn get(&self, sha: &[u8; 32]) -> i64 {
        self.0
            .binary_search_by_key(sha, |m| m.sha)
            .map_or(0, |i| i64::from(self.0[i].delta))
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8; 32], i64, u64)> {
        self.0.iter().map(|m| (&m.sha, i64::from(m.delta), m.size))
    }

    /// The changes, giving the list's memory back as they are taken.
    fn drain(self) -> impl Iterator<Item = ([u8; 32], i64, u64)> {
        shoal_manifest::drain_shrinking(self.0).map(|m| (m.sha, i64::from(m.delta), m.size))
    }
}

/// The entry counts and live pack bytes after a change, from those
/// before it ([`OriginState::refs`], [`OriginState::live`]).
struct Moved {
    /// Content → (change in the number of entries naming it, its size).
    refs_delta: RefsDelta,
    /// Live bytes of each current pack after the change.
    live: HashMap<u64, u64>,
}

/// How `replaced` (previous entries replaced or removed) and `upserts`
/// (the new ones) move the counts: a content no entry named before and one
/// does now adds its size to its pack's live bytes, and the reverse takes
/// it away. Costs what changed.
fn moved_counts(st: &OriginState, upserts: &Entries, replaced: &[EntryRef<'_>]) -> Moved {
    let files = replaced
        .iter()
        .map(|e| (e.file(), -1))
        .chain(upserts.iter().map(|e| (e.file(), 1)));
    let refs_delta = RefsDelta::of(
        replaced.len() + upserts.len(),
        files.filter_map(|(file, d)| {
            let (size, sha, _) = file.filter(|f| f.0 > 0)?;
            Some((sha.0, d, size))
        }),
    );
    let count_before = |sha: &[u8; 32]| st.refs.get(sha).unwrap_or(0) as i64;
    let mut live = st.live.clone();
    for (sha, d, size) in refs_delta.iter() {
        let (before, after) = (count_before(sha) > 0, count_before(sha) + d > 0);
        if before == after {
            continue;
        }
        if let Some(id) = st.catalog.get(sha) {
            let l = live.entry(id).or_default();
            *l = if after {
                *l + size
            } else {
                l.saturating_sub(size)
            };
        }
    }
    Moved { refs_delta, live }
}

/// Pack: contents no live pack carries, plus the live contents of packs
/// that are mostly garbage (compaction, reusing their piece hashes).
///
/// A pack's live bytes are kept from one generation to the next and moved
/// by what changed: `replaced` (previous entries replaced or removed) and
/// `upserts` (the new ones), so no pass over every entry is made.
fn pack_plan(
    agent: &Agent,
    st: &OriginState,
    upserts: &Entries,
    replaced: &[EntryRef<'_>],
    hashed: Vec<Hashed>,
) -> Result<PackPlan> {
    let Moved {
        refs_delta,
        mut live,
    } = moved_counts(st, upserts, replaced);
    let referenced =
        |sha: &[u8; 32]| st.refs.get(sha).unwrap_or(0) as i64 + refs_delta.get(sha) > 0;
    // New contents, sorted by SHA-256 and each once (in the hash
    // results' own list: a first publish holds one per file).
    let mut new = hashed;
    new.retain(|(c, _)| !st.catalog.contains_key(&c.sha256));
    new.sort_unstable_by_key(|(c, _)| c.sha256);
    new.dedup_by_key(|(c, _)| c.sha256);
    let packs_anew = |sha: &[u8; 32]| new.binary_search_by_key(sha, |(c, _)| c.sha256).is_ok();
    let mut old: Vec<(shoal_pack::Content, Source)> = Vec::new();
    let mut retire = Vec::new();
    for (id, p) in &st.packs {
        let l = live.get(id).copied().unwrap_or(0);
        if l == 0 {
            retire.push(*id);
        } else if (l as f64) < COMPACT_BELOW * p.bytes() as f64 {
            retire.push(*id);
            let parsed = parse_pack(agent, *id, &p.info_hash)?;
            for (i, (sha, size)) in parsed.files.iter().enumerate() {
                if !referenced(sha) || packs_anew(sha) {
                    continue;
                }
                let stored = agent.store.content(*id, sha);
                let tail = read_tail(&stored, *size)?;
                let c = parsed
                    .content(i, &tail)
                    .map_err(|e| fsutil::explain_io(e, &stored))?;
                old.push((c, Source::Stored(Box::new(stored))));
            }
        }
    }
    for id in &retire {
        live.remove(id);
    }
    // Compacted contents first: mirrors hold them, and small ones that lie
    // together fill pieces the mirrors need not download again.
    old.sort_unstable_by_key(|(c, _)| c.sha256);
    old.dedup_by_key(|(c, _)| c.sha256);
    let compacted = old.len();
    // Split in two while both lists give their memory back.
    let (contents, sources): (Vec<_>, Vec<_>) = shoal_manifest::drain_shrinking(old)
        .chain(shoal_manifest::drain_shrinking(new))
        .unzip();
    let new_bytes: u64 = contents.iter().map(|c| c.size).sum();
    let groups = shoal_pack::group(
        &contents,
        agent.cfg.origin.pack_max_files,
        shoal_swarm::pack_target(
            new_bytes,
            agent.cfg.origin.pack_split,
            agent.cfg.origin.pack_max_bytes,
        ),
    );
    Ok(PackPlan {
        contents,
        compacted,
        sources,
        groups,
        retire,
        refs_delta,
        live,
    })
}

/// Builds the new packs in fresh folders (ids above every pack on disk).
fn build_packs(
    agent: &Agent,
    st: &OriginState,
    generation: u64,
    plan: &PackPlan,
    upserts: &Entries,
) -> Result<Vec<NewPack>> {
    let first_id = st.next_pack_id();
    let mut out: Vec<NewPack> = Vec::new();
    let source = |sha: &[u8; 32]| {
        let s = plan.source(sha).map(|s| s.path(&agent.cfg.repo, upserts));
        s.with_context(|| {
            format!(
                "content {} has no source to pack it from (bug)",
                hex::encode(sha)
            )
        })
    };
    for (n, g) in plan.groups.iter().enumerate() {
        let id = first_id + n as u64;
        // Small contents are read again: their pieces span neighbours.
        let mut last_read: Option<PathBuf> = None;
        let built = shoal_pack::build(
            &format!("shoal-g{generation}-{n}"),
            &plan.contents[g.clone()],
            &mut |c| {
                let (src, _) = source(&c.sha256).map_err(std::io::Error::other)?;
                let data = std::fs::read(&src);
                last_read = Some(src);
                data
            },
        );
        let pack = match built {
            Ok(p) => p,
            Err(e) => {
                discard(agent, &out);
                let e = match &last_read {
                    Some(src) => fsutil::explain_io(e, src),
                    None => e.into(),
                };
                return Err(e.context(format!("building pack {id}")));
            }
        };
        let dir = agent.store.pack_dir(id);
        let _ = std::fs::remove_dir_all(&dir);
        let ih = hex::encode(pack.info_hash);
        let placed = (|| -> Result<shoal_pack::ParsedPack> {
            let parsed = shoal_pack::parse_torrent(&pack.torrent, Some(&ih))?;
            for (sha, _) in &parsed.files {
                let (src, is_copy) = source(sha)?;
                let dst = dir.join(shoal_pack::content_path(sha));
                let parent = dst.parent().expect("content path has a parent");
                std::fs::create_dir_all(parent).map_err(|e| fsutil::explain_io(e, parent))?;
                place_in_store(&src, &dst, is_copy)?;
            }
            // Stored now, so a publish does not hold every new pack's
            // torrent; no document names it until the head does.
            fsutil::atomic_write(&agent.store.torrent(&ih), &pack.torrent)?;
            Ok(parsed)
        })();
        drop(pack);
        let parsed = placed.inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&dir);
            discard(agent, &out);
        })?;
        out.push(NewPack {
            id,
            live: LivePack::of(ih, &parsed),
        });
    }
    Ok(out)
}

/// Removes built packs that will not go live: their folders and torrents.
fn discard(agent: &Agent, packs: &[NewPack]) {
    for p in packs {
        let _ = std::fs::remove_dir_all(agent.store.pack_dir(p.id));
        let _ = std::fs::remove_file(agent.store.torrent(&p.live.info_hash));
    }
}

/// Manifest: the changed entries with their packs, and the header; the
/// previous generation's chunks that hold no change are shared
/// ([`Manifest::with_changes`]).
#[allow(clippy::too_many_arguments)]
fn manifest_of(
    cfg: &shoal_config::AgentConfig,
    st: &OriginState,
    prev: Option<&Manifest>,
    generation: u64,
    now: i64,
    mut upserts: Entries,
    removed: Vec<String>,
    new_packs: &[NewPack],
    fresh: &[([u8; 32], u32)],
    retire: &[u64],
) -> Result<Manifest> {
    let mut packs: BTreeMap<u64, &LivePack> = st
        .packs
        .iter()
        .filter(|(id, _)| !retire.contains(id))
        .map(|(id, p)| (*id, p))
        .collect();
    for p in new_packs {
        packs.insert(p.id, &p.live);
    }
    let pack_of = |sha: &Sha256Hash| {
        let new = fresh.binary_search_by_key(&sha.0, |(s, _)| *s);
        new.ok()
            .map(|i| new_packs[fresh[i].1 as usize].id)
            .or_else(|| st.catalog.get(&sha.0).filter(|id| !retire.contains(id)))
    };
    // Entries of compacted packs move to the packs their contents went to
    // (a pass over the previous generation, made only when compacting).
    if let Some(prev) = prev {
        let compacted: Vec<u64> = retire
            .iter()
            .copied()
            .filter(|id| prev.pack_refs().contains_key(id))
            .collect();
        if !compacted.is_empty() {
            let listed = |p: &str| {
                upserts.position(p).is_some()
                    || removed.binary_search_by(|r| r.as_str().cmp(p)).is_ok()
            };
            let moved: Vec<EntryRef> = naming_packs(prev, &compacted, listed).collect();
            upserts = merge_sorted(&upserts, &moved);
        }
    }
    for i in 0..upserts.len() {
        let e = upserts.get(i);
        if let Some((_, sha256, _)) = e.file().filter(|f| f.0 > 0) {
            let id = pack_of(sha256)
                .with_context(|| format!("content of '{}' is in no pack (bug)", e.path()))?;
            upserts.set_pack(i, Some(id));
        }
    }
    let ttl = cfg.origin.manifest_ttl.as_secs() as i64;
    let header = Header {
        format: FORMAT,
        generation,
        profile: cfg.profile.to_string(),
        created: now,
        expires: now + ttl,
        prev_sha256: prev.map(|m| st.manifest_sha.unwrap_or_else(|| m.sha256())),
        packs: packs
            .iter()
            .map(|(id, p)| PackRef {
                id: *id,
                info_hash: p.info_hash.clone(),
                files: p.files(),
                bytes: p.bytes(),
            })
            .collect(),
    };
    let manifest = match prev {
        Some(p) => Manifest::with_changes(header, p, upserts, removed).map_err(anyhow::Error::from),
        None => {
            let m = Manifest::new(header, upserts);
            m.check().map(|_| m).map_err(anyhow::Error::from)
        }
    };
    manifest.context("the origin built an invalid manifest (bug)")
}

/// Two lists of entries sorted by path, with no path in both, as one.
fn merge_sorted(a: &Entries, b: &[EntryRef<'_>]) -> Entries {
    let mut out = shoal_manifest::EntriesBuilder::new();
    let mut b = b.iter().peekable();
    for x in a.iter() {
        while let Some(y) = b.next_if(|y| y.path().as_bytes() < x.path().as_bytes()) {
            out.push_ref(*y);
        }
        out.push_ref(x);
    }
    for y in b {
        out.push_ref(*y);
    }
    out.finish()
}

/// Seed → sign → serve: the new packs must check complete in the session;
/// then the root and delta are signed and written while the new chunks are
/// written, the packs and chunks are made durable (one syncfs of the state
/// folder's file system, see [`fsutil::sync_fs`]), and last the head is
/// written.
async fn go_live(agent: &Arc<Agent>, st: &OriginState, c: &mut Candidate) -> Result<()> {
    let list = c
        .new_packs
        .iter()
        .map(|p| ToSeed::stored(agent, p.id, &p.live))
        .collect::<Result<_>>()?;
    let bad = seed_packs(agent, list).await?;
    c.phases.end("seed");
    if let Some((_, why)) = bad.first() {
        bail!(
            "{why}: a new pack did not check complete against the files it was built from \
             (was a file changed or removed during the publish?)"
        );
    }
    let store = &agent.store;
    let key = load_key(agent)?;
    let generation = c.manifest.header.generation;
    // The new chunks are written on another thread while this one signs
    // the root and cuts the delta. That thread then flushes the state
    // folder's file system once: the staged copies of the new packs
    // (written unsynced by hash_one, renamed and linked into the packs'
    // folders, all in the state folder) and the chunks. The head, the one
    // document that makes a generation live, is written after both.
    let kept = c.manifest.take_bodies();
    let flush_packs = !c.new_packs.is_empty();
    let (m, phases) = (&c.manifest, &mut c.phases);
    let sha = std::thread::scope(|s| -> Result<Sha256Hash> {
        let chunks = s.spawn(|| -> Result<()> {
            let mut written = 0;
            m.store_new_chunks(kept, CHUNK_BATCH, |batch| -> Result<()> {
                written += store.write_chunks(batch)?;
                Ok(())
            })?;
            if flush_packs || written > 0 {
                let t = Instant::now();
                fsutil::sync_fs(&store.root)?;
                tracing::debug!(
                    seconds = t.elapsed().as_secs_f64(),
                    "flushed the state folder's file system (new packs and chunks)"
                );
            }
            Ok(())
        });
        let body = m.body();
        let sha = Sha256Hash::of(&body);
        let manifest_env = key.seal("manifest", &body);
        fsutil::atomic_write(&store.manifest(generation), &manifest_env)?;
        phases.end("sign");
        if c.changed > DELTA_MAX_PATHS {
            tracing::info!(
                changed = c.changed,
                "no delta for a change this large: mirrors fetch the changed chunks"
            );
        } else if let (Some(p), Some(p_sha)) = (&st.manifest, st.manifest_sha) {
            let sig =
                shoal_manifest::signed::signature_of(&manifest_env).context("sealed envelope")?;
            let d = m.delta_between(p, p_sha, sha, sig);
            fsutil::atomic_write(
                &store.delta(p.header.generation),
                &key.seal("delta", &d.body()),
            )?;
        }
        phases.end("delta");
        chunks.join().expect("storing chunks panicked")?;
        phases.end("chunks+flush");
        Ok(sha)
    })?;
    let m = &c.manifest;
    let head = shoal_manifest::Head {
        format: FORMAT,
        generation,
        manifest_sha256: sha,
        created: m.header.created,
        expires: m.header.expires,
    };
    fsutil::atomic_write(&store.head(), &key.seal("head", &head.body()))?;
    c.manifest_sha = Some(sha);
    c.phases.end("head");
    Ok(())
}

/// Undoes a candidate that did not go live: its packs leave the session
/// and the disk, and documents it wrote that the head does not name.
async fn roll_back(agent: &Arc<Agent>, c: &Candidate) {
    for p in &c.new_packs {
        let _ = agent.bt.remove(p.id).await;
    }
    discard(agent, &c.new_packs);
    let _ = std::fs::remove_file(agent.store.manifest(c.manifest.header.generation));
    if c.manifest.header.generation > 1 {
        let _ = std::fs::remove_file(agent.store.delta(c.manifest.header.generation - 1));
    }
}

/// Makes the candidate the origin's state (after its head is written).
fn commit(agent: &Arc<Agent>, st: &mut OriginState, c: Candidate, seconds: f64) -> Result<u64> {
    let store = &agent.store;
    let generation = c.manifest.header.generation;
    let until = fsutil::now() + agent.cfg.origin.retire_grace.as_secs() as i64;
    if !c.retire.is_empty() {
        let gone: std::collections::HashSet<u64> = c.retire.iter().copied().collect();
        st.catalog.retain(|_, id| !gone.contains(id));
    }
    for id in &c.retire {
        if let Some(p) = st.packs.remove(id) {
            st.retiring.insert(
                *id,
                Retiring {
                    info_hash: p.info_hash,
                    until,
                },
            );
        }
    }
    let new_ids: Vec<u64> = c.new_packs.iter().map(|p| p.id).collect();
    if let Some(last) = new_ids.iter().max() {
        st.id_floor = st.id_floor.max(last + 1);
        if let Err(e) = fsutil::atomic_write(&store.last_pack_id(), last.to_string().as_bytes()) {
            tracing::warn!(error = %format!("{e:#}"), "cannot record the last pack id");
        }
    }
    plan_feeders(agent, &c.new_packs);
    // The catalog, the entry counts and the live bytes follow the change.
    // Both lists are taken apart as the tables fill (a first publish has
    // a million of each).
    for (sha, d, _) in c.refs_delta.drain() {
        let n = (i64::from(st.refs.get(&sha).unwrap_or(0)) + d).max(0) as u32;
        if n == 0 {
            st.refs.remove(&sha);
        } else {
            st.refs.insert(sha, n);
        }
    }
    st.live = c.live;
    // In content order: into an empty catalog (a first publish), rows
    // are appended ([`ShaTable::insert`]).
    for (sha, i) in shoal_manifest::drain_shrinking(c.fresh) {
        st.catalog.insert(sha, c.new_packs[i as usize].id);
    }
    for p in c.new_packs {
        st.live.insert(p.id, p.live.bytes());
        st.packs.insert(p.id, p.live);
    }
    if let Err(e) = save_retiring(agent, st) {
        tracing::warn!(error = %format!("{e:#}"), "cannot record retired packs");
    }
    tracing::info!(
        generation,
        files = c.manifest.len(),
        new_packs = ?new_ids,
        retired_packs = ?c.retire,
        hashed_files = c.hashed_files,
        hashed_bytes = c.hashed_bytes,
        seconds,
        "published"
    );
    agent.record_generation(&c.manifest);
    st.manifest_sha = c.manifest_sha;
    st.manifest = Some(c.manifest);
    st.older_format = false;
    agent.notify_mirrors(generation);
    // Housekeeping once the mirrors are told: pruning the chunks reads the
    // kept roots and lists every chunk (about 0.1 s at a million files).
    crate::store::Store::prune_numbered(&store.manifests_dir(), 3);
    crate::store::Store::prune_numbered(&store.deltas_dir(), agent.cfg.origin.keep_deltas as usize);
    match load_key(agent) {
        Ok(k) => {
            store.prune_chunks_now_and_then(&k.public(), generation);
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "cannot prune manifest chunks"),
    }
    Ok(generation)
}

/// Serve: chooses the mirror the origin feeds each new pack to (the
/// tracker hands the origin out to that mirror only; see [`shoal_swarm`]).
fn plan_feeders(agent: &Agent, packs: &[NewPack]) {
    let params =
        shoal_swarm::Params::for_interval(agent.cfg.network.announce_interval.as_secs_f64());
    let live = agent.live_mirrors(params.dead_after);
    let sizes: Vec<(&str, u64)> = packs
        .iter()
        .map(|p| (p.live.info_hash.as_str(), p.live.bytes()))
        .collect();
    agent
        .schedule
        .lock()
        .unwrap()
        .plan(&sizes, &live, agent.clock(), &params);
}

/// The bytes of a stored content's last, partial piece (compaction reuses
/// every other piece hash from the old pack's torrent).
fn read_tail(path: &Path, size: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let rem = size % shoal_pack::PIECE_LEN;
    let mut buf = vec![0u8; rem as usize];
    if rem == 0 {
        return Ok(buf);
    }
    let mut f = std::fs::File::open(path).map_err(|e| fsutil::explain_io(e, path))?;
    f.seek(SeekFrom::Start(size - rem))
        .and_then(|_| f.read_exact(&mut buf))
        .map_err(|e| fsutil::explain_io(e, path))?;
    Ok(buf)
}

/// Moves a staged copy into the store, or links an immutable file (copying
/// when a link is impossible).
fn place_in_store(src: &Path, dst: &Path, is_copy: bool) -> Result<()> {
    let _ = std::fs::remove_file(dst);
    if is_copy {
        std::fs::rename(src, dst).map_err(|e| fsutil::explain_io(e, dst))?;
    } else if std::fs::hard_link(src, dst).is_err() {
        std::fs::copy(src, dst).map_err(|e| fsutil::explain_io(e, dst))?;
    }
    Ok(())
}

/// Exposed for tests and benchmarks: scan a tree the way publish does.
pub fn scan_tree(root: &Path) -> Result<usize> {
    let (v, _, _) = scan(root, &globs(&[])?)?;
    Ok(v.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_manifest::{Entry, EntryKind};

    /// Generation 1 of `entries` (sorted), with no packs.
    fn generation_of(entries: impl Into<Entries>) -> Manifest {
        Manifest::new(
            Header {
                format: FORMAT,
                generation: 1,
                profile: "generic".into(),
                created: 0,
                expires: 1,
                prev_sha256: None,
                packs: vec![],
            },
            entries,
        )
    }

    /// A manifest listing what `scan` found (hashes and packs do not
    /// matter to a scan).
    fn manifest_of_scan(found: &[(String, Found)]) -> Manifest {
        generation_of(entries_of(found.to_vec(), Vec::new(), &[], &[]))
    }

    /// A scan's paths with their ctimes zeroed (a change-list scan does
    /// not stat unlisted paths).
    fn without_ctime(found: Vec<(String, Found)>) -> Vec<(String, Found)> {
        found
            .into_iter()
            .map(|(p, f)| {
                let f = match f {
                    Found::File {
                        size,
                        mtime_ns,
                        mode,
                        ..
                    } => Found::File {
                        size,
                        mtime_ns,
                        mode,
                        ctime_ns: 0,
                    },
                    Found::Symlink {
                        target,
                        mode,
                        mtime_ns,
                        ..
                    } => Found::Symlink {
                        target,
                        mode,
                        mtime_ns,
                        ctime_ns: 0,
                    },
                    Found::Dir => Found::Dir,
                };
                (p, f)
            })
            .collect()
    }

    /// The counts a publish keeps from one generation to the next (entries
    /// per content, live bytes per pack), moved by random changes, equal
    /// counting the new generation afresh.
    #[test]
    fn counts_moved_by_changes_equal_counting_afresh() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Contents of 0 to 400 bytes; most in one of 4 packs, some in none.
        let contents: Vec<(Sha256Hash, u64)> = (0..40u64)
            .map(|i| (Sha256Hash::of(&i.to_le_bytes()), i % 5 * 100))
            .collect();
        let catalog: ShaTable<u64> = contents
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 7 != 0)
            .map(|(i, (sha, _))| (sha.0, (i % 4) as u64))
            .collect();
        let entry = |path: &str, c: usize| Entry {
            path: path.to_string(),
            kind: EntryKind::File {
                size: contents[c].1,
                sha256: contents[c].0,
                pack: None,
            },
            mode: 0o644,
            mtime_ns: 0,
        };
        let manifest =
            |m: &BTreeMap<String, Entry>| generation_of(m.values().cloned().collect::<Vec<_>>());
        for round in 0..200 {
            let mut prev = BTreeMap::new();
            for _ in 0..rng.gen_range(0..60) {
                let p = format!("p{:03}", rng.gen_range(0..100));
                prev.insert(p.clone(), entry(&p, rng.gen_range(0..contents.len())));
            }
            let mut next = prev.clone();
            for _ in 0..rng.gen_range(0..20) {
                let p = format!("p{:03}", rng.gen_range(0..100));
                if rng.gen_bool(0.3) {
                    next.remove(&p);
                } else {
                    next.insert(p.clone(), entry(&p, rng.gen_range(0..contents.len())));
                }
            }
            let upserts: Vec<Entry> = next
                .iter()
                .filter(|(p, e)| prev.get(*p) != Some(*e))
                .map(|(_, e)| e.clone())
                .collect();
            let replaced = shoal_manifest::Part::from(
                prev.iter()
                    .filter(|(p, e)| next.get(*p) != Some(*e))
                    .map(|(_, e)| e.clone())
                    .collect::<Vec<_>>(),
            );
            let replaced: Vec<EntryRef> = replaced.iter().collect();
            let mut st = OriginState {
                catalog: catalog.clone(),
                ..Default::default()
            };
            (st.refs, st.live) = count_refs(&manifest(&prev), &catalog);
            let moved = moved_counts(&st, &Entries::from(upserts), &replaced);
            let (refs, live) = count_refs(&manifest(&next), &catalog);
            let nonzero = |l: &HashMap<u64, u64>| -> BTreeMap<u64, u64> {
                l.iter()
                    .filter(|(_, v)| **v > 0)
                    .map(|(k, v)| (*k, *v))
                    .collect()
            };
            assert_eq!(nonzero(&moved.live), nonzero(&live), "round {round}");
            let mut refs = refs;
            let named: Vec<[u8; 32]> = (refs.rows().iter())
                .chain(st.refs.rows())
                .map(|(sha, _)| *sha)
                .collect();
            for sha in &named {
                let before = st.refs.get(sha).unwrap_or(0) as i64;
                let d = moved.refs_delta.get(sha);
                let after = refs.get(sha).unwrap_or(0) as i64;
                assert_eq!(before + d, after, "round {round}");
            }
        }
    }

    #[test]
    fn only_changes_since_the_previous_generation_hold_the_gate() {
        let t = tempfile::tempdir().unwrap();
        let r = &t.path().join("repo");
        let store = t.path().join("store");
        let none = globs(&[]).unwrap();
        std::fs::create_dir_all(r.join("pool")).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(r.join("pool/a"), b"a").unwrap();
        std::fs::write(r.join("pool/b"), b"b").unwrap();
        let (before, _, _) = scan(r, &none).unwrap();
        let prev = manifest_of_scan(&before);
        // A hard link into a store outside the tree (as the origin's pack
        // store makes) moves the file's ctime only: it does not count.
        std::fs::hard_link(r.join("pool/a"), store.join("a")).unwrap();
        let (found, _, _) = scan(r, &none).unwrap();
        let n = newest_change(
            &previous_of(Some(&prev), &found),
            &found,
            gate::Newest::default(),
        );
        assert_eq!(n, gate::Newest::default(), "{n:?}");
        // A new file counts, with its own ctime; its folder changed too.
        std::fs::write(r.join("pool/c"), b"c").unwrap();
        let (found, _, folders) = scan(r, &none).unwrap();
        let n = newest_change(
            &previous_of(Some(&prev), &found),
            &found,
            gate::Newest::default(),
        );
        assert_eq!(n.path, "pool/c");
        assert!(n.ns > 0);
        assert_eq!(folders.path, "pool");
        // Without a previous generation every file counts.
        let n = newest_change(&previous_of(None, &found), &found, gate::Newest::default());
        assert!(n.ns > 0);
    }

    #[test]
    fn a_change_list_scan_equals_a_full_scan_of_the_listed_changes() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let none = globs(&[]).unwrap();
        for p in [
            "pool/a",
            "pool/b",
            "pool/sub/c",
            "dists/s/Release",
            "gone/x",
            "was-file",
        ] {
            std::fs::create_dir_all(r.join(p).parent().unwrap()).unwrap();
            std::fs::write(r.join(p), p).unwrap();
        }
        let (before, _, _) = scan(r, &none).unwrap();
        let prev = manifest_of_scan(&before);
        // The archive changes: a new file in a new folder, a changed file,
        // a removed folder, a file replaced by a folder, a symlink.
        std::fs::create_dir_all(r.join("pool/new")).unwrap();
        std::fs::write(r.join("pool/new/d"), b"d").unwrap();
        std::fs::write(r.join("dists/s/Release"), b"changed!").unwrap();
        std::fs::remove_dir_all(r.join("gone")).unwrap();
        std::fs::remove_file(r.join("was-file")).unwrap();
        std::fs::create_dir_all(r.join("was-file")).unwrap();
        std::fs::write(r.join("was-file/inner"), b"i").unwrap();
        std::os::unix::fs::symlink("pool/a", r.join("link")).unwrap();
        let listed: Vec<String> = [
            "pool/new",
            "./dists/s/Release",
            "gone/",
            "was-file/inner",
            "link",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let by_list = scan_listed(r, &prev, &listed, &none).unwrap();
        let full = changed_since(Some(&prev), scan(r, &none).unwrap());
        assert_eq!(
            without_ctime(by_list.found.clone()),
            without_ctime(full.found)
        );
        assert_eq!(by_list.removed, full.removed);
        assert_eq!(
            by_list.removed,
            ["gone/x", "was-file"],
            "the removed folder's file and the file that became a folder"
        );
        let paths: Vec<&str> = by_list.found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["dists/s/Release", "link", "pool/new/d", "was-file/inner"],
            "only what changed"
        );
        // A path that leaves the repository is refused, by name.
        let e = scan_listed(r, &prev, &["../etc/passwd".into()], &none).unwrap_err();
        assert!(e.to_string().contains("'../etc/passwd'"), "{e}");
        let e = scan_listed(r, &prev, &["/etc/passwd".into()], &none).unwrap_err();
        assert!(
            e.to_string().contains("not a path inside the repository"),
            "{e}"
        );
    }

    #[test]
    fn random_changes_listed_in_any_order_scan_as_a_full_scan_does() {
        use rand::{seq::SliceRandom, Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let none = globs(&[]).unwrap();
        let names = ["a", "a.b", "a0", "b", "c-d"];
        let rand_path = |rng: &mut rand::rngs::StdRng| {
            let depth = rng.gen_range(1..=3);
            (0..depth)
                .map(|_| *names.choose(rng).unwrap())
                .collect::<Vec<_>>()
                .join("/")
        };
        // Writes a file at `p`, replacing whatever is in its way.
        let put = |r: &Path, p: &str, body: &str| {
            let full = r.join(p);
            let mut anc = full.parent().unwrap().to_path_buf();
            let mut chain = Vec::new();
            while anc != r {
                chain.push(anc.clone());
                anc = anc.parent().unwrap().to_path_buf();
            }
            for a in chain.iter().rev() {
                if a.is_file() || a.is_symlink() {
                    std::fs::remove_file(a).unwrap();
                }
            }
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            if full.is_dir() {
                std::fs::remove_dir_all(&full).unwrap();
            }
            std::fs::write(&full, body).unwrap();
        };
        for round in 0..40 {
            let t = tempfile::tempdir().unwrap();
            let r = t.path();
            for i in 0..rng.gen_range(1..25) {
                put(r, &rand_path(&mut rng), &format!("v{i}"));
            }
            let (before, _, _) = scan(r, &none).unwrap();
            let prev = manifest_of_scan(&before);
            let mut listed = Vec::new();
            for i in 0..rng.gen_range(1..8) {
                let p = rand_path(&mut rng);
                match rng.gen_range(0..3) {
                    0 => put(r, &p, &format!("changed {round} {i}")),
                    1 => {
                        let full = r.join(&p);
                        if full.is_dir() {
                            std::fs::remove_dir_all(&full).unwrap();
                        } else if full.exists() {
                            std::fs::remove_file(&full).unwrap();
                        }
                    }
                    _ => {
                        // List a folder above the change instead of it.
                        put(r, &p, "deep");
                        if let Some((up, _)) = p.rsplit_once('/') {
                            listed.push(up.to_string());
                            continue;
                        }
                    }
                }
                listed.push(p);
            }
            listed.shuffle(&mut rng);
            let by_list = scan_listed(r, &prev, &listed, &none).unwrap();
            let full = changed_since(Some(&prev), scan(r, &none).unwrap());
            assert_eq!(
                without_ctime(by_list.found),
                without_ctime(full.found),
                "round {round}: listed {listed:?}"
            );
            assert_eq!(
                by_list.removed, full.removed,
                "round {round}: listed {listed:?}"
            );
        }
    }
}
