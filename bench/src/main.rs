//! `shoal-bench`: runs Shoal's benchmark suite and writes BENCHMARKS.md.
//!
//! Every part builds its own network of namespaces (a bridge, one
//! namespace per host, `tc tbf` shaping, no route out) with
//! [`shoal_e2e::netns::TestNet`], runs real `shoal-agent`, `rsync` and
//! `sha256sum` processes in it, and tears it down again, also on an error
//! or Ctrl-C. See docs/benchmarks.md for the method.

mod faults;
mod parts;
mod restart;
mod run;

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// Shoal's benchmark suite: fan-out, small update on a big tree, publish
/// hashing, memory and restart. Needs root (network namespaces, tc), rsync
/// and a release build of shoal-agent. Writes a Markdown report.
#[derive(Parser, Debug, Clone)]
#[command(name = "shoal-bench", version, about)]
pub struct Cli {
    /// Small sizes, to check the suite itself in a few minutes (the report
    /// says so).
    #[arg(long)]
    pub quick: bool,
    /// Parts to run, comma-separated: fanout, faults, sim, update, hash,
    /// memory.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "fanout,faults,sim,update,hash,memory"
    )]
    pub only: Vec<String>,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// Scratch folder for trees and agent state [default: a new folder
    /// under /var/tmp, removed at the end].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the scratch folder (and its logs) at the end.
    #[arg(long)]
    pub keep: bool,
    /// The shoal-agent binary [default: target/release/shoal-agent].
    #[arg(long)]
    pub agent: Option<PathBuf>,
    /// Rate every host is shaped to, up and down, in Mbit/s.
    #[arg(long, default_value_t = 100)]
    pub rate_mbit: u64,
    /// Fan-out snapshot size in MB [default: 200, quick: 24].
    #[arg(long)]
    pub fanout_mb: Option<u64>,
    /// Fan-out mirror counts [default: 2,4,8, quick: 2].
    #[arg(long, value_delimiter = ',')]
    pub mirrors: Vec<usize>,
    /// Files in the small-update trees, comma-separated [default:
    /// 100000,1000000, quick: 5000].
    #[arg(long, value_delimiter = ',')]
    pub update_files: Vec<usize>,
    /// Mirrors (Shoal and rsync alike) in the small update's many-mirror
    /// case; a case with one mirror always runs too (1 runs only that).
    #[arg(long, default_value_t = 4)]
    pub update_mirrors: usize,
    /// Where the small-update part keeps its hosts' folders. `disks` gives
    /// each host (the origin, each Shoal mirror, each rsync copy) an ext4
    /// file system of its own, a loop-mounted sparse image in the scratch
    /// folder, as separate machines have. `tmpfs` keeps them all in the
    /// run's tmpfs, where a copy of a million tiny files takes 4 GB (a page
    /// per file): above 200000 files only one mirror runs there [default:
    /// disks, quick: tmpfs].
    #[arg(long, value_enum)]
    pub update_on: Option<UpdateOn>,
    /// Rounds per small-update case (the median is reported) [default: 5, quick: 1].
    #[arg(long)]
    pub update_rounds: Option<usize>,
    /// Size of the hashing tree in MB [default: 3000, quick: 200].
    #[arg(long)]
    pub hash_mb: Option<u64>,
    /// File counts for the memory part, comma-separated; the mirror runs
    /// for counts up to --memory-mirror-max [default: 100000,1000000,
    /// quick: 3000].
    #[arg(long, value_delimiter = ',')]
    pub memory_files: Vec<usize>,
    /// Largest file count a mirror is run for in the memory part (a smaller
    /// one skips the slowest syncs) [default: 1000000].
    #[arg(long)]
    pub memory_mirror_max: Option<usize>,
    /// Size limit of the tmpfs that holds the trees of many tiny files
    /// (memory, and small update with --update-on tmpfs), in GB; 0 puts
    /// them on disk in the scratch folder instead (removing a million files
    /// there takes minutes).
    #[arg(long, default_value_t = 16)]
    pub tmpfs_gb: u64,
    /// The command line to record in the report [default: this one].
    #[arg(long)]
    pub command: Option<String>,
}

/// Where the small-update part keeps its hosts' folders (`--update-on`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateOn {
    /// An ext4 file system per host, on disk.
    Disks,
    /// The run's tmpfs (or the scratch folder with --tmpfs-gb 0).
    Tmpfs,
}

impl Cli {
    /// Where the small-update part keeps its hosts' folders.
    pub fn update_on(&self) -> UpdateOn {
        self.update_on.unwrap_or(if self.quick {
            UpdateOn::Tmpfs
        } else {
            UpdateOn::Disks
        })
    }
}

fn main() {
    let cli = Cli::parse();
    run::install_signal_handlers();
    let code = match real_main(cli) {
        Ok(()) => 0,
        Err(e) => {
            if run::interrupted() {
                eprintln!("shoal-bench: interrupted; everything it started is torn down");
                130
            } else {
                eprintln!("shoal-bench: error: {e:#}");
                1
            }
        }
    };
    std::process::exit(code);
}

fn real_main(cli: Cli) -> Result<()> {
    shoal_e2e::netns::require_root("network namespaces and tc shaping")?;
    for part in &cli.only {
        if !["fanout", "faults", "sim", "update", "hash", "memory"].contains(&part.as_str()) {
            bail!("--only: unknown part '{part}'; use fanout, faults, sim, update, hash, memory");
        }
    }
    if cli.rate_mbit == 0 {
        bail!("--rate-mbit must be more than 0");
    }
    let agent = cli
        .agent
        .clone()
        .unwrap_or_else(|| shoal_e2e::workspace_root().join("target/release/shoal-agent"));
    if !agent.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p shoal-agent` (scripts/bench \
             does), or pass --agent",
            agent.display()
        );
    }
    for tool in ["rsync", "tc", "ip", "sha256sum", "sha1sum", "xargs"] {
        if which(tool).is_none() {
            bail!("{tool} is not installed: apt-get install rsync iproute2 coreutils findutils (scripts/bench does)");
        }
    }
    let work = match &cli.work_dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            run::Work::Given(d.clone())
        }
        None => run::Work::Temp(
            tempfile::Builder::new()
                .prefix("shoal-bench-")
                .tempdir_in("/var/tmp")
                .context("creating a scratch folder in /var/tmp")?,
        ),
    };
    let tmpfs = match cli.tmpfs_gb {
        0 => None,
        gb => Some(run::Tmpfs::mount(&work.path().join("small"), gb)?),
    };
    let small = tmpfs
        .as_ref()
        .map(|t| t.path().to_path_buf())
        .unwrap_or_else(|| work.path().join("small"));
    let ctx = run::Ctx::new(cli.clone(), agent, work.path().to_path_buf(), small)?;
    let report = parts::run_all(&ctx);
    drop(tmpfs);
    // The report is written only when every part ran.
    let report = report?;
    std::fs::write(&cli.out, report).with_context(|| format!("writing {}", cli.out.display()))?;
    eprintln!("shoal-bench: wrote {}", cli.out.display());
    if cli.keep {
        let kept = work.keep();
        eprintln!("shoal-bench: scratch folder kept in {}", kept.display());
    }
    Ok(())
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(tool))
            .find(|c| c.is_file())
    })
}
