"""The cloud config: the reference CCM's file (``url``, ``insecure``, ``token``
or ``username``/``password``, ``clientTimeout``) or its ``XOA_*`` environment
variables; beyond it, ``tokenFile``/``passwordFile`` (``XOA_TOKEN_FILE``/
``XOA_PASSWORD_FILE``) name files holding the secret, which the XO adapter
rereads when they change (``adapters.xenorchestra.credentials``).

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

#: ``maxResponseBytes`` by default, 32 MiB: the VM list the CCM asks for (a few fields,
#: about 300 bytes a VM) is 30 MB at 100,000 VMs, and parsing an answer costs about
#: four times its size, so even an answer at the limit keeps the CCM inside the
#: shipped 384 MiB memory limit.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Below this, ordinary answers (a host is 8 KB) would fail: a configuration mistake.
MIN_RESPONSE_BYTES = 64 * 1024


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
    #: The file this config was read from (None: the environment or a caller):
    #: its credentials are reread when it changes (a rotated Secret).
    source: Path | None = Field(default=None, exclude=True, repr=False)

    url: str
    insecure: bool = False
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    token_file: Path | None = Field(default=None, alias="tokenFile")
    password_file: Path | None = Field(default=None, alias="passwordFile")
    client_timeout: float = Field(default=30.0, gt=0, alias="clientTimeout")
    ca_file: Path | None = Field(default=None, alias="caFile")
    max_concurrent_requests: int = Field(default=16, ge=1, alias="maxConcurrentRequests")
    #: Largest XO answer (or event) read, decoded; a larger one fails that request.
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES, ge=MIN_RESPONSE_BYTES, alias="maxResponseBytes"
    )

    # -- beyond the reference (defaults behave exactly like it) ---------------
    match_by_name: bool = Field(default=False, alias="matchByName")
    tag_label_prefix: str = Field(default="k8s.label/", alias="tagLabelPrefix")
    tag_taint_prefix: str = Field(default="k8s.taint/", alias="tagTaintPrefix")
    sync_taints: bool = Field(default=False, alias="syncTaints")
    tag_instance_type_prefix: str = Field(
        default="k8s.instance-type=", alias="tagInstanceTypePrefix"
    )
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
        return check_secret(value)

    @field_validator("token_file", "password_file")
    @classmethod
    def _readable_secret_file(cls, path: Path | None) -> Path | None:
        """Read now so a wrong path fails at startup with one line; the value itself
        is read again by the XO adapter, which follows the file as it changes."""
        if path is not None:
            read_secret_file(path)
        return path

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

    @field_validator("max_response_bytes", mode="before")
    @classmethod
    def _bytes(cls, value: Any) -> Any:
        return parse_bytes(value)

    @model_validator(mode="after")
    def _one_auth_method(self) -> CloudConfig:
        # xenorchestra-k8s-common's rule: a username *and* a password exclude a
        # token; anything short of that pair needs the token (which is then used).
        # A file stands for its value (tokenFile for token, passwordFile for
        # password), never beside it.
        inline_token = bool(self.token and self.token.get_secret_value())
        inline_password = bool(self.password and self.password.get_secret_value())
        if inline_token and self.token_file is not None:
            raise ValueError(
                "token and tokenFile (XOA_TOKEN, XOA_TOKEN_FILE) exclude each other: set one"
            )
        if inline_password and self.password_file is not None:
            raise ValueError(
                "password and passwordFile (XOA_PASSWORD, XOA_PASSWORD_FILE) exclude each "
                "other: set one"
            )
        has_token = inline_token or self.token_file is not None
        has_password = inline_password or self.password_file is not None
        has_pair = bool(self.username) and has_password
        token_key = "tokenFile" if self.token_file is not None else "token"
        password_key = "passwordFile" if self.password_file is not None else "password"
        if has_pair and has_token:
            raise ValueError(f"{token_key} is not allowed when username and {password_key} are set")
        if not has_pair and not has_token:
            if self.username or has_password:
                raise ValueError(
                    f"username and {password_key} must both be set (or set token or tokenFile)"
                )
            raise ValueError("either token or username/password are required for authentication")
        return self

    @property
    def uses_token(self) -> bool:
        """True when XO is authenticated with the token (never with both)."""
        return bool(self.token and self.token.get_secret_value()) or self.token_file is not None

    @property
    def credential_files(self) -> tuple[Path, ...]:
        """The files the XO credentials are read from (rotation follows them)."""
        used = (self.token_file,) if self.uses_token else (self.password_file,)
        return tuple(path for path in used if path is not None)

    def options(self, *, dry_run_deletions: bool = False) -> CCMOptions:
        """The domain's view of the operator's choices."""
        return CCMOptions(
            tags=TagOptions(
                label_prefix=self.tag_label_prefix,
                taint_prefix=self.tag_taint_prefix,
                sync_taints=self.sync_taints,
                instance_type_prefix=self.tag_instance_type_prefix,
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
    "XOA_TOKEN_FILE": "tokenFile",
    "XOA_PASSWORD_FILE": "passwordFile",
}


def check_secret(value: str) -> str:
    """``value`` without surrounding whitespace (a trailing newline from ``echo`` or an
    editor is usual); ValueError for a control character inside, naming nothing of the
    value: sent on, it breaks the HTTP header, and the library's error would quote it."""
    value = value.strip()
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError(
            "contains a control character (a newline or tab inside the value?); "
            "the value is not shown"
        )
    return value


def read_secret_file(path: Path) -> str:
    """The secret a ``tokenFile``/``passwordFile`` holds (blocking: call it off the
    event loop); ValueError with one line naming the file, never its content."""
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"cannot read {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    try:
        value = check_secret(raw)
    except ValueError as err:
        raise ValueError(f"{path} {err}") from None
    if not value:
        raise ValueError(f"{path} is empty")
    return value


_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?(ns|us|µs|μs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


_BYTES = re.compile(r"^\s*(\d+)\s*(Ki|Mi|Gi|KiB|MiB|GiB|k|M|G|kB|MB|GB)?\s*$")
_BYTE_UNITS = {
    None: 1,
    "Ki": 1 << 10,
    "KiB": 1 << 10,
    "Mi": 1 << 20,
    "MiB": 1 << 20,
    "Gi": 1 << 30,
    "GiB": 1 << 30,
    "k": 10**3,
    "kB": 10**3,
    "M": 10**6,
    "MB": 10**6,
    "G": 10**9,
    "GB": 10**9,
}


def parse_bytes(value: Any) -> Any:
    """``maxResponseBytes``: a count of bytes (``33554432``) or a quantity (``32Mi``,
    ``64MiB``, ``100M``); other values are left to the field's own validation."""
    if not isinstance(value, str):
        return value
    match = _BYTES.match(value)
    if match is None:
        raise ValueError(f"{value!r} is neither a number of bytes nor a size like 32Mi or 64MB")
    return int(match.group(1)) * _BYTE_UNITS[match.group(2)]


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
        if name in ("warnings", "source"):
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


def parse_config(
    data: Mapping[str, Any], *, origin: str, source: Path | None = None
) -> CloudConfig:
    """Validate ``data``; unknown keys are dropped with one warning naming them."""
    known = _known_keys()
    unknown = sorted(str(key) for key in data if str(key) not in known)
    kept: dict[str, Any] = {str(key): value for key, value in data.items() if str(key) in known}
    if unknown:
        kept["warnings"] = (f"{origin}: unknown keys ignored: {', '.join(unknown)}",)
    if source is not None:
        kept["source"] = source
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
    return parse_config(data, origin=f"cloud config {path}", source=Path(path))


def load_config_env(environ: Mapping[str, str] | None = None) -> CloudConfig:
    """Build the config from ``XOA_*`` variables (used when no file is given)."""
    env = os.environ if environ is None else environ
    data = {key: env[var] for var, key in _ENV_KEYS.items() if env.get(var, "") != ""}
    if not data:
        raise ConfigError("no --cloud-config given and no XOA_URL in the environment")
    return parse_config(data, origin="environment (XOA_*)")


def load_config(path: str | None, environ: Mapping[str, str] | None = None) -> CloudConfig:
    return load_config_file(path) if path else load_config_env(environ)
