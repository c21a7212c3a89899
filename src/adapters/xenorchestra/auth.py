"""How the adapter authenticates to XO, without ever exposing the secret.

XO takes either the ``authenticationToken`` cookie or HTTP Basic
(``Bearer`` is not supported and both at once is a 400). The secret stays in
a ``SecretStr`` until the HTTP client is built, and this object's repr
names the method only, so it can be logged or shown in a traceback safely.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from pydantic import SecretStr

TOKEN_COOKIE = "authenticationToken"


@dataclass(frozen=True, slots=True)
class Credentials:
    """A token, or a username and password (exactly one of the two)."""

    token: SecretStr | None = field(default=None, repr=False)
    username: str | None = None
    password: SecretStr | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        has_token = self.token is not None and bool(self.token.get_secret_value())
        has_basic = bool(self.username) and self.password is not None
        if has_token == has_basic:
            raise ValueError("credentials need either a token or a username and password")

    @property
    def method(self) -> str:
        return "token" if self.token is not None else "basic"

    def headers(self) -> dict[str, str]:
        """The one header that authenticates every request (cookie or Authorization)."""
        if self.token is not None:
            return {"Cookie": f"{TOKEN_COOKIE}={self.token.get_secret_value()}"}
        if self.username is None or self.password is None:  # excluded by __post_init__
            raise ValueError("no credentials")
        raw = f"{self.username}:{self.password.get_secret_value()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def __repr__(self) -> str:
        who = f", username={self.username!r}" if self.username else ""
        return f"Credentials(method={self.method!r}{who})"

    __str__ = __repr__
