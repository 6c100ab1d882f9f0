"""A rehearsal: the RBM platform offline, wired: an emulator, a webhook receiver registered with
it, and a client of it.

This is the one place the three are put together. The experiment runner's emulator target uses
it, and so do the notebooks' ad hoc sessions (``rbmtools.notebook.open_session("emulator")``).
The emulator is started in-process (and stopped at the end), or a running one is used as it
is, or one served elsewhere (``rbmtools emulator serve``) is attached by URL with its key; the
receiver always runs in-process on a free port and logs to ``events_dir``, with a fresh
clientToken, on the platform's clock. At the end the emulator is given a moment to push what is
due, an emulator that is not ours is detached from the receiver, and everything is closed.
"""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from rbmtools.client import OutboxWriter, RbmClient
from rbmtools.client.sms import SmsSender
from rbmtools.errors import ValidationError
from rbmtools.experiment.schedule import MirroredClock, PlatformClock
from rbmtools.experiment.sms import EmulatorSmsSender, SinkSmsSender

__all__ = ["Rehearsal"]

#: How long ``close`` lets the emulator push what is due before detaching (real seconds).
SETTLE_SECONDS = 10.0


class Rehearsal:
    """An emulator, a receiver registered with it, and a client; close it when done.

    Build it with ``Rehearsal.open``. ``client`` talks to the emulator (its outbox, if given,
    gets every send and revoke); ``clock`` is the platform's clock; ``admin`` the emulator's
    admin surface; ``events_dir`` the receiver's log; ``emulator`` the in-process emulator
    (None when attached by URL); ``owned`` whether this rehearsal started it.
    """

    def __init__(
        self,
        *,
        client: RbmClient,
        clock: PlatformClock,
        admin: Any,
        events_dir: Path,
        emulator: Any,
        receiver: Any,
        owned: bool,
        stack: ExitStack,
    ) -> None:
        self.client = client
        self.clock = clock
        self.admin = admin
        self.events_dir = events_dir
        self.emulator = emulator
        self.receiver = receiver
        self.owned = owned
        self._stack = stack
        self._closed = False

    @classmethod
    def open(
        cls,
        events_dir: str | os.PathLike[str],
        *,
        emulator: Any = None,
        profile: Any = None,
        speed: float = 600.0,
        seed: int = 0,
        start: datetime | None = None,
        key_file: str | os.PathLike[str] | None = None,
        agent_id: str | None = None,
        outbox: str | os.PathLike[str] | OutboxWriter | None = None,
        pool_size: int = 16,
        **client_options: Any,
    ) -> Rehearsal:
        """Start or attach to an emulator, start a receiver logging to ``events_dir`` and
        register it, and build a client.

        ``emulator``: None (start one in-process with ``profile``, ``speed``, ``seed`` and
        ``start``), a running ``rbmtools.Emulator``, or the URL of one served elsewhere (give
        its ``key_file``; ``agent_id`` defaults to the emulator's). A ``profile`` given with an
        emulator that is not started here is loaded into it unless it already runs it.
        ``client_options`` go to the client (``policy``, ``sms``, ``retry``...).
        """
        from rbmtools.emulator import DEFAULT_AGENT_ID, AdminClient, Emulator
        from rbmtools.webhook import Receiver

        stack = ExitStack()
        try:
            running: Any
            if emulator is None:
                running = Emulator(
                    profile=profile or "default", speed=speed, seed=seed, start=start
                )
                stack.enter_context(running)
                admin, clock, owned = running.admin, running.clock, True
                client = RbmClient.from_emulator(
                    running, outbox=outbox, pool_size=pool_size, **client_options
                )
            elif isinstance(emulator, str):
                if key_file is None:
                    raise ValidationError(
                        "key_file",
                        None,
                        "attaching to an emulator by URL needs its service-account key",
                    )
                admin, running, owned = AdminClient(emulator), None, False
                stack.callback(admin.close)
                clock = MirroredClock(admin)
                client = RbmClient.from_service_account_file(
                    key_file,
                    agent_id or DEFAULT_AGENT_ID,
                    base_url=emulator,
                    outbox=outbox,
                    clock=clock.now,
                    pool_size=pool_size,
                    **client_options,
                )
            else:
                running, owned = emulator, False
                admin, clock = running.admin, running.clock
                client = RbmClient.from_emulator(
                    running, agent_id, outbox=outbox, pool_size=pool_size, **client_options
                )
            stack.callback(client.close)
            if profile is not None and not owned:
                _use_profile(admin, profile)
            token = secrets.token_urlsafe(24)
            log_dir = Path(events_dir)
            receiver = Receiver(log_dir, client_token=token, clock=clock.now)
            stack.enter_context(receiver)
            admin.register_webhook(receiver.url, token)
        except BaseException:
            stack.close()
            raise
        return cls(
            client=client,
            clock=clock,
            admin=admin,
            events_dir=log_dir,
            emulator=running,
            receiver=receiver,
            owned=owned,
            stack=stack,
        )

    def sms_sender(self, log: str | os.PathLike[str] | None = None) -> SmsSender:
        """A sender to the emulator's SMS sink; ``log`` keeps each arrival as a JSON line.

        In-process, the emulator's own sink (``emu.sms``) logs there; attached by URL, SMS go
        through the admin surface and a local mirror of the sink logs them.
        """
        if self.emulator is None:
            from rbmtools.emulator.sms import SmsSink

            mirror = SmsSink(self.clock.now, None if log is None else Path(log))
            self._stack.callback(mirror.close)
            return EmulatorSmsSender(self.admin, mirror)
        sink = self.emulator.sms
        if log is not None:
            sink.open_log(Path(log))
            self._stack.callback(sink.close)
        return SinkSmsSender(sink)

    def settle(self, timeout: float = SETTLE_SECONDS) -> None:
        """Wait until the emulator has pushed every event that is due (or ``timeout``)."""
        self.admin.wait_idle(timeout=timeout)

    def close(self) -> None:
        """Let the emulator push what is due, detach an emulator that is not ours from the
        receiver, then close the receiver, the client and an emulator started here."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self.settle()
            finally:
                if not self.owned:
                    self.admin.unregister_webhook()
        finally:
            self._stack.close()

    def __enter__(self) -> Rehearsal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "in-process" if self.emulator is not None else "attached by URL"
        return (
            f"Rehearsal(emulator {where}, owned={self.owned}, events_dir={str(self.events_dir)!r})"
        )


def _use_profile(admin: Any, profile: Any) -> None:
    """Load ``profile`` into an attached emulator unless it already runs it."""
    from rbmtools.emulator import load_profile

    wanted = load_profile(profile).to_dict()
    if admin.profile() != wanted:
        admin.load_profile(profile)
