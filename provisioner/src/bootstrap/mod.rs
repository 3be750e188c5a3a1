//! `shoal bootstrap`: turn hosts into Shoal mirrors over SSH, in one run.
//!
//! For each host, in this order (each one a *step* that progress lines and
//! errors name):
//!
//! 1. `connect`: an SSH connection through the system `ssh` (the user's SSH
//!    config and agent, host keys checked strictly against known_hosts;
//!    `--accept-new-host-key` is the explicit opt-in to trust a key on first
//!    use). Not root: every later command runs through `sudo -n`.
//! 2. `check`: OS and architecture (a matching `shoal-agent` binary must
//!    exist), systemd as PID 1 or start-stop-daemon, free space at the
//!    repository, the HTTP and BitTorrent ports free (or held by the agent
//!    being replaced).
//! 3. `binary`, `config`, `unit`: the SHA-256 of each remote file is compared
//!    with what would be written; only what differs is uploaded (atomically:
//!    a temporary file renamed over the old one).
//! 4. `service`: started if not running, restarted if the binary or config
//!    (or, under systemd, the unit) changed, left alone otherwise. Without
//!    systemd as PID 1 the agent runs under `start-stop-daemon` with the
//!    pidfile `<state>/agent.pid` and its output in `<state>/agent.log`, the
//!    `daemon` service manager of the Puppet module and the Ansible role.
//! 5. `sync`: waits until the mirror reports the origin's current generation
//!    (read from the origin's `/status` when this machine reaches it,
//!    otherwise the newest generation the mirror learns from its upstreams).
//!
//! `--dry-run` stops after the comparisons and prints what would change.
//!
//! A site with `repositories:` gives a host one agent per repository it
//! serves (config `<config_dir>/<name>.yaml`, unit
//! `shoal-agent@<name>.service`, its own state folder, pidfile and ports,
//! as the Puppet module and the Ansible role deploy them). The agents of one
//! host share its SSH connection and run the steps after `connect` one
//! after the other, each named `<host>/<repository>`; the shared binary is
//! uploaded by the first and found unchanged by the others (which still
//! restart when it changed).
//!
//! Where things are: [`args`] the flags; [`plan`] what each host should end
//! up with; [`ssh`] the session and destinations; [`facts`] what a host is;
//! [`check`] whether it can take an agent; [`upload`] the `binary`,
//! `config` and `unit` steps; [`service`] and [`sync`] the last two steps;
//! [`agent`] the agent's status and log on the host; [`steps`] the order of
//! the steps for one host; [`ui`] the progress lines; [`summary`] the table
//! at the end.

mod agent;
mod args;
mod binary;
mod check;
mod facts;
mod plan;
mod service;
mod ssh;
mod steps;
mod summary;
mod sync;
mod ui;
mod upload;

pub use args::BootstrapArgs;

use crate::status::human_bytes;
use anyhow::{bail, Context as _, Result};
use binary::{inspect_binary, machine_name, LocalBinary};
use plan::{plans_from_flags, plans_from_site, Plan};
use ssh::SshOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use steps::{bootstrap_host, Ctx, HostError};
use summary::Counted;
use summary::{summary, Outcome};
use ui::Ui;

/// The systemd unit's name of a host's one agent (a repository of a
/// multi-repository site has `shoal-agent@<name>.service`, see
/// [`crate::site::Site::unit_name`]).
const UNIT_NAME: &str = "shoal-agent.service";
/// How long a freshly started agent gets to answer on its admin socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the agent's log shown when it fails.
const LOG_LINES: usize = 20;

/// Runs `shoal bootstrap`.
pub fn run(args: &BootstrapArgs) -> Result<ExitCode> {
    let plans = match &args.site {
        Some(site) => plans_from_site(args, site)?,
        None => plans_from_flags(args)?,
    };
    let ui = Ui::new();
    let binaries = local_binaries(&ui, &plans)?;
    let control = tempfile::Builder::new()
        .prefix("shoal-ssh-")
        .tempdir()
        .context("creating a folder for the SSH control sockets")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .context("creating the HTTP client")?;
    let ctx = Arc::new(Ctx {
        ui: ui.clone(),
        ssh: SshOptions {
            accept_new: args.accept_new_host_key,
            connect_timeout: args.connect_timeout,
            ssh_config: args.ssh_config.clone(),
            identity: args.identity.clone(),
            control_dir: control.path().to_path_buf(),
        },
        binaries,
        min_free: args.min_free,
        timeout: args.timeout,
        no_wait: args.no_wait,
        dry_run: args.dry_run,
        http,
    });
    let hosts = by_host(plans);
    let counted = Counted::new(
        hosts
            .iter()
            .flatten()
            .map(|p| (p.host.as_str(), p.repository.is_some())),
    );
    let jobs = usize::from(args.jobs).min(hosts.len()).max(1);
    ui.line(&format!(
        "bootstrapping {}{}, {} at a time{}",
        counted,
        args.site
            .as_ref()
            .map(|s| format!(" of {}", s.display()))
            .unwrap_or_default(),
        jobs,
        if args.dry_run {
            " (dry run: nothing is changed)"
        } else {
            ""
        }
    ));
    let outcomes = run_hosts(ctx, hosts, jobs)?;
    print!("{}", summary(&outcomes, args.dry_run));
    let failed: Vec<&HostError> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    for e in &failed {
        eprintln!("shoal bootstrap: {e}");
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The local binaries of every plan, each read once and announced.
fn local_binaries(ui: &Ui, plans: &[Plan]) -> Result<Vec<LocalBinary>> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for p in plans.iter().flat_map(|p| p.binaries.iter()) {
        if !paths.contains(p) {
            paths.push(p.clone());
        }
    }
    if paths.is_empty() {
        bail!(
            "no shoal-agent binary to upload: pass --agent-binary PATH (build it with \
             `cargo build -p shoal-agent`), or put shoal-agent next to this shoal executable"
        );
    }
    let mut binaries = Vec::new();
    for p in &paths {
        let b = inspect_binary(p)?;
        ui.line(&format!(
            "shoal-agent binary {} ({}, {}, sha256 {}…)",
            b.path.display(),
            machine_name(b.machine),
            human_bytes(b.size),
            &b.sha256[..12]
        ));
        binaries.push(b);
    }
    Ok(binaries)
}

/// The plans grouped by host (their SSH destination), in first-seen order.
fn by_host(plans: Vec<Plan>) -> Vec<Vec<Plan>> {
    let mut hosts: Vec<Vec<Plan>> = Vec::new();
    for p in plans {
        match hosts.iter_mut().find(|g| g[0].dest == p.dest) {
            Some(g) => g.push(p),
            None => hosts.push(vec![p]),
        }
    }
    hosts
}

/// Bootstraps every host, `jobs` at a time, on a small async runtime; the
/// agents of one host one after the other.
fn run_hosts(ctx: Arc<Ctx>, hosts: Vec<Vec<Plan>>, jobs: usize) -> Result<Vec<Outcome>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcomes = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut tasks = Vec::new();
        for plans in hosts {
            let ctx = ctx.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                bootstrap_host(ctx, plans).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.extend(t.await.expect("bootstrap task"));
        }
        out
    });
    drop(rt);
    Ok(outcomes)
}
