//! The agent on a host, as `shoal bootstrap` sees it: its `/status` through
//! the admin socket, whether it runs, the tail of its log, and waiting for
//! a freshly started agent to answer.

use super::args::ManagerChoice;
use super::plan::Plan;
use super::ssh::{Out, Remote};
use super::{LOG_LINES, START_TIMEOUT};
use shoal_status::Status;
use std::time::{Duration, Instant};

/// The agent's /status through its admin socket (`shoal-agent status --state`).
pub async fn remote_status(remote: &Remote, plan: &Plan) -> Result<Status, String> {
    let out = remote
        .sh(
            "exec \"$1\" status --state \"$2\"",
            &[
                &plan.agent_bin.to_string_lossy(),
                &plan.state_dir.to_string_lossy(),
            ],
        )
        .await?;
    if !out.ok() {
        return Err(format!(
            "`shoal-agent status` failed: {}",
            one_line(&out.said())
        ));
    }
    serde_json::from_str::<Status>(out.stdout.trim())
        .map_err(|e| format!("`shoal-agent status` printed no status document ({e})"))
}

fn one_line(s: &str) -> String {
    strip_ansi(s)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `systemd` with the unit's name, or (under start-stop-daemon)
/// `daemon` with the pidfile, as `$1`.
async fn by_manager(
    remote: &Remote,
    plan: &Plan,
    manager: ManagerChoice,
    systemd: &str,
    daemon: &str,
) -> Result<Out, String> {
    match manager {
        ManagerChoice::Systemd => remote.sh(systemd, &[&plan.unit_name]).await,
        _ => {
            remote
                .sh(daemon, &[&plan.pidfile().to_string_lossy()])
                .await
        }
    }
}

/// Whether the agent runs (its unit is active, or its pidfile's process).
pub async fn agent_alive(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> bool {
    let out = by_manager(
        remote,
        plan,
        manager,
        "systemctl is-active --quiet \"$1\"",
        "start-stop-daemon --status --pidfile \"$1\" --name shoal-agent",
    )
    .await;
    matches!(out, Ok(o) if o.ok())
}

/// The last lines of the agent's log, as text to append to an error.
pub async fn log_tail(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> String {
    let n = LOG_LINES.to_string();
    let out = match manager {
        ManagerChoice::Systemd => {
            remote
                .sh(
                    "journalctl -u \"$1\" -n \"$2\" --no-pager -o cat 2>&1",
                    &[&plan.unit_name, &n],
                )
                .await
        }
        _ => {
            remote
                .sh(
                    "tail -n \"$2\" -- \"$1\" 2>&1",
                    &[&plan.logfile().to_string_lossy(), &n],
                )
                .await
        }
    };
    let source = match manager {
        ManagerChoice::Systemd => format!("journalctl -u {}", plan.unit_name),
        _ => plan.logfile().display().to_string(),
    };
    match out {
        Ok(o) if !o.stdout.trim().is_empty() => {
            let lines: Vec<String> = strip_ansi(o.stdout.trim_end())
                .lines()
                .map(|l| format!("    {l}"))
                .collect();
            format!("\n  last lines of {source}:\n{}", lines.join("\n"))
        }
        _ => format!("\n  ({source} is empty or unreadable)"),
    }
}

/// Waits until a started agent answers on its admin socket; returns its PID.
pub async fn wait_up(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> Result<u32, String> {
    let deadline = Instant::now() + START_TIMEOUT;
    // Give a process that exits at once (bad config, port taken) the time to do so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    loop {
        if !agent_alive(remote, plan, manager).await {
            let log = log_tail(remote, plan, manager).await;
            return Err(format!(
                "agent fails to start: it exited right after starting{log}"
            ));
        }
        let last = match remote_status(remote, plan).await {
            Ok(_) => break,
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            let log = log_tail(remote, plan, manager).await;
            return Err(format!(
                "agent fails to start: it runs but did not answer on its admin socket within {}s ({last}){log}",
                START_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pid = by_manager(
        remote,
        plan,
        manager,
        "systemctl show -p MainPID --value \"$1\"",
        "cat -- \"$1\"",
    )
    .await;
    Ok(pid
        .ok()
        .and_then(|o| o.stdout.trim().parse().ok())
        .unwrap_or(0))
}

/// Removes ANSI colour sequences (agent logs written to a file keep them).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
    }
}
