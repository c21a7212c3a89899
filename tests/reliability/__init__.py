"""Fault injection against the CCM process: the real kube-apiserver, the fake XO.

``test_*.py`` are the bounded CI scenarios; the soak (``scripts/soak``,
:mod:`tools.soak`) is the opt-in long run with random churn and faults, on this
suite's world.
"""
