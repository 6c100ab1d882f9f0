"""What the experiment notebook needs around ``rbmtools.run_experiment``.

The spec comes inline (a mapping, the YAML form as papermill parameters) or from a file, with
an optional new name so that one parameter gives each scheduled run its own folder; the SMS
provider is named ``package.module:function`` as on the command line; and the finished run is
analysed per arm with the analysis's statistics and cost policies.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from rbmtools.errors import ValidationError
from rbmtools.notebook.paths import find_path

__all__ = ["experiment_analysis", "experiment_decision", "experiment_spec", "sms_sender"]


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
    if unique:
        return loaded.replace(name=f"{loaded.name}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
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
    """The analysis (``rbmtools.analysis.build_analysis``) of a finished run's logs."""
    from rbmtools.analysis import build_analysis

    with result.dataset() as data:
        return build_analysis(
            data, by, policies, bootstrap=bootstrap, min_at_risk=min_at_risk, seed=seed
        )


def experiment_decision(source: Any) -> None:
    """Decision first: per use case Ready, Keep running, Inconclusive or Not enough data, read
    with always-valid intervals (true whenever the run is looked at, finished or not), then
    every arm's raw counts and rates, and the sample-ratio check (flagged in bold when it
    fails). ``source`` is a run's result, its folder, or its ``ExperimentStatus``."""
    from IPython.display import display

    from rbmtools.experiment.status import ExperimentStatus, experiment_status
    from rbmtools.notebook.display import markdown

    if isinstance(source, ExperimentStatus):
        status = source
    elif hasattr(source, "status_report"):
        status = source.status_report()
    else:
        status = experiment_status(find_path(source))
    display(markdown(status.text().splitlines()[0]))
    if status.look is None:
        display(markdown("No message has been sent yet."))
    for use_case in status.decisions():
        display(markdown(f"**{status.headline(use_case)}**"))
        display(status.readable(use_case))
    check = status.sample_ratio.text()
    display(markdown(f"**{check}**" if status.sample_ratio.flagged else check))
    if status.state != "finished":
        display(
            markdown(
                "*The run has not ended: read the decision above. The fixed 95 % intervals "
                "further down (Wilson, Newcombe) hold only at a size fixed in advance, not at "
                "whatever moment an experiment is looked at.*"
            )
        )
