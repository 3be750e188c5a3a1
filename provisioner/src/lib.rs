//! The `shoal` provisioner as a library: the site model (`site.yaml`), its
//! validation, and the renderers that turn it into agent configs, systemd
//! units, a Puppet site layer and an Ansible inventory/playbook.

pub mod bootstrap;
pub mod check;
pub mod cli;
pub mod demo;
pub mod gluster;
pub mod render;
pub mod site;
pub mod status;
