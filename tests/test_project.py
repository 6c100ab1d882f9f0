"""The project's promises about itself: dependencies in sync, public API pinned, CLI alive."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

import rbmtools

ROOT = Path(__file__).resolve().parents[1]

# conda-forge spells a few packages differently from PyPI.
CONDA_TO_PYPI = {"python-duckdb": "duckdb"}


def _pyproject_requirements() -> dict[str, SpecifierSet]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lines = list(project["dependencies"]) + [line for extra in extras.values() for line in extra]
    return {Requirement(line).name.lower(): Requirement(line).specifier for line in lines}


def _conda_requirements() -> dict[str, SpecifierSet]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for item in env["dependencies"]:
        if not isinstance(item, str):
            continue
        name, _, spec = item.partition(" ")
        if name in {"python", "pip"}:
            continue
        found[CONDA_TO_PYPI.get(name, name).lower()] = SpecifierSet(spec.replace(" ", ""))
    return found


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    assert _conda_requirements() == _pyproject_requirements()


def test_environment_yml_installs_the_package_editable():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [item["pip"] for item in env["dependencies"] if isinstance(item, dict)]
    assert ["--editable ."] in pip_sections


def test_python_version_matches():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11"
    assert sys.version_info >= (3, 11)


def test_public_api_is_pinned():
    assert sorted(rbmtools.__all__) == sorted(
        [
            "AgentEventResult",
            "ApiError",
            "AuthError",
            "CostPolicy",
            "Emulator",
            "EventType",
            "ExperimentResult",
            "ExperimentSpec",
            "OutboxWriter",
            "RbmClient",
            "RbmError",
            "Receiver",
            "RetryPolicy",
            "RevokeResult",
            "SendResult",
            "ShortExpiryWarning",
            "SignatureError",
            "TrafficType",
            "TtlPolicy",
            "ValidationError",
            "__version__",
            "agent_message",
            "analyze",
            "compact_logs",
            "default_client",
            "follow",
            "format_duration",
            "format_timestamp",
            "load_logs",
            "normalize_phone",
            "parse_duration",
            "parse_timestamp",
            "read_events",
            "revoke",
            "run_experiment",
            "send",
            "set_default_client",
        ]
    )
    for name in rbmtools.__all__:
        assert getattr(rbmtools, name) is not None


def test_wire_all_names_exist():
    from rbmtools import wire

    assert len(wire.__all__) == len(set(wire.__all__))
    for name in wire.__all__:
        assert hasattr(wire, name), name


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rbmtools", *args], capture_output=True, text=True, check=False
    )


def test_cli_version():
    result = _run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"rbmtools {rbmtools.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", rbmtools.__version__)


def test_cli_help_lists_exit_codes():
    result = _run_cli("--help")
    assert result.returncode == 0
    assert "RCS Business Messaging" in result.stdout
    assert "Exit codes" in result.stdout


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_the_command_table_is_what_the_modules_register():
    """``rbmtools --help`` lists the commands from ``cli.COMMANDS`` without importing them: the
    table must say what each module really registers, with the same help line."""
    import argparse
    import importlib

    from rbmtools.cli import COMMAND_MODULES, COMMANDS

    registered = {}
    for module in COMMAND_MODULES:
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module).register(subparsers)
        for action in subparsers._choices_actions:
            registered[action.dest] = (module, action.help)
    assert registered == COMMANDS


HEAVY = ("pandas", "duckdb", "numpy", "aiohttp", "requests", "lifelines", "scipy", "matplotlib")


@pytest.mark.parametrize(
    "args", [["--version"], ["--help"], ["analyze", "--help"], ["logs", "compact", "--help"]]
)
def test_starting_the_command_imports_nothing_heavy(args):
    probe = (
        "import sys\n"
        "from rbmtools.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False
    )
    assert "HEAVY []" in result.stderr, result.stderr[-2000:]
    assert result.stdout.strip()
