//! Node binding (napi-rs).
