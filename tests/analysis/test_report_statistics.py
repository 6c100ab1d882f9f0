"""The statistics a report leads with, for the cases issue 13 found wrong: small groups, a
60 s TTL arm, flat and sharp cost curves, the edge of the supported range, arm comparisons
against the spec's first arm, and one convention for figures that cannot be estimated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from rbmtools.analysis import (
    DEFAULT_POLICIES,
    CostPolicy,
    best_ttl,
    build_analysis,
    compare_arms,
    kaplan_meier,
    load,
)
from rbmtools.analysis.schema import bin_index

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


def _bins(durations, delivered) -> pd.DataFrame:
    frame = pd.DataFrame({"bin": bin_index(durations), "d": np.asarray(delivered).astype(int)})
    grouped = frame.groupby("bin").d.agg(delivered="sum", total="count").reset_index()
    grouped["censored"] = grouped.total - grouped.delivered
    return grouped[["bin", "delivered", "censored"]]


# ------------------------------------------------------------------ never delivered


def test_a_50_message_group_never_delivered_is_the_share_at_the_end_of_follow_up():
    # 45 delivered within 45 s, 5 expired undelivered at their 60 s TTL: 10 % never delivered
    # within 60 s. The curve is cut at 30 at risk (about 20 s), where S is about 60 %: that
    # is where quantiles stop, not what "never delivered" means.
    durations = np.concatenate([np.linspace(1.0, 45.0, 45), np.full(5, 60.0)])
    delivered = np.concatenate([np.ones(45), np.zeros(5)])
    curve = kaplan_meier(_bins(durations, delivered), min_at_risk=30)
    assert curve.supported_until < 25.0  # the cut is early...
    share, lo, hi = curve.never_delivered
    assert share == pytest.approx(0.10)  # ...but never delivered is 5 of 50
    assert lo < 0.10 < hi and lo > 0.0 and hi < 0.3
    assert curve.never_delivered_at == pytest.approx(60.0, rel=3e-3)


def test_no_censoring_means_nothing_undelivered_with_an_upper_bound():
    curve = kaplan_meier(_bins(np.linspace(1.0, 50.0, 50), np.ones(50)), min_at_risk=30)
    share, lo, hi = curve.never_delivered
    assert share == 0.0 and lo == 0.0 and 0.0 < hi < 1.0
    assert curve.never_delivered_at == pytest.approx(50.0, rel=3e-3)


def test_a_group_too_small_for_a_curve_still_has_its_never_delivered_share():
    durations = np.array([1.0, 2.0, 3.0, 4.0, 60.0])
    curve = kaplan_meier(_bins(durations, [1, 1, 1, 1, 0]), min_at_risk=30)
    assert not curve.estimable and curve.quantile(0.5) == (None, None, None)
    assert curve.never_delivered[0] == pytest.approx(0.2)
    empty = kaplan_meier(_bins(np.array([]), np.array([])), min_at_risk=30)
    assert empty.never_delivered == (None, None, None) and empty.never_delivered_at is None


@pytest.fixture(scope="module")
def sample_by_arm():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return build_analysis(data, "arm", bootstrap=20)


def test_the_60_s_ttl_arm_of_the_sample_never_delivered_within_its_ttl(sample_by_arm):
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        life = data.lifecycle()
    arm = life[(life.arm == "otp ttl=1m") & (life.outcome != "not_rcs")]
    undelivered = int((~arm.delivered).sum())
    assert (len(arm), undelivered) == (154, 21)  # the figures
    group = next(g for g in sample_by_arm.groups if g.key["arm"] == "otp ttl=1m")
    doc = next(g for g in sample_by_arm.to_dict()["groups"] if g["key"]["arm"] == "otp ttl=1m")
    latency = doc["latency_seconds"]
    assert latency["never_delivered_share"] == pytest.approx(21 / 154)  # 13.6 %, not 18.8 %
    assert latency["never_delivered_at_seconds"] == pytest.approx(60.0, rel=3e-3)
    lo, hi = latency["ci"]["never_delivered_share"]
    assert lo < 21 / 154 < hi
    assert group.curve.supported_until < 60.0  # quantiles still stop where the data does


# ------------------------------------------------------------------ cost curves


def _flat_promo_like():
    # A promotion that is delivered within minutes or never (phones gone for good): past a
    # few minutes waiting changes nothing but the tiny wait cost.
    rng = np.random.default_rng(4)
    latency = np.where(rng.random(3_000) < 0.2, np.inf, rng.lognormal(np.log(30.0), 1.0, 3_000))
    observed = np.minimum(latency, 7 * 86_400.0)
    return _bins(observed, np.isfinite(latency))


def _sharp_otp_like():
    rng = np.random.default_rng(5)
    latency = np.where(rng.random(3_000) < 0.15, np.inf, rng.lognormal(np.log(4.0), 0.8, 3_000))
    observed = np.minimum(latency, 600.0)
    return _bins(observed, np.isfinite(latency))


def test_a_flat_cost_curve_has_a_wide_near_optimal_range_and_a_sharp_one_a_narrow_one():
    flat_bins = _flat_promo_like()
    flat = best_ttl(kaplan_meier(flat_bins), flat_bins, DEFAULT_POLICIES["promo"], bootstrap=0)
    sharp_bins = _sharp_otp_like()
    sharp = best_ttl(kaplan_meier(sharp_bins), sharp_bins, DEFAULT_POLICIES["otp"], bootstrap=0)
    for choice in (flat, sharp):
        assert choice.tolerance == 0.005
        assert choice.near_lo <= choice.seconds <= choice.near_hi
        inside = choice.curve[
            choice.curve.ttl_seconds.between(choice.near_lo, choice.near_hi)
        ].expected_cost
        assert inside.max() <= choice.expected_cost * 1.005 + 1e-15
    # within 0.5 % of the best cost over more than a factor of 100 of TTLs: the choice is free
    assert flat.near_hi / flat.near_lo > 100
    # the OTP optimum is sharp: the range spans less than a factor of 2
    assert sharp.near_hi / sharp.near_lo < 2
    doc = flat.to_dict()
    assert doc["near_optimal"] == {"lo": flat.near_lo, "hi": flat.near_hi, "tolerance": 0.005}


def test_the_near_optimal_range_is_contiguous_around_the_optimum():
    # A cost curve with two equally cheap valleys: only the one holding the optimum counts.
    ttls = np.geomspace(10, 1000, 50)
    costs = np.where((ttls < 30) | (ttls > 300), 1.0, 1.5)
    from rbmtools.analysis.ttl import near_optimal_range

    lo, hi = near_optimal_range(ttls, costs, int(np.argmin(costs)), 0.005)
    assert lo == ttls[0] and hi < 30


def test_at_support_edge_is_a_property_of_the_data_not_of_the_bootstrap_seed():
    # Promotions still arriving when the data stops: the cheapest TTL is the longest supported.
    rng = np.random.default_rng(6)
    latency = rng.lognormal(np.log(600.0), 1.0, 2_000)
    observed = np.minimum(latency, 3_600.0)
    bins = _bins(observed, latency <= 3_600.0)
    curve = kaplan_meier(bins)
    flags = {
        best_ttl(curve, bins, DEFAULT_POLICIES["promo"], bootstrap=30, seed=seed).at_support_edge
        for seed in range(4)
    }
    assert flags == {True}
    choice = best_ttl(curve, bins, DEFAULT_POLICIES["promo"], bootstrap=0)
    assert choice.near_hi == choice.stops_at and choice.to_dict()["at_support_edge"] is True
    sharp_bins = _sharp_otp_like()
    sharp = best_ttl(kaplan_meier(sharp_bins), sharp_bins, DEFAULT_POLICIES["otp"], bootstrap=0)
    assert sharp.at_support_edge is False


# ------------------------------------------------------------------ arm comparisons


def _two_arm_logs(logs):
    # spec order: "ttl 2m" first, then "api 1m" (alphabetically the other way round)
    for i in range(40):
        logs.send(f"t{i}", ttl=120, arm="ttl 2m", experiment="x")
        logs.event(f"t{i}", "TTL_EXPIRATION_REVOKED", 120.0)
    for i in range(40):
        logs.send(f"a{i}", arm="api 1m", experiment="x")
        logs.revoke(f"a{i}", 60.0, 200 if i < 20 else 404)
        if i >= 20:
            logs.event(f"a{i}", "DELIVERED", 30.0)
    return logs.write()


def test_arms_are_compared_with_the_spec_first_arm_in_percentage_points(logs):
    events, outbox = _two_arm_logs(logs)
    with load(events, outbox) as data:
        analysis = build_analysis(data, "arm", bootstrap=0, reference=["ttl 2m", "api 1m"])
        named = compare_arms(data.aggregates("arm"), reference="api 1m")
    rows = analysis.comparisons
    assert set(rows["reference"]) == {"ttl 2m"} and set(rows["arm"]) == {"api 1m"}
    row = rows[rows.rate == "revoke_success"].iloc[0]
    assert row["difference"] == pytest.approx(0.5 - 1.0)
    assert row["difference_pp"] == pytest.approx(-50.0)
    lo, hi = confint_proportions_2indep(20, 40, 40, 40, method="newcomb", compare="diff")
    assert (row["lo_pp"], row["hi_pp"]) == pytest.approx((100 * lo, 100 * hi))
    assert row["significant"] is True or row["significant"] == True  # noqa: E712
    same = rows[rows.rate == "fallback"].iloc[0]  # no fallbacks in either arm
    assert same["difference"] == 0.0  # exactly, not 8.7e-19
    assert same["significant"] == False  # noqa: E712
    assert set(named["reference"]) == {"api 1m"}
    from rbmtools.analysis.tables import comparisons_table

    table = comparisons_table(analysis)
    stale = table[table.rate == "stale delivery"].iloc[0]  # nothing delivered in "ttl 2m"
    assert stale["difference"].startswith("n/e") and stale["significant"].startswith("n/e")
    notes = dict(table.attrs["footnotes"])
    assert notes[stale["significant"][3:]] == "no delivered message in ttl 2m"
    revoke = table[table.rate == "revoke success"].iloc[0]
    assert (revoke["difference"], revoke["significant"]) == ("−50.0 pp", "yes")
    doc = json.loads(json.dumps(analysis.to_dict()))
    assert doc["comparisons"][0]["reference"] == "ttl 2m"
    assert isinstance(doc["comparisons"][0]["significant"], bool)


def test_a_reference_missing_from_the_data_is_refused(logs):
    from rbmtools.errors import ValidationError

    events, outbox = _two_arm_logs(logs)
    with load(events, outbox) as data, pytest.raises(ValidationError, match="reference"):
        compare_arms(data.aggregates("arm"), reference="nope")


# ------------------------------------------------------------------ not estimable


def test_not_estimable_is_null_with_a_reason(sample_by_arm):
    doc = json.loads(json.dumps(sample_by_arm.to_dict(), allow_nan=False))  # no NaN anywhere
    for group in doc["groups"]:
        reasons = group["not_estimable"]
        for path, reason in reasons.items():
            node = group
            for part in path.split("."):
                node = node[part]
            assert node is None, path  # every reason explains a null...
            assert reason and isinstance(reason, str)
    otp = next(g for g in doc["groups"] if g["key"]["arm"] == "otp ttl=1m")
    assert otp["latency_seconds"]["p90"] is None
    assert "at risk" in otp["not_estimable"]["latency_seconds.p90"]
    assert otp["revoke_success"]["api"]["rate"] is None
    assert otp["not_estimable"]["revoke_success.api.rate"] == "no API revokes tried"


def test_policy_with_zero_costs_keeps_a_near_optimal_range():
    free = CostPolicy(
        rcs_cost=0, sms_cost=0, sms_latency=0, wait_cost_per_hour=0, deadline=60,
        stale_cost=0, duplicate_cost=0, fallback=True,
    )  # fmt: skip
    bins = _sharp_otp_like()
    choice = best_ttl(kaplan_meier(bins), bins, free, bootstrap=0)
    assert choice.expected_cost == 0.0
    assert choice.near_lo == choice.curve.ttl_seconds.iloc[0]
    assert choice.near_hi == choice.stops_at


# ------------------------------------------------------------------ parameters


def test_by_as_papermill_passes_it():
    from rbmtools.analysis.schema import validate_by
    from rbmtools.errors import ValidationError

    for form in (["useCase", "arm"], "useCase,arm", '["useCase","arm"]', "[useCase, arm]"):
        assert validate_by(form) == ["useCase", "arm"], form
    with pytest.raises(ValidationError, match="list of column names"):
        validate_by('["useCase"')


def test_grouped_without_use_case_a_group_of_one_use_case_gets_its_cost_policy(sample_by_arm):
    """Each arm of the sample's experiment holds one use case: ``by arm`` prices each arm by
    it; a group that mixes use cases (the whole experiment) gets no policy, not a guess."""
    arms = {g["key"]["arm"]: g["best_ttl"] for g in sample_by_arm.to_dict()["groups"]}
    assert {arm: best["policy"] for arm, best in arms.items()} == {
        arm: arm.split()[0]
        for arm in arms  # "otp ttl=1m" is an otp arm
    }
    assert all(best["seconds"] is not None for best in arms.values())
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        mixed = build_analysis(data, "experiment", bootstrap=0).to_dict()["groups"]
    assert [g["best_ttl"]["policy"] for g in mixed] == [None]
