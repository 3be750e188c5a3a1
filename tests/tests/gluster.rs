//! Real GlusterFS across three network namespaces, laid out by
//! `shoal gluster layout`.
//!
//! Three hosts on a [`TestNet`] bridge each run their own `glusterd -N`. Host
//! 1 probes the others, creates a chained replica-2 volume over two bricks per
//! host with exactly the command `shoal gluster layout --format command`
//! printed, starts it, and mounts it with the FUSE client at a directory of
//! the root mount namespace. The test writes files through the mount and
//! checks that `gluster volume info` lists the bricks in the planned order and
//! that both bricks of each replica set hold the same files. It also creates
//! (without starting) a `replica 2 arbiter 1` volume to confirm gluster takes
//! that spelling and puts the arbiter last.
//!
//! # Keeping three glusterds apart on one machine
//!
//! glusterd keeps state in `/var/lib/glusterd`, logs in `/var/log/glusterfs`,
//! sockets and pid files in `/run/gluster`, and listens for its CLI on
//! `/run/glusterd.socket`. Some of that can be moved with volfile options
//! (`working-directory`, `run-directory`, `glusterd-sockfile`) and `-l`/`-p`,
//! but brick logs, the self-heal daemon's log, brick sockets and the command
//! history are hard-wired. So every gluster process of a host (glusterd, and
//! the CLI too) runs through [`gluster_env`]: `ip netns exec` puts it in the
//! host's network namespace, `unshare --mount --propagation private` gives it
//! a private mount namespace, and three bind mounts there replace those
//! directories with the host's own. Bricks and daemons that glusterd starts
//! inherit both namespaces. The CLI socket lives in the host's directory so
//! that the CLI can reach it. Nothing is written to the machine's own gluster
//! directories (the test checks).
//!
//! Bricks live on a small tmpfs per host, because glusterd refuses bricks on
//! the root file system unless forced. Gluster refuses loopback addresses as
//! brick hosts, which is why this needs namespaces at all: each host's bricks
//! are `10.231.X.i:/…`.
//!
//! Finally a Shoal mirror keeps its repository on the volume: an origin on
//! a local reprepro archive and a mirror whose `--repo` is the FUSE mount
//! (state on local disk, so files are copied into the volume) sync a first
//! generation and an update over 127.0.0.0/8; the mount must equal the
//! origin's tree, both bricks of each replica set must hold the synced files,
//! and `gluster volume info` must still list the planned order.
//!
//! Needs root, `glusterfs-server`, `glusterfs-client`, `fuse3`, `iproute2`,
//! `util-linux`, `mount`, `reprepro` and `dpkg`, and the `shoal` and
//! `shoal-agent` binaries (`cargo build --bins`).

use anyhow::{bail, Context, Result};
use shoal_e2e::agents::{
    assert_same_tree, keygen, publish, start_mirror_in, start_origin, tree, wait_for as wait_until,
};
use shoal_e2e::netns::{output_ok, require_programs, require_root, Host, TestNet};
use shoal_e2e::repo::Reprepro;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const VOLUME: &str = "shoal";

/// Replaces glusterd's hard-wired directories with the host's own (in the
/// private mount namespace of the command), then runs the command.
const PRIVATE_DIRS: &str = r#"set -e
mkdir -p /var/lib/glusterd /var/log/glusterfs /run/gluster
mount --bind "$1" /var/lib/glusterd
mount --bind "$2" /var/log/glusterfs
mount --bind "$3" /run/gluster
shift 3
exec "$@""#;

/// Per-host gluster paths under the host's test directory.
struct Dirs {
    lib: PathBuf,
    log: PathBuf,
    run: PathBuf,
    socket: PathBuf,
    disk: PathBuf,
}

fn dirs(h: &Host) -> Dirs {
    let d = h.dir();
    Dirs {
        lib: d.join("lib"),
        log: d.join("log"),
        run: d.join("run"),
        socket: d.join("glusterd.socket"),
        disk: d.join("disk"),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 test path")
}

/// `argv` in host `h`'s network namespace with its private gluster dirs.
fn gluster_env(h: &Host, argv: &[&str]) -> Command {
    let d = dirs(h);
    let mut c = h.command("unshare");
    c.args([
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        PRIVATE_DIRS,
        "sh",
    ])
    .args([s(&d.lib), s(&d.log), s(&d.run)])
    .args(argv);
    c
}

/// Runs the gluster CLI against host `h`'s glusterd.
fn gluster(h: &Host, args: &[&str]) -> Result<String> {
    let d = dirs(h);
    let sock = format!("--glusterd-sock={}", s(&d.socket));
    let log = format!("--log-file={}", s(&d.log.join("cli.log")));
    let mut argv = vec!["gluster", "--mode=script", "--timeout=60", &sock, &log];
    argv.extend_from_slice(args);
    output_ok(&mut gluster_env(h, &argv))
}

/// Retries `f` until it returns `Ok(Some(_))` or `secs` pass.
fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    loop {
        match f() {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!("timed out after {secs}s waiting for {what}; last error: {last}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Mounts a small tmpfs for bricks and starts glusterd on `h`.
fn start_glusterd(h: &Host) -> Result<()> {
    let d = dirs(h);
    for p in [&d.lib, &d.log, &d.run, &d.disk] {
        std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
    }
    output_ok(
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs"])
            .arg(&d.disk),
    )?;
    h.track_mount(&d.disk);
    let vol = h.dir().join("glusterd.vol");
    std::fs::write(
        &vol,
        format!(
            "volume management
    type mgmt/glusterd
    option working-directory {lib}
    option run-directory {run}
    option glusterd-sockfile {sock}
    option transport-type socket
    option transport.socket.listen-port 24007
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
",
            lib = s(&d.lib),
            run = s(&d.run),
            sock = s(&d.socket),
        ),
    )?;
    let log_file = d.log.join("glusterd.log");
    let pid_file = d.run.join("glusterd.pid");
    let mut c = gluster_env(
        h,
        &[
            "glusterd",
            "-N",
            "-f",
            s(&vol),
            "-l",
            s(&log_file),
            "-p",
            s(&pid_file),
        ],
    );
    let out = std::fs::File::create(h.dir().join("glusterd.stdout"))?;
    c.stdout(out.try_clone()?).stderr(out);
    h.spawn_command(c)?;
    wait_for(&format!("glusterd on {}", h.addr()), 30, || {
        gluster(h, &["peer", "status"]).map(Some)
    })?;
    Ok(())
}

/// A running three-host gluster pool with volume [`VOLUME`] mounted.
struct GlusterCluster {
    net: TestNet,
    mount: PathBuf,
    /// The `shoal gluster layout` output: bricks in create order.
    planned: Vec<String>,
}

/// Where the Shoal mirror's repository tree goes on the replicated volume:
/// the FUSE mount of [`VOLUME`], in the root mount namespace where the agent
/// runs (the agent itself talks to its origin over 127.0.0.0/8).
fn mirror_mount_path(cluster: &GlusterCluster) -> &Path {
    &cluster.mount
}

fn shoal_layout(args: &[&str]) -> Result<String> {
    output_ok(
        Command::new(shoal_e2e::bin("shoal"))
            .args(["gluster", "layout"])
            .args(args),
    )
}

/// The bricks that `gluster volume info` lists, in order.
fn info_bricks(info: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| {
            let (key, value) = l.split_once(':')?;
            let n = key.strip_prefix("Brick")?;
            n.parse::<u32>().ok()?;
            Some(value.trim().to_string())
        })
        .collect()
}

/// Runs a printed `gluster volume create ...` command on `h`.
fn run_create_command(h: &Host, command: &str) -> Result<String> {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(&words[..3], ["gluster", "volume", "create"], "{command}");
    gluster(h, &words[1..])
}

fn setup() -> Result<GlusterCluster> {
    require_root("glusterd in network namespaces and FUSE mounts")?;
    require_programs(&[
        ("glusterd", "glusterfs-server"),
        ("gluster", "glusterfs-server"),
        ("glusterfsd", "glusterfs-server"),
        ("mount.glusterfs", "glusterfs-client"),
        ("glusterfs", "glusterfs-client"),
        ("ip", "iproute2"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("mount", "mount"),
        ("umount", "mount"),
        ("reprepro", "reprepro"),
        ("dpkg-deb", "dpkg"),
    ])?;
    let net = TestNet::new("glu", 3)?;
    for h in net.hosts() {
        start_glusterd(h)?;
    }
    let h1 = net.host(1);
    for h in &net.hosts()[1..] {
        gluster(h1, &["peer", "probe", &h.addr().to_string()])?;
    }
    wait_for("both peers in the cluster", 60, || {
        let status = gluster(h1, &["peer", "status"])?;
        Ok((status.matches("State: Peer in Cluster (Connected)").count() == 2).then_some(()))
    })?;

    // Two bricks per host, given to the planner in a scrambled order.
    let mut bricks = Vec::new();
    for h in net.hosts().iter().rev() {
        for b in ["b", "a"] {
            bricks.push(format!("{}:{}", h.addr(), s(&dirs(h).disk.join(b))));
        }
    }
    let brick_args: Vec<&str> = bricks.iter().map(String::as_str).collect();
    let mut args = vec!["--replica", "2", "--layout", "chained"];
    args.extend(&brick_args);
    let planned: Vec<String> = shoal_layout(&args)?.lines().map(str::to_string).collect();
    let mut cmd_args = args.clone();
    cmd_args.extend(["--format", "command", "--volume", VOLUME]);
    let command = shoal_layout(&cmd_args)?;

    let out = run_create_command(h1, command.trim())?;
    assert!(out.contains("success"), "{out}");
    gluster(h1, &["volume", "start", VOLUME])?;
    wait_for("all six bricks online", 60, || {
        let xml = gluster(h1, &["volume", "status", VOLUME, "--xml"])?;
        let online = xml
            .split("<node>")
            .filter(|n| n.contains(&format!("<path>{}", s(net.dir()))))
            .filter(|n| n.contains("<status>1</status>"))
            .count();
        Ok((online == 6).then_some(()))
    })?;

    let mount = net.dir().join("mnt");
    std::fs::create_dir(&mount)?;
    let mut m = h1.command_root_mounts("mount");
    m.args(["-t", "glusterfs", "-o"])
        .arg(format!(
            "log-file={}",
            s(&dirs(h1).log.join("fuse-client.log"))
        ))
        .arg(format!("{}:/{VOLUME}", h1.addr()))
        .arg(&mount);
    output_ok(&mut m)?;
    h1.track_mount(&mount);
    Ok(GlusterCluster {
        net,
        mount,
        planned,
    })
}

/// Regular files under `root` (relative paths and contents), skipping
/// gluster's hidden internals at the top level.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if dir == root && e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                walk(root, &p, out);
            } else if ft.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn dir_entries(p: &str) -> BTreeSet<String> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn replicated_volume_follows_the_planned_layout() {
    let system_dirs = ["/var/lib/glusterd", "/var/log/glusterfs", "/run/gluster"];
    let before: Vec<BTreeSet<String>> = system_dirs.iter().map(|d| dir_entries(d)).collect();

    let cluster = setup().unwrap_or_else(|e| panic!("setting up gluster: {e:#}"));
    let net = &cluster.net;
    let h1 = net.host(1);
    let brick = |i: usize, b: &str| {
        format!(
            "{}:{}",
            net.host(i).addr(),
            s(&dirs(net.host(i)).disk.join(b))
        )
    };

    // The chained layout of the issue: set k on hosts k and k+1.
    let expected = vec![
        brick(1, "a"),
        brick(2, "a"),
        brick(2, "b"),
        brick(3, "a"),
        brick(3, "b"),
        brick(1, "b"),
    ];
    assert_eq!(cluster.planned, expected);

    // gluster agrees, on every peer.
    for h in net.hosts() {
        let info = gluster(h, &["volume", "info", VOLUME]).unwrap();
        assert_eq!(
            info_bricks(&info),
            expected,
            "volume info on {}:\n{info}",
            h.addr()
        );
        assert!(info.contains("Type: Distributed-Replicate"), "{info}");
        assert!(info.contains("Number of Bricks: 3 x 2 = 6"), "{info}");
        assert!(info.contains("Status: Started"), "{info}");
        eprintln!("gluster volume info on {}:\n{info}", h.addr());
    }

    // Write a small repository-like tree through the FUSE mount.
    let mnt = mirror_mount_path(&cluster);
    let mut written = BTreeMap::new();
    for i in 0..60 {
        let rel = format!("pool/main/p{}/pkg{i}_1.0_all.deb", i % 4);
        let data = format!("package {i}\n").repeat(i + 1).into_bytes();
        let p = mnt.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &data).unwrap();
        written.insert(rel, data);
    }
    assert_eq!(files(mnt), written, "the mount reads back what was written");

    // Each replica set: both bricks hold the same files; together the sets
    // hold every file exactly once.
    let mut seen = BTreeMap::new();
    for (k, pair) in expected.chunks(2).enumerate() {
        let path = |b: &str| PathBuf::from(b.split_once(':').unwrap().1);
        let (a, b) = (path(&pair[0]), path(&pair[1]));
        let fa = wait_for(&format!("replica set {k} in sync"), 30, || {
            let (fa, fb) = (files(&a), files(&b));
            Ok((fa == fb).then_some(fa))
        })
        .unwrap();
        assert!(!fa.is_empty(), "replica set {k} ({pair:?}) got no files");
        for (rel, data) in fa {
            assert!(
                seen.insert(rel.clone(), data).is_none(),
                "{rel} in two replica sets"
            );
        }
    }
    assert_eq!(seen, written, "every file is in exactly one replica set");

    // `replica 2 arbiter 1` is accepted and puts the arbiter last in its set.
    let arb_bricks: Vec<String> = net
        .hosts()
        .iter()
        .rev()
        .map(|h| format!("{}:{}", h.addr(), s(&dirs(h).disk.join("arb"))))
        .collect();
    let mut args: Vec<&str> = vec![
        "--replica",
        "2",
        "--arbiter",
        "1",
        "--format",
        "command",
        "--volume",
        "arb",
    ];
    args.extend(arb_bricks.iter().map(String::as_str));
    let command = shoal_layout(&args).unwrap();
    run_create_command(h1, command.trim()).unwrap();
    let info = gluster(h1, &["volume", "info", "arb"]).unwrap();
    assert!(info.contains("Number of Bricks: 1 x (2 + 1) = 3"), "{info}");
    let listed = info_bricks(&info);
    let planned_arb: Vec<String> = command
        .split_whitespace()
        .skip(10)
        .map(str::to_string)
        .collect();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[..2], planned_arb[..2]);
    assert_eq!(listed[2], format!("{} (arbiter)", planned_arb[2]));
    // The Puppet class reads the brick order of an existing volume with a
    // shell pipeline over `gluster volume info`; on real output it gives
    // the planned order, arbiter included.
    assert_eq!(
        puppet_listed_bricks(&info),
        format!("{} ", planned_arb.join(" "))
    );
    gluster(h1, &["volume", "delete", "arb"]).unwrap();

    // A Shoal mirror keeps its live tree on the volume. The test files go
    // first, so that the mount holds only what the mirror writes.
    std::fs::remove_dir_all(mnt.join("pool")).unwrap();
    assert!(files(mnt).is_empty(), "{:?}", files(mnt).keys());
    mirror_into_gluster(&cluster, &expected);

    // The layout is unchanged after the mirror's writes.
    let info = gluster(h1, &["volume", "info", VOLUME]).unwrap();
    assert_eq!(info_bricks(&info), expected, "{info}");
    eprintln!("gluster volume info after the mirror synced:\n{info}");

    // After a reboot the volume comes back from the fstab line shoal::gluster
    // and the Ansible role write (`SERVER:/VOLUME DIR glusterfs defaults,
    // _netdev,backup-volfile-servers=... 0 0`): mount(8) takes it from a
    // scratch fstab (plus a log file off the system's gluster folders) and
    // mount.glusterfs accepts its options.
    let again = net.dir().join("mnt-fstab");
    std::fs::create_dir(&again).unwrap();
    let fstab = net.dir().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# scratch fstab\n{}:/{VOLUME} {} glusterfs defaults,_netdev,backup-volfile-servers={}:{} 0 0\n",
            h1.addr(),
            s(&again),
            net.host(2).addr(),
            net.host(3).addr()
        ),
    )
    .unwrap();
    let mut m = h1.command_root_mounts("mount");
    m.arg("--fstab").arg(&fstab).arg("-o").arg(format!(
        "log-file={}",
        s(&dirs(h1).log.join("fuse-fstab.log"))
    ));
    m.arg(&again);
    h1.track_mount(&again);
    output_ok(&mut m).unwrap_or_else(|e| panic!("mount from the fstab line: {e:#}"));
    let findmnt = output_ok(
        Command::new("findmnt")
            .args(["--noheadings", "--output", "SOURCE,FSTYPE", "--mountpoint"])
            .arg(&again),
    )
    .unwrap();
    assert_eq!(
        findmnt.split_whitespace().collect::<Vec<_>>(),
        [
            format!("{}:/{VOLUME}", h1.addr()).as_str(),
            "fuse.glusterfs"
        ],
        "{findmnt}"
    );
    assert_eq!(files(&again), files(mnt));
    let status = Command::new("umount").arg(&again).status().unwrap();
    assert!(status.success());

    // Orderly shutdown: unmount, stop the volume (bricks exit), then drop
    // the net, which stops the glusterds and removes everything.
    let status = Command::new("umount").arg(mnt).status().unwrap();
    assert!(status.success());
    gluster(h1, &["volume", "stop", VOLUME]).unwrap();
    drop(cluster);

    let after: Vec<BTreeSet<String>> = system_dirs.iter().map(|d| dir_entries(d)).collect();
    for ((dir, b), a) in system_dirs.iter().zip(&before).zip(&after) {
        let added: Vec<&String> = a.difference(b).collect();
        assert!(added.is_empty(), "the test left {added:?} in {dir}");
    }
}

/// Runs the pipeline `shoal::gluster` (puppet/manifests/gluster.pp, `$listed`)
/// applies to `gluster volume info` output, on `info`.
fn puppet_listed_bricks(info: &str) -> String {
    use std::io::Write;
    let pp =
        std::fs::read_to_string(shoal_e2e::workspace_root().join("puppet/manifests/gluster.pp"))
            .unwrap();
    let line = pp
        .lines()
        .find(|l| l.trim_start().starts_with("$listed = \""))
        .expect("$listed in gluster.pp");
    let quoted = line.split_once('"').unwrap().1.rsplit_once('"').unwrap().0;
    let pipeline = quoted
        .split_once(" | ")
        .expect("gluster ... | pipeline")
        .1
        .replace("\\$", "$")
        .replace("\\\\n", "\\n");
    let mut child = Command::new("sh")
        .args(["-c", &pipeline])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(info.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{pipeline}");
    String::from_utf8(out.stdout).unwrap()
}

/// What the mirror does not share with its origin: its own trace file.
const MIRROR_SKIP: &[&str] = &["project/trace"];

/// Whether a file on a brick is a DHT link file: when a file is renamed to
/// a name that hashes to another replica set, gluster leaves the data where
/// it is and puts an empty pointer (mode `---------T`, xattr
/// `trusted.glusterfs.dht.linkto`) in the set the new name hashes to.
fn is_dht_link(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return false;
    };
    if m.len() != 0 || m.mode() & 0o7777 != 0o1000 {
        return false;
    }
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = c"trusted.glusterfs.dht.linkto";
    // SAFETY: valid C strings; a null buffer with size 0 asks for the size.
    unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) > 0 }
}

/// The files of a brick: [`files`] without DHT link files.
fn brick_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut f = files(root);
    f.retain(|rel, _| !is_dht_link(&root.join(rel)));
    f
}

/// Both bricks of every replica set hold the same files, and together the
/// sets hold `want` (relative path -> bytes) with every file's data in one
/// set.
fn assert_replicas_hold(planned: &[String], want: &BTreeMap<String, Vec<u8>>) {
    let mut seen = BTreeMap::new();
    for (k, pair) in planned.chunks(2).enumerate() {
        let path = |b: &str| PathBuf::from(b.split_once(':').unwrap().1);
        let (a, b) = (path(&pair[0]), path(&pair[1]));
        let fa = wait_for(&format!("replica set {k} in sync"), 60, || {
            let (fa, fb) = (brick_files(&a), brick_files(&b));
            Ok((fa == fb).then_some(fa))
        })
        .unwrap();
        for (rel, data) in fa {
            assert!(
                seen.insert(rel.clone(), data).is_none(),
                "{rel} in two replica sets"
            );
        }
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the bricks hold other files than the mount"
    );
    assert!(seen == *want, "a brick holds other bytes than the mount");
}

/// An origin on a local reprepro archive and a mirror whose `--repo` is the
/// gluster mount (its `--state` on local disk, so every file is copied into
/// the volume rather than hard-linked: links cannot cross file systems). The
/// mirror applies a first generation and an update with an added, a rebuilt
/// and a removed package; after each, the mount holds the origin's tree and
/// both bricks of every replica set hold the synced files.
fn mirror_into_gluster(cluster: &GlusterCluster, planned: &[String]) {
    let mnt = mirror_mount_path(cluster);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let repo = Reprepro::new(&dir.join("archive"), &dir.join("debs"));
    for i in 0..12 {
        repo.add(&format!("pkg{i:02}"), "1.0", 4_000 + i * 9_000);
    }
    let (key, pubkey) = keygen(dir);
    let origin = start_origin(dir, "origin", &repo.public, &key, "debian", &[]);
    let g1 = publish(&origin.state);
    let mirror = start_mirror_in(
        dir,
        "gmirror",
        mnt,
        &pubkey,
        &[origin.url()],
        &["--delete-grace", "2s"],
    );
    mirror.wait_generation(g1);
    assert_same_tree(&repo.public, mnt, MIRROR_SKIP);
    let st = mirror.status().unwrap();
    assert!(st.last_error.is_none(), "{:?}", st.last_error);
    let trace = std::fs::read_to_string(mnt.join("project/trace/gmirror")).unwrap();
    assert!(trace.contains("Archive serial:"), "{trace}");
    let synced = tree(mnt, &[]);
    assert_replicas_hold(planned, &synced);
    eprintln!(
        "mirror applied generation {g1} into the gluster mount: {} files, {} bytes",
        synced.len(),
        synced.values().map(Vec::len).sum::<usize>()
    );

    // An update: files replaced by rename over existing ones on the volume,
    // a new one, and a deletion after the grace period.
    repo.add("newpkg", "1.0", 70_000);
    repo.add("pkg03", "2.0", 12_000);
    repo.remove("pkg05");
    let removed = repo.pool_file("pkg05", "1.0");
    let g2 = publish(&origin.state);
    assert!(g2 > g1);
    mirror.wait_generation(g2);
    wait_until(
        &format!("the mirror to remove {removed} from the volume"),
        Duration::from_secs(60),
        || !mnt.join(&removed).exists(),
    );
    assert_same_tree(&repo.public, mnt, MIRROR_SKIP);
    assert_eq!(
        std::fs::read(mnt.join("dists/stable/Release")).unwrap(),
        std::fs::read(repo.public.join("dists/stable/Release")).unwrap()
    );
    let st = mirror.status().unwrap();
    assert!(st.last_error.is_none(), "{:?}", st.last_error);
    assert_replicas_hold(planned, &tree(mnt, &[]));

    // The agents go before the volume is unmounted.
    drop(mirror);
    drop(origin);
}
