"""`make check-locale` judges a catalog by its messages, not by the bytes a Babel release writes."""

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import write_po

from tests.check_locale import CATALOG, marked, problems_of


def catalog(messages: dict[str, str], version: str) -> Catalog:
    """A pt_BR catalog of `messages` whose header names `version` (as tool releases differ)."""
    made = Catalog(locale="pt_BR", project="napshare", version=version)
    for msgid, text in messages.items():
        made.add(msgid, text)
    return made


def write(tmp_path: Path, po: Catalog, mo: Catalog) -> tuple[Path, Path]:
    po_path, mo_path = tmp_path / "napshare.po", tmp_path / "napshare.mo"
    with po_path.open("wb") as out:
        write_po(out, po)
    buffer = io.BytesIO()
    write_mo(buffer, mo)
    mo_path.write_bytes(buffer.getvalue())
    return po_path, mo_path


def test_a_mo_written_by_another_babel_release_is_in_order(tmp_path: Path) -> None:
    messages = {"Peer {peer} dead": "Peer {peer} morto"}
    po, mo = write(tmp_path, catalog(messages, "2.18.0"), catalog(messages, "2.19.0"))
    (tmp_path / "same").mkdir()
    _, same = write(tmp_path / "same", catalog(messages, "2.18.0"), catalog(messages, "2.18.0"))
    assert mo.read_bytes() != same.read_bytes()  # a byte-for-byte check would fail here
    assert problems_of(po, mo, {"Peer {peer} dead": "x.py:1"}) == []


def test_a_changed_missing_or_untranslated_message_is_a_problem(tmp_path: Path) -> None:
    po_messages = {"a": "á", "b": "", "c": "cê"}
    mo_messages = {"a": "à", "c": "cê", "d": "dê"}
    po, mo = write(tmp_path, catalog(po_messages, "1"), catalog(mo_messages, "1"))
    assert problems_of(po, mo, {"a": "x.py:1", "e": "y.py:2"}) == [
        "compiled but not in the .po: 'd'",
        "differs: 'a'",
        "not compiled: 'b'",
        "not in the .po: 'e' (y.py:2)",
        "untranslated: 'b'",
    ]


def test_the_committed_catalog_is_in_order() -> None:
    assert problems_of(CATALOG.with_suffix(".po"), CATALOG.with_suffix(".mo"), marked()) == []
