//! The configuration schema of `shoal-agent`.
//!
//! These serde types are the single source of truth for the agent's YAML
//! configuration file. Everything that writes such a file (the provisioner's
//! tera templates, the Puppet module's EPP template, the Ansible role's Jinja2
//! template) is tested by parsing its output with [`AgentConfig::from_yaml`].
//!
//! Unknown keys and bad values are errors that name the file, the line and the
//! key ([`ConfigError`]). Durations are written as `30s`, `5m`, `1h`, `7d`;
//! byte sizes as plain integers or with a unit: `512KiB`, `4GiB`, `10MB`.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which half of the one-directional sync an agent plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Publishes the repository folder as signed generations and seeds them.
    Origin,
    /// Receives generations from upstreams, applies them to its live tree and seeds them.
    Mirror,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Origin => "origin",
            Role::Mirror => "mirror",
        })
    }
}

/// The repository flavour, which decides the consistency order of index files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Debian/Ubuntu archives: by-hash, Packages/Sources/..., Release, InRelease last.
    Debian,
    /// RPM repositories: repodata/* then repomd.xml (and .asc) last.
    Rpm,
    /// Any other tree: no index files.
    #[default]
    Generic,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Debian => "debian",
            Profile::Rpm => "rpm",
            Profile::Generic => "generic",
        })
    }
}

impl std::str::FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "debian" => Ok(Profile::Debian),
            "rpm" => Ok(Profile::Rpm),
            "generic" => Ok(Profile::Generic),
            other => Err(format!(
                "unknown profile '{other}': use one of debian, rpm, generic"
            )),
        }
    }
}

/// The whole agent configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `origin` or `mirror`.
    pub role: Role,
    /// The agent's name: shown in /status and used for the trace file
    /// `project/trace/<name>`. Defaults to the host's fully qualified name (`/etc/hosts`, as `hostname -f`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The repository folder. The origin reads it; a mirror owns it (the live tree).
    pub repo: PathBuf,
    /// The state folder: pack store, manifests, index, admin socket.
    pub state: PathBuf,
    /// Repository flavour (decides the apply order of index files).
    #[serde(default)]
    pub profile: Profile,
    /// HTTP listen address (status, metrics, manifests, torrents, tracker).
    pub listen: SocketAddr,
    /// BitTorrent listen address. Defaults to the HTTP address with port + 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_listen: Option<SocketAddr>,
    /// The URL other agents use to reach this agent's HTTP endpoint.
    /// Defaults to `http://<listen>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_url: Option<String>,
    /// Settings that apply to the origin role.
    #[serde(default)]
    pub origin: OriginConfig,
    /// Settings that apply to the mirror role.
    #[serde(default)]
    pub mirror: MirrorConfig,
    /// Peer-to-peer network settings. Public networks are off by default.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// How the live tree and the pack store share the disk.
    #[serde(default)]
    pub storage: StorageConfig,
}

/// Storage settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The live tree is made of hard links into the pack store, so `repo`
    /// and `state` must be on one mount. When they are not, the agent
    /// refuses to start; `true` accepts copying every file instead (twice
    /// the disk space), with a warning.
    pub allow_copy: bool,
}

/// Origin settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// The ed25519 private key file written by `shoal-agent keygen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// How often the origin scans the tree and publishes when it changed.
    /// `0s` disables automatic publishing (use `shoal-agent publish`).
    #[serde(with = "duration")]
    pub publish_interval: Duration,
    /// How long a published manifest stays valid. Mirrors refuse expired
    /// manifests; the origin re-signs before half of this has passed.
    #[serde(with = "duration")]
    pub manifest_ttl: Duration,
    /// At most this many files in one pack (torrent).
    pub pack_max_files: usize,
    /// At most this many bytes in one pack.
    #[serde(with = "bytesize")]
    pub pack_max_bytes: u64,
    /// A publish cuts what it adds into about this many packs (none under
    /// 1 MiB), so the origin can feed each mirror its own part and the
    /// mirrors trade the rest (see `shoal_swarm`).
    pub pack_split: usize,
    /// Glob patterns (relative to the repo) of files that are never rewritten
    /// in place, so the origin may hard-link them into its pack store instead
    /// of copying them. Defaults per profile (`pool/**` for debian,
    /// `**/*.rpm` for rpm, none for generic) when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<Vec<String>>,
    /// Glob patterns of paths left out of publications.
    pub exclude: Vec<String>,
    /// How many generations of deltas the origin keeps for mirrors that are behind.
    pub keep_deltas: u64,
    /// How long the origin keeps seeding a pack after a new generation no
    /// longer names it, so mirrors still fetching an older generation can
    /// finish it instead of stalling.
    #[serde(with = "duration")]
    pub retire_grace: Duration,
    /// A group allowed to call the admin socket (`shoal-agent publish`), for
    /// an archive's hook user; the socket is then mode 0660 with this group.
    /// Unset: only the agent's user (and root) may call it (mode 0600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_group: Option<String>,
    /// Lock files that mean "the archive is being updated: do not publish".
    /// Absolute, or relative to the repository. ftpsync's own lock
    /// (`Archive-Update-in-Progress-*` at the top of the repository) is
    /// always honoured and need not be listed.
    pub publish_locks: Vec<PathBuf>,
    /// Publish only when nothing in the tree changed (ctime or mtime) for
    /// this long, so a half-written archive is never published. `0s` turns
    /// the check off.
    #[serde(with = "duration")]
    pub quiet_period: Duration,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            key: None,
            publish_interval: Duration::from_secs(300),
            manifest_ttl: Duration::from_secs(7 * 86400),
            pack_max_files: 10_000,
            pack_max_bytes: 4 << 30,
            pack_split: 32,
            immutable: None,
            exclude: Vec::new(),
            keep_deltas: 64,
            retire_grace: Duration::from_secs(1800),
            admin_group: None,
            publish_locks: Vec::new(),
            quiet_period: Duration::from_secs(10),
        }
    }
}

/// Mirror settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    /// The origin's ed25519 public key (as printed by `shoal-agent keygen`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_key: Option<String>,
    /// HTTP endpoints of the origin and/or other agents to follow.
    pub upstreams: Vec<String>,
    /// How often the mirror asks its upstreams for a newer generation.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// How long a file removed upstream stays in the live tree, for clients
    /// still holding older indices.
    #[serde(with = "duration")]
    pub delete_grace: Duration,
    /// Write the ftpsync-format trace file `project/trace/<name>` (and
    /// `_hierarchy`, `_traces`).
    pub trace: bool,
    /// What the trace tells mirror checkers about this mirror (the fields
    /// ftpsync takes from `INFO_MAINTAINER` and friends); unset fields are
    /// left out of the trace.
    pub trace_info: TraceInfo,
}

/// Optional mirror metadata written into the trace file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceInfo {
    /// `Maintainer:`, e.g. `Admins <mirror@example.org>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maintainer: Option<String>,
    /// `Sponsor:`, e.g. `Example Org https://example.org`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sponsor: Option<String>,
    /// `Country:`, an ISO 3166 code such as `DE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// `Location:`, e.g. `Berlin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// `Throughput:`, e.g. `10Gb`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput: Option<String>,
}

impl TraceInfo {
    /// The fields in trace order, with their trace keys.
    pub fn fields(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("Maintainer", self.maintainer.as_deref()),
            ("Sponsor", self.sponsor.as_deref()),
            ("Country", self.country.as_deref()),
            ("Location", self.location.as_deref()),
            ("Throughput", self.throughput.as_deref()),
        ]
    }
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            origin_key: None,
            upstreams: Vec::new(),
            poll_interval: Duration::from_secs(30),
            delete_grace: Duration::from_secs(3600),
            trace: true,
            trace_info: TraceInfo::default(),
        }
    }
}

/// Peer-to-peer settings. Every public discovery mechanism is opt-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Join the public BitTorrent DHT.
    pub dht: bool,
    /// Local service discovery (multicast on the LAN).
    pub lsd: bool,
    /// Ask the router for a port forward (UPnP / NAT-PMP).
    pub upnp: bool,
    /// Extra tracker URLs. Not used for Shoal's packs: they are private
    /// torrents, which librqbit announces to one tracker only (the origin's).
    pub trackers: Vec<String>,
    /// Extra BitTorrent peers (`host:port`) to connect to.
    pub peers: Vec<SocketAddr>,
    /// Upload limit in bytes per second (0 = unlimited).
    #[serde(with = "bytesize")]
    pub upload_limit: u64,
    /// Download limit in bytes per second (0 = unlimited).
    #[serde(with = "bytesize")]
    pub download_limit: u64,
    /// How often peers re-announce to the agents' built-in trackers.
    #[serde(with = "duration")]
    pub announce_interval: Duration,
    /// A complete pack with no peer for this long leaves the BitTorrent
    /// session: it rests, costing no memory and no start-up check, until a
    /// peer announces that it needs it (`0s` keeps every pack in the
    /// session).
    #[serde(with = "duration")]
    pub rest_after: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            dht: false,
            lsd: false,
            upnp: false,
            trackers: Vec::new(),
            peers: Vec::new(),
            upload_limit: 0,
            download_limit: 0,
            announce_interval: Duration::from_secs(30),
            rest_after: Duration::from_secs(300),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A tracing filter such as `info` or `shoal_agent=debug,librqbit=warn`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A configuration error that says where and what.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {cause}; check the path given to --config")]
    Read { file: String, cause: std::io::Error },
    #[error("{file}{location}: {message}")]
    Parse {
        file: String,
        location: String,
        message: String,
    },
    #[error("{file}: {key}: {message}")]
    Invalid {
        file: String,
        key: String,
        message: String,
    },
}

/// Line and column of the second `key:` at one indentation, from line
/// `from` (1-based) of `text` on.
fn duplicate_key_at(text: &str, key: &str, from: Option<usize>) -> Option<(usize, usize)> {
    let from = from.unwrap_or(1);
    let mut first_indent = None;
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        let is_key = body
            .strip_prefix(key)
            .map(|r| r.trim_start().starts_with(':'))
            .unwrap_or(false);
        if !is_key {
            continue;
        }
        match first_indent {
            None => first_indent = Some(indent),
            Some(n) if n == indent => return Some((i + 1, indent + 1)),
            Some(_) => {}
        }
    }
    None
}

impl AgentConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            file: file.clone(),
            cause,
        })?;
        Self::from_yaml(&text, &file)
    }

    /// Parses and validates YAML text; `file` names it in errors.
    pub fn from_yaml(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: AgentConfig = serde_yaml::from_str(text).map_err(|e| {
            let message = e.to_string();
            // serde_yaml places a duplicate key at its mapping's start
            // (1:1 for a top-level key): point at the second occurrence.
            let dup = message
                .split("duplicate field `")
                .nth(1)
                .and_then(|r| r.split('`').next())
                .and_then(|key| duplicate_key_at(text, key, e.location().map(|l| l.line())));
            let location = dup
                .or_else(|| e.location().map(|l| (l.line(), l.column())))
                .map(|(l, c)| format!(":{l}:{c}"))
                .unwrap_or_default();
            ConfigError::Parse {
                file: file.to_string(),
                location,
                message: strip_location(&e.to_string()),
            }
        })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            file: file.to_string(),
            key: key.to_string(),
            message,
        };
        if self.repo.as_os_str().is_empty() {
            return Err(bad("repo", "must name the repository folder".into()));
        }
        if self.state.as_os_str().is_empty() {
            return Err(bad("state", "must name the state folder".into()));
        }
        if self.repo == self.state
            || self.state.starts_with(&self.repo)
            || self.repo.starts_with(&self.state)
        {
            return Err(bad(
                "state",
                format!(
                    "the state folder {} and the repository {} must not contain each other; \
                     put state outside the repository",
                    self.state.display(),
                    self.repo.display()
                ),
            ));
        }
        if let Some(name) = &self.name {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(bad(
                    "name",
                    format!("'{name}' is not usable as a file name; use a host name"),
                ));
            }
        }
        if self.peer_listen() == Some(self.listen) {
            return Err(bad(
                "peer_listen",
                "must differ from listen (HTTP and BitTorrent need separate ports)".into(),
            ));
        }
        match self.role {
            Role::Origin => {
                if self.origin.key.is_none() {
                    return Err(bad(
                        "origin.key",
                        "an origin needs its private key file; create one with \
                         `shoal-agent keygen --out FILE`"
                            .into(),
                    ));
                }
                if self.origin.pack_max_files == 0 {
                    return Err(bad("origin.pack_max_files", "must be at least 1".into()));
                }
                if !(1..=1024).contains(&self.origin.pack_split) {
                    return Err(bad("origin.pack_split", "must be 1 to 1024".into()));
                }
                if self.origin.pack_max_bytes < (1 << 20) {
                    return Err(bad("origin.pack_max_bytes", "must be at least 1MiB".into()));
                }
                if self.origin.manifest_ttl < Duration::from_secs(60) {
                    return Err(bad("origin.manifest_ttl", "must be at least 1m".into()));
                }
                if self.origin.quiet_period * 4 > self.origin.manifest_ttl {
                    return Err(bad(
                        "origin.quiet_period",
                        "must be at most a quarter of origin.manifest_ttl (a tree that never \
                         stays quiet that long would let the generation expire)"
                            .into(),
                    ));
                }
                for l in &self.origin.publish_locks {
                    let text = l.to_string_lossy();
                    if text.is_empty() || text.ends_with('/') {
                        return Err(bad(
                            "origin.publish_locks",
                            format!(
                                "'{text}' is not a lock file path; list files (absolute, or \
                                 relative to the repository)"
                            ),
                        ));
                    }
                    if l.components().any(|c| c == std::path::Component::ParentDir) {
                        return Err(bad(
                            "origin.publish_locks",
                            format!("'{text}' holds '..'; write the lock file's absolute path"),
                        ));
                    }
                }
            }
            Role::Mirror => {
                match &self.mirror.origin_key {
                    None => {
                        return Err(bad(
                            "mirror.origin_key",
                            "a mirror needs the origin's public key (printed by \
                             `shoal-agent keygen`)"
                                .into(),
                        ))
                    }
                    Some(k) if !is_public_key(k) => {
                        return Err(bad(
                            "mirror.origin_key",
                            format!(
                                "'{k}' is not an ed25519 public key: expected 'ed25519:' \
                                 followed by 64 hex digits, as printed by `shoal-agent keygen`"
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                if self.mirror.upstreams.is_empty() {
                    return Err(bad(
                        "mirror.upstreams",
                        "a mirror needs at least one upstream URL (the origin's or another \
                         agent's http://host:port)"
                            .into(),
                    ));
                }
                for u in &self.mirror.upstreams {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        return Err(bad(
                            "mirror.upstreams",
                            format!("'{u}' is not an http:// or https:// URL"),
                        ));
                    }
                }
                if self.mirror.poll_interval.is_zero() {
                    return Err(bad("mirror.poll_interval", "must be more than 0s".into()));
                }
                for (key, v) in self.mirror.trace_info.fields() {
                    if let Some(v) = v {
                        if v.trim().is_empty() || v.contains(['\n', '\r']) {
                            return Err(bad(
                                &format!("mirror.trace_info.{}", key.to_lowercase()),
                                "must be one non-empty line (it becomes a line of the trace file)"
                                    .into(),
                            ));
                        }
                    }
                }
            }
        }
        if self.network.announce_interval < Duration::from_secs(1) {
            return Err(bad(
                "network.announce_interval",
                "must be at least 1s".into(),
            ));
        }
        Ok(())
    }

    /// The BitTorrent listen address (explicit, or HTTP port + 1).
    pub fn peer_listen(&self) -> Option<SocketAddr> {
        match self.peer_listen {
            Some(a) => Some(a),
            None => {
                let port = self.listen.port().checked_add(1)?;
                Some(SocketAddr::new(self.listen.ip(), port))
            }
        }
    }

    /// The HTTP URL that other agents use for this one.
    pub fn advertise_url(&self) -> String {
        self.advertise_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// Renders the config back to YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self).expect("config serializes")
    }
}

/// serde_yaml appends " at line L column C"; the location is already in front.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// True if `s` looks like `ed25519:<64 hex digits>`.
pub fn is_public_key(s: &str) -> bool {
    s.strip_prefix("ed25519:")
        .map(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .unwrap_or(false)
}

/// Parses `30s`, `5m`, `1h 30m`, `7d` (humantime syntax); a bare integer is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{s}' is not a duration ({e}); write e.g. 30s, 5m, 1h, 7d"))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    humantime::format_duration(d).to_string().replace(' ', "")
}

/// Parses `4096`, `512KiB`, `4GiB`, `10MB`, `1.5GiB`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size; write e.g. 4096, 512KiB, 4GiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" | "k" | "kB" => 1000,
        "KiB" => 1 << 10,
        "M" | "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "G" | "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        "T" | "TB" => 1_000_000_000_000,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "'{s}': unknown size unit '{other}'; use B, KB, KiB, MB, MiB, GB, GiB, TB or TiB"
            ))
        }
    };
    Ok((n * mult as f64) as u64)
}

/// serde helpers for human-readable durations.
pub mod duration {
    use super::*;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Duration::from_secs(n)),
            Raw::S(s) => parse_duration(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// serde helpers for human-readable byte sizes.
pub mod bytesize {
    use super::*;
    pub fn serialize<S: serde::Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(n),
            Raw::S(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ed25519:0000000000000000000000000000000000000000000000000000000000000000";

    fn mirror_yaml(extra: &str) -> String {
        format!(
            "role: mirror\nrepo: /srv/repo\nstate: /var/lib/shoal\nlisten: 127.0.0.1:8780\n\
             mirror:\n  origin_key: {KEY}\n  upstreams: [http://127.0.0.1:8700]\n{extra}"
        )
    }

    #[test]
    fn trace_info_is_optional_and_one_line_each() {
        let c = AgentConfig::from_yaml(&mirror_yaml(""), "a.yaml").unwrap();
        assert_eq!(c.mirror.trace_info, TraceInfo::default());
        let c = AgentConfig::from_yaml(
            &mirror_yaml("  trace_info:\n    maintainer: Ops <ops@example.org>\n    country: DE\n"),
            "a.yaml",
        )
        .unwrap();
        assert_eq!(
            c.mirror.trace_info.maintainer.as_deref(),
            Some("Ops <ops@example.org>")
        );
        assert_eq!(c.mirror.trace_info.country.as_deref(), Some("DE"));
        let e = AgentConfig::from_yaml(
            &mirror_yaml("  trace_info:\n    location: \"a\\nb\"\n"),
            "a.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mirror.trace_info.location"), "{e}");
        let e = AgentConfig::from_yaml(&mirror_yaml("  trace_info:\n    colour: red\n"), "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn minimal_mirror_gets_safe_defaults() {
        let c = AgentConfig::from_yaml(&mirror_yaml(""), "a.yaml").unwrap();
        assert_eq!(c.role, Role::Mirror);
        assert!(!c.network.dht && !c.network.lsd && !c.network.upnp);
        assert!(c.network.trackers.is_empty());
        assert_eq!(c.peer_listen().unwrap().port(), 8781);
        assert_eq!(c.advertise_url(), "http://127.0.0.1:8780");
        assert_eq!(c.mirror.delete_grace, Duration::from_secs(3600));
    }

    /// Papercut: a duplicate top-level key was reported at 1:1.
    #[test]
    fn duplicate_keys_are_placed_at_their_second_occurrence() {
        let text = mirror_yaml("mirror:\n  trace: false\n");
        let e = AgentConfig::from_yaml(&text, "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("a.yaml:8:1: duplicate field `mirror`"), "{e}");
        let text = mirror_yaml("  poll_interval: 5s\n  poll_interval: 6s\n");
        let e = AgentConfig::from_yaml(&text, "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("a.yaml:9:3: mirror: duplicate field `poll_interval`"),
            "{e}"
        );
    }

    /// Papercut: a missing file's cause was printed twice.
    #[test]
    fn a_missing_file_is_named_once() {
        let e = AgentConfig::load(Path::new("/nonexistent/agent.yaml")).unwrap_err();
        // As `{:#}` prints an error chain: the error, then each source.
        let mut text = e.to_string();
        let mut cur: &dyn std::error::Error = &e;
        while let Some(next) = cur.source() {
            text.push_str(&format!(": {next}"));
            cur = next;
        }
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
        assert!(
            text.starts_with("/nonexistent/agent.yaml: cannot read"),
            "{text}"
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = AgentConfig::from_yaml(&mirror_yaml("  colour: blue\n"), "site/a.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("site/a.yaml:8:3: mirror: unknown field `colour`"),
            "{e}"
        );
        assert!(!e.contains(" at line "), "{e}");
        assert!(e.contains("unknown field `colour`"), "{e}");
    }

    #[test]
    fn bad_duration_names_value() {
        let e = AgentConfig::from_yaml(&mirror_yaml("  poll_interval: soon\n"), "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'soon' is not a duration"), "{e}");
        assert!(e.contains("a.yaml:"), "{e}");
    }

    #[test]
    fn bad_key_is_explained() {
        let y = mirror_yaml("").replace(KEY, "abc");
        let e = AgentConfig::from_yaml(&y, "a.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mirror.origin_key"), "{e}");
        assert!(e.contains("shoal-agent keygen"), "{e}");
    }

    #[test]
    fn origin_needs_key_and_state_outside_repo() {
        let y = "role: origin\nrepo: /srv/r\nstate: /srv/r/state\nlisten: 127.0.0.1:1\n\
                 origin: {key: /k}\n";
        let e = AgentConfig::from_yaml(y, "o.yaml").unwrap_err().to_string();
        assert!(e.contains("state"), "{e}");
        let y = "role: origin\nrepo: /srv/r\nstate: /var/s\nlisten: 127.0.0.1:1\n";
        let e = AgentConfig::from_yaml(y, "o.yaml").unwrap_err().to_string();
        assert!(e.contains("origin.key"), "{e}");
    }

    #[test]
    fn pack_split_out_of_range_is_named() {
        for v in ["0", "1025"] {
            let y = format!(
                "role: origin\nrepo: /srv/r\nstate: /var/s\nlisten: 127.0.0.1:1\n\
                 origin: {{key: /k, pack_split: {v}}}\n"
            );
            let e = AgentConfig::from_yaml(&y, "o.yaml")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("origin.pack_split") && e.contains("1 to 1024"),
                "{e}"
            );
        }
    }

    #[test]
    fn publish_gate_and_storage_settings_are_checked() {
        let origin = |extra: &str| {
            format!(
                "role: origin\nrepo: /srv/r\nstate: /var/s\nlisten: 127.0.0.1:1\n\
                 origin:\n  key: /k\n{extra}"
            )
        };
        let c = AgentConfig::from_yaml(&origin(""), "o.yaml").unwrap();
        assert_eq!(c.origin.quiet_period, Duration::from_secs(10));
        assert!(c.origin.publish_locks.is_empty());
        assert!(!c.storage.allow_copy);
        let c = AgentConfig::from_yaml(
            &origin("  quiet_period: 0s\n  publish_locks: [/srv/lock, db/lockfile]\nstorage:\n  allow_copy: true\n"),
            "o.yaml",
        )
        .unwrap();
        assert_eq!(c.origin.quiet_period, Duration::ZERO);
        assert_eq!(c.origin.publish_locks.len(), 2);
        assert!(c.storage.allow_copy);
        let e = AgentConfig::from_yaml(&origin("  publish_locks: [../up/lock]\n"), "o.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("o.yaml: origin.publish_locks: '../up/lock'"),
            "{e}"
        );
        let e = AgentConfig::from_yaml(&origin("  publish_locks: [locks/]\n"), "o.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a lock file path"), "{e}");
        let e = AgentConfig::from_yaml(
            &origin("  manifest_ttl: 1h\n  quiet_period: 30m\n"),
            "o.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("origin.quiet_period"), "{e}");
        let e = AgentConfig::from_yaml(&origin("storage:\n  copy: yes\n"), "o.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `copy`"), "{e}");
    }

    #[test]
    fn sizes_and_durations_round_trip() {
        assert_eq!(parse_bytes("4GiB").unwrap(), 4 << 30);
        assert_eq!(parse_bytes("10MB").unwrap(), 10_000_000);
        assert!(parse_bytes("4 parsecs").is_err());
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        let c = AgentConfig::from_yaml(&mirror_yaml(""), "a").unwrap();
        let again = AgentConfig::from_yaml(&c.to_yaml(), "b").unwrap();
        assert_eq!(c, again);
    }
}
