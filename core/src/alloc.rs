//! jemalloc as the allocator of the Node and Python faces (cargo feature `jemalloc`).
//!
//! The core moves every event between threads (the reader, the runtime's workers, the host's
//! thread), so most frees happen on another thread than the allocation. glibc's malloc handles
//! that pattern poorly (its arena locks, `malloc_consolidate` and cross-thread frees are on
//! the hot path of every event); jemalloc handles it well. The tuning keeps the footprint
//! small: two arenas, dirty pages returned after 200 ms by jemalloc's background thread.
//!
//! Each runtime worker hands its thread cache back to the arena when it parks after work
//! (`on_park`): without that, a burst leaves its freed blocks cached in idle workers for good;
//! the flush costs two loads when the worker did nothing since the last one.
//!
//! Only Rust allocations go through it (the host keeps its own malloc). Built with
//! `disable_initial_exec_tls`, which a library loaded with `dlopen` needs. The C library does
//! not enable it: C programs (and valgrind) keep the system allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc at its first allocation (the `_rjem_` prefix is tikv-jemalloc-sys's).
#[used]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 69] =
    b"background_thread:true,narenas:2,dirty_decay_ms:200,muzzy_decay_ms:0\0";

/// Called by each runtime worker just before it parks: if the thread allocated or freed since
/// its last flush, its thread cache goes back to the arena. Events are allocated on one thread
/// and freed on another, so each worker's cache fills with blocks it will not reuse; a worker
/// parked after a burst would otherwise hold them (and the pages under them) for good. Reading
/// the thread's counters costs two loads; a flush happens only after work, when the worker is
/// about to sleep anyway.
pub(crate) fn on_park() {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::ptr;
    use std::sync::OnceLock;

    /// The thread's allocated and deallocated byte counters (jemalloc's `thread.allocatedp`
    /// and `thread.deallocatedp`), read once per thread.
    fn counters() -> Option<(*const u64, *const u64)> {
        let read = |name: &std::ffi::CStr| -> Option<*const u64> {
            let mut p: *const u64 = ptr::null();
            let mut len = std::mem::size_of::<*const u64>();
            // SAFETY: a NUL-terminated name and an out-pointer of the size jemalloc expects.
            let rc = unsafe {
                tikv_jemalloc_sys::mallctl(
                    name.as_ptr(),
                    (&mut p as *mut *const u64).cast::<c_void>(),
                    &mut len,
                    ptr::null_mut(),
                    0,
                )
            };
            (rc == 0 && !p.is_null()).then_some(p)
        };
        Some((read(c"thread.allocatedp")?, read(c"thread.deallocatedp")?))
    }

    static FLUSH_MIB: OnceLock<Option<([usize; 3], usize)>> = OnceLock::new();
    thread_local! {
        static COUNTERS: Cell<Option<Option<(*const u64, *const u64)>>> = const { Cell::new(None) };
        static LAST: Cell<u64> = const { Cell::new(0) };
    }
    let Some((a, d)) = COUNTERS.with(|c| {
        if c.get().is_none() {
            c.set(Some(counters()));
        }
        c.get().flatten()
    }) else {
        return;
    };
    // SAFETY: jemalloc's per-thread counters of this thread, valid for its lifetime.
    let churn = unsafe { a.read_volatile().wrapping_add(d.read_volatile()) };
    if LAST.with(|l| l.replace(churn)) == churn {
        return;
    }
    let Some((mib, len)) = *FLUSH_MIB.get_or_init(|| {
        let mut mib = [0usize; 3];
        let mut len = mib.len();
        // SAFETY: NUL-terminated name; `mib` has room for `len` entries.
        let rc = unsafe {
            tikv_jemalloc_sys::mallctlnametomib(
                c"thread.tcache.flush".as_ptr(),
                mib.as_mut_ptr(),
                &mut len,
            )
        };
        (rc == 0).then_some((mib, len))
    }) else {
        return;
    };
    // SAFETY: a MIB resolved above; the control takes and returns nothing.
    unsafe {
        tikv_jemalloc_sys::mallctlbymib(
            mib.as_ptr(),
            len,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            0,
        );
    }
    // The flush itself freed through the arena, not the counters; remember where we are.
    // SAFETY: as above.
    LAST.with(|l| l.set(unsafe { a.read_volatile().wrapping_add(d.read_volatile()) }));
}
