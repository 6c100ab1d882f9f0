"""The spec's plain form and checks, recipients, arms and deterministic messageIds."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import yaml
from experiment_helpers import make_spec

from rbmtools.errors import ValidationError
from rbmtools.experiment import (
    ExperimentSpec,
    FallbackPolicy,
    RevokeMethod,
    assign,
    load_spec,
    message_id_for,
    plan_experiment,
    plan_messages,
    read_phones,
    synthetic_phones,
)

# ------------------------------------------------------------------------------ spec


def test_plain_form_round_trips_through_yaml_and_json(tmp_path):
    spec = make_spec(send_rate=20, sms_template="Code {code} (SMS)", description="hello")
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    assert load_spec(spec.save(tmp_path / "s.yaml")) == spec
    assert load_spec(spec.save(tmp_path / "s.json")) == spec
    assert json.loads((tmp_path / "s.json").read_text())["arms"][0] == {
        "name": "ttl=120s",
        "method": "ttl",
        "duration": "120s",
    }


def test_durations_and_names_are_canonical():
    spec = make_spec(
        arms=[{"method": "api_after_unless_delivered", "duration": "1h30m"}],
        grace="0.5s",
        observe=0,
    )
    arm = spec.arms[0]
    assert arm.method is RevokeMethod.API_AFTER_UNLESS_DELIVERED and arm.method.uses_api
    assert (arm.duration, arm.seconds) == ("5400s", 5400)
    assert arm.name == "api_after_unless_delivered=5400s"
    assert (spec.grace, spec.observe, spec.grace_seconds) == ("0.500s", "0s", 0.5)
    assert spec.fallback is FallbackPolicy.ON_REVOKED


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "no spaces allowed"}, "name"),
        ({"arms": []}, "arms"),
        ({"arms": [{"method": "ttl"}]}, "arms[0].duration"),
        ({"arms": [{"method": "revoke_now", "duration": "1m"}]}, "arms[revoke_now].method"),
        ({"arms": [{"method": "ttl", "duration": "16d"}]}, "arms[ttl].duration"),
        ({"arms": [{"method": "ttl", "duration": "0s"}]}, "arms[ttl].duration"),
        ({"arms": [{"method": "ttl", "duration": d} for d in ("1m", "60s")]}, "arms"),
        ({"arms": [{"method": "ttl", "duration": "1m", "colour": "red"}]}, "arms[0].colour"),
        ({"audience": {"synthetic": 0}}, "audience.synthetic"),
        ({"audience": {}}, "audience"),
        ({"audience": {"synthetic": 5, "phones_file": "x.txt"}}, "audience"),
        ({"template": "Hi {first_name}"}, "template"),
        ({"template": "Hi {code:>8}"}, "template"),
        ({"template": "x" * 3100}, "contentMessage.text"),
        ({"template": {"richCard": {}}}, "contentMessage.richCard"),
        ({"per_arm": 5, "total": 10}, "per_arm/total"),
        ({"total": 1}, "total"),
        ({"fallback": "always"}, "fallback"),
        ({"send_rate": 0}, "send_rate"),
        ({"traffic_type": "SPAM"}, "messageTrafficType"),
        ({"grace": "soon"}, "grace"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_specs_name_the_field(changes, field):
    with pytest.raises(ValidationError) as caught:
        make_spec(**changes)
    assert caught.value.field == field


def test_a_card_template_needs_an_sms_text():
    card = {"text": "hello", "suggestions": [{"reply": {"text": "Yes", "postbackData": "y"}}]}
    with pytest.raises(ValidationError, match="sms_template"):
        make_spec(template=card)
    spec = make_spec(template=card, sms_template="hello by SMS")
    assert spec.sms_text_template == "hello by SMS"


def test_render_fills_every_placeholder():
    spec = make_spec(template="{experiment}/{arm}/{index}/{phone}/{code}/{message_id}")
    text = spec.render(spec.template, "+15550000001", "abc", "ttl=120s", 4)
    assert text.startswith("t/ttl=120s/4/+15550000001/") and text.endswith("/abc")
    assert len(text.split("/")[4]) == 6


def test_fallback_policy_allows():
    assert not FallbackPolicy.NONE.allows("revoked")
    assert FallbackPolicy.ON_REVOKED.allows("revoked")
    assert not FallbackPolicy.ON_REVOKED.allows("inconclusive")
    assert FallbackPolicy.ON_REVOKED_OR_INCONCLUSIVE.allows("inconclusive")


def test_a_relative_phone_list_is_read_next_to_the_spec_file(tmp_path):
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "phones.txt").write_text("+15550001111\n+15550002222\n")
    data = make_spec().to_dict()
    data["audience"] = {"phones_file": "phones.txt"}
    (folder / "spec.yaml").write_text(yaml.safe_dump(data))
    spec = load_spec(folder / "spec.yaml")
    assert spec.audience.phones_file == str(folder / "phones.txt")
    assert plan_experiment(spec).recipients == 2


def test_load_spec_reports_unreadable_files(tmp_path):
    with pytest.raises(ValidationError, match="not a readable spec file"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")


# ------------------------------------------------------------------------------ recipients


def test_phone_lists_plain_and_csv(tmp_path):
    plain = tmp_path / "phones.txt"
    plain.write_text("# our testers\n+1 555 000 1111\n\n+15550002222  # Bob\n+15550001111\n")
    assert read_phones(plain) == ["+15550001111", "+15550002222"]
    table = tmp_path / "phones.csv"
    table.write_text("name,Phone\nAl,+15550003333\nBo,+15550004444\n")
    assert read_phones(table) == ["+15550003333", "+15550004444"]
    bad = tmp_path / "bad.txt"
    bad.write_text("+15550001111\n5550002222\n")
    with pytest.raises(ValidationError) as caught:
        read_phones(bad)
    assert caught.value.field == "bad.txt line 2"
    (tmp_path / "empty.txt").write_text("# nobody\n")
    with pytest.raises(ValidationError, match="no phone numbers"):
        read_phones(tmp_path / "empty.txt")


def test_synthetic_phones_are_distinct_e164():
    phones = synthetic_phones(1000)
    assert len(set(phones)) == 1000 and phones[0] == "+15550000000"


def test_message_ids_are_deterministic_and_distinct():
    a = message_id_for("exp", "+15550000001", "ttl=120s")
    assert a == message_id_for("exp", "+1 555 000 0001", "ttl=120s")
    others = {
        message_id_for("exp", "+15550000002", "ttl=120s"),
        message_id_for("exp", "+15550000001", "ttl=600s"),
        message_id_for("exp2", "+15550000001", "ttl=120s"),
    }
    assert a not in others and len(others) == 3


def test_assignment_is_seeded_balanced_and_one_arm_per_recipient():
    spec = make_spec(
        audience={"synthetic": 100},
        arms=[{"method": "ttl", "duration": d} for d in ("1m", "2m", "3m")],
        total=70,
    )
    messages, fingerprint, audience = plan_messages(spec)
    again, fingerprint_again, _ = plan_messages(spec)
    assert messages == again and fingerprint == fingerprint_again and audience == 100
    counts = Counter(m.arm for m in messages)
    assert sorted(counts.values()) == [23, 23, 24]
    assert len({m.phone for m in messages}) == 70  # one message per recipient
    assert [m.index for m in messages] == list(range(70))
    assert all(m.message_id == message_id_for("t", m.phone, m.arm) for m in messages)
    # the send order interleaves the arms (no arm goes first)
    first_ten = {m.arm for m in messages[:10]}
    assert len(first_ten) > 1
    other_seed = plan_messages(spec.replace(seed=4))[0]
    assert [m.phone for m in other_seed] != [m.phone for m in messages]


def test_per_arm_and_audience_size():
    spec = make_spec(audience={"synthetic": 10}, per_arm=5)
    assert Counter(m.arm for m in assign(spec, synthetic_phones(10))) == {
        "ttl=120s": 5,
        "api_after=120s": 5,
    }
    with pytest.raises(ValidationError, match="needs 12 recipients"):
        assign(make_spec(per_arm=6), synthetic_phones(10))


def test_the_plan_estimates_sms_with_the_emulator_model():
    never_online = {
        "extends": "always-online",
        "devices": {"online": {"median": "1s"}, "offline": {"median": "3650d"}},
    }
    spec = make_spec(audience={"synthetic": 20, "profile": never_online})
    plan = plan_experiment(spec)
    assert (plan.sms_at_most, plan.sms_estimate, plan.profile) == (20, 20, "custom")
    assert "about 20 if the phones behave like the emulator profile 'custom'" in plan.text()
    assert plan_experiment(make_spec()).sms_estimate == 0  # always online: all delivered
    assert plan_experiment(make_spec(fallback="none")).sms_estimate is None
    no_profile = make_spec(audience={"synthetic": 20})
    assert plan_experiment(no_profile).sms_estimate is None


def test_read_outbox_sets_a_torn_line_aside(tmp_path, caplog):
    from rbmtools.experiment import read_outbox

    outbox = tmp_path / "outbox.jsonl"
    good = (
        '{"kind":"send","messageId":"m-1","phone":"+15550000001","agentId":"a",'
        '"sendTime":"2026-11-25T10:00:00Z","status":200,"experiment":"t","arm":"x"}\n'
    )
    outbox.write_text(good + "not a record\n" + good.replace("m-1", "m-2") + '{"kind":"se')
    records = read_outbox(outbox)
    assert [r.message_id for r in records] == ["m-1", "m-2"]
    assert "line 2 is not an outbox record" in caplog.text and "torn line" in caplog.text
    assert outbox.read_text().endswith('{"kind":"se')  # reading alone changes nothing
    assert len(read_outbox(outbox, repair=True)) == 2
    assert outbox.read_text().endswith("}\n")
    assert (tmp_path / "outbox.torn").read_text() == '{"kind":"se\n'
    assert read_outbox(tmp_path / "missing.jsonl") == []
