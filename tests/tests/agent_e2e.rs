//! End to end: an origin and mirrors as separate processes on loopback
//! addresses, syncing a real reprepro archive over BitTorrent.

use shoal_e2e::agents::*;
use shoal_e2e::repo::Reprepro;
use std::time::Duration;

const SKIP: &[&str] = &["project/trace"];

/// Initial sync to three mirrors, an update with an addition, a change and
/// a deletion (honoured only after the grace period), mirrors feeding each
/// other, then the origin goes away and a fourth mirror joins from the
/// mirrors alone.
#[test]
fn origin_three_mirrors_update_grace_and_origin_loss() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = Reprepro::new(&dir.join("archive"), &dir.join("debs"));
    for i in 0..40 {
        repo.add(&format!("pkg{i:02}"), "1.0", 20_000 + i * 7_000);
    }
    let (key, pubkey) = keygen(dir);
    // A slow origin (2 MB/s up) makes mirrors fetch pieces from each other.
    let mut origin = start_origin(
        dir,
        "origin",
        &repo.public,
        &key,
        "debian",
        &["--upload-limit", "2MB"],
    );
    let g1 = publish(&origin.state);
    assert_eq!(g1, 1);

    let up = vec![origin.url()];
    let grace = ["--delete-grace", "4s"];
    let m: Vec<Agent> = (1..=3)
        .map(|i| start_mirror(dir, &format!("m{i}"), &pubkey, &up, &grace))
        .collect();
    for a in &m {
        a.wait_generation(g1);
        assert_same_tree(&repo.public, &a.repo, SKIP);
        let trace =
            std::fs::read_to_string(a.repo.join(format!("project/trace/{}", a.proc.name))).unwrap();
        assert!(
            trace.contains("Archive serial:") && trace.contains("Running on host: m"),
            "{trace}"
        );
        assert!(trace.contains("Creator: shoal-agent"), "{trace}");
    }

    // Update: add a package, rebuild another, remove one.
    repo.add("newpkg", "1.0", 300_000);
    repo.remove("pkg05");
    repo.add("pkg07", "2.0", 50_000);
    let removed = repo.pool_file("pkg05", "1.0");
    assert!(!repo.public.join(&removed).exists());
    let g2 = publish(&origin.state);
    assert_eq!(g2, 2);
    for a in &m {
        a.wait_generation(g2);
        // The removed package stays for clients holding older indices...
        assert!(
            a.repo.join(&removed).exists(),
            "{} deleted {removed} before the grace period",
            a.proc.name
        );
        assert_eq!(
            std::fs::read(a.repo.join("dists/stable/Release")).unwrap(),
            std::fs::read(repo.public.join("dists/stable/Release")).unwrap()
        );
        assert!(a.repo.join(repo.pool_file("newpkg", "1.0")).exists());
    }
    // ...and goes once it has passed.
    for a in &m {
        wait_for(
            &format!("{} to remove {removed} after the grace period", a.proc.name),
            Duration::from_secs(60),
            || !a.repo.join(&removed).exists(),
        );
        assert_same_tree(&repo.public, &a.repo, SKIP);
        let st = a.status().unwrap();
        assert_eq!(st.pending_deletions, 0);
        assert!(st.last_error.is_none(), "{:?}", st.last_error);
    }

    // Mirrors fed each other. librqbit records the client name only of
    // peers this side connected to, so a transfer between two mirrors is
    // attributed by the side that opened the connection: received bytes
    // (`bytes_down`) when the receiver dialled, sent bytes (`bytes_up`)
    // when the sender did. Count both.
    let from_mirrors: u64 = m
        .iter()
        .map(|a| {
            let st = a.status().unwrap();
            st.bytes_down.get("mirrors").copied().unwrap_or(0)
                + st.bytes_up.get("mirrors").copied().unwrap_or(0)
        })
        .sum();
    let from_origin: u64 = m
        .iter()
        .map(|a| {
            a.status()
                .unwrap()
                .bytes_down
                .get("origin")
                .copied()
                .unwrap_or(0)
        })
        .sum();
    eprintln!("bytes from origin {from_origin}, between mirrors {from_mirrors}");
    assert!(from_origin > 0);
    assert!(
        from_mirrors > 0,
        "no mirror received anything from another mirror"
    );

    // The origin goes away; a new mirror that only knows m2 still converges,
    // with every byte from mirrors.
    origin.proc.stop();
    let m4 = start_mirror(dir, "m4", &pubkey, &[m[1].url()], &[]);
    m4.wait_generation(g2);
    assert_same_tree(&repo.public, &m4.repo, SKIP);
    let st = m4.status().unwrap();
    assert_eq!(st.bytes_down.get("origin").copied().unwrap_or(0), 0);
    assert!(
        st.bytes_down.get("mirrors").copied().unwrap_or(0) > 0,
        "{:?}",
        st.bytes_down
    );
    assert!(
        st.bytes_down_by_peer.keys().all(|k| k.starts_with('m')),
        "{:?}",
        st.bytes_down_by_peer
    );
}

/// A mirror killed in the middle of a download restarts and converges,
/// and its live tree never holds a partial or temporary file.
#[test]
fn mirror_killed_mid_sync_converges_after_restart() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    for i in 0..8 {
        std::fs::write(src.join(format!("data/f{i}")), vec![i as u8; 1_500_000]).unwrap();
    }
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--upload-limit", "1MB"],
    );
    let g = publish(&origin.state);
    let mut m = start_mirror(dir, "m1", &pubkey, &[origin.url()], &[]);
    wait_for(
        "the mirror to start downloading",
        Duration::from_secs(60),
        || {
            m.status()
                .map(|s| s.packs.iter().any(|p| p.have_bytes > 0))
                .unwrap_or(false)
        },
    );
    m.proc.crash();
    // Nothing partial is visible: either nothing yet, or whole files.
    let live = tree(&m.repo, &[]);
    for (k, v) in &live {
        assert!(
            !k.contains(".shoal-tmp."),
            "temporary file {k} in the live tree"
        );
        let orig = std::fs::read(src.join(k)).unwrap();
        assert_eq!(v, &orig, "{k} is partial");
    }
    let (http, peer) = (m.http, m.peer);
    let mut cmd = std::process::Command::new(shoal_e2e::bin("shoal-agent"));
    cmd.args([
        "mirror",
        "--name",
        "m1",
        "--origin-key",
        &pubkey,
        "--upstream",
        &origin.url(),
    ])
    .arg("--repo")
    .arg(&m.repo)
    .arg("--state")
    .arg(&m.state)
    .args([
        "--listen",
        &http.to_string(),
        "--peer-listen",
        &peer.to_string(),
        "--poll-interval",
        "1s",
    ]);
    let again = Agent {
        proc: Proc::spawn("m1-restarted", cmd, &dir.join("m1b.log")),
        http,
        peer,
        repo: m.repo.clone(),
        state: m.state.clone(),
    };
    again.wait_up();
    again.wait_generation(g);
    assert_same_tree(&src, &again.repo, SKIP);
    let st = again.status().unwrap();
    assert!(st.last_check_seconds.is_some() || st.packs.iter().all(|p| p.state == "seeding"));
}

/// Rewrites an agent's stored generation `g` as a format 2 agent wrote it
/// (one signed body with every entry, a format 2 head, no chunks).
fn downgrade_state(state: &std::path::Path, key: &shoal_manifest::signed::PrivateKey, g: u64) {
    use shoal_manifest::{Head, Manifest, Root, Sha256Hash};
    let docs = state.join("docs");
    let env = std::fs::read(docs.join(format!("manifests/{g}.shoal"))).unwrap();
    let root = Root::from_body(&key.public().open("manifest", &env).unwrap()).unwrap();
    let bodies: Vec<Vec<u8>> = root
        .chunks
        .iter()
        .map(|c| {
            let z = std::fs::read(docs.join(format!("chunks/{}.zst", c.sha256))).unwrap();
            shoal_manifest::decompress_chunk(&z).unwrap()
        })
        .collect();
    let m = Manifest::from_root(root, bodies).unwrap();
    let mut legacy = serde_json::to_value(&m.header).unwrap();
    legacy["format"] = 2.into();
    legacy["entries"] = serde_json::to_value(m.to_entries()).unwrap();
    let body = serde_json::to_vec(&legacy).unwrap();
    std::fs::write(
        docs.join(format!("manifests/{g}.shoal")),
        key.seal("manifest", &body),
    )
    .unwrap();
    let head = Head {
        format: 2,
        generation: g,
        manifest_sha256: Sha256Hash::of(&body),
        created: m.header.created,
        expires: m.header.expires,
    };
    std::fs::write(docs.join("head.shoal"), key.seal("head", &head.body())).unwrap();
    std::fs::remove_dir_all(docs.join("chunks")).unwrap();
    let _ = std::fs::remove_dir_all(docs.join("deltas"));
}

/// The upgrade to format 3 (chunked manifests): an origin and a mirror
/// whose state folders hold a format 2 generation convert it when they
/// start. The origin publishes a format 3 generation at once although the
/// tree did not change, and the mirror follows it by delta (the converted
/// manifests hash alike on both), fetching no manifest in full.
#[test]
fn a_format_2_state_is_converted_on_upgrade() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    for i in 0..300 {
        std::fs::write(src.join(format!("data/f{i:03}")), format!("{i}\n")).unwrap();
    }
    let (keyfile, pubkey) = keygen(dir);
    let key = shoal_manifest::signed::PrivateKey::from_file_text(
        &std::fs::read_to_string(&keyfile).unwrap(),
    )
    .unwrap();
    let mut origin = start_origin(dir, "origin", &src, &keyfile, "generic", &[]);
    assert_eq!(publish(&origin.state), 1);
    let mut m = start_mirror(dir, "m1", &pubkey, &[origin.url()], &[]);
    m.wait_generation(1);
    m.proc.stop();
    origin.proc.stop();
    downgrade_state(&origin.state, &key, 1);
    downgrade_state(&m.state, &key, 1);

    // The same names: the same state folders.
    let origin = start_origin(dir, "origin", &src, &keyfile, "generic", &[]);
    assert_eq!(publish(&origin.state), 2, "a new generation at once");
    let log = std::fs::read_to_string(&origin.proc.log).unwrap();
    assert!(log.contains("converted the stored manifest"), "{log}");
    let m = start_mirror(dir, "m1", &pubkey, &[origin.url()], &[]);
    m.wait_generation(2);
    assert_same_tree(&src, &m.repo, SKIP);
    let log = std::fs::read_to_string(&m.proc.log).unwrap();
    assert!(log.contains("converted the stored manifest"), "{log}");
    assert!(
        !log.contains("manifest chunks gathered"),
        "the mirror fetched a manifest in full instead of following the delta:\n{log}"
    );
}
