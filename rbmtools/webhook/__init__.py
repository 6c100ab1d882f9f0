"""The webhook receiver and its durable event log.

The platform POSTs every event to the agent's webhook, signed with ``X-Goog-Signature``, and
retries anything that is not a 200. ``Receiver`` (in-process) and ``rbmtools webhook serve``
verify each push and answer 200 only once its line is fsynced into an append-only, day-
partitioned JSON Lines log (authentic pushes that are no event it logs go, as fsynced, to the
other log beside it); ``read_events`` and ``follow`` read the event log back (any line shape,
redeliveries de-duplicated, torn or malformed lines counted and kept aside).
"""

from rbmtools.webhook.handle import Receiver
from rbmtools.webhook.reader import (
    FRAME_COLUMNS,
    BadLine,
    EventReader,
    Follower,
    ReadCounts,
    events_frame,
    follow,
    read_events,
)
from rbmtools.webhook.receiver import DEFAULT_MAX_BODY, REJECT_REASONS, ReceiverServer, Timeouts
from rbmtools.webhook.store import (
    DEFAULT_SEGMENT_BYTES,
    Appended,
    EventLog,
    LogClosedError,
    LogLockedError,
)

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_SEGMENT_BYTES",
    "FRAME_COLUMNS",
    "REJECT_REASONS",
    "Appended",
    "BadLine",
    "EventLog",
    "EventReader",
    "Follower",
    "LogClosedError",
    "LogLockedError",
    "ReadCounts",
    "Receiver",
    "ReceiverServer",
    "Timeouts",
    "events_frame",
    "follow",
    "read_events",
]
