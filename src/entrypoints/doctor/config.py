"""The cloud config: read as the CCM reads it, then judged (how XO is reached)."""

from __future__ import annotations

from pathlib import Path

from adapters.config import CloudConfig, ConfigError, load_config
from adapters.logging_setup import register_secret
from entrypoints.doctor.findings import CONFIG, XO_URL, Finding, fail, ok, redact_url, unknown, warn


def config_unreadable(origin: str, message: str) -> Finding:
    return unknown(
        CONFIG,
        origin,
        message,
        "pass --cloud-config with the path of the CCM's cloud config (the file mounted "
        "in its pod), or set XOA_URL and XOA_TOKEN",
    )


def config_invalid(origin: str, message: str) -> Finding:
    """A config that reads but that the CCM would refuse at startup."""
    message = message.removeprefix(f"{origin}: ")
    lowered = message.lower()
    if "unknown key" in lowered:
        fix = "remove or correct the key: keys are case-sensitive (see docs/configuration.md)"
    elif "not both" in lowered or "token is not allowed" in lowered:
        fix = "keep one method: token (an admin's API token, recommended) or username + password"
    elif "yaml" in lowered or "mapping" in lowered:
        fix = "the file must be a YAML mapping, e.g. `url: https://xo.example.org` + `token: ...`"
    elif "url" in lowered:
        fix = "url is XO's base address with its scheme, e.g. https://xo.example.org (no /rest/v0)"
    elif "token" in lowered or "username" in lowered or "password" in lowered:
        fix = "set token (an XO admin's API token), or username and password"
    else:
        fix = "correct the key named in the message (see docs/configuration.md)"
    return fail(CONFIG, origin, message, fix)


def config_ignored(origin: str, message: str) -> Finding:
    """Keys the CCM ignores (as the Go CCM does): most often a typo."""
    return warn(
        CONFIG,
        origin,
        message.removeprefix(f"{origin}: "),
        "remove or correct the key: keys are case-sensitive (see docs/configuration.md)",
    )


def diagnose_config(
    *, origin: str, url: str, insecure: bool, ca_file: str, auth_method: str
) -> list[Finding]:
    """The config parsed: say so, then judge how XO is reached."""
    shown = redact_url(url)
    found = [ok(CONFIG, origin, f"parses ({auth_method} authentication)")]
    if url.lower().startswith("http://"):
        found.append(
            warn(
                XO_URL,
                shown,
                "plain http: the XO credentials cross the network unencrypted",
                "use https:// (with caFile if XO's certificate comes from a private CA)",
            )
        )
    elif insecure:
        found.append(
            warn(
                XO_URL,
                shown,
                "insecure: true: XO's certificate is not verified, anyone on the path "
                "can impersonate XO and read the token",
                "set caFile to the CA that signed XO's certificate and remove insecure",
            )
        )
    else:
        trust = f"caFile {ca_file}" if ca_file else "the system CAs"
        found.append(ok(XO_URL, shown, f"https, certificate verified against {trust}"))
    return found


def read_config(path: str | None) -> tuple[CloudConfig | None, Finding]:
    origin = f"cloud config {path}" if path else "environment (XOA_*)"
    if path:
        try:
            Path(path).read_bytes()
        except OSError as err:
            return None, config_unreadable(origin, f"cannot read: {err.strerror or err}")
    try:
        config = load_config(path)
    except ConfigError as err:
        if not path and "no XOA_URL" in str(err):
            return None, config_unreadable(origin, str(err))
        return None, config_invalid(origin, str(err))
    for secret in (config.token, config.password):
        register_secret(secret.get_secret_value() if secret else None)
    return config, ok(CONFIG, origin, "parses")


def auth_method(config: CloudConfig) -> str:
    return "token" if config.uses_token else "username/password"
