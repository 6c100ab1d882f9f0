"""Every ValidationError names its field and shows the bad value."""

import ast
from pathlib import Path

import pytest

import rbmtools
from rbmtools import ValidationError, wire

PACKAGE = Path(rbmtools.__file__).parent

BAD_CALLS = [
    (wire.normalize_phone, ("0800 FLOWERS",)),
    (wire.parse_timestamp, ("25/11/2026",)),
    (wire.duration_nanos, ("forever",)),
    (wire.expiry_fields, ("10m", "2026-11-25T10:00:00Z")),
    (wire.normalize_traffic_type, ("SPAM",)),
    (wire.base_url_for, ("mars",)),
    (wire.validate_message_id, ("has space",)),
    (wire.validate_agent_id, ("",)),
    (wire.agent_message, ("x" * 4000,)),
    (wire.parse_event, ({"senderPhoneNumber": "+1"},)),
    (wire.parse_outbox_record, ({"kind": "send"},)),
    (wire.parse_push, (b"{}",)),
]


@pytest.mark.parametrize(("func", "args"), BAD_CALLS, ids=lambda x: getattr(x, "__name__", ""))
def test_message_names_field_and_value(func, args):
    with pytest.raises(ValidationError) as info:
        func(*args)
    error = info.value
    assert isinstance(error, ValueError)
    assert error.field and str(error).startswith(f"{error.field}: ")
    assert "(got " in str(error)
    shown = repr(error.value)
    assert shown[:40] in str(error)


def test_every_raise_site_passes_field_value_and_problem():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ValidationError"
            ):
                assert len(node.args) == 3, (
                    f"{path.name}:{node.lineno} must give field, value, problem"
                )
