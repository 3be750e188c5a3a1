//! `storage.gluster` reaches the rendered Puppet and Ansible trees with the
//! brick order the layout planner computes: site.pp declares
//! `shoal::gluster` on every host of the volume (gluster-only servers get a
//! node of their own), Hiera node data and Ansible host variables carry the
//! same list, and the trees pass `puppet parser validate`, `puppet-lint`,
//! `ansible-inventory`, `--syntax-check` and `ansible-lint --profile
//! production`. Needs the Debian packages puppet, puppet-lint, ansible-core
//! and ansible-lint.

use serde_json::Value;
use shoal_gluster::{parse_bricks, plan, Layout, VolumeType};
use std::path::Path;
use std::process::{Command, Stdio};

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

/// m1 is a mirror on the volume and a server; m2 is a mirror elsewhere; g2
/// and g3 are servers that run no agent. g3 has an extra brick, so only the
/// chained layout places them.
fn site() -> String {
    format!(
        "name: glu\n\
         defaults:\n  binary_source: /opt/shoal/shoal-agent\n  profile: debian\n\
         origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n\
         mirrors:\n  - host: m1.example.org\n    repo_dir: /srv/shoal/debian\n  - host: m2.example.org\n\
         storage:\n  gluster:\n    hosts:\n      - m1.example.org\n\
         \x20     - {{host: g2.example.org, address: 192.0.2.12}}\n\
         \x20     - {{host: g3.example.org, address: 192.0.2.13, bricks: [/data/b1, /data/b2, /data/b3, /data/b4]}}\n\
         \x20   bricks: [/data/b1, /data/b2]\n    replica: 2\n    layout: chained\n    volume: mirror\n\
         \x20   mount: /srv/shoal\n    mirrors: [m1.example.org]\n"
    )
}

/// The order the planner itself gives for these bricks.
fn planned() -> Vec<String> {
    let mut bricks = Vec::new();
    for h in ["g3.example.org", "m1.example.org", "g2.example.org"] {
        let n = if h == "g3.example.org" { 4 } else { 2 };
        for i in (1..=n).rev() {
            bricks.push(format!("{h}:/data/b{i}"));
        }
    }
    let p = plan(
        VolumeType::Replica {
            replica: 2,
            arbiter: false,
        },
        Layout::Chained,
        &parse_bricks(&bricks).unwrap(),
    )
    .unwrap();
    p.bricks().iter().map(|b| b.to_string()).collect()
}

fn render(kind: &str, dir: &Path) -> std::path::PathBuf {
    let site_path = dir.join("site.yaml");
    std::fs::write(&site_path, site()).unwrap();
    let out = dir.join(kind);
    let o = Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(["render", kind, "--site"])
        .arg(&site_path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn run(c: &mut Command) -> (bool, String) {
    let o = c
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {c:?}: {e}"));
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn the_planned_order_is_chained_and_uses_every_brick() {
    let p = planned();
    assert_eq!(p.len(), 8);
    // Every set of two is on two different servers.
    for pair in p.chunks(2) {
        let host = |b: &str| b.split_once(':').unwrap().0.to_string();
        assert_ne!(host(&pair[0]), host(&pair[1]), "{pair:?}");
    }
}

#[test]
fn puppet_site_declares_shoal_gluster_with_the_planned_bricks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("puppet", tmp.path());
    let pp = std::fs::read_to_string(out.join("manifests/site.pp")).unwrap();
    let list: String = planned()
        .iter()
        .map(|b| format!("      '{b}',\n"))
        .collect();
    let m1 = format!(
        "  class {{ 'shoal::gluster':\n    volume      => 'mirror',\n    bricks      => [\n{list}    ],\n    \
         replica     => 2,\n    peer_name   => 'm1.example.org',\n    mount_point => '/srv/shoal',\n  }}\n}}\n"
    );
    assert!(pp.contains(&m1), "m1's declaration:\n{m1}\nnot in:\n{pp}");
    let g3 = format!(
        "node 'g3.example.org' {{\n  class {{ 'shoal::gluster':\n    volume    => 'mirror',\n    bricks    => [\n{list}    ],\n    \
         replica   => 2,\n    peer_name => 'g3.example.org',\n  }}\n}}\n"
    );
    assert!(pp.contains(&g3), "g3's node:\n{g3}\nnot in:\n{pp}");
    // m2 keeps its repository elsewhere; the origin has no part either.
    let m2 = &pp[pp.find("node 'm2.example.org'").unwrap()..];
    let m2 = &m2[..m2.find("\n}\n").unwrap()];
    assert!(!m2.contains("shoal::gluster"), "{m2}");
    assert_eq!(pp.matches("class { 'shoal::gluster':").count(), 3, "{pp}");

    // Hiera node data: the same list.
    for (node, role) in [
        ("m1.example.org", "mirror"),
        ("g2.example.org", "gluster server"),
    ] {
        let text = std::fs::read_to_string(out.join(format!("data/nodes/{node}.yaml"))).unwrap();
        assert!(text.contains(&format!("({role})")), "{text}");
        let y: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let bricks: Vec<String> =
            serde_yaml::from_value(y["shoal::gluster::bricks"].clone()).unwrap();
        assert_eq!(bricks, planned(), "{node}");
        assert_eq!(y["shoal::gluster::peer_name"].as_str(), Some(node));
    }
    assert!(
        !out.join("data/nodes/origin.example.org.yaml").exists() || {
            let t =
                std::fs::read_to_string(out.join("data/nodes/origin.example.org.yaml")).unwrap();
            !t.contains("gluster")
        }
    );

    let (ok, text) = run(Command::new("puppet")
        .args(["parser", "validate"])
        .arg(out.join("manifests/site.pp")));
    assert!(ok, "puppet parser validate:\n{text}");
    let (ok, text) = run(Command::new("puppet-lint")
        .arg("--fail-on-warnings")
        .arg(out.join("manifests/site.pp")));
    assert!(ok && text.trim().is_empty(), "puppet-lint:\n{text}");
    assert!(out.join("modules/shoal/manifests/gluster.pp").exists());
}

#[test]
fn ansible_inventory_carries_the_planned_bricks_and_the_playbook_sets_up_servers_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = render("ansible", tmp.path());
    let home = tmp.path().join("home");
    std::fs::create_dir_all(home.join("tmp")).unwrap();
    let ansible = |program: &str| {
        let mut c = Command::new(program);
        c.current_dir(&out)
            .env("HOME", &home)
            .env("ANSIBLE_HOME", &home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("ANSIBLE_NOCOLOR", "1")
            .env("XDG_CACHE_HOME", tmp.path().join("cache"))
            .env("NO_COLOR", "1")
            .env_remove("ANSIBLE_CONFIG");
        c
    };
    let (ok, text) = run(ansible("ansible-inventory").args(["-i", "inventory.yml", "--list"]));
    assert!(ok, "{text}");
    let json = &text[text.find('{').unwrap()..];
    let v: Value = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut servers: Vec<&str> = v["shoal_gluster"]["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    servers.sort();
    assert_eq!(
        servers,
        ["g2.example.org", "g3.example.org", "m1.example.org"]
    );
    let hv = &v["_meta"]["hostvars"];
    for h in ["m1.example.org", "g2.example.org", "g3.example.org"] {
        let bricks: Vec<String> =
            serde_json::from_value(hv[h]["shoal_gluster_bricks"].clone()).unwrap();
        assert_eq!(bricks, planned(), "{h}");
        assert_eq!(hv[h]["shoal_gluster_volume"], "mirror");
        assert_eq!(hv[h]["shoal_gluster_replica"], 2);
        assert_eq!(hv[h]["shoal_gluster_peer_name"], h);
    }
    assert_eq!(
        hv["m1.example.org"]["shoal_gluster_mount_point"],
        "/srv/shoal"
    );
    assert_eq!(hv["g2.example.org"]["ansible_host"], "192.0.2.12");
    assert!(hv["g2.example.org"]
        .get("shoal_gluster_mount_point")
        .is_none());
    assert!(hv["m2.example.org"].get("shoal_gluster_bricks").is_none());

    let playbook = std::fs::read_to_string(out.join("site.yml")).unwrap();
    let servers_play = playbook
        .find("hosts: shoal_gluster")
        .expect("a play for the gluster servers");
    assert!(servers_play < playbook.find("hosts: shoal_origin").unwrap());
    assert!(playbook.contains("tasks_from: gluster"), "{playbook}");

    let (ok, text) = run(ansible("ansible-playbook").args([
        "-i",
        "inventory.yml",
        "site.yml",
        "--syntax-check",
    ]));
    assert!(ok, "{text}");
    let (ok, text) = run(ansible("ansible-lint").args([
        "--offline",
        "--nocolor",
        "--profile",
        "production",
        "site.yml",
        "inventory.yml",
    ]));
    assert!(
        ok && text.contains("Passed with production profile: 0 failure(s), 0 warning(s)"),
        "ansible-lint:\n{text}"
    );
}
