from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from rbmtools import ValidationError
from rbmtools.wire import (
    duration_nanos,
    duration_seconds,
    format_duration,
    format_timestamp,
    parse_duration,
    parse_timestamp,
)
from rbmtools.wire.times import TIMESTAMP_PATTERN

aware = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@given(aware)
def test_timestamp_round_trip(moment):
    text = format_timestamp(moment)
    assert text.endswith("Z")
    assert parse_timestamp(text) == moment
    assert parse_timestamp(text).tzinfo == UTC


@given(aware, st.integers(0, 999))
def test_nanoseconds_are_truncated_to_microseconds(moment, extra_nanos):
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond:06d}{extra_nanos:03d}Z"
    assert parse_timestamp(text) == moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:01.045123456Z", datetime(2026, 11, 25, 10, 0, 1, 45123, tzinfo=UTC)),
        ("2026-11-25T10:10:00.5Z", datetime(2026, 11, 25, 10, 10, 0, 500000, tzinfo=UTC)),
        ("2026-11-25T10:10:00Z", datetime(2026, 11, 25, 10, 10, tzinfo=UTC)),
        ("2026-11-25T15:40:00+05:30", datetime(2026, 11, 25, 10, 10, tzinfo=UTC)),
        ("2026-11-25t10:10:00z", datetime(2026, 11, 25, 10, 10, tzinfo=UTC)),
        ("2026-11-25 10:10:00.1-01:00", datetime(2026, 11, 25, 11, 10, 0, 100000, tzinfo=UTC)),
    ],
)
def test_timestamp_examples(text, expected):
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), "2026-01-02T03:04:05.120Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
    ],
)
def test_timestamps_are_written_with_0_3_or_6_digits(moment, text):
    assert format_timestamp(moment) == text


@pytest.mark.parametrize(
    "bad",
    [
        "2026-11-25",
        "2026-11-25T10:00:00",  # no zone
        "2026-13-25T10:00:00Z",
        "2026-11-25T10:00:00.1234567890Z",  # 10 digits
        "yesterday",
        "",
        # Not in the one grammar the receiver and the analysis share (issue 15):
        1764064805,  # an epoch number
        "1764064805",
        "25/11/2026 10:00:05",
        "2026-11-25T10:00:60Z",  # a leap second
        " 2026-11-25T10:00:05Z",  # surrounding whitespace
        "2026-11-25T10:00:05Z\n",
        "\u0662\u0660\u0662\u0666-11-25T10:00:05Z",  # Arabic-Indic digits match \d
        "2026-11-25T10:00:05+24:00",
        "2026-02-29T10:00:05Z",  # not a leap year
        "0000-01-01T00:00:00Z",
        # Valid shapes whose UTC instant falls outside years 1-9999 (was an OverflowError)
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_bad_timestamps(bad):
    with pytest.raises(ValidationError) as info:
        parse_timestamp(bad, "sendTime")
    assert info.value.field == "sendTime"


@given(st.from_regex(TIMESTAMP_PATTERN, fullmatch=True))
@example("9999-12-31T23:59:59.999999999-23:59")
@example("0001-01-01t00:00:00z")
def test_anything_of_the_timestamp_shape_parses_or_is_a_validation_error(text):
    try:
        moment = parse_timestamp(text)
    except ValidationError:
        return
    assert moment.tzinfo == UTC and 1 <= moment.year <= 9999


def test_lower_case_and_space_separators_are_in_the_grammar():
    expected = datetime(2026, 11, 25, 10, 0, 5, tzinfo=UTC)
    for text in ("2026-11-25t10:00:05z", "2026-11-25 10:00:05Z", "2026-11-25T10:00:05+00:00"):
        assert parse_timestamp(text) == expected


def test_naive_datetime_is_refused_with_a_hint():
    with pytest.raises(ValidationError, match="naive datetime"):
        format_timestamp(datetime(2026, 1, 1))


@given(st.integers(0, 15 * 86400), st.integers(0, 999_999_999))
def test_proto_duration_round_trip(seconds, nanos):
    text = f"{seconds}.{nanos:09d}s"
    canonical = format_duration(text)
    assert duration_nanos(canonical) == seconds * 1_000_000_000 + nanos
    assert format_duration(canonical) == canonical


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=30)))
def test_timedelta_round_trip(delta):
    assert parse_duration(format_duration(delta)) == delta


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("600s", "600s"),
        ("3.5s", "3.500s"),
        ("90s", "90s"),
        ("10m", "600s"),
        ("2h", "7200s"),
        ("1d", "86400s"),
        ("1h30m", "5400s"),
        ("1h 30m", "5400s"),
        ("250ms", "0.250s"),
        ("0.000000001s", "0.000000001s"),
        ("1.5h", "5400s"),
        ("600", "600s"),
        (600, "600s"),
        (2.5, "2.500s"),
        (timedelta(minutes=2), "120s"),
    ],
)
def test_duration_forms(value, canonical):
    assert format_duration(value) == canonical


def test_duration_seconds():
    assert duration_seconds("1h30m") == 5400.0


@pytest.mark.parametrize(
    "bad", ["-5s", "10 minutes", "1h30", "s", "", "1.0000000001s", -1, float("nan"), True, [1]]
)
def test_bad_durations(bad):
    with pytest.raises(ValidationError) as info:
        duration_nanos(bad, "ttl")
    assert info.value.field == "ttl"
