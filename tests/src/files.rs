//! Small file helpers the tool tests share: permission bits, writing a
//! tree of text files, comparing two files, finding a hard link.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A temporary folder named `prefix…` with the sub-folders `dirs` made;
/// deleted when dropped.
pub fn scratch(prefix: &str, dirs: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("create a temp dir");
    for d in dirs {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    dir
}

/// The permission bits of a file (`0o755`).
pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Writes `(relative path, text)` files under `root`, making folders.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
    }
}

/// Asserts two files hold the same bytes.
pub fn assert_same_file(a: &Path, b: &Path) {
    let x = std::fs::read(a).unwrap_or_else(|e| panic!("{}: {e}", a.display()));
    let y = std::fs::read(b).unwrap_or_else(|e| panic!("{}: {e}", b.display()));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

/// Asserts that `file` is hard-linked into `store`: some file under `store`
/// has the same device and inode (the agent linked the live tree to its
/// pack store instead of copying). Returns that file.
pub fn assert_linked_into(file: &Path, store: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let want = std::fs::metadata(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut stack = vec![store.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p);
            } else if m.dev() == want.dev() && m.ino() == want.ino() {
                return p;
            }
        }
    }
    panic!(
        "{} (inode {}, {} link(s)) is not hard-linked into {}: the agent copied it",
        file.display(),
        want.ino(),
        want.nlink(),
        store.display()
    );
}

/// Disk use of the trees under `roots`, as `du` counts it: allocated
/// bytes of every regular file, each inode once (a hard link in two trees
/// costs nothing the second time).
pub fn disk_use(roots: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let mut stack: Vec<std::path::PathBuf> = roots.iter().map(|r| r.to_path_buf()).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

/// Measures and prints what a mirror's live tree and state folder take on
/// disk together, and asserts the payload `files` (in `live`) are stored
/// once: the bytes the two folders share (counted in each alone, once
/// together) are at least the payload's.
pub fn assert_stored_once(name: &str, live: &Path, state: &Path, files: &[&Path]) {
    use std::os::unix::fs::MetadataExt;
    let repo = disk_use(&[live]);
    let store = disk_use(&[state]);
    let both = disk_use(&[live, state]);
    let shared = repo + store - both;
    let payload: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.blocks() * 512).unwrap_or(0))
        .sum();
    println!(
        "{name}: disk use: live tree {repo} B, state {store} B, both {both} B, shared by hard \
         links {shared} B, payload {payload} B"
    );
    assert!(
        shared >= payload,
        "{name}: the live tree and the state share {shared} B, less than the payload's \
         {payload} B: the agent copied instead of linking"
    );
}
