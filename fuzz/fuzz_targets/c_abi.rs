//! The C ABI entry points fed arbitrary arguments: NULL pointers, invalid UTF-8, embedded NULs,
//! very long strings, handles that are not live clients, NULL out-parameters. Every string is
//! passed as a NUL-terminated copy (the contract of the header). No call may panic (the
//! libFuzzer panic hook aborts even on a panic the ABI would catch) or return EB_ERR_PANIC /
//! EB_ERR_INTERNAL, and every failure leaves a message in eb_last_error.
#![no_main]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

// Linked from the rlib of bindings-c; declared here as a C caller sees them.
use event_bus_capi as _;

#[repr(C)]
struct PublishResult {
    success: bool,
    status: c_int,
    event_id: [c_char; 40],
    published_at: [c_char; 32],
    delivered_to: u64,
}

#[repr(C)]
struct Handler {
    call: Option<unsafe extern "C" fn(*const c_void, *mut c_void) -> c_int>,
    drop: Option<unsafe extern "C" fn(*mut c_void)>,
}

type Client = c_void;

extern "C" {
    fn eb_client_new(config_json: *const c_char, client_out: *mut *mut Client) -> c_int;
    fn eb_client_free(client: *mut Client) -> c_int;
    fn eb_connect(client: *mut Client) -> c_int;
    fn eb_is_connected(client: *const Client, out: *mut bool) -> c_int;
    fn eb_publish(
        c: *mut Client,
        t: *const c_char,
        d: *const c_char,
        o: *const c_char,
        r: *mut PublishResult,
    ) -> c_int;
    fn eb_publish_to_room(
        c: *mut Client,
        room: *const c_char,
        t: *const c_char,
        d: *const c_char,
        o: *const c_char,
        r: *mut PublishResult,
    ) -> c_int;
    fn eb_publish_to_user(
        c: *mut Client,
        user: *const c_char,
        t: *const c_char,
        d: *const c_char,
        o: *const c_char,
        r: *mut PublishResult,
    ) -> c_int;
    fn eb_broadcast(
        c: *mut Client,
        t: *const c_char,
        d: *const c_char,
        o: *const c_char,
        r: *mut PublishResult,
    ) -> c_int;
    fn eb_publish_batch(c: *mut Client, items: *const c_char, out: *mut *mut c_char) -> c_int;
    fn eb_subscribe(
        c: *mut Client,
        pattern: *const c_char,
        options: *const c_char,
        handler: Handler,
        ctx: *mut c_void,
        id_out: *mut *mut c_char,
    ) -> c_int;
    fn eb_unsubscribe(c: *mut Client, id: *const c_char) -> c_int;
    fn eb_matches_pattern(p: *const c_char, ch: *const c_char, out: *mut bool) -> c_int;
    fn eb_strerror(code: c_int) -> *const c_char;
    fn eb_last_error() -> *const c_char;
    fn eb_version() -> *const c_char;
    fn eb_string_free(s: *mut c_char);
    fn eb_set_log_callback(
        cb: Option<unsafe extern "C" fn(c_int, *const c_char, *mut c_void)>,
        ctx: *mut c_void,
        drop: Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> c_int;
}

const EB_OK: c_int = 0;
const EB_ERR_INTERNAL: c_int = -13;
const EB_ERR_PANIC: c_int = -14;

unsafe extern "C" fn quiet_log(_level: c_int, _line: *const c_char, _ctx: *mut c_void) {}
unsafe extern "C" fn handler_ok(_ev: *const c_void, _ctx: *mut c_void) -> c_int {
    0
}

/// A new connected client on the in-process memory broker.
fn new_memory_client() -> *mut Client {
    let cfg = c"{\"serviceName\":\"fuzz\",\"redis\":{\"url\":\"memory://fuzz-c-abi\"}}";
    let mut c: *mut Client = std::ptr::null_mut();
    unsafe {
        assert_eq!(eb_client_new(cfg.as_ptr(), &mut c), EB_OK);
        assert_eq!(eb_connect(c), EB_OK);
    }
    c
}

/// One connected client on the in-process memory broker, shared by every run.
fn client() -> usize {
    static CLIENT: OnceLock<usize> = OnceLock::new();
    *CLIENT.get_or_init(|| unsafe {
        assert_eq!(
            eb_set_log_callback(Some(quiet_log), std::ptr::null_mut(), None),
            EB_OK
        );
        new_memory_client() as usize
    })
}

/// A string argument: NULL, or bytes (any, embedded NULs and invalid UTF-8 included), or the
/// bytes repeated to a long string; always passed NUL-terminated.
#[derive(Arbitrary, Debug)]
enum Str<'a> {
    Null,
    Bytes(&'a [u8]),
    Long(&'a [u8], u16),
}

impl Str<'_> {
    fn owned(&self) -> Option<Vec<u8>> {
        let mut v = match self {
            Str::Null => return None,
            Str::Bytes(b) => b.to_vec(),
            Str::Long(b, n) => {
                let unit: &[u8] = if b.is_empty() { b"x" } else { b };
                let want = (*n as usize % 4096) * 256;
                unit.iter().copied().cycle().take(want).collect()
            }
        };
        v.push(0);
        Some(v)
    }
}

fn ptr(v: &Option<Vec<u8>>) -> *const c_char {
    v.as_ref().map_or(std::ptr::null(), |v| v.as_ptr().cast())
}

/// Which client handle a call gets.
#[derive(Arbitrary, Debug)]
enum Handle {
    Live,
    Null,
    /// Not a client this library handed out (must be refused, never dereferenced).
    Bogus(u32),
}

impl Handle {
    fn get(&self) -> *mut Client {
        match self {
            Handle::Live => client() as *mut Client,
            Handle::Null => std::ptr::null_mut(),
            Handle::Bogus(n) => (0x1000usize + (*n as usize) * 8) as *mut Client,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op<'a> {
    ClientNew {
        config: Str<'a>,
        null_out: bool,
    },
    IsConnected {
        handle: Handle,
        null_out: bool,
    },
    Publish {
        route: u8,
        to: Str<'a>,
        handle: Handle,
        event_type: Str<'a>,
        data: Str<'a>,
        options: Str<'a>,
        null_result: bool,
    },
    Batch {
        handle: Handle,
        items: Str<'a>,
        null_out: bool,
    },
    Subscribe {
        handle: Handle,
        pattern: Str<'a>,
        options: Str<'a>,
        null_call: bool,
        null_id_out: bool,
    },
    Unsubscribe {
        handle: Handle,
        id: Str<'a>,
    },
    Matches {
        pattern: Str<'a>,
        channel: Str<'a>,
        null_out: bool,
    },
    Strerror(i32),
    FreeBogus(u32),
}

fn status_ok(what: &str, st: c_int) {
    assert!(
        st == EB_OK || (-16..0).contains(&st),
        "{what}: status {st} out of range"
    );
    assert!(
        st != EB_ERR_PANIC && st != EB_ERR_INTERNAL,
        "{what}: {st} {}",
        last_error()
    );
    if st != EB_OK {
        assert!(
            !last_error().is_empty(),
            "{what}: failure {st} without a message"
        );
    }
    // Every status has a name.
    let name = unsafe { CStr::from_ptr(eb_strerror(st)) };
    assert!(name.to_bytes().starts_with(b"EB_"), "{st}: {name:?}");
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(eb_last_error()) }
        .to_string_lossy()
        .into_owned()
}

fn run(op: &Op<'_>) {
    unsafe {
        match op {
            Op::ClientNew { config, null_out } => {
                let cfg = config.owned();
                let mut c: *mut Client = std::ptr::dangling_mut();
                let out = if *null_out {
                    std::ptr::null_mut()
                } else {
                    &mut c as *mut _
                };
                let st = eb_client_new(ptr(&cfg), out);
                status_ok("eb_client_new", st);
                if !*null_out {
                    if st == EB_OK {
                        assert!(!c.is_null());
                        status_ok("eb_client_free", eb_client_free(c));
                    } else {
                        assert!(c.is_null(), "client_out not reset on failure");
                    }
                }
            }
            Op::IsConnected { handle, null_out } => {
                let mut b = false;
                let out = if *null_out {
                    std::ptr::null_mut()
                } else {
                    &mut b as *mut bool
                };
                status_ok("eb_is_connected", eb_is_connected(handle.get(), out));
            }
            Op::Publish {
                route,
                to,
                handle,
                event_type,
                data,
                options,
                null_result,
            } => {
                let (to, t, d, o) = (
                    to.owned(),
                    event_type.owned(),
                    data.owned(),
                    options.owned(),
                );
                let mut r = PublishResult {
                    success: true,
                    status: 99,
                    event_id: [7; 40],
                    published_at: [7; 32],
                    delivered_to: 99,
                };
                let out = if *null_result {
                    std::ptr::null_mut()
                } else {
                    &mut r as *mut _
                };
                let c = handle.get();
                let st = match route % 4 {
                    0 => eb_publish(c, ptr(&t), ptr(&d), ptr(&o), out),
                    1 => eb_publish_to_room(c, ptr(&to), ptr(&t), ptr(&d), ptr(&o), out),
                    2 => eb_publish_to_user(c, ptr(&to), ptr(&t), ptr(&d), ptr(&o), out),
                    _ => eb_broadcast(c, ptr(&t), ptr(&d), ptr(&o), out),
                };
                status_ok("eb_publish", st);
                if !*null_result && r.status != 99 {
                    assert_eq!(r.status, st);
                    assert_eq!(r.success, st == EB_OK);
                    assert!(r.event_id.contains(&0) && r.published_at.contains(&0));
                }
            }
            Op::Batch {
                handle,
                items,
                null_out,
            } => {
                let items = items.owned();
                let mut s: *mut c_char = std::ptr::dangling_mut();
                let out = if *null_out {
                    std::ptr::null_mut()
                } else {
                    &mut s as *mut _
                };
                let st = eb_publish_batch(handle.get(), ptr(&items), out);
                status_ok("eb_publish_batch", st);
                if !*null_out && !s.is_null() {
                    assert_ne!(s, std::ptr::dangling_mut(), "results_json_out not set");
                    let text = CStr::from_ptr(s).to_str().expect("results are UTF-8");
                    let v: serde_json::Value = serde_json::from_str(text).expect("results JSON");
                    assert!(v.is_array());
                    eb_string_free(s);
                }
            }
            Op::Subscribe {
                handle,
                pattern,
                options,
                null_call,
                null_id_out,
            } => {
                let (p, o) = (pattern.owned(), options.owned());
                let h = Handler {
                    call: if *null_call { None } else { Some(handler_ok) },
                    drop: None,
                };
                let mut id: *mut c_char = std::ptr::null_mut();
                let out = if *null_id_out {
                    std::ptr::null_mut()
                } else {
                    &mut id as *mut _
                };
                // Without an id out-parameter a subscription on the shared client could never
                // be removed: that case gets a client of its own, freed afterwards.
                let own = *null_id_out && matches!(handle, Handle::Live);
                let c = if own {
                    new_memory_client()
                } else {
                    handle.get()
                };
                let st = eb_subscribe(c, ptr(&p), ptr(&o), h, std::ptr::null_mut(), out);
                status_ok("eb_subscribe", st);
                if !id.is_null() {
                    assert_eq!(st, EB_OK);
                    // Keep the shared client small: every subscription made is removed.
                    status_ok("eb_unsubscribe", eb_unsubscribe(c, id));
                    eb_string_free(id);
                }
                if own {
                    status_ok("eb_client_free", eb_client_free(c));
                }
            }
            Op::Unsubscribe { handle, id } => {
                let id = id.owned();
                let st = eb_unsubscribe(handle.get(), ptr(&id));
                status_ok("eb_unsubscribe", st);
            }
            Op::Matches {
                pattern,
                channel,
                null_out,
            } => {
                let (p, ch) = (pattern.owned(), channel.owned());
                let mut m = false;
                let out = if *null_out {
                    std::ptr::null_mut()
                } else {
                    &mut m as *mut bool
                };
                let st = eb_matches_pattern(ptr(&p), ptr(&ch), out);
                status_ok("eb_matches_pattern", st);
                if st == EB_OK {
                    let cut = |v: &Option<Vec<u8>>| {
                        let v = v.as_ref().unwrap();
                        CStr::from_bytes_until_nul(v).unwrap().to_bytes().to_vec()
                    };
                    assert_eq!(m, event_bus::glob::matches_bytes(&cut(&p), &cut(&ch)));
                }
            }
            Op::Strerror(code) => {
                let s = CStr::from_ptr(eb_strerror(*code));
                assert!(!s.to_bytes().is_empty());
                let v = CStr::from_ptr(eb_version());
                assert!(!v.to_bytes().is_empty());
            }
            Op::FreeBogus(n) => {
                let st = eb_client_free((0x1000usize + (*n as usize) * 8) as *mut Client);
                status_ok("eb_client_free", st);
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op<'_>>| {
    for op in ops.iter().take(16) {
        run(op);
    }
});
