"""Stopping experiments against the fixed design, simulated on the emulator's pure model.

Three scenarios on the ``commuters`` profile under the default ``otp`` cost policy: a clear best
arm (TTL 20 s, API revoke at 2 min, TTL 10 min, TTL 30 min), close arms (TTL 20 s, 1 min,
2 min: the best is 12 % cheaper than the next) and no difference (three arms that revoke
identically). The population's outcomes under every arm come from ``PlatformModel`` (no HTTP);
each scenario then runs ``--runs`` experiments of at most ``--per-arm`` messages per arm, sent
at ``--rate`` per platform second, with a look after every ``--batch`` messages
(``analysis.stopping.decide``: arms dropped when their always-valid cost interval lies above
the best one's, a stop on Ready) at a stated error rate of 5 %.

Printed per scenario: the decisions, the wrong arm declared best and the truly best arm dropped
(targets: at most 5 % of runs), the median messages and SMS to the end, and the same for
fixed-size equal-split designs: of the planned size (what the stopping design sends at most),
and with the same guarantee — the smallest per-arm size whose one analysis at the end (fixed
intervals of each arm's cost from its own messages, the same Bonferroni error rate) declares
the truly best arm in at least as many runs (target: the stopping design's median SMS at least
30 % below). As context, the same oracle-sized fixed design whose analysis also uses the
nesting of TTL arms (it is sized knowing the true costs, which no plan does). Then the width
of the always-valid intervals at the planned size against Wilson's (target: at most 1.6x) and
against the fixed interval of a mean. ``--no-nesting`` also runs each scenario with every
arm's cost read from its own messages only, to show what the nesting of TTL arms adds.
``--quick``: 100 runs per scenario.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from rbmtools.analysis.confseq import always_valid_mean, always_valid_rate
from rbmtools.analysis.metrics import wilson
from rbmtools.analysis.policy import DEFAULT_POLICIES
from rbmtools.analysis.stopping import StoppingRule
from rbmtools.experiment.simulate import (
    Population,
    SimulatedArm,
    SimulationSettings,
    potential_outcomes,
    simulate_fixed,
    simulate_stopping,
)

ALPHA = 0.05
WIDTH_TARGET = 1.6
SAVING_TARGET = 0.30
OUT = Path(__file__).parent / "out"

SCENARIOS = {
    "clear best arm": [
        SimulatedArm("ttl 20s", "ttl", 20),
        SimulatedArm("api 2m", "api_after", 120),
        SimulatedArm("ttl 10m", "ttl", 600),
        SimulatedArm("ttl 30m", "ttl", 1800),
    ],
    "close arms": [
        SimulatedArm("ttl 20s", "ttl", 20),
        SimulatedArm("ttl 1m", "ttl", 60),
        SimulatedArm("ttl 2m", "ttl", 120),
    ],
    "no difference": [
        SimulatedArm("ttl 1m", "ttl", 60),
        SimulatedArm("expire 1m", "expire_time", 60),
        SimulatedArm("ttl 1m again", "ttl", 60),
    ],
}


def fixed_sizes(largest: int) -> list[int]:
    """Per-arm sizes of the fixed design: about 8 % apart, from 20 to ``largest``."""
    return sorted({round(v) for v in np.geomspace(20, largest, 90)})


def fixed_at(fixed, power: float) -> dict | None:
    """The smallest fixed design that declares the truly best arm in at least ``power`` of
    runs (None when even the largest does not)."""
    enough = fixed[fixed["correct"] >= power - 1e-12]
    if enough.empty:
        return None
    row = enough.iloc[0]
    return {"per_arm": int(row["per_arm"]), "correct": float(row["correct"]),
            "wrong": float(row["wrong"]), "median_sms": float(row["sms"])}  # fmt: skip


def widths(population: Population, per_arm: int) -> dict[str, float]:
    """Width of the always-valid intervals at the planned size over the fixed ones: the
    delivery share of each arm against Wilson, the cost of each arm against the CLT interval."""
    policy = DEFAULT_POLICIES["otp"]
    rates, means = [], []
    for k, arm in enumerate(population.arms):
        share = float(np.mean(population.latency[k] <= arm.seconds))
        delivered = round(share * per_arm)
        _, lo, hi = always_valid_rate(delivered, per_arm, per_arm, ALPHA)
        _, wlo, whi = wilson(delivered, per_arm, ALPHA)
        rates.append((hi - lo) / (whi - wlo))
        cost = population.cost_at(policy, arm.seconds, k)
        low, high = float(cost.min()), float(cost.max())
        total, squares = cost.mean() * per_arm, (cost**2).mean() * per_arm
        _, clo, chi = always_valid_mean(
            per_arm, total, squares, per_arm, low=low, high=high, alpha=ALPHA
        )
        fixed = 2 * 1.959963984540054 * cost.std(ddof=1) / np.sqrt(per_arm)
        means.append((chi - clo) / fixed)
    return {"rate_vs_wilson": max(rates), "cost_vs_fixed": max(means)}


def run_scenario(name: str, population: Population, args, nesting: bool) -> dict:
    policy = DEFAULT_POLICIES["otp"]
    arms = len(population.arms)
    rule = StoppingRule(alpha=ALPHA, min_per_arm=args.min_per_arm, max_messages=args.per_arm * arms)
    settings = SimulationSettings(
        rule=rule, policy=policy, send_rate=args.rate, batch=args.batch,
        settle_after=30.0, runs=args.runs, seed=args.seed, nesting=nesting,
    )  # fmt: skip
    started = time.perf_counter()
    runs = simulate_stopping(population, settings, progress=True).runs
    seconds = time.perf_counter() - started
    correct = float(runs["correct"].mean())
    result = {
        "scenario": name, "nesting": nesting, "runs": len(runs),
        "true_costs": [round(float(c), 5) for c in population.true_costs(policy)],
        "decisions": runs["decision"].value_counts().to_dict(),
        "correct": correct, "wrong": float(runs["wrong"].mean()),
        "best_dropped": float(runs["best_dropped"].mean()),
        "median_messages": float(runs["messages"].median()),
        "median_sms": float(runs["sms"].median()),
        "median_hours": float(runs["stopped_at_seconds"].median() / 3600),
        "simulation_seconds": seconds,
    }  # fmt: skip
    sizes = fixed_sizes(4 * args.per_arm)
    for label, nested in (("fixed", False), ("fixed_nested", True)):
        fixed = simulate_fixed(
            population, policy, sizes, runs=args.runs, alpha=ALPHA, seed=args.seed + 1,
            nesting=nested,
        )  # fmt: skip
        planned = fixed[fixed["per_arm"] >= args.per_arm].iloc[0]
        result[label] = {
            "matched": fixed_at(fixed, correct) if population.best(policy) is not None else None,
            "planned": {"per_arm": int(planned["per_arm"]), "correct": float(planned["correct"]),
                        "wrong": float(planned["wrong"]), "median_sms": float(planned["sms"])},
        }  # fmt: skip
    return result


def _design(text: str, design: dict | None, sms: float) -> str:
    if design is None:
        return f"  {text}: none (no fixed design declares a best arm rightly)"
    saving = 1 - sms / design["median_sms"]
    return (
        f"  {text}: {design['per_arm']:,} per arm, declares the best in {design['correct']:.1%}"
        f" (a wrong arm in {design['wrong']:.1%}), median {design['median_sms']:,.0f} SMS; "
        f"the stopping design spends {saving:.0%} fewer"
    )


def show(result: dict) -> None:
    tag = "" if result["nesting"] else "  (without nesting)"
    print(f"\n== {result['scenario']}{tag}: true costs per message {result['true_costs']}")
    print(f"  {result['runs']} experiments, decisions {result['decisions']}")
    print(
        f"  truly best arm declared: {result['correct']:.1%}; wrong arm declared best: "
        f"{result['wrong']:.1%}; truly best arm dropped: {result['best_dropped']:.1%} "
        f"(target <= {ALPHA:.0%})"
    )
    sms = result["median_sms"]
    print(
        f"  stopping design: median {result['median_messages']:,.0f} messages, {sms:,.0f} SMS, "
        f"{result['median_hours']:.1f} platform hours"
    )
    print(_design("fixed design of the planned size", result["fixed"]["planned"], sms))
    print(_design("fixed design with the same guarantee", result["fixed"]["matched"], sms))
    nested = result["fixed_nested"]["matched"]
    if nested is not None:
        print(_design("the same, its analysis also nested (context)", nested, sms))
    matched = result["fixed"]["matched"]
    if matched is None:
        return
    result["sms_saving"] = 1 - sms / matched["median_sms"]
    verdict = "met" if result["sms_saving"] >= SAVING_TARGET else "MISSED"
    print(
        f"  target: median SMS at least {SAVING_TARGET:.0%} below the fixed design with the "
        f"same guarantee: {result['sms_saving']:.0%}, {verdict}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="experiments per scenario")
    parser.add_argument("--per-arm", type=int, default=3000, help="maximum messages per arm")
    parser.add_argument("--rate", type=float, default=0.2, help="sends per platform second")
    parser.add_argument("--batch", type=int, default=100, help="messages between looks")
    parser.add_argument("--min-per-arm", type=int, default=100)
    parser.add_argument("--units", type=int, default=20_000, help="population size")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-nesting", action="store_true", help="also run without nesting")
    parser.add_argument("--quick", action="store_true", help="100 runs per scenario")
    args = parser.parse_args()
    if args.quick:
        args.runs = 100
    started = time.perf_counter()
    results = []
    for name, arms in SCENARIOS.items():
        population = potential_outcomes(arms, units=args.units, seed=args.seed)
        print(
            f"\n{name}: {population.units:,} reachable recipients; nesting holds for "
            f"{population.nesting_agreement():.3%} of (shorter arm, longer arm, recipient)"
        )
        for nesting in (True, False) if args.no_nesting else (True,):
            result = run_scenario(name, population, args, nesting)
            show(result)
            results.append(result)
        result["widths"] = widths(population, args.per_arm)
    rates = max(r["widths"]["rate_vs_wilson"] for r in results if "widths" in r)
    means = max(r["widths"]["cost_vs_fixed"] for r in results if "widths" in r)
    verdict = "met" if rates <= WIDTH_TARGET else "MISSED"
    print(
        f"\nwidth at the planned size ({args.per_arm:,} per arm): always-valid rate interval "
        f"at most {rates:.2f}x Wilson (target <= {WIDTH_TARGET}: {verdict}); always-valid cost "
        f"interval at most {means:.2f}x the fixed 95 % interval"
    )
    total = sum(r["runs"] for r in results)
    print(f"{total:,} simulated experiments in {time.perf_counter() - started:.0f} s")
    OUT.mkdir(exist_ok=True)
    (OUT / "experiment_stopping.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
