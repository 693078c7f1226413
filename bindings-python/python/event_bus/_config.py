"""Config and option plumbing shared by the blocking and asyncio clients."""

from __future__ import annotations

import json
from typing import Any, Callable, Mapping, Optional

from event_bus._native import ConfigError, InvalidArgumentError

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
    "durable": "durable",
}

# keys of the ``durable`` option (consumer group membership) in snake_case -> camelCase
_DURABLE_KEYWORDS: dict[str, str] = {
    "max_deliveries": "maxDeliveries",
    "min_idle_time": "minIdleTime",
    "claim_interval": "claimInterval",
    "start_from": "startFrom",
    "idempotent_ttl": "idempotentTtl",
}


def _durable(value: Any) -> Any:
    """The ``durable`` option with camelCase keys (a value that is not a dict goes as it is:
    the core refuses it)."""
    if not isinstance(value, Mapping):
        return value
    return {(_DURABLE_KEYWORDS.get(k, k) if isinstance(k, str) else k): v for k, v in value.items()}


def _config_value(value: Any) -> Any:
    """JSON for config values json cannot write: bytes (a PEM file read in binary mode, as
    redis-py's ``ssl_ca_data`` takes) become their UTF-8 text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgumentError(
                "config bytes must be UTF-8 text (a PEM certificate), not binary data"
            ) from None
    raise InvalidArgumentError(f"Object of type {type(value).__name__} is not JSON serializable")


def _dumps(cfg: Any) -> str:
    """The config as JSON. A value JSON cannot carry is an InvalidArgumentError; NaN and the
    infinities (no JSON number) a ConfigError. What the values mean is the core's to judge."""
    try:
        return json.dumps(cfg, allow_nan=False, default=_config_value)
    except InvalidArgumentError:
        raise
    except TypeError as e:  # keys json cannot write (a tuple key, say)
        raise InvalidArgumentError(f"config is not JSON serializable: {e}") from None
    except ValueError as e:  # NaN / infinity, a reference cycle
        raise ConfigError(f"config is not JSON serializable: {e}") from None


def config_json(config: Optional[Mapping[str, Any]], kwargs: Mapping[str, Any]) -> str:
    """Merge a camelCase config dict with keyword arguments (keywords win) into JSON.

    Keywords are only names for places in the config (``redis_host`` is ``redis.host``); their
    values, like the dict's, go to the core unchecked, and the core judges them.
    """
    if config is not None and not isinstance(config, Mapping):
        raise InvalidArgumentError(f"config must be a dict, not {type(config).__name__}")
    cfg: dict[str, Any] = json.loads(_dumps(dict(config or {})))
    for key, value in kwargs.items():
        if value is None:
            continue
        path = _CONFIG_KEYWORDS.get(key)
        if path is None:
            raise InvalidArgumentError(
                f"unexpected config keyword {key!r} (expected one of: {', '.join(_CONFIG_KEYWORDS)})"
            )
        node = cfg
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                # Not a section (absent, or a value the core will refuse): the keyword's
                # section replaces it.
                child = node[part] = {}
            node = child
        if isinstance(value, Mapping) and isinstance(node.get(path[-1]), Mapping):
            node[path[-1]] = {**node[path[-1]], **value}
        else:
            node[path[-1]] = value
    return _dumps(cfg)


def subscription_options(options: Any, kwargs: Mapping[str, Any]) -> Any:
    """Subscription options (a camelCase dict and/or snake_case keywords, which win) with
    camelCase keys, for the core; ``None`` for none.

    Only names are mapped: values go to the core as given (times are milliseconds, as in the
    Node package), and the core judges them. A key it does not know it ignores, with a warning
    naming it. Options that are not a dict also go as they are: the core refuses them.
    """
    if options is not None and not isinstance(options, Mapping):
        return options
    out: dict[Any, Any] = {}
    for k, v in (options or {}).items():
        out[_SUB_KEYWORDS.get(k, k) if isinstance(k, str) else k] = v
    for k, v in kwargs.items():
        out[_SUB_KEYWORDS.get(k, k)] = v
    if options is None and not out:
        return None
    if "durable" in out:
        out["durable"] = _durable(out["durable"])
    return out


def check_handler(handler: Callable[..., Any], what: str = "handler") -> None:
    if not callable(handler):
        raise InvalidArgumentError(f"{what} must be callable, not {type(handler).__name__}")
