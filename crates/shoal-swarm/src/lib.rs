//! Swarm scheduling: the origin sends each pack to one mirror (its
//! *feeder*), and the mirrors trade everything else among themselves.
//!
//! librqbit picks pieces in one fixed order, unchokes every peer and never
//! prefers a mirror over the origin (see `docs/design-decisions.md`). A
//! downloader that knows the origin therefore asks it for the head of every
//! queue, even for pieces other mirrors already hold, and the origin ends up
//! sending the archive 1.5–3 times. The one lever that reaches every
//! downloader is whom each torrent learns of. So:
//!
//! - mirrors never give their torrents the origin as a peer, and their
//!   trackers never list it;
//! - the origin's tracker lists the origin only to the pack's feeder:
//!   the live mirror with the fewest unfinished fed bytes per unit of
//!   weight (ties broken by rendezvous hashing, so every run agrees);
//! - a feeder that drops out of the live mirrors, or stops announcing the
//!   pack ([`Params::dead_after`]), or stops progressing
//!   ([`Params::stuck_after`]) loses the pack to the next mirror, so
//!   nothing waits on a killed or wedged mirror;
//! - a feeder taking a pack at under 1/[`SLOW_FEEDER`] of the best
//!   feeder's rate, on a mirror whose whole download runs at under
//!   1/[`SLOW_MIRROR`] of the fastest mirror's, loses it to a mirror with less to do ([`Handover::Moved`],
//!   "fed too slowly") and gets no other pack until the next plan while
//!   another mirror can take it, so a slow mirror does not hold back the
//!   fast ones;
//! - a handover or a queued pack goes to a mirror that announces the pack
//!   to this tracker, if one does, and preferably to the one asking: a
//!   mirror's torrent may announce to another tracker only (librqbit uses
//!   one tracker for a private torrent, drawn anew when it restarts), and
//!   the answer to its own announce is where it learns of the origin;
//! - a mirror that announces to this tracker counts as live.
//! - a mirror that joins halfway is given new packs only: an assignment
//!   sticks while its feeder lives and progresses.
//!
//! Everything here is plain data and functions of the time passed in, so
//! the benchmark's simulation runs this very code against modelled links.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Seconds since an arbitrary epoch (the agent: process start; the
/// simulation: its clock).
pub type Secs = f64;

/// Timing of the schedule.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// A feeder not heard about a pack for this long loses it.
    pub dead_after: Secs,
    /// A feeder whose bytes left on a pack did not fall for this long
    /// loses it.
    pub stuck_after: Secs,
    /// Packs whose copies to every live mirror add up to at most this go
    /// straight from the origin to whoever asks ([`DIRECT_BYTES`]).
    pub direct_bytes: u64,
}

impl Params {
    /// The schedule for a tracker announce interval of `interval` seconds:
    /// dead after three missed announces, stuck after six.
    pub fn for_interval(interval: Secs) -> Params {
        let i = interval.max(0.5);
        Params {
            dead_after: 3.0 * i + 1.0,
            stuck_after: (6.0 * i).max(5.0),
            direct_bytes: DIRECT_BYTES,
        }
    }
}

/// A pack whose copies to every live mirror add up to at most this many
/// bytes is not scheduled: the origin hands it to every mirror that asks.
/// Relaying it would make each mirror but its feeder wait for a restart
/// ([`KICK_AFTER_SECS`]) to save the origin well under a second of upload.
/// A small update of an archive makes such packs.
pub const DIRECT_BYTES: u64 = 1 << 20;

/// Whether a pack of `size` bytes goes straight from the origin to each of
/// `mirrors` live mirrors (at most `budget` bytes in all).
pub fn direct(size: u64, mirrors: usize, budget: u64) -> bool {
    size.saturating_mul(mirrors.max(1) as u64) <= budget
}

/// A mirror the origin may feed, with its weight (relative capacity; 1.0
/// unless something better is known).
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub weight: f64,
}

impl Candidate {
    pub fn new(name: &str) -> Candidate {
        Candidate {
            name: name.to_string(),
            weight: 1.0,
        }
    }
}

/// A tracker announce, as the schedule sees it.
#[derive(Debug, Clone, Copy)]
pub struct Announce<'a> {
    /// The pack (its info hash).
    pub pack: &'a str,
    /// The pack's size in bytes.
    pub size: u64,
    /// The mirror asking; `None` for a client that is not a known mirror.
    pub asker: Option<&'a str>,
    /// Bytes the asker still has to fetch.
    pub left: u64,
}

/// What the scheduler knows of one pack.
#[derive(Debug, Clone)]
struct Pack {
    size: u64,
    feeder: Option<Feeder>,
    /// The origin's upload counter for the pack, last seen.
    sent: u64,
    /// Mirrors that lost this pack (dead or stuck): never its feeder again
    /// while another candidate exists.
    lost: HashSet<String>,
}

#[derive(Debug, Clone)]
struct Feeder {
    name: String,
    /// When the feeder was chosen, last heard about this pack, and when
    /// its bytes left last fell.
    since: Secs,
    heard: Secs,
    progressed: Secs,
    left: u64,
    /// Bytes left when it took the pack.
    start_left: u64,
    /// The origin's upload counter for the pack when this feeder took it
    /// (what an earlier feeder got does not count as progress).
    sent_before: u64,
}

/// Why a pack changed feeder (for logs and counters).
#[derive(Debug, Clone, PartialEq)]
pub enum Handover {
    /// The pack got its first feeder.
    Assigned { to: String },
    /// The old feeder went quiet, stopped progressing, or was fed too
    /// slowly while another mirror had less to do.
    Moved {
        from: String,
        to: String,
        why: &'static str,
    },
}

/// The origin's schedule: one feeder per pack.
#[derive(Debug, Default, Clone)]
pub struct Schedule {
    packs: BTreeMap<String, Pack>,
    /// Planned packs without a feeder yet, largest first.
    pending: Vec<(String, u64)>,
    /// A mirror is given another pending pack while its unfinished fed
    /// bytes are below this: two average packs of the newest plan.
    lead: u64,
    /// The best rate (bytes per second) at which a feeder took a whole
    /// pack, from its assignment to its last byte; 0 until one did.
    best_rate: f64,
    /// When each mirror last announced any pack to the tracker.
    announced: HashMap<String, Secs>,
    /// Per pack, when each mirror last announced it to this tracker.
    asked: HashMap<String, HashMap<String, Secs>>,
    /// [`Schedule::best_rate`] at a time.
    rate_memo: std::cell::Cell<(Secs, f64)>,
    /// Mirrors that lost a pack as "fed too slowly" since the last plan:
    /// no pack goes to them while another candidate exists.
    slow: HashSet<String>,
    /// [`Params::dead_after`] of the last call that passed it (0 before).
    window: Secs,
    /// Per mirror, what it took of all packs since the last plan, from
    /// its announces (see [`Intake`]).
    intake: HashMap<String, Intake>,
}

/// What a mirror took of all packs, from any source, since it first
/// announced after the last plan: its whole download rate, which says
/// whether the mirror is slow, where one pack's rate may only say that
/// its download is shared with relay flows.
#[derive(Debug, Default, Clone)]
struct Intake {
    since: Secs,
    got: u64,
    left: HashMap<String, u64>,
}

impl Intake {
    fn note(&mut self, pack: &str, size: u64, left: u64) {
        let before = self.left.entry(pack.to_string()).or_insert(size);
        self.got += before.saturating_sub(left);
        *before = (*before).min(left);
    }

    /// Bytes per second, once the mirror has announced for `min` seconds.
    fn rate(&self, now: Secs, min: Secs) -> Option<f64> {
        (now - self.since > min).then(|| self.got as f64 / (now - self.since))
    }
}

impl Schedule {
    pub fn new() -> Schedule {
        Schedule::default()
    }

    /// Queues the packs a publish added, largest first, and gives every
    /// live mirror its first ones. A mirror is then given the next queued
    /// pack whenever its unfinished fed bytes fall below two average packs
    /// (checked at each of its announces): each mirror is fed as fast as it
    /// takes, so a slow mirror is fed less and never holds back the others,
    /// and big packs go first, so no feeder ends with a big one alone.
    /// Packs that already have a feeder keep it.
    pub fn plan(&mut self, packs: &[(&str, u64)], live: &[Candidate], now: Secs, p: &Params) {
        self.window = p.dead_after;
        self.slow.clear();
        self.intake.clear();
        let live = self.widen(live, now);
        let live = &live[..];
        let mut added = 0u64;
        let mut n = 0u64;
        for (k, size) in packs
            .iter()
            .filter(|(_, size)| !direct(*size, live.len(), p.direct_bytes))
        {
            let known = self.packs.get(*k).is_some_and(|st| st.feeder.is_some())
                || self.pending.iter().any(|(q, _)| q == k);
            if !known {
                self.pending.push((k.to_string(), *size));
                added += size;
                n += 1;
            }
        }
        if let Some(avg) = added.checked_div(n) {
            self.lead = (2 * avg).max(1);
        }
        self.pending
            .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        self.fill(live, now);
    }

    /// Gives queued packs to live mirrors below the lead, least loaded
    /// (per weight) first; among those that ask this tracker about the
    /// pack, if any do.
    fn fill(&mut self, live: &[Candidate], now: Secs) {
        if self.pending.is_empty() || live.is_empty() {
            return;
        }
        let mut load = self.load();
        while let Some((pack, size)) = self.pending.first().cloned() {
            // Once mirrors ask this tracker about the pack, only they are
            // candidates (see [`reachable`]).
            let reach = reachable(self.asked.get(&pack), now, self.window);
            let any = live.iter().any(&reach);
            let asking: Vec<&Candidate> = live.iter().filter(|c| !any || reach(c)).collect();
            let best = prefer_fast(asking, &self.slow)
                .into_iter()
                .min_by(|a, b| by_load(&pack, &load, a, b))
                .expect("live is not empty");
            let have = load.get(&best.name).copied().unwrap_or(0);
            if have as f64 >= self.lead as f64 * best.weight.max(1e-9) {
                break;
            }
            self.pending.remove(0);
            *load.entry(best.name.clone()).or_default() += size;
            self.packs.insert(
                pack,
                Pack {
                    size,
                    feeder: Some(Feeder {
                        name: best.name.clone(),
                        since: now,
                        heard: now,
                        progressed: now,
                        left: size,
                        start_left: size,
                        sent_before: 0,
                    }),
                    lost: HashSet::new(),
                    sent: 0,
                },
            );
        }
    }

    /// What the origin itself saw: it has sent `sent` bytes of `pack`
    /// (its own upload counter for the pack, all of it to the feeder
    /// but for outsiders). Progress counts at once instead of at the
    /// feeder's next announce, so a feeder running low is given its next
    /// pack while the current one still arrives, and the announce that
    /// tells it of the origin comes before it runs dry.
    pub fn progress(&mut self, pack: &str, sent: u64, live: &[Candidate], now: Secs) {
        if let Some(st) = self.packs.get_mut(pack) {
            let size = st.size;
            st.sent = st.sent.max(sent);
            if let Some(f) = st.feeder.as_mut() {
                let left = size.saturating_sub(sent.saturating_sub(f.sent_before));
                if left < f.left {
                    f.left = left;
                    f.progressed = now;
                    if left == 0 {
                        self.best_rate = self.best_rate.max(f.rate(now));
                    }
                }
            }
        }
        let live = self.widen(live, now);
        self.fill(&live, now);
    }

    /// The live mirrors the caller knows, plus every mirror that announced
    /// a pack to this tracker within [`Params::dead_after`]: a mirror that
    /// announces is alive, whatever the caller's list (the agent's hears
    /// of a mirror through its peer announces only) says.
    fn widen(&self, live: &[Candidate], now: Secs) -> Vec<Candidate> {
        let mut v = live.to_vec();
        // A set, not a scan per name: 500 mirrors asked about 31 packs
        // made this quadratic and the 500-mirror simulation take hours.
        let known: std::collections::HashSet<&str> = live.iter().map(|c| c.name.as_str()).collect();
        let mut extra: Vec<&String> = self
            .announced
            .iter()
            .filter(|(n, t)| now - **t <= self.window && !known.contains(n.as_str()))
            .map(|(n, _)| n)
            .collect();
        extra.sort();
        v.extend(extra.into_iter().map(|n| Candidate::new(n)));
        v
    }

    /// How many planned packs wait for a feeder.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// An announce `a`; `live` are the mirrors heard from recently.
    /// Returns whether the origin belongs in the asker's peer list, and a
    /// handover if the pack changed feeder.
    pub fn ask(
        &mut self,
        a: &Announce<'_>,
        live: &[Candidate],
        now: Secs,
        p: &Params,
    ) -> (bool, Option<Handover>) {
        let Announce {
            pack,
            size,
            asker,
            left,
        } = *a;
        self.window = p.dead_after;
        if let Some(n) = asker {
            self.announced.insert(n.to_string(), now);
            self.asked
                .entry(pack.to_string())
                .or_default()
                .insert(n.to_string(), now);
            self.intake
                .entry(n.to_string())
                .or_insert_with(|| Intake {
                    since: now,
                    ..Intake::default()
                })
                .note(pack, size, left);
        }
        let live = self.widen(live, now);
        let live = &live[..];
        if direct(size, live.len(), p.direct_bytes) {
            return (asker.is_none() || left > 0, None);
        }
        self.note(pack, asker, left, now);
        self.fill(live, now);
        if self.pending.iter().any(|(k, _)| k == pack) {
            // Queued: it gets a feeder when one has room; outsiders are
            // served at once.
            return (asker.is_none(), None);
        }
        let handover = self.review(a, live, now, p);
        let Some(asker) = asker else {
            // Not a Shoal mirror (a plain BitTorrent client): it gets the
            // origin, or it might never get the pack at all.
            return (true, handover);
        };
        let st = self.packs.get_mut(pack).expect("reviewed above");
        let Some(f) = st.feeder.as_mut() else {
            // No mirror is live: whoever asks is fed.
            return (true, handover);
        };
        if f.name != asker {
            return (false, handover);
        }
        if handover.is_some() {
            f.heard = now;
            f.left = f.left.min(left);
        }
        (left > 0, handover)
    }

    /// Records a feeder's announce of its pack: heard now, and progress.
    fn note(&mut self, pack: &str, asker: Option<&str>, left: u64, now: Secs) {
        let Some(f) = self.packs.get_mut(pack).and_then(|st| st.feeder.as_mut()) else {
            return;
        };
        if Some(f.name.as_str()) != asker {
            return;
        }
        f.heard = now;
        if left < f.left {
            f.left = left;
            f.progressed = now;
            if left == 0 {
                self.best_rate = self.best_rate.max(f.rate(now));
            }
        }
    }

    /// Chooses or keeps the feeder of `pack`.
    fn review(
        &mut self,
        a: &Announce<'_>,
        live: &[Candidate],
        now: Secs,
        p: &Params,
    ) -> Option<Handover> {
        let Announce {
            pack,
            size,
            asker,
            left,
        } = *a;
        let mut slow = false;
        if let Some(st) = self.packs.get(pack) {
            if let Some(f) = st.feeder.as_ref() {
                if f.left == 0 && !orphaned(f, asker, left, live) {
                    return None; // fed: nothing more to decide
                }
                if !quiet(f, live, now, p) && !stuck(f, now, p) {
                    slow = self.too_slow(pack, st, f, live, now, p);
                    if !slow {
                        return None; // the common case: no load map needed
                    }
                }
            }
        }
        let load = self.load();
        let st = self.packs.entry(pack.to_string()).or_insert(Pack {
            size,
            feeder: None,
            lost: HashSet::new(),
            sent: 0,
        });
        let mut why = None;
        if let Some(f) = &st.feeder {
            if quiet(f, live, now, p) {
                why = Some("went quiet");
            } else if stuck(f, now, p) {
                why = Some("stopped progressing");
            } else if slow {
                why = Some("fed too slowly");
            } else {
                return None;
            }
        }
        let old = st.feeder.take();
        if let Some(o) = &old {
            st.lost.insert(o.name.clone());
            if slow {
                self.slow.insert(o.name.clone());
            }
        }
        let fresh: Vec<&Candidate> = live.iter().filter(|c| !st.lost.contains(&c.name)).collect();
        // A handover goes to a mirror that asks this tracker about the pack,
        // if one does (a pack's first feeder is chosen before anyone asks).
        let reach = reachable(self.asked.get(pack), now, self.window);
        let near: Vec<&Candidate> = match &old {
            Some(_) => fresh.iter().copied().filter(|c| reach(c)).collect(),
            None => Vec::new(),
        };
        let pool: Vec<&Candidate> = if !near.is_empty() {
            near
        } else if !fresh.is_empty() {
            fresh
        } else {
            live.iter().collect()
        };
        let pool = prefer_fast(pool, &self.slow);
        // The asking mirror takes a handover if it may (and, for a slow
        // feeder, has less to do than the pack has left): the answer to
        // this very announce then lists the origin, before the mirror's
        // torrent can restart and announce elsewhere.
        let old_left = old.as_ref().map_or(u64::MAX, |o| o.left);
        let mine = pool.iter().copied().find(|c| {
            old.is_some()
                && Some(c.name.as_str()) == asker
                && (!slow || load.get(&c.name).copied().unwrap_or(0) < old_left)
        });
        let best = match mine {
            Some(c) => c,
            None => pool.into_iter().min_by(|a, b| by_load(pack, &load, a, b))?,
        };
        st.feeder = Some(Feeder {
            name: best.name.clone(),
            since: now,
            heard: now,
            progressed: now,
            left: size,
            start_left: size,
            sent_before: st.sent,
        });
        Some(match (old, why) {
            (Some(o), Some(why)) => Handover::Moved {
                from: o.name,
                to: best.name.clone(),
                why,
            },
            _ => Handover::Assigned {
                to: best.name.clone(),
            },
        })
    }

    /// Whether feeder `f` of pack `st` takes it so slowly that another
    /// mirror should take over: `f` had the pack for longer than
    /// [`Params::stuck_after`]; it gets it at under 1/[`SLOW_FEEDER`] of
    /// the best rate of any other feeder (a finished feed, or one running
    /// for `stuck_after`); the mirror itself is slow
    /// ([`Schedule::slow_mirror`]); at its rate it would need longer than
    /// `stuck_after` still; and a live mirror that never lost the pack, was
    /// not found too slow itself since the last plan, and asks this tracker
    /// about the pack has fewer unfinished fed bytes than `f` has left of
    /// it. A mirror found too slow is given no pack, queued or handed
    /// over, while another candidate exists, until the next plan.
    fn too_slow(
        &self,
        pack: &str,
        st: &Pack,
        f: &Feeder,
        live: &[Candidate],
        now: Secs,
        p: &Params,
    ) -> bool {
        if now - f.since <= p.stuck_after {
            return false;
        }
        let rate = f.rate(now);
        if (f.left as f64) <= rate * p.stuck_after {
            return false;
        }
        let best = self.best_rate(now, p);
        if best <= 0.0 || rate * SLOW_FEEDER >= best {
            return false;
        }
        if !self.slow_mirror(&f.name, live, now, p) {
            return false;
        }
        let load = self.load();
        let reach = reachable(self.asked.get(pack), now, self.window);
        live.iter().any(|c| {
            c.name != f.name
                && !st.lost.contains(&c.name)
                && !self.slow.contains(&c.name)
                && reach(c)
                && load.get(&c.name).copied().unwrap_or(0) < f.left
        })
    }

    /// Whether mirror `name` takes all its packs together at under
    /// 1/[`SLOW_MIRROR`] of the fastest other live mirror's rate (each
    /// measured over at least [`Params::dead_after`]). At equal link
    /// rates one pack's feed can still crawl, when the feeder's download
    /// is shared with many relay flows; its mirror is not slow then, and
    /// moving the pack would only make the origin send it again.
    fn slow_mirror(&self, name: &str, live: &[Candidate], now: Secs, p: &Params) -> bool {
        let Some(mine) = self
            .intake
            .get(name)
            .and_then(|i| i.rate(now, p.dead_after))
        else {
            return false;
        };
        let fastest = live
            .iter()
            .filter(|c| c.name != name)
            .filter_map(|c| self.intake.get(&c.name)?.rate(now, p.dead_after))
            .fold(0.0, f64::max);
        mine * SLOW_MIRROR < fastest
    }

    /// The best rate a feeder got its pack at: a finished feed, or one
    /// running for [`Params::stuck_after`] (computed once per `now`).
    fn best_rate(&self, now: Secs, p: &Params) -> f64 {
        let (at, memo) = self.rate_memo.get();
        if at == now {
            return memo;
        }
        let running = self
            .packs
            .values()
            .filter_map(|st| st.feeder.as_ref())
            .filter(|g| g.left > 0 && now - g.since > p.stuck_after)
            .map(|g| g.rate(now))
            .fold(0.0, f64::max);
        let best = self.best_rate.max(running);
        self.rate_memo.set((now, best));
        best
    }

    /// Unfinished fed bytes per feeder.
    fn load(&self) -> HashMap<String, u64> {
        let mut m = HashMap::new();
        for st in self.packs.values() {
            if let Some(f) = &st.feeder {
                *m.entry(f.name.clone()).or_default() += f.left.min(st.size);
            }
        }
        m
    }

    /// The feeder of a pack, if it has one.
    pub fn feeder(&self, pack: &str) -> Option<&str> {
        self.packs
            .get(pack)?
            .feeder
            .as_ref()
            .map(|f| f.name.as_str())
    }

    /// Forgets packs no longer published.
    pub fn retain(&mut self, keep: &dyn Fn(&str) -> bool) {
        self.packs.retain(|k, _| keep(k));
        self.asked.retain(|k, _| keep(k));
        self.pending.retain(|(k, _)| keep(k));
    }

    /// How many packs the schedule tracks.
    pub fn len(&self) -> usize {
        self.packs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packs.is_empty()
    }
}

/// The most bytes one pack of a publish holds: the publish's new bytes cut
/// into `split` packs, none under [`MIN_PACK`] (each pack is a torrent
/// every mirror adds), none over `max`. Many packs let the origin feed
/// each mirror its own part.
pub fn pack_target(new_bytes: u64, split: usize, max: u64) -> u64 {
    let per = new_bytes.div_ceil(split.max(1) as u64);
    per.max(MIN_PACK).min(max)
}

/// Smallest pack a publish cuts on purpose.
pub const MIN_PACK: u64 = 1 << 20;

/// A mirror restarts a pack that made no progress for this long (and is
/// not being fed by the origin): librqbit's requester for a peer that had
/// nothing new to give sleeps up to 5 s even after that peer gets new
/// pieces, and only a restart (new connections, a fresh tracker announce)
/// wakes it. Mirrors relay pieces as they arrive, so this keeps a relay
/// close behind its source.
pub const KICK_AFTER_SECS: f64 = 1.5;

/// A pack of which a mirror holds nothing this long after adding it is
/// restarted once, early. Every mirror adds a generation's packs at about
/// the same moment, so the peers it first connected to had nothing of the
/// pack yet, and librqbit's requesters for them sleep up to 5 s even after
/// those peers get it: a small update's one pack reaches its feeder within
/// a fraction of a second, and the other mirrors waited out
/// [`KICK_AFTER_SECS`] for it (1.8 s of a 2 s update with 4 mirrors).
pub const FIRST_KICK_AFTER_SECS: f64 = 0.5;

/// Why a mirror restarts a pack ([`kick_due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// Nothing of the pack arrived [`FIRST_KICK_AFTER_SECS`] after it was
    /// added: once. It leaves the clocks of the usual restart alone.
    Early,
    /// No progress for [`KICK_AFTER_SECS`], and [`kick_interval`] since
    /// the last usual restart.
    Again,
}

/// Each usual restart of a pack that brought no progress doubles the wait
/// before the next, up to `2^KICK_DOUBLINGS` times [`KICK_AFTER_SECS`]
/// (24 s); progress resets it. A restart that wakes a sleeping requester
/// brings progress at once, so a relay trailing its source is restarted
/// every 1.5 s as long as that helps. A pack that waits for bytes nobody
/// near holds yet (a generation of a hundred packs, each mirror fed a
/// few at a time) gains nothing from restarts, and each one also drops
/// the connections of the mirrors fetching that pack from this one: a
/// first sync of a million files (100 packs, 4 mirrors on 2 cores)
/// restarted 3,000-3,500 packs per mirror in 20 minutes, and the origin
/// handed packs over 818 times, when every restart came 1.5 s after the
/// last.
pub const KICK_DOUBLINGS: u32 = 4;

/// The wait before the usual restart of a pack after `fruitless` usual
/// restarts that brought no progress ([`KICK_DOUBLINGS`]).
pub fn kick_interval(fruitless: u32) -> Secs {
    KICK_AFTER_SECS * f64::from(1u32 << fruitless.min(KICK_DOUBLINGS))
}

/// Whether a mirror restarts a pack it is not being fed by the origin:
/// `idle` seconds without progress (since it was added, last progressed or
/// last restarted with [`Kick::Again`]), `since_kick` since it was added
/// or last restarted with [`Kick::Again`]; `early_done` once the
/// [`Kick::Early`] restart happened; `have` bytes of it held; `fruitless`
/// usual restarts since it last progressed ([`kick_interval`]).
pub fn kick_due(
    idle: Secs,
    since_kick: Secs,
    early_done: bool,
    have: u64,
    fruitless: u32,
) -> Option<Kick> {
    let wait = kick_interval(fruitless);
    if idle >= KICK_AFTER_SECS && since_kick >= wait {
        Some(Kick::Again)
    } else if have == 0 && !early_done && idle >= FIRST_KICK_AFTER_SECS {
        Some(Kick::Early)
    } else {
        None
    }
}

/// Whether a mirror restarts a pack once, at once, when it finishes
/// downloading it. The other mirrors relaying the pack through this one
/// asked it for pieces while it had none they lacked, and librqbit's
/// requesters for it sleep up to 5 s even after it gets them (a peer
/// holding nothing sends no bitfield: the requester wakes on its first
/// HAVE, takes one piece, and sleeps again). The restart closes those
/// connections; the peers reconnect within milliseconds and see a full
/// bitfield. A small update's pack reached its feeder in a fraction of a
/// second and the others waited for [`KICK_AFTER_SECS`].
pub const RESTART_WHEN_DONE: bool = true;

/// Whether a mirror restarts a pack that just finished: once
/// (`already` after it happened), and only one that came over the wire
/// here (`downloaded_here`), not one found complete on disk when added.
pub fn restart_when_done(downloaded_here: bool, already: bool) -> bool {
    RESTART_WHEN_DONE && downloaded_here && !already
}

/// A feeder taking its pack at under 1/`SLOW_FEEDER` of the best feeder's
/// rate loses it to a mirror with less to do (see [`Schedule`]). A quarter:
/// the fault case of a mirror at a quarter of the others' rate is caught,
/// the spread of rates between equal mirrors (relay flows sharing a
/// feeder's download) mostly not.
pub const SLOW_FEEDER: f64 = 4.0;

/// A feeder's mirror is slow when it takes all its packs together at
/// under 1/`SLOW_MIRROR` of the fastest other mirror's rate (see
/// [`Schedule`]). Half, not a quarter: a mirror shaped to a quarter of the
/// others' link takes about a third of what they take, since relaying
/// keeps the fast ones from filling their links (measured in the bench's
/// fault case), while mirrors on equal links take within a few tens of
/// percent of each other over the seconds this is measured on.
pub const SLOW_MIRROR: f64 = 2.0;

impl Feeder {
    /// Bytes per second the origin sent this feeder since it took the pack.
    fn rate(&self, now: Secs) -> f64 {
        self.start_left.saturating_sub(self.left) as f64 / (now - self.since).max(1e-3)
    }
}

/// `pool` without the mirrors in `slow`, unless that leaves nobody.
fn prefer_fast<'a>(pool: Vec<&'a Candidate>, slow: &HashSet<String>) -> Vec<&'a Candidate> {
    if pool.iter().all(|c| slow.contains(&c.name)) {
        return pool;
    }
    pool.into_iter()
        .filter(|c| !slow.contains(&c.name))
        .collect()
}

/// Whether a mirror announced the pack (whose askers are `asked`) to
/// this tracker within `window` seconds: only such a mirror hears from
/// this tracker that it may fetch the pack from the origin. (A mirror's
/// torrent may announce to another tracker only: librqbit announces a
/// private torrent to its first tracker alone, and after a pause and
/// unpause "first" is drawn from a hash set.)
fn reachable(
    asked: Option<&HashMap<String, Secs>>,
    now: Secs,
    window: Secs,
) -> impl Fn(&Candidate) -> bool + '_ {
    move |c: &Candidate| {
        asked
            .and_then(|m| m.get(&c.name))
            .is_some_and(|t| now - *t <= window)
    }
}

/// A feeder is quiet when it dropped out of the live mirrors, or has not
/// announced the pack to this tracker for [`Params::dead_after`]. The
/// origin's upload counter for the pack does not say otherwise: it also
/// counts what an earlier feeder still fetches over its old connection.
fn quiet(f: &Feeder, live: &[Candidate], now: Secs, p: &Params) -> bool {
    let alive = live.iter().any(|c| c.name == f.name);
    !alive || now - f.heard > p.dead_after
}

/// A fed pack is orphaned when its feeder left the live mirrors while a
/// mirror still lacks bytes of it: the feeder may have died before it
/// relayed its last pieces, which nobody else then holds. The asker takes
/// the pack over from the origin. A feeder that is alive but stopped
/// announcing the pack (it rests) keeps it: it is woken instead.
fn orphaned(f: &Feeder, asker: Option<&str>, left: u64, live: &[Candidate]) -> bool {
    asker.is_some() && left > 0 && !live.iter().any(|c| c.name == f.name)
}

/// A feeder is stuck when its bytes left did not fall for
/// [`Params::stuck_after`] (and it had the pack that long).
fn stuck(f: &Feeder, now: Secs, p: &Params) -> bool {
    now - f.progressed > p.stuck_after && now - f.since > p.stuck_after
}

/// Feeder order for `pack`: fewer unfinished fed bytes per weight first,
/// ties by rendezvous rank.
fn by_load(
    pack: &str,
    load: &HashMap<String, u64>,
    a: &Candidate,
    b: &Candidate,
) -> std::cmp::Ordering {
    let per = |c: &Candidate| load.get(&c.name).copied().unwrap_or(0) as f64 / c.weight.max(1e-9);
    per(a)
        .total_cmp(&per(b))
        .then_with(|| rendezvous(pack, &a.name).cmp(&rendezvous(pack, &b.name)))
}

/// Rendezvous (highest random weight) rank of `name` for `pack`: lower is
/// preferred. Every agent computes the same order for the same inputs.
pub fn rendezvous(pack: &str, name: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(pack.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    h.finalize().into()
}

/// Which of an agent's known peers a torrent of a mirror may be given
/// (initial peers and tracker answers): every peer except the origin, which
/// only the origin's own tracker hands out, and only to a pack's feeder.
pub fn relay_peers<'a, T>(peers: impl IntoIterator<Item = (&'a str, T)>) -> Vec<T> {
    peers
        .into_iter()
        .filter(|(role, _)| *role != "origin")
        .map(|(_, t)| t)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rules under test, with no pack small enough to go direct (the
    /// sizes here are small numbers).
    const P: Params = Params {
        dead_after: 4.0,
        stuck_after: 6.0,
        direct_bytes: 0,
    };

    fn live(names: &[&str]) -> Vec<Candidate> {
        names.iter().map(|n| Candidate::new(n)).collect()
    }

    /// Every mirror asks for every pack once at t=0; returns the feeders.
    fn first_round(s: &mut Schedule, packs: &[(&str, u64)], m: &[Candidate]) -> Vec<String> {
        let mut fed = Vec::new();
        for (k, size) in packs {
            let mut given = Vec::new();
            for c in m {
                let (origin, _) = s.ask(
                    &Announce {
                        pack: k,
                        size: *size,
                        asker: Some(&c.name),
                        left: *size,
                    },
                    m,
                    0.0,
                    &P,
                );
                if origin {
                    given.push(c.name.clone());
                }
            }
            assert_eq!(given.len(), 1, "pack {k}: the origin went to {given:?}");
            fed.push(given.remove(0));
        }
        fed
    }

    #[test]
    fn each_pack_has_one_feeder_and_bytes_are_balanced() {
        let m = live(&["a", "b", "c", "d"]);
        let packs: Vec<(String, u64)> = (0..16).map(|i| (format!("p{i}"), 1000)).collect();
        let refs: Vec<(&str, u64)> = packs.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        let mut s = Schedule::new();
        let fed = first_round(&mut s, &refs, &m);
        for c in &m {
            assert_eq!(fed.iter().filter(|f| **f == c.name).count(), 4, "{fed:?}");
        }
    }

    #[test]
    fn big_packs_count_by_bytes_and_weight_shifts_load() {
        let mut m = live(&["a", "b"]);
        m[1].weight = 3.0;
        let packs: Vec<(String, u64)> = (0..8).map(|i| (format!("p{i}"), 100)).collect();
        let refs: Vec<(&str, u64)> = packs.iter().map(|(k, s)| (k.as_str(), *s)).collect();
        let mut s = Schedule::new();
        let fed = first_round(&mut s, &refs, &m);
        assert_eq!(fed.iter().filter(|f| *f == "b").count(), 6, "{fed:?}");
    }

    /// Drives a schedule as the tracker would: every `dt` each mirror
    /// fetches its fed packs at its rate (bytes per second, shared by its
    /// fed packs) and announces every pack. Returns the fed bytes per
    /// mirror, and checks that each pack was fed by exactly one mirror.
    fn drive(packs: &[(&str, u64)], rates: &[(&str, f64)]) -> BTreeMap<String, u64> {
        let m: Vec<Candidate> = rates.iter().map(|(n, _)| Candidate::new(n)).collect();
        let mut s = Schedule::new();
        s.plan(packs, &m, 0.0, &P);
        let mut left: BTreeMap<(String, String), f64> = BTreeMap::new();
        let dt = 0.25;
        let mut t = 0.0;
        while t < 10_000.0 {
            t += dt;
            let mut all_fed = true;
            for (name, rate) in rates {
                let mine: Vec<&str> = packs
                    .iter()
                    .filter(|(k, _)| s.feeder(k) == Some(*name))
                    .map(|(k, _)| *k)
                    .collect();
                let open: Vec<&str> = mine
                    .iter()
                    .copied()
                    .filter(|k| {
                        left.get(&(k.to_string(), name.to_string()))
                            .copied()
                            .unwrap_or(1.0)
                            > 0.0
                    })
                    .collect();
                for k in &open {
                    let size = packs.iter().find(|(q, _)| q == k).unwrap().1 as f64;
                    let e = left
                        .entry((k.to_string(), name.to_string()))
                        .or_insert(size);
                    *e = (*e - rate * dt / open.len() as f64).max(0.0);
                }
                for (k, size) in packs {
                    let l = left
                        .get(&(k.to_string(), name.to_string()))
                        .copied()
                        .unwrap_or(*size as f64);
                    let (origin, _) = s.ask(
                        &Announce {
                            pack: k,
                            size: *size,
                            asker: Some(name),
                            left: l.ceil() as u64,
                        },
                        &m,
                        t,
                        &P,
                    );
                    assert!(
                        !origin || s.feeder(k) == Some(*name),
                        "{k}: origin to a non-feeder"
                    );
                }
            }
            for (k, _) in packs {
                match s.feeder(k) {
                    Some(f) => all_fed &= left.get(&(k.to_string(), f.to_string())) == Some(&0.0),
                    None => all_fed = false,
                }
            }
            if all_fed {
                break;
            }
        }
        let mut fed = BTreeMap::new();
        for (k, size) in packs {
            *fed.entry(s.feeder(k).unwrap().to_string()).or_default() += size;
        }
        fed
    }

    #[test]
    fn a_plan_feeds_every_mirror_about_the_same_bytes_big_packs_first() {
        // Four big packs and sixteen small ones, over four equal mirrors.
        let names: Vec<String> = (0..20).map(|i| format!("p{i:02}")).collect();
        let packs: Vec<(&str, u64)> = names
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), if i % 5 == 0 { 3000 } else { 500 }))
            .collect();
        let mut s = Schedule::new();
        s.plan(&packs, &live(&["a", "b", "c", "d"]), 0.0, &P);
        // The big packs go out first, one to each mirror; the rest waits.
        for c in ["a", "b", "c", "d"] {
            let first: Vec<u64> = packs
                .iter()
                .filter(|(k, _)| s.feeder(k) == Some(c))
                .map(|(_, size)| *size)
                .collect();
            assert_eq!(first, vec![3000], "{c}");
        }
        assert_eq!(s.queued(), 16);
        let fed = drive(
            &packs,
            &[("a", 100.0), ("b", 100.0), ("c", 100.0), ("d", 100.0)],
        );
        for (m, b) in &fed {
            assert!(
                (4500..=5500).contains(b),
                "{m} was fed {b} of 20000: {fed:?}"
            );
        }
    }

    #[test]
    fn a_small_pack_goes_straight_to_every_mirror_and_is_not_scheduled() {
        let p = Params::for_interval(1.0);
        let m = live(&["a", "b", "c", "d"]);
        let mut s = Schedule::new();
        // 200 kB to 4 mirrors: 800 kB in all, under DIRECT_BYTES.
        let small = 200_000;
        // 8 MB to 4 mirrors is scheduled.
        let big = 8_000_000;
        s.plan(&[("small", small), ("big", big)], &m, 0.0, &p);
        assert_eq!(s.feeder("small"), None, "a direct pack has no feeder");
        assert!(s.feeder("big").is_some());
        for n in ["a", "b", "c", "d"] {
            let ask = |pack, size| Announce {
                pack,
                size,
                asker: Some(n),
                left: size,
            };
            let (origin, _) = s.ask(&ask("small", small), &m, 1.0, &p);
            assert!(origin, "{n} is given the origin for the small pack");
        }
        let given: usize = ["a", "b", "c", "d"]
            .iter()
            .filter(|n| {
                let a = Announce {
                    pack: "big",
                    size: big,
                    asker: Some(n),
                    left: big,
                };
                s.ask(&a, &m, 1.0, &p).0
            })
            .count();
        assert_eq!(given, 1, "the big pack still has one feeder");
        // A mirror that holds the small pack already is not sent it again.
        let done = Announce {
            pack: "small",
            size: small,
            asker: Some("a"),
            left: 0,
        };
        assert!(!s.ask(&done, &m, 2.0, &p).0);
        // With 40 mirrors the same 200 kB pack is 8 MB in all: scheduled.
        assert!(!direct(small, 40, p.direct_bytes));
    }

    #[test]
    fn a_slow_mirror_is_fed_less_and_the_fast_ones_take_the_rest() {
        let names: Vec<String> = (0..32).map(|i| format!("p{i:02}")).collect();
        let packs: Vec<(&str, u64)> = names.iter().map(|k| (k.as_str(), 1000)).collect();
        let fed = drive(
            &packs,
            &[("a", 400.0), ("b", 400.0), ("c", 400.0), ("slow", 100.0)],
        );
        let slow = fed.get("slow").copied().unwrap_or(0);
        for f in ["a", "b", "c"] {
            assert!(fed[f] >= 2 * slow, "{fed:?}");
        }
        assert_eq!(fed.values().sum::<u64>(), 32_000);
    }

    #[test]
    fn the_origins_own_counters_hand_out_the_next_pack_before_an_announce() {
        let m = live(&["a"]);
        let mut s = Schedule::new();
        s.plan(&[("p1", 3000), ("p2", 2000), ("p3", 1000)], &m, 0.0, &P);
        // Lead: two average packs (4000): p1 and p2 go out, p3 waits.
        assert_eq!((s.feeder("p1"), s.feeder("p2")), (Some("a"), Some("a")));
        assert_eq!(s.queued(), 1);
        s.progress("p1", 500, &m, 0.5);
        assert_eq!(s.queued(), 1, "4500 bytes still to feed");
        s.progress("p1", 1500, &m, 1.0);
        assert_eq!(s.feeder("p3"), Some("a"));
        assert_eq!(s.queued(), 0);
    }

    #[test]
    fn non_mirrors_get_the_origin_and_other_mirrors_do_not() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        let (o, h) = s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &m,
            0.0,
            &P,
        );
        assert!(o);
        let feeder = match h {
            Some(Handover::Assigned { to }) => to,
            other => panic!("{other:?}"),
        };
        let other = if feeder == "a" { "b" } else { "a" };
        assert!(
            !s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(other),
                    left: 10
                },
                &m,
                0.1,
                &P
            )
            .0
        );
        assert!(
            s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(&feeder),
                    left: 10
                },
                &m,
                0.1,
                &P
            )
            .0
        );
        // Once fed, the feeder no longer needs the origin.
        assert!(
            !s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(&feeder),
                    left: 0
                },
                &m,
                0.2,
                &P
            )
            .0
        );
        assert!(
            !s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(other),
                    left: 10
                },
                &m,
                9.0,
                &P
            )
            .0
        );
    }

    #[test]
    fn a_quiet_feeder_loses_its_pack_and_never_gets_it_back_while_others_live() {
        let m = live(&["a", "b", "c"]);
        let mut s = Schedule::new();
        s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &m,
            0.0,
            &P,
        );
        let first = s.feeder("p").unwrap().to_string();
        // The feeder is killed: it drops out of the live list.
        let rest: Vec<Candidate> = m.iter().filter(|c| c.name != first).cloned().collect();
        let (_, h) = s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: Some(&rest[0].name),
                left: 10,
            },
            &rest,
            1.0,
            &P,
        );
        assert!(
            matches!(
                h,
                Some(Handover::Moved {
                    why: "went quiet",
                    ..
                })
            ),
            "{h:?}"
        );
        let second = s.feeder("p").unwrap().to_string();
        assert_ne!(first, second);
        // It comes back: the pack stays with the second feeder.
        s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: Some(&second),
                left: 5,
            },
            &m,
            2.0,
            &P,
        );
        assert_eq!(s.feeder("p"), Some(second.as_str()));
    }

    #[test]
    fn a_feeder_that_dies_after_finishing_leaves_the_pack_to_a_mirror_still_lacking_it() {
        let m = live(&["a", "b", "c"]);
        let mut s = Schedule::new();
        let ask = |s: &mut Schedule, who: &str, left: u64, live: &[Candidate], t: Secs| {
            s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(who),
                    left,
                },
                live,
                t,
                &P,
            )
        };
        s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &m,
            0.0,
            &P,
        );
        let first = s.feeder("p").unwrap().to_string();
        // The feeder finishes the pack: the others relay from it and are
        // not given the origin.
        ask(&mut s, &first, 0, &m, 1.0);
        let others: Vec<Candidate> = m.iter().filter(|c| c.name != first).cloned().collect();
        let (origin, h) = ask(&mut s, &others[0].name, 3, &m, 2.0);
        assert!(!origin && h.is_none(), "{origin} {h:?}");
        // It is killed before relaying its last pieces: the first mirror
        // that still lacks bytes takes the pack over from the origin.
        // (once its last announce is older than dead_after).
        let (origin, h) = ask(&mut s, &others[0].name, 3, &others, 10.0);
        assert!(
            origin,
            "the orphaned pack must go to a mirror still lacking it"
        );
        assert!(
            matches!(
                h,
                Some(Handover::Moved {
                    why: "went quiet",
                    ..
                })
            ),
            "{h:?}"
        );
        assert_eq!(s.feeder("p"), Some(others[0].name.as_str()));
        // A mirror that lacks nothing changes nothing.
        let (origin, h) = ask(&mut s, &others[1].name, 0, &others, 11.0);
        assert!(!origin && h.is_none(), "{origin} {h:?}");
        assert_eq!(s.feeder("p"), Some(others[0].name.as_str()));
    }

    #[test]
    fn a_finished_feeder_that_is_alive_keeps_its_pack_while_it_rests() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &m,
            0.0,
            &P,
        );
        let first = s.feeder("p").unwrap().to_string();
        let other = m.iter().find(|c| c.name != first).unwrap().name.clone();
        for (who, left, t) in [(first.as_str(), 0, 1.0), (other.as_str(), 10, 60.0)] {
            s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some(who),
                    left,
                },
                &m,
                t,
                &P,
            );
        }
        // Silent about the pack for a minute, but live: it is woken, not
        // replaced, so the origin does not send the pack again.
        assert_eq!(s.feeder("p"), Some(first.as_str()));
    }

    #[test]
    fn a_feeder_that_stops_progressing_loses_its_pack() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &m,
            0.0,
            &P,
        );
        let f = s.feeder("p").unwrap().to_string();
        let mut t = 0.0;
        while t < P.stuck_after - 0.5 {
            t += 1.0;
            assert!(
                s.ask(
                    &Announce {
                        pack: "p",
                        size: 10,
                        asker: Some(&f),
                        left: 10
                    },
                    &m,
                    t,
                    &P
                )
                .0,
                "at {t}"
            );
        }
        let (_, h) = s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: Some(&f),
                left: 10,
            },
            &m,
            P.stuck_after + 1.5,
            &P,
        );
        assert!(
            matches!(
                h,
                Some(Handover::Moved {
                    why: "stopped progressing",
                    ..
                })
            ),
            "{h:?}"
        );
        assert_ne!(s.feeder("p"), Some(f.as_str()));
    }

    fn ask_as(
        s: &mut Schedule,
        pack: &str,
        size: u64,
        who: &str,
        left: u64,
        m: &[Candidate],
        t: Secs,
    ) -> (bool, Option<Handover>) {
        s.ask(
            &Announce {
                pack,
                size,
                asker: Some(who),
                left,
            },
            m,
            t,
            &P,
        )
    }

    #[test]
    fn a_feeder_that_stops_announcing_the_pack_is_quiet_though_its_bytes_still_rise() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        s.plan(&[("p", 100_000)], &m, 0.0, &P);
        let f = s.feeder("p").unwrap().to_string();
        let other = m.iter().find(|c| c.name != f).unwrap().name.clone();
        // The feeder's torrent announces elsewhere now; the origin's
        // counter for the pack still rises (an old connection, any peer):
        // once dead_after passed without its announce, it is quiet.
        let mut moved = None;
        for i in 1..=10u64 {
            let t = i as f64;
            s.progress("p", i * 1000, &m, t);
            let (_, h) = ask_as(&mut s, "p", 100_000, &other, 100_000, &m, t);
            if h.is_some() {
                moved = Some((t, h));
                break;
            }
        }
        let (t, h) = moved.expect("the silent feeder keeps its pack");
        assert!(t > P.dead_after && t <= P.dead_after + 1.0, "at {t}");
        assert!(
            matches!(
                h,
                Some(Handover::Moved {
                    why: "went quiet",
                    ..
                })
            ),
            "{h:?}"
        );
        assert_eq!(s.feeder("p"), Some(other.as_str()));
    }

    #[test]
    fn a_feeder_announcing_to_the_tracker_stays_live_when_the_agent_lost_track_of_it() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        s.plan(&[("p", 100_000)], &m, 0.0, &P);
        let f = s.feeder("p").unwrap().to_string();
        let other = m.iter().find(|c| c.name != f).unwrap().name.clone();
        // The agent's list loses the feeder (its peer announces are held
        // up), but it announces the pack to the tracker every second: it
        // keeps the pack and the origin.
        let rest = live(&[&other]);
        for i in 1..=10u64 {
            let t = i as f64;
            let (origin, h) = ask_as(&mut s, "p", 100_000, &f, 100_000 - i * 100, &rest, t);
            assert!(origin && h.is_none(), "at {t}: {h:?}");
        }
        // It is killed: nothing from it any more, and after dead_after the
        // other mirror takes over.
        let (_, h) = ask_as(
            &mut s,
            "p",
            100_000,
            &other,
            100_000,
            &rest,
            10.5 + P.dead_after,
        );
        assert!(
            matches!(
                h,
                Some(Handover::Moved {
                    why: "went quiet",
                    ..
                })
            ),
            "{h:?}"
        );
        assert_eq!(s.feeder("p"), Some(other.as_str()));
    }

    #[test]
    fn a_handover_goes_to_a_mirror_that_asks_this_tracker_about_the_pack() {
        let m = live(&["a", "b", "c"]);
        let mut s = Schedule::new();
        s.plan(&[("q", 1000), ("p", 10)], &m, 0.0, &P);
        let busy = s.feeder("q").unwrap().to_string();
        let f = s.feeder("p").unwrap().to_string();
        assert_ne!(busy, f);
        let idle = m
            .iter()
            .find(|c| c.name != busy && c.name != f)
            .unwrap()
            .name
            .clone();
        // p's feeder dies. Only the busy mirror asks this tracker about p
        // (the idle one's torrent announces elsewhere): the busy one takes
        // it, although the idle one has less to do.
        let rest = live(&[&busy, &idle]);
        let (_, h) = ask_as(&mut s, "p", 10, &busy, 10, &rest, 1.0);
        assert_eq!(
            h,
            Some(Handover::Moved {
                from: f.clone(),
                to: busy.clone(),
                why: "went quiet"
            })
        );
        // Both ask: the handover goes to the one whose announce found the
        // feeder gone, and its answer already lists the origin.
        let mut s = Schedule::new();
        s.plan(&[("q", 1000), ("p", 10)], &m, 0.0, &P);
        let _ = ask_as(&mut s, "p", 10, &idle, 10, &m, 0.5);
        let (origin, h) = ask_as(&mut s, "p", 10, &busy, 10, &rest, 1.0);
        assert!(origin);
        assert!(matches!(h, Some(Handover::Moved { to, .. }) if to == busy));
        // With nobody asking, the least loaded mirror is chosen as before.
        let mut s = Schedule::new();
        s.plan(&[("q", 1000), ("p", 10)], &m, 0.0, &P);
        let (_, h) = s.ask(
            &Announce {
                pack: "p",
                size: 10,
                asker: None,
                left: 10,
            },
            &rest,
            1.0,
            &P,
        );
        assert!(matches!(h, Some(Handover::Moved { to, .. }) if to == idle));
    }

    #[test]
    fn a_queued_pack_goes_to_a_mirror_that_asks_this_tracker_about_it() {
        let m = live(&["a", "b", "c"]);
        let mut s = Schedule::new();
        // Six big packs go out, two to each mirror (the lead, two average
        // packs, is reached); q waits.
        let big = ["p1", "p2", "p3", "p4", "p5", "p6"];
        let mut packs: Vec<(&str, u64)> = big.iter().map(|k| (*k, 1000)).collect();
        packs.push(("q", 10));
        s.plan(&packs, &m, 0.0, &P);
        assert_eq!(s.queued(), 1);
        let of = |s: &Schedule, who: &str| -> Vec<&str> {
            big.iter()
                .copied()
                .filter(|k| s.feeder(k) == Some(who))
                .collect()
        };
        let (x, y) = ("a", "b");
        assert_eq!((of(&s, x).len(), of(&s, y).len()), (2, 2));
        // Only y asks this tracker about q (x's torrent for q announces
        // elsewhere); y has no room yet.
        let _ = ask_as(&mut s, "q", 10, y, 10, &m, 0.5);
        assert_eq!(s.queued(), 1);
        // x gets room first, but does not ask: q waits for y.
        let xs = of(&s, x);
        s.progress(xs[0], 1000, &m, 1.0);
        assert_eq!(s.queued(), 1);
        let ys = of(&s, y);
        s.progress(ys[0], 1000, &m, 1.2);
        assert_eq!(s.feeder("q"), Some(y));
    }

    #[test]
    fn a_slow_feeder_loses_its_pack_to_a_mirror_with_less_to_do() {
        // (p2's feed rate, the rate at which p2's feeder takes other
        // packs, whether p2 moves)
        for (slow_rate, busy_rate, moved) in [
            (1_000u64, 0u64, true),
            (1_000, 2_000, true),
            (5_000, 0, false),
            (1_000, 8_000, false),
        ] {
            let m = live(&["a", "b", "c"]);
            let mut s = Schedule::new();
            s.plan(
                &[("p1", 10_000), ("p2", 100_000), ("p3", 1_000_000)],
                &m,
                0.0,
                &P,
            );
            assert_eq!(s.queued(), 0);
            let fast = s.feeder("p1").unwrap().to_string();
            let slow = s.feeder("p2").unwrap().to_string();
            let third = s.feeder("p3").unwrap().to_string();
            assert!(fast != slow && slow != third && third != fast);
            // p1 is fed whole in 1 s (10 kB/s, the best rate); p2 at
            // `slow_rate`. Meanwhile p3's feeder takes it at 10 kB/s too,
            // the idle mirror relays it at 8 kB/s, and p2's feeder at
            // `busy_rate`.
            s.progress("p1", 10_000, &m, 1.0);
            let mut took = None;
            for i in 2..=12u64 {
                let t = i as f64;
                let sent = i * slow_rate;
                s.progress("p2", sent, &m, t);
                s.progress("p3", i * 10_000, &m, t);
                let _ = ask_as(
                    &mut s,
                    "p3",
                    1_000_000,
                    &third,
                    1_000_000 - i * 10_000,
                    &m,
                    t,
                );
                let _ = ask_as(&mut s, "p3", 1_000_000, &fast, 1_000_000 - i * 8_000, &m, t);
                let _ = ask_as(
                    &mut s,
                    "p3",
                    1_000_000,
                    &slow,
                    1_000_000 - i * busy_rate,
                    &m,
                    t,
                );
                // The idle mirror relays p2 from the slow one, and asks
                // this tracker about it too.
                let (_, h1) = ask_as(&mut s, "p2", 100_000, &fast, 100_000 - sent, &m, t);
                let (_, h2) = ask_as(&mut s, "p2", 100_000, &slow, 100_000 - sent, &m, t);
                let h = h1.or(h2);
                if let Some(h) = h {
                    took = Some((t, h));
                    break;
                }
            }
            if !moved {
                // Half the best rate, or a feeder whose whole download
                // is fast (p2's feed only shares it): not moved.
                assert!(took.is_none(), "{slow_rate} {busy_rate}: {took:?}");
                assert_eq!(s.feeder("p2"), Some(slow.as_str()));
                continue;
            }
            // A tenth of the best rate on a mirror that takes nothing
            // faster: once it had the pack for stuck_after, the idle
            // mirror takes it over.
            let (t, h) = took.expect("the slow feeder keeps its pack");
            assert!(t > P.stuck_after && t <= P.stuck_after + 1.0, "at {t}");
            assert_eq!(
                h,
                Handover::Moved {
                    from: slow.clone(),
                    to: fast.clone(),
                    why: "fed too slowly"
                }
            );
            // The new feeder gets the origin; the slow one never gets the
            // pack back.
            let (origin, _) = ask_as(&mut s, "p2", 100_000, &fast, 90_000, &m, t + 1.0);
            assert!(origin);
            let (origin, _) = ask_as(&mut s, "p2", 100_000, &slow, 90_000, &m, t + 1.0);
            assert!(!origin);
            assert_eq!(s.feeder("p2"), Some(fast.as_str()));
            // Until the next plan, the slow mirror gets no new pack while
            // the fast one is there, though it has less to do.
            let _ = ask_as(&mut s, "q", 1000, &slow, 1000, &m, t + 2.0);
            assert_eq!(s.feeder("q"), Some(fast.as_str()));
        }
    }

    #[test]
    fn a_mirror_joining_halfway_takes_only_new_packs() {
        let m = live(&["a", "b"]);
        let mut s = Schedule::new();
        first_round(&mut s, &[("p1", 10), ("p2", 10)], &m);
        let before = (
            s.feeder("p1").unwrap().to_string(),
            s.feeder("p2").unwrap().to_string(),
        );
        let more = live(&["a", "b", "c"]);
        s.ask(
            &Announce {
                pack: "p1",
                size: 10,
                asker: Some("c"),
                left: 10,
            },
            &more,
            1.0,
            &P,
        );
        s.ask(
            &Announce {
                pack: "p2",
                size: 10,
                asker: Some("c"),
                left: 10,
            },
            &more,
            1.0,
            &P,
        );
        assert_eq!(s.feeder("p1"), Some(before.0.as_str()));
        assert_eq!(s.feeder("p2"), Some(before.1.as_str()));
        s.ask(
            &Announce {
                pack: "p3",
                size: 10,
                asker: Some("a"),
                left: 10,
            },
            &more,
            1.0,
            &P,
        );
        assert_eq!(
            s.feeder("p3"),
            Some("c"),
            "the idle newcomer takes the new pack"
        );
    }

    #[test]
    fn no_live_mirror_means_whoever_asks_is_fed() {
        let mut s = Schedule::new();
        assert!(
            s.ask(
                &Announce {
                    pack: "p",
                    size: 10,
                    asker: Some("a"),
                    left: 10
                },
                &[],
                0.0,
                &P
            )
            .0
        );
    }

    #[test]
    fn a_pack_is_restarted_once_when_done_if_it_came_over_the_wire() {
        assert_eq!(restart_when_done(true, false), RESTART_WHEN_DONE);
        assert!(!restart_when_done(true, true));
        assert!(!restart_when_done(false, false));
    }

    #[test]
    fn a_pack_that_got_nothing_is_restarted_early_once() {
        // Nothing yet, no early restart so far.
        assert_eq!(kick_due(0.4, 0.4, false, 0, 0), None);
        assert_eq!(kick_due(0.5, 0.5, false, 0, 0), Some(Kick::Early));
        // After it, the usual restart keeps its own clock.
        assert_eq!(kick_due(1.0, 1.0, true, 0, 0), None);
        assert_eq!(kick_due(1.5, 1.5, true, 0, 0), Some(Kick::Again));
        // Something arrived: only the usual restart, by both clocks.
        assert_eq!(kick_due(1.0, 5.0, false, 1, 0), None);
        assert_eq!(kick_due(5.0, 1.0, false, 1, 0), None);
        assert_eq!(kick_due(1.5, 1.5, false, 1, 0), Some(Kick::Again));
    }

    #[test]
    fn restarts_that_bring_nothing_back_off() {
        // Two fruitless restarts: the next waits 4 x 1.5 s since the last.
        assert_eq!(kick_due(10.0, 5.9, true, 1, 2), None);
        assert_eq!(kick_due(10.0, 6.0, true, 1, 2), Some(Kick::Again));
        // Capped at 24 s however many came before.
        assert_eq!(kick_interval(KICK_DOUBLINGS), 24.0);
        assert_eq!(kick_interval(40), 24.0);
        assert_eq!(kick_due(100.0, 23.9, true, 1, 40), None);
        assert_eq!(kick_due(100.0, 24.0, true, 1, 40), Some(Kick::Again));
        // Progress (the caller resets `fruitless`) brings back 1.5 s.
        assert_eq!(kick_due(1.5, 1.5, true, 1, 0), Some(Kick::Again));
    }

    #[test]
    fn pack_target_cuts_into_split_packs_within_bounds() {
        assert_eq!(pack_target(200_000_000, 32, 4 << 30), 6_250_000);
        assert_eq!(pack_target(1000, 32, 4 << 30), MIN_PACK);
        assert_eq!(pack_target(1 << 40, 32, 4 << 30), 4 << 30);
    }

    #[test]
    fn relay_peers_never_include_the_origin() {
        let v = relay_peers([("origin", 1), ("mirror", 2), ("mirror", 3)]);
        assert_eq!(v, vec![2, 3]);
    }
}
