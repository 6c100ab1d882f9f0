"""The TTL policy file: its plain form, what it refuses, and what a rule gives a send."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rbmtools.errors import ValidationError
from rbmtools.wire.ttl_policy import (
    FallbackPolicy,
    FallbackRule,
    RevokeMethod,
    TtlPolicy,
    UseCaseRule,
    load_ttl_policy,
)

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
PLAIN = {
    "version": 4,
    "written": "2026-11-30T06:00:00Z",
    "use_cases": {
        "otp": {
            "method": "ttl",
            "duration": "19s",
            "traffic_type": "authentication",
            "fallback": ["on_revoked_or_inconclusive", "not_rcs"],
            "evidence": {"messages": 540, "best_ttl": {"seconds": 18.9, "lo": 15.5, "hi": 25.4}},
        },
        "promo": {"method": "api_after", "duration": "2h", "fallback": "none"},
        "*": {"method": "expire_time", "duration": "10m", "fallback": "not_rcs"},
    },
}


def test_the_plain_form_round_trips_through_yaml_and_json(tmp_path):
    policy = TtlPolicy.from_dict(PLAIN)
    assert policy.version == "4" and policy.written == datetime(2026, 11, 30, 6, tzinfo=UTC)
    otp = policy.rule("otp")
    assert (otp.method, otp.duration, otp.traffic_type) == ("ttl", "19s", "AUTHENTICATION")
    assert otp.fallback == FallbackRule(FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE, not_rcs=True)
    text = policy.to_yaml()
    assert text.startswith("# rbmtools TTL policy, version 4")
    assert "fallback: [on_revoked_or_inconclusive, not_rcs]" in text  # one line, for review
    for name in ("policy.yaml", "policy.json"):
        saved = policy.save(tmp_path / name)
        assert TtlPolicy.load(saved) == policy == load_ttl_policy(saved)
    assert load_ttl_policy(PLAIN) == policy and load_ttl_policy(policy) is policy


def test_a_rule_gives_a_send_its_expiry_and_its_revoke_time():
    policy = TtlPolicy.from_dict(PLAIN)
    assert policy.rule("otp").expiry(T0) == {"ttl": "19s"}
    assert policy.rule("otp").revoke_at(T0) is None
    assert policy.rule("promo").expiry(T0) == {}  # the API revoke is the sender's to make
    assert policy.rule("promo").revoke_at(T0) == T0 + timedelta(hours=2)
    other = policy.rule("newsletter")  # the "*" rule covers any other use case
    assert other.expiry(T0) == {"expire_time": T0 + timedelta(minutes=10)}
    assert other.fallback.allows("not_rcs") and not other.fallback.allows("revoked")
    without_default = TtlPolicy("1", {"otp": policy.rule("otp")})
    with pytest.raises(ValidationError, match=r"use_case: is not in TTL policy version 1 \(otp\)"):
        without_default.rule("alert")


@pytest.mark.parametrize(
    ("plain", "on_revoke", "not_rcs"),
    [
        ("none", FallbackPolicy.NONE, False),
        ("on_revoked", FallbackPolicy.ON_REVOKED, False),
        ("not_rcs", FallbackPolicy.NONE, True),
        (["on_revoked", "not_rcs"], FallbackPolicy.ON_REVOKED, True),
        (
            ["not_rcs", "on_revoked_or_inconclusive"],
            FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE,
            True,
        ),
    ],
)
def test_fallback_rules_read_one_choice_or_a_list(plain, on_revoke, not_rcs):
    rule = FallbackRule.parse(plain)
    assert (rule.on_revoke, rule.not_rcs) == (on_revoke, not_rcs)
    assert FallbackRule.parse(rule.to_plain()) == rule
    assert rule.sends_sms == (not_rcs or on_revoke is not FallbackPolicy.NONE)


@pytest.mark.parametrize(
    "bad",
    ["sometimes", [], ["on_revoked", "on_revoked_or_inconclusive"], ["none", "not_rcs"], 3],
)
def test_fallback_rules_refuse_what_they_cannot_mean(bad):
    with pytest.raises(ValidationError, match="fallback"):
        FallbackRule.parse(bad)


def test_a_bad_file_is_refused_naming_the_use_case_and_the_field(tmp_path):
    def refused(change: dict, match: str) -> None:
        otp = {**PLAIN["use_cases"]["otp"], **change}
        with pytest.raises(ValidationError, match=match):
            TtlPolicy.from_dict({**PLAIN, "use_cases": {"otp": otp}})

    refused({"method": "pigeon"}, r"use_cases.otp.method: must be one of ttl")
    refused({"duration": "16d"}, r"use_cases.otp.duration: must be at most 15 days")
    refused({"duration": "0s"}, r"use_cases.otp.duration: must be longer than zero")
    refused({"traffic_type": "SPAM"}, r"use_cases.otp.messageTrafficType")
    refused({"colour": "red"}, r"use_cases.otp.colour: is not a known field")
    with pytest.raises(ValidationError, match="version: is required"):
        TtlPolicy.from_dict({"use_cases": PLAIN["use_cases"]})
    with pytest.raises(ValidationError, match="use_cases: name at least one"):
        TtlPolicy.from_dict({"version": 1, "use_cases": {}})
    cost_policy = tmp_path / "costs.yaml"
    cost_policy.write_text("otp:\n  sms_cost: 0.07\n")
    with pytest.raises(
        ValidationError, match=r"costs.yaml: ttl policy: is not a TTL policy.*a cost policy"
    ):
        TtlPolicy.load(cost_policy)  # a cost policy is not a TTL policy
    with pytest.raises(ValidationError, match="is not a TTL policy"):
        TtlPolicy.from_dict({**PLAIN, "schema": "rbmtools.analysis/1"})
    with pytest.raises(ValidationError, match="cannot be read"):
        TtlPolicy.load(tmp_path / "missing.yaml")


def test_versions_count_on():
    rule = UseCaseRule(RevokeMethod.TTL, "30s")
    assert TtlPolicy("7", {"otp": rule}).next_version() == "8"
    assert TtlPolicy("2026-11", {"otp": rule}).next_version() == "2026-11.1"
    with pytest.raises(ValidationError, match="version"):
        TtlPolicy(" ", {"otp": rule})
