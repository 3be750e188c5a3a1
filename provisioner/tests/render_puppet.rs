//! `shoal render puppet` against the real Puppet tools: the rendered
//! site.pp passes `puppet parser validate` and `puppet-lint
//! --fail-on-warnings`; the catalog of every node compiles against the
//! embedded module (`puppet apply --noop` with every path in a temp dir);
//! values with quotes, backslashes and `%{...}` come back unchanged from
//! the manifest and from Hiera; re-rendering rewrites only what changed.
//!
//! Puppet keeps its state in the test's temp dir (--vardir, --confdir, ...).
//! Needs the Debian packages puppet and puppet-lint.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
/// A value Puppet, YAML and Hiera would each misread if it were not escaped.
const TRICKY: &str = r#"o'brien"s\%{facts}{{x}}"#;

fn shoal() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
}

fn run(c: &mut Command) -> (bool, String) {
    let out: Output = c.output().unwrap_or_else(|e| {
        panic!("cannot run {c:?}: {e}; install the Debian packages puppet and puppet-lint")
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn puppet_settings(dir: &Path) -> Vec<OsString> {
    let mut v = Vec::new();
    for (flag, sub) in [
        ("--vardir", "var"),
        ("--confdir", "etc"),
        ("--codedir", "code"),
        ("--logdir", "log"),
        ("--rundir", "run"),
        ("--publicdir", "public"),
        ("--ssldir", "ssl"),
    ] {
        v.push(OsString::from(flag));
        v.push(dir.join("puppet").join(sub).into_os_string());
    }
    v
}

/// A site whose every path is inside `root`, so a noop run touches nothing else.
fn site_text(root: &Path, mirror2: bool) -> String {
    let r = root.display();
    let bin = root.join("dist/shoal-agent");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap();
    let mut t = format!(
        "name: puppet-test\n\
         defaults:\n  profile: debian\n  binary_source: {r}/dist/shoal-agent\n  repo_dir: {r}/srv/repo\n\
         \x20 state_dir: {r}/var/state\n  install_dir: {r}/bin\n  config_dir: {r}/etc/shoal\n  unit_dir: {r}/etc/systemd\n\
         \x20 service_manager: daemon\n  service_ensure: stopped\n  upload_limit: 10MiB\n\
         origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n  listen: 127.0.0.1:18780\n  publish_interval: 90\n\
         mirrors:\n  - host: mirror1.example.org\n    listen: 127.0.0.2:18780\n    agent_name: '{}'\n"
    , TRICKY.replace('\'', "''"));
    if mirror2 {
        t.push_str("  - host: mirror2.example.org\n    listen: 127.0.0.3:18780\n    upstreams: [mirror1.example.org]\n");
    }
    t
}

fn render(site: &Path, out: &Path) -> String {
    let (ok, text) = run(shoal()
        .args(["render", "puppet", "--site"])
        .arg(site)
        .arg("--out")
        .arg(out));
    assert!(ok, "shoal render puppet failed:\n{text}");
    text
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::Builder::new()
        .prefix("shoal-render-puppet-")
        .tempdir()
        .unwrap();
    let site = tmp.path().join("site.yaml");
    std::fs::write(&site, site_text(tmp.path(), true)).unwrap();
    let out = tmp.path().join("out");
    (tmp, site, out)
}

#[test]
fn rendered_tree_has_the_puppet_layout_and_passes_validate_and_lint() {
    let (_tmp, site, out) = setup();
    render(&site, &out);
    for f in [
        "manifests/site.pp",
        "hiera.yaml",
        "data/common.yaml",
        "data/nodes/origin.example.org.yaml",
        "data/nodes/mirror1.example.org.yaml",
        "data/nodes/mirror2.example.org.yaml",
        "modules/shoal/manifests/init.pp",
        "modules/shoal/metadata.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    assert!(
        !out.join("modules/shoal/spec").exists(),
        "spec/ is not copied"
    );
    let pp = std::fs::read_to_string(out.join("manifests/site.pp")).unwrap();
    assert!(pp.contains("node 'mirror2.example.org' {"), "{pp}");
    assert!(
        pp.contains("upstreams         => ['http://127.0.0.2:18780'],"),
        "{pp}"
    );
    assert!(
        pp.contains("publish_interval  => '90s',"),
        "durations are normalized: {pp}"
    );

    let (ok, text) = run(Command::new("puppet")
        .args(["parser", "validate", "--color=false"])
        .args(puppet_settings(&out))
        .arg(out.join("manifests/site.pp")));
    assert!(ok, "puppet parser validate:\n{text}");
    let (ok, text) = run(Command::new("puppet-lint")
        .arg("--fail-on-warnings")
        .arg(out.join("manifests/site.pp")));
    assert!(ok && text.trim().is_empty(), "puppet-lint:\n{text}");
}

#[test]
fn every_node_compiles_against_the_embedded_module() {
    let (tmp, site, out) = setup();
    render(&site, &out);
    for node in [
        "origin.example.org",
        "mirror1.example.org",
        "mirror2.example.org",
    ] {
        let (_, text) = run(Command::new("puppet")
            .args(["apply", "--noop", "--color=false", "--certname", node])
            .args(puppet_settings(tmp.path()))
            .arg("--modulepath")
            .arg(out.join("modules"))
            .arg("--hiera_config")
            .arg(out.join("hiera.yaml"))
            .arg(out.join("manifests/site.pp"))
            .env("NO_COLOR", "1"));
        assert!(
            text.contains(&format!("Compiled catalog for {node}")),
            "the catalog of {node} does not compile:\n{text}"
        );
        assert!(!text.contains("Evaluation Error"), "{text}");
    }
}

#[test]
fn quotes_backslashes_and_interpolation_survive_manifest_and_hiera() {
    let (tmp, site, out) = setup();
    render(&site, &out);
    // The literal exactly as site.pp has it.
    let pp = std::fs::read_to_string(out.join("manifests/site.pp")).unwrap();
    let literal = pp
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("agent_name").map(|r| {
                r.trim_start()
                    .trim_start_matches("=>")
                    .trim()
                    .trim_end_matches(',')
                    .to_string()
            })
        })
        .expect("agent_name in site.pp");
    let manifest = "notice(\"manifest=[${a}]\")\nnotice(\"hiera=[${b}]\")\n";
    let code = format!("$a = {literal}\n$b = lookup('shoal::agent_name')\n{manifest}");
    let (ok, text) = run(Command::new("puppet")
        .args([
            "apply",
            "--color=false",
            "--certname",
            "mirror1.example.org",
        ])
        .args(puppet_settings(tmp.path()))
        .arg("--hiera_config")
        .arg(out.join("hiera.yaml"))
        .arg("-e")
        .arg(&code)
        .env("NO_COLOR", "1"));
    assert!(ok, "{code}\n{text}");
    assert!(
        text.contains(&format!("manifest=[{TRICKY}]")),
        "site.pp changed the value:\n{text}"
    );
    assert!(
        text.contains(&format!("hiera=[{TRICKY}]")),
        "Hiera changed the value:\n{text}"
    );
    // Site defaults come from common.yaml.
    let (ok, text) = run(
        Command::new("puppet")
            .args(["apply", "--color=false", "--certname", "mirror2.example.org"])
            .args(puppet_settings(tmp.path()))
            .arg("--hiera_config")
            .arg(out.join("hiera.yaml"))
            .arg("-e")
            .arg("notice(\"limit=[${lookup('shoal::upload_limit')}] role=[${lookup('shoal::role')}] up=[${lookup('shoal::upstreams')}]\")")
            .env("NO_COLOR", "1"),
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("limit=[10MiB] role=[mirror] up=[[http://127.0.0.2:18780]]"),
        "{text}"
    );
}

#[test]
fn rerender_rewrites_only_changes_and_removes_what_is_gone() {
    let (tmp, site, out) = setup();
    let first = render(&site, &out);
    assert!(first.contains("0 unchanged, 0 removed"), "{first}");
    let pp = out.join("manifests/site.pp");
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let before = mtime(&pp);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let again = render(&site, &out);
    assert!(again.contains(": 0 file(s) written"), "{again}");
    assert_eq!(mtime(&pp), before, "an unchanged file was rewritten");

    // Drop mirror2: its node data goes, site.pp changes, the rest stays.
    std::fs::write(&site, site_text(tmp.path(), false)).unwrap();
    let third = render(&site, &out);
    assert!(
        third.contains(": 1 file(s) written") && third.contains(" 1 removed"),
        "only site.pp changes: {third}"
    );
    assert!(!out.join("data/nodes/mirror2.example.org.yaml").exists());
    assert!(!std::fs::read_to_string(&pp).unwrap().contains("mirror2"));
}

#[test]
fn files_shoal_did_not_write_are_not_overwritten() {
    let (_tmp, site, out) = setup();
    std::fs::create_dir_all(out.join("manifests")).unwrap();
    std::fs::write(out.join("manifests/site.pp"), "# my own\n").unwrap();
    let (ok, text) = run(shoal()
        .args(["render", "puppet", "--site"])
        .arg(&site)
        .arg("--out")
        .arg(&out));
    assert!(!ok, "{text}");
    assert!(
        text.contains("manifests/site.pp")
            && text.contains("not written by shoal")
            && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("manifests/site.pp")).unwrap(),
        "# my own\n"
    );
    assert!(
        !out.join("hiera.yaml").exists(),
        "nothing is written when refusing"
    );
    let (ok, text) = run(shoal()
        .args(["render", "puppet", "--force", "--site"])
        .arg(&site)
        .arg("--out")
        .arg(&out));
    assert!(ok, "{text}");
    assert!(std::fs::read_to_string(out.join("manifests/site.pp"))
        .unwrap()
        .contains("node 'origin.example.org'"));
}

#[test]
fn a_bad_site_renders_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site.yaml");
    std::fs::write(&site, "origin:\n  host: o\n  colour: blue\n").unwrap();
    let out = tmp.path().join("out");
    let (ok, text) = run(shoal()
        .args(["render", "puppet", "--site"])
        .arg(&site)
        .arg("--out")
        .arg(&out));
    assert!(!ok);
    assert!(
        text.contains("site.yaml:3:3: origin.colour: unknown key `colour`"),
        "{text}"
    );
    assert!(!out.exists());
}

/// A site of two repositories whose mirrors share one host.
fn repositories_site(root: &Path) -> PathBuf {
    let r = root.display();
    let bin = root.join("dist/shoal-agent");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap();
    let text = format!(
        "name: two\n\
         defaults:\n  binary_source: {r}/dist/shoal-agent\n  install_dir: {r}/bin\n  config_dir: {r}/etc/shoal\n\
         \x20 unit_dir: {r}/etc/systemd\n  service_manager: daemon\n  service_ensure: stopped\n\
         repositories:\n\
         \x20 - name: debian\n    defaults: {{profile: debian}}\n\
         \x20   origin: {{host: deb.example.org, origin_public_key: '{KEY}', repo_dir: {r}/deb, state_dir: {r}/deb-state}}\n\
         \x20   mirrors:\n      - {{host: m1.example.org, repo_dir: {r}/srv/debian/repo, state_dir: {r}/srv/debian/state}}\n\
         \x20 - name: fedora\n    defaults: {{profile: rpm}}\n\
         \x20   origin: {{host: rpm.example.org, origin_public_key: '{KEY}', repo_dir: {r}/rpm, state_dir: {r}/rpm-state}}\n\
         \x20   mirrors:\n      - {{host: m1.example.org, repo_dir: {r}/srv/fedora/repo, state_dir: {r}/srv/fedora/state, listen: '0.0.0.0:8790'}}\n"
    );
    let site = root.join("site.yaml");
    std::fs::write(&site, text).unwrap();
    site
}

#[test]
fn a_site_of_several_repositories_renders_one_class_per_node_with_its_repositories() {
    let tmp = tempfile::Builder::new()
        .prefix("shoal-render-puppet-repos-")
        .tempdir()
        .unwrap();
    let site = repositories_site(tmp.path());
    let out = tmp.path().join("out");
    render(&site, &out);
    let pp = out.join("manifests/site.pp");
    let (ok, text) = run(Command::new("puppet-lint")
        .args(["--fail-on-warnings"])
        .arg(&pp));
    assert!(ok && text.trim().is_empty(), "puppet-lint:\n{text}");
    for node in ["deb.example.org", "rpm.example.org", "m1.example.org"] {
        let (_, text) = run(Command::new("puppet")
            .args(["apply", "--noop", "--color=false", "--certname", node])
            .args(puppet_settings(tmp.path()))
            .arg("--modulepath")
            .arg(out.join("modules"))
            .arg("--hiera_config")
            .arg(out.join("hiera.yaml"))
            .arg(&pp)
            .env("NO_COLOR", "1"));
        assert!(
            text.contains(&format!("Compiled catalog for {node}"))
                && !text.contains("Evaluation Error"),
            "the catalog of {node} does not compile:\n{text}"
        );
        if node == "m1.example.org" {
            // Both agents, each with its own config and service.
            for name in ["debian", "fedora"] {
                assert!(
                    text.contains(&format!(
                        "Shoal::Repository[{name}]/File[{}/etc/shoal/{name}.yaml]",
                        tmp.path().display()
                    )),
                    "{text}"
                );
            }
        }
    }
}
