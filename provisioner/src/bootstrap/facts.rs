//! What a host is: the facts one shell script gathers over SSH (OS,
//! architecture, systemd, tools, free space, a running agent, the listening
//! TCP sockets) and the parsers of its output.

use super::plan::Plan;
use super::ssh::Remote;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

/// Facts about the host, from [`CHECK_SCRIPT`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Facts {
    pub os: String,
    pub arch: String,
    pub systemd: bool,
    pub have_ssd: bool,
    pub have_sha256sum: bool,
    pub have_ss: bool,
    pub repo_free: (String, u64),
    pub bin_free: (String, u64),
    pub daemon_pid: Option<u32>,
    pub systemd_pid: Option<u32>,
    pub listeners: Vec<Listener>,
    /// The listeners carry the owning processes (from `ss -p`).
    pub listeners_have_pids: bool,
}

/// A listening TCP socket on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `None` for a wildcard address.
    pub addr: Option<IpAddr>,
    pub port: u16,
    /// `(name, pid)` of the processes holding it.
    pub procs: Vec<(String, u32)>,
}

/// Gathers [`Facts`]. Arguments: repo dir, install dir, pidfile, unit name.
const CHECK_SCRIPT: &str = r#"
repo="$1"; bindir="$2"; pidfile="$3"; unit="$4"
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
if [ -d /run/systemd/system ]; then echo systemd=yes; else echo systemd=no; fi
for t in start-stop-daemon sha256sum ss; do
  if command -v "$t" >/dev/null 2>&1; then echo "have_$t=yes"; else echo "have_$t=no"; fi
done
free_at() {
  d="$1"
  while [ ! -e "$d" ]; do d=$(dirname -- "$d"); done
  echo "$2_path=$d"
  echo "$2_kib=$(df -Pk -- "$d" | awk 'NR==2 {print $4}')"
}
free_at "$repo" repo
free_at "$bindir" bin
if [ -f "$pidfile" ] && command -v start-stop-daemon >/dev/null 2>&1 &&
   start-stop-daemon --status --pidfile "$pidfile" --name shoal-agent; then
  echo "daemon_pid=$(cat -- "$pidfile")"
fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet "$unit" 2>/dev/null; then
  echo "systemd_pid=$(systemctl show -p MainPID --value "$unit")"
fi
echo "--- listeners"
if command -v ss >/dev/null 2>&1; then
  echo "ss"
  ss -Hltnp
else
  echo "proc"
  cat /proc/net/tcp /proc/net/tcp6 2>/dev/null
fi
"#;

/// Runs [`CHECK_SCRIPT`] on the host and parses what it prints.
pub async fn gather(remote: &Remote, plan: &Plan) -> Result<Facts, String> {
    let install_dir = plan.agent_bin.parent().unwrap_or(Path::new("/"));
    let pidfile = plan.pidfile();
    let out = remote
        .sh_ok(
            "the host check",
            CHECK_SCRIPT,
            &[
                &plan.repo_dir.to_string_lossy(),
                &install_dir.to_string_lossy(),
                &pidfile.to_string_lossy(),
                &plan.unit_name,
            ],
        )
        .await?;
    parse_facts(&out)
}

/// Parses the output of [`CHECK_SCRIPT`].
pub fn parse_facts(out: &str) -> Result<Facts, String> {
    let mut f = Facts::default();
    let mut lines = out.lines();
    let mut saw_os = false;
    for line in lines.by_ref() {
        if line == "--- listeners" {
            break;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim();
        match k {
            "os" => {
                f.os = v.to_string();
                saw_os = true;
            }
            "arch" => f.arch = v.to_string(),
            "systemd" => f.systemd = v == "yes",
            "have_start-stop-daemon" => f.have_ssd = v == "yes",
            "have_sha256sum" => f.have_sha256sum = v == "yes",
            "have_ss" => f.have_ss = v == "yes",
            "repo_path" => f.repo_free.0 = v.to_string(),
            "repo_kib" => f.repo_free.1 = v.parse::<u64>().unwrap_or(0) * 1024,
            "bin_path" => f.bin_free.0 = v.to_string(),
            "bin_kib" => f.bin_free.1 = v.parse::<u64>().unwrap_or(0) * 1024,
            "daemon_pid" => f.daemon_pid = v.parse().ok(),
            "systemd_pid" => f.systemd_pid = v.parse().ok().filter(|p| *p != 0),
            _ => {}
        }
    }
    if !saw_os {
        return Err(format!(
            "the host check printed nothing usable: {}",
            out.trim()
        ));
    }
    match lines.next() {
        Some("ss") => {
            f.listeners = lines.filter_map(parse_ss_line).collect();
            f.listeners_have_pids = true;
        }
        Some("proc") => f.listeners = lines.filter_map(parse_proc_net_tcp_line).collect(),
        _ => {}
    }
    Ok(f)
}

/// An address as `ss` prints it: `0.0.0.0`, `*`, `[::]`, `[::ffff:1.2.3.4]`, `127.0.0.53%lo`.
fn parse_ss_addr(s: &str) -> Option<(Option<IpAddr>, u16)> {
    let (h, p) = s.rsplit_once(':')?;
    let port = p.parse().ok()?;
    let h = h.trim_start_matches('[').trim_end_matches(']');
    let h = h.split('%').next().unwrap_or(h);
    if h == "*" {
        return Some((None, port));
    }
    let ip: IpAddr = h.parse().ok()?;
    Some((Some(ip).filter(|i| !i.is_unspecified()), port))
}

/// One line of `ss -Hltnp`.
pub fn parse_ss_line(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 5 || fields[0] != "LISTEN" {
        return None;
    }
    let (addr, port) = parse_ss_addr(fields[3])?;
    let rest = fields[5..].join(" ");
    let mut procs = Vec::new();
    let mut s = rest.as_str();
    while let Some(i) = s.find("(\"") {
        s = &s[i + 2..];
        let Some(end) = s.find('"') else { break };
        let name = s[..end].to_string();
        s = &s[end..];
        if let Some(j) = s.find("pid=") {
            let digits: String = s[j + 4..]
                .chars()
                .take_while(|c| c.is_ascii_digit())
                .collect();
            if let Ok(pid) = digits.parse() {
                procs.push((name, pid));
            }
        }
    }
    Some(Listener { addr, port, procs })
}

/// One line of /proc/net/tcp or /proc/net/tcp6 (state 0A is LISTEN).
pub fn parse_proc_net_tcp_line(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 4 || fields[3] != "0A" {
        return None;
    }
    let (h, p) = fields[1].split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = match h.len() {
        8 => IpAddr::V4(Ipv4Addr::from(
            u32::from_str_radix(h, 16).ok()?.swap_bytes(),
        )),
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let word = u32::from_str_radix(&h[w * 8..w * 8 + 8], 16)
                    .ok()?
                    .swap_bytes();
                bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_be_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Listener {
        addr: Some(ip).filter(|i| !i.is_unspecified()),
        port,
        procs: Vec::new(),
    })
}

/// Whether a listener stands in the way of binding `want`.
pub fn blocks(want: SocketAddr, l: &Listener) -> bool {
    if l.port != want.port() {
        return false;
    }
    let w = want.ip();
    match l.addr {
        None => true,
        Some(have) => {
            let have = match have {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(have),
                v4 => v4,
            };
            if w.is_unspecified() {
                // A wildcard bind of one family collides with any address of that family.
                w.is_ipv4() == have.is_ipv4()
            } else {
                have == w
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_lines_parse() {
        let l = parse_ss_line(
            "LISTEN 0      4096      10.231.5.2:8780       0.0.0.0:*    users:((\"shoal-agent\",pid=4242,fd=12))",
        )
        .unwrap();
        assert_eq!(l.addr, Some("10.231.5.2".parse().unwrap()));
        assert_eq!(l.port, 8780);
        assert_eq!(l.procs, vec![("shoal-agent".to_string(), 4242)]);
        let l = parse_ss_line(
            "LISTEN 0 128 [::]:22 [::]:* users:((\"sshd\",pid=1,fd=3),(\"sshd\",pid=9,fd=3))",
        )
        .unwrap();
        assert_eq!(l.addr, None);
        assert_eq!(l.procs.len(), 2);
        let l = parse_ss_line("LISTEN 0 4096 127.0.0.53%lo:53 0.0.0.0:*").unwrap();
        assert_eq!(l.addr, Some("127.0.0.53".parse().unwrap()));
        assert!(l.procs.is_empty());
        assert_eq!(parse_ss_line("LISTEN 0 5 *:8780 *:*").unwrap().addr, None);
    }

    #[test]
    fn proc_net_tcp_lines_parse() {
        let l = parse_proc_net_tcp_line(
            "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0",
        )
        .unwrap();
        assert_eq!(l.addr, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(l.port, 8080);
        let l = parse_proc_net_tcp_line(
            "   1: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",
        )
        .unwrap();
        assert_eq!(l.addr, None);
        assert_eq!(l.port, 22);
        let l = parse_proc_net_tcp_line(
            "   2: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 0",
        )
        .unwrap();
        assert_eq!(l.addr, Some("::1".parse().unwrap()));
        // Not listening (01 = ESTABLISHED).
        assert!(parse_proc_net_tcp_line("0: 0100007F:1F90 0100007F:D431 01 0").is_none());
    }

    #[test]
    fn port_conflicts() {
        let l = |a: Option<&str>, port| Listener {
            addr: a.map(|a| a.parse().unwrap()),
            port,
            procs: vec![],
        };
        let want: SocketAddr = "0.0.0.0:8780".parse().unwrap();
        assert!(blocks(want, &l(None, 8780)));
        assert!(blocks(want, &l(Some("127.0.0.1"), 8780)));
        assert!(!blocks(want, &l(Some("::1"), 8780)));
        assert!(!blocks(want, &l(Some("127.0.0.1"), 8781)));
        let want: SocketAddr = "10.0.0.2:8780".parse().unwrap();
        assert!(blocks(want, &l(None, 8780)));
        assert!(blocks(want, &l(Some("10.0.0.2"), 8780)));
        assert!(blocks(want, &l(Some("::ffff:10.0.0.2"), 8780)));
        assert!(!blocks(want, &l(Some("127.0.0.1"), 8780)));
    }

    #[test]
    fn facts_parse() {
        let out = "os=Linux\narch=x86_64\nsystemd=no\nhave_start-stop-daemon=yes\nhave_sha256sum=yes\n\
                   have_ss=yes\nrepo_path=/tmp\nrepo_kib=2048\nbin_path=/\nbin_kib=10\ndaemon_pid=77\n\
                   --- listeners\nss\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=5,fd=3))\n";
        let f = parse_facts(out).unwrap();
        assert_eq!(f.os, "Linux");
        assert!(!f.systemd && f.have_ssd && f.have_ss);
        assert_eq!(f.repo_free, ("/tmp".into(), 2 << 20));
        assert_eq!(f.daemon_pid, Some(77));
        assert_eq!(f.listeners.len(), 1);
        assert!(f.listeners_have_pids);
        assert!(parse_facts("sh: 1: uname: not found").is_err());
    }
}
