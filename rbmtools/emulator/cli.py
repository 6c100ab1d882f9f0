"""``rbmtools emulator``: serve the local RBM platform, make service-account keys, read stats.

``serve`` binds 127.0.0.1 unless ``--host`` says otherwise, writes (or reuses) the key file
whose ``token_uri`` points at it, and with ``--webhook`` runs the registration handshake
before it says it is ready (the clientToken comes from ``--client-token-file``,
``RBM_CLIENT_TOKEN`` or ``--client-token``, and is never printed). ``keygen`` writes another
key for an emulator URL and asks that emulator to trust it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from rbmtools.cli import CLIENT_TOKEN_ENV, add_client_token_arguments, resolve_client_token
from rbmtools.emulator.admin_client import AdminClient
from rbmtools.emulator.auth import TOKEN_PATH, generate_key_file, read_trusted_key
from rbmtools.emulator.dispatch import RegistrationError
from rbmtools.emulator.profiles import profile_names
from rbmtools.emulator.server import EmulatorServer
from rbmtools.errors import ApiError
from rbmtools.wire import AgentUseCase

__all__ = ["default_key_file", "register"]

EXIT_OK, EXIT_USAGE, EXIT_FAILURE = 0, 2, 3


def default_key_file() -> Path:
    """Where ``serve`` keeps its key unless ``--key-file`` says otherwise."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "rbmtools" / "emulator-key.json"


def register(subparsers: Any) -> None:
    """Add ``rbmtools emulator serve|keygen|stats``."""
    parser = subparsers.add_parser(
        "emulator",
        help="run a local RBM platform (API, OAuth, devices, expiry, signed webhooks)",
        description="A local RBM platform that speaks Google's wire protocol, for tests, "
        "notebooks and rehearsals. Profiles: " + ", ".join(profile_names()) + ".",
    )
    commands = parser.add_subparsers(title="emulator commands", metavar="COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or EXIT_OK)

    serve = commands.add_parser(
        "serve",
        help="serve the RBM API, the token endpoint and the admin surface",
        description="Serve the RBM API (/v1/...), the OAuth token endpoint (/token) and the "
        "admin surface (/emulator/v1/...). Stop with Ctrl-C.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8088, help="port (default 8088; 0 = any)")
    serve.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help="service-account key to write or reuse; its token_uri is pointed here "
        f"(default {default_key_file()})",
    )
    serve.add_argument(
        "--trust-key",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="also accept tokens for this key file (repeatable; see keygen)",
    )
    serve.add_argument(
        "--profile", default="default", help="shipped profile name or YAML/JSON file"
    )
    serve.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="platform seconds per real second (default 1: real time, so clients that compute "
        "expireTime from their own clock work; 600 for fast rehearsals; 0 = stepping mode)",
    )
    serve.add_argument("--seed", default="7", help="seed for devices and draws (default 7)")
    serve.add_argument("--start", default=None, help="platform start time, RFC 3339 (default: now)")
    serve.add_argument(
        "--agent-id", default=None, help="serve only this agent (default: any agent id)"
    )
    serve.add_argument(
        "--legacy-revoke", action="store_true", help="revoke always answers 200 (older API)"
    )
    serve.add_argument(
        "--agent-use-case",
        default=None,
        choices=[u.value for u in AgentUseCase],
        help="every agent's use case, which gives messages without a messageTrafficType "
        "theirs (default: the profile's, TRANSACTIONAL; MULTI_USE requires one)",
    )
    serve.add_argument(
        "--google-proxy",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve an HTTPS proxy on PORT (0 = any) that takes clients which hard-code "
        "Google's URLs (Google's Node helper) here: run them with HTTPS_PROXY=http://HOST:PORT "
        "and the printed CA file trusted (NODE_EXTRA_CA_CERTS)",
    )
    serve.add_argument("--webhook", default=None, metavar="URL", help="webhook to register")
    add_client_token_arguments(serve)
    serve.add_argument(
        "--register-timeout",
        type=float,
        default=10.0,
        help="keep trying the webhook handshake this many seconds (default 10)",
    )
    serve.set_defaults(func=_serve)

    keygen = commands.add_parser(
        "keygen",
        help="write a new service-account key for an emulator",
        description="Write a fresh service-account JSON key whose token_uri is URL/token, and "
        "ask the emulator at URL to trust it (a stopped emulator trusts it with --trust-key).",
    )
    keygen.add_argument("path", type=Path, help="where to write the key (JSON)")
    keygen.add_argument("--url", required=True, help="the emulator's base URL")
    keygen.add_argument("--client-email", default=None, help="the key's client_email")
    keygen.add_argument("--force", action="store_true", help="replace an existing file")
    keygen.add_argument(
        "--no-register", action="store_true", help="only write the file; do not contact URL"
    )
    keygen.set_defaults(func=_keygen)

    stats = commands.add_parser("stats", help="print a running emulator's stats as JSON")
    stats.add_argument("--url", default="http://127.0.0.1:8088", help="the emulator's base URL")
    stats.set_defaults(func=_stats)


# ------------------------------------------------------------------------------------ serve


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _seed(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


async def _register_with_retries(server: EmulatorServer, url: str, token: str, wait: float):
    deadline = time.monotonic() + max(wait, 0.0)
    while True:
        try:
            await server.register_webhook(url, token)
            return
        except RegistrationError:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def _run_server(args: argparse.Namespace, token: str | None) -> int:
    server = EmulatorServer(
        profile=args.profile,
        speed=args.speed,
        seed=_seed(args.seed),
        agent_id=args.agent_id,
        legacy_revoke=args.legacy_revoke,
        start=args.start,
        agent_use_case=args.agent_use_case,
        google_proxy=args.google_proxy,
    )
    trusted = [read_trusted_key(path) for path in args.trust_key]
    try:
        base_url = await server.start(args.host, args.port)
    except OSError as exc:
        print(
            f"rbmtools: cannot listen on {args.host}:{args.port} ({exc.strerror or exc})",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    try:
        key_path = args.key_file or default_key_file()
        key = server.use_key_file(key_path)
        server.trust_keys(trusted)
        if args.webhook:
            assert token is not None
            try:
                await _register_with_retries(server, args.webhook, token, args.register_timeout)
            except RegistrationError as exc:
                print(f"rbmtools: {exc}", file=sys.stderr)
                return EXIT_FAILURE
        _banner(args, server, base_url, key_path, key.client_email)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        print("rbmtools emulator: stopping", flush=True)
        return EXIT_OK
    finally:
        await server.stop()


def _banner(
    args: argparse.Namespace, server: EmulatorServer, base_url: str, key: Path, email: str
) -> None:
    speed = server.clock.speed
    pace = "stepping mode: time moves only with /emulator/v1/clock/advance"
    if speed == 1:
        pace = "real time (--speed 600 for fast rehearsals)"
    elif speed:
        pace = f"{speed:g} platform seconds per real second"
    agent = f"only {args.agent_id!r}" if args.agent_id else "any agent id"
    agent += f"; use case {server.model.use_case(args.agent_id or 'any')}"
    webhook = (
        f"{args.webhook} (registered)"
        if args.webhook
        else f"none yet (POST {base_url}/emulator/v1/webhook)"
    )
    lines = [
        f"rbmtools emulator listening on {base_url}",
        f"  RBM API base    {base_url}  (paths /v1/...)",
        f"  token endpoint  {base_url}{TOKEN_PATH} (and /oauth2/v4/token)",
        f"  key file        {Path(key).resolve()}  ({email})",
        f"  agents          {agent}",
        f"  profile         {server.model.profile.name}; seed {args.seed}",
        f"  clock           {pace}",
        f"  webhook         {webhook}",
        f"  admin           {base_url}/emulator/v1",
    ]
    proxy = server.google_proxy
    if proxy is not None:  # before the admin line, which ends the banner
        lines.insert(
            -1, f"  google proxy    HTTPS_PROXY={proxy.url} NODE_EXTRA_CA_CERTS={proxy.ca_file}"
        )
    if not _is_loopback(args.host):
        lines.append(
            f"  warning: bound to {args.host}; the admin surface has no authentication, so "
            "anyone who can reach this port can steer the emulator"
        )
    print("\n".join(lines), flush=True)


def _serve(args: argparse.Namespace) -> int:
    token = resolve_client_token(args)
    if args.webhook and not token:
        print(
            "rbmtools: --webhook needs the webhook's clientToken (--client-token-file, "
            f"{CLIENT_TOKEN_ENV} or --client-token)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if token and not args.webhook:
        print("rbmtools: a clientToken was given without --webhook; it is unused", file=sys.stderr)
    return asyncio.run(_run_server(args, token))


# ----------------------------------------------------------------------------------- keygen


def _keygen(args: argparse.Namespace) -> int:
    base = args.url.rstrip("/")
    kwargs = {"client_email": args.client_email} if args.client_email else {}
    key = generate_key_file(args.path, base + TOKEN_PATH, overwrite=args.force, **kwargs)
    print(f"wrote {args.path} (private_key_id {key.key_id}, {key.client_email})")
    if args.no_register:
        return EXIT_OK
    try:
        AdminClient(base, timeout=5).trust_key(args.path)
    except ApiError as exc:
        print(
            f"the emulator at {base} did not take the key ({exc.message}); start it with "
            f"--trust-key {args.path}",
            file=sys.stderr,
        )
        return EXIT_OK if exc.status == 0 else EXIT_FAILURE
    print(f"the emulator at {base} now trusts it")
    return EXIT_OK


def _stats(args: argparse.Namespace) -> int:
    print(json.dumps(AdminClient(args.url, timeout=10).stats(), indent=2))
    return EXIT_OK
