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

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use shoal_config::{is_public_key, parse_bytes, parse_duration, LogFormat, Profile, Role};
use shoal_gluster::{check_volume_name, parse_brick, plan, Layout, LayoutError, Plan, VolumeType};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where to read about site files; every error message ends by pointing here
/// when it has nothing more specific to say.
pub const DOC: &str = "docs/site-yaml.md";

// ---------------------------------------------------------------------------
// The file format
// ---------------------------------------------------------------------------

/// The top level of `site.yaml`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// A short name for the site, shown by `shoal check` and in rendered headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Settings every host inherits unless it sets them itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Params>,
    /// The one origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Params>,
    /// The mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<Params>>,
    /// Storage layout for the mirrors' repository folders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
}

/// The settings of one host (in `origin:` and `mirrors:`) or of all hosts (in
/// `defaults:`). Names and meanings follow `docs/parameters.md`; `role` is not
/// here because it follows from where a host is listed.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The host's name: its Puppet certname / Ansible inventory name, usually
    /// its FQDN. Required in `origin` and in each mirror; not allowed in `defaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How the admin machine reaches the host (SSH, `ansible_host`), when it
    /// is not `host`. Entries with the same address are one machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_listen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_key_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_public_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstreams: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_interval: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_ttl: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_grace: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_limit: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_limit: Option<Scalar>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_checksum: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_user: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_manager: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_ensure: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_web: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_port: Option<u16>,
}

/// A duration or size: written either as a plain integer (seconds or bytes)
/// or as a string with a unit (`30s`, `4GiB`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Scalar {
    Int(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a string with a unit such as 30s, 5m, 7d or 512KiB")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::Int(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                u64::try_from(v)
                    .map(Scalar::Int)
                    .map_err(|_| E::custom(format!("{v} is negative; use 0 or more")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Storage for the mirrors' repository folders. Only GlusterFS is described
/// so far; [`Validator`] checks it with the Gluster layout planner.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gluster: Option<GlusterStorage>,
}

/// A GlusterFS volume that holds mirrors' repository folders
/// (`storage.gluster` in `site.yaml`; see `docs/site-yaml.md`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlusterStorage {
    /// The servers that run glusterd and carry bricks: host names of this
    /// site, or `{host, address, bricks}` entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<GlusterHost>>,
    /// Brick directories on every server that does not list its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bricks: Option<Vec<String>>,
    /// Copies per replica set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<u32>,
    /// `1`: the last brick of each replica set is an arbiter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<u32>,
    /// Bricks per disperse set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disperse: Option<u32>,
    /// Bricks per disperse set that may fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<u32>,
    /// How bricks are grouped into sets: `simple` (default) or `chained`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<String>,
    /// Volume name (default `shoal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
    /// Where the mirrors mount the volume (default: their `repo_dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// The mirrors that keep their repository on the volume (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<String>>,
}

/// One gluster server: a host name (`gluster1.example.org`), or an entry
/// with the host's own `address` and/or `bricks`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum GlusterHost {
    Name(String),
    Entry(GlusterHostEntry),
}

/// The long form of a gluster server.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GlusterHostEntry {
    /// The server's name, as the bricks and `gluster peer probe` use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How the admin machine reaches a server that is not a host of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// This server's brick directories, instead of `storage.gluster.bricks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bricks: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for GlusterHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = GlusterHost;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a host name, or a map with `host` and optional `address` and `bricks`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<GlusterHost, E> {
                Ok(GlusterHost::Name(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<GlusterHost, A::Error> {
                GlusterHostEntry::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(GlusterHost::Entry)
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Parameters: which role each applies to, and the documented defaults
// ---------------------------------------------------------------------------

/// Which roles a parameter applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Both,
    Origin,
    Mirror,
}

/// Every parameter a host entry may set, in the order of `docs/parameters.md`,
/// with the role it applies to.
pub const PARAMS: &[(&str, Applies)] = &[
    ("agent_name", Applies::Both),
    ("repo_dir", Applies::Both),
    ("state_dir", Applies::Both),
    ("profile", Applies::Both),
    ("listen", Applies::Both),
    ("peer_listen", Applies::Both),
    ("advertise_url", Applies::Both),
    ("origin_key_file", Applies::Origin),
    ("origin_public_key", Applies::Both),
    ("upstreams", Applies::Mirror),
    ("publish_interval", Applies::Origin),
    ("manifest_ttl", Applies::Origin),
    ("poll_interval", Applies::Mirror),
    ("delete_grace", Applies::Mirror),
    ("upload_limit", Applies::Both),
    ("download_limit", Applies::Both),
    ("log_format", Applies::Both),
    ("binary_source", Applies::Both),
    ("binary_checksum", Applies::Both),
    ("install_dir", Applies::Both),
    ("config_dir", Applies::Both),
    ("unit_dir", Applies::Both),
    ("user", Applies::Both),
    ("group", Applies::Both),
    ("manage_user", Applies::Both),
    ("service_manager", Applies::Both),
    ("service_ensure", Applies::Both),
    ("manage_web", Applies::Both),
    ("web_server_name", Applies::Both),
    ("web_port", Applies::Both),
];

const SIZE_PARAMS: &[&str] = &["upload_limit", "download_limit"];
const DURATION_PARAMS: &[&str] = &[
    "publish_interval",
    "manifest_ttl",
    "poll_interval",
    "delete_grace",
];

fn applies(name: &str) -> Applies {
    PARAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .unwrap_or(Applies::Both)
}

/// How the agent is started on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceManager {
    /// A systemd unit (production).
    Systemd,
    /// start-stop-daemon with a pidfile, for hosts without systemd.
    Daemon,
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// One problem in a site file, with where it is and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteError {
    /// The file as it was named.
    pub file: String,
    /// 1-based line; 0 when the file could not be read at all.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// The key path, such as `mirrors[1].listen`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}: {}: {}", self.file, self.key, self.message),
            (l, 0) => write!(f, "{}:{}: {}: {}", self.file, l, self.key, self.message),
            (l, c) => write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, l, c, self.key, self.message
            ),
        }
    }
}

/// All problems found in a site file (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteErrors(pub Vec<SiteError>);

impl fmt::Display for SiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SiteErrors {}

// ---------------------------------------------------------------------------
// Spans: the line of every key path
// ---------------------------------------------------------------------------

/// The position of every key and sequence item in a YAML text, by key path
/// (`origin.listen`, `mirrors[2]`, `mirrors[2].upstreams[0]`).
///
/// Built from yaml-rust2's marked event stream, which follows the YAML
/// grammar (block and flow style, quoting, comments), so positions are right
/// however the file is laid out.
#[derive(Debug, Clone, Default)]
pub struct Spans {
    map: HashMap<String, (usize, usize)>,
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

struct SpanBuilder {
    stack: Vec<Frame>,
    map: HashMap<String, (usize, usize)>,
    /// Block mappings are reported where the parser knows they started,
    /// which can be past their first key; such a position is replaced by
    /// the first key's.
    tentative: std::collections::HashSet<String>,
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SpanBuilder {
    /// Called for each node; returns the node's path, or `None` if the node
    /// is a mapping key (recorded as the position of `parent.key`).
    fn node(&mut self, scalar: Option<&str>, line: usize, col: usize) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key }) => match key.take() {
                None => {
                    if self.tentative.remove(path.as_str()) {
                        self.map.insert(path.clone(), (line, col));
                    }
                    let k = scalar.unwrap_or("?").to_string();
                    let p = join_key(path, &k);
                    self.map.entry(p).or_insert((line, col));
                    *key = Some(k);
                    None
                }
                Some(k) => Some(join_key(path, &k)),
            },
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                self.map.entry(p.clone()).or_insert((line, col));
                Some(p)
            }
        }
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for SpanBuilder {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        let (line, col) = (mark.line(), mark.col() + 1);
        match ev {
            Event::Scalar(s, ..) => {
                self.node(Some(&s), line, col);
            }
            Event::Alias(_) => {
                self.node(None, line, col);
            }
            Event::MappingStart(..) => {
                // A mapping used as a key gets a path nobody asks for.
                let path = self.node(None, line, col).unwrap_or_else(|| "?".into());
                if let std::collections::hash_map::Entry::Vacant(e) = self.map.entry(path.clone()) {
                    e.insert((line, col));
                }
                if path.ends_with(']') {
                    self.tentative.insert(path.clone());
                }
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.node(None, line, col).unwrap_or_else(|| "?".into());
                self.map.entry(path.clone()).or_insert((line, col));
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

impl Spans {
    /// Indexes `text`. A text the event parser cannot read yields an empty
    /// index (errors then carry line 1 rather than none).
    pub fn parse(text: &str) -> Spans {
        let mut b = SpanBuilder {
            stack: Vec::new(),
            map: HashMap::new(),
            tentative: Default::default(),
        };
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        if parser.load(&mut b, false).is_err() {
            return Spans::default();
        }
        Spans { map: b.map }
    }

    /// The position of exactly this path.
    pub fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.map.get(path).copied()
    }

    /// The position of this path or of its nearest parent that is in the
    /// file; `(1, 1)` if none is.
    pub fn nearest(&self, path: &str) -> (usize, usize) {
        let mut p = path.to_string();
        loop {
            if let Some(pos) = self.get(&p) {
                return pos;
            }
            match p.rfind(['.', '[']) {
                Some(i) => p.truncate(i),
                None => return (1, 1),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The validated model
// ---------------------------------------------------------------------------

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
        let text = std::fs::read_to_string(path).map_err(|e| {
            SiteErrors(vec![SiteError {
                file: file.clone(),
                line: 0,
                column: 0,
                key: "(file)".into(),
                message: format!("cannot read the site file: {e}; check the path given to --site"),
            }])
        })?;
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
        let mut v = Validator {
            file: file.to_string(),
            spans,
            errors: Vec::new(),
        };
        let site = v.site(raw, file);
        match site {
            Some(site) if v.errors.is_empty() => Ok(site),
            _ => {
                let mut errors = v.errors;
                errors.sort_by_key(|e| (e.line, e.column));
                errors.dedup();
                Err(SiteErrors(errors))
            }
        }
    }

    /// The origin.
    pub fn origin(&self) -> &Host {
        &self.hosts[0]
    }

    /// The mirrors.
    pub fn mirrors(&self) -> &[Host] {
        &self.hosts[1..]
    }

    /// A host by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.host == name)
    }

    /// The site's `defaults:` as parameter values, in parameter order (what
    /// goes into Hiera's common.yaml and Ansible's group_vars).
    pub fn default_values(&self) -> Vec<(String, Value)> {
        param_values(&self.defaults, None)
    }

    /// The values a host's own entry sets plus what the site derives for it
    /// (role, advertise_url, and for mirrors origin_public_key and
    /// upstreams), in parameter order. Hiera node data and Ansible host vars.
    pub fn host_values(&self, h: &Host) -> Vec<(String, Value)> {
        let mut vals = param_values(&h.params, Some(h.role));
        self.add_derived(h, &mut vals);
        vals
    }

    /// Everything the site sets for a host, defaults included: what a
    /// `class { 'shoal': }` declaration in site.pp passes.
    pub fn merged_values(&self, h: &Host) -> Vec<(String, Value)> {
        let own: BTreeMap<String, Value> =
            param_values(&h.params, Some(h.role)).into_iter().collect();
        let defaults: BTreeMap<String, Value> = param_values(&self.defaults, Some(h.role))
            .into_iter()
            .collect();
        let mut vals: Vec<(String, Value)> = PARAMS
            .iter()
            .filter_map(|(n, _)| {
                own.get(*n)
                    .or_else(|| defaults.get(*n))
                    .map(|v| (n.to_string(), v.clone()))
            })
            .collect();
        self.add_derived(h, &mut vals);
        vals
    }

    fn add_derived(&self, h: &Host, vals: &mut Vec<(String, Value)>) {
        let mut set = |name: &str, v: Value| match vals.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => vals.push((name.to_string(), v)),
        };
        set("advertise_url", json!(h.advertise_url));
        if h.role == Role::Mirror {
            if let Some(k) = &h.origin_public_key {
                set("origin_public_key", json!(k));
            }
            set("upstreams", json!(h.upstreams));
        }
        let order = |n: &str| {
            PARAMS
                .iter()
                .position(|(p, _)| *p == n)
                .unwrap_or(usize::MAX)
        };
        vals.sort_by_key(|(n, _)| order(n));
        vals.insert(0, ("role".into(), json!(h.role.to_string())));
    }
}

/// The parameters set in `p`, as JSON values in parameter order. Durations
/// are written the canonical way (`30s`, `5m`); sizes as written. With a
/// role, parameters that do not apply to it are left out.
fn param_values(p: &Params, role: Option<Role>) -> Vec<(String, Value)> {
    let Value::Object(map) = serde_json::to_value(p).expect("params serialize") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, a) in PARAMS {
        let Some(v) = map.get(*name) else { continue };
        let keep = matches!(
            (role, a),
            (None, _)
                | (_, Applies::Both)
                | (Some(Role::Origin), Applies::Origin)
                | (Some(Role::Mirror), Applies::Mirror)
        );
        if !keep {
            continue;
        }
        let v = if DURATION_PARAMS.contains(name) {
            match v {
                Value::Number(n) => {
                    json!(short_duration(Duration::from_secs(n.as_u64().unwrap_or(0))))
                }
                Value::String(s) => match parse_duration(s) {
                    Ok(d) => json!(short_duration(d)),
                    Err(_) => v.clone(),
                },
                _ => v.clone(),
            }
        } else if SIZE_PARAMS.contains(name) {
            match v {
                Value::String(s) => json!(s.split_whitespace().collect::<String>()),
                _ => v.clone(),
            }
        } else {
            v.clone()
        };
        out.push((name.to_string(), v));
    }
    out
}

/// Formats a duration in the largest whole unit, the way operators write
/// it (`30s`, `5m`, `1h`, `7d`); falls back to humantime's form for
/// fractions of a second.
pub fn short_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return shoal_config::format_duration(d);
    }
    let s = d.as_secs();
    match s {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Turns a serde_yaml error into a located [`SiteError`] with advice.
fn parse_error(e: &serde_yaml::Error, file: &str, spans: &Spans) -> SiteError {
    let full = e.to_string();
    let msg = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full.clone(),
    };
    // serde_yaml prefixes the message with the path of the value: `mirrors[1].listen: ...`.
    let (mut path, rest) = match msg.split_once(": ") {
        Some((p, r))
            if !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (p.to_string(), r.to_string())
        }
        _ => (String::new(), msg.clone()),
    };
    let (line, column) = match e.location() {
        Some(l) => (l.line(), l.column()),
        None => spans.nearest(&path),
    };
    let message = if let Some(field) = between(&rest, "unknown field `", "`") {
        path = join_key(&path, &field);
        let candidates: Vec<String> = rest
            .split_once("expected ")
            .map(|(_, tail)| {
                tail.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(|s| s.to_string())
                    .collect()
            })
            .unwrap_or_default();
        let hint = closest(&field, &candidates)
            .map(|c| format!("did you mean `{c}`? "))
            .unwrap_or_default();
        let allowed = if candidates.is_empty() {
            String::new()
        } else {
            format!(" Keys allowed here: {}.", candidates.join(", "))
        };
        format!("unknown key `{field}`: {hint}remove it or fix its spelling (see {DOC}).{allowed}")
    } else if rest.contains("invalid type") || rest.contains("invalid value") {
        format!("{rest}; see {DOC} for the expected form")
    } else {
        format!("{rest}; fix the YAML syntax here (see {DOC})")
    };
    SiteError {
        file: file.to_string(),
        line,
        column,
        key: if path.is_empty() {
            "(top level)".into()
        } else {
            path
        },
        message,
    }
}

fn between(s: &str, start: &str, end: &str) -> Option<String> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(s[i..j].to_string())
}

/// The candidate closest to `word` by edit distance, if it is close enough
/// to be a likely typo.
fn closest(word: &str, candidates: &[String]) -> Option<String> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

struct Validator {
    file: String,
    spans: Spans,
    errors: Vec<SiteError>,
}

/// A value resolved from a host entry or from `defaults:`, with the key path
/// it came from (for the error's line).
struct Got<T> {
    value: T,
    path: String,
}

impl Validator {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let (line, column) = self.spans.nearest(path);
        self.errors.push(SiteError {
            file: self.file.clone(),
            line,
            column,
            key: path.to_string(),
            message: message.into(),
        });
    }

    fn line_of(&self, path: &str) -> usize {
        self.spans.nearest(path).0
    }

    fn site(&mut self, raw: SiteFile, file: &str) -> Option<Site> {
        let defaults = raw.defaults.clone().unwrap_or_default();
        self.no_control_chars(&raw);
        if defaults.host.is_some() {
            self.err(
                "defaults.host",
                "`host` names one machine and cannot be a default; move it into `origin:` or a `mirrors:` entry",
            );
        }
        if defaults.address.is_some() {
            self.err(
                "defaults.address",
                "`address` belongs to one machine and cannot be a default; move it into `origin:` or a `mirrors:` entry",
            );
        }
        // Role-specific defaults are allowed (they apply where they make sense).
        let Some(origin_raw) = raw.origin.clone() else {
            self.err(
                "origin",
                format!(
                    "missing: a site needs exactly one origin, the host that publishes the repository; \
                     add a section like `origin: {{host: archive.example.org, repo_dir: /srv/mirror/debian}}` (see {DOC})"
                ),
            );
            return None;
        };
        if let Some(name) = &raw.name {
            if name.trim().is_empty() {
                self.err(
                    "name",
                    "is empty; give the site a short name or remove the key",
                );
            }
        }

        let mut entries: Vec<(String, Role, Params)> =
            vec![("origin".into(), Role::Origin, origin_raw)];
        for (i, m) in raw
            .mirrors
            .clone()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            entries.push((format!("mirrors[{i}]"), Role::Mirror, m));
        }

        // Host names: present, well-formed, unique.
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut names = Vec::new();
        for (path, _, p) in &entries {
            let name = match &p.host {
                None => {
                    self.err(
                        path,
                        "has no `host`: add `host: <the machine's FQDN>` (its Puppet certname / Ansible inventory name)",
                    );
                    String::new()
                }
                Some(h) => {
                    let key = format!("{path}.host");
                    if !valid_host_name(h) {
                        self.err(
                            &key,
                            format!(
                                "'{h}' is not a host name: use letters, digits, '-', '_' and '.', such as mirror1.example.org"
                            ),
                        );
                    } else if let Some(first) = seen.get(h) {
                        let first_line = self.line_of(&format!("{first}.host"));
                        self.err(
                            &key,
                            format!(
                                "duplicate host '{h}': it is already listed at {first} (line {first_line}); \
                                 each host runs one agent, so list it once (remove this entry or rename it)"
                            ),
                        );
                    } else {
                        seen.insert(h.clone(), path.clone());
                    }
                    h.clone()
                }
            };
            names.push(name);
        }

        // Parameters that do not apply to the role the entry has.
        for (path, role, p) in &entries {
            let set = param_values(p, None);
            for (name, _) in &set {
                match (role, applies(name)) {
                    (Role::Mirror, Applies::Origin) => self.err(
                        &format!("{path}.{name}"),
                        format!("`{name}` applies only to the origin; remove it from this mirror or move it to `origin:`"),
                    ),
                    (Role::Origin, Applies::Mirror) => self.err(
                        &format!("{path}.{name}"),
                        format!(
                            "`{name}` applies only to mirrors (the origin follows nobody); remove it from `origin:` \
                             or move it to the mirrors or to `defaults:`"
                        ),
                    ),
                    _ => {}
                }
            }
        }

        // Resolve each host. A host with bad values still takes part in the
        // checks below (with documented defaults in their place), so that
        // one run reports every problem; one whose listen address is bad
        // sits out the port checks.
        let mut hosts = Vec::new();
        let mut bad_listen = std::collections::HashSet::new();
        for ((path, role, p), name) in entries.iter().zip(&names) {
            let (h, listen_ok) = self.resolve(path, *role, p, &defaults, name);
            if !listen_ok {
                bad_listen.insert(hosts.len());
            }
            hosts.push(h);
        }

        // Cross-host checks: profile, public key, upstreams, ports.
        let origin_key = self.origin_key(&entries, &defaults);
        let origin_profile = hosts[0].profile;
        let origin_url = hosts[0].advertise_url.clone();
        let urls: BTreeMap<String, String> = hosts
            .iter()
            .map(|h| (h.host.clone(), h.advertise_url.clone()))
            .collect();
        for (i, (path, role, p)) in entries.iter().enumerate() {
            if *role != Role::Mirror {
                if let Some(k) = &origin_key {
                    hosts[i].origin_public_key = Some(k.value.clone());
                }
                continue;
            }
            let h = hosts[i].clone();
            if h.profile != origin_profile {
                let from = self.src(path, "profile", p);
                self.err(
                    &from,
                    format!(
                        "mirror '{}' uses profile {} but the origin publishes {origin_profile}; a mirror applies what \
                         the origin publishes, so remove the override or use profile: {origin_profile}",
                        h.host, h.profile
                    ),
                );
            }
            // The origin's public key.
            let key = p
                .origin_public_key
                .as_ref()
                .map(|k| Got {
                    value: k.clone(),
                    path: format!("{path}.origin_public_key"),
                })
                .or_else(|| {
                    origin_key.as_ref().map(|g| Got {
                        value: g.value.clone(),
                        path: g.path.clone(),
                    })
                });
            match key {
                None => self.err(
                    path,
                    format!(
                        "mirror '{}' has no origin_public_key: mirrors accept only generations signed by the origin; \
                         run `shoal-agent keygen --out /etc/shoal/origin.key` on the origin and put the printed \
                         `ed25519:...` key in `origin: {{origin_public_key: ...}}`",
                        h.host
                    ),
                ),
                Some(k) => {
                    if let Some(ok) = &origin_key {
                        if k.value != ok.value && k.path != ok.path {
                            self.err(
                                &k.path,
                                format!(
                                    "differs from the origin's public key set at {}; a mirror must trust the key \
                                     the origin signs with, so remove this override",
                                    ok.path
                                ),
                            );
                        }
                    }
                    hosts[i].origin_public_key = Some(k.value);
                }
            }
            // Upstreams: URLs or host names of this site.
            let (list, list_path) = match (&p.upstreams, &defaults.upstreams) {
                (Some(u), _) => (Some(u.clone()), format!("{path}.upstreams")),
                (None, Some(u)) => (Some(u.clone()), "defaults.upstreams".to_string()),
                (None, None) => (None, String::new()),
            };
            let mut resolved = Vec::new();
            match list {
                None => resolved.push(origin_url.clone()),
                Some(list) => {
                    if list.is_empty() {
                        self.err(
                            &list_path,
                            "is empty: a mirror needs at least one upstream; remove the key to follow the origin, \
                             or list the origin's or other mirrors' host names or URLs",
                        );
                    }
                    for (j, u) in list.iter().enumerate() {
                        let upath = format!("{list_path}[{j}]");
                        if u == &h.host || Some(u) == Some(&h.advertise_url) {
                            self.err(
                                &upath,
                                format!("mirror '{}' cannot follow itself; list the origin or another mirror", h.host),
                            );
                        } else if let Some(url) = urls.get(u) {
                            resolved.push(url.clone());
                        } else if u.contains("://") {
                            match check_url(u) {
                                Ok(()) => resolved.push(u.clone()),
                                Err(why) => self.err(
                                    &upath,
                                    format!("upstream '{u}' is malformed: {why}; write http://HOST:PORT, such as http://archive.example.org:8780"),
                                ),
                            }
                        } else {
                            self.err(
                                &upath,
                                format!(
                                    "upstream '{u}' is neither a host of this site nor a URL; use a host listed under \
                                     origin/mirrors, or write http://HOST:PORT"
                                ),
                            );
                        }
                    }
                }
            }
            hosts[i].upstreams = resolved;
        }
        if let Some(k) = &origin_key {
            if !is_public_key(&k.value) {
                // Reported once, at the place it is written.
                self.err(
                    &k.path,
                    format!(
                        "'{}' is not an ed25519 public key: expected `ed25519:` followed by 64 hex digits, \
                         as printed by `shoal-agent keygen`",
                        k.value
                    ),
                );
            }
        }
        for (path, role, p) in &entries {
            if *role == Role::Mirror {
                if let Some(k) = &p.origin_public_key {
                    if !is_public_key(k) && origin_key.as_ref().map(|o| &o.value) != Some(k) {
                        self.err(
                            &format!("{path}.origin_public_key"),
                            format!(
                                "'{k}' is not an ed25519 public key: expected `ed25519:` followed by 64 hex digits, \
                                 as printed by `shoal-agent keygen`"
                            ),
                        );
                    }
                }
            }
        }
        self.ports(&entries, &hosts, &defaults, &bad_listen);
        if let Some(g) = raw.storage.as_ref().and_then(|s| s.gluster.as_ref()) {
            self.gluster(g, &hosts);
        }

        let name = raw
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| {
                Path::new(file)
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "site".into())
            });
        Some(Site {
            file: self.file.clone(),
            name,
            defaults,
            hosts,
            storage: raw.storage,
            spans: self.spans.clone(),
        })
    }

    /// The origin's public key: from `origin:`, else `defaults:`.
    fn origin_key(
        &self,
        entries: &[(String, Role, Params)],
        defaults: &Params,
    ) -> Option<Got<String>> {
        let origin = &entries[0].2;
        if let Some(k) = &origin.origin_public_key {
            return Some(Got {
                value: k.clone(),
                path: "origin.origin_public_key".into(),
            });
        }
        defaults.origin_public_key.as_ref().map(|k| Got {
            value: k.clone(),
            path: "defaults.origin_public_key".into(),
        })
    }

    /// The key path a parameter of an entry comes from.
    fn src(&self, path: &str, name: &str, p: &Params) -> String {
        let map = serde_json::to_value(p).unwrap_or(Value::Null);
        if map.get(name).is_some_and(|v| !v.is_null()) {
            format!("{path}.{name}")
        } else {
            format!("defaults.{name}")
        }
    }

    /// Resolves one host entry against the defaults.
    fn resolve(
        &mut self,
        path: &str,
        role: Role,
        p: &Params,
        d: &Params,
        name: &str,
    ) -> (Host, bool) {
        macro_rules! pick {
            ($field:ident) => {
                match (&p.$field, &d.$field) {
                    (Some(v), _) => Some(Got {
                        value: v.clone(),
                        path: format!("{path}.{}", stringify!($field)),
                    }),
                    (None, Some(v)) => Some(Got {
                        value: v.clone(),
                        path: format!("defaults.{}", stringify!($field)),
                    }),
                    (None, None) => None,
                }
            };
        }
        let abs = |v: &mut Validator, g: Option<Got<String>>, default: &str| -> PathBuf {
            match g {
                None => PathBuf::from(default),
                Some(g) => {
                    if let Some(problem) = path_problem(&g.value, default) {
                        v.err(&g.path, problem);
                    }
                    PathBuf::from(g.value)
                }
            }
        };
        let dur = |v: &mut Validator, g: Option<Got<Scalar>>, default: u64| -> Duration {
            match g {
                None => Duration::from_secs(default),
                Some(g) => match &g.value {
                    Scalar::Int(n) => Duration::from_secs(*n),
                    Scalar::Str(s) => parse_duration(s).unwrap_or_else(|e| {
                        v.err(&g.path, e);
                        Duration::from_secs(default)
                    }),
                },
            }
        };
        let size = |v: &mut Validator, g: Option<Got<Scalar>>| -> u64 {
            match g {
                None => 0,
                Some(g) => match &g.value {
                    Scalar::Int(n) => *n,
                    Scalar::Str(s) => parse_bytes(s).unwrap_or_else(|e| {
                        v.err(&g.path, format!("{e} (bytes per second; 0 means no limit)"));
                        0
                    }),
                },
            }
        };
        let sock = |v: &mut Validator, g: &Got<String>| -> Option<SocketAddr> {
            match g.value.parse::<SocketAddr>() {
                Ok(a) if a.port() == 0 => {
                    v.err(
                        &g.path,
                        format!("'{}' has port 0; pick a fixed port such as 8780", g.value),
                    );
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    v.err(
                        &g.path,
                        format!(
                            "'{}' is not ADDR:PORT; write an IP address and a port, such as 0.0.0.0:8780 or [::]:8780",
                            g.value
                        ),
                    );
                    None
                }
            }
        };

        let repo_dir = abs(self, pick!(repo_dir), "/srv/shoal/repo");
        let state_dir = abs(self, pick!(state_dir), "/var/lib/shoal");
        if repo_dir == state_dir
            || repo_dir.starts_with(&state_dir)
            || state_dir.starts_with(&repo_dir)
        {
            let from = self.src(path, "state_dir", p);
            self.err(
                &from,
                format!(
                    "the state folder {} and the repository folder {} of '{name}' must not contain each other; \
                     put state_dir outside repo_dir, such as /var/lib/shoal",
                    state_dir.display(),
                    repo_dir.display()
                ),
            );
        }
        let install_dir = abs(self, pick!(install_dir), "/usr/local/bin");
        let config_dir = abs(self, pick!(config_dir), "/etc/shoal");
        let unit_dir = abs(self, pick!(unit_dir), "/etc/systemd/system");
        let key_default = config_dir.join("origin.key").display().to_string();
        let origin_key_file = abs(self, pick!(origin_key_file), &key_default);

        let profile = match pick!(profile) {
            None => Profile::Generic,
            Some(g) => g.value.parse::<Profile>().unwrap_or_else(|e| {
                self.err(&g.path, e);
                Profile::Generic
            }),
        };
        let listen_got = pick!(listen).unwrap_or(Got {
            value: "0.0.0.0:8780".into(),
            path: format!("{path}.listen"),
        });
        let listen = sock(self, &listen_got);
        let peer_listen = pick!(peer_listen).and_then(|g| sock(self, &g));
        if let Some(l) = listen {
            if peer_listen.is_none()
                && p.peer_listen.is_none()
                && d.peer_listen.is_none()
                && l.port() == u16::MAX
            {
                self.err(
                    &listen_got.path,
                    "port 65535 leaves no room for the BitTorrent port (listen port + 1); use a lower port or set peer_listen",
                );
            }
            if peer_listen == Some(l) {
                let from = self.src(path, "peer_listen", p);
                self.err(&from, "is the same as listen; HTTP and BitTorrent need separate ports (remove peer_listen to use listen port + 1)");
            }
        }
        let advertise_url = match pick!(advertise_url) {
            Some(g) => {
                if let Err(why) = check_url(&g.value) {
                    self.err(
                        &g.path,
                        format!("'{}' is malformed: {why}; write http://HOST:PORT", g.value),
                    );
                }
                g.value
            }
            None => match listen {
                Some(l) if l.ip().is_unspecified() => {
                    format!("http://{}:{}", url_host(name), l.port())
                }
                Some(l) => format!("http://{l}"),
                None => String::new(),
            },
        };
        if let Some(g) = pick!(agent_name) {
            if g.value.is_empty()
                || g.value.contains('/')
                || g.value.starts_with('.')
                || g.value.contains(char::is_whitespace)
            {
                self.err(&g.path, format!("'{}' is not usable as a file name (the trace file is named after it); use a host name", g.value));
            }
        }
        let publish_interval = dur(self, pick!(publish_interval), 300);
        let manifest_ttl = dur(self, pick!(manifest_ttl), 7 * 86400);
        if manifest_ttl < Duration::from_secs(60) && role == Role::Origin {
            let from = self.src(path, "manifest_ttl", p);
            self.err(
                &from,
                "must be at least 1m; mirrors refuse expired manifests, so use days, such as 7d",
            );
        }
        let poll_interval = dur(self, pick!(poll_interval), 30);
        if poll_interval.is_zero() && role == Role::Mirror {
            let from = self.src(path, "poll_interval", p);
            self.err(&from, "must be more than 0s, such as 30s");
        }
        let delete_grace = dur(self, pick!(delete_grace), 3600);
        let upload_limit = size(self, pick!(upload_limit));
        let download_limit = size(self, pick!(download_limit));
        let log_format = match pick!(log_format) {
            None => LogFormat::Text,
            Some(g) => match g.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    self.err(
                        &g.path,
                        format!("unknown log_format '{other}': use text or json"),
                    );
                    LogFormat::Text
                }
            },
        };
        let binary_source = match pick!(binary_source) {
            None => {
                self.err(
                    path,
                    format!(
                        "'{name}' has no binary_source: say where the shoal-agent binary is copied from, \
                         an absolute path or a URL, in `defaults: {{binary_source: ...}}`"
                    ),
                );
                String::new()
            }
            Some(g) => {
                let ok = (g.value.starts_with('/') && g.value.chars().all(path_char))
                    || g.value.split_once("://").is_some_and(|(s, rest)| {
                        ["http", "https", "file", "puppet"].contains(&s)
                            && !rest.is_empty()
                            && !rest.contains(char::is_whitespace)
                    });
                if !ok {
                    self.err(
                        &g.path,
                        format!(
                            "'{}' is neither an absolute path nor an http(s)://, file:// or puppet:/// URL; \
                             write /path/to/shoal-agent or https://HOST/shoal-agent",
                            g.value
                        ),
                    );
                }
                g.value
            }
        };
        let binary_checksum = pick!(binary_checksum).map(|g| {
            if let Err(why) = check_checksum(&g.value) {
                self.err(&g.path, why);
            } else if !binary_source.contains("://") && !binary_source.is_empty() {
                self.err(
                    &g.path,
                    "applies only when binary_source is a URL (a local file is copied as it is); remove it or use a URL",
                );
            }
            g.value
        });
        let account = |v: &mut Validator, g: Option<Got<String>>| -> String {
            match g {
                None => "root".into(),
                Some(g) => {
                    let ok = !g.value.is_empty()
                        && g.value.len() <= 32
                        && g.value
                            .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                        && g.value.chars().all(|c| {
                            c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)
                        });
                    if !ok {
                        v.err(
                            &g.path,
                            format!(
                                "'{}' is not a valid user or group name; use at most 32 lowercase letters, digits, '_' and '-', \
                                 starting with a letter or '_', such as shoal",
                                g.value
                            ),
                        );
                    }
                    g.value
                }
            }
        };
        let user = account(self, pick!(user));
        let group = account(self, pick!(group));
        let manage_user_got = pick!(manage_user);
        let manage_user = manage_user_got.as_ref().map(|g| g.value).unwrap_or(false);
        if manage_user && (user == "root" || group == "root") {
            let from = manage_user_got.map(|g| g.path).unwrap_or_default();
            self.err(
                &from,
                format!(
                    "manage_user creates a dedicated system account for '{name}', so user and group must not be root; \
                     set user and group to a name such as shoal, or manage_user: false"
                ),
            );
        }
        let service_manager = match pick!(service_manager) {
            None => ServiceManager::Systemd,
            Some(g) => match g.value.as_str() {
                "systemd" => ServiceManager::Systemd,
                "daemon" => ServiceManager::Daemon,
                other => {
                    self.err(&g.path, format!("unknown service_manager '{other}': use systemd, or daemon on hosts without systemd"));
                    ServiceManager::Systemd
                }
            },
        };
        let service_ensure = match pick!(service_ensure) {
            None => "running".to_string(),
            Some(g) => {
                if g.value != "running" && g.value != "stopped" {
                    self.err(
                        &g.path,
                        format!(
                            "unknown service_ensure '{}': use running or stopped",
                            g.value
                        ),
                    );
                }
                g.value
            }
        };
        let manage_web = pick!(manage_web).map(|g| g.value).unwrap_or(false);
        let web_server_name = pick!(web_server_name).map(|g| {
            if g.value.is_empty()
                || !g
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*_.-".contains(c))
            {
                self.err(
                    &g.path,
                    format!(
                        "'{}' is not a server name; use a host name such as mirror.example.org",
                        g.value
                    ),
                );
            }
            g.value
        });
        let web_port = match pick!(web_port) {
            None => 80,
            Some(g) if g.value == 0 => {
                self.err(&g.path, "must be a port from 1 to 65535, such as 80");
                80
            }
            Some(g) => g.value,
        };
        let address = p.address.clone().unwrap_or_else(|| name.to_string());
        if p.address
            .as_deref()
            .is_some_and(|a| a.is_empty() || a.contains(char::is_whitespace))
        {
            self.err(
                &format!("{path}.address"),
                "is not a host name or IP address; write how the admin machine reaches this host",
            );
        }
        let listen_ok = listen.is_some();
        let host = Host {
            host: name.to_string(),
            address,
            role,
            path: path.to_string(),
            params: p.clone(),
            agent_name: pick!(agent_name).map(|g| g.value),
            repo_dir,
            state_dir,
            profile,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8780))),
            peer_listen,
            advertise_url,
            origin_key_file,
            origin_public_key: None,
            upstreams: Vec::new(),
            publish_interval,
            manifest_ttl,
            poll_interval,
            delete_grace,
            upload_limit,
            download_limit,
            log_format,
            binary_source,
            binary_checksum,
            install_dir,
            config_dir,
            unit_dir,
            user,
            group,
            manage_user,
            service_manager,
            service_ensure,
            manage_web,
            web_server_name,
            web_port,
        };
        (host, listen_ok)
    }

    /// Port clashes: on one host between its HTTP, BitTorrent and web ports,
    /// and between hosts that are one machine (same `address`, or the same
    /// specific non-loopback listen IP).
    fn ports(
        &mut self,
        entries: &[(String, Role, Params)],
        hosts: &[Host],
        d: &Params,
        skip: &std::collections::HashSet<usize>,
    ) {
        struct Sock {
            host: usize,
            what: &'static str,
            addr: SocketAddr,
            path: String,
        }
        let mut socks: Vec<Sock> = Vec::new();
        for (i, (h, (path, _, p))) in hosts.iter().zip(entries).enumerate() {
            if skip.contains(&i) || h.host.is_empty() {
                continue;
            }
            let listen_path = self.src(path, "listen", p);
            let listen_path = if p.listen.is_none() && d.listen.is_none() {
                path.clone()
            } else {
                listen_path
            };
            socks.push(Sock {
                host: i,
                what: "HTTP port (listen)",
                addr: h.listen,
                path: listen_path.clone(),
            });
            if let Some(peer) = h.peer_addr() {
                let (what, ppath) = if h.peer_listen.is_some() {
                    (
                        "BitTorrent port (peer_listen)",
                        self.src(path, "peer_listen", p),
                    )
                } else {
                    ("BitTorrent port (listen port + 1)", listen_path.clone())
                };
                socks.push(Sock {
                    host: i,
                    what,
                    addr: peer,
                    path: ppath,
                });
            }
            if h.manage_web {
                let wpath = if p.web_port.is_some() || d.web_port.is_some() {
                    self.src(path, "web_port", p)
                } else {
                    self.src(path, "manage_web", p)
                };
                let any = if h.listen.is_ipv4() {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    IpAddr::from([0u16; 8])
                };
                socks.push(Sock {
                    host: i,
                    what: "web port (web_port, nginx)",
                    addr: SocketAddr::new(any, h.web_port),
                    path: wpath,
                });
            }
        }
        let same_machine = |a: &Host, b: &Host| -> bool {
            if a.address == b.address {
                return true;
            }
            let specific = |ip: IpAddr| !ip.is_unspecified() && !ip.is_loopback();
            a.listen.ip() == b.listen.ip() && specific(a.listen.ip())
        };
        let overlap = |a: IpAddr, b: IpAddr| a == b || a.is_unspecified() || b.is_unspecified();
        let mut reported = std::collections::HashSet::new();
        for j in 0..socks.len() {
            for i in 0..j {
                let (a, b) = (&socks[i], &socks[j]);
                if a.addr.port() != b.addr.port() || !overlap(a.addr.ip(), b.addr.ip()) {
                    continue;
                }
                let (ha, hb) = (&hosts[a.host], &hosts[b.host]);
                if a.host != b.host && !same_machine(ha, hb) {
                    continue;
                }
                if !reported.insert(b.path.clone()) {
                    continue;
                }
                let port = b.addr.port();
                let suggestion = port.saturating_add(10);
                let msg = if a.host == b.host {
                    format!(
                        "port clash on '{}': port {port} is both its {} and its {}; give one of them another port, \
                         such as {suggestion}",
                        hb.host, a.what, b.what
                    )
                } else {
                    let line = self.line_of(&a.path);
                    format!(
                        "port clash: '{}' and '{}' are the same machine ({}) and both use port {port}: '{}' for its {} \
                         (line {line}) and '{}' for its {}; agents on one machine need distinct ports, such as \
                         listen: {}:{suggestion} here (its BitTorrent port is then {})",
                        ha.host,
                        hb.host,
                        if ha.address == hb.address { ha.address.clone() } else { ha.listen.ip().to_string() },
                        ha.host,
                        a.what,
                        hb.host,
                        b.what,
                        hb.listen.ip(),
                        suggestion.saturating_add(1),
                    )
                };
                self.err(&b.path, msg);
            }
        }
    }

    /// Control characters (newlines, tabs) in values would break every
    /// rendered file; refuse them with the key that holds one.
    fn no_control_chars(&mut self, raw: &SiteFile) {
        fn walk(v: &Value, path: String, out: &mut Vec<String>) {
            match v {
                Value::String(s) if s.chars().any(|c| c.is_control()) => out.push(path),
                Value::Array(a) => {
                    for (i, x) in a.iter().enumerate() {
                        walk(x, format!("{path}[{i}]"), out);
                    }
                }
                Value::Object(m) => {
                    for (k, x) in m {
                        walk(x, join_key(&path, k), out);
                    }
                }
                _ => {}
            }
        }
        let mut bad = Vec::new();
        walk(
            &serde_json::to_value(raw).unwrap_or(Value::Null),
            String::new(),
            &mut bad,
        );
        for path in bad {
            self.err(&path, "contains a control character (newline or tab); write the value on one line without tabs");
        }
    }
}

// ---------------------------------------------------------------------------
// Storage: a GlusterFS volume for mirrors' repositories
// ---------------------------------------------------------------------------

/// The key path of the GlusterFS section.
const GLUSTER: &str = "storage.gluster";

/// The validated `storage.gluster` section: servers, the planned brick order
/// and the mirrors that mount the volume.
#[derive(Debug, Clone)]
pub struct Gluster {
    /// The volume's name.
    pub volume: String,
    /// Where the mirrors mount it.
    pub mount: PathBuf,
    /// The servers, in file order.
    pub servers: Vec<GlusterServer>,
    /// The site mirrors whose `repo_dir` is on the volume, in site order.
    pub mirrors: Vec<String>,
    /// The planned volume (from `shoal-gluster`).
    pub plan: Plan,
}

/// One gluster server of the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlusterServer {
    /// The name the bricks and `gluster peer probe` use.
    pub host: String,
    /// How the admin machine reaches it (the site host's address for hosts
    /// of the site).
    pub address: String,
    /// Whether it is also the origin or a mirror of the site.
    pub site_host: bool,
    /// Its brick directories.
    pub bricks: Vec<String>,
}

impl Gluster {
    /// The bricks in `gluster volume create` order, as the gluster CLI
    /// takes them (`HOST:PATH`, IPv6 hosts without brackets).
    pub fn bricks(&self) -> Vec<String> {
        self.plan.bricks().iter().map(|b| b.gluster_arg()).collect()
    }

    /// The server a mirror mounts from: the host of the first brick (the
    /// one that creates the volume); the others are its backup volfile
    /// servers.
    pub fn mount_server(&self) -> String {
        self.plan.bricks()[0].host().to_string()
    }

    /// The volume type as written on the gluster command line.
    pub fn volume_type(&self) -> String {
        self.plan.volume_type.to_string()
    }

    /// The `replica`/`arbiter`/`disperse`/`redundancy` counts for Puppet and
    /// Ansible, only those that apply.
    pub fn type_params(&self) -> Vec<(&'static str, u32)> {
        match self.plan.volume_type {
            VolumeType::Replica { replica, arbiter } => {
                let mut v = vec![("replica", replica)];
                if arbiter {
                    v.push(("arbiter", 1));
                }
                v
            }
            VolumeType::Disperse {
                disperse,
                redundancy,
            } => vec![("disperse", disperse), ("redundancy", redundancy)],
        }
    }

    /// The server entry of a host name, if it is one.
    pub fn server(&self, host: &str) -> Option<&GlusterServer> {
        self.servers.iter().find(|s| s.host == host)
    }
}

impl Site {
    /// The planned GlusterFS volume, if the site has `storage.gluster`.
    pub fn gluster(&self) -> Option<Gluster> {
        let g = self.storage.as_ref()?.gluster.as_ref()?;
        let mut v = Validator {
            file: self.file.clone(),
            spans: self.spans.clone(),
            errors: Vec::new(),
        };
        v.gluster(g, &self.hosts)
    }
}

/// Whether one of two absolute paths contains the other (or they are equal).
fn overlap(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

impl Validator {
    /// Checks `storage.gluster` against the site's hosts and plans the
    /// volume with the layout planner. Returns `None` after reporting
    /// problems.
    fn gluster(&mut self, g: &GlusterStorage, hosts: &[Host]) -> Option<Gluster> {
        let before = self.errors.len();
        let key = |k: &str| format!("{GLUSTER}.{k}");
        let site_names: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();

        // The servers.
        let list = g.hosts.clone().unwrap_or_default();
        if list.is_empty() {
            self.err(
                &if g.hosts.is_some() { key("hosts") } else { GLUSTER.to_string() },
                "lists no gluster servers: add `hosts:` with the machines that run glusterd and carry bricks, \
                 such as `hosts: [gluster1.example.org, gluster2.example.org, gluster3.example.org]`",
            );
        }
        let common = g.bricks.clone().unwrap_or_default();
        if g.bricks.as_ref().is_some_and(|b| b.is_empty()) {
            self.err(
                &key("bricks"),
                "is empty: list the brick directories every server carries, such as `bricks: [/data/glusterfs/brick1]`",
            );
        }
        for (j, b) in common.iter().enumerate() {
            if let Some(problem) = path_problem(b, "/data/glusterfs/brick1") {
                self.err(&format!("{}[{j}]", key("bricks")), problem);
            }
        }
        let mut servers: Vec<GlusterServer> = Vec::new();
        // For each server: the key path of its bricks (own or common).
        let mut brick_keys: Vec<String> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{}[{i}]", key("hosts"));
            let (name, address, own) = match entry {
                GlusterHost::Name(n) => (Some(n.clone()), None, None),
                GlusterHost::Entry(e) => (e.host.clone(), e.address.clone(), e.bricks.clone()),
            };
            let Some(name) = name else {
                self.err(
                    &path,
                    "has no `host`: write the server's name, such as `{host: gluster4.example.org, address: 192.0.2.14}`",
                );
                continue;
            };
            let hpath = match entry {
                GlusterHost::Name(_) => path.clone(),
                GlusterHost::Entry(_) => format!("{path}.host"),
            };
            if !(valid_host_name(&name) || name.parse::<IpAddr>().is_ok()) {
                self.err(
                    &hpath,
                    format!(
                        "'{name}' is not a host name or IP address: use letters, digits, '-', '_' and '.', \
                         such as gluster1.example.org"
                    ),
                );
                continue;
            }
            if let Some(first) = seen.get(&name.to_ascii_lowercase()) {
                let line = self.line_of(first);
                self.err(
                    &hpath,
                    format!(
                        "'{name}' is already listed at {first} (line {line}); host names ignore letter case, \
                         so list each server once"
                    ),
                );
                continue;
            }
            seen.insert(name.to_ascii_lowercase(), hpath.clone());
            let site_host = hosts.iter().find(|h| h.host == name);
            let address = match (site_host, address) {
                (Some(h), None) => h.address.clone(),
                (Some(h), Some(_)) => {
                    let line = self.line_of(&format!("{}.host", h.path));
                    self.err(
                        &format!("{path}.address"),
                        format!(
                            "'{name}' is a host of this site ({} at line {line}), whose entry already says how to \
                             reach it: remove `address` here (or set `address` in that entry)",
                            h.path
                        ),
                    );
                    h.address.clone()
                }
                (None, Some(a)) => {
                    if a.is_empty() || a.chars().any(char::is_whitespace) {
                        self.err(
                            &format!("{path}.address"),
                            "is not a host name or IP address; write how the admin machine reaches this server",
                        );
                    }
                    a
                }
                (None, None) => {
                    let hint = closest(&name, &site_names)
                        .map(|c| format!("did you mean the site host `{c}`? If not, "))
                        .unwrap_or_default();
                    self.err(
                        &hpath,
                        format!(
                            "'{name}' is not a host of this site and has no address: {hint}write it as \
                             `{{host: {name}, address: <IP or name the admin machine reaches it by>}}` so that \
                             Puppet and Ansible can set it up"
                        ),
                    );
                    name.clone()
                }
            };
            let bricks = match own {
                Some(b) => {
                    let bkey = format!("{path}.bricks");
                    if b.is_empty() {
                        self.err(&bkey, "is empty: list this server's brick directories, or remove the key to use `storage.gluster.bricks`");
                    }
                    for (j, p) in b.iter().enumerate() {
                        if let Some(problem) = path_problem(p, "/data/glusterfs/brick1") {
                            self.err(&format!("{bkey}[{j}]"), problem);
                        }
                    }
                    brick_keys.push(bkey);
                    b
                }
                None => {
                    if g.bricks.is_none() {
                        self.err(
                            &path,
                            format!(
                                "server '{name}' has no bricks: add `bricks: [/data/glusterfs/brick1]` under \
                                 {GLUSTER} for every server, or give this entry its own `bricks`"
                            ),
                        );
                    }
                    brick_keys.push(key("bricks"));
                    common.clone()
                }
            };
            servers.push(GlusterServer {
                host: name,
                address,
                site_host: site_host.is_some(),
                bricks,
            });
        }

        // Replica, arbiter, disperse, redundancy.
        let volume_type = match (g.replica, g.disperse) {
            (Some(_), Some(_)) => {
                self.err(
                    &key("disperse"),
                    "a volume either replicates (`replica`) or erasure-codes (`disperse`), not both: remove one",
                );
                None
            }
            (None, None) => {
                self.err(
                    GLUSTER,
                    "says neither `replica` nor `disperse`: add `replica: 3` (three copies of every file), \
                     `replica: 2` with `arbiter: 1`, or `disperse: N` with `redundancy: K`",
                );
                None
            }
            (Some(replica), None) => {
                if g.redundancy.is_some() {
                    self.err(
                        &key("redundancy"),
                        "applies only to `disperse` volumes: remove it, or use `disperse` instead of `replica`",
                    );
                }
                let arbiter = match g.arbiter {
                    None | Some(0) => false,
                    Some(1) => true,
                    Some(n) => {
                        self.err(
                            &key("arbiter"),
                            format!("arbiter {n} is not supported: gluster knows only `arbiter: 1` (one arbiter brick per replica set)"),
                        );
                        false
                    }
                };
                Some(VolumeType::Replica { replica, arbiter })
            }
            (None, Some(disperse)) => {
                if g.arbiter.is_some() {
                    self.err(
                        &key("arbiter"),
                        "applies only to `replica` volumes: remove it, or use `replica` instead of `disperse`",
                    );
                }
                match g.redundancy {
                    Some(redundancy) => Some(VolumeType::Disperse {
                        disperse,
                        redundancy,
                    }),
                    None => {
                        self.err(
                            &key("disperse"),
                            format!(
                                "needs `redundancy`: how many bricks of each set of {disperse} may fail, such as \
                                 `redundancy: {}`",
                                (disperse.max(3) - 1) / 2
                            ),
                        );
                        None
                    }
                }
            }
        };
        let volume_type = volume_type.and_then(|t| match t.validate() {
            Ok(()) => Some(t),
            Err(e) => {
                let k = match e {
                    LayoutError::ArbiterNeedsReplica3 { .. } => key("arbiter"),
                    LayoutError::ReplicaTooSmall { .. } => key("replica"),
                    LayoutError::DisperseTooSmall { .. } => key("disperse"),
                    _ => key("redundancy"),
                };
                self.err(&k, e.to_string());
                None
            }
        });

        let layout = match g.layout.as_deref() {
            None => Some(Layout::Simple),
            Some(l) => match l.parse::<Layout>() {
                Ok(l) => Some(l),
                Err(e) => {
                    self.err(
                        &key("layout"),
                        format!(
                            "{e} (the volume type goes in `replica`/`disperse`; `chained` spreads each server's \
                             replicas over different neighbours)"
                        ),
                    );
                    None
                }
            },
        };

        let volume = g.volume.clone().unwrap_or_else(|| "shoal".into());
        if let Err(e) = check_volume_name(&volume) {
            self.err(&key("volume"), e.to_string());
        }

        // The mirrors on the volume.
        let mirrors: Vec<&Host> = match &g.mirrors {
            None => {
                let m: Vec<&Host> = hosts.iter().filter(|h| h.role == Role::Mirror).collect();
                if m.is_empty() {
                    self.err(
                        GLUSTER,
                        "the site has no mirrors to keep on the volume: add mirrors, or remove `storage`",
                    );
                }
                m
            }
            Some(list) => {
                if list.is_empty() {
                    self.err(
                        &key("mirrors"),
                        "is empty: list the mirrors that keep their repository on the volume, or remove the key for all mirrors",
                    );
                }
                let mirror_names: Vec<String> = hosts
                    .iter()
                    .filter(|h| h.role == Role::Mirror)
                    .map(|h| h.host.clone())
                    .collect();
                let mut out: Vec<&Host> = Vec::new();
                for (i, n) in list.iter().enumerate() {
                    let k = format!("{}[{i}]", key("mirrors"));
                    match hosts.iter().find(|h| &h.host == n) {
                        Some(h) if h.role == Role::Origin => self.err(
                            &k,
                            format!(
                                "'{n}' is the origin, which publishes the folder its archive software writes; \
                                 only mirrors keep their live tree on the volume: remove it here"
                            ),
                        ),
                        Some(h) if out.iter().any(|o| o.host == h.host) => {
                            self.err(&k, format!("'{n}' is listed twice: list each mirror once"))
                        }
                        Some(h) => out.push(h),
                        None => {
                            let hint = closest(n, &mirror_names)
                                .map(|c| format!("did you mean `{c}`? "))
                                .unwrap_or_default();
                            self.err(
                                &k,
                                format!(
                                    "'{n}' is not a mirror of this site: {hint}list host names from `mirrors:`"
                                ),
                            );
                        }
                    }
                }
                out
            }
        };

        // The mount point: given, or the mirrors' common repo_dir.
        let mount = match &g.mount {
            Some(m) => {
                if let Some(problem) = path_problem(m, "/srv/shoal") {
                    self.err(&key("mount"), problem);
                } else if m == "/" {
                    self.err(&key("mount"), "is the root folder: mount the volume on a folder of its own, such as /srv/shoal");
                }
                Some(PathBuf::from(m))
            }
            None => {
                let dirs: BTreeSet<&PathBuf> = mirrors.iter().map(|h| &h.repo_dir).collect();
                match dirs.len() {
                    0 => None,
                    1 => dirs.into_iter().next().cloned(),
                    _ => {
                        let list: Vec<String> =
                            dirs.iter().map(|d| d.display().to_string()).collect();
                        self.err(
                            GLUSTER,
                            format!(
                                "has no `mount`, and the mirrors on the volume keep their repositories in different \
                                 folders ({}): add `mount:` with a folder that contains them all",
                                list.join(", ")
                            ),
                        );
                        None
                    }
                }
            }
        };
        if let Some(mount) = &mount {
            let mut trees: Vec<(&Host, String)> = Vec::new();
            for h in &mirrors {
                let rpath = self.src_or_entry(h, "repo_dir");
                if !h.repo_dir.starts_with(mount) {
                    self.err(
                        &rpath,
                        format!(
                            "mirror '{}' keeps its repository in {}, which is not on the gluster volume mounted at \
                             {}: set its repo_dir to {} or a folder inside it, or change {GLUSTER}.mount",
                            h.host,
                            h.repo_dir.display(),
                            mount.display(),
                            mount.display()
                        ),
                    );
                    continue;
                }
                if h.state_dir.starts_with(mount) {
                    self.err(
                        &self.src_or_entry(h, "state_dir"),
                        format!(
                            "mirror '{}' keeps its state in {}, on the gluster volume mounted at {}: keep the state \
                             on local disk (the pack store is re-read on every start and each mirror needs its own), \
                             such as /var/lib/shoal",
                            h.host,
                            h.state_dir.display(),
                            mount.display()
                        ),
                    );
                }
                if let Some((other, _)) = trees
                    .iter()
                    .find(|(o, _)| overlap(&o.repo_dir, &h.repo_dir))
                {
                    self.err(
                        &rpath,
                        format!(
                            "mirrors '{}' and '{}' would write the same tree on the shared volume ({} and {}): give \
                             each mirror its own folder under {}, such as {}/{}",
                            other.host,
                            h.host,
                            other.repo_dir.display(),
                            h.repo_dir.display(),
                            mount.display(),
                            mount.display().to_string().trim_end_matches('/'),
                            h.host
                        ),
                    );
                    continue;
                }
                trees.push((h, rpath));
            }
            // A server that is also a host of the site: its bricks must stay
            // clear of the folders the agent writes and of the mount.
            for (s, bkey) in servers.iter().zip(&brick_keys) {
                let Some(h) = hosts.iter().find(|h| h.host == s.host) else {
                    continue;
                };
                let on_volume = mirrors.iter().any(|m| m.host == h.host);
                for (j, b) in s.bricks.iter().enumerate() {
                    let bp = Path::new(b);
                    let mut clash = vec![("repo_dir", &h.repo_dir), ("state_dir", &h.state_dir)];
                    if on_volume {
                        clash.push(("the mount point", mount));
                    }
                    if let Some((what, p)) = clash.into_iter().find(|(_, p)| overlap(bp, p)) {
                        self.err(
                            &format!("{bkey}[{j}]"),
                            format!(
                                "brick {b} on '{}' overlaps its {what} {}: gluster owns its bricks and files written \
                                 there behind its back are lost or corrupt; put the bricks in a folder of their own, \
                                 such as /data/glusterfs/brick1",
                                h.host,
                                p.display()
                            ),
                        );
                    }
                }
            }
        }

        if self.errors.len() > before {
            return None;
        }
        let (volume_type, layout, mount) = (volume_type?, layout?, mount?);

        // The layout planner: bricks, hosts and set sizes.
        let mut bricks = Vec::new();
        for (s, bkey) in servers.iter().zip(&brick_keys) {
            let host = match s.host.parse::<std::net::Ipv6Addr>() {
                Ok(_) => format!("[{}]", s.host),
                Err(_) => s.host.clone(),
            };
            for (j, p) in s.bricks.iter().enumerate() {
                match parse_brick(&format!("{host}:{p}")) {
                    Ok(b) => bricks.push(b),
                    Err(e) => self.err(&format!("{bkey}[{j}]"), e.to_string()),
                }
            }
        }
        if self.errors.len() > before {
            return None;
        }
        let own_key = |host: &str| {
            servers
                .iter()
                .zip(&brick_keys)
                .find(|(s, _)| s.host.eq_ignore_ascii_case(host))
                .map(|(_, k)| k.clone())
                .unwrap_or_else(|| key("bricks"))
        };
        let plan = match plan(volume_type, layout, &bricks) {
            Ok(p) => p,
            Err(e) => {
                let k = match &e {
                    LayoutError::TooFewHosts { .. } | LayoutError::HostSpelling { .. } => {
                        key("hosts")
                    }
                    LayoutError::HostHasTooManyBricks { host, .. } => own_key(host),
                    LayoutError::SimpleLayoutConflict { .. } => {
                        if g.layout.is_some() {
                            key("layout")
                        } else {
                            GLUSTER.to_string()
                        }
                    }
                    LayoutError::DuplicateBrick { brick }
                    | LayoutError::NestedBricks { inner: brick, .. } => own_key(
                        brick
                            .rsplit_once(":/")
                            .map(|(h, _)| h.trim_matches(['[', ']']))
                            .unwrap_or(""),
                    ),
                    LayoutError::BrickCountNotMultiple { .. } => {
                        if brick_keys.iter().all(|k| *k == key("bricks")) {
                            key("bricks")
                        } else {
                            key("hosts")
                        }
                    }
                    _ => GLUSTER.to_string(),
                };
                self.err(&k, e.to_string());
                return None;
            }
        };
        Some(Gluster {
            volume,
            mount,
            servers,
            mirrors: mirrors.iter().map(|h| h.host.clone()).collect(),
            plan,
        })
    }

    /// The key a host's resolved parameter comes from: its own entry, the
    /// defaults, or (when neither sets it) the entry itself.
    fn src_or_entry(&self, h: &Host, name: &str) -> String {
        let own = serde_json::to_value(&h.params).unwrap_or(Value::Null);
        if own.get(name).is_some_and(|v| !v.is_null()) {
            format!("{}.{name}", h.path)
        } else if self.spans.get(&format!("defaults.{name}")).is_some() {
            format!("defaults.{name}")
        } else {
            h.path.clone()
        }
    }
}

/// Characters allowed in paths: those every target writes unquoted.
fn path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._+@=:,~/-".contains(c)
}

/// What is wrong with an absolute path a site file gives, if anything;
/// `example` is a path of the same kind to suggest.
fn path_problem(value: &str, example: &str) -> Option<String> {
    if !value.starts_with('/') {
        Some(format!(
            "'{value}' is not an absolute path; write it from the root, such as {example}"
        ))
    } else if let Some(c) = value.chars().find(|c| !path_char(*c)) {
        Some(format!(
            "'{value}' contains {c:?}; paths may hold only letters, digits and . _ + @ = : , ~ - / \
             (they are written unquoted into units, shell commands and nginx), so rename the folder"
        ))
    } else if value.len() > 1 && value.ends_with('/') {
        Some(format!(
            "'{value}' ends with '/'; write it without the trailing slash"
        ))
    } else if value.split('/').any(|c| c == ".." || c == ".") {
        Some(format!(
            "'{value}' contains '.' or '..'; write the normalized absolute path"
        ))
    } else {
        None
    }
}

/// Checks `<algorithm>:<hex>` with the digest length of the algorithm.
fn check_checksum(s: &str) -> Result<(), String> {
    let lens = [
        ("md5", 32),
        ("sha1", 40),
        ("sha224", 56),
        ("sha256", 64),
        ("sha384", 96),
        ("sha512", 128),
    ];
    let advice = "write <algorithm>:<hex digest>, such as the output of `sha256sum shoal-agent` as sha256:<64 hex digits>";
    let (algo, hex) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}' is not a checksum; {advice}"))?;
    let Some((_, n)) = lens.iter().find(|(a, _)| *a == algo) else {
        return Err(format!(
            "unknown checksum algorithm '{algo}': use sha256 (or sha512, sha1, md5)"
        ));
    };
    if hex.len() != *n || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "'{s}' is not a {algo} checksum: expected {n} hex digits after '{algo}:'; {advice}"
        ));
    }
    Ok(())
}

/// Letters, digits, `-`, `_` and `.`; not starting with `-` or `.`.
fn valid_host_name(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && !h.starts_with(['-', '.'])
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A host name or IP as it goes into a URL (IPv6 in brackets).
fn url_host(h: &str) -> String {
    match h.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{h}]"),
        Err(_) => h.to_string(),
    }
}

/// Checks an http(s) URL: scheme, a host, an optional numeric port, no spaces.
pub fn check_url(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .ok_or_else(|| "it must start with http:// or https://".to_string())?;
    if u.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("it contains whitespace".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err("user names and passwords do not belong in an upstream URL".into());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, tail) = v6
            .split_once(']')
            .ok_or("an IPv6 address lacks its closing ']'")?;
        h.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("'{h}' is not an IPv6 address"))?;
        (h, tail.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("it has no host name".into());
    }
    if !authority.starts_with('[') && !valid_host_name(host) {
        return Err(format!("'{host}' is not a host name"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("'{p}' is not a port number (1-65535)")),
        }
    }
    Ok(())
}

/// The JSON object of a resolved host's agent settings, in the shape of the
/// agent config (what `templates/agent.yaml.tera` renders).
pub fn agent_context(site: &Site, h: &Host) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("site".into(), json!(site.name));
    m.insert(
        "site_file".into(),
        json!(Path::new(&site.file)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()),
    );
    m.insert("host".into(), json!(h.host));
    m.insert("role".into(), json!(h.role.to_string()));
    m.insert(
        "name".into(),
        h.agent_name
            .as_ref()
            .map(|n| json!(n))
            .unwrap_or(Value::Null),
    );
    m.insert("repo".into(), json!(h.repo_dir));
    m.insert("state".into(), json!(h.state_dir));
    m.insert("profile".into(), json!(h.profile.to_string()));
    m.insert("listen".into(), json!(h.listen.to_string()));
    m.insert(
        "peer_listen".into(),
        h.peer_listen
            .map(|a| json!(a.to_string()))
            .unwrap_or(Value::Null),
    );
    m.insert("advertise_url".into(), json!(h.advertise_url));
    m.insert(
        "origin".into(),
        json!({
            "key": h.origin_key_file,
            "publish_interval": short_duration(h.publish_interval),
            "manifest_ttl": short_duration(h.manifest_ttl),
        }),
    );
    m.insert(
        "mirror".into(),
        json!({
            "origin_key": h.origin_public_key,
            "upstreams": h.upstreams,
            "poll_interval": short_duration(h.poll_interval),
            "delete_grace": short_duration(h.delete_grace),
        }),
    );
    m.insert(
        "network".into(),
        json!({"upload_limit": h.upload_limit, "download_limit": h.download_limit}),
    );
    m.insert(
        "log".into(),
        json!({"format": match h.log_format { LogFormat::Text => "text", LogFormat::Json => "json" }}),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_find_keys_in_block_and_flow_style() {
        let text = "name: x\norigin:\n  host: a\n  listen: 1.2.3.4:5\nmirrors:\n  - host: b\n  - {host: c, listen: \"0.0.0.0:1\"}\n";
        let s = Spans::parse(text);
        assert_eq!(s.get("name"), Some((1, 1)));
        assert_eq!(s.get("origin.listen"), Some((4, 3)));
        assert_eq!(s.get("mirrors[0].host"), Some((6, 5)));
        assert_eq!(s.get("mirrors[0]"), Some((6, 5)));
        assert_eq!(s.get("mirrors[1].listen").map(|p| p.0), Some(7));
        assert_eq!(s.nearest("mirrors[1].nothing").0, 7);
        assert_eq!(s.nearest("absent.key"), (1, 1));
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://a.example:8780").is_ok());
        assert!(check_url("https://[::1]:8780/x").is_ok());
        assert!(check_url("http://10.0.0.1").is_ok());
        assert!(check_url("ftp://a").is_err());
        assert!(check_url("http://").is_err());
        assert!(check_url("http://a:port").is_err());
        assert!(check_url("http://a b:1").is_err());
        assert!(check_url("http://a:0").is_err());
    }

    #[test]
    fn typo_suggestions() {
        let c = vec!["listen".to_string(), "repo_dir".to_string()];
        assert_eq!(closest("lisen", &c).as_deref(), Some("listen"));
        assert_eq!(closest("zzzzzzzzz", &c), None);
    }
}
