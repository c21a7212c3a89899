"""Shared test configuration: ``src`` is importable through the editable install."""
