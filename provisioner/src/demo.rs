//! `shoal demo`: an origin and three mirrors on this machine's loopback
//! addresses, syncing a generated Debian-style archive, then an update.
//!
//! Everything runs as child processes of the demo (killed by PID when it
//! ends, also on Ctrl-C and on failure) and talks only to 127.0.0.0/8;
//! the agents keep their defaults, so DHT, LSD, UPnP and public trackers
//! are off.

use anyhow::{bail, Context, Result};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};
use shoal_status::Status;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Run an origin and three mirrors locally and watch a repository sync.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Working directory for the demo's repositories, state and logs
    /// (emptied first).
    #[arg(long, default_value = ".demo")]
    pub dir: PathBuf,
    /// Number of package files in the generated archive.
    #[arg(long, default_value_t = 300)]
    pub packages: usize,
    /// Number of mirrors.
    #[arg(long, default_value_t = 3)]
    pub mirrors: usize,
    /// Upload limit of the origin (bytes/s), so mirrors visibly feed each other.
    #[arg(long, default_value = "12MB")]
    pub origin_upload_limit: String,
    /// The shoal-agent binary [default: next to this `shoal` binary].
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// Give up if a step takes longer than this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// A child process killed by PID when dropped.
struct Child2 {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Drop for Child2 {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its PID.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Node {
    name: String,
    http: SocketAddr,
    repo: PathBuf,
    proc: Child2,
}

impl Node {
    fn status(&self, client: &reqwest::blocking::Client) -> Option<Status> {
        client
            .get(format!("http://{}/status", self.http))
            .send()
            .ok()?
            .json()
            .ok()
    }
}

fn free_addr(ip: &str) -> Result<SocketAddr> {
    let l = TcpListener::bind((ip, 0)).with_context(|| format!("cannot bind {ip}"))?;
    Ok(l.local_addr()?)
}

/// Deterministic pseudo-random bytes (xorshift), so runs are repeatable.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// A generated archive: package files plus real-shaped index files.
struct Archive {
    root: PathBuf,
    /// name → (version, size)
    packages: BTreeMap<String, (u32, usize)>,
}

impl Archive {
    fn pool_path(name: &str, version: u32) -> String {
        format!(
            "pool/main/{}/{name}/{name}_{version}.0-1_amd64.deb",
            &name[..1]
        )
    }

    fn write_package(&self, name: &str, version: u32, size: usize) -> Result<()> {
        let p = self.root.join(Self::pool_path(name, version));
        std::fs::create_dir_all(p.parent().unwrap())?;
        let seed = name.bytes().fold(version as u64, |a, b| {
            a.wrapping_mul(31).wrapping_add(b as u64)
        });
        std::fs::write(&p, bytes(seed, size))?;
        Ok(())
    }

    /// Writes Packages, Packages.gz, by-hash copies, Release and InRelease
    /// (clear-signed with a throwaway key when gpg is installed).
    fn write_indices(&self, gnupg: Option<&Path>) -> Result<()> {
        let mut packages = String::new();
        for (name, (version, size)) in &self.packages {
            let path = Self::pool_path(name, *version);
            let data = std::fs::read(self.root.join(&path))?;
            packages.push_str(&format!(
                "Package: {name}\nVersion: {version}.0-1\nArchitecture: amd64\nMaintainer: Shoal Demo <demo@example.invalid>\n\
                 Installed-Size: {}\nFilename: {path}\nSize: {size}\nSHA256: {}\nSection: misc\nPriority: optional\n\
                 Description: demo package {name}\n\n",
                size / 1024 + 1,
                hex::encode(Sha256::digest(&data))
            ));
        }
        let bin = "dists/stable/main/binary-amd64";
        let dir = self.root.join(bin);
        std::fs::create_dir_all(dir.join("by-hash/SHA256"))?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(packages.as_bytes())?;
        let gz = gz.finish()?;
        let release_arch = "Archive: stable\nComponent: main\nArchitecture: amd64\n".to_string();
        let files: Vec<(String, Vec<u8>)> = vec![
            (
                "main/binary-amd64/Packages".to_string(),
                packages.into_bytes(),
            ),
            ("main/binary-amd64/Packages.gz".to_string(), gz),
            (
                "main/binary-amd64/Release".to_string(),
                release_arch.into_bytes(),
            ),
        ];
        let mut sha_lines = String::new();
        for (rel, data) in &files {
            let h = hex::encode(Sha256::digest(data));
            std::fs::write(self.root.join("dists/stable").join(rel), data)?;
            if !rel.ends_with("Release") {
                std::fs::write(dir.join("by-hash/SHA256").join(&h), data)?;
            }
            sha_lines.push_str(&format!(" {h} {:>8} {rel}\n", data.len()));
        }
        let release = format!(
            "Origin: Shoal Demo\nLabel: Shoal Demo\nSuite: stable\nCodename: demo\nDate: {}\n\
             Acquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\nDescription: Shoal demo archive\nSHA256:\n{sha_lines}",
            httpdate(std::time::SystemTime::now())
        );
        std::fs::write(self.root.join("dists/stable/Release"), &release)?;
        let inrelease = self.root.join("dists/stable/InRelease");
        match gnupg {
            Some(home) => {
                let out = Command::new("gpg")
                    .env("GNUPGHOME", home)
                    .args(["--batch", "--yes", "--clearsign", "--output"])
                    .arg(&inrelease)
                    .arg(self.root.join("dists/stable/Release"))
                    .output()
                    .context("cannot run gpg")?;
                if !out.status.success() {
                    bail!(
                        "gpg --clearsign failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            None => {
                let _ = std::fs::remove_file(&inrelease);
            }
        }
        Ok(())
    }
}

fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Days since epoch → civil date (Howard Hinnant's algorithm).
    let days = (secs / 86400) as i64;
    let (h, m, s) = ((secs % 86400) / 3600, (secs % 3600) / 60, secs % 60);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    let wd = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days.rem_euclid(7)) as usize];
    let mn = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(mo - 1) as usize];
    format!("{wd}, {d:02} {mn} {y} {h:02}:{m:02}:{s:02} UTC")
}

/// A throwaway gpg home with a signing key, or None without gpg.
fn demo_gnupg(dir: &Path) -> Option<PathBuf> {
    let home = dir.join("gnupg");
    std::fs::create_dir_all(&home).ok()?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).ok()?;
    let out = Command::new("gpg")
        .env("GNUPGHOME", &home)
        .args([
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "Shoal Demo <demo@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ])
        .output()
        .ok()?;
    out.status.success().then_some(home)
}

fn stop_gpg_agent(home: &Path) {
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home)
        .args(["--kill", "gpg-agent"])
        .output();
}

fn tree(root: &Path) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("{}", d.display()))? {
            let e = e?;
            let p = e.path();
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            if rel.starts_with("project/trace") {
                continue;
            }
            if e.file_type()?.is_dir() {
                stack.push(p);
            } else {
                out.insert(rel, std::fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

fn same_tree(a: &Path, b: &Path) -> Result<()> {
    let (ta, tb) = (tree(a)?, tree(b)?);
    for k in ta.keys() {
        if !tb.contains_key(k) {
            bail!("{} lacks {k}", b.display());
        }
    }
    for (k, v) in &tb {
        match ta.get(k) {
            None => bail!("{} has {k}, which the origin does not", b.display()),
            Some(o) if o != v => bail!("{k} differs between {} and {}", a.display(), b.display()),
            _ => {}
        }
    }
    Ok(())
}

fn spawn_agent(bin: &Path, name: &str, args: &[String], log: &Path) -> Result<Child2> {
    let f = std::fs::File::create(log)?;
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(f.try_clone()?))
        .stderr(Stdio::from(f))
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    Ok(Child2 {
        child,
        name: name.to_string(),
        log: log.to_path_buf(),
    })
}

fn log_tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(8)..].join("\n")
}

/// Waits until every mirror applied `generation`, drawing a bar per mirror.
/// Returns seconds per mirror from `since`.
fn watch(
    mirrors: &mut [Node],
    generation: u64,
    since: Instant,
    timeout: Duration,
    client: &reqwest::blocking::Client,
    done: impl Fn(&Node, &Status) -> bool,
) -> Result<Vec<f64>> {
    let mp =
        MultiProgress::with_draw_target(if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
    let style = ProgressStyle::with_template(
        "{prefix:>4} [{bar:40.cyan/blue}] {bytes:>10}/{total_bytes:<10} {msg}",
    )
    .unwrap()
    .progress_chars("=> ");
    let bars: Vec<ProgressBar> = mirrors
        .iter()
        .map(|m| {
            let b = mp.add(ProgressBar::new(1));
            b.set_style(style.clone());
            b.set_prefix(m.name.clone());
            b
        })
        .collect();
    let mut times = vec![None; mirrors.len()];
    loop {
        for (i, m) in mirrors.iter_mut().enumerate() {
            if let Ok(Some(code)) = m.proc.child.try_wait() {
                bail!(
                    "{} exited ({code}); its log ends:\n{}",
                    m.proc.name,
                    log_tail(&m.proc.log)
                );
            }
            let Some(st) = m.status(client) else { continue };
            let total: u64 = st.packs.iter().map(|p| p.bytes).sum();
            let have: u64 = st.packs.iter().map(|p| p.have_bytes).sum();
            bars[i].set_length(total.max(1));
            bars[i].set_position(have);
            let ok = st.generation_applied >= generation && done(m, &st);
            bars[i].set_message(format!(
                "gen {} {}{}",
                st.generation_applied,
                if ok { "done" } else { &st.state },
                st.last_error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ));
            if ok && times[i].is_none() {
                times[i] = Some(since.elapsed().as_secs_f64());
                bars[i].finish();
            }
        }
        if times.iter().all(|t| t.is_some()) {
            break;
        }
        if since.elapsed() > timeout {
            let missing: Vec<&str> = mirrors
                .iter()
                .zip(&times)
                .filter(|(_, t)| t.is_none())
                .map(|(m, _)| m.name.as_str())
                .collect();
            bail!(
                "timed out waiting for {} to reach generation {generation}",
                missing.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    for m in mirrors.iter() {
        if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("  {}: generation {generation} applied", m.name);
        }
    }
    Ok(times.into_iter().map(|t| t.unwrap_or(0.0)).collect())
}

fn publish(bin: &Path, state: &Path) -> Result<u64> {
    let out = Command::new(bin)
        .arg("publish")
        .arg("--state")
        .arg(state)
        .output()?;
    if !out.status.success() {
        bail!(
            "publish failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let s = String::from_utf8_lossy(&out.stdout);
    s.trim()
        .strip_prefix("ok ")
        .and_then(|g| g.parse().ok())
        .with_context(|| format!("unexpected publish reply '{}'", s.trim()))
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let bin = match &args.agent_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("shoal-agent"),
    };
    if !bin.exists() {
        bail!(
            "{} not found: build it with `cargo build --release --bins` or pass --agent-bin",
            bin.display()
        );
    }
    if args.mirrors == 0 || args.mirrors > 50 {
        bail!("--mirrors must be between 1 and 50");
    }
    let dir = std::path::absolute(&args.dir)?;
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot empty {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let timeout = Duration::from_secs(args.timeout);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;

    // 1. The archive.
    eprintln!(
        "==> building a Debian-style archive with {} packages in {}",
        args.packages,
        dir.join("archive").display()
    );
    let gnupg = demo_gnupg(&dir);
    if gnupg.is_none() {
        eprintln!("    (gpg not found: InRelease is left out; scripts/demo installs gnupg)");
    }
    let mut archive = Archive {
        root: dir.join("archive"),
        packages: BTreeMap::new(),
    };
    for i in 0..args.packages {
        let name = format!("{}demo{i:03}", (b'a' + (i % 26) as u8) as char);
        // Mostly small packages, a few large ones, like a real archive.
        let size = if i % 50 == 0 {
            4_000_000 + i * 1000
        } else {
            3_000 + (i * 7919) % 250_000
        };
        archive.write_package(&name, 1, size)?;
        archive.packages.insert(name, (1, size));
    }
    archive.write_indices(gnupg.as_deref())?;
    let total: u64 = tree(&archive.root)?.values().map(|v| v.len() as u64).sum();
    eprintln!(
        "    {} files, {:.1} MB",
        tree(&archive.root)?.len(),
        total as f64 / 1e6
    );

    // 2. Origin.
    let keyfile = dir.join("origin.key");
    let out = Command::new(&bin)
        .arg("keygen")
        .arg("--out")
        .arg(&keyfile)
        .output()?;
    if !out.status.success() {
        bail!("keygen failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let pubkey = String::from_utf8(out.stdout)?.trim().to_string();
    let (oh, op) = (free_addr("127.0.0.1")?, free_addr("127.0.0.1")?);
    let ostate = dir.join("origin-state");
    let origin = spawn_agent(
        &bin,
        "origin",
        &[
            "origin".into(),
            "--name".into(),
            "origin".into(),
            "--profile".into(),
            "debian".into(),
            "--repo".into(),
            archive.root.display().to_string(),
            "--state".into(),
            ostate.display().to_string(),
            "--key".into(),
            keyfile.display().to_string(),
            "--listen".into(),
            oh.to_string(),
            "--peer-listen".into(),
            op.to_string(),
            "--publish-interval".into(),
            "0s".into(),
            // The demo publishes right after it writes the archive.
            "--quiet-period".into(),
            "0s".into(),
            "--upload-limit".into(),
            args.origin_upload_limit.clone(),
            "--announce-interval".into(),
            "1s".into(),
        ],
        &dir.join("origin.log"),
    )?;
    let started = Instant::now();
    let origin_status = || -> Option<Status> {
        client
            .get(format!("http://{oh}/status"))
            .send()
            .ok()?
            .json()
            .ok()
    };
    while origin_status().map(|s| s.generation_applied).unwrap_or(0) == 0 {
        if started.elapsed() > timeout {
            bail!(
                "the origin did not publish; its log ends:\n{}",
                log_tail(&dir.join("origin.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let g1 = origin_status().map(|s| s.generation_applied).unwrap_or(1);
    eprintln!("==> origin {oh} published generation {g1} (public key {pubkey})");

    // 3. Mirrors.
    let mut mirrors = Vec::new();
    for i in 1..=args.mirrors {
        let ip = format!("127.0.0.{}", i + 1);
        let (h, p) = (free_addr(&ip)?, free_addr(&ip)?);
        let name = format!("m{i}");
        let repo = dir.join(format!("{name}-repo"));
        let state = dir.join(format!("{name}-state"));
        let proc = spawn_agent(
            &bin,
            &name,
            &[
                "mirror".into(),
                "--name".into(),
                name.clone(),
                "--profile".into(),
                "debian".into(),
                "--repo".into(),
                repo.display().to_string(),
                "--state".into(),
                state.display().to_string(),
                "--origin-key".into(),
                pubkey.clone(),
                "--upstream".into(),
                format!("http://{oh}"),
                "--listen".into(),
                h.to_string(),
                "--peer-listen".into(),
                p.to_string(),
                "--poll-interval".into(),
                "1s".into(),
                "--announce-interval".into(),
                "1s".into(),
                "--delete-grace".into(),
                "3s".into(),
            ],
            &dir.join(format!("{name}.log")),
        )?;
        mirrors.push(Node {
            name,
            http: h,
            repo,
            proc,
        });
    }
    eprintln!(
        "==> {} mirrors following the origin: {}",
        mirrors.len(),
        mirrors
            .iter()
            .map(|m| format!("{} {}", m.name, m.http))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let t0 = Instant::now();
    let initial = watch(&mut mirrors, g1, t0, timeout, &client, |_, _| true)?;
    for m in &mirrors {
        same_tree(&archive.root, &m.repo)?;
    }
    eprintln!("==> every mirror equals the origin byte for byte");

    // 4. Update: add, change, delete.
    let names: Vec<String> = archive.packages.keys().cloned().collect();
    let deleted: Vec<String> = names.iter().step_by(30).take(10).cloned().collect();
    for n in &deleted {
        let (v, _) = archive.packages.remove(n).unwrap();
        std::fs::remove_file(archive.root.join(Archive::pool_path(n, v)))?;
    }
    for i in 0..20 {
        let name = format!("znew{i:02}");
        let size = 50_000 + i * 30_000;
        archive.write_package(&name, 1, size)?;
        archive.packages.insert(name, (1, size));
    }
    let upgraded = names[1].clone();
    if let Some((v, size)) = archive.packages.get(&upgraded).cloned() {
        std::fs::remove_file(archive.root.join(Archive::pool_path(&upgraded, v)))?;
        archive.write_package(&upgraded, v + 1, size + 10_000)?;
        archive
            .packages
            .insert(upgraded.clone(), (v + 1, size + 10_000));
    }
    // Old by-hash files stay, as archive software keeps them for a while.
    archive.write_indices(gnupg.as_deref())?;
    let t1 = Instant::now();
    let g2 = publish(&bin, &ostate)?;
    eprintln!("==> update published as generation {g2}: 20 packages added, {upgraded} upgraded, {} removed", deleted.len());
    let update = watch(&mut mirrors, g2, t1, timeout, &client, |_, _| true)?;
    eprintln!("==> waiting for the 3 s deletion grace period to pass");
    watch(
        &mut mirrors,
        g2,
        Instant::now(),
        timeout,
        &client,
        |_, st| st.pending_deletions == 0,
    )?;
    for m in &mirrors {
        same_tree(&archive.root, &m.repo)?;
    }
    eprintln!("==> every mirror equals the updated origin byte for byte");

    // 5. Table.
    let final_status: Vec<Status> = mirrors.iter().filter_map(|m| m.status(&client)).collect();
    if final_status.len() != mirrors.len() {
        bail!("a mirror stopped answering /status");
    }
    println!();
    println!(
        "{:<8} {:>4} {:>15} {:>15} {:>18} {:>18}",
        "mirror", "gen", "initial sync s", "update sync s", "MB from origin", "MB from mirrors"
    );
    let mut sum_origin = 0;
    let mut sum_peers = 0;
    for (i, st) in final_status.iter().enumerate() {
        let o = st.bytes_down.get("origin").copied().unwrap_or(0);
        let p = st.bytes_down.get("mirrors").copied().unwrap_or(0);
        sum_origin += o;
        sum_peers += p;
        println!(
            "{:<8} {:>4} {:>15.2} {:>15.2} {:>18.1} {:>18.1}",
            st.name,
            st.generation_applied,
            initial[i],
            update[i],
            o as f64 / 1e6,
            p as f64 / 1e6
        );
    }
    let origin_up = origin_status()
        .map(|s| s.bytes_up.values().sum::<u64>())
        .unwrap_or(0);
    println!();
    println!(
        "archive {:.1} MB; the origin uploaded {:.1} MB for {} mirrors ({:.2}x the archive; rsync would upload {:.0}x); \
         mirrors received {:.1} MB from the origin and {:.1} MB from each other",
        total as f64 / 1e6,
        origin_up as f64 / 1e6,
        mirrors.len(),
        origin_up as f64 / total.max(1) as f64,
        mirrors.len() as f64,
        sum_origin as f64 / 1e6,
        sum_peers as f64 / 1e6
    );
    println!("logs and trees are in {}", dir.display());
    drop(mirrors);
    drop(origin);
    if let Some(h) = &gnupg {
        stop_gpg_agent(h);
    }
    Ok(())
}
