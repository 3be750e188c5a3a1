//! The short fuzzing run of the test suite: every target for a bounded
//! number of executions, with no crash and no hang, and proof that the
//! mutator made inputs the parser accepted and inputs it refused (so the
//! run cannot pass by feeding only garbage or only the seeds).

use shoal_fuzz::{engine, guard, Fixture, TARGETS};
use std::sync::OnceLock;
use std::time::Duration;

#[global_allocator]
static ALLOC: guard::LimitedAlloc = guard::LimitedAlloc;

fn fixture() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        guard::set_alloc_limit(1 << 30);
        Fixture::new()
    })
}

fn short_run(name: &str, execs: u64) {
    let fx = fixture();
    let t = shoal_fuzz::find(name).expect("target exists");
    // Every seed is a valid input of its target.
    for s in (t.seeds)(fx) {
        match engine::replay(t, fx, &s) {
            Ok(Ok(_)) => {}
            other => panic!(
                "{name}: seed refused: {other:?}: {}",
                engine::escape(&s, 300)
            ),
        }
    }
    let out = std::env::temp_dir().join(format!("shoal-fuzz-test-{}-{name}", std::process::id()));
    let cfg = engine::Config {
        execs,
        seed: 20_261_129,
        // generous: debug builds of Shoal's crates are slow
        timeout: Duration::from_secs(5),
        out: out.clone(),
        max_len: 64 * 1024,
        max_corpus: 1024,
        verbose: true,
    };
    let s = engine::fuzz(t, fx, &cfg, Duration::from_secs(3600), &mut |_| {});
    eprintln!(
        "{name}: {} execs in {:.2?}, mutants accepted {} refused {}, {} outcomes",
        s.execs, s.elapsed, s.mutants_accepted, s.mutants_rejected, s.outcomes
    );
    assert_eq!(s.execs, execs);
    for c in &s.crashes {
        eprintln!(
            "CRASH {name}: {}: {}",
            c.message,
            engine::escape(&c.input, 600)
        );
    }
    assert!(
        s.crashes.is_empty(),
        "{name}: {} crash(es)",
        s.crashes.len()
    );
    assert_eq!(s.hangs, 0, "{name}: hangs");
    assert!(
        s.mutants_accepted > 0,
        "{name}: no mutated input was accepted"
    );
    assert!(
        s.mutants_rejected > 0,
        "{name}: no mutated input was refused"
    );
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn every_target_has_a_short_run() {
    let names: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "envelope",
            "head",
            "manifest",
            "delta",
            "checkpoint",
            "torrent",
            "announce",
            "tracker",
            "config",
            "site",
            "status",
            "keys",
            "paths"
        ]
    );
}

#[test]
fn envelope() {
    short_run("envelope", 3_000);
}
#[test]
fn head() {
    short_run("head", 20_000);
}
#[test]
fn manifest() {
    short_run("manifest", 5_000);
}
#[test]
fn delta() {
    short_run("delta", 5_000);
}
#[test]
fn checkpoint() {
    short_run("checkpoint", 2_000);
}
#[test]
fn torrent() {
    short_run("torrent", 20_000);
}
#[test]
fn announce() {
    short_run("announce", 20_000);
}
#[test]
fn tracker() {
    short_run("tracker", 20_000);
}
#[test]
fn config() {
    short_run("config", 5_000);
}
#[test]
fn site() {
    short_run("site", 1_000);
}
#[test]
fn status() {
    short_run("status", 10_000);
}
#[test]
fn keys() {
    short_run("keys", 10_000);
}
#[test]
fn paths() {
    short_run("paths", 20_000);
}
