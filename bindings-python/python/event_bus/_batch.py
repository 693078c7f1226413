"""Runs an in-order batch of events on the event loop once one of its handlers is a coroutine.

The native side (``_native.AioBatch``) calls the handlers of a batch one after another inside a
single ``call_soon_threadsafe`` callback. When a handler returns an awaitable, the rest of the
batch continues here, in one task: await it, report the outcome, and let ``batch.step()`` run
the following events until the next awaitable. So ``async def`` handlers cost one task per
batch, not one per event, and each event starts only after the previous one finished.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Optional, Protocol, Set


class _Batch(Protocol):
    def step(self) -> Optional[Awaitable[Any]]: ...
    def ok(self) -> None: ...
    def fail(self, exc: BaseException) -> None: ...


# Strong references: the loop only keeps weak ones to its tasks.
_TASKS: Set["asyncio.Task[None]"] = set()


async def _run(batch: _Batch, first: Awaitable[Any]) -> None:
    pending: Optional[Awaitable[Any]] = first
    while pending is not None:
        try:
            await pending
        except BaseException as e:  # noqa: BLE001 - every outcome is reported to the core
            batch.fail(e)
            if not isinstance(e, Exception):
                raise  # cancelled / KeyboardInterrupt: the rest of the batch fails in the core
        else:
            batch.ok()
        pending = batch.step()


def start(loop: asyncio.AbstractEventLoop, batch: _Batch, first: Awaitable[Any], name: str) -> None:
    task = loop.create_task(_run(batch, first), name=name)
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
