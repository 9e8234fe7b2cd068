"""Byte counts as people read them (binary units), one way for every line the peer prints."""


def human(count: float) -> str:
    """A byte count in binary units: `512 B`, `3.5 MiB`, `1.0 GiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if abs(count) < 1024 or unit == "EiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")
