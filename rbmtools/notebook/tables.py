"""The tables and texts the notebooks show, computed from an ``rbmtools.analysis.Analysis``.

An overview per group (outcomes, revoke success, latency, reads, fallbacks), the best-TTL
recommendation with its interval and the data-support caveat, the cost policies in use, the
daily trend, the headline of a scheduled report and its changes since the previous window.
Rates carry Wilson 95 % intervals; changes of rates carry Newcombe intervals, and a change
counts as significant only when its interval excludes zero.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.notebook.display import human_seconds
from rbmtools.notebook.paths import find_path

__all__ = [
    "DETAIL_NOTEBOOKS",
    "compare_windows",
    "cost_policies",
    "daily_table",
    "detail_links",
    "headline",
    "overview",
    "policy_table",
    "read_table",
    "save_table",
    "support_caveats",
    "ttl_recommendations",
]


def _rate(successes: int, trials: int) -> str:
    from rbmtools.analysis import wilson

    rate, lo, hi = wilson(successes, trials)
    if rate is None:
        return "n/e"
    return f"{rate:.1%} [{lo:.1%}, {hi:.1%}]"


def _group_columns(group: Any) -> dict[str, Any]:
    return dict(group.key) if group.key else {"group": "all messages"}


def read_table(dataset: Any, window: Any = None) -> pd.DataFrame:
    """What was read (files, lines, events, duplicates, malformed lines...) and, for a
    ``load_window`` dataset, which window it keeps."""
    from rbmtools.notebook.windows import window_of

    rows = [{"what": k, "value": v} for k, v in dataset.report.to_dict().items()]
    window = window if window is not None else window_of(dataset)
    if window is not None and not window.is_open:
        rows += [
            {"what": "window", "value": window.label()},
            {"what": "messages in window", "value": dataset.report.messages},
            {
                "what": "note",
                "value": "outbox records and messages are those of the window; events about "
                "messages sent outside it count as unknown_message_events",
            },
        ]
    elif window is not None:
        rows.append({"what": "window", "value": window.label()})
    return pd.DataFrame(rows)


def overview(analysis: Any) -> pd.DataFrame:
    """One row per group: messages, outcomes, revoke success, latency, reads, fallbacks."""
    rows = []
    for group in analysis.groups:
        c = group.counts
        curve = group.curve
        delivered = c["delivered"] + c["delivered_after_revoke"]
        reachable = c["messages"] - c["not_rcs"]
        never = curve.never_delivered[0]
        rows.append(
            {
                **_group_columns(group),
                "messages": c["messages"],
                "delivered": c["delivered"],
                "delivered after revoke": c["delivered_after_revoke"],
                "revoked": c["revoked"],
                "revoke failed, undelivered": c["revoke_failed_undelivered"],
                "pending": c["pending"],
                "not RCS": c["not_rcs"],
                "revoke success": _rate(c["revoked"], c["revoke_tried"]),
                "p50 latency": human_seconds(curve.quantile(0.5)[0]),
                "p90 latency": human_seconds(curve.quantile(0.9)[0]),
                "never delivered": "n/e" if never is None else f"{never:.1%}",
                "read": _rate(c["read"], delivered),
                "SMS fallbacks": c["fallbacks"],
                "SMS, no RCS": c["not_rcs_fallbacks"],
                "fallback share": _rate(c["fallbacks"] - c["not_rcs_fallbacks"], reachable),
            }
        )
    return pd.DataFrame(rows)


def daily_table(analysis: Any) -> pd.DataFrame:
    """Per day (and group): messages, delivered share, revoke success, reads, fallbacks
    (needs ``build_analysis(..., daily=True)``)."""
    daily = analysis.daily
    if daily is None or not len(daily.groups):
        return pd.DataFrame()
    rows = []
    for group in daily:
        c = group.counts
        reachable = c["messages"] - c["not_rcs"]
        delivered = c["delivered"] + c["delivered_after_revoke"]
        rows.append(
            {
                **group.key,
                "messages": c["messages"],
                "delivered": _rate(delivered, reachable),
                "revoke success": _rate(c["revoked"], c["revoke_tried"]),
                "read": _rate(c["read"], delivered),
                "SMS fallbacks": c["fallbacks"],
                "stale": c["stale_deliveries"],
                "double": c["double_deliveries"],
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(list(daily.by)).reset_index(drop=True)


def cost_policies(
    policies: Mapping[str, Any] | None = None, policy_file: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """The cost policies to use: the defaults, then ``policy_file`` over them, then
    ``policies`` (use case -> the fields to change) over both."""
    from rbmtools.analysis import DEFAULT_POLICIES, CostPolicy, load_policies
    from rbmtools.errors import ValidationError

    resolved = (
        dict(DEFAULT_POLICIES) if policy_file is None else load_policies(find_path(policy_file))
    )
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


def policy_table(
    policies: Mapping[str, Any], use_cases: Iterable[str] | None = None
) -> pd.DataFrame:
    """The cost policies (one row per use case; only ``use_cases`` if given)."""
    wanted = None if use_cases is None else set(use_cases)
    rows = []
    for name, policy in policies.items():
        if wanted is not None and name not in wanted:
            continue
        values = policy.to_dict()
        rows.append({"use case": name, **values})
    return pd.DataFrame(rows)


def _edge(seconds: float | None, edge: float | None) -> bool:
    return seconds is not None and edge is not None and math.isclose(seconds, edge, rel_tol=1e-9)


def ttl_recommendations(analysis: Any) -> pd.DataFrame:
    """The best TTL per group under its cost policy: the TTL with its bootstrap interval, the
    expected cost per message, the 95 % coverage TTL and where the data stops."""
    from rbmtools.analysis.ttl import MIN_TTL_SECONDS

    rows = []
    for group in analysis.groups:
        choice = group.ttl
        seconds = choice.seconds
        interval = (
            f"{human_seconds(choice.lo)} .. {human_seconds(choice.hi)}"
            if choice.lo is not None
            else "n/e"
        )
        if choice.policy is None:
            note = "no cost policy for this group"
        elif seconds is None:
            note = "not estimable: the data supports less than 10 s"
        elif _edge(seconds, choice.stops_at):
            note = "at the end of the supported range: a longer TTL may be cheaper"
        elif _edge(seconds, MIN_TTL_SECONDS):
            note = "at the shortest TTL considered (10 s)"
        else:
            note = ""
        rows.append(
            {
                **_group_columns(group),
                "policy": choice.policy_name,
                "best TTL": human_seconds(seconds),
                "95% interval": interval,
                "expected cost / message": None
                if choice.expected_cost is None
                else round(choice.expected_cost, 4),
                "95% coverage TTL": human_seconds(choice.coverage_seconds),
                "data supports up to": human_seconds(choice.supported_until),
                "messages": group.counts["messages"],
                "note": note,
                "best_ttl_seconds": seconds,
                "lo_seconds": choice.lo,
                "hi_seconds": choice.hi,
            }
        )
    return pd.DataFrame(rows)


def support_caveats(analysis: Any) -> str:
    """Markdown: for each group, how far the data supports a TTL, and what that means."""
    from rbmtools.analysis.ttl import MIN_TTL_SECONDS

    min_at_risk = analysis.settings.get("min_at_risk")
    lines = [
        "A cost curve is drawn only as far as the logs can tell how many messages are still "
        f"undelivered: it stops where fewer than {min_at_risk} messages remain undelivered and "
        "observed (later ones were revoked, expired, or the logs end). Nothing is extrapolated: "
        "a TTL beyond that point is a guess, not a recommendation.",
        "",
    ]
    for group in analysis.groups:
        label = group.label()
        choice = group.ttl
        stops = choice.supported_until
        if stops is None:
            lines.append(
                f"- **{label}**: too few messages ({group.counts['messages']}) to draw a "
                "latency curve; no TTL can be recommended."
            )
            continue
        text = f"- **{label}**: the data supports TTLs up to {human_seconds(stops)}."
        if choice.policy is None:
            text += " No cost policy applies to this group (add one for its use case)."
        elif choice.seconds is None:
            text += " That is under the shortest TTL considered (10 s): no recommendation."
        elif _edge(choice.seconds, choice.stops_at):
            text += (
                f" The cheapest TTL found, {human_seconds(choice.seconds)}, is at that limit: "
                "a longer TTL may well be cheaper. Run an arm with a longer TTL (or observe "
                "longer) before adopting it."
            )
        elif _edge(choice.seconds, MIN_TTL_SECONDS):
            text += (
                " The cheapest TTL is the shortest considered (10 s): under this policy, "
                "falling back at once beats waiting."
            )
        else:
            text += f" The recommendation, {human_seconds(choice.seconds)}, lies inside it."
        lines.append(text)
    return "\n".join(lines)


def save_table(frame: pd.DataFrame, path: str | os.PathLike[str] | None) -> Path | None:
    """Write ``frame`` as CSV to ``path`` (folders created); nothing when ``path`` is None."""
    if path is None:
        return None
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, index=False)
    return target


# ------------------------------------------------------------------------------ scheduled


def headline(analysis: Any) -> pd.DataFrame:
    """The figures a scheduled report leads with, one row per group."""
    rows = []
    for group in analysis.groups:
        c = group.counts
        reachable = c["messages"] - c["not_rcs"]
        delivered = c["delivered"] + c["delivered_after_revoke"]
        choice = group.ttl
        rows.append(
            {
                **_group_columns(group),
                "messages": c["messages"],
                "delivered": _rate(delivered, reachable),
                "revoke success": _rate(c["revoked"], c["revoke_tried"]),
                "p50 latency": human_seconds(group.curve.quantile(0.5)[0]),
                "p90 latency": human_seconds(group.curve.quantile(0.9)[0]),
                "read": _rate(c["read"], delivered),
                "SMS fallbacks": c["fallbacks"],
                "stale": c["stale_deliveries"],
                "double": c["double_deliveries"],
                "best TTL": human_seconds(choice.seconds),
            }
        )
    return pd.DataFrame(rows)


def _key(group: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(group.key.items()))


def compare_windows(current: Any, previous: Any) -> pd.DataFrame:
    """Each group's rates, latencies and best TTL in the previous and the current window,
    with the change; rate changes carry a Newcombe 95 % interval and are ``significant``
    when it excludes zero."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    from rbmtools.analysis.metrics import RATES

    before = {_key(g): g for g in previous.groups}
    rows = []
    for group in current.groups:
        old = before.get(_key(group))
        label = group.label()
        c = group.counts
        o = old.counts if old is not None else None
        rows.append(
            {
                "group": label,
                "measure": "messages",
                "previous": "" if o is None else o["messages"],
                "current": c["messages"],
                "change": "" if o is None else f"{c['messages'] - o['messages']:+d}",
                "95% interval": "",
                "significant": "",
            }
        )
        for name, counts in RATES.items():
            k1, n1 = counts(c)
            k0, n0 = counts(o) if o is not None else (0, 0)
            row = {
                "group": label,
                "measure": f"{name.replace('_', ' ')} rate",
                "previous": "n/e" if not n0 else f"{k0 / n0:.1%} of {n0}",
                "current": "n/e" if not n1 else f"{k1 / n1:.1%} of {n1}",
                "change": "",
                "95% interval": "",
                "significant": "",
            }
            if n0 and n1:
                diff = k1 / n1 - k0 / n0
                lo, hi = confint_proportions_2indep(
                    k1, n1, k0, n0, method="newcomb", compare="diff"
                )
                row["change"] = f"{diff:+.1%}"
                row["95% interval"] = f"[{lo:+.1%}, {hi:+.1%}]"
                if lo > 0:
                    row["significant"] = "up"
                elif hi < 0:
                    row["significant"] = "down"
            rows.append(row)
        for name, p in (("p50 latency", 0.5), ("p90 latency", 0.9)):
            now = group.curve.quantile(p)[0]
            then = None if old is None else old.curve.quantile(p)[0]
            rows.append(
                {
                    "group": label,
                    "measure": name,
                    "previous": human_seconds(then) if old is not None else "",
                    "current": human_seconds(now),
                    "change": _ratio(now, then),
                    "95% interval": "",
                    "significant": "",
                }
            )
        rows.append(
            {
                "group": label,
                "measure": "best TTL",
                "previous": "" if old is None else human_seconds(old.ttl.seconds),
                "current": human_seconds(group.ttl.seconds),
                "change": _ratio(group.ttl.seconds, None if old is None else old.ttl.seconds),
                "95% interval": "",
                "significant": "",
            }
        )
    return pd.DataFrame(rows)


def _ratio(now: float | None, then: float | None) -> str:
    if now is None or then is None or then <= 0:
        return ""
    return f"{now / then - 1:+.0%}"


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
    import json
    import shlex

    if isinstance(value, list | tuple):
        return shlex.quote(json.dumps([os.fspath(v) for v in value]))
    return shlex.quote(os.fspath(value))
