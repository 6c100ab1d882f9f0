"""An ad hoc session for a notebook: a client, and the webhook events of what it sends.

``open_session("emulator")`` starts an embedded emulator and a webhook receiver wired to it
(no Google account needed); ``open_session("live", key_file=..., agent_id=...)`` builds a
client from a service-account key *path* and reads events from the log directory of your own
receiver (``rbmtools webhook serve --log-dir DIR``). Either way the session's client becomes
the default of ``rbmtools.send`` / ``rbmtools.revoke``, and ``watch`` shows the events of one
message. Credentials are only ever a path; nothing here prints or stores them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections import defaultdict, deque
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.analysis.humanize import percent
from rbmtools.client import ClientConfig, RbmClient, SendResult, set_default_client
from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path
from rbmtools.wire import duration_seconds

__all__ = ["TARGETS", "Session", "open_session", "revoke_summary"]

TARGETS = ("emulator", "live")
_EVENT_COLUMNS = ["eventType", "sendTime", "receivedAt", "secondsAfterSend", "eventId"]
_KEEP_EVENTS = 100_000  # events a live session remembers (the newest)


class Session:
    """A client (``client``) and the events of its messages; close it when done.

    On the emulator the session holds a ``rehearsal`` (``rbmtools.experiment.Rehearsal``: the
    emulator, a receiver wired to it and the client); live, the client and, when given, the
    log directory of your own receiver, which it follows.
    """

    def __init__(
        self,
        target: str,
        client: RbmClient,
        events_dir: Path | None,
        *,
        rehearsal: Any = None,
        work_dir: Path | None = None,
        poll: float = 0.1,
    ) -> None:
        self.target = target
        self.client = client
        self.events_dir = events_dir
        self.rehearsal = rehearsal
        self.emulator = None if rehearsal is None else rehearsal.emulator
        self._work_dir = work_dir
        self._poll = poll
        self._events: dict[str, list[Any]] = defaultdict(list)
        self._order: deque[str] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._follower: threading.Thread | None = None
        if events_dir is not None and rehearsal is None:
            self._follower = threading.Thread(
                target=self._follow, name="rbmtools-session-events", daemon=True
            )
            self._follower.start()

    def __repr__(self) -> str:
        where = "not watched (no events_dir)" if self.events_dir is None else str(self.events_dir)
        return f"Session(target={self.target!r}, agent_id={self.client.agent_id!r}, events={where})"

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ events

    def _follow(self) -> None:
        from rbmtools.webhook import follow

        assert self.events_dir is not None
        for logged in follow(self.events_dir, stop=self._stop, poll=self._poll, from_start=False):
            message_id = getattr(logged.event, "message_id", None)
            if message_id is None:
                continue
            with self._lock:
                self._events[message_id].append(logged)
                self._order.append(message_id)
                while len(self._order) > _KEEP_EVENTS:
                    oldest = self._order.popleft()
                    if self._events.get(oldest):
                        self._events[oldest].pop(0)

    def watch(self, message: SendResult | str, duration: Any = "30s") -> pd.DataFrame:
        """Wait ``duration`` (platform time: on the emulator at its speed, live in real time)
        and return the events of ``message`` (a ``SendResult`` or a messageId) seen so far."""
        seconds = duration_seconds(duration, "watch")
        message_id = message.message_id if isinstance(message, SendResult) else str(message)
        sent_at = message.send_time if isinstance(message, SendResult) else None
        if self.emulator is not None:
            from rbmtools.webhook import read_events

            delay = self.emulator.clock.real_delay(seconds)
            if delay is None:  # stepping mode: move the platform's clock instead of waiting
                self.emulator.admin.advance(seconds)
            else:
                time.sleep(delay)
            self.emulator.admin.wait_idle(timeout=30.0)
            found = [e for e in read_events(self.events_dir) if e.event.message_id == message_id]
        elif self.events_dir is None:
            found = []
        else:
            time.sleep(seconds + self._poll)
            with self._lock:
                found = list(self._events.get(message_id, ()))
        rows = []
        for logged in found:
            event = logged.event
            at = getattr(event, "send_time", None)
            rows.append(
                {
                    "eventType": getattr(event, "event_type", type(event).__name__),
                    "sendTime": at,
                    "receivedAt": logged.received_at,
                    "secondsAfterSend": None
                    if at is None or sent_at is None
                    else round((at - sent_at).total_seconds(), 3),
                    "eventId": getattr(event, "event_id", None),
                }
            )
        frame = pd.DataFrame(rows, columns=_EVENT_COLUMNS)
        return frame.sort_values("sendTime", kind="stable").reset_index(drop=True)

    # ------------------------------------------------------------------ ids to revoke

    def id_list(
        self, csv: str | os.PathLike[str] | None = None, demo_batch: int = 50
    ) -> pd.DataFrame:
        """The messages to revoke: a CSV with ``phone`` and ``message_id`` columns (other
        columns are kept). Without a CSV, on the emulator only, ``demo_batch`` messages are sent
        to test numbers first and their ids written to a CSV, as your systems would export."""
        if csv is None:
            if self.emulator is None:
                raise ValidationError(
                    "revoke_csv", None, "give a CSV of the messages to revoke (phone,message_id)"
                )
            csv = self._demo_csv(demo_batch)
        path = find_path(csv)
        try:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (OSError, ValueError) as exc:
            raise ValidationError("revoke_csv", os.fspath(csv), f"cannot be read ({exc})") from None
        missing = [c for c in ("phone", "message_id") if c not in frame.columns]
        if missing:
            raise ValidationError(
                "revoke_csv",
                os.fspath(csv),
                f"has no {missing[0]} column (it needs phone,message_id)",
            )
        return frame

    def _demo_csv(self, count: int) -> Path:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValidationError("demo_batch", count, "must be a whole number, at least 1")
        from rbmtools.experiment import synthetic_phones

        rows = [
            {"phone": phone, "text": "Your order has shipped", "ttl": "1h", "use_case": "demo"}
            for phone in synthetic_phones(count)
        ]
        sent = self.client.send_many(rows, progress=False)
        assert self._work_dir is not None
        path = self._work_dir / "ids-to-revoke.csv"
        sent.loc[sent["status"] == 200, ["phone", "message_id"]].to_csv(path, index=False)
        return path

    # ------------------------------------------------------------------ the end

    def close(self) -> None:
        """Stop following events, close the client, stop the embedded emulator and receiver,
        and restore the environment's default client."""
        self._stop.set()
        if self._follower is not None:
            self._follower.join(timeout=5)
        set_default_client(None)
        if self.rehearsal is not None:
            self.rehearsal.close()  # the client, the receiver and the emulator
        else:
            self.client.close()
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None


def open_session(
    target: str = "emulator",
    *,
    key_file: str | os.PathLike[str] | None = None,
    agent_id: str | None = None,
    region: str | None = None,
    base_url: str | None = None,
    events_dir: str | os.PathLike[str] | None = None,
    outbox: str | os.PathLike[str] | None = None,
    profile: Any = "commuters",
    seed: int = 7,
    speed: float = 600.0,
) -> Session:
    """A session on the embedded emulator (``profile``, ``seed``, ``speed``) or live.

    Live: the client is built from ``key_file`` (the *path* of a service-account key),
    ``agent_id``, ``region`` and ``base_url``, each falling back to its ``RBM_*`` environment
    variable (``ClientConfig.resolve``); events are read from ``events_dir``, where your webhook
    receiver logs. ``outbox`` appends every send and revoke to an outbox log.
    """
    if target not in TARGETS:
        raise ValidationError("target", target, f"must be one of {', '.join(TARGETS)}")
    outbox_path = None if outbox is None else Path(outbox)
    if target == "live":
        config = ClientConfig.resolve(
            None if key_file is None else find_path(key_file), agent_id, region, base_url
        )
        watched = None if events_dir is None else find_path(events_dir)
        if watched is not None and not watched.is_dir():
            raise ValidationError("events_dir", os.fspath(events_dir), "is not a directory")
        client = RbmClient.from_config(config, outbox=outbox_path)
        set_default_client(client)
        return Session("live", client, watched)
    from rbmtools.experiment import Rehearsal

    work = Path(tempfile.mkdtemp(prefix="rbmtools-session-"))
    log_dir = work / "events" if events_dir is None else Path(events_dir)
    try:
        rehearsal = Rehearsal.open(
            log_dir, profile=profile, seed=seed, speed=speed, outbox=outbox_path
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    set_default_client(rehearsal.client)
    return Session("emulator", rehearsal.client, log_dir, rehearsal=rehearsal, work_dir=work)


def revoke_summary(results: pd.DataFrame) -> pd.DataFrame:
    """How a bulk revoke went: revoked (200), not revoked (404: already delivered or
    unknown), inconclusive (404 after a retry), failed (an error), with counts and shares."""
    total = len(results)
    nothing = pd.Series(False, index=results.index)
    errors = results["error"].notna() if "error" in results else nothing
    status = results["status"] if "status" in results else pd.Series(None, index=results.index)
    inconclusive = results["inconclusive"].eq(True) if "inconclusive" in results else nothing
    not_found = (status == 404) & ~errors
    counts = {
        "revoked": int(((status == 200) & ~errors).sum()),
        "not revoked (already delivered or unknown)": int((not_found & ~inconclusive).sum()),
        "inconclusive (404 after a retry)": int((not_found & inconclusive).sum()),
        "failed": int(errors.sum()),
    }
    return pd.DataFrame(
        [
            {"outcome": k, "messages": v, "share": percent(v / total) if total else "n/e"}
            for k, v in counts.items()
        ]
    )
