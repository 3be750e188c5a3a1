//! `storage.gluster` in site files: the volume is planned with the
//! `shoal-gluster` layout planner, and every bad case gets an error that
//! names the file, the line and the key, and says what to do. Expected lines
//! are found in the test text itself (the line holding a marker).

mod common;
use common::{errors, expect, line_of};
use shoal_provisioner::site::Site;
use std::path::PathBuf;
use std::process::Command;

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

/// A valid site with two mirrors and a chained replica-2 volume on three
/// servers: one of them a mirror, two of them only gluster servers.
fn base() -> String {
    format!(
        "defaults:\n  binary_source: /opt/shoal/shoal-agent\n  profile: debian\n\
         origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n\
         mirrors:\n  - host: m1.example.org\n    repo_dir: /srv/shoal/m1\n\
         \x20 - host: m2.example.org\n    repo_dir: /srv/shoal/m2\n\
         storage:\n  gluster:\n    hosts:\n      - m1.example.org\n\
         \x20     - {{host: g2.example.org, address: 192.0.2.12}}\n\
         \x20     - host: g3.example.org\n        address: 192.0.2.13\n        bricks: [/data/b1, /data/b2]\n\
         \x20   bricks: [/data/b1, /data/b2]\n    replica: 2\n    layout: chained\n    volume: mirror\n\
         \x20   mount: /srv/shoal\n"
    )
}

/// `base()` with one line replaced (the old text must be there).
fn with(old: &str, new: &str) -> String {
    let b = base();
    assert!(b.contains(old), "{old:?} not in the base site");
    b.replacen(old, new, 1)
}

#[test]
fn a_valid_volume_is_planned_in_chained_order() {
    let site = Site::from_yaml(&base(), "site.yaml").unwrap();
    let g = site.gluster().expect("the site has a gluster volume");
    assert_eq!(g.volume, "mirror");
    assert_eq!(g.mount, PathBuf::from("/srv/shoal"));
    assert_eq!(g.mirrors, ["m1.example.org", "m2.example.org"]);
    assert_eq!(g.volume_type(), "replica 2");
    assert_eq!(
        g.bricks(),
        [
            "g2.example.org:/data/b1",
            "g3.example.org:/data/b1",
            "g3.example.org:/data/b2",
            "m1.example.org:/data/b1",
            "m1.example.org:/data/b2",
            "g2.example.org:/data/b2",
        ]
    );
    assert_eq!(g.mount_server(), "g2.example.org");
    let addr: Vec<(&str, &str, bool)> = g
        .servers
        .iter()
        .map(|s| (s.host.as_str(), s.address.as_str(), s.site_host))
        .collect();
    assert_eq!(
        addr,
        [
            ("m1.example.org", "m1.example.org", true),
            ("g2.example.org", "192.0.2.12", false),
            ("g3.example.org", "192.0.2.13", false),
        ]
    );
    // The planner's own order is what the site gives.
    let cli_order = shoal_gluster::plan(
        g.plan.volume_type,
        shoal_gluster::Layout::Chained,
        &shoal_gluster::parse_bricks(&g.bricks()).unwrap(),
    )
    .unwrap();
    assert_eq!(cli_order, g.plan);
}

#[test]
fn defaults_simple_layout_shoal_volume_and_the_mirrors_repo_dir() {
    let t = format!(
        "defaults:\n  binary_source: /opt/shoal/shoal-agent\n\
         origin:\n  host: o.example.org\n  origin_public_key: {KEY}\n\
         mirrors:\n  - host: m1.example.org\n    repo_dir: /srv/mirror\n\
         storage:\n  gluster:\n    hosts: [a.example.org, b.example.org, c.example.org, m1.example.org]\n\
         \x20   bricks: [/bricks/1]\n    replica: 2\n    arbiter: 1\n"
    );
    let t = t.replace(
        "hosts: [a.example.org, b.example.org, c.example.org, m1.example.org]",
        "hosts: [{host: a.example.org, address: 10.0.0.1}, {host: b.example.org, address: 10.0.0.2}, \
         {host: c.example.org, address: 10.0.0.3}]",
    );
    let site = Site::from_yaml(&t, "site.yaml").unwrap();
    let g = site.gluster().unwrap();
    assert_eq!(g.volume, "shoal");
    assert_eq!(g.plan.layout, shoal_gluster::Layout::Simple);
    assert_eq!(g.mount, PathBuf::from("/srv/mirror"));
    assert_eq!(g.volume_type(), "replica 2 arbiter 1");
    assert_eq!(g.type_params(), [("replica", 2), ("arbiter", 1)]);
    assert!(g.plan.warnings().is_empty());
}

#[test]
fn a_site_without_storage_has_no_volume() {
    let t = base();
    let t = &t[..t.find("storage:").unwrap()];
    assert!(Site::from_yaml(t, "site.yaml").unwrap().gluster().is_none());
}

#[test]
fn servers_must_be_listed() {
    let t = with(
        "    hosts:\n      - m1.example.org\n      - {host: g2.example.org, address: 192.0.2.12}\n\
         \x20     - host: g3.example.org\n        address: 192.0.2.13\n        bricks: [/data/b1, /data/b2]\n",
        "",
    );
    expect(
        &t,
        "  gluster:",
        "storage.gluster",
        &["lists no gluster servers", "hosts: [gluster1.example.org"],
    );
    let t = with(
        "    hosts:\n      - m1.example.org\n",
        "    hosts: [] # HERE\n      - m1.example.org\n",
    );
    // An empty flow list followed by items is a YAML error; write it plainly.
    let t = t.replace("    hosts: [] # HERE\n      - m1.example.org\n      - {host: g2.example.org, address: 192.0.2.12}\n      - host: g3.example.org\n        address: 192.0.2.13\n        bricks: [/data/b1, /data/b2]\n", "    hosts: [] # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts",
        &["lists no gluster servers"],
    );
}

#[test]
fn a_server_is_a_site_host_or_has_an_address() {
    let t = with(
        "      - m1.example.org\n",
        "      - m1.exampel.org # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[0]",
        &[
            "'m1.exampel.org' is not a host of this site and has no address",
            "did you mean the site host `m1.example.org`?",
            "{host: m1.exampel.org, address:",
        ],
    );
    let t = with(
        "      - m1.example.org\n",
        "      - {host: m1.example.org, address: 10.1.1.1} # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[0].address",
        &[
            "is a host of this site (mirrors[0] at line 8)",
            "remove `address` here",
        ],
    );
    let t = with(
        "{host: g2.example.org, address: 192.0.2.12}",
        "{address: 192.0.2.12} # HERE",
    );
    expect(&t, "# HERE", "storage.gluster.hosts[1]", &["has no `host`"]);
    let t = with(
        "{host: g2.example.org, address: 192.0.2.12}",
        "{host: 'g2 example', address: 192.0.2.12} # HERE",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[1].host",
        &["is not a host name or IP address"],
    );
    let t = with(
        "{host: g2.example.org, address: 192.0.2.12}",
        "{host: g2.example.org, address: ''} # HERE",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[1].address",
        &["write how the admin machine reaches"],
    );
    let t = with(
        "{host: g2.example.org, address: 192.0.2.12}",
        "{host: M1.example.org, address: 192.0.2.12} # HERE",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[1].host",
        &[
            "already listed at storage.gluster.hosts[0]",
            "ignore letter case",
        ],
    );
}

#[test]
fn unknown_keys_in_a_server_entry() {
    let t = with(
        "        address: 192.0.2.13\n",
        "        adress: 192.0.2.13 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[2].adress",
        &["unknown key `adress`", "did you mean `address`?"],
    );
    let t = with("    layout: chained\n", "    layuot: chained # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.layuot",
        &["unknown key `layuot`", "did you mean `layout`?"],
    );
}

#[test]
fn bricks_are_absolute_and_every_server_has_some() {
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, data/b2] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.bricks[1]",
        &[
            "'data/b2' is not an absolute path",
            "/data/glusterfs/brick1",
        ],
    );
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.bricks",
        &["is empty", "brick directories"],
    );
    let t = with("\n    bricks: [/data/b1, /data/b2]\n", "\n");
    expect(
        &t,
        "      - m1.example.org",
        "storage.gluster.hosts[0]",
        &[
            "server 'm1.example.org' has no bricks",
            "or give this entry its own `bricks`",
        ],
    );
    let t = with(
        "        bricks: [/data/b1, /data/b2]\n",
        "        bricks: [/data/b1, '/data/my brick'] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[2].bricks[1]",
        &["contains ' '"],
    );
}

#[test]
fn replica_arbiter_disperse_and_redundancy() {
    let t = with("    replica: 2\n", "");
    expect(
        &t,
        "  gluster:",
        "storage.gluster",
        &["neither `replica` nor `disperse`", "replica: 3"],
    );
    let t = with(
        "    replica: 2\n",
        "    replica: 2\n    disperse: 3 # HERE\n",
    );
    expect(&t, "# HERE", "storage.gluster.disperse", &["not both"]);
    let t = with(
        "    replica: 2\n",
        "    replica: 2\n    arbiter: 2 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.arbiter",
        &["arbiter 2 is not supported", "`arbiter: 1`"],
    );
    let t = with(
        "    replica: 2\n",
        "    replica: 4\n    arbiter: 1 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.arbiter",
        &["arbiter 1 works only with replica 3"],
    );
    let t = with("    replica: 2\n", "    replica: 1 # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.replica",
        &["replica 1 does not replicate anything"],
    );
    let t = with(
        "    replica: 2\n",
        "    replica: 2\n    redundancy: 1 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.redundancy",
        &["only to `disperse` volumes"],
    );
    let t = with(
        "    replica: 2\n",
        "    disperse: 3\n    arbiter: 1 # HERE\n    redundancy: 1\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.arbiter",
        &["only to `replica` volumes"],
    );
    let t = with("    replica: 2\n", "    disperse: 5 # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.disperse",
        &["needs `redundancy`", "redundancy: 2"],
    );
    let t = with(
        "    replica: 2\n",
        "    disperse: 4\n    redundancy: 2 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.redundancy",
        &[
            "redundancy 2 is too large for disperse 4",
            "use redundancy 1 or less",
        ],
    );
    let t = with("    replica: 2\n", "    replica: -1 # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.replica",
        &["expected u32", "docs/site-yaml.md"],
    );
}

#[test]
fn layout_and_volume_name() {
    let t = with("    layout: chained\n", "    layout: replica # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.layout",
        &[
            "unknown layout `replica`: use `simple` or `chained`",
            "`replica`/`disperse`",
        ],
    );
    let t = with("    volume: mirror\n", "    volume: my mirror # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.volume",
        &[
            "`my mirror` is not a valid gluster volume name",
            "letters, digits",
        ],
    );
    let t = with("    volume: mirror\n", "    volume: all # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.volume",
        &["gluster reserves `all`"],
    );
}

#[test]
fn the_mirrors_on_the_volume() {
    let t = with(
        "    mount: /srv/shoal\n",
        "    mount: /srv/shoal\n    mirrors: [origin.example.org] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.mirrors[0]",
        &["'origin.example.org' is the origin", "remove it here"],
    );
    let t = with(
        "    mount: /srv/shoal\n",
        "    mount: /srv/shoal\n    mirrors: [m3.example.org] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.mirrors[0]",
        &[
            "'m3.example.org' is not a mirror of this site",
            "did you mean `m1.example.org`?",
        ],
    );
    let t = with(
        "    mount: /srv/shoal\n",
        "    mount: /srv/shoal\n    mirrors: [m1.example.org, m1.example.org] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.mirrors[1]",
        &["listed twice"],
    );
    let t = with(
        "    mount: /srv/shoal\n",
        "    mount: /srv/shoal\n    mirrors: [] # HERE\n",
    );
    expect(&t, "# HERE", "storage.gluster.mirrors", &["is empty"]);
    // Only m1 on the volume: m2's repo_dir elsewhere is fine.
    let t = with(
        "    mount: /srv/shoal\n",
        "    mount: /srv/gluster\n    mirrors: [m1.example.org]\n",
    )
    .replace("repo_dir: /srv/shoal/m1", "repo_dir: /srv/gluster/debian");
    let g = Site::from_yaml(&t, "site.yaml").unwrap().gluster().unwrap();
    assert_eq!(g.mirrors, ["m1.example.org"]);
}

#[test]
fn the_mount_point_holds_the_mirrors_repositories() {
    let t = with("    mount: /srv/shoal\n", "    mount: srv/shoal # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.mount",
        &["is not an absolute path"],
    );
    let t = with("    mount: /srv/shoal\n", "    mount: / # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.mount",
        &["is the root folder"],
    );
    let t = with(
        "    repo_dir: /srv/shoal/m2\n",
        "    repo_dir: /var/www/m2 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "mirrors[1].repo_dir",
        &[
            "mirror 'm2.example.org' keeps its repository in /var/www/m2, which is not on the gluster volume mounted at /srv/shoal",
            "or change storage.gluster.mount",
        ],
    );
    let t = with("    mount: /srv/shoal\n", "");
    expect(
        &t,
        "  gluster:",
        "storage.gluster",
        &[
            "has no `mount`",
            "(/srv/shoal/m1, /srv/shoal/m2)",
            "add `mount:`",
        ],
    );
    let t = with(
        "    repo_dir: /srv/shoal/m2\n",
        "    repo_dir: /srv/shoal/m1/sub # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "mirrors[1].repo_dir",
        &[
            "mirrors 'm1.example.org' and 'm2.example.org' would write the same tree",
            "/srv/shoal/m2.example.org",
        ],
    );
    let t = with(
        "    repo_dir: /srv/shoal/m2\n",
        "    repo_dir: /srv/shoal/m2\n    state_dir: /srv/shoal/state-m2 # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "mirrors[1].state_dir",
        &[
            "keeps its state in /srv/shoal/state-m2, on the gluster volume",
            "local disk",
        ],
    );
    // A repo_dir from `defaults:` is reported there.
    let t = base()
        .replace("    repo_dir: /srv/shoal/m1\n", "")
        .replace("    repo_dir: /srv/shoal/m2\n", "")
        .replace(
            "  profile: debian\n",
            "  profile: debian\n  repo_dir: /srv/www # HERE\n",
        )
        .replace(
            "    mount: /srv/shoal\n",
            "    mount: /srv/shoal\n    mirrors: [m1.example.org]\n",
        );
    expect(
        &t,
        "# HERE",
        "defaults.repo_dir",
        &["not on the gluster volume mounted at /srv/shoal"],
    );
}

#[test]
fn bricks_stay_clear_of_the_agents_folders() {
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, /srv/shoal/b2] # HERE\n",
    );
    let e = expect(
        &t,
        "# HERE",
        "storage.gluster.bricks[1]",
        &[
            "brick /srv/shoal/b2 on 'm1.example.org' overlaps its the mount point /srv/shoal",
            "folder of their own",
        ],
    );
    assert!(e.contains("behind its back"), "{e}");
    let t = with(
        "    repo_dir: /srv/shoal/m1\n",
        "    repo_dir: /srv/shoal/m1\n    state_dir: /data\n",
    )
    .replace(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, /data/b2] # COMMON\n",
    );
    let errs = errors(&t);
    let line = line_of(&t, "# COMMON");
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("sites/site.yaml:{line}:"))
            && e.contains("storage.gluster.bricks[0]: brick /data/b1 on 'm1.example.org' overlaps its state_dir /data")),
        "{errs:#?}"
    );
}

#[test]
fn the_layout_planner_refuses_unsafe_volumes() {
    let t = with("    replica: 2\n", "    replica: 3\n").replace(
        "        bricks: [/data/b1, /data/b2]\n",
        "        bricks: [/data/b1, /data/b2, /data/b3]\n",
    );
    // 7 bricks in sets of 3.
    expect(
        &t,
        "    hosts:",
        "storage.gluster.hosts",
        &["7 bricks do not divide into sets of 3 (replica 3): add 2 brick(s) or remove 1"],
    );
    let t = with("    replica: 2\n", "    replica: 3\n    arbiter: 1\n")
        .replace("      - {host: g2.example.org, address: 192.0.2.12}\n", "")
        .replace("[/data/b1, /data/b2]", "[/data/b1, /data/b2, /data/b3]");
    expect(
        &t,
        "    hosts:",
        "storage.gluster.hosts",
        &["replica 3 arbiter 1 puts each set's 3 bricks on 3 different hosts, but the bricks are on only 2 host(s)"],
    );
    // Uneven counts (m1: 1 brick, g2: 2, g3: 3): simple puts two bricks of
    // g3 into set 3; chained balances them.
    let uneven = |g3: &str| {
        base()
            .replace(
                "{host: g2.example.org, address: 192.0.2.12}",
                "{host: g2.example.org, address: 192.0.2.12, bricks: [/data/b1, /data/b2]}",
            )
            .replace(
                "        bricks: [/data/b1, /data/b2]\n",
                &format!("        bricks: {g3}\n"),
            )
            .replace(
                "\n    bricks: [/data/b1, /data/b2]\n",
                "\n    bricks: [/data/b1]\n",
            )
    };
    let ok = uneven("[/data/b1, /data/b2, /data/b3]");
    assert!(Site::from_yaml(&ok, "site.yaml").is_ok(), "{ok}");
    let t = ok.replace("    layout: chained\n", "    layout: simple # HERE\n");
    expect(
        &t,
        "# HERE",
        "storage.gluster.layout",
        &[
            "the simple layout puts `g3.example.org:/data/b2` and `g3.example.org:/data/b3`",
            "use the chained layout",
        ],
    );
    let t = ok.replace("    layout: chained\n", "");
    expect(
        &t,
        "  gluster:",
        "storage.gluster",
        &["the simple layout puts"],
    );
    // g3 with 5 of 8 bricks but only 4 sets: no layout can place them.
    let t = uneven("[/data/b1, /data/b2, /data/b3, /data/b4, /data/b5] # HERE");
    expect(
        &t,
        "# HERE",
        "storage.gluster.hosts[2].bricks",
        &[
            "host `g3.example.org` has 5 bricks but the volume has only 4 set(s)",
            "remove 1 brick(s)",
        ],
    );
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, /data//b1/] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.bricks[1]",
        &["ends with '/'"],
    );
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, /data/b1/inner] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.bricks",
        &["lies inside brick", "sibling directories"],
    );
    let t = with(
        "\n    bricks: [/data/b1, /data/b2]\n",
        "\n    bricks: [/data/b1, /data/b1] # HERE\n",
    );
    expect(
        &t,
        "# HERE",
        "storage.gluster.bricks",
        &["is listed more than once"],
    );
}

#[test]
fn shoal_check_prints_the_planned_sets_or_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let shoal = env!("CARGO_BIN_EXE_shoal");
    let good = dir.path().join("site.yaml");
    std::fs::write(&good, base()).unwrap();
    let out = Command::new(shoal)
        .arg("check")
        .arg("--site")
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(
            "  gluster volume 'mirror' (replica 2, chained layout): 6 bricks on 3 server(s), mounted at /srv/shoal on m1.example.org, m2.example.org\n\
             \x20   set 1: g2.example.org:/data/b1 g3.example.org:/data/b1\n\
             \x20   set 2: g3.example.org:/data/b2 m1.example.org:/data/b1\n\
             \x20   set 3: m1.example.org:/data/b2 g2.example.org:/data/b2\n\
             \x20 warning: replica 2 volumes are prone to split-brain"
        ),
        "{stdout}"
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        base().replace("    layout: chained\n", "    layout: ring\n"),
    )
    .unwrap();
    let out = Command::new(shoal)
        .arg("check")
        .arg("--site")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line = line_of(&base(), "    layout: chained");
    assert!(
        stderr.contains(&format!("{}:{line}:", bad.display()))
            && stderr.contains("storage.gluster.layout: unknown layout `ring`"),
        "{stderr}"
    );
}
