//! The data plane's failure modes, each reproduced with real agents:
//! compaction of a pack's last content, a mirror fetching packs a newer
//! generation retired, leftover temp files, a spoofed announce, a full
//! disk during download and during apply, an unreachable origin, and
//! what a tree of tiny files costs on the wire.

use sha2::{Digest, Sha256};
use shoal_e2e::agents::{
    assert_same_tree, get_text, keygen, publish, start_mirror, start_mirror_at, start_mirror_in,
    start_origin, tree, wait_for, Agent,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Every path under `root` that is one of Shoal's temp names.
fn temp_files(root: &Path) -> Vec<String> {
    tree(root, &[])
        .into_keys()
        .filter(|p| p.contains(".shoal-tmp."))
        .collect()
}

/// An origin (generic profile) publishing `src` as generation 1, and a
/// mirror `m1` (with `mirror_flags`) that has applied it.
fn origin_and_mirror(
    dir: &Path,
    src: &Path,
    key: &Path,
    pubkey: &str,
    mirror_flags: &[&str],
) -> (Agent, Agent) {
    let origin = start_origin(dir, "origin", src, key, "generic", &[]);
    assert_eq!(publish(&origin.state), 1);
    let m1 = start_mirror(dir, "m1", pubkey, &[origin.url()], mirror_flags);
    m1.wait_generation(1);
    (origin, m1)
}

fn log_of(a: &Agent) -> String {
    std::fs::read_to_string(&a.proc.log).unwrap_or_default()
}

/// Distinct contents of `size` bytes (not a multiple of a 16 KiB piece),
/// sorted by SHA-256: what order they take inside a pack.
fn contents_by_sha(n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut d = vec![(i % 251) as u8; size];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            d
        })
        .collect();
    v.sort_by_key(|d| <[u8; 32]>::from(Sha256::digest(d)));
    v
}

/// Regression: a content that was the last file of its pack (so the pack's
/// torrent hashed its partial last piece unpadded) was compacted into the
/// middle of a new pack with that unpadded hash: the new pack checked one
/// piece short and every publish failed ("pack N does not check complete
/// … 16384 bytes short"). The mirror then re-placed the compacted content,
/// a hard link of the inode it already had, and left a temp file behind.
#[test]
fn compacting_a_packs_last_content_publishes_and_leaves_no_temp_files() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    let c = contents_by_sha(40, 20_000);
    // Generation 1: six contents in one pack; c[10] has the highest hash
    // of them, so it is the pack's last file.
    let first = [0usize, 1, 2, 3, 4, 10];
    for i in first {
        std::fs::write(src.join(format!("pool/f{i}")), &c[i]).unwrap();
    }
    let (key, pubkey) = keygen(dir);
    let (origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &["--delete-grace", "0s"]);
    // Generation 2: only c[10] stays (1/6 of the pack is live: compacted),
    // and two contents hashing above it join, so it lands mid-pack.
    for i in [0usize, 1, 2, 3, 4] {
        std::fs::remove_file(src.join(format!("pool/f{i}"))).unwrap();
    }
    for i in [20usize, 30] {
        std::fs::write(src.join(format!("pool/f{i}")), &c[i]).unwrap();
    }
    assert_eq!(publish(&origin.state), 2);
    let st = origin.status().unwrap();
    assert!(
        st.last_error.is_none(),
        "publish left an error: {:?}",
        st.last_error
    );
    m1.wait_generation(2);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(
        temp_files(&m1.repo).is_empty(),
        "{:?}",
        temp_files(&m1.repo)
    );
    // A third generation on top works too (no damaged store left behind).
    std::fs::write(src.join("pool/f31"), &c[31]).unwrap();
    assert_eq!(publish(&origin.state), 3);
    m1.wait_generation(3);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(!log_of(&origin).contains("does not check complete"));
}

/// Regression: a generation published right after another retired the
/// packs a mirror was still fetching; the origin stopped seeding them at
/// once and the mirror waited on peers that no longer had them.
#[test]
fn retired_packs_are_still_seeded_so_a_mirror_behind_converges() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big-1"), vec![7u8; 3_000_000]).unwrap();
    let (key, pubkey) = keygen(dir);
    // 400 kB/s: the mirror needs several seconds for generation 1.
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--upload-limit", "400KB"],
    );
    assert_eq!(publish(&origin.state), 1);
    let m1 = start_mirror(
        dir,
        "m1",
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "0s"],
    );
    wait_for(
        "m1 to start fetching generation 1",
        Duration::from_secs(60),
        || {
            m1.status()
                .map(|s| s.packs.iter().any(|p| p.have_bytes > 0))
                .unwrap_or(false)
        },
    );
    // Generation 2 drops every content of generation 1's only pack.
    std::fs::remove_file(src.join("big-1")).unwrap();
    std::fs::write(src.join("small-2"), b"two").unwrap();
    assert_eq!(publish(&origin.state), 2);
    // The origin still seeds the retired pack 1.
    let st = origin.status().unwrap();
    assert!(
        st.packs.iter().any(|p| p.id == 1 && p.state == "seeding"),
        "retired pack 1 is no longer seeded: {:?}",
        st.packs
    );
    m1.wait_generation(2);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    let log = log_of(&m1);
    assert!(!log.contains("stalled"), "{log}");
    // The mirror dropped pack 1 once generation 2 was applied.
    wait_for("m1 to drop pack 1", Duration::from_secs(30), || {
        m1.status()
            .map(|s| s.packs.iter().all(|p| p.id != 1))
            .unwrap_or(false)
    });
}

/// The spoof seen in the field: `POST /v1/announce` replaced a mirror's
/// entry with `role: origin, generation 999` at another address.
#[test]
fn spoofed_announces_are_refused_and_change_nothing() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"hello").unwrap();
    let (key, pubkey) = keygen(dir);
    let (origin, _m1) = origin_and_mirror(dir, &src, &key, &pubkey, &[]);
    wait_for("the origin to know m1", Duration::from_secs(30), || {
        origin
            .status()
            .map(|s| s.peers.iter().any(|p| p.name == "m1"))
            .unwrap_or(false)
    });
    let before = origin
        .status()
        .unwrap()
        .peers
        .into_iter()
        .find(|p| p.name == "m1")
        .unwrap();
    let post = |body: &str| {
        let r = ureq::post(&format!("{}/v1/announce", origin.url()))
            .set("Content-Type", "application/json")
            .send_string(body);
        match r {
            Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => panic!("announce request failed: {e}"),
        }
    };
    // The unsigned entry of old.
    let (code, body) = post(
        r#"{"name":"m1","role":"origin","url":"http://127.0.0.99:1","peer_addr":"127.0.0.99:2","generation":999}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("bad announce"), "{body}");
    // A signed-looking entry with m1's fields but a made-up signature.
    let (code, body) = post(&format!(
        r#"{{"info":{{"name":"m1","role":"origin","url":"http://127.0.0.99:1","peer_addr":"127.0.0.99:2","generation":999}},"key":"{pubkey}","at":{},"sig":"AAAA"}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    ));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("signature"), "{body}");
    // m1's entry is as m1 announced it.
    let after = origin
        .status()
        .unwrap()
        .peers
        .into_iter()
        .filter(|p| p.name == "m1")
        .collect::<Vec<_>>();
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0].role, "mirror");
    assert_eq!(after[0].peer_addr, before.peer_addr);
    assert!(after[0].generation <= 1);
}

/// The origin going away is not an error for a mirror that holds the
/// newest generation it can verify.
#[test]
fn an_unreachable_origin_is_reported_honestly_not_as_down() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"hello").unwrap();
    let (key, pubkey) = keygen(dir);
    let (mut origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &[]);
    let url = origin.url();
    origin.proc.crash();
    wait_for(
        "m1 to report the upstream unreachable",
        Duration::from_secs(60),
        || {
            m1.status()
                .map(|s| s.state == "upstream-unreachable")
                .unwrap_or(false)
        },
    );
    let st = m1.status().unwrap();
    assert!(st.last_error.is_none(), "{:?}", st.last_error);
    let why = st.upstream_error.unwrap();
    assert_eq!(why.matches(&url).count(), 1, "URL once: {why}");
    assert!(why.contains("refused"), "root cause kept: {why}");
    let metrics = get_text(&format!("{}/metrics", m1.url())).unwrap();
    assert!(metrics.contains("\nshoal_up 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nshoal_upstream_reachable 0\n"),
        "{metrics}"
    );
}

/// A tmpfs of `mb` MiB mounted at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mb: u64) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot mount a tmpfs at {} (root needed)", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn resize(&self, mb: u64) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={mb}m")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cannot resize {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What apt would read: InRelease and the file list it names.
fn index_of(root: &Path) -> Vec<u8> {
    std::fs::read(root.join("dists/s/InRelease")).unwrap_or_default()
}

/// A generation-1 archive whose index names its files, then a bigger
/// generation 2.
fn write_generation(src: &Path, generation: u8, files: usize, size: usize) {
    let mut index = String::new();
    for i in 0..files {
        let data = vec![generation.wrapping_mul(31).wrapping_add(i as u8); size];
        let p = format!("pool/g{generation}-{i}");
        std::fs::create_dir_all(src.join("pool")).unwrap();
        std::fs::write(src.join(&p), &data).unwrap();
        index.push_str(&format!("{p} {}\n", hex::encode(Sha256::digest(&data))));
    }
    std::fs::create_dir_all(src.join("dists/s")).unwrap();
    std::fs::write(src.join("dists/s/InRelease"), index).unwrap();
}

/// The live tree matches the index it serves: every file InRelease names
/// is there with that hash (what apt checks).
fn assert_consistent(root: &Path) {
    let index = String::from_utf8(index_of(root)).unwrap();
    assert!(!index.is_empty(), "no index in {}", root.display());
    for line in index.lines() {
        let (p, h) = line.split_once(' ').unwrap();
        let data = std::fs::read(root.join(p))
            .unwrap_or_else(|e| panic!("{p} named by InRelease is missing: {e}"));
        assert_eq!(hex::encode(Sha256::digest(&data)), h, "{p} mismatches");
    }
}

fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: needs root to mount a tmpfs");
        return false;
    }
    true
}

/// Disk full while packs download: the error names the folder, the live
/// tree keeps serving generation 1, and the mirror finishes by itself once
/// space is freed.
#[test]
fn disk_full_during_download_is_explained_and_recovers() {
    if !require_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    write_generation(&src, 1, 3, 100_000);
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "debian",
        &["--upload-limit", "1MB"],
    );
    assert_eq!(publish(&origin.state), 1);
    // Repo and state on one small tmpfs (so the pack store links into the
    // live tree, as in production).
    let fs = Tmpfs::mount(&dir.join("small"), 16);
    let repo = dir.join("small/repo");
    std::fs::create_dir_all(&repo).unwrap();
    let state_arg = dir.join("small/state");
    let m1 = start_mirror_at(dir, "m1", &repo, &state_arg, &pubkey, &[origin.url()], &[]);
    m1.wait_generation(1);
    let served = index_of(&repo);
    // Generation 2 is 8 MB; fill the disk once its download has started.
    write_generation(&src, 2, 4, 2_000_000);
    assert_eq!(publish(&origin.state), 2);
    wait_for(
        "m1 to start fetching generation 2",
        Duration::from_secs(60),
        || {
            m1.status()
                .map(|s| {
                    s.state == "downloading"
                        && s.packs
                            .iter()
                            .any(|p| p.state == "downloading" && p.have_bytes > 0)
                })
                .unwrap_or(false)
        },
    );
    let filler = dir.join("small/filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    let packs = state_arg.join("packs");
    let mut last = String::new();
    wait_for(
        "m1 to say the disk is full and name its folder",
        Duration::from_secs(120),
        || {
            let st = m1.status().unwrap_or_default();
            last = format!(
                "{:?} {:?}",
                st.last_error,
                st.packs
                    .iter()
                    .map(|p| p.waiting.clone())
                    .collect::<Vec<_>>()
            );
            last.contains(&packs.display().to_string())
        },
    );
    assert!(
        last.contains("free space") || last.contains("No space"),
        "{last}"
    );
    assert_eq!(index_of(&repo), served, "the live tree changed");
    assert_consistent(&repo);
    std::fs::remove_file(&filler).unwrap();
    m1.wait_generation(2);
    assert_same_tree(&src, &repo, &["project/trace"]);
    // A download this long logged its progress (bytes, rate, packs).
    let log = log_of(&m1);
    let progress = log.lines().find(|l| {
        l.contains("have_bytes=") && l.contains("mb_per_s=") && l.contains("packs_done=")
    });
    assert!(progress.is_some(), "no progress line in:\n{log}");
    // Written to a file, the text log carries no ANSI colour codes.
    assert!(!log.contains('\x1b'), "colour codes in a log file");
    drop(m1);
    drop(fs);
}

/// The disk that holds the agents' logs is full (or the journal is gone):
/// a log line that cannot be written is dropped, and origin and mirror go
/// on publishing and syncing. Before, tracing-subscriber reported the
/// failed write on the same full stderr, which panicked and ended the
/// agent.
#[test]
fn agents_keep_working_when_their_log_cannot_be_written() {
    if !require_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    write_generation(&src, 1, 3, 10_000);
    let (key, pubkey) = keygen(dir);
    // The logs live on a small tmpfs that is full before the agents start.
    let fs = Tmpfs::mount(&dir.join("logs"), 1);
    let filler = dir.join("logs/filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k", "count=64"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    assert!(
        std::fs::write(dir.join("logs/probe"), [0u8; 8192]).is_err(),
        "the log file system is not full"
    );
    for name in ["origin", "m1"] {
        std::os::unix::fs::symlink(
            dir.join(format!("logs/{name}.log")),
            dir.join(format!("{name}.log")),
        )
        .unwrap();
    }
    let (mut origin, mut m1) = origin_and_mirror(dir, &src, &key, &pubkey, &[]);
    for g in 2..=3u8 {
        write_generation(&src, g, 3, 10_000);
        assert_eq!(publish(&origin.state), u64::from(g));
        m1.wait_generation(u64::from(g));
    }
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(
        std::fs::metadata(dir.join("m1.log")).unwrap().len() < 8192,
        "the mirror's log was written after all: the test did not fill its disk"
    );
    for a in [&mut origin, &mut m1] {
        assert!(
            a.proc.child.try_wait().unwrap().is_none(),
            "{} ended while its log could not be written",
            a.proc.name
        );
    }
    drop((origin, m1));
    drop(fs);
}

/// Disk full while a generation is applied (the live tree on its own
/// filesystem, so files are copied): the error names the file, clients
/// still see a consistent generation 1, and growing the disk lets the
/// mirror finish by itself.
#[test]
fn disk_full_during_apply_is_explained_and_recovers() {
    if !require_root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    write_generation(&src, 1, 3, 100_000);
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &src, &key, "debian", &[]);
    assert_eq!(publish(&origin.state), 1);
    let fs = Tmpfs::mount(&dir.join("live"), 4);
    // The live tree is a mount of its own: files are copied, on purpose.
    let m1 = start_mirror_in(
        dir,
        "m1",
        &fs.0,
        &pubkey,
        &[origin.url()],
        &["--allow-copy"],
    );
    m1.wait_generation(1);
    let served = index_of(&fs.0);
    write_generation(&src, 2, 4, 2_000_000);
    assert_eq!(publish(&origin.state), 2);
    let mut last = String::new();
    wait_for(
        "m1 to report the full live tree",
        Duration::from_secs(120),
        || {
            last = m1.status().and_then(|s| s.last_error).unwrap_or_default();
            last.contains("disk is full")
        },
    );
    assert!(last.contains(&fs.0.display().to_string()), "{last}");
    assert_eq!(m1.status().unwrap().generation_applied, 1);
    assert_eq!(index_of(&fs.0), served, "the index moved on");
    assert_consistent(&fs.0);
    fs.resize(64);
    m1.wait_generation(2);
    assert_same_tree(&src, &fs.0, &["project/trace"]);
    assert!(temp_files(&fs.0).is_empty());
    drop(m1);
    drop(fs);
}

/// Push, not poll: the origin tells its mirrors about a new generation at
/// once (a mirror polling once an hour still gets it), and a notice makes
/// an origin do nothing.
#[test]
fn a_new_generation_is_pushed_to_mirrors_and_notices_cannot_make_an_origin_publish() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"one").unwrap();
    let (key, pubkey) = keygen(dir);
    let (origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &["--poll-interval", "3600s"]);
    wait_for("the origin to know m1", Duration::from_secs(30), || {
        origin
            .status()
            .map(|s| s.peers.iter().any(|p| p.name == "m1"))
            .unwrap_or(false)
    });
    std::fs::write(src.join("b"), b"two").unwrap();
    assert_eq!(publish(&origin.state), 2);
    // Far sooner than the hour-long poll: only the push can bring it.
    m1.wait_generation(2);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(log_of(&m1).contains("applied"));
    // A notice to the origin is acknowledged and ignored.
    std::fs::write(src.join("c"), b"three").unwrap();
    let r = ureq::post(&format!("{}/v1/notify", origin.url()))
        .set("Content-Type", "application/json")
        .send_string(r#"{"generation": 99}"#)
        .unwrap();
    assert_eq!(r.status(), 204);
    let bad = ureq::post(&format!("{}/v1/notify", origin.url())).send_string("nonsense");
    assert!(matches!(bad, Err(ureq::Error::Status(400, _))), "{bad:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(origin.status().unwrap().generation_applied, 2);
    assert_eq!(publish(&origin.state), 3);
}

/// The admin socket's group is configurable, so an archive's hook user can
/// call `publish`; a group the host lacks is named.
#[test]
fn the_admin_socket_can_belong_to_the_archive_hook_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"one").unwrap();
    let (key, _) = keygen(dir);
    // `daemon` exists on every Debian system (gid 1).
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--admin-group", "daemon"],
    );
    let sock = origin.state.join("admin.sock");
    wait_for("the admin socket", Duration::from_secs(30), || {
        sock.exists()
    });
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!(m.gid(), 1, "socket group");
    assert_eq!(m.permissions().mode() & 0o777, 0o660);
    assert_eq!(publish(&origin.state), 1);
    drop(origin);
    let out = Command::new(shoal_e2e::bin("shoal-agent"))
        .args(["origin", "--name", "o2", "--publish-interval", "0s"])
        .args(["--quiet-period", "0s"])
        .arg("--repo")
        .arg(&src)
        .arg("--state")
        .arg(dir.join("o2-state"))
        .arg("--key")
        .arg(&key)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-group",
            "no-such-group-x",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        e.contains("'no-such-group-x' does not exist on this host"),
        "{e}"
    );
}

/// `publish --changes`: only the listed paths are looked at (what an
/// archive hook reports); a path the list missed waits for the next full
/// publish; a path outside the repository is refused by name.
#[test]
fn publishing_from_a_change_list_looks_only_at_the_listed_paths() {
    use std::io::Write;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    for f in ["pool/a", "pool/c", "index"] {
        std::fs::write(src.join(f), f).unwrap();
    }
    let (key, pubkey) = keygen(dir);
    let (origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &["--delete-grace", "0s"]);
    std::fs::write(src.join("pool/a"), b"a, version 2").unwrap();
    std::fs::create_dir_all(src.join("pool/new")).unwrap();
    std::fs::write(src.join("pool/new/b"), b"b").unwrap();
    std::fs::remove_file(src.join("pool/c")).unwrap();
    std::fs::write(src.join("index"), b"index, not listed").unwrap();
    let publish_list = |list: &str| {
        let mut child = Command::new(shoal_e2e::bin("shoal-agent"))
            .args(["publish", "--changes", "-", "--state"])
            .arg(&origin.state)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(list.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, out) = publish_list("pool/a\n./pool/new/\n# a comment\npool/c\n");
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "ok 2");
    m1.wait_generation(2);
    assert_eq!(
        std::fs::read(m1.repo.join("pool/a")).unwrap(),
        b"a, version 2"
    );
    assert_eq!(std::fs::read(m1.repo.join("pool/new/b")).unwrap(), b"b");
    wait_for("pool/c to go", Duration::from_secs(30), || {
        !m1.repo.join("pool/c").exists()
    });
    // `index` was not listed: still the old one until a full publish.
    assert_eq!(std::fs::read(m1.repo.join("index")).unwrap(), b"index");
    let (ok, out) = publish_list("../../etc/passwd\n");
    assert!(!ok);
    assert!(
        out.contains("'../../etc/passwd'") && out.contains("inside the repository"),
        "{out}"
    );
    assert_eq!(publish(&origin.state), 3);
    m1.wait_generation(3);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
}

/// A tiny file (64 B – 2 kB) of its own bytes.
fn tiny(i: usize) -> Vec<u8> {
    let len = 64 + (i * 7919) % 1985;
    (0..len).map(|j| (j * 31 + i * 17 + j / 7) as u8).collect()
}

/// Bytes a mirror received over BitTorrent, from every source.
fn bytes_down(a: &Agent) -> u64 {
    a.status().map(|s| s.bytes_down.values().sum()).unwrap_or(0)
}

/// [`bytes_down`] once it holds at least `at_least` and no longer moves
/// (the agent samples librqbit's counters twice a second).
fn settled_bytes_down(a: &Agent, at_least: u64) -> u64 {
    let mut seen = Vec::new();
    wait_for(
        &format!(
            "{} to count at least {at_least} bytes received",
            a.proc.name
        ),
        Duration::from_secs(30),
        || {
            seen.push(bytes_down(a));
            seen.len() > 5
                && seen[seen.len() - 6..]
                    .iter()
                    .all(|&v| v == seen[seen.len() - 1])
                && seen[seen.len() - 1] >= at_least
        },
    );
    *seen.last().unwrap()
}

/// Files smaller than a piece are packed back to back, so a tree of tiny
/// files costs about its size on the wire (it cost a whole 16 KiB piece
/// per file when every content was padded to a piece boundary). A
/// compacted pack costs its new files and at most one piece more: the
/// held tiny files lie together, so the pieces they fill are not fetched.
#[test]
fn tiny_files_cost_their_size_on_the_wire() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    let n = 2000;
    let rel = |i: usize| format!("pool/d{:02}/f{i:05}", i / 100);
    let write = |i: usize| {
        let p = src.join(rel(i));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, tiny(i)).unwrap();
    };
    (0..n).for_each(write);
    let total: u64 = (0..n).map(|i| tiny(i).len() as u64).sum();
    let (key, pubkey) = keygen(dir);
    let (origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &["--delete-grace", "0s"]);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    let down = settled_bytes_down(&m1, total);
    eprintln!(
        "tiny files: m1 received {down} bytes for {total} ({:.3}x)",
        down as f64 / total as f64
    );
    assert!(
        down as f64 <= 1.1 * total as f64,
        "m1 received {down} bytes for a tree of {total} bytes ({:.2}x; a padded \
         16 KiB piece per file would be {} bytes)",
        down as f64 / total as f64,
        n as u64 * 16384
    );

    // Generation 2: three files in four go (the pack is compacted) and new
    // ones come, so held tiny files share pieces with new neighbours.
    let gone: Vec<usize> = (0..n).filter(|i| i % 4 != 0).collect();
    for &i in &gone {
        std::fs::remove_file(src.join(rel(i))).unwrap();
    }
    (n..n + 200).for_each(write);
    let added: u64 = (n..n + 200).map(|i| tiny(i).len() as u64).sum();
    assert_eq!(publish(&origin.state), 2);
    let st = origin.status().unwrap();
    assert!(st.last_error.is_none(), "publish: {:?}", st.last_error);
    m1.wait_generation(2);
    wait_for(
        "m1 to remove the deleted files",
        Duration::from_secs(30),
        || gone.iter().all(|&i| !m1.repo.join(rel(i)).exists()),
    );
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(
        temp_files(&m1.repo).is_empty(),
        "{:?}",
        temp_files(&m1.repo)
    );
    // The held files lie together in the new pack: only the piece where
    // they meet the new ones comes again.
    let down2 = settled_bytes_down(&m1, down + added) - down;
    eprintln!("tiny files: generation 2 cost {down2} bytes for {added} bytes of new files");
    assert!(
        down2 >= added && down2 <= added + 16384,
        "m1 received {down2} bytes for generation 2, which added {added} bytes"
    );
}

/// Writes `n` tiny files of generation `generation` under `src/pool`.
fn write_many(src: &Path, generation: u8, n: usize) {
    for i in 0..n {
        let d = src.join(format!("pool/d{:03}", i / 250));
        if i % 250 == 0 {
            std::fs::create_dir_all(&d).unwrap();
        }
        let data = format!("generation {generation} file {i}\n");
        std::fs::write(d.join(format!("f{i:05}")), data).unwrap();
    }
}

/// A publish that changes more paths than a delta carries (50,000) writes
/// no delta, so neither the origin nor a mirror holds a document of every
/// changed entry; the mirror fetches the new root and the chunks it lacks
/// instead, and ends with the same tree. A small change still has its
/// delta.
#[test]
fn a_change_too_large_for_a_delta_reaches_mirrors_by_its_chunks() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    let n = 50_001;
    write_many(&src, 1, n);
    let (key, pubkey) = keygen(dir);
    let (origin, m1) = origin_and_mirror(dir, &src, &key, &pubkey, &[]);
    // Generation 2: three files change, and the delta from 1 is written.
    for i in [0, 20_000, 50_000] {
        let p = src.join(format!("pool/d{:03}/f{i:05}", i / 250));
        std::fs::write(p, format!("changed {i}\n")).unwrap();
    }
    assert_eq!(publish(&origin.state), 2);
    m1.wait_generation(2);
    assert!(origin.state.join("docs/deltas/1.shoal").exists());
    // Generation 3: every file changes.
    write_many(&src, 3, n);
    assert_eq!(publish(&origin.state), 3);
    wait_for("m1 to apply generation 3", Duration::from_secs(600), || {
        m1.status()
            .map(|s| s.generation_applied >= 3)
            .unwrap_or(false)
    });
    assert!(
        !origin.state.join("docs/deltas/2.shoal").exists(),
        "a delta of {n} changed paths was written"
    );
    assert!(log_of(&origin).contains("no delta for a change this large"));
    assert!(log_of(&m1).contains("fetching the full manifest"));
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
}
