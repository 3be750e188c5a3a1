//! Every kind of bad site file gets an error that names the file, the line
//! and the key, and says what to do. Expected lines are found in the test
//! text itself (the line holding a marker), not taken from the parser.

mod common;
use common::{errors, expect, line_of};
use shoal_provisioner::site::Site;

const KEY: &str = "ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

fn base() -> String {
    format!(
        "defaults:\n  binary_source: /opt/shoal/shoal-agent\n  profile: debian\n\
         origin:\n  host: origin.example.org\n  origin_public_key: {KEY}\n\
         mirrors:\n  - host: m1.example.org\n  - host: m2.example.org\n"
    )
}

#[test]
fn the_base_is_valid() {
    let site = Site::from_yaml(&base(), "site.yaml").unwrap();
    assert_eq!(site.hosts.len(), 3);
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let t = base().replace(
        "  - host: m2.example.org\n",
        "  - host: m2.example.org\n    lisen: 0.0.0.0:1\n",
    );
    expect(
        &t,
        "lisen",
        "mirrors[1].lisen",
        &[
            "unknown key `lisen`",
            "did you mean `listen`?",
            "docs/site-yaml.md",
        ],
    );
}

#[test]
fn unknown_top_level_key() {
    let t = format!("{}mirros: []\n", base());
    expect(
        &t,
        "mirros",
        "mirros",
        &["unknown key `mirros`", "did you mean `mirrors`?"],
    );
}

#[test]
fn missing_origin() {
    let t = "defaults:\n  binary_source: /opt/x\nmirrors:\n  - host: m1\n";
    let e = errors(t);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("sites/site.yaml:1:1: origin: missing"),
        "{}",
        e[0]
    );
    assert!(e[0].contains("add a section like `origin:"), "{}", e[0]);
    // An empty file says the same.
    let e = errors("");
    assert!(e[0].contains("origin: missing"), "{}", e[0]);
}

#[test]
fn mirror_without_host() {
    let t = base().replace("  - host: m2.example.org\n", "  - listen: 0.0.0.0:1234\n");
    expect(
        &t,
        "listen: 0.0.0.0:1234",
        "mirrors[1]",
        &["has no `host`", "add `host:"],
    );
}

#[test]
fn duplicate_host() {
    let t = base().replace(
        "  - host: m2.example.org\n",
        "  - host: m1.example.org # again\n",
    );
    let e = expect(
        &t,
        "# again",
        "mirrors[1].host",
        &["duplicate host 'm1.example.org'", "list it once"],
    );
    assert!(
        e.contains(&format!("line {}", line_of(&t, "- host: m1.example.org"))),
        "{e}"
    );
    let t = base().replace(
        "  - host: m2.example.org\n",
        "  - host: origin.example.org\n",
    );
    expect(
        &t,
        "- host: origin.example.org",
        "mirrors[1].host",
        &["duplicate host", "already listed at origin"],
    );
}

#[test]
fn port_clash_between_agents_on_one_machine() {
    // Same address, same HTTP port.
    let t = base()
        .replace(
            "  host: origin.example.org\n",
            "  host: origin.example.org\n  address: 10.1.1.1\n",
        )
        .replace(
            "  - host: m1.example.org\n",
            "  - host: m1.example.org\n    address: 10.1.1.1 # same machine\n",
        );
    let e = expect(
        &t,
        "- host: m1",
        "mirrors[0]",
        &["port clash", "same machine (10.1.1.1)", "port 8780"],
    );
    assert!(e.contains("distinct ports"), "{e}");
}

#[test]
fn port_clash_includes_the_bittorrent_port() {
    // The mirror's HTTP port 8779 is free, but its BitTorrent port (8780)
    // is the origin's HTTP port.
    let t = base()
        .replace(
            "  host: origin.example.org\n",
            "  host: origin.example.org\n  listen: 10.2.0.1:8780\n",
        )
        .replace(
            "  - host: m1.example.org\n",
            "  - host: m1.example.org\n    listen: 10.2.0.1:8779 # bt clash\n",
        );
    expect(
        &t,
        "# bt clash",
        "mirrors[0].listen",
        &["port clash", "port 8780", "listen port + 1", "such as"],
    );
    // And the other way round: HTTP 8781 is the origin's BitTorrent port.
    let t = base()
        .replace(
            "  host: origin.example.org\n",
            "  host: origin.example.org\n  listen: 10.2.0.1:8780\n",
        )
        .replace(
            "  - host: m1.example.org\n",
            "  - host: m1.example.org\n    listen: 10.2.0.1:8781 # http clash\n",
        );
    expect(
        &t,
        "# http clash",
        "mirrors[0].listen",
        &["port clash", "port 8781", "BitTorrent port"],
    );
    // Different machines may use the same ports.
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    listen: 0.0.0.0:8780\n",
    );
    Site::from_yaml(&t, "s.yaml").unwrap();
}

#[test]
fn port_clash_on_one_host() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    manage_web: true\n    web_port: 8781 # web\n",
    );
    expect(
        &t,
        "# web",
        "mirrors[0].web_port",
        &[
            "port clash on 'm1.example.org'",
            "port 8781",
            "another port",
        ],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    listen: 0.0.0.0:9000\n    peer_listen: 0.0.0.0:9000 # same\n",
    );
    expect(&t, "# same", "mirrors[0].peer_listen", &["separate ports"]);
}

#[test]
fn mirror_without_the_origins_public_key() {
    let t = base().replace(&format!("  origin_public_key: {KEY}\n"), "");
    let e = errors(&t);
    assert_eq!(e.len(), 2, "one per mirror: {e:?}");
    expect(
        &t,
        "- host: m1.example.org",
        "mirrors[0]",
        &[
            "no origin_public_key",
            "shoal-agent keygen",
            "origin_public_key: ...",
        ],
    );
}

#[test]
fn malformed_public_key() {
    let t = base().replace(KEY, "ed25519:abc");
    expect(
        &t,
        "ed25519:abc",
        "origin.origin_public_key",
        &[
            "not an ed25519 public key",
            "64 hex digits",
            "shoal-agent keygen",
        ],
    );
}

#[test]
fn bad_profile() {
    let t = base().replace("  profile: debian\n", "  profile: debain\n");
    expect(
        &t,
        "debain",
        "defaults.profile",
        &[
            "unknown profile 'debain'",
            "use one of debian, rpm, generic",
        ],
    );
    // A mirror may not apply a different profile than the origin publishes.
    let t = base().replace(
        "  - host: m2.example.org\n",
        "  - host: m2.example.org\n    profile: rpm\n",
    );
    expect(
        &t,
        "profile: rpm",
        "mirrors[1].profile",
        &["the origin publishes debian", "profile: debian"],
    );
}

#[test]
fn bad_duration() {
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  poll_interval: soon\n",
    );
    expect(
        &t,
        "soon",
        "defaults.poll_interval",
        &["'soon' is not a duration", "30s, 5m, 1h, 7d"],
    );
    let t = base().replace(
        "  host: origin.example.org\n",
        "  host: origin.example.org\n  manifest_ttl: 10s\n",
    );
    expect(
        &t,
        "manifest_ttl",
        "origin.manifest_ttl",
        &["at least 1m", "7d"],
    );
}

#[test]
fn bad_size() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    upload_limit: 4 parsecs\n",
    );
    expect(
        &t,
        "parsecs",
        "mirrors[0].upload_limit",
        &["unknown size unit", "KiB", "bytes per second"],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    download_limit: -5\n",
    );
    expect(&t, "-5", "mirrors[0].download_limit", &["negative"]);
}

#[test]
fn malformed_upstream_url() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    upstreams: [\"http://origin example:8780\"]\n",
    );
    expect(
        &t,
        "upstreams",
        "mirrors[0].upstreams[0]",
        &["malformed", "write http://HOST:PORT"],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    upstreams:\n      - http://origin.example.org:http\n",
    );
    expect(
        &t,
        ":http",
        "mirrors[0].upstreams[0]",
        &["'http' is not a port number"],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    upstreams:\n      - nosuchhost.example.org\n",
    );
    expect(
        &t,
        "nosuchhost",
        "mirrors[0].upstreams[0]",
        &["neither a host of this site nor a URL"],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    upstreams: [m1.example.org]\n",
    );
    expect(
        &t,
        "upstreams: [m1",
        "mirrors[0].upstreams[0]",
        &["cannot follow itself"],
    );
}

#[test]
fn role_specific_parameters_in_the_wrong_place() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    publish_interval: 1m\n",
    );
    expect(
        &t,
        "publish_interval",
        "mirrors[0].publish_interval",
        &["applies only to the origin", "move it to `origin:`"],
    );
    let t = base().replace(
        "  host: origin.example.org\n",
        "  host: origin.example.org\n  upstreams: [m1.example.org]\n",
    );
    expect(
        &t,
        "upstreams",
        "origin.upstreams",
        &["applies only to mirrors"],
    );
}

#[test]
fn wrong_type_and_yaml_syntax() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    web_port: eighty\n",
    );
    expect(
        &t,
        "eighty",
        "mirrors[0].web_port",
        &["invalid type", "docs/site-yaml.md"],
    );
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n   bad: [unclosed\n",
    );
    let e = errors(&t);
    assert!(e[0].starts_with("sites/site.yaml:"), "{}", e[0]);
    assert!(e[0].contains("fix the YAML syntax"), "{}", e[0]);
}

#[test]
fn paths_accounts_and_binary() {
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  repo_dir: srv/mirror\n",
    );
    expect(
        &t,
        "srv/mirror",
        "defaults.repo_dir",
        &["not an absolute path"],
    );
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  repo_dir: /srv/my mirror\n",
    );
    expect(
        &t,
        "my mirror",
        "defaults.repo_dir",
        &["contains ' '", "rename the folder"],
    );
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  state_dir: /srv/shoal/repo/state\n",
    );
    expect(
        &t,
        "state_dir",
        "defaults.state_dir",
        &["must not contain each other", "outside repo_dir"],
    );
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  manage_user: true\n",
    );
    expect(
        &t,
        "manage_user",
        "defaults.manage_user",
        &["must not be root", "such as shoal"],
    );
    let t = base().replace("  binary_source: /opt/shoal/shoal-agent\n", "");
    expect(
        &t,
        "origin:",
        "origin",
        &["no binary_source", "defaults: {binary_source"],
    );
    let t = base().replace(
        "  profile: debian\n",
        "  profile: debian\n  binary_checksum: sha256:abc\n",
    );
    expect(
        &t,
        "sha256:abc",
        "defaults.binary_checksum",
        &["64 hex digits"],
    );
    let t = base().replace("  profile: debian\n", "  profile: debian\n  user: Shoal\n");
    expect(
        &t,
        "Shoal",
        "defaults.user",
        &["not a valid user or group name"],
    );
}

#[test]
fn all_problems_are_reported_at_once_in_line_order() {
    let t = base()
        .replace("  profile: debian\n", "  profile: debain\n")
        .replace(
            "  - host: m1.example.org\n",
            "  - host: m1.example.org\n    poll_interval: soon\n",
        );
    let e = errors(&t);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[0].contains("defaults.profile") && e[1].contains("mirrors[0].poll_interval"),
        "{e:?}"
    );
}

#[test]
fn control_characters_are_refused() {
    let t = base().replace(
        "  - host: m1.example.org\n",
        "  - host: m1.example.org\n    agent_name: \"a\\nb\"\n",
    );
    expect(
        &t,
        "agent_name",
        "mirrors[0].agent_name",
        &["control character"],
    );
}
