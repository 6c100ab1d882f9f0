"""The lifecycle rules of log-format section 3: hand cases and property tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbmtools.analysis import OUTCOMES, load

from .conftest import LogBuilder


def _lifecycle(logs):
    with load(*logs.write()) as data:
        return data.lifecycle().set_index("messageId")


def test_each_outcome_by_hand(logs):
    logs.send("plain")
    logs.event("plain", "DELIVERED", 2.0)
    logs.send("api-ok", ttl=None)
    logs.revoke("api-ok", 30.0, 200)
    logs.fallback("api-ok", 30.4)
    logs.send("race")
    logs.revoke("race", 30.0, 200)
    logs.fallback("race", 30.4)
    logs.event("race", "DELIVERED", 30.9)
    logs.send("too-late")
    logs.event("too-late", "DELIVERED", 10.0)
    logs.revoke("too-late", 30.0, 404)
    logs.send("ttl-ok", ttl=60)
    logs.event("ttl-ok", "TTL_EXPIRATION_REVOKED", 60.0)
    logs.send("ttl-failed", ttl=60)
    logs.event("ttl-failed", "TTL_EXPIRATION_REVOKE_FAILED", 60.0)
    logs.send("refused-no-delivery")
    logs.revoke("refused-no-delivery", 30.0, 404)
    logs.send("waiting")
    logs.send("unreachable", status=404)
    logs.send("stale", ttl=60)
    logs.event("stale", "TTL_EXPIRATION_REVOKE_FAILED", 60.0)
    logs.event("stale", "DELIVERED", 90.0)
    frame = _lifecycle(logs)
    expected = {
        "plain": ("delivered", None),
        "api-ok": ("revoked", "api"),
        "race": ("delivered_after_revoke", "api"),
        "too-late": ("delivered", "api"),
        "ttl-ok": ("revoked", "ttl"),
        "ttl-failed": ("revoke_failed_undelivered", "ttl"),
        "refused-no-delivery": ("revoke_failed_undelivered", "api"),
        "waiting": ("pending", None),
        "unreachable": ("not_rcs", None),
        "stale": ("delivered", "ttl"),
    }
    for message, (outcome, method) in expected.items():
        assert frame.loc[message, "outcome"] == outcome, message
        assert (frame.loc[message, "revokeMethod"] or None) == method, message
    assert frame.loc["race", "doubleDelivery"] and not frame.loc["plain", "doubleDelivery"]
    assert frame.loc["stale", "staleDelivery"] and not frame.loc["plain", "staleDelivery"]
    assert frame.loc["race", "latencySeconds"] == pytest.approx(30.9)
    # undelivered messages are censored at the revoke or the expiry
    assert frame.loc["api-ok", "observedSeconds"] == pytest.approx(30.0)
    assert frame.loc["ttl-ok", "observedSeconds"] == pytest.approx(60.0)
    assert frame.loc["waiting", "observedSeconds"] == pytest.approx(90.5)  # end of the logs
    assert (
        frame.loc["unreachable", "observedSeconds"] != frame.loc["unreachable", "observedSeconds"]
    )


def test_clock_skew_and_out_of_order_are_counted_not_dropped(logs):
    logs.send("skewed", 10.0)
    logs.event("skewed", "DELIVERED", 9.0)  # stamped before the send
    logs.send("shuffled")
    logs.event("shuffled", "READ", 8.0, received=9.0)
    logs.event("shuffled", "DELIVERED", 2.0, received=12.0)  # arrived after the READ
    frame = _lifecycle(logs)
    assert frame.loc["skewed", "clockSkew"] and frame.loc["skewed", "latencySeconds"] == 0.0
    assert frame.loc["skewed", "outcome"] == "delivered"
    assert frame.loc["shuffled", "outOfOrder"] and not frame.loc["skewed", "outOfOrder"]
    assert frame.loc["shuffled", "latencySeconds"] == pytest.approx(2.0)
    assert frame.loc["shuffled", "readSeconds"] == pytest.approx(6.0)


def test_retried_send_keeps_its_message_id(logs):
    logs.send("m", 0.0, status=503)
    logs.send("m", 1.0, status=200)
    logs.event("m", "DELIVERED", 3.0)
    row = _lifecycle(logs).loc["m"]
    assert (row["sendStatus"], row["sendAttempts"], row["outcome"]) == (200, 2, "delivered")
    assert row["latencySeconds"] == pytest.approx(2.0)


def _expected_outcome(status, delivered, api, ttl_event):
    """The rules, restated independently: status first, then DELIVERED, then revokes."""
    if status == 404:
        return "not_rcs"
    successes = [t for t, s in api if s == 200]
    if ttl_event and ttl_event[1] == "TTL_EXPIRATION_REVOKED":
        successes.append(ttl_event[0])
    first_success = min(successes) if successes else None
    if delivered is not None:
        if first_success is not None and first_success <= delivered:
            return "delivered_after_revoke"
        return "delivered"
    if first_success is not None:
        return "revoked"
    if any(s == 404 for _, s in api) or (ttl_event and ttl_event[1].endswith("FAILED")):
        return "revoke_failed_undelivered"
    return "pending"


message_history = st.fixed_dictionaries(
    {
        "status": st.sampled_from([200, 200, 200, 404]),
        "delivered": st.none() | st.integers(1, 100),
        "api": st.lists(
            st.tuples(st.integers(1, 100), st.sampled_from([200, 404, 503])), max_size=2
        ),
        "ttl_event": st.none()
        | st.tuples(
            st.integers(1, 100),
            st.sampled_from(["TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"]),
        ),
        "duplicates": st.integers(0, 2),
        "shape": st.sampled_from(["receiver", "push", "decoded"]),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(message_history, min_size=1, max_size=8))
def test_lifecycle_rules_hold_for_any_history(histories):
    with tempfile.TemporaryDirectory() as folder:
        logs = LogBuilder(Path(folder))
        for i, h in enumerate(histories):
            mid = f"m{i}"
            logs.send(mid, 0.0, status=h["status"])
            if h["status"] == 200:
                if h["delivered"] is not None:
                    payload = logs.event(mid, "DELIVERED", h["delivered"], shape=h["shape"])
                    for _ in range(h["duplicates"]):
                        logs.line(payload, shape="receiver", received=200.0)
                for when, status in h["api"]:
                    logs.revoke(mid, when, status)
                if h["ttl_event"]:
                    logs.event(mid, h["ttl_event"][1], h["ttl_event"][0])
        frame = _lifecycle(logs)
    assert len(frame) == len(histories)
    for i, h in enumerate(histories):
        row = frame.loc[f"m{i}"]
        api = h["api"] if h["status"] == 200 else []
        ttl_event = h["ttl_event"] if h["status"] == 200 else None
        delivered = h["delivered"] if h["status"] == 200 else None
        assert row["outcome"] in OUTCOMES
        assert row["outcome"] == _expected_outcome(h["status"], delivered, api, ttl_event)
        # never both revoked and delivered; a success rate numerator is always a tried revoke
        assert not (row["outcome"] == "revoked" and row["delivered"])
        assert row["revokeSucceeded"] == (row["outcome"] == "revoked")
        if row["revokeSucceeded"]:
            assert row["revokeMethod"] in ("api", "ttl")
        assert row["delivered"] == (row["outcome"] in ("delivered", "delivered_after_revoke"))
        if row["delivered"]:
            assert row["latencySeconds"] == pytest.approx(delivered)
            assert row["observedSeconds"] == pytest.approx(delivered)
        elif row["outcome"] != "not_rcs":
            assert row["observedSeconds"] >= 0
        assert row["duplicateEvents"] == (h["duplicates"] if delivered is not None else 0)
