//! The `check` step's rules: whether a host can take a Shoal agent (Linux,
//! an architecture a binary at hand runs on, the tools, free space, free
//! ports, the agent's account and the origin key), and what that decides:
//! the binary to upload and the service manager.

use super::args::ManagerChoice;
use super::binary::{machine_for_uname, machine_name, LocalBinary};
use super::facts::{blocks, Facts, Listener};
use super::plan::Plan;
use super::ssh::Remote;
use crate::status::human_bytes;
use std::net::SocketAddr;

/// What the check decided for one host.
pub struct Checked {
    pub bin: LocalBinary,
    pub manager: ManagerChoice,
    /// The line that ends the step.
    pub summary: String,
}

/// Applies every rule to the facts of a host; the first rule broken is
/// the error.
pub fn check_facts(
    binaries: &[LocalBinary],
    min_free: u64,
    plan: &Plan,
    f: &Facts,
) -> Result<Checked, String> {
    if f.os != "Linux" {
        return Err(format!(
            "unsupported OS: the host runs {}, and shoal-agent runs on Linux only",
            f.os
        ));
    }
    let bin = pick_binary(binaries, plan, &f.arch)?;
    let manager = pick_manager(plan.manager, f)?;
    check_tools(manager, f)?;
    check_space(plan, f, min_free)?;
    let running = match manager {
        ManagerChoice::Systemd => f.systemd_pid,
        _ => f.daemon_pid,
    };
    let mut ports = Vec::new();
    for (what, addr) in [("listen", plan.listen), ("peer_listen", plan.peer_listen)] {
        ports.push(check_port(f, running, what, addr)?);
    }
    let mgr = match manager {
        ManagerChoice::Systemd => "systemd".to_string(),
        _ if f.systemd => "start-stop-daemon (asked for)".to_string(),
        _ => "no systemd as PID 1: start-stop-daemon".to_string(),
    };
    let summary = format!(
        "{} {}, {mgr}, {} free at {}, ports {}",
        f.os,
        f.arch,
        human_bytes(f.repo_free.1),
        f.repo_free.0,
        ports.join(", ")
    );
    Ok(Checked {
        bin,
        manager,
        summary,
    })
}

/// The binary of this plan that runs on the host's `uname -m`.
fn pick_binary(binaries: &[LocalBinary], plan: &Plan, arch: &str) -> Result<LocalBinary, String> {
    let Some(machine) = machine_for_uname(arch) else {
        return Err(format!(
            "unsupported architecture {arch}: shoal does not know which binary runs there"
        ));
    };
    let ours = || binaries.iter().filter(|b| plan.binaries.contains(&b.path));
    if let Some(bin) = ours().find(|b| b.machine == machine) {
        return Ok(bin.clone());
    }
    let have: Vec<String> = ours()
        .map(|b| format!("{} ({})", b.path.display(), machine_name(b.machine)))
        .collect();
    Err(format!(
        "unsupported architecture: the host is {arch} but the shoal-agent binaries at hand are {}; \
         build shoal-agent for {} and pass it with --agent-binary",
        if have.is_empty() {
            "none".into()
        } else {
            have.join(", ")
        },
        machine_name(machine)
    ))
}

/// `auto` becomes systemd where it is PID 1, start-stop-daemon elsewhere.
fn pick_manager(asked: ManagerChoice, f: &Facts) -> Result<ManagerChoice, String> {
    match asked {
        ManagerChoice::Auto if f.systemd => Ok(ManagerChoice::Systemd),
        ManagerChoice::Auto => Ok(ManagerChoice::Daemon),
        ManagerChoice::Systemd if !f.systemd => Err(
            "systemd is not PID 1 on the host, but the systemd service manager was asked for; \
             use --service-manager auto or daemon (start-stop-daemon)"
                .into(),
        ),
        m => Ok(m),
    }
}

/// start-stop-daemon (without systemd) and sha256sum are on the host.
fn check_tools(manager: ManagerChoice, f: &Facts) -> Result<(), String> {
    if manager == ManagerChoice::Daemon && !f.have_ssd {
        return Err(
            "start-stop-daemon is missing on the host (it runs the agent without systemd); install \
             it (Debian/Ubuntu: package dpkg; elsewhere: dpkg's start-stop-daemon) or use systemd"
                .into(),
        );
    }
    if !f.have_sha256sum {
        return Err("sha256sum is missing on the host; install coreutils".into());
    }
    Ok(())
}

/// At least `--min-free` at the repository folder.
fn check_space(plan: &Plan, f: &Facts, min_free: u64) -> Result<(), String> {
    if f.repo_free.1 < min_free {
        return Err(format!(
            "no space: {} free at {} (where {} goes), less than --min-free {}; free space there or \
             put the repository on a bigger filesystem",
            human_bytes(f.repo_free.1),
            f.repo_free.0,
            plan.repo_dir.display(),
            human_bytes(min_free)
        ));
    }
    Ok(())
}

/// A listen address is free, or held by the agent being replaced (the
/// process `running`); says which, as `PORT free`.
fn check_port(
    f: &Facts,
    running: Option<u32>,
    what: &str,
    addr: SocketAddr,
) -> Result<String, String> {
    let mut held_by_agent = false;
    for l in f.listeners.iter().filter(|l| blocks(addr, l)) {
        let ours = match running {
            Some(pid) => {
                l.procs.iter().any(|(_, p)| *p == pid)
                    || (!f.listeners_have_pids || l.procs.is_empty())
            }
            None => false,
        };
        if ours {
            held_by_agent = true;
            continue;
        }
        return Err(port_in_use(what, addr, l));
    }
    Ok(format!(
        "{} {}",
        addr.port(),
        if held_by_agent {
            "held by the running agent"
        } else {
            "free"
        }
    ))
}

fn port_in_use(what: &str, addr: SocketAddr, l: &Listener) -> String {
    let who = if l.procs.is_empty() {
        "another program".to_string()
    } else {
        l.procs
            .iter()
            .map(|(n, p)| format!("{n} (pid {p})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = match l.addr {
        Some(a) => SocketAddr::new(a, l.port).to_string(),
        None => format!("*:{}", l.port),
    };
    format!(
        "port in use: the agent's {what} address {addr} is taken by {who}, listening on {at}; \
         stop that program or choose another port ({what} in the site, --{} on the command line)",
        what.replace('_', "-")
    )
}

/// Accounts other than root must exist already (bootstrap does not create them).
pub async fn check_user(remote: &Remote, plan: &Plan) -> Result<(), String> {
    if plan.user == "root" {
        return Ok(());
    }
    remote
        .sh_ok(
            "looking up the agent's user",
            "id -u -- \"$1\" >/dev/null 2>&1 || { echo \"no user $1\" >&2; exit 1; }",
            &[&plan.user],
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "the agent's user '{}' does not exist on the host ({e}); create it \
                 (bootstrap does not create accounts) or use user: root",
                plan.user
            )
        })
}

/// An origin's private key is on the host already (bootstrap never moves keys).
pub async fn check_origin_key(remote: &Remote, plan: &Plan) -> Result<(), String> {
    let Some(k) = &plan.origin_key_file else {
        return Ok(());
    };
    let k = k.to_string_lossy();
    remote
        .sh_ok("looking for the origin key", "test -f \"$1\"", &[&k])
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "the origin's private key {k} is missing on the host ({e}); create it \
                 there with `shoal-agent keygen --out {k}` and put the printed public \
                 key in the site as origin_public_key"
            )
        })
}
