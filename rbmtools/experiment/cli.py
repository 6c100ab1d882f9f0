"""``rbmtools experiment run SPEC.yaml [--target emulator|live] [--dry-run] [--resume]``,
``rbmtools experiment suggest ...`` and ``rbmtools experiment status RUN_DIR``.

Runs a revoke experiment (see ``rbmtools.experiment.run_experiment``) and prints the plan, the
progress and the per-arm summary. Exit codes: 0 the run completed (or the plan was printed),
1 it stopped before the end (stop file or Ctrl-C; ``--resume`` continues it), 2 usage or
validation error (including a refused live run), 3 API or transport failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from rbmtools.cli import EXIT_NO, EXIT_OK
from rbmtools.errors import ValidationError
from rbmtools.experiment.plan import ExperimentPlan
from rbmtools.experiment.run import DEFAULT_DATA_DIR, ExperimentResult, run_experiment
from rbmtools.experiment.sms import load_sms_sender
from rbmtools.experiment.targets import (
    DEFAULT_MAX_RECIPIENTS,
    TARGETS,
    EmulatorTarget,
    LiveTarget,
    Target,
)
from rbmtools.outputs import add_force_argument, refuse_existing

__all__ = ["register"]

#: The summary columns the text output shows, in order (all are in ``--json``).
SUMMARY_COLUMNS = (
    "arm",
    "messages",
    "delivered",
    "delivered_after_revoke",
    "revoked",
    "revoke_failed_undelivered",
    "pending",
    "not_rcs",
    "fallbacks",
    "not_rcs_fallbacks",
    "double_deliveries",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="run, watch and plan revoke experiments (arms, stopping rules, SMS fallback)",
        description=(
            "Run revoke experiments on the emulator or live, watch them (status) and plan the "
            "next one (suggest)."
        ),
    )
    commands = parser.add_subparsers(title="experiment commands", metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run (or resume) an experiment spec",
        description=(
            "Run an experiment spec. The run folder is DATA_DIR/<name>: spec.yaml, run.json, "
            "outbox.jsonl, events/ and sms.jsonl. Create DATA_DIR/<name>/STOP (or press "
            "Ctrl-C) to stop after the calls in flight; --resume continues without sending "
            "anything twice."
        ),
        epilog="Exit codes: 0 completed (or plan printed), 1 stopped before the end, "
        "2 usage or validation error, 3 API or transport failure.",
    )
    run.add_argument("spec", type=Path, help="the experiment spec (YAML or JSON)")
    run.add_argument("--target", choices=TARGETS, default="emulator")
    run.add_argument("--dry-run", action="store_true", help="print the plan, send nothing")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run")
    run.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where run folders go")
    run.add_argument("--concurrency", type=int, default=8, help="parallel API calls")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    run.add_argument("--stop-file", type=Path, help="stop when this file appears")
    emulator = run.add_argument_group("emulator target")
    emulator.add_argument("--speed", type=float, default=600.0, help="emulator clock speed")
    emulator.add_argument(
        "--emulator-url", help="attach to an emulator served elsewhere (rbmtools emulator serve)"
    )
    live = run.add_argument_group("live target (and --emulator-url)")
    live.add_argument("--key-file", help="service-account key path (RBM_SERVICE_ACCOUNT)")
    live.add_argument("--agent-id", help="agent id (RBM_AGENT_ID)")
    live.add_argument("--region", choices=["us", "europe", "asia"], help="(RBM_REGION)")
    live.add_argument("--base-url", help="API base URL (RBM_BASE_URL)")
    live.add_argument("--events-dir", type=Path, help="your webhook receiver's log directory")
    live.add_argument("--sms", help="SMS provider adapter, 'package.module:name'")
    live.add_argument("--yes", action="store_true", help="confirm a live run without a prompt")
    live.add_argument(
        "--max-recipients",
        type=int,
        default=DEFAULT_MAX_RECIPIENTS,
        help=f"refuse live runs to more numbers (default {DEFAULT_MAX_RECIPIENTS})",
    )
    live.add_argument("--allow-many", action="store_true", help="lift --max-recipients")
    live.add_argument(
        "--event-timeout",
        default="10m",
        help="stop if the webhook log stays silent this long after the first send "
        "(fallbacks are held until an event arrives; 'off' disables; default 10m)",
    )
    run.set_defaults(func=_run)
    _register_suggest(commands)
    _register_status(commands)


def _register_status(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="where a run stands, decision first (Ready, Keep running, Inconclusive, ...)",
        description=(
            "Say, per use case, whether a run's answer is clear: Ready (the best arm, its "
            "always-valid interval, what it saves per 1,000 messages), Keep running (about how "
            "many messages are left), Inconclusive (the maximum was sent) or Not enough data; "
            "then every arm's raw counts and rates, and a sample-ratio check of the assignment "
            "counts. A finished run with a stopping rule shows the runner's last look; any other "
            "run is looked at now, from its logs."
        ),
        epilog="Exit codes: 0 printed, 2 not a run folder.",
    )
    status.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="DATA_DIR/<name>")
    status.add_argument("--json", action="store_true", help="the status as JSON")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from rbmtools.experiment.status import experiment_status

    if not (args.run_dir / "spec.yaml").is_file():
        raise ValidationError("RUN_DIR", str(args.run_dir), "is not a run folder (no spec.yaml)")
    report = experiment_status(args.run_dir)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.text())
    return EXIT_OK


def _register_suggest(commands: Any) -> None:
    suggest = commands.add_parser(
        "suggest",
        help="write the next experiment: arms bracketing the best TTL's interval",
        description=(
            "Write a TTL experiment spec for one use case from an analysis document (rbmtools "
            "analyze --json): arms at the low end of the best TTL's interval, at the best TTL "
            "and at the high end, plus the active TTL policy's rule as control, each sized to "
            "detect a stated difference in expected cost per message."
        ),
        epilog="Exit codes: 0 written, 2 bad input (an existing --output without --force).",
    )
    suggest.add_argument("--from", dest="source", type=Path, required=True, metavar="JSON",
                         help="the analysis document (rbmtools analyze --json > FILE)")  # fmt: skip
    suggest.add_argument("--use-case", required=True, help="the use case to experiment on")
    suggest.add_argument(
        "--active-policy",
        type=Path,
        metavar="FILE",
        help="the TTL policy in use: its rule for the use case is the control arm (default: "
        "the analysis's drift entry, if analyze ran with --active-policy)",
    )
    suggest.add_argument(
        "--difference",
        type=float,
        default=5.0,
        help="the expected-cost difference to detect, per 1,000 messages (default 5)",
    )
    suggest.add_argument("--power", type=float, default=0.8, help="default 0.8")
    suggest.add_argument("--alpha", type=float, default=0.05, help="default 0.05 (two-sided)")
    audience = suggest.add_mutually_exclusive_group()
    audience.add_argument("--phones", help="audience: a phone list (for a live run)")
    audience.add_argument(
        "--profile", default="default", help="audience: synthetic numbers of this emulator profile"
    )
    suggest.add_argument("--name", help="the experiment's name (default <use case>-ttl-next)")
    suggest.add_argument("--template", help="the message template (default 'Your code is {code}')")
    suggest.add_argument("--seed", type=int, default=0, help="assignment seed (default 0)")
    suggest.add_argument("-o", "--output", type=Path, required=True, help="the spec to write")
    add_force_argument(suggest, "--output")
    suggest.set_defaults(func=_suggest)


def _suggest(args: argparse.Namespace) -> int:
    from rbmtools.experiment.suggest import suggest_spec
    from rbmtools.wire.ttl_policy import TtlPolicy

    refuse_existing(args.output, args.force, "--output")
    try:
        document = json.loads(args.source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError("--from", str(args.source), f"cannot be read ({exc})") from None
    active = None
    if args.active_policy is not None:
        active = TtlPolicy.load(args.active_policy).rule(args.use_case)
    audience = None
    if args.phones:
        audience = {"phones_file": str(Path(args.phones).resolve())}
    suggestion = suggest_spec(
        document,
        args.use_case,
        active=active,
        difference_per_1000=args.difference,
        alpha=args.alpha,
        power=args.power,
        audience=audience,
        profile=args.profile,
        name=args.name,
        template=args.template,
        seed=args.seed,
    )
    spec = suggestion.spec
    args.output.parent.mkdir(parents=True, exist_ok=True)
    spec.save(args.output)
    print(f"wrote {args.output}: {len(spec.arms)} arms of {suggestion.per_arm:,} messages")
    for arm in spec.arms:
        print(f"  {arm.name}")
    print(spec.description)
    print(f"check the plan: rbmtools experiment run {args.output} --dry-run")
    return EXIT_OK


def _prompt(args: argparse.Namespace) -> Any:
    """--yes, or the experiment's name typed at a terminal once the plan is shown."""

    def confirm(plan: ExperimentPlan) -> bool:
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print(
                "rbmtools: not confirmed: nothing was sent (pass --yes to confirm)",
                file=sys.stderr,
            )
            return False
        answer = input(f"Type the experiment name ({plan.experiment}) to send these messages: ")
        return answer.strip() == plan.experiment

    return confirm


def _target(args: argparse.Namespace) -> Target:
    """The target object the flags describe."""
    if args.target == "emulator":
        return EmulatorTarget(
            emulator=args.emulator_url,
            speed=args.speed,
            key_file=args.key_file,
            agent_id=args.agent_id,
        )
    return LiveTarget(
        key_file=args.key_file,
        agent_id=args.agent_id,
        region=args.region,
        base_url=args.base_url,
        events_dir=args.events_dir,
        confirm=_prompt(args),
        max_recipients=args.max_recipients,
        allow_many=args.allow_many,
        event_timeout=None if args.event_timeout == "off" else args.event_timeout,
    )


def _run(args: argparse.Namespace) -> int:
    result = run_experiment(
        args.spec,
        _target(args),
        args.data_dir,
        resume=args.resume,
        dry_run=args.dry_run,
        sms=load_sms_sender(args.sms) if args.sms else None,
        concurrency=args.concurrency,
        progress=not args.no_progress,
        stop_file=args.stop_file,
        echo=(lambda text: print(text, file=sys.stderr)) if args.json else print,
    )
    if args.json:
        print(json.dumps(_document(result), indent=2, default=str))
    elif result.summary is not None:
        print(_table(result))
    if result.status in ("complete", "dry-run"):
        return EXIT_OK
    print(
        f"rbmtools: the run stopped before the end; continue it with: rbmtools experiment run "
        f"{args.spec} --resume",
        file=sys.stderr,
    )
    return EXIT_NO


def _document(result: ExperimentResult) -> dict[str, Any]:
    summary = None
    if result.summary is not None:
        summary = json.loads(result.summary.to_json(orient="records", date_format="iso"))
    return {
        "experiment": result.spec.name,
        "target": result.target,
        "status": result.status,
        "runDir": str(result.run_dir),
        "outbox": str(result.outbox),
        "events": str(result.events),
        "sms": str(result.sms),
        "plan": result.plan.to_dict(),
        "stats": None if result.stats is None else result.stats.to_dict(),
        "summary": summary,
    }


def _table(result: ExperimentResult) -> str:
    assert result.summary is not None
    columns = [c for c in SUMMARY_COLUMNS if c in result.summary.columns]
    return result.summary[columns].to_string(index=False)
