"""What can go wrong on the client side, and the one place that maps gRPC errors to it.

Errors are told apart by their ErrorInfo reason; the status code decides only for servers
that send no napshare details.
"""

import enum
from typing import ClassVar

import grpc
from napshare.common import error_details, reasons
from napshare.common.console import tr
from napshare.common.exitcodes import ExitCode
from napshare.common.protocol import PEER_SERVICE, TRACKER_SERVICE
from napshare.common.tls import not_pinned, not_tls


class ClientError(Exception):
    """A failure the user can act on; `exit_code` is what the CLI exits with."""

    exit_code: ClassVar[ExitCode] = ExitCode.OTHER


class TrackerUnreachableError(ClientError):
    """The tracker did not answer."""

    exit_code = ExitCode.TRACKER_UNREACHABLE


class TrackerIdentityError(ClientError):
    """The tracker's certificate is not the pinned one, or it serves no TLS when TLS is asked."""

    exit_code = ExitCode.TRACKER_IDENTITY


class PeerIdentityError(ClientError):
    """Every peer that answered showed a certificate other than the one the tracker lists."""

    exit_code = ExitCode.PEER_IDENTITY


class IdentityFilesError(ClientError):
    """This peer's own identity files are unreadable or corrupt."""

    exit_code = ExitCode.IDENTITY_FILES


class TrackerRejectedError(ClientError):
    """The tracker answered with an error about the request itself."""


class TrackerBusyError(ClientError):
    """The tracker asked this peer to come back later (its address checks, or its record of
    recent Joins, are full; or this peer changed too much too often): `retry_after` seconds.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LeaseLostError(ClientError):
    """The tracker no longer knows this peer (it restarted, or the lease ran out): Join again."""


class NotATrackerError(ClientError):
    """The address answers gRPC but does not serve the tracker service (a peer, say)."""


class ConnectRefusedError(ClientError):
    """The tracker could not connect this peer to another: `reason` (common.reasons) says why,
    `retry_after` when it may be asked again.
    """

    def __init__(
        self, message: str, reason: str, retry_after: float | None = None, details: str = ""
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
        self.details = details or message  # the tracker's own words


class NotFoundError(ClientError):
    """No peer shares the file."""

    exit_code = ExitCode.NOT_FOUND


class NoPeerReachableError(ClientError):
    """Peers share the file, but none of them delivered it in time."""

    exit_code = ExitCode.NO_PEER_REACHABLE


class VerificationFailedError(ClientError):
    """Every source's bytes failed the sha256 check."""

    exit_code = ExitCode.VERIFICATION_FAILED


class FileTooLargeError(ClientError):
    """Every version of the file on offer is listed larger than this peer downloads."""


class FolderProblemError(ClientError):
    """The target folder is missing, unusable, or holds something in the way."""

    exit_code = ExitCode.FOLDER


class DiskFullError(FolderProblemError):
    """The folder's file system has no room left; the bytes written so far are kept to resume."""

    exit_code = ExitCode.DISK_FULL


class DownloadInProgressError(ClientError):
    """Another process holds the lock on the file's part: it is downloading it right now."""

    exit_code = ExitCode.DOWNLOAD_IN_PROGRESS


class AlreadyExistsError(ClientError):
    """The complete file is already in the folder and `--force` was not given."""

    exit_code = ExitCode.EXISTS


class CancelledError(ClientError):
    """The download was asked to stop; its part stays for a later resume."""

    exit_code = ExitCode.INTERRUPTED


class PeerFault(enum.Enum):
    """Why one stream from one peer stopped, which decides what the download does next."""

    REFUSED = "refused"  # busy: try the next peer, come back later
    GONE = "gone"  # unreachable or died: try the next peer, come back later
    # Alive at the tracker, but no path (direct, local, reverse, relay) reached it.
    UNREACHABLE = "unreachable"
    STALLED = "stalled"  # no data for too long: as GONE
    CHANGED = "changed"  # its file is not the one we are fetching: drop it for this file
    MISSING = "missing"  # it does not share the file (any more): drop it for this file
    BROKEN = "broken"  # it broke the protocol: never use it again for this file
    IMPOSTOR = "impostor"  # another certificate than the tracker lists: never use it again


class PeerError(Exception):
    """One stream from one peer failed; `fault` says how.

    `retry_after` is the seconds the peer asked us to wait before asking it again (RetryInfo).
    `reached` is False when no connection to the peer could be made at all (as opposed to
    one that broke, or an answer): nobody is there now.
    """

    def __init__(
        self,
        peer: str,
        fault: PeerFault,
        detail: str,
        retry_after: float | None = None,
        *,
        reached: bool = True,
    ) -> None:
        super().__init__(f"peer {peer} {fault.value}: {detail}")
        self.peer = peer
        self.fault = fault
        self.detail = detail
        self.retry_after = retry_after
        self.reached = reached and fault is not PeerFault.UNREACHABLE


# The longest wait a peer's RetryInfo can impose: longer asks are cut to this. Shorter ones
# are raised to the shortest, so a peer saying 0 s is not asked again in a loop.
MAX_RETRY_AFTER = 300.0
MIN_RETRY_AFTER = 0.5

_FAULT_BY_REASON = {
    reasons.UPLOAD_SLOTS_FULL: PeerFault.REFUSED,
    reasons.TOO_MANY_UPLOADS_FOR_ADDRESS: PeerFault.REFUSED,
    reasons.UPLOAD_TOO_SLOW: PeerFault.REFUSED,  # our link to it is slow: others first
    reasons.FOLDER_UNAVAILABLE: PeerFault.GONE,
    reasons.FILE_UNREADABLE: PeerFault.GONE,
    reasons.FILE_CHANGED: PeerFault.CHANGED,
    reasons.OFFSET_PAST_END: PeerFault.CHANGED,  # its file is shorter than the one we fetch
    reasons.FILE_NOT_SHARED: PeerFault.MISSING,
    # It holds what we sent invalid: it and we disagree on the protocol.
    reasons.NAME_INVALID: PeerFault.BROKEN,
    reasons.SHA256_INVALID: PeerFault.BROKEN,
    reasons.LIMIT_INVALID: PeerFault.BROKEN,
    reasons.OFFSET_NEGATIVE: PeerFault.BROKEN,
}
# Tracker reasons meaning this peer's registration is gone: Join again.
_LEASE_LOST = frozenset({reasons.PEER_NOT_REGISTERED, reasons.TOKEN_MISMATCH})
# Refusals that say "later", with a RetryInfo: a peer keeps trying after that long.
_COME_BACK_LATER = frozenset(
    {reasons.ADDRESS_CHECKS_BUSY, reasons.JOINS_BUSY, reasons.LARGE_JOIN_TOO_SOON}
)
MAX_TRACKER_RETRY_AFTER = 600.0  # the longest a tracker's RetryInfo makes a peer wait


# What gRPC's UNAVAILABLE says when no connection could be made (refused, no route, timeout).
_NO_CONNECTION = "failed to connect"

# For servers without napshare details.
_PEER_FAULTS = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: PeerFault.REFUSED,
    grpc.StatusCode.UNAVAILABLE: PeerFault.GONE,
    grpc.StatusCode.DEADLINE_EXCEEDED: PeerFault.GONE,
    grpc.StatusCode.CANCELLED: PeerFault.GONE,
    grpc.StatusCode.ABORTED: PeerFault.GONE,
    grpc.StatusCode.INTERNAL: PeerFault.GONE,
    grpc.StatusCode.UNKNOWN: PeerFault.GONE,
    grpc.StatusCode.FAILED_PRECONDITION: PeerFault.CHANGED,
    grpc.StatusCode.NOT_FOUND: PeerFault.MISSING,
}


def _details(error: grpc.RpcError) -> str:
    if isinstance(error, grpc.Call):
        return str(error.details() or error.code().name)
    return str(error)


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    if isinstance(error, grpc.Call):
        return error.code()
    return grpc.StatusCode.UNKNOWN


def peer_failure(peer: str, error: grpc.RpcError) -> PeerError:
    """The PeerError that a Download call's error means."""
    code = _code(error)
    if code is grpc.StatusCode.UNIMPLEMENTED:
        detail = f"{peer} is not a napshare peer (it does not serve {PEER_SERVICE})"
        return PeerError(peer, PeerFault.BROKEN, detail)
    if code is grpc.StatusCode.UNAVAILABLE and not_pinned(_details(error)):
        detail = (
            "showed another certificate than the one the tracker lists for it: someone may "
            "be in the middle"
        )
        return PeerError(peer, PeerFault.IMPOSTOR, detail)
    if code is grpc.StatusCode.UNAVAILABLE and not_tls(_details(error)):
        detail = "serves no TLS (it runs with --plaintext?); this peer does not download in clear"
        return PeerError(peer, PeerFault.BROKEN, detail)
    found = error_details.read(error)
    if found is None:
        reached = not (
            code is grpc.StatusCode.UNAVAILABLE and _NO_CONNECTION in _details(error).lower()
        )
        fault = _PEER_FAULTS.get(code, PeerFault.BROKEN)
        return PeerError(peer, fault, _details(error), reached=reached)
    # A reason we do not know (from a newer peer) falls back on the code.
    fault = _FAULT_BY_REASON.get(found.reason) or _PEER_FAULTS.get(code, PeerFault.BROKEN)
    retry_after = None
    if fault is PeerFault.REFUSED and found.retry_delay is not None:
        retry_after = min(max(found.retry_delay, MIN_RETRY_AFTER), MAX_RETRY_AFTER)
    return PeerError(peer, fault, _details(error), retry_after)


def tracker_error(tracker: str, error: grpc.RpcError) -> ClientError:
    """The ClientError that a tracker call's error means (the tracker's details stay English)."""
    code, details = _code(error), _details(error)
    if code is grpc.StatusCode.UNAVAILABLE and not_pinned(details):
        return TrackerIdentityError(
            tr(
                "tracker {tracker} showed another certificate than the one pinned: someone "
                "may be posing as it",
                tracker=tracker,
            )
        )
    if code is grpc.StatusCode.UNAVAILABLE and not_tls(details):
        return TrackerIdentityError(no_tls_tracker(tracker))
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return TrackerUnreachableError(
            tr("tracker {tracker} is unreachable ({details})", tracker=tracker, details=details)
        )
    found = error_details.read(error)
    if found is None:
        lost = code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAUTHENTICATED)
    else:
        lost = found.reason in _LEASE_LOST
    if found is not None and found.reason in _COME_BACK_LATER and found.retry_delay is not None:
        return TrackerBusyError(
            tr("tracker {tracker} is busy: {details}", tracker=tracker, details=details),
            min(max(found.retry_delay, 0.0), MAX_TRACKER_RETRY_AFTER),
        )
    if lost:
        return LeaseLostError(
            tr(
                "tracker {tracker} no longer knows this peer: {details}",
                tracker=tracker,
                details=details,
            )
        )
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return NotATrackerError(
            tr(
                "{tracker} is not a napshare tracker (it does not serve {service})",
                tracker=tracker,
                service=TRACKER_SERVICE,
            )
        )
    return TrackerRejectedError(
        tr("tracker {tracker} refused the request: {details}", tracker=tracker, details=details)
    )


def connect_refused(tracker: str, peer: str, error: grpc.RpcError) -> ConnectRefusedError:
    """The ConnectRefusedError of a Connect call that the tracker answered with details."""
    found = error_details.read(error)
    return ConnectRefusedError(
        tr(
            "tracker {tracker} cannot connect this peer to {peer}: {details}",
            tracker=tracker,
            peer=peer,
            details=_details(error),
        ),
        found.reason if found is not None else "",
        found.retry_delay if found is not None else None,
        _details(error),
    )


def no_tls_tracker(tracker: str) -> str:
    """The line for a tracker that answers TLS in plain text."""
    return tr(
        "tracker {tracker} serves no TLS (is it running with --plaintext? then pass "
        "--plaintext here too)",
        tracker=tracker,
    )
