//! The parameters a host may set: which role each applies to, and their
//! values as JSON in the documented order (what Hiera, Ansible host vars
//! and the agent config template get).

use super::file::Params;
use super::{Host, Site};
use serde::Serialize;
use serde_json::{json, Map, Value};
use shoal_config::{parse_duration, LogFormat, Role};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

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

pub(super) fn applies(name: &str) -> Applies {
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

impl Site {
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
pub(super) fn param_values(p: &Params, role: Option<Role>) -> Vec<(String, Value)> {
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
