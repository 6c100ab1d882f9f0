"""The emulator's SMS sink: a stand-in SMS gateway that records what arrived, and when.

Experiments fall back to SMS when RBM gives up on a message. Offline there is no carrier, so
the sink plays the SMS provider: each SMS is stamped with the platform clock when it arrives
and kept in memory and, optionally, appended to a JSON Lines file
(``{"phone", "messageId", "text", "arrivedAt"}`` per line). Like real providers with a client
reference, it is idempotent per ``messageId``: a repeated submission (a retry, a resumed run)
is counted as a duplicate and not delivered again. Thread-safe.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.wire import dumps_line, format_timestamp, normalize_phone, parse_timestamp

__all__ = ["MAX_SMS_TEXT", "SmsArrival", "SmsSink"]

#: The longest text the sink takes (ten concatenated 160-character segments).
MAX_SMS_TEXT = 1600


@dataclass(frozen=True, slots=True)
class SmsArrival:
    """One SMS that reached a phone: to whom, for which RBM message, what it said, when."""

    phone: str
    text: str
    message_id: str | None
    arrived_at: datetime

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"phone": self.phone}
        if self.message_id is not None:
            out["messageId"] = self.message_id
        out["text"] = self.text
        out["arrivedAt"] = format_timestamp(self.arrived_at, "arrivedAt")
        return out

    @classmethod
    def from_dict(cls, data: Any) -> SmsArrival:
        if not isinstance(data, dict):
            raise ValidationError("sms", data, "must be a JSON object")
        text = data.get("text")
        if not isinstance(text, str):
            raise ValidationError("text", text, "must be a string")
        message_id = data.get("messageId")
        if message_id is not None and not isinstance(message_id, str):
            raise ValidationError("messageId", message_id, "must be a string")
        return cls(
            normalize_phone(data.get("phone"), "phone"),
            text,
            message_id,
            parse_timestamp(data.get("arrivedAt"), "arrivedAt"),
        )


class SmsSink:
    """Records SMS arrivals on the platform clock (see the module doc).

    ``clock`` returns platform time (``emu.clock.now``); ``path``, when given, is a JSON Lines
    file that arrivals are appended to. Arrivals already in the file are read first, so a
    restarted process keeps de-duplicating by messageId.
    """

    def __init__(
        self, clock: Callable[[], datetime], path: str | os.PathLike[str] | None = None
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._arrivals: list[SmsArrival] = []
        self._by_message: dict[str, SmsArrival] = {}
        self._file: Any = None
        self.path: Path | None = None
        self.duplicates = 0
        if path is not None:
            self.open_log(path)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path else ""
        return f"SmsSink(arrivals={len(self._arrivals)}, duplicates={self.duplicates}{where})"

    def __len__(self) -> int:
        return len(self._arrivals)

    def __iter__(self) -> Iterator[SmsArrival]:
        return iter(self.arrivals())

    def open_log(self, path: str | os.PathLike[str]) -> None:
        """Append arrivals to ``path`` from now on, after reading the arrivals it holds.

        A torn last line (a crash mid-write) is cut off; other unreadable lines raise.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._file is not None:
                self._file.close()
            if target.exists():
                raw = target.read_bytes()
                complete = raw[: raw.rfind(b"\n") + 1]
                if len(complete) != len(raw):
                    with open(target, "r+b") as handle:
                        handle.truncate(len(complete))
                for number, line in enumerate(complete.decode("utf-8").splitlines(), 1):
                    if not line.strip():
                        continue
                    try:
                        arrival = SmsArrival.from_dict(json.loads(line))
                    except (ValueError, ValidationError) as exc:
                        raise ValidationError(
                            "sms log", f"{target} line {number}", f"is not an SMS record ({exc})"
                        ) from None
                    if arrival.message_id is None or arrival.message_id not in self._by_message:
                        self._keep(arrival)  # (a file opened again adds nothing twice)
            self._file = open(target, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self.path = target

    def _keep(self, arrival: SmsArrival) -> None:
        self._arrivals.append(arrival)
        if arrival.message_id is not None:
            self._by_message.setdefault(arrival.message_id, arrival)

    def receive(
        self, phone: str, text: str, message_id: str | None = None
    ) -> tuple[SmsArrival, bool]:
        """An SMS arrives now; returns its arrival and whether it was a duplicate.

        A duplicate (a ``message_id`` seen before) is not delivered again: the first arrival
        is returned.
        """
        phone = normalize_phone(phone)
        if not isinstance(text, str) or not text:
            raise ValidationError("text", text, "must be non-empty text")
        if len(text) > MAX_SMS_TEXT:
            raise ValidationError("text", text, f"must be at most {MAX_SMS_TEXT} characters")
        if message_id is not None and (not isinstance(message_id, str) or not message_id):
            raise ValidationError("messageId", message_id, "must be a non-empty string")
        with self._lock:
            if message_id is not None and message_id in self._by_message:
                self.duplicates += 1
                return self._by_message[message_id], True
            arrival = SmsArrival(phone, text, message_id, self._clock())
            self._keep(arrival)
            if self._file is not None:
                self._file.write(dumps_line(arrival.to_dict()))
                self._file.flush()
            return arrival, False

    def record(self, arrival: SmsArrival) -> bool:
        """Keep an arrival stamped elsewhere (a mirror of another sink); False if its
        messageId is already known."""
        with self._lock:
            if arrival.message_id is not None and arrival.message_id in self._by_message:
                return False
            self._keep(arrival)
            if self._file is not None:
                self._file.write(dumps_line(arrival.to_dict()))
                self._file.flush()
            return True

    def arrivals(self, phone: str | None = None) -> list[SmsArrival]:
        """Every arrival so far (for ``phone`` only, when given), in arrival order."""
        with self._lock:
            found = list(self._arrivals)
        if phone is not None:
            wanted = normalize_phone(phone)
            found = [a for a in found if a.phone == wanted]
        return found

    def arrival(self, message_id: str) -> SmsArrival | None:
        """The SMS sent for an RBM message, if any."""
        with self._lock:
            return self._by_message.get(message_id)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"arrivals": len(self._arrivals), "duplicates": self.duplicates}

    def clear(self) -> None:
        """Forget the arrivals in memory (the file, if any, is left as it is)."""
        with self._lock:
            self._arrivals.clear()
            self._by_message.clear()
            self.duplicates = 0

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
