"""``rbmtools.notebook.run``: a failing cell is one short message naming the cell, and the
executed notebook is kept; the HTML report hides the code; names never collide."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import nbformat
import pytest

from rbmtools.errors import ValidationError
from rbmtools.notebook import NotebookError, render_html, run
from rbmtools.notebook.execute import timestamped


def _notebook(path, *sources, parameters="x = 1"):
    node = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    node.cells = [nbformat.v4.new_markdown_cell("# A test"), first]
    node.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    node.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(node, path)
    return path


@pytest.fixture
def failing(tmp_path):
    return _notebook(
        tmp_path / "failing.ipynb",
        "print('before', x)",
        "# check the input\nvalue = int('not a number' * x)",
        "print('never reached')",
    )


def test_a_failing_cell_raises_a_short_error_and_keeps_the_notebook(failing, tmp_path):
    with pytest.raises(NotebookError) as caught:
        run(failing, {"x": 2}, tmp_path / "out")
    error = caught.value
    # the count the executed notebook shows (papermill's injected cell ran second)
    assert error.cell == 'In [4] ("# check the input")'
    assert error.error.startswith("ValueError: invalid literal for int()")
    assert str(error).count("\n") == 1  # two lines: what failed, where the notebook is
    assert "Traceback" not in str(error)
    assert error.executed.exists() and error.executed.parent == tmp_path / "out"
    kept = nbformat.read(error.executed, as_version=4)
    printed = [
        "".join(o.get("text", "")) for c in kept.cells if c.cell_type == "code" for o in c.outputs
    ]
    assert "before 2\n" in printed
    assert not list((tmp_path / "out").glob("*.html"))  # no report for a failed run


def test_the_command_line_says_which_cell_failed(failing, tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "rbmtools", "report", str(failing), "--html", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert lines[-2].startswith('rbmtools: failing.ipynb: cell In [3] ("# check the input")')
    assert "ValueError" in lines[-2]
    assert lines[-1].startswith("the executed notebook is kept at ")
    assert lines[-1].split(" at ")[-1].endswith(".ipynb")


def test_a_cell_over_its_time_limit_is_named_too(tmp_path):
    slow = _notebook(
        tmp_path / "slow.ipynb", "# wait for the platform\nimport time\ntime.sleep(60)"
    )
    with pytest.raises(NotebookError) as caught:
        run(slow, {}, tmp_path / "out", timeout=2)
    assert caught.value.cell == '("# wait for the platform")'
    assert "timed out after 2 s" in caught.value.error
    assert caught.value.executed.exists()


def test_unknown_parameters_and_bad_values_are_refused_before_running(failing, tmp_path):
    with pytest.raises(ValidationError, match=r"y: is not a parameter of failing\.ipynb"):
        run(failing, {"y": 1}, tmp_path)
    with pytest.raises(ValidationError, match="must be a string, number"):
        run(failing, {"x": object()}, tmp_path)
    with pytest.raises(ValidationError, match="timeout"):
        run(failing, {}, tmp_path, timeout=0)
    with pytest.raises(ValidationError, match="is not a notebook file"):
        run(tmp_path / "nothing.ipynb")
    with pytest.raises(ValidationError, match="not an installed Jupyter kernel"):
        run(failing, {}, tmp_path, kernel_name="no-such-kernel")
    assert not list(tmp_path.glob("*.ipynb"))[1:]  # only the source notebook is there


def test_html_report_has_no_code_no_prompts_no_stderr(tmp_path):
    node = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("secret_looking_code = compute()", execution_count=1)
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="a printed result\n"),
        nbformat.v4.new_output("stream", name="stderr", text="progress 50%\n"),
        nbformat.v4.new_output(
            "display_data", data={"text/html": "<table><tr><td>cell 42</td></tr></table>"}
        ),
    ]
    node.cells = [nbformat.v4.new_markdown_cell("# Weekly report"), cell]
    executed = tmp_path / "weekly.ipynb"
    nbformat.write(node, executed)
    page = render_html(executed, tmp_path / "weekly.html").read_text(encoding="utf-8")
    assert "Weekly report" in page and "a printed result" in page and "cell 42" in page
    assert "secret_looking_code" not in page
    assert "progress 50%" not in page
    assert "In&nbsp;[1]" not in page and "In [1]" not in page


def test_a_notebook_that_names_no_language_is_taken_as_python(tmp_path):
    path = _notebook(tmp_path / "bare.ipynb", "print(x)", parameters="x = 1\ny = 'a'")
    node = nbformat.read(path, as_version=4)
    node.metadata = {}
    nbformat.write(node, path)
    from rbmtools.notebook import notebook_parameters

    assert notebook_parameters(path) == {"x": "1", "y": "'a'"}


def test_timestamped_names_never_collide(tmp_path):
    when = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    first = timestamped(tmp_path, "report", ".ipynb", when)
    assert first.name == "report-20261130T060000Z.ipynb"
    first.touch()
    second = timestamped(tmp_path, "report", ".ipynb", when)
    assert second.name == "report-20261130T060000Z-2.ipynb"
