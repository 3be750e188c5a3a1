//! The trees the benchmarks sync, made deterministically from a seed so two
//! runs move the same bytes. Contents are pseudo-random (incompressible),
//! like the compressed packages that fill a real archive.

use anyhow::{Context, Result};
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

/// One file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub size: u64,
    /// Seeds the content; change it to change the bytes.
    pub seed: u64,
}

/// A small, fast PRNG (xorshift64*): good enough for file contents and
/// sizes, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Never zero (xorshift's fixed point); mix the seed a little.
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

fn pool_path(i: usize, name: &str, size_hint: &str) -> String {
    let pkg = format!("{name}{i:05}");
    let first = &pkg[..1];
    format!("pool/main/{first}/{pkg}/{pkg}_1.{size_hint}_amd64.deb")
}

/// The fan-out snapshot of about `total` bytes, shaped like a package
/// archive: 60 % in four large packages, 30 % in medium ones (~1.5 MB),
/// 10 % in many small ones (2–64 kB), and a few index files under
/// `dists/`.
pub fn fanout_mix(total: u64, seed: u64) -> Vec<FileSpec> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut s = seed;
    let mut push = |out: &mut Vec<FileSpec>, path: String, size: u64| {
        s += 1;
        out.push(FileSpec {
            path,
            size,
            seed: s,
        });
    };
    let large = total * 6 / 10;
    for i in 0..4 {
        push(&mut out, pool_path(i, "large", "0"), large / 4);
    }
    let medium_total = total * 3 / 10;
    let mut m = 0;
    let mut i = 0;
    while m < medium_total {
        let size = rng.range(1_000_000, 2_000_000).min(medium_total - m);
        push(&mut out, pool_path(i, "medium", "0"), size);
        m += size;
        i += 1;
    }
    let small_total = total / 10;
    let mut sm = 0;
    let mut i = 0;
    while sm < small_total {
        let size = rng.range(2_000, 64_000).min(small_total - sm);
        push(&mut out, pool_path(i, "small", "0"), size);
        sm += size;
        i += 1;
    }
    for (p, size) in INDEX_FILES {
        push(&mut out, p.to_string(), size);
    }
    out
}

/// Where a fan-out snapshot's file sizes came from.
#[derive(Debug, Clone, PartialEq)]
pub enum SizeSource {
    /// `Size:` fields of Debian `Packages` indices: the files read and how
    /// many sizes they held.
    Debian { files: Vec<String>, sizes: usize },
    /// No index was found (or none could be read): the fixed mix of
    /// [`fanout_mix`]. The reason says why.
    Mix { reason: String },
}

impl SizeSource {
    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            SizeSource::Debian { files, sizes } => format!(
                "package sizes drawn from a real Debian index ({sizes} `Size:` fields in {})",
                files.join(", ")
            ),
            SizeSource::Mix { reason } => {
                format!("the built-in size mix (no Debian index used: {reason})")
            }
        }
    }
}

/// apt's lists folder, where `apt-get update` leaves the `Packages` indices.
pub const APT_LISTS: &str = "/var/lib/apt/lists";

/// The `Size:` fields of a Debian `Packages` index (one per stanza).
/// A `Size:` line whose value is not a number is an error naming its line.
pub fn parse_packages_sizes(text: &str, name: &str) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(v) = line.strip_prefix("Size:") {
            let v = v.trim();
            let n = v.parse::<u64>().with_context(|| {
                format!(
                    "{name} line {}: `Size: {v}` is not a byte count; is this a Debian \
                     Packages index?",
                    i + 1
                )
            })?;
            out.push(n);
        }
    }
    Ok(out)
}

/// The decompressor for an index file name, by its suffix (`None`: plain).
fn decompressor(name: &str) -> Option<Option<&'static str>> {
    if name.ends_with("_Packages") {
        Some(None)
    } else if name.ends_with("_Packages.lz4") {
        Some(Some("lz4"))
    } else if name.ends_with("_Packages.gz") {
        Some(Some("gzip"))
    } else if name.ends_with("_Packages.xz") {
        Some(Some("xz"))
    } else if name.ends_with("_Packages.zst") {
        Some(Some("zstd"))
    } else {
        None
    }
}

/// Reads one index, decompressing it with the real tool (`lz4 -dc`, ...).
fn read_index(path: &Path, tool: Option<&str>) -> Result<String> {
    let bytes = match tool {
        None => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        Some(t) => {
            let out = std::process::Command::new(t)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| {
                    format!("running `{t} -dc {}`: is {t} installed?", path.display())
                })?;
            if !out.status.success() {
                anyhow::bail!(
                    "`{t} -dc {}` failed: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            out.stdout
        }
    };
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Every package size in the `*_Packages` indices under `dir` (plain,
/// `.lz4`, `.gz`, `.xz`, `.zst`), in file-name order. An index that cannot
/// be read is skipped with a warning; no index at all gives an empty list
/// and the reason.
pub fn debian_sizes(dir: &Path) -> (Vec<u64>, Vec<String>, String) {
    let mut names: Vec<(String, Option<&'static str>)> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                decompressor(&n).map(|t| (n, t))
            })
            .collect(),
        Err(e) => return (Vec::new(), Vec::new(), format!("{}: {e}", dir.display())),
    };
    names.sort();
    let mut sizes = Vec::new();
    let mut used = Vec::new();
    let mut why = format!(
        "no *_Packages index in {} (run apt-get update)",
        dir.display()
    );
    for (n, tool) in names {
        let p = dir.join(&n);
        match read_index(&p, tool).and_then(|t| parse_packages_sizes(&t, &p.display().to_string()))
        {
            Ok(v) if !v.is_empty() => {
                sizes.extend(v);
                used.push(n);
            }
            Ok(_) => why = format!("{} holds no Size: field", p.display()),
            Err(e) => {
                eprintln!("shoal-bench: warning: skipping {}: {e:#}", p.display());
                why = format!("{e:#}");
            }
        }
    }
    (sizes, used, why)
}

/// Files drawn uniformly (seeded) from `sizes` until their total reaches
/// `total`; the last draw may overshoot by at most one package. Sizes are
/// used as they are (no cap: a draw may hold a very big package). Zero
/// sizes are skipped. Paths look like a pool.
pub fn draw_sizes(sizes: &[u64], total: u64, seed: u64) -> Vec<FileSpec> {
    let pool: Vec<u64> = sizes.iter().copied().filter(|s| *s > 0).collect();
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut sum = 0;
    while sum < total && !pool.is_empty() {
        let size = pool[(rng.next_u64() % pool.len() as u64) as usize];
        let i = out.len();
        out.push(FileSpec {
            path: pool_path(i, "deb", "0"),
            size,
            seed: seed.wrapping_add(i as u64 + 1),
        });
        sum += size;
    }
    out
}

/// The fan-out snapshot: package sizes drawn from the Debian indices in
/// `lists` when there are any, else [`fanout_mix`]; plus the index files
/// under `dists/`. Says which was used.
pub fn fanout_snapshot(total: u64, seed: u64, lists: &Path) -> (Vec<FileSpec>, SizeSource) {
    let (sizes, files, why) = debian_sizes(lists);
    if sizes.is_empty() {
        return (fanout_mix(total, seed), SizeSource::Mix { reason: why });
    }
    let mut out = draw_sizes(&sizes, total, seed);
    let first = seed.wrapping_add(out.len() as u64 + 1);
    for (k, (p, size)) in INDEX_FILES.into_iter().enumerate() {
        out.push(FileSpec {
            path: p.to_string(),
            size,
            seed: first.wrapping_add(k as u64),
        });
    }
    let n = sizes.len();
    (out, SizeSource::Debian { files, sizes: n })
}

/// Quantiles (0 = smallest, 1 = largest) of the file sizes, nearest rank.
pub fn size_quantiles(specs: &[FileSpec], qs: &[f64]) -> Vec<u64> {
    let mut v: Vec<u64> = specs.iter().map(|f| f.size).collect();
    v.sort_unstable();
    qs.iter()
        .map(|q| {
            if v.is_empty() {
                0
            } else {
                v[((q.clamp(0.0, 1.0) * (v.len() - 1) as f64).round()) as usize]
            }
        })
        .collect()
}

const INDEX_FILES: [(&str, u64); 5] = [
    ("dists/stable/main/binary-amd64/Packages", 200_000),
    ("dists/stable/main/binary-amd64/Packages.xz", 40_000),
    ("dists/stable/main/i18n/Translation-en", 100_000),
    ("dists/stable/Release", 2_000),
    ("dists/stable/InRelease", 2_800),
];

/// A tree of `n` tiny files (64 B – 2 kB), about a hundred per folder:
/// what a big tree costs per file, not per byte.
pub fn tiny_tree(n: usize, seed: u64) -> Vec<FileSpec> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| FileSpec {
            path: format!("pool/main/d{:04}/f{i:07}.deb", i / 100),
            size: rng.range(64, 2048),
            seed: seed.wrapping_add(i as u64 + 1),
        })
        .collect()
}

/// The hashing tree of about `total` bytes: a third each in 64 MB,
/// ~4 MB and ~256 kB packages, plus index files.
pub fn hash_tree(total: u64, seed: u64) -> Vec<FileSpec> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut s = seed;
    for (name, lo, hi) in [
        ("big", 64_000_000u64, 64_000_000u64),
        ("mid", 3_000_000, 5_000_000),
        ("pkg", 128_000, 384_000),
    ] {
        let part = total / 3;
        let mut got = 0;
        let mut i = 0;
        while got < part {
            let size = rng.range(lo, hi).min(part - got);
            s += 1;
            out.push(FileSpec {
                path: pool_path(i, name, "0"),
                size,
                seed: s,
            });
            got += size;
            i += 1;
        }
    }
    out.push(FileSpec {
        path: "dists/stable/main/binary-amd64/Packages".into(),
        size: 500_000,
        seed: s + 1,
    });
    out
}

/// Total bytes of a tree.
pub fn total_bytes(specs: &[FileSpec]) -> u64 {
    specs.iter().map(|f| f.size).sum()
}

/// Fills `buf` with the content of seed `seed`, starting at byte `offset`
/// of the file (a multiple of 8).
fn fill(buf: &mut [u8], seed: u64, offset: u64) {
    let mut rng = Rng::new(seed ^ offset.rotate_left(17));
    for chunk in buf.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The bytes of a file (for tests and small files).
pub fn content(spec: &FileSpec) -> Vec<u8> {
    let mut v = vec![0u8; spec.size as usize];
    for (k, chunk) in v.chunks_mut(BLOCK).enumerate() {
        fill(chunk, spec.seed, (k * BLOCK) as u64);
    }
    v
}

const BLOCK: usize = 1 << 20;

/// Writes one file. An existing file is replaced the way archive software
/// does it: the new content goes to a temporary name, which is renamed
/// over the old one, so the old inode (which an origin may have hard-linked
/// into its pack store) never changes.
pub fn write_file(root: &Path, spec: &FileSpec) -> Result<()> {
    let p = root.join(&spec.path);
    let dir = p.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The agent skips `.*.shoal-tmp.*` names, should it scan meanwhile.
    let tmp = dir.join(format!(".{name}.shoal-tmp.bench"));
    write_new(&tmp, spec)?;
    std::fs::rename(&tmp, &p).with_context(|| format!("renaming over {}", p.display()))?;
    Ok(())
}

fn write_new(p: &Path, spec: &FileSpec) -> Result<()> {
    let mut f = std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
    let mut buf = vec![0u8; BLOCK.min(spec.size as usize)];
    let mut off = 0u64;
    while off < spec.size {
        let n = ((spec.size - off) as usize).min(BLOCK);
        fill(&mut buf[..n], spec.seed, off);
        f.write_all(&buf[..n])
            .with_context(|| format!("writing {}", p.display()))?;
        off += n as u64;
    }
    Ok(())
}

/// Writes a whole tree under `root`, on `threads` threads.
pub fn write_tree(root: &Path, specs: &[FileSpec], threads: usize) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let err = std::sync::Mutex::new(None);
    // Folders first, once each, so the threads do not race to create them.
    let dirs: HashSet<&str> = specs
        .iter()
        .filter_map(|f| f.path.rsplit_once('/').map(|(d, _)| d))
        .collect();
    for d in dirs {
        std::fs::create_dir_all(root.join(d))
            .with_context(|| format!("creating {}", root.join(d).display()))?;
    }
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= specs.len() || err.lock().unwrap().is_some() {
                    break;
                }
                if let Err(e) = write_file(root, &specs[i]) {
                    *err.lock().unwrap() = Some(e);
                }
            });
        }
    });
    match err.into_inner().unwrap() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// How many files a change of `fraction` of a tree of `len` files
/// rewrites: `ceil(len × fraction)`, at least one.
pub fn change_count(len: usize, fraction: f64) -> usize {
    ((len as f64 * fraction).ceil() as usize).max(1)
}

/// Picks `count` files (at most `len`) spread evenly over the tree and
/// gives them new contents of the same size (round `round` picks other
/// files than earlier rounds where it can). Returns the indices changed.
pub fn pick_changes(len: usize, count: usize, round: usize) -> Vec<usize> {
    let k = count.clamp(1, len.max(1));
    if len == 0 {
        return Vec::new();
    }
    let step = len / k;
    let offset = if step > 1 { round % step } else { 0 };
    (0..k).map(|j| (j * step + offset) % len).collect()
}

/// Applies a change round to the tree on disk: new content for the picked
/// files. Returns how many files and bytes changed.
pub fn apply_changes(
    root: &Path,
    specs: &mut [FileSpec],
    count: usize,
    round: usize,
) -> Result<Changes> {
    let idx = pick_changes(specs.len(), count, round);
    let mut c = Changes::default();
    for &i in &idx {
        specs[i].seed = specs[i].seed.wrapping_add(0x1000_0000 * (round as u64 + 1));
        write_file(root, &specs[i])?;
        c.bytes += specs[i].size;
        c.paths.push(specs[i].path.clone());
    }
    Ok(c)
}

/// What [`apply_changes`] rewrote: the paths (relative to the tree, what
/// an archive's hook would list) and their bytes.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub paths: Vec<String>,
    pub bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique_paths(v: &[FileSpec]) -> bool {
        let s: HashSet<&str> = v.iter().map(|f| f.path.as_str()).collect();
        s.len() == v.len()
    }

    #[test]
    fn fanout_mix_has_the_size_and_shape_asked_for() {
        let total = 300_000_000;
        let v = fanout_mix(total, 7);
        let sum = total_bytes(&v);
        // The pool parts add to the total (to rounding), the indices on top.
        assert!(sum >= total - 4 && sum <= total + 400_000, "{sum}");
        assert!(unique_paths(&v));
        let large = v.iter().filter(|f| f.size >= 40_000_000).count();
        let small = v.iter().filter(|f| f.size <= 64_000).count();
        assert_eq!(large, 4);
        assert!(small > 500, "{small} small files");
        assert_eq!(v, fanout_mix(total, 7), "deterministic");
    }

    #[test]
    fn tiny_and_hash_trees() {
        let t = tiny_tree(1000, 1);
        assert_eq!(t.len(), 1000);
        assert!(unique_paths(&t));
        assert!(t.iter().all(|f| (64..=2048).contains(&f.size)));
        let h = hash_tree(1_000_000_000, 2);
        let sum = total_bytes(&h);
        assert!((999_000_000..=1_001_000_000).contains(&sum), "{sum}");
        assert!(unique_paths(&h));
    }

    #[test]
    fn contents_are_deterministic_and_differ_by_seed() {
        let a = FileSpec {
            path: "a".into(),
            size: 3 * BLOCK as u64 + 5,
            seed: 1,
        };
        let b = FileSpec {
            seed: 2,
            ..a.clone()
        };
        let ca = content(&a);
        assert_eq!(ca.len(), a.size as usize);
        assert_eq!(ca, content(&a));
        assert_ne!(ca, content(&b));
        // Blocks of one file differ from each other (no repeating pattern
        // rsync or a compressor could exploit).
        assert_ne!(ca[..64], ca[BLOCK..BLOCK + 64]);
    }

    #[test]
    fn writes_what_content_says() {
        let d = tempfile::tempdir().unwrap();
        let specs = vec![
            FileSpec {
                path: "x/y/one".into(),
                size: BLOCK as u64 + 3,
                seed: 9,
            },
            FileSpec {
                path: "x/two".into(),
                size: 0,
                seed: 1,
            },
        ];
        write_tree(d.path(), &specs, 2).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("x/y/one")).unwrap(),
            content(&specs[0])
        );
        assert_eq!(std::fs::read(d.path().join("x/two")).unwrap().len(), 0);
    }

    #[test]
    fn changes_are_spread_and_counted() {
        let idx = pick_changes(200_000, change_count(200_000, 0.001), 0);
        assert_eq!(idx.len(), 200);
        let s: HashSet<usize> = idx.iter().copied().collect();
        assert_eq!(s.len(), 200);
        assert!(idx.iter().all(|&i| i < 200_000));
        // Another round picks other files.
        let idx2 = pick_changes(200_000, 200, 1);
        assert!(idx2.iter().all(|i| !s.contains(i)));
        assert_eq!(change_count(10, 0.001), 1);
        assert_eq!(pick_changes(10, 1, 0).len(), 1);
        // A 1M tree's 0.1 % on a 100k tree: one file in a hundred.
        let same = pick_changes(100_000, change_count(1_000_000, 0.001), 0);
        assert_eq!(same.len(), 1_000);
        assert!(same.windows(2).all(|w| w[1] - w[0] == 100));
        assert_eq!(pick_changes(10, 50, 0).len(), 10);
        assert!(pick_changes(0, 5, 0).is_empty());
    }

    #[test]
    fn replacing_a_file_keeps_the_old_inode_intact() {
        let d = tempfile::tempdir().unwrap();
        let mut spec = FileSpec {
            path: "pool/a.deb".into(),
            size: 100,
            seed: 1,
        };
        write_file(d.path(), &spec).unwrap();
        let link = d.path().join("link");
        std::fs::hard_link(d.path().join("pool/a.deb"), &link).unwrap();
        let old = content(&spec);
        spec.seed = 2;
        write_file(d.path(), &spec).unwrap();
        assert_eq!(std::fs::read(&link).unwrap(), old);
        assert_eq!(
            std::fs::read(d.path().join("pool/a.deb")).unwrap(),
            content(&spec)
        );
        let names: Vec<_> = std::fs::read_dir(d.path().join("pool")).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    #[test]
    fn applying_changes_rewrites_files() {
        let d = tempfile::tempdir().unwrap();
        let mut specs = tiny_tree(50, 3);
        write_tree(d.path(), &specs, 1).unwrap();
        let before = content(&specs[0]);
        let c = apply_changes(d.path(), &mut specs, change_count(50, 0.1), 0).unwrap();
        let (n, bytes) = (c.paths.len(), c.bytes);
        assert_eq!(n, 5);
        assert!(bytes > 0);
        let after = std::fs::read(d.path().join(&specs[0].path)).unwrap();
        assert_ne!(before, after);
        assert_eq!(after, content(&specs[0]));
    }

    const FIXTURE: &str = "Package: a\nVersion: 1\nSize: 1234\n\nPackage: b\nSize: 99\nFilename: pool/b.deb\n\nPackage: c\nInstalled-Size: 5\nSize: 7000000\n";

    #[test]
    fn packages_sizes_are_parsed_and_bad_ones_named() {
        assert_eq!(
            parse_packages_sizes(FIXTURE, "fx").unwrap(),
            vec![1234, 99, 7_000_000]
        );
        let e = parse_packages_sizes("Package: a\nSize: lots\n", "idx")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idx line 2"), "{e}");
    }

    #[test]
    fn indices_are_read_plain_and_compressed_and_drawn_deterministically() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("x_main_binary-amd64_Packages"), FIXTURE).unwrap();
        std::fs::write(d.path().join("x_InRelease"), "Size: 5\n").unwrap();
        let plain = d.path().join("y_Packages.src");
        std::fs::write(&plain, FIXTURE).unwrap();
        let st = std::process::Command::new("gzip")
            .arg("-c")
            .arg(&plain)
            .output()
            .unwrap();
        assert!(st.status.success());
        std::fs::remove_file(&plain).unwrap();
        std::fs::write(d.path().join("y_main_binary-amd64_Packages.gz"), st.stdout).unwrap();
        let (sizes, files, _) = debian_sizes(d.path());
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(sizes.len(), 6);
        let (v, src) = fanout_snapshot(20_000_000, 3, d.path());
        assert!(
            matches!(src, SizeSource::Debian { sizes: 6, .. }),
            "{src:?}"
        );
        let pool: Vec<&FileSpec> = v.iter().filter(|f| f.path.starts_with("pool/")).collect();
        let sum: u64 = pool.iter().map(|f| f.size).sum();
        assert!((20_000_000..20_000_000 + 7_000_000).contains(&sum), "{sum}");
        assert!(pool.iter().all(|f| [1234, 99, 7_000_000].contains(&f.size)));
        assert!(unique_paths(&v));
        assert_eq!(v, fanout_snapshot(20_000_000, 3, d.path()).0);
        let q = size_quantiles(&v, &[0.0, 1.0]);
        assert_eq!(q[1], 7_000_000);
    }

    #[test]
    fn no_index_falls_back_to_the_mix_and_says_why() {
        let d = tempfile::tempdir().unwrap();
        let (v, src) = fanout_snapshot(50_000_000, 7, d.path());
        assert_eq!(v, fanout_mix(50_000_000, 7));
        match src {
            SizeSource::Mix { reason } => assert!(reason.contains("apt-get update"), "{reason}"),
            other => panic!("{other:?}"),
        }
        let (_, src) = fanout_snapshot(1, 7, &d.path().join("missing"));
        assert!(matches!(src, SizeSource::Mix { .. }));
    }
}
