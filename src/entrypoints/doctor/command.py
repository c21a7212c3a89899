"""``doctor``: every check in report order, printed; the exit code."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TextIO

from adapters.config import CloudConfig
from adapters.kubernetes import ClientSettings
from adapters.logging_setup import configure_logging, mask_secrets
from adapters.xenorchestra import RetryPolicy
from entrypoints.container import Container, shutdown
from entrypoints.doctor.breaker import reset_deletion_breaker
from entrypoints.doctor.config import auth_method, config_ignored, diagnose_config, read_config
from entrypoints.doctor.csr import diagnose_csr_approval
from entrypoints.doctor.findings import (
    EXIT_CANNOT_CHECK,
    EXIT_OK,
    KUBE_API,
    XO_ADMIN,
    XO_REACHABLE,
    Finding,
    Status,
    redact_url,
    summarize,
    unknown,
)
from entrypoints.doctor.kube import KubeReading, read_kube
from entrypoints.doctor.nodes import (
    DEFAULT_OPTIONS,
    diagnose_nodes,
    pools_of_missing_vms,
    ranked_placement_pools,
)
from entrypoints.doctor.options import DoctorOptions, doctor_parser, options_from_args
from entrypoints.doctor.report import Report, render_json, render_table
from entrypoints.doctor.topology import diagnose_topology
from entrypoints.doctor.xo import (
    CountingObserver,
    XOReading,
    diagnose_events,
    diagnose_xo_access,
    pools_without_vms,
    probe_pool,
    read_xo,
)
from entrypoints.flags.settings import Settings


def _unexpected(check: str, subject: str, err: Exception) -> Finding:
    return unknown(
        check,
        redact_url(subject),
        f"unexpected error: {type(err).__name__}: {err}",
        "run doctor again with --v 6 and report the log",
    )


def doctor_container(opts: DoctorOptions, config: CloudConfig | None, report: Report) -> Container:
    """The CCM's own container, with doctor's budgets: answers within ``--timeout``,
    few workers, no client-side throttling to speak of, every XO request counted."""
    settings = Settings(
        kubeconfig=opts.kubeconfig,
        kube_api_qps=100.0,
        kube_api_burst=100,
        leader_elect=opts.leader_elect,
        leader_elect_resource_name=opts.lease_name,
        leader_elect_resource_namespace=opts.lease_namespace,
    )
    container = Container(settings=settings)
    # Not a replica: its access reviews are sent whoever leads (it never leads).
    container.write_fence.override(None)
    container.kube_client_settings.override(
        ClientSettings(
            qps=settings.kube_api_qps,
            burst=settings.kube_api_burst,
            workers=4,
            connect_timeout=opts.timeout,
            read_timeout=opts.timeout,
            max_retries=1,
            user_agent="xenorchestra-cloud-controller-manager/doctor",
        )
    )
    if config is not None:
        budget = {
            "client_timeout": min(config.client_timeout, opts.timeout),
            "max_concurrent_requests": 4,
        }
        container.cloud_config.override(config.model_copy(update=budget))
    container.xo_retry.override(
        RetryPolicy(deadline=opts.timeout, initial_backoff=0.1, max_backoff=1.0)
    )
    container.xo_observer.override(CountingObserver(report.xo_requests))
    return container


async def run_doctor(opts: DoctorOptions) -> Report:
    """Every check, in report order: config, XO, Kubernetes, nodes."""
    report = Report()
    config, config_finding = read_config(opts.cloud_config)
    container = doctor_container(opts, config, report)
    try:
        await _run(container, opts, config, config_finding, report)
    finally:
        await shutdown(container)
    report.kube_requests = Counter(report.kube_requests)
    return report


async def _run(
    container: Container,
    opts: DoctorOptions,
    config: CloudConfig | None,
    config_finding: Finding,
    report: Report,
) -> None:
    xo = XOReading()
    if config is not None:
        try:
            xo = await read_xo(container, config, wait=opts.timeout)
        except Exception as err:  # a bug or a surprise must not hide the other checks
            xo = XOReading(findings=[_unexpected(XO_REACHABLE, config.url, err)])
        xo.findings[:0] = diagnose_config(
            origin=config_finding.subject,
            url=config.url,
            insecure=config.insecure,
            ca_file=str(config.ca_file or ""),
            auth_method=auth_method(config),
        )
        xo.findings[1:1] = [config_ignored(config_finding.subject, w) for w in config.warnings]
    else:
        report.findings.append(config_finding)
    try:
        kube = await read_kube(container, opts, report)
    except Exception as err:
        kube = KubeReading(findings=[_unexpected(KUBE_API, opts.kubeconfig or "in-cluster", err)])

    report.findings.extend(xo.findings)
    if config is not None and xo.snapshot is not None and xo.client is not None:
        snap = xo.snapshot
        probed, probe = "", None
        if not snap.pools and kube.nodes:
            ranked = ranked_placement_pools(kube.nodes)
            if ranked:
                probed = ranked[0]
                probe = await probe_pool(xo.client, probed)
        report.findings.append(
            diagnose_xo_access(
                url=config.url,
                vms=len(snap.vms),
                hosts=len(snap.hosts),
                pools=len(snap.pools),
                probe_pool=probed,
                probe=probe,
                admin_view=xo.admin,
                admin_detail=xo.admin_detail,
            )
        )
        report.findings.append(
            diagnose_events(config.url, available=xo.events, detail=xo.events_detail)
        )
    if config is not None:
        report.findings.extend(diagnose_topology(config.options(), xo.snapshot, kube.nodes))
    report.findings.extend(kube.findings)
    options = config.options() if config is not None else DEFAULT_OPTIONS
    if kube.nodes is not None or kube.csrs is not None:
        report.findings.extend(
            diagnose_csr_approval(
                enabled=opts.csr_approval,
                requests=kube.csrs,
                problem=kube.csr_problem,
                nodes=kube.nodes,
                snapshot=xo.snapshot,
                options=options,
                now=datetime.now(UTC),
            )
        )
    if kube.nodes is not None:
        # A snapshot through non-admin eyes would make every node look lost.
        complete = xo.snapshot is not None and not any(
            f.check == XO_ADMIN and f.status is not Status.OK for f in report.findings
        )
        without_vms: frozenset[str] = frozenset()
        if complete and xo.snapshot is not None and xo.inventory is not None:
            asked = pools_of_missing_vms(kube.nodes, xo.snapshot)
            without_vms = await pools_without_vms(xo.inventory, asked)
        report.findings.extend(
            diagnose_nodes(
                kube.nodes,
                xo.snapshot if complete else None,
                now=datetime.now(UTC),
                options=options,
                uninitialized_grace=opts.uninitialized_grace,
                pools_without_vms=without_vms,
            )
        )


def _null_sink(_message: object) -> None:
    """Logs are off unless --v: the report is the output."""


def main_doctor(argv: Sequence[str], *, stdout: TextIO | None = None) -> int:
    """The ``doctor`` sub-command; returns the exit code (0 ok, 1 fix, 2 cannot check)."""
    parser = doctor_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exit_:
        return EXIT_OK if exit_.code in (0, None) else EXIT_CANNOT_CHECK
    opts = options_from_args(args)
    if opts.v > 0:
        configure_logging(verbosity=opts.v)
    else:
        configure_logging(verbosity=0, sink=_null_sink)
    out = stdout or sys.stdout
    if opts.reset_deletion_breaker:
        code, line = asyncio.run(reset_deletion_breaker(opts))
        out.write(mask_secrets(line) + "\n")
        out.flush()
        return code
    report = asyncio.run(run_doctor(opts))
    findings = report.shown(all_nodes=opts.all_nodes)
    summary = summarize(findings)
    text = (
        render_json(report, findings, summary)
        if opts.output == "json"
        else render_table(findings, summary)
    )
    out.write(mask_secrets(text))
    out.flush()
    return summary.exit_code
