"""The ad hoc surface for notebooks: ``rbmtools.send(...)`` and ``rbmtools.revoke(...)``.

They use a default client built on first use from the environment (``RBM_SERVICE_ACCOUNT``,
``RBM_AGENT_ID``, optional ``RBM_REGION`` / ``RBM_BASE_URL``); a missing variable is named in
the error. ``set_default_client`` installs another one, e.g. a client of the emulator.
"""

from __future__ import annotations

import threading
from typing import Any

from rbmtools.client.core import RbmClient
from rbmtools.client.results import RevokeResult, SendResult

__all__ = ["default_client", "revoke", "send", "set_default_client"]

_lock = threading.Lock()
_default: RbmClient | None = None


def default_client() -> RbmClient:
    """The client that ``send`` and ``revoke`` use (built from the environment on first use)."""
    global _default
    with _lock:
        if _default is None:
            _default = RbmClient.from_env()
        return _default


def set_default_client(client: RbmClient | None) -> None:
    """Use ``client`` for ``send`` and ``revoke`` (None: build from the environment again)."""
    global _default
    with _lock:
        _default = client


def send(phone: str, text: str | None = None, **kwargs: Any) -> SendResult:
    """Send one message with the default client; see ``RbmClient.send``."""
    return default_client().send(phone, text, **kwargs)


def revoke(phone: str, message_id: str, **kwargs: Any) -> RevokeResult:
    """Revoke one message with the default client; see ``RbmClient.revoke``."""
    return default_client().revoke(phone, message_id, **kwargs)
