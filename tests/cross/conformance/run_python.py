#!/usr/bin/env python3
"""Conformance runner of the Python face (blocking client); conformance.py drives it.

    run_python.py CASES_JSON

Reads the expanded cases (``{"client_config", "cases"}``) and prints one JSON line per case,
in order: ``{"name", "outcome": "ok" | CODE, "message"}``. The outcome of a failure is the
exception's ``code`` and the message ``str(exc)``; an exception without a ``code`` (which the
face must never raise) is reported as ``<TypeName>`` so the table shows it.

- config: ``event_bus.EventBusClient(config)``, closed again without connecting;
- subscribe: ``bus.subscribe(pattern, handler, options=options)`` on one connected client of
  ``client_config`` (unsubscribed again when it succeeds);
- publish: ``bus.publish(type, data, options=options)`` on the same client.

Options go as the ``options=`` value, the camelCase dict the Node package takes, exactly as the
case gives them (``None`` for none).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import event_bus


def outcome(call: Callable[[], Any]) -> tuple[str, str]:
    try:
        call()
    except Exception as e:  # noqa: BLE001 - every failure is a row of the table
        code = getattr(e, "code", None)
        return (code if isinstance(code, str) else f"<{type(e).__name__}>"), str(e)
    return "ok", ""


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as f:
        spec: dict[str, Any] = json.load(f)
    bus = event_bus.EventBusClient(spec["client_config"])
    bus.connect()
    try:
        for case in spec["cases"]:
            op = case["op"]
            if op == "config":

                def run() -> None:
                    event_bus.EventBusClient(case["config"]).close()

            elif op == "subscribe":

                def run() -> None:
                    sub = bus.subscribe(case["pattern"], lambda ev: None, options=case.get("options"))
                    bus.unsubscribe(sub.id)

            elif op == "publish":

                def run() -> None:
                    bus.publish(case["type"], case["data"], options=case.get("options"))

            else:
                raise SystemExit(f"unknown op {op!r} in case {case['name']!r}")
            result, message = outcome(run)
            print(json.dumps({"name": case["name"], "outcome": result, "message": message}), flush=True)
    finally:
        bus.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
