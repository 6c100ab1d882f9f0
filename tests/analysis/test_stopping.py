"""The stopping rule: tallies with the nesting of TTL arms, intervals, elimination, decisions."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from rbmtools.analysis import DEFAULT_POLICIES, CostPolicy
from rbmtools.analysis.confseq import always_valid_mean, always_valid_rate
from rbmtools.analysis.stopping import (
    ArmTally,
    Decision,
    Look,
    StoppingRule,
    cost_bounds,
    decide,
    eliminated_arms,
    floor_bounds,
    floor_cost,
    floor_seconds,
    tally_arms,
)
from rbmtools.errors import ValidationError

OTP = DEFAULT_POLICIES["otp"]


def _otp_cost(latency: float | None, ttl: float) -> float:
    """One message's cost under the otp policy, written out from the README's table."""
    if latency is not None and latency <= ttl:
        return 0.02 + 3.0 * latency / 3600 + (0.10 if latency > 300 else 0.0)
    return 0.05 + 3.0 * (ttl + 5) / 3600


def test_policy_prices_single_messages():
    assert OTP.delivery_cost(60.0) == pytest.approx(_otp_cost(60.0, 120))
    assert OTP.delivery_cost(400.0) == pytest.approx(_otp_cost(400.0, 600))
    assert OTP.undelivered_cost(120.0) == pytest.approx(_otp_cost(None, 120))
    assert OTP.undelivered_cost(120.0, 0.5) == pytest.approx(_otp_cost(None, 120) + 0.5 * 0.03)
    promo = DEFAULT_POLICIES["promo"]
    assert promo.undelivered_cost(120.0) == promo.lost_cost
    assert list(promo.undelivered_cost(np.array([1.0, 2.0]))) == [0.10, 0.10]
    assert cost_bounds(OTP, 120.0) == pytest.approx((0.02, _otp_cost(None, 120)))


def _messages() -> pd.DataFrame:
    rows = [
        # arm, sent, latency, raced, fallback, reachable
        ("short", 0.0, 5.0, False, False, True),
        ("short", 10.0, None, True, True, True),  # revoked, then delivered all the same
        ("short", 20.0, None, False, True, True),
        ("short", 15.0, None, False, False, False),  # not RCS: assigned only
        ("short", 205.0, 2.0, False, False, True),  # too recent for 30 s + grace at 240 s
        ("long", 0.0, 45.0, False, False, True),  # delivered after 30 s: late for "short"
        ("long", 5.0, 3.0, False, False, True),
        ("long", 115.0, None, False, True, True),  # 125 s old at 240 s: settled for short only
        ("other", 0.0, 1.0, False, False, True),  # not an arm here
    ]
    return pd.DataFrame(rows, columns=["arm", "sent", "latency", "raced", "fallback", "reachable"])


def test_tallies_count_settled_messages_and_nest_longer_arms():
    short, long = tally_arms(
        _messages(), {"short": 30.0, "long": 120.0}, OTP, now=240.0, settle_after=10.0
    )
    assert (short.assigned, short.settled, short.delivered, short.raced, short.fallbacks) == (
        5, 3, 1, 1, 2,
    )  # fmt: skip
    # short's cost sample: its 3 settled messages and long's 3 (all sent by 200 s)
    costs = [_otp_cost(5, 30), _otp_cost(None, 30), _otp_cost(None, 30)]
    costs += [_otp_cost(45, 30), _otp_cost(3, 30), _otp_cost(None, 30)]
    assert short.cost_count == 6
    assert short.cost_sum == pytest.approx(sum(costs))
    assert short.cost_squares == pytest.approx(sum(c * c for c in costs))
    # long's: only its own, and only those sent by 110 s
    assert (long.assigned, long.settled, long.delivered, long.cost_count) == (3, 2, 2, 2)
    long_costs = [_otp_cost(45, 120), _otp_cost(3, 120)]
    assert long.cost_sum == pytest.approx(sum(long_costs))
    # the floors, read at a quarter of each duration (7.5 s and 30 s): short's from every
    # message sent by 222.5 s, long's from those sent by 200 s; a message not delivered by
    # then counts the least it can still cost
    least = _otp_cost(7.5, 30)  # a delivery at 7.5 s: cheaper than the SMS at 30 s
    short_floor = [_otp_cost(5, 30), least, least, _otp_cost(2, 30)]  # short's four
    short_floor += [least, _otp_cost(3, 30), least]  # and long's three
    assert short.floor_count == 7 and short.floor_sum == pytest.approx(sum(short_floor))
    least = _otp_cost(30, 120)
    long_floor = [_otp_cost(5, 30), least, least]  # short's sent by 200 s
    long_floor += [least, _otp_cost(3, 30), least]  # long's (delivered at 45 s: not by 30 s)
    assert long.floor_count == 6 and long.floor_sum == pytest.approx(sum(long_floor))
    assert long.floor_squares == pytest.approx(sum(c * c for c in long_floor))
    early = tally_arms(
        _messages(), {"short": 30.0, "long": 120.0}, OTP, now=100.0, settle_after=10.0
    )
    assert early[1].settled == 0 and early[1].cost_count == 0 and early[1].floor_count == 5


def test_tallies_need_the_message_columns():
    with pytest.raises(ValidationError, match="latency"):
        tally_arms(
            pd.DataFrame({"arm": ["a"], "sent": [0.0]}), {"a": 10.0}, OTP, now=1, settle_after=0
        )


def _tally(arm: str, seconds: float, costs: list[float], settled: int, raced: int = 0) -> ArmTally:
    values = np.array(costs)
    return ArmTally(
        arm=arm, seconds=seconds, assigned=settled + 10, settled=settled,
        delivered=settled - 5, raced=raced, fallbacks=7, cost_count=len(values),
        cost_sum=float(values.sum()), cost_squares=float((values**2).sum()),
    )  # fmt: skip


def _costs(mean_delivered: float, share_late: float, ttl: float, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    late = rng.random(n) < share_late
    delivered = OTP.delivery_cost(rng.exponential(mean_delivered, n).clip(max=ttl))
    return list(np.where(late, OTP.undelivered_cost(ttl), delivered))


def test_the_cost_interval_is_the_nested_mean_plus_the_race():
    rule = StoppingRule(alpha=0.05, min_per_arm=50, max_messages=2000)
    a = _tally("a", 20.0, _costs(3, 0.15, 20, 900, 1), settled=400, raced=2)
    b = _tally("b", 600.0, _costs(30, 0.06, 600, 400, 2), settled=400)
    look = decide([a, b], OTP, rule)
    # each of the two arms gets 0.025: a tenth for the race, a tenth for the floor (empty
    # here), the rest for the cost
    cost_alpha, race_alpha = 0.025 * 0.8, 0.025 * 0.1
    low, high = cost_bounds(OTP, 20.0)
    # a's cost sample is planned for both arms' messages (1000 each), its race for its own
    mean, lo, hi = always_valid_mean(
        a.cost_count, a.cost_sum, a.cost_squares, 2000, low=low, high=high, alpha=cost_alpha
    )
    race, race_lo, race_hi = always_valid_rate(2, 400, 1000, race_alpha)
    arm = look.arm("a")
    assert (look.cost_alpha, look.race_alpha, look.floor_alpha) == pytest.approx(
        (cost_alpha, race_alpha, 0.025 * 0.1)
    )
    assert arm.cost == pytest.approx(mean + 0.03 * race)
    assert (arm.cost_lo, arm.cost_hi) == pytest.approx((lo + 0.03 * race_lo, hi + 0.03 * race_hi))
    share = always_valid_rate(395, 400, 1000, 0.05)
    assert (arm.delivered_share, arm.delivered_lo, arm.delivered_hi) == pytest.approx(share)


def test_a_clearly_dearer_arm_is_dropped_and_the_last_one_is_ready():
    rule = StoppingRule(min_per_arm=100, max_messages=3000)
    cheap = _tally("20s", 20.0, _costs(3, 0.15, 20, 1500, 1), settled=500)
    dear = _tally("10m", 600.0, _costs(60, 0.06, 600, 500, 2), settled=500)
    look = decide([cheap, dear], OTP, rule, index=4)
    assert look.decision is Decision.READY and look.best == "20s"
    assert look.eliminated == ("10m",) and look.arm("10m").eliminated_at == 4
    runner_up = look.arm("10m")
    assert look.saving_per_1000 == pytest.approx(1000 * (runner_up.cost - look.arm("20s").cost))
    assert look.saving_per_1000_lo == pytest.approx(
        1000 * (runner_up.cost_lo - look.arm("20s").cost_hi)
    )
    assert 0 < look.saving_per_1000_lo < look.saving_per_1000
    assert look.messages_left == 0
    document = look.to_dict()
    assert document["decision"] == "ready" and document["arms"][1]["eliminated_at"] == 4
    assert document["arms"][0]["cost_count"] == 1500
    assert Look.from_dict(json.loads(json.dumps(document))) == look


def test_a_dear_long_arm_is_dropped_by_its_floor_before_its_messages_settle():
    rule = StoppingRule(min_per_arm=100, max_messages=4000)
    cheap = _tally("20s", 20.0, _costs(3, 0.15, 20, 1500, 1), settled=500)
    at = floor_seconds(1800.0)  # 450 s: a message not delivered by then costs at least this
    least = min(OTP.delivery_cost(at), OTP.undelivered_cost(1800.0))
    floor = np.where(np.arange(600) % 10 == 0, least, 0.021)  # one in ten still waiting
    young = ArmTally(
        arm="30m", seconds=1800.0, assigned=300, settled=20, delivered=15,
        floor_count=600, floor_sum=float(floor.sum()), floor_squares=float((floor**2).sum()),
    )  # fmt: skip
    look = decide([cheap, young], OTP, rule)
    low, high = floor_bounds(OTP, 1800.0)
    _, expected, _ = always_valid_mean(
        600, floor.sum(), (floor**2).sum(), 2000, low=low, high=high, alpha=0.025 * 0.1
    )
    assert look.arm("30m").cost is None and look.arm("30m").cost_lo == pytest.approx(expected)
    assert look.decision is Decision.READY and look.best == "20s"
    assert look.saving_per_1000 is None  # the dropped arm has no cost estimate yet
    assert floor_cost(OTP, 1800.0, [100.0, 500.0, np.nan]) == pytest.approx(
        [OTP.delivery_cost(100.0), least, least]
    )


def test_equal_arms_keep_running_then_end_inconclusive():
    rule = StoppingRule(min_per_arm=100, max_messages=4000)
    one = _tally("ttl", 60.0, _costs(5, 0.1, 60, 800, 1), settled=800)
    two = _tally("expire", 60.0, _costs(5, 0.1, 60, 800, 2), settled=800)
    look = decide([one, two], OTP, rule)
    assert look.decision is Decision.KEEP_RUNNING and look.eliminated == ()
    assert 0 < look.messages_left <= 4000 - look.assigned
    final = decide([one, two], OTP, rule, final=True)
    assert final.decision is Decision.INCONCLUSIVE and final.messages_left == 0


def test_an_arm_without_the_minimum_has_the_whole_range_and_blocks_a_decision():
    rule = StoppingRule(min_per_arm=100, max_messages=3000)
    cheap = _tally("20s", 20.0, _costs(3, 0.15, 20, 1500, 1), settled=500)
    young = _tally("30m", 1800.0, _costs(60, 0.03, 1800, 40, 2), settled=40)
    look = decide([cheap, young], OTP, rule)
    low, high = cost_bounds(OTP, 1800.0)
    assert look.decision is Decision.NOT_ENOUGH_DATA
    assert (look.arm("30m").cost_lo, look.arm("30m").cost_hi) == (low, high + 0.03)
    assert look.arm("30m").cost is not None and look.eliminated == ()
    assert look.messages_left == (100 - young.assigned) * 2


def test_dropped_arms_stay_dropped_and_resume_from_the_looks():
    rule = StoppingRule(min_per_arm=10, max_messages=3000)
    arms = [
        _tally("a", 20.0, _costs(3, 0.15, 20, 300, 1), settled=300),
        _tally("b", 20.0, _costs(3, 0.15, 20, 300, 2), settled=300),
        _tally("c", 600.0, _costs(60, 0.06, 600, 300, 3), settled=300),
    ]
    first = decide(arms, OTP, rule, index=1)
    assert first.eliminated == ("c",)
    # even with data that would keep it, an eliminated arm stays out
    arms[2] = _tally("c", 600.0, _costs(3, 0.15, 20, 300, 4), settled=300)
    second = decide(arms, OTP, rule, index=2, eliminated=eliminated_arms([first]))
    assert second.eliminated == ("c",) and second.arm("c").eliminated_at == 1


def test_without_fallback_there_is_no_race_term():
    promo = DEFAULT_POLICIES["promo"]
    rule = StoppingRule(min_per_arm=10, max_messages=1000)
    values = [0.03] * 95 + [0.10] * 5
    arms = [_tally("a", 60.0, values, 100, raced=50), _tally("b", 3600.0, values, 100)]
    look = decide(arms, promo, rule)
    assert (look.cost_alpha, look.race_alpha) == pytest.approx((0.05 / 2 * 0.9, 0.0))
    assert look.arm("a").cost == pytest.approx(np.mean(values))


def test_looking_after_every_batch_declares_a_best_arm_rarely_when_none_is():
    # A/A: two arms with the same cost distribution, 200 experiments, a look every 100
    # messages per arm up to 3,000. A fixed 95 % interval of their difference read at every
    # look would call one of them cheaper in many runs; the stopping rule declares one best in
    # at most alpha of them.
    rng = np.random.default_rng(31)
    rule = StoppingRule(alpha=0.05, min_per_arm=100, max_messages=6000)
    runs, looks, per_look = 200, 30, 100
    values = np.where(rng.random((runs, 2, looks * per_look)) < 0.12, 0.054, 0.021)
    values += rng.exponential(0.004, values.shape)
    total, squares = np.cumsum(values, axis=2), np.cumsum(values**2, axis=2)
    declared = naive = 0
    for run in range(runs):
        dropped: dict[str, int] = {}
        fixed_hit = False
        for look in range(1, looks + 1):
            n = look * per_look
            tallies = [
                ArmTally(arm=name, seconds=60.0, assigned=n, settled=n, delivered=n,
                         cost_count=n, cost_sum=float(total[run, k, n - 1]),
                         cost_squares=float(squares[run, k, n - 1]))
                for k, name in enumerate(("a", "b"))
            ]  # fmt: skip
            result = decide(tallies, OTP, rule, index=look, eliminated=dropped)
            dropped = eliminated_arms([result])
            mean = total[run, :, n - 1] / n
            se = np.sqrt((squares[run, :, n - 1] / n - mean**2) / n)
            fixed_hit |= bool(abs(mean[0] - mean[1]) > 1.96 * math.hypot(*se))
            if result.decision is Decision.READY:
                declared += 1
                break
        naive += fixed_hit
    assert declared / runs <= 0.05
    assert naive / runs > 0.15


@pytest.mark.parametrize(
    ("settings", "field"),
    [({"alpha": 0.7}, "alpha"), ({"min_per_arm": 0}, "min_per_arm"),
     ({"max_messages": 2.5}, "max_messages")],
)  # fmt: skip
def test_rules_are_checked(settings, field):
    with pytest.raises(ValidationError, match=field):
        StoppingRule(**settings)


def test_decide_needs_two_distinct_arms():
    one = _tally("a", 20.0, [0.02] * 10, 10)
    with pytest.raises(ValidationError, match="two or more"):
        decide([one], OTP, StoppingRule())
    with pytest.raises(ValidationError, match="two or more"):
        decide([one, one], OTP, StoppingRule())
    with pytest.raises(ValidationError, match="is not an arm"):
        decide([one, _tally("b", 30.0, [0.02] * 10, 10)], OTP, StoppingRule()).arm("z")


def test_cost_bounds_cover_a_policy_without_fallback_and_a_long_wait():
    policy = CostPolicy(0.02, 0.05, 5, 3.0, 300, 0.1, 0.0, False, 1.0)
    assert cost_bounds(policy, 600.0) == pytest.approx((0.02, 1.0))
    assert cost_bounds(OTP, 3600.0)[1] == pytest.approx(0.02 + 3.0 + 0.1)
    assert math.isfinite(cost_bounds(OTP, 10.0)[1])
