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
//! list, so [`Manifest::rebuilt`] (the origin's next generation) and
//! [`Delta::apply`] (a mirror following) re-serialize and re-hash only the
//! chunks that hold a changed path.

pub mod paths;
pub mod signed;

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
pub const FORMAT: u32 = 3;

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

/// One chunk as the root lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    /// Path of the chunk's first entry.
    pub first: String,
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

/// Generation G of a repository: its header, its entries, and the chunks
/// the entries are cut into (computed when the manifest is built, kept so
/// the next generation recomputes only the chunks that changed).
///
/// `header` and `entries` are public for reading. A caller that changes
/// `entries` in place must call [`Manifest::rechunk`] before hashing.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub header: Header,
    /// Sorted by path (byte order), no duplicates.
    pub entries: Vec<Entry>,
    chunks: Vec<ChunkRef>,
    /// Index in `entries` of each chunk's first entry.
    starts: Vec<usize>,
    /// Indices of the chunks whose body this manifest serialized and
    /// hashed when it was built (the others were taken from the previous
    /// generation).
    recomputed: Vec<usize>,
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header && self.entries == other.entries && self.chunks == other.chunks
    }
}

impl Eq for Manifest {}

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

/// The body of a chunk: the compact JSON array of its entries.
pub fn chunk_body(entries: &[Entry]) -> Vec<u8> {
    serde_json::to_vec(entries).expect("entries serialize")
}

/// A chunk body as it is stored and sent (`GET /v1/chunk/{sha256}`):
/// zstd-compressed. The id stays the SHA-256 of the uncompressed body.
pub fn compress_chunk(body: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(body, 3).expect("zstd compress")
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

/// Cuts entries into chunks, reusing the chunks of a previous generation
/// where it may.
struct Chunker<'a> {
    entries: &'a [Entry],
    chunks: Vec<ChunkRef>,
    starts: Vec<usize>,
    recomputed: Vec<usize>,
    /// Start of the chunk being filled, if any.
    open: Option<usize>,
}

impl<'a> Chunker<'a> {
    fn new(entries: &'a [Entry]) -> Self {
        Chunker {
            entries,
            chunks: Vec::new(),
            starts: Vec::new(),
            recomputed: Vec::new(),
            open: None,
        }
    }

    fn feed(&mut self, k: usize) {
        let s = *self.open.get_or_insert(k);
        if cuts_after(&self.entries[k].path) || k + 1 - s >= MAX_CHUNK_ENTRIES {
            self.close(k + 1);
        }
    }

    fn close(&mut self, end: usize) {
        if let Some(s) = self.open.take() {
            let e = &self.entries[s..end];
            self.recomputed.push(self.chunks.len());
            self.starts.push(s);
            self.chunks.push(ChunkRef {
                first: e[0].path.clone(),
                count: e.len() as u64,
                sha256: Sha256Hash::of(&chunk_body(e)),
            });
        }
    }

    fn reuse(&mut self, c: &ChunkRef, start: usize) {
        self.starts.push(start);
        self.chunks.push(c.clone());
    }

    /// Cuts every entry from scratch.
    fn all(entries: &'a [Entry]) -> Self {
        let mut ch = Chunker::new(entries);
        for k in 0..entries.len() {
            ch.feed(k);
        }
        ch
    }

    fn finish(mut self, header: Header) -> Manifest {
        self.close(self.entries.len());
        Manifest {
            header,
            entries: Vec::new(),
            chunks: self.chunks,
            starts: self.starts,
            recomputed: self.recomputed,
        }
    }
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

impl Manifest {
    /// A manifest of `entries` (sorted by path), cut into chunks: every
    /// chunk is serialized and hashed.
    pub fn new(header: Header, entries: Vec<Entry>) -> Self {
        let mut m = Chunker::all(&entries).finish(header);
        m.entries = entries;
        m
    }

    /// The next generation after `prev`: `entries` differ from
    /// `prev.entries` only at the paths in `touched` (changed, added or
    /// removed; extra paths are harmless). Chunks of `prev` that hold none
    /// of those paths are taken as they are; the others, and any chunk a
    /// moved cut runs into, are cut, serialized and hashed again. The
    /// result is the same as [`Manifest::new`] would give.
    pub fn rebuilt<'p>(
        header: Header,
        entries: Vec<Entry>,
        prev: &Manifest,
        touched: impl IntoIterator<Item = &'p str>,
    ) -> Self {
        let old = &prev.chunks;
        let mut dirty = vec![false; old.len()];
        if !old.is_empty() {
            for p in touched {
                let i = old
                    .partition_point(|c| c.first.as_bytes() <= p.as_bytes())
                    .saturating_sub(1);
                dirty[i] = true;
            }
        }
        let mut ch = Chunker::new(&entries);
        let mut pos = 0;
        for (i, c) in old.iter().enumerate() {
            let count = c.count as usize;
            let same_start = entries.get(pos).map(|e| e.path == c.first) == Some(true)
                && pos + count <= entries.len();
            if !dirty[i] && ch.open.is_none() && same_start {
                ch.reuse(c, pos);
                pos += count;
                continue;
            }
            // Re-cut the entries in this chunk's range of paths.
            let end = match old.get(i + 1) {
                Some(next) => {
                    let mut k = pos;
                    while k < entries.len() && entries[k].path.as_bytes() < next.first.as_bytes() {
                        k += 1;
                    }
                    k
                }
                None => entries.len(),
            };
            for k in pos..end {
                ch.feed(k);
            }
            pos = end;
        }
        for k in pos..entries.len() {
            ch.feed(k);
        }
        let mut m = ch.finish(header);
        m.entries = entries;
        m
    }

    /// The next generation after `prev`, finding the changed paths by one
    /// pass over both sorted entry lists (the origin: it holds the new
    /// entries, not a delta).
    pub fn following(header: Header, entries: Vec<Entry>, prev: &Manifest) -> Self {
        let touched: Vec<String> = changed_paths(&prev.entries, &entries)
            .map(str::to_string)
            .collect();
        Manifest::rebuilt(header, entries, prev, touched.iter().map(String::as_str))
    }

    /// Cuts `entries` into chunks again from scratch (after changing
    /// `entries` in place).
    pub fn rechunk(&mut self) {
        let m = Chunker::all(&self.entries).finish(self.header.clone());
        self.chunks = m.chunks;
        self.starts = m.starts;
        self.recomputed = m.recomputed;
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The entries of chunk `i`.
    pub fn chunk_entries(&self, i: usize) -> &[Entry] {
        let s = self.starts[i];
        &self.entries[s..s + self.chunks[i].count as usize]
    }

    /// The body of chunk `i` (hashes to `chunks()[i].sha256`).
    pub fn chunk_body(&self, i: usize) -> Vec<u8> {
        chunk_body(self.chunk_entries(i))
    }

    /// Which chunks were serialized and hashed when this manifest was
    /// built (all for [`Manifest::new`], the changed ones for
    /// [`Manifest::rebuilt`] and [`Delta::apply`]).
    pub fn recomputed(&self) -> &[usize] {
        &self.recomputed
    }

    /// The canonical body bytes: the compact JSON of the [`Root`].
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&RootRef {
            header: &self.header,
            chunks: &self.chunks,
        })
        .expect("root serializes")
    }

    /// SHA-256 of [`Manifest::body`]: the manifest hash.
    pub fn sha256(&self) -> Sha256Hash {
        Sha256Hash::of(&self.body())
    }

    /// Builds and fully checks a manifest from its root and the bodies of
    /// its chunks, in the root's order: each body must hash to its id,
    /// parse, be exactly the compact JSON [`chunk_body`] writes, hold the listed number of entries starting at the listed
    /// path, and sort before the next chunk; the chunks must be cut where
    /// the format cuts; and the whole must pass [`Manifest::check`].
    pub fn from_root<B: AsRef<[u8]>>(
        root: Root,
        bodies: impl IntoIterator<Item = B>,
    ) -> Result<Self, Error> {
        check_format(root.header.format)?;
        root.check_chunk_list()?;
        let generation = root.header.generation;
        let bad = |index: usize, detail: String| Error::Chunk {
            generation,
            index,
            detail,
        };
        let total: u64 = root.chunks.iter().map(|c| c.count).sum();
        let mut entries: Vec<Entry> = Vec::with_capacity(total.min(1 << 24) as usize);
        let mut starts = Vec::with_capacity(root.chunks.len());
        let mut bodies = bodies.into_iter();
        for (i, c) in root.chunks.iter().enumerate() {
            let body = bodies
                .next()
                .ok_or_else(|| bad(i, "its body is missing".into()))?;
            let body = body.as_ref();
            if body.len() as u64 > MAX_CHUNK_BYTES {
                return Err(bad(i, format!("larger than {MAX_CHUNK_BYTES} bytes")));
            }
            let got = Sha256Hash::of(body);
            if got != c.sha256 {
                return Err(bad(
                    i,
                    format!("its body hashes to {got}, not to its id {}", c.sha256),
                ));
            }
            let part: Vec<Entry> = serde_json::from_slice(body)
                .map_err(|e| bad(i, format!("not a list of entries: {e}")))?;
            // One byte string per chunk: a mirror stores and serves the
            // chunk it rebuilt from a delta under the same id.
            if chunk_body(&part) != body {
                return Err(bad(
                    i,
                    "its bytes are not the compact JSON Shoal writes for its entries".into(),
                ));
            }
            if part.len() as u64 != c.count {
                return Err(bad(
                    i,
                    format!("it holds {} entries, the root says {}", part.len(), c.count),
                ));
            }
            if part[0].path != c.first {
                return Err(bad(
                    i,
                    format!(
                        "it starts at '{}', the root says '{}'",
                        part[0].path, c.first
                    ),
                ));
            }
            if let Some(w) = part
                .windows(2)
                .find(|w| w[0].path.as_bytes() >= w[1].path.as_bytes())
            {
                return Err(bad(
                    i,
                    format!("its entries are not sorted or repeat at '{}'", w[1].path),
                ));
            }
            let last = &part[part.len() - 1].path;
            if let Some(next) = root.chunks.get(i + 1) {
                if last.as_bytes() >= next.first.as_bytes() {
                    return Err(bad(
                        i,
                        format!(
                            "its last path '{last}' overlaps the next chunk, which starts at '{}'",
                            next.first
                        ),
                    ));
                }
            }
            for (k, e) in part.iter().enumerate() {
                let end = k + 1 == part.len();
                let cut = cuts_after(&e.path) || k + 1 >= MAX_CHUNK_ENTRIES;
                let final_chunk = i + 1 == root.chunks.len();
                if cut != end && !(end && final_chunk) {
                    return Err(bad(
                        i,
                        format!(
                            "it is not cut where the format cuts (at '{}', entry {k} of {})",
                            e.path, c.count
                        ),
                    ));
                }
            }
            starts.push(entries.len());
            entries.extend(part);
        }
        if bodies.next().is_some() {
            return Err(bad(root.chunks.len(), "more bodies than chunks".into()));
        }
        let m = Manifest {
            header: root.header,
            entries,
            chunks: root.chunks,
            starts,
            recomputed: Vec::new(),
        };
        m.check()?;
        Ok(m)
    }

    /// Reads a format 1 or 2 manifest body (every entry in one body) from
    /// an agent's own state folder as the format 3 manifest with the same
    /// header and entries: the upgrade path of the generation an origin
    /// published or a mirror applied before the upgrade. Origin and
    /// mirrors convert alike, so the hash of the converted manifest is the
    /// same on both and the origin's next delta applies. Documents from an
    /// upstream older than [`MIN_FORMAT`] are refused, not converted.
    pub fn from_legacy_body(body: &[u8]) -> Result<Self, Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Legacy {
            #[serde(flatten)]
            header: Header,
            entries: Vec<Entry>,
        }
        let l: Legacy = serde_json::from_slice(body).map_err(|e| Error::Malformed {
            kind: "manifest",
            detail: e.to_string(),
        })?;
        if !(1..MIN_FORMAT).contains(&l.header.format) {
            return Err(Error::Format(l.header.format));
        }
        let mut header = l.header;
        header.format = FORMAT;
        let m = Manifest::new(header, l.entries);
        m.check()?;
        Ok(m)
    }

    /// The root body and every chunk body, one per line (compact JSON has
    /// no raw newline): a whole manifest as one byte string, for tests and
    /// the fuzzer.
    pub fn bundle(&self) -> Vec<u8> {
        let mut out = self.body();
        for i in 0..self.chunks.len() {
            out.push(b'\n');
            out.extend(self.chunk_body(i));
        }
        out
    }

    /// Parses a [`Manifest::bundle`].
    pub fn from_bundle(bytes: &[u8]) -> Result<Self, Error> {
        let mut parts = bytes.split(|&b| b == b'\n');
        let root = Root::from_body(parts.next().unwrap_or_default())?;
        Manifest::from_root(root, parts)
    }

    /// Checks the invariants that [`Manifest::from_root`] promises of the entries.
    pub fn check(&self) -> Result<(), Error> {
        check_format(self.header.format)?;
        let generation = self.header.generation;
        let bad = |detail: String| Error::BadPath { generation, detail };
        let packs: std::collections::HashSet<u64> =
            self.header.packs.iter().map(|p| p.id).collect();
        let mut prev: Option<&str> = None;
        let mut total: u64 = 0;
        // Entries a later path could sit under (see `beneath`).
        let mut open: Vec<&str> = Vec::new();
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
            // A file 'a' and an entry 'a/b' would need 'a' to be a
            // directory. In byte order the paths under 'a/' form one run
            // after 'a', so one pass with a stack of entries whose run may
            // still come finds every such pair (no set of every path).
            while let Some(t) = open.last() {
                match beneath(&e.path, t) {
                    Beneath::Inside => {
                        return Err(bad(format!(
                            "'{t}' is a file or symlink but '{}' needs it to be a directory",
                            e.path
                        )))
                    }
                    Beneath::Past => {
                        open.pop();
                    }
                    Beneath::Before => break,
                }
            }
            open.push(&e.path);
            prev = Some(&e.path);
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
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for c in diff(&prev.entries, &self.entries) {
            match c {
                Change::Upsert(e) => upserts.push(e.clone()),
                Change::Removal(p) => removals.push(p.to_string()),
            }
        }
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

/// One difference between two sorted entry lists.
enum Change<'a> {
    /// In the new list and not the same in the old one.
    Upsert(&'a Entry),
    /// In the old list only.
    Removal(&'a str),
}

/// The differences from `old` to `new` (both sorted by path), in path
/// order, by one pass over both. Lists that are not sorted (a manifest
/// still to be checked) give some superset of the differences, never a
/// panic.
fn diff<'a>(old: &'a [Entry], new: &'a [Entry]) -> impl Iterator<Item = Change<'a>> + 'a {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || loop {
        match (old.get(i), new.get(j)) {
            (None, None) => return None,
            (Some(a), None) => {
                i += 1;
                return Some(Change::Removal(&a.path));
            }
            (None, Some(b)) => {
                j += 1;
                return Some(Change::Upsert(b));
            }
            (Some(a), Some(b)) => match a.path.as_bytes().cmp(b.path.as_bytes()) {
                std::cmp::Ordering::Less => {
                    i += 1;
                    return Some(Change::Removal(&a.path));
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    return Some(Change::Upsert(b));
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    if a != b {
                        return Some(Change::Upsert(b));
                    }
                }
            },
        }
    })
}

/// The paths that differ between two sorted entry lists.
pub fn changed_paths<'a>(old: &'a [Entry], new: &'a [Entry]) -> impl Iterator<Item = &'a str> {
    diff(old, new).map(|c| match c {
        Change::Upsert(e) => e.path.as_str(),
        Change::Removal(p) => p,
    })
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
        let touched = self
            .upserts
            .iter()
            .map(|e| e.path.as_str())
            .chain(self.removals.iter().map(String::as_str));
        let m = Manifest::rebuilt(
            self.header.clone(),
            self.merge(&prev.entries),
            prev,
            touched,
        );
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
            m.rechunk();
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
        let mut m = manifest(3, vec![]);
        m.entries.push(Entry {
            path: "dists/x".into(),
            kind: EntryKind::Symlink {
                target: "../../etc".into(),
            },
            mode: 0o777,
            mtime_ns: 0,
        });
        m.rechunk();
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
        let mut m = manifest(3, vec![file("a", b"x", Some(1)), file("b", b"y", Some(1))]);
        for e in &mut m.entries {
            if let EntryKind::File { size, .. } = &mut e.kind {
                *size = u64::MAX / 2 + 1;
            }
        }
        m.rechunk();
        assert_eq!(m.total_bytes(), u64::MAX);
        let e = Manifest::from_bundle(&m.bundle()).unwrap_err().to_string();
        assert!(e.contains("add up to more than"), "{e}");
        // exactly u64::MAX in total is still a manifest
        if let EntryKind::File { size, .. } = &mut m.entries[1].kind {
            *size = u64::MAX / 2;
        }
        m.rechunk();
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
            assert_eq!(m.chunk_entries(i)[0].path, c.first);
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
            let inc = Manifest::following(header(2), entries, &prev);
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
                    r.chunks[j + 1].first = format!("{}0", r.chunks[j + 1].first);
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
                    r.chunks[0].first = e[0].path.clone();
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
            "entries": m.entries,
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
        let next = Manifest::following(header(2), v, &prev);
        let mut d = next.delta_from(&prev, String::new());
        d.upserts[0].mtime_ns += 1;
        let e = d.apply(&prev, &prev.sha256()).unwrap_err();
        assert!(matches!(e, Error::HashMismatch { .. }), "{e}");
    }
}
