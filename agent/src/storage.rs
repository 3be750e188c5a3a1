//! librqbit storage for pack folders that never touches complete files.
//!
//! librqbit's filesystem storage calls `set_len` on every file each time a
//! torrent is added, which bumps the mtime even when the length is already
//! right. Pack-store files are hard links of live-tree files (mirror) or of
//! repository files (origin), so that would change what HTTP clients see
//! and make the origin believe its archive changed. This wrapper skips
//! `set_len` when the length is already right, and on the origin refuses
//! every write: the origin seeds, it never downloads into its archive.

use librqbit::storage::filesystem::FilesystemStorageFactory;
use librqbit::storage::{BoxStorageFactory, StorageFactory, StorageFactoryExt, TorrentStorage};
use librqbit::{ManagedTorrentShared, TorrentMetadata};
use std::path::{Path, PathBuf};

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
        shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<PackStorage> {
        Ok(PackStorage {
            inner: Box::new(FilesystemStorageFactory::default().create(shared, metadata)?),
            paths: metadata
                .file_infos
                .iter()
                .map(|f| self.folder.join(&f.relative_filename))
                .collect(),
            read_only: self.read_only,
        })
    }

    fn clone_box(&self) -> BoxStorageFactory {
        self.clone().boxed()
    }
}

pub struct PackStorage {
    inner: Box<dyn TorrentStorage>,
    paths: Vec<PathBuf>,
    read_only: bool,
}

impl PackStorage {
    fn refuse(&self, file_id: usize) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: the origin never writes into its pack store; its data no longer matches the \
             published pack (was the repository file rewritten in place?)",
            self.paths
                .get(file_id)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }
}

impl TorrentStorage for PackStorage {
    fn init(
        &mut self,
        shared: &ManagedTorrentShared,
        metadata: &TorrentMetadata,
    ) -> anyhow::Result<()> {
        self.inner.init(shared, metadata)
    }

    fn pread_exact(&self, file_id: usize, offset: u64, buf: &mut [u8]) -> anyhow::Result<()> {
        self.inner.pread_exact(file_id, offset, buf)
    }

    fn pwrite_all(&self, file_id: usize, offset: u64, buf: &[u8]) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        self.inner.pwrite_all(file_id, offset, buf)
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
        self.inner.pwrite_all_vectored(file_id, offset, bufs)
    }

    fn remove_file(&self, file_id: usize, filename: &Path) -> anyhow::Result<()> {
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        self.inner.remove_file(file_id, filename)
    }

    fn remove_directory_if_empty(&self, path: &Path) -> anyhow::Result<()> {
        self.inner.remove_directory_if_empty(path)
    }

    fn ensure_file_length(&self, file_id: usize, length: u64) -> anyhow::Result<()> {
        if let Some(p) = self.paths.get(file_id) {
            if std::fs::metadata(p)
                .map(|m| m.len() == length)
                .unwrap_or(false)
            {
                return Ok(());
            }
        }
        if self.read_only {
            return Err(self.refuse(file_id));
        }
        self.inner.ensure_file_length(file_id, length)
    }

    fn take(&self) -> anyhow::Result<Box<dyn TorrentStorage>> {
        Ok(Box::new(PackStorage {
            inner: self.inner.take()?,
            paths: self.paths.clone(),
            read_only: self.read_only,
        }))
    }

    fn on_piece_completed(
        &self,
        piece: librqbit_core::lengths::ValidPieceIndex,
    ) -> anyhow::Result<()> {
        self.inner.on_piece_completed(piece)
    }
}
