//! The layout of an agent's state directory, in one place.
//!
//! ```text
//! state/
//!   agent.lock                  flock: one agent per state dir
//!   node.key                    mirror: this agent's own key, signs its peer entry
//!   admin.sock                  local admin calls (`shoal-agent publish`)
//!   docs/head.shoal             newest signed head
//!   docs/manifests/<G>.shoal    signed manifest roots (checkpoints), newest few
//!   docs/chunks/<sha256>.zst    manifest chunks (runs of entries), zstd-compressed,
//!                               named by the SHA-256 of their uncompressed bytes;
//!                               kept while a manifest in docs/manifests lists them
//!   docs/deltas/<G-1>.shoal     signed delta G-1 -> G
//!   torrents/<info-hash>.torrent
//!   packs/<pack-id>/<xx>/<sha256>   pack store: librqbit downloads and seeds here
//!   verified/<pack-id>          marker: every content of the pack passed SHA-256
//!   seals/<pack-id>             a resting pack's file names, sizes, mtimes, inodes, hashed
//!   staging/                    origin: copies being hashed
//!   retiring.json               origin: dropped packs still seeded, and until when
//!   last-pack-id                origin: highest pack id ever used (ids are never reused)
//!   applied.json                mirror: generation the live tree holds (and its size)
//!   applying                    mirror: an apply or repair of the live tree is under way
//!   pending-deletions.json      mirror: removals waiting for their grace period
//! ```

use anyhow::{Context, Result};
use shoal_manifest::signed::PublicKey;
use shoal_manifest::{Manifest, Root, Sha256Hash};
use std::path::{Path, PathBuf};

/// Chunks no kept manifest lists are deleted every this many generations
/// ([`Store::prune_chunks_now_and_then`]); until then they take some disk
/// (a generation's changed chunks each) and are never served, since no
/// stored root names them.
pub const PRUNE_CHUNKS_EVERY: u64 = 8;

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
    pub fn chunks_dir(&self) -> PathBuf {
        self.root.join("docs/chunks")
    }
    /// A manifest chunk (zstd-compressed), by the SHA-256 of its
    /// uncompressed bytes. `GET /v1/chunk/{sha256}` serves this file.
    pub fn chunk(&self, sha256: &Sha256Hash) -> PathBuf {
        self.chunks_dir().join(format!("{}.zst", sha256.to_hex()))
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
    pub fn applying(&self) -> PathBuf {
        self.root.join("applying")
    }

    /// Writes the chunks given (id, compressed body: what
    /// [`Manifest::take_new_chunks`] gives) that are not stored yet,
    /// unsynced, on every core: the caller flushes them
    /// ([`Store::flush_chunks`]) before it writes the root that names them.
    /// The other chunks of a generation were stored with the generation
    /// they came from (or as a full fetch gathered them). Returns how many
    /// were written.
    pub fn write_chunks(&self, chunks: &[(Sha256Hash, Vec<u8>)]) -> Result<usize> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(chunks.len() / 64 + 1);
        let per = chunks.len().div_ceil(threads.max(1)).max(1);
        let counts: Vec<Result<usize>> = std::thread::scope(|s| {
            let jobs: Vec<_> = chunks
                .chunks(per)
                .map(|part| {
                    s.spawn(move || {
                        let mut written = 0;
                        for (sha, body) in part {
                            let path = self.chunk(sha);
                            // An empty file is what a crash before the
                            // flush can leave (delayed allocation): written
                            // again.
                            let held = path.metadata().is_ok_and(|m| m.len() > 0);
                            if !held {
                                self.put_compressed(&path, body)?;
                                written += 1;
                            }
                        }
                        Ok(written)
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|j| j.join().expect("chunk writer panicked"))
                .collect()
        });
        counts.into_iter().sum()
    }

    /// Makes the chunks written so far durable (one flush of their file
    /// system), if `written` is not 0.
    pub fn flush_chunks(&self, written: usize) -> Result<()> {
        if written > 0 {
            crate::fsutil::sync_fs(&self.chunks_dir())?;
        }
        Ok(())
    }

    /// Stores one chunk body (already checked against its id), compressed
    /// and unsynced.
    pub fn put_chunk(&self, path: &Path, body: &[u8]) -> Result<()> {
        self.put_compressed(path, &shoal_manifest::compress_chunk(body))
    }

    /// Stores a chunk already compressed ([`shoal_manifest::compress_chunk`]).
    fn put_compressed(&self, path: &Path, z: &[u8]) -> Result<()> {
        let dir = self.chunks_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = crate::fsutil::temp_name(path);
        std::fs::write(&tmp, z)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                crate::fsutil::explain_io(e, path)
            })
    }

    /// A stored chunk's body, if it still hashes to its id.
    pub fn read_chunk(&self, sha256: &Sha256Hash) -> Option<Vec<u8>> {
        let z = std::fs::read(self.chunk(sha256)).ok()?;
        let b = shoal_manifest::decompress_chunk(&z).ok()?;
        (Sha256Hash::of(&b) == *sha256).then_some(b)
    }

    /// The body of the stored signed manifest (root) of `generation`,
    /// checked against `key`.
    fn manifest_body(&self, key: &PublicKey, generation: u64) -> Result<Vec<u8>> {
        let path = self.manifest(generation);
        let env = std::fs::read(&path).with_context(|| {
            format!(
                "the manifest of generation {generation} is missing ({})",
                path.display()
            )
        })?;
        Ok(key.open("manifest", &env)?)
    }

    /// The signed root of generation `generation` as stored here (checked
    /// against `key`), and its hash, without reading its chunks; `None`
    /// when the stored manifest is of an older format (read it with
    /// [`Store::read_manifest`], which converts it).
    pub fn read_root(
        &self,
        key: &PublicKey,
        generation: u64,
    ) -> Result<Option<(Root, Sha256Hash)>> {
        let body = self.manifest_body(key, generation)?;
        Ok(Root::from_body(&body)
            .ok()
            .map(|r| (r, Sha256Hash::of(&body))))
    }

    /// The stored manifest of `generation`: its signed root and the stored
    /// chunks it lists, fully checked. Returns it with its hash.
    pub fn read_manifest(
        &self,
        key: &PublicKey,
        generation: u64,
    ) -> Result<(Manifest, Sha256Hash)> {
        let body = self.manifest_body(key, generation)?;
        let root = match Root::from_body(&body) {
            Ok(r) => r,
            Err(e) => {
                // Written before the upgrade to format 3 (chunks): converted, and
                // its chunks stored so the generation can be relayed.
                let Ok(m) = Manifest::from_legacy_body(&body) else {
                    return Err(e.into());
                };
                tracing::info!(
                    generation,
                    format = shoal_manifest::FORMAT,
                    "converted the stored manifest of an older format"
                );
                let mut m = m;
                let written = self.write_chunks(&m.take_new_chunks())?;
                self.flush_chunks(written)?;
                let sha = m.sha256();
                return Ok((m, sha));
            }
        };
        let sha = Sha256Hash::of(&body);
        // One chunk read at a time, parsed at once.
        let mut assembly = shoal_manifest::Assembly::new(root)?;
        while let Some(id) = assembly.next_chunk() {
            let body = self.read_chunk(&id).with_context(|| {
                format!(
                    "chunk {id} of the manifest of generation {generation} is missing or damaged \
                     in {}",
                    self.chunks_dir().display()
                )
            })?;
            assembly.push(&body)?;
        }
        Ok((assembly.finish()?, sha))
    }

    /// Removes the stored chunks that no manifest in `docs/manifests`
    /// lists (and temporary files of interrupted writes). A manifest that
    /// does not open with `key` keeps nothing.
    /// [`Store::prune_chunks`] every [`PRUNE_CHUNKS_EVERY`] generations:
    /// each prune reads every kept root and lists every chunk (a pass over
    /// the tree's size), while a generation adds only its changed chunks.
    pub fn prune_chunks_now_and_then(&self, key: &PublicKey, generation: u64) -> usize {
        if generation.is_multiple_of(PRUNE_CHUNKS_EVERY) {
            self.prune_chunks(key)
        } else {
            0
        }
    }

    pub fn prune_chunks(&self, key: &PublicKey) -> usize {
        let mut keep: std::collections::HashSet<String> = std::collections::HashSet::new();
        if let Ok(rd) = std::fs::read_dir(self.manifests_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                let Ok(env) = std::fs::read(e.path()) else {
                    continue;
                };
                let Ok(root) = key
                    .open("manifest", &env)
                    .map_err(anyhow::Error::from)
                    .and_then(|b| Root::from_body(&b).map_err(anyhow::Error::from))
                else {
                    continue;
                };
                keep.extend(
                    root.chunks
                        .iter()
                        .map(|c| format!("{}.zst", c.sha256.to_hex())),
                );
            }
        }
        let mut removed = 0;
        if let Ok(rd) = std::fs::read_dir(self.chunks_dir()) {
            for e in rd.filter_map(|e| e.ok()) {
                let name = e.file_name();
                if name.to_str().map(|n| keep.contains(n)) != Some(true)
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
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

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_manifest::signed::PrivateKey;
    use shoal_manifest::{Entry, EntryKind, Header, FORMAT};

    fn manifest(generation: u64, n: u64, changed: u64) -> Manifest {
        let entries: Vec<_> = (0..n)
            .map(|i| Entry {
                path: format!("f{i:04}"),
                kind: EntryKind::File {
                    size: 0,
                    sha256: Sha256Hash::of(b""),
                    pack: None,
                },
                mode: 0o644,
                mtime_ns: if i == changed { generation as i64 } else { 0 },
            })
            .collect();
        Manifest::new(
            Header {
                format: FORMAT,
                generation,
                profile: "generic".into(),
                created: 0,
                expires: 1,
                prev_sha256: None,
                packs: vec![],
            },
            entries,
        )
    }

    /// Stored manifests read back whole; chunks are written once and kept
    /// while a kept manifest lists them.
    #[test]
    fn manifests_and_chunks_round_trip_and_prune() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let key = PrivateKey::generate();
        let pk = key.public();
        let ids = |m: &Manifest| -> std::collections::BTreeSet<Sha256Hash> {
            m.chunks().iter().map(|c| c.sha256).collect()
        };
        let m1 = manifest(1, 1000, 500);
        assert!(m1.chunks().len() > 4);
        let all = |m: &Manifest| m.clone().take_new_chunks();
        assert_eq!(store.write_chunks(&all(&m1)).unwrap(), m1.chunks().len());
        crate::fsutil::atomic_write(&store.manifest(1), &key.seal("manifest", &m1.body())).unwrap();
        let m2 = manifest(2, 1000, 501);
        let fresh = ids(&m2).difference(&ids(&m1)).count();
        assert!((1..=2).contains(&fresh));
        assert_eq!(store.write_chunks(&all(&m2)).unwrap(), fresh);
        crate::fsutil::atomic_write(&store.manifest(2), &key.seal("manifest", &m2.body())).unwrap();
        let (back, sha) = store.read_manifest(&pk, 2).unwrap();
        assert_eq!(back, m2);
        assert_eq!(sha, m2.sha256());
        // A chunk nothing lists, and one of a pruned manifest, go.
        store
            .put_chunk(&store.chunk(&Sha256Hash::of(b"x")), b"x")
            .unwrap();
        assert_eq!(store.prune_chunks(&pk), 1);
        std::fs::remove_file(store.manifest(1)).unwrap();
        assert_eq!(store.prune_chunks(&pk), fresh);
        let left = std::fs::read_dir(store.chunks_dir()).unwrap().count();
        assert_eq!(left, m2.chunks().len());
        // A damaged chunk is named.
        let c = m2.chunks()[0].sha256;
        std::fs::write(store.chunk(&c), b"[]").unwrap();
        let e = format!("{:#}", store.read_manifest(&pk, 2).unwrap_err());
        assert!(
            e.contains("missing or damaged") && e.contains(&c.to_hex()),
            "{e}"
        );
    }

    /// A format 2 manifest written before an upgrade reads as format 3,
    /// its chunks stored.
    #[test]
    fn a_stored_format_2_manifest_is_converted() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::new(t.path());
        let key = PrivateKey::generate();
        let m = manifest(7, 300, 0);
        let mut legacy = serde_json::to_value(&m.header).unwrap();
        legacy["format"] = 2.into();
        legacy["entries"] = serde_json::to_value(m.to_entries()).unwrap();
        let body = serde_json::to_vec(&legacy).unwrap();
        crate::fsutil::atomic_write(&store.manifest(7), &key.seal("manifest", &body)).unwrap();
        let (back, sha) = store.read_manifest(&key.public(), 7).unwrap();
        assert_eq!(back, m);
        assert_eq!(sha, m.sha256());
        for c in m.chunks() {
            assert!(store.chunk(&c.sha256).exists());
        }
    }
}
