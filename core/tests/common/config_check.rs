//! What must hold for any config or options text, shared by `tests/prop_config.rs` and the
//! `config_json` fuzz target (included with `#[path]`): parsing never panics, and a failure is a
//! typed error with a message.

use event_bus::{ErrorKind, EventBusClient, EventBusConfig, PublishOptions, SubscriptionOptions};

/// Feed `bytes` to every JSON reader of config and options. The first byte picks the
/// reader(s) so that a corpus entry keeps its meaning; the rest is the text.
pub fn check(bytes: &[u8]) {
    let Some((&which, rest)) = bytes.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 4 {
        0 => config(text),
        1 => publish_options(text),
        2 => subscription_options(text),
        _ => {
            config(text);
            publish_options(text);
            subscription_options(text);
        }
    }
}

fn typed(e: &event_bus::Error, allowed: &[ErrorKind]) {
    assert!(allowed.contains(&e.kind()), "{:?}: {e}", e.kind());
    assert!(!e.message().is_empty());
}

/// The config, its settings, and a client built from it (not connected).
pub fn config(text: &str) {
    let cfg = match EventBusConfig::from_json(text) {
        Ok(c) => c,
        Err(e) => return typed(&e, &[ErrorKind::Config, ErrorKind::InvalidArgument]),
    };
    let _ = format!("{cfg:?}");
    match cfg.settings() {
        Ok(s) => {
            let _ = format!("{s:?}");
            assert!(!s.service_name.is_empty());
            // Building the client applies every setting (logger, registry, transport) without
            // connecting.
            if let Err(e) = EventBusClient::new(cfg) {
                typed(&e, &[ErrorKind::Config, ErrorKind::Unsupported]);
            }
        }
        Err(e) => typed(&e, &[ErrorKind::Config, ErrorKind::Unsupported]),
    }
}

/// Publish options.
pub fn publish_options(text: &str) {
    if let Err(e) = PublishOptions::from_json(text) {
        typed(&e, &[ErrorKind::Validation, ErrorKind::InvalidArgument]);
    }
}

/// Subscription options.
pub fn subscription_options(text: &str) {
    match SubscriptionOptions::from_json(text) {
        Ok(o) => {
            let _ = serde_json::to_string(&o).expect("options serialize");
        }
        Err(e) => typed(&e, &[ErrorKind::Validation, ErrorKind::InvalidArgument]),
    }
}
