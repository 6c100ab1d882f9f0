"""Small event and outbox logs full of edge cases, written with the wire helpers, and a way to
read what an engine made of them (the same on DuckDB and Spark is the point of these tests)."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from rbmtools import wire
from rbmtools.analysis import sql

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)
PHONE = "+12223334444"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _event(message_id, kind, seconds, event_id):
    return wire.event_payload(
        agent_id="agent",
        phone=PHONE,
        event_type=kind,
        event_id=event_id,
        send_time=at(seconds),
        message_id=message_id,
    )


def _push(payload: dict, received: float, number: int) -> str:
    envelope, _ = wire.build_push(
        payload, "token", message_id=f"p{number}", publish_time=at(received)
    )
    return json.dumps(envelope) + "\n"


#: Lines that are no event, each a different way of being wrong.
MALFORMED_LINES = [
    "not json at all",
    '{"hello": "world"}',
    "[1, 2, 3]",
    '[{"messageId": "a"}, {"messageId": "b"}]',
    '{"message": {"data": "%%%not-base64%%%", "messageId": "1"}}',
    '{"receivedAt": "yesterday", "event": {"senderPhoneNumber": "+12223334444"}}',
    '{"receivedAt": "2026-11-25T10:00:00Z", "event": {"senderPhoneNumber": "+1',
]


def write_mixed_logs(folder: Path) -> tuple[Path, Path]:
    """Every line shape, duplicates, nanosecond times, time zones, lenient types, replies,
    server events, blank and malformed lines; a gzip segment; revokes and fallbacks."""
    events_dir = folder / "events" / "date=2026-11-25"
    events_dir.mkdir(parents=True)
    lines: list[str] = []
    outbox: list[str] = []
    for index in range(12):
        mid = f"m{index:02d}"
        ttl = 30.0 if index % 3 == 0 else None
        outbox.append(
            wire.SendRecord(
                message_id=mid, phone=PHONE, agent_id="agent", send_time=at(index),
                status=404 if index == 11 else 200, use_case="otp" if index % 2 else "promo",
                traffic_type="AUTHENTICATION", ttl=ttl,
                expire_time=at(index + ttl) if ttl is not None else None,
                experiment="exp", arm=f"arm{index % 2}",
            ).to_line()
        )  # fmt: skip
        delivered = _event(mid, "DELIVERED", index + 1.5 + index / 10, f"d{index}")
        shape = index % 3
        if index in (4, 10):
            pass  # never delivered
        elif shape == 0:
            lines.append(wire.event_record_line(delivered, at(index + 2), index != 6))
        elif shape == 1:
            lines.append(_push(delivered, index + 2, index))
        else:
            lines.append(wire.dumps_line(delivered))
        if index % 4 == 1:  # the same event again, in another shape
            lines.append(_push(delivered, index + 9, 100 + index))
            lines.append(wire.event_record_line(delivered, at(index + 9), True))
        if index % 2 == 0 and index not in (4, 10):
            read = _event(mid, "READ", index + 5, f"r{index}")
            read.pop("eventId")  # no eventId: the key is messageId + eventType + sendTime
            lines.append(wire.dumps_line(read))
            lines.append(wire.event_record_line(read, at(index + 7), True))
    # revokes: one succeeds (m04), one refused (m01, delivered), one errors; TTL events
    outbox.append(
        wire.RevokeRecord(
            message_id="m04",
            phone=PHONE,
            agent_id="agent",
            requested_at=at(20),
            status=200,
            attempt=1,
        ).to_line()
    )
    outbox.append(
        wire.RevokeRecord(
            message_id="m01",
            phone=PHONE,
            agent_id="agent",
            requested_at=at(20),
            status=404,
            attempt=1,
        ).to_line()
    )
    outbox.append(
        wire.RevokeRecord(
            message_id="m07",
            phone=PHONE,
            agent_id="agent",
            requested_at=at(20),
            status=500,
            attempt=1,
        ).to_line()
    )
    outbox.append(
        wire.FallbackRecord(
            message_id="m04", phone=PHONE, channel="sms", sent_at=at(20.4), reason="revoked"
        ).to_line()
    )
    lines.append(
        wire.event_record_line(_event("m10", "TTL_EXPIRATION_REVOKED", 40, "t10"), at(41), True)
    )
    lines.append(wire.event_record_line(_event("m00", "TTL_EXPIRATION_REVOKE_FAILED", 30, "t0"),
                                        at(31), True))  # fmt: skip
    # a reply (no message of ours) and an event about an unknown message
    lines.append(
        wire.dumps_line(
            {
                "senderPhoneNumber": PHONE,
                "messageId": "u1",
                "eventId": "x1",
                "sendTime": "2026-11-25T10:00:50Z",
                "text": "hi",
            }
        )
    )
    lines.append(wire.dumps_line(_event("zz", "DELIVERED", 3, "z1")))
    # times in other spellings: nanoseconds, an offset, a push with a nanosecond sendTime
    lines.append(
        json.dumps(
            {
                "receivedAt": "2026-11-25T11:00:09.123456789+01:00",
                "verified": "true",
                "event": {
                    "senderPhoneNumber": PHONE,
                    "messageId": "m03",
                    "eventId": "r3",
                    "eventType": "READ",
                    "sendTime": "2026-11-25T10:00:08.987654321Z",
                },
            }
        )
        + "\n"
    )
    nano = _event("m05", "READ", 9, "r5")
    nano["sendTime"] = "2026-11-25T10:00:09.000000999Z"
    lines.append(_push(nano, 10, 55))
    bad_time = _event("m09", "READ", 9, "r9")
    bad_time["sendTime"] = "not a time"
    lines.append(_push(bad_time, 10, 56))  # a push whose sendTime is no time: malformed
    lines.append("\n")
    lines.append("   \n")
    lines.extend(text + "\n" for text in MALFORMED_LINES)
    # a push whose data is base64 of something that is not JSON, and of a JSON array
    for raw in (b"plain text", b"[1, 2]"):
        data = base64.b64encode(raw).decode()
        lines.append(json.dumps({"message": {"data": data, "messageId": "9"}}) + "\n")
    half = len(lines) // 2
    (events_dir / "events-000001.jsonl").write_text("".join(lines[:half]), encoding="utf-8")
    with gzip.open(events_dir / "events-000002.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.write("".join(lines[half:]))
    outbox.append('{"kind": "send", "messageId": "no-time"}\n')
    outbox.append("garbage\n")
    outbox_path = folder / "outbox.jsonl"
    outbox_path.write_text("".join(outbox), encoding="utf-8")
    return folder / "events", outbox_path


def event_rows(engine) -> pd.DataFrame:
    """What an engine made of the event lines: the contract columns, in a stable order."""
    columns = ", ".join(f'"{c}"' for c in sql.EVENT_ROW_COLUMNS)
    frame = engine.df(f"SELECT source_file, {columns} FROM rbm_event_rows")  # noqa: S608
    return _canonical(frame)


def outbox_rows(engine) -> pd.DataFrame:
    columns = ", ".join(f'"{c}"' for c in sql.OUTBOX_ROW_COLUMNS)
    query = f"SELECT source_file, {columns} FROM rbm_outbox_rows"  # noqa: S608
    return _canonical(engine.df(query))


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as JSON-friendly text, sorted: engines agree on content, not on order or dtypes."""

    def text(value):
        if isinstance(value, dict):
            return json.dumps({k: text(v) for k, v in value.items()}, sort_keys=True)
        if value is None or (not isinstance(value, str | dict) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp | datetime):
            stamp = pd.Timestamp(value)
            stamp = stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")
            return stamp.isoformat()
        if hasattr(value, "asDict"):
            return text(value.asDict())
        if hasattr(value, "item"):
            value = value.item()
        return str(value)

    out = frame.apply(lambda column: column.map(text)).astype(object)
    out = out.where(out.notna(), None)
    keys = out.apply(lambda row: json.dumps(list(row), default=str), axis=1)
    return out.loc[keys.sort_values().index].reset_index(drop=True)
