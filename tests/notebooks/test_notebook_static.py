"""The committed notebooks: no outputs, a parameters cell first, ruff-clean, the declared
parameters the README and the helpers rely on."""

from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest
from notebook_helpers import NOTEBOOKS, ROOT

from rbmtools.notebook import NOTEBOOKS as NAMES
from rbmtools.notebook import notebook_parameters

FILES = sorted(NOTEBOOKS.glob("*.ipynb"))


def test_the_five_notebooks_are_there():
    assert sorted(p.stem for p in FILES) == sorted(NAMES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_committed_without_outputs_or_execution_counts(path):
    node = nbformat.read(path, as_version=4)
    nbformat.validate(node)
    for cell in node.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    assert node.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_first_code_cell_is_tagged_parameters(path):
    node = nbformat.read(path, as_version=4)
    code = [cell for cell in node.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", [])
    assert all("parameters" not in c.metadata.get("tags", []) for c in code[1:])
    assert node.cells[0].cell_type == "markdown" and node.cells[0].source.startswith("# ")


def test_credentials_are_only_ever_a_key_path():
    for path in FILES:
        declared = notebook_parameters(path)
        for name in declared:
            assert "token" not in name and "secret" not in name and "password" not in name
        if "target" in declared:  # the notebooks that can go live take the key's path
            assert {"key_file", "agent_id", "region"} <= set(declared)
            assert declared["key_file"] == "None"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("adhoc_revoke", {"target", "key_file", "phone", "ttl", "watch", "revoke_csv"}),
        ("revoke_experiment", {"target", "spec", "spec_file", "name", "data_dir", "confirm"}),
        ("webhook_log_analysis", {"events", "outbox", "start", "end", "by"}),
        ("ttl_tuning", {"events", "outbox", "policies", "policy_file", "recommendations_csv"}),
        ("scheduled_report", {"events", "outbox", "period", "end", "details_dir"}),
    ],
)
def test_declared_parameters(name, expected):
    declared = notebook_parameters(name)
    assert expected <= set(declared)
    if "events" in declared:
        assert declared["events"] == '"data/sample/events"'
        assert declared["outbox"] == '"data/sample/outbox.jsonl"'


def test_notebooks_pass_ruff():
    ruff = [sys.executable, "-m", "ruff"]
    check = subprocess.run([*ruff, "check", *map(str, FILES)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    fmt = subprocess.run(
        [*ruff, "format", "--check", *map(str, FILES)], capture_output=True, text=True, cwd=ROOT
    )
    assert fmt.returncode == 0, fmt.stdout
