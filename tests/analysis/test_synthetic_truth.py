"""Synthetic logs with a known truth: the analysis must recover it (within sampling error)."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pandas as pd
import pytest

from rbmtools import wire
from rbmtools.analysis import (
    delivery_latency,
    read_rate,
    revoke_success,
    stale_and_double_deliveries,
)

from .conftest import SYNTHETIC


def test_report_counts_what_the_generator_wrote(synthetic, synthetic_dataset):
    report = synthetic_dataset.report
    counts = synthetic.counts
    assert report.files == counts["files"] > 1  # rotated receiver segments, found recursively
    assert (report.lines, report.events, report.duplicates, report.malformed) == (
        counts["lines"], counts["events"], counts["duplicates"], counts["malformed"],
    )  # fmt: skip
    assert report.outbox_records == counts["outbox_records"]
    assert report.other_events == counts["other_events"]
    assert report.messages == SYNTHETIC.messages and report.unknown_messages == 0
    assert len(synthetic_dataset.malformed()) == counts["malformed"]


def test_generated_lines_are_valid_wire_records(synthetic):
    outbox = next(synthetic.outbox_dir.glob("*.jsonl"))
    for line in outbox.read_text().splitlines()[:300]:
        wire.parse_outbox_record(line)
    events = sorted(synthetic.events_dir.rglob("*.jsonl"))[0]
    shapes = set()
    for line in events.read_text().splitlines()[:2000]:
        try:
            shapes.add(wire.parse_event_line(line).shape)
        except wire_errors():
            continue
    assert shapes == {"receiver", "push", "decoded"}


def test_ids_and_lines_look_like_real_ones(synthetic):
    """Message ids are random UUIDs (as the client and the experiment runner make them), event
    ids as long as the emulator's, lines compact: the byte counts of a real receiver log."""
    ids = synthetic.truth.messageId
    assert ids.is_unique and all(uuid.UUID(i).version == 4 for i in ids.head(200))
    first = sorted(synthetic.events_dir.rglob("*.jsonl"))[0].read_text().splitlines()
    records = [json.loads(line) for line in first[:500] if line.startswith('{"receivedAt"')]
    event_ids = [r["event"]["eventId"] for r in records if "eventId" in r["event"]]
    assert event_ids and all(len(e) == 28 and e.startswith("evt-") for e in event_ids)
    assert all(", " not in line and ": " not in line for line in first[:500])


def wire_errors():
    from rbmtools.errors import ValidationError

    return ValidationError


def test_every_message_gets_the_outcome_the_rules_give(synthetic, synthetic_dataset):
    lifecycle = synthetic_dataset.lifecycle().set_index("messageId")
    truth = synthetic.truth.set_index("messageId")
    joined = lifecycle.join(truth, rsuffix="_true", how="inner")
    assert len(joined) == len(truth)
    assert (joined.outcome == joined.outcome_true).all()
    assert (joined.revokeMethod.fillna("-") == joined.revokeMethod_true.fillna("-")).all()
    assert (joined.staleDelivery == joined.staleDelivery_true).all()
    assert (joined.doubleDelivery == joined.doubleDelivery_true).all()
    both = joined.latencySeconds.notna()
    assert (both == joined.latencySeconds_true.notna()).all()
    assert np.allclose(joined.latencySeconds[both], joined.latencySeconds_true[both], atol=2e-3)
    assert joined.clockSkew.sum() > 0 and joined.outOfOrder.sum() > 0
    assert set(joined.outcome) >= {
        "delivered",
        "delivered_after_revoke",
        "revoked",
        "revoke_failed_undelivered",
        "not_rcs",
    }


def test_latency_quantiles_recover_the_true_distribution(synthetic_dataset):
    model = SYNTHETIC.latency["otp"]
    frame = delivery_latency(synthetic_dataset, by="useCase").set_index("useCase")
    otp = frame.loc["otp"]
    for p in (0.5, 0.9):
        true = model.quantile(p)
        name = f"p{round(p * 100)}"
        # the 95 % interval covers the truth (allowing the 0.46 % bin width)
        assert otp[f"{name}_lo"] * 0.995 <= true <= otp[f"{name}_hi"] * 1.005, (
            name,
            true,
            otp[name],
        )
    # 5 % of otp messages are never delivered: p95 and p99 are not estimable
    assert pd.isna(otp["p99"])
    never = otp["never_delivered_share"]
    assert otp["never_delivered_lo"] <= model.never_share + 0.02 and never < 0.2


def test_rates_recover_the_generator_settings(synthetic_dataset):
    read = read_rate(synthetic_dataset, by="useCase")
    for row in read.itertuples():
        assert (
            row.lo <= SYNTHETIC.read_share <= row.hi or abs(row.rate - SYNTHETIC.read_share) < 0.03
        )
        # time to read is exponential with the configured median
        assert row.median_seconds == pytest.approx(SYNTHETIC.read_median_seconds, rel=0.15)
    rs = revoke_success(synthetic_dataset, by="arm").set_index(["arm", "method"])
    ttl30 = rs.loc[("ttl=30s", "ttl")]
    # a TTL revoke fails 3 % of the time; races turn a further few successes into deliveries
    assert 0.85 < ttl30["rate"] < 0.99 and ttl30["lo"] < ttl30["rate"] < ttl30["hi"]
    problems = stale_and_double_deliveries(synthetic_dataset, by="useCase").set_index("useCase")
    assert problems.loc["otp", "stale"] > 0 and problems.loc["otp", "double"] > 0
    assert problems.loc["promo", "stale"] == 0  # promotions carry no expiry: never stale


def test_ttl_arms_censor_but_estimate_the_same_distribution(synthetic_dataset):
    frame = delivery_latency(synthetic_dataset, by=["useCase", "arm"])
    otp = frame[frame.useCase == "otp"].set_index("arm")
    assert otp.loc["ttl=30s", "supported_until_seconds"] <= 30.5
    assert otp.loc["ttl=300s", "supported_until_seconds"] <= 301
    medians = otp["p50"].to_numpy()
    assert medians.max() / medians.min() < 1.25  # same distribution, different censoring
