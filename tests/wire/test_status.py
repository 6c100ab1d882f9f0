import pytest

from rbmtools import ApiError
from rbmtools.wire import api_error, error_body


def test_doc_envelope(platform_examples):
    error = api_error(404, platform_examples["error_envelope"], method="DELETE", url="http://x/y")
    assert isinstance(error, ApiError)
    assert (error.status, error.status_name, error.retryable) == (404, "NOT_FOUND", False)
    assert error.message == "Requested entity was not found."
    assert "DELETE http://x/y" in str(error)


@pytest.mark.parametrize(
    ("code", "name", "retryable"),
    [
        (400, "INVALID_ARGUMENT", False),
        (403, "PERMISSION_DENIED", False),
        (409, "ALREADY_EXISTS", False),
        (429, "RESOURCE_EXHAUSTED", True),
        (500, "INTERNAL", True),
        (503, "UNAVAILABLE", True),
        (504, "DEADLINE_EXCEEDED", True),
    ],
)
def test_round_trip(code, name, retryable):
    body = error_body(code, "boom")
    assert body == {"error": {"code": code, "message": "boom", "status": name}}
    error = api_error(code, body)
    assert (error.status, error.status_name, error.message, error.retryable) == (
        code,
        name,
        "boom",
        retryable,
    )


@pytest.mark.parametrize("body", [b"", b"<html>Bad gateway</html>", None, b"[]", "plain"])
def test_bodies_that_are_not_envelopes(body):
    error = api_error(502, body)
    assert error.status == 502
    assert error.message


def test_repr_is_short_and_safe():
    text = repr(api_error(503, error_body(503, "later")))
    assert (
        text == "ApiError(status=503, status_name='UNAVAILABLE', message='later', retryable=True)"
    )
