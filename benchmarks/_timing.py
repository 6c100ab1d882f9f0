"""Whole-process timing for the benchmarks: one command, measured from the outside.

Not a benchmark itself (``make bench`` skips files named ``_*.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time


def run_timed(command: list[str]) -> dict:
    """Run ``command``: its wall time, CPU time and peak RSS (that process alone, from
    ``wait4``) and its stdout. Its stderr goes to a file (a pipe could fill and stall it) and
    is shown when it fails, which stops the benchmark."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if process.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode(errors="replace")[-3000:])
            raise SystemExit(f"{' '.join(command[:4])} failed (exit {process.returncode})")
    return {
        "seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "stdout": out.decode(),
    }
