//! The start-up hard-link probe: a mirror whose state folder and live tree
//! are on different mounts refuses to start (naming both folders and the
//! fix), unless `storage.allow_copy` accepts copying.
//!
//! Each mirror runs in a private mount namespace (`unshare -m`, needs root)
//! with two fresh tmpfs mounts; the namespace and its mounts end with the
//! mirror process, which the test stops by its PID. The test reads the
//! mirror's tree through `/proc/<pid>/root`, which resolves paths in the
//! mirror's namespace.

use shoal_e2e::agents::{addrs, assert_same_tree, keygen, publish, start_origin, Agent, Proc};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `unshare -m` running a shell that mounts a tmpfs on `a` and on `b`
/// (private to the namespace), then execs `shoal-agent ARGS...`.
fn in_two_mounts(a: &Path, b: &Path, args: &[&str]) -> Command {
    std::fs::create_dir_all(a).unwrap();
    std::fs::create_dir_all(b).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs shoal-a "$1" && mount -t tmpfs shoal-b "$2" && shift 2 && exec "$@""#,
        )
        .arg("sh")
        .arg(a)
        .arg(b)
        .arg(shoal_e2e::bin("shoal-agent"))
        .args(args);
    cmd
}

/// A mirror config: live tree in `a`, state in `b`.
fn mirror_config(
    dir: &Path,
    a: &Path,
    b: &Path,
    pubkey: &str,
    upstream: &str,
    extra: &str,
) -> (std::path::PathBuf, std::net::SocketAddr) {
    let (http, peer) = addrs();
    let cfg = dir.join("m1.yaml");
    std::fs::write(
        &cfg,
        format!(
            "role: mirror\nname: m1\nrepo: {}/repo\nstate: {}/state\nlisten: {http}\n\
             peer_listen: {peer}\nmirror:\n  origin_key: {pubkey}\n  upstreams: [{upstream}]\n  \
             poll_interval: 1s\nnetwork:\n  announce_interval: 1s\n{extra}",
            a.display(),
            b.display()
        ),
    )
    .unwrap();
    (cfg, http)
}

#[test]
fn a_mirror_refuses_to_start_when_state_and_repo_are_on_different_mounts() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (_, pubkey) = keygen(dir);
    let (cfg, _) = mirror_config(dir, &a, &b, &pubkey, "http://127.0.0.1:9", "");
    let cmd = in_two_mounts(&a, &b, &["--config", cfg.to_str().unwrap(), "run"]);
    let mut proc = Proc::spawn("m1", cmd, &dir.join("m1.log"));
    // Bounded: an agent that wrongly starts is stopped by its PID on drop.
    let code = proc.wait_exit(Duration::from_secs(60));
    let err = std::fs::read_to_string(&proc.log).unwrap();
    assert_eq!(code, Some(1), "{err}");
    for needle in [
        format!("{}/state", b.display()),
        format!("{}/repo", a.display()),
        "different mounts".into(),
        "doubling the disk space".into(),
        "ReadWritePaths=".into(),
        "ProtectSystem=full".into(),
        "storage.allow_copy: true".into(),
    ] {
        assert!(err.contains(&needle), "missing '{needle}' in: {err}");
    }
    // The namespace ended with the agent: nothing is mounted here.
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(&b).unwrap().count(), 0);
}

#[test]
fn with_allow_copy_a_mirror_on_two_mounts_copies_and_warns_once() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    for i in 0..5 {
        std::fs::write(src.join(format!("pool/f{i}")), vec![i as u8; 30_000 + i]).unwrap();
    }
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &src, &key, "generic", &[]);
    assert_eq!(publish(&origin.state), 1);
    let (a, b) = (dir.join("a"), dir.join("b"));
    let (cfg, http) = mirror_config(
        dir,
        &a,
        &b,
        &pubkey,
        &origin.url(),
        "storage:\n  allow_copy: true\n",
    );
    let cmd = in_two_mounts(&a, &b, &["--config", cfg.to_str().unwrap(), "run"]);
    let proc = Proc::spawn("m1", cmd, &dir.join("m1.log"));
    // The mirror's own view of its folders (its mount namespace).
    let root = Path::new("/proc").join(proc.pid().to_string()).join("root");
    let m1 = Agent {
        http,
        peer: http,
        repo: root.join(a.strip_prefix("/").unwrap()).join("repo"),
        state: root.join(b.strip_prefix("/").unwrap()).join("state"),
        proc,
    };
    m1.wait_up();
    m1.wait_generation(1);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    let log = std::fs::read_to_string(&m1.proc.log).unwrap();
    assert_eq!(log.matches("on different mounts").count(), 1, "{log}");
    assert!(log.contains("storage.allow_copy"), "{log}");
    // Every file was copied: none could be linked across the mounts.
    assert!(log.contains("linked=0 copied=5"), "{log}");
    // Outside the namespace the mount points stay empty.
    assert_eq!(std::fs::read_dir(&a).unwrap().count(), 0);
}
