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


# -- tokenFile / passwordFile -------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        pytest.param(
            "token: t\ntokenFile: {token}\n",
            "token and tokenFile (XOA_TOKEN, XOA_TOKEN_FILE) exclude each other: set one",
            id="token-and-tokenFile",
        ),
        pytest.param(
            "username: u\npassword: p\npasswordFile: {password}\n",
            "password and passwordFile (XOA_PASSWORD, XOA_PASSWORD_FILE) exclude each other",
            id="password-and-passwordFile",
        ),
        pytest.param(
            "tokenFile: {token}\nusername: u\npasswordFile: {password}\n",
            "tokenFile is not allowed when username and passwordFile are set",
            id="tokenFile-and-the-pair",
        ),
        pytest.param(
            "passwordFile: {password}\n",
            "username and passwordFile must both be set",
            id="passwordFile-alone",
        ),
        pytest.param(
            "tokenFile: {missing}\n", "tokenFile: cannot read {missing}: No such file", id="missing"
        ),
        pytest.param("tokenFile: {empty}\n", "tokenFile: {empty} is empty", id="empty"),
        pytest.param(
            "tokenFile: {inner}\n",
            "tokenFile: {inner} contains a control character",
            id="control-character",
        ),
    ],
)
def test_credential_files_are_checked_at_load_with_one_line(
    tmp_path: Path, lines: str, problem: str
) -> None:
    files = {
        "token": _write(tmp_path / "token", f"{SECRET}\n"),
        "password": _write(tmp_path / "password", f"{SECRET}\n"),
        "missing": tmp_path / "missing",
        "empty": _write(tmp_path / "empty", " \n"),
        "inner": _write(tmp_path / "inner", f"{SECRET[:5]}\n{SECRET[5:]}"),
    }
    path = _write(tmp_path / "cloud.yaml", "url: https://xo\n" + lines.format(**files))

    with pytest.raises(ConfigError) as caught:
        load_config_file(path)

    message = str(caught.value)
    assert problem.format(**files) in message and "\n" not in message
    assert SECRET[:5] not in message and SECRET[5:] not in message


@pytest.mark.parametrize(
    ("environ", "token"),
    [
        pytest.param({"XOA_TOKEN_FILE": "{token}"}, True, id="token-file"),
        pytest.param(
            {"XOA_USER": "u", "XOA_PASSWORD_FILE": "{password}"}, False, id="password-file"
        ),
    ],
)
def test_credential_files_from_the_environment(
    tmp_path: Path, environ: dict[str, str], token: bool
) -> None:
    files = {
        "token": _write(tmp_path / "token", SECRET),
        "password": _write(tmp_path / "password", SECRET),
    }
    env = {"XOA_URL": "https://xo", **{k: v.format(**files) for k, v in environ.items()}}

    config = load_config_env(env)

    assert config.uses_token is token
    assert config.credential_files == ((files["token"],) if token else (files["password"],))
    assert config.token is None and config.password is None  # the value stays in its file
    assert SECRET not in repr(config)


def test_a_config_read_from_a_file_knows_it_and_the_environment_does_not(tmp_path: Path) -> None:
    path = _write(tmp_path / "cloud.yaml", "url: https://xo\ntoken: t\n")
    assert load_config_file(path).source == path
    assert load_config_env({"XOA_URL": "https://xo", "XOA_TOKEN": "t"}).source is None
