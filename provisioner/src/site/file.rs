//! The file format of `site.yaml` as serde reads it: the top level, the
//! parameters of a host, durations and sizes, and the `storage.gluster`
//! section. Nothing here is checked beyond the YAML types; the rules are in
//! [`super::validate`].

use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// Several repositories, each with its own origin and mirrors, instead
    /// of the top-level `origin:` and `mirrors:` (see [`super::multi`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<Vec<RepositoryFile>>,
}

/// One entry of `repositories:`: a repository's own network.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryFile {
    /// The repository's name: it names the agent's unit
    /// (`shoal-agent@<name>.service`) and config (`<config_dir>/<name>.yaml`).
    #[serde(default)]
    pub name: String,
    /// Settings of this repository's hosts, over the site's `defaults:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Params>,
    /// This repository's origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Params>,
    /// This repository's mirrors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors: Option<Vec<Params>>,
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
