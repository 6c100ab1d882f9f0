"""Revoke experiments: split traffic into arms, revoke as each arm says, fall back to SMS.

``ExperimentSpec`` describes the experiment (plain YAML/JSON form); ``run_experiment`` runs it
on a target (``EmulatorTarget``, a rehearsal on the emulator, see ``Rehearsal``; or
``LiveTarget``, Google's platform), following Google's recovery procedure for revokes (check
for DELIVERED, revoke again, then fall back), never messaging anyone twice by accident, and
leaves an outbox and an event log that ``rbmtools.analysis`` reads as they are. A run
interrupted by a stop file, Ctrl-C or a crash resumes from its outbox without re-sending
anything. A spec with a ``stopping`` rule (``StoppingSpec``) is looked at after every batch
and ends as soon as its answer is clear; ``experiment_status`` says where any run stands.
"""

from rbmtools.experiment.assign import (
    MESSAGE_ID_NAMESPACE,
    PlannedMessage,
    assign,
    message_id_for,
    plan_messages,
    read_phones,
    synthetic_phones,
)
from rbmtools.experiment.folder import RunPaths, read_outbox
from rbmtools.experiment.plan import ArmPlan, ExperimentPlan, build_plan
from rbmtools.experiment.rehearsal import Rehearsal
from rbmtools.experiment.run import (
    DEFAULT_DATA_DIR,
    ExperimentResult,
    plan_experiment,
    run_experiment,
)
from rbmtools.experiment.runner import ExperimentRunner, RunStats
from rbmtools.experiment.schedule import MirroredClock, PlatformClock, WallClock
from rbmtools.experiment.sms import (
    CallableSmsSender,
    EmulatorSmsSender,
    SinkSmsSender,
    SmsReceipt,
    SmsSender,
    load_sms_sender,
)
from rbmtools.experiment.spec import (
    Arm,
    Audience,
    ExperimentSpec,
    FallbackPolicy,
    RevokeMethod,
    load_spec,
)
from rbmtools.experiment.state import MessageFacts, Outcome, next_step
from rbmtools.experiment.status import ExperimentStatus, experiment_status
from rbmtools.experiment.stopping_spec import StoppingSpec
from rbmtools.experiment.targets import (
    DEFAULT_EVENT_TIMEOUT,
    DEFAULT_MAX_RECIPIENTS,
    TARGETS,
    EmulatorTarget,
    LiveTarget,
    Target,
)
from rbmtools.wire.ttl_policy import FallbackRule

__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_EVENT_TIMEOUT",
    "DEFAULT_MAX_RECIPIENTS",
    "MESSAGE_ID_NAMESPACE",
    "TARGETS",
    "Arm",
    "ArmPlan",
    "Audience",
    "CallableSmsSender",
    "EmulatorSmsSender",
    "EmulatorTarget",
    "ExperimentPlan",
    "ExperimentResult",
    "ExperimentRunner",
    "ExperimentSpec",
    "ExperimentStatus",
    "FallbackPolicy",
    "FallbackRule",
    "LiveTarget",
    "MessageFacts",
    "MirroredClock",
    "Outcome",
    "PlannedMessage",
    "PlatformClock",
    "Rehearsal",
    "RevokeMethod",
    "RunPaths",
    "RunStats",
    "SinkSmsSender",
    "SmsReceipt",
    "SmsSender",
    "StoppingSpec",
    "Target",
    "WallClock",
    "assign",
    "build_plan",
    "experiment_status",
    "load_sms_sender",
    "load_spec",
    "message_id_for",
    "next_step",
    "plan_experiment",
    "plan_messages",
    "read_outbox",
    "read_phones",
    "run_experiment",
    "synthetic_phones",
]
