//! The Ansible role `shoal` (ansible/roles/shoal) against the real tools:
//! `ansible-playbook --syntax-check`, `ansible-lint --profile production`,
//! `systemd-analyze`, `nginx -t`, and real playbook runs with `-c local` that
//! install and start a real `shoal-agent` mirror (service manager `daemon`)
//! which then follows a real origin (started through the shared
//! `shoal_e2e::agents` harness) on a loopback address.
//!
//! Everything the runs write goes under a temporary prefix: ANSIBLE_HOME,
//! the local/remote temp dirs and HOME point into it, fact caching is in
//! memory and retry files are off. Every process a test starts is stopped by
//! its PID at the end, also when the test fails.

use shoal_config::{AgentConfig, Role};
use shoal_e2e::agents;
use shoal_e2e::daemon::{alive, read_pid, Daemons};
use shoal_e2e::files::{assert_same_file, mode, scratch, write_tree};
use shoal_e2e::local::{free_port_pair, local, wait_until, FileServer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const KEY: &str = "ed25519:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn ansible_dir() -> PathBuf {
    shoal_e2e::workspace_root().join("ansible")
}

/// A scratch area for one test: the Ansible environment and the prefix that
/// the role installs into.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = scratch(
            "shoal-ansible-",
            &["home", "home/tmp", "home/remote-tmp", "cache", "prefix"],
        );
        Sandbox { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The temp prefix the role installs into.
    fn prefix(&self, sub: &str) -> PathBuf {
        self.path().join("prefix").join(sub)
    }

    /// A command with Ansible's state confined to the sandbox.
    fn command(&self, program: &str) -> Command {
        let home = self.path().join("home");
        let mut c = Command::new(program);
        c.current_dir(self.path())
            .env("HOME", &home)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("remote-tmp"))
            .env("ANSIBLE_ROLES_PATH", ansible_dir().join("roles"))
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("ANSIBLE_CACHE_PLUGIN", "memory")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_FORCE_COLOR", "0")
            .env("ANSIBLE_HOST_KEY_CHECKING", "false")
            .env("ANSIBLE_PYTHON_INTERPRETER", "/usr/bin/python3")
            .env("XDG_CACHE_HOME", self.path().join("cache"))
            .env("NO_COLOR", "1")
            .env_remove("ANSIBLE_CONFIG")
            .stdin(Stdio::null());
        c
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes an inventory in the shape `shoal render ansible` produces:
    /// groups `shoal_origin` and `shoal_mirrors`, everything else host vars.
    fn inventory(
        &self,
        origin: &[(&str, serde_yaml::Value)],
        mirrors: &[(&str, serde_yaml::Value)],
    ) -> PathBuf {
        let group = |hosts: &[(&str, serde_yaml::Value)]| {
            let mut h = serde_yaml::Mapping::new();
            for (name, vars) in hosts {
                let mut v = vars.as_mapping().cloned().unwrap_or_default();
                v.insert("ansible_connection".into(), "local".into());
                h.insert((*name).into(), v.into());
            }
            let mut g = serde_yaml::Mapping::new();
            g.insert("hosts".into(), h.into());
            serde_yaml::Value::from(g)
        };
        let mut children = serde_yaml::Mapping::new();
        children.insert("shoal_origin".into(), group(origin));
        children.insert("shoal_mirrors".into(), group(mirrors));
        let mut all = serde_yaml::Mapping::new();
        all.insert("children".into(), children.into());
        let mut top = serde_yaml::Mapping::new();
        top.insert("all".into(), all.into());
        self.write("inventory.yml", &serde_yaml::to_string(&top).unwrap())
    }

    /// The playbook `shoal render ansible` writes: role `shoal` on both groups.
    fn site(&self, gather_facts: bool) -> PathBuf {
        self.write(
            "site.yml",
            &format!(
                "---\n\
                 - name: Shoal origin\n  hosts: shoal_origin\n  gather_facts: {gather_facts}\n  roles:\n    - shoal\n\
                 - name: Shoal mirrors\n  hosts: shoal_mirrors\n  gather_facts: {gather_facts}\n  roles:\n    - shoal\n"
            ),
        )
    }

    fn playbook(&self, inventory: &Path, playbook: &Path, extra: &[&str]) -> Run {
        let mut c = self.command("ansible-playbook");
        c.arg("-i").arg(inventory).arg(playbook).args(extra);
        Run::of(&mut c)
    }
}

/// The outcome of one tool run, with its output kept for messages.
struct Run {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(c: &mut Command) -> Run {
        let Output {
            status,
            stdout,
            stderr,
        } = c.output().unwrap_or_else(|e| {
            panic!(
                "cannot run {:?}: {e} (install the Debian package)",
                c.get_program()
            )
        });
        Run {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    fn all(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    fn ok(self) -> Run {
        assert!(
            self.status.success(),
            "command failed ({}):\n{}",
            self.status,
            self.all()
        );
        self
    }

    /// The PLAY RECAP counters per host.
    fn recap(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let mut out = BTreeMap::new();
        let recap = self
            .stdout
            .split("PLAY RECAP")
            .nth(1)
            .unwrap_or_else(|| panic!("no PLAY RECAP in the output:\n{}", self.all()));
        for line in recap.lines().skip(1) {
            let Some((host, counters)) = line.split_once(" : ") else {
                continue;
            };
            let mut m = BTreeMap::new();
            for kv in counters.split_whitespace() {
                if let Some((k, v)) = kv.split_once('=') {
                    m.insert(k.to_string(), v.parse().unwrap());
                }
            }
            out.insert(host.trim().to_string(), m);
        }
        assert!(!out.is_empty(), "empty PLAY RECAP:\n{}", self.all());
        out
    }

    fn recap_text(&self) -> String {
        let recap = self.stdout.split("PLAY RECAP").nth(1).unwrap_or("");
        format!("PLAY RECAP{}", recap.trim_end())
    }

    fn counter(&self, host: &str, what: &str) -> u64 {
        self.recap()
            .get(host)
            .and_then(|m| m.get(what))
            .copied()
            .unwrap_or_else(|| panic!("no {what} for {host} in the recap:\n{}", self.all()))
    }
}

fn yaml(text: &str) -> serde_yaml::Value {
    serde_yaml::from_str(text).unwrap()
}

/// Host vars of a mirror whose paths are all under the sandbox prefix.
fn mirror_vars(
    sb: &Sandbox,
    binary: &Path,
    listen: &str,
    upstream: &str,
    key: &str,
) -> serde_yaml::Value {
    yaml(&format!(
        "shoal_role: mirror\n\
         shoal_agent_name: test-mirror\n\
         shoal_binary_source: {bin}\n\
         shoal_repo_dir: {p}/srv/repo\n\
         shoal_state_dir: {p}/var/lib/shoal\n\
         shoal_install_dir: {p}/usr/local/bin\n\
         shoal_config_dir: {p}/etc/shoal\n\
         shoal_unit_dir: {p}/etc/systemd/system\n\
         shoal_service_manager: daemon\n\
         shoal_listen: '{listen}'\n\
         shoal_origin_public_key: '{key}'\n\
         shoal_upstreams: ['{upstream}']\n\
         shoal_poll_interval: 1s\n\
         shoal_delete_grace: 0s\n",
        bin = binary.display(),
        p = sb.prefix("").display(),
    ))
}

fn set(v: &mut serde_yaml::Value, key: &str, value: serde_yaml::Value) {
    v.as_mapping_mut().unwrap().insert(key.into(), value);
}

// ---------------------------------------------------------------------------
// Static checks

#[test]
fn syntax_check_of_playbooks_using_the_role() {
    let sb = Sandbox::new();
    let inv = sb.inventory(&[], &[("localhost", yaml("shoal_binary_source: /x"))]);
    let site = sb.site(true);
    let run = sb.playbook(&inv, &site, &["--syntax-check"]).ok();
    assert!(run.stdout.contains("playbook: "), "{}", run.all());

    // The example playbook and inventory shipped next to the role.
    let mut c = sb.command("ansible-playbook");
    c.arg("-i")
        .arg(ansible_dir().join("inventory.example.yml"))
        .arg(ansible_dir().join("site.example.yml"))
        .arg("--syntax-check");
    Run::of(&mut c).ok();

    // A playbook naming a role that does not exist must fail the same check,
    // so the check above really resolved the role.
    let bad = sb.write(
        "bad.yml",
        "---\n- name: X\n  hosts: all\n  roles:\n    - shoal_no_such_role\n",
    );
    let run = sb.playbook(&inv, &bad, &["--syntax-check"]);
    assert!(!run.status.success(), "{}", run.all());
    assert!(run.all().contains("shoal_no_such_role"), "{}", run.all());
}

#[test]
fn ansible_lint_production_profile_is_clean() {
    let sb = Sandbox::new();
    let mut c = sb.command("ansible-lint");
    c.current_dir(ansible_dir()).args([
        "--offline",
        "--nocolor",
        "--profile",
        "production",
        "roles/shoal",
        "site.example.yml",
    ]);
    let run = Run::of(&mut c);
    println!("{}", run.all());
    assert!(
        run.status.success(),
        "ansible-lint found problems:\n{}",
        run.all()
    );
    assert!(
        run.all()
            .contains("Passed with production profile: 0 failure(s), 0 warning(s)"),
        "{}",
        run.all()
    );
}

// ---------------------------------------------------------------------------
// Rendering: every file the role writes is checked by the tool that reads it.

#[test]
fn rendered_agent_configs_parse_with_the_agent_schema() {
    let sb = Sandbox::new();
    let p = sb.prefix("");
    let origin = yaml(&format!(
        "shoal_role: origin\n\
         shoal_binary_source: {p}/not-installed-by-this-test\n\
         shoal_repo_dir: {p}/origin/repo\n\
         shoal_state_dir: {p}/origin/state\n\
         shoal_config_dir: {p}/origin/etc\n\
         shoal_profile: debian\n\
         shoal_listen: '127.0.0.1:18700'\n\
         shoal_origin_private_key: 'private key text'\n\
         shoal_publish_interval: 0s\n\
         shoal_manifest_ttl: 2d\n\
         shoal_upload_limit: 10MiB\n\
         shoal_log_format: json\n\
         shoal_service_ensure: stopped\n",
        p = p.display()
    ));
    let mirror = yaml(&format!(
        "shoal_role: mirror\n\
         shoal_agent_name: mirror-1.example.org\n\
         shoal_binary_source: {p}/not-installed-by-this-test\n\
         shoal_repo_dir: {p}/mirror/repo\n\
         shoal_state_dir: {p}/mirror/state\n\
         shoal_config_dir: {p}/mirror/etc\n\
         shoal_profile: rpm\n\
         shoal_listen: '[::1]:18710'\n\
         shoal_peer_listen: '127.0.0.1:18799'\n\
         shoal_advertise_url: 'http://mirror-1.example.org:18710'\n\
         shoal_origin_public_key: '{KEY}'\n\
         shoal_upstreams: ['http://127.0.0.1:18700', 'https://mirror-2.example.org']\n\
         shoal_poll_interval: 45s\n\
         shoal_delete_grace: 2h\n\
         shoal_download_limit: 1048576\n\
         shoal_service_ensure: stopped\n",
        p = p.display()
    ));
    let inv = sb.inventory(&[("origin-host", origin)], &[("mirror-host", mirror)]);
    let site = sb.site(false);
    let first = sb.playbook(&inv, &site, &["--tags", "shoal_config"]).ok();
    assert!(
        first.counter("origin-host", "changed") > 0,
        "{}",
        first.all()
    );

    let o = AgentConfig::load(&p.join("origin/etc/agent.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(o.role, Role::Origin);
    assert_eq!(
        o.name.as_deref(),
        Some("origin-host"),
        "defaults to the inventory name without facts"
    );
    assert_eq!(o.repo, p.join("origin/repo"));
    assert_eq!(o.state, p.join("origin/state"));
    assert_eq!(o.profile.to_string(), "debian");
    assert_eq!(o.listen.to_string(), "127.0.0.1:18700");
    assert_eq!(
        o.origin.key.as_deref(),
        Some(p.join("origin/etc/origin.key").as_path())
    );
    assert_eq!(o.origin.publish_interval, Duration::ZERO);
    assert_eq!(o.origin.manifest_ttl, Duration::from_secs(2 * 86400));
    assert_eq!(o.network.upload_limit, 10 << 20);
    assert!(!o.network.dht && !o.network.lsd && !o.network.upnp);
    assert_eq!(format!("{:?}", o.log.format), "Json");
    let key = p.join("origin/etc/origin.key");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), "private key text\n");
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&p.join("origin/etc/agent.yaml")), 0o640);
    assert!(
        p.join("origin/repo").is_dir(),
        "a missing origin repository is created"
    );

    let m = AgentConfig::load(&p.join("mirror/etc/agent.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.role, Role::Mirror);
    assert_eq!(m.name.as_deref(), Some("mirror-1.example.org"));
    assert_eq!(m.profile.to_string(), "rpm");
    assert_eq!(m.listen.to_string(), "[::1]:18710");
    assert_eq!(m.peer_listen().unwrap().to_string(), "127.0.0.1:18799");
    assert_eq!(m.advertise_url(), "http://mirror-1.example.org:18710");
    assert_eq!(m.mirror.origin_key.as_deref(), Some(KEY));
    assert_eq!(
        m.mirror.upstreams,
        ["http://127.0.0.1:18700", "https://mirror-2.example.org"]
    );
    assert_eq!(m.mirror.poll_interval, Duration::from_secs(45));
    assert_eq!(m.mirror.delete_grace, Duration::from_secs(7200));
    assert_eq!(m.network.download_limit, 1 << 20);
    assert!(
        m.origin.key.is_none(),
        "a mirror's config carries no origin section"
    );
    assert_eq!(mode(&p.join("mirror/state")), 0o750);
    assert_eq!(mode(&p.join("mirror/repo")), 0o755);

    // Unchanged variables: nothing to do the second time.
    let second = sb.playbook(&inv, &site, &["--tags", "shoal_config"]).ok();
    for host in ["origin-host", "mirror-host"] {
        assert_eq!(second.counter(host, "changed"), 0, "{}", second.all());
        assert_eq!(second.counter(host, "failed"), 0, "{}", second.all());
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_and_is_hardened() {
    let agent = shoal_e2e::bin("shoal-agent");
    let sb = Sandbox::new();
    let p = sb.prefix("");
    let vars = |listen: &str, user: &str| {
        yaml(&format!(
            "shoal_binary_source: {bin}\n\
             shoal_repo_dir: {p}/srv/repo\n\
             shoal_state_dir: {p}/var/lib/shoal\n\
             shoal_install_dir: {p}/usr/local/bin\n\
             shoal_config_dir: {p}/etc/shoal\n\
             shoal_unit_dir: {p}/etc/systemd/system\n\
             shoal_service_manager: systemd\n\
             shoal_service_ensure: stopped\n\
             shoal_user: {user}\n\
             shoal_group: {user}\n\
             shoal_listen: '{listen}'\n\
             shoal_origin_public_key: '{KEY}'\n\
             shoal_upstreams: ['http://127.0.0.1:18700']\n",
            bin = agent.display(),
            p = p.display()
        ))
    };
    let inv = sb.inventory(&[], &[("localhost", vars("0.0.0.0:8780", "root"))]);
    let site = sb.site(false);
    // Install the binary (ExecStart must exist for `verify`) and the unit only:
    // there is no systemd here to start it.
    let run = sb
        .playbook(&inv, &site, &["--tags", "shoal_install,shoal_unit"])
        .ok();
    assert_eq!(run.counter("localhost", "failed"), 0);
    let unit = p.join("etc/systemd/system/shoal-agent.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert_eq!(mode(&unit), 0o644);
    assert_eq!(mode(&p.join("usr/local/bin/shoal-agent")), 0o755);

    let verify = Run::of(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        verify.status.success(),
        "systemd-analyze verify failed:\n{}",
        verify.all()
    );
    assert!(
        !verify.all().contains("shoal-agent.service"),
        "systemd-analyze verify warns about the unit:\n{}",
        verify.all()
    );
    for line in [
        format!(
            "ExecStart={p}/usr/local/bin/shoal-agent --config {p}/etc/shoal/agent.yaml run",
            p = p.display()
        ),
        "Restart=on-failure".into(),
        "NoNewPrivileges=yes".into(),
        "ProtectSystem=strict".into(),
        // One writable entry, the common folder: hard links stay on one mount.
        format!("ReadWritePaths={}", sb.path().join("prefix").display()),
        // Started only once the repository (GlusterFS from fstab) is mounted.
        format!(
            "RequiresMountsFor={p}/srv/repo {p}/var/lib/shoal",
            p = p.display()
        ),
        "After=network-online.target remote-fs.target".into(),
        "PrivateTmp=yes".into(),
        "ProtectHome=yes".into(),
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6".into(),
        "CapabilityBoundingSet=CAP_CHOWN CAP_DAC_OVERRIDE CAP_FOWNER CAP_NET_BIND_SERVICE".into(),
        "User=root".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "unit lacks `{line}`:\n{text}"
        );
    }
    // systemd's own exposure score for the unit (offline, no systemd needed):
    // 10 is unprotected; the threshold fails the command above 2.5.
    let sec = Run::of(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--threshold=25", "--no-pager"])
            .arg(&unit),
    );
    println!("{}", sec.stdout.lines().last().unwrap_or(""));
    assert!(
        sec.status.success(),
        "systemd-analyze security:\n{}",
        sec.all()
    );

    // A privileged port run as another user gets exactly the one capability.
    let inv = sb.inventory(&[], &[("localhost", vars("0.0.0.0:80", "shoal"))]);
    sb.playbook(&inv, &site, &["--tags", "shoal_unit"]).ok();
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(
        text.contains("\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"),
        "{text}"
    );
    assert!(
        text.contains("\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n"),
        "{text}"
    );
    assert!(text.contains("\nUser=shoal\n"), "{text}");
    let verify = Run::of(Command::new("systemd-analyze").arg("verify").arg(&unit));
    assert!(
        verify.status.success() && !verify.all().contains("shoal-agent.service"),
        "{}",
        verify.all()
    );
}

/// The role's vhost passes `nginx -t`, and a real nginx serves
/// `shoal_repo_dir` at `/` and each present entry of `shoal_repositories`
/// under `/<name>/`, index files with `Cache-Control: no-cache`.
#[test]
fn nginx_vhost_passes_nginx_config_test() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    // nginx runs its workers as nobody: they must be able to read the trees.
    std::fs::set_permissions(sb.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let repo = sb.prefix("srv/repo");
    let trees = [
        ("", repo.clone()),
        ("/debian", sb.prefix("srv/debian/repo")),
        ("/el.9", sb.prefix("srv/el9/repo")),
    ];
    let files = [
        ("dists/stable/InRelease", Some("no-cache")),
        (
            "dists/stable/main/binary-amd64/Packages.xz",
            Some("no-cache"),
        ),
        ("pool/main/h/hello/hello_2.10-3_amd64.deb", None),
        ("repodata/repomd.xml", Some("no-cache")),
        ("Packages/h/hello-2.10-1.el9.x86_64.rpm", None),
    ];
    for (prefix, tree) in &trees {
        for (f, _) in files {
            let p = tree.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, format!("{prefix}: {f}\n")).unwrap();
        }
    }
    let vhost = sb.path().join("shoal.conf");
    // Render the role's template with the role's own defaults, as web.yml does.
    let mut c = sb.command("ansible");
    c.args([
        "localhost",
        "-c",
        "local",
        "-m",
        "ansible.builtin.template",
        "-a",
    ])
    .arg(format!(
        "src={} dest={} mode=0644",
        ansible_dir()
            .join("roles/shoal/templates/nginx-vhost.conf.j2")
            .display(),
        vhost.display()
    ))
    .arg("-e")
    .arg(format!(
        "@{}",
        ansible_dir()
            .join("roles/shoal/defaults/main.yml")
            .display()
    ))
    .arg("-e")
    .arg(format!(
        "shoal_repo_dir={} shoal_web_port=8089 shoal_web_server_name=mirror.example.org",
        repo.display()
    ))
    .arg("-e")
    .arg(
        serde_json::json!({"shoal_repositories": [
            {"name": "debian", "repo_dir": format!("{}/", trees[1].1.display())},
            {"name": "el.9", "repo_dir": trees[2].1},
            {"name": "old", "state": "absent", "repo_dir": sb.prefix("srv/old")},
        ]})
        .to_string(),
    );
    Run::of(&mut c).ok();
    let text = std::fs::read_to_string(&vhost).unwrap();
    assert!(text.contains("listen 8089;"), "{text}");
    assert!(text.contains("server_name mirror.example.org;"), "{text}");
    assert!(
        text.contains(&format!("root {};", repo.display())),
        "{text}"
    );

    let t = sb.path().join("nginx");
    std::fs::create_dir_all(&t).unwrap();
    let conf = sb.write(
        "nginx/nginx.conf",
        &format!(
            "pid {t}/nginx.pid;\nerror_log {t}/error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n\
             fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n\
             include {vhost};\n}}\n",
            t = t.display(),
            vhost = vhost.display()
        ),
    );
    let mut c = Command::new("nginx");
    c.arg("-t")
        .arg("-p")
        .arg(&t)
        .arg("-e")
        .arg(t.join("error.log"))
        .arg("-c")
        .arg(&conf);
    let run = Run::of(&mut c);
    assert!(
        run.status.success(),
        "nginx -t rejects the vhost:\n{}",
        run.all()
    );
    assert!(run.stderr.contains("test is successful"), "{}", run.all());
    assert!(!text.contains("/old/"), "{text}");

    // Serve it for real on 127.0.0.1 only and check what clients get.
    let port = free_port_pair();
    let local: String = text
        .lines()
        .filter(|l| !l.contains("listen [::]"))
        .map(|l| {
            if l.trim() == "listen 8089;" {
                format!("    listen 127.0.0.1:{port};")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let local_vhost = sb.write("local.conf", &local);
    let conf_text = std::fs::read_to_string(&conf).unwrap().replace(
        &vhost.display().to_string(),
        &local_vhost.display().to_string(),
    );
    let local_conf = sb.write("nginx/nginx-local.conf", &conf_text);
    let mut c = Command::new("nginx");
    c.args(["-g", "daemon off;", "-p"])
        .arg(&t)
        .arg("-e")
        .arg(t.join("error.log"))
        .arg("-c")
        .arg(&local_conf);
    let _nginx = agents::Proc::spawn("nginx", c, &t.join("output.log"));
    wait_until("nginx to answer", Duration::from_secs(20), || {
        shoal_e2e::local::http_get(port, "mirror.example.org", "/").map_err(|e| e.to_string())
    });
    for (prefix, _) in &trees {
        for (f, cache) in files {
            let url = format!("{prefix}/{f}");
            let (code, head, body) =
                shoal_e2e::local::http_get(port, "mirror.example.org", &url).unwrap();
            assert_eq!(code, 200, "{url}: {head}\n{local}");
            assert_eq!(body, format!("{prefix}: {f}\n").as_bytes(), "{url}");
            assert_eq!(
                shoal_e2e::local::header(&head, "Cache-Control"),
                cache,
                "{url}: {head}"
            );
        }
    }
    let (code, _, _) = shoal_e2e::local::http_get(port, "mirror.example.org", "/old/").unwrap();
    assert_eq!(code, 404);
}

/// Relative path and content of every file under `root`.
fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

/// The tree `shoal render ansible` makes from the example site embeds this
/// role; every host's variables pass the role's argument specs and checks.
#[test]
fn provisioner_rendered_site_passes_the_role_checks() {
    let shoal = shoal_e2e::bin("shoal");
    let sb = Sandbox::new();
    let out = sb.path().join("site-ansible");
    Run::of(
        Command::new(&shoal)
            .args(["render", "ansible", "--site"])
            .arg(shoal_e2e::workspace_root().join("site.example.yaml"))
            .arg("--out")
            .arg(&out),
    )
    .ok();
    let ours = files_under(&ansible_dir().join("roles/shoal"));
    assert!(ours.len() > 10, "{ours:?}");
    let rendered = files_under(&out.join("roles/shoal"));
    let differ: Vec<_> = ours
        .keys()
        .chain(rendered.keys())
        .filter(|k| ours.get(*k) != rendered.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "the rendered tree must carry this role unchanged, but these differ: {differ:?}; \
         if `shoal` is older than the role, rebuild it with `cargo build --bins`"
    );
    // Only the checks run (tag shoal_validate), locally, for every host.
    let mut c = sb.command("ansible-playbook");
    c.current_dir(&out)
        .env_remove("ANSIBLE_ROLES_PATH")
        .args([
            "-i",
            "inventory.yml",
            "site.yml",
            "-c",
            "local",
            "--tags",
            "shoal_validate",
        ])
        .args(["-e", "ansible_become=false", "-e", "ansible_host=127.0.0.1"]);
    let run = Run::of(&mut c).ok();
    let recap = run.recap();
    assert!(recap.len() >= 2, "{}", run.all());
    for (host, counters) in &recap {
        assert_eq!(counters["failed"], 0, "{host}:\n{}", run.all());
        assert!(counters["ok"] > 3, "{host} ran no checks:\n{}", run.all());
    }
}

// ---------------------------------------------------------------------------
// Bad settings: each fails before anything is written, with a message that
// names the variable and says what to write instead.

#[test]
fn bad_settings_fail_with_a_clear_message() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "shoal_role: bogus",
            "",
            &["shoal_role", "origin, mirror", "bogus"],
        ),
        (
            "shoal_service_manager: upstart",
            "",
            &["shoal_service_manager", "systemd, daemon"],
        ),
        (
            "shoal_binary_source: ''",
            "",
            &["shoal_binary_source is empty", "http(s)://"],
        ),
        (
            "shoal_origin_public_key: ''",
            "",
            &["shoal_origin_public_key", "shoal-agent keygen"],
        ),
        (
            "shoal_origin_public_key: 'ed25519:abc'",
            "",
            &["'ed25519:abc' is not an ed25519 public key"],
        ),
        (
            "shoal_upstreams: []",
            "",
            &["shoal_upstreams", "at least one upstream"],
        ),
        (
            "shoal_upstreams: ['ftp://origin']",
            "",
            &["ftp://origin", "http:// or https://"],
        ),
        (
            "shoal_poll_interval: soon",
            "",
            &["shoal_poll_interval: 'soon' is not a duration", "30s"],
        ),
        (
            "shoal_upload_limit: lots",
            "",
            &["shoal_upload_limit: 'lots' is not a size", "512KiB"],
        ),
        (
            "shoal_listen: 'localhost'",
            "",
            &["shoal_listen ('localhost')", "IP:PORT"],
        ),
        (
            "shoal_peer_listen: '127.0.0.1:8780'\nshoal_listen: '127.0.0.1:8780'",
            "",
            &["must differ"],
        ),
        (
            "shoal_agent_name: '../x'",
            "",
            &["not usable as a file name"],
        ),
        (
            "shoal_state_dir: PREFIX/srv/repo/state",
            "",
            &["must not contain each other", "shoal_state_dir"],
        ),
        ("shoal_repo_dir: relative/repo", "", &["absolute paths"]),
        (
            "shoal_role: origin",
            "",
            &[
                "origin.key does not exist",
                "shoal-agent keygen --out",
                "shoal_origin_private_key",
            ],
        ),
        (
            "",
            "shoal_binary_source",
            &["missing required arguments: shoal_binary_source"],
        ),
    ];
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(4)
            .map(|chunk| {
                s.spawn(move || {
                    let mut failures = Vec::new();
                    for (set_vars, unset, expect) in chunk {
                        let sb = Sandbox::new();
                        let p = sb.prefix("");
                        let mut vars = yaml(&format!(
                            "shoal_binary_source: {p}/shoal-agent\n\
                             shoal_repo_dir: {p}/srv/repo\n\
                             shoal_state_dir: {p}/var/lib/shoal\n\
                             shoal_install_dir: {p}/usr/local/bin\n\
                             shoal_config_dir: {p}/etc/shoal\n\
                             shoal_origin_public_key: '{KEY}'\n\
                             shoal_upstreams: ['http://127.0.0.1:18700']\n",
                            p = p.display()
                        ));
                        let over = set_vars.replace("PREFIX", &p.display().to_string());
                        if !over.is_empty() {
                            for (k, v) in yaml(&over).as_mapping().unwrap() {
                                vars.as_mapping_mut().unwrap().insert(k.clone(), v.clone());
                            }
                        }
                        if !unset.is_empty() {
                            vars.as_mapping_mut().unwrap().remove(*unset);
                        }
                        let inv = sb.inventory(&[], &[("localhost", vars)]);
                        let site = sb.site(false);
                        let run = sb.playbook(&inv, &site, &["--tags", "shoal_config"]);
                        let out = run.all();
                        if run.status.success() {
                            failures.push(format!("[{set_vars}{unset}] was accepted:\n{out}"));
                        } else if let Some(missing) = expect.iter().find(|e| !out.contains(**e)) {
                            failures.push(format!(
                                "[{set_vars}{unset}] message lacks `{missing}`:\n{out}"
                            ));
                        } else if p.join("etc/shoal/agent.yaml").exists() {
                            failures.push(format!("[{set_vars}{unset}] wrote agent.yaml anyway"));
                        }
                    }
                    failures
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

// ---------------------------------------------------------------------------
// Installing from a URL (ansible.builtin.get_url) from a server on 127.0.0.1.

#[test]
fn binary_is_downloaded_from_a_url_idempotently() {
    let agent = shoal_e2e::bin("shoal-agent");
    let bytes = std::fs::read(&agent).unwrap();
    let server = FileServer::start("/shoal-agent", bytes.clone());
    let sb = Sandbox::new();
    let p = sb.prefix("");
    let url = format!("http://127.0.0.1:{}/shoal-agent", server.port);
    let mut vars = mirror_vars(
        &sb,
        Path::new(&url),
        "127.0.0.1:1",
        "http://127.0.0.1:2",
        KEY,
    );
    // Only the install step runs here; a stopped service has no restart handler.
    set(&mut vars, "shoal_service_ensure", "stopped".into());
    let site = sb.site(false);
    let installed = p.join("usr/local/bin/shoal-agent");

    let inv = sb.inventory(&[], &[("localhost", vars.clone())]);
    let first = sb.playbook(&inv, &site, &["--tags", "shoal_install"]).ok();
    assert!(first.counter("localhost", "changed") > 0, "{}", first.all());
    assert_eq!(std::fs::read(&installed).unwrap(), bytes);
    assert_eq!(mode(&installed), 0o755);

    // Without a checksum the URL is fetched again but nothing changes.
    let second = sb.playbook(&inv, &site, &["--tags", "shoal_install"]).ok();
    assert_eq!(
        second.counter("localhost", "changed"),
        0,
        "{}",
        second.all()
    );
    let hits = server.requests();
    assert!(hits >= 2, "{hits} requests");

    // With the right checksum nothing is downloaded at all.
    let served = sb.write("served-binary", "");
    std::fs::write(&served, &bytes).unwrap();
    let sum = Run::of(Command::new("sha256sum").arg(&served)).ok();
    let sum = sum.stdout.split_whitespace().next().unwrap().to_string();
    set(
        &mut vars,
        "shoal_binary_checksum",
        format!("sha256:{sum}").into(),
    );
    let inv = sb.inventory(&[], &[("localhost", vars.clone())]);
    let third = sb.playbook(&inv, &site, &["--tags", "shoal_install"]).ok();
    assert_eq!(third.counter("localhost", "changed"), 0, "{}", third.all());
    assert_eq!(
        server.requests(),
        hits,
        "a matching checksum skips the download"
    );

    // A wrong checksum is an error that names it, and the binary stays as it was.
    set(
        &mut vars,
        "shoal_binary_checksum",
        format!("sha256:{}", "0".repeat(64)).into(),
    );
    let inv = sb.inventory(&[], &[("localhost", vars)]);
    let bad = sb.playbook(&inv, &site, &["--tags", "shoal_install"]);
    assert!(!bad.status.success(), "{}", bad.all());
    assert!(bad.all().contains("checksum"), "{}", bad.all());
    assert_eq!(std::fs::read(&installed).unwrap(), bytes);
}

// ---------------------------------------------------------------------------
// End to end: Ansible installs and starts a mirror that follows a real origin.

/// Asks the origin whose state folder is `state` to publish, and waits
/// until its HTTP address reports that generation.
fn publish(state: &Path, http: SocketAddr) -> u64 {
    let g = agents::publish(state);
    wait_until(
        "the origin to publish",
        Duration::from_secs(60),
        || match agents::status(http) {
            Some(s) if s.generation_applied >= g => Ok(g),
            s => Err(format!("{s:?}")),
        },
    )
}

fn mirror_reaches(port: u16, generation: u64) {
    wait_until(
        &format!("the mirror to reach generation {generation}"),
        Duration::from_secs(120),
        || match agents::status(local(port)) {
            Some(s) if s.generation_applied == generation => Ok(()),
            last => Err(format!("last /status: {last:?}")),
        },
    )
}

#[test]
fn playbook_installs_a_mirror_that_follows_a_real_origin() {
    let agent = shoal_e2e::bin("shoal-agent");
    let sb = Sandbox::new();
    let mut cleanup = Daemons::new();

    // The origin, from the shared harness.
    let origin_dir = sb.path().join("origin");
    let origin_repo = origin_dir.join("repo");
    write_tree(
        &origin_repo,
        &[
            ("dists/stable/Release", "Suite: stable\n"),
            (
                "pool/main/h/hello/hello_1.0_all.deb",
                "not really a deb, but bytes\n",
            ),
            ("README", "Shoal test repository\n"),
        ],
    );
    let (key_file, public_key) = agents::keygen(&origin_dir);
    assert!(shoal_config::is_public_key(&public_key), "{public_key}");
    let origin = agents::start_origin(
        &origin_dir,
        "origin",
        &origin_repo,
        &key_file,
        "generic",
        &[],
    );
    let g1 = publish(&origin.state, origin.http);

    // The mirror, entirely from host vars in the provisioner's inventory shape.
    let mirror_port = free_port_pair();
    let p = sb.prefix("");
    let pidfile = p.join("var/lib/shoal/agent.pid");
    cleanup.watch(&pidfile, &p.join("etc/shoal/agent.yaml"));
    let mut vars = mirror_vars(
        &sb,
        &agent,
        &format!("127.0.0.1:{mirror_port}"),
        &origin.url(),
        &public_key,
    );
    let inv = sb.inventory(&[], &[("localhost", vars.clone())]);
    let site = sb.site(true);

    let first = sb.playbook(&inv, &site, &[]);
    cleanup.pid(&pidfile);
    let first = first.ok();
    println!("first run:\n{}", first.recap_text());
    assert!(first.counter("localhost", "changed") > 0, "{}", first.all());
    assert_eq!(first.counter("localhost", "failed"), 0, "{}", first.all());

    let second = sb.playbook(&inv, &site, &[]).ok();
    println!("second run:\n{}", second.recap_text());
    assert_eq!(
        second.counter("localhost", "changed"),
        0,
        "second run changed something:\n{}",
        second.all()
    );
    assert_eq!(second.counter("localhost", "failed"), 0, "{}", second.all());

    // The daemon: its pidfile names a live shoal-agent from the prefix.
    let pid = read_pid(&pidfile).unwrap_or_else(|| panic!("no pidfile {}", pidfile.display()));
    cleanup.pid(&pidfile);
    assert!(
        alive(pid),
        "pid {pid} from {} is not running",
        pidfile.display()
    );
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(exe, p.join("usr/local/bin/shoal-agent"));

    // It follows the origin.
    mirror_reaches(mirror_port, g1);
    let mirror_repo = p.join("srv/repo");
    for f in [
        "dists/stable/Release",
        "pool/main/h/hello/hello_1.0_all.deb",
        "README",
    ] {
        assert_same_file(&origin_repo.join(f), &mirror_repo.join(f));
    }
    let s = agents::status(local(mirror_port)).unwrap();
    assert_eq!(s.role, "mirror", "{s:?}");

    // A configuration change restarts the daemon (a new PID) and it comes back.
    set(&mut vars, "shoal_poll_interval", "2s".into());
    let vars_at_poll_2s = vars.clone();
    let inv = sb.inventory(&[], &[("localhost", vars)]);
    let third = sb.playbook(&inv, &site, &[]);
    cleanup.pid(&pidfile);
    let third = third.ok();
    println!("third run (poll interval changed):\n{}", third.recap_text());
    assert!(third.counter("localhost", "changed") > 0, "{}", third.all());
    assert!(
        third
            .stdout
            .contains("TASK [shoal : Start with start-stop-daemon the agent of agent]"),
        "{}",
        third.all()
    );
    let new_pid = read_pid(&pidfile).unwrap();
    assert_ne!(new_pid, pid, "the config change did not restart the agent");
    assert!(!alive(pid), "the old agent {pid} still runs");
    assert!(alive(new_pid));
    let cfg = AgentConfig::load(&p.join("etc/shoal/agent.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.mirror.poll_interval, Duration::from_secs(2));

    // The restarted mirror keeps following: a second generation arrives.
    write_tree(
        &origin_repo,
        &[
            ("dists/stable/Release", "Suite: stable\nVersion: 2\n"),
            ("NEWS", "two\n"),
        ],
    );
    let g2 = publish(&origin.state, origin.http);
    mirror_reaches(mirror_port, g2);
    assert_same_file(
        &origin_repo.join("dists/stable/Release"),
        &mirror_repo.join("dists/stable/Release"),
    );
    assert_same_file(&origin_repo.join("NEWS"), &mirror_repo.join("NEWS"));

    // The host's single repository removed: shoal_state absent stops the
    // agent and removes its config, keeps the data, and is idempotent.
    let mut gone = vars_at_poll_2s.clone();
    set(&mut gone, "shoal_state", "absent".into());
    let inv = sb.inventory(&[], &[("localhost", gone)]);
    let absent = sb.playbook(&inv, &site, &[]).ok();
    assert!(
        absent.counter("localhost", "changed") > 0,
        "{}",
        absent.all()
    );
    assert!(
        !alive(new_pid),
        "the agent {new_pid} still runs after shoal_state: absent"
    );
    assert!(!p.join("etc/shoal/agent.yaml").exists() && !pidfile.exists());
    assert!(mirror_repo.join("NEWS").is_file(), "the data was removed");
    let again = sb.playbook(&inv, &site, &[]).ok();
    assert_eq!(again.counter("localhost", "changed"), 0, "{}", again.all());

    // Stop everything by PID; the daemon's pidfile PID must go away.
    drop(cleanup);
    drop(origin);
    assert!(!alive(new_pid), "the daemon {new_pid} survived the cleanup");
}

/// The whole site from host vars alone, as `shoal render ansible` lays it out:
/// the role makes one host the origin (key from `shoal_origin_private_key`)
/// and another a mirror of it.
#[test]
fn site_of_origin_and_mirror_from_host_vars_alone() {
    let agent = shoal_e2e::bin("shoal-agent");
    let sb = Sandbox::new();
    let mut cleanup = Daemons::new();

    let keys = sb.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key_file, public_key) = agents::keygen(&keys);
    let private_key = std::fs::read_to_string(key_file).unwrap();

    let o = sb.prefix("origin");
    let m = sb.prefix("mirror");
    let (origin_port, mirror_port) = (free_port_pair(), free_port_pair());
    assert_ne!(origin_port, mirror_port);
    write_tree(
        &o.join("srv/repo"),
        &[("a/b/c.txt", "c\n"), ("top", "top\n")],
    );
    let origin_vars = yaml(&format!(
        "shoal_role: origin\n\
         shoal_binary_source: {bin}\n\
         shoal_repo_dir: {o}/srv/repo\n\
         shoal_state_dir: {o}/var/lib/shoal\n\
         shoal_install_dir: {o}/usr/local/bin\n\
         shoal_config_dir: {o}/etc/shoal\n\
         shoal_service_manager: daemon\n\
         shoal_listen: '127.0.0.1:{origin_port}'\n\
         shoal_publish_interval: 0s\n\
         shoal_origin_private_key: {key}\n",
        bin = agent.display(),
        o = o.display(),
        key = serde_json::to_string(&private_key).unwrap(),
    ));
    let mut mirror = mirror_vars(
        &sb,
        &agent,
        &format!("127.0.0.1:{mirror_port}"),
        &format!("http://127.0.0.1:{origin_port}"),
        &public_key,
    );
    // Separate prefix from the origin's, and no explicit agent name.
    for (k, v) in [
        ("shoal_repo_dir", "srv/repo"),
        ("shoal_state_dir", "var/lib/shoal"),
        ("shoal_install_dir", "usr/local/bin"),
        ("shoal_config_dir", "etc/shoal"),
    ] {
        set(&mut mirror, k, m.join(v).display().to_string().into());
    }
    mirror.as_mapping_mut().unwrap().remove("shoal_agent_name");
    let pidfiles = [
        o.join("var/lib/shoal/agent.pid"),
        m.join("var/lib/shoal/agent.pid"),
    ];
    cleanup.watch(&pidfiles[0], &o.join("etc/shoal/agent.yaml"));
    cleanup.watch(&pidfiles[1], &m.join("etc/shoal/agent.yaml"));

    let inv = sb.inventory(&[("origin.test", origin_vars)], &[("mirror.test", mirror)]);
    let site = sb.site(false);
    let first = sb.playbook(&inv, &site, &[]);
    cleanup.note();
    let first = first.ok();
    println!("first run:\n{}", first.recap_text());
    let second = sb.playbook(&inv, &site, &[]).ok();
    println!("second run:\n{}", second.recap_text());
    for host in ["origin.test", "mirror.test"] {
        assert!(first.counter(host, "changed") > 0, "{}", first.all());
        assert_eq!(
            second.counter(host, "changed"),
            0,
            "{host} changed again:\n{}",
            second.all()
        );
        assert_eq!(second.counter(host, "failed"), 0, "{}", second.all());
    }
    let key_file = o.join("etc/shoal/origin.key");
    assert_eq!(mode(&key_file), 0o600);
    assert!(
        !first.stdout.contains(private_key.trim()),
        "the private key leaked into the output"
    );

    let origin_state = o.join("var/lib/shoal");
    let g = publish(&origin_state, local(origin_port));
    mirror_reaches(mirror_port, g);
    assert_same_file(&o.join("srv/repo/a/b/c.txt"), &m.join("srv/repo/a/b/c.txt"));
    assert_same_file(&o.join("srv/repo/top"), &m.join("srv/repo/top"));
    let s = agents::status(local(mirror_port)).unwrap();
    assert_eq!(
        s.name, "mirror.test",
        "the name defaults to the inventory host: {s:?}"
    );
    let s = agents::status(local(origin_port)).unwrap();
    assert_eq!(s.role, "origin", "{s:?}");

    let pids: Vec<i32> = pidfiles.iter().filter_map(|f| read_pid(f)).collect();
    assert_eq!(pids.len(), 2);
    drop(cleanup);
    for pid in pids {
        assert!(!alive(pid), "agent {pid} survived the cleanup");
    }
}

// ---------------------------------------------------------------------------
// GlusterFS (tasks/gluster.yml, entry point `gluster`)

/// The derived values the gluster tasks act on: which bricks are this
/// host's, which server creates the volume, the type arguments and the mount
/// options. They come from the planned list alone; nothing is reordered.
#[test]
fn gluster_tasks_take_their_part_from_the_planned_bricks() {
    let sb = Sandbox::new();
    let role = ansible_dir().join("roles/shoal");
    let pb = sb.write(
        "derived.yml",
        &format!(
            "---\n- name: Derived gluster values\n  hosts: localhost\n  gather_facts: false\n\
             \x20 vars_files:\n    - {d}\n    - {v}\n\
             \x20 tasks:\n    - name: Print them\n      ansible.builtin.debug:\n\
             \x20       msg: \"DERIVED {{{{ {{'hosts': shoal__gluster_hosts, 'primary': shoal__gluster_primary, \
             'local': shoal__gluster_local_bricks, 'size': shoal__gluster_set_size | int, \
             'type': shoal__gluster_type_args, 'server': shoal__gluster_mount_server, \
             'options': shoal__gluster_mount_options}} | to_json }}}}\"\n",
            d = role.join("defaults/main.yml").display(),
            v = role.join("vars/main.yml").display()
        ),
    );
    let inv = sb.write(
        "hosts.yml",
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n",
    );
    let derived = |extra: &str| -> serde_json::Value {
        let vars = sb.write("extra.yml", extra);
        let run = sb
            .playbook(&inv, &pb, &["-e", &format!("@{}", vars.display())])
            .ok();
        let line = run
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with("\"msg\":"))
            .unwrap_or_else(|| panic!("{}", run.all()));
        let json = line.trim().trim_start_matches("\"msg\":").trim();
        let text: String = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {line}"));
        let text = text
            .strip_prefix("DERIVED ")
            .unwrap_or_else(|| panic!("{line}"));
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {line}"))
    };
    let bricks = "shoal_gluster_bricks: [g2:/data/b1, g3:/data/b1, g3:/data/b2, m1:/data/b1, m1:/data/b2, g2:/data/b2]\n";
    let d = derived(&format!(
        "{bricks}shoal_gluster_replica: 2\nshoal_gluster_peer_name: m1\n"
    ));
    assert_eq!(d["hosts"], serde_json::json!(["g2", "g3", "m1"]));
    assert_eq!(d["primary"], "g2");
    assert_eq!(d["local"], serde_json::json!(["/data/b1", "/data/b2"]));
    assert_eq!(d["size"], 2);
    assert_eq!(d["type"], serde_json::json!(["replica", "2"]));
    assert_eq!(d["server"], "g2");
    assert_eq!(
        d["options"],
        "defaults,_netdev,backup-volfile-servers=g3:m1"
    );
    let d = derived(&format!(
        "{bricks}shoal_gluster_replica: 2\nshoal_gluster_arbiter: 1\nshoal_gluster_peer_name: g2\nshoal_gluster_mount_server: m1\n"
    ));
    assert_eq!(d["size"], 3);
    assert_eq!(
        d["type"],
        serde_json::json!(["replica", "2", "arbiter", "1"])
    );
    assert_eq!(d["local"], serde_json::json!(["/data/b1", "/data/b2"]));
    assert_eq!(
        d["options"],
        "defaults,_netdev,backup-volfile-servers=g2:g3"
    );
    let d = derived(
        "shoal_gluster_bricks: ['fd00::1:/b', 'fd00::2:/b', 'fd00::3:/b']\nshoal_gluster_disperse: 3\n\
         shoal_gluster_redundancy: 1\nshoal_gluster_peer_name: 'fd00::2'\n",
    );
    assert_eq!(
        d["hosts"],
        serde_json::json!(["fd00::1", "fd00::2", "fd00::3"])
    );
    assert_eq!(d["local"], serde_json::json!(["/b"]));
    assert_eq!(
        d["type"],
        serde_json::json!(["disperse", "3", "redundancy", "1"])
    );
    // mount.glusterfs separates backup servers with ':': IPv6 in brackets.
    assert_eq!(
        d["options"],
        "defaults,_netdev,backup-volfile-servers=[fd00::2]:[fd00::3]"
    );
}

/// Bad gluster settings stop the `gluster` entry point before it installs or
/// runs anything, with a message that says what to set.
#[test]
fn bad_gluster_settings_fail_with_a_clear_message() {
    let sb = Sandbox::new();
    let pb = sb.write(
        "gluster.yml",
        "---\n- name: Gluster\n  hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Gluster part of the role\n      ansible.builtin.import_role:\n        name: shoal\n        tasks_from: gluster\n",
    );
    let good = "shoal_gluster_bricks: ['a:/b', 'b:/b', 'c:/b', 'a:/c', 'b:/c', 'c:/c']\nshoal_gluster_replica: 2\n\
                shoal_gluster_peer_name: nobody\n";
    let cases: &[(&str, &[&str])] = &[
        (
            "shoal_gluster_bricks: []",
            &["list every brick of the volume as HOST:PATH"],
        ),
        (
            "shoal_gluster_bricks: ['a:b', 'b:/b']",
            &["[\\\"a:b\\\", ", "HOST:PATH"],
        ),
        (
            "shoal_gluster_replica: 0",
            &["set either shoal_gluster_replica"],
        ),
        (
            "shoal_gluster_disperse: 3",
            &[
                "set either shoal_gluster_replica",
                "shoal_gluster_redundancy",
            ],
        ),
        (
            "shoal_gluster_replica: 4",
            &["give a multiple of the set size", "6 bricks"],
        ),
        (
            "shoal_gluster_replica: 4\nshoal_gluster_arbiter: 1",
            &["arbiter 1 only"],
        ),
        (
            "shoal_gluster_arbiter: 2",
            &["shoal_gluster_arbiter", "0, 1"],
        ),
        (
            "shoal_gluster_volume: all",
            &["shoal_gluster_volume 'all'", "not be 'all'"],
        ),
        (
            "shoal_gluster_mount_point: srv/x",
            &["shoal_gluster_mount_point 'srv/x'", "absolute path"],
        ),
        (
            "shoal_gluster_fstab: etc/fstab",
            &[
                "shoal_gluster_fstab 'etc/fstab'",
                "absolute path such as /etc/fstab",
            ],
        ),
    ];
    let mut failures = Vec::new();
    for (over, expect) in cases {
        let mut vars = yaml(good);
        for (k, v) in yaml(over).as_mapping().unwrap() {
            vars.as_mapping_mut().unwrap().insert(k.clone(), v.clone());
        }
        let mut v = vars.as_mapping().unwrap().clone();
        v.insert("ansible_connection".into(), "local".into());
        let inv = sb.write(
            "gluster-hosts.yml",
            &serde_yaml::to_string(
                &serde_yaml::from_str::<serde_yaml::Value>(&format!(
                    "all:\n  hosts:\n    localhost: {}\n",
                    serde_json::to_string(&v).unwrap()
                ))
                .unwrap(),
            )
            .unwrap(),
        );
        let run = sb.playbook(&inv, &pb, &[]);
        let out = run.all();
        if run.status.success() {
            failures.push(format!("[{over}] was accepted:\n{out}"));
        } else if let Some(missing) = expect.iter().find(|e| !out.contains(**e)) {
            failures.push(format!("[{over}] message lacks `{missing}`:\n{out}"));
        } else if out.contains("Install glusterd") || out.contains("Mount the GlusterFS volume at")
        {
            failures.push(format!("[{over}] went on past the checks:\n{out}"));
        }
    }
    // The good settings pass the checks; this host has no part in the
    // volume, so nothing else runs.
    let mut v = yaml(good).as_mapping().unwrap().clone();
    v.insert("ansible_connection".into(), "local".into());
    let inv = sb.write(
        "gluster-hosts.yml",
        &format!(
            "all:\n  hosts:\n    localhost: {}\n",
            serde_json::to_string(&v).unwrap()
        ),
    );
    let run = sb.playbook(&inv, &pb, &[]).ok();
    assert_eq!(run.counter("localhost", "changed"), 0, "{}", run.all());
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A mounting host keeps exactly one fstab line for its mount point, so the
/// volume is mounted again at boot: the role's own task (tag
/// `shoal_gluster_fstab`, the last of tasks/gluster.yml, which runs once the
/// mount works) on an fstab in the temp prefix. It replaces an older line for
/// the mount point, keeps every other line byte for byte, writes IPv6 backup
/// servers in brackets, and changes nothing on a second run.
#[test]
fn gluster_mount_is_kept_in_fstab() {
    let sb = Sandbox::new();
    let fstab = sb.prefix("etc/fstab");
    std::fs::create_dir_all(fstab.parent().unwrap()).unwrap();
    let others_before = "# /etc/fstab: static file system information.\n\
                         UUID=1234  /  ext4  errors=remount-ro  0  1\n\
                         #g9:/old /srv/shoal glusterfs defaults 0 0\n\n\
                         /dev/sdb1\t/srv/shoal/other xfs defaults 0 2\n";
    let others_after = "tmpfs /tmp tmpfs defaults 0 0\n";
    std::fs::write(
        &fstab,
        format!("{others_before}g9:/old   /srv/shoal glusterfs defaults 0 0\n{others_after}"),
    )
    .unwrap();
    let pb = sb.write(
        "gluster-fstab.yml",
        "---\n- name: Gluster\n  hosts: localhost\n  gather_facts: false\n  tasks:\n\
         \x20   - name: Gluster part of the role\n      ansible.builtin.import_role:\n        name: shoal\n        tasks_from: gluster\n",
    );
    let inv = sb.write(
        "gluster-hosts.yml",
        &format!(
            "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n      \
             shoal_gluster_bricks: ['g1:/b', 'fd00::2:/b', 'g3:/b']\n      shoal_gluster_replica: 3\n      \
             shoal_gluster_peer_name: m1\n      shoal_gluster_mount_point: /srv/shoal\n      \
             shoal_gluster_fstab: {}\n",
            fstab.display()
        ),
    );
    let line =
        "g1:/shoal /srv/shoal glusterfs defaults,_netdev,backup-volfile-servers=[fd00::2]:g3 0 0\n";
    let want = format!("{others_before}{line}{others_after}");

    let run = sb
        .playbook(&inv, &pb, &["--tags", "shoal_gluster_fstab"])
        .ok();
    assert_eq!(run.counter("localhost", "changed"), 1, "{}", run.all());
    assert!(
        run.all().contains("Keep the GlusterFS mount in fstab"),
        "{}",
        run.all()
    );
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), want);
    assert_eq!(mode(&fstab), 0o644);

    let run = sb
        .playbook(&inv, &pb, &["--tags", "shoal_gluster_fstab"])
        .ok();
    assert_eq!(run.counter("localhost", "changed"), 0, "{}", run.all());
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), want);

    // Another mount server rewrites the same line in place.
    let inv2 = sb.write(
        "gluster-hosts2.yml",
        &std::fs::read_to_string(&inv).unwrap().replace(
            "shoal_gluster_fstab:",
            "shoal_gluster_mount_server: g3\n      shoal_gluster_fstab:",
        ),
    );
    let run = sb
        .playbook(&inv2, &pb, &["--tags", "shoal_gluster_fstab"])
        .ok();
    assert_eq!(run.counter("localhost", "changed"), 1, "{}", run.all());
    assert_eq!(
        std::fs::read_to_string(&fstab).unwrap(),
        format!(
            "{others_before}g3:/shoal /srv/shoal glusterfs defaults,_netdev,backup-volfile-servers=g1:[fd00::2] 0 0\n{others_after}"
        )
    );

    // Without a mount point there is no fstab line.
    std::fs::write(&fstab, others_before).unwrap();
    let inv3 = sb.write(
        "gluster-hosts3.yml",
        &std::fs::read_to_string(&inv).unwrap().replace(
            "shoal_gluster_mount_point: /srv/shoal",
            "shoal_gluster_mount_point: ''",
        ),
    );
    let run = sb
        .playbook(&inv3, &pb, &["--tags", "shoal_gluster_fstab"])
        .ok();
    assert_eq!(run.counter("localhost", "changed"), 0, "{}", run.all());
    assert_eq!(std::fs::read_to_string(&fstab).unwrap(), others_before);
}

// ---------------------------------------------------------------------------
// Several repositories on one host, removal, check mode.

/// An origin of its own for one repository: (agent, repo folder, public key).
fn repo_origin(
    sb: &Sandbox,
    name: &str,
    files: &[(&str, &str)],
) -> (agents::Agent, PathBuf, String) {
    let dir = sb.path().join(format!("origin-{name}"));
    let repo = dir.join("repo");
    write_tree(&repo, files);
    let (key_file, public_key) = agents::keygen(&dir);
    let origin = agents::start_origin(&dir, name, &repo, &key_file, "generic", &[]);
    (origin, repo, public_key)
}

/// Host vars with the shared settings and `shoal_repositories` as given.
fn host_with_repositories(sb: &Sandbox, repositories: serde_yaml::Value) -> serde_yaml::Value {
    let mut v = yaml(&format!(
        "shoal_binary_source: {bin}\n\
         shoal_install_dir: {p}/usr/local/bin\n\
         shoal_config_dir: {p}/etc/shoal\n\
         shoal_unit_dir: {p}/etc/systemd/system\n\
         shoal_service_manager: daemon\n\
         shoal_poll_interval: 1s\n\
         shoal_delete_grace: 0s\n",
        bin = shoal_e2e::bin("shoal-agent").display(),
        p = sb.prefix("").display(),
    ));
    set(&mut v, "shoal_repositories", repositories);
    v
}

#[test]
fn two_repositories_on_one_host_sync_hard_link_and_one_is_removed_cleanly() {
    let sb = Sandbox::new();
    let mut cleanup = Daemons::new();
    let p = sb.prefix("");
    let (alpha_origin, alpha_src, alpha_key) = repo_origin(
        &sb,
        "alpha",
        &[("dists/a/Release", "alpha\n"), ("pool/a.deb", "A bytes\n")],
    );
    let (beta_origin, beta_src, beta_key) = repo_origin(
        &sb,
        "beta",
        &[
            ("repodata/repomd.xml", "<beta/>\n"),
            ("Packages/b.rpm", "B bytes\n"),
        ],
    );
    let ga = publish(&alpha_origin.state, alpha_origin.http);
    let gb = publish(&beta_origin.state, beta_origin.http);

    let (port_a, port_b) = (free_port_pair(), free_port_pair());
    let entry = |name: &str, port: u16, key: &str, upstream: String| {
        yaml(&format!(
            "name: {name}\nagent_name: test-{name}\nrepo_dir: {p}/srv/{name}/repo\n\
             state_dir: {p}/srv/{name}/state\nlisten: '127.0.0.1:{port}'\n\
             origin_public_key: '{key}'\nupstreams: ['{upstream}']\n",
            p = p.display()
        ))
    };
    let alpha = entry("alpha", port_a, &alpha_key, alpha_origin.url());
    let mut beta = entry("beta", port_b, &beta_key, beta_origin.url());
    let pidfile = |name: &str| p.join(format!("srv/{name}/state/agent.pid"));
    let config = |name: &str| p.join(format!("etc/shoal/{name}.yaml"));
    for name in ["alpha", "beta"] {
        cleanup.watch(&pidfile(name), &config(name));
    }
    let site = sb.site(false);
    let inventory = |beta: &serde_yaml::Value| {
        let repos = serde_yaml::Value::Sequence(vec![alpha.clone(), beta.clone()]);
        sb.inventory(&[], &[("localhost", host_with_repositories(&sb, repos))])
    };

    // Both repositories: two agents, each with its own config and pidfile.
    let inv = inventory(&beta);
    let first = sb.playbook(&inv, &site, &[]);
    cleanup.note();
    let first = first.ok();
    println!("first run:\n{}", first.recap_text());
    assert!(first.counter("localhost", "changed") > 0, "{}", first.all());
    let pid_a = cleanup.pid(&pidfile("alpha")).expect("alpha's pidfile");
    let pid_b = cleanup.pid(&pidfile("beta")).expect("beta's pidfile");
    assert_ne!(pid_a, pid_b);
    assert!(alive(pid_a) && alive(pid_b));
    assert_eq!(
        AgentConfig::load(&config("alpha")).unwrap().listen.port(),
        port_a
    );
    assert_eq!(
        AgentConfig::load(&config("beta")).unwrap().listen.port(),
        port_b
    );

    // Both sync, each from its own origin, into its own tree, by hard links.
    mirror_reaches(port_a, ga);
    mirror_reaches(port_b, gb);
    for (name, src, files) in [
        ("alpha", &alpha_src, ["dists/a/Release", "pool/a.deb"]),
        ("beta", &beta_src, ["repodata/repomd.xml", "Packages/b.rpm"]),
    ] {
        let live = p.join(format!("srv/{name}/repo"));
        for f in files {
            assert_same_file(&src.join(f), &live.join(f));
        }
        // The agent writes its trace file into its own tree under its own name.
        assert!(live.join(format!("project/trace/test-{name}")).is_file());
        let linked = shoal_e2e::files::assert_linked_into(
            &live.join(files[1]),
            &p.join(format!("srv/{name}/state")),
        );
        println!("{name}: {} is linked from {}", files[1], linked.display());
        shoal_e2e::files::assert_stored_once(
            name,
            &live,
            &p.join(format!("srv/{name}/state")),
            &[&live.join(files[0]), &live.join(files[1])],
        );
    }
    assert!(
        !p.join("srv/alpha/repo/Packages").exists(),
        "beta's files leaked into alpha"
    );

    let second = sb.playbook(&inv, &site, &[]).ok();
    assert_eq!(
        second.counter("localhost", "changed"),
        0,
        "{}",
        second.all()
    );

    // beta absent: its agent stops, its config goes, its data and alpha stay.
    set(&mut beta, "state", "absent".into());
    let inv = inventory(&beta);
    let third = sb.playbook(&inv, &site, &[]).ok();
    println!("beta absent:\n{}", third.recap_text());
    assert!(third.counter("localhost", "changed") > 0, "{}", third.all());
    assert!(!alive(pid_b), "beta's agent {pid_b} still runs");
    assert!(!config("beta").exists() && !pidfile("beta").exists());
    assert!(
        p.join("srv/beta/repo/Packages/b.rpm").is_file(),
        "beta's data was removed"
    );
    assert!(p.join("srv/beta/state").is_dir());
    assert_eq!(
        cleanup.pid(&pidfile("alpha")),
        Some(pid_a),
        "alpha was restarted"
    );
    assert!(alive(pid_a));
    let again = sb.playbook(&inv, &site, &[]).ok();
    assert_eq!(
        again.counter("localhost", "changed"),
        0,
        "removal is not idempotent:\n{}",
        again.all()
    );

    // purge_data removes the data too, once.
    set(&mut beta, "purge_data", true.into());
    let inv = inventory(&beta);
    let purge = sb.playbook(&inv, &site, &[]).ok();
    assert!(purge.counter("localhost", "changed") > 0, "{}", purge.all());
    assert!(!p.join("srv/beta").join("repo").exists() && !p.join("srv/beta/state").exists());
    let again = sb.playbook(&inv, &site, &[]).ok();
    assert_eq!(again.counter("localhost", "changed"), 0, "{}", again.all());
    assert!(alive(pid_a));

    drop(cleanup);
    assert!(!alive(pid_a));
}

#[test]
fn repositories_that_share_a_folder_or_a_port_are_refused() {
    let sb = Sandbox::new();
    let p = sb.prefix("");
    let site = sb.site(false);
    let entry = |name: &str, repo: &str, state: &str, listen: &str| {
        yaml(&format!(
            "name: {name}\nrepo_dir: {p}/{repo}\nstate_dir: {p}/{state}\nlisten: '{listen}'\n\
             origin_public_key: '{KEY}'\nupstreams: ['http://127.0.0.1:1']\n",
            p = p.display()
        ))
    };
    for (what, b) in [
        (
            "state folder",
            entry("b", "b/repo", "a/state", "127.0.0.1:9000"),
        ),
        (
            "repository folder",
            entry("b", "a/repo", "b/state", "127.0.0.1:9000"),
        ),
        (
            "nested folder",
            entry("b", "a/repo/b", "b/state", "127.0.0.1:9000"),
        ),
        (
            "BitTorrent port",
            entry("b", "b/repo", "b/state", "127.0.0.1:8781"),
        ),
        ("name", entry("a", "b/repo", "b/state", "127.0.0.1:9000")),
    ] {
        let a = entry("a", "a/repo", "a/state", "127.0.0.1:8780");
        let repos = serde_yaml::Value::Sequence(vec![a, b]);
        let inv = sb.inventory(&[], &[("localhost", host_with_repositories(&sb, repos))]);
        let run = sb.playbook(&inv, &site, &[]);
        assert!(
            !run.status.success(),
            "two repositories sharing a {what} were accepted"
        );
        let text = run.all();
        assert!(
            text.contains("must each have their own") || text.contains("the names must differ"),
            "{what}: {text}"
        );
        assert!(
            !p.join("etc/shoal").exists(),
            "{what}: something was written before the check"
        );
    }
}

#[test]
fn check_mode_on_a_fresh_host_reports_changes_and_changes_nothing() {
    let bytes = std::fs::read(shoal_e2e::bin("shoal-agent")).unwrap();
    let server = FileServer::start("/shoal-agent", bytes);
    let url = format!("http://127.0.0.1:{}/shoal-agent", server.port);
    let site = {
        let sb = Sandbox::new();
        let site = sb.site(false);
        (sb, site)
    };
    let (sb, site) = site;
    let p = sb.prefix("");
    for source in [shoal_e2e::bin("shoal-agent").display().to_string(), url] {
        for repositories in [false, true] {
            let mut vars = mirror_vars(
                &sb,
                Path::new(&source),
                "127.0.0.1:8780",
                "http://127.0.0.1:1",
                KEY,
            );
            if repositories {
                let repos = yaml(&format!(
                    "- {{name: one, repo_dir: {p}/srv/one/repo, state_dir: {p}/srv/one/state}}\n\
                     - {{name: two, repo_dir: {p}/srv/two/repo, state_dir: {p}/srv/two/state, listen: '127.0.0.1:8790'}}\n",
                    p = p.display()
                ));
                set(&mut vars, "shoal_repositories", repos);
            }
            let inv = sb.inventory(&[], &[("localhost", vars)]);
            let run = sb.playbook(&inv, &site, &["--check"]);
            assert!(
                run.status.success(),
                "check mode failed ({source}, repositories: {repositories}):\n{}",
                run.all()
            );
            assert_eq!(run.counter("localhost", "failed"), 0);
            assert!(
                run.counter("localhost", "changed") >= 4,
                "check mode reports too few changes:\n{}",
                run.all()
            );
            let written: Vec<_> = walk(&p);
            assert!(written.is_empty(), "check mode wrote {written:?}");
        }
    }
}

/// Every file and folder under `root`.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            out.push(e.path());
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn each_repository_gets_a_unit_of_its_own_that_verifies() {
    let sb = Sandbox::new();
    let p = sb.prefix("");
    let mut vars = mirror_vars(
        &sb,
        &shoal_e2e::bin("shoal-agent"),
        "0.0.0.0:8780",
        "http://127.0.0.1:1",
        KEY,
    );
    set(&mut vars, "shoal_service_manager", "systemd".into());
    set(&mut vars, "shoal_service_ensure", "stopped".into());
    let repos = yaml(&format!(
        "- {{name: debian, repo_dir: {p}/srv/debian/repo, state_dir: {p}/srv/debian/state}}\n\
         - {{name: fedora, repo_dir: {p}/srv/fedora/repo, state_dir: {p}/var/fedora, listen: '0.0.0.0:8790', profile: rpm}}\n",
        p = p.display()
    ));
    set(&mut vars, "shoal_repositories", repos);
    let inv = sb.inventory(&[], &[("localhost", vars)]);
    let site = sb.site(false);
    // No systemd here to start them: the binary and the units only.
    sb.playbook(&inv, &site, &["--tags", "shoal_install,shoal_unit"])
        .ok();
    let units = p.join("etc/systemd/system");
    assert!(!units.join("shoal-agent.service").exists());
    let prefix = p.components().collect::<PathBuf>();
    for (name, rw) in [
        ("debian", prefix.join("srv/debian")),
        ("fedora", prefix.clone()),
    ] {
        let unit = units.join(format!("shoal-agent@{name}.service"));
        let text = std::fs::read_to_string(&unit).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            text.contains(&format!(
                "--config {}/etc/shoal/{name}.yaml run\n",
                p.display()
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("\nReadWritePaths={}\n", rw.display())),
            "{text}"
        );
        let verify = Run::of(Command::new("systemd-analyze").arg("verify").arg(&unit));
        assert!(
            verify.status.success() && !verify.all().contains(&format!("shoal-agent@{name}")),
            "systemd-analyze verify on {}:\n{}",
            unit.display(),
            verify.all()
        );
    }
}
