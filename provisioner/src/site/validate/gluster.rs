//! Rules about `storage.gluster`: the servers (names, addresses, bricks),
//! the volume type and layout, the volume name, which mirrors keep their
//! repository on the volume and where they mount it, and that nothing the
//! agents write overlaps a brick. What passes is planned with the
//! `shoal-gluster` layout planner, whose errors point at the key to change.

use super::paths::{overlap, path_problem};
use super::{hosts::valid_host_name, Validator};
use crate::site::error::closest;
use crate::site::file::{GlusterHost, GlusterStorage};
use crate::site::{Gluster, GlusterServer, Host};
use shoal_config::Role;
use shoal_gluster::{
    check_volume_name, parse_brick, plan, Brick, Layout, LayoutError, Plan, VolumeType,
};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The key path of the GlusterFS section.
const GLUSTER: &str = "storage.gluster";

/// The key path of `storage.gluster.<k>`.
fn key(k: &str) -> String {
    format!("{GLUSTER}.{k}")
}

/// An example brick folder for messages.
const BRICK: &str = "/data/glusterfs/brick1";

/// The servers checked so far, with the key path of each one's bricks
/// (its own `bricks`, or the common `storage.gluster.bricks`).
#[derive(Default)]
struct Servers {
    list: Vec<GlusterServer>,
    brick_keys: Vec<String>,
    /// Lower-cased names seen, with the key where each was first listed.
    seen: HashMap<String, String>,
}

impl Validator {
    /// Checks `storage.gluster` against the site's hosts and plans the
    /// volume with the layout planner. Returns `None` after reporting
    /// problems.
    pub(in crate::site) fn gluster(
        &mut self,
        g: &GlusterStorage,
        hosts: &[Host],
    ) -> Option<Gluster> {
        let before = self.count();
        let servers = self.gluster_servers(g, hosts);
        let volume_type = self.volume_type(g);
        let layout = self.layout(g);
        let volume = g.volume.clone().unwrap_or_else(|| "shoal".into());
        if let Err(e) = check_volume_name(&volume) {
            self.err(&key("volume"), e.to_string());
        }
        let mirrors = self.volume_mirrors(g, hosts);
        let mount = self.mount(g, &mirrors);
        if let Some(mount) = &mount {
            self.mirror_trees(&mirrors, mount);
            self.bricks_clear(&servers, hosts, &mirrors, mount);
        }
        if self.count() > before {
            return None;
        }
        let (volume_type, layout, mount) = (volume_type?, layout?, mount?);
        let bricks = self.parsed_bricks(&servers)?;
        let plan = self.plan(g, &servers, volume_type, layout, &bricks)?;
        Some(Gluster {
            volume,
            mount,
            servers: servers.list,
            mirrors: mirrors.iter().map(|h| h.host.clone()).collect(),
            plan,
        })
    }

    /// The servers and the common bricks.
    fn gluster_servers(&mut self, g: &GlusterStorage, hosts: &[Host]) -> Servers {
        let list = g.hosts.clone().unwrap_or_default();
        if list.is_empty() {
            self.err(
                &if g.hosts.is_some() { key("hosts") } else { GLUSTER.to_string() },
                "lists no gluster servers: add `hosts:` with the machines that run glusterd and carry bricks, \
                 such as `hosts: [gluster1.example.org, gluster2.example.org, gluster3.example.org]`",
            );
        }
        if g.bricks.as_ref().is_some_and(|b| b.is_empty()) {
            self.err(
                &key("bricks"),
                "is empty: list the brick directories every server carries, such as `bricks: [/data/glusterfs/brick1]`",
            );
        }
        self.brick_paths(&key("bricks"), g.bricks.as_deref().unwrap_or_default());
        let mut servers = Servers::default();
        for (i, entry) in list.iter().enumerate() {
            self.gluster_server(g, hosts, &mut servers, i, entry);
        }
        servers
    }

    /// Each brick folder is a usable absolute path.
    fn brick_paths(&mut self, bkey: &str, bricks: &[String]) {
        for (j, b) in bricks.iter().enumerate() {
            if let Some(problem) = path_problem(b, BRICK) {
                self.err(&format!("{bkey}[{j}]"), problem);
            }
        }
    }

    /// One server: a well-formed name listed once, how it is reached, its
    /// bricks. A server with a bad name is left out.
    fn gluster_server(
        &mut self,
        g: &GlusterStorage,
        hosts: &[Host],
        servers: &mut Servers,
        i: usize,
        entry: &GlusterHost,
    ) {
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
            return;
        };
        let hpath = match entry {
            GlusterHost::Name(_) => path.clone(),
            GlusterHost::Entry(_) => format!("{path}.host"),
        };
        if !self.server_name(&name, &hpath, &servers.seen) {
            return;
        }
        servers
            .seen
            .insert(name.to_ascii_lowercase(), hpath.clone());
        let site_host = hosts.iter().find(|h| h.host == name);
        let address = self.server_address(hosts, site_host, &name, &path, &hpath, address);
        let (bricks, bkey) = match own {
            Some(b) => {
                let bkey = format!("{path}.bricks");
                if b.is_empty() {
                    self.err(&bkey, "is empty: list this server's brick directories, or remove the key to use `storage.gluster.bricks`");
                }
                self.brick_paths(&bkey, &b);
                (b, bkey)
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
                (g.bricks.clone().unwrap_or_default(), key("bricks"))
            }
        };
        servers.brick_keys.push(bkey);
        servers.list.push(GlusterServer {
            host: name,
            address,
            site_host: site_host.is_some(),
            bricks,
        });
    }

    /// A host name or IP address, not listed before (ignoring case).
    fn server_name(&mut self, name: &str, hpath: &str, seen: &HashMap<String, String>) -> bool {
        if !(valid_host_name(name) || name.parse::<IpAddr>().is_ok()) {
            self.err(
                hpath,
                format!(
                    "'{name}' is not a host name or IP address: use letters, digits, '-', '_' and '.', \
                     such as gluster1.example.org"
                ),
            );
            return false;
        }
        if let Some(first) = seen.get(&name.to_ascii_lowercase()) {
            let line = self.line_of(first);
            self.err(
                hpath,
                format!(
                    "'{name}' is already listed at {first} (line {line}); host names ignore letter case, \
                     so list each server once"
                ),
            );
            return false;
        }
        true
    }

    /// How the admin machine reaches a server: a site host's address, or
    /// the entry's own `address` for a server outside the site.
    fn server_address(
        &mut self,
        hosts: &[Host],
        site_host: Option<&Host>,
        name: &str,
        path: &str,
        hpath: &str,
        address: Option<String>,
    ) -> String {
        match (site_host, address) {
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
                let site_names: Vec<String> = hosts.iter().map(|h| h.host.clone()).collect();
                let hint = closest(name, &site_names)
                    .map(|c| format!("did you mean the site host `{c}`? If not, "))
                    .unwrap_or_default();
                self.err(
                    hpath,
                    format!(
                        "'{name}' is not a host of this site and has no address: {hint}write it as \
                         `{{host: {name}, address: <IP or name the admin machine reaches it by>}}` so that \
                         Puppet and Ansible can set it up"
                    ),
                );
                name.to_string()
            }
        }
    }

    /// Replica (with an arbiter) or disperse (with a redundancy), as the
    /// planner accepts them.
    fn volume_type(&mut self, g: &GlusterStorage) -> Option<VolumeType> {
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
            (Some(replica), None) => self.replica(g, replica),
            (None, Some(disperse)) => self.disperse(g, disperse),
        }?;
        match volume_type.validate() {
            Ok(()) => Some(volume_type),
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
        }
    }

    fn replica(&mut self, g: &GlusterStorage, replica: u32) -> Option<VolumeType> {
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

    fn disperse(&mut self, g: &GlusterStorage, disperse: u32) -> Option<VolumeType> {
        if g.arbiter.is_some() {
            self.err(
                &key("arbiter"),
                "applies only to `replica` volumes: remove it, or use `replica` instead of `disperse`",
            );
        }
        let Some(redundancy) = g.redundancy else {
            self.err(
                &key("disperse"),
                format!(
                    "needs `redundancy`: how many bricks of each set of {disperse} may fail, such as \
                     `redundancy: {}`",
                    (disperse.max(3) - 1) / 2
                ),
            );
            return None;
        };
        Some(VolumeType::Disperse {
            disperse,
            redundancy,
        })
    }

    /// `layout`: simple (default) or chained.
    fn layout(&mut self, g: &GlusterStorage) -> Option<Layout> {
        let Some(l) = g.layout.as_deref() else {
            return Some(Layout::Simple);
        };
        match l.parse::<Layout>() {
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
        }
    }

    /// The mirrors on the volume: those listed (mirrors of the site, each
    /// once), or every mirror.
    fn volume_mirrors<'h>(&mut self, g: &GlusterStorage, hosts: &'h [Host]) -> Vec<&'h Host> {
        let Some(list) = &g.mirrors else {
            let m: Vec<&Host> = hosts.iter().filter(|h| h.role == Role::Mirror).collect();
            if m.is_empty() {
                self.err(
                    GLUSTER,
                    "the site has no mirrors to keep on the volume: add mirrors, or remove `storage`",
                );
            }
            return m;
        };
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

    /// The mount point: given, or the mirrors' common repo_dir.
    fn mount(&mut self, g: &GlusterStorage, mirrors: &[&Host]) -> Option<PathBuf> {
        if let Some(m) = &g.mount {
            if let Some(problem) = path_problem(m, "/srv/shoal") {
                self.err(&key("mount"), problem);
            } else if m == "/" {
                self.err(&key("mount"), "is the root folder: mount the volume on a folder of its own, such as /srv/shoal");
            }
            return Some(PathBuf::from(m));
        }
        let dirs: BTreeSet<&PathBuf> = mirrors.iter().map(|h| &h.repo_dir).collect();
        match dirs.len() {
            0 => None,
            1 => dirs.into_iter().next().cloned(),
            _ => {
                let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
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

    /// Each mirror on the volume keeps its repository under the mount, its
    /// state off it, and a tree of its own.
    fn mirror_trees(&mut self, mirrors: &[&Host], mount: &Path) {
        let mut trees: Vec<&Host> = Vec::new();
        for h in mirrors {
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
            if let Some(other) = trees.iter().find(|o| overlap(&o.repo_dir, &h.repo_dir)) {
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
            trees.push(h);
        }
    }

    /// A server that is also a host of the site: its bricks must stay clear
    /// of the folders the agent writes and of the mount.
    fn bricks_clear(&mut self, servers: &Servers, hosts: &[Host], mirrors: &[&Host], mount: &Path) {
        for (s, bkey) in servers.list.iter().zip(&servers.brick_keys) {
            let Some(h) = hosts.iter().find(|h| h.host == s.host) else {
                continue;
            };
            let on_volume = mirrors.iter().any(|m| m.host == h.host);
            for (j, b) in s.bricks.iter().enumerate() {
                let bp = Path::new(b);
                let mut clash = vec![
                    ("repo_dir", h.repo_dir.as_path()),
                    ("state_dir", h.state_dir.as_path()),
                ];
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

    /// Every brick as `HOST:PATH`, parsed by the planner.
    fn parsed_bricks(&mut self, servers: &Servers) -> Option<Vec<Brick>> {
        let before = self.count();
        let mut bricks = Vec::new();
        for (s, bkey) in servers.list.iter().zip(&servers.brick_keys) {
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
        (self.count() == before).then_some(bricks)
    }

    /// The layout planner: bricks, hosts and set sizes. Its error is
    /// reported at the key to change.
    fn plan(
        &mut self,
        g: &GlusterStorage,
        servers: &Servers,
        volume_type: VolumeType,
        layout: Layout,
        bricks: &[Brick],
    ) -> Option<Plan> {
        let e = match plan(volume_type, layout, bricks) {
            Ok(p) => return Some(p),
            Err(e) => e,
        };
        let own_key = |host: &str| {
            servers
                .list
                .iter()
                .zip(&servers.brick_keys)
                .find(|(s, _)| s.host.eq_ignore_ascii_case(host))
                .map(|(_, k)| k.clone())
                .unwrap_or_else(|| key("bricks"))
        };
        let k = match &e {
            LayoutError::TooFewHosts { .. } | LayoutError::HostSpelling { .. } => key("hosts"),
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
                if servers.brick_keys.iter().all(|k| *k == key("bricks")) {
                    key("bricks")
                } else {
                    key("hosts")
                }
            }
            _ => GLUSTER.to_string(),
        };
        self.err(&k, e.to_string());
        None
    }
}
