"""The whole analysis in one call, as a stable JSON document, readable text or an HTML page.

``analyze(events, outbox, by=..., policies=...)`` loads both logs, derives the lifecycles,
aggregates them per group, and computes revoke success (Wilson), delivery latency (Kaplan-Meier)
and the best TTL under each group's cost policy (chosen by its ``useCase``). The document's
layout is fixed (``SCHEMA``); a figure that cannot be estimated is ``null``, never invented.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rbmtools.analysis.aggregates import Aggregates, GroupAggregates
from rbmtools.analysis.dataset import Dataset, LoadReport, load
from rbmtools.analysis.latency import (
    DEFAULT_MIN_AT_RISK,
    QUANTILES,
    SurvivalCurve,
    kaplan_meier,
    weighted_quantile,
)
from rbmtools.analysis.metrics import compare_arms, wilson
from rbmtools.analysis.policy import CostPolicy, load_policies, resolve_policies
from rbmtools.analysis.schema import OUTCOMES, REVOKE_METHODS, validate_by
from rbmtools.analysis.ttl import TtlChoice, best_ttl

__all__ = ["SCHEMA", "Analysis", "GroupResult", "analyze", "build_analysis"]

SCHEMA = "rbmtools.analysis/1"
DEFAULT_BY = ("useCase",)


@dataclass(frozen=True)
class GroupResult:
    """Everything computed for one group."""

    aggregates: GroupAggregates = field(repr=False)
    curve: SurvivalCurve = field(repr=False)
    ttl: TtlChoice = field(repr=False)

    @property
    def key(self) -> dict[str, Any]:
        return self.aggregates.key

    @property
    def counts(self) -> dict[str, int]:
        return self.aggregates.counts

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items()) or "all messages"


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass
class Analysis:
    """The results of ``build_analysis``: ``to_dict()`` is the document of ``analyze``."""

    report: LoadReport
    by: tuple[str, ...]
    groups: list[GroupResult]
    comparisons: pd.DataFrame
    policies: dict[str, CostPolicy]
    settings: dict[str, Any]
    daily: Aggregates | None = None
    #: Per use case, whether an active TTL policy still holds (``ttl_policy.ttl_policy_drift``).
    drift: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        used = sorted({g.ttl.policy_name for g in self.groups if g.ttl.policy_name})
        doc = {
            "schema": SCHEMA,
            "read": self.report.to_dict(),
            "by": list(self.by),
            "settings": self.settings,
            "policies": {name: self.policies[name].to_dict() for name in used},
            "groups": [_group_dict(g) for g in self.groups],
            "comparisons": self.comparisons.to_dict("records"),
        }
        if self.drift is not None:
            doc["drift"] = self.drift
        return _clean(doc)

    def to_text(self) -> str:
        return render_text(self)

    def to_html(self, figures: bool = True) -> str:
        return render_html(self, figures=figures)


def _group_dict(group: GroupResult) -> dict[str, Any]:
    c = group.counts
    curve = group.curve
    latency: dict[str, Any] = {}
    ci: dict[str, Any] = {}
    for p in QUANTILES:
        name = f"p{round(p * 100):d}"
        estimate, lo, hi = curve.quantile(p)
        latency[name] = estimate
        ci[name] = [lo, hi]
    never, never_lo, never_hi = curve.never_delivered
    latency["never_delivered_share"] = never
    ci["never_delivered_share"] = [never_lo, never_hi]
    latency.update(
        ci=ci,
        messages=curve.messages,
        deliveries=curve.deliveries,
        supported_until_seconds=curve.supported_until,
    )
    revoke = _rate_dict(c["revoked"], c["revoke_tried"])
    for method in REVOKE_METHODS:
        revoke[method] = _rate_dict(c[f"{method}_revoked"], c[f"{method}_tried"])
    delivered = c["delivered"] + c["delivered_after_revoke"]
    read = _rate_dict(c["read"], delivered)
    read["median_seconds"] = weighted_quantile(group.aggregates.read_bins, "read", 0.5)
    read["p90_seconds"] = weighted_quantile(group.aggregates.read_bins, "read", 0.9)
    succeeded = c["revoked"] + c["delivered_after_revoke"]
    return {
        "key": group.key,
        "messages": c["messages"],
        "outcomes": {o: c[o] for o in OUTCOMES},
        "revoke_success": revoke,
        "latency_seconds": latency,
        "read": read,
        "stale_deliveries": _rate_dict(c["stale_deliveries"], delivered),
        "double_deliveries": _rate_dict(c["double_deliveries"], delivered),
        "revoke_race": _rate_dict(c["delivered_after_revoke"], succeeded),
        "sms": _sms_dict(c, group.ttl.policy),
        "anomalies": {
            "clock_skew_messages": c["clock_skew"],
            "out_of_order_messages": c["out_of_order"],
            "duplicate_events": c["duplicate_events"],
        },
        "best_ttl": group.ttl.to_dict(),
    }


def _sms_dict(counts: Mapping[str, int], policy: CostPolicy | None) -> dict[str, Any]:
    """The SMS sent, split by why: a revoked or inconclusive message (``after_revoke``) or a
    phone without RCS (``not_rcs``, outside the TTL's cost model), each priced at the cost
    policy's ``sms_cost`` (null without a policy)."""
    not_rcs = counts["not_rcs_fallbacks"]
    after_revoke = counts["fallbacks"] - not_rcs
    price = None if policy is None else policy.sms_cost
    return {
        "after_revoke": after_revoke,
        "not_rcs": not_rcs,
        "after_revoke_cost": None if price is None else after_revoke * price,
        "not_rcs_cost": None if price is None else not_rcs * price,
    }


def _rate_dict(successes: int, trials: int) -> dict[str, Any]:
    rate, lo, hi = wilson(successes, trials)
    return {"rate": rate, "lo": lo, "hi": hi, "n": trials, "count": successes}


def _policy_for(
    key: Mapping[str, Any], policies: Mapping[str, CostPolicy], only_use_case: str | None
) -> tuple[str | None, CostPolicy | None]:
    use_case = key.get("useCase", only_use_case)
    if use_case is not None and use_case in policies:
        return use_case, policies[use_case]
    if "*" in policies:
        return "*", policies["*"]
    return None, None


def build_analysis(
    dataset: Dataset,
    by: str | Iterable[str] | None = DEFAULT_BY,
    policies: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    min_at_risk: int = DEFAULT_MIN_AT_RISK,
    bootstrap: int = 200,
    seed: int = 0,
    coverage: float = 0.95,
    daily: bool = False,
) -> Analysis:
    """Compute every figure of the analysis document from a loaded ``Dataset``.

    ``policies`` maps useCase -> ``CostPolicy`` or policy fields (over the defaults for otp,
    transaction, promo and alert), or names a YAML/JSON file; key ``"*"`` applies to any other
    use case. A group gets the policy of its ``useCase`` (with ``useCase`` not in ``by``, the
    dataset's only use case, if it has one); without a policy its ``best_ttl`` is null.
    """
    columns = tuple(validate_by(by))
    if isinstance(policies, str | os.PathLike):
        resolved = load_policies(policies)
    else:
        resolved = resolve_policies(policies)
    if min_at_risk < 1:
        from rbmtools.errors import ValidationError

        raise ValidationError("min_at_risk", min_at_risk, "must be at least 1")
    only_use_case = None
    if "useCase" not in columns:
        use_cases = dataset.engine.df(
            'SELECT DISTINCT "useCase" AS u FROM rbm_summary '
            "WHERE part = 'counts' AND row_kind = 'message'"
        )["u"]
        if len(use_cases) == 1:
            only_use_case = use_cases.iloc[0]
    aggregates = dataset.aggregates(columns)
    results = []
    for index, group in enumerate(aggregates):
        curve = kaplan_meier(group.latency_bins, min_at_risk=min_at_risk)
        name, policy = _policy_for(group.key, resolved, only_use_case)
        choice = best_ttl(
            curve,
            group.latency_bins,
            policy,
            policy_name=name,
            race_delivered=group.counts["delivered_after_revoke"],
            race_revokes=group.counts["revoked"] + group.counts["delivered_after_revoke"],
            bootstrap=bootstrap,
            seed=seed + index,
            coverage=coverage,
        )
        results.append(GroupResult(group, curve, choice))
    comparisons = compare_arms(aggregates) if "arm" in columns else pd.DataFrame()
    daily_aggregates = None
    if daily:
        daily_aggregates = dataset.aggregates([c for c in columns if c != "day"] + ["day"])
    settings = {
        "min_at_risk": min_at_risk,
        "bootstrap": bootstrap,
        "seed": seed,
        "coverage": coverage,
        "confidence": 0.95,
    }
    return Analysis(
        dataset.report, columns, results, comparisons, resolved, settings, daily_aggregates
    )


def analyze(
    events: Any = None,
    outbox: Any = None,
    by: str | Iterable[str] | None = DEFAULT_BY,
    policies: Mapping[str, Any] | str | os.PathLike[str] | None = None,
    *,
    min_at_risk: int = DEFAULT_MIN_AT_RISK,
    bootstrap: int = 200,
    seed: int = 0,
    quarantine: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
    engine: Any = "duckdb",
    spark_master: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Load the logs and return the analysis document (see the README, "Analysis");
    ``engine`` and the rest as in ``load`` (``"duckdb"``, ``"spark"`` or a SparkSession)."""
    with load(
        events,
        outbox,
        quarantine=quarantine,
        threads=threads,
        memory_limit=memory_limit,
        engine=engine,
        spark_master=spark_master,
        spark_conf=spark_conf,
    ) as data:
        return build_analysis(
            data, by, policies, min_at_risk=min_at_risk, bootstrap=bootstrap, seed=seed
        ).to_dict()


# ------------------------------------------------------------------------------ text


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "n/e"
    if value < 120:
        return f"{value:.3g}s"
    if value < 7200:
        return f"{value / 60:.3g}m"
    if value < 172_800:
        return f"{value / 3600:.3g}h"
    return f"{value / 86400:.3g}d"


def _fmt_rate(rate: float | None, lo: float | None, hi: float | None) -> str:
    if rate is None:
        return "n/e"
    return f"{rate:.1%} [{lo:.1%}, {hi:.1%}]"


def _fmt_sms(sms: Mapping[str, Any]) -> str:
    def cost(key: str) -> str:
        return "" if sms[key] is None else f" (cost {sms[key]:.2f})"

    return (
        f"{sms['after_revoke']} after revokes{cost('after_revoke_cost')}, "
        f"{sms['not_rcs']} to phones without RCS{cost('not_rcs_cost')}"
    )


def render_text(analysis: Analysis) -> str:
    """A readable summary: what was read, then one block per group."""
    doc = analysis.to_dict()
    lines = [*drift_headlines(analysis), str(analysis.report), ""]
    for group in doc["groups"]:
        label = ", ".join(f"{k}={v}" for k, v in group["key"].items()) or "all messages"
        lat = group["latency_seconds"]
        rs = group["revoke_success"]
        ttl = group["best_ttl"]
        outcomes = ", ".join(f"{k} {v}" for k, v in group["outcomes"].items() if v)
        never, read = lat["never_delivered_share"], group["read"]
        lines += [
            f"== {label}: {group['messages']} messages",
            f"   outcomes: {outcomes or 'none'}",
            f"   revoke success: {_fmt_rate(rs['rate'], rs['lo'], rs['hi'])} of {rs['n']} tried"
            f" (api {_fmt_rate(rs['api']['rate'], rs['api']['lo'], rs['api']['hi'])},"
            f" ttl {_fmt_rate(rs['ttl']['rate'], rs['ttl']['lo'], rs['ttl']['hi'])})",
            "   latency: "
            + ", ".join(f"{q} {_fmt_seconds(lat[q])}" for q in ("p50", "p90", "p95", "p99"))
            + f"; never delivered {_fmt_rate(never, *lat['ci']['never_delivered_share'])}"
            + f" (curve supported to {_fmt_seconds(lat['supported_until_seconds'])};"
            + " n/e = not estimable)",
            f"   read: {_fmt_rate(read['rate'], read['lo'], read['hi'])},"
            f" median {_fmt_seconds(read['median_seconds'])} after delivery;"
            f" stale {group['stale_deliveries']['count']},"
            f" double {group['double_deliveries']['count']}",
            f"   SMS: {_fmt_sms(group['sms'])}",
        ]
        if ttl["policy"] is None:
            lines.append("   best TTL: no cost policy for this group")
        elif ttl["seconds"] is None:
            lines.append(f"   best TTL ({ttl['policy']}): not estimable (data supports < 10 s)")
        else:
            interval = (
                f" [{_fmt_seconds(ttl['lo'])}, {_fmt_seconds(ttl['hi'])}]"
                if ttl["lo"] is not None
                else ""
            )
            lines.append(
                f"   best TTL ({ttl['policy']}): {_fmt_seconds(ttl['seconds'])}{interval},"
                f" expected cost {ttl['expected_cost']:.4f}/message;"
                f" 95% coverage {_fmt_seconds(ttl['coverage_95_seconds'])};"
                f" curve stops at {_fmt_seconds(ttl['curve_stops_at_seconds'])}"
            )
        lines.append("")
    if doc["comparisons"]:
        lines.append("== arm comparisons (arm minus reference, Newcombe 95% interval)")
        for row in doc["comparisons"]:
            if row["difference"] is None:
                continue
            stratum = ", ".join(f"{k}={row[k]}" for k in analysis.by if k != "arm" and k in row)
            prefix = f"{stratum}: " if stratum else ""
            lines.append(
                f"   {prefix}{row['rate']}: {row['arm']} vs {row['reference']}"
                f" {row['difference']:+.2%} [{row['lo']:+.2%}, {row['hi']:+.2%}]"
            )
    return "\n".join(lines).rstrip() + "\n"


def drift_headlines(analysis: Analysis) -> list[str]:
    """One line per use case whose active TTL policy lies outside the best TTL's interval."""
    from rbmtools.analysis.ttl_policy import drift_headline

    return [drift_headline(entry) for entry in analysis.drift or () if entry["drift"]]


# ------------------------------------------------------------------------------ html


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/e"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(analysis: Analysis, figures: bool = True) -> str:
    """A self-contained HTML page (figures inlined as PNG) of the analysis."""
    from rbmtools.analysis import plots

    doc = analysis.to_dict()
    rows = []
    for group in doc["groups"]:
        lat, ttl, rs = group["latency_seconds"], group["best_ttl"], group["revoke_success"]
        rows.append(
            {
                "group": ", ".join(f"{k}={v}" for k, v in group["key"].items()) or "all",
                "messages": group["messages"],
                **group["outcomes"],
                "revoke success": _fmt_rate(rs["rate"], rs["lo"], rs["hi"]),
                "p50": _fmt_seconds(lat["p50"]),
                "p90": _fmt_seconds(lat["p90"]),
                "p99": _fmt_seconds(lat["p99"]),
                "never delivered": _fmt_rate(
                    lat["never_delivered_share"], *lat["ci"]["never_delivered_share"]
                ),
                "SMS after revokes": group["sms"]["after_revoke"],
                "SMS, no RCS": group["sms"]["not_rcs"],
                "best TTL": _fmt_seconds(ttl["seconds"]),
                "TTL interval": f"{_fmt_seconds(ttl['lo'])} .. {_fmt_seconds(ttl['hi'])}",
                "expected cost": ttl["expected_cost"],
                "95% coverage": _fmt_seconds(ttl["coverage_95_seconds"]),
                "policy": ttl["policy"],
            }
        )
    read = pd.DataFrame([{"what": k, "value": v} for k, v in doc["read"].items()])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>rbmtools analysis</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "table{border-collapse:collapse;margin:1em 0;font-size:90%}"
        "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}"
        "th{background:#f0f0f0}img{max-width:100%}</style></head><body>",
        "<h1>RBM delivery, revoke and TTL analysis</h1>",
        *(
            f"<p class='drift'><strong>{html.escape(line)}</strong></p>"
            for line in drift_headlines(analysis)
        ),
        f"<p>Grouped by: {html.escape(', '.join(analysis.by) or 'nothing (all messages)')}. "
        "n/e = not estimable from these logs.</p>",
        "<h2>What was read</h2>",
        _table(read),
        "<h2>Groups</h2>",
        _table(pd.DataFrame(rows)),
    ]
    if len(analysis.comparisons):
        parts += ["<h2>Arm comparisons</h2>", _table(analysis.comparisons)]
    if figures:
        for title, figure in plots.all_figures(analysis).items():
            name = html.escape(title)
            image = f"data:image/png;base64,{_png(figure)}"
            parts.append(f"<h2>{name}</h2><img alt='{name}' src='{image}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
