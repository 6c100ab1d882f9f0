"""Targets as objects with their own settings, and the names-plus-settings form they replace."""

from __future__ import annotations

import importlib
import warnings

import pytest
from experiment_helpers import make_spec

from rbmtools.errors import ValidationError
from rbmtools.experiment import (
    DEFAULT_MAX_RECIPIENTS,
    EmulatorTarget,
    LiveTarget,
    plan_experiment,
    run_experiment,
)
from rbmtools.experiment.targets import make_target


def test_a_name_and_its_settings_make_the_target_object():
    assert make_target("emulator") == EmulatorTarget()
    assert make_target("emulator", {"speed": 1200.0}) == EmulatorTarget(speed=1200.0)
    live = make_target("live", {"agent_id": "shop", "allow_many": True, "event_timeout": "2m"})
    assert live == LiveTarget(agent_id="shop", allow_many=True, event_timeout="2m")
    assert live.event_timeout_seconds == 120.0 and EmulatorTarget().event_timeout_seconds is None
    assert LiveTarget().event_timeout_seconds == 600.0  # live: 10 minutes unless told
    target = LiveTarget(region="europe")
    assert make_target(target) is target


def test_a_setting_of_the_other_target_is_ignored_at_its_default_and_refused_otherwise():
    # A notebook passes every parameter it has; the other target's defaults say nothing.
    quiet = {"region": None, "confirm": False, "allow_many": False}
    assert make_target("emulator", {**quiet, "max_recipients": DEFAULT_MAX_RECIPIENTS}) == (
        EmulatorTarget()
    )
    assert make_target("live", {"emulator": None, "speed": 600.0}) == LiveTarget()
    with pytest.raises(ValidationError, match="speed: is a setting of the emulator target"):
        make_target("live", {"speed": 1200.0})
    with pytest.raises(ValidationError, match="confirm: is a setting of the live target"):
        make_target("emulator", {"confirm": True})
    with pytest.raises(ValidationError, match="colour: is not a setting of any target"):
        make_target("emulator", {"colour": "blue"})
    with pytest.raises(ValidationError, match="target"):
        make_target("staging")
    with pytest.raises(ValidationError, match="give it to the live target object"):
        make_target(LiveTarget(), {"allow_many": True})
    with pytest.raises(ValidationError, match="event_timeout"):
        LiveTarget(event_timeout="soon")


def test_run_experiment_takes_either_form(tmp_path):
    spec = make_spec(name="forms")
    by_object = run_experiment(spec, EmulatorTarget(speed=900.0), tmp_path, dry_run=True, echo=None)
    by_name = run_experiment(spec, "emulator", tmp_path, dry_run=True, echo=None, speed=900.0)
    assert by_object.plan == by_name.plan and by_object.target == by_name.target == "emulator"
    assert plan_experiment(spec, LiveTarget()).target == "live"
    with pytest.raises(ValidationError, match="speed"):
        run_experiment(spec, LiveTarget(), tmp_path, dry_run=True, echo=None, speed=1.0)


def test_the_old_api_module_still_imports_with_a_warning():
    api = importlib.import_module("rbmtools.experiment.api")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        function = api.run_experiment
        paths = api.RunPaths
    assert function is run_experiment and paths.__name__ == "RunPaths"
    assert [w.category for w in caught] == [DeprecationWarning, DeprecationWarning]
    assert "import run_experiment from rbmtools.experiment" in str(caught[0].message)
    with pytest.raises(AttributeError):
        api.nothing_here  # noqa: B018
