//! `shoal render ansible` against the real Ansible tools: the inventory
//! reads back (ansible-inventory) with the groups and host variables the
//! site gives; a value with quotes and `{{ }}` reaches a task unchanged (it
//! is tagged `!unsafe`, so Ansible does not template it); the playbook
//! passes `--syntax-check` and `ansible-lint --profile production`.
//!
//! Ansible keeps its state in the test's temp dir. Needs the Debian
//! packages ansible-core and ansible-lint.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
/// A value YAML and Jinja2 would each misread if it were not escaped.
const TRICKY: &str = r#"o'brien"s\{{x}}{%y%}"#;

struct Tree {
    tmp: tempfile::TempDir,
    out: PathBuf,
}

impl Tree {
    fn render(site: &str) -> Tree {
        let tmp = tempfile::Builder::new()
            .prefix("shoal-render-ansible-")
            .tempdir()
            .unwrap();
        for d in ["home/tmp", "home/remote-tmp", "cache"] {
            std::fs::create_dir_all(tmp.path().join(d)).unwrap();
        }
        let site_path = tmp.path().join("site.yaml");
        std::fs::write(&site_path, site).unwrap();
        let out = tmp.path().join("out");
        let o = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["render", "ansible", "--site"])
            .arg(&site_path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        Tree { tmp, out }
    }

    /// An Ansible command confined to the temp dir, run in the output folder.
    fn ansible(&self, program: &str) -> Command {
        let home = self.tmp.path().join("home");
        let mut c = Command::new(program);
        c.current_dir(&self.out)
            .env("HOME", &home)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_REMOTE_TEMP", home.join("remote-tmp"))
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("ANSIBLE_CACHE_PLUGIN", "memory")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_GATHERING", "explicit")
            .env("XDG_CACHE_HOME", self.tmp.path().join("cache"))
            .env("NO_COLOR", "1")
            .env_remove("ANSIBLE_CONFIG")
            .stdin(Stdio::null());
        c
    }
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap_or_else(|e| {
        panic!("cannot run {c:?}: {e}; install the Debian packages ansible-core and ansible-lint")
    });
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn site() -> String {
    format!(
        "defaults:\n  profile: rpm\n  binary_source: /srv/dist/shoal-agent\n  user: shoal\n  group: shoal\n  manage_user: true\n\
         origin:\n  host: origin.example.org\n  address: 127.0.0.1\n  origin_public_key: {KEY}\n  manifest_ttl: 14d\n\
         mirrors:\n  - host: mirror1.example.org\n    agent_name: '{}'\n    upload_limit: 5 MiB\n\
         \x20 - host: mirror2.example.org\n    upstreams: [mirror1.example.org, origin.example.org]\n    listen: '[::]:9000'\n",
        TRICKY.replace('\'', "''")
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn inventory_reads_back_with_groups_and_host_variables() {
    let t = Tree::render(&site());
    for f in [
        "inventory.yml",
        "site.yml",
        "group_vars/shoal.yml",
        "roles/shoal/tasks/main.yml",
        "roles/shoal/defaults/main.yml",
    ] {
        assert!(t.out.join(f).is_file(), "{f} missing");
    }
    let (ok, stdout, stderr) =
        run(t
            .ansible("ansible-inventory")
            .args(["-i", "inventory.yml", "--list"]));
    assert!(ok, "{stderr}");
    let inv: Value = serde_json::from_str(&stdout).unwrap();
    let hosts = |g: &str| -> Vec<String> {
        inv[g]["hosts"]
            .as_array()
            .map(|a| a.iter().map(|h| h.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(hosts("shoal_origin"), ["origin.example.org"]);
    assert_eq!(
        hosts("shoal_mirrors"),
        ["mirror1.example.org", "mirror2.example.org"]
    );
    let hv = &inv["_meta"]["hostvars"];
    let o = &hv["origin.example.org"];
    assert_eq!(o["ansible_host"], "127.0.0.1");
    assert_eq!(o["shoal_role"], "origin");
    assert_eq!(o["shoal_manifest_ttl"], "14d");
    assert_eq!(
        o["shoal_profile"], "rpm",
        "site defaults reach every host through group_vars"
    );
    assert_eq!(o["shoal_manage_user"], true);
    let m2 = &hv["mirror2.example.org"];
    assert_eq!(m2["shoal_role"], "mirror");
    assert_eq!(m2["shoal_origin_public_key"], KEY);
    assert_eq!(m2["shoal_listen"], "[::]:9000");
    assert_eq!(m2["shoal_advertise_url"], "http://mirror2.example.org:9000");
    assert_eq!(
        m2["shoal_upstreams"],
        serde_json::json!([
            "http://mirror1.example.org:8780",
            "http://origin.example.org:8780"
        ])
    );
    let m1 = &hv["mirror1.example.org"];
    assert_eq!(
        m1["shoal_upload_limit"], "5MiB",
        "the role's size pattern has no inner space"
    );
    assert_eq!(
        m1["shoal_upstreams"],
        serde_json::json!(["http://origin.example.org:8780"])
    );
    assert!(
        m1.get("ansible_host").is_none(),
        "no address: the inventory name is the address"
    );
}

#[test]
fn quotes_and_jinja_delimiters_reach_tasks_unchanged() {
    let t = Tree::render(&site());
    let (ok, stdout, stderr) = run(t.ansible("ansible").args([
        "mirror1.example.org",
        "-i",
        "inventory.yml",
        "-c",
        "local",
        "-m",
        "ansible.builtin.debug",
        "-a",
        "var=shoal_agent_name",
    ]));
    assert!(ok, "{stdout}{stderr}");
    let json = stdout
        .split_once("=>")
        .map(|(_, j)| j)
        .unwrap_or_else(|| panic!("{stdout}"));
    let v: Value = serde_json::from_str(json.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["shoal_agent_name"], TRICKY, "{stdout}");
}

#[test]
fn playbook_passes_syntax_check_and_ansible_lint() {
    let t = Tree::render(&site());
    let (ok, stdout, stderr) = run(t.ansible("ansible-playbook").args([
        "-i",
        "inventory.yml",
        "site.yml",
        "--syntax-check",
    ]));
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = run(t.ansible("ansible-lint").args([
        "--offline",
        "--nocolor",
        "--profile",
        "production",
        "site.yml",
        "inventory.yml",
        "group_vars/shoal.yml",
    ]));
    let all = format!("{stdout}{stderr}");
    assert!(
        ok,
        "ansible-lint found problems in {}:\n{all}",
        path(&t.out)
    );
    assert!(
        all.contains("Passed with production profile: 0 failure(s), 0 warning(s)"),
        "{all}"
    );
}

#[test]
fn a_site_of_several_repositories_gives_each_host_its_repositories() {
    let key = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";
    let site = format!(
        "name: two\ndefaults:\n  binary_source: /srv/dist/shoal-agent\n\
         repositories:\n\
         \x20 - name: debian\n    defaults: {{profile: debian}}\n\
         \x20   origin: {{host: deb.example.org, origin_public_key: '{key}'}}\n\
         \x20   mirrors:\n      - {{host: m1.example.org, repo_dir: /srv/shoal/debian/repo, state_dir: /srv/shoal/debian/state}}\n\
         \x20 - name: fedora\n    defaults: {{profile: rpm}}\n\
         \x20   origin: {{host: m1.example.org, origin_public_key: '{key}', repo_dir: /srv/fedora, state_dir: /srv/fedora-state, listen: '0.0.0.0:8790'}}\n"
    );
    let t = Tree::render(&site);
    let (ok, stdout, stderr) =
        run(t
            .ansible("ansible-inventory")
            .args(["-i", "inventory.yml", "--list"]));
    assert!(ok, "{stderr}");
    let inv: Value = serde_json::from_str(&stdout).unwrap();
    // m1 is the origin of fedora: it is played with the origins.
    assert_eq!(
        inv["shoal_origin"]["hosts"],
        serde_json::json!(["deb.example.org", "m1.example.org"])
    );
    assert_eq!(inv["shoal_mirrors"]["hosts"], Value::Null, "{stdout}");
    let repos = &inv["_meta"]["hostvars"]["m1.example.org"]["shoal_repositories"];
    assert_eq!(repos[0]["name"], "debian");
    assert_eq!(repos[0]["role"], "mirror");
    assert_eq!(
        repos[0]["upstreams"],
        serde_json::json!(["http://deb.example.org:8780"])
    );
    assert_eq!(repos[1]["name"], "fedora");
    assert_eq!(repos[1]["role"], "origin");
    assert_eq!(repos[1]["listen"], "0.0.0.0:8790");
    assert_eq!(
        inv["_meta"]["hostvars"]["m1.example.org"]["shoal_binary_source"],
        "/srv/dist/shoal-agent"
    );
    let (ok, stdout, stderr) = run(t.ansible("ansible-playbook").args([
        "-i",
        "inventory.yml",
        "site.yml",
        "--syntax-check",
    ]));
    assert!(ok, "{stdout}{stderr}");
}
