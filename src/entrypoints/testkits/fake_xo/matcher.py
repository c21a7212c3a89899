"""The subset of XO's ``complex-matcher`` filter language the fake XO understands.

XO filters collections with it (``?filter=``), and the adapter relies on it
to find VMs by name, so the fake must parse and match the same way:

- ``prop:value``: case-insensitive substring (any element for arrays and
  objects); numeric raw values also match equal numbers;
- ``a b``: AND; ``|(a b)``: OR; ``!x``: NOT; ``(a b)``: grouping;
- ``prop:/regex/`` (flag ``i`` allowed), ``"quoted strings"`` with ``\\``
  escapes, ``*`` globs, ``prop?`` (truthy), ``prop:>3`` comparisons;
- nested properties ``a:b:value``; a bare value matches any value inside;
- raw strings are letters, digits and ``_-.$`` (so ``$pool:<uuid>`` works).

Anything else is a :class:`FilterSyntaxError` (XO answers 400).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[Any], bool]


class FilterSyntaxError(ValueError):
    """The filter cannot be parsed; the message names the position."""


def _is_raw_char(c: str) -> bool:
    return c.isdigit() or c in "_-.$" or c.upper() != c.lower()


def _children(value: Any) -> Sequence[Any] | None:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list):
        return value
    return None


def _any_child(value: Any, match: Predicate) -> bool:
    children = _children(value)
    return children is not None and any(match(child) for child in children)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _truthy(value: Any) -> bool:
    """JavaScript truthiness: empty string, 0, null are false; [] and {} are true."""
    if value is None or value is False:
        return False
    if _is_number(value):
        return bool(value != 0)
    if isinstance(value, str):
        return value != ""
    return True


def _js_regex(pattern: str, flags: str, pos: int) -> re.Pattern[str]:
    """Compile a JavaScript regex source with Python's ``re`` (close enough here)."""
    py = re.sub(r"\(\?<(?![=!])", "(?P<", pattern)
    try:
        return re.compile(py, re.IGNORECASE if "i" in flags else 0)
    except re.error as err:
        raise FilterSyntaxError(f"invalid regular expression at position {pos}: {err}") from None


@dataclass(frozen=True, slots=True)
class Matcher:
    """A parsed filter; call :meth:`match` on a JSON object."""

    predicate: Predicate
    source: str

    def match(self, value: Any) -> bool:
        return self.predicate(value)


def _string(text: str) -> Predicate:
    needle = text.lower()

    def match(value: Any) -> bool:
        if isinstance(value, str):
            return needle in value.lower()
        return _any_child(value, match)

    return match


def _number_or_string(text: str) -> Predicate:
    needle, number = text.lower(), float(text)

    def match(value: Any) -> bool:
        if _is_number(value):
            return bool(value == number)
        if isinstance(value, str):
            return needle in value.lower()
        return _any_child(value, match)

    return match


def _regex(compiled: re.Pattern[str]) -> Predicate:
    def match(value: Any) -> bool:
        if isinstance(value, str):
            return compiled.search(value) is not None
        return _any_child(value, match)

    return match


def _glob(text: str) -> Predicate:
    pattern = ".*".join(re.escape(part) for part in text.split("*"))
    return _regex(re.compile(pattern, re.IGNORECASE))


def _property(name: str, child: Predicate) -> Predicate:
    def match(value: Any) -> bool:
        if isinstance(value, Mapping):
            return name in value and child(value[name])
        if isinstance(value, list) and name.isdigit() and int(name) < len(value):
            return child(value[int(name)])
        return False

    return match


def _comparison(op: str, number: float) -> Predicate:
    ops: dict[str, Callable[[float, float], bool]] = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }
    compare = ops[op]
    return lambda value: _is_number(value) and compare(float(value), number)


class _Parser:
    """Recursive descent over the grammar in the module docstring."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, expected: str) -> FilterSyntaxError:
        return FilterSyntaxError(f"parse error: expected {expected} at position {self.pos}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def ws(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def parse(self) -> Predicate:
        self.ws()
        terms: list[Predicate] = []
        while self.pos < len(self.text):
            terms.append(self.term())
        return _and(terms)

    def terms_until_paren(self) -> list[Predicate]:
        self.ws()
        terms: list[Predicate] = []
        while self.peek() != ")":
            if not self.peek():
                raise self.fail("')'")
            terms.append(self.term())
        if not terms:
            raise self.fail("a term")
        self.pos += 1
        return terms

    def term(self) -> Predicate:
        result = self._term()
        self.ws()
        return result

    def _term(self) -> Predicate:
        c = self.peek()
        if c == "(":
            self.pos += 1
            return _and(self.terms_until_paren())
        if c == "|":
            self.pos += 1
            self.ws()
            if self.peek() != "(":
                raise self.fail("'('")
            self.pos += 1
            terms = self.terms_until_paren()
            return lambda value: any(t(value) for t in terms)
        if c == "!":
            self.pos += 1
            self.ws()
            child = self._term()
            return lambda value: not child(value)
        if c and c in "<>":
            op = c
            self.pos += 1
            if self.peek() == "=":
                op += "="
                self.pos += 1
            raw = self.raw_string()
            try:
                return _comparison(op, float(raw))
            except ValueError:
                raise self.fail("a number") from None
        start = self.pos
        name = self.quoted() if c == '"' else self.maybe_raw_string()
        if name is not None:
            after_name = self.pos
            self.ws()
            if self.peek() == ":":
                self.pos += 1
                self.ws()
                return _property(name, self._term())
            self.pos = after_name
            if self.peek() == "?":
                self.pos += 1
                return lambda value: isinstance(value, Mapping) and _truthy(value.get(name))
        self.pos = start
        return self.value()

    def value(self) -> Predicate:
        c = self.peek()
        if c == '"':
            return _string(self.quoted())
        if c == "/":
            return self.regex()
        start = self.pos
        while self.peek() and (self.peek() == "*" or _is_raw_char(self.peek())):
            self.pos += 1
        text = self.text[start : self.pos]
        if not text:
            raise self.fail("a value")
        if "*" in text:
            return _glob(text)
        try:
            float(text)
        except ValueError:
            return _string(text)
        return _number_or_string(text)

    def maybe_raw_string(self) -> str | None:
        start = self.pos
        while self.peek() and _is_raw_char(self.peek()):
            self.pos += 1
        return self.text[start : self.pos] if start != self.pos else None

    def raw_string(self) -> str:
        raw = self.maybe_raw_string()
        if raw is None:
            raise self.fail("a raw string")
        return raw

    def quoted(self) -> str:
        self.pos += 1  # the opening quote
        out: list[str] = []
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == '"':
                return "".join(out)
            if c == "\\" and self.pos < len(self.text):
                c = self.text[self.pos]
                self.pos += 1
            out.append(c)
        return "".join(out)  # like XO: an unterminated string runs to the end

    def regex(self) -> Predicate:
        start = self.pos
        self.pos += 1
        pattern: list[str] = []
        escaped = False
        while self.pos < len(self.text):
            c = self.text[self.pos]
            self.pos += 1
            if c == "/" and not escaped:
                break
            escaped = c == "\\"  # as XO: a backslash escapes whatever follows
            pattern.append(c)
        else:
            raise self.fail("'/'")
        flags = ""
        if self.peek() == "i":
            flags = "i"
            self.pos += 1
        return _regex(_js_regex("".join(pattern), flags, start))


def _and(terms: list[Predicate]) -> Predicate:
    if len(terms) == 1:
        return terms[0]
    return lambda value: all(t(value) for t in terms)


def parse_filter(text: str) -> Matcher:
    """Parse a complex-matcher filter; FilterSyntaxError when XO would answer 400."""
    return Matcher(predicate=_Parser(text).parse(), source=text)
