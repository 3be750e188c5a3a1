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

use crate::status::{fetch_status, human_bytes};
use anyhow::{anyhow, bail, Context as _, Result};
use clap::{Args, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use shoal_config::{AgentConfig, MirrorConfig, Profile, Role};
use shoal_provisioner::render::{render_agent_config, render_unit};
use shoal_provisioner::site::{self, Site};
use shoal_status::Status;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The systemd unit's name on every host.
const UNIT_NAME: &str = "shoal-agent.service";
/// How long a freshly started agent gets to answer on its admin socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the agent's log shown when it fails.
const LOG_LINES: usize = 20;

/// Make hosts Shoal mirrors over SSH: check, upload, configure, start, wait.
///
/// In one run per host: checks the host (OS, architecture, free disk at the
/// repository, the listen ports free), uploads the matching shoal-agent
/// binary, writes the agent config and the systemd unit, starts the agent
/// (systemd where it is PID 1, otherwise start-stop-daemon with the pidfile
/// <state>/agent.pid and the log <state>/agent.log), waits until the mirror
/// reports the origin's current generation, and prints a summary.
///
/// Idempotent: files whose SHA-256 already matches are not uploaded, and a
/// running agent whose binary and config did not change is not restarted; a
/// second run changes nothing and says so. Several hosts run in parallel
/// (--jobs). Exits with 1 if any host failed; each error names the host and
/// the step.
///
/// With --site, the hosts, paths and settings come from the site file;
/// without it, --origin, --origin-key and --repo describe a mirror (the other
/// settings take the documented defaults of docs/parameters.md).
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The hosts: SSH destinations `[user@]host` or `ssh://[user@]host[:port]`.
    /// With --site each must be a host of the site (matched by its `host` or
    /// `address`), and no HOST means every mirror of the site. Without --site
    /// at least one HOST is needed.
    #[arg(value_name = "HOST")]
    pub hosts: Vec<String>,

    /// The site file (site.yaml) that describes the hosts.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["origin", "origin_key", "repo", "state", "listen", "peer_listen", "name", "profile"])]
    pub site: Option<PathBuf>,

    /// Without --site: the origin's HTTP URL the mirrors follow, such as
    /// http://archive.example.org:8780.
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,

    /// Without --site: the origin's public key `ed25519:<64 hex>`, as printed
    /// by `shoal-agent keygen` on the origin.
    #[arg(long, value_name = "KEY")]
    pub origin_key: Option<String>,

    /// Without --site: the mirror's repository folder (the live tree clients read).
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,

    /// Without --site: the agent's state folder (pack store, manifests,
    /// pidfile, log); must be outside --repo [default: /var/lib/shoal].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,

    /// Without --site: the agent's HTTP listen address [default: 0.0.0.0:8780].
    /// With a wildcard address, other agents reach it at http://HOST:PORT.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Without --site: the BitTorrent listen address [default: listen port + 1].
    #[arg(long, value_name = "ADDR:PORT")]
    pub peer_listen: Option<SocketAddr>,

    /// Without --site, with one HOST: the agent's name in /status and its trace
    /// file [default: the host's name, as the agent sees it].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Without --site: the repository profile, debian, rpm or generic; it must
    /// be the origin's [default: generic].
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<Profile>,

    /// The shoal-agent binary to upload; repeat it for several architectures
    /// (each host gets the one built for its `uname -m`). Default: the site's
    /// binary_source when it is a file on this machine, else the shoal-agent
    /// next to this shoal executable.
    #[arg(long, value_name = "PATH")]
    pub agent_binary: Vec<PathBuf>,

    /// Install everything under this folder on the host (binary, config,
    /// unit, repository, state): `/usr/local/bin` becomes
    /// `PREFIX/usr/local/bin`. `{host}` in it is replaced by the host's name.
    /// For tests and trials; it implies the start-stop-daemon service
    /// manager, since systemd does not read units from there.
    #[arg(long, value_name = "DIR")]
    pub prefix: Option<String>,

    /// SSH login user for hosts given without `user@` (default: what your SSH
    /// config says, else your local user name).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Use this SSH client config file instead of ~/.ssh/config (`ssh -F`).
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,

    /// Log in with this private key only (`ssh -i FILE -o IdentitiesOnly=yes`);
    /// by default your SSH agent and config decide.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<PathBuf>,

    /// Trust a host's key on first use and add it to known_hosts
    /// (`StrictHostKeyChecking=accept-new`). A key that differs from a known
    /// one is refused all the same. Without this option, hosts must already
    /// be in known_hosts.
    #[arg(long)]
    pub accept_new_host_key: bool,

    /// How long to wait for the SSH connection, e.g. 10s.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// How to run the agent: `auto` uses systemd where it is PID 1 and
    /// start-stop-daemon elsewhere (a site's service_manager setting is
    /// honoured); `systemd` or `daemon` force one.
    #[arg(long, value_name = "MANAGER", default_value = "auto")]
    pub service_manager: ManagerChoice,

    /// Refuse hosts with less free space than this at the repository folder,
    /// e.g. 1GiB, 500GB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub min_free: u64,

    /// How long to wait for a mirror to reach the origin's generation, e.g. 10m.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,

    /// Do not wait for the mirrors to sync; stop once the agent runs.
    #[arg(long)]
    pub no_wait: bool,

    /// Connect and check, compare the files, and print what would change,
    /// without changing anything on the hosts.
    #[arg(long)]
    pub dry_run: bool,

    /// Bootstrap at most this many hosts at the same time.
    #[arg(long, value_name = "N", default_value = "4", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
}

/// `--service-manager`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManagerChoice {
    /// systemd where it is PID 1, start-stop-daemon elsewhere.
    Auto,
    /// A systemd unit (fails on hosts without systemd as PID 1).
    Systemd,
    /// start-stop-daemon with a pidfile.
    Daemon,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    shoal_config::parse_duration(s)
}

fn parse_size(s: &str) -> Result<u64, String> {
    shoal_config::parse_bytes(s)
}

// ---------------------------------------------------------------------------
// What to do on each host
// ---------------------------------------------------------------------------

/// An SSH destination as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Dest {
    /// Parses `[user@]host` or `ssh://[user@]host[:port]`.
    pub fn parse(s: &str) -> Result<Dest> {
        let bad = || {
            anyhow!(
                "'{s}' is not an SSH destination: write [user@]host or ssh://[user@]host[:port]"
            )
        };
        let (uri, rest) = match s.strip_prefix("ssh://") {
            Some(r) => (true, r.trim_end_matches('/')),
            None => (false, s),
        };
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(bad()),
            None => (None, rest),
        };
        let (host, port) = if uri {
            if let Some(h) = hostport.strip_prefix('[') {
                let (h, after) = h.split_once(']').ok_or_else(bad)?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                    None if after.is_empty() => None,
                    None => return Err(bad()),
                };
                (h.to_string(), port)
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad())?)),
                    None => (hostport.to_string(), None),
                }
            }
        } else {
            (hostport.to_string(), None)
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.starts_with('-') {
            return Err(bad());
        }
        Ok(Dest { user, host, port })
    }

    /// The destination for `ssh`, with `default_user` when none was given.
    pub fn to_ssh(&self, default_user: Option<&str>) -> String {
        let user = self.user.as_deref().or(default_user);
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (user, self.port) {
            (u, Some(p)) => format!(
                "ssh://{}{host}:{p}",
                u.map(|u| format!("{u}@")).unwrap_or_default()
            ),
            (Some(u), None) => format!("{u}@{}", self.host),
            (None, None) => self.host.clone(),
        }
    }
}

/// Everything needed to bootstrap one host.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The host's name in every line and error.
    pub label: String,
    /// The SSH destination.
    pub dest: String,
    pub role: Role,
    pub agent_bin: PathBuf,
    pub config_file: PathBuf,
    pub unit_file: PathBuf,
    pub repo_dir: PathBuf,
    pub state_dir: PathBuf,
    pub listen: SocketAddr,
    pub peer_listen: SocketAddr,
    pub user: String,
    pub group: String,
    /// After the site's and the command line's say.
    pub manager: ManagerChoice,
    pub config_text: String,
    pub unit_text: String,
    /// The origin's HTTP URL (mirrors): where the target generation is read.
    pub origin_url: Option<String>,
    /// The origin's private key file on the host (origin role).
    pub origin_key_file: Option<PathBuf>,
    /// Local binaries to pick from (by architecture).
    pub binaries: Vec<PathBuf>,
}

impl Plan {
    fn pidfile(&self) -> PathBuf {
        self.state_dir.join("agent.pid")
    }
    fn logfile(&self) -> PathBuf {
        self.state_dir.join("agent.log")
    }
}

fn under_prefix(prefix: &Path, p: &Path) -> PathBuf {
    prefix.join(p.strip_prefix("/").unwrap_or(p))
}

fn prefix_for(args: &BootstrapArgs, host: &str) -> Result<Option<PathBuf>> {
    let Some(p) = &args.prefix else {
        return Ok(None);
    };
    let p = PathBuf::from(p.replace("{host}", host));
    if !p.is_absolute() {
        bail!(
            "--prefix {}: must be an absolute folder, such as /tmp/shoal-trial/{{host}}",
            p.display()
        );
    }
    Ok(Some(p))
}

fn manager_from(args: &BootstrapArgs, site_says: Option<&str>) -> ManagerChoice {
    match (args.service_manager, site_says) {
        (ManagerChoice::Auto, Some("daemon")) => ManagerChoice::Daemon,
        (ManagerChoice::Auto, Some("systemd")) => ManagerChoice::Systemd,
        (m, _) => m,
    }
}

fn check_manager_with_prefix(
    label: &str,
    m: ManagerChoice,
    prefixed: bool,
) -> Result<ManagerChoice> {
    match (m, prefixed) {
        (ManagerChoice::Systemd, true) => bail!(
            "{label}: --prefix puts the unit where systemd does not read it; use \
             --service-manager daemon (or auto) with --prefix"
        ),
        (ManagerChoice::Auto, true) => Ok(ManagerChoice::Daemon),
        (m, _) => Ok(m),
    }
}

/// The plans for `--site`.
pub fn plans_from_site(args: &BootstrapArgs, path: &Path) -> Result<Vec<Plan>> {
    let site = Site::load(path).map_err(|e| {
        anyhow!(
            "{e}\n{}: {} problem(s); fix them (`shoal check --site {}` lists them) and run again",
            path.display(),
            e.0.len(),
            path.display()
        )
    })?;
    let mut picked: Vec<(site::Host, Dest)> = Vec::new();
    if args.hosts.is_empty() {
        if site.mirrors().is_empty() {
            bail!(
                "{}: the site has no mirrors; add a `mirrors:` list, or name the host to bootstrap",
                path.display()
            );
        }
        for h in site.mirrors() {
            picked.push((
                h.clone(),
                Dest {
                    user: None,
                    host: h.address.clone(),
                    port: None,
                },
            ));
        }
    } else {
        for a in &args.hosts {
            let d = Dest::parse(a)?;
            let Some(h) = site
                .hosts
                .iter()
                .find(|h| h.host == d.host)
                .or_else(|| site.hosts.iter().find(|h| h.address == d.host))
            else {
                let names: Vec<String> = site
                    .hosts
                    .iter()
                    .map(|h| {
                        if h.address == h.host {
                            h.host.clone()
                        } else {
                            format!("{} ({})", h.host, h.address)
                        }
                    })
                    .collect();
                bail!(
                    "{a}: not a host of {}; its hosts are: {}. Add it to the site, or bootstrap it \
                     without --site (--origin, --origin-key, --repo)",
                    path.display(),
                    names.join(", ")
                );
            };
            // The site's address is how this machine reaches the host.
            let dest = Dest {
                user: d.user.clone(),
                host: h.address.clone(),
                port: d.port,
            };
            picked.push((h.clone(), dest));
        }
    }
    let origin_url = site.origin().advertise_url.clone();
    let mut plans = Vec::new();
    for (mut h, dest) in picked {
        let prefix = prefix_for(args, &h.host)?;
        if let Some(p) = &prefix {
            for dir in [
                &mut h.repo_dir,
                &mut h.state_dir,
                &mut h.install_dir,
                &mut h.config_dir,
                &mut h.unit_dir,
                &mut h.origin_key_file,
            ] {
                *dir = under_prefix(p, dir);
            }
        }
        let config_text = render_agent_config(&site, &h);
        AgentConfig::from_yaml(&config_text, &format!("agent config of {}", h.host)).map_err(
            |e| anyhow!("{e} (this is a bug in shoal's agent template; please report it)"),
        )?;
        let unit_text = render_unit(&site, &h);
        let site_says = h
            .params
            .service_manager
            .as_deref()
            .or(site.defaults.service_manager.as_deref());
        let manager =
            check_manager_with_prefix(&h.host, manager_from(args, site_says), prefix.is_some())?;
        let mut binaries = args.agent_binary.clone();
        if binaries.is_empty() {
            let src = PathBuf::from(&h.binary_source);
            if !h.binary_source.contains("://") && src.is_file() {
                binaries.push(src);
            }
            binaries.extend(sibling_agent());
        }
        plans.push(Plan {
            label: h.host.clone(),
            dest: dest.to_ssh(args.user.as_deref()),
            role: h.role,
            agent_bin: h.agent_binary(),
            config_file: h.config_file(),
            unit_file: h.unit_dir.join(UNIT_NAME),
            repo_dir: h.repo_dir.clone(),
            state_dir: h.state_dir.clone(),
            listen: h.listen,
            peer_listen: h.peer_addr().unwrap_or(h.listen),
            user: h.user.clone(),
            group: h.group.clone(),
            manager,
            config_text,
            unit_text,
            origin_url: (h.role == Role::Mirror).then(|| origin_url.clone()),
            origin_key_file: (h.role == Role::Origin).then(|| h.origin_key_file.clone()),
            binaries,
        });
    }
    Ok(plans)
}

/// `shoal-agent` next to the running `shoal`, if there is one.
fn sibling_agent() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("shoal-agent");
    p.is_file().then_some(p)
}

/// The plans for the flags without a site (`--origin URL --origin-key KEY --repo DIR`).
pub fn plans_from_flags(args: &BootstrapArgs) -> Result<Vec<Plan>> {
    let (Some(origin), Some(key), Some(repo)) = (&args.origin, &args.origin_key, &args.repo) else {
        bail!(
            "say what to set up: --site FILE, or --origin URL --origin-key KEY --repo DIR \
             (the origin's HTTP URL, its public key from `shoal-agent keygen`, and the mirror's repository folder)"
        );
    };
    if args.hosts.is_empty() {
        bail!("name the hosts to bootstrap, such as `shoal bootstrap root@mirror1.example.org --origin ...`");
    }
    site::check_url(origin).map_err(|why| {
        anyhow!("--origin {origin}: {why}; write the origin's http://HOST:PORT, such as http://archive.example.org:8780")
    })?;
    if args.name.is_some() && args.hosts.len() > 1 {
        bail!("--name names one agent, but {} hosts are given; leave it out (each agent then uses its host name)", args.hosts.len());
    }
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/shoal"));
    let listen = args
        .listen
        .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8780));
    let mut binaries = args.agent_binary.clone();
    if binaries.is_empty() {
        binaries.extend(sibling_agent());
    }
    let mut plans = Vec::new();
    for a in &args.hosts {
        let d = Dest::parse(a)?;
        let prefix = prefix_for(args, &d.host)?;
        let at = |p: &str| -> PathBuf {
            match &prefix {
                Some(x) => under_prefix(x, Path::new(p)),
                None => PathBuf::from(p),
            }
        };
        let repo_dir = at(&repo.to_string_lossy());
        let state_dir = at(&state.to_string_lossy());
        let (install_dir, config_dir, unit_dir) = (
            at("/usr/local/bin"),
            at("/etc/shoal"),
            at("/etc/systemd/system"),
        );
        for (flag, p) in [("--repo", repo), ("--state", &state)] {
            if !p.is_absolute() {
                bail!(
                    "{flag} {}: must be an absolute path on the host",
                    p.display()
                );
            }
        }
        let advertise_url = listen.ip().is_unspecified().then(|| {
            let h = if d.host.contains(':') {
                format!("[{}]", d.host)
            } else {
                d.host.clone()
            };
            format!("http://{h}:{}", listen.port())
        });
        let cfg = AgentConfig {
            role: Role::Mirror,
            name: args.name.clone(),
            repo: repo_dir.clone(),
            state: state_dir.clone(),
            profile: args.profile.unwrap_or_default(),
            listen,
            peer_listen: args.peer_listen,
            advertise_url,
            origin: Default::default(),
            mirror: MirrorConfig {
                origin_key: Some(key.clone()),
                upstreams: vec![origin.clone()],
                ..Default::default()
            },
            network: Default::default(),
            log: Default::default(),
        };
        cfg.validate("the command line")
            .map_err(|e| anyhow!("{e}: fix the flag and run again"))?;
        let config_text = format!(
            "# shoal-agent configuration for {} (mirror), written by `shoal bootstrap`.\n{}",
            d.host,
            cfg.to_yaml()
        );
        let back = AgentConfig::from_yaml(&config_text, "the rendered config")
            .map_err(|e| anyhow!("{e} (this is a bug in shoal; please report it)"))?;
        if back != cfg {
            bail!("the rendered agent config does not read back as written (this is a bug in shoal; please report it)");
        }
        let label = d.host.clone();
        let host = flags_host(
            &label,
            &d,
            &cfg,
            &install_dir,
            &config_dir,
            &unit_dir,
            &binaries,
        );
        let fake_site = Site {
            file: "shoal bootstrap flags".into(),
            name: "bootstrap".into(),
            defaults: Default::default(),
            hosts: vec![host.clone()],
            storage: None,
            spans: site::Spans::parse(""),
        };
        let unit_text = render_unit(&fake_site, &host);
        let manager =
            check_manager_with_prefix(&label, manager_from(args, None), prefix.is_some())?;
        plans.push(Plan {
            label,
            dest: d.to_ssh(args.user.as_deref()),
            role: Role::Mirror,
            agent_bin: host.agent_binary(),
            config_file: host.config_file(),
            unit_file: unit_dir.join(UNIT_NAME),
            repo_dir,
            state_dir,
            listen,
            peer_listen: cfg.peer_listen().unwrap_or(listen),
            user: "root".into(),
            group: "root".into(),
            manager,
            config_text,
            unit_text,
            origin_url: Some(origin.clone()),
            origin_key_file: None,
            binaries: binaries.clone(),
        });
    }
    Ok(plans)
}

/// The site model's view of a mirror described by flags, for the unit
/// template (the defaults of docs/parameters.md where no flag exists).
fn flags_host(
    label: &str,
    d: &Dest,
    cfg: &AgentConfig,
    install_dir: &Path,
    config_dir: &Path,
    unit_dir: &Path,
    binaries: &[PathBuf],
) -> site::Host {
    site::Host {
        host: label.to_string(),
        address: d.host.clone(),
        role: Role::Mirror,
        path: "command line".into(),
        params: Default::default(),
        agent_name: cfg.name.clone(),
        repo_dir: cfg.repo.clone(),
        state_dir: cfg.state.clone(),
        profile: cfg.profile,
        listen: cfg.listen,
        peer_listen: cfg.peer_listen,
        advertise_url: cfg.advertise_url(),
        origin_key_file: config_dir.join("origin.key"),
        origin_public_key: cfg.mirror.origin_key.clone(),
        upstreams: cfg.mirror.upstreams.clone(),
        publish_interval: cfg.origin.publish_interval,
        manifest_ttl: cfg.origin.manifest_ttl,
        poll_interval: cfg.mirror.poll_interval,
        delete_grace: cfg.mirror.delete_grace,
        upload_limit: cfg.network.upload_limit,
        download_limit: cfg.network.download_limit,
        log_format: cfg.log.format,
        binary_source: binaries
            .first()
            .map(|b| b.display().to_string())
            .unwrap_or_default(),
        binary_checksum: None,
        install_dir: install_dir.to_path_buf(),
        config_dir: config_dir.to_path_buf(),
        unit_dir: unit_dir.to_path_buf(),
        user: "root".into(),
        group: "root".into(),
        manage_user: false,
        service_manager: site::ServiceManager::Systemd,
        service_ensure: "running".into(),
        manage_web: false,
        web_server_name: None,
        web_port: 80,
    }
}

// ---------------------------------------------------------------------------
// Local binaries
// ---------------------------------------------------------------------------

/// A local shoal-agent binary: its architecture, size and SHA-256.
#[derive(Debug, Clone)]
pub struct LocalBinary {
    pub path: PathBuf,
    pub machine: u16,
    pub size: u64,
    pub sha256: String,
}

/// ELF `e_machine` values and the `uname -m` names that run them.
const MACHINES: &[(u16, &str, &[&str])] = &[
    (0x3e, "x86_64", &["x86_64", "amd64"]),
    (0xb7, "aarch64", &["aarch64", "arm64", "armv8l"]),
    (0x28, "arm", &["armv7l", "armv6l", "armv7", "arm"]),
    (0x03, "i386", &["i386", "i486", "i586", "i686"]),
    (0xf3, "riscv64", &["riscv64"]),
    (0x15, "ppc64", &["ppc64le", "ppc64"]),
    (0x16, "s390x", &["s390x"]),
    (0x102, "loongarch64", &["loongarch64"]),
];

/// The architecture name of an ELF machine number.
pub fn machine_name(m: u16) -> String {
    MACHINES
        .iter()
        .find(|(n, _, _)| *n == m)
        .map(|(_, name, _)| name.to_string())
        .unwrap_or_else(|| format!("ELF machine {m:#x}"))
}

/// The ELF machine number that runs on a host whose `uname -m` says `arch`.
pub fn machine_for_uname(arch: &str) -> Option<u16> {
    MACHINES
        .iter()
        .find(|(_, _, names)| names.contains(&arch))
        .map(|(n, _, _)| *n)
}

/// Reads the ELF header's machine field (the file must be a Linux ELF executable).
pub fn elf_machine(header: &[u8]) -> Result<u16, String> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return Err("not an ELF executable (build shoal-agent for Linux)".into());
    }
    let m = match header[5] {
        1 => u16::from_le_bytes([header[18], header[19]]),
        2 => u16::from_be_bytes([header[18], header[19]]),
        _ => return Err("an ELF file with an unknown byte order".into()),
    };
    Ok(m)
}

fn inspect_binary(path: &Path) -> Result<LocalBinary> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)
        .with_context(|| format!("--agent-binary {}: cannot open it", path.display()))?;
    let mut header = [0u8; 64];
    let n = f.read(&mut header)?;
    let machine =
        elf_machine(&header[..n]).map_err(|e| anyhow!("--agent-binary {}: {e}", path.display()))?;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok(LocalBinary {
        path: path.to_path_buf(),
        machine,
        size,
        sha256: hex::encode(h.finalize()),
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

// ---------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------

/// Progress output: a spinner (or a byte bar) per step on a terminal, plain
/// lines otherwise.
#[derive(Clone)]
struct Ui {
    mp: Option<MultiProgress>,
}

impl Ui {
    fn new() -> Ui {
        Ui {
            mp: std::io::stdout()
                .is_terminal()
                .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
        }
    }

    fn line(&self, s: &str) {
        match &self.mp {
            Some(mp) => {
                let _ = mp.println(s);
            }
            None => println!("{s}"),
        }
    }

    fn step(&self, host: &str, name: &'static str) -> Step {
        let pb = self.mp.as_ref().map(|mp| {
            let pb = mp.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {wide_msg}")
                    .expect("template"),
            );
            pb.set_prefix(format!("[{host}] {name}"));
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Step {
            ui: self.clone(),
            pb,
            host: host.to_string(),
            name,
            done: false,
        }
    }
}

struct Step {
    ui: Ui,
    pb: Option<ProgressBar>,
    host: String,
    name: &'static str,
    done: bool,
}

impl Step {
    /// A note while the step runs (a printed line without a terminal).
    fn note(&self, msg: impl Into<String>) {
        let msg = msg.into();
        match &self.pb {
            Some(pb) => pb.set_message(msg),
            None => self
                .ui
                .line(&format!("[{}] {}: {msg}", self.host, self.name)),
        }
    }

    /// Whether progress goes to a terminal (plain lines otherwise).
    fn is_tty(&self) -> bool {
        self.pb.is_some()
    }

    /// Byte progress (a bar on a terminal; nothing otherwise).
    fn bytes(&self, done: u64, total: u64) {
        if let Some(pb) = &self.pb {
            if pb.length() != Some(total) {
                pb.set_style(
                    ProgressStyle::with_template(
                        "{spinner:.cyan} {prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                pb.set_length(total);
            }
            pb.set_position(done);
        }
    }

    fn finish(mut self, ok: bool, msg: impl Into<String>) {
        self.done = true;
        let msg = msg.into();
        let line = if ok {
            format!("[{}] {}: {msg}", self.host, self.name)
        } else {
            format!("[{}] {}: FAILED: {msg}", self.host, self.name)
        };
        // A finished step becomes a permanent line (printed above the
        // spinners still running), whole however long it is.
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        self.ui.line(&line);
    }

    fn done(self, msg: impl Into<String>) {
        self.finish(true, msg)
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if !self.done {
            if let Some(pb) = &self.pb {
                pb.abandon();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A failure on one host, naming the host and the step.
#[derive(Debug, Clone)]
pub struct HostError {
    pub host: String,
    pub step: &'static str,
    pub message: String,
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: step {} failed: {}",
            self.host, self.step, self.message
        )
    }
}

/// Turns what `ssh` said when connecting into an explanation with advice.
pub fn explain_ssh_failure(dest: &str, ssh_said: &str) -> String {
    let text = ssh_said.replace('\r', "");
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .collect();
    let quote = |lines: &[&str]| -> String {
        let tail: Vec<&str> = lines.iter().rev().take(2).rev().copied().collect();
        tail.join(" / ")
    };
    let host = dest
        .trim_start_matches("ssh://")
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(dest.trim_start_matches("ssh://"));
    let has = |s: &str| text.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || (has("Host key for") && has("has changed"))
    {
        format!(
            "host key mismatch: {host} presented a key that differs from the one in known_hosts \
             (ssh: \"{}\"). This is either a man-in-the-middle attack or a reinstalled host: verify \
             the host's new fingerprint out of band, then remove the old entry with \
             `ssh-keygen -R {host}` and run again. shoal never turns host key checking off.",
            quote(&said)
        )
    } else if has("host key is known for") || (has("Host key verification failed") && has("No ")) {
        format!(
            "unknown host key: {host} is not in known_hosts and host keys are checked strictly \
             (ssh: \"{}\"). Verify its fingerprint and add it to known_hosts (for example by \
             connecting once with ssh), or pass --accept-new-host-key to trust its key on first use.",
            quote(&said)
        )
    } else if has("Host key verification failed") {
        format!(
            "host key verification failed for {host} (ssh: \"{}\"); check known_hosts and the \
             host's key. shoal never turns host key checking off.",
            quote(&said)
        )
    } else if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "authentication failed for {dest} (ssh: \"{}\"): make sure the key in your SSH agent \
             or given with --identity is in the user's authorized_keys on the host, and that the \
             user name is right (user@host or --user).",
            quote(&said)
        )
    } else if has("Could not resolve hostname") {
        format!(
            "host unreachable: the name {host} does not resolve (ssh: \"{}\"); check the host \
             name or use its address.",
            quote(&said)
        )
    } else if has("Connection refused")
        || has("No route to host")
        || has("Network is unreachable")
        || has("timed out")
        || has("Connection closed")
        || has("Connection reset")
    {
        format!(
            "host unreachable: cannot open an SSH connection to {host} (ssh: \"{}\"); check the \
             address and port, that sshd runs there, and any firewall between.",
            quote(&said)
        )
    } else if said.is_empty() {
        format!("ssh could not connect to {dest} and said nothing; try `ssh -v {dest}` by hand")
    } else {
        format!("ssh could not connect to {dest}: {}", said.join(" / "))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(": {x}"));
        src = x.source();
    }
    s
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

// ---------------------------------------------------------------------------
// The remote side
// ---------------------------------------------------------------------------

struct Remote {
    session: Session,
    sudo: bool,
}

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
    fn said(&self) -> String {
        let s = format!("{}\n{}", self.stderr.trim(), self.stdout.trim());
        s.trim().to_string()
    }
}

impl Remote {
    fn command(&self, script: &str, args: &[&str]) -> openssh::Command<'_> {
        let mut c = if self.sudo {
            let mut c = self.session.command("sudo");
            c.arg("-n").arg("sh");
            c
        } else {
            self.session.command("sh")
        };
        c.arg("-c").arg(script).arg("shoal").args(args);
        c
    }

    /// Runs a POSIX sh script with positional arguments.
    async fn sh(&self, script: &str, args: &[&str]) -> Result<Out, String> {
        let out = self.command(script, args).output().await.map_err(|e| {
            format!(
                "the SSH connection failed while running a command: {}",
                error_chain(&e)
            )
        })?;
        Ok(Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Like [`Remote::sh`], but a non-zero exit is an error saying `what` failed.
    async fn sh_ok(&self, what: &str, script: &str, args: &[&str]) -> Result<String, String> {
        let out = self.sh(script, args).await?;
        if !out.ok() {
            return Err(format!(
                "{what} failed (exit {}): {}",
                out.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "by signal".into()),
                out.said()
            ));
        }
        Ok(out.stdout)
    }

    /// Runs a script with `data` on its stdin; `progress` sees bytes sent.
    async fn sh_stdin(
        &self,
        script: &str,
        args: &[&str],
        mut data: impl tokio::io::AsyncRead + Unpin,
        mut progress: impl FnMut(u64),
    ) -> Result<Out, String> {
        let conn = |e: openssh::Error| format!("the SSH connection failed: {}", error_chain(&e));
        let mut child = self
            .command(script, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(conn)?;
        let mut stdin = child
            .stdin()
            .take()
            .ok_or("no stdin for the remote command")?;
        let mut buf = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        let mut write_err = None;
        loop {
            let n = data
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the local file: {e}"))?;
            if n == 0 {
                break;
            }
            if let Err(e) = stdin.write_all(&buf[..n]).await {
                write_err = Some(e);
                break;
            }
            sent += n as u64;
            progress(sent);
        }
        if write_err.is_none() {
            if let Err(e) = stdin.shutdown().await {
                write_err = Some(e);
            }
        }
        drop(stdin);
        let out = child.wait_with_output().await.map_err(conn)?;
        let out = Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if let Some(e) = write_err {
            if out.ok() {
                return Err(format!("sending data failed: {e}"));
            }
        }
        Ok(out)
    }
}

/// Facts about the host, from [`CHECK_SCRIPT`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts {
    pub os: String,
    pub arch: String,
    pub systemd: bool,
    pub have_ssd: bool,
    pub have_sha256sum: bool,
    pub have_ss: bool,
    pub repo_free: (String, u64),
    pub bin_free: (String, u64),
    pub daemon_pid: Option<u32>,
    pub systemd_pid: Option<u32>,
    pub listeners: Vec<Listener>,
    /// The listeners carry the owning processes (from `ss -p`).
    pub listeners_have_pids: bool,
}

/// A listening TCP socket on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `None` for a wildcard address.
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// `(name, pid)` of the processes holding it.
    pub procs: Vec<(String, u32)>,
}

/// Gathers [`Facts`]. Arguments: repo dir, install dir, pidfile, unit name.
const CHECK_SCRIPT: &str = r#"
repo="$1"; bindir="$2"; pidfile="$3"; unit="$4"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
for t in start-stop-daemon sha256sum ss; do
  if command -v "$t" >/dev/null 2>&1; then echo "have_$t=yes"; else echo "have_$t=no"; fi
done
free_at() {
  d="$1"
  while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done
  echo "$2_path=$d"
  echo "$2_kib=$(df -Pk -- "$d" | awk 'NR==2 {print $4}')"
}
free_at "$repo" repo
free_at "$bindir" bin
if [ -f "$pidfile" ] && command -v start-stop-daemon >/dev/null 2>&1 &&
   start-stop-daemon --status --pidfile "$pidfile" --name shoal-agent; then
  echo "daemon_pid=$(cat -- "$pidfile")"
fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet "$unit" 2>/dev/null; then
  echo "systemd_pid=$(systemctl show -p MainPID --value "$unit")"
fi
echo "--- listeners"
if command -v ss >/dev/null 2>&1; then
  echo "ss"
  ss -Hltnp
else
  echo "proc"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
fi
"#;

/// Parses the output of [`CHECK_SCRIPT`].
pub fn parse_facts(out: &str) -> Result<Facts, String> {
    let mut f = Facts::default();
    let mut lines = out.lines();
    let mut saw_os = false;
    for line in lines.by_ref() {
        if line == "--- listeners" {
            break;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k {
            "os" => {
                f.os = v.to_string();
                saw_os = true;
            }
            "arch" => f.arch = v.to_string(),
            "systemd" => f.systemd = v == "yes",
            "have_start-stop-daemon" => f.have_ssd = v == "yes",
            "have_sha256sum" => f.have_sha256sum = v == "yes",
            "have_ss" => f.have_ss = v == "yes",
            "repo_path" => f.repo_free.0 = v.to_string(),
            "repo_kib" => f.repo_free.1 = v.parse::<u64>().unwrap_or(0) * 1024,
            "bin_path" => f.bin_free.0 = v.to_string(),
            "bin_kib" => f.bin_free.1 = v.parse::<u64>().unwrap_or(0) * 1024,
            "daemon_pid" => f.daemon_pid = v.parse().ok(),
            "systemd_pid" => f.systemd_pid = v.parse().ok().filter(|p| *p != 0),
            _ => {}
        }
    }
    if !saw_os {
        return Err(format!(
            "the host check printed nothing usable: {}",
            out.trim()
        ));
    }
    match lines.next() {
        Some("ss") => {
            f.listeners = lines.filter_map(parse_ss_line).collect();
            f.listeners_have_pids = true;
        }
        Some("proc") => f.listeners = lines.filter_map(parse_proc_net_tcp_line).collect(),
        _ => {}
    }
    Ok(f)
}

/// An address as `ss` prints it: `0.0.0.0`, `*`, `[::]`, `[::ffff:1.2.3.4]`, `127.0.0.53%lo`.
fn parse_ss_addr(s: &str) -> Option<(Option<IpAddr>, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse().ok()?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let h = h.split('%').next().unwrap_or(h);
    if h == "*" {
        return Some((None, port));
    }
    let ip: IpAddr = h.parse().ok()?;
    Some((Some(ip).filter(|i| !i.is_unspecified()), port))
}

/// One line of `ss -Hltnp`.
pub fn parse_ss_line(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 5 || fields[0] != "LISTEN" {
        return None;
    }
    let (addr, port) = parse_ss_addr(fields[3])?;
    let rest = fields[5..].join(" ");
    let mut procs = Vec::new();
    let mut s = rest.as_str();
    while let Some(i) = s.find("(\"") {
        s = &s[i + 2..];
        let Some(end) = s.find('"') else { break };
        let name = s[..end].to_string();
        s = &s[end..];
        if let Some(j) = s.find("pid=") {
            let digits: String = s[j + 4..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(pid) = digits.parse() {
                procs.push((name, pid));
            }
        }
    }
    Some(Listener { addr, port, procs })
}

/// One line of /proc/net/tcp or /proc/net/tcp6 (state 0A is LISTEN).
pub fn parse_proc_net_tcp_line(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 4 || fields[3] != "0A" {
        return None;
    }
    let (h, p) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match h.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(h, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let word = u32::from_str_radix(&h[w * 8..w * 8 + 8], 16)
                    .ok()?
                    .swap_bytes();
                bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Listener {
        addr: Some(ip).filter(|i| !i.is_unspecified()),
        port,
        procs: Vec::new(),
    })
}

/// Whether a listener stands in the way of binding `want`.
pub fn blocks(want: SocketAddr, l: &Listener) -> bool {
    if l.port != want.port() {
        return false;
    }
    let w = want.ip();
    match l.addr {
        None => true,
        Some(have) => {
            let have = match have {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(have),
                v4 => v4,
            };
            if w.is_unspecified() {
                // A wildcard bind of one family collides with any address of that family.
                w.is_ipv4() == have.is_ipv4()
            } else {
                have == w
            }
        }
    }
}

// ---------------------------------------------------------------------------
// One host
// ---------------------------------------------------------------------------

/// Settings shared by every host of a run.
struct Ctx {
    ui: Ui,
    args_accept_new: bool,
    connect_timeout: Duration,
    ssh_config: Option<PathBuf>,
    identity: Option<PathBuf>,
    control_dir: PathBuf,
    binaries: Vec<LocalBinary>,
    min_free: u64,
    timeout: Duration,
    no_wait: bool,
    dry_run: bool,
    http: reqwest::Client,
}

/// How a host ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub label: String,
    pub changed: Vec<String>,
    pub service: String,
    pub generation: String,
    pub seconds: f64,
    pub error: Option<HostError>,
}

struct HostRun<'a> {
    ctx: &'a Ctx,
    plan: &'a Plan,
    changed: Vec<String>,
    service: String,
    generation: String,
}

type StepResult<T> = Result<T, HostError>;

impl HostRun<'_> {
    fn fail(&self, step: &'static str, message: impl Into<String>) -> HostError {
        HostError {
            host: self.plan.label.clone(),
            step,
            message: message.into(),
        }
    }

    /// Runs `f` as a step: its `Ok` text ends the step, its error fails it.
    async fn step<T, F, Fut>(&mut self, name: &'static str, f: F) -> StepResult<T>
    where
        F: FnOnce(Step) -> Fut,
        Fut: std::future::Future<Output = Result<(T, Step, String), (Step, String)>>,
    {
        let st = self.ctx.ui.step(&self.plan.label, name);
        match f(st).await {
            Ok((v, st, msg)) => {
                st.done(msg);
                Ok(v)
            }
            Err((st, msg)) => {
                st.finish(false, msg.clone());
                Err(self.fail(name, msg))
            }
        }
    }

    async fn connect(&mut self) -> StepResult<Remote> {
        let ctx = self.ctx;
        let plan = self.plan;
        self.step("connect", |st| async move {
            let mut b = SessionBuilder::default();
            b.known_hosts_check(if ctx.args_accept_new {
                KnownHosts::Add
            } else {
                KnownHosts::Strict
            });
            b.connect_timeout(ctx.connect_timeout);
            b.server_alive_interval(Duration::from_secs(15));
            b.control_directory(&ctx.control_dir);
            b.control_persist(ControlPersist::IdleFor(
                std::num::NonZeroUsize::new(300).expect("nonzero"),
            ));
            if let Some(f) = &ctx.ssh_config {
                b.config_file(f);
            }
            if let Some(k) = &ctx.identity {
                b.keyfile(k);
            }
            let session = match b.connect_mux(&plan.dest).await {
                Ok(s) => s,
                Err(e) => {
                    let said = match &e {
                        openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
                        other => error_chain(other),
                    };
                    return Err((st, explain_ssh_failure(&plan.dest, &said)));
                }
            };
            let mut remote = Remote {
                session,
                sudo: false,
            };
            let who = match remote.sh_ok("`id`", "id -u; id -un", &[]).await {
                Ok(o) => o,
                Err(e) => return Err((st, e)),
            };
            let mut it = who.lines();
            let uid = it.next().unwrap_or("").trim().to_string();
            let name = it.next().unwrap_or("?").trim().to_string();
            let how = if uid == "0" {
                format!("logged in as {name}")
            } else {
                match remote.sh("sudo -n true", &[]).await {
                    Ok(o) if o.ok() => {
                        remote.sudo = true;
                        format!("logged in as {name}, using sudo")
                    }
                    Ok(o) => {
                        return Err((
                            st,
                            format!(
                                "logged in as {name} (not root), and `sudo -n` does not work ({}): \
                                 log in as root (root@host) or give {name} passwordless sudo",
                                o.said()
                            ),
                        ))
                    }
                    Err(e) => return Err((st, e)),
                }
            };
            let keys = if ctx.args_accept_new {
                "host key verified or newly trusted (--accept-new-host-key)"
            } else {
                "host key verified against known_hosts"
            };
            Ok((remote, st, format!("{} ({how}; {keys})", plan.dest)))
        })
        .await
    }

    async fn check(&mut self, remote: &Remote) -> StepResult<(Facts, LocalBinary, ManagerChoice)> {
        let ctx = self.ctx;
        let plan = self.plan;
        self.step("check", |st| async move {
            let install_dir = plan.agent_bin.parent().unwrap_or(Path::new("/"));
            let pidfile = plan.pidfile();
            let out = match remote
                .sh_ok(
                    "the host check",
                    CHECK_SCRIPT,
                    &[
                        &plan.repo_dir.to_string_lossy(),
                        &install_dir.to_string_lossy(),
                        &pidfile.to_string_lossy(),
                        UNIT_NAME,
                    ],
                )
                .await
            {
                Ok(o) => o,
                Err(e) => return Err((st, e)),
            };
            let facts = match parse_facts(&out) {
                Ok(f) => f,
                Err(e) => return Err((st, e)),
            };
            match check_facts(ctx, plan, &facts) {
                Ok((bin, manager, summary)) => {
                    // Accounts other than root must exist already.
                    if plan.user != "root" {
                        if let Err(e) = remote
                            .sh_ok(
                                "looking up the agent's user",
                                "id -u -- \"$1\" >/dev/null 2>&1 || { echo \"no user $1\" >&2; exit 1; }",
                                &[&plan.user],
                            )
                            .await
                        {
                            return Err((
                                st,
                                format!(
                                    "the agent's user '{}' does not exist on the host ({e}); create it \
                                     (bootstrap does not create accounts) or use user: root",
                                    plan.user
                                ),
                            ));
                        }
                    }
                    if let Some(k) = &plan.origin_key_file {
                        let k = k.to_string_lossy();
                        if let Err(e) = remote.sh_ok("looking for the origin key", "test -f \"$1\"", &[&k]).await {
                            return Err((
                                st,
                                format!(
                                    "the origin's private key {k} is missing on the host ({e}); create it \
                                     there with `shoal-agent keygen --out {k}` and put the printed public \
                                     key in the site as origin_public_key"
                                ),
                            ));
                        }
                    }
                    Ok(((facts, bin, manager), st, summary))
                }
                Err(e) => Err((st, e)),
            }
        })
        .await
    }

    /// Compares and, unless dry, uploads the binary. True if it changed.
    async fn binary(
        &mut self,
        remote: &Remote,
        bin: &LocalBinary,
        facts: &Facts,
    ) -> StepResult<bool> {
        let ctx = self.ctx;
        let plan = self.plan;
        let changed = self
            .step("binary", |st| async move {
                let target = plan.agent_bin.to_string_lossy().into_owned();
                let have = match remote_sha256(remote, &target).await {
                    Ok(h) => h,
                    Err(e) => return Err((st, e)),
                };
                let short = &bin.sha256[..12];
                if have.as_deref() == Some(bin.sha256.as_str()) {
                    return Ok((false, st, format!("{target} unchanged (sha256 {short}…)")));
                }
                let why = if have.is_some() { "differs" } else { "missing" };
                if ctx.dry_run {
                    return Ok((
                        true,
                        st,
                        format!(
                            "would upload {} ({}, {}) to {target} ({why} there)",
                            bin.path.display(),
                            machine_name(bin.machine),
                            human_bytes(bin.size)
                        ),
                    ));
                }
                let need = bin.size + (16 << 20);
                if facts.bin_free.1 < need {
                    return Err((
                        st,
                        format!(
                            "no space: {} free at {} but the binary needs {}; free some space there",
                            human_bytes(facts.bin_free.1),
                            facts.bin_free.0,
                            human_bytes(need)
                        ),
                    ));
                }
                st.note(format!("uploading {} to {target}", human_bytes(bin.size)));
                let file = match tokio::fs::File::open(&bin.path).await {
                    Ok(f) => f,
                    Err(e) => return Err((st, format!("cannot read {}: {e}", bin.path.display()))),
                };
                let tmp = format!("{target}.shoal-new");
                let script = r#"set -e
mkdir -p -- "$(dirname -- "$1")"
cat > "$2"
sum=$(sha256sum -- "$2" | cut -d' ' -f1)
if [ "$sum" != "$3" ]; then rm -f -- "$2"; echo "the uploaded file's sha256 is $sum, expected $3" >&2; exit 1; fi
chmod 0755 -- "$2"
mv -f -- "$2" "$1""#;
                let total = bin.size;
                let out = remote
                    .sh_stdin(script, &[&target, &tmp, &bin.sha256], file, |n| st.bytes(n, total))
                    .await;
                match out {
                    Ok(o) if o.ok() => Ok((
                        true,
                        st,
                        format!(
                            "uploaded {} to {target} ({why} before; sha256 {short}…)",
                            human_bytes(bin.size)
                        ),
                    )),
                    Ok(o) => Err((st, format!("uploading to {target} failed: {}", o.said()))),
                    Err(e) => Err((st, e)),
                }
            })
            .await?;
        if changed {
            self.changed.push("binary".into());
        }
        Ok(changed)
    }

    /// Compares and, unless dry, writes a small file. True if it changed.
    async fn file(
        &mut self,
        remote: &Remote,
        step: &'static str,
        path: &Path,
        content: &str,
        note: &str,
    ) -> StepResult<bool> {
        let ctx = self.ctx;
        let changed = self
            .step(step, |st| async move {
                let target = path.to_string_lossy().into_owned();
                let want = sha256_hex(content.as_bytes());
                let have = match remote_sha256(remote, &target).await {
                    Ok(h) => h,
                    Err(e) => return Err((st, e)),
                };
                if have.as_deref() == Some(want.as_str()) {
                    return Ok((false, st, format!("{target} unchanged{note}")));
                }
                let verb = if have.is_some() { "update" } else { "write" };
                if ctx.dry_run {
                    return Ok((true, st, format!("would {verb} {target}{note}")));
                }
                let script = r#"set -e
mkdir -p -- "$(dirname -- "$1")"
umask 022
cat > "$1.shoal-new"
chmod 0644 -- "$1.shoal-new"
mv -f -- "$1.shoal-new" "$1""#;
                match remote
                    .sh_stdin(script, &[&target], content.as_bytes(), |_| {})
                    .await
                {
                    Ok(o) if o.ok() => {
                        let done = if verb == "update" {
                            "updated"
                        } else {
                            "written"
                        };
                        Ok((true, st, format!("{target} {done}{note}")))
                    }
                    Ok(o) => Err((st, format!("writing {target} failed: {}", o.said()))),
                    Err(e) => Err((st, e)),
                }
            })
            .await?;
        if changed {
            self.changed.push(step.into());
        }
        Ok(changed)
    }

    async fn service(
        &mut self,
        remote: &Remote,
        manager: ManagerChoice,
        facts: &Facts,
        restart_because: Vec<&'static str>,
        unit_changed: bool,
    ) -> StepResult<()> {
        let ctx = self.ctx;
        let plan = self.plan;
        let running = match manager {
            ManagerChoice::Systemd => facts.systemd_pid,
            _ => facts.daemon_pid,
        };
        let (service, changed) = self
            .step("service", |st| async move {
                let how = if manager == ManagerChoice::Systemd {
                    "systemd"
                } else {
                    "start-stop-daemon"
                };
                let why = restart_because.join(" and ");
                let action = match running {
                    Some(_) if !restart_because.is_empty() => "restart",
                    Some(_) => "none",
                    None => "start",
                };
                if ctx.dry_run {
                    let msg = match (action, running) {
                        ("restart", Some(pid)) => format!("would restart the agent (pid {pid}; {why} changed) with {how}"),
                        ("start", _) => format!("would start the agent with {how}"),
                        (_, Some(pid)) => format!("agent running (pid {pid}), would stay as it is"),
                        _ => unreachable!(),
                    };
                    return Ok(((msg.clone(), action != "none"), st, msg));
                }
                // Folders the agent writes, owned by its account.
                let owner = format!("{}:{}", plan.user, plan.group);
                if let Err(e) = remote
                    .sh_ok(
                        "creating the repository and state folders",
                        "set -e; mkdir -p -- \"$1\" \"$2\"; chown -- \"$3\" \"$1\" \"$2\"",
                        &[&plan.repo_dir.to_string_lossy(), &plan.state_dir.to_string_lossy(), &owner],
                    )
                    .await
                {
                    return Err((st, e));
                }
                let mut unit_note = String::new();
                if manager == ManagerChoice::Systemd {
                    let script = r#"set -e
if [ "$2" = yes ]; then systemctl daemon-reload; fi
if ! systemctl is-enabled --quiet "$1" 2>/dev/null; then systemctl enable --quiet "$1"; echo enabled; fi"#;
                    match remote
                        .sh_ok("enabling the systemd unit", script, &[UNIT_NAME, if unit_changed { "yes" } else { "no" }])
                        .await
                    {
                        Ok(o) if o.contains("enabled") => unit_note = ", unit enabled".into(),
                        Ok(_) => {}
                        Err(e) => return Err((st, e)),
                    }
                }
                if action == "none" {
                    let pid = running.expect("running");
                    let msg = format!("agent running (pid {pid}) under {how}, left as it is{unit_note}");
                    return Ok(((msg.clone(), !unit_note.is_empty()), st, msg));
                }
                st.note(if action == "restart" {
                    format!("restarting the agent ({why} changed)")
                } else {
                    format!("starting the agent with {how}")
                });
                let r = match manager {
                    ManagerChoice::Systemd => {
                        remote
                            .sh_ok(
                                &format!("systemctl {action} {UNIT_NAME}"),
                                "systemctl \"$1\" \"$2\"",
                                &[action, UNIT_NAME],
                            )
                            .await
                    }
                    _ => {
                        let pidfile = plan.pidfile().to_string_lossy().into_owned();
                        let logfile = plan.logfile().to_string_lossy().into_owned();
                        let bin = plan.agent_bin.to_string_lossy().into_owned();
                        let cfg = plan.config_file.to_string_lossy().into_owned();
                        let chuid = if plan.user == "root" { String::new() } else { owner.clone() };
                        // The conventions of the Puppet module's and the Ansible
                        // role's `daemon` service manager: found by pidfile and
                        // process name, so a replaced binary is still found.
                        let script = r#"set -e
pidfile="$1"; logfile="$2"; bin="$3"; cfg="$4"; chuid="$5"; action="$6"
if [ "$action" = restart ]; then
  start-stop-daemon --stop --quiet --oknodo --retry TERM/30/KILL/5 --remove-pidfile --pidfile "$pidfile" --name shoal-agent
fi
set -- --start --quiet --oknodo --background --make-pidfile --pidfile "$pidfile" --output "$logfile"
if [ -n "$chuid" ]; then set -- "$@" --chuid "$chuid"; fi
start-stop-daemon "$@" --name shoal-agent --startas "$bin" -- --config "$cfg" run"#;
                        remote
                            .sh_ok(
                                "start-stop-daemon",
                                script,
                                &[&pidfile, &logfile, &bin, &cfg, &chuid, action],
                            )
                            .await
                    }
                };
                if let Err(e) = r {
                    let log = log_tail(remote, plan, manager).await;
                    return Err((st, format!("the agent did not start: {e}{log}")));
                }
                match wait_up(remote, plan, manager).await {
                    Ok(pid) => {
                        let msg = if action == "restart" {
                            format!("agent restarted under {how} (pid {pid}; {why} changed){unit_note}")
                        } else {
                            format!("agent started under {how} (pid {pid}){unit_note}")
                        };
                        Ok(((msg.clone(), true), st, msg))
                    }
                    Err(e) => Err((st, e)),
                }
            })
            .await?;
        self.service = service;
        if changed {
            self.changed.push(if ctx.dry_run {
                "service (would)".into()
            } else {
                "service".into()
            });
        }
        Ok(())
    }

    async fn sync(&mut self, remote: &Remote, manager: ManagerChoice) -> StepResult<()> {
        let ctx = self.ctx;
        let plan = self.plan;
        let gen = self
            .step("sync", |st| async move {
                if plan.role == Role::Origin {
                    return match remote_status(remote, plan).await {
                        Ok(s) => {
                            let g = s.generation_applied;
                            Ok((format!("{g}"), st, format!("origin at generation {g}")))
                        }
                        Err(e) => Err((st, e)),
                    };
                }
                let origin_url = plan.origin_url.clone().unwrap_or_default();
                // The target: the origin's newest generation, read from here.
                let (target, note) = match fetch_status(&ctx.http, &origin_url).await {
                    Ok(s) => (Some(s.generation_applied), format!("the origin {origin_url}")),
                    Err(e) => (
                        None,
                        format!(
                            "the mirror's upstreams (this machine cannot read the origin: {e})"
                        ),
                    ),
                };
                if target == Some(0) {
                    return Ok((
                        "0".to_string(),
                        st,
                        "the origin has not published a generation yet; nothing to wait for".to_string(),
                    ));
                }
                st.note(match target {
                    Some(t) => format!(
                        "waiting for generation {t} from {note} (timeout {})",
                        shoal_config::format_duration(ctx.timeout)
                    ),
                    None => format!(
                        "waiting for the newest generation known to {note} (timeout {})",
                        shoal_config::format_duration(ctx.timeout)
                    ),
                });
                let start = Instant::now();
                let deadline = start + ctx.timeout;
                let mut last: Option<Status> = None;
                let mut last_err = String::new();
                let mut failures = 0;
                let mut last_note = Instant::now();
                loop {
                    match remote_status(remote, plan).await {
                        Ok(s) => {
                            failures = 0;
                            let reached = match target {
                                Some(t) => s.generation_applied >= t,
                                None => s.generation_known > 0 && s.generation_applied >= s.generation_known,
                            };
                            if reached {
                                let g = s.generation_applied;
                                let of = target.unwrap_or(s.generation_known);
                                return Ok((
                                    format!("{g}/{of}"),
                                    st,
                                    format!(
                                        "generation {g} applied ({} files, {}; origin at {of}) after {:.1}s",
                                        s.files,
                                        human_bytes(s.bytes),
                                        start.elapsed().as_secs_f64()
                                    ),
                                ));
                            }
                            last = Some(s);
                        }
                        Err(e) => {
                            failures += 1;
                            last_err = e;
                            if failures >= 3 && !agent_alive(remote, plan, manager).await {
                                let log = log_tail(remote, plan, manager).await;
                                return Err((st, format!("the agent stopped while syncing ({last_err}){log}")));
                            }
                        }
                    }
                    if Instant::now() >= deadline {
                        let what = match target {
                            Some(t) => format!("generation {t}"),
                            None => "the newest generation".to_string(),
                        };
                        let now = match &last {
                            Some(s) => format!(
                                "the mirror has generation {} (knows {}, state {}); last error: {}",
                                s.generation_applied,
                                s.generation_known,
                                s.state,
                                s.last_error.as_deref().unwrap_or("none")
                            ),
                            None => format!("the mirror's status could not be read ({last_err})"),
                        };
                        return Err((
                            st,
                            format!(
                                "sync not reached: {what} not applied within {}: {now}. Check that the \
                                 mirror reaches its upstreams and that origin_public_key is the origin's key; \
                                 or raise --timeout",
                                shoal_config::format_duration(ctx.timeout)
                            ),
                        ));
                    }
                    let quiet = !st.is_tty() && last_note.elapsed() < Duration::from_secs(10);
                    if let (Some(s), false) = (&last, quiet) {
                        last_note = Instant::now();
                        st.note(format!(
                            "generation {} of {} ({}), {}s",
                            s.generation_applied,
                            target.unwrap_or(s.generation_known),
                            s.state,
                            start.elapsed().as_secs()
                        ));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
            .await?;
        self.generation = gen;
        Ok(())
    }
}

/// `sha256sum` of a remote file; `None` when it does not exist.
async fn remote_sha256(remote: &Remote, path: &str) -> Result<Option<String>, String> {
    let out = remote
        .sh(
            "if [ -f \"$1\" ]; then sha256sum -- \"$1\"; else echo missing; fi",
            &[path],
        )
        .await?;
    if !out.ok() {
        return Err(format!(
            "reading the checksum of {path} failed: {}",
            out.said()
        ));
    }
    let first = out.stdout.split_whitespace().next().unwrap_or("");
    if first == "missing" {
        return Ok(None);
    }
    if first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(Some(first.to_ascii_lowercase()));
    }
    Err(format!(
        "unexpected sha256sum output for {path}: {}",
        out.stdout.trim()
    ))
}

/// The agent's /status through its admin socket (`shoal-agent status --state`).
async fn remote_status(remote: &Remote, plan: &Plan) -> Result<Status, String> {
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

async fn agent_alive(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> bool {
    let out = match manager {
        ManagerChoice::Systemd => {
            remote
                .sh("systemctl is-active --quiet \"$1\"", &[UNIT_NAME])
                .await
        }
        _ => {
            remote
                .sh(
                    "start-stop-daemon --status --pidfile \"$1\" --name shoal-agent",
                    &[&plan.pidfile().to_string_lossy()],
                )
                .await
        }
    };
    matches!(out, Ok(o) if o.ok())
}

/// The last lines of the agent's log, as text to append to an error.
async fn log_tail(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> String {
    let n = LOG_LINES.to_string();
    let out = match manager {
        ManagerChoice::Systemd => {
            remote
                .sh(
                    "journalctl -u \"$1\" -n \"$2\" --no-pager -o cat 2>&1",
                    &[UNIT_NAME, &n],
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
        ManagerChoice::Systemd => format!("journalctl -u {UNIT_NAME}"),
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
async fn wait_up(remote: &Remote, plan: &Plan, manager: ManagerChoice) -> Result<u32, String> {
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
    let pid = match manager {
        ManagerChoice::Systemd => {
            remote
                .sh("systemctl show -p MainPID --value \"$1\"", &[UNIT_NAME])
                .await
        }
        _ => {
            remote
                .sh("cat -- \"$1\"", &[&plan.pidfile().to_string_lossy()])
                .await
        }
    };
    Ok(pid
        .ok()
        .and_then(|o| o.stdout.trim().parse().ok())
        .unwrap_or(0))
}

/// The check step's decisions: the binary to upload, the service manager, a summary.
fn check_facts(
    ctx: &Ctx,
    plan: &Plan,
    f: &Facts,
) -> Result<(LocalBinary, ManagerChoice, String), String> {
    if f.os != "Linux" {
        return Err(format!(
            "unsupported OS: the host runs {}, and shoal-agent runs on Linux only",
            f.os
        ));
    }
    let Some(machine) = machine_for_uname(&f.arch) else {
        return Err(format!(
            "unsupported architecture {}: shoal does not know which binary runs there",
            f.arch
        ));
    };
    let Some(bin) = ctx
        .binaries
        .iter()
        .find(|b| b.machine == machine && plan.binaries.contains(&b.path))
        .cloned()
    else {
        let have: Vec<String> = ctx
            .binaries
            .iter()
            .filter(|b| plan.binaries.contains(&b.path))
            .map(|b| format!("{} ({})", b.path.display(), machine_name(b.machine)))
            .collect();
        return Err(format!(
            "unsupported architecture: the host is {} but the shoal-agent binaries at hand are {}; \
             build shoal-agent for {} and pass it with --agent-binary",
            f.arch,
            if have.is_empty() { "none".into() } else { have.join(", ") },
            machine_name(machine)
        ));
    };
    let manager =
        match plan.manager {
            ManagerChoice::Auto if f.systemd => ManagerChoice::Systemd,
            ManagerChoice::Auto => ManagerChoice::Daemon,
            ManagerChoice::Systemd if !f.systemd => return Err(
                "systemd is not PID 1 on the host, but the systemd service manager was asked for; \
                 use --service-manager auto or daemon (start-stop-daemon)"
                    .into(),
            ),
            m => m,
        };
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
    if f.repo_free.1 < ctx.min_free {
        return Err(format!(
            "no space: {} free at {} (where {} goes), less than --min-free {}; free space there or \
             put the repository on a bigger filesystem",
            human_bytes(f.repo_free.1),
            f.repo_free.0,
            plan.repo_dir.display(),
            human_bytes(ctx.min_free)
        ));
    }
    let running = match manager {
        ManagerChoice::Systemd => f.systemd_pid,
        _ => f.daemon_pid,
    };
    let mut ports = Vec::new();
    for (what, addr) in [("listen", plan.listen), ("peer_listen", plan.peer_listen)] {
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
            return Err(format!(
                "port in use: the agent's {what} address {addr} is taken by {who}, listening on {at}; \
                 stop that program or choose another port ({what} in the site, --{} on the command line)",
                what.replace('_', "-")
            ));
        }
        ports.push(format!(
            "{} {}",
            addr.port(),
            if held_by_agent {
                "held by the running agent"
            } else {
                "free"
            }
        ));
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
    Ok((bin, manager, summary))
}

async fn bootstrap_host(ctx: Arc<Ctx>, plan: Plan) -> Outcome {
    let started = Instant::now();
    let mut run = HostRun {
        ctx: &ctx,
        plan: &plan,
        changed: Vec::new(),
        service: String::new(),
        generation: "-".into(),
    };
    let result = run_host(&mut run).await;
    Outcome {
        label: plan.label.clone(),
        changed: run.changed,
        service: run.service,
        generation: run.generation,
        seconds: started.elapsed().as_secs_f64(),
        error: result.err(),
    }
}

async fn run_host(run: &mut HostRun<'_>) -> StepResult<()> {
    let remote = run.connect().await?;
    let result = run_steps(run, &remote).await;
    let _ = remote.session.close().await;
    result
}

async fn run_steps(run: &mut HostRun<'_>, remote: &Remote) -> StepResult<()> {
    let plan = run.plan;
    let (facts, bin, manager) = run.check(remote).await?;
    let bin_changed = run.binary(remote, &bin, &facts).await?;
    let cfg_changed = run
        .file(remote, "config", &plan.config_file, &plan.config_text, "")
        .await?;
    let unit_note = if manager == ManagerChoice::Systemd {
        ""
    } else {
        " (not used: the agent runs under start-stop-daemon)"
    };
    let unit_changed = run
        .file(remote, "unit", &plan.unit_file, &plan.unit_text, unit_note)
        .await?;
    let mut because = Vec::new();
    if bin_changed {
        because.push("binary");
    }
    if cfg_changed {
        because.push("config");
    }
    if unit_changed && manager == ManagerChoice::Systemd {
        because.push("unit");
    }
    run.service(remote, manager, &facts, because, unit_changed)
        .await?;
    if run.ctx.dry_run || run.ctx.no_wait {
        return Ok(());
    }
    run.sync(remote, manager).await
}

// ---------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------

/// Runs `shoal bootstrap`.
pub fn run(args: &BootstrapArgs) -> Result<ExitCode> {
    let plans = match &args.site {
        Some(site) => plans_from_site(args, site)?,
        None => plans_from_flags(args)?,
    };
    // The local binaries, each read once.
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
    let ui = Ui::new();
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
        args_accept_new: args.accept_new_host_key,
        connect_timeout: args.connect_timeout,
        ssh_config: args.ssh_config.clone(),
        identity: args.identity.clone(),
        control_dir: control.path().to_path_buf(),
        binaries,
        min_free: args.min_free,
        timeout: args.timeout,
        no_wait: args.no_wait,
        dry_run: args.dry_run,
        http,
    });
    let jobs = usize::from(args.jobs).min(plans.len()).max(1);
    ui.line(&format!(
        "bootstrapping {} host(s){}, {} at a time{}",
        plans.len(),
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let outcomes: Vec<Outcome> = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(jobs));
        let mut tasks = Vec::new();
        for plan in plans {
            let ctx = ctx.clone();
            let sem = sem.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore open");
                bootstrap_host(ctx, plan).await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("bootstrap task"));
        }
        out
    });
    drop(rt);
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

/// The table printed at the end.
pub fn summary(outcomes: &[Outcome], dry_run: bool) -> String {
    let header = ["HOST", "RESULT", "CHANGED", "GENERATION", "TIME", "AGENT"];
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            let result = match (&o.error, o.changed.is_empty(), dry_run) {
                (Some(e), _, _) => format!("FAILED at {}", e.step),
                (None, true, _) => "unchanged".into(),
                (None, false, true) => "would change".into(),
                (None, false, false) => "changed".into(),
            };
            vec![
                o.label.clone(),
                result,
                if o.changed.is_empty() {
                    "-".into()
                } else {
                    o.changed.join(",")
                },
                o.generation.clone(),
                format!("{:.1}s", o.seconds),
                if o.service.is_empty() {
                    "-".into()
                } else {
                    o.service.clone()
                },
            ]
        })
        .collect();
    let mut out = String::from("\n");
    out.push_str(&crate::status::format_table(&header, &rows));
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let unchanged = outcomes
        .iter()
        .filter(|o| o.error.is_none() && o.changed.is_empty())
        .count();
    let changed = outcomes.len() - failed - unchanged;
    let verb = if dry_run { "would change" } else { "changed" };
    out.push_str(&format!(
        "{} host(s): {changed} {verb}, {unchanged} unchanged, {failed} failed.",
        outcomes.len()
    ));
    if failed == 0 && changed == 0 {
        out.push_str(" Nothing to do: every host is already as described.");
    } else if dry_run {
        out.push_str(" Dry run: nothing was changed.");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let d = Dest::parse("root@mirror3.example.org").unwrap();
        assert_eq!(
            d,
            Dest {
                user: Some("root".into()),
                host: "mirror3.example.org".into(),
                port: None
            }
        );
        assert_eq!(d.to_ssh(Some("admin")), "root@mirror3.example.org");
        let d = Dest::parse("mirror3").unwrap();
        assert_eq!(d.to_ssh(None), "mirror3");
        assert_eq!(d.to_ssh(Some("admin")), "admin@mirror3");
        let d = Dest::parse("ssh://ops@10.0.0.7:2222").unwrap();
        assert_eq!(d.port, Some(2222));
        assert_eq!(d.to_ssh(None), "ssh://ops@10.0.0.7:2222");
        let d = Dest::parse("ssh://[fd00::7]:22").unwrap();
        assert_eq!(d.host, "fd00::7");
        assert_eq!(d.to_ssh(Some("root")), "ssh://root@[fd00::7]:22");
        assert!(Dest::parse("@host").is_err());
        assert!(Dest::parse("-oProxyCommand=x").is_err());
        assert!(Dest::parse("ssh://h:port").is_err());
    }

    #[test]
    fn elf_machine_is_read() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 0xb7;
        assert_eq!(elf_machine(&h), Ok(0xb7));
        assert_eq!(machine_name(0xb7), "aarch64");
        assert_eq!(machine_for_uname("aarch64"), Some(0xb7));
        assert_eq!(machine_for_uname("x86_64"), Some(0x3e));
        assert_eq!(machine_for_uname("pdp11"), None);
        assert!(elf_machine(b"#!/bin/sh\n")
            .unwrap_err()
            .contains("not an ELF"));
    }

    #[test]
    fn ss_lines_parse() {
        let l = parse_ss_line(
            "LISTEN 0      4096      10.231.5.2:8780       0.0.0.0:*    users:((\"shoal-agent\",pid=4242,fd=12))",
        )
        .unwrap();
        assert_eq!(l.addr, Some("10.231.5.2".parse().unwrap()));
        assert_eq!(l.port, 8780);
        assert_eq!(l.procs, vec![("shoal-agent".to_string(), 4242)]);
        let l = parse_ss_line(
            "LISTEN 0 128 [::]:22 [::]:* users:((\"sshd\",pid=1,fd=3),(\"sshd\",pid=9,fd=3))",
        )
        .unwrap();
        assert_eq!(l.addr, None);
        assert_eq!(l.procs.len(), 2);
        let l = parse_ss_line("LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*").unwrap();
        assert_eq!(l.addr, Some("127.0.0.53".parse().unwrap()));
        assert!(l.procs.is_empty());
        assert_eq!(parse_ss_line("LISTEN 0 5 *:8780 *:*").unwrap().addr, None);
    }

    #[test]
    fn proc_net_tcp_lines_parse() {
        let l = parse_proc_net_tcp_line(
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
        )
        .unwrap();
        assert_eq!(l.addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(l.port, 8080);
        let l = parse_proc_net_tcp_line(
            "   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
        )
        .unwrap();
        assert_eq!(l.addr, None);
        assert_eq!(l.port, 22);
        let l = parse_proc_net_tcp_line(
            "   2: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0",
        )
        .unwrap();
        assert_eq!(l.addr, Some("::1".parse().unwrap()));
        // Not listening (01 = ESTABLISHED).
        assert!(parse_proc_net_tcp_line("0: 0100007F:1F90 0100007F:D431 01 0").is_none());
    }

    #[test]
    fn port_conflicts() {
        let l = |a: Option<&str>, port| Listener {
            addr: a.map(|a| a.parse().unwrap()),
            port,
            procs: vec![],
        };
        let want: SocketAddr = "0.0.0.0:8780".parse().unwrap();
        assert!(blocks(want, &l(None, 8780)));
        assert!(blocks(want, &l(Some("127.0.0.1"), 8780)));
        assert!(!blocks(want, &l(Some("::1"), 8780)));
        assert!(!blocks(want, &l(Some("127.0.0.1"), 8781)));
        let want: SocketAddr = "10.0.0.2:8780".parse().unwrap();
        assert!(blocks(want, &l(None, 8780)));
        assert!(blocks(want, &l(Some("10.0.0.2"), 8780)));
        assert!(blocks(want, &l(Some("::ffff:10.0.0.2"), 8780)));
        assert!(!blocks(want, &l(Some("127.0.0.1"), 8780)));
    }

    #[test]
    fn facts_parse() {
        let out = "os=Linux\narch=x86_64\nsystemd=no\nhave_start-stop-daemon=yes\nhave_sha256sum=yes\n\
                   have_ss=yes\nrepo_path=/tmp\nrepo_kib=2048\nbin_path=/\nbin_kib=10\ndaemon_pid=77\n\
                   --- listeners\nss\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=5,fd=3))\n";
        let f = parse_facts(out).unwrap();
        assert_eq!(f.os, "Linux");
        assert!(!f.systemd && f.have_ssd && f.have_ss);
        assert_eq!(f.repo_free, ("/tmp".into(), 2 << 20));
        assert_eq!(f.daemon_pid, Some(77));
        assert_eq!(f.listeners.len(), 1);
        assert!(f.listeners_have_pids);
        assert!(parse_facts("sh: 1: uname: not found").is_err());
    }

    #[test]
    fn ssh_failures_are_explained() {
        let mismatch = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
            Host key for 10.0.0.2 has changed and you have requested strict checking.\r\n\
            Host key verification failed.";
        let e = explain_ssh_failure("root@10.0.0.2", mismatch);
        assert!(e.starts_with("host key mismatch: 10.0.0.2"), "{e}");
        assert!(e.contains("ssh-keygen -R 10.0.0.2"), "{e}");
        let e = explain_ssh_failure(
            "root@10.0.0.3",
            "No ED25519 host key is known for 10.0.0.3 and you have requested strict checking.\r\nHost key verification failed.",
        );
        assert!(e.starts_with("unknown host key: 10.0.0.3"), "{e}");
        assert!(e.contains("--accept-new-host-key"), "{e}");
        let e = explain_ssh_failure("root@h", "root@h: Permission denied (publickey).");
        assert!(e.starts_with("authentication failed for root@h"), "{e}");
        let e = explain_ssh_failure(
            "h",
            "ssh: connect to host 10.0.0.9 port 22: No route to host",
        );
        assert!(e.starts_with("host unreachable"), "{e}");
        let e = explain_ssh_failure(
            "h",
            "ssh: Could not resolve hostname h: Name or service not known",
        );
        assert!(e.contains("does not resolve"), "{e}");
    }

    #[test]
    fn ansi_is_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x"),
            "2026  INFO x"
        );
    }

    #[test]
    fn summary_says_when_nothing_changed() {
        let o = |label: &str, changed: Vec<String>| Outcome {
            label: label.into(),
            changed,
            service: "agent running (pid 1)".into(),
            generation: "3/3".into(),
            seconds: 1.0,
            error: None,
        };
        let s = summary(&[o("a", vec![]), o("b", vec![])], false);
        assert!(
            s.contains("2 host(s): 0 changed, 2 unchanged, 0 failed. Nothing to do"),
            "{s}"
        );
        let s = summary(&[o("a", vec!["config".into()])], false);
        assert!(s.contains("1 changed"), "{s}");
    }
}
