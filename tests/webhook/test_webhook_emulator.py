"""The emulator's signed, retrying dispatcher against the receiver as a real process, killed -9.

The emulator (in-process) registers the receiver (handshake), delivers messages sent through
its RBM API with google-auth's real token flow, and pushes DELIVERED/READ events; the receiver
is killed mid-load and restarted on the same port. Afterwards the log must hold every event the
platform emitted at least once, and nothing the dispatcher saw acknowledged may be missing.
"""

from __future__ import annotations

import threading
import time

from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account
from webhook_helpers import TOKEN, ServeProcess, free_port

from rbmtools import wire
from rbmtools.emulator import Emulator
from rbmtools.webhook import read_events

MESSAGES = 400


def distinct_events(log_dir) -> set[tuple[str, str]]:
    return {
        (logged.event.message_id, logged.event.event_type)
        for logged in read_events(log_dir)
        if logged.event.message_id
    }


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_emulator_pushes_survive_a_kill_9_of_the_receiver(tmp_path):
    log_dir = tmp_path / "events"
    port = free_port()
    args = ("--port", str(port), "--path", "/rbm", "--log-dir", str(log_dir))
    env = {"RBM_CLIENT_TOKEN": TOKEN}
    first = ServeProcess(*args, env=env)
    url = first.wait_listening()

    with Emulator(
        profile="always-online",
        speed=600.0,
        seed=7,
        webhook_url=url,  # the handshake runs against the receiver here
        client_token=TOKEN,
        webhook_timeout=2.0,
    ) as emu:
        credentials = service_account.Credentials.from_service_account_file(
            str(emu.key_file), scopes=[wire.SCOPE]
        )
        statuses: list[int] = []

        def send_all() -> None:
            session = AuthorizedSession(credentials)
            for index in range(MESSAGES):
                answer = session.post(
                    emu.base_url + wire.messages_path(f"+1555{index:07d}"),
                    params={"messageId": f"msg-{index:04d}", "agentId": emu.agent_id},
                    json=wire.agent_message(f"Your code is {index:06d}"),
                    timeout=30,
                )
                statuses.append(answer.status_code)

        sender = threading.Thread(target=send_all)
        sender.start()
        wait_for(lambda: len(distinct_events(log_dir)) >= 100)
        acked_before_kill = emu.admin.stats()["webhook"]["sent"]
        first.process.kill()
        first.finish()
        # Each 200 the dispatcher counted is a distinct event that must already be logged.
        assert len(distinct_events(log_dir)) >= acked_before_kill > 0

        time.sleep(0.3)  # pushes fail meanwhile and are scheduled for retry
        assert emu.admin.stats()["webhook"]["failedAttempts"] > 0
        second = ServeProcess(*args, env=env)
        second.wait_listening()
        sender.join(120)
        assert statuses == [200] * MESSAGES

        # Freeze platform time, then step it until every emitted event has been pushed.
        emu.admin.set_speed(0)
        deadline = time.monotonic() + 60
        while True:
            emu.admin.advance("30m")
            emu.admin.wait_idle(10)
            webhook = emu.admin.stats()["webhook"]
            if webhook["backlog"] == 0:
                break
            assert time.monotonic() < deadline, webhook
        assert webhook["dropped"] == 0
        emitted = {
            (message["messageId"], event["eventType"])
            for message in emu.admin.messages()
            for event in message["events"]
        }
    second.process.terminate()
    assert second.finish() == 0

    reader = read_events(log_dir)
    logged = {(e.event.message_id, e.event.event_type) for e in reader}
    assert len(emitted) >= MESSAGES  # every message DELIVERED, many also READ
    assert emitted <= logged  # every event at least once
    assert all(e.verified for e in read_events(log_dir))
    assert reader.counts.torn <= 1 and reader.counts.malformed == 0
    assert len(reader.files) >= 2  # the restarted receiver wrote its own segment
