"""The composition root: the DI container, the CLI and the process main."""
