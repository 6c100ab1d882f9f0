"""Reliability with real processes: kill -9 mid-load, restart, nothing acknowledged is lost."""

from __future__ import annotations

import signal
import threading

from webhook_helpers import TOKEN, ServeProcess, free_port, wait_for

from rbmtools.webhook import read_events
from rbmtools.webhook.layout import list_segments
from rbmtools.webhook.loadgen import SignedLoad, sample_events


def logged_ids(log_dir) -> set[str]:
    return {logged.event.event_id for logged in read_events(log_dir, dedup=False)}


def test_kill_9_mid_load_then_restart_keeps_every_acknowledged_event(tmp_path):
    log_dir = tmp_path / "events"
    args = ("--port", str(free_port()), "--log-dir", str(log_dir))
    env = {"RBM_CLIENT_TOKEN": TOKEN}
    events = sample_events(3000, seed=11)
    first = ServeProcess(*args, env=env)
    url = first.wait_listening()
    # 64 senders that, like the platform, repeat every event until it gets a 200.
    load = SignedLoad(url, TOKEN, events, concurrency=64, backoff=0.05, deadline=90)
    sender = threading.Thread(target=load.run)
    sender.start()
    wait_for(lambda: len(load.acked) >= 800)
    acked_by_first = set(load.acked)  # every one of these was answered 200 by the first process
    first.process.kill()  # SIGKILL: no shutdown code runs
    first.finish()
    assert first.process.returncode == -signal.SIGKILL
    assert acked_by_first <= logged_ids(log_dir)  # acknowledged means already written

    second = ServeProcess(*args, env=env)
    second.wait_listening()
    sender.join(120)
    assert not sender.is_alive()
    second.process.send_signal(signal.SIGTERM)
    assert second.finish() == 0

    everything = {event["eventId"] for event in events}
    assert set(load.acked) == everything and not load.given_up
    assert load.failures  # the senders really did see the receiver go away
    reader = read_events(log_dir)
    ids = [logged.event.event_id for logged in reader]
    assert set(ids) == everything  # every event at least once...
    assert len(ids) == len(everything)  # ...and exactly once after de-duplication
    assert reader.counts.torn <= 1 and reader.counts.malformed == 0
    assert len(list_segments(log_dir)) >= 2  # the restart began its own segment


def test_sigterm_under_load_drains_and_never_acks_an_unstored_event(tmp_path):
    log_dir = tmp_path / "events"
    serve = ServeProcess(
        "--port", str(free_port()), "--log-dir", str(log_dir), env={"RBM_CLIENT_TOKEN": TOKEN}
    )
    url = serve.wait_listening()
    load = SignedLoad(url, TOKEN, sample_events(3000, seed=12), concurrency=64, deadline=1)
    sender = threading.Thread(target=load.run)
    sender.start()
    wait_for(lambda: len(load.acked) >= 500)
    serve.process.send_signal(signal.SIGTERM)
    assert serve.finish() == 0
    sender.join(60)
    assert set(load.acked) <= logged_ids(log_dir)
    assert load.given_up  # the rest could not be delivered once it was gone
    reader = read_events(log_dir)
    list(reader)
    assert reader.counts.torn == 0 and reader.counts.malformed == 0
