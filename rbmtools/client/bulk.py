"""Bulk sends and revokes: many rows, a thread pool, a rate limit, a progress bar.

Each row is one call on a shared ``RbmClient``. One bad row never stops the batch: its error is
written in its result row (and, for API failures, in the outbox). Results come back as a pandas
DataFrame with one row per input row, in input order, indexed like the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm.auto import tqdm

from rbmtools.client.ratelimit import RateLimiter
from rbmtools.errors import RbmError, ValidationError

if TYPE_CHECKING:
    from rbmtools.client.core import RbmClient

__all__ = ["REVOKE_COLUMNS", "SEND_COLUMNS", "revoke_many", "run_rows", "send_many"]

SEND_COLUMNS = [
    "phone", "message_id", "status", "reachable", "send_time", "expire_time", "attempts", "error",
]  # fmt: skip
REVOKE_COLUMNS = [
    "phone", "message_id", "revoked", "status", "at", "attempts", "inconclusive", "error",
]  # fmt: skip
_SEND_ARGS = (
    "text", "message", "message_id", "ttl", "expire_time", "traffic_type", "use_case",
    "suggestions", "experiment", "arm",
)  # fmt: skip
#: Failures that belong to one row; anything else (KeyboardInterrupt, bugs) stops the batch.
_ROW_ERRORS = (RbmError, ValueError, TypeError, KeyError)


def _missing(value: Any) -> bool:
    """None, NaN and NaT (DataFrame gaps) count as "not given"."""
    if value is None:
        return True
    try:
        return bool(isinstance(value, float | type(pd.NaT)) and pd.isna(value))
    except (TypeError, ValueError):
        return False


def _records(rows: Any) -> tuple[list[dict[str, Any]], pd.Index | None]:
    if isinstance(rows, pd.DataFrame):
        return rows.to_dict("records"), rows.index
    if isinstance(rows, Mapping):
        raise ValidationError(
            "rows", type(rows).__name__, "must be a DataFrame or rows, not one dict"
        )
    return [dict(row) for row in rows], None


def run_rows(
    func: Callable[[dict[str, Any]], dict[str, Any]],
    rows: Any,
    columns: list[str],
    *,
    concurrency: int = 8,
    rate: float | None = None,
    progress: bool = True,
    desc: str = "calls",
) -> pd.DataFrame:
    """Apply ``func`` to every row on a thread pool; one result row per input row."""
    if concurrency < 1:
        raise ValidationError("concurrency", concurrency, "must be at least 1")
    records, index = _records(rows)
    limiter = RateLimiter(rate) if rate else None
    results: list[dict[str, Any] | None] = [None] * len(records)

    def work(position: int) -> tuple[int, dict[str, Any]]:
        row = {k: v for k, v in records[position].items() if not _missing(v)}
        if limiter is not None:
            limiter.acquire()
        try:
            out = func(row)
            out.setdefault("error", None)
        except _ROW_ERRORS as exc:
            out = {"phone": row.get("phone"), "message_id": row.get("message_id"),
                   "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip
        return position, out

    window = max(1, concurrency) * 4
    with (
        ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="rbm-bulk") as pool,
        tqdm(total=len(records), desc=desc, unit="row", disable=not progress) as bar,
    ):
        pending: set[Future[tuple[int, dict[str, Any]]]] = set()
        positions = iter(range(len(records)))
        try:
            for position in positions:
                pending.add(pool.submit(work, position))
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _collect(done, results, bar)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _collect(done, results, bar)
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    frame = pd.DataFrame([r or {} for r in results], columns=columns)
    for column in _WHOLE_NUMBERS.intersection(frame.columns):
        # A failed row has no status: nullable integers keep 200 from becoming 200.0 (in the
        # frame and in the results.csv the CLI writes from it).
        frame[column] = frame[column].astype("Int64")
    if index is not None:
        frame.index = index
    return frame


_WHOLE_NUMBERS = {"status", "attempts"}


def _collect(done: Iterable[Future[tuple[int, dict[str, Any]]]], results: list, bar: Any) -> None:
    for future in done:
        position, out = future.result()
        results[position] = out
        bar.update(1)


def send_many(
    client: RbmClient,
    rows: Any,
    *,
    concurrency: int = 8,
    rate: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Send one message per row.

    Each row needs ``phone`` and ``text`` (or ``message``); optional ``message_id``, ``ttl``,
    ``expire_time``, ``traffic_type``, ``use_case``, ``suggestions``, ``experiment``, ``arm``.
    Other columns are ignored. Give ``message_id`` to make a re-run safe: without it each call
    gets a fresh UUID4 (returned in the results) and re-running would send again.
    ``concurrency`` threads share the client; ``rate`` caps calls per second overall.
    """

    def one(row: dict[str, Any]) -> dict[str, Any]:
        if "phone" not in row:
            raise ValidationError("phone", None, "every row needs a phone column")
        kwargs = {k: row[k] for k in _SEND_ARGS if k in row}
        if "message_id" in kwargs:
            kwargs["message_id"] = str(kwargs["message_id"])
        return client.send(row["phone"], **kwargs).to_dict()

    return run_rows(
        one, rows, SEND_COLUMNS, concurrency=concurrency, rate=rate, progress=progress, desc="send"
    )


def revoke_many(
    client: RbmClient,
    rows: Any,
    *,
    concurrency: int = 8,
    rate: float | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Revoke one message per row (columns ``phone`` and ``message_id``; optional ``attempt``,
    ``experiment``, ``arm``). ``revoked`` is True for 200, False for 404 (already delivered)."""

    def one(row: dict[str, Any]) -> dict[str, Any]:
        for column in ("phone", "message_id"):
            if column not in row:
                raise ValidationError(column, None, f"every row needs a {column} column")
        extra = {k: row[k] for k in ("experiment", "arm") if k in row}
        if "attempt" in row:
            extra["attempt"] = int(row["attempt"])
        return client.revoke(row["phone"], str(row["message_id"]), **extra).to_dict()

    return run_rows(
        one, rows, REVOKE_COLUMNS, concurrency=concurrency, rate=rate, progress=progress,
        desc="revoke",
    )  # fmt: skip
