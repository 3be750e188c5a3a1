//! Several repositories in one site file (`repositories:`), each with its
//! own origin and mirrors, on hosts that may serve more than one of them.
//!
//! Each repository is checked by the same rules as a one-repository site
//! (its own `defaults:` over the site's), with error lines from its own
//! entry. Then every host that serves several repositories is checked
//! across them: one agent per repository needs its own repository folder
//! (not inside another's), state folder, HTTP and BitTorrent ports, and the
//! agents share one binary, account and service manager. A clash names both
//! repositories and their lines.

use super::error::{parse_error, SiteError, SiteErrors};
use super::file::{Params, RepositoryFile, SiteFile};
use super::spans::Spans;
use super::validate::ip_overlap;
use super::{Host, Site, DOC};
use std::path::Path;

/// A site file with every repository it describes: one for a file with a
/// top-level `origin:`, one per entry of `repositories:` otherwise.
#[derive(Debug, Clone)]
pub struct Sites {
    /// The file name as given.
    pub file: String,
    /// The site's name (`name:`), or the file's stem.
    pub name: String,
    /// Each repository's network, in file order.
    pub repositories: Vec<Site>,
}

/// The parameters of one repository's agent; the others belong to the host
/// (one binary, account, service manager and web server for all its agents).
pub const PER_REPOSITORY: &[&str] = &[
    "role",
    "agent_name",
    "repo_dir",
    "state_dir",
    "profile",
    "listen",
    "peer_listen",
    "advertise_url",
    "origin_key_file",
    "origin_public_key",
    "upstreams",
    "publish_interval",
    "manifest_ttl",
    "poll_interval",
    "delete_grace",
    "upload_limit",
    "download_limit",
    "log_format",
    "service_ensure",
];

/// The agents of one host of a multi-repository site.
pub struct HostAgents<'a> {
    /// The first of them (its host name, address and shared settings).
    pub first: &'a Host,
    /// Each repository's site and this host's agent in it.
    pub agents: Vec<(&'a Site, &'a Host)>,
}

impl Sites {
    /// Every host with its agents, in the order hosts first appear.
    pub fn hosts(&self) -> Vec<HostAgents<'_>> {
        let mut out: Vec<HostAgents> = Vec::new();
        for site in &self.repositories {
            for h in &site.hosts {
                match out.iter_mut().find(|g| g.first.host == h.host) {
                    Some(g) => g.agents.push((site, h)),
                    None => out.push(HostAgents {
                        first: h,
                        agents: vec![(site, h)],
                    }),
                }
            }
        }
        out
    }

    /// Reads, parses and validates a site file of one or several repositories.
    pub fn load(path: &Path) -> Result<Sites, SiteErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| SiteErrors(vec![SiteError::unreadable(&file, &e)]))?;
        Sites::from_yaml(&text, &file)
    }

    /// Parses and validates site YAML of one or several repositories.
    pub fn from_yaml(text: &str, file: &str) -> Result<Sites, SiteErrors> {
        let spans = Spans::parse(text);
        let raw: SiteFile = if text.trim().is_empty() {
            SiteFile::default()
        } else {
            serde_yaml::from_str(text)
                .map_err(|e| SiteErrors(vec![parse_error(&e, file, &spans)]))?
        };
        let Some(repos) = raw.repositories.clone() else {
            let site = Site::from_yaml(text, file)?;
            return Ok(Sites {
                file: file.to_string(),
                name: site.name.clone(),
                repositories: vec![site],
            });
        };
        let mut errors = top_level_errors(&raw, &repos, file, &spans);
        let mut sites = Vec::new();
        for (i, r) in repos.iter().enumerate() {
            let prefix = format!("repositories[{i}].");
            let sub = SiteFile {
                name: Some(r.name.clone()),
                defaults: Some(merged(raw.defaults.as_ref(), r.defaults.as_ref())),
                origin: r.origin.clone(),
                mirrors: r.mirrors.clone(),
                storage: None,
                repositories: None,
            };
            let own_defaults = r.defaults.clone().unwrap_or_default();
            match Site::from_parts(sub, file, spans.sub(&prefix)) {
                Ok(mut site) => {
                    site.repository = Some(r.name.clone());
                    site.spans = spans.clone();
                    let key_set = site.defaults.origin_key_file.is_some();
                    for h in &mut site.hosts {
                        h.path = format!("{prefix}{}", h.path);
                        // Each origin of a host has a key of its own, as the
                        // Puppet module and the Ansible role name it.
                        if !key_set && h.params.origin_key_file.is_none() {
                            h.origin_key_file = h.config_dir.join(format!("{}.key", r.name));
                        }
                    }
                    sites.push(site);
                }
                Err(e) => errors.extend(e.0.into_iter().map(|mut err| {
                    err.key = rekey(&err.key, &prefix, &own_defaults);
                    err
                })),
            }
        }
        if errors.is_empty() {
            errors.extend(shared_host_errors(&sites, file, &spans));
        }
        if errors.is_empty() {
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
            Ok(Sites {
                file: file.to_string(),
                name,
                repositories: sites,
            })
        } else {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(SiteErrors(errors))
        }
    }
}

/// `repositories:` instead of, not next to, `origin:`, `mirrors:` and
/// `storage:`; names present, usable as unit names, and unique.
fn top_level_errors(
    raw: &SiteFile,
    repos: &[RepositoryFile],
    file: &str,
    spans: &Spans,
) -> Vec<SiteError> {
    let mut errors = Vec::new();
    let mut err = |path: &str, msg: String| errors.push(SiteError::at(file, spans, path, msg));
    for (key, set) in [
        ("origin", raw.origin.is_some()),
        ("mirrors", raw.mirrors.is_some()),
        ("storage", raw.storage.is_some()),
    ] {
        if set {
            err(
                key,
                format!(
                    "a site with `repositories:` has no top-level `{key}:`: move it into the repository entry \
                     it belongs to (storage.gluster is for one-repository sites only; see {DOC})"
                ),
            );
        }
    }
    if repos.is_empty() {
        err(
            "repositories",
            "is empty: list at least one repository, or use a top-level `origin:`".into(),
        );
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in repos.iter().enumerate() {
        let path = format!("repositories[{i}].name");
        let ok = !r.name.is_empty()
            && r.name.len() <= 64
            && r.name
                .starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && r.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
        if !ok {
            err(
                &path,
                format!(
                    "'{}' is not a repository name: it names the unit shoal-agent@<name>.service and the config \
                     <name>.yaml, so use lower-case letters, digits, '.', '_' and '-' (such as `debian`)",
                    r.name
                ),
            );
        } else if seen.contains(&r.name.as_str()) {
            err(
                &path,
                format!(
                    "'{}' names two repositories: give each its own name",
                    r.name
                ),
            );
        }
        seen.push(&r.name);
    }
    errors
}

/// The site's `defaults:` with a repository's own `defaults:` over them.
fn merged(site: Option<&Params>, own: Option<&Params>) -> Params {
    let mut v = serde_json::to_value(site.cloned().unwrap_or_default()).expect("params serialize");
    if let (Some(m), Ok(serde_json::Value::Object(o))) = (
        v.as_object_mut(),
        serde_json::to_value(own.cloned().unwrap_or_default()),
    ) {
        m.extend(o);
    }
    serde_json::from_value(v).expect("merged params deserialize")
}

/// An error key of a repository's rules as the file has it: under
/// `repositories[i].`, except a default the repository took from the
/// site's own `defaults:`.
fn rekey(key: &str, prefix: &str, own_defaults: &Params) -> String {
    if let Some(field) = key.strip_prefix("defaults.") {
        let own = serde_json::to_value(own_defaults).expect("params serialize");
        let name = field.split(['.', '[']).next().unwrap_or(field);
        if own.get(name).is_none() {
            return key.to_string();
        }
    }
    format!("{prefix}{key}")
}

/// The agents of several repositories on one host: their own folders and
/// ports, one binary, account and service manager.
fn shared_host_errors(sites: &[Site], file: &str, spans: &Spans) -> Vec<SiteError> {
    let mut errors = Vec::new();
    let agents: Vec<(&str, &Host)> = sites
        .iter()
        .flat_map(|s| {
            let name = s.repository.as_deref().unwrap_or("");
            s.hosts.iter().map(move |h| (name, h))
        })
        .collect();
    for (i, (ra, a)) in agents.iter().enumerate() {
        for (rb, b) in &agents[i + 1..] {
            if a.host != b.host {
                continue;
            }
            let line = |h: &Host, field: &str| spans.nearest(&format!("{}.{field}", h.path)).0;
            let mut clash = |field: &str, what: String, fix: &str| {
                errors.push(SiteError::at(
                    file,
                    spans,
                    &format!("{}.{field}", b.path),
                    format!(
                        "host {}: repositories '{ra}' (line {}) and '{rb}' (line {}) {what}; {fix}",
                        a.host,
                        line(a, field),
                        line(b, field)
                    ),
                ))
            };
            let folders = [
                ("repo_dir", &a.repo_dir, &b.repo_dir),
                ("state_dir", &a.state_dir, &b.state_dir),
            ];
            let all_a = [&a.repo_dir, &a.state_dir];
            let all_b = [&b.repo_dir, &b.state_dir];
            for (field, x, y) in folders {
                if x == y {
                    clash(
                        field,
                        format!("both use the folder {}", x.display()),
                        "give each repository on this host its own repo_dir and state_dir",
                    );
                }
            }
            for x in all_a {
                for y in all_b {
                    if x != y && (x.starts_with(y) || y.starts_with(x)) {
                        clash(
                            "repo_dir",
                            format!("have nested folders {} and {}", x.display(), y.display()),
                            "put each repository's folders side by side, such as /srv/shoal/<name>/repo and /srv/shoal/<name>/state",
                        );
                    }
                }
            }
            // Two sockets clash when they share a port on one IP, or when
            // either binds every IP (0.0.0.0 or [::]).
            let socks = |h: &Host| [Some(h.listen), h.peer_addr()];
            for x in socks(a).into_iter().flatten() {
                let shared = socks(b)
                    .into_iter()
                    .flatten()
                    .any(|y| y.port() == x.port() && ip_overlap(x.ip(), y.ip()));
                if shared {
                    clash(
                        "listen",
                        format!("both use port {}", x.port()),
                        "give each repository on this host its own listen (BitTorrent uses the listen port + 1 unless peer_listen is set)",
                    );
                }
            }
            for (field, x, y) in [
                (
                    "binary_source",
                    a.binary_source.clone(),
                    b.binary_source.clone(),
                ),
                (
                    "install_dir",
                    a.install_dir.display().to_string(),
                    b.install_dir.display().to_string(),
                ),
                (
                    "config_dir",
                    a.config_dir.display().to_string(),
                    b.config_dir.display().to_string(),
                ),
                (
                    "unit_dir",
                    a.unit_dir.display().to_string(),
                    b.unit_dir.display().to_string(),
                ),
                ("user", a.user.clone(), b.user.clone()),
                ("group", a.group.clone(), b.group.clone()),
                (
                    "service_manager",
                    format!("{:?}", a.service_manager),
                    format!("{:?}", b.service_manager),
                ),
            ] {
                if x != y {
                    clash(
                        field,
                        format!("differ in {field} ({x} and {y})"),
                        "the agents of one host share one binary, account and service manager: set it once, in the site's defaults",
                    );
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    const K2: &str = "ed25519:8f0d73653215771de243a63ac048a18b59da293b6a27bcceb6a42d62a3a8d02a";

    fn two(mirror_b: &str) -> String {
        format!(
            "name: archive\n\
             defaults:\n  binary_source: /srv/dist/shoal-agent\n\
             repositories:\n\
             \x20 - name: debian\n\
             \x20   defaults: {{profile: debian}}\n\
             \x20   origin: {{host: deb.example.org, origin_public_key: '{K1}'}}\n\
             \x20   mirrors:\n\
             \x20     - {{host: m1.example.org, repo_dir: /srv/shoal/debian/repo, state_dir: /srv/shoal/debian/state}}\n\
             \x20 - name: fedora\n\
             \x20   defaults: {{profile: rpm}}\n\
             \x20   origin: {{host: rpm.example.org, origin_public_key: '{K2}'}}\n\
             \x20   mirrors:\n\
             \x20     - {{host: m1.example.org, {mirror_b}}}\n"
        )
    }

    fn errors(text: &str) -> String {
        Sites::from_yaml(text, "site.yaml").unwrap_err().to_string()
    }

    #[test]
    fn two_repositories_share_a_mirror_host() {
        let s = Sites::from_yaml(
            &two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790'"),
            "site.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.repositories.len(), 2);
        let (deb, rpm) = (&s.repositories[0], &s.repositories[1]);
        assert_eq!(deb.repository.as_deref(), Some("debian"));
        assert_eq!(deb.origin().host, "deb.example.org");
        assert_eq!(deb.mirrors()[0].profile.to_string(), "debian");
        assert_eq!(rpm.mirrors()[0].origin_public_key.as_deref(), Some(K2));
        assert_eq!(rpm.mirrors()[0].listen.port(), 8790);
        assert_eq!(rpm.mirrors()[0].path, "repositories[1].mirrors[0]");
        assert_eq!(
            rpm.origin().origin_key_file,
            Path::new("/etc/shoal/fedora.key")
        );
    }

    #[test]
    fn a_shared_state_folder_is_refused_naming_both_lines() {
        let e = errors(&two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/debian/state, listen: '0.0.0.0:8790'"));
        assert!(
            e.contains("site.yaml:14:") && e.contains("repositories 'debian' (line 9) and 'fedora' (line 14) both use the folder /srv/shoal/debian/state"),
            "{e}"
        );
    }

    #[test]
    fn nested_folders_and_shared_ports_are_refused() {
        let e = errors(&two("repo_dir: /srv/shoal/debian/repo/fedora, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790'"));
        assert!(
            e.contains(
                "have nested folders /srv/shoal/debian/repo and /srv/shoal/debian/repo/fedora"
            ),
            "{e}"
        );
        let e = errors(&two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8781'"));
        assert!(e.contains("both use port 8781"), "{e}");
        // A specific IP clashes with the other repository's wildcard.
        let e = errors(&two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '192.0.2.7:8780'"));
        assert!(e.contains("both use port 8780"), "{e}");
        let e = errors(&two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790', user: shoal"));
        assert!(e.contains("differ in user (root and shoal)"), "{e}");
    }

    #[test]
    fn one_port_on_two_specific_ips_of_a_host_is_no_clash() {
        let text = two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '192.0.2.8:8780'")
            .replace(
                "state_dir: /srv/shoal/debian/state}",
                "state_dir: /srv/shoal/debian/state, listen: '192.0.2.7:8780'}",
            );
        Sites::from_yaml(&text, "site.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    #[test]
    fn a_repository_error_points_into_its_entry() {
        let text = two("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: 'nowhere'");
        let e = errors(&text);
        assert!(
            e.contains("site.yaml:14:") && e.contains("repositories[1].mirrors[0].listen"),
            "{e}"
        );
    }

    #[test]
    fn names_and_the_top_level_are_checked() {
        let text = two("repo_dir: /srv/f/repo, state_dir: /srv/f/state, listen: '0.0.0.0:8790'")
            .replace("name: fedora", "name: Debian Main");
        assert!(errors(&text).contains("'Debian Main' is not a repository name"));
        let text = two("repo_dir: /srv/f/repo, state_dir: /srv/f/state, listen: '0.0.0.0:8790'")
            .replace("name: fedora", "name: debian");
        assert!(errors(&text).contains("'debian' names two repositories"));
        let text = format!(
            "origin: {{host: o.example.org}}\n{}",
            two("repo_dir: /srv/f/repo, state_dir: /srv/f/state")
        );
        assert!(errors(&text).contains("has no top-level `origin:`"));
        // The one-repository commands say what to do with such a file.
        let text = two("repo_dir: /srv/f/repo, state_dir: /srv/f/state, listen: '0.0.0.0:8790'");
        let e = Site::from_yaml(&text, "site.yaml").unwrap_err().to_string();
        assert!(
            e.contains("site.yaml:4:") && e.contains("shoal_repositories"),
            "{e}"
        );
    }

    #[test]
    fn a_one_repository_file_is_one_site() {
        let text = format!(
            "defaults: {{binary_source: /srv/dist/shoal-agent}}\n\
             origin: {{host: o.example.org, origin_public_key: '{K1}'}}\nmirrors: [{{host: m.example.org}}]\n"
        );
        let s = Sites::from_yaml(&text, "site.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.repositories.len(), 1);
        assert_eq!(s.repositories[0].repository, None);
    }
}
