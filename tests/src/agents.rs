//! Running real `shoal-agent` processes on loopback addresses and reading
//! their `/status`. Every process is killed by its PID when its handle is
//! dropped, also when a test fails.

use shoal_status::Status;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// A child process that is killed (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr to `log`.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let f = std::fs::File::create(log).expect("log file");
        cmd.stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .stdin(Stdio::null());
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            log: log.to_path_buf(),
            name: name.to_string(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGKILL now (a crash), and reap.
    pub fn crash(&mut self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// SIGTERM and wait up to 10 s, then SIGKILL. Returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        if let Ok(Some(s)) = self.child.try_wait() {
            return s.code();
        }
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.crash();
        None
    }

    /// Waits for the process to exit by itself (bounded).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let t = Instant::now();
        while t.elapsed() < limit {
            if let Ok(Some(s)) = self.child.try_wait() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "--- last log lines of {} ---\n{}",
                self.name,
                self.log_tail(30)
            );
        }
    }
}

static NEXT_IP: AtomicU8 = AtomicU8::new(0);

/// A fresh loopback address for one agent (127.<pid-based>.<n>.1 style),
/// so tests in parallel never share addresses.
pub fn fresh_ip() -> std::net::IpAddr {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed);
    let p = (std::process::id() % 200) as u8 + 20;
    format!("127.{p}.{n}.1").parse().unwrap()
}

/// A free TCP port on `ip`.
pub fn free_port(ip: std::net::IpAddr) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Addresses for one agent: HTTP and BitTorrent.
pub fn addrs() -> (SocketAddr, SocketAddr) {
    let ip = fresh_ip();
    let a = free_port(ip);
    let mut b = free_port(ip);
    while b == a {
        b = free_port(ip);
    }
    (SocketAddr::new(ip, a), SocketAddr::new(ip, b))
}

/// GET http://addr/status, or None while it is not answering.
pub fn status(http: SocketAddr) -> Option<Status> {
    let r = ureq::get(&format!("http://{http}/status"))
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?;
    serde_json::from_reader(r.into_reader()).ok()
}

/// GET a URL's body as text.
pub fn get_text(url: &str) -> Option<String> {
    ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .ok()?
        .into_string()
        .ok()
}

/// Polls `cond` every 200 ms until it holds; panics with `what` after
/// `limit` (a bound against hangs, not a timing assertion).
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A running agent.
pub struct Agent {
    pub proc: Proc,
    pub http: SocketAddr,
    pub peer: SocketAddr,
    pub repo: PathBuf,
    pub state: PathBuf,
}

impl Agent {
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }
    pub fn status(&self) -> Option<Status> {
        status(self.http)
    }
    /// Waits until /status answers.
    pub fn wait_up(&self) {
        wait_for(
            &format!("{} to answer /status", self.proc.name),
            Duration::from_secs(60),
            || self.status().is_some(),
        );
    }
    /// Waits until the agent has applied `generation`.
    pub fn wait_generation(&self, generation: u64) {
        wait_for(
            &format!("{} to apply generation {generation}", self.proc.name),
            Duration::from_secs(180),
            || {
                self.status()
                    .map(|s| s.generation_applied >= generation)
                    .unwrap_or(false)
            },
        );
    }
}

/// Creates an origin key pair in `dir`; returns (key file, public key).
pub fn keygen(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("origin.key");
    let out = Command::new(crate::bin("shoal-agent"))
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        key,
        String::from_utf8(out.stdout).unwrap().trim().to_string(),
    )
}

/// Starts an origin for `repo` (publishing only on request unless
/// `extra` says otherwise).
pub fn start_origin(
    dir: &Path,
    name: &str,
    repo: &Path,
    key: &Path,
    profile: &str,
    extra: &[&str],
) -> Agent {
    let (http, peer) = addrs();
    let state = dir.join(format!("{name}-state"));
    let mut cmd = Command::new(crate::bin("shoal-agent"));
    cmd.args(["origin", "--name", name, "--profile", profile]);
    if !extra.contains(&"--publish-interval") {
        cmd.args(["--publish-interval", "0s"]);
    }
    cmd.arg("--repo")
        .arg(repo)
        .arg("--state")
        .arg(&state)
        .arg("--key")
        .arg(key)
        .args([
            "--listen",
            &http.to_string(),
            "--peer-listen",
            &peer.to_string(),
        ])
        .args(["--announce-interval", "1s"]);
    // Tests publish right after writing: no quiet period unless asked.
    if !extra.contains(&"--quiet-period") {
        cmd.args(["--quiet-period", "0s"]);
    }
    cmd.args(extra);
    let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")));
    let a = Agent {
        proc,
        http,
        peer,
        repo: repo.to_path_buf(),
        state,
    };
    a.wait_up();
    a
}

/// Starts a mirror following `upstreams`.
pub fn start_mirror(
    dir: &Path,
    name: &str,
    pubkey: &str,
    upstreams: &[String],
    extra: &[&str],
) -> Agent {
    let repo = dir.join(format!("{name}-repo"));
    start_mirror_in(dir, name, &repo, pubkey, upstreams, extra)
}

/// Starts a mirror following `upstreams` whose live tree is `repo` (for
/// example a network file system mount); its state and log stay in `dir`.
pub fn start_mirror_in(
    dir: &Path,
    name: &str,
    repo: &Path,
    pubkey: &str,
    upstreams: &[String],
    extra: &[&str],
) -> Agent {
    let state = dir.join(format!("{name}-state"));
    start_mirror_at(dir, name, repo, &state, pubkey, upstreams, extra)
}

/// Starts a mirror whose live tree is `repo` and state folder `state`
/// (for example both on one small file system); its log stays in `dir`.
pub fn start_mirror_at(
    dir: &Path,
    name: &str,
    repo: &Path,
    state: &Path,
    pubkey: &str,
    upstreams: &[String],
    extra: &[&str],
) -> Agent {
    let (http, peer) = addrs();
    let repo = repo.to_path_buf();
    let state = state.to_path_buf();
    let mut cmd = Command::new(crate::bin("shoal-agent"));
    cmd.args(["mirror", "--name", name, "--origin-key", pubkey])
        .arg("--repo")
        .arg(&repo)
        .arg("--state")
        .arg(&state)
        .args([
            "--listen",
            &http.to_string(),
            "--peer-listen",
            &peer.to_string(),
        ]);
    for (flag, default) in [("--poll-interval", "1s"), ("--announce-interval", "1s")] {
        if !extra.contains(&flag) {
            cmd.args([flag, default]);
        }
    }
    for u in upstreams {
        cmd.args(["--upstream", u]);
    }
    cmd.args(extra);
    let proc = Proc::spawn(name, cmd, &dir.join(format!("{name}.log")));
    let a = Agent {
        proc,
        http,
        peer,
        repo,
        state,
    };
    a.wait_up();
    a
}

/// Asks the origin with this state dir to publish (waiting, as archive
/// hooks do, while files changed within its quiet period: origins a
/// deployment tool configured keep the default); returns the generation.
pub fn publish(state: &Path) -> u64 {
    let out = Command::new(crate::bin("shoal-agent"))
        .arg("publish")
        .arg("--state")
        .arg(state)
        .args(["--wait", "2m"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    s.trim()
        .strip_prefix("ok ")
        .and_then(|g| g.parse().ok())
        .unwrap_or_else(|| panic!("unexpected publish reply '{s}'"))
}

/// Every regular file and symlink under `root` (relative path → content
/// or link target), skipping `skip` prefixes.
pub fn tree(root: &Path, skip: &[&str]) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(rel, format!("-> {}", t.display()).into_bytes());
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Asserts two trees hold the same files with the same bytes.
pub fn assert_same_tree(a: &Path, b: &Path, skip: &[&str]) {
    let ta = tree(a, skip);
    let tb = tree(b, skip);
    let ka: Vec<&String> = ta.keys().collect();
    let kb: Vec<&String> = tb.keys().collect();
    assert_eq!(
        ka,
        kb,
        "{} and {} hold different paths",
        a.display(),
        b.display()
    );
    for (k, v) in &ta {
        assert!(
            tb[k] == *v,
            "{k} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}
