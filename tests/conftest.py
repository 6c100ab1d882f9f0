import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def platform_examples() -> dict:
    """The JSON examples of the shared platform and log-format documents."""
    return json.loads((FIXTURES / "platform_examples.json").read_text())
