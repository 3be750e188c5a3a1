//! Stages the Puppet module (`puppet/`) and the Ansible role
//! (`ansible/roles/shoal`) in OUT_DIR, without their test-only parts, so
//! that `src/render.rs` embeds them with `include_dir!`. A missing source
//! folder is staged empty; `shoal render` then says the binary lacks it.

use std::path::Path;

/// Test-only and development-only parts that are not embedded.
const EXCLUDE: &[&str] = &[
    "spec",
    "fixtures",
    ".fixtures.yml",
    "pkg",
    "vendor",
    ".bundle",
    "coverage",
    "molecule",
    "tests",
    "Gemfile.lock",
    ".git",
    ".gitignore",
    ".rspec_status",
    ".ansible",
];

fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("create staging folder");
    let Ok(entries) = std::fs::read_dir(src) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        if EXCLUDE.iter().any(|x| name == *x) {
            continue;
        }
        let ty = e.file_type().expect("file type");
        let to = dst.join(&name);
        if ty.is_dir() {
            copy_tree(&e.path(), &to);
        } else if ty.is_file() {
            std::fs::copy(e.path(), &to).expect("copy file into staging folder");
        }
    }
}

fn main() {
    let manifest = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap();
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("embed");
    let _ = std::fs::remove_dir_all(&out);
    for (src, dst) in [
        ("puppet", "puppet"),
        ("ansible/roles/shoal", "ansible-role"),
    ] {
        let s = root.join(src);
        println!("cargo:rerun-if-changed={}", s.display());
        copy_tree(&s, &out.join(dst));
    }
    println!("cargo:rerun-if-changed=build.rs");
}
