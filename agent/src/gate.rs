//! The publish gate: the origin never publishes a half-written archive.
//!
//! Before a publish (timer, admin call, `shoal-agent publish`) goes on,
//! two checks must pass:
//! - **no lock**: no ftpsync lock (`Archive-Update-in-Progress-*` at the
//!   top of the repository) and none of the files in
//!   `origin.publish_locks` exists ([`find_lock`]);
//! - **quiet tree**: nothing the publish looks at changed within
//!   `origin.quiet_period` ([`quiet`]). The scan the publish does anyway
//!   records the newest ctime ([`Newest`]) of the folders it walks and of
//!   the files that differ from the previous generation (a file it holds
//!   unchanged does not count: the origin's own hard link into its pack
//!   store moves its ctime). A full scan sees every file and folder, a
//!   change-list publish only the listed paths (and, for a listed path that
//!   is gone, its nearest folder). ctime, not mtime: the kernel sets it on
//!   every write and rename, while mtime can be set back (rsync `-t`,
//!   `touch -d`).
//!
//! A closed gate is a [`GateClosed`] error: the timer waits and looks
//! again ([`Closed::retry_after`]), logging the reason once at INFO
//! ([`Waiting`]); an explicit call is refused with what to do, unless it
//! forces the publish.

use anyhow::Result;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// ftpsync's lock file name prefix (the rest is the host name), at the top
/// of the repository while an archive update runs.
pub const FTPSYNC_LOCK_PREFIX: &str = "Archive-Update-in-Progress-";

/// Why a publish must wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Closed {
    /// A lock file exists (`since`: its mtime, Unix seconds).
    Locked { path: PathBuf, since: Option<i64> },
    /// `path` (relative to the repository; empty for its top folder)
    /// changed at `changed_ns`, within the quiet period that ends at
    /// `quiet_at_ns` (both nanoseconds since the epoch).
    Changing {
        path: String,
        changed_ns: i64,
        quiet_at_ns: i64,
    },
}

impl Closed {
    /// One line for /status (`publish_waiting`) and the log.
    pub fn summary(&self) -> String {
        match self {
            Closed::Locked { path, since } => match since {
                Some(s) => format!("{} exists since {}", path.display(), rfc3339(*s)),
                None => format!("{} exists", path.display()),
            },
            Closed::Changing {
                path, changed_ns, ..
            } => format!(
                "{} changed at {} (origin.quiet_period has not passed since)",
                shown(path),
                rfc3339(changed_ns.div_euclid(1_000_000_000))
            ),
        }
    }

    /// The refusal an explicit publish call gets: what and what to do.
    pub fn refusal(&self) -> String {
        match self {
            Closed::Locked { .. } => format!(
                "publish refused: {}: an archive update is running (its lock file exists); \
                 publish after it ends (the timer does so by itself), or remove the lock if \
                 no update runs, or pass --force to publish the tree as it is now",
                self.summary()
            ),
            Closed::Changing { .. } => format!(
                "publish refused: {}; the archive is still being written: publish once it is \
                 finished, pass --wait to publish as soon as the tree is quiet, or --force to \
                 publish it as it is now",
                self.summary()
            ),
        }
    }

    /// How long to wait before looking again (`now_ns`: now, nanoseconds
    /// since the epoch): a lock is looked for every second; a changing
    /// tree is scanned again when its quiet period would end.
    pub fn retry_after(&self, now_ns: i64) -> Duration {
        match self {
            Closed::Locked { .. } => Duration::from_secs(1),
            Closed::Changing { quiet_at_ns, .. } => {
                let left = (quiet_at_ns - now_ns).max(0) as u64;
                Duration::from_nanos(left).max(Duration::from_millis(200))
            }
        }
    }

    /// What stays the same while one reason holds the gate (the changing
    /// path moves on as an update runs; the lock does not).
    fn reason_key(&self) -> String {
        match self {
            Closed::Locked { path, .. } => format!("lock {}", path.display()),
            Closed::Changing { .. } => "changing".into(),
        }
    }
}

/// A path for messages: the repository's top folder has an empty path.
fn shown(path: &str) -> String {
    if path.is_empty() {
        "the repository's top folder".into()
    } else {
        path.to_string()
    }
}

/// Unix seconds as `2026-11-30T00:12:00Z`.
fn rfc3339(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

/// The error a closed gate makes a publish return.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.refusal())]
pub struct GateClosed(pub Closed);

/// The gate's reason if `e` is a closed gate.
pub fn closed_of(e: &anyhow::Error) -> Option<&Closed> {
    e.downcast_ref::<GateClosed>().map(|g| &g.0)
}

/// The first lock that exists: ftpsync's at the top of `repo` (sorted by
/// name), then each of `configured` (relative paths are in `repo`).
pub fn find_lock(repo: &Path, configured: &[PathBuf]) -> Result<Option<Closed>> {
    let rd = std::fs::read_dir(repo).map_err(|e| crate::fsutil::explain_io(e, repo))?;
    let names = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok());
    let mut candidates: Vec<PathBuf> = ftpsync_locks(names)
        .into_iter()
        .map(|n| repo.join(n))
        .collect();
    candidates.extend(configured.iter().map(|p| repo.join(p)));
    for path in candidates {
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            return Ok(Some(Closed::Locked {
                path,
                since: Some(m.mtime()),
            }));
        }
    }
    Ok(None)
}

/// True for ftpsync's lock at the top of the repository (`rel`: a path
/// relative to it): a local file, never published.
pub fn is_ftpsync_lock(rel: &str) -> bool {
    !rel.contains('/') && ftpsync_locks(std::iter::once(rel.to_string())).len() == 1
}

/// The names among `names` (a folder's entries) that are ftpsync locks,
/// sorted.
pub fn ftpsync_locks(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = names
        .filter(|n| n.len() > FTPSYNC_LOCK_PREFIX.len() && n.starts_with(FTPSYNC_LOCK_PREFIX))
        .collect();
    v.sort();
    v
}

/// The newest change a scan saw: its ctime (nanoseconds since the epoch)
/// and path (relative to the repository).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Newest {
    pub ns: i64,
    pub path: String,
}

impl Newest {
    /// Notes the ctime of `path`, whose metadata is `m`.
    pub fn note(&mut self, path: &str, m: &Metadata) {
        self.note_ns(path, m.ctime() * 1_000_000_000 + m.ctime_nsec());
    }

    /// Notes a change of `path` at `ns`.
    pub fn note_ns(&mut self, path: &str, ns: i64) {
        if ns > self.ns {
            self.ns = ns;
            self.path = path.to_string();
        }
    }
}

/// Closed if the newest change is less than `period` before `now_ns`.
/// A `period` of zero never closes it.
pub fn quiet(newest: &Newest, now_ns: i64, period: Duration) -> Option<Closed> {
    if period.is_zero() {
        return None;
    }
    let quiet_at_ns = newest.ns.saturating_add(period.as_nanos() as i64);
    (now_ns < quiet_at_ns).then(|| Closed::Changing {
        path: newest.path.clone(),
        changed_ns: newest.ns,
        quiet_at_ns,
    })
}

/// Now in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Logs a waiting timer's reason once at INFO (then DEBUG while the same
/// reason holds), and once at INFO when the gate opens again.
#[derive(Debug, Default)]
pub struct Waiting {
    reason: Option<String>,
}

impl Waiting {
    /// The gate is closed by `c`; true if this reason is new (logged at INFO).
    pub fn hold(&mut self, c: &Closed) -> bool {
        let key = c.reason_key();
        let new = self.reason.as_deref() != Some(key.as_str());
        if new {
            tracing::info!(reason = %c.summary(), "publish waits: {}", c.summary());
        } else {
            tracing::debug!(reason = %c.summary(), "publish still waiting");
        }
        self.reason = Some(key);
        new
    }

    /// The gate is open; true if it was closed before (logged at INFO).
    pub fn open(&mut self) -> bool {
        let was = self.reason.take().is_some();
        if was {
            tracing::info!("publish gate open: the tree is quiet and unlocked");
        }
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn ftpsync_locks_are_recognised_by_prefix_only() {
        let names = [
            "dists",
            "Archive-Update-in-Progress-mirror.example.org",
            "Archive-Update-in-Progress-",
            "Archive-Update-Required-mirror.example.org",
            "project",
            "Archive-Update-in-Progress-a",
        ]
        .map(String::from);
        assert_eq!(
            ftpsync_locks(names.into_iter()),
            vec![
                "Archive-Update-in-Progress-a".to_string(),
                "Archive-Update-in-Progress-mirror.example.org".to_string()
            ]
        );
        assert!(is_ftpsync_lock("Archive-Update-in-Progress-h"));
        assert!(!is_ftpsync_lock("sub/Archive-Update-in-Progress-h"));
        assert!(!is_ftpsync_lock("Archive-Update-in-Progress-"));
    }

    #[test]
    fn find_lock_sees_ftpsync_and_configured_locks() {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        std::fs::create_dir_all(repo.join("dists")).unwrap();
        let outside = t.path().join("reprepro.lock");
        let configured = vec![outside.clone(), PathBuf::from("db/lockfile")];
        assert_eq!(find_lock(&repo, &configured).unwrap(), None);
        std::fs::write(&outside, b"").unwrap();
        match find_lock(&repo, &configured).unwrap() {
            Some(Closed::Locked { path, since }) => {
                assert_eq!(path, outside);
                assert!(since.is_some());
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&outside).unwrap();
        std::fs::create_dir_all(repo.join("db")).unwrap();
        std::fs::write(repo.join("db/lockfile"), b"").unwrap();
        let c = find_lock(&repo, &configured).unwrap().unwrap();
        assert!(c.summary().contains("db/lockfile exists since "), "{c:?}");
        std::fs::remove_file(repo.join("db/lockfile")).unwrap();
        // ftpsync's lock comes first and is named in the refusal.
        std::fs::write(repo.join("Archive-Update-in-Progress-h1"), b"").unwrap();
        let c = find_lock(&repo, &configured).unwrap().unwrap();
        let r = c.refusal();
        assert!(r.contains("Archive-Update-in-Progress-h1"), "{r}");
        assert!(r.contains("--force"), "{r}");
        assert_eq!(c.retry_after(0), Duration::from_secs(1));
    }

    #[test]
    fn the_tree_is_quiet_once_the_period_has_passed_since_the_newest_change() {
        let mut n = Newest::default();
        n.note_ns("pool/a", 100 * S);
        n.note_ns("dists/s/Release", 105 * S);
        n.note_ns("pool/b", 103 * S);
        assert_eq!(n.path, "dists/s/Release");
        let p = Duration::from_secs(10);
        match quiet(&n, 110 * S, p) {
            Some(c @ Closed::Changing { .. }) => {
                assert_eq!(c.retry_after(110 * S), Duration::from_secs(5));
                assert!(c.refusal().contains("dists/s/Release changed at "));
                assert!(c.refusal().contains("--wait"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(quiet(&n, 115 * S, p), None);
        assert_eq!(quiet(&n, 116 * S, p), None);
        // Off: never closed, even for a change "now".
        assert_eq!(quiet(&n, 105 * S, Duration::ZERO), None);
        // A change in the future (clock skew) keeps it closed until then.
        let mut f = Newest::default();
        f.note_ns("x", 200 * S);
        assert!(quiet(&f, 150 * S, p).is_some());
        // An empty scan (nothing noted) is quiet.
        assert_eq!(quiet(&Newest::default(), 1000 * S, p), None);
    }

    #[test]
    fn a_waiting_reason_is_new_once_until_the_gate_opens() {
        let lock = |p: &str| Closed::Locked {
            path: PathBuf::from(p),
            since: None,
        };
        let changing = |p: &str| Closed::Changing {
            path: p.into(),
            changed_ns: 0,
            quiet_at_ns: 1,
        };
        let mut w = Waiting::default();
        assert!(!w.open());
        assert!(w.hold(&lock("/r/Archive-Update-in-Progress-a")));
        assert!(!w.hold(&lock("/r/Archive-Update-in-Progress-a")));
        assert!(w.hold(&changing("pool/a")));
        assert!(!w.hold(&changing("pool/b")));
        assert!(w.hold(&lock("/r/Archive-Update-in-Progress-a")));
        assert!(w.open());
        assert!(!w.open());
        assert!(w.hold(&changing("pool/a")));
    }
}
