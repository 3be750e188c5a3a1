//! Fuzzing for every Shoal parser that reads bytes from the network or
//! from disk: the signed envelope, heads, manifests, deltas, checkpoints,
//! pack `.torrent` files, announce JSON, tracker announce queries, the
//! agent's YAML config and the provisioner's `site.yaml` (plus the path
//! rules they all rely on).
//!
//! It runs on the stable toolchain with nothing but this crate: no
//! compiler instrumentation, no libFuzzer. Each target ([`targets`]) is a
//! plain `fn(&[u8])` over the real parsing code that checks invariants on
//! what it accepts; the engine ([`engine`]) mutates a corpus generated in
//! code from real documents ([`seeds`]) with a structure-aware mutator
//! ([`mutate`]) that knows JSON, bencode, YAML, query strings and the
//! signed envelope; panics are crashes (saved and printed), executions
//! over the timeout are hangs, and aborts (a refused huge allocation, a
//! stack overflow) save their input before the process dies ([`guard`]).
//!
//! `cargo run --profile fuzz -p shoal-fuzz -- --target all --execs N` runs
//! a long campaign; the test suite runs a short one (`tests/short_run.rs`).
//! See `docs/fuzzing.md`.

pub mod engine;
pub mod guard;
pub mod mutate;
pub mod rng;
pub mod seeds;
pub mod targets;

pub use engine::{fuzz, replay, Config, Crash, Stats};
pub use seeds::Fixture;
pub use targets::{find, Target, TARGETS};
