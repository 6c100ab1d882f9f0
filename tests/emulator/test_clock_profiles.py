"""The virtual clock and the population profiles."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from rbmtools.emulator import VirtualClock, load_profile, profile_names
from rbmtools.errors import ValidationError

from .conftest import START


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_clock_runs_at_its_speed():
    real = FakeMonotonic()
    clock = VirtualClock(600, START, monotonic=real)
    assert clock.now() == START
    real.t += 1.0
    assert clock.seconds() == pytest.approx(600.0)
    assert (clock.now() - START).total_seconds() == pytest.approx(600.0)
    assert clock.real_delay(1200) == pytest.approx(2.0)


def test_speed_changes_keep_time_continuous_and_zero_steps():
    real = FakeMonotonic()
    clock = VirtualClock(10, START, monotonic=real)
    real.t += 2
    clock.set_speed(0)
    real.t += 100
    assert clock.seconds() == pytest.approx(20.0)
    assert clock.real_delay(5) is None
    assert clock.advance(30) == pytest.approx(50.0)
    clock.set_speed(1)
    real.t += 1
    assert clock.seconds() == pytest.approx(51.0)


@pytest.mark.parametrize("bad", [-1, float("nan"), "fast", True])
def test_bad_speeds_are_refused(bad):
    with pytest.raises(ValidationError, match="speed"):
        VirtualClock(bad, START)
    with pytest.raises(ValidationError, match="seconds"):
        VirtualClock(0, START).advance(-5)


def test_shipped_profiles_load_and_differ():
    names = profile_names()
    assert {"default", "always-online", "commuters", "flaky-network"} <= set(names)
    profiles = {name: load_profile(name) for name in names}
    assert profiles["always-online"].rcs_capable_share == 1.0
    assert profiles["always-online"].online_share > 0.999_999
    assert profiles["flaky-network"].online_share < profiles["commuters"].online_share
    for profile in profiles.values():  # a profile round-trips through its file layout
        assert load_profile(profile.to_dict()) == profile


def test_every_number_in_a_shipped_profile_is_explained_by_a_comment():
    folder = resources.files("rbmtools.emulator") / "profiles"
    for name in profile_names():
        lines = (folder / f"{name}.yaml").read_text().splitlines()
        for i, line in enumerate(lines):
            if re.search(r":\s*[\[{]?\s*[\d.]+", line) and not line.lstrip().startswith("#"):
                above = lines[i - 1].lstrip()
                assert above.startswith("#"), f"{name}.yaml line {i + 1} lacks a comment: {line}"


def test_partial_profiles_extend_a_shipped_one(tmp_path):
    yaml_file = tmp_path / "mine.yaml"
    yaml_file.write_text("extends: commuters\ndevices:\n  rcs_capable_share: 0.5\n")
    mine = load_profile(yaml_file)
    commuters = load_profile("commuters")
    assert mine.name == "mine"
    assert mine.rcs_capable_share == 0.5
    assert mine.online == commuters.online
    json_file = tmp_path / "other.json"
    json_file.write_text(json.dumps({"read": {"delay": {"median": "2m", "sigma": 0}}}))
    assert load_profile(json_file).read_delay.median == 120.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"devices": {"rcs_capable_share": 1.5}}, "profile.devices.rcs_capable_share"),
        ({"devices": {"online": {"median": "soon"}}}, "profile.devices.online.median"),
        ({"devices": {"online": {"median": 5, "sigma": -1}}}, "profile.devices.online.sigma"),
        ({"delivery": {"hand_off": 1}}, "profile.delivery.hand_off"),
        ({"colour": "red"}, "profile.colour"),
        ({"agent": {"launched": "yes"}}, "profile.agent.launched"),
        ({"extends": "nowhere"}, "profile.extends"),
        ({"capabilities": "ALL"}, "profile.capabilities"),
    ],
)
def test_bad_profiles_name_the_field(data, field):
    with pytest.raises(ValidationError) as info:
        load_profile(data)
    assert info.value.field == field


def test_unknown_profile_name_lists_the_shipped_ones():
    with pytest.raises(ValidationError, match="commuters"):
        load_profile("no-such-profile")
