"""Seeded synthetic webhook and outbox logs with a known truth, for tests and benchmarks.

Messages are sent over a few days in experiment arms (TTL values, API revokes, no expiry).
Each reachable message has a true delivery delay drawn from a known distribution (a share never
delivered, the rest log-normal); the platform delivers, expires or revokes it, with the revoke
race, failed TTL revokes, READs, replies and typing events. The event log is written the way a
webhook receiver writes it (``date=YYYY-MM-DD/events-NNNNN.jsonl`` segments in arrival order) in
a mix of the three line shapes, with duplicates, late and out-of-order arrival, platform clock
skew, events without an eventId and garbage lines; the outbox holds sends (with retries),
revokes and fallbacks. ``SyntheticLogs.truth`` has, per message, what really happened and the
lifecycle outcome the rules of log-format section 3 must give.
"""

from __future__ import annotations

import base64
import gzip
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

__all__ = [
    "DEFAULT_ARMS",
    "LatencyModel",
    "SyntheticArm",
    "SyntheticConfig",
    "SyntheticLogs",
    "generate_logs",
]

_US = 1_000_000
_EVENT_TYPES = (
    "DELIVERED",
    "READ",
    "TTL_EXPIRATION_REVOKED",
    "TTL_EXPIRATION_REVOKE_FAILED",
    "IS_TYPING",
    "REPLY",
)
_DELIVERED, _READ, _TTL_REVOKED, _TTL_FAILED, _TYPING, _REPLY = range(6)


@dataclass(frozen=True)
class LatencyModel:
    """The true delivery delay: never delivered with ``never_share``, else log-normal with the
    given median (seconds) and shape ``sigma``."""

    median_seconds: float = 4.0
    sigma: float = 1.5
    never_share: float = 0.06

    def _dist(self) -> Any:
        return stats.lognorm(s=self.sigma, scale=self.median_seconds)

    def delivered_by(self, seconds: float | np.ndarray) -> float | np.ndarray:
        """P(delivered within ``seconds`` of the send): the true F(t)."""
        return (1.0 - self.never_share) * self._dist().cdf(seconds)

    def quantile(self, p: float) -> float | None:
        """The time by which a share ``p`` of all messages is delivered (None: never)."""
        if p >= 1.0 - self.never_share:
            return None
        return float(self._dist().ppf(p / (1.0 - self.never_share)))

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        delays = rng.lognormal(math.log(self.median_seconds), self.sigma, n)
        return np.where(rng.random(n) < self.never_share, np.inf, delays)


@dataclass(frozen=True)
class SyntheticArm:
    """One experiment arm: a TTL sent with the message, or an API revoke after
    ``revoke_after_seconds`` without a DELIVERED, or neither; SMS fallback after a revoke."""

    name: str
    use_case: str = "otp"
    traffic_type: str = "AUTHENTICATION"
    ttl_seconds: float | None = None
    revoke_after_seconds: float | None = None
    fallback: bool = True
    experiment: str | None = "synthetic"
    weight: float = 1.0


DEFAULT_ARMS: tuple[SyntheticArm, ...] = (
    SyntheticArm("ttl=30s", ttl_seconds=30),
    SyntheticArm("ttl=300s", ttl_seconds=300),
    SyntheticArm("revoke=60s", revoke_after_seconds=60),
    SyntheticArm(
        "no-expiry",
        use_case="promo",
        traffic_type="PROMOTION",
        fallback=False,
        experiment=None,
    ),
)


@dataclass(frozen=True)
class SyntheticConfig:
    """Everything the generator draws from; the same config and seed give the same bytes."""

    messages: int = 2_000
    days: float = 1.0
    start: datetime = datetime(2026, 11, 23, tzinfo=UTC)
    arms: tuple[SyntheticArm, ...] = DEFAULT_ARMS
    latency: Mapping[str, LatencyModel] = field(
        default_factory=lambda: {
            "otp": LatencyModel(3.0, 1.4, 0.05),
            "promo": LatencyModel(20.0, 2.0, 0.10),
        }
    )
    not_rcs_share: float = 0.04
    send_retry_share: float = 0.01
    read_share: float = 0.6
    read_median_seconds: float = 45.0
    other_events_per_message: float = 0.3
    race_window_seconds: float = 3.0
    race_share: float = 0.5
    ttl_failed_share: float = 0.03
    revoke_error_share: float = 0.03
    duplicate_share: float = 0.03
    late_share: float = 0.03
    skew_share: float = 0.01
    skew_seconds: float = 1.5
    missing_event_id_share: float = 0.05
    shapes: Mapping[str, float] = field(
        default_factory=lambda: {"receiver": 0.8, "push": 0.1, "decoded": 0.1}
    )
    #: How event times (``sendTime``, ``receivedAt``, ``publishTime``) are written, with their
    #: shares: ``micros`` (``...T10:00:01.045123Z``, the default), ``nanos`` (9 digits),
    #: ``millis``, ``seconds`` (these two truncate the instant, which the truth ignores),
    #: ``offset`` (``+05:30``, microseconds), ``offset-millis`` (``-08:00``), ``lower``
    #: (``t``/``z``): every one valid RFC 3339 that the analysis must read alike.
    time_styles: Mapping[str, float] = field(default_factory=lambda: {"micros": 1.0})
    garbage_lines: int = 5
    rotate_lines: int = 100_000
    gzip: bool = False
    chunk_messages: int = 250_000
    seed: int = 0

    def model(self, use_case: str) -> LatencyModel:
        return self.latency.get(use_case) or next(iter(self.latency.values()))


@dataclass
class SyntheticLogs:
    """Where the logs went, what was written, and the truth per message."""

    events_dir: Path
    outbox_dir: Path
    config: SyntheticConfig
    truth: pd.DataFrame
    counts: dict[str, int]

    @property
    def end(self) -> datetime:
        return self.config.start + pd.Timedelta(days=self.config.days).to_pytimedelta()


# ------------------------------------------------------------------------------- formatting

#: Pub/Sub message ids are 16-17 digit numbers.
_PUBSUB_ID_BASE = 14_150_481_888_000_000


def _uuids(seed: int, first: int, n: int) -> list[str]:
    """Message ids as the client and experiment runner make them: random UUIDs (version 4),
    drawn from their own stream so the simulation's draws do not depend on them."""
    raw = np.random.default_rng([seed, first, 0x1D5]).integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    out = []
    for i in range(0, 32 * n, 32):
        h = text[i : i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _stamps(micros: np.ndarray, unit: str) -> list[str]:
    text = np.datetime_as_string(micros.astype("datetime64[us]"), unit=unit)
    return [t + "Z" for t in text.tolist()]


#: Each time style of ``SyntheticConfig.time_styles``: (numpy unit, shift in µs, zone suffix,
#: digits appended, lower case).
_TIME_STYLES: dict[str, tuple[str, int, str, str, bool]] = {
    "micros": ("us", 0, "Z", "", False),
    "nanos": ("us", 0, "Z", "000", False),
    "millis": ("ms", 0, "Z", "", False),
    "seconds": ("s", 0, "Z", "", False),
    "offset": ("us", 19_800 * _US, "+05:30", "", False),
    "offset-millis": ("ms", -28_800 * _US, "-08:00", "", False),
    "lower": ("us", 0, "z", "", True),
}


def _styled_stamps(
    micros: np.ndarray, styles: Mapping[str, float], rng: np.random.Generator
) -> list[str]:
    """RFC 3339 texts of ``micros`` in the mix of ``styles`` (see ``SyntheticConfig``)."""
    if dict(styles) == {"micros": 1.0}:  # the default: no draw, the bytes of earlier versions
        return _stamps(micros, "us")
    names = list(styles)
    shares = np.array([styles[n] for n in names], float)
    pick = rng.choice(len(names), size=len(micros), p=shares / shares.sum())
    out = np.empty(len(micros), dtype=object)
    for index, name in enumerate(names):
        unit, shift, zone, extra, lower = _TIME_STYLES[name]
        where = np.nonzero(pick == index)[0]
        text = np.datetime_as_string((micros[where] + shift).astype("datetime64[us]"), unit=unit)
        rendered = [t + extra + zone for t in text.tolist()]
        out[where] = [t.replace("T", "t") for t in rendered] if lower else rendered
    return out.tolist()


class _Writer:
    """Receiver-style segments: ``date=YYYY-MM-DD/events-NNNNN.jsonl`` rotated by line count."""

    def __init__(self, root: Path, prefix: str, rotate: int, compress: bool, partition: bool):
        self.root, self.prefix, self.rotate = root, prefix, rotate
        self.compress, self.partition = compress, partition
        self.handles: dict[str, Any] = {}
        self.lines: dict[str, int] = {}
        self.segment: dict[str, int] = {}
        self.files: list[str] = []

    def _open(self, day: str) -> Any:
        number = self.segment.get(day, 0) + 1
        self.segment[day] = number
        folder = self.root / f"date={day}" if self.partition else self.root
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jsonl.gz" if self.compress else ".jsonl"
        name = (
            f"{self.prefix}-{number:05d}{suffix}"
            if self.partition
            else f"{self.prefix}-{day}-{number:05d}{suffix}"
        )
        path = folder / name
        self.files.append(str(path))
        if self.compress:
            handle = gzip.open(path, "wt", encoding="utf-8", compresslevel=1)  # noqa: SIM115
        else:
            handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.lines[day] = 0
        return handle

    def write(self, days: Sequence[str], lines: Sequence[str]) -> None:
        start = 0
        n = len(lines)
        while start < n:
            day = days[start]
            stop = start
            while stop < n and days[stop] == day:
                stop += 1
            while start < stop:
                handle = self.handles.get(day)
                if handle is None or self.lines[day] >= self.rotate:
                    if handle is not None:
                        handle.close()
                    handle = self.handles[day] = self._open(day)
                room = min(stop - start, self.rotate - self.lines[day])
                handle.write("".join(lines[start : start + room]))
                self.lines[day] += room
                start += room

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()
        self.handles.clear()


# ------------------------------------------------------------------------------- simulation


def _simulate(
    cfg: SyntheticConfig,
    rng: np.random.Generator,
    first: int,
    n: int,
    send_us: np.ndarray,
    end_us: int,
) -> dict[str, Any]:
    """Draw what happens to messages ``first .. first+n-1`` (times in µs since the epoch)."""
    arms = cfg.arms
    weights = np.array([a.weight for a in arms], dtype=float)
    arm = rng.choice(len(arms), size=n, p=weights / weights.sum())
    ttl = np.array([a.ttl_seconds if a.ttl_seconds else np.nan for a in arms])[arm]
    revoke_after = np.array([a.revoke_after_seconds or np.nan for a in arms])[arm]
    fallback_on = np.array([a.fallback for a in arms])[arm]
    use_cases = sorted({a.use_case for a in arms})
    latency = np.full(n, np.inf)
    for uc in use_cases:
        mask = np.array([arms[i].use_case == uc for i in range(len(arms))])[arm]
        latency[mask] = cfg.model(uc).draw(rng, int(mask.sum()))
    not_rcs = rng.random(n) < cfg.not_rcs_share
    latency[not_rcs] = np.inf
    skew = np.where(rng.random(n) < cfg.skew_share, cfg.skew_seconds, 0.0)
    rx_delay = rng.lognormal(math.log(0.3), 0.8, n)

    delivered = np.isfinite(latency)
    deliver_at = latency.copy()  # true delay of the DELIVERED (inf: none)
    ttl_revoked = np.zeros(n, bool)
    ttl_failed = np.zeros(n, bool)
    api_revoke = np.zeros(n, bool)
    api_status = np.zeros(n, np.int64)
    api_error_first = np.zeros(n, bool)
    fallback_at = np.full(n, np.nan)
    u_race, u_fail, u_err = rng.random(n), rng.random(n), rng.random(n)
    np.seterr(invalid="ignore")  # inf - inf for messages never delivered: NaN, compares False
    in_race = (latency - np.nan_to_num(ttl, nan=np.inf)) < cfg.race_window_seconds

    has_ttl = np.isfinite(ttl) & ~not_rcs
    late = has_ttl & (latency > ttl)
    ttl_failed = late & (u_fail < cfg.ttl_failed_share)
    ttl_revoked = late & ~ttl_failed
    raced = ttl_revoked & in_race & (u_race < cfg.race_share)
    lost = ttl_revoked & ~raced
    deliver_at[lost] = np.inf
    fb = (ttl_revoked | ttl_failed) & fallback_on
    fallback_at[fb] = ttl[fb] + rx_delay[fb] + 0.4

    has_api = np.isfinite(revoke_after) & ~not_rcs
    seen_by = latency + rx_delay  # when the client saw the DELIVERED
    api_revoke = has_api & ~(seen_by <= revoke_after)
    api_status = np.where(api_revoke, np.where(latency <= revoke_after, 404, 200), 0)
    api_error_first = api_revoke & (u_err < cfg.revoke_error_share)
    in_api_race = (latency - np.nan_to_num(revoke_after, nan=np.inf)) < cfg.race_window_seconds
    api_ok = api_status == 200
    api_raced = api_ok & in_api_race & (u_race < cfg.race_share)
    deliver_at[api_ok & ~api_raced] = np.inf
    revoke_answer_at = revoke_after + np.where(api_error_first, 1.0, 0.0)
    fb = api_ok & fallback_on
    fallback_at[fb] = revoke_answer_at[fb] + 0.4

    read = np.isfinite(deliver_at) & (rng.random(n) < cfg.read_share)
    read_at = np.where(
        read, deliver_at + rng.exponential(cfg.read_median_seconds / math.log(2), n), np.inf
    )
    n_other = rng.poisson(cfg.other_events_per_message, n) * np.isfinite(deliver_at)
    return {
        "arm": arm,
        "ttl": ttl,
        "revoke_after": revoke_after,
        "latency": latency,
        "not_rcs": not_rcs,
        "skew": skew,
        "rx_delay": rx_delay,
        "deliver_at": deliver_at,
        "read_at": read_at,
        "ttl_revoked": ttl_revoked,
        "ttl_failed": ttl_failed,
        "api_revoke": api_revoke,
        "api_status": api_status,
        "api_error_first": api_error_first,
        "revoke_answer_at": revoke_answer_at,
        "fallback_at": fallback_at,
        "n_other": n_other,
        "delivered_ever": delivered,
    }


def _expected(sim: dict[str, Any], send_us: np.ndarray, end_us: int) -> dict[str, np.ndarray]:
    """The lifecycle the rules must derive from what is visible in the logs (independent code)."""
    skew = sim["skew"]
    end = (end_us - send_us) / _US  # seconds from send to the end of the logs
    visible = lambda t: np.isfinite(t) & (t <= end)  # noqa: E731
    d_stamp = sim["deliver_at"] - skew
    deliv = visible(sim["deliver_at"])
    ttl_at = sim["ttl"] - skew
    ttl_rev = sim["ttl_revoked"] & visible(sim["ttl"])
    ttl_fail = sim["ttl_failed"] & visible(sim["ttl"])
    api_seen = sim["api_revoke"] & visible(sim["revoke_answer_at"])
    api_ok = api_seen & (sim["api_status"] == 200)
    api_404 = api_seen & (sim["api_status"] == 404)
    api_first = sim["revoke_after"]
    ok_at = np.fmin(
        np.where(api_ok, sim["revoke_answer_at"], np.inf), np.where(ttl_rev, ttl_at, np.inf)
    )
    outcome = np.full(len(send_us), "pending", dtype=object)
    outcome[api_404 | ttl_fail] = "revoke_failed_undelivered"
    outcome[np.isfinite(ok_at)] = "revoked"
    outcome[deliv] = "delivered"
    outcome[deliv & np.isfinite(ok_at) & (ok_at <= d_stamp)] = "delivered_after_revoke"
    outcome[sim["not_rcs"]] = "not_rcs"
    api_tried = sim["api_revoke"] & visible(api_first)
    ttl_event = ttl_rev | ttl_fail
    method = np.full(len(send_us), None, dtype=object)
    method[ttl_event] = "ttl"
    method[api_tried & (~ttl_event | (api_first <= ttl_at))] = "api"
    latency = np.where(deliv, np.maximum(d_stamp, 0.0), np.nan)
    stale = deliv & np.isfinite(sim["ttl"]) & (latency > sim["ttl"])
    fb = np.where(visible(sim["fallback_at"]), sim["fallback_at"], np.inf)
    double = deliv & (d_stamp > fb - 0.0)
    return {
        "outcome": outcome,
        "revokeMethod": method,
        "latencySeconds": latency,
        "staleDelivery": stale,
        "doubleDelivery": double,
        "readVisible": visible(sim["read_at"]) & deliv,
    }


# ------------------------------------------------------------------------------- lines


def _event_json(
    agent: str,
    phone_key: str,
    phone: str,
    mid: str | None,
    eid: str | None,
    stamp: str,
    etype: str,
    text: str | None,
) -> str:
    parts = [f'"agentId":"{agent}"', f'"{phone_key}":"{phone}"']
    if mid is not None:
        parts.append(f'"messageId":"{mid}"')
    if eid is not None:
        parts.append(f'"eventId":"{eid}"')
    parts.append(f'"sendTime":"{stamp}"')
    if etype == "REPLY":
        parts.append(f'"text":"{text}"')
    else:
        parts.append(f'"eventType":"{etype}"')
    return "{" + ",".join(parts) + "}"


def _garbage(rng: np.random.Generator, sample: str) -> str:
    kinds = [
        "this is not json",
        sample[: max(10, len(sample) // 2)],  # a torn write
        '{"hello": "world"}',
        "[1, 2, 3]",
        '{"message": {"data": "%%% not base64 %%%", "messageId": "1"}}',
        '{"receivedAt": "yesterday", "event": {}}',
    ]
    return kinds[int(rng.integers(len(kinds)))] + "\n"


def generate_logs(
    directory: str | os.PathLike[str],
    config: SyntheticConfig | None = None,
    *,
    progress: bool = False,
) -> SyntheticLogs:
    """Write ``events/`` and ``outbox/`` under ``directory`` and return the truth."""
    cfg = config or SyntheticConfig()
    root = Path(directory)
    events_dir, outbox_dir = root / "events", root / "outbox"
    rng = np.random.default_rng(cfg.seed)
    start_us = int(cfg.start.timestamp() * _US)
    span_us = int(cfg.days * 86_400 * _US)
    end_us = start_us + span_us
    send_all = np.sort(rng.integers(start_us, end_us - 1, cfg.messages))
    ev_writer = _Writer(events_dir, "events", cfg.rotate_lines, cfg.gzip, partition=True)
    ob_writer = _Writer(outbox_dir, "outbox", 10**12, cfg.gzip, partition=False)
    shape_names = list(cfg.shapes)
    shape_p = np.array([cfg.shapes[s] for s in shape_names], float)
    shape_p /= shape_p.sum()
    counts = dict.fromkeys(
        ("lines", "events", "duplicates", "malformed", "outbox_records", "other_events"), 0
    )
    truths = []
    garbage_at = set(rng.integers(0, max(cfg.messages, 1), cfg.garbage_lines).tolist())
    event_counter = 0
    seed_hex = f"{cfg.seed & 0xFFFFFFFF:08x}"
    bar = tqdm(total=cfg.messages, unit="msg", desc="synthetic logs", disable=not progress)
    for first in range(0, cfg.messages, cfg.chunk_messages):
        n = min(cfg.chunk_messages, cfg.messages - first)
        send_us = send_all[first : first + n]
        sim = _simulate(cfg, rng, first, n, send_us, end_us)
        exp = _expected(sim, send_us, end_us)
        ids = _uuids(cfg.seed, first, n)
        phones = [f"+1555{(i * 7919) % 10_000_000:07d}" for i in range(first, first + n)]
        arms = [cfg.arms[a] for a in sim["arm"].tolist()]

        # ---- events: (message, type, true delay, extra) -----------------------------------
        rows_m, rows_t, rows_d = [], [], []
        for code, key, mask in (
            (_DELIVERED, "deliver_at", None),
            (_READ, "read_at", None),
            (_TTL_REVOKED, "ttl", sim["ttl_revoked"]),
            (_TTL_FAILED, "ttl", sim["ttl_failed"]),
        ):
            t = sim[key]
            ok = np.isfinite(t) if mask is None else (mask & np.isfinite(t))
            idx = np.nonzero(ok)[0]
            rows_m.append(idx)
            rows_t.append(np.full(len(idx), code))
            rows_d.append(t[idx])
        other_idx = np.repeat(np.arange(n), sim["n_other"])
        rows_m.append(other_idx)
        rows_t.append(np.where(rng.random(len(other_idx)) < 0.5, _TYPING, _REPLY))
        rows_d.append(sim["deliver_at"][other_idx] + rng.exponential(30.0, len(other_idx)))
        m = np.concatenate(rows_m)
        typ = np.concatenate(rows_t)
        delay = np.concatenate(rows_d)
        true_us = send_us[m] + (delay * _US).astype(np.int64)
        keep = true_us <= end_us
        m, typ, delay, true_us = m[keep], typ[keep], delay[keep], true_us[keep]
        stamp_us = true_us - (sim["skew"][m] * _US).astype(np.int64)
        late = rng.random(len(m)) < cfg.late_share
        arrival = np.where(
            late, rng.uniform(5, 600, len(m)), rng.lognormal(math.log(0.3), 0.8, len(m))
        )
        rx_us = true_us + (arrival * _US).astype(np.int64)
        n_ev = len(m)
        eids = np.arange(event_counter, event_counter + n_ev)
        event_counter += n_ev
        no_eid = rng.random(n_ev) < cfg.missing_event_id_share
        dup = rng.random(n_ev) < cfg.duplicate_share
        copy_of = np.concatenate([np.arange(n_ev), np.nonzero(dup)[0]])
        copy_rx = np.concatenate(
            [rx_us, rx_us[dup] + rng.uniform(1, 600, int(dup.sum())).astype(np.int64) * _US]
        )
        order = np.argsort(copy_rx, kind="stable")
        copy_of, copy_rx = copy_of[order], copy_rx[order]
        shapes = rng.choice(len(shape_names), size=len(copy_of), p=shape_p)
        stamp_text = _styled_stamps(stamp_us, cfg.time_styles, rng)
        rx_text = _styled_stamps(copy_rx, cfg.time_styles, rng)
        day_text = [d[:10] for d in _stamps(copy_rx, "D")]
        # Pub/Sub's publishTime: milliseconds in the default style (the bytes of earlier
        # versions), else the receipt time in its drawn style
        default_style = dict(cfg.time_styles) == {"micros": 1.0}
        publish_text = [r[:23] + "Z" for r in rx_text] if default_style else rx_text
        lines = []
        for k, (j, shape) in enumerate(zip(copy_of.tolist(), shapes.tolist(), strict=True)):
            mi = int(m[j])
            code = int(typ[j])
            etype = _EVENT_TYPES[code]
            is_server = code in (_TTL_REVOKED, _TTL_FAILED)
            number = int(eids[j])
            if code == _TYPING:
                mid = None
            elif code == _REPLY:  # the user's own message id
                mid = f"Ms{cfg.seed & 0xFFFFFF:06x}{number:016x}"
            else:
                mid = ids[mi]
            eid = None if (no_eid[j] and code != _TYPING) else f"evt-{seed_hex}{number:016x}"
            ev = _event_json(
                "rbm-agent",
                "phoneNumber" if is_server else "senderPhoneNumber",
                phones[mi],
                mid,
                eid,
                stamp_text[j],
                etype,
                "thanks",
            )
            name = shape_names[shape]
            if name == "receiver":
                line = f'{{"receivedAt":"{rx_text[k]}","verified":true,"event":{ev}}}\n'
            elif name == "push":
                data = base64.b64encode(ev.encode()).decode()
                line = (
                    f'{{"message":{{"data":"{data}","messageId":"{_PUBSUB_ID_BASE + number}",'
                    f'"publishTime":"{publish_text[k]}","attributes":{{"product":"RBM"}}}},'
                    f'"subscription":"projects/rbm-synthetic/subscriptions/rbm-sub"}}\n'
                )
            else:
                line = ev + "\n"
            lines.append(line)
        for g in [x - first for x in garbage_at if first <= x < first + n]:
            at = int(rng.integers(0, len(lines) + 1))
            lines.insert(at, _garbage(rng, lines[at - 1] if at else '{"a":1}'))
            day_text.insert(at, day_text[at - 1] if at else cfg.start.date().isoformat())
            counts["malformed"] += 1
            del g
        ev_writer.write(day_text, lines)
        is_other = (typ == _TYPING) | (typ == _REPLY)
        counts["lines"] += len(lines)
        counts["events"] += n_ev
        counts["duplicates"] += int(dup.sum())
        counts["other_events"] += int(is_other.sum())

        # ---- outbox -----------------------------------------------------------------------
        ob_t, ob_lines = [], []
        send_text = _stamps(send_us, "ms")
        ttl_s = sim["ttl"]
        exp_text = _stamps(send_us + np.nan_to_num(ttl_s * _US, nan=0).astype(np.int64), "ms")
        retry = rng.random(n) < cfg.send_retry_share
        for i in range(n):
            a = arms[i]
            common = f'"messageId":"{ids[i]}","phone":"{phones[i]}","agentId":"rbm-agent"'
            tail = ""
            if a.experiment:
                tail = f',"experiment":"{a.experiment}","arm":"{a.name}"'
            status = 404 if sim["not_rcs"][i] else 200
            expiry = ""
            if status == 200 and np.isfinite(ttl_s[i]):
                expiry = f',"ttl":"{ttl_s[i]:g}s","expireTime":"{exp_text[i]}"'
            if retry[i]:
                first_try = int(send_us[i]) - 500_000
                ob_t.append(first_try)
                first_text = _stamps(np.array([first_try]), "ms")[0]
                ob_lines.append(
                    f'{{"kind":"send",{common},"sendTime":"{first_text}",'
                    f'"useCase":"{a.use_case}","trafficType":"{a.traffic_type}","status":503,'
                    f'"error":"UNAVAILABLE"{tail}}}\n'
                )
            ob_t.append(int(send_us[i]))
            ob_lines.append(
                f'{{"kind":"send",{common},"sendTime":"{send_text[i]}","useCase":"{a.use_case}",'
                f'"trafficType":"{a.traffic_type}"{expiry},"status":{status}{tail}}}\n'
            )
        rev = np.nonzero(sim["api_revoke"])[0]
        for i in rev.tolist():
            at = int(send_us[i] + sim["revoke_after"][i] * _US)
            common = f'"messageId":"{ids[i]}","phone":"{phones[i]}","agentId":"rbm-agent"'
            attempt = 1
            if sim["api_error_first"][i]:
                ob_t.append(at)
                failed_at = _stamps(np.array([at]), "ms")[0]
                ob_lines.append(
                    f'{{"kind":"revoke",{common},"requestedAt":"{failed_at}",'
                    f'"status":503,"attempt":1,"error":"UNAVAILABLE"}}\n'
                )
                at += _US
                attempt = 2
            ob_t.append(at)
            ob_lines.append(
                f'{{"kind":"revoke",{common},"requestedAt":"{_stamps(np.array([at]), "ms")[0]}",'
                f'"status":{int(sim["api_status"][i])},"attempt":{attempt}}}\n'
            )
        fbi = np.nonzero(np.isfinite(sim["fallback_at"]))[0]
        for i in fbi.tolist():
            at = int(send_us[i] + sim["fallback_at"][i] * _US)
            reason = "revoked" if not sim["ttl_failed"][i] else "inconclusive"
            ob_t.append(at)
            ob_lines.append(
                f'{{"kind":"fallback","messageId":"{ids[i]}","phone":"{phones[i]}","channel":"sms",'
                f'"sentAt":"{_stamps(np.array([at]), "ms")[0]}","reason":"{reason}"}}\n'
            )
        ob_times = np.array(ob_t, dtype=np.int64)
        keep_ob = ob_times <= end_us
        order = np.argsort(ob_times, kind="stable")
        order = order[keep_ob[order]]
        ob_sorted = [ob_lines[k] for k in order.tolist()]
        ob_days = _stamps(ob_times[order], "D")
        ob_writer.write([d[:10] for d in ob_days], ob_sorted)
        counts["outbox_records"] += len(ob_sorted)

        truths.append(
            pd.DataFrame(
                {
                    "messageId": ids,
                    "arm": [a.name for a in arms],
                    "useCase": [a.use_case for a in arms],
                    "trueDelaySeconds": sim["latency"],
                    "notRcs": sim["not_rcs"],
                    "skewSeconds": sim["skew"],
                    **exp,
                }
            )
        )
        bar.update(n)
    bar.close()
    ev_writer.close()
    ob_writer.close()
    counts["files"] = len(ev_writer.files)
    counts["lines"] += 0
    truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame()
    return SyntheticLogs(events_dir, outbox_dir, cfg, truth, counts)
