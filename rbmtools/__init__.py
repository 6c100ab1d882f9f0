"""rbmtools: send, revoke and analyze Google RCS Business Messaging (RBM) traffic.

The public API is re-exported here; ``rbmtools.wire`` holds the protocol itself.
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

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
from rbmtools.errors import ApiError, AuthError, RbmError, SignatureError, ValidationError
from rbmtools.experiment import ExperimentResult, ExperimentSpec, run_experiment
from rbmtools.webhook import Receiver, follow, read_events
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

# The analysis loads DuckDB, lifelines and statsmodels: imported on first use only.
_ANALYSIS_EXPORTS = {"CostPolicy": "CostPolicy", "analyze": "analyze", "load_logs": "load"}


def __getattr__(name: str) -> object:
    if name in _ANALYSIS_EXPORTS:
        from rbmtools import analysis

        value = getattr(analysis, _ANALYSIS_EXPORTS[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rbmtools' has no attribute {name!r}")


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
    "ValidationError",
    "__version__",
    "agent_message",
    "analyze",
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
