import pytest
from webhook_helpers import TOKEN

from rbmtools.webhook import Receiver


@pytest.fixture
def receiver(tmp_path):
    """A running in-process receiver (verifying, path /rbm) on a fresh log directory."""
    with Receiver(tmp_path / "events", client_token=TOKEN, path="/rbm") as rx:
        yield rx
