//! A simulation of the swarm at network scale: N mirrors and an origin
//! with modelled links, driven by the agent's own scheduling code.
//!
//! What is the agent's code, called as it is: [`shoal_swarm::pack_target`]
//! with [`shoal_pack::group`] cut the snapshot into packs exactly as the
//! origin does; [`shoal_swarm::Schedule::plan`] picks each pack's feeder at
//! publish and [`shoal_swarm::Schedule::ask`] answers every tracker
//! announce (whether the asker is given the origin);
//! [`shoal_swarm::kick_due`] is when a mirror restarts an idle pack, and
//! [`shoal_swarm::restart_when_done`] whether it restarts one it just
//! finished.
//!
//! What is modelled (see `docs/benchmarks.md`): a fluid, fixed time-step
//! model. Each mirror holds a prefix of each pack (librqbit asks for
//! pieces in one fixed order). A pack's feeder fetches from the origin
//! while the origin's tracker lists it; every mirror fetches from any
//! neighbour holding more of the pack. Each host's up and down link is
//! shared per flow, fairly (a few rounds of water-filling), at the shaped
//! rate times the payload efficiency. A connection whose source has
//! nothing new sleeps [`SimParams::requester_sleep`] (librqbit's requester
//! stall); one opened while its source held nothing of the pack (no
//! bitfield) takes one piece at the source's first HAVE and then sleeps
//! the same. A restart of a pack on a mirror reopens its connections both
//! ways (fresh bitfields). A pack not fed by the origin is restarted after
//! `KICK_AFTER_SECS` without progress, twice as long after each restart
//! that brought none, up to 24 s (`kick_interval`; once also after
//! `FIRST_KICK_AFTER_SECS` when nothing arrived), which costs
//! [`SimParams::restart_secs`] of reconnecting. A mirror that finishes a
//! pack restarts it: every neighbour's connection to it, asleep or not,
//! resumes [`SimParams::restart_secs`] later. Mirrors add the torrents
//! [`SimParams::start_secs`] after the publish starts. A case may carry a
//! [`Fault`]: a mirror killed once the origin sent a share of S, or one
//! joining once the others hold a share of S (the bench's fault cases).

use crate::model::FanOut;
use anyhow::{bail, Result};
use shoal_swarm::{kick_due, restart_when_done, Announce, Candidate, Kick, Schedule};

/// The knobs of the model that are not the agent's code.
#[derive(Debug, Clone, Copy)]
pub struct SimParams {
    /// Time step, seconds.
    pub dt: f64,
    /// Payload share of a shaped link (TCP/IP and framing take the rest).
    pub efficiency: f64,
    /// From the start of the publish until mirrors add the pack torrents
    /// (publish, poll, manifest and torrent fetch).
    pub start_secs: f64,
    /// The tracker announce interval (`network.announce_interval`).
    pub announce_interval: f64,
    /// How long a requester with nothing to ask sleeps (librqbit: 5 s).
    pub requester_sleep: f64,
    /// Time a restarted pack spends reconnecting.
    pub restart_secs: f64,
    /// Whether a mirror restarts a pack it finished (as the agent does
    /// when [`shoal_swarm::RESTART_WHEN_DONE`]); off to compare.
    pub restart_when_done: bool,
    /// Whether a restart that brought no progress doubles the wait before
    /// the next ([`shoal_swarm::kick_interval`], as the agent does); off
    /// to compare (a restart every 1.5 s without progress).
    pub restart_backoff: bool,
    /// Peers each mirror's torrents connect to, chosen per mirror by
    /// rendezvous hashing and made symmetric; 0 = every other mirror.
    pub degree: usize,
    /// Give up (an error) when simulated time passes this.
    pub max_secs: f64,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            dt: 0.05,
            efficiency: 0.95,
            start_secs: 1.5,
            announce_interval: 1.0,
            requester_sleep: 5.0,
            restart_secs: 0.2,
            restart_when_done: shoal_swarm::RESTART_WHEN_DONE,
            restart_backoff: true,
            degree: 0,
            max_secs: 100_000.0,
        }
    }
}

/// One simulated fan-out: rates in bits per second, packs in bytes.
#[derive(Debug, Clone)]
pub struct Case {
    pub origin_up: f64,
    /// Each mirror's (upload, download) rate.
    pub mirrors: Vec<(f64, f64)>,
    /// Pack sizes, as the origin cut them.
    pub packs: Vec<u64>,
    pub params: SimParams,
    /// A mirror that dies or arrives during the run.
    pub fault: Option<Fault>,
}

/// A fault the model plays (the bench's fault cases).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// `mirror` stops for good (uploads, downloads and announces nothing)
    /// once the origin has sent `at` × S of payload. The origin's list of
    /// live mirrors keeps it for `dead_after`, as the agent's does.
    Kill { mirror: usize, at: f64 },
    /// `mirror` is not there from the start; it starts once the running
    /// mirrors hold `at` × S on average, and adds the torrents
    /// `start_secs` later.
    Join { mirror: usize, at: f64 },
}

/// What the model predicts.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Payload bytes the origin uploaded.
    pub origin_bytes: f64,
    /// Seconds from the publish to each mirror holding every pack (NaN for
    /// a killed one).
    pub done: Vec<f64>,
    /// The snapshot size S (sum of the packs).
    pub bytes: u64,
    /// The Kumar–Ross bound for the case, seconds.
    pub bound: f64,
    /// Seconds until every mirror held each pack.
    pub pack_done: Vec<f64>,
    /// Seconds until the origin sent its last byte.
    pub origin_done: f64,
    /// Pack restarts (kicks: early and idle) and feeder handovers.
    pub kicks: u64,
    /// Restarts of packs when done ([`shoal_swarm::restart_when_done`]).
    pub done_restarts: u64,
    pub handovers: u64,
    /// When the fault struck (seconds), if the case has one.
    pub event: Option<f64>,
}

impl Outcome {
    /// Seconds until the last mirror is done.
    pub fn last(&self) -> f64 {
        self.done.iter().copied().fold(0.0, f64::max)
    }
    /// The pack every mirror held last: (its size, when).
    pub fn last_pack(&self, packs: &[u64]) -> (u64, f64) {
        self.pack_done
            .iter()
            .zip(packs)
            .map(|(t, s)| (*s, *t))
            .fold((0, 0.0), |a, b| if b.1 > a.1 { b } else { a })
    }
    /// Origin upload in units of S.
    pub fn origin_s(&self) -> f64 {
        self.origin_bytes / self.bytes as f64
    }
}

/// Cuts contents of the given sizes into packs exactly as the origin does
/// (`pack_target` then `shoal_pack::group`, contents in hash order), with
/// the origin's `split`, `max_bytes` and `max_files`. Returns pack sizes.
pub fn cut_packs(sizes: &[u64], split: usize, max_bytes: u64, max_files: usize) -> Vec<u64> {
    let mut rng = crate::workload::Rng::new(0x5eed);
    let mut contents: Vec<shoal_pack::Content> = sizes
        .iter()
        .filter(|s| **s > 0)
        .map(|&size| {
            let mut sha = [0u8; 32];
            for c in sha.chunks_mut(8) {
                c.copy_from_slice(&rng.next_u64().to_le_bytes());
            }
            shoal_pack::Content::new(
                sha,
                size,
                vec![[0u8; 20]; size.div_ceil(shoal_pack::PIECE_LEN) as usize],
                None,
            )
        })
        .collect();
    contents.sort_by_key(|c| c.sha256);
    let new_bytes: u64 = contents.iter().map(|c| c.size).sum();
    let target = shoal_swarm::pack_target(new_bytes, split, max_bytes);
    shoal_pack::group(&contents, max_files, target)
        .into_iter()
        .map(|g| contents[g].iter().map(|c| c.size).sum())
        .collect()
}

/// Cuts with the origin's default configuration.
pub fn cut_packs_default(sizes: &[u64]) -> Vec<u64> {
    let o = shoal_config::OriginConfig::default();
    cut_packs(sizes, o.pack_split, o.pack_max_bytes, o.pack_max_files)
}

/// A design the agent does not implement (yet), for the model only: every
/// content larger than half the pack target (and than the smallest pack) is
/// cut into parts of at most that (whole pieces), each a content of its own to the cutting, so one
/// large package is fed to several mirrors at once instead of spreading
/// from one. Returns the pack sizes, cut with the origin's defaults.
pub fn cut_packs_in_parts(sizes: &[u64]) -> (Vec<u64>, u64) {
    let o = shoal_config::OriginConfig::default();
    let total: u64 = sizes.iter().sum();
    let part = (shoal_swarm::pack_target(total, o.pack_split, o.pack_max_bytes) / 2)
        .max(shoal_swarm::MIN_PACK)
        .next_multiple_of(shoal_pack::PIECE_LEN);
    let mut parts = Vec::with_capacity(sizes.len());
    for &s in sizes {
        let mut left = s;
        while left > part {
            parts.push(part);
            left -= part;
        }
        parts.push(left);
    }
    (cut_packs_default(&parts), part)
}

/// Every mirror shaped like the origin: `rate` bits/s up and down.
pub fn uniform(packs: Vec<u64>, n: usize, rate: f64, params: SimParams) -> Case {
    Case {
        origin_up: rate,
        mirrors: vec![(rate, rate); n],
        packs,
        params,
        fault: None,
    }
}

/// The model of the netns fan-out: the bench runs agents with 1 s
/// announces and a 1 s poll, every mirror connected to every other.
pub fn netns_params() -> SimParams {
    SimParams::default()
}

/// The model at network scale: the agent's default announce interval,
/// each mirror's torrents connected to `degree` chosen peers (symmetric),
/// a coarser step.
pub fn scale_params(degree: usize) -> SimParams {
    SimParams {
        dt: 0.25,
        announce_interval: shoal_config::NetworkConfig::default()
            .announce_interval
            .as_secs_f64(),
        degree,
        ..SimParams::default()
    }
}

const ORIGIN: usize = usize::MAX;
const EPS: f64 = 0.5; // bytes

/// One flow of a step: from host `src` (a mirror, or [`ORIGIN`]) to mirror
/// `dst` for pack `pack`, at most `cap` bytes/s.
struct Flow {
    src: usize,
    /// The neighbour slot of `src` in the downloader's list (unused for
    /// the origin).
    slot: usize,
    dst: usize,
    pack: usize,
    cap: f64,
    rate: f64,
}

/// The state of a run.
struct World {
    n: usize,
    np: usize,
    sizes: Vec<f64>,
    /// Bytes of pack p held by mirror m, at `m * np + p`.
    have: Vec<f64>,
    /// Whether the origin's tracker last listed the origin to (m, p).
    fed: Vec<bool>,
    /// The origin's upload counter per pack (what the agent reads from
    /// librqbit and passes to `Schedule::progress`).
    origin_sent: Vec<f64>,
    next_announce: Vec<f64>,
    last_progress: Vec<f64>,
    restart_until: Vec<f64>,
    /// Per (m, p), per neighbour slot: when that connection's requester
    /// wakes.
    wake: Vec<Vec<f64>>,
    /// Per (m, p), per neighbour slot: the connection was opened while the
    /// source held nothing of the pack (no bitfield): its requester takes
    /// one piece at the first HAVE, then sleeps.
    empty: Vec<Vec<bool>>,
    neighbours: Vec<Vec<usize>>,
    /// `back[m][k]`: the slot of `m` in the list of its `k`-th neighbour.
    back: Vec<Vec<usize>>,
    /// Per (m, p): the restart when done happened.
    restarted_done: Vec<bool>,
    /// Restarts when done so far.
    done_restarts: u64,
    /// Scratch for [`deliver`]: per (m, p), its entry this step.
    slot: Vec<usize>,
    done: Vec<Option<f64>>,
    /// Whether each mirror runs (started, not killed).
    up: Vec<bool>,
    /// Per (m, p): the early restart happened ([`shoal_swarm::kick_due`]).
    kicked_early: Vec<bool>,
    /// Per (m, p): usual restarts since it last progressed
    /// ([`shoal_swarm::kick_interval`]).
    fruitless: Vec<u32>,
}

/// The mirrors each mirror's torrents connect to.
fn neighbours(n: usize, degree: usize) -> Vec<Vec<usize>> {
    if degree == 0 || degree + 1 >= n {
        return (0..n)
            .map(|m| (0..n).filter(|j| *j != m).collect())
            .collect();
    }
    let mut sets: Vec<std::collections::BTreeSet<usize>> = vec![Default::default(); n];
    for m in 0..n {
        let me = format!("m{m}");
        let mut others: Vec<usize> = (0..n).filter(|j| *j != m).collect();
        others.sort_by_key(|j| shoal_swarm::rendezvous(&me, &format!("m{j}")));
        for &j in others.iter().take(degree) {
            sets[m].insert(j);
            sets[j].insert(m);
        }
    }
    sets.into_iter().map(|s| s.into_iter().collect()).collect()
}

fn pack_name(p: usize) -> String {
    format!("pack{p:05}")
}

/// Runs the model until every mirror holds every pack.
pub fn simulate(case: &Case) -> Result<Outcome> {
    let prm = &case.params;
    if prm.dt <= 0.0 || prm.efficiency <= 0.0 || prm.efficiency > 1.0 {
        bail!("simulation: dt must be > 0 and efficiency in (0, 1]");
    }
    let n = case.mirrors.len();
    let np = case.packs.len();
    let bytes: u64 = case.packs.iter().sum();
    let bound = FanOut {
        bytes,
        origin_up: case.origin_up,
        mirrors: case.mirrors.clone(),
    }
    .lower_bound_seconds();
    let names: Vec<String> = (0..np).map(pack_name).collect();
    let mnames: Vec<String> = (0..n).map(|m| format!("m{m}")).collect();
    let live: Vec<Candidate> = mnames.iter().map(|m| Candidate::new(m)).collect();
    let sp = shoal_swarm::Params::for_interval(prm.announce_interval);
    let mut sched = Schedule::new();
    let plan: Vec<(&str, u64)> = names
        .iter()
        .zip(&case.packs)
        .map(|(k, s)| (k.as_str(), *s))
        .collect();
    let nb = neighbours(n, prm.degree);
    let back: Vec<Vec<usize>> = nb
        .iter()
        .enumerate()
        .map(|(m, js)| {
            js.iter()
                .map(|&j| nb[j].iter().position(|x| *x == m).expect("symmetric"))
                .collect()
        })
        .collect();
    let mut w = World {
        n,
        np,
        sizes: case.packs.iter().map(|s| *s as f64).collect(),
        have: vec![0.0; n * np],
        fed: vec![false; n * np],
        origin_sent: vec![0.0; np],
        next_announce: vec![prm.start_secs; n * np],
        last_progress: vec![prm.start_secs; n * np],
        restart_until: vec![prm.start_secs; n * np],
        wake: (0..n * np)
            .map(|i| vec![0.0; nb[i / np.max(1)].len()])
            .collect(),
        empty: (0..n * np)
            .map(|i| vec![true; nb[i / np.max(1)].len()])
            .collect(),
        neighbours: nb,
        back,
        restarted_done: vec![false; n * np],
        done_restarts: 0,
        slot: vec![usize::MAX; n * np],
        done: vec![None; n],
        up: vec![true; n],
        kicked_early: vec![false; n * np],
        fruitless: vec![0; n * np],
    };
    if let Some(Fault::Join { mirror, .. }) = case.fault {
        if mirror >= n {
            bail!("simulation: the joiner m{mirror} is not one of the {n} mirrors");
        }
        w.up[mirror] = false;
    }
    if let Some(Fault::Kill { mirror, .. }) = case.fault {
        if mirror >= n {
            bail!("simulation: the killed m{mirror} is not one of the {n} mirrors");
        }
    }
    // The mirrors the origin's list holds: running ones, and a killed one
    // for `dead_after`.
    let mut killed_at: Option<(usize, f64)> = None;
    let live_now = |w: &World, killed_at: Option<(usize, f64)>, t: f64| -> Vec<Candidate> {
        (0..n)
            .filter(|m| {
                w.up[*m] || killed_at.is_some_and(|(k, at)| k == *m && t - at <= sp.dead_after)
            })
            .map(|m| live[m].clone())
            .collect()
    };
    let mut event = None;
    for m in 0..n {
        if np == 0 || case.packs.iter().all(|s| *s == 0) {
            w.done[m] = Some(0.0);
        }
    }
    let up: Vec<f64> = std::iter::once(case.origin_up)
        .chain(case.mirrors.iter().map(|m| m.0))
        .map(|r| r * prm.efficiency / 8.0)
        .collect();
    let down: Vec<f64> = std::iter::once(0.0)
        .chain(case.mirrors.iter().map(|m| m.1))
        .map(|r| r * prm.efficiency / 8.0)
        .collect();
    let mut origin_bytes = 0.0;
    let mut origin_done = 0.0;
    let mut pack_done: Vec<Option<f64>> = vec![None; np];
    let (mut kicks, mut handovers) = (0u64, 0u64);
    let mut cur = live_now(&w, killed_at, 0.0);
    sched.plan(&plan, &cur, 0.0, &sp);
    let mut t = 0.0;
    while w.done.iter().any(|d| d.is_none()) {
        match case.fault {
            Some(Fault::Kill { mirror, at })
                if event.is_none() && origin_bytes >= at * bytes as f64 =>
            {
                w.up[mirror] = false;
                w.done[mirror] = Some(f64::NAN);
                killed_at = Some((mirror, t));
                event = Some(t);
            }
            Some(Fault::Join { mirror, at }) if event.is_none() => {
                let running: Vec<usize> = (0..n).filter(|m| w.up[*m]).collect();
                let held: f64 = running
                    .iter()
                    .map(|m| w.have[m * np..(m + 1) * np].iter().sum::<f64>())
                    .sum();
                if held >= at * bytes as f64 * running.len() as f64 {
                    w.up[mirror] = true;
                    for p in 0..np {
                        let i = mirror * np + p;
                        w.next_announce[i] = t + prm.start_secs;
                        w.last_progress[i] = t + prm.start_secs;
                        w.restart_until[i] = t + prm.start_secs;
                        reconnect(&mut w, i, t + prm.start_secs);
                    }
                    event = Some(t);
                }
            }
            _ => {}
        }
        if case.fault.is_some() {
            cur = live_now(&w, killed_at, t);
        }
        let live = &cur[..];
        if t > prm.max_secs {
            bail!(
                "simulation: not every mirror finished within {} s (a pack with no path from \
                 the origin?); raise max_secs or the degree",
                prm.max_secs
            );
        }
        handovers += announce(&mut w, &mut sched, &names, &mnames, live, t, prm, &sp);
        let mut flows = flows(&mut w, t, prm);
        share(&mut flows, &up, &down);
        let sent = deliver(&mut w, &flows, t, prm);
        if sent > 0.0 {
            origin_bytes += sent;
            origin_done = t + prm.dt;
        }
        kicks += kick(&mut w, t + prm.dt, prm);
        // The origin's own counters, as the agent's sampler passes them.
        for (p, name) in names.iter().enumerate() {
            sched.progress(name, w.origin_sent[p] as u64, live, t + prm.dt);
        }
        t += prm.dt;
        for (p, d) in pack_done.iter_mut().enumerate() {
            if d.is_none()
                && (0..n).all(|m| w.done[m].is_some() || w.have[m * np + p] >= w.sizes[p])
            {
                *d = Some(t);
            }
        }
        for m in 0..n {
            if w.done[m].is_none() && (0..np).all(|p| w.have[m * np + p] >= w.sizes[p]) {
                w.done[m] = Some(t);
            }
        }
    }
    Ok(Outcome {
        origin_bytes,
        done: w.done.iter().map(|d| d.unwrap_or(0.0)).collect(),
        bytes,
        bound,
        pack_done: pack_done.iter().map(|d| d.unwrap_or(0.0)).collect(),
        origin_done,
        kicks,
        done_restarts: w.done_restarts,
        handovers,
        event,
    })
}

/// Tracker announces due at `t`: the schedule decides who is given the
/// origin. Returns the handovers.
#[allow(clippy::too_many_arguments)]
fn announce(
    w: &mut World,
    sched: &mut Schedule,
    names: &[String],
    mnames: &[String],
    live: &[Candidate],
    t: f64,
    prm: &SimParams,
    sp: &shoal_swarm::Params,
) -> u64 {
    let mut handovers = 0;
    for (m, mname) in mnames.iter().enumerate() {
        if !w.up[m] {
            continue;
        }
        for (p, name) in names.iter().enumerate() {
            let i = m * w.np + p;
            if t + 1e-9 < w.next_announce[i] {
                continue;
            }
            let left = (w.sizes[p] - w.have[i]).max(0.0).ceil() as u64;
            let (listed, h) = sched.ask(
                &Announce {
                    pack: name,
                    size: w.sizes[p] as u64,
                    asker: Some(mname),
                    left,
                },
                live,
                t,
                sp,
            );
            handovers +=
                u64::from(h.is_some_and(|h| matches!(h, shoal_swarm::Handover::Moved { .. })));
            w.fed[i] = listed;
            w.next_announce[i] = if left == 0 {
                f64::INFINITY
            } else {
                t + prm.announce_interval
            };
        }
    }
    handovers
}

/// The flows of a step; puts connections with nothing to ask to sleep.
fn flows(w: &mut World, t: f64, prm: &SimParams) -> Vec<Flow> {
    let mut out = Vec::new();
    for m in 0..w.n {
        if !w.up[m] {
            continue;
        }
        for p in 0..w.np {
            let i = m * w.np + p;
            let mine = w.have[i];
            if mine >= w.sizes[p] || t + 1e-9 < w.restart_until[i] {
                continue;
            }
            if w.fed[i] {
                out.push(Flow {
                    src: ORIGIN,
                    slot: 0,
                    dst: m,
                    pack: p,
                    cap: f64::INFINITY,
                    rate: 0.0,
                });
            }
            for (k, &j) in w.neighbours[m].iter().enumerate() {
                if !w.up[j] {
                    continue;
                }
                let theirs = w.have[j * w.np + p];
                let wake = &mut w.wake[i][k];
                if *wake > t + 1e-9 {
                    continue;
                }
                if theirs > mine + EPS {
                    // Opened without a bitfield: one piece, then asleep.
                    let ahead = if w.empty[i][k] {
                        (theirs - mine).min(shoal_pack::PIECE_LEN as f64)
                    } else {
                        theirs - mine
                    };
                    out.push(Flow {
                        src: j,
                        slot: k,
                        dst: m,
                        pack: p,
                        cap: ahead / prm.dt,
                        rate: 0.0,
                    });
                } else if mine > 0.0 || theirs > 0.0 {
                    // Asked, found nothing: librqbit's requester sleeps.
                    *wake = t + prm.requester_sleep;
                }
            }
        }
    }
    out
}

/// Per-flow fair shares of each host's up and down link: rounds of
/// water-filling, each feasible on its own.
fn share(flows: &mut [Flow], up: &[f64], down: &[f64]) {
    let host = |s: usize| if s == ORIGIN { 0 } else { s + 1 };
    let mut rem_up = up.to_vec();
    let mut rem_down = down.to_vec();
    let mut active: Vec<bool> = flows.iter().map(|f| f.cap > 0.0).collect();
    for _ in 0..4 {
        let mut n_up = vec![0usize; up.len()];
        let mut n_down = vec![0usize; down.len()];
        for (f, a) in flows.iter().zip(&active) {
            if *a {
                n_up[host(f.src)] += 1;
                n_down[host(f.dst)] += 1;
            }
        }
        let inc: Vec<f64> = flows
            .iter()
            .zip(&active)
            .map(|(f, a)| {
                if !*a {
                    return 0.0;
                }
                let (s, d) = (host(f.src), host(f.dst));
                (rem_up[s] / n_up[s] as f64)
                    .min(rem_down[d] / n_down[d] as f64)
                    .min(f.cap - f.rate)
                    .max(0.0)
            })
            .collect();
        let mut grew = false;
        for (f, x) in flows.iter_mut().zip(&inc) {
            if *x > 0.0 {
                f.rate += x;
                rem_up[host(f.src)] -= x;
                rem_down[host(f.dst)] -= x;
                grew = true;
            }
        }
        for (f, a) in flows.iter().zip(active.iter_mut()) {
            let (s, d) = (host(f.src), host(f.dst));
            if f.rate >= f.cap - 1e-9 || rem_up[s] <= 1e-6 || rem_down[d] <= 1e-6 {
                *a = false;
            }
        }
        if !grew {
            break;
        }
    }
}

/// Moves the bytes of a step (a mirror never gets past the furthest of its
/// sources); a connection that drained all its source had is caught up,
/// and its requester sleeps. Returns the origin's payload bytes.
fn deliver(w: &mut World, flows: &[Flow], t: f64, prm: &SimParams) -> f64 {
    let dt = prm.dt;
    // Per (m, p), in the order first seen: bytes offered, of which from
    // the origin, and the furthest source.
    let mut got: Vec<(usize, f64, f64, f64)> = Vec::new();
    for f in flows {
        let i = f.dst * w.np + f.pack;
        let limit = if f.src == ORIGIN {
            w.sizes[f.pack]
        } else {
            w.have[f.src * w.np + f.pack]
        };
        if w.slot[i] == usize::MAX {
            w.slot[i] = got.len();
            got.push((i, 0.0, 0.0, 0.0));
        }
        let e = &mut got[w.slot[i]];
        e.1 += f.rate * dt;
        if f.src == ORIGIN {
            e.2 += f.rate * dt;
        } else {
            if f.rate > 0.0 {
                w.empty[i][f.slot] = false;
            }
            if f.rate >= f.cap * (1.0 - 1e-9) {
                w.wake[i][f.slot] = t + dt + prm.requester_sleep;
            }
        }
        e.3 = e.3.max(limit);
    }
    let mut origin = 0.0;
    let mut finished = Vec::new();
    for (i, sum, from_origin, limit) in got {
        w.slot[i] = usize::MAX;
        let take = sum.min(limit - w.have[i]).max(0.0);
        if sum > 0.0 {
            origin += from_origin * take / sum;
            w.origin_sent[i % w.np] += from_origin * take / sum;
        }
        if take > 0.0 {
            w.have[i] += take;
            w.last_progress[i] = t + dt;
            w.fruitless[i] = 0;
            let p = i % w.np;
            if w.have[i] >= w.sizes[p] - EPS {
                w.have[i] = w.sizes[p];
                // A finished pack announces at once (left = 0).
                w.next_announce[i] = t + dt;
                if prm.restart_when_done && restart_when_done(true, w.restarted_done[i]) {
                    w.restarted_done[i] = true;
                    finished.push(i);
                }
            }
        }
    }
    // Restarted when done: every neighbour's connection to it reopens.
    for i in finished {
        w.done_restarts += 1;
        reconnect(w, i, t + dt + prm.restart_secs);
    }
    origin
}

/// A restart of pack `i % np` on mirror `i / np`: its connections to every
/// neighbour, both ways, reopen at `at` with fresh bitfields (a side
/// holding nothing of the pack sends none).
fn reconnect(w: &mut World, i: usize, at: f64) {
    let (m, p) = (i / w.np, i % w.np);
    for k in 0..w.neighbours[m].len() {
        let j = w.neighbours[m][k];
        let b = w.back[m][k];
        let o = j * w.np + p;
        w.wake[i][k] = at;
        w.empty[i][k] = w.have[o] <= 0.0;
        w.wake[o][b] = at;
        w.empty[o][b] = w.have[i] <= 0.0;
    }
}

/// Restarts the packs [`shoal_swarm::kick_due`] says to that are not fed
/// by the origin; returns how many.
fn kick(w: &mut World, t: f64, prm: &SimParams) -> u64 {
    let mut kicks = 0;
    for i in 0..w.n * w.np {
        let p = i % w.np;
        if !w.up[i / w.np] || w.fed[i] || w.have[i] >= w.sizes[p] || t + 1e-9 < w.restart_until[i] {
            continue;
        }
        // `last_progress` is also the last usual restart.
        let idle = t - w.last_progress[i] + 1e-9;
        let have = w.have[i].ceil() as u64;
        let fruitless = if prm.restart_backoff {
            w.fruitless[i]
        } else {
            0
        };
        let Some(why) = kick_due(idle, idle, w.kicked_early[i], have, fruitless) else {
            continue;
        };
        kicks += 1;
        w.restart_until[i] = t + prm.restart_secs;
        match why {
            Kick::Early => w.kicked_early[i] = true,
            Kick::Again => {
                w.last_progress[i] = t + prm.restart_secs;
                w.fruitless[i] += 1;
            }
        }
        w.next_announce[i] = t + prm.restart_secs;
        reconnect(w, i, t + prm.restart_secs);
    }
    kicks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(n: usize, packs: Vec<u64>, prm: SimParams) -> Case {
        Case {
            origin_up: 100e6,
            mirrors: vec![(100e6, 100e6); n],
            packs,
            params: prm,
            fault: None,
        }
    }

    #[test]
    fn a_single_mirror_takes_exactly_s_from_the_origin() {
        let packs = vec![3_000_000, 2_000_000, 1_048_576];
        let o = simulate(&case(1, packs.clone(), SimParams::default())).unwrap();
        let s: u64 = packs.iter().sum();
        assert!(
            (o.origin_bytes - s as f64).abs() < 1.0,
            "{}",
            o.origin_bytes
        );
        // 6 MB at 95 Mbit/s of payload plus the start: about 0.5 s + 1.5 s;
        // a pack handed out later (the schedule keeps what is beyond two
        // average packs back for whichever feeder is fastest) is learnt at
        // the mirror's next announce, one interval at most.
        let ideal = s as f64 * 8.0 / 95e6 + 1.5;
        let slack = SimParams::default().announce_interval + 0.5;
        assert!(
            o.last() >= ideal - 1e-6 && o.last() < ideal + slack,
            "{}",
            o.last()
        );
    }

    #[test]
    fn every_mirror_gets_every_pack_and_the_origin_sends_at_least_s() {
        let sizes: Vec<u64> = (0..300).map(|i| 50_000 + (i * 7919) % 900_000).collect();
        let packs = cut_packs(&sizes, 8, 4 << 30, 10_000);
        assert!(packs.len() >= 8, "{packs:?}");
        assert_eq!(packs.iter().sum::<u64>(), sizes.iter().sum::<u64>());
        for n in [2, 4, 8] {
            let o = simulate(&case(n, packs.clone(), SimParams::default())).unwrap();
            assert_eq!(o.done.len(), n);
            assert!(o.done.iter().all(|d| *d > 0.0));
            assert!(
                o.origin_bytes >= o.bytes as f64 - 1.0,
                "n={n}: {}",
                o.origin_s()
            );
            // One feeder per pack and no handover: the origin sends each
            // byte once, not N times.
            assert_eq!(o.handovers, 0);
            assert!(o.origin_s() < 1.0 + 1e-6, "n={n}: {}", o.origin_s());
            // Relays catch up with their feeders and stall until kicked.
            assert!(o.kicks > 0, "n={n}");
            assert!(o.pack_done.iter().all(|t| *t > 0.0 && *t <= o.last()));
        }
    }

    #[test]
    fn a_pack_restarted_when_done_wakes_the_mirrors_relaying_it() {
        // One 4 MB pack (a small update) to 4 mirrors: its feeder gets it
        // in about 0.35 s, the relays' requesters asked it while it had
        // nothing and sleep; the restart when done wakes them.
        let packs = vec![4_000_000];
        let off = SimParams {
            restart_when_done: false,
            ..SimParams::default()
        };
        let on = SimParams {
            restart_when_done: true,
            ..SimParams::default()
        };
        let a = simulate(&case(4, packs.clone(), off)).unwrap();
        let b = simulate(&case(4, packs, on)).unwrap();
        // Each mirror restarts the pack once when done.
        assert_eq!((a.done_restarts, b.done_restarts), (0, 4));
        assert!(
            b.last() < a.last(),
            "with {} s, without {} s",
            b.last(),
            a.last()
        );
        assert!(b.origin_s() < 1.0 + 1e-6, "{}", b.origin_s());
    }

    #[test]
    fn restarts_that_bring_nothing_back_off() {
        // Forty packs to 4 mirrors: the origin feeds a few at a time, so
        // most packs wait on bytes nobody holds yet, and restarting them
        // every 1.5 s only reopens connections.
        let packs = vec![2_000_000; 40];
        let every = SimParams {
            restart_backoff: false,
            ..SimParams::default()
        };
        let a = simulate(&case(4, packs.clone(), every)).unwrap();
        let b = simulate(&case(4, packs, SimParams::default())).unwrap();
        assert!(
            b.kicks < a.kicks,
            "with {} kicks, without {}",
            b.kicks,
            a.kicks
        );
        // Either way every mirror gets everything, the origin sends it once.
        for o in [&a, &b] {
            assert!(o.pack_done.iter().all(|t| *t > 0.0 && *t <= o.last()));
            assert!(o.origin_s() < 1.0 + 1e-6, "{}", o.origin_s());
        }
    }

    #[test]
    fn simulated_time_is_never_below_the_bound() {
        // No overhead and no start-up cost: the bound is all that is left.
        let prm = SimParams {
            efficiency: 1.0,
            start_secs: 0.0,
            ..SimParams::default()
        };
        let sizes: Vec<u64> = (0..200)
            .map(|i| 100_000 + (i * 104_729) % 2_000_000)
            .collect();
        let packs = cut_packs(&sizes, 32, 4 << 30, 10_000);
        for (n, slow) in [(1, 0), (3, 1), (8, 2), (20, 5)] {
            let mut c = case(n, packs.clone(), prm);
            c.params.degree = 4;
            for m in c.mirrors.iter_mut().take(slow) {
                *m = (25e6, 25e6);
            }
            let o = simulate(&c).unwrap();
            assert!(
                o.last() >= o.bound - 1e-9,
                "n={n}: {} < {}",
                o.last(),
                o.bound
            );
        }
    }

    #[test]
    fn a_killed_mirror_is_not_waited_for_and_a_joiner_gets_everything() {
        let sizes: Vec<u64> = (0..120).map(|i| 200_000 + (i * 7919) % 900_000).collect();
        let packs = cut_packs(&sizes, 16, 4 << 30, 10_000);
        let s: u64 = packs.iter().sum();
        // Kill m0 once the origin sent 30 %: the others finish, m0 is NaN,
        // and its packs were handed over.
        let mut c = case(4, packs.clone(), SimParams::default());
        c.fault = Some(Fault::Kill { mirror: 0, at: 0.3 });
        let o = simulate(&c).unwrap();
        let at = o.event.expect("the kill struck");
        assert!(o.done[0].is_nan());
        assert!(o.done[1..].iter().all(|d| *d > at), "{:?}", o.done);
        assert!(o.handovers >= 1);
        assert!(o.origin_bytes >= s as f64 - 1.0);
        // m3 joins once the others hold half: it ends with every pack,
        // after it joined.
        let mut c = case(4, packs.clone(), SimParams::default());
        c.fault = Some(Fault::Join { mirror: 3, at: 0.5 });
        let o = simulate(&c).unwrap();
        let at = o.event.expect("the joiner started");
        assert!(at > 0.0 && o.done[3] > at + c.params.start_secs, "{o:?}");
        assert!(o.done.iter().all(|d| *d > 0.0));
        // A fault naming no mirror is refused.
        c.fault = Some(Fault::Kill { mirror: 4, at: 0.3 });
        assert!(simulate(&c).is_err());
    }

    #[test]
    fn packs_are_cut_as_the_origin_cuts_them() {
        // 100 × 1 MB into 32: target 3.2 MB, so packs of three files.
        let packs = cut_packs(&[1_000_000; 100], 32, 4 << 30, 10_000);
        assert_eq!(packs.len(), 34);
        assert!(packs.iter().all(|p| *p <= 3_200_000));
        // The file cap splits too.
        assert_eq!(cut_packs(&[10; 25], 1, 4 << 30, 10).len(), 3);
    }
}
