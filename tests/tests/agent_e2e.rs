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
