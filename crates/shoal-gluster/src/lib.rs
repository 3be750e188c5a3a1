//! GlusterFS brick layout planning for Shoal mirror storage.
//!
//! A mirror can keep its repository tree on a GlusterFS volume. Creating such
//! a volume means listing its bricks (`HOST:PATH` directories) in one exact
//! order: `gluster volume create` cuts that list into consecutive *sets* of
//! `replica` (or `disperse`) bricks, and each set holds the copies (or the
//! erasure-coded fragments) of the same files. If two bricks of one set sit on
//! the same server, losing that server loses the data. Gluster only warns
//! about that; this crate makes it an error and computes a safe order.
//!
//! [`plan`] takes the volume type ([`VolumeType`]: replica R, optionally with
//! an arbiter, or disperse N with redundancy K), a [`Layout`] and the bricks,
//! and returns a [`Plan`]: the ordered sets. The plan can be printed as the
//! brick list ([`Plan::bricks`]), as a `gluster volume create` command
//! ([`Plan::create_command`]) or serialised with serde (JSON via the CLI).
//! When no valid layout exists the answer is a [`LayoutError`] that says why
//! and what would fix it, never a silently wrong list.
//!
//! Bricks are written `HOST:PATH`, IPv6 hosts in brackets
//! (`[fd00::1]:/data/b1`) so the split is unambiguous. The generated gluster
//! command writes them bare (`fd00::1:/data/b1`), because that is the only
//! form the gluster CLI accepts (see [`Brick::gluster_arg`]).
//!
//! # Ordering
//!
//! Hosts are sorted in natural order ([`natural_cmp`]: `annex2` before
//! `annex10`), and each host's bricks likewise. The output therefore depends
//! only on the *set* of bricks given, not on the order they were given in.
//!
//! # Set sizes
//!
//! * `replica R`: sets of R bricks, R >= 2.
//! * `replica 3 arbiter 1` and its newer spelling `replica 2 arbiter 1`: sets
//!   of 3 bricks, two data bricks and, last in each set, the arbiter brick
//!   (which holds only metadata). Gluster accepts both spellings.
//! * `disperse N redundancy K`: sets of N bricks of which any K may fail;
//!   gluster requires N >= 3, K >= 1 and 2K < N.
//!
//! # Layouts
//!
//! **`simple`** is the order gluster's documentation describes: every host's
//! first brick, then every host's second brick, and so on, cut into sets.
//! With the same number of bricks on every host, any run of `set size`
//! consecutive bricks is on distinct hosts, so this is always valid. With
//! uneven brick counts the rounds get shorter and a set can end up with two
//! bricks of one host; the planner then refuses with
//! [`LayoutError::SimpleLayoutConflict`] and suggests `chained`.
//!
//! **`chained`** spreads each host's replicas over different neighbours, so
//! that when one host fails its load falls on several others rather than on
//! one mirror-image partner. Set *k* starts at host *k* (mod H, the number of
//! hosts) and takes the next unused brick of hosts *k*, *k*+1, …, in rotation.
//! For replica 2 on `annex1..annex3`, each with `/data/a` and `/data/b`:
//!
//! ```text
//! annex1:/data/a annex2:/data/a
//! annex2:/data/b annex3:/data/a
//! annex3:/data/b annex1:/data/b
//! ```
//!
//! The rotation simply continues over further rounds while bricks remain, so
//! every brick is used, also when a host has more bricks than the replica
//! count (a widely used Puppet implementation silently drops those).
//!
//! A pure rotation can still get stuck with uneven brick counts: if it keeps
//! skipping a host that has many bricks, that host is finally left with more
//! bricks than there are sets to put them in. The chained planner prevents
//! this with one rule. Let `M` be the number of sets still to fill and `r(h)`
//! the unused bricks of host `h`. A valid completion exists exactly when
//! `r(h) <= M` for every host (each set takes at most one brick per host) and
//! the total is `S·M` (S = set size). A host with `r(h) = M` is *tight*: it
//! must give a brick to every remaining set. Each set therefore first takes
//! all tight hosts, then fills up with hosts that still have bricks, in
//! rotation order from host *k*; the bricks of the set are listed in rotation
//! order. This keeps the invariant:
//!
//! * there are at most S tight hosts, because `tight · M <= S · M`;
//! * at least S hosts have bricks left, because each has at most M and they
//!   sum to `S · M`;
//! * after the set is taken, tight hosts have `M - 1` left and every host not
//!   taken had at most `M - 1` already.
//!
//! So once the up-front checks pass (enough hosts, a brick count that is a
//! multiple of S, no host with more bricks than there are sets) the chained
//! planner never gets stuck and needs no fallback: it succeeds exactly when
//! some valid layout exists. Whenever the plain rotation is itself valid (for
//! example every host has the same number of bricks and the number of sets is
//! a multiple of H), the result is exactly that rotation: a tight host the
//! rotation skipped would be left with more bricks than sets, so the tight
//! hosts are always among the ones the rotation picks anyway.
//!
//! With an arbiter the last brick of each set is the arbiter, so `chained`
//! also rotates the arbiter role across the hosts.
//!
//! # Checks
//!
//! Besides the layout rules, [`plan`] refuses duplicate bricks (after path
//! normalisation), bricks nested inside another brick of the same host (which
//! gluster refuses too), and host names that differ only in letter case (host
//! names are case-insensitive, so those would be one server under two
//! spellings).

mod brick;

pub use brick::{natural_cmp, parse_brick, parse_bricks, Brick};

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// What kind of redundancy the volume has, which fixes the set size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum VolumeType {
    /// `replica R`, or with `arbiter: true` `replica 3 arbiter 1` /
    /// `replica 2 arbiter 1` (both are sets of 3 with the arbiter last).
    Replica {
        /// The replica count as written on the gluster command line.
        replica: u32,
        /// Whether the last brick of each set is an arbiter (`arbiter 1`).
        arbiter: bool,
    },
    /// `disperse N redundancy K`: erasure-coded sets of N bricks, any K of
    /// which may be lost.
    Disperse {
        /// Bricks per disperse set (N).
        disperse: u32,
        /// Bricks per set that may fail without losing data (K).
        redundancy: u32,
    },
}

impl VolumeType {
    /// Checks the counts against gluster's rules.
    pub fn validate(&self) -> Result<(), LayoutError> {
        match *self {
            VolumeType::Replica { replica, arbiter } => {
                if replica < 2 {
                    return Err(LayoutError::ReplicaTooSmall { replica });
                }
                if arbiter && !(replica == 2 || replica == 3) {
                    return Err(LayoutError::ArbiterNeedsReplica3 { replica });
                }
            }
            VolumeType::Disperse {
                disperse,
                redundancy,
            } => {
                if disperse < 3 {
                    return Err(LayoutError::DisperseTooSmall { disperse });
                }
                if redundancy == 0 {
                    return Err(LayoutError::RedundancyZero { disperse });
                }
                if 2 * u64::from(redundancy) >= u64::from(disperse) {
                    return Err(LayoutError::RedundancyTooLarge {
                        disperse,
                        redundancy,
                        max: (disperse - 1) / 2,
                    });
                }
            }
        }
        Ok(())
    }

    /// Bricks per set: R, 3 with an arbiter, or N.
    pub fn set_size(&self) -> usize {
        match *self {
            VolumeType::Replica { arbiter: true, .. } => 3,
            VolumeType::Replica { replica, .. } => replica as usize,
            VolumeType::Disperse { disperse, .. } => disperse as usize,
        }
    }
}

/// The type as written on the gluster command line: `replica 3`,
/// `replica 3 arbiter 1`, `disperse 6 redundancy 2`.
impl fmt::Display for VolumeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            VolumeType::Replica { replica, arbiter } => {
                write!(f, "replica {replica}")?;
                if arbiter {
                    f.write_str(" arbiter 1")?;
                }
                Ok(())
            }
            VolumeType::Disperse {
                disperse,
                redundancy,
            } => write!(f, "disperse {disperse} redundancy {redundancy}"),
        }
    }
}

/// How bricks are assigned to sets; see the crate documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// All hosts' first bricks, then all second bricks, and so on.
    #[default]
    Simple,
    /// Set k takes the next unused brick of hosts k, k+1, …: replicas of each
    /// host spread over different neighbours.
    Chained,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::Simple => "simple",
            Layout::Chained => "chained",
        })
    }
}

impl FromStr for Layout {
    type Err = LayoutError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "simple" => Ok(Layout::Simple),
            "chained" => Ok(Layout::Chained),
            other => Err(LayoutError::UnknownLayout {
                layout: other.to_string(),
            }),
        }
    }
}

/// One replica or disperse set, in gluster order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrickSet {
    /// The set's bricks; with an arbiter the last one is the arbiter.
    pub bricks: Vec<Brick>,
}

/// A planned volume: its type, layout and the ordered sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Replica/arbiter/disperse counts.
    pub volume_type: VolumeType,
    /// The layout that produced the order.
    pub layout: Layout,
    /// Bricks per set.
    pub set_size: usize,
    /// The sets, in the order `gluster volume create` must receive them.
    pub sets: Vec<BrickSet>,
}

impl Plan {
    /// All bricks in `gluster volume create` order.
    pub fn bricks(&self) -> Vec<&Brick> {
        self.sets.iter().flat_map(|s| s.bricks.iter()).collect()
    }

    /// The `gluster volume create` command for this plan, for example
    /// `gluster volume create mirror replica 3 transport tcp a:/b1 b:/b1 c:/b1`.
    ///
    /// `volume` must be a valid gluster volume name (see [`check_volume_name`]).
    /// Bricks are written as [`Brick::gluster_arg`]: IPv6 hosts without
    /// brackets, which is the only form the gluster CLI accepts.
    pub fn create_command(&self, volume: &str) -> Result<String, LayoutError> {
        check_volume_name(volume)?;
        let mut cmd = format!(
            "gluster volume create {volume} {} transport tcp",
            self.volume_type
        );
        for b in self.bricks() {
            cmd.push(' ');
            cmd.push_str(&b.gluster_arg());
        }
        Ok(cmd)
    }

    /// Things that are valid but that gluster will ask about or that are
    /// risky, one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let VolumeType::Replica {
            replica: 2,
            arbiter: false,
        } = self.volume_type
        {
            out.push(
                "replica 2 volumes are prone to split-brain and `gluster volume create` asks for confirmation; \
                 consider `replica 2 arbiter 1` or `replica 3`"
                    .to_string(),
            );
        }
        out
    }
}

/// Checks a volume name the way the gluster CLI does: letters, digits, `-`
/// and `_`, not starting with `-`, not the reserved words `all` and
/// `volume`, and shorter than 1000 characters.
pub fn check_volume_name(name: &str) -> Result<(), LayoutError> {
    let bad = |reason: String| LayoutError::InvalidVolumeName {
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("it is empty".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        return Err(bad(format!(
            "`{}` is not allowed; volume names use only letters, digits, `-` and `_`",
            c.escape_default()
        )));
    }
    if name.starts_with('-') {
        return Err(bad("it starts with `-`".into()));
    }
    if name == "all" || name == "volume" {
        return Err(bad(format!(
            "gluster reserves `{name}` for its own commands; pick another name"
        )));
    }
    if name.len() >= 1000 {
        return Err(bad(
            "gluster volume names are shorter than 1000 characters".into()
        ));
    }
    Ok(())
}

/// Why no layout was produced. Every message names the problem and a fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// No `:` in the brick.
    #[error("`{brick}` is not HOST:PATH: there is no `:` between host and path; write it like `annex1:/data/brick1`")]
    MissingColon {
        /// The brick as given.
        brick: String,
    },
    /// Nothing before the `:`.
    #[error("`{brick}` has an empty host: put the server's name or address before the `:`, like `annex1:/data/brick1`")]
    EmptyHost {
        /// The brick as given.
        brick: String,
    },
    /// An IPv6 address without brackets (`::1:/p`).
    #[error("`{brick}` looks like an IPv6 address without brackets; write it as `{suggestion}`")]
    UnbracketedIpv6 {
        /// The brick as given.
        brick: String,
        /// The same brick with the address in brackets.
        suggestion: String,
    },
    /// A host that is neither a host name nor an address.
    #[error("`{brick}`: `{host}` is not a valid host: {reason}")]
    InvalidHost {
        /// The brick as given.
        brick: String,
        /// The host part.
        host: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path that does not start with `/`.
    #[error("`{brick}`: the brick path `{path}` is relative; gluster needs an absolute path such as `/data/brick1`")]
    RelativePath {
        /// The brick as given.
        brick: String,
        /// The path part.
        path: String,
    },
    /// Any other bad path.
    #[error("`{brick}`: {reason}")]
    InvalidPath {
        /// The brick as given.
        brick: String,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A layout name other than `simple` or `chained`.
    #[error("unknown layout `{layout}`: use `simple` or `chained`")]
    UnknownLayout {
        /// The name given.
        layout: String,
    },
    /// An empty brick list.
    #[error("no bricks given: list the volume's bricks as HOST:PATH, like `annex1:/data/brick1`")]
    NoBricks,
    /// `replica 0` or `replica 1`.
    #[error("replica {replica} does not replicate anything: use replica 2 or more (replica 3, or replica 2 arbiter 1, also avoids split-brain)")]
    ReplicaTooSmall {
        /// The replica count given.
        replica: u32,
    },
    /// `arbiter 1` with a replica count other than 2 or 3.
    #[error("arbiter 1 works only with replica 3 (or its newer spelling replica 2 arbiter 1), not with replica {replica}: use one of those, or drop the arbiter")]
    ArbiterNeedsReplica3 {
        /// The replica count given.
        replica: u32,
    },
    /// `disperse` below 3.
    #[error("disperse {disperse} is too small: gluster needs at least 3 bricks per disperse set")]
    DisperseTooSmall {
        /// The disperse count given.
        disperse: u32,
    },
    /// `redundancy 0`.
    #[error("redundancy 0 means no brick of a disperse set may fail: use redundancy 1 or more (at most {} for disperse {disperse})", (.disperse - 1) / 2)]
    RedundancyZero {
        /// The disperse count given.
        disperse: u32,
    },
    /// `2K >= N`.
    #[error("redundancy {redundancy} is too large for disperse {disperse}: gluster needs 2 × redundancy < disperse; use redundancy {max} or less, or a larger disperse count")]
    RedundancyTooLarge {
        /// The disperse count given.
        disperse: u32,
        /// The redundancy given.
        redundancy: u32,
        /// The largest redundancy allowed for this disperse count.
        max: u32,
    },
    /// The same brick twice.
    #[error("brick `{brick}` is listed more than once (paths are compared after removing repeated and trailing slashes): list every brick once")]
    DuplicateBrick {
        /// The repeated brick.
        brick: String,
    },
    /// One brick inside another on the same host.
    #[error("brick `{inner}` lies inside brick `{outer}` on the same host, and gluster refuses bricks that contain each other: use sibling directories such as /data/brick1 and /data/brick2")]
    NestedBricks {
        /// The containing brick.
        outer: String,
        /// The contained brick.
        inner: String,
    },
    /// `Annex1` and `annex1`.
    #[error("hosts `{first}` and `{second}` differ only in letter case, so they are the same host: spell it the same way in every brick")]
    HostSpelling {
        /// One spelling.
        first: String,
        /// The other spelling.
        second: String,
    },
    /// Fewer hosts than bricks per set.
    #[error("{volume_type} puts each set's {set_size} bricks on {set_size} different hosts, but the bricks are on only {hosts} host(s): add bricks on more hosts or lower the count")]
    TooFewHosts {
        /// The volume type as written for gluster.
        volume_type: String,
        /// Bricks per set.
        set_size: usize,
        /// Distinct hosts among the bricks.
        hosts: usize,
    },
    /// Brick count not a multiple of the set size.
    #[error("{bricks} bricks do not divide into sets of {set_size} ({volume_type}): add {add} brick(s) or remove {remove}")]
    BrickCountNotMultiple {
        /// The volume type as written for gluster.
        volume_type: String,
        /// Bricks given.
        bricks: usize,
        /// Bricks per set.
        set_size: usize,
        /// Bricks to add to reach the next multiple.
        add: usize,
        /// Bricks to remove to reach the previous multiple.
        remove: usize,
    },
    /// A host with more bricks than there are sets.
    #[error("host `{host}` has {count} bricks but the volume has only {sets} set(s) of {set_size}, and a set may hold only one brick per host, so some set would hold two bricks of `{host}`: remove {excess} brick(s) from `{host}` or add bricks on other hosts")]
    HostHasTooManyBricks {
        /// The host.
        host: String,
        /// Its brick count.
        count: usize,
        /// Number of sets in the volume.
        sets: usize,
        /// Bricks per set.
        set_size: usize,
        /// How many of its bricks are too many.
        excess: usize,
    },
    /// The simple order puts two bricks of one host into a set.
    #[error("the simple layout puts `{first}` and `{second}` (both on host `{host}`) into set {set} because the hosts have different numbers of bricks: use the chained layout, which balances uneven hosts, or give every host the same number of bricks")]
    SimpleLayoutConflict {
        /// 1-based set number.
        set: usize,
        /// The host holding both bricks.
        host: String,
        /// The first of the two bricks.
        first: String,
        /// The second of the two bricks.
        second: String,
    },
    /// A volume name gluster would refuse.
    #[error("`{name}` is not a valid gluster volume name: {reason}")]
    InvalidVolumeName {
        /// The name given.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// One host and its bricks in natural order.
struct HostBricks {
    host: String,
    bricks: Vec<Brick>,
}

/// Plans the brick order for a volume; see the crate documentation.
pub fn plan(
    volume_type: VolumeType,
    layout: Layout,
    bricks: &[Brick],
) -> Result<Plan, LayoutError> {
    volume_type.validate()?;
    if bricks.is_empty() {
        return Err(LayoutError::NoBricks);
    }
    let hosts = group_by_host(bricks)?;
    let set_size = volume_type.set_size();
    let total = bricks.len();
    if hosts.len() < set_size {
        return Err(LayoutError::TooFewHosts {
            volume_type: volume_type.to_string(),
            set_size,
            hosts: hosts.len(),
        });
    }
    // (Not `is_multiple_of`: the workspace's rust-version is 1.80.)
    let remove = total % set_size;
    if remove != 0 {
        return Err(LayoutError::BrickCountNotMultiple {
            volume_type: volume_type.to_string(),
            bricks: total,
            set_size,
            add: set_size - remove,
            remove,
        });
    }
    let sets = total / set_size;
    // The first host (in natural order) among those with the most bricks.
    let busiest = hosts
        .iter()
        .rev()
        .max_by_key(|h| h.bricks.len())
        .expect("at least one host");
    if busiest.bricks.len() > sets {
        return Err(LayoutError::HostHasTooManyBricks {
            host: busiest.host.clone(),
            count: busiest.bricks.len(),
            sets,
            set_size,
            excess: busiest.bricks.len() - sets,
        });
    }
    let sets = match layout {
        Layout::Simple => simple(&hosts, set_size)?,
        Layout::Chained => chained(&hosts, set_size, sets),
    };
    Ok(Plan {
        volume_type,
        layout,
        set_size,
        sets,
    })
}

/// Groups bricks by host, sorts hosts and bricks naturally, and rejects
/// duplicates, nested bricks and case-variant host spellings.
fn group_by_host(bricks: &[Brick]) -> Result<Vec<HostBricks>, LayoutError> {
    let mut spelling: HashMap<String, &str> = HashMap::new();
    let mut by_host: HashMap<String, Vec<Brick>> = HashMap::new();
    for b in bricks {
        let key = b.host_key();
        match spelling.get(&key) {
            Some(&first) if first != b.host() => {
                let (first, second) = if natural_cmp(first, b.host()).is_le() {
                    (first, b.host())
                } else {
                    (b.host(), first)
                };
                return Err(LayoutError::HostSpelling {
                    first: first.to_string(),
                    second: second.to_string(),
                });
            }
            Some(_) => {}
            None => {
                spelling.insert(key.clone(), b.host());
            }
        }
        by_host.entry(key).or_default().push(b.clone());
    }
    let mut hosts: Vec<HostBricks> = by_host
        .into_values()
        .map(|mut bricks| {
            bricks.sort_by(|a, b| natural_cmp(a.path(), b.path()));
            HostBricks {
                host: bricks[0].host().to_string(),
                bricks,
            }
        })
        .collect();
    hosts.sort_by(|a, b| natural_cmp(&a.host, &b.host));
    for h in &hosts {
        for pair in h.bricks.windows(2) {
            if pair[0].path() == pair[1].path() {
                return Err(LayoutError::DuplicateBrick {
                    brick: pair[0].to_string(),
                });
            }
        }
        let paths: HashSet<&str> = h.bricks.iter().map(|b| b.path()).collect();
        for b in &h.bricks {
            let mut p = b.path();
            while let Some(idx) = p.rfind('/').filter(|&i| i > 0) {
                p = &p[..idx];
                if paths.contains(p) {
                    return Err(LayoutError::NestedBricks {
                        outer: format!("{}:{p}", b.host_display()),
                        inner: b.to_string(),
                    });
                }
            }
        }
    }
    Ok(hosts)
}

/// Round-robin over hosts, one brick each per round, cut into sets.
fn simple(hosts: &[HostBricks], set_size: usize) -> Result<Vec<BrickSet>, LayoutError> {
    let rounds = hosts.iter().map(|h| h.bricks.len()).max().unwrap_or(0);
    let order: Vec<&Brick> = (0..rounds)
        .flat_map(|r| hosts.iter().filter_map(move |h| h.bricks.get(r)))
        .collect();
    let mut sets = Vec::with_capacity(order.len() / set_size);
    for (n, chunk) in order.chunks(set_size).enumerate() {
        for (i, a) in chunk.iter().enumerate() {
            if let Some(b) = chunk[i + 1..].iter().find(|b| b.host_key() == a.host_key()) {
                return Err(LayoutError::SimpleLayoutConflict {
                    set: n + 1,
                    host: a.host_display(),
                    first: a.to_string(),
                    second: b.to_string(),
                });
            }
        }
        sets.push(BrickSet {
            bricks: chunk.iter().map(|b| (*b).clone()).collect(),
        });
    }
    Ok(sets)
}

/// The rotation with the "tight hosts first" rule; see the crate docs for why
/// it never gets stuck once [`plan`]'s checks have passed.
fn chained(hosts: &[HostBricks], set_size: usize, sets: usize) -> Vec<BrickSet> {
    let h = hosts.len();
    let mut next = vec![0usize; h];
    let mut left: Vec<usize> = hosts.iter().map(|x| x.bricks.len()).collect();
    let mut out = Vec::with_capacity(sets);
    for k in 0..sets {
        let sets_left = sets - k;
        let rotation: Vec<usize> = (0..h).map(|i| (k + i) % h).collect();
        let mut chosen = vec![false; h];
        let mut taken = 0;
        for &i in &rotation {
            if left[i] == sets_left {
                chosen[i] = true;
                taken += 1;
            }
        }
        for &i in &rotation {
            if taken == set_size {
                break;
            }
            if !chosen[i] && left[i] > 0 {
                chosen[i] = true;
                taken += 1;
            }
        }
        assert_eq!(taken, set_size, "chained layout invariant broken");
        let bricks = rotation
            .iter()
            .filter(|&&i| chosen[i])
            .map(|&i| {
                let b = hosts[i].bricks[next[i]].clone();
                next[i] += 1;
                left[i] -= 1;
                b
            })
            .collect();
        out.push(BrickSet { bricks });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bricks(list: &[&str]) -> Vec<Brick> {
        parse_bricks(list).unwrap()
    }

    fn sets(p: &Plan) -> Vec<Vec<String>> {
        p.sets
            .iter()
            .map(|s| s.bricks.iter().map(|b| b.to_string()).collect())
            .collect()
    }

    const R2: VolumeType = VolumeType::Replica {
        replica: 2,
        arbiter: false,
    };
    const R3: VolumeType = VolumeType::Replica {
        replica: 3,
        arbiter: false,
    };

    fn three_by_two() -> Vec<Brick> {
        bricks(&[
            "annex3:/data/b",
            "annex1:/data/a",
            "annex2:/data/b",
            "annex1:/data/b",
            "annex3:/data/a",
            "annex2:/data/a",
        ])
    }

    #[test]
    fn chained_example_from_the_issue() {
        let p = plan(R2, Layout::Chained, &three_by_two()).unwrap();
        assert_eq!(
            sets(&p),
            [
                ["annex1:/data/a", "annex2:/data/a"],
                ["annex2:/data/b", "annex3:/data/a"],
                ["annex3:/data/b", "annex1:/data/b"],
            ]
        );
    }

    #[test]
    fn simple_is_round_robin_in_natural_order() {
        let p = plan(R2, Layout::Simple, &three_by_two()).unwrap();
        assert_eq!(
            sets(&p),
            [
                ["annex1:/data/a", "annex2:/data/a"],
                ["annex3:/data/a", "annex1:/data/b"],
                ["annex2:/data/b", "annex3:/data/b"],
            ]
        );
        let b = bricks(&[
            "annex10:/d/b2",
            "annex2:/d/b10",
            "annex2:/d/b2",
            "annex10:/d/b10",
        ]);
        let p = plan(R2, Layout::Simple, &b).unwrap();
        assert_eq!(
            sets(&p),
            [
                ["annex2:/d/b2", "annex10:/d/b2"],
                ["annex2:/d/b10", "annex10:/d/b10"]
            ]
        );
    }

    #[test]
    fn chained_uses_every_brick_when_hosts_have_more_bricks_than_replicas() {
        // 3 hosts with 4 bricks each, replica 2: 6 sets, rotation continues.
        let list: Vec<String> = (1..=3)
            .flat_map(|h| (1..=4).map(move |b| format!("h{h}:/b{b}")))
            .collect();
        let p = plan(R2, Layout::Chained, &parse_bricks(&list).unwrap()).unwrap();
        assert_eq!(
            sets(&p),
            [
                ["h1:/b1", "h2:/b1"],
                ["h2:/b2", "h3:/b1"],
                ["h3:/b2", "h1:/b2"],
                ["h1:/b3", "h2:/b3"],
                ["h2:/b4", "h3:/b3"],
                ["h3:/b4", "h1:/b4"],
            ]
        );
    }

    #[test]
    fn chained_takes_tight_hosts_first_with_uneven_counts() {
        // 4 hosts with 1 brick each, replica 2: a pure rotation would use h2
        // twice; the second set must be h3, h4.
        let b = bricks(&["h1:/a", "h2:/a", "h3:/a", "h4:/a"]);
        let p = plan(R2, Layout::Chained, &b).unwrap();
        assert_eq!(sets(&p), [["h1:/a", "h2:/a"], ["h3:/a", "h4:/a"]]);

        // h1 has 3 bricks, the others 1: h1 must be in every set.
        let b = bricks(&["h1:/a", "h1:/b", "h1:/c", "h2:/a", "h3:/a", "h4:/a"]);
        let p = plan(R2, Layout::Chained, &b).unwrap();
        assert_eq!(
            sets(&p),
            [["h1:/a", "h2:/a"], ["h3:/a", "h1:/b"], ["h4:/a", "h1:/c"]]
        );
    }

    #[test]
    fn simple_refuses_uneven_counts_that_collide_and_chained_solves_them() {
        let b = bricks(&["h1:/a", "h1:/b", "h1:/c", "h2:/a", "h3:/a", "h4:/a"]);
        let e = plan(R2, Layout::Simple, &b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the simple layout puts `h1:/b` and `h1:/c` (both on host `h1`) into set 3 because the hosts \
             have different numbers of bricks: use the chained layout, which balances uneven hosts, \
             or give every host the same number of bricks"
        );
        assert!(plan(R2, Layout::Chained, &b).is_ok());
    }

    #[test]
    fn simple_accepts_uneven_counts_that_do_not_collide() {
        let b = bricks(&["h1:/a", "h1:/b", "h2:/a", "h3:/a"]);
        let p = plan(R2, Layout::Simple, &b).unwrap();
        assert_eq!(sets(&p), [["h1:/a", "h2:/a"], ["h3:/a", "h1:/b"]]);
    }

    #[test]
    fn arbiter_sets_are_three_with_the_arbiter_last() {
        for replica in [2, 3] {
            let t = VolumeType::Replica {
                replica,
                arbiter: true,
            };
            assert_eq!(t.set_size(), 3);
            let list: Vec<String> = (1..=4)
                .flat_map(|h| (1..=3).map(move |b| format!("s{h}:/bricks/{b}")))
                .collect();
            let p = plan(t, Layout::Chained, &parse_bricks(&list).unwrap()).unwrap();
            assert_eq!(p.sets.len(), 4);
            assert_eq!(
                sets(&p)[0],
                ["s1:/bricks/1", "s2:/bricks/1", "s3:/bricks/1"]
            );
            assert_eq!(
                sets(&p)[3],
                ["s4:/bricks/3", "s1:/bricks/3", "s2:/bricks/3"]
            );
            let cmd = p.create_command("mirror").unwrap();
            assert!(
                cmd.starts_with(&format!(
                    "gluster volume create mirror replica {replica} arbiter 1 transport tcp s1:/bricks/1 s2:/bricks/1 s3:/bricks/1 "
                )),
                "{cmd}"
            );
        }
    }

    #[test]
    fn disperse_sets() {
        let t = VolumeType::Disperse {
            disperse: 3,
            redundancy: 1,
        };
        let b = bricks(&["n1:/b", "n2:/b", "n3:/b", "n4:/b", "n5:/b", "n6:/b"]);
        let p = plan(t, Layout::Simple, &b).unwrap();
        assert_eq!(
            sets(&p),
            [["n1:/b", "n2:/b", "n3:/b"], ["n4:/b", "n5:/b", "n6:/b"]]
        );
        assert_eq!(
            p.create_command("vol_1").unwrap(),
            "gluster volume create vol_1 disperse 3 redundancy 1 transport tcp n1:/b n2:/b n3:/b n4:/b n5:/b n6:/b"
        );
        assert!(p.warnings().is_empty());
    }

    #[test]
    fn create_command_and_warnings() {
        let p = plan(
            R3,
            Layout::Simple,
            &bricks(&["[fd00::1]:/b", "a:/b", "b:/b"]),
        )
        .unwrap();
        assert_eq!(
            p.create_command("mirror").unwrap(),
            "gluster volume create mirror replica 3 transport tcp a:/b b:/b fd00::1:/b"
        );
        assert!(p.warnings().is_empty());
        let p = plan(R2, Layout::Simple, &bricks(&["a:/b", "b:/b"])).unwrap();
        assert_eq!(p.warnings().len(), 1);
        assert!(p.warnings()[0].contains("split-brain"));
    }

    #[test]
    fn volume_names() {
        check_volume_name("shoal-mirror_01").unwrap();
        let p = plan(R2, Layout::Simple, &bricks(&["a:/b", "b:/b"])).unwrap();
        for (name, want) in [
            ("", "it is empty"),
            ("my vol", "` ` is not allowed"),
            ("a/b", "`/` is not allowed"),
            ("-x", "starts with `-`"),
            ("all", "gluster reserves `all`"),
            ("volume", "gluster reserves `volume`"),
        ] {
            let e = p.create_command(name).unwrap_err().to_string();
            assert!(e.contains(want), "{name:?}: {e}");
            assert!(e.contains("is not a valid gluster volume name"), "{e}");
        }
        let e = check_volume_name(&"v".repeat(1000)).unwrap_err();
        assert!(e.to_string().contains("shorter than 1000"));
    }

    #[test]
    fn json_carries_the_sets() {
        let p = plan(R2, Layout::Chained, &three_by_two()).unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "volume_type": {"type": "replica", "replica": 2, "arbiter": false},
                "layout": "chained",
                "set_size": 2,
                "sets": [
                    {"bricks": ["annex1:/data/a", "annex2:/data/a"]},
                    {"bricks": ["annex2:/data/b", "annex3:/data/a"]},
                    {"bricks": ["annex3:/data/b", "annex1:/data/b"]},
                ]
            })
        );
        let back: Plan = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
        let d = VolumeType::Disperse {
            disperse: 6,
            redundancy: 2,
        };
        assert_eq!(
            serde_json::to_value(d).unwrap(),
            serde_json::json!({"type": "disperse", "disperse": 6, "redundancy": 2})
        );
    }

    #[test]
    fn layout_names() {
        assert_eq!("simple".parse::<Layout>().unwrap(), Layout::Simple);
        assert_eq!("chained".parse::<Layout>().unwrap(), Layout::Chained);
        assert_eq!(Layout::Chained.to_string(), "chained");
        assert_eq!(
            "ring".parse::<Layout>().unwrap_err().to_string(),
            "unknown layout `ring`: use `simple` or `chained`"
        );
    }

    fn err(t: VolumeType, list: &[&str]) -> String {
        plan(t, Layout::Chained, &bricks(list))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn volume_type_errors() {
        let b = ["a:/b", "b:/b", "c:/b"];
        let r = |replica, arbiter| VolumeType::Replica { replica, arbiter };
        let d = |disperse, redundancy| VolumeType::Disperse {
            disperse,
            redundancy,
        };
        assert_eq!(
            err(r(1, false), &b),
            "replica 1 does not replicate anything: use replica 2 or more (replica 3, or replica 2 arbiter 1, also avoids split-brain)"
        );
        assert_eq!(
            err(r(4, true), &b),
            "arbiter 1 works only with replica 3 (or its newer spelling replica 2 arbiter 1), not with replica 4: use one of those, or drop the arbiter"
        );
        assert_eq!(
            err(d(2, 1), &b),
            "disperse 2 is too small: gluster needs at least 3 bricks per disperse set"
        );
        assert_eq!(
            err(d(5, 0), &b),
            "redundancy 0 means no brick of a disperse set may fail: use redundancy 1 or more (at most 2 for disperse 5)"
        );
        assert_eq!(
            err(d(4, 2), &b),
            "redundancy 2 is too large for disperse 4: gluster needs 2 × redundancy < disperse; use redundancy 1 or less, or a larger disperse count"
        );
        assert!(d(5, 2).validate().is_ok());
        assert!(d(6, 3).validate().is_err());
    }

    #[test]
    fn layout_errors() {
        assert_eq!(
            plan(R2, Layout::Simple, &[]).unwrap_err().to_string(),
            "no bricks given: list the volume's bricks as HOST:PATH, like `annex1:/data/brick1`"
        );
        assert_eq!(
            err(R3, &["a:/b", "b:/b", "a:/c", "b:/c"]),
            "replica 3 puts each set's 3 bricks on 3 different hosts, but the bricks are on only 2 host(s): add bricks on more hosts or lower the count"
        );
        assert_eq!(
            err(R2, &["a:/b", "b:/b", "c:/b"]),
            "3 bricks do not divide into sets of 2 (replica 2): add 1 brick(s) or remove 1"
        );
        assert_eq!(
            err(R2, &["a:/1", "a:/2", "a:/3", "b:/1"]),
            "host `a` has 3 bricks but the volume has only 2 set(s) of 2, and a set may hold only one brick per host, so some set would hold two bricks of `a`: remove 1 brick(s) from `a` or add bricks on other hosts"
        );
        assert_eq!(
            err(R2, &["a:/data/b", "b:/b", "a:/data//b/"]),
            "brick `a:/data/b` is listed more than once (paths are compared after removing repeated and trailing slashes): list every brick once"
        );
        assert_eq!(
            err(R2, &["a:/data", "b:/b", "a:/data/b", "c:/b"]),
            "brick `a:/data/b` lies inside brick `a:/data` on the same host, and gluster refuses bricks that contain each other: use sibling directories such as /data/brick1 and /data/brick2"
        );
        // Same path on different hosts is fine; a name prefix is not nesting.
        assert!(plan(
            R2,
            Layout::Simple,
            &bricks(&["a:/data", "b:/data", "a:/data2", "b:/data2"])
        )
        .is_ok());
        assert_eq!(
            err(R2, &["annex1:/b", "Annex1:/c", "b:/b", "b:/c"]),
            "hosts `Annex1` and `annex1` differ only in letter case, so they are the same host: spell it the same way in every brick"
        );
    }
}
