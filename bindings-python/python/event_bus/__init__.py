"""Event bus client over Redis pub/sub (Rust core), for Python workers.

Two clients, as redis-py does it:

- :class:`event_bus.EventBusClient`: blocking. Handlers are plain callables that run on one
  dispatcher thread per client, in order per subscription. ``run_forever()`` parks a worker
  process until Ctrl-C / SIGTERM and then disconnects cleanly.
- :class:`event_bus.asyncio.EventBusClient`: ``await`` everything; handlers may be ``async def``
  and run on the event loop that subscribed.

Both take the same config dict as the Node package (``{"serviceName": ..., "redis": {...}}``)
and/or keyword arguments (``service_name=``, ``redis_url=``, ``redis_host=``, ...), and both
are context managers. Times in options are milliseconds, as in the Node package.

Rooms go through the platform's Socket.IO hub, configured as in the Node package:
``client={"url": ..., "authToken": ..., "reconnection": True, "reconnectionDelay": 1000,
"reconnectionDelayMax": 5000, "reconnectionAttempts": ..., "timeout": 20000}`` and optionally
``websocket={"transports": ["websocket", "polling"]}`` (the default: WebSocket, long-polling as
the fallback). With ``client`` set, ``connect()`` also connects to the hub: a hub that refuses the
token raises :class:`ConnectionError`; an unreachable hub does not fail ``connect()`` (unless
``"reconnection": False``) but is retried in the background, ``health_check()`` says
``degraded`` meanwhile and room calls raise :class:`ConnectionError` ``Socket.IO not
connected``. Joined rooms and subscriptions are restored after every reconnect to the hub. An
event that reaches a subscription both through Redis and through the hub runs its handler once.

Options and config values are judged by the Rust core alone (types, ranges, defaults): this
package only maps snake_case keyword names to the camelCase keys and hands the values over as
JSON. Millisecond values may be fractional (rounded up to the next whole ms); ``None`` means
absent; a key the core does not know is ignored with a warning naming it.

Errors are exceptions, every one an :class:`EventBusError` with ``code`` (the core's error code,
such as ``"VALIDATION_ERROR"``) and ``event_id`` (the event of a failed publish, else ``None``);
``str(exc)`` is the core's message. The subclasses also derive from the built-in exception that
Python code would catch for such a failure:

- :class:`ValidationError` (``ValueError``): an event, pattern or option broke a rule;
- :class:`ConfigError` (``ValueError``): the client configuration is incomplete or malformed;
- :class:`InvalidArgumentError` (``TypeError``): a value of a kind the call cannot take (not
  callable, not JSON, bytes that are not UTF-8 text);
- :class:`NotConnectedError`: the call needs ``connect()`` first;
- :class:`ConnectionError` (``builtins.ConnectionError``): Redis or the hub is unreachable;
- :class:`TimeoutError` (``builtins.TimeoutError``): a deadline passed;
- :class:`PublishError`, with :class:`QueueFullError` and :class:`OutcomeUnknownError`;
- :class:`ClosedError`: the client was disconnected while the call was pending;
- :class:`ProtocolError`: Redis or the hub refused the call or answered nonsense;
- :class:`PermissionDeniedError` (``builtins.PermissionError``): the ACL refused the command;
- :class:`NotSupportedError` (``NotImplementedError``): not available in this build;
- :class:`InternalError`: a bug (a Rust panic or a broken invariant).

The underlying failure, when there is one (an ``OSError`` for I/O), is ``__cause__``. Logs go
to ``logging.getLogger("event_bus")``.
"""

from __future__ import annotations

import atexit
import inspect
import logging
import signal
import threading
from types import TracebackType
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Type, Union

from event_bus import _native
from event_bus._config import check_handler, config_json, subscription_options
from event_bus._native import (
    ClosedError,
    ConfigError,
    ConnectionError,
    Delivery,
    Event,
    EventBusError,
    InternalError,
    InvalidArgumentError,
    NotConnectedError,
    NotSupportedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    ProtocolError,
    PublishError,
    PublishResult,
    QueueFullError,
    Subscription,
    TimeoutError,
    ValidationError,
    matches_pattern,
)

__all__ = [
    "EventBusClient",
    "Event",
    "Delivery",
    "PublishResult",
    "Subscription",
    "EventBusError",
    "ValidationError",
    "ConfigError",
    "InvalidArgumentError",
    "NotConnectedError",
    "ConnectionError",
    "TimeoutError",
    "PublishError",
    "QueueFullError",
    "OutcomeUnknownError",
    "ClosedError",
    "ProtocolError",
    "PermissionDeniedError",
    "NotSupportedError",
    "InternalError",
    "matches_pattern",
    "BatchItem",
    "__version__",
]

__version__: str = _native.__version__

logging.getLogger("event_bus").addHandler(logging.NullHandler())
atexit.register(_native._shutdown_logging)

BatchItem = Union[Mapping[str, Any], tuple]  # type: ignore[type-arg]


class EventBusClient:
    """Blocking event bus client.

    >>> with EventBusClient(service_name="worker", redis_url="redis://127.0.0.1:6379") as bus:
    ...     bus.subscribe("photo.*", lambda ev: print(ev.type, ev.data))
    ...     bus.publish("photo.uploaded", {"photoId": "p1"})
    ...     bus.run_forever()

    Every call releases the GIL while it waits and can be interrupted with Ctrl-C. The client
    may be used from any thread, including from inside its own handlers.
    """

    def __init__(self, config: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        self._native = _native.NativeClient(config_json(config, kwargs))
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # ------------------------------------------------------------------ lifecycle

    def connect(self) -> None:
        """Open the publisher and subscriber connections (no-op when already connected)."""
        with self._lock:
            self._native.connect()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._native.run_dispatcher,
                    name=f"event-bus-dispatcher[{self._native.service_name}]",
                    daemon=True,
                )
                self._thread.start()

    def disconnect(self) -> None:
        """Stop receiving, let queued handlers finish (up to ``disconnectTimeout``), close the
        connections and stop the dispatcher thread. Called from a handler (on the dispatcher
        thread), it does not wait for handlers, which that thread runs: queued events are
        dropped. Idempotent."""
        with self._lock:
            self._native.disconnect(from_handler=threading.current_thread() is self._thread)
            self._native.stop_dispatcher()
            t, self._thread = self._thread, None
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5)
        self._stop.set()

    close = disconnect

    def is_connected(self) -> bool:
        return self._native.is_connected()

    def __enter__(self) -> "EventBusClient":
        self.connect()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.disconnect()

    def run_forever(self, install_sigterm: bool = True) -> None:
        """Block until Ctrl-C, SIGTERM (when called on the main thread) or :meth:`stop`, then
        disconnect. Handlers keep running on the dispatcher thread meanwhile."""
        self._stop.clear()
        previous: Any = None
        main = threading.current_thread() is threading.main_thread()
        if install_sigterm and main:
            previous = signal.signal(signal.SIGTERM, lambda signum, frame: self._stop.set())
        try:
            while not self._stop.wait(0.1):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            if install_sigterm and main:
                signal.signal(signal.SIGTERM, previous)
            self.disconnect()

    def stop(self) -> None:
        """Make :meth:`run_forever` return (safe from handlers and other threads)."""
        self._stop.set()

    # ------------------------------------------------------------------ publishing

    def publish(
        self,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        """Publish one event; raises an :class:`EventBusError` subclass on failure (bad
        options: :class:`ValidationError`).

        Options (keywords, or the Node package's camelCase dict as ``options``; keywords win):
        ``trace_id``, ``correlation_id``, ``user_id``, ``room``, ``broadcast``, ``metadata``
        (extra metadata fields), ``persistent`` (also append the event to its type's stream, for
        durable subscriptions) and ``ttl`` (ms it is kept there), ``priority`` (accepted, no
        effect)."""
        return self._native.publish(event_type, data, options, **kwargs)

    def publish_to_room(
        self,
        room: str,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        """Publish on the Redis channel ``room:<room>``; the Socket.IO hub forwards the event to
        the room's members (see :meth:`join_room`)."""
        return self._native.publish(event_type, data, options, **{**kwargs, "room": room})

    def publish_to_user(
        self,
        user_id: str,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        return self._native.publish(event_type, data, options, **{**kwargs, "user_id": user_id})

    def broadcast(
        self,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        return self._native.publish(event_type, data, options, **{**kwargs, "broadcast": True})

    def publish_batch(self, events: Iterable[BatchItem]) -> List[PublishResult]:
        """Publish many events, pipelined and in order. Items are dicts ``{"type", "data", "options"}``
        or tuples ``(type, data[, options])``, options as a camelCase dict. Returns one result
        per item; an item the core refuses or that fails has ``success=False`` and ``error`` set
        (this call does not raise for them). An item that is neither a dict nor a tuple, a value
        JSON cannot carry or bad options raise for the whole call, before anything is sent; the
        exception's note names the item."""
        return self._native.publish_batch(events)

    # ------------------------------------------------------------------ subscribing

    def subscribe(
        self,
        pattern: Union[str, Sequence[str]],
        handler: Callable[[Event], Any],
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> Subscription:
        """Subscribe ``handler`` (a plain callable taking an :class:`Event`) to a Redis glob
        pattern. Options (keywords, or a camelCase dict as ``options``; keywords win):
        ``timeout`` (ms), ``retry_on_error``, ``max_retries``, ``retry_delay`` (ms),
        ``max_retry_delay`` (ms), ``filter``, ``concurrency``, ``max_pending``, ``durable``.
        Bad options raise :class:`ValidationError`; a handler that is not a plain callable
        :class:`InvalidArgumentError`.

        ``durable={"group": ..., ...}`` reads the event type's stream (events published with
        ``persistent=True``) as a member of that consumer group; ``pattern`` is then one exact
        event type or a list of them. Its keys: ``group`` (required), ``consumer``,
        ``max_deliveries``, ``min_idle_time`` (ms), ``claim_interval`` (ms), ``start_from``
        (``"new"`` or ``"all"``), ``count``, ``idempotent``, ``idempotent_ttl`` (ms),
        ``block`` (ms); camelCase keys work too. The handler's :attr:`Event.delivery` then
        says which delivery it is."""
        if inspect.iscoroutinefunction(handler):
            raise InvalidArgumentError(
                "async handlers need event_bus.asyncio.EventBusClient; the blocking client runs plain callables"
            )
        return self._native.subscribe(pattern, handler, subscription_options(options, kwargs))

    def unsubscribe(self, subscription_id: str) -> bool:
        return self._native.unsubscribe(subscription_id)

    # ------------------------------------------------------------------ dead letters

    def dead_letters(
        self, event_type: str, group: str, count: Optional[int] = None
    ) -> List[dict[str, Any]]:
        """The events durable group ``group`` gave up on (after ``max_deliveries`` failed
        deliveries), oldest first, at most ``count``: dicts ``{event, error, deliveries,
        failedAt, streamId, originalId}``."""
        return self._native.dead_letters(event_type, group, count)

    def replay_dead_letters(self, event_type: str, group: str, count: Optional[int] = None) -> int:
        """Put the group's dead letters of ``event_type`` back on the type's stream (the group
        gets each again, as a new entry) and remove them; returns how many."""
        return self._native.replay_dead_letters(event_type, group, count)

    def purge_dead_letters(self, event_type: str, group: str) -> int:
        """Delete the group's dead letters of ``event_type``; returns how many."""
        return self._native.purge_dead_letters(event_type, group)

    # ------------------------------------------------------------------ rooms, monitoring

    def join_room(self, room: str) -> None:
        """Join ``room`` on the Socket.IO hub (returns once the hub acknowledged it). Events
        published to the room then reach this client's subscriptions whose pattern matches their
        type. The room is rejoined after every reconnect to the hub.

        Raises :class:`ValidationError` for an empty name, :class:`ConnectionError`
        (``Socket.IO not connected``) without a ``client`` config, after :meth:`disconnect` or
        while the hub is unreachable, :class:`ProtocolError` when the hub refuses,
        :class:`TimeoutError` when it does not answer within ``client.timeout``."""
        self._native.join_room(room)

    def leave_room(self, room: str) -> None:
        """Leave ``room`` on the hub; raises as :meth:`join_room`."""
        self._native.leave_room(room)

    def get_room_members(self, room: str) -> List[str]:
        """The members of ``room`` as the hub reports them; raises as :meth:`join_room`."""
        return self._native.get_room_members(room)

    def health_check(self) -> dict[str, Any]:
        return self._native.health_check()

    def get_stats(self) -> dict[str, Any]:
        return self._native.get_stats()

    def metrics(self) -> str:
        """This client's counters, gauges and latency histograms as Prometheus text exposition
        (version 0.0.4), labelled ``service``, ``transport`` and, per subscription,
        ``subscription`` and ``pattern``. No I/O. See docs/metrics.md."""
        return self._native.metrics()

    def on_state(self, callback: Callable[[dict[str, Any]], Any]) -> int:
        """Call ``callback(state)`` on connection state changes (``{"type": "connected" |
        "disconnected" | "reconnecting" | "gap" | "error", "connection": "publisher" |
        "subscriber" | "socketio", ...}``). Runs on a runtime thread: keep it short. Returns an
        id for :meth:`off_state`."""
        check_handler(callback, "callback")
        return self._native.on_state(callback)

    def off_state(self, listener_id: int) -> bool:
        return self._native.off_state(listener_id)

    def __repr__(self) -> str:
        return f"<event_bus.EventBusClient service={self._native.service_name!r} connected={self.is_connected()}>"
