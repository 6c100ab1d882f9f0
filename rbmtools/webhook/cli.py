"""``rbmtools webhook serve`` (run the receiver) and ``rbmtools webhook tail`` (watch a log).

``serve`` runs until SIGINT or SIGTERM, then stops listening, lets in-flight requests finish
(their events fsynced) and closes the log. The clientToken comes from ``--client-token``,
``--client-token-file`` or ``RBM_CLIENT_TOKEN`` and is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from rbmtools.cli import CLIENT_TOKEN_ENV, add_client_token_arguments, resolve_client_token
from rbmtools.errors import ValidationError
from rbmtools.webhook.reader import follow
from rbmtools.webhook.receiver import DEFAULT_HOST, DEFAULT_MAX_BODY, ReceiverServer, Timeouts
from rbmtools.webhook.store import DEFAULT_SEGMENT_BYTES
from rbmtools.wire import LoggedEvent, UserMessage, format_timestamp

__all__ = ["register"]

EXIT_OK, EXIT_FAILURE = 0, 3


def register(subparsers: Any) -> None:
    """Add ``webhook serve`` and ``webhook tail`` to the ``rbmtools`` command."""
    webhook = subparsers.add_parser(
        "webhook",
        help="receive RBM webhook events into a durable log, and tail it",
        description="Receive RBM webhook events into a durable JSON Lines log, and tail it.",
    )
    commands = webhook.add_subparsers(title="webhook commands", metavar="COMMAND")
    webhook.set_defaults(func=lambda args: webhook.print_help() or EXIT_OK)

    serve = commands.add_parser(
        "serve",
        help="run the webhook receiver",
        description=(
            "Verify and durably log RBM webhook events. Answers 200 only after the event is "
            "fsynced to LOG_DIR/date=YYYY-MM-DD/events-NNNNNN.jsonl (authentic pushes that are "
            "no event it can log go to LOG_DIR/_other/); GET /healthz and GET /stats on the "
            "same port. Stop with Ctrl-C or SIGTERM (in-flight requests finish first)."
        ),
    )
    serve.add_argument("--port", type=int, default=8089, help="TCP port (default 8089; 0: any)")
    serve.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})"
    )
    serve.add_argument("--path", default="/", help="URL path events are POSTed to (default /)")
    serve.add_argument(
        "--log-dir", type=Path, default=Path("data/events"), help="default data/events"
    )
    add_client_token_arguments(serve)
    serve.add_argument(
        "--no-verify",
        action="store_true",
        help="DANGEROUS: store pushes without checking X-Goog-Signature (recorded as "
        "verified=false); only for replaying trusted captures",
    )
    serve.add_argument(
        "--max-body",
        type=int,
        default=DEFAULT_MAX_BODY,
        help=f"largest accepted body in bytes, larger ones get 413 (default {DEFAULT_MAX_BODY})",
    )
    serve.add_argument(
        "--segment-bytes",
        type=int,
        default=DEFAULT_SEGMENT_BYTES,
        help=f"rotate a log segment at this size (default {DEFAULT_SEGMENT_BYTES})",
    )
    defaults = Timeouts()
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=defaults.header,
        help="seconds a connection may take to send a request's headers; also how long an "
        f"idle connection stays open (default {defaults.header:g})",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=defaults.body,
        help=f"seconds a request may take to send its body, else 408 (default {defaults.body:g})",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds to let in-flight requests finish on shutdown (default 30)",
    )
    serve.set_defaults(func=run_serve)

    tail = commands.add_parser(
        "tail",
        help="print events as they arrive in a log directory",
        description="Print events as the receiver logs them (de-duplicated), until Ctrl-C.",
    )
    tail.add_argument("log_dir", type=Path, metavar="LOG_DIR")
    tail.add_argument(
        "--from-start", action="store_true", help="first print what is already logged"
    )
    tail.add_argument("--timeout", type=float, help="stop after this many seconds")
    tail.add_argument("--poll", type=float, default=0.2, help="seconds between looks (0.2)")
    tail.add_argument("--json", action="store_true", help="print each event as a JSON line")
    tail.set_defaults(func=run_tail)


# ------------------------------------------------------------------------------ serve


def run_serve(args: argparse.Namespace) -> int:
    token = resolve_client_token(args)
    verify = not args.no_verify
    if verify and token is None:
        raise ValidationError(
            "clientToken",
            None,
            f"is required: give --client-token-file, {CLIENT_TOKEN_ENV} or --client-token "
            "(or --no-verify to replay trusted captures)",
        )
    server = ReceiverServer(
        args.log_dir,
        client_token=token,
        host=args.host,
        port=args.port,
        path=args.path,
        verify=verify,
        max_body=args.max_body,
        max_segment_bytes=args.segment_bytes,
        drain_timeout=args.drain_timeout,
        timeouts=Timeouts(header=args.header_timeout, body=args.body_timeout),
    )
    logging.basicConfig(
        level=logging.WARNING, format="rbmtools webhook: %(levelname)s: %(message)s"
    )
    try:
        return asyncio.run(_serve(server))
    except OSError as exc:
        print(f"rbmtools: cannot serve on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


async def _serve(server: ReceiverServer) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await server.start()
    verify = "on" if server.verify else "OFF"
    print(
        f"rbmtools webhook: listening on {server.url} (signature check {verify}), "
        f"logging to {server.log_dir}",
        flush=True,
    )
    await stop.wait()
    print("rbmtools webhook: stopping: draining in-flight requests", file=sys.stderr, flush=True)
    await server.stop()
    stats = server.stats()
    print(
        f"rbmtools webhook: stopped; accepted {stats['accepted']}, kept in the other log "
        f"{stats['other_total']}, rejected {stats['rejected_total']}, duplicates "
        f"{stats['duplicates']}, "
        f"{stats['fsync_batches']} fsync batches",
        file=sys.stderr,
        flush=True,
    )
    return EXIT_OK


# ------------------------------------------------------------------------------ tail


def describe(logged: LoggedEvent) -> str:
    """One human line per event: when, what, which message, which phone."""
    event = logged.event
    when = logged.received_at or event.send_time
    stamp = format_timestamp(when) if when is not None else "-"
    if isinstance(event, UserMessage):
        what = f"USER_MESSAGE({event.kind})"
        event_id = ""
    else:
        what = event.event_type
        event_id = f" event={event.event_id}" if event.event_id else ""
    message = f" message={event.message_id}" if event.message_id else ""
    return f"{stamp} {what}{message} phone={event.phone}{event_id}"


def run_tail(args: argparse.Namespace) -> int:
    follower = follow(
        args.log_dir, timeout=args.timeout, poll=args.poll, from_start=args.from_start
    )
    for logged in follower:
        if args.json:
            record: dict[str, Any] = {"event": logged.event.to_dict()}
            if logged.received_at is not None:
                record["receivedAt"] = format_timestamp(logged.received_at)
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print(describe(logged), flush=True)
    counts = follower.counts
    if counts.skipped:
        print(
            f"rbmtools webhook: skipped {counts.malformed} malformed and {counts.torn} torn lines",
            file=sys.stderr,
        )
    return EXIT_OK
