//! Agents that a deployment tool (Puppet, Ansible) starts under
//! start-stop-daemon: found by their pidfile, and stopped by PID when the
//! test ends, also when it fails. Only processes whose command line names
//! the test's own config file are ever signalled.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Whether `pid` runs. A killed daemon is a zombie until init reaps it:
/// that counts as gone.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .map(|(_, rest)| !rest.starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The command line of `pid`, arguments separated by spaces.
pub fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The file after `--config` on the command line of `pid`, if any.
pub fn config_of(pid: i32) -> Option<PathBuf> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let i = args.iter().position(|a| a == "--config")?;
    args.get(i + 1).map(PathBuf::from)
}

/// The PID a pidfile names.
pub fn read_pid(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile).ok()?.trim().parse().ok()
}

/// Stops one process by PID: SIGTERM, then SIGKILL after 10 s.
pub fn stop_pid(pid: i32) {
    if pid <= 1 || !alive(pid) {
        return;
    }
    // SAFETY: signalling a process this test started (see `Daemons::ours`).
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    while alive(pid) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The daemons a test's tool runs started: each pidfile with the config
/// file its agent runs with. Every PID seen in a pidfile is remembered and,
/// on drop, stopped if it still runs with that config.
#[derive(Default)]
pub struct Daemons {
    watched: Vec<(PathBuf, PathBuf)>,
    seen: Vec<(i32, PathBuf)>,
}

impl Daemons {
    pub fn new() -> Daemons {
        Daemons::default()
    }

    /// Watches `pidfile`, whose agent runs with `--config config`.
    pub fn watch(&mut self, pidfile: &Path, config: &Path) {
        self.watched
            .push((pidfile.to_path_buf(), config.to_path_buf()));
    }

    /// The PID in a watched pidfile now (remembered for the cleanup).
    pub fn pid(&mut self, pidfile: &Path) -> Option<i32> {
        let pid = read_pid(pidfile)?;
        let config = self
            .watched
            .iter()
            .find(|(p, _)| p == pidfile)
            .map(|(_, c)| c.clone())
            .unwrap_or_else(|| panic!("{} is not watched", pidfile.display()));
        if !self.seen.iter().any(|(p, _)| *p == pid) {
            self.seen.push((pid, config));
        }
        Some(pid)
    }

    /// Reads every watched pidfile (remembering what they name).
    pub fn note(&mut self) {
        let files: Vec<PathBuf> = self.watched.iter().map(|(p, _)| p.clone()).collect();
        for f in files {
            let _ = self.pid(&f);
        }
    }

    /// Whether `pid` runs and is an agent of a watched pidfile (its
    /// `--config` is that pidfile's config; paths compare by component, so
    /// `a//b` is `a/b`).
    pub fn ours(&self, pid: i32) -> bool {
        alive(pid)
            && self
                .seen
                .iter()
                .any(|(p, config)| *p == pid && config_of(pid).as_deref() == Some(config.as_path()))
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        self.note();
        for (pid, _) in self.seen.clone() {
            if self.ours(pid) {
                stop_pid(pid);
            }
        }
    }
}
