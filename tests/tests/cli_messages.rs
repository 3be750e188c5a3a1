//! What `shoal-agent` says when a new user gets something wrong: each
//! message names the file, address or value and says what to do.

use std::path::Path;
use std::process::Command;

/// Runs `shoal-agent args…`, expects it to fail, returns stderr.
fn fails(args: &[&str]) -> String {
    let out = Command::new(shoal_e2e::bin("shoal-agent"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const KEY: &str = "ed25519:0000000000000000000000000000000000000000000000000000000000000000";

#[test]
fn keygen_into_a_missing_folder_says_so() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("nodir/origin.key");
    let e = fails(&["keygen", "--out", out.to_str().unwrap()]);
    assert!(
        e.contains("the folder") && e.contains("does not exist") && e.contains("create it"),
        "{e}"
    );
    assert!(!e.contains("never overwrites"), "{e}");
    // An existing key: that message, and the key is untouched.
    let key = t.path().join("k");
    std::fs::write(&key, b"old").unwrap();
    let e = fails(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(
        e.contains("already exists") && e.contains("never overwrites"),
        "{e}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), b"old");
}

#[test]
fn keygen_help_offers_no_config() {
    let out = Command::new(shoal_e2e::bin("shoal-agent"))
        .args(["keygen", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--out"), "{help}");
    assert!(!help.contains("--config"), "{help}");
}

#[test]
fn a_mistyped_log_format_is_refused() {
    let e = fails(&["--log-format", "jsn", "keygen", "--out", "/dev/null"]);
    assert!(
        e.contains("invalid value 'jsn'") && e.contains("json"),
        "{e}"
    );
}

#[test]
fn an_address_the_host_lacks_is_named() {
    let t = tempfile::tempdir().unwrap();
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let state = t.path().join("state");
    // 192.0.2.0/24 is TEST-NET-1: never an address of this host.
    let e = fails(&[
        "mirror",
        "--repo",
        repo.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--listen",
        "192.0.2.7:8780",
        "--origin-key",
        KEY,
        "--upstream",
        "http://127.0.0.1:1",
    ]);
    assert!(e.contains("this host has no address 192.0.2.7"), "{e}");
    assert!(!e.contains("another program"), "{e}");
}

#[test]
fn a_mistyped_repo_or_state_is_not_created() {
    let t = tempfile::tempdir().unwrap();
    let typo = t.path().join("srv/mirorr/debian");
    let state = t.path().join("state");
    let e = fails(&[
        "mirror",
        "--repo",
        typo.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "--listen",
        "127.0.0.1:1",
        "--origin-key",
        KEY,
        "--upstream",
        "http://127.0.0.1:1",
    ]);
    assert!(
        e.contains("does not exist, nor does its parent folder") && e.contains("typo"),
        "{e}"
    );
    assert!(!Path::new(&typo).exists());
    assert!(!t.path().join("srv").exists(), "a tree was created");
    let repo = t.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let e = fails(&[
        "mirror",
        "--repo",
        repo.to_str().unwrap(),
        "--state",
        t.path().join("var/lib/shaol/state").to_str().unwrap(),
        "--listen",
        "127.0.0.1:1",
        "--origin-key",
        KEY,
        "--upstream",
        "http://127.0.0.1:1",
    ]);
    assert!(e.contains("state directory") && e.contains("typo"), "{e}");
    assert!(!t.path().join("var").exists());
}

#[test]
fn config_errors_name_the_line_and_the_cause_once() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("agent.yaml");
    std::fs::write(
        &f,
        format!(
            "role: mirror\nrepo: /r\nstate: /s\nlisten: 127.0.0.1:1\nmirror:\n  origin_key: {KEY}\nmirror:\n  trace: false\n"
        ),
    )
    .unwrap();
    let e = fails(&["--config", f.to_str().unwrap(), "run"]);
    assert!(
        e.contains("agent.yaml:7:1: duplicate field `mirror`"),
        "{e}"
    );
    // `run --config` works as well as `--config … run`.
    let e = fails(&["run", "--config", "/nonexistent/agent.yaml"]);
    assert_eq!(e.matches("No such file").count(), 1, "{e}");
}
