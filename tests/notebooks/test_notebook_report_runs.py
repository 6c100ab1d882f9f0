"""``rbmtools report`` as cron and a team run it: many at once from one folder, kernels that do
not start, output files that exist, progress bars, an empty window, plain papermill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
from notebook_helpers import NOTEBOOKS, SAMPLE

from rbmtools.notebook import KernelStartError, run
from rbmtools.notebook.execute import tidy_streams


def _notebook(path: Path, *sources: str, parameters: str = "x = 1") -> Path:
    node = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell(parameters)
    first.metadata["tags"] = ["parameters"]
    node.cells = [nbformat.v4.new_markdown_cell("# A test"), first]
    node.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}  # fmt: skip
    nbformat.write(node, path)
    return path


def _report(*args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "rbmtools", "report", *args],
        capture_output=True, text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=240,
    )  # fmt: skip


@pytest.mark.slow
def test_ten_reports_started_together_from_one_folder_all_succeed(tmp_path):
    one = _notebook(tmp_path / "one.ipynb", "print(x * 2)")
    with ThreadPoolExecutor(10) as pool:
        done = list(pool.map(lambda i: _report(str(one), "--html", "-o", "out", "-p", "x",
                                               str(i), cwd=tmp_path), range(10)))  # fmt: skip
    failures = [d.stderr[-500:] for d in done if d.returncode != 0]
    assert not failures
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == 20  # ten notebooks, ten reports: nobody overwrote anybody
    printed = sorted(
        "".join(nbformat.read(p, as_version=4).cells[-1].outputs[0]["text"]).strip()
        for p in written
        if p.suffix == ".ipynb"
    )
    assert printed == sorted(str(2 * i) for i in range(10))
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("kernel-ipc")]


def _kernels(tmp_path: Path) -> dict[str, str]:
    """A Jupyter path with two broken kernels: one that exits, one that never answers."""
    for name, argv in (("broken", ["false"]), ("silent", ["sleep", "60"])):
        folder = tmp_path / "jupyter" / "kernels" / name
        folder.mkdir(parents=True)
        spec = {"argv": argv, "display_name": name, "language": "python"}
        (folder / "kernel.json").write_text(json.dumps(spec))
    return {"JUPYTER_PATH": str(tmp_path / "jupyter")}


def test_a_kernel_that_does_not_start_is_one_line_and_exit_code_3(tmp_path):
    one = _notebook(tmp_path / "one.ipynb", "print(x)")
    env = _kernels(tmp_path)
    died = _report(str(one), "--kernel", "broken", "-o", "out", cwd=tmp_path, env=env)
    silent = _report(str(one), "--kernel", "silent", "--start-timeout", "3", "-o", "out",
                     cwd=tmp_path, env=env)  # fmt: skip
    for done, reason in ((died, "Kernel died"), (silent, "no answer within 3 s")):
        assert done.returncode == 3, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("rbmtools")]
        assert len(lines) == 1 and "the kernel did not start" in lines[0] and reason in lines[0]
        assert "Traceback" not in done.stderr
    assert not list((tmp_path / "out").iterdir())  # nothing ran, nothing kept
    os.environ["JUPYTER_PATH"], saved = env["JUPYTER_PATH"], os.environ.get("JUPYTER_PATH")
    try:
        with pytest.raises(KernelStartError, match="did not start"):
            run(one, {}, tmp_path / "out2", kernel_name="broken", start_timeout=5)
    finally:
        if saved is None:
            del os.environ["JUPYTER_PATH"]
        else:
            os.environ["JUPYTER_PATH"] = saved


def test_an_existing_output_file_is_refused_unless_forced(tmp_path):
    one = _notebook(tmp_path / "one.ipynb", "print(x)")
    target = tmp_path / "latest.html"
    target.write_text("last week's report")
    refused = _report(str(one), "--html", "-o", str(target))
    assert refused.returncode == 2 and "exists; pass --force" in refused.stderr
    assert target.read_text() == "last week's report"
    forced = _report(str(one), "--html", "-o", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "A test" in target.read_text() and (tmp_path / "latest.ipynb").exists()
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    wrong = _report(str(one), "-o", str(a_file))
    assert wrong.returncode == 2 and "is a file, not a folder" in wrong.stderr
    lines = [line for line in wrong.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in wrong.stderr


def test_analyze_refuses_existing_html_and_quarantine_files(tmp_path):
    page, bad = tmp_path / "page.html", tmp_path / "bad.jsonl"
    page.write_text("keep me")
    logs = ["--events", str(SAMPLE / "events"), "--outbox", str(SAMPLE / "outbox.jsonl")]
    for flag, path in (("--html", page), ("--quarantine", bad)):
        path.write_text("keep me")
        command = [sys.executable, "-m", "rbmtools", "analyze", *logs, flag, str(path)]
        done = subprocess.run([*command, "--bootstrap", "0"], capture_output=True, text=True)
        assert done.returncode == 2 and f"{flag}: exists; pass --force" in done.stderr
        assert path.read_text() == "keep me"
    done = subprocess.run([sys.executable, "-m", "rbmtools", "analyze", *logs, "--html",
                           str(page), "--bootstrap", "0", "--force"], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and "rbm-headline" in page.read_text()


def test_a_saved_notebook_keeps_one_line_per_progress_bar(tmp_path):
    bars = _notebook(
        tmp_path / "bars.ipynb",
        "from tqdm import tqdm\nimport time\nfor i in tqdm(range(300), desc='sends', "
        "mininterval=0):\n    time.sleep(0.001)\nprint('between')\n"
        "for i in tqdm(range(300), desc='settled', mininterval=0):\n    time.sleep(0.001)",
    )
    result = run(bars, {}, tmp_path / "out", html=False)
    node = nbformat.read(result.executed, as_version=4)
    streams = [o for o in node.cells[-1].outputs if o.output_type == "stream"]
    stderr = "".join(o.text for o in streams if o.name == "stderr")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 2, lines  # one per bar, each its final state
    assert "sends: 100%" in lines[0] and "settled: 100%" in lines[1]
    assert "\r" not in stderr
    tidy_streams(result.executed)  # idempotent
    assert nbformat.read(result.executed, as_version=4) == node


def test_a_cron_run_over_an_empty_window_exits_4_and_writes_nothing(tmp_path):
    args = ["scheduled_report", "--html", "-o", str(tmp_path / "out"),
            "-p", "end", "2020-01-02", "-p", "bootstrap", "0"]  # fmt: skip
    done = _report(*args, cwd=tmp_path)
    assert done.returncode == 4, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("rbmtools: nothing to report: scheduled_report.ipynb: ")
    assert "no messages in the window" in lines[0] and "2020-01-01" in lines[0]
    assert not list((tmp_path / "out").iterdir())  # no blank report
    allowed = _report(*args, "--allow-empty", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    page = next((tmp_path / "out").glob("*.html")).read_text()
    assert "No messages were sent in this window" in page


@pytest.mark.slow
def test_plain_papermill_takes_a_list_as_yaml_or_as_json_text(tmp_path):
    # (the comma form is validate_by's own, tested with the analysis)
    source = NOTEBOOKS / "ttl_tuning.ipynb"
    papermill = [sys.executable, "-m", "papermill", str(source)]
    forms = {"json": ["-p", "by", '["useCase","arm"]'], "yaml": ["-y", "by: [useCase, arm]"]}
    for name, form in forms.items():
        out = tmp_path / f"{name}.ipynb"
        done = subprocess.run([*papermill, str(out), *form, "-p", "bootstrap", "0"],
                              capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
        assert done.returncode == 0, (name, done.stderr[-2000:])
        html = "".join(
            "".join(o.get("data", {}).get("text/html", ""))
            for c in nbformat.read(out, as_version=4).cells
            if c.cell_type == "code"
            for o in c.outputs
        )
        assert "otp ttl=1m" in html and "use case · arm" in html, name
