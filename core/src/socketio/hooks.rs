//! Entry points into the Socket.IO / Engine.IO parsers for the fuzz targets (`fuzz/`) and the
//! property tests (`tests/prop_socketio.rs`). Not part of the API: re-exported hidden as
//! `event_bus::socketio_hooks`, and free to change with the parsers.

use std::time::Duration;

use crate::error::Result;

/// A Socket.IO packet's parts, as the connection task reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketParts<'a> {
    /// Packet type digit (0 CONNECT .. 6 BINARY_ACK).
    pub kind: u8,
    /// Namespace (`/` for the main one).
    pub nsp: &'a str,
    /// Ack id, when there is one.
    pub id: Option<u64>,
    /// The JSON text after the header.
    pub data: &'a str,
}

/// [`PacketParts`] of a Socket.IO packet text; `None` when it is not a Socket.IO packet.
pub fn parse_packet(p: &str) -> Option<PacketParts<'_>> {
    super::protocol::parse_packet(p).map(|p| PacketParts {
        kind: p.kind,
        nsp: p.nsp,
        id: p.id,
        data: p.data,
    })
}

/// What goes before the ack id of a packet for namespace `ns`.
pub fn nsp_prefix(ns: &str) -> String {
    super::protocol::nsp_prefix(ns)
}

/// The Engine.IO open packet (`0{"sid":...,"pingInterval":...,"pingTimeout":...}`) read as
/// the transports read it: the session id and how long the link may stay silent.
pub fn parse_open(packet: &str) -> Result<(String, Duration)> {
    let target = super::engine::Target::parse("http://fuzz.invalid")?;
    let hs = super::engine::parse_open(&target, packet)?;
    let limit = hs.silence_limit();
    Ok((hs.sid, limit))
}

/// A hub URL (`client.url`) parsed: TLS, host, port and namespace.
pub fn parse_hub_url(url: &str) -> Result<(bool, String, u16, String)> {
    let t = super::engine::Target::parse(url)?;
    Ok(t.parts())
}

/// Check a hub ack the way room calls do.
pub fn check_ack(event: &str, room: &str, ack: &serde_json::Value) -> Result<()> {
    super::protocol::check_ack(event, room, ack)
}
