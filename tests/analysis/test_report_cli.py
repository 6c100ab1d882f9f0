"""The analysis document, its renderings, the plots, the CLI, and the design rules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from rbmtools.analysis import analyze, build_analysis, plots, sql
from rbmtools.cli import main

GROUP_KEYS = {"key", "messages", "outcomes", "revoke_success", "latency_seconds", "best_ttl"}


def test_document_has_the_stable_schema(synthetic):
    doc = analyze(synthetic.events_dir, synthetic.outbox_dir, by="useCase,arm", bootstrap=50)
    assert {"files", "lines", "events", "duplicates", "malformed"} <= set(doc["read"])
    assert doc["schema"] == "rbmtools.analysis/1" and doc["by"] == ["useCase", "arm"]
    assert len(doc["groups"]) == 4
    for group in doc["groups"]:
        assert set(group) >= GROUP_KEYS
        assert set(group["key"]) == {"useCase", "arm"}
        assert set(group["outcomes"]) == {
            "delivered", "delivered_after_revoke", "revoked", "revoke_failed_undelivered",
            "pending", "not_rcs",
        }  # fmt: skip
        assert {"rate", "lo", "hi", "n"} <= set(group["revoke_success"])
        assert {"p50", "p90", "p95", "p99", "never_delivered_share"} <= set(
            group["latency_seconds"]
        )
        assert {"seconds", "lo", "hi", "expected_cost", "coverage_95_seconds"} <= set(
            group["best_ttl"]
        )
    promo = next(g for g in doc["groups"] if g["key"]["useCase"] == "promo")
    assert promo["revoke_success"]["rate"] is None  # never tried: null, not 0
    otp30 = next(g for g in doc["groups"] if g["key"]["arm"] == "ttl=30s")
    assert otp30["latency_seconds"]["p99"] is None  # beyond a 30 s TTL: not estimable
    assert otp30["best_ttl"]["curve_stops_at_seconds"] <= 30.5
    assert doc["comparisons"] and json.loads(json.dumps(doc)) == doc  # plain JSON, no NaN


def test_text_html_and_figures(synthetic_dataset, tmp_path):
    analysis = build_analysis(synthetic_dataset, ["useCase", "arm"], bootstrap=20, daily=True)
    text = analysis.to_text()
    assert "revoke success" in text and "best TTL" in text and "arm=ttl=30s" in text
    assert "n/e: not estimable." in text  # every n/e of the text is explained at its end
    figures = plots.all_figures(analysis)
    days = {str(d) for d in analysis.daily.groups["day"]}
    expected = {"Delivery latency", "Outcomes", "Revoke success", "TTL cost curves"}
    assert set(figures) == expected | ({"Daily trend"} if len(days) > 1 else set())
    assert all(isinstance(f, Figure) and f.axes for f in figures.values())
    page = analysis.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("data:image/png;base64,") == len(figures)
    assert page.index("rbm-headline") < page.index("<h2>Best TTL</h2>")
    if len(days) == 1:
        assert plots.daily_trend(analysis) is None
        assert "a trend needs at least two days" in page


def _run(*args: str) -> tuple[int, str]:
    from contextlib import redirect_stdout
    from io import StringIO

    out = StringIO()
    with redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_cli_json_text_html_and_policy(synthetic, tmp_path):
    events, outbox = str(synthetic.events_dir), str(synthetic.outbox_dir)
    code, out = _run(
        "analyze", "--events", events, "--outbox", outbox, "--json", "--bootstrap", "10"
    )
    assert code == 0
    doc = json.loads(out)
    assert [g["key"]["useCase"] for g in doc["groups"]] == ["otp", "promo"]
    policy = tmp_path / "policy.yaml"
    policy.write_text("otp:\n  sms_cost: 0.5\n")
    code, out = _run(
        "analyze",
        "--events",
        events,
        "--outbox",
        outbox,
        "--policy",
        str(policy),
        "--by",
        "",
        "--bootstrap",
        "0",
    )
    assert code == 0 and "all messages" in out
    page = tmp_path / "report.html"
    quarantine = tmp_path / "bad.jsonl"
    code, _ = _run(
        "analyze", "--events", events, "--outbox", outbox, "--html", str(page),
        "--quarantine", str(quarantine), "--bootstrap", "0",
    )  # fmt: skip
    assert code == 0 and "<img" in page.read_text()
    assert len(quarantine.read_text().splitlines()) == synthetic.counts["malformed"]


def test_cli_bad_input_exits_2(tmp_path, capsys):
    assert main(["analyze", "--events", str(tmp_path / "nope"), "--outbox", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    result = subprocess.run(
        [sys.executable, "-m", "rbmtools", "analyze", "--events", "x", "--outbox", "y",
         "--by", "colour"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 2


@pytest.mark.parametrize("dialect", ["spark", "bigquery"])
def test_the_heavy_sql_transpiles_for_other_engines(dialect):
    for statement in (
        sql.SUMMARY,
        sql.LOAD_REPORT,
        sql.summary_counts_sql(["useCase", "arm"]),
        sql.summary_latency_bins_sql(["day"]),
        sql.summary_read_bins_sql([]),
        sql.FACTS,
        sql.LIFECYCLE,
        sql.group_counts_sql(["useCase", "arm"]),
        sql.latency_bins_sql(["day"]),
    ):
        text = sql.transpile(statement, dialect)
        assert any(
            name in text for name in ("rbm_summary", "rbm_lifecycle", "rbm_event_rows", "rbm_facts")
        )


def test_analysis_never_imports_client_emulator_or_webhook():
    package = Path(sql.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not name.startswith(
                    ("rbmtools.client", "rbmtools.emulator", "rbmtools.webhook")
                ), (source, name)
