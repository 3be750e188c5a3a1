//! Archive integration, end to end with the real tools: the publish gate
//! (ftpsync's lock, `--force`), and each hook recipe in `packaging/hooks/`
//! (reprepro's outhook, the createrepo_c wrapper, the ftpsync-style
//! two-stage rsync pull from a local `rsync --daemon`), each driving a real
//! origin whose real mirror must end with the tool's output byte for byte.
//!
//! Needs `reprepro`, `dpkg-deb`, `createrepo_c`, `rpmbuild` and `rsync`
//! (`scripts/install-deps test`), and the built `shoal-agent`.

use shoal_e2e::agents::{
    assert_same_tree, free_port, keygen, start_mirror, start_origin, wait_for, Agent, Proc,
};
use shoal_e2e::repo::{build_deb, Reprepro};
use shoal_e2e::rpm::RpmRepo;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A hook script shipped in `packaging/hooks/`.
fn hook(name: &str) -> PathBuf {
    shoal_e2e::workspace_root()
        .join("packaging/hooks")
        .join(name)
}

fn log_of(a: &Agent) -> String {
    std::fs::read_to_string(&a.proc.log).unwrap_or_default()
}

/// Runs `cmd`, asserting success; returns its output.
fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The environment a hook script needs to reach the origin.
fn hook_env(cmd: &mut Command, origin: &Agent) {
    cmd.env("SHOAL_STATE", &origin.state)
        .env("SHOAL_AGENT", shoal_e2e::bin("shoal-agent"))
        .env("SHOAL_WAIT", "2m");
}

/// `shoal-agent publish --state STATE ARGS...`: its output.
fn publish_call(state: &Path, args: &[&str]) -> Output {
    Command::new(shoal_e2e::bin("shoal-agent"))
        .arg("publish")
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

fn generation(a: &Agent) -> u64 {
    a.status().expect("status").generation_applied
}

/// The timer holds back while ftpsync's lock exists (seen by it several
/// times, as the debug log shows), an explicit publish is refused naming
/// the lock, `--force` publishes anyway (never the lock file itself), and
/// once the lock is gone the timer publishes by itself.
#[test]
fn the_timer_waits_for_an_archive_lock_and_publishes_once_it_is_gone() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    std::fs::write(src.join("pool/a"), b"first").unwrap();
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--publish-interval", "1s", "--log", "shoal_agent=debug"],
    );
    origin.wait_generation(1);
    let m1 = start_mirror(
        dir,
        "m1",
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "0s"],
    );
    m1.wait_generation(1);

    let lock = src.join("Archive-Update-in-Progress-upstream.example.org");
    std::fs::write(&lock, b"").unwrap();
    std::fs::write(src.join("pool/b"), b"written under the lock").unwrap();
    let waits = || log_of(&origin).matches("publish still waiting").count();
    wait_for(
        "the origin's timer to find the lock three more times",
        Duration::from_secs(60),
        || waits() >= 3,
    );
    let st = origin.status().unwrap();
    assert_eq!(st.generation_applied, 1, "published under the lock");
    let why = st.publish_waiting.expect("publish_waiting in /status");
    assert!(
        why.contains("Archive-Update-in-Progress-upstream.example.org exists since "),
        "{why}"
    );
    assert_eq!(st.state, "waiting");
    assert_eq!(log_of(&origin).matches("publish waits: ").count(), 1);

    // An explicit publish is refused with the lock named and what to do.
    let out = publish_call(&origin.state, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(generation(&origin), 1);

    // --force publishes the tree as it is, without the lock file.
    let out = publish_call(&origin.state, &["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
    m1.wait_generation(2);
    assert_same_tree(
        &src,
        &m1.repo,
        &["project/trace", "Archive-Update-in-Progress-"],
    );
    assert!(!m1.repo.join(lock.file_name().unwrap()).exists());

    // Still locked: the next change waits for the lock to go.
    std::fs::write(src.join("pool/c"), b"also under the lock").unwrap();
    let before = waits();
    wait_for(
        "the origin's timer to find the lock again",
        Duration::from_secs(60),
        || waits() >= before + 3,
    );
    assert_eq!(generation(&origin), 2, "published under the lock");
    std::fs::remove_file(&lock).unwrap();
    origin.wait_generation(3);
    assert_eq!(origin.status().unwrap().publish_waiting, None);
    m1.wait_generation(3);
    assert_same_tree(&src, &m1.repo, &["project/trace"]);
    assert!(log_of(&origin).contains("publish gate open"));
}

/// An explicit publish the gate refuses (no `--wait`) leaves /status as it
/// was: `idle`, no `publish_waiting` (nothing waits; the refusal names the
/// lock). A `--wait` call does wait, and shows it, until the lock goes.
#[test]
fn a_refused_publish_call_leaves_the_status_idle() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    std::fs::write(src.join("pool/a"), b"first").unwrap();
    let (key, _) = keygen(dir);
    // The timer publishes at start-up only (--publish-interval 0s).
    let origin = start_origin(dir, "origin", &src, &key, "generic", &[]);
    origin.wait_generation(1);
    assert_eq!(origin.status().unwrap().state, "idle");

    let lock = src.join("Archive-Update-in-Progress-upstream.example.org");
    std::fs::write(&lock, b"").unwrap();
    std::fs::write(src.join("pool/b"), b"written under the lock").unwrap();
    // Refused at once, or once a --wait call's time runs out (nothing
    // waits any more): either way /status is as it was.
    for args in [&[][..], &["--changes", "-"][..], &["--wait", "2s"][..]] {
        let mut cmd = Command::new(shoal_e2e::bin("shoal-agent"));
        cmd.arg("publish")
            .arg("--state")
            .arg(&origin.state)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"pool/b\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&lock.display().to_string()), "{err}");
        let st = origin.status().unwrap();
        assert_eq!(st.state, "idle", "{args:?}: after a refused call");
        assert_eq!(st.publish_waiting, None, "{args:?}: after a refused call");
        assert_eq!(st.generation_applied, 1);
    }

    // A --wait call waits under the lock, shown in /status, and publishes
    // once the lock is gone.
    let mut cmd = Command::new(shoal_e2e::bin("shoal-agent"));
    cmd.arg("publish")
        .arg("--state")
        .arg(&origin.state)
        .args(["--wait", "10m"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = Guard(Some(cmd.spawn().unwrap()));
    wait_for(
        "the --wait call to show as waiting in /status",
        Duration::from_secs(60),
        || {
            let st = origin.status().unwrap();
            st.state == "waiting"
                && st
                    .publish_waiting
                    .is_some_and(|w| w.contains("Archive-Update-in-Progress-upstream"))
        },
    );
    std::fs::remove_file(&lock).unwrap();
    let out = child.take().wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
    let st = origin.status().unwrap();
    assert_eq!(st.state, "idle");
    assert_eq!(st.publish_waiting, None);
}

/// A tree written within the quiet period is refused, naming the changed
/// file (a change list: the listed one); `--force` publishes anyway. (The
/// hook tests below publish with `--wait` once the tree is quiet.)
#[test]
fn a_changing_tree_is_refused_naming_the_changed_file() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("dists/s")).unwrap();
    std::fs::write(src.join("dists/s/Release"), b"one").unwrap();
    let (key, _) = keygen(dir);
    // A quiet period far longer than this test: the refusal cannot pass by.
    let origin = start_origin(
        dir,
        "origin",
        &src,
        &key,
        "generic",
        &["--quiet-period", "1h"],
    );
    let out = publish_call(&origin.state, &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changed at "), "{err}");
    assert!(err.contains("--wait"), "{err}");
    assert_eq!(generation(&origin), 0);
    let out = publish_call(&origin.state, &["--force"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(generation(&origin), 1);
    // A change list is checked on its own paths: the listed file is named.
    std::fs::write(src.join("dists/s/Release"), b"two").unwrap();
    let mut cmd = Command::new(shoal_e2e::bin("shoal-agent"));
    cmd.arg("publish")
        .arg("--state")
        .arg(&origin.state)
        .args(["--changes", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"dists/s/Release\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("dists/s/Release changed at "), "{err}");
    assert_eq!(generation(&origin), 1);
}

/// reprepro's outhook publishes exactly what `includedeb` changed; the
/// mirror ends with reprepro's out dir byte for byte.
#[test]
fn reprepro_outhook_publishes_an_includedeb() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let repo = Reprepro::new(&dir.join("archive"), &dir.join("debs"));
    repo.add("alpha", "1.0", 30_000);
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &repo.public,
        &key,
        "debian",
        &["--quiet-period", "2s"],
    );
    origin.wait_generation(1);
    let m1 = start_mirror(
        dir,
        "m1",
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "0s"],
    );
    m1.wait_generation(1);

    std::fs::write(
        repo.base.join("conf/options"),
        format!("verbose\nouthook {}\n", hook("reprepro-outhook").display()),
    )
    .unwrap();
    let deb = build_deb(&repo.debs, "beta", "2.0", 40_000);
    let mut cmd = Command::new("reprepro");
    cmd.arg("-b")
        .arg(&repo.base)
        .arg("--outdir")
        .arg(&repo.public)
        .args(["includedeb", "stable"])
        .arg(&deb);
    hook_env(&mut cmd, &origin);
    let out = run_ok(&mut cmd);
    // The hook published before reprepro returned (the origin's timer is off).
    assert_eq!(generation(&origin), 2, "{out:?}");
    assert!(log_of(&origin).contains("publishing from a change list"));
    m1.wait_generation(2);
    assert!(m1.repo.join(repo.pool_file("beta", "2.0")).exists());
    let packages =
        std::fs::read_to_string(m1.repo.join("dists/stable/main/binary-amd64/Packages")).unwrap();
    assert!(packages.contains("Package: beta"), "{packages}");
    assert_same_tree(&repo.public, &m1.repo, &["project/trace"]);
}

/// Each hook passes SHOAL_STATE and SHOAL_CONFIG as one word: with the
/// origin's state folder and its config file under a folder whose name
/// holds spaces, reprepro-outhook (fed a hand-written outlog) and
/// ftpsync-pull (pulling from a local folder) publish through SHOAL_STATE,
/// and createrepo-publish and reprepro-outhook through SHOAL_CONFIG.
#[test]
fn hooks_take_state_and_config_paths_with_spaces() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("shoal  with spaces");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("repo");
    std::fs::create_dir_all(src.join("pool")).unwrap();
    std::fs::write(src.join("pool/a"), b"first").unwrap();
    let (key, _) = keygen(&dir);
    let origin = start_origin(&dir, "origin", &src, &key, "generic", &[]);
    origin.wait_generation(1);
    assert!(origin.state.display().to_string().contains(' '));
    let config = dir.join("origin config.yaml");
    std::fs::write(
        &config,
        format!(
            "role: origin\nrepo: \"{}\"\nstate: \"{}\"\nlisten: \"{}\"\norigin: {{key: \"{}\"}}\n",
            src.display(),
            origin.state.display(),
            origin.http,
            key.display()
        ),
    )
    .unwrap();
    let by_state = |cmd: &mut Command| {
        hook_env(cmd, &origin);
        cmd.env_remove("SHOAL_CONFIG");
    };
    let by_config = |cmd: &mut Command| {
        hook_env(cmd, &origin);
        cmd.env_remove("SHOAL_STATE").env("SHOAL_CONFIG", &config);
    };

    // reprepro-outhook: the outlog reprepro would pass, listing one file.
    let outhook = |name: &str, env: &dyn Fn(&mut Command)| {
        std::fs::write(src.join("pool").join(name), name.as_bytes()).unwrap();
        let outlog = dir.join("reprepro out.outlog");
        std::fs::write(&outlog, format!("POOLNEW\tpool/{name}\n")).unwrap();
        let mut cmd = Command::new(hook("reprepro-outhook"));
        cmd.arg(&outlog);
        env(&mut cmd);
        run_ok(&mut cmd)
    };
    let out = outhook("b", &by_state);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
    let out = outhook("c", &by_config);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 3");

    // createrepo-publish on an empty rpm folder: publishes its repodata.
    let mut cmd = Command::new(hook("createrepo-publish"));
    cmd.args(["--quiet", "--no-database"]).arg(&src);
    by_config(&mut cmd);
    let out = run_ok(&mut cmd);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 4");
    assert!(src.join("repodata/repomd.xml").exists());

    // ftpsync-pull from a local folder holding the tree plus one file.
    let upstream = dir.join("up stream");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", src.display()))
            .arg(&upstream),
    );
    std::fs::write(upstream.join("pool/d"), b"pulled").unwrap();
    let mut cmd = Command::new(hook("ftpsync-pull"));
    cmd.arg(format!("{}/", upstream.display())).arg(&src);
    by_state(&mut cmd);
    let out = run_ok(&mut cmd);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 5");
    assert_eq!(std::fs::read(src.join("pool/d")).unwrap(), b"pulled");
    assert_eq!(generation(&origin), 5);
}

/// The createrepo_c wrapper publishes new rpms, removed rpms and the new
/// repodata; the mirror ends with createrepo_c's output byte for byte.
#[test]
fn createrepo_wrapper_publishes_an_update() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let rpms = RpmRepo::new(&dir.join("repo"), &dir.join("rpmbuild"));
    rpms.add("alpha", "1.0", 30_000);
    rpms.add("gamma", "1.0", 20_000);
    run_ok(
        Command::new("createrepo_c")
            .args(["--quiet", "--no-database"])
            .arg(&rpms.root),
    );
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &rpms.root,
        &key,
        "rpm",
        &["--quiet-period", "2s"],
    );
    origin.wait_generation(1);
    let m1 = start_mirror(
        dir,
        "m1",
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "0s"],
    );
    m1.wait_generation(1);

    // An upgrade, a new package and a removal, then the wrapper.
    rpms.add("alpha", "1.1", 30_000);
    rpms.add("beta", "1.0", 25_000);
    rpms.remove("gamma");
    let mut cmd = Command::new(hook("createrepo-publish"));
    cmd.args(["--quiet", "--no-database"]).arg(&rpms.root);
    hook_env(&mut cmd, &origin);
    let out = run_ok(&mut cmd);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 2");
    assert!(log_of(&origin).contains("publishing from a change list"));
    m1.wait_generation(2);
    for (name, version, there) in [
        ("alpha", "1.1", true),
        ("beta", "1.0", true),
        ("alpha", "1.0", false),
        ("gamma", "1.0", false),
    ] {
        let p = m1.repo.join(RpmRepo::package_file(name, version));
        assert_eq!(p.exists(), there, "{}", p.display());
    }
    assert_same_tree(&rpms.root, &m1.repo, &["project/trace"]);
}

/// A local `rsync --daemon` serving `path` as module `debian` on
/// 127.0.0.1; killed by its PID when dropped.
struct RsyncDaemon {
    _proc: Proc,
    url: String,
}

impl RsyncDaemon {
    fn start(dir: &Path, path: &Path) -> RsyncDaemon {
        let ip = "127.0.0.1".parse().unwrap();
        let port = free_port(ip);
        let conf = dir.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "address = 127.0.0.1\nport = {port}\nuse chroot = no\nuid = {uid}\ngid = {gid}\n\
                 pid file = {dir}/rsyncd.pid\nlog file = {dir}/rsyncd.log\n\
                 [debian]\npath = {path}\nread only = yes\n",
                uid = unsafe { libc::getuid() },
                gid = unsafe { libc::getgid() },
                dir = dir.display(),
                path = path.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("rsync");
        cmd.args(["--daemon", "--no-detach"])
            .arg(format!("--config={}", conf.display()));
        let proc = Proc::spawn("rsyncd", cmd, &dir.join("rsyncd.out"));
        wait_for("rsync --daemon to listen", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        RsyncDaemon {
            _proc: proc,
            url: format!("rsync://127.0.0.1:{port}/debian/"),
        }
    }
}

/// The origin is fed ftpsync-style (stage 1 without indices, stage 2 with
/// them and deletions) under ftpsync's lock: between the stages its timer
/// holds back although new pool files are there, and after stage 2 it
/// publishes; the mirror ends with the upstream archive byte for byte.
#[test]
fn ftpsync_style_two_stage_pull_publishes_only_after_stage_two() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path();
    let upstream = Reprepro::new(&dir.join("upstream"), &dir.join("debs"));
    upstream.add("alpha", "1.0", 30_000);
    upstream.add("gamma", "1.0", 20_000);
    let rsyncd = RsyncDaemon::start(dir, &upstream.public);
    let origin_repo = dir.join("origin-repo");
    std::fs::create_dir_all(&origin_repo).unwrap();
    let pull = |after_stage1: Option<&str>, origin: Option<&Agent>| {
        let mut cmd = Command::new(hook("ftpsync-pull"));
        cmd.arg(&rsyncd.url).arg(&origin_repo);
        match origin {
            Some(o) => hook_env(&mut cmd, o),
            None => {
                cmd.env("SHOAL_NO_PUBLISH", "1");
            }
        }
        if let Some(h) = after_stage1 {
            cmd.env("SHOAL_AFTER_STAGE1", h);
        }
        cmd
    };
    run_ok(&mut pull(None, None));
    assert_same_tree(&upstream.public, &origin_repo, &[]);

    let (key, pubkey) = keygen(dir);
    let origin = start_origin(
        dir,
        "origin",
        &origin_repo,
        &key,
        "debian",
        &[
            "--publish-interval",
            "1s",
            "--quiet-period",
            "1s",
            "--log",
            "shoal_agent=debug",
        ],
    );
    origin.wait_generation(1);
    let m1 = start_mirror(
        dir,
        "m1",
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "0s"],
    );
    m1.wait_generation(1);

    // Upstream: an upgrade, a new package, a removal.
    upstream.add("alpha", "1.1", 30_000);
    upstream.add("beta", "1.0", 25_000);
    upstream.remove("gamma");
    // Between the stages the script waits for the test's go-ahead.
    let between = dir.join("between-stages");
    let go = dir.join("go");
    let hook2 = format!(
        "touch {}; while [ ! -e {} ]; do sleep 0.1; done",
        between.display(),
        go.display()
    );
    let mut script = pull(Some(&hook2), Some(&origin));
    script
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = Guard(Some(script.spawn().unwrap()));
    wait_for("stage 1 to finish", Duration::from_secs(60), || {
        between.exists()
    });
    // Stage 1 brought the new pool files, not the indices.
    assert!(origin_repo.join(upstream.pool_file("beta", "1.0")).exists());
    let up_packages = "dists/stable/main/binary-amd64/Packages";
    assert_ne!(
        std::fs::read(origin_repo.join(up_packages)).unwrap(),
        std::fs::read(upstream.public.join(up_packages)).unwrap()
    );
    let waits = || log_of(&origin).matches("publish still waiting").count();
    let before = waits();
    wait_for(
        "the origin's timer to find the lock three times",
        Duration::from_secs(60),
        || waits() >= before + 3,
    );
    let st = origin.status().unwrap();
    assert_eq!(st.generation_applied, 1, "published between the stages");
    assert!(
        st.publish_waiting
            .as_deref()
            .unwrap_or("")
            .contains("Archive-Update-in-Progress-"),
        "{:?}",
        st.publish_waiting
    );
    std::fs::write(&go, b"").unwrap();
    let out = child.take().wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ftpsync-pull failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The script's own publish (or the timer, whichever came first) made
    // generation 2 from the complete stage-2 tree.
    let reply = String::from_utf8_lossy(&out.stdout);
    assert_eq!(reply.trim(), "ok 2", "{reply}");
    assert_same_tree(&upstream.public, &origin_repo, &[]);
    m1.wait_generation(2);
    assert_same_tree(&upstream.public, &m1.repo, &["project/trace"]);
    assert!(!m1.repo.join(upstream.pool_file("gamma", "1.0")).exists());
    // No generation was ever made from a half-synced tree: generation 2 is
    // the newest and nothing followed it.
    assert_eq!(generation(&origin), 2);
}

/// Kills a child by its PID if the test fails before it is waited for.
struct Guard(Option<std::process::Child>);

impl Guard {
    fn take(&mut self) -> std::process::Child {
        self.0.take().expect("child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
