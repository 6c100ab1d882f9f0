"""Sample-ratio mismatch: did the arms get the share of recipients the allocation gave them?

When the assignment counts of an experiment's arms drift from what its allocation planned, an
arm has been losing (or gaining) recipients for a reason of its own — sends refused for one
template, a log that lost lines, a bug in the split — and every comparison between the arms is
suspect. The check is Pearson's chi-square test of the observed counts against the expected
ones (scipy), flagged below a p-value of 0.001, the threshold experimentation platforms use so
that a healthy experiment looked at many times is rarely flagged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scipy.stats import chisquare

from rbmtools.errors import ValidationError

__all__ = ["SRM_THRESHOLD", "SampleRatioCheck", "sample_ratio_check"]

#: The p-value below which a sample-ratio mismatch is flagged.
SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SampleRatioCheck:
    """Observed and expected assignment counts per arm, the chi-square p-value (None with
    fewer than two arms or no assignments) and whether the mismatch is flagged."""

    observed: dict[str, int]
    expected: dict[str, float]
    p_value: float | None
    flagged: bool
    threshold: float = SRM_THRESHOLD

    def to_dict(self) -> dict:
        return {
            "observed": self.observed,
            "expected": self.expected,
            "p_value": self.p_value,
            "flagged": self.flagged,
            "threshold": self.threshold,
        }

    def text(self) -> str:
        if self.p_value is None:
            return "sample ratio: not checked (fewer than two arms with recipients)"
        counts = ", ".join(
            f"{arm} {self.observed[arm]:,} (expected {self.expected[arm]:,.0f})"
            for arm in self.observed
        )
        verdict = "MISMATCH" if self.flagged else "as allocated"
        return f"sample ratio: {verdict} (chi-square p = {self.p_value:.3g}): {counts}"


def sample_ratio_check(
    observed: Mapping[str, int], expected: Mapping[str, float], threshold: float = SRM_THRESHOLD
) -> SampleRatioCheck:
    """Compare ``observed`` assignment counts with ``expected`` ones (the same arms; the
    expected counts are rescaled to the observed total, so shares will do)."""
    if set(observed) != set(expected):
        raise ValidationError(
            "expected", sorted(expected), f"must name the arms {sorted(observed)}"
        )
    arms = [arm for arm in observed if expected[arm] > 0 or observed[arm] > 0]
    total = sum(observed[arm] for arm in arms)
    weight = sum(expected[arm] for arm in arms)
    if len(arms) < 2 or total == 0 or weight <= 0:
        scaled = {arm: float(expected[arm]) for arm in observed}
        return SampleRatioCheck(dict(observed), scaled, None, False, threshold)
    scaled = {arm: total * expected[arm] / weight for arm in observed}
    if any(scaled[arm] == 0 for arm in arms):  # recipients where none were expected
        return SampleRatioCheck(dict(observed), scaled, 0.0, True, threshold)
    result = chisquare([observed[arm] for arm in arms], [scaled[arm] for arm in arms])
    p_value = float(result.pvalue)
    return SampleRatioCheck(dict(observed), scaled, p_value, p_value < threshold, threshold)
