//! `shoal`: the Shoal provisioner CLI.

mod bootstrap;
mod gluster;
mod status;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Provision and operate a Shoal mirror network.
///
/// A Shoal network is described once in a site file (`site.yaml`): one origin
/// that publishes a repository folder and the mirrors that follow it over
/// BitTorrent. `shoal` validates that file and renders it for the tool you
/// deploy with (Puppet, Ansible, or plain agent configs).
#[derive(Debug, Parser)]
#[command(name = "shoal", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Check(shoal_provisioner::check::CheckArgs),
    #[command(subcommand)]
    Render(shoal_provisioner::render::RenderCommand),
    /// Run an origin and three mirrors on this machine (127.0.0.x only) and
    /// watch a generated Debian archive and an update sync over BitTorrent.
    Demo(shoal_provisioner::demo::DemoArgs),
    /// Plan GlusterFS volumes for mirror storage.
    Gluster {
        #[command(subcommand)]
        cmd: gluster::GlusterCmd,
    },
    Bootstrap(Box<bootstrap::BootstrapArgs>),
    Status(status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => shoal_provisioner::check::run(&args),
        Command::Render(cmd) => shoal_provisioner::render::run(&cmd),
        Command::Demo(args) => shoal_provisioner::demo::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Gluster { cmd } => gluster::run_cmd(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Bootstrap(args) => bootstrap::run(&args),
        Command::Status(args) => status::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shoal: {e:#}");
            ExitCode::FAILURE
        }
    }
}
