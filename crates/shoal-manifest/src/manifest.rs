//! [`Manifest`]: generation G of a repository in memory, held as the
//! chunks it is sent as.
//!
//! The entries live in shared, immutable chunks (`Arc<Part>`, held
//! compactly: [`crate::part`]), one per [`ChunkRef`] of the root. The next generation ([`Manifest::with_changes`])
//! shares every chunk that holds no changed path with the previous one and
//! cuts, serializes and hashes only the others; what changed between two
//! generations ([`Manifest::changes`]) is found by comparing chunk ids and
//! reading only the chunks that differ. So building, checking, diffing and
//! holding two generations cost what changed, plus one pointer per chunk,
//! not a pass over every entry.

use crate::part::{Entries, EntryRef, KindRef, Part, PartBuilder};
use crate::{
    check_format, cuts_after, paths, ChunkRef, Delta, Entry, Error, Header, Root, RootRef,
    Sha256Hash, MAX_CHUNK_BYTES, MAX_CHUNK_ENTRIES,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Generation G of a repository: its header and its entries, cut into the
/// chunks the root lists.
///
/// `header` is public; the entries are read through [`Manifest::entries`],
/// [`Manifest::get`] and [`Manifest::entries_under`], and a changed list of
/// entries makes a new manifest ([`Manifest::new`],
/// [`Manifest::with_changes`]).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub header: Header,
    chunks: Vec<ChunkRef>,
    /// The entries of each chunk, sorted by path (byte order), no
    /// duplicates; shared with the generations that hold the same chunk.
    parts: Vec<Arc<Part>>,
    len: usize,
    /// Bytes of regular files.
    total: u64,
    /// Pack id → number of file entries naming it.
    pack_refs: BTreeMap<u64, u64>,
    /// Indices of the chunks whose body this manifest serialized and
    /// hashed when it was built (the others were taken from the previous
    /// generation).
    recomputed: Vec<usize>,
    /// The bodies of the recomputed chunks, compressed as stored
    /// ([`crate::compress_chunk`]), kept by [`Manifest::with_changes`]
    /// until [`Manifest::take_new_chunks`] so storing them does not
    /// serialize them again. Compressed at once: a first publish of 1M
    /// entries would otherwise hold about 200 MB of JSON.
    bodies: Vec<Vec<u8>>,
}

impl PartialEq for Manifest {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header
            && self.chunks == other.chunks
            && self.entries().eq(other.entries())
    }
}

impl Eq for Manifest {}

/// One difference between two generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change<'a> {
    /// In the new generation, and not the same in the old one.
    Upsert(EntryRef<'a>),
    /// In the old generation only.
    Removal(EntryRef<'a>),
}

impl<'a> Change<'a> {
    pub fn path(&self) -> &'a str {
        match self {
            Change::Upsert(e) | Change::Removal(e) => e.path(),
        }
    }
}

/// The running counts a manifest keeps of its entries.
#[derive(Default, Clone)]
struct Counts {
    len: usize,
    total: u64,
    pack_refs: BTreeMap<u64, u64>,
}

impl Counts {
    /// Counts the entry at `path`, with `file` what [`Entry::file`] says.
    fn add(
        &mut self,
        path: &str,
        file: Option<(u64, &Sha256Hash, Option<u64>)>,
    ) -> Result<(), Error> {
        self.len += 1;
        if let Some((size, _, pack)) = file {
            if let Some(id) = pack {
                *self.pack_refs.entry(id).or_default() += 1;
            }
            self.total = self.total.checked_add(size).ok_or_else(|| overflow(path))?;
        }
        Ok(())
    }

    fn sub(&mut self, e: EntryRef<'_>) {
        self.len -= 1;
        if let Some((size, _, pack)) = e.file() {
            self.total -= size;
            if let Some(id) = pack {
                if let Some(n) = self.pack_refs.get_mut(&id) {
                    *n -= 1;
                    if *n == 0 {
                        self.pack_refs.remove(&id);
                    }
                }
            }
        }
    }
}

/// File sizes that add up to more than a u64 by the entry at `path`.
fn overflow(path: &str) -> Error {
    Error::Malformed {
        kind: "manifest",
        detail: format!(
            "file sizes add up to more than {} bytes at '{path}'",
            u64::MAX
        ),
    }
}

/// Cuts entries into chunks, taking chunks of a previous generation as
/// they are where it may.
struct Cutter {
    chunks: Vec<ChunkRef>,
    parts: Vec<Arc<Part>>,
    recomputed: Vec<usize>,
    /// Keep the bodies of the chunks it cuts, compressed.
    keep_bodies: bool,
    bodies: Vec<Vec<u8>>,
    /// The chunk being filled.
    open: PartBuilder,
    counts: Counts,
}

impl Cutter {
    fn new(counts: Counts) -> Self {
        Cutter {
            chunks: Vec::new(),
            parts: Vec::new(),
            recomputed: Vec::new(),
            keep_bodies: false,
            bodies: Vec::new(),
            open: PartBuilder::default(),
            counts,
        }
    }

    /// Pushes an entry of a previous generation's chunk.
    fn push_ref(&mut self, e: EntryRef<'_>) {
        self.open.push_ref(e);
        self.cut_after(e.path());
    }

    fn cut_after(&mut self, path: &str) {
        if cuts_after(path) || self.open.len() >= MAX_CHUNK_ENTRIES {
            self.close();
        }
    }

    fn close(&mut self) {
        let Some(first) = self.open.first_path() else {
            return;
        };
        let first: Arc<str> = first.into();
        let part = std::mem::replace(&mut self.open, PartBuilder::with_capacity(64)).finish();
        self.recomputed.push(self.chunks.len());
        // Serialized and hashed by `finish`, on every core.
        self.chunks.push(ChunkRef {
            first,
            count: part.len() as u64,
            sha256: Sha256Hash([0; 32]),
        });
        self.parts.push(Arc::new(part));
    }

    /// Serializes and hashes the chunks cut here, spread over the cores
    /// when there are many.
    fn hash_cut(&mut self) {
        let parts = &self.parts;
        let keep = self.keep_bodies;
        let one = |i: &usize| {
            let body = parts[*i].body();
            (
                Sha256Hash::of(&body),
                keep.then(|| crate::compress_chunk(&body)),
            )
        };
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(self.recomputed.len() / 32 + 1);
        let done: Vec<(Sha256Hash, Option<Vec<u8>>)> = if threads <= 1 {
            self.recomputed.iter().map(one).collect()
        } else {
            let per = self.recomputed.len().div_ceil(threads);
            std::thread::scope(|s| {
                let jobs: Vec<_> = self
                    .recomputed
                    .chunks(per)
                    .map(|idx| s.spawn(move || idx.iter().map(one).collect::<Vec<_>>()))
                    .collect();
                jobs.into_iter()
                    .flat_map(|j| j.join().expect("chunk hashing panicked"))
                    .collect()
            })
        };
        for (&i, (sha, body)) in self.recomputed.iter().zip(done) {
            self.chunks[i].sha256 = sha;
            self.bodies.extend(body);
        }
    }

    fn reuse(&mut self, c: &ChunkRef, part: &Arc<Part>) {
        debug_assert!(self.open.is_empty());
        self.chunks.push(c.clone());
        self.parts.push(part.clone());
    }

    fn finish(mut self, header: Header) -> Manifest {
        self.close();
        self.hash_cut();
        Manifest {
            header,
            chunks: self.chunks,
            parts: self.parts,
            len: self.counts.len,
            total: self.counts.total,
            pack_refs: self.counts.pack_refs,
            recomputed: self.recomputed,
            bodies: self.bodies,
        }
    }
}

/// `v`'s items in order, handing its memory back as they are taken: a
/// first publish's million entries would otherwise stay allocated until
/// the last one had moved into its chunk, next to all the chunks.
pub fn drain_shrinking<T>(mut v: Vec<T>) -> ShrinkingDrain<T> {
    v.reverse();
    ShrinkingDrain(v)
}

/// See [`drain_shrinking`]: the items left, last first.
pub struct ShrinkingDrain<T>(Vec<T>);

impl<T> Iterator for ShrinkingDrain<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        let item = self.0.pop()?;
        // Given back each time an eighth is taken: a list this long is
        // mapped on its own (the agent fixes glibc's mmap threshold at
        // 128 KiB), and shrinking a mapping from its end moves nothing. So
        // the list being taken apart and one being filled from it hold
        // little more than one list's worth together.
        let cap = self.0.capacity();
        if cap > 4096 && self.0.len() < cap - cap / 8 {
            self.0.shrink_to_fit();
        }
        Some(item)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.0.len(), Some(self.0.len()))
    }
}

impl<T> ExactSizeIterator for ShrinkingDrain<T> {}

/// The first path of `paths` that does not sort strictly after the one
/// before it.
fn unsorted<'a>(mut paths: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut prev = paths.next()?;
    for p in paths {
        if prev.as_bytes() >= p.as_bytes() {
            return Some(p);
        }
        prev = p;
    }
    None
}

impl Manifest {
    /// A manifest of `entries` (sorted by path), cut into chunks: every
    /// chunk is serialized and hashed. The caller checks it
    /// ([`Manifest::check`]).
    pub fn new(header: Header, entries: impl Into<Entries>) -> Self {
        let mut cut = Cutter::new(Counts::default());
        // Each part of the list is dropped once cut, so the list and the
        // chunks do not coexist in full.
        for part in entries.into().into_parts() {
            for e in part.iter() {
                // An overflowing total is reported by `check`; counted
                // saturating.
                if cut.counts.add(e.path(), e.file()).is_err() {
                    cut.counts.total = u64::MAX;
                }
                cut.push_ref(e);
            }
        }
        cut.finish(header)
    }

    /// The next generation after `prev`: `prev`'s entries with `upserts`
    /// added or replaced and the paths in `removals` removed (both sorted
    /// by path, no repeats; a removal of a path `prev` lacks is ignored).
    ///
    /// Chunks of `prev` that hold no changed path are shared as they are;
    /// the others, and any chunk a moved cut runs into, are cut,
    /// serialized and hashed again. The result is what [`Manifest::new`]
    /// gives for the same entries. What changed is checked as
    /// [`Manifest::check`] checks every entry (paths, symlinks, packs,
    /// a file where a folder must be), against the whole new generation;
    /// the unchanged entries were checked when `prev` was.
    pub fn with_changes(
        header: Header,
        prev: &Manifest,
        upserts: impl Into<Entries>,
        removals: Vec<String>,
    ) -> Result<Self, Error> {
        check_format(header.format)?;
        let upserts: Entries = upserts.into();
        let generation = header.generation;
        let bad = |detail: String| Error::BadPath { generation, detail };
        if let Some(p) = unsorted(upserts.iter().map(|e| e.path())) {
            return Err(bad(format!(
                "changed entries not sorted or repeated at '{p}'"
            )));
        }
        if let Some(p) = unsorted(removals.iter().map(String::as_str)) {
            return Err(bad(format!(
                "removed paths not sorted or repeated at '{p}'"
            )));
        }
        let packs: HashSet<u64> = header.packs.iter().map(|p| p.id).collect();
        for e in upserts.iter() {
            check_entry(e.path(), e.kind(), &packs).map_err(bad)?;
        }

        let old = &prev.chunks;
        let holder = |p: &str| {
            old.partition_point(|c| c.first.as_bytes() <= p.as_bytes())
                .saturating_sub(1)
        };
        let mut dirty = vec![false; old.len()];
        if !old.is_empty() {
            for p in upserts
                .iter()
                .map(|u| u.path())
                .chain(removals.iter().map(String::as_str))
            {
                dirty[holder(p)] = true;
            }
        }
        let mut cut = Cutter::new(Counts {
            len: prev.len,
            total: prev.total,
            pack_refs: prev.pack_refs.clone(),
        });
        cut.keep_bodies = true;
        let mut ups = upserts.iter().peekable();
        let mut rems = removals.iter().map(|r| r.as_bytes()).peekable();
        for (i, (c, part)) in old.iter().zip(&prev.parts).enumerate() {
            if !dirty[i] && cut.open.is_empty() {
                cut.reuse(c, part);
                continue;
            }
            for e in part.iter() {
                let p = e.path().as_bytes();
                while let Some(u) = ups.next_if(|u| u.path().as_bytes() < p) {
                    cut.counts.add(u.path(), u.file())?;
                    cut.push_ref(u);
                }
                while rems.next_if(|r| *r < p).is_some() {}
                let removed = rems.next_if(|r| *r == p).is_some();
                match ups.next_if(|u| u.path().as_bytes() == p) {
                    Some(u) => {
                        cut.counts.sub(e);
                        cut.counts.add(u.path(), u.file())?;
                        cut.push_ref(u);
                    }
                    None if removed => cut.counts.sub(e),
                    None => cut.push_ref(e),
                }
            }
            // Changes after this chunk's last entry and before the next
            // chunk's first belong here.
            let next = old.get(i + 1).map(|n| n.first.as_bytes());
            let within = |p: &[u8]| next.is_none_or(|n| p < n);
            while let Some(u) = ups.next_if(|u| within(u.path().as_bytes())) {
                cut.counts.add(u.path(), u.file())?;
                cut.push_ref(u);
            }
            while rems.next_if(|r| within(r)).is_some() {}
        }
        for u in ups {
            cut.counts.add(u.path(), u.file())?;
            cut.push_ref(u);
        }
        let m = cut.finish(header);
        for u in upserts.iter() {
            m.check_placement(u.path()).map_err(bad)?;
        }
        if let Some(id) = m.pack_refs.keys().find(|id| !packs.contains(id)) {
            return Err(bad(format!(
                "entries refer to pack {id}, which the header does not list"
            )));
        }
        Ok(m)
    }

    /// The next generation after `prev` holding exactly `entries` (sorted
    /// by path): the changes are found by one pass over both lists, then
    /// as [`Manifest::with_changes`].
    pub fn following(header: Header, entries: Vec<Entry>, prev: &Manifest) -> Result<Self, Error> {
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        let part = Part::from(entries);
        let olds: Vec<EntryRef> = prev.entries().collect();
        let news: Vec<EntryRef> = part.iter().collect();
        for c in diff(&olds, &news) {
            match c {
                Change::Upsert(e) => upserts.push(e.to_entry()),
                Change::Removal(e) => removals.push(e.path().to_owned()),
            }
        }
        Manifest::with_changes(header, prev, upserts, removals)
    }

    /// Every entry, in path order.
    pub fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> + Clone + '_ {
        self.parts.iter().flat_map(|p| p.iter())
    }

    /// The entries, copied (for building a changed manifest in tests and
    /// tools).
    pub fn to_entries(&self) -> Vec<Entry> {
        self.entries().map(|e| e.to_entry()).collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunk that would hold `path`.
    fn holder(&self, path: &str) -> Option<usize> {
        self.chunks
            .partition_point(|c| c.first.as_bytes() <= path.as_bytes())
            .checked_sub(1)
    }

    /// The entry at `path`, by binary search.
    pub fn get(&self, path: &str) -> Option<EntryRef<'_>> {
        self.parts[self.holder(path)?].find(path)
    }

    /// The entries under folder `dir` (paths starting with `dir/`).
    pub fn entries_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = EntryRef<'a>> + 'a {
        let prefix = format!("{dir}/");
        let i = self.holder(&prefix).unwrap_or(0);
        self.parts[i.min(self.parts.len())..]
            .iter()
            .flat_map(|p| p.iter())
            .skip_while({
                let prefix = prefix.clone();
                move |e| e.path().as_bytes() < prefix.as_bytes()
            })
            .take_while(move |e| e.path().starts_with(&prefix))
    }

    /// Entries per pack id (file entries naming the pack).
    pub fn pack_refs(&self) -> &BTreeMap<u64, u64> {
        &self.pack_refs
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> &[ChunkRef] {
        &self.chunks
    }

    /// The entries of chunk `i`.
    pub fn chunk_entries(&self, i: usize) -> &Part {
        &self.parts[i]
    }

    /// The body of chunk `i` (hashes to `chunks()[i].sha256`).
    pub fn chunk_body(&self, i: usize) -> Vec<u8> {
        self.parts[i].body()
    }

    /// The chunks this manifest computed when it was built
    /// ([`Manifest::recomputed`]), as (id, compressed body) to store: the
    /// bodies [`Manifest::with_changes`] kept are handed over (and no
    /// longer held here), the others serialized and compressed again.
    pub fn take_new_chunks(&mut self) -> Vec<(Sha256Hash, Vec<u8>)> {
        let kept = self.take_bodies();
        let mut all = Vec::with_capacity(self.recomputed.len());
        let _ = self.store_new_chunks(kept, usize::MAX, |batch| {
            all.extend_from_slice(batch);
            Ok::<(), std::convert::Infallible>(())
        });
        all
    }

    /// The compressed bodies of the new chunks kept since the build, for
    /// [`Manifest::store_new_chunks`]; taken out so the manifest can be
    /// read (signed, diffed) while they are stored.
    pub fn take_bodies(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.bodies)
    }

    /// Hands the new chunks to `store`, at most `batch` at a time, so a
    /// first publish never holds every compressed chunk at once (about
    /// 70 MB at a million entries): `kept` (from [`Manifest::take_bodies`])
    /// in order, each chunk not kept compressed again. Stops at `store`'s
    /// first error.
    pub fn store_new_chunks<E>(
        &self,
        kept: Vec<Vec<u8>>,
        batch: usize,
        mut store: impl FnMut(&[(Sha256Hash, Vec<u8>)]) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut kept = kept.into_iter();
        let mut out = Vec::with_capacity(batch.min(self.recomputed.len()));
        for &i in &self.recomputed {
            let body = kept
                .next()
                .unwrap_or_else(|| crate::compress_chunk(&self.chunk_body(i)));
            out.push((self.chunks[i].sha256, body));
            if out.len() >= batch {
                store(&out)?;
                out.clear();
            }
        }
        if !out.is_empty() {
            store(&out)?;
        }
        Ok(())
    }

    /// Which chunks were serialized and hashed when this manifest was
    /// built (all for [`Manifest::new`], the changed ones for
    /// [`Manifest::with_changes`] and [`crate::Delta::apply`]).
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

    /// Total bytes of regular files ([`Manifest::check`] refuses a
    /// manifest whose total does not fit in a u64; this saturates).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// What changed from `old` to `self`, in path order. Chunks the two
    /// share (same id) hold the same entries and are skipped; only the
    /// entries of the chunks that differ are compared.
    pub fn changes<'a>(&'a self, old: &'a Manifest) -> Vec<Change<'a>> {
        let (a, b) = (&old.chunks, &self.chunks);
        let (mut i, mut j) = (0, 0);
        let (mut olds, mut news): (Vec<EntryRef>, Vec<EntryRef>) = (Vec::new(), Vec::new());
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.sha256 == y.sha256 => {
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) => match x.first.as_bytes().cmp(y.first.as_bytes()) {
                    std::cmp::Ordering::Less => {
                        olds.extend(old.parts[i].iter());
                        i += 1;
                    }
                    std::cmp::Ordering::Greater => {
                        news.extend(self.parts[j].iter());
                        j += 1;
                    }
                    std::cmp::Ordering::Equal => {
                        olds.extend(old.parts[i].iter());
                        news.extend(self.parts[j].iter());
                        i += 1;
                        j += 1;
                    }
                },
                (Some(_), None) => {
                    olds.extend(old.parts[i].iter());
                    i += 1;
                }
                (None, _) => {
                    news.extend(self.parts[j].iter());
                    j += 1;
                }
            }
        }
        diff(&olds, &news).collect()
    }

    /// Builds and fully checks a manifest from its root and the bodies of
    /// its chunks, in the root's order (see [`Assembly`], which takes them
    /// one at a time).
    pub fn from_root<B: AsRef<[u8]>>(
        root: Root,
        bodies: impl IntoIterator<Item = B>,
    ) -> Result<Self, Error> {
        let mut a = Assembly::new(root)?;
        for body in bodies {
            a.push(body.as_ref())?;
        }
        a.finish()
    }

    /// Checks every entry: paths and symlink targets follow [`paths`],
    /// entries are sorted without repeats, every file with content names a
    /// pack the header lists, sizes add up within a u64, and no file or
    /// symlink sits where another path needs a folder.
    pub fn check(&self) -> Result<(), Error> {
        check_format(self.header.format)?;
        let generation = self.header.generation;
        let bad = |detail: String| Error::BadPath { generation, detail };
        let packs: HashSet<u64> = self.header.packs.iter().map(|p| p.id).collect();
        let mut prev: Option<&str> = None;
        let mut total: u64 = 0;
        // Entries a later path could sit under (see `beneath`).
        let mut open: Vec<&str> = Vec::new();
        for e in self.entries() {
            let path = e.path();
            check_entry(path, e.kind(), &packs).map_err(bad)?;
            if let Some(p) = prev {
                if p.as_bytes() >= path.as_bytes() {
                    return Err(bad(format!("entries not sorted or duplicated at '{path}'")));
                }
            }
            if let Some((size, ..)) = e.file() {
                total = total.checked_add(size).ok_or_else(|| overflow(path))?;
            }
            // A file 'a' and an entry 'a/b' would need 'a' to be a
            // directory. In byte order the paths under 'a/' form one run
            // after 'a', so one pass with a stack of entries whose run may
            // still come finds every such pair (no set of every path).
            while let Some(t) = open.last() {
                match crate::beneath(path, t) {
                    crate::Beneath::Inside => {
                        return Err(bad(format!(
                            "'{t}' is a file or symlink but '{path}' needs it to be a directory"
                        )))
                    }
                    crate::Beneath::Past => {
                        open.pop();
                    }
                    crate::Beneath::Before => break,
                }
            }
            open.push(path);
            prev = Some(path);
        }
        Ok(())
    }

    /// Reads a format 1 or 2 manifest body (every entry in one body) from
    /// an agent's own state folder as the format 3 manifest with the same
    /// header and entries: the upgrade path of the generation an origin
    /// published or a mirror applied before the upgrade. Origin and
    /// mirrors convert alike, so the hash of the converted manifest is the
    /// same on both and the origin's next delta applies. Documents from an
    /// upstream older than [`crate::MIN_FORMAT`] are refused, not converted.
    pub fn from_legacy_body(body: &[u8]) -> Result<Self, Error> {
        #[derive(serde::Deserialize)]
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
        if !(1..crate::MIN_FORMAT).contains(&l.header.format) {
            return Err(Error::Format(l.header.format));
        }
        let mut header = l.header;
        header.format = crate::FORMAT;
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

    /// Refuses an expired manifest.
    pub fn check_fresh(&self, now: i64) -> Result<(), Error> {
        self.header.check_fresh(now)
    }

    /// The delta that turns `prev` into `self`; `manifest_signature` is the
    /// signature of `self`'s envelope ([`crate::signed::signature_of`]).
    pub fn delta_from(&self, prev: &Manifest, manifest_signature: String) -> Delta {
        self.delta_between(prev, prev.sha256(), self.sha256(), manifest_signature)
    }

    /// [`Manifest::delta_from`] with both manifests' hashes known (each
    /// costs a serialization of the root).
    pub fn delta_between(
        &self,
        prev: &Manifest,
        prev_sha256: Sha256Hash,
        sha256: Sha256Hash,
        manifest_signature: String,
    ) -> Delta {
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for c in self.changes(prev) {
            match c {
                Change::Upsert(e) => upserts.push(e.to_entry()),
                Change::Removal(e) => removals.push(e.path().to_owned()),
            }
        }
        Delta {
            format: crate::FORMAT,
            from_generation: prev.header.generation,
            from_sha256: prev_sha256,
            manifest_sha256: sha256,
            manifest_signature,
            header: self.header.clone(),
            upserts,
            removals,
        }
    }

    /// Whether the entry at `path` sits where no other entry needs a
    /// folder: none of its ancestors is an entry, and no entry is under it.
    fn check_placement(&self, path: &str) -> Result<(), String> {
        for (i, _) in path.match_indices('/') {
            let anc = &path[..i];
            if self.get(anc).is_some() {
                return Err(format!(
                    "'{anc}' is a file or symlink but '{path}' needs it to be a directory"
                ));
            }
        }
        if let Some(e) = self.entries_under(path).next() {
            return Err(format!(
                "'{path}' is a file or symlink but '{}' needs it to be a directory",
                e.path()
            ));
        }
        Ok(())
    }
}

/// One entry's own rules: its path, its symlink target, and its pack.
fn check_entry(path: &str, kind: KindRef<'_>, packs: &HashSet<u64>) -> Result<(), String> {
    paths::check(path).map_err(|d| format!("'{path}': {d}"))?;
    match kind {
        KindRef::Symlink { target } => paths::check_symlink(path, target)
            .map_err(|d| format!("symlink '{path}' -> '{target}': {d}")),
        KindRef::File { size, pack, .. } => match pack {
            Some(id) if !packs.contains(&id) => {
                Err(format!("'{path}' refers to unknown pack {id}"))
            }
            None if size > 0 => Err(format!("'{path}' has content but no pack")),
            _ => Ok(()),
        },
    }
}

/// The differences from `old` to `new` (both sorted by path), in path
/// order, by one pass over both. Lists that are not sorted (a manifest
/// still to be checked) give some superset of the differences, never a
/// panic.
pub(crate) fn diff<'a, 'b>(
    old: &'b [EntryRef<'a>],
    new: &'b [EntryRef<'a>],
) -> impl Iterator<Item = Change<'a>> + 'b {
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || loop {
        match (old.get(i), new.get(j)) {
            (None, None) => return None,
            (Some(a), None) => {
                i += 1;
                return Some(Change::Removal(*a));
            }
            (None, Some(b)) => {
                j += 1;
                return Some(Change::Upsert(*b));
            }
            (Some(a), Some(b)) => match a.path().as_bytes().cmp(b.path().as_bytes()) {
                std::cmp::Ordering::Less => {
                    i += 1;
                    return Some(Change::Removal(*a));
                }
                std::cmp::Ordering::Greater => {
                    j += 1;
                    return Some(Change::Upsert(*b));
                }
                std::cmp::Ordering::Equal => {
                    i += 1;
                    j += 1;
                    if a != b {
                        return Some(Change::Upsert(*b));
                    }
                }
            },
        }
    })
}

/// A manifest being built from its root and its chunks' bodies, taken one
/// at a time in the root's order, so a caller fetching or reading them
/// never holds more than the one it passes (a million entries are about
/// 180 MB of chunk JSON, against 125 MB as entries).
///
/// Each body must hash to its id, parse, be exactly the compact JSON
/// [`chunk_body`] writes, hold the listed number of entries starting at
/// the listed path, and sort before the next chunk; the chunks must be cut
/// where the format cuts; and the whole must pass [`Manifest::check`].
pub struct Assembly {
    root: Root,
    parts: Vec<Arc<Part>>,
    counts: Counts,
}

impl Assembly {
    /// Checks the root's format and chunk list.
    pub fn new(root: Root) -> Result<Self, Error> {
        check_format(root.header.format)?;
        root.check_chunk_list()?;
        Ok(Assembly {
            parts: Vec::with_capacity(root.chunks.len()),
            root,
            counts: Counts::default(),
        })
    }

    /// The id of the chunk [`Assembly::push`] takes next, if any is left.
    pub fn next_chunk(&self) -> Option<Sha256Hash> {
        self.root.chunks.get(self.parts.len()).map(|c| c.sha256)
    }

    fn bad(&self, index: usize, detail: String) -> Error {
        Error::Chunk {
            generation: self.root.header.generation,
            index,
            detail,
        }
    }

    /// Checks and takes the body of the next chunk.
    pub fn push(&mut self, body: &[u8]) -> Result<(), Error> {
        let i = self.parts.len();
        let root = &self.root;
        let Some(c) = root.chunks.get(i) else {
            return Err(self.bad(i, "more bodies than chunks".into()));
        };
        if body.len() as u64 > MAX_CHUNK_BYTES {
            return Err(self.bad(i, format!("larger than {MAX_CHUNK_BYTES} bytes")));
        }
        let got = Sha256Hash::of(body);
        if got != c.sha256 {
            return Err(self.bad(
                i,
                format!("its body hashes to {got}, not to its id {}", c.sha256),
            ));
        }
        let part: Vec<Entry> = serde_json::from_slice(body)
            .map_err(|e| self.bad(i, format!("not a list of entries: {e}")))?;
        let part = Part::from(part);
        // One byte string per chunk: a mirror stores and serves the
        // chunk it rebuilt from a delta under the same id.
        if part.body() != body {
            return Err(self.bad(
                i,
                "its bytes are not the compact JSON Shoal writes for its entries".into(),
            ));
        }
        if part.len() as u64 != c.count {
            return Err(self.bad(
                i,
                format!("it holds {} entries, the root says {}", part.len(), c.count),
            ));
        }
        if part.is_empty() {
            return Err(self.bad(i, "it holds no entries".into()));
        }
        let first = part.get(0).path();
        if first != &*c.first {
            return Err(self.bad(
                i,
                format!("it starts at '{first}', the root says '{}'", c.first),
            ));
        }
        if let Some(p) = unsorted(part.iter().map(|e| e.path())) {
            return Err(self.bad(i, format!("its entries are not sorted or repeat at '{p}'")));
        }
        let last = part.get(part.len() - 1).path();
        if let Some(next) = root.chunks.get(i + 1) {
            if last.as_bytes() >= next.first.as_bytes() {
                return Err(self.bad(
                    i,
                    format!(
                        "its last path '{last}' overlaps the next chunk, which starts at '{}'",
                        next.first
                    ),
                ));
            }
        }
        let final_chunk = i + 1 == root.chunks.len();
        for (k, e) in part.iter().enumerate() {
            let end = k + 1 == part.len();
            let cut = cuts_after(e.path()) || k + 1 >= MAX_CHUNK_ENTRIES;
            if cut != end && !(end && final_chunk) {
                return Err(self.bad(
                    i,
                    format!(
                        "it is not cut where the format cuts (at '{}', entry {k} of {})",
                        e.path(),
                        c.count
                    ),
                ));
            }
        }
        for e in part.iter() {
            if self.counts.add(e.path(), e.file()).is_err() {
                self.counts.total = u64::MAX;
            }
        }
        self.parts.push(Arc::new(part));
        Ok(())
    }

    /// The manifest, once every chunk was taken, fully checked.
    pub fn finish(self) -> Result<Manifest, Error> {
        let i = self.parts.len();
        if i < self.root.chunks.len() {
            return Err(self.bad(i, "its body is missing".into()));
        }
        let m = Manifest {
            header: self.root.header,
            chunks: self.root.chunks,
            parts: self.parts,
            len: self.counts.len,
            total: self.counts.total,
            pack_refs: self.counts.pack_refs,
            recomputed: Vec::new(),
            bodies: Vec::new(),
        };
        m.check()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EntryKind, PackRef, FORMAT};
    use rand::{seq::SliceRandom, Rng, SeedableRng};

    #[test]
    fn draining_yields_every_item_in_order_and_gives_memory_back() {
        for n in [0usize, 1, 2, 4097, 20_000] {
            let items: Vec<String> = (0..n).map(|i| format!("p{i:06}")).collect();
            let mut it = drain_shrinking(items.clone());
            let mut got = Vec::new();
            for x in it.by_ref().take(n * 3 / 4) {
                got.push(x);
            }
            got.extend(it);
            assert_eq!(got, items, "{n} items");
        }
        // As a big list is taken, what is left is held in less room.
        let mut it = drain_shrinking((0..100_000u64).collect::<Vec<_>>());
        let full = it.0.capacity();
        assert_eq!(it.by_ref().take(60_000).last(), Some(59_999));
        assert!(
            it.0.capacity() <= 40_000 * 8 / 7 + 1,
            "{} of {full}",
            it.0.capacity()
        );
        assert_eq!(it.next(), Some(60_000));
        assert_eq!(it.count(), 39_999);
    }

    fn header(generation: u64, packs: &[u64]) -> Header {
        Header {
            format: FORMAT,
            generation,
            profile: "debian".into(),
            created: 0,
            expires: 1,
            prev_sha256: None,
            packs: packs
                .iter()
                .map(|id| PackRef {
                    id: *id,
                    info_hash: "00".repeat(20),
                    files: 1,
                    bytes: 1,
                })
                .collect(),
        }
    }

    fn file(path: &str, n: u64, pack: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File {
                size: n % 7,
                sha256: Sha256Hash::of(&n.to_le_bytes()),
                pack: (!n.is_multiple_of(7)).then_some(pack),
            },
            mode: 0o644,
            mtime_ns: n as i64,
        }
    }

    /// Paths in a few folders, so that changes land next to each other
    /// and in chunks of their own.
    fn path(rng: &mut rand::rngs::StdRng) -> String {
        let dirs = ["dists/main", "pool/a", "pool/b/c", "pool/d", "z"];
        format!(
            "{}/f{:05}",
            dirs.choose(rng).unwrap(),
            rng.gen_range(0..30_000)
        )
    }

    /// `with_changes` gives what cutting from scratch gives, shares the
    /// untouched chunks, keeps its counts right, and `changes` finds
    /// exactly what a naive comparison of every entry finds.
    #[test]
    fn changes_apply_and_diff_as_a_from_scratch_build_does() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for round in 0..30 {
            let mut all: BTreeMap<String, Entry> = BTreeMap::new();
            for _ in 0..rng.gen_range(0..6000) {
                let p = path(&mut rng);
                let n = rng.gen();
                all.insert(p.clone(), file(&p, n, 1 + n % 3));
            }
            let prev = Manifest::new(
                header(1, &[1, 2, 3]),
                all.values().cloned().collect::<Vec<_>>(),
            );
            prev.check().unwrap();
            let mut upserts: BTreeMap<String, Entry> = BTreeMap::new();
            let mut removals: Vec<String> = Vec::new();
            let keys: Vec<String> = all.keys().cloned().collect();
            for _ in 0..rng.gen_range(0..60) {
                match rng.gen_range(0..3) {
                    0 if !keys.is_empty() => {
                        let p = keys.choose(&mut rng).unwrap();
                        if !upserts.contains_key(p) && !removals.contains(p) {
                            removals.push(p.clone());
                        }
                    }
                    1 if !keys.is_empty() => {
                        let p = keys.choose(&mut rng).unwrap().clone();
                        if !removals.contains(&p) {
                            let n = rng.gen();
                            upserts.insert(p.clone(), file(&p, n, 1 + n % 3));
                        }
                    }
                    _ => {
                        let p = path(&mut rng);
                        if !removals.contains(&p) {
                            let n = rng.gen();
                            upserts.insert(p.clone(), file(&p, n, 1 + n % 3));
                        }
                    }
                }
            }
            removals.sort();
            let mut want = all.clone();
            for r in &removals {
                want.remove(r);
            }
            for (p, e) in &upserts {
                want.insert(p.clone(), e.clone());
            }
            let full = Manifest::new(
                header(2, &[1, 2, 3]),
                want.values().cloned().collect::<Vec<_>>(),
            );
            let inc = Manifest::with_changes(
                header(2, &[1, 2, 3]),
                &prev,
                upserts.values().cloned().collect::<Vec<_>>(),
                removals.clone(),
            )
            .unwrap();
            assert_eq!(inc, full, "round {round}");
            assert_eq!(inc.len(), full.len());
            assert_eq!(inc.total_bytes(), full.total_bytes());
            assert_eq!(inc.pack_refs(), full.pack_refs());
            let shared = inc
                .parts
                .iter()
                .filter(|p| prev.parts.iter().any(|q| Arc::ptr_eq(p, q)))
                .count();
            assert_eq!(shared + inc.recomputed().len(), inc.chunks().len());
            // What changed, by chunks, equals a naive comparison.
            let got: Vec<(String, bool)> = inc
                .changes(&prev)
                .iter()
                .map(|c| (c.path().to_string(), matches!(c, Change::Upsert(_))))
                .collect();
            let mut naive: Vec<(String, bool)> = Vec::new();
            for p in all
                .keys()
                .chain(want.keys())
                .collect::<std::collections::BTreeSet<_>>()
            {
                match (all.get(p), want.get(p)) {
                    (Some(_), None) => naive.push((p.clone(), false)),
                    (a, Some(b)) if a != Some(b) => naive.push((p.clone(), true)),
                    _ => {}
                }
            }
            assert_eq!(got, naive, "round {round}");
            for (p, e) in want.iter().take(50) {
                assert_eq!(inc.get(p).map(|r| r.to_entry()).as_ref(), Some(e));
            }
            assert!(removals.iter().all(|r| inc.get(r).is_none()));
        }
    }

    #[test]
    fn changes_that_break_the_rules_are_refused() {
        let base = vec![
            file("a", 1, 1),
            file("b/c", 2, 1),
            file("d/e", 3, 2),
            file("f", 7, 1),
        ];
        let prev = Manifest::new(header(1, &[1, 2]), base);
        let try_ = |packs: &[u64], ups: Vec<Entry>, rems: &[&str]| {
            Manifest::with_changes(
                header(2, packs),
                &prev,
                ups,
                rems.iter().map(|s| s.to_string()).collect(),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        let e = try_(&[1, 2], vec![file("a/x", 1, 1)], &[]).unwrap_err();
        assert!(e.contains("'a' is a file or symlink but 'a/x'"), "{e}");
        let e = try_(&[1, 2], vec![file("b", 1, 1)], &[]).unwrap_err();
        assert!(e.contains("'b' is a file or symlink but 'b/c'"), "{e}");
        let e = try_(&[1, 2], vec![file("g", 1, 9)], &[]).unwrap_err();
        assert!(e.contains("unknown pack 9"), "{e}");
        let e = try_(&[1, 2], vec![file("../g", 1, 1)], &[]).unwrap_err();
        assert!(e.contains("'../g'"), "{e}");
        let e = try_(&[1, 2], vec![file("h", 1, 1), file("g", 1, 1)], &[]).unwrap_err();
        assert!(e.contains("not sorted"), "{e}");
        let e = try_(&[1, 2], vec![], &["f", "a"]).unwrap_err();
        assert!(e.contains("not sorted"), "{e}");
        // Pack 2 leaves the header while 'd/e' still names it.
        let e = try_(&[1], vec![], &[]).unwrap_err();
        assert!(e.contains("pack 2, which the header does not list"), "{e}");
        // ... and may leave once nothing names it.
        try_(&[1], vec![], &["d/e"]).unwrap();
        // A file replaced by a folder in the same generation is fine.
        try_(&[1, 2], vec![file("a/x", 1, 1)], &["a"]).unwrap();
        try_(&[1, 2], vec![file("b", 1, 1)], &["b/c"]).unwrap();
    }
}
