"""TTL policies from the analysis, on the sample logs: write one, diff two, check drift."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rbmtools.analysis import build_analysis, expected_cost, load
from rbmtools.analysis.ttl_policy import (
    cost_at,
    diff_ttl_policies,
    round_ttl,
    ttl_policy_drift,
    ttl_policy_from_analysis,
)
from rbmtools.cli import main
from rbmtools.errors import ValidationError
from rbmtools.wire.ttl_policy import TtlPolicy

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"
LOGS = ["--events", str(SAMPLE / "events"), "--outbox", str(SAMPLE / "outbox.jsonl")]


@pytest.fixture(scope="module")
def analysis():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return build_analysis(data, "useCase", bootstrap=40, seed=1)


def test_rounding_and_pricing_helpers():
    assert [round_ttl(s) for s in (3, 11.58, 18.87, 172, 1721, 20 * 86400)] == [
        10, 12, 19, 170, 1700, 15 * 86400,
    ]  # fmt: skip
    curve = [[10, 0.04], [100, 0.06]]
    assert cost_at(curve, 10) == 0.04 and cost_at(curve, 100) == 0.06
    assert cost_at(curve, 31.6227766) == pytest.approx(0.05)  # halfway in log(TTL)
    assert cost_at(curve, 5) is None and cost_at(curve, 101) is None and cost_at([], 20) is None


def test_a_proposal_takes_the_best_ttl_per_use_case(analysis):
    proposal = ttl_policy_from_analysis(
        analysis, traffic_types={"otp": "AUTHENTICATION", "promo": "PROMOTION"}
    )
    policy = proposal.policy
    assert policy.version == "1" and set(policy.use_cases) == {
        "alert",
        "otp",
        "promo",
        "transaction",
    }
    for group in analysis.groups:
        rule = policy.rule(group.key["useCase"])
        assert rule.seconds == round_ttl(group.ttl.seconds)
        evidence = rule.evidence
        assert evidence["messages"] == group.counts["messages"]
        assert evidence["best_ttl"]["seconds"] == pytest.approx(group.ttl.seconds, abs=1e-3)
        assert evidence["cost_policy"]["name"] == group.ttl.policy_name
        assert evidence["analysis"]["schema"] == "rbmtools.analysis/1"
        best = cost_at(evidence["cost_curve"], group.ttl.seconds)
        assert best == pytest.approx(group.ttl.expected_cost, abs=1e-6)  # the optimum is kept
        assert evidence["at_support_limit"] == (group.ttl.seconds == group.ttl.stops_at)
    assert str(policy.rule("otp").fallback) == "on_revoked_or_inconclusive + not_rcs"
    assert str(policy.rule("promo").fallback) == "none"  # promo's cost policy does not fall back
    assert policy.rule("otp").traffic_type == "AUTHENTICATION"
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        by_arm = build_analysis(data, ["useCase", "arm"], bootstrap=0)
    with pytest.raises(ValidationError, match="by useCase alone"):
        ttl_policy_from_analysis(by_arm)


def test_a_diff_names_added_removed_and_unpriced_use_cases():
    old = TtlPolicy.from_dict(
        {"version": 1, "use_cases": {"otp": {"method": "ttl", "duration": "30s"},
                                     "promo": {"method": "ttl", "duration": "1h"}}}
    )  # fmt: skip
    new = TtlPolicy.from_dict(
        {"version": 2, "use_cases": {"otp": {"method": "api_after", "duration": "20s"},
                                     "alert": {"method": "ttl", "duration": "15s"}}}
    )  # fmt: skip
    rows = {r["useCase"]: r for r in diff_ttl_policies(old, new)}
    assert (rows["alert"]["status"], rows["promo"]["status"]) == ("added", "removed")
    assert rows["otp"]["changes"] == {"method": ["ttl", "api_after"], "duration": ["30s", "20s"]}
    assert rows["otp"]["cost_difference_per_1000"] is None  # no evidence: not priced


def test_a_successor_keeps_what_was_reviewed_and_counts_on(analysis):
    first = ttl_policy_from_analysis(analysis).policy
    reviewed = TtlPolicy.from_dict(
        {
            **first.to_dict(),
            "version": "7",
            "use_cases": {
                **first.to_dict()["use_cases"],
                "otp": {**first.to_dict()["use_cases"]["otp"], "method": "expire_time"},
                "legacy": {"method": "ttl", "duration": "1h", "fallback": "none"},
            },
        }
    )
    second = ttl_policy_from_analysis(analysis, previous=reviewed)
    assert second.policy.version == "8"
    assert second.policy.rule("otp").method == "expire_time"  # reviewed, kept
    assert second.policy.rule("legacy") == reviewed.rule("legacy")
    assert "kept the rule of version 7" in second.skipped["legacy"]


def test_drift_flags_a_policy_outside_the_interval_and_prices_it(analysis):
    otp = next(g for g in analysis.groups if g.key["useCase"] == "otp").ttl
    alert = next(g for g in analysis.groups if g.key["useCase"] == "alert").ttl
    policy = TtlPolicy.from_dict(
        {
            "version": "5",
            "use_cases": {
                "otp": {"method": "ttl", "duration": "120s"},  # far above otp's interval
                "alert": {"method": "ttl", "duration": f"{round_ttl(alert.seconds):g}s"},
            },
        }
    )
    entries = {e["useCase"]: e for e in ttl_policy_drift(analysis, policy)}
    assert set(entries) == {"otp", "alert"}  # use cases the policy does not cover are left out
    assert entries["otp"]["drift"] is True and entries["otp"]["outside_interval"] is True
    assert entries["alert"]["drift"] is False
    group = next(g for g in analysis.groups if g.key["useCase"] == "otp")
    at_120 = expected_cost(
        group.curve.times, group.curve.survival, np.array([120.0]), otp.policy, otp.p_race
    )[0]
    assert entries["otp"]["expected_cost_policy"] == pytest.approx(at_120)
    assert entries["otp"]["saving_per_1000"] == pytest.approx((at_120 - otp.expected_cost) * 1000)
    points = zip(otp.curve["ttl_seconds"], otp.curve["expected_cost"], strict=True)
    assert cost_at(points, 120) == pytest.approx(at_120, rel=0.02)  # the curve agrees
    assert entries["otp"]["saving_per_1000"] > 0 and entries["otp"]["policy_version"] == "5"
    assert (entries["otp"]["lo"], entries["otp"]["hi"]) == (otp.lo, otp.hi)


def test_policy_write_and_diff_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "policy.yaml"
    assert main(["policy", "write", *LOGS, "-o", str(out), "--bootstrap", "30"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}: TTL policy version 1" in printed and "otp: ttl" in printed
    first = TtlPolicy.load(out)
    assert first.rule("promo").traffic_type == "PROMOTION"
    assert main(["policy", "write", *LOGS, "-o", str(out)]) == 2  # refused: it exists
    assert "pass --force" in capsys.readouterr().err
    assert TtlPolicy.load(out) == first  # untouched
    old = tmp_path / "old.yaml"
    edited = first.to_dict()
    edited["use_cases"]["otp"]["duration"] = "60s"
    TtlPolicy.from_dict(edited).save(old)
    costs = tmp_path / "costs.yaml"
    costs.write_text("otp:\n  wait_cost_per_hour: 0.3\n")  # waiting is cheap now
    args = ["-o", str(out), "--bootstrap", "30", "--costs", str(costs), "--force"]
    assert main(["policy", "write", *LOGS, *args]) == 0
    capsys.readouterr()
    second = TtlPolicy.load(out)
    assert second.version == "2"  # --force on a policy continues its version
    assert second.rule("otp").evidence["cost_policy"]["wait_cost_per_hour"] == 0.3
    assert main(["policy", "diff", str(out), str(out)]) == 0
    assert capsys.readouterr().out.count("unchanged") == 4
    assert main(["policy", "diff", str(old), str(out), "--json"]) == 1
    rows = {r["useCase"]: r for r in json.loads(capsys.readouterr().out)["use_cases"]}
    otp_change = rows["otp"]
    assert otp_change["status"] == "changed"
    assert otp_change["changes"]["duration"] == ["60s", second.rule("otp").duration]
    curve = second.rule("otp").evidence["cost_curve"]
    priced = (cost_at(curve, second.rule("otp").seconds) - cost_at(curve, 60)) * 1000
    assert otp_change["cost_difference_per_1000"] == pytest.approx(priced)
    assert otp_change["priced_on"] == "new"
    assert main(["policy", "diff", str(old), str(out)]) == 1
    text = capsys.readouterr().out
    assert "TTL policy 1 -> 2" in text and "otp: duration 60s ->" in text
    assert "per 1,000 messages" in text
