//! What a publish returns, and what a batch is made of.
//!
//! [`PublishOutcome`] is a [`PublishReceipt`] or a [`PublishFailure`]; [`OutcomeJson`] writes
//! one as the JSON a face hands out (the TS package's `PublishResult`, or the C header's
//! shape). [`BatchItem`] is one event of `publish_batch`; [`IntoBatchItem`] lets
//! `queue_batch` take items that are made into events on the runtime ([`JsonItem`]: the Node
//! face's JSON text).

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};
use crate::event::PublishOptions;

/// A successful publish.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishReceipt {
    /// The event's id.
    pub event_id: String,
    /// The event's `metadata.timestamp`.
    pub published_at: String,
    /// Redis's PUBLISH reply: clients that received it.
    pub delivered_to: u64,
    /// The channel it went to.
    pub channel: String,
}

/// A failed publish: the error plus the event id / time when the event had been built.
#[derive(Debug)]
pub struct PublishFailure {
    /// What went wrong.
    pub error: Error,
    /// The event's id (a fresh id when it failed before one was assigned, as the TS package).
    pub event_id: String,
    /// When it failed / was built.
    pub published_at: String,
}

/// Outcome of one publish.
pub type PublishOutcome = std::result::Result<PublishReceipt, PublishFailure>;

/// How a face that hands publish outcomes out as JSON text shapes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeShape {
    /// The TS package's `PublishResult` (Node): no `deliveredTo` on a failure, and
    /// `error.details` is `{}`.
    Ts,
    /// The C header's: `deliveredTo` always (0 on a failure), no `error.details`.
    C,
}

/// A publish outcome as JSON, written straight to text with `serde_json::to_string`:
/// `{"success","eventId","publishedAt","deliveredTo"?,"error"?:{"code","message","details"?}}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeJson<'a> {
    success: bool,
    event_id: &'a str,
    published_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivered_to: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<OutcomeErrorJson<'a>>,
}

#[derive(Debug, Serialize)]
struct OutcomeErrorJson<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Map<String, Value>>,
}

impl<'a> OutcomeJson<'a> {
    /// `o` in `shape`.
    pub fn of(o: &'a PublishOutcome, shape: OutcomeShape) -> Self {
        match o {
            Ok(r) => OutcomeJson {
                success: true,
                event_id: &r.event_id,
                published_at: &r.published_at,
                delivered_to: Some(r.delivered_to),
                error: None,
            },
            Err(f) => Self::failure(&f.error, &f.event_id, &f.published_at, shape),
        }
    }

    /// The JSON of a failed publish.
    fn failure(
        e: &'a Error,
        event_id: &'a str,
        published_at: &'a str,
        shape: OutcomeShape,
    ) -> Self {
        OutcomeJson {
            success: false,
            event_id,
            published_at,
            delivered_to: (shape == OutcomeShape::C).then_some(0),
            error: Some(OutcomeErrorJson {
                code: e.kind().code(),
                message: e.full_message(),
                details: (shape == OutcomeShape::Ts).then(Map::new),
            }),
        }
    }
}

/// One item of `publish_batch`.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// Event type.
    pub event_type: String,
    /// Data as JSON text.
    pub data: Box<RawValue>,
    /// Options.
    pub options: PublishOptions,
}

/// An item for [`EventBusClient::queue_batch`](crate::EventBusClient::queue_batch): made into a [`BatchItem`] on the runtime, by
/// the client's hand-over task, so the host's thread does not pay for the checking; except
/// the item of a call of one while the hand-over task holds nothing, which is checked and
/// written from the calling thread (the fast path of a lone awaited publish).
pub trait IntoBatchItem: Send + 'static {
    /// The item, or why it cannot be published (it then fails before it is sent).
    fn into_batch_item(self) -> Result<BatchItem>;
}

impl IntoBatchItem for BatchItem {
    fn into_batch_item(self) -> Result<BatchItem> {
        Ok(self)
    }
}

/// An item as JSON text, as the Node face hands its publishes over: `data` is the event data
/// (`JSON.stringify`'s output), `options` the publish options object (or empty).
#[derive(Debug, Clone)]
pub struct JsonItem {
    /// Event type.
    pub event_type: String,
    /// Data as JSON text.
    pub data: String,
    /// Options as JSON text; empty or `null` for none.
    pub options: String,
}

impl IntoBatchItem for JsonItem {
    fn into_batch_item(self) -> Result<BatchItem> {
        let data = RawValue::from_string(self.data).map_err(|e| {
            Error::new(
                ErrorKind::Validation,
                format!("Event data is not valid JSON: {e}"),
            )
        })?;
        Ok(BatchItem {
            event_type: self.event_type,
            data,
            options: PublishOptions::from_json(&self.options)?,
        })
    }
}

#[cfg(test)]
mod outcome_json_tests {
    use super::*;

    #[test]
    fn both_shapes_of_a_success_and_a_failure() {
        let ok: PublishOutcome = Ok(PublishReceipt {
            event_id: "i".into(),
            published_at: "t".into(),
            delivered_to: 2,
            channel: "c".into(),
        });
        let bad: PublishOutcome = Err(PublishFailure {
            error: Error::validation("Event type is required"),
            event_id: "j".into(),
            published_at: "u".into(),
        });
        let text = |o, s| serde_json::to_string(&OutcomeJson::of(o, s)).unwrap();
        let success = r#"{"success":true,"eventId":"i","publishedAt":"t","deliveredTo":2}"#;
        assert_eq!(text(&ok, OutcomeShape::Ts), success);
        assert_eq!(text(&ok, OutcomeShape::C), success);
        assert_eq!(
            text(&bad, OutcomeShape::Ts),
            r#"{"success":false,"eventId":"j","publishedAt":"u","error":{"code":"VALIDATION_ERROR","message":"Event type is required","details":{}}}"#
        );
        assert_eq!(
            text(&bad, OutcomeShape::C),
            r#"{"success":false,"eventId":"j","publishedAt":"u","deliveredTo":0,"error":{"code":"VALIDATION_ERROR","message":"Event type is required"}}"#
        );
    }
}
