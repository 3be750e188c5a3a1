//! Agents inside a [`TestNet`](crate::netns::TestNet) host: started through
//! the host's own spawn, so the net's teardown stops them, and read through
//! their admin socket (`shoal-agent status --state`), which works from the
//! test's namespace.

use crate::netns::Host;
use shoal_status::Status;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// An origin running in a host of a test net.
pub struct NsOrigin {
    /// Its HTTP URL, as the net's hosts reach it.
    pub url: String,
    pub repo: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

/// Starts an origin in `h` for `repo`, publishing only on request (and once
/// at start), with its state and log in the host's folder.
pub fn start_origin(h: &Host, name: &str, repo: &Path, key: &Path, listen: SocketAddr) -> NsOrigin {
    start_origin_at(h, name, repo, key, listen, &h.dir().join("state"))
}

/// [`start_origin`] with the state folder `state`, for a second origin on
/// the same host.
pub fn start_origin_at(
    h: &Host,
    name: &str,
    repo: &Path,
    key: &Path,
    listen: SocketAddr,
    state: &Path,
) -> NsOrigin {
    let state = state.to_path_buf();
    let log_path = h.dir().join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let listen_s = listen.to_string();
    let mut cmd = h.command(crate::bin("shoal-agent"));
    cmd.arg("origin");
    for (flag, value) in [
        ("--repo", repo.as_os_str()),
        ("--state", state.as_os_str()),
        ("--key", key.as_os_str()),
        ("--listen", listen_s.as_ref()),
        ("--publish-interval", "0s".as_ref()),
        ("--quiet-period", "0s".as_ref()),
        ("--name", name.as_ref()),
    ] {
        cmd.arg(flag).arg(value);
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    h.spawn_command(cmd)
        .unwrap_or_else(|e| panic!("cannot start {name}: {e:#}"));
    NsOrigin {
        url: format!("http://{listen}"),
        repo: repo.to_path_buf(),
        state,
        log: log_path,
    }
}

/// The status of the agent whose state folder is `state`.
pub fn status(state: &Path) -> Option<Status> {
    let out = Command::new(crate::bin("shoal-agent"))
        .arg("status")
        .arg("--state")
        .arg(state)
        .output()
        .ok()?;
    serde_json::from_slice(&out.stdout).ok()
}

impl NsOrigin {
    pub fn status(&self) -> Option<Status> {
        status(&self.state)
    }

    /// Waits up to 60 s until the origin has published generation `g`.
    pub fn wait_generation(&self, g: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.status().is_some_and(|s| s.generation_applied >= g) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the origin did not publish generation {g} within 60s; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
