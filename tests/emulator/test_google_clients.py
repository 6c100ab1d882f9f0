"""What Google's own clients send, replayed against the emulator (Google's code is not in
the repository): the Node helper's token request as gtoken builds it and its googleapis calls,
through the emulator's Google proxy with Google's URLs unchanged; and the curl command lines
of Google's published scripts, likewise. The samples themselves were run by hand (README,
"Google's samples against the emulator")."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import google.auth.crypt
import pytest
import requests

from rbmtools import wire
from rbmtools.emulator import Emulator

from .conftest import PHONE, START, WebhookSink

GOOGLE = "https://rcsbusinessmessaging.googleapis.com"
GTOKEN_URL = "https://www.googleapis.com/oauth2/v4/token"  # gtoken's GOOGLE_TOKEN_URL
OFFLINE = "+12223335555"


@pytest.fixture(scope="module")
def module_sink() -> Iterator[WebhookSink]:
    hook = WebhookSink().start()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
def emu(module_sink: WebhookSink) -> Iterator[Emulator]:
    with Emulator(
        profile="always-online",
        speed=0,
        start=START,
        google_proxy=True,
        webhook_url=module_sink.url,
        client_token=module_sink.client_token,
    ) as running:
        running.admin.pin_phone(OFFLINE, offline_for="1d")
        yield running


@pytest.fixture(scope="module")
def via_proxy(emu: Emulator) -> requests.Session:
    """A session that reaches Google's hosts as Node or curl would behind HTTPS_PROXY."""
    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": emu.google_proxy_url}
    session.verify = str(emu.google_proxy_ca)
    return session


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def gtoken_assertion(key_file) -> str:
    """The JWT exactly as gtoken 7 signs it: header ``{"alg":"RS256"}`` (no ``kid``), claims
    iss, scope, aud = the v4 token URL, exp, iat, in that order."""
    info = json.loads(key_file.read_text())
    signer = google.auth.crypt.RSASigner.from_string(info["private_key"])  # no key id
    iat = int(time.time())
    claims = {
        "iss": info["client_email"],
        "scope": wire.SCOPE,
        "aud": GTOKEN_URL,
        "exp": iat + 3600,
        "iat": iat,
    }
    head = _b64(b'{"alg":"RS256"}')
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'))}"


def gtoken_token(via_proxy: requests.Session, key_file) -> str:
    """POST to gtoken's URL, as gaxios sends it (url-encoded form, JSON accepted back)."""
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": gtoken_assertion(key_file),
    }
    answer = via_proxy.post(
        GTOKEN_URL,
        data=urlencode(form),
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.fixture(scope="module")
def node_headers(emu: Emulator, via_proxy: requests.Session) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {gtoken_token(via_proxy, emu.key_file)}",
        "x-goog-api-client": "gdcl/7.2.0 gl-node/20.20.2",
        "User-Agent": "google-api-nodejs-client/7.2.0 (gzip)",
    }


# ------------------------------------------------------------------------- the Node helper


def test_gtoken_gets_a_token_at_its_own_url_without_a_kid(emu, via_proxy):
    assert gtoken_token(via_proxy, emu.key_file).startswith("ya29.")


def test_a_kidless_assertion_must_still_be_signed_by_the_issuers_key(emu, via_proxy, tmp_path):
    from rbmtools.emulator.auth import generate_key_file

    stranger = tmp_path / "stranger.json"
    generate_key_file(stranger, "http://127.0.0.1:1/token")  # same default client_email
    form = {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": gtoken_assertion(stranger),
    }
    answer = via_proxy.post(GTOKEN_URL, data=form, timeout=10)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_the_node_helpers_calls_send_expire_revoke_and_read_capabilities(
    emu, via_proxy, node_headers, module_sink
):
    agent = {"agentId": emu.agent_id}
    capabilities = via_proxy.get(  # getCapabilities: /v1/{+name}/capabilities
        f"{GOOGLE}/v1/phones/{PHONE}/capabilities",
        params={"requestId": str(uuid.uuid4()), **agent},
        headers=node_headers,
        timeout=10,
    )
    assert capabilities.status_code == 200 and "REVOCATION" in capabilities.json()["features"]

    def create(phone: str, body: dict) -> requests.Response:  # agentMessages.create
        return via_proxy.post(
            f"{GOOGLE}/v1/phones/{phone}/agentMessages",
            params={"messageId": str(uuid.uuid4()), **agent},
            data=json.dumps(body),
            headers={**node_headers, "Content-Type": "application/json"},
            timeout=10,
        )

    sent = create(PHONE, {"contentMessage": {"text": "Hello, World!"}})
    assert sent.status_code == 200, sent.text
    expiring = create(OFFLINE, {"contentMessage": {"text": "soon gone"}, "ttl": "5s"})
    assert expiring.status_code == 200
    queued = create(OFFLINE, {"contentMessage": {"text": "revoke me"}, "ttl": "600s"})
    name = queued.json()["name"]
    revoked = via_proxy.delete(
        f"{GOOGLE}/v1/{name}", params=agent, headers=node_headers, timeout=10
    )
    assert (revoked.status_code, revoked.json()) == (200, {})
    emu.admin.advance(10)
    assert emu.admin.wait_idle(10)
    expired_id = expiring.json()["name"].rsplit("/", 1)[1]
    assert module_sink.types_for(expired_id) == ["TTL_EXPIRATION_REVOKED"]
    assert emu.admin.message(name.rsplit("/", 1)[1])["state"] == "revoked"

    file = via_proxy.post(  # files.create, as uploadFile({fileUrl}) sends it
        f"{GOOGLE}/v1/files",
        params=agent,
        data=json.dumps({"fileUrl": "https://example.com/dog.jpg"}),
        headers={**node_headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert file.status_code == 200 and file.json()["name"].startswith("files/")
    users = via_proxy.post(  # users.batchGet: agentId in the query, users in the body
        f"{GOOGLE}/v1/users:batchGet",
        params=agent,
        data=json.dumps({"users": [PHONE, OFFLINE]}),
        headers={**node_headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert users.status_code == 200 and set(users.json()["reachableUsers"]) == {PHONE, OFFLINE}


def test_the_proxy_takes_only_googles_hosts(emu):
    proxy = emu.google_proxy_url.removeprefix("http://")
    for target in ("example.com:443", "rcsbusinessmessaging.googleapis.com:80"):
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_connect}",
                "--proxy",
                f"http://{proxy}",
                "--cacert",
                str(emu.google_proxy_ca),
                f"https://{target}/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.stdout.strip() == "403", (target, result.stdout, result.stderr)


# ------------------------------------------------------------------- the curl scripts


def _curl(emu, via_proxy, *args: str) -> tuple[int, dict]:
    """A curl command line as Google's scripts issue it (URLs unchanged) behind the proxy;
    ``oauth2l header --json serviceAccount.json rcsbusinessmessaging`` prints the header the
    first argument carries here."""
    token = gtoken_token(via_proxy, emu.key_file)
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--proxy",
            emu.google_proxy_url,
            "--cacert",
            str(emu.google_proxy_ca),
            "-w",
            "\n%{http_code}",
            *args,
            "-H",
            f"Authorization: Bearer {token}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, status = result.stdout.rsplit("\n", 1)
    return int(status), json.loads(body)


HEADERS = ("-H", "Content-Type: application/json", "-H", "User-Agent: curl/business-messaging")


def test_the_curl_scripts_as_google_publishes_them(emu, via_proxy):
    agent = emu.agent_id
    status, body = _curl(  # createMessage.sh
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/phones/{PHONE}/agentMessages?agentId={agent}&messageId=123456661",
        *HEADERS,
        "-d",
        "{\n  'contentMessage': {\n    'text': 'Hello World'\n  }\n}",
    )
    assert (status, body["contentMessage"]) == (200, {"text": "Hello World"})
    card = (
        "{'contentMessage':{'richCard':{'standaloneCard':{'cardOrientation':'VERTICAL',"
        "'cardContent':{'title':'Hello, world!','description':'RBM is awesome!','suggestions':["
        "{'reply':{'text':'Suggestion #1','postbackData':'suggestion_1'}},"
        "{'action':{'text':'View map','postbackData':'postback_data_1234','viewLocationAction':"
        "{'latLong':{'latitude':37.4220188,'longitude':-122.0844786},'label':'Googleplex'}}}]}}}}}"
    )
    status, body = _curl(  # createMessage-richCard.sh (without its stray "POST" argument)
        emu,
        via_proxy,
        f"{GOOGLE}/v1/phones/{PHONE}/agentMessages?agentId={agent}&messageId=1234566622a1",
        *HEADERS,
        "-d",
        card,
    )
    assert status == 200 and "standaloneCard" in body["contentMessage"]["richCard"]
    status, body = _curl(  # getCapabilities.sh
        emu,
        via_proxy,
        f"{GOOGLE}/v1/phones/{PHONE}/capabilities?agentId={agent}&requestId=1234",
        *HEADERS,
    )
    assert status == 200 and "REVOCATION" in body["features"]
    status, body = _curl(  # batchGet.sh
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/users:batchGet",
        *HEADERS,
        "-d",
        f"{{\n  'users': [\n    '{PHONE}'\n  ],\n  'agentId': '{agent}'\n}}",
    )
    assert (status, body["reachableUsers"]) == (200, [PHONE])
    status, body = _curl(  # createFile.sh
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/files?agentId={agent}",
        *HEADERS,
        "-d",
        "{\n    'fileUrl': 'https://storage.example/cute-dog.jpg',\n"
        "    'thumbnailUrl': 'https://storage.example/elephant.jpg'\n}",
    )
    assert status == 200 and body["name"].startswith("files/")
    status, body = _curl(  # inviteTester.sh: the method Google removed on 2026-01-31
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/phones/{PHONE}/testers?agentId={agent}",
        *HEADERS,
        "-d",
        "{\n  'inviteStatus': 'PENDING'\n}",
    )
    assert (status, body["error"]["status"]) == (404, "NOT_FOUND")


def test_curl_expiry_and_revoke_as_googles_guides_write_them(emu, via_proxy, module_sink):
    agent = emu.agent_id
    status, body = _curl(  # "Set a message expiration": a single-quoted ttl
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/phones/{OFFLINE}/agentMessages?agentId={agent}&messageId=curl-ttl",
        *HEADERS,
        "-d",
        "{'contentMessage': {'text': 'Expiring'}, 'ttl': '10s'}",
    )
    assert status == 200 and body["expireTime"]
    status, body = _curl(
        emu,
        via_proxy,
        "-X",
        "POST",
        f"{GOOGLE}/v1/phones/{OFFLINE}/agentMessages?agentId={agent}&messageId=curl-revoke",
        *HEADERS,
        "-d",
        "{'contentMessage': {'text': 'Revoke me'}, 'ttl': '600s'}",
    )
    assert status == 200
    status, body = _curl(  # "Revoke messages"
        emu,
        via_proxy,
        "-X",
        "DELETE",
        f"{GOOGLE}/v1/phones/{OFFLINE}/agentMessages/curl-revoke?agentId={agent}",
        *HEADERS,
    )
    assert (status, body) == (200, {})
    emu.admin.advance(20)
    assert emu.admin.wait_idle(10)
    assert module_sink.types_for("curl-ttl") == ["TTL_EXPIRATION_REVOKED"]
    assert module_sink.types_for("curl-revoke") == []
