"""Hypothesis profiles for the fuzz suite.

- ``default``: a modest number of examples per property, so the suite stays
  fast; failures are kept in the local example database (``.hypothesis/``,
  not committed) and replayed first next time;
- ``ci`` (chosen when ``CI`` is set): the same count, derandomized (the same
  examples on every run, so a red build is reproducible) and no database;
- ``thorough``: many more examples, for a deliberate fuzzing session
  (``HYPOTHESIS_PROFILE=thorough pytest tests/fuzz --timeout=0``).

``HYPOTHESIS_PROFILE`` overrides the choice. No deadline: an example may
start a loopback server, and a 2-core machine shared by several jobs makes
wall-clock limits flaky.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": (HealthCheck.too_slow,),
}

settings.register_profile("default", max_examples=40, **_COMMON)  # type: ignore[arg-type]
settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    database=None,
    print_blob=True,
    **_COMMON,  # type: ignore[arg-type]
)
settings.register_profile("thorough", max_examples=1000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "default")
)
