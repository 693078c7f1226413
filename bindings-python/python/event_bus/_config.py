"""Config and option plumbing shared by the blocking and asyncio clients."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional

# keyword argument -> path in the camelCase EventBusConfig (the same dict the Node package takes)
_CONFIG_KEYWORDS: dict[str, tuple[str, ...]] = {
    "service_name": ("serviceName",),
    "service_version": ("serviceVersion",),
    "transport": ("transport",),
    "log_level": ("logLevel",),
    "log_format": ("logFormat",),
    "disconnect_timeout": ("disconnectTimeout",),
    "redis_url": ("redis", "url"),
    "redis_host": ("redis", "host"),
    "redis_port": ("redis", "port"),
    "redis_username": ("redis", "username"),
    "redis_password": ("redis", "password"),
    "redis_db": ("redis", "db"),
    "redis_tls": ("redis", "tls"),
    "connect_timeout": ("redis", "connectTimeout"),
    "publish_timeout": ("redis", "publishTimeout"),
    "offline_queue_size": ("redis", "offlineQueueSize"),
    "heartbeat_interval": ("redis", "heartbeatInterval"),
    "reconnect_delay": ("redis", "reconnectDelay"),
    "reconnect_delay_max": ("redis", "reconnectDelayMax"),
    "redis": ("redis",),
    "client": ("client",),
    "websocket": ("websocket",),
    "performance": ("performance",),
    "validation": ("validation",),
}

_SUB_KEYWORDS: dict[str, str] = {
    "timeout": "timeout",
    "retry_on_error": "retryOnError",
    "max_retries": "maxRetries",
    "retry_delay": "retryDelay",
    "max_retry_delay": "maxRetryDelay",
    "filter": "filter",
    "concurrency": "concurrency",
    "max_pending": "maxPending",
    "priority": "priority",
    "metadata": "metadata",
}


def _config_value(value: Any) -> Any:
    """JSON for config values json cannot write: bytes (a PEM file read in binary mode, as
    redis-py's ``ssl_ca_data`` takes) become their UTF-8 text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise TypeError("config bytes must be UTF-8 text (PEM), not binary data") from None
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def config_json(config: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any]) -> str:
    """Merge a camelCase config dict with keyword arguments (keywords win) into JSON."""
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, not {type(config).__name__}")
    try:
        cfg: dict[str, Any] = json.loads(json.dumps(dict(config or {}), default=_config_value))
    except (TypeError, ValueError) as e:
        raise TypeError(f"config is not JSON serializable: {e}") from None
    for key, value in kwargs.items():
        if value is None:
            continue
        path = _CONFIG_KEYWORDS.get(key)
        if path is None:
            raise TypeError(f"unexpected config keyword {key!r}")
        node = cfg
        for part in path[:-1]:
            node = node.setdefault(part, {})
        if isinstance(value, Mapping) and isinstance(node.get(path[-1]), Mapping):
            node[path[-1]] = {**node[path[-1]], **value}
        else:
            node[path[-1]] = value
    try:
        return json.dumps(cfg, allow_nan=False, default=_config_value)
    except (TypeError, ValueError) as e:
        raise TypeError(f"config is not JSON serializable: {e}") from None


def subscription_options_json(
    options: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any]
) -> Optional[str]:
    """Subscription options (snake_case keywords or a camelCase dict) as the core's JSON.

    Times (``timeout``, ``retry_delay``, ``max_retry_delay``) are milliseconds, as in the Node
    package and the config.
    """
    out: dict[str, Any] = {}
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict, not {type(options).__name__}")
        for k, v in options.items():
            out[_SUB_KEYWORDS.get(k, k)] = v
    for k, v in kwargs.items():
        camel = _SUB_KEYWORDS.get(k)
        if camel is None:
            raise TypeError(
                f"unexpected subscription option {k!r} (expected one of: {', '.join(_SUB_KEYWORDS)})"
            )
        if v is not None:
            out[camel] = v
    for key in ("retryOnError",):
        if key in out and not isinstance(out[key], bool):
            raise TypeError("retry_on_error must be bool")
    for key in ("timeout", "maxRetries", "retryDelay", "maxRetryDelay", "concurrency", "maxPending"):
        if key in out:
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise TypeError(f"{key} must be a number, not {type(v).__name__}")
            if v < 0:
                from event_bus._native import ValidationError

                raise ValidationError(f"{key} must not be negative")
            out[key] = int(v)
    if not out:
        return None
    try:
        return json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise TypeError(f"subscription options are not JSON serializable: {e}") from None


def check_handler(handler: Callable[..., Any]) -> None:
    if not callable(handler):
        raise TypeError(f"handler must be callable, not {type(handler).__name__}")
