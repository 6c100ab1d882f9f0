"""rbmtools: send, revoke and analyze Google RCS Business Messaging (RBM) traffic.

The public API is re-exported here; ``rbmtools.wire`` holds the protocol itself.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version
from typing import TYPE_CHECKING

from rbmtools.errors import ApiError, AuthError, RbmError, SignatureError, ValidationError
from rbmtools.wire import (
    EventType,
    ShortExpiryWarning,
    TrafficType,
    agent_message,
    format_duration,
    format_timestamp,
    normalize_phone,
    parse_duration,
    parse_timestamp,
)

try:
    __version__ = _version("rbmtools")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

# Everything but the errors and the protocol is imported on first use: the subsystems pull in
# aiohttp, pandas, DuckDB, lifelines and statsmodels, and most commands need only one of them.
_LAZY_EXPORTS: dict[str, tuple[str, str]] = {
    **{
        name: ("rbmtools.client", name)
        for name in (
            "AgentEventResult",
            "OutboxWriter",
            "RbmClient",
            "RetryPolicy",
            "RevokeResult",
            "SendResult",
            "default_client",
            "revoke",
            "send",
            "set_default_client",
        )
    },
    "Emulator": ("rbmtools.emulator", "Emulator"),
    "Receiver": ("rbmtools.webhook", "Receiver"),
    "follow": ("rbmtools.webhook", "follow"),
    "read_events": ("rbmtools.webhook", "read_events"),
    "ExperimentResult": ("rbmtools.experiment", "ExperimentResult"),
    "ExperimentSpec": ("rbmtools.experiment", "ExperimentSpec"),
    "run_experiment": ("rbmtools.experiment", "run_experiment"),
    "CostPolicy": ("rbmtools.analysis", "CostPolicy"),
    "TtlPolicy": ("rbmtools.wire.ttl_policy", "TtlPolicy"),
    "analyze": ("rbmtools.analysis", "analyze"),
    "load_logs": ("rbmtools.analysis", "load"),
    "compact_logs": ("rbmtools.logs", "compact"),
}


def __getattr__(name: str) -> object:
    """Import a lazily exported name on first use (PEP 562) and keep it."""
    try:
        module_name, attribute = _LAZY_EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'rbmtools' has no attribute {name!r}") from None
    value = getattr(import_module(module_name), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_EXPORTS))


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from rbmtools.analysis import CostPolicy, analyze
    from rbmtools.analysis import load as load_logs
    from rbmtools.client import (
        AgentEventResult,
        OutboxWriter,
        RbmClient,
        RetryPolicy,
        RevokeResult,
        SendResult,
        default_client,
        revoke,
        send,
        set_default_client,
    )
    from rbmtools.emulator import Emulator
    from rbmtools.experiment import ExperimentResult, ExperimentSpec, run_experiment
    from rbmtools.logs import compact as compact_logs
    from rbmtools.webhook import Receiver, follow, read_events
    from rbmtools.wire.ttl_policy import TtlPolicy

__all__ = [
    "AgentEventResult",
    "ApiError",
    "AuthError",
    "CostPolicy",
    "Emulator",
    "EventType",
    "ExperimentResult",
    "ExperimentSpec",
    "OutboxWriter",
    "RbmClient",
    "RbmError",
    "Receiver",
    "RetryPolicy",
    "RevokeResult",
    "SendResult",
    "ShortExpiryWarning",
    "SignatureError",
    "TrafficType",
    "TtlPolicy",
    "ValidationError",
    "__version__",
    "agent_message",
    "analyze",
    "compact_logs",
    "default_client",
    "follow",
    "format_duration",
    "format_timestamp",
    "load_logs",
    "normalize_phone",
    "parse_duration",
    "parse_timestamp",
    "read_events",
    "revoke",
    "run_experiment",
    "send",
    "set_default_client",
]
