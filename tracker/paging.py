"""Search page tokens: an opaque, bounded cursor (the last key returned) tied to its search.

A token is URL-safe base64 of a version byte, 8 bytes of a hash of the search (exact name
or normalised query words) and the last (peer id, file name) returned, NUL-separated. The
next page starts after that key, so paging stays correct while the index changes. Tokens
come from the network: decode() checks every part and bounds the size before using one.
"""

import base64
import binascii
import hashlib

from napshare.common import reasons
from napshare.common.address import InvalidAddressError, normal_address
from napshare.common.names import InvalidNameError, check_file_name
from napshare.tracker.errors import InvalidRequestError

MAX_TOKEN_CHARS = 1024
_VERSION = b"\x01"
_SEARCH_HASH_BYTES = 8
_FIELD = {"field": "page_token"}

Key = tuple[str, str]  # (peer id, file name): the order of search results


def search_id(name: str, words: list[str]) -> bytes:
    """What ties a token to its search: a short hash of the exact name or the query words."""
    what = "name\x00" + name if name else "query\x00" + " ".join(words)
    return hashlib.blake2b(
        what.encode("utf-8", "surrogatepass"), digest_size=_SEARCH_HASH_BYTES
    ).digest()


def encode(search: bytes, last: Key) -> str:
    """The token of the page that follows `last` in the search `search`."""
    peer_id, name = last
    raw = b"".join(
        (_VERSION, search, peer_id.encode(), b"\x00", name.encode("utf-8", "surrogatepass"))
    )
    return base64.urlsafe_b64encode(raw).decode("ascii")


def decode(token: str, search: bytes) -> Key:
    """The key a token resumes after, or InvalidRequestError if it is not one of ours."""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidRequestError(
            f"page_token has {len(token)} characters; a valid one has at most {MAX_TOKEN_CHARS}",
            reasons.PAGE_TOKEN_INVALID,
            _FIELD,
        )
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
    except (UnicodeEncodeError, binascii.Error):
        raise _malformed() from None
    head = len(_VERSION) + _SEARCH_HASH_BYTES
    if len(raw) < head or raw[:1] != _VERSION or b"\x00" not in raw[head:]:
        raise _malformed()
    if raw[1:head] != search:
        raise InvalidRequestError(
            "page_token belongs to another search; send the same name or query that returned "
            "it, or no token for the first page",
            reasons.PAGE_TOKEN_MISMATCH,
            _FIELD,
        )
    peer_bytes, _, name_bytes = raw[head:].partition(b"\x00")
    try:
        peer_id = peer_bytes.decode("ascii")
        name = check_file_name(name_bytes.decode("utf-8"))
        if normal_address(peer_id) != peer_id:
            raise _malformed()
    except (UnicodeDecodeError, InvalidNameError, InvalidAddressError):
        raise _malformed() from None
    return peer_id, name


def _malformed() -> InvalidRequestError:
    return InvalidRequestError(
        "page_token is malformed; pass the next_page_token of the previous response unchanged",
        reasons.PAGE_TOKEN_INVALID,
        _FIELD,
    )
