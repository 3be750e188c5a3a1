//! The SSH side of `shoal bootstrap`: destinations as given on the command
//! line, the session (host keys checked strictly against known_hosts,
//! `sudo -n` when not root), running shell scripts on the host, and what a
//! failed connection means in words.

use anyhow::{anyhow, Result};
use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An SSH destination as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl Dest {
    /// Parses `[user@]host` or `ssh://[user@]host[:port]`.
    pub fn parse(s: &str) -> Result<Dest> {
        let bad = || {
            anyhow!(
                "'{s}' is not an SSH destination: write [user@]host or ssh://[user@]host[:port]"
            )
        };
        let (uri, rest) = match s.strip_prefix("ssh://") {
            Some(r) => (true, r.trim_end_matches('/')),
            None => (false, s),
        };
        let (user, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) if !u.is_empty() => (Some(u.to_string()), h),
            Some(_) => return Err(bad()),
            None => (None, rest),
        };
        let (host, port) = if uri {
            if let Some(h) = hostport.strip_prefix('[') {
                let (h, after) = h.split_once(']').ok_or_else(bad)?;
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
                    None if after.is_empty() => None,
                    None => return Err(bad()),
                };
                (h.to_string(), port)
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| bad())?)),
                    None => (hostport.to_string(), None),
                }
            }
        } else {
            (hostport.to_string(), None)
        };
        if host.is_empty() || host.contains(char::is_whitespace) || host.starts_with('-') {
            return Err(bad());
        }
        Ok(Dest { user, host, port })
    }

    /// The destination for `ssh`, with `default_user` when none was given.
    pub fn to_ssh(&self, default_user: Option<&str>) -> String {
        let user = self.user.as_deref().or(default_user);
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match (user, self.port) {
            (u, Some(p)) => format!(
                "ssh://{}{host}:{p}",
                u.map(|u| format!("{u}@")).unwrap_or_default()
            ),
            (Some(u), None) => format!("{u}@{}", self.host),
            (None, None) => self.host.clone(),
        }
    }
}

/// An SSH session to one host; every command runs through `sudo -n` when
/// the login is not root.
pub struct Remote {
    pub session: Session,
    sudo: bool,
}

/// What a remote command printed, and how it exited.
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn said(&self) -> String {
        let s = format!("{}\n{}", self.stderr.trim(), self.stdout.trim());
        s.trim().to_string()
    }
}

impl Remote {
    fn command(&self, script: &str, args: &[&str]) -> openssh::Command<'_> {
        let mut c = if self.sudo {
            let mut c = self.session.command("sudo");
            c.arg("-n").arg("sh");
            c
        } else {
            self.session.command("sh")
        };
        c.arg("-c").arg(script).arg("shoal").args(args);
        c
    }

    /// Runs a POSIX sh script with positional arguments.
    pub async fn sh(&self, script: &str, args: &[&str]) -> Result<Out, String> {
        let out = self.command(script, args).output().await.map_err(|e| {
            format!(
                "the SSH connection failed while running a command: {}",
                error_chain(&e)
            )
        })?;
        Ok(Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Like [`Remote::sh`], but a non-zero exit is an error saying `what` failed.
    pub async fn sh_ok(&self, what: &str, script: &str, args: &[&str]) -> Result<String, String> {
        let out = self.sh(script, args).await?;
        if !out.ok() {
            return Err(format!(
                "{what} failed (exit {}): {}",
                out.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "by signal".into()),
                out.said()
            ));
        }
        Ok(out.stdout)
    }

    /// Runs a script with `data` on its stdin; `progress` sees bytes sent.
    pub async fn sh_stdin(
        &self,
        script: &str,
        args: &[&str],
        mut data: impl tokio::io::AsyncRead + Unpin,
        mut progress: impl FnMut(u64),
    ) -> Result<Out, String> {
        let conn = |e: openssh::Error| format!("the SSH connection failed: {}", error_chain(&e));
        let mut child = self
            .command(script, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .await
            .map_err(conn)?;
        let mut stdin = child
            .stdin()
            .take()
            .ok_or("no stdin for the remote command")?;
        let mut buf = vec![0u8; 256 << 10];
        let mut sent = 0u64;
        let mut write_err = None;
        loop {
            let n = data
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading the local file: {e}"))?;
            if n == 0 {
                break;
            }
            if let Err(e) = stdin.write_all(&buf[..n]).await {
                write_err = Some(e);
                break;
            }
            sent += n as u64;
            progress(sent);
        }
        if write_err.is_none() {
            if let Err(e) = stdin.shutdown().await {
                write_err = Some(e);
            }
        }
        drop(stdin);
        let out = child.wait_with_output().await.map_err(conn)?;
        let out = Out {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if let Some(e) = write_err {
            if out.ok() {
                return Err(format!("sending data failed: {e}"));
            }
        }
        Ok(out)
    }
}

/// Settings of the SSH connection, the same for every host of a run.
pub struct SshOptions {
    /// `--accept-new-host-key`: trust a key on first use.
    pub accept_new: bool,
    pub connect_timeout: Duration,
    pub ssh_config: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    /// Where the control sockets of the multiplexed sessions live.
    pub control_dir: PathBuf,
}

/// Opens an SSH session to `dest` with host keys checked strictly (or
/// `accept-new`), finds out who it logged in as and whether `sudo -n`
/// works. Returns the remote and the line that ends the connect step.
pub async fn connect(opts: &SshOptions, dest: &str) -> Result<(Remote, String), String> {
    let session = open_session(opts, dest).await?;
    let mut remote = Remote {
        session,
        sudo: false,
    };
    let how = become_root(&mut remote).await?;
    let keys = if opts.accept_new {
        "host key verified or newly trusted (--accept-new-host-key)"
    } else {
        "host key verified against known_hosts"
    };
    Ok((remote, format!("{dest} ({how}; {keys})")))
}

/// The multiplexed session through the system `ssh`; a failure is
/// explained by [`explain_ssh_failure`].
async fn open_session(opts: &SshOptions, dest: &str) -> Result<Session, String> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(if opts.accept_new {
        KnownHosts::Add
    } else {
        KnownHosts::Strict
    });
    b.connect_timeout(opts.connect_timeout);
    b.server_alive_interval(Duration::from_secs(15));
    b.control_directory(&opts.control_dir);
    b.control_persist(ControlPersist::IdleFor(
        std::num::NonZeroUsize::new(300).expect("nonzero"),
    ));
    if let Some(f) = &opts.ssh_config {
        b.config_file(f);
    }
    if let Some(k) = &opts.identity {
        b.keyfile(k);
    }
    b.connect_mux(dest).await.map_err(|e| {
        let said = match &e {
            openssh::Error::Connect(io) | openssh::Error::Master(io) => io.to_string(),
            other => error_chain(other),
        };
        explain_ssh_failure(dest, &said)
    })
}

/// Root as logged in, or through passwordless `sudo -n`; says which.
async fn become_root(remote: &mut Remote) -> Result<String, String> {
    let who = remote.sh_ok("`id`", "id -u; id -un", &[]).await?;
    let mut it = who.lines();
    let uid = it.next().unwrap_or("").trim().to_string();
    let name = it.next().unwrap_or("?").trim().to_string();
    if uid == "0" {
        return Ok(format!("logged in as {name}"));
    }
    let o = remote.sh("sudo -n true", &[]).await?;
    if !o.ok() {
        return Err(format!(
            "logged in as {name} (not root), and `sudo -n` does not work ({}): \
             log in as root (root@host) or give {name} passwordless sudo",
            o.said()
        ));
    }
    remote.sudo = true;
    Ok(format!("logged in as {name}, using sudo"))
}

/// Turns what `ssh` said when connecting into an explanation with advice.
pub fn explain_ssh_failure(dest: &str, ssh_said: &str) -> String {
    let text = ssh_said.replace('\r', "");
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('@'))
        .collect();
    let quote = |lines: &[&str]| -> String {
        let tail: Vec<&str> = lines.iter().rev().take(2).rev().copied().collect();
        tail.join(" / ")
    };
    let host = dest
        .trim_start_matches("ssh://")
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(dest.trim_start_matches("ssh://"));
    let has = |s: &str| text.contains(s);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") || (has("Host key for") && has("has changed"))
    {
        format!(
            "host key mismatch: {host} presented a key that differs from the one in known_hosts \
             (ssh: \"{}\"). This is either a man-in-the-middle attack or a reinstalled host: verify \
             the host's new fingerprint out of band, then remove the old entry with \
             `ssh-keygen -R {host}` and run again. shoal never turns host key checking off.",
            quote(&said)
        )
    } else if has("host key is known for") || (has("Host key verification failed") && has("No ")) {
        format!(
            "unknown host key: {host} is not in known_hosts and host keys are checked strictly \
             (ssh: \"{}\"). Verify its fingerprint and add it to known_hosts (for example by \
             connecting once with ssh), or pass --accept-new-host-key to trust its key on first use.",
            quote(&said)
        )
    } else if has("Host key verification failed") {
        format!(
            "host key verification failed for {host} (ssh: \"{}\"); check known_hosts and the \
             host's key. shoal never turns host key checking off.",
            quote(&said)
        )
    } else if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "authentication failed for {dest} (ssh: \"{}\"): make sure the key in your SSH agent \
             or given with --identity is in the user's authorized_keys on the host, and that the \
             user name is right (user@host or --user).",
            quote(&said)
        )
    } else if has("Could not resolve hostname") {
        format!(
            "host unreachable: the name {host} does not resolve (ssh: \"{}\"); check the host \
             name or use its address.",
            quote(&said)
        )
    } else if has("Connection refused")
        || has("No route to host")
        || has("Network is unreachable")
        || has("timed out")
        || has("Connection closed")
        || has("Connection reset")
    {
        format!(
            "host unreachable: cannot open an SSH connection to {host} (ssh: \"{}\"); check the \
             address and port, that sshd runs there, and any firewall between.",
            quote(&said)
        )
    } else if said.is_empty() {
        format!("ssh could not connect to {dest} and said nothing; try `ssh -v {dest}` by hand")
    } else {
        format!("ssh could not connect to {dest}: {}", said.join(" / "))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(&format!(": {x}"));
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        let d = Dest::parse("root@mirror3.example.org").unwrap();
        assert_eq!(
            d,
            Dest {
                user: Some("root".into()),
                host: "mirror3.example.org".into(),
                port: None
            }
        );
        assert_eq!(d.to_ssh(Some("admin")), "root@mirror3.example.org");
        let d = Dest::parse("mirror3").unwrap();
        assert_eq!(d.to_ssh(None), "mirror3");
        assert_eq!(d.to_ssh(Some("admin")), "admin@mirror3");
        let d = Dest::parse("ssh://ops@10.0.0.7:2222").unwrap();
        assert_eq!(d.port, Some(2222));
        assert_eq!(d.to_ssh(None), "ssh://ops@10.0.0.7:2222");
        let d = Dest::parse("ssh://[fd00::7]:22").unwrap();
        assert_eq!(d.host, "fd00::7");
        assert_eq!(d.to_ssh(Some("root")), "ssh://root@[fd00::7]:22");
        assert!(Dest::parse("@host").is_err());
        assert!(Dest::parse("-oProxyCommand=x").is_err());
        assert!(Dest::parse("ssh://h:port").is_err());
    }

    #[test]
    fn ssh_failures_are_explained() {
        let mismatch = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n\
            @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\r\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n\
            Host key for 10.0.0.2 has changed and you have requested strict checking.\r\n\
            Host key verification failed.";
        let e = explain_ssh_failure("root@10.0.0.2", mismatch);
        assert!(e.starts_with("host key mismatch: 10.0.0.2"), "{e}");
        assert!(e.contains("ssh-keygen -R 10.0.0.2"), "{e}");
        let e = explain_ssh_failure(
            "root@10.0.0.3",
            "No ED25519 host key is known for 10.0.0.3 and you have requested strict checking.\r\nHost key verification failed.",
        );
        assert!(e.starts_with("unknown host key: 10.0.0.3"), "{e}");
        assert!(e.contains("--accept-new-host-key"), "{e}");
        let e = explain_ssh_failure("root@h", "root@h: Permission denied (publickey).");
        assert!(e.starts_with("authentication failed for root@h"), "{e}");
        let e = explain_ssh_failure(
            "h",
            "ssh: connect to host 10.0.0.9 port 22: No route to host",
        );
        assert!(e.starts_with("host unreachable"), "{e}");
        let e = explain_ssh_failure(
            "h",
            "ssh: Could not resolve hostname h: Name or service not known",
        );
        assert!(e.contains("does not resolve"), "{e}");
    }
}
