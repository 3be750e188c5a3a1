//! What `catch_unwind` cannot catch: a refused huge allocation and a
//! stack overflow end the process with `abort()`. [`LimitedAlloc`] turns an
//! allocation over a limit into such an abort (so "allocates gigabytes on
//! a small input" is a crash, not a slow swap), and the SIGABRT handler of
//! [`install_abort_handler`] saves the input being run before the process
//! dies, using only async-signal-safe calls.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::os::raw::c_char;
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static CUR_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CUR_LEN: AtomicUsize = AtomicUsize::new(0);
static CRASH_PATH: AtomicPtr<c_char> = AtomicPtr::new(std::ptr::null_mut());

/// The system allocator, refusing any single allocation larger than
/// [`set_alloc_limit`]. Install it with `#[global_allocator]`.
pub struct LimitedAlloc;

fn over_limit(size: usize) -> bool {
    if size > LIMIT.load(Ordering::Relaxed) {
        let msg = b"shoal-fuzz: refused one allocation over the --max-alloc-mb limit\n";
        // SAFETY: writing a static buffer to stderr.
        unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
        true
    } else {
        false
    }
}

// SAFETY: forwards to the system allocator; refusing returns null, which
// GlobalAlloc allows.
unsafe impl GlobalAlloc for LimitedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if over_limit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if over_limit(layout.size()) {
            return std::ptr::null_mut();
        }
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if over_limit(new_size) {
            return std::ptr::null_mut();
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Sets the largest single allocation [`LimitedAlloc`] grants.
pub fn set_alloc_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// Where the SIGABRT handler writes the input being run (one file per
/// target; call before running it).
pub fn set_crash_path(path: &Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).expect("no NUL in path");
    let old = CRASH_PATH.swap(c.into_raw(), Ordering::SeqCst);
    if !old.is_null() {
        // SAFETY: `old` came from CString::into_raw above; the handler only
        // runs while an input runs, never while this is being called.
        drop(unsafe { CString::from_raw(old) });
    }
}

/// Marks `input` as the one running now (it must stay alive and unchanged
/// until [`clear_current`]).
pub fn set_current(input: &[u8]) {
    CUR_LEN.store(input.len(), Ordering::SeqCst);
    CUR_PTR.store(input.as_ptr().cast_mut(), Ordering::SeqCst);
}

pub fn clear_current() {
    CUR_PTR.store(std::ptr::null_mut(), Ordering::SeqCst);
}

extern "C" fn on_abort(sig: libc::c_int) {
    let p = CUR_PTR.load(Ordering::SeqCst);
    let path = CRASH_PATH.load(Ordering::SeqCst);
    // SAFETY: only async-signal-safe calls (open, write, close, signal,
    // raise) on memory that stays valid while the input runs.
    unsafe {
        if !p.is_null() && !path.is_null() {
            let fd = libc::open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC, 0o644);
            if fd >= 0 {
                let len = CUR_LEN.load(Ordering::SeqCst);
                let mut done = 0;
                while done < len {
                    let n = libc::write(fd, p.add(done).cast(), len - done);
                    if n <= 0 {
                        break;
                    }
                    done += n as usize;
                }
                libc::close(fd);
                let msg =
                    b"\nshoal-fuzz: CRASH: the process aborted (allocation refused, out of memory \
                            or stack overflow) while running an input; it is saved in ";
                libc::write(2, msg.as_ptr().cast(), msg.len());
                libc::write(2, path.cast(), libc::strlen(path));
                libc::write(2, b"\n".as_ptr().cast(), 1);
            }
        }
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Installs the SIGABRT handler (once per process is enough).
pub fn install_abort_handler() {
    // SAFETY: installs a handler that only makes async-signal-safe calls.
    unsafe {
        libc::signal(libc::SIGABRT, on_abort as *const () as libc::sighandler_t);
    }
}
