"""The soak (``scripts/soak``): one CCM under hours of random churn and faults.

``run`` drives the epochs and reports; ``cases`` is the last phase, the cases
that replace the CCM process. The world, its faults and the invariant tracker
are the reliability suite's (:mod:`tests.reliability.world`), shared so the
soak and the bounded CI scenarios check the same invariants.
"""
