"""What makes a request to the tracker valid: its files, removed names, peer id, search and
listing (Browse).

Every backend of the index (tracker/store) gets requests already checked here, so a bad
name, size, sha256, pieces root, address or search is refused the same way, with the same
message and reason, whichever store holds the index.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from napshare.common import reasons
from napshare.common.address import (
    InvalidAddressError,
    check_ip_host,
    check_port,
    format_address,
    normal_address,
)
from napshare.common.identity import JoinedFile
from napshare.common.names import InvalidNameError, check_file_name, check_folder, check_sha256
from napshare.common.protocol import MAX_PAGE_SIZE
from napshare.tracker import paging
from napshare.tracker.errors import InvalidRequestError
from napshare.tracker.keywords import query_words

MAX_FILES = 50_000  # files in one registration, and in one call
DEFAULT_LIMIT = 100
MAX_LIMIT = MAX_PAGE_SIZE
MAX_QUERY_CHARS = 1024
_HEX_ROOT = re.compile(r"[0-9a-f]{64}")
CONTENT_SHA256 = "sha256"  # a search by the SHA-256 of a file's bytes
CONTENT_ROOT = "pieces_root"  # a search by a file's pieces root


# A file as a peer announces it (a protobuf FileInfo, or a FileEntry): what a Join's
# signature covers, so one shape for both.
FileLike = JoinedFile


class CheckedFiles(NamedTuple):
    """The files of one call, checked: names (distinct), sizes, raw digests and raw pieces
    roots (b"": none), position by position.
    """

    names: list[str]
    sizes: list[int]
    digests: list[bytes]
    roots: list[bytes]


class SearchQuery(NamedTuple):
    """A checked Search: an exact `name`, the lowercased `words` of a query, or the raw bytes
    of a file's `sha256` or `pieces_root` (exactly one is set), the page size, what ties its
    tokens to it, and the raw page token (decoded by the store, which signs).
    """

    name: str
    words: list[str]
    limit: int
    search: bytes
    page_token: str
    sha256: bytes = b""
    pieces_root: bytes = b""

    @property
    def content(self) -> tuple[str, bytes] | None:
        """("sha256" or "pieces_root", the raw digest) for a search by content; else None."""
        if self.sha256:
            return CONTENT_SHA256, self.sha256
        if self.pieces_root:
            return CONTENT_ROOT, self.pieces_root
        return None


class BrowseQuery(NamedTuple):
    """A checked Browse: the peer (its id in the one form Join issues), the prefix of the
    names under the folder ("" for every file), the page size, what ties its tokens to it,
    and the raw page token.
    """

    peer_id: str
    prefix: str
    limit: int
    search: bytes
    page_token: str


def peer_id_of(host: str, port: int) -> str:
    """The peer id a Join for host:port registers, or InvalidRequestError: the host as
    canonical IP text (every spelling of an address is one peer; a name is refused, since two
    names of one machine would be two peers).
    """
    try:
        return format_address(check_ip_host(host), check_port(port))
    except InvalidAddressError as error:
        raise InvalidRequestError(str(error), reasons.ADDRESS_INVALID) from None


def normal_peer_id(peer_id: str) -> str:
    """`peer_id` in the one form Join issues, or InvalidRequestError."""
    try:
        return normal_address(peer_id)
    except InvalidAddressError as error:
        raise InvalidRequestError(
            f"peer_id: {error}", reasons.PEER_ID_INVALID, {"field": "peer_id"}
        ) from None


def check_files(files: Sequence[FileLike], max_files: int) -> CheckedFiles:
    """The files' names, sizes, digests and roots, or InvalidRequestError naming a bad one."""
    if len(files) > max_files:
        raise InvalidRequestError(
            f"{len(files)} files in one call; the limit is {max_files}",
            reasons.TOO_MANY_FILES,
            {"field": "files", "limit": str(max_files)},
        )
    names = [file.name for file in files]
    sizes = [file.size for file in files]
    digests = [file.sha256 for file in files]
    roots = [file.pieces_root for file in files]
    position = 0
    try:
        for position, name in enumerate(names):  # noqa: B007 - the error names it
            check_file_name(name)
        for position, digest in enumerate(digests):  # noqa: B007
            check_sha256(digest)
    except InvalidNameError as error:
        part = "name" if error.reason == reasons.NAME_INVALID else "sha256"
        raise InvalidRequestError(
            f"files[{position}]: {error}", error.reason, {"field": f"files[{position}].{part}"}
        ) from None
    if sizes and min(sizes) < 0:
        position = next(at for at, size in enumerate(sizes) if size < 0)
        raise InvalidRequestError(
            f"files[{position}]: size {sizes[position]} is negative",
            reasons.SIZE_INVALID,
            {"field": f"files[{position}].size"},
        )
    if len(set(names)) < len(names):
        seen: set[str] = set()
        for position, name in enumerate(names):
            if name in seen:
                raise InvalidRequestError(
                    f"files[{position}]: {name!r} is listed twice",
                    reasons.NAME_DUPLICATE,
                    {"field": f"files[{position}].name"},
                )
            seen.add(name)
    for position, (size, root) in enumerate(zip(sizes, roots, strict=True)):
        if root and (size == 0 or not _HEX_ROOT.fullmatch(root)):
            raise InvalidRequestError(
                f"files[{position}]: pieces_root must be empty or 64 lowercase hex "
                "characters, and empty for an empty file",
                reasons.PIECES_ROOT_INVALID,
                {"field": f"files[{position}].pieces_root"},
            )
    return CheckedFiles(
        names,
        sizes,
        [bytes.fromhex(digest) for digest in digests],
        [bytes.fromhex(root) for root in roots],
    )


def check_removed(names: Sequence[str], added: list[str], max_files: int) -> set[str]:
    """The distinct removed names, or InvalidRequestError naming a bad one."""
    if len(names) > max_files:
        raise InvalidRequestError(
            f"{len(names)} removed names in one call; the limit is {max_files}",
            reasons.TOO_MANY_FILES,
            {"field": "removed_names", "limit": str(max_files)},
        )
    for position, name in enumerate(names):
        check_name(name, f"removed_names[{position}]")
    removed = set(names)
    if not removed.isdisjoint(added):
        both = min(removed.intersection(added))
        raise InvalidRequestError(
            f"{both!r} is in both files and removed_names; list it in one of them",
            reasons.NAME_ADDED_AND_REMOVED,
        )
    return removed


def check_name(name: str, where: str) -> str:
    """`name` if it is a valid file name, else InvalidRequestError naming the field `where`."""
    try:
        return check_file_name(name)
    except InvalidNameError as error:
        raise InvalidRequestError(f"{where}: {error}", error.reason, {"field": where}) from None


def check_search(
    name: str,
    query: str,
    limit: int,
    page_token: str,
    *,
    sha256: str = "",
    pieces_root: str = "",
) -> SearchQuery:
    """A Search for an exact `name`, every keyword of `query`, or the files whose bytes have
    this `sha256` or `pieces_root` (64 hex characters, either case), exactly one of them set,
    checked.

    `limit` is the page size (0: DEFAULT_LIMIT; at most MAX_LIMIT).
    """
    if sum(map(bool, (name, query, sha256, pieces_root))) != 1:
        raise InvalidRequestError(
            "set exactly one of name (an exact file name), query (keywords), sha256 and "
            "pieces_root (a file's bytes)",
            reasons.NAME_OR_QUERY_REQUIRED,
        )
    if limit < 0:
        raise InvalidRequestError(f"limit {limit} is negative", reasons.LIMIT_INVALID)
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequestError(
            f"query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}",
            reasons.QUERY_TOO_LONG,
            {"field": "query", "limit": str(MAX_QUERY_CHARS)},
        )
    limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
    if sha256 or pieces_root:
        field = CONTENT_SHA256 if sha256 else CONTENT_ROOT
        digest = _content_digest(sha256 or pieces_root, field)
        search = paging.content_search_id(field, digest)
        if sha256:
            return SearchQuery("", [], limit, search, page_token, sha256=digest)
        return SearchQuery("", [], limit, search, page_token, pieces_root=digest)
    words = query_words(query)
    if name:
        check_name(name, "name")
    elif not words:
        raise InvalidRequestError(
            "query has no word in it; give at least one keyword", reasons.QUERY_EMPTY
        )
    return SearchQuery(name, words, limit, paging.search_id(name, words), page_token)


def _content_digest(text: str, field: str) -> bytes:
    """The raw 32 bytes of a sha256 or pieces root searched for, or InvalidRequestError."""
    lowered = text.lower()
    if not _HEX_ROOT.fullmatch(lowered):
        reason = reasons.SHA256_INVALID if field == CONTENT_SHA256 else reasons.PIECES_ROOT_INVALID
        raise InvalidRequestError(
            f"{field} {text[:80]!r} must be 64 hex characters",
            reason,
            {"field": field},
        )
    return bytes.fromhex(lowered)


def check_browse(peer_id: str, folder: str, limit: int, page_token: str) -> BrowseQuery:
    """A Browse of `peer_id`'s files under `folder` ("": all of them), checked.

    `limit` is the page size (0: DEFAULT_LIMIT; at most MAX_LIMIT).
    """
    peer_id = normal_peer_id(peer_id)
    try:
        prefix = check_folder(folder)
    except InvalidNameError as error:
        raise InvalidRequestError(f"folder: {error}", error.reason, {"field": "folder"}) from None
    if limit < 0:
        raise InvalidRequestError(f"limit {limit} is negative", reasons.LIMIT_INVALID)
    limit = min(limit or DEFAULT_LIMIT, MAX_LIMIT)
    return BrowseQuery(peer_id, prefix, limit, paging.browse_id(peer_id, prefix), page_token)
