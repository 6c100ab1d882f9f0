"""Stopping experiments simulated on the emulator's model: outcomes, tallies, error rates."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from rbmtools.analysis import DEFAULT_POLICIES
from rbmtools.analysis.stopping import StoppingRule, tally_arms
from rbmtools.emulator import DEFAULT_AGENT_ID, PlatformModel, load_profile
from rbmtools.errors import ValidationError
from rbmtools.experiment.allocation import batch_arms
from rbmtools.experiment.simulate import (
    SimulatedArm,
    SimulationSettings,
    potential_outcomes,
    simulate_fixed,
    simulate_stopping,
)

OTP = DEFAULT_POLICIES["otp"]
CLOSE = [
    SimulatedArm("ttl 20s", "ttl", 20),
    SimulatedArm("api 1m", "api_after", 60),
    SimulatedArm("ttl 2m", "ttl", 120),
]
SAME = [SimulatedArm("ttl 1m", "ttl", 60), SimulatedArm("expire 1m", "expire_time", 60)]


@pytest.fixture(scope="module")
def close():
    return potential_outcomes(CLOSE, units=3000, seed=5)


@pytest.fixture(scope="module")
def same():
    return potential_outcomes(SAME, units=3000, seed=5)


def test_potential_outcomes_are_what_the_model_does_with_one_message(close):
    # recipient u alone on a fresh model, TTL 20 s: the same fate as in the population run
    model = PlatformModel(load_profile("commuters"), seed=5, epoch=datetime(2026, 1, 1, tzinfo=UTC))
    index, checked = 0, 0
    for u in range(40):
        body = {"contentMessage": {"text": "simulated"}, "ttl": "20s"}
        answer = model.send(DEFAULT_AGENT_ID, f"+1555{u:07d}", f"unit-{u}", body, float(u))
        if answer.status != 200:
            continue
        model.advance(u + 20 + 31.0)
        message = model.message(DEFAULT_AGENT_ID, f"unit-{u}")
        latency = None if message.delivered_at is None else message.delivered_at - message.send_at
        expected = np.nan if latency is None else latency
        assert close.latency[0, index] == pytest.approx(expected, nan_ok=True)
        assert close.fallback[0, index] == (latency is None or latency > 50)
        index += 1
        checked += 1
    assert checked > 25


def test_the_model_keeps_the_nesting_assumption(close):
    assert close.nesting_agreement() == 1.0
    assert not close.raced[0].any() and not close.raced[2].any()  # TTL arms never race
    costs = close.true_costs(OTP)
    assert close.best(OTP) == int(np.argmin(costs))


def _settings(**changes) -> SimulationSettings:
    values = {
        "rule": StoppingRule(alpha=0.05, min_per_arm=50, max_messages=6000),
        "policy": OTP, "send_rate": 0.5, "batch": 150, "runs": 100, "seed": 3,
    }  # fmt: skip
    return SimulationSettings(**{**values, **changes})


def test_incremental_tallies_are_what_tally_arms_counts(close):
    settings = _settings(runs=12, rule=StoppingRule(min_per_arm=50, max_messages=1500))
    simulation = simulate_stopping(close, settings)
    durations = {arm.name: arm.seconds for arm in CLOSE}
    for run in range(settings.runs):
        messages = close.messages(simulation.units[run], simulation.arms[run], settings.send_rate)
        now = simulation.runs["stopped_at_seconds"][run]
        expected = tally_arms(messages, durations, OTP, now=now, settle_after=30.0)
        got = simulation.tallies[run]
        for mine, theirs in zip(got, expected, strict=True):
            assert mine.arm == theirs.arm
            assert mine.to_dict() == pytest.approx(theirs.to_dict())


def test_batches_are_balanced_among_running_arms_and_seeded():
    arms = batch_arms(7, 3, 100, ["a", "b", "c"])
    assert sorted(pd.Series(arms).value_counts()) == [33, 33, 34]
    assert arms == batch_arms(7, 3, 100, ["a", "b", "c"])
    assert arms != batch_arms(7, 4, 100, ["a", "b", "c"])
    assert batch_arms(7, 3, 5, ["b"]) == ["b"] * 5
    with pytest.raises(ValidationError, match="running"):
        batch_arms(7, 3, 5, [])


def test_simulations_are_deterministic_for_a_seed(close):
    settings = _settings(runs=20, rule=StoppingRule(min_per_arm=50, max_messages=1500))
    one = simulate_stopping(close, settings).runs
    two = simulate_stopping(close, settings).runs
    pd.testing.assert_frame_equal(one, two)


def test_elimination_rarely_drops_the_truly_best_arm(close):
    # costs 0.0290, 0.0316 and 0.0358 per message: at most 2,000 per arm mostly decide
    runs = simulate_stopping(close, _settings()).runs
    assert runs["best_dropped"].mean() <= 0.05
    assert runs["wrong"].mean() <= 0.05
    assert (runs["decision"] == "ready").mean() > 0.5
    assert runs["messages"].max() <= 6000


def test_no_arm_is_declared_best_when_none_is(same):
    assert same.best(OTP) is None
    runs = simulate_stopping(same, _settings(rule=StoppingRule(min_per_arm=50, max_messages=1200)))
    assert runs.runs["wrong"].mean() <= 0.05
    assert set(runs.runs["decision"]) <= {"inconclusive", "ready"}


def test_the_fixed_design_declares_the_best_more_often_when_larger(close):
    fixed = simulate_fixed(close, OTP, [50, 3000], runs=100, seed=2)
    assert fixed["correct"].iloc[1] >= fixed["correct"].iloc[0]
    assert (fixed["wrong"] <= 0.05).all()
    assert fixed["sms"].iloc[1] > fixed["sms"].iloc[0] > 0
    nested = simulate_fixed(close, OTP, [3000], runs=100, seed=2, nesting=True)
    assert nested["correct"].iloc[0] >= fixed["correct"].iloc[1]
