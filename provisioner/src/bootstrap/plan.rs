//! What each host should end up with: the [`Plan`] of one agent on one host
//! (paths, addresses, the rendered config and unit, the service manager),
//! made from a site file (`--site`) or from the flags that describe a
//! mirror. A site with `repositories:` gives one plan per (host,
//! repository): config `<config_dir>/<name>.yaml`, unit
//! `shoal-agent@<name>.service`, its own state folder and ports, as the
//! Puppet module and the Ansible role name them.

use super::args::{BootstrapArgs, ManagerChoice};
use super::ssh::Dest;
use super::UNIT_NAME;
use crate::render::{render_agent_config, render_unit};
use crate::site::{self, Site, Sites};
use anyhow::{anyhow, bail, Result};
use shoal_config::{AgentConfig, MirrorConfig, Role};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Everything needed to bootstrap one host.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The agent's name in every line and error: the host, or
    /// `<host>/<repository>` for a repository of a multi-repository site.
    pub label: String,
    /// The host's name (the `connect` step's line).
    pub host: String,
    /// The repository's name on a multi-repository site.
    pub repository: Option<String>,
    /// The systemd unit's name (`shoal-agent.service`, `shoal-agent@<name>.service`).
    pub unit_name: String,
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
    pub fn pidfile(&self) -> PathBuf {
        self.state_dir.join("agent.pid")
    }
    pub fn logfile(&self) -> PathBuf {
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
    let sites = Sites::load(path).map_err(|e| {
        anyhow!(
            "{e}\n{}: {} problem(s); fix them (`shoal check --site {}` lists them) and run again",
            path.display(),
            e.0.len(),
            path.display()
        )
    })?;
    let picked = if args.hosts.is_empty() {
        site_mirrors(&sites, path)?
    } else {
        let mut all = Vec::new();
        for a in &args.hosts {
            all.extend(site_host(&sites, path, a)?);
        }
        all
    };
    picked
        .into_iter()
        .map(|(site, h, dest)| site_plan(args, site, h, &dest))
        .collect()
}

/// One agent to plan: its repository's site, its host entry, and how to
/// reach the host.
type Picked<'a> = (&'a Site, site::Host, Dest);

/// Every mirror agent of the site, reached at its host's address (no HOST
/// given), host by host.
fn site_mirrors<'a>(sites: &'a Sites, path: &Path) -> Result<Vec<Picked<'a>>> {
    let picked: Vec<Picked> = sites
        .hosts()
        .into_iter()
        .flat_map(|g| g.agents)
        .filter(|(_, h)| h.role == Role::Mirror)
        .map(|(site, h)| {
            let dest = Dest {
                user: None,
                host: h.address.clone(),
                port: None,
            };
            (site, h.clone(), dest)
        })
        .collect();
    if picked.is_empty() {
        bail!(
            "{}: the site has no mirrors; add a `mirrors:` list, or name the host to bootstrap",
            path.display()
        );
    }
    Ok(picked)
}

/// The agents of the site host a HOST argument names (by `host`, else by
/// `address`): one per repository the host serves.
fn site_host<'a>(sites: &'a Sites, path: &Path, a: &str) -> Result<Vec<Picked<'a>>> {
    let d = Dest::parse(a)?;
    let hosts = sites.hosts();
    let Some(g) = hosts
        .iter()
        .find(|g| g.first.host == d.host)
        .or_else(|| hosts.iter().find(|g| g.first.address == d.host))
    else {
        let names: Vec<String> = hosts
            .iter()
            .map(|g| g.first)
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
        host: g.first.address.clone(),
        port: d.port,
    };
    Ok(g.agents
        .iter()
        .map(|(site, h)| (*site, (*h).clone(), dest.clone()))
        .collect())
}

/// The plan of one site host.
fn site_plan(args: &BootstrapArgs, site: &Site, mut h: site::Host, dest: &Dest) -> Result<Plan> {
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
    let config_text = render_agent_config(site, &h);
    AgentConfig::from_yaml(&config_text, &format!("agent config of {}", h.host))
        .map_err(|e| anyhow!("{e} (this is a bug in shoal's agent template; please report it)"))?;
    let unit_text = render_unit(site, &h);
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
    let origin_url = site.origin().advertise_url.clone();
    let unit_name = site.unit_name();
    Ok(Plan {
        label: match &site.repository {
            Some(r) => format!("{}/{r}", h.host),
            None => h.host.clone(),
        },
        host: h.host.clone(),
        repository: site.repository.clone(),
        dest: dest.to_ssh(args.user.as_deref()),
        role: h.role,
        agent_bin: h.agent_binary(),
        config_file: site.config_file(&h),
        unit_file: h.unit_dir.join(&unit_name),
        unit_name,
        repo_dir: h.repo_dir.clone(),
        state_dir: h.state_dir.clone(),
        listen: h.listen,
        peer_listen: h.peer_addr().unwrap_or(h.listen),
        user: h.user.clone(),
        group: h.group.clone(),
        manager,
        config_text,
        unit_text,
        origin_url: (h.role == Role::Mirror).then_some(origin_url),
        origin_key_file: (h.role == Role::Origin).then(|| h.origin_key_file.clone()),
        binaries,
    })
}

/// `shoal-agent` next to the running `shoal`, if there is one.
fn sibling_agent() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join("shoal-agent");
    p.is_file().then_some(p)
}

/// The flags that describe a mirror without a site, checked.
struct Flags<'a> {
    origin: &'a str,
    key: &'a str,
    repo: &'a Path,
    state: PathBuf,
    listen: SocketAddr,
    binaries: Vec<PathBuf>,
}

/// The plans for the flags without a site (`--origin URL --origin-key KEY --repo DIR`).
pub fn plans_from_flags(args: &BootstrapArgs) -> Result<Vec<Plan>> {
    let flags = check_flags(args)?;
    args.hosts
        .iter()
        .map(|a| flags_plan(args, &flags, &Dest::parse(a)?))
        .collect()
}

/// The flags that must be there, and those that must agree.
fn check_flags(args: &BootstrapArgs) -> Result<Flags<'_>> {
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
    let mut binaries = args.agent_binary.clone();
    if binaries.is_empty() {
        binaries.extend(sibling_agent());
    }
    Ok(Flags {
        origin,
        key,
        repo,
        state: args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/shoal")),
        listen: args
            .listen
            .unwrap_or_else(|| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8780)),
        binaries,
    })
}

/// The plan of one host given on the command line.
fn flags_plan(args: &BootstrapArgs, flags: &Flags<'_>, d: &Dest) -> Result<Plan> {
    let prefix = prefix_for(args, &d.host)?;
    let at = |p: &str| -> PathBuf {
        match &prefix {
            Some(x) => under_prefix(x, Path::new(p)),
            None => PathBuf::from(p),
        }
    };
    let repo_dir = at(&flags.repo.to_string_lossy());
    let state_dir = at(&flags.state.to_string_lossy());
    let (install_dir, config_dir, unit_dir) = (
        at("/usr/local/bin"),
        at("/etc/shoal"),
        at("/etc/systemd/system"),
    );
    for (flag, p) in [("--repo", flags.repo), ("--state", flags.state.as_path())] {
        if !p.is_absolute() {
            bail!(
                "{flag} {}: must be an absolute path on the host",
                p.display()
            );
        }
    }
    let cfg = flags_config(args, flags, d, &repo_dir, &state_dir)?;
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
        d,
        &cfg,
        &install_dir,
        &config_dir,
        &unit_dir,
        &flags.binaries,
    );
    let fake_site = Site {
        file: "shoal bootstrap flags".into(),
        name: "bootstrap".into(),
        defaults: Default::default(),
        hosts: vec![host.clone()],
        storage: None,
        spans: site::Spans::parse(""),
        repository: None,
    };
    let unit_text = render_unit(&fake_site, &host);
    let manager = check_manager_with_prefix(&label, manager_from(args, None), prefix.is_some())?;
    Ok(Plan {
        host: label.clone(),
        label,
        repository: None,
        unit_name: UNIT_NAME.to_string(),
        dest: d.to_ssh(args.user.as_deref()),
        role: Role::Mirror,
        agent_bin: host.agent_binary(),
        config_file: host.config_file(),
        unit_file: unit_dir.join(UNIT_NAME),
        repo_dir,
        state_dir,
        listen: flags.listen,
        peer_listen: cfg.peer_listen().unwrap_or(flags.listen),
        user: "root".into(),
        group: "root".into(),
        manager,
        config_text,
        unit_text,
        origin_url: Some(flags.origin.to_string()),
        origin_key_file: None,
        binaries: flags.binaries.clone(),
    })
}

/// The agent config of a mirror described by flags, validated.
fn flags_config(
    args: &BootstrapArgs,
    flags: &Flags<'_>,
    d: &Dest,
    repo_dir: &Path,
    state_dir: &Path,
) -> Result<AgentConfig> {
    let listen = flags.listen;
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
        repo: repo_dir.to_path_buf(),
        state: state_dir.to_path_buf(),
        profile: args.profile.unwrap_or_default(),
        listen,
        peer_listen: args.peer_listen,
        advertise_url,
        origin: Default::default(),
        mirror: MirrorConfig {
            origin_key: Some(flags.key.to_string()),
            upstreams: vec![flags.origin.to_string()],
            ..Default::default()
        },
        network: Default::default(),
        log: Default::default(),
        storage: Default::default(),
    };
    cfg.validate("the command line")
        .map_err(|e| anyhow!("{e}: fix the flag and run again"))?;
    Ok(cfg)
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: BootstrapArgs,
    }

    const K1: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    const K2: &str = "ed25519:8f0d73653215771de243a63ac048a18b59da293b6a27bcceb6a42d62a3a8d02a";

    fn plans(site: &str, hosts: &[&str]) -> Vec<Plan> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.yaml");
        std::fs::write(
            &path,
            format!("defaults: {{binary_source: /srv/dist/shoal-agent}}\n{site}"),
        )
        .unwrap();
        let mut argv = vec!["bootstrap", "--agent-binary", "/bin/true"];
        argv.extend_from_slice(hosts);
        let cmd = Cmd::parse_from(argv);
        plans_from_site(&cmd.args, &path).unwrap_or_else(|e| panic!("{e:#}"))
    }

    #[test]
    fn each_repository_of_a_host_is_an_agent_of_its_own() {
        let site = format!(
            "repositories:\n\
             \x20 - name: debian\n\
             \x20   origin: {{host: o.example.org, origin_public_key: '{K1}', repo_dir: /srv/o/debian/repo, state_dir: /srv/o/debian/state}}\n\
             \x20   mirrors:\n\
             \x20     - {{host: m1.example.org, repo_dir: /srv/shoal/debian/repo, state_dir: /srv/shoal/debian/state}}\n\
             \x20 - name: fedora\n\
             \x20   origin: {{host: o.example.org, listen: '0.0.0.0:8790', origin_public_key: '{K2}', repo_dir: /srv/o/fedora/repo, state_dir: /srv/o/fedora/state}}\n\
             \x20   mirrors:\n\
             \x20     - {{host: m1.example.org, repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790'}}\n"
        );
        // No HOST: every mirror agent, named <host>/<repository>.
        let p = plans(&site, &[]);
        let labels: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["m1.example.org/debian", "m1.example.org/fedora"]);
        let f = &p[1];
        assert_eq!(f.host, "m1.example.org");
        assert_eq!(f.repository.as_deref(), Some("fedora"));
        assert_eq!(f.config_file, Path::new("/etc/shoal/fedora.yaml"));
        assert_eq!(f.unit_name, "shoal-agent@fedora.service");
        assert_eq!(
            f.unit_file,
            Path::new("/etc/systemd/system/shoal-agent@fedora.service")
        );
        assert_eq!(f.pidfile(), Path::new("/srv/shoal/fedora/state/agent.pid"));
        assert_eq!(f.listen.port(), 8790);
        assert!(
            f.unit_text.contains("--config /etc/shoal/fedora.yaml run"),
            "{}",
            f.unit_text
        );
        assert!(f.config_text.contains(K2), "{}", f.config_text);
        // A HOST named: all its agents, an origin's with its own key.
        let p = plans(&site, &["o.example.org"]);
        let keys: Vec<_> = p.iter().map(|p| p.origin_key_file.clone()).collect();
        assert_eq!(
            keys,
            [
                Some(PathBuf::from("/etc/shoal/debian.key")),
                Some(PathBuf::from("/etc/shoal/fedora.key"))
            ]
        );
        assert_eq!(p[0].unit_name, "shoal-agent@debian.service");
    }

    #[test]
    fn a_one_repository_site_keeps_its_names() {
        let site = format!(
            "origin: {{host: o.example.org, origin_public_key: '{K1}'}}\nmirrors: [{{host: m1.example.org}}]\n"
        );
        let p = plans(&site, &[]);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].label, "m1.example.org");
        assert_eq!(p[0].repository, None);
        assert_eq!(p[0].config_file, Path::new("/etc/shoal/agent.yaml"));
        assert_eq!(
            p[0].unit_file,
            Path::new("/etc/systemd/system/shoal-agent.service")
        );
    }
}
