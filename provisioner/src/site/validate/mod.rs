//! The rules of a site file, and the order they run in. Every rule is a
//! small function that reports what it finds through [`Validator::err`]
//! and goes on, so that one run lists every problem. The rules are grouped
//! by what they check:
//!
//! - [`hosts`]: host names, addresses, URLs and upstreams;
//! - [`keys`]: the origin's public key;
//! - [`ports`]: listen addresses and port clashes between hosts;
//! - [`paths`]: folders, the binary's source and checksum;
//! - [`settings`]: the other parameters (roles, profile, durations, sizes,
//!   accounts, service and web settings);
//! - [`gluster`]: `storage.gluster`, checked and planned.

/// The value of parameter `$field` for the entry being resolved, from the
/// entry itself or else from `defaults:`, with the key path it came from.
macro_rules! pick {
    ($e:expr, $field:ident) => {
        $e.pick(stringify!($field), &$e.p.$field, &$e.d.$field)
    };
}

mod gluster;
mod hosts;
mod keys;
mod paths;
mod ports;
pub(super) use ports::ip_overlap;
mod settings;

pub use hosts::check_url;

use super::error::{SiteError, SiteErrors};
use super::file::{Params, SiteFile};
use super::spans::Spans;
use super::{Host, Site};
use serde_json::Value;
use shoal_config::Role;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;

/// Collects the problems of one site file while the rules run.
pub(super) struct Validator {
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

/// A host entry as written: its key path (`origin`, `mirrors[2]`), its role
/// and its parameters.
struct Entry {
    path: String,
    role: Role,
    params: Params,
}

/// One host entry being resolved against the defaults.
struct Resolve<'a> {
    path: &'a str,
    role: Role,
    /// The entry's own parameters.
    p: &'a Params,
    /// `defaults:`.
    d: &'a Params,
    /// The host's name.
    name: &'a str,
}

impl Resolve<'_> {
    /// The entry's value, else the default's; used through `pick!`.
    fn pick<T: Clone>(&self, field: &str, own: &Option<T>, default: &Option<T>) -> Option<Got<T>> {
        match (own, default) {
            (Some(v), _) => Some(Got {
                value: v.clone(),
                path: format!("{}.{field}", self.path),
            }),
            (None, Some(v)) => Some(Got {
                value: v.clone(),
                path: format!("defaults.{field}"),
            }),
            (None, None) => None,
        }
    }
}

impl Validator {
    pub(super) fn new(file: &str, spans: Spans) -> Validator {
        Validator {
            file: file.to_string(),
            spans,
            errors: Vec::new(),
        }
    }

    /// Reports a problem at key `path`.
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let e = SiteError::at(&self.file, &self.spans, path, message.into());
        self.errors.push(e);
    }

    fn line_of(&self, path: &str) -> usize {
        self.spans.nearest(path).0
    }

    /// How many problems have been reported so far.
    fn count(&self) -> usize {
        self.errors.len()
    }

    /// The site, or every problem found in file order.
    pub(super) fn finish(self, site: Option<Site>) -> Result<Site, SiteErrors> {
        match site {
            Some(site) if self.errors.is_empty() => Ok(site),
            _ => {
                let mut errors = self.errors;
                errors.sort_by_key(|e| (e.line, e.column));
                errors.dedup();
                Err(SiteErrors(errors))
            }
        }
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

    /// Checks a whole site file and resolves its hosts.
    pub(super) fn site(&mut self, raw: SiteFile, file: &str) -> Option<Site> {
        let defaults = raw.defaults.clone().unwrap_or_default();
        self.no_control_chars(&raw);
        self.no_machine_in_defaults(&defaults);
        // Role-specific defaults are allowed (they apply where they make sense).
        let Some(origin) = raw.origin.clone() else {
            self.missing_origin();
            return None;
        };
        self.site_name(raw.name.as_deref());
        let entries = entries(origin, raw.mirrors.clone().unwrap_or_default());
        let names = self.host_names(&entries);
        self.params_of_role(&entries);
        let (mut hosts, bad_listen) = self.resolve_all(&entries, &defaults, &names);
        self.cross_host(&entries, &defaults, &mut hosts);
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
            repository: None,
        })
    }

    /// Resolves each host. A host with bad values still takes part in the
    /// checks after this (with documented defaults in their place), so that
    /// one run reports every problem; one whose listen address is bad sits
    /// out the port checks (its index is in the returned set).
    fn resolve_all(
        &mut self,
        entries: &[Entry],
        defaults: &Params,
        names: &[String],
    ) -> (Vec<Host>, HashSet<usize>) {
        let mut hosts = Vec::new();
        let mut bad_listen = HashSet::new();
        for (e, name) in entries.iter().zip(names) {
            let r = Resolve {
                path: &e.path,
                role: e.role,
                p: &e.params,
                d: defaults,
                name,
            };
            let (h, listen_ok) = self.resolve(&r);
            if !listen_ok {
                bad_listen.insert(hosts.len());
            }
            hosts.push(h);
        }
        (hosts, bad_listen)
    }

    /// What ties the mirrors to the origin: the same profile, the origin's
    /// public key, upstreams that exist.
    fn cross_host(&mut self, entries: &[Entry], defaults: &Params, hosts: &mut [Host]) {
        let origin_key = keys::origin_key(entries, defaults);
        let origin_profile = hosts[0].profile;
        let origin_url = hosts[0].advertise_url.clone();
        let urls: BTreeMap<String, String> = hosts
            .iter()
            .map(|h| (h.host.clone(), h.advertise_url.clone()))
            .collect();
        for (i, e) in entries.iter().enumerate() {
            if e.role != Role::Mirror {
                if let Some(k) = &origin_key {
                    hosts[i].origin_public_key = Some(k.value.clone());
                }
                continue;
            }
            let h = hosts[i].clone();
            self.same_profile(e, &h, origin_profile);
            if let Some(k) = self.mirror_key(e, &h, origin_key.as_ref()) {
                hosts[i].origin_public_key = Some(k);
            }
            hosts[i].upstreams = self.upstreams(e, &h, defaults, &urls, &origin_url);
        }
        self.key_forms(entries, origin_key.as_ref());
    }

    /// Resolves one host entry against the defaults: every setting checked
    /// and in its final type. The flag is false when the listen address is
    /// unusable.
    fn resolve(&mut self, e: &Resolve) -> (Host, bool) {
        let (repo_dir, state_dir) = self.repo_and_state(e);
        let install_dir = self.abs(pick!(e, install_dir), "/usr/local/bin");
        let config_dir = self.abs(pick!(e, config_dir), "/etc/shoal");
        let unit_dir = self.abs(pick!(e, unit_dir), "/etc/systemd/system");
        let key_default = config_dir.join("origin.key").display().to_string();
        let origin_key_file = self.abs(pick!(e, origin_key_file), &key_default);
        let profile = self.profile(pick!(e, profile));
        let (listen, peer_listen) = self.listen(e);
        let advertise_url = self.advertise_url(pick!(e, advertise_url), listen, e.name);
        self.agent_name(pick!(e, agent_name));
        let intervals = self.intervals(e);
        let upload_limit = self.size(pick!(e, upload_limit));
        let download_limit = self.size(pick!(e, download_limit));
        let log_format = self.log_format(pick!(e, log_format));
        let binary_source = self.binary_source(e);
        let binary_checksum = self.binary_checksum(pick!(e, binary_checksum), &binary_source);
        let user = self.account(pick!(e, user));
        let group = self.account(pick!(e, group));
        let manage_user = self.manage_user(pick!(e, manage_user), &user, &group, e.name);
        let service_manager = self.service_manager(pick!(e, service_manager));
        let service_ensure = self.service_ensure(pick!(e, service_ensure));
        let manage_web = pick!(e, manage_web).map(|g| g.value).unwrap_or(false);
        let web_server_name = self.web_server_name(pick!(e, web_server_name));
        let web_port = self.web_port(pick!(e, web_port));
        let address = self.address(e);
        let host = Host {
            host: e.name.to_string(),
            address,
            role: e.role,
            path: e.path.to_string(),
            params: e.p.clone(),
            agent_name: pick!(e, agent_name).map(|g| g.value),
            repo_dir,
            state_dir,
            profile,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8780))),
            peer_listen,
            advertise_url,
            origin_key_file,
            origin_public_key: None,
            upstreams: Vec::new(),
            publish_interval: intervals.publish,
            manifest_ttl: intervals.manifest_ttl,
            poll_interval: intervals.poll,
            delete_grace: intervals.delete_grace,
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
        (host, listen.is_some())
    }
}

/// The origin first, then the mirrors in file order.
fn entries(origin: Params, mirrors: Vec<Params>) -> Vec<Entry> {
    let mut entries = vec![Entry {
        path: "origin".into(),
        role: Role::Origin,
        params: origin,
    }];
    for (i, m) in mirrors.into_iter().enumerate() {
        entries.push(Entry {
            path: format!("mirrors[{i}]"),
            role: Role::Mirror,
            params: m,
        });
    }
    entries
}
