//! Sets the shared library's SONAME and generates the C header into `OUT_DIR/event_bus.h`.
//!
//! The committed header is `include/event_bus.h`; `scripts/build-c.sh --update-header` copies
//! the generated one there and `scripts/test-c.sh` fails when the two differ.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libevent_bus.so.{major}");
    }
    // cbindgen starts at src/lib.rs and follows its `mod` declarations into the other files.
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .expect("bindings-c/cbindgen.toml is readable");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("event_bus.h");
    cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen could not generate the header")
        .write_to_file(&out);
}
