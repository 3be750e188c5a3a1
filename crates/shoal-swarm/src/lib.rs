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
//! - a feeder that stops announcing the pack ([`Params::dead_after`]) or
//!   stops progressing ([`Params::stuck_after`]) loses the pack to the
//!   next mirror, so nothing waits on a killed or wedged mirror;
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
}

impl Params {
    /// The schedule for a tracker announce interval of `interval` seconds:
    /// dead after three missed announces, stuck after six.
    pub fn for_interval(interval: Secs) -> Params {
        let i = interval.max(0.5);
        Params {
            dead_after: 3.0 * i + 1.0,
            stuck_after: (6.0 * i).max(5.0),
        }
    }
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
    /// The origin's upload counter for the pack when this feeder took it
    /// (what an earlier feeder got does not count as progress).
    sent_before: u64,
}

/// Why a pack changed feeder (for logs and counters).
#[derive(Debug, Clone, PartialEq)]
pub enum Handover {
    /// The pack got its first feeder.
    Assigned { to: String },
    /// The old feeder went quiet or stopped progressing.
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
    pub fn plan(&mut self, packs: &[(&str, u64)], live: &[Candidate], now: Secs, _p: &Params) {
        let mut added = 0u64;
        let mut n = 0u64;
        for (k, size) in packs {
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
    /// (per weight) first.
    fn fill(&mut self, live: &[Candidate], now: Secs) {
        if self.pending.is_empty() || live.is_empty() {
            return;
        }
        let mut load = self.load();
        while let Some((pack, size)) = self.pending.first().cloned() {
            let best = live
                .iter()
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
                }
            }
        }
        self.fill(live, now);
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
        self.note(pack, asker, left, now);
        self.fill(live, now);
        if self.pending.iter().any(|(k, _)| k == pack) {
            // Queued: it gets a feeder when one has room; outsiders are
            // served at once.
            return (asker.is_none(), None);
        }
        let handover = self.review(pack, size, live, now, p);
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
        }
    }

    /// Chooses or keeps the feeder of `pack`.
    fn review(
        &mut self,
        pack: &str,
        size: u64,
        live: &[Candidate],
        now: Secs,
        p: &Params,
    ) -> Option<Handover> {
        if let Some(Some(f)) = self.packs.get(pack).map(|st| st.feeder.as_ref()) {
            let alive = live.iter().any(|c| c.name == f.name);
            let fine = f.left == 0
                || (alive
                    && now - f.heard <= p.dead_after
                    && (now - f.progressed <= p.stuck_after || now - f.since <= p.stuck_after));
            if fine {
                return None; // the common case: no load map needed
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
            let alive = live.iter().any(|c| c.name == f.name);
            if f.left == 0 {
                return None; // fed: nothing more to decide
            } else if !alive || now - f.heard > p.dead_after {
                why = Some("went quiet");
            } else if now - f.progressed > p.stuck_after && now - f.since > p.stuck_after {
                why = Some("stopped progressing");
            } else {
                return None;
            }
        }
        let old = st.feeder.take();
        if let Some(o) = &old {
            st.lost.insert(o.name.clone());
        }
        let fresh: Vec<&Candidate> = live.iter().filter(|c| !st.lost.contains(&c.name)).collect();
        let pool: Vec<&Candidate> = if fresh.is_empty() {
            live.iter().collect()
        } else {
            fresh
        };
        let best = pool.into_iter().min_by(|a, b| by_load(pack, &load, a, b))?;
        st.feeder = Some(Feeder {
            name: best.name.clone(),
            since: now,
            heard: now,
            progressed: now,
            left: size,
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

    const P: Params = Params {
        dead_after: 4.0,
        stuck_after: 6.0,
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
                asker: Some("x"),
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
