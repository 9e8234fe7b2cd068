"""Page tokens of Search and Browse: an opaque, bounded, signed cursor (the last key returned)
tied to its search or listing.

A token is URL-safe base64 of a version byte, 8 bytes of a hash of the search (exact name,
normalised query words, or the sha256 or pieces root searched for; for Browse, the peer and
folder), the last (peer id, file name) returned, NUL-separated, and an HMAC-SHA256 of all
that, cut to 16 bytes. The next page starts after that key, so paging stays correct while
the index changes. The secret is the
store's: every tracker sharing a store accepts the tokens of the others, and across restarts
of any of them. Tokens come from the network: decode() bounds the size and checks the
signature before using one.
"""

import base64
import binascii
import hashlib
import hmac

from napshare.common import reasons
from napshare.common.address import InvalidAddressError, normal_address
from napshare.common.names import InvalidNameError, check_file_name
from napshare.tracker.errors import InvalidRequestError

MAX_TOKEN_CHARS = 2048  # a peer id and a name of 1,024 UTF-8 bytes fit, base64 and all
SECRET_BYTES = 32
_VERSION = b"\x02"  # 1 was the unsigned token
_SEARCH_HASH_BYTES = 8
_MAC_BYTES = 16
_FIELD = {"field": "page_token"}

Key = tuple[str, str]  # (peer id, file name): the order of search results and listings


def search_id(name: str, words: list[str]) -> bytes:
    """What ties a token to its search: a short hash of the exact name or the query words."""
    return _tie("name\x00" + name if name else "query\x00" + " ".join(words))


def browse_id(peer_id: str, prefix: str) -> bytes:
    """What ties a token to its listing (Browse): the peer and the folder's prefix."""
    return _tie(f"browse\x00{peer_id}\x00{prefix}")


def _tie(what: str) -> bytes:
    return hashlib.blake2b(
        what.encode("utf-8", "surrogatepass"), digest_size=_SEARCH_HASH_BYTES
    ).digest()


def content_search_id(field: str, digest: bytes) -> bytes:
    """What ties a token to a search by content: a short hash of the field and the digest."""
    return hashlib.blake2b(
        field.encode() + b"\x00" + digest, digest_size=_SEARCH_HASH_BYTES
    ).digest()


class PageTokens:
    """Makes and reads the page tokens of one store, signed with its `secret`."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a page token secret needs at least 16 bytes")
        self._secret = secret

    def encode(self, search: bytes, last: Key) -> str:
        """The token of the page that follows `last` in the search `search`."""
        peer_id, name = last
        raw = b"".join(
            (_VERSION, search, peer_id.encode(), b"\x00", name.encode("utf-8", "surrogatepass"))
        )
        return base64.urlsafe_b64encode(raw + self._mac(raw)).decode("ascii")

    def decode(self, token: str, search: bytes) -> Key:
        """The key a token resumes after, or InvalidRequestError if it is not one of ours."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidRequestError(
                f"page_token has {len(token)} characters; a valid one has at most "
                f"{MAX_TOKEN_CHARS}",
                reasons.PAGE_TOKEN_INVALID,
                _FIELD,
            )
        try:
            signed = base64.urlsafe_b64decode(token.encode("ascii"))
        except (UnicodeEncodeError, binascii.Error):
            raise _malformed() from None
        raw, mac = signed[:-_MAC_BYTES], signed[-_MAC_BYTES:]
        head = len(_VERSION) + _SEARCH_HASH_BYTES
        if len(raw) < head or raw[:1] != _VERSION or b"\x00" not in raw[head:]:
            raise _malformed()
        if not hmac.compare_digest(mac, self._mac(raw)):
            raise _malformed()
        if raw[1:head] != search:
            raise InvalidRequestError(
                "page_token belongs to another search; send the same name or query that "
                "returned it, or no token for the first page",
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

    def _mac(self, raw: bytes) -> bytes:
        return hmac.digest(self._secret, raw, "sha256")[:_MAC_BYTES]


def _malformed() -> InvalidRequestError:
    return InvalidRequestError(
        "page_token is malformed; pass the next_page_token of the previous response unchanged",
        reasons.PAGE_TOKEN_INVALID,
        _FIELD,
    )
