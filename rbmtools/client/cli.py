"""``rbmtools send``, ``rbmtools revoke`` and ``rbmtools capabilities``.

The client is configured from the environment (``RBM_SERVICE_ACCOUNT`` key path,
``RBM_AGENT_ID``, ``RBM_REGION``, ``RBM_BASE_URL``) or the matching flags, a flag beating its
variable (``ClientConfig.resolve``). ``send --use-case U --policy FILE`` sends under the TTL
policy's rule for ``U`` (``--sms`` names the SMS sender of its no-RCS fallback). Exit codes: 0
success, 1 the platform said no (unreachable, already delivered), 2 usage or validation error,
3 API or transport failure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd

from rbmtools.cli import EXIT_FAILURE, EXIT_NO, EXIT_OK
from rbmtools.client.core import RbmClient
from rbmtools.client.session import ClientConfig
from rbmtools.client.sms import load_sms_sender
from rbmtools.errors import ValidationError
from rbmtools.wire.times import format_timestamp

__all__ = ["register"]


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (default: the RBM_* environment variables)")
    group.add_argument("--key-file", help="service-account key path (RBM_SERVICE_ACCOUNT)")
    group.add_argument("--agent-id", help="agent id (RBM_AGENT_ID)")
    group.add_argument("--region", choices=["us", "europe", "asia"], help="(RBM_REGION)")
    group.add_argument("--base-url", help="API base URL, e.g. an emulator (RBM_BASE_URL)")
    group.add_argument("--outbox", type=Path, help="append send/revoke records to this log")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _client(args: argparse.Namespace) -> RbmClient:
    config = ClientConfig.resolve(args.key_file, args.agent_id, args.region, args.base_url)
    extra: dict[str, Any] = {}
    if getattr(args, "policy", None) is not None:
        extra["policy"] = args.policy
    if getattr(args, "sms", None):
        extra["sms"] = load_sms_sender(args.sms)
    return RbmClient.from_config(config, outbox=args.outbox, **extra)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "isoformat") and getattr(value, "tzinfo", None) is not None:
        return format_timestamp(value)
    return value


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    if args.json:
        print(json.dumps({k: _plain(v) for k, v in data.items()}, indent=2))
    else:
        print(text)


def _send(args: argparse.Namespace) -> int:
    if args.policy is not None and not args.use_case:
        raise ValidationError("--use-case", None, "is required with --policy (it picks the rule)")
    with _client(args) as client:
        result = client.send(
            args.phone,
            args.text,
            message_id=args.message_id,
            ttl=args.ttl,
            expire_time=args.expire_time,
            traffic_type=args.traffic_type,
            use_case=args.use_case,
            sms_text=args.sms_text,
            check_capabilities=args.check_capabilities,
        )
        version = None if client.policy is None else client.policy.version
    under = f" under TTL policy {version} ({args.use_case})" if version else ""
    if result.reachable:
        expiry = f", expires {format_timestamp(result.expire_time)}" if result.expire_time else ""
        revoke = ""
        if result.revoke_at is not None:
            revoke = f"; revoke it at {format_timestamp(result.revoke_at)} unless delivered"
        sent_at = format_timestamp(result.send_time)
        text = f"sent {result.message_id} to {result.phone} at {sent_at}{expiry}{under}{revoke}"
    elif result.fallback_sms is not None:
        receipt = result.fallback_sms
        outcome = "SMS sent instead" if receipt.accepted else f"the SMS failed: {receipt.error}"
        text = f"not sent over RBM: {result.phone} has no RCS (404); {outcome}{under}"
    else:
        text = f"not sent: {result.phone} is not reachable over RCS (404); send it another way"
    _print(args, result.to_dict(), text)
    return EXIT_OK if result.reachable else EXIT_NO


def _revoke(args: argparse.Namespace) -> int:
    if args.csv:
        if args.phone or args.message_id:
            raise ValidationError("--csv", str(args.csv), "give either --csv or PHONE MESSAGE_ID")
        return _revoke_csv(args)
    if not (args.phone and args.message_id):
        raise ValidationError("PHONE MESSAGE_ID", args.phone, "both are required without --csv")
    with _client(args) as client:
        result = client.revoke(args.phone, args.message_id)
    if result.revoked:
        text = f"revoked {result.message_id} (200): it will not be delivered unless the race wins"
    else:
        text = f"not revoked {result.message_id} ({result.status}): already delivered or unknown"
    _print(args, result.to_dict(), text)
    return EXIT_OK if result.revoked else EXIT_NO


def _revoke_csv(args: argparse.Namespace) -> int:
    try:
        rows = pd.read_csv(args.csv, dtype=str)
    except (OSError, ValueError) as exc:
        raise ValidationError("--csv", str(args.csv), f"cannot be read ({exc})") from None
    rows = rows.rename(columns={"messageId": "message_id", "phoneNumber": "phone"})
    missing = {"phone", "message_id"} - set(rows.columns)
    if missing:
        raise ValidationError("--csv", str(args.csv), f"needs columns {', '.join(sorted(missing))}")
    with _client(args) as client:
        results = client.revoke_many(
            rows, concurrency=args.concurrency, rate=args.rate, progress=not args.no_progress
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        results.to_csv(args.out, index=False)
    failed = int(results["error"].notna().sum())
    revoked = int((results["revoked"] == True).sum())  # noqa: E712 - NaN-safe comparison
    summary = {
        "rows": len(results),
        "revoked": revoked,
        "not_revoked": len(results) - revoked - failed,
        "errors": failed,
        "out": str(args.out) if args.out else None,
    }
    _print(args, summary, ", ".join(f"{k}: {v}" for k, v in summary.items() if v is not None))
    if failed:
        return EXIT_FAILURE
    return EXIT_OK if revoked == len(results) else EXIT_NO


def _capabilities(args: argparse.Namespace) -> int:
    with _client(args) as client:
        features = client.capabilities(args.phone)
    data = {"phone": args.phone, "reachable": features is not None, "features": features}
    text = "not reachable over RCS (404)" if features is None else "\n".join(features) or "(none)"
    _print(args, data, text)
    return EXIT_OK if features is not None else EXIT_NO


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``send``, ``revoke`` and ``capabilities`` subcommands."""
    send = subparsers.add_parser("send", help="send one RBM text message")
    send.add_argument("phone", help="E.164 phone number, e.g. +12223334444")
    send.add_argument("text", help="message text (at most 3072 characters)")
    expiry = send.add_mutually_exclusive_group()
    expiry.add_argument("--ttl", help="expiry window, e.g. 600s, 10m, 1h30m")
    expiry.add_argument(
        "--expire-time", help="absolute expiry, RFC 3339 (e.g. 2026-11-25T10:10:00Z)"
    )
    send.add_argument("--traffic-type", help="AUTHENTICATION, TRANSACTION, PROMOTION, ...")
    send.add_argument("--message-id", help="your own id (default: a new UUID); reuse it to retry")
    send.add_argument("--use-case", help="label for the outbox log, e.g. otp")
    by_policy = send.add_argument_group("sending by use case (a TTL policy)")
    by_policy.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="TTL policy (rbmtools policy write): --use-case picks the rule whose expiry and "
        "traffic type apply unless --ttl/--expire-time/--traffic-type are given",
    )
    by_policy.add_argument(
        "--sms",
        metavar="MODULE:NAME",
        help="SMS sender for the policy's no-RCS fallback, 'package.module:name'",
    )
    by_policy.add_argument("--sms-text", help="the fallback SMS text (default: the message text)")
    by_policy.add_argument(
        "--check-capabilities",
        action="store_true",
        help="ask the platform first; a phone without RCS gets no RBM send (recorded as 404)",
    )
    _connection_flags(send)
    send.set_defaults(func=_send)

    revoke = subparsers.add_parser(
        "revoke",
        help="revoke a sent, undelivered message (or many, from a CSV)",
        description="Revoke PHONE MESSAGE_ID, or every row of --csv (columns phone, message_id).",
    )
    revoke.add_argument("phone", nargs="?", help="E.164 phone number")
    revoke.add_argument("message_id", nargs="?", help="the messageId used to send")
    revoke.add_argument("--csv", type=Path, help="bulk: a CSV with phone and message_id columns")
    revoke.add_argument("--out", type=Path, help="bulk: write one result row per input row here")
    revoke.add_argument("--concurrency", type=int, default=8, help="bulk: parallel calls (8)")
    revoke.add_argument("--rate", type=float, help="bulk: at most this many calls per second")
    revoke.add_argument("--no-progress", action="store_true", help="bulk: no progress bar")
    _connection_flags(revoke)
    revoke.set_defaults(func=_revoke)

    caps = subparsers.add_parser("capabilities", help="list a phone's RCS features")
    caps.add_argument("phone", help="E.164 phone number")
    _connection_flags(caps)
    caps.set_defaults(func=_capabilities)
