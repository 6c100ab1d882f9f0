"""Recipients, their arms and their messageIds: everything about a run that is decided up front.

The audience is read (a phone-list file) or generated (synthetic numbers), shuffled with a
generator seeded by the experiment's name and seed, cut to the number of messages wanted and
split between the arms as evenly as possible, in random order. Each recipient lands in exactly
one arm and gets one RBM message whose id is a UUID5 of (experiment, phone, arm): a re-run or a
resume computes the same ids, and the platform ignores an id it has already seen, so nobody is
messaged twice by accident.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rbmtools.errors import ValidationError
from rbmtools.experiment.allocation import batch_arms
from rbmtools.experiment.spec import ExperimentSpec
from rbmtools.wire import normalize_phone

__all__ = [
    "MESSAGE_ID_NAMESPACE",
    "PlannedMessage",
    "assign",
    "audience_fingerprint",
    "message_id_for",
    "plan_messages",
    "read_phones",
    "recipient_order",
    "recipients",
    "stopping_plan",
    "synthetic_phones",
]

#: The UUID5 namespace of experiment messageIds (fixed forever: changing it re-sends).
MESSAGE_ID_NAMESPACE = uuid.UUID("9d3c2f4e-6a51-5b7e-8c0d-2f61a4b9e7d3")
_SYNTHETIC_PREFIX = "+1555"


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One message of the run: its place in the send order, recipient, arm and messageId."""

    index: int
    phone: str
    arm: str
    message_id: str


def message_id_for(experiment: str, phone: str, arm: str) -> str:
    """The deterministic messageId of ``phone``'s message in ``arm`` of ``experiment``."""
    key = f"{experiment}\x1f{normalize_phone(phone)}\x1f{arm}"
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, key))


def synthetic_phones(count: int) -> list[str]:
    """``count`` distinct E.164 numbers for the emulator: ``+1555`` and seven digits."""
    if count > 10_000_000:
        raise ValidationError("audience.synthetic", count, "must be at most 10,000,000")
    return [f"{_SYNTHETIC_PREFIX}{i:07d}" for i in range(count)]


def _phones_from_csv(text: str, path: Path) -> Iterable[tuple[int, str]]:
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "phone" not in fields:
        raise ValidationError(
            "audience.phones_file", str(path), "a CSV phone list needs a 'phone' column"
        )
    column = (reader.fieldnames or [])[fields.index("phone")]
    for number, row in enumerate(reader, start=2):
        yield number, (row.get(column) or "").strip()


def read_phones(path: str | Path) -> list[str]:
    """The distinct numbers of a phone-list file, in file order (see ``Audience``).

    A number that is not E.164 raises ``ValidationError`` naming its line; a repeated number
    is kept once (the same person must not get two messages).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ValidationError(
            "audience.phones_file", str(path), f"cannot be read ({exc})"
        ) from None
    first = next((line for line in text.splitlines() if line.strip()), "")
    header = [cell.strip().lower() for cell in first.split(",")]
    if source.suffix.lower() == ".csv" or "phone" in header:
        rows: Iterable[tuple[int, str]] = _phones_from_csv(text, source)
    else:
        rows = ((n, line.split("#", 1)[0].strip()) for n, line in enumerate(text.splitlines(), 1))
    phones: dict[str, None] = {}
    for number, raw in rows:
        if not raw:
            continue
        phones[normalize_phone(raw, f"{source.name} line {number}")] = None
    if not phones:
        raise ValidationError("audience.phones_file", str(path), "holds no phone numbers")
    return list(phones)


def recipients(spec: ExperimentSpec) -> list[str]:
    """The audience of ``spec``: the phone list, or its synthetic numbers."""
    audience = spec.audience
    if audience.phones_file is not None:
        return read_phones(audience.phones_file)
    return synthetic_phones(int(audience.synthetic or 0))


def audience_fingerprint(phones: Sequence[str]) -> str:
    """A SHA-256 of the audience, kept with a run: a resume refuses a changed phone list."""
    digest = hashlib.sha256()
    for phone in phones:
        digest.update(phone.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _shuffled(spec: ExperimentSpec, phones: Sequence[str]) -> tuple[random.Random, list[str]]:
    """The audience in the run's seeded order, and the generator that shuffled it."""
    rng = random.Random(f"rbmtools.experiment\x1f{spec.name}\x1f{spec.seed}")
    order = list(phones)
    rng.shuffle(order)
    return rng, order


def recipient_order(spec: ExperimentSpec, phones: Sequence[str]) -> list[str]:
    """The audience in the order a run draws it (the same shuffle ``assign`` makes): a
    stopping run gives these recipients their arms batch by batch."""
    return _shuffled(spec, phones)[1]


def _wanted(spec: ExperimentSpec, phones: Sequence[str]) -> int:
    """How many recipients the run draws: ``per_arm`` per arm, ``total``, or everyone; with a
    stopping rule, its ``max_messages`` when given."""
    arms = spec.arm_names
    if spec.stopping is not None and spec.stopping.max_messages is not None:
        wanted = spec.stopping.max_messages
    elif spec.per_arm is not None:
        wanted = spec.per_arm * len(arms)
    elif spec.total is not None:
        wanted = spec.total
    else:
        wanted = len(phones)
    if wanted > len(phones):
        field = "per_arm" if spec.per_arm is not None else "total"
        if spec.stopping is not None and spec.stopping.max_messages is not None:
            field = "stopping.max_messages"
        raise ValidationError(
            field, wanted, f"needs {wanted:,} recipients but the audience has {len(phones):,}"
        )
    if wanted < len(arms):
        raise ValidationError(
            "audience", len(phones), f"needs at least one recipient per arm ({len(arms)})"
        )
    return wanted


def assign(spec: ExperimentSpec, phones: Sequence[str]) -> list[PlannedMessage]:
    """Draw the recipients and their arms (seeded, balanced, random order)."""
    arms = spec.arm_names
    wanted = _wanted(spec, phones)
    rng, order = _shuffled(spec, phones)
    chosen = order[:wanted]
    base, extra = divmod(wanted, len(arms))
    bigger = set(rng.sample(range(len(arms)), extra))
    labels = [arm for i, arm in enumerate(arms) for _ in range(base + (i in bigger))]
    rng.shuffle(labels)
    return [
        PlannedMessage(index, phone, arm, message_id_for(spec.name, phone, arm))
        for index, (phone, arm) in enumerate(zip(chosen, labels, strict=True))
    ]


def stopping_plan(
    spec: ExperimentSpec, phones: Sequence[str], running: Sequence[Sequence[str]] = ()
) -> list[PlannedMessage]:
    """The messages of a run with a stopping rule: the recipients in the run's order, batch by
    batch (``stopping.look_every``), each batch split evenly among the arms the look before it
    left running (``running[b - 1]`` for batch ``b``; all arms for the first, and the last
    known set for batches not looked at yet). A look that left nothing running ends the plan."""
    assert spec.stopping is not None
    order = recipient_order(spec, phones)[: _wanted(spec, phones)]
    size = spec.stopping.look_every
    messages: list[PlannedMessage] = []
    arms: Sequence[str] = spec.arm_names
    for batch, start in enumerate(range(0, len(order), size)):
        if 0 < batch <= len(running):
            arms = running[batch - 1]
        if not arms:
            break
        chosen = batch_arms(spec.seed, batch, len(order[start : start + size]), arms)
        messages += [
            PlannedMessage(start + i, phone, arm, message_id_for(spec.name, phone, arm))
            for i, (phone, arm) in enumerate(zip(order[start : start + size], chosen, strict=True))
        ]
    return messages


def plan_messages(spec: ExperimentSpec) -> tuple[list[PlannedMessage], str, int]:
    """The planned messages of ``spec``, the fingerprint of the audience they came from, and
    the audience's size."""
    phones = recipients(spec)
    planned = assign(spec, phones) if spec.stopping is None else stopping_plan(spec, phones)
    return planned, audience_fingerprint(phones), len(phones)
