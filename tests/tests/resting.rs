//! Resting packs: a restarted agent serves its generation and seeds what
//! peers need without reading its pack store at start-up, and a pack
//! whose files changed while the agent was down is checked again.
//!
//! Read volume is `rchar` from `/proc/PID/io`: every byte the process got
//! from `read(2)`-like calls, page cache or not, so it bounds what
//! librqbit's check would read. What every agent reads whatever it holds
//! (TLS root certificates, about 0.9 MB) is measured on an idle agent and
//! taken off.

use shoal_e2e::agents::{
    assert_same_tree, keygen, publish, start_mirror, start_mirror_at, start_origin, wait_for, Agent,
};
use shoal_status::Status;
use std::path::Path;
use std::time::Duration;

const REST: &[&str] = &["--rest-after", "1s"];

/// Writes `n` distinct files of `size` bytes under `src/pool`; returns
/// their total size.
fn write_files(src: &Path, n: usize, size: usize) -> u64 {
    let dir = src.join("pool");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let mut d = vec![(i % 251) as u8; size];
        d[..8].copy_from_slice(&(i as u64).to_le_bytes());
        std::fs::write(dir.join(format!("f{i}.deb")), d).unwrap();
    }
    (n * size) as u64
}

/// Bytes the process has read so far (`rchar`).
fn read_chars(a: &Agent) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", a.proc.pid())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("rchar in /proc/PID/io")
}

fn resting(s: &Status) -> usize {
    s.packs.iter().filter(|p| p.state == "resting").count()
}

/// What an agent reads at start-up whatever it holds (the system's TLS
/// root certificates, its config): `rchar` of a mirror with an empty
/// state whose upstream refuses connections, once it is up.
fn fixed_reads(dir: &Path, pubkey: &str) -> u64 {
    let idle = start_mirror(dir, "idle", pubkey, &["http://127.0.0.1:1".into()], REST);
    std::thread::sleep(Duration::from_secs(2));
    read_chars(&idle)
}

/// Waits until every pack of `a` rests; returns how many there are.
fn wait_all_resting(a: &Agent) -> usize {
    let mut n = 0;
    wait_for(
        &format!("every pack of {} to rest", a.proc.name),
        Duration::from_secs(60),
        || {
            let s = a.status().unwrap();
            n = s.packs.len();
            n > 0 && resting(&s) == n
        },
    );
    n
}

/// Waits until the agent is up and seeding again after a restart.
fn wait_reseeded(a: &Agent, generation: u64) -> Status {
    let mut last = None;
    wait_for(
        &format!("{} to seed generation {generation} again", a.proc.name),
        Duration::from_secs(60),
        || {
            let s = a.status().unwrap();
            let ok = s.last_check_seconds.is_some()
                && !s.packs.is_empty()
                && s.packs
                    .iter()
                    .all(|p| p.state == "resting" || p.state == "seeding");
            if ok {
                last = Some(s);
            }
            ok
        },
    );
    last.unwrap()
}

#[test]
fn restarted_agents_read_no_pack_data_and_still_seed_what_peers_need() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    let s = write_files(&src, 24, 1_000_000);
    let (key, pubkey) = keygen(dir);
    let fixed = fixed_reads(dir, &pubkey);
    let mut origin = start_origin(dir, "origin", &src, &key, "generic", REST);
    assert_eq!(publish(&origin.state), 1);
    let mut m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], REST);
    m1.wait_generation(1);
    let packs = wait_all_resting(&m1);
    assert!(packs >= 2, "24 MB should make several packs, got {packs}");
    wait_all_resting(&origin);

    // A mirror restart: nothing of the 24 MB is read, every pack rests.
    m1.proc.stop();
    let (m1_repo, m1_state) = (m1.repo.clone(), m1.state.clone());
    m1 = start_mirror_at(
        dir,
        "m1",
        &m1_repo,
        &m1_state,
        &pubkey,
        &[origin.url()],
        REST,
    );
    let st = wait_reseeded(&m1, 1);
    let read = read_chars(&m1).saturating_sub(fixed);
    eprintln!(
        "m1 restarted: read {read} bytes beyond the {fixed} every agent reads, for {s} bytes \
         of packs"
    );
    assert_eq!(st.generation_applied, 1);
    assert_eq!(st.last_check_bytes, 0, "no pack should be checked: {st:?}");
    assert_eq!(resting(&st), packs);
    assert!(
        (read as f64) < 0.01 * s as f64,
        "the restarted mirror read {read} bytes, more than 1% of its {s} bytes of packs"
    );

    // An origin restart, likewise.
    origin.proc.stop();
    origin = start_origin(dir, "origin", &src, &key, "generic", REST);
    let ost = wait_reseeded(&origin, 1);
    let oread = read_chars(&origin).saturating_sub(fixed);
    eprintln!("origin restarted: read {oread} bytes beyond the {fixed} every agent reads");
    assert_eq!(ost.last_check_bytes, 0, "{ost:?}");
    assert!(
        (oread as f64) < 0.01 * s as f64,
        "the restarted origin read {oread} bytes, more than 1% of {s}"
    );

    // A new mirror wakes what it needs: from the origin (its feeder) and
    // from m1.
    let mut m2 = start_mirror(dir, "m2", &pubkey, &[origin.url(), m1.url()], REST);
    m2.wait_generation(1);
    assert_same_tree(&src, &m2.repo, &["project/trace"]);
    let woken = origin.status().unwrap().packs_woken + m1.status().unwrap().packs_woken;
    assert!(
        woken >= packs as u64,
        "{woken} packs woken for m2's {packs}"
    );

    // With the origin and m2 gone, a new mirror gets everything from m1's
    // resting packs, which wake for it. Its first upstream is the dead
    // origin: librqbit announces a private torrent to its first tracker
    // only, so m3 has to ask m1 to wake them itself.
    origin.proc.stop();
    m2.proc.stop();
    wait_all_resting(&m1);
    let woken_before = m1.status().unwrap().packs_woken;
    let m3 = start_mirror(dir, "m3", &pubkey, &[origin.url(), m1.url()], REST);
    m3.wait_generation(1);
    assert_same_tree(&src, &m3.repo, &["project/trace"]);
    let m1st = m1.status().unwrap();
    let m3st = m3.status().unwrap();
    assert!(
        m1st.packs_woken >= woken_before + packs as u64,
        "m1 woke {} packs for m3, which needed all {packs}",
        m1st.packs_woken - woken_before
    );
    // m1 is the only agent running, so every byte came from it. On one
    // host every connection comes from 127.0.0.1, and a pack sent to m3
    // over a connection m1 dialled (after waking it) and closed within
    // one 50 ms name sample stays unnamed ("other"): count it too, and
    // check that no other agent is named.
    let got: u64 = m3st.bytes_down.values().sum();
    assert!(
        m3st.bytes_down_by_peer.keys().all(|n| n == "m1") && got >= s,
        "m3 got {got} bytes ({:?} by peer) for {s} bytes of packs: {m3st:?}",
        m3st.bytes_down_by_peer
    );
    assert_eq!(m3st.bytes_down.get("origin").copied().unwrap_or(0), 0);
}

#[test]
fn a_pack_whose_files_changed_while_down_is_checked_again() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    write_files(&src, 12, 1_000_000);
    let (key, pubkey) = keygen(dir);
    // Rest after 3 s: long enough to see the checked pack seeding before
    // it rests again.
    let rest = &["--rest-after", "3s"];
    let origin = start_origin(dir, "origin", &src, &key, "generic", rest);
    assert_eq!(publish(&origin.state), 1);
    let mut m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], rest);
    m1.wait_generation(1);
    let packs = wait_all_resting(&m1);
    m1.proc.stop();

    // Touch one content of the first pack (same bytes, another mtime).
    let st = m1.status();
    assert!(st.is_none(), "m1 is stopped");
    let first = std::fs::read_dir(m1.state.join("packs"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .min()
        .unwrap();
    let sub = std::fs::read_dir(&first).unwrap().flatten().next().unwrap();
    let content = std::fs::read_dir(sub.path())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let f = std::fs::File::options().write(true).open(&content).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    drop(f);

    let (m1_repo, m1_state) = (m1.repo.clone(), m1.state.clone());
    m1 = start_mirror_at(
        dir,
        "m1",
        &m1_repo,
        &m1_state,
        &pubkey,
        &[origin.url()],
        rest,
    );
    let st = wait_reseeded(&m1, 1);
    assert!(
        st.last_check_bytes > 0,
        "the touched pack should have been checked: {st:?}"
    );
    assert_eq!(
        resting(&st),
        packs - 1,
        "only the touched pack leaves rest: {st:?}"
    );
}

/// A resting pack that rotted on the origin's disk (same size, mtime and
/// inode, other bytes) passes its seal, so it is found only when a mirror
/// wakes it: librqbit's check fails, the origin drops the pack, publishes
/// its contents again in a new generation, and the mirror ends with the
/// right tree.
#[test]
fn a_resting_pack_found_damaged_when_woken_is_packed_again() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    write_files(&src, 6, 1_000_000);
    let (key, pubkey) = keygen(dir);
    let mut origin = start_origin(dir, "origin", &src, &key, "generic", REST);
    assert_eq!(publish(&origin.state), 1);
    wait_all_resting(&origin);
    origin.proc.stop();

    // Flip bytes in the middle of one stored content, keeping its mtime.
    let content = std::fs::read_dir(origin.state.join("packs"))
        .unwrap()
        .flatten()
        .flat_map(|p| std::fs::read_dir(p.path()).unwrap().flatten())
        .flat_map(|sub| std::fs::read_dir(sub.path()).unwrap().flatten())
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).unwrap().len() == 1_000_000)
        .expect("a stored content");
    let mtime = std::fs::metadata(&content).unwrap().modified().unwrap();
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::File::options().write(true).open(&content).unwrap();
        f.seek(SeekFrom::Start(500_000)).unwrap();
        f.write_all(&[0xAA; 64]).unwrap();
        f.set_modified(mtime).unwrap();
    }

    origin = start_origin(dir, "origin", &src, &key, "generic", REST);
    let st = wait_reseeded(&origin, 1);
    assert_eq!(st.last_check_bytes, 0, "the seal still matches: {st:?}");

    let m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], REST);
    m1.wait_generation(2);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    let ost = origin.status().unwrap();
    assert!(ost.packs_woken >= 1, "{ost:?}");
    assert!(
        ost.generation_applied >= 2,
        "the origin should have packed the damaged contents again: {ost:?}"
    );
    let log = std::fs::read_to_string(&origin.proc.log).unwrap();
    assert!(
        log.contains("does not check complete"),
        "the origin's log should say which pack was damaged"
    );
}

/// A restarted mirror reads only its generation's signed root; the
/// entries (the manifest's chunks) are read when the next generation
/// needs them, and the mirror follows it by delta. A restart after an
/// apply that was cut short (its marker left in the state folder) still
/// compares the whole live tree and repairs it.
#[test]
fn a_restarted_mirror_reads_its_entries_only_when_a_new_generation_needs_them() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    // 3,000 small files: the manifest has dozens of chunks.
    write_files(&src, 3000, 100);
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &src, &key, "generic", REST);
    assert_eq!(publish(&origin.state), 1);
    let mut m1 = start_mirror(dir, "m1", &pubkey, &[origin.url()], REST);
    m1.wait_generation(1);
    let files = m1.status().unwrap().files;
    assert!(files >= 3000, "{files}");

    let restart = |m: &mut Agent| {
        m.proc.stop();
        let (repo, state) = (m.repo.clone(), m.state.clone());
        *m = start_mirror_at(dir, "m1", &repo, &state, &pubkey, &[origin.url()], REST);
        wait_reseeded(m, m.status().map(|s| s.generation_applied).unwrap_or(1))
    };
    let entries_read = |m: &Agent| {
        std::fs::read_to_string(&m.proc.log)
            .unwrap()
            .matches("read the applied generation's entries")
            .count()
    };

    // A clean restart: the status knows the generation's size, and no
    // chunk is read.
    let st = restart(&mut m1);
    assert_eq!(st.generation_applied, 1);
    assert_eq!(st.files, files, "files from the applied record: {st:?}");
    assert_eq!(entries_read(&m1), 0, "{}", m1.proc.log_tail(30));

    // The next generation: the entries are read once, and the delta
    // applies to them.
    std::fs::write(src.join("pool/f7.deb"), b"changed").unwrap();
    assert_eq!(publish(&origin.state), 2);
    m1.wait_generation(2);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert_eq!(entries_read(&m1), 1, "{}", m1.proc.log_tail(30));

    // An apply cut short: the marker is left, and a file of the live tree
    // is wrong. The restart compares the tree and puts the file back.
    m1.proc.stop();
    std::fs::write(m1.state.join("applying"), b"").unwrap();
    let victim = m1.repo.join("pool/f9.deb");
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, b"half-written").unwrap();
    let (repo, state) = (m1.repo.clone(), m1.state.clone());
    m1 = start_mirror_at(dir, "m1", &repo, &state, &pubkey, &[origin.url()], REST);
    wait_for(
        "m1 to repair the live tree",
        Duration::from_secs(60),
        || {
            std::fs::read(&victim).ok() != Some(b"half-written".to_vec())
                && !m1.state.join("applying").exists()
        },
    );
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
}
