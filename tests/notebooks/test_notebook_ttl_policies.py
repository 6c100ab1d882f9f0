"""The TTL-tuning notebook writes a TTL policy; the scheduled report says whether one holds."""

from __future__ import annotations

import nbformat
import pytest
from notebook_helpers import SAMPLE, errors, html_table, texts

from rbmtools.notebook import run
from rbmtools.wire.ttl_policy import TtlPolicy

pytestmark = pytest.mark.slow


def test_tuning_writes_a_policy_and_the_report_flags_the_use_case_it_no_longer_fits(tmp_path):
    logs = {"events": str(SAMPLE / "events"), "outbox": str(SAMPLE / "outbox.jsonl")}
    policy_file = tmp_path / "policy.yaml"
    tuning = run(
        "ttl_tuning",
        {**logs, "bootstrap": 40, "ttl_policy_out": str(policy_file)},
        tmp_path / "reports",
        html=False,
    )
    node = nbformat.read(tuning.executed, as_version=4)
    assert not errors(node)
    written = TtlPolicy.load(policy_file)
    rules = next(t for t in texts(node, "text/html") if "traffic type" in t)
    shown = html_table(rules)
    assert sorted(shown["useCase"]) == sorted(written.use_cases)
    assert written.version == "1"
    # An analyst let OTPs wait a minute; the weekly report must say that no longer holds.
    stale = written.to_dict()
    stale["use_cases"]["otp"]["duration"] = "60s"
    active = tmp_path / "active.yaml"
    TtlPolicy.from_dict(stale).save(active)
    report = run(
        "scheduled_report",
        {**logs, "period": "7d", "bootstrap": 40, "active_policy": str(active)},
        tmp_path / "reports",
        html=False,
    )
    node = nbformat.read(report.executed, as_version=4)
    assert not errors(node)
    headline = "\n".join(texts(node, "text/markdown"))
    assert "TTL policy 1 no longer holds for otp" in headline
    assert "holds for alert" not in headline
    table = next(t for t in texts(node, "text/html") if "saving / 1,000 messages" in t)
    drift = html_table(table).set_index("useCase")
    assert drift.loc["otp", "drift"] in (True, "True", "yes")
    with pytest.raises(Exception, match="exists"):
        run("ttl_tuning", {**logs, "bootstrap": 0, "ttl_policy_out": str(policy_file)},
            tmp_path / "again", html=False)  # fmt: skip
