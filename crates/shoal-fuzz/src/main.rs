//! `shoal-fuzz`: fuzzes Shoal's parsers (see the crate docs and
//! docs/fuzzing.md).

use clap::Parser;
use shoal_fuzz::{engine, guard, Fixture, Stats, TARGETS};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: guard::LimitedAlloc = guard::LimitedAlloc;

/// Fuzz Shoal's parsers with a structure-aware mutator; exits 1 if any
/// crash or hang was found.
#[derive(Parser, Debug)]
#[command(name = "shoal-fuzz", version)]
struct Args {
    /// A target name (see --list) or `all`.
    #[arg(long, default_value = "all")]
    target: String,
    /// Executions per target, seeds included.
    #[arg(long, default_value_t = 100_000)]
    execs: u64,
    /// Executions for one target instead of --execs: `NAME=N` (repeatable).
    #[arg(long, value_name = "NAME=N")]
    execs_for: Vec<String>,
    /// Random seed; the same seed and build repeat the same run.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Folder for crashing and hanging inputs.
    #[arg(long, default_value = "fuzz-out")]
    out: PathBuf,
    /// An execution slower than this (milliseconds) is a hang.
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Longest input the mutator makes (bytes; at least twice the largest seed).
    #[arg(long, default_value_t = 64 * 1024)]
    max_len: usize,
    /// Largest single allocation allowed (MiB); a larger one is a crash.
    #[arg(long, default_value_t = 1024)]
    max_alloc_mb: usize,
    /// Inputs kept per target.
    #[arg(long, default_value_t = 4096)]
    max_corpus: usize,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    progress_secs: u64,
    /// Checks that an abort saves its input: `abort`, `alloc` (an
    /// allocation over --max-alloc-mb) or `stack` (a stack overflow).
    #[arg(long, hide = true)]
    self_test: Option<String>,
    /// List the targets and exit.
    #[arg(long)]
    list: bool,
    /// Run these saved inputs through --target (one target) and exit.
    #[arg(long, num_args = 1..)]
    replay: Vec<PathBuf>,
}

fn line(s: &Stats) -> String {
    format!(
        "{:<10} {:>11} execs {:>9.0}/s  accepted {:>10}  rejected {:>10}  corpus {:>5}  \
         outcomes {:>5}  crashes {}  hangs {}  slowest {:.1} ms",
        s.target,
        s.execs,
        s.execs_per_sec(),
        s.accepted,
        s.rejected,
        s.corpus,
        s.outcomes,
        s.crashes.len(),
        s.hangs,
        s.slowest.as_secs_f64() * 1000.0
    )
}

fn main() -> ExitCode {
    let a = Args::parse();
    if a.list {
        for t in TARGETS {
            println!("{:<10} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    let targets: Vec<_> = if a.target == "all" {
        TARGETS.iter().collect()
    } else {
        match shoal_fuzz::find(&a.target) {
            Some(t) => vec![t],
            None => {
                let names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
                eprintln!(
                    "unknown target '{}'; targets: all, {}",
                    a.target,
                    names.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    };
    let fx = Fixture::new();

    if !a.replay.is_empty() {
        let [t] = targets.as_slice() else {
            eprintln!("--replay needs one --target");
            return ExitCode::from(2);
        };
        let mut bad = false;
        for p in &a.replay {
            let input = match std::fs::read(p) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("{}: {e}", p.display());
                    return ExitCode::from(2);
                }
            };
            match engine::replay(t, &fx, &input) {
                Ok(Ok(shape)) => println!("{}: accepted: {shape}", p.display()),
                Ok(Err(why)) => println!("{}: refused: {why}", p.display()),
                Err(panic) => {
                    bad = true;
                    println!("{}: CRASH: {panic}", p.display())
                }
            }
        }
        return if bad {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
    }

    guard::install_abort_handler();
    guard::set_alloc_limit(a.max_alloc_mb << 20);
    if let Some(kind) = &a.self_test {
        return self_test(kind, &a);
    }
    let cfg = engine::Config {
        execs: a.execs,
        seed: a.seed,
        timeout: Duration::from_millis(a.timeout_ms),
        out: a.out.clone(),
        max_len: a.max_len,
        max_corpus: a.max_corpus,
        verbose: true,
    };
    let mut execs_for = std::collections::HashMap::new();
    for e in &a.execs_for {
        let parsed = e
            .split_once('=')
            .and_then(|(n, v)| Some((shoal_fuzz::find(n)?.name, v.parse::<u64>().ok()?)));
        match parsed {
            Some((name, n)) => {
                execs_for.insert(name, n);
            }
            None => {
                eprintln!("--execs-for {e}: expected TARGET=NUMBER with a known target");
                return ExitCode::from(2);
            }
        }
    }
    println!(
        "shoal-fuzz: {} target(s), {} executions each (--execs-for: {:?}), seed {}, \
         timeout {} ms, inputs saved in {}",
        targets.len(),
        a.execs,
        a.execs_for,
        a.seed,
        a.timeout_ms,
        a.out.display()
    );
    let every = Duration::from_secs(a.progress_secs.max(1));
    let start = Instant::now();
    let mut all = Vec::new();
    for t in targets {
        let cfg = engine::Config {
            execs: execs_for.get(t.name).copied().unwrap_or(a.execs),
            ..cfg.clone()
        };
        let s = engine::fuzz(t, &fx, &cfg, every, &mut |s| {
            println!("[{:>7.1}s] {}", start.elapsed().as_secs_f64(), line(s))
        });
        println!(
            "[{:>7.1}s] {} done",
            start.elapsed().as_secs_f64(),
            line(&s)
        );
        all.push(s);
    }

    let total: u64 = all.iter().map(|s| s.execs).sum();
    let secs: f64 = all.iter().map(|s| s.elapsed.as_secs_f64()).sum();
    let crashes: usize = all.iter().map(|s| s.crashes.len()).sum();
    let hangs: u64 = all.iter().map(|s| s.hangs).sum();
    println!();
    println!("| target | executions | exec/s | accepted | rejected | corpus | crashes | hangs | slowest (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &all {
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} |",
            s.target,
            s.execs,
            s.execs_per_sec(),
            s.accepted,
            s.rejected,
            s.corpus,
            s.crashes.len(),
            s.hangs,
            s.slowest.as_secs_f64() * 1000.0
        );
    }
    println!(
        "| **total** | {total} | {:.0} | | | | {crashes} | {hangs} | |",
        total as f64 / secs.max(1e-9)
    );
    println!("\nwall time {:.1} s", start.elapsed().as_secs_f64());
    for s in &all {
        for c in &s.crashes {
            println!("CRASH {}: {} (input: {:?})", s.target, c.message, c.saved);
        }
    }
    if crashes > 0 || hangs > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Dies the way a parser bug could, with a known input marked as running.
fn self_test(kind: &str, a: &Args) -> ExitCode {
    fn recurse(n: u64) -> u64 {
        let pad = std::hint::black_box([n; 64]);
        if pad[0] == 0 {
            return 0; // never: n starts at 1 and grows
        }
        recurse(pad[(n % 64) as usize] + 1) + pad[1]
    }
    // no core file for a deliberate abort
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
    let _ = std::fs::create_dir_all(&a.out);
    guard::set_crash_path(&a.out.join("abort-self-test.bin"));
    let input = format!("shoal-fuzz self-test {kind}").into_bytes();
    guard::set_current(&input);
    match kind {
        "abort" => std::process::abort(),
        "alloc" => {
            let v: Vec<u8> = Vec::with_capacity(std::hint::black_box((a.max_alloc_mb << 20) + 1));
            println!("allocated {} bytes: the limit did not hold", v.capacity());
        }
        "stack" => println!("{}", recurse(std::hint::black_box(1))),
        _ => eprintln!("--self-test abort|alloc|stack"),
    }
    guard::clear_current();
    ExitCode::from(2)
}
