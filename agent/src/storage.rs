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
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        Ok(self.file(file_id)?.write_all_at(buf, offset)?)
    }

    fn pwrite_all_vectored(
        &self,
        file_id: usize,
        offset: u64,
        bufs: [std::io::IoSlice<'_>; 2],
    ) -> anyhow::Result<usize> {
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        let f = self.file(file_id)?;
        f.write_all_at(&bufs[0], offset)?;
        f.write_all_at(&bufs[1], offset + bufs[0].len() as u64)?;
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
            read_only: self.read_only,
            open: Mutex::new(open),
        }))
    }
}
