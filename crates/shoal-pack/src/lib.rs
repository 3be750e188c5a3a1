//! Shoal packs: BitTorrent v1 torrents over groups of file contents.
//!
//! A pack carries contents, not paths: each content is stored under its
//! SHA-256 (`ab/abcdef…`). A pack has two regions ([`build`]):
//!
//! - **Aligned**: contents of a piece ([`PIECE_LEN`]) or more, sorted by
//!   name, each starting on a piece boundary (BEP 47 padding files fill
//!   the gaps; BitTorrent clients that know BEP 47, librqbit among them,
//!   neither store nor write them). Their pieces never straddle two
//!   files, so one read pass over a file yields both its SHA-256 and its
//!   piece SHA-1s ([`hash_file`]), files hash in parallel on all cores,
//!   and a later pack (compaction) reuses their piece hashes without
//!   reading the data again.
//! - **Packed**: contents smaller than a piece, back to back after the
//!   aligned ones (in the order the origin chose), so a piece spans several of them and a
//!   small file costs its size on the wire, not a whole padded piece (a
//!   BitTorrent request is a 16 KiB chunk). Their pieces depend on their
//!   neighbours, so [`build`] hashes the packed region from the contents'
//!   bytes every time (a second read of small files only).
//!
//! The torrent is one file, the pack's byte stream ([`Shape::Stream`],
//! manifest format 4), and its info dictionary lists the contents (SHA-256
//! and size) under [`CONTENTS_KEY`]; [`layout`] says where each lies in
//! the stream. librqbit keeps state per torrent file, about 0.7 kB each,
//! so a pack of 10,000 tiny contents costs it one file's state, not
//! 10,000. Packs of formats 1-3 listed a torrent file per content
//! ([`Shape::Files`]); they have the same stream and still parse.
//!
//! [`build`] makes the info dictionary and `.torrent` bytes itself (sorted
//! order, no filesystem walk); [`parse_torrent`] reads one back and checks
//! that it has exactly this shape (the first layout, where every content
//! was aligned, is a special case of it). [`tracker`] parses the query
//! string of a BitTorrent tracker announce, for the agents' built-in
//! tracker.

mod bencode;
pub mod layout;
pub mod tracker;

pub use layout::{Layout, Span};

use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Piece length of every pack: one BitTorrent request (16 KiB), so the
/// padding after a file's last piece costs less than one request on the
/// wire (librqbit skips only pieces that are entirely padding).
pub const PIECE_LEN: u64 = 16 * 1024;

/// Info dictionary key of a [`Shape::Stream`] pack's contents: SHA-256 and
/// big-endian 64-bit size of each, in stream order.
pub const CONTENTS_KEY: &[u8] = b"x-shoal-contents";

/// Info dictionary key of how many of a [`Shape::Stream`] pack's contents
/// are aligned (the rest are packed).
pub const PACKED_FROM_KEY: &[u8] = b"x-shoal-packed-from";

/// Bytes per content under [`CONTENTS_KEY`].
pub(crate) const LISTED_LEN: usize = 40;

/// How a pack's torrent lists its contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Format 4: one torrent file (the pack's stream) and the contents
    /// under [`CONTENTS_KEY`]. What [`build`] makes.
    Stream,
    /// Formats 1-3: one torrent file per content (`ab/abcdef…`) and BEP 47
    /// padding files between aligned ones.
    Files,
}

/// The result of hashing one file's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hashed {
    pub size: u64,
    pub sha256: [u8; 32],
    /// SHA-1 of each piece, the last one zero-padded to [`PIECE_LEN`].
    pub pieces: Vec<[u8; 20]>,
    /// SHA-1 of the last piece without padding, when the size is not a
    /// multiple of [`PIECE_LEN`] (used when the file ends the torrent).
    pub last_unpadded: Option<[u8; 20]>,
}

/// Bytes read per system call while hashing (a multiple of [`PIECE_LEN`]).
const READ_BLOCK: usize = 1 << 20;

/// Hashes everything `r` yields, copying it to `copy` if given.
pub fn hash_stream(r: &mut dyn Read, copy: Option<&mut dyn Write>) -> io::Result<Hashed> {
    hash_blocks(r, copy, &mut vec![0u8; READ_BLOCK])
}

/// The read block for a stream of about `size` bytes: room for all of it
/// and one byte more (so one read sees the end), in whole pieces, at most
/// [`READ_BLOCK`]. A tree of a million tiny files would otherwise zero a
/// 1 MiB buffer per file, which took longer than hashing them.
fn block_for(size: u64) -> usize {
    (size + 1)
        .next_multiple_of(PIECE_LEN)
        .min(READ_BLOCK as u64) as usize
}

/// [`hash_stream`] reading `buf.len()` bytes (a multiple of
/// [`PIECE_LEN`]) at a time.
fn hash_blocks(
    r: &mut dyn Read,
    mut copy: Option<&mut dyn Write>,
    buf: &mut [u8],
) -> io::Result<Hashed> {
    debug_assert!(!buf.is_empty() && buf.len().is_multiple_of(PIECE_LEN as usize));
    let mut sha256 = Sha256::new();
    let mut pieces = Vec::new();
    let mut last_unpadded = None;
    let mut size = 0u64;
    let plen = PIECE_LEN as usize;
    loop {
        // Fill the block (or up to EOF), so pieces never straddle reads.
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            break;
        }
        let block = &buf[..filled];
        sha256.update(block);
        if let Some(w) = copy.as_deref_mut() {
            w.write_all(block)?;
        }
        size += filled as u64;
        for piece in block.chunks(plen) {
            let mut h = Sha1::new();
            h.update(piece);
            if piece.len() < plen {
                last_unpadded = Some(h.clone().finalize().into());
                h.update(&ZEROS[..plen - piece.len()]);
            }
            pieces.push(h.finalize().into());
        }
        if filled < buf.len() {
            break;
        }
    }
    Ok(Hashed {
        size,
        sha256: sha256.finalize().into(),
        pieces,
        last_unpadded,
    })
}

static ZEROS: [u8; PIECE_LEN as usize] = [0u8; PIECE_LEN as usize];

/// Hashes a file in one read pass. With `copy_to`, the bytes hashed are
/// also written there (created new), so a copy holds exactly what was
/// hashed even if the source changes meanwhile. The copy is not synced:
/// the caller makes it durable (the origin syncs its state folder's file
/// system once per publish, before the head names the copy).
///
/// One call allocates its read buffer; a thread hashing many files keeps a
/// [`FileHasher`] instead.
pub fn hash_file(path: &Path, copy_to: Option<&Path>) -> io::Result<Hashed> {
    FileHasher::default().hash_file(path, copy_to)
}

/// Hashes files one after another with one read buffer, sized to the
/// largest file so far (at most [`READ_BLOCK`]): a tree of a million tiny
/// files must not allocate and zero a buffer per file, nor a tree of big
/// ones map and fault in a fresh megabyte per file.
#[derive(Default)]
pub struct FileHasher {
    buf: Vec<u8>,
}

impl FileHasher {
    /// [`hash_file`] with this hasher's buffer.
    pub fn hash_file(&mut self, path: &Path, copy_to: Option<&Path>) -> io::Result<Hashed> {
        let mut f = File::open(path)?;
        let block = block_for(f.metadata()?.len());
        if self.buf.len() < block {
            self.buf.resize(block, 0);
        }
        let buf = &mut self.buf[..block];
        match copy_to {
            None => hash_blocks(&mut f, None, buf),
            // Whole blocks are written, so the file needs no buffer.
            Some(dst) => hash_blocks(
                &mut f,
                Some(
                    &mut std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(dst)?,
                ),
                buf,
            ),
        }
    }
}

/// The store path of a content inside a pack folder: `ab/abcdef…`.
pub fn content_path(sha256: &[u8; 32]) -> PathBuf {
    let h = hex::encode(sha256);
    PathBuf::from(&h[..2]).join(h)
}

/// One content to put into a pack: 48 bytes, with the piece hashes of an
/// aligned content boxed apart (most contents of an archive are smaller
/// than a piece and have none; a first publish holds one per file).
#[derive(Debug, Clone)]
pub struct Content {
    pub sha256: [u8; 32],
    pub size: u64,
    hashes: Option<Box<PieceHashes>>,
}

#[derive(Debug, Clone)]
struct PieceHashes {
    pieces: Vec<[u8; 20]>,
    last_unpadded: Option<[u8; 20]>,
}

impl Content {
    /// `pieces` and `last_unpadded` as [`Hashed`] has them; a content
    /// smaller than a piece has none of its own ([`build`] hashes its
    /// pieces with its neighbours).
    pub fn new(
        sha256: [u8; 32],
        size: u64,
        pieces: Vec<[u8; 20]>,
        last_unpadded: Option<[u8; 20]>,
    ) -> Self {
        let hashes = (!pieces.is_empty() || last_unpadded.is_some()).then(|| {
            Box::new(PieceHashes {
                pieces,
                last_unpadded,
            })
        });
        Content {
            sha256,
            size,
            hashes,
        }
    }

    /// Piece hashes of an aligned content ([`Hashed::pieces`]); empty for
    /// a content smaller than a piece.
    pub fn pieces(&self) -> &[[u8; 20]] {
        self.hashes.as_ref().map_or(&[], |h| &h.pieces)
    }

    /// [`Hashed::last_unpadded`].
    pub fn last_unpadded(&self) -> Option<[u8; 20]> {
        self.hashes.as_ref().and_then(|h| h.last_unpadded)
    }
}

impl From<Hashed> for Content {
    fn from(h: Hashed) -> Self {
        if is_packed(h.size) {
            Content::new(h.sha256, h.size, Vec::new(), None)
        } else {
            Content::new(h.sha256, h.size, h.pieces, h.last_unpadded)
        }
    }
}

/// Whether a content goes into a pack's packed region (back to back with
/// other small contents) rather than starting on a piece boundary.
pub fn is_packed(size: u64) -> bool {
    size < PIECE_LEN
}

/// A built pack.
#[derive(Debug, Clone)]
pub struct Pack {
    /// SHA-1 of the bencoded info dictionary.
    pub info_hash: [u8; 20],
    /// The complete `.torrent` file.
    pub torrent: Vec<u8>,
    /// Contents in torrent order: (sha256, size).
    pub files: Vec<([u8; 32], u64)>,
    pub bytes: u64,
}

/// Builds the pack for `contents` (empty contents are skipped; duplicates
/// are carried once). `name` becomes the info dictionary's name.
///
/// Contents of a piece or more come first, sorted by SHA-256, each on a
/// piece boundary, with the piece hashes they carry. Smaller contents
/// follow back to back in the order of `contents`: their pieces span
/// several contents, so they are hashed here from the bytes `bytes_of`
/// returns (checked against each content's size and SHA-256). The order
/// is the caller's so that contents a mirror already holds (compaction)
/// can lie together: a piece they fill alone is not downloaded again.
pub fn build(
    name: &str,
    contents: &[Content],
    bytes_of: &mut dyn FnMut(&Content) -> io::Result<Vec<u8>>,
) -> io::Result<Pack> {
    build_shaped(name, contents, bytes_of, Shape::Stream)
}

/// [`build`] in either shape: [`Shape::Files`] makes the packs of formats
/// 1-3, which agents still read (for tests and the fuzzer's seeds).
pub fn build_shaped(
    name: &str,
    contents: &[Content],
    bytes_of: &mut dyn FnMut(&Content) -> io::Result<Vec<u8>>,
    shape: Shape,
) -> io::Result<Pack> {
    let mut seen = std::collections::HashSet::new();
    let unique = contents
        .iter()
        .filter(|c| c.size > 0 && seen.insert(c.sha256));
    let (packed, mut aligned): (Vec<&Content>, Vec<&Content>) =
        unique.partition(|c| is_packed(c.size));
    if packed.is_empty() && aligned.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("pack {name} would hold no content (empty files are not packed)"),
        ));
    }
    aligned.sort_by_key(|a| a.sha256);
    let mut hasher = PackedHasher::default();
    for c in &packed {
        let data = bytes_of(c)?;
        check_bytes(c, &data)?;
        hasher.update(&data);
    }
    Ok(assemble(name, &aligned, &packed, &hasher.finish(), shape))
}

/// Refuses bytes that are not the content they claim to be.
fn check_bytes(c: &Content, data: &[u8]) -> io::Result<()> {
    let got: [u8; 32] = Sha256::digest(data).into();
    if data.len() as u64 != c.size || got != c.sha256 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "content {} read for packing is {} bytes hashing to {}, expected {} bytes; \
                 its file changed after it was hashed: publish again",
                hex::encode(c.sha256),
                data.len(),
                hex::encode(got),
                c.size
            ),
        ));
    }
    Ok(())
}

/// SHA-1 of consecutive [`PIECE_LEN`] pieces of a byte stream fed in
/// arbitrary slices (the packed region); the last piece is unpadded.
#[derive(Default)]
struct PackedHasher {
    pieces: Vec<[u8; 20]>,
    cur: Sha1,
    filled: usize,
}

impl PackedHasher {
    fn update(&mut self, mut data: &[u8]) {
        let plen = PIECE_LEN as usize;
        while !data.is_empty() {
            let n = (plen - self.filled).min(data.len());
            self.cur.update(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == plen {
                self.pieces
                    .push(std::mem::take(&mut self.cur).finalize().into());
                self.filled = 0;
            }
        }
    }

    fn finish(mut self) -> Vec<[u8; 20]> {
        if self.filled > 0 {
            self.pieces.push(self.cur.finalize().into());
        }
        self.pieces
    }
}

/// The torrent of aligned contents (each followed by padding to the next
/// piece boundary unless it ends the torrent) then packed contents, with
/// the packed region's piece hashes already computed, in `shape`.
fn assemble(
    name: &str,
    aligned: &[&Content],
    packed: &[&Content],
    packed_pieces: &[[u8; 20]],
    shape: Shape,
) -> Pack {
    let mut files = Vec::with_capacity(aligned.len() + packed.len());
    let mut pieces: Vec<u8> = Vec::new();
    // The file list of the older shape only.
    let mut file_list = bencode::List::new();
    let listed = shape == Shape::Files;
    let entry = |list: &mut bencode::List, c: &Content| {
        if !listed {
            return;
        }
        let hexname = hex::encode(c.sha256);
        list.push_raw(&bencode::file_entry(
            None,
            c.size,
            &[&hexname[..2], &hexname],
        ));
    };
    for (i, c) in aligned.iter().enumerate() {
        entry(&mut file_list, c);
        let rem = c.size % PIECE_LEN;
        let ends_torrent = i + 1 == aligned.len() && packed.is_empty();
        let (full, last) = c.pieces().split_at(c.pieces().len() - 1);
        for p in full {
            pieces.extend_from_slice(p);
        }
        if rem != 0 && ends_torrent {
            pieces.extend_from_slice(&c.last_unpadded().expect("partial piece has unpadded hash"));
        } else {
            pieces.extend_from_slice(&last[0]);
        }
        if listed && rem != 0 && !ends_torrent {
            let pad = PIECE_LEN - rem;
            file_list.push_raw(&bencode::file_entry(
                Some("p"),
                pad,
                &[".pad", &pad.to_string()],
            ));
        }
        files.push((c.sha256, c.size));
    }
    for c in packed {
        entry(&mut file_list, c);
        files.push((c.sha256, c.size));
    }
    for p in packed_pieces {
        pieces.extend_from_slice(p);
    }
    let info = match shape {
        Shape::Files => bencode::info_dict(&file_list, name, PIECE_LEN, &pieces),
        Shape::Stream => {
            let mut listed = Vec::with_capacity(files.len() * LISTED_LEN);
            for (sha, size) in &files {
                listed.extend_from_slice(sha);
                listed.extend_from_slice(&size.to_be_bytes());
            }
            let length = Layout::new(files.clone(), aligned.len()).len();
            bencode::stream_info_dict(
                length,
                name,
                PIECE_LEN,
                &pieces,
                &listed,
                aligned.len() as u64,
            )
        }
    };
    let info_hash: [u8; 20] = Sha1::digest(&info).into();
    let torrent = bencode::torrent(&info);
    let bytes = files.iter().map(|f| f.1).sum();
    Pack {
        info_hash,
        torrent,
        files,
        bytes,
    }
}

/// A `.torrent` read back and checked to be a Shoal pack.
#[derive(Debug, Clone)]
pub struct ParsedPack {
    pub info_hash: [u8; 20],
    pub name: String,
    /// Contents in torrent order: (sha256, size).
    pub files: Vec<([u8; 32], u64)>,
    /// Piece hashes of each aligned content (the first `packed_from` of
    /// `files`), as the torrent holds them: a partial last piece is hashed
    /// zero-padded, except when the content ends the torrent. Packed
    /// contents have none of their own, and no entry here. Use
    /// [`ParsedPack::content`] to pack a content again.
    pub pieces: Vec<Vec<[u8; 20]>>,
    /// Index in `files` of the first packed content (`files.len()` when
    /// there is none): from there on, contents lie back to back.
    pub packed_from: usize,
    /// Piece hashes of the packed region.
    pub packed_pieces: Vec<[u8; 20]>,
    /// How the torrent lists its contents.
    pub shape: Shape,
}

impl ParsedPack {
    /// Content `i` of this pack, ready to go into another pack
    /// (compaction). An aligned content keeps every full piece hash, and
    /// its partial last piece, if any, is hashed again from `tail` (its
    /// last `size % PIECE_LEN` bytes), because the new pack may need it
    /// padded where this one had it unpadded, or the other way round. A
    /// packed content is smaller than a piece, so `tail` is all of it: it
    /// is hashed again and must match the content's SHA-256 (its pieces in
    /// the new pack depend on new neighbours, so [`build`] hashes them).
    pub fn content(&self, i: usize, tail: &[u8]) -> io::Result<Content> {
        let (sha256, size) = self.files[i];
        let rem = (size % PIECE_LEN) as usize;
        if tail.len() != rem {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the last piece of content {} is {} bytes, expected {rem}",
                    hex::encode(sha256),
                    tail.len()
                ),
            ));
        }
        if i >= self.packed_from {
            let h = hash_stream(&mut &tail[..], None)?;
            let c = Content::from(h);
            if c.sha256 != sha256 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "stored content {} no longer hashes to its name (got {}): the pack \
                         store is damaged",
                        hex::encode(sha256),
                        hex::encode(c.sha256)
                    ),
                ));
            }
            return Ok(c);
        }
        let mut pieces = self.pieces[i].clone();
        let mut last_unpadded = None;
        if rem != 0 {
            let h = hash_stream(&mut &tail[..], None)?;
            *pieces.last_mut().expect("a partial piece exists") = h.pieces[0];
            last_unpadded = h.last_unpadded;
        }
        Ok(Content::new(sha256, size, pieces, last_unpadded))
    }

    /// The same pack built again from what was parsed, without reading
    /// any content (parsing loses nothing: the info hash is the same).
    pub fn rebuild(&self) -> Pack {
        let none = Vec::new();
        let contents: Vec<Content> = self
            .files
            .iter()
            .zip(self.pieces.iter().chain(std::iter::repeat(&none)))
            .map(|(&(sha256, size), ps)| Content::new(sha256, size, ps.clone(), ps.last().copied()))
            .collect();
        let (aligned, packed) = contents.split_at(self.packed_from);
        let aligned: Vec<&Content> = aligned.iter().collect();
        let packed: Vec<&Content> = packed.iter().collect();
        assemble(
            &self.name,
            &aligned,
            &packed,
            &self.packed_pieces,
            self.shape,
        )
    }

    /// Where each content lies in the pack's stream.
    pub fn layout(&self) -> Layout {
        Layout::new(self.files.clone(), self.packed_from)
    }

    /// [`ParsedPack::layout`], keeping nothing else (no copy of the list).
    pub fn into_layout(self) -> Layout {
        Layout::new(self.files, self.packed_from)
    }
}

/// A pack's [`Layout`] from its `.torrent`, checked as [`parse_torrent`]
/// checks it. A pack of the current shape ([`Shape::Stream`]) keeps no
/// list of its own: the layout reads its contents from `torrent`'s bytes,
/// which whoever holds them (librqbit's session) shares.
pub fn layout_of(torrent: &bytes::Bytes, expected: Option<&str>) -> Result<Layout, Error> {
    let (parsed, listed) = parse_torrent_listed(torrent, expected)?;
    Ok(match listed {
        Some(records) => Layout::of_records(torrent.slice_ref(records), parsed.packed_from),
        None => parsed.into_layout(),
    })
}

/// Why a `.torrent` was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a Shoal pack torrent: {0}")]
    Malformed(String),
    #[error("torrent info hash is {got}, but the signed manifest says {expected}; it was forged or corrupted")]
    WrongHash { expected: String, got: String },
}

/// One entry of a torrent's file list.
enum Listed {
    Pad(u64),
    Content([u8; 32], u64),
}

/// Parses a pack's `.torrent` and checks its shape; with `expected`, also
/// that its info hash is the one the signed manifest names.
///
/// The shape: aligned contents sorted by SHA-256, each followed by a
/// padding file up to the next piece boundary unless it ends there (or
/// ends the torrent); then, optionally, distinct packed contents smaller
/// than a piece, back to back. A pack of the first layout
/// (every content aligned) is this shape too.
pub fn parse_torrent(bytes: &[u8], expected: Option<&str>) -> Result<ParsedPack, Error> {
    parse_torrent_listed(bytes, expected).map(|(p, _)| p)
}

/// [`parse_torrent`], and for a [`Shape::Stream`] pack its contents list
/// as a slice of `bytes`.
fn parse_torrent_listed<'a>(
    bytes: &'a [u8],
    expected: Option<&str>,
) -> Result<(ParsedPack, Option<&'a [u8]>), Error> {
    let bad = |s: &str| Error::Malformed(s.to_string());
    let top = bencode::parse(bytes).map_err(|e| bad(&e))?;
    let info_raw = top
        .dict_raw(b"info")
        .ok_or_else(|| bad("no info dictionary"))?;
    let info_hash: [u8; 20] = Sha1::digest(info_raw).into();
    if let Some(exp) = expected {
        let got = hex::encode(info_hash);
        if got != exp {
            return Err(Error::WrongHash {
                expected: exp.to_string(),
                got,
            });
        }
    }
    parse_info_listed(info_raw)
}

/// Parses a pack's bencoded info dictionary (what librqbit hands a
/// storage) and checks its shape, as [`parse_torrent`] does.
pub fn parse_info(info_raw: &[u8]) -> Result<ParsedPack, Error> {
    parse_info_listed(info_raw).map(|(p, _)| p)
}

/// [`parse_info`], and for a [`Shape::Stream`] pack its contents list as
/// a slice of `info_raw`.
fn parse_info_listed(info_raw: &[u8]) -> Result<(ParsedPack, Option<&[u8]>), Error> {
    let bad = |s: &str| Error::Malformed(s.to_string());
    let info_hash: [u8; 20] = Sha1::digest(info_raw).into();
    let info = bencode::parse(info_raw).map_err(|e| bad(&e))?;
    let plen = info
        .dict_int(b"piece length")
        .ok_or_else(|| bad("no piece length"))?;
    if plen != PIECE_LEN as i64 {
        return Err(bad(&format!("piece length {plen}, expected {PIECE_LEN}")));
    }
    let name = String::from_utf8(
        info.dict_bytes(b"name")
            .ok_or_else(|| bad("no name"))?
            .to_vec(),
    )
    .map_err(|_| bad("name is not UTF-8"))?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        // Another client writes the pack under this name.
        return Err(bad(&format!("{name:?} is not a plain file name")));
    }
    let all_pieces = info.dict_bytes(b"pieces").ok_or_else(|| bad("no pieces"))?;
    if all_pieces.len() % 20 != 0 {
        return Err(bad("pieces length not a multiple of 20"));
    }
    let mut records = None;
    let (files, packed_from, shape) = match info.dict_list(b"files") {
        Some(list) => {
            if info.dict_raw(CONTENTS_KEY).is_some() || info.dict_raw(b"length").is_some() {
                return Err(bad("both a file list and a single file"));
            }
            let mut listed = Vec::with_capacity(list.len());
            for f in list {
                listed.push(list_entry(f).map_err(|e| bad(&e))?);
            }
            let (files, packed_from) = check_layout(&listed).map_err(|e| bad(&e))?;
            (files, packed_from, Shape::Files)
        }
        None => {
            let (files, packed_from) = stream_contents(&info).map_err(|e| bad(&e))?;
            records = info.dict_bytes(CONTENTS_KEY);
            (files, packed_from, Shape::Stream)
        }
    };
    let mut piece_iter = all_pieces.chunks(20);
    let mut take = |n: u64| -> Result<Vec<[u8; 20]>, Error> {
        // Checked before allocating: a forged length must not size a Vec.
        if n > piece_iter.len() as u64 {
            return Err(bad("too few pieces"));
        }
        Ok(piece_iter
            .by_ref()
            .take(n as usize)
            .map(|p| p.try_into().expect("20 bytes"))
            .collect())
    };
    let mut pieces = Vec::with_capacity(packed_from);
    for (_, len) in &files[..packed_from] {
        pieces.push(take(len.div_ceil(PIECE_LEN))?);
    }
    let packed_bytes: u64 = files[packed_from..].iter().map(|f| f.1).sum();
    let packed_pieces = take(packed_bytes.div_ceil(PIECE_LEN))?;
    if piece_iter.next().is_some() {
        return Err(bad("too many pieces"));
    }
    let parsed = ParsedPack {
        info_hash,
        name,
        files,
        pieces,
        packed_from,
        packed_pieces,
        shape,
    };
    if shape == Shape::Stream {
        // The pieces bound every size, so the stream's length is no
        // overflow; it must be the one the single file declares.
        let want = parsed.layout().len();
        if info.dict_int(b"length") != Some(want as i64) {
            return Err(bad(&format!(
                "the single file's length is not the contents' stream of {want} bytes"
            )));
        }
    }
    Ok((parsed, records))
}

/// The contents of a [`Shape::Stream`] pack and how many are aligned:
/// aligned ones (a piece or more) sorted by SHA-256, then distinct packed
/// ones (smaller than a piece).
fn stream_contents(info: &bencode::Value) -> Result<(Files, usize), String> {
    let listed = info
        .dict_bytes(CONTENTS_KEY)
        .ok_or("neither a file list nor a Shoal contents list")?;
    if listed.is_empty() || listed.len() % LISTED_LEN != 0 {
        return Err(format!(
            "the contents list is {} bytes, not a positive multiple of {LISTED_LEN}",
            listed.len()
        ));
    }
    let n = listed.len() / LISTED_LEN;
    let packed_from =
        info.dict_int(PACKED_FROM_KEY)
            .filter(|k| (0..=n as i64).contains(k))
            .ok_or("no count of aligned contents, or more than the contents")? as usize;
    let files: Files = listed
        .chunks(LISTED_LEN)
        .map(|c| {
            let sha: [u8; 32] = c[..32].try_into().expect("32 bytes");
            let size = u64::from_be_bytes(c[32..].try_into().expect("8 bytes"));
            (sha, size)
        })
        .collect();
    for (i, (sha, size)) in files.iter().enumerate() {
        if *size == 0 || *size > i64::MAX as u64 {
            return Err(format!("content {} has size {size}", hex::encode(sha)));
        }
        if (i < packed_from) == is_packed(*size) {
            return Err(if i < packed_from {
                "a content smaller than a piece among the aligned ones".into()
            } else {
                "a content of a piece or more among the packed contents".into()
            });
        }
        if i > 0 && i < packed_from && files[i - 1].0 >= *sha {
            return Err("files not sorted".into());
        }
    }
    let mut seen: std::collections::HashSet<&[u8; 32]> =
        files[..packed_from].iter().map(|f| &f.0).collect();
    if !files[packed_from..].iter().all(|f| seen.insert(&f.0)) {
        return Err("a content is listed twice".into());
    }
    Ok((files, packed_from))
}

/// One file of the list: a padding file, or a content named
/// `<xx>/<sha256>` of at least one byte.
fn list_entry(f: &bencode::Value) -> Result<Listed, String> {
    let len = f.dict_int(b"length").ok_or("file without length")?;
    if len < 0 {
        return Err("negative length".into());
    }
    let len = len as u64;
    let path: Vec<&[u8]> = f
        .dict_list(b"path")
        .ok_or("file without path")?
        .iter()
        .map(|p| p.as_bytes().unwrap_or(b""))
        .collect();
    let is_pad = f
        .dict_bytes(b"attr")
        .map(|a| a.contains(&b'p'))
        .unwrap_or(false);
    if is_pad {
        if path.first() != Some(&&b".pad"[..]) {
            return Err("unexpected padding file".into());
        }
        return Ok(Listed::Pad(len));
    }
    let [dir, hexname] = path.as_slice() else {
        return Err("file path is not <xx>/<sha256>".into());
    };
    let mut sha = [0u8; 32];
    hex::decode_to_slice(hexname, &mut sha).map_err(|_| "file name is not a SHA-256")?;
    if *dir != &hexname[..2] || len == 0 {
        return Err("file path is not <xx>/<sha256>".into());
    }
    Ok(Listed::Content(sha, len))
}

/// A pack's contents in torrent order: (sha256, size).
type Files = Vec<([u8; 32], u64)>;

/// Checks the order and padding of the file list; returns the contents
/// and the index of the first packed one.
fn check_layout(listed: &[Listed]) -> Result<(Files, usize), String> {
    let mut files: Vec<([u8; 32], u64)> = Vec::new();
    let mut packed_from = None;
    let mut k = 0;
    while k < listed.len() {
        let Listed::Content(sha, len) = listed[k] else {
            return Err("unexpected padding file".into());
        };
        k += 1;
        let rem = len % PIECE_LEN;
        let padded = match listed.get(k) {
            Some(Listed::Pad(p)) => {
                if packed_from.is_some() || rem == 0 || *p != PIECE_LEN - rem {
                    return Err("unexpected padding file".into());
                }
                k += 1;
                true
            }
            _ => false,
        };
        let ends_torrent = k == listed.len();
        if packed_from.is_none() && !padded && rem != 0 && !ends_torrent {
            // Not followed by padding: the packed region starts here.
            if !is_packed(len) {
                return Err("missing padding file".into());
            }
            packed_from = Some(files.len());
        } else if packed_from.is_some() && !is_packed(len) {
            return Err("a content of a piece or more among the packed contents".into());
        } else if packed_from.is_none() && ends_torrent && !padded && is_packed(len) {
            // A small last content, unpadded, is a packed region of one.
            packed_from = Some(files.len());
        }
        // The aligned region is sorted (the packed one is in the order
        // its origin chose).
        if packed_from.is_none() {
            if let Some((prev, _)) = files.last() {
                if *prev >= sha {
                    return Err("files not sorted".into());
                }
            }
        }
        files.push((sha, len));
    }
    let packed_from = packed_from.unwrap_or(files.len());
    let mut seen: std::collections::HashSet<&[u8; 32]> =
        files[..packed_from].iter().map(|f| &f.0).collect();
    if !files[packed_from..].iter().all(|f| seen.insert(&f.0)) {
        return Err("a content is listed twice".into());
    }
    Ok((files, packed_from))
}

/// Most pieces in one pack: 128 Ki pieces (2 GiB of 16 KiB pieces), whose
/// BitTorrent bitfield is 16 KiB. librqbit 9.1 writes every peer message
/// into a buffer of one 16 KiB chunk plus a small header, so a seeder of a
/// torrent with more pieces cannot send its bitfield: it drops every
/// connection ("not enough space in buffer") and nobody can download the
/// pack. A single content of more pieces (a file over 2 GiB) still gets a
/// pack of its own, which hits that limit.
pub const MAX_PIECES: usize = 128 * 1024;

/// Splits contents (already sorted however the caller likes) into runs of
/// at most `max_files` files, `max_bytes` bytes and [`MAX_PIECES`] pieces
/// (a single larger content gets a run of its own). The runs are ranges
/// of `contents`, so grouping copies nothing.
pub fn group(contents: &[Content], max_files: usize, max_bytes: u64) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    // Pieces of the aligned contents, and bytes of the packed ones (whose
    // pieces they share).
    let (mut aligned_pieces, mut packed_bytes) = (0u64, 0u64);
    let pieces = |aligned: u64, packed: u64| aligned + packed.div_ceil(PIECE_LEN);
    for (i, c) in contents.iter().enumerate() {
        let (a, p) = if is_packed(c.size) {
            (0, c.size)
        } else {
            (c.size.div_ceil(PIECE_LEN), 0)
        };
        if i > start
            && (i - start >= max_files
                || bytes + c.size > max_bytes
                || pieces(aligned_pieces + a, packed_bytes + p) > MAX_PIECES as u64)
        {
            out.push(start..i);
            start = i;
            (bytes, aligned_pieces, packed_bytes) = (0, 0, 0);
        }
        bytes += c.size;
        aligned_pieces += a;
        packed_bytes += p;
    }
    if start < contents.len() {
        out.push(start..contents.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(data: &[u8]) -> Content {
        hash_stream(&mut &data[..], None).unwrap().into()
    }

    /// The bytes of a content, looked up by SHA-256 among `datas`.
    fn data_of<'a>(datas: &[&'a [u8]], sha: &[u8; 32]) -> &'a [u8] {
        datas
            .iter()
            .find(|d| <[u8; 32]>::from(Sha256::digest(d)) == *sha)
            .expect("test data for the content")
    }

    /// [`build`] reading packed contents from `datas`.
    fn build_from(name: &str, contents: &[Content], datas: &[&[u8]]) -> Pack {
        build(name, contents, &mut |c| {
            Ok(data_of(datas, &c.sha256).to_vec())
        })
        .unwrap()
    }

    /// [`build`] of contents that must all be aligned (nothing to read).
    fn build_aligned(name: &str, contents: &[Content]) -> Pack {
        build(name, contents, &mut |c| {
            panic!("read {} bytes of a packed content", c.size)
        })
        .unwrap()
    }

    /// Every piece hash of a torrent, in order.
    fn torrent_pieces(torrent: &[u8]) -> Vec<[u8; 20]> {
        let top = bencode::parse(torrent).unwrap();
        let info = bencode::parse(top.dict_raw(b"info").unwrap()).unwrap();
        info.dict_bytes(b"pieces")
            .unwrap()
            .chunks(20)
            .map(|x| x.try_into().unwrap())
            .collect()
    }

    /// What any BitTorrent client hashes: SHA-1 of each piece of the
    /// contents in torrent order, aligned ones padded to a piece boundary
    /// unless they end the torrent.
    fn client_pieces(parsed: &ParsedPack, datas: &[&[u8]]) -> Vec<[u8; 20]> {
        let mut stream = Vec::new();
        for (i, (sha, size)) in parsed.files.iter().enumerate() {
            stream.extend_from_slice(data_of(datas, sha));
            let last = i + 1 == parsed.files.len();
            if i < parsed.packed_from && !last && size % PIECE_LEN != 0 {
                stream.resize(stream.len() + (PIECE_LEN - size % PIECE_LEN) as usize, 0);
            }
        }
        stream
            .chunks(PIECE_LEN as usize)
            .map(|ch| Sha1::digest(ch).into())
            .collect()
    }

    #[test]
    fn a_content_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Content>(), 48);
        let c = Content::new([1; 32], 10, Vec::new(), None);
        assert!(c.pieces().is_empty() && c.last_unpadded().is_none());
        let c = Content::new([1; 32], PIECE_LEN + 1, vec![[2; 20]; 2], Some([3; 20]));
        assert_eq!(
            (c.pieces(), c.last_unpadded()),
            (&[[2; 20]; 2][..], Some([3; 20]))
        );
    }

    /// A content of `pieces` full pieces (hashes not computed).
    fn big(tag: u8, pieces: usize) -> Content {
        Content::new(
            [tag; 32],
            pieces as u64 * PIECE_LEN,
            vec![[0u8; 20]; pieces],
            None,
        )
    }

    #[test]
    fn groups_stay_within_a_bitfield_librqbit_can_send() {
        // The bitfield of a full group is exactly one 16 KiB chunk.
        assert_eq!(MAX_PIECES.div_ceil(8), 16 * 1024);
        // 3 GiB in three 1 GiB contents: byte limit 4 GiB would take all
        // three, the piece limit takes two at most.
        let third = MAX_PIECES / 2;
        let cs = vec![big(1, third), big(2, third), big(3, third)];
        let g = group(&cs, 10_000, 4 << 30);
        let sizes: Vec<usize> = g.iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1]);
        for g in &g {
            assert!(
                cs[g.clone()]
                    .iter()
                    .map(|c| c.pieces().len())
                    .sum::<usize>()
                    <= MAX_PIECES
            );
        }
        // Small contents count by the pieces their bytes fill together.
        let small = |tag: u8| Content::new([tag; 32], PIECE_LEN / 2, Vec::new(), None);
        let mut cs = vec![big(1, MAX_PIECES - 2)];
        cs.extend((0..5).map(|i| small(10 + i)));
        let g = group(&cs, 10_000, u64::MAX);
        assert_eq!(g, vec![0..5, 5..6]);
        // Exactly at the limit is fine; one piece more is not.
        let g = group(
            &[big(1, MAX_PIECES - 1), big(2, 1), big(3, 1)],
            10_000,
            u64::MAX,
        );
        assert_eq!(g.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![2, 1]);
        // A content larger than the limit still gets a group of its own.
        let g = group(
            &[big(1, 1), big(2, MAX_PIECES + 5), big(3, 1)],
            10_000,
            u64::MAX,
        );
        assert_eq!(g.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    }

    #[test]
    fn pieces_are_per_file_and_padded() {
        let data = vec![7u8; (PIECE_LEN + 10) as usize];
        let h = hash_stream(&mut &data[..], None).unwrap();
        assert_eq!(h.size, PIECE_LEN + 10);
        assert_eq!(h.pieces.len(), 2);
        let mut padded = data[PIECE_LEN as usize..].to_vec();
        padded.resize(PIECE_LEN as usize, 0);
        assert_eq!(h.pieces[1], <[u8; 20]>::from(Sha1::digest(&padded)));
        assert_eq!(
            h.last_unpadded.unwrap(),
            <[u8; 20]>::from(Sha1::digest(&data[PIECE_LEN as usize..]))
        );
        assert_eq!(h.sha256, <[u8; 32]>::from(Sha256::digest(&data)));
        let exact = vec![1u8; PIECE_LEN as usize];
        let h = hash_stream(&mut &exact[..], None).unwrap();
        assert_eq!(h.pieces.len(), 1);
        assert!(h.last_unpadded.is_none());
    }

    #[test]
    fn build_parse_round_trip_matches_concatenation() {
        let a = vec![1u8; 1000];
        let b = vec![2u8; (PIECE_LEN * 2) as usize];
        let c = vec![3u8; 5];
        let d = vec![4u8; (PIECE_LEN + 9) as usize];
        let datas: [&[u8]; 4] = [&a, &b, &c, &d];
        let contents = vec![
            content(&a),
            content(&b),
            content(&c),
            content(&a),
            content(b""),
            content(&d),
        ];
        let p = build_from("shoal-test", &contents, &datas);
        assert_eq!(p.files.len(), 4);
        let parsed = parse_torrent(&p.torrent, Some(&hex::encode(p.info_hash))).unwrap();
        assert_eq!(parsed.files, p.files);
        assert_eq!(parsed.name, "shoal-test");
        // Large contents first, then the small ones back to back.
        assert_eq!(parsed.packed_from, 2);
        assert!(parsed.files[..2].iter().all(|f| f.1 >= PIECE_LEN));
        assert!(parsed.files[2..].iter().all(|f| f.1 < PIECE_LEN));
        // The packed ones in the order given (duplicates and empties gone).
        assert_eq!(parsed.files[2].0, content(&a).sha256);
        assert_eq!(parsed.files[3].0, content(&c).sha256);
        let swapped = build_from("shoal-test", &[content(&c), content(&a)], &datas);
        let q = parse_torrent(&swapped.torrent, None).unwrap();
        assert_eq!(q.files[0].0, content(&c).sha256);
        assert_eq!(torrent_pieces(&swapped.torrent), client_pieces(&q, &datas));
        // 1005 packed bytes: one piece, shared by both small contents.
        assert_eq!(parsed.packed_pieces.len(), 1);
        assert_eq!(parsed.pieces.len(), 2, "no piece list for packed contents");
        assert_eq!(torrent_pieces(&p.torrent), client_pieces(&parsed, &datas));
        assert_eq!(parsed.rebuild().info_hash, p.info_hash);
    }

    /// The packed region: no padding between small contents, pieces that
    /// span several of them and straddle their boundaries, and a wire size
    /// (all pieces) within one piece of the content bytes.
    #[test]
    fn small_contents_are_packed_back_to_back() {
        let datas: Vec<Vec<u8>> = (0..40u32)
            .map(|i| {
                (0..(64 + i as usize * 997 % 2000))
                    .map(|j| (j as u32 ^ i) as u8)
                    .collect()
            })
            .chain([vec![9u8; 3 * PIECE_LEN as usize + 1]])
            .collect();
        let refs: Vec<&[u8]> = datas.iter().map(|d| &d[..]).collect();
        let contents: Vec<Content> = refs.iter().map(|d| content(d)).collect();
        let p = build_from("small", &contents, &refs);
        let parsed = parse_torrent(&p.torrent, None).unwrap();
        assert_eq!(parsed.packed_from, 1);
        let small: u64 = parsed.files[1..].iter().map(|f| f.1).sum();
        assert_eq!(parsed.packed_pieces.len() as u64, small.div_ceil(PIECE_LEN));
        assert!(parsed.packed_pieces.len() < 40);
        // One torrent file; zeros only after the large content.
        assert_eq!(parsed.shape, Shape::Stream);
        let layout = parsed.layout();
        assert_eq!(layout.start(1), 4 * PIECE_LEN);
        for i in 2..parsed.files.len() {
            assert_eq!(layout.start(i), layout.start(i - 1) + parsed.files[i - 1].1);
        }
        assert_eq!(layout.len(), 4 * PIECE_LEN + small);
        // Read from the torrent's own bytes, the layout is the same, and
        // holds no list of its own: its contents list is a slice of them.
        let bytes = bytes::Bytes::from(p.torrent.clone());
        let shared = layout_of(&bytes, Some(&hex::encode(p.info_hash))).unwrap();
        assert_eq!(shared.count(), parsed.files.len());
        assert!(shared.files().eq(parsed.files.iter().map(|(s, n)| (s, *n))));
        assert!((0..shared.count()).all(|k| shared.start(k) == layout.start(k)));
        assert_eq!(shared.len(), layout.len());
        let k = shared.count() - 1;
        let sha = shared.sha(k).as_ptr() as usize;
        assert!((bytes.as_ptr() as usize..bytes.as_ptr() as usize + bytes.len()).contains(&sha));
        assert_eq!(shared.size(k), parsed.files[k].1);
        assert!(matches!(
            layout_of(&bytes, Some(&"00".repeat(20))),
            Err(Error::WrongHash { .. })
        ));
        assert_eq!(torrent_pieces(&p.torrent), client_pieces(&parsed, &refs));
        let wire = torrent_pieces(&p.torrent).len() as u64 * PIECE_LEN;
        assert!(wire < p.bytes + 2 * PIECE_LEN, "{wire} for {}", p.bytes);
        // Bytes that are not the content they claim are refused.
        let e = build("x", &contents, &mut |c| Ok(vec![0u8; c.size as usize]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("changed after it was hashed"), "{e}");
    }

    /// Compaction: packed contents moved into a pack with other
    /// neighbours get their pieces hashed again, aligned ones keep theirs;
    /// the result equals a pack built from fresh hashes.
    #[test]
    fn repacking_rehashes_pieces_whose_neighbours_change() {
        let small: Vec<Vec<u8>> = (0..6u8).map(|i| vec![i; 3000 + i as usize]).collect();
        let large = vec![7u8; (PIECE_LEN + 5) as usize];
        let mut refs: Vec<&[u8]> = small.iter().map(|d| &d[..]).collect();
        refs.push(&large);
        let old = build_from(
            "old",
            &[
                content(refs[0]),
                content(refs[1]),
                content(refs[2]),
                content(&large),
            ],
            &refs,
        );
        let parsed = parse_torrent(&old.torrent, None).unwrap();
        let tail = |i: usize| {
            let (sha, size) = parsed.files[i];
            let d = data_of(&refs, &sha);
            d[(size - size % PIECE_LEN) as usize..].to_vec()
        };
        // Keep two of the old small contents and the large one, add three.
        let keep: Vec<usize> = (0..parsed.files.len())
            .filter(|&i| parsed.files[i].0 != <[u8; 32]>::from(Sha256::digest(refs[1])))
            .collect();
        let mut moved: Vec<Content> = keep
            .iter()
            .map(|&i| parsed.content(i, &tail(i)).unwrap())
            .collect();
        moved.extend(refs[3..6].iter().map(|d| content(d)));
        let repacked = build_from("new", &moved, &refs);
        let fresh_contents: Vec<Content> = [0, 2, 3, 4, 5, 6]
            .iter()
            .map(|&i| content(refs[i]))
            .collect();
        let fresh = build_from("new", &fresh_contents, &refs);
        assert_eq!(repacked.info_hash, fresh.info_hash);
        let q = parse_torrent(&repacked.torrent, None).unwrap();
        assert_ne!(q.packed_pieces, parsed.packed_pieces);
        assert_eq!(torrent_pieces(&repacked.torrent), client_pieces(&q, &refs));
        // A packed content whose stored bytes were damaged is refused.
        let i = parsed.packed_from;
        let mut bad = tail(i);
        bad[0] ^= 1;
        let e = parsed.content(i, &bad).unwrap_err().to_string();
        assert!(e.contains("damaged"), "{e}");
    }

    /// A pack of the first layout (every content aligned, small ones
    /// padded) still parses, with its last small content as a packed
    /// region of one.
    #[test]
    fn first_layout_packs_still_parse() {
        let a = vec![1u8; 100];
        let b = vec![2u8; 200];
        // Hashed as that layout did: small contents had pieces of their own.
        let mut cs = [a.as_slice(), b.as_slice()].map(|d| hash_stream(&mut &d[..], None).unwrap());
        cs.sort_by_key(|c| c.sha256);
        let cs = cs.map(|h| Content::new(h.sha256, h.size, h.pieces, h.last_unpadded));
        let pad = PIECE_LEN - cs[0].size;
        let mut list = bencode::List::new();
        let name = |c: &Content| hex::encode(c.sha256);
        list.push_raw(&bencode::file_entry(
            None,
            cs[0].size,
            &[&name(&cs[0])[..2], &name(&cs[0])],
        ));
        list.push_raw(&bencode::file_entry(
            Some("p"),
            pad,
            &[".pad", &pad.to_string()],
        ));
        list.push_raw(&bencode::file_entry(
            None,
            cs[1].size,
            &[&name(&cs[1])[..2], &name(&cs[1])],
        ));
        let mut pieces = cs[0].pieces()[0].to_vec();
        pieces.extend_from_slice(&cs[1].last_unpadded().unwrap());
        let info = bencode::info_dict(&list, "v1", PIECE_LEN, &pieces);
        let t = bencode::torrent(&info);
        let parsed = parse_torrent(&t, None).unwrap();
        assert_eq!(parsed.packed_from, 1);
        assert_eq!(parsed.pieces[0], cs[0].pieces());
        assert_eq!(parsed.packed_pieces, vec![cs[1].last_unpadded().unwrap()]);
        assert_eq!(parsed.rebuild().torrent, t);
        // Moved into a new pack, both contents are packed.
        let datas: [&[u8]; 2] = [&a, &b];
        let moved = [
            parsed
                .content(0, data_of(&datas, &parsed.files[0].0))
                .unwrap(),
            parsed
                .content(1, data_of(&datas, &parsed.files[1].0))
                .unwrap(),
        ];
        let p = build_from("v2", &moved, &datas);
        assert_eq!(parse_torrent(&p.torrent, None).unwrap().packed_from, 0);
    }

    /// Large contents only: the piece hashes of an aligned content that
    /// ended its old pack (unpadded tail) are fixed up when it moves
    /// (issue "Never stall, never break apt": the old tail hash was reused
    /// in the middle of a new pack, which came up one piece short).
    #[test]
    fn repacked_contents_get_the_tail_hash_their_new_place_needs() {
        let a = vec![1u8; (PIECE_LEN + 100) as usize];
        let b = vec![2u8; (2 * PIECE_LEN + 7) as usize];
        let c = vec![3u8; (PIECE_LEN + 50) as usize];
        let all = [content(&a), content(&b), content(&c)];
        let mut by_sha = all.to_vec();
        by_sha.sort_by_key(|c| c.sha256);
        let datas: [&[u8]; 3] = [&a, &b, &c];
        // Old pack: the two lowest contents, so the middle one ends it.
        let old = build_aligned("old", &by_sha[..2]);
        let parsed = parse_torrent(&old.torrent, None).unwrap();
        assert_eq!(parsed.packed_from, 2);
        let tail = |i: usize| {
            let (sha, size) = parsed.files[i];
            let d = data_of(&datas, &sha);
            d[(size - size % PIECE_LEN) as usize..].to_vec()
        };
        let last = parsed.files.len() - 1;
        let reused = parsed.content(last, &tail(last)).unwrap();
        // The old torrent's hash for it is unpadded: the bug reused it.
        assert_ne!(parsed.pieces[last].last(), reused.pieces().last());
        let fresh = build_aligned(
            "new",
            &[by_sha[1].clone(), by_sha[0].clone(), by_sha[2].clone()],
        );
        let repacked = build_aligned(
            "new",
            &[
                reused,
                parsed.content(0, &tail(0)).unwrap(),
                by_sha[2].clone(),
            ],
        );
        assert_eq!(repacked.info_hash, fresh.info_hash);
        // And the new pack, alone, equals one built from fresh hashes too.
        let single = build_aligned("one", &[parsed.content(last, &tail(last)).unwrap()]);
        assert_eq!(
            single.info_hash,
            build_aligned("one", &[by_sha[1].clone()]).info_hash
        );
        assert!(parsed.content(last, b"short").is_err());
    }

    #[test]
    fn forged_or_foreign_torrents_are_refused() {
        let p = build_from("x", &[content(b"hello")], &[b"hello"]);
        let e = parse_torrent(&p.torrent, Some(&"00".repeat(20))).unwrap_err();
        assert!(e.to_string().contains("forged"), "{e}");
        assert!(parse_torrent(b"garbage", None).is_err());
        assert!(parse_torrent(&p.torrent[..p.torrent.len() - 2], None).is_err());
        // A pack whose single file would be written outside its folder.
        for name in ["../x", "a/b", "..", ""] {
            let p = build_from(name, &[content(b"hello")], &[b"hello"]);
            let e = parse_torrent(&p.torrent, None).unwrap_err().to_string();
            assert!(e.contains("file name"), "{name}: {e}");
        }
        // Stream packs whose contents list breaks the shape.
        let stream = |listed: &[([u8; 32], u64)], packed_from: u64, length: u64| {
            let mut b = Vec::new();
            for (sha, size) in listed {
                b.extend_from_slice(sha);
                b.extend_from_slice(&size.to_be_bytes());
            }
            let pieces = vec![0u8; 20 * length.div_ceil(PIECE_LEN) as usize];
            let info = bencode::stream_info_dict(length, "x", PIECE_LEN, &pieces, &b, packed_from);
            parse_torrent(&bencode::torrent(&info), None)
                .unwrap_err()
                .to_string()
        };
        let (a, b) = ([1u8; 32], [2u8; 32]);
        for (listed, packed_from, length, want) in [
            (vec![(a, 5), (a, 5)], 0, 10, "listed twice"),
            (
                vec![(a, PIECE_LEN), (b, 5)],
                2,
                PIECE_LEN + 5,
                "smaller than a piece",
            ),
            (
                vec![(a, 5), (b, PIECE_LEN)],
                0,
                PIECE_LEN + 5,
                "among the packed",
            ),
            (
                vec![(b, PIECE_LEN), (a, PIECE_LEN)],
                2,
                2 * PIECE_LEN,
                "not sorted",
            ),
            (vec![(a, 0)], 0, 0, "has size 0"),
            (vec![(a, 5)], 2, 5, "aligned contents"),
            (vec![(a, 5), (b, 6)], 0, 12, "length"),
            (vec![], 0, 0, "multiple of 40"),
        ] {
            let e = stream(&listed, packed_from, length);
            assert!(e.contains(want), "{want}: {e}");
        }
        // A content listed twice in the packed region is refused.
        let c = content(b"hello");
        let mut list = bencode::List::new();
        let hexname = hex::encode(c.sha256);
        for _ in 0..2 {
            list.push_raw(&bencode::file_entry(None, 5, &[&hexname[..2], &hexname]));
        }
        let pieces = Sha1::digest(b"hellohello");
        let t = bencode::torrent(&bencode::info_dict(&list, "x", PIECE_LEN, &pieces));
        let e = parse_torrent(&t, None).unwrap_err().to_string();
        assert!(e.contains("listed twice"), "{e}");
        // A content of a piece or more after packed ones is refused.
        let mut list = bencode::List::new();
        list.push_raw(&bencode::file_entry(None, 5, &[&hexname[..2], &hexname]));
        let big = hex::encode([7u8; 32]);
        list.push_raw(&bencode::file_entry(None, PIECE_LEN, &[&big[..2], &big]));
        let pieces = [0u8; 40];
        let t = bencode::torrent(&bencode::info_dict(&list, "x", PIECE_LEN, &pieces));
        let e = parse_torrent(&t, None).unwrap_err().to_string();
        assert!(e.contains("among the packed"), "{e}");
    }

    /// Found by shoal-fuzz (torrent target): a string length near
    /// `usize::MAX` overflowed `start + n` (a panic in checked builds, a
    /// slice-index panic otherwise).
    #[test]
    fn huge_string_length_is_refused() {
        for t in [
            &b"18446744073709551615:created by4:infod5:filesd6:lengthi5e"[..],
            b"18446744073709551614:x",
            b"d4:info18446744073709551615:e",
            b"l9223372036854775808:xe",
        ] {
            let e = parse_torrent(t, None).unwrap_err().to_string();
            assert!(e.contains("runs past the end"), "{e}");
        }
    }

    /// Found by shoal-fuzz (torrent target): a file length near `i64::MAX`
    /// sized a Vec of pieces before they were counted (an allocation of
    /// petabytes, which aborts the process).
    #[test]
    fn huge_file_length_does_not_allocate() {
        let hello = content(b"hello");
        let hexname = hex::encode(hello.sha256);
        let data = vec![3u8; PIECE_LEN as usize];
        let big = content(&data);
        let p = build_from("x", std::slice::from_ref(&big), &[&data]);
        for huge in [i64::MAX as u64, 1 << 62, 1 << 45] {
            // The older shape: a file list entry's length.
            let mut list = bencode::List::new();
            list.push_raw(&bencode::file_entry(None, huge, &[&hexname[..2], &hexname]));
            let pieces = Sha1::digest(b"hello");
            let t = bencode::torrent(&bencode::info_dict(&list, "x", PIECE_LEN, &pieces));
            let e = parse_torrent(&t, None).unwrap_err().to_string();
            assert!(e.contains("too few pieces"), "{e}");
            // A stream pack: a size in the contents list.
            let mut bytes = p.torrent.clone();
            let mut listed = big.sha256.to_vec();
            listed.extend_from_slice(&PIECE_LEN.to_be_bytes());
            let at = bytes.windows(40).position(|w| w == listed).unwrap();
            bytes[at + 32..at + 40].copy_from_slice(&huge.to_be_bytes());
            let e = parse_torrent(&bytes, None).unwrap_err().to_string();
            assert!(e.contains("too few pieces"), "{e}");
        }
    }

    #[test]
    fn grouping_bounds() {
        let cs: Vec<Content> = (0..25u8).map(|i| content(&[i; 100])).collect();
        let g = group(&cs, 10, u64::MAX);
        assert_eq!(
            g.iter().map(|x| x.len()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let g = group(&cs, 100, 250);
        assert!(g
            .iter()
            .all(|x| cs[x.clone()].iter().map(|c| c.size).sum::<u64>() <= 250));
        assert_eq!(g.iter().map(|x| x.len()).sum::<usize>(), 25);
        // The runs cover every content once, in order.
        assert!(g.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!((g[0].start, g.last().unwrap().end), (0, 25));
    }

    /// What [`hash_file`] must return, computed with another
    /// implementation (ring) straight from the definition: SHA-256 of the
    /// whole, SHA-1 of each 16 KiB piece with the last one zero-padded,
    /// and that last one's SHA-1 unpadded.
    fn reference(data: &[u8]) -> Hashed {
        use ring::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY as RSHA1, SHA256 as RSHA256};
        let plen = PIECE_LEN as usize;
        let mut pieces = Vec::new();
        let mut last_unpadded = None;
        for ch in data.chunks(plen) {
            let mut padded = ch.to_vec();
            if ch.len() < plen {
                last_unpadded = Some(digest(&RSHA1, ch).as_ref().try_into().unwrap());
                padded.resize(plen, 0);
            }
            pieces.push(digest(&RSHA1, &padded).as_ref().try_into().unwrap());
        }
        Hashed {
            size: data.len() as u64,
            sha256: digest(&RSHA256, data).as_ref().try_into().unwrap(),
            pieces,
            last_unpadded,
        }
    }

    /// A reader that hands out at most `step` bytes per call, so reads
    /// end anywhere inside a piece.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.step).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn fast_path_matches_a_reference_on_edge_sizes() {
        let p = PIECE_LEN as usize;
        let large = 3 * READ_BLOCK + p + 7;
        let dir = tempfile::tempdir().unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        // One hasher for every size, large ones before small ones and the
        // reverse: its buffer, sized by an earlier file, changes nothing.
        let mut reused = FileHasher::default();
        let sizes = [0, 1, p - 1, p, p + 1, READ_BLOCK - 1, READ_BLOCK, large];
        for size in sizes.into_iter().chain(sizes.into_iter().rev()) {
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let want = reference(&data);
            assert_eq!(want.pieces.len(), size.div_ceil(p), "size {size}");
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            assert_eq!(
                hash_file(&path, None).unwrap(),
                want,
                "hash_file, size {size}"
            );
            assert_eq!(
                reused.hash_file(&path, None).unwrap(),
                want,
                "reused hasher, size {size}"
            );
            let copy = dir.path().join(format!("c{size}"));
            let _ = std::fs::remove_file(&copy);
            assert_eq!(
                hash_file(&path, Some(&copy)).unwrap(),
                want,
                "copy, size {size}"
            );
            assert_eq!(
                std::fs::read(&copy).unwrap(),
                data,
                "copy bytes, size {size}"
            );
            for step in [1000, p + 3] {
                let mut r = Trickle { data: &data, step };
                let got = hash_stream(&mut r, None).unwrap();
                assert_eq!(got, want, "short reads of {step}, size {size}");
            }
            // A block sized for a smaller file (one that grew after its
            // size was read) still hashes all of it.
            for block in [p, block_for(size as u64 / 2)] {
                let got = hash_blocks(&mut &data[..], None, &mut vec![0u8; block]).unwrap();
                assert_eq!(got, want, "block {block}, size {size}");
            }
        }
    }

    #[test]
    fn copy_holds_what_was_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![9u8; 300_000]).unwrap();
        let dst = dir.path().join("dst");
        let h = hash_file(&src, Some(&dst)).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), vec![9u8; 300_000]);
        assert_eq!(h.size, 300_000);
        assert!(
            hash_file(&src, Some(&dst)).is_err(),
            "copy must not overwrite"
        );
    }
}
