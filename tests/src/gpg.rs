//! A throw-away OpenPGP signing key in its own GnuPG home, for signed test
//! archives (reprepro's `InRelease`/`Release.gpg`, `repomd.xml.asc`).
//!
//! GnuPG starts a `gpg-agent` for the home; dropping the key asks that agent
//! for its PID and kills it by PID. [`kill_gpg_agent`] does the same for
//! other homes (dnf's per-repository keyring starts one too).

use crate::repo::Reprepro;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A signing key pair in `home`, with its public key exported.
pub struct GpgKey {
    pub home: PathBuf,
    pub fingerprint: String,
    /// The public key, binary (apt's `signed-by`, `Dir::Etc::trusted`).
    pub public_gpg: PathBuf,
    /// The public key, ASCII-armoured (dnf's `gpgkey=file://…`).
    pub public_asc: PathBuf,
}

fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl GpgKey {
    /// Generates an RSA signing key (no passphrase) in `dir/gnupg`.
    pub fn generate(dir: &Path, name: &str) -> GpgKey {
        use std::os::unix::fs::PermissionsExt;
        let home = dir.join("gnupg");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
        let params = dir.join("gnupg-keyparams");
        std::fs::write(
            &params,
            format!(
                "%no-protection\nKey-Type: RSA\nKey-Length: 2048\nKey-Usage: sign\n\
                 Name-Real: {name}\nName-Email: soak@example.invalid\nExpire-Date: 0\n%commit\n"
            ),
        )
        .unwrap();
        let mut key = GpgKey {
            home,
            fingerprint: String::new(),
            public_gpg: dir.join("archive-key.gpg"),
            public_asc: dir.join("archive-key.asc"),
        };
        run_ok(key.gpg().arg("--gen-key").arg(&params));
        let list = run_ok(key.gpg().args(["--with-colons", "--list-secret-keys"]));
        key.fingerprint = String::from_utf8_lossy(&list)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .expect("the new key's fingerprint");
        let bin = run_ok(key.gpg().arg("--export").arg(&key.fingerprint));
        std::fs::write(&key.public_gpg, bin).unwrap();
        let asc = run_ok(
            key.gpg()
                .args(["--armor", "--export"])
                .arg(&key.fingerprint),
        );
        std::fs::write(&key.public_asc, asc).unwrap();
        key
    }

    /// `gpg` with this home, batch mode, quiet.
    pub fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir")
            .arg(&self.home)
            .args(["--batch", "--quiet", "--yes"]);
        c
    }

    /// Writes an ASCII-armoured detached signature of `file` to `out`
    /// (written to a temp name and renamed, like a careful publisher).
    pub fn detach_sign_armor(&self, file: &Path, out: &Path) {
        let tmp = out.with_extension("asc.tmp");
        run_ok(
            self.gpg()
                .args(["--detach-sign", "--armor", "--local-user"])
                .arg(&self.fingerprint)
                .arg("--output")
                .arg(&tmp)
                .arg(file),
        );
        std::fs::rename(&tmp, out).unwrap();
    }

    /// Makes reprepro sign `repo`'s Release files with this key
    /// (`SignWith` plus `gnupghome` in conf/options, so nothing depends on
    /// the environment).
    pub fn sign_reprepro(&self, repo: &Reprepro) {
        let dist = repo.base.join("conf/distributions");
        let text = std::fs::read_to_string(&dist).unwrap();
        let text = format!("{}\nSignWith: {}\n", text.trim_end(), self.fingerprint);
        std::fs::write(&dist, text).unwrap();
        let opts = repo.base.join("conf/options");
        let text = std::fs::read_to_string(&opts).unwrap_or_default();
        std::fs::write(
            &opts,
            format!("{}\ngnupghome {}\n", text.trim_end(), self.home.display()),
        )
        .unwrap();
    }
}

impl Drop for GpgKey {
    fn drop(&mut self) {
        kill_gpg_agent(&self.home);
    }
}

/// Kills the gpg-agent serving GnuPG home `home`, if one runs, by its PID
/// (asked from the agent itself; never starts one).
pub fn kill_gpg_agent(home: &Path) {
    let Ok(out) = Command::new("gpg-connect-agent")
        .arg("--no-autostart")
        .arg("--homedir")
        .arg(home)
        .args(["getinfo pid", "/bye"])
        .output()
    else {
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for pid in text
        .lines()
        .filter_map(|l| l.strip_prefix("D "))
        .filter_map(|p| p.trim().parse::<i32>().ok())
    {
        if pid > 1 {
            // SAFETY: plain kill(2) of the agent GnuPG started for our home.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
}
