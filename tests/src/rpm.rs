//! Real RPM repositories for tests: small noarch rpms built with
//! `rpmbuild` (Debian package `rpm`) in a scratch `_topdir`, metadata by
//! `createrepo_c`, and `repodata/repomd.xml.asc` signed with a [`GpgKey`].

use crate::gpg::GpgKey;
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

/// `size` incompressible bytes, a function of `name` and `version`.
pub fn payload(name: &str, version: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = name
        .bytes()
        .chain(version.bytes())
        .fold(0x9e3779b97f4a7c15u64, |a, b| {
            a.rotate_left(7) ^ (b as u64).wrapping_mul(0x100000001b3)
        })
        | 1;
    let mut data = Vec::with_capacity(size + 8);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    data
}

/// Builds `name-version-1.noarch.rpm` holding `payload` bytes of data with
/// `rpmbuild` in the scratch `_topdir` `topdir`; returns its path.
pub fn build_rpm(topdir: &Path, name: &str, version: &str, payload_bytes: usize) -> PathBuf {
    for d in [
        "SPECS",
        "SOURCES",
        "BUILD",
        "RPMS",
        "SRPMS",
        "BUILDROOT",
        "tmp",
    ] {
        std::fs::create_dir_all(topdir.join(d)).unwrap();
    }
    let src = format!("{name}-{version}.data");
    std::fs::write(
        topdir.join("SOURCES").join(&src),
        payload(name, version, payload_bytes),
    )
    .unwrap();
    let spec = topdir.join("SPECS").join(format!("{name}-{version}.spec"));
    std::fs::write(
        &spec,
        format!(
            "Name: {name}\nVersion: {version}\nRelease: 1\nSummary: Shoal test package {name}\n\
             License: MIT\nBuildArch: noarch\nSource0: {src}\n\
             %description\nShoal test package {name}.\n\
             %install\nmkdir -p %{{buildroot}}/usr/share/{name}\n\
             cp %{{SOURCE0}} %{{buildroot}}/usr/share/{name}/data\n\
             %files\n/usr/share/{name}/data\n"
        ),
    )
    .unwrap();
    run(Command::new("rpmbuild")
        .arg("--define")
        .arg(format!("_topdir {}", topdir.display()))
        .arg("--define")
        .arg(format!("_tmppath {}/tmp", topdir.display()))
        .args([
            "--define",
            "_binary_payload w1.gzdio",
            "--define",
            "__os_install_post %{nil}",
            "--define",
            "_build_id_links none",
            "--quiet",
            "-bb",
        ])
        .arg(&spec));
    let rpm = topdir
        .join("RPMS/noarch")
        .join(format!("{name}-{version}-1.noarch.rpm"));
    assert!(rpm.exists(), "rpmbuild made no {}", rpm.display());
    std::fs::remove_file(topdir.join("SOURCES").join(&src)).unwrap();
    std::fs::remove_file(&spec).unwrap();
    rpm
}

/// A yum/dnf repository in `root`: `Packages/*.rpm` and `repodata/` made by
/// `createrepo_c`. Changes to `Packages/` show in the metadata after
/// [`RpmRepo::refresh`].
pub struct RpmRepo {
    pub root: PathBuf,
    pub topdir: PathBuf,
}

impl RpmRepo {
    /// An empty repository in `root`, building rpms in `topdir`.
    pub fn new(root: &Path, topdir: &Path) -> RpmRepo {
        std::fs::create_dir_all(root.join("Packages")).unwrap();
        RpmRepo {
            root: root.to_path_buf(),
            topdir: topdir.to_path_buf(),
        }
    }

    /// Repository path of a package file.
    pub fn package_file(name: &str, version: &str) -> String {
        format!("Packages/{name}-{version}-1.noarch.rpm")
    }

    /// Builds `name` `version` and puts it in `Packages/`, replacing any
    /// other version of `name` (as a repository keeping one version does).
    pub fn add(&self, name: &str, version: &str, payload_bytes: usize) {
        let rpm = build_rpm(&self.topdir, name, version, payload_bytes);
        let dest = self.root.join(Self::package_file(name, version));
        let tmp = self.root.join(format!("Packages/.{name}-{version}.tmp"));
        std::fs::copy(&rpm, &tmp).unwrap();
        std::fs::rename(&tmp, &dest).unwrap();
        std::fs::remove_file(&rpm).unwrap();
        self.remove_except(name, Some(&dest));
    }

    /// Removes every version of `name` from `Packages/`.
    pub fn remove(&self, name: &str) {
        self.remove_except(name, None);
    }

    fn remove_except(&self, name: &str, keep: Option<&Path>) {
        let prefix = format!("{name}-");
        for e in std::fs::read_dir(self.root.join("Packages")).unwrap() {
            let p = e.unwrap().path();
            let f = p.file_name().unwrap().to_string_lossy().into_owned();
            // name-VERSION-1.noarch.rpm, VERSION starting with a digit.
            let ours = f
                .strip_prefix(&prefix)
                .map(|r| r.starts_with(|c: char| c.is_ascii_digit()) && f.ends_with(".rpm"))
                .unwrap_or(false);
            if ours && Some(p.as_path()) != keep {
                std::fs::remove_file(&p).unwrap();
            }
        }
    }

    /// Regenerates `repodata/` with `createrepo_c` and signs `repomd.xml`
    /// (`repomd.xml.asc`, armoured detached signature).
    pub fn refresh(&self, key: &GpgKey) {
        let mut cmd = Command::new("createrepo_c");
        cmd.args(["--quiet", "--no-database"]);
        if self.root.join("repodata/repomd.xml").exists() {
            cmd.arg("--update");
        }
        run(cmd.arg(&self.root));
        let repomd = self.root.join("repodata/repomd.xml");
        key.detach_sign_armor(&repomd, &self.root.join("repodata/repomd.xml.asc"));
    }
}
