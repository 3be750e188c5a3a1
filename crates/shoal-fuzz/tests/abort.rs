//! What `catch_unwind` cannot catch still leaves the input behind: the
//! binary's SIGABRT handler saves the running input when the process
//! aborts, is refused an allocation over the limit, or overflows its stack.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

#[test]
fn aborts_save_the_running_input() {
    let dir = std::env::temp_dir().join(format!("shoal-fuzz-abort-{}", std::process::id()));
    for kind in ["abort", "alloc", "stack"] {
        let _ = std::fs::remove_dir_all(&dir);
        let out = Command::new(env!("CARGO_BIN_EXE_shoal-fuzz"))
            .args(["--self-test", kind, "--max-alloc-mb", "16", "--out"])
            .arg(&dir)
            .output()
            .expect("run shoal-fuzz");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{kind}: {stderr}");
        assert!(stderr.contains("CRASH"), "{kind}: {stderr}");
        let saved = std::fs::read(dir.join("abort-self-test.bin")).expect("input saved");
        assert_eq!(saved, format!("shoal-fuzz self-test {kind}").as_bytes());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
