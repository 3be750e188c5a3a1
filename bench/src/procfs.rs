//! Reading `/proc` and `/sys`: peak memory of a process, byte counters of
//! a network interface, and the machine's description.

use anyhow::{bail, Context, Result};
use std::path::Path;

/// A `kB` field of `/proc/PID/status` (`VmHWM`, `VmRSS`, …) in bytes.
pub fn status_kb_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let mut it = rest.split_whitespace();
        let n: u64 = it.next()?.parse().ok()?;
        match it.next() {
            Some("kB") => Some(n * 1024),
            _ => None,
        }
    })
}

/// Peak resident set size (`VmHWM`) of a running process, in bytes.
pub fn peak_rss(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {path} (has the process exited?)"))?;
    status_kb_field(&s, "VmHWM").with_context(|| format!("{path} has no VmHWM line"))
}

/// Current resident set size (`VmRSS`) of a running process, in bytes.
pub fn rss(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status_kb_field(&s, "VmRSS").with_context(|| format!("{path} has no VmRSS line"))
}

/// A field of `/proc/PID/io` (`rchar`, `read_bytes`, …).
pub fn io_field(io: &str, field: &str) -> Option<u64> {
    io.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().parse().ok()
    })
}

/// Bytes a running process has read so far (`rchar` of `/proc/PID/io`):
/// every byte read(2) and its kin returned, from the page cache or not.
pub fn read_chars(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/io");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    io_field(&s, "rchar").with_context(|| format!("{path} has no rchar line"))
}

/// The executable a PID runs (its `/proc/PID/exe` link's file name).
pub fn exe_name(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Bytes an interface received and sent (`/sys/class/net/IF/statistics`),
/// as seen from the root namespace.
pub fn if_bytes(iface: &str) -> Result<(u64, u64)> {
    let read = |what: &str| -> Result<u64> {
        let p = Path::new("/sys/class/net")
            .join(iface)
            .join("statistics")
            .join(what);
        let s = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        s.trim()
            .parse()
            .with_context(|| format!("{}: not a number", p.display()))
    };
    Ok((read("rx_bytes")?, read("tx_bytes")?))
}

/// The machine a run happened on.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub mem_total: u64,
    pub kernel: String,
    pub load_before: String,
}

/// The CPU model from `/proc/cpuinfo` text.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "model name").then(|| v.trim().to_string())
    })
}

/// Whether `/proc/cpuinfo` lists a CPU flag (e.g. `sha_ni`).
pub fn cpu_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(k, v)| k.trim() == "flags" && v.split_whitespace().any(|f| f == flag))
    })
}

pub fn machine() -> Result<Machine> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").context("reading /proc/cpuinfo")?;
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let mut model = cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into());
    if cpu_flag(&cpuinfo, "sha_ni") {
        model.push_str(" (SHA extensions: yes)");
    } else {
        model.push_str(" (SHA extensions: no)");
    }
    let Some(mem) = status_kb_field(&meminfo, "MemTotal") else {
        bail!("/proc/meminfo has no MemTotal line");
    };
    Ok(Machine {
        cpu_model: model,
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        mem_total: mem,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string(),
        load_before: loadavg(),
    })
}

/// `/proc/loadavg`'s three averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Busy and total jiffies over all CPUs (`/proc/stat`'s `cpu` line).
pub fn cpu_jiffies(stat: &str) -> Option<(u64, u64)> {
    let l = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = l
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 4 {
        return None;
    }
    let total: u64 = v.iter().sum();
    // idle + iowait are not busy.
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// CPU time (user + system, in seconds) a process has used, from
/// `/proc/PID/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based
    // over the whole line), so 11 and 12 here.
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) as f64 / hz)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_io_fields() {
        let io = "rchar: 893481\nwchar: 2961\nsyscr: 713\nread_bytes: 4096\n";
        assert_eq!(io_field(io, "rchar"), Some(893_481));
        assert_eq!(io_field(io, "read_bytes"), Some(4096));
        assert_eq!(io_field(io, "write_bytes"), None);
        assert_eq!(io_field("rchar: lots\n", "rchar"), None);
    }

    const STATUS: &str = "Name:\tshoal-agent\nVmPeak:\t  200000 kB\nVmHWM:\t  104796 kB\nVmRSS:\t   90000 kB\nThreads:\t5\n";

    #[test]
    fn reads_kb_fields() {
        assert_eq!(status_kb_field(STATUS, "VmHWM"), Some(104_796 * 1024));
        assert_eq!(status_kb_field(STATUS, "VmRSS"), Some(90_000 * 1024));
        assert_eq!(status_kb_field(STATUS, "VmSwap"), None);
        // A field that is not in kB is not read as one.
        assert_eq!(status_kb_field(STATUS, "Threads"), None);
        // A prefix of a field name is not the field.
        assert_eq!(status_kb_field(STATUS, "Vm"), None);
    }

    #[test]
    fn reads_cpuinfo() {
        let c = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse sha_ni avx2\n";
        assert_eq!(cpu_model(c).as_deref(), Some("Intel(R) Xeon(R) Processor"));
        assert!(cpu_flag(c, "sha_ni"));
        assert!(!cpu_flag(c, "sha"));
    }

    #[test]
    fn reads_cpu_jiffies() {
        let s = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(cpu_jiffies(s), Some((150, 1000)));
    }

    #[test]
    fn reads_process_cpu_time() {
        // A command with spaces and parentheses must not shift the fields.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0";
        assert_eq!(cpu_seconds(stat), Some(300.0 / hz));
    }
}
