"""The loop, end to end on the emulator: an experiment, a TTL policy written from it, traffic
sent by use case under the policy, a second period in which one use case's phones got slower,
and the analysis saying which policy no longer holds; then the next experiment it suggests.

Period 1 runs at speed 1200 (its figures move a little from run to run; the assertions hold
for any of them); period 2 runs in the emulator's stepping mode, so it is the same every time.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from rbmtools.cli import main
from rbmtools.experiment import (
    EmulatorTarget,
    ExperimentSpec,
    Rehearsal,
    load_spec,
    run_experiment,
)
from rbmtools.wire import FallbackRecord, SendRecord, parse_outbox_record, parse_timestamp
from rbmtools.wire.ttl_policy import TtlPolicy

#: Phones that are offline a fifth of the time (for minutes), with deliveries of about 8 s.
DEVICES = {
    "rcs_capable_share": 0.9,
    "never_back_share": 0.0,
    "online": {"median": "20m", "sigma": 0.8},
    "offline": {"median": "5m", "sigma": 1.0},
}
STEADY = {"name": "steady", "extends": "default", "devices": DEVICES,
          "delivery": {"latency": {"median": "8s", "sigma": 0.6}}}  # fmt: skip
#: The same phones two weeks later, on a network that takes two minutes to deliver.
SLOW = {"name": "slow", "extends": "default", "devices": DEVICES,
        "delivery": {"latency": {"median": "2m", "sigma": 0.5}}}  # fmt: skip
PER_ARM = 150


def _records(path: Path) -> list:
    return [parse_outbox_record(line) for line in path.read_text().splitlines()]


def _send_period_two(folder: Path, profile: dict, use_case: str, policy: Path, first: int):
    """Traffic of one use case, sent by use case under the policy, observed for 45 minutes."""
    with Rehearsal.open(
        folder / "events", profile=profile, speed=0, seed=9, outbox=folder / "outbox.jsonl",
        policy=policy,
    ) as rehearsal:  # fmt: skip
        rehearsal.client.sms = rehearsal.sms_sender(folder / "sms.jsonl")
        rows = [
            {"phone": f"+1555700{first + i:04d}", "text": f"Code {i}", "use_case": use_case}
            for i in range(PER_ARM)
        ]
        sent = rehearsal.client.send_many(rows, progress=False)
        platform = {m["messageId"]: m for m in rehearsal.admin.messages()}
        rehearsal.admin.advance("45m")
        rehearsal.settle()
    return sent, platform


@pytest.mark.slow
def test_experiment_policy_traffic_and_drift(tmp_path, capsys):
    # Period 1: what is the best TTL for OTPs and for promotions?
    spec = ExperimentSpec.from_dict(
        {
            "name": "period-1",
            "use_case": "otp",
            "traffic_type": "AUTHENTICATION",
            "audience": {"synthetic": 2 * PER_ARM, "profile": STEADY},
            "arms": [
                {"method": "ttl", "duration": "5m", "use_case": "otp"},
                {
                    "method": "ttl",
                    "duration": "30m",
                    "use_case": "promo",
                    "traffic_type": "PROMOTION",
                },
            ],
            "per_arm": PER_ARM,
            "seed": 5,
            "fallback": ["on_revoked", "not_rcs"],
            "observe": "1m",
        }
    )
    first = run_experiment(spec, EmulatorTarget(speed=1200), tmp_path, progress=False, echo=None)
    assert first.status == "complete"

    # The analyst writes the policy from it and reviews it.
    policy_file = tmp_path / "policy.yaml"
    logs = ["--events", str(first.events), "--outbox", str(first.outbox), "--bootstrap", "100"]
    assert main(["policy", "write", *logs, "-o", str(policy_file)]) == 0
    capsys.readouterr()
    policy = TtlPolicy.load(policy_file)
    otp, promo = policy.rule("otp"), policy.rule("promo")
    assert 11 <= otp.seconds <= 60 and otp.traffic_type == "AUTHENTICATION"
    assert promo.traffic_type == "PROMOTION"
    for rule in (otp, promo):
        evidence = rule.evidence
        assert evidence["messages"] == PER_ARM and evidence["cost_curve"]
        best = evidence["best_ttl"]
        assert best["lo"] <= best["seconds"] <= best["hi"]
    # The cost policies: OTPs fall back (revoked, inconclusive, no RCS), promotions never.
    assert otp.fallback.allows("not_rcs") and otp.fallback.allows("inconclusive")
    assert not promo.fallback.sends_sms

    # Period 2: traffic sent by use case under the policy; the OTP phones got slower.
    slow_dir, steady_dir = tmp_path / "period-2-otp", tmp_path / "period-2-promo"
    _, otp_platform = _send_period_two(slow_dir, SLOW, "otp", policy_file, 0)
    _, promo_platform = _send_period_two(steady_dir, STEADY, "promo", policy_file, 500)
    for folder, rule, platform in (
        (slow_dir, otp, otp_platform),
        (steady_dir, promo, promo_platform),
    ):
        records = _records(folder / "outbox.jsonl")
        sends = [r for r in records if isinstance(r, SendRecord)]
        assert len(sends) == PER_ARM
        assert {(s.ttl, s.policy_version) for s in sends} == {(rule.duration, policy.version)}
        accepted = [s for s in sends if s.status == 200]
        assert accepted
        for send in accepted:  # the platform holds each message for exactly the policy's TTL
            held = platform[send.message_id]
            expiry = parse_timestamp(held["expireTime"]) - parse_timestamp(held["sendTime"])
            assert expiry == timedelta(seconds=rule.seconds)
        # Phones without RCS got the SMS at once, exactly one each, where the rule says so.
        no_rcs = {s.message_id for s in sends if s.status == 404}
        fallbacks = [r for r in records if isinstance(r, FallbackRecord)]
        sms_log = folder / "sms.jsonl"
        sms = (
            Counter(json.loads(line)["phone"] for line in sms_log.open())
            if sms_log.exists()
            else {}
        )
        assert no_rcs
        if rule.fallback.allows("not_rcs"):
            assert {f.message_id for f in fallbacks} == no_rcs
            assert {f.reason for f in fallbacks} == {"not_rcs"}
            assert len(sms) == len(no_rcs) and set(sms.values()) == {1}
        else:
            assert not fallbacks and not sms

    # The weekly report on period 2, against the active policy.
    period_two = [
        "--events", str(slow_dir / "events"), str(steady_dir / "events"),
        "--outbox", str(slow_dir / "outbox.jsonl"), str(steady_dir / "outbox.jsonl"),
        "--bootstrap", "100", "--active-policy", str(policy_file),
    ]  # fmt: skip
    assert main(["analyze", *period_two, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    drift = {entry["useCase"]: entry for entry in document["drift"]}
    assert drift["otp"]["drift"] is True and drift["otp"]["outside_interval"] is True
    assert drift["otp"]["policy_seconds"] == otp.seconds
    assert drift["otp"]["best_seconds"] < otp.seconds and drift["otp"]["saving_per_1000"] > 0
    assert drift["promo"]["drift"] is False, drift["promo"]
    # The outbox named the policy each send applied: the analysis groups by it.
    assert main(["analyze", *period_two, "--by", "useCase,policyVersion", "--json"]) == 0
    grouped = json.loads(capsys.readouterr().out)
    keys = {(g["key"]["useCase"], g["key"]["policyVersion"]) for g in grouped["groups"]}
    assert keys == {("otp", policy.version), ("promo", policy.version)}
    # A compacted history groups by the policy version as the logs do.
    history = tmp_path / "history"
    slow = ["--outbox", str(slow_dir / "outbox.jsonl")]
    assert main(["logs", "compact", str(slow_dir / "events"), "--to", str(history), *slow]) == 0
    capsys.readouterr()
    by_policy = ["--by", "useCase,policyVersion", "--bootstrap", "0", "--json"]
    assert main(["analyze", "--history", str(history), *by_policy]) == 0
    from_history = json.loads(capsys.readouterr().out)
    assert main(["analyze", "--events", str(slow_dir / "events"), *slow, *by_policy]) == 0
    from_logs = json.loads(capsys.readouterr().out)
    assert from_history["groups"] == from_logs["groups"]
    assert {g["key"]["policyVersion"] for g in from_history["groups"]} == {policy.version}
    assert main(["analyze", *period_two]) == 0
    report = capsys.readouterr().out
    assert report.startswith(f"TTL policy {policy.version} no longer holds for otp")
    assert "holds for promo" not in report

    # The next experiment, bracketing the new interval with the policy as control.
    analysis_json = tmp_path / "analysis.json"
    analysis_json.write_text(json.dumps(document))
    next_spec = tmp_path / "next.yaml"
    assert main(["experiment", "suggest", "--from", str(analysis_json), "--use-case", "otp",
                 "-o", str(next_spec)]) == 0  # fmt: skip
    capsys.readouterr()
    suggested = load_spec(next_spec)
    control = suggested.arms[0]
    assert (control.method, control.seconds) == ("ttl", otp.seconds)
    arm_names = " ".join(arm.name for arm in suggested.arms)
    assert all(role in arm_names for role in ("low", "best", "high"))
    assert suggested.per_arm > 0
    code = main(["experiment", "run", str(next_spec), "--dry-run", "--data-dir", str(tmp_path)])
    assert code == 0
    assert f"{suggested.per_arm:,} messages" in capsys.readouterr().out


@pytest.mark.parametrize("fallback", ["none", "on_revoked_or_inconclusive"])
def test_no_sms_for_phones_without_rcs_when_the_policy_says_no_fallback(tmp_path, fallback):
    policy_file = tmp_path / "policy.yaml"
    TtlPolicy.from_dict(
        {"version": 1, "use_cases": {"promo": {"method": "ttl", "duration": "1h",
                                               "fallback": fallback}}}
    ).save(policy_file)  # fmt: skip
    sent, _ = _send_period_two(tmp_path, STEADY, "promo", policy_file, 0)
    assert (sent["status"] == 404).sum() > 0
    records = _records(tmp_path / "outbox.jsonl")
    assert not [r for r in records if isinstance(r, FallbackRecord)]
    assert not (tmp_path / "sms.jsonl").exists() or not (tmp_path / "sms.jsonl").read_text()
