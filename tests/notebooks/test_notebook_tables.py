"""The tables and texts the notebooks show, checked against the analysis they come from."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from notebook_helpers import SAMPLE

from rbmtools.analysis import DEFAULT_POLICIES, build_analysis, load, plots
from rbmtools.errors import ValidationError
from rbmtools.notebook import (
    Window,
    compare_windows,
    cost_policies,
    daily_table,
    detail_links,
    headline,
    human_seconds,
    load_window,
    overview,
    policy_table,
    read_table,
    save_table,
    support_caveats,
    ttl_recommendations,
)


@pytest.fixture(scope="module")
def analysis():
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        return build_analysis(data, "useCase", bootstrap=20, daily=True)


def test_overview_matches_the_counts(analysis):
    table = overview(analysis)
    assert list(table["useCase"]) == [g.key["useCase"] for g in analysis.groups]
    for group, (_, row) in zip(analysis.groups, table.iterrows(), strict=True):
        assert row["messages"] == group.counts["messages"]
        assert row["revoked"] == group.counts["revoked"]
        assert row["SMS fallbacks"] == group.counts["fallbacks"]
        assert row["revoke success"].endswith("]") or row["revoke success"] == "n/e"


def test_ttl_recommendations_and_caveats(analysis):
    table = ttl_recommendations(analysis)
    for group, (_, row) in zip(analysis.groups, table.iterrows(), strict=True):
        assert row["best_ttl_seconds"] == group.ttl.seconds
        assert row["best TTL"] == human_seconds(group.ttl.seconds)
        assert row["policy"] == group.key["useCase"]
        assert group.ttl.lo <= group.ttl.seconds <= group.ttl.hi
    text = support_caveats(analysis)
    assert "fewer than 30 messages remain undelivered" in text
    assert text.count("- **useCase=") == len(analysis.groups)
    for group in analysis.groups:
        assert f"up to {human_seconds(group.ttl.supported_until)}" in text


def _choice(seconds, stops, policy=True):
    return SimpleNamespace(
        seconds=seconds, lo=seconds, hi=seconds, expected_cost=None if seconds is None else 0.03,
        coverage_seconds=None, supported_until=stops, stops_at=stops,
        policy_name="otp" if policy else None, policy=object() if policy else None,
    )  # fmt: skip


def _fake(*choices):
    groups = [
        SimpleNamespace(key={"useCase": f"u{i}"}, counts={"messages": 100}, ttl=choice,
                        label=lambda i=i: f"useCase=u{i}")
        for i, choice in enumerate(choices)
    ]  # fmt: skip
    return SimpleNamespace(groups=groups, settings={"min_at_risk": 30})


def test_notes_for_the_edges_of_the_supported_range():
    fake = _fake(
        _choice(600.0, 600.0),
        _choice(10.0, 900.0),
        _choice(None, 5.0),
        _choice(60.0, 900.0),
        _choice(None, 300.0, policy=False),
    )
    notes = list(ttl_recommendations(fake)["note"])
    assert notes[0].startswith("at the end of the supported range")
    assert notes[1] == "at the shortest TTL considered (10 s)"
    assert notes[2].startswith("not estimable")
    assert notes[3] == ""
    assert notes[4] == "no cost policy for this group"
    text = support_caveats(fake)
    assert "a longer TTL may well be cheaper" in text
    assert "falling back at once beats waiting" in text
    assert "No cost policy applies" in text


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
    table = policy_table(resolved, ["otp", "banking"])
    assert list(table["use case"]) == ["otp", "banking"] and "deadline" in table
    with pytest.raises(ValidationError, match="must map a use case"):
        cost_policies(["otp"])
    with pytest.raises(ValidationError, match="not a policy field"):
        cost_policies({"otp": {"sms_costs": 1}})


def test_daily_table_and_read_table(analysis):
    daily = daily_table(analysis)
    assert sorted(set(daily["day"].astype(str))) == [
        "2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26"
    ]  # fmt: skip
    assert daily["messages"].sum() == 1620
    window = Window.parse("2026-11-25", None)
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", window) as data:
        table = read_table(data, window)
    values = dict(zip(table["what"], table["value"], strict=True))
    assert 0 < values["messages in window"] == values["messages"] < 1620
    assert values["unknown_message_events"] > 0 and "unknown_message_events" in values["note"]
    assert values["window"].startswith("messages sent from 2026-11-25")


def _windowed(start, end):
    with load_window(SAMPLE / "events", SAMPLE / "outbox.jsonl", Window.parse(start, end)) as d:
        return build_analysis(d, "useCase", bootstrap=0)


def test_headline_and_changes_between_two_real_windows():
    now, before = _windowed("2026-11-25", "2026-11-26"), _windowed("2026-11-24", "2026-11-25")
    top = headline(now)
    assert list(top["messages"]) == [g.counts["messages"] for g in now.groups]
    changes = compare_windows(now, before)
    assert set(changes["measure"]) >= {"messages", "delivered rate", "revoke success rate",
                                       "p50 latency", "best TTL"}  # fmt: skip
    otp = changes[(changes.group == "useCase=otp") & (changes.measure == "messages")].iloc[0]
    counts = {g.key["useCase"]: g.counts["messages"] for g in before.groups}
    assert otp["previous"] == counts["otp"]


def test_a_change_is_significant_only_when_its_interval_excludes_zero():
    def window(delivered, messages):
        counts = {"messages": messages, "not_rcs": 0, "delivered": delivered,
                  "delivered_after_revoke": 0, "revoked": 0, "revoke_tried": 0, "read": 0,
                  "stale_deliveries": 0, "double_deliveries": 0, "fallbacks": 0,
                  "not_rcs_fallbacks": 0}  # fmt: skip
        curve = SimpleNamespace(quantile=lambda p: (None, None, None))
        group = SimpleNamespace(
            key={"useCase": "otp"},
            counts=counts,
            curve=curve,
            ttl=SimpleNamespace(seconds=None),
            label=lambda: "useCase=otp",
        )
        return SimpleNamespace(groups=[group])  # fmt: skip

    big = compare_windows(window(900, 1000), window(700, 1000))
    row = big[big.measure == "delivered rate"].iloc[0]
    assert row["significant"] == "up" and row["change"] == "+20.0%"
    small = compare_windows(window(71, 100), window(70, 100))
    assert small[small.measure == "delivered rate"].iloc[0]["significant"] == ""
    down = compare_windows(window(500, 1000), window(700, 1000))
    assert down[down.measure == "delivered rate"].iloc[0]["significant"] == "down"


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
    assert save_table(overview(analysis), None) is None
    path = save_table(overview(analysis), tmp_path / "deep" / "t.csv")
    assert path.read_text().startswith("useCase,messages")


def test_human_seconds():
    assert [human_seconds(v) for v in (None, 14.2, 294.0, 7920.0, 259200.0)] == [
        "n/e", "14.2 s", "4.9 min", "2.2 h", "3 d"
    ]  # fmt: skip


def test_revoke_success_plot_takes_rates_of_one(analysis):
    # otp revokes all succeeded: the Wilson edge at 1.0 must not break the error bars
    assert any(g.counts["revoked"] == g.counts["revoke_tried"] > 0 for g in analysis.groups)
    figure = plots.revoke_success_plot(analysis)
    assert figure.axes[0].lines or figure.axes[0].collections
