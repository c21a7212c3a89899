"""The Go CCM's command line, parsed the way pflag parses it.

A :class:`FlagSet` knows its flags (:class:`GoFlag`: the pflag type, default and
class of each; the Go CCM's are in :mod:`entrypoints.flags.table`), so a manifest
written for the Go binary starts this one unchanged. Syntax is pflag's:
``--flag=value``, ``--flag value`` (not for booleans), bare ``--flag`` for
booleans, ``-v 4`` / ``-v=4`` / ``-v4``, ``--`` ends the flags, a repeated list
flag appends, any other repeated flag keeps the last value. Values are validated
as Go validates them (``strconv.ParseBool``, ``time.ParseDuration``,
``strconv.ParseInt(s, 0, bits)``, ``net.ParseIP``, ...).

Each flag has one of three classes (``docs/configuration.md`` lists them):

- ``implemented``: it means here what it means in Go;
- ``no-effect``: accepted and validated, logged once at ``--v=2``;
- ``refused``: a value that turns on something this CCM does not do makes the
  process exit 1 with one line (the Go default stays accepted).
"""

from __future__ import annotations

import csv
import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

FlagClass = Literal["implemented", "no-effect", "refused"]
IMPLEMENTED: FlagClass = "implemented"
NO_EFFECT: FlagClass = "no-effect"
REFUSED: FlagClass = "refused"
#: The pflag type name of durations.
DURATION = "duration"


# -- value parsers: one per pflag/klog value type -------------------------------
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def go_bool(text: str) -> bool:
    """``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r} (use true or false)")


_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration(text: str) -> float:
    """``time.ParseDuration`` in seconds: ``15s``, ``1m30s``, ``1.5h``, ``-2s``, ``0``."""
    raw = text
    sign = 1.0
    if raw[:1] in ("-", "+"):
        sign = -1.0 if raw[0] == "-" else 1.0
        raw = raw[1:]
    if raw == "0":
        return 0.0
    if not raw:
        raise ValueError(f"invalid duration {text!r}")
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if not match or not (match.group(1) or match.group(2)):
            if match is None and re.match(r"[0-9.]+$", raw[pos:]):
                raise ValueError(f"invalid duration {text!r}: missing unit (e.g. 15s, 5m)")
            raise ValueError(f"invalid duration {text!r} (use e.g. 15s, 5m, 1m30s)")
        whole = match.group(1) or "0"
        frac = match.group(2) or ""
        total += float(f"{whole}.{frac or '0'}") * _UNIT_SECONDS[match.group(3)]
        pos = match.end()
    if total * 1e9 > 2**63 - 1:
        raise ValueError(f"invalid duration {text!r}: overflow")
    return sign * total


def go_int(bits: int) -> Callable[[str], int]:
    """``strconv.ParseInt(s, 0, bits)``: decimal, ``0x``, ``0o``/``0``, ``0b``, ``_``."""

    def parse(text: str) -> int:
        body = text[1:] if text[:1] in "+-" else text
        if not body or body.startswith("_") or body.endswith("_") or "__" in body:
            raise ValueError(f"invalid integer {text!r}")
        if "_" in body and not re.match(r"0[xXbBoO]?", body):
            raise ValueError(f"invalid integer {text!r}")
        lowered = body.lower()
        try:
            if lowered.startswith(("0x", "0b", "0o")):
                value = int(body, 0)
            elif len(body) > 1 and body.startswith("0"):
                value = int(body.replace("_", ""), 8)
            else:
                value = int(body, 10)
        except ValueError:
            raise ValueError(f"invalid integer {text!r}") from None
        if text.startswith("-"):
            value = -value
        if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
            raise ValueError(f"integer {text!r} out of range for int{bits}")
        return value

    return parse


def go_float32(text: str) -> float:
    """``strconv.ParseFloat(s, 32)``."""
    try:
        value = float(text.replace("_", "") if re.match(r"^[+-]?\d", text) else text)
    except ValueError:
        raise ValueError(f"invalid number {text!r}") from None
    if math.isinf(value) and text.strip("+-").lower() not in ("inf", "infinity"):
        raise ValueError(f"number {text!r} out of range")
    if abs(value) > 3.4028234663852886e38 and not math.isinf(value):
        raise ValueError(f"number {text!r} out of range for float32")
    return value


def go_strings(text: str) -> tuple[str, ...]:
    """pflag's ``StringSlice``: one CSV record (quotes allowed); empty means none."""
    if text == "":
        return ()
    try:
        rows = list(csv.reader([text]))
    except csv.Error as err:
        raise ValueError(f"invalid list {text!r}: {err}") from None
    return tuple(rows[0]) if rows else ()


def go_int32_slice(text: str) -> tuple[int, ...]:
    parse = go_int(32)
    if text.strip("[]") == "":
        return ()
    return tuple(parse(part.strip()) for part in text.strip("[]").split(","))


def go_ip(text: str) -> str:
    """``net.ParseIP`` (pflag trims spaces first)."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise ValueError(f"invalid IP address {text!r}") from None


def go_map_string_bool(text: str) -> dict[str, bool]:
    """``cliflag.MapStringBool``: ``Gate1=true,Gate2=false``."""
    out: dict[str, bool] = {}
    for pair in (p.strip() for p in text.split(",")):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"malformed pair {pair!r}, expect string=bool")
        out[key.strip()] = go_bool(value.strip())
    return out


def go_named_cert_key(text: str) -> tuple[str, str, tuple[str, ...]]:
    """``cliflag.NamedCertKey``: ``cert.pem,key.pem`` or ``cert.pem,key.pem:name1,*.name2``."""
    files, sep, names = text.partition(":")
    parts = [p.strip() for p in files.split(",")]
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"expected comma separated certificate and key file paths in {text!r}")
    listed = tuple(n.strip() for n in names.split(",") if n.strip()) if sep else ()
    return parts[0], parts[1], listed


def klog_level(text: str) -> int:
    """klog's ``Level``: ``strconv.ParseUint(s, 0, 32)``."""
    if text.startswith("-"):
        raise ValueError(f"invalid verbosity {text!r}")
    return go_int(64)(text) if text else 0


_QUANTITY = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i?|[munkMGTPE])?$")


def k8s_quantity(text: str) -> str:
    """A ``resource.Quantity`` (``64Ki``, ``1M``, ``0``)."""
    if not _QUANTITY.match(text):
        raise ValueError(f"invalid quantity {text!r} (e.g. 64Ki)")
    return text


def klog_vmodule(text: str) -> str:
    """klog's ``moduleSpec``: ``pattern=N,pattern=N``."""
    for part in (p for p in text.split(",") if p):
        pattern, sep, level = part.partition("=")
        if not sep or not pattern or not level.isdigit():
            raise ValueError(f"invalid vmodule entry {part!r} (use pattern=N)")
    return text


def version_value(text: str) -> str:
    """component-base's ``--version``: ``true``/``false``, ``raw``, or a version to report."""
    if text == "raw":
        return "raw"
    try:
        return "true" if go_bool(text) else "false"
    except ValueError:
        if re.match(r"^v?\d+\.\d+", text):
            return text
        raise ValueError(f"invalid --version value {text!r} (true, false or raw)") from None


def go_string(text: str) -> str:
    return text


PARSERS: dict[str, Callable[[str], Any]] = {
    "bool": go_bool,
    "string": go_string,
    "duration": go_duration,
    "int": go_int(64),
    "int32": go_int(32),
    "float32": go_float32,
    "strings": go_strings,
    "int32Slice": go_int32_slice,
    "ip": go_ip,
    "mapStringBool": go_map_string_bool,
    "namedCertKey": go_named_cert_key,
    "Level": klog_level,
    "quantity": k8s_quantity,
    "moduleSpec": klog_vmodule,
    "version": version_value,
}
#: Types whose repeated use accumulates instead of replacing.
ACCUMULATING = {"strings", "int32Slice", "namedCertKey", "mapStringBool"}
#: Types written bare (``--flag``) meaning true.
BARE_OK = {"bool", "version"}


@dataclass(frozen=True)
class GoFlag:
    """One flag of the Go binary: its pflag type, its default, what it does here."""

    name: str
    kind: str
    default: Any
    klass: FlagClass
    help: str
    #: The Settings field it sets (implemented flags), else None.
    field: str | None = None
    #: For ``refused`` flags: the reason when the given value turns the feature on.
    refuse: Callable[[Any], str | None] | None = None
    shorthand: str | None = None
    #: Deprecated or hidden in Go's ``--help`` (still accepted there).
    hidden: bool = False

    def parse(self, text: str) -> Any:
        return PARSERS[self.kind](text)


def refuse_true(reason: str) -> Callable[[Any], str | None]:
    return lambda value: reason if value else None


def flag(
    name: str,
    kind: str,
    default: Any,
    klass: FlagClass,
    help: str,
    field: str | None = None,
    **extra: Any,
) -> GoFlag:
    """One row of the table, positional as the table reads."""
    return GoFlag(name, kind, default, klass, help, field, **extra)


def format_duration(seconds: float) -> str:
    """A Go-style duration string (``15s``, ``5m0s``, ``12h0m0s``, ``500ms``)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs:g}s"
    if minutes:
        return f"{int(minutes)}m{secs:g}s"
    return f"{secs:g}s"


# -- the parser ----------------------------------------------------------------
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


class FlagSet:
    """pflag's ``FlagSet``: the flags a command line may use, by name and shorthand."""

    def __init__(self, flags: Iterable[GoFlag]) -> None:
        self.by_name: dict[str, GoFlag] = {f.name: f for f in flags}
        self.by_shorthand: dict[str, GoFlag] = {
            f.shorthand: f for f in self.by_name.values() if f.shorthand
        }

    def default(self, name: str) -> Any:
        """The flag's default: what its row says, the one place it is written."""
        return self.by_name[name].default

    def parse(self, argv: Sequence[str]) -> ParsedFlags:
        """Parse ``argv`` as pflag would; GoFlagError (one line) when it would refuse it."""
        values = {f.name: f.default for f in self.by_name.values()}
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
                flag = self.by_name.get(name)
                if flag is None or not name or name.startswith("-"):
                    raise GoFlagError(f"unknown flag: --{name}")
                shown = f"--{name}"
                assign(flag, text if has_value else following(flag, shown), shown)
            elif arg.startswith("-") and len(arg) > 1:
                short, body = arg[1], arg[2:]
                flag = self.by_shorthand.get(short)
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

    def refusals(self, parsed: ParsedFlags) -> list[str]:
        """One message per refused flag whose value turns on what this CCM does not do."""
        out = []
        for flag in self.by_name.values():
            if flag.refuse is not None and (reason := flag.refuse(parsed[flag.name])):
                out.append(f"--{flag.name}: {reason}")
        return out

    def without_effect(self, parsed: ParsedFlags) -> list[str]:
        """The no-effect flags the command line sets (each once, in order)."""
        seen: list[str] = []
        for name in parsed.given:
            if self.by_name[name].klass == NO_EFFECT and name not in seen:
                seen.append(name)
        return seen

    def usage(self, prog: str, extra: Iterable[str] = ()) -> str:
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
        for flag in self.by_name.values():
            if flag.hidden:
                continue
            short = f"-{flag.shorthand}, " if flag.shorthand else "    "
            kind = "" if flag.kind in BARE_OK else f" {flag.kind}"
            lines.append(f"  {short}--{flag.name}{kind}")
            lines.append(f"        {flag.help}{label[flag.klass]}{_show_default(flag)}")
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
