"""XO's published OpenAPI spec (``@xen-orchestra/rest-api``), as a checker.

The spec is the third-party peer the fake XO and the adapter are held to:
``scripts/fetch-xo-spec`` fetches the package once (pinned version, verified
digest) and ``XOCCM_XO_SPEC`` names its folder. :class:`XOSpec` validates, with
openapi-core over the spec as published:

- a request (method, path, query parameters and their types, body, and the
  one authentication the spec's security schemes allow) against its operation;
- a response (status declared for that operation, body against the schema of
  that status and content type);
- any object against one of the spec's component schemas (required fields too).

One reading rule, :func:`read_as_published`: tsoa, which generates the spec,
writes ``T | null`` as ``nullable: true`` beside an ``allOf``/``anyOf`` without
``type``, which OpenAPI 3.0.3 would read as "not nullable". The spec's own
examples (a halted VM's ``os_version: null``) mean null, so null is read as
allowed there and nowhere else.

Every problem is one line naming what was wrong; an empty list is a pass.
Nothing here tolerates a mismatch: there is no allow-list to add to.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from jsonschema.exceptions import ValidationError, best_match
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from entrypoints.testkits.fake_xo.exchanges import Exchange

ROOT = Path(__file__).resolve().parents[2]
FETCH = ROOT / "scripts" / "fetch-xo-spec"
ENV = "XOCCM_XO_SPEC"
#: Where requests are sent in the spec's world (its ``servers`` entry is ``/rest/v0``).
HOST_URL = "http://xo.invalid"
#: Request headers that do not belong to the operation (transport and content negotiation).
_TRANSPORT_HEADERS = frozenset(
    {
        "host",
        "accept",
        "accept-encoding",
        "connection",
        "content-length",
        "content-type",
        "user-agent",
        "cache-control",
        "cookie",
        "authorization",
    }
)


def read_as_published(node: Any) -> Any:
    """The document with tsoa's typeless ``nullable: true`` read as "or null"."""
    if isinstance(node, list):
        return [read_as_published(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: read_as_published(value) for key, value in node.items()}
    if out.get("nullable") is True and "type" not in out and not out.get("properties"):
        rest = {k: v for k, v in out.items() if k != "nullable"}
        return {"anyOf": [rest, {"nullable": True, "enum": [None]}]}
    return out


class SpecUnavailable(RuntimeError):
    """The spec could not be fetched or read (never a reason to skip in CI)."""


def spec_folder(version: str | None = None) -> Path:
    """``$XOCCM_XO_SPEC`` (the pinned version), else what ``scripts/fetch-xo-spec`` gives."""
    if version is None and os.environ.get(ENV):
        return Path(os.environ[ENV])
    args = [str(FETCH)] + ([version] if version else [])
    done = subprocess.run(args, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise SpecUnavailable(done.stderr.strip() or f"{FETCH.name} failed ({done.returncode})")
    return Path(done.stdout.strip().splitlines()[-1])


def _leaves(err: ValidationError) -> list[ValidationError]:
    if not err.context:
        return [err]
    return [leaf for sub in err.context for leaf in _leaves(sub)]


def _one_line(err: ValidationError) -> str:
    """The most specific reason jsonschema gives (the deepest one inside ``anyOf``
    branches), with the JSON path where it happened."""
    leaves = _leaves(err)
    deepest = max(leaves, key=lambda e: (len(e.absolute_path), e is best_match(leaves)))
    where = "/".join(str(p) for p in deepest.absolute_path) or "(top)"
    return f"at {where}: {deepest.message[:300]}"


def _schema_errors(exc: BaseException) -> list[str]:
    """Every jsonschema error openapi-core wrapped, one line each."""
    seen: BaseException | None = exc
    while seen is not None:
        errors = getattr(seen, "schema_errors", None)
        if errors:
            return [_one_line(e) for e in errors]
        seen = seen.__cause__ or seen.__context__
    return []


def _describe(exc: BaseException) -> str:
    details = _schema_errors(exc)
    if details:
        return f"{type(exc).__name__}: " + "; ".join(details)
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


class XOSpec:
    """One published version of XO's REST API spec, loaded from its folder."""

    def __init__(self, folder: Path) -> None:
        path = folder / "swagger.json"
        try:
            self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise SpecUnavailable(f"cannot read {path}: {err}") from None
        self.folder = folder
        self.version: str = str(self.document.get("info", {}).get("version", "?"))
        self.base: str = str(self.document.get("servers", [{}])[0].get("url", ""))
        self._read = read_as_published(self.document)
        self._api = OpenAPI.from_dict(self._read, config=Config(spec_validator_cls=None))

    def source(self, relative: str) -> str:
        """A compiled source of the same package (``events/event.service.mjs``, under
        ``dist/``): what the server does where the spec says nothing."""
        path = self.folder / "dist" / relative
        try:
            return path.read_text(encoding="utf-8")
        except OSError as err:
            raise SpecUnavailable(f"XO {self.version} has no dist/{relative}: {err}") from None

    @cached_property
    def _registry(self) -> Registry[Any]:
        resource: Resource[Any] = Resource.from_contents(self._read, default_specification=DRAFT4)
        return Registry().with_resource("spec", resource)

    def schema(self, name: str) -> dict[str, Any]:
        schemas: dict[str, Any] = self.document["components"]["schemas"]
        if name not in schemas:
            raise KeyError(f"XO {self.version} has no schema {name}")
        found: dict[str, Any] = schemas[name]
        return found

    def operation(self, method: str, template: str) -> dict[str, Any]:
        """The operation at a spec path template (``/vms/{id}``), or KeyError."""
        item = self.document["paths"].get(template)
        if item is None or method.lower() not in item:
            raise KeyError(f"XO {self.version} has no operation {method.upper()} {template}")
        found: dict[str, Any] = item[method.lower()]
        return found

    # -- objects -----------------------------------------------------------
    def object_problems(self, schema_name: str, instance: Any) -> list[str]:
        """``instance`` against ``#/components/schemas/<schema_name>``, and no key
        the schema does not declare (:meth:`undeclared_keys`)."""
        self.schema(schema_name)
        schema = {"$ref": f"#/components/schemas/{schema_name}"}
        validator = OAS30Validator(
            {"$ref": f"spec#/components/schemas/{schema_name}"}, registry=self._registry
        )
        problems = sorted(_one_line(e) for e in validator.iter_errors(instance))
        return problems + self.undeclared_keys(schema, instance)

    # -- keys the spec does not declare ----------------------------------------
    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].removeprefix("#/components/schemas/")
            schema = self._read["components"]["schemas"][name]
        return schema

    def _declared(self, schema: dict[str, Any]) -> set[str] | None:
        """The keys an object of this schema may have; None: any (a record, a map)."""
        schema = self._resolve(schema)
        if "allOf" in schema:
            keys: set[str] = set()
            for branch in schema["allOf"]:
                declared = self._declared(branch)
                if declared is None:
                    return None
                keys |= declared
            return keys
        if schema.get("properties") and not schema.get("additionalProperties"):
            return set(schema["properties"])
        return None

    def _valid(self, schema: dict[str, Any], instance: Any) -> bool:
        """Does ``instance`` match this (sub)schema? Its ``#/components`` refs resolve
        against the spec's components, carried beside it in the root."""
        rooted = {**schema, "components": self._read["components"]}
        return bool(OAS30Validator(rooted).is_valid(instance))

    def undeclared_keys(self, schema: dict[str, Any], instance: Any, where: str = "") -> list[str]:
        """Keys of ``instance`` (and of the objects of an array) that its schema does
        not declare. OpenAPI allows extra keys, but XO's schemas are generated from
        the types of the objects it sends: a key outside them is a renamed or
        invented field, which the fake must not serve and the adapter must not need.
        """
        schema = self._resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                for branch in schema[key]:
                    if self._valid(branch, instance):
                        return self.undeclared_keys(branch, instance, where)
                return []
        if isinstance(instance, list) and "items" in schema:
            problems: list[str] = []
            for i, item in enumerate(instance):
                problems += self.undeclared_keys(schema["items"], item, f"{where}{i}/")
            return problems
        declared = self._declared(schema)
        if not isinstance(instance, dict) or declared is None:
            return []
        return [
            f"at {where or '(top)'}: {key!r} is not a property of the spec's schema"
            for key in sorted(set(instance) - declared)
        ]

    # -- requests and responses ----------------------------------------------
    def _template_of(self, path: str) -> str:
        """The spec path template a concrete path falls under (``/vms/{id}``, not
        ``/vms/{id}.{format}`` for an id without a dot); literal segments win."""
        relative = path.removeprefix(self.base)
        best: tuple[int, str] | None = None
        for template in self.document["paths"]:
            pattern = re.sub(r"\\{[^}]+\\}", "[^/.]+", re.escape(template))
            if re.fullmatch(pattern, relative):
                literal = len(re.sub(r"{[^}]+}", "", template))
                if best is None or literal > best[0]:
                    best = (literal, template)
        if best is None:
            raise KeyError(f"XO {self.version} has no path for {path}")
        return best[1]

    def _mock_request(self, exchange: Exchange) -> MockRequest:
        headers = dict(exchange.headers)
        content_type = headers.get("Content-Type", "application/json").split(";")[0]
        return MockRequest(
            HOST_URL,
            exchange.method.lower(),
            exchange.path,
            args=dict(exchange.query),
            headers={k: v for k, v in headers.items() if k.lower() not in _TRANSPORT_HEADERS},
            data=exchange.request_body or None,
            content_type=content_type,
        )

    def request_problems(self, exchange: Exchange) -> list[str]:
        """The request against its operation: path, method, parameters, body, auth."""
        what = f"{exchange.method} {exchange.path}"
        try:
            template = self._template_of(exchange.path)
            operation = self.operation(exchange.method, template)
        except KeyError as err:
            return [f"{what}: {err.args[0]}"]
        problems: list[str] = []
        declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
        names = [name for name, _ in exchange.query]
        problems += [
            f"{what}: query parameter {n!r} is not one of {template}'s {sorted(declared)}"
            for n in names
            if n not in declared
        ]
        problems += [
            f"{what}: query parameter {n!r} sent twice" for n in set(names) if names.count(n) > 1
        ]
        if operation.get("security") != [{"none": []}]:
            problems += self._auth_problems(what, exchange.headers)
        try:
            self._api.validate_request(self._mock_request(exchange))
        except Exception as err:  # openapi-core raises one class per kind of problem
            problems.append(f"{what}: {_describe(err)}")
        return problems

    def _auth_problems(self, what: str, headers: Iterable[tuple[str, str]]) -> list[str]:
        """Exactly one of the spec's security schemes: the token cookie or HTTP basic."""
        schemes = self.document["components"].get("securitySchemes", {})
        cookie_names = {s["name"] for s in schemes.values() if s.get("in") == "cookie"}
        basic = any(s.get("scheme") == "basic" for s in schemes.values())
        found = []
        for name, value in headers:
            if name.lower() == "cookie":
                cookies = {c.split("=", 1)[0].strip() for c in value.split(";")}
                found += [f"cookie {c}" for c in sorted(cookies & cookie_names)]
            elif name.lower() == "authorization":
                if basic and value.startswith("Basic "):
                    found.append("basic")
                else:
                    return [
                        f"{what}: Authorization {value.split(' ')[0]!r} is no scheme of the spec"
                    ]
        if len(found) != 1:
            return [f"{what}: expected one of the spec's security schemes, got {found or 'none'}"]
        return []

    def response_problems(self, exchange: Exchange) -> list[str]:
        """The answer against the operation: a declared status, a body of its schema.

        One answer comes from a middleware before the operation runs, so the spec
        cannot declare it: ``/users/me`` redirects (307) to the user's own path. It is
        judged by the package's own source instead (``users/user.middleware.mjs``).
        """
        what = f"{exchange.method} {exchange.path} -> {exchange.status}"
        if exchange.path == f"{self.base}/users/me":
            alias = "res.redirect(307, originalUrl.replace(meAliasRegex"
            if exchange.status == 307 and alias in self.source("users/user.middleware.mjs"):
                return []
            return [f"{what}: XO's /users/me alias answers 307 ({alias}...)"]
        try:
            operation = self.operation(exchange.method, self._template_of(exchange.path))
        except KeyError as err:
            return [f"{what}: {err.args[0]}"]
        if str(exchange.status) not in operation.get("responses", {}):
            declared = sorted(operation.get("responses", {}))
            return [f"{what}: status {exchange.status} is not declared (only {declared})"]
        if exchange.body is None:  # a stream: only its status and type are known here
            return []
        response = MockResponse(
            exchange.body, status_code=exchange.status, content_type=exchange.content_type
        )
        try:
            self._api.validate_response(self._mock_request(exchange), response)
        except Exception as err:
            return [f"{what}: {_describe(err)}"]
        return [f"{what}: {p}" for p in self._undeclared_in(operation, exchange)]

    def _undeclared_in(self, operation: dict[str, Any], exchange: Exchange) -> list[str]:
        declared = operation["responses"][str(exchange.status)].get("content", {})
        media = declared.get(exchange.content_type.split(";")[0], {})
        if "schema" not in media or exchange.body is None:
            return []
        return self.undeclared_keys(media["schema"], json.loads(exchange.body))

    def exchange_problems(self, exchanges: Sequence[Exchange]) -> list[str]:
        problems: list[str] = []
        for exchange in exchanges:
            problems += self.request_problems(exchange)
            problems += self.response_problems(exchange)
        return problems


def listener_types(spec: XOSpec) -> frozenset[str]:
    """The collections ``POST /events/{id}/subscriptions`` accepts in this version."""
    return frozenset(spec.schema("XoListenerType")["enum"])
