"""The report tables and texts, checked against the analysis they come from: humanised,
footnoted where not estimable, no raw floats; and the notebook's own helpers."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pandas as pd
import pytest
from notebook_helpers import SAMPLE

from rbmtools.analysis import DEFAULT_POLICIES, build_analysis, load, plots
from rbmtools.analysis import humanize as h
from rbmtools.errors import NothingToReport, ValidationError
from rbmtools.notebook import (
    Window,
    changes,
    compare_windows,
    comparisons_table,
    cost_policies,
    daily_table,
    deliveries_table,
    detail_links,
    human_seconds,
    latency_table,
    load_table,
    load_window,
    outcomes_table,
    policy_table,
    read_table,
    require_messages,
    revoke_table,
    save_table,
    support_caveats,
    ttl_recommendations,
    ttl_table,
)

RAW_FLOAT = re.compile(r"\d\.\d{5,}|e-\d\d")  # 198.152703, 8.673617e-19 (costs have 4)


@pytest.fixture(scope="module")
def analysis():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return build_analysis(data, "useCase", bootstrap=20, daily=True)


TABLES = [outcomes_table, revoke_table, latency_table, read_table, deliveries_table, ttl_table,
          daily_table]  # fmt: skip


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.__name__)
def test_tables_are_text_for_people_with_every_n_e_explained(analysis, table):
    frame = table(analysis)
    assert len(frame) and frame.index.equals(pd.RangeIndex(len(frame)))
    cells = [str(v) for v in frame.to_numpy().ravel()]
    assert not [c for c in cells if RAW_FLOAT.search(c)], table.__name__
    notes = dict(frame.attrs.get("footnotes", []))
    for cell in cells:
        for marked in re.findall(r"n/e([⁰¹²³⁴⁵⁶⁷⁸⁹]+)", cell):
            assert notes.get(marked), (table.__name__, cell)
    assert "n/e" not in cells  # every n/e carries its footnote number


def test_outcomes_and_revoke_tables_match_the_counts(analysis):
    outcomes = outcomes_table(analysis)
    assert list(outcomes["use case"]) == [g.key["useCase"] for g in analysis.groups]
    for group, (_, row) in zip(analysis.groups, outcomes.iterrows(), strict=True):
        assert row["messages"] == h.count(group.counts["messages"])
        assert row["revoked"] == h.count(group.counts["revoked"])
    revokes = revoke_table(analysis)
    promo_api = revokes[(revokes["use case"] == "promo") & (revokes.method == "API (DELETE)")]
    assert promo_api.iloc[0]["tried"] == "0"
    assert promo_api.iloc[0]["revoke success (95 % interval)"].startswith("n/e")
    note = dict(revokes.attrs["footnotes"])[promo_api.iloc[0]["revoke success (95 % interval)"][3:]]
    assert note == "no API revokes tried"


def test_latency_table_says_never_delivered_within_the_follow_up(analysis):
    table = latency_table(analysis).set_index("use case")
    for group in analysis.groups:
        row = table.loc[group.key["useCase"]]
        share, lo, hi = group.curve.never_delivered
        assert row["never delivered (95 % interval)"] == (
            f"{h.percent(share)} ({h.percent(lo)} – {h.percent(hi)})"
        )
        assert row["within"] == h.duration(group.curve.never_delivered_at)


def test_ttl_table_recommendations_and_caveats(analysis):
    table = ttl_table(analysis)
    csv = ttl_recommendations(analysis)
    for group, (_, row), (_, raw) in zip(
        analysis.groups, table.iterrows(), csv.iterrows(), strict=True
    ):
        choice = group.ttl
        assert row["best TTL"] == human_seconds(choice.seconds)
        assert row["within 0.5 % of the best cost"] == h.duration_range(
            choice.near_lo, choice.near_hi
        )
        assert raw["best_ttl_seconds"] == choice.seconds
        assert raw["at_support_edge"] == choice.at_support_edge
        assert choice.lo <= choice.seconds <= choice.hi
    promo = table[table["use case"] == "promo"].iloc[0]
    assert promo["note"].startswith("as cheap up to the data's limit")
    text = support_caveats(analysis)
    assert "fewer than 30 messages remain undelivered" in text
    assert text.count("\n- ") == len(analysis.groups)
    for group in analysis.groups:
        assert f"up to {human_seconds(group.ttl.supported_until)}" in text
    assert "a longer TTL may well be as cheap or cheaper" in text


def test_cost_policies_layer_file_then_overrides(tmp_path):
    path = tmp_path / "policies.yaml"
    path.write_text("otp:\n  sms_cost: 0.09\nbanking:\n  rcs_cost: 0.02\n  sms_cost: 0.05\n"
                    "  sms_latency: 5s\n  wait_cost_per_hour: 4\n  deadline: 3m\n"
                    "  stale_cost: 0.2\n  duplicate_cost: 0\n  fallback: true\n")  # fmt: skip
    resolved = cost_policies({"otp": {"deadline": "2m"}}, path)
    assert resolved["otp"].sms_cost == 0.09 and resolved["otp"].deadline == 120
    assert resolved["otp"].rcs_cost == DEFAULT_POLICIES["otp"].rcs_cost
    assert resolved["banking"].deadline == 180
    assert cost_policies() == DEFAULT_POLICIES
    # papermill -p passes a mapping as its JSON text
    assert cost_policies('{"otp": {"sms_cost": 0.07}}')["otp"].sms_cost == 0.07
    table = policy_table(resolved, ["otp", "banking"])
    assert list(table["use case"]) == ["otp", "banking"]
    assert table.set_index("use case").loc["banking", "deadline"] == "3 min"
    with pytest.raises(ValidationError, match="must map a use case"):
        cost_policies(["otp"])
    with pytest.raises(ValidationError, match="not a policy field"):
        cost_policies({"otp": {"sms_costs": 1}})


def test_daily_table_and_load_table(analysis):
    daily = daily_table(analysis)
    assert sorted(set(daily["day"])) == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"]
    assert sum(int(v.replace(",", "")) for v in daily["messages"]) == 1620
    window = Window.parse("2026-11-25", None)
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", window) as data:
        table = load_table(data)
        messages = data.report.messages
    values = dict(zip(table["what"], table["value"], strict=True))
    assert values["messages sent"] == h.count(messages) and 0 < messages < 1620
    assert values["events about unknown messages"] != "0"
    assert "unknown messages" in values["note"]
    assert values["window"].startswith("messages sent from 2026-11-25")


def _windowed(start, end):
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", Window.parse(start, end)) as d:
        return build_analysis(d, "useCase", bootstrap=0)


def test_changes_between_two_real_windows_and_an_empty_one():
    now, before = _windowed("2026-11-25", "2026-11-26"), _windowed("2026-11-24", "2026-11-25")
    table = compare_windows(now, before)
    assert set(table["measure"]) >= {"messages", "delivered rate", "revoke success rate",
                                     "p50 latency"}  # fmt: skip
    otp = table[(table.group == "otp") & (table.measure == "messages")].iloc[0]
    counts = {g.key["useCase"]: g.counts["messages"] for g in before.groups}
    assert otp["previous"] == h.count(counts["otp"])
    assert "stale rate" not in set(table["measure"])  # 0 % in both windows: left out
    assert "left out" in table.attrs["footnotes"][0][1]
    empty = _windowed("2020-01-01", "2020-01-02")
    sentence = changes(now, empty)
    assert "holds no messages: nothing to compare" in sentence.data
    assert "2020-01-01" in sentence.data
    assert isinstance(changes(now, before), pd.DataFrame)


def test_a_change_is_significant_only_when_its_interval_excludes_zero():
    def window(delivered, messages):
        counts = {"messages": messages, "not_rcs": 0, "delivered": delivered,
                  "delivered_after_revoke": 0, "revoked": 0, "revoke_tried": 0, "read": 0,
                  "stale_deliveries": 0, "double_deliveries": 0, "fallbacks": 0,
                  "not_rcs_fallbacks": 0}  # fmt: skip
        curve = SimpleNamespace(quantile=lambda p: (None, None, None))
        group = SimpleNamespace(key={"useCase": "otp"}, counts=counts, curve=curve,
                                ttl=SimpleNamespace(seconds=None))  # fmt: skip
        return SimpleNamespace(groups=[group])

    big = compare_windows(window(900, 1000), window(700, 1000))
    row = big[big.measure == "delivered rate"].iloc[0]
    assert row["significant"] == "up" and row["change"] == "+20.0 pp"
    small = compare_windows(window(71, 100), window(70, 100))
    assert small[small.measure == "delivered rate"].iloc[0]["significant"] == "no"
    down = compare_windows(window(500, 1000), window(700, 1000))
    assert down[down.measure == "delivered rate"].iloc[0]["significant"] == "down"


def test_nothing_to_report_unless_allowed():
    empty = _windowed("2020-01-01", "2020-01-02")
    with pytest.raises(NothingToReport, match="no messages in the window") as caught:
        require_messages(empty)
    assert "2020-01-01" in str(caught.value) and "allow_empty" in str(caught.value)
    assert require_messages(empty, allow_empty=True) is empty
    few = _windowed("2026-11-26T07:40:00Z", "2026-11-26T08:00:00Z")  # the last few messages
    assert 0 < sum(g.counts["messages"] for g in few.groups) < 30
    with pytest.raises(NothingToReport, match="too few messages for any estimate"):
        require_messages(few)
    full = _windowed("2026-11-24", "2026-11-26")
    assert require_messages(full) is full


def test_comparisons_table_in_percentage_points():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        arms = build_analysis(data, "useCase,arm", bootstrap=0,
                              reference=["otp ttl=1m", "otp api=10m"])  # fmt: skip
    table = comparisons_table(arms)
    otp = table[table["use case"] == "otp"]
    assert set(otp["against"]) == {"otp ttl=1m"} and "otp api=10m" in set(otp["arm"])
    assert all(v.endswith("pp") or v.startswith("n/e") for v in table["difference"])
    assert set(table["significant"]) <= {"yes", "no"} | {
        v for v in table["significant"] if v.startswith("n/e")
    }
    assert "read" not in set(table["rate"])


def test_detail_links(tmp_path):
    window = Window.parse("2026-11-24", "2026-11-25")
    (tmp_path / "webhook_log_analysis-20261124T000000Z.html").write_text("old")
    (tmp_path / "webhook_log_analysis-20261125T060000Z.html").write_text("new")
    text = detail_links(tmp_path, window, "logs/events dir", ["a.jsonl", "b.jsonl"])
    assert "[Webhook log analysis](webhook_log_analysis-20261125T060000Z.html)" in text
    assert "TTL tuning (no report in" in text
    assert "-p events 'logs/events dir'" in text  # quoted for the shell
    assert '-p outbox \'["a.jsonl", "b.jsonl"]\'' in text
    assert "-p start 2026-11-24T00:00:00+00:00 -p end 2026-11-25T00:00:00+00:00" in text
    assert "no details_dir given" in detail_links(None, window, "e", "o")


def test_save_table(tmp_path, analysis):
    assert save_table(outcomes_table(analysis), None) is None
    path = save_table(outcomes_table(analysis), tmp_path / "deep" / "t.csv")
    assert path.read_text().startswith("use case,messages")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "n/e"), (float("nan"), "n/e"), (0.45, "0.45 s"), (4.56, "4.6 s"), (14.2, "14 s"),
     (59.9, "1 min"), (294.0, "4.9 min"), (1980.0, "33 min"), (5400.0, "1.5 h"),
     (7920.0, "2.2 h"), (259200.0, "3 d"), (1_296_000.0, "15 d")],
)  # fmt: skip
def test_human_durations(seconds, text):
    assert human_seconds(seconds) == text


def test_human_rates_counts_and_points():
    assert h.percent(0.1234) == "12.3 %" and h.percent(None) == "n/e"
    assert h.percent_range(0.101, 0.15) == "10.1 – 15.0 %"
    assert h.count(1620) == "1,620" and h.percentage_points(-4.13) == "−4.1 pp"
    notes = h.Footnotes()
    assert notes.mark("a") == "n/e¹" and notes.mark("b") == "n/e²" and notes.mark("a") == "n/e¹"
    assert notes.items() == [("¹", "a"), ("²", "b")]


def test_revoke_success_plot_takes_rates_of_one(analysis):
    # otp revokes all succeeded: the Wilson edge at 1.0 must not break the error bars
    assert any(g.counts["revoked"] == g.counts["revoke_tried"] > 0 for g in analysis.groups)
    figure = plots.revoke_success_plot(analysis)
    assert figure.axes[0].lines or figure.axes[0].collections
