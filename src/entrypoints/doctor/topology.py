"""The zone and region sources in use, and the hosts (or pools) their tags miss.

With ``zoneSource: hostTag`` a host without a usable ``<zoneTag>=<zone>`` tag gives
its nodes no zone (a node registered there gets none; one that migrates there keeps
the zone it had): doctor names each such host and how many nodes run there now. The
tag is read by the controllers' own rule (``domain.policies.topology``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from domain.matching import VMIndex
from domain.model import InventorySnapshot, Node
from domain.options import CCMOptions, RegionSource, ZoneSource
from domain.policies.topology import describe, resident_host_id, tag_value
from entrypoints.doctor.findings import TOPOLOGY, Finding, ok, plural, warn
from entrypoints.doctor.nodes import find_vm


def _placed(
    nodes: Iterable[Node], index: VMIndex, *, match_by_name: bool
) -> tuple[Counter[str], Counter[str]]:
    """How many nodes' VMs run on each host, and are in each pool."""
    hosts: Counter[str] = Counter()
    pools: Counter[str] = Counter()
    for node in nodes:
        vm = find_vm(node, index, match_by_name=match_by_name).vm
        if vm is None:
            continue
        if resident_host_id(vm):
            hosts[resident_host_id(vm)] += 1
        pools[vm.pool_id] += 1
    return hosts, pools


def _untagged(
    *,
    kind: str,
    label: str,
    key: str,
    objects: Iterable[tuple[str, str, Sequence[str]]],
    placed: Counter[str],
) -> list[Finding]:
    """One warning per object without a usable ``key`` tag, or one ok for all."""
    found: list[Finding] = []
    total = 0
    for ident, name, tags in sorted(objects, key=lambda o: (o[1], o[0])):
        total += 1
        read = tag_value(tags, key)
        if read.value:
            continue
        what = f"tag {read.tag!r} unusable ({read.problem})" if read.problem else f"no {key} tag"
        count = placed.get(ident, 0)
        if count == 1:
            there = f"1 node whose VM is there keeps the {label} label it has"
        elif count:
            there = f"{count} nodes whose VMs are there keep the {label} label they have"
        else:
            there = f"no node's VM is there now; one that moves there keeps its {label} label"
        found.append(
            warn(
                TOPOLOGY,
                f"{kind} {name} ({ident})" if name else f"{kind} {ident}",
                f"{what}: {there}, a node registered there gets none",
                f"tag the {kind} in XO with {key}=<{label}> (a valid label value), "
                f"or choose another {label}Source",
            )
        )
    if total and not found:
        found.append(ok(TOPOLOGY, plural(total, kind), f"all tagged {key}=<{label}>"))
    return found


def diagnose_topology(
    options: CCMOptions,
    snapshot: InventorySnapshot | None,
    nodes: Sequence[Node] | None,
) -> list[Finding]:
    """The sources in use; with a tag source, the hosts or pools without the tag."""
    topology = options.topology
    default = topology.zone_is_host and topology.region_is_pool
    found = [
        ok(
            TOPOLOGY,
            "zoneSource, regionSource",
            describe(topology) + (" (the Go CCM's)" if default else ""),
        )
    ]
    tags_read = (
        topology.zone_source is ZoneSource.HOST_TAG
        or topology.region_source is RegionSource.POOL_TAG
    )
    if snapshot is None or not tags_read:
        return found
    hosts, pools = _placed(nodes or (), VMIndex(snapshot), match_by_name=options.match_by_name)
    if topology.zone_source is ZoneSource.HOST_TAG:
        found += _untagged(
            kind="host",
            label="zone",
            key=topology.zone_tag,
            objects=((h.id, h.name_label, h.tags) for h in snapshot.hosts.values()),
            placed=hosts,
        )
    if topology.region_source is RegionSource.POOL_TAG:
        found += _untagged(
            kind="pool",
            label="region",
            key=topology.region_tag,
            objects=((p.id, p.name_label, p.tags) for p in snapshot.pools.values()),
            placed=pools,
        )
    return found
