"""A local RBM platform: the RBM API, OAuth, devices, expiry, revokes and signed webhooks.

``Emulator`` runs it in-process (tests, notebooks, the demo); ``rbmtools emulator serve`` runs
it from the command line. ``AdminClient`` steers either through the admin surface.
"""

from rbmtools.emulator.admin_client import AdminClient
from rbmtools.emulator.clock import VirtualClock
from rbmtools.emulator.dispatch import Dispatcher, RegistrationError
from rbmtools.emulator.handle import DEFAULT_AGENT_ID, Emulator
from rbmtools.emulator.model import MessageState, PlatformModel
from rbmtools.emulator.profiles import Profile, load_profile, profile_names
from rbmtools.emulator.sms import SmsArrival, SmsSink

__all__ = [
    "DEFAULT_AGENT_ID",
    "AdminClient",
    "Dispatcher",
    "Emulator",
    "MessageState",
    "PlatformModel",
    "Profile",
    "RegistrationError",
    "SmsArrival",
    "SmsSink",
    "VirtualClock",
    "load_profile",
    "profile_names",
]
