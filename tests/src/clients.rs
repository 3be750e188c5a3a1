//! Real package-manager clients against a test mirror, isolated from the
//! machine's own configuration and state, and the classification of what
//! they report.
//!
//! - [`AptClient`]: `apt-get update` / `apt-cache pkgnames` /
//!   `apt-get download` with an `APT_CONFIG` file and `-o` options that put
//!   every directory (sources, keyrings, lists, cache, status) in the
//!   client's own dir. The archive key is the only trusted key, so
//!   `InRelease` verification is real. `Acquire::Retries=0`: each
//!   inconsistent answer is seen, not retried away.
//! - [`DnfClient`]: `dnf makecache --refresh` / `dnf repoquery -C` /
//!   `dnf download` with `--installroot`, its own config, `reposdir`,
//!   `cachedir`, `repo_gpgcheck=1` and `gpgkey=file://…`.
//!
//! [`classify`] sorts a run's output into [`Category`]s; a 404 is split by
//! what the test knows about the path ([`Removed`]): removed from the
//! archive at least a grace period ago (expected), removed more recently
//! (deleted too early), or never removed (the index lists a file the
//! mirror does not have yet).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What went wrong in a client run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// apt "Hash Sum mismatch", dnf "checksum doesn't match".
    HashSum,
    /// apt "File has unexpected size", or a size mismatch.
    UnexpectedSize,
    /// Clearsign / OpenPGP signature errors (InRelease, repomd.xml.asc).
    Signature,
    /// 404 for a file the archive never removed: an index listed a file
    /// the mirror did not serve.
    NotFoundListed,
    /// 404 for a file the archive removed less than the grace period before
    /// the client run ended: deleted too early.
    NotFoundEarly,
    /// 404 for a file the archive removed at least the grace period ago:
    /// expected for a client holding old indices, counted separately.
    NotFoundAfterGrace,
    /// Any other failure.
    Other,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::HashSum,
        Category::UnexpectedSize,
        Category::Signature,
        Category::NotFoundListed,
        Category::NotFoundEarly,
        Category::NotFoundAfterGrace,
        Category::Other,
    ];

    /// A consistency error: what a correct mirror never shows a client.
    pub fn is_inconsistency(self) -> bool {
        !matches!(self, Category::NotFoundAfterGrace | Category::Other)
    }

    pub fn label(self) -> &'static str {
        match self {
            Category::HashSum => "Hash Sum mismatch",
            Category::UnexpectedSize => "unexpected size",
            Category::Signature => "clearsign/signature",
            Category::NotFoundListed => "404 listed file missing",
            Category::NotFoundEarly => "404 deleted before grace",
            Category::NotFoundAfterGrace => "404 deleted after grace",
            Category::Other => "other",
        }
    }
}

/// Paths the test removed from the archive, and when.
#[derive(Default)]
pub struct Removed {
    map: Mutex<HashMap<String, Instant>>,
}

impl Removed {
    /// Records what changed between two listings of the archive taken at
    /// `now`: paths that went away are removed now, paths that are back
    /// are not removed any more.
    pub fn note(&self, before: &BTreeSet<String>, after: &BTreeSet<String>, now: Instant) {
        let mut m = self.map.lock().unwrap();
        for p in before.difference(after) {
            m.entry(p.clone()).or_insert(now);
        }
        for p in after {
            m.remove(p);
        }
    }

    /// When `path` was removed, if it was.
    pub fn removed_at(&self, path: &str) -> Option<Instant> {
        self.map.lock().unwrap().get(path).copied()
    }
}

/// Every regular file's path under `root`, relative, skipping `skip` prefixes.
pub fn list_files(root: &Path, skip: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => {
                    out.insert(rel);
                }
                Err(_) => {}
            }
        }
    }
    out
}

/// One client command's result.
#[derive(Debug, Clone)]
pub struct ClientRun {
    pub what: String,
    pub code: Option<i32>,
    pub output: String,
    pub ended: Instant,
    /// Problems found, one per (category, URL or line).
    pub problems: Vec<(Category, String)>,
}

impl ClientRun {
    pub fn categories(&self) -> BTreeSet<Category> {
        self.problems.iter().map(|(c, _)| *c).collect()
    }
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Which client printed the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Apt,
    Dnf,
}

/// The path part of the first `http://host/...` URL in `line`.
fn url_path(line: &str) -> Option<String> {
    let i = line.find("http://")?;
    let rest = &line[i + "http://".len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ')' || c == ',')
        .unwrap_or(rest.len());
    let url = &rest[..end];
    let slash = url.find('/')?;
    Some(url[slash + 1..].to_string())
}

/// Sorts a client run's output into problems. `removed` and `grace` split
/// 404s; `ended` is when the run ended. A run that failed (non-zero exit,
/// or apt `E:`/`W:` lines) without any recognised problem gets one
/// [`Category::Other`] with its error lines.
pub fn classify(
    tool: Tool,
    output: &str,
    code: Option<i32>,
    removed: &Removed,
    grace: Duration,
    ended: Instant,
) -> Vec<(Category, String)> {
    let mut found: BTreeSet<(Category, String)> = BTreeSet::new();
    let mut error_lines = Vec::new();
    for line in output.lines() {
        let t = line.trim();
        if tool == Tool::Apt && !(t.starts_with("E:") || t.starts_with("W:")) {
            continue;
        }
        let l = t.to_ascii_lowercase();
        let summary = l.contains("some index files failed to download")
            || l.contains("unable to fetch some archives")
            || (l.starts_with("error: failed to download metadata for repo") && !l.contains("gpg"))
            || l.starts_with("error downloading packages")
            || l.contains("no more mirrors to try")
            || l.contains("cannot download, all mirrors were already tried");
        if (tool == Tool::Apt || l.starts_with("error") || l.contains("[failed]")) && !summary {
            error_lines.push(t.to_string());
        }
        let key = url_path(t).unwrap_or_else(|| t.to_string());
        let cat = if l.contains("clearsigned file")
            || l.contains("gpg error")
            || l.contains("signatures were invalid")
            || l.contains("is not signed")
            || l.contains("no_pubkey")
            || l.contains("badsig")
            || l.contains("into data and signature failed")
            || l.contains("gpg signature")
            || l.contains("bad gpg")
            || l.contains("gpg verification")
        {
            Some(Category::Signature)
        } else if l.contains("hash sum mismatch")
            || l.contains("checksum doesn't match")
            || l.contains("checksum mismatch")
        {
            Some(Category::HashSum)
        } else if l.contains("unexpected size")
            || l.contains("size mismatch")
            || l.contains("size doesn't match")
        {
            Some(Category::UnexpectedSize)
        } else if l.contains("404  not found") || l.contains("status code: 404") {
            let path = url_path(t).unwrap_or_default();
            Some(match removed.removed_at(&path) {
                None => Category::NotFoundListed,
                Some(at) if ended.saturating_duration_since(at) < grace => Category::NotFoundEarly,
                Some(_) => Category::NotFoundAfterGrace,
            })
        } else {
            None
        };
        if let Some(c) = cat {
            found.insert((c, key));
        }
    }
    let failed = code != Some(0) || !error_lines.is_empty();
    if found.is_empty() && failed {
        let mut lines = error_lines;
        if lines.is_empty() {
            let all: Vec<&str> = output.lines().collect();
            lines = all[all.len().saturating_sub(3)..]
                .iter()
                .map(|s| s.to_string())
                .collect();
        }
        found.insert((
            Category::Other,
            format!("exit {code:?}: {}", lines.join(" | ")),
        ));
    }
    found.into_iter().collect()
}

/// Runs `cmd` with stdout and stderr merged into `log`, killing it (by
/// PID) after `limit`. Returns (exit code, output).
pub fn run_timed(mut cmd: Command, log: &Path, limit: Duration) -> (Option<i32>, String) {
    let f = std::fs::File::create(log).expect("client log");
    cmd.stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .stdin(Stdio::null());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (None, format!("cannot start {cmd:?}: {e}")),
    };
    let t = Instant::now();
    let code = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s.code(),
            Ok(None) if t.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let mut out = std::fs::read_to_string(log).unwrap_or_default();
    if code.is_none() {
        out.push_str(&format!("\n(killed after {limit:?})\n"));
    }
    (code, out)
}

/// A package-manager client of one repository.
pub trait RepoClient: Send {
    /// Refreshes the metadata (`apt-get update`, `dnf makecache`).
    fn update(&mut self) -> (Option<i32>, String);
    /// Package names in the metadata the last update fetched.
    fn package_names(&mut self) -> Vec<String>;
    /// Downloads these packages into a scratch dir (then emptied).
    fn download(&mut self, names: &[String]) -> (Option<i32>, String);
    fn tool(&self) -> Tool;
}

const CLIENT_LIMIT: Duration = Duration::from_secs(180);

/// `apt-get` with every directory in `dir`.
pub struct AptClient {
    pub dir: PathBuf,
    conf: PathBuf,
    opts: Vec<String>,
}

impl AptClient {
    /// A client of the archive at `base_url` (suite `suite`, component
    /// `main`, amd64) that trusts only `keyring` (binary OpenPGP key).
    pub fn new(dir: &Path, base_url: &str, suite: &str, keyring: &Path) -> AptClient {
        for d in [
            "etc/apt.conf.d",
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "download",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::write(dir.join("state/status"), "").unwrap();
        std::fs::write(
            dir.join("etc/sources.list"),
            format!(
                "deb [signed-by={}] {base_url} {suite} main\n",
                keyring.display()
            ),
        )
        .unwrap();
        let d = dir.display();
        let conf = dir.join("apt.conf");
        // Read instead of /etc/apt/apt.conf{,.d}: nothing from the machine.
        std::fs::write(
            &conf,
            format!(
                "Dir::Etc \"{d}/etc/\";\nDir::Etc::main \"{d}/etc/apt.conf\";\n\
                 Dir::Etc::Parts \"{d}/etc/apt.conf.d\";\nDir::State \"{d}/state/\";\n\
                 Dir::State::status \"{d}/state/status\";\nDir::Cache \"{d}/cache/\";\n\
                 Dir::Log \"{d}/log/\";\nAPT::Sandbox::User \"root\";\n\
                 Acquire::Languages \"none\";\nAcquire::Retries \"0\";\n\
                 Acquire::http::Proxy \"DIRECT\";\nAPT::Architecture \"amd64\";\n\
                 APT::Architectures {{ \"amd64\"; }};\n"
            ),
        )
        .unwrap();
        std::fs::write(dir.join("etc/apt.conf"), "").unwrap();
        let opts = vec![
            format!("Dir::Etc::sourcelist={d}/etc/sources.list"),
            "Dir::Etc::sourceparts=-".to_string(),
            format!("Dir::State={d}/state/"),
            format!("Dir::State::status={d}/state/status"),
            format!("Dir::Cache={d}/cache/"),
            format!("Dir::Etc::trusted={}", keyring.display()),
            format!("Dir::Etc::trustedparts={d}/etc/trusted.gpg.d"),
            "APT::Get::List-Cleanup=0".to_string(),
        ];
        AptClient {
            dir: dir.to_path_buf(),
            conf,
            opts,
        }
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("APT_CONFIG", &self.conf)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        for o in &self.opts {
            c.arg("-o").arg(o);
        }
        c
    }
}

impl RepoClient for AptClient {
    fn update(&mut self) -> (Option<i32>, String) {
        let mut c = self.cmd("apt-get");
        c.arg("update");
        run_timed(c, &self.dir.join("log/update.out"), CLIENT_LIMIT)
    }

    fn package_names(&mut self) -> Vec<String> {
        let mut c = self.cmd("apt-cache");
        c.arg("pkgnames");
        let (_, out) = run_timed(c, &self.dir.join("log/pkgnames.out"), CLIENT_LIMIT);
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.contains(' ') && !l.contains(':'))
            .collect();
        v.sort();
        v
    }

    fn download(&mut self, names: &[String]) -> (Option<i32>, String) {
        let dl = self.dir.join("download");
        let _ = std::fs::remove_dir_all(&dl);
        std::fs::create_dir_all(&dl).unwrap();
        let mut c = self.cmd("apt-get");
        c.current_dir(&dl).arg("download").args(names);
        let r = run_timed(c, &self.dir.join("log/download.out"), CLIENT_LIMIT);
        let _ = std::fs::remove_dir_all(&dl);
        r
    }

    fn tool(&self) -> Tool {
        Tool::Apt
    }
}

/// `dnf` with its own installroot, config, repos dir and cache.
pub struct DnfClient {
    pub dir: PathBuf,
    conf: PathBuf,
    repo_id: String,
}

impl DnfClient {
    /// A client of the rpm repository at `base_url` whose `repomd.xml` must
    /// carry a valid signature by `key_asc` (armoured public key).
    pub fn new(dir: &Path, base_url: &str, key_asc: &Path) -> DnfClient {
        for d in [
            "root", "repos", "cache", "log", "persist", "plugins", "download",
        ] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let repo_id = "soak".to_string();
        let d = dir.display();
        let conf = dir.join("dnf.conf");
        std::fs::write(
            &conf,
            format!(
                "[main]\ngpgcheck=0\nplugins=1\npluginconfpath={d}/plugins\n\
                 reposdir={d}/repos\ncachedir={d}/cache\nlogdir={d}/log\n\
                 persistdir={d}/persist\nkeepcache=0\nretries=1\n\
                 install_weak_deps=0\nproxy=\n"
            ),
        )
        .unwrap();
        // metadata_expire=-1: `download` uses what `makecache --refresh`
        // fetched, as apt-get download uses the lists of the last update.
        std::fs::write(
            dir.join(format!("repos/{repo_id}.repo")),
            format!(
                "[{repo_id}]\nname=Shoal soak\nbaseurl={base_url}/\nenabled=1\n\
                 gpgcheck=0\nrepo_gpgcheck=1\ngpgkey=file://{}\nmetadata_expire=-1\n\
                 skip_if_unavailable=0\n",
                key_asc.display()
            ),
        )
        .unwrap();
        DnfClient {
            dir: dir.to_path_buf(),
            conf,
            repo_id,
        }
    }

    fn cmd(&self) -> Command {
        let d = self.dir.display();
        let mut c = Command::new("dnf");
        c.env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env("LC_ALL", "C.UTF-8")
            .arg("--config")
            .arg(&self.conf)
            .arg(format!("--installroot={d}/root"))
            .arg(format!("--setopt=reposdir={d}/repos"))
            .arg(format!("--setopt=cachedir={d}/cache"))
            .arg(format!("--repo={}", self.repo_id))
            .args(["--releasever=12", "--assumeyes"]);
        c
    }
}

impl RepoClient for DnfClient {
    fn update(&mut self) -> (Option<i32>, String) {
        let mut c = self.cmd();
        c.args(["makecache", "--refresh"]);
        run_timed(c, &self.dir.join("log/makecache.out"), CLIENT_LIMIT)
    }

    fn package_names(&mut self) -> Vec<String> {
        let mut c = self.cmd();
        c.args(["-C", "-q", "repoquery", "--qf", "%{name}"]);
        let (_, out) = run_timed(c, &self.dir.join("log/repoquery.out"), CLIENT_LIMIT);
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.contains(' ') && !l.contains(':'))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn download(&mut self, names: &[String]) -> (Option<i32>, String) {
        let dl = self.dir.join("download");
        let _ = std::fs::remove_dir_all(&dl);
        std::fs::create_dir_all(&dl).unwrap();
        let mut c = self.cmd();
        c.arg("download")
            .arg(format!("--destdir={}", dl.display()))
            .args(names);
        let r = run_timed(c, &self.dir.join("log/download.out"), CLIENT_LIMIT);
        let _ = std::fs::remove_dir_all(&dl);
        r
    }

    fn tool(&self) -> Tool {
        Tool::Dnf
    }
}

impl Drop for DnfClient {
    /// librepo verifies repomd.xml.asc with a keyring in the cache, and
    /// GnuPG starts an agent for it: kill that by PID.
    fn drop(&mut self) {
        if let Ok(rd) = std::fs::read_dir(self.dir.join("cache")) {
            for e in rd.flatten() {
                let pubring = e.path().join("pubring");
                if pubring.is_dir() {
                    crate::gpg::kill_gpg_agent(&pubring);
                }
            }
        }
    }
}

/// Counts over many client runs: runs, failed runs, runs showing each
/// category, and a few example lines per category.
#[derive(Default, Clone, Debug)]
pub struct Tally {
    pub runs: u64,
    pub failed_runs: u64,
    pub by_category: BTreeMap<Category, u64>,
    pub samples: BTreeMap<Category, Vec<String>>,
}

impl Tally {
    pub fn add(&mut self, run: &ClientRun) {
        self.runs += 1;
        if !run.ok() {
            self.failed_runs += 1;
        }
        for c in run.categories() {
            *self.by_category.entry(c).or_default() += 1;
        }
        for (c, k) in &run.problems {
            let s = self.samples.entry(*c).or_default();
            if s.len() < 5 {
                s.push(format!("{}: {k}", run.what));
            }
        }
    }

    /// Runs that showed category `c`.
    pub fn count(&self, c: Category) -> u64 {
        self.by_category.get(&c).copied().unwrap_or(0)
    }

    /// Runs showing a consistency error, summed over categories.
    pub fn inconsistencies(&self) -> u64 {
        Category::ALL
            .iter()
            .filter(|c| c.is_inconsistency())
            .map(|c| self.count(*c))
            .sum()
    }
}

/// Runs one update or download with `client` and classifies it.
pub fn observe(
    client: &mut dyn RepoClient,
    what: &str,
    names: Option<&[String]>,
    removed: &Removed,
    grace: Duration,
) -> ClientRun {
    let (code, output) = match names {
        None => client.update(),
        Some(n) => client.download(n),
    };
    let ended = Instant::now();
    let problems = classify(client.tool(), &output, code, removed, grace, ended);
    ClientRun {
        what: what.to_string(),
        code,
        output,
        ended,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats(tool: Tool, out: &str, code: i32, removed: &Removed) -> Vec<Category> {
        classify(
            tool,
            out,
            Some(code),
            removed,
            Duration::from_secs(5),
            Instant::now(),
        )
        .into_iter()
        .map(|(c, _)| c)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
    }

    #[test]
    fn apt_outputs() {
        let r = Removed::default();
        let size = "Err:2 http://127.1.2.1:3 stable/main amd64 Packages\n  File has unexpected size (4197 != 4244). Mirror sync in progress? [IP: 127.1.2.1 3]\n\
                    E: Failed to fetch http://127.1.2.1:3/dists/stable/main/binary-amd64/Packages.gz  File has unexpected size (4197 != 4244). Mirror sync in progress? [IP: 127.1.2.1 3]\n\
                    E: Some index files failed to download. They have been ignored, or old ones used instead.\n";
        assert_eq!(cats(Tool::Apt, size, 100, &r), [Category::UnexpectedSize]);
        let split = "W: An error occurred during the signature verification. GPG error: http://127.0.0.5:18080 stable InRelease: Splitting up /x/lists/partial/y_InRelease into data and signature failed\n\
                     W: Failed to fetch http://127.0.0.5:18080/dists/stable/InRelease  Splitting up /x into data and signature failed\n";
        assert_eq!(cats(Tool::Apt, split, 0, &r), [Category::Signature]);
        let hash = "E: Failed to fetch http://127.0.0.5:1/dists/stable/main/binary-amd64/Packages.gz  Hash Sum mismatch\n";
        assert_eq!(cats(Tool::Apt, hash, 100, &r), [Category::HashSum]);
        let nf = "E: Failed to fetch http://127.0.0.5:1/pool/main/p/p1/p1_1.2_all.deb  404  Not Found [IP: 127.0.0.5 1]\n";
        assert_eq!(cats(Tool::Apt, nf, 100, &r), [Category::NotFoundListed]);
        let t0 = Instant::now() - Duration::from_secs(60);
        let before: BTreeSet<String> = ["pool/main/p/p1/p1_1.2_all.deb".to_string()].into();
        r.note(&before, &BTreeSet::new(), t0);
        assert_eq!(cats(Tool::Apt, nf, 100, &r), [Category::NotFoundAfterGrace]);
        let r2 = Removed::default();
        r2.note(&before, &BTreeSet::new(), Instant::now());
        assert_eq!(cats(Tool::Apt, nf, 100, &r2), [Category::NotFoundEarly]);
        // Progress lines are not errors; a clean run has no problems.
        let ok = "Get:1 http://127.0.0.5:1 stable InRelease [4040 B]\nFetched 4040 B in 0s\nReading package lists...\n";
        assert!(cats(Tool::Apt, ok, 0, &r).is_empty());
        let other = "E: Could not open lock file /x/lock - open (13: Permission denied)\n";
        assert_eq!(cats(Tool::Apt, other, 100, &r), [Category::Other]);
    }

    #[test]
    fn dnf_outputs() {
        let r = Removed::default();
        let sum = "Errors during downloading metadata for repository 'soak':\n  - Downloading successful, but checksum doesn't match. Calculated: 8d(sha256)  Expected: 2f(sha256)\n\
                   Error: Failed to download metadata for repo 'soak': Yum repo downloading error: Downloading error(s): repodata/2f-primary.xml.gz - Cannot download, all mirrors were already tried without success\n";
        assert_eq!(cats(Tool::Dnf, sum, 1, &r), [Category::HashSum]);
        let bad = "Error: Failed to download metadata for repo 'soak': repomd.xml GPG signature verification error: Bad GPG signature\n";
        assert_eq!(cats(Tool::Dnf, bad, 1, &r), [Category::Signature]);
        let nf = "[MIRROR] foo-1.0-1.noarch.rpm: Status code: 404 for http://127.0.0.5:18081/Packages/foo-1.0-1.noarch.rpm (IP: 127.0.0.5)\n\
                  [FAILED] foo-1.0-1.noarch.rpm: No more mirrors to try - All mirrors were already tried without success\n";
        assert_eq!(cats(Tool::Dnf, nf, 1, &r), [Category::NotFoundListed]);
        let ok = "soak   3.0 kB/s | 228  B     00:00\nImporting GPG key 0x41ADEFCC:\nMetadata cache created.\n";
        assert!(cats(Tool::Dnf, ok, 0, &r).is_empty());
        assert_eq!(
            cats(Tool::Dnf, "Error: something else\n", 1, &r),
            [Category::Other]
        );
    }
}
