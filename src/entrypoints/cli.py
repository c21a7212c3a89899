"""The console script ``xenorchestra-cloud-controller-manager``.

Without a sub-command it is the CCM, with every Kubernetes CCM flag;
``demo`` and ``fake-xo`` are sub-commands for trying it out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence

from loguru import logger

from adapters.config import CloudConfig, ConfigError, load_config
from adapters.logging_setup import configure_logging, register_secret
from domain.policies.topology import describe
from entrypoints.console import PROG, fail
from entrypoints.flags.settings import (
    FlagError,
    HelpRequested,
    Settings,
    event_loop_for,
    parse_command_line,
)
from entrypoints.version import print_version, version

SUBCOMMANDS = ("demo", "fake-xo", "doctor")
#: The test kits: the container image leaves them out (.dockerignore), and only the
#: demo and fake-xo sub-commands load them (an import-linter contract holds the rest
#: of the console script away from them).
TEST_KITS = "entrypoints.testkits"


def ccm_usage() -> str:
    from entrypoints.flags.table import FLAGS

    return FLAGS.usage(PROG, (f"       {PROG} demo | doctor | fake-xo --help",))


def main_ccm(argv: Sequence[str]) -> int:
    try:
        settings = parse_command_line(list(argv))
    except HelpRequested:
        print(ccm_usage(), end="")
        return 0
    except FlagError as err:
        return fail(str(err))
    if settings.version != "false":
        return print_version(settings.version)
    try:
        config = load_config(settings.cloud_config)
    except ConfigError as err:
        return fail(str(err))
    for secret in (config.token, config.password):
        register_secret(secret.get_secret_value() if secret else None)
    configure_logging(verbosity=settings.v, json=settings.log_format == "json")
    try:
        loop_factory = event_loop_factory(settings.kube_api_qps)
    except ValueError as err:
        return fail(str(err))
    log_startup(settings, config)
    from entrypoints.app import run_ccm

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(run_ccm(settings, config))


def event_loop_factory(qps: float) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The controller process's loop (:func:`event_loop_for` chooses): uvloop's,
    whose transports and TLS in C cost a registration about 6 % less CPU, when the
    request budget makes CPU the limit; None (the standard loop) otherwise.
    ``XOCCM_EVENT_LOOP=uvloop|asyncio`` overrides the choice (ValueError: another value)."""
    if event_loop_for(qps, os.environ.get("XOCCM_EVENT_LOOP", "")) == "asyncio":
        return None
    import uvloop

    return uvloop.new_event_loop


def log_startup(settings: Settings, config: CloudConfig) -> None:
    """What the CCM says once at start: version, cluster, flags without effect,
    cloud-config keys it ignored, and where zone and region come from when not the
    Go CCM's."""
    logger.info(
        "xenorchestra-cloud-controller-manager {} for cluster {!r}",
        version(),
        settings.cluster_name,
    )
    if settings.v >= 2 and settings.no_effect:
        logger.info(
            "accepted for compatibility with the Go CCM, without effect here: {}",
            ", ".join(f"--{name}" for name in settings.no_effect),
        )
    for warning in config.warnings:
        logger.warning("{}", warning)
    topology = config.options().topology
    if not (topology.zone_is_host and topology.region_is_pool):
        logger.info("topology labels: {}", describe(topology))


def main_demo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo", description="Run the controllers on a demo world."
    )
    parser.add_argument(
        "--v", type=int, default=0, help="controller log verbosity (default 0: quiet)"
    )
    parser.add_argument(
        "--xo",
        choices=("memory", "fake-http"),
        default="memory",
        help="memory: an in-memory XO; fake-http: the fake XO server on loopback, "
        "read through the real HTTP adapter and its change events (default memory)",
    )
    parser.add_argument(
        "--cluster",
        choices=("auto", "real", "memory"),
        default="auto",
        help="real: a local etcd + kube-apiserver (binaries from scripts/build-control-plane.sh); "
        "memory: the in-memory cluster; auto: real when the binaries are built (default)",
    )
    args = parser.parse_args(argv)
    if args.v:
        configure_logging(verbosity=args.v)
    else:
        configure_logging(verbosity=0, sink=_null_sink)
    from entrypoints.demo import run_demo

    return asyncio.run(run_demo(xo=args.xo, cluster=args.cluster))


def _null_sink(_message: object) -> None:
    """The demo prints its own story; controller logs only with --v."""


def main_with_test_kits(name: str, run: Callable[[], int]) -> int:
    """Run a sub-command that needs the test kits; one error line where they are absent."""
    try:
        return run()
    except ModuleNotFoundError as err:
        if err.name is None or not (err.name == TEST_KITS or err.name.startswith(f"{TEST_KITS}.")):
            raise
        return fail(
            f"the {name} sub-command needs the test kits ({TEST_KITS}), which this "
            "installation leaves out (the container image does): run it from a source install"
        )


def _main_fake_xo(argv: Sequence[str]) -> int:
    from entrypoints.testkits.fake_xo.cli import main as main_fake_xo

    return main_fake_xo(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "demo":
        return main_with_test_kits("demo", lambda: main_demo(args[1:]))
    if args and args[0] == "doctor":
        from entrypoints.doctor import main_doctor

        return main_doctor(args[1:])
    if args and args[0] == "fake-xo":
        return main_with_test_kits("fake-xo", lambda: _main_fake_xo(args[1:]))
    return main_ccm(args)


if __name__ == "__main__":
    sys.exit(main())
