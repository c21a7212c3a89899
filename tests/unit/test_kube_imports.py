"""What the controller process loads of the ``kubernetes`` package: its configuration
loader, not the generated client (which stays usable by whoever asks for it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(SRC)},
    ).stdout.strip()


def test_loading_a_configuration_leaves_the_generated_client_unimported() -> None:
    out = _run(
        "import sys\n"
        "from adapters.kubernetes import configuration\n"
        "print(sorted(n for n in ('kubernetes.client.api_client', 'kubernetes.client.models',"
        " 'kubernetes.client.api') if n in sys.modules))\n"
        "print(configuration.Configuration.__module__)\n"
    )
    assert out.splitlines() == ["[]", "kubernetes.client.configuration"]


def test_the_generated_client_is_whole_for_whoever_asks_for_it_later() -> None:
    out = _run(
        "from adapters.kubernetes import configuration\n"
        "from kubernetes import client\n"
        "from kubernetes.client import ApiClient, V1Node\n"
        "print(client.CoreV1Api.__name__, V1Node.__name__, ApiClient.__name__)\n"
        "print(client.Configuration is configuration.Configuration)\n"
    )
    assert out.splitlines() == ["CoreV1Api V1Node ApiClient", "True"]


def test_oauthlib_waits_for_an_oidc_refresh_and_is_whole_then() -> None:
    out = _run(
        "import sys\n"
        "from adapters.kubernetes import configuration\n"
        "print('oauthlib.oauth2.rfc6749' in sys.modules)\n"
        "from kubernetes.config import kube_config\n"
        "error = kube_config.oauthlib.oauth2.rfc6749.errors.InvalidClientIdError\n"
        "print(error.__module__, 'oauthlib.oauth2.rfc6749' in sys.modules)\n"
        "session = kube_config.OAuth2Session(client_id='ccm')\n"
        "print(type(session).__module__)\n"
        "import oauthlib.oauth2\n"
        "print(oauthlib.oauth2.WebApplicationClient.__name__)\n"
    )
    assert out.splitlines() == [
        "False",
        "oauthlib.oauth2.rfc6749.errors True",
        "requests_oauthlib.oauth2_session",
        "WebApplicationClient",
    ]
