"""The cloud config: the reference CCM's file (``url``, ``insecure``, ``token``
or ``username``/``password``, ``clientTimeout``) or its ``XOA_*`` environment
variables.

Read as ``xenorchestra-k8s-common`` reads it: keys it does not know are ignored
(here with one warning naming them), a ``token`` goes with a lone ``username``
or ``password`` (only a full username *and* password pair excludes a token).
Every problem is a ConfigError whose message names the key and what is wrong,
so the CLI can print one line and exit 1 before touching anything.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from domain.options import (
    AddressFamily,
    AddressOptions,
    CCMOptions,
    DeletionOptions,
    OutOfServiceOptions,
    RegionSource,
    TagOptions,
    TopologyOptions,
    ZoneSource,
)


class ConfigError(ValueError):
    """The configuration is unusable; the message says why, in one line."""


class CloudConfig(BaseModel):
    """Connection settings for Xen Orchestra.

    ``token`` must belong to an XO admin (the CCM lists every VM and pool).
    Secrets are ``SecretStr`` so they never show up in a repr or a log.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    #: One line per thing the loader ignored (unknown keys), for the startup log.
    warnings: tuple[str, ...] = Field(default=(), exclude=True, repr=False)

    url: str
    insecure: bool = False
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    client_timeout: float = Field(default=30.0, gt=0, alias="clientTimeout")
    ca_file: Path | None = Field(default=None, alias="caFile")
    max_concurrent_requests: int = Field(default=16, ge=1, alias="maxConcurrentRequests")

    # -- beyond the reference (defaults behave exactly like it) ---------------
    match_by_name: bool = Field(default=False, alias="matchByName")
    tag_label_prefix: str = Field(default="k8s.label/", alias="tagLabelPrefix")
    tag_taint_prefix: str = Field(default="k8s.taint/", alias="tagTaintPrefix")
    sync_taints: bool = Field(default=False, alias="syncTaints")
    internal_cidrs: tuple[IPvAnyNetwork, ...] = Field(default=(), alias="internalCIDRs")
    external_cidrs: tuple[IPvAnyNetwork, ...] = Field(default=(), alias="externalCIDRs")
    exclude_cidrs: tuple[IPvAnyNetwork, ...] = Field(default=(), alias="excludeCIDRs")
    address_family: AddressFamily = Field(default=AddressFamily.IPV4, alias="addressFamily")
    deletion_confirm_delay: float = Field(default=30.0, ge=0, alias="deletionConfirmDelay")
    deletion_rate_minimum: int = Field(default=5, ge=0, alias="deletionRateMinimum")
    deletion_rate_percent: float = Field(default=10.0, ge=0, le=100, alias="deletionRatePercent")
    deletion_rate_window: float = Field(default=600.0, gt=0, alias="deletionRateWindow")
    out_of_service_taint: bool = Field(default=False, alias="outOfServiceTaint")
    out_of_service_grace_period: float = Field(default=300.0, ge=0, alias="outOfServiceGracePeriod")
    zone_source: ZoneSource = Field(default=ZoneSource.HOST, alias="zoneSource")
    zone_tag: str = Field(default="k8s.zone", alias="zoneTag")
    region_source: RegionSource = Field(default=RegionSource.POOL, alias="regionSource")
    region_tag: str = Field(default="k8s.region", alias="regionTag")

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        url = url.strip()
        if not url:
            raise ValueError("url is empty")
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
            raise ValueError(f"url {url!r} must start with http:// or https:// and name a host")
        return url.rstrip("/")

    @field_validator("token", "password", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        """Secrets often come with a trailing newline (``echo tok | base64``, a file
        saved by an editor): surrounding whitespace is dropped. A control character
        inside is refused, naming the key and never the value: sent on, it breaks
        the HTTP header, and the library's error would quote the header, secret and all."""
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if not isinstance(value, str):
            return value
        value = value.strip()
        if any(unicodedata.category(char) == "Cc" for char in value):
            raise ValueError(
                "contains a control character (a newline or tab inside the value?); "
                "the value is not shown"
            )
        return value

    @field_validator("zone_source", "region_source", mode="before")
    @classmethod
    def _source(cls, value: Any, info: ValidationInfo) -> Any:
        """One line naming the bad value and the good ones (pydantic's own names neither)."""
        choices = ZoneSource if info.field_name == "zone_source" else RegionSource
        if isinstance(value, str) and value in {c.value for c in choices}:
            return value
        allowed = ", ".join(c.value for c in choices)
        raise ValueError(f"{value!r} is not one of {allowed}")

    @field_validator("zone_tag", "region_tag", mode="before")
    @classmethod
    def _tag_key(cls, value: Any) -> Any:
        """The ``<key>`` of XO tags ``<key>=<value>``: it cannot hold ``=`` nor be blank."""
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a tag name (a string such as k8s.zone)")
        key = value.strip()
        if not key or "=" in key:
            raise ValueError(
                f"{value!r} is not a tag name: the part before '=' of tags like k8s.zone=rack-a"
            )
        return key

    @field_validator("client_timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return parse_timeout(value)

    @model_validator(mode="after")
    def _one_auth_method(self) -> CloudConfig:
        # xenorchestra-k8s-common's rule: a username *and* a password exclude a
        # token; anything short of that pair needs the token (which is then used).
        has_token = bool(self.token and self.token.get_secret_value())
        has_pair = bool(self.username and self.password and self.password.get_secret_value())
        if has_pair and has_token:
            raise ValueError("token is not allowed when username and password are set")
        if not has_pair and not has_token:
            if self.username or (self.password and self.password.get_secret_value()):
                raise ValueError("username and password must both be set (or set token)")
            raise ValueError("either token or username/password are required for authentication")
        return self

    @property
    def uses_token(self) -> bool:
        """True when XO is authenticated with the token (never with both)."""
        return bool(self.token and self.token.get_secret_value())

    def options(self, *, dry_run_deletions: bool = False) -> CCMOptions:
        """The domain's view of the operator's choices."""
        return CCMOptions(
            tags=TagOptions(
                label_prefix=self.tag_label_prefix,
                taint_prefix=self.tag_taint_prefix,
                sync_taints=self.sync_taints,
            ),
            addresses=AddressOptions(
                internal_cidrs=tuple(self.internal_cidrs),
                external_cidrs=tuple(self.external_cidrs),
                exclude_cidrs=tuple(self.exclude_cidrs),
                family=self.address_family,
            ),
            deletion=DeletionOptions(
                confirm_delay=self.deletion_confirm_delay,
                rate_minimum=self.deletion_rate_minimum,
                rate_percent=self.deletion_rate_percent,
                window=self.deletion_rate_window,
                dry_run=dry_run_deletions,
            ),
            out_of_service=OutOfServiceOptions(
                enabled=self.out_of_service_taint, grace_period=self.out_of_service_grace_period
            ),
            match_by_name=self.match_by_name,
            topology=TopologyOptions(
                zone_source=self.zone_source,
                zone_tag=self.zone_tag,
                region_source=self.region_source,
                region_tag=self.region_tag,
            ),
        )


_ENV_KEYS = {
    "XOA_URL": "url",
    "XOA_TOKEN": "token",
    "XOA_USER": "username",
    "XOA_PASSWORD": "password",
    "XOA_INSECURE": "insecure",
    "XOA_CLIENT_TIMEOUT": "clientTimeout",
    "XOA_CA_FILE": "caFile",
}


_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_timeout(value: Any) -> Any:
    """``clientTimeout``: a Go duration (``30s``, ``1m30s``, ``500ms``) or plain seconds
    (``30``, ``2.5``); other values are left to the field's own validation."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number of seconds")
        return float(value)
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if not match or not (match.group(1) or match.group(2)):
            raise ValueError(f"{value!r} is neither seconds (30) nor a duration (30s, 1m30s)")
        total += float(f"{match.group(1) or 0}.{match.group(2) or 0}") * _UNITS[match.group(3)]
        pos = match.end()
    if not text:
        raise ValueError("is empty")
    return total


def _known_keys() -> frozenset[str]:
    keys = set()
    for name, info in CloudConfig.model_fields.items():
        if name == "warnings":
            continue
        keys.add(name)
        if info.alias:
            keys.add(info.alias)
    return frozenset(keys)


def _one_line(err: ValidationError, origin: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
    elif first["type"] == "missing":
        msg = "is required"
    return f"{origin}: {where}: {msg}"


def parse_config(data: Mapping[str, Any], *, origin: str) -> CloudConfig:
    """Validate ``data``; unknown keys are dropped with one warning naming them."""
    known = _known_keys()
    unknown = sorted(str(key) for key in data if str(key) not in known)
    kept = {str(key): value for key, value in data.items() if str(key) in known}
    if unknown:
        kept["warnings"] = (f"{origin}: unknown keys ignored: {', '.join(unknown)}",)
    try:
        return CloudConfig.model_validate(kept)
    except ValidationError as err:
        raise ConfigError(_one_line(err, origin)) from None


def load_config_file(path: str | Path) -> CloudConfig:
    """Read the YAML cloud config; ``XOA_*`` variables are ignored when a file is given."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cloud config {path}: cannot read: {err.strerror or err}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(
            f"cloud config {path}: not valid YAML: {str(err).splitlines()[0]}"
        ) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"cloud config {path}: must be a mapping of keys to values")
    return parse_config(data, origin=f"cloud config {path}")


def load_config_env(environ: Mapping[str, str] | None = None) -> CloudConfig:
    """Build the config from ``XOA_*`` variables (used when no file is given)."""
    env = os.environ if environ is None else environ
    data = {key: env[var] for var, key in _ENV_KEYS.items() if env.get(var, "") != ""}
    if not data:
        raise ConfigError("no --cloud-config given and no XOA_URL in the environment")
    return parse_config(data, origin="environment (XOA_*)")


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> CloudConfig:
    return load_config_file(path) if path else load_config_env(environ)
