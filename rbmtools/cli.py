"""The ``rbmtools`` command: one entry point, subcommands contributed by the subsystems.

Each subsystem module listed in ``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds
its subcommands and sets ``func`` on their parsers. ``func(args)`` returns the exit code:
0 success, 1 the platform said no (a revoke answered 404, an unreachable phone), 2 usage or
validation error, 3 API or transport failure; ``rbmtools report`` adds 4, nothing to report.

Only the module of the command being run is imported: ``rbmtools --help`` and ``--version`` list
the commands from ``COMMANDS`` (a test holds it equal to what the modules register), so starting
the command never pays for pandas, DuckDB or aiohttp it will not use.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rbmtools import __version__
from rbmtools.errors import RbmError, ValidationError

__all__ = [
    "CLIENT_TOKEN_ENV",
    "COMMAND_MODULES",
    "EXIT_FAILURE",
    "EXIT_NO",
    "EXIT_OK",
    "EXIT_USAGE",
    "add_client_token_arguments",
    "main",
    "resolve_client_token",
]

EXIT_OK, EXIT_NO, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3

#: Every subcommand: the module that registers it (its ``register(subparsers)``) and the help
#: line ``rbmtools --help`` shows, in that order. Running a command imports its module only.
COMMANDS: dict[str, tuple[str, str]] = {
    "send": ("rbmtools.client.cli", "send one RBM text message"),
    "revoke": ("rbmtools.client.cli", "revoke a sent, undelivered message (or many, from a CSV)"),
    "capabilities": ("rbmtools.client.cli", "list a phone's RCS features"),
    "webhook": (
        "rbmtools.webhook.cli",
        "receive RBM webhook events into a durable log, and tail it",
    ),
    "emulator": (
        "rbmtools.emulator.cli",
        "run a local RBM platform (API, OAuth, devices, expiry, signed webhooks)",
    ),
    "analyze": (
        "rbmtools.analysis.cli",
        "revoke success, delivery latency and the best TTL from webhook and outbox logs",
    ),
    "policy": (
        "rbmtools.analysis.ttl_policy_cli",
        "TTL policy files: write one from the logs, diff two",
    ),
    "experiment": (
        "rbmtools.experiment.cli",
        "run, watch and plan revoke experiments (arms, stopping rules, SMS fallback)",
    ),
    "logs": (
        "rbmtools.logs.cli",
        "compact webhook logs to Parquet; print the analysis SQL for BigQuery or Spark",
    ),
    "report": (
        "rbmtools.notebook.cli",
        "run a notebook with parameters (papermill) and write it as a report",
    ),
}

#: Modules that contribute subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(m for m, _ in COMMANDS.values()))


#: The environment variable that may hold a webhook's clientToken.
CLIENT_TOKEN_ENV = "RBM_CLIENT_TOKEN"  # noqa: S105 (the variable's name, not a secret)


def add_client_token_arguments(parser: argparse.ArgumentParser) -> None:
    """``--client-token`` / ``--client-token-file``, for commands that sign or verify webhooks."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--client-token",
        help=f"the webhook's clientToken (visible in ps: prefer --client-token-file or "
        f"{CLIENT_TOKEN_ENV}; never printed)",
    )
    group.add_argument(
        "--client-token-file",
        type=Path,
        metavar="FILE",
        help="read the clientToken from this file (surrounding whitespace is ignored)",
    )


def resolve_client_token(args: argparse.Namespace) -> str | None:
    """The clientToken from the flag, the file or ``RBM_CLIENT_TOKEN`` (in that order)."""
    if args.client_token is not None:
        token = args.client_token
    elif args.client_token_file is not None:
        try:
            token = args.client_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValidationError(
                "--client-token-file", str(args.client_token_file), f"cannot be read ({exc})"
            ) from None
    else:
        token = os.environ.get(CLIENT_TOKEN_ENV)
    if token is not None and not token.strip():
        raise ValidationError("clientToken", "<hidden>", "is empty")
    return token


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser for the arguments ``argv``: the named command's module registers
    its commands, every other command is a placeholder with its help line (nothing imported
    for it). Without ``argv``, or when it names a command ``COMMANDS`` does not know, every
    module registers its commands (argparse then lists the choices)."""
    parser = argparse.ArgumentParser(
        prog="rbmtools",
        description=(
            "Send and revoke Google RCS Business Messaging (RBM) messages, run a local RBM "
            "platform emulator, and analyze webhook logs."
        ),
        epilog="Exit codes: 0 success, 1 the platform said no, 2 usage or validation error, "
        "3 API or transport failure, 4 nothing to report (rbmtools report, an empty window).",
    )
    parser.add_argument("--version", action="version", version=f"rbmtools {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    command = next((a for a in argv if not a.startswith("-")), None) if argv is not None else ""
    if command is not None and command not in COMMANDS:
        for name in COMMAND_MODULES:  # an unknown word: every module, for argparse's choices
            importlib.import_module(name).register(subparsers)
        return parser
    chosen = COMMANDS[command][0] if command else None
    for module in COMMAND_MODULES:
        if module == chosen:
            importlib.import_module(module).register(subparsers)
            continue
        for name, (owner, help_line) in COMMANDS.items():
            if owner == module:
                subparsers.add_parser(name, help=help_line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_OK
    try:
        return int(func(args) or EXIT_OK)
    except ValidationError as exc:
        print(f"rbmtools: invalid input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RbmError as exc:  # ApiError, AuthError and the rest: the platform or transport failed
        print(f"rbmtools: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("rbmtools: interrupted", file=sys.stderr)
        return 130
