"""Rates, arm comparisons, cost policies and the best TTL against independent computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from rbmtools.analysis import (
    DEFAULT_POLICIES,
    Aggregates,
    CostPolicy,
    best_ttl,
    compare_arms,
    delivery_latency,
    expected_cost,
    kaplan_meier,
    load,
    load_policies,
    revoke_success,
    wilson,
)
from rbmtools.analysis.policy import resolve_policies
from rbmtools.analysis.schema import bin_index
from rbmtools.analysis.ttl import MAX_TTL_SECONDS, candidate_ttls, coverage_ttl
from rbmtools.errors import ValidationError


def _wilson_by_hand(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 10), (95, 100), (1, 1)])
def test_wilson_interval_matches_the_formula(k, n):
    rate, lo, hi = wilson(k, n)
    assert rate == k / n
    assert (lo, hi) == pytest.approx(_wilson_by_hand(k, n))
    assert wilson(0, 0) == (None, None, None)


def test_revoke_success_and_arm_comparison_from_a_dataset(logs):
    # arm A: 8 API revokes, 6 succeed; arm B: 10 TTL revokes, 9 succeed, 1 races with delivery.
    for i in range(8):
        logs.send(f"a{i}", arm="A", experiment="x")
        logs.revoke(f"a{i}", 30.0, 200 if i < 6 else 404)
        if i >= 6:
            logs.event(f"a{i}", "DELIVERED", 20.0)
    for i in range(10):
        logs.send(f"b{i}", ttl=60, arm="B", experiment="x")
        logs.event(f"b{i}", "TTL_EXPIRATION_REVOKED", 60.0)
        if i == 0:
            logs.event(f"b{i}", "DELIVERED", 61.0)
    with load(*logs.write()) as data:
        rates = revoke_success(data, by="arm").set_index(["arm", "method"])
        diff = compare_arms(data, by=["experiment", "arm"])
    assert rates.loc[("A", "api"), ["n", "revoked"]].tolist() == [8, 6]
    assert rates.loc[("A", "ttl"), "n"] == 0 and pd.isna(rates.loc[("A", "ttl"), "rate"])
    assert rates.loc[("B", "all"), ["n", "revoked", "outcome_delivered_after_revoke"]].tolist() == [
        10,
        9,
        1,
    ]
    lo, hi = proportion_confint(9, 10, method="wilson")
    assert rates.loc[("B", "all"), ["lo", "hi"]].tolist() == pytest.approx([lo, hi])
    row = diff[diff.rate == "revoke_success"].iloc[0]
    assert (row["arm"], row["reference"]) == ("B", "A")
    assert row["difference"] == pytest.approx(0.9 - 0.75)
    # Newcombe's hybrid score interval, by hand from the two Wilson intervals
    l1, u1 = _wilson_by_hand(9, 10)
    l0, u0 = _wilson_by_hand(6, 8)
    d = 0.9 - 0.75
    expected_lo = d - math.sqrt((0.9 - l1) ** 2 + (u0 - 0.75) ** 2)
    expected_hi = d + math.sqrt((u1 - 0.9) ** 2 + (0.75 - l0) ** 2)
    assert (row["lo"], row["hi"]) == pytest.approx((expected_lo, expected_hi), abs=1e-9)
    with pytest.raises(ValidationError, match="arm"):
        compare_arms(_aggregates_without_arm())


def _aggregates_without_arm():
    from rbmtools.analysis.aggregates import Aggregates

    empty = pd.DataFrame({"useCase": []})
    return Aggregates(("useCase",), empty, empty, empty)


POLICY = CostPolicy(
    rcs_cost=1.0,
    sms_cost=5.0,
    sms_latency="10s",
    wait_cost_per_hour=36.0,  # 0.01 per second
    deadline="20s",
    stale_cost=2.0,
    duplicate_cost=3.0,
    fallback=True,
    lost_cost=100.0,
)


def test_expected_cost_by_hand():
    # half delivered at 5 s, a quarter at 30 s, a quarter never
    times = np.array([5.0, 30.0])
    survival = np.array([0.5, 0.25])
    ttls = np.array([1.0, 10.0, 40.0])
    cost = expected_cost(times, survival, ttls, POLICY, p_race=0.2)
    late = lambda t: 5.0 + 0.01 * (t + 10.0) + 0.2 * (1.0 + 3.0)  # noqa: E731
    at_1 = late(1.0)
    at_10 = 0.5 * (1.0 + 0.05) + 0.5 * late(10.0)
    at_40 = 0.5 * (1.0 + 0.05) + 0.25 * (1.0 + 0.30 + 2.0) + 0.25 * late(40.0)
    assert cost == pytest.approx([at_1, at_10, at_40])
    no_fallback = CostPolicy(**{**POLICY.__dict__, "fallback": False})
    assert expected_cost(times, survival, ttls, no_fallback, 0.2)[0] == pytest.approx(100.0)


def _bins(durations, delivered):
    frame = pd.DataFrame({"bin": bin_index(durations), "d": delivered.astype(int)})
    grouped = frame.groupby("bin").d.agg(delivered="sum", total="count").reset_index()
    grouped["censored"] = grouped.total - grouped.delivered
    return grouped[["bin", "delivered", "censored"]]


def test_best_ttl_minimises_the_curve_never_beyond_the_data_and_has_an_interval():
    rng = np.random.default_rng(3)
    latency = np.where(rng.random(5_000) < 0.1, np.inf, rng.lognormal(np.log(5.0), 1.0, 5_000))
    observed = np.minimum(latency, 600.0)  # every message revoked at 10 minutes
    bins = _bins(observed, latency <= 600.0)
    curve = kaplan_meier(bins)
    choice = best_ttl(
        curve,
        bins,
        DEFAULT_POLICIES["otp"],
        policy_name="otp",
        race_delivered=5,
        race_revokes=100,
        bootstrap=100,
        seed=1,
    )
    assert choice.stops_at <= curve.supported_until <= 600.0 * 1.005
    assert choice.curve["ttl_seconds"].max() == choice.stops_at
    best_row = choice.curve.loc[choice.curve.expected_cost.idxmin()]
    assert (
        choice.seconds == best_row["ttl_seconds"]
        and choice.expected_cost == best_row["expected_cost"]
    )
    assert choice.lo <= choice.seconds <= choice.hi
    assert choice.p_race == 0.05
    # coverage: smallest T delivering 95 % of what is delivered by the end of the curve
    delivered = latency[np.isfinite(latency)]
    assert choice.coverage_seconds == pytest.approx(np.quantile(delivered, 0.95), rel=0.05)
    assert coverage_ttl(curve, 0.95) == choice.coverage_seconds
    doc = choice.to_dict()
    assert set(doc) >= {"seconds", "lo", "hi", "expected_cost", "coverage_95_seconds"}


def test_no_support_means_no_ttl():
    bins = _bins(np.full(100, 3.0), np.ones(100))
    curve = kaplan_meier(bins)
    choice = best_ttl(curve, bins, DEFAULT_POLICIES["otp"])
    assert choice.seconds is None and choice.lo is None and len(choice.curve) == 0
    assert len(candidate_ttls(None)) == 0 and candidate_ttls(1e9).max() == pytest.approx(
        MAX_TTL_SECONDS
    )


def test_policies_parse_durations_files_and_refuse_nonsense(tmp_path):
    assert set(DEFAULT_POLICIES) == {"otp", "transaction", "promo", "alert"}
    assert POLICY.sms_latency == 10.0 and POLICY.deadline == 20.0
    yaml_file = tmp_path / "policy.yaml"
    yaml_file.write_text(
        "otp:\n  deadline: 2m\n  sms_cost: 0.08\n"
        "banking:\n  rcs_cost: 0.01\n  sms_cost: 0.04\n  sms_latency: 3s\n"
        "  wait_cost_per_hour: 1\n  deadline: 10m\n  stale_cost: 0.1\n"
        "  duplicate_cost: 0.02\n  fallback: true\n"
    )
    policies = load_policies(yaml_file)
    assert (
        policies["otp"].deadline == 120.0
        and policies["otp"].rcs_cost == DEFAULT_POLICIES["otp"].rcs_cost
    )
    assert policies["banking"].sms_latency == 3.0 and policies["banking"].lost_cost == 0.0
    json_file = tmp_path / "policy.json"
    json_file.write_text(json.dumps({"promo": {"fallback": True}}))
    assert load_policies(json_file)["promo"].fallback is True
    with pytest.raises(ValidationError, match="is required"):
        resolve_policies({"new": {"rcs_cost": 1}})
    with pytest.raises(ValidationError, match="not a policy field"):
        resolve_policies({"otp": {"sms_price": 1}})
    with pytest.raises(ValidationError, match="zero or more"):
        resolve_policies({"otp": {"sms_cost": -1}})
    with pytest.raises(ValidationError, match="deadline"):
        resolve_policies({"otp": {"deadline": "soon"}})
    (tmp_path / "bad.yaml").write_text("otp: [unclosed")
    with pytest.raises(ValidationError, match="YAML or JSON"):
        load_policies(tmp_path / "bad.yaml")
    assert DEFAULT_POLICIES["otp"].to_dict()["deadline"] == "300s"


def test_aggregates_from_frames_round_trip_and_refuse_a_wrong_grouping(synthetic_dataset):
    """Frames as an engine elsewhere hands them back (counts as floats, NULL for none) give
    the same statistics; frames that lack a group column are refused by name."""
    native = synthetic_dataset.aggregates(["useCase"])
    as_floats = native.groups.copy()
    counts = [c for c in as_floats.columns if c != "useCase"]
    as_floats[counts] = as_floats[counts].astype("float64").replace(0.0, np.nan)
    rebuilt = Aggregates.from_frames("useCase", as_floats, native.latency_bins, native.read_bins)
    assert len(rebuilt) == len(native) > 1
    pd.testing.assert_frame_equal(revoke_success(rebuilt), revoke_success(native))
    pd.testing.assert_frame_equal(delivery_latency(rebuilt), delivery_latency(native))
    with pytest.raises(ValidationError, match="lacks the columns \\['arm'\\]"):
        Aggregates.from_frames("useCase,arm", native.groups, native.latency_bins, native.read_bins)


def test_wilson_and_newcombe_are_statsmodels_intervals():
    """The intervals are computed by formula (statsmodels is not imported at run time); they
    must be statsmodels' own."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    from rbmtools.analysis.metrics import newcombe

    rng = np.random.default_rng(5)
    for _ in range(300):
        n1, n0 = (int(x) for x in rng.integers(1, 500, 2))
        k1, k0 = int(rng.integers(0, n1 + 1)), int(rng.integers(0, n0 + 1))
        alpha = float(rng.choice([0.05, 0.1, 0.01]))
        _, lo, hi = wilson(k1, n1, alpha)
        assert (lo, hi) == pytest.approx(
            proportion_confint(k1, n1, alpha=alpha, method="wilson"), abs=1e-12
        )
        expected = confint_proportions_2indep(
            k1, n1, k0, n0, method="newcomb", compare="diff", alpha=alpha
        )
        assert newcombe(k1, n1, k0, n0, alpha) == pytest.approx(tuple(expected), abs=1e-12)
