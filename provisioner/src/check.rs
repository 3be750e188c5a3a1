//! `shoal check`: validate a site file and summarize it.

use crate::site::{Site, Sites, DOC};
use clap::Args;
use shoal_config::Role;
use std::path::PathBuf;
use std::process::ExitCode;

/// Validate a site file without touching any host.
///
/// Prints a short summary (hosts, roles, addresses, what each mirror
/// follows), per repository for a site with `repositories:`, when the
/// file is valid; two repositories on one host that would share a folder or
/// a port are an error naming both. Otherwise prints every problem as
/// `FILE:LINE:COLUMN: KEY: what is wrong and what to do` and exits with 1.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The site file to check.
    #[arg(long, value_name = "FILE", default_value = "site.yaml")]
    pub site: PathBuf,
}

/// Runs `shoal check`.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let sites = match Sites::load(&args.site) {
        Ok(s) => s,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} problem(s); fix them and run `shoal check --site {}` again (reference: {DOC})",
                args.site.display(),
                errors.0.len(),
                args.site.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    for site in &sites.repositories {
        if let Err(e) = crate::render::verify_agent_configs(site) {
            eprintln!("{}: {e}", args.site.display());
            return Ok(ExitCode::FAILURE);
        }
    }
    for site in &sites.repositories {
        print!("{}", summary(site));
    }
    Ok(ExitCode::SUCCESS)
}

/// The summary `shoal check` prints for a valid site.
pub fn summary(site: &Site) -> String {
    let o = site.origin();
    let what = match &site.repository {
        Some(name) => format!("repository '{name}'"),
        None => format!("site '{}'", site.name),
    };
    let mut s = format!(
        "{}: {what} is valid: 1 origin, {} mirror(s), profile {}, repository {}\n",
        site.file,
        site.mirrors().len(),
        o.profile,
        o.repo_dir.display()
    );
    let width = site.hosts.iter().map(|h| h.host.len()).max().unwrap_or(0);
    for h in &site.hosts {
        let peer = h
            .peer_addr()
            .map(|a| a.port().to_string())
            .unwrap_or_else(|| "-".into());
        let follows = match h.role {
            Role::Origin => format!("publishes {}", h.repo_dir.display()),
            Role::Mirror => format!("follows {}", h.upstreams.join(" ")),
        };
        let web = if h.manage_web {
            format!(", web :{}", h.web_port)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "  {:<6}  {:<width$}  {} (bittorrent :{peer}{web}, {}); {follows}\n",
            h.role.to_string(),
            h.host,
            h.advertise_url,
            match h.service_manager {
                crate::site::ServiceManager::Systemd => "systemd",
                crate::site::ServiceManager::Daemon => "daemon",
            },
        ));
    }
    if let Some(g) = site.gluster() {
        s.push_str(&format!(
            "  gluster volume '{}' ({}, {} layout): {} bricks on {} server(s), mounted at {} on {}\n",
            g.volume,
            g.volume_type(),
            g.plan.layout,
            g.plan.bricks().len(),
            g.servers.len(),
            g.mount.display(),
            g.mirrors.join(", ")
        ));
        for (k, set) in g.plan.sets.iter().enumerate() {
            let bricks: Vec<String> = set.bricks.iter().map(|b| b.to_string()).collect();
            s.push_str(&format!("    set {}: {}\n", k + 1, bricks.join(" ")));
        }
        for w in g.plan.warnings() {
            s.push_str(&format!("  warning: {w}\n"));
        }
    }
    s
}
