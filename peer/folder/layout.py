"""What napshare keeps inside a shared or download folder, by name: one home for these names."""

import hashlib

from napshare.common import names

STATE_DIR = names.STATE_DIR  # napshare's own files; never shared (common.names' rule)
HASHES_FILE = "hashes.json"  # in STATE_DIR: the cached sha256 and pieces root of each file
LAYERS_DIR = "layers"  # in STATE_DIR: `<pieces root>`, the piece layer of a shared file
PARTIAL_DIR = "partial"  # in STATE_DIR: each unfinished download's bytes and note
PART_SUFFIX = ".part"  # in PARTIAL_DIR: `<key>.part`, the bytes of an unfinished download
NOTE_SUFFIX = ".json"  # in PARTIAL_DIR: `<key>.json`: which file, which pieces, from whom
IDENTITY_DIR = "identity"  # in STATE_DIR: this peer's key.pem and cert.pem (owner-only)
KNOWN_TRACKERS_FILE = "known_trackers.json"  # in STATE_DIR: trackers' fingerprints, first seen


def partial_key(name: str) -> str:
    """The stem of the part and note of `name` in PARTIAL_DIR.

    A digest of the name: any valid file name, even 255 bytes long, gives a short fixed name
    that never is, or looks like, one of the user's files.
    """
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:40]
