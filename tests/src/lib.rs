//! Harness for Shoal's end-to-end tests: where the built binaries are, and
//! helpers that start real processes and always tear them down.
//!
//! The binaries are built by the test command (`scripts/test`) before
//! `cargo test` runs; `SHOAL_BIN_DIR` overrides where they are looked for.

pub mod agents;
pub mod churn;
pub mod clients;
pub mod daemon;
pub mod fake;
pub mod files;
pub mod gpg;
pub mod local;
pub mod netns;
pub mod nginx;
pub mod ns_agents;
pub mod repo;
pub mod rpm;

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Path of a built workspace binary (`shoal-agent`, `shoal`).
///
/// Panics with what to run when the binary is missing.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("SHOAL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("debug")
        });
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --bins` (scripts/test does this)",
        p.display()
    );
    p
}
