"""Every flag of the Go CCM is accepted with pflag's syntax and Go's validation.

The expected flags, types and defaults come from ``tests/data/go-ccm-flags.tsv``
(measured from the Go binary's ``--help``), so a flag missing here fails a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from entrypoints.cli import main
from entrypoints.flags.pflag import (
    IMPLEMENTED,
    NO_EFFECT,
    REFUSED,
    GoFlag,
    GoFlagError,
    go_duration,
    go_int,
)
from entrypoints.flags.settings import FlagError, parse_command_line
from entrypoints.flags.table import BY_NAME, FLAGS, classes

DATA = Path(__file__).parents[1] / "data"
DOCS = Path(__file__).parents[2] / "docs" / "configuration.md"

#: The TSV's type names -> ours. ``--version`` is component-base's bool-ish
#: verflag (true/false/raw); ``--vmodule`` is klog's ``pattern=N`` list, which the
#: help measurement recorded as "bool".
TYPE_ALIASES = {"version": "bool", "moduleSpec": "bool"}


def go_table() -> list[tuple[str, str, str]]:
    rows = []
    for line in (DATA / "go-ccm-flags.tsv").read_text().splitlines():
        if not line.startswith("--"):
            continue
        name, kind, default = ([*line.split("\t"), ""])[:3]
        rows.append((name.removeprefix("--"), kind, default.strip('"')))
    return rows


def test_the_table_has_the_82_flags_of_the_go_binary() -> None:
    assert len(go_table()) == 82


@pytest.mark.parametrize(("name", "kind", "default"), go_table(), ids=lambda v: str(v))
def test_every_go_flag_is_known_with_its_type_and_default(
    name: str, kind: str, default: str
) -> None:
    flag = BY_NAME[name]
    assert TYPE_ALIASES.get(flag.kind, flag.kind) == kind
    if kind == "duration" and default:
        assert flag.default == go_duration(default.replace("h0m0s", "h").replace("m0s", "m"))
    elif kind in ("strings",) and default:
        assert ",".join(flag.default) == default.strip("[]")
    elif kind in ("int", "int32") and default:
        assert flag.default == int(default)
    elif kind == "float32" and default:
        assert flag.default == float(default)
    elif kind in ("string", "ip") and name not in ("cloud-provider",):
        assert flag.default == default
    elif kind == "bool" and name not in ("version", "vmodule"):
        assert flag.default is (default == "true")


def sample(flag: GoFlag) -> str:
    """A valid, non-default value of the flag's type (refused flags: the enabling one)."""
    return {
        "bool": "true",
        "string": "x",
        "duration": "3s",
        "int": "7",
        "int32": "7",
        "float32": "7.5",
        "strings": "a,b",
        "int32Slice": "23,29",
        "ip": "127.0.0.1",
        "mapStringBool": "SomeGate=true",
        "namedCertKey": "c.pem,k.pem:example.com",
        "Level": "3",
        "quantity": "64Ki",
        "moduleSpec": "file=3",
        "version": "true",
    }[flag.kind]


@pytest.mark.parametrize("name", [n for n, _, _ in go_table()])
def test_every_go_flag_parses_in_both_pflag_forms(name: str) -> None:
    flag = BY_NAME[name]
    value = sample(flag)
    equals = FLAGS.parse([f"--{name}={value}"])
    assert equals.was_set(name)
    if flag.kind not in ("bool", "version"):
        assert FLAGS.parse([f"--{name}", value])[name] == equals[name]
    else:
        assert FLAGS.parse([f"--{name}"])[name] == equals[name]


def test_classes_cover_every_go_flag() -> None:
    names = {n for n, _, _ in go_table()}
    assert names <= set(classes())
    assert {c for c in classes().values()} == {IMPLEMENTED, NO_EFFECT, REFUSED}


@pytest.mark.parametrize("name", [n for n, _, _ in go_table() if BY_NAME[n].klass == REFUSED])
def test_refused_flags_exit_1_with_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    flag = BY_NAME[name]
    assert main([f"--{name}={sample(flag)}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--{name}" in err[0]
    # The Go default stays accepted.
    parse_command_line([f"--{name}={_default_text(flag)}", "--cloud-provider=xenorchestra"])


def _default_text(flag: GoFlag) -> str:
    if isinstance(flag.default, bool):
        return str(flag.default).lower()
    if isinstance(flag.default, tuple):
        return ",".join(flag.default)
    return str(flag.default)


def test_webhooks_star_is_accepted_as_go_accepts_it() -> None:
    assert parse_command_line(["--webhooks=*"]).controllers


@pytest.mark.parametrize("name", [n for n, _, _ in go_table() if BY_NAME[n].klass == NO_EFFECT])
def test_no_effect_flags_are_accepted_and_reported(name: str) -> None:
    flag = BY_NAME[name]
    settings = parse_command_line([f"--{name}={sample(flag)}"])
    assert settings.no_effect == (name,)


def documented_classes() -> dict[str, str]:
    text = DOCS.read_text()
    section = text[text.index("## Flags of the Go CCM") :]
    table: dict[str, str] = {}
    for match in re.finditer(r"^\| `--([a-z0-9-]+)` \| ([a-z -]+) \|", section, re.M):
        table[match.group(1)] = match.group(2).strip()
    return table


def test_configuration_doc_lists_every_flag_with_its_class_and_counts() -> None:
    words = {IMPLEMENTED: "implemented", NO_EFFECT: "no effect", REFUSED: "refused"}
    documented = documented_classes()
    expected = {name: words[klass] for name, klass in classes().items()}
    assert documented == expected
    text = DOCS.read_text()
    for klass, word in words.items():
        count = sum(1 for n, _, _ in go_table() if BY_NAME[n].klass == klass)
        assert f"{count} {word}" in text, f"docs/configuration.md must say '{count} {word}'"


# -- pflag syntax ------------------------------------------------------------------
def test_pflag_syntax() -> None:
    parsed = FLAGS.parse(
        ["-v", "4", "--leader-elect", "--controllers", "cloud-node", "--controllers=-route"]
    )
    assert parsed["v"] == 4 and parsed["leader-elect"] is True
    assert parsed["controllers"] == ("cloud-node", "-route")
    assert FLAGS.parse(["-v=5"])["v"] == 5
    assert FLAGS.parse(["-v6"])["v"] == 6
    assert FLAGS.parse(["--leader-elect=false", "--leader-elect=true"])["leader-elect"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--leader-elect", "false"], "does not take any arguments"),
        (["--secure-port"], "flag needs an argument: --secure-port"),
        (["--secure-port=abc"], 'invalid argument "abc" for "--secure-port"'),
        (["--kube-api-burst=3000000000"], "out of range for int32"),
        (["--bind-address=not-an-ip"], "invalid IP address"),
        (["--node-monitor-period=5"], "missing unit"),
        (["--feature-gates=A"], "expect string=bool"),
        (["-x"], "unknown shorthand flag"),
        (["-leader-elect"], "unknown shorthand flag"),
    ],
)
def test_pflag_errors(argv: list[str], fragment: str) -> None:
    with pytest.raises(GoFlagError, match=re.escape(fragment)):
        FLAGS.parse(argv)


@pytest.mark.parametrize(
    ("text", "value"),
    [("10", 10), ("0x10", 16), ("010", 8), ("0b11", 3), ("-5", -5), ("1_000", None)],
)
def test_go_integers(text: str, value: int | None) -> None:
    if value is None:
        with pytest.raises(ValueError, match="invalid integer"):
            go_int(64)(text)
    else:
        assert go_int(64)(text) == value


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1.s", 1), (".5s", 0.5), ("-2s", -2), ("1h2m3.5s", 3723.5), ("3µs", 3e-6)],
)
def test_go_durations_edge_cases(text: str, seconds: float) -> None:
    assert go_duration(text) == pytest.approx(seconds)


# -- implemented meanings ------------------------------------------------------------
def test_the_args_of_the_go_manifests_start_this_ccm() -> None:
    settings = parse_command_line(
        [
            "--v=2",
            "--cloud-provider=xenorchestra",
            "--controllers=cloud-node,cloud-node-lifecycle,cloud-node-label-sync",
            "--leader-elect-resource-name=cloud-controller-manager-xenorchestra",
            "--use-service-account-credentials",
            "--secure-port=10258",
            "--authorization-always-allow-paths=/healthz,/livez,/readyz,/metrics",
            "--leader-elect=false",
        ]
    )
    assert settings.leader_elect is False
    assert settings.authorization_always_allow_paths == (
        "/healthz",
        "/livez",
        "/readyz",
        "/metrics",
    )
    assert settings.no_effect == ("use-service-account-credentials",)


@pytest.mark.parametrize(
    ("items", "enabled"),
    [
        ("cloud-node-controller", ("cloud-node",)),
        ("*,-cloud-node-lifecycle-controller", ("cloud-node", "cloud-node-label-sync")),
        ("-cloud-node,cloud-node,cloud-node-label-sync", ("cloud-node-label-sync",)),
        ("cloud-node,-cloud-node", ("cloud-node",)),
    ],
)
def test_controllers_take_canonical_names_and_the_first_mention_decides(
    items: str, enabled: tuple[str, ...]
) -> None:
    assert parse_command_line([f"--controllers={items}"]).controllers == enabled


@pytest.mark.parametrize("name", ["route", "service", "node-route-controller"])
def test_controllers_the_go_ccm_removed_are_unknown(name: str) -> None:
    with pytest.raises(FlagError, match="not in the list of known controllers"):
        parse_command_line([f"--controllers=*,{name}"])


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--leader-elect-resource-lock=endpoints"], 'resourceLock value must be "leases"'),
        (["--kube-api-content-type=text/plain"], "--kube-api-content-type"),
        (["--tls-min-version=VersionTLS99"], "unknown tls version"),
        (["--tls-cipher-suites=TLS_FOO"], "not supported"),
        (["--webhook-secure-port=10258"], "cannot be the same value as --secure-port"),
        (["--secure-port=70000"], "between 0 and 65535"),
        (["--authorization-always-allow-paths=/a*b"], "only trailing *"),
        (["--concurrent-node-status-updates=-1"], "cannot be a negative number"),
    ],
)
def test_go_validation_rules(argv: list[str], fragment: str) -> None:
    with pytest.raises(FlagError, match=re.escape(fragment)):
        parse_command_line(argv)


def test_resource_lock_is_only_checked_with_leader_election() -> None:
    parse_command_line(["--leader-elect=false", "--leader-elect-resource-lock=endpoints"])


def test_aliases_and_derived_values() -> None:
    s = parse_command_line(["--logging-format=json", "--concurrent-node-syncs=3", "--v=12"])
    assert s.log_format == "json"
    assert s.status_update_workers == 3
    assert s.v == 10
    s = parse_command_line(["--concurrent-node-status-updates=5", "--master=https://10.0.0.1:6443"])
    assert s.status_update_workers == 5
    assert s.master == "https://10.0.0.1:6443"


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("xenorchestra-cloud-controller-manager v")
    assert main(["-h"]) == 0
    text = capsys.readouterr().out
    for name, _, _ in go_table():
        assert f"--{name}" in text
