"""Each notebook under papermill (through ``rbmtools report``), with its default parameters and
with a second parameter set: the executed outputs hold the expected tables and figures, and
the HTML report shows them without the code."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from notebook_helpers import (
    SAMPLE,
    errors,
    headline_text,
    injected,
    outputs,
    report_tables,
    streams,
    texts,
)

from rbmtools.analysis import build_analysis, load

pytestmark = pytest.mark.slow


def figures(node) -> int:
    return len(outputs(node, "image/png"))


def html_tables(node) -> str:
    return "\n".join(texts(node, "text/html"))


def markdown(node) -> str:
    return "\n".join(texts(node, "text/markdown"))


def test_html_report_hides_code_and_keeps_results(runs):
    run = runs["logs-default"].check()
    page = run.html.read_text(encoding="utf-8")
    assert "<img" in page and "image/png" in page
    assert "<table" in page and "revoke success" in page
    assert "rbm-headline" in page and "rbm-notebook" in page  # the report design
    assert "cdnjs" not in page and "<script src=" not in page  # nothing from the network
    assert "nb.setup()" not in page and "build_analysis(" not in page
    assert "Traceback" not in page
    assert "TqdmWarning" not in page  # stderr stays in the .ipynb only
    assert run.executed.name.startswith("webhook_log_analysis-")
    assert run.executed.stem == run.html.stem  # one timestamped name for both


@pytest.mark.parametrize(
    "key",
    [
        "adhoc-default", "adhoc-csv", "experiment-default", "experiment-file", "logs-default",
        "logs-window", "ttl-default", "ttl-policies", "scheduled-default", "scheduled-weekly",
    ],
)  # fmt: skip
def test_every_run_succeeds_without_errors(runs, key):
    run = runs[key].check()
    node = run.notebook()
    assert not errors(node)
    assert run.html.exists() and run.executed.exists()


def test_defaults_run_with_no_parameters_from_any_directory(runs):
    for key in ("adhoc-default", "experiment-default", "logs-default", "ttl-default"):
        node = runs[key].check().notebook()
        assert injected(node) == ""  # nothing injected: the notebook's own defaults ran


def test_adhoc_default_sends_watches_and_revokes_on_the_emulator(runs):
    node = runs["adhoc-default"].check().notebook()
    tables = html_tables(node)
    assert "message_id" in tables and "eventType" in tables
    assert "revoked" in tables and "inconclusive" in tables
    assert "messages to revoke" in streams(node)
    assert "not revoked (already delivered or unknown)" in tables  # the results summary


def test_adhoc_second_set_reads_a_csv_and_writes_the_outbox(runs, tmp_path_factory):
    run = runs["adhoc-csv"].check()
    node = run.notebook()
    assert "revoke_csv" in injected(node) and "always-online" in injected(node)
    tables = html_tables(node)
    assert "DELIVERED" in tables  # an always-online phone gets it within the minute watched
    assert "2 messages to revoke" in streams(node)
    summary = next(t for t in report_tables(node) if "outcome" in t.columns)
    counts = dict(zip(summary["outcome"], summary["messages"], strict=True))
    assert counts["not revoked (already delivered or unknown)"] == 2  # ids the platform never saw
    records = [  # the parameters file named an outbox: every call landed there
        json.loads(line)
        for line in (run.cwd.parents[1] / "adhoc-outbox.jsonl").read_text().splitlines()
    ]
    kinds = [r["kind"] for r in records]
    assert kinds.count("send") == 1 and kinds.count("revoke") == 3
    assert records[0]["phone"] == "+15550000099" and records[0]["ttl"] == "30s"


def test_experiment_default_runs_four_arms_in_its_own_folder(runs):
    run = runs["experiment-default"].check()
    node = run.notebook()
    assert "Experiment 'otp-ttl-" in streams(node)  # the plan, in its section
    folders = list((run.cwd / "data" / "experiments").glob("otp-ttl-*"))
    assert len(folders) == 1 and (folders[0] / "outbox.jsonl").exists()
    headline = headline_text(node)
    arms = ["ttl=60s", "ttl=300s", "api_after=120s", "api_after_unless_delivered=120s"]
    positions = [headline.index(f"</span>{arm}</td>") for arm in arms]
    assert positions == sorted(positions)  # the spec's order, not the alphabet's
    # the decision leads the headline, read with always-valid intervals; the arms follow
    decision = headline.split('class="rbm-lead">')[1].split("</p>")[0]
    assert decision.startswith(("otp: Ready: ", "otp: Inconclusive: "))
    assert "best TTL" in headline
    arms_block = [t for t in texts(node, "text/html") if "rbm-headline" in t][1]
    assert "<b>state:</b> finished" in arms_block and "sample ratio: as allocated" in arms_block
    assert all(f"</span>{arm}</td>" in arms_block for arm in arms)
    tables = report_tables(node)
    comparisons = tables[0]
    assert set(comparisons["against"]) == {"ttl=60s"}  # the spec's first arm
    assert {"difference", "95 % interval", "significant"} <= set(comparisons.columns)
    assert all(str(v).endswith(" pp") for v in comparisons["difference"])
    run_table = dict(zip(tables[-1]["what"], tables[-1]["value"], strict=True))
    assert run_table["status"] == "complete" and run_table["messages planned"] == 800
    assert "ExperimentResult(" not in "".join(texts(node, "text/plain"))
    assert figures(node) == 3


def test_experiment_from_a_spec_file_with_a_name(runs):
    run = runs["experiment-file"].check()
    node = run.notebook()
    assert "spec_file" in injected(node)
    folder = run.cwd.parents[1] / "experiments" / "file-run"
    assert (folder / "outbox.jsonl").exists() and (folder / "events").is_dir()
    outcomes = next(t for t in report_tables(node) if "not RCS" in t.columns)
    assert list(outcomes["arm"]) == ["ttl 2m", "api 1m"]  # the spec's order
    assert set(outcomes["use case"]) == {"alert"}
    assert outcomes["messages"].sum() == 120
    assert figures(node) == 3


def test_log_analysis_defaults_read_the_sample(runs):
    node = runs["logs-default"].check().notebook()
    tables = report_tables(node)
    read = tables[-1]  # the appendix
    values = dict(zip(read["what"], read["value"], strict=True))
    assert values["messages sent"] == 1620 and values["window"] == "all messages"
    headline = headline_text(node)
    for use_case in ("otp", "alert", "transaction", "promo"):
        assert f"</span>{use_case}</td>" in headline
    assert "best TTL" in headline and "never delivered" in headline
    columns = {c for t in tables for c in t.columns}
    expected = {
        "never delivered (95 % interval)",
        "stale deliveries",
        "double deliveries",
        "median time to read",
        "revoke failed, undelivered",
        "p50 (95 % interval)",
    }
    assert expected <= columns
    assert "2026-11-25" in html_tables(node)  # the daily trend table
    assert figures(node) == 4  # outcomes, revoke success, latency curves, daily trend
    assert "No line was set aside." in markdown(node)


def test_log_analysis_window_keeps_the_messages_sent_in_it(runs):
    node = runs["logs-window"].check().notebook()
    tables = report_tables(node)
    values = dict(zip(tables[-1]["what"], tables[-1]["value"], strict=True))
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        sent = data.lifecycle()["sendTime"]
    day, next_day = pd.Timestamp("2026-11-24", tz="UTC"), pd.Timestamp("2026-11-25", tz="UTC")
    expected = int(((sent >= day) & (sent < next_day)).sum())
    assert values["messages sent"] == expected
    assert "2026-11-24" in values["window"] and "2026-11-24" in headline_text(node)
    outcomes = tables[0]
    assert "otp ttl=1m" in set(outcomes["arm"])
    assert outcomes["messages"].sum() == expected
    assert "one day (2026-11-24)" in markdown(node)  # no trend plot from one day


def test_ttl_tuning_defaults_recommend_a_ttl_per_use_case(runs):
    node = runs["ttl-default"].check().notebook()
    tables = html_tables(node)
    assert "best TTL" in tables and "95 % interval" in tables and "SMS cost" in tables
    assert "within 0.5 % of the best cost" in tables
    for use_case in ("otp", "alert", "transaction", "promo"):
        assert f"</span>{use_case}</td>" in headline_text(node)
    assert "data supports TTLs up to" in markdown(node)
    assert figures(node) == 2  # cost curves, latency curves


def test_ttl_policies_change_the_recommendation(runs):
    run = runs["ttl-policies"].check()
    table = pd.read_csv(run.cwd.parents[1] / "best.csv").rename(columns={"use case": "useCase"})
    with load(SAMPLE / "events", SAMPLE / "outbox.jsonl") as data:
        default = build_analysis(data, "useCase", bootstrap=0)
    default_otp = next(g.ttl.seconds for g in default.groups if g.key["useCase"] == "otp")
    otp = table.loc[table["useCase"] == "otp"].iloc[0]
    # ten times dearer SMS: waiting longer for RCS pays
    assert otp["best_ttl_seconds"] > default_otp
    assert otp["policy"] == "otp"
    node = run.notebook()
    policies = next(t for t in report_tables(node) if "SMS cost" in t.columns)
    assert float(policies.loc[policies["use case"] == "otp", "SMS cost"].iloc[0]) == 0.5


def test_scheduled_report_defaults_cover_the_last_day_of_traffic(runs):
    node = runs["scheduled-default"].check().notebook()
    text = markdown(node)
    headline = headline_text(node)
    assert "2026-11-25T" in headline and "2026-11-26T" in headline  # the window, named
    assert "revoke success" in headline and "best TTL" in headline
    tables = html_tables(node)
    assert "significant" in tables and "delivered rate" in tables  # the changes
    assert "no details_dir given" in text
    assert "rbmtools report webhook_log_analysis" in text
    assert figures(node) == 2


def test_scheduled_report_links_the_detail_reports(runs):
    run = runs["scheduled-weekly"].check()
    node = run.notebook()
    text = markdown(node)
    headline = headline_text(node)
    assert "2026-11-24" in headline and "2026-11-26" in headline  # two days ending on the 26th
    detail = runs["logs-window"].html.name
    assert f"]({detail})" in text
    assert f"]({runs['ttl-policies'].html.name})" in text
    page = run.html.read_text(encoding="utf-8")
    assert f'href="{detail}"' in page


def test_demo_runs_the_three_notebooks_and_prints_the_headline(runs):
    run = runs["demo"].check()
    out = run.stdout
    assert "Best TTL per use case" in out
    for use_case in ("otp", "alert", "transaction", "promo"):
        assert use_case in out
    reports = [line.split()[-1] for line in out.splitlines() if line.strip().endswith(".html")]
    assert len(reports) == 3
    names = {p.rsplit("/", 1)[-1].split("-2")[0] for p in reports}
    assert names == {"revoke_experiment", "webhook_log_analysis", "ttl_tuning"}
    folder = next((run.output_dir).glob("demo-*"))
    for report in reports:
        assert (folder / report.rsplit("/", 1)[-1]).exists()
    table = pd.read_csv(folder / "best_ttl.csv")
    assert set(table["use case"]) == {"otp", "alert", "transaction", "promo"}
    assert "within 0.5 % of the best cost" in out
    assert (folder / "experiments" / "demo" / "outbox.jsonl").exists()
