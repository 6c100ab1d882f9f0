"""The tables and texts the notebooks show, from an ``rbmtools.analysis.Analysis``.

The report tables themselves are the analysis's (``rbmtools.analysis.tables``: humanised,
footnoted, the same in ``rbmtools analyze --html``); here is what only notebooks need: the
load report of a dataset, the best-TTL table as a CSV with machine-readable columns, the
support caveats as Markdown, the cost policies from notebook parameters, the checks a scheduled
report makes (``require_messages``), its comparison with the previous window and the links to
its detail reports. Rate changes carry Newcombe intervals and count as significant only when
the interval excludes zero.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.analysis import humanize as h
from rbmtools.analysis.tables import (
    comparisons_table,
    daily_table,
    deliveries_table,
    latency_table,
    outcomes_table,
    policy_table,
    read_table,
    revoke_table,
    support_notes,
    ttl_table,
)
from rbmtools.errors import NothingToReport, ValidationError
from rbmtools.notebook.paths import find_path

__all__ = [
    "DETAIL_NOTEBOOKS",
    "changes",
    "compare_windows",
    "comparisons_table",
    "cost_policies",
    "daily_table",
    "deliveries_table",
    "detail_links",
    "latency_table",
    "load_table",
    "outcomes_table",
    "policy_table",
    "read_table",
    "require_messages",
    "revoke_table",
    "save_table",
    "support_caveats",
    "ttl_recommendations",
    "ttl_table",
]


def load_table(dataset: Any) -> pd.DataFrame:
    """What the dataset's load read, and the window it keeps (the report's appendix)."""
    from rbmtools.analysis.tables import load_table as table

    return table(dataset.report, dataset.sent)


def ttl_recommendations(analysis: Any) -> pd.DataFrame:
    """The best-TTL table with machine-readable columns added (seconds, the near-optimal
    range, ``at_support_edge``): what ``recommendations_csv`` and ``make demo`` keep."""
    frame = ttl_table(analysis).copy()
    frame["best_ttl_seconds"] = [g.ttl.seconds for g in analysis.groups]
    frame["lo_seconds"] = [g.ttl.lo for g in analysis.groups]
    frame["hi_seconds"] = [g.ttl.hi for g in analysis.groups]
    frame["near_lo_seconds"] = [g.ttl.near_lo for g in analysis.groups]
    frame["near_hi_seconds"] = [g.ttl.near_hi for g in analysis.groups]
    frame["at_support_edge"] = [
        g.ttl.at_support_edge if g.ttl.seconds is not None else None for g in analysis.groups
    ]
    return frame


def support_caveats(analysis: Any) -> str:
    """Markdown: how far the data supports a TTL, in general and for each group."""
    min_at_risk = analysis.settings.get("min_at_risk")
    lines = [
        "A cost curve is drawn only as far as the logs can tell how many messages are still "
        f"undelivered: it stops where fewer than {min_at_risk} messages remain undelivered and "
        "observed (later ones were revoked, expired, or the logs end). Nothing is extrapolated: "
        "a TTL beyond that point is a guess, not a recommendation.",
        "",
    ]
    lines += [f"- {line}" for line in support_notes(analysis)]
    return "\n".join(lines)


def _mapping(value: Any, field: str) -> Any:
    """A mapping parameter as papermill's ``-p`` may pass it: as its JSON or YAML text."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValidationError(field, value, "is not a JSON or YAML mapping") from None
    return value


def cost_policies(
    policies: Mapping[str, Any] | str | None = None,
    policy_file: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The cost policies to use: the defaults, then ``policy_file`` over them, then
    ``policies`` (use case -> the fields to change, or that mapping's JSON text) over both."""
    from rbmtools.analysis import DEFAULT_POLICIES, CostPolicy, load_policies

    resolved = (
        dict(DEFAULT_POLICIES) if policy_file is None else load_policies(find_path(policy_file))
    )
    policies = _mapping(policies, "policies")
    if policies is None:
        return resolved
    if not isinstance(policies, Mapping):
        raise ValidationError("policies", policies, "must map a use case to policy fields")
    for use_case, fields in policies.items():
        if isinstance(fields, CostPolicy):
            resolved[str(use_case)] = fields
        elif isinstance(fields, Mapping):
            base = resolved.get(str(use_case))
            resolved[str(use_case)] = CostPolicy.from_mapping(fields, base=base)
        else:
            raise ValidationError(f"policies.{use_case}", fields, "must be a mapping of fields")
    return resolved


def save_table(frame: pd.DataFrame, path: str | os.PathLike[str] | None) -> Path | None:
    """Write ``frame`` as CSV to ``path`` (folders created); nothing when ``path`` is None."""
    if path is None:
        return None
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)
    return target


# ------------------------------------------------------------------------------ scheduled


def _messages(analysis: Any) -> int:
    return sum(group.counts["messages"] for group in analysis.groups)


def require_messages(analysis: Any, allow_empty: bool = False) -> Any:
    """``analysis``, unless it has nothing to report: no messages in its window, or too few
    for any estimate (no group with ``min_at_risk`` messages). Then ``NothingToReport`` (a
    scheduled ``rbmtools report`` exits with code 4), unless ``allow_empty``."""
    window = "all messages" if analysis.window is None else analysis.window.label()
    messages = _messages(analysis)
    if messages == 0:
        problem = f"no messages in the window ({window})"
    elif not any(group.curve.estimable for group in analysis.groups):
        problem = (
            f"too few messages for any estimate: {h.count(messages)} in the window ({window}), "
            f"fewer than {analysis.settings['min_at_risk']} (min_at_risk) in every group"
        )
    else:
        return analysis
    if allow_empty:
        return analysis
    raise NothingToReport(f"{problem}; pass allow_empty=True (--allow-empty) to report anyway")


def _key(group: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(group.key.items()))


def _rate_change(name: str, k1: int, n1: int, k0: int, n0: int) -> dict[str, str]:
    from statsmodels.stats.proportion import confint_proportions_2indep

    row = {
        "measure": f"{name.replace('_', ' ')} rate",
        "previous": h.NOT_ESTIMABLE if not n0 else f"{h.percent(k0 / n0)} of {h.count(n0)}",
        "current": h.NOT_ESTIMABLE if not n1 else f"{h.percent(k1 / n1)} of {h.count(n1)}",
        "change": "",
        "95 % interval": "",
        "significant": "",
    }
    if n0 and n1:
        lo, hi = confint_proportions_2indep(k1, n1, k0, n0, method="newcomb", compare="diff")
        row["change"] = h.percentage_points(100 * ((k1 * n0 - k0 * n1) / (n1 * n0)))
        row["95 % interval"] = f"{h.percentage_points(100 * lo)} – {h.percentage_points(100 * hi)}"
        row["significant"] = "up" if lo > 0 else "down" if hi < 0 else "no"
    return row


def _ratio(now: float | None, then: float | None) -> str:
    if now is None or then is None or then <= 0:
        return ""
    return f"{100 * (now / then - 1):+.0f} %".replace("-", "−")


def compare_windows(current: Any, previous: Any) -> pd.DataFrame:
    """Each group's rates, latencies and best TTL in the previous and the current window,
    with the change; rate changes carry a Newcombe 95 % interval and are ``significant``
    (``up``/``down``) when it excludes zero. Rates at 0 in both windows and figures not
    estimable in either are left out (a footnote says so)."""
    from rbmtools.analysis.metrics import RATES
    from rbmtools.analysis.tables import group_name

    before = {_key(g): g for g in previous.groups}
    rows = []
    for group in current.groups:
        old = before.get(_key(group))
        c, o = group.counts, (old.counts if old is not None else None)
        name = group_name(group.key)
        rows.append(
            {"group": name, "measure": "messages", "previous": h.count(o["messages"]) if o else "",
             "current": h.count(c["messages"]),
             "change": f"{c['messages'] - o['messages']:+,d}".replace("-", "−") if o else "",
             "95 % interval": "", "significant": ""}
        )  # fmt: skip
        for rate, counts in RATES.items():
            k1, n1 = counts(c)
            k0, n0 = counts(o) if o is not None else (0, 0)
            if k0 == k1 == 0 and (o is not None or not n1):
                continue  # 0 in both windows (or nothing to say): left out, said under the table
            rows.append({"group": name, **_rate_change(rate, k1, n1, k0, n0)})
        for measure, then, now in (
            ("p50 latency", old and old.curve.quantile(0.5)[0], group.curve.quantile(0.5)[0]),
            ("p90 latency", old and old.curve.quantile(0.9)[0], group.curve.quantile(0.9)[0]),
            ("best TTL", old and old.ttl.seconds, group.ttl.seconds),
        ):
            if now is None and then is None:
                continue
            rows.append(
                {"group": name, "measure": measure,
                 "previous": h.duration(then) if old is not None else "",
                 "current": h.duration(now), "change": _ratio(now, then),
                 "95 % interval": "", "significant": ""}
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.attrs["footnotes"] = [
        ("", "Rates that are 0 % in both windows, and figures not estimable in either, are "
         "left out.")
    ]  # fmt: skip
    return frame


def changes(current: Any, previous: Any) -> Any:
    """The comparison with the previous window: the table of ``compare_windows``, or one
    sentence when the previous window holds no messages."""
    if _messages(previous) == 0:
        from rbmtools.notebook.display import markdown

        window = "" if previous.window is None else f" ({previous.window.label()})"
        return markdown(f"The previous window{window} holds no messages: nothing to compare.")
    return compare_windows(current, previous)


#: The detail notebooks a scheduled report links to.
DETAIL_NOTEBOOKS = {
    "webhook_log_analysis": "Webhook log analysis",
    "ttl_tuning": "TTL tuning",
}


def detail_links(
    details_dir: str | os.PathLike[str] | None, window: Any, events: Any, outbox: Any
) -> str:
    """Markdown: for each detail notebook, a link to its newest HTML report in
    ``details_dir`` (by file name: run the detail reports into the folder this report goes
    to), and the command that makes one for this window."""
    folder = None if details_dir is None else find_path(details_dir)
    lines = []
    for name, title in DETAIL_NOTEBOOKS.items():
        newest = None
        if folder is not None and folder.is_dir():
            found = sorted(folder.glob(f"{name}-*.html"))
            newest = found[-1] if found else None
        if newest is not None:
            link = f"[{title}]({newest.name})"
        elif folder is None:
            link = f"{title} (no details_dir given)"
        else:
            link = f"{title} (no report in {folder} yet)"
        command = f"rbmtools report {name} --html -p events {_arg(events)} -p outbox {_arg(outbox)}"
        if window.start is not None:
            command += f" -p start {window.start.isoformat()}"
        if window.end is not None:
            command += f" -p end {window.end.isoformat()}"
        lines.append(f"- {link}; to make it for this window: `{command}`")
    return "\n".join(lines)


def _arg(value: Any) -> str:
    import shlex

    if isinstance(value, list | tuple):
        return shlex.quote(json.dumps([os.fspath(v) for v in value]))
    return shlex.quote(os.fspath(value))
