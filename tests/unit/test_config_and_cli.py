"""Config, flags, the CLI's error path, the container and log redaction."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.config import ConfigError, load_config, load_config_env, load_config_file
from adapters.logging_setup import _line_format, configure_logging, register_secret
from adapters.memory import InMemoryInventory, InMemoryNodeStore
from application.controllers import DEFAULT_CONTROLLERS
from entrypoints.cli import TEST_KITS, main
from entrypoints.container import Container
from entrypoints.flags.settings import (
    FlagError,
    Settings,
    parse_command_line,
    parse_controllers,
    parse_duration,
)
from entrypoints.in_memory import in_memory_container


@pytest.mark.parametrize(
    ("yaml_text", "problem"),
    [
        pytest.param("insecure: true\ntoken: t\n", "url: is required", id="no-url"),
        pytest.param(
            "url: xo.example.com\ntoken: t\n",
            "must start with http:// or https://",
            id="url-without-scheme",
        ),
        pytest.param(
            "url: ftp://xo\ntoken: t\n",
            "must start with http:// or https://",
            id="url-wrong-scheme",
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nusername: u\npassword: p\n",
            "token is not allowed when username and password are set",
            id="token-and-username-password",
        ),
        pytest.param(
            "url: https://xo\n",
            "either token or username/password are required",
            id="no-credentials",
        ),
        pytest.param(
            "url: https://xo\nusername: u\n", "must both be set", id="username-without-password"
        ),
        pytest.param(
            "url: https://xo\ntoken: t\ninsecure: perhaps\n",
            "insecure: Input should be a valid boolean",
            id="bad-boolean",
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nclientTimeout: -1\n", "clientTimeout", id="negative-timeout"
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nzoneSource: rack\n",
            "zoneSource: 'rack' is not one of host, hostTag, pool, none",
            id="bad-zone-source",
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nregionSource: hostTag\n",
            "regionSource: 'hostTag' is not one of pool, poolTag, none",
            id="bad-region-source",
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nzoneTag: k8s.zone=rack-a\n",
            "zoneTag: 'k8s.zone=rack-a' is not a tag name",
            id="zone-tag-with-value",
        ),
        pytest.param(
            "url: https://xo\ntoken: t\nregionTag: ''\n",
            "regionTag: '' is not a tag name",
            id="empty-region-tag",
        ),
        pytest.param("- a\n- b\n", "must be a mapping", id="not-a-mapping"),
        pytest.param("url: [unclosed\n", "not valid YAML", id="bad-yaml"),
    ],
)
def test_bad_config_file_names_the_problem(tmp_path: Path, yaml_text: str, problem: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")) as err:
        load_config_file(path)
    assert "\n" not in str(err.value)
    assert str(path) in str(err.value)


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config_file(tmp_path / "missing.yaml")


def test_good_config_file_same_keys_as_reference(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("url: https://xo.example.com/\ninsecure: true\ntoken: abc\nclientTimeout: 10\n")
    config = load_config_file(path)
    assert config.url == "https://xo.example.com"
    assert config.insecure
    assert config.client_timeout == 10
    assert "abc" not in repr(config)


def test_topology_defaults_are_the_go_ccms_and_every_source_is_read(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("url: https://xo\ntoken: t\n")
    default = load_config_file(path).options().topology
    path.write_text(
        "url: https://xo\ntoken: t\nzoneSource: hostTag\nzoneTag: ' site '\n"
        "regionSource: poolTag\nregionTag: k8s.dc\n"
    )
    chosen = load_config_file(path).options().topology

    assert (default.zone_source.value, default.region_source.value) == ("host", "pool")
    assert (default.zone_tag, default.region_tag) == ("k8s.zone", "k8s.region")
    assert (chosen.zone_source.value, chosen.zone_tag) == ("hostTag", "site")
    assert (chosen.region_source.value, chosen.region_tag) == ("poolTag", "k8s.dc")


@pytest.mark.parametrize(
    ("env", "outcome"),
    [
        pytest.param({"XOA_URL": "https://xo", "XOA_TOKEN": "t"}, None, id="token"),
        pytest.param(
            {"XOA_URL": "https://xo", "XOA_USER": "u", "XOA_PASSWORD": "p", "XOA_INSECURE": "true"},
            None,
            id="user-password",
        ),
        pytest.param({}, "no --cloud-config given and no XOA_URL", id="nothing"),
        pytest.param(
            {"XOA_URL": "https://xo", "XOA_TOKEN": "t", "XOA_INSECURE": "nope"},
            "insecure",
            id="bad-boolean",
        ),
        pytest.param(
            {"XOA_URL": "https://xo", "XOA_TOKEN": "t", "XOA_USER": "u", "XOA_PASSWORD": "p"},
            "token is not allowed",
            id="both",
        ),
        pytest.param(
            {"XOA_URL": "https://xo", "XOA_TOKEN": "t", "XOA_CLIENT_TIMEOUT": "ten"},
            "clientTimeout",
            id="bad-timeout",
        ),
    ],
)
def test_config_from_environment(env: dict[str, str], outcome: str | None) -> None:
    if outcome is None:
        assert load_config_env(env).url == "https://xo"
    else:
        with pytest.raises(ConfigError, match=outcome):
            load_config_env(env)


def test_file_wins_over_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("url: https://from-file\ntoken: t\n")
    assert (
        load_config(str(path), {"XOA_URL": "https://from-env", "XOA_TOKEN": "t"}).url
        == "https://from-file"
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("15s", 15),
        ("5m", 300),
        ("1m30s", 90),
        ("500ms", 0.5),
        ("2h", 7200),
        ("0", 0),
        ("1.5s", 1.5),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["15", "5 m", "m5", "", "1x", "1..5s"])
def test_bad_durations(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "enabled"),
    [
        pytest.param("*", DEFAULT_CONTROLLERS, id="all"),
        pytest.param(
            "*,cloud-node-csr-approval",
            (*DEFAULT_CONTROLLERS, "cloud-node-csr-approval"),
            id="star-leaves-the-csr-approver-off-until-named",
        ),
        pytest.param(
            "cloud-node-csr-approval-controller",
            ("cloud-node-csr-approval",),
            id="csr-approver-alone-canonical-name",
        ),
        pytest.param(
            "-cloud-node-csr-approval,*,cloud-node-csr-approval",
            DEFAULT_CONTROLLERS,
            id="first-mention-decides-for-the-csr-approver-too",
        ),
        pytest.param(
            "*,-cloud-node-lifecycle", ("cloud-node", "cloud-node-label-sync"), id="all-but-one"
        ),
        pytest.param("cloud-node", ("cloud-node",), id="only-one"),
        pytest.param(
            "cloud-node,cloud-node-label-sync", ("cloud-node", "cloud-node-label-sync"), id="two"
        ),
    ],
)
def test_controllers_flag(text: str, enabled: tuple[str, ...]) -> None:
    assert parse_controllers(text) == enabled


def _settings(*argv: str) -> Settings:
    return parse_command_line(list(argv))


def test_defaults_match_kubernetes_ccm() -> None:
    s = _settings()
    assert (s.leader_elect, s.leader_elect_lease_duration, s.leader_elect_renew_deadline) == (
        True,
        15,
        10,
    )
    assert (s.leader_elect_retry_period, s.node_monitor_period, s.node_status_update_frequency) == (
        2,
        5,
        300,
    )
    assert (s.kube_api_qps, s.kube_api_burst, s.secure_port, s.concurrent_node_syncs) == (
        20,
        30,
        10258,
        1,
    )
    assert s.leader_elect_resource_name == "cloud-controller-manager"


def test_flags_in_kubernetes_style() -> None:
    s = _settings(
        "--leader-elect=false",
        "--controllers=*,-cloud-node-label-sync",
        "--v=4",
        "--kube-api-qps=50",
    )
    assert not s.leader_elect
    assert s.v == 4
    assert s.kube_api_qps == 50
    assert "cloud-node-label-sync" not in s.controllers


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--cloud-provider=aws"], id="other-provider"),
        pytest.param(["--leader-elect-renew-deadline=20s"], id="renew-deadline-over-lease"),
        pytest.param(["--leader-elect-retry-period=9s"], id="retry-period-over-renew/1.2"),
        pytest.param(["--tls-cert-file=/c.pem"], id="cert-without-key"),
        pytest.param(
            ["--controllers=-cloud-node,-cloud-node-lifecycle,-cloud-node-label-sync"],
            id="nothing-left",
        ),
    ],
)
def test_inconsistent_flags(argv: list[str]) -> None:
    with pytest.raises(FlagError):
        _settings(*argv)


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        pytest.param(
            ["--cloud-config=/nonexistent/config.yaml"], {}, "cannot read", id="unreadable-file"
        ),
        pytest.param([], {}, "no --cloud-config given and no XOA_URL", id="no-config"),
        pytest.param(
            [],
            {"XOA_URL": "xo.lan", "XOA_TOKEN": "t"},
            "must start with http",
            id="url-without-scheme",
        ),
        pytest.param(["--leader-elect=maybe"], {}, "invalid boolean", id="bad-boolean-flag"),
        pytest.param(["--no-such-flag"], {}, "unknown flag: --no-such-flag", id="unknown-flag"),
        pytest.param(
            ["--controllers=cloud-thing"],
            {},
            '"cloud-thing" is not in the list of known controllers',
            id="unknown-controller",
        ),
    ],
)
def test_cli_bad_input_prints_one_line_and_exits_1(
    argv: list[str],
    env: dict[str, str],
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for var in ("XOA_URL", "XOA_TOKEN", "XOA_USER", "XOA_PASSWORD", "XOA_INSECURE"):
        monkeypatch.delenv(var, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert fragment in err[-1]
    assert err[-1].startswith("xenorchestra-cloud-controller-manager")


@pytest.mark.parametrize(
    ("sub", "args"), [("fake-xo", ["--listen", "127.0.0.1:0"]), ("demo", ["--cluster", "memory"])]
)
def test_a_sub_command_without_the_test_kits_says_so_in_one_line(
    sub: str, args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The image leaves entrypoints.testkits out: its fake-xo and demo fail in one
    line (the node suite runs them in the image itself)."""
    import sys

    # As if absent, whatever an earlier test imported: a kit module left in
    # sys.modules would be found without its parent, and the fake XO would serve.
    for name in [n for n in sys.modules if n.startswith("entrypoints.demo")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [n for n in sys.modules if n.startswith(f"{TEST_KITS}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, TEST_KITS, None)
    assert main([sub, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"xenorchestra-cloud-controller-manager: error: the {sub} sub-command needs the "
        "test kits (entrypoints.testkits), which this installation leaves out (the container "
        "image does): run it from a source install"
    ]


def test_cli_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for flag in (
        "--cloud-provider",
        "--cloud-config",
        "--controllers",
        "--leader-elect",
        "--leader-elect-lease-duration",
        "--leader-elect-renew-deadline",
        "--leader-elect-retry-period",
        "--leader-elect-resource-name",
        "--leader-elect-resource-namespace",
        "--concurrent-node-syncs",
        "--node-status-update-frequency",
        "--node-monitor-period",
        "--kube-api-qps",
        "--kube-api-burst",
        "--kubeconfig",
        "--secure-port",
        "--bind-address",
        "--v",
    ):
        assert flag in text


def test_container_swaps_an_adapter_with_one_override() -> None:
    container = in_memory_container()
    mine = InMemoryInventory()
    container.inventory.override(mine)
    shared = container.status_snapshots()  # the label and address passes' shared snapshot
    assert shared._inventory is mine
    assert container.burst_snapshots()._inventory is mine
    assert container.registration()._inventory is mine
    assert container.registration()._snapshots is shared
    assert container.label_sync()._snapshots is shared
    assert container.lifecycle()._inventory is mine
    # one freshness ledger for every reader of XO
    ledger = container.freshness()
    assert shared._freshness is ledger
    assert container.label_sync()._freshness is ledger
    assert container.change_router()._freshness is ledger


async def test_the_container_opens_and_closes_what_the_process_uses() -> None:
    # Resources are built on first use and closed by shutdown, dependents first;
    # --leader-elect=false selects the sole leader, never a Lease.
    from adapters.config import CloudConfig
    from adapters.sole_leader import SoleLeader
    from entrypoints.container import provide, shutdown

    container = in_memory_container()
    container.inventory.reset_override()  # the real XO adapter, built but never asked
    container.cloud_config.override(CloudConfig(url="https://xo.invalid", token="t"))
    inventory = await provide(container.inventory)
    assert type(inventory).__name__ == "XOInventory"
    assert container.inventory.initialized
    await shutdown(container)
    assert not container.inventory.initialized

    plain = Container(
        settings=Settings(leader_elect=False),
        cloud_config=CloudConfig(url="https://xo.invalid", token="t"),
    )
    assert isinstance(plain.leader_elector(), SoleLeader)


def test_container_declares_without_building() -> None:
    from adapters.config import CloudConfig

    container = Container(
        settings=Settings(), cloud_config=CloudConfig(url="https://xo", token="t")
    )
    container.nodes.override(InMemoryNodeStore())
    assert isinstance(container.nodes(), InMemoryNodeStore)  # the kube client was never built


def test_logs_never_show_registered_secrets() -> None:
    buffer = io.StringIO()
    secret = "s3cr3t-" + "token-value"  # built so no source line shown in a traceback holds it
    register_secret(secret)
    configure_logging(verbosity=10, sink=buffer)
    logging.getLogger("domain.test").warning("token is %s", secret)
    from loguru import logger

    logger.trace("cookie authenticationToken={}", secret)
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logger.exception("boom")
    configure_logging(verbosity=0, sink=io.StringIO())
    text = buffer.getvalue()
    assert secret not in text
    assert text.count("***") >= 2


def test_a_log_line_is_time_level_logger_and_message_and_an_error_keeps_its_traceback() -> None:
    buffer = io.StringIO()
    configure_logging(verbosity=2, sink=buffer)
    logging.getLogger("domain.services.registration").info("node %s initialized", "{n-1}")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("adapters.kubernetes.nodes").exception("write failed")
    configure_logging(verbosity=0, sink=io.StringIO())
    first, second, *trace = buffer.getvalue().splitlines()
    line = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d (\w+) +(\S+): (.*)")
    assert (m := line.fullmatch(first)) and m.groups() == (
        "INFO",
        __name__,  # the module that logged (loguru's name), as every module logs
        "node {n-1} initialized",
    )
    assert (m := line.fullmatch(second))
    assert m.groups()[:2] == ("ERROR", __name__)
    assert trace[0].startswith("Traceback") and trace[-1] == "RuntimeError: boom"


def test_every_line_shares_one_template_whatever_its_time() -> None:
    """loguru parses a format function's template once and keeps the last 64: a
    template holding the time (a new one every millisecond) was parsed for nearly
    every line, two fifths of the line's cost."""
    start = datetime(2026, 12, 6, 19, 0, tzinfo=UTC)
    records = [{"time": start + timedelta(milliseconds=ms)} for ms in range(100)]
    assert len({_line_format(record) for record in records}) == 1
    assert records[7]["_stamp"] == "2026-12-06T19:00:00.007+00:00"


def test_a_json_line_holds_the_text_line_and_loguru_fields_only() -> None:
    buffer = io.StringIO()
    configure_logging(verbosity=2, json=True, sink=buffer)
    logging.getLogger("domain.services.registration").info("node %s initialized", "n-1")
    configure_logging(verbosity=0, sink=io.StringIO())
    entry = json.loads(buffer.getvalue())
    line = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO +\S+: node n-1 initialized\n"
    assert re.fullmatch(line, entry["text"])
    assert "_stamp" not in entry["record"] and entry["record"]["extra"] == {}
    assert entry["record"]["message"] == "node n-1 initialized"


# -- the Go CCM's config rules (xenorchestra-k8s-common) ------------------------------
@pytest.mark.parametrize(
    ("yaml_text", "token"),
    [
        pytest.param("token: t\nusername: u\n", True, id="token-and-lone-username"),
        pytest.param("token: t\npassword: p\n", True, id="token-and-lone-password"),
        pytest.param("username: u\npassword: p\n", False, id="username-and-password"),
    ],
)
def test_token_versus_credentials_is_gos_rule(tmp_path: Path, yaml_text: str, token: bool) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"url: https://xo\n{yaml_text}")
    assert load_config_file(path).uses_token is token


def test_unknown_keys_warn_once_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("url: https://xo\ntoken: t\ntokn: x\nregion: eu\n")
    config = load_config_file(path)
    assert config.warnings == (f"cloud config {path}: unknown keys ignored: region, tokn",)
    assert config.uses_token


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("45", 45), ("2.5", 2.5), ("1h", 3600)],
)
def test_client_timeout_takes_go_durations_and_seconds(
    tmp_path: Path, value: str, seconds: float
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"url: https://xo\ntoken: t\nclientTimeout: {value}\n")
    assert load_config_file(path).client_timeout == pytest.approx(seconds)
    env = {"XOA_URL": "https://xo", "XOA_TOKEN": "t", "XOA_CLIENT_TIMEOUT": value}
    assert load_config_env(env).client_timeout == pytest.approx(seconds)


def test_cli_warns_about_unknown_config_keys_and_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warning is one line; the CLI gets past config loading (it then fails on
    the missing kubeconfig, which proves it did not stop at the config)."""
    path = tmp_path / "config.yaml"
    path.write_text("url: https://xo\ntoken: t\nextraKey: 1\n")
    code = main([f"--cloud-config={path}", f"--kubeconfig={tmp_path / 'none'}"])
    err = capsys.readouterr().err
    assert code == 1
    warnings = [line for line in err.splitlines() if "unknown keys ignored" in line]
    assert len(warnings) == 1 and "extraKey" in warnings[0]
    assert "kubeconfig" in err.splitlines()[-1]


@pytest.mark.parametrize(
    ("line", "prefix"),
    [
        pytest.param("", "k8s.instance-type=", id="default"),
        pytest.param("tagInstanceTypePrefix: kube/type=\n", "kube/type=", id="custom"),
        pytest.param('tagInstanceTypePrefix: ""\n', "", id="off"),
    ],
)
def test_the_instance_type_tag_prefix_is_a_tag_option(
    tmp_path: Path, line: str, prefix: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"url: https://xo\ntoken: t\n{line}")
    assert load_config_file(path).options().tags.instance_type_prefix == prefix


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        pytest.param("", None, id="go-defaults-say-nothing"),
        pytest.param(
            "zoneSource: hostTag\n",
            "topology labels: zone: the host tag k8s.zone=<zone>; region: the VM's pool id",
            id="host-tag",
        ),
    ],
)
def test_the_start_names_topology_sources_other_than_the_go_ccms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, line: str | None
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"url: https://xo\ntoken: t\n{extra}")
    main([f"--cloud-config={path}", f"--kubeconfig={tmp_path / 'none'}"])
    said = [x for x in capsys.readouterr().err.splitlines() if "topology labels" in x]
    assert [x[x.index("topology labels") :] for x in said] == ([line] if line else [])


@pytest.mark.parametrize(
    ("qps", "asked", "loop"),
    [
        (20.0, "", "asyncio"),  # the Go default: the rate limit is the limit
        (99.9, "", "asyncio"),
        (100.0, "", "uvloop"),  # a lifted limit: CPU per node is the limit
        (500.0, "", "uvloop"),
        (500.0, "asyncio", "asyncio"),
        (20.0, " UVLOOP ", "uvloop"),
        (20.0, "auto", "asyncio"),
        (500.0, "auto", "uvloop"),
    ],
)
def test_the_event_loop_follows_the_request_budget_unless_asked(
    qps: float, asked: str, loop: str
) -> None:
    from entrypoints.flags.settings import event_loop_for

    assert event_loop_for(qps, asked) == loop


def test_the_ccm_runs_on_the_loop_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    import uvloop

    from entrypoints.cli import event_loop_factory

    monkeypatch.delenv("XOCCM_EVENT_LOOP", raising=False)
    factory = event_loop_factory(500.0)
    assert factory is uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(asyncio.sleep(0, result="ran")) == "ran"
    assert event_loop_factory(20.0) is None
    monkeypatch.setenv("XOCCM_EVENT_LOOP", "uvloop")
    assert event_loop_factory(20.0) is uvloop.new_event_loop


def test_an_unknown_event_loop_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("url: https://xo\ntoken: t\n")
    monkeypatch.setenv("XOCCM_EVENT_LOOP", "tokio")
    code = main([f"--cloud-config={path}", f"--kubeconfig={tmp_path / 'none'}"])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "xenorchestra-cloud-controller-manager: error: "
        "XOCCM_EVENT_LOOP='tokio': expected uvloop, asyncio or auto"
    ]
