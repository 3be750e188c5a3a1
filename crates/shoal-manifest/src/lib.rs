//! Shoal's publication format: what an origin signs and a mirror verifies.
//!
//! - [`Manifest`]: generation G of a repository: every file's path, size,
//!   mode, mtime, SHA-256 and the pack (torrent) that carries its content,
//!   plus profile, creation and expiry times and the hash of manifest G-1.
//! - [`Delta`]: what changed from G-1 to G, so mirrors need not fetch a full
//!   manifest for every generation. Applying it to manifest G-1 must give
//!   exactly manifest G (checked by hash).
//! - [`Head`]: the small document mirrors poll: newest generation and the
//!   hash of its manifest.
//! - [`signed`]: the envelope that carries all three, signed with ed25519.
//! - [`paths`]: the rules every path and symlink target must follow.
//!
//! Bodies are compact JSON with entries sorted by path, so the same
//! manifest always serializes to the same bytes; hashes are SHA-256 of
//! those bytes.

pub mod paths;
pub mod signed;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the format written into every body.
///
/// - 1: every content of a pack starts on a piece boundary.
/// - 2: contents smaller than a piece are packed back to back at the end
///   of a pack (`shoal_pack`'s packed region). An agent that reads only
///   format 1 refuses format 2 documents rather than misreading the packs
///   they name.
pub const FORMAT: u32 = 2;

/// Oldest format this version reads: format 1 packs are format 2 packs
/// without a packed region, so an upgraded mirror still follows an origin
/// that has not been upgraded yet.
pub const MIN_FORMAT: u32 = 1;

/// Refuses a document of a format this version cannot read.
fn check_format(format: u32) -> Result<(), Error> {
    if (MIN_FORMAT..=FORMAT).contains(&format) {
        Ok(())
    } else {
        Err(Error::Format(format))
    }
}

fn format_advice(format: u32) -> String {
    if format > FORMAT {
        format!(
            "format {format} is newer than this shoal-agent reads (formats {MIN_FORMAT} to \
             {FORMAT}); upgrade shoal-agent on this host to the origin's version"
        )
    } else {
        format!(
            "format {format} is older than this shoal-agent reads (formats {MIN_FORMAT} to \
             {FORMAT}); upgrade the upstream's shoal-agent"
        )
    }
}

/// A SHA-256 digest, serialized as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256Hash(pub [u8; 32]);

impl Sha256Hash {
    pub fn of(bytes: &[u8]) -> Self {
        Sha256Hash(Sha256::digest(bytes).into())
    }
    pub fn to_hex(&self) -> String {
        self.hex_buf().as_str().to_string()
    }
    /// The 64 hex digits in a stack buffer (serializing a manifest writes
    /// one per file: no allocation each).
    fn hex_buf(&self) -> HexBuf {
        let mut b = [0u8; 64];
        hex::encode_to_slice(self.0, &mut b).expect("64 bytes hold 32 in hex");
        HexBuf(b)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Sha256Hash(out))
    }
}

struct HexBuf([u8; 64]);

impl HexBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl std::fmt::Debug for Sha256Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl std::fmt::Display for Sha256Hash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Sha256Hash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.hex_buf().as_str())
    }
}

impl<'de> Deserialize<'de> for Sha256Hash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Sha256Hash::from_hex(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not a SHA-256 hex digest")))
    }
}

/// One pack: an immutable BitTorrent v1 torrent over a group of contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackRef {
    /// Stable number assigned by the origin; entries refer to packs by it.
    pub id: u64,
    /// BitTorrent v1 info hash (40 hex digits). A `.torrent` fetched from any
    /// peer is accepted only if its info dictionary hashes to this.
    pub info_hash: String,
    /// Number of contents (not counting padding).
    pub files: u64,
    /// Bytes of content (not counting padding).
    pub bytes: u64,
}

/// What a manifest entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum EntryKind {
    /// A regular file. Empty files have no pack.
    File {
        size: u64,
        sha256: Sha256Hash,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pack: Option<u64>,
    },
    /// A symbolic link whose target stays inside the tree.
    Symlink { target: String },
}

/// One path of the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative, normalized path ([`paths::check`]).
    pub path: String,
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Permission bits (`0o644`); only the low 12 bits are used.
    pub mode: u32,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

impl Entry {
    /// Size and hash if this is a regular file.
    pub fn file(&self) -> Option<(u64, &Sha256Hash, Option<u64>)> {
        match &self.kind {
            EntryKind::File { size, sha256, pack } => Some((*size, sha256, *pack)),
            EntryKind::Symlink { .. } => None,
        }
    }
}

/// Everything of a manifest except its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    pub generation: u64,
    /// `debian`, `rpm` or `generic`.
    pub profile: String,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which mirrors refuse this manifest.
    pub expires: i64,
    /// SHA-256 of the body of manifest G-1 (the chain); `None` for the first.
    pub prev_sha256: Option<Sha256Hash>,
    /// Every live pack, by id.
    pub packs: Vec<PackRef>,
}

/// Generation G of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(flatten)]
    pub header: Header,
    /// Sorted by path (byte order), no duplicates.
    pub entries: Vec<Entry>,
}

/// The change from manifest G-1 to manifest G.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delta {
    pub format: u32,
    pub from_generation: u64,
    pub from_sha256: Sha256Hash,
    /// SHA-256 of the body of manifest G, which applying this delta must give.
    pub manifest_sha256: Sha256Hash,
    /// The origin's signature of manifest G, so a mirror that built G from
    /// this delta can serve G's signed envelope to others
    /// ([`signed::envelope`]).
    pub manifest_signature: String,
    /// The header of manifest G.
    pub header: Header,
    /// Entries added or changed, sorted by path.
    pub upserts: Vec<Entry>,
    /// Paths removed, sorted.
    pub removals: Vec<String>,
}

/// The newest generation, for cheap polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub format: u32,
    pub generation: u64,
    pub manifest_sha256: Sha256Hash,
    pub created: i64,
    pub expires: i64,
}

/// Why a document was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{0}")]
    Signed(#[from] signed::Error),
    #[error(
        "malformed {kind}: {detail}; the upstream served a broken document, try another upstream"
    )]
    Malformed { kind: &'static str, detail: String },
    #[error("unsupported document: {}", format_advice(*.0))]
    Format(u32),
    #[error(
        "generation {generation} expired at {expires} (now {now}): the origin has not published \
         for too long (freeze protection); check that the origin is running"
    )]
    Expired {
        generation: u64,
        expires: i64,
        now: i64,
    },
    #[error("bad path in generation {generation}: {detail}")]
    BadPath { generation: u64, detail: String },
    #[error(
        "delta does not fit: it goes from generation {from} ({from_hash}) but the mirror has \
         {have} ({have_hash}); fetching the full manifest instead"
    )]
    DeltaMismatch {
        from: u64,
        from_hash: String,
        have: u64,
        have_hash: String,
    },
    #[error(
        "manifest hash mismatch for generation {generation}: expected {expected}, got {got}; \
         the document was altered or mixed from different generations"
    )]
    HashMismatch {
        generation: u64,
        expected: String,
        got: String,
    },
}

impl Manifest {
    /// The canonical body bytes (compact JSON).
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifest serializes")
    }

    /// SHA-256 of [`Manifest::body`].
    pub fn sha256(&self) -> Sha256Hash {
        Sha256Hash::of(&self.body())
    }

    /// Parses and fully checks a body: format, sorted unique paths, path
    /// rules, symlink targets, pack references, no file-vs-directory clash.
    pub fn from_body(body: &[u8]) -> Result<Self, Error> {
        let m: Manifest = serde_json::from_slice(body).map_err(|e| Error::Malformed {
            kind: "manifest",
            detail: e.to_string(),
        })?;
        m.check()?;
        Ok(m)
    }

    /// Checks the invariants that [`Manifest::from_body`] promises.
    pub fn check(&self) -> Result<(), Error> {
        check_format(self.header.format)?;
        let generation = self.header.generation;
        let bad = |detail: String| Error::BadPath { generation, detail };
        let packs: std::collections::HashSet<u64> =
            self.header.packs.iter().map(|p| p.id).collect();
        let mut prev: Option<&str> = None;
        let mut total: u64 = 0;
        for e in &self.entries {
            paths::check(&e.path).map_err(|d| bad(format!("'{}': {d}", e.path)))?;
            if let Some(p) = prev {
                if p.as_bytes() >= e.path.as_bytes() {
                    return Err(bad(format!(
                        "entries not sorted or duplicated at '{}'",
                        e.path
                    )));
                }
            }
            match &e.kind {
                EntryKind::Symlink { target } => {
                    paths::check_symlink(&e.path, target)
                        .map_err(|d| bad(format!("symlink '{}' -> '{target}': {d}", e.path)))?;
                }
                EntryKind::File { size, pack, .. } => match pack {
                    _ if total.checked_add(*size).is_none() => {
                        return Err(Error::Malformed {
                            kind: "manifest",
                            detail: format!(
                                "file sizes add up to more than {} bytes at '{}'",
                                u64::MAX,
                                e.path
                            ),
                        })
                    }
                    Some(id) if !packs.contains(id) => {
                        return Err(bad(format!("'{}' refers to unknown pack {id}", e.path)))
                    }
                    None if *size > 0 => {
                        return Err(bad(format!("'{}' has content but no pack", e.path)))
                    }
                    _ => total += size,
                },
            }
            prev = Some(&e.path);
        }
        // A file 'a' and an entry 'a/b' would need 'a' to be a directory.
        let mut files: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for e in &self.entries {
            files.insert(&e.path);
        }
        for e in &self.entries {
            let mut p = e.path.as_str();
            while let Some(i) = p.rfind('/') {
                p = &p[..i];
                if files.contains(p) {
                    return Err(bad(format!(
                        "'{p}' is a file or symlink but '{}' needs it to be a directory",
                        e.path
                    )));
                }
            }
        }
        Ok(())
    }

    /// Refuses an expired manifest.
    pub fn check_fresh(&self, now: i64) -> Result<(), Error> {
        check_fresh(self.header.generation, self.header.expires, now)
    }

    /// Total bytes of regular files ([`Manifest::check`] refuses a
    /// manifest whose total does not fit in a u64; this saturates).
    pub fn total_bytes(&self) -> u64 {
        self.entries
            .iter()
            .filter_map(|e| e.file())
            .fold(0u64, |t, f| t.saturating_add(f.0))
    }

    /// The delta that turns `prev` into `self`; `manifest_signature` is the
    /// signature of `self`'s envelope ([`signed::signature_of`]).
    pub fn delta_from(&self, prev: &Manifest, manifest_signature: String) -> Delta {
        let old: BTreeMap<&str, &Entry> =
            prev.entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let new: BTreeMap<&str, &Entry> =
            self.entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let upserts = self
            .entries
            .iter()
            .filter(|e| old.get(e.path.as_str()) != Some(e))
            .cloned()
            .collect();
        let removals = prev
            .entries
            .iter()
            .filter(|e| !new.contains_key(e.path.as_str()))
            .map(|e| e.path.clone())
            .collect();
        Delta {
            format: FORMAT,
            from_generation: prev.header.generation,
            from_sha256: prev.sha256(),
            manifest_sha256: self.sha256(),
            manifest_signature,
            header: self.header.clone(),
            upserts,
            removals,
        }
    }
}

impl Delta {
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("delta serializes")
    }

    pub fn from_body(body: &[u8]) -> Result<Self, Error> {
        let d: Delta = serde_json::from_slice(body).map_err(|e| Error::Malformed {
            kind: "delta",
            detail: e.to_string(),
        })?;
        check_format(d.format)?;
        Ok(d)
    }

    /// Applies this delta to `prev` (whose hash the caller computed once as
    /// `prev_hash`), checking that it starts where `prev` is and that the
    /// result hashes to what the delta promises.
    pub fn apply(&self, prev: &Manifest, prev_hash: &Sha256Hash) -> Result<Manifest, Error> {
        if self.from_generation != prev.header.generation || &self.from_sha256 != prev_hash {
            return Err(Error::DeltaMismatch {
                from: self.from_generation,
                from_hash: self.from_sha256.to_hex(),
                have: prev.header.generation,
                have_hash: prev_hash.to_hex(),
            });
        }
        let m = Manifest {
            header: self.header.clone(),
            entries: self.merge(&prev.entries),
        };
        m.check()?;
        let got = m.sha256();
        if got != self.manifest_sha256 {
            return Err(Error::HashMismatch {
                generation: self.header.generation,
                expected: self.manifest_sha256.to_hex(),
                got: got.to_hex(),
            });
        }
        Ok(m)
    }

    /// `prev`'s entries with this delta's removals and upserts, in one
    /// pass over both sorted lists. Unsorted or duplicated upserts or
    /// removals (a forged delta) give an unsorted result, which
    /// [`Manifest::check`] refuses.
    fn merge(&self, prev: &[Entry]) -> Vec<Entry> {
        let mut out = Vec::with_capacity(prev.len() + self.upserts.len());
        let mut removals = self.removals.iter().map(|r| r.as_bytes()).peekable();
        let mut ups = self.upserts.iter().peekable();
        for e in prev {
            let p = e.path.as_bytes();
            while let Some(u) = ups.next_if(|u| u.path.as_bytes() < p) {
                out.push(u.clone());
            }
            while removals.next_if(|r| *r < p).is_some() {}
            let removed = removals.next_if(|r| *r == p).is_some();
            match ups.next_if(|u| u.path.as_bytes() == p) {
                Some(u) => out.push(u.clone()),
                None if removed => {}
                None => out.push(e.clone()),
            }
        }
        out.extend(ups.cloned());
        out
    }
}

impl Head {
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("head serializes")
    }

    pub fn from_body(body: &[u8]) -> Result<Self, Error> {
        let h: Head = serde_json::from_slice(body).map_err(|e| Error::Malformed {
            kind: "head",
            detail: e.to_string(),
        })?;
        check_format(h.format)?;
        Ok(h)
    }

    pub fn check_fresh(&self, now: i64) -> Result<(), Error> {
        check_fresh(self.generation, self.expires, now)
    }
}

fn check_fresh(generation: u64, expires: i64, now: i64) -> Result<(), Error> {
    if now >= expires {
        return Err(Error::Expired {
            generation,
            expires,
            now,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8], pack: Option<u64>) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: content.len() as u64,
                sha256: Sha256Hash::of(content),
                pack,
            },
            mode: 0o644,
            mtime_ns: 1_700_000_000_000_000_000,
        }
    }

    fn manifest(generation: u64, entries: Vec<Entry>) -> Manifest {
        Manifest {
            header: Header {
                format: FORMAT,
                generation,
                profile: "debian".into(),
                created: 100,
                expires: 1000,
                prev_sha256: None,
                packs: vec![PackRef {
                    id: 1,
                    info_hash: "00".repeat(20),
                    files: 2,
                    bytes: 6,
                }],
            },
            entries,
        }
    }

    #[test]
    fn delta_round_trips() {
        let a = manifest(
            1,
            vec![file("a", b"one", Some(1)), file("b/c", b"two", Some(1))],
        );
        let mut b = manifest(2, vec![file("a", b"uno", Some(1)), file("d", b"", None)]);
        b.header.prev_sha256 = Some(a.sha256());
        let d = b.delta_from(&a, String::new());
        assert_eq!(d.removals, vec!["b/c".to_string()]);
        assert_eq!(d.upserts.len(), 2);
        let body = d.body();
        let d2 = Delta::from_body(&body).unwrap();
        assert_eq!(d2.apply(&a, &a.sha256()).unwrap(), b);
    }

    /// Format versions: a newer document is refused with advice to
    /// upgrade this agent, an older unreadable one with advice to upgrade
    /// the upstream; format 1 (every content aligned) is still read.
    #[test]
    fn formats_out_of_range_are_refused_with_advice() {
        let a = manifest(1, vec![file("a", b"one", Some(1))]);
        let head = |format: u32| Head {
            format,
            generation: 1,
            manifest_sha256: a.sha256(),
            created: 100,
            expires: 1000,
        };
        for format in MIN_FORMAT..=FORMAT {
            let mut m = a.clone();
            m.header.format = format;
            Manifest::from_body(&m.body()).unwrap();
            Head::from_body(&head(format).body()).unwrap();
            let mut d = m.delta_from(&a, String::new());
            d.format = format;
            Delta::from_body(&d.body()).unwrap();
        }
        let mut newer = a.clone();
        newer.header.format = FORMAT + 1;
        let e = Manifest::from_body(&newer.body()).unwrap_err();
        assert_eq!(e, Error::Format(FORMAT + 1));
        let msg = e.to_string();
        assert!(
            msg.contains("newer") && msg.contains("upgrade shoal-agent on this host"),
            "{msg}"
        );
        let msg = Head::from_body(&head(FORMAT + 1).body())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("newer"), "{msg}");
        let mut d = newer.delta_from(&a, String::new());
        d.format = FORMAT + 1;
        let msg = Delta::from_body(&d.body()).unwrap_err().to_string();
        assert!(msg.contains("newer"), "{msg}");
        let msg = Head::from_body(&head(MIN_FORMAT - 1).body())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("older") && msg.contains("upgrade the upstream"),
            "{msg}"
        );
    }

    #[test]
    fn deltas_merge_in_one_pass_at_every_position_and_forged_order_is_refused() {
        let names = ["b", "d", "f/g", "h"];
        let a = manifest(
            1,
            names
                .iter()
                .map(|n| file(n, n.as_bytes(), Some(1)))
                .collect(),
        );
        // Insert before the first, between, after the last; change one;
        // remove one; remove and upsert the same path.
        let mut b = manifest(
            2,
            vec![
                file("a", b"new", Some(1)),
                file("b", b"b", Some(1)),
                file("c", b"new", Some(1)),
                file("f/g", b"changed", Some(1)),
                file("h", b"back", Some(1)),
                file("z", b"new", Some(1)),
            ],
        );
        b.header.prev_sha256 = Some(a.sha256());
        let mut d = b.delta_from(&a, String::new());
        assert_eq!(d.removals, vec!["d".to_string()]);
        d.removals.push("h".into());
        d.removals.push("nowhere".into());
        assert_eq!(d.apply(&a, &a.sha256()).unwrap(), b);

        // Upserts out of order, or twice, make an unsorted manifest.
        let mut swapped = b.delta_from(&a, String::new());
        swapped.upserts.swap(0, 1);
        assert!(matches!(
            swapped.apply(&a, &a.sha256()),
            Err(Error::BadPath { .. })
        ));
        let mut twice = b.delta_from(&a, String::new());
        twice.upserts.insert(0, twice.upserts[0].clone());
        assert!(matches!(
            twice.apply(&a, &a.sha256()),
            Err(Error::BadPath { .. })
        ));
    }

    #[test]
    fn delta_on_wrong_base_is_refused() {
        let a = manifest(1, vec![file("a", b"one", Some(1))]);
        let other = manifest(1, vec![file("a", b"eins", Some(1))]);
        let b = manifest(2, vec![]);
        let d = b.delta_from(&a, String::new());
        let e = d.apply(&other, &other.sha256()).unwrap_err();
        assert!(matches!(e, Error::DeltaMismatch { .. }), "{e}");
    }

    #[test]
    fn tampered_delta_fails_hash() {
        let a = manifest(1, vec![file("a", b"one", Some(1))]);
        let b = manifest(2, vec![file("a", b"two", Some(1))]);
        let mut d = b.delta_from(&a, String::new());
        d.upserts[0] = file("a", b"evil", Some(1));
        let e = d.apply(&a, &a.sha256()).unwrap_err();
        assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    }

    #[test]
    fn body_round_trips_and_is_checked() {
        let a = manifest(3, vec![file("pool/x.deb", b"x", Some(1))]);
        assert_eq!(Manifest::from_body(&a.body()).unwrap(), a);
        for (bad, why) in [
            (
                manifest(3, vec![file("../etc/passwd", b"x", Some(1))]),
                "..",
            ),
            (
                manifest(3, vec![file("/etc/passwd", b"x", Some(1))]),
                "absolute",
            ),
            (manifest(3, vec![file("a\0b", b"x", Some(1))]), "NUL"),
            (
                manifest(3, vec![file("b", b"x", Some(1)), file("a", b"x", Some(1))]),
                "sorted",
            ),
            (manifest(3, vec![file("a", b"x", Some(7))]), "unknown pack"),
            (
                manifest(
                    3,
                    vec![file("a", b"x", Some(1)), file("a/b", b"x", Some(1))],
                ),
                "directory",
            ),
            (
                manifest(
                    3,
                    vec![
                        file("a", b"x", Some(1)),
                        file("a-b", b"x", Some(1)),
                        file("a/c", b"x", Some(1)),
                    ],
                ),
                "directory",
            ),
        ] {
            let e = Manifest::from_body(&bad.body()).unwrap_err().to_string();
            assert!(e.contains(why), "expected '{why}' in: {e}");
        }
        let mut m = manifest(3, vec![]);
        m.entries.push(Entry {
            path: "dists/x".into(),
            kind: EntryKind::Symlink {
                target: "../../etc".into(),
            },
            mode: 0o777,
            mtime_ns: 0,
        });
        let e = Manifest::from_body(&m.body()).unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
        let e = Manifest::from_body(b"{\"format\":1,")
            .unwrap_err()
            .to_string();
        assert!(e.contains("malformed manifest"), "{e}");
    }

    #[test]
    fn expiry() {
        let m = manifest(1, vec![]);
        assert!(m.check_fresh(999).is_ok());
        let e = m.check_fresh(1000).unwrap_err().to_string();
        assert!(e.contains("expired"), "{e}");
    }

    /// Found by shoal-fuzz (manifest and checkpoint targets): file sizes
    /// whose sum overflows u64 made `total_bytes` panic in checked builds
    /// (a mirror calls it on every manifest it takes).
    #[test]
    fn sizes_that_overflow_the_total_are_refused() {
        let mut m = manifest(3, vec![file("a", b"x", Some(1)), file("b", b"y", Some(1))]);
        for e in &mut m.entries {
            if let EntryKind::File { size, .. } = &mut e.kind {
                *size = u64::MAX / 2 + 1;
            }
        }
        assert_eq!(m.total_bytes(), u64::MAX);
        let e = Manifest::from_body(&m.body()).unwrap_err().to_string();
        assert!(e.contains("add up to more than"), "{e}");
        // exactly u64::MAX in total is still a manifest
        if let EntryKind::File { size, .. } = &mut m.entries[1].kind {
            *size = u64::MAX / 2;
        }
        assert_eq!(
            Manifest::from_body(&m.body()).unwrap().total_bytes(),
            u64::MAX
        );
    }
}
