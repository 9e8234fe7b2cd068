"""Every ErrorInfo reason is documented next to its RPC in the protos, and in docs/protocol.md."""

import re

import pytest
from napshare.common import reasons

from tests.support.files import ROOT

ALL = sorted(
    value
    for name, value in vars(reasons).items()
    if name.isupper() and name != "DOMAIN" and isinstance(value, str)
)


def test_reasons_are_upper_snake_and_distinct() -> None:
    assert len(ALL) == len(set(ALL)) > 20
    for reason in ALL:
        assert re.fullmatch(r"[A-Z][A-Z0-9]*(_[A-Z0-9]+)*", reason), reason


@pytest.mark.parametrize("reason", ALL)
def test_each_reason_is_documented(reason: str) -> None:
    protos = "".join(p.read_text() for p in (ROOT / "protos").rglob("*.proto"))
    table = (ROOT / "docs" / "protocol.md").read_text()

    assert f"`{reason}`" in protos
    assert f"| `{reason}` |" in table
