"""The client's pure parts: retry policy, Retry-After, rate limit, outbox, configuration."""

import json
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest

from rbmtools import AuthError, ValidationError
from rbmtools.client import ClientConfig, OutboxWriter, RateLimiter, RetryPolicy
from rbmtools.client.retry import retry_after_seconds
from rbmtools.client.session import load_credentials
from rbmtools.wire import RevokeRecord, SendRecord, parse_outbox_record


def test_full_jitter_backoff_stays_under_the_growing_cap():
    policy = RetryPolicy(initial_backoff=0.5, max_backoff=4.0, rng=random.Random(1))
    for attempt, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.backoff(attempt) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= cap
        assert max(delays) > cap * 0.8  # really spread over [0, cap]


def test_retry_after_is_a_floor():
    policy = RetryPolicy(initial_backoff=0.1, rng=random.Random(2))
    assert all(policy.backoff(1, retry_after=3.0) == 3.0 for _ in range(20))


def test_attempt_and_time_budgets():
    policy = RetryPolicy(max_attempts=3, max_elapsed=10.0, rng=random.Random(3))
    assert policy.next_delay(1, started=0.0, clock=lambda: 0.0) is not None
    assert policy.next_delay(3, started=0.0, clock=lambda: 0.0) is None
    assert policy.next_delay(1, started=0.0, retry_after=11.0, clock=lambda: 0.0) is None


@pytest.mark.parametrize("bad", [{"max_attempts": 0}, {"initial_backoff": -1}])
def test_policy_validation(bad):
    with pytest.raises(ValidationError):
        RetryPolicy(**bad)


def test_retry_after_forms():
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("1.5") == 1.5
    assert retry_after_seconds("Wed, 25 Nov 2026 10:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 25 Nov 2026 09:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


def test_rate_limiter_spaces_calls():
    clock = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(10.0, clock=lambda: clock[0], sleep=sleep)
    for _ in range(21):
        limiter.acquire()
    # first call free, then 20 more at 10/s: 2 seconds in total
    assert clock[0] == pytest.approx(2.0)


def test_rate_limiter_is_thread_safe():
    limiter = RateLimiter(2000.0, burst=1)
    started = []
    lock = threading.Lock()

    def worker():
        for _ in range(50):
            limiter.acquire()
            with lock:
                started.append(1)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 200


def test_rate_limiter_validation():
    with pytest.raises(ValidationError, match="rate"):
        RateLimiter(0)


def test_outbox_writer_appends_whole_lines_from_many_threads(tmp_path):
    path = tmp_path / "out" / "outbox.jsonl"
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    with OutboxWriter(path) as outbox:

        def worker(n):
            for i in range(100):
                outbox.write(
                    SendRecord(message_id=f"m{n}-{i}", phone="+12223334444", agent_id="a",
                               send_time=at + timedelta(seconds=i), status=200)
                )  # fmt: skip
                outbox.write(
                    RevokeRecord(message_id=f"m{n}-{i}", phone="+12223334444", agent_id="a",
                                 requested_at=at, status=404, attempt=1)
                )  # fmt: skip

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outbox.records_written == 800
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    kinds = [parse_outbox_record(line).kind for line in lines]
    assert kinds.count("send") == kinds.count("revoke") == 400


def test_config_names_the_missing_variable():
    with pytest.raises(ValidationError, match="RBM_SERVICE_ACCOUNT: is not set"):
        ClientConfig.from_env({"RBM_AGENT_ID": "a"})
    with pytest.raises(ValidationError, match="RBM_AGENT_ID: is not set"):
        ClientConfig.from_env({"RBM_SERVICE_ACCOUNT": "/k.json"})


def test_explicit_values_beat_the_environment_one_field_at_a_time():
    env = {
        "RBM_SERVICE_ACCOUNT": "/env/key.json",
        "RBM_AGENT_ID": "env-agent",
        "RBM_REGION": "asia",
        "RBM_BASE_URL": "",
    }
    from_env = ClientConfig.resolve(environ=env)
    assert (str(from_env.key_path), from_env.agent_id) == ("/env/key.json", "env-agent")
    assert from_env.base_url == "https://asia-rcsbusinessmessaging.googleapis.com"
    mixed = ClientConfig.resolve(agent_id="mine", region="europe", environ=env)
    assert (str(mixed.key_path), mixed.agent_id) == ("/env/key.json", "mine")
    assert mixed.base_url == "https://europe-rcsbusinessmessaging.googleapis.com"
    explicit = ClientConfig.resolve(
        "/flag/key.json", "flag-agent", base_url="http://127.0.0.1:9", environ=env
    )
    assert (str(explicit.key_path), explicit.agent_id) == ("/flag/key.json", "flag-agent")
    assert explicit.base_url == "http://127.0.0.1:9"  # the base URL beats any region
    assert ClientConfig.resolve(environ=env) == ClientConfig.from_env(env)
    with pytest.raises(ValidationError, match=r"RBM_AGENT_ID: is not set.*pass it explicitly"):
        ClientConfig.resolve(key_file="/k.json", environ={})


def test_config_regions_and_overrides():
    env = {"RBM_SERVICE_ACCOUNT": "/k.json", "RBM_AGENT_ID": "shop@rbm.goog"}
    assert ClientConfig.from_env(env).base_url == "https://rcsbusinessmessaging.googleapis.com"
    assert ClientConfig.from_env(env).agent_id == "shop"
    regional = ClientConfig.from_env({**env, "RBM_REGION": "europe"})
    assert regional.base_url == "https://europe-rcsbusinessmessaging.googleapis.com"
    local = ClientConfig.from_env(
        {**env, "RBM_REGION": "us", "RBM_BASE_URL": "http://127.0.0.1:9/"}
    )
    assert local.base_url == "http://127.0.0.1:9"
    with pytest.raises(ValidationError, match="region"):
        ClientConfig.from_env({**env, "RBM_REGION": "mars"})


def test_key_file_errors_name_the_path_not_the_content(tmp_path):
    with pytest.raises(AuthError, match="not found"):
        load_credentials(tmp_path / "missing.json")
    marker = "PRIVATE " + "KEY"  # spelled apart so no committed file looks like a key
    secret = f"-----BEGIN {marker}-----\nAAAA\n-----END {marker}-----\n"
    bad = tmp_path / "bad.json"
    info = {"type": "service_account", "client_email": "x@y", "private_key": secret}
    bad.write_text(json.dumps({**info, "token_uri": "http://127.0.0.1:1/t"}))
    with pytest.raises(AuthError) as raised:
        load_credentials(bad)
    assert str(bad) in str(raised.value)
    assert "AAAA" not in str(raised.value) and "PRIVATE" not in str(raised.value)
    other = tmp_path / "user.json"
    other.write_text(json.dumps({"type": "authorized_user"}))
    with pytest.raises(AuthError, match="not a service-account key"):
        load_credentials(other)
