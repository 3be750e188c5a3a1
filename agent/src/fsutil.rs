//! Filesystem primitives that keep writes inside their root: atomic
//! replace (temp name + rename in the same directory), directory creation
//! that refuses to follow symlinks, and copy-or-link.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Writes `bytes` to `path` atomically: a temp file in the same directory,
/// fsync, rename over the target, fsync the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = temp_name(path);
    let res = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(explain_io(e, path));
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temp file renamed over it, without
/// flushing: readers see the old or the new file whole, and the caller
/// makes it durable with one [`sync_fs`] for everything it wrote.
pub fn replace_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("path has no parent")?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = temp_name(path);
    fs::write(&tmp, bytes)
        .and_then(|_| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            explain_io(e, path)
        })
}

/// Flushes everything written to the file system that holds `path` (data
/// and metadata: file contents, renames, links), with syncfs(2): one call
/// instead of an fsync per file and per folder.
pub fn sync_fs(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(path).map_err(|e| explain_io(e, path))?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(
            explain_io(std::io::Error::last_os_error(), path).context(format!(
                "cannot flush the file system of {}",
                path.display()
            )),
        );
    }
    Ok(())
}

/// A temp name next to `path` that Shoal recognizes as its own.
pub fn temp_name(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_else(|| OsStr::new("x"));
    let mut t = std::ffi::OsString::from(".");
    t.push(name);
    t.push(format!(".shoal-tmp.{}", std::process::id()));
    path.with_file_name(t)
}

/// True if a file name is one of Shoal's temp names (left by a crash).
pub fn is_temp_name(name: &OsStr) -> bool {
    name.to_str()
        .map(|s| s.starts_with('.') && s.contains(".shoal-tmp."))
        .unwrap_or(false)
}

/// Turns an I/O error into one that says which file and what to do.
pub fn explain_io(e: std::io::Error, path: &Path) -> anyhow::Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "the disk is full: free space (or grow the volume); the live tree was left as it was"
        }
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "permission denied: run the agent as a user that may write there, or fix the ownership"
        }
        Some(libc::ENOENT) => "it does not exist: create it or fix the configured path",
        Some(libc::ENOTDIR) => "a part of this path is a file, not a directory: fix the path",
        _ => "check the path and the disk",
    };
    anyhow::anyhow!("{}: {e}; {hint}", path.display())
}

/// Joins a checked manifest path to `root`, creating parent directories one
/// component at a time without following symlinks. A parent that exists as
/// a file or symlink is an error unless `obsolete` says it may be removed
/// (it is not part of the new generation).
pub fn prepare_parent(root: &Path, rel: &str, obsolete: &dyn Fn(&str) -> bool) -> Result<PathBuf> {
    let rel_path = Path::new(rel);
    if rel_path
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        bail!("refusing unsafe path '{rel}'");
    }
    let mut cur = root.to_path_buf();
    let mut rel_cur = String::new();
    let comps: Vec<_> = rel_path.components().collect();
    for c in &comps[..comps.len().saturating_sub(1)] {
        let Component::Normal(name) = c else {
            unreachable!()
        };
        cur.push(name);
        if !rel_cur.is_empty() {
            rel_cur.push('/');
        }
        rel_cur.push_str(&name.to_string_lossy());
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                if obsolete(&rel_cur) {
                    fs::remove_file(&cur).map_err(|e| explain_io(e, &cur))?;
                    fs::create_dir(&cur).map_err(|e| explain_io(e, &cur))?;
                } else {
                    bail!(
                        "{}: is a file or symlink where the new generation needs a directory",
                        cur.display()
                    );
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir(&cur).map_err(|e| explain_io(e, &cur))?;
            }
            Err(e) => return Err(explain_io(e, &cur)),
        }
    }
    Ok(root.join(rel_path))
}

/// Sets permission bits and mtime.
pub fn set_meta(path: &Path, mode: u32, mtime_ns: i64) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| explain_io(e, path))?;
    let t = system_time(mtime_ns);
    let f = fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| fs::File::open(path))
        .map_err(|e| explain_io(e, path))?;
    f.set_modified(t).map_err(|e| explain_io(e, path))?;
    Ok(())
}

/// Nanoseconds since the epoch → SystemTime.
pub fn system_time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// mtime of `m` in nanoseconds since the epoch.
pub fn mtime_ns(m: &fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// Places the content at `src` (a pack-store file) at `dst` through a temp
/// name and rename: a hard link when the inode's metadata can be shared,
/// otherwise (or across filesystems) a copy. Returns true if it linked.
pub fn place_file(src: &Path, dst: &Path, mode: u32, mtime_ns: i64) -> Result<bool> {
    let sm = fs::metadata(src).map_err(|e| explain_io(e, src))?;
    let wanted =
        |m: &fs::Metadata| m.mode() & 0o7777 == mode & 0o7777 && self::mtime_ns(m) == mtime_ns;
    // Already in place: `dst` is a link of the same inode, as wanted.
    // (rename(2) between two links of one inode does nothing, so going
    // through a temp name would leave the temp name behind.)
    if let Ok(dm) = fs::symlink_metadata(dst) {
        if dm.is_file() && dm.ino() == sm.ino() && dm.dev() == sm.dev() && wanted(&dm) {
            return Ok(true);
        }
    }
    let tmp = temp_name(dst);
    let _ = fs::remove_file(&tmp);
    let shareable = sm.nlink() == 1 || wanted(&sm);
    let mut linked = false;
    if shareable {
        match fs::hard_link(src, &tmp) {
            Ok(()) => linked = true,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EXDEV) | Some(libc::EMLINK) | Some(libc::EPERM)
                ) => {}
            Err(e) => return Err(explain_io(e, dst)),
        }
    }
    if !linked {
        if let Err(e) = fs::copy(src, &tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(explain_io(e, dst));
        }
    }
    let r = set_meta(&tmp, mode, mtime_ns)
        .and_then(|_| fs::rename(&tmp, dst).map_err(|e| explain_io(e, dst)));
    // After a successful rename the temp name is gone, unless `dst` was
    // already a link of the same inode: then it must go now.
    let _ = fs::remove_file(&tmp);
    r.map(|_| linked)
}

/// Removes Shoal's temp files (left by a crash) from the tree under `root`,
/// without following symlinks. Returns how many it removed.
pub fn sweep_temp(root: &Path) -> Result<usize> {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(explain_io(e, &dir)),
        };
        for e in rd {
            let e = e.map_err(|e| explain_io(e, &dir))?;
            let ft = e.file_type().map_err(|x| explain_io(x, &e.path()))?;
            if ft.is_dir() {
                stack.push(e.path());
            } else if is_temp_name(&e.file_name()) {
                fs::remove_file(e.path()).map_err(|x| explain_io(x, &e.path()))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Writes an empty file at `dst` through a temp name and rename.
pub fn place_empty(dst: &Path, mode: u32, mtime_ns: i64) -> Result<()> {
    let tmp = temp_name(dst);
    let _ = fs::remove_file(&tmp);
    fs::File::create(&tmp).map_err(|e| explain_io(e, dst))?;
    set_meta(&tmp, mode, mtime_ns)?;
    fs::rename(&tmp, dst).map_err(|e| explain_io(e, dst))
}

/// Places a symlink at `dst` through a temp name and rename.
pub fn place_symlink(target: &str, dst: &Path) -> Result<()> {
    let tmp = temp_name(dst);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| explain_io(e, dst))?;
    fs::rename(&tmp, dst).map_err(|e| explain_io(e, dst))
}

/// Removes a file or symlink and then its parents while they are empty,
/// stopping at `root`.
pub fn remove_and_prune(root: &Path, rel: &str) -> Result<()> {
    let p = root.join(rel);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => fs::remove_file(&p).map_err(|e| explain_io(e, &p))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(explain_io(e, &p)),
    }
    let mut dir = p.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) {
            break;
        }
        if fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

/// Checks that `dir` exists, is a directory and is writable (by creating
/// and removing a probe file), with an error that says what to do.
pub fn check_writable_dir(dir: &Path, what: &str) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => bail!("{what} {} is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Create the last level only: a mistyped path (a missing
            // parent) is an error, not a new tree somewhere unexpected.
            let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(p) = parent {
                if !p.is_dir() {
                    bail!(
                        "{what} {} does not exist, nor does its parent folder {}: check the path \
                         for a typo, or create it first",
                        dir.display(),
                        p.display()
                    );
                }
            }
            fs::create_dir(dir).with_context(|| {
                format!(
                    "{what} {} does not exist and cannot be created",
                    dir.display()
                )
            })?;
        }
        Err(e) => return Err(anyhow::anyhow!("{what} {}", explain_io(e, dir))),
    }
    let probe = dir.join(format!(".shoal-probe.{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| {
        anyhow::anyhow!(
            "{what} {} is not writable ({e}); fix its permissions or run the agent as its owner",
            dir.display()
        )
    })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Bytes of disk the files under `dir` occupy (0 if it does not exist).
pub fn du(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => n += (m.blocks() * 512).min(m.len()),
                Err(_) => {}
            }
        }
    }
    n
}

/// Bytes free for an unprivileged writer on the filesystem holding `dir`.
pub fn free_bytes(dir: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .with_context(|| format!("{}: path holds a NUL byte", dir.display()))?;
    // SAFETY: statvfs fills the zeroed struct we pass; `c` outlives the call.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut v) } != 0 {
        return Err(explain_io(std::io::Error::last_os_error(), dir));
    }
    Ok(v.f_bavail as u64 * v.f_frsize as u64)
}

/// Now in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepare_parent_refuses_symlinked_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("repo");
        let outside = t.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let e = prepare_parent(&root, "evil/x", &|_| false).unwrap_err();
        assert!(e.to_string().contains("needs a directory"), "{e}");
        assert!(fs::read_dir(&outside).unwrap().next().is_none());
        // An obsolete file in the way is replaced by a directory.
        fs::write(root.join("old"), b"x").unwrap();
        let p = prepare_parent(&root, "old/new", &|p| p == "old").unwrap();
        assert_eq!(p, root.join("old/new"));
        assert!(root.join("old").is_dir());
    }

    #[test]
    fn place_file_links_or_copies_and_prunes() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::write(&src, b"hello").unwrap();
        let dst = t.path().join("dst");
        assert!(place_file(&src, &dst, 0o644, 1_000_000_000).unwrap());
        assert_eq!(fs::read(&dst).unwrap(), b"hello");
        // Same inode, different metadata wanted: must copy.
        let dst2 = t.path().join("dst2");
        assert!(!place_file(&src, &dst2, 0o600, 5_000_000_000).unwrap());
        assert_eq!(fs::metadata(&dst2).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dst).unwrap().mode() & 0o777, 0o644);
        // Regression: placing a file over a link of the same inode (a
        // content re-placed after compaction, a path that comes back)
        // used to leave `.dst.shoal-tmp.<pid>` behind, since rename(2)
        // between two links of one inode does nothing.
        let dst3 = t.path().join("dst3");
        fs::hard_link(&src, &dst3).unwrap();
        assert!(place_file(&src, &dst3, 0o644, 1_000_000_000).unwrap());
        assert!(place_file(&src, &dst3, 0o644, 1_000_000_000).unwrap());
        let names: Vec<String> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n.contains(".shoal-tmp.")),
            "{names:?}"
        );
        // Same inode with other metadata wanted: changed in place, no temp left.
        fs::set_permissions(&dst3, fs::Permissions::from_mode(0o600)).unwrap();
        place_file(&src, &dst3, 0o644, 1_000_000_000).unwrap();
        assert_eq!(fs::metadata(&dst3).unwrap().mode() & 0o777, 0o644);
        assert!(!temp_name(&dst3).exists());
        // A crash's leftovers are swept.
        fs::create_dir_all(t.path().join("s/d")).unwrap();
        fs::write(temp_name(&t.path().join("s/d/x")), b"").unwrap();
        fs::write(t.path().join("s/d/.x.shoal-tmp.1"), b"").unwrap();
        fs::write(t.path().join("s/d/keep"), b"").unwrap();
        assert_eq!(sweep_temp(&t.path().join("s")).unwrap(), 2);
        assert!(t.path().join("s/d/keep").exists());
        fs::create_dir_all(t.path().join("r/a/b")).unwrap();
        fs::write(t.path().join("r/a/b/f"), b"").unwrap();
        remove_and_prune(&t.path().join("r"), "a/b/f").unwrap();
        assert!(!t.path().join("r/a").exists());
        assert!(t.path().join("r").exists());
    }
}
