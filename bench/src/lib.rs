//! Shoal's benchmark suite (`shoal-bench`, run by `scripts/bench`).
//!
//! The binary drives real processes (`shoal-agent`, `rsync`, `sha256sum`)
//! on a throw-away network of namespaces ([`shoal_e2e::netns::TestNet`])
//! and writes `BENCHMARKS.md`. This library holds the parts that do not
//! need root or a network, so they carry unit tests: the lower-bound
//! model, the workloads, parsers for `/proc` and the agent's JSON logs, and
//! the Markdown renderer. See `docs/benchmarks.md` for the method.

pub mod logs;
pub mod model;
pub mod procfs;
pub mod report;
pub mod sim;
pub mod workload;
