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
//! A pack's small contents lie back to back, so one piece spans several of
//! them; when a mirror already holds some of them (hard-linked from its
//! live tree) and downloads the piece for a missing neighbour, librqbit
//! writes the whole piece, also over the held files. Writes that would not
//! change a small file's bytes are skipped, so its mtime (which HTTP
//! clients see through the live tree) stays as it was.

use anyhow::Context;
use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files kept open per pack (least recently used ones are closed).
pub const OPEN_PER_PACK: usize = 8;

#[derive(Clone)]
pub struct PackStorageFactory {
    folder: PathBuf,
    read_only: bool,
}

impl PackStorageFactory {
    pub fn boxed_for(folder: &Path, read_only: bool) -> BoxStorageFactory {
        PackStorageFactory {
            folder: folder.to_path_buf(),
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
        Ok(PackStorage {
            folder: self.folder.clone(),
            paths: Arc::new(
                metadata
                    .file_infos
                    .iter()
                    .map(|f| (self.folder.join(&f.relative_filename), f.attrs.padding))
                    .collect(),
            ),
            small: Arc::new(
                metadata
                    .file_infos
                    .iter()
                    .map(|f| !f.attrs.padding && shoal_pack::is_packed(f.len))
                    .collect(),
            ),
            read_only: self.read_only,
            open: Mutex::new(Vec::new()),
        })
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

pub struct PackStorage {
    folder: PathBuf,
    /// Full path of every torrent file, and whether it is a padding file.
    paths: Arc<Vec<(PathBuf, bool)>>,
    /// Whether each torrent file is a small (packed) content.
    small: Arc<Vec<bool>>,
    read_only: bool,
    /// Recently used open files, most recent last.
    open: Mutex<Vec<(usize, Arc<File>)>>,
}

impl PackStorage {
    fn refuse(&self, file_id: usize) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: the origin never writes into its pack store; its data no longer matches the \
             published pack (was the repository file rewritten in place?)",
            self.paths
                .get(file_id)
                .map(|p| p.0.display().to_string())
                .unwrap_or_default()
        )
    }

    fn path(&self, file_id: usize) -> anyhow::Result<&Path> {
        match self.paths.get(file_id) {
            Some((p, false)) => Ok(p),
            Some((_, true)) => anyhow::bail!("file {file_id} is padding and has no data"),
            None => anyhow::bail!("no such file {file_id}"),
        }
    }

    /// The open file `file_id`, opening it (and closing the least recently
    /// used one) if needed.
    fn file(&self, file_id: usize) -> anyhow::Result<Arc<File>> {
        {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = open.iter().position(|(id, _)| *id == file_id) {
                let e = open.remove(i);
                let f = e.1.clone();
                open.push(e);
                return Ok(f);
            }
        }
        let path = self.path(file_id)?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(!self.read_only)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let f = Arc::new(f);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if !open.iter().any(|(id, _)| *id == file_id) {
            if open.len() >= OPEN_PER_PACK {
                open.remove(0);
            }
            open.push((file_id, f.clone()));
        }
        Ok(f)
    }

    /// Whether writing `buf` at `offset` would leave a small content's
    /// bytes as they are (a piece written again over a held neighbour).
    fn unchanged(&self, file_id: usize, f: &File, offset: u64, buf: &[u8]) -> bool {
        if !self.small.get(file_id).copied().unwrap_or(false) {
            return false;
        }
        let mut have = vec![0u8; buf.len()];
        f.read_exact_at(&mut have, offset).is_ok() && have == buf
    }

    /// Writes `buf` at `offset` unless the bytes are already there.
    fn write_at(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        let f = self.file(file_id)?;
        if !self.unchanged(file_id, &f, offset, buf) {
            f.write_all_at(buf, offset)?;
        }
        Ok(())
    }

    fn forget(&self, file_id: usize) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(id, _)| *id != file_id);
    }
}

impl TorrentStorage for PackStorage {
    /// Creates the folders and (on a mirror) empty files for what is
    /// missing, like librqbit's own storage, but keeps nothing open.
    fn init(
        &mut self,
        _shared: &ManagedTorrentShared,
        _metadata: &TorrentMetadata,
    ) -> anyhow::Result<()> {
        if self.read_only {
            return Ok(());
        }
        let mut made = std::collections::HashSet::new();
        for (p, padding) in self.paths.iter() {
            if *padding || p.exists() {
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
                .open(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
        }
        Ok(())
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        Ok(self.file(file_id)?.read_exact_at(buf, offset)?)
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

    fn remove_file(&self, file_id: usize, filename: &Path) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        self.forget(file_id);
        Ok(std::fs::remove_file(self.folder.join(filename))?)
    }

    fn remove_directory_if_empty(&self, path: &Path) -> anyhow::Result<()> {
        let path = self.folder.join(path);
        if path.is_dir() && std::fs::read_dir(&path)?.next().is_none() {
            std::fs::remove_dir(&path).with_context(|| format!("cannot remove {path:?}"))?;
        }
        Ok(())
    }

    fn ensure_file_length(&self, file_id: usize, length: u64) -> anyhow::Result<()> {
        let path = self.path(file_id)?;
        if std::fs::metadata(path)
            .map(|m| m.len() == length)
            .unwrap_or(false)
        {
            return Ok(());
        }
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        Ok(self.file(file_id)?.set_len(length)?)
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        let open = std::mem::take(&mut *self.open.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(Box::new(PackStorage {
            folder: self.folder.clone(),
            paths: self.paths.clone(),
            small: self.small.clone(),
            read_only: self.read_only,
            open: Mutex::new(open),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    /// A write that would not change a small content's bytes is skipped
    /// (its mtime stays); one that would, or to a large content, happens.
    #[test]
    fn rewriting_a_small_content_with_its_own_bytes_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        let large = dir.path().join("large");
        std::fs::write(&small, b"hello world").unwrap();
        std::fs::write(&large, vec![1u8; 20_000]).unwrap();
        let past = SystemTime::now() - Duration::from_secs(3600);
        for p in [&small, &large] {
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(past)
                .unwrap();
        }
        let storage = PackStorage {
            folder: dir.path().to_path_buf(),
            paths: Arc::new(vec![(small.clone(), false), (large.clone(), false)]),
            small: Arc::new(vec![true, false]),
            read_only: false,
            open: Mutex::new(Vec::new()),
        };
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
        storage.pwrite_all(0, 6, b"world").unwrap();
        assert_eq!(mtime(&small), past, "same bytes were written again");
        storage.pwrite_all(1, 0, &[1u8; 100]).unwrap();
        assert_ne!(mtime(&large), past, "large contents are written as told");
        storage.pwrite_all(0, 6, b"there").unwrap();
        assert_eq!(std::fs::read(&small).unwrap(), b"hello there");
        assert_ne!(mtime(&small), past);
    }
}
