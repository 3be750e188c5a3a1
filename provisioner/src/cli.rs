//! The `shoal` command line: its clap definition, shared by the binary
//! (`src/main.rs`) and by `shoal-dist`, which generates the man pages and
//! shell completions from it.

use clap::{Parser, Subcommand};

/// Provision and operate a Shoal mirror network.
///
/// A Shoal network is described once in a site file (`site.yaml`): one origin
/// that publishes a repository folder and the mirrors that follow it over
/// BitTorrent. `shoal` validates that file and renders it for the tool you
/// deploy with (Puppet, Ansible, or plain agent configs).
#[derive(Debug, Parser)]
#[command(name = "shoal", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Check(crate::check::CheckArgs),
    #[command(subcommand)]
    Render(crate::render::RenderCommand),
    /// Run an origin and three mirrors on this machine (127.0.0.x only) and
    /// watch a generated Debian archive and an update sync over BitTorrent.
    Demo(crate::demo::DemoArgs),
    /// Plan GlusterFS volumes for mirror storage.
    Gluster {
        #[command(subcommand)]
        cmd: crate::gluster::GlusterCmd,
    },
    Bootstrap(Box<crate::bootstrap::BootstrapArgs>),
    Status(crate::status::StatusArgs),
}

/// The clap command of `shoal`, for man pages and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
