//! The `shoal-agent` command line.

use anyhow::{bail, Context, Result};
use clap::Parser;
use shoal_agent::cli::{Cli, Command, Common, ConfigArg, LogFormatArg};
use shoal_config::{AgentConfig, LogFormat, Profile, Role};
use std::path::PathBuf;

fn parse_dur(s: &str, flag: &str) -> Result<std::time::Duration> {
    shoal_config::parse_duration(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

fn parse_size(s: &str, flag: &str) -> Result<u64> {
    shoal_config::parse_bytes(s).map_err(|e| anyhow::anyhow!("--{flag}: {e}"))
}

/// The config: the file (if any), then flags on top.
fn build_config(file: Option<&PathBuf>, role: Role, c: &Common) -> Result<(AgentConfig, String)> {
    let (mut cfg, label) = match file {
        Some(f) => {
            let cfg = AgentConfig::load(f)?;
            if cfg.role != role {
                bail!(
                    "{}: role is '{}' but the command is `{role}`; use `shoal-agent --config {} run`",
                    f.display(),
                    cfg.role,
                    f.display()
                );
            }
            (cfg, f.display().to_string())
        }
        None => {
            let repo = c
                .repo
                .clone()
                .context("--repo is required (or give --config)")?;
            let state = c
                .state
                .clone()
                .context("--state is required (or give --config)")?;
            let listen = c
                .listen
                .context("--listen is required (or give --config)")?;
            (
                AgentConfig {
                    role,
                    name: None,
                    repo,
                    state,
                    profile: Profile::default(),
                    listen,
                    peer_listen: None,
                    advertise_url: None,
                    origin: Default::default(),
                    mirror: Default::default(),
                    network: Default::default(),
                    log: Default::default(),
                    storage: Default::default(),
                },
                "command line".to_string(),
            )
        }
    };
    if let Some(v) = &c.repo {
        cfg.repo = v.clone();
    }
    if let Some(v) = &c.state {
        cfg.state = v.clone();
    }
    if let Some(v) = c.listen {
        cfg.listen = v;
    }
    if let Some(v) = c.peer_listen {
        cfg.peer_listen = Some(v);
    }
    if let Some(v) = &c.advertise_url {
        cfg.advertise_url = Some(v.clone());
    }
    if let Some(v) = c.profile {
        cfg.profile = v;
    }
    if let Some(v) = &c.name {
        cfg.name = Some(v.clone());
    }
    if let Some(v) = &c.upload_limit {
        cfg.network.upload_limit = parse_size(v, "upload-limit")?;
    }
    if let Some(v) = &c.download_limit {
        cfg.network.download_limit = parse_size(v, "download-limit")?;
    }
    if let Some(v) = &c.announce_interval {
        cfg.network.announce_interval = parse_dur(v, "announce-interval")?;
    }
    if let Some(v) = &c.rest_after {
        cfg.network.rest_after = parse_dur(v, "rest-after")?;
    }
    if c.allow_copy {
        cfg.storage.allow_copy = true;
    }
    Ok((cfg, label))
}

fn init_logging(cli: &Cli, cfg: Option<&AgentConfig>) {
    use tracing_subscriber::EnvFilter;
    let filter = cli
        .log
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .or_else(|| cfg.map(|c| c.log.level.clone()))
        .unwrap_or_else(|| "info".into());
    // librqbit is chatty at info; keep it at warn unless asked.
    let filter = if filter.contains("librqbit") {
        filter
    } else {
        format!("{filter},librqbit=warn,librqbit_core=warn,librqbit_dht=warn")
    };
    let json = match cli.log_format {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        None => cfg
            .map(|c| c.log.format == LogFormat::Json)
            .unwrap_or(false),
    };
    use std::io::IsTerminal;
    let b = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written (its disk is full, the journal
        // is gone) is dropped. By default tracing-subscriber reports the
        // failure with `eprintln!` to the same stderr, which panics when
        // that write fails too, and the agent would end with it.
        .log_internal_errors(false);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

/// The paths of a change list (`-` is stdin): one per line, blank lines
/// and `#` comments skipped.
fn read_change_list(file: &std::path::Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the change list from stdin")?;
    } else {
        text =
            std::fs::read_to_string(file).map_err(|e| shoal_agent::fsutil::explain_io(e, file))?;
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// The running agent's state directory: `--state`, else the config's.
fn state_of(state: &Option<PathBuf>, config: Option<&PathBuf>) -> Result<PathBuf> {
    match (state, config) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(c)) => Ok(AgentConfig::load(c)?.state),
        (None, None) => {
            bail!("give --state DIR (the running agent's state directory) or --config")
        }
    }
}

/// `--config` given after the command, else before it (or SHOAL_CONFIG).
fn config_file<'a>(cli: &'a Cli, sub: &'a ConfigArg) -> Option<&'a PathBuf> {
    sub.file.as_ref().or(cli.config.as_ref())
}

/// Why keygen could not create its key file, and what to do.
fn keygen_error(e: std::io::Error, out: &std::path::Path) -> anyhow::Error {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} already exists; keygen never overwrites an existing key: choose another --out \
             or remove the old key if you really mean to replace it (every mirror's origin_key \
             must then change)",
            out.display()
        ),
        std::io::ErrorKind::NotFound => anyhow::anyhow!(
            "cannot create {}: the folder {} does not exist; create it first (for example \
             `install -d -m 0700 {}`)",
            out.display(),
            parent.display(),
            parent.display()
        ),
        _ => shoal_agent::fsutil::explain_io(e, out),
    }
}

fn main() {
    shoal_agent::memory::tune();
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        // Not `eprintln!`: it panics if stderr cannot be written.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "shoal-agent: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    let cfg = match &cli.command {
        Command::Keygen { out } => {
            let key = shoal_manifest::signed::PrivateKey::generate();
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(out)
                .map_err(|e| keygen_error(e, out))?;
            f.write_all(key.to_file_text().as_bytes())?;
            println!("{}", key.public().to_string_key());
            return Ok(());
        }
        Command::Publish {
            state,
            config,
            changes,
            force,
            wait,
        } => {
            let state = state_of(state, config_file(&cli, config))?;
            let paths = changes.as_deref().map(read_change_list).transpose()?;
            let opts = shoal_agent::admin::PublishOptions {
                force: *force,
                wait: wait.as_deref().map(|w| parse_dur(w, "wait")).transpose()?,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let reply = rt.block_on(shoal_agent::admin::publish(&state, paths.as_deref(), opts))?;
            println!("{reply}");
            return Ok(());
        }
        Command::Status { state, config } => {
            let state = state_of(state, config_file(&cli, config))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let reply = rt.block_on(shoal_agent::admin::call(&state, "status"))?;
            println!("{reply}");
            return Ok(());
        }
        Command::Run(config) => {
            let f = config_file(&cli, config).context("`run` needs --config FILE")?;
            AgentConfig::load(f)?
        }
        Command::Origin(a) => {
            let (mut cfg, label) =
                build_config(config_file(&cli, &a.common.config), Role::Origin, &a.common)?;
            if let Some(v) = &a.key {
                cfg.origin.key = Some(v.clone());
            }
            if let Some(v) = &a.publish_interval {
                cfg.origin.publish_interval = parse_dur(v, "publish-interval")?;
            }
            if let Some(v) = &a.manifest_ttl {
                cfg.origin.manifest_ttl = parse_dur(v, "manifest-ttl")?;
            }
            if let Some(v) = &a.retire_grace {
                cfg.origin.retire_grace = parse_dur(v, "retire-grace")?;
            }
            if let Some(v) = &a.admin_group {
                cfg.origin.admin_group = Some(v.clone());
            }
            if let Some(v) = a.pack_max_files {
                cfg.origin.pack_max_files = v;
            }
            if let Some(v) = &a.quiet_period {
                cfg.origin.quiet_period = parse_dur(v, "quiet-period")?;
            }
            if !a.publish_locks.is_empty() {
                cfg.origin.publish_locks = a.publish_locks.clone();
            }
            cfg.validate(&label)?;
            cfg
        }
        Command::Mirror(a) => {
            let (mut cfg, label) =
                build_config(config_file(&cli, &a.common.config), Role::Mirror, &a.common)?;
            if let Some(v) = &a.origin_key {
                cfg.mirror.origin_key = Some(v.clone());
            }
            if !a.upstreams.is_empty() {
                cfg.mirror.upstreams = a.upstreams.clone();
            }
            if let Some(v) = &a.poll_interval {
                cfg.mirror.poll_interval = parse_dur(v, "poll-interval")?;
            }
            if let Some(v) = &a.delete_grace {
                cfg.mirror.delete_grace = parse_dur(v, "delete-grace")?;
            }
            cfg.validate(&label)?;
            cfg
        }
    };
    init_logging(&cli, Some(&cfg));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = rt.block_on(shoal_agent::run(cfg));
    // A worker may still be inside blocking work when SIGTERM arrives (a
    // mirror's apply of a million files, a publish's hashing). Both are
    // safe to stop at any point, as after a kill -9: the next start
    // completes the apply, and a publish goes live only with its head.
    // Dropping the runtime would wait for that work (minutes at a million
    // files, past systemd's stop timeout, which then kills the agent).
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
