"""Looks at a running experiment: the stopping section, what a look reads and records."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from experiment_helpers import make_spec

from rbmtools import wire
from rbmtools.analysis.stopping import Decision
from rbmtools.errors import ValidationError
from rbmtools.experiment.assign import (
    message_id_for,
    recipient_order,
    stopping_plan,
    synthetic_phones,
)
from rbmtools.experiment.looks import (
    LookRecord,
    expected_assignments,
    facts_from_logs,
    message_frame,
    read_looks,
    replay_looks,
    take_look,
    write_look,
)
from rbmtools.experiment.stopping_spec import StoppingSpec
from rbmtools.wire import FallbackRecord, RevokeRecord, SendRecord

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def stopping_spec(**stopping):
    return make_spec(
        send_rate=1,
        arms=[
            {"name": "short", "method": "ttl", "duration": "20s"},
            {"name": "long", "method": "api_after", "duration": "2m"},
            {"name": "promo", "method": "ttl", "duration": "1m", "use_case": "promo"},
            {"name": "promo long", "method": "ttl", "duration": "10m", "use_case": "promo"},
        ],
        stopping={"min_per_arm": 5, "look_every": 20, **stopping},
    )


def test_the_stopping_section_is_checked_and_kept(tmp_path):
    spec = stopping_spec(error_rate=0.1)
    assert spec.stopping == StoppingSpec(error_rate=0.1, min_per_arm=5, look_every=20)
    again = type(spec).from_dict(json.loads(spec.to_json()))
    assert again.stopping == spec.stopping
    costs = tmp_path / "costs.yaml"
    costs.write_text("otp:\n  sms_cost: 0.09\n")
    section = StoppingSpec.from_dict({"cost_policy": "costs.yaml"}, base_dir=tmp_path)
    assert section.cost_policy["otp"]["sms_cost"] == 0.09  # the file's content, inline
    assert section.policies()["otp"].sms_cost == 0.09
    assert section.policies()["promo"].fallback is False  # the defaults stay
    with pytest.raises(ValidationError, match="send_rate"):
        make_spec(stopping={})
    with pytest.raises(ValidationError, match="two arms"):
        make_spec(send_rate=1, arms=[{"method": "ttl", "duration": "1m"}], stopping={})
    with pytest.raises(ValidationError, match=r"stopping\.look"):
        StoppingSpec.from_dict({"look": 10})
    with pytest.raises(ValidationError, match="error_rate"):
        StoppingSpec(error_rate=0.5)
    with pytest.raises(ValidationError, match="min_per_arm"):
        StoppingSpec(min_per_arm=0)
    with pytest.raises(ValidationError, match="sms_cost"):
        StoppingSpec(cost_policy={"otp": {"sms_cost": "cheap"}})
    with pytest.raises(ValidationError, match="no cost policy for this use case"):
        make_spec(use_case="banking", send_rate=1, stopping={})
    priced = {"*": {"rcs_cost": 0.02, "sms_cost": 0.05, "sms_latency": 5,
                    "wait_cost_per_hour": 1, "deadline": 60, "stale_cost": 0,
                    "duplicate_cost": 0, "fallback": True}}  # fmt: skip
    assert make_spec(use_case="banking", send_rate=1, stopping={"cost_policy": priced}).stopping


def _facts(rows):
    """MessageFacts from (arm, sent, status, delivered, revoke 200 at, fallback at) rows."""
    records, events = [], []
    for i, (arm, sent, status, delivered, revoked, fallback) in enumerate(rows):
        phone, message_id = f"+1555000{i:04d}", f"m{i}"
        common = {"message_id": message_id, "phone": phone, "experiment": "t", "arm": arm}
        records.append(SendRecord(agent_id="a", send_time=at(sent), status=status, **common))
        if revoked is not None:
            records.append(
                RevokeRecord(
                    agent_id="a", requested_at=at(revoked), status=200, attempt=1, **common
                )
            )
        if fallback is not None:
            records.append(
                FallbackRecord(channel="sms", sent_at=at(fallback), reason="revoked", **common)
            )
        if delivered is not None:
            payload = wire.event_payload(
                agent_id="a", phone=phone, event_type="DELIVERED", event_id=f"e{i}",
                send_time=at(delivered), message_id=message_id,
            )  # fmt: skip
            events.append(wire.LoggedEvent(wire.parse_event(payload), at(delivered), True, "x"))
    return facts_from_logs(records, events, "t")


def test_a_look_reads_only_what_was_known_at_its_instant():
    facts = _facts(
        [
            ("short", 0, 200, 3, None, None),  # delivered after 3 s
            ("short", 10, 200, 35, 30, 60),  # revoked at 30 s, delivered all the same: a race
            ("short", 20, 200, None, None, 80),  # SMS at 80 s: not yet at the look
            ("long", 5, 404, None, None, None),  # not RCS
            ("long", 100, 200, None, None, None),  # sent after the look
        ]
    )
    frame = message_frame(facts, at(50))  # in the order of the sends
    assert list(frame["arm"]) == ["short", "long", "short", "short"]
    assert frame["latency"].iloc[0] == pytest.approx(3.0)
    assert frame["latency"].iloc[2] == pytest.approx(25.0)
    assert math.isnan(frame["latency"].iloc[3])
    assert list(frame["raced"]) == [False, False, True, False]
    assert list(frame["fallback"]) == [False, False, False, False]
    assert list(frame["reachable"]) == [True, False, True, True]
    early = message_frame(facts, at(33))  # the DELIVERED at 35 s is not known yet
    assert math.isnan(early["latency"].iloc[2]) and not early["raced"].iloc[2]
    assert message_frame(facts, at(90))["fallback"].tolist() == [False, False, True, True]


def _run_rows(count: int, start: float = 0.0):
    """Messages sent one a second over both use cases: short arms deliver fast, long ones
    slowly, so a look can tell them apart."""
    rows = []
    arms = ["short", "long", "promo", "promo long"]
    for i in range(count):
        arm = arms[i % 4]
        slow = arm in ("long", "promo long") and i % 3 == 0
        delivered = start + i + (90 if slow else 2)
        fallback = start + i + 150 if slow and arm == "long" else None
        rows.append((arm, start + i, 200, delivered, None, fallback))
    return rows


def test_looks_decide_per_use_case_and_replay_from_the_logs(tmp_path):
    spec = stopping_spec(max_messages=400)
    facts = _facts(_run_rows(400))
    looks: list[LookRecord] = []
    for instant in (60, 200, 600):
        looks.append(
            take_look(spec, spec.stopping, facts, at(instant), previous=looks, max_messages=400)
        )
    first, _, last = looks
    assert set(first.use_cases) == {"otp", "promo"}
    assert first.use_cases["otp"].decision is Decision.NOT_ENOUGH_DATA
    assert first.running == ("short", "long", "promo", "promo long")
    otp = last.use_cases["otp"]
    assert otp.index == 3 and otp.arm("short").tally.settled > 5
    for record in looks:
        write_look(tmp_path / "looks.jsonl", record)
    assert [r.to_dict() for r in read_looks(tmp_path / "looks.jsonl")] == [
        r.to_dict() for r in looks
    ]
    again = replay_looks(spec, facts, read_looks(tmp_path / "looks.jsonl"), 400)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in looks]


def test_eliminated_arms_leave_the_next_batches():
    spec = stopping_spec(max_messages=2000, min_per_arm=20)
    rows = []
    for i in range(800):
        arm = ["short", "long"][i % 2]
        slow = arm == "long" and i % 2 == 1 and i % 4 == 1  # half of "long" waits 90 s
        rows.append((arm, i, 200, i + (90 if slow else 1), None, None))
    facts = _facts(rows)
    look = take_look(spec, spec.stopping, facts, at(900), max_messages=2000)
    assert look.use_cases["otp"].eliminated == ("long",)
    assert look.use_cases["otp"].best == "short"
    assert look.use_cases["otp"].decision is Decision.READY
    assert look.running == ("promo", "promo long")  # otp is decided: only promo goes on


def test_read_looks_sets_a_torn_last_line_aside(tmp_path):
    spec = stopping_spec(max_messages=400)
    record = take_look(spec, spec.stopping, _facts(_run_rows(40)), at(60), max_messages=400)
    path = tmp_path / "looks.jsonl"
    write_look(path, record)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('{"look": 2, "at": ')
    assert [r.index for r in read_looks(path)] == [1]
    assert path.read_text().endswith('"at": ')  # only a resume repairs the file
    assert [r.index for r in read_looks(path, repair=True)] == [1]
    assert path.read_text().endswith("\n")
    path.write_text('{"look": 1}\n' + json.dumps(record.to_dict()) + "\n")
    with pytest.raises(ValidationError, match="line 1"):
        read_looks(path)
    assert read_looks(tmp_path / "missing.jsonl") == []


def test_expected_assignments_follow_the_batches():
    looks = [
        LookRecord(1, at(10), 20, False, ("a", "b", "c")),
        LookRecord(2, at(20), 40, False, ("a", "b")),
    ]
    expected = expected_assignments(["a", "b", "c"], looks, 50, 20)
    assert expected == pytest.approx({"a": 20 / 3 * 2 + 5, "b": 20 / 3 * 2 + 5, "c": 40 / 3})


def test_batches_take_the_recipients_in_the_runs_order():
    spec = stopping_spec(max_messages=50)
    phones = synthetic_phones(60)
    order = recipient_order(spec, phones)
    assert sorted(order) == phones and order != phones
    plan = stopping_plan(spec, phones, [("short", "promo")])
    assert [m.phone for m in plan] == order[:50]
    assert [m.index for m in plan] == list(range(50))
    assert {m.arm for m in plan[:20]} == {"short", "long", "promo", "promo long"}
    assert {m.arm for m in plan[20:]} == {"short", "promo"}  # after look 1 dropped the others
    assert all(m.message_id == message_id_for(spec.name, m.phone, m.arm) for m in plan)
    assert stopping_plan(spec, phones, [("short",), ()])[-1].index == 39  # decided at look 2
    again = stopping_plan(spec, phones, [("short", "promo")])
    assert again == plan  # a resume plans what was sent
    with pytest.raises(ValidationError, match="max_messages"):
        stopping_plan(stopping_spec(max_messages=100), phones)
