"""The compact aggregates an engine hands to Python, and nothing more.

Per group: counts of messages and outcomes, revoke attempts and successes by method with their
outcomes, reads, stale and double deliveries (``groups``); deliveries and censorings per fine
log-spaced latency bin (``latency_bins``); reads per bin of time-to-read (``read_bins``). Every
statistic (intervals, Kaplan-Meier, best TTL, bootstrap) is computed from these, so any engine
that produces them gives the same answers. They are sums over the load summary (``rbm_summary``),
so asking for another grouping never reads the logs again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rbmtools.analysis import sql
from rbmtools.analysis.schema import validate_by
from rbmtools.errors import ValidationError

__all__ = ["Aggregates", "GroupAggregates", "compute_aggregates"]

Key = tuple[Any, ...]


def _plain(value: Any) -> Any:
    """A JSON-friendly group value: None for missing, ISO text for dates, Python scalars."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()[:10]
    if hasattr(value, "item"):
        return value.item()
    return value


def _normalise(frame: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    frame = frame.copy()
    for column in by:
        frame[column] = pd.Series(
            [_plain(v) for v in frame[column]], index=frame.index, dtype=object
        )
    return frame


@dataclass(frozen=True)
class GroupAggregates:
    """One group's aggregates: its ``key``, its counts and its bins (sorted by bin)."""

    key: dict[str, Any]
    counts: dict[str, int]
    latency_bins: pd.DataFrame = field(repr=False)
    read_bins: pd.DataFrame = field(repr=False)


@dataclass(frozen=True)
class Aggregates:
    """Aggregates of every group of ``by`` (an empty ``by`` is one group: everything)."""

    by: tuple[str, ...]
    groups: pd.DataFrame
    latency_bins: pd.DataFrame
    read_bins: pd.DataFrame

    @classmethod
    def from_frames(
        cls,
        by: str | Iterable[str] | None,
        groups: pd.DataFrame,
        latency_bins: pd.DataFrame,
        read_bins: pd.DataFrame,
    ) -> Aggregates:
        """Aggregates from the results of an exported script (``rbmtools logs sql``) run in
        BigQuery or Spark SQL: its group counts, latency bins and read bins, grouped by ``by``
        as the script was. Counts that come back NULL (no rows) are 0. Every metric function
        (``revoke_success``, ``delivery_latency``, ``compare_arms``, ...) accepts the result."""
        key = tuple(validate_by(by))
        frames = {"groups": groups, "latency_bins": latency_bins, "read_bins": read_bins}
        for name, frame in frames.items():
            missing = [column for column in key if column not in frame.columns]
            if missing:
                raise ValidationError(name, list(frame.columns), f"lacks the columns {missing}")
            frames[name] = _counts_as_integers(_normalise(frame, key), key)
        return cls(by=key, **frames)

    def _split(self, frame: pd.DataFrame) -> dict[Key, pd.DataFrame]:
        if not self.by:
            return {(): frame}
        out: dict[Key, pd.DataFrame] = {}
        keys = [tuple(row) for row in frame[list(self.by)].itertuples(index=False, name=None)]
        for key, part in frame.groupby(pd.Series(keys, index=frame.index), sort=False):
            out[key] = part
        return out

    def __iter__(self) -> Iterator[GroupAggregates]:
        latency = self._split(self.latency_bins)
        reads = self._split(self.read_bins)
        empty_latency = self.latency_bins.iloc[0:0]
        empty_reads = self.read_bins.iloc[0:0]
        for row in self.groups.to_dict("records"):
            key = tuple(row[c] for c in self.by)
            counts = {k: int(v) for k, v in row.items() if k not in self.by and _is_count(v)}
            yield GroupAggregates(
                key=dict(zip(self.by, key, strict=True)),
                counts=counts,
                latency_bins=latency.get(key, empty_latency).sort_values("bin"),
                read_bins=reads.get(key, empty_reads).sort_values("bin"),
            )

    def __len__(self) -> int:
        return len(self.groups)


def _counts_as_integers(frame: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        if column not in by and numeric and not pd.api.types.is_bool_dtype(frame[column]):
            values = frame[column].fillna(0)
            if values.eq(values.round()).all():
                values = values.astype("int64")
            frame[column] = values
    return frame


def _is_count(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not pd.isna(value)


def compute_aggregates(engine: Any, by: list[str]) -> Aggregates:
    """Sum up the load summary (``rbm_summary``, see ``sql.SUMMARY``) of an engine by ``by``."""
    key = tuple(by)
    groups = engine.df(sql.summary_counts_sql(by))
    latency = engine.df(sql.summary_latency_bins_sql(by))
    reads = engine.df(sql.summary_read_bins_sql(by))
    return Aggregates(
        by=key,
        groups=_normalise(groups, key),
        latency_bins=_normalise(latency, key),
        read_bins=_normalise(reads, key),
    )
