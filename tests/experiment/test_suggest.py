"""The next experiment's spec: arms bracketing the interval, sized by a power calculation."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from rbmtools.errors import ValidationError
from rbmtools.experiment.suggest import cost_spread, per_arm_size, suggest_spec
from rbmtools.wire.ttl_policy import UseCaseRule

OTP_COSTS = {"rcs_cost": 0.02, "sms_cost": 0.05, "sms_latency": "5s",
             "wait_cost_per_hour": 3.0, "fallback": True, "lost_cost": 1.0}  # fmt: skip


def document(best: dict, drift: list | None = None) -> dict:
    doc = {
        "schema": "rbmtools.analysis/1",
        "policies": {"otp": OTP_COSTS},
        "groups": [{"key": {"useCase": "otp"}, "best_ttl": {"policy": "otp", **best}}],
    }
    if drift is not None:
        doc["drift"] = drift
    return doc


def test_the_size_is_the_normal_two_sample_size_with_bonferroni():
    sd = cost_spread(OTP_COSTS, 20.0, 0.032)
    late = 0.05 + 3.0 * 25 / 3600
    share = (0.032 - 0.02) / (late - 0.02)
    assert sd == pytest.approx((late - 0.02) * math.sqrt(share * (1 - share)))
    size = per_arm_size(sd, 5.0, alpha=0.05, power=0.8, comparisons=3)
    effect = 0.005 / sd
    by_hand = 2 * ((norm.ppf(1 - 0.05 / 3 / 2) + norm.ppf(0.8)) / effect) ** 2
    assert size == math.ceil(by_hand) or size == math.ceil(by_hand) + 1  # statsmodels' tail term
    assert per_arm_size(sd, 10.0, alpha=0.05, power=0.8, comparisons=3) < size  # bigger: fewer
    for bad in ({"difference_per_1000": 0}, {"alpha": 1.5}, {"power": 0}):
        arguments = {"difference_per_1000": 5.0, "alpha": 0.05, "power": 0.8, **bad}
        with pytest.raises(ValidationError):
            per_arm_size(sd, arguments.pop("difference_per_1000"), comparisons=1, **arguments)


def test_arms_bracket_the_interval_with_the_active_rule_as_control():
    best = {"seconds": 19.87, "lo": 15.55, "hi": 25.4, "expected_cost": 0.032,
            "curve_stops_at_seconds": 300.0}  # fmt: skip
    control = UseCaseRule("ttl", "60s", "AUTHENTICATION", ["on_revoked", "not_rcs"])
    suggestion = suggest_spec(document(best), "otp", active=control, seed=4)
    spec = suggestion.spec
    assert [(a.name, a.seconds) for a in spec.arms] == [
        ("control ttl=60s", 60), ("low ttl=16s", 16), ("best ttl=20s", 20), ("high ttl=25s", 25),
    ]  # fmt: skip
    assert spec.per_arm == suggestion.per_arm and suggestion.comparisons == 3
    assert spec.traffic_type == "AUTHENTICATION" and spec.to_dict()["fallback"] == [
        "on_revoked",
        "not_rcs",
    ]
    assert spec.audience.synthetic == 4 * suggestion.per_arm and spec.seed == 4
    assert f"{suggestion.per_arm:,} messages per arm" in spec.description


def test_ends_stuck_at_an_edge_are_pushed_outward_and_duplicates_merge():
    # The best is the shortest TTL considered and the data stops at 40 s.
    best = {"seconds": 10.0, "lo": 10.0, "hi": 40.0, "expected_cost": 0.03,
            "curve_stops_at_seconds": 40.0}  # fmt: skip
    drift = [{"useCase": "otp", "policy_seconds": 80.0, "method": "ttl"}]
    spec = suggest_spec(document(best, drift), "otp").spec
    assert [(a.name, a.seconds) for a in spec.arms] == [
        ("control/high ttl=80s", 80), ("low/best ttl=10s", 10),
    ]  # fmt: skip
    without = suggest_spec(document(best), "otp", audience={"phones_file": "/p.txt"}).spec
    assert [a.name for a in without.arms] == ["low/best ttl=10s", "high ttl=80s"]
    assert without.audience.phones_file == "/p.txt" and without.fallback_rule.not_rcs


def test_what_cannot_be_suggested_is_said():
    with pytest.raises(ValidationError, match="is not in it"):
        suggest_spec(document({"seconds": 20.0, "expected_cost": 0.03}), "promo")
    with pytest.raises(ValidationError, match="no best TTL"):
        suggest_spec(document({"seconds": None}), "otp")
    with pytest.raises(ValidationError, match="not an analysis document"):
        suggest_spec({"hello": 1}, "otp")
