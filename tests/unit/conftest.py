"""Fixtures of the unit tests: ``world`` is the CCM of :mod:`tests.world` on two pools."""

from __future__ import annotations

import pytest

from tests.world import World


@pytest.fixture
def world() -> World:
    return World()
