//! The core judges every option and config key once, with a sentence that names the key.

use event_bus::{ErrorKind, EventBusConfig, EventValidator, PublishOptions, SubscriptionOptions};

fn sub_err(json: &str) -> (ErrorKind, String) {
    let e = SubscriptionOptions::from_json(json).unwrap_err();
    (e.kind(), e.message().to_string())
}

#[test]
fn subscription_milliseconds_round_up_and_bad_values_name_their_key() {
    let o = SubscriptionOptions::from_json(r#"{"timeout":1.5,"retryDelay":10.25}"#).unwrap();
    assert_eq!((o.timeout, o.retry_delay), (Some(2), Some(11)));
    assert_eq!(
        sub_err(r#"{"timeout":-1}"#),
        (
            ErrorKind::Validation,
            "Invalid subscription options: timeout must not be negative (got -1)".into()
        )
    );
    assert_eq!(
        sub_err(r#"{"maxRetries":2.5}"#).1,
        "Invalid subscription options: maxRetries must be a whole number (got 2.5)"
    );
    assert_eq!(
        sub_err(r#"{"retryOnError":"yes"}"#).1,
        "Invalid subscription options: retryOnError must be true or false (got the string \"yes\")"
    );
    assert_eq!(
        sub_err("[1,2]").1,
        "Subscription options must be an object (got an array)"
    );
    assert_eq!(sub_err("{").0, ErrorKind::InvalidArgument);
}

#[test]
fn unknown_keys_are_kept_for_the_warning() {
    let o = SubscriptionOptions::from_json(r#"{"timout":5000}"#).unwrap();
    assert_eq!(o.unknown_keys, vec!["timout".to_string()]);
    let p = PublishOptions::from_json(r#"{"tarceId":"x","traceId":null}"#).unwrap();
    assert_eq!(p.unknown_keys, vec!["tarceId".to_string()]);
    assert_eq!(p.trace_id, None);
    let c = EventBusConfig::from_json(
        r#"{"serviceName":"s","redis":{"sentinel":[1]},"server":{"port":1},"monitoring":{}}"#,
    )
    .unwrap();
    assert_eq!(c.unknown_keys, vec!["redis.sentinel".to_string()]);
}

#[test]
fn publish_options_of_the_wrong_type_are_validation_errors() {
    let e = PublishOptions::from_json(r#"{"traceId":5}"#).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert_eq!(
        e.message(),
        "Invalid publish options: traceId must be a string (got 5)"
    );
    let e = PublishOptions::from_json(r#"{"metadata":"x"}"#).unwrap_err();
    assert_eq!(
        e.message(),
        "Invalid publish options: metadata must be an object (got the string \"x\")"
    );
}

#[test]
fn config_keys_out_of_range_are_config_errors_with_sentences() {
    let msg = |j: &str| {
        let e = EventBusConfig::from_json(j).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        e.message().to_string()
    };
    assert_eq!(
        msg(r#"{"serviceName":"s","redis":{"port":70000}}"#),
        "Invalid EventBusConfig: redis.port must be at most 65535 (got 70000)"
    );
    assert_eq!(
        msg(r#"{"serviceName":"s","redis":{"port":"6379x"}}"#),
        "Invalid EventBusConfig: redis.port must be a whole number (got the string \"6379x\")"
    );
    assert_eq!(
        msg(r#"{"serviceName":"s","logLevel":"loud"}"#),
        "Invalid EventBusConfig: logLevel must be one of \"debug\", \"info\", \"warn\", \"error\" (got \"loud\")"
    );
    assert!(msg("{").starts_with("EventBusConfig: not valid JSON"));
    let c =
        EventBusConfig::from_json(r#"{"serviceName":"s","redis":{"publishTimeout":2.5}}"#).unwrap();
    assert_eq!(
        c.settings().unwrap().publish_timeout,
        std::time::Duration::from_millis(3)
    );
}

#[test]
fn the_whole_event_check_runs_in_the_core_with_the_ts_messages() {
    let v = EventValidator::default();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let ok = format!(
        r#"{{"id":"i","type":"a.b","data":{{}},"metadata":{{"source":"s","timestamp":"{now}"}}}}"#
    );
    v.validate_event_json(&ok).unwrap();
    let msg = |j: &str| v.validate_event_json(j).unwrap_err().message().to_string();
    assert_eq!(msg(r#"{"type":"a"}"#), "Event ID is required");
    assert_eq!(
        msg(r#"{"id":"i","type":"a","data":null}"#),
        "Event data is required"
    );
    assert_eq!(
        msg(r#"{"id":"i","type":"a","data":1,"metadata":{"source":"s"}}"#),
        "Metadata timestamp is required"
    );
    let bad_trace = ok.replace(r#""source":"s""#, r#""source":"s","traceId":7"#);
    assert_eq!(msg(&bad_trace), "traceId must be a string");
}

#[tokio::test]
async fn the_client_names_each_unknown_key_once() {
    use std::sync::{Arc, Mutex};
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    event_bus::logging::set_sink(Some(Arc::new(
        move |r: &event_bus::logging::LogRecord<'_>| {
            if r.service == "unknown-keys-test" {
                l.lock().unwrap().push(r.message.to_string());
            }
        },
    )));
    let bus = event_bus::EventBusClient::from_json(
        r#"{"serviceName":"unknown-keys-test","transport":"memory","redis":{"retryStrategyName":"x"}}"#,
    )
    .unwrap();
    bus.connect().await.unwrap();
    let opts = PublishOptions::from_json(r#"{"tarceId":"t"}"#).unwrap();
    let data = serde_json::value::RawValue::from_string("1".into()).unwrap();
    for _ in 0..3 {
        bus.publish("conf.unknown", &data, &opts).await.unwrap();
    }
    let handler =
        Arc::new(|_ev: event_bus::Delivery| async { Ok::<(), event_bus::HandlerError>(()) });
    bus.subscribe(
        "conf.unknown",
        handler,
        SubscriptionOptions::from_json(r#"{"timout":1}"#).unwrap(),
    )
    .await
    .unwrap();
    bus.disconnect().await.unwrap();
    event_bus::logging::set_sink(None);
    let got = lines.lock().unwrap().clone();
    let unknown: Vec<&String> = got.iter().filter(|m| m.starts_with("Unknown")).collect();
    assert_eq!(
        unknown,
        vec![
            "Unknown config key 'redis.retryStrategyName' ignored: it has no effect",
            "Unknown publish option key 'tarceId' ignored: it has no effect",
            "Unknown subscription option key 'timout' ignored: it has no effect",
        ],
        "{got:?}"
    );
}
