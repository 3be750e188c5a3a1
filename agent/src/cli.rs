//! The `shoal-agent` command line: its clap definition, shared by the
//! binary (`src/main.rs`) and by `shoal-dist`, which generates the man page
//! and shell completions from it.

use clap::{Args, Parser, Subcommand};
use shoal_config::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The Shoal agent: an origin publishes a repository folder as signed
/// generations; mirrors receive them over BitTorrent, from the origin and
/// from each other, apply them so apt/dnf clients never see a half-updated
/// repository, and keep seeding.
///
/// Public BitTorrent networks (DHT, LSD, UPnP/NAT-PMP, public trackers) are
/// off unless the config turns them on.
#[derive(Parser)]
#[command(name = "shoal-agent", version, about, long_about)]
pub struct Cli {
    /// YAML config file (see docs/configuration.md). Command-line flags
    /// override what it says.
    #[arg(long, short = 'c', env = "SHOAL_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log format [default: the config's log.format, else text].
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,

    /// Log filter, e.g. `info` or `shoal_agent=debug` (overrides RUST_LOG and the config).
    #[arg(long, global = true)]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format` values.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines (colour only on a terminal).
    Text,
    /// One JSON object per line.
    Json,
}

/// `--config` on the commands that read a config file.
#[derive(Args, Clone, Default)]
pub struct ConfigArg {
    /// YAML config file (see docs/configuration.md). Command-line flags
    /// override what it says.
    #[arg(long = "config", short = 'c', value_name = "CONFIG")]
    pub file: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create an ed25519 key pair for an origin; prints the public key that
    /// mirrors are configured with.
    Keygen {
        /// Where to write the private key (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Run as the origin: publish --repo as signed generations and seed them.
    Origin(OriginArgs),
    /// Run as a mirror: follow upstreams and keep --repo at the newest generation.
    Mirror(MirrorArgs),
    /// Run the role named in the --config file.
    Run(ConfigArg),
    /// Ask the origin running with this --state to publish a generation now.
    Publish {
        #[command(flatten)]
        config: ConfigArg,
        /// The running origin's state directory (it holds admin.sock).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Look only at the paths listed in this file (`-` for stdin), one
        /// per line, relative to the repository, instead of walking the tree.
        #[arg(long, value_name = "FILE")]
        changes: Option<PathBuf>,
        /// Publish even while an archive update holds a lock
        /// (`Archive-Update-in-Progress-*`, origin.publish_locks) or files
        /// changed within origin.quiet_period. Without it such a publish is
        /// refused with the lock or file named.
        #[arg(long)]
        force: bool,
        /// When the archive is locked or still changing, wait (at most MAX,
        /// default 10m) and publish as soon as it is quiet and unlocked,
        /// instead of failing at once. What archive hooks should use.
        #[arg(long, value_name = "MAX", num_args = 0..=1, default_missing_value = "10m")]
        wait: Option<String>,
    },
    /// Print the /status JSON of the agent running with this --state.
    Status {
        #[command(flatten)]
        config: ConfigArg,
        /// The running agent's state directory.
        #[arg(long)]
        state: Option<PathBuf>,
    },
}

#[derive(Args, Clone, Default)]
pub struct Common {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Repository folder (origin: what to publish; mirror: the live tree clients read).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// State folder (pack store, manifests); must be outside --repo.
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// HTTP listen address for status, metrics and the signed documents.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// BitTorrent listen address [default: HTTP port + 1].
    #[arg(long)]
    pub peer_listen: Option<SocketAddr>,
    /// URL other agents use to reach this one [default: http://<listen>].
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// Repository profile: debian, rpm or generic (decides the apply order).
    #[arg(long)]
    pub profile: Option<Profile>,
    /// Agent name for /status and the trace file [default: the fully qualified host name].
    #[arg(long)]
    pub name: Option<String>,
    /// Upload limit in bytes per second, e.g. 50MB (0 = none).
    #[arg(long)]
    pub upload_limit: Option<String>,
    /// Download limit in bytes per second (0 = none).
    #[arg(long)]
    pub download_limit: Option<String>,
    /// How often peers re-announce to the agents' trackers, e.g. 30s.
    #[arg(long)]
    pub announce_interval: Option<String>,
    /// Take a complete pack with no peers out of the BitTorrent session
    /// after this long, e.g. 5m; a peer that needs it wakes it (0s = never).
    #[arg(long)]
    pub rest_after: Option<String>,
    /// Start even when --repo and --state are on different mounts, copying
    /// files instead of hard-linking them (twice the disk space); without
    /// it such an agent refuses to start (storage.allow_copy).
    #[arg(long)]
    pub allow_copy: bool,
}

#[derive(Args, Clone)]
pub struct OriginArgs {
    #[command(flatten)]
    pub common: Common,
    /// Private key file made by `shoal-agent keygen`.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Publish automatically this often when the tree changed (0s = only on `publish`).
    #[arg(long)]
    pub publish_interval: Option<String>,
    /// How long each generation stays valid, e.g. 7d.
    #[arg(long)]
    pub manifest_ttl: Option<String>,
    /// Most files in one pack.
    #[arg(long)]
    pub pack_max_files: Option<usize>,
    /// Keep seeding packs a new generation drops this long, e.g. 30m.
    #[arg(long)]
    pub retire_grace: Option<String>,
    /// Group allowed to call `shoal-agent publish` on the admin socket.
    #[arg(long)]
    pub admin_group: Option<String>,
    /// Publish only once nothing in the tree changed for this long, e.g. 10s (0s = off).
    #[arg(long)]
    pub quiet_period: Option<String>,
    /// A lock file that holds publishing back while it exists (absolute or
    /// relative to --repo); repeat for more. ftpsync's
    /// Archive-Update-in-Progress-* is always honoured.
    #[arg(long = "publish-lock", value_name = "FILE")]
    pub publish_locks: Vec<PathBuf>,
}

#[derive(Args, Clone)]
pub struct MirrorArgs {
    #[command(flatten)]
    pub common: Common,
    /// The origin's public key (`ed25519:...`, printed by keygen).
    #[arg(long)]
    pub origin_key: Option<String>,
    /// HTTP URL of the origin or of any other agent; repeat for more.
    #[arg(long = "upstream")]
    pub upstreams: Vec<String>,
    /// How often to ask upstreams for a new generation, e.g. 30s.
    #[arg(long)]
    pub poll_interval: Option<String>,
    /// How long removed files stay for clients with older indices, e.g. 1h.
    #[arg(long)]
    pub delete_grace: Option<String>,
}

/// The clap command of `shoal-agent`, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
