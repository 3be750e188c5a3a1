//! The Debian package built by `scripts/package-deb`: it installs with
//! `dpkg -i` into a scratch root (never into this system), the installed
//! binaries run and are stripped, the man pages render with `man -l`, the
//! completions, unit and copyright are there, it purges cleanly, and
//! `lintian` reports no errors.
//!
//! Cost: the script's release build of shoal-agent, shoal and shoal-dist,
//! 3-6 minutes on 2 cores from scratch, seconds when `target/release` is
//! current. `SHOAL_DEB=<file.deb>` tests an already built package instead.
//! Needs root (dpkg into a scratch root runs the maintainer scripts), dpkg-dev,
//! man-db and lintian (`scripts/install-deps test`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `cmd`, asserts it succeeded, returns its output.
fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The .deb: `SHOAL_DEB`, else what `scripts/package-deb` builds into `dir`.
fn build_deb(dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("SHOAL_DEB") {
        return PathBuf::from(p);
    }
    let script = shoal_e2e::workspace_root().join("scripts/package-deb");
    let out = run(Command::new(script).arg(dir));
    let last = stdout(&out).lines().last().unwrap_or_default().to_string();
    let deb = PathBuf::from(last);
    assert!(deb.is_file(), "package-deb printed {deb:?}, not a file");
    deb
}

/// `dpkg` acting on the scratch root `root` only: its own database, log and
/// instdir; maintainer scripts run unchrooted with DPKG_ROOT=root (the
/// scratch root has no shell), and Depends (libc6, …) are not installed there.
fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    c.arg(format!("--root={}", root.display()))
        .arg(format!("--log={}", root.join("dpkg.log").display()))
        .args(["--force-script-chrootless", "--force-depends"]);
    c
}

#[test]
fn debian_package_installs_runs_and_passes_lintian() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the Debian package test needs root (dpkg into a scratch root)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());

    // What the package holds, for the failure messages below.
    let listing = stdout(&run(Command::new("dpkg-deb").arg("-c").arg(&deb)));

    // A scratch root with an empty dpkg database.
    let root = tmp.path().join("root");
    for d in [
        "var/lib/dpkg/updates",
        "var/lib/dpkg/info",
        "var/lib/dpkg/triggers",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("var/lib/dpkg/available"), "").unwrap();
    let host_dsh =
        Path::new("/var/lib/systemd/deb-systemd-helper-enabled/shoal-agent.service.dsh-also");
    let host_dsh_before = host_dsh.exists();
    run(dpkg(&root).arg("-i").arg(&deb));
    let status = stdout(&run(dpkg(&root).args(["-s", "shoal"])));
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The installed binaries run and carry no debug info or symbol table.
    let agent = root.join("usr/bin/shoal-agent");
    let shoal = root.join("usr/bin/shoal");
    let v = stdout(&run(Command::new(&agent).arg("--version")));
    assert!(v.starts_with("shoal-agent "), "{v}");
    let v = stdout(&run(Command::new(&shoal).arg("--version")));
    assert!(v.starts_with("shoal "), "{v}");
    for b in [&agent, &shoal] {
        let sections = stdout(&run(Command::new("readelf").arg("-SW").arg(b)));
        for s in [".debug_info", ".debug_line", ".symtab"] {
            assert!(
                !sections.contains(&format!(" {s} ")),
                "{} still has {s}:\n{sections}",
                b.display()
            );
        }
    }

    // The archive hooks are installed, executable, and are the repository's.
    for h in ["reprepro-outhook", "createrepo-publish", "ftpsync-pull"] {
        let p = root.join("usr/share/shoal/hooks").join(h);
        let m = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{} ({e}) is not in the package:\n{listing}", p.display()));
        assert_eq!(m.permissions().mode() & 0o777, 0o755, "{}", p.display());
        let shipped = shoal_e2e::workspace_root().join("packaging/hooks").join(h);
        assert_eq!(std::fs::read(&p).unwrap(), std::fs::read(&shipped).unwrap());
    }

    // The man pages render, from the clap definitions.
    let man = |page: &str| {
        let p = root.join("usr/share/man/man1").join(page);
        assert!(p.is_file(), "{page} is not in the package:\n{listing}");
        stdout(&run(Command::new("man")
            .arg("-l")
            .arg(&p)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("MAN_DISABLE_SECCOMP", "1")))
    };
    let page = man("shoal-agent.1.gz");
    for w in [
        "shoal-agent",
        "keygen",
        "origin",
        "mirror",
        "publish",
        "--config",
    ] {
        assert!(page.contains(w), "shoal-agent(1) lacks {w}:\n{page}");
    }
    let page = man("shoal.1.gz");
    for w in ["shoal", "check", "render", "bootstrap", "gluster", "status"] {
        assert!(page.contains(w), "shoal(1) lacks {w}:\n{page}");
    }
    let page = man("shoal-agent-keygen.1.gz");
    assert!(page.contains("--out"), "{page}");
    assert!(
        !page.contains("--config"),
        "keygen takes no --config:\n{page}"
    );

    // Completions for bash, zsh and fish; the bash ones load.
    for (dir, file) in [
        ("usr/share/bash-completion/completions", "shoal-agent"),
        ("usr/share/bash-completion/completions", "shoal"),
        ("usr/share/zsh/vendor-completions", "_shoal-agent"),
        ("usr/share/zsh/vendor-completions", "_shoal"),
        ("usr/share/fish/vendor_completions.d", "shoal-agent.fish"),
        ("usr/share/fish/vendor_completions.d", "shoal.fish"),
    ] {
        let p = root.join(dir).join(file);
        let len = std::fs::metadata(&p)
            .unwrap_or_else(|e| panic!("{}: {e}\n{listing}", p.display()))
            .len();
        assert!(len > 100, "{} is nearly empty ({len} bytes)", p.display());
    }
    for b in ["shoal-agent", "shoal"] {
        let script = root.join("usr/share/bash-completion/completions").join(b);
        run(Command::new("bash")
            .arg("-c")
            .arg(format!("source '{}' && complete -p {b}", script.display())));
    }

    // The unit, rendered from templates/shoal-agent.service.tera, and the docs.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/shoal-agent.service"))
        .unwrap_or_else(|e| panic!("unit: {e}\n{listing}"));
    assert!(
        unit.contains("\nExecStart=/usr/bin/shoal-agent --config /etc/shoal/agent.yaml run\n"),
        "{unit}"
    );
    for f in ["copyright", "changelog.Debian.gz", "LICENSE", "crates.txt"] {
        let p = root.join("usr/share/doc/shoal").join(f);
        assert!(p.is_file(), "{f} is not in the package:\n{listing}");
    }
    let copyright = std::fs::read_to_string(root.join("usr/share/doc/shoal/copyright")).unwrap();
    assert!(copyright
        .starts_with("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"));

    // Removal runs the maintainer scripts again and leaves nothing behind;
    // none of them touched this system's systemd state.
    run(dpkg(&root).args(["--purge", "shoal"]));
    assert!(!agent.exists() && !root.join("lib/systemd/system/shoal-agent.service").exists());
    assert_eq!(
        host_dsh.exists(),
        host_dsh_before,
        "the maintainer scripts touched the host"
    );

    // lintian: no errors (warnings and notes are printed for the record).
    let out = Command::new("lintian")
        .args(["--tag-display-limit", "0", "--display-info"])
        .arg(&deb)
        .output()
        .expect("lintian is installed (scripts/install-deps test)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("lintian {}:\n{text}", deb.display());
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
}
