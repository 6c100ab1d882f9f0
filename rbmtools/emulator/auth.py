"""OAuth for the emulator: the service-account keys it issues and trusts, and its token endpoint.

google-auth's service-account flow posts ``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``
and an RS256-signed JWT assertion to the key file's ``token_uri``. The emulator checks the
signature against the public half of a key it issued (found by the JWT's ``kid``, or, for
Google's Node client (gtoken), which sends no ``kid``, by the issuer), the issuer (the key's
``client_email``), the audience (any of Google's token URLs, ``wire.GOOGLE_TOKEN_AUDIENCES``,
or the emulator's own), the expiry and the RBM scope, then answers with a short-lived bearer
token. It serves ``/token`` and ``/oauth2/v4/token``, the path gtoken always posts to.
Token lifetimes are real time (google-auth refreshes on the real clock), unlike
everything else in the emulator, which runs on platform time.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.auth.exceptions
import google.auth.jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from rbmtools.errors import AuthError, ValidationError
from rbmtools.wire import GOOGLE_TOKEN_AUDIENCES, SCOPE

__all__ = [
    "DEFAULT_CLIENT_EMAIL",
    "JWT_BEARER_GRANT",
    "TOKEN_LIFETIME",
    "TOKEN_PATH",
    "TOKEN_PATHS",
    "TokenIssuer",
    "TrustedKey",
    "ensure_key_file",
    "generate_key_file",
    "read_trusted_key",
]

TOKEN_PATH = "/token"  # noqa: S105 (a URL path)
#: Every path the token endpoint answers on: its own, and gtoken's (Google's v4 token URL).
TOKEN_PATHS = (TOKEN_PATH, "/oauth2/v4/token")
TOKEN_LIFETIME = 3600
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_PROJECT = "rbmtools-emulator"
DEFAULT_CLIENT_EMAIL = f"rbm-agent@{DEFAULT_PROJECT}.iam.gserviceaccount.com"
_CLOCK_SKEW = 10


@dataclass(frozen=True)
class TrustedKey:
    """The public half of a service-account key: what the token endpoint checks against."""

    key_id: str
    client_email: str
    public_pem: str = field(repr=False)


def _write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write a key file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _public_pem(private_pem: str, path: Path) -> str:
    try:
        key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise AuthError(f"{path}: private_key is not a readable PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AuthError(f"{path}: private_key is not an RSA key")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode("ascii")


def generate_key_file(
    path: str | Path,
    token_uri: str,
    *,
    client_email: str = DEFAULT_CLIENT_EMAIL,
    overwrite: bool = False,
) -> TrustedKey:
    """Write a fresh service-account JSON key (RSA 2048) whose ``token_uri`` is ``token_uri``.

    Refuses to replace an existing file unless ``overwrite``. Returns the key's public half.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise ValidationError("path", str(target), "already exists (give overwrite to replace)")
    if "@" not in client_email:
        raise ValidationError("client_email", client_email, "must be an e-mail address")
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    key_id = secrets.token_hex(20)
    project = client_email.partition("@")[2].split(".")[0] or DEFAULT_PROJECT
    _write_private(
        target,
        {
            "type": "service_account",
            "project_id": project,
            "private_key_id": key_id,
            "private_key": private_pem,
            "client_email": client_email,
            "client_id": str(int.from_bytes(secrets.token_bytes(8), "big")),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        },
    )
    return TrustedKey(key_id, client_email, _public_pem(private_pem, target))


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AuthError(f"{path}: cannot read the key file ({exc.strerror})") from None
    except ValueError:
        raise AuthError(f"{path}: the key file is not JSON") from None
    missing = [k for k in ("private_key", "private_key_id", "client_email") if not data.get(k)]
    if not isinstance(data, dict) or missing:
        raise AuthError(f"{path}: not a service-account key (missing {', '.join(missing)})")
    return data


def read_trusted_key(path: str | Path) -> TrustedKey:
    """The public half of an existing service-account key file."""
    target = Path(path)
    data = _load(target)
    return TrustedKey(
        str(data["private_key_id"]),
        str(data["client_email"]),
        _public_pem(str(data["private_key"]), target),
    )


def ensure_key_file(path: str | Path, token_uri: str) -> TrustedKey:
    """Reuse the key at ``path`` (pointing its ``token_uri`` here), or write a fresh one."""
    target = Path(path)
    if not target.exists():
        return generate_key_file(target, token_uri)
    data = _load(target)
    key = read_trusted_key(target)
    if data.get("token_uri") != token_uri:
        data["token_uri"] = token_uri
        _write_private(target, data)
    return key


def _scopes(claims: Mapping[str, Any]) -> set[str]:
    scope = claims.get("scope", "")
    return set(scope.split()) if isinstance(scope, str) else set()


class TokenIssuer:
    """Checks JWT assertions against trusted keys and keeps the bearer tokens it issued."""

    def __init__(
        self,
        token_urls: Iterable[str] = (),
        *,
        lifetime: int = TOKEN_LIFETIME,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.audiences = {*GOOGLE_TOKEN_AUDIENCES, *token_urls}
        self.lifetime = lifetime
        self._wall_clock = wall_clock
        self._keys: dict[str, TrustedKey] = {}
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()
        self.issued = 0
        self.refused = 0

    def trust(self, key: TrustedKey) -> None:
        self._keys[key.key_id] = key

    @property
    def trusted(self) -> list[TrustedKey]:
        return list(self._keys.values())

    def _refuse(self, error: str, description: str) -> tuple[int, dict[str, str]]:
        self.refused += 1
        return 400, {"error": error, "error_description": description}

    def exchange(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a token request (the form fields): ``(status, JSON body)`` as OAuth 2 does."""
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return self._refuse("unsupported_grant_type", f"grant_type must be {JWT_BEARER_GRANT}")
        assertion = form.get("assertion")
        if not assertion:
            return self._refuse("invalid_request", "the assertion field is missing")
        try:
            header = google.auth.jwt.decode_header(assertion)
            if not isinstance(header, dict) or header.get("alg") != "RS256":
                return self._refuse("invalid_grant", "the assertion must be signed with RS256")
            candidates = self._candidates(assertion, header)
            if not candidates:
                return self._refuse("invalid_grant", "the assertion's key is not trusted")
            claims = google.auth.jwt.decode(
                assertion,
                certs={key.key_id: key.public_pem for key in candidates},
                audience=sorted(self.audiences),
                clock_skew_in_seconds=_CLOCK_SKEW,
            )
        except (ValueError, TypeError, google.auth.exceptions.GoogleAuthError) as exc:
            return self._refuse("invalid_grant", f"invalid JWT assertion: {str(exc)[:200]}")
        if not any(claims.get("iss") == key.client_email for key in candidates):
            return self._refuse("invalid_grant", "the JWT issuer is not the key's client_email")
        if SCOPE not in _scopes(claims):
            return self._refuse("invalid_scope", f"the assertion must request the scope {SCOPE}")
        token = "ya29.emu-" + secrets.token_urlsafe(32)
        now = self._wall_clock()
        with self._lock:
            if len(self._tokens) > 1000:
                self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
            self._tokens[token] = now + self.lifetime
        self.issued += 1
        return 200, {"access_token": token, "expires_in": self.lifetime, "token_type": "Bearer"}

    def _candidates(self, assertion: str, header: dict[str, Any]) -> list[TrustedKey]:
        """The trusted keys that may have signed ``assertion``: the one its ``kid`` names, or
        (no ``kid``, as gtoken signs) every key of the issuer it claims."""
        kid = header.get("kid")
        if kid is not None:
            key = self._keys.get(kid) if isinstance(kid, str) else None
            return [key] if key is not None else []
        issuer = google.auth.jwt.decode(assertion, verify=False).get("iss")
        return [key for key in self._keys.values() if key.client_email == issuer]

    def authorized(self, authorization: str | None) -> bool:
        """True when the ``Authorization`` header carries a live token this issuer gave out."""
        if not authorization or not authorization.startswith("Bearer "):
            return False
        expiry = self._tokens.get(authorization[7:].strip())
        return expiry is not None and expiry > self._wall_clock()
