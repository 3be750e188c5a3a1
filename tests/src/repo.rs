//! Real package repositories for tests: Debian archives made with
//! `dpkg-deb` and `reprepro`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds a tiny real .deb `name_version_all.deb` in `dir` with `payload`
/// bytes of data.
pub fn build_deb(dir: &Path, name: &str, version: &str, payload: usize) -> PathBuf {
    let root = dir.join(format!("build-{name}-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join(format!("usr/share/{name}"))).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: Shoal Tests <tests@example.org>\n\
             Section: misc\nPriority: optional\nDescription: Shoal test package {name}\n"
        ),
    )
    .unwrap();
    // Incompressible payload, so package sizes are what the test asks for.
    let mut data = Vec::with_capacity(payload);
    let mut x: u64 = name
        .bytes()
        .fold(0x9e3779b97f4a7c15u64, |a, b| a.rotate_left(5) ^ b as u64)
        ^ version.len() as u64;
    while data.len() < payload {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(payload);
    std::fs::write(root.join(format!("usr/share/{name}/data")), data).unwrap();
    let deb = dir.join(format!("{name}_{version}_all.deb"));
    run(Command::new("dpkg-deb")
        .args(["--build", "-Zgzip", "--root-owner-group"])
        .arg(&root)
        .arg(&deb));
    std::fs::remove_dir_all(&root).unwrap();
    deb
}

/// A reprepro-managed Debian archive. reprepro keeps `conf/` and `db/` in
/// `base`; the public tree (`dists/`, `pool/`) is `public`.
pub struct Reprepro {
    pub base: PathBuf,
    pub public: PathBuf,
    pub debs: PathBuf,
}

impl Reprepro {
    /// Creates an archive for suite `stable`, component `main`, in `base`.
    pub fn new(base: &Path, debs: &Path) -> Reprepro {
        std::fs::create_dir_all(base.join("conf")).unwrap();
        std::fs::create_dir_all(debs).unwrap();
        std::fs::write(
            base.join("conf/distributions"),
            "Origin: Shoal Tests\nLabel: Shoal Tests\nCodename: stable\nSuite: stable\n\
             Architectures: amd64 arm64\nComponents: main\nDescription: Shoal test archive\n",
        )
        .unwrap();
        std::fs::write(base.join("conf/options"), "verbose\n").unwrap();
        Reprepro {
            base: base.to_path_buf(),
            public: base.join("public"),
            debs: debs.to_path_buf(),
        }
    }

    /// Builds and adds a package.
    pub fn add(&self, name: &str, version: &str, payload: usize) {
        let deb = build_deb(&self.debs, name, version, payload);
        run(Command::new("reprepro")
            .arg("-b")
            .arg(&self.base)
            .arg("--outdir")
            .arg(&self.public)
            .args(["includedeb", "stable"])
            .arg(&deb));
    }

    /// Removes a package (reprepro deletes its pool file and rewrites indices).
    pub fn remove(&self, name: &str) {
        run(Command::new("reprepro")
            .arg("-b")
            .arg(&self.base)
            .arg("--outdir")
            .arg(&self.public)
            .args(["remove", "stable", name]));
    }

    /// The pool path of a package file.
    pub fn pool_file(&self, name: &str, version: &str) -> String {
        let first = &name[..1];
        format!("pool/main/{first}/{name}/{name}_{version}_all.deb")
    }
}
