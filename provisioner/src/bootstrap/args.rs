//! The command line of `shoal bootstrap`: its flags, their defaults and the
//! service manager choice.

use clap::{Args, ValueEnum};
use shoal_config::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
///
/// A site with `repositories:` gets one agent per repository on each host,
/// as the Puppet module and the Ansible role deploy them: the config
/// <config_dir>/<name>.yaml, the unit shoal-agent@<name>.service, the
/// repository's own state folder (pidfile, log) and ports. The agents of one
/// host share its SSH connection and binary and are set up one after the
/// other; lines and the summary name each `<host>/<repository>`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The hosts: SSH destinations `[user@]host` or `ssh://[user@]host[:port]`.
    /// With --site each must be a host of the site (matched by its `host` or
    /// `address`), and no HOST means every mirror of the site (on a site with
    /// `repositories:`, every mirror agent; a HOST named gets all its agents,
    /// origins too). Without --site at least one HOST is needed.
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
