//! How the agent uses the process heap (glibc's allocator).
//!
//! An agent's memory is mostly per-file state built in one burst (a
//! publish's scan, hash jobs and pack plan; a sync's manifest and content
//! lists) and freed at its end. With glibc's defaults two things keep
//! that memory resident long after it is freed, measured on a first
//! publish and a first sync of 100,000 tiny files
//! (`docs/design-decisions.md`, "Memory"):
//!
//! - every thread that allocates may get its own arena (up to 8 per core);
//!   memory freed in one arena is not reused by another thread, so the
//!   peak is the sum of the threads' peaks, not the peak of their sum;
//! - the threshold above which a block is mapped on its own (and returned
//!   at once when freed) grows with every large block freed, so after the
//!   first big lists are freed the next ones come from the heap and stay.
//!
//! [`tune`] fixes both at start-up, unless the operator set
//! `MALLOC_ARENA_MAX` or `MALLOC_MMAP_THRESHOLD_` (glibc's own variables,
//! which then win). [`release`] hands freed pages back to the kernel after a
//! publish or a sync that touched many paths ([`release_after`]), so what
//! stays resident is what the agent holds.

/// Blocks of at least this size are mapped on their own and unmapped when
/// freed (glibc's initial threshold, kept fixed instead of growing).
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Sets the allocator up; call before any thread starts.
pub fn tune() {
    #[cfg(target_env = "gnu")]
    tune_glibc();
}

#[cfg(target_env = "gnu")]
fn tune_glibc() {
    let set = |var: &str| std::env::var_os(var).is_some();
    // SAFETY: mallopt only changes allocator parameters; it is called
    // before any other thread exists.
    unsafe {
        if !set("MALLOC_ARENA_MAX") {
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
        if !set("MALLOC_MMAP_THRESHOLD_") {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        }
    }
}

/// The process's resident memory now and its peak since it started
/// (`VmRSS` and `VmHWM` in `/proc/self/status`), in bytes; zero where
/// they cannot be read.
pub fn resident() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bytes = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (bytes("VmRSS:"), bytes("VmHWM:"))
}

/// Paths a publish or a sync must have touched before [`release_after`]
/// trims the heap. A trim walks the whole heap whether or not there is
/// anything to give back: about 40 ms on a million-file agent's, measured,
/// which a small update would pay every generation to free a few hundred
/// kilobytes. 20,000 touched paths free about 10 MB.
pub const RELEASE_ABOVE: usize = 20_000;

/// [`release`] now if an operation touched at least [`RELEASE_ABOVE`]
/// paths; if it touched fewer (but some), once the agent has been quiet
/// for [`IDLE_TRIM`] ([`release_when_idle`]). A round that touched none
/// (a poll with nothing new) changes nothing.
pub fn release_after(touched: usize) {
    if touched >= RELEASE_ABOVE {
        release();
    } else if touched > 0 {
        release_when_idle();
    }
}

/// How long after the last small publish or sync the heap is trimmed.
/// Small updates each free a little (a new root, its envelope, the changed
/// chunks); untrimmed, a million-file agent's resident memory grew by
/// about 20 MB over six of them, measured. Trimmed off the update's path,
/// the 40 ms walk delays no generation.
pub const IDLE_TRIM: std::time::Duration = std::time::Duration::from_secs(10);

/// Trims the heap once [`IDLE_TRIM`] has passed with no newer call, on a
/// thread of its own (started at the first call).
pub fn release_when_idle() {
    use std::sync::{Condvar, Mutex, OnceLock};
    use std::time::Instant;
    static DUE: OnceLock<(Mutex<Option<Instant>>, Condvar)> = OnceLock::new();
    let mut started = false;
    let (due, wake) = DUE.get_or_init(|| {
        started = true;
        (Mutex::new(None), Condvar::new())
    });
    *due.lock().unwrap() = Some(Instant::now() + IDLE_TRIM);
    wake.notify_one();
    if !started {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("heap-trim".into())
        .spawn(move || {
            let mut at = due.lock().unwrap();
            loop {
                match *at {
                    None => at = wake.wait(at).unwrap(),
                    Some(t) if Instant::now() < t => {
                        at = wake.wait_timeout(at, t - Instant::now()).unwrap().0;
                    }
                    Some(_) => {
                        *at = None;
                        drop(at);
                        release();
                        at = due.lock().unwrap();
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the heap trimmer; trimming now");
        release();
    }
}

/// Returns the heap's free pages to the kernel (after a publish or a sync
/// freed its per-file state, or packs left librqbit's session): without it
/// the agent's resident memory stays at its peak.
pub fn release() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free heap pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_follows_what_the_process_touches() {
        let (now, peak) = resident();
        assert!(now > 0 && peak >= now, "now {now}, peak {peak}");
        // 64 MiB written page by page is resident while it lives.
        let block = vec![1u8; 64 << 20];
        let (during, peak_during) = resident();
        assert!(during >= now + (40 << 20), "{now} then {during}");
        assert!(peak_during >= during, "peak {peak_during} under {during}");
        drop(std::hint::black_box(block));
        // The peak still counts it once it is freed (the kernel's counters
        // are summed per CPU, so allow them some slack).
        let peak_after = resident().1;
        assert!(
            peak_after >= now + (40 << 20),
            "{now} then peak {peak_after}"
        );
    }
}
