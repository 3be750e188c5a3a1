//! `shoal status` on a site with several repositories: real origins and
//! mirrors (two repositories whose mirrors run on one host) on 127.0.0.1,
//! read over HTTP and shown in one table per repository, each measured
//! against its own origin.

use shoal_e2e::agents::{keygen, publish, start_mirror, start_origin, Agent};
use shoal_e2e::files::write_tree;
use std::process::Command;

/// An origin with a published generation and a mirror that applied it.
fn network(dir: &std::path::Path, name: &str) -> (Agent, Agent) {
    let repo = dir.join(format!("{name}-src"));
    write_tree(&repo, &[("index", name), ("pool/file", "bytes\n")]);
    let (key, public) = keygen(&dir.join(name));
    let origin = start_origin(dir, &format!("{name}-origin"), &repo, &key, "generic", &[]);
    let g = publish(&origin.state);
    let mirror = start_mirror(
        dir,
        &format!("{name}-mirror"),
        &public,
        &[origin.url()],
        &[],
    );
    mirror.wait_generation(g);
    (origin, mirror)
}

#[test]
fn status_shows_each_repository_of_a_site_in_a_table_of_its_own() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    for n in ["alpha", "beta"] {
        std::fs::create_dir_all(dir.join(n)).unwrap();
    }
    let (ao, am) = network(dir, "alpha");
    let (bo, bm) = network(dir, "beta");
    // Publish a second generation on beta only: its lag is its own business.
    write_tree(&bo.repo, &[("news", "two\n")]);
    let g2 = publish(&bo.state);
    bm.wait_generation(g2);

    let entry = |a: &Agent, extra: &str| {
        format!(
            "{{{extra}listen: '{}', peer_listen: '{}', advertise_url: '{}', repo_dir: {}, state_dir: {}}}",
            a.http,
            a.peer,
            a.url(),
            a.repo.display(),
            a.state.display()
        )
    };
    let site = format!(
        "name: two\ndefaults:\n  binary_source: /srv/dist/shoal-agent\nrepositories:\n\
         \x20 - name: alpha\n    origin: {}\n    mirrors:\n      - {}\n\
         \x20 - name: beta\n    origin: {}\n    mirrors:\n      - {}\n",
        entry(&ao, "host: alpha.example.org, origin_public_key: 'ed25519:3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29', "),
        entry(&am, "host: mirror.example.org, "),
        entry(&bo, "host: beta.example.org, origin_public_key: 'ed25519:8f0d73653215771de243a63ac048a18b59da293b6a27bcceb6a42d62a3a8d02a', "),
        entry(&bm, "host: mirror.example.org, "),
    );
    let file = dir.join("site.yaml");
    std::fs::write(&file, &site).unwrap();
    let out = Command::new(shoal_e2e::bin("shoal"))
        .args(["status", "--site"])
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "shoal status failed:\n{text}\n{}\n{site}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (alpha, beta) = text
        .split_once("repository beta:")
        .unwrap_or_else(|| panic!("no table for beta:\n{text}"));
    assert!(alpha.starts_with("repository alpha:"), "{text}");
    for (table, own, other) in [
        (alpha, [&ao, &am], [&bo, &bm]),
        (beta, [&bo, &bm], [&ao, &am]),
    ] {
        for a in own {
            assert!(
                table.contains(&a.url()),
                "{} missing from\n{table}",
                a.url()
            );
        }
        for a in other {
            assert!(
                !table.contains(&a.url()),
                "{} in the wrong table\n{table}",
                a.url()
            );
        }
        assert_eq!(table.matches("mirror.example.org").count(), 1, "{table}");
    }

    // JSON names each agent's repository.
    let out = Command::new(shoal_e2e::bin("shoal"))
        .args(["status", "--json", "--site"])
        .arg(&file)
        .output()
        .unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let repos: Vec<&str> = list
        .iter()
        .map(|v| v["repository"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["alpha", "alpha", "beta", "beta"]);
    assert_eq!(list[3]["status"]["generation_applied"], g2);
}
