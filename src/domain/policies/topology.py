"""Zone and region: which XO fact each label names (``domain.options.TopologyOptions``).

The reference's zone is the host a VM runs on and its region the pool. A tag source
reads ``<key>=<value>`` from the host's (or pool's) XO tags instead, so that hosts
grouped in racks, rooms or sites share one zone and a live migration inside the group
moves nothing. What cannot be known is empty, never guessed, and an empty zone or
region never replaces a label (like a halted VM's zone): a host without the tag, or
whose tag is no valid label value, leaves its nodes' zone as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from domain.model import VM, Host, Pool, PowerState
from domain.options import RegionSource, TopologyOptions, ZoneSource
from domain.policies.tags import value_problem

#: The reason of the Warning event about a host or pool tag a tag source cannot use.
INVALID_TOPOLOGY_TAG = "InvalidTopologyTag"

#: Power states in which ``$container`` is the host the VM runs on.
_RESIDENT_STATES = frozenset({PowerState.RUNNING, PowerState.PAUSED})


def resident_host_id(vm: VM) -> str:
    """The host the VM runs on, or "" when XO does not say.

    A halted VM's ``$container`` is its pool (or a local SR's host, which is
    where it *could* start, not where it runs): never a zone.
    """
    if vm.power_state not in _RESIDENT_STATES or not vm.container or vm.container == vm.pool_id:
        return ""
    return vm.container


@dataclass(frozen=True, slots=True)
class TagProblem:
    """A topology tag that cannot be used: treated as missing, and said so in a Warning."""

    owner: str  # "host xcp-1 (uuid)" or "pool Pool-A (uuid)"
    tag: str
    why: str
    label: str  # "zone" or "region"

    @property
    def message(self) -> str:
        return (
            f"{self.owner} tag {self.tag!r} ignored: {self.why}; "
            f"the {self.label} label is left as it is"
        )


@dataclass(frozen=True, slots=True)
class TagValue:
    """The value of one tag key among an object's tags ("" when missing or unusable)."""

    value: str = ""
    found: bool = False  # some tag names the key (even an unusable one)
    tag: str = ""  # the tag(s) read, for messages
    problem: str = ""  # why a found tag is not used


def tag_value(tags: Iterable[str], key: str) -> TagValue:
    """The value of ``<key>=<value>`` among ``tags`` (spaces around ``=`` tolerated).

    Several tags naming different values, an empty value or one that is not a valid
    label value are problems: the value is then "", as if the tag were missing.
    """
    values: dict[str, str] = {}
    bare: list[str] = []
    for tag in tags:
        name, eq, value = tag.partition("=")
        if name.strip() != key:
            continue
        if eq:
            values.setdefault(value.strip(), tag)
        else:
            bare.append(tag)
    if not values:
        if bare:
            return TagValue(found=True, tag=bare[0], problem=f"missing '=<value>' after {key!r}")
        return TagValue()
    if len(values) > 1:
        shown = ", ".join(sorted(values.values()))
        return TagValue(
            found=True,
            tag=shown,
            problem=f"{len(values)} tags name different values for {key!r}",
        )
    ((value, tag),) = values.items()
    if not value:
        return TagValue(found=True, tag=tag, problem="the value is empty")
    problem = value_problem(value)
    if problem:
        return TagValue(found=True, tag=tag, problem=f"not a label value: {problem}")
    return TagValue(value=value, found=True, tag=tag)


@dataclass(frozen=True, slots=True)
class Topology:
    """A VM's zone and region by the options ("" = not known: no label is written)."""

    zone: str
    region: str
    problems: tuple[TagProblem, ...] = ()


def _owner(kind: str, name: str, ident: str) -> str:
    return f"{kind} {name} ({ident})" if name else f"{kind} {ident}"


def topology(*, vm: VM, host: Host | None, pool: Pool | None, options: TopologyOptions) -> Topology:
    """The zone and region of ``vm`` given its resident host and pool records.

    A host or pool record of another object than the VM's (or none: XO could not be
    asked) names nothing: the tag sources then give "".
    """
    problems: list[TagProblem] = []
    resident = resident_host_id(vm)
    zone = ""
    if options.zone_source is ZoneSource.HOST:
        zone = resident
    elif options.zone_source is ZoneSource.POOL:
        zone = vm.pool_id
    elif options.zone_source is ZoneSource.HOST_TAG and resident and host and host.id == resident:
        read = tag_value(host.tags, options.zone_tag)
        zone = read.value
        if read.problem:
            owner = _owner("host", host.name_label, host.id)
            problems.append(TagProblem(owner, read.tag, read.problem, "zone"))
    region = ""
    if options.region_source is RegionSource.POOL:
        region = vm.pool_id
    elif options.region_source is RegionSource.POOL_TAG and pool and pool.id == vm.pool_id:
        read = tag_value(pool.tags, options.region_tag)
        region = read.value
        if read.problem:
            owner = _owner("pool", pool.name_label, pool.id)
            problems.append(TagProblem(owner, read.tag, read.problem, "region"))
    return Topology(zone=zone, region=region, problems=tuple(problems))


def describe(options: TopologyOptions) -> str:
    """The sources in words, for ``doctor`` and the startup log."""
    zone = {
        ZoneSource.HOST: "the VM's host id",
        ZoneSource.HOST_TAG: f"the host tag {options.zone_tag}=<zone>",
        ZoneSource.POOL: "the VM's pool id",
        ZoneSource.NONE: "not set",
    }[options.zone_source]
    region = {
        RegionSource.POOL: "the VM's pool id",
        RegionSource.POOL_TAG: f"the pool tag {options.region_tag}=<region>",
        RegionSource.NONE: "not set",
    }[options.region_source]
    return f"zone: {zone}; region: {region}"
