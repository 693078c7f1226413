//! Rooms over the Socket.IO hub: `joinRoom`, `leaveRoom`, `getRoomMembers`, and the rooms
//! joined. Without `client` config, or in a build without the `socketio` feature, every room
//! call fails with `Socket.IO not connected` (the latter saying why).

#[cfg(feature = "socketio")]
use std::sync::Arc;

use super::EventBusClient;
use crate::error::{Error, ErrorKind, Result};

impl EventBusClient {
    /// The Socket.IO connection, while there is one.
    #[cfg(feature = "socketio")]
    pub(super) fn socketio_handle(&self) -> Option<Arc<crate::socketio::SocketIo>> {
        self.inner
            .socketio
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The Socket.IO connection a room call goes through, or why there is none.
    #[cfg(feature = "socketio")]
    fn rooms(&self, room: &str) -> Result<Arc<crate::socketio::SocketIo>> {
        if room.is_empty() {
            return Err(Error::validation("Room name cannot be empty"));
        }
        self.socketio_handle()
            .ok_or_else(|| Error::new(ErrorKind::Connection, crate::socketio::NOT_CONNECTED))
    }

    #[cfg(not(feature = "socketio"))]
    fn rooms(&self, _room: &str) -> Result<std::convert::Infallible> {
        if self.inner.settings.socketio.is_none() {
            Err(Error::new(ErrorKind::Connection, "Socket.IO not connected"))
        } else {
            Err(Error::new(
                ErrorKind::Unsupported,
                "Socket.IO not connected: this build of the event bus has no socketio feature",
            ))
        }
    }

    /// `joinRoom(room)`: join a room on the Socket.IO hub (acknowledged by the hub). The room
    /// is rejoined after every reconnect. Fails with `Socket.IO not connected` without
    /// `client` config or while the hub is unreachable.
    pub async fn join_room(&self, room: &str) -> Result<()> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.join_room(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// `leaveRoom(room)`: leave a room on the hub.
    pub async fn leave_room(&self, room: &str) -> Result<()> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.leave_room(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// `getRoomMembers(room)`: the members the hub reports for a room.
    pub async fn get_room_members(&self, room: &str) -> Result<Vec<String>> {
        let sio = self.rooms(room)?;
        #[cfg(feature = "socketio")]
        return sio.get_room_members(room).await;
        #[cfg(not(feature = "socketio"))]
        match sio {}
    }

    /// Rooms joined through this client (rejoined after reconnects).
    pub fn joined_rooms(&self) -> Vec<String> {
        #[cfg(feature = "socketio")]
        if let Some(sio) = self.socketio_handle() {
            return sio.state().rooms();
        }
        Vec::new()
    }
}
