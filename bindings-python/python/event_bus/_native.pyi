"""Type stubs of the Rust extension module ``event_bus._native``."""

import asyncio
import builtins
from typing import Any, Callable, Iterable, List, Literal, Optional, Sequence, Union, final

__version__: str

__all__ = [
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
    "NativeClient",
    "LoopBridge",
    "Event",
    "Delivery",
    "PublishResult",
    "Subscription",
    "matches_pattern",
    "_shutdown_logging",
    "__version__",
]

class EventBusError(Exception):
    """Base class of every event bus error."""

    code: str
    event_id: Optional[str]

class ValidationError(EventBusError, ValueError):
    code: str

class ConfigError(EventBusError, ValueError):
    code: str

class InvalidArgumentError(EventBusError, TypeError):
    code: str

class NotConnectedError(EventBusError):
    code: str

class ConnectionError(EventBusError, builtins.ConnectionError):
    code: str

class TimeoutError(EventBusError, builtins.TimeoutError):
    code: str

class PublishError(EventBusError): ...

class QueueFullError(PublishError):
    code: str

class OutcomeUnknownError(PublishError):
    code: str

class ClosedError(EventBusError):
    code: str

class ProtocolError(EventBusError):
    code: str

class PermissionDeniedError(EventBusError, PermissionError):
    code: str

class NotSupportedError(EventBusError, NotImplementedError):
    code: str

class InternalError(EventBusError):
    code: str

@final
class Event:
    """A received event."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def metadata(self) -> dict[str, Any]: ...
    @property
    def channel(self) -> str: ...
    @property
    def pattern(self) -> Optional[str]: ...
    @property
    def source(self) -> Optional[str]: ...
    @property
    def timestamp(self) -> Optional[str]: ...
    @property
    def trace_id(self) -> Optional[str]: ...
    @property
    def correlation_id(self) -> Optional[str]: ...
    @property
    def user_id(self) -> Optional[str]: ...
    @property
    def raw(self) -> str: ...
    @property
    def delivery(self) -> Optional[Delivery]: ...
    def to_dict(self) -> dict[str, Any]: ...

@final
class Delivery:
    """The stream entry a durable subscription's handler runs for."""

    @property
    def attempt(self) -> int: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def group(self) -> str: ...

@final
class PublishResult:
    @property
    def success(self) -> bool: ...
    @property
    def event_id(self) -> str: ...
    @property
    def published_at(self) -> str: ...
    @property
    def delivered_to(self) -> int: ...
    @property
    def channel(self) -> Optional[str]: ...
    @property
    def error(self) -> Optional[EventBusError]: ...
    def __bool__(self) -> bool: ...

@final
class Subscription:
    @property
    def id(self) -> str: ...
    @property
    def pattern(self) -> str: ...
    @property
    def options(self) -> dict[str, Any]: ...
    @property
    def created_at(self) -> str: ...
    @property
    def active(self) -> bool: ...

@final
class LoopBridge:
    def __new__(cls, event_loop: asyncio.AbstractEventLoop, task_name: str) -> LoopBridge: ...
    @property
    def event_loop(self) -> asyncio.AbstractEventLoop: ...

_Fut = asyncio.Future[Any]

@final
class NativeClient:
    def __new__(cls, config_json: str) -> NativeClient: ...
    @property
    def service_name(self) -> str: ...
    def is_connected(self) -> bool: ...
    def connect(self) -> None: ...
    def disconnect(self, from_handler: bool = False) -> None: ...
    def run_dispatcher(self) -> None: ...
    def stop_dispatcher(self) -> None: ...
    def publish(
        self, event_type: str, data: Any, options: Optional[Any] = None, **kwargs: Any
    ) -> PublishResult: ...
    def publish_batch(self, items: Iterable[Any]) -> List[PublishResult]: ...
    def subscribe(
        self,
        pattern: Union[str, Sequence[str]],
        handler: Callable[[Event], Any],
        options: Optional[Any] = None,
    ) -> Subscription: ...
    def unsubscribe(self, subscription_id: str) -> bool: ...
    def dead_letters(
        self, event_type: str, group: str, count: Optional[int] = None
    ) -> List[dict[str, Any]]: ...
    def replay_dead_letters(self, event_type: str, group: str, count: Optional[int] = None) -> int: ...
    def purge_dead_letters(self, event_type: str, group: str) -> int: ...
    def join_room(self, room: str) -> None: ...
    def leave_room(self, room: str) -> None: ...
    def get_room_members(self, room: str) -> List[str]: ...
    def health_check(self) -> dict[str, Any]: ...
    def get_stats(self) -> dict[str, Any]: ...
    def metrics(self) -> str: ...
    def on_state(self, callback: Callable[[dict[str, Any]], Any]) -> int: ...
    def off_state(self, listener_id: int) -> bool: ...
    def connect_async(self, bridge: LoopBridge, future: _Fut) -> None: ...
    def disconnect_async(self, bridge: LoopBridge, future: _Fut, from_handler: bool = False) -> None: ...
    def publish_async(
        self,
        bridge: LoopBridge,
        future: _Fut,
        event_type: str,
        data: Any,
        options: Optional[Any] = None,
        **kwargs: Any,
    ) -> None: ...
    def publish_batch_async(self, bridge: LoopBridge, future: _Fut, items: Iterable[Any]) -> None: ...
    def subscribe_async(
        self,
        bridge: LoopBridge,
        future: _Fut,
        pattern: Union[str, Sequence[str]],
        handler: Callable[[Event], Any],
        options: Optional[Any] = None,
    ) -> None: ...
    def unsubscribe_async(self, bridge: LoopBridge, future: _Fut, subscription_id: str) -> None: ...
    def room_async(
        self, bridge: LoopBridge, future: _Fut, op: Literal["join", "leave", "members"], room: str
    ) -> None: ...
    def dead_letters_async(
        self,
        bridge: LoopBridge,
        future: _Fut,
        op: Literal["list", "replay", "purge"],
        event_type: str,
        group: str,
        count: Optional[int] = None,
    ) -> None: ...
    def health_check_async(self, bridge: LoopBridge, future: _Fut) -> None: ...

def matches_pattern(pattern: str, channel: str) -> bool: ...
def _shutdown_logging() -> None: ...
