//! Keeping the resident memory of an idle node small.
//!
//! Each login hashes with argon2id over 19 MiB. glibc's allocator serves a block that big
//! with mmap at first, but after the first such block is freed it raises its mmap threshold
//! (up to 32 MiB) and later blocks come from per-thread heap arenas, which keep the memory
//! after it is freed: an idle node that had served a burst of logins sat above 200 MiB. A
//! fixed threshold keeps big blocks on mmap, so they go back to the system when freed
//! (BENCHMARKS.md, "Idle memory").

/// Allocations of at least this size are mmapped and unmapped on free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1024 * 1024;

/// Call once, first thing in `main`, before other threads start.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn return_large_allocations_to_the_system() {
    // SAFETY: mallopt only changes allocator parameters; it is called before any other thread
    // exists, with a documented option and a value in its range. A failure (return 0) leaves
    // glibc's defaults in place, which is merely less frugal.
    let _ = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
}

/// Other allocators return big blocks to the system on their own.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_allocations_to_the_system() {}
