//! librqbit storage for pack folders: opens files lazily and never touches
//! complete files.
//!
//! librqbit's filesystem storage opens every file of a torrent when it is
//! added and keeps it open. An agent holds every file of the tree in some
//! pack, so a tree of more files than the open-file limit (20,000 on some
//! hosts, and not always raisable) could not be published or mirrored at
//! all ("Too many open files"). This storage opens a file when a piece of
//! it is read or written and keeps only the few most recently used ones
//! open ([`OPEN_PER_PACK`] per pack).
//!
//! librqbit's filesystem storage also calls `set_len` on every file each
//! time a torrent is added, which bumps the mtime even when the length is
//! already right. Pack-store files are hard links of live-tree files
//! (mirror) or of repository files (origin), so that would change what HTTP
//! clients see and make the origin believe its archive changed. This
//! storage skips `set_len` when the length is already right, and on the
//! origin refuses every write: the origin seeds, it never downloads into
//! its archive (and opens its files read-only).
//!
//! A format 4 pack is a torrent of one file, the pack's byte stream
//! (`shoal_pack::layout`): librqbit keeps one file's state for it, and
//! this storage maps each read and write of the stream to the content
//! files (`ab/abcdef…`) with the pack's [`Layout`], reading zeros where
//! the stream pads an aligned content to a piece boundary. A pack of an
//! older format lists a torrent file per content; librqbit's file offsets
//! put those into the same stream, so the same map serves both.
//!
//! A pack's small contents lie back to back, so one piece spans several of
//! them; when a mirror already holds some of them (hard-linked from its
//! live tree) and downloads the piece for a missing neighbour, librqbit
//! writes the whole piece, also over the held files. Writes that would not
//! change a small file's bytes are skipped, so its mtime (which HTTP
//! clients see through the live tree) stays as it was.

use anyhow::Context;
use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};
use shoal_pack::Layout;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files kept open per pack (least recently used ones are closed).
pub const OPEN_PER_PACK: usize = 8;

#[derive(Clone)]
pub struct PackStorageFactory {
    folder: PathBuf,
    /// The pack's layout, parsed once by [`crate::bt::Bt::add`] from the
    /// torrent it gives librqbit, and shared (a million contents' list is
    /// 48 MB).
    layout: Arc<Layout>,
    read_only: bool,
}

impl PackStorageFactory {
    pub fn boxed_for(folder: &Path, layout: Arc<Layout>, read_only: bool) -> BoxStorageFactory {
        PackStorageFactory {
            folder: folder.to_path_buf(),
            layout,
            read_only,
        }
        .boxed()
    }
}

impl StorageFactory for PackStorageFactory {
    type Storage = PackStorage;

    fn create(
        &self,
        _shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<PackStorage> {
        // The layout came from the same torrent; a stream of another
        // length would mean it did not.
        let end = metadata
            .file_infos
            .last()
            .map(|f| f.offset_in_torrent + f.len);
        if end != Some(self.layout.len()) {
            anyhow::bail!(
                "pack in {}: its torrent's files end at {end:?}, its layout at {} (bug)",
                self.folder.display(),
                self.layout.len()
            );
        }
        Ok(PackStorage::new(
            &self.folder,
            self.layout.clone(),
            metadata
                .file_infos
                .iter()
                .map(|f| f.offset_in_torrent)
                .collect(),
            self.read_only,
        ))
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

pub struct PackStorage {
    folder: PathBuf,
    /// Where each content lies in the pack's stream.
    layout: Arc<Layout>,
    /// Offset in the stream of each torrent file: one file for a format 4
    /// pack, a file per content or padding for older ones.
    file_starts: Arc<Vec<u64>>,
    read_only: bool,
    /// Recently used open content files, most recent last.
    open: Mutex<Vec<(usize, Arc<File>)>>,
}

impl PackStorage {
    fn new(folder: &Path, layout: Arc<Layout>, file_starts: Vec<u64>, read_only: bool) -> Self {
        PackStorage {
            folder: folder.to_path_buf(),
            layout,
            file_starts: Arc::new(file_starts),
            read_only,
            open: Mutex::new(Vec::new()),
        }
    }

    fn refuse(&self, what: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{what} in {}: the origin never writes into its pack store; its data no longer \
             matches the published pack (was the repository file rewritten in place?)",
            self.folder.display()
        )
    }

    /// The store path of content `k`.
    fn path(&self, k: usize) -> PathBuf {
        self.folder
            .join(shoal_pack::content_path(self.layout.sha(k)))
    }

    /// Offset in the stream of torrent file `file_id`.
    fn file_start(&self, file_id: usize) -> anyhow::Result<u64> {
        self.file_starts
            .get(file_id)
            .copied()
            .with_context(|| format!("no torrent file {file_id} in {}", self.folder.display()))
    }

    /// The runs of torrent file `file_id`'s bytes `[offset, offset + len)`.
    fn spans(
        &self,
        file_id: usize,
        offset: u64,
        len: u64,
    ) -> anyhow::Result<Vec<shoal_pack::Span>> {
        let start = self.file_start(file_id)?;
        self.layout
            .spans(start.saturating_add(offset), len)
            .with_context(|| {
                format!(
                    "{len} bytes at {offset} of torrent file {file_id} lie beyond the pack in {}",
                    self.folder.display()
                )
            })
    }

    /// The open file of content `k`, opening it (and closing the least
    /// recently used one) if needed.
    fn file(&self, k: usize) -> anyhow::Result<Arc<File>> {
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = open.iter().position(|(id, _)| *id == k) {
                let e = open.remove(i);
                let f = e.1.clone();
                open.push(e);
                return Ok(f);
            }
        }
        let path = self.path(k);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let f = Arc::new(f);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !open.iter().any(|(id, _)| *id == k) {
            if open.len() >= OPEN_PER_PACK {
                open.remove(0);
            }
            open.push((k, f.clone()));
        }
        Ok(f)
    }

    /// Whether writing `buf` at `offset` of content `k` would leave a
    /// small content's bytes as they are (a piece written again over a
    /// held neighbour).
    fn unchanged(&self, k: usize, f: &File, offset: u64, buf: &[u8]) -> bool {
        if !shoal_pack::is_packed(self.layout.size(k)) {
            return false;
        }
        let mut have = vec![0u8; buf.len()];
        f.read_exact_at(&mut have, offset).is_ok() && have == buf
    }

    /// Writes `buf` at `offset` of torrent file `file_id` into the content
    /// files it covers, skipping padding and bytes already there.
    fn write_at(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse("a write"));
        }
        let mut done = 0usize;
        for s in self.spans(file_id, offset, buf.len() as u64)? {
            let part = &buf[done..done + s.len as usize];
            done += s.len as usize;
            // Padding is zeros no file holds; a peer that sent other bytes
            // there fails the piece's hash check when it is read back.
            let Some(k) = s.content else { continue };
            let f = self.file(k)?;
            if !self.unchanged(k, &f, s.at, part) {
                f.write_all_at(part, s.at)?;
            }
        }
        Ok(())
    }

    /// Creates the folders and (on a mirror) empty files for the contents
    /// that are missing, like librqbit's own storage, but keeps nothing
    /// open.
    fn create_missing(&self) -> anyhow::Result<()> {
        if self.read_only {
            return Ok(());
        }
        let mut made = std::collections::HashSet::new();
        for k in 0..self.layout.files().len() {
            let p = self.path(k);
            if p.exists() {
                continue;
            }
            let parent = p.parent().context("bug: pack file without a folder")?;
            if made.insert(parent.to_path_buf()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("cannot create {}", parent.display()))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .with_context(|| format!("cannot create {}", p.display()))?;
        }
        Ok(())
    }
}

impl TorrentStorage for PackStorage {
    /// See [`PackStorage::create_missing`].
    fn init(
        &mut self,
        _shared: &ManagedTorrentShared,
        _metadata: &TorrentMetadata,
    ) -> anyhow::Result<()> {
        self.create_missing()
    }
    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        let mut done = 0usize;
        for s in self.spans(file_id, offset, buf.len() as u64)? {
            let part = &mut buf[done..done + s.len as usize];
            done += s.len as usize;
            match s.content {
                None => part.fill(0),
                Some(k) => self.file(k)?.read_exact_at(part, s.at)?,
            }
        }
        Ok(())
    }

    fn pwrite_all(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        self.write_at(file_id, offset, buf)
    }

    fn pwrite_all_vectored(
        &self,
        file_id: usize,
        offset: u64,
        bufs: [std::io::IoSlice<'_>; 2],
    ) -> anyhow::Result<usize> {
        self.write_at(file_id, offset, &bufs[0])?;
        self.write_at(file_id, offset + bufs[0].len() as u64, &bufs[1])?;
        Ok(bufs[0].len() + bufs[1].len())
    }

    /// Removes the content files of torrent file `file_id`.
    fn remove_file(&self, file_id: usize, _filename: &Path) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse("a removal"));
        }
        let start = self.file_start(file_id)?;
        let end = self
            .file_starts
            .get(file_id + 1)
            .copied()
            .unwrap_or(self.layout.len());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        for k in self.layout.contents_in(start, end.saturating_sub(start)) {
            open.retain(|(id, _)| *id != k);
            let p = self.path(k);
            std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
        }
        Ok(())
    }

    fn remove_directory_if_empty(&self, path: &Path) -> anyhow::Result<()> {
        let path = self.folder.join(path);
        if path.is_dir() && std::fs::read_dir(&path)?.next().is_none() {
            std::fs::remove_dir(&path).with_context(|| format!("cannot remove {path:?}"))?;
        }
        Ok(())
    }

    /// Gives each content of torrent file `file_id` its length, skipping
    /// the ones already right (setting it bumps the mtime).
    fn ensure_file_length(&self, file_id: usize, length: u64) -> anyhow::Result<()> {
        for k in self.layout.contents_in(self.file_start(file_id)?, length) {
            let size = self.layout.size(k);
            let path = self.path(k);
            if std::fs::metadata(&path)
                .map(|m| m.len() == size)
                .unwrap_or(false)
            {
                continue;
            }
            if self.read_only {
                return Err(self.refuse(&format!("{} has another length", path.display())));
            }
            // Opened afresh: a cached handle may be of a file since
            // replaced at this path.
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(size))
                .with_context(|| format!("cannot set the length of {}", path.display()))?;
        }
        Ok(())
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Box::new(PackStorage {
            folder: self.folder.clone(),
            layout: self.layout.clone(),
            file_starts: self.file_starts.clone(),
            read_only: self.read_only,
            open: Mutex::new(open),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// SHA-1 of each piece of the `len`-byte stream read through `storage`
    /// (the last one unpadded when it is short, as the torrent has it).
    fn pieces_read(storage: &PackStorage, len: u64) -> Vec<[u8; 20]> {
        let plen = shoal_pack::PIECE_LEN;
        (0..len.div_ceil(plen))
            .map(|i| {
                let mut buf = vec![0xAAu8; (len - i * plen).min(plen) as usize];
                storage.pread_exact(0, i * plen, &mut buf).unwrap();
                let h = shoal_pack::hash_stream(&mut &buf[..], None).unwrap();
                h.last_unpadded.unwrap_or(h.pieces[0])
            })
            .collect()
    }

    /// Every piece hash a parsed pack's torrent holds, in stream order.
    fn torrent_pieces(parsed: &shoal_pack::ParsedPack) -> Vec<[u8; 20]> {
        let mut want = parsed.pieces.concat();
        want.extend(&parsed.packed_pieces);
        want
    }

    /// A pack built from `datas`, each written to its store path under
    /// `dir`, and a storage over it.
    fn pack_in(dir: &Path, datas: &[Vec<u8>], read_only: bool) -> (shoal_pack::Pack, PackStorage) {
        let contents: Vec<shoal_pack::Content> = datas
            .iter()
            .map(|d| shoal_pack::hash_stream(&mut &d[..], None).unwrap().into())
            .collect();
        let by_sha = |sha: &[u8; 32]| {
            datas
                .iter()
                .zip(&contents)
                .find(|(_, c)| c.sha256 == *sha)
                .map(|(d, _)| d.clone())
                .unwrap()
        };
        let pack = shoal_pack::build("t", &contents, &mut |c| Ok(by_sha(&c.sha256))).unwrap();
        for (sha, _) in &pack.files {
            let p = dir.join(shoal_pack::content_path(sha));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, by_sha(sha)).unwrap();
        }
        let parsed = shoal_pack::parse_torrent(&pack.torrent, None).unwrap();
        assert_eq!(parsed.shape, shoal_pack::Shape::Stream);
        let storage = PackStorage::new(dir, Arc::new(parsed.layout()), vec![0], read_only);
        (pack, storage)
    }

    /// Every piece read through the storage hashes to the torrent's piece
    /// hash: the stream is mapped to the content files, padding reads as
    /// zeros, and reads that straddle contents and padding are stitched.
    #[test]
    fn reads_of_the_stream_hash_to_the_torrents_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let plen = shoal_pack::PIECE_LEN as usize;
        let datas: Vec<Vec<u8>> = vec![
            vec![1u8; plen + 100],
            vec![2u8; 3 * plen],
            vec![3u8; 2 * plen + 7],
            b"hello".to_vec(),
            vec![4u8; 700],
            vec![5u8; plen - 1],
        ];
        let (pack, storage) = pack_in(dir.path(), &datas, true);
        let parsed = shoal_pack::parse_torrent(&pack.torrent, None).unwrap();
        assert!(parsed.packed_from == 3 && parsed.files.len() == 6);
        let len = parsed.layout().len();
        assert_eq!(pieces_read(&storage, len), torrent_pieces(&parsed));
        // A read past the stream is refused, naming the pack's folder.
        let mut buf = [0u8; 2];
        let e = storage
            .pread_exact(0, len - 1, &mut buf)
            .unwrap_err()
            .to_string();
        assert!(e.contains("beyond the pack"), "{e}");
        // The origin's storage refuses writes.
        let e = storage.pwrite_all(0, 0, b"x").unwrap_err().to_string();
        assert!(e.contains("never writes"), "{e}");
    }

    /// A mirror's storage: missing contents are created, get their length,
    /// and a piece written over the stream lands in each content it spans;
    /// a write that would not change a small content's bytes is skipped
    /// (its mtime stays); a large content is written as told.
    #[test]
    fn writes_land_in_the_contents_and_spare_held_small_ones() {
        let dir = tempfile::tempdir().unwrap();
        let plen = shoal_pack::PIECE_LEN as usize;
        let datas: Vec<Vec<u8>> = vec![
            vec![9u8; plen + 20],
            b"hello world".to_vec(),
            b"abc".to_vec(),
        ];
        let (pack, storage) = pack_in(dir.path(), &datas, false);
        let layout = shoal_pack::parse_torrent(&pack.torrent, None)
            .unwrap()
            .layout();
        // The small ones lie back to back after the large one's padding.
        let small = layout.start(1);
        assert_eq!(small, 2 * plen as u64);
        let past = SystemTime::now() - Duration::from_secs(3600);
        let path = |k: usize| dir.path().join(shoal_pack::content_path(layout.sha(k)));
        for k in 0..3 {
            File::options()
                .write(true)
                .open(path(k))
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        // The packed region written again with its own bytes.
        let mut region = vec![0u8; (layout.len() - small) as usize];
        storage.pread_exact(0, small, &mut region).unwrap();
        storage.pwrite_all(0, small, &region).unwrap();
        assert_eq!(mtime(&path(1)), past, "same bytes were written again");
        assert_eq!(mtime(&path(2)), past);
        // One byte changed in the second small content only.
        let mut changed = region.clone();
        let second = (layout.start(2) - small) as usize;
        changed[second] = b'X';
        storage.pwrite_all(0, small, &changed).unwrap();
        assert_eq!(mtime(&path(1)), past);
        assert_ne!(mtime(&path(2)), past);
        assert_eq!(std::fs::read(path(2)).unwrap(), b"Xbc");
        // Large contents are written as told; padding is ignored.
        storage.pwrite_all(0, 0, &vec![9u8; 2 * plen]).unwrap();
        assert_ne!(mtime(&path(0)), past);
        assert_eq!(std::fs::read(path(0)).unwrap(), datas[0]);
        // A missing content is created empty at init, then given its
        // length; a content already of the right length is left alone.
        std::fs::remove_file(path(1)).unwrap();
        let before = mtime(&path(2));
        storage.create_missing().unwrap();
        assert_eq!(std::fs::metadata(path(1)).unwrap().len(), 0);
        storage.ensure_file_length(0, layout.len()).unwrap();
        assert_eq!(std::fs::metadata(path(1)).unwrap().len(), 11);
        assert_eq!(mtime(&path(2)), before);
    }

    /// A format 3 pack (a torrent file per content, BEP 47 padding files
    /// between aligned ones) is mapped into the same stream through the
    /// file offsets librqbit's own parser gives: each torrent file reads
    /// back as its content, and every piece as the torrent's hash says.
    #[test]
    fn format_3_packs_map_through_librqbits_file_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let plen = shoal_pack::PIECE_LEN as usize;
        let datas: Vec<Vec<u8>> = vec![
            vec![1u8; plen + 100],
            vec![2u8; 2 * plen + 3],
            b"tiny".to_vec(),
            vec![4u8; 900],
        ];
        let contents: Vec<shoal_pack::Content> = datas
            .iter()
            .map(|d| shoal_pack::hash_stream(&mut &d[..], None).unwrap().into())
            .collect();
        let data_of =
            |sha: &[u8; 32]| datas[contents.iter().position(|c| c.sha256 == *sha).unwrap()].clone();
        let pack = shoal_pack::build_shaped(
            "old",
            &contents,
            &mut |c| Ok(data_of(&c.sha256)),
            shoal_pack::Shape::Files,
        )
        .unwrap();
        for (sha, _) in &pack.files {
            let p = dir.path().join(shoal_pack::content_path(sha));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, data_of(sha)).unwrap();
        }
        let parsed = shoal_pack::parse_torrent(&pack.torrent, None).unwrap();
        assert_eq!(parsed.shape, shoal_pack::Shape::Files);
        let meta = librqbit_core::torrent_metainfo::torrent_from_bytes(&pack.torrent).unwrap();
        let info = meta.info.data.validate().unwrap();
        let files: Vec<(u64, u64, bool)> = info
            .iter_file_details_ext()
            .map(|f| (f.offset, f.details.len, f.details.attrs().padding))
            .collect();
        // Two aligned contents, each followed by a padding file, then the
        // packed ones.
        assert_eq!(files.iter().filter(|f| f.2).count(), 2);
        assert_eq!(files.len(), 6);
        let storage = PackStorage::new(
            dir.path(),
            Arc::new(parsed.layout()),
            files.iter().map(|f| f.0).collect(),
            true,
        );
        let mut k = 0;
        for (id, (_, len, padding)) in files.iter().enumerate() {
            let mut buf = vec![0xAAu8; *len as usize];
            storage.pread_exact(id, 0, &mut buf).unwrap();
            if *padding {
                assert!(buf.iter().all(|&b| b == 0));
                continue;
            }
            assert_eq!(buf, data_of(&parsed.files[k].0), "torrent file {id}");
            k += 1;
        }
        assert_eq!(k, parsed.files.len());
        // The stream read piece by piece from the first file's offset.
        let len = parsed.layout().len();
        assert_eq!(pieces_read(&storage, len), torrent_pieces(&parsed));
    }
}
