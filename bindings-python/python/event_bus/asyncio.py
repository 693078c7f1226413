"""The asyncio client: ``await`` everything; handlers may be ``async def``.

Handlers run on the event loop that called :meth:`EventBusClient.subscribe`; coroutine handlers
become tasks on that loop and the subscription's ``timeout`` / ``retry_on_error`` apply to them
(past its timeout, the task of a coroutine whose event ran on its own is cancelled; one
running inside an in-order batch is not, and a retry may overlap it; a run that finishes after
its timeout counts once in ``get_stats()["handlersLateCompleted"]``). The Rust runtime never
blocks the loop: results and events are queued in Rust and handed over in batches, one
``call_soon_threadsafe`` per batch. In-order subscriptions (``concurrency=1``, the default)
run a batch of queued events one after another in a single task, each starting after the
previous one finished.
"""

from __future__ import annotations

import asyncio
import inspect
from types import TracebackType
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Type, Union

from event_bus import _native
from event_bus import BatchItem, Event, PublishResult, Subscription
from event_bus._config import check_handler, config_json, subscription_options

__all__ = ["EventBusClient"]


class EventBusClient:
    """Asyncio event bus client.

    >>> async with EventBusClient({"serviceName": "w", "redis": {"url": "redis://127.0.0.1"}}) as bus:
    ...     async def on_event(ev: Event) -> None: ...
    ...     await bus.subscribe("photo.*", on_event)
    ...     await bus.publish("photo.uploaded", {"photoId": "p1"})
    """

    def __init__(self, config: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        self._native = _native.NativeClient(config_json(config, kwargs))
        self._bridges: dict[int, _native.LoopBridge] = {}
        # Coroutine handlers run in tasks of this name, so disconnect() knows a handler called it.
        self._task_name = f"event_bus handler {id(self):x}"

    def _bridge(self) -> "tuple[asyncio.AbstractEventLoop, _native.LoopBridge]":
        loop = asyncio.get_running_loop()
        b = self._bridges.get(id(loop))
        if b is None or b.event_loop is not loop:
            b = _native.LoopBridge(loop, self._task_name)
            self._bridges[id(loop)] = b
        return loop, b

    def _future(self) -> "tuple[asyncio.Future[Any], _native.LoopBridge]":
        loop, b = self._bridge()
        return loop.create_future(), b

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        fut, b = self._future()
        self._native.connect_async(b, fut)
        await fut

    async def disconnect(self) -> None:
        """Stop receiving, let queued handlers finish (up to ``disconnectTimeout``) and close the
        connections. Called from one of this client's coroutine handlers, it does not wait for
        handlers (that one could not finish first): queued events are dropped. Idempotent."""
        task = asyncio.current_task()
        from_handler = task is not None and task.get_name() == self._task_name
        fut, b = self._future()
        self._native.disconnect_async(b, fut, from_handler)
        await fut

    close = disconnect

    def is_connected(self) -> bool:
        return self._native.is_connected()

    async def __aenter__(self) -> "EventBusClient":
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.disconnect()

    # ------------------------------------------------------------------ publishing

    async def publish(
        self,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        """Publish one event; options as :meth:`event_bus.EventBusClient.publish` takes them."""
        fut, b = self._future()
        self._native.publish_async(b, fut, event_type, data, options, **kwargs)
        r: PublishResult = await fut
        return r

    async def publish_to_room(
        self,
        room: str,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        """Publish on the Redis channel ``room:<room>``; the Socket.IO hub forwards the event to
        the room's members."""
        return await self.publish(event_type, data, options, **{**kwargs, "room": room})

    async def publish_to_user(
        self,
        user_id: str,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        return await self.publish(event_type, data, options, **{**kwargs, "user_id": user_id})

    async def broadcast(
        self,
        event_type: str,
        data: Any,
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> PublishResult:
        return await self.publish(event_type, data, options, **{**kwargs, "broadcast": True})

    async def publish_batch(self, events: Iterable[BatchItem]) -> List[PublishResult]:
        fut, b = self._future()
        self._native.publish_batch_async(b, fut, events)
        r: List[PublishResult] = await fut
        return r

    # ------------------------------------------------------------------ subscribing

    async def subscribe(
        self,
        pattern: Union[str, Sequence[str]],
        handler: Callable[[Event], Any],
        options: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> Subscription:
        """Subscribe ``handler`` (plain or ``async def``, taking an :class:`Event`); options as
        :meth:`event_bus.EventBusClient.subscribe` takes them."""
        opts = subscription_options(options, kwargs)
        fut, b = self._future()
        self._native.subscribe_async(b, fut, pattern, handler, opts)
        r: Subscription = await fut
        return r

    async def unsubscribe(self, subscription_id: str) -> bool:
        fut, b = self._future()
        self._native.unsubscribe_async(b, fut, subscription_id)
        r: bool = await fut
        return r

    async def dead_letters(
        self, event_type: str, group: str, count: Optional[int] = None
    ) -> List[dict[str, Any]]:
        """As :meth:`event_bus.EventBusClient.dead_letters`."""
        fut, b = self._future()
        self._native.dead_letters_async(b, fut, "list", event_type, group, count)
        r: List[dict[str, Any]] = await fut
        return r

    async def replay_dead_letters(
        self, event_type: str, group: str, count: Optional[int] = None
    ) -> int:
        """As :meth:`event_bus.EventBusClient.replay_dead_letters`."""
        fut, b = self._future()
        self._native.dead_letters_async(b, fut, "replay", event_type, group, count)
        r: int = await fut
        return r

    async def purge_dead_letters(self, event_type: str, group: str) -> int:
        """As :meth:`event_bus.EventBusClient.purge_dead_letters`."""
        fut, b = self._future()
        self._native.dead_letters_async(b, fut, "purge", event_type, group)
        r: int = await fut
        return r

    # ------------------------------------------------------------------ rooms, monitoring

    async def join_room(self, room: str) -> None:
        """Join ``room`` on the Socket.IO hub (needs the ``client`` config); rejoined after every
        reconnect. Raises as :meth:`event_bus.EventBusClient.join_room`: ``ValidationError``,
        ``ConnectionError`` (``Socket.IO not connected``), ``ProtocolError`` (hub refusal),
        ``TimeoutError``."""
        fut, b = self._future()
        self._native.room_async(b, fut, "join", room)
        await fut

    async def leave_room(self, room: str) -> None:
        """Leave ``room`` on the hub; raises as :meth:`join_room`."""
        fut, b = self._future()
        self._native.room_async(b, fut, "leave", room)
        await fut

    async def get_room_members(self, room: str) -> List[str]:
        """The members of ``room`` as the hub reports them; raises as :meth:`join_room`."""
        fut, b = self._future()
        self._native.room_async(b, fut, "members", room)
        r: List[str] = await fut
        return r

    async def health_check(self) -> dict[str, Any]:
        fut, b = self._future()
        self._native.health_check_async(b, fut)
        r: dict[str, Any] = await fut
        return r

    async def get_stats(self) -> dict[str, Any]:
        return self._native.get_stats()

    def metrics(self) -> str:
        """The Prometheus text exposition of this client, as the blocking client's
        :meth:`event_bus.EventBusClient.metrics`. A plain method: it does no I/O, so a
        ``prometheus_client`` collector or an HTTP handler can call it from any thread."""
        return self._native.metrics()

    def on_state(self, callback: Callable[[dict[str, Any]], Any]) -> int:
        """Call ``callback(state)`` (plain or ``async def``) on this loop for every connection
        state change. Returns an id for :meth:`off_state`."""
        check_handler(callback, "callback")
        loop = asyncio.get_running_loop()

        def forward(state: dict[str, Any]) -> None:
            def run() -> None:
                r = callback(state)
                if inspect.isawaitable(r):
                    asyncio.ensure_future(r)

            try:
                loop.call_soon_threadsafe(run)
            except RuntimeError:
                pass  # loop closed

        return self._native.on_state(forward)

    def off_state(self, listener_id: int) -> bool:
        return self._native.off_state(listener_id)

    def __repr__(self) -> str:
        return f"<event_bus.asyncio.EventBusClient service={self._native.service_name!r} connected={self.is_connected()}>"
