//! `shoal bootstrap` over real SSH, and `shoal status`.
//!
//! The test bed is a [`TestNet`]: host 1 runs the origin agent and is the
//! admin machine (`shoal` runs there); every other host runs a real
//! `/usr/sbin/sshd -D` with a config, host key and authorized_keys generated
//! into the net's temporary folder. Everything is installed under a per-host
//! `--prefix` inside that folder, so the hosts do not collide on the shared
//! filesystem. All traffic stays on the net's bridge (10.231.X.0/24, no route
//! out). Teardown (TestNet's Drop) stops sshd, the agents that bootstrap
//! started through it, and the origin, then deletes the namespaces.
//!
//! sshd needs its privilege-separation folder /run/sshd. It is made on a
//! tmpfs mounted over /run inside the host's own mount namespace (`ip netns
//! exec` gives every host one), so the machine's /run is never touched.
//!
//! Needs root, openssh-server (sshd), openssh-client (ssh, ssh-keygen),
//! iproute2 (ip, ss) and dpkg's start-stop-daemon.

use shoal_e2e::agents;
use shoal_e2e::netns::{output_ok, TestNet};
use shoal_e2e::ns_agents::{self, NsOrigin};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one `shoal` invocation may take before the test kills it.
const SHOAL_DEADLINE: Duration = Duration::from_secs(600);

struct Bed {
    net: TestNet,
    /// Client key, known_hosts and ssh config live here.
    dir: PathBuf,
    ssh_config: PathBuf,
    origin_pub: String,
    /// The origin, on host 1.
    origin: NsOrigin,
    /// `<dir>/{host}`: the --prefix of every bootstrap.
    prefix: String,
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn both(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
    /// Asserts that stdout holds each of `want`.
    fn says<S: AsRef<str>>(&self, want: &[S]) {
        for want in want {
            let want = want.as_ref();
            assert!(
                self.stdout.contains(want),
                "missing {want:?} in:\n{}",
                self.both()
            );
        }
    }
}

fn sh(cmd: &mut Command) -> String {
    output_ok(cmd).unwrap_or_else(|e| panic!("{e:#}"))
}

fn agent_bin() -> PathBuf {
    shoal_e2e::bin("shoal-agent")
}

fn shoal_bin() -> PathBuf {
    shoal_e2e::bin("shoal")
}

impl Bed {
    /// Host 1: origin and admin machine; hosts 2..=n: sshd.
    fn new(tag: &str, n: usize) -> Bed {
        let net = TestNet::new(tag, n).unwrap_or_else(|e| panic!("{e:#}"));
        let dir = net.dir().join("admin");
        std::fs::create_dir_all(&dir).unwrap();
        let keygen = |path: &Path, comment: &str| {
            sh(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
                .arg(path));
        };
        keygen(&dir.join("client_key"), "shoal-bootstrap-test");
        let client_pub = std::fs::read_to_string(dir.join("client_key.pub")).unwrap();
        let mut known_hosts = String::new();
        for h in &net.hosts()[1..] {
            let hd = h.dir();
            keygen(
                &hd.join("ssh_host_ed25519_key"),
                &format!("host {}", h.addr()),
            );
            std::fs::write(hd.join("authorized_keys"), &client_pub).unwrap();
            let conf = format!(
                "ListenAddress {addr}:22\n\
                 HostKey {d}/ssh_host_ed25519_key\n\
                 PidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\n\
                 PermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PrintMotd no\n\
                 PrintLastLog no\n\
                 MaxSessions 64\n\
                 LogLevel VERBOSE\n",
                addr = h.addr(),
                d = hd.display()
            );
            std::fs::write(hd.join("sshd_config"), conf).unwrap();
            let log = std::fs::File::create(hd.join("sshd.log")).unwrap();
            let mut cmd = h.command("sh");
            // A private /run (this mount namespace only) for /run/sshd.
            cmd.arg("-c")
                .arg(
                    "mount -t tmpfs -o mode=0755,size=1m shoal-test-run /run && \
                     mkdir -m 0755 /run/sshd && /usr/sbin/sshd -t -f \"$1\" && \
                     exec /usr/sbin/sshd -D -e -f \"$1\"",
                )
                .arg("sh")
                .arg(hd.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            h.spawn_command(cmd).unwrap();
            let pubkey = std::fs::read_to_string(hd.join("ssh_host_ed25519_key.pub")).unwrap();
            let mut it = pubkey.split_whitespace();
            known_hosts.push_str(&format!(
                "{} {} {}\n",
                h.addr(),
                it.next().unwrap(),
                it.next().unwrap()
            ));
        }
        std::fs::write(dir.join("known_hosts"), known_hosts).unwrap();
        let ssh_config = dir.join("ssh_config");
        write_ssh_config(
            &ssh_config,
            Some(&dir.join("client_key")),
            &dir.join("known_hosts"),
        );

        // The origin, on host 1.
        let o = net.host(1);
        let origin_repo = o.dir().join("repo");
        std::fs::create_dir_all(origin_repo.join("pool/main")).unwrap();
        std::fs::write(
            origin_repo.join("README"),
            "a Shoal bootstrap test repository\n",
        )
        .unwrap();
        for i in 0..20 {
            let body: Vec<u8> = (0..(1000 + i * 517))
                .map(|j| ((i * 31 + j) % 251) as u8)
                .collect();
            std::fs::write(origin_repo.join(format!("pool/main/pkg{i:02}.deb")), body).unwrap();
        }
        let (key, origin_pub) = agents::keygen(o.dir());
        let listen = SocketAddr::new(o.addr().into(), 8780);
        let origin = ns_agents::start_origin(o, "origin", &origin_repo, &key, listen);
        let bed = Bed {
            prefix: format!("{}/{{host}}", net.dir().display()),
            net,
            dir,
            ssh_config,
            origin_pub,
            origin,
        };
        bed.origin.wait_generation(1);
        for h in &bed.net.hosts()[1..] {
            bed.wait_port(
                SocketAddr::new(h.addr().into(), 22),
                &h.dir().join("sshd.log"),
            );
        }
        bed
    }

    fn host_addr(&self, i: usize) -> String {
        self.net.host(i).addr().to_string()
    }

    /// The per-host prefix folder of host `i`.
    fn prefix_of(&self, i: usize) -> PathBuf {
        PathBuf::from(self.prefix.replace("{host}", &self.host_addr(i)))
    }

    /// Waits until `addr` accepts TCP connections, seen from host 1.
    fn wait_port(&self, addr: SocketAddr, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self
                .net
                .host(1)
                .in_netns(move || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok())
                .unwrap();
            if up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nothing listens on {addr} after 20s; {}:\n{}",
                log.display(),
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `shoal ARGS` on host 1 (the admin machine), without an SSH agent.
    fn shoal(&self, args: &[&str]) -> Ran {
        let mut cmd = self.net.host(1).command(shoal_bin());
        cmd.args(args)
            .env_remove("SSH_AUTH_SOCK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start shoal");
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let deadline = Instant::now() + SHOAL_DEADLINE;
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("shoal {args:?} did not finish within {SHOAL_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let ran = Ran {
            code: status.code(),
            stdout: t_out.join().unwrap(),
            stderr: t_err.join().unwrap(),
        };
        eprintln!(
            "$ shoal {}\n{}(exit {:?})\n",
            args.join(" "),
            ran.both(),
            ran.code
        );
        ran
    }

    /// `shoal bootstrap` with the bed's prefix and (unless `args` name
    /// another) SSH config, plus `args`.
    fn bootstrap(&self, args: &[&str]) -> Ran {
        let cfg = self.ssh_config.to_string_lossy().into_owned();
        let mut all = vec!["bootstrap", "--prefix", &self.prefix];
        if !args.contains(&"--ssh-config") {
            all.extend(["--ssh-config", &cfg]);
        }
        all.extend_from_slice(args);
        self.shoal(&all)
    }

    /// The no-site flags for a mirror following the bed's origin.
    fn mirror_flags(&self) -> Vec<String> {
        vec![
            "--origin".into(),
            self.origin.url.clone(),
            "--origin-key".into(),
            self.origin_pub.clone(),
            "--repo".into(),
            "/srv/mirror".into(),
            "--state".into(),
            "/var/lib/shoal".into(),
        ]
    }

    fn site(&self, name: &str, poll_interval: &str) -> PathBuf {
        let mirrors: String = self.net.hosts()[1..]
            .iter()
            .map(|h| format!("  - host: {}\n", h.addr()))
            .collect();
        let text = format!(
            "name: bootstrap-test\n\
             defaults:\n  binary_source: {bin}\n  service_manager: daemon\n  poll_interval: {poll_interval}\n\
             origin:\n  host: {o}\n  listen: {o}:8780\n  origin_public_key: {key}\n\
             mirrors:\n{mirrors}",
            bin = agent_bin().display(),
            o = self.host_addr(1),
            key = self.origin_pub,
        );
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn pid_of(&self, i: usize) -> u32 {
        let p = self.prefix_of(i).join("var/lib/shoal/agent.pid");
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .parse()
            .unwrap()
    }
}

fn write_ssh_config(path: &Path, identity: Option<&Path>, known_hosts: &Path) {
    let identity = identity
        .map(|i| format!("  IdentityFile {}\n", i.display()))
        .unwrap_or_default();
    let text = format!(
        "Host *\n  User root\n{identity}  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
         GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
        known_hosts.display()
    );
    std::fs::write(path, text).unwrap();
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Every file under `root`, relative, with its content.
fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ty = e.file_type().unwrap();
            if ty.is_dir() {
                walk(root, &p, out);
            } else if ty.is_file() {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn sha256_file(p: &Path) -> String {
    let out = sh(Command::new("sha256sum").arg(p));
    out.split_whitespace().next().unwrap().to_string()
}

#[test]
fn bootstrap_two_mirrors_from_a_site_then_nothing_changes() {
    let bed = Bed::new("bst", 3);
    let (h2, h3) = (bed.host_addr(2), bed.host_addr(3));
    let site = bed.site("site.yaml", "2s");
    let site_s = site.to_string_lossy().into_owned();

    // First run: both mirrors, in parallel, up to the origin's generation.
    let r = bed.bootstrap(&["--site", &site_s, "--timeout", "300s"]);
    assert!(r.ok(), "first bootstrap failed:\n{}", r.both());
    let origin_gen = bed.origin.status().unwrap().generation_applied;
    for h in [&h2, &h3] {
        r.says(&[
            format!(
                "[{h}] connect: {h} (logged in as root; host key verified against known_hosts)"
            ),
            format!("[{h}] check: Linux "),
            format!("[{h}] binary: uploaded "),
            format!("[{h}] config: "),
            format!("[{h}] unit: "),
            format!("[{h}] service: agent started under start-stop-daemon (pid "),
            format!("[{h}] sync: generation {origin_gen} applied"),
        ]);
    }
    assert!(
        r.stdout
            .contains("2 host(s): 2 changed, 0 unchanged, 0 failed."),
        "{}",
        r.both()
    );
    // The mirrors' live trees are the origin's tree.
    let want = tree(&bed.origin.repo);
    assert_eq!(want.len(), 21);
    for i in [2, 3] {
        let got = tree(&bed.prefix_of(i).join("srv/shoal/repo"));
        let got: Vec<_> = got
            .into_iter()
            .filter(|(p, _)| !p.starts_with("project/trace"))
            .collect();
        assert!(got == want, "mirror {i}'s tree differs from the origin's");
        // The config written parses with the agent's own types.
        let cfg = shoal_config::AgentConfig::load(&bed.prefix_of(i).join("etc/shoal/agent.yaml"))
            .unwrap();
        assert_eq!(cfg.mirror.upstreams, vec![bed.origin.url.clone()]);
        assert!(bed
            .prefix_of(i)
            .join("etc/systemd/system/shoal-agent.service")
            .is_file());
    }
    let pids = [bed.pid_of(2), bed.pid_of(3)];
    assert!(pids.iter().all(|p| pid_alive(*p)));
    let cfg2 = bed.prefix_of(2).join("etc/shoal/agent.yaml");
    let cfg_mtime = std::fs::metadata(&cfg2).unwrap().modified().unwrap();

    // shoal status: every agent of the site, in one table.
    let st = bed.shoal(&["status", "--site", &site_s]);
    assert!(st.ok(), "shoal status failed:\n{}", st.both());
    let lines: Vec<&str> = st.stdout.lines().collect();
    assert!(
        lines[0].starts_with("AGENT") && lines[0].contains("LAG"),
        "{}",
        st.stdout
    );
    for (i, role) in [(1, "origin"), (2, "mirror"), (3, "mirror")] {
        let cols: Vec<&str> = lines[i].split_whitespace().collect();
        assert_eq!(cols[0], bed.host_addr(i), "{}", st.stdout);
        assert_eq!(cols[1], role, "{}", st.stdout);
        assert_eq!(cols[2], origin_gen.to_string(), "{}", st.stdout);
        assert_eq!(
            cols[3],
            if role == "origin" { "-" } else { "0" },
            "{}",
            st.stdout
        );
    }
    assert!(
        st.stdout.contains(&format!(
            "origin at generation {origin_gen}; 2 of 2 mirror(s) read are at it"
        )),
        "{}",
        st.stdout
    );
    // An agent that is not there is reported, and the exit code says so.
    let bad = format!("http://{}:8799", bed.host_addr(2));
    let st = bed.shoal(&[
        "status",
        "--site",
        &site_s,
        "--agent",
        &bad,
        "--timeout",
        "3s",
    ]);
    assert_eq!(st.code, Some(1), "{}", st.both());
    assert!(
        st.stdout
            .lines()
            .last()
            .unwrap()
            .contains("1 of 4 agent(s) could not be read"),
        "{}",
        st.stdout
    );
    assert!(
        st.stdout.contains(&bad) && st.stdout.contains("unreachable"),
        "{}",
        st.stdout
    );

    // Second run: nothing changes, and it says so.
    let r = bed.bootstrap(&["--site", &site_s, "--timeout", "120s"]);
    assert!(r.ok(), "second bootstrap failed:\n{}", r.both());
    assert!(
        r.stdout
            .contains("2 host(s): 0 changed, 2 unchanged, 0 failed. Nothing to do"),
        "{}",
        r.both()
    );
    for (h, pid) in [(&h2, pids[0]), (&h3, pids[1])] {
        r.says(&[
            format!("[{h}] binary: {}", bed.prefix.replace("{host}", h)),
            format!(
                "[{h}] service: agent running (pid {pid}) under start-stop-daemon, left as it is"
            ),
        ]);
        assert!(
            !r.stdout.contains(&format!("[{h}] binary: uploaded")),
            "{}",
            r.both()
        );
    }
    for h in [&h2, &h3] {
        for step in ["binary", "config", "unit"] {
            let line = r
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("[{h}] {step}: ")))
                .unwrap_or_else(|| panic!("no {step} line for {h}:\n{}", r.both()));
            assert!(line.contains(" unchanged"), "{line}");
        }
    }
    assert_eq!(
        [bed.pid_of(2), bed.pid_of(3)],
        pids,
        "the second run restarted an agent"
    );
    assert_eq!(
        std::fs::metadata(&cfg2).unwrap().modified().unwrap(),
        cfg_mtime
    );

    // The origin publishes generation 2: a run that changes nothing still
    // waits until every mirror has it, and the status table shows it.
    std::fs::write(bed.origin.repo.join("pool/main/new.deb"), b"generation two").unwrap();
    agents::publish(&bed.origin.state);
    bed.origin.wait_generation(origin_gen + 1);
    let r = bed.bootstrap(&["--site", &site_s, "--timeout", "120s"]);
    assert!(r.ok(), "third bootstrap failed:\n{}", r.both());
    for h in [&h2, &h3] {
        let want = format!("[{h}] sync: generation {} applied", origin_gen + 1);
        r.says(&[want]);
    }
    assert!(
        r.stdout
            .contains("2 host(s): 0 changed, 2 unchanged, 0 failed."),
        "{}",
        r.both()
    );
    for i in [2, 3] {
        let got = std::fs::read(bed.prefix_of(i).join("srv/shoal/repo/pool/main/new.deb")).unwrap();
        assert_eq!(got, b"generation two");
    }
    let st = bed.shoal(&["status", "--site", &site_s]);
    assert!(st.ok(), "{}", st.both());
    assert!(
        st.stdout.contains(&format!(
            "origin at generation {}; 2 of 2 mirror(s) read are at it",
            origin_gen + 1
        )),
        "{}",
        st.stdout
    );

    // A changed site: --dry-run shows the plan and changes nothing.
    // (The same file, so that only the agent config differs, not the unit's header.)
    let site2 = bed.site("site.yaml", "3s");
    let site2_s = site2.to_string_lossy().into_owned();
    let before = sha256_file(&cfg2);
    let r = bed.bootstrap(&[&h2, "--site", &site2_s, "--dry-run"]);
    assert!(r.ok(), "dry run failed:\n{}", r.both());
    r.says(&[
        format!("[{h2}] config: would update {}", cfg2.display()),
        format!(
            "[{h2}] unit: {} unchanged",
            bed.prefix_of(2)
                .join("etc/systemd/system/shoal-agent.service")
                .display()
        ),
        format!(
            "[{h2}] service: would restart the agent (pid {}; config changed)",
            pids[0]
        ),
        "1 host(s): 1 would change, 0 unchanged, 0 failed. Dry run: nothing was changed."
            .to_string(),
    ]);
    assert!(!r.stdout.contains(&format!("[{h3}]")), "{}", r.both());
    assert_eq!(sha256_file(&cfg2), before, "the dry run changed the config");
    assert_eq!(bed.pid_of(2), pids[0], "the dry run restarted the agent");

    // The real run updates the config and restarts that agent only.
    let r = bed.bootstrap(&[&h2, "--site", &site2_s, "--timeout", "120s"]);
    assert!(
        r.ok(),
        "bootstrap with a changed config failed:\n{}",
        r.both()
    );
    r.says(&[
        format!("[{h2}] config: {} updated", cfg2.display()),
        format!(
            "[{h2}] unit: {} unchanged",
            bed.prefix_of(2)
                .join("etc/systemd/system/shoal-agent.service")
                .display()
        ),
        format!("[{h2}] service: agent restarted under start-stop-daemon (pid "),
        format!("[{h2}] sync: generation {} applied", origin_gen + 1),
        "1 host(s): 1 changed, 0 unchanged, 0 failed.".to_string(),
    ]);
    assert!(r.stdout.contains("config changed)"), "{}", r.both());
    assert_ne!(sha256_file(&cfg2), before);
    assert!(std::fs::read_to_string(&cfg2)
        .unwrap()
        .contains("poll_interval: \"3s\""));
    let new_pid = bed.pid_of(2);
    assert_ne!(new_pid, pids[0]);
    assert!(pid_alive(new_pid) && !pid_alive(pids[0]));
    assert_eq!(
        bed.pid_of(3),
        pids[1],
        "host 3 was not named and must stay as it was"
    );
}

#[test]
fn bootstrap_errors_name_the_host_and_the_step() {
    let bed = Bed::new("bse", 2);
    let h2 = bed.host_addr(2);
    let dest = format!("root@{h2}");
    let flags = bed.mirror_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let with = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| -> Ran {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        bed.bootstrap(&a)
    };
    let failed = |r: &Ran, host: &str, step: &str, what: &str| {
        assert_eq!(r.code, Some(1), "expected a failure:\n{}", r.both());
        let want = format!("shoal bootstrap: {host}: step {step} failed: {what}");
        assert!(
            r.stderr.contains(&want),
            "missing {want:?} in:\n{}",
            r.both()
        );
        assert!(
            r.stdout.contains(&format!("FAILED at {step}")),
            "{}",
            r.both()
        );
    };

    // An unreachable host (no machine has this address on the bridge).
    let gone = format!("{}.9", bed.host_addr(1).rsplit_once('.').unwrap().0);
    let r = run(with(&[&format!("root@{gone}"), "--connect-timeout", "5s"]));
    failed(
        &r,
        &gone,
        "connect",
        "host unreachable: cannot open an SSH connection",
    );

    // A host key unknown to known_hosts is refused unless trusted explicitly.
    let empty_kh = bed.dir.join("known_hosts.empty");
    std::fs::write(&empty_kh, "").unwrap();
    let cfg_new = bed.dir.join("ssh_config.new");
    write_ssh_config(&cfg_new, Some(&bed.dir.join("client_key")), &empty_kh);
    let cfg_new_s = cfg_new.to_string_lossy().into_owned();
    let r = run(with(&[&dest, "--ssh-config", &cfg_new_s, "--dry-run"]));
    failed(
        &r,
        &h2,
        "connect",
        &format!("unknown host key: {h2} is not in known_hosts"),
    );
    assert!(r.stderr.contains("--accept-new-host-key"), "{}", r.both());
    assert_eq!(std::fs::read_to_string(&empty_kh).unwrap(), "");
    let r = run(with(&[
        &dest,
        "--ssh-config",
        &cfg_new_s,
        "--dry-run",
        "--accept-new-host-key",
    ]));
    assert!(r.ok(), "{}", r.both());
    let host_key =
        std::fs::read_to_string(bed.net.host(2).dir().join("ssh_host_ed25519_key.pub")).unwrap();
    let learned = std::fs::read_to_string(&empty_kh).unwrap();
    assert!(
        learned.contains(host_key.split_whitespace().nth(1).unwrap()),
        "known_hosts did not learn the host's key: {learned}"
    );
    // On a terminal (here a pty made by script(1)) progress is drawn with
    // indicatif's spinners instead of plain lines.
    let cmdline = format!(
        "{} bootstrap --prefix {} --ssh-config {cfg_new_s} {} {dest} --dry-run",
        shoal_bin().display(),
        bed.prefix,
        flags.join(" ")
    );
    let tty = sh(bed
        .net
        .host(1)
        .command("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env_remove("SSH_AUTH_SOCK"));
    eprintln!("$ script -qec '{cmdline}' /dev/null\n{tty:?}");
    assert!(tty.contains("\u{1b}["), "no terminal drawing: {tty:?}");
    assert!(
        tty.contains(&format!("[{h2}] binary")) && tty.contains("would upload"),
        "{tty:?}"
    );
    assert!(tty.contains("Dry run: nothing was changed."), "{tty:?}");
    // The dry run changed nothing on the host.
    assert!(
        !bed.prefix_of(2).exists(),
        "the dry run created {}",
        bed.prefix_of(2).display()
    );

    // A host key that differs from known_hosts is refused, also with --accept-new-host-key.
    let other = bed.dir.join("other_host_key");
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other));
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let wrong_kh = bed.dir.join("known_hosts.wrong");
    let mut it = other_pub.split_whitespace();
    std::fs::write(
        &wrong_kh,
        format!("{h2} {} {}\n", it.next().unwrap(), it.next().unwrap()),
    )
    .unwrap();
    let cfg_wrong = bed.dir.join("ssh_config.wrong");
    write_ssh_config(&cfg_wrong, Some(&bed.dir.join("client_key")), &wrong_kh);
    let cfg_wrong_s = cfg_wrong.to_string_lossy().into_owned();
    for extra in [&[][..], &["--accept-new-host-key"][..]] {
        let mut a = vec![dest.as_str(), "--ssh-config", &cfg_wrong_s];
        a.extend_from_slice(extra);
        let r = run(with(&a));
        failed(
            &r,
            &h2,
            "connect",
            &format!("host key mismatch: {h2} presented a key that differs"),
        );
        assert!(
            r.stderr.contains(&format!("ssh-keygen -R {h2}")),
            "{}",
            r.both()
        );
    }

    // A key the host does not authorize (given with --identity, and the
    // SSH config names no other key).
    let stranger = bed.dir.join("stranger_key");
    sh(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger));
    let cfg_nokey = bed.dir.join("ssh_config.nokey");
    write_ssh_config(&cfg_nokey, None, &bed.dir.join("known_hosts"));
    let cfg_nokey_s = cfg_nokey.to_string_lossy().into_owned();
    let stranger_s = stranger.to_string_lossy().into_owned();
    let r = run(with(&[
        &dest,
        "--ssh-config",
        &cfg_nokey_s,
        "--identity",
        &stranger_s,
    ]));
    failed(
        &r,
        &h2,
        "connect",
        &format!("authentication failed for {dest}"),
    );

    // A binary for another architecture than the host's.
    let (foreign_machine, foreign_name): (u16, &str) = if std::env::consts::ARCH == "aarch64" {
        (0x3e, "x86_64")
    } else {
        (0xb7, "aarch64")
    };
    let mut elf = vec![0u8; 4096];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[5] = 1;
    elf[18..20].copy_from_slice(&foreign_machine.to_le_bytes());
    let foreign = bed.dir.join("shoal-agent.foreign");
    std::fs::write(&foreign, elf).unwrap();
    let foreign_s = foreign.to_string_lossy().into_owned();
    let r = run(with(&[&dest, "--agent-binary", &foreign_s]));
    failed(&r, &h2, "check", "unsupported architecture: the host is ");
    assert!(
        r.stderr.contains(&format!("({foreign_name})")),
        "{}",
        r.both()
    );

    // Not enough free space at the repository.
    let r = run(with(&[&dest, "--min-free", "1000000TiB"]));
    failed(&r, &h2, "check", "no space: ");
    assert!(r.stderr.contains("less than --min-free"), "{}", r.both());

    // The listen port is taken on the host.
    let busy: SocketAddr = format!("{h2}:8790").parse().unwrap();
    let listener = bed
        .net
        .host(2)
        .in_netns(move || TcpListener::bind(busy))
        .unwrap()
        .unwrap();
    let r = run(with(&[&dest, "--listen", "0.0.0.0:8790"]));
    failed(
        &r,
        &h2,
        "check",
        "port in use: the agent's listen address 0.0.0.0:8790 is taken by ",
    );
    assert!(
        r.stderr.contains(&format!("(pid {})", std::process::id())),
        "{}",
        r.both()
    );
    drop(listener);
    assert!(
        !bed.prefix_of(2).exists(),
        "a failed check must not change the host"
    );

    // The agent fails to start: its listen address does not exist on the host.
    let nowhere = format!("{}.77:8780", bed.host_addr(1).rsplit_once('.').unwrap().0);
    let r = run(with(&[&dest, "--listen", &nowhere]));
    failed(&r, &h2, "service", "agent fails to start: ");
    assert!(r.stderr.contains("last lines of "), "{}", r.both());
    assert!(
        r.stderr.contains(&nowhere),
        "the agent's own error is not shown:\n{}",
        r.both()
    );
    assert!(
        r.stdout.contains(&format!("[{h2}] binary: uploaded ")),
        "{}",
        r.both()
    );

    // Sync not reached in time: the mirror trusts another key than the origin's.
    let other_origin = bed.dir.join("other_origin.key");
    let wrong_pub = sh(Command::new(agent_bin())
        .arg("keygen")
        .arg("--out")
        .arg(&other_origin));
    let mut args = vec![
        dest.clone(),
        "--origin".into(),
        bed.origin.url.clone(),
        "--origin-key".into(),
        wrong_pub.trim().to_string(),
        "--repo".into(),
        "/srv/mirror".into(),
        "--timeout".into(),
        "15s".into(),
    ];
    args.extend(["--name".to_string(), "lonely".to_string()]);
    let r = run(args);
    failed(&r, &h2, "sync", "sync not reached: generation ");
    assert!(r.stderr.contains("not applied within 15s"), "{}", r.both());
    assert!(r.stderr.contains("last error: "), "{}", r.both());
    assert!(
        !r.stderr.contains("last error: none"),
        "the agent's error is not shown:\n{}",
        r.both()
    );
    assert!(
        r.stdout.contains(&format!("[{h2}] binary: ")) && r.stdout.contains("unchanged"),
        "{}",
        r.both()
    );
    let cfg =
        shoal_config::AgentConfig::load(&bed.prefix_of(2).join("etc/shoal/agent.yaml")).unwrap();
    assert_eq!(cfg.name.as_deref(), Some("lonely"));
    assert_eq!(cfg.mirror.origin_key.as_deref(), Some(wrong_pub.trim()));

    // The unit written without a site file verifies too (it is not used
    // here, but would be under systemd).
    let unit = bed
        .prefix_of(2)
        .join("etc/systemd/system/shoal-agent.service");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {}:\n{said}\n{}",
        unit.display(),
        std::fs::read_to_string(&unit).unwrap()
    );
}

/// A second origin on host 1 (the repository `fedora`, port 8790), next to
/// the bed's own: its repository, public key and handle.
fn second_origin(bed: &Bed) -> (NsOrigin, String) {
    let o = bed.net.host(1);
    let dir = o.dir().join("fedora");
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("Packages")).unwrap();
    for i in 0..6 {
        let body: Vec<u8> = (0..(700 + i * 389))
            .map(|j| ((i * 17 + j) % 241) as u8)
            .collect();
        std::fs::write(repo.join(format!("Packages/pkg{i}.rpm")), body).unwrap();
    }
    std::fs::write(repo.join("repomd.xml"), "<repomd/>\n").unwrap();
    let (key, public) = agents::keygen(&dir);
    let listen = SocketAddr::new(o.addr().into(), 8790);
    let origin = ns_agents::start_origin_at(o, "fedora", &repo, &key, listen, &dir.join("state"));
    origin.wait_generation(1);
    (origin, public)
}

/// The pid in the pidfile `<state>/agent.pid` of a repository's agent.
fn pid_in(state: &Path) -> u32 {
    let p = state.join("agent.pid");
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn bootstrap_two_repositories_onto_one_mirror_then_nothing_changes() {
    let bed = Bed::new("bsr", 2);
    let (fedora, fedora_pub) = second_origin(&bed);
    let (h1, h2) = (bed.host_addr(1), bed.host_addr(2));
    let text = format!(
        "name: bootstrap-repos\n\
         defaults:\n  binary_source: {bin}\n  service_manager: daemon\n  poll_interval: 2s\n\
         repositories:\n\
         \x20 - name: debian\n\
         \x20   origin: {{host: {h1}, listen: '{h1}:8780', origin_public_key: '{k1}', repo_dir: /srv/origin/debian/repo, state_dir: /srv/origin/debian/state}}\n\
         \x20   mirrors:\n\
         \x20     - {{host: {h2}, repo_dir: /srv/shoal/debian/repo, state_dir: /srv/shoal/debian/state}}\n\
         \x20 - name: fedora\n\
         \x20   origin: {{host: {h1}, listen: '{h1}:8790', origin_public_key: '{k2}', repo_dir: /srv/origin/fedora/repo, state_dir: /srv/origin/fedora/state}}\n\
         \x20   mirrors:\n\
         \x20     - {{host: {h2}, repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790'}}\n",
        bin = agent_bin().display(),
        k1 = bed.origin_pub,
        k2 = fedora_pub,
    );
    let site = bed.dir.join("repos.yaml");
    std::fs::write(&site, text).unwrap();
    let site_s = site.to_string_lossy().into_owned();
    let p = bed.prefix_of(2);
    let repos = [("debian", &bed.origin), ("fedora", &fedora)];

    // First run: both agents of the one mirror host, one after the other.
    let r = bed.bootstrap(&["--site", &site_s, "--timeout", "300s"]);
    assert!(r.ok(), "first bootstrap failed:\n{}", r.both());
    r.says(&[
        format!("bootstrapping 2 agent(s) on 1 host(s) of {site_s}"),
        format!("[{h2}] connect: {h2} (logged in as root"),
        // The binary both agents share is uploaded once.
        format!("[{h2}/debian] binary: uploaded "),
        format!(
            "[{h2}/fedora] binary: {} unchanged",
            p.join("usr/local/bin/shoal-agent").display()
        ),
        "2 agent(s) on 1 host(s): 2 changed, 0 unchanged, 0 failed.".to_string(),
    ]);
    assert_eq!(
        r.stdout.matches(" connect: ").count(),
        1,
        "one SSH connection per host:\n{}",
        r.both()
    );
    let mut pids = Vec::new();
    for (name, origin) in repos {
        let g = origin.status().unwrap().generation_applied;
        let config = p.join(format!("etc/shoal/{name}.yaml"));
        let unit = p.join(format!("etc/systemd/system/shoal-agent@{name}.service"));
        r.says(&[
            format!("[{h2}/{name}] check: Linux "),
            format!("[{h2}/{name}] config: {} written", config.display()),
            format!("[{h2}/{name}] unit: {} written", unit.display()),
            format!("[{h2}/{name}] service: agent started under start-stop-daemon (pid "),
            format!("[{h2}/{name}] sync: generation {g} applied"),
        ]);
        // Its own config, following its own origin, with its own state.
        let cfg = shoal_config::AgentConfig::load(&config).unwrap();
        assert_eq!(cfg.mirror.upstreams, vec![origin.url.clone()]);
        assert_eq!(cfg.state, p.join(format!("srv/shoal/{name}/state")));
        // Its own unit file, running its own config.
        let unit_text = std::fs::read_to_string(&unit).unwrap();
        assert!(
            unit_text.contains(&format!("--config {} run", config.display())),
            "{unit_text}"
        );
        // Its live tree is its origin's tree.
        let want = tree(&origin.repo);
        let got: Vec<_> = tree(&p.join(format!("srv/shoal/{name}/repo")))
            .into_iter()
            .filter(|(f, _)| !f.starts_with("project/trace"))
            .collect();
        assert!(!want.is_empty());
        assert!(
            got == want,
            "the {name} mirror's tree differs from its origin's"
        );
        let pid = pid_in(&p.join(format!("srv/shoal/{name}/state")));
        assert!(
            pid_alive(pid),
            "the {name} agent (pid {pid}) is not running"
        );
        pids.push(pid);
    }
    assert_ne!(pids[0], pids[1]);
    assert!(!p.join("etc/shoal/agent.yaml").exists());
    assert!(!p.join("etc/systemd/system/shoal-agent.service").exists());

    // Second run: nothing changes, and it says so.
    let r = bed.bootstrap(&["--site", &site_s, "--timeout", "120s"]);
    assert!(r.ok(), "second bootstrap failed:\n{}", r.both());
    r.says(&[
        "2 agent(s) on 1 host(s): 0 changed, 2 unchanged, 0 failed. Nothing to do".to_string(),
    ]);
    for ((name, _), pid) in repos.iter().zip(&pids) {
        for step in ["binary", "config", "unit"] {
            let line = r
                .stdout
                .lines()
                .find(|l| l.starts_with(&format!("[{h2}/{name}] {step}: ")))
                .unwrap_or_else(|| panic!("no {step} line for {name}:\n{}", r.both()));
            assert!(line.contains(" unchanged"), "{line}");
        }
        r.says(&[format!(
            "[{h2}/{name}] service: agent running (pid {pid}) under start-stop-daemon, left as it is"
        )]);
        assert_eq!(
            pid_in(&p.join(format!("srv/shoal/{name}/state"))),
            *pid,
            "the second run restarted the {name} agent"
        );
    }

    // One repository's setting changes: the dry run of the host (named)
    // names the repository whose agent would change, and changes nothing.
    let fedora_cfg = p.join("etc/shoal/fedora.yaml");
    let before = sha256_file(&fedora_cfg);
    let original = std::fs::read_to_string(&site).unwrap();
    let changed = original.replace(
        "listen: '0.0.0.0:8790'}",
        "listen: '0.0.0.0:8790', poll_interval: 3s}",
    );
    std::fs::write(&site, changed).unwrap();
    let r = bed.bootstrap(&[&h2, "--site", &site_s, "--dry-run"]);
    assert!(r.ok(), "dry run failed:\n{}", r.both());
    r.says(&[
        format!(
            "[{h2}/debian] config: {} unchanged",
            p.join("etc/shoal/debian.yaml").display()
        ),
        format!(
            "[{h2}/fedora] config: would update {}",
            fedora_cfg.display()
        ),
        format!(
            "[{h2}/fedora] service: would restart the agent (pid {}; config changed)",
            pids[1]
        ),
        "2 agent(s) on 1 host(s): 1 would change, 1 unchanged, 0 failed. Dry run: nothing was changed."
            .to_string(),
    ]);
    assert_eq!(
        sha256_file(&fedora_cfg),
        before,
        "the dry run changed the config"
    );
    assert_eq!(pid_in(&p.join("srv/shoal/fedora/state")), pids[1]);

    // A new binary (the same program, one byte longer): the first agent
    // uploads it, the second finds it in place and restarts all the same.
    std::fs::write(&site, original).unwrap();
    let new_bin = bed.dir.join("shoal-agent.new");
    let mut bytes = std::fs::read(agent_bin()).unwrap();
    bytes.push(0);
    std::fs::write(&new_bin, bytes).unwrap();
    std::fs::set_permissions(
        &new_bin,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let new_bin_s = new_bin.to_string_lossy().into_owned();
    let r = bed.bootstrap(&[
        "--site",
        &site_s,
        "--agent-binary",
        &new_bin_s,
        "--timeout",
        "120s",
    ]);
    assert!(r.ok(), "bootstrap with a new binary failed:\n{}", r.both());
    r.says(&[
        format!("[{h2}/debian] binary: uploaded "),
        format!(
            "[{h2}/fedora] binary: {} unchanged",
            p.join("usr/local/bin/shoal-agent").display()
        ),
        "2 agent(s) on 1 host(s): 2 changed, 0 unchanged, 0 failed.".to_string(),
    ]);
    for ((name, _), old) in repos.iter().zip(&pids) {
        r.says(&[format!(
            "[{h2}/{name}] service: agent restarted under start-stop-daemon (pid "
        )]);
        let line = r
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("[{h2}/{name}] service: agent restarted")))
            .unwrap();
        assert!(line.contains("; binary changed)"), "{line}");
        let pid = pid_in(&p.join(format!("srv/shoal/{name}/state")));
        assert!(
            pid != *old && pid_alive(pid) && !pid_alive(*old),
            "{name}: {old} -> {pid}"
        );
    }
}
