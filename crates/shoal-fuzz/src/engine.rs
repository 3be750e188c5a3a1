//! The fuzzing loop: run the seeds, then mutate corpus inputs and run
//! them, each under `catch_unwind` (a panic is a crash: its input is saved
//! and printed), timed (an execution over the timeout is a hang), watched
//! by a watchdog thread that saves an input still running after the
//! timeout and ends the process if it never returns. Inputs whose outcome
//! (accepted shape or refusal reason, reduced to its plain words) is new
//! join the corpus, so the search keeps what reached new code paths.

use crate::guard;
use crate::mutate::Mutator;
use crate::rng::Rng;
use crate::seeds::Fixture;
use crate::targets::Target;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

/// How one target is fuzzed.
#[derive(Clone, Debug)]
pub struct Config {
    /// Executions, seeds included.
    pub execs: u64,
    pub seed: u64,
    /// An execution slower than this is a hang.
    pub timeout: Duration,
    /// Where crashing and hanging inputs are saved (created if missing).
    pub out: PathBuf,
    /// Inputs grow no longer than this.
    pub max_len: usize,
    /// At most this many inputs kept per target.
    pub max_corpus: usize,
    /// Print crashes as they are found.
    pub verbose: bool,
}

/// One crash: the panic message (or broken invariant) and its input.
#[derive(Clone, Debug)]
pub struct Crash {
    pub message: String,
    pub input: Vec<u8>,
    pub saved: Option<PathBuf>,
}

/// What a run found.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub target: &'static str,
    pub execs: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// Mutated inputs (not seeds) that were accepted and refused.
    pub mutants_accepted: u64,
    pub mutants_rejected: u64,
    /// Distinct crashes (by message); every crashing execution counts in
    /// `crash_execs`.
    pub crashes: Vec<Crash>,
    pub crash_execs: u64,
    pub hangs: u64,
    pub corpus: usize,
    pub outcomes: usize,
    pub elapsed: Duration,
    pub slowest: Duration,
}

impl Stats {
    pub fn execs_per_sec(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static IN_TARGET: RefCell<bool> = const { RefCell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps panics inside targets quiet (they are reported as crashes);
/// panics anywhere else go to the previous hook.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let prev = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_TARGET.with(|f| *f.borrow()) {
                let payload = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string panic)".into());
                let loc = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                LAST_PANIC
                    .with(|p| *p.borrow_mut() = Some(format!("panicked at {loc}: {payload}")));
            } else {
                prev(info);
            }
        }));
    });
}

/// Reduces an outcome to what tells code paths apart. A refusal keeps the
/// words of its message: whitespace-separated tokens made only of
/// lower-case letters, `_` and `-` (after trailing punctuation), so
/// numbers, quoted values, paths and echoed input drop out while the kind
/// of refusal stays. An accepted shape (written by the target) keeps its
/// text with each number replaced by its count of digits, so inputs of
/// new sizes are kept too. The result is hashed.
fn outcome_key(accepted: bool, text: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    accepted.hash(&mut h);
    if accepted {
        let mut digits = 0u8;
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits = digits.saturating_add(1);
            } else {
                digits.hash(&mut h);
                digits = 0;
                c.hash(&mut h);
            }
        }
        digits.hash(&mut h);
    } else {
        text.split_whitespace()
            .map(|w| w.trim_end_matches([':', ',', ';', '.', ')']))
            .filter(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
            })
            .take(40)
            .for_each(|w| w.hash(&mut h));
    }
    h.finish()
}

/// A printable form of an input (escaped, cut after `max` bytes).
pub fn escape(input: &[u8], max: usize) -> String {
    let mut s: String = input
        .iter()
        .take(max)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if input.len() > max {
        s.push_str(&format!("... ({} bytes)", input.len()));
    }
    s
}

fn short_hash(input: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(input)[..8])
}

fn save(out: &Path, what: &str, target: &str, input: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(out).ok()?;
    let p = out.join(format!("{what}-{target}-{}.bin", short_hash(input)));
    std::fs::write(&p, input).ok()?;
    Some(p)
}

/// Shared between the loop and its watchdog.
struct Watch {
    base: Instant,
    /// Milliseconds since `base` + 1 when the running input started; 0 idle.
    started: AtomicU64,
    input: Mutex<Vec<u8>>,
    reported: AtomicBool,
    stop: AtomicBool,
}

fn watchdog(w: Arc<Watch>, target: &'static str, timeout: Duration, out: PathBuf) {
    let hard = (timeout * 30).max(Duration::from_secs(30));
    while !w.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        let s = w.started.load(Ordering::SeqCst);
        if s == 0 {
            continue;
        }
        let running = w
            .base
            .elapsed()
            .saturating_sub(Duration::from_millis(s - 1));
        if running > timeout && !w.reported.swap(true, Ordering::SeqCst) {
            let input = w.input.lock().unwrap().clone();
            let saved = save(&out, "hang", target, &input);
            eprintln!(
                "shoal-fuzz: HANG: {target}: one execution has run for more than {timeout:?}; \
                 input saved in {saved:?}: {}",
                escape(&input, 400)
            );
        }
        if running > hard {
            eprintln!(
                "shoal-fuzz: {target}: an execution has not returned after {hard:?}; giving up"
            );
            std::process::exit(3);
        }
    }
}

/// Fuzzes one target; `progress` is called about every `every`.
pub fn fuzz(
    t: &Target,
    fx: &Fixture,
    cfg: &Config,
    every: Duration,
    progress: &mut dyn FnMut(&Stats),
) -> Stats {
    install_panic_hook();
    let _ = std::fs::create_dir_all(&cfg.out);
    guard::set_crash_path(&cfg.out.join(format!("abort-{}.bin", t.name)));

    let seeds = (t.seeds)(fx);
    let extra = (t.tokens)(fx);
    let max_len = cfg
        .max_len
        .max(seeds.iter().map(|s| s.len() * 2).max().unwrap_or(0));
    let m = Mutator {
        grammar: t.grammar,
        extra_tokens: &extra,
        max_len,
        key: Some(&fx.key),
    };
    let mut rng = Rng::new(cfg.seed ^ fnv(t.name));
    // Every input kept, and those of them that the target accepted.
    let mut corpus: Vec<Vec<u8>> = seeds.clone();
    let mut valid: Vec<Vec<u8>> = seeds.clone();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut crash_msgs: HashMap<String, usize> = HashMap::new();
    let mut st = Stats {
        target: t.name,
        ..Default::default()
    };

    let watch = Arc::new(Watch {
        base: Instant::now(),
        started: AtomicU64::new(0),
        input: Mutex::new(Vec::new()),
        reported: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    });
    let dog = {
        let w = watch.clone();
        let out = cfg.out.clone();
        let name = t.name;
        let timeout = cfg.timeout;
        std::thread::spawn(move || watchdog(w, name, timeout, out))
    };

    let start = Instant::now();
    let mut last_report = Instant::now();
    let mut input = Vec::new();
    for i in 0..cfg.execs {
        input.clear();
        if (i as usize) < seeds.len() {
            input.extend_from_slice(&seeds[i as usize]);
        } else {
            // mostly inputs that were accepted, so mutants go deep
            let pool = if rng.below(4) != 0 { &valid } else { &corpus };
            input.extend_from_slice(&pool[rng.below(pool.len())]);
            m.mutate(&mut rng, &mut input, &corpus);
        }

        watch.input.lock().unwrap().clone_from(&input);
        watch.reported.store(false, Ordering::SeqCst);
        let t0 = Instant::now();
        watch.started.store(
            watch.base.elapsed().as_millis() as u64 + 1,
            Ordering::SeqCst,
        );
        guard::set_current(&input);
        IN_TARGET.with(|f| *f.borrow_mut() = true);
        let r = panic::catch_unwind(AssertUnwindSafe(|| (t.run)(fx, &input)));
        IN_TARGET.with(|f| *f.borrow_mut() = false);
        guard::clear_current();
        watch.started.store(0, Ordering::SeqCst);
        let took = t0.elapsed();
        st.execs += 1;
        st.slowest = st.slowest.max(took);

        let key = match &r {
            Ok(Ok(shape)) => {
                st.accepted += 1;
                st.mutants_accepted += u64::from(i as usize >= seeds.len());
                Some(outcome_key(true, shape))
            }
            Ok(Err(why)) => {
                st.rejected += 1;
                st.mutants_rejected += u64::from(i as usize >= seeds.len());
                Some(outcome_key(false, why))
            }
            Err(_) => {
                st.crash_execs += 1;
                let msg = LAST_PANIC
                    .with(|p| p.borrow_mut().take())
                    .unwrap_or_else(|| "panic".into());
                // one crash per place and first line (assert_eq! adds the
                // differing values on the next lines)
                let first = msg.lines().next().unwrap_or_default().to_string();
                let n = crash_msgs.entry(first).or_insert(0);
                *n += 1;
                if *n == 1 {
                    let saved = save(&cfg.out, "crash", t.name, &input);
                    if cfg.verbose {
                        eprintln!(
                            "shoal-fuzz: CRASH: {}: {msg}\n  input saved in {saved:?}: {}",
                            t.name,
                            escape(&input, 400)
                        );
                    }
                    st.crashes.push(Crash {
                        message: msg,
                        input: input.clone(),
                        saved,
                    });
                }
                None
            }
        };
        if took > cfg.timeout {
            st.hangs += 1;
            let saved = save(&cfg.out, "hang", t.name, &input);
            if cfg.verbose {
                eprintln!(
                    "shoal-fuzz: HANG: {}: one execution took {took:?}; input saved in {saved:?}",
                    t.name
                );
            }
        }
        if let Some(k) = key {
            if seen.insert(k) && (i as usize) >= seeds.len() {
                keep(&mut corpus, seeds.len(), cfg.max_corpus, &input, &mut rng);
                if matches!(r, Ok(Ok(_))) {
                    keep(&mut valid, seeds.len(), cfg.max_corpus, &input, &mut rng);
                }
            }
        }
        if i % 256 == 0 && last_report.elapsed() >= every {
            last_report = Instant::now();
            st.elapsed = start.elapsed();
            st.corpus = corpus.len();
            st.outcomes = seen.len();
            progress(&st);
        }
    }
    st.elapsed = start.elapsed();
    st.corpus = corpus.len();
    st.outcomes = seen.len();
    watch.stop.store(true, Ordering::Relaxed);
    let _ = dog.join();
    st
}

/// Adds `input` to `pool`, or when full replaces a random later find
/// (the first `keep_first`, the seeds, stay).
fn keep(pool: &mut Vec<Vec<u8>>, keep_first: usize, max: usize, input: &[u8], rng: &mut Rng) {
    if pool.len() < max.max(keep_first + 1) {
        pool.push(input.to_vec());
    } else {
        let j = keep_first + rng.below(pool.len() - keep_first);
        pool[j] = input.to_vec();
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs one input through a target (for replaying a saved crash).
pub fn replay(t: &Target, fx: &Fixture, input: &[u8]) -> Result<crate::targets::Verdict, String> {
    install_panic_hook();
    IN_TARGET.with(|f| *f.borrow_mut() = true);
    let r = panic::catch_unwind(AssertUnwindSafe(|| (t.run)(fx, input)));
    IN_TARGET.with(|f| *f.borrow_mut() = false);
    r.map_err(|_| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panic".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_keys_mask_numbers_and_quoted_values() {
        assert_eq!(
            outcome_key(false, "bad 'abc' at line 1 column 17"),
            outcome_key(false, "bad 'xyz' at line 3 column 170")
        );
        assert_eq!(
            outcome_key(false, "unknown field `x`q`, expected one of `a`, `b`"),
            outcome_key(false, "unknown field `{{{`, expected one of `a`, `b`")
        );
        assert_ne!(
            outcome_key(false, "'a//b': empty component"),
            outcome_key(false, "'a/..': '..' component would leave the tree")
        );
        assert_ne!(
            outcome_key(false, "bad path"),
            outcome_key(false, "bad hash")
        );
        assert_ne!(outcome_key(true, "x"), outcome_key(false, "x"));
        // accepted shapes keep the size class of their numbers
        assert_eq!(
            outcome_key(true, "entries=3"),
            outcome_key(true, "entries=7")
        );
        assert_ne!(
            outcome_key(true, "entries=3"),
            outcome_key(true, "entries=30")
        );
    }

    #[test]
    fn escape_is_printable_and_cut() {
        assert_eq!(escape(b"a\n\xff", 10), "a\\n\\xff");
        assert_eq!(escape(b"abcdef", 3), "abc... (6 bytes)");
    }
}
