"""Shared test configuration: ``src`` is importable through the editable install.

``xo_spec``: XO's published OpenAPI spec (``tests/spec/xo_spec.py``), for every
suite that holds the fake XO or the adapter to it. When it cannot be had the
tests that need it fail, saying why: a skipped spec check proves nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.spec.xo_spec import XOSpec

pytest_plugins = ["tests.interrupt"]


@pytest.fixture(scope="session")
def xo_spec() -> XOSpec:
    # Imported here: openapi-core is heavy, and most test processes never need it.
    from tests.spec.xo_spec import SpecUnavailable, XOSpec, spec_folder

    try:
        return XOSpec(spec_folder())
    except SpecUnavailable as err:
        pytest.fail(f"XO's OpenAPI spec is unavailable: {err}", pytrace=False)
