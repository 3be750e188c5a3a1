//! Rules about the other parameters: each applies to the role of the entry
//! that sets it, values hold no control characters, mirrors use the
//! origin's profile, and durations, sizes, log format, accounts, service
//! and web settings are values the agent, Puppet and Ansible accept.

use super::{Entry, Got, Resolve, Validator};
use crate::site::file::{Scalar, SiteFile};
use crate::site::params::{applies, param_values, Applies, ServiceManager};
use crate::site::spans::join_key;
use crate::site::Host;
use serde_json::Value;
use shoal_config::{parse_bytes, parse_duration, LogFormat, Profile, Role};
use std::time::Duration;

/// A host's four intervals, resolved.
pub(super) struct Intervals {
    pub publish: Duration,
    pub manifest_ttl: Duration,
    pub poll: Duration,
    pub delete_grace: Duration,
}

impl Validator {
    /// Control characters (newlines, tabs) in values would break every
    /// rendered file; refuse them with the key that holds one.
    pub(super) fn no_control_chars(&mut self, raw: &SiteFile) {
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

    /// `name:`, when given, is not empty.
    pub(super) fn site_name(&mut self, name: Option<&str>) {
        if name.is_some_and(|n| n.trim().is_empty()) {
            self.err(
                "name",
                "is empty; give the site a short name or remove the key",
            );
        }
    }

    /// Parameters that do not apply to the role the entry has.
    pub(super) fn params_of_role(&mut self, entries: &[Entry]) {
        for e in entries {
            for (name, _) in &param_values(&e.params, None) {
                let key = format!("{}.{name}", e.path);
                match (e.role, applies(name)) {
                    (Role::Mirror, Applies::Origin) => self.err(
                        &key,
                        format!("`{name}` applies only to the origin; remove it from this mirror or move it to `origin:`"),
                    ),
                    (Role::Origin, Applies::Mirror) => self.err(
                        &key,
                        format!(
                            "`{name}` applies only to mirrors (the origin follows nobody); remove it from `origin:` \
                             or move it to the mirrors or to `defaults:`"
                        ),
                    ),
                    _ => {}
                }
            }
        }
    }

    /// A mirror applies what the origin publishes: the same profile.
    pub(super) fn same_profile(&mut self, e: &Entry, h: &Host, origin_profile: Profile) {
        if h.profile != origin_profile {
            let from = self.src(&e.path, "profile", &e.params);
            self.err(
                &from,
                format!(
                    "mirror '{}' uses profile {} but the origin publishes {origin_profile}; a mirror applies what \
                     the origin publishes, so remove the override or use profile: {origin_profile}",
                    h.host, h.profile
                ),
            );
        }
    }

    /// `profile` (default generic).
    pub(super) fn profile(&mut self, g: Option<Got<String>>) -> Profile {
        match g {
            None => Profile::Generic,
            Some(g) => g.value.parse::<Profile>().unwrap_or_else(|e| {
                self.err(&g.path, e);
                Profile::Generic
            }),
        }
    }

    /// `agent_name` names the trace file: usable as a file name.
    pub(super) fn agent_name(&mut self, g: Option<Got<String>>) {
        let Some(g) = g else { return };
        if g.value.is_empty()
            || g.value.contains('/')
            || g.value.starts_with('.')
            || g.value.contains(char::is_whitespace)
        {
            self.err(&g.path, format!("'{}' is not usable as a file name (the trace file is named after it); use a host name", g.value));
        }
    }

    /// The intervals, with what each role needs of them: an origin's
    /// manifests live at least a minute, a mirror polls.
    pub(super) fn intervals(&mut self, e: &Resolve) -> Intervals {
        let publish = self.duration(pick!(e, publish_interval), 300);
        let manifest_ttl = self.duration(pick!(e, manifest_ttl), 7 * 86400);
        if manifest_ttl < Duration::from_secs(60) && e.role == Role::Origin {
            let from = self.src(e.path, "manifest_ttl", e.p);
            self.err(
                &from,
                "must be at least 1m; mirrors refuse expired manifests, so use days, such as 7d",
            );
        }
        let poll = self.duration(pick!(e, poll_interval), 30);
        if poll.is_zero() && e.role == Role::Mirror {
            let from = self.src(e.path, "poll_interval", e.p);
            self.err(&from, "must be more than 0s, such as 30s");
        }
        let delete_grace = self.duration(pick!(e, delete_grace), 3600);
        Intervals {
            publish,
            manifest_ttl,
            poll,
            delete_grace,
        }
    }

    /// A duration in seconds or with a unit; `default` seconds when unset.
    fn duration(&mut self, g: Option<Got<Scalar>>, default: u64) -> Duration {
        match g {
            None => Duration::from_secs(default),
            Some(g) => match &g.value {
                Scalar::Int(n) => Duration::from_secs(*n),
                Scalar::Str(s) => parse_duration(s).unwrap_or_else(|e| {
                    self.err(&g.path, e);
                    Duration::from_secs(default)
                }),
            },
        }
    }

    /// A rate limit in bytes per second or with a unit; 0 when unset.
    pub(super) fn size(&mut self, g: Option<Got<Scalar>>) -> u64 {
        match g {
            None => 0,
            Some(g) => match &g.value {
                Scalar::Int(n) => *n,
                Scalar::Str(s) => parse_bytes(s).unwrap_or_else(|e| {
                    self.err(&g.path, format!("{e} (bytes per second; 0 means no limit)"));
                    0
                }),
            },
        }
    }

    /// One of a parameter's named values (`options`, the first is the
    /// default); anything else is reported with `advice`.
    fn one_of<T: Copy>(
        &mut self,
        name: &str,
        g: Option<Got<String>>,
        options: &[(&str, T)],
        advice: &str,
    ) -> T {
        let default = options[0].1;
        let Some(g) = g else {
            return default;
        };
        match options.iter().find(|(n, _)| *n == g.value) {
            Some((_, v)) => *v,
            None => {
                self.err(&g.path, format!("unknown {name} '{}': {advice}", g.value));
                default
            }
        }
    }

    /// `log_format`: text (default) or json.
    pub(super) fn log_format(&mut self, g: Option<Got<String>>) -> LogFormat {
        let options = [("text", LogFormat::Text), ("json", LogFormat::Json)];
        self.one_of("log_format", g, &options, "use text or json")
    }

    /// A user or group name (default root).
    pub(super) fn account(&mut self, g: Option<Got<String>>) -> String {
        let Some(g) = g else {
            return "root".into();
        };
        let ok = !g.value.is_empty()
            && g.value.len() <= 32
            && g.value
                .starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && g.value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c));
        if !ok {
            self.err(
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

    /// `manage_user` creates a dedicated account: not root.
    pub(super) fn manage_user(
        &mut self,
        g: Option<Got<bool>>,
        user: &str,
        group: &str,
        name: &str,
    ) -> bool {
        let manage_user = g.as_ref().map(|g| g.value).unwrap_or(false);
        if manage_user && (user == "root" || group == "root") {
            let from = g.map(|g| g.path).unwrap_or_default();
            self.err(
                &from,
                format!(
                    "manage_user creates a dedicated system account for '{name}', so user and group must not be root; \
                     set user and group to a name such as shoal, or manage_user: false"
                ),
            );
        }
        manage_user
    }

    /// `service_manager`: systemd (default) or daemon.
    pub(super) fn service_manager(&mut self, g: Option<Got<String>>) -> ServiceManager {
        let options = [
            ("systemd", ServiceManager::Systemd),
            ("daemon", ServiceManager::Daemon),
        ];
        self.one_of(
            "service_manager",
            g,
            &options,
            "use systemd, or daemon on hosts without systemd",
        )
    }

    /// `service_ensure`: running (default) or stopped.
    pub(super) fn service_ensure(&mut self, g: Option<Got<String>>) -> String {
        let Some(g) = g else {
            return "running".to_string();
        };
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

    /// `web_server_name`: a host name (wildcards allowed) for nginx.
    pub(super) fn web_server_name(&mut self, g: Option<Got<String>>) -> Option<String> {
        let g = g?;
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
        Some(g.value)
    }
}
