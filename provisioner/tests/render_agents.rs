//! End to end from a site file: `shoal render agent-config` for an origin
//! and two mirrors on loopback addresses, each started as a real
//! `shoal-agent --config FILE run`; the mirrors (one following the other
//! mirror first, by host name) reach the origin's generation and hold the
//! same tree.
//!
//! Every agent listens on its own 127.x.y.z address; public networks are
//! off in rendered configs. Every process is killed by its PID when the
//! test ends, also on failure. Needs `target/debug/shoal-agent` (built by
//! `cargo build --bins`; SHOAL_BIN_DIR overrides where it is looked for).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn agent_bin() -> PathBuf {
    let dir = std::env::var_os("SHOAL_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
                .join("debug")
        });
    let p = dir.join("shoal-agent");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build --bins`",
        p.display()
    );
    p
}

/// A child killed by its PID when dropped.
struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last log lines of {} ---", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// An address on a loopback IP of its own whose port and port + 1 are free.
fn addr(n: u8) -> SocketAddr {
    let ip: IpAddr = format!("127.{}.{}.3", std::process::id() % 200 + 20, 100 + n)
        .parse()
        .unwrap();
    loop {
        let p = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < u16::MAX
            && TcpListener::bind((ip, p + 1)).is_ok()
            && TcpListener::bind((ip, p)).is_ok()
        {
            return SocketAddr::new(ip, p);
        }
    }
}

/// GET /status as JSON, or None while the agent does not answer.
fn status(a: SocketAddr) -> Option<Value> {
    let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /status HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(
            t.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Relative path → content of every file under `root`, `project/trace` left out.
fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("project/trace") {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn agents_configured_from_a_site_file_sync_a_tree() {
    let agent = agent_bin();
    let tmp = tempfile::Builder::new()
        .prefix("shoal-render-agents-")
        .tempdir()
        .unwrap();
    let d = tmp.path();

    // The origin's key, as an operator would make it.
    let key = d.join("origin.key");
    let out = Command::new(&agent)
        .args(["keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pubkey = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // A small tree to publish.
    let repo = d.join("origin-repo");
    for (p, body) in [
        ("a.txt", "alpha\n".repeat(100)),
        ("dir/b.bin", "b".repeat(300_000)),
        ("dir/sub/c", "c".into()),
    ] {
        std::fs::create_dir_all(repo.join(p).parent().unwrap()).unwrap();
        std::fs::write(repo.join(p), body).unwrap();
    }

    let (ao, a1, a2) = (addr(0), addr(1), addr(2));
    let r = d.display();
    let site = format!(
        "name: loopback\n\
         defaults:\n  profile: generic\n  binary_source: /usr/local/bin/shoal-agent\n  poll_interval: 1s\n  delete_grace: 1s\n\
         origin:\n  host: origin.test\n  listen: {ao}\n  repo_dir: {r}/origin-repo\n  state_dir: {r}/origin-state\n\
         \x20 origin_key_file: {key}\n  origin_public_key: {pubkey}\n  publish_interval: 0s\n\
         mirrors:\n\
         \x20 - host: m1.test\n    listen: {a1}\n    repo_dir: {r}/m1-repo\n    state_dir: {r}/m1-state\n\
         \x20 - host: m2.test\n    listen: {a2}\n    repo_dir: {r}/m2-repo\n    state_dir: {r}/m2-state\n\
         \x20   upstreams: [m1.test, origin.test]\n",
        key = key.display()
    );
    let site_path = d.join("site.yaml");
    std::fs::write(&site_path, &site).unwrap();

    let mut procs = Vec::new();
    for (host, a) in [("origin.test", ao), ("m1.test", a1), ("m2.test", a2)] {
        let out = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["render", "agent-config", "--site"])
            .arg(&site_path)
            .args(["--host", host])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cfg = d.join(format!("{host}.yaml"));
        std::fs::write(&cfg, &out.stdout).unwrap();
        let log = d.join(format!("{host}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new(&agent)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        procs.push(Proc {
            child,
            name: host.into(),
            log,
        });
        wait_for(
            &format!("{host} to answer /status"),
            Duration::from_secs(60),
            || status(a).is_some(),
        );
        let s = status(a).unwrap();
        assert_eq!(
            s["role"],
            if host == "origin.test" {
                "origin"
            } else {
                "mirror"
            },
            "{s}"
        );
    }

    // Publish on demand (publish_interval: 0s), as the archive team's hook
    // would: once the tree just written is quiet (origin.quiet_period).
    let out = Command::new(&agent)
        .args(["publish", "--wait", "2m", "--state"])
        .arg(d.join("origin-state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut generation = 0;
    wait_for("the origin to publish", Duration::from_secs(60), || {
        generation = status(ao)
            .and_then(|s| s["generation_applied"].as_u64())
            .unwrap_or(0);
        generation >= 1
    });
    for (name, a, dir) in [("m1.test", a1, "m1-repo"), ("m2.test", a2, "m2-repo")] {
        wait_for(
            &format!("{name} to apply generation {generation}"),
            Duration::from_secs(180),
            || {
                status(a)
                    .and_then(|s| s["generation_applied"].as_u64())
                    .unwrap_or(0)
                    >= generation
            },
        );
        assert_eq!(
            tree(&d.join(dir)),
            tree(&repo),
            "{name} holds the origin's tree"
        );
    }
    drop(procs);
}
