"""The Go CCM's command line, parsed the way pflag parses it.

Every flag of the Go CCM v1.1.0 (``k8s.io/cloud-provider`` 0.36) is known, with
its type and default (the table: :mod:`entrypoints.flags.table`; the value
types: :mod:`entrypoints.go_values`), so a manifest written for the Go binary
starts this one unchanged. Syntax is pflag's: ``--flag=value``, ``--flag value`` (not for
booleans), bare ``--flag`` for booleans, ``-v 4`` / ``-v=4`` / ``-v4``, ``--``
ends the flags, a repeated list flag appends, any other repeated flag keeps the
last value. Values are validated as Go validates them (``strconv.ParseBool``,
``time.ParseDuration``, ``strconv.ParseInt(s, 0, bits)``, ``net.ParseIP``, ...).

Each flag has one of three classes (``docs/configuration.md`` lists them):

- ``implemented``: it means here what it means in Go;
- ``no-effect``: accepted and validated, logged once at ``--v=2``;
- ``refused``: a value that turns on something this CCM does not do makes the
  process exit 1 with one line (the Go default stays accepted).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from entrypoints.flags.table import BY_NAME, BY_SHORTHAND, GO_FLAGS, OWN_FLAGS
from entrypoints.go_values import (
    ACCUMULATING,
    BARE_OK,
    IMPLEMENTED,
    NO_EFFECT,
    REFUSED,
    FlagClass,
    GoFlag,
    format_duration,
    go_bool,
    go_duration,
    go_int,
)

__all__ = [
    "BY_NAME",
    "GO_FLAGS",
    "IMPLEMENTED",
    "NO_EFFECT",
    "OWN_FLAGS",
    "REFUSED",
    "FlagClass",
    "GoFlag",
    "GoFlagError",
    "ParsedFlags",
    "classes",
    "format_duration",
    "go_bool",
    "go_duration",
    "go_int",
    "parse_go_flags",
    "refusals",
    "usage",
    "without_effect",
]


class GoFlagError(ValueError):
    """A command line pflag would refuse; the message is one line."""


@dataclass(frozen=True)
class ParsedFlags:
    """What the command line set: every flag's value (defaults included), and
    which flags were given explicitly, in order."""

    values: dict[str, Any]
    given: tuple[str, ...]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def was_set(self, name: str) -> bool:
        return name in self.given


def parse_go_flags(argv: Sequence[str]) -> ParsedFlags:
    """Parse ``argv`` as pflag would; GoFlagError (one line) when it would refuse it."""
    values = {f.name: f.default for f in BY_NAME.values()}
    given: list[str] = []
    args = list(argv)
    i = 0

    def assign(flag: GoFlag, text: str, shown: str) -> None:
        try:
            value = flag.parse(text)
        except ValueError as err:
            raise GoFlagError(f'invalid argument "{text}" for "{shown}" flag: {err}') from None
        if flag.kind in ACCUMULATING and flag.name in given:
            previous = values[flag.name]
            value = {**previous, **value} if isinstance(value, dict) else (*previous, *value)
        elif flag.kind == "namedCertKey":
            value = (value,)
        values[flag.name] = value
        given.append(flag.name)

    def following(flag: GoFlag, missing: str) -> str:
        """The value of a flag written without ``=``: true for booleans, else the
        next argument."""
        nonlocal i
        if flag.kind in BARE_OK:
            return "true"
        if i < len(args):
            i += 1
            return args[i - 1]
        raise GoFlagError(f"flag needs an argument: {missing}")

    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest = [a for a in args[i:] if a]
            if rest:
                raise GoFlagError(f"this command does not take any arguments, got {rest!r}")
            break
        if arg.startswith("--"):
            name, has_value, text = arg[2:].partition("=")
            flag = BY_NAME.get(name)
            if flag is None or not name or name.startswith("-"):
                raise GoFlagError(f"unknown flag: --{name}")
            shown = f"--{name}"
            assign(flag, text if has_value else following(flag, shown), shown)
        elif arg.startswith("-") and len(arg) > 1:
            short, body = arg[1], arg[2:]
            flag = BY_SHORTHAND.get(short)
            if flag is None:
                raise GoFlagError(f"unknown shorthand flag: {short!r} in {arg}")
            shown = f"-{short}, --{flag.name}"
            if body.startswith("="):
                text = body[1:]
            elif body:
                if flag.kind in BARE_OK:
                    raise GoFlagError(f"unknown shorthand flag: {body[0]!r} in {arg}")
                text = body
            else:
                text = following(flag, f"{short!r} in -{short}")
            assign(flag, text, shown)
        elif arg:
            raise GoFlagError(f"this command does not take any arguments, got {arg!r}")
    return ParsedFlags(values=values, given=tuple(given))


def refusals(parsed: ParsedFlags) -> list[str]:
    """One message per refused flag whose value turns on what this CCM does not do."""
    out = []
    for flag in GO_FLAGS:
        if flag.refuse is not None and (reason := flag.refuse(parsed[flag.name])):
            out.append(f"--{flag.name}: {reason}")
    return out


def without_effect(parsed: ParsedFlags) -> list[str]:
    """The no-effect flags the command line sets (each once, in order)."""
    seen: list[str] = []
    for name in parsed.given:
        if BY_NAME[name].klass == NO_EFFECT and name not in seen:
            seen.append(name)
    return seen


def classes() -> dict[str, FlagClass]:
    """Every Go flag's class, by name (``--help``'s flags and the hidden ones)."""
    return {f.name: f.klass for f in GO_FLAGS}


def usage(prog: str, extra: Iterable[str] = ()) -> str:
    """``--help`` text: every flag with its type, default and meaning here."""
    lines = [
        f"usage: {prog} [flags]",
        *extra,
        "",
        "Kubernetes cloud controller manager for Xen Orchestra (XCP-ng), a drop-in for the",
        "Go CCM: every Go flag is accepted. Classes: [implemented], [no effect] (logged at",
        "--v=2), [refused when enabled].",
        "",
        "Flags:",
    ]
    label = {IMPLEMENTED: "", NO_EFFECT: " [no effect]", REFUSED: " [refused when enabled]"}
    for flag in BY_NAME.values():
        if flag.hidden:
            continue
        short = f"-{flag.shorthand}, " if flag.shorthand else "    "
        kind = "" if flag.kind in BARE_OK else f" {flag.kind}"
        default = _show_default(flag)
        lines.append(f"  {short}--{flag.name}{kind}")
        lines.append(f"        {flag.help}{label[flag.klass]}{default}")
    return "\n".join(lines) + "\n"


def _show_default(flag: GoFlag) -> str:
    value = flag.default
    if value in ("", (), {}, False, 0, 0.0, "false", None):
        return ""
    if isinstance(value, tuple):
        return f" (default [{','.join(value)}])"
    if flag.kind == "duration":
        return f" (default {format_duration(value)})"
    return f" (default {value})"
