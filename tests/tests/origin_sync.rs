//! How the origin makes a publish durable, watched with the real `strace`
//! attached to a running origin: the staged copies of the generic profile
//! are not synced one by one; one syncfs(2) of the pack store's file
//! system precedes the documents (torrents, manifest, head), which are
//! written with fsync as before.
//!
//! Needs `strace` (`scripts/install-deps test`) and the built `shoal-agent`.

use shoal_e2e::agents::{keygen, start_origin, wait_for, Proc};
use std::process::Command;
use std::time::Duration;

/// The system calls in a `strace -o` file, by name, in order.
fn calls(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| {
            // "PID name(args) = ret" or "PID <... name resumed>": names only
            // from the start of a call.
            let rest = l.split_once(' ')?.1.trim_start();
            let name = rest.split_once('(')?.0;
            (!name.contains(' ') && !name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

#[test]
fn a_generic_publish_syncs_the_pack_store_once_not_every_staged_copy() {
    const FILES: usize = 2_000;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("first"), b"first").unwrap();
    let (key, _) = keygen(dir);
    let origin = start_origin(dir, "origin", &src, &key, "generic", &[]);
    origin.wait_generation(1);
    for i in 0..FILES {
        let d = src.join(format!("d{:02}", i / 100));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), format!("small file {i}\n")).unwrap();
    }

    // strace follows every thread of the running origin.
    let trace = dir.join("origin.strace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-e", "trace=fsync,fdatasync,syncfs,msync,sync", "-o"])
        .arg(&trace)
        .arg("-p")
        .arg(origin.proc.pid().to_string());
    let mut strace = Proc::spawn("strace", cmd, &dir.join("strace.log"));
    wait_for(
        "strace to attach to the origin",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&strace.log)
                .unwrap_or_default()
                .contains("attached")
        },
    );
    let out = Command::new(shoal_e2e::bin("shoal-agent"))
        .arg("publish")
        .arg("--state")
        .arg(&origin.state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
    // SIGTERM: strace detaches from the origin and writes out its trace.
    strace.stop();
    let text = std::fs::read_to_string(&trace).unwrap();
    let calls = calls(&text);
    let count = |name: &str| calls.iter().filter(|c| *c == name).count();
    let per_file = count("fdatasync") + count("fsync");
    eprintln!(
        "publish of {FILES} files: {per_file} fsync/fdatasync, {} syncfs",
        count("syncfs")
    );
    assert!(
        count("syncfs") >= 1,
        "no syncfs during the publish; calls seen: {per_file} fsync/fdatasync\n{}",
        text.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    // The documents (a torrent per pack, manifest, delta, head, pack id)
    // are still written with fsync: a few dozen, not one per file.
    assert!(
        per_file < FILES / 10,
        "{per_file} fsync/fdatasync calls for {FILES} staged files"
    );
    // The flush comes before the head is written (the head's fsync is the
    // last one of the publish).
    let first_syncfs = calls.iter().position(|c| c == "syncfs").unwrap();
    let last_fsync = calls.iter().rposition(|c| c == "fsync").unwrap();
    assert!(first_syncfs < last_fsync, "{calls:?}");
}
