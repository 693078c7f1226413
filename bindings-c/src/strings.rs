//! Strings across the boundary: C string arguments read as UTF-8, JSON text checked, strings
//! handed to C through `char **` out-parameters, and `eb_string_free` that takes them back.

use std::ffi::{c_char, CStr, CString};

use event_bus::Error;

use crate::status::{guard, invalid};

/// A C string argument as `&str`: NULL and invalid UTF-8 are `EB_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives the call.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Error> {
    if p.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(format!("{what} is not valid UTF-8")))
}

/// Like [`arg_str`], NULL allowed.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    p: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Error> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, what) }.map(Some)
    }
}

/// Check that `text` is one JSON value.
pub(crate) fn check_json(text: &str, what: &str) -> Result<(), Error> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| invalid(format!("{what} is not valid JSON: {e}")))
}

/// A C string for `s`, cut at an embedded NUL (C cannot see past it anyway).
pub(crate) fn to_c(s: &str) -> CString {
    let cut = s.find('\0').map_or(s, |i| &s[..i]);
    CString::new(cut).expect("no NUL left")
}

/// Hand `s` to C through `out` (caller frees with `eb_string_free`).
///
/// # Safety
/// `out` is a valid, writable `char **`.
pub(crate) unsafe fn give_string(out: *mut *mut c_char, s: &str) {
    // SAFETY: checked non-NULL by the callers.
    unsafe { *out = to_c(s).into_raw() };
}

/// Check a `char **` out-parameter and set it to NULL.
///
/// # Safety
/// `out` is NULL or a valid, writable `char **`.
pub(crate) unsafe fn out_str(out: *mut *mut c_char, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL and writable per contract.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// Frees a string returned by the library through a `char **` out-parameter. NULL is ignored.
/// Passing anything else (or the same string twice) is undefined behaviour.
///
/// # Safety
/// `s` is NULL or a string this library returned and that was not freed yet.
#[no_mangle]
pub unsafe extern "C" fn eb_string_free(s: *mut c_char) {
    guard(|| {
        if !s.is_null() {
            // SAFETY: per contract, `s` came from CString::into_raw in this library.
            drop(unsafe { std::ffi::CString::from_raw(s) });
        }
        Ok(())
    })
}
