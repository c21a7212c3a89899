"""Secrets at load: surrounding whitespace dropped, inner control characters refused
naming the key and never the value, escaped forms masked, HTTP debug logs off."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from adapters.config import ConfigError, load_config_env, load_config_file
from adapters.logging_setup import configure_logging, mask_secrets, register_secret

SECRET = "s3cr3t-t0k3n-f00d"


@pytest.mark.parametrize("raw", [f"{SECRET}\n", f"  {SECRET}\r\n", f"\t{SECRET} "])
def test_surrounding_whitespace_is_stripped_from_the_token(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "cloud.yaml"
    path.write_text(f"url: https://xo.example\ntoken: {raw!r}\n".replace("'", '"'))

    config = load_config_file(path)

    assert config.token is not None and config.token.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        pytest.param({"XOA_TOKEN": f"{SECRET[:5]}\n{SECRET[5:]}"}, "token", id="token-newline"),
        pytest.param({"XOA_TOKEN": f"{SECRET}\x00x"}, "token", id="token-nul"),
        pytest.param(
            {"XOA_USER": "admin", "XOA_PASSWORD": f"{SECRET}\rx"}, "password", id="password-cr"
        ),
    ],
)
def test_an_inner_control_character_is_refused_naming_the_key_not_the_value(
    environ: dict[str, str], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config_env({"XOA_URL": "https://xo.example", **environ})

    message = str(caught.value)
    assert f": {key}: contains a control character" in message
    assert "\n" not in message
    assert SECRET[:5] not in message and SECRET[5:] not in message


def test_escaped_forms_of_a_secret_are_masked() -> None:
    register_secret(f"{SECRET}\n")

    for text in (
        f"Illegal header value b'authenticationToken={SECRET}\\n'",
        f'{{"token": "{SECRET}\\n"}}',
        f"url?token={SECRET}%0A",
        f"plain {SECRET} stripped",
    ):
        assert SECRET not in mask_secrets(text), text


@pytest.mark.parametrize("verbosity", [0, 4, 8, 10])
def test_http_library_debug_logging_is_off_at_every_verbosity(verbosity: int) -> None:
    configure_logging(verbosity=verbosity, sink=lambda _m: None)
    try:
        for name in ("httpx", "httpcore", "httpcore.http11", "httpcore.connection"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO), name
    finally:
        configure_logging(verbosity=2)
