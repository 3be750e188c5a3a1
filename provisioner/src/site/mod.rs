//! The site model: one YAML file (`site.yaml`) that describes a Shoal mirror
//! network once.
//!
//! A site has one **origin** (the host next to the archive software that
//! publishes the repository folder), any number of **mirrors** that follow
//! it, and site-wide **defaults** that every host inherits and may override.
//! Every setting uses the parameter names of `docs/parameters.md`, the same
//! names as the Puppet class `shoal` and the Ansible role `shoal`.
//!
//! [`Site::load`] parses and validates a site file. Errors name the file, the
//! line and the key, and say what to do. Line numbers come from a second,
//! event-level pass over the same text ([`Spans`]), so that semantic errors
//! (a port clash, a missing public key) point at the line of the offending
//! key, not only the errors the YAML parser itself finds.
//!
//! Where things are: [`file`] the YAML format as serde reads it;
//! [`validate`] every rule, grouped by what it checks; [`error`] the
//! located errors; [`spans`] the line of every key; [`params`] the
//! parameters and their values for the renderers; [`gluster`] the planned
//! GlusterFS volume. This file holds the validated model: [`Site`] and its
//! [`Host`]s.

mod error;
mod file;
mod gluster;
mod multi;
mod params;
mod spans;
mod validate;

pub use error::{SiteError, SiteErrors};
pub use file::{GlusterHost, GlusterHostEntry, GlusterStorage, Params, Scalar, SiteFile, Storage};
pub use gluster::{Gluster, GlusterServer};
pub use multi::{HostAgents, Sites, PER_REPOSITORY};
pub use params::{agent_context, short_duration, Applies, ServiceManager, PARAMS};
pub use spans::Spans;
pub use validate::check_url;

use error::parse_error;
use shoal_config::{LogFormat, Profile, Role};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use validate::Validator;

/// Where to read about site files; every error message ends by pointing here
/// when it has nothing more specific to say.
pub const DOC: &str = "docs/site-yaml.md";

/// A validated site: hosts resolved against the defaults.
#[derive(Debug, Clone)]
pub struct Site {
    /// The file name as given (used in messages).
    pub file: String,
    /// The site's name (`name:`), or the file's stem.
    pub name: String,
    /// The `defaults:` section as written.
    pub defaults: Params,
    /// The origin first, then the mirrors in file order.
    pub hosts: Vec<Host>,
    /// The `storage:` section as written (checked by the Gluster planner).
    pub storage: Option<Storage>,
    /// Key positions in the file.
    pub spans: Spans,
    /// The repository's name when the file lists several (`repositories:`);
    /// `None` for a file with one top-level `origin:`.
    pub repository: Option<String>,
}

/// One host with every setting resolved (host entry, then `defaults:`, then
/// the documented default).
#[derive(Debug, Clone)]
pub struct Host {
    /// The host's name (certname / inventory name).
    pub host: String,
    /// How the admin machine reaches it.
    pub address: String,
    /// `origin` or `mirror`.
    pub role: Role,
    /// The key path of this host's entry (`origin`, `mirrors[2]`).
    pub path: String,
    /// The entry as written.
    pub params: Params,
    pub agent_name: Option<String>,
    pub repo_dir: PathBuf,
    pub state_dir: PathBuf,
    pub profile: Profile,
    pub listen: SocketAddr,
    pub peer_listen: Option<SocketAddr>,
    /// The URL other agents use for this one (explicit, or derived).
    pub advertise_url: String,
    pub origin_key_file: PathBuf,
    /// For mirrors: the origin's public key. For the origin: its own, if known.
    pub origin_public_key: Option<String>,
    /// For mirrors: upstream URLs, host references resolved.
    pub upstreams: Vec<String>,
    pub publish_interval: Duration,
    pub manifest_ttl: Duration,
    pub poll_interval: Duration,
    pub delete_grace: Duration,
    pub upload_limit: u64,
    pub download_limit: u64,
    pub log_format: LogFormat,
    pub binary_source: String,
    pub binary_checksum: Option<String>,
    pub install_dir: PathBuf,
    pub config_dir: PathBuf,
    pub unit_dir: PathBuf,
    pub user: String,
    pub group: String,
    pub manage_user: bool,
    pub service_manager: ServiceManager,
    pub service_ensure: String,
    pub manage_web: bool,
    pub web_server_name: Option<String>,
    pub web_port: u16,
}

impl Host {
    /// The BitTorrent listen address (explicit, or HTTP port + 1).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_listen.or_else(|| {
            self.listen
                .port()
                .checked_add(1)
                .map(|p| SocketAddr::new(self.listen.ip(), p))
        })
    }

    /// Path of the agent's config file on the host.
    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("agent.yaml")
    }

    /// Path of the agent binary on the host.
    pub fn agent_binary(&self) -> PathBuf {
        self.install_dir.join("shoal-agent")
    }
}

impl Site {
    /// Reads, parses and validates a site file.
    pub fn load(path: &Path) -> Result<Site, SiteErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SiteErrors(vec![SiteError::unreadable(&file, &e)]))?;
        Site::from_yaml(&text, &file)
    }

    /// Parses and validates site YAML; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Site, SiteErrors> {
        let spans = Spans::parse(text);
        let raw: SiteFile = if text.trim().is_empty() {
            SiteFile::default()
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| SiteErrors(vec![parse_error(&e, file, &spans)]))?
        };
        if raw.repositories.is_some() {
            return Err(SiteErrors(vec![SiteError::at(
                file,
                &spans,
                "repositories",
                format!(
                    "this site lists several repositories, and `shoal render unit` and \
                     `shoal render agent-config` take one repository per site file so far: deploy it with \
                     `shoal bootstrap --site`, `shoal render puppet` or `shoal render ansible` (the Puppet \
                     class's repositories, the Ansible role's shoal_repositories), or split the file into one \
                     site per repository (`shoal check` and `shoal status` read it as it is; see {DOC})"
                ),
            )]));
        }
        let mut v = Validator::new(file, spans);
        let site = v.site(raw, file);
        v.finish(site)
    }

    /// Validates one repository's network of a multi-repository file, with
    /// the spans of its entry (see [`Spans::sub`]).
    pub(crate) fn from_parts(raw: SiteFile, file: &str, spans: Spans) -> Result<Site, SiteErrors> {
        let mut v = Validator::new(file, spans);
        let site = v.site(raw, file);
        v.finish(site)
    }

    /// The origin.
    pub fn origin(&self) -> &Host {
        &self.hosts[0]
    }

    /// The mirrors.
    pub fn mirrors(&self) -> &[Host] {
        &self.hosts[1..]
    }

    /// The config file of `h`'s agent: `<config_dir>/<name>.yaml` for a
    /// repository of a multi-repository site (as the Puppet module and the
    /// Ansible role name it), `<config_dir>/agent.yaml` otherwise.
    pub fn config_file(&self, h: &Host) -> PathBuf {
        match &self.repository {
            Some(name) => h.config_dir.join(format!("{name}.yaml")),
            None => h.config_file(),
        }
    }

    /// The systemd unit of this site's agents: `shoal-agent@<name>.service`
    /// for a repository of a multi-repository site, `shoal-agent.service`
    /// otherwise.
    pub fn unit_name(&self) -> String {
        match &self.repository {
            Some(name) => format!("shoal-agent@{name}.service"),
            None => "shoal-agent.service".to_string(),
        }
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.host == name)
    }
}
