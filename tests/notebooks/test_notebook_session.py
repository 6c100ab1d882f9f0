"""The ad hoc session: on the embedded emulator (send, watch, revoke, a CSV of ids) and the
checks a live session makes before any call."""

from __future__ import annotations

import pandas as pd
import pytest

import rbmtools
from rbmtools.errors import RbmError, ValidationError
from rbmtools.notebook import open_session, revoke_summary


@pytest.fixture
def session(tmp_path):
    with open_session(
        "emulator", profile="always-online", seed=3, outbox=tmp_path / "outbox.jsonl"
    ) as running:
        yield running


def test_send_watch_revoke_on_the_emulator(session, tmp_path):
    assert rbmtools.default_client() is session.client
    sent = rbmtools.send("+15550000007", "Your code is 123456", ttl="10m", use_case="otp")
    events = session.watch(sent, "1m")
    assert list(events.columns) == [
        "eventType", "sendTime", "receivedAt", "secondsAfterSend", "eventId"
    ]  # fmt: skip
    assert events["eventType"].iloc[0] == "DELIVERED"
    assert 0 < events["secondsAfterSend"].iloc[0] < 60
    revoked = rbmtools.revoke(sent.phone, sent.message_id)
    assert (revoked.status, revoked.revoked) == (404, False)  # it was delivered
    assert "token" not in repr(session).lower()
    outbox = (tmp_path / "outbox.jsonl").read_text().splitlines()
    assert len(outbox) == 2


def test_demo_ids_then_a_bulk_revoke(session):
    ids = session.id_list(None, demo_batch=12)
    assert list(ids.columns) == ["phone", "message_id"] and 0 < len(ids) <= 12
    results = session.client.revoke_many(ids, progress=False)
    summary = revoke_summary(results)
    counts = dict(zip(summary["outcome"], summary["messages"], strict=True))
    assert sum(counts.values()) == len(ids)
    assert counts["failed"] == 0
    assert summary["share"].iloc[0].endswith("%")


def test_id_list_from_a_csv_keeps_other_columns_and_checks_them(session, tmp_path):
    good = tmp_path / "ids.csv"
    good.write_text("phone,message_id,campaign\n+15550000001,m-1,spring\n")
    frame = session.id_list(good)
    assert frame.to_dict("records") == [
        {"phone": "+15550000001", "message_id": "m-1", "campaign": "spring"}
    ]
    bad = tmp_path / "bad.csv"
    bad.write_text("phone,id\n+15550000001,m-1\n")
    with pytest.raises(ValidationError, match="has no message_id column"):
        session.id_list(bad)


def test_revoke_summary_counts_each_outcome():
    results = pd.DataFrame(
        {"status": [200, 404, 404, None], "inconclusive": [False, False, True, None],
         "error": [None, None, None, "ApiError: 503 UNAVAILABLE"]}
    )  # fmt: skip
    counts = dict(zip(*revoke_summary(results)[["outcome", "messages"]].T.values, strict=True))
    assert counts == {
        "revoked": 1,
        "not revoked (already delivered or unknown)": 1,
        "inconclusive (404 after a retry)": 1,
        "failed": 1,
    }


def test_live_sessions_check_their_arguments_first(tmp_path, monkeypatch):
    for name in ("RBM_SERVICE_ACCOUNT", "RBM_AGENT_ID", "RBM_REGION", "RBM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match="target"):
        open_session("production")
    with pytest.raises(ValidationError, match="RBM_AGENT_ID: is not set"):
        open_session("live", key_file=tmp_path / "key.json")
    with pytest.raises(RbmError, match=r"RBM_SERVICE_ACCOUNT"):
        open_session("live", events_dir=tmp_path)  # no credentials in this environment
