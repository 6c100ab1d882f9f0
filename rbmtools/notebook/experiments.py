"""What the experiment notebook needs around ``rbmtools.run_experiment``.

The spec comes inline (a mapping, the YAML form as papermill parameters) or from a file, with
an optional new name so that one parameter gives each scheduled run its own folder; the SMS
provider is named ``package.module:function`` as on the command line; and the finished run is
analysed per arm with the analysis's statistics and cost policies, its arms compared with the
spec's first arm, and summed up in a table for people (``run_table``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path

__all__ = [
    "decision_html",
    "experiment_analysis",
    "experiment_decision",
    "experiment_spec",
    "run_table",
    "sms_sender",
]


def experiment_spec(
    spec: Mapping[str, Any] | None = None,
    spec_file: str | os.PathLike[str] | None = None,
    name: str | None = None,
    *,
    unique: bool = False,
) -> Any:
    """The ``ExperimentSpec`` of ``spec_file`` if given (a relative phone list is read next to
    it), else of the inline ``spec`` mapping. ``name`` renames it; without one, ``unique``
    appends the UTC time to the spec's name, so each run gets its own folder (a resume needs
    the run's exact name)."""
    from rbmtools.experiment import ExperimentSpec, load_spec

    if spec_file is not None:
        loaded = load_spec(find_path(spec_file))
    elif spec is not None:
        if not isinstance(spec, Mapping):
            raise ValidationError("spec", spec, "must be a mapping (the spec's YAML form)")
        loaded = ExperimentSpec.from_dict(spec)
    else:
        raise ValidationError("spec", None, "give an inline spec or a spec_file")
    if name:
        return loaded.replace(name=name)
    if unique:  # the time, and a random tag so two runs started together never share a folder
        tag = secrets.token_hex(2)
        return loaded.replace(name=f"{loaded.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{tag}")
    return loaded


def sms_sender(target: str | None) -> Any:
    """The SMS sender named ``package.module:name`` (None: none; the emulator has its own)."""
    if target is None:
        return None
    from rbmtools.experiment import load_sms_sender

    return load_sms_sender(target)


def experiment_analysis(
    result: Any,
    by: str | Iterable[str] = ("arm",),
    policies: Mapping[str, Any] | None = None,
    *,
    bootstrap: int = 200,
    min_at_risk: int = 30,
    seed: int = 0,
) -> Any:
    """The analysis (``rbmtools.analysis.build_analysis``) of a finished run's logs, its arms
    compared with the spec's first arm (the arms in the spec's order)."""
    from rbmtools.analysis import build_analysis

    arms = [arm.name for arm in result.spec.arms]
    with result.dataset() as data:
        return build_analysis(
            data, by, policies, bootstrap=bootstrap, min_at_risk=min_at_risk, seed=seed,
            reference=arms,
        )  # fmt: skip


def run_table(result: Any) -> Any:
    """What the run did, for people: its status, where its logs are, the messages sent,
    revoked and fallen back, the platform time it covered and the real time it took."""
    import pandas as pd

    from rbmtools.analysis import humanize as h

    stats = result.stats
    rows = [
        ("experiment", result.spec.name),
        (
            "status",
            result.status + (f" ({stats.stop_reason})" if stats and stats.stop_reason else ""),
        ),
        ("target", result.target),
        ("run folder", str(result.run_dir)),
        ("outbox", str(result.outbox)),
        ("events", str(result.events)),
    ]
    if stats is not None:
        span = None
        if stats.platform_start is not None and stats.platform_end is not None:
            span = (stats.platform_end - stats.platform_start).total_seconds()
        rows += [
            ("messages planned", h.count(stats.messages)),
            ("sent", f"{h.count(stats.sends)} ({h.count(stats.send_calls)} calls)"),
            ("revoked by API", f"{h.count(stats.revokes)} ({h.count(stats.revoke_calls)} calls)"),
            ("SMS fallbacks", h.count(stats.fallbacks)),
            ("SMS fallbacks that failed", h.count(stats.fallback_failures)),
            ("delivered after the SMS", h.count(stats.late_deliveries)),
            ("platform time covered", h.duration(span)),
            ("real time taken", h.duration(stats.wall_seconds)),
        ]  # fmt: skip
        rows += [
            (f"outcome: {name.replace('_', ' ')}", h.count(count))
            for name, count in sorted(stats.outcomes.items())
        ]
    return pd.DataFrame(rows, columns=["what", "value"])


def experiment_decision(source: Any, analysis: Any = None) -> Any:
    """Decision first, in the reports' headline design: per use case Ready, Keep running,
    Inconclusive or Not enough data, read with always-valid intervals (true whenever the run is
    looked at, finished or not), then one row per arm with its raw counts and intervals under
    every rate, and the sample-ratio check (a warning when it fails). ``source`` is a run's
    result, its folder, or its ``ExperimentStatus``; with the run's ``analysis`` grouped by
    arm, each arm keeps the colour it has there."""
    from IPython.display import HTML

    from rbmtools.analysis.style import css
    from rbmtools.experiment.status import ExperimentStatus, experiment_status

    if isinstance(source, ExperimentStatus):
        status = source
    elif hasattr(source, "status_report"):
        status = source.status_report()
    else:
        status = experiment_status(find_path(source))
    return HTML(f"<style>{css()}</style>{decision_html(status, analysis)}")


def decision_html(status: Any, analysis: Any = None) -> str:
    """The decision blocks of ``experiment_decision`` as HTML (one per use case)."""
    from rbmtools.analysis import humanize as h
    from rbmtools.analysis.page import headline_block_html
    from rbmtools.analysis.plots import PALETTE, group_colours

    colours = {arm.name: PALETTE[i % len(PALETTE)] for i, arm in enumerate(status.spec.arms)}
    if analysis is not None and "arm" in analysis.by:
        for group, colour in zip(analysis.groups, group_colours(analysis), strict=True):
            colours[group.key["arm"]] = colour
    source = "the runner's last look" if status.recorded else "looked at now, from the logs"
    context = [
        ("experiment:", status.spec.name),
        ("state:", status.state),
        ("sent:", f"{h.count(status.sent)} of at most {h.count(status.max_messages)}"),
        ("looks:", f"{h.count(status.looks)} recorded; {source}"),
    ]
    alerts = status.alerts()
    columns = ["status", "messages", "delivered by its duration", "SMS", "cost per message",
               "more per 1,000 than the best"]  # fmt: skip
    blocks = []
    for use_case in status.decisions():
        rows = [
            {"name": row["arm"], "colour": colours.get(row["arm"], PALETTE[0]),
             "cells": _decision_cells(row)}
            for row in status.table(use_case).to_dict("records")
        ]  # fmt: skip
        lead = [status.headline(use_case)]
        blocks.append(
            headline_block_html(
                [*context, ("use case:", use_case)],
                "arm",
                columns,
                rows,
                lead=lead,
                alerts=alerts,
                notes=[("", status.sample_ratio.text())],
            )
        )
    for line in status.headlines()[len(blocks) :]:  # use cases without a cost policy
        blocks.append(headline_block_html(context, "arm", [], [], lead=[line]))
    if not blocks:
        blocks.append(headline_block_html(context, "arm", [], [], empty="Nothing sent yet."))
    return "".join(blocks)


def _decision_cells(row: Mapping[str, Any]) -> list[dict[str, str]]:
    from rbmtools.analysis import humanize as h
    from rbmtools.experiment.status import cost_detail, share_detail

    extra = row["extra_per_1000"]
    return [
        {"v": row["status"], "s": ""},
        {"v": h.count(row["messages"]), "s": f"{h.count(row['settled'])} settled"},
        {"v": h.percent(row["delivered_share"]), "s": share_detail(row)},
        {"v": h.count(row["sms"]), "s": ""},
        {"v": h.cost(row["cost"]), "s": cost_detail(row)},
        {"v": f"{extra:+.2f}" if h.estimable(extra) else "", "s": ""},
    ]
