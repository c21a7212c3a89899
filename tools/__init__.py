"""Tools that measure the CCM rather than test it: ``bench`` (``scripts/bench``) and
``soak`` (``scripts/soak``). They drive the real console script against the real
control plane and the fake XO, with the test suite's process and cluster helpers
(``tests.integration``); their own code is tested at a tiny size in ``tests/bench``.
"""
