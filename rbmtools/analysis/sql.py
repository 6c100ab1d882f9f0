"""The heavy part of the analysis, defined once as SQL: events + outbox -> lifecycle -> aggregates.

Everything here is plain SQL in DuckDB's dialect, written so that sqlglot can transpile it to
Spark SQL and BigQuery (``transpile``). It reads two relations that an engine provides with
fixed column names (``rbm_event_rows`` and ``rbm_outbox_rows``, see ``EVENT_ROW_COLUMNS`` and
``OUTBOX_ROW_COLUMNS``) and one engine function, ``rbm_decode_push(data)``, which turns the
base64 ``message.data`` of a Pub/Sub push into the event struct (``sendTime`` left as text,
NULL fields when the data is not base64 of a JSON object). Reading files and decoding JSON
are the engine's business (``engine.py``); the rules of the lifecycle live only here.

A load runs ``SUMMARY`` (as ``SUMMARY_STEPS``, three statements, so each big aggregation spills
on its own): both logs, grouped per message (``FACTS`` without the
``DETAIL_COLUMNS``), through the lifecycle rules, into a small table ``rbm_summary`` of counts
per finest group; ``LOAD_REPORT``, ``BAD_FILES`` and the compact aggregates per grouping
(``summary_counts_sql``, ``summary_latency_bins_sql``, ``summary_read_bins_sql``) sum it up,
and Python turns those into statistics. Per-message rows are built only when asked for:
``FACTS`` (the table ``rbm_facts``, built as ``FACTS_STEPS`` like the summary: one row per
message joining both logs, plus rows that carry counts of malformed lines and of events that
belong to no message) and ``LIFECYCLE`` (the view
``rbm_lifecycle``: the outcomes and columns of log-format section 3); ``group_counts_sql``,
``latency_bins_sql`` and ``read_bins_sql`` count from that view and give the same numbers as
the summary (a test holds them equal).

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
    "group_counts_sql",
    "latency_bins_sql",
    "read_bins_sql",
    "sent_in",
    "summary_counts_sql",
    "summary_latency_bins_sql",
    "summary_read_bins_sql",
    "transpile",
]

#: Fields of a decoded RBM event that the analysis reads, with their SQL types (others, such
#: as agentId or a reply's text, are skipped by the reader).
EVENT_STRUCT_FIELDS: dict[str, str] = {
    "senderPhoneNumber": "VARCHAR",
    "phoneNumber": "VARCHAR",
    "messageId": "VARCHAR",
    "eventId": "VARCHAR",
    "sendTime": "TIMESTAMPTZ",
    "eventType": "VARCHAR",
}


def _struct(fields: dict[str, str]) -> str:
    return "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in fields.items()) + ")"


#: The event relation an engine provides: the union of the three line shapes of the event log
#: (receiver record, Pub/Sub push body, bare decoded event) plus the file each row came from.
#: A line that is not JSON, or does not fit these types, arrives as a row of NULLs.
EVENT_ROW_COLUMNS: dict[str, str] = {
    "receivedAt": "TIMESTAMPTZ",
    "verified": "BOOLEAN",
    "event": _struct(EVENT_STRUCT_FIELDS),
    **EVENT_STRUCT_FIELDS,
    "message": "STRUCT(data VARCHAR, publishTime TIMESTAMPTZ)",
}

#: The outbox relation an engine provides: the union of send, revoke and fallback records.
OUTBOX_ROW_COLUMNS: dict[str, str] = {
    "kind": "VARCHAR",
    "messageId": "VARCHAR",
    "phone": "VARCHAR",
    "agentId": "VARCHAR",
    "sendTime": "TIMESTAMPTZ",
    "useCase": "VARCHAR",
    "trafficType": "VARCHAR",
    "ttl": "VARCHAR",
    "expireTime": "TIMESTAMPTZ",
    "status": "INTEGER",
    "experiment": "VARCHAR",
    "arm": "VARCHAR",
    "error": "VARCHAR",
    "requestedAt": "TIMESTAMPTZ",
    "attempt": "INTEGER",
    "channel": "VARCHAR",
    "sentAt": "TIMESTAMPTZ",
    "reason": "VARCHAR",
    "policyVersion": "VARCHAR",
}

#: The lifecycle event types, with the column prefix each gets in the facts.
KEY_EVENTS = {
    "DELIVERED": "delivered",
    "READ": "read",
    "TTL_EXPIRATION_REVOKED": "ttl_revoked",
    "TTL_EXPIRATION_REVOKE_FAILED": "ttl_failed",
}


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


# Stage 1: every line as one normalised event (or a malformed line), shape by shape.
_EVENT_LINES = f"""
rbm_event_shapes AS (
    SELECT source_file, verified, receivedAt, event, message,
        {", ".join(EVENT_STRUCT_FIELDS)},
        CASE WHEN message.data IS NOT NULL THEN rbm_decode_push(message.data) END AS push_event
    FROM {{source}}
),
rbm_events AS (
    SELECT
        source_file,
        verified,
        COALESCE(receivedAt, message.publishTime) AS received_at,
        {_field("messageId")} AS message_id,
        {_field("eventId")} AS event_id,
        {_field("eventType")} AS event_type,
        COALESCE(event.sendTime, sendTime, TRY_CAST(push_event.sendTime AS TIMESTAMPTZ))
            AS send_time,
        {_field("senderPhoneNumber")} AS sender_phone,
        {_field("phoneNumber")} AS server_phone,
        COALESCE(push_event.sendTime IS NOT NULL
            AND TRY_CAST(push_event.sendTime AS TIMESTAMPTZ) IS NULL, FALSE) AS bad_time
    FROM rbm_event_shapes
),
rbm_classified AS (
    SELECT *,
        CASE
            WHEN bad_time THEN 'malformed'
            WHEN sender_phone IS NOT NULL AND event_type IS NOT NULL AND message_id IS NOT NULL
                THEN 'message'
            WHEN sender_phone IS NOT NULL AND (event_type IS NOT NULL OR message_id IS NOT NULL)
                THEN 'other'
            WHEN server_phone IS NOT NULL AND event_type IS NOT NULL AND message_id IS NOT NULL
                THEN 'message'
            WHEN server_phone IS NOT NULL AND event_type IS NOT NULL THEN 'other'
            ELSE 'malformed'
        END AS cls
    FROM rbm_events
)"""


def event_line_classes_sql(source: str) -> str:
    """The class of each row of ``source`` (an event-row relation), in its order:
    ``message``, ``other`` (replies, typing, subscriptions) or ``malformed``."""
    return f"WITH {_EVENT_LINES.format(source=source)} SELECT cls FROM rbm_classified"


def events_export_sql(source: str = "rbm_event_rows") -> str:
    """Every event (not the malformed lines) as flat decoded columns, push bodies decoded:
    the layout ``Dataset.to_parquet`` writes and the Parquet reader maps back."""
    return f"""WITH {_EVENT_LINES.format(source=source)}
SELECT received_at AS "receivedAt", verified, message_id AS "messageId", event_id AS "eventId",
    event_type AS "eventType", send_time AS "sendTime", sender_phone AS "senderPhoneNumber",
    server_phone AS "phoneNumber"
FROM rbm_classified
WHERE cls <> 'malformed'
ORDER BY "sendTime", "messageId"
"""


def outbox_export_sql(source: str = "rbm_outbox_rows") -> str:
    """Every usable outbox record, as its flat columns."""
    return f"""WITH {_OUTBOX_LINES.format(source=source)}
SELECT * EXCLUDE (source_file, ok) FROM rbm_outbox WHERE ok"""


def outbox_line_ok_sql(source: str) -> str:
    """Whether each row of ``source`` (an outbox-row relation) is a usable record, in order."""
    return f"WITH {_OUTBOX_LINES.format(source=source)} SELECT ok FROM rbm_outbox"


# The outbox, record by record: ``ok`` when it is a usable send, revoke or fallback.
_OUTBOX_LINES = """
rbm_outbox AS (
    SELECT *,
        CASE
            WHEN kind = 'send' THEN messageId IS NOT NULL AND sendTime IS NOT NULL
                AND status IS NOT NULL
            WHEN kind = 'revoke' THEN messageId IS NOT NULL AND requestedAt IS NOT NULL
                AND status IS NOT NULL
            WHEN kind = 'fallback' THEN messageId IS NOT NULL AND sentAt IS NOT NULL
            ELSE FALSE
        END AS ok
    FROM {source}
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

# Stage 2: duplicates count once (same eventId, or same messageId + eventType + sendTime).
# Copies of one event share its messageId, so the key is hashed within the message. Only what
# stage 3 needs is kept, in fixed-width columns.
_EVENT_KEYS = f"""
rbm_event_keys AS (
    SELECT
        cls,
        CASE WHEN cls = 'message' THEN message_id END AS message_id,
        CASE WHEN cls = 'malformed' THEN source_file END AS bad_file,
        MIN({_TYPE_CODE}) AS type_code,
        MIN(send_time) AS send_time,
        MIN(received_at) AS received_at,
        COUNT(*) AS copies,
        COUNT(*) FILTER (WHERE verified = FALSE) AS unverified
    FROM rbm_classified
    GROUP BY cls, message_id,
        CASE WHEN event_id IS NOT NULL THEN HASH(event_id) ELSE HASH(event_type, send_time) END,
        CASE WHEN cls = 'malformed' THEN source_file END
)"""

_KEY_EVENT_AGGREGATES = ",\n        ".join(
    f"MIN(send_time) FILTER (WHERE type_code = {_KEY_EVENT_CODES[kind]}) AS {name}_at"
    for kind, name in KEY_EVENTS.items()
)

# Stage 3: per message (or per kind of non-message row), the first event of each kind that
# matters (MIN is order-free, so out-of-order arrival cannot change it), and counts.
_EVENTS_PER_MESSAGE = f"""
rbm_message_events AS (
    SELECT
        CASE cls WHEN 'message' THEN 'message' WHEN 'other' THEN 'other_events'
            ELSE 'malformed_event_lines' END AS row_class,
        message_id,
        bad_file,
        {_KEY_EVENT_AGGREGATES},
        CASE WHEN cls = 'malformed' THEN 0 ELSE COUNT(*) END AS events,
        SUM(copies) AS lines,
        SUM(unverified) AS unverified,
        MIN(send_time) AS first_event_at,
        ARG_MIN(received_at, send_time) AS first_event_rx,
        MIN(received_at) AS first_received_at,
        MAX(GREATEST(send_time, received_at)) AS last_event_seen
    FROM rbm_event_keys
    GROUP BY cls, message_id, bad_file
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


def _send_record(details: bool) -> str:
    fields = {**_SEND_FIELDS, **({"agent_id": "agentId", "phone": "phone"} if details else {})}
    return "{" + ", ".join(f"'{name}': {column}" for name, column in fields.items()) + "}"


def _outbox_per_message(details: bool) -> str:
    """Stage 4: the outbox per message, in one pass: the send record that speaks for it (a 200
    preferred, then a 404, then the first attempt; retries keep the messageId), revoke attempts
    and their answers, the first fallback. Unusable records are counted per file."""
    fallback_details = (
        """
        ARG_MIN(channel, sentAt) FILTER (WHERE kind = 'fallback') AS fallback_channel,
        ARG_MIN(reason, sentAt) FILTER (WHERE kind = 'fallback') AS fallback_reason,"""
        if details
        else ""
    )
    return f"""
rbm_outbox_messages AS (
    SELECT
        CASE WHEN ok THEN messageId END AS message_id,
        CASE WHEN ok THEN NULL ELSE source_file END AS bad_file,
        COUNT(*) AS outbox_lines,
        COUNT(*) FILTER (WHERE kind = 'send') AS send_attempts,
        ARG_MIN(
            {_send_record(details)},
            {{'rank': CASE status WHEN 200 THEN 0 WHEN 404 THEN 1 ELSE 2 END, 'at': sendTime}}
        ) FILTER (WHERE kind = 'send') AS chosen,
        COUNT(*) FILTER (WHERE kind = 'revoke') AS api_revoke_attempts,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke') AS api_revoke_first_at,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke' AND status = 200) AS api_revoked_at,
        MIN(requestedAt) FILTER (WHERE kind = 'revoke' AND status = 404) AS api_refused_at,
        COUNT(*) FILTER (WHERE kind = 'revoke' AND status NOT IN (200, 404))
            AS api_revoke_errors,
        COUNT(*) FILTER (WHERE kind = 'fallback') AS fallbacks,
        MIN(sentAt) FILTER (WHERE kind = 'fallback') AS fallback_at,{fallback_details}
        MIN(COALESCE(sendTime, requestedAt, sentAt)) AS first_outbox_at,
        MAX(COALESCE(sendTime, requestedAt, sentAt)) AS last_outbox_at
    FROM rbm_outbox
    GROUP BY 1, 2
)"""


_EVENT_COLUMNS = (
    *(f"{name}_at" for name in KEY_EVENTS.values()),
    "events",
    "lines",
    "unverified",
    "first_event_at",
    "first_event_rx",
    "first_received_at",
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
)


def _facts_ctes(details: bool) -> str:
    return f"""{_EVENT_LINES.format(source="rbm_event_rows")},
{_EVENT_KEYS},
{_EVENTS_PER_MESSAGE},
{_OUTBOX_LINES.format(source="rbm_outbox_rows")},
{_outbox_per_message(details)}"""


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
    CASE
        WHEN o.bad_file IS NOT NULL THEN 'malformed_outbox_lines'
        WHEN e.row_class <> 'message' THEN e.row_class
        WHEN o.send_attempts > 0 AND o.chosen.send_status IN (200, 404) THEN 'message'
        WHEN o.send_attempts > 0 THEN 'failed_send'
        WHEN o.message_id IS NOT NULL THEN 'outbox_without_send'
        ELSE 'unknown_message'
    END AS row_kind,
    COALESCE(o.message_id, e.message_id) AS message_id,
    COALESCE(e.bad_file, o.bad_file) AS bad_file,
    {columns},
    o.outbox_lines,
    LEAST(e.first_event_at, e.first_received_at, o.first_outbox_at) AS first_seen_at,
    GREATEST(e.last_event_seen, o.last_outbox_at) AS last_seen_at
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


def _ruled(facts: str, observed_until: str, where: str) -> str:
    """The lifecycle rules as two CTEs over the facts relation ``facts``: ``rbm_timed`` (the
    times the rules compare) and ``rbm_ruled`` (outcome, revoke method, latency and the
    censoring time; ``observed_until``, the end of the logs, is one of its bounds)."""
    return f"""rbm_timed AS (
    SELECT f.*, {observed_until} AS observed_until,
        LEAST(api_revoked_at, ttl_revoked_at) AS revoke_ok_at,
        LEAST(ttl_revoked_at, ttl_failed_at) AS ttl_event_at,
        COALESCE({_seconds("send_time", "expire_time")}, ttl_seconds) AS expires_after
    FROM {facts}
    WHERE {where}
),
rbm_ruled AS (
    SELECT *,
        {_OUTCOME} AS outcome,
        {_REVOKE_METHOD} AS revoke_method,
        GREATEST({_seconds("send_time", "delivered_at")}, 0.0) AS latency,
        GREATEST(LEAST(
            {_seconds("send_time", "revoke_ok_at")},
            {_seconds("send_time", "api_refused_at")},
            {_seconds("send_time", "ttl_failed_at")},
            expires_after,
            {_seconds("send_time", "observed_until")}
        ), 0.0) AS censored_after
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
    "readSeconds": f"""CASE WHEN {_DELIVERED} AND read_at IS NOT NULL
        THEN GREATEST({_seconds("delivered_at", "read_at")}, 0.0) END""",
    "events": "COALESCE(events, 0)",
    "duplicateEvents": "CAST(COALESCE(lines, 0) - COALESCE(events, 0) AS BIGINT)",
    "clockSkew": "COALESCE(first_event_at < send_time, FALSE)",
    "outOfOrder": "COALESCE(first_event_rx > first_received_at, FALSE)",
}


def _value(name: str) -> str:
    return f'{_LIFECYCLE_VALUES[name]} AS "{name}"'


#: The lifecycle of log-format section 3, one row per sent message, from ``rbm_facts``.
LIFECYCLE = f"""
WITH rbm_span AS (
    SELECT MAX(last_seen_at) AS observed_until FROM rbm_facts
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
    {_value("outOfOrder")}
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
}


def _summary_rows() -> str:
    """Every facts row with the lifecycle values the metrics group by, for ``SUMMARY``."""
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
        )
    )
    return f"""rbm_summary_rows AS (
    SELECT row_kind, bad_file, lines, events AS fact_events, unverified, outbox_lines,
        first_seen_at, last_seen_at, fallbacks, send_time, expires_after,
        {groups},
        {values}
    FROM rbm_ruled
)"""


_FLAG_COLUMNS = ",\n        ".join(f"{sql} AS {name}" for name, sql in _FLAGS.items())
#: The columns a row of the load summary is counted by (after ``part``).
_SUMMARY_KEYS = f"""row_kind, bad_file, {_GROUPS},
    outcome, "revokeMethod", {", ".join(_FLAGS)},
    latency_bin, delivered, pending_since, pending_expires, read_bin"""


def _summary(ctes: str) -> str:
    """``SUMMARY`` after ``ctes`` (the CTEs defining the per-message relations, or nothing
    when they are tables)."""
    return f"""WITH
{ctes}rbm_facts_core AS (
{_facts_select(False)}
),
{_ruled("rbm_facts_core AS f", "CAST(NULL AS TIMESTAMPTZ)", "TRUE")},
{_summary_rows()}
SELECT
    CASE
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
    MAX(last_seen_at) AS last_seen_at
FROM (
    SELECT *,
        {_FLAG_COLUMNS},
        CASE WHEN outcome NOT IN ('not_rcs', 'pending')
            THEN {bin_expression('"observedSeconds"')} END AS latency_bin,
        CASE WHEN outcome = 'pending' THEN send_time END AS pending_since,
        CASE WHEN outcome = 'pending' THEN expires_after END AS pending_expires,
        {bin_expression('"readSeconds"')} AS read_bin
    FROM rbm_summary_rows
) AS rbm_summary_input
GROUP BY GROUPING SETS (
    (row_kind, bad_file, {_GROUPS}, outcome, "revokeMethod", {", ".join(_FLAGS)}),
    (row_kind, {_GROUPS}, latency_bin, delivered, pending_since, pending_expires),
    (row_kind, {_GROUPS}, read_bin)
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


def sent_in(
    steps: tuple[tuple[str, str], ...], start: str | None, end: str | None
) -> tuple[tuple[str, str], ...]:
    """``steps`` (``SUMMARY_STEPS`` or ``FACTS_STEPS``) for the messages sent in ``[start, end)``
    only (RFC 3339 UTC texts; None leaves a side open): a predicate on the per-message outbox,
    so the records of other messages leave the analysis and events about them count as events
    about unknown messages; the rows counting unusable outbox records stay."""
    bounds = [
        f"chosen.send_time {op} CAST('{bound}' AS TIMESTAMPTZ)"
        for op, bound in ((">=", start), ("<", end))
        if bound is not None
    ]
    if not bounds:
        return steps
    where = f"\nWHERE bad_file IS NOT NULL OR ({' AND '.join(bounds)})"
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
    MAX(last_seen_at) AS last_seen_at
FROM rbm_summary_parts
GROUP BY part, {_SUMMARY_KEYS}
"""

#: What a load read: one row of counts from ``rbm_summary`` (see ``dataset.LoadReport``).
LOAD_REPORT = """
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
    MIN(first_seen_at) AS span_start,
    MAX(last_seen_at) AS span_end
FROM rbm_summary
WHERE part = 'counts'
"""

#: The files that held malformed lines, from ``rbm_summary``.
BAD_FILES = """
SELECT DISTINCT row_kind, bad_file FROM rbm_summary
WHERE part = 'counts' AND row_kind IN ('malformed_event_lines', 'malformed_outbox_lines')
ORDER BY bad_file
"""


def _group_select(by: list[str]) -> tuple[str, str, str]:
    cols = ", ".join(f'"{c}"' for c in by)
    if not cols:
        return "", "", ""
    return cols + ", ", f"GROUP BY {cols}", f"ORDER BY {cols}"


def _total(condition: str | None = None, column: str = "n") -> str:
    filtered = f" FILTER (WHERE {condition})" if condition else ""
    return f"CAST(COALESCE(SUM({column}){filtered}, 0) AS BIGINT)"


def _counts_columns(count: Callable[[str | None], str], duplicates: str) -> str:
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
        "duplicate_events": duplicates,
    }
    return ",\n    ".join(f"{sql} AS {name}" for name, sql in columns.items())


def group_counts_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group: messages, outcome counts, revoke attempts and successes by method, and the
    counts behind read rate, stale and double deliveries and the revoke race, counted from
    the lifecycle (``source``, one row per message)."""
    by = validate_by(by)
    select, group, order = _group_select(by)

    def count(condition: str | None) -> str:
        return f"COUNT(*) FILTER (WHERE {condition})" if condition else "COUNT(*)"

    columns = _counts_columns(count, 'CAST(COALESCE(SUM("duplicateEvents"), 0) AS BIGINT)')
    return f"""
SELECT {select}
    {columns}
FROM {source}
{group}
{order}
"""


def summary_counts_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``group_counts_sql`` summed up from the ``counts`` part of the load summary."""
    by = validate_by(by)
    select, group, order = _group_select(by)
    flags = {name: name for name in _FLAGS}
    count_sql = _counts_columns(
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


def latency_bins_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group and latency bin: deliveries and censorings (messages that entered RCS)."""
    by = validate_by(by)
    select, group, _ = _group_select(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    return f"""
SELECT {select}
    {bin_expression('"observedSeconds"')} AS bin,
    COUNT(*) FILTER (WHERE delivered) AS delivered,
    COUNT(*) FILTER (WHERE NOT delivered) AS censored
FROM {source}
WHERE "observedSeconds" IS NOT NULL
{group}
"""


def summary_latency_bins_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``latency_bins_sql`` summed up from the load summary: the ``latency`` part, plus the
    ``pending`` part censored at the end of the logs (its latest time) or at its expiry."""
    by = validate_by(by)
    select, group, _ = _group_select(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    observed = (
        f"GREATEST(LEAST(pending_expires, {_seconds('pending_since', 'observed_until')}), 0.0)"
    )
    return f"""
WITH rbm_span AS (
    SELECT MAX(last_seen_at) AS observed_until FROM {source} WHERE part = 'counts'
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


def read_bins_sql(by: list[str], source: str = "rbm_lifecycle") -> str:
    """Per group and bin of the time from delivery to READ: how many messages were read."""
    by = validate_by(by)
    select, group, _ = _group_select(by)
    group = f"{group}, bin" if group else "GROUP BY bin"
    return f"""
SELECT {select}
    {bin_expression('"readSeconds"')} AS bin,
    COUNT(*) AS read
FROM {source}
WHERE "readSeconds" IS NOT NULL
{group}
"""


def summary_read_bins_sql(by: list[str], source: str = "rbm_summary") -> str:
    """``read_bins_sql`` summed up from the ``read`` part of the load summary."""
    by = validate_by(by)
    select, group, _ = _group_select(by)
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
