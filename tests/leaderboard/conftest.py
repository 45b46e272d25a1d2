"""Fixtures of the leaderboard tests."""

from __future__ import annotations

import pytest

from tests.helpers.hub_fake import FakeHub


@pytest.fixture
def hub(tmp_path):
    """The ``HfApi`` endpoints routed to an in-memory Hub for the test."""
    with FakeHub(tmp_path / "downloads").patched() as fake:
        yield fake
