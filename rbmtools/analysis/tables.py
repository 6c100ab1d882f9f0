"""The tables of a report, computed from an ``Analysis`` and written for people.

Every table is a ``DataFrame`` of display text: durations humanised, rates as percentages with
one decimal, counts with separators, no index to show. A figure that cannot be estimated is
``n/e`` with a footnote number; the footnotes travel with the table
(``frame.attrs["footnotes"]``, pairs of number and reason) and pages print them under it.
The same tables make the notebooks' reports and ``rbmtools analyze --html``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from rbmtools.analysis import humanize as h
from rbmtools.analysis.metrics import wilson
from rbmtools.analysis.schema import OUTCOMES
from rbmtools.analysis.ttl import MIN_TTL_SECONDS

__all__ = [
    "COLUMN_NAMES",
    "comparisons_table",
    "daily_table",
    "deliveries_table",
    "group_name",
    "latency_table",
    "load_table",
    "outcomes_table",
    "policy_table",
    "read_table",
    "revoke_table",
    "support_notes",
    "ttl_table",
    "with_footnotes",
]

#: How a report heads the group columns.
COLUMN_NAMES = {
    "useCase": "use case",
    "trafficType": "traffic type",
    "experiment": "experiment",
    "arm": "arm",
    "policyVersion": "TTL policy",
    "day": "day",
}
_OUTCOME_NAMES = {
    "delivered": "delivered",
    "delivered_after_revoke": "delivered after revoke",
    "revoked": "revoked",
    "revoke_failed_undelivered": "revoke failed, undelivered",
    "pending": "pending",
    "not_rcs": "not RCS",
}
_RATE_NAMES = {
    "delivered": "delivered",
    "revoke_success": "revoke success",
    "read": "read",
    "stale": "stale delivery",
    "double_delivery": "double delivery",
    "fallback": "SMS fallback",
}


def group_name(key: Mapping[str, Any]) -> str:
    """A group as a reader names it: its values (``otp``, ``otp · ttl=1m``), a value left out
    when the next one repeats it (``otp ttl=1m``, not ``otp · otp ttl=1m``)."""
    values = [str(v) for v in key.values()]
    kept = [
        v for i, v in enumerate(values) if i + 1 == len(values) or not _repeats(v, values[i + 1])
    ]
    return " · ".join(kept) or "all messages"


def _repeats(value: str, following: str) -> bool:
    return following == value or following.startswith(f"{value} ")


def _key_columns(key: Mapping[str, Any]) -> dict[str, Any]:
    if not key:
        return {"group": "all messages"}
    return {COLUMN_NAMES.get(k, k): "" if v is None else str(v) for k, v in key.items()}


def with_footnotes(frame: pd.DataFrame, notes: h.Footnotes) -> pd.DataFrame:
    """``frame`` carrying the footnotes its ``n/e`` cells refer to."""
    frame.attrs["footnotes"] = notes.items()
    return frame


def _reasons(group: Any) -> dict[str, str]:
    from rbmtools.analysis.report import group_document, not_estimable

    return not_estimable(group, group_document(group))


def outcomes_table(analysis: Any) -> pd.DataFrame:
    """Per group: messages and the count of each outcome."""
    rows = []
    for group in analysis.groups:
        c = group.counts
        rows.append(
            {
                **_key_columns(group.key),
                "messages": h.count(c["messages"]),
                **{_OUTCOME_NAMES[o]: h.count(c[o]) for o in OUTCOMES},
            }
        )
    return pd.DataFrame(rows)


def _rate_cell(successes: int, trials: int, notes: h.Footnotes, reason: str) -> str:
    """``29.4 % (23.2 – 36.5 %)``: the rate with its Wilson 95 % interval."""
    rate, lo, hi = wilson(successes, trials)
    if rate is None:
        return notes.mark(reason)
    return f"{h.percent(rate)} ({h.percent_range(lo, hi)})"


def _share(successes: int, trials: int, notes: h.Footnotes, reason: str) -> str:
    """The rate alone: ``29.4 %``."""
    return notes.value(h.percent(successes / trials if trials else None), reason)


def _count_share(successes: int, trials: int, notes: h.Footnotes, reason: str) -> str:
    """``52 (17.3 %)``: a count and its share."""
    return f"{h.count(successes)} ({_share(successes, trials, notes, reason)})"


def _with_interval(main: str, lo: str, hi: str, notes: h.Footnotes, reason: str | None) -> str:
    """``4.6 s (3.6 – 5.4 s)``; an end of the interval that is missing is a marked ``n/e``."""
    if main == h.NOT_ESTIMABLE:
        return notes.mark(reason)
    beyond = "the interval reaches beyond where the curve stops"
    return f"{main} ({notes.value(lo, beyond)} – {notes.value(hi, beyond)})"


def revoke_table(analysis: Any) -> pd.DataFrame:
    """Per group and method: revokes tried, succeeded, the success rate with its Wilson
    interval, and revokes that succeeded but the message was delivered anyway (the race)."""
    notes = h.Footnotes()
    methods = {"all": ("", "no revokes tried"), "api": ("api_", "no API revokes tried"),
               "ttl": ("ttl_", "no TTL expiries")}  # fmt: skip
    labels = {"all": "all", "api": "API (DELETE)", "ttl": "TTL expiry"}
    rows = []
    for group in analysis.groups:
        c = group.counts
        for method, (prefix, reason) in methods.items():
            tried = c["revoke_tried"] if method == "all" else c[f"{method}_tried"]
            revoked = c["revoked"] if method == "all" else c[f"{method}_revoked"]
            raced = (
                sum(c[f"{m}_outcome_delivered_after_revoke"] for m in ("api", "ttl"))
                if method == "all"
                else c[f"{prefix}outcome_delivered_after_revoke"]
            )
            rows.append(
                {**_key_columns(group.key), "method": labels[method], "tried": h.count(tried),
                 "revoked": h.count(revoked),
                 "revoke success (95 % interval)": _rate_cell(revoked, tried, notes, reason),
                 "delivered anyway": h.count(raced)}
            )  # fmt: skip
    return with_footnotes(pd.DataFrame(rows), notes)


def latency_table(analysis: Any) -> pd.DataFrame:
    """Per group: Kaplan-Meier delivery latency quantiles with intervals, the share never
    delivered by the end of follow-up (and when that is), and how far the curve is supported."""
    notes = h.Footnotes()
    rows = []
    for group in analysis.groups:
        curve, why = group.curve, _reasons(group)
        row = {**_key_columns(group.key), "RCS messages": h.count(curve.messages),
               "delivered": h.count(curve.deliveries)}  # fmt: skip
        for p in (0.5, 0.9, 0.99):
            name = f"p{round(p * 100):d}"
            estimate, lo, hi = curve.quantile(p)
            reason = why.get(f"latency_seconds.{name}")
            row[f"{name} (95 % interval)"] = _with_interval(
                h.duration(estimate), h.duration(lo), h.duration(hi), notes, reason
            )
        share, lo, hi = curve.never_delivered
        reason = why.get("latency_seconds.never_delivered_share")
        row["never delivered (95 % interval)"] = _with_interval(
            h.percent(share), h.percent(lo), h.percent(hi), notes, reason
        )
        row["within"] = notes.value(h.duration(curve.never_delivered_at), reason)
        row["curve supported to"] = notes.value(
            h.duration(curve.supported_until), why.get("latency_seconds.supported_until_seconds")
        )
        rows.append(row)
    return with_footnotes(pd.DataFrame(rows), notes)


def read_table(analysis: Any) -> pd.DataFrame:
    """Per group: READ over delivered, with the time from delivery to READ."""
    from rbmtools.analysis.latency import weighted_quantile

    notes = h.Footnotes()
    rows = []
    for group in analysis.groups:
        c = group.counts
        delivered = c["delivered"] + c["delivered_after_revoke"]
        bins = group.aggregates.read_bins
        rows.append(
            {**_key_columns(group.key), "delivered": h.count(delivered),
             "read": h.count(c["read"]),
             "read rate (95 % interval)": _rate_cell(c["read"], delivered, notes,
                                                     "nothing delivered"),
             "median time to read": notes.value(
                 h.duration(weighted_quantile(bins, "read", 0.5)), "nothing read"),
             "p90 time to read": notes.value(
                 h.duration(weighted_quantile(bins, "read", 0.9)), "nothing read")}
        )  # fmt: skip
    return with_footnotes(pd.DataFrame(rows), notes)


def deliveries_table(analysis: Any) -> pd.DataFrame:
    """Per group: SMS fallbacks after revokes (and their share of the messages that reached
    RCS) and SMS to phones without RCS, stale deliveries (after expireTime) and double
    deliveries (after the SMS), with their share of the delivered, and the revoke race
    (revokes that succeeded, then DELIVERED anyway)."""
    notes = h.Footnotes()
    rows = []
    for group in analysis.groups:
        c = group.counts
        delivered = c["delivered"] + c["delivered_after_revoke"]
        succeeded = c["revoked"] + c["delivered_after_revoke"]
        reachable = c["messages"] - c["not_rcs"]
        rows.append(
            {**_key_columns(group.key),
             "SMS fallbacks": _count_share(c["fallbacks"] - c["not_rcs_fallbacks"], reachable,
                                           notes, "no message reached RCS"),
             "SMS, no RCS": h.count(c["not_rcs_fallbacks"]),
             "stale deliveries": _count_share(c["stale_deliveries"], delivered, notes,
                                              "nothing delivered"),
             "double deliveries": _count_share(c["double_deliveries"], delivered, notes,
                                               "nothing delivered"),
             "revoke race (95 % interval)": _rate_cell(
                 c["delivered_after_revoke"], succeeded, notes, "no revoke succeeded")}
        )  # fmt: skip
    return with_footnotes(pd.DataFrame(rows), notes)


def _ttl_note(group: Any, notes: h.Footnotes) -> str:
    choice = group.ttl
    if choice.seconds is None:
        return ""
    if choice.at_support_edge:
        return (
            f"as cheap up to the data's limit ({h.duration(choice.supported_until)}): a longer TTL "
            "may be cheaper"
        )
    if choice.at_shortest:
        return "falling back at once is as cheap as waiting"
    return ""


def ttl_table(analysis: Any) -> pd.DataFrame:
    """Per group: the best TTL under its cost policy with its bootstrap interval, the
    near-optimal range, the expected cost, the 95 % coverage TTL and where the data stops."""
    notes = h.Footnotes()
    tolerance = analysis.settings.get("tolerance", 0.005)
    near = f"within {100 * tolerance:g} % of the best cost"
    rows = []
    for group in analysis.groups:
        choice, why = group.ttl, _reasons(group)
        rows.append(
            {**_key_columns(group.key), "policy": choice.policy_name or "none",
             "best TTL": notes.value(h.duration(choice.seconds), why.get("best_ttl.seconds")),
             "95 % interval": notes.value(
                 h.duration_range(choice.lo, choice.hi), why.get("best_ttl.lo")),
             near: notes.value(
                 h.duration_range(choice.near_lo, choice.near_hi),
                 why.get("best_ttl.near_optimal")),
             "expected cost / message": notes.value(
                 h.cost(choice.expected_cost), why.get("best_ttl.expected_cost")),
             "95 % coverage TTL": notes.value(
                 h.duration(choice.coverage_seconds), why.get("best_ttl.coverage_95_seconds")),
             "data supports up to": notes.value(
                 h.duration(choice.supported_until),
                 why.get("best_ttl.supported_until_seconds")),
             "messages": h.count(group.counts["messages"]),
             "note": _ttl_note(group, notes)}
        )  # fmt: skip
    return with_footnotes(pd.DataFrame(rows), notes)


def support_notes(analysis: Any) -> list[str]:
    """For each group, how far the data supports a TTL and what that means (sentences)."""
    lines = []
    for group in analysis.groups:
        name, choice = group_name(group.key), group.ttl
        stops = choice.supported_until
        if stops is None:
            lines.append(
                f"{name}: too few messages ({h.count(group.counts['messages'])}) to draw a "
                "latency curve; no TTL can be recommended."
            )
            continue
        text = f"{name}: the data supports TTLs up to {h.duration(stops)}."
        if choice.policy is None:
            text += " No cost policy applies to this group (add one for its use case)."
        elif choice.seconds is None:
            text += f" That is under the shortest TTL considered ({h.duration(MIN_TTL_SECONDS)})."
        elif choice.at_support_edge:
            text += (
                f" Costs within {100 * choice.tolerance:g} % of the best reach that limit "
                f"({h.duration_range(choice.near_lo, choice.near_hi)}): a longer TTL may well "
                "be as cheap or cheaper. Run an arm with a longer TTL (or observe longer) "
                "before adopting it."
            )
        elif choice.at_shortest:
            text += (
                " The cheapest TTLs start at the shortest considered (10 s): under this "
                "policy, falling back at once is as cheap as waiting."
            )
        else:
            text += (
                f" The recommendation, {h.duration(choice.seconds)}, lies inside it; any TTL "
                f"from {h.duration_range(choice.near_lo, choice.near_hi)} costs within "
                f"{100 * choice.tolerance:g} % of it."
            )
        lines.append(text)
    return lines


def comparisons_table(analysis: Any, rates: Iterable[str] | None = None) -> pd.DataFrame:
    """Each arm against the reference arm (the spec's first): the rates (all but the read
    rate, unless ``rates`` names them), their difference in percentage points with its
    Newcombe 95 % interval, and whether it is significant."""
    frame = analysis.comparisons
    if not len(frame):
        return pd.DataFrame()
    wanted = list(rates) if rates is not None else [r for r in _RATE_NAMES if r != "read"]
    strata = [c for c in analysis.by if c != "arm"]
    notes = h.Footnotes()
    rows = []
    for record in frame.to_dict("records"):
        if record["rate"] not in wanted:
            continue
        reason = None
        if not h.estimable(record["difference"]):
            empty = [str(record[k]) for k in ("arm", "reference") if not record[f"{_n(k)}"]]
            reason = f"no {_DENOMINATORS[record['rate']]} in {' nor '.join(empty)}"
        significant = record.get("significant")
        rows.append(
            {**{COLUMN_NAMES.get(c, c): str(record[c]) for c in strata},
             "arm": str(record["arm"]), "against": str(record["reference"]),
             "rate": _RATE_NAMES[record["rate"]],
             "arm rate": notes.value(h.percent(record["arm_rate"]), reason),
             "reference rate": notes.value(h.percent(record["reference_rate"]), reason),
             "difference": notes.value(h.percentage_points(record["difference_pp"]), reason),
             "95 % interval": notes.value(
                 _pp_range(record["lo_pp"], record["hi_pp"]), reason),
             "significant": notes.mark(reason) if reason else ("yes" if significant else "no")}
        )  # fmt: skip
    return with_footnotes(pd.DataFrame(rows), notes)


#: What each compared rate is a share of (``metrics.RATES``), for a footnote when it is none.
_DENOMINATORS = {
    "delivered": "message that reached RCS",
    "revoke_success": "revoke tried",
    "read": "delivered message",
    "stale": "delivered message",
    "double_delivery": "delivered message",
    "fallback": "message that reached RCS",
}


def _n(side: str) -> str:
    return "arm_n" if side == "arm" else "reference_n"


def _pp_range(lo: Any, hi: Any) -> str:
    if not (h.estimable(lo) and h.estimable(hi)):
        return h.NOT_ESTIMABLE
    return f"{h.percentage_points(lo)} – {h.percentage_points(hi)}"


def daily_table(analysis: Any) -> pd.DataFrame:
    """Per UTC day of the send (and group): messages, delivered share, revoke success,
    reads, fallbacks, stale and double deliveries (needs ``build_analysis(daily=True)``)."""
    daily = analysis.daily
    if daily is None or not len(daily.groups):
        return pd.DataFrame()
    notes = h.Footnotes()
    rows = []
    for group in daily:
        c = group.counts
        reachable = c["messages"] - c["not_rcs"]
        delivered = c["delivered"] + c["delivered_after_revoke"]
        rows.append(
            {**_key_columns(group.key), "messages": h.count(c["messages"]),
             "delivered": _share(delivered, reachable, notes, "no message reached RCS"),
             "revoke success": _share(c["revoked"], c["revoke_tried"], notes,
                                      "no revokes tried"),
             "read": _share(c["read"], delivered, notes, "nothing delivered"),
             "SMS fallbacks": h.count(c["fallbacks"] - c["not_rcs_fallbacks"]),
             "SMS, no RCS": h.count(c["not_rcs_fallbacks"]),
             "stale": h.count(c["stale_deliveries"]),
             "double": h.count(c["double_deliveries"])}
        )  # fmt: skip
    frame = pd.DataFrame(rows)
    order = [COLUMN_NAMES.get(c, c) for c in ("day", *(c for c in daily.by if c != "day"))]
    frame = frame.sort_values(order, kind="stable").reset_index(drop=True)
    return with_footnotes(frame[order + [c for c in frame.columns if c not in order]], notes)


_LOAD_NAMES = {
    "files": "event files",
    "lines": "event lines",
    "events": "distinct events",
    "duplicates": "duplicate copies",
    "malformed": "malformed event lines",
    "outbox_files": "outbox files",
    "outbox_records": "outbox records",
    "outbox_malformed": "malformed outbox lines",
    "messages": "messages sent",
    "unverified": "unverified events",
    "other_events": "other events (replies, typing, subscriptions)",
    "unknown_message_events": "events about unknown messages",
    "unknown_messages": "unknown messages",
    "failed_sends": "sends that failed",
    "outbox_without_send": "outbox records without a send",
    "span_start": "first record",
    "span_end": "last record",
    "seconds": "read in",
}


def load_table(report: Any, window: Any = None) -> pd.DataFrame:
    """What one load read, in words, and the window it kept (if any)."""
    rows = []
    for key, value in report.to_dict().items():
        if key == "seconds":
            text = f"{value:.2f} s"
        elif isinstance(value, int) and not isinstance(value, bool):
            text = h.count(value)
        elif isinstance(value, Mapping):  # problems -> lines: "unreadable time: 3; ..."
            text = "; ".join(f"{name}: {h.count(n)}" for name, n in value.items()) or "none"
        elif isinstance(value, list | tuple):  # unreadable files
            text = ", ".join(str(item) for item in value) or "none"
        else:
            text = "none" if value is None else str(value)
        rows.append({"what": _LOAD_NAMES.get(key, key.replace("_", " ")), "value": text})
    if window is not None:
        rows.append({"what": "window", "value": window.label()})
        if not window.is_open:
            rows.append(
                {
                    "what": "note",
                    "value": "outbox records and messages are those sent in the window; "
                    "events about messages sent outside it count as events about unknown "
                    "messages",
                }
            )
    return pd.DataFrame(rows)


def policy_table(policies: Mapping[str, Any], use_cases: Iterable[str] | None = None):
    """The cost policies (one row per use case; only ``use_cases`` if given)."""
    wanted = None if use_cases is None else set(use_cases)
    rows = []
    for name, policy in policies.items():
        if wanted is not None and name not in wanted:
            continue
        rows.append(
            {"use case": name, "RCS cost": f"{policy.rcs_cost:g}",
             "SMS cost": f"{policy.sms_cost:g}", "SMS latency": h.duration(policy.sms_latency),
             "wait cost / hour": f"{policy.wait_cost_per_hour:g}",
             "deadline": h.duration(policy.deadline), "stale cost": f"{policy.stale_cost:g}",
             "duplicate cost": f"{policy.duplicate_cost:g}",
             "SMS fallback": "yes" if policy.fallback else "no",
             "lost cost": f"{policy.lost_cost:g}"}
        )  # fmt: skip
    return pd.DataFrame(rows)
