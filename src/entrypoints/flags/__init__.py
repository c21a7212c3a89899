"""The Go CCM's command line, kept as cloud-provider keeps its ``options/``.

- :mod:`.pflag`: a pflag-compatible parser and Go's value types;
- :mod:`.table`: every flag of the Go CCM (and this CCM's own), one row each;
- :mod:`.settings`: the parsed flags as :class:`~.settings.Settings`, with Go's
  validation rules.
"""
