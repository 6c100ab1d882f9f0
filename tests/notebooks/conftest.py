"""Every notebook run once with its defaults and once with a second parameter set, plus the
demo, all started together (three at a time) and shared by the tests that inspect them.

They start when the first test needs them (not at collection: in a full ``make test`` the
kernels would otherwise compete with every other test for the CPUs).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from notebook_helpers import ROOT, Runs

#: The second parameter set's spec file for the experiment notebook (small and quick).
SMALL_SPEC = {
    "name": "from-file",
    "use_case": "alert",
    "traffic_type": "TRANSACTION",
    "template": "Fraud check: reply YES if you paid {code}",
    "audience": {"synthetic": 120, "profile": "always-online"},
    "arms": [
        {"name": "ttl 2m", "method": "ttl", "duration": "2m"},
        {"name": "api 1m", "method": "api_after_unless_delivered", "duration": "1m"},
    ],
    "seed": 5,
    "fallback": "on_revoked",
    "grace": "20s",
    "observe": "2m",
}


@pytest.fixture(scope="session")
def runs():
    base = Path(tempfile.mkdtemp(prefix="rbmtools-notebook-runs-"))
    pool = _start(base)
    yield pool
    pool.close()
    shutil.rmtree(base, ignore_errors=True)


def _start(base: Path) -> Runs:
    pool = Runs(base, workers=3)
    # The longest first. Defaults run in an empty working directory: relative defaults such
    # as data/sample/events resolve through the project root, and data/experiments lands there.
    pool.command(
        "demo",
        [sys.executable, "-m", "rbmtools.notebook.demo", "--output", str(base / "demo"),
         "--per-arm", "60", "--bootstrap", "20"],
        base / "demo",
    )  # fmt: skip
    pool.report("experiment-default", "revoke_experiment")
    spec_file = base / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(SMALL_SPEC), encoding="utf-8")
    pool.report(
        "experiment-file",
        str(ROOT / "notebooks" / "revoke_experiment.ipynb"),
        {"spec_file": str(spec_file), "name": "file-run", "data_dir": str(base / "experiments"),
         "by": ["useCase", "arm"], "bootstrap": 0},
    )  # fmt: skip
    pool.report("adhoc-default", "adhoc_revoke")
    ids = base / "ids.csv"
    ids.write_text(
        "phone,message_id,note\n+15550000101,00000000-0000-4000-8000-000000000001,unknown\n"
        "+1 555 000 0102,00000000-0000-4000-8000-000000000002,unknown\n",
        encoding="utf-8",
    )
    params = base / "adhoc.yaml"
    params.write_text(
        yaml.safe_dump(
            {"revoke_csv": str(ids), "phone": "+15550000099", "ttl": "30s", "watch": "1m",
             "outbox": str(base / "adhoc-outbox.jsonl"), "profile": "always-online",
             "concurrency": 2, "seed": 3}
        ),
        encoding="utf-8",
    )  # fmt: skip
    pool.report("adhoc-csv", "adhoc_revoke", parameters_file=params)
    pool.report("logs-default", "webhook_log_analysis")
    pool.report("ttl-default", "ttl_tuning")
    pool.report("scheduled-default", "scheduled_report")
    details = base / "details"
    pool.report(
        "logs-window",
        "webhook_log_analysis",
        {"start": "2026-11-24", "end": "2026-11-25T00:00:00Z", "by": ["arm"], "min_at_risk": 10},
        output_dir=details,
    )
    pool.report(
        "ttl-policies",
        "ttl_tuning",
        {"policies": {"otp": {"sms_cost": 0.5}}, "bootstrap": 20,
         "recommendations_csv": str(base / "best.csv")},
        output_dir=details,
    )  # fmt: skip
    pool.report(
        "scheduled-weekly",
        "scheduled_report",
        {"period": "2d", "end": "2026-11-26", "details_dir": str(details), "bootstrap": 0},
        output_dir=details,
        after=("logs-window", "ttl-policies"),
    )
    return pool
