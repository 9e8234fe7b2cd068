"""`make check-locale`: the committed .mo holds exactly the .po's translations, all of them.

The bytes of a compiled catalog depend on the Babel release that wrote it (its header),
so the two are compared as messages, not as files; the header entry is left out.
"""

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

CATALOG = Path(__file__).parents[1] / "common" / "locale" / "pt_BR" / "LC_MESSAGES" / "napshare"


def messages(catalog: Catalog) -> dict[str, str]:
    """Every message of `catalog` but the header, msgid to msgstr (fuzzy ones count as none)."""
    return {str(m.id): "" if m.fuzzy else str(m.string) for m in catalog if m.id}


def po_messages(path: Path) -> dict[str, str]:
    """The messages of the .po at `path`."""
    with path.open("rb") as source:
        return messages(read_po(source))


def mo_messages(path: Path) -> dict[str, str]:
    """The messages of the compiled .mo at `path`."""
    with path.open("rb") as source:
        return messages(read_mo(source))


def main() -> int:
    """Print what differs and return 1, or say the catalog is in order and return 0."""
    po, mo = po_messages(CATALOG.with_suffix(".po")), mo_messages(CATALOG.with_suffix(".mo"))
    problems = [f"untranslated: {msgid!r}" for msgid, text in po.items() if not text]
    problems += [f"not compiled: {msgid!r}" for msgid in po.keys() - mo.keys()]
    problems += [f"compiled but not in the .po: {msgid!r}" for msgid in mo.keys() - po.keys()]
    problems += [f"differs: {k!r}" for k in po.keys() & mo.keys() if po[k] != mo[k]]
    for problem in sorted(problems):
        print(f"{CATALOG.with_suffix('.mo').name}: {problem}", file=sys.stderr)
    if problems:
        print("the compiled catalog is out of date: run 'make locale' and commit the result")
        return 1
    print(f"{CATALOG.with_suffix('.mo').name} matches {CATALOG.with_suffix('.po').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
