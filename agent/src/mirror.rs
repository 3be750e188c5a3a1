//! The mirror: follows the newest signed generation and applies it.
//!
//! Each round:
//! 1. asks every upstream and every known peer for its signed head and
//!    picks the newest valid one (bad signatures, expired heads and
//!    rollbacks are refused with a log line and a `/status` error);
//! 2. gets manifest G by applying signed deltas to the manifest it holds
//!    (only the chunks holding changed paths are re-serialized; the rebuilt
//!    root is checked against the head's hash and the origin's signature),
//!    or, when it is new or far behind, the signed root of G and the chunks
//!    of it that it does not hold ([`get_chunks`]);
//! 3. downloads every pack of G it does not hold yet over BitTorrent, from
//!    all known agents, after hard-linking into the new pack's folder any
//!    content it already holds (so compacted packs cost nothing);
//! 4. checks SHA-256 of every content of those packs;
//! 5. applies G to the live tree in the consistency order ([`crate::apply`]),
//!    records it, schedules removals for after the grace period, writes the
//!    trace file, and relays G's signed documents to others.
//!
//! The live tree is untouched until step 5, so any refusal leaves it as
//! it was; a crash in step 5 is repaired by the next round.

use crate::apply::{self, Pending};
use crate::{fsutil, Agent};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use shoal_config::Profile;
use shoal_manifest::signed::PublicKey;
use shoal_manifest::{Delta, Head, Manifest, Root, Sha256Hash};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest signed document accepted from a peer.
const MAX_DOC: usize = 1 << 30;
/// Give up on a download that made no progress for this long.
const STALL: Duration = Duration::from_secs(300);
/// Known peers asked per round, besides the configured upstreams.
const MAX_PEER_SOURCES: usize = 8;
/// Fetch the full manifest rather than more deltas than this.
const MAX_DELTAS: u64 = 64;

#[derive(Debug, Serialize, Deserialize)]
struct AppliedRecord {
    generation: u64,
    manifest_sha256: Sha256Hash,
    /// Files and bytes of the generation, for `/status` at start-up
    /// without reading its entries (absent in records of older versions).
    #[serde(default)]
    files: Option<u64>,
    #[serde(default)]
    bytes: Option<u64>,
}

/// What the mirror holds.
struct MirrorState {
    key: PublicKey,
    /// The applied generation, with its entries once they were needed.
    manifest: Option<Manifest>,
    /// The applied generation's signed root while its entries are not read
    /// yet: a restart reads only the root, and the entries (a million at
    /// Debian scale) when a sync, a repair or a deletion first needs them
    /// ([`entries`]).
    root: Option<Root>,
    manifest_sha: Option<Sha256Hash>,
    pending: Pending,
    /// Packs whose every content passed SHA-256 here.
    verified: HashSet<u64>,
    /// Content → a verified pack holding it.
    contents: crate::shatable::ShaTable<u64>,
    /// Compare the whole live tree on the next round (start-up).
    full_check: bool,
    /// Paths read, fetched or planned since the heap was last trimmed
    /// ([`crate::memory::release_after`]).
    touched: usize,
}

pub async fn run(agent: Arc<Agent>) -> Result<()> {
    let key_text = agent
        .cfg
        .mirror
        .origin_key
        .clone()
        .context("mirror.origin_key is not set")?;
    let key = PublicKey::parse(&key_text)?;
    let mut ms = load(&agent, key)?;
    reseed(&agent, &ms).await;
    // Learn of the other mirrors before the first download, so every pack
    // starts with them as peers (see `add_pack`).
    // Mirrors started together announce at once and would miss each other:
    // look again after a moment.
    announce_once(&agent).await;
    tokio::time::sleep(
        agent
            .cfg
            .network
            .announce_interval
            .min(Duration::from_secs(3)),
    )
    .await;
    announce_once(&agent).await;
    tokio::spawn(announce_loop(agent.clone()));
    loop {
        let round = Instant::now();
        let synced = sync(&agent, &mut ms).await;
        if let Err(e) = &synced {
            agent.set_error(e);
        }
        if let Err(e) = run_deletions(&agent, &mut ms) {
            agent.set_error(&e);
        }
        // A sync freed its plan and lists only now that it returned; a
        // small update's are not worth walking the heap for.
        crate::memory::release_after(std::mem::take(&mut ms.touched));
        tracing::debug!(seconds = round.elapsed().as_secs_f64(), "round done");
        let _ = tokio::time::timeout(agent.cfg.mirror.poll_interval, agent.kick.notified()).await;
    }
}

fn load(agent: &Agent, key: PublicKey) -> Result<MirrorState> {
    let store = &agent.store;
    let mut ms = MirrorState {
        key,
        manifest: None,
        root: None,
        manifest_sha: None,
        pending: Pending::load(&store.pending()),
        verified: HashSet::new(),
        contents: crate::shatable::ShaTable::new(),
        // Nothing applied yet: only the temp-file sweep has work.
        full_check: true,
        touched: 0,
    };
    if let Ok(b) = std::fs::read(store.applied()) {
        let rec: AppliedRecord = serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is corrupt; remove it to resync",
                store.applied().display()
            )
        })?;
        let cannot = || {
            format!(
                "manifest of applied generation {} cannot be read",
                rec.generation
            )
        };
        // The live tree needs comparing only if an apply or a repair was
        // cut short (the marker stays): otherwise it holds the generation.
        // A record written before the marker existed cannot say: compare.
        ms.full_check = store.applying().exists() || rec.files.is_none();
        let root = match (&rec.files, &rec.bytes) {
            (Some(_), Some(_)) => store
                .read_root(&ms.key, rec.generation)
                .with_context(cannot)?,
            _ => None,
        };
        match root {
            Some((root, sha)) if sha == rec.manifest_sha256 => {
                ms.verified = verified_of(store, &root.header.packs);
                ms.manifest_sha = Some(sha);
                agent.record_header(&root.header, rec.files.unwrap_or(0), rec.bytes.unwrap_or(0));
                ms.root = Some(root);
            }
            _ => {
                let (m, sha) = store
                    .read_manifest(&ms.key, rec.generation)
                    .with_context(cannot)?;
                ms.manifest_sha = Some(sha);
                ms.verified = verified_of(store, &m.header.packs);
                agent.record_generation(&m);
                hold(&mut ms, m);
            }
        }
        agent.status.lock().unwrap().pending_deletions = ms.pending.due.len() as u64;
    }
    Ok(ms)
}

/// The packs of `packs` whose every content passed SHA-256 here.
fn verified_of(store: &crate::store::Store, packs: &[shoal_manifest::PackRef]) -> HashSet<u64> {
    packs
        .iter()
        .filter(|p| store.verified(p.id).exists())
        .map(|p| p.id)
        .collect()
}

/// Makes `m` the held manifest, with its contents in verified packs.
fn hold(ms: &mut MirrorState, m: Manifest) {
    // Freed before the new table is built, not after.
    ms.contents.clear();
    ms.contents = m
        .entries()
        .filter_map(|e| match e.file() {
            Some((size, sha, Some(pack))) if size > 0 && ms.verified.contains(&pack) => {
                Some((sha.0, pack))
            }
            _ => None,
        })
        .collect();
    ms.root = None;
    ms.manifest = Some(m);
}

/// The applied generation's header (read at start-up, entries or not).
fn header(ms: &MirrorState) -> Option<&shoal_manifest::Header> {
    ms.manifest
        .as_ref()
        .map(|m| &m.header)
        .or(ms.root.as_ref().map(|r| &r.header))
}

/// The applied generation with its entries, read from the state folder
/// the first time they are needed after a restart (checked against the
/// hash of the root read at start-up).
fn entries<'a>(agent: &Agent, ms: &'a mut MirrorState) -> Result<Option<&'a Manifest>> {
    if let Some(root) = &ms.root {
        let g = root.header.generation;
        let t = Instant::now();
        let (m, sha) = agent
            .store
            .read_manifest(&ms.key, g)
            .with_context(|| format!("manifest of applied generation {g} cannot be read"))?;
        if Some(sha) != ms.manifest_sha {
            bail!(
                "the stored manifest of generation {g} changed since start-up ({}); remove \
                 {} to resync",
                agent.store.manifest(g).display(),
                agent.store.applied().display()
            );
        }
        tracing::info!(
            generation = g,
            files = m.len(),
            seconds = t.elapsed().as_secs_f64(),
            "read the applied generation's entries"
        );
        ms.touched += m.len();
        hold(ms, m);
    }
    Ok(ms.manifest.as_ref())
}

/// Marks the live tree as being changed (see [`load`]): set before an
/// apply or a repair writes to it, cleared once it holds a generation.
fn mark_applying(agent: &Agent, on: bool) -> Result<()> {
    let path = agent.store.applying();
    if on {
        fsutil::atomic_write(&path, b"")
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fsutil::explain_io(e, &path)),
            _ => Ok(()),
        }
    }
}

/// Seeds every verified pack again: a pack whose seal still matches rests
/// without a check ([`crate::rest`]); the others are added to the session,
/// where librqbit re-checks them.
async fn reseed(agent: &Arc<Agent>, ms: &MirrorState) {
    let Some(h) = header(ms) else { return };
    let started = Instant::now();
    let mut bytes = 0;
    let mut resting = 0;
    for p in &h.packs {
        if !ms.verified.contains(&p.id) {
            continue;
        }
        if crate::rest::sealed(agent, p.id) {
            agent.bt.rest(crate::rest::Resting {
                id: p.id,
                info_hash: p.info_hash.clone(),
                files: p.files,
                bytes: p.bytes,
            });
            resting += 1;
            continue;
        }
        match std::fs::read(agent.store.torrent(&p.info_hash)) {
            Ok(t) => {
                if let Err(e) = add_pack(agent, p.id, &p.info_hash, t).await {
                    tracing::warn!(pack = p.id, error = %e, "cannot reseed pack");
                } else {
                    bytes += p.bytes;
                }
            }
            Err(e) => tracing::warn!(pack = p.id, error = %e, "torrent missing; will refetch"),
        }
    }
    for t in agent.bt.all() {
        let _ = t.handle.wait_until_initialized().await;
    }
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        seconds = secs,
        bytes,
        resting,
        "packs checked and seeding again; sealed packs rest unread"
    );
    let mut st = agent.status.lock().unwrap();
    st.last_check_seconds = Some(secs);
    st.last_check_bytes = bytes;
}

/// Adds a pack to the session: its initial peers are the mirrors this one
/// knows (never the origin: only the origin's tracker hands the origin out,
/// to the pack's feeder; see [`shoal_swarm`]), and its trackers name this
/// agent.
pub(crate) async fn add_pack(
    agent: &Arc<Agent>,
    id: u64,
    ih: &str,
    torrent: Vec<u8>,
) -> Result<Arc<crate::bt::Torrent>> {
    let known = agent.peers.lock().unwrap().list();
    let origins: Vec<std::net::SocketAddr> = known
        .iter()
        .filter(|(p, _)| p.role == "origin")
        .map(|(p, _)| p.peer_addr)
        .collect();
    let mut peers =
        shoal_swarm::relay_peers(known.iter().map(|(p, _)| (p.role.as_str(), p.peer_addr)));
    peers.extend(
        agent
            .cfg
            .network
            .peers
            .iter()
            .filter(|p| !origins.contains(p))
            .copied(),
    );
    let me = agent.cfg.peer_listen();
    peers.retain(|p| Some(*p) != me);
    peers.sort();
    peers.dedup();
    agent
        .bt
        .add(crate::bt::AddPack {
            id,
            info_hash: ih.to_string(),
            torrent,
            folder: agent.store.pack_dir(id),
            peers,
            trackers: agent.trackers(),
            announce_interval: agent.cfg.network.announce_interval,
            read_only: false,
        })
        .await
}

/// Every HTTP endpoint worth asking: upstreams first, then known peers.
fn sources(agent: &Agent) -> Vec<String> {
    let me = agent.cfg.advertise_url();
    let norm = |u: &str| u.trim_end_matches('/').to_string();
    let mut v: Vec<String> = agent.cfg.mirror.upstreams.iter().map(|u| norm(u)).collect();
    // Known peers too, but a bounded, rotating subset: asking every agent
    // of a large network every round would cost O(N²) requests.
    let mut peers: Vec<String> = agent
        .peers
        .lock()
        .unwrap()
        .urls()
        .iter()
        .map(|u| norm(u))
        .collect();
    peers.sort();
    peers.retain(|u| !v.contains(u));
    if !peers.is_empty() {
        let round =
            (fsutil::now() as u64 / agent.cfg.mirror.poll_interval.as_secs().max(1)) as usize;
        let n = peers.len();
        peers.rotate_left(round % n);
        v.extend(peers.into_iter().take(MAX_PEER_SOURCES));
    }
    v.retain(|u| *u != norm(&me));
    v
}

async fn fetch(agent: &Agent, url: &str) -> Result<Vec<u8>> {
    let mut resp = agent
        .client
        .get(url)
        .send()
        .await
        .map_err(|e| anyhow!("{url}: {}", root_cause(&e)))?;
    if !resp.status().is_success() {
        bail!("{url}: HTTP {}", resp.status());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| anyhow!("{url}: {}", root_cause(&e)))?
    {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_DOC {
            bail!("{url}: larger than {MAX_DOC} bytes; refusing");
        }
    }
    Ok(out)
}

/// The innermost cause of an HTTP client error ("Connection refused (os
/// error 111)"), without the URL reqwest repeats at every level.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let inner = cur.to_string();
    if e.is_timeout() {
        format!("timed out ({inner})")
    } else if e.is_connect() {
        format!("cannot connect: {inner}")
    } else {
        inner
    }
}

/// Every source's head, checked (signature, freshness).
struct Heads {
    good: Vec<(String, Head, Vec<u8>)>,
    /// Heads refused (bad signature, expired, malformed): worth reporting.
    refused: Vec<String>,
    /// Sources that did not answer: normal for a peer that is down.
    unreachable: Vec<String>,
}

async fn fetch_heads(agent: &Agent, ms: &MirrorState, srcs: &[String]) -> Heads {
    let now = fsutil::now();
    let mut out = Heads {
        good: Vec::new(),
        refused: Vec::new(),
        unreachable: Vec::new(),
    };
    let fetched = futures::future::join_all(srcs.iter().map(|u| {
        let url = format!("{u}/v1/head");
        async move { (u.clone(), fetch(agent, &url).await) }
    }))
    .await;
    for (u, r) in fetched {
        let env = match r {
            Ok(env) => env,
            Err(e) => {
                tracing::debug!(upstream = %u, error = %format!("{e:#}"), "no head");
                out.unreachable.push(format!("{e:#}"));
                continue;
            }
        };
        let checked = (|| -> Result<Head> {
            let body = ms.key.open("head", &env)?;
            let h = Head::from_body(&body)?;
            h.check_fresh(now)?;
            Ok(h)
        })();
        match checked {
            Ok(h) => out.good.push((u, h, env)),
            Err(e) => {
                tracing::warn!(upstream = %u, error = %format!("{e:#}"), "head refused");
                agent.count_refusal("head");
                out.refused.push(format!("{u}/v1/head: {e:#}"));
            }
        }
    }
    out
}

/// One round: find, fetch, verify, apply.
async fn sync(agent: &Arc<Agent>, ms: &mut MirrorState) -> Result<()> {
    let srcs = sources(agent);
    let applied = header(ms).map(|h| h.generation).unwrap_or(0);
    let now = fsutil::now();

    // 1. Heads.
    let Heads {
        good: heads,
        refused: problems,
        unreachable,
    } = fetch_heads(agent, ms, &srcs).await;
    let Some(best) = heads.iter().map(|h| h.1.generation).max() else {
        if ms.full_check {
            converge(agent, ms)?;
        }
        let why = if problems.is_empty() && unreachable.is_empty() {
            "no upstreams configured or known".to_string()
        } else {
            problems
                .iter()
                .chain(&unreachable)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        };
        // Serving the newest generation this mirror can verify is its job,
        // origin or not: not an error while that generation is valid.
        if let (Some(m), true) = (header(ms), problems.is_empty()) {
            if now < m.expires {
                let mut st = agent.status.lock().unwrap();
                st.state = "upstream-unreachable".into();
                st.upstream_error = Some(format!(
                    "no upstream answered with a valid head; serving generation {} (valid \
                     until {}): {why}",
                    m.generation, m.expires
                ));
                st.last_error = None;
                tracing::info!(
                    generation = m.generation,
                    "no upstream reachable; serving the generation held: {why}"
                );
                return Ok(());
            }
        }
        bail!("no upstream offered a valid signed head: {why}");
    };
    {
        let mut st = agent.status.lock().unwrap();
        st.generation_known = st.generation_known.max(best);
        st.upstream_error = None;
    }
    if best < applied {
        ms.full_check = false;
        agent.count_refusal("rollback");
        bail!(
            "every upstream offers an older generation (newest {best}) than the one applied here \
             ({applied}): refusing to roll back; check that the upstreams follow the same origin"
        );
    }
    for (u, h, _) in &heads {
        if h.generation < applied {
            // A peer that is behind is normal, not a warning.
            tracing::debug!(upstream = %u, offered = h.generation, applied, "not rolling back to a peer's older generation");
        }
    }
    let (best_url, head, head_env) = heads
        .iter()
        .find(|h| h.1.generation == best)
        .cloned()
        .expect("best exists");
    if best == applied {
        if Some(&head.manifest_sha256) != ms.manifest_sha.as_ref() {
            agent.count_refusal("manifest");
            bail!(
                "{best_url} signs a different manifest for generation {best} than the one applied \
                 here; refusing it (the origin key may be used by two origins)"
            );
        }
        if ms.full_check {
            converge(agent, ms)?;
        }
        let mut st = agent.status.lock().unwrap();
        st.last_error = refused(&problems);
        st.last_success = Some(fsutil::now());
        st.state = "idle".into();
        return Ok(());
    }

    // 2-3. Manifest G (by deltas from the applied one's entries) and its
    // packs.
    entries(agent, ms)?;
    let started = Instant::now();
    let mut phases = crate::phases::Phases::start();
    let started_at = fsutil::now();
    let received_before: u64 = agent.bt.totals().down.values().sum();
    agent.set_state("fetching-manifest");
    let urls_with_best: Vec<String> = std::iter::once(best_url.clone())
        .chain(
            heads
                .iter()
                .filter(|h| h.1.generation == best)
                .map(|h| h.0.clone()),
        )
        .chain(srcs.iter().cloned())
        .collect::<Vec<_>>();
    let mut urls: Vec<String> = Vec::new();
    for u in urls_with_best {
        if !urls.contains(&u) {
            urls.push(u);
        }
    }
    let Some((new, fetched)) =
        fetch_generation(agent, ms, (&head, &head_env), &urls, now, &mut phases).await?
    else {
        // Superseded: go for the newer generation at once (the next round
        // plans it).
        agent.kick.notify_one();
        agent.set_state("idle");
        return Ok(());
    };
    // Fetching and parsing a full manifest's chunks freed as much as its
    // entries hold; a delta's few entries free little.
    crate::memory::release_after(fetched);
    ms.touched += fetched;
    let profile: Profile = new.header.profile.parse().unwrap_or(agent.cfg.profile);
    if profile != agent.cfg.profile {
        tracing::warn!(manifest = %profile, configured = %agent.cfg.profile, "the origin publishes another profile; using the origin's order");
    }

    // 4. Apply.
    let store = &agent.store;
    let stage1 = started.elapsed().as_secs_f64();
    let applying = Instant::now();
    agent.set_state("applying");
    let plan = apply::plan_from(profile, ms.manifest.as_ref(), &new);
    ms.touched += plan.upserts.len() + plan.removals.len();
    phases.end("plan");
    let live = agent.cfg.repo.clone();
    let lookup = |sha: &Sha256Hash| ms.contents.get(&sha.0).map(|p| store.content(p, &sha.0));
    mark_applying(agent, true)?;
    let done = match apply::execute(&plan, &new, &live, &lookup) {
        Ok(d) => d,
        Err(e) => {
            // Part of `new` may be in place: the next round compares the
            // whole tree (and sweeps what no generation names).
            ms.full_check = true;
            return Err(e.context(format!(
                "applying generation {best} stopped part-way; the live tree holds generation \
                 {applied} plus new content files (index files come last, so clients see \
                 {applied}); the next round completes it"
            )));
        }
    };
    phases.end("apply");
    let removals = plan.removals.clone();
    fsutil::atomic_write(
        &store.applied(),
        &serde_json::to_vec(&AppliedRecord {
            generation: best,
            manifest_sha256: head.manifest_sha256,
            files: Some(new.len() as u64),
            bytes: Some(new.total_bytes()),
        })?,
    )?;
    if !ms.full_check {
        // The tree holds `best` (a repair still due keeps the marker).
        mark_applying(agent, false)?;
    }
    let grace = agent.cfg.mirror.delete_grace.as_secs() as i64;
    ms.pending.schedule(&removals, &new, fsutil::now() + grace);
    ms.pending.save(&store.pending())?;
    let stage2 = applying.elapsed().as_secs_f64();
    let secs = started.elapsed().as_secs_f64();
    let received = agent
        .bt
        .totals()
        .down
        .values()
        .sum::<u64>()
        .saturating_sub(received_before);
    tracing::info!(
        generation = best,
        upserts = plan.upserts.len(),
        linked = done.linked,
        copied = done.copied,
        symlinks = done.symlinks,
        removals_scheduled = removals.len(),
        seconds = secs,
        "applied"
    );

    phases.end("record");

    ms.manifest_sha = Some(head.manifest_sha256);
    if agent.cfg.mirror.trace {
        apply::write_trace(
            &live,
            &apply::Trace {
                name: &agent.name,
                generation: best,
                started: started_at,
                upstream: &best_url,
                bytes_received: received,
                stage1_seconds: stage1,
                stage2_seconds: stage2,
                info: &agent.cfg.mirror.trace_info,
                manifest: &new,
                profile,
            },
        )?;
    }
    {
        agent.record_generation(&new);
        let mut st = agent.status.lock().unwrap();
        st.pending_deletions = ms.pending.due.len() as u64;
        st.last_sync_seconds = Some(secs);
        st.last_success = Some(fsutil::now());
        st.last_error = refused(&problems);
        st.state = "idle".into();
    }
    let live_ids: HashSet<u64> = new.header.packs.iter().map(|p| p.id).collect();
    ms.manifest = Some(new);
    phases.end("trace");
    // Push: mirrors behind this one hear of it now.
    agent.notify_mirrors(best);

    // 5. Housekeeping, once the generation is applied and announced (each
    // can be a pass over the whole tree: about 0.1 s at a million files).
    // Retire packs the new generation no longer names (also those of a
    // superseded download), and forget their contents.
    if retire_packs(agent, ms, &live_ids).await? {
        ms.contents.retain(|_, p| live_ids.contains(p));
    }
    // Relay the newest few generations; their chunks stay, others go.
    crate::store::Store::prune_numbered(&store.manifests_dir(), 3);
    store.prune_chunks_now_and_then(&ms.key, best);
    phases.end("retire+prune");
    tracing::info!(generation = best, phases = %phases.summary(), "sync phases (seconds)");
    if ms.full_check {
        // An earlier apply stopped part-way: sweep what it left.
        converge(agent, ms)?;
    }
    Ok(())
}

/// Removes from the session and the disk every pack not in `live_ids`.
/// Returns whether any pack went.
async fn retire_packs(
    agent: &Agent,
    ms: &mut MirrorState,
    live_ids: &HashSet<u64>,
) -> Result<bool> {
    let store = &agent.store;
    let mut gone: Vec<u64> = agent
        .bt
        .all()
        .iter()
        .map(|t| t.id)
        .filter(|id| !live_ids.contains(id))
        .collect();
    if let Ok(rd) = std::fs::read_dir(store.packs_dir()) {
        gone.extend(
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
                .filter(|id| !live_ids.contains(id)),
        );
    }
    gone.sort_unstable();
    gone.dedup();
    let any = !gone.is_empty();
    for id in gone {
        if let Some(ih) = agent.bt.info_hash(id) {
            let _ = std::fs::remove_file(store.torrent(&ih));
        }
        agent.bt.remove(id).await?;
        let _ = std::fs::remove_file(store.seal(id));
        agent.pack_notes.lock().unwrap().remove(&id);
        let _ = std::fs::remove_dir_all(store.pack_dir(id));
        let _ = std::fs::remove_file(store.verified(id));
        ms.verified.remove(&id);
    }
    Ok(any)
}

/// What /status reports about upstreams whose documents were refused
/// while another upstream's were good.
fn refused(problems: &[String]) -> Option<String> {
    (!problems.is_empty()).then(|| format!("refused from some upstreams: {}", problems.join("; ")))
}

/// Brings the live tree back to the applied generation (start-up, crash,
/// an apply that stopped part-way): removes Shoal's temp files, places
/// every entry that differs, and schedules for removal (after the grace
/// period, like any deletion) files no generation here names.
fn converge(agent: &Agent, ms: &mut MirrorState) -> Result<()> {
    ms.full_check = false;
    let live = &agent.cfg.repo;
    let swept = fsutil::sweep_temp(live)?;
    if swept > 0 {
        tracing::info!(
            files = swept,
            "removed temp files left in the live tree by a crash"
        );
    }
    entries(agent, ms)?;
    let Some(m) = &ms.manifest else {
        return mark_applying(agent, false);
    };
    let profile: Profile = m.header.profile.parse().unwrap_or(agent.cfg.profile);
    let plan = apply::plan_full(profile, live, m);
    if !plan.upserts.is_empty() {
        tracing::info!(
            entries = plan.upserts.len(),
            "live tree differs from the applied generation; repairing"
        );
        let store = &agent.store;
        let lookup = |sha: &Sha256Hash| ms.contents.get(&sha.0).map(|p| store.content(p, &sha.0));
        mark_applying(agent, true)?;
        apply::execute(&plan, m, live, &lookup)?;
    }
    let orphans = apply::orphans(live, m, &ms.pending)?;
    if !orphans.is_empty() {
        tracing::info!(
            files = orphans.len(),
            "files in the live tree that the applied generation does not name; removing them \
             after the grace period"
        );
        let grace = agent.cfg.mirror.delete_grace.as_secs() as i64;
        ms.pending.schedule(&orphans, m, fsutil::now() + grace);
        ms.pending.save(&agent.store.pending())?;
    }
    // The tree holds the applied generation again.
    mark_applying(agent, false)
}

/// Manifest G and its packs: fetch → verify → download → verify, with the
/// generation's documents stored to relay. `None` when a newer generation
/// superseded G before its packs came; else G with how many paths the
/// fetch brought (every entry of a full fetch, the deltas' changes
/// otherwise).
///
/// Following by deltas, the signed deltas give G's header, and with it
/// its packs, before its entries exist: the packs download while another
/// thread rebuilds the entries from the deltas (from a copy of the held
/// manifest: its chunks are shared, not copied), checks the rebuilt root
/// against the signed head, and stores the documents. At a
/// million files the rebuild takes about as long as a small update's
/// download. Nothing is applied before both have ended, and a rebuild
/// that does not reach the head's manifest falls back to the full fetch
/// (packs already verified are not fetched again).
async fn fetch_generation(
    agent: &Arc<Agent>,
    ms: &mut MirrorState,
    (head, head_env): (&Head, &[u8]),
    urls: &[String],
    now: i64,
    phases: &mut crate::phases::Phases,
) -> Result<Option<(Manifest, usize)>> {
    if let Some(chain) = signed_deltas(agent, ms, head, urls).await {
        let header = chain
            .last()
            .expect("a chain holds a delta")
            .1
            .header
            .clone();
        phases.end("deltas");
        if let Err(e) = header.check_fresh(now) {
            agent.count_refusal("manifest");
            return Err(e.into());
        }
        let rebuilt = {
            let store = agent.store.clone();
            let cur = ms.manifest.clone().expect("deltas apply to a manifest");
            let cur_sha = ms.manifest_sha.expect("deltas apply to a known manifest");
            let (head, head_env) = (head.clone(), head_env.to_vec());
            tokio::task::spawn_blocking(move || -> Result<Result<(Manifest, usize)>> {
                let (mut new, env, changed) = match rebuild(cur, cur_sha, &chain, &head) {
                    Ok(r) => r,
                    Err(e) => return Ok(Err(e)),
                };
                let envs: Vec<(u64, Vec<u8>)> = chain
                    .into_iter()
                    .map(|(from, _, env)| (from, env))
                    .collect();
                let fresh = new.take_new_chunks();
                store_generation(&store, head.generation, &fresh, &env, &envs, &head_env)?;
                Ok(Ok((new, changed)))
            })
        };
        if superseded(agent, ms, &header, urls).await? {
            return Ok(None);
        }
        phases.end("download");
        match rebuilt
            .await
            .context("rebuilding the manifest")?
            .context("storing the generation's documents")?
        {
            Ok(r) => {
                phases.end("rebuild+store");
                return Ok(Some(r));
            }
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "the deltas did not rebuild the head's manifest; fetching it in full"
            ),
        }
    }
    let (mut new, env) = full_manifest(agent, ms, head, urls).await?;
    phases.end("manifest");
    if let Err(e) = new.check_fresh(now) {
        agent.count_refusal("manifest");
        return Err(e.into());
    }
    let fetched = new.len();
    let relay = {
        let store = agent.store.clone();
        let fresh = new.take_new_chunks();
        let (g, head_env) = (head.generation, head_env.to_vec());
        tokio::task::spawn_blocking(move || {
            store_generation(&store, g, &fresh, &env, &[], &head_env)
        })
    };
    if superseded(agent, ms, &new.header, urls).await? {
        return Ok(None);
    }
    phases.end("download");
    relay
        .await
        .context("storing the generation's documents")??;
    phases.end("store");
    Ok(Some((new, fetched)))
}

/// Manifest G in full: its signed root, then its chunks.
async fn full_manifest(
    agent: &Agent,
    ms: &MirrorState,
    head: &Head,
    urls: &[String],
) -> Result<(Manifest, Vec<u8>)> {
    let g = head.generation;
    let mut errs = Vec::new();
    for u in urls {
        let mut answered = false;
        let r = async {
            let env = fetch(agent, &format!("{u}/v1/manifest/{g}")).await?;
            // From here on the upstream answered: a failure is a refusal.
            answered = true;
            let body = ms.key.open("manifest", &env)?;
            let got = Sha256Hash::of(&body);
            if got != head.manifest_sha256 {
                return Err(anyhow!(shoal_manifest::Error::HashMismatch {
                    generation: g,
                    expected: head.manifest_sha256.to_hex(),
                    got: got.to_hex(),
                }));
            }
            let root = Root::from_body(&body)?;
            let m = get_chunks(agent, root, u, urls).await?;
            if m.header.generation != g {
                bail!(
                    "manifest says generation {}, head says {g}",
                    m.header.generation
                );
            }
            Ok((m, env))
        }
        .await;
        match r {
            Ok((m, env)) => {
                return Ok((m, env));
            }
            Err(e) => {
                if answered {
                    agent.count_refusal("manifest");
                }
                tracing::warn!(upstream = %u, error = %format!("{e:#}"), "manifest refused");
                errs.push(format!("{u}: {e:#}"));
            }
        }
    }
    bail!(
        "no upstream served a valid manifest for generation {g}: {}",
        errs.join("; ")
    )
}

/// Chunks fetched at once during a full manifest fetch.
const CHUNK_FETCHES: usize = 16;

/// The manifest of `root`, from its chunks in order: from the store where
/// held (the chunks of the current manifest and of recent ones), else from
/// `first` then the other upstreams. Each body is checked against its id
/// and stored as it arrives, so a fetch that stops part-way is not lost,
/// and parsed into entries at once ([`shoal_manifest::Assembly`]): at most
/// [`CHUNK_FETCHES`] bodies are held at a time.
async fn get_chunks(agent: &Agent, root: Root, first: &str, urls: &[String]) -> Result<Manifest> {
    use futures::StreamExt;
    let order: Vec<String> = std::iter::once(first.to_string())
        .chain(urls.iter().filter(|u| *u != first).cloned())
        .collect();
    let (generation, chunks) = (root.header.generation, root.chunks.len());
    let ids: Vec<Sha256Hash> = root.chunks.iter().map(|c| c.sha256).collect();
    let mut assembly = shoal_manifest::Assembly::new(root)?;
    let mut fetched = futures::stream::iter(ids)
        .map(|sha| get_chunk(agent, &order, sha))
        .buffered(CHUNK_FETCHES);
    let mut held = 0;
    while let Some(r) = fetched.next().await {
        let (body, was_held) = r?;
        held += usize::from(was_held);
        assembly.push(&body)?;
    }
    tracing::info!(generation, chunks, held, "manifest chunks gathered");
    Ok(assembly.finish()?)
}

/// One chunk body, from the store (`true`) or the first upstream in
/// `order` that serves a zstd stream of bytes hashing to `sha` (stored at
/// once).
async fn get_chunk(agent: &Agent, order: &[String], sha: Sha256Hash) -> Result<(Vec<u8>, bool)> {
    let store = &agent.store;
    if let Some(b) = store.read_chunk(&sha) {
        return Ok((b, true));
    }
    let mut errs = Vec::new();
    for u in order {
        let got = match fetch(agent, &format!("{u}/v1/chunk/{}", sha.to_hex())).await {
            Ok(z) => shoal_manifest::decompress_chunk(&z).map_err(|e| e.to_string()),
            Err(e) => {
                errs.push(format!("{e:#}"));
                continue;
            }
        };
        let why = match got {
            Ok(b) if Sha256Hash::of(&b) == sha => {
                store.put_chunk(&store.chunk(&sha), &b)?;
                return Ok((b, false));
            }
            Ok(_) => "it does not hash to its id".to_string(),
            Err(e) => e,
        };
        agent.count_refusal("manifest");
        tracing::warn!(upstream = %u, chunk = %sha, why = %why, "chunk refused");
        errs.push(format!("{u}: chunk {sha} refused: {why}"));
    }
    bail!(
        "no upstream served chunk {sha} of the manifest: {}",
        errs.join("; ")
    )
}

/// The signed deltas from the applied generation to G, each with the
/// generation it starts from and its envelope as fetched (to relay).
type Chain = Vec<(u64, Delta, Vec<u8>)>;

/// The chain of deltas from the manifest held to `head`'s generation, each
/// opened with the origin's key; `None` when this mirror holds no manifest
/// to apply them to, is too far behind, or an upstream lacks one of them
/// (the caller fetches G in full).
async fn signed_deltas(
    agent: &Agent,
    ms: &MirrorState,
    head: &Head,
    urls: &[String],
) -> Option<Chain> {
    let from = ms.manifest.as_ref()?.header.generation;
    ms.manifest_sha?;
    let target = head.generation;
    if target <= from || target - from > MAX_DELTAS {
        return None;
    }
    let mut chain = Vec::new();
    for from in from..target {
        let mut got = None;
        for u in urls {
            let Ok(env) = fetch(agent, &format!("{u}/v1/delta/{from}")).await else {
                continue;
            };
            let d = ms
                .key
                .open("delta", &env)
                .map_err(anyhow::Error::from)
                .and_then(|b| Delta::from_body(&b).map_err(anyhow::Error::from));
            match d {
                Ok(d) => {
                    got = Some((from, d, env));
                    break;
                }
                Err(e) => {
                    agent.count_refusal("delta");
                    tracing::warn!(upstream = %u, error = %format!("{e:#}"), "delta refused")
                }
            }
        }
        let Some(d) = got else {
            tracing::info!(
                from,
                "no upstream holds the delta from generation {from}; fetching the full manifest"
            );
            return None;
        };
        chain.push(d);
    }
    if chain.last().map(|d| d.1.header.generation) != Some(target) {
        tracing::warn!(
            generation = target,
            "the deltas end at another generation than the head's; fetching the full manifest"
        );
        return None;
    }
    Some(chain)
}

/// Manifest G rebuilt from `cur` by `chain` and checked against the head;
/// with its signed envelope (to relay) and the number of paths the deltas
/// changed or removed.
fn rebuild(
    cur: Manifest,
    cur_sha: Sha256Hash,
    chain: &Chain,
    head: &Head,
) -> Result<(Manifest, Vec<u8>, usize)> {
    let (mut m, mut sha, mut body) = (cur, cur_sha, Vec::new());
    let mut changed = 0;
    for (_, d, _) in chain {
        changed += d.upserts.len() + d.removals.len();
        // Checks that the delta starts from `sha` and that the rebuilt
        // root hashes to the delta's `manifest_sha256`.
        (m, body) = d.apply_with_body(&m, &sha)?;
        sha = d.manifest_sha256;
    }
    if sha != head.manifest_sha256 {
        bail!(
            "the deltas rebuild manifest {sha} of generation {}, the head signs {}",
            head.generation,
            head.manifest_sha256
        );
    }
    // The root hashes to what the signed head names, so it is the
    // origin's; the signature to relay came in a delta the origin signed,
    // and whoever fetches the envelope from here checks it again. Checking
    // it here too would hash the whole root once more (2 MB at a million
    // files) for nothing.
    let signature = &chain
        .last()
        .expect("a chain holds a delta")
        .1
        .manifest_signature;
    let env = shoal_manifest::signed::envelope("manifest", signature, &body);
    Ok((m, env, changed))
}

/// Stores generation `g`'s documents, to relay them and so a restart finds
/// the generation applied: its new chunks, its root envelope and the
/// deltas it was built by, made durable by one flush of the state
/// folder's file system (not a flush per file: each is a journal commit),
/// and last its head. Written while the packs download, and on disk
/// before the tree is applied.
fn store_generation(
    store: &crate::store::Store,
    g: u64,
    fresh: &[(Sha256Hash, Vec<u8>)],
    env: &[u8],
    deltas: &[(u64, Vec<u8>)],
    head_env: &[u8],
) -> Result<()> {
    store.write_chunks(fresh)?;
    fsutil::replace_unsynced(&store.manifest(g), env)?;
    for (from, env) in deltas {
        fsutil::replace_unsynced(&store.delta(*from), env)?;
    }
    fsutil::sync_fs(&store.root)?;
    fsutil::atomic_write(&store.head(), head_env)
}

/// [`download`]s the packs of `header`; `true` when a newer generation
/// superseded it first.
async fn superseded(
    agent: &Arc<Agent>,
    ms: &mut MirrorState,
    header: &shoal_manifest::Header,
    urls: &[String],
) -> Result<bool> {
    match download(agent, ms, header, urls).await? {
        Downloaded::Done => Ok(false),
        Downloaded::Superseded(g) => {
            tracing::info!(
                skipped = header.generation,
                newer = g,
                "generation superseded before it was applied"
            );
            Ok(true)
        }
    }
}

/// How a download ended.
enum Downloaded {
    /// Every pack of the generation is here and verified.
    Done,
    /// A newer generation appeared while this one could not progress.
    Superseded(u64),
}

/// A pack being downloaded, and its watchdog.
struct Fetching {
    torrent: Arc<crate::bt::Torrent>,
    info_hash: String,
    /// Progress last seen, and when it last grew.
    have: u64,
    since: Instant,
    /// Times re-added to the session, and the wait before the next time.
    retries: u32,
    backoff: Duration,
    /// When the pack was added or last restarted to wake librqbit's
    /// requesters ([`shoal_swarm::Kick::Again`]).
    kicked: Instant,
    /// Whether the early restart of a pack that got nothing happened
    /// ([`shoal_swarm::Kick::Early`]).
    kicked_early: bool,
    /// Usual restarts since the pack last progressed
    /// ([`shoal_swarm::kick_interval`]).
    fruitless: u32,
    /// Whether the pack was seen unfinished (so it came over the wire),
    /// and whether its restart when done happened
    /// ([`shoal_swarm::restart_when_done`]).
    seen_unfinished: bool,
    restarted_done: bool,
}

/// Counts a restart of a downloading pack (`/status` `pack_restarts`,
/// metric `shoal_pack_restarts_total`): `early`, `idle` or `done`.
fn count_restart(agent: &Agent, reason: &str) {
    *agent
        .status
        .lock()
        .unwrap()
        .pack_restarts
        .entry(reason.to_string())
        .or_default() += 1;
}

/// First wait without progress before a pack is re-added with fresh peers.
const PACK_RETRY: Duration = Duration::from_secs(15);
/// Longest wait between re-adds.
const PACK_RETRY_MAX: Duration = Duration::from_secs(300);
/// No progress on any pack for this long: look for a newer generation.
const SUPERSEDE_AFTER: Duration = Duration::from_secs(10);

/// Download → verify: every pack of `header` not verified here yet.
///
/// Nothing waits forever: a pack without progress (or one librqbit put in
/// the error state, for example on a full disk) is removed from the
/// session and added again with the peers known now, with backoff; a
/// newer generation supersedes a download that cannot progress; and a
/// download without any progress for [`STALL`] gives up, so the next round
/// plans again from the newest generation.
async fn download(
    agent: &Arc<Agent>,
    ms: &mut MirrorState,
    header: &shoal_manifest::Header,
    urls: &[String],
) -> Result<Downloaded> {
    let store = agent.store.clone();
    let mut todo: Vec<&shoal_manifest::PackRef> = header
        .packs
        .iter()
        .filter(|p| !ms.verified.contains(&p.id))
        .collect();
    if todo.is_empty() {
        return Ok(Downloaded::Done);
    }
    // Spread the swarm: every mirror starts at a different pack.
    let offset = (Sha256Hash::of(agent.name.as_bytes()).0[0] as usize) % todo.len();
    todo.rotate_left(offset);
    agent.set_state("downloading");
    // Torrents first, and contents already held linked in, so the space
    // check counts only what must still come over the wire. Nothing of
    // them is kept meanwhile: `fetch_torrent` stores them in the state
    // folder, and the session's parse is the one kept
    // ([`crate::bt::Torrent::layout`]).
    for p in &todo {
        let bytes = fetch_torrent(agent, p, urls).await?;
        let parsed = shoal_pack::parse_torrent(&bytes, Some(&p.info_hash))?;
        prelink(ms, &store, p.id, &parsed)?;
    }
    check_space(&store, &todo)?;
    let mut packs = Vec::new();
    for p in &todo {
        let path = store.torrent(&p.info_hash);
        let bytes = std::fs::read(&path).map_err(|e| fsutil::explain_io(e, &path))?;
        let torrent = add_pack(agent, p.id, &p.info_hash, bytes).await?;
        crate::rest::ask_to_wake(agent, &p.info_hash, p.bytes, 0);
        packs.push(Fetching {
            torrent,
            info_hash: p.info_hash.clone(),
            have: 0,
            since: Instant::now(),
            retries: 0,
            backoff: PACK_RETRY,
            kicked: Instant::now(),
            kicked_early: false,
            fruitless: 0,
            seen_unfinished: false,
            restarted_done: false,
        });
    }

    let mut last_progress = Instant::now();
    let mut last_have = 0u64;
    let mut last_look = Instant::now();
    let total: u64 = todo.iter().map(|p| p.bytes).sum();
    let mut report = Progress::new(total, packs.len());
    let origins: Vec<std::net::SocketAddr> = agent
        .peers
        .lock()
        .unwrap()
        .list()
        .into_iter()
        .filter(|(p, _)| p.role == "origin")
        .map(|(p, _)| p.peer_addr)
        .collect();
    loop {
        let mut all = true;
        let mut have = 0;
        for f in packs.iter_mut() {
            let s = f.torrent.handle.stats();
            have += s.progress_bytes;
            let errored = matches!(s.state, librqbit::TorrentStatsState::Error);
            if s.progress_bytes > f.have {
                f.have = s.progress_bytes;
                f.since = Instant::now();
                f.backoff = PACK_RETRY;
                f.fruitless = 0;
                agent.pack_notes.lock().unwrap().remove(&f.torrent.id);
            }
            if s.finished && !errored {
                agent.pack_notes.lock().unwrap().remove(&f.torrent.id);
                // Wake the mirrors relaying it through this one.
                let got_here = s
                    .live
                    .as_ref()
                    .is_some_and(|l| l.snapshot.downloaded_and_checked_bytes > 0);
                if shoal_swarm::restart_when_done(f.seen_unfinished || got_here, f.restarted_done) {
                    f.restarted_done = true;
                    agent.bt.kick(&f.torrent).await?;
                    count_restart(agent, "done");
                }
                continue;
            }
            f.seen_unfinished = true;
            all = false;
            let idle = f.since.elapsed();
            let kick = shoal_swarm::kick_due(
                idle.as_secs_f64(),
                f.kicked.elapsed().as_secs_f64(),
                f.kicked_early,
                s.progress_bytes,
                f.fruitless,
            );
            if let Some(why) = kick.filter(|_| !errored) {
                // Never the pack the origin feeds this mirror: a restart
                // would throw away what the origin has in flight.
                if !origins
                    .iter()
                    .any(|o| agent.bt.connected_to(&f.torrent, *o))
                {
                    let reason = match why {
                        shoal_swarm::Kick::Early => {
                            f.kicked_early = true;
                            "early"
                        }
                        shoal_swarm::Kick::Again => {
                            f.kicked = Instant::now();
                            f.fruitless += 1;
                            "idle"
                        }
                    };
                    agent.bt.kick(&f.torrent).await?;
                    count_restart(agent, reason);
                }
            }
            let why = if errored {
                let e = s.error.clone().unwrap_or_default();
                format!(
                    "failed in the BitTorrent session: {e}; check free space and permissions \
                     in {}",
                    store.pack_dir(f.torrent.id).display()
                )
            } else {
                let peers = s
                    .live
                    .as_ref()
                    .map(|l| l.snapshot.peer_stats.live)
                    .unwrap_or(0);
                format!(
                    "no progress for {}s at {} of {} bytes with {peers} connected peers",
                    idle.as_secs(),
                    s.progress_bytes,
                    s.total_bytes
                )
            };
            if idle >= f.backoff || (errored && idle >= f.backoff.min(PACK_RETRY)) {
                f.retries += 1;
                tracing::warn!(
                    pack = f.torrent.id,
                    retry = f.retries,
                    "pack {why}; adding it again with the peers known now"
                );
                if errored {
                    agent.note_error(&anyhow!("pack {} {why}", f.torrent.id));
                    agent.set_state("downloading");
                }
                f.torrent = readd(agent, f).await?;
                f.since = Instant::now();
                f.backoff = (f.backoff * 2).min(PACK_RETRY_MAX);
            }
            let note = format!(
                "{why}; re-added {} times, next retry in {}s",
                f.retries,
                f.backoff.saturating_sub(f.since.elapsed()).as_secs()
            );
            if idle >= Duration::from_secs(5) || errored {
                agent.pack_notes.lock().unwrap().insert(f.torrent.id, note);
            }
        }
        if all {
            break;
        }
        let done = packs
            .iter()
            .filter(|f| f.torrent.handle.stats().finished)
            .count();
        report.tick(header.generation, have, done);
        if have > last_have {
            last_have = have;
            last_progress = Instant::now();
        }
        let stuck = last_progress.elapsed();
        if stuck >= SUPERSEDE_AFTER && last_look.elapsed() >= SUPERSEDE_AFTER {
            last_look = Instant::now();
            let srcs = sources(agent);
            let heads = fetch_heads(agent, ms, &srcs).await;
            if let Some(g) = heads.good.iter().map(|h| h.1.generation).max() {
                if g > header.generation {
                    tracing::info!(
                        generation = header.generation,
                        newer = g,
                        stuck_seconds = stuck.as_secs(),
                        "download cannot progress and a newer generation exists: moving on to it"
                    );
                    return Ok(Downloaded::Superseded(g));
                }
            }
        }
        if stuck > STALL {
            let waiting: Vec<String> = agent
                .pack_notes
                .lock()
                .unwrap()
                .iter()
                .map(|(id, n)| format!("pack {id}: {n}"))
                .collect();
            bail!(
                "download of generation {} stalled for {}s at {have} bytes: no reachable peer \
                 has the missing pieces ({}); check that the origin or another mirror is up",
                header.generation,
                STALL.as_secs(),
                waiting.join("; ")
            );
        }
        // Look again in 200 ms, or as soon as a pack finishes: a small
        // update's one pack often arrives within a few milliseconds.
        let waiting: Vec<Arc<librqbit::ManagedTorrent>> = packs
            .iter()
            .filter(|f| {
                let s = f.torrent.handle.stats();
                !s.finished && !matches!(s.state, librqbit::TorrentStatsState::Error)
            })
            .map(|f| f.torrent.handle.clone())
            .collect();
        let nap = tokio::time::sleep(Duration::from_millis(200));
        if waiting.is_empty() {
            nap.await;
        } else {
            let finished =
                futures::future::select_all(waiting.iter().map(|h| h.wait_until_completed()));
            tokio::select! {
                _ = nap => {}
                _ = finished => {}
            }
        }
    }
    agent.refresh_pack_status();

    // Verify SHA-256 of every content.
    agent.set_state("verifying");
    // Room for every verified content at once: growing the table as packs
    // pass could hold its old and new rows together at the sync's peak.
    ms.contents.reserve(
        packs
            .iter()
            .map(|f| f.torrent.layout.count())
            .sum::<usize>(),
    );
    for f in packs {
        let id = f.torrent.id;
        let dir = store.pack_dir(id);
        let layout = f.torrent.layout.clone();
        let bad = tokio::task::spawn_blocking(move || verify_contents(&dir, &layout)).await??;
        if let Some((sha, why)) = bad {
            let _ = std::fs::remove_file(store.content(id, &sha));
            agent.count_refusal("pack");
            bail!(
                "pack {id} content {} fails SHA-256 ({why}) although its BitTorrent pieces matched: \
                 the pack and the signed manifest disagree; refusing generation {} and leaving the \
                 live tree as it was",
                hex::encode(sha),
                header.generation
            );
        }
        fsutil::atomic_write(&store.verified(id), b"")?;
        ms.verified.insert(id);
        for (sha, _) in f.torrent.layout.files() {
            ms.contents.insert(*sha, id);
        }
    }
    Ok(Downloaded::Done)
}

/// Steady log lines during a long download (the log has no progress bar).
struct Progress {
    total: u64,
    packs: usize,
    started: Instant,
    last: Instant,
}

/// How often a download logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

impl Progress {
    fn new(total: u64, packs: usize) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            packs,
            started: now,
            last: now,
        }
    }

    fn tick(&mut self, generation: u64, have: u64, packs_done: usize) {
        if self.last.elapsed() < PROGRESS_EVERY {
            return;
        }
        self.last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        tracing::info!(
            generation,
            have_bytes = have,
            total_bytes = self.total,
            percent = format!("{:.1}", 100.0 * have as f64 / self.total.max(1) as f64),
            mb_per_s = format!("{:.2}", have as f64 / 1e6 / secs),
            packs_done,
            packs = self.packs,
            "downloading"
        );
    }
}

/// Refuses to start a download the pack store has no room for, with an
/// error naming the folder (the next round tries again).
fn check_space(store: &crate::store::Store, todo: &[&shoal_manifest::PackRef]) -> Result<()> {
    let dir = store.packs_dir();
    std::fs::create_dir_all(&dir).map_err(|e| fsutil::explain_io(e, &dir))?;
    let need: u64 = todo.iter().map(|p| p.bytes).sum();
    let have_on_disk: u64 = todo.iter().map(|p| fsutil::du(&store.pack_dir(p.id))).sum();
    let need = need.saturating_sub(have_on_disk);
    let free = fsutil::free_bytes(&dir)?;
    if free < need {
        bail!(
            "not enough free space in {}: {need} more bytes needed for the packs of this \
             generation, {free} free; free space (or grow the volume) and the download resumes \
             by itself; the live tree was left as it was",
            dir.display()
        );
    }
    Ok(())
}

/// A pack's `.torrent`: from the state dir, or from the first upstream
/// that serves one with the info hash the signed manifest names.
async fn fetch_torrent(
    agent: &Agent,
    p: &shoal_manifest::PackRef,
    urls: &[String],
) -> Result<Vec<u8>> {
    let path = agent.store.torrent(&p.info_hash);
    if let Ok(b) = std::fs::read(&path) {
        if shoal_pack::parse_torrent(&b, Some(&p.info_hash)).is_ok() {
            return Ok(b);
        }
    }
    let mut errs = Vec::new();
    for u in urls {
        match fetch(agent, &format!("{u}/v1/torrent/{}", p.info_hash)).await {
            Ok(b) => match shoal_pack::parse_torrent(&b, Some(&p.info_hash)) {
                Ok(_) => {
                    fsutil::atomic_write(&path, &b)?;
                    return Ok(b);
                }
                Err(e) => errs.push(format!("{u}: {e}")),
            },
            Err(e) => errs.push(format!("{e:#}")),
        }
    }
    bail!(
        "no upstream served the torrent of pack {} ({}): {}",
        p.id,
        p.info_hash,
        errs.join("; ")
    )
}

/// Hard-links into a new pack's folder the contents this mirror already
/// holds verified (compaction, moves), so librqbit finds them complete.
fn prelink(
    ms: &MirrorState,
    store: &crate::store::Store,
    id: u64,
    parsed: &shoal_pack::ParsedPack,
) -> Result<()> {
    for (sha, _) in &parsed.files {
        let dst = store.content(id, sha);
        if dst.exists() {
            continue;
        }
        if let Some(have) = ms.contents.get(sha) {
            let src = store.content(have, sha);
            let parent = dst.parent().expect("content path has a parent");
            std::fs::create_dir_all(parent).map_err(|e| fsutil::explain_io(e, parent))?;
            if std::fs::hard_link(&src, &dst).is_err() {
                let _ = std::fs::copy(&src, &dst);
            }
        }
    }
    Ok(())
}

/// Removes a pack from the session and adds it again (librqbit re-checks
/// what is on disk), with the peers and trackers known now.
async fn readd(agent: &Arc<Agent>, f: &mut Fetching) -> Result<Arc<crate::bt::Torrent>> {
    let id = f.torrent.id;
    agent.bt.remove(id).await?;
    let path = agent.store.torrent(&f.info_hash);
    let bytes = std::fs::read(&path).map_err(|e| fsutil::explain_io(e, &path))?;
    let t = add_pack(agent, id, &f.info_hash, bytes).await?;
    let left = t.handle.stats().total_bytes.saturating_sub(f.have).max(1);
    crate::rest::ask_to_wake(agent, &f.info_hash, left, f.retries as usize);
    Ok(t)
}

/// Checks every content of a pack folder; returns the first bad one.
fn verify_contents(
    dir: &std::path::Path,
    files: &shoal_pack::Layout,
) -> Result<Option<([u8; 32], String)>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    let bad = std::sync::Mutex::new(None);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut hasher = shoal_pack::FileHasher::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.count() || bad.lock().unwrap().is_some() {
                        break;
                    }
                    let (&sha, size) = files.file(i).expect("in range");
                    let path: PathBuf = dir.join(shoal_pack::content_path(&sha));
                    let why = match hasher.hash_file(&path, None) {
                        Ok(h) if h.sha256 == sha && h.size == size => continue,
                        Ok(h) if h.size != size => format!("size {} instead of {size}", h.size),
                        Ok(_) => "hash differs".to_string(),
                        Err(e) => format!("cannot read {}: {e}", path.display()),
                    };
                    *bad.lock().unwrap() = Some((sha, why));
                    break;
                }
            });
        }
    });
    Ok(bad.into_inner().unwrap())
}

fn run_deletions(agent: &Agent, ms: &mut MirrorState) -> Result<()> {
    if !ms.pending.has_due(fsutil::now()) {
        return Ok(());
    }
    entries(agent, ms)?;
    let Some(m) = &ms.manifest else { return Ok(()) };
    let n = ms.pending.run(&agent.cfg.repo, m, fsutil::now())?;
    if n > 0 {
        ms.pending.save(&agent.store.pending())?;
        tracing::info!(removed = n, "removed files whose grace period passed");
    }
    agent.status.lock().unwrap().pending_deletions = ms.pending.due.len() as u64;
    Ok(())
}

/// Tells upstreams and known peers about this mirror and learns theirs
/// (entries that fail their signature check are dropped). Returns true if
/// a peer holds a newer generation (which only makes the mirror fetch and
/// verify a signed head).
async fn announce_once(agent: &Arc<Agent>) -> bool {
    let me = agent.self_info();
    let mine = me.info.generation;
    let targets = sources(agent);
    let results = futures::future::join_all(targets.iter().map(|u| {
        let url = format!("{u}/v1/announce");
        let me = me.clone();
        let client = agent.client.clone();
        async move {
            let r = client
                .post(&url)
                .json(&me)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .ok()?;
            if !r.status().is_success() {
                let why = r.text().await.unwrap_or_default();
                tracing::warn!(upstream = %url, "announce refused: {}", why.trim());
                return None;
            }
            r.json::<Vec<crate::peers::SignedPeer>>().await.ok()
        }
    }))
    .await;
    let mut news = false;
    for list in results.into_iter().flatten() {
        for p in list {
            let g = p.info.generation;
            match agent.learn_peer(p) {
                Ok(()) => news |= g > mine,
                Err(e) => tracing::debug!(error = %e, "peer entry refused"),
            }
        }
    }
    agent.peers.lock().unwrap().expire(agent.peer_ttl());
    news
}

async fn announce_loop(agent: Arc<Agent>) {
    loop {
        tokio::time::sleep(
            agent
                .cfg
                .network
                .announce_interval
                .min(agent.cfg.mirror.poll_interval),
        )
        .await;
        if announce_once(&agent).await {
            agent.kick.notify_one();
        }
    }
}
