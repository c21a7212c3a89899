"""Fault injection against the CCM process: the real kube-apiserver, the fake XO.

``test_*.py`` are the bounded CI scenarios; ``soak`` (``scripts/soak``) is the
opt-in long run with random churn and faults.
"""
