"""Invariants of the platform model under random traffic (hypothesis), the TTL race included."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbmtools.emulator.model import MessageState, PlatformModel
from rbmtools.emulator.profiles import load_profile

from .conftest import START

AGENT = "prop-agent"
PHONES = [f"+1555070{i:04d}" for i in range(6)]
# Short spells and a long hand-off make races, expiries and late deliveries common.
PROFILE = load_profile(
    {
        "extends": "flaky-network",
        "devices": {
            "rcs_capable_share": 1.0,
            "never_back_share": 0.2,
            "online": {"median": 60, "sigma": 1},
            "offline": {"median": 120, "sigma": 1},
        },
        "delivery": {
            "latency": {"median": 5, "sigma": 1},
            "handoff_window": 4,
            "race_probability": 0.5,
            "ttl_race_probability": 0.8,  # short TTLs below race with their deliveries often
            "ttl_race_scale": 60,
        },
    }
)

actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("send"),
            st.sampled_from(PHONES),
            st.integers(0, 30),
            st.sampled_from([None, "3s", "15s", "60s", "600s"]),
        ),
        st.tuples(st.just("revoke"), st.sampled_from(PHONES), st.integers(0, 30), st.none()),
        st.tuples(st.just("wait"), st.none(), st.integers(1, 400), st.none()),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=actions, seed=st.integers(0, 3))
def test_random_traffic_keeps_the_platform_rules(actions, seed):
    model = PlatformModel(PROFILE, seed=seed, epoch=START)
    now = 0.0
    events = []
    revokes: dict[str, list[tuple[float, int, bool]]] = {}  # only revokes of a known message
    for kind, phone, number, ttl in actions:
        if kind == "wait":
            now += number
            events += model.advance(now)
            continue
        message_id = f"m{number}"
        if kind == "send":
            body = {"contentMessage": {"text": "hi"}}
            if ttl:
                body["ttl"] = ttl
            assert model.send(AGENT, phone, message_id, body, now).status in (200, 404)
        else:
            msg = model.message(AGENT, message_id)
            known = msg is not None and msg.phone == phone
            in_handoff = known and msg.in_handoff(now)
            status = model.revoke(AGENT, phone, message_id, now).status
            assert known or status == 404
            if known:
                revokes.setdefault(message_id, []).append((now, status, in_handoff))
    events += model.advance(now + 40 * 86_400)

    by_message: dict[str, list] = {}
    for event in events:
        by_message.setdefault(event.message_id, []).append(event)
    counts = model.counts()
    assert sum(counts.values()) == len(list(model.messages()))
    assert counts[MessageState.QUEUED] == 0  # everything resolves within the 30-day hold
    for msg in model.messages():
        mine = by_message.get(msg.message_id, [])
        kinds = [e.event_type for e in mine]
        assert kinds.count("DELIVERED") <= 1 and kinds.count("READ") <= 1
        assert len([k for k in kinds if k.startswith("TTL_")]) <= 1
        for event in mine:
            assert event.at >= msg.send_at
            if event.event_type.startswith("TTL_"):
                assert event.at == msg.expire_at
        if "READ" in kinds:
            assert kinds.index("READ") > kinds.index("DELIVERED")
        if "TTL_EXPIRATION_REVOKED" in kinds and "DELIVERED" in kinds:
            # the TTL race: only a message marked so, delivered after its revocation
            assert msg.ttl_race
            assert kinds.index("DELIVERED") > kinds.index("TTL_EXPIRATION_REVOKED")
        if msg.ttl_race:
            assert "TTL_EXPIRATION_REVOKED" in kinds
        delivered = [e.at for e in mine if e.event_type == "DELIVERED"]
        for at, status, in_handoff in revokes.get(msg.message_id, []):
            if status == 200 and delivered and at <= delivered[0]:
                # a revoke that answered 200 before the delivery is a race: the hand-off
                # race of an API revoke, or the message had already lost the TTL race
                assert in_handoff or msg.ttl_race
            if status == 404 and msg.state is not MessageState.DROPPED:
                # 404 only once delivered: an undelivered message is revoked (200), even after
                # TTL_EXPIRATION_REVOKE_FAILED
                assert delivered and delivered[0] <= at
