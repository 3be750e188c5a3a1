//! The `service` step: start the agent if it is not running, restart it if
//! its binary, config or (under systemd) unit changed, leave it alone
//! otherwise. Under systemd through the unit; without it through
//! `start-stop-daemon` with the pidfile `<state>/agent.pid` and the log
//! `<state>/agent.log`, the `daemon` service manager of the Puppet module and
//! the Ansible role.

use super::agent::{log_tail, wait_up};
use super::args::ManagerChoice;
use super::plan::Plan;
use super::ssh::Remote;
use super::ui::Step;

/// Reloads systemd when the unit changed (`$2` = yes) and enables `$1`.
const ENABLE_SCRIPT: &str = r#"set -e
if [ "$2" = yes ]; then systemctl daemon-reload; fi
if ! systemctl is-enabled --quiet "$1" 2>/dev/null; then systemctl enable --quiet "$1"; echo enabled; fi"#;

/// Starts (or restarts) the agent under start-stop-daemon. The conventions
/// of the Puppet module's and the Ansible role's `daemon` service manager:
/// found by pidfile and process name, so a replaced binary is still found.
const DAEMON_SCRIPT: &str = r#"set -e
pidfile="$1"; logfile="$2"; bin="$3"; cfg="$4"; chuid="$5"; action="$6"
if [ "$action" = restart ]; then
  start-stop-daemon --stop --quiet --oknodo --retry TERM/30/KILL/5 --remove-pidfile --pidfile "$pidfile" --name shoal-agent
fi
set -- --start --quiet --oknodo --background --make-pidfile --pidfile "$pidfile" --output "$logfile"
if [ -n "$chuid" ]; then set -- "$@" --chuid "$chuid"; fi
start-stop-daemon "$@" --name shoal-agent --startas "$bin" -- --config "$cfg" run"#;

/// What the service step is asked to do on one host.
pub struct Service<'a> {
    pub plan: &'a Plan,
    pub manager: ManagerChoice,
    /// The PID of the agent running now, if one is.
    pub running: Option<u32>,
    /// What changed that needs a restart (`binary`, `config`, `unit`).
    pub because: Vec<&'static str>,
    pub unit_changed: bool,
}

impl Service<'_> {
    fn how(&self) -> &'static str {
        if self.manager == ManagerChoice::Systemd {
            "systemd"
        } else {
            "start-stop-daemon"
        }
    }

    /// `start`, `restart` or `none`.
    fn action(&self) -> &'static str {
        match self.running {
            Some(_) if !self.because.is_empty() => "restart",
            Some(_) => "none",
            None => "start",
        }
    }
}

/// Runs the step; returns the line that ends it and whether anything
/// changed (or, dry, would).
pub async fn service(
    remote: &Remote,
    st: &Step,
    s: &Service<'_>,
    dry_run: bool,
) -> Result<(String, bool), String> {
    let (how, action) = (s.how(), s.action());
    let why = s.because.join(" and ");
    if dry_run {
        let msg = match (action, s.running) {
            ("restart", Some(pid)) => {
                format!("would restart the agent (pid {pid}; {why} changed) with {how}")
            }
            ("start", _) => format!("would start the agent with {how}"),
            (_, Some(pid)) => format!("agent running (pid {pid}), would stay as it is"),
            _ => unreachable!(),
        };
        return Ok((msg, action != "none"));
    }
    make_folders(remote, s.plan).await?;
    let unit_note = if s.manager == ManagerChoice::Systemd {
        enable_unit(remote, &s.plan.unit_name, s.unit_changed).await?
    } else {
        String::new()
    };
    if action == "none" {
        let pid = s.running.expect("running");
        let msg = format!("agent running (pid {pid}) under {how}, left as it is{unit_note}");
        let changed = !unit_note.is_empty();
        return Ok((msg, changed));
    }
    st.note(if action == "restart" {
        format!("restarting the agent ({why} changed)")
    } else {
        format!("starting the agent with {how}")
    });
    if let Err(e) = start(remote, s.plan, s.manager, action).await {
        let log = log_tail(remote, s.plan, s.manager).await;
        return Err(format!("the agent did not start: {e}{log}"));
    }
    let pid = wait_up(remote, s.plan, s.manager).await?;
    let msg = if action == "restart" {
        format!("agent restarted under {how} (pid {pid}; {why} changed){unit_note}")
    } else {
        format!("agent started under {how} (pid {pid}){unit_note}")
    };
    Ok((msg, true))
}

/// The folders the agent writes, owned by its account.
async fn make_folders(remote: &Remote, plan: &Plan) -> Result<(), String> {
    let owner = format!("{}:{}", plan.user, plan.group);
    remote
        .sh_ok(
            "creating the repository and state folders",
            "set -e; mkdir -p -- \"$1\" \"$2\"; chown -- \"$3\" \"$1\" \"$2\"",
            &[
                &plan.repo_dir.to_string_lossy(),
                &plan.state_dir.to_string_lossy(),
                &owner,
            ],
        )
        .await
        .map(|_| ())
}

/// Enables the systemd unit; returns `, unit enabled` when it was not yet.
async fn enable_unit(remote: &Remote, unit: &str, unit_changed: bool) -> Result<String, String> {
    let out = remote
        .sh_ok(
            "enabling the systemd unit",
            ENABLE_SCRIPT,
            &[unit, if unit_changed { "yes" } else { "no" }],
        )
        .await?;
    Ok(if out.contains("enabled") {
        ", unit enabled".into()
    } else {
        String::new()
    })
}

/// `systemctl start|restart`, or start-stop-daemon.
async fn start(
    remote: &Remote,
    plan: &Plan,
    manager: ManagerChoice,
    action: &str,
) -> Result<String, String> {
    if manager == ManagerChoice::Systemd {
        let unit = &plan.unit_name;
        return remote
            .sh_ok(
                &format!("systemctl {action} {unit}"),
                "systemctl \"$1\" \"$2\"",
                &[action, unit],
            )
            .await;
    }
    let pidfile = plan.pidfile().to_string_lossy().into_owned();
    let logfile = plan.logfile().to_string_lossy().into_owned();
    let bin = plan.agent_bin.to_string_lossy().into_owned();
    let cfg = plan.config_file.to_string_lossy().into_owned();
    let chuid = if plan.user == "root" {
        String::new()
    } else {
        format!("{}:{}", plan.user, plan.group)
    };
    remote
        .sh_ok(
            "start-stop-daemon",
            DAEMON_SCRIPT,
            &[&pidfile, &logfile, &bin, &cfg, &chuid, action],
        )
        .await
}
