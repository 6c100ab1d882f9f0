"""Credentials and the HTTP session: google-auth's service-account flow over requests.

A service-account key file names its ``token_uri``; google-auth signs a JWT with the key, posts
it there (RFC 7523 grant) and receives a short-lived bearer token, which ``AuthorizedSession``
attaches to every request and refreshes when it expires. The key stays in the credentials
object: nothing here logs, prints or repeats it, and errors name the key *path* only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests
from google.auth.transport.requests import AuthorizedSession
from google.oauth2 import service_account

from rbmtools.errors import AuthError, ValidationError
from rbmtools.wire.api import SCOPE, base_url_for, validate_agent_id

__all__ = ["ENV_VARS", "ClientConfig", "authorized_session", "load_credentials"]

#: The environment variables ``RbmClient.from_env`` reads, and what each holds.
ENV_VARS = {
    "RBM_SERVICE_ACCOUNT": "path of the service-account JSON key (never the key itself)",
    "RBM_AGENT_ID": "the agent id, the part of the agent's address before @rbm.goog",
    "RBM_REGION": "us, europe or asia for a regional endpoint; unset for the global one",
    "RBM_BASE_URL": "an API base URL that overrides the region (the emulator, a proxy)",
}


def load_credentials(key_path: str | os.PathLike[str]) -> service_account.Credentials:
    """Service-account credentials with the RBM scope, or ``AuthError`` naming the path."""
    path = Path(key_path).expanduser()
    if not path.is_file():
        raise AuthError(f"service-account key file not found: {path}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AuthError(
            f"cannot read service-account key file {path}: {type(exc).__name__}"
        ) from None
    if not isinstance(info, Mapping) or info.get("type") != "service_account":
        raise AuthError(
            f"{path} is not a service-account key (its 'type' must be 'service_account')"
        )
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise AuthError(f"service-account key file {path} lacks {', '.join(missing)}")
    try:
        return service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
    except (ValueError, TypeError) as exc:
        # The message of a key-parsing error never includes the key material itself.
        raise AuthError(
            f"service-account key file {path} is unusable: {type(exc).__name__}"
        ) from None


def authorized_session(
    credentials: service_account.Credentials, *, pool_size: int = 10
) -> AuthorizedSession:
    """An ``AuthorizedSession`` whose connection pool holds ``pool_size`` connections per host."""
    session = AuthorizedSession(credentials)
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4, pool_maxsize=max(1, pool_size), max_retries=0
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass(frozen=True)
class ClientConfig:
    """Where and as whom to call the API: key path, agent id and base URL."""

    key_path: Path
    agent_id: str
    base_url: str

    @classmethod
    def from_values(
        cls,
        key_path: str | os.PathLike[str],
        agent_id: str,
        *,
        region: str | None = None,
        base_url: str | None = None,
    ) -> ClientConfig:
        url = (base_url or base_url_for(region)).rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ValidationError("base_url", base_url, "must start with http:// or https://")
        return cls(Path(key_path).expanduser(), validate_agent_id(agent_id), url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ClientConfig:
        """Read ``RBM_SERVICE_ACCOUNT``, ``RBM_AGENT_ID``, ``RBM_REGION``, ``RBM_BASE_URL``."""
        return cls.resolve(environ=environ)

    @classmethod
    def resolve(
        cls,
        key_file: str | os.PathLike[str] | None = None,
        agent_id: str | None = None,
        region: str | None = None,
        base_url: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> ClientConfig:
        """The configuration from explicit values, each one falling back to its ``RBM_*``
        environment variable (``ENV_VARS``): an explicit value always beats the environment.

        This is the one place that rule lives; the CLI flags, the experiment runner's live
        target and the notebook sessions all come through here. A key path and an agent id
        must come from one or the other; the error names the variable to export.
        """
        env = os.environ if environ is None else environ
        explicit = {
            "RBM_SERVICE_ACCOUNT": key_file,
            "RBM_AGENT_ID": agent_id,
            "RBM_REGION": region,
            "RBM_BASE_URL": base_url,
        }
        values = {
            name: os.fspath(value) if value else (env.get(name) or None)
            for name, value in explicit.items()
        }
        for name in ("RBM_SERVICE_ACCOUNT", "RBM_AGENT_ID"):
            if not values[name]:
                raise ValidationError(
                    name,
                    env.get(name),
                    f"is not set; export it as the {ENV_VARS[name]} (or pass it explicitly)",
                )
        return cls.from_values(
            values["RBM_SERVICE_ACCOUNT"],  # type: ignore[arg-type]
            values["RBM_AGENT_ID"],  # type: ignore[arg-type]
            region=values["RBM_REGION"],
            base_url=values["RBM_BASE_URL"],
        )
