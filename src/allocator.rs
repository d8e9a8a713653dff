//! glibc malloc settings for a long-running daemon whose load comes in bursts: what a burst allocated goes back
//! to the system when it is over, instead of staying resident at the burst's peak.

/// Fix glibc's thresholds once per process, before the runtime's threads start (each thread takes an arena at its
/// first allocation).
/// - By default the thresholds move: after a large block is freed, blocks up to its size come from the heap instead
///   of their own mapping, and each thread's heap keeps up to twice that free at its top, which `malloc_trim` does
///   not return for threads' arenas. After a burst the resident size stayed 80 MiB above what was in use. Fixed, a
///   commit's large vectors (megabytes) are mappings of their own, returned when freed, and a heap returns what it
///   frees at its top past 2 MiB.
/// - One arena per core instead of eight: each arena keeps its own scattered pages after a burst (about 1–2 MiB
///   each with the default), and a daemon on a few cores gains little from more.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        // SAFETY: mallopt only sets glibc's own parameters; the values are in range.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 2 << 20);
            libc::mallopt(libc::M_ARENA_MAX, cores as libc::c_int);
        });
    }
}

/// Return the heap's free pages to the system (glibc keeps what a burst freed, in every thread's arena, and the
/// resident size would stay at the burst's peak). Takes a few milliseconds; the ledger writer runs it once per
/// burst, when it is over, after the ledger has emptied its page cache.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only walks glibc's own arenas under their locks; it has no preconditions.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!(
            micros = started.elapsed().as_micros() as u64,
            "Heap trimmed after a burst."
        );
    }
}
