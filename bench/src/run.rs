//! Running things for the benchmarks: agents and rsync in namespaces,
//! waiting on them, reading their status, stopping them, and Ctrl-C.

use anyhow::{anyhow, bail, Context, Result};
use shoal_e2e::netns::Host;
use shoal_status::Status;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// SIGINT and SIGTERM set a flag; every wait checks it and fails, so the
/// error unwinds through the owners of the namespaces, whose `Drop` tears
/// them down.
pub fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe.
    unsafe {
        libc::signal(
            libc::SIGINT,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
        libc::signal(
            libc::SIGTERM,
            on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails once Ctrl-C was pressed.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps, but wakes for Ctrl-C.
pub fn sleep(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    check()
}

/// The scratch folder.
pub enum Work {
    Given(PathBuf),
    Temp(tempfile::TempDir),
}

impl Work {
    pub fn path(&self) -> &Path {
        match self {
            Work::Given(p) => p,
            Work::Temp(t) => t.path(),
        }
    }
    pub fn keep(self) -> PathBuf {
        match self {
            Work::Given(p) => p,
            Work::Temp(t) => t.keep(),
        }
    }
}

/// A tmpfs mounted for the run (trees of many tiny files are written and
/// removed in seconds there, not minutes); unmounted on drop.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size_gb: u64) -> Result<Tmpfs> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        let c = |s: &str| std::ffi::CString::new(s).expect("no NUL");
        let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())?;
        // tmpfs allows about one inode per two pages of RAM by default: a
        // mirror of a million tiny files (its tree, its packs, the origin's
        // tree) runs out of inodes long before it runs out of space.
        let inodes = size_gb * 1_000_000;
        let data = c(&format!("size={size_gb}g,nr_inodes={inodes},mode=0755"));
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c("shoal-bench").as_ptr(),
                target.as_ptr(),
                c("tmpfs").as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr() as *const libc::c_void,
            )
        };
        if rc != 0 {
            bail!(
                "cannot mount a tmpfs on {}: {} (use --tmpfs-gb 0 to work on disk)",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(&self.path);
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Unmounts `path`, retrying for 5 s while it is busy, then detaching it
/// lazily. A loop device mount sets up (`mount -o loop`) is freed with it.
fn unmount(path: &Path) {
    let Ok(target) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    for _ in 0..20 {
        // SAFETY: a valid NUL-terminated path.
        if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    eprintln!(
        "shoal-bench: {} is busy; detaching it lazily",
        path.display()
    );
    // SAFETY: as above.
    unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

/// An ext4 file system of one bench host's own: a sparse image in the
/// scratch folder, loop-mounted; unmounted and removed on drop. Hosts on
/// separate file systems flush (syncfs) only their own writes, as separate
/// machines do, and a tree of a million files goes with one unlink of its
/// image rather than a million.
pub struct Disk {
    mount: PathBuf,
    image: PathBuf,
}

impl Disk {
    /// A fresh file system of `bytes` (sparse) with room for `inodes`
    /// files, mounted at `mount`; its image is `image`.
    pub fn new(image: &Path, mount: &Path, bytes: u64, inodes: u64) -> Result<Disk> {
        for d in [image.parent().unwrap_or(Path::new("/")), mount] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        std::fs::File::create(image)
            .and_then(|f| f.set_len(bytes))
            .with_context(|| format!("creating the disk image {}", image.display()))?;
        let run = |cmd: &mut std::process::Command| -> Result<()> {
            let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
            if !out.status.success() {
                bail!(
                    "{cmd:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(())
        };
        // The image is sparse, so its unwritten inode tables read as zeros:
        // they need no initializing, now or in the background.
        run(std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0", "-N", &inodes.to_string()])
            .args(["-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"])
            .arg(image))?;
        let disk = Disk {
            mount: mount.to_path_buf(),
            image: image.to_path_buf(),
        };
        run(std::process::Command::new("mount")
            .args(["-o", "loop,noinit_itable"])
            .arg(image)
            .arg(mount))?;
        let _ = std::fs::remove_dir(mount.join("lost+found"));
        Ok(disk)
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        unmount(&self.mount);
        let _ = std::fs::remove_file(&self.image);
        let _ = std::fs::remove_dir(&self.mount);
    }
}

/// What every part needs.
pub struct Ctx {
    pub cli: crate::Cli,
    pub agent: PathBuf,
    pub work: PathBuf,
    /// Where trees of many small files go (a tmpfs unless --tmpfs-gb 0).
    pub small: PathBuf,
    pub key: PathBuf,
    pub pubkey: String,
}

impl Ctx {
    pub fn new(cli: crate::Cli, agent: PathBuf, work: PathBuf, small: PathBuf) -> Result<Ctx> {
        let key = work.join("origin.key");
        let _ = std::fs::remove_file(&key);
        let out = std::process::Command::new(&agent)
            .arg("keygen")
            .arg("--out")
            .arg(&key)
            .output()
            .with_context(|| format!("running {} keygen", agent.display()))?;
        if !out.status.success() {
            bail!(
                "shoal-agent keygen failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let pubkey = String::from_utf8(out.stdout)?.trim().to_string();
        Ok(Ctx {
            cli,
            agent,
            work,
            small,
            key,
            pubkey,
        })
    }

    /// A fresh folder under the scratch folder.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        fresh(&self.work.join(name))
    }

    /// A fresh folder for a tree of many small files.
    pub fn small_dir(&self, name: &str) -> Result<PathBuf> {
        fresh(&self.small.join(name))
    }

    pub fn rate_bits(&self) -> f64 {
        self.cli.rate_mbit as f64 * 1e6
    }
}

/// An empty folder at `d` (removing what was there).
fn fresh(d: &Path) -> Result<PathBuf> {
    if d.exists() {
        std::fs::remove_dir_all(d).with_context(|| format!("removing {}", d.display()))?;
    }
    std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    Ok(d.to_path_buf())
}

/// HTTP port every agent listens on inside its namespace; BitTorrent is
/// the next one.
pub const HTTP_PORT: u16 = 7000;

/// A `shoal-agent` running in a host's namespace.
pub struct NsAgent<'a> {
    pub host: &'a Host,
    pub name: String,
    pub pid: u32,
    pub state: PathBuf,
    pub repo: PathBuf,
    pub log: PathBuf,
    argv: Vec<String>,
    agent: PathBuf,
    pub started: Instant,
}

impl<'a> NsAgent<'a> {
    /// Starts an origin on `host` publishing `repo` only when asked.
    pub fn origin(ctx: &Ctx, host: &'a Host, repo: &Path, state: &Path) -> Result<NsAgent<'a>> {
        let a = host.addr();
        let argv: Vec<String> = vec![
            "--log-format".into(),
            "json".into(),
            "origin".into(),
            "--name".into(),
            "origin".into(),
            "--profile".into(),
            "debian".into(),
            "--publish-interval".into(),
            "0s".into(),
            // The bench publishes right after it changes the archive.
            "--quiet-period".into(),
            "0s".into(),
            "--repo".into(),
            repo.display().to_string(),
            "--state".into(),
            state.display().to_string(),
            "--key".into(),
            ctx.key.display().to_string(),
            "--listen".into(),
            format!("{a}:{HTTP_PORT}"),
            "--peer-listen".into(),
            format!("{a}:{}", HTTP_PORT + 1),
            "--announce-interval".into(),
            "1s".into(),
        ];
        Self::start(ctx, host, "origin", repo, state, argv)
    }

    /// Starts a mirror on `host` following `upstream`.
    pub fn mirror(
        ctx: &Ctx,
        host: &'a Host,
        name: &str,
        upstream: &str,
        repo: &Path,
        state: &Path,
    ) -> Result<NsAgent<'a>> {
        let a = host.addr();
        let argv: Vec<String> = vec![
            "--log-format".into(),
            "json".into(),
            "mirror".into(),
            "--name".into(),
            name.into(),
            "--profile".into(),
            "debian".into(),
            "--origin-key".into(),
            ctx.pubkey.clone(),
            "--upstream".into(),
            upstream.into(),
            "--repo".into(),
            repo.display().to_string(),
            "--state".into(),
            state.display().to_string(),
            "--listen".into(),
            format!("{a}:{HTTP_PORT}"),
            "--peer-listen".into(),
            format!("{a}:{}", HTTP_PORT + 1),
            "--poll-interval".into(),
            "1s".into(),
            "--announce-interval".into(),
            "1s".into(),
        ];
        Self::start(ctx, host, name, repo, state, argv)
    }

    fn start(
        ctx: &Ctx,
        host: &'a Host,
        name: &str,
        repo: &Path,
        state: &Path,
        argv: Vec<String>,
    ) -> Result<NsAgent<'a>> {
        std::fs::create_dir_all(repo)?;
        std::fs::create_dir_all(state)?;
        let log = state
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join(format!("{name}.log"));
        let mut a = NsAgent {
            host,
            name: name.into(),
            pid: 0,
            state: state.to_path_buf(),
            repo: repo.to_path_buf(),
            log,
            argv,
            agent: ctx.agent.clone(),
            started: Instant::now(),
        };
        a.spawn()?;
        Ok(a)
    }

    fn spawn(&mut self) -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let mut c = self.host.command(&self.agent);
        c.args(&self.argv)
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        self.started = Instant::now();
        self.pid = self.host.spawn_command(c)?;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("http://{}:{HTTP_PORT}", self.host.addr())
    }

    /// `/status` over the admin socket (it works across namespaces, and
    /// the bench runs in the root namespace, which cannot reach in).
    pub fn status(&self) -> Result<Status> {
        let line = admin(&self.state, "status", Duration::from_secs(30))?;
        serde_json::from_str(&line).with_context(|| format!("{}: bad status JSON", self.name))
    }

    fn alive(&self) -> Result<()> {
        if !self.host.is_running(self.pid) {
            bail!(
                "{} (pid {}) exited; last log lines:\n{}",
                self.name,
                self.pid,
                self.log_tail(15)
            );
        }
        Ok(())
    }

    /// Waits until the status satisfies `cond`; fails after `limit` (a bound
    /// against hangs), when the agent exits, or on Ctrl-C.
    pub fn wait(
        &self,
        what: &str,
        limit: Duration,
        mut cond: impl FnMut(&Status) -> bool,
    ) -> Result<Status> {
        let t = Instant::now();
        loop {
            check()?;
            self.alive()?;
            if let Ok(s) = self.status() {
                if cond(&s) {
                    return Ok(s);
                }
                if t.elapsed() > limit {
                    bail!(
                        "{}: timed out after {limit:?} waiting for {what} (state {}, applied {}, \
                         last error {:?}); last log lines:\n{}",
                        self.name,
                        s.state,
                        s.generation_applied,
                        s.last_error,
                        self.log_tail(10)
                    );
                }
            } else if t.elapsed() > limit {
                bail!(
                    "{}: no status after {limit:?}; last log lines:\n{}",
                    self.name,
                    self.log_tail(15)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_up(&self) -> Result<Status> {
        self.wait("its status", Duration::from_secs(120), |_| true)
    }

    /// Waits until the agent holds `generation` (an origin: published it;
    /// an origin publishes once by itself when it starts).
    pub fn wait_generation(&self, generation: u64, limit: Duration) -> Result<Status> {
        self.wait(&format!("generation {generation}"), limit, |s| {
            s.generation_applied >= generation && s.packs.iter().all(|p| p.state == "seeding")
        })
    }

    /// Seconds the last publish took, from the origin's `published` log line.
    pub fn last_publish_secs(&self) -> Result<f64> {
        shoal_bench::logs::last_num(&self.log_text(), "published", "seconds").with_context(|| {
            format!(
                "{}: no 'published' line in {}",
                self.name,
                self.log.display()
            )
        })
    }

    /// Asks the origin to publish; returns the generation and how long the
    /// call took.
    pub fn publish(&self) -> Result<(u64, f64)> {
        self.publish_call("publish")
    }

    /// Publishes looking only at `paths` (relative to the repository), as
    /// an archive's hook does (`shoal-agent publish --changes`); returns
    /// the generation and the seconds the call took.
    pub fn publish_changes(&self, paths: &[String]) -> Result<(u64, f64)> {
        self.publish_call(&format!(
            "publish-changes {}\n{}",
            paths.len(),
            paths.join("\n")
        ))
    }

    /// One publish request on the admin socket, timed; the reply is
    /// `ok <generation>`.
    fn publish_call(&self, request: &str) -> Result<(u64, f64)> {
        let t = Instant::now();
        let r = admin(&self.state, request, Duration::from_secs(3600))?;
        let secs = t.elapsed().as_secs_f64();
        let g = r
            .strip_prefix("ok ")
            .and_then(|g| g.parse().ok())
            .ok_or_else(|| anyhow!("{}: unexpected publish reply '{r}'", self.name))?;
        Ok((g, secs))
    }

    /// SIGTERM, wait (bounded), then SIGKILL.
    pub fn stop(&self) -> Result<()> {
        signal(self.pid, libc::SIGTERM);
        let t = Instant::now();
        while self.host.is_running(self.pid) {
            if t.elapsed() > Duration::from_secs(20) {
                eprintln!("{} ignored SIGTERM for 20 s; killing it", self.name);
                signal(self.pid, libc::SIGKILL);
                while self.host.is_running(self.pid) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Adds command-line arguments for the next start ([`Self::restart`]).
    pub fn add_args(&mut self, args: &[&str]) {
        self.argv.extend(args.iter().map(|a| a.to_string()));
    }

    /// Bytes the agent has read so far (`rchar`).
    pub fn read_chars(&self) -> Result<u64> {
        self.check_exe()?;
        shoal_bench::procfs::read_chars(self.pid)
    }

    /// Stops and starts the same agent again.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    pub fn peak_rss(&self) -> Result<u64> {
        self.check_exe()?;
        crate::run::peak_rss(self.pid)
    }

    pub fn rss(&self) -> Result<u64> {
        self.check_exe()?;
        shoal_bench::procfs::rss(self.pid)
    }

    /// The PID must be the agent itself (`ip netns exec` execs it), or the
    /// memory figures would be the wrapper's.
    fn check_exe(&self) -> Result<()> {
        match shoal_bench::procfs::exe_name(self.pid) {
            Some(n) if n == "shoal-agent" => Ok(()),
            other => bail!(
                "pid {} runs {:?}, not shoal-agent: cannot read the agent's memory",
                self.pid,
                other
            ),
        }
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| shoal_bench::procfs::cpu_seconds(&s))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self, n: usize) -> String {
        let s = self.log_text();
        let l: Vec<&str> = s.lines().collect();
        l[l.len().saturating_sub(n)..].join("\n")
    }
}

pub fn peak_rss(pid: u32) -> Result<u64> {
    shoal_bench::procfs::peak_rss(pid)
}

/// One request line on an agent's admin socket; returns the reply line.
pub fn admin(state: &Path, request: &str, timeout: Duration) -> Result<String> {
    let path = state.join("admin.sock");
    let mut s =
        UnixStream::connect(&path).with_context(|| format!("connecting to {}", path.display()))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(format!("{request}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .with_context(|| format!("reading the reply to '{request}' from {}", path.display()))?;
    let line = line.trim_end().to_string();
    if let Some(e) = line.strip_prefix("error: ") {
        bail!("{}: {request}: {e}", path.display());
    }
    if line.is_empty() {
        bail!("{}: empty reply to '{request}'", path.display());
    }
    Ok(line)
}

pub fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(p) = libc::pid_t::try_from(pid) {
        if p > 0 {
            // SAFETY: signalling a process we started, by its PID.
            unsafe {
                libc::kill(p, sig);
            }
        }
    }
}

/// An rsync daemon serving `root` as module `repo` on the host's address.
pub struct Rsyncd<'a> {
    host: &'a Host,
    pid: u32,
    pub url: String,
}

impl<'a> Rsyncd<'a> {
    pub fn start(host: &'a Host, root: &Path, dir: &Path) -> Result<Rsyncd<'a>> {
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\nmax connections = 0\npid file = {}\nlog file = {}\n\
                 [repo]\n    path = {}\n    read only = yes\n    uid = root\n    gid = root\n",
                dir.join("rsyncd.pid").display(),
                dir.join("rsyncd.log").display(),
                root.display()
            ),
        )?;
        let addr = host.addr();
        let mut c = host.command("rsync");
        c.arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", conf.display()))
            .arg(format!("--address={addr}"))
            .arg("--port=873")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = host.spawn_command(c)?;
        let d = Rsyncd {
            host,
            pid,
            url: format!("rsync://{addr}/repo/"),
        };
        // Wait until it accepts connections (from inside the namespace).
        let t = Instant::now();
        loop {
            check()?;
            let ok = host.in_netns(move || {
                std::net::TcpStream::connect_timeout(&(addr, 873).into(), Duration::from_secs(1))
                    .is_ok()
            })?;
            if ok {
                return Ok(d);
            }
            if !host.is_running(pid) || t.elapsed() > Duration::from_secs(20) {
                bail!(
                    "rsync --daemon on {} did not come up; see {}",
                    host.name(),
                    dir.join("rsyncd.log").display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&self) {
        signal(self.pid, libc::SIGTERM);
        let t = Instant::now();
        while self.host.is_running(self.pid) && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.host.is_running(self.pid) {
            signal(self.pid, libc::SIGKILL);
        }
    }
}

impl Drop for Rsyncd<'_> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `rsync -a --delete URL DEST/` on each (host, dest) at the same
/// moment; returns each one's seconds until it finished. Fails if any
/// rsync fails.
pub fn rsync_all(jobs: &[(&Host, PathBuf)], url: &str, log_dir: &Path) -> Result<Vec<f64>> {
    let t = Instant::now();
    let mut children: Vec<(Child, PathBuf, Option<f64>)> = Vec::new();
    for (i, (h, dest)) in jobs.iter().enumerate() {
        std::fs::create_dir_all(dest)?;
        let log = log_dir.join(format!("rsync-{i}.log"));
        let f = std::fs::File::create(&log)?;
        let mut c = h.command("rsync");
        c.args(["-a", "--delete", url])
            .arg(format!("{}/", dest.display()))
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        let child = c.spawn().context("starting rsync")?;
        children.push((child, log, None));
    }
    let result = (|| -> Result<Vec<f64>> {
        loop {
            check()?;
            let mut all = true;
            for (c, log, done) in children.iter_mut() {
                if done.is_some() {
                    continue;
                }
                match c.try_wait()? {
                    Some(st) => {
                        if !st.success() {
                            bail!(
                                "rsync failed ({st}): {}",
                                std::fs::read_to_string(log).unwrap_or_default()
                            );
                        }
                        *done = Some(t.elapsed().as_secs_f64());
                    }
                    None => all = false,
                }
            }
            if all {
                return Ok(children.iter().map(|c| c.2.unwrap_or(0.0)).collect());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })();
    // On an error, stop the ones still running (by PID; they are ours).
    for (c, _, _) in children.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    result
}

/// Files and bytes under `root` (regular files; `skip` prefixes left out).
pub fn tree_stats(root: &Path, skip: &[&str]) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p).to_string_lossy();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                files += 1;
                bytes += e.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

/// Fails unless `root` holds exactly `files` files of `bytes` bytes.
pub fn expect_tree(root: &Path, files: u64, bytes: u64, who: &str) -> Result<()> {
    let (f, b) = tree_stats(root, &["project/trace"])?;
    if (f, b) != (files, bytes) {
        bail!(
            "{who}: {} holds {f} files / {b} bytes, expected {files} / {bytes}",
            root.display()
        );
    }
    Ok(())
}

/// Reads every file once, so the page cache holds the tree.
pub fn warm_cache(root: &Path) -> Result<u64> {
    let mut total = 0;
    let mut stack = vec![root.to_path_buf()];
    let mut buf = vec![0u8; 1 << 20];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else {
                let mut f = std::fs::File::open(e.path())?;
                loop {
                    let n = std::io::Read::read(&mut f, &mut buf)?;
                    if n == 0 {
                        break;
                    }
                    total += n as u64;
                }
            }
        }
        check()?;
    }
    Ok(total)
}

/// Root-namespace byte counters of a host's veth: what the host sent
/// (the bridge side receives it) and received.
pub fn host_bytes(h: &Host) -> Result<(u64, u64)> {
    let (rx, tx) = shoal_bench::procfs::if_bytes(h.veth())?;
    Ok((rx, tx))
}
