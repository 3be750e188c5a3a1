//! Applying a generation to a mirror's live tree: the consistency order.
//!
//! This module is the one place that decides in which order a mirror
//! changes what HTTP clients see (after ftpsync's two stages and how dnf
//! reads repodata):
//!
//! 1. new and changed **content** files (packages, by-hash files, ...);
//! 2. **index** files, ranked by profile:
//!    - debian: `dists/**/by-hash/**`, then the other files under `dists/`
//!      (Packages*, Sources*, Contents*, Translation*, i18n/*, ...), then
//!      `Release`/`Release.gpg`, and `InRelease` last;
//!    - rpm: `repodata/*` except `repomd.xml*`, then `repomd.xml` with its
//!      `.asc`/`.key` last;
//!    - generic: no index files;
//! 3. **deletions**, only after the grace period ([`Pending`]);
//! 4. the **trace file** `project/trace/<name>` (ftpsync format), with
//!    `_hierarchy` and `_traces`.
//!
//! Every file is replaced by link-or-copy to a temp name and `rename(2)`,
//! so no client ever reads a partial file, and a crash leaves a prefix of
//! this order. Applying is idempotent: a restart converges by running the
//! same plan again.

use crate::fsutil;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shoal_config::Profile;
use shoal_manifest::{EntryRef, KindRef, Manifest, Sha256Hash};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where an entry goes in the order: 0 is content, higher is later.
pub fn rank(profile: Profile, path: &str) -> u8 {
    let base = path.rsplit('/').next().unwrap_or(path);
    match profile {
        Profile::Generic => 0,
        Profile::Debian => {
            let in_dists = path.starts_with("dists/") || path.contains("/dists/");
            if !in_dists {
                return 0;
            }
            if path.contains("/by-hash/") {
                1
            } else if base == "InRelease" {
                4
            } else if base == "Release" || base == "Release.gpg" {
                3
            } else {
                2
            }
        }
        Profile::Rpm => {
            let in_repodata = path.starts_with("repodata/") || path.contains("/repodata/");
            if !in_repodata {
                0
            } else if base.starts_with("repomd.xml") {
                2
            } else {
                1
            }
        }
    }
}

/// What a mirror must do to its live tree for one generation.
#[derive(Debug, Default)]
pub struct Plan<'a> {
    /// Entries to place, in apply order.
    pub upserts: Vec<EntryRef<'a>>,
    /// Paths that the new generation no longer has.
    pub removals: Vec<String>,
}

impl Plan<'_> {
    /// Contents (sha256) the plan needs from the pack store.
    pub fn needed_contents(&self) -> HashSet<Sha256Hash> {
        self.upserts
            .iter()
            .filter_map(|e| e.file())
            .filter(|(size, _, _)| *size > 0)
            .map(|(_, h, _)| *h)
            .collect()
    }
}

/// Puts the upserts in apply order. Paths are unique, so an unstable sort
/// gives the one order, without a stable sort's scratch copy of the list.
fn sort_plan(profile: Profile, upserts: &mut [EntryRef<'_>]) {
    upserts.sort_unstable_by(|a, b| {
        (rank(profile, a.path()), a.path().as_bytes())
            .cmp(&(rank(profile, b.path()), b.path().as_bytes()))
    });
}

/// Whether `m` has an entry at `path` (a binary search, not a set of a
/// million paths per call).
fn names(m: &Manifest, path: &str) -> bool {
    m.get(path).is_some()
}

/// The plan from the generation the live tree holds (`old`) to `new`:
/// cost grows with the size of the change, not of the tree (chunks the two
/// generations share are skipped, see [`Manifest::changes`]).
pub fn plan_from<'a>(profile: Profile, old: Option<&'a Manifest>, new: &'a Manifest) -> Plan<'a> {
    let Some(old) = old else {
        let mut upserts = Vec::with_capacity(new.len());
        upserts.extend(new.entries());
        sort_plan(profile, &mut upserts);
        return Plan {
            upserts,
            removals: Vec::new(),
        };
    };
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    for c in new.changes(old) {
        match c {
            shoal_manifest::Change::Upsert(e) => upserts.push(e),
            shoal_manifest::Change::Removal(e) => removals.push(e.path().to_owned()),
        }
    }
    sort_plan(profile, &mut upserts);
    Plan { upserts, removals }
}

/// The plan that brings whatever is on disk to `new`, by stat-ing every
/// entry (used at start-up, after a crash, or when the tree was touched).
pub fn plan_full<'a>(profile: Profile, live: &Path, new: &'a Manifest) -> Plan<'a> {
    let mut upserts: Vec<EntryRef> = new.entries().filter(|e| !live_matches(live, *e)).collect();
    sort_plan(profile, &mut upserts);
    Plan {
        upserts,
        removals: Vec::new(),
    }
}

/// True if the live tree already holds `e` (kind, size, mode, mtime).
pub fn live_matches(live: &Path, e: EntryRef<'_>) -> bool {
    let p = live.join(e.path());
    let Ok(m) = std::fs::symlink_metadata(&p) else {
        return false;
    };
    match e.kind() {
        KindRef::File { size, .. } => {
            m.file_type().is_file()
                && m.len() == size
                && m.mode() & 0o7777 == e.mode() & 0o7777
                && fsutil::mtime_ns(&m) == e.mtime_ns()
        }
        KindRef::Symlink { target } => {
            m.file_type().is_symlink()
                && std::fs::read_link(&p)
                    .map(|t| t.as_os_str() == std::ffi::OsStr::new(target))
                    .unwrap_or(false)
        }
    }
}

/// Files and symlinks in the live tree that `current` does not name and
/// that are not already waiting for removal, apart from trace files:
/// what an apply that stopped part-way (and was then superseded) left.
pub fn orphans(live: &Path, current: &Manifest, pending: &Pending) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![(live.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fsutil::explain_io(e, &dir)),
        };
        for e in rd {
            let e = e.map_err(|e| fsutil::explain_io(e, &dir))?;
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let relp = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let ft = e
                .file_type()
                .map_err(|x| fsutil::explain_io(x, &e.path()))?;
            if ft.is_dir() {
                if relp != TRACE_DIR {
                    stack.push((e.path(), relp));
                }
            } else if current.get(&relp).is_none() && !pending.due.contains_key(&relp) {
                out.push(relp);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where trace files live in a live tree (never part of a generation).
pub const TRACE_DIR: &str = "project/trace";

/// Counters from one apply.
#[derive(Debug, Default, Clone, Copy)]
pub struct Applied {
    pub linked: u64,
    pub copied: u64,
    pub symlinks: u64,
}

/// Places every upsert of `plan` in order. `store` gives the pack-store
/// path of a content. Stops at the first error, leaving a prefix of the
/// order applied (which clients cannot observe as broken).
pub fn execute(
    plan: &Plan<'_>,
    new: &Manifest,
    live: &Path,
    store: &dyn Fn(&Sha256Hash) -> Option<PathBuf>,
) -> Result<Applied> {
    let obsolete = |p: &str| new.get(p).is_none();
    let mut out = Applied::default();
    for e in &plan.upserts {
        let dst = fsutil::prepare_parent(live, e.path(), &obsolete)?;
        if std::fs::symlink_metadata(&dst)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            anyhow::bail!(
                "{}: is a directory in the live tree but generation {} has a file there; \
                 remove the directory by hand",
                dst.display(),
                new.header.generation
            );
        }
        match e.kind() {
            KindRef::File { size: 0, .. } => fsutil::place_empty(&dst, e.mode(), e.mtime_ns())?,
            KindRef::File { sha256, .. } => {
                let src = store(sha256).with_context(|| {
                    format!(
                        "content {sha256} of '{}' is not in the pack store",
                        e.path()
                    )
                })?;
                if fsutil::place_file(&src, &dst, e.mode(), e.mtime_ns())? {
                    out.linked += 1;
                } else {
                    out.copied += 1;
                }
            }
            KindRef::Symlink { target } => {
                fsutil::place_symlink(target, &dst)?;
                out.symlinks += 1;
            }
        }
    }
    Ok(out)
}

/// Deletions waiting for their grace period, persisted in the state dir.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Pending {
    /// Path → Unix time after which it may be removed.
    pub due: std::collections::BTreeMap<String, i64>,
}

impl Pending {
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        fsutil::atomic_write(path, &serde_json::to_vec(self)?)
    }

    /// Schedules removals; a path that comes back is unscheduled.
    pub fn schedule(&mut self, removals: &[String], current: &Manifest, due: i64) {
        for r in removals {
            self.due.entry(r.clone()).or_insert(due);
        }
        self.due.retain(|p, _| !names(current, p));
    }

    /// Whether a removal is due at `now`.
    pub fn has_due(&self, now: i64) -> bool {
        self.due.values().any(|t| *t <= now)
    }

    /// Removes what is due and still absent from `current`. Returns how many.
    pub fn run(&mut self, live: &Path, current: &Manifest, now: i64) -> Result<usize> {
        let due: Vec<String> = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(p, _)| p.clone())
            .collect();
        let mut n = 0;
        for p in due {
            if !names(current, &p) && shoal_manifest::paths::check(&p).is_ok() {
                fsutil::remove_and_prune(live, &p)?;
                n += 1;
            }
            self.due.remove(&p);
        }
        Ok(n)
    }
}

/// What the ftpsync-format trace file reports about one sync.
pub struct Trace<'a> {
    /// The agent's name: the trace file's name and `Running on host`.
    pub name: &'a str,
    pub generation: u64,
    /// Unix time the sync started (the manifest fetch).
    pub started: i64,
    /// URL of the agent whose signed head this sync followed.
    pub upstream: &'a str,
    /// Bytes received over BitTorrent during this sync.
    pub bytes_received: u64,
    /// Seconds fetching the manifest, downloading and verifying packs
    /// (ftpsync's stage 1: content).
    pub stage1_seconds: f64,
    /// Seconds applying the generation to the live tree (ftpsync's stage 2:
    /// indices and the switch-over).
    pub stage2_seconds: f64,
    pub info: &'a shoal_config::TraceInfo,
    pub manifest: &'a Manifest,
    pub profile: Profile,
}

/// The trace files ftpsync keeps next to each mirror's trace.
pub const TRACE_MASTER: &str = "project/trace/master";
pub const TRACE_HIERARCHY: &str = "project/trace/_hierarchy";
pub const TRACE_HIERARCHY_MIRROR: &str = "project/trace/_hierarchy.mirror";
pub const TRACE_LIST: &str = "project/trace/_traces";

/// The host an upstream URL names (`Upstream-mirror` is a host, as in
/// ftpsync's `RSYNC_HOST`).
pub fn upstream_host(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The architectures a generation carries, as ftpsync finds them: debian:
/// `binary-<arch>/Packages*` and `source/Sources*` under `dists/`; rpm:
/// known architecture names in the path of a `repodata/repomd.xml`.
pub fn architectures(profile: Profile, m: &Manifest) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    // Debian's indices are all under dists/ (a small part of the tree);
    // a generic tree has none.
    let candidates: Box<dyn Iterator<Item = EntryRef>> = match profile {
        Profile::Debian => Box::new(m.entries_under("dists")),
        Profile::Rpm => Box::new(m.entries()),
        Profile::Generic => Box::new(std::iter::empty()),
    };
    for e in candidates {
        let p = e.path();
        let segs: Vec<&str> = p.split('/').collect();
        let base = segs.last().copied().unwrap_or("");
        match profile {
            Profile::Debian => {
                if segs.first() != Some(&"dists") || segs.len() < 3 {
                    continue;
                }
                let parent = segs[segs.len() - 2];
                if let Some(a) = parent.strip_prefix("binary-") {
                    if base.starts_with("Packages") && !a.is_empty() {
                        out.insert(a.to_string());
                    }
                } else if parent == "source" && base.starts_with("Sources") {
                    out.insert("source".to_string());
                }
            }
            Profile::Rpm => {
                if p.ends_with("repodata/repomd.xml") {
                    const KNOWN: &[&str] = &[
                        "x86_64", "aarch64", "ppc64le", "s390x", "i686", "i386", "armhfp",
                        "noarch", "source", "SRPMS",
                    ];
                    for s in &segs {
                        if KNOWN.contains(s) {
                            out.insert(s.to_string());
                        }
                    }
                }
            }
            Profile::Generic => {}
        }
    }
    out.into_iter().collect()
}

/// The upstream archive's own serial, from its master trace when the
/// generation carries one (`project/trace/master`, as ftpsync reads it);
/// `unknown` otherwise: Shoal never makes one up.
pub fn archive_serial(live: &Path, m: &Manifest) -> String {
    if m.get(TRACE_MASTER).is_none() {
        return "unknown".into();
    }
    std::fs::read_to_string(live.join(TRACE_MASTER))
        .ok()
        .and_then(|t| {
            t.lines()
                .filter_map(|l| l.strip_prefix("Archive serial:"))
                .map(|v| v.trim().to_string())
                .find(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The text of `project/trace/<name>`, in ftpsync's field order.
pub fn trace_text(live: &Path, t: &Trace<'_>, now: i64) -> Result<String> {
    use std::fmt::Write;
    let fmt_long = time::format_description::parse_borrowed::<2>(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] UTC [year]",
    )?;
    let fmt_rfc = time::format_description::well_known::Rfc2822;
    let at = |s: i64| {
        time::OffsetDateTime::from_unix_timestamp(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    };
    let version = env!("CARGO_PKG_VERSION");
    let mut o = String::new();
    writeln!(o, "{}", at(now).format(&fmt_long)?)?;
    writeln!(o, "Date: {}", at(now).format(&fmt_rfc)?)?;
    writeln!(o, "Date-Started: {}", at(t.started).format(&fmt_rfc)?)?;
    writeln!(o, "Archive serial: {}", archive_serial(live, t.manifest))?;
    writeln!(o, "Used shoal-agent version: {version}")?;
    writeln!(o, "Creator: shoal-agent {version}")?;
    writeln!(o, "Running on host: {}", t.name)?;
    for (key, v) in t.info.fields() {
        if let Some(v) = v {
            writeln!(o, "{key}: {}", v.trim())?;
        }
    }
    writeln!(o, "Trigger: shoal generation {}", t.generation)?;
    let archs = architectures(t.profile, t.manifest);
    if !archs.is_empty() {
        writeln!(o, "Architectures: {}", archs.join(" "))?;
    }
    writeln!(o, "Architectures-Configuration: ALL")?;
    writeln!(o, "Upstream-mirror: {}", upstream_host(t.upstream))?;
    let (s1, s2) = (
        t.stage1_seconds.round() as u64,
        t.stage2_seconds.round() as u64,
    );
    writeln!(o, "Total bytes received in rsync: {}", t.bytes_received)?;
    writeln!(o, "Total time spent in stage1 rsync: {s1}")?;
    writeln!(o, "Total time spent in stage2 rsync: {s2}")?;
    writeln!(o, "Total time spent in rsync: {}", s1 + s2)?;
    if let Some(rate) = t.bytes_received.checked_div(s1 + s2) {
        writeln!(o, "Average rate: {rate} B/s")?;
    }
    Ok(o)
}

/// Writes `project/trace/<name>` in ftpsync's format, then `_hierarchy`
/// (and its `.mirror` copy for downstreams) and `_traces`, so existing
/// Debian mirror checkers see the mirror as healthy and current. A file the
/// generation itself carries (the origin is an ftpsync mirror) is left as
/// the origin has it.
pub fn write_trace(live: &Path, t: &Trace<'_>) -> Result<()> {
    let carried = |p: &str| t.manifest.get(p).is_some();
    let own = format!("{TRACE_DIR}/{}", t.name);
    fsutil::prepare_parent(live, &own, &|_| false)?;
    fsutil::atomic_write(
        &live.join(&own),
        trace_text(live, t, fsutil::now())?.as_bytes(),
    )?;

    // _hierarchy: the upstream's hierarchy (what the origin's tree carries
    // as `_hierarchy.mirror`), without an older line of ours, then ours:
    // "<trace file> <mirror name> <host> <upstream host>".
    let mut lines: Vec<String> = Vec::new();
    if carried(TRACE_HIERARCHY_MIRROR) {
        if let Ok(text) = std::fs::read_to_string(live.join(TRACE_HIERARCHY_MIRROR)) {
            lines.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .filter(|l| l.split_whitespace().next() != Some(t.name))
                    .map(str::to_string),
            );
        }
    }
    lines.push(format!(
        "{name} {name} {name} {}",
        upstream_host(t.upstream),
        name = t.name
    ));
    let hierarchy = lines.join("\n") + "\n";
    for p in [TRACE_HIERARCHY, TRACE_HIERARCHY_MIRROR] {
        if !carried(p) {
            fsutil::atomic_write(&live.join(p), hierarchy.as_bytes())?;
        }
    }

    // _traces: every trace file, as `find * -type f ! -name '_*'` lists them.
    if !carried(TRACE_LIST) {
        let mut names = Vec::new();
        let mut stack = vec![(live.join(TRACE_DIR), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let Some(n) = e.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if n.starts_with('.') || (rel.is_empty() && n.starts_with('_')) {
                    continue;
                }
                let relp = if rel.is_empty() {
                    n.clone()
                } else {
                    format!("{rel}/{n}")
                };
                match e.file_type() {
                    Ok(ft) if ft.is_dir() => stack.push((e.path(), relp)),
                    Ok(ft) if ft.is_file() && !n.starts_with('_') => names.push(relp),
                    _ => {}
                }
            }
        }
        names.sort();
        let mut text = names.join("\n");
        text.push('\n');
        fsutil::atomic_write(&live.join(TRACE_LIST), text.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_manifest::{Entry, EntryKind, Header, FORMAT};

    #[test]
    fn debian_order() {
        let paths = [
            "dists/stable/InRelease",
            "dists/stable/Release",
            "dists/stable/main/binary-amd64/Packages.xz",
            "dists/stable/main/binary-amd64/by-hash/SHA256/abc",
            "pool/main/h/hello/hello_1_amd64.deb",
            "dists/stable/Release.gpg",
            "dists/stable/main/i18n/Translation-en",
        ];
        let mut v: Vec<&str> = paths.to_vec();
        v.sort_by_key(|p| (rank(Profile::Debian, p), *p));
        assert_eq!(
            v,
            vec![
                "pool/main/h/hello/hello_1_amd64.deb",
                "dists/stable/main/binary-amd64/by-hash/SHA256/abc",
                "dists/stable/main/binary-amd64/Packages.xz",
                "dists/stable/main/i18n/Translation-en",
                "dists/stable/Release",
                "dists/stable/Release.gpg",
                "dists/stable/InRelease",
            ]
        );
    }

    #[test]
    fn rpm_order() {
        assert_eq!(rank(Profile::Rpm, "Packages/h/hello.rpm"), 0);
        assert_eq!(rank(Profile::Rpm, "os/repodata/abc-primary.xml.gz"), 1);
        assert_eq!(rank(Profile::Rpm, "os/repodata/repomd.xml"), 2);
        assert_eq!(rank(Profile::Rpm, "os/repodata/repomd.xml.asc"), 2);
        assert_eq!(rank(Profile::Generic, "dists/x/InRelease"), 0);
    }

    fn entry(path: &str, data: &[u8]) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: data.len() as u64,
                sha256: Sha256Hash::of(data),
                pack: if data.is_empty() { None } else { Some(1) },
            },
            mode: 0o644,
            mtime_ns: 1_600_000_000_000_000_000,
        }
    }

    fn manifest(mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Manifest::new(
            Header {
                format: FORMAT,
                generation: 1,
                profile: "debian".into(),
                created: 0,
                expires: i64::MAX,
                prev_sha256: None,
                packs: vec![],
            },
            entries,
        )
    }

    #[test]
    fn trace_fields_hierarchy_and_list() {
        let t = tempfile::tempdir().unwrap();
        let live = t.path();
        let master = b"Wed Apr 27 15:39:01 UTC 2016\nArchive serial: 2016042703\n";
        let m = manifest(vec![
            entry("dists/stable/main/binary-amd64/Packages.xz", b"p"),
            entry("dists/stable/main/binary-arm64/Packages", b"q"),
            entry("dists/stable/main/binary-i386/Release", b"r"),
            entry("dists/stable/main/source/Sources.gz", b"s"),
            entry("pool/main/h/hello_1_amd64.deb", b"d"),
            entry(TRACE_MASTER, master),
            entry(
                TRACE_HIERARCHY_MIRROR,
                b"master up1 up1 ftp-master.example\n",
            ),
        ]);
        assert_eq!(
            architectures(Profile::Debian, &m),
            vec!["amd64", "arm64", "source"]
        );
        std::fs::create_dir_all(live.join(TRACE_DIR)).unwrap();
        std::fs::write(live.join(TRACE_MASTER), master).unwrap();
        std::fs::write(
            live.join(TRACE_HIERARCHY_MIRROR),
            "master up1 up1 ftp-master.example\nm1 m1 m1 old-upstream\n",
        )
        .unwrap();
        let info = shoal_config::TraceInfo {
            maintainer: Some("Ops <ops@example.org>".into()),
            country: Some("DE".into()),
            ..Default::default()
        };
        let tr = Trace {
            name: "m1",
            generation: 7,
            started: 1_461_771_541,
            upstream: "http://origin.example.org:8780",
            bytes_received: 1000,
            stage1_seconds: 3.2,
            stage2_seconds: 1.0,
            info: &info,
            manifest: &m,
            profile: Profile::Debian,
        };
        let text = trace_text(live, &tr, 1_461_771_600).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Wed Apr 27 15:40:00 UTC 2016");
        assert_eq!(lines[1], "Date: Wed, 27 Apr 2016 15:40:00 +0000");
        assert_eq!(lines[2], "Date-Started: Wed, 27 Apr 2016 15:39:01 +0000");
        assert_eq!(lines[3], "Archive serial: 2016042703");
        assert!(text.contains("\nMaintainer: Ops <ops@example.org>\nCountry: DE\n"));
        assert!(!text.contains("Sponsor:"));
        assert!(text.contains("\nArchitectures: amd64 arm64 source\n"));
        assert!(text.contains("\nArchitectures-Configuration: ALL\n"));
        assert!(text.contains("\nUpstream-mirror: origin.example.org\n"));
        assert!(text.contains("\nTotal bytes received in rsync: 1000\n"));
        assert!(text.contains("\nTotal time spent in stage1 rsync: 3\n"));
        assert!(text.contains("\nTotal time spent in stage2 rsync: 1\n"));
        assert!(text.contains("\nTotal time spent in rsync: 4\n"));
        assert!(text.ends_with("Average rate: 250 B/s\n"));

        write_trace(live, &tr).unwrap();
        // The hierarchy carried by the generation is the origin's: left as is.
        let h = std::fs::read_to_string(live.join(TRACE_HIERARCHY)).unwrap();
        assert_eq!(
            h,
            "master up1 up1 ftp-master.example\nm1 m1 m1 origin.example.org\n"
        );
        let list = std::fs::read_to_string(live.join(TRACE_LIST)).unwrap();
        assert_eq!(list, "m1\nmaster\n");

        // Without a master trace, the serial is unknown, never made up.
        let bare = manifest(vec![entry("pool/a", b"a")]);
        assert_eq!(archive_serial(live, &bare), "unknown");
        assert!(architectures(Profile::Generic, &m).is_empty());
        assert_eq!(upstream_host("http://[::1]:8780/x"), "::1");
        assert_eq!(upstream_host("not a url"), "unknown");
    }

    #[test]
    fn plan_execute_and_converge() {
        let t = tempfile::tempdir().unwrap();
        let live = t.path().join("live");
        let store = t.path().join("store");
        std::fs::create_dir_all(&live).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        let contents: Vec<&[u8]> = vec![b"deb", b"pkgs", b"inrel"];
        for c in &contents {
            std::fs::write(store.join(Sha256Hash::of(c).to_hex()), c).unwrap();
        }
        let lookup = |h: &Sha256Hash| Some(store.join(h.to_hex()));
        let m = manifest(vec![
            entry("dists/s/InRelease", b"inrel"),
            entry("dists/s/main/Packages", b"pkgs"),
            entry("empty", b""),
            entry("pool/a.deb", b"deb"),
        ]);
        let plan = plan_from(Profile::Debian, None, &m);
        let order: Vec<&str> = plan.upserts.iter().map(|e| e.path()).collect();
        assert_eq!(
            order,
            vec![
                "empty",
                "pool/a.deb",
                "dists/s/main/Packages",
                "dists/s/InRelease"
            ]
        );
        execute(&plan, &m, &live, &lookup).unwrap();
        assert_eq!(std::fs::read(live.join("pool/a.deb")).unwrap(), b"deb");
        assert!(plan_full(Profile::Debian, &live, &m).upserts.is_empty());
        // Someone replaces a file: a full plan finds exactly that. (Writing
        // in place would write through the hard link into the pack store.)
        std::fs::remove_file(live.join("pool/a.deb")).unwrap();
        std::fs::write(live.join("pool/a.deb"), b"xx").unwrap();
        let p = plan_full(Profile::Debian, &live, &m);
        assert_eq!(p.upserts.len(), 1);
        execute(&p, &m, &live, &lookup).unwrap();
        assert_eq!(std::fs::read(live.join("pool/a.deb")).unwrap(), b"deb");
        // Missing content: error, nothing placed for that entry.
        let m2 = manifest(vec![entry("pool/b.deb", b"missing")]);
        let p2 = plan_from(Profile::Debian, Some(&m), &m2);
        assert_eq!(p2.removals.len(), 4);
        let e = execute(&p2, &m2, &live, &|_| None).unwrap_err();
        assert!(e.to_string().contains("not in the pack store"), "{e}");
        assert!(!live.join("pool/b.deb").exists());
    }

    #[test]
    fn plan_from_finds_exactly_the_added_changed_and_removed_paths() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..50 {
            // Two random sorted trees over a shared set of names, some
            // entries equal, some changed, some only in one.
            let mut old = Vec::new();
            let mut new = Vec::new();
            for i in 0..rng.gen_range(0..60) {
                let path = format!("d{}/f{i:03}", i % 3);
                match rng.gen_range(0..4) {
                    0 => old.push(entry(&path, b"o")),
                    1 => new.push(entry(&path, b"n")),
                    2 => {
                        old.push(entry(&path, b"same"));
                        new.push(entry(&path, b"same"));
                    }
                    _ => {
                        old.push(entry(&path, b"before"));
                        new.push(entry(&path, b"after"));
                    }
                }
            }
            old.sort_by(|a, b| a.path.cmp(&b.path));
            new.sort_by(|a, b| a.path.cmp(&b.path));
            let (mo, mn) = (manifest(old.clone()), manifest(new.clone()));
            let plan = plan_from(Profile::Generic, Some(&mo), &mn);
            let mut got: Vec<&str> = plan.upserts.iter().map(|e| e.path()).collect();
            got.sort();
            let want: Vec<&str> = new
                .iter()
                .filter(|e| !old.contains(e))
                .map(|e| e.path.as_str())
                .collect();
            assert_eq!(got, want, "round {round}: upserts");
            let want: Vec<String> = old
                .iter()
                .filter(|e| !new.iter().any(|n| n.path == e.path))
                .map(|e| e.path.clone())
                .collect();
            assert_eq!(plan.removals, want, "round {round}: removals");
        }
    }

    #[test]
    fn pending_deletions_wait_for_grace() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("a")).unwrap();
        std::fs::write(t.path().join("a/old"), b"x").unwrap();
        let m = manifest(vec![]);
        let mut p = Pending::default();
        p.schedule(&["a/old".into()], &m, 100);
        assert_eq!(p.run(t.path(), &m, 99).unwrap(), 0);
        assert!(t.path().join("a/old").exists());
        assert_eq!(p.run(t.path(), &m, 100).unwrap(), 1);
        assert!(!t.path().join("a").exists());
    }
}
