"""The figures of a report: one colour per group in every figure, human time ticks starting
where the data starts, cost curves as one panel per group, legends that name a group once,
and no trend drawn from a single day."""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import pytest

from rbmtools.analysis import Window, build_analysis, load, plots

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample"


@pytest.fixture(scope="module")
def analysis():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return build_analysis(data, "useCase", bootstrap=20, daily=True)


def _hex(colour) -> str:
    return mcolors.to_hex(colour)


def test_one_colour_per_group_in_every_figure(analysis):
    colours = dict(zip([g.key["useCase"] for g in analysis.groups],
                       plots.group_colours(analysis), strict=True))  # fmt: skip
    assert len(set(colours.values())) == len(colours)
    latency = plots.latency_curves(analysis).axes[0]
    drawn = {line.get_label(): _hex(line.get_color()) for line in latency.get_lines()}
    assert drawn == {name: colour.lower() for name, colour in colours.items()}
    cost = plots.ttl_cost_curves(analysis)
    for ax in cost.axes:
        name = ax.get_title().split("\n")[0]
        assert _hex(ax.get_lines()[0].get_color()) == colours[name].lower()
    trend = plots.daily_trend(analysis)
    lines = {line.get_label(): _hex(line.get_color()) for line in trend.axes[0].get_lines()}
    assert lines == {name: colour.lower() for name, colour in colours.items()}


def test_time_axes_read_like_durations_and_start_where_the_data_does(analysis):
    ax = plots.latency_curves(analysis).axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels and all(label.endswith((" s", " min", " h", " d")) for label in labels)
    assert "×" not in "".join(labels) and "10^" not in "".join(labels)
    first = min(g.curve.times[g.curve.times > 0][0] for g in analysis.groups)
    low, high = ax.get_xlim()
    assert first / 1.5 < low <= first  # not 10⁻³ s when the data starts at a fraction of a second
    assert high >= max(g.curve.times[-1] for g in analysis.groups)


def test_cost_curves_are_small_multiples_with_optimum_interval_and_limit(analysis):
    figure = plots.ttl_cost_curves(analysis)
    panels = [ax for ax in figure.axes if ax.get_visible()]
    assert len(panels) == len(analysis.groups)
    for ax, group in zip(panels, analysis.groups, strict=True):
        choice = group.ttl
        assert ax.get_title().startswith(f"{group.key['useCase']}\nbest")
        limit = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
        assert limit and limit[0].get_xdata()[0] == pytest.approx(choice.stops_at)
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert all(label.endswith((" s", " min", " h", " d")) for label in labels if label)
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert len(legend) == len(set(legend)) == 3  # optimum, near-optimal band, data limit


def test_legends_name_each_group_once_by_its_value(analysis):
    ax = plots.latency_curves(analysis).axes[0]
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == [g.key["useCase"] for g in analysis.groups]  # not useCase=otp (otp)
    assert ax.get_legend().get_title().get_text() == "use case"


def test_no_trend_from_one_day_and_no_cost_panel_without_a_curve():
    window = Window.parse("2026-11-24", "2026-11-25")
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl", sent=window) as data:
        one_day = build_analysis(data, "useCase", bootstrap=0, daily=True)
        by_arm = build_analysis(data, "arm", bootstrap=0)
    assert plots.daily_trend(one_day) is None
    assert plots.trend_sentence(one_day) == (
        "All messages were sent on one day (2026-11-24): a trend needs at least two days."
    )
    assert "Daily trend" not in plots.all_figures(one_day)
    assert all(g.ttl.seconds is None for g in by_arm.groups)  # no use case, no policy
    assert plots.ttl_cost_curves(by_arm) is None
