"""The SMS fallback channel: one small protocol, and an adapter for a provider's function.

Whoever sends the fallback SMS (the client, for phones without RCS; the experiment runner, for
revoked messages) calls ``send_sms(phone, text, message_id=...)`` on any object that has it and
gets an ``SmsReceipt`` back: whether the provider accepted the SMS and when (platform time).
Pass ``message_id`` on to the provider as its idempotency key or client reference when it has
one: a resumed run may repeat an SMS whose receipt was lost in a crash, and the key makes the
repeat harmless. A real provider plugs in through ``CallableSmsSender`` (wrap the provider's
"send" function) or any class of your own with a ``send_sms`` method; the emulator's SMS sink
has its senders in ``rbmtools.experiment.sms``. rbmtools ships no provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from rbmtools.errors import ValidationError
from rbmtools.wire.times import utc_now

__all__ = ["CallableSmsSender", "SmsReceipt", "SmsSender", "load_sms_sender"]


@dataclass(frozen=True)
class SmsReceipt:
    """A provider's answer to one SMS: ``accepted`` and when (``at``, platform time).

    ``provider_id`` is the provider's reference for the SMS, ``error`` why it was refused.
    """

    accepted: bool
    at: datetime
    provider_id: str | None = None
    error: str | None = None


@runtime_checkable
class SmsSender(Protocol):
    """Anything that can send the fallback SMS for one RBM message."""

    def send_sms(self, phone: str, text: str, *, message_id: str) -> SmsReceipt:
        """Send ``text`` to ``phone``; ``message_id`` is the RBM message it replaces."""
        ...


class CallableSmsSender:
    """Adapts a provider's send function: ``func(phone, text, message_id)``.

    The function returns the provider's reference (a string), ``True``/``None`` (accepted) or
    ``False`` (refused), or raises (refused; the exception's text becomes ``error`` and the
    run goes on: a resume tries that SMS again). ``clock`` stamps the receipt (wall clock).

    >>> def send_with_my_provider(phone, text, message_id):  # doctest: +SKIP
    ...     return my_provider.messages.create(to=phone, body=text, reference=message_id).sid
    >>> sms = CallableSmsSender(send_with_my_provider)  # doctest: +SKIP
    """

    def __init__(
        self,
        func: Callable[[str, str, str], object],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if not callable(func):
            raise ValidationError("func", func, "must be callable as func(phone, text, message_id)")
        self.func = func
        self.clock = clock

    def send_sms(self, phone: str, text: str, *, message_id: str) -> SmsReceipt:
        try:
            answer = self.func(phone, text, message_id)
        except Exception as exc:  # the provider's failure is this SMS's outcome, not the run's
            return SmsReceipt(False, self.clock(), error=f"{type(exc).__name__}: {exc}"[:300])
        if answer is False:
            return SmsReceipt(False, self.clock(), error="refused by the provider")
        reference = answer if isinstance(answer, str) else None
        return SmsReceipt(True, self.clock(), provider_id=reference)

    def __repr__(self) -> str:
        name = getattr(self.func, "__qualname__", type(self.func).__name__)
        return f"CallableSmsSender({name})"


def load_sms_sender(target: str) -> SmsSender:
    """An SMS sender from ``"package.module:name"`` (the CLI's ``--sms``).

    ``name`` may be a sender object, a class or factory called without arguments, or a plain
    function ``(phone, text, message_id)``, which is wrapped in ``CallableSmsSender``.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValidationError("sms", target, "must look like 'package.module:name'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError("sms", target, f"cannot import {module_name} ({exc})") from None
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise ValidationError("sms", target, f"{module_name} has no {attribute}") from None
    if isinstance(found, SmsSender):
        return found
    if isinstance(found, type):
        made = found()
        if isinstance(made, SmsSender):
            return made
        raise ValidationError("sms", target, "the class makes objects without send_sms()")
    if callable(found):
        code = getattr(found, "__code__", None)
        if code is not None and code.co_argcount == 0:
            made = found()
            if isinstance(made, SmsSender):
                return made
            raise ValidationError("sms", target, "the factory returned no SMS sender")
        return CallableSmsSender(found)
    raise ValidationError("sms", target, "is neither an SMS sender nor a function")
