//! Rules about hosts and how they are reached: the origin is there, host
//! names are well-formed and unique, `host` and `address` are not defaults,
//! addresses and URLs are usable, and a mirror's upstreams are hosts of the
//! site or URLs.

use super::{Entry, Got, Resolve, Validator};
use crate::site::file::Params;
use crate::site::{Host, DOC};
use std::collections::BTreeMap;
use std::net::SocketAddr;

impl Validator {
    /// `host` and `address` name one machine: not in `defaults:`.
    pub(super) fn no_machine_in_defaults(&mut self, defaults: &Params) {
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
    }

    /// A site without `origin:`.
    pub(super) fn missing_origin(&mut self) {
        self.err(
            "origin",
            format!(
                "missing: a site needs exactly one origin, the host that publishes the repository; \
                 add a section like `origin: {{host: archive.example.org, repo_dir: /srv/mirror/debian}}` (see {DOC})"
            ),
        );
    }

    /// Host names: present, well-formed, unique. Returns each entry's name
    /// (empty where it has none).
    pub(super) fn host_names(&mut self, entries: &[Entry]) -> Vec<String> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut names = Vec::new();
        for e in entries {
            let Some(h) = &e.params.host else {
                self.err(
                    &e.path,
                    "has no `host`: add `host: <the machine's FQDN>` (its Puppet certname / Ansible inventory name)",
                );
                names.push(String::new());
                continue;
            };
            let key = format!("{}.host", e.path);
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
                seen.insert(h.clone(), e.path.clone());
            }
            names.push(h.clone());
        }
        names
    }

    /// The URL other agents use for this one: as written (and well-formed),
    /// or derived from the listen address and the host's name.
    pub(super) fn advertise_url(
        &mut self,
        given: Option<Got<String>>,
        listen: Option<SocketAddr>,
        name: &str,
    ) -> String {
        match given {
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
        }
    }

    /// How the admin machine reaches the host: `address`, else its name.
    pub(super) fn address(&mut self, e: &Resolve) -> String {
        if e.p
            .address
            .as_deref()
            .is_some_and(|a| a.is_empty() || a.contains(char::is_whitespace))
        {
            self.err(
                &format!("{}.address", e.path),
                "is not a host name or IP address; write how the admin machine reaches this host",
            );
        }
        e.p.address.clone().unwrap_or_else(|| e.name.to_string())
    }

    /// A mirror's upstreams (its own, else the defaults', else the origin),
    /// host references resolved to their URLs.
    pub(super) fn upstreams(
        &mut self,
        e: &Entry,
        h: &Host,
        defaults: &Params,
        urls: &BTreeMap<String, String>,
        origin_url: &str,
    ) -> Vec<String> {
        let (list, list_path) = match (&e.params.upstreams, &defaults.upstreams) {
            (Some(u), _) => (u, format!("{}.upstreams", e.path)),
            (None, Some(u)) => (u, "defaults.upstreams".to_string()),
            (None, None) => return vec![origin_url.to_string()],
        };
        if list.is_empty() {
            self.err(
                &list_path,
                "is empty: a mirror needs at least one upstream; remove the key to follow the origin, \
                 or list the origin's or other mirrors' host names or URLs",
            );
        }
        let mut resolved = Vec::new();
        for (j, u) in list.iter().enumerate() {
            let upath = format!("{list_path}[{j}]");
            if let Some(url) = self.upstream(&upath, u, h, urls) {
                resolved.push(url);
            }
        }
        resolved
    }

    /// One upstream: a host of the site (not this one) or a URL.
    fn upstream(
        &mut self,
        upath: &str,
        u: &String,
        h: &Host,
        urls: &BTreeMap<String, String>,
    ) -> Option<String> {
        if u == &h.host || Some(u) == Some(&h.advertise_url) {
            self.err(
                upath,
                format!(
                    "mirror '{}' cannot follow itself; list the origin or another mirror",
                    h.host
                ),
            );
            None
        } else if let Some(url) = urls.get(u) {
            Some(url.clone())
        } else if u.contains("://") {
            match check_url(u) {
                Ok(()) => Some(u.clone()),
                Err(why) => {
                    self.err(
                        upath,
                        format!("upstream '{u}' is malformed: {why}; write http://HOST:PORT, such as http://archive.example.org:8780"),
                    );
                    None
                }
            }
        } else {
            self.err(
                upath,
                format!(
                    "upstream '{u}' is neither a host of this site nor a URL; use a host listed under \
                     origin/mirrors, or write http://HOST:PORT"
                ),
            );
            None
        }
    }
}

/// Letters, digits, `-`, `_` and `.`; not starting with `-` or `.`.
pub(super) fn valid_host_name(h: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
