"""``rbmtools experiment run``: plan, run, JSON document, refusals and exit codes."""

from __future__ import annotations

import json

import pytest
from experiment_helpers import make_spec

from rbmtools.cli import main


@pytest.fixture
def spec_file(tmp_path):
    spec = make_spec(
        name="cli",
        audience={"synthetic": 12, "profile": "always-online"},
        arms=[{"method": "ttl", "duration": "1m"}, {"method": "api_after", "duration": "1m"}],
        observe="10s",
    )
    return spec.save(tmp_path / "cli.yaml")


def test_dry_run_prints_the_plan(spec_file, tmp_path, capsys):
    code = main(["experiment", "run", str(spec_file), "--data-dir", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 RBM messages to 12 numbers" in out and "arm 'api_after=60s': 6 messages" in out
    assert not (tmp_path / "cli").exists()


def test_run_prints_a_json_document_and_refuses_a_second_fresh_run(spec_file, tmp_path, capsys):
    argv = ["experiment", "run", str(spec_file), "--data-dir", str(tmp_path), "--speed", "1200"]
    assert main([*argv, "--json", "--no-progress"]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["status"] == "complete" and document["experiment"] == "cli"
    assert [row["arm"] for row in document["summary"]] == ["ttl=60s", "api_after=60s"]
    assert sum(row["messages"] for row in document["summary"]) == 12
    assert document["stats"]["sends"] == 12
    assert "12 RBM messages" in captured.err  # the plan goes to stderr with --json
    assert main([*argv, "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "--no-progress", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "fallbacks" in out and "ttl=60s" in out  # the per-arm table


def test_live_needs_confirmation(tmp_path, capsys):
    phones = tmp_path / "phones.txt"
    phones.write_text("+15550100001\n")
    spec = make_spec(
        name="golive",
        audience={"phones_file": str(phones)},
        arms=[{"method": "ttl", "duration": "1m"}],
        fallback="none",
    )
    path = spec.save(tmp_path / "live.yaml")
    code = main(["experiment", "run", str(path), "--target", "live", "--data-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 2 and "not confirmed" in captured.err
    assert "1 RBM messages to 1 numbers" in captured.out
    assert not (tmp_path / "golive").exists()


def test_invalid_specs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narms: []\naudience: {synthetic: 3}\n")
    assert main(["experiment", "run", str(bad), "--dry-run"]) == 2
    assert "arms: give at least one arm" in capsys.readouterr().err
