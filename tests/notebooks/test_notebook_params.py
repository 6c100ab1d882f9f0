"""Parameters from the command line and from files; ``rbmtools report`` arguments."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rbmtools.errors import ValidationError
from rbmtools.notebook.params import merge_parameters, parse_value, read_parameters_file


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("50", 50),
        ("0.5", 0.5),
        ("true", True),
        ("False", False),
        ("none", None),
        ("null", None),
        ('["useCase", "arm"]', ["useCase", "arm"]),
        ('{"otp": {"sms_cost": 0.07}}', {"otp": {"sms_cost": 0.07}}),
        ('"50"', "50"),
        ("10m", "10m"),
        ("data/sample/events", "data/sample/events"),
        ("2026-11-24", "2026-11-24"),
        ("2026-11-24T06:00:00Z", "2026-11-24T06:00:00Z"),
        ("", ""),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_parameters_file_yaml_and_json(tmp_path):
    yml = tmp_path / "p.yaml"
    yml.write_text("bootstrap: 50\nstart: 2026-11-24\nby: [useCase, arm]\n")
    assert read_parameters_file(yml) == {
        "bootstrap": 50, "start": "2026-11-24", "by": ["useCase", "arm"]
    }  # fmt: skip
    js = tmp_path / "p.json"
    js.write_text('{"policies": {"otp": {"deadline": "2m"}}}')
    assert read_parameters_file(js) == {"policies": {"otp": {"deadline": "2m"}}}
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert read_parameters_file(empty) == {}


@pytest.mark.parametrize(
    ("content", "problem"),
    [("- a\n- b\n", "must map parameter names"), ("a: [\n", "not valid YAML")],
)
def test_bad_parameters_files(tmp_path, content, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ValidationError, match=problem):
        read_parameters_file(path)
    with pytest.raises(ValidationError, match="cannot be read"):
        read_parameters_file(tmp_path / "missing.yaml")


def test_command_line_values_win_over_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("bootstrap: 50\nseed: 1\n")
    merged = merge_parameters(path, [("bootstrap", "10"), ("end", "today")])
    assert merged == {"bootstrap": 10, "seed": 1, "end": "today"}
    with pytest.raises(ValidationError, match="Python name"):
        merge_parameters(None, [("not-a-name", "1")])


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbmtools", "report", *args], capture_output=True, text=True
    )


def test_report_lists_parameters_and_refuses_unknown_ones(tmp_path):
    listed = _report("ttl_tuning", "--list-parameters")
    assert listed.returncode == 0
    assert "bootstrap = 200" in listed.stdout and 'events = "data/sample/events"' in listed.stdout
    typo = _report("ttl_tuning", "-p", "bootstrapp", "5", "-o", str(tmp_path))
    assert typo.returncode == 2
    assert "bootstrapp: is not a parameter of ttl_tuning.ipynb" in typo.stderr
    assert not list(tmp_path.iterdir())  # refused before any kernel started
    missing = _report("no_such_notebook")
    assert missing.returncode == 2 and "is not a notebook file nor one of" in missing.stderr
