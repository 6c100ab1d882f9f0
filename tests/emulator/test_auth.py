"""OAuth: google-auth's real service-account flow against the emulator's token endpoint."""

from __future__ import annotations

import json
import time

import google.auth.crypt
import google.auth.exceptions
import google.auth.jwt
import pytest
import requests
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account

from rbmtools import wire
from rbmtools.emulator import Emulator
from rbmtools.emulator.auth import (
    JWT_BEARER_GRANT,
    TokenIssuer,
    ensure_key_file,
    generate_key_file,
    read_trusted_key,
)

from .conftest import PHONE, START, Api


@pytest.fixture(scope="module")
def emu():
    with Emulator(profile="always-online", speed=0, start=START) as running:
        yield running


def _assertion(key_file, **overrides) -> str:
    info = json.loads(key_file.read_text())
    signer = google.auth.crypt.RSASigner.from_service_account_info(info)
    now = int(time.time())
    claims = {
        "iss": info["client_email"],
        "scope": wire.SCOPE,
        "aud": wire.GOOGLE_TOKEN_AUDIENCE,
        "iat": now,
        "exp": now + 3600,
        **overrides,
    }
    return google.auth.jwt.encode(signer, claims).decode()


def _token(emu, assertion: str, grant: str = JWT_BEARER_GRANT):
    return requests.post(
        emu.base_url + "/token", data={"grant_type": grant, "assertion": assertion}, timeout=10
    )


def test_google_auth_service_account_flow_works_unchanged(emu):
    key = json.loads(emu.key_file.read_text())
    assert key["type"] == "service_account"
    assert key["token_uri"] == emu.base_url + "/token"
    assert key["private_key_id"] and key["client_email"].endswith(".iam.gserviceaccount.com")
    assert emu.key_file.stat().st_mode & 0o077 == 0  # readable by its owner only
    credentials = service_account.Credentials.from_service_account_file(
        str(emu.key_file), scopes=[wire.SCOPE]
    )
    credentials.refresh(Request())
    assert credentials.token.startswith("ya29.")
    assert credentials.valid
    session = AuthorizedSession(credentials)
    answer = session.get(
        emu.base_url + wire.capabilities_path(PHONE), params={"agentId": "a"}, timeout=10
    )
    assert answer.status_code == 200


def test_own_token_url_is_an_accepted_audience(emu):
    answer = _token(emu, _assertion(emu.key_file, aud=emu.base_url + "/token"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert answer.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"aud": "https://elsewhere.example/token"}, "invalid_grant"),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "invalid_grant"),
        ({"scope": "https://www.googleapis.com/auth/cloud-platform"}, "invalid_scope"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, "invalid_grant"),
    ],
)
def test_bad_assertions_are_refused(emu, overrides, error):
    answer = _token(emu, _assertion(emu.key_file, **overrides))
    assert answer.status_code == 400
    assert answer.json()["error"] == error


def test_unsupported_grant_and_garbage_are_refused(emu):
    assert _token(emu, "x", grant="client_credentials").json()["error"] == (
        "unsupported_grant_type"
    )
    assert _token(emu, "not.a.jwt").json()["error"] == "invalid_grant"


def test_an_untrusted_key_is_refused_by_google_auth(emu, tmp_path):
    stranger = tmp_path / "stranger.json"
    generate_key_file(stranger, emu.base_url + "/token")
    credentials = service_account.Credentials.from_service_account_file(
        str(stranger), scopes=[wire.SCOPE]
    )
    with pytest.raises(google.auth.exceptions.RefreshError, match="not trusted"):
        credentials.refresh(Request())
    emu.admin.trust_key(stranger)  # what `rbmtools emulator keygen --url` does
    credentials.refresh(Request())
    assert credentials.valid


def test_expired_tokens_are_refused():
    clock = [1000.0]
    issuer = TokenIssuer(lifetime=60, wall_clock=lambda: clock[0])
    issuer._tokens["ya29.t"] = 1060.0
    assert issuer.authorized("Bearer ya29.t")
    clock[0] = 1061.0
    assert not issuer.authorized("Bearer ya29.t")
    assert not issuer.authorized("ya29.t")
    assert not issuer.authorized(None)


def test_key_files_are_reused_and_repointed(tmp_path):
    path = tmp_path / "key.json"
    first = generate_key_file(path, "http://127.0.0.1:1/token")
    with pytest.raises(Exception, match="already exists"):
        generate_key_file(path, "http://127.0.0.1:1/token")
    again = ensure_key_file(path, "http://127.0.0.1:2/token")
    assert again == first
    assert json.loads(path.read_text())["token_uri"] == "http://127.0.0.1:2/token"
    assert read_trusted_key(path) == first


def test_a_given_key_file_is_reused_across_runs(tmp_path):
    path = tmp_path / "emulator-key.json"
    ids = []
    for _ in range(2):
        with Emulator(profile="always-online", speed=0, key_file=path) as emu:
            ids.append(json.loads(path.read_text())["private_key_id"])
            assert Api(emu).capabilities().status_code == 200
    assert ids[0] == ids[1]
    assert path.exists()  # a key the caller named is kept


@pytest.mark.parametrize("path", ["/token", "/oauth2/v4/token"])
def test_a_gtoken_shaped_assertion_gets_a_token(emu, path):
    """Google's Node client (googleapis -> gtoken): no ``kid`` in the header, the v4 token URL
    as audience, posted to the v4 path. The key is found by the issuer."""
    from .test_google_clients import gtoken_assertion

    answer = requests.post(
        emu.base_url + path,
        data={"grant_type": JWT_BEARER_GRANT, "assertion": gtoken_assertion(emu.key_file)},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["access_token"]
    capabilities = requests.get(
        emu.base_url + wire.capabilities_path(PHONE),
        params={"agentId": "a"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert capabilities.status_code == 200
