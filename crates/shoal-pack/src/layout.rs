//! Where each content of a pack lies in the pack's byte stream.
//!
//! BitTorrent hashes a torrent as one stream of bytes cut into pieces. In
//! a Shoal pack that stream is the aligned contents, each starting on a
//! piece boundary and followed by zeros up to the next one (unless it
//! ends the stream), then the packed contents back to back. A format 4
//! pack (`Shape::Stream`) is a torrent of one file, that stream, so
//! librqbit keeps one file's state per pack instead of one per content;
//! the agent's storage maps the stream's bytes to the content files with
//! a [`Layout`]. A pack of the older shape (`Shape::Files`, a torrent file
//! per content and BEP 47 padding files) has the same stream, so the same
//! map serves it.

use crate::PIECE_LEN;

/// The contents of a pack and where each starts in its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Contents in stream order.
    listed: Listed,
    /// Offset in the stream of every [`STEP`]th content; the others are
    /// summed from there (half a byte a content, where a start each took
    /// eight: 8 MB at a million contents, held by every agent for every
    /// pack in its session).
    starts: Vec<u64>,
    count: usize,
    /// How many contents are aligned (each followed by padding).
    packed_from: usize,
    /// Length of the stream.
    len: u64,
}

/// Contents per stored start ([`Layout`]).
const STEP: usize = 16;

/// A run of bytes of the stream: part of one content, or padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the content in [`Layout::files`], or `None` for padding
    /// (zeros that no file holds).
    pub content: Option<usize>,
    /// Offset of the run within the content (0 for padding).
    pub at: u64,
    /// Length of the run.
    pub len: u64,
}

/// A pack's contents in stream order: (sha256, size).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listed {
    /// A list of its own (packs of the older shape, tests).
    Owned(Vec<([u8; 32], u64)>),
    /// The torrent's own contents list ([`crate::CONTENTS_KEY`]: 40-byte
    /// records, the SHA-256 then the size big-endian), shared with every
    /// holder of the torrent's bytes: librqbit's session keeps them, so a
    /// pack in the session costs its list once, not twice (40 bytes a
    /// content, 40 MB at a million).
    Records(bytes::Bytes),
}

impl Listed {
    fn count(&self) -> usize {
        match self {
            Listed::Owned(v) => v.len(),
            Listed::Records(b) => b.len() / crate::LISTED_LEN,
        }
    }

    fn get(&self, k: usize) -> Option<(&[u8; 32], u64)> {
        match self {
            Listed::Owned(v) => v.get(k).map(|(sha, size)| (sha, *size)),
            Listed::Records(b) => {
                let r = b.get(k * crate::LISTED_LEN..(k + 1) * crate::LISTED_LEN)?;
                let (sha, size) = r.split_at(32);
                Some((
                    sha.try_into().expect("32 bytes"),
                    u64::from_be_bytes(size.try_into().expect("8 bytes")),
                ))
            }
        }
    }
}

impl Layout {
    /// The layout of `files` (stream order) whose first `packed_from` are
    /// aligned: each aligned content starts on a piece boundary; the
    /// packed ones follow back to back.
    pub fn new(files: Vec<([u8; 32], u64)>, packed_from: usize) -> Layout {
        Layout::of(Listed::Owned(files), packed_from)
    }

    /// The layout of a pack whose torrent lists its contents as records
    /// under [`crate::CONTENTS_KEY`]: `records` is that list, sliced from
    /// the torrent's bytes (checked by [`crate::parse_torrent`]).
    pub(crate) fn of_records(records: bytes::Bytes, packed_from: usize) -> Layout {
        debug_assert!(records.len().is_multiple_of(crate::LISTED_LEN));
        Layout::of(Listed::Records(records), packed_from)
    }

    fn of(listed: Listed, packed_from: usize) -> Layout {
        let count = listed.count();
        let mut l = Layout {
            listed,
            starts: Vec::with_capacity(count.div_ceil(STEP)),
            count,
            packed_from,
            len: 0,
        };
        let mut cursor = 0u64;
        for i in 0..count {
            if i % STEP == 0 {
                l.starts.push(cursor);
            }
            cursor = l.next_start(i, cursor);
        }
        l.len = cursor;
        l
    }

    /// Where the content after `i` starts, if `i` starts at `start`: past
    /// its bytes, and for an aligned content that is not the last, on the
    /// next piece boundary.
    fn next_start(&self, i: usize, start: u64) -> u64 {
        let end = start + self.size(i);
        if i < self.packed_from && i + 1 < self.count {
            end.div_ceil(PIECE_LEN) * PIECE_LEN
        } else {
            end
        }
    }

    /// How many contents start where `pred` holds, for a `pred` that holds
    /// up to some offset and not after (as a slice's `partition_point`).
    fn partition_point(&self, pred: impl Fn(u64) -> bool) -> usize {
        let j = self.starts.partition_point(|&s| pred(s));
        if j == 0 {
            return 0;
        }
        let last = (j * STEP).min(self.count);
        let (mut i, mut start) = ((j - 1) * STEP, self.starts[j - 1]);
        while i + 1 < last {
            let next = self.next_start(i, start);
            if !pred(next) {
                break;
            }
            (i, start) = (i + 1, next);
        }
        i + 1
    }

    /// How many contents the pack carries.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Content `k`: (sha256, size).
    pub fn file(&self, k: usize) -> Option<(&[u8; 32], u64)> {
        self.listed.get(k)
    }

    /// Content `k`'s SHA-256 (panics past the end, as indexing does).
    pub fn sha(&self, k: usize) -> &[u8; 32] {
        self.file(k).expect("content index in range").0
    }

    /// Content `k`'s size (panics past the end, as indexing does).
    pub fn size(&self, k: usize) -> u64 {
        self.file(k).expect("content index in range").1
    }

    /// The contents in stream order: (sha256, size).
    pub fn files(&self) -> impl ExactSizeIterator<Item = (&[u8; 32], u64)> + '_ {
        (0..self.count()).map(|k| self.listed.get(k).expect("in range"))
    }

    /// Offset in the stream of content `i` (panics past the end).
    pub fn start(&self, i: usize) -> u64 {
        assert!(i < self.count, "content {i} of {}", self.count);
        let from = i / STEP * STEP;
        (from..i).fold(self.starts[i / STEP], |s, k| self.next_start(k, s))
    }

    /// Length of the stream (contents and padding).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the pack has no content.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of the contents' sizes (the stream without its padding).
    pub fn content_bytes(&self) -> u64 {
        self.files().map(|f| f.1).sum()
    }

    /// Indices of the contents that have bytes in `[offset, offset + len)`.
    pub fn contents_in(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        if len == 0 {
            return 0..0;
        }
        let end = offset.saturating_add(len);
        let first = self.partition_point(|s| s <= offset).saturating_sub(1);
        let last = self.partition_point(|s| s < end);
        let first = if self
            .file(first)
            .is_some_and(|f| self.start(first) + f.1 <= offset)
        {
            first + 1
        } else {
            first
        };
        first..last.max(first)
    }

    /// The runs that make up `[offset, offset + len)` of the stream, in
    /// order; `None` if the range runs past the end of the stream.
    pub fn spans(&self, offset: u64, len: u64) -> Option<Vec<Span>> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        let mut out = Vec::new();
        let mut pos = offset;
        let mut k = self.partition_point(|s| s <= pos).saturating_sub(1);
        while pos < end {
            let (start, size) = match self.file(k) {
                Some(f) => (self.start(k), f.1),
                None => (self.len, 0),
            };
            if pos < start {
                // Padding before content k.
                let n = start.min(end) - pos;
                out.push(Span {
                    content: None,
                    at: 0,
                    len: n,
                });
                pos += n;
            } else if pos < start + size {
                let n = (start + size).min(end) - pos;
                out.push(Span {
                    content: Some(k),
                    at: pos - start,
                    len: n,
                });
                pos += n;
            } else {
                k += 1;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(i: u8) -> [u8; 32] {
        [i; 32]
    }

    /// The stream written out byte by byte: which content (and offset in
    /// it) each byte belongs to, straight from the definition.
    fn naive(files: &[([u8; 32], u64)], packed_from: usize) -> Vec<Option<(usize, u64)>> {
        let mut v = Vec::new();
        for (i, (_, size)) in files.iter().enumerate() {
            for at in 0..*size {
                v.push(Some((i, at)));
            }
            if i < packed_from && i + 1 < files.len() {
                while !(v.len() as u64).is_multiple_of(PIECE_LEN) {
                    v.push(None);
                }
            }
        }
        v
    }

    /// With many contents (starts stored for every 16th only), each
    /// content's start, and what lies at each start, one byte before it and
    /// at its last byte, agree with starts summed one by one.
    #[test]
    fn starts_of_many_contents_match_a_running_sum() {
        let p = PIECE_LEN;
        for (aligned, packed) in [(0usize, 200usize), (37, 0), (40, 90), (1, 33), (17, 16)] {
            let sizes: Vec<u64> = (0..aligned)
                .map(|i| p + 1 + (i as u64 * 7919) % (3 * p))
                .chain((0..packed).map(|i| 1 + (i as u64 * 104_729) % (p - 1)))
                .collect();
            let files: Vec<([u8; 32], u64)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| (sha(i as u8), s))
                .collect();
            let l = Layout::new(files, aligned);
            let n = sizes.len();
            let mut want = Vec::with_capacity(n);
            let mut cursor = 0;
            for (i, size) in sizes.iter().enumerate() {
                want.push(cursor);
                cursor += size;
                if i < aligned && i + 1 < n {
                    cursor = cursor.div_ceil(p) * p;
                }
            }
            assert_eq!(l.len(), cursor);
            assert_eq!(l.count(), n);
            for (i, &w) in want.iter().enumerate() {
                assert_eq!(l.start(i), w, "start of {i} ({aligned}+{packed})");
                assert_eq!(l.contents_in(w, 1), i..i + 1);
                let end = w + sizes[i] - 1;
                assert_eq!(l.contents_in(end, 1), i..i + 1);
                if w > 0 {
                    // The byte before: the previous content's, or padding.
                    let before = l.contents_in(w - 1, 1);
                    let padded = want[i - 1] + sizes[i - 1] < w;
                    let expect = if padded { i..i } else { i - 1..i };
                    assert_eq!(before, expect, "before {i} ({aligned}+{packed})");
                    assert_eq!(l.spans(w - 1, 2).unwrap().last().unwrap().content, Some(i));
                }
            }
        }
    }

    /// Spans and `contents_in` agree with the byte-by-byte stream for
    /// every shape of pack and many ranges.
    #[test]
    fn spans_match_the_stream_written_out() {
        let p = PIECE_LEN;
        let cases: Vec<(Vec<u64>, usize)> = vec![
            (vec![p + 10, 2 * p, p + 1, 5, 7, p - 1], 3),
            (vec![p + 10], 1),
            (vec![3, 4, 5], 0),
            (vec![p, p + 1], 2),
            (vec![100, 200], 2),
            (vec![2 * p + 3, 10], 1),
        ];
        for (sizes, packed_from) in cases {
            let files: Vec<([u8; 32], u64)> = sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| (sha(i as u8), s))
                .collect();
            let l = Layout::new(files.clone(), packed_from);
            let bytes = naive(&files, packed_from);
            assert_eq!(l.len(), bytes.len() as u64, "{sizes:?}");
            assert_eq!(l.content_bytes(), sizes.iter().sum::<u64>());
            let total = l.len();
            let mut offsets = vec![0, 1, p - 1, p, p + 1, total / 2, total - 1];
            offsets.extend((0..total).step_by(4099));
            for &off in &offsets {
                for len in [0, 1, 7, p - 3, p, 3 * p, total] {
                    let len = len.min(total.saturating_sub(off));
                    if off > total || (off == total && len > 0) {
                        continue;
                    }
                    let spans = l.spans(off, len).unwrap();
                    let mut got = Vec::new();
                    for s in &spans {
                        assert!(s.len > 0);
                        for j in 0..s.len {
                            got.push(s.content.map(|c| (c, s.at + j)));
                        }
                    }
                    let want = &bytes[off as usize..(off + len) as usize];
                    assert_eq!(got, want, "{sizes:?} at {off}+{len}");
                    let mut touched: Vec<usize> = want.iter().flatten().map(|x| x.0).collect();
                    touched.dedup();
                    let r = l.contents_in(off, len);
                    assert_eq!(r.collect::<Vec<_>>(), touched, "{sizes:?} at {off}+{len}");
                }
            }
            assert!(l.spans(total, 1).is_none());
            assert!(l.spans(u64::MAX, 2).is_none());
        }
    }
}
