//! Pieces of churn soak tests: a seeded random source, agents that can be
//! killed with SIGKILL and started again on the same addresses and state,
//! client loops that run real package managers against a mirror until
//! stopped, a naive one-stage rsync mirror for control runs, and a
//! comparison of live trees.
//!
//! Every process is killed by its PID when its handle is dropped (also
//! when the test panics); threads are stopped and joined on drop.

use crate::agents::{Agent, Proc};
use crate::clients::{observe, Category, Removed, RepoClient, Tally};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// A duration uniform in `0..=max_ms` milliseconds.
    pub fn millis(&mut self, max_ms: u64) -> Duration {
        Duration::from_millis(self.range(0, max_ms))
    }
}

/// `SHOAL_SOAK_SEED`, or one made from the clock.
pub fn seed_from_env() -> u64 {
    std::env::var("SHOAL_SOAK_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                ^ (std::process::id() as u64) << 32
        })
}

/// A positive integer from environment variable `var`, else `default`.
pub fn env_u64(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// An agent that is started again, after a crash, with the same command
/// line: same addresses, state dir and repo; each start logs to its own file.
pub struct Restartable {
    pub name: String,
    dir: PathBuf,
    args: Vec<OsString>,
    pub agent: Agent,
    pub logs: Vec<PathBuf>,
    pub crashes: u32,
}

impl Restartable {
    /// An origin publishing `repo` (only on request).
    #[allow(clippy::too_many_arguments)]
    pub fn origin(
        dir: &Path,
        name: &str,
        repo: &Path,
        key: &Path,
        profile: &str,
        http: SocketAddr,
        peer: SocketAddr,
    ) -> Restartable {
        let state = dir.join(format!("{name}-state"));
        let mut args: Vec<OsString> = vec![
            "origin".into(),
            "--name".into(),
            name.into(),
            "--profile".into(),
            profile.into(),
            "--publish-interval".into(),
            "0s".into(),
            "--quiet-period".into(),
            "0s".into(),
            "--repo".into(),
            repo.into(),
            "--state".into(),
            state.clone().into(),
            "--key".into(),
            key.into(),
        ];
        args.extend(Self::net_args(http, peer));
        Self::start(dir, name, args, http, peer, repo, &state)
    }

    /// A mirror with live tree `dir/<name>-repo`.
    #[allow(clippy::too_many_arguments)]
    pub fn mirror(
        dir: &Path,
        name: &str,
        profile: &str,
        pubkey: &str,
        upstreams: &[String],
        extra: &[&str],
        http: SocketAddr,
        peer: SocketAddr,
    ) -> Restartable {
        let repo = dir.join(format!("{name}-repo"));
        let state = dir.join(format!("{name}-state"));
        let mut args: Vec<OsString> = vec![
            "mirror".into(),
            "--name".into(),
            name.into(),
            "--profile".into(),
            profile.into(),
            "--origin-key".into(),
            pubkey.into(),
            "--repo".into(),
            repo.clone().into(),
            "--state".into(),
            state.clone().into(),
            "--poll-interval".into(),
            "1s".into(),
        ];
        args.extend(Self::net_args(http, peer));
        for u in upstreams {
            args.push("--upstream".into());
            args.push(u.into());
        }
        args.extend(extra.iter().map(OsString::from));
        Self::start(dir, name, args, http, peer, &repo, &state)
    }

    fn net_args(http: SocketAddr, peer: SocketAddr) -> Vec<OsString> {
        vec![
            "--listen".into(),
            http.to_string().into(),
            "--peer-listen".into(),
            peer.to_string().into(),
            "--announce-interval".into(),
            "1s".into(),
            // Packs rest two seconds after their last peer leaves, so churn
            // runs resting, sealing and waking under kills and publishes.
            "--rest-after".into(),
            "2s".into(),
        ]
    }

    fn start(
        dir: &Path,
        name: &str,
        args: Vec<OsString>,
        http: SocketAddr,
        peer: SocketAddr,
        repo: &Path,
        state: &Path,
    ) -> Restartable {
        let log = dir.join(format!("{name}.log"));
        let proc = Self::spawn(name, &args, &log);
        let r = Restartable {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            args,
            agent: Agent {
                proc,
                http,
                peer,
                repo: repo.to_path_buf(),
                state: state.to_path_buf(),
            },
            logs: vec![log],
            crashes: 0,
        };
        r.agent.wait_up();
        r
    }

    fn spawn(name: &str, args: &[OsString], log: &Path) -> Proc {
        let mut cmd = Command::new(crate::bin("shoal-agent"));
        cmd.args(args);
        Proc::spawn(name, cmd, log)
    }

    /// SIGKILL now.
    pub fn crash(&mut self) {
        self.agent.proc.crash();
        self.crashes += 1;
    }

    /// The exit code if the process has ended (by itself or by a crash
    /// the test caused and has not restarted yet).
    pub fn exited(&mut self) -> Option<Option<i32>> {
        match self.agent.proc.child.try_wait() {
            Ok(Some(st)) => Some(st.code()),
            _ => None,
        }
    }

    /// The last ERROR line of the current start's log, if any.
    pub fn last_error_line(&self) -> Option<String> {
        let log = self.logs.last()?;
        std::fs::read_to_string(log)
            .ok()?
            .lines()
            .rev()
            .map(strip_ansi)
            .find(|l| l.contains(" ERROR ") || l.contains(": error:"))
    }

    /// Starts the agent again (same arguments) and waits for /status.
    pub fn restart(&mut self) {
        let log = self
            .dir
            .join(format!("{}.{}.log", self.name, self.logs.len() + 1));
        self.agent.proc = Self::spawn(&self.name, &self.args, &log);
        self.logs.push(log);
        self.agent.wait_up();
    }

    pub fn url(&self) -> String {
        self.agent.url()
    }

    /// Every log line of every start, in order.
    pub fn log_lines(&self) -> Vec<String> {
        self.logs
            .iter()
            .flat_map(|l| {
                std::fs::read_to_string(l)
                    .unwrap_or_default()
                    .lines()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Log lines at `level` (e.g. "WARN"), counted by message with the
/// timestamp and numbers taken out; most frequent first.
pub fn log_summary(lines: &[String], level: &str) -> Vec<(usize, String)> {
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    let tag = format!(" {level} ");
    for l in lines {
        let l = strip_ansi(l);
        let Some(i) = l.find(&tag) else { continue };
        let msg: String = l[i + tag.len()..]
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        let msg: String = msg.chars().take(160).collect();
        *m.entry(msg).or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = m.into_iter().map(|(k, n)| (n, k)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    v
}

/// `s` without ANSI colour sequences (`ESC [ ... m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\x1b' && it.peek() == Some(&'[') {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The wall-clock time of day (UTC) as `HH:MM:SS.mmm`, to line client
/// problems up with agent logs.
pub fn utc_time_of_day() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// `shoal-agent publish --state STATE`: the new generation, or the error.
pub fn try_publish(state: &Path, log: &Path, limit: Duration) -> Result<u64, String> {
    let mut cmd = Command::new(crate::bin("shoal-agent"));
    cmd.arg("publish").arg("--state").arg(state);
    let (code, out) = crate::clients::run_timed(cmd, log, limit);
    if code != Some(0) {
        return Err(format!("exit {code:?}: {}", out.trim()));
    }
    out.trim()
        .strip_prefix("ok ")
        .and_then(|g| g.trim().parse().ok())
        .ok_or_else(|| format!("unexpected publish reply '{}'", out.trim()))
}

/// Starts `shoal-agent publish --state STATE` in the background.
pub fn spawn_publish(state: &Path, log: &Path) -> Proc {
    let mut cmd = Command::new(crate::bin("shoal-agent"));
    cmd.arg("publish").arg("--state").arg(state);
    Proc::spawn("publish", cmd, log)
}

/// A thread running a client against one mirror in a loop (update, list
/// package names, download all of them) until stopped; every run is
/// classified and counted, and every run with problems is written, with
/// its output, to `problem_log`.
pub struct ClientLoop {
    pub name: String,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    tally: Arc<Mutex<Tally>>,
}

impl ClientLoop {
    pub fn start(
        name: &str,
        mut client: Box<dyn RepoClient>,
        removed: Arc<Removed>,
        grace: Duration,
        problem_log: &Path,
    ) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let (s, t) = (stop.clone(), tally.clone());
        let mut log = std::fs::File::create(problem_log).unwrap();
        let label = name.to_string();
        let handle = std::thread::spawn(move || {
            let started = Instant::now();
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let up = observe(client.as_mut(), "update", None, &removed, grace);
                record(&mut log, &label, i, started, &up);
                t.lock().unwrap().add(&up);
                let names = client.package_names();
                if !names.is_empty() && !s.load(Ordering::Relaxed) {
                    let dl = observe(client.as_mut(), "download", Some(&names), &removed, grace);
                    record(&mut log, &label, i, started, &dl);
                    t.lock().unwrap().add(&dl);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            drop(client);
        });
        ClientLoop {
            name: name.to_string(),
            stop,
            handle: Some(handle),
            tally,
        }
    }

    /// The counts so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap().clone()
    }

    /// Stops the loop after its current run; returns the counts.
    pub fn stop(&mut self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.tally()
    }
}

fn record(
    log: &mut std::fs::File,
    name: &str,
    i: u64,
    started: Instant,
    run: &crate::clients::ClientRun,
) {
    if run.ok() {
        return;
    }
    let _ = writeln!(
        log,
        "=== {name} iteration {i} {} ended {} UTC (+{:.1}s) exit {:?}",
        run.what,
        utc_time_of_day(),
        run.ended.duration_since(started).as_secs_f64(),
        run.code
    );
    for (c, k) in &run.problems {
        let _ = writeln!(log, "  [{}] {k}", c.label());
    }
    for l in run.output.lines().filter(|l| !l.starts_with("Get:")) {
        let _ = writeln!(log, "    | {l}");
    }
}

impl Drop for ClientLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A naive one-stage mirror: `rsync -a --delete SRC/ DST/` in a loop, each
/// run killed by PID when stopped. `bwlimit_kib` (0 = none) models the
/// link to a remote mirror.
pub struct RsyncLoop {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    pub runs: Arc<AtomicU64>,
    pub failures: Arc<AtomicU64>,
}

impl RsyncLoop {
    /// Runs one sync now (unlimited), then loops in a thread.
    pub fn start(src: &Path, dst: &Path, bwlimit_kib: u64, log: &Path) -> RsyncLoop {
        std::fs::create_dir_all(dst).unwrap();
        let cmd = |bw: u64| {
            let mut c = Command::new("rsync");
            c.args(["-a", "--delete"]);
            if bw > 0 {
                c.arg(format!("--bwlimit={bw}"));
            }
            c.arg(format!("{}/", src.display()))
                .arg(format!("{}/", dst.display()));
            c
        };
        let (code, out) = crate::clients::run_timed(cmd(0), log, Duration::from_secs(120));
        assert_eq!(code, Some(0), "first rsync failed: {out}");
        let stop = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicU64::new(1));
        let failures = Arc::new(AtomicU64::new(0));
        let (s, r, f) = (stop.clone(), runs.clone(), failures.clone());
        let log = log.to_path_buf();
        let mut c = cmd(bwlimit_kib);
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(file) = std::fs::File::create(&log) else {
                    break;
                };
                c.stdout(file.try_clone().unwrap())
                    .stderr(file)
                    .stdin(std::process::Stdio::null());
                let Ok(mut child) = c.spawn() else { break };
                let ok = loop {
                    if let Ok(Some(st)) = child.try_wait() {
                        break st.success();
                    }
                    if s.load(Ordering::Relaxed) {
                        // SAFETY: signalling our own child by its PID;
                        // rsync stops its helper processes on SIGTERM.
                        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                        let _ = child.wait();
                        break true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                };
                r.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RsyncLoop {
            stop,
            handle: Some(handle),
            runs,
            failures,
        }
    }

    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RsyncLoop {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a live tree differs from the expected one.
#[derive(Debug, Default)]
pub struct TreeDiff {
    /// In the expected tree, not in the live one.
    pub missing: Vec<String>,
    /// In the live tree, not in the expected one (not temp files).
    pub extra: Vec<String>,
    /// `.shoal-tmp.*` files in the live tree.
    pub temp_files: Vec<String>,
    /// In both, with different bytes.
    pub differ: Vec<String>,
}

impl TreeDiff {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.temp_files.is_empty()
            && self.differ.is_empty()
    }
}

/// Compares every file (bytes, symlink targets) of `live` with `expected`,
/// skipping `skip` prefixes in both.
pub fn diff_trees(expected: &Path, live: &Path, skip: &[&str]) -> TreeDiff {
    let a = crate::agents::tree(expected, skip);
    let b = crate::agents::tree(live, skip);
    let mut d = TreeDiff::default();
    for (k, v) in &a {
        match b.get(k) {
            None => d.missing.push(k.clone()),
            Some(w) if w != v => d.differ.push(k.clone()),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        if k.contains(".shoal-tmp.") {
            d.temp_files.push(k.clone());
        } else {
            d.extra.push(k.clone());
        }
    }
    d
}

/// Waits (bounded) until every agent in `agents` reports
/// `generation_applied >= generation`; returns how long it took, or the
/// agents still behind with their status.
pub fn wait_converged(
    agents: &[&Agent],
    generation: u64,
    limit: Duration,
) -> Result<Duration, String> {
    let t = Instant::now();
    loop {
        let behind: Vec<String> = agents
            .iter()
            .filter_map(|a| {
                let st = a.status();
                match st {
                    Some(s) if s.generation_applied >= generation => None,
                    Some(s) => Some(format!(
                        "{} at generation {} (known {}, state {}, last_error {:?})",
                        a.proc.name,
                        s.generation_applied,
                        s.generation_known,
                        s.state,
                        s.last_error
                    )),
                    None => Some(format!("{}: /status does not answer", a.proc.name)),
                }
            })
            .collect();
        if behind.is_empty() {
            return Ok(t.elapsed());
        }
        if t.elapsed() > limit {
            return Err(behind.join("; "));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (bounded) for `pending_deletions == 0` on `agent`.
pub fn wait_no_pending_deletions(agent: &Agent, limit: Duration) -> Result<(), String> {
    let t = Instant::now();
    loop {
        let st = agent.status();
        if st
            .as_ref()
            .map(|s| s.pending_deletions == 0)
            .unwrap_or(false)
        {
            return Ok(());
        }
        if t.elapsed() > limit {
            return Err(format!(
                "{} still has {:?} pending deletions after {limit:?}",
                agent.proc.name,
                st.map(|s| s.pending_deletions)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// One line per category for a tally, for failure messages.
pub fn describe(t: &Tally) -> String {
    Category::ALL
        .iter()
        .filter(|c| t.count(**c) > 0)
        .map(|c| {
            format!(
                "{}: {} runs, e.g. {}",
                c.label(),
                t.count(*c),
                t.samples.get(c).map(|s| s.join(" / ")).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}
