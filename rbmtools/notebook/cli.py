"""``rbmtools report``: run a notebook with parameters and keep it as a report.

    rbmtools report ttl_tuning -p bootstrap 100 -f params.yaml --html -o reports/

The notebook (a path, or a name from ``notebooks/``) runs in a fresh kernel under papermill;
the executed notebook, and with ``--html`` an HTML report with the code hidden, are written
under timestamped names in the output folder (or to the ``.html`` file ``-o`` names, refused if
it exists unless ``--force``) and their paths printed. A failing cell is reported in one line
naming the cell (exit code 3), and the executed notebook is kept; a kernel that does not start
is one line and exit code 3 too; a report with nothing to say (an empty window) exits with
code 4 (``EXIT_NOTHING``) and writes nothing, unless ``--allow-empty``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from rbmtools.outputs import add_force_argument

__all__ = ["EXIT_NOTHING", "register"]

#: The exit code of a report with nothing to report (no messages in its window).
EXIT_NOTHING = 4


def register(subparsers: Any) -> None:
    """Add the ``report`` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="run a notebook with parameters (papermill) and write it as a report",
        description=(
            "Run a notebook in a fresh kernel with parameters (papermill) and write the "
            "executed notebook, and with --html an HTML report with the code hidden, under "
            "timestamped names. NOTEBOOK is a path or the name of a notebook in notebooks/ "
            "(adhoc_revoke, revoke_experiment, webhook_log_analysis, ttl_tuning, "
            "scheduled_report). Exit codes: 2 bad parameters or an existing -o file (see "
            "--force), 3 a cell failed (the executed notebook is kept) or the kernel did not "
            "start, 4 nothing to report (no messages in the window; see --allow-empty)."
        ),
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="notebook path or name")
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        default=[],
        help="a parameter (repeatable); VALUE is read as JSON when it is JSON "
        '(50, true, null, ["a","b"]) and as text otherwise (10m, data/events)',
    )
    parser.add_argument(
        "-f", "--parameters-file", metavar="FILE", help="YAML or JSON file of parameters"
    )
    parser.add_argument("--html", action="store_true", help="also write the HTML report")
    parser.add_argument(
        "-o",
        "--output-dir",
        default="reports",
        metavar="DIR|FILE.html",
        help="the folder the executed notebook and the report go to, under timestamped names "
        "(default: reports/); or the .html file to write (the .ipynb next to it)",
    )
    add_force_argument(parser, "the file -o names")
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="write the report even when its window holds no messages (sets the notebook's "
        "allow_empty parameter; without it such a run exits with code 4)",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="limit for each cell (default: none)"
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long the kernel may take to start (default 60)",
    )
    parser.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    parser.add_argument(
        "--list-parameters",
        action="store_true",
        help="print the notebook's parameters and their defaults, and run nothing",
    )
    parser.set_defaults(func=run)


@contextlib.contextmanager
def _kernel_noise_silenced() -> Iterator[None]:
    """Off a terminal (cron), what the kernel process writes to the stderr it inherits (its
    own log lines when it is shut down after a failure) is dropped: the one line rbmtools
    prints is the message. On a terminal nothing changes (progress bars stay)."""
    if sys.stderr.isatty():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def run(args: argparse.Namespace) -> int:
    from rbmtools.notebook.execute import notebook_parameters
    from rbmtools.notebook.execute import run as run_notebook
    from rbmtools.notebook.params import merge_parameters

    if args.list_parameters:
        for name, default in notebook_parameters(args.notebook).items():
            print(f"{name} = {default}")
        return 0
    from rbmtools.errors import NothingToReport

    parameters = merge_parameters(args.parameters_file, [tuple(p) for p in args.parameter])
    if args.allow_empty:
        parameters["allow_empty"] = True
    # papermill and nbclient log a kernel's failure to start as a traceback: the one line
    # below says it
    logging.getLogger("papermill").setLevel(logging.CRITICAL)
    try:
        with _kernel_noise_silenced():
            result = run_notebook(
                args.notebook,
                parameters,
                args.output_dir,
                html=args.html,
                kernel_name=args.kernel,
                timeout=args.timeout,
                start_timeout=args.start_timeout,
                progress=sys.stderr.isatty(),
                force=args.force,
            )
    except NothingToReport as exc:
        print(f"rbmtools: nothing to report: {exc}", file=sys.stderr)
        return EXIT_NOTHING
    print(result.executed)
    if result.html is not None:
        print(result.html)
    return 0
