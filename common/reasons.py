"""The stable ErrorInfo reasons of napshare's errors (AIP-193): one list, no gRPC.

Servers put one in every error's google.rpc.ErrorInfo (domain DOMAIN); clients branch on
them rather than on messages. The protos document which RPC returns which, with its code.
"""

from typing import Protocol, runtime_checkable

DOMAIN = "napshare.v1"


@runtime_checkable
class HasReason(Protocol):
    """A domain error that knows its reason."""

    reason: str


# Requests the protocol never allows (INVALID_ARGUMENT), tracker and peer alike.
NAME_INVALID = "NAME_INVALID"  # not a plain file name
SHA256_INVALID = "SHA256_INVALID"  # not 64 lowercase hex characters
LIMIT_INVALID = "LIMIT_INVALID"  # a negative limit

# Tracker, INVALID_ARGUMENT.
ADDRESS_INVALID = "ADDRESS_INVALID"  # Join's host or port
CALLER_ADDRESS_UNKNOWN = "CALLER_ADDRESS_UNKNOWN"  # Join's host is empty, the caller not an IP
PEER_ID_INVALID = "PEER_ID_INVALID"
SIZE_INVALID = "SIZE_INVALID"  # a negative file size
PIECES_ROOT_INVALID = "PIECES_ROOT_INVALID"  # not "" nor 64 lowercase hex, or set for 0 bytes
NAME_DUPLICATE = "NAME_DUPLICATE"  # a name listed twice in files
NAME_ADDED_AND_REMOVED = "NAME_ADDED_AND_REMOVED"  # in both files and removed_names
TOO_MANY_FILES = "TOO_MANY_FILES"  # more files or removed names in one call than allowed
NAME_OR_QUERY_REQUIRED = "NAME_OR_QUERY_REQUIRED"  # both or neither of name and query
QUERY_EMPTY = "QUERY_EMPTY"  # a query without a word
QUERY_TOO_LONG = "QUERY_TOO_LONG"  # a query of more characters than allowed
PAGE_TOKEN_INVALID = "PAGE_TOKEN_INVALID"  # malformed or too long
PAGE_TOKEN_MISMATCH = "PAGE_TOKEN_MISMATCH"  # from another search
REQUEST_MALFORMED = "REQUEST_MALFORMED"  # bytes that are not the request message
CERTIFICATE_INVALID = "CERTIFICATE_INVALID"  # Join's certificate: not DER X.509 ECDSA, too big
# Tracker, Join's proof of identity.
JOIN_SIGNATURE_INVALID = "JOIN_SIGNATURE_INVALID"  # UNAUTHENTICATED: bad signature or signed_at
JOIN_REPLAYED = "JOIN_REPLAYED"  # UNAUTHENTICATED: a Join whose nonce the tracker took already
# RESOURCE_EXHAUSTED, with RetryInfo: the tracker remembers as many recent Joins as it may.
JOINS_BUSY = "JOINS_BUSY"
# RESOURCE_EXHAUSTED, with RetryInfo: a large Join from an address or identity that sent one
# a moment ago (tracker/largejoins.py).
LARGE_JOIN_TOO_SOON = "LARGE_JOIN_TOO_SOON"
ADDRESS_TAKEN = "ADDRESS_TAKEN"  # PERMISSION_DENIED: a live registration of another identity
# PERMISSION_DENIED: the address check found a TLS server there with another certificate.
ADDRESS_SERVED_BY_ANOTHER = "ADDRESS_SERVED_BY_ANOTHER"
ADDRESS_CHECKS_BUSY = "ADDRESS_CHECKS_BUSY"  # RESOURCE_EXHAUSTED, RetryInfo: checks all busy
# Tracker, the caller's registration.
PEER_NOT_REGISTERED = "PEER_NOT_REGISTERED"  # NOT_FOUND: never joined, left, or lease ran out
TOKEN_MISMATCH = "TOKEN_MISMATCH"  # UNAUTHENTICATED: not the token of the latest Join
FILE_LIMIT_REACHED = "FILE_LIMIT_REACHED"  # RESOURCE_EXHAUSTED: a registration too big
# RESOURCE_EXHAUSTED, with RetryInfo: as many broad searches as allowed are running.
SEARCHES_BUSY = "SEARCHES_BUSY"
# UNAVAILABLE, with RetryInfo: the tracker cannot reach the store that holds its index.
STORE_UNAVAILABLE = "STORE_UNAVAILABLE"
# Tracker, RESOURCE_EXHAUSTED: the limits of tracker.limits (metadata: limit, flag).
ADDRESS_PEER_LIMIT = "ADDRESS_PEER_LIMIT"  # as many registrations from the caller's IP as allowed
ADDRESS_FILE_LIMIT = "ADDRESS_FILE_LIMIT"  # the caller's IP would register too many files
ADDRESS_NAME_BYTES_LIMIT = "ADDRESS_NAME_BYTES_LIMIT"  # ... too many bytes of file names
INDEX_PEER_LIMIT = "INDEX_PEER_LIMIT"  # the tracker holds as many registrations as it may
INDEX_FULL = "INDEX_FULL"  # the tracker holds as many (peer, file) entries as it may
INDEX_NAME_BYTES_LIMIT = "INDEX_NAME_BYTES_LIMIT"  # ... as many bytes of file names as it may

# Tracker, reaching peers behind NATs (Listen, Connect).
LISTENERS_FULL = "LISTENERS_FULL"  # RESOURCE_EXHAUSTED, RetryInfo: Listen streams all taken
LISTEN_REPLACED = "LISTEN_REPLACED"  # ABORTED: a newer Listen of the same peer took over
CONNECT_PATH_INVALID = "CONNECT_PATH_INVALID"  # INVALID_ARGUMENT: Connect without a path
PEER_NOT_LISTENING = "PEER_NOT_LISTENING"  # FAILED_PRECONDITION: no Listen stream, no local address
PEER_ANONYMOUS = "PEER_ANONYMOUS"  # FAILED_PRECONDITION: nothing could check who answers
RELAY_UNAVAILABLE = "RELAY_UNAVAILABLE"  # UNAVAILABLE: the tracker offers no relay
CONNECT_RATE_LIMITED = "CONNECT_RATE_LIMITED"  # RESOURCE_EXHAUSTED, RetryInfo: per caller IP
PEER_DIALS_BUSY = "PEER_DIALS_BUSY"  # RESOURCE_EXHAUSTED, RetryInfo: the peer has dials pending

# Peer (Download).
FILE_NOT_SHARED = "FILE_NOT_SHARED"  # NOT_FOUND
OFFSET_NEGATIVE = "OFFSET_NEGATIVE"  # OUT_OF_RANGE
OFFSET_PAST_END = "OFFSET_PAST_END"  # OUT_OF_RANGE: the file is shorter than the offset
FILE_CHANGED = "FILE_CHANGED"  # FAILED_PRECONDITION: another sha256, or it shrank while sent
UPLOAD_SLOTS_FULL = "UPLOAD_SLOTS_FULL"  # RESOURCE_EXHAUSTED, with RetryInfo
# RESOURCE_EXHAUSTED, with RetryInfo: the caller's IP holds as many slots as one address may.
TOO_MANY_UPLOADS_FOR_ADDRESS = "TOO_MANY_UPLOADS_FOR_ADDRESS"
# RESOURCE_EXHAUSTED, with RetryInfo: read below the minimum rate, so the slot was reclaimed
# (mid-stream), and the caller's IP gets no new slot for a while.
UPLOAD_TOO_SLOW = "UPLOAD_TOO_SLOW"
FOLDER_UNAVAILABLE = "FOLDER_UNAVAILABLE"  # UNAVAILABLE: the shared folder is gone
FILE_UNREADABLE = "FILE_UNREADABLE"  # UNAVAILABLE: reading the file failed
