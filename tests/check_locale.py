"""`make check-locale`: every message the code marks is translated, and the .mo is up to date.

Messages are marked with `tr(...)` or `N_(...)` (napshare.common.console). The bytes of a
compiled catalog depend on the Babel release that wrote it (its header), so the .po and the
.mo are compared as messages, not as files; the header entry is left out.
"""

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).parents[1]
CATALOG = ROOT / "common" / "locale" / "pt_BR" / "LC_MESSAGES" / "napshare"
SOURCES = ("common", "tracker", "peer")
KEYWORDS = {"tr": None, "N_": None}


def marked() -> dict[str, str]:
    """Every message marked in the sources, with the first place that marks it."""
    found: dict[str, str] = {}
    for folder in SOURCES:
        for path, line, message, _comments, _context in extract_from_dir(
            ROOT / folder, [("**.py", "python")], keywords=KEYWORDS
        ):
            if isinstance(message, str):
                found.setdefault(message, f"{folder}/{path}:{line}")
    return found


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


def problems_of(po_path: Path, mo_path: Path, wanted: dict[str, str]) -> list[str]:
    """What is wrong with the .po and .mo, given the messages `wanted` (msgid to a place)."""
    po, mo = po_messages(po_path), mo_messages(mo_path)
    problems = [f"untranslated: {msgid!r}" for msgid, text in po.items() if not text]
    problems += [f"not in the .po: {k!r} ({where})" for k, where in wanted.items() if k not in po]
    problems += [f"not compiled: {msgid!r}" for msgid in po.keys() - mo.keys()]
    problems += [f"compiled but not in the .po: {msgid!r}" for msgid in mo.keys() - po.keys()]
    problems += [f"differs: {k!r}" for k in po.keys() & mo.keys() if po[k] != mo[k]]
    return sorted(problems)


def main() -> int:
    """Print what differs and return 1, or say the catalog is in order and return 0."""
    problems = problems_of(CATALOG.with_suffix(".po"), CATALOG.with_suffix(".mo"), marked())
    for problem in problems:
        print(f"{CATALOG.with_suffix('.mo').name}: {problem}", file=sys.stderr)
    if problems:
        print(
            "the catalog is out of date: run 'make locale', translate what it added to the "
            ".po, run 'make locale' again and commit both files"
        )
        return 1
    print(f"{CATALOG.with_suffix('.mo').name} matches {CATALOG.with_suffix('.po').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
