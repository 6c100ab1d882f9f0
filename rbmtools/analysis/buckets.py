"""Parquet bucketed by message id: a layout a load can analyse one part at a time.

A load's heavy work is per message (every message's events and outbox records grouped and
joined), and its result, the summary table, is a sum over messages. So when every message's
events and outbox records lie in the same part, the parts can be analysed one after another,
each in memory, and their summaries added up: the same result, without the spilling that makes
one pass over 100 million lines slow, and at a memory bounded by the part's size.

``Dataset.to_parquet(directory, buckets=K)`` writes ``events/bucket=N/`` and ``outbox/bucket=N/``
(N from 0 to K-1, the bucket of a message a function of its id: ``BUCKET_KEYS``,
``bucket_sql``); ``load`` reads
such logs bucket by bucket (``split_by_bucket``) when both are bucketed the same way.
"""

from __future__ import annotations

import re
from collections import defaultdict

from rbmtools.analysis.inputs import LogFiles
from rbmtools.errors import ValidationError

__all__ = ["BUCKET_KEYS", "MAX_BUCKETS", "bucket_sql", "check_buckets", "split_by_bucket"]

#: More buckets than this only adds passes: a bucket of a few million lines already fits.
MAX_BUCKETS = 4096

_BUCKET_DIR = re.compile(r"[/\\]bucket=(\d+)[/\\]")


def check_buckets(buckets: int) -> int:
    if isinstance(buckets, bool) or not isinstance(buckets, int) or not 2 <= buckets <= MAX_BUCKETS:
        raise ValidationError("buckets", buckets, f"must be an integer from 2 to {MAX_BUCKETS}")
    return buckets


#: What a row of each log (flat columns, as ``Dataset.to_parquet`` writes them) is bucketed
#: by: its message id, so a message's events and outbox records share a bucket. An event about
#: no message (IS_TYPING, for one) goes by its own identity (its eventId, else its type and
#: time: what tells copies apart), so copies of it share a bucket and such events spread
#: evenly instead of filling one bucket.
BUCKET_KEYS: dict[str, str] = {
    "events": 'COALESCE("messageId", "eventId", "eventType" || CAST("sendTime" AS VARCHAR))',
    "outbox": '"messageId"',
}


def bucket_sql(key: str, buckets: int) -> str:
    """The bucket of the SQL expression ``key`` (DuckDB SQL): MD5 rather than ``HASH``, so
    that a message keeps its bucket across DuckDB versions; a NULL key is bucket 0."""
    return f"COALESCE(CAST(md5_number({key}) % {check_buckets(buckets)} AS INTEGER), 0)"


def _bucket_of(path: str) -> int | None:
    found = _BUCKET_DIR.findall(path)
    return int(found[-1]) if found else None


def _by_bucket(files: tuple[str, ...]) -> dict[int, list[str]] | None:
    parts: dict[int, list[str]] = defaultdict(list)
    for path in files:
        bucket = _bucket_of(path)
        if bucket is None:
            return None
        parts[bucket].append(path)
    return parts


def split_by_bucket(events: LogFiles, outbox: LogFiles) -> list[tuple[LogFiles, LogFiles]] | None:
    """The two logs as (events, outbox) per bucket, in bucket order, when both are bucketed
    Parquet (every file under a ``bucket=N`` directory) with more than one bucket; else
    None: a log that is not wholly bucketed may hold any message anywhere."""
    if events.jsonl or outbox.jsonl or not events.parquet or not outbox.parquet:
        return None
    event_parts, outbox_parts = _by_bucket(events.parquet), _by_bucket(outbox.parquet)
    if event_parts is None or outbox_parts is None:
        return None
    buckets = sorted(set(event_parts) | set(outbox_parts))
    if len(buckets) < 2:
        return None
    return [
        (
            LogFiles(parquet=tuple(event_parts.get(b, ()))),
            LogFiles(parquet=tuple(outbox_parts.get(b, ()))),
        )
        for b in buckets
    ]
