//! `shoal-dist`: writes the man pages and shell completions of `shoal-agent`
//! and `shoal` into a folder, generated from the same clap definitions the
//! binaries parse their command lines with (`shoal_agent::cli` and
//! `shoal_provisioner::cli`), so the pages can never drift from `--help`.
//!
//! ```text
//! shoal-dist OUT
//!   OUT/man/shoal-agent.1, OUT/man/shoal-agent-<command>.1, …   (roff, clap_mangen)
//!   OUT/man/shoal.1, OUT/man/shoal-<command>.1, …
//!   OUT/completions/bash/{shoal-agent,shoal}
//!   OUT/completions/zsh/{_shoal-agent,_shoal}
//!   OUT/completions/fish/{shoal-agent.fish,shoal.fish}
//!   OUT/systemd/shoal-agent.service    (templates/shoal-agent.service.tera, packaged form)
//! ```
//!
//! `scripts/package-deb` runs it and puts the files where Debian expects them.

use anyhow::{bail, Context, Result};
use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn main() {
    if let Err(e) = real_main() {
        eprintln!("shoal-dist: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [out] if !out.starts_with('-') => PathBuf::from(out),
        _ => bail!("usage: shoal-dist OUT_DIR (writes OUT_DIR/man and OUT_DIR/completions)"),
    };
    for cmd in [
        shoal_agent::cli::command(),
        shoal_provisioner::cli::command(),
    ] {
        let mut pages = Vec::new();
        write_man_pages(cmd.clone(), &out.join("man"), &mut pages)?;
        write_completions(cmd, &out.join("completions"))?;
        for p in pages {
            println!("{}", p.display());
        }
    }
    let unit = shoal_provisioner::render::render_packaged_unit(
        Path::new("/usr/bin/shoal-agent"),
        Path::new("/etc/shoal/agent.yaml"),
    );
    let dir = out.join("systemd");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("shoal-agent.service");
    std::fs::write(&path, unit).with_context(|| format!("cannot write {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// Writes the page of `cmd` and, recursively, one page per subcommand
/// (`shoal-gluster-layout.1`); appends the paths written to `written`.
fn write_man_pages(mut cmd: clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Sets each subcommand's display name (`shoal-agent-keygen`) and
    // bin name (`shoal-agent keygen`), which the pages use.
    cmd.build();
    write_page(&cmd, dir, written)
}

fn write_page(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .source(format!("Shoal {}", env!("CARGO_PKG_VERSION")))
        .manual("Shoal Manual")
        .render(&mut buf)?;
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        write_page(sub, dir, written)?;
    }
    Ok(())
}

/// Writes bash, zsh and fish completions for `cmd`.
fn write_completions(mut cmd: clap::Command, dir: &Path) -> Result<()> {
    let bin = cmd.get_name().to_string();
    for (shell, sub, file) in [
        (Shell::Bash, "bash", bin.clone()),
        (Shell::Zsh, "zsh", format!("_{bin}")),
        (Shell::Fish, "fish", format!("{bin}.fish")),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, &bin, &mut buf);
        let path = d.join(file);
        std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
