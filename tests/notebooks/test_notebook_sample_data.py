"""data/sample/: what it holds, that it is the committed spec's run, that time was driven
exactly (every send on its slot, every API revoke on its due instant), and that the generator
gives byte-identical files for the same spec and seed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from notebook_helpers import SAMPLE

from rbmtools.experiment import ExperimentSpec, load_spec
from rbmtools.testing.sample_data import SAMPLE_SPEC, SAMPLE_START, checksums, make_sample_data
from rbmtools.webhook import read_events
from rbmtools.wire import parse_duration, parse_timestamp

#: A small, quick version of the sample's spec (same arms and population, one hour of sends).
SMALL = {
    **SAMPLE_SPEC,
    "name": "small-sample",
    "audience": {**SAMPLE_SPEC["audience"], "synthetic": 36},
    "arms": [a for a in SAMPLE_SPEC["arms"] if parse_duration(a["duration"]) <= timedelta(hours=1)],
    "send_rate": 1 / 100,
    "observe": "5m",
}


def _records(folder):
    return [json.loads(line) for line in (folder / "outbox.jsonl").read_text().splitlines()]


def _check_time_was_driven_exactly(folder, spec):
    start = parse_timestamp(SAMPLE_START)
    spacing = 1 / spec["send_rate"]
    records = _records(folder)
    sends = [r for r in records if r["kind"] == "send"]
    assert len(sends) == spec["audience"]["synthetic"]
    for index, send in enumerate(sends):  # one send per slot, never late
        assert parse_timestamp(send["sendTime"]) == start + timedelta(seconds=index * spacing)
    arms = {a["name"]: a for a in spec["arms"]}
    sent = {s["messageId"]: parse_timestamp(s["sendTime"]) for s in sends}
    api = [r for r in records if r["kind"] == "revoke" and r["attempt"] == 1]
    assert api
    for revoke in api:  # an arm's API revoke lands exactly on send + duration
        due = sent[revoke["messageId"]] + parse_duration(arms[revoke["arm"]]["duration"])
        assert parse_timestamp(revoke["requestedAt"]) == due
    return records


def test_the_sample_is_the_committed_specs_run():
    assert (
        load_spec(SAMPLE / "spec.yaml").to_dict() == ExperimentSpec.from_dict(SAMPLE_SPEC).to_dict()
    )
    files = checksums(SAMPLE)
    assert sorted(files) == [
        "events/date=2026-11-23/events-000001.jsonl",
        "events/date=2026-11-24/events-000001.jsonl",
        "events/date=2026-11-25/events-000001.jsonl",
        "events/date=2026-11-26/events-000001.jsonl",
        "outbox.jsonl",
        "sms.jsonl",
        "spec.yaml",
    ]
    assert sum((SAMPLE / name).stat().st_size for name in files) < 2_000_000  # small


def test_the_sample_logs_are_whole_and_exactly_timed():
    records = _check_time_was_driven_exactly(SAMPLE, SAMPLE_SPEC)
    assert {r["kind"] for r in records} == {"send", "revoke", "fallback"}
    assert {r.get("useCase") for r in records if r["kind"] == "send"} == {
        "otp", "alert", "transaction", "promo"
    }  # fmt: skip
    reader = read_events(SAMPLE / "events")
    events = list(reader)
    assert reader.counts.malformed == 0 and reader.counts.torn == 0
    assert reader.counts.duplicates == 0
    kinds = {e.event.event_type for e in events}
    assert {"DELIVERED", "READ", "TTL_EXPIRATION_REVOKED"} <= kinds
    assert all(e.verified for e in events)
    for logged in events:  # receivedAt is platform time, never before the event itself
        assert logged.received_at >= logged.event.send_time


@pytest.mark.slow
def test_the_generator_is_deterministic(tmp_path):
    first = make_sample_data(tmp_path / "a", SMALL, progress=False)
    second = make_sample_data(tmp_path / "b", SMALL, progress=False)
    assert first.files == second.files
    assert len(first.files) >= 4  # spec, outbox, sms, at least one event segment
    _check_time_was_driven_exactly(tmp_path / "a", SMALL)
    assert first.stops == second.stops > 36
    # a rerun into the same folder replaces the files, and gives the same ones again
    again = make_sample_data(tmp_path / "a", SMALL, progress=False)
    assert again.files == first.files
