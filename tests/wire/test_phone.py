import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbmtools import ValidationError
from rbmtools.wire import normalize_phone, phone_from_path, phone_path_segment

e164 = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)


@given(e164)
def test_canonical_numbers_are_fixed_points(phone):
    assert normalize_phone(phone) == phone


@given(e164, st.lists(st.sampled_from([" ", "-", ".", "(", ")"]), max_size=6), st.randoms())
def test_separators_are_removed(phone, separators, rnd):
    chars = list(phone)
    for sep in separators:
        chars.insert(rnd.randint(1, len(chars)), sep)
    assert normalize_phone("".join(chars)) == phone


@given(e164)
def test_path_segment_round_trip_raw_and_percent_encoded(phone):
    segment = phone_path_segment(phone)
    assert segment.startswith("+")
    assert phone_from_path(segment) == phone
    assert phone_from_path(segment.replace("+", "%2B")) == phone
    assert phone_from_path(segment.replace("+", "%2b")) == phone


@pytest.mark.parametrize(
    "bad",
    [
        "12223334444",  # no plus
        "+0123456789",  # leading zero
        "+1234567",  # 7 digits: too short
        "+1234567890123456",  # 16 digits: too long
        "+1222333444a",
        "+1 222/333",
        "00442071234567",
        "",
        "+",
        "++12223334444",
    ],
)
def test_rejects_non_e164(bad):
    with pytest.raises(ValidationError) as info:
        normalize_phone(bad)
    assert info.value.field == "phone"
    assert repr(bad) in str(info.value)


@given(st.text(max_size=20).filter(lambda s: not s.strip(" -.()").startswith("+")))
def test_anything_without_plus_is_rejected(text):
    with pytest.raises(ValidationError):
        normalize_phone(text)


def test_non_strings_are_rejected():
    with pytest.raises(ValidationError, match="phone: must be a string"):
        normalize_phone(12223334444)
