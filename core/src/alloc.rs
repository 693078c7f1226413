//! jemalloc as the allocator of the Node and Python faces (cargo feature `jemalloc`).
//!
//! The core moves every event between threads (the reader, the runtime's workers, the host's
//! thread), so most frees happen on another thread than the allocation. glibc's malloc took
//! about a third of the CPU of an end-to-end run in a profile (`_int_malloc`, `_int_free`,
//! `malloc_consolidate`, arena locks); with jemalloc (preloaded) the Rust end-to-end bench went from
//! ~100k to ~165k events/s on this machine. The tuning keeps the footprint at the peers':
//! two arenas, dirty pages returned after 200 ms by jemalloc's background thread.
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
