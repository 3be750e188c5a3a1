//! A throw-away multi-host network made of Linux network namespaces, for tests
//! and benchmarks that need several "hosts" (GlusterFS peers, an sshd to
//! bootstrap, mirrors exchanging BitTorrent traffic).
//!
//! [`TestNet::new`] creates a bridge in the root namespace and `n` network
//! namespaces, each joined to the bridge by a veth pair. Inside namespace *i*
//! the interface is called `eth0` and has the address `10.231.X.i/24`
//! (i = 1..=n). That subnet exists only inside these namespaces: the bridge
//! has no address, the namespaces have no default route, so nothing can leave
//! (`ip route get 1.1.1.1` says "Network is unreachable") and the root
//! namespace cannot reach in either. `X` is picked per net with a `flock` on a
//! lock file, so concurrent tests (threads or processes) get different
//! subnets.
//!
//! Names are unique per run and short enough for interface names (at most 15
//! bytes): `<prefix ≤3><pid base36><X hex>` plus a suffix, for example
//! namespace `glu1x9k0a-2`, bridge `glu1x9k0abr`, root-side veth
//! `glu1x9k0av2`.
//!
//! Running things on a host:
//! * [`Host::exec`] / [`Host::spawn`] run a program via `ip netns exec`, which
//!   also gives it a private mount namespace (mounts made inside stay inside).
//! * [`Host::command_root_mounts`] runs a program in the host's network
//!   namespace but the *root* mount namespace (`nsenter --net`), for mounts
//!   that processes outside must see, such as a FUSE client mount.
//! * [`Host::in_netns`] runs a Rust closure on a thread switched into the
//!   host's network namespace (`setns`), so test code can open sockets "on"
//!   that host without a helper program.
//! * [`Host::shape`] limits the host's bandwidth with `tc tbf` on both ends of
//!   its veth (there is no netem here; emulate delay in user space).
//!
//! Teardown happens in [`Drop`], also after a failed assertion, and never
//! panics, in this order:
//! 1. mounts registered with [`Host::track_mount`] are unmounted (retried,
//!    then detached lazily), while the processes serving them still run;
//! 2. spawned children get SIGTERM, and so does every other process still
//!    inside one of our namespaces (daemons that our children started, such
//!    as gluster brick processes, found by comparing `/proc/PID/ns/net` with
//!    our namespace); after 5 seconds the remaining ones get SIGKILL;
//! 3. the namespaces, the veths and the bridge are deleted.
//!
//! Only resources this value created are touched: processes by PID (our
//! children, or processes living in a namespace we created), interfaces and
//! namespaces by the names we generated. A test process that is killed with
//! SIGKILL cannot run `Drop`; its leftovers carry its PID in their names.

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::OsStr;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// First two octets of every test subnet.
const NET_PREFIX: [u8; 2] = [10, 231];

/// How long processes get between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A bridge and `n` namespaces; see the module documentation.
pub struct TestNet {
    tag: String,
    subnet: u8,
    bridge: Option<String>,
    hosts: Vec<Host>,
    dir: Option<tempfile::TempDir>,
    _subnet_lock: File,
}

/// One namespace on a [`TestNet`].
pub struct Host {
    index: usize,
    ns: String,
    ns_created: bool,
    veth_root: String,
    veth_created: bool,
    addr: Ipv4Addr,
    dir: PathBuf,
    children: Mutex<Vec<Child>>,
    mounts: Mutex<Vec<PathBuf>>,
}

impl TestNet {
    /// Creates the bridge and `n_hosts` namespaces (1..=250). `prefix` (its
    /// first three ASCII letters or digits) makes names recognisable, e.g.
    /// `"gluster"` gives `glu…`. Needs root.
    pub fn new(prefix: &str, n_hosts: usize) -> Result<TestNet> {
        require_root("network namespaces")?;
        require_programs(&[("ip", "iproute2"), ("nsenter", "util-linux")])?;
        if !(1..=250).contains(&n_hosts) {
            bail!("TestNet::new: n_hosts must be 1..=250, not {n_hosts}");
        }
        let short: String = prefix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(3)
            .collect::<String>()
            .to_ascii_lowercase();
        let short = if short.is_empty() {
            "tn".to_string()
        } else {
            short
        };
        let (subnet, lock) = lock_subnet()?;
        let tag = format!("{short}{}{subnet:02x}", base36(std::process::id()));
        let dir = tempfile::Builder::new()
            .prefix(&format!("shoal-net-{tag}-"))
            .tempdir()
            .context("creating the test net's directory")?;
        let mut net = TestNet {
            tag: tag.clone(),
            subnet,
            bridge: None,
            hosts: Vec::new(),
            dir: Some(dir),
            _subnet_lock: lock,
        };
        // On any error below, dropping `net` removes what was made so far.
        let bridge = format!("{tag}br");
        run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
        net.bridge = Some(bridge.clone());
        // Keep the host's firewall out of our bridge (only this bridge is
        // affected); older kernels lack these options, which is fine.
        let _ = run(Command::new("ip").args([
            "link",
            "set",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "0",
            "nf_call_ip6tables",
            "0",
            "nf_call_arptables",
            "0",
        ]));
        run(Command::new("ip").args(["link", "set", &bridge, "up"]))?;
        for i in 1..=n_hosts {
            let host_dir = net.dir().join(format!("h{i}"));
            std::fs::create_dir_all(&host_dir)
                .with_context(|| format!("creating {}", host_dir.display()))?;
            net.hosts.push(Host {
                index: i,
                ns: format!("{tag}-{i}"),
                ns_created: false,
                veth_root: format!("{tag}v{i}"),
                veth_created: false,
                addr: Ipv4Addr::new(NET_PREFIX[0], NET_PREFIX[1], subnet, i as u8),
                dir: host_dir,
                children: Mutex::new(Vec::new()),
                mounts: Mutex::new(Vec::new()),
            });
            let peer = format!("{tag}p{i}");
            let h = net.hosts.last_mut().expect("just pushed");
            run(Command::new("ip").args(["netns", "add", &h.ns]))?;
            h.ns_created = true;
            run(Command::new("ip").args([
                "link",
                "add",
                &h.veth_root,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ]))?;
            h.veth_created = true;
            run(Command::new("ip").args(["link", "set", &peer, "netns", &h.ns]))?;
            let ns = h.ns.clone();
            let ip_ns = |args: &[&str]| -> Result<()> {
                run(Command::new("ip").arg("-n").arg(&ns).args(args))
            };
            ip_ns(&["link", "set", &peer, "name", "eth0"])?;
            ip_ns(&["addr", "add", &format!("{}/24", h.addr), "dev", "eth0"])?;
            ip_ns(&["link", "set", "eth0", "up"])?;
            ip_ns(&["link", "set", "lo", "up"])?;
            run(Command::new("ip").args(["link", "set", &h.veth_root, "master", &bridge]))?;
            run(Command::new("ip").args(["link", "set", &h.veth_root, "up"]))?;
        }
        Ok(net)
    }

    /// The hosts, in address order (`hosts()[0]` is `10.231.X.1`).
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Host `i`, 1-based like the addresses: `host(1)` is `10.231.X.1`.
    pub fn host(&self, i: usize) -> &Host {
        assert!(
            (1..=self.hosts.len()).contains(&i),
            "TestNet has hosts 1..={}, not {i}",
            self.hosts.len()
        );
        &self.hosts[i - 1]
    }

    /// The subnet, e.g. `10.231.7.0/24`.
    pub fn subnet(&self) -> String {
        format!("{}.{}.{}.0/24", NET_PREFIX[0], NET_PREFIX[1], self.subnet)
    }

    /// The unique tag in every name this net created.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Name of the bridge in the root namespace.
    pub fn bridge(&self) -> &str {
        self.bridge.as_deref().unwrap_or("")
    }

    /// Scratch directory of this net (removed on drop); each host has a
    /// subdirectory, see [`Host::dir`].
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("dir lives until drop").path()
    }
}

impl Host {
    /// 1-based index; the last octet of the address.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The network namespace's name (as in `ip netns list`).
    pub fn name(&self) -> &str {
        &self.ns
    }

    /// The host's address on the test subnet.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// A scratch directory for this host (under the net's directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root-namespace end of the host's veth (on the bridge).
    pub fn veth(&self) -> &str {
        &self.veth_root
    }

    /// `ip netns exec <ns> <program>`: runs in this host's network namespace
    /// and a private copy of the mount namespace (see the module docs).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// `nsenter --net=/run/netns/<ns> <program>`: this host's network
    /// namespace, but the root mount namespace, so that mounts it makes (a
    /// FUSE client, say) are visible to every process on the machine.
    pub fn command_root_mounts(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns)).arg(program);
        c
    }

    /// Runs `argv` on this host and returns its stdout; fails with the exit
    /// status, stdout and stderr when it does not exit 0.
    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("exec: empty argv"))?;
        let mut c = self.command(program);
        c.args(args);
        output_ok(&mut c)
    }

    /// Starts `argv` on this host in the background, with stdout and stderr
    /// appended to `<host dir>/<program>.log`. Returns the PID; the process
    /// is stopped when the net is dropped.
    pub fn spawn(&self, argv: &[&str]) -> Result<u32> {
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| anyhow!("spawn: empty argv"))?;
        let base = Path::new(program)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "process".into());
        let log_path = self.dir.join(format!("{base}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let mut c = self.command(program);
        c.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.spawn_command(c)
    }

    /// Starts a prepared command (usually from [`Host::command`]) and tracks
    /// it like [`Host::spawn`].
    pub fn spawn_command(&self, mut cmd: Command) -> Result<u32> {
        let child = cmd.spawn().with_context(|| format!("starting {cmd:?}"))?;
        let pid = child.id();
        lock(&self.children).push(child);
        Ok(pid)
    }

    /// Whether a process started with [`Host::spawn`] is still running.
    pub fn is_running(&self, pid: u32) -> bool {
        let mut children = lock(&self.children);
        children
            .iter_mut()
            .find(|c| c.id() == pid)
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Registers a mount point to unmount on drop, before processes are
    /// stopped (so a FUSE daemon can still answer the unmount).
    pub fn track_mount(&self, path: impl Into<PathBuf>) {
        lock(&self.mounts).push(path.into());
    }

    /// Limits this host's upload and download to `rate_bits_per_sec` each.
    pub fn shape(&self, rate_bits_per_sec: u64) -> Result<()> {
        self.shape_up_down(rate_bits_per_sec, rate_bits_per_sec)
    }

    /// Limits upload (`eth0` egress inside the namespace) and download (the
    /// bridge-side veth's egress) separately, with a `tbf` qdisc each.
    pub fn shape_up_down(&self, up_bits_per_sec: u64, down_bits_per_sec: u64) -> Result<()> {
        let tbf = |rate: u64| -> Vec<String> {
            // A burst of ~10 ms at full rate, but at least a few full frames.
            let burst = (rate / 8 / 100).max(16 * 1514);
            vec![
                "root".into(),
                "tbf".into(),
                "rate".into(),
                format!("{rate}bit"),
                "burst".into(),
                burst.to_string(),
                "latency".into(),
                "100ms".into(),
            ]
        };
        let mut up = self.command("tc");
        up.args(["qdisc", "replace", "dev", "eth0"])
            .args(tbf(up_bits_per_sec));
        output_ok(&mut up)?;
        let mut down = Command::new("tc");
        down.args(["qdisc", "replace", "dev", &self.veth_root])
            .args(tbf(down_bits_per_sec));
        output_ok(&mut down)?;
        Ok(())
    }

    /// Runs `f` on a new thread whose network namespace is this host's, and
    /// returns its result. Sockets opened inside belong to the host.
    pub fn in_netns<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.ns);
        let ns = File::open(&path).with_context(|| format!("opening {path}"))?;
        std::thread::spawn(move || -> Result<T> {
            // SAFETY: setns on a valid fd only changes this thread's network
            // namespace; the thread ends when `f` returns.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns({path}): {}", std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow!("the closure run in {} panicked", self.ns))?
    }

    /// PIDs of all processes whose network namespace is this host's.
    pub fn pids_in_netns(&self) -> Vec<u32> {
        let Ok(target) = std::fs::metadata(format!("/run/netns/{}", self.ns)) else {
            return Vec::new();
        };
        let me = std::process::id();
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return out;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            if let Ok(m) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
                if m.dev() == target.dev() && m.ino() == target.ino() && !is_zombie(pid) {
                    out.push(pid);
                }
            }
        }
        out
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        // 1. Mounts, while their servers still run.
        for h in &self.hosts {
            let mounts: Vec<PathBuf> = lock(&h.mounts).drain(..).rev().collect();
            for m in mounts {
                unmount(&m);
            }
        }
        // 2. Processes: our children and whatever still lives in our namespaces.
        let mut children: Vec<Child> = Vec::new();
        for h in &self.hosts {
            children.append(&mut lock(&h.children));
        }
        let strays = |hosts: &[Host], children: &[Child]| -> Vec<u32> {
            hosts
                .iter()
                .filter(|h| h.ns_created)
                .flat_map(|h| h.pids_in_netns())
                .filter(|p| !children.iter().any(|c| c.id() == *p))
                .collect()
        };
        for c in &children {
            signal(c.id(), libc::SIGTERM);
        }
        for p in strays(&self.hosts, &children) {
            signal(p, libc::SIGTERM);
        }
        let deadline = Instant::now() + TERM_GRACE;
        loop {
            children.retain_mut(|c| matches!(c.try_wait(), Ok(None)));
            let left = strays(&self.hosts, &children);
            if (children.is_empty() && left.is_empty()) || Instant::now() >= deadline {
                for c in &mut children {
                    eprintln!("netns teardown: pid {} ignored SIGTERM, killing it", c.id());
                    let _ = c.kill();
                    let _ = c.wait();
                }
                for p in left {
                    eprintln!("netns teardown: pid {p} ignored SIGTERM, killing it");
                    signal(p, libc::SIGKILL);
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // 3. Veths (deleting one end removes the pair), namespaces, bridge.
        for h in &self.hosts {
            if h.veth_created && link_exists(&h.veth_root) {
                if let Err(e) = run(Command::new("ip").args(["link", "delete", &h.veth_root])) {
                    if link_exists(&h.veth_root) {
                        eprintln!("netns teardown: {e:#}");
                    }
                }
            }
            if h.ns_created {
                if let Err(e) = run(Command::new("ip").args(["netns", "delete", &h.ns])) {
                    eprintln!("netns teardown: {e:#}");
                }
            }
        }
        if let Some(br) = self.bridge.take() {
            if let Err(e) = run(Command::new("ip").args(["link", "delete", &br])) {
                eprintln!("netns teardown: {e:#}");
            }
        }
        // 4. The scratch directory (after the mounts inside it are gone),
        // kept with its logs when the test is failing.
        if let Some(dir) = self.dir.take() {
            if std::thread::panicking() {
                let kept = dir.keep();
                eprintln!(
                    "netns teardown: the test failed; logs are kept in {}",
                    kept.display()
                );
                return;
            }
            let path = dir.path().to_path_buf();
            if let Err(e) = dir.close() {
                eprintln!("netns teardown: removing {}: {e}", path.display());
            }
        }
    }
}

/// Fails, naming the Debian packages to install, unless every program is
/// found on `PATH` (or in `/usr/sbin`, `/sbin`). `programs` pairs a program
/// with the package that provides it, e.g. `("glusterd", "glusterfs-server")`.
pub fn require_programs(programs: &[(&str, &str)]) -> Result<()> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from));
    let missing: Vec<(&str, &str)> = programs
        .iter()
        .filter(|(prog, _)| !dirs.iter().any(|d| d.join(prog).is_file()))
        .copied()
        .collect();
    if !missing.is_empty() {
        let progs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, k)| *k).collect();
        pkgs.sort_unstable();
        pkgs.dedup();
        bail!(
            "missing programs {}: install the Debian packages {}",
            progs.join(", "),
            pkgs.join(" ")
        );
    }
    Ok(())
}

/// Fails with a clear message unless running as root.
pub fn require_root(what: &str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("this test needs root for {what}: run the test suite as root (scripts/test does)");
    }
    Ok(())
}

/// Runs a command and returns stdout, or an error with everything it said.
pub fn output_ok(cmd: &mut Command) -> Result<String> {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run(cmd: &mut Command) -> Result<()> {
    output_ok(cmd).map(|_| ())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn signal(pid: u32, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill has no memory-safety preconditions; pid > 0 here
        // because it came from /proc or a Child.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Unmounts `path`, retrying while busy, then detaching lazily.
fn unmount(path: &Path) {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return;
    };
    for attempt in 0..10 {
        // SAFETY: c is a valid NUL-terminated path.
        if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
            return;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            // Not mounted (any more) or gone: nothing to do.
            Some(libc::EINVAL) | Some(libc::ENOENT) => return,
            Some(libc::EBUSY) if attempt < 9 => std::thread::sleep(Duration::from_millis(200)),
            _ => break,
        }
    }
    eprintln!(
        "netns teardown: {} is busy, detaching it lazily",
        path.display()
    );
    // SAFETY: as above.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        eprintln!(
            "netns teardown: lazy unmount of {} failed: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
}

/// Picks the third octet: the first of 1..=254, starting at a PID-derived
/// offset, whose lock file we can `flock` exclusively. The lock is held by the
/// returned file and released by the kernel when it closes (also on crash).
fn lock_subnet() -> Result<(u8, File)> {
    let dir = std::env::temp_dir().join("shoal-testnet-locks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let start = std::process::id() as usize;
    for k in 0..254 {
        let x = ((start + k) % 254 + 1) as u8;
        let path = dir.join(format!("{}.{}.{x}.lock", NET_PREFIX[0], NET_PREFIX[1]));
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a valid fd.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return Ok((x, f));
        }
    }
    bail!("all 254 test subnets 10.231.1-254.0/24 are in use by other tests")
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_programs_name_their_packages() {
        require_programs(&[("sh", "dash")]).unwrap();
        let e = require_programs(&[
            ("sh", "dash"),
            ("shoal-no-such-tool", "shoal-pkg-a"),
            ("shoal-no-such-tool2", "shoal-pkg-a"),
        ])
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing programs shoal-no-such-tool, shoal-no-such-tool2: install the Debian packages shoal-pkg-a"
        );
    }

    #[test]
    fn base36_is_short() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        // The largest Linux PID (2^22) needs 5 digits, so a tag is at most
        // 3 + 5 + 2 = 10 bytes and `<tag>v250` is 14 < 16 (IFNAMSIZ).
        assert_eq!(base36(4_194_304).len(), 5);
    }
}
