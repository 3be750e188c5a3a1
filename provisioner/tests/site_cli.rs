//! The `shoal check` and `shoal render agent-config|unit` commands as an
//! operator meets them: output, exit codes and help texts.

use shoal_config::{AgentConfig, Role};
use std::path::PathBuf;
use std::process::Command;

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../site.example.yaml")
}

fn shoal(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_summarizes_a_valid_site() {
    let ex = example();
    let (code, out, err) = shoal(&["check", "--site", ex.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("site 'debian-archive' is valid: 1 origin, 3 mirror(s), profile debian"),
        "{out}"
    );
    assert!(out.contains("origin  archive.example.org"), "{out}");
    assert!(
        out.contains("follows http://mirror1.example.org:8780 http://archive.example.org:8780"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 5, "{out}");
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.yaml");
    std::fs::write(
        &f,
        "defaults:\n  binary_source: /opt/shoal-agent\n  profile: debain\norigin:\n  host: o.example.org\n\
         mirrors:\n  - host: m.example.org\n    poll_interval: soon\n",
    )
    .unwrap();
    let (code, out, err) = shoal(&["check", "--site", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty(), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    let file = f.display().to_string();
    assert!(
        lines[0].starts_with(&format!(
            "{file}:3:3: defaults.profile: unknown profile 'debain'"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:7:5: mirrors[0]: mirror 'm.example.org' has no origin_public_key"
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{file}:8:5: mirrors[0].poll_interval: 'soon' is not a duration"
        )),
        "{err}"
    );
    assert!(
        lines[3].contains("3 problem(s); fix them and run `shoal check"),
        "{err}"
    );
}

#[test]
fn check_of_a_missing_file_says_so() {
    let (code, _, err) = shoal(&["check", "--site", "/nonexistent/site.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/nonexistent/site.yaml: (file): cannot read the site file"),
        "{err}"
    );
    assert!(err.contains("--site"), "{err}");
}

#[test]
fn render_agent_config_prints_a_config_the_agent_reads() {
    let ex = example();
    let (code, out, err) = shoal(&[
        "render",
        "agent-config",
        "--site",
        ex.to_str().unwrap(),
        "--host",
        "mirror2.example.org",
    ]);
    assert_eq!(code, 0, "{err}");
    let cfg = AgentConfig::from_yaml(&out, "stdout").unwrap();
    assert_eq!(cfg.role, Role::Mirror);
    assert_eq!(cfg.network.download_limit, 50 << 20);

    let (code, out, err) = shoal(&[
        "render",
        "unit",
        "--site",
        ex.to_str().unwrap(),
        "--host",
        "archive.example.org",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("[Service]") && out.contains("User=shoal"),
        "{out}"
    );

    let (code, _, err) = shoal(&[
        "render",
        "agent-config",
        "--site",
        ex.to_str().unwrap(),
        "--host",
        "nope",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no host 'nope' in the site; hosts are: archive.example.org, mirror1.example.org"
        ),
        "{err}"
    );
}

#[test]
fn help_explains_each_command_and_option() {
    let (code, out, _) = shoal(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("check") && out.contains("render"), "{out}");
    assert!(out.contains("site file"), "{out}");

    let (_, out, _) = shoal(&["check", "--help"]);
    assert!(
        out.contains("--site <FILE>") && out.contains("The site file to check"),
        "{out}"
    );
    assert!(out.contains("FILE:LINE:COLUMN: KEY"), "{out}");

    let (_, out, _) = shoal(&["render", "--help"]);
    for sub in ["puppet", "ansible", "agent-config", "unit"] {
        assert!(out.contains(sub), "render --help lacks {sub}: {out}");
    }
    let (_, out, _) = shoal(&["render", "puppet", "--help"]);
    assert!(
        out.contains("manifests/site.pp") && out.contains("modules/shoal"),
        "{out}"
    );
    assert!(
        out.contains("--out <DIR>") && out.contains("--force"),
        "{out}"
    );
    let (_, out, _) = shoal(&["render", "ansible", "--help"]);
    assert!(
        out.contains("inventory.yml")
            && out.contains("shoal_mirrors")
            && out.contains("roles/shoal"),
        "{out}"
    );
    let (_, out, _) = shoal(&["render", "agent-config", "--help"]);
    assert!(out.contains("--host <NAME>"), "{out}");
}

/// A site of two repositories whose networks share a mirror host.
fn two_repositories(fedora_mirror: &str) -> String {
    "name: archive\n\
     defaults:\n  binary_source: /srv/dist/shoal-agent\n\
     repositories:\n\
     \x20 - name: debian\n\
     \x20   defaults: {profile: debian}\n\
     \x20   origin: {host: deb.example.org, origin_public_key: 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29'}\n\
     \x20   mirrors:\n\
     \x20     - {host: m1.example.org, repo_dir: /srv/shoal/debian/repo, state_dir: /srv/shoal/debian/state}\n\
     \x20 - name: fedora\n\
     \x20   defaults: {profile: rpm}\n\
     \x20   origin: {host: rpm.example.org, origin_public_key: 'ed25519:8f0d73653215771de243a63ac048a18b59da293b6a27bcceb6a42d62a3a8d02a'}\n\
     \x20   mirrors:\n"
        .to_string()
        + &format!("      - {{host: m1.example.org, {fedora_mirror}}}\n")
}

#[test]
fn check_reads_several_repositories_and_refuses_a_shared_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("site.yaml");
    std::fs::write(
        &f,
        two_repositories("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/fedora/state, listen: '0.0.0.0:8790'"),
    )
    .unwrap();
    let (code, out, err) = shoal(&["check", "--site", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("repository 'debian' is valid: 1 origin, 1 mirror(s), profile debian"),
        "{out}"
    );
    assert!(
        out.contains("repository 'fedora' is valid: 1 origin, 1 mirror(s), profile rpm"),
        "{out}"
    );

    std::fs::write(
        &f,
        two_repositories("repo_dir: /srv/shoal/fedora/repo, state_dir: /srv/shoal/debian/state, listen: '0.0.0.0:8790'"),
    )
    .unwrap();
    let (code, out, err) = shoal(&["check", "--site", f.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains(&format!("{}:14:", f.display()))
            && err.contains("repositories 'debian' (line 9) and 'fedora' (line 14) both use the folder /srv/shoal/debian/state"),
        "{err}"
    );
    // The one-repository commands say what to do instead.
    let (code, _, err) = shoal(&[
        "render",
        "unit",
        "--site",
        f.to_str().unwrap(),
        "--host",
        "m1.example.org",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("shoal_repositories"), "{err}");
}
