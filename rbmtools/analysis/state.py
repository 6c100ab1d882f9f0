"""Per-message state: each message's facts as partial aggregates that merge (DuckDB SQL).

A state row holds what the analysis needs of one message (the facts of ``sql``, with the
outbox folded in), in a form that combines with another row of the same message: first and
last times by MIN and MAX, counts by SUM, the set of its event keys by union (so a copy of an
event seen in two pieces of log counts once), the send that speaks for it by its
``sql.SEND_RANK``. So a history can keep its messages as state rows and merge each new piece of
log into the rows it touches (``history``), and the result is what one pass over everything
gives. Events about no message are kept by their own key (``OTHERS``), malformed lines are
counted per file and problem (``BAD``).

``PARTIAL_STEPS`` turns the relations ``rbm_event_rows``/``rbm_outbox_rows`` (any engine
source, see ``duckdb_engine``) into the tables ``rbm_new_messages``, ``rbm_new_others`` and
``rbm_new_bad``; ``merge_messages_sql``/``merge_others_sql`` combine state rows;
``facts_sql`` gives the facts ``sql.summary_over`` and ``sql.LIFECYCLE`` read. Every key kept
on disk is DuckDB's ``HASH``, which may change between DuckDB versions: a history records the
version it was written with (``history.rules_digest``) and is rebuilt under another.
"""

# SQL assembled from sql.py's constants and the names of tables this module defines.
# ruff: noqa: S608

from __future__ import annotations

from rbmtools.analysis import sql

__all__ = [
    "BAD_COLUMNS",
    "MESSAGE_COLUMNS",
    "OTHER_COLUMNS",
    "PARTIAL_STEPS",
    "bad_lines_sql",
    "facts_sql",
    "in_window",
    "merge_bad_sql",
    "merge_messages_sql",
    "merge_others_sql",
    "others_facts_sql",
    "with_home_day",
]

#: The key a message is found by (a 64-bit hash of its id): what a history's lookup reads.
MESSAGE_KEY = "HASH(message_id)"

_EVENT_TIMES = (
    *(f"{name}_at" for name in sql.KEY_EVENTS.values()),
    "first_event_at",
    "last_event_at",
    "first_rx_event_at",  # the time of the event whose receipt is first_event_rx
    "first_event_rx",
    "first_received_at",
    "last_received_at",
)
_OUTBOX_TIMES = (
    "api_revoke_first_at",
    "api_revoked_at",
    "api_refused_at",
    "fallback_at",
    "first_outbox_at",
    "last_outbox_at",
)

#: The columns of a state row, in order (``home_day``: the day its row lives in, the UTC day
#: of its send, else of the first time it was seen).
MESSAGE_COLUMNS: tuple[str, ...] = (
    "message_id",
    "mkey",
    "home_day",
    "event_keys",
    "lines",
    "unverified",
    *_EVENT_TIMES,
    "outbox_lines",
    "send_attempts",
    "chosen",
    "chosen_rank",
    "api_revoke_attempts",
    "api_revoke_errors",
    "fallbacks",
    "fallback_channel",
    "fallback_reason",
    *_OUTBOX_TIMES,
)

#: An event about no message (a reply, typing): one row per event key, with the day of its
#: first time (the partition it lives in) and what the load report counts of it.
OTHER_COLUMNS: tuple[str, ...] = (
    "event_key",
    "event_day",
    "lines",
    "unverified",
    "send_time",
    "received_at",
    "last_received_at",
)

#: Lines set aside, per log, file and problem, with the times they carried (their receipt
#: times still mark how long the logs ran).
BAD_COLUMNS: tuple[str, ...] = (
    "log",
    "bad_file",
    "problem",
    "lines",
    "unverified",
    "first_event_at",
    "last_event_at",
    "first_received_at",
    "last_received_at",
    "first_outbox_at",
    "last_outbox_at",
)

_HOME_DAY = (
    "CAST(COALESCE(o.chosen.send_time, o.first_outbox_at, "
    "LEAST(e.first_event_at, e.first_received_at)) AS DATE)"
)

_NEW_MESSAGES = f"""
SELECT
    COALESCE(o.message_id, e.message_id) AS message_id,
    HASH(COALESCE(o.message_id, e.message_id)) AS mkey,
    {_HOME_DAY} AS home_day,
    e.event_keys,
    e.lines,
    e.unverified,
    {", ".join(f"e.{c}" for c in _EVENT_TIMES)},
    o.outbox_lines,
    o.send_attempts,
    o.chosen,
    o.chosen_rank,
    o.api_revoke_attempts,
    o.api_revoke_errors,
    o.fallbacks,
    o.fallback_channel,
    o.fallback_reason,
    {", ".join(f"o.{c}" for c in _OUTBOX_TIMES)}
FROM (SELECT * FROM rbm_new_outbox WHERE message_id IS NOT NULL) AS o
FULL OUTER JOIN (SELECT * FROM rbm_new_events WHERE row_class = 'message') AS e
    ON o.message_id = e.message_id
"""

_NEW_LINES = f"""
WITH {{lines}}
SELECT cls, CASE WHEN cls = 'message' THEN message_id END AS message_id,
    CASE WHEN cls = 'malformed' THEN source_file END AS bad_file, problem, event_type,
    CASE WHEN cls = 'malformed' THEN 0 ELSE {sql.EVENT_KEY} END AS event_key,
    send_time, received_at, verified
FROM rbm_classified
"""

# One aggregation per message over its lines (the copies of an event count once through the
# set of keys: ``events`` is the number of distinct keys); every figure is one a merge of
# pieces of log gives again (first of the earliest-stamped by receipt, and so on).
_NEW_EVENTS = f"""
SELECT 'message' AS row_class, message_id,
    {
    ", ".join(
        f"MIN(send_time) FILTER (WHERE event_type = '{kind}') AS {name}_at"
        for kind, name in sql.KEY_EVENTS.items()
    )
},
    LIST(event_key) AS event_keys,
    COUNT(*) AS lines,
    COUNT(*) FILTER (WHERE verified = FALSE) AS unverified,
    MIN(send_time) AS first_event_at,
    MAX(send_time) AS last_event_at,
    MIN(send_time) FILTER (WHERE received_at IS NOT NULL) AS first_rx_event_at,
    ARG_MIN(received_at, {{'t': send_time, 'r': received_at}}) AS first_event_rx,
    MIN(received_at) AS first_received_at,
    MAX(received_at) AS last_received_at
FROM rbm_new_lines
WHERE cls = 'message'
GROUP BY message_id
"""

_NEW_OTHERS = """
SELECT event_key, CAST(MIN(send_time) AS DATE) AS event_day, COUNT(*) AS lines,
    COUNT(*) FILTER (WHERE verified = FALSE) AS unverified, MIN(send_time) AS send_time,
    MIN(received_at) AS received_at, MAX(received_at) AS last_received_at
FROM rbm_new_lines
WHERE cls = 'other'
GROUP BY event_key
"""

_NEW_BAD = """
SELECT 'events' AS log, bad_file, problem, CAST(COUNT(*) AS BIGINT) AS lines,
    CAST(COUNT(*) FILTER (WHERE verified = FALSE) AS BIGINT) AS unverified,
    MIN(send_time) AS first_event_at, MAX(send_time) AS last_event_at,
    MIN(received_at) AS first_received_at, MAX(received_at) AS last_received_at,
    CAST(NULL AS TIMESTAMPTZ) AS first_outbox_at, CAST(NULL AS TIMESTAMPTZ) AS last_outbox_at
FROM rbm_new_lines WHERE cls = 'malformed' GROUP BY bad_file, problem
UNION ALL BY NAME
SELECT 'outbox' AS log, bad_file, problem, CAST(SUM(outbox_lines) AS BIGINT) AS lines,
    CAST(0 AS BIGINT) AS unverified, MIN(first_outbox_at) AS first_outbox_at,
    MAX(last_outbox_at) AS last_outbox_at
FROM rbm_new_outbox WHERE bad_file IS NOT NULL GROUP BY bad_file, problem
"""


def bad_lines_sql(lines: str, log: str, source_file: str) -> str:
    """The lines of ``lines`` (``sql.event_lines_sql`` or ``sql.outbox_lines_sql`` rows of one
    file) that are set aside, counted per problem as ``BAD_COLUMNS`` rows of ``source_file``
    (the times as the load summary takes them: first and last of the lines)."""
    file = "'" + source_file.replace("'", "''") + "'"
    if log == "events":
        return f"""
SELECT 'events' AS log, {file} AS bad_file, problem, CAST(COUNT(*) AS BIGINT) AS lines,
    CAST(COUNT(*) FILTER (WHERE verified = FALSE) AS BIGINT) AS unverified,
    MIN(send_time) AS first_event_at, MAX(send_time) AS last_event_at,
    MIN(received_at) AS first_received_at, MAX(received_at) AS last_received_at
FROM {lines} WHERE cls = 'malformed' GROUP BY problem"""
    return f"""
SELECT 'outbox' AS log, {file} AS bad_file, problem, CAST(COUNT(*) AS BIGINT) AS lines,
    CAST(0 AS BIGINT) AS unverified, MIN(COALESCE(sendTime, requestedAt, sentAt))
        AS first_outbox_at, MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
FROM {lines} WHERE NOT ok GROUP BY problem"""


def merge_bad_sql(source: str) -> str:
    """Counts of lines set aside (``BAD_COLUMNS``) added up per log, file and problem."""
    return f"""
SELECT log, bad_file, problem, CAST(SUM(lines) AS BIGINT) AS lines,
    CAST(SUM(unverified) AS BIGINT) AS unverified, MIN(first_event_at) AS first_event_at,
    MAX(last_event_at) AS last_event_at, MIN(first_received_at) AS first_received_at,
    MAX(last_received_at) AS last_received_at, MIN(first_outbox_at) AS first_outbox_at,
    MAX(last_outbox_at) AS last_outbox_at
FROM {source}
GROUP BY log, bad_file, problem
"""


def _steps() -> tuple[tuple[str, str], ...]:
    lines = _NEW_LINES.format(lines=sql._EVENT_LINES.format(source="rbm_event_rows"))
    outbox = (
        f"WITH {sql._OUTBOX_LINES.format(source='rbm_outbox_rows')},\n"
        f"{sql.outbox_per_message_cte(details=True, rank=True)}"
    )
    return (
        ("rbm_new_lines", lines),
        ("rbm_new_events", _NEW_EVENTS),
        ("rbm_new_outbox", f"{outbox}\nSELECT * FROM rbm_outbox_messages"),
        ("rbm_new_messages", _NEW_MESSAGES),
        ("rbm_new_others", _NEW_OTHERS),
        ("rbm_new_bad", _NEW_BAD),
    )


#: The registered logs (``rbm_event_rows``, ``rbm_outbox_rows``) as state: the tables
#: ``rbm_new_messages`` (state rows, ``MESSAGE_COLUMNS``), ``rbm_new_others``
#: (``OTHER_COLUMNS``) and ``rbm_new_bad`` (``BAD_COLUMNS``), each built from the tables
#: before it; the intermediate ones (``rbm_new_lines``, ``rbm_new_events``,
#: ``rbm_new_outbox``) may be dropped after.
PARTIAL_STEPS: tuple[tuple[str, str], ...] = _steps()

_FIRST_RX = "ARG_MIN(first_event_rx, {'t': first_rx_event_at, 'r': first_event_rx})"


def merge_messages_sql(source: str) -> str:
    """State rows of ``source`` (several rows per message, from pieces of log) combined into
    one per message: what the pieces together say of it."""
    times = {
        **{c: f"MIN({c})" for c in _EVENT_TIMES if c != "first_event_rx"},
        "last_event_at": "MAX(last_event_at)",
        "last_received_at": "MAX(last_received_at)",
        "first_event_rx": _FIRST_RX,
        **{c: f"MIN({c})" for c in _OUTBOX_TIMES},
        "last_outbox_at": "MAX(last_outbox_at)",
    }
    sums = (
        "lines",
        "unverified",
        "outbox_lines",
        "send_attempts",
        "api_revoke_attempts",
        "api_revoke_errors",
        "fallbacks",
    )
    merged = {
        "mkey": "ANY_VALUE(mkey)",
        "event_keys": (
            "list_distinct(flatten(LIST(event_keys) FILTER (WHERE event_keys IS NOT NULL)))"
        ),
        **{c: f"SUM({c})" for c in sums},
        **times,
        "chosen": "ARG_MIN(chosen, chosen_rank)",
        "chosen_rank": "MIN(chosen_rank)",
        "fallback_channel": "ARG_MIN(fallback_channel, fallback_at)",
        "fallback_reason": "ARG_MIN(fallback_reason, fallback_at)",
    }
    columns = ",\n    ".join(
        f"{merged[c]} AS {c}" for c in MESSAGE_COLUMNS if c not in ("message_id", "home_day")
    )
    return f"""
SELECT message_id, {columns}
FROM {source}
GROUP BY message_id
"""


def with_home_day(source: str) -> str:
    """State rows of ``source`` with their ``home_day`` recomputed (after a merge), in the
    column order of ``MESSAGE_COLUMNS``."""
    day = _HOME_DAY.replace("o.", "").replace("e.", "")
    columns = ", ".join(day + " AS home_day" if c == "home_day" else c for c in MESSAGE_COLUMNS)
    return f"SELECT {columns} FROM {source}"


def merge_others_sql(source: str) -> str:
    """Rows of events about no message (``OTHER_COLUMNS``) combined per event key."""
    return f"""
SELECT event_key, MIN(event_day) AS event_day, SUM(lines) AS lines,
    SUM(unverified) AS unverified, MIN(send_time) AS send_time,
    MIN(received_at) AS received_at, MAX(last_received_at) AS last_received_at
FROM {source}
GROUP BY event_key
"""


_OUTBOX_STATE = (
    "outbox_lines", "send_attempts", "chosen", "chosen_rank", "api_revoke_attempts",
    "api_revoke_errors", "fallbacks", "fallback_channel", "fallback_reason", *_OUTBOX_TIMES,
)  # fmt: skip


def in_window(source: str, window: tuple[str | None, str | None] | None) -> str:
    """The state rows of ``source`` as a load with ``sent=window`` sees them: a message sent
    outside the window has no outbox (its events are about an unknown message; with none, it
    is gone), as ``sql.sent_in`` does to the per-message outbox."""
    predicate = sql.sent_predicate(*window) if window else None
    if predicate is None:
        return source
    columns = ", ".join(
        f"CASE WHEN rbm_kept THEN {c} END AS {c}" if c in _OUTBOX_STATE else c
        for c in MESSAGE_COLUMNS
    )
    return (
        f"(SELECT {columns} FROM (SELECT *, COALESCE({predicate}, FALSE) AS rbm_kept "
        f"FROM {source}) WHERE rbm_kept OR lines IS NOT NULL)"
    )


def facts_sql(source: str, window: tuple[str | None, str | None] | None = None) -> str:
    """The facts (``sql._facts_select(True)``'s columns, and ``home_day``) of the state rows
    of ``source`` (in the send ``window``, see ``in_window``): what the lifecycle rules and
    the load summary read."""
    source = in_window(source, window)
    chosen = {
        "send_time": "chosen.send_time",
        "send_status": "chosen.send_status",
        "expire_time": "chosen.expire_time",
        "ttl_seconds": "TRY_CAST(REPLACE(chosen.ttl, 's', '') AS DOUBLE)",
        "use_case": "chosen.use_case",
        "traffic_type": "chosen.traffic_type",
        "experiment": "chosen.experiment",
        "arm": "chosen.arm",
        "policy_version": "chosen.policy_version",
        "agent_id": "chosen.agent_id",
        "phone": "chosen.phone",
    }
    return f"""
SELECT
    CASE
        WHEN send_attempts > 0 AND chosen.send_status IN (200, 404) THEN 'message'
        WHEN send_attempts > 0 THEN 'failed_send'
        WHEN outbox_lines > 0 THEN 'outbox_without_send'
        ELSE 'unknown_message'
    END AS row_kind,
    message_id,
    home_day,
    CAST(NULL AS VARCHAR) AS bad_file,
    CAST(NULL AS VARCHAR) AS problem,
    {", ".join(f"{c}_at" for c in sql.KEY_EVENTS.values())},
    CAST(len(list_distinct(event_keys)) AS BIGINT) AS events,
    lines,
    unverified,
    first_event_at,
    last_event_at,
    first_event_rx,
    first_received_at,
    last_received_at,
    {", ".join(f"{value} AS {name}" for name, value in chosen.items())},
    send_attempts,
    api_revoke_attempts,
    api_revoke_first_at,
    api_revoked_at,
    api_refused_at,
    api_revoke_errors,
    fallbacks,
    fallback_at,
    fallback_channel,
    fallback_reason,
    outbox_lines,
    first_outbox_at,
    last_outbox_at
FROM {source}
"""


def others_facts_sql(others: str, bad: str) -> str:
    """The facts rows about no message, every facts column present: one row for the events
    about no message (``others``, ``OTHER_COLUMNS``) and one per log, file and problem of
    malformed lines (``bad``, ``BAD_COLUMNS``)."""
    other = {
        "row_kind": "'other_events'",
        "events": "COUNT(*)",
        "lines": "SUM(lines)",
        "unverified": "SUM(unverified)",
        "first_event_at": "MIN(send_time)",
        "last_event_at": "MAX(send_time)",
        "first_received_at": "MIN(received_at)",
        "last_received_at": "MAX(last_received_at)",
    }
    malformed = {
        "row_kind": (
            "CASE log WHEN 'events' THEN 'malformed_event_lines' ELSE 'malformed_outbox_lines' END"
        ),
        "bad_file": "bad_file",
        "problem": "problem",
        "events": "CASE WHEN log = 'events' THEN 0 END",
        "lines": "CASE WHEN log = 'events' THEN lines END",
        "unverified": "unverified",
        "outbox_lines": "CASE WHEN log = 'outbox' THEN lines END",
        **{c: c for c in BAD_COLUMNS[5:]},
    }
    return f"""
SELECT {_fact_select(other)} FROM {others} HAVING COUNT(*) > 0
UNION ALL
SELECT {_fact_select(malformed)} FROM {bad}
"""


def _fact_select(values: dict[str, str]) -> str:
    """Every facts column (``FACT_TYPES``) in order: ``values`` where given, else NULL."""
    return ", ".join(
        f"CAST({values.get(name, 'NULL')} AS {kind}) AS {name}" for name, kind in FACT_TYPES.items()
    )


#: The facts columns and their types, in the order ``facts_sql`` gives them.
FACT_TYPES: dict[str, str] = {
    "row_kind": "VARCHAR",
    "message_id": "VARCHAR",
    "home_day": "DATE",
    "bad_file": "VARCHAR",
    "problem": "VARCHAR",
    **{f"{name}_at": "TIMESTAMPTZ" for name in sql.KEY_EVENTS.values()},
    "events": "BIGINT",
    "lines": "BIGINT",
    "unverified": "BIGINT",
    "first_event_at": "TIMESTAMPTZ",
    "last_event_at": "TIMESTAMPTZ",
    "first_event_rx": "TIMESTAMPTZ",
    "first_received_at": "TIMESTAMPTZ",
    "last_received_at": "TIMESTAMPTZ",
    "send_time": "TIMESTAMPTZ",
    "send_status": "INTEGER",
    "expire_time": "TIMESTAMPTZ",
    "ttl_seconds": "DOUBLE",
    "use_case": "VARCHAR",
    "traffic_type": "VARCHAR",
    "experiment": "VARCHAR",
    "arm": "VARCHAR",
    "policy_version": "VARCHAR",
    "agent_id": "VARCHAR",
    "phone": "VARCHAR",
    "send_attempts": "BIGINT",
    "api_revoke_attempts": "BIGINT",
    "api_revoke_first_at": "TIMESTAMPTZ",
    "api_revoked_at": "TIMESTAMPTZ",
    "api_refused_at": "TIMESTAMPTZ",
    "api_revoke_errors": "BIGINT",
    "fallbacks": "BIGINT",
    "fallback_at": "TIMESTAMPTZ",
    "fallback_channel": "VARCHAR",
    "fallback_reason": "VARCHAR",
    "outbox_lines": "BIGINT",
    "first_outbox_at": "TIMESTAMPTZ",
    "last_outbox_at": "TIMESTAMPTZ",
}
