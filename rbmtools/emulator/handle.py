"""``Emulator``: run the whole emulator in-process, on a free loopback port, in a background
thread with its own asyncio loop, and stop it cleanly. Tests, notebooks and the demo use it.

    with Emulator(profile="commuters", speed=600, seed=7) as emu:
        emu.base_url   # "http://127.0.0.1:PORT": the RBM API base (paths /v1/...)
        emu.key_file   # service-account JSON key that the emulator issued and trusts
        emu.agent_id   # the agent id to use
        emu.clock      # .now() platform time, .speed
        emu.admin      # AdminClient: the admin surface as methods
        emu.sms        # SmsSink: what fallback SMS arrived, and when
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from rbmtools.background import BackgroundLoop
from rbmtools.emulator.admin_client import AdminClient
from rbmtools.emulator.auth import read_trusted_key
from rbmtools.emulator.clock import VirtualClock
from rbmtools.emulator.profiles import Profile
from rbmtools.emulator.server import EmulatorServer
from rbmtools.emulator.sms import SmsSink
from rbmtools.errors import ValidationError

__all__ = ["DEFAULT_AGENT_ID", "Emulator"]

log = logging.getLogger("rbmtools.emulator")

DEFAULT_AGENT_ID = "rbmtools-emulator"
_START_TIMEOUT = 30.0


class Emulator:
    """The emulator as a context manager (see the module doc).

    ``profile`` is a shipped profile name, a YAML/JSON path, a mapping or a ``Profile``;
    ``speed`` the clock factor (0: stepping mode, time moves only with ``admin.advance``);
    ``seed`` makes devices and draws reproducible; ``agent_id`` restricts the emulator to that
    one agent (otherwise any agent id is served and ``emu.agent_id`` is a suggestion);
    ``key_file`` is where the service-account key is written or reused (a temporary folder
    otherwise); ``webhook_url`` + ``client_token`` register a webhook at start (the handshake
    must succeed, else ``RegistrationError``); ``legacy_revoke`` makes revoke always answer
    200; ``start`` fixes the platform time at which the clock starts; ``agent_use_case``
    (``OTP``, ``TRANSACTIONAL``, ``PROMOTIONAL``, ``MULTI_USE``) overrides the profile's use
    case of every agent, which decides the traffic type of messages that name none;
    ``google_proxy`` also starts the proxy for clients that hard-code Google's URLs
    (``google_proxy_url``, ``google_proxy_ca``: see ``rbmtools.emulator.google_proxy``).
    """

    def __init__(
        self,
        profile: str | Path | Mapping[str, Any] | Profile = "default",
        speed: float = 600.0,
        seed: int | str = 7,
        agent_id: str | None = None,
        key_file: str | Path | None = None,
        webhook_url: str | None = None,
        client_token: str | None = None,
        legacy_revoke: bool = False,
        *,
        start: datetime | str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        trust_keys: Iterable[str | Path] = (),
        max_in_flight: int = 64,
        webhook_timeout: float = 10.0,
        agent_use_case: str | None = None,
        google_proxy: bool = False,
    ) -> None:
        if (webhook_url is None) != (client_token is None):
            raise ValidationError(
                "webhook_url/client_token",
                webhook_url,
                "give both the webhook URL and its clientToken, or neither",
            )
        self._server = EmulatorServer(
            profile=profile,
            speed=speed,
            seed=seed,
            agent_id=agent_id,
            legacy_revoke=legacy_revoke,
            start=start,
            max_in_flight=max_in_flight,
            webhook_timeout=webhook_timeout,
            agent_use_case=agent_use_case,
            google_proxy=0 if google_proxy else None,
        )
        self.agent_id = agent_id or DEFAULT_AGENT_ID
        self._host, self._port = host, port
        self._wanted_key_file = None if key_file is None else Path(key_file)
        self._webhook = (webhook_url, client_token)
        self._trust = [Path(p) for p in trust_keys]
        self._background = BackgroundLoop("rbmtools-emulator", start_timeout=_START_TIMEOUT)
        self._temp_dir: Path | None = None
        self.base_url: str = ""
        self.key_file: Path = Path()
        self.admin: AdminClient = AdminClient("http://127.0.0.1:0")

    def __repr__(self) -> str:
        state = self.base_url or "not started"
        return f"Emulator({state}, agent_id={self.agent_id!r}, speed={self.clock.speed:g})"

    @property
    def clock(self) -> VirtualClock:
        """The platform clock (``now()``, ``speed``); safe to read from any thread."""
        return self._server.clock

    @property
    def sms(self) -> SmsSink:
        """The SMS sink: fallback SMS arrive here, stamped with the platform clock."""
        return self._server.sms

    @property
    def google_proxy_url(self) -> str | None:
        """``http://127.0.0.1:PORT`` for ``HTTPS_PROXY`` (with ``google_proxy=True``)."""
        proxy = self._server.google_proxy
        return None if proxy is None else proxy.url

    @property
    def google_proxy_ca(self) -> Path | None:
        """The CA certificate clients behind the proxy must trust (``NODE_EXTRA_CA_CERTS``)."""
        proxy = self._server.google_proxy
        return None if proxy is None else proxy.ca_file

    @property
    def server(self) -> EmulatorServer:
        """The running server (model, dispatcher...): for introspection in tests."""
        return self._server

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> Emulator:
        """Start the server thread; returns once the emulator answers (or raises why not)."""
        if self._background.running:
            return self
        self.base_url = self._background.start(
            lambda: self._server.start(self._host, self._port), self._server.stop
        )
        try:
            self._after_start()
        except BaseException:
            self.stop()
            raise
        return self

    def _after_start(self) -> None:
        if self._wanted_key_file is None:
            self._temp_dir = Path(tempfile.mkdtemp(prefix="rbmtools-emulator-"))
            self.key_file = self._temp_dir / "service-account.json"
        else:
            self.key_file = self._wanted_key_file
        self._server.use_key_file(self.key_file)
        self._server.trust_keys(read_trusted_key(p) for p in self._trust)
        self.admin = AdminClient(self.base_url, agent_id=self.agent_id)
        url, token = self._webhook
        if url is not None and token is not None:
            self.call(self._server.register_webhook(url, token))

    def call(self, coroutine: Any, timeout: float = 60.0) -> Any:
        """Run a coroutine on the emulator's loop and wait for its result (advanced use)."""
        return self._background.call(coroutine, timeout)

    def stop(self) -> None:
        """Stop the server and its thread; remove the temporary key folder."""
        self._background.stop()
        self.admin.close()
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
