//! The Puppet module `shoal` (puppet/) against the real tools: `puppet parser
//! validate`, `puppet-lint --fail-on-warnings`, rspec-puppet, `puppet strings`,
//! `systemd-analyze verify` on the unit, `nginx -t` and a real nginx on the
//! vhost, and masterless `puppet apply` runs: twice (changes, then none), then
//! end to end with a real `shoal-agent` mirror, started by Puppet under
//! start-stop-daemon, that follows a real origin (started through the shared
//! `shoal_e2e::agents` harness) on a loopback address.
//!
//! Every Puppet run keeps its state in a temporary prefix (`--vardir`,
//! `--confdir`, `--codedir`, `--logdir`, `--rundir`, `--publicdir`,
//! `--ssldir`, `--hiera_config`) and the module installs into paths under that
//! prefix, so the machine is left as found. Every process a test starts is
//! stopped by its PID at the end, also when the test fails.

use shoal_config::{AgentConfig, LogFormat, Profile, Role};
use shoal_e2e::agents::{self, Proc};
use shoal_e2e::daemon::{alive, cmdline, Daemons};
use shoal_e2e::files::{mode, scratch, write_tree};
use shoal_e2e::local::{free_port_pair, header, http_get, local, wait_until, FileServer};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

fn module_dir() -> PathBuf {
    shoal_e2e::workspace_root().join("puppet")
}

/// What a finished command printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// stdout and stderr without facter's complaints about this sandbox
    /// (`/proc/1/environ` is unreadable here), for messages.
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
            .lines()
            .filter(|l| !l.contains("Facter: "))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs a command to its end, with a time limit. Output goes to files, not
/// pipes: a daemon that inherits them must not keep us waiting.
fn run(cmd: &mut Command, limit: Duration) -> Out {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let read = |mut f: fs::File| {
        use std::io::Seek;
        let mut s = String::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_string(&mut s).unwrap();
        s
    };
    Out {
        code: status.code().unwrap_or(-1),
        stdout: read(out),
        stderr: read(err),
    }
}

/// Where Puppet keeps its state, as `--FLAG sub-folder of the sandbox's puppet/`.
const PUPPET_DIRS: [(&str, &str); 7] = [
    ("--vardir", "var"),
    ("--confdir", "etc"),
    ("--codedir", "code"),
    ("--logdir", "log"),
    ("--rundir", "run"),
    ("--publicdir", "public"),
    ("--ssldir", "ssl"),
];

/// A scratch prefix with Puppet's state confined to it and the module on a
/// module path of its own (`modules/shoal` -> puppet/).
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = scratch(
            "shoal-puppet-",
            &[
                "puppet/etc",
                "puppet/data",
                "modules",
                "etc",
                "var/lib",
                "srv/shoal",
                "usr/local/bin",
            ],
        );
        std::os::unix::fs::symlink(module_dir(), dir.path().join("modules/shoal")).unwrap();
        // Hiera for the site, as a control repo would have it.
        fs::write(
            dir.path().join("puppet/etc/hiera.yaml"),
            format!(
                "---\nversion: 5\ndefaults:\n  datadir: '{}'\n  data_hash: yaml_data\n\
                 hierarchy:\n  - name: common\n    path: common.yaml\n",
                dir.path().join("puppet/data").display()
            ),
        )
        .unwrap();
        fs::write(dir.path().join("puppet/data/common.yaml"), "---\n{}\n").unwrap();
        Sandbox { dir }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn root(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn s(&self, sub: &str) -> String {
        self.path(sub).display().to_string()
    }

    fn write(&self, sub: &str, text: &str) -> PathBuf {
        let p = self.path(sub);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    /// The settings that keep Puppet's files inside the prefix.
    fn puppet_settings(&self) -> Vec<OsString> {
        let p = |d: &str| self.path("puppet").join(d).into_os_string();
        let mut v: Vec<OsString> = Vec::new();
        for (flag, dir) in PUPPET_DIRS {
            v.push(flag.into());
            v.push(p(dir));
        }
        v.push("--hiera_config".into());
        v.push(p("etc/hiera.yaml"));
        v
    }

    fn puppet(&self) -> Command {
        let mut c = Command::new("puppet");
        c.current_dir(self.dir.path()).env("NO_COLOR", "1");
        c
    }

    /// `puppet apply --detailed-exitcodes` of a manifest file.
    fn apply(&self, manifest: &Path, extra: &[&str]) -> Out {
        let mut c = self.puppet();
        c.arg("apply")
            .arg("--detailed-exitcodes")
            .arg("--color=false")
            .arg("--modulepath")
            .arg(self.path("modules"))
            .args(self.puppet_settings())
            .args(extra)
            .arg(manifest);
        run(&mut c, Duration::from_secs(180))
    }

    /// `puppet parser validate` or `puppet epp validate` (`kind`) of files.
    fn validate(&self, kind: &str, files: &[PathBuf]) -> Out {
        let mut c = self.puppet();
        c.arg(kind)
            .arg("validate")
            .args(self.puppet_settings())
            .args(files);
        run(&mut c, Duration::from_secs(120))
    }

    /// Sets the site's Hiera data (data/common.yaml).
    fn hiera(&self, yaml: &str) {
        fs::write(self.path("puppet/data/common.yaml"), yaml).unwrap();
    }
}

/// A file that stands in for the binary where a test only copies it and
/// never runs it (`--tags file` applies file resources only).
fn placeholder_binary(sb: &Sandbox) -> PathBuf {
    let p = sb.write(
        "src/placeholder-binary",
        "#!/bin/sh\necho 'a placeholder, never run' >&2\nexit 1\n",
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn pp_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in ["manifests", "functions", "types", "examples"] {
        for e in fs::read_dir(module_dir().join(d)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pp") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn parser_validate_accepts_every_manifest_and_rejects_a_broken_one() {
    let sb = Sandbox::new();
    let files = pp_files();
    assert!(files.len() >= 10, "found only {files:?}");
    let out = sb.validate("parser", &files);
    assert_eq!(
        out.code,
        0,
        "puppet parser validate failed:\n{}",
        out.text()
    );
    assert!(!out.text().contains("Error"), "{}", out.text());

    // The same command finds a syntax error, so the pass above means something.
    let broken = sb.write(
        "broken.pp",
        "class broken {\n  file { '/x': ensure => }\n}\n",
    );
    let out = sb.validate("parser", &[broken]);
    assert_ne!(out.code, 0, "a broken manifest passed:\n{}", out.text());
    assert!(out.text().contains("Syntax error"), "{}", out.text());
}

#[test]
fn epp_validate_accepts_every_template_and_rejects_a_broken_one() {
    let sb = Sandbox::new();
    let mut templates: Vec<PathBuf> = fs::read_dir(module_dir().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    templates.sort();
    assert_eq!(templates.len(), 3, "{templates:?}");
    let out = sb.validate("epp", &templates);
    assert_eq!(out.code, 0, "puppet epp validate failed:\n{}", out.text());

    let broken = sb.write(
        "broken.epp",
        "<%- | String $x | -%>\n<% if $x { %>unclosed\n",
    );
    let out = sb.validate("epp", &[broken]);
    assert_ne!(out.code, 0, "a broken template passed:\n{}", out.text());
}

#[test]
fn puppet_lint_reports_no_warnings() {
    let mut c = Command::new("puppet-lint");
    c.current_dir(module_dir()).args([
        "--fail-on-warnings",
        "manifests",
        "functions",
        "types",
        "examples",
    ]);
    let out = run(&mut c, Duration::from_secs(120));
    assert_eq!(out.code, 0, "puppet-lint found problems:\n{}", out.text());
    assert_eq!(out.text().trim(), "", "puppet-lint printed problems");

    // --fail-on-warnings turns a mere warning into a failure.
    let sb = Sandbox::new();
    sb.write(
        "lint/manifests/init.pp",
        "# @summary x\nclass lint {\n  $x = \"plain\"\n  notice($x)\n}\n",
    );
    let mut c = Command::new("puppet-lint");
    c.current_dir(sb.path("lint"))
        .args(["--fail-on-warnings", "manifests"]);
    let out = run(&mut c, Duration::from_secs(120));
    assert_eq!(out.code, 1, "{}", out.text());
    assert!(
        out.text()
            .contains("WARNING: double quoted string containing no variables"),
        "{}",
        out.text()
    );
}

#[test]
fn rspec_puppet_catalog_tests_pass() {
    let mut c = Command::new("rspec");
    c.current_dir(module_dir()).env("NO_COLOR", "1");
    let out = run(&mut c, Duration::from_secs(900));
    let text = out.text();
    let summary = text
        .lines()
        .rev()
        .find(|l| l.contains(" examples, ") || l.contains(" example, "))
        .unwrap_or_else(|| panic!("no rspec summary in:\n{text}"));
    let count = |word: &str| -> u64 {
        summary
            .split(", ")
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {word} count in {summary:?}"))
    };
    let (examples, failures) = (count("example"), count("failure"));
    assert_eq!(out.code, 0, "rspec failed ({summary}):\n{text}");
    assert_eq!(failures, 0, "{text}");
    assert!(examples > 0, "{summary}");
    assert!(
        !text.contains("error occurred outside of examples"),
        "{text}"
    );
    eprintln!("rspec: {summary}");
    // The spec helper links the module into a temporary module path instead
    // of writing fixtures into the checkout.
    assert!(!module_dir().join("spec/fixtures/modules").exists());
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if t.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if t.is_file() {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn reference_md_is_generated_from_the_current_sources() {
    // puppet strings writes .yardoc/ where it runs: run it on a copy.
    let sb = Sandbox::new();
    let copy = sb.path("strings/shoal");
    copy_tree(&module_dir(), &copy);
    fs::remove_file(copy.join("REFERENCE.md")).unwrap();
    let mut c = Command::new("puppet");
    c.current_dir(&copy).args([
        "strings",
        "generate",
        "--format",
        "markdown",
        "--out",
        "REFERENCE.md",
    ]);
    let out = run(&mut c, Duration::from_secs(300));
    assert_eq!(out.code, 0, "{}", out.text());
    assert!(out.stdout.contains("100.00% documented"), "{}", out.text());
    let fresh = fs::read_to_string(copy.join("REFERENCE.md")).unwrap();
    let committed = fs::read_to_string(module_dir().join("REFERENCE.md")).unwrap();
    assert!(
        fresh == committed,
        "puppet/REFERENCE.md is stale: regenerate it in puppet/ with \
         `puppet strings generate --format markdown --out REFERENCE.md`"
    );
}

#[test]
fn rendered_agent_configs_parse_with_shoal_config() {
    let sb = Sandbox::new();
    let bin = placeholder_binary(&sb);

    // A mirror with every optional setting, declared as class shoal.
    let site = sb.write(
        "mirror.pp",
        &format!(
            "class {{ 'shoal':\n  role => 'mirror',\n  agent_name => 'mirror-7',\n  \
             origin_public_key => '{KEY}',\n  \
             upstreams => ['http://127.0.0.1:18700', 'https://m2.example.org:8780/'],\n  \
             binary_source => '{bin}',\n  install_dir => '{p}/usr/local/bin',\n  \
             config_dir => '{p}/etc/shoal',\n  state_dir => '{p}/var/lib/shoal',\n  \
             repo_dir => '{p}/srv/shoal/repo',\n  profile => 'debian',\n  \
             listen => '127.0.0.1:18780',\n  peer_listen => '127.0.0.1:18790',\n  \
             advertise_url => 'http://mirror7.example.org:8780',\n  poll_interval => 15,\n  \
             delete_grace => '1h30m',\n  upload_limit => '4GiB',\n  download_limit => 1048576,\n  \
             log_format => 'json',\n  service_manager => 'daemon',\n}}\n",
            bin = bin.display(),
            p = sb.root(),
        ),
    );
    let out = sb.apply(&site, &["--tags", "file"]);
    assert_eq!(out.code, 2, "{}", out.text());
    let cfg_path = sb.path("etc/shoal/agent.yaml");
    let cfg = AgentConfig::load(&cfg_path)
        .unwrap_or_else(|e| panic!("{e}\n{}", fs::read_to_string(&cfg_path).unwrap()));
    assert_eq!(cfg.role, Role::Mirror);
    assert_eq!(cfg.name.as_deref(), Some("mirror-7"));
    assert_eq!(cfg.repo, sb.path("srv/shoal/repo"));
    assert_eq!(cfg.state, sb.path("var/lib/shoal"));
    assert_eq!(cfg.profile, Profile::Debian);
    assert_eq!(cfg.listen, "127.0.0.1:18780".parse::<SocketAddr>().unwrap());
    assert_eq!(cfg.peer_listen, Some("127.0.0.1:18790".parse().unwrap()));
    assert_eq!(
        cfg.advertise_url.as_deref(),
        Some("http://mirror7.example.org:8780")
    );
    assert_eq!(cfg.mirror.origin_key.as_deref(), Some(KEY));
    assert_eq!(
        cfg.mirror.upstreams,
        ["http://127.0.0.1:18700", "https://m2.example.org:8780/"]
    );
    assert_eq!(cfg.mirror.poll_interval, Duration::from_secs(15));
    assert_eq!(cfg.mirror.delete_grace, Duration::from_secs(5400));
    assert_eq!(cfg.network.upload_limit, 4 << 30);
    assert_eq!(cfg.network.download_limit, 1 << 20);
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(mode(&cfg_path), 0o640);
    assert_eq!(mode(&sb.path("usr/local/bin/shoal-agent")), 0o755);
    assert_eq!(
        fs::read(sb.path("usr/local/bin/shoal-agent")).unwrap(),
        fs::read(&bin).unwrap()
    );

    // An origin with its private key handed in, declared as shoal::origin
    // with the rest from Hiera.
    sb.hiera(&format!(
        "---\nshoal::binary_source: '{bin}'\nshoal::install_dir: '{p}/usr/local/bin'\n\
         shoal::config_dir: '{p}/etc/origin'\nshoal::state_dir: '{p}/var/lib/origin'\n\
         shoal::repo_dir: '{p}/srv/shoal/archive'\nshoal::listen: '127.0.0.1:18700'\n\
         shoal::service_manager: 'daemon'\nshoal::origin::origin_private_key: \"test key material\\n\"\n",
        bin = bin.display(),
        p = sb.root(),
    ));
    let site = sb.write(
        "origin.pp",
        "class { 'shoal::origin':\n  publish_interval => '2m',\n  manifest_ttl => '14d',\n}\n",
    );
    let out = sb.apply(&site, &["--tags", "file"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert!(
        !out.text().contains("test key material"),
        "the key leaked into the output:\n{}",
        out.text()
    );
    let cfg = AgentConfig::load(&sb.path("etc/origin/agent.yaml")).unwrap();
    assert_eq!(cfg.role, Role::Origin);
    assert_eq!(cfg.origin.key, Some(sb.path("etc/origin/origin.key")));
    assert_eq!(cfg.origin.publish_interval, Duration::from_secs(120));
    assert_eq!(cfg.origin.manifest_ttl, Duration::from_secs(14 * 86400));
    assert_eq!(cfg.listen, "127.0.0.1:18700".parse::<SocketAddr>().unwrap());
    assert_eq!(cfg.profile, Profile::Generic);
    let key = sb.path("etc/origin/origin.key");
    assert_eq!(fs::read_to_string(&key).unwrap(), "test key material\n");
    assert_eq!(mode(&key), 0o600);
    // The origin only reads its repository: the module leaves it alone.
    assert!(!sb.path("srv/shoal/archive").exists());
}

#[test]
fn bad_parameters_fail_the_run_with_a_clear_message() {
    let sb = Sandbox::new();
    let bin = placeholder_binary(&sb);
    let cases = [
        (
            "upstreams => ['http://127.0.0.1:1'],".to_string(),
            "a mirror needs the origin's public key: set shoal::origin_public_key",
        ),
        (
            format!("origin_public_key => '{KEY}', upstreams => ['ftp://x'],"),
            "parameter 'upstreams' index 0 expects a match for Shoal::Httpurl",
        ),
        (
            format!("origin_public_key => '{KEY}', upstreams => ['http://127.0.0.1:1'], poll_interval => 'soon',"),
            "parameter 'poll_interval' expects a Shoal::Duration",
        ),
    ];
    for (params, message) in &cases {
        let site = sb.write(
            "bad.pp",
            &format!(
                "class {{ 'shoal':\n  {params}\n  binary_source => '{}',\n  install_dir => '{}',\n  \
                 config_dir => '{}',\n  service_manager => 'daemon',\n}}\n",
                bin.display(),
                sb.s("usr/local/bin"),
                sb.s("etc/shoal"),
            ),
        );
        let out = sb.apply(&site, &[]);
        assert_eq!(out.code, 1, "{params}: {}", out.text());
        assert!(
            out.text().contains(message),
            "{params}: expected {message:?} in:\n{}",
            out.text()
        );
        assert!(
            !sb.path("etc/shoal").exists(),
            "{params}: a failed compile changed nothing"
        );
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    for sibling in [false, true] {
        let sb = Sandbox::new();
        let bin = placeholder_binary(&sb);
        let (repo, state) = if sibling {
            (sb.s("srv/shoal/repo"), sb.s("srv/shoal/state"))
        } else {
            (sb.s("srv/shoal/repo"), sb.s("var/lib/shoal"))
        };
        fs::create_dir_all(sb.path("etc/systemd/system")).unwrap();
        let site = sb.write(
            "site.pp",
            &format!(
                "class {{ 'shoal::mirror':\n  origin_public_key => '{KEY}',\n  \
                 upstreams => ['http://127.0.0.1:18700'],\n}}\n"
            ),
        );
        sb.hiera(&format!(
            "---\nshoal::binary_source: '{}'\nshoal::install_dir: '{}'\nshoal::config_dir: '{}'\n\
             shoal::unit_dir: '{}'\nshoal::repo_dir: '{repo}'\nshoal::state_dir: '{state}'\n\
             shoal::service_manager: 'systemd'\nshoal::user: 'daemon'\nshoal::group: 'daemon'\n",
            bin.display(),
            sb.s("usr/local/bin"),
            sb.s("etc/shoal"),
            sb.s("etc/systemd/system"),
        ));
        // Only the file resources: this machine has no systemd to manage.
        let out = sb.apply(&site, &["--tags", "file"]);
        assert_eq!(out.code, 2, "{}", out.text());
        let unit = sb.path("etc/systemd/system/shoal-agent.service");
        let text = fs::read_to_string(&unit).unwrap();
        assert!(
            text.contains(&format!(
                "ExecStart={} --config {} run\n",
                sb.s("usr/local/bin/shoal-agent"),
                sb.s("etc/shoal/agent.yaml")
            )),
            "{text}"
        );
        for line in [
            "User=daemon",
            "Group=daemon",
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "ProtectProc=invisible",
            "LimitNOFILE=524288",
            "CapabilityBoundingSet=",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // One writable entry, the deepest common folder, so the hard links
        // between the state and the repository stay on one mount.
        let rw = if sibling {
            sb.s("srv/shoal")
        } else {
            sb.root()
        };
        assert!(
            text.contains(&format!("\nProtectSystem=strict\nReadWritePaths={rw}\n")),
            "{text}"
        );
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("ReadWritePaths="))
                .count(),
            1,
            "{text}"
        );
        // The agent starts only once its folders are mounted (a GlusterFS
        // repository comes from fstab at boot), whatever ReadWritePaths merged.
        assert!(
            text.contains(&format!("\nRequiresMountsFor={repo} {state}\n")),
            "{text}"
        );
        assert!(
            text.contains("\nAfter=network-online.target remote-fs.target\n"),
            "{text}"
        );

        let verify = |path: &Path| {
            let mut c = Command::new("systemd-analyze");
            c.arg("verify").arg(path);
            run(&mut c, Duration::from_secs(60))
        };
        let out = verify(&unit);
        assert_eq!(
            out.code,
            0,
            "systemd-analyze verify failed:\n{}",
            out.text()
        );
        assert_eq!(out.text().trim(), "", "systemd-analyze verify complained");

        // systemd-analyze reports a bad setting and a missing binary, so the
        // silence above means something.
        let broken = sb.write(
            "broken/shoal-agent.service",
            &text.replace("Restart=on-failure", "Restart=sometimes"),
        );
        let out = verify(&broken);
        assert!(out.text().contains("sometimes"), "{}", out.text());
        let broken = sb.write(
            "broken/shoal-agent.service",
            &text.replace(
                &sb.s("usr/local/bin/shoal-agent"),
                &sb.s("nonexistent/shoal-agent"),
            ),
        );
        let out = verify(&broken);
        assert_ne!(out.code, 0, "{}", out.text());
    }
}

#[test]
fn nginx_vhost_passes_nginx_t_and_sends_cache_headers() {
    let sb = Sandbox::new();
    // nginx runs its workers as nobody: they must be able to read the tree.
    fs::set_permissions(sb.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let www = sb.path("www");
    let files = [
        ("dists/stable/InRelease", "no-cache"),
        ("dists/stable/Release", "no-cache"),
        ("dists/stable/main/binary-amd64/Packages.xz", "no-cache"),
        ("dists/stable/main/source/Sources.gz", "no-cache"),
        ("dists/stable/main/i18n/Translation-en.bz2", "no-cache"),
        (
            "dists/stable/main/binary-amd64/by-hash/SHA256/0a1b2c3d",
            "public, max-age=86400",
        ),
        (
            "pool/main/h/hello/hello_2.10-3_amd64.deb",
            "public, max-age=86400",
        ),
        ("el9/repodata/repomd.xml", "no-cache"),
        ("el9/repodata/0a1b2c-primary.xml.gz", "no-cache"),
        (
            "el9/Packages/h/hello-2.10-1.el9.x86_64.rpm",
            "public, max-age=86400",
        ),
        ("project/trace/mirror1.example.org", "no-cache"),
    ];
    // The class's repo_dir at /, and two of shoal::repositories under
    // /<name>/ (shoal::web passes them so; web_spec.rb checks it does).
    let trees = [("", "www"), ("/debian", "www-debian"), ("/el.9", "www-el9")];
    for (f, _) in files {
        for (_, tree) in trees {
            sb.write(&format!("{tree}/{f}"), &format!("{tree}: {f}\n"));
        }
    }
    let port = free_port_pair();
    // The vhost as shoal::web renders it.
    let manifest = format!(
        "file {{ '{}':\n  content => epp('shoal/nginx-vhost.conf.epp', {{\n    \
         'server_name' => 'mirror.test', 'port' => {port}, 'root' => '{}',\n    \
         'repositories' => {{ 'debian' => '{}', 'el.9' => '{}' }} }}),\n}}\n",
        sb.s("nginx/shoal.conf"),
        www.display(),
        sb.s("www-debian"),
        sb.s("www-el9"),
    );
    fs::create_dir_all(sb.path("nginx/logs")).unwrap();
    let out = sb.apply(&sb.write("vhost.pp", &manifest), &[]);
    assert_eq!(out.code, 2, "{}", out.text());
    let vhost = fs::read_to_string(sb.path("nginx/shoal.conf")).unwrap();

    let main_conf = |include: &Path| {
        let n = sb.path("nginx");
        format!(
            "pid {n}/nginx.pid;\nerror_log {n}/logs/error.log;\nevents {{}}\nhttp {{\n  \
             include /etc/nginx/mime.types;\n  access_log {n}/logs/access.log;\n  \
             client_body_temp_path {n}/body;\n  proxy_temp_path {n}/proxy;\n  \
             fastcgi_temp_path {n}/fastcgi;\n  uwsgi_temp_path {n}/uwsgi;\n  \
             scgi_temp_path {n}/scgi;\n  include {};\n}}\n",
            include.display(),
            n = n.display()
        )
    };
    let conf = sb.write("nginx/nginx.conf", &main_conf(&sb.path("nginx/shoal.conf")));
    let nginx = |args: &[&str], conf: &Path| {
        let mut c = Command::new("nginx");
        c.arg("-p")
            .arg(sb.path("nginx"))
            .arg("-c")
            .arg(conf)
            .arg("-e")
            .arg(sb.path("nginx/logs/error.log"))
            .args(args);
        c
    };
    let out = run(&mut nginx(&["-t"], &conf), Duration::from_secs(60));
    assert_eq!(out.code, 0, "nginx -t failed:\n{}\n{vhost}", out.text());
    assert!(out.stderr.contains("test is successful"), "{}", out.text());

    // Serve it for real, bound to 127.0.0.1 only (the vhost listens on every
    // address), and check what clients get.
    let local = vhost
        .replace(
            &format!("listen {port};"),
            &format!("listen 127.0.0.1:{port};"),
        )
        .replace(&format!("listen [::]:{port};"), "");
    assert_ne!(local, vhost);
    let local_vhost = sb.write("nginx/local.conf", &local);
    let conf = sb.write("nginx/nginx-local.conf", &main_conf(&local_vhost));
    let _nginx = Proc::spawn(
        "nginx",
        nginx(&["-g", "daemon off;"], &conf),
        &sb.path("nginx/logs/output.log"),
    );
    wait_until("nginx to answer", Duration::from_secs(20), || {
        http_get(port, "mirror.test", "/").map_err(|e| e.to_string())
    });
    for (prefix, tree) in trees {
        for (f, cache) in files {
            let url = format!("{prefix}/{f}");
            let (code, head, body) = http_get(port, "mirror.test", &url).unwrap();
            assert_eq!(code, 200, "{url}: {head}");
            assert_eq!(body, format!("{tree}: {f}\n").as_bytes(), "{url}");
            assert_eq!(header(&head, "Cache-Control"), Some(cache), "{url}: {head}");
        }
    }
}

#[test]
fn binary_from_a_url_is_verified_by_its_checksum() {
    let sb = Sandbox::new();
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let src = sb.path("payload");
    fs::write(&src, &payload).unwrap();
    let out = run(Command::new("sha256sum").arg(&src), Duration::from_secs(30));
    assert_eq!(out.code, 0, "{}", out.text());
    let sum = out.stdout.split_whitespace().next().unwrap().to_string();
    let server = FileServer::start("/dl/shoal-agent", payload.clone());
    let site = sb.write(
        "site.pp",
        &format!(
            "class {{ 'shoal::mirror':\n  origin_public_key => '{KEY}',\n  \
             upstreams => ['http://127.0.0.1:18700'],\n}}\n"
        ),
    );
    let data = |checksum: &str| {
        format!(
            "---\nshoal::binary_source: 'http://127.0.0.1:{}/dl/shoal-agent'\n\
             shoal::binary_checksum: '{checksum}'\nshoal::install_dir: '{}'\n\
             shoal::config_dir: '{}'\nshoal::state_dir: '{}'\nshoal::repo_dir: '{}'\n\
             shoal::service_manager: 'daemon'\n",
            server.port,
            sb.s("usr/local/bin"),
            sb.s("etc/shoal"),
            sb.s("var/lib/shoal"),
            sb.s("srv/shoal/repo"),
        )
    };
    let installed = sb.path("usr/local/bin/shoal-agent");

    sb.hiera(&data(&format!("sha256:{sum}")));
    let out = sb.apply(&site, &["--tags", "file"]);
    assert_eq!(out.code, 2, "{}", out.text());
    assert_eq!(fs::read(&installed).unwrap(), payload);
    assert_eq!(mode(&installed), 0o755);
    assert!(server.requests() > 0);

    // While the installed binary matches, nothing is downloaded.
    let before = server.requests();
    let out = sb.apply(&site, &["--tags", "file"]);
    assert_eq!(out.code, 0, "{}", out.text());
    assert_eq!(server.requests(), before, "the second run downloaded again");

    // A download that does not match is refused and not installed.
    fs::remove_file(&installed).unwrap();
    let wrong: String = sum
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    sb.hiera(&data(&format!("sha256:{wrong}")));
    let out = sb.apply(&site, &["--tags", "file"]);
    assert_eq!(
        out.code & 4,
        4,
        "expected a failed resource:\n{}",
        out.text()
    );
    assert!(
        out.text().contains("did not match desired checksum"),
        "{}",
        out.text()
    );
    assert!(!installed.exists());
}

#[test]
fn puppet_apply_runs_a_mirror_that_follows_an_origin() {
    let agent = shoal_e2e::bin("shoal-agent");
    let sb = Sandbox::new();

    // A real origin with a small repository, from the shared harness.
    let origin_repo = sb.path("origin/repo");
    let files = [
        (
            "dists/stable/InRelease",
            "Origin: shoal test\nSuite: stable\n",
        ),
        (
            "dists/stable/main/binary-amd64/Packages",
            "Package: hello\nVersion: 2.10-3\n",
        ),
        (
            "pool/main/h/hello/hello_2.10-3_amd64.deb",
            "not really a deb, but bytes all the same\n",
        ),
        ("README", "served by a shoal origin for the puppet test\n"),
    ];
    write_tree(&origin_repo, &files);
    let (key_file, public) = agents::keygen(&sb.path("origin"));
    let origin = agents::start_origin(
        &sb.path("origin"),
        "origin",
        &origin_repo,
        &key_file,
        "debian",
        &[],
    );
    let origin_gen = agents::publish(&origin.state);
    origin.wait_generation(origin_gen);

    // The mirror, installed and started by Puppet: shoal::mirror in the site
    // manifest, the rest in the site's Hiera data, as a control repo has it.
    let mirror_port = free_port_pair();
    let hiera = |extra: &str| {
        format!(
            "---\nshoal::binary_source: '{}'\nshoal::install_dir: '{}'\nshoal::config_dir: '{}'\n\
             shoal::state_dir: '{}'\nshoal::repo_dir: '{}'\nshoal::profile: 'debian'\n\
             shoal::agent_name: 'puppet-mirror'\nshoal::listen: '127.0.0.1:{mirror_port}'\n\
             shoal::peer_listen: '127.0.0.1:{}'\nshoal::service_manager: 'daemon'\n{extra}",
            agent.display(),
            sb.s("usr/local/bin"),
            sb.s("etc/shoal"),
            sb.s("var/lib/shoal"),
            sb.s("srv/shoal/repo"),
            mirror_port + 1,
        )
    };
    let site = sb.write(
        "site.pp",
        &format!(
            "class {{ 'shoal::mirror':\n  origin_public_key => '{public}',\n  \
             upstreams         => ['{}'],\n}}\n",
            origin.url()
        ),
    );
    let pidfile = sb.path("var/lib/shoal/agent.pid");
    let mut daemon = Daemons::new();
    daemon.watch(&pidfile, &sb.path("etc/shoal/agent.yaml"));
    let mirror_log = || fs::read_to_string(sb.path("var/lib/shoal/agent.log")).unwrap_or_default();

    sb.hiera(&hiera("shoal::poll_interval: '2s'\n"));
    let first = sb.apply(&site, &[]);
    let _ = daemon.pid(&pidfile);
    assert_eq!(
        first.code,
        2,
        "first run: expected changes (exit 2):\n{}\nagent log:\n{}",
        first.text(),
        mirror_log()
    );
    assert!(
        first
            .text()
            .contains("Service[shoal-agent]/ensure: ensure changed 'stopped' to 'running'"),
        "{}",
        first.text()
    );
    AgentConfig::load(&sb.path("etc/shoal/agent.yaml")).unwrap();
    let pid = daemon.pid(&pidfile).expect("the pidfile names the agent");
    assert!(
        daemon.ours(pid),
        "pid {pid} is not the agent: {}",
        cmdline(pid)
    );

    let second = sb.apply(&site, &[]);
    assert_eq!(
        second.code,
        0,
        "second run: expected no changes (exit 0):\n{}\nagent log:\n{}",
        second.text(),
        mirror_log()
    );
    assert_eq!(
        daemon.pid(&pidfile),
        Some(pid),
        "the second run restarted the agent"
    );

    // End to end: the mirror Puppet started reaches the origin's generation.
    let reached = |what: &str| {
        wait_until(what, Duration::from_secs(120), || {
            let s = agents::status(local(mirror_port)).ok_or("no /status yet")?;
            if s.generation_applied >= origin_gen {
                Ok(s)
            } else {
                Err(format!(
                    "{s:?}\nmirror log:\n{}\norigin log:\n{}",
                    mirror_log(),
                    origin.proc.log_tail(30)
                ))
            }
        })
    };
    let s = reached("the mirror to apply the origin's generation");
    assert_eq!(s.role, "mirror", "{s:?}");
    for (f, text) in files {
        let got = fs::read_to_string(sb.path("srv/shoal/repo").join(f))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(got, text, "{f}");
    }

    // A config change restarts the agent.
    sb.hiera(&hiera("shoal::poll_interval: '3s'\n"));
    let third = sb.apply(&site, &[]);
    assert_eq!(third.code, 2, "{}", third.text());
    assert!(
        third
            .text()
            .contains("Service[shoal-agent]: Triggered 'refresh'"),
        "{}",
        third.text()
    );
    let new_pid = daemon.pid(&pidfile).expect("pidfile after the restart");
    assert_ne!(new_pid, pid, "the agent was not restarted");
    assert!(!alive(pid), "the old agent {pid} still runs");
    assert!(daemon.ours(new_pid));
    let cfg = AgentConfig::load(&sb.path("etc/shoal/agent.yaml")).unwrap();
    assert_eq!(cfg.mirror.poll_interval, Duration::from_secs(3));
    reached("the restarted mirror to report the generation");

    // service_ensure => stopped stops it through the pidfile.
    sb.hiera(&hiera(
        "shoal::poll_interval: '3s'\nshoal::service_ensure: 'stopped'\n",
    ));
    let fourth = sb.apply(&site, &[]);
    assert_eq!(fourth.code, 2, "{}", fourth.text());
    assert!(
        fourth
            .text()
            .contains("ensure changed 'running' to 'stopped'"),
        "{}",
        fourth.text()
    );
    assert!(
        !alive(new_pid),
        "the agent {new_pid} still runs after service_ensure => stopped"
    );
    assert!(!pidfile.exists(), "the pidfile is left behind");

    // The single repository of a host removed: shoal::ensure => absent runs
    // the agent down (started again first), removes its config, keeps its
    // data, and a second run changes nothing.
    sb.hiera(&hiera("shoal::poll_interval: '3s'\n"));
    let again = sb.apply(&site, &[]);
    assert_eq!(again.code, 2, "{}", again.text());
    let pid = daemon.pid(&pidfile).expect("started again");
    sb.hiera(&hiera(
        "shoal::poll_interval: '3s'\nshoal::ensure: 'absent'\n",
    ));
    let absent = sb.apply(&site, &[]);
    assert_eq!(absent.code, 2, "{}", absent.text());
    assert!(
        !alive(pid),
        "the agent {pid} still runs after ensure => absent"
    );
    assert!(!sb.path("etc/shoal/agent.yaml").exists() && !pidfile.exists());
    assert!(
        sb.path("srv/shoal/repo/README").is_file(),
        "the data was removed"
    );
    let again = sb.apply(&site, &[]);
    assert_eq!(
        again.code,
        0,
        "ensure => absent is not idempotent:\n{}",
        again.text()
    );

    drop(daemon);
    drop(origin);
}

/// Two repositories on one host from the class's `repositories` hash: two
/// agents (own config, pidfile, ports, trace file), each following its own
/// origin and hard-linking its live tree into its own pack store. Then one
/// goes `ensure => absent` (stopped, config gone, data kept), idempotently,
/// and `purge_data` removes its data.
#[test]
fn two_repositories_on_one_host_sync_hard_link_and_one_is_removed_cleanly() {
    let agent = shoal_e2e::bin("shoal-agent");
    let sb = Sandbox::new();
    let mut daemons = Daemons::new();
    let mut origins = Vec::new();
    let names = ["alpha", "beta"];
    for name in names {
        let repo = sb.path(&format!("origin-{name}/repo"));
        write_tree(
            &repo,
            &[
                ("index", &format!("{name} index\n")),
                ("pool/file", &format!("{name} payload\n")),
            ],
        );
        let (key_file, public) = agents::keygen(&sb.path(&format!("origin-{name}")));
        let origin = agents::start_origin(
            &sb.path(&format!("origin-{name}")),
            name,
            &repo,
            &key_file,
            "generic",
            &[],
        );
        let g = agents::publish(&origin.state);
        origin.wait_generation(g);
        origins.push((origin, public, g, free_port_pair()));
    }
    let pidfile = |n: &str| sb.path(&format!("srv/{n}/state/agent.pid"));
    let config = |n: &str| sb.path(&format!("etc/shoal/{n}.yaml"));
    for n in names {
        daemons.watch(&pidfile(n), &config(n));
        // The folder holding a repository's two folders is the operator's,
        // as /srv/shoal is (Puppet's file type makes no parents).
        fs::create_dir_all(sb.path(&format!("srv/{n}"))).unwrap();
    }
    let hiera = |beta_extra: &str| {
        let mut y = format!(
            "---\nshoal::binary_source: '{}'\nshoal::install_dir: '{}'\nshoal::config_dir: '{}'\n\
             shoal::service_manager: 'daemon'\nshoal::poll_interval: '1s'\nshoal::delete_grace: '0s'\n\
             shoal::repositories:\n",
            agent.display(),
            sb.s("usr/local/bin"),
            sb.s("etc/shoal"),
        );
        for (n, (origin, public, _, port)) in names.iter().zip(&origins) {
            y.push_str(&format!(
                "  {n}:\n    agent_name: 'puppet-{n}'\n    repo_dir: '{}'\n    state_dir: '{}'\n    \
                 listen: '127.0.0.1:{port}'\n    origin_public_key: '{public}'\n    upstreams: ['{}']\n",
                sb.s(&format!("srv/{n}/repo")),
                sb.s(&format!("srv/{n}/state")),
                origin.url()
            ));
            if *n == "beta" {
                y.push_str(beta_extra);
            }
        }
        y
    };
    let site = sb.write("site.pp", "include shoal\n");

    sb.hiera(&hiera(""));
    let first = sb.apply(&site, &[]);
    daemons.note();
    assert_eq!(first.code, 2, "{}", first.text());
    for n in names {
        assert!(
            first.text().contains(&format!(
                "Service[shoal-agent@{n}]/ensure: ensure changed 'stopped' to 'running'"
            )),
            "{}",
            first.text()
        );
    }
    let pid_a = daemons.pid(&pidfile("alpha")).expect("alpha runs");
    let pid_b = daemons.pid(&pidfile("beta")).expect("beta runs");
    assert!(pid_a != pid_b && daemons.ours(pid_a) && daemons.ours(pid_b));
    for (n, (_, _, g, port)) in names.iter().zip(&origins) {
        wait_until(
            &format!("{n} to apply generation {g}"),
            Duration::from_secs(120),
            || match agents::status(local(*port)) {
                Some(s) if s.generation_applied >= *g => Ok(()),
                s => Err(format!("{s:?}")),
            },
        );
        let live = sb.path(&format!("srv/{n}/repo"));
        assert_eq!(
            fs::read_to_string(live.join("pool/file")).unwrap(),
            format!("{n} payload\n")
        );
        assert!(live.join(format!("project/trace/puppet-{n}")).is_file());
        shoal_e2e::files::assert_linked_into(
            &live.join("pool/file"),
            &sb.path(&format!("srv/{n}/state")),
        );
        shoal_e2e::files::assert_stored_once(
            n,
            &live,
            &sb.path(&format!("srv/{n}/state")),
            &[&live.join("pool/file")],
        );
    }
    let second = sb.apply(&site, &[]);
    assert_eq!(
        second.code,
        0,
        "second run changed something:\n{}",
        second.text()
    );

    // beta absent: stopped, config gone, data kept; alpha untouched.
    sb.hiera(&hiera("    ensure: 'absent'\n"));
    let third = sb.apply(&site, &[]);
    assert_eq!(third.code, 2, "{}", third.text());
    assert!(!alive(pid_b), "beta's agent {pid_b} still runs");
    assert!(!config("beta").exists() && !pidfile("beta").exists());
    assert!(
        sb.path("srv/beta/repo/pool/file").is_file(),
        "beta's data was removed"
    );
    assert_eq!(
        daemons.pid(&pidfile("alpha")),
        Some(pid_a),
        "alpha was restarted"
    );
    let again = sb.apply(&site, &[]);
    assert_eq!(
        again.code,
        0,
        "removal is not idempotent:\n{}",
        again.text()
    );

    sb.hiera(&hiera("    ensure: 'absent'\n    purge_data: true\n"));
    let purge = sb.apply(&site, &[]);
    assert_eq!(purge.code, 2, "{}", purge.text());
    assert!(!sb.path("srv/beta/repo").exists() && !sb.path("srv/beta/state").exists());
    let again = sb.apply(&site, &[]);
    assert_eq!(again.code, 0, "{}", again.text());
    assert!(alive(pid_a));

    drop(daemons);
    assert!(!alive(pid_a));
}

#[test]
fn repositories_that_share_a_folder_or_a_port_are_refused() {
    let sb = Sandbox::new();
    let bin = placeholder_binary(&sb);
    let site = sb.write("site.pp", "include shoal\n");
    let entry = |n: &str, repo: &str, state: &str, listen: &str| {
        format!(
            "  {n}:\n    repo_dir: '{}'\n    state_dir: '{}'\n    listen: '{listen}'\n    \
             origin_public_key: '{KEY}'\n    upstreams: ['http://127.0.0.1:1']\n",
            sb.s(repo),
            sb.s(state)
        )
    };
    for (b, want) in [
        (
            entry("b", "b/repo", "a/state", "127.0.0.1:9000"),
            "a.state_dir",
        ),
        (
            entry("b", "a/repo/sub", "b/state", "127.0.0.1:9000"),
            "one contains the other",
        ),
        (
            entry("b", "b/repo", "b/state", "127.0.0.1:8781"),
            "both use port 8781",
        ),
    ] {
        sb.hiera(&format!(
            "---\nshoal::binary_source: '{}'\nshoal::install_dir: '{}'\nshoal::config_dir: '{}'\n\
             shoal::service_manager: 'daemon'\nshoal::repositories:\n{}{b}",
            bin.display(),
            sb.s("usr/local/bin"),
            sb.s("etc/shoal"),
            entry("a", "a/repo", "a/state", "127.0.0.1:8780"),
        ));
        let out = sb.apply(&site, &[]);
        assert_eq!(out.code, 1, "{}", out.text());
        assert!(
            out.text().contains("shoal::repositories: ") && out.text().contains(want),
            "{}",
            out.text()
        );
        assert!(
            !sb.path("etc/shoal").exists(),
            "something was written before the check"
        );
    }
}
