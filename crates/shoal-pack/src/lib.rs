//! Shoal packs: BitTorrent v1 torrents over groups of file contents.
//!
//! A pack carries contents, not paths: each content is stored under its
//! SHA-256 (`ab/abcdef…`), the files of a pack are sorted by that name, and
//! every file starts on a piece boundary (BEP 47 padding files fill the
//! gaps; BitTorrent clients that know BEP 47, librqbit among them, neither
//! download nor write them). Because pieces never straddle two files, one
//! read pass over a file yields both its SHA-256 and its piece SHA-1s
//! ([`hash_file`]), files hash in parallel on all cores, and a later pack
//! (compaction) can reuse the piece hashes of an earlier one without
//! reading the data again.
//!
//! [`build`] makes the info dictionary and `.torrent` bytes itself (sorted
//! order, no filesystem walk); [`parse_torrent`] reads one back and checks
//! that it has exactly this shape. [`tracker`] parses the query string of
//! a BitTorrent tracker announce, for the agents' built-in tracker.

mod bencode;
pub mod tracker;

use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Piece length of every pack: one BitTorrent request (16 KiB), so the
/// padding after a file's last piece costs less than one request on the
/// wire (librqbit skips only pieces that are entirely padding).
pub const PIECE_LEN: u64 = 16 * 1024;

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
pub fn hash_stream(r: &mut dyn Read, mut copy: Option<&mut dyn Write>) -> io::Result<Hashed> {
    let mut sha256 = Sha256::new();
    let mut pieces = Vec::new();
    let mut last_unpadded = None;
    let mut buf = vec![0u8; READ_BLOCK];
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
/// also written there (created new, synced), so a copy holds exactly what
/// was hashed even if the source changes meanwhile.
pub fn hash_file(path: &Path, copy_to: Option<&Path>) -> io::Result<Hashed> {
    let mut f = File::open(path)?;
    match copy_to {
        None => hash_stream(&mut f, None),
        Some(dst) => {
            let mut out = io::BufWriter::with_capacity(
                READ_BLOCK,
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(dst)?,
            );
            let h = hash_stream(&mut f, Some(&mut out))?;
            out.into_inner().map_err(|e| e.into_error())?.sync_data()?;
            Ok(h)
        }
    }
}

/// The store path of a content inside a pack folder: `ab/abcdef…`.
pub fn content_path(sha256: &[u8; 32]) -> PathBuf {
    let h = hex::encode(sha256);
    PathBuf::from(&h[..2]).join(h)
}

/// One content to put into a pack.
#[derive(Debug, Clone)]
pub struct Content {
    pub sha256: [u8; 32],
    pub size: u64,
    pub pieces: Vec<[u8; 20]>,
    pub last_unpadded: Option<[u8; 20]>,
}

impl From<Hashed> for Content {
    fn from(h: Hashed) -> Self {
        Content {
            sha256: h.sha256,
            size: h.size,
            pieces: h.pieces,
            last_unpadded: h.last_unpadded,
        }
    }
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
pub fn build(name: &str, contents: &[Content]) -> Pack {
    let mut sorted: Vec<&Content> = contents.iter().filter(|c| c.size > 0).collect();
    sorted.sort_by_key(|a| a.sha256);
    sorted.dedup_by(|a, b| a.sha256 == b.sha256);

    let mut files = Vec::new();
    let mut pieces: Vec<u8> = Vec::new();
    let mut file_list = bencode::List::new();
    let n = sorted.len();
    for (i, c) in sorted.iter().enumerate() {
        let hexname = hex::encode(c.sha256);
        file_list.push_raw(&bencode::file_entry(
            None,
            c.size,
            &[&hexname[..2], &hexname],
        ));
        let rem = c.size % PIECE_LEN;
        let is_last = i + 1 == n;
        let (full, last) = c.pieces.split_at(c.pieces.len() - 1);
        for p in full {
            pieces.extend_from_slice(p);
        }
        if rem != 0 && is_last {
            pieces.extend_from_slice(&c.last_unpadded.expect("partial piece has unpadded hash"));
        } else {
            pieces.extend_from_slice(&last[0]);
        }
        if rem != 0 && !is_last {
            let pad = PIECE_LEN - rem;
            file_list.push_raw(&bencode::file_entry(
                Some("p"),
                pad,
                &[".pad", &pad.to_string()],
            ));
        }
        files.push((c.sha256, c.size));
    }
    let info = bencode::info_dict(&file_list, name, PIECE_LEN, &pieces);
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
    /// Piece hashes of each content, in `files` order, as the torrent
    /// holds them: a partial last piece is hashed zero-padded, except for
    /// the pack's last file, whose last piece is hashed unpadded (no
    /// padding file follows it). Use [`ParsedPack::content`] to pack a
    /// content again.
    pub pieces: Vec<Vec<[u8; 20]>>,
}

impl ParsedPack {
    /// Content `i` of this pack, ready to go into another pack
    /// (compaction) without reading it again: every full piece hash is
    /// reused, and the partial last piece, if any, is hashed again from
    /// `tail` (its bytes: the content's last `size % PIECE_LEN` bytes),
    /// because the new pack may need it padded where this one had it
    /// unpadded, or the other way round.
    pub fn content(&self, i: usize, tail: &[u8]) -> io::Result<Content> {
        let (sha256, size) = self.files[i];
        let rem = (size % PIECE_LEN) as usize;
        let mut pieces = self.pieces[i].clone();
        let mut last_unpadded = None;
        if rem != 0 {
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
            let h = hash_stream(&mut &tail[..], None)?;
            *pieces.last_mut().expect("a partial piece exists") = h.pieces[0];
            last_unpadded = h.last_unpadded;
        }
        Ok(Content {
            sha256,
            size,
            pieces,
            last_unpadded,
        })
    }
}

/// Why a `.torrent` was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a Shoal pack torrent: {0}")]
    Malformed(String),
    #[error("torrent info hash is {got}, but the signed manifest says {expected}; it was forged or corrupted")]
    WrongHash { expected: String, got: String },
}

/// Parses a pack's `.torrent` and checks its shape; with `expected`, also
/// that its info hash is the one the signed manifest names.
pub fn parse_torrent(bytes: &[u8], expected: Option<&str>) -> Result<ParsedPack, Error> {
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
    let all_pieces = info.dict_bytes(b"pieces").ok_or_else(|| bad("no pieces"))?;
    if all_pieces.len() % 20 != 0 {
        return Err(bad("pieces length not a multiple of 20"));
    }
    let mut piece_iter = all_pieces.chunks(20);
    let list = info
        .dict_list(b"files")
        .ok_or_else(|| bad("no files list"))?;
    let mut files = Vec::new();
    let mut pieces = Vec::new();
    let mut expect_pad: Option<u64> = None;
    for f in list {
        let len = f
            .dict_int(b"length")
            .ok_or_else(|| bad("file without length"))?;
        if len < 0 {
            return Err(bad("negative length"));
        }
        let len = len as u64;
        let path: Vec<&[u8]> = f
            .dict_list(b"path")
            .ok_or_else(|| bad("file without path"))?
            .iter()
            .map(|p| p.as_bytes().unwrap_or(b""))
            .collect();
        let is_pad = f
            .dict_bytes(b"attr")
            .map(|a| a.contains(&b'p'))
            .unwrap_or(false);
        if is_pad {
            if expect_pad != Some(len) || path.first() != Some(&&b".pad"[..]) {
                return Err(bad("unexpected padding file"));
            }
            expect_pad = None;
            continue;
        }
        if expect_pad.is_some() {
            return Err(bad("missing padding file"));
        }
        let [dir, hexname] = path.as_slice() else {
            return Err(bad("file path is not <xx>/<sha256>"));
        };
        let mut sha = [0u8; 32];
        hex::decode_to_slice(hexname, &mut sha).map_err(|_| bad("file name is not a SHA-256"))?;
        if *dir != &hexname[..2] || len == 0 {
            return Err(bad("file path is not <xx>/<sha256>"));
        }
        if let Some((prev, _)) = files.last() {
            if *prev >= sha {
                return Err(bad("files not sorted"));
            }
        }
        // Checked before allocating: a forged length must not size a Vec.
        let n = len.div_ceil(PIECE_LEN);
        if n > piece_iter.len() as u64 {
            return Err(bad("too few pieces"));
        }
        let ps: Vec<[u8; 20]> = piece_iter
            .by_ref()
            .take(n as usize)
            .map(|p| p.try_into().expect("20 bytes"))
            .collect();
        pieces.push(ps);
        files.push((sha, len));
        if !len.is_multiple_of(PIECE_LEN) {
            expect_pad = Some(PIECE_LEN - len % PIECE_LEN);
        }
    }
    if piece_iter.next().is_some() {
        return Err(bad("too many pieces"));
    }
    Ok(ParsedPack {
        info_hash,
        name,
        files,
        pieces,
    })
}

/// Most pieces in one pack: 128 Ki pieces (2 GiB of 16 KiB pieces), whose
/// BitTorrent bitfield is 16 KiB. librqbit 9.1 writes every peer message
/// into a buffer of one 16 KiB chunk plus a small header, so a seeder of a
/// torrent with more pieces cannot send its bitfield: it drops every
/// connection ("not enough space in buffer") and nobody can download the
/// pack. A single content of more pieces (a file over 2 GiB) still gets a
/// pack of its own, which hits that limit.
pub const MAX_PIECES: usize = 128 * 1024;

/// Splits contents (already sorted however the caller likes) into groups
/// of at most `max_files` files, `max_bytes` bytes and [`MAX_PIECES`]
/// pieces (a single larger content gets a group of its own).
pub fn group(contents: Vec<Content>, max_files: usize, max_bytes: u64) -> Vec<Vec<Content>> {
    let mut out: Vec<Vec<Content>> = Vec::new();
    let mut cur: Vec<Content> = Vec::new();
    let mut cur_bytes = 0u64;
    let mut cur_pieces = 0usize;
    for c in contents {
        if !cur.is_empty()
            && (cur.len() >= max_files
                || cur_bytes + c.size > max_bytes
                || cur_pieces + c.pieces.len() > MAX_PIECES)
        {
            out.push(std::mem::take(&mut cur));
            cur_bytes = 0;
            cur_pieces = 0;
        }
        cur_bytes += c.size;
        cur_pieces += c.pieces.len();
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(data: &[u8]) -> Content {
        hash_stream(&mut &data[..], None).unwrap().into()
    }

    /// A content of `pieces` full pieces (hashes not computed).
    fn big(tag: u8, pieces: usize) -> Content {
        Content {
            sha256: [tag; 32],
            size: pieces as u64 * PIECE_LEN,
            pieces: vec![[0u8; 20]; pieces],
            last_unpadded: None,
        }
    }

    #[test]
    fn groups_stay_within_a_bitfield_librqbit_can_send() {
        // The bitfield of a full group is exactly one 16 KiB chunk.
        assert_eq!(MAX_PIECES.div_ceil(8), 16 * 1024);
        // 3 GiB in three 1 GiB contents: byte limit 4 GiB would take all
        // three, the piece limit takes two at most.
        let third = MAX_PIECES / 2;
        let g = group(
            vec![big(1, third), big(2, third), big(3, third)],
            10_000,
            4 << 30,
        );
        let sizes: Vec<usize> = g.iter().map(|g| g.len()).collect();
        assert_eq!(sizes, vec![2, 1]);
        for g in &g {
            assert!(g.iter().map(|c| c.pieces.len()).sum::<usize>() <= MAX_PIECES);
        }
        // Exactly at the limit is fine; one piece more is not.
        let g = group(
            vec![big(1, MAX_PIECES - 1), big(2, 1), big(3, 1)],
            10_000,
            u64::MAX,
        );
        assert_eq!(g.iter().map(|g| g.len()).collect::<Vec<_>>(), vec![2, 1]);
        // A content larger than the limit still gets a group of its own.
        let g = group(
            vec![big(1, 1), big(2, MAX_PIECES + 5), big(3, 1)],
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
        let contents = vec![
            content(&a),
            content(&b),
            content(&c),
            content(&a),
            content(b""),
        ];
        let p = build("shoal-test", &contents);
        assert_eq!(p.files.len(), 3);
        let parsed = parse_torrent(&p.torrent, Some(&hex::encode(p.info_hash))).unwrap();
        assert_eq!(parsed.files, p.files);
        assert_eq!(parsed.name, "shoal-test");

        // The torrent's pieces must equal SHA-1 over the padded concatenation
        // in torrent order: what any BitTorrent client computes.
        let by_hash = |s: &[u8; 32]| -> &Vec<u8> {
            [&a, &b, &c]
                .into_iter()
                .find(|d| <[u8; 32]>::from(Sha256::digest(d)) == *s)
                .unwrap()
        };
        let mut stream = Vec::new();
        for (i, (sha, size)) in p.files.iter().enumerate() {
            stream.extend_from_slice(by_hash(sha));
            if i + 1 < p.files.len() && size % PIECE_LEN != 0 {
                stream.resize(stream.len() + (PIECE_LEN - size % PIECE_LEN) as usize, 0);
            }
        }
        let expected: Vec<[u8; 20]> = stream
            .chunks(PIECE_LEN as usize)
            .map(|ch| Sha1::digest(ch).into())
            .collect();
        let got: Vec<[u8; 20]> = {
            let top = bencode::parse(&p.torrent).unwrap();
            let info = bencode::parse(top.dict_raw(b"info").unwrap()).unwrap();
            info.dict_bytes(b"pieces")
                .unwrap()
                .chunks(20)
                .map(|x| x.try_into().unwrap())
                .collect()
        };
        assert_eq!(got, expected);
    }

    /// Regression (issue "Never stall, never break apt"): a content that
    /// was the last file of its pack, with a partial last piece, keeps the
    /// old torrent's *unpadded* tail hash; compaction put it in the middle
    /// of a new pack with that hash, so the new pack's check came up one
    /// piece short and the publish failed.
    #[test]
    fn repacked_contents_get_the_tail_hash_their_new_place_needs() {
        let a = vec![1u8; (PIECE_LEN + 100) as usize];
        let b = vec![2u8; (2 * PIECE_LEN + 7) as usize];
        let c = vec![3u8; 50];
        let all = [content(&a), content(&b), content(&c)];
        let mut by_sha = all.to_vec();
        by_sha.sort_by_key(|c| c.sha256);
        let data = |sha: &[u8; 32]| -> &Vec<u8> {
            [&a, &b, &c]
                .into_iter()
                .find(|d| <[u8; 32]>::from(Sha256::digest(d)) == *sha)
                .unwrap()
        };
        // Old pack: the two lowest contents, so the middle one ends it.
        let old = build("old", &by_sha[..2]);
        let parsed = parse_torrent(&old.torrent, None).unwrap();
        let tail = |i: usize| {
            let (sha, size) = parsed.files[i];
            let d = data(&sha);
            d[(size - size % PIECE_LEN) as usize..].to_vec()
        };
        let last = parsed.files.len() - 1;
        let reused = parsed.content(last, &tail(last)).unwrap();
        // The old torrent's hash for it is unpadded: the bug reused it.
        assert_ne!(parsed.pieces[last].last(), reused.pieces.last());
        let fresh = build(
            "new",
            &[by_sha[1].clone(), by_sha[0].clone(), by_sha[2].clone()],
        );
        let repacked = build(
            "new",
            &[
                reused,
                parsed.content(0, &tail(0)).unwrap(),
                by_sha[2].clone(),
            ],
        );
        assert_eq!(repacked.info_hash, fresh.info_hash);
        // And the new pack, alone, equals one built from fresh hashes too.
        let single = build("one", &[parsed.content(last, &tail(last)).unwrap()]);
        assert_eq!(
            single.info_hash,
            build("one", &[by_sha[1].clone()]).info_hash
        );
        assert!(parsed.content(last, b"short").is_err());
    }

    #[test]
    fn forged_or_foreign_torrents_are_refused() {
        let p = build("x", &[content(b"hello")]);
        let e = parse_torrent(&p.torrent, Some(&"00".repeat(20))).unwrap_err();
        assert!(e.to_string().contains("forged"), "{e}");
        assert!(parse_torrent(b"garbage", None).is_err());
        assert!(parse_torrent(&p.torrent[..p.torrent.len() - 2], None).is_err());
        // A torrent with a path-traversal file name is not a Shoal pack.
        let mut t = p.torrent.clone();
        let hexname = hex::encode(p.files[0].0);
        let pos = t
            .windows(hexname.len())
            .position(|w| w == hexname.as_bytes())
            .unwrap();
        t[pos..pos + 3].copy_from_slice(b"../");
        assert!(parse_torrent(&t, None).is_err());
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
        let p = build("x", &[content(b"hello")]);
        for huge in [
            "9223372036854775807",
            "4611686018427387904",
            "35184372088832",
        ] {
            let mut bytes = p.torrent.clone();
            let at = bytes.windows(11).position(|w| w == b"6:lengthi5e").unwrap();
            bytes.splice(at..at + 11, format!("6:lengthi{huge}e").into_bytes());
            let e = parse_torrent(&bytes, None).unwrap_err().to_string();
            assert!(e.contains("too few pieces"), "{e}");
        }
    }

    #[test]
    fn grouping_bounds() {
        let cs: Vec<Content> = (0..25u8).map(|i| content(&[i; 100])).collect();
        let g = group(cs.clone(), 10, u64::MAX);
        assert_eq!(
            g.iter().map(|x| x.len()).collect::<Vec<_>>(),
            vec![10, 10, 5]
        );
        let g = group(cs, 100, 250);
        assert!(g
            .iter()
            .all(|x| x.iter().map(|c| c.size).sum::<u64>() <= 250));
        assert_eq!(g.iter().map(|x| x.len()).sum::<usize>(), 25);
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
        for size in [0, 1, p - 1, p, p + 1, READ_BLOCK - 1, READ_BLOCK, large] {
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
            let copy = dir.path().join(format!("c{size}"));
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
