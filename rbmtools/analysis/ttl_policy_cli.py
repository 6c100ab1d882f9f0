"""``rbmtools policy write`` and ``rbmtools policy diff``: TTL policy files from the command line.

``policy write --events ... --outbox ... [--costs FILE] -o policy.yaml`` analyses the logs by use
case and writes a TTL policy (``rbmtools.wire.ttl_policy``) for review: per use case the best
TTL as the duration, the traffic type, the fallback rule and the evidence. An existing output
is refused unless ``--force``; overwriting a policy continues its version and keeps what was
reviewed in it (method, traffic type, fallback). ``policy diff OLD NEW`` shows what a change
does: the fields that change per use case and the expected cost difference per 1,000 messages.
Exit codes: 0 written (diff: no difference), 1 (diff) the policies differ, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rbmtools.analysis.cli import add_duckdb_arguments, add_log_arguments
from rbmtools.outputs import add_force_argument, refuse_existing

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``policy write`` and ``policy diff``."""
    parser = subparsers.add_parser(
        "policy",
        help="TTL policy files: write one from the logs, diff two",
        description="TTL policies: per use case the expiry (method, duration), traffic type "
        "and SMS fallback that sends use (RbmClient(policy=...), rbmtools send --policy), with "
        "the evidence they were chosen on. Not the cost policies of analyze --policy.",
    )
    commands = parser.add_subparsers(title="policy commands", metavar="COMMAND")
    write = commands.add_parser(
        "write",
        help="write a TTL policy from the best TTL per use case",
        description="Analyse the logs by use case and write a TTL policy file for review.",
        epilog="Exit codes: 0 written, 2 bad input (an existing --output without --force).",
    )
    add_log_arguments(write)
    write.add_argument(
        "--costs",
        metavar="FILE",
        help="cost policies (YAML/JSON, as analyze --policy) the best TTL is chosen under",
    )
    write.add_argument("-o", "--output", type=Path, required=True, help="the policy file to write")
    add_force_argument(write, "--output (a policy's version then counts on)")
    write.add_argument(
        "--previous",
        type=Path,
        metavar="FILE",
        help="the policy this one replaces (default: --output, when it exists and --force): "
        "its version counts on, its reviewed methods, traffic types and fallbacks stay",
    )
    write.add_argument(
        "--method",
        choices=("ttl", "expire_time", "api_after", "api_after_unless_delivered"),
        default="ttl",
        help="how new use cases take messages back (default ttl)",
    )
    write.add_argument(
        "--version", dest="policy_version", metavar="VERSION", help="the version (default: counted)"
    )
    write.add_argument("--bootstrap", type=int, default=200, metavar="N", help="default 200")
    write.add_argument("--min-at-risk", type=int, default=30, metavar="N", help="default 30")
    write.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    add_duckdb_arguments(write)
    write.set_defaults(func=_write)

    diff = commands.add_parser(
        "diff",
        help="what changes between two TTL policies, and what it costs",
        description="Per use case: the fields that change, and the expected cost difference "
        "per 1,000 messages (negative: NEW is cheaper), priced on NEW's evidence.",
        epilog="Exit codes: 0 no difference, 1 the policies differ, 2 bad input.",
    )
    diff.add_argument("old", type=Path, help="the policy in use")
    diff.add_argument("new", type=Path, help="the proposed policy")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(func=_diff)


def _write(args: argparse.Namespace) -> int:
    from rbmtools.analysis.dataset import load
    from rbmtools.analysis.report import build_analysis
    from rbmtools.analysis.ttl_policy import traffic_types, ttl_policy_from_analysis
    from rbmtools.wire.ttl_policy import TtlPolicy

    refuse_existing(args.output, args.force, "--output")
    previous_path = args.previous
    if previous_path is None and args.output.exists():
        previous_path = args.output
    previous = TtlPolicy.load(previous_path) if previous_path is not None else None
    with load(
        args.events,
        args.outbox,
        threads=args.threads,
        memory_limit=args.memory_limit,
        progress=sys.stderr.isatty(),
    ) as dataset:
        analysis = build_analysis(
            dataset,
            "useCase",
            args.costs,
            min_at_risk=args.min_at_risk,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
        proposal = ttl_policy_from_analysis(
            analysis,
            traffic_types=traffic_types(dataset),
            previous=previous,
            method=args.method,
            version=args.policy_version,
        )
    policy = proposal.policy
    args.output.parent.mkdir(parents=True, exist_ok=True)
    policy.save(args.output)
    print(f"wrote {args.output}: TTL policy version {policy.version}")
    for use_case, rule in policy.use_cases.items():
        evidence = rule.evidence or {}
        best = evidence.get("best_ttl") or {}
        interval = ""
        if best.get("lo") is not None:
            interval = f" (best {best['seconds']:g} s, interval {best['lo']:g}..{best['hi']:g} s)"
        flag = "; at the end of what the data supports" if evidence.get("at_support_limit") else ""
        print(f"  {use_case}: {rule.method.value} {rule.duration}{interval}, fallback "
              f"{rule.fallback}{flag}")  # fmt: skip
    for use_case, why in proposal.skipped.items():
        print(f"  {use_case}: {why}")
    print("Review it, then send with it: RbmClient(..., policy=...) or rbmtools send --policy")
    return 0


def _money(value: float | None) -> str:
    return "not estimable" if value is None else f"{value:+.2f} per 1,000 messages"


def _diff(args: argparse.Namespace) -> int:
    from rbmtools.analysis.ttl_policy import diff_ttl_policies
    from rbmtools.wire.ttl_policy import TtlPolicy

    old, new = TtlPolicy.load(args.old), TtlPolicy.load(args.new)
    rows = diff_ttl_policies(old, new)
    differ = any(row["status"] != "unchanged" for row in rows)
    if args.json:
        document = {"old": old.version, "new": new.version, "use_cases": rows}
        print(json.dumps(document, indent=2))
        return 1 if differ else 0
    print(f"TTL policy {old.version} -> {new.version}")
    for row in rows:
        if row["status"] in ("added", "removed"):
            print(f"  {row['useCase']}: {row['status']}")
            continue
        if row["status"] == "unchanged":
            print(f"  {row['useCase']}: unchanged")
            continue
        changes = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in row["changes"].items())
        basis = f" (priced on the {row['priced_on']} evidence)" if row["priced_on"] else ""
        print(
            f"  {row['useCase']}: {changes}; expected cost "
            f"{_money(row['cost_difference_per_1000'])}{basis}"
        )
    return 1 if differ else 0
