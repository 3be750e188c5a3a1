//! Tests of the network-namespace test bed itself (`shoal_e2e::netns`):
//! hosts reach each other and nothing else, shaping limits bandwidth, and
//! teardown removes mounts, processes, namespaces and interfaces, also when
//! the test panics. Needs root.

use shoal_e2e::netns::TestNet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn net(prefix: &str, n: usize) -> TestNet {
    TestNet::new(prefix, n).unwrap_or_else(|e| panic!("{e:#}"))
}

fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn is_mounted(path: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = path.to_str().unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn netns_list() -> String {
    String::from_utf8(
        std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

/// Everything a net created, to check it is gone after drop.
struct Leftovers {
    namespaces: Vec<String>,
    links: Vec<String>,
    dir: PathBuf,
}

impl Leftovers {
    fn of(net: &TestNet) -> Leftovers {
        let mut links: Vec<String> = net.hosts().iter().map(|h| h.veth().to_string()).collect();
        links.push(net.bridge().to_string());
        Leftovers {
            namespaces: net.hosts().iter().map(|h| h.name().to_string()).collect(),
            links,
            dir: net.dir().to_path_buf(),
        }
    }

    fn assert_gone(&self) {
        let list = netns_list();
        for ns in &self.namespaces {
            assert!(
                !list.lines().any(|l| l.split(' ').next() == Some(ns)),
                "{ns} still exists"
            );
            assert!(
                !Path::new("/run/netns").join(ns).exists(),
                "/run/netns/{ns} still exists"
            );
        }
        for l in &self.links {
            assert!(
                !Path::new("/sys/class/net").join(l).exists(),
                "link {l} still exists"
            );
        }
    }
}

#[test]
fn hosts_reach_each_other_and_nothing_else() {
    let net = net("nt", 3);
    assert_eq!(net.hosts().len(), 3);
    let subnet = net.subnet();
    assert!(
        subnet.starts_with("10.231.") && subnet.ends_with(".0/24"),
        "{subnet}"
    );
    for (i, h) in net.hosts().iter().enumerate() {
        assert_eq!(h.index(), i + 1);
        assert_eq!(h.addr().octets()[3] as usize, i + 1);
        assert!(h.veth().len() <= 15, "{} too long for IFNAMSIZ", h.veth());
        // Only loopback and eth0, and only the connected /24: no default route.
        let links = h.exec(&["ip", "-o", "link", "show"]).unwrap();
        let names: Vec<&str> = links
            .lines()
            .map(|l| l.split(": ").nth(1).unwrap().split('@').next().unwrap())
            .collect();
        assert_eq!(names, ["lo", "eth0"]);
        let routes = h.exec(&["ip", "-4", "route", "show"]).unwrap();
        assert_eq!(
            routes.trim(),
            format!("{subnet} dev eth0 proto kernel scope link src {}", h.addr())
        );
        let err = h.exec(&["ip", "route", "get", "1.1.1.1"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("Network is unreachable"),
            "{err:#}"
        );
    }
    assert!(net.bridge().len() <= 15);
    // The bridge has no IPv4 address: the root namespace is not on the subnet.
    let br = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "dev", net.bridge()])
        .output()
        .unwrap();
    assert!(br.status.success());
    assert_eq!(String::from_utf8_lossy(&br.stdout).trim(), "");

    // TCP from host 1 to host 3, with sockets opened inside the namespaces.
    let to: SocketAddr = (net.host(3).addr(), 7000).into();
    let listener = net
        .host(3)
        .in_netns(move || TcpListener::bind(to))
        .unwrap()
        .unwrap();
    let client = net
        .host(1)
        .in_netns(move || TcpStream::connect_timeout(&to, Duration::from_secs(5)))
        .unwrap()
        .unwrap();
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), net.host(1).addr());
    let mut client = client;
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");
}

#[test]
fn exec_reports_failures_and_spawn_tracks_processes() {
    let net = net("nt", 1);
    let h = net.host(1);
    let addr = h
        .exec(&["ip", "-4", "-o", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(addr.contains(&format!("{}/24", h.addr())), "{addr}");
    let err = h
        .exec(&["sh", "-c", "echo out; echo bad >&2; exit 3"])
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("exit status: 3"), "{msg}");
    assert!(msg.contains("stdout: out"), "{msg}");
    assert!(msg.contains("stderr: bad"), "{msg}");
    assert!(h.exec(&[]).is_err());

    let pid = h
        .spawn(&["sh", "-c", "echo started; exec sleep 1000"])
        .unwrap();
    assert!(h.is_running(pid));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(h.dir().join("sh.log"))
        .unwrap_or_default()
        .contains("started")
    {
        assert!(
            Instant::now() < deadline,
            "spawned output never reached sh.log"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Once it has printed, it runs inside the namespace (right after spawn
    // it may still be `ip` switching namespaces).
    assert!(h.pids_in_netns().contains(&pid));
    assert!(h.is_running(pid));
    assert!(!h.is_running(123_456_789), "unknown PIDs are not running");
}

#[test]
fn parallel_nets_get_distinct_subnets_and_names() {
    let a = net("par", 2);
    let b = net("par", 2);
    assert_ne!(a.subnet(), b.subnet());
    assert_ne!(a.tag(), b.tag());
    assert!(a.tag().starts_with("par"));
    for n in [&a, &b] {
        assert!(n.tag().len() <= 10, "{}", n.tag());
    }
}

#[test]
fn drop_unmounts_kills_and_deletes() {
    let net = net("td", 2);
    let left = Leftovers::of(&net);
    let h = net.host(1);
    let child = h.spawn(&["sleep", "1000"]).unwrap();
    // A daemon that is not our child: it double-forks away, as gluster's
    // brick processes do, but it lives in our namespace.
    let stray: u32 = h
        .exec(&[
            "sh",
            "-c",
            "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!",
        ])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // One that ignores SIGTERM, to exercise the SIGKILL path.
    let stubborn: u32 = net
        .host(2)
        .exec(&[
            "sh",
            "-c",
            "sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' </dev/null >/dev/null 2>&1 & echo $!",
        ])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mnt = h.dir().join("disk");
    std::fs::create_dir(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
    h.track_mount(&mnt);
    assert!(is_mounted(&mnt));
    for p in [child, stray, stubborn] {
        assert!(pid_alive(p), "{p} should run before drop");
    }

    drop(net);

    assert!(!is_mounted(&mnt), "tmpfs still mounted");
    for p in [child, stray, stubborn] {
        assert!(!pid_alive(p), "{p} survived drop");
    }
    left.assert_gone();
    assert!(!left.dir.exists(), "{} not removed", left.dir.display());
}

#[test]
fn teardown_also_runs_after_a_failed_assertion() {
    let mut seen: Option<(Leftovers, u32)> = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = net("pa", 2);
        let pid = net.host(2).spawn(&["sleep", "1000"]).unwrap();
        seen = Some((Leftovers::of(&net), pid));
        assert_eq!(1 + 1, 3, "deliberate failure");
    }));
    assert!(result.is_err());
    let (left, pid) = seen.expect("net was created");
    assert!(!pid_alive(pid));
    left.assert_gone();
    // A failing test keeps its logs; this one cleans them up itself.
    assert!(left.dir.exists(), "logs are kept after a failure");
    std::fs::remove_dir_all(&left.dir).unwrap();
}

/// Sends `bytes` from `from` to `to` and returns how long the receiver took
/// to get all of them.
fn transfer(net: &TestNet, from: usize, to: usize, port: u16, bytes: usize) -> Duration {
    let dst: SocketAddr = (net.host(to).addr(), port).into();
    let listener = net
        .host(to)
        .in_netns(move || TcpListener::bind(dst))
        .unwrap()
        .unwrap();
    let mut client = net
        .host(from)
        .in_netns(move || TcpStream::connect_timeout(&dst, Duration::from_secs(5)))
        .unwrap()
        .unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 64 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len());
            client.write_all(&chunk[..n]).unwrap();
            left -= n;
        }
    });
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while got < bytes {
        let n = server.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed early");
        got += n;
    }
    let elapsed = start.elapsed();
    sender.join().unwrap();
    elapsed
}

#[test]
fn shaping_limits_bandwidth_both_ways() {
    let net = net("sh", 2);
    let bytes = 1_000_000;
    let fast = transfer(&net, 1, 2, 7001, bytes);
    assert!(
        fast < Duration::from_millis(500),
        "unshaped transfer took {fast:?}"
    );
    // 4 Mbit/s = 500 kB/s: 1 MB takes about 2 s in either direction.
    net.host(2).shape(4_000_000).unwrap();
    let down = transfer(&net, 1, 2, 7002, bytes);
    let up = transfer(&net, 2, 1, 7003, bytes);
    for (what, t) in [("download", down), ("upload", up)] {
        assert!(
            t >= Duration::from_millis(1500) && t <= Duration::from_secs(6),
            "shaped {what} of 1 MB at 4 Mbit/s took {t:?}"
        );
    }
    let qdisc = net
        .host(2)
        .exec(&["tc", "qdisc", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        qdisc.contains("tbf") && qdisc.contains("rate 4Mbit"),
        "{qdisc}"
    );
}
