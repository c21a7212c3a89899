"""An httpx transport that keeps each exchange, for XOs the tests do not run.

The fake XO records its own exchanges; a real XO (``XO_URL``) does not, so the
adapter is given this transport instead: the same :class:`Exchange` records,
checked by the same spec checker. Event streams keep their status only (their
body never ends).
"""

from __future__ import annotations

import ssl

import httpx

from entrypoints.testkits.fake_xo.exchanges import Exchange


class RecordingTransport(httpx.AsyncBaseTransport):
    """The network, plus a list of what was asked and answered."""

    def __init__(self, *, verify: ssl.SSLContext | bool) -> None:
        self._inner = httpx.AsyncHTTPTransport(verify=verify)
        self.exchanges: list[Exchange] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        content_type = response.headers.get("content-type", "").split(";")[0]
        body: bytes | None = None
        if content_type != "text/event-stream":
            body = await response.aread()  # decoded (gzip undone): what the adapter reads
            headers = [
                (k, v)
                for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length")
            ]
            # A stream, not ``content=``: the adapter reads answers as they arrive (and
            # bounds them), and httpx marks a response built from content as consumed.
            response = httpx.Response(
                response.status_code,
                headers=headers,
                stream=httpx.ByteStream(body),
                extensions=response.extensions,
            )
        self.exchanges.append(
            Exchange(
                method=request.method,
                path=request.url.path,
                query=tuple(request.url.params.multi_items()),
                headers=tuple(request.headers.items()),
                request_body=request.content,
                status=response.status_code,
                content_type=content_type,
                body=body,
            )
        )
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
