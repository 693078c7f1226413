//! The wait before a reconnect attempt, the same for the Redis links and the Socket.IO
//! connection: announce the attempt with its delay (a `reconnecting` state event), then keep
//! serving what arrives meanwhile (requests are queued or refused, never left hanging) until
//! the attempt is due.

use std::pin::Pin;
use std::time::Duration;

use tokio::time::Sleep;

use crate::state::{Emitter, Link, StateEvent};

/// Announce reconnect attempt `attempt` of `connection`, due after `delay`, and return the
/// sleep that ends when it is due: the caller's `select!` loop breaks on it and serves its
/// channels in the other arms.
pub(crate) fn announce_attempt(
    emitter: &Emitter,
    connection: Link,
    attempt: u64,
    delay: Duration,
) -> Pin<Box<Sleep>> {
    emitter.emit(StateEvent::Reconnecting {
        connection,
        attempt,
        delay: delay.as_millis() as u64,
    });
    Box::pin(tokio::time::sleep(delay))
}
