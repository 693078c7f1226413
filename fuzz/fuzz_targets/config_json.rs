//! Config and option JSON on arbitrary text: `EventBusConfig` (and the `Settings` resolved from
//! it, and a client built from it), `PublishOptions` and `SubscriptionOptions` never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../core/tests/common/config_check.rs"]
mod config_check;

fuzz_target!(|data: &[u8]| {
    config_check::check(data);
});
