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
//! 4. starts seeding the new packs, then writes the signed manifest, the
//!    delta from the previous generation, and last the head.
//!
//! A file that changes while it is being hashed makes the publish fail
//! with an error naming it; the next publish picks it up.

use crate::{fsutil, Agent};
use anyhow::{bail, Context, Result};
use shoal_config::Profile;
use shoal_manifest::signed::PrivateKey;
use shoal_manifest::{Entry, EntryKind, Header, Manifest, PackRef, Sha256Hash, FORMAT};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// A live pack: its torrent's contents.
#[derive(Debug, Clone)]
pub struct LivePack {
    pub info_hash: String,
    pub files: Vec<([u8; 32], u64)>,
    pub pieces: Vec<Vec<[u8; 20]>>,
}

/// What the origin remembers between publishes.
#[derive(Default)]
pub struct OriginState {
    pub manifest: Option<Manifest>,
    pub packs: BTreeMap<u64, LivePack>,
    /// Content → the live pack carrying it.
    pub catalog: HashMap<[u8; 32], u64>,
    pub loaded: bool,
}

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
    loop {
        if let Err(e) = publish(&agent).await {
            agent.set_error(&e);
        }
        if interval.is_zero() {
            // Publish only on admin calls, but still re-sign before expiry.
            let refresh = agent.cfg.origin.manifest_ttl / 4;
            let _ = tokio::time::timeout(refresh, agent.kick.notified()).await;
        } else {
            let _ = tokio::time::timeout(interval, agent.kick.notified()).await;
        }
    }
}

fn load_key(agent: &Agent) -> Result<PrivateKey> {
    let path = agent
        .cfg
        .origin
        .key
        .as_ref()
        .context("origin.key is not set")?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the origin key {} ({e}); create it with `shoal-agent keygen --out {}`",
            path.display(),
            path.display()
        )
    })?;
    PrivateKey::from_file_text(&text).with_context(|| format!("{}", path.display()))
}

/// Loads the last published generation and starts seeding its packs.
async fn load_state(agent: &Arc<Agent>, st: &mut OriginState) -> Result<()> {
    let key = load_key(agent)?;
    let pk = key.public();
    let head_path = agent.store.head();
    if head_path.exists() {
        let head = shoal_manifest::Head::from_body(&pk.open("head", &std::fs::read(&head_path)?)?)?;
        let env = std::fs::read(agent.store.manifest(head.generation)).with_context(|| {
            format!(
                "the head names generation {} but its manifest is missing",
                head.generation
            )
        })?;
        let m = Manifest::from_body(&pk.open("manifest", &env)?)?;
        for p in &m.header.packs {
            let t = std::fs::read(agent.store.torrent(&p.info_hash))
                .with_context(|| format!("torrent of pack {} is missing", p.id))?;
            let parsed = shoal_pack::parse_torrent(&t, Some(&p.info_hash))?;
            for (sha, _) in &parsed.files {
                st.catalog.insert(*sha, p.id);
            }
            st.packs.insert(
                p.id,
                LivePack {
                    info_hash: p.info_hash.clone(),
                    files: parsed.files,
                    pieces: parsed.pieces,
                },
            );
        }
        tracing::info!(
            generation = m.header.generation,
            packs = st.packs.len(),
            "loaded last publication"
        );
        seed_packs(agent, st, st.packs.keys().copied().collect()).await?;
        agent.record_generation(&m);
        st.manifest = Some(m);
    }
    st.loaded = true;
    Ok(())
}

/// Adds packs to the BitTorrent session and waits until they are seeding.
async fn seed_packs(agent: &Arc<Agent>, st: &OriginState, ids: Vec<u64>) -> Result<()> {
    let started = Instant::now();
    let mut bytes = 0;
    let mut handles = Vec::new();
    for id in ids {
        let p = &st.packs[&id];
        let torrent = std::fs::read(agent.store.torrent(&p.info_hash))?;
        let t = agent
            .bt
            .add(crate::bt::AddPack {
                id,
                info_hash: p.info_hash.clone(),
                torrent,
                folder: agent.store.pack_dir(id),
                peers: Vec::new(),
                trackers: Vec::new(),
                announce_interval: agent.cfg.network.announce_interval,
                read_only: true,
                paused: false,
            })
            .await?;
        bytes += p.files.iter().map(|f| f.1).sum::<u64>();
        handles.push(t);
    }
    for t in handles {
        t.handle.wait_until_initialized().await?;
        let s = t.handle.stats();
        if !s.finished {
            bail!(
                "pack {} does not check complete in {} ({} of {} bytes): its store was damaged; \
                 remove {} and republish",
                t.id,
                agent.store.pack_dir(t.id).display(),
                s.progress_bytes,
                s.total_bytes,
                agent.store.pack_dir(t.id).display()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut s = agent.status.lock().unwrap();
    s.last_check_seconds = Some(secs);
    s.last_check_bytes = bytes;
    Ok(())
}

/// One path found by the scan.
enum Found {
    File {
        size: u64,
        mtime_ns: i64,
        mode: u32,
    },
    Symlink {
        target: String,
        mode: u32,
        mtime_ns: i64,
    },
}

/// Walks `root` in sorted order. Non-UTF-8 names are an error; symlinks
/// leaving the tree and special files are skipped with a warning.
/// Paths found, and warnings about paths skipped.
type Scanned = (Vec<(String, Found)>, Vec<String>);

fn scan(root: &Path, exclude: &globset::GlobSet) -> Result<Scanned> {
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| fsutil::explain_io(e, &dir))?;
        let names: Vec<std::ffi::OsString> = rd
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(|e| fsutil::explain_io(e, &dir))?;
        let mut subdirs = Vec::new();
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
            if exclude.is_match(&relp) || fsutil::is_temp_name(OsStr::new(n)) {
                continue;
            }
            let full = dir.join(&name);
            let m = std::fs::symlink_metadata(&full).map_err(|e| fsutil::explain_io(e, &full))?;
            let ft = m.file_type();
            if ft.is_dir() {
                subdirs.push((full, relp));
            } else if ft.is_file() {
                out.push((
                    relp,
                    Found::File {
                        size: m.len(),
                        mtime_ns: fsutil::mtime_ns(&m),
                        mode: m.mode() & 0o7777,
                    },
                ));
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&full)?;
                let Some(t) = target.to_str() else {
                    warnings.push(format!("{relp}: symlink target is not UTF-8; skipped"));
                    continue;
                };
                if let Err(why) = shoal_manifest::paths::check_symlink(&relp, t) {
                    warnings.push(format!("{relp} -> {t}: {why}; skipped"));
                    continue;
                }
                out.push((
                    relp,
                    Found::Symlink {
                        target: t.to_string(),
                        mode: 0o777,
                        mtime_ns: fsutil::mtime_ns(&m),
                    },
                ));
            } else {
                warnings.push(format!(
                    "{relp}: not a regular file, directory or symlink; skipped"
                ));
            }
        }
        stack.extend(subdirs);
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok((out, warnings))
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
struct Job {
    path: String,
    copy: bool,
    size: u64,
    mtime_ns: i64,
}

/// Hash results: (hashed content, staged copy if any).
type Hashed = (shoal_pack::Hashed, Option<PathBuf>);

/// Hashes `jobs` on all cores; each file is read once.
fn hash_all(root: &Path, staging: &Path, jobs: &[Job]) -> Result<Vec<Hashed>> {
    std::fs::create_dir_all(staging)?;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Result<Hashed>>>> =
        jobs.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs.len() {
                    break;
                }
                let j = &jobs[i];
                let r = hash_one(root, staging, i, j);
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    results
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("every job ran"))
        .collect()
}

fn hash_one(root: &Path, staging: &Path, i: usize, j: &Job) -> Result<Hashed> {
    let src = root.join(&j.path);
    let copy_to = j.copy.then(|| staging.join(format!("{i}")));
    if let Some(c) = &copy_to {
        let _ = std::fs::remove_file(c);
    }
    let h =
        shoal_pack::hash_file(&src, copy_to.as_deref()).map_err(|e| fsutil::explain_io(e, &src))?;
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
    Ok((h, copy_to))
}

/// Publishes a new generation if the tree changed (or the last one is
/// half-way to expiry). Returns the current generation.
pub async fn publish(agent: &Arc<Agent>) -> Result<u64> {
    let mut st = agent.origin.lock().await;
    if !st.loaded {
        load_state(agent, &mut st).await?;
    }
    // The previous manifest is only replaced once a new one is written.
    let prev = st.manifest.take();
    let r = publish_after(agent, &mut st, prev.as_ref()).await;
    let g = match r {
        Ok(Some(new)) => {
            let g = new.header.generation;
            st.manifest = Some(new);
            g
        }
        Ok(None) => {
            st.manifest = prev;
            st.manifest
                .as_ref()
                .map(|m| m.header.generation)
                .unwrap_or(0)
        }
        Err(e) => {
            st.manifest = prev;
            return Err(e);
        }
    };
    Ok(g)
}

/// Publishes on top of `prev`; `Ok(None)` when nothing changed.
async fn publish_after(
    agent: &Arc<Agent>,
    st: &mut OriginState,
    prev: Option<&Manifest>,
) -> Result<Option<Manifest>> {
    let started = Instant::now();
    agent.set_state("publishing");
    let key = load_key(agent)?;
    let cfg = &agent.cfg;
    let root = cfg.repo.clone();
    let exclude = globs(&cfg.origin.exclude)?;
    let immutable = globs(&immutable_patterns(cfg.profile, &cfg.origin.immutable))?;

    let (found, warnings) = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || scan(&root, &exclude)).await??
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let prev_entries: HashMap<&str, &Entry> = prev
        .map(|m| m.entries.iter().map(|e| (e.path.as_str(), e)).collect())
        .unwrap_or_default();

    // Decide what to hash.
    let mut jobs = Vec::new();
    let mut reuse: Vec<Option<(Sha256Hash, u64)>> = Vec::with_capacity(found.len());
    for (path, f) in &found {
        match f {
            Found::File { size, mtime_ns, .. } => {
                let same = prev_entries.get(path.as_str()).and_then(|e| match &e.kind {
                    EntryKind::File {
                        size: s, sha256, ..
                    } if s == size && e.mtime_ns == *mtime_ns => Some((*sha256, *s)),
                    _ => None,
                });
                if same.is_none() && *size > 0 {
                    jobs.push(Job {
                        path: path.clone(),
                        copy: !immutable.is_match(path),
                        size: *size,
                        mtime_ns: *mtime_ns,
                    });
                }
                reuse.push(same);
            }
            Found::Symlink { .. } => reuse.push(None),
        }
    }
    let hashed_bytes: u64 = jobs.iter().map(|j| j.size).sum();
    let hash_started = Instant::now();
    let staging = agent.store.staging();
    let jobs = Arc::new(jobs);
    let results = {
        let (root, staging, jobs) = (root.clone(), staging.clone(), jobs.clone());
        tokio::task::spawn_blocking(move || hash_all(&root, &staging, &jobs)).await??
    };
    let hash_secs = hash_started.elapsed().as_secs_f64();
    if !jobs.is_empty() {
        tracing::info!(
            files = jobs.len(),
            bytes = hashed_bytes,
            seconds = hash_secs,
            mb_per_s = hashed_bytes as f64 / 1e6 / hash_secs.max(1e-9),
            "hashed changed files"
        );
    }
    let hashed: HashMap<&str, (&shoal_pack::Hashed, Option<&PathBuf>, &Job)> = jobs
        .iter()
        .zip(results.iter())
        .map(|(j, (h, c))| (j.path.as_str(), (h, c.as_ref(), j)))
        .collect();

    // Build the entries (pack ids filled in below).
    let mut entries = Vec::with_capacity(found.len());
    for ((path, f), same) in found.iter().zip(reuse) {
        let e = match f {
            Found::File {
                size,
                mtime_ns,
                mode,
            } => {
                let sha = match (same, hashed.get(path.as_str())) {
                    (Some((sha, _)), _) => sha,
                    (None, Some((h, _, _))) => Sha256Hash(h.sha256),
                    (None, None) => Sha256Hash::of(b""),
                };
                Entry {
                    path: path.clone(),
                    kind: EntryKind::File {
                        size: *size,
                        sha256: sha,
                        pack: None,
                    },
                    mode: *mode,
                    mtime_ns: *mtime_ns,
                }
            }
            Found::Symlink {
                target,
                mode,
                mtime_ns,
            } => Entry {
                path: path.clone(),
                kind: EntryKind::Symlink {
                    target: target.clone(),
                },
                mode: *mode,
                mtime_ns: *mtime_ns,
            },
        };
        entries.push(e);
    }

    // Which contents are new; which packs to compact.
    // Content → its size (a content's size is the size of every file with it).
    let referenced: HashMap<[u8; 32], u64> = entries
        .iter()
        .filter_map(|e| e.file())
        .filter(|f| f.0 > 0)
        .map(|f| (f.1 .0, f.0))
        .collect();
    let mut new_contents: Vec<(shoal_pack::Content, PathBuf, bool)> = Vec::new();
    let mut seen = HashSet::new();
    for (path, (h, copy, _)) in &hashed {
        if st.catalog.contains_key(&h.sha256) || !seen.insert(h.sha256) {
            continue;
        }
        let (src, is_copy) = match copy {
            Some(c) => ((*c).clone(), true),
            None => (root.join(path), false),
        };
        new_contents.push(((*h).clone().into(), src, is_copy));
    }
    let mut live_bytes: HashMap<u64, u64> = HashMap::new();
    for (sha, size) in &referenced {
        if let Some(id) = st.catalog.get(sha) {
            *live_bytes.entry(*id).or_default() += size;
        }
    }
    let mut retire: Vec<u64> = Vec::new();
    let mut repack: Vec<(shoal_pack::Content, PathBuf, bool)> = Vec::new();
    for (id, p) in &st.packs {
        let total: u64 = p.files.iter().map(|f| f.1).sum();
        let live = live_bytes.get(id).copied().unwrap_or(0);
        if live == 0 {
            retire.push(*id);
        } else if (live as f64) < COMPACT_BELOW * total as f64 {
            retire.push(*id);
            for ((sha, size), pieces) in p.files.iter().zip(&p.pieces) {
                if referenced.contains_key(sha) {
                    repack.push((
                        shoal_pack::Content {
                            sha256: *sha,
                            size: *size,
                            pieces: pieces.clone(),
                            // Recomputed from the store file if it ends a pack.
                            last_unpadded: None,
                        },
                        agent.store.content(*id, sha),
                        false,
                    ));
                }
            }
        }
    }
    for c in repack.iter_mut() {
        if c.0.size % shoal_pack::PIECE_LEN != 0 {
            // Only the tail piece's unpadded hash is missing: read just it.
            c.0.last_unpadded = Some(tail_sha1(&c.1, c.0.size)?);
        }
    }
    new_contents.extend(repack);

    let now = fsutil::now();
    let ttl = cfg.origin.manifest_ttl.as_secs() as i64;
    let content_changed = !new_contents.is_empty() || !retire.is_empty();
    let entries_changed = prev
        .map(|m| {
            m.entries.len() != entries.len()
                || m.entries.iter().zip(&entries).any(|(a, b)| {
                    a.path != b.path
                        || a.mode != b.mode
                        || a.mtime_ns != b.mtime_ns
                        || !same_content(a, b)
                })
        })
        .unwrap_or(true);
    let stale = prev
        .map(|m| now >= m.header.created + ttl / 2)
        .unwrap_or(true);
    if !content_changed && !entries_changed && !stale {
        let _ = std::fs::remove_dir_all(&staging);
        agent.set_state("idle");
        return Ok(None);
    }

    // Make the new packs.
    let first_id = st.packs.keys().max().map(|m| m + 1).unwrap_or(1);
    let generation = prev.map(|m| m.header.generation + 1).unwrap_or(1);
    new_contents.sort_by_key(|a| a.0.sha256);
    let sources: HashMap<[u8; 32], (PathBuf, bool)> = new_contents
        .iter()
        .map(|(c, p, copy)| (c.sha256, (p.clone(), *copy)))
        .collect();
    let groups = shoal_pack::group(
        new_contents.into_iter().map(|x| x.0).collect(),
        cfg.origin.pack_max_files,
        cfg.origin.pack_max_bytes,
    );
    let mut added = Vec::new();
    for (n, g) in groups.iter().enumerate() {
        let id = first_id + n as u64;
        let pack = shoal_pack::build(&format!("shoal-g{generation}-{n}"), g);
        let dir = agent.store.pack_dir(id);
        let _ = std::fs::remove_dir_all(&dir);
        for (sha, _) in &pack.files {
            let (src, is_copy) = &sources[sha];
            let dst = dir.join(shoal_pack::content_path(sha));
            std::fs::create_dir_all(dst.parent().unwrap())?;
            place_in_store(src, &dst, *is_copy)?;
        }
        let ih = hex::encode(pack.info_hash);
        fsutil::atomic_write(&agent.store.torrent(&ih), &pack.torrent)?;
        let parsed = shoal_pack::parse_torrent(&pack.torrent, Some(&ih))?;
        st.packs.insert(
            id,
            LivePack {
                info_hash: ih,
                files: parsed.files,
                pieces: parsed.pieces,
            },
        );
        for (sha, _) in &pack.files {
            st.catalog.insert(*sha, id);
        }
        added.push(id);
    }
    let _ = std::fs::remove_dir_all(&staging);
    for id in &retire {
        let p = st.packs.remove(id).expect("retired pack exists");
        for (sha, _) in &p.files {
            if st.catalog.get(sha) == Some(id) {
                st.catalog.remove(sha);
            }
        }
    }
    seed_packs(agent, st, added.clone()).await?;

    // Fill in pack ids and write the signed documents; the head goes last.
    for e in entries.iter_mut() {
        if let EntryKind::File { size, sha256, pack } = &mut e.kind {
            if *size > 0 {
                *pack = Some(
                    *st.catalog
                        .get(&sha256.0)
                        .context("content without a pack")?,
                );
            }
        }
    }
    let packs: Vec<PackRef> = st
        .packs
        .iter()
        .map(|(id, p)| PackRef {
            id: *id,
            info_hash: p.info_hash.clone(),
            files: p.files.len() as u64,
            bytes: p.files.iter().map(|f| f.1).sum(),
        })
        .collect();
    let manifest = Manifest {
        header: Header {
            format: FORMAT,
            generation,
            profile: cfg.profile.to_string(),
            created: now,
            expires: now + ttl,
            prev_sha256: prev.map(|m| m.sha256()),
            packs,
        },
        entries,
    };
    manifest
        .check()
        .context("the origin built an invalid manifest (bug)")?;
    let body = manifest.body();
    let sha = Sha256Hash::of(&body);
    let store = &agent.store;
    let manifest_env = key.seal("manifest", &body);
    fsutil::atomic_write(&store.manifest(generation), &manifest_env)?;
    if let Some(p) = prev {
        let sig = shoal_manifest::signed::signature_of(&manifest_env).context("sealed envelope")?;
        let d = manifest.delta_from(p, sig);
        fsutil::atomic_write(
            &store.delta(p.header.generation),
            &key.seal("delta", &d.body()),
        )?;
    }
    let head = shoal_manifest::Head {
        format: FORMAT,
        generation,
        manifest_sha256: sha,
        created: now,
        expires: now + ttl,
    };
    fsutil::atomic_write(&store.head(), &key.seal("head", &head.body()))?;
    crate::store::Store::prune_numbered(&store.manifests_dir(), 3);
    crate::store::Store::prune_numbered(&store.deltas_dir(), cfg.origin.keep_deltas as usize);

    // Retired packs are no longer named by any manifest a mirror would fetch.
    for id in &retire {
        agent.bt.remove(*id).await?;
        let _ = std::fs::remove_dir_all(store.pack_dir(*id));
    }

    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        generation,
        files = manifest.entries.len(),
        new_packs = added.len(),
        retired_packs = retire.len(),
        hashed_files = jobs.len(),
        hashed_bytes,
        seconds = secs,
        "published"
    );
    {
        agent.record_generation(&manifest);
        let mut s = agent.status.lock().unwrap();
        s.last_sync_seconds = Some(secs);
        s.last_error = None;
        s.state = "idle".into();
    }
    Ok(Some(manifest))
}

fn same_content(a: &Entry, b: &Entry) -> bool {
    match (&a.kind, &b.kind) {
        (
            EntryKind::File {
                size: s1,
                sha256: h1,
                ..
            },
            EntryKind::File {
                size: s2,
                sha256: h2,
                ..
            },
        ) => s1 == s2 && h1 == h2,
        (EntryKind::Symlink { target: t1 }, EntryKind::Symlink { target: t2 }) => t1 == t2,
        _ => false,
    }
}

/// SHA-1 of the last, partial piece of a stored content (compaction
/// reuses every other piece hash from the old pack's torrent).
fn tail_sha1(path: &Path, size: u64) -> Result<[u8; 20]> {
    use std::io::{Read, Seek, SeekFrom};
    let rem = size % shoal_pack::PIECE_LEN;
    let mut f = std::fs::File::open(path).map_err(|e| fsutil::explain_io(e, path))?;
    f.seek(SeekFrom::Start(size - rem))?;
    let h = shoal_pack::hash_stream(&mut f.take(rem), None)?;
    h.last_unpadded
        .with_context(|| format!("{}: shorter than its pack says", path.display()))
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
    let (v, _) = scan(root, &globs(&[])?)?;
    Ok(v.len())
}
