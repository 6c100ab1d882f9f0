"""Parquet bucketed by message id: a layout a load can analyse one part at a time.

A load's heavy work is per message (every message's events and outbox records grouped and
joined), and its result, the summary table, is a sum over messages. So when every message's
events and outbox records lie in the same part, the parts can be analysed one after another,
each in memory, and their summaries added up: the same result, without the spilling that makes
one pass over 100 million lines slow, and at a memory bounded by the part's size.

``Dataset.to_parquet(directory, buckets=K)`` writes ``events/bucket=N/`` and ``outbox/bucket=N/``
(N from 0 to K-1, the bucket of a row a function of its message id: ``BUCKET_KEYS``,
``bucket_sql``) and, in each of the two folders, a ``_BUCKETS`` file saying so (``marker``).
``load`` reads logs bucket by bucket (``split_by_bucket``) only when both carry that file with
the same bucketing: a ``bucket=N`` folder written by anything else may hold any message.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from typing import Any

from rbmtools.analysis.inputs import LogFiles
from rbmtools.errors import ValidationError

__all__ = [
    "BUCKET_KEYS",
    "MARKER",
    "MAX_BUCKETS",
    "bucket_sql",
    "check_buckets",
    "marker",
    "split_by_bucket",
    "write_bucketed",
]

#: The file in a bucketed log's folder that says how it was bucketed (no suffix, and a leading
#: underscore, so no reader takes it for a log).
MARKER = "_BUCKETS"
#: The version of ``BUCKET_KEYS``/``bucket_sql``: a layout bucketed otherwise is not split.
SCHEME = "rbmtools-md5-v1"

#: More buckets than this only adds passes: a bucket of a few million lines already fits.
MAX_BUCKETS = 4096

_BUCKET_DIR = re.compile(r"[/\\]bucket=(\d+)[/\\][^/\\]+$")


def check_buckets(buckets: int) -> int:
    """``buckets`` if it is a usable number of buckets, else a ``ValidationError``."""
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


def marker(buckets: int) -> str:
    """The text of the ``MARKER`` file of a log bucketed into ``buckets``."""
    return json.dumps({"scheme": SCHEME, "buckets": check_buckets(buckets)}) + "\n"


def write_bucketed(engine: Any, query: str, folder: str, log: str, buckets: int) -> str:
    """Write the rows of ``query`` (DuckDB SQL over ``engine``, a ``DuckDBEngine``; the flat
    columns of ``log``, "events" or "outbox") to ``folder/bucket=N/`` and mark ``folder`` as
    bucketed (the ``MARKER`` last: a layout cut short is not split). What ``folder`` held is
    replaced. Returns ``folder``."""
    bucket = bucket_sql(BUCKET_KEYS[log], buckets)
    os.makedirs(folder, exist_ok=True)
    bucketed = f"SELECT *, {bucket} AS bucket FROM ({query})"  # noqa: S608 (sql.py's text)
    engine.write_parquet(bucketed, folder, partition_by="bucket")
    with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as handle:
        handle.write(marker(buckets))
    return folder


def _read_marker(folder: str) -> int | None:
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as handle:
            found = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("scheme") != SCHEME:
        return None
    buckets = found.get("buckets")
    return buckets if isinstance(buckets, int) and not isinstance(buckets, bool) else None


def _by_bucket(files: tuple[str, ...]) -> tuple[int, dict[int, list[str]]] | None:
    """(the bucket count, the files per bucket) of a log that ``to_parquet`` bucketed: every
    file in a ``bucket=N`` folder of one folder whose ``MARKER`` says so; else None."""
    parts: dict[int, list[str]] = defaultdict(list)
    roots = set()
    for path in files:
        found = _BUCKET_DIR.search(path)
        if found is None:
            return None
        roots.add(path[: found.start()])
        parts[int(found.group(1))].append(path)
    counts = {_read_marker(root) for root in roots}
    if len(roots) != 1 or None in counts:
        return None
    (buckets,) = counts
    return (buckets, parts) if all(b < buckets for b in parts) else None


def split_by_bucket(events: LogFiles, outbox: LogFiles) -> list[tuple[LogFiles, LogFiles]] | None:
    """The two logs as (events, outbox) per bucket, in bucket order, when both were written
    bucketed the same way (``MARKER``), every file in a ``bucket=N`` folder; else None: a log
    that is not wholly bucketed may hold any message anywhere."""
    if events.jsonl or outbox.jsonl or not events.parquet or not outbox.parquet:
        return None
    found_events, found_outbox = _by_bucket(events.parquet), _by_bucket(outbox.parquet)
    if found_events is None or found_outbox is None or found_events[0] != found_outbox[0]:
        return None
    event_parts, outbox_parts = found_events[1], found_outbox[1]
    buckets = sorted(set(event_parts) | set(outbox_parts))
    return [
        (
            LogFiles(parquet=tuple(event_parts.get(b, ()))),
            LogFiles(parquet=tuple(outbox_parts.get(b, ()))),
        )
        for b in buckets
    ]
