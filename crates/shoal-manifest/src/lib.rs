//! Shoal's publication format: what an origin signs and a mirror verifies.
//!
//! - [`Manifest`]: generation G of a repository: every file's path, size,
//!   mode, mtime, SHA-256 and the pack (torrent) that carries its content,
//!   plus profile, creation and expiry times and the hash of manifest G-1;
//!   sent as a signed [`Root`] and content-addressed chunks.
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
//!
//! Since format 3 a manifest is stored, signed and sent as a small
//! [`Root`] (the header and a list of [`ChunkRef`]s) plus content-addressed
//! *chunks*: the compact JSON array of a run of consecutive entries, named
//! by its SHA-256. Chunk boundaries are content-defined (an entry ends a
//! chunk when a hash of its path has its low [`CUT_BITS`] bits zero, or when
//! the chunk holds [`MAX_CHUNK_ENTRIES`]), so an insert or removal changes
//! one or two chunks, not every following one. The manifest hash (head,
//! delta, `prev_sha256`) is the SHA-256 of the root body, and the origin's
//! signature covers the root body. A [`Manifest`] in memory keeps its chunk
//! list as shared chunks of entries, so [`Manifest::with_changes`] (the
//! origin's next generation) and [`Delta::apply`] (a mirror following)
//! re-serialize and re-hash only the chunks that hold a changed path, and
//! share the rest with the previous generation (see [`manifest`]).

mod manifest;
pub mod part;
pub mod paths;
pub mod signed;

pub use manifest::{drain_shrinking, Assembly, Change, Manifest, ShrinkingDrain};
pub use part::{Entries, EntriesBuilder, EntryRef, KindRef, Part};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the format written into every body.
///
/// - 1: every content of a pack starts on a piece boundary.
/// - 2: contents smaller than a piece are packed back to back at the end
///   of a pack (`shoal_pack`'s packed region). An agent that reads only
///   format 1 refuses format 2 documents rather than misreading the packs
///   they name.
/// - 3: the manifest body is a [`Root`] listing content-addressed chunks
///   of entries (packs as in format 2). Agents that read format 2 refuse
///   format 3 heads ("newer than this shoal-agent reads ... upgrade").
/// - 4: the packs it names are torrents of one file, the pack's byte
///   stream, with the contents listed in the info dictionary
///   (`shoal_pack::Shape::Stream`), so BitTorrent clients keep one file's
///   state per pack. Agents that read format 3 would refuse such a pack
///   as "not a Shoal pack torrent"; they refuse format 4 heads instead
///   and say to upgrade. This version still reads format 3 generations
///   and seeds their packs (the same stream, listed a file per content).
pub const FORMAT: u32 = 4;

/// Oldest format this version reads. Format 2 manifests carry every entry
/// in one signed body; reading them would keep a second manifest code path
/// alive, so this version refuses them and says to upgrade the upstream
/// (origins and mirrors are upgraded origin first: see
/// `docs/design-decisions.md`, "Chunked manifests").
pub const MIN_FORMAT: u32 = 3;

/// An entry whose path hash ([`cuts_after`]) has these low bits zero ends
/// its chunk: 64 entries (about 10 KB of JSON) per chunk on average, so a
/// 1M-entry manifest has about 16k chunks and a 2 MB root. Smaller chunks
/// make the root bigger; bigger ones make a change spread over the tree
/// touch more of the entries (`docs/design-decisions.md`).
pub const CUT_BITS: u32 = 6;

/// A chunk ends after this many entries even without a cut.
pub const MAX_CHUNK_ENTRIES: usize = 512;

/// Largest chunk body accepted ([`MAX_CHUNK_ENTRIES`] entries of the
/// longest paths and symlink targets, escaped, fit).
pub const MAX_CHUNK_BYTES: u64 = 256 << 20;

/// Where path `p` lies against the run of paths under `t/`, for a `p`
/// that sorts after `t`.
#[derive(Debug, PartialEq)]
enum Beneath {
    /// `p` is under `t/`.
    Inside,
    /// `p` sorts before the run (it extends `t` with a byte below '/'),
    /// so a later path may still be under `t/`.
    Before,
    /// `p` sorts after the run: no later path is under `t/`.
    Past,
}

fn beneath(p: &str, t: &str) -> Beneath {
    match p
        .as_bytes()
        .strip_prefix(t.as_bytes())
        .and_then(|r| r.first())
    {
        Some(b'/') => Beneath::Inside,
        Some(c) if *c < b'/' => Beneath::Before,
        _ => Beneath::Past,
    }
}

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
    pub(crate) fn hex_buf(&self) -> HexBuf {
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

pub(crate) struct HexBuf(pub(crate) [u8; 64]);

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

    /// What the entry is, borrowed as [`EntryRef::kind`] gives it.
    pub fn kind_ref(&self) -> KindRef<'_> {
        match &self.kind {
            EntryKind::File { size, sha256, pack } => KindRef::File {
                size: *size,
                sha256,
                pack: *pack,
            },
            EntryKind::Symlink { target } => KindRef::Symlink { target },
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

impl Header {
    /// Refuses a generation past its `expires`.
    pub fn check_fresh(&self, now: i64) -> Result<(), Error> {
        check_fresh(self.generation, self.expires, now)
    }
}

/// One chunk as the root lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    /// Path of the chunk's first entry; shared by the generations that
    /// hold the chunk (a generation copies every unchanged chunk's line).
    pub first: std::sync::Arc<str>,
    /// Number of entries in the chunk.
    pub count: u64,
    /// SHA-256 of the chunk body (its id, `GET /v1/chunk/{sha256}`).
    pub sha256: Sha256Hash,
}

/// The signed body of a format 3 manifest: the header and the chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Root {
    #[serde(flatten)]
    pub header: Header,
    pub chunks: Vec<ChunkRef>,
}

/// [`Root`] borrowed from a [`Manifest`], for serializing without copies.
#[derive(Serialize)]
struct RootRef<'a> {
    #[serde(flatten)]
    header: &'a Header,
    chunks: &'a [ChunkRef],
}

/// Whether an entry with this path ends its chunk: the low [`CUT_BITS`]
/// bits of a 64-bit FNV-1a hash of the path (with a final mix) are zero.
/// Part of the format: origin and mirrors must cut alike.
pub fn cuts_after(path: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h & ((1u64 << CUT_BITS) - 1) == 0
}

/// The body of a chunk: the compact JSON array of its entries (what
/// [`Part::body`] writes for the same entries).
pub fn chunk_body(entries: &[Entry]) -> Vec<u8> {
    serde_json::to_vec(entries).expect("entries serialize")
}

/// A chunk body as it is stored and sent (`GET /v1/chunk/{sha256}`):
/// zstd-compressed. The id stays the SHA-256 of the uncompressed body.
pub fn compress_chunk(body: &[u8]) -> Vec<u8> {
    // One compressor per thread: setting up a zstd context costs more
    // than compressing a chunk. Level 1: a chunk is mostly hex digests,
    // which higher levels do not shrink further, only slower.
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let c = match &mut *c {
            Some(c) => c,
            None => c.insert(zstd::bulk::Compressor::new(1).expect("zstd context")),
        };
        let mut z = c.compress(body).expect("zstd compress");
        // The buffer was sized for the worst case (about the body's size);
        // callers keep many of these.
        z.shrink_to_fit();
        z
    })
}

/// The chunk body in `bytes` ([`compress_chunk`]), decompressed with a
/// bound of [`MAX_CHUNK_BYTES`], so a hostile peer cannot exhaust memory.
/// The caller checks it against its id.
pub fn decompress_chunk(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(bytes)
        .and_then(|d| d.take(MAX_CHUNK_BYTES + 1).read_to_end(&mut out))
        .map_err(|e| Error::Malformed {
            kind: "chunk",
            detail: format!("not a zstd stream: {e}"),
        })?;
    if out.len() as u64 > MAX_CHUNK_BYTES {
        return Err(Error::Malformed {
            kind: "chunk",
            detail: format!("larger than {MAX_CHUNK_BYTES} bytes"),
        });
    }
    Ok(out)
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
    /// SHA-256 of the manifest's root body ([`Manifest::body`]).
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
    #[error(
        "chunk {index} of generation {generation} refused: {detail}; the upstream served a \
         broken or forged document, try another upstream"
    )]
    Chunk {
        generation: u64,
        index: usize,
        detail: String,
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

impl Root {
    /// Parses a root body and checks its format and chunk list (counts in
    /// range, first paths strictly increasing). The chunks themselves are
    /// checked by [`Manifest::from_root`].
    pub fn from_body(body: &[u8]) -> Result<Self, Error> {
        let r: Root = serde_json::from_slice(body).map_err(|e| Error::Malformed {
            kind: "manifest",
            detail: e.to_string(),
        })?;
        check_format(r.header.format)?;
        r.check_chunk_list()?;
        Ok(r)
    }

    fn check_chunk_list(&self) -> Result<(), Error> {
        let r = self;
        let generation = r.header.generation;
        let bad = |index: usize, detail: String| Error::Chunk {
            generation,
            index,
            detail,
        };
        for (i, c) in r.chunks.iter().enumerate() {
            if c.count == 0 || c.count > MAX_CHUNK_ENTRIES as u64 {
                return Err(bad(
                    i,
                    format!(
                        "it lists {} entries (a chunk holds 1 to {MAX_CHUNK_ENTRIES})",
                        c.count
                    ),
                ));
            }
            if i > 0 && r.chunks[i - 1].first.as_bytes() >= c.first.as_bytes() {
                return Err(bad(
                    i,
                    format!(
                        "its first path '{}' does not sort after the previous chunk's '{}'",
                        c.first,
                        r.chunks[i - 1].first
                    ),
                ));
            }
        }
        Ok(())
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("root serializes")
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
    /// `prev_hash`), checking that it starts where `prev` is, that what it
    /// changes follows the format's rules ([`Manifest::with_changes`]) and
    /// that the result hashes to what the delta promises. Costs what the
    /// delta changes, plus one pointer per chunk.
    pub fn apply(&self, prev: &Manifest, prev_hash: &Sha256Hash) -> Result<Manifest, Error> {
        self.apply_with_body(prev, prev_hash).map(|(m, _)| m)
    }

    /// [`Delta::apply`], also giving the new manifest's root body (which
    /// it serialized to check the hash, and which the origin signed).
    pub fn apply_with_body(
        &self,
        prev: &Manifest,
        prev_hash: &Sha256Hash,
    ) -> Result<(Manifest, Vec<u8>), Error> {
        if self.from_generation != prev.header.generation || &self.from_sha256 != prev_hash {
            return Err(Error::DeltaMismatch {
                from: self.from_generation,
                from_hash: self.from_sha256.to_hex(),
                have: prev.header.generation,
                have_hash: prev_hash.to_hex(),
            });
        }
        let m = Manifest::with_changes(
            self.header.clone(),
            prev,
            self.upserts.clone(),
            self.removals.clone(),
        )?;
        let body = m.body();
        let got = Sha256Hash::of(&body);
        if got != self.manifest_sha256 {
            return Err(Error::HashMismatch {
                generation: self.header.generation,
                expected: self.manifest_sha256.to_hex(),
                got: got.to_hex(),
            });
        }
        Ok((m, body))
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
        Manifest::new(
            Header {
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
        )
    }

    /// A file and a path under it are refused, exactly when a naive check
    /// (every ancestor of every path looked up in a set) refuses them.
    #[test]
    fn a_file_with_paths_under_it_is_found_as_a_set_of_ancestors_finds_it() {
        use rand::{seq::SliceRandom, Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let parts = ["a", "a-b", "a.c", "a0", "b", "a!"];
        for round in 0..400 {
            let mut paths: Vec<String> = (0..rng.gen_range(1..12))
                .map(|_| {
                    (0..rng.gen_range(1..4))
                        .map(|_| *parts.choose(&mut rng).unwrap())
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            paths.sort();
            paths.dedup();
            let set: std::collections::HashSet<&str> = paths.iter().map(|p| p.as_str()).collect();
            let naive = paths
                .iter()
                .any(|p| p.match_indices('/').any(|(i, _)| set.contains(&p[..i])));
            let m = manifest(1, paths.iter().map(|p| file(p, b"", None)).collect());
            match m.check() {
                Ok(()) => assert!(!naive, "round {round}: {paths:?} passed"),
                Err(e) => {
                    assert!(naive, "round {round}: {paths:?}: {e}");
                    assert!(e.to_string().contains("needs it to be a directory"), "{e}");
                }
            }
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
            Manifest::from_bundle(&m.bundle()).unwrap();
            Head::from_body(&head(format).body()).unwrap();
            let mut d = m.delta_from(&a, String::new());
            d.format = format;
            Delta::from_body(&d.body()).unwrap();
        }
        let mut newer = a.clone();
        newer.header.format = FORMAT + 1;
        let e = Manifest::from_bundle(&newer.bundle()).unwrap_err();
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
        assert_eq!(Manifest::from_bundle(&a.bundle()).unwrap(), a);
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
            let e = Manifest::from_bundle(&bad.bundle())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "expected '{why}' in: {e}");
        }
        let m = manifest(
            3,
            vec![Entry {
                path: "dists/x".into(),
                kind: EntryKind::Symlink {
                    target: "../../etc".into(),
                },
                mode: 0o777,
                mtime_ns: 0,
            }],
        );
        let e = Manifest::from_bundle(&m.bundle()).unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
        let e = Manifest::from_bundle(b"{\"format\":3,")
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
        let mut v = vec![file("a", b"x", Some(1)), file("b", b"y", Some(1))];
        for e in &mut v {
            if let EntryKind::File { size, .. } = &mut e.kind {
                *size = u64::MAX / 2 + 1;
            }
        }
        let m = manifest(3, v.clone());
        assert_eq!(m.total_bytes(), u64::MAX);
        let e = Manifest::from_bundle(&m.bundle()).unwrap_err().to_string();
        assert!(e.contains("add up to more than"), "{e}");
        // exactly u64::MAX in total is still a manifest
        if let EntryKind::File { size, .. } = &mut v[1].kind {
            *size = u64::MAX / 2;
        }
        let m = manifest(3, v);
        assert_eq!(
            Manifest::from_bundle(&m.bundle()).unwrap().total_bytes(),
            u64::MAX
        );
    }
}

#[cfg(test)]
mod chunk_tests {
    use super::*;

    fn entry(path: String, n: u64) -> Entry {
        Entry {
            path,
            kind: EntryKind::File {
                size: n % 5,
                sha256: Sha256Hash::of(&n.to_le_bytes()),
                pack: (!n.is_multiple_of(5)).then_some(1),
            },
            mode: 0o644,
            mtime_ns: n as i64,
        }
    }

    fn header(generation: u64) -> Header {
        Header {
            format: FORMAT,
            generation,
            profile: "generic".into(),
            created: 100,
            expires: 1000,
            prev_sha256: None,
            packs: vec![PackRef {
                id: 1,
                info_hash: "00".repeat(20),
                files: 1,
                bytes: 1,
            }],
        }
    }

    fn tree(n: u64) -> Vec<Entry> {
        let mut v: Vec<Entry> = (0..n)
            .map(|i| entry(format!("pool/{:02}/pkg{i:06}.deb", i % 97), i))
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Chunks of `m` that `n` does not hold (by id).
    fn new_ids(m: &Manifest, n: &Manifest) -> usize {
        let old: std::collections::HashSet<_> = n.chunks().iter().map(|c| c.sha256).collect();
        m.chunks()
            .iter()
            .filter(|c| !old.contains(&c.sha256))
            .count()
    }

    #[test]
    fn chunks_are_content_defined_and_round_trip() {
        let m = Manifest::new(header(1), tree(20_000));
        let sizes: Vec<u64> = m.chunks().iter().map(|c| c.count).collect();
        assert_eq!(sizes.iter().sum::<u64>(), 20_000);
        // about 20000 / 64 chunks, none over the maximum
        assert!((150..=650).contains(&sizes.len()), "{}", sizes.len());
        assert!(sizes.iter().all(|&s| s as usize <= MAX_CHUNK_ENTRIES));
        assert_eq!(m.recomputed().len(), m.chunks().len());
        for (i, c) in m.chunks().iter().enumerate() {
            assert_eq!(Sha256Hash::of(&m.chunk_body(i)), c.sha256);
            assert_eq!(m.chunk_entries(i).get(0).path(), &*c.first);
        }
        let back = Manifest::from_bundle(&m.bundle()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.sha256(), m.sha256());
        // The root is small: the header and one line per chunk.
        assert!(m.body().len() < m.bundle().len() / 20);
        // An empty manifest has no chunks.
        let e = Manifest::new(header(1), vec![]);
        assert!(e.chunks().is_empty());
        assert_eq!(Manifest::from_bundle(&e.bundle()).unwrap(), e);
    }

    /// A run of entries without a cut is cut at the maximum.
    #[test]
    fn long_runs_without_a_cut_are_cut_at_the_maximum() {
        let v: Vec<Entry> = (0..20_000u64)
            .map(|i| entry(format!("f{i:06}"), i))
            .filter(|e| !cuts_after(&e.path))
            .take(MAX_CHUNK_ENTRIES * 2 + 5)
            .collect();
        let m = Manifest::new(header(1), v);
        let sizes: Vec<u64> = m.chunks().iter().map(|c| c.count).collect();
        let max = MAX_CHUNK_ENTRIES as u64;
        assert_eq!(sizes, vec![max, max, 5]);
        assert_eq!(Manifest::from_bundle(&m.bundle()).unwrap(), m);
    }

    /// The O(changed) promise, by count: after one insert, removal or
    /// change only the chunk that holds the path (or, when the path was a
    /// cut, that chunk and the next) is serialized and hashed again, and
    /// the result is exactly what cutting from scratch gives.
    #[test]
    fn only_chunks_holding_changed_paths_are_recomputed() {
        let base = tree(50_000);
        let prev = Manifest::new(header(1), base.clone());
        let n = prev.chunks().len();
        let check = |entries: Vec<Entry>, most: usize| {
            let full = Manifest::new(header(2), entries.clone());
            let inc = Manifest::following(header(2), entries, &prev).unwrap();
            assert_eq!(inc, full, "incremental cut equals cutting from scratch");
            assert!(
                !inc.recomputed().is_empty() && inc.recomputed().len() <= most,
                "recomputed {:?} of {n}",
                inc.recomputed()
            );
            assert!(new_ids(&inc, &prev) <= most);
            // The delta applied on a mirror recomputes as few.
            let d = inc.delta_from(&prev, String::new());
            let got = d.apply(&prev, &prev.sha256()).unwrap();
            assert_eq!(got, full);
            assert_eq!(got.recomputed(), inc.recomputed());
            inc
        };
        // change one entry in the middle: exactly the chunk holding it
        let mut v = base.clone();
        v[25_000].mtime_ns += 1;
        let holder = prev
            .chunks()
            .partition_point(|c| c.first.as_bytes() <= v[25_000].path.as_bytes())
            - 1;
        let inc = check(v, 1);
        assert_eq!(inc.recomputed(), &[holder]);
        assert_eq!(inc.chunks().len(), n);
        for (i, (a, b)) in inc.chunks().iter().zip(prev.chunks()).enumerate() {
            assert_eq!(a == b, i != holder, "chunk {i}");
        }
        // insert a path
        let mut v = base.clone();
        v.insert(10_001, entry(format!("{}x", v[10_000].path), 7));
        check(v, 2);
        // remove a path that ends a chunk: its chunk and the next merge
        let cut = base
            .iter()
            .position(|e| cuts_after(&e.path))
            .expect("some path cuts");
        let mut v = base.clone();
        v.remove(cut);
        let inc = check(v, 2);
        assert_eq!(inc.chunks().len(), n - 1);
        // remove the very first and add after the very last
        let mut v = base.clone();
        v.remove(0);
        v.push(entry("zzz".into(), 1));
        check(v, 2);
        // 0.1 % of the paths changed, clustered in one folder (an upload
        // of new package versions): a handful of chunks
        let mut v = base.clone();
        let mut changed = 0;
        for e in v.iter_mut().filter(|e| e.path.starts_with("pool/42/")) {
            if changed < 50 {
                e.mtime_ns += 1;
                changed += 1;
            }
        }
        let inc = check(v, 8);
        assert!(inc.recomputed().len() * 10 < n, "{:?}", inc.recomputed());
    }

    fn bad_bundle(m: &Manifest, edit: impl FnOnce(&mut Root, &mut Vec<Vec<u8>>)) -> Error {
        let mut root = Root::from_body(&m.body()).unwrap();
        let mut bodies: Vec<Vec<u8>> = (0..m.chunks().len()).map(|i| m.chunk_body(i)).collect();
        edit(&mut root, &mut bodies);
        Manifest::from_root(root, bodies).unwrap_err()
    }

    fn rehash(root: &mut Root, bodies: &[Vec<u8>], i: usize) {
        root.chunks[i].sha256 = Sha256Hash::of(&bodies[i]);
    }

    #[test]
    fn forged_chunks_are_refused_with_clear_errors() {
        let m = Manifest::new(header(1), tree(3_000));
        // a chunk in the middle with a few entries
        let j = (1..m.chunks().len() - 2)
            .find(|&i| m.chunks()[i].count >= 3)
            .expect("a chunk of 3 entries");
        let entries_of = |b: &[u8]| serde_json::from_slice::<Vec<Entry>>(b).unwrap();
        let cases: Vec<(&str, Error)> = vec![
            ("hashes to", bad_bundle(&m, |_, b| b[j][5] ^= 1)),
            (
                "body is missing",
                bad_bundle(&m, |_, b| {
                    b.pop();
                }),
            ),
            ("more bodies", bad_bundle(&m, |_, b| b.push(b"[]".to_vec()))),
            (
                "holds",
                bad_bundle(&m, |r, b| {
                    let mut e = entries_of(&b[j]);
                    e.pop();
                    b[j] = chunk_body(&e);
                    rehash(r, b, j);
                }),
            ),
            (
                "starts at",
                bad_bundle(&m, |r, b| {
                    r.chunks[j + 1].first = format!("{}0", r.chunks[j + 1].first).into();
                    rehash(r, b, j + 1);
                }),
            ),
            (
                "overlaps the next chunk",
                bad_bundle(&m, |r, b| {
                    let mut e = entries_of(&b[j]);
                    let n = e.len();
                    e[n - 1].path = format!("{}z", r.chunks[j + 1].first);
                    b[j] = chunk_body(&e);
                    rehash(r, b, j);
                }),
            ),
            (
                "not sorted",
                bad_bundle(&m, |r, b| {
                    let mut e = entries_of(&b[j]);
                    e.swap(1, 2);
                    b[j] = chunk_body(&e);
                    rehash(r, b, j);
                }),
            ),
            (
                "does not sort after",
                bad_bundle(&m, |r, _| r.chunks.swap(j, j + 1)),
            ),
            ("1 to", bad_bundle(&m, |r, _| r.chunks[0].count = 0)),
            (
                "not cut where the format cuts",
                bad_bundle(&m, |r, b| {
                    // chunks 1 and 2 as one chunk
                    let mut e = entries_of(&b[j]);
                    e.extend(entries_of(&b[j + 1]));
                    b[j] = chunk_body(&e);
                    b.remove(j + 1);
                    r.chunks[j].count = e.len() as u64;
                    r.chunks.remove(j + 1);
                    rehash(r, b, j);
                }),
            ),
            (
                "..",
                bad_bundle(&m, |r, b| {
                    let mut e = entries_of(&b[0]);
                    e[0].path = "../etc/passwd".into();
                    r.chunks[0].first = e[0].path.as_str().into();
                    b[0] = chunk_body(&e);
                    rehash(r, b, 0);
                }),
            ),
            (
                "not the compact JSON",
                bad_bundle(&m, |r, b| {
                    let mut v = b" ".to_vec();
                    v.extend_from_slice(&b[j]);
                    b[j] = v;
                    rehash(r, b, j);
                }),
            ),
            (
                "not a list of entries",
                bad_bundle(&m, |r, b| {
                    b[0] = b"{}".to_vec();
                    rehash(r, b, 0);
                }),
            ),
        ];
        for (why, e) in cases {
            let msg = e.to_string();
            assert!(msg.contains(why), "expected '{why}' in: {msg}");
        }
    }

    #[test]
    fn chunks_travel_compressed() {
        let m = Manifest::new(header(1), tree(500));
        let biggest = (0..m.chunks().len())
            .max_by_key(|&i| m.chunks()[i].count)
            .unwrap();
        let body = m.chunk_body(biggest);
        let wire = compress_chunk(&body);
        assert!(
            wire.len() < body.len() / 2,
            "{} of {}",
            wire.len(),
            body.len()
        );
        assert_eq!(decompress_chunk(&wire).unwrap(), body);
        let e = decompress_chunk(b"[]").unwrap_err().to_string();
        assert!(e.contains("malformed chunk") && e.contains("zstd"), "{e}");
    }

    /// A format 2 manifest in an agent's own state converts to format 3
    /// with the same header and entries; a format 3 body is no legacy body.
    #[test]
    fn legacy_bodies_from_the_state_folder_convert() {
        let m = Manifest::new(header(1), tree(500));
        let mut h2 = m.header.clone();
        h2.format = 2;
        let legacy = serde_json::json!({
            "format": 2,
            "generation": h2.generation,
            "profile": h2.profile,
            "created": h2.created,
            "expires": h2.expires,
            "prev_sha256": null,
            "packs": h2.packs,
            "entries": m.to_entries(),
        });
        let body = serde_json::to_vec(&legacy).unwrap();
        let got = Manifest::from_legacy_body(&body).unwrap();
        assert_eq!(got, m);
        assert_eq!(got.sha256(), m.sha256());
        assert!(Manifest::from_legacy_body(&m.body()).is_err());
    }

    /// A mirror that applied a forged delta refuses the result: the root
    /// it rebuilds does not hash as the delta promises.
    #[test]
    fn forged_delta_fails_the_root_hash() {
        let prev = Manifest::new(header(1), tree(5_000));
        let mut v = tree(5_000);
        v[100].mtime_ns += 1;
        let next = Manifest::following(header(2), v, &prev).unwrap();
        let mut d = next.delta_from(&prev, String::new());
        d.upserts[0].mtime_ns += 1;
        let e = d.apply(&prev, &prev.sha256()).unwrap_err();
        assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    }
}
