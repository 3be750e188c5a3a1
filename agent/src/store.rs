//! The layout of an agent's state directory, in one place.
//!
//! ```text
//! state/
//!   agent.lock                  flock: one agent per state dir
//!   node.key                    mirror: this agent's own key, signs its peer entry
//!   admin.sock                  local admin calls (`shoal-agent publish`)
//!   docs/head.shoal             newest signed head
//!   docs/manifests/<G>.shoal    signed manifests (checkpoints), newest few
//!   docs/deltas/<G-1>.shoal     signed delta G-1 -> G
//!   torrents/<info-hash>.torrent
//!   packs/<pack-id>/<xx>/<sha256>   pack store: librqbit downloads and seeds here
//!   verified/<pack-id>          marker: every content of the pack passed SHA-256
//!   seals/<pack-id>             a resting pack's file names, sizes, mtimes, inodes, hashed
//!   staging/                    origin: copies being hashed
//!   retiring.json               origin: dropped packs still seeded, and until when
//!   last-pack-id                origin: highest pack id ever used (ids are never reused)
//!   applied.json                mirror: generation the live tree holds
//!   pending-deletions.json      mirror: removals waiting for their grace period
//! ```

use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    pub fn new(root: &Path) -> Self {
        Store {
            root: root.to_path_buf(),
        }
    }
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("agent.lock")
    }
    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }
    pub fn head(&self) -> PathBuf {
        self.root.join("docs/head.shoal")
    }
    pub fn manifests_dir(&self) -> PathBuf {
        self.root.join("docs/manifests")
    }
    pub fn manifest(&self, generation: u64) -> PathBuf {
        self.manifests_dir().join(format!("{generation}.shoal"))
    }
    pub fn deltas_dir(&self) -> PathBuf {
        self.root.join("docs/deltas")
    }
    /// The delta from `from` to `from + 1`.
    pub fn delta(&self, from: u64) -> PathBuf {
        self.deltas_dir().join(format!("{from}.shoal"))
    }
    pub fn torrent(&self, info_hash: &str) -> PathBuf {
        self.root
            .join("torrents")
            .join(format!("{info_hash}.torrent"))
    }
    pub fn packs_dir(&self) -> PathBuf {
        self.root.join("packs")
    }
    pub fn pack_dir(&self, id: u64) -> PathBuf {
        self.packs_dir().join(id.to_string())
    }
    pub fn content(&self, pack: u64, sha256: &[u8; 32]) -> PathBuf {
        self.pack_dir(pack).join(shoal_pack::content_path(sha256))
    }
    pub fn verified(&self, pack: u64) -> PathBuf {
        self.root.join("verified").join(pack.to_string())
    }
    /// The seal of a resting pack ([`crate::rest::seal_of`]).
    pub fn seal(&self, pack: u64) -> PathBuf {
        self.root.join("seals").join(pack.to_string())
    }
    pub fn last_pack_id(&self) -> PathBuf {
        self.root.join("last-pack-id")
    }
    pub fn retiring(&self) -> PathBuf {
        self.root.join("retiring.json")
    }
    pub fn staging(&self) -> PathBuf {
        self.root.join("staging")
    }
    pub fn applied(&self) -> PathBuf {
        self.root.join("applied.json")
    }
    pub fn pending(&self) -> PathBuf {
        self.root.join("pending-deletions.json")
    }

    /// Keeps the `keep` newest numbered `.shoal` files in `dir`.
    pub fn prune_numbered(dir: &Path, keep: usize) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        let mut nums: Vec<u64> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".shoal")?.parse().ok())
            .collect();
        nums.sort_unstable();
        let n = nums.len();
        for g in nums.into_iter().take(n.saturating_sub(keep)) {
            let _ = std::fs::remove_file(dir.join(format!("{g}.shoal")));
        }
    }
}
