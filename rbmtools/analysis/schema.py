"""Names shared by every stage of the analysis: outcomes, group columns and latency bins.

The lifecycle outcomes and revoke methods are those of the log-format document (section 3).
Latency is handed from the engine to Python as counts per fine log-spaced time bin; the bin
arithmetic lives here so the SQL that assigns bins and the Python that reads them agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np

from rbmtools.errors import ValidationError

__all__ = [
    "BINS_PER_DECADE",
    "BIN_FLOOR_SECONDS",
    "GROUP_COLUMNS",
    "OUTCOMES",
    "REVOKE_METHODS",
    "bin_index",
    "bin_seconds",
    "validate_by",
]

#: Every lifecycle outcome, in the order reports list them.
OUTCOMES: tuple[str, ...] = (
    "delivered",
    "delivered_after_revoke",
    "revoked",
    "revoke_failed_undelivered",
    "pending",
    "not_rcs",
)

#: How a revoke was tried: by an API call (DELETE) or by the message's own expiry (TTL).
REVOKE_METHODS: tuple[str, ...] = ("api", "ttl")

#: Lifecycle columns a metric may be grouped by (``day`` is the UTC date of the send).
GROUP_COLUMNS: tuple[str, ...] = (
    "useCase", "trafficType", "experiment", "arm", "policyVersion", "day",
)  # fmt: skip

#: Durations at or below this many seconds fall in bin 0 (shown as 0 s).
BIN_FLOOR_SECONDS = 0.001
#: Bins per factor of ten above the floor: each bin spans 0.46 %, so a quantile read from the
#: bins is within 0.23 % of the exact Kaplan-Meier quantile.
BINS_PER_DECADE = 500


def validate_by(by: str | Iterable[str] | None) -> list[str]:
    """The group columns as a list; ``"useCase,arm"``, ``["useCase", "arm"]`` and the text
    ``'["useCase", "arm"]'`` (what ``papermill -p`` passes for a list) all work."""
    if by is None:
        return []
    if isinstance(by, str) and by.lstrip().startswith("["):
        by = _list_text(by)
    items = [part.strip() for part in by.split(",")] if isinstance(by, str) else list(by)
    items = [item for item in items if item]
    for item in items:
        if item not in GROUP_COLUMNS:
            raise ValidationError("by", item, f"must be one of {', '.join(GROUP_COLUMNS)}")
    if len(set(items)) != len(items):
        raise ValidationError("by", items, "names a column twice")
    return items


def _list_text(text: str) -> list[str]:
    import yaml

    try:
        items = yaml.safe_load(text)
    except yaml.YAMLError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValidationError("by", text, "must be a list of column names")
    return items


def bin_index(seconds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """The bin of each duration, exactly as the SQL assigns it (see ``sql.BIN_EXPRESSION``)."""
    t = np.asarray(seconds, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.floor(np.log10(t / BIN_FLOOR_SECONDS) * BINS_PER_DECADE) + 1
    return np.where(t <= BIN_FLOOR_SECONDS, 0, raw).astype(np.int64)


def bin_seconds(index: int | Sequence[int] | np.ndarray) -> np.ndarray:
    """The time a bin stands for: its geometric centre (0 for bin 0)."""
    b = np.asarray(index, dtype=float)
    centre = BIN_FLOOR_SECONDS * np.power(10.0, (b - 0.5) / BINS_PER_DECADE)
    return np.where(b <= 0, 0.0, centre)


def bin_upper_seconds(index: int) -> float:
    """The upper edge of a bin (a duration at most this long falls in it or earlier)."""
    if index <= 0:
        return BIN_FLOOR_SECONDS
    return BIN_FLOOR_SECONDS * math.pow(10.0, index / BINS_PER_DECADE)
