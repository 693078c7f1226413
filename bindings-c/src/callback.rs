//! What every C callback shares: the context pointer with its `drop` function (released exactly
//! once, after the last call), and the per-thread marker of running inside a callback, which
//! lets calls that wait for handlers refuse to run there instead of waiting for themselves.

use std::cell::Cell;
use std::ffi::c_void;

use event_bus::Error;

use crate::status::invalid;

thread_local! {
    /// Depth of library callbacks (handler, state) running on this thread.
    static IN_CALLBACK: Cell<u32> = const { Cell::new(0) };
}

/// Releases a callback's `ctx`. Called exactly once, after the last call of its callback has
/// returned, on whichever library or caller thread releases it last.
pub type eb_drop_fn = Option<unsafe extern "C" fn(ctx: *mut c_void)>;

/// Refuse calls that wait for handlers when made from inside a callback (they would wait for
/// themselves until the disconnect timeout).
pub(crate) fn refuse_in_callback(what: &str) -> Result<(), Error> {
    if IN_CALLBACK.with(|c| c.get()) > 0 {
        return Err(invalid(format!(
            "{what} cannot be called from inside an event-bus callback (it waits for handlers to finish)"
        )));
    }
    Ok(())
}

/// Marks this thread as running a callback while it lives.
pub(crate) struct CallbackScope;

impl CallbackScope {
    pub(crate) fn enter() -> Self {
        IN_CALLBACK.with(|c| c.set(c.get() + 1));
        CallbackScope
    }
}

impl Drop for CallbackScope {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// A C context pointer plus its optional `drop`, called exactly once when the last reference
/// goes away (after the last call has returned).
pub(crate) struct Ctx {
    pub(crate) ctx: *mut c_void,
    drop: eb_drop_fn,
}

// SAFETY: the C side promises (in the header) that ctx may be used from library threads.
unsafe impl Send for Ctx {}
// SAFETY: as above; the library never touches *ctx itself.
unsafe impl Sync for Ctx {}

impl Ctx {
    pub(crate) fn new(ctx: *mut c_void, drop: eb_drop_fn) -> Self {
        Ctx { ctx, drop }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        if let Some(d) = self.drop.take() {
            // SAFETY: the caller supplied `d` for exactly this ctx, to be called once.
            unsafe { d(self.ctx) };
        }
    }
}
