//! jemalloc as the allocator of the Node and Python faces (cargo feature `jemalloc`).
//!
//! The core moves every event between threads (the reader, the runtime's workers, the host's
//! thread), so most frees happen on another thread than the allocation. glibc's malloc took
//! about a third of the CPU of an end-to-end run in a profile (`_int_malloc`, `_int_free`,
//! `malloc_consolidate`, arena locks); with jemalloc (preloaded) the Rust end-to-end bench went from
//! ~100k to ~165k events/s on this machine. The tuning keeps the footprint at the peers':
//! two arenas, dirty pages returned after 200 ms by jemalloc's background thread, and thread
//! caches for sizes up to 1 KB only (events cross threads, so larger cached blocks mostly sat in
//! the cache of a thread that would not allocate them again: the Python bench's anonymous RSS
//! went from 13.7-14.0 to 12.6-12.7 MB, the publish and end-to-end rates within noise).
//!
//! Only Rust allocations go through it (the host keeps its own malloc). Built with
//! `disable_initial_exec_tls`, which a library loaded with `dlopen` needs. The C library does
//! not enable it: C programs (and valgrind) keep the system allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Read by jemalloc at its first allocation (the `_rjem_` prefix is tikv-jemalloc-sys's).
#[used]
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8; 85] =
    b"background_thread:true,narenas:2,dirty_decay_ms:200,muzzy_decay_ms:0,tcache_max:1024\0";
