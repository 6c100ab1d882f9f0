"""What the notebooks show of TTL policies: whether the active one still holds, and a proposal.

The scheduled report checks the TTL policy in use (``check_policy``) and opens with a line per
use case for which it no longer holds (``drift_markdown``), with the details in
``drift_table``. The TTL-tuning notebook writes its recommendations as a TTL policy file for
review (``write_ttl_policy``, as ``rbmtools policy write`` does). The work is done by
``rbmtools.analysis.ttl_policy``; here it is only shown.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from rbmtools.errors import ValidationError
from rbmtools.notebook.display import human_seconds

__all__ = ["check_policy", "drift_markdown", "drift_table", "write_ttl_policy"]


def check_policy(analysis: Any, active_policy: str | os.PathLike[str] | None, dataset: Any) -> Any:
    """Judge the active TTL policy against ``analysis`` (None: no policy, nothing to do)."""
    if active_policy is None:
        return analysis
    from rbmtools.analysis.ttl_policy import check_ttl_policy
    from rbmtools.notebook.paths import find_path

    return check_ttl_policy(analysis, find_path(active_policy), dataset)


def drift_markdown(analysis: Any) -> str:
    """One line per use case whose TTL policy no longer holds, or that it holds for all."""
    from rbmtools.analysis.ttl_policy import drift_headline

    entries = analysis.drift
    if entries is None:
        return ""
    drifted = [f"**{drift_headline(e)}.**" for e in entries if e["drift"]]
    if drifted:
        return "  \n".join(drifted)
    if not entries:
        return "The active TTL policy covers none of these use cases."
    version = entries[0]["policy_version"]
    return f"TTL policy {version} holds for every use case it covers in this window."


def drift_table(analysis: Any) -> pd.DataFrame:
    """Per use case: the policy's TTL against the best TTL and its interval, the saving per
    1,000 messages of switching, and whether the policy drifted."""
    rows = []
    for entry in analysis.drift or ():
        interval = "n/e"
        if entry["lo"] is not None:
            interval = f"{human_seconds(entry['lo'])} .. {human_seconds(entry['hi'])}"
        saving = entry["saving_per_1000"]
        rows.append(
            {
                "useCase": entry["useCase"],
                "policy": f"{entry['policy_version']}: {entry['method']} "
                f"{human_seconds(entry['policy_seconds'])}",
                "best TTL": human_seconds(entry["best_seconds"]),
                "95% interval": interval,
                "saving / 1,000 messages": None if saving is None else round(saving, 2),
                "outside interval": entry["outside_interval"],
                "drift": entry["drift"],
                "note": entry["note"],
            }
        )
    return pd.DataFrame(rows)


def write_ttl_policy(
    analysis: Any,
    path: str | os.PathLike[str] | None,
    dataset: Any,
    *,
    overwrite: bool = False,
) -> pd.DataFrame:
    """Write the analysis's recommendations as a TTL policy file (None: write nothing) and
    return its rules as a table. An existing file is refused unless ``overwrite``; replacing
    a policy continues its version and keeps what was reviewed in it."""
    if path is None:
        return pd.DataFrame()
    from pathlib import Path

    from rbmtools.analysis.ttl_policy import traffic_types, ttl_policy_from_analysis
    from rbmtools.wire.ttl_policy import TtlPolicy

    target = Path(path)
    if target.exists() and not overwrite:
        raise ValidationError(
            "ttl_policy_out", os.fspath(path), "exists; set overwrite_policy = True to replace it"
        )
    previous = TtlPolicy.load(target) if target.exists() else None
    proposal = ttl_policy_from_analysis(
        analysis, traffic_types=traffic_types(dataset), previous=previous
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    proposal.policy.save(target)
    rows = [
        {
            "useCase": use_case,
            "method": rule.method.value,
            "duration": human_seconds(rule.seconds),
            "traffic type": rule.traffic_type,
            "fallback": str(rule.fallback),
            "note": proposal.skipped.get(use_case, ""),
        }
        for use_case, rule in proposal.policy.use_cases.items()
    ]
    frame = pd.DataFrame(rows)
    frame.attrs["version"] = proposal.policy.version
    return frame
