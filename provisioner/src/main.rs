//! `shoal`: the Shoal provisioner CLI.

use clap::Parser;
use shoal_provisioner::cli::{Cli, Command};
use shoal_provisioner::{bootstrap, gluster, status};
use std::process::ExitCode;

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
