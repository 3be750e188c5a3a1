//! The start-up probe for hard links between the state folder and the
//! repository.
//!
//! A mirror's live tree is made of hard links into its pack store
//! (`state/packs/...`), and an origin hard-links never-rewritten archive
//! files into its store. `link(2)` fails with EXDEV when the two folders
//! are on different mounts (two file systems, or one file system seen
//! through two bind mounts, as systemd's `ReadWritePaths=` makes them);
//! the agent would then copy every file, doubling the disk space. So it
//! checks once at start: a temp file made in the state folder is linked
//! into the repository. On EXDEV the agent refuses to start, naming both
//! folders and the fix, unless `storage.allow_copy` accepts copying (then
//! it warns once). A repository on a network file system (FUSE such as a
//! GlusterFS mount, NFS, SMB, Ceph) can never hold links into local state:
//! copying is how such a mirror works (`shoal gluster layout`), so the agent
//! only warns.

use crate::fsutil;
use anyhow::{bail, Result};
use shoal_config::{AgentConfig, Role};
use std::path::Path;

/// What the probe found.
#[derive(Debug, PartialEq)]
pub enum Links {
    /// Hard links work between the two folders.
    Work,
    /// They are on different mounts and copying was accepted.
    Copy,
    /// The repository is on a network file system: copying is by design.
    NetworkCopy,
    /// The probe could not run (an origin's repository it may not write).
    Unknown,
}

/// Runs the probe for `cfg` (repository and state folders exist).
pub fn check(cfg: &AgentConfig) -> Result<Links> {
    let src = fsutil::temp_name(&cfg.state.join("shoal-link-probe"));
    let dst = fsutil::temp_name(&cfg.repo.join("shoal-link-probe"));
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&dst);
    std::fs::write(&src, b"").map_err(|e| fsutil::explain_io(e, &src))?;
    let linked = std::fs::hard_link(&src, &dst);
    let _ = std::fs::remove_file(&dst);
    let _ = std::fs::remove_file(&src);
    match linked {
        Ok(()) => Ok(Links::Work),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            if let Some(fs) = network_fs(&cfg.repo) {
                tracing::warn!(
                    repo = %cfg.repo.display(),
                    "the repository is on a {fs} file system: files are copied there from the \
                     state folder, not hard-linked"
                );
                return Ok(Links::NetworkCopy);
            }
            if !cfg.storage.allow_copy {
                bail!("{}", refusal(&cfg.state, &cfg.repo));
            }
            tracing::warn!(
                state = %cfg.state.display(),
                repo = %cfg.repo.display(),
                "the state folder and the repository are on different mounts: every file is \
                 copied instead of hard-linked (twice the disk space), as storage.allow_copy \
                 accepts"
            );
            Ok(Links::Copy)
        }
        // An origin only reads its repository and may not write there.
        Err(e) if cfg.role == Role::Origin => {
            tracing::debug!(error = %e, "cannot probe hard links into the repository");
            Ok(Links::Unknown)
        }
        Err(e) => Err(anyhow::anyhow!(
            "cannot hard-link from the state folder {} into the repository {}: {e}; the live \
             tree is made of hard links into the pack store: check both folders' permissions",
            cfg.state.display(),
            cfg.repo.display()
        )),
    }
}

/// The name of `dir`'s file system type if it is a network one.
fn network_fs(dir: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs fills the zeroed struct we pass; `c` outlives the call.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return None;
    }
    match s.f_type as i64 {
        0x6573_5546 => Some("FUSE (e.g. GlusterFS)"),
        0x6969 => Some("NFS"),
        0xFF53_4D42 | 0xFE53_4D42 | 0x517B => Some("SMB"),
        0x00C3_6400 => Some("Ceph"),
        _ => None,
    }
}

/// Why the agent refuses to start, and what to do.
fn refusal(state: &Path, repo: &Path) -> String {
    format!(
        "the state folder {} and the repository {} are on different mounts, so files cannot \
         be hard-linked between them (EXDEV). The live tree is made of hard links into the \
         pack store: across mounts every file would be copied, doubling the disk space the \
         repository takes. Put both folders on one mount (for example /srv/shoal/repo and \
         /srv/shoal/state); under systemd, give them one common ReadWritePaths= parent (such \
         as ReadWritePaths=/srv/shoal; each ReadWritePaths= entry is a mount of its own) or \
         use ProtectSystem=full. To accept copying instead, set storage.allow_copy: true",
        state.display(),
        repo.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_system_links_and_leaves_nothing_behind() {
        let t = tempfile::tempdir().unwrap();
        let y = format!(
            "role: mirror\nrepo: {0}/repo\nstate: {0}/state\nlisten: 127.0.0.1:1\nmirror:\n  \
             origin_key: ed25519:{1}\n  upstreams: [http://127.0.0.1:2]\n",
            t.path().display(),
            "0".repeat(64)
        );
        let cfg = AgentConfig::from_yaml(&y, "t.yaml").unwrap();
        std::fs::create_dir_all(&cfg.repo).unwrap();
        std::fs::create_dir_all(&cfg.state).unwrap();
        assert_eq!(check(&cfg).unwrap(), Links::Work);
        assert_eq!(std::fs::read_dir(&cfg.repo).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&cfg.state).unwrap().count(), 0);
        // A temp folder is on a local file system.
        assert_eq!(network_fs(t.path()), None);
        let r = refusal(&cfg.state, &cfg.repo);
        assert!(r.contains(&cfg.state.display().to_string()), "{r}");
        assert!(r.contains("storage.allow_copy: true"), "{r}");
    }
}
