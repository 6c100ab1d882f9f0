"""The sample-ratio check against a chi-square computed by hand."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2

from rbmtools.analysis.sample_ratio import sample_ratio_check
from rbmtools.errors import ValidationError


def test_counts_as_allocated_pass_and_a_lost_share_is_flagged():
    fine = sample_ratio_check({"a": 1010, "b": 990}, {"a": 0.5, "b": 0.5})
    statistic = (1010 - 1000) ** 2 / 1000 + (990 - 1000) ** 2 / 1000
    assert fine.p_value == pytest.approx(chi2.sf(statistic, 1))
    assert not fine.flagged and "as allocated" in fine.text()
    lost = sample_ratio_check({"a": 1100, "b": 900, "c": 1000}, {"a": 1, "b": 1, "c": 1})
    statistic = (100**2 + 100**2 + 0) / 1000
    assert lost.p_value == pytest.approx(chi2.sf(statistic, 2))
    assert lost.flagged and "MISMATCH" in lost.text()
    assert lost.expected == {"a": 1000.0, "b": 1000.0, "c": 1000.0}


def test_unequal_allocations_are_expected_as_given():
    # an arm dropped halfway got a third of the traffic before and none after
    check = sample_ratio_check({"kept": 750, "dropped": 250}, {"kept": 750.0, "dropped": 250.0})
    assert check.p_value == pytest.approx(1.0) and not check.flagged
    surprise = sample_ratio_check({"kept": 900, "dropped": 100}, {"kept": 1000, "dropped": 0})
    assert surprise.flagged and surprise.p_value == 0.0


def test_too_little_to_check_and_bad_input():
    nothing = sample_ratio_check({"a": 0, "b": 0}, {"a": 1, "b": 1})
    assert nothing.p_value is None and not nothing.flagged and "not checked" in nothing.text()
    assert sample_ratio_check({"a": 5}, {"a": 1}).p_value is None
    with pytest.raises(ValidationError, match="arms"):
        sample_ratio_check({"a": 5, "b": 1}, {"a": 1})
    assert math.isclose(sample_ratio_check({"a": 3, "b": 3}, {"a": 2, "b": 2}).p_value, 1.0)
