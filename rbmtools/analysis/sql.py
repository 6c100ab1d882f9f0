"""The heavy part of the analysis, defined once as SQL: events + outbox -> lifecycle -> aggregates.

Everything here is plain SQL in DuckDB's dialect, written so that sqlglot can transpile it to
Spark SQL and BigQuery (``transpile``). It reads two relations that an engine provides with
fixed column names (``rbm_event_rows`` and ``rbm_outbox_rows``, see ``EVENT_ROW_COLUMNS`` and
``OUTBOX_ROW_COLUMNS``) and one engine function, ``rbm_decode_push(data)``, which turns the
base64 ``message.data`` of a Pub/Sub push into the event struct (``sendTime`` left as text,
NULL fields when the data is not base64 of a JSON object). Reading files and decoding JSON
are the engine's business (``duckdb_engine.py``); the rules of the lifecycle live only here.

A load runs ``SUMMARY`` (as ``SUMMARY_STEPS``, three statements, so each big aggregation spills
on its own): both logs, grouped per message (``FACTS`` without the
``DETAIL_COLUMNS``), through the lifecycle rules, into a small table ``rbm_summary`` of counts
per finest group; ``LOAD_REPORT``, ``BAD_FILES`` and the compact aggregates per grouping
(``summary_counts_sql``, ``summary_latency_bins_sql``, ``summary_read_bins_sql``) sum it up,
and Python turns those into statistics. Per-message rows are built only when asked for:
``FACTS`` (the table ``rbm_facts``, built as ``FACTS_STEPS`` like the summary: one row per
message joining both logs, plus rows that carry counts of malformed lines and of events that
belong to no message) and ``LIFECYCLE`` (the view
``rbm_lifecycle``: the outcomes and columns of log-format section 3); the tests' twins in
``rbmtools.testing.lifecycle_sql`` count the aggregates from that view and must give the same
numbers as the summary.

Functions an engine other than DuckDB must map: ``EPOCH_US(ts)`` (microseconds since the epoch:
``UNIX_MICROS`` in Spark and BigQuery), ``HASH`` (64-bit, a grouping key only), ``ARG_MIN``
(skips NULL values and keys), ``GREATEST``/``LEAST`` (skip NULLs), ``GROUPING SETS`` with
``GROUPING()``, and aggregates with ``FILTER``.
"""

# SQL is assembled here from constants and validated column names only (validate_by); no
# user text reaches these strings, so the string-built-query rule does not apply.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Callable

from rbmtools.analysis.schema import (
    BIN_FLOOR_SECONDS,
    BINS_PER_DECADE,
    OUTCOMES,
    REVOKE_METHODS,
    validate_by,
)

__all__ = [
    "BAD_FILES",
    "DETAIL_COLUMNS",
    "EVENT_ROW_COLUMNS",
    "EVENT_STRUCT_FIELDS",
    "FACTS",
    "FACTS_STEPS",
    "LIFECYCLE",
    "LOAD_REPORT",
    "OUTBOX_ROW_COLUMNS",
    "SUMMARY",
    "SUMMARY_COMBINE",
    "SUMMARY_STEPS",
    "bin_expression",
    "counts_columns",
    "group_clauses",
    "sent_in",
    "sent_predicate",
    "summary_counts_sql",
    "summary_latency_bins_sql",
    "summary_read_bins_sql",
    "summary_rows_sql",
    "transpile",
]

#: Fields of a decoded RBM event that the analysis reads, all as text (others, such as agentId
#: or a reply's text, are skipped by the reader). Times stay text until the grammar reads them.
EVENT_STRUCT_FIELDS: dict[str, str] = {
    "senderPhoneNumber": "VARCHAR",
    "phoneNumber": "VARCHAR",
    "messageId": "VARCHAR",
    "eventId": "VARCHAR",
    "sendTime": "VARCHAR",
    "eventType": "VARCHAR",
}


def _struct(fields: dict[str, str]) -> str:
    return "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in fields.items()) + ")"


#: Times a source already holds as timestamps (a Parquet TIMESTAMP column, as ``to_parquet``
#: and ``logs compact`` write them), by the text field they stand for: the engine puts such a
#: value in its typed column and leaves the text NULL; text is read by ``TIME_PATTERN``.
TYPED_TIMES: dict[str, dict[str, str]] = {
    "events": {
        "sendTime": "send_time_typed",
        "receivedAt": "received_at_typed",
        "publishTime": "received_at_typed",
    },
    "outbox": {
        "sendTime": "send_time_typed",
        "expireTime": "expire_time_typed",
        "requestedAt": "requested_at_typed",
        "sentAt": "sent_at_typed",
    },
}


def _typed(log: str) -> dict[str, str]:
    return dict.fromkeys(dict.fromkeys(TYPED_TIMES[log].values()), "TIMESTAMPTZ")


#: The event relation an engine provides: the union of the three line shapes of the event log
#: (receiver record, Pub/Sub push body, bare decoded event) plus the file each row came from.
#: A line that is not JSON, or does not fit these types, arrives as a row of NULLs.
EVENT_ROW_COLUMNS: dict[str, str] = {
    "receivedAt": "VARCHAR",
    "verified": "BOOLEAN",
    "event": _struct(EVENT_STRUCT_FIELDS),
    **EVENT_STRUCT_FIELDS,
    "message": "STRUCT(data VARCHAR, publishTime VARCHAR)",
    **_typed("events"),
}

#: The outbox relation an engine provides: the union of send, revoke and fallback records.
OUTBOX_ROW_COLUMNS: dict[str, str] = {
    "kind": "VARCHAR",
    "messageId": "VARCHAR",
    "phone": "VARCHAR",
    "agentId": "VARCHAR",
    "sendTime": "VARCHAR",
    "useCase": "VARCHAR",
    "trafficType": "VARCHAR",
    "ttl": "VARCHAR",
    "expireTime": "VARCHAR",
    "status": "INTEGER",
    "experiment": "VARCHAR",
    "arm": "VARCHAR",
    "error": "VARCHAR",
    "requestedAt": "VARCHAR",
    "attempt": "INTEGER",
    "channel": "VARCHAR",
    "sentAt": "VARCHAR",
    "reason": "VARCHAR",
    "policyVersion": "VARCHAR",
    **_typed("outbox"),
}

#: The lifecycle event types, with the column prefix each gets in the facts.
KEY_EVENTS = {
    "DELIVERED": "delivered",
    "READ": "read",
    "TTL_EXPIRATION_REVOKED": "ttl_revoked",
    "TTL_EXPIRATION_REVOKE_FAILED": "ttl_failed",
}

#: Why a line or record was set aside (the ``problem`` of a malformed row).
PROBLEMS: dict[str, str] = {
    "not_event": "not an event",
    # the receiver's other log (LOG_DIR/_other/): authentic pushes it acknowledged but models
    # no event for (an agent launch, an unreadable time, NaN): counted, never read as events
    "other_log": "kept in the other log of the receiver",
    "not_record": "not an outbox record",
    "unreadable_time": "unreadable time",
    "no_send_time": "lifecycle event without sendTime",
}

# ------------------------------------------------------------------------------ times

_CLOCK = r"-[0-9]{2}-[0-9]{2}[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
_OFFSET = r"[+-]([01][0-9]|2[0-3]):[0-5][0-9]"

#: The timestamp grammar of ``rbmtools.wire`` (``TIMESTAMP_PATTERN`` and ``parse_timestamp``),
#: as a regular expression RE2 (DuckDB, BigQuery) and Java (Spark) read alike: RFC 3339 with
#: ``T``, ``t`` or a space, ``Z``, ``z`` or an offset, 0-9 fractional digits (cut to
#: microseconds), hour 00-23, minute and second 00-59, nothing around it; then a real calendar
#: date, years 0001 to 9999 in UTC. An epoch number, ``25/11/2026 ...``, a leap second or an
#: empty string is no time: the line is set aside as malformed (``unreadable time``), never
#: read as a missing time. (A test holds the SQL equal to ``parse_timestamp``.)
TIME_PATTERN = "[0-9]{4}" + _CLOCK + f"([Zz]|{_OFFSET})"
# The common case, which DuckDB's cast reads as it is: upper case, a year from 1000 to 2999
# (so no overflow at the ends of the range is possible).
_PLAIN_TIME = "[12][0-9]{3}" + _CLOCK.replace("[Tt ]", "[T ]") + f"(Z|{_OFFSET})"
_MIN_US, _MAX_US = -62135596800000000, 253402300799999999  # 0001-01-01 .. 9999-12-31 UTC


def time_function(dialect: str) -> str:
    """The body of the engine function ``rbm_time(s)``: the text ``s`` read by
    ``TIME_PATTERN`` as a timestamp, NULL when it is not one (``dialect``: duckdb, spark or
    bigquery; each casts in its own way, digits beyond microseconds cut first where the cast
    would refuse them)."""
    if dialect == "duckdb":
        loose = "TRY_CAST(upper(s) AS TIMESTAMPTZ)"
        return (
            f"CASE WHEN regexp_full_match(s, '{_PLAIN_TIME}') THEN TRY_CAST(s AS TIMESTAMPTZ) "
            f"WHEN regexp_full_match(s, '{TIME_PATTERN}') "
            f"AND EPOCH_US({loose}) BETWEEN {_MIN_US} AND {_MAX_US} THEN {loose} END"
        )
    cut = r"(\.[0-9]{6})[0-9]+"
    if dialect == "spark":
        text = rf"regexp_replace(upper(s), '{cut}', '$1')".replace("\\", "\\\\")
        pattern = f"^(?:{TIME_PATTERN})$".replace("\\", "\\\\")
        return f"CASE WHEN s RLIKE '{pattern}' THEN TRY_CAST({text} AS TIMESTAMP) END"
    if dialect == "bigquery":
        text = rf"REGEXP_REPLACE(UPPER(s), r'{cut}', r'\1')"
        return (
            f"CASE WHEN REGEXP_CONTAINS(s, r'^(?:{TIME_PATTERN})$') "
            f"THEN SAFE_CAST({text} AS TIMESTAMP) END"
        )
    raise ValueError(dialect)


def _seconds(start: str, end: str) -> str:
    """Seconds from ``start`` to ``end`` (microsecond precision). Differences of epoch
    microseconds: DuckDB's ``DATE_DIFF`` on TIMESTAMPTZ goes through the calendar and costs
    about 75 times as much."""
    return f"((EPOCH_US({end}) - EPOCH_US({start})) / 1000000.0)"


def bin_expression(seconds: str) -> str:
    """SQL assigning the latency bin of a duration; ``schema.bin_index`` is its twin."""
    return (
        f"CASE WHEN {seconds} <= {BIN_FLOOR_SECONDS} THEN 0 "
        f"ELSE CAST(FLOOR(LOG10({seconds} / {BIN_FLOOR_SECONDS}) * {BINS_PER_DECADE}) AS INTEGER)"
        f" + 1 END"
    )


def _field(name: str) -> str:
    """One event field, whichever line shape carried it (receiver, decoded, push)."""
    return f"COALESCE(event.{name}, {name}, push_event.{name})"


_SHAPE_CLASS = """CASE
            WHEN sender_phone IS NOT NULL AND event_type IS NOT NULL AND message_id IS NOT NULL
                THEN 'message'
            WHEN sender_phone IS NOT NULL AND (event_type IS NOT NULL OR message_id IS NOT NULL)
                THEN 'other'
            WHEN server_phone IS NOT NULL AND event_type IS NOT NULL AND message_id IS NOT NULL
                THEN 'message'
            WHEN server_phone IS NOT NULL AND event_type IS NOT NULL THEN 'other'
            ELSE 'malformed'
        END"""
_LIFECYCLE_TYPES = ", ".join(f"'{kind}'" for kind in KEY_EVENTS)

# Stage 1: every line as one normalised event (or a malformed line, with its problem): each
# shape decoded once, the fields of whichever shape carried them, each time read once.
_EVENT_LINES = f"""
rbm_event_shapes AS (
    SELECT source_file, verified, receivedAt, event, message,
        {", ".join(EVENT_STRUCT_FIELDS)}, {", ".join(_typed("events"))},
        CASE WHEN message.data IS NOT NULL THEN rbm_decode_push(message.data) END AS push_event
    FROM {{source}}
),
rbm_event_text AS (
    SELECT
        source_file,
        verified,
        {_field("messageId")} AS message_id,
        {_field("eventId")} AS event_id,
        {_field("eventType")} AS event_type,
        {_field("senderPhoneNumber")} AS sender_phone,
        {_field("phoneNumber")} AS server_phone,
        {_field("sendTime")} AS send_text,
        COALESCE(receivedAt, message.publishTime) AS received_text,
        send_time_typed,
        received_at_typed
    FROM rbm_event_shapes
),
rbm_events AS (
    SELECT source_file, verified, message_id, event_id, event_type, sender_phone, server_phone,
        send_text, received_text,
        COALESCE(send_time_typed, rbm_time(send_text)) AS send_time,
        COALESCE(received_at_typed, rbm_time(received_text)) AS received_at
    FROM rbm_event_text
),
rbm_shaped AS (
    SELECT *,
        {_SHAPE_CLASS} AS shape,
        (send_text IS NOT NULL AND send_time IS NULL)
            OR (received_text IS NOT NULL AND received_at IS NULL) AS bad_time
    FROM rbm_events
),
rbm_classified AS (
    SELECT source_file, verified, message_id, event_id, event_type, sender_phone, server_phone,
        send_time, received_at,
        CASE
            WHEN bad_time THEN 'malformed'
            WHEN shape = 'message' AND send_time IS NULL AND event_type IN ({_LIFECYCLE_TYPES})
                THEN 'malformed'
            ELSE shape
        END AS cls,
        CASE
            WHEN bad_time THEN '{PROBLEMS["unreadable_time"]}'
            WHEN shape = 'malformed' AND STRPOS(source_file, '/_other/') > 0
                THEN '{PROBLEMS["other_log"]}'
            WHEN shape = 'malformed' THEN '{PROBLEMS["not_event"]}'
            WHEN shape = 'message' AND send_time IS NULL AND event_type IN ({_LIFECYCLE_TYPES})
                THEN '{PROBLEMS["no_send_time"]}'
        END AS problem
    FROM rbm_shaped
)"""


def event_line_classes_sql(source: str) -> str:
    """The class of each row of ``source`` (an event-row relation), in its order:
    ``message``, ``other`` (replies, typing, subscriptions) or ``malformed``, and for a
    malformed row its ``problem``."""
    return f"WITH {_EVENT_LINES.format(source=source)} SELECT cls, problem FROM rbm_classified"


#: The columns of a classified event line (``event_lines_sql``).
EVENT_LINE_COLUMNS = (
    "source_file", "verified", "message_id", "event_id", "event_type", "sender_phone",
    "server_phone", "send_time", "received_at", "cls", "problem",
)  # fmt: skip


def event_lines_sql(source: str) -> str:
    """Every row of ``source`` (an event-row relation) classified once (``EVENT_LINE_COLUMNS``):
    what a compaction keeps of a file's lines, to write their part and count the rest."""
    return f"""WITH {_EVENT_LINES.format(source=source)}
SELECT {", ".join(EVENT_LINE_COLUMNS)} FROM rbm_classified"""


def events_from_lines_sql(lines: str) -> str:
    """The events of classified lines (``event_lines_sql``) in the flat layout of
    ``events_export_sql``."""
    return f"""SELECT received_at AS "receivedAt", verified, message_id AS "messageId",
    event_id AS "eventId", event_type AS "eventType", send_time AS "sendTime",
    sender_phone AS "senderPhoneNumber", server_phone AS "phoneNumber"
FROM {lines}
WHERE cls <> 'malformed'"""


def outbox_lines_sql(source: str) -> str:
    """Every row of ``source`` (an outbox-row relation) read once: its flat columns (times
    as timestamps), ``ok`` and ``problem``."""
    columns = ", ".join([*_OUTBOX_TEXT, *_OUTBOX_TIMES, "ok", "problem", "source_file"])
    return f"""WITH {_OUTBOX_LINES.format(source=source)}
SELECT {columns} FROM rbm_outbox"""


def outbox_from_lines_sql(lines: str) -> str:
    """The usable records of ``outbox_lines_sql`` rows, as ``outbox_export_sql`` gives them."""
    return f"SELECT {', '.join([*_OUTBOX_TEXT, *_OUTBOX_TIMES])} FROM {lines} WHERE ok"


def events_export_sql(source: str = "rbm_event_rows", *, order: bool = True) -> str:
    """Every event (not the malformed lines) as flat decoded columns, push bodies decoded,
    times as timestamps: the layout ``Dataset.to_parquet`` writes and the Parquet reader maps
    back (``order=False`` keeps the lines in the order they were read)."""
    return f"""WITH {_EVENT_LINES.format(source=source)}
SELECT received_at AS "receivedAt", verified, message_id AS "messageId", event_id AS "eventId",
    event_type AS "eventType", send_time AS "sendTime", sender_phone AS "senderPhoneNumber",
    server_phone AS "phoneNumber"
FROM rbm_classified
WHERE cls <> 'malformed'
{'ORDER BY "sendTime", "messageId"' if order else ""}
"""


_OUTBOX_TIMES = {"sendTime": "send", "expireTime": "expire", "requestedAt": "requested",
                 "sentAt": "sent"}  # fmt: skip
_OUTBOX_TEXT = [c for c in OUTBOX_ROW_COLUMNS if c not in _OUTBOX_TIMES and "typed" not in c]


def outbox_export_sql(source: str = "rbm_outbox_rows") -> str:
    """Every usable outbox record, as its flat columns (times as timestamps)."""
    columns = ", ".join([*_OUTBOX_TEXT, *_OUTBOX_TIMES])
    return f"""WITH {_OUTBOX_LINES.format(source=source)}
SELECT {columns} FROM rbm_outbox WHERE ok"""


def outbox_line_ok_sql(source: str) -> str:
    """Whether each row of ``source`` (an outbox-row relation) is a usable record, in order,
    and for one that is not, its ``problem``."""
    return f"WITH {_OUTBOX_LINES.format(source=source)} SELECT ok, problem FROM rbm_outbox"


def _outbox_time(name: str) -> str:
    return f"COALESCE({TYPED_TIMES['outbox'][name]}, rbm_time({name}))"


_OUTBOX_BAD_TIME = " OR ".join(
    f"({name}_text IS NOT NULL AND {name}_at IS NULL)" for name in _OUTBOX_TIMES
)

# The outbox, record by record: each time read once, ``ok`` when it is a usable send, revoke or
# fallback, else its ``problem``.
_OUTBOX_LINES = f"""
rbm_outbox_read AS (
    SELECT source_file, {", ".join(_OUTBOX_TEXT)},
        {
    ", ".join(f"{name} AS {name}_text, {_outbox_time(name)} AS {name}_at" for name in _OUTBOX_TIMES)
}
    FROM {{source}}
),
rbm_outbox_checked AS (
    SELECT source_file, {", ".join(_OUTBOX_TEXT)},
        {", ".join(f"{name}_at AS {name}" for name in _OUTBOX_TIMES)},
        {_OUTBOX_BAD_TIME} AS bad_time
    FROM rbm_outbox_read
),
rbm_outbox AS (
    SELECT *,
        CASE
            WHEN bad_time THEN FALSE
            WHEN kind = 'send' THEN messageId IS NOT NULL AND sendTime IS NOT NULL
                AND status IS NOT NULL
            WHEN kind = 'revoke' THEN messageId IS NOT NULL AND requestedAt IS NOT NULL
                AND status IS NOT NULL
            WHEN kind = 'fallback' THEN messageId IS NOT NULL AND sentAt IS NOT NULL
            ELSE FALSE
        END AS ok,
        CASE WHEN bad_time THEN '{PROBLEMS["unreadable_time"]}'
            ELSE '{PROBLEMS["not_record"]}' END AS problem
    FROM rbm_outbox_checked
)"""

# Each event type as a small number that sorts the way the type's text does (so the minimum
# over copies of an event is the same type as with text), with the lifecycle's four types on
# even numbers; anything else in between, on odd numbers.
_TYPE_ORDER = sorted(KEY_EVENTS)
_TYPE_CODE = (
    "CASE "
    + " ".join(
        f"WHEN event_type = '{kind}' THEN {2 * i + 2} WHEN event_type < '{kind}' THEN {2 * i + 1}"
        for i, kind in enumerate(_TYPE_ORDER)
    )
    + f" WHEN event_type IS NOT NULL THEN {2 * len(_TYPE_ORDER) + 1} END"
)
_KEY_EVENT_CODES = {kind: 2 * _TYPE_ORDER.index(kind) + 2 for kind in KEY_EVENTS}


#: How an event is told apart from the other events of its message (copies share it): its
#: eventId, else its type and time.
EVENT_KEY = (
    "CASE WHEN event_id IS NOT NULL THEN HASH(event_id) ELSE HASH(event_type, send_time) END"
)


def event_keys_cte() -> str:
    """Stage 2: duplicates count once (same eventId, or same messageId + eventType +
    sendTime). Copies of one event share its messageId, so the key is hashed within the
    message; malformed lines are only counted (per file and problem). Only what stage 3 needs
    is kept: per event its type, first and last time and receipt (over its copies), the copies
    and the unverified ones."""
    return f"""
rbm_event_keys AS (
    SELECT
        cls,
        CASE WHEN cls = 'message' THEN message_id END AS message_id,
        CASE WHEN cls = 'malformed' THEN source_file END AS bad_file,
        problem,
        CASE WHEN cls = 'malformed' THEN 0 ELSE {EVENT_KEY} END AS event_key,
        MIN({_TYPE_CODE}) AS type_code,
        MIN(send_time) AS send_time,
        MAX(send_time) AS last_send_time,
        MIN(received_at) AS received_at,
        MAX(received_at) AS last_received_at,
        COUNT(*) AS copies,
        COUNT(*) FILTER (WHERE verified = FALSE) AS unverified
    FROM rbm_classified
    GROUP BY cls, message_id, event_key, CASE WHEN cls = 'malformed' THEN source_file END,
        problem
)"""


_KEY_EVENT_AGGREGATES = ",\n        ".join(
    f"MIN(send_time) FILTER (WHERE type_code = {_KEY_EVENT_CODES[kind]}) AS {name}_at"
    for kind, name in KEY_EVENTS.items()
)


def events_per_message_cte() -> str:
    """Stage 3: per message (or per kind of non-message row), the first event of each kind
    that matters (MIN is order-free, so out-of-order arrival cannot change it), and counts.
    The receipt of the first event is the earliest receipt among the earliest-stamped events
    (a tie of stamps must not make the answer depend on the order the engine met them)."""
    return f"""
rbm_message_events AS (
    SELECT
        CASE cls WHEN 'message' THEN 'message' WHEN 'other' THEN 'other_events'
            ELSE 'malformed_event_lines' END AS row_class,
        message_id,
        bad_file,
        problem,
        {_KEY_EVENT_AGGREGATES},
        CASE WHEN cls = 'malformed' THEN 0 ELSE COUNT(*) END AS events,
        SUM(copies) AS lines,
        SUM(unverified) AS unverified,
        MIN(send_time) AS first_event_at,
        MAX(last_send_time) AS last_event_at,
        ARG_MIN(received_at, {{'t': send_time, 'r': received_at}}) AS first_event_rx,
        MIN(received_at) AS first_received_at,
        MAX(last_received_at) AS last_received_at
    FROM rbm_event_keys
    GROUP BY cls, message_id, bad_file, problem
)"""


_SEND_FIELDS = {
    "send_time": "sendTime",
    "send_status": "status",
    "expire_time": "expireTime",
    "ttl": "ttl",
    "use_case": "useCase",
    "traffic_type": "trafficType",
    "experiment": "experiment",
    "arm": "arm",
    "policy_version": "policyVersion",
}
#: Per-message columns only the lifecycle table shows (no metric reads them): ``FACTS`` has
#: them, ``SUMMARY`` leaves them out, so the load does not carry their text per message.
DETAIL_COLUMNS: tuple[str, ...] = ("agent_id", "phone", "fallback_channel", "fallback_reason")

#: The order in which a message's send records speak for it: a 200 first, then a 404, then any
#: other answer, and the earliest among equals (as one BIGINT: the rank in 10^18 steps, then
#: the microseconds, which span less than 10^18 for years 0001 to 9999).
SEND_RANK = (
    "(CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END) * 1000000000000000000"
    " + EPOCH_US(sendTime)"
)


def _send_record(details: bool) -> str:
    fields = {**_SEND_FIELDS, **({"agent_id": "agentId", "phone": "phone"} if details else {})}
    return "{" + ", ".join(f"'{name}': {column}" for name, column in fields.items()) + "}"


def outbox_per_message_cte(details: bool, rank: bool = False) -> str:
    """Stage 4: the outbox per message: the send record that speaks for it (see
    ``SEND_RANK``; retries keep the messageId), revoke attempts and their answers, the first
    fallback. Unusable records are counted per file and problem. ``details`` adds
    ``DETAIL_COLUMNS``, ``rank`` the chosen send's ``SEND_RANK`` (for merging).

    Sends, the other records and the unusable ones are aggregated apart (each aggregation
    carries only its own figures: about half the work of one with every figure filtered by
    kind), and the first two joined per message; what each gives is what one aggregation over
    all of a message's records gives."""
    fallback_details = (
        """
        ARG_MIN(channel, sentAt) FILTER (WHERE kind = 'fallback') AS fallback_channel,
        ARG_MIN(reason, sentAt) FILTER (WHERE kind = 'fallback') AS fallback_reason,"""
        if details
        else ""
    )
    fallback_columns = "r.fallback_channel, r.fallback_reason," if details else ""
    # what every record but a send gives a message (the usable ones and the unusable alike)
    others = f"""COUNT(*) FILTER (WHERE kind = 'revoke') AS api_revoke_attempts,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke') AS api_revoke_first_at,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke' AND status = 200) AS api_revoked_at,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke' AND status = 404) AS api_refused_at,
        COUNT(*) FILTER (WHERE kind = 'revoke' AND status NOT IN (200, 404))
            AS api_revoke_errors,
        COUNT(*) FILTER (WHERE kind = 'fallback') AS fallbacks,
        MIN(sentAt) FILTER (WHERE kind = 'fallback') AS fallback_at,{fallback_details}
        MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
        MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at"""
    return f"""
rbm_outbox_sends AS (
    SELECT messageId AS message_id,
        COUNT(*) AS send_attempts,
        ARG_MIN({_send_record(details)}, {SEND_RANK}) AS chosen,
        MIN({SEND_RANK}) AS chosen_rank,
        MIN(sendTime) AS first_outbox_at,
        MAX(sendTime) AS last_outbox_at
    FROM rbm_outbox
    WHERE ok AND kind = 'send'
    GROUP BY messageId
),
rbm_outbox_others AS (
    SELECT messageId AS message_id,
        COUNT(*) AS outbox_lines,
        {others}
    FROM rbm_outbox
    WHERE ok AND kind <> 'send'
    GROUP BY messageId
),
rbm_outbox_messages AS (
    SELECT
        COALESCE(s.message_id, r.message_id) AS message_id,
        CAST(NULL AS VARCHAR) AS bad_file,
        CAST(NULL AS VARCHAR) AS problem,
        COALESCE(s.send_attempts, 0) + COALESCE(r.outbox_lines, 0) AS outbox_lines,
        COALESCE(s.send_attempts, 0) AS send_attempts,
        s.chosen,{" s.chosen_rank," if rank else ""}
        COALESCE(r.api_revoke_attempts, 0) AS api_revoke_attempts,
        r.api_revoke_first_at,
        r.api_revoked_at,
        r.api_refused_at,
        COALESCE(r.api_revoke_errors, 0) AS api_revoke_errors,
        COALESCE(r.fallbacks, 0) AS fallbacks,
        r.fallback_at,{fallback_columns}
        CASE WHEN r.first_outbox_at IS NULL OR s.first_outbox_at <= r.first_outbox_at
            THEN s.first_outbox_at ELSE r.first_outbox_at END AS first_outbox_at,
        CASE WHEN r.last_outbox_at IS NULL OR s.last_outbox_at >= r.last_outbox_at
            THEN s.last_outbox_at ELSE r.last_outbox_at END AS last_outbox_at
    FROM rbm_outbox_sends AS s
    FULL OUTER JOIN rbm_outbox_others AS r ON s.message_id = r.message_id
    UNION ALL
    SELECT
        CAST(NULL AS VARCHAR) AS message_id,
        source_file AS bad_file,
        problem,
        COUNT(*) AS outbox_lines,
        COUNT(*) FILTER (WHERE kind = 'send') AS send_attempts,
        ARG_MIN({_send_record(details)}, {SEND_RANK}) FILTER (WHERE kind = 'send') AS chosen,{
        f" MIN({SEND_RANK}) FILTER (WHERE kind = 'send') AS chosen_rank," if rank else ""
    }
        {others}
    FROM rbm_outbox
    WHERE NOT ok
    GROUP BY source_file, problem
)"""


_EVENT_COLUMNS = (
    *(f"{name}_at" for name in KEY_EVENTS.values()),
    "events",
    "lines",
    "unverified",
    "first_event_at",
    "last_event_at",
    "first_event_rx",
    "first_received_at",
    "last_received_at",
)
_OUTBOX_COLUMNS = (
    "send_attempts",
    "api_revoke_attempts",
    "api_revoke_first_at",
    "api_revoked_at",
    "api_refused_at",
    "api_revoke_errors",
    "fallbacks",
    "fallback_at",
    "outbox_lines",
    "first_outbox_at",
    "last_outbox_at",
)


def _facts_ctes(details: bool) -> str:
    return f"""{_EVENT_LINES.format(source="rbm_event_rows")},
{event_keys_cte()},
{events_per_message_cte()},
{_OUTBOX_LINES.format(source="rbm_outbox_rows")},
{outbox_per_message_cte(details)}"""


#: How a facts row is classified: a message, or one of the rows about no message or no send.
_ROW_KIND = """CASE
        WHEN o.bad_file IS NOT NULL THEN 'malformed_outbox_lines'
        WHEN e.row_class <> 'message' THEN e.row_class
        WHEN o.send_attempts > 0 AND o.chosen.send_status IN (200, 404) THEN 'message'
        WHEN o.send_attempts > 0 THEN 'failed_send'
        WHEN o.message_id IS NOT NULL THEN 'outbox_without_send'
        ELSE 'unknown_message'
    END"""


def _facts_select(details: bool) -> str:
    """The facts from the CTEs of ``_facts_ctes``; ``details`` adds ``DETAIL_COLUMNS``."""
    chosen = [f"o.chosen.{name} AS {name}" for name in _SEND_FIELDS if name != "ttl"]
    chosen.insert(3, "TRY_CAST(REPLACE(o.chosen.ttl, 's', '') AS DOUBLE) AS ttl_seconds")
    extra = (
        [
            "o.chosen.agent_id AS agent_id",
            "o.chosen.phone AS phone",
            "o.fallback_channel",
            "o.fallback_reason",
        ]
        if details
        else []
    )
    columns = ",\n    ".join(
        [*(f"e.{c}" for c in _EVENT_COLUMNS), *chosen, *(f"o.{c}" for c in _OUTBOX_COLUMNS), *extra]
    )
    return f"""SELECT
    {_ROW_KIND} AS row_kind,
    COALESCE(o.message_id, e.message_id) AS message_id,
    COALESCE(e.bad_file, o.bad_file) AS bad_file,
    COALESCE(e.problem, o.problem) AS problem,
    {columns}
FROM rbm_outbox_messages AS o
FULL OUTER JOIN rbm_message_events AS e ON o.message_id = e.message_id"""


#: The facts: one row per message id seen in either log (``row_kind`` says what it is), plus
#: rows carrying the counts of malformed lines (per file), of events about no message and of
#: unusable outbox records (per file). The per-message events and outbox records meet in one
#: full join; the rows about no message match nothing (their messageId is NULL) and pass.
FACTS = f"WITH\n{_facts_ctes(True)}\n{_facts_select(True)}\n"

_OUTCOME = """CASE
        WHEN send_status = 404 THEN 'not_rcs'
        WHEN delivered_at IS NOT NULL AND revoke_ok_at IS NOT NULL
            AND revoke_ok_at <= delivered_at THEN 'delivered_after_revoke'
        WHEN delivered_at IS NOT NULL THEN 'delivered'
        WHEN revoke_ok_at IS NOT NULL THEN 'revoked'
        WHEN api_refused_at IS NOT NULL OR ttl_failed_at IS NOT NULL
            THEN 'revoke_failed_undelivered'
        ELSE 'pending'
    END"""

_REVOKE_METHOD = """CASE
        WHEN api_revoke_attempts > 0
            AND (ttl_event_at IS NULL OR api_revoke_first_at <= ttl_event_at) THEN 'api'
        WHEN ttl_event_at IS NOT NULL THEN 'ttl'
        WHEN api_revoke_attempts > 0 THEN 'api'
    END"""

_DELIVERED = "outcome IN ('delivered', 'delivered_after_revoke')"

#: How far before its send an event of a message may be stamped and still count as clock skew
#: (latency clamped at 0); further is an implausible time.
SKEW_TOLERANCE_US = 60 * 1_000_000
#: How long after its send an event of a message may come: RBM deletes an undelivered message
#: 30 days after it was sent; a day more for clocks. Later is an implausible time.
LIFETIME_US = 31 * 86_400 * 1_000_000
#: How far the event times may run past the latest time the logs were written (a receipt or an
#: outbox record) and still mark the end of the logs: a year-9999 time does not push it.
HORIZON = "INTERVAL 1 DAY"

_IMPLAUSIBLE = f"""COALESCE(
            EPOCH_US(first_event_at) < EPOCH_US(send_time) - {SKEW_TOLERANCE_US}
            OR EPOCH_US(last_event_at) > EPOCH_US(send_time) + {LIFETIME_US}, FALSE)"""


def observed_until_sql(seen: str = "last_seen_at", anchor: str = "last_anchor_at") -> str:
    """The end of the logs as an aggregate: the latest time seen, at most ``HORIZON`` past the
    latest receipt or outbox record (``anchor``)."""
    return f"LEAST(MAX({seen}), MAX({anchor}) + {HORIZON})"


def _ruled(facts: str, observed_until: str, where: str) -> str:
    """The lifecycle rules as two CTEs over the facts relation ``facts``: ``rbm_timed`` (the
    times the rules compare, and whether the message's event times are implausible: stamped
    more than ``SKEW_TOLERANCE_US`` before the send or ``LIFETIME_US`` after it) and
    ``rbm_ruled`` (outcome, revoke method, latency and the censoring time, none of them for an
    implausible message; ``observed_until``, the end of the logs, is one of its bounds; the
    times the message was first and last seen, its implausible event times left out)."""
    return f"""rbm_timed AS (
    SELECT f.*, {observed_until} AS observed_until,
        LEAST(api_revoked_at, ttl_revoked_at) AS revoke_ok_at,
        LEAST(ttl_revoked_at, ttl_failed_at) AS ttl_event_at,
        COALESCE({_seconds("send_time", "expire_time")}, ttl_seconds) AS expires_after,
        {_IMPLAUSIBLE} AS implausible
    FROM {facts}
    WHERE {where}
),
rbm_ruled AS (
    SELECT *,
        {_OUTCOME} AS outcome,
        {_REVOKE_METHOD} AS revoke_method,
        CASE WHEN NOT implausible
            THEN GREATEST({_seconds("send_time", "delivered_at")}, 0.0) END AS latency,
        CASE WHEN NOT implausible THEN GREATEST(LEAST(
            {_seconds("send_time", "revoke_ok_at")},
            {_seconds("send_time", "api_refused_at")},
            {_seconds("send_time", "ttl_failed_at")},
            expires_after,
            {_seconds("send_time", "observed_until")}
        ), 0.0) END AS censored_after,
        LEAST(CASE WHEN NOT implausible THEN first_event_at END, first_received_at,
            first_outbox_at) AS first_seen_at,
        GREATEST(CASE WHEN NOT implausible THEN last_event_at END, last_received_at,
            last_outbox_at) AS last_seen_at,
        GREATEST(last_received_at, last_outbox_at) AS last_anchor_at
    FROM rbm_timed
)"""


_LIFECYCLE_VALUES = {
    "outcome": "outcome",
    "revokeMethod": "revoke_method",
    "revokeSucceeded": "outcome = 'revoked'",
    "delivered": _DELIVERED,
    "latencySeconds": f"CASE WHEN {_DELIVERED} THEN latency END",
    "observedSeconds": f"""CASE
        WHEN outcome = 'not_rcs' THEN NULL
        WHEN {_DELIVERED} THEN latency
        ELSE censored_after
    END""",
    "staleDelivery": f"COALESCE({_DELIVERED} AND latency > expires_after, FALSE)",
    "doubleDelivery": f"COALESCE({_DELIVERED} AND delivered_at > fallback_at, FALSE)",
    "readSeconds": f"""CASE WHEN {_DELIVERED} AND read_at IS NOT NULL AND NOT implausible
        THEN GREATEST({_seconds("delivered_at", "read_at")}, 0.0) END""",
    "events": "COALESCE(events, 0)",
    "duplicateEvents": "CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS BIGINT)",
    "clockSkew": "COALESCE(first_event_at < send_time AND NOT implausible, FALSE)",
    "outOfOrder": "COALESCE(first_event_rx > first_received_at, FALSE)",
    "implausibleTime": "implausible",
}


def _value(name: str) -> str:
    return f'{_LIFECYCLE_VALUES[name]} AS "{name}"'


#: The lifecycle of log-format section 3, one row per sent message, from ``rbm_facts``.
LIFECYCLE = f"""
WITH rbm_span AS (
    SELECT {observed_until_sql()} AS observed_until FROM (
        SELECT GREATEST(CASE WHEN NOT {_IMPLAUSIBLE} THEN last_event_at END, last_received_at,
                last_outbox_at) AS last_seen_at,
            GREATEST(last_received_at, last_outbox_at) AS last_anchor_at
        FROM rbm_facts
    ) AS rbm_times
),
{_ruled("rbm_facts AS f CROSS JOIN rbm_span AS s", "s.observed_until", "row_kind = 'message'")}
SELECT
    message_id AS "messageId",
    agent_id AS "agentId",
    phone,
    use_case AS "useCase",
    traffic_type AS "trafficType",
    experiment,
    arm,
    policy_version AS "policyVersion",
    CAST(send_time AS DATE) AS day,
    send_time AS "sendTime",
    send_status AS "sendStatus",
    send_attempts AS "sendAttempts",
    ttl_seconds AS "ttlSeconds",
    expire_time AS "expireTime",
    expires_after AS "expiresAfterSeconds",
    delivered_at AS "deliveredAt",
    read_at AS "readAt",
    api_revoke_attempts AS "revokeAttempts",
    api_revoke_first_at AS "revokeRequestedAt",
    api_revoked_at AS "revokedAt",
    api_refused_at AS "revokeRefusedAt",
    api_revoke_errors AS "revokeErrors",
    ttl_revoked_at AS "ttlRevokedAt",
    ttl_failed_at AS "ttlRevokeFailedAt",
    fallbacks,
    fallback_at AS "fallbackAt",
    fallback_channel AS "fallbackChannel",
    fallback_reason AS "fallbackReason",
    {_value("outcome")},
    {_value("revokeMethod")},
    {_value("revokeSucceeded")},
    {_value("delivered")},
    {_value("latencySeconds")},
    {_value("observedSeconds")},
    {_value("staleDelivery")},
    {_value("doubleDelivery")},
    {_value("readSeconds")},
    {_value("events")},
    {_value("duplicateEvents")},
    {_value("clockSkew")},
    {_value("outOfOrder")},
    {_value("implausibleTime")}
FROM rbm_ruled
"""


#: Lifecycle columns a metric may group by, as SQL over the facts.
_GROUP_VALUES = {
    "useCase": "use_case",
    "trafficType": "traffic_type",
    "experiment": "experiment",
    "arm": "arm",
    "policyVersion": "policy_version",
    "day": "CAST(send_time AS DATE)",
}
_GROUPS = ", ".join(f'"{name}"' for name in _GROUP_VALUES)
#: The yes/no facts a group count counts, by their column name in the load summary.
_FLAGS = {
    "flag_read": '"readSeconds" IS NOT NULL',
    "flag_stale": '"staleDelivery"',
    "flag_double": '"doubleDelivery"',
    "flag_fallback": "fallbacks > 0",
    "flag_skew": '"clockSkew"',
    "flag_unordered": '"outOfOrder"',
    "flag_implausible": '"implausibleTime"',
}


def _summary_rows(partition: str | None = None) -> str:
    """Every facts row with the lifecycle values the metrics group by, for ``SUMMARY``
    (``partition``: an expression kept as the column ``rbm_partition``)."""
    groups = ",\n        ".join(f'{sql} AS "{name}"' for name, sql in _GROUP_VALUES.items())
    values = ",\n        ".join(
        _value(name)
        for name in (
            "outcome",
            "revokeMethod",
            "delivered",
            "observedSeconds",
            "staleDelivery",
            "doubleDelivery",
            "readSeconds",
            "duplicateEvents",
            "clockSkew",
            "outOfOrder",
            "implausibleTime",
        )
    )
    kept = f"{partition} AS rbm_partition, " if partition else ""
    return f"""rbm_summary_rows AS (
    SELECT {kept}row_kind, bad_file, problem, lines, events AS fact_events, unverified,
        outbox_lines,
        first_seen_at, last_seen_at, last_anchor_at, fallbacks, send_time, expires_after,
        {groups},
        {values}
    FROM rbm_ruled
)"""


_FLAG_COLUMNS = ",\n        ".join(f"{sql} AS {name}" for name, sql in _FLAGS.items())
#: The columns a row of the load summary is counted by (after ``part``).
_SUMMARY_KEYS = f"""row_kind, bad_file, problem, {_GROUPS},
    outcome, "revokeMethod", {", ".join(_FLAGS)},
    latency_bin, delivered, pending_since, pending_expires, read_bin"""


def _summary(ctes: str) -> str:
    """``SUMMARY`` after ``ctes`` (the CTEs defining the per-message relations, or nothing
    when they are tables)."""
    return summary_over(
        f"{ctes}rbm_facts_core AS (\n{_facts_select(False)}\n),\n", "rbm_facts_core"
    )


def summary_over(ctes: str, facts: str, partition: str | None = None) -> str:
    """The load summary (``SUMMARY``'s result) of the facts relation ``facts``, which ``ctes``
    (CTE text ending in a comma, or nothing) may define: any relation with the facts'
    columns, such as a history's per-message state (see ``state``). ``partition`` (an
    expression over the facts) splits it into one summary per value, in the column
    ``rbm_partition`` (summing those gives the whole)."""
    kept = "rbm_partition, " if partition else ""
    return f"""WITH
{ctes}{_ruled(f"{facts} AS f", "CAST(NULL AS TIMESTAMPTZ)", "TRUE")},
{_summary_rows(partition)}
SELECT
    {kept}CASE
        WHEN GROUPING(outcome) = 0 THEN 'counts'
        WHEN GROUPING(latency_bin) = 0 THEN 'latency'
        ELSE 'read'
    END AS part,
    {_SUMMARY_KEYS},
    COUNT(*) AS n,
    SUM("duplicateEvents") AS duplicates,
    SUM(lines) AS lines,
    SUM(fact_events) AS events,
    SUM(unverified) AS unverified,
    SUM(outbox_lines) AS outbox_lines,
    MIN(first_seen_at) AS first_seen_at,
    MAX(last_seen_at) AS last_seen_at,
    MAX(last_anchor_at) AS last_anchor_at
FROM (
    SELECT *,
        {_FLAG_COLUMNS},
        CASE WHEN outcome NOT IN ('not_rcs', 'pending')
            THEN {bin_expression('"observedSeconds"')} END AS latency_bin,
        CASE WHEN outcome = 'pending' AND NOT "implausibleTime" THEN send_time END
            AS pending_since,
        CASE WHEN outcome = 'pending' AND NOT "implausibleTime" THEN expires_after END
            AS pending_expires,
        {bin_expression('"readSeconds"')} AS read_bin
    FROM rbm_summary_rows
) AS rbm_summary_input
GROUP BY GROUPING SETS (
    ({kept}row_kind, bad_file, problem, {_GROUPS}, outcome, "revokeMethod",
        {", ".join(_FLAGS)}),
    ({kept}row_kind, {_GROUPS}, latency_bin, delivered, pending_since, pending_expires),
    ({kept}row_kind, {_GROUPS}, read_bin)
)
"""


#: What a load computes, in one pass over both logs and nothing per message kept: the facts
#: (without ``DETAIL_COLUMNS``) through the lifecycle rules into a small table of counts, in
#: three parts: ``counts`` (per row kind, bad file, group, outcome, revoke method and the
#: flags of ``_FLAGS``: messages, duplicates, and the sums ``LOAD_REPORT`` adds up),
#: ``latency`` (per group, latency bin and delivered-or-censored; messages still pending
#: per send time and expiry instead, as they are censored at the end of the logs, known only
#: once everything is read) and ``read`` (per group and bin of time to read). Its groups are
#: the finest (every column of ``GROUP_COLUMNS``); any grouping sums them up
#: (``summary_counts_sql``, ``summary_latency_bins_sql``, ``summary_read_bins_sql``).
SUMMARY = _summary(_facts_ctes(False) + ",\n")


def _per_message_steps(details: bool) -> tuple[tuple[str, str], ...]:
    """The per-message outbox and events, each its own statement (materialised as a table of
    that name), so an engine runs one big aggregation at a time."""
    ctes = _facts_ctes(details)
    return tuple(
        (name, f"WITH\n{ctes}\nSELECT * FROM {name}")
        for name in ("rbm_outbox_messages", "rbm_message_events")
    )


#: ``SUMMARY`` in three statements, for ``load``: the per-message outbox and events first, each
#: materialised as a table of that name, then ``SUMMARY`` over the two tables (the caller drops
#: them). The same SQL, and the same result, but an engine runs one big aggregation at a time:
#: as one statement, DuckDB holds the join's table while the second aggregate runs, and at 100
#: million lines under a 3 GB memory limit it ran out of memory instead of spilling.
SUMMARY_STEPS: tuple[tuple[str, str], ...] = (
    *_per_message_steps(False),
    ("rbm_summary", _summary("")),
)

#: ``FACTS`` in three statements, for ``Dataset.lifecycle``, for the same reason as
#: ``SUMMARY_STEPS``: the per-message outbox and events (with ``DETAIL_COLUMNS``), then their
#: full join as ``rbm_facts`` (the caller drops the two intermediate tables).
FACTS_STEPS: tuple[tuple[str, str], ...] = (
    *_per_message_steps(True),
    ("rbm_facts", _facts_select(True)),
)


def sent_predicate(start: str | None, end: str | None) -> str | None:
    """The condition "the message's send (``chosen.send_time``) lies in ``[start, end)``"
    (RFC 3339 UTC texts; None leaves a side open; None for no bound at all)."""
    bounds = [
        f"chosen.send_time {op} CAST('{bound}' AS TIMESTAMPTZ)"
        for op, bound in ((">=", start), ("<", end))
        if bound is not None
    ]
    return " AND ".join(bounds) or None


def sent_in(
    steps: tuple[tuple[str, str], ...], start: str | None, end: str | None
) -> tuple[tuple[str, str], ...]:
    """``steps`` (``SUMMARY_STEPS`` or ``FACTS_STEPS``) for the messages sent in ``[start, end)``
    only (RFC 3339 UTC texts; None leaves a side open): a predicate on the per-message outbox,
    so the records of other messages leave the analysis and events about them count as events
    about unknown messages; the rows counting unusable outbox records stay."""
    predicate = sent_predicate(start, end)
    if predicate is None:
        return steps
    where = f"\nWHERE bad_file IS NOT NULL OR ({predicate})"
    return tuple(
        (name, query + where if name == "rbm_outbox_messages" else query) for name, query in steps
    )


#: Load summaries of disjoint sets of messages (``rbm_summary_parts``: their rows, stacked)
#: added up into one, as ``SUMMARY`` over all the messages at once gives it: counts and sums
#: add, first and last times take their extremes. A row about no message (other events,
#: malformed lines) is one facts row per part, as it is one in one pass: it counts once. For
#: logs analysed part by part (see ``buckets``); the sums are cast back to ``SUMMARY``'s types.
SUMMARY_COMBINE = f"""
SELECT part, {_SUMMARY_KEYS},
    CAST(CASE WHEN row_kind IN ('other_events', 'malformed_event_lines', 'malformed_outbox_lines')
        THEN MIN(n) ELSE SUM(n) END AS BIGINT) AS n,
    CAST(SUM(duplicates) AS HUGEINT) AS duplicates,
    CAST(SUM(lines) AS HUGEINT) AS lines,
    CAST(SUM(events) AS HUGEINT) AS events,
    CAST(SUM(unverified) AS HUGEINT) AS unverified,
    CAST(SUM(outbox_lines) AS HUGEINT) AS outbox_lines,
    MIN(first_seen_at) AS first_seen_at,
    MAX(last_seen_at) AS last_seen_at,
    MAX(last_anchor_at) AS last_anchor_at
FROM rbm_summary_parts
GROUP BY part, {_SUMMARY_KEYS}
"""


def summary_rows_sql(source: str, where: str) -> str:
    """The rows of ``source`` (summary rows) that ``where`` selects, typed as
    ``SUMMARY_COMBINE`` types its result: rows no other row shares its keys with, which need no
    adding up (see ``history.HistoryMerge.summarise``)."""
    return f"""
SELECT part, {_SUMMARY_KEYS},
    CAST(n AS BIGINT) AS n,
    CAST(duplicates AS HUGEINT) AS duplicates,
    CAST(lines AS HUGEINT) AS lines,
    CAST(events AS HUGEINT) AS events,
    CAST(unverified AS HUGEINT) AS unverified,
    CAST(outbox_lines AS HUGEINT) AS outbox_lines,
    first_seen_at, last_seen_at, last_anchor_at
FROM {source}
WHERE {where}"""


#: What a load read: one row of counts from ``rbm_summary`` (see ``dataset.LoadReport``).
LOAD_REPORT = f"""
SELECT
    CAST(COALESCE(SUM(lines), 0) AS BIGINT) AS lines,
    CAST(COALESCE(SUM(events), 0) AS BIGINT) AS events,
    CAST(COALESCE(SUM(lines) FILTER (WHERE row_kind <> 'malformed_event_lines'), 0)
        - COALESCE(SUM(events), 0) AS BIGINT) AS duplicates,
    CAST(COALESCE(SUM(lines) FILTER (WHERE row_kind = 'malformed_event_lines'), 0) AS BIGINT)
        AS malformed,
    CAST(COALESCE(SUM(unverified), 0) AS BIGINT) AS unverified,
    CAST(COALESCE(SUM(events) FILTER (WHERE row_kind = 'other_events'), 0) AS BIGINT)
        AS other_events,
    CAST(COALESCE(SUM(events) FILTER (WHERE row_kind = 'unknown_message'), 0) AS BIGINT)
        AS unknown_message_events,
    CAST(COALESCE(SUM(n) FILTER (WHERE row_kind = 'unknown_message'), 0) AS BIGINT)
        AS unknown_messages,
    CAST(COALESCE(SUM(outbox_lines) FILTER (WHERE row_kind <> 'malformed_outbox_lines'), 0)
        AS BIGINT) AS outbox_records,
    CAST(COALESCE(SUM(outbox_lines) FILTER (WHERE row_kind = 'malformed_outbox_lines'), 0)
        AS BIGINT) AS outbox_malformed,
    CAST(COALESCE(SUM(n) FILTER (WHERE row_kind = 'message'), 0) AS BIGINT) AS messages,
    CAST(COALESCE(SUM(n) FILTER (WHERE row_kind = 'failed_send'), 0) AS BIGINT) AS failed_sends,
    CAST(COALESCE(SUM(n) FILTER (WHERE row_kind = 'outbox_without_send'), 0) AS BIGINT)
        AS outbox_without_send,
    CAST(COALESCE(SUM(n) FILTER (WHERE row_kind = 'message' AND flag_implausible), 0) AS BIGINT)
        AS implausible_times,
    MIN(first_seen_at) AS span_start,
    {observed_until_sql()} AS span_end
FROM rbm_summary
WHERE part = 'counts'
"""

#: The files that held malformed lines, each problem with its count of lines, from
#: ``rbm_summary``.
BAD_FILES = """
SELECT row_kind, bad_file, problem,
    CAST(SUM(CASE WHEN row_kind = 'malformed_event_lines' THEN lines ELSE outbox_lines END)
        AS BIGINT) AS lines
FROM rbm_summary
WHERE part = 'counts' AND row_kind IN ('malformed_event_lines', 'malformed_outbox_lines')
GROUP BY row_kind, bad_file, problem
ORDER BY bad_file, problem
"""


def group_clauses(by: list[str]) -> tuple[str, str, str]:
    """The select-list prefix, GROUP BY and ORDER BY clauses of a grouping (empty: none)."""
    cols = ", ".join(f'"{c}"' for c in by)
    if not cols:
        return "", "", ""
    return cols + ", ", f"GROUP BY {cols}", f"ORDER BY {cols}"


def _total(condition: str | None = None, column: str = "n") -> str:
    filtered = f" FILTER (WHERE {condition})" if condition else ""
    return f"CAST(COALESCE(SUM({column}){filtered}, 0) AS BIGINT)"


def counts_columns(count: Callable[[str | None], str], duplicates: str) -> str:
    """The columns of the group counts, whatever relation they are counted from."""
    method = '"revokeMethod"'
    columns = {
        "messages": count(None),
        **{o: count(f"outcome = '{o}'") for o in OUTCOMES},
        "revoke_tried": count(f"{method} IS NOT NULL"),
        "api_tried": count(f"{method} = 'api'"),
        "api_revoked": count(f"{method} = 'api' AND outcome = 'revoked'"),
        "ttl_tried": count(f"{method} = 'ttl'"),
        "ttl_revoked": count(f"{method} = 'ttl' AND outcome = 'revoked'"),
        **{
            f"{m}_outcome_{o}": count(f"{method} = '{m}' AND outcome = '{o}'")
            for m in REVOKE_METHODS
            for o in OUTCOMES
        },
        "read": count(_FLAGS["flag_read"]),
        "stale_deliveries": count(_FLAGS["flag_stale"]),
        "double_deliveries": count(_FLAGS["flag_double"]),
        "fallbacks": count(_FLAGS["flag_fallback"]),
        # a send answered 404 never entered RCS: its SMS went out for want of RCS, not a revoke
        "not_rcs_fallbacks": count(f"outcome = 'not_rcs' AND {_FLAGS['flag_fallback']}"),
        "clock_skew": count(_FLAGS["flag_skew"]),
        "out_of_order": count(_FLAGS["flag_unordered"]),
        "implausible_times": count(_FLAGS["flag_implausible"]),
        "duplicate_events": duplicates,
    }
    return ",\n    ".join(f"{sql} AS {name}" for name, sql in columns.items())


def summary_counts_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``group_counts_sql`` summed up from the ``counts`` part of the load summary."""
    by = validate_by(by)
    select, group, order = group_clauses(by)
    flags = {name: name for name in _FLAGS}
    count_sql = counts_columns(
        lambda condition: _total(_flag_names(condition, flags)),
        _total(None, "duplicates"),
    )
    return f"""
SELECT {select}
    {count_sql}
FROM {source}
WHERE part = 'counts' AND row_kind = 'message'
{group}
{order}
"""


def _flag_names(condition: str | None, flags: dict[str, str]) -> str | None:
    """A counts condition in the summary's terms (its flags are columns there)."""
    if condition is None:
        return None
    for name, sql in _FLAGS.items():
        condition = condition.replace(sql, flags[name])
    return condition


def summary_latency_bins_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``latency_bins_sql`` summed up from the load summary: the ``latency`` part, plus the
    ``pending`` part censored at the end of the logs (its latest time) or at its expiry."""
    by = validate_by(by)
    select, group, _ = group_clauses(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    observed = (
        f"GREATEST(LEAST(pending_expires, {_seconds('pending_since', 'observed_until')}), 0.0)"
    )
    return f"""
WITH rbm_span AS (
    SELECT {observed_until_sql()} AS observed_until FROM {source} WHERE part = 'counts'
),
rbm_binned AS (
    SELECT {_GROUPS}, latency_bin AS bin, delivered, n
    FROM {source}
    WHERE part = 'latency' AND row_kind = 'message' AND latency_bin IS NOT NULL
    UNION ALL
    SELECT {_GROUPS}, {bin_expression(observed)} AS bin, FALSE AS delivered, n
    FROM {source} CROSS JOIN rbm_span
    WHERE part = 'latency' AND row_kind = 'message' AND pending_since IS NOT NULL
)
SELECT {select}
    bin,
    {_total("delivered")} AS delivered,
    {_total("NOT delivered")} AS censored
FROM rbm_binned
{group}
"""


def summary_read_bins_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``read_bins_sql`` summed up from the ``read`` part of the load summary."""
    by = validate_by(by)
    select, group, _ = group_clauses(by)
    group = f"{group}, read_bin" if group else "GROUP BY read_bin"
    return f"""
SELECT {select}
    read_bin AS bin,
    {_total()} AS read
FROM {source}
WHERE part = 'read' AND row_kind = 'message' AND read_bin IS NOT NULL
{group}
"""


def transpile(sql: str, dialect: str) -> str:
    """The same statement in another engine's dialect (``"spark"``, ``"bigquery"``), DuckDB's
    meaning kept where the engines' functions differ (see ``dialects``)."""
    from rbmtools.analysis.dialects import transpile as transpile_meaning

    return transpile_meaning(sql, dialect)
