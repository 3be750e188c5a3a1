//! The validated `storage.gluster` section: the servers, the planned brick
//! order and the mirrors that mount the volume, as the renderers use them.

use super::validate::Validator;
use super::Site;
use shoal_gluster::{Plan, VolumeType};
use std::path::PathBuf;

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
        let mut v = Validator::new(&self.file, self.spans.clone());
        v.gluster(g, &self.hosts)
    }
}
