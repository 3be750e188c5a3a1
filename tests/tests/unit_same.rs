//! One unit definition: the provisioner's tera template (`shoal render
//! unit`), the Puppet module's EPP template (`puppet epp render`, with the
//! module's `shoal::unit_settings` on the module path) and the Ansible
//! role's Jinja2 template (Ansible's own `template` module) render
//! byte-identical systemd units for the same parameters, and the result
//! passes `systemd-analyze verify` without a warning.
//!
//! The parameter sets cover an origin and mirrors, root and other users, a
//! port below 1024, sibling repository and state folders (one writable
//! common folder under ProtectSystem=strict), folders that share only `/`
//! (ProtectSystem=full), a state folder under /etc, and home folders.
//! Everything the tools write goes into a temporary folder.

use shoal_e2e::files::scratch;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

/// The parameters the three templates share.
#[derive(Debug, Clone)]
struct Params {
    role: &'static str,
    repo_dir: &'static str,
    state_dir: &'static str,
    /// None: the binary is the real one in the test's `bin/`.
    install_dir: Option<&'static str>,
    config_dir: &'static str,
    user: &'static str,
    listen: &'static str,
    peer_listen: Option<&'static str>,
}

fn sets() -> Vec<Params> {
    let base = Params {
        role: "mirror",
        repo_dir: "/srv/shoal/repo",
        state_dir: "/srv/shoal/state",
        install_dir: None,
        config_dir: "/etc/shoal",
        user: "root",
        listen: "0.0.0.0:8780",
        peer_listen: None,
    };
    vec![
        base.clone(),
        Params {
            repo_dir: "/srv/mirror/debian",
            state_dir: "/var/lib/shoal",
            user: "shoal",
            listen: "0.0.0.0:80",
            ..base.clone()
        },
        Params {
            role: "origin",
            repo_dir: "/home/archive/debian",
            state_dir: "/var/lib/shoal",
            user: "shoal",
            peer_listen: Some("0.0.0.0:443"),
            ..base.clone()
        },
        Params {
            role: "origin",
            repo_dir: "/srv/reprepro/debian",
            state_dir: "/etc/shoal-state",
            config_dir: "/root/shoal",
            ..base.clone()
        },
        Params {
            repo_dir: "/data/a/repo",
            state_dir: "/data/a/state",
            user: "shoal",
            listen: "127.0.0.1:9780",
            peer_listen: Some("127.0.0.1:9790"),
            ..base
        },
    ]
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn install_dir(&self, p: &Params) -> String {
        p.install_dir
            .map(String::from)
            .unwrap_or_else(|| self.path("bin").display().to_string())
    }
}

fn run(c: &mut Command, what: &str) -> String {
    let out = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// The provisioner: a site whose one agent host has these parameters.
fn render_tera(case: &Case, p: &Params) -> Vec<u8> {
    // The agent's own settings, indented for the origin (2) or a mirror (4).
    let host = |role: &str, pad: &str| {
        let mut lines = vec![
            format!("repo_dir: {}", p.repo_dir),
            format!("state_dir: {}", p.state_dir),
            format!("install_dir: {}", case.install_dir(p)),
            format!("config_dir: {}", p.config_dir),
            format!("user: {}", p.user),
            format!("group: {}", p.user),
            format!("listen: '{}'", p.listen),
        ];
        if let Some(peer) = p.peer_listen {
            lines.push(format!("peer_listen: '{peer}'"));
        }
        if role == "origin" {
            lines.push(format!("origin_key_file: {}/origin.key", p.config_dir));
        }
        lines
            .iter()
            .map(|l| format!("{pad}{l}\n"))
            .collect::<String>()
    };
    let site = if p.role == "origin" {
        format!(
            "name: t\ndefaults:\n  binary_source: /srv/dist/shoal-agent\n\
             origin:\n  host: agent.example.org\n  origin_public_key: {KEY}\n{}",
            host("origin", "  ")
        )
    } else {
        format!(
            "name: t\ndefaults:\n  binary_source: /srv/dist/shoal-agent\n\
             origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n  repo_dir: /srv/o\n\
             mirrors:\n  - host: agent.example.org\n{}",
            host("mirror", "    ")
        )
    };
    let file = case.path("site.yaml");
    std::fs::write(&file, &site).unwrap();
    run(
        Command::new(shoal_e2e::bin("shoal"))
            .args(["render", "unit", "--site"])
            .arg(&file)
            .args(["--host", "agent.example.org"]),
        &format!("shoal render unit of\n{site}"),
    )
    .into_bytes()
}

/// `puppet epp render` of the module's template.
fn render_epp(case: &Case, p: &Params) -> Vec<u8> {
    let modules = case.path("modules");
    std::fs::create_dir_all(&modules).unwrap();
    let link = modules.join("shoal");
    if !link.exists() {
        std::os::unix::fs::symlink(shoal_e2e::workspace_root().join("puppet"), &link).unwrap();
    }
    let q = |s: &str| format!("'{s}'");
    let mut values = vec![
        ("role", q(p.role)),
        ("binary", q(&format!("{}/shoal-agent", case.install_dir(p)))),
        ("config_file", q(&format!("{}/agent.yaml", p.config_dir))),
        ("repo_dir", q(p.repo_dir)),
        ("state_dir", q(p.state_dir)),
        ("user", q(p.user)),
        ("group", q(p.user)),
        ("listen", q(p.listen)),
        (
            "origin_key_file",
            q(&format!("{}/origin.key", p.config_dir)),
        ),
    ];
    if let Some(peer) = p.peer_listen {
        values.push(("peer_listen", q(peer)));
    }
    let hash = format!(
        "{{{}}}",
        values
            .iter()
            .map(|(k, v)| format!("{k} => {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut c = Command::new("puppet");
    c.arg("epp").arg("render").arg("--modulepath").arg(&modules);
    for (flag, dir) in [
        ("--vardir", "var"),
        ("--confdir", "etc"),
        ("--codedir", "code"),
        ("--logdir", "log"),
        ("--rundir", "run"),
        ("--publicdir", "public"),
        ("--ssldir", "ssl"),
    ] {
        c.arg(flag).arg(case.path("puppet").join(dir));
    }
    c.arg("--values")
        .arg(&hash)
        .arg(link.join("templates/shoal-agent.service.epp"))
        .env("NO_COLOR", "1");
    run(&mut c, &format!("puppet epp render with {hash}")).into_bytes()
}

/// Ansible's `template` module on the role's template, run on localhost.
fn render_jinja(case: &Case, p: &Params) -> Vec<u8> {
    let home = case.path("ansible");
    std::fs::create_dir_all(home.join("tmp")).unwrap();
    let unit = serde_json::json!({
        "shoal__unit": {
            "role": p.role,
            "binary": format!("{}/shoal-agent", case.install_dir(p)),
            "config_file": format!("{}/agent.yaml", p.config_dir),
            "repo_dir": p.repo_dir,
            "state_dir": p.state_dir,
            "user": p.user,
            "group": p.user,
            "listen": p.listen,
            "peer_listen": p.peer_listen.unwrap_or(""),
            "origin_key_file": format!("{}/origin.key", p.config_dir),
        }
    });
    let vars = case.path("unit-vars.json");
    std::fs::write(&vars, unit.to_string()).unwrap();
    let dest = case.path("jinja.service");
    let _ = std::fs::remove_file(&dest);
    let src =
        shoal_e2e::workspace_root().join("ansible/roles/shoal/templates/shoal-agent.service.j2");
    run(
        Command::new("ansible")
            .args([
                "localhost",
                "-c",
                "local",
                "-m",
                "ansible.builtin.template",
                "-a",
            ])
            .arg(format!("src={} dest={}", src.display(), dest.display()))
            .arg("-e")
            .arg(format!("@{}", vars.display()))
            .current_dir(case.dir.path())
            .env("HOME", &home)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("tmp"))
            .env("ANSIBLE_LOCALHOST_WARNING", "false")
            .env("ANSIBLE_INVENTORY_UNPARSED_WARNING", "false")
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("ANSIBLE_NOCOLOR", "1")
            .env_remove("ANSIBLE_CONFIG"),
        "ansible -m template",
    );
    std::fs::read(&dest).unwrap()
}

fn verify(case: &Case, unit: &[u8]) -> String {
    let dir = case.path("units");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("shoal-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("systemd-analyze runs (Debian package systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{text}"
    );
    text
}

fn line_of<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .collect()
}

#[test]
fn tera_epp_and_jinja_render_the_same_bytes_and_the_unit_verifies() {
    let case = Case {
        dir: scratch("shoal-unit-same-", &["bin"]),
    };
    std::fs::copy(shoal_e2e::bin("shoal-agent"), case.path("bin/shoal-agent")).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for p in sets() {
        let tera = render_tera(&case, &p);
        let epp = render_epp(&case, &p);
        let jinja = render_jinja(&case, &p);
        let text = String::from_utf8(tera.clone()).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&epp),
            text,
            "the EPP unit differs from the tera unit for {p:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&jinja),
            text,
            "the Jinja2 unit differs from the tera unit for {p:?}"
        );
        let warnings = verify(&case, &tera);
        assert!(
            !warnings.contains("shoal-agent.service"),
            "systemd-analyze warns about the unit for {p:?}:\n{warnings}\n{text}"
        );
        // What each set is there to cover, read back from the unit.
        let protect = line_of(&text, "ProtectSystem");
        let rw = line_of(&text, "ReadWritePaths");
        assert!(rw.len() <= 1, "{text}");
        match (p.repo_dir, protect[..].first().copied()) {
            ("/srv/shoal/repo", Some("strict")) => assert_eq!(rw, ["/srv/shoal"]),
            ("/data/a/repo", Some("strict")) => assert_eq!(rw, ["/data/a"]),
            ("/srv/reprepro/debian", Some("full")) => assert_eq!(rw, ["/etc/shoal-state"]),
            (_, Some("full")) => assert!(rw.is_empty(), "{text}"),
            other => panic!("unexpected ProtectSystem {other:?}:\n{text}"),
        }
        kinds.insert(format!(
            "{} {} home={} caps={}",
            p.role,
            protect[0],
            line_of(&text, "ProtectHome")[0],
            line_of(&text, "CapabilityBoundingSet")[0]
        ));
        assert_eq!(
            line_of(&text, "ExecReload").len(),
            usize::from(p.role == "origin"),
            "{text}"
        );
    }
    // The sets differ where they should: each hardening choice is exercised.
    for want in [
        "home=no",
        "home=read-only",
        "home=yes",
        "caps=CAP_NET_BIND_SERVICE",
        "caps=CAP_CHOWN",
        " strict ",
        " full ",
    ] {
        assert!(
            kinds.iter().any(|k| k.contains(want)),
            "no parameter set gives `{want}`: {kinds:?}"
        );
    }
    assert!(
        kinds.iter().any(|k| k.ends_with("caps=")),
        "no parameter set without capabilities: {kinds:?}"
    );
}

#[test]
fn a_different_parameter_changes_every_renderer_alike() {
    // Guards the comparison above: the templates do read the parameters.
    let case = Case {
        dir: scratch("shoal-unit-diff-", &["bin"]),
    };
    std::fs::copy(shoal_e2e::bin("shoal-agent"), case.path("bin/shoal-agent")).unwrap();
    let a = sets()[0].clone();
    let b = Params {
        user: "shoal",
        ..a.clone()
    };
    for render in [render_tera, render_epp, render_jinja] {
        let (ua, ub) = (render(&case, &a), render(&case, &b));
        assert_ne!(ua, ub);
        let ub = String::from_utf8(ub).unwrap();
        assert!(
            ub.contains("\nUser=shoal\n") && ub.contains("\nCapabilityBoundingSet=\n"),
            "{ub}"
        );
    }
}
