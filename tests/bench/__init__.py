"""The benchmark code of :mod:`tools.bench` at a tiny size: counts and arithmetic,
never timings."""
