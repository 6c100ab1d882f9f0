"""The RBM API client: send, revoke and capability calls that are safe in a notebook.

``RbmClient`` (requests + google-auth) validates before any I/O, retries what may succeed when
repeated without ever double-sending, returns expected outcomes as values, and logs every send
and revoke to an optional outbox. ``send`` and ``revoke`` at module level use a default client
from the environment.
"""

from rbmtools.client.adhoc import default_client, revoke, send, set_default_client
from rbmtools.client.bulk import revoke_many, send_many
from rbmtools.client.core import DEFAULT_TIMEOUT, RbmClient
from rbmtools.client.outbox import OutboxWriter
from rbmtools.client.ratelimit import RateLimiter
from rbmtools.client.results import AgentEventResult, RevokeResult, SendResult
from rbmtools.client.retry import RetryPolicy, retry_after_seconds
from rbmtools.client.session import ENV_VARS, ClientConfig
from rbmtools.client.sms import CallableSmsSender, SmsReceipt, SmsSender, load_sms_sender

__all__ = [
    "DEFAULT_TIMEOUT",
    "ENV_VARS",
    "AgentEventResult",
    "CallableSmsSender",
    "ClientConfig",
    "OutboxWriter",
    "RateLimiter",
    "RbmClient",
    "RetryPolicy",
    "RevokeResult",
    "SendResult",
    "SmsReceipt",
    "SmsSender",
    "default_client",
    "load_sms_sender",
    "retry_after_seconds",
    "revoke",
    "revoke_many",
    "send",
    "send_many",
    "set_default_client",
]
