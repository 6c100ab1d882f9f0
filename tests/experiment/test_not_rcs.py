"""Phones without RCS in an experiment: with ``not_rcs`` in the fallback, each gets exactly one
SMS, at once; without it, none. The plan counts them before the run."""

from __future__ import annotations

from collections import Counter

import pytest
from experiment_helpers import RunLogs, make_spec

from rbmtools.analysis import DEFAULT_POLICIES, analyze
from rbmtools.emulator import Emulator
from rbmtools.experiment import EmulatorTarget, run_experiment

HALF_RCS = {"name": "half-rcs", "extends": "always-online", "devices": {"rcs_capable_share": 0.5}}
QUIET = {"progress": False, "echo": None}


@pytest.mark.parametrize(
    ("fallback", "sms_for_no_rcs"),
    [(["on_revoked", "not_rcs"], True), ("not_rcs", True), ("on_revoked", False)],
)
def test_each_phone_without_rcs_gets_one_sms_or_none(tmp_path, fallback, sms_for_no_rcs):
    spec = make_spec(
        name="no-rcs",
        audience={"synthetic": 60, "profile": HALF_RCS},
        arms=[{"method": "ttl", "duration": "10s"}],
        fallback=fallback,
        observe="10s",
    )
    assert spec.to_dict()["fallback"] == fallback  # the plain form keeps what was written
    with Emulator(profile=HALF_RCS, speed=600.0, seed=spec.seed) as emu:
        target = EmulatorTarget(emulator=emu)
        result = run_experiment(spec, target, tmp_path, **QUIET)
        again = run_experiment(spec, target, tmp_path, resume=True, **QUIET)
        sink = emu.sms.arrivals()
    logs = RunLogs(result.run_dir)
    no_rcs = {s.message_id: s.phone for s in logs.sends if s.status == 404}
    assert 15 < len(no_rcs) < 45  # about half of 60
    reasons = Counter(f.reason for f in logs.fallbacks)
    per_phone = Counter(a.phone for a in sink)
    if sms_for_no_rcs:
        assert reasons["not_rcs"] == len(no_rcs)
        assert {f.message_id for f in logs.fallbacks if f.reason == "not_rcs"} == set(no_rcs)
        assert all(per_phone[phone] == 1 for phone in no_rcs.values())  # exactly one each
        assert result.stats.fallback_reasons["not_rcs"] == len(no_rcs)
        assert result.plan.sms_estimate == len(no_rcs)  # the plan saw them coming
    else:
        assert reasons["not_rcs"] == 0 and not set(no_rcs.values()) & set(per_phone)
        assert result.stats.outcomes["not_rcs"] == len(no_rcs)
    assert again.stats.sends == again.stats.fallbacks == 0  # a resume sends nothing twice
    assert max(per_phone.values(), default=1) == 1
    assert result.summary["not_rcs"].sum() == len(no_rcs)
    # The analysis counts (and prices) these SMS apart from the revokes' SMS.
    expected = len(no_rcs) if sms_for_no_rcs else 0
    assert result.summary["not_rcs_fallbacks"].sum() == expected
    (group,) = analyze(result.events, result.outbox, bootstrap=0)["groups"]
    sms_cost = DEFAULT_POLICIES["otp"].sms_cost
    assert group["sms"] == {
        "after_revoke": reasons["revoked"],
        "not_rcs": expected,
        "after_revoke_cost": pytest.approx(reasons["revoked"] * sms_cost),
        "not_rcs_cost": pytest.approx(expected * sms_cost),
    }
