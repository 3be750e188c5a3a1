//! [`Part`]: the entries of one chunk as a manifest holds them in memory,
//! and [`EntryRef`], one of them.
//!
//! A [`crate::Entry`] is 96 bytes plus its path in an allocation of its
//! own (48 bytes for a 28-byte path, with glibc's header and rounding).
//! A part holds its entries as fixed rows of 64 bytes and every path (and
//! symlink target) in one string, so a million entries take about 90 MB
//! rather than 145 MB. Entries are read through [`EntryRef`], which
//! borrows the part; an owned [`crate::Entry`] is made only where one is
//! wanted ([`EntryRef::to_entry`]). The JSON of a part is byte for byte
//! that of the same entries as a list of [`crate::Entry`] (tested), so
//! chunk ids do not depend on how the entries are held.

use crate::{Entry, EntryKind, Sha256Hash};
use serde::Serialize;

/// Flag bits in [`Row::start`]: a chunk's text stays far below 1 GiB
/// ([`crate::MAX_CHUNK_BYTES`] is 256 MiB of JSON, which holds every path).
const SYMLINK: u32 = 1 << 31;
const HAS_PACK: u32 = 1 << 30;
const OFFSET: u32 = HAS_PACK - 1;

/// One entry but its path.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Row {
    /// The content's hash (zero for a symlink).
    sha256: Sha256Hash,
    /// A file's size; a symlink's path length (its target follows the
    /// path in the text).
    size: u64,
    mtime_ns: i64,
    /// The pack, if [`HAS_PACK`] is set.
    pack: u64,
    /// Where the path starts in the text, and the flags.
    start: u32,
    mode: u32,
}

/// The entries of one chunk, in path order.
#[derive(Clone, PartialEq, Eq)]
pub struct Part {
    text: Box<str>,
    rows: Box<[Row]>,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Part {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Entry `i` (panics past the end, as indexing a slice does).
    pub fn get(&self, i: usize) -> EntryRef<'_> {
        assert!(i < self.rows.len(), "entry {i} of a part of {}", self.len());
        EntryRef { part: self, i }
    }

    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = EntryRef<'_>> + ExactSizeIterator + Clone {
        (0..self.rows.len()).map(move |i| EntryRef { part: self, i })
    }

    /// The entry at `path`, by binary search.
    pub fn find(&self, path: &str) -> Option<EntryRef<'_>> {
        let (mut lo, mut hi) = (0, self.rows.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).path().as_bytes().cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(self.get(mid)),
            }
        }
        None
    }

    /// The compact JSON array of the entries: a chunk's body.
    ///
    /// Written by hand ([`write_entry`]): serde's `flatten` made serializing
    /// the changed chunks the largest part of a small update's manifest
    /// work, on both ends. The bytes are serde_json's (tested).
    pub fn body(&self) -> Vec<u8> {
        // Most of a file entry is its path and its digest.
        let mut out = Vec::with_capacity(self.text.len() + self.rows.len() * 160 + 2);
        out.push(b'[');
        for (i, e) in self.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_entry(&mut out, e);
        }
        out.push(b']');
        out
    }

    /// The bytes held, beyond the part itself.
    pub fn heap_bytes(&self) -> usize {
        self.text.len() + self.rows.len() * std::mem::size_of::<Row>()
    }
}

impl Part {
    /// Sets the pack of file entry `i` (panics for a symlink).
    fn set_pack(&mut self, i: usize, pack: Option<u64>) {
        let r = &mut self.rows[i];
        assert!(r.start & SYMLINK == 0, "a symlink has no pack");
        r.pack = pack.unwrap_or(0);
        r.start = (r.start & !HAS_PACK) | if pack.is_some() { HAS_PACK } else { 0 };
    }
}

/// Entries per part of an [`Entries`] list.
const SEGMENT: usize = 4096;

/// A list of entries of any length, held as compactly as a chunk: parts of
/// [`SEGMENT`] entries each (the last may hold fewer). What an origin
/// builds a generation's changed entries in: a million of them take about
/// 92 MB, against 144 MB as [`crate::Entry`]s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    parts: Vec<Part>,
}

impl Entries {
    pub fn len(&self) -> usize {
        self.parts
            .last()
            .map_or(0, |l| (self.parts.len() - 1) * SEGMENT + l.len())
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Entry `i` (panics past the end).
    pub fn get(&self, i: usize) -> EntryRef<'_> {
        self.parts[i / SEGMENT].get(i % SEGMENT)
    }

    pub fn iter(&self) -> impl Iterator<Item = EntryRef<'_>> + Clone + '_ {
        self.parts.iter().flat_map(|p| p.iter())
    }

    /// The index of the entry at `path` in a list sorted by path.
    pub fn position(&self, path: &str) -> Option<usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid).path().as_bytes().cmp(path.as_bytes()) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Sets the pack of file entry `i` (panics for a symlink).
    pub fn set_pack(&mut self, i: usize, pack: Option<u64>) {
        self.parts[i / SEGMENT].set_pack(i % SEGMENT, pack);
    }

    /// The parts, in order, each dropped once the caller is done with it.
    pub(crate) fn into_parts(self) -> impl Iterator<Item = Part> {
        crate::drain_shrinking(self.parts)
    }
}

/// Builds an [`Entries`] list entry by entry.
#[derive(Default)]
pub struct EntriesBuilder {
    done: Vec<Part>,
    open: PartBuilder,
}

impl EntriesBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    fn roll(&mut self) {
        if self.open.len() >= SEGMENT {
            let full = std::mem::take(&mut self.open);
            self.done.push(full.finish());
        }
    }

    /// Appends an owned entry.
    pub fn push(&mut self, e: &Entry) {
        self.roll();
        self.open.push(e);
    }

    /// Appends the entry these fields make (no [`crate::Entry`] built).
    pub fn push_parts(&mut self, path: &str, kind: KindRef<'_>, mode: u32, mtime_ns: i64) {
        self.roll();
        self.open.push_parts(path, kind, mode, mtime_ns);
    }

    /// Appends an entry of another list or chunk.
    pub fn push_ref(&mut self, e: EntryRef<'_>) {
        self.roll();
        self.open.push_ref(e);
    }

    pub fn finish(mut self) -> Entries {
        if !self.open.is_empty() {
            self.done.push(self.open.finish());
        }
        Entries { parts: self.done }
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(v: Vec<Entry>) -> Self {
        let mut b = EntriesBuilder::new();
        for e in crate::drain_shrinking(v) {
            b.push(&e);
        }
        b.finish()
    }
}

impl From<Vec<Entry>> for Part {
    fn from(entries: Vec<Entry>) -> Self {
        let mut b = PartBuilder::with_capacity(entries.len());
        for e in entries {
            b.push(&e);
        }
        b.finish()
    }
}

/// Appends `e` as serde_json writes an [`crate::Entry`]: its fields in
/// declaration order, the kind's `type` tag first and `pack` only when
/// set.
fn write_entry(out: &mut Vec<u8>, e: EntryRef<'_>) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"path\":");
    write_str(out, e.path());
    match e.kind() {
        KindRef::File { size, sha256, pack } => {
            out.extend_from_slice(b",\"type\":\"file\",\"size\":");
            out.extend_from_slice(num.format(size).as_bytes());
            out.extend_from_slice(b",\"sha256\":\"");
            out.extend_from_slice(&sha256.hex_buf().0);
            out.push(b'"');
            if let Some(p) = pack {
                out.extend_from_slice(b",\"pack\":");
                out.extend_from_slice(num.format(p).as_bytes());
            }
        }
        KindRef::Symlink { target } => {
            out.extend_from_slice(b",\"type\":\"symlink\",\"target\":");
            write_str(out, target);
        }
    }
    out.extend_from_slice(b",\"mode\":");
    out.extend_from_slice(num.format(e.mode()).as_bytes());
    out.extend_from_slice(b",\"mtime_ns\":");
    out.extend_from_slice(num.format(e.mtime_ns()).as_bytes());
    out.push(b'}');
}

/// Appends `s` as a JSON string. Paths seldom hold a character JSON
/// escapes; those that do are left to serde_json, so the escapes are its.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        serde_json::to_writer(&mut *out, s).expect("a string serializes");
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

/// Builds a [`Part`] entry by entry.
#[derive(Default)]
pub(crate) struct PartBuilder {
    text: String,
    rows: Vec<Row>,
}

impl PartBuilder {
    pub(crate) fn with_capacity(entries: usize) -> Self {
        PartBuilder {
            text: String::with_capacity(entries * 32),
            rows: Vec::with_capacity(entries),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn start(&self) -> u32 {
        let start = u32::try_from(self.text.len()).expect("a chunk's paths fit in 1 GiB");
        assert!(start <= OFFSET, "a chunk's paths fit in 1 GiB");
        start
    }

    /// Appends an owned entry.
    pub(crate) fn push(&mut self, e: &Entry) {
        self.push_parts(&e.path, e.kind_ref(), e.mode, e.mtime_ns);
    }

    /// Appends the entry these fields make.
    pub(crate) fn push_parts(&mut self, path: &str, kind: KindRef<'_>, mode: u32, mtime_ns: i64) {
        let start = self.start();
        self.text.push_str(path);
        let row = match kind {
            KindRef::File { size, sha256, pack } => Row {
                sha256: *sha256,
                size,
                mtime_ns,
                pack: pack.unwrap_or(0),
                start: start | if pack.is_some() { HAS_PACK } else { 0 },
                mode,
            },
            KindRef::Symlink { target } => {
                self.text.push_str(target);
                Row {
                    sha256: Sha256Hash([0; 32]),
                    size: path.len() as u64,
                    mtime_ns,
                    pack: 0,
                    start: start | SYMLINK,
                    mode,
                }
            }
        };
        self.rows.push(row);
    }

    /// Appends an entry of another part, copying its row and text.
    pub(crate) fn push_ref(&mut self, e: EntryRef<'_>) {
        let start = self.start();
        self.text.push_str(e.text());
        let mut row = *e.row();
        row.start = start | (row.start & !OFFSET);
        self.rows.push(row);
    }

    /// The first path pushed.
    pub(crate) fn first_path(&self) -> Option<&str> {
        let end = match self.rows.get(1) {
            Some(r) => (r.start & OFFSET) as usize,
            None => self.text.len(),
        };
        let r = self.rows.first()?;
        Some(if r.start & SYMLINK != 0 {
            &self.text[..r.size as usize]
        } else {
            &self.text[..end]
        })
    }

    pub(crate) fn finish(self) -> Part {
        Part {
            text: self.text.into_boxed_str(),
            rows: self.rows.into_boxed_slice(),
        }
    }
}

/// One entry of a [`Part`]: what a [`crate::Entry`] says, read in place.
#[derive(Clone, Copy)]
pub struct EntryRef<'a> {
    part: &'a Part,
    i: usize,
}

/// What an entry is, as an [`EntryRef`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum KindRef<'a> {
    /// A regular file. Empty files have no pack.
    File {
        size: u64,
        sha256: &'a Sha256Hash,
        #[serde(skip_serializing_if = "Option::is_none")]
        pack: Option<u64>,
    },
    /// A symbolic link.
    Symlink { target: &'a str },
}

impl<'a> EntryRef<'a> {
    fn row(&self) -> &'a Row {
        &self.part.rows[self.i]
    }

    /// The path and, for a symlink, its target.
    fn text(&self) -> &'a str {
        let start = (self.row().start & OFFSET) as usize;
        let end = match self.part.rows.get(self.i + 1) {
            Some(next) => (next.start & OFFSET) as usize,
            None => self.part.text.len(),
        };
        &self.part.text[start..end]
    }

    pub fn path(&self) -> &'a str {
        let r = self.row();
        let text = self.text();
        if r.start & SYMLINK != 0 {
            &text[..r.size as usize]
        } else {
            text
        }
    }

    pub fn kind(&self) -> KindRef<'a> {
        let r = self.row();
        if r.start & SYMLINK != 0 {
            KindRef::Symlink {
                target: &self.text()[r.size as usize..],
            }
        } else {
            KindRef::File {
                size: r.size,
                sha256: &r.sha256,
                pack: (r.start & HAS_PACK != 0).then_some(r.pack),
            }
        }
    }

    /// Size, hash and pack if this is a regular file.
    pub fn file(&self) -> Option<(u64, &'a Sha256Hash, Option<u64>)> {
        match self.kind() {
            KindRef::File { size, sha256, pack } => Some((size, sha256, pack)),
            KindRef::Symlink { .. } => None,
        }
    }

    /// The symlink's target, if this is one.
    pub fn symlink(&self) -> Option<&'a str> {
        match self.kind() {
            KindRef::Symlink { target } => Some(target),
            KindRef::File { .. } => None,
        }
    }

    /// Permission bits, as [`crate::Entry::mode`].
    pub fn mode(&self) -> u32 {
        self.row().mode
    }

    /// Modification time in nanoseconds since the Unix epoch.
    pub fn mtime_ns(&self) -> i64 {
        self.row().mtime_ns
    }

    /// The entry as an owned [`crate::Entry`].
    pub fn to_entry(&self) -> Entry {
        Entry {
            path: self.path().to_owned(),
            kind: match self.kind() {
                KindRef::File { size, sha256, pack } => EntryKind::File {
                    size,
                    sha256: *sha256,
                    pack,
                },
                KindRef::Symlink { target } => EntryKind::Symlink {
                    target: target.to_owned(),
                },
            },
            mode: self.mode(),
            mtime_ns: self.mtime_ns(),
        }
    }
}

impl PartialEq for EntryRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text() && {
            let (a, b) = (self.row(), other.row());
            let flags = !OFFSET;
            (a.start & flags) == (b.start & flags)
                && a.sha256 == b.sha256
                && a.size == b.size
                && a.mtime_ns == b.mtime_ns
                && a.pack == b.pack
                && a.mode == b.mode
        }
    }
}

impl Eq for EntryRef<'_> {}

impl PartialEq<Entry> for EntryRef<'_> {
    fn eq(&self, e: &Entry) -> bool {
        self.path() == e.path
            && self.mode() == e.mode
            && self.mtime_ns() == e.mtime_ns
            && match (self.kind(), &e.kind) {
                (
                    KindRef::File { size, sha256, pack },
                    EntryKind::File {
                        size: s,
                        sha256: h,
                        pack: p,
                    },
                ) => size == *s && sha256 == h && pack == *p,
                (KindRef::Symlink { target }, EntryKind::Symlink { target: t }) => target == t,
                _ => false,
            }
    }
}

impl PartialEq<EntryRef<'_>> for Entry {
    fn eq(&self, e: &EntryRef<'_>) -> bool {
        e == self
    }
}

impl std::fmt::Debug for EntryRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("path", &self.path())
            .field("kind", &self.kind())
            .field("mode", &self.mode())
            .field("mtime_ns", &self.mtime_ns())
            .finish()
    }
}

impl Serialize for EntryRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        /// The same fields, in the same order, as [`crate::Entry`]'s.
        #[derive(Serialize)]
        struct Fields<'a> {
            path: &'a str,
            #[serde(flatten)]
            kind: KindRef<'a>,
            mode: u32,
            mtime_ns: i64,
        }
        Fields {
            path: self.path(),
            kind: self.kind(),
            mode: self.mode(),
            mtime_ns: self.mtime_ns(),
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<Entry> {
        let mut v = Vec::new();
        for i in 0..300u64 {
            let path = format!("pool/main/d{:02}/f{i:05}.deb", i / 40);
            let kind = match i % 5 {
                0 => EntryKind::Symlink {
                    target: format!("../x/{i}"),
                },
                1 => EntryKind::File {
                    size: 0,
                    sha256: Sha256Hash::of(b""),
                    pack: None,
                },
                _ => EntryKind::File {
                    size: i * 1000 + 1,
                    sha256: Sha256Hash::of(&i.to_le_bytes()),
                    pack: Some(if i == 7 { u64::MAX } else { i % 3 }),
                },
            };
            v.push(Entry {
                path,
                kind,
                mode: if i == 9 { u32::MAX } else { 0o644 },
                mtime_ns: if i == 11 { i64::MIN } else { i as i64 * 7 },
            });
        }
        v
    }

    #[test]
    fn a_part_reads_and_writes_what_its_entries_say() {
        let v = entries();
        let part = Part::from(v.clone());
        assert_eq!(part.len(), v.len());
        // The same JSON, byte for byte, as the owned entries: chunk ids do
        // not change with how entries are held.
        assert_eq!(part.body(), serde_json::to_vec(&v).unwrap());
        for (i, e) in v.iter().enumerate() {
            let r = part.get(i);
            assert_eq!(r, *e);
            assert_eq!(r.to_entry(), *e);
            assert_eq!(r.file(), e.file());
            assert_eq!(part.find(&e.path), Some(r));
        }
        assert!(part.find("pool/main/d00/f00000.debx").is_none());
        assert!(part.find("").is_none());
        // Copied row by row into another part, entries stay equal.
        let mut b = PartBuilder::default();
        for r in part
            .iter()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            b.push_ref(r);
        }
        assert_eq!(b.first_path(), Some(v[297].path.as_str()));
        let tail = b.finish();
        assert_eq!(
            tail.iter().map(|r| r.to_entry()).collect::<Vec<_>>(),
            v[297..]
        );
        assert_ne!(part.get(0), part.get(5));
        // A symlink first: its path, not its target.
        let mut b = PartBuilder::default();
        b.push(&v[0]);
        assert_eq!(b.first_path(), Some(v[0].path.as_str()));
    }

    proptest::proptest! {
        /// The hand-written JSON is serde_json's, byte for byte, for any
        /// path, target, size, pack, mode and time: characters JSON must
        /// escape (quotes, backslashes, controls), other Unicode, extremes.
        #[test]
        fn a_chunk_body_is_serde_jsons_bytes(
            rows in proptest::collection::vec((
                "[a-z\"\\\\\u{0}-\u{1f}\u{7f}é\u{1F600}/. ]{1,12}",
                proptest::option::of("[a-z\"\\\\\u{1}\n\t/. ]{0,8}"),
                proptest::num::u64::ANY,
                proptest::option::of(proptest::num::u64::ANY),
                proptest::num::u32::ANY,
                proptest::num::i64::ANY,
                proptest::array::uniform32(proptest::num::u8::ANY),
            ), 0..20)
        ) {
            let v: Vec<Entry> = rows
                .into_iter()
                .map(|(path, target, size, pack, mode, mtime_ns, sha)| Entry {
                    path,
                    kind: match target {
                        Some(target) => EntryKind::Symlink { target },
                        None => EntryKind::File { size, sha256: Sha256Hash(sha), pack },
                    },
                    mode,
                    mtime_ns,
                })
                .collect();
            proptest::prop_assert_eq!(
                String::from_utf8(Part::from(v.clone()).body()).unwrap(),
                serde_json::to_string(&v).unwrap()
            );
        }
    }

    #[test]
    fn a_list_reads_finds_and_repacks_its_entries() {
        let mut v = Vec::new();
        for i in 0..(SEGMENT * 2 + 17) as u64 {
            v.push(Entry {
                path: format!("p/{i:06}"),
                kind: EntryKind::File {
                    size: i + 1,
                    sha256: Sha256Hash::of(&i.to_le_bytes()),
                    pack: None,
                },
                mode: 0o644,
                mtime_ns: i as i64,
            });
        }
        let mut list = Entries::from(v.clone());
        assert_eq!(list.len(), v.len());
        assert!(list.iter().zip(&v).all(|(r, e)| r == *e));
        assert_eq!(list.iter().count(), v.len());
        for (i, e) in v.iter().enumerate() {
            assert_eq!(list.get(i), *e);
            assert_eq!(list.position(&e.path), Some(i));
        }
        assert_eq!(list.position("p/"), None);
        assert_eq!(list.position("q"), None);
        let last = v.len() - 1;
        list.set_pack(last, Some(9));
        list.set_pack(3, Some(u64::MAX));
        assert_eq!(list.get(last).file().unwrap().2, Some(9));
        assert_eq!(list.get(3).file().unwrap().2, Some(u64::MAX));
        list.set_pack(3, None);
        assert_eq!(list.get(3), v[3]);
        let mut b = EntriesBuilder::new();
        for e in list.iter() {
            b.push_ref(e);
        }
        assert_eq!(b.finish(), list);
        assert!(Entries::from(Vec::new()).is_empty());
    }

    #[test]
    fn a_row_is_64_bytes() {
        assert_eq!(std::mem::size_of::<Row>(), 64);
    }
}
