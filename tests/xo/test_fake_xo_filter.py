"""The fake XO's complex-matcher subset: the grammar XO's ``filter=`` accepts."""

from __future__ import annotations

from typing import Any

import pytest

from entrypoints.testkits.fake_xo import FilterSyntaxError, parse_filter

VM: dict[str, Any] = {
    "name_label": "Web Server (1)",
    "power_state": "Running",
    "tags": ["prod", "k8s-worker"],
    "$pool": "b7569d99-30f8-178a-7d94-801de3e29b5b",
    "CPUs": {"max": 4, "number": 2},
    "addresses": {"0/ipv4/0": "10.1.6.166"},
    "other": {"xo:resource:namespace": "Debian12"},
    "name_description": "",
    "auto_poweron": False,
}


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        pytest.param("", True, id="empty-matches-all"),
        pytest.param("name_label:web", True, id="substring-case-insensitive"),
        pytest.param("name_label:database", False, id="substring-absent"),
        pytest.param("tags:prod", True, id="array-any-element"),
        pytest.param("tags:staging", False, id="array-no-element"),
        pytest.param("power_state:running name_label:web", True, id="space-is-and"),
        pytest.param("power_state:running name_label:db", False, id="and-one-false"),
        pytest.param("|(name_label:db tags:prod)", True, id="or"),
        pytest.param("|(name_label:db tags:dev)", False, id="or-none"),
        pytest.param("!tags:dev", True, id="not"),
        pytest.param("!tags:prod", False, id="not-false"),
        pytest.param("!(tags:prod power_state:running)", False, id="not-group"),
        pytest.param("name_label:/^Web Server \\(1\\)$/", True, id="regex-exact"),
        pytest.param("name_label:/^web server/", False, id="regex-case-sensitive"),
        pytest.param("name_label:/^web server/i", True, id="regex-flag-i"),
        pytest.param("name_label:/^Web$/", False, id="regex-anchored"),
        pytest.param('name_label:"Web Server (1)"', True, id="quoted-string"),
        pytest.param('name_label:"say \\"hi\\""', False, id="quoted-escapes"),
        pytest.param("$pool:b7569d99-30f8-178a-7d94-801de3e29b5b", True, id="dollar-pool"),
        pytest.param("$pool:355ee47d", False, id="dollar-pool-other"),
        pytest.param("CPUs:max:4", True, id="nested-number"),
        pytest.param("CPUs:max:>3", True, id="comparison-gt"),
        pytest.param("CPUs:max:<=3", False, id="comparison-le"),
        pytest.param("addresses:10.1.6", True, id="object-any-value"),
        pytest.param("Debian12", True, id="bare-value-anywhere"),
        pytest.param("name_label:Web*(zz)", False, id="group-after-glob-is-and"),
        pytest.param("name_label:W*r", True, id="glob"),
        pytest.param("name_label?", True, id="truthy"),
        pytest.param("name_description?", False, id="truthy-empty-string"),
        pytest.param("auto_poweron?", False, id="truthy-false"),
        pytest.param("missing:x", False, id="missing-property"),
    ],
)
def test_filters_match_like_xo(text: str, matches: bool) -> None:
    assert parse_filter(text).match(VM) is matches


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("name_label:/unterminated", id="unterminated-regex"),
        pytest.param("|name_label:x", id="or-without-parens"),
        pytest.param("(tags:prod", id="unclosed-group"),
        pytest.param("name_label:", id="property-without-value"),
        pytest.param(":x", id="colon-first"),
        pytest.param("CPUs:max:>x", id="comparison-not-number"),
        pytest.param("name_label:/(/", id="invalid-regex"),
        pytest.param("()", id="empty-group"),
    ],
)
def test_malformed_filters_are_syntax_errors(text: str) -> None:
    with pytest.raises(FilterSyntaxError, match="position"):
        parse_filter(text)
