"""What the CCM says once at start: version, cluster, flags without effect,
cloud-config keys it ignored, and where zone and region come from when not the Go
CCM's."""

from __future__ import annotations

from loguru import logger

from adapters.config import CloudConfig
from domain.policies.topology import describe
from entrypoints.flags.settings import Settings
from entrypoints.version import version


def log_startup(settings: Settings, config: CloudConfig) -> None:
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
