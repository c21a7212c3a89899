"""Pure functions that decide; the services only fetch, call these, and write."""
