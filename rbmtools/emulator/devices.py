"""Simulated phones: RCS capability and an online/offline process, drawn from a profile.

Every E.164 number gets a device the first time it is used, drawn deterministically from the
number and the seed, so the same number behaves the same way in every run. A device that comes
back alternates online and offline spells of log-normal length from platform second 0; its
first state is drawn with the long-run online share. A pin (set through the admin surface)
overrides the draw: not RCS-capable, always online, never back, offline until a time (then
always online), a fixed delivery latency, or a fixed read behaviour. Pure: no I/O, no clock.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_right
from dataclasses import dataclass

from rbmtools.emulator.profiles import Profile

__all__ = ["Device", "DevicePin", "stable_uniform"]

_TWO_64 = float(2**64)
NEVER = math.inf


def stable_uniform(*parts: object) -> float:
    """A uniform number in (0, 1) that depends only on ``parts`` (seed, phone, ids...)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


@dataclass(frozen=True)
class DevicePin:
    """Behaviour pinned on one number; ``None`` fields keep what the profile drew.

    ``online`` is ``"always"``, ``"never"`` (offline for good) or ``"profile"``.
    ``offline_until`` (platform seconds) keeps the phone offline until then, always online
    after. ``latency`` fixes the delivery latency in seconds. ``read_after`` fixes the read
    delay in seconds; ``math.inf`` means the user never reads.
    """

    rcs_capable: bool | None = None
    online: str | None = None
    offline_until: float | None = None
    latency: float | None = None
    read_after: float | None = None

    def merged(self, other: DevicePin) -> DevicePin:
        """This pin with every field that ``other`` sets replacing it.

        ``online`` and ``offline_until`` describe the same thing, so setting one clears the
        other.
        """
        changes = {k: v for k, v in other.__dict__.items() if v is not None}
        if "offline_until" in changes:
            changes["online"] = None
        elif "online" in changes:
            changes["offline_until"] = None
        return DevicePin(**{**self.__dict__, **changes})


class Device:
    """One phone: whether it is RCS-capable and when it is online (see the module doc)."""

    __slots__ = (
        "_bounds",
        "_capable_by_profile",
        "_dropped",
        "_first_online",
        "_forever",
        "_profile",
        "_seed",
        "never_back",
        "phone",
        "pin",
    )

    def __init__(self, phone: str, profile: Profile, seed: object, pin: DevicePin | None) -> None:
        self.phone = phone
        self.pin = pin or DevicePin()
        self._seed = seed
        capable_draw = stable_uniform(seed, "capable", phone)
        back_draw = stable_uniform(seed, "never-back", phone)
        state_draw = stable_uniform(seed, "first-state", phone)
        self._capable_by_profile = capable_draw < profile.rcs_capable_share
        self.never_back = back_draw < profile.never_back_share
        self._profile = profile
        # The alternating process: boundaries b0=0 < b1 < ...; the spell [b_i, b_i+1) is online
        # when i is even and the first spell is online, or i is odd and it is not.
        self._first_online = state_draw < profile.online_share
        self._bounds: list[float] = [0.0]
        self._dropped = 0  # spells forgotten from the front (an even number)
        self._forever = False

    @property
    def rcs_capable(self) -> bool:
        if self.pin.rcs_capable is not None:
            return self.pin.rcs_capable
        return self._capable_by_profile

    def _online_mode(self) -> str:
        if self.pin.offline_until is not None:
            return "until"
        if self.pin.online in ("always", "never"):
            return self.pin.online
        return "never" if self.never_back else "profile"

    def _extend(self, until: float) -> None:
        """Draw spells until the boundaries reach past ``until``."""
        bounds = self._bounds
        profile = self._profile
        while bounds[-1] <= until and not self._forever:
            index = self._dropped + len(bounds) - 1
            online = self._first_online == (index % 2 == 0)
            spell = profile.online if online else profile.offline
            length = spell.draw(stable_uniform(self._seed, "spell", self.phone, index))
            if not math.isfinite(length) or length > 1e12:
                self._forever = True
                bounds.append(NEVER)
            else:
                bounds.append(bounds[-1] + max(length, 1e-3))

    def forget_before(self, now: float) -> None:
        """Drop spells that ended before ``now`` (keeps memory flat on long runs)."""
        bounds = self._bounds
        current = bisect_right(bounds, now) - 1
        cut = current - current % 2  # an even cut keeps the parity that says which is online
        if cut >= 2:
            del bounds[:cut]
            self._dropped += cut

    def online_window(self, at: float) -> tuple[float, float] | None:
        """The first online interval ``(start, end)`` that contains or follows ``at``.

        ``start`` is ``at`` when the phone is online then. ``None``: never online again.
        """
        mode = self._online_mode()
        if mode == "always":
            return at, NEVER
        if mode == "never":
            return None
        if mode == "until":
            return max(at, self.pin.offline_until or 0.0), NEVER
        self._extend(at)
        bounds = self._bounds
        index = bisect_right(bounds, at) - 1
        online = self._first_online == (index % 2 == 0)
        if online:
            end = bounds[index + 1] if index + 1 < len(bounds) else NEVER
            return at, end
        start = bounds[index + 1]
        if start == NEVER:
            return None
        self._extend(start)
        following = bisect_right(bounds, start)
        end = bounds[following] if following < len(bounds) else NEVER
        return start, end

    def is_online(self, at: float) -> bool:
        window = self.online_window(at)
        return window is not None and window[0] <= at
